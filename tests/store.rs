//! The listener's store (issue 13, writer half) end to end, through the
//! real binary against the emulator: rotation by size and by time, gzip of
//! closed segments, retention by age and by size, `segments.json`, the
//! `"store"` object of listener.json and `ps -o json`, the flags and the
//! config keys, and bad values refused before any Konnect call.
//!
//! Kills inside each step of a rotation, compression or deletion are in
//! tests/crash.rs.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

const AUTH: &str = "Bearer test-secret";

/// A JSON record with its own time `ts`, number `n` and `pad` bytes of
/// padding that compresses poorly (so sizes on disk are predictable).
fn record(n: u64, ts: &str, pad: usize) -> String {
    let pad = noise(n, pad);
    format!("{{\"event_ts\":\"{ts}\",\"n\":{n},\"pad\":\"{pad}\"}}")
}

/// Posts `lines` as one batch and asserts the 202.
fn post_batch(addr: SocketAddr, lines: &[String]) {
    let body = lines.join("\n");
    let status = post(
        addr,
        "/audit-logs",
        &[("Authorization", AUTH)],
        body.as_bytes(),
    );
    assert_eq!(status, 202);
}

/// The closed segments on disk, `(seq, file name)`, in seq order; a
/// segment present in both forms is listed once, as the plain file (the
/// contract's rule for readers).
fn segments(dir: &Path) -> Vec<(u64, String)> {
    let mut found: Vec<(u64, bool, String)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let (stem, gz) = match name.strip_suffix(".jsonl.gz") {
                Some(s) => (s, true),
                None => (name.strip_suffix(".jsonl")?, false),
            };
            let (_, seq) = stem.strip_prefix("events-")?.split_once('-')?;
            Some((seq.parse().ok()?, gz, name.clone()))
        })
        .collect();
    found.sort();
    found.dedup_by_key(|s| s.0);
    found
        .into_iter()
        .map(|(seq, _, name)| (seq, name))
        .collect()
}

fn read_segment(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        text
    } else {
        String::from_utf8(bytes).unwrap()
    }
}

/// Every stored line: the segments in rotation order, then events.jsonl.
fn stored_lines(dir: &Path) -> Vec<String> {
    let mut text = String::new();
    for (_, name) in segments(dir) {
        text.push_str(&read_segment(&dir.join(name)));
    }
    text.push_str(&std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default());
    text.lines().map(str::to_owned).collect()
}

fn index(dir: &Path) -> Value {
    let text = std::fs::read(dir.join("segments.json")).unwrap_or_default();
    serde_json::from_slice(&text).unwrap_or(Value::Null)
}

/// The index once every listed segment is compressed and no plain segment
/// is left on disk.
fn settled_index(dir: &Path, segments_expected: usize) -> Value {
    let mut last = Value::Null;
    eventually("every segment compressed and indexed", || {
        last = index(dir);
        let listed = last["segments"].as_array().map_or(0, Vec::len);
        listed == segments_expected
            && last["segments"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["file"].as_str().unwrap().ends_with(".jsonl.gz"))
            && segments(dir).iter().all(|(_, n)| n.ends_with(".gz"))
    });
    last
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn listener_json(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("listener.json")).unwrap()).unwrap()
}

fn start(w: &World, extra: &[&str]) -> Listener {
    let (mut cmd, host) = w.listener_command("listen", extra);
    cmd.env("KONGCTL_TEST_STATE_REFRESH", "20ms");
    w.start_listener_cmd(cmd, &host)
}

#[test]
fn the_batch_that_crosses_the_size_rotates_and_segments_are_gzipped_and_indexed() {
    let w = World::new();
    let dir = w.storage_dir("default");
    let mut l = start(&w, &["--max-file-size", "2KiB"]);
    // Batches of 3 records of about 330 bytes (1 KB a batch): the second
    // batch of each file crosses 2 KiB and is written whole before the
    // file rotates.
    let mut sent = Vec::new();
    for b in 0..6u64 {
        let lines: Vec<String> = (0..3)
            .map(|i| {
                let n = b * 3 + i;
                record(n, &format!("2026-01-01T00:00:{n:02}Z"), 300)
            })
            .collect();
        post_batch(l.addr, &lines);
        sent.extend(lines);
    }
    let idx = settled_index(&dir, 3);
    assert_eq!(idx["version"], 1);
    assert_eq!(idx["next_seq"], 4);
    let mut names = Vec::new();
    for (i, s) in idx["segments"].as_array().unwrap().iter().enumerate() {
        let file = s["file"].as_str().unwrap();
        // events-<UTC second of the first record's receipt>-<seq>.jsonl.gz
        let (stamp, rest) = file
            .strip_prefix("events-")
            .unwrap()
            .split_once('-')
            .unwrap();
        assert_eq!(rest, format!("{:06}.jsonl.gz", i + 1), "{file}");
        assert!(
            stamp.len() == 16 && stamp.as_bytes()[8] == b'T' && stamp.ends_with('Z'),
            "{file}"
        );
        assert!(
            s["first_received_at"]
                .as_str()
                .unwrap()
                .starts_with(&format!(
                    "{}-{}-{}T{}:{}:{}",
                    &stamp[..4],
                    &stamp[4..6],
                    &stamp[6..8],
                    &stamp[9..11],
                    &stamp[11..13],
                    &stamp[13..15]
                )),
            "{s}"
        );
        let path = dir.join(file);
        assert_eq!(s["bytes"], std::fs::metadata(&path).unwrap().len(), "{s}");
        assert_eq!(mode(&path), 0o600);
        // Two batches each: the one that crossed 2 KiB is in it, whole.
        let content = read_segment(&path);
        assert_eq!(s["records"], 6, "{s}");
        assert_eq!(content.lines().count(), 6);
        assert!(
            content.len() >= 2048 && content.len() < 2048 + 1100,
            "{}",
            content.len()
        );
        let first = (i * 6) as u64;
        assert_eq!(
            s["oldest_event_at"],
            format!("2026-01-01T00:00:{first:02}Z"),
            "{s}"
        );
        assert_eq!(
            s["newest_event_at"],
            format!("2026-01-01T00:00:{:02}Z", first + 5),
            "{s}"
        );
        // Sent in time order: readers may stream the segment.
        assert_eq!(s["max_lateness_ms"], 0, "{s}");
        names.push(file.to_owned());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "names sort in rotation order");
    assert_eq!(stored_lines(&dir), sent, "every record once, in order");
    assert_eq!(std::fs::read(dir.join("events.jsonl")).unwrap(), b"");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("segments.json")), 0o600);
    // No temporary file is left behind.
    let mut all: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".events"))
        .collect();
    all.sort();
    assert!(all.is_empty(), "{all:?}");

    // listener.json: the whole store.
    let gz_bytes: u64 = idx["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["bytes"].as_u64().unwrap())
        .sum();
    let expected = serde_json::json!({
        "segments": 3,
        "bytes": gz_bytes,
        "oldest_event_at": "2026-01-01T00:00:00Z",
        "newest_event_at": "2026-01-01T00:00:17Z",
    });
    eventually("the store in listener.json", || {
        listener_json(&dir)["store"] == expected
    });

    // One more batch: in the new active file, counted in the store.
    let more = vec![record(99, "2026-01-01T00:01:39Z", 10)];
    post_batch(l.addr, &more);
    eventually("the active file in the summary", || {
        let s = &listener_json(&dir)["store"];
        s["newest_event_at"] == "2026-01-01T00:01:39Z"
            && s["bytes"] == gz_bytes + more[0].len() as u64 + 1
    });
    l.stop_ok();
    let stopped = listener_json(&dir);
    assert_eq!(stopped["store"]["segments"], 3);
    w.assert_konnect_clean();

    // The next start finds nothing to repair and the seq carries on. The
    // active file it inherits is already over the new limit: it rotates
    // before the first batch is written.
    let mut l = start(&w, &["--max-file-size", "1"]);
    let last = vec![record(100, "2026-01-01T00:01:40Z", 10)];
    post_batch(l.addr, &last);
    let idx = settled_index(&dir, 5);
    for (i, lines) in [(3, &more), (4, &last)] {
        let s = &idx["segments"][i];
        let file = s["file"].as_str().unwrap();
        assert!(file.ends_with(&format!("-{:06}.jsonl.gz", i + 1)), "{idx}");
        assert_eq!(s["records"], 1, "{idx}");
        assert_eq!(read_segment(&dir.join(file)), lines[0].clone() + "\n");
    }
    l.stop_ok();
    assert!(!l.proc.stderr().contains("Warning:"), "{}", l.proc.stderr());
}

#[test]
fn an_active_file_rotates_once_its_first_record_is_old_enough() {
    let w = World::new();
    let dir = w.storage_dir("default");
    let mut l = start(&w, &["--rotate-every", "1s", "--max-file-size", "0"]);
    let first = vec![record(1, "2026-02-01T00:00:00Z", 20)];
    post_batch(l.addr, &first);
    // No further batch: the listener's own check rotates it.
    let idx = settled_index(&dir, 1);
    assert_eq!(idx["segments"][0]["records"], 1);
    assert_eq!(std::fs::read(dir.join("events.jsonl")).unwrap(), b"");
    // An empty active file does not rotate; the next record starts a new
    // clock.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(segments(&dir).len(), 1);
    let second = vec![record(2, "2026-02-01T00:00:01Z", 20)];
    post_batch(l.addr, &second);
    settled_index(&dir, 2);
    assert_eq!(stored_lines(&dir), [first, second].concat());
    l.stop_ok();
}

#[test]
fn retention_by_age_deletes_segments_whose_newest_record_is_older() {
    let w = World::new();
    let dir = w.storage_dir("default");
    let mut l = start(&w, &["--max-file-size", "1", "--retain", "1h"]);
    let now = jiff::Timestamp::now();
    let old = (now - jiff::SignedDuration::from_hours(2)).to_string();
    let recent = (now - jiff::SignedDuration::from_mins(30)).to_string();
    // Segment 1: old only (deleted). Segment 2: old and recent (kept: its
    // newest record is recent). Segment 3: recent.
    post_batch(l.addr, &[record(1, &old, 10)]);
    post_batch(l.addr, &[record(2, &old, 10), record(3, &recent, 10)]);
    post_batch(l.addr, &[record(4, &recent, 10)]);
    let mut idx = Value::Null;
    eventually("retention", || {
        idx = index(&dir);
        idx["next_seq"] == 4
            && idx["segments"].as_array().is_some_and(|s| s.len() == 2)
            && segments(&dir).len() == 2
    });
    let files: Vec<&str> = idx["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["file"].as_str().unwrap())
        .collect();
    assert!(
        files[0].contains("-000002.jsonl") && files[1].contains("-000003.jsonl"),
        "{files:?}"
    );
    assert_eq!(
        stored_lines(&dir),
        [
            record(2, &old, 10),
            record(3, &recent, 10),
            record(4, &recent, 10)
        ]
    );
    eventually("the summary after retention", || {
        let s = &listener_json(&dir)["store"];
        s["segments"] == 2 && s["oldest_event_at"] == old.as_str()
    });
    l.stop_ok();
}

#[test]
fn retention_by_size_keeps_the_newest_compressed_segments_under_the_cap() {
    let w = World::new();
    let dir = w.storage_dir("default");
    let cap = 1500u64;
    let mut l = start(&w, &["--max-file-size", "1", "--retain-size", "1500"]);
    // Each batch is a segment of about 700 bytes compressed.
    let batches: Vec<Vec<String>> = (0..6u64)
        .map(|b| vec![record(b, "2026-03-01T00:00:00Z", 1000)])
        .collect();
    for b in &batches {
        post_batch(l.addr, b);
    }
    let total = |idx: &Value| -> u64 {
        idx["segments"]
            .as_array()
            .map_or(0, |l| l.iter().map(|s| s["bytes"].as_u64().unwrap()).sum())
    };
    let mut idx = Value::Null;
    eventually("compression and retention of every segment", || {
        idx = index(&dir);
        let listed = idx["segments"].as_array().cloned().unwrap_or_default();
        idx["next_seq"] == 7
            && listed
                .iter()
                .all(|s| s["file"].as_str().unwrap().ends_with(".gz"))
            && listed
                .last()
                .is_some_and(|s| s["file"].as_str().unwrap().contains("-000006."))
            && segments(&dir).len() == listed.len()
            && total(&idx) <= cap
    });
    let listed = idx["segments"].as_array().unwrap();
    // About 720 bytes each: two fit under 1500, three do not.
    assert_eq!(listed.len(), 2, "{idx}");
    // The newest are kept, oldest first deleted.
    let kept = listed.len();
    for (i, s) in listed.iter().enumerate() {
        let seq = 6 - kept + i + 1;
        assert!(
            s["file"]
                .as_str()
                .unwrap()
                .ends_with(&format!("-{seq:06}.jsonl.gz")),
            "{idx}"
        );
    }
    assert_eq!(stored_lines(&dir), batches[6 - kept..].concat());
    l.stop_ok();
}

#[test]
fn tail_prints_every_record_across_rotations() {
    let w = World::new();
    let dir = w.storage_dir("default");
    let mut l = w.start_listener("tail", &["--max-file-size", "1"]);
    let mut sent = Vec::new();
    for n in 0..5 {
        let lines = vec![
            record(n * 2, "2026-04-01T00:00:00Z", 10),
            record(n * 2 + 1, "2026-04-01T00:00:01Z", 10),
        ];
        post_batch(l.addr, &lines);
        sent.extend(lines);
    }
    let expected = sent.join("\n") + "\n";
    l.proc
        .wait_stdout("every record", |out| out.ends_with(&expected));
    l.stop_ok();
    assert!(l.proc.stdout().ends_with(&expected));
    assert_eq!(stored_lines(&dir), sent);
    assert!(segments(&dir).len() >= 4, "{:?}", segments(&dir));
}

#[test]
fn ps_shows_the_store_of_a_detached_listener() {
    let w = World::new();
    let dir = w.storage_dir("default");
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
        AUTH,
        "--max-file-size",
        "1",
        "--detach",
    ]);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let pid = detached_pid(&out.stdout);
    let _guard = PidGuard(pid);
    let state = listener_json(&dir);
    let addr: SocketAddr = state["listen_address"].as_str().unwrap().parse().unwrap();
    post_batch(addr, &[record(1, "2026-05-01T00:00:00Z", 10)]);
    post_batch(
        addr,
        &[
            record(2, "2026-05-01T00:00:02Z", 10),
            record(3, "2026-05-01T00:00:01Z", 10),
        ],
    );
    let idx = settled_index(&dir, 2);
    let bytes: u64 = idx["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["bytes"].as_u64().unwrap())
        .sum();
    let expected = serde_json::json!({
        "segments": 2,
        "bytes": bytes,
        "oldest_event_at": "2026-05-01T00:00:00Z",
        "newest_event_at": "2026-05-01T00:00:02Z",
    });
    eventually("the store in ps -o json", || {
        let out = w.run(&["ps", "-o", "json"]);
        let listed: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        listed[0]["pid"] == pid && listed[0]["store"] == expected
    });
    let stop = w.run(&["ps", "stop", "--all"]);
    assert_eq!(stop.code(), Some(0), "{}", stop.stderr);
    w.assert_konnect_clean();
}

fn write_config(w: &World, yaml: &str) -> PathBuf {
    let path = w.config_dir().join("config.yaml");
    std::fs::create_dir_all(w.config_dir()).unwrap();
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn config_keys_set_the_policy_and_flags_override_them() {
    let w = World::new();
    let dir = w.storage_dir("default");
    write_config(
        &w,
        "default:\n  audit-logs:\n    max-file-size: 1\n    retain-size: 64MiB\n",
    );
    let mut l = start(&w, &[]);
    post_batch(l.addr, &[record(1, "2026-06-01T00:00:00Z", 10)]);
    settled_index(&dir, 1);
    l.stop_ok();

    // The flag wins: 1 MiB is never reached here.
    let mut l = start(&w, &["--max-file-size", "1MiB"]);
    post_batch(l.addr, &[record(2, "2026-06-01T00:00:01Z", 10)]);
    post_batch(l.addr, &[record(3, "2026-06-01T00:00:02Z", 10)]);
    l.stop_ok();
    assert_eq!(segments(&dir).len(), 1);
    assert_eq!(
        read_lines(&dir.join("events.jsonl")),
        [
            record(2, "2026-06-01T00:00:01Z", 10),
            record(3, "2026-06-01T00:00:02Z", 10)
        ]
    );

    // The environment beats the file; the flag beats both.
    let (mut cmd, host) = w.listener_command("listen", &[]);
    cmd.env("KONGCTL_DEFAULT_AUDIT_LOGS_MAX_FILE_SIZE", "0")
        .env("KONGCTL_DEFAULT_AUDIT_LOGS_ROTATE_EVERY", "1s");
    let mut l = w.start_listener_cmd(cmd, &host);
    // The file holds two records already: it rotates by time, not size.
    settled_index(&dir, 2);
    l.stop_ok();
}

#[test]
fn bad_values_are_refused_before_any_konnect_call() {
    let w = World::new();
    for (flag, value, why) in [
        (
            "--max-file-size",
            "10MB",
            "use a whole number of bytes, optionally with KiB, MiB or GiB (e.g. 128MiB)",
        ),
        (
            "--retain-size",
            "1.5GiB",
            "use a whole number of bytes, optionally with KiB, MiB or GiB (e.g. 128MiB)",
        ),
        ("--retain", "500ms", "must be at least 1s (or 0 for off)"),
        (
            "--rotate-every",
            "soon",
            "use a duration such as 90s, 15m, 12h or 7d",
        ),
    ] {
        for verb in ["listen", "tail"] {
            let out = w.run(&[verb, "--endpoint", "https://h.test/a", flag, value]);
            assert_eq!(out.code(), Some(1), "{verb} {flag} {value}");
            assert!(
                out.stderr
                    .starts_with(&format!("Error: invalid {flag} \"{value}\": ")),
                "{verb} {flag} {value}: {}",
                out.stderr
            );
            assert!(out.stderr.contains(why), "{}", out.stderr);
            assert!(
                out.stderr
                    .ends_with(&format!("Run 'kongctl {verb} --help' for usage\n")),
                "{}",
                out.stderr
            );
        }
    }
    // Not listener flags for the pull API's tail.
    let out = w.run(&["tail", "--max-file-size", "1"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .starts_with("Error: --max-file-size is a webhook listener flag"),
        "{}",
        out.stderr
    );

    let path = write_config(&w, "default:\n  audit-logs:\n    retain: forever\n");
    let out = w.run(&["listen", "--endpoint", "https://h.test/a"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.starts_with(&format!(
            "Error: invalid audit-logs.retain \"forever\" in {}: ",
            path.display()
        )),
        "{}",
        out.stderr
    );
    write_config(&w, "default:\n  audit-logs:\n    max-file-size: [1]\n");
    let out = w.run(&["listen", "--endpoint", "https://h.test/a"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.starts_with(&format!(
            "Error: invalid audit-logs setting \"max-file-size: a list\" in {}: ",
            path.display()
        )),
        "{}",
        out.stderr
    );
    std::fs::remove_file(&path).unwrap();
    let mut cmd = w.kongctl();
    cmd.env("KONGCTL_DEFAULT_AUDIT_LOGS_RETAIN_SIZE", "lots")
        .args(["listen", "--endpoint", "https://h.test/a"]);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.starts_with(
            "Error: invalid audit-logs.retain-size \"lots\" in KONGCTL_DEFAULT_AUDIT_LOGS_RETAIN_SIZE: "
        ),
        "{}",
        out.stderr
    );
    assert!(
        w.snapshot().requests.is_empty(),
        "no Konnect call for bad values"
    );
}
