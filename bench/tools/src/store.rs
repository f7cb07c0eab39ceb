//! A profile's store as a rotating listener leaves it (the store layout of
//! issue 13): gzip'd closed segments named
//! `events-<first record time>-<seq>.jsonl.gz`, their index
//! `segments.json`, and an active `events.jsonl`, under
//! `<out>/kongctl/audit-logs/default` (so `XDG_CONFIG_HOME=<out>`).
//!
//! Records are Konnect's webhook JSON format, as Kong's samples show it
//! (keys sorted, `trace_id` a big integer, an 86-character `sig`):
//! authorization (`konnect`, `Authz.*`, half of them), gateway access
//! (`KongGateway`, `Ingress`) and authentication (`AUTHENTICATION_TYPE_*`),
//! about 550 bytes each, in time order: each segment covers `span`, the
//! active file the last `active_span`, ending at `end` (default now).

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::corpus::Rng;

/// What to generate.
#[derive(clap::Args)]
pub struct StoreArgs {
    /// Closed segments.
    #[arg(long, value_name = "N")]
    pub segments: u64,
    /// Records per closed segment.
    #[arg(long, value_name = "N")]
    pub segment_records: u64,
    /// Records in the active file.
    #[arg(long, value_name = "N")]
    pub active_records: u64,
    /// Time covered by each segment, e.g. 24h.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = duration)]
    pub span: Duration,
    /// Time covered by the active file.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = duration)]
    pub active_span: Duration,
    /// When the active file's time span ends (RFC 3339); default now.
    #[arg(long, value_name = "TIME", value_parser = kongctl::time::parse_rfc3339)]
    pub end: Option<jiff::Timestamp>,
    /// Seed of the generator.
    #[arg(long, value_name = "S", default_value_t = 11)]
    pub seed: u64,
    /// The config directory to create the store under.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `--span`, `--active-span`: kongctl's duration grammar, not negative.
fn duration(text: &str) -> Result<Duration, String> {
    let d = kongctl::time::parse_duration(text)?;
    if d.is_negative() {
        return Err("must not be negative".into());
    }
    Ok(d.unsigned_abs())
}

const PRODUCTS: &[&str] = &["Konnect", "Konnect", "Konnect", "Dev-Portal"];
const RESOURCES: &[&str] = &[
    "portals",
    "control-planes",
    "services",
    "api-products",
    "teams",
    "system-accounts",
];
const ACTIONS: &[&str] = &["list", "retrieve", "create", "update", "delete"];
const AUTH_TYPES: &[&str] = &["PAT", "SPAT", "BASIC", "SSO"];
const AGENTS: &[&str] = &[
    "grpc-node-js/1.8.10",
    "grpc-go/1.51.0",
    "kongctl/0.4.0 (linux; amd64)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/113.0.0.0 Safari/537.36",
    "terraform-provider-konnect/2.4.1",
];
const STATUS: &[u16] = &[200, 200, 200, 201, 204, 400, 401, 403, 404, 500];

/// Appends one record at `ms` (milliseconds since the epoch) and its `\n`.
fn record(r: &mut Rng, orgs: &[String], principals: &[String], ms: u64, out: &mut String) {
    let org = &orgs[r.below(orgs.len() as u64) as usize];
    let principal = &principals[r.below(principals.len() as u64) as usize];
    let trace_id = (1u64 << 60) + r.below(1 << 62);
    let ts = rfc3339(ms);
    let src = format!("10.{}.{}.{}", r.below(256), r.below(256), 1 + r.below(254));
    let agent = r.pick(AGENTS);
    let kind = r.below(10);
    let mut sig = String::with_capacity(86);
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for _ in 0..86 {
        sig.push(ALPHABET[r.below(64) as usize] as char);
    }
    let product = r.pick(PRODUCTS);
    match kind {
        // authorization
        0..=4 => {
            let _ = write!(
                out,
                r#"{{"action":"{}","actor_id":"{}","cef_version":0,"event_class_id":"konnect","event_product":"{product}","event_ts":"{ts}","event_vendor":"KongInc","event_version":"1.0","granted":{},"name":"Authz.{}","org_id":"{org}","principal_id":"{principal}","rt":"{ms}","severity":1,"sig":"{sig}","src":"{src}","trace_id":{trace_id},"user_agent":"{agent}"}}"#,
                r.pick(ACTIONS),
                if r.chance(70) { "" } else { principal },
                r.chance(90),
                r.pick(RESOURCES),
            );
        }
        // gateway access
        5..=7 => {
            let _ = write!(
                out,
                r#"{{"act":"{}","cef_version":0,"event_class_id":"KongGateway","event_product":"{product}","event_ts":"{ts}","event_vendor":"KongInc","event_version":"1.0","name":"Ingress","org_id":"{org}","principal_id":"{principal}","query":"{{}}","request":"/konnect-api/api/{}/{}","rt":"{ms}","severity":1,"sig":"{sig}","src":"{src}","status":{},"trace_id":{trace_id},"user_agent":"{agent}"}}"#,
                r.pick(&["GET", "GET", "POST", "PATCH", "DELETE"]),
                r.pick(RESOURCES),
                principal,
                r.pick(STATUS),
            );
        }
        // authentication
        _ => {
            let ok = r.chance(90);
            let _ = write!(
                out,
                r#"{{"cef_version":0,"event_class_id":"AUTHENTICATION_TYPE_{}","event_product":"{product}","event_ts":"{ts}","event_vendor":"KongInc","event_version":"1.0","name":"AUTHENTICATION_OUTCOME_{}","org_id":"{org}","principal_id":"{principal}","request":"/api/v1/authenticate","rt":"{ms}","severity":0,"sig":"{sig}","src":"{src}","success":"{ok}","trace_id":{trace_id},"user_agent":"{agent}"}}"#,
                r.pick(AUTH_TYPES),
                if ok { "SUCCESS" } else { "FAILURE" },
            );
        }
    }
    out.push('\n');
}

fn rfc3339(ms: u64) -> String {
    kongctl::time::rfc3339(UNIX_EPOCH + Duration::from_millis(ms))
}

/// `20261127T170644Z` for a time.
fn stamp(ms: u64) -> String {
    rfc3339(ms).replace(['-', ':'], "")
}

/// Writes the store; prints what it wrote.
pub fn store_cmd(args: &StoreArgs) -> Result<(), String> {
    let dir = args.out.join("kongctl/audit-logs/default");
    fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut r = Rng::new(args.seed);
    let orgs: Vec<String> = (0..3).map(|_| r.uuid()).collect();
    let principals: Vec<String> = (0..50).map(|_| r.uuid()).collect();
    let now_ms = args
        .end
        .map_or_else(SystemTime::now, SystemTime::from)
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let span = args.span.as_millis() as u64;
    let active_span = args.active_span.as_millis() as u64;
    let active_from = now_ms - active_span;
    let first_from = active_from - span * args.segments;
    let (mut raw_bytes, mut gz_bytes, mut records) = (0u64, 0u64, 0u64);
    let mut index = Vec::new();
    let mut text = String::new();
    // Records of one file spread evenly over [from, from + span).
    let fill = |r: &mut Rng, text: &mut String, n: u64, from: u64, span: u64| {
        text.clear();
        let step = (span / n.max(1)).max(1);
        for i in 0..n {
            record(r, &orgs, &principals, from + i * step, text);
        }
        (from, from + (n.saturating_sub(1)) * step)
    };
    for seq in 1..=args.segments {
        let from = first_from + (seq - 1) * span;
        let (oldest, newest) = fill(&mut r, &mut text, args.segment_records, from, span);
        let name = format!("events-{}-{seq:06}.jsonl.gz", stamp(oldest));
        let path = dir.join(&name);
        let file =
            fs::File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        // Go's and zlib's default level.
        let mut gz = flate2::write::GzEncoder::new(
            std::io::BufWriter::with_capacity(1 << 20, file),
            flate2::Compression::new(6),
        );
        gz.write_all(text.as_bytes())
            .and_then(|()| gz.finish())
            .and_then(|mut w| w.flush())
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        let size = fs::metadata(&path).map_err(|e| e.to_string())?.len();
        index.push(serde_json::json!({
            "file": name,
            "first_received_at": rfc3339(oldest),
            "oldest_event_at": rfc3339(oldest),
            "newest_event_at": rfc3339(newest),
            // Records are written in time order, as a listener's index
            // says of such a segment.
            "max_lateness_ms": 0,
            "records": args.segment_records,
            "bytes": size,
        }));
        raw_bytes += text.len() as u64;
        gz_bytes += size;
        records += args.segment_records;
    }
    fill(
        &mut r,
        &mut text,
        args.active_records,
        active_from,
        active_span,
    );
    let active = dir.join("events.jsonl");
    fs::write(&active, &text).map_err(|e| format!("write {}: {e}", active.display()))?;
    raw_bytes += text.len() as u64;
    records += args.active_records;
    let index_path = dir.join("segments.json");
    fs::write(
        &index_path,
        serde_json::json!({"version": 1, "next_seq": args.segments + 1, "segments": index})
            .to_string(),
    )
    .map_err(|e| format!("write {}: {e}", index_path.display()))?;
    println!(
        "store={} segments={} records={records} raw_bytes={raw_bytes} gz_bytes={gz_bytes} active_bytes={} avg_record_bytes={}",
        dir.display(),
        args.segments,
        text.len(),
        raw_bytes / records.max(1)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_in_konnect_s_shapes_and_time_order() {
        let mut r = Rng::new(3);
        let orgs = vec!["o".to_string()];
        let principals = vec!["p".to_string()];
        let mut text = String::new();
        for i in 0..300 {
            record(
                &mut r,
                &orgs,
                &principals,
                1_750_000_000_000 + i * 1000,
                &mut text,
            );
        }
        let mut classes = std::collections::BTreeSet::new();
        let mut last = String::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let class = v["event_class_id"].as_str().unwrap();
            classes.insert(class.split('_').next().unwrap().to_owned());
            assert!(v["trace_id"].as_u64().unwrap() > 1 << 53);
            let ts = v["event_ts"].as_str().unwrap().to_owned();
            assert!(ts >= last);
            last = ts;
        }
        assert_eq!(
            classes.into_iter().collect::<Vec<_>>(),
            ["AUTHENTICATION", "KongGateway", "konnect"]
        );
        let avg = text.len() / 300;
        assert!((450..700).contains(&avg), "{avg}");
    }

    #[test]
    fn stamps_name_segments() {
        assert_eq!(stamp(1_764_263_204_000), "20251127T170644Z");
    }
}
