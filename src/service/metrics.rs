//! `/metrics`: the listener's counters as Prometheus metrics, encoded by
//! `prometheus-client` in the Prometheus text format (0.0.4), or in
//! OpenMetrics when the scraper's `Accept` asks for it.
//!
//! Nothing here counts. Each scrape takes one snapshot of the listener's
//! counters, the very [`ListenerState`] `listener.json` is written from,
//! and encodes it (a `Collector`), so every figure is the one
//! `listener.json` shows for the same moment:
//!
//! | metric | `listener.json` |
//! | --- | --- |
//! | `kongctl_audit_requests_total{code}` | `ingest.requests` |
//! | `kongctl_audit_records_received_total` | `ingest.records` |
//! | `kongctl_audit_records_stored_total` | `records_received` |
//! | `kongctl_audit_batches_stored_total` | `requests_received` |
//! | `kongctl_audit_records_set_aside_total{reason="duplicate"}` | `replay.duplicates_dropped` |
//! | `kongctl_audit_records_set_aside_total{reason="signature"}` | `ingest.records_set_aside` |
//! | `kongctl_audit_received_bytes_total` / `..._decoded_bytes_total` | `ingest.bytes_raw` / `bytes_decoded` |
//! | `kongctl_audit_store_write_failing` | `ingest.store_failing` |
//! | `kongctl_audit_store_segments`, `_store_bytes`, `_store_{oldest,newest}_record_timestamp_seconds` | `store` |
//! | `kongctl_audit_signatures_total{result}`, `kongctl_audit_signatures_pending` | `verify` |
//! | `kongctl_audit_replay_jobs_total{status}` | `replay.jobs_completed`, `jobs_failed` |
//! | `kongctl_audit_replay_missing_window_seconds` | `replay.missing_window` |
//! | `kongctl_audit_last_record_received_timestamp_seconds` | `last_event_at` |
//! | `kongctl_audit_webhook_last_delivery_failed`, `_webhook_last_attempt_timestamp_seconds`, `_webhook_last_response_code` | `replay.webhook` |
//!
//! plus `kongctl_audit_ready` (what `/readyz` says) and the standard
//! `process_*` metrics, read from `/proc/self` at the scrape. Label values
//! come from fixed sets (status codes, reasons, results, job states);
//! nothing of a record ever becomes a label.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::health::Health;
use crate::listen::state::ListenerState;

/// The content types of the two formats.
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics (as Prometheus does
/// when it prefers it); anything else gets the Prometheus text format.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let mut params = part.split(';');
            let media = params.next().unwrap_or("").trim();
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            media.eq_ignore_ascii_case("application/openmetrics-text") && q > 0.0
        })
    })
}

/// A registry whose one collector encodes `health`'s snapshot at each
/// scrape.
pub fn registry(health: Arc<Health>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape { health }));
    registry
}

/// Encodes `registry` in the chosen format; returns the body and its
/// content type.
pub fn encode(registry: &Registry, openmetrics: bool) -> (String, &'static str) {
    let mut body = String::new();
    let encoded = if openmetrics {
        prometheus_client::encoding::text::encode(&mut body, registry)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut body, registry)
    };
    // Writing to a String cannot fail; an error would be a bug in a name.
    if let Err(e) = encoded {
        tracing::error!(error = %e, "failed to encode metrics");
    }
    (
        body,
        if openmetrics {
            OPENMETRICS_TEXT
        } else {
            PROMETHEUS_TEXT
        },
    )
}

struct Scrape {
    health: Arc<Health>,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.health.snapshot();
        let ready = self.health.readiness(state.as_ref()).is_ok();
        let mut e = Families(&mut encoder);
        e.gauge(
            "kongctl_audit_ready",
            "1 while /readyz answers 200: serving, webhook pointed here, store writable, no newer failed delivery",
            None,
            &[(None, ready as i64)],
        )?;
        if let Some(state) = &state {
            listener_families(&mut e, state)?;
        }
        process_families(&mut e, &ProcessStats::read())
    }
}

type Labelled<'a, T> = [(Option<(&'static str, &'a str)>, T)];

/// Writes metric families; `None` label for a family without labels.
struct Families<'e, 'a>(&'e mut DescriptorEncoder<'a>);

impl Families<'_, '_> {
    fn counter<T>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        samples: &Labelled<'_, T>,
    ) -> Result<(), std::fmt::Error>
    where
        T: prometheus_client::encoding::EncodeCounterValue + Copy,
    {
        self.family(name, help, unit, &constants(samples, ConstCounter::new))
    }

    fn gauge<T>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        samples: &Labelled<'_, T>,
    ) -> Result<(), std::fmt::Error>
    where
        T: prometheus_client::encoding::EncodeGaugeValue + Copy,
    {
        self.family(name, help, unit, &constants(samples, ConstGauge::new))
    }

    /// One family: a single unlabelled sample, or labelled ones.
    fn family<M: EncodeMetric>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        samples: &Labelled<'_, M>,
    ) -> Result<(), std::fmt::Error> {
        let Some((_, first)) = samples.first() else {
            return Ok(());
        };
        let mut family = self
            .0
            .encode_descriptor(name, help, unit, first.metric_type())?;
        if let [(None, metric)] = samples {
            return metric.encode(family);
        }
        for (label, metric) in samples {
            let label = label.expect("a family of several samples labels each");
            metric.encode(family.encode_family(&[label])?)?;
        }
        Ok(())
    }
}

/// The samples' values as constant metrics of one kind.
fn constants<'a, T: Copy, M>(
    samples: &Labelled<'a, T>,
    make: fn(T) -> M,
) -> Vec<(Option<(&'static str, &'a str)>, M)> {
    samples
        .iter()
        .map(|(label, v)| (*label, make(*v)))
        .collect()
}

/// Seconds since the epoch of an RFC 3339 text, as `listener.json` has it.
fn epoch_seconds(text: &str) -> Option<f64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond() as f64 / 1000.0)
}

fn listener_families(e: &mut Families, s: &ListenerState) -> Result<(), std::fmt::Error> {
    if let Some(ingest) = &s.ingest {
        let by_code: Vec<_> = ingest
            .requests
            .iter()
            .map(|(code, n)| (Some(("code", code.as_str())), *n))
            .collect();
        e.counter(
            "kongctl_audit_requests",
            "Webhook requests answered, by HTTP status code",
            None,
            &by_code,
        )?;
        e.counter(
            "kongctl_audit_records_received",
            "Records in the decoded bodies of authorised webhook requests",
            None,
            &[(None, ingest.records)],
        )?;
        e.counter(
            "kongctl_audit_received_bytes",
            "Webhook request body bytes as received (gzip'd or plain)",
            None,
            &[(None, ingest.bytes_raw)],
        )?;
        e.counter(
            "kongctl_audit_received_decoded_bytes",
            "Webhook request body bytes after decoding",
            None,
            &[(None, ingest.bytes_decoded)],
        )?;
        e.gauge(
            "kongctl_audit_store_write_failing",
            "1 while the last attempt to store a batch failed",
            None,
            &[(None, ingest.store_failing as i64)],
        )?;
    }
    e.counter(
        "kongctl_audit_records_stored",
        "Records durably stored by this listener",
        None,
        &[(None, s.records_received)],
    )?;
    e.counter(
        "kongctl_audit_batches_stored",
        "Requests whose records were durably stored by this listener",
        None,
        &[(None, s.requests_received)],
    )?;
    let duplicates = s.replay.as_ref().map_or(0, |r| r.duplicates_dropped);
    let signature = s.ingest.as_ref().map_or(0, |i| i.records_set_aside);
    e.counter(
        "kongctl_audit_records_set_aside",
        "Records not stored in the events file: replayed duplicates dropped, or set aside by the signature check",
        None,
        &[
            (Some(("reason", "duplicate")), duplicates),
            (Some(("reason", "signature")), signature),
        ],
    )?;
    if let Some(at) = s.last_event_at.as_deref().and_then(epoch_seconds) {
        e.gauge(
            "kongctl_audit_last_record_received_timestamp",
            "When the last batch was stored",
            Some(&Unit::Seconds),
            &[(None, at)],
        )?;
    }
    if let Some(store) = &s.store {
        e.gauge(
            "kongctl_audit_store_segments",
            "Closed segments in the store",
            None,
            &[(None, store.segments)],
        )?;
        e.gauge(
            "kongctl_audit_store",
            "Bytes on disk of the closed segments and the active file",
            Some(&Unit::Bytes),
            &[(None, store.bytes)],
        )?;
        for (name, help, at) in [
            (
                "kongctl_audit_store_oldest_record_timestamp",
                "The oldest record's own time in the store",
                store.oldest_event_at,
            ),
            (
                "kongctl_audit_store_newest_record_timestamp",
                "The newest record's own time in the store",
                store.newest_event_at,
            ),
        ] {
            if let Some(at) = at {
                let seconds = at.as_millisecond() as f64 / 1000.0;
                e.gauge(name, help, Some(&Unit::Seconds), &[(None, seconds)])?;
            }
        }
    }
    if let Some(verify) = &s.verify {
        signature_families(e, verify)?;
    }
    if let Some(replay) = &s.replay {
        e.counter(
            "kongctl_audit_replay_jobs",
            "Gap healing's replay jobs, by final status",
            None,
            &[
                (Some(("status", "completed")), replay.jobs_completed),
                (Some(("status", "failed")), replay.jobs_failed),
            ],
        )?;
        let missing = replay
            .missing_window
            .as_ref()
            .and_then(|w| w.window())
            .map_or(0.0, |w| {
                w.end.duration_since(w.start).as_secs_f64().max(0.0).floor()
            });
        e.gauge(
            "kongctl_audit_replay_missing_window",
            "Length of the window whose events may be missing (0: none)",
            Some(&Unit::Seconds),
            &[(None, missing)],
        )?;
        if let Some(d) = &replay.webhook {
            e.gauge(
                "kongctl_audit_webhook_last_delivery_failed",
                "1 when Konnect reports that its last delivery attempt failed",
                None,
                &[(None, d.last_attempt_failed as i64)],
            )?;
            if let Some(at) = d.last_attempt_at.as_deref().and_then(epoch_seconds) {
                e.gauge(
                    "kongctl_audit_webhook_last_attempt_timestamp",
                    "When Konnect last tried to deliver",
                    Some(&Unit::Seconds),
                    &[(None, at)],
                )?;
            }
            if let Some(code) = d.last_response_code {
                e.gauge(
                    "kongctl_audit_webhook_last_response_code",
                    "The HTTP status Konnect's last delivery attempt got",
                    None,
                    &[(None, i64::from(code))],
                )?;
            }
        }
    }
    Ok(())
}

/// `verify`'s counts by result, and `pending` (records not checked yet)
/// when the verifier reports it; read through serde so that every count
/// `listener.json` shows is shown here.
fn signature_families(
    e: &mut Families,
    verify: &crate::verify::Counts,
) -> Result<(), std::fmt::Error> {
    let value = serde_json::to_value(verify).unwrap_or_default();
    let Some(counts) = value.as_object() else {
        return Ok(());
    };
    let results: Vec<_> = counts
        .iter()
        .filter(|(k, _)| k.as_str() != "pending")
        .filter_map(|(k, v)| Some((Some(("result", k.as_str())), v.as_u64()?)))
        .collect();
    e.counter(
        "kongctl_audit_signatures",
        "Records by signature check result",
        None,
        &results,
    )?;
    if let Some(pending) = counts.get("pending").and_then(|v| v.as_u64()) {
        e.gauge(
            "kongctl_audit_signatures_pending",
            "Records stored and not checked yet",
            None,
            &[(None, pending)],
        )?;
    }
    Ok(())
}

/// The process' own figures, from `/proc/self`.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub threads: Option<u64>,
}

impl ProcessStats {
    /// Reads them now; what cannot be read is left out.
    pub fn read() -> ProcessStats {
        let mut p = ProcessStats::default();
        let ticks = clock_ticks();
        if let Some(stat) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            p.cpu_seconds = ticks.map(|t| (stat.utime + stat.stime) as f64 / t);
            p.virtual_bytes = Some(stat.vsize);
            p.resident_bytes = page_size().map(|s| stat.rss_pages * s);
            p.threads = Some(stat.threads);
            p.start_time_seconds = boot_time()
                .zip(ticks)
                .map(|(boot, t)| boot as f64 + stat.start_ticks as f64 / t);
        }
        p.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        p.max_fds = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .ok()
            .map(|(soft, _)| soft);
        p
    }
}

fn process_families(e: &mut Families, p: &ProcessStats) -> Result<(), std::fmt::Error> {
    if let Some(v) = p.cpu_seconds {
        e.counter(
            "process_cpu",
            "Total user and system CPU time spent in seconds",
            Some(&Unit::Seconds),
            &[(None, v)],
        )?;
    }
    let gauges: [(&str, &str, Option<&Unit>, Option<f64>); 6] = [
        (
            "process_resident_memory",
            "Resident memory size in bytes",
            Some(&Unit::Bytes),
            p.resident_bytes.map(|v| v as f64),
        ),
        (
            "process_virtual_memory",
            "Virtual memory size in bytes",
            Some(&Unit::Bytes),
            p.virtual_bytes.map(|v| v as f64),
        ),
        (
            "process_start_time",
            "Start time of the process since unix epoch in seconds",
            Some(&Unit::Seconds),
            p.start_time_seconds,
        ),
        (
            "process_open_fds",
            "Number of open file descriptors",
            None,
            p.open_fds.map(|v| v as f64),
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors",
            None,
            p.max_fds.map(|v| v as f64),
        ),
        (
            "process_threads",
            "Number of OS threads in the process",
            None,
            p.threads.map(|v| v as f64),
        ),
    ];
    for (name, help, unit, value) in gauges {
        if let Some(v) = value {
            e.gauge(name, help, unit, &[(None, v)])?;
        }
    }
    Ok(())
}

/// The fields of `/proc/self/stat` the process metrics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    utime: u64,
    stime: u64,
    threads: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

/// Fields counted after the command name's last `)` (the name may hold
/// spaces and parentheses): the state is field 3, so field n is at
/// index n - 3.
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.trim_end().rsplit_once(')')?;
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        threads: field(20)?,
        start_ticks: field(22)?,
        vsize: field(23)?,
        rss_pages: field(24)?,
    })
}

/// `btime` of `/proc/stat`: boot time in seconds since the epoch.
fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

fn clock_ticks() -> Option<f64> {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .map(|t| t as f64)
}

fn page_size() -> Option<u64> {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|s| u64::try_from(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let text = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 12345 1048576 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                utime: 250,
                stime: 50,
                threads: 7,
                start_ticks: 12345,
                vsize: 1048576,
                rss_pages: 300,
            })
        );
        assert_eq!(parse_stat("42 (x) S 1"), None);
    }

    #[test]
    fn this_process_has_figures() {
        let p = ProcessStats::read();
        assert!(p.resident_bytes.unwrap() > 0);
        assert!(p.open_fds.unwrap() >= 3);
        assert!(p.threads.unwrap() >= 1);
        let start = p.start_time_seconds.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
    }

    #[test]
    fn openmetrics_only_when_asked_for() {
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("text/plain")));
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
    }
}
