//! `get audit-logs` and the pull `tail` against the emulator's pull API,
//! through the real binary: flag checks (before any request), paging,
//! windows on Konnect's clock, the 50 most recent, every output format with
//! records kept byte for byte, following with records arriving late and
//! pages shifting, retries, 4xx stops, a closed stdout, Ctrl+C, progress on
//! a terminal only, the login token file, `konnect.page-size`, and the
//! read-only views of the region's setup.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use konnect_sim::{CursorMode, Fault, FaultAction};
use serde_json::Value;

/// A minute, in milliseconds (clock offsets).
const MINUTE_MS: i64 = 60_000;

fn world() -> World {
    World::new()
}

/// RFC 3339 (whole seconds) of `t`.
fn rfc3339(t: SystemTime) -> String {
    format!("{:.0}", jiff::Timestamp::try_from(t).unwrap())
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

/// The calls of the pull API the emulator answered (or dropped).
fn pulls(w: &World) -> Vec<konnect_sim::RequestLogEntry> {
    w.snapshot()
        .requests
        .into_iter()
        .filter(|r| r.path == "/v3/audit-logs")
        .collect()
}

/// How many polls of a follow reached the emulator: first pages of the
/// pull API (no `page[after]` cursor).
fn polls(w: &World) -> usize {
    pulls(w)
        .iter()
        .filter(|r| !r.query.contains("page%5Bafter%5D") && !r.query.contains("page[after]"))
        .count()
}

/// Waits until a follow has run one whole poll more: the second poll that
/// starts from now begins after the first one has printed.
fn wait_one_more_poll(w: &World) {
    let seen = polls(w);
    eventually("two more polls", || polls(w) >= seen + 2);
}

/// Parses JSON lines.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn signatures(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["signature"].as_str().unwrap().to_string())
        .collect()
}

fn times(records: &[Value]) -> Vec<jiff::Timestamp> {
    records
        .iter()
        .map(|r| r["ts"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn assert_ok(out: &Output) {
    assert_eq!(
        out.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
}

/// A v3 record of `kind` with upstream's test values (user-N, trace-N) and
/// a number beyond 2^64 in a field Konnect does not document.
fn raw_record(kind: &str, n: u32, ts: &str) -> String {
    match kind {
        "authentication" => format!(
            r#"{{"type":"authentication","successful":true,"principal_id":"user-{n}","signature":"sig-{n}","org_id":"org","outcome":"success","authentication_type":"sso","ts":"{ts}","client_ip":"10.0.0.1","uri":"/login","user_agent":"ua","trace_id":"trace-{n}","future_field":{{"big":18446744073709551617,"exact":9007199254740993}}}}"#
        ),
        "authorization" => format!(
            r#"{{"type":"authorization","signature":"sig-{n}","service":"konnect","resource":"krn:x","action":"gateway.read","granted":false,"org_id":"org","ts":"{ts}","principal_id":"user-{n}","trace_id":"trace-{n}","future_field":{{"big":18446744073709551617,"exact":9007199254740993}}}}"#
        ),
        _ => format!(
            r#"{{"type":"gateway_access","ts":"{ts}","org_id":"org","principal_id":"user-{n}","actor_id":"","client_ip":"10.0.0.3","trace_id":"trace-{n}","user_agent":"ua","method":"POST","uri":"/v2/services","query":"","status_code":201,"signature":"sig-{n}","future_field":{{"big":18446744073709551617,"exact":9007199254740993}}}}"#
        ),
    }
}

#[test]
fn every_flag_error_is_refused_before_any_request() {
    let w = world();
    let t1 = "2026-08-24T14:00:00Z";
    let t0 = "2026-08-23T14:00:00Z";
    let get = "kongctl get audit-logs";
    let tail = "kongctl tail";
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["get", "audit-logs", "extra"],
            get,
            "the audit-logs command does not accept positional arguments",
        ),
        (
            vec!["get", "audit-logs", "-o", "jsonl", "-r"],
            get,
            "--jq-raw-output requires --jq",
        ),
        (
            vec!["get", "audit-logs", "-o", "jsonl", "--columns", "A=.a"],
            get,
            "--columns is only supported with --output text",
        ),
        (
            vec!["get", "audit-logs", "--jq", "."],
            get,
            "--jq is only supported with --output json or --output yaml",
        ),
        (
            vec!["get", "audit-logs", "-o", "yaml", "--jq", ".", "-r"],
            get,
            "--jq-raw-output is only supported with --output json when used with --jq",
        ),
        (
            vec!["tail", "--columns", "A=.a", "--jq", "."],
            tail,
            "--columns cannot be combined with --jq",
        ),
        (
            vec!["get", "audit-logs", "--page-size", "0"],
            get,
            "--page-size must be between 1 and 1000",
        ),
        (
            vec!["get", "audit-logs", "--page-size", "1001"],
            get,
            "--page-size must be between 1 and 1000",
        ),
        (
            vec!["get", "audit-logs", "--page-size", "-3"],
            get,
            "--page-size must be between 1 and 1000",
        ),
        (
            vec!["get", "audit-logs", "--since", "-5m"],
            get,
            "--since must be positive",
        ),
        (
            vec!["get", "audit-logs", "--since", "5m", "--start-time", t0],
            get,
            "--since cannot be combined with --start-time or --end-time",
        ),
        (
            vec!["get", "audit-logs", "--limit", "-1"],
            get,
            "--limit must be non-negative",
        ),
        (
            vec!["get", "audit-logs", "--poll-interval", "0s"],
            get,
            "--poll-interval must be positive",
        ),
        (
            vec!["get", "audit-logs", "--poll-interval", "-1s"],
            get,
            "--poll-interval must be positive",
        ),
        (
            vec!["get", "audit-logs", "--type", "login"],
            get,
            "invalid --type \"login\": must be authentication, authorization, or gateway_access",
        ),
        (
            vec!["get", "audit-logs", "-F", "--end-time", t1],
            get,
            "--end-time cannot be used with --follow",
        ),
        (
            vec!["get", "audit-logs", "-F", "--limit", "5"],
            get,
            "--limit cannot be used with --follow",
        ),
        (
            vec!["get", "audit-logs", "-F", "-o", "yaml"],
            get,
            "--follow requires row-oriented output: use --output text or --output jsonl",
        ),
        (
            vec!["get", "audit-logs", "--start-time", t1, "--end-time", t0],
            get,
            "--start-time must not be later than --end-time",
        ),
        (
            vec!["get", "audit-logs", "--limit", "ten"],
            get,
            "invalid argument \"ten\" for \"--limit\" flag: strconv.ParseInt: parsing \"ten\": invalid syntax",
        ),
        (
            vec!["get", "audit-logs", "--since", "5x"],
            get,
            "invalid argument \"5x\" for \"--since\" flag: time: unknown unit \"x\" in duration \"5x\"",
        ),
        (
            vec!["get", "audit-logs", "--start-time", "yesterday"],
            get,
            "invalid --start-time: expected RFC3339: parsing time \"yesterday\"",
        ),
        (
            vec!["get", "audit-logs", "--end-time", "2026-01-01 00:00:00Z"],
            get,
            "invalid --end-time: expected RFC3339",
        ),
        (
            vec!["get", "audit-logs", "-o", "json", "--jq", ".data["],
            get,
            "invalid jq expression",
        ),
        (
            vec!["tail", "--end-time", t1],
            tail,
            "--end-time cannot be used with --follow",
        ),
        (
            vec!["tail", "--limit", "3"],
            tail,
            "--limit cannot be used with --follow",
        ),
        (
            vec!["tail", "-o", "json"],
            tail,
            "--follow requires row-oriented output: use --output text or --output jsonl",
        ),
        (
            vec!["tail", "audit-logs", "stray"],
            "kongctl tail audit-logs",
            "the audit-logs command does not accept positional arguments",
        ),
        (
            vec!["tail", "konnect", "audit-logs", "--since", "-1m"],
            "kongctl tail konnect audit-logs",
            "--since must be positive",
        ),
        (
            vec!["tail", "--name", "x"],
            tail,
            "--name is a webhook listener flag: give --endpoint or --public-url, or use 'kongctl tail listener'",
        ),
        (
            vec!["get", "konnect", "audit-logs", "--type", "x"],
            "kongctl get konnect audit-logs",
            "invalid --type \"x\"",
        ),
    ];
    for (args, path, message) in cases {
        let out = w.run(&args);
        assert_eq!(out.code(), Some(1), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with(&format!("Error: {message}")),
            "{args:?}:\n{}",
            out.stderr
        );
        assert!(
            out.stderr
                .ends_with(&format!("Run '{path} --help' for usage\n")),
            "{args:?}:\n{}",
            out.stderr
        );
        assert_eq!(out.stdout, "", "{args:?}");
    }
    // A bad konnect.page-size is the flag's error too.
    std::fs::create_dir_all(w.config_dir()).unwrap();
    std::fs::write(
        w.config_dir().join("config.yaml"),
        "default:\n  konnect:\n    page-size: 5000\n",
    )
    .unwrap();
    let out = w.run(&["get", "audit-logs"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .starts_with("Error: --page-size must be between 1 and 1000")
    );
    // No credential: said before any request.
    std::fs::remove_file(w.config_dir().join("config.yaml")).unwrap();
    let mut cmd = w.kongctl();
    cmd.env_remove("KONGCTL_DEFAULT_KONNECT_PAT")
        .args(["get", "audit-logs", "--since", "1m"]);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .starts_with("Error: authentication token not available"),
        "{}",
        out.stderr
    );
    assert!(
        w.snapshot().requests.is_empty(),
        "{:?}",
        w.snapshot().requests
    );
}

#[test]
fn a_window_is_paged_through_and_printed_in_order_with_nothing_on_stderr() {
    let w = world();
    w.sim.seed_audit_logs("us", 250, Duration::from_secs(3600));
    w.sim
        .seed_audit_logs_between("us", 5, ago(3 * 3600), ago(3 * 3600));
    let out = w.run(&[
        "get",
        "audit-logs",
        "--since",
        "2h",
        "--page-size",
        "40",
        "-o",
        "jsonl",
    ]);
    assert_ok(&out);
    assert_eq!(out.stderr, "", "a successful pull off a terminal is silent");
    let records = json_lines(&out.stdout);
    assert_eq!(records.len(), 250);
    let ts = times(&records);
    assert!(ts.windows(2).all(|p| p[0] <= p[1]));
    assert_eq!(
        signatures(&records)
            .into_iter()
            .collect::<BTreeSet<_>>()
            .len(),
        250
    );
    // One request reads Konnect's clock, then ceil(250 / 40) pages.
    let calls = pulls(&w);
    assert_eq!(calls.len(), 1 + 7, "{calls:?}");
    let page = &calls[1].query;
    for part in [
        "page%5Bsize%5D=40",
        "filter%5Bts%5D%5Bgte%5D=",
        "filter%5Bts%5D%5Blte%5D=",
    ] {
        assert!(page.contains(part), "{page}");
    }
    assert!(
        calls[2].query.contains("page%5Bafter%5D="),
        "{}",
        calls[2].query
    );

    // A limit with a window: the first N, and the envelope says more exist.
    let out = w.run(&[
        "get",
        "audit-logs",
        "--since",
        "2h",
        "--limit",
        "30",
        "-o",
        "json",
    ]);
    assert_ok(&out);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["metadata"]["count"], 30);
    assert_eq!(doc["metadata"]["truncated"], true);
    assert_eq!(
        signatures(doc["data"].as_array().unwrap()),
        signatures(&records[..30])
    );

    // --start-time/--end-time (numeric offset accepted) and --type are
    // Konnect's filters.
    let from = &records[100]["ts"];
    let from = from.as_str().unwrap();
    let from_offset = from
        .parse::<jiff::Timestamp>()
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(-5)))
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    let out = w.run(&[
        "get",
        "audit-logs",
        "--start-time",
        &from_offset,
        "-o",
        "jsonl",
        "--type",
        "authorization",
    ]);
    assert_ok(&out);
    let got = json_lines(&out.stdout);
    let want: Vec<&Value> = records[100..]
        .iter()
        .filter(|r| r["type"] == "authorization")
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got.len(), want.len());
    assert!(got.iter().all(|r| r["type"] == "authorization"));
}

#[test]
fn without_a_window_the_fifty_most_recent_are_printed_oldest_first() {
    let w = world();
    w.sim.seed_audit_logs("us", 30, Duration::from_secs(4 * 60));
    w.sim
        .seed_audit_logs_between("us", 100, ago(3 * 3600), ago(2 * 3600));
    w.sim
        .seed_audit_logs_between("us", 7, ago(3 * 86_400), ago(3 * 86_400 - 60));
    let all = w.run(&["get", "audit-logs", "--since", "96h", "-o", "jsonl"]);
    assert_ok(&all);
    let all = json_lines(&all.stdout);
    assert_eq!(all.len(), 137);

    let out = w.run(&["get", "audit-logs", "-o", "json"]);
    assert_ok(&out);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["metadata"]["count"], 50);
    assert_eq!(doc["metadata"]["truncated"], true);
    assert_eq!(
        signatures(doc["data"].as_array().unwrap()),
        signatures(&all[all.len() - 50..])
    );
    // It read back window by window, not the whole week page by page.
    let calls = pulls(&w).len();
    assert!(calls < 12, "{calls} requests");

    let out = w.run(&["get", "audit-logs", "--limit", "5", "-o", "jsonl"]);
    assert_eq!(
        signatures(&json_lines(&out.stdout)),
        signatures(&all[all.len() - 5..])
    );
    let out = w.run(&["get", "audit-logs", "--limit", "200", "-o", "json"]);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["metadata"]["count"], 137);
    assert_eq!(doc["metadata"]["truncated"], false);
    let out = w.run(&["get", "audit-logs", "--limit", "0", "-o", "jsonl"]);
    assert_eq!(json_lines(&out.stdout).len(), 137, "0 is unlimited");
}

#[test]
fn every_output_format_keeps_records_exact() {
    let w = world();
    let ts = |s: u64| rfc3339(ago(s));
    let records = [
        raw_record("authentication", 1, &ts(30)),
        raw_record("authorization", 2, &ts(20)),
        raw_record("gateway_access", 3, &ts(10)),
    ];
    let refs: Vec<&str> = records.iter().map(String::as_str).collect();
    w.sim.add_raw_audit_logs("us", &refs).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["get", "audit-logs", "--since", "1h"];
        args.extend_from_slice(extra);
        let out = w.run(&args);
        assert_ok(&out);
        assert_eq!(out.stderr, "");
        out.stdout
    };

    // jsonl: the bytes Konnect sent.
    assert_eq!(run(&["-o", "jsonl"]), format!("{}\n", records.join("\n")));

    // json: the envelope, numbers exact, keys in Konnect's order.
    let json = run(&["-o", "json"]);
    assert!(json.starts_with("{\n  \"metadata\": {\n    \"count\": 3,\n    \"truncated\": false\n  },\n  \"data\": [\n"), "{json}");
    assert_eq!(
        json.matches("\"big\": 18446744073709551617").count(),
        3,
        "{json}"
    );
    assert_eq!(
        json.matches("\"exact\": 9007199254740993").count(),
        3,
        "{json}"
    );
    assert!(
        json.find("\"type\": \"authentication\"").unwrap() < json.find("\"successful\"").unwrap()
    );

    let yaml = run(&["-o", "yaml"]);
    assert!(yaml.contains("count: 3"), "{yaml}");
    assert_eq!(yaml.matches("exact: 9007199254740993").count(), 3, "{yaml}");

    // text: upstream's columns and row mapping.
    let text = run(&[]);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "TIMESTAMP",
            "TYPE",
            "PRINCIPAL",
            "ACTION",
            "RESULT",
            "TRACE",
            "ID"
        ]
    );
    assert_eq!(
        rows[1][1..],
        ["authentication", "user-1", "sso", "success", "trace-1"]
    );
    assert_eq!(
        rows[2][1..],
        [
            "authorization",
            "user-2",
            "gateway.read",
            "denied",
            "trace-2"
        ]
    );
    assert_eq!(
        rows[3][1..],
        [
            "gateway_access",
            "user-3",
            "POST",
            "/v2/services",
            "201",
            "trace-3"
        ]
    );

    let columns = run(&["--columns", "WHO=.principal_id,N=.future_field.exact"]);
    let rows: Vec<Vec<&str>> = columns
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["WHO", "N"]);
    assert_eq!(rows[3], ["user-3", "9007199254740993"]);

    assert_eq!(
        run(&["-o", "jsonl", "--jq", "{type, n: .future_field.big}"]),
        "{\"n\":18446744073709551617,\"type\":\"authentication\"}\n{\"n\":18446744073709551617,\"type\":\"authorization\"}\n{\"n\":18446744073709551617,\"type\":\"gateway_access\"}\n"
    );
    assert_eq!(
        run(&["-o", "jsonl", "--jq", ".principal_id", "-r"]),
        "user-1\nuser-2\nuser-3\n"
    );
    assert_eq!(run(&["-o", "json", "--jq", ".metadata.count"]), "3\n");
    assert_eq!(
        run(&["-o", "json", "--jq", ".data[0].principal_id", "-r"]),
        "user-1\n"
    );
    assert!(
        run(&["-o", "yaml", "--jq", ".data[2].future_field"]).contains("exact: 9007199254740993")
    );
}

#[test]
fn grep_keeps_the_records_whose_bytes_match_with_every_other_filter() {
    let w = world();
    let ts = |s: u64| rfc3339(ago(s));
    let records = [
        raw_record("authentication", 1, &ts(40)),
        raw_record("authorization", 2, &ts(30)),
        raw_record("gateway_access", 3, &ts(20)),
        raw_record("authorization", 4, &ts(10)),
    ];
    let refs: Vec<&str> = records.iter().map(String::as_str).collect();
    w.sim.add_raw_audit_logs("us", &refs).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["get", "audit-logs", "--since", "1h", "-o", "jsonl"];
        args.extend_from_slice(extra);
        let out = w.run(&args);
        assert_ok(&out);
        assert_eq!(out.stderr, "");
        out.stdout
    };
    // The bytes as Konnect sent them, as `grep` would pick them.
    assert_eq!(
        run(&["--grep", r#""granted":false"#]),
        format!("{}\n{}\n", records[1], records[3])
    );
    assert_eq!(run(&["--grep", "USER-[34]"]), "");
    assert_eq!(
        run(&["--grep", "(?i)USER-[34]"]),
        format!("{}\n{}\n", records[2], records[3])
    );
    // With --type and --jq: both must hold.
    assert_eq!(
        run(&[
            "--grep",
            "user-[34]",
            "--type",
            "authorization",
            "--jq",
            ".principal_id",
            "-r"
        ]),
        "user-4\n"
    );
    // Without a window: the most recent of those that match.
    let out = w.run(&[
        "get",
        "audit-logs",
        "--grep",
        "sig-[12]",
        "--limit",
        "1",
        "-o",
        "jsonl",
    ]);
    assert_ok(&out);
    assert_eq!(out.stdout, format!("{}\n", records[1]));
    // A pattern that is not a regular expression fails before any request.
    let before = pulls(&w).len();
    let out = w.run(&["get", "audit-logs", "--grep", "a(b"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("Error: invalid --grep pattern: regex parse error:"),
        "{}",
        out.stderr
    );
    assert_eq!(pulls(&w).len(), before);
}

/// Reads the JSON lines a follow printed so far.
fn followed(proc: &Running) -> Vec<Value> {
    json_lines(&proc.stdout())
}

#[test]
fn a_follow_prints_every_record_once_while_records_arrive_late_and_pages_shift() {
    let w = world();
    // Offset cursors and small pages: a late record shifts the pages under
    // the follower, which would repeat or skip records without dedup and
    // the overlapping windows.
    w.sim.set_cursor_mode(CursorMode::Offset);
    w.sim.seed_audit_logs("us", 12, Duration::from_secs(4 * 60));
    w.sim
        .seed_audit_logs_between("us", 5, ago(9 * 60), ago(7 * 60));
    let mut tail = w.spawn(&[
        "tail",
        "-o",
        "jsonl",
        "--poll-interval",
        "150ms",
        "--page-size",
        "3",
    ]);
    tail.wait_stdout("the catch-up", |out| out.lines().count() >= 12);

    // Late records (up to 50 s old when they reach Konnect) keep arriving
    // while the follower polls.
    let added = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let adder = {
        let (added, stop) = (added.clone(), stop.clone());
        let sim = w.sim.handle().clone();
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let late = ago(u64::from(n * 7 % 50));
                let record = raw_record(
                    ["authentication", "authorization", "gateway_access"][n as usize % 3],
                    1000 + n,
                    &rfc3339(late),
                );
                sim.add_raw_audit_logs("us", &[&record]).unwrap();
                added.lock().unwrap().push(format!("sig-{}", 1000 + n));
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, Ordering::Relaxed);
    adder.join().unwrap();
    w.sim.trigger("us", 4);
    let added = added.lock().unwrap().clone();
    let expected = 12 + added.len() + 4;
    tail.wait_stdout("every record", |out| out.lines().count() >= expected);
    // More polls: nothing is printed twice.
    wait_one_more_poll(&w);
    tail.interrupt();
    let status = tail.wait_exit(PATIENCE);
    assert!(status.success(), "{}", tail.stderr());
    assert_eq!(tail.stderr(), "");
    let records = followed(&tail);
    let sigs = signatures(&records);
    let unique: BTreeSet<&String> = sigs.iter().collect();
    assert_eq!(unique.len(), sigs.len(), "a record was printed twice");
    assert_eq!(records.len(), expected);
    for sig in &added {
        assert!(unique.contains(sig), "{sig} was skipped");
    }
    // The records older than the five-minute catch-up were not printed.
    let oldest = *times(&records).iter().min().unwrap();
    assert!(SystemTime::from(oldest) > ago(6 * 60), "{oldest}");
}

#[test]
fn follows_work_on_konnects_clock_when_this_machine_is_five_minutes_off() {
    for offset in [5 * MINUTE_MS, -5 * MINUTE_MS] {
        let w = world();
        w.sim.set_clock_offset(offset);
        let konnect_now = w.sim.now();
        // Konnect's last four minutes, and older ones outside the catch-up.
        w.sim.seed_audit_logs("us", 20, Duration::from_secs(4 * 60));
        w.sim.seed_audit_logs_between(
            "us",
            6,
            konnect_now - Duration::from_secs(10 * 60),
            konnect_now - Duration::from_secs(6 * 60),
        );
        let out = w.run(&["get", "audit-logs", "--since", "5m", "-o", "jsonl"]);
        assert_ok(&out);
        assert_eq!(json_lines(&out.stdout).len(), 20, "offset {offset}");

        let mut tail = w.spawn(&["tail", "-o", "jsonl", "--poll-interval", "150ms"]);
        tail.wait_stdout("the catch-up", |out| out.lines().count() >= 20);
        // New events happen at Konnect's now.
        w.sim.trigger("us", 3);
        tail.wait_stdout("new events", |out| out.lines().count() >= 23);
        // One more poll prints nothing again.
        wait_one_more_poll(&w);
        tail.interrupt();
        assert!(tail.wait_exit(PATIENCE).success());
        let records = followed(&tail);
        assert_eq!(records.len(), 23, "offset {offset}: {}", tail.stdout());
        let konnect_start = konnect_now - Duration::from_secs(5 * 60 + 5);
        assert!(
            times(&records)
                .iter()
                .all(|t| SystemTime::from(*t) > konnect_start)
        );
    }
}

#[test]
fn a_follow_retries_after_retry_after_or_a_backoff_with_one_line_each() {
    let w = world();
    w.sim.seed_audit_logs("us", 4, Duration::from_secs(60));
    let fault = |action| Fault {
        method: Some("GET".into()),
        path: "/v3/audit-logs".into(),
        count: 1,
        action,
    };
    w.sim.inject_fault(fault(FaultAction::Status {
        status: 429,
        retry_after: Some(1),
    }));
    w.sim.inject_fault(fault(FaultAction::Drop));
    let started = Instant::now();
    let mut tail = w.spawn(&["tail", "-o", "jsonl", "--poll-interval", "150ms"]);
    tail.wait_stdout("the records", |out| out.lines().count() >= 4);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A poll fails too (a 503 with Retry-After) while events arrive: they
    // are printed once it succeeds, none lost.
    w.sim.inject_fault(fault(FaultAction::Status {
        status: 503,
        retry_after: Some(1),
    }));
    w.sim.trigger("us", 3);
    tail.wait_stdout("the events after the failed poll", |out| {
        out.lines().count() >= 7
    });
    tail.interrupt();
    assert!(tail.wait_exit(PATIENCE).success());
    let stderr = tail.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with("audit-log polling failed; retrying in 1s: GET "),
        "{stderr}"
    );
    assert!(
        lines[0].contains("status 429 Too Many Requests"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("audit-log polling failed; retrying in "),
        "{stderr}"
    );
    assert!(lines[2].contains("status 503"), "{stderr}");
    assert_eq!(followed(&tail).len(), 7);
}

#[test]
fn a_finite_pull_gives_each_page_five_tries_then_says_what_it_printed() {
    let w = world();
    w.sim.seed_audit_logs("us", 25, Duration::from_secs(600));
    let fault = |count, action| Fault {
        method: Some("GET".into()),
        path: "/v3/audit-logs".into(),
        count,
        action,
    };
    // The clock request and page 1 pass; page 2 fails five times.
    w.sim.inject_fault(fault(2, FaultAction::Pass));
    w.sim.inject_fault(fault(
        5,
        FaultAction::Status {
            status: 503,
            retry_after: Some(0),
        },
    ));
    let out = w.run(&[
        "get",
        "audit-logs",
        "--since",
        "1h",
        "--page-size",
        "10",
        "-o",
        "jsonl",
    ]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(json_lines(&out.stdout).len(), 10);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 5, "{}", out.stderr);
    for (i, line) in lines[..4].iter().enumerate() {
        assert!(
            line.starts_with(&format!(
                "audit-log request failed; retrying in 0s (try {} of 5): GET ",
                i + 2
            )),
            "{line}"
        );
    }
    assert!(
        lines[4].starts_with(
            "Error: failed to retrieve all audit logs after 5 tries (10 records printed): GET "
        ),
        "{}",
        lines[4]
    );
    assert!(
        lines[4].contains("status 503 Service Unavailable"),
        "{}",
        lines[4]
    );

    // Four failures, then the page comes: everything printed, exit 0.
    w.sim.inject_fault(fault(2, FaultAction::Pass));
    w.sim.inject_fault(fault(
        4,
        FaultAction::Status {
            status: 503,
            retry_after: Some(0),
        },
    ));
    let out = w.run(&[
        "get",
        "audit-logs",
        "--since",
        "1h",
        "--page-size",
        "10",
        "-o",
        "jsonl",
    ]);
    assert_ok(&out);
    assert_eq!(json_lines(&out.stdout).len(), 25);
    assert_eq!(out.stderr.lines().count(), 4, "{}", out.stderr);

    // Without Retry-After the first wait is the backoff's one second.
    w.sim.inject_fault(fault(
        1,
        FaultAction::Status {
            status: 500,
            retry_after: None,
        },
    ));
    let started = Instant::now();
    let out = w.run(&["get", "audit-logs", "--since", "1h", "-o", "jsonl"]);
    assert_ok(&out);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        out.stderr
            .starts_with("audit-log request failed; retrying in 1s (try 2 of 5): GET "),
        "{}",
        out.stderr
    );
    // A JSON document is printed whole or marked truncated.
    w.sim.inject_fault(fault(2, FaultAction::Pass));
    w.sim.inject_fault(fault(5, FaultAction::Drop));
    let out = w.run(&[
        "get",
        "audit-logs",
        "--since",
        "1h",
        "--page-size",
        "10",
        "-o",
        "json",
    ]);
    assert_eq!(out.code(), Some(1));
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["metadata"]["count"], 10);
    assert_eq!(doc["metadata"]["truncated"], true);
}

#[test]
fn a_client_error_ends_the_pull_with_konnects_detail() {
    let w = world();
    w.sim.seed_audit_logs("us", 5, Duration::from_secs(60));
    w.sim.inject_fault(Fault {
        method: None,
        path: "/v3/audit-logs".into(),
        count: 1,
        action: FaultAction::Problem {
            status: 400,
            detail: "Invalid cursor, start over".into(),
        },
    });
    let out = w.run(&["get", "audit-logs", "--since", "1h", "-o", "jsonl"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr
            .starts_with("Error: failed to retrieve audit logs: GET "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("status 400 Bad Request: Invalid cursor, start over"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "no retry: {}", out.stderr);

    // A follow stops too, with upstream's words.
    w.sim.inject_fault(Fault {
        method: None,
        path: "/v3/audit-logs".into(),
        count: 1,
        action: FaultAction::Problem {
            status: 403,
            detail: "You do not have permission".into(),
        },
    });
    let out = w.run(&["tail", "-o", "jsonl"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .starts_with("Error: failed to follow audit logs: GET "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("Hint: the access token lacks permission"),
        "{}",
        out.stderr
    );

    // A rejected PAT names where it came from.
    let mut cmd = w.kongctl();
    cmd.env("KONGCTL_DEFAULT_KONNECT_PAT", "kpat_wrong").args([
        "get",
        "audit-logs",
        "--since",
        "1m",
    ]);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("status 401"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("KONGCTL_DEFAULT_KONNECT_PAT environment variable"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_closed_stdout_ends_the_pull_quietly() {
    let w = world();
    w.sim.seed_audit_logs("us", 3000, Duration::from_secs(3600));
    let start = rfc3339(ago(7200));
    for args in [
        vec![
            "get",
            "audit-logs",
            "--since",
            "2h",
            "-o",
            "jsonl",
            "--page-size",
            "100",
        ],
        vec!["tail", "-o", "jsonl", "--start-time", &start],
    ] {
        let mut cmd = w.kongctl();
        cmd.args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        assert!(first.starts_with('{'), "{first}");
        drop(stdout);
        let mut proc = Running::spawn_guard(child);
        let status = proc.wait_exit(PATIENCE);
        assert!(status.success(), "{args:?}: {status:?} {}", proc.stderr());
        assert_eq!(proc.stderr(), "", "{args:?}");
    }
}

#[test]
fn ctrl_c_prints_what_was_fetched_and_exits_0() {
    let w = world();
    w.sim.seed_audit_logs("us", 40, Duration::from_secs(600));
    let fault = |count, action| Fault {
        method: Some("GET".into()),
        path: "/v3/audit-logs".into(),
        count,
        action,
    };
    // The clock, pages 1 and 2 pass; page 3 hangs.
    w.sim.inject_fault(fault(3, FaultAction::Pass));
    w.sim
        .inject_fault(fault(1, FaultAction::Delay(Duration::from_secs(30))));
    let mut get = w.spawn(&[
        "get",
        "audit-logs",
        "--since",
        "1h",
        "--page-size",
        "10",
        "-o",
        "json",
    ]);
    // Page 3 reached the emulator: the command waits for its answer.
    eventually("page 3 to be requested", || w.snapshot().faults.is_empty());
    get.interrupt();
    let status = get.wait_exit(PATIENCE);
    assert!(status.success(), "{}", get.stderr());
    assert_eq!(get.stderr(), "");
    let doc: Value = serde_json::from_str(&get.stdout()).unwrap();
    assert_eq!(doc["metadata"]["count"], 20);
    assert_eq!(doc["metadata"]["truncated"], true);

    // A follow flushes its rows and exits 0 too.
    w.sim.clear_faults();
    let mut tail = w.spawn(&["tail", "--poll-interval", "10s"]);
    tail.wait_stdout("rows", |out| out.lines().count() >= 2);
    tail.interrupt();
    assert!(tail.wait_exit(PATIENCE).success());
    assert!(
        tail.stdout()
            .starts_with("TIMESTAMP\tTYPE\tPRINCIPAL\tACTION\tRESULT\tTRACE ID\n"),
        "{}",
        tail.stdout()
    );
}

#[test]
fn progress_is_drawn_only_on_a_terminal() {
    let w = world();
    w.sim.seed_audit_logs("us", 200, Duration::from_secs(600));
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut cmd = w.kongctl();
    cmd.args([
        "get",
        "audit-logs",
        "--since",
        "1h",
        "--page-size",
        "10",
        "-o",
        "jsonl",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::from(pty.slave));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    let mut proc = Running::spawn_guard(child);
    assert!(proc.wait_exit(PATIENCE).success());
    assert_eq!(json_lines(&proc.stdout()).len(), 200);
    let mut master = std::fs::File::from(pty.master);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // The slave is closed: read until EIO.
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let seen = String::from_utf8_lossy(&seen);
    assert!(
        seen.contains(" pages, ") && seen.contains(" records/s"),
        "{seen:?}"
    );
    assert!(seen.ends_with("\r\x1b[K"), "the line is cleared: {seen:?}");
}

#[test]
fn a_login_token_file_works_and_is_renewed() {
    let w = world();
    w.sim.seed_audit_logs("us", 3, Duration::from_secs(60));
    let grant = w.sim.issue_login(Duration::ZERO);
    std::fs::create_dir_all(w.config_dir()).unwrap();
    let file = serde_json::json!({
        "token": {"access_token": grant.access_token, "refresh_token": grant.refresh_token,
                  "token_type": "Bearer", "expires_in": 0, "scope": ""},
        "received_at": jiff::Timestamp::now().to_string(),
    });
    let path = w.config_dir().join(".default-konnect-token.json");
    std::fs::write(&path, file.to_string()).unwrap();
    let mut cmd = w.kongctl();
    cmd.env_remove("KONGCTL_DEFAULT_KONNECT_PAT").args([
        "get",
        "audit-logs",
        "--since",
        "5m",
        "-o",
        "jsonl",
    ]);
    let out = Running::run_command(cmd);
    assert_ok(&out);
    assert_eq!(json_lines(&out.stdout).len(), 3);
    assert_eq!(w.sim.login_refreshes(), 1);
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains(&grant.access_token)
    );
}

#[test]
fn page_size_comes_from_the_flag_else_the_profile() {
    let w = world();
    w.sim.seed_audit_logs("us", 15, Duration::from_secs(60));
    std::fs::create_dir_all(w.config_dir()).unwrap();
    std::fs::write(
        w.config_dir().join("config.yaml"),
        "default:\n  konnect:\n    page-size: 7\n",
    )
    .unwrap();
    let out = w.run(&["get", "audit-logs", "--since", "5m", "-o", "jsonl"]);
    assert_ok(&out);
    assert_eq!(json_lines(&out.stdout).len(), 15);
    let calls = pulls(&w);
    assert_eq!(calls.len(), 1 + 3);
    assert!(calls[1].query.contains("page%5Bsize%5D=7"));
    let out = w.run(&[
        "get",
        "audit-logs",
        "--since",
        "5m",
        "-o",
        "jsonl",
        "--page-size",
        "1000",
    ]);
    assert_ok(&out);
    assert!(
        pulls(&w)
            .last()
            .unwrap()
            .query
            .contains("page%5Bsize%5D=1000")
    );
}

#[test]
fn every_command_form_pulls() {
    let w = world();
    w.sim.seed_audit_logs("us", 6, Duration::from_secs(60));
    for args in [
        vec!["get", "konnect", "audit-logs"],
        vec!["get", "k", "audit-logs"],
        vec!["get", "audit-log"],
        vec!["tail", "--follow=false"],
        vec!["tail", "audit-logs", "--follow=false"],
        vec!["tail", "konnect", "audit-logs", "--follow=false"],
    ] {
        let mut args = args.clone();
        args.extend(["--since", "5m", "-o", "jsonl"]);
        let out = w.run(&args);
        assert_ok(&out);
        assert_eq!(json_lines(&out.stdout).len(), 6, "{args:?}");
    }
    // `get -F` follows from five minutes back, as `tail`.
    let mut get = w.spawn(&[
        "get",
        "audit-logs",
        "-F",
        "-o",
        "jsonl",
        "--poll-interval",
        "150ms",
    ]);
    get.wait_stdout("the catch-up", |out| out.lines().count() >= 6);
    get.interrupt();
    assert!(get.wait_exit(PATIENCE).success());
}

#[test]
fn the_regions_setup_can_be_inspected() {
    let w = world();
    let out = w.run(&["get", "audit-logs", "destinations"]);
    assert_ok(&out);
    assert_eq!(out.stdout, "No Konnect audit-log destinations found.\n");
    let out = w.run(&["get", "audit-logs", "replay-job"]);
    assert_ok(&out);
    assert_eq!(
        out.stdout,
        "Konnect regional audit-log replay job\n  status: unconfigured\n  start at: n/a\n  end at: n/a\n  updated at: n/a\n"
    );

    let mut listener = w.start_listener("listen", &["--name", "inspect-me"]);
    w.sim.trigger("us", 2);
    let id = w.destination_state()["destination_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = w.run(&["get", "audit-logs", "dests"]);
    assert_ok(&out);
    assert!(
        out.stdout
            .starts_with("Konnect audit-log destinations (1)\n\nDestination 1\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "  id: {id}\n  name: inspect-me\n  endpoint: {}\n  log format: json\n",
            listener.endpoint
        )),
        "{}",
        out.stdout
    );
    let out = w.run(&["get", "audit-logs", "dest", "inspect-me", "-o", "json"]);
    assert_ok(&out);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["id"], id.as_str());
    let out = w.run(&["get", "audit-logs", "destination", &id, "-o", "yaml"]);
    assert!(out.stdout.contains("name: inspect-me"), "{}", out.stdout);
    let out = w.run(&["get", "audit-logs", "hook"]);
    assert_ok(&out);
    assert!(out.stdout.contains("  enabled: true\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("  destination id: {id}\n")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  delivery status: active\n  last attempt at: "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  last response code: 202\n"),
        "{}",
        out.stdout
    );
    let out = w.run(&["get", "audit-logs", "webhook", "-o", "json"]);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["status"]["webhook_status"], "active");
    listener.stop_ok();

    let out = w.run(&["get", "audit-logs", "destination", "nope"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr,
        "Error: failed to get audit-log destination: audit-log destination \"nope\" not found\n"
    );
    let out = w.run(&["get", "audit-logs", "webhook", "-o", "jsonl"]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.starts_with(
        "Error: invalid output format \"jsonl\": webhook supports text, json or yaml"
    ));
}

#[test]
fn jq_works_while_following_and_skips_a_record_it_fails_on() {
    let w = world();
    let ts = |s: u64| rfc3339(ago(s));
    let odd = raw_record("authorization", 2, &ts(20))
        .replace("\"trace_id\":\"trace-2\"", "\"trace_id\":42");
    let records = [
        raw_record("authentication", 1, &ts(30)),
        odd,
        raw_record("gateway_access", 3, &ts(10)),
    ];
    let refs: Vec<&str> = records.iter().map(String::as_str).collect();
    w.sim.add_raw_audit_logs("us", &refs).unwrap();

    // Text output while following takes --jq too (upstream: jsonl only).
    let mut tail = w.spawn(&[
        "tail",
        "--jq",
        "{type, n: .future_field.exact}",
        "--poll-interval",
        "150ms",
    ]);
    tail.wait_stdout("three lines", |out| out.lines().count() >= 3);
    tail.interrupt();
    assert!(tail.wait_exit(PATIENCE).success());
    assert_eq!(
        tail.stdout(),
        "{\"n\":9007199254740993,\"type\":\"authentication\"}\n{\"n\":9007199254740993,\"type\":\"authorization\"}\n{\"n\":9007199254740993,\"type\":\"gateway_access\"}\n"
    );

    // A record the filter fails on is skipped with a warning; the follow
    // goes on and prints what comes later.
    let mut tail = w.spawn(&[
        "tail",
        "-o",
        "jsonl",
        "--jq",
        ".trace_id | ascii_downcase",
        "-r",
        "--poll-interval",
        "150ms",
    ]);
    tail.wait_stdout("the two others", |out| out.lines().count() >= 2);
    w.sim
        .add_raw_audit_logs(
            "us",
            &[&raw_record(
                "authentication",
                4,
                &rfc3339(SystemTime::now()),
            )],
        )
        .unwrap();
    tail.wait_stdout("a later record", |out| out.lines().count() >= 3);
    tail.interrupt();
    assert!(tail.wait_exit(PATIENCE).success());
    assert_eq!(tail.stdout(), "trace-1\ntrace-3\ntrace-4\n");
    let stderr = tail.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "skipping non-JSON or invalid jq record for filter \".trace_id | ascii_downcase\": "
        ),
        "{stderr}"
    );
}
