//! Gap healing: Konnect retries a failed delivery only 4 times, so events
//! sent while no listener ran (stopped, crashed, the laptop asleep, the
//! tunnel down) are lost to a webhook. Konnect keeps them for 7 days and
//! sends a time range again on request (a replay job); this module asks
//! for that range whenever a gap may exist, and makes sure nothing is
//! stored twice.
//!
//! Each stream heals on its own: the organisation's (the region's webhook
//! and replay job) and each `--portal` Dev Portal's (the portal's webhook,
//! its replay job, its delivery status), each from its own newest stored
//! record; one round of replays runs them side by side.
//!
//! - `window`: the range, from the stream's newest stored record's own time
//!   less 2 minutes to now on Konnect's clock, clamped to the 7 days.
//! - `scan`: the store (active file and segments) read for each stream's
//!   newest time and for the keys of the records in its window.
//! - `heal`: one round from start to end (gate open, scan, per stream
//!   `PUT`, 409 waits, watching the job), with each outcome in the report.
//! - `triggers`: what starts one: the listener's start, a jump of the wall
//!   clock against the monotonic one (the machine slept), a stream's
//!   webhook status reporting a failed delivery after its newest stored
//!   record.
//! - `report`: the `replay` object of `listener.json` and `ps -o json`.
//!
//! Replayed records arrive through the listener like live ones; the
//! listener's dedup gate (`crate::listener::dedup`) drops those already
//! stored. Which records to replay and when is decided here; receiving and
//! storing them is the listener's.

mod heal;
pub mod report;
pub mod scan;
mod triggers;
pub mod window;

use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::konnect::{AuditLogs, Stream};
use crate::listener::DedupGate;
use crate::store::EventStore;
pub use report::{Phase, PortalReplay, ReplayReport, SharedReport, StreamStatus, WebhookDelivery};
pub use scan::StoreFiles;
pub use window::Window;

/// `--backfill`: what to replay at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backfill {
    /// From the newest stored record (less the overlap), if any; and heal
    /// gaps noticed while running.
    Auto,
    /// Never replay.
    Off,
    /// From this long before now (on Konnect's clock), even with nothing
    /// stored; then as `Auto`.
    Since(Duration),
    /// From this time, even with nothing stored; then as `Auto`.
    From(Timestamp),
}

impl Backfill {
    /// `auto`, `off`, a duration (`90m`, `2h`, `1h30m`, `1d`) or an RFC 3339
    /// time (`2026-08-23T14:00:00Z`).
    pub fn parse(text: &str) -> Result<Backfill, String> {
        let t = text.trim();
        let bad = |why: &str| {
            format!(
                "invalid --backfill {text:?}: {why}; use auto, off, a duration such as 2h, or an RFC3339 time such as 2026-08-23T14:00:00Z"
            )
        };
        match t.to_ascii_lowercase().as_str() {
            "auto" => return Ok(Backfill::Auto),
            "off" => return Ok(Backfill::Off),
            _ => {}
        }
        if t.as_bytes().first().is_some_and(u8::is_ascii_digit) && t.contains('T') {
            return crate::time::parse_rfc3339(t)
                .map(Backfill::From)
                .map_err(|e| bad(&e));
        }
        if t.starts_with('-') {
            return Err(bad("a duration must be positive"));
        }
        match crate::time::parse_duration(t) {
            Ok(d) if d.is_positive() => Ok(Backfill::Since(d.unsigned_abs())),
            Ok(_) => Err(bad("a duration must be positive")),
            Err(e) => Err(bad(&e)),
        }
    }

    /// The start this asks for, at `now` on Konnect's clock.
    pub fn floor(&self, now: Timestamp) -> Option<Timestamp> {
        match self {
            Backfill::Auto | Backfill::Off => None,
            Backfill::Since(d) => Some(window::sub(now, *d)),
            Backfill::From(t) => Some(*t),
        }
    }

    /// As the user would write it.
    pub fn text(&self) -> String {
        match self {
            Backfill::Auto => "auto".into(),
            Backfill::Off => "off".into(),
            Backfill::Since(d) => crate::time::format_duration(*d),
            Backfill::From(t) => format!("{t:.0}"),
        }
    }
}

/// How often things happen; production values, or test ones.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between two looks at a running job.
    pub job_poll: Duration,
    /// First wait after a 409 (another job runs) or a Konnect failure;
    /// doubles up to `retry_max`.
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// Between two looks at the webhook's delivery status.
    pub status_every: Duration,
    /// Between two readings of the clocks.
    pub clock_tick: Duration,
    /// A wall clock ahead of the monotonic clock by more than this since
    /// the last reading means the machine slept (or the clock was set
    /// forward): Konnect's retries (1 to 30 s apart, 4 of them) may have
    /// run out meanwhile.
    pub sleep_jump: Duration,
    /// How long the dedup gate stays open after the last job ended
    /// (batches of the job still in flight).
    pub gate_grace: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            job_poll: Duration::from_secs(2),
            retry_first: Duration::from_secs(5),
            retry_max: Duration::from_secs(120),
            status_every: Duration::from_secs(60),
            clock_tick: Duration::from_secs(1),
            sleep_jump: Duration::from_secs(10),
            gate_grace: Duration::from_secs(120),
        }
    }
}

/// Test only, not for users: every interval of [`Timing`] but
/// `sleep_jump` scaled from this one (e.g. `20ms`), so tests run in
/// milliseconds what takes seconds and minutes for real.
const TICK_ENV: &str = "KONGCTL_TEST_REPLAY_TICK";
/// Test only, not for users: the webhook status monitor's interval alone
/// (e.g. `1h`, so that a test of another trigger is not raced by it).
const STATUS_EVERY_ENV: &str = "KONGCTL_TEST_WEBHOOK_STATUS_EVERY";

impl Timing {
    /// [`Timing::default`], or the test-only values of [`TICK_ENV`] and
    /// [`STATUS_EVERY_ENV`].
    pub fn from_env() -> Timing {
        let env = |name| {
            std::env::var(name)
                .ok()
                .and_then(|v| crate::time::positive_duration(&v))
        };
        let mut timing = match env(TICK_ENV) {
            None => Timing::default(),
            Some(tick) => Timing {
                job_poll: tick,
                retry_first: tick,
                retry_max: tick * 8,
                status_every: tick * 5,
                clock_tick: tick,
                gate_grace: tick * 25,
                ..Timing::default()
            },
        };
        if let Some(every) = env(STATUS_EVERY_ENV) {
            timing.status_every = every;
        }
        timing
    }
}

/// Everything healing works with.
pub struct Healing {
    pub audit: AuditLogs,
    pub store: EventStore,
    pub files: StoreFiles,
    pub gate: DedupGate,
    pub backfill: Backfill,
    /// The organisation's stream, then each Dev Portal's.
    pub streams: Vec<HealedStream>,
    pub report: SharedReport,
    pub timing: Timing,
}

/// One stream and whether it heals automatically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealedStream {
    pub stream: Stream,
    /// Replay at start (`auto` only when the listener configured the
    /// stream's webhook: the region's unless `--configure-webhook=false`,
    /// a portal's always) and on gaps noticed while running; explicit
    /// backfills are requested either way.
    pub automatic: bool,
    /// A portal's name, for messages (empty for the organisation).
    pub name: String,
}

/// The running healer and its triggers; [`Running::stop`] ends them.
pub struct Running {
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops healing (a job already requested goes on at Konnect; what it
    /// sends after the listener stopped is not received).
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The windows the profile's previous listener left missing, per stream
/// (a replay failed and none covered it before that listener stopped), from
/// its `listener.json`; the next replay of that stream covers it. Anything
/// unreadable is no window.
pub fn previous_missing_windows(listener_file: &std::path::Path) -> Vec<(Stream, Window)> {
    let Some(replay) = std::fs::read(listener_file)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|state| state.get("replay").cloned())
    else {
        return Vec::new();
    };
    let window = |v: &serde_json::Value| {
        serde_json::from_value::<window::WindowText>(v.get("missing_window")?.clone())
            .ok()?
            .window()
    };
    let mut found: Vec<(Stream, Window)> = window(&replay)
        .map(|w| (Stream::Org, w))
        .into_iter()
        .collect();
    for p in replay
        .get("portals")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(id), Some(w)) = (p.get("portal_id").and_then(|v| v.as_str()), window(p)) {
            found.push((Stream::Portal(id.to_string()), w));
        }
    }
    found
}

/// The report a listener starts with: the organisation's stream (healed
/// automatically when `automatic`) and each portal's (`(id, name)`), with
/// the windows the previous listener left `missing`.
pub fn initial_report(
    backfill: &Backfill,
    automatic: bool,
    portals: &[(String, String)],
    missing: &[(Stream, Window)],
) -> ReplayReport {
    let missing_of = |stream: &Stream| {
        missing
            .iter()
            .find(|(s, _)| s == stream)
            .map(|(_, w)| w.text())
    };
    let phase = |automatic| {
        if healing_runs(backfill, automatic) {
            Phase::Idle
        } else {
            Phase::Off
        }
    };
    ReplayReport {
        missing_window: missing_of(&Stream::Org),
        state: phase(automatic),
        backfill: if automatic || *backfill == Backfill::Off {
            backfill.text()
        } else {
            format!(
                "{} (no automatic healing: --configure-webhook=false)",
                backfill.text()
            )
        },
        portals: portals
            .iter()
            .map(|(id, name)| PortalReplay {
                portal_id: id.clone(),
                portal_name: name.clone(),
                status: StreamStatus {
                    state: phase(true),
                    missing_window: missing_of(&Stream::Portal(id.clone())),
                    ..StreamStatus::default()
                },
            })
            .collect(),
        ..ReplayReport::default()
    }
}

/// Whether a stream heals at all: not under `--backfill off`, nor under
/// `auto` when the listener does not configure its webhook (a replay would
/// go to whatever webhook it has, perhaps not this listener).
fn healing_runs(backfill: &Backfill, automatic: bool) -> bool {
    match backfill {
        Backfill::Off => false,
        Backfill::Auto => automatic,
        Backfill::Since(_) | Backfill::From(_) => true,
    }
}

/// Starts healing on the current runtime: the replay at start (if any)
/// and, for the streams healed automatically, the sleep detector and each
/// one's webhook status monitor. `None` when no stream heals at all
/// (`healing_runs`).
pub fn start(mut healing: Healing) -> Option<Running> {
    let backfill = healing.backfill.clone();
    healing
        .streams
        .retain(|s| healing_runs(&backfill, s.automatic));
    if healing.streams.is_empty() {
        return None;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    // Every stream left heals at start: automatically, or by an explicit
    // backfill.
    let _ = tx.send(triggers::Trigger::Startup);
    let mut tasks = Vec::new();
    let automatic: Vec<Stream> = healing
        .streams
        .iter()
        .filter(|s| s.automatic)
        .map(|s| s.stream.clone())
        .collect();
    if !automatic.is_empty() {
        tasks.push(tokio::spawn(triggers::watch_clock(
            tx.clone(),
            healing.timing,
        )));
    }
    let all: Vec<Stream> = healing.streams.iter().map(|s| s.stream.clone()).collect();
    for stream in automatic {
        tasks.push(tokio::spawn(triggers::watch_webhook_status(
            tx.clone(),
            triggers::StatusWatch {
                audit: healing.audit.clone(),
                stream,
                streams: all.clone(),
                store: healing.store.clone(),
                files: healing.files.clone(),
                report: healing.report.clone(),
                timing: healing.timing,
            },
        )));
    }
    drop(tx);
    let started_at = Timestamp::try_from(SystemTime::now()).unwrap_or(Timestamp::UNIX_EPOCH);
    tasks.push(tokio::spawn(heal::Healer::new(healing, started_at).run(rx)));
    Some(Running { tasks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backfill_values() {
        assert_eq!(Backfill::parse("auto"), Ok(Backfill::Auto));
        assert_eq!(Backfill::parse(" OFF "), Ok(Backfill::Off));
        assert_eq!(
            Backfill::parse("1h30m"),
            Ok(Backfill::Since(Duration::from_secs(5400)))
        );
        let t: Timestamp = "2026-08-23T12:00:00Z".parse().unwrap();
        assert_eq!(
            Backfill::parse("2026-08-23T14:00:00+02:00"),
            Ok(Backfill::From(t))
        );
        for bad in [
            "",
            "0s",
            "-5m",
            "yesterday",
            "2026-08-23",
            "2026-08-23T12:00:00",
        ] {
            let e = Backfill::parse(bad).unwrap_err();
            assert!(
                e.starts_with(&format!("invalid --backfill {bad:?}: ")),
                "{e}"
            );
        }
        assert_eq!(
            Backfill::Since(Duration::from_secs(7200))
                .floor("2026-08-23T12:00:00Z".parse().unwrap()),
            Some("2026-08-23T10:00:00Z".parse().unwrap())
        );
        assert_eq!(Backfill::Since(Duration::from_secs(5400)).text(), "1h 30m");
        assert_eq!(Backfill::From(t).text(), "2026-08-23T12:00:00Z");
    }

    #[test]
    fn healing_is_off_under_off_and_under_auto_without_the_webhook() {
        let since = Backfill::Since(Duration::from_secs(60));
        for (backfill, automatic, state) in [
            (Backfill::Auto, true, Phase::Idle),
            (Backfill::Auto, false, Phase::Off),
            (Backfill::Off, true, Phase::Off),
            (since.clone(), false, Phase::Idle),
        ] {
            assert_eq!(
                initial_report(&backfill, automatic, &[], &[]).state,
                state,
                "{backfill:?} automatic={automatic}"
            );
        }
        assert_eq!(
            initial_report(&since, false, &[], &[]).backfill,
            "1m (no automatic healing: --configure-webhook=false)"
        );
        // A portal's stream heals automatically even without the region's
        // webhook (the listener points the portal's).
        let r = initial_report(&Backfill::Auto, false, &[("p1".into(), "dev".into())], &[]);
        assert_eq!(r.state, Phase::Off);
        assert_eq!(r.portals[0].status.state, Phase::Idle);
        assert_eq!(r.portals[0].portal_name, "dev");
        assert_eq!(
            initial_report(&Backfill::Off, true, &[("p1".into(), "dev".into())], &[]).portals[0]
                .status
                .state,
            Phase::Off
        );
    }

    #[test]
    fn missing_windows_are_read_back_per_stream() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("listener.json");
        std::fs::write(
            &file,
            r#"{"replay": {"state": "idle", "backfill": "auto",
                "missing_window": {"start": "2026-08-23T10:00:00Z", "end": "2026-08-23T11:00:00Z"},
                "portals": [{"portal_id": "p1", "state": "idle",
                  "missing_window": {"start": "2026-08-23T09:00:00Z", "end": "2026-08-23T09:30:00Z"}},
                  {"portal_id": "p2", "state": "idle"}]}}"#,
        )
        .unwrap();
        let found = previous_missing_windows(&file);
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(
            found,
            vec![
                (
                    Stream::Org,
                    Window {
                        start: t("2026-08-23T10:00:00Z"),
                        end: t("2026-08-23T11:00:00Z")
                    }
                ),
                (
                    Stream::Portal("p1".into()),
                    Window {
                        start: t("2026-08-23T09:00:00Z"),
                        end: t("2026-08-23T09:30:00Z")
                    }
                ),
            ]
        );
        let r = initial_report(
            &Backfill::Auto,
            true,
            &[("p1".into(), "dev".into())],
            &found,
        );
        assert_eq!(
            r.portals[0].status.missing_window.as_ref().unwrap().start,
            "2026-08-23T09:00:00Z"
        );
        assert!(previous_missing_windows(&dir.path().join("none")).is_empty());
    }

    #[test]
    fn test_timing_scales_from_one_tick() {
        let t = Timing::default();
        assert_eq!(t.sleep_jump, Duration::from_secs(10));
        assert!(t.gate_grace >= super::window::OVERLAP);
    }
}
