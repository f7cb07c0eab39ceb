//! `kongctl listen` and `kongctl tail` end to end: the real binary against
//! the Konnect emulator, which delivers through its tunnel to the listener
//! on 127.0.0.1:0.

mod common;

use std::time::Duration;

use common::*;
use konnect_sim::{Fault, FaultAction};

#[test]
fn listen_stores_every_format_byte_exact_and_cleans_up() {
    for format in ["json", "cef", "cps"] {
        let w = World::new();
        let mut l = w.start_listener("listen", &["--log-format", format]);
        let banner = l
            .proc
            .wait_stdout("banner", |o| o.contains("Press Ctrl+C to stop."));
        assert!(
            banner.starts_with("Konnect Audit-Log Listener Started\n\nDestination\n"),
            "{banner}"
        );
        assert!(
            banner.contains(&format!("  log format: {format}\n")),
            "{banner}"
        );
        assert!(
            banner.contains(&format!("  endpoint: {}\n", l.endpoint)),
            "{banner}"
        );

        let s = w.snapshot();
        assert_eq!(s.destinations.len(), 1);
        let d = &s.destinations[0];
        assert_eq!(d.log_format, format);
        assert!(d.authorization_set);
        assert!(s.webhooks["us"].enabled);
        assert_eq!(
            s.webhooks["us"].destination_id.as_deref(),
            Some(d.id.as_str())
        );

        let report = w.sim.trigger("us", 120);
        assert_eq!(report.deliveries.len(), 3, "{report:?}");
        assert!(report.all_delivered(), "{report:?}");
        let delivered = w.delivered_records();
        assert_eq!(delivered.len(), 120);
        assert_eq!(
            read_lines(&w.events_file()),
            delivered,
            "events.jsonl is byte-exact and in order"
        );

        let id = d.id.clone();
        let out = l.stop_ok();
        assert!(
            out.ends_with(&format!(
                "\nListener stopped. Deleted audit-log destination: {id}\n"
            )),
            "{out}"
        );
        w.assert_konnect_clean();
        let dest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(w.storage_dir("default").join("destination.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(dest["status"], "deleted");
        assert_eq!(dest["destination_id"], id.as_str());
        let listener: serde_json::Value = serde_json::from_slice(
            &std::fs::read(w.storage_dir("default").join("listener.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(listener["records_received"], 120);
        assert_eq!(listener["running"], false);
    }
}

#[test]
fn tail_prints_records_and_jq_results_with_exact_big_integers() {
    let w = World::new();
    let mut l = w.start_listener("tail", &["--jq", "{name, trace_id, sev: .severity}"]);
    w.sim.trigger("us", 40);
    let delivered = w.delivered_records();
    assert_eq!(delivered.len(), 40);
    let out = l
        .proc
        .wait_stdout("40 filtered records", |o| o.lines().count() >= 40);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 40, "{out}");
    let mut saw_big = false;
    for (line, record) in lines.iter().zip(&delivered) {
        // The trace_id digits must survive untouched, even above 2^53.
        let digits = record
            .split("\"trace_id\":")
            .nth(1)
            .expect("json record has trace_id")
            .split([',', '}'])
            .next()
            .unwrap()
            .trim();
        assert!(
            line.contains(&format!("\"trace_id\":{digits}")),
            "{line} vs {record}"
        );
        if digits.parse::<u64>().unwrap() > (1u64 << 53) {
            saw_big = true;
        }
        assert!(
            line.starts_with("{\"name\":"),
            "keys are sorted like gojq: {line}"
        );
    }
    assert!(saw_big, "the emulator sends trace ids above 2^53");
    assert_eq!(read_lines(&w.events_file()), delivered);
    l.stop_ok();
    assert_eq!(
        l.proc.stdout().lines().count(),
        40,
        "only records on stdout"
    );
    w.assert_konnect_clean();
}

#[test]
fn tail_without_jq_prints_raw_records_and_skips_nothing() {
    let w = World::new();
    let mut l = w.start_listener("tail", &["--log-format", "cef"]);
    w.sim.trigger("us", 10);
    let delivered = w.delivered_records();
    let out = l
        .proc
        .wait_stdout("10 records", |o| o.lines().count() >= 10);
    assert_eq!(
        out.lines().map(str::to_string).collect::<Vec<_>>(),
        delivered
    );
    l.stop_ok();
    w.assert_konnect_clean();
}

#[test]
fn tail_grep_prints_only_the_records_whose_bytes_match_then_jq() {
    let w = World::new();
    let mut l = w.start_listener("tail", &["--grep", "(?i)AUTHZ\\.", "--jq", ".name"]);
    w.sim.trigger("us", 40);
    let delivered = w.delivered_records();
    assert_eq!(delivered.len(), 40);
    let re = regex::bytes::Regex::new("(?i)AUTHZ\\.").unwrap();
    let names: Vec<String> = delivered
        .iter()
        .filter(|r| re.is_match(r.as_bytes()))
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(r).unwrap();
            v["name"].to_string()
        })
        .collect();
    assert!(!names.is_empty() && names.len() < 40, "{names:?}");
    let out = l
        .proc
        .wait_stdout("the matching records", |o| o.lines().count() >= names.len());
    assert_eq!(out.lines().collect::<Vec<_>>(), names);
    // Every record is stored, whatever is printed.
    assert_eq!(read_lines(&w.events_file()), delivered);
    l.stop_ok();
    assert_eq!(l.proc.stdout().lines().count(), names.len());
    w.assert_konnect_clean();
}

#[test]
fn tail_jq_skips_non_json_records_with_a_warning() {
    let w = World::new();
    let mut l = w.start_listener("tail", &["--jq", ".name"]);
    let code = post(
        l.addr,
        "/audit-logs",
        &[("Authorization", "Bearer test-secret")],
        b"not json\n{\"name\":\"ok\"}\n",
    );
    assert_eq!(code, 202);
    let out = l.proc.wait_stdout("one result", |o| o.contains("\"ok\""));
    assert_eq!(out, "\"ok\"\n");
    l.stop_ok();
    assert!(
        l.proc.stderr().contains(
            "skipping non-JSON or invalid jq record for filter \".name\": record is not valid JSON"
        ),
        "{}",
        l.proc.stderr()
    );
    assert_eq!(
        read_lines(&w.events_file()),
        vec!["not json", "{\"name\":\"ok\"}"]
    );
}

#[test]
fn tail_ends_with_cleanup_when_stdout_closes() {
    let w = World::new();
    let host = w.tunnel_host();
    let endpoint = format!("https://{host}/audit-logs");
    let mut cmd = w.kongctl();
    cmd.args([
        "tail",
        "--endpoint",
        &endpoint,
        "--listen-address",
        "127.0.0.1:0",
        "--authorization",
        "Bearer x",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut proc_guard = Running::spawn_guard(child);
    let state = proc_guard.wait_for_listener_state(&w.storage_dir("default"));
    w.sim.add_tunnel(
        &host,
        state["listen_address"].as_str().unwrap().parse().unwrap(),
    );
    drop(stdout); // like `| head` exiting
    w.sim.trigger("us", 5);
    let status = proc_guard.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?} {}", proc_guard.stderr());
    w.assert_konnect_clean();
}

#[test]
fn invalid_jq_fails_before_any_konnect_call() {
    let w = World::new();
    let out = w.run(&[
        "tail",
        "--endpoint",
        "https://h.test/a",
        "--jq",
        ".records[",
    ]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .starts_with("Error: invalid tail configuration: invalid jq expression: "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .ends_with("Run 'kongctl tail --help' for usage\n"),
        "{}",
        out.stderr
    );
    assert!(w.snapshot().requests.is_empty());
}

#[test]
fn usage_errors_match_the_original() {
    let w = World::new();
    for (args, msg) in [
        (
            &["listen", "--endpoint", "https://h.test/a", "--jq", "."][..],
            "--jq requires --tail",
        ),
        (
            &["listen", "--endpoint", "https://h.test/a", "-d", "--tail"],
            "--detach is not supported with --tail",
        ),
        (&["listen"], "provide either --endpoint or --public-url"),
        (
            &[
                "listen",
                "audit-logs",
                "--endpoint",
                "https://h.test/a",
                "stray",
            ],
            "the audit-logs command does not accept positional arguments",
        ),
        (
            &[
                "listen",
                "--endpoint",
                "https://h.test/a",
                "--log-format",
                "xml",
            ],
            "invalid log-format \"xml\", allowed values are: cef, json, cps",
        ),
    ] {
        let out = w.run(args);
        assert_eq!(out.code(), Some(1), "{args:?}");
        assert!(
            out.stderr.starts_with(&format!("Error: {msg}\n")),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert!(
        w.snapshot().requests.is_empty(),
        "no Konnect call for bad flags"
    );
}

#[test]
fn missing_pat_is_a_clear_error() {
    let w = World::new();
    let mut cmd = w.kongctl();
    cmd.env_remove("KONGCTL_DEFAULT_KONNECT_PAT").args([
        "listen",
        "--endpoint",
        "https://h.test/a",
    ]);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .starts_with("Error: authentication token not available."),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("KONGCTL_DEFAULT_KONNECT_PAT"),
        "{}",
        out.stderr
    );
}

/// A 401 hint names the PAT's real source: here the variable of the
/// profile in use, not a `KONGCTL_<PROFILE>_KONNECT_PAT` placeholder.
#[test]
fn a_rejected_pat_hint_names_the_profiles_variable() {
    let w = World::new();
    let mut cmd = w.kongctl_profile("dev-eu");
    cmd.env("KONGCTL_DEV_EU_KONNECT_PAT", "kpat_revoked").args([
        "listen",
        "--endpoint",
        "https://h.test/a",
        "--listen-address",
        "127.0.0.1:0",
    ]);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("Error: read regional audit-log webhook: ")
            && out.stderr.contains(
                "\nHint: Konnect rejected the access token: check the PAT in the \
                 KONGCTL_DEV_EU_KONNECT_PAT environment variable\n"
            ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("kpat_revoked"), "{}", out.stderr);
    assert!(w.snapshot().destinations.is_empty(), "nothing created");
}

#[test]
fn configured_webhook_blocks_startup_with_the_original_message() {
    let w = World::new();
    let first = w.start_listener("listen", &[]);
    let mut cmd = w.kongctl_profile("other");
    cmd.args([
        "listen",
        "--endpoint",
        "https://h.test/a",
        "--listen-address",
        "127.0.0.1:0",
    ]);
    let before = w.snapshot().destinations.len();
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.starts_with(&format!(
            "Error: regional audit-log webhook is already configured (enabled=true endpoint=\"{}\"); expected enabled=false and endpoint=\"unconfigured\"",
            first.endpoint
        )),
        "{}",
        out.stderr
    );
    assert_eq!(w.snapshot().destinations.len(), before, "nothing created");
}

#[test]
fn port_in_use_fails_before_any_konnect_call() {
    let w = World::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = w.run(&[
        "listen",
        "--endpoint",
        "https://h.test/a",
        "--listen-address",
        &addr,
    ]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.starts_with(&format!(
            "Error: listen tcp {addr}: bind: address already in use"
        )),
        "{}",
        out.stderr
    );
    assert!(w.snapshot().requests.is_empty(), "no Konnect call at all");
}

#[test]
fn taken_name_is_refused() {
    let w = World::new();
    let l = w.start_listener(
        "listen",
        &["--name", "shared-name", "--configure-webhook=false"],
    );
    let mut cmd = w.kongctl_profile("b");
    cmd.args([
        "listen",
        "--endpoint",
        "https://h.test/a",
        "--listen-address",
        "127.0.0.1:0",
        "--name",
        "shared-name",
    ]);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .starts_with("Error: destination name \"shared-name\" already exists"),
        "{}",
        out.stderr
    );
    drop(l);
}

// Retries, refusals and undo for every Konnect call of startup and cleanup
// (a 500 then success, a 400 never retried, a failed webhook PATCH undone,
// ...) are the fault matrix in tests/faults.rs.

#[test]
fn cleanup_waits_out_destination_in_use() {
    let w = World::new();
    let mut l = w.start_listener("listen", &[]);
    w.sim.inject_fault(Fault {
        method: Some("DELETE".into()),
        path: "/v3/audit-log-destinations/*".into(),
        count: 3,
        action: FaultAction::Problem {
            status: 409,
            detail: "Destination is in use".into(),
        },
    });
    l.stop_ok();
    assert_eq!(w.calls("DELETE", "/v3/audit-log-destinations/"), 4);
    w.assert_konnect_clean();
}

#[test]
fn cleanup_with_konnect_down_is_reported_and_reclaimed_next_start() {
    let w = World::new();
    let mut l = w.start_listener("listen", &[]);
    let id = w.snapshot().destinations[0].id.clone();
    // Every attempt of the webhook release fails: cleanup cannot finish.
    w.sim.inject_fault(Fault {
        method: Some("PATCH".into()),
        path: "/v2/audit-log-webhook".into(),
        count: 4,
        action: FaultAction::Status {
            status: 503,
            retry_after: None,
        },
    });
    l.proc.interrupt();
    let status = l.proc.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1));
    let err = l.proc.stderr();
    assert!(
        err.contains("Error: release audit-log webhook: PATCH "),
        "{err}"
    );
    assert!(
        err.contains(&format!("audit-log destination {id} may still exist")),
        "{err}"
    );
    let dest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.storage_dir("default").join("destination.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dest["status"], "cleanup_failed");
    assert!(w.snapshot().webhooks["us"].enabled);

    // The next start finishes the cleanup, then starts normally.
    let mut l2 = w.start_listener("listen", &[]);
    assert!(
        l2.proc.stderr().contains("Reclaimed"),
        "{}",
        l2.proc.stderr()
    );
    let s = w.snapshot();
    assert!(
        s.destinations.iter().all(|d| d.id != id),
        "old destination deleted"
    );
    assert_eq!(s.destinations.len(), 1);
    l2.stop_ok();
    w.assert_konnect_clean();
}

#[test]
fn second_listener_on_a_profile_names_the_first() {
    let w = World::new();
    let l = w.start_listener("listen", &["--configure-webhook=false"]);
    let out = w.run(&[
        "listen",
        "--endpoint",
        "https://h.test/b",
        "--listen-address",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains(&format!(
            "another kongctl listener (pid {}) is already running for this profile",
            l.proc.pid()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        w.snapshot().destinations.len(),
        1,
        "the second created nothing"
    );
}

#[test]
fn bad_requests_get_their_status_and_store_nothing() {
    let w = World::new();
    let mut l = w.start_listener("listen", &["--max-body-bytes", "1024"]);
    let auth = ("Authorization", "Bearer test-secret");
    assert_eq!(post(l.addr, "/nope", &[auth], b"{}"), 404);
    assert_eq!(
        post(
            l.addr,
            "/audit-logs",
            &[("Authorization", "Bearer test-secreT")],
            b"{}"
        ),
        401
    );
    assert_eq!(post(l.addr, "/audit-logs", &[], b"{}"), 401);
    assert_eq!(post(l.addr, "/audit-logs", &[auth], &vec![b'x'; 2048]), 413);
    let bomb = gzip(&vec![b'a'; 1 << 20]);
    assert_eq!(
        post(
            l.addr,
            "/audit-logs",
            &[auth, ("Content-Encoding", "gzip")],
            &bomb
        ),
        413
    );
    assert_eq!(
        post(
            l.addr,
            "/audit-logs",
            &[auth, ("Content-Encoding", "gzip")],
            b"\x1f\x8b\x08garbage"
        ),
        400
    );
    assert_eq!(
        std::fs::metadata(w.events_file())
            .map(|m| m.len())
            .unwrap_or(0),
        0
    );
    // gzip recognised by magic bytes without a Content-Encoding, CRLF and
    // blank lines dropped.
    assert_eq!(
        post(
            l.addr,
            "/audit-logs",
            &[auth],
            &gzip(b"{\"a\":1}\r\n\r\n  \n{\"b\":2}\n")
        ),
        202
    );
    assert_eq!(read_lines(&w.events_file()), vec!["{\"a\":1}", "{\"b\":2}"]);
    // Exactly --max-body-bytes is accepted, raw and decoded.
    let raw = "r".repeat(1024);
    assert_eq!(post(l.addr, "/audit-logs", &[auth], raw.as_bytes()), 202);
    let decoded = "d".repeat(1024);
    assert_eq!(
        post(
            l.addr,
            "/audit-logs",
            &[auth, ("Content-Encoding", "gzip")],
            &gzip(decoded.as_bytes())
        ),
        202
    );
    assert_eq!(
        read_lines(&w.events_file()),
        vec!["{\"a\":1}", "{\"b\":2}", raw.as_str(), decoded.as_str()]
    );
    l.stop_ok();
}

#[test]
fn hostile_profile_names_stay_inside_the_audit_logs_dir() {
    for (profile, dir) in [("../x", ".._x"), (".", "_"), ("a/b", "a_b"), ("..", "__")] {
        let w = World::new();
        let host = w.tunnel_host();
        let endpoint = format!("https://{host}/audit-logs");
        let mut cmd = w.kongctl_profile(profile);
        cmd.args([
            "listen",
            "--endpoint",
            &endpoint,
            "--listen-address",
            "127.0.0.1:0",
        ]);
        let mut proc = Running::spawn(cmd);
        let state = proc.wait_for_listener_state(&w.storage_dir(dir));
        assert!(
            state["events_file"]
                .as_str()
                .unwrap()
                .starts_with(w.config_dir().join("audit-logs").to_str().unwrap()),
            "{state}"
        );
        proc.interrupt();
        assert!(
            proc.wait_exit(Duration::from_secs(30)).success(),
            "{}",
            proc.stderr()
        );
        let entries: Vec<_> = std::fs::read_dir(w.config_dir().join("audit-logs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(entries, vec![dir.to_string()], "{profile:?}");
        let top: Vec<_> = std::fs::read_dir(w.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            top,
            vec!["kongctl".to_string()],
            "nothing written outside the config dir"
        );
    }
}
