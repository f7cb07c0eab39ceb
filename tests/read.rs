//! Who, what and how much, through the real binary, on every read: Kong's
//! alert conditions as `--alert` rules (webhook JSON, CEF and cps records,
//! pull records; `--file`, `--stored`, `tail --stored`, the pull API and
//! the listener's live tail), and the `--summary` of a query.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::*;
use serde_json::{Value, json};

const AUTH: &str = "Bearer test-secret";

/// RFC 3339 (whole seconds) of `t`.
fn rfc3339(t: SystemTime) -> String {
    format!("{:.0}", jiff::Timestamp::try_from(t).unwrap())
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

fn ok(out: &Output) -> &str {
    assert_eq!(
        out.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    &out.stdout
}

/// One webhook event, written in any of the three formats.
struct Event {
    id: &'static str,
    class: &'static str,
    name: &'static str,
    severity: i64,
    /// Extensions, typed as Konnect's JSON format types them.
    ext: Vec<(&'static str, Value)>,
}

impl Event {
    fn new(id: &'static str, class: &'static str, name: &'static str, severity: i64) -> Event {
        Event {
            id,
            class,
            name,
            severity,
            ext: Vec::new(),
        }
    }

    fn with(mut self, key: &'static str, value: Value) -> Event {
        self.ext.push((key, value));
        self
    }

    /// Konnect's JSON format, at `ts`.
    fn json(&self, ts: &str) -> String {
        let mut v = json!({
            "cef_version": 0,
            "event_class_id": self.class,
            "event_product": "Konnect",
            "event_ts": ts,
            "event_vendor": "KongInc",
            "event_version": "1.0",
            "name": self.name,
            "org_id": "b065b594-6afc-4658-9101-5d9cf3f36b7b",
            "principal_id": "87655c36-8d63-48fe-9a1e-53b28dfbc19b",
            "severity": self.severity,
            "src": "127.0.0.6",
            "trace_id": 6891110586028963295u64,
            "sig": self.id,
        });
        for (k, val) in &self.ext {
            v[*k] = val.clone();
        }
        v.to_string()
    }

    /// cps: the JSON object under `event`.
    fn cps(&self, ts: &str) -> String {
        format!(r#"{{"event":{}}}"#, self.json(ts))
    }

    /// Konnect's CEF line, at `ts`.
    fn cef(&self, ts: &str) -> String {
        let mut ext = vec!["rt=1684196881193".to_owned(), "src=127.0.0.6".to_owned()];
        for (k, val) in &self.ext {
            let text = match val {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            ext.push(format!("{k}={text}"));
        }
        ext.push("org_id=b065b594-6afc-4658-9101-5d9cf3f36b7b".to_owned());
        ext.push("principal_id=87655c36-8d63-48fe-9a1e-53b28dfbc19b".to_owned());
        ext.push("trace_id=6891110586028963295".to_owned());
        ext.push(format!("sig={}", self.id));
        format!(
            "{ts} konghq.com CEF:0|KongInc|Konnect|1.0|{}|{}|{}|{}",
            self.class,
            self.name,
            self.severity,
            ext.join(" ")
        )
    }
}

/// One event per condition Kong lists (and its look-alikes that are no
/// alert), with the rules each matches.
fn events() -> Vec<(Event, &'static [&'static str])> {
    let authn = |id, name, severity, success: &str| {
        Event::new(id, "AUTHENTICATION_TYPE_BASIC", name, severity)
            .with("request", json!("/api/v1/authenticate"))
            .with("success", json!(success))
    };
    let authz = |id, severity, granted: bool| {
        Event::new(id, "konnect", "Authz.portals", severity)
            .with("action", json!("list"))
            .with("granted", json!(granted))
    };
    let access = |id, severity, status: u16| {
        Event::new(id, "KongGateway", "Ingress", severity)
            .with("act", json!("POST"))
            .with("request", json!("/konnect-api/api/control_planes"))
            .with("status", json!(status))
    };
    vec![
        (
            authn("login-ok", "AUTHENTICATION_OUTCOME_SUCCESS", 0, "true"),
            &[],
        ),
        (
            authn("login-locked", "AUTHENTICATION_OUTCOME_LOCKED", 6, "false"),
            &["locked", "failed-login"],
        ),
        (
            authn(
                "login-disabled",
                "AUTHENTICATION_OUTCOME_DISABLED",
                6,
                "false",
            ),
            &["locked", "failed-login"],
        ),
        (
            authn(
                "login-bad-password",
                "AUTHENTICATION_OUTCOME_INVALID_PASSWORD",
                1,
                "false",
            ),
            &["failed-login"],
        ),
        (authz("authz-granted", 1, true), &[]),
        (authz("authz-denied", 6, false), &["denied"]),
        (
            authz("authz-denied-by-kong", 6, false).with("kong_initiated", json!(true)),
            &[],
        ),
        (access("access-200", 1, 200), &[]),
        (access("access-401", 6, 401), &["forbidden"]),
        (access("access-403", 6, 403), &["forbidden"]),
        (access("access-500", 10, 500), &["server-error"]),
        (access("access-404", 1, 404), &[]),
    ]
}

const RULES: [&str; 5] = [
    "locked",
    "failed-login",
    "denied",
    "forbidden",
    "server-error",
];

/// The events in `format`, a second apart, oldest first.
fn lines_of(format: &str) -> Vec<String> {
    events()
        .iter()
        .enumerate()
        .map(|(i, (e, _))| {
            let ts = format!("2026-08-23T14:00:{i:02}Z");
            match format {
                "json" => e.json(&ts),
                "cps" => e.cps(&ts),
                _ => e.cef(&ts),
            }
        })
        .collect()
}

/// The ids the rules in `list` keep, in event order.
fn expected(list: &[&str]) -> Vec<&'static str> {
    events()
        .iter()
        .filter(|(_, rules)| rules.iter().any(|r| list.contains(r)))
        .map(|(e, _)| e.id)
        .collect()
}

/// The `sig` of each printed line (webhook JSON, cps or CEF).
fn ids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| {
            if let Some(sig) = l.rsplit(" sig=").next().filter(|_| !l.starts_with('{')) {
                return sig.to_owned();
            }
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let v = if v.get("event").is_some() {
                &v["event"]
            } else {
                &v
            };
            v["sig"]
                .as_str()
                .or(v["signature"].as_str())
                .unwrap_or("?")
                .to_owned()
        })
        .collect()
}

fn write_file(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    path
}

#[test]
fn each_alert_rule_keeps_its_records_in_every_webhook_format() {
    let w = World::new();
    for format in ["json", "cef", "cps"] {
        let file = write_file(w.dir.path(), &format!("{format}.log"), &lines_of(format));
        let file = file.to_str().unwrap();
        for rule in RULES {
            let out = w.run(&[
                "get",
                "audit-logs",
                "--file",
                file,
                "--limit",
                "0",
                "-o",
                "jsonl",
                "--alert",
                rule,
            ]);
            assert_eq!(ids(ok(&out)), expected(&[rule]), "{format} {rule}");
            assert_eq!(out.stderr, "", "{format} {rule}");
        }
        let all = w.run(&[
            "get",
            "audit-logs",
            "--file",
            file,
            "-o",
            "jsonl",
            "--alert",
            "all",
        ]);
        assert_eq!(ids(ok(&all)), expected(&RULES), "{format} all");
        // A list, and the flag repeated, are the union.
        let two = w.run(&[
            "get",
            "audit-logs",
            "--file",
            file,
            "-o",
            "jsonl",
            "--alert",
            "locked,denied",
            "--alert",
            "server-error",
        ]);
        assert_eq!(
            ids(ok(&two)),
            expected(&["locked", "denied", "server-error"]),
            "{format} list"
        );
        // The records print as stored: CEF stays CEF.
        if format == "cef" {
            assert!(ok(&two).lines().all(|l| l.contains(" CEF:0|")));
        }
        // With the other filters: the window and the type.
        let typed = w.run(&[
            "get",
            "audit-logs",
            "--file",
            file,
            "-o",
            "jsonl",
            "--alert",
            "all",
            "--type",
            "authentication",
            "--end-time",
            "2026-08-23T14:00:02Z",
        ]);
        assert_eq!(ids(ok(&typed)), ["login-locked", "login-disabled"]);
    }
}

#[test]
fn an_unknown_rule_is_refused_with_the_valid_names() {
    let w = World::new();
    let file = write_file(w.dir.path(), "x.log", &lines_of("json"));
    let out = w.run(&[
        "get",
        "audit-logs",
        "--file",
        file.to_str().unwrap(),
        "--alert",
        "locked,brute-force",
    ]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.starts_with(
            "Error: invalid --alert \"brute-force\": the rules are locked, failed-login, denied, forbidden, server-error (or all)"
        ),
        "{}",
        out.stderr
    );
    // The listener refuses it before anything happens in Konnect.
    let out = w.run(&[
        "tail",
        "--endpoint",
        "https://x.tunnel.test/audit-logs",
        "--alert",
        "nope",
    ]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("invalid --alert \"nope\""),
        "{}",
        out.stderr
    );
    assert!(w.snapshot().destinations.is_empty());
    let out = w.run(&[
        "listen",
        "--endpoint",
        "https://x.tunnel.test/audit-logs",
        "--alert",
        "locked",
    ]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("--alert requires --tail"),
        "{}",
        out.stderr
    );
}

#[test]
fn alert_rules_apply_to_stored_events_and_tail_stored() {
    let w = World::new();
    let dir = w.storage_dir("default");
    std::fs::create_dir_all(&dir).unwrap();
    let mut mixed = lines_of("json");
    mixed.extend(lines_of("cef"));
    mixed.extend(lines_of("cps"));
    write_file(&dir, "events.jsonl", &mixed);
    // The summary of the store counts each rule's records.
    let summary = w.run(&["get", "audit-logs", "--stored", "--summary", "-o", "json"]);
    let doc: Value = serde_json::from_str(ok(&summary)).unwrap();
    assert_eq!(doc["records"], 3 * events().len());
    for (i, rule) in RULES.iter().enumerate() {
        assert_eq!(doc["alerts"][i]["rule"], *rule);
        assert_eq!(
            doc["alerts"][i]["records"],
            3 * expected(&[rule]).len(),
            "{rule}"
        );
    }
    for rule in RULES {
        let out = w.run(&[
            "get",
            "audit-logs",
            "--stored",
            "--limit",
            "0",
            "-o",
            "jsonl",
            "--alert",
            rule,
        ]);
        let want: Vec<&str> = expected(&[rule])
            .into_iter()
            .flat_map(|id| [id; 3])
            .collect();
        assert_eq!(ids(ok(&out)), want, "{rule}");
    }
    // The 2 most recent alerts, not the alerts among the 2 most recent.
    let out = w.run(&[
        "get",
        "audit-logs",
        "--stored",
        "--limit",
        "2",
        "-o",
        "jsonl",
        "--alert",
        "denied",
    ]);
    assert_eq!(ids(ok(&out)), ["authz-denied", "authz-denied"]);
    let out = w.run(&[
        "tail",
        "--stored",
        "-n",
        "3",
        "--follow=false",
        "--alert",
        "forbidden",
    ]);
    // In stored order: the CEF 403, then the cps 401 and 403.
    assert_eq!(ids(ok(&out)), ["access-403", "access-401", "access-403"]);
    // The text table of the alerts.
    let out = w.run(&["get", "audit-logs", "--stored", "--alert", "server-error"]);
    let table = ok(&out);
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(
        table
            .lines()
            .skip(1)
            .all(|l| l.contains("gateway_access") && l.contains("500")),
        "{table}"
    );
}

/// A v3 pull record of `kind` with `fields`, signature `id`.
fn pull_record(id: &str, kind: &str, ts: &str, fields: Value) -> String {
    let mut v = json!({
        "type": kind,
        "signature": id,
        "org_id": "org",
        "ts": ts,
        "principal_id": "87655c36-8d63-48fe-9a1e-53b28dfbc19b",
        "trace_id": "trace",
    });
    for (k, val) in fields.as_object().unwrap() {
        v[k] = val.clone();
    }
    v.to_string()
}

#[test]
fn alert_rules_apply_to_pull_records_and_narrow_the_pull_to_their_type() {
    let w = World::new();
    let ts = rfc3339(ago(60));
    let records = [
        pull_record(
            "p-ok",
            "authentication",
            &ts,
            json!({"successful": true, "outcome": "success", "authentication_type": "sso"}),
        ),
        pull_record(
            "p-locked",
            "authentication",
            &ts,
            json!({"successful": false, "outcome": "locked", "authentication_type": "basic"}),
        ),
        pull_record(
            "p-disabled",
            "authentication",
            &ts,
            json!({"successful": false, "outcome": "disabled", "authentication_type": "basic"}),
        ),
        pull_record(
            "p-expired",
            "authentication",
            &ts,
            json!({"successful": false, "outcome": "token_expired", "authentication_type": "pat"}),
        ),
        pull_record(
            "p-granted",
            "authorization",
            &ts,
            json!({"granted": true, "action": "list", "resource": "krn:x", "service": "konnect"}),
        ),
        pull_record(
            "p-denied",
            "authorization",
            &ts,
            json!({"granted": false, "action": "list", "resource": "krn:x", "service": "konnect"}),
        ),
        pull_record(
            "p-200",
            "gateway_access",
            &ts,
            json!({"method": "GET", "uri": "/x", "status_code": 200}),
        ),
        pull_record(
            "p-403",
            "gateway_access",
            &ts,
            json!({"method": "GET", "uri": "/x", "status_code": 403}),
        ),
        pull_record(
            "p-502",
            "gateway_access",
            &ts,
            json!({"method": "GET", "uri": "/x", "status_code": 502}),
        ),
    ];
    let refs: Vec<&str> = records.iter().map(String::as_str).collect();
    w.sim.add_raw_audit_logs("us", &refs).unwrap();
    let pull = |rules: &str| {
        let out = w.run(&[
            "get",
            "audit-logs",
            "--since",
            "1h",
            "-o",
            "jsonl",
            "--alert",
            rules,
        ]);
        let mut got = ids(ok(&out));
        got.sort();
        assert_eq!(out.stderr, "");
        got
    };
    assert_eq!(pull("locked"), ["p-disabled", "p-locked"]);
    assert_eq!(
        pull("failed-login"),
        ["p-disabled", "p-expired", "p-locked"]
    );
    assert_eq!(pull("denied"), ["p-denied"]);
    assert_eq!(pull("forbidden"), ["p-403"]);
    assert_eq!(pull("server-error"), ["p-502"]);
    assert_eq!(
        pull("locked,server-error"),
        ["p-502", "p-disabled", "p-locked"]
    );
    // Rules of one type ask Konnect for that type only.
    let types: Vec<Option<String>> = w
        .snapshot()
        .requests
        .iter()
        .filter(|r| r.path == "/v3/audit-logs")
        .map(|r| {
            r.query
                .split('&')
                .find_map(|p| p.strip_prefix("filter%5Btype%5D=").map(str::to_owned))
        })
        .collect();
    assert!(types.contains(&Some("authentication".into())), "{types:?}");
    assert!(types.contains(&Some("gateway_access".into())), "{types:?}");
    assert!(types.contains(&None), "{types:?}");
    // Without a window: the most recent alerts.
    let out = w.run(&[
        "get",
        "audit-logs",
        "--limit",
        "1",
        "-o",
        "jsonl",
        "--alert",
        "denied",
    ]);
    assert_eq!(ids(ok(&out)), ["p-denied"]);
}

/// Posts `lines` to the listener as Konnect does (one gzip'd batch).
fn deliver(l: &Listener, lines: &[String]) {
    let body = lines.join("\n") + "\n";
    let status = post(
        l.addr,
        "/audit-logs",
        &[
            ("Authorization", AUTH),
            ("Content-Encoding", "application/gzip"),
        ],
        &gzip(body.as_bytes()),
    );
    assert_eq!(status, 202);
}

#[test]
fn the_listeners_live_tail_prints_only_the_alerts_and_stores_everything() {
    let w = World::new();
    let mut l = w.start_listener("tail", &["--alert", "denied,server-error"]);
    let mut body = lines_of("json");
    body.extend(lines_of("cef"));
    body.extend(lines_of("cps"));
    deliver(&l, &body);
    let want: Vec<&str> = ["json", "cef", "cps"]
        .iter()
        .flat_map(|_| expected(&["denied", "server-error"]))
        .collect();
    l.proc
        .wait_stdout("the alerts", |out| out.lines().count() >= want.len());
    let out = l.stop_ok();
    assert_eq!(ids(&out), want);
    // Every record was stored.
    assert_eq!(read_lines(&w.events_file()).len(), 3 * events().len());
}

#[test]
fn principal_keeps_one_principals_records_by_id_or_konnects_name() {
    let w = World::new();
    let alice = "87655c36-8d63-48fe-9a1e-53b28dfbc19b";
    let bob = "eb999f01-5976-4f4b-9fbc-dd5d514bd675";
    let mut records = lines_of("json");
    let bobs = lines_of("cef")
        .into_iter()
        .map(|l| l.replace(alice, bob))
        .collect::<Vec<_>>();
    records.extend(bobs);
    records.push(
        json!({"event_class_id": "konnect", "event_ts": "2026-08-23T15:00:00Z", "name": "Authz.x",
               "principal_id": "someone", "principal_name": "Carol Jones", "sig": "carol"})
        .to_string(),
    );
    let file = write_file(w.dir.path(), "mixed.log", &records);
    let file = file.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "get",
            "audit-logs",
            "--file",
            file,
            "--limit",
            "0",
            "-o",
            "jsonl",
        ];
        args.extend_from_slice(extra);
        let out = w.run(&args);
        ok(&out).to_owned()
    };
    let of_bob = run(&["--principal", &bob.to_uppercase()]);
    assert_eq!(of_bob.lines().count(), events().len());
    assert!(
        of_bob
            .lines()
            .all(|l| l.contains(bob) && l.contains(" CEF:0|"))
    );
    let both = run(&["--principal", alice, "--principal", bob]);
    assert_eq!(both.lines().count(), 2 * events().len());
    // Konnect's principal_name, whatever the case.
    assert_eq!(ids(&run(&["--principal", "carol jones"])), ["carol"]);
    // With --alert: both must hold.
    assert_eq!(
        ids(&run(&["--principal", bob, "--alert", "denied"])),
        ["authz-denied"]
    );
    assert_eq!(run(&["--principal", "nobody"]), "");
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/summary")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        actual,
        expected,
        "{} differs (UPDATE_GOLDEN=1 cargo test --test read rewrites it)",
        path.display()
    );
}

/// Six hours of the events above, more each hour, from two principals
/// and the cps, CEF and JSON formats.
fn six_hours() -> Vec<String> {
    let alice = "87655c36-8d63-48fe-9a1e-53b28dfbc19b";
    let bob = "eb999f01-5976-4f4b-9fbc-dd5d514bd675";
    let formats = ["json", "cef", "cps"];
    let all = events();
    let mut out = Vec::new();
    for hour in 0..6u32 {
        for i in 0..(hour * 4 + 1) {
            let (event, _) = &all[(i as usize * 5 + hour as usize) % all.len()];
            let ts = format!("2026-08-23T{:02}:{:02}:00Z", 10 + hour, i % 60);
            let line = match formats[i as usize % 3] {
                "json" => event.json(&ts),
                "cef" => event.cef(&ts),
                _ => event.cps(&ts),
            };
            out.push(if i % 4 == 3 {
                line.replace(alice, bob)
            } else {
                line
            });
        }
    }
    out
}

#[test]
fn the_summary_counts_a_window_and_charts_it_to_the_terminals_width() {
    let w = World::new();
    let file = write_file(w.dir.path(), "six-hours.log", &six_hours());
    let summary = |columns: &str, extra: &[&str]| {
        let mut cmd = w.kongctl();
        cmd.env("COLUMNS", columns).args([
            "get",
            "audit-logs",
            "--file",
            file.to_str().unwrap(),
            "--start-time",
            "2026-08-23T09:00:00Z",
            "--end-time",
            "2026-08-23T16:59:59Z",
            "--summary",
        ]);
        cmd.args(extra);
        let out = Running::run_command(cmd);
        ok(&out).to_owned()
    };
    let narrow = summary("60", &[]);
    golden("six-hours-60.txt", &narrow);
    let wide = summary("100", &[]);
    golden("six-hours-100.txt", &wide);
    for (text, width) in [(&narrow, 60), (&wide, 100)] {
        let chart: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("EVENTS PER HOUR"))
            .skip(1)
            .collect();
        // 09:00 to 16:00, the busiest hour's bar filling the width.
        assert_eq!(chart.len(), 8, "{text}");
        assert!(chart.iter().all(|l| l.chars().count() == width), "{text}");
        assert!(chart[6].contains(&"█".repeat(width - 24)), "{text}");
    }
    // The same numbers for scripts.
    let doc: Value = serde_json::from_str(&summary("100", &["-o", "json"])).unwrap();
    let records: u64 = (0..6).map(|h| h * 4 + 1).sum();
    assert_eq!(doc["records"], records);
    assert_eq!(doc["buckets"]["unit"], "hour");
    let counts: Vec<u64> = doc["buckets"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["records"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [0, 1, 5, 9, 13, 17, 21, 0]);
    let alerts: u64 = doc["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["records"].as_u64().unwrap())
        .sum();
    assert!(alerts > 0);
    let yaml: Value = serde_yaml_ng::from_str(&summary("100", &["-o", "yaml"])).expect("YAML");
    assert_eq!(yaml["records"], records);
    // With a filter: the summary of the alerts.
    let doc: Value =
        serde_json::from_str(&summary("100", &["-o", "json", "--alert", "denied"])).unwrap();
    assert_eq!(doc["types"][0]["type"], "authorization");
    assert_eq!(doc["types"][0]["outcomes"][0]["outcome"], "denied");
    assert_eq!(doc["records"], doc["alerts"][2]["records"]);
}

#[test]
fn summary_flags_that_make_no_sense_are_refused() {
    let w = World::new();
    for (args, message) in [
        (
            &["--summary", "--follow"][..],
            "--summary cannot be used with --follow",
        ),
        (
            &["--summary", "-o", "jsonl"][..],
            "--summary supports --output text, json or yaml",
        ),
        (
            &["--summary", "-o", "json", "--jq", "."][..],
            "--summary cannot be combined with --jq",
        ),
        (
            &["--summary", "--columns", "A=.a"][..],
            "--summary cannot be combined with --columns",
        ),
    ] {
        let mut all = vec!["get", "audit-logs"];
        all.extend_from_slice(args);
        let out = w.run(&all);
        assert_eq!(out.code(), Some(1), "{args:?}");
        assert!(
            out.stderr.starts_with(&format!("Error: {message}")),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(w.calls("GET", "/v3/audit-logs"), 0);
}

// ---------------------------------------------------------------- names

/// The principals the emulator knows, and one it does not.
struct People {
    ana: String,
    bot: String,
    dev: String,
    portal: String,
    ghost: &'static str,
}

fn people(w: &World) -> People {
    let ana = w.sim.add_user("ana@example.test", "Ana Admin").unwrap().id;
    let bot = w.sim.add_system_account("ci-bot", "CI").unwrap().id;
    let portal = w.sim.add_portal("us", "dev-portal").unwrap().id;
    let dev = w
        .sim
        .add_portal_developer(&portal, "jane@example.test", "Jane Dev")
        .unwrap()
        .id;
    People {
        ana,
        bot,
        dev,
        portal,
        ghost: "0b4f5a3e-1111-4222-8333-444455556666",
    }
}

/// One record of each principal (JSON, CEF, cps; a portal developer's
/// with its portal; one with Konnect's own principal_name; one whose id is
/// no UUID), a minute apart.
fn named_records(p: &People) -> Vec<String> {
    let authz = |id: &'static str, who: &str, minute: u32| {
        Event::new(id, "konnect", "Authz.portals", 1)
            .with("action", json!("list"))
            .with("granted", json!(true))
            .json(&format!("2026-08-23T14:{minute:02}:00Z"))
            .replace("87655c36-8d63-48fe-9a1e-53b28dfbc19b", who)
    };
    let dev = Event::new(
        "by-dev",
        "AUTHENTICATION_TYPE_BASIC",
        "AUTHENTICATION_OUTCOME_SUCCESS",
        0,
    )
    .with("success", json!("true"))
    .with("portal_id", json!(p.portal))
    .cef("2026-08-23T14:02:00Z")
    .replace("87655c36-8d63-48fe-9a1e-53b28dfbc19b", &p.dev);
    let bot = Event::new("by-bot", "KongGateway", "Ingress", 1)
        .with("act", json!("GET"))
        .with("request", json!("/v2/x"))
        .with("status", json!(200))
        .cps("2026-08-23T14:01:00Z")
        .replace("87655c36-8d63-48fe-9a1e-53b28dfbc19b", &p.bot);
    let sent = authz("by-konnect-name", &p.ana, 4).replace(
        r#""principal_id""#,
        r#""principal_name":"Ana (from Konnect)","principal_id""#,
    );
    vec![
        authz("by-ana", &p.ana, 0),
        bot,
        dev,
        authz("by-ghost", p.ghost, 3),
        sent,
        authz("by-non-uuid", "user-42", 5),
    ]
}

fn identity_calls(w: &World) -> [u64; 3] {
    [
        w.sim.request_count("GET", "/v3/users/{userId}"),
        w.sim
            .request_count("GET", "/v3/system-accounts/{accountId}"),
        w.sim
            .request_count("GET", "/v3/portals/{portalId}/developers/{developerId}"),
    ]
}

fn principal_column(table: &str) -> Vec<String> {
    // TIMESTAMP  TYPE  PRINCIPAL …: the third column, cut at two spaces.
    let header = table.lines().next().unwrap();
    let start = header.find("PRINCIPAL").unwrap();
    let end = header.find("ACTION").unwrap();
    table
        .lines()
        .skip(1)
        .map(|l| {
            l.chars()
                .skip(start)
                .take(end - start)
                .collect::<String>()
                .trim()
                .to_owned()
        })
        .collect()
}

/// Whether a table cell shows `full` (whole, or cut with `…` to fit the
/// 120 columns a table gets when stdout is no terminal).
fn shows(cell: &str, full: &str) -> bool {
    match cell.strip_suffix('…') {
        Some(cut) => full.starts_with(cut),
        None => cell == full,
    }
}

fn assert_cells(cells: &[String], want: &[&str]) {
    assert_eq!(cells.len(), want.len(), "{cells:?}");
    for (cell, full) in cells.iter().zip(want) {
        assert!(
            shows(cell, full),
            "{cell:?} does not show {full:?}: {cells:?}"
        );
    }
}

#[test]
fn tables_show_names_looked_up_once_and_cached_and_json_stays_as_sent() {
    let w = World::new();
    let p = people(&w);
    let records = named_records(&p);
    let file = write_file(w.dir.path(), "named.log", &records);
    let file = file.to_str().unwrap();
    let table = w.run(&["get", "audit-logs", "--file", file, "--limit", "0"]);
    assert_cells(
        &principal_column(ok(&table)),
        &[
            "Ana Admin <ana@example.test>",
            "ci-bot",
            "jane@example.test",
            p.ghost,
            "Ana (from Konnect)",
            "user-42",
        ],
    );
    // One warning, for the id Konnect does not know.
    assert_eq!(
        table.stderr,
        format!(
            "warning: principal {} is shown by its id: Konnect has no such principal\n",
            p.ghost
        )
    );
    // Lookups: Ana (user), the bot (user 404, then system account), Jane
    // (developer of her portal), the ghost (user, system account): and
    // nothing for a record Konnect named or an id that is no UUID.
    assert_eq!(identity_calls(&w), [3, 2, 1]);
    assert!(w.sim.contract_violations().is_empty());
    let cache = w.storage_dir("default").join("principals.json");
    let mode = std::fs::metadata(&cache).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    // A second run asks Konnect nothing (the ghost is cached for an hour).
    let again = w.run(&["get", "audit-logs", "--file", file, "--limit", "0"]);
    assert_eq!(ok(&again), ok(&table));
    assert_eq!(again.stderr, table.stderr);
    assert_eq!(identity_calls(&w), [3, 2, 1]);

    // Without --resolve, JSON records are exactly as sent.
    let jsonl = w.run(&[
        "get",
        "audit-logs",
        "--file",
        file,
        "--limit",
        "0",
        "-o",
        "jsonl",
    ]);
    let sent: String = records.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(ok(&jsonl), sent);
    assert_eq!(jsonl.stderr, "");
    let json = w.run(&[
        "get",
        "audit-logs",
        "--file",
        file,
        "--limit",
        "0",
        "-o",
        "json",
        "--jq",
        "[.data[].principal_name]",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(ok(&json)).unwrap(),
        json!([null, null, null, null, "Ana (from Konnect)", null])
    );

    // --resolve=false: ids, no lookup, no cache needed.
    std::fs::remove_file(&cache).unwrap();
    let ids = w.run(&[
        "get",
        "audit-logs",
        "--file",
        file,
        "--limit",
        "0",
        "--resolve=false",
    ]);
    assert!(shows(&principal_column(ok(&ids))[0], &p.ana));
    assert_eq!(ids.stderr, "");
    assert_eq!(identity_calls(&w), [3, 2, 1]);
    assert!(!cache.exists());
}

#[test]
fn resolve_adds_principal_name_to_json_records_and_never_replaces_konnects() {
    let w = World::new();
    let p = people(&w);
    let records = named_records(&p);
    let file = write_file(w.dir.path(), "named.log", &records);
    let file = file.to_str().unwrap();
    let out = w.run(&[
        "get",
        "audit-logs",
        "--file",
        file,
        "--limit",
        "0",
        "-o",
        "jsonl",
        "--resolve",
    ]);
    let lines: Vec<&str> = ok(&out).lines().collect();
    assert_eq!(lines.len(), records.len());
    // JSON: the record's bytes, the name added before the closing brace.
    assert_eq!(
        lines[0],
        format!(
            r#"{},"principal_name":"Ana Admin <ana@example.test>"}}"#,
            records[0].strip_suffix('}').unwrap()
        )
    );
    // cps: inside the event.
    let cps: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(cps["event"]["principal_name"], "ci-bot");
    // CEF: its JSON form.
    let cef: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(cef["principal_name"], "jane@example.test");
    assert_eq!(cef["event_product"], "Konnect");
    assert_eq!(cef["portal_id"], json!(p.portal));
    // Unknown and non-UUID ids: as sent; Konnect's name: kept.
    assert_eq!(lines[3], records[3]);
    assert_eq!(lines[4], records[4]);
    assert_eq!(lines[5], records[5]);
    // --jq sees it, and -o json / yaml carry it.
    let jq = w.run(&[
        "get",
        "audit-logs",
        "--file",
        file,
        "--limit",
        "0",
        "-o",
        "jsonl",
        "--resolve",
        "--jq",
        ".principal_name // .event.principal_name",
    ]);
    assert_eq!(
        ok(&jq),
        // (`<` and `>` escaped as gojq's encoder does)
        "\"Ana Admin \\u003cana@example.test\\u003e\"\n\"ci-bot\"\n\"jane@example.test\"\nnull\n\"Ana (from Konnect)\"\nnull\n"
    );
    let yaml = w.run(&[
        "get",
        "audit-logs",
        "--file",
        file,
        "--limit",
        "0",
        "-o",
        "yaml",
        "--resolve",
    ]);
    let doc: Value = serde_yaml_ng::from_str(ok(&yaml)).unwrap();
    assert_eq!(
        doc["data"][0]["principal_name"],
        "Ana Admin <ana@example.test>"
    );
    assert_eq!(doc["data"][4]["principal_name"], "Ana (from Konnect)");
    assert_eq!(doc["metadata"]["count"], 6);
}

#[test]
fn lookups_that_fail_never_fail_the_command() {
    let w = World::new();
    let p = people(&w);
    let records = named_records(&p);
    let file = write_file(w.dir.path(), "named.log", &records);
    let file = file.to_str().unwrap();
    let table = || {
        w.run(&[
            "get",
            "audit-logs",
            "--file",
            file,
            "--limit",
            "0",
            "--resolve=true",
            "-o",
            "jsonl",
        ])
    };

    // 429 with Retry-After: waited out, then named.
    w.sim.inject_fault(konnect_sim::Fault {
        method: None,
        path: "/v3/users/*".into(),
        count: 1,
        action: konnect_sim::FaultAction::Status {
            status: 429,
            retry_after: Some(1),
        },
    });
    let started = std::time::Instant::now();
    let out = table();
    assert!(
        ok(&out).lines().next().unwrap().contains("Ana Admin"),
        "{}",
        out.stdout
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    let cache = w.storage_dir("default").join("principals.json");
    std::fs::remove_file(&cache).unwrap();

    // 5xx on every try: the ids print as sent, one warning each, exit 0.
    w.sim
        .inject_fault(konnect_sim::Fault::status(None, "/v3/users/*", 100, 503));
    let out = table();
    assert_eq!(ok(&out).lines().next().unwrap(), records[0]);
    assert!(
        out.stderr.contains(&format!(
            "warning: principal {} is shown by its id: looking it up failed",
            p.ana
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr
            .matches(&format!("warning: principal {}", p.ana))
            .count(),
        1,
        "{}",
        out.stderr
    );
    // Jane is a developer: her portal answered.
    assert!(ok(&out).contains("jane@example.test"));
    w.sim.clear_faults();
    // Nothing that failed was cached: the next run names Ana.
    let out = table();
    assert!(ok(&out).lines().next().unwrap().contains("Ana Admin"));
    std::fs::remove_file(&cache).unwrap();

    // 403: one warning, and no further lookups.
    w.sim
        .inject_fault(konnect_sim::Fault::status(None, "/v3/users/*", 100, 403));
    w.sim
        .inject_fault(konnect_sim::Fault::status(None, "/v3/portals/*", 100, 403));
    let before = identity_calls(&w);
    let out = table();
    assert_eq!(ok(&out).lines().next().unwrap(), records[0]);
    assert_eq!(out.stderr.matches("warning:").count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("not looked up any further"),
        "{}",
        out.stderr
    );
    let after = identity_calls(&w);
    assert!(after.iter().zip(before).map(|(a, b)| a - b).sum::<u64>() <= 3 + 1);

    // 404 and no token at all: ids, and the command works.
    w.sim.clear_faults();
    let mut cmd = w.kongctl();
    cmd.env_remove("KONGCTL_DEFAULT_KONNECT_PAT").args([
        "get",
        "audit-logs",
        "--file",
        file,
        "--limit",
        "0",
    ]);
    let out = Running::run_command(cmd);
    assert!(shows(&principal_column(ok(&out))[0], &p.ana));
    assert_eq!(out.stderr, "");
}

#[test]
fn principal_takes_an_email_a_name_or_a_cached_developer() {
    let w = World::new();
    let p = people(&w);
    let records = named_records(&p);
    let file = write_file(w.dir.path(), "named.log", &records);
    let file = file.to_str().unwrap();
    let only = |who: &str| {
        let out = w.run(&[
            "get",
            "audit-logs",
            "--file",
            file,
            "--limit",
            "0",
            "-o",
            "jsonl",
            "--principal",
            who,
        ]);
        ids(ok(&out))
    };
    assert_eq!(only("ana@example.test"), ["by-ana", "by-konnect-name"]);
    assert_eq!(only("ANA ADMIN"), ["by-ana", "by-konnect-name"]);
    assert_eq!(only("ci-bot"), ["by-bot"]);
    assert_eq!(only(&p.bot), ["by-bot"]);
    // Konnect's own principal_name.
    assert_eq!(only("Ana (from Konnect)"), ["by-konnect-name"]);
    // A developer is known once a lookup has cached her.
    let out = w.run(&[
        "get",
        "audit-logs",
        "--file",
        file,
        "--limit",
        "0",
        "--principal",
        "jane@example.test",
        "-o",
        "jsonl",
    ]);
    assert_eq!(ids(ok(&out)), Vec::<String>::new());
    assert!(
        out.stderr.contains("--principal \"jane@example.test\""),
        "{}",
        out.stderr
    );
    ok(&w.run(&["get", "audit-logs", "--file", file, "--limit", "0"]));
    assert_eq!(only("jane@example.test"), ["by-dev"]);
    // Users are asked for by email with the spec's filter.
    let lists: Vec<String> = w
        .snapshot()
        .requests
        .iter()
        .filter(|r| r.path == "/v3/users")
        .map(|r| r.query.clone())
        .collect();
    assert!(
        lists
            .iter()
            .any(|q| q.contains("filter%5Bemail%5D%5Beq%5D=ana%40example.test")),
        "{lists:?}"
    );
    assert!(
        w.sim.contract_violations().is_empty(),
        "{:?}",
        w.sim.contract_violations()
    );
}

#[test]
fn pulls_tails_and_summaries_name_their_principals() {
    let w = World::new();
    let p = people(&w);
    w.sim.seed_audit_logs("us", 40, Duration::from_secs(600));
    let known = ["Ana Admin <ana@example.test>", "ci-bot"];
    let table = w.run(&["get", "audit-logs", "--since", "1h"]);
    let column = principal_column(ok(&table));
    assert_eq!(column.len(), 40);
    assert!(
        column.iter().all(|c| known.iter().any(|k| shows(c, k))),
        "{column:?}"
    );
    assert_eq!(table.stderr, "");
    let calls = identity_calls(&w);
    assert!(calls[0] <= 2 && calls[1] <= 1, "{calls:?}");
    // --resolve on the pull's jsonl: each record named, nothing else changed.
    let plain = w.run(&["get", "audit-logs", "--since", "1h", "-o", "jsonl"]);
    let named = w.run(&[
        "get",
        "audit-logs",
        "--since",
        "1h",
        "-o",
        "jsonl",
        "--resolve",
    ]);
    for (a, b) in ok(&plain).lines().zip(ok(&named).lines()) {
        let v: Value = serde_json::from_str(b).unwrap();
        let name = v["principal_name"].as_str().unwrap();
        assert!(known.contains(&name), "{b}");
        assert_eq!(
            b,
            format!(
                "{},\"principal_name\":{}}}",
                a.strip_suffix('}').unwrap(),
                serde_json::to_string(name).unwrap()
            )
        );
    }
    // No more lookups: the cache had them.
    assert_eq!(identity_calls(&w), calls);
    // --principal on a pull, by email.
    let anas = w.run(&[
        "get",
        "audit-logs",
        "--since",
        "1h",
        "-o",
        "jsonl",
        "--principal",
        "ana@example.test",
    ]);
    assert!(ok(&anas).lines().count() > 0);
    assert!(ok(&anas).lines().all(|l| l.contains(&p.ana)));
    // The summary's top principals, named.
    let summary = w.run(&[
        "get",
        "audit-logs",
        "--since",
        "1h",
        "--summary",
        "-o",
        "json",
    ]);
    let doc: Value = serde_json::from_str(ok(&summary)).unwrap();
    let names: Vec<&str> = doc["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{doc}");
    assert!(names.iter().all(|n| known.contains(n)), "{names:?}");
    let text = w.run(&["get", "audit-logs", "--since", "1h", "--summary"]);
    assert!(
        ok(&text).contains("Ana Admin <ana@example.test>"),
        "{}",
        text.stdout
    );
    // tail --stored names rows too.
    let dir = w.storage_dir("default");
    std::fs::create_dir_all(&dir).unwrap();
    write_file(&dir, "events.jsonl", &named_records(&p)[..3]);
    let rows = w.run(&["tail", "--stored", "--follow=false", "-o", "text"]);
    assert_cells(
        &principal_column(ok(&rows)),
        &[
            "Ana Admin <ana@example.test>",
            "ci-bot",
            "jane@example.test",
        ],
    );
}

#[test]
fn the_listeners_live_tail_names_records_with_resolve_and_filters_by_email() {
    let w = World::new();
    let p = people(&w);
    let mut l = w.start_listener(
        "tail",
        &[
            "--resolve",
            "--principal",
            "ana@example.test",
            "--principal",
            "ci-bot",
        ],
    );
    let records = named_records(&p);
    deliver(&l, &records);
    l.proc
        .wait_stdout("three records", |out| out.lines().count() >= 3);
    let out = l.stop_ok();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0]["principal_name"], "Ana Admin <ana@example.test>");
    assert_eq!(lines[1]["event"]["principal_name"], "ci-bot");
    assert_eq!(lines[2]["principal_name"], "Ana (from Konnect)");
    // Stored exactly as received.
    assert_eq!(read_lines(&w.events_file()), records);
}

#[test]
fn lookups_run_several_at_a_time() {
    let w = World::new();
    let ids: Vec<String> = (0..8)
        .map(|i| {
            w.sim
                .add_user(&format!("user{i}@example.test"), &format!("User {i}"))
                .unwrap()
                .id
        })
        .collect();
    let records: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            Event::new("r", "konnect", "Authz.portals", 1)
                .json(&format!("2026-08-23T14:00:{i:02}Z"))
                .replace("87655c36-8d63-48fe-9a1e-53b28dfbc19b", id)
        })
        .collect();
    let file = write_file(w.dir.path(), "eight.log", &records);
    // Each lookup takes 1.5 s: one after the other, 12 s.
    w.sim.inject_fault(konnect_sim::Fault {
        method: None,
        path: "/v3/users/*".into(),
        count: 8,
        action: konnect_sim::FaultAction::Delay(Duration::from_millis(1500)),
    });
    let started = std::time::Instant::now();
    let out = w.run(&[
        "get",
        "audit-logs",
        "--file",
        file.to_str().unwrap(),
        "-o",
        "jsonl",
        "--resolve",
    ]);
    let elapsed = started.elapsed();
    let names: Vec<String> = ok(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["principal_name"].to_string())
        .collect();
    assert_eq!(names.len(), 8);
    assert!(
        names.iter().all(|n| n.contains("@example.test")),
        "{names:?}"
    );
    assert_eq!(w.sim.request_count("GET", "/v3/users/{userId}"), 8);
    assert!(
        elapsed < Duration::from_secs(8),
        "{elapsed:?}: not concurrent"
    );
}
