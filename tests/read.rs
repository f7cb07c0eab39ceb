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

#[test]
fn the_listeners_live_tail_prints_only_the_alerts_and_stores_everything() {
    let w = World::new();
    let mut l = w.start_listener("tail", &["--alert", "denied,server-error"]);
    let mut body = lines_of("json");
    body.extend(lines_of("cef"));
    body.extend(lines_of("cps"));
    let body = body.join("\n") + "\n";
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
