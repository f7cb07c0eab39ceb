//! Signature checks end to end: the real binary against the emulator, whose
//! records are signed with a real Ed25519 key (some tampered or unsigned on
//! request, keys rotated on request), live (`listen`/`tail --verify`) and
//! offline (`get audit-logs --stored|--file --verify`).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use konnect_sim::Fault;
use serde_json::Value;

const JWKS_PATH: &str = "/v2/audit-log-webhook/jwks.json";

fn json_file(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn counts(valid: u64, invalid: u64, unsigned: u64, unverifiable: u64) -> Value {
    serde_json::json!({
        "valid": valid,
        "invalid": invalid,
        "unsigned": unsigned,
        "unverifiable": unverifiable,
        "pending": 0,
    })
}

/// The emulator's current JWKS, as a client sees it.
fn served_jwks(w: &World) -> Value {
    let reply = test_support::exchange(
        w.sim.addr(),
        &test_support::request("GET", JWKS_PATH, &[], b""),
    );
    assert_eq!(reply.status, 200);
    serde_json::from_slice(&reply.body).unwrap()
}

fn jwks_fetches(w: &World) -> usize {
    w.calls("GET", JWKS_PATH)
}

#[test]
fn warn_stores_every_record_and_counts_each_kind() {
    for format in ["json", "cef"] {
        let w = World::new();
        let mut l = w.start_listener("listen", &["--log-format", format]);
        let dir = w.storage_dir("default");
        assert_eq!(jwks_fetches(&w), 1, "{format}: fetched at start");
        // Saved, private, as served (this read is one more fetch).
        assert_eq!(json_file(&dir.join("jwks.json")), served_jwks(&w));
        assert_eq!(mode(&dir.join("jwks.json")), 0o600);

        w.sim.forge_next(2, 3);
        let report = w.sim.trigger("us", 20);
        assert!(report.all_delivered(), "{report:?}");
        let delivered = w.delivered_records();
        assert_eq!(read_lines(&w.events_file()), delivered, "{format}");
        let tampered = delivered
            .iter()
            .filter(|r| r.contains("203.0.113.255"))
            .count();
        assert_eq!(tampered, 2, "{format}: the emulator tampered two");
        assert_eq!(
            delivered
                .iter()
                .filter(|r| !r.contains("\"sig\":") && !r.contains(" sig="))
                .count(),
            3,
            "{format}: and left three unsigned"
        );

        l.stop_ok();
        let state = json_file(&dir.join("listener.json"));
        assert_eq!(state["verify"], counts(15, 2, 3, 0), "{format}");
        assert_eq!(state["records_received"], 20);
        assert!(!dir.join("rejected.jsonl").exists());
        // A mismatch asks for the keys again (they did not change).
        assert_eq!(
            jwks_fetches(&w),
            3,
            "{format}: start, the test's, once again"
        );
        assert!(!l.proc.stderr().contains("Warning"), "{}", l.proc.stderr());
    }
}

#[test]
fn reject_sets_invalid_and_unsigned_records_aside_and_still_acknowledges() {
    let w = World::new();
    let mut l = w.start_listener("tail", &["--verify", "reject"]);
    w.sim.forge_next(1, 2);
    let report = w.sim.trigger("us", 10);
    // Konnect hears 202: it must not send the refused records again.
    assert!(report.all_delivered(), "{report:?}");
    assert!(
        report
            .deliveries
            .iter()
            .all(|d| d.attempts.len() == 1 && d.attempts[0].status == Some(202)),
        "{report:?}"
    );
    let delivered = w.delivered_records();
    let (forged, kept): (Vec<&String>, Vec<&String>) = delivered
        .iter()
        .partition(|r| r.contains("203.0.113.255") || !r.contains("\"sig\":"));
    assert_eq!((forged.len(), kept.len()), (3, 7));
    assert_eq!(
        read_lines(&w.events_file()),
        kept.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );
    // tail prints what is stored, only that.
    let out = l.proc.wait_stdout("7 records", |o| o.lines().count() >= 7);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        kept.iter().map(|s| s.as_str()).collect::<Vec<_>>()
    );

    let rejected_file = w.storage_dir("default").join("rejected.jsonl");
    assert_eq!(mode(&rejected_file), 0o600);
    let rejected: Vec<Value> = read_lines(&rejected_file)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rejected.len(), 3);
    assert_eq!(rejected[0]["reason"], "invalid_signature");
    assert_eq!(rejected[0]["record"], forged[0].as_str());
    for (entry, record) in rejected[1..].iter().zip(&forged[1..]) {
        assert_eq!(entry["reason"], "missing_signature");
        assert_eq!(entry["record"], record.as_str());
    }
    for entry in &rejected {
        let at = entry["received_at"].as_str().unwrap();
        assert!(
            at.parse::<jiff::Timestamp>().is_ok() && at.ends_with('Z'),
            "{at}"
        );
        assert_eq!(entry.as_object().unwrap().len(), 3, "{entry}");
    }

    l.stop_ok();
    let state = json_file(&w.storage_dir("default").join("listener.json"));
    assert_eq!(state["verify"], counts(7, 1, 2, 0));
    assert_eq!(state["records_received"], 7);
    w.assert_konnect_clean();
}

#[test]
fn a_rotated_key_is_fetched_at_the_first_record_it_signed() {
    let w = World::new();
    let mut l = w.start_listener("listen", &["--verify", "reject"]);
    assert!(w.sim.trigger("us", 5).all_delivered());
    assert_eq!(jwks_fetches(&w), 1);

    // Konnect rotates (the old key is gone from the JWKS).
    let kid = w.sim.rotate_signing_key(false);
    assert!(w.sim.trigger("us", 5).all_delivered());
    assert_eq!(read_lines(&w.events_file()), w.delivered_records());
    assert_eq!(jwks_fetches(&w), 2, "fetched again once");
    let saved = json_file(&w.storage_dir("default").join("jwks.json"));
    assert_eq!(saved["keys"][0]["kid"], kid.as_str());

    // Within the minute, a forgery does not fetch the keys again (nor
    // would a second rotation: its records are refused until a minute
    // after this fetch).
    w.sim.forge_next(1, 0);
    assert!(w.sim.trigger("us", 1).all_delivered());
    assert_eq!(jwks_fetches(&w), 2);
    l.stop_ok();
    let state = json_file(&w.storage_dir("default").join("listener.json"));
    assert_eq!(state["verify"], counts(10, 1, 0, 0));
    assert_eq!(read_lines(&w.events_file()).len(), 10);
    assert_eq!(
        read_lines(&w.storage_dir("default").join("rejected.jsonl")).len(),
        1
    );
}

#[test]
fn reject_without_the_keys_fails_before_any_konnect_change() {
    let w = World::new();
    w.sim
        .inject_fault(Fault::status(Some("GET"), JWKS_PATH, 100, 503));
    let (mut cmd, _host) = w.listener_command("listen", &["--verify", "reject"]);
    let out = Running::run_command({
        cmd.env("KONGCTL_KONNECT_TIMEOUT", "2s");
        cmd
    });
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .starts_with("Error: fetch audit-log signing keys (JWKS): "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("503"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("Hint: --verify reject needs Konnect's signing keys"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    // Nothing but the JWKS was asked for: Konnect is as it was.
    let s = w.snapshot();
    assert!(s.is_pristine(), "{s:?}");
    assert!(
        s.requests.iter().all(|r| r.path == JWKS_PATH),
        "{:?}",
        s.requests
    );
    assert!(!w.storage_dir("default").join("jwks.json").exists());
}

#[test]
fn warn_without_the_keys_starts_with_a_warning_and_stores_everything() {
    let w = World::new();
    w.sim
        .inject_fault(Fault::status(Some("GET"), JWKS_PATH, 1000, 503));
    let mut l = w.start_listener("listen", &[]);
    assert!(
        l.proc
            .stderr()
            .contains("Warning: fetch audit-log signing keys (JWKS): "),
        "{}",
        l.proc.stderr()
    );
    assert!(
        l.proc
            .stderr()
            .contains("signed records count as unverifiable until the keys can be fetched"),
        "{}",
        l.proc.stderr()
    );
    w.sim.forge_next(0, 1);
    assert!(w.sim.trigger("us", 4).all_delivered());
    assert_eq!(read_lines(&w.events_file()), w.delivered_records());
    l.stop_ok();
    let state = json_file(&w.storage_dir("default").join("listener.json"));
    assert_eq!(state["verify"], counts(0, 0, 1, 3));
    w.assert_konnect_clean();
}

#[test]
fn warn_falls_back_to_the_saved_keys() {
    let w = World::new();
    let mut l = w.start_listener("listen", &[]);
    l.stop_ok();
    w.sim
        .inject_fault(Fault::status(Some("GET"), JWKS_PATH, 1000, 503));
    let mut l = w.start_listener("listen", &[]);
    let saved = w.storage_dir("default").join("jwks.json");
    assert!(
        l.proc.stderr().contains(&format!(
            "checking signatures with the keys saved in {}",
            saved.display()
        )),
        "{}",
        l.proc.stderr()
    );
    assert!(w.sim.trigger("us", 3).all_delivered());
    l.stop_ok();
    let state = json_file(&w.storage_dir("default").join("listener.json"));
    assert_eq!(state["verify"], counts(3, 0, 0, 0));
}

#[test]
fn off_fetches_no_keys_and_counts_nothing() {
    let w = World::new();
    let mut l = w.start_listener("listen", &["--verify", "off"]);
    w.sim.forge_next(1, 1);
    assert!(w.sim.trigger("us", 5).all_delivered());
    assert_eq!(read_lines(&w.events_file()), w.delivered_records());
    l.stop_ok();
    assert_eq!(jwks_fetches(&w), 0);
    let dir = w.storage_dir("default");
    assert!(
        json_file(&dir.join("listener.json"))
            .get("verify")
            .is_none()
    );
    assert!(!dir.join("jwks.json").exists());
    assert!(!dir.join("rejected.jsonl").exists());
}

#[test]
fn cps_records_are_unverifiable_and_kept_under_reject() {
    let w = World::new();
    let mut l = w.start_listener("listen", &["--log-format", "cps", "--verify", "reject"]);
    assert!(w.sim.trigger("us", 6).all_delivered());
    assert_eq!(read_lines(&w.events_file()), w.delivered_records());
    l.stop_ok();
    let state = json_file(&w.storage_dir("default").join("listener.json"));
    assert_eq!(state["verify"], counts(0, 0, 0, 6));
    assert!(!w.storage_dir("default").join("rejected.jsonl").exists());
}

#[test]
fn ps_json_shows_a_detached_listeners_counts() {
    let w = World::new();
    let host = w.tunnel_host();
    let endpoint = format!("https://{host}/audit-logs");
    let mut cmd = w.kongctl();
    cmd.env("KONGCTL_TEST_STATE_REFRESH", "20ms").args([
        "listen",
        "--endpoint",
        &endpoint,
        "--listen-address",
        "127.0.0.1:0",
        "--authorization",
        "Bearer test-secret",
        "--verify",
        "reject",
        "-d",
    ]);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let pid = detached_pid(&out.stdout);
    let _guard = PidGuard(pid);
    let state = json_file(&w.storage_dir("default").join("listener.json"));
    w.sim.add_tunnel(
        &host,
        state["listen_address"].as_str().unwrap().parse().unwrap(),
    );
    w.sim.forge_next(2, 1);
    assert!(w.sim.trigger("us", 8).all_delivered());

    let mut listed = Value::Null;
    eventually("ps -o json to show the counts", || {
        let out = w.run(&["ps", "-o", "json"]);
        listed = serde_json::from_str(&out.stdout).unwrap();
        // Counted before stored: the two may show in different refreshes.
        listed[0]["verify"] == counts(5, 2, 1, 0) && listed[0]["records_received"] == 5
    });
    assert_eq!(listed[0]["pid"], pid);
    let stop = w.run(&["ps", "stop", "--all"]);
    assert_eq!(stop.code(), Some(0), "{}\n{}", stop.stdout, stop.stderr);
    w.assert_konnect_clean();
}

/// A listener's archive: `n` records (with the forgeries asked for) stored
/// by a listener that has stopped.
fn archive(w: &World, n: usize, unsigned: u64) -> PathBuf {
    let mut l = w.start_listener("listen", &[]);
    w.sim.forge_next(0, unsigned);
    assert!(w.sim.trigger("us", n).all_delivered());
    l.stop_ok();
    w.events_file()
}

#[test]
fn offline_check_passes_a_valid_archive_and_names_a_tampered_record() {
    let w = World::new();
    let events = archive(&w, 12, 0);
    let out = w.run(&["get", "audit-logs", "--stored", "--verify"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "{}: valid 12, invalid 0, unsigned 0, unverifiable 0\n",
            events.display()
        )
    );
    assert_eq!(out.stderr, "");

    // Change one record's principal: the only difference is one byte.
    let mut lines = read_lines(&events);
    let original = lines[4].clone();
    let pos = original.find("\"principal_id\":\"").unwrap() + 16;
    let mut bytes = original.clone().into_bytes();
    bytes[pos] = if bytes[pos] == b'0' { b'1' } else { b'0' };
    lines[4] = String::from_utf8(bytes).unwrap();
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();

    let out = w.run(&["get", "audit-logs", "--stored", "--verify"]);
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "{}: valid 11, invalid 1, unsigned 0, unverifiable 0\n",
            events.display()
        )
    );
    assert!(
        out.stderr.starts_with(&format!(
            "{}:5: invalid_signature: no key of the JWKS verifies the signature",
            events.display()
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .ends_with("Error: signature check failed: 1 record(s) with an invalid signature\n"),
        "{}",
        out.stderr
    );

    // -o jsonl lists it, with its line and raw bytes.
    let out = w.run(&[
        "get",
        "audit-logs",
        "--file",
        events.to_str().unwrap(),
        "--verify",
        "-o",
        "jsonl",
    ]);
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    let rows: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{}", out.stdout);
    assert_eq!(rows[0]["file"], events.to_str().unwrap());
    assert_eq!(rows[0]["line"], 5);
    assert_eq!(rows[0]["reason"], "invalid_signature");
    assert_eq!(rows[0]["record"], lines[4].as_str());
    assert!(
        out.stderr.starts_with(&format!(
            "{}: valid 11, invalid 1, unsigned 0, unverifiable 0\n",
            events.display()
        )),
        "{}",
        out.stderr
    );
    // Offline needs no Konnect: the saved keys were used.
    assert_eq!(jwks_fetches(&w), 1, "only the listener's fetch");
}

#[test]
fn offline_check_of_many_files_reports_them_in_order() {
    // Files are checked one per core; the report is still one file after
    // the other.
    let w = World::new();
    let events = archive(&w, 6, 0);
    let lines = read_lines(&events);
    let tamper = |line: &str| {
        let pos = line.find("\"principal_id\":\"").unwrap() + 16;
        let mut bytes = line.as_bytes().to_vec();
        bytes[pos] = if bytes[pos] == b'0' { b'1' } else { b'0' };
        String::from_utf8(bytes).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..7 {
        let mut mine = lines.clone();
        if i % 3 == 1 {
            mine[i % 6] = tamper(&mine[i % 6]);
        }
        if i == 5 {
            mine.insert(2, "not a record".to_owned());
        }
        let path = dir.path().join(format!("f{i}.jsonl"));
        std::fs::write(&path, mine.join("\n") + "\n").unwrap();
        files.push(path);
    }
    let mut args = vec!["get", "audit-logs", "--verify"];
    for f in &files {
        args.extend(["--file", f.to_str().unwrap()]);
    }
    let out = w.run(&args);
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    let want: String = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let invalid = u64::from(i % 3 == 1);
            format!(
                "{}: valid {}, invalid {invalid}, unsigned 0, unverifiable 0\n",
                f.display(),
                6 - invalid
            )
        })
        .collect();
    assert_eq!(out.stdout, want);
    let err: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(err.len(), 4, "{}", out.stderr);
    let starts = [
        format!("{}:2: invalid_signature: ", files[1].display()),
        format!("{}:5: invalid_signature: ", files[4].display()),
        format!("warning: {}:3: not an audit record", files[5].display()),
        "Error: signature check failed: 2 record(s)".to_owned(),
    ];
    for (line, start) in err.iter().zip(&starts) {
        assert!(line.starts_with(start.as_str()), "{}", out.stderr);
    }
}

#[test]
fn offline_keys_come_from_jwks_flag_saved_file_or_konnect() {
    let w = World::new();
    let events = archive(&w, 5, 2);
    let copy = w.dir.path().join("archive.jsonl.gz");
    std::fs::write(&copy, gzip(&std::fs::read(&events).unwrap())).unwrap();
    let file = copy.to_str().unwrap();
    let summary = format!("{file}: valid 3, invalid 0, unsigned 2, unverifiable 0\n");

    // Unsigned records fail only with --strict.
    let out = w.run(&["get", "audit-logs", "--file", file, "--verify"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stdout, summary);
    let out = w.run(&["get", "audit-logs", "--file", file, "--verify", "--strict"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(out.stdout, summary);
    assert!(
        out.stderr.ends_with(
            "Error: signature check failed: 2 record(s) without a signature (--strict)\n"
        ),
        "{}",
        out.stderr
    );

    // --jwks with another key: every signed record fails.
    let other = w.dir.path().join("other-jwks.json");
    std::fs::write(
        &other,
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
    )
    .unwrap();
    let out = w.run(&[
        "get",
        "audit-logs",
        "--file",
        file,
        "--verify",
        "--jwks",
        other.to_str().unwrap(),
    ]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stdout,
        format!("{file}: valid 0, invalid 3, unsigned 2, unverifiable 0\n")
    );

    // No saved keys: Konnect's are fetched.
    std::fs::remove_file(w.storage_dir("default").join("jwks.json")).unwrap();
    let before = jwks_fetches(&w);
    let out = w.run(&["get", "audit-logs", "--file", file, "--verify"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stdout, summary);
    assert_eq!(jwks_fetches(&w), before + 1);
}

#[test]
fn offline_verify_refuses_query_flags() {
    let w = World::new();
    let out = w.run(&[
        "get",
        "audit-logs",
        "--file",
        "x",
        "--verify",
        "--type",
        "authorization",
    ]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.starts_with(
            "Error: --verify checks every record: it cannot be combined with --type\n"
        ),
        "{}",
        out.stderr
    );
    let out = w.run(&["get", "audit-logs", "--verify"]);
    assert!(
        out.stderr
            .starts_with("Error: --verify requires --stored or --file"),
        "{}",
        out.stderr
    );
}

/// POSTs `body` to the listener as Konnect would (the tests' secret).
fn post(l: &Listener, body: &str) -> test_support::Reply {
    test_support::exchange(
        l.addr,
        &test_support::request(
            "POST",
            "/audit-logs",
            &[("Authorization", "Bearer test-secret")],
            body.as_bytes(),
        ),
    )
}

/// `listener.json`'s `verify` object.
fn verify_state(w: &World) -> Value {
    let path = w.storage_dir("default").join("listener.json");
    std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(|v| v["verify"].clone())
        .unwrap_or(Value::Null)
}

/// Waits until `listener.json`'s counts are `want`, and says what they
/// were if they never are.
fn wait_counts(w: &World, what: &str, want: &Value) {
    let mut last = Value::Null;
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        eventually(what, || {
            last = verify_state(w);
            last == *want
        })
    }));
    assert!(found.is_ok(), "{what}: last {last}, want {want}");
}

fn with_pending(mut counts: Value, pending: u64) -> Value {
    counts["pending"] = pending.into();
    counts
}

/// The checker's running totals, saved with its cursor.
fn cursor_totals(w: &World) -> Value {
    json_file(&w.storage_dir("default").join("verify.cursor"))["state"]["totals"].clone()
}

/// Issue 19 item 1 and 4: under `warn` a request waits for its records to
/// be durable, never for a signature check, not even when a record needs
/// the JWKS fetched again and Konnect is slow to answer; the checker
/// waits instead, and checks every record.
#[test]
fn warn_acknowledges_without_waiting_for_a_slow_jwks_and_checks_every_record_after() {
    let w = World::new();
    let log = w.dir.path().join("listener.log");
    let (mut cmd, host) = w.listener_command(
        "listen",
        &["--log-file", log.to_str().unwrap(), "--log-level", "warn"],
    );
    cmd.env("KONGCTL_TEST_STATE_REFRESH", "20ms");
    let mut l = w.start_listener_cmd(cmd, &host);
    assert_eq!(jwks_fetches(&w), 1);
    // The tampered record makes the check ask for the keys again; Konnect
    // answers after 4 s (the fetch gives up after 3).
    w.sim.inject_fault(Fault {
        method: Some("GET".into()),
        path: JWKS_PATH.into(),
        count: 1,
        action: konnect_sim::FaultAction::Delay(std::time::Duration::from_secs(4)),
    });
    w.sim.forge_next(1, 0);
    let started = std::time::Instant::now();
    let report = w.sim.trigger("us", 10);
    let took = started.elapsed();
    assert!(report.all_delivered(), "{report:?}");
    assert!(
        report.deliveries.iter().all(|d| d.attempts.len() == 1),
        "{report:?}"
    );
    // Checked on the request path, the tampered record's request would
    // have waited the 3 s of the fetch.
    assert!(
        took < std::time::Duration::from_secs(2),
        "the deliveries took {took:?}"
    );
    assert!(w.sim.trigger("us", 10).all_delivered());
    assert_eq!(read_lines(&w.events_file()).len(), 20);
    wait_counts(&w, "every record checked", &counts(19, 1, 0, 0));
    // The checker asked for the keys again, and gave up after 3 s.
    eventually("the slow fetch to be given up", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("failed to fetch the JWKS again")
    });
    l.stop_ok();
    assert_eq!(
        json_file(&w.storage_dir("default").join("listener.json"))["verify"],
        counts(19, 1, 0, 0)
    );
    assert_eq!(cursor_totals(&w), counts(19, 1, 0, 0));
}

/// Issue 19 item 1: records stored but not yet checked when the listener
/// is killed are checked by the next start, each once.
#[test]
fn records_left_unchecked_by_a_killed_listener_are_checked_at_the_next_start() {
    let w = World::new();
    let (mut cmd, host) = w.listener_command("listen", &["--backfill", "off"]);
    // A checker that checks nothing, as if it were far behind.
    cmd.env("KONGCTL_TEST_STATE_REFRESH", "20ms")
        .env("KONGCTL_TEST_VERIFY_HOLD", "0");
    let mut first = w.start_listener_cmd(cmd, &host);
    w.sim.forge_next(0, 2);
    assert!(w.sim.trigger("us", 20).all_delivered());
    wait_counts(
        &w,
        "20 records pending",
        &with_pending(counts(0, 0, 0, 0), 20),
    );
    first.proc.signal(nix::sys::signal::Signal::SIGKILL);
    first.proc.wait_exit(std::time::Duration::from_secs(10));

    let (mut cmd, host) = w.listener_command("listen", &["--backfill", "off"]);
    cmd.env("KONGCTL_TEST_STATE_REFRESH", "20ms");
    let mut second = w.start_listener_cmd(cmd, &host);
    wait_counts(&w, "the rest checked", &counts(18, 0, 2, 0));
    assert!(w.sim.trigger("us", 5).all_delivered());
    wait_counts(&w, "and what came next", &counts(23, 0, 2, 0));
    second.stop_ok();
    assert_eq!(read_lines(&w.events_file()).len(), 25);
    assert_eq!(cursor_totals(&w), counts(23, 0, 2, 0));
}

/// A listener killed right after checking records may not have saved its
/// cursor for them. The next start checks whatever the saved cursor does
/// not cover, and the saved totals plus what it checks count each record
/// once; after a clean stop the cursor's totals hold every record.
#[test]
fn records_checked_but_not_saved_before_a_kill_are_counted_once() {
    let w = World::new();
    let (mut cmd, host) = w.listener_command("listen", &["--backfill", "off"]);
    cmd.env("KONGCTL_TEST_STATE_REFRESH", "20ms");
    let mut first = w.start_listener_cmd(cmd, &host);
    assert!(w.sim.trigger("us", 10).all_delivered());
    wait_counts(&w, "the first 10 checked", &counts(10, 0, 0, 0));
    w.sim.forge_next(0, 1);
    assert!(w.sim.trigger("us", 6).all_delivered());
    wait_counts(&w, "the next 6 checked", &counts(15, 0, 1, 0));
    first.proc.signal(nix::sys::signal::Signal::SIGKILL);
    first.proc.wait_exit(std::time::Duration::from_secs(10));
    // What the first run saved (none, some or all of it).
    let saved = std::fs::read(w.storage_dir("default").join("verify.cursor"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map_or(Value::Null, |v| v["state"]["totals"].clone());
    let of = |v: &Value, kind: &str| v[kind].as_u64().unwrap_or(0);

    let (mut cmd, host) = w.listener_command("listen", &["--backfill", "off"]);
    cmd.env("KONGCTL_TEST_STATE_REFRESH", "20ms");
    let mut second = w.start_listener_cmd(cmd, &host);
    eventually("the unsaved records checked again", || {
        let now = verify_state(&w);
        now["pending"] == 0
            && of(&saved, "valid") + of(&now, "valid") == 15
            && of(&saved, "unsigned") + of(&now, "unsigned") == 1
    });
    second.stop_ok();
    assert_eq!(read_lines(&w.events_file()).len(), 16);
    let totals = cursor_totals(&w);
    assert_eq!(
        (
            of(&totals, "valid"),
            of(&totals, "unsigned"),
            of(&totals, "invalid")
        ),
        (15, 1, 0),
        "{totals}"
    );
}

/// Issue 19 item 2: a record whose nonce point R carries a small-order
/// component passes the cofactored batch equation, but single
/// verification (ring, libsodium, Kong's documented check) rejects it:
/// under `reject` it is never counted valid nor stored, alone or among
/// valid records checked in the same batch; the valid ones are.
#[test]
fn reject_refuses_a_signature_only_the_cofactored_equation_accepts() {
    use base64::Engine;
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::scalar::Scalar;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let w = World::new();
    // Konnect's key is one the test knows.
    let seed = [11u8; 32];
    w.sim.rotate_signing_key_to_seed(seed, false);
    let secret = ed25519_dalek::SigningKey::from_bytes(&seed);
    let a = secret.to_scalar();
    let public = secret.verifying_key().to_bytes();
    // (0, -1), the point of order 2.
    let mut y = [0xffu8; 32];
    y[0] = 0xec;
    y[31] = 0x7f;
    let torsion = CompressedEdwardsY(y).decompress().unwrap();
    let sign = |body: &str, r: u64, torsion_on: bool| {
        let r = Scalar::from(r);
        let mut point = r * B;
        if torsion_on {
            point += torsion;
        }
        let big_r = point.compress().0;
        let mut h = ring::digest::Context::new(&ring::digest::SHA512);
        h.update(&big_r);
        h.update(&public);
        h.update(body.as_bytes());
        let k = Scalar::from_bytes_mod_order_wide(&h.finish().as_ref().try_into().unwrap());
        let mut sig = big_r.to_vec();
        sig.extend_from_slice((r + k * a).as_bytes());
        format!(
            "{},\"sig\":\"{}\"}}",
            &body[..body.len() - 1],
            b64.encode(sig)
        )
    };
    let records: Vec<String> = (0..12)
        .map(|i| {
            let body = format!(
                r#"{{"event_class_id":"konnect","event_ts":"2026-01-01T00:00:{i:02}Z","name":"Authz.x","n":{i}}}"#
            );
            sign(&body, 1000 + i, i == 5)
        })
        .collect();
    // The crafted one fails ring's (single, cofactorless) check.
    let unsigned = records[5][..records[5].find(",\"sig\"").unwrap()].to_string() + "}";
    let sig = b64
        .decode(&records[5][records[5].find(",\"sig\":\"").unwrap() + 8..records[5].len() - 2])
        .unwrap();
    assert!(
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public)
            .verify(unsigned.as_bytes(), &sig)
            .is_err()
    );

    let (cmd, host) = w.listener_command("listen", &["--verify", "reject"]);
    let mut l = w.start_listener_cmd(cmd, &host);
    for body in [records[5].clone() + "\n", records.join("\n") + "\n"] {
        let reply = post(&l, &body);
        assert_eq!(reply.status, 202, "{reply:?}");
    }
    let mut kept = records.clone();
    kept.remove(5);
    assert_eq!(read_lines(&w.events_file()), kept);
    let rejected = read_lines(&w.storage_dir("default").join("rejected.jsonl"));
    assert_eq!(rejected.len(), 2);
    for entry in &rejected {
        let entry: Value = serde_json::from_str(entry).unwrap();
        assert_eq!(entry["record"], records[5].as_str());
        assert_eq!(entry["reason"], "invalid_signature");
    }
    l.stop_ok();
    assert_eq!(
        json_file(&w.storage_dir("default").join("listener.json"))["verify"],
        counts(11, 2, 0, 0)
    );
}

/// Issue 19 item 2: a batch that fails is searched for its bad records;
/// exactly those are set aside. (A body of 603 records: checked in two
/// parts, one per core, each large enough for batch verification.)
#[test]
fn reject_finds_exactly_the_bad_records_of_a_large_batch() {
    let w = World::new();
    let (cmd, host) = w.listener_command("listen", &["--verify", "reject"]);
    let mut l = w.start_listener_cmd(cmd, &host);
    assert!(w.sim.trigger("us", 300).all_delivered());
    w.sim.forge_next(3, 0);
    assert!(w.sim.trigger("us", 3).all_delivered());
    assert!(w.sim.trigger("us", 300).all_delivered());
    let delivered = w.delivered_records();
    assert_eq!(delivered.len(), 603);
    // One body of every record, the tampered ones among them.
    let reply = post(&l, &(delivered.join("\n") + "\n"));
    assert_eq!(reply.status, 202, "{reply:?}");
    let good: Vec<String> = delivered
        .iter()
        .filter(|r| !r.contains("203.0.113.255"))
        .cloned()
        .collect();
    assert_eq!(good.len(), 600);
    let stored = read_lines(&w.events_file());
    assert_eq!(stored[..600], good[..]);
    assert_eq!(stored[600..], good[..]);
    let rejected = read_lines(&w.storage_dir("default").join("rejected.jsonl"));
    assert_eq!(rejected.len(), 6);
    l.stop_ok();
    assert_eq!(
        json_file(&w.storage_dir("default").join("listener.json"))["verify"],
        counts(1200, 6, 0, 0)
    );
}
