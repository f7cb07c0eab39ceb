//! Reading stored events back through the real binary: `get audit-logs
//! --stored` over segments (plain and gzip'd), the index and the active
//! file; `--file`; `tail --stored -n` following a store while it is
//! written and rotated; CEF records as JSON; and every bad input (a warning
//! each, the rest printed, exit 0; `--strict` exit 1).
//!
//! Stores are laid out by the tests as the store layout contract says
//! (ENGINE.md): `events-<stamp>-<seq>.jsonl[.gz]`, `segments.json`,
//! `events.jsonl`. Where a listener writes, it is the real one.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

const AUTH: &str = "Bearer test-secret";

/// A webhook JSON record of `kind` at `ts` with signature `sig`.
fn rec(ts: &str, kind: &str, sig: &str) -> String {
    let (class, name) = match kind {
        "authn" => ("AUTHENTICATION_TYPE_PAT", "AUTHENTICATION_OUTCOME_SUCCESS"),
        "authz" => ("konnect", "Authz.portals"),
        "access" => ("KongGateway", "Ingress"),
        other => panic!("kind {other}"),
    };
    format!(
        r#"{{"event_class_id":"{class}","event_ts":"{ts}","name":"{name}","principal_id":"p-{sig}","sig":"{sig}","trace_id":8809518331550410226}}"#
    )
}

fn lines(records: &[String]) -> String {
    records.iter().map(|r| format!("{r}\n")).collect()
}

fn gz(text: &str) -> Vec<u8> {
    gzip(text.as_bytes())
}

fn seg_name(seq: u64) -> String {
    format!("events-20260101T000000Z-{seq:06}.jsonl")
}

/// The default profile's store directory, created.
fn store(w: &World) -> PathBuf {
    let dir = w.storage_dir("default");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_segment(dir: &Path, seq: u64, text: &str, compressed: bool) -> PathBuf {
    let name = seg_name(seq);
    let path = if compressed {
        dir.join(format!("{name}.gz"))
    } else {
        dir.join(name)
    };
    let bytes = if compressed {
        gz(text)
    } else {
        text.as_bytes().to_vec()
    };
    std::fs::write(&path, bytes).unwrap();
    path
}

/// One segments.json entry: `(seq, gz, oldest, newest, records)`.
type IndexEntry<'a> = (u64, bool, Option<&'a str>, Option<&'a str>, u64);

/// segments.json listing `entries`.
fn write_index(dir: &Path, entries: &[IndexEntry]) {
    let segments: Vec<Value> = entries
        .iter()
        .map(|(seq, compressed, oldest, newest, records)| {
            let name = seg_name(*seq);
            serde_json::json!({
                "file": if *compressed { format!("{name}.gz") } else { name },
                "first_received_at": "2026-01-01T00:00:00Z",
                "oldest_event_at": oldest,
                "newest_event_at": newest,
                "records": records,
                "bytes": 1,
            })
        })
        .collect();
    let next = entries.iter().map(|e| e.0).max().unwrap_or(0) + 1;
    std::fs::write(
        dir.join("segments.json"),
        serde_json::json!({"version": 1, "next_seq": next, "segments": segments}).to_string(),
    )
    .unwrap();
}

fn get(w: &World, args: &[&str]) -> Output {
    let mut all = vec!["get", "audit-logs"];
    all.extend(args);
    w.run(&all)
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

/// The `sig` of each jsonl line.
fn sigs(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["sig"].as_str().unwrap_or("?").to_owned()
        })
        .collect()
}

/// A store of three inputs whose records interleave in time:
/// segment 1 (gz): a1 b1 (out of order inside), segment 2 (plain): c2 d2,
/// active file: e3, then a late b3 (older than c2), then a torn-in-progress
/// line.
fn mixed_store(w: &World) -> PathBuf {
    let dir = store(w);
    write_segment(
        &dir,
        1,
        &lines(&[
            rec("2026-01-01T00:02:00Z", "authz", "b1"),
            rec("2026-01-01T00:01:00Z", "authn", "a1"),
        ]),
        true,
    );
    write_segment(
        &dir,
        2,
        &lines(&[
            rec("2026-01-01T00:04:00Z", "access", "c2"),
            rec("2026-01-01T00:05:00Z", "authz", "d2"),
        ]),
        false,
    );
    let mut active = lines(&[
        rec("2026-01-01T00:06:00Z", "authn", "e3"),
        rec("2026-01-01T00:03:00Z", "authz", "b3"),
    ]);
    active.push_str(r#"{"event_ts":"2026-01-01T00:07:00Z","sig":"unfini"#);
    std::fs::write(dir.join("events.jsonl"), active).unwrap();
    dir
}

#[test]
fn stored_query_is_in_record_time_order_across_segments_and_the_active_file() {
    let w = World::new();
    let dir = mixed_store(&w);
    let all = ["a1", "b1", "b3", "c2", "d2", "e3"];
    // Without an index, and with one describing both segments: the same.
    for indexed in [false, true] {
        if indexed {
            write_index(
                &dir,
                &[
                    (
                        1,
                        true,
                        Some("2026-01-01T00:01:00Z"),
                        Some("2026-01-01T00:02:00Z"),
                        2,
                    ),
                    (
                        2,
                        false,
                        Some("2026-01-01T00:04:00Z"),
                        Some("2026-01-01T00:05:00Z"),
                        2,
                    ),
                ],
            );
        }
        for args in [
            &["--stored", "-o", "jsonl"][..],
            &["--stored", "-o", "jsonl", "--limit", "0"],
            &[
                "--stored",
                "-o",
                "jsonl",
                "--start-time",
                "2026-01-01T00:00:00Z",
            ],
        ] {
            let out = get(&w, args);
            assert_eq!(sigs(ok(&out)), all, "{args:?} indexed={indexed}");
            // The line being written is neither printed nor a problem.
            assert_eq!(out.stderr, "", "{args:?}");
        }
    }
    // Records print exactly as stored.
    let out = get(&w, &["--stored", "-o", "jsonl", "--limit", "1"]);
    assert_eq!(
        ok(&out),
        format!("{}\n", rec("2026-01-01T00:06:00Z", "authn", "e3"))
    );
}

#[test]
fn stored_query_filters_by_window_type_and_limit() {
    let w = World::new();
    mixed_store(&w);
    let q = |args: &[&str]| {
        let mut all = vec!["--stored", "-o", "jsonl"];
        all.extend(args);
        sigs(ok(&get(&w, &all)))
    };
    // The window is inclusive at both ends.
    assert_eq!(
        q(&[
            "--start-time",
            "2026-01-01T00:02:00Z",
            "--end-time",
            "2026-01-01T00:04:00Z"
        ]),
        ["b1", "b3", "c2"]
    );
    // A numeric offset is the same instant.
    assert_eq!(
        q(&[
            "--start-time",
            "2026-01-01T01:05:00+01:00",
            "--end-time",
            "2026-01-01T01:06:00+01:00"
        ]),
        ["d2", "e3"]
    );
    assert_eq!(q(&["--type", "authentication"]), ["a1", "e3"]);
    assert_eq!(q(&["--type", "authorization"]), ["b1", "b3", "d2"]);
    assert_eq!(q(&["--type", "gateway_access"]), ["c2"]);
    assert_eq!(q(&["--type", "access"]), ["c2"]);
    // No window: the last N; a window: the first N.
    assert_eq!(q(&["--limit", "2"]), ["d2", "e3"]);
    assert_eq!(
        q(&["--start-time", "2026-01-01T00:00:00Z", "--limit", "2"]),
        ["a1", "b1"]
    );
    assert_eq!(
        q(&[
            "--type",
            "authorization",
            "--start-time",
            "2026-01-01T00:02:30Z"
        ]),
        ["b3", "d2"]
    );
    // --since is relative to now: nothing of 2026-01-01 is in the last hour
    // (the tests run later than that).
    assert_eq!(q(&["--since", "1h"]), Vec::<String>::new());
    let out = get(&w, &["--stored", "--type", "nope"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.starts_with(
            "Error: invalid --type \"nope\": must be authentication, authorization, or gateway_access"
        ),
        "{}",
        out.stderr
    );
    let out = get(&w, &["--stored", "--follow"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("use 'kongctl tail --stored'"),
        "{}",
        out.stderr
    );
    let out = get(&w, &["--stored", "--file", "x"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .starts_with("Error: --stored cannot be combined with --file")
    );
}

#[test]
fn since_reads_recent_records_relative_to_now() {
    let w = World::new();
    let dir = store(&w);
    let now = jiff::Timestamp::now();
    let ago = |mins: i64| {
        (now - jiff::SignedDuration::from_mins(mins))
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    write_segment(
        &dir,
        1,
        &lines(&[
            rec(&ago(300), "authz", "old"),
            rec(&ago(90), "authz", "older"),
        ]),
        true,
    );
    std::fs::write(
        dir.join("events.jsonl"),
        lines(&[
            rec(&ago(50), "authz", "recent"),
            rec(&ago(1), "authn", "now"),
        ]),
    )
    .unwrap();
    let out = get(&w, &["--stored", "-o", "jsonl", "--since", "1h"]);
    assert_eq!(sigs(ok(&out)), ["recent", "now"]);
    let out = get(&w, &["--stored", "-o", "jsonl", "--since", "2h"]);
    assert_eq!(sigs(ok(&out)), ["older", "recent", "now"]);
}

#[test]
fn since_takes_days() {
    let w = World::new();
    let dir = store(&w);
    let now = jiff::Timestamp::now();
    let hours_ago = |h: i64| {
        (now - jiff::SignedDuration::from_hours(h))
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    write_segment(
        &dir,
        1,
        &lines(&[
            rec(&hours_ago(8 * 24), "authz", "week-ago"),
            rec(&hours_ago(6 * 24), "authz", "days-ago"),
        ]),
        true,
    );
    std::fs::write(
        dir.join("events.jsonl"),
        lines(&[
            rec(&hours_ago(30), "authz", "yesterday"),
            rec(&hours_ago(0), "authn", "now"),
        ]),
    )
    .unwrap();
    let out = get(&w, &["--stored", "-o", "jsonl", "--since", "7d"]);
    assert_eq!(sigs(ok(&out)), ["days-ago", "yesterday", "now"]);
    let out = get(&w, &["--stored", "-o", "jsonl", "--since", "1d12h"]);
    assert_eq!(sigs(ok(&out)), ["yesterday", "now"]);
    // An unknown unit is still Go's error.
    let out = get(&w, &["--stored", "--since", "7x"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.starts_with(
            "Error: invalid argument \"7x\" for \"--since\" flag: time: unknown unit \"x\" in duration \"7x\""
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn stored_query_prints_every_output() {
    let w = World::new();
    mixed_store(&w);
    // Default: upstream's text table, the 50 most recent.
    let out = get(&w, &["--stored"]);
    let text = ok(&out);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 7, "{text}");
    assert!(
        rows[0].starts_with("TIMESTAMP") && rows[0].contains("TRACE ID"),
        "{text}"
    );
    assert!(
        rows[1].starts_with("2026-01-01T00:01:00Z  authentication"),
        "{text}"
    );
    assert!(rows[1].contains("p-a1") && rows[1].contains("8809518331550410226"));
    assert!(rows[6].starts_with("2026-01-01T00:06:00Z"), "{text}");
    // --columns.
    let out = get(&w, &["--stored", "--columns", "WHO=.principal_id,SIG=.sig"]);
    let text = ok(&out);
    assert_eq!(
        text.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["WHO", "SIG"]
    );
    assert!(text.lines().nth(1).unwrap().contains("p-a1"), "{text}");
    // json: upstream's envelope, big numbers exact.
    let out = get(&w, &["--stored", "-o", "json", "--limit", "2"]);
    let v: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(v["metadata"]["count"], 2);
    assert_eq!(v["metadata"]["truncated"], true);
    assert_eq!(v["data"][1]["sig"], "e3");
    assert!(
        out.stdout.contains("\"trace_id\": 8809518331550410226"),
        "{}",
        out.stdout
    );
    // json with --jq over the envelope, and -r.
    let out = get(&w, &["--stored", "-o", "json", "--jq", ".metadata.count"]);
    assert_eq!(ok(&out).trim(), "6");
    let out = get(
        &w,
        &["--stored", "-o", "json", "-r", "--jq", ".data[0].sig"],
    );
    assert_eq!(ok(&out), "a1\n");
    // yaml.
    let out = get(&w, &["--stored", "-o", "yaml", "--type", "access"]);
    let text = ok(&out);
    assert!(
        text.contains("count: 1") && text.contains("sig: c2"),
        "{text}"
    );
    // jsonl with --jq (0/1/many) and -r.
    let out = get(
        &w,
        &[
            "--stored",
            "-o",
            "jsonl",
            "--jq",
            "{sig, trace_id}",
            "--limit",
            "1",
        ],
    );
    assert_eq!(
        ok(&out),
        "{\"sig\":\"e3\",\"trace_id\":8809518331550410226}\n"
    );
    let out = get(
        &w,
        &[
            "--stored",
            "-o",
            "jsonl",
            "-r",
            "--jq",
            ".sig, .name",
            "--type",
            "access",
        ],
    );
    assert_eq!(ok(&out), "c2\nIngress\n");
}

#[test]
fn the_default_query_is_the_50_most_recent_across_segments() {
    let w = World::new();
    let dir = store(&w);
    let t = |i: usize| format!("2026-02-01T00:{:02}:{:02}Z", i / 60, i % 60);
    let mut index = Vec::new();
    // 400 records: 3 gz segments of 100 and the active file.
    for seq in 1..=3u64 {
        let from = (seq as usize - 1) * 100;
        let records: Vec<String> = (from..from + 100)
            .map(|i| rec(&t(i), "authz", &format!("r{i}")))
            .collect();
        write_segment(&dir, seq, &lines(&records), true);
        index.push((seq, true, t(from), t(from + 99)));
    }
    let active: Vec<String> = (300..400)
        .map(|i| rec(&t(i), "authz", &format!("r{i}")))
        .collect();
    std::fs::write(dir.join("events.jsonl"), lines(&active)).unwrap();
    let index_entries: Vec<IndexEntry> = index
        .iter()
        .map(|(s, g, o, n)| (*s, *g, Some(o.as_str()), Some(n.as_str()), 100))
        .collect();
    write_index(&dir, &index_entries);
    let out = get(
        &w,
        &[
            "--stored",
            "-o",
            "json",
            "--jq",
            "[.metadata.count, .metadata.truncated, .data[0].sig, .data[49].sig]",
        ],
    );
    assert_eq!(
        ok(&out).trim().replace([' ', '\n'], ""),
        r#"[50,true,"r350","r399"]"#
    );
    // More than the active file holds: the newest segment supplies the rest.
    let out = get(
        &w,
        &["--stored", "-o", "jsonl", "--limit", "150", "--jq", ".sig"],
    );
    let got: Vec<String> = ok(&out)
        .lines()
        .map(|l| l.trim_matches('"').to_owned())
        .collect();
    let want: Vec<String> = (250..400).map(|i| format!("r{i}")).collect();
    assert_eq!(got, want);
    // The oldest segment cannot add to the newest 150 and is not needed:
    // breaking it changes nothing (its index range says so).
    std::fs::write(dir.join(format!("{}.gz", seg_name(1))), b"\x1f\x8bbroken").unwrap();
    let again = get(
        &w,
        &["--stored", "-o", "jsonl", "--limit", "150", "--jq", ".sig"],
    );
    assert_eq!(again.stdout, out.stdout);
    assert_eq!(again.stderr, "", "the oldest segment was not read");
    // With a type filter that matches nothing newer, it must be read.
    let out = get(&w, &["--stored", "--type", "authentication", "-o", "jsonl"]);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains("corrupt gzip data after line 0"),
        "{}",
        out.stderr
    );
}

/// A time `secs` seconds after 2026-01-01T00:00:00Z.
fn at(secs: u64) -> String {
    let t: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    (t + jiff::SignedDuration::from_secs(secs as i64)).to_string()
}

#[test]
fn large_stores_print_in_time_order_whatever_their_segments_order() {
    // Segments of several blocks each: one in time order (the index says
    // max_lateness_ms 0), one whose records run up to 3 s late (it says
    // 3000), one the index does not describe (read whole), and an active
    // file out of order; their ranges overlap at the edges.
    let w = World::new();
    let dir = store(&w);
    let mut all: Vec<(String, String)> = Vec::new();
    let mut segment = |seq: u64, times: Vec<u64>, compressed: bool| -> String {
        let records: Vec<String> = times
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let sig = format!("s{seq}-{i}");
                all.push((at(*t), sig.clone()));
                rec(&at(*t), if i % 3 == 0 { "authz" } else { "access" }, &sig)
            })
            .collect();
        let text = lines(&records);
        if seq > 0 {
            write_segment(&dir, seq, &text, compressed);
        }
        text
    };
    let ordered: Vec<u64> = (0..3000).map(|i| i / 2).collect();
    segment(1, ordered, true);
    let late: Vec<u64> = (0..3000).map(|i| 1490 + i / 2 - (i % 4)).collect();
    segment(2, late, true);
    let unknown: Vec<u64> = (0..3000).map(|i| 2980 + (i * 7919) % 1500).collect();
    segment(3, unknown, false);
    let active: Vec<u64> = (0..3000).map(|i| 4470 + (i * 104_729) % 1500).collect();
    let text = segment(0, active, false);
    std::fs::write(dir.join("events.jsonl"), text).unwrap();
    let mut index: Vec<Value> = Vec::new();
    for (seq, lateness) in [(1u64, 0u64), (2, 3000)] {
        index.push(serde_json::json!({
            "file": format!("{}.gz", seg_name(seq)),
            "first_received_at": "2026-01-01T00:00:00Z",
            "oldest_event_at": at([0, 1487][seq as usize - 1]),
            "newest_event_at": at([1499, 2989][seq as usize - 1]),
            "max_lateness_ms": lateness,
            "records": 3000,
            "bytes": 1,
        }));
    }
    std::fs::write(
        dir.join("segments.json"),
        serde_json::json!({"version": 1, "next_seq": 4, "segments": index}).to_string(),
    )
    .unwrap();
    // Stable by time: records of one time in stored order (segment, line;
    // the active file last).
    let place = |sig: &str| -> (u64, u64) {
        let (seq, line) = sig[1..].split_once('-').unwrap();
        let seq: u64 = seq.parse().unwrap();
        (if seq == 0 { 99 } else { seq }, line.parse().unwrap())
    };
    all.sort_by(|a, b| a.0.cmp(&b.0).then(place(&a.1).cmp(&place(&b.1))));
    let want: Vec<String> = all.iter().map(|(_, s)| s.clone()).collect();
    let out = get(&w, &["--stored", "--limit", "0", "-o", "jsonl"]);
    assert_eq!(sigs(ok(&out)), want);
    assert_eq!(out.stderr, "");
    // With a type, a window and a limit, the same order.
    let out = get(
        &w,
        &[
            "--stored",
            "--type",
            "authorization",
            "--start-time",
            &at(1400),
            "--limit",
            "500",
            "-o",
            "jsonl",
        ],
    );
    let authz: Vec<String> = all
        .iter()
        .filter(|(t, s)| *t >= at(1400) && place(s).1 % 3 == 0)
        .map(|(_, s)| s.clone())
        .take(500)
        .collect();
    assert_eq!(sigs(ok(&out)), authz);
    // --file over the same files (no index: every file is read whole).
    let mut files: Vec<String> = Vec::new();
    for seq in 1..=3u64 {
        let name = seg_name(seq);
        let path = if seq < 3 {
            dir.join(format!("{name}.gz"))
        } else {
            dir.join(name)
        };
        files.push(path.display().to_string());
    }
    files.push(dir.join("events.jsonl").display().to_string());
    let mut args = vec!["--limit", "0", "-o", "jsonl"];
    for f in &files {
        args.extend(["--file", f.as_str()]);
    }
    let out = get(&w, &args);
    assert_eq!(sigs(ok(&out)), want);
}

#[test]
fn the_index_lets_a_window_skip_segments_and_is_not_needed() {
    let w = World::new();
    let dir = store(&w);
    // Segment 1 is from 2020 and cannot be read; segment 2 is fine.
    let broken = dir.join(format!("{}.gz", seg_name(1)));
    std::fs::write(&broken, b"\x1f\x8b\x08\x00garbage").unwrap();
    write_segment(
        &dir,
        2,
        &lines(&[rec("2026-03-01T00:00:00Z", "authz", "s2")]),
        true,
    );
    std::fs::write(
        dir.join("events.jsonl"),
        lines(&[rec("2026-03-02T00:00:00Z", "authz", "s3")]),
    )
    .unwrap();
    let window = [
        "--stored",
        "-o",
        "jsonl",
        "--start-time",
        "2026-01-01T00:00:00Z",
    ];
    let warning = format!(
        "warning: {}: corrupt gzip data after line 0",
        broken.display()
    );

    // No index: every segment is read.
    let out = get(&w, &window);
    assert_eq!(sigs(ok(&out)), ["s2", "s3"]);
    assert!(out.stderr.starts_with(&warning), "{}", out.stderr);

    // An index that puts segment 1 in 2020: skipped unopened.
    write_index(
        &dir,
        &[
            (
                1,
                true,
                Some("2020-01-01T00:00:00Z"),
                Some("2020-01-02T00:00:00Z"),
                10,
            ),
            (
                2,
                true,
                Some("2026-03-01T00:00:00Z"),
                Some("2026-03-01T00:00:00Z"),
                1,
            ),
            // Listed but gone (retention deleted it meanwhile).
            (
                7,
                true,
                Some("2026-03-01T00:00:00Z"),
                Some("2026-03-01T00:00:00Z"),
                1,
            ),
        ],
    );
    let out = get(&w, &window);
    assert_eq!(sigs(ok(&out)), ["s2", "s3"]);
    assert_eq!(out.stderr, "");
    // The window covers 2020: read, so the problem shows.
    let out = get(
        &w,
        &[
            "--stored",
            "-o",
            "jsonl",
            "--start-time",
            "2019-01-01T00:00:00Z",
        ],
    );
    assert_eq!(sigs(ok(&out)), ["s2", "s3"]);
    assert!(out.stderr.starts_with(&warning), "{}", out.stderr);

    // A stale index that does not list segment 1: read, whatever the window.
    write_index(
        &dir,
        &[(
            2,
            true,
            Some("2026-03-01T00:00:00Z"),
            Some("2026-03-01T00:00:00Z"),
            1,
        )],
    );
    let out = get(&w, &window);
    assert!(out.stderr.starts_with(&warning), "{}", out.stderr);

    // An unreadable index, or one of another version, is as good as none.
    for text in ["{not json", r#"{"version":9,"segments":[]}"#] {
        std::fs::write(dir.join("segments.json"), text).unwrap();
        let out = get(&w, &window);
        assert_eq!(sigs(ok(&out)), ["s2", "s3"], "{text}");
        assert!(out.stderr.starts_with(&warning), "{text}: {}", out.stderr);
    }
}

#[test]
fn a_segment_being_compressed_is_read_once_from_its_plain_file() {
    let w = World::new();
    let dir = store(&w);
    let records = [
        rec("2026-04-01T00:00:00Z", "authz", "x1"),
        rec("2026-04-01T00:00:01Z", "authz", "x2"),
    ];
    write_segment(&dir, 1, &lines(&records), false);
    // The compression's output, half written (as a crash could leave it
    // before the rename): not the whole segment.
    let mut half = gz(&lines(&records));
    half.truncate(half.len() / 2);
    std::fs::write(dir.join(format!("{}.gz", seg_name(1))), half).unwrap();
    let out = get(&w, &["--stored", "-o", "jsonl"]);
    assert_eq!(sigs(ok(&out)), ["x1", "x2"]);
    assert_eq!(out.stderr, "");
    // Compression done: only the .gz.
    std::fs::remove_file(dir.join(seg_name(1))).unwrap();
    write_segment(&dir, 1, &lines(&records), true);
    let out = get(&w, &["--stored", "-o", "jsonl"]);
    assert_eq!(sigs(ok(&out)), ["x1", "x2"]);
    assert_eq!(out.stderr, "");
}

#[test]
fn bad_input_is_one_warning_each_and_the_rest_is_printed() {
    let w = World::new();
    let dir = store(&w);
    // A corrupt gzip segment: its readable part is printed.
    let many: Vec<String> = (0..3000)
        .map(|i| {
            rec(
                &format!("2026-05-01T00:{:02}:{:02}Z", i / 60 % 60, i % 60),
                "authz",
                &format!("g{i:04}"),
            )
        })
        .collect();
    let mut broken = gz(&lines(&many));
    broken.truncate(broken.len() / 2);
    let broken_path = dir.join(format!("{}.gz", seg_name(1)));
    std::fs::write(&broken_path, broken).unwrap();
    // A torn last line in a closed segment, and a line that is no record.
    let torn_path = write_segment(
        &dir,
        2,
        &format!(
            "{}\nthis is not a record\n{}\n{{\"event_ts\":\"2026-06-01T00:00",
            rec("2026-06-01T00:00:00Z", "authn", "t1"),
            rec("2026-06-01T00:00:01Z", "authn", "t2")
        ),
        false,
    );
    std::fs::write(
        dir.join("events.jsonl"),
        format!("{}\n[1,2,3]\n", rec("2026-06-02T00:00:00Z", "authz", "a1")),
    )
    .unwrap();
    let active_path = dir.join("events.jsonl");
    let out = get(&w, &["--stored", "-o", "jsonl", "--limit", "0"]);
    let got = sigs(ok(&out));
    let readable = got.iter().filter(|s| s.starts_with('g')).count();
    assert!(readable > 0 && readable < 3000, "{readable}");
    let want: Vec<String> = (0..readable).map(|i| format!("g{i:04}")).collect();
    assert_eq!(got[..readable], want[..]);
    assert_eq!(got[readable..], ["t1", "t2", "a1"]);
    // One warning per problem, each file's in line order (the active file
    // is read first: see source/stored.rs).
    let warnings: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(warnings.len(), 4, "{}", out.stderr);
    assert_eq!(
        warnings[0],
        format!(
            "warning: {}:2: not an audit record: not a JSON object or a CEF line",
            active_path.display()
        )
    );
    assert!(
        warnings[1].starts_with(&format!(
            "warning: {}: corrupt gzip data after line {readable}:",
            broken_path.display()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        warnings[2],
        format!(
            "warning: {}:2: not an audit record: not a JSON object or a CEF line",
            torn_path.display()
        )
    );
    assert!(
        warnings[3].starts_with(&format!(
            "warning: {}:4: torn last line (no newline at the end): invalid JSON",
            torn_path.display()
        )),
        "{}",
        out.stderr
    );
    // --strict: the same output and warnings, exit 1.
    let strict = get(&w, &["--stored", "-o", "jsonl", "--limit", "0", "--strict"]);
    assert_eq!(strict.code(), Some(1));
    assert_eq!(strict.stdout, out.stdout);
    assert!(
        strict.stderr.starts_with(&out.stderr)
            && strict
                .stderr
                .ends_with("Error: 4 line(s) could not be read as audit records (--strict)\n"),
        "{}",
        strict.stderr
    );
}

#[test]
fn file_queries_take_every_filter_and_output() {
    let w = World::new();
    let a = w.dir.path().join("a.jsonl");
    let b = w.dir.path().join("b.export");
    std::fs::write(
        &a,
        lines(&[
            rec("2026-07-01T00:03:00Z", "authz", "a3"),
            rec("2026-07-01T00:01:00Z", "authn", "a1"),
        ]),
    )
    .unwrap();
    // gzip by content, whatever the name; the last line without newline.
    std::fs::write(
        &b,
        gz(&format!(
            "{}\n{}",
            rec("2026-07-01T00:02:00Z", "access", "b2"),
            rec("2026-07-01T00:04:00Z", "authz", "b4")
        )),
    )
    .unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let q = |args: &[&str]| {
        let mut all = vec!["--file", a, "--file", b, "-o", "jsonl"];
        all.extend(args);
        sigs(ok(&get(&w, &all)))
    };
    assert_eq!(q(&[]), ["a1", "b2", "a3", "b4"]);
    assert_eq!(q(&["--type", "authorization"]), ["a3", "b4"]);
    assert_eq!(q(&["--type", "access"]), ["b2"]);
    assert_eq!(q(&["--limit", "1"]), ["b4"]);
    assert_eq!(
        q(&["--start-time", "2026-07-01T00:02:00Z", "--limit", "2"]),
        ["b2", "a3"]
    );
    assert_eq!(q(&["--end-time", "2026-07-01T00:02:00Z"]), ["a1", "b2"]);
    assert_eq!(q(&["--since", "1h"]), Vec::<String>::new());
    let out = get(&w, &["--file", a, "-o", "json", "--jq", "[.data[].sig]"]);
    assert_eq!(ok(&out).replace([' ', '\n'], ""), r#"["a1","a3"]"#);
    let out = get(&w, &["--file", b, "--columns", "S=.sig"]);
    assert_eq!(ok(&out), "S\nb2\nb4\n");
    let out = get(&w, &["--file", a, "-o", "yaml"]);
    assert!(ok(&out).contains("count: 2"));
    let out = get(&w, &["--file", a, "-o", "jsonl", "-r", "--jq", ".name"]);
    assert_eq!(ok(&out), "AUTHENTICATION_OUTCOME_SUCCESS\nAuthz.portals\n");
    // stdin.
    let mut cmd = w.kongctl();
    cmd.args([
        "get",
        "audit-logs",
        "--file",
        "-",
        "-o",
        "jsonl",
        "--jq",
        ".sig",
    ])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&gz(&lines(&[rec("2026-07-02T00:00:00Z", "authz", "in")])))
        .unwrap();
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success());
    assert_eq!(String::from_utf8_lossy(&done.stdout), "\"in\"\n");
    // A torn last line and a non-record line: warnings, exit 0; --strict 1.
    let c = w.dir.path().join("c.jsonl");
    std::fs::write(
        &c,
        format!(
            "nope\n{}\n{{\"torn\":",
            rec("2026-07-03T00:00:00Z", "authz", "c1")
        ),
    )
    .unwrap();
    let c = c.to_str().unwrap();
    let out = get(&w, &["--file", c, "-o", "jsonl"]);
    assert_eq!(sigs(ok(&out)), ["c1"]);
    assert_eq!(out.stderr.lines().count(), 2, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with(&format!("warning: {c}:1: not an audit record"))
    );
    assert!(out.stderr.contains(&format!(
        "warning: {c}:3: torn last line (no newline at the end)"
    )));
    let out = get(&w, &["--file", c, "-o", "jsonl", "--strict"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(sigs(&out.stdout), ["c1"]);
    let out = get(&w, &["--file", c, "--follow"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .starts_with("Error: --follow cannot be used with --file")
    );
}

/// Kong's verbatim CEF sample of a kind, its display line breaks joined.
fn verbatim_cef(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/konnect-verbatim")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn cef_records_query_as_json_and_print_as_stored() {
    let w = World::new();
    let dir = store(&w);
    let cef = [
        verbatim_cef("access.konnect.cef.txt"),
        verbatim_cef("authentication.konnect.cef.txt"),
        verbatim_cef("authentication.dev-portal.cef.txt"),
        verbatim_cef("authorization.konnect.cef.txt"),
        verbatim_cef("authorization.konnect.single-line.cef"),
    ];
    std::fs::write(dir.join("events.jsonl"), lines(&cef)).unwrap();
    // Raw, in time order (2025-05-16, 05-19 x2, 06-18, 06-23).
    let out = get(&w, &["--stored", "-o", "jsonl"]);
    assert_eq!(
        ok(&out),
        lines(&[
            cef[0].clone(),
            cef[1].clone(),
            cef[3].clone(),
            cef[4].clone(),
            cef[2].clone()
        ])
    );
    // --type from the CEF header, --jq on the JSON shape.
    let out = get(
        &w,
        &[
            "--stored",
            "-o",
            "jsonl",
            "--type",
            "authorization",
            "--jq",
            "{event_ts, name, granted, trace_id, rt, actor_id, user_agent}",
        ],
    );
    assert_eq!(
        ok(&out),
        "{\"actor_id\":\"\",\"event_ts\":\"2025-05-19T00:03:39Z\",\"granted\":true,\"name\":\"Authz.portals\",\"rt\":\"16738287345642\",\"trace_id\":8809518331550410226,\"user_agent\":\"grpc-node/1.24.11 grpc-c/8.0.0 (linux; chttp2; ganges)\"}\n\
         {\"actor_id\":null,\"event_ts\":\"2025-06-18T21:02:36Z\",\"granted\":true,\"name\":\"Authz.control-planes\",\"rt\":\"1750280466889\",\"trace_id\":3959872677347089807,\"user_agent\":\"grpc-node-js/1.12.4\"}\n"
    );
    // One filter for both formats: the JSON sample of the same kind.
    let json_sample: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/konnect-verbatim/authentication.dev-portal.json.txt"),
        )
        .unwrap(),
    )
    .unwrap();
    let json_file = w.dir.path().join("sample.jsonl");
    std::fs::write(&json_file, format!("{json_sample}\n")).unwrap();
    let filter = "select(.success == \"true\") | [.event_product, .rt, .status, (.trace_id|type)]";
    let cef_out = get(
        &w,
        &[
            "--stored",
            "-o",
            "jsonl",
            "--type",
            "authentication",
            "--jq",
            filter,
        ],
    );
    let json_out = get(
        &w,
        &[
            "--file",
            json_file.to_str().unwrap(),
            "-o",
            "jsonl",
            "--jq",
            filter,
        ],
    );
    assert_eq!(
        ok(&cef_out),
        "[\"Konnect\",\"3958q3097698\",null,\"number\"]\n[\"Dev-Portal\",\"1750688927556\",null,\"number\"]\n"
    );
    assert_eq!(
        ok(&json_out),
        "[\"Dev-Portal\",\"1750688927556\",null,\"number\"]\n"
    );
    // The time filter uses the CEF header's time; columns see the JSON.
    let out = get(
        &w,
        &[
            "--stored",
            "--start-time",
            "2025-06-01T00:00:00Z",
            "--columns",
            "WHEN=.event_ts,STATUS=.status,WHO=.principal_id",
            "--type",
            "gateway_access",
        ],
    );
    assert_eq!(ok(&out), "WHEN  STATUS  WHO\n");
    let out = get(
        &w,
        &[
            "--stored",
            "--end-time",
            "2025-05-17T00:00:00Z",
            "--columns",
            "WHEN=.event_ts,STATUS=.status",
        ],
    );
    assert_eq!(
        ok(&out),
        "WHEN                  STATUS\n2025-05-16T20:09:54Z  200\n"
    );
}

/// `tail --stored` with `args`, in the background.
fn tail_stored(w: &World, args: &[&str]) -> Running {
    let mut all = vec!["tail", "--stored"];
    all.extend(args);
    w.spawn(&all)
}

/// The log of every kongctl that `w` runs.
fn log_text(w: &World) -> String {
    std::fs::read_to_string(w.config_dir().join("logs").join("kongctl.log")).unwrap_or_default()
}

/// How often `needle` is in the log past its first `from` bytes.
fn logged(w: &World, from: usize, needle: &str) -> usize {
    log_text(w)
        .get(from..)
        .map_or(0, |t| t.matches(needle).count())
}

/// `tail --stored` with `args`, logging at debug level, returned once it
/// says it follows the store: its snapshot is taken (so `-n 0` skips only
/// what was there before) and Ctrl+C ends it cleanly.
fn tail_stored_following(w: &World, args: &[&str]) -> Running {
    let from = log_text(w).len();
    let mut all = vec!["--log-level", "debug", "tail", "--stored"];
    all.extend(args);
    let mut tail = w.spawn(&all);
    eventually("tail --stored to follow the store", || {
        assert!(tail.is_running(), "tail --stored ended: {}", tail.stderr());
        logged(w, from, "tail --stored: following the store") > 0
    });
    tail
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Waits until stdout holds exactly `want` (as jsonl sigs).
fn wait_sigs(tail: &mut Running, want: &[&str]) {
    let want_text = format!("{want:?}");
    tail.wait_stdout(&format!("stdout sigs {want_text}"), |out| {
        out.ends_with('\n') && sigs(out) == want
    });
}

#[test]
fn tail_stored_prints_the_last_n_then_follows_across_rotation() {
    let w = World::new();
    let dir = store(&w);
    let active = dir.join("events.jsonl");
    let r = |i: u32| {
        rec(
            &format!("2026-08-01T00:00:{i:02}Z"),
            "authz",
            &format!("r{i}"),
        )
    };
    write_segment(&dir, 1, &lines(&[r(1), r(2), r(3)]), true);
    std::fs::write(&active, lines(&[r(4), r(5)])).unwrap();

    // The last 4: two from the newest segment, two from the active file.
    let mut tail = tail_stored_following(&w, &["-n", "4"]);
    wait_sigs(&mut tail, &["r2", "r3", "r4", "r5"]);

    // A new record is printed; a line being written is not, until whole.
    append(&active, &format!("{}\n", r(6)));
    let half = r(7);
    let (head, rest) = half.split_at(20);
    let from = log_text(&w).len();
    append(&active, head);
    wait_sigs(&mut tail, &["r2", "r3", "r4", "r5", "r6"]);
    // The follower logs each poll that leaves the half line unread; after
    // the second, the first one's output is all out.
    eventually("two polls that leave the half line", || {
        logged(&w, from, "the last line has no newline yet") >= 2
    });
    assert_eq!(
        sigs(&tail.stdout()).len(),
        5,
        "the half line is not printed"
    );
    append(&active, &format!("{rest}\n"));
    wait_sigs(&mut tail, &["r2", "r3", "r4", "r5", "r6", "r7"]);

    // Rotation: events.jsonl becomes segment 2, a new one begins.
    append(&active, &format!("{}\n", r(8)));
    std::fs::rename(&active, dir.join(seg_name(2))).unwrap();
    std::fs::write(&active, lines(&[r(9)])).unwrap();
    wait_sigs(&mut tail, &["r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"]);

    // Rotations faster than the follower looks, with one rotated file
    // compressed (plain removed) before it could be seen.
    append(&active, &format!("{}\n", r(10)));
    std::fs::rename(&active, dir.join(seg_name(3))).unwrap();
    std::fs::write(&active, lines(&[r(11)])).unwrap();
    std::fs::rename(&active, dir.join(seg_name(4))).unwrap();
    std::fs::write(
        dir.join(format!("{}.gz", seg_name(4))),
        gz(&lines(&[r(11)])),
    )
    .unwrap();
    std::fs::remove_file(dir.join(seg_name(4))).unwrap();
    std::fs::write(&active, lines(&[r(12)])).unwrap();
    wait_sigs(
        &mut tail,
        &[
            "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12",
        ],
    );
    assert_eq!(tail.stderr(), "");
    tail.interrupt();
    assert!(tail.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn tail_stored_outputs_and_flags() {
    let w = World::new();
    let dir = store(&w);
    let active = dir.join("events.jsonl");
    std::fs::write(
        &active,
        lines(&[
            rec("2026-09-01T00:00:01Z", "authn", "n1"),
            rec("2026-09-01T00:00:02Z", "authz", "z2"),
            rec("2026-09-01T00:00:03Z", "access", "x3"),
        ]),
    )
    .unwrap();
    // Default: 10 records, as stored; --follow=false ends after them.
    let out = w.run(&["tail", "--stored", "--follow=false"]);
    assert_eq!(ok(&out), std::fs::read_to_string(&active).unwrap());
    let out = w.run(&["tail", "--stored", "-n", "0", "--follow=false"]);
    assert_eq!(ok(&out), "");
    let out = w.run(&[
        "tail",
        "--stored",
        "-n",
        "1",
        "--follow=false",
        "--type",
        "authorization",
    ]);
    assert_eq!(sigs(ok(&out)), ["z2"]);
    let out = w.run(&["tail", "--stored", "--follow=false", "--jq", ".sig"]);
    assert_eq!(ok(&out), "\"n1\"\n\"z2\"\n\"x3\"\n");
    let out = w.run(&[
        "tail",
        "--stored",
        "--follow=false",
        "-o",
        "jsonl",
        "-r",
        "--jq",
        ".sig",
    ]);
    assert_eq!(ok(&out), "n1\nz2\nx3\n");
    for bad in ["-1", "x"] {
        let out = w.run(&["tail", "--stored", "-n", bad]);
        assert_eq!(out.code(), Some(1), "{bad}");
        assert!(out.stderr.contains("--lines"), "{bad}: {}", out.stderr);
    }
    let out = w.run(&["tail", "--stored", "-o", "json"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .starts_with("Error: --follow requires row-oriented output"),
        "{}",
        out.stderr
    );

    // Text rows as they come, after a header.
    let mut tail = tail_stored(&w, &["-n", "1", "-o", "text", "--type", "authentication"]);
    tail.wait_stdout("header and n1", |out| {
        out.starts_with("TIMESTAMP") && out.contains("2026-09-01T00:00:01Z\tauthentication")
    });
    append(
        &active,
        &format!(
            "{}\n{}\n",
            rec("2026-09-01T00:00:04Z", "authz", "z4"),
            rec("2026-09-01T00:00:05Z", "authn", "n5")
        ),
    );
    tail.wait_stdout("n5", |out| {
        out.contains("2026-09-01T00:00:05Z\tauthentication")
    });
    assert!(!tail.stdout().contains("2026-09-01T00:00:04Z"));
    tail.interrupt();
    assert!(tail.wait_exit(Duration::from_secs(10)).success());

    // A new non-record line is a warning; following goes on.
    let mut tail = tail_stored_following(&w, &["-n", "0", "--jq", ".sig"]);
    append(
        &active,
        &format!("garbage\n{}\n", rec("2026-09-01T00:00:06Z", "authz", "z6")),
    );
    tail.wait_stdout("z6", |out| out == "\"z6\"\n");
    assert!(
        tail.stderr().starts_with(&format!(
            "warning: {}:6: not an audit record",
            active.display()
        )),
        "{}",
        tail.stderr()
    );
    // Ctrl+C ends it, exit 0.
    tail.interrupt();
    assert!(tail.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn tail_stored_waits_for_a_store_that_does_not_exist_yet() {
    let w = World::new();
    // It takes an empty snapshot and waits for the store to appear.
    let mut tail = tail_stored_following(&w, &[]);
    let dir = store(&w);
    std::fs::write(
        dir.join("events.jsonl"),
        lines(&[rec("2026-10-01T00:00:00Z", "authz", "first")]),
    )
    .unwrap();
    wait_sigs(&mut tail, &["first"]);
    tail.interrupt();
    assert!(tail.wait_exit(Duration::from_secs(10)).success());
    // get --stored on a profile with nothing stored: nothing, exit 0.
    let out = w.run(&[
        "--profile",
        "empty",
        "get",
        "audit-logs",
        "--stored",
        "-o",
        "jsonl",
    ]);
    assert_eq!(ok(&out), "");
}

#[test]
fn tail_stored_follows_a_running_listener_and_its_successor() {
    let w = World::new();
    let batch = |from: u32, n: u32| -> Vec<u8> {
        let records: Vec<String> = (from..from + n)
            .map(|i| {
                rec(
                    &format!("2026-11-01T00:00:{i:02}Z"),
                    "authz",
                    &format!("l{i}"),
                )
            })
            .collect();
        gzip(lines(&records).as_bytes())
    };
    let post_batch = |l: &Listener, body: Vec<u8>| {
        assert_eq!(
            post(
                l.addr,
                "/audit-logs",
                &[
                    ("Authorization", AUTH),
                    ("Content-Encoding", "application/gzip")
                ],
                &body
            ),
            202
        );
    };
    let mut first = w.start_listener("listen", &[]);
    post_batch(&first, batch(1, 3));
    // A reader: works while the listener holds the profile.
    let mut tail = tail_stored(&w, &["-n", "2"]);
    wait_sigs(&mut tail, &["l2", "l3"]);
    post_batch(&first, batch(4, 2));
    wait_sigs(&mut tail, &["l2", "l3", "l4", "l5"]);
    first.stop_ok();
    // The file rotates between two listeners (what a rotating listener
    // does at its size limit: rename, then a new events.jsonl).
    let dir = w.storage_dir("default");
    std::fs::rename(dir.join("events.jsonl"), dir.join(seg_name(1))).unwrap();
    let second = w.start_listener("listen", &[]);
    post_batch(&second, batch(6, 2));
    wait_sigs(&mut tail, &["l2", "l3", "l4", "l5", "l6", "l7"]);
    // And get --stored sees both files.
    let out = get(&w, &["--stored", "-o", "jsonl", "--jq", ".sig", "-r"]);
    assert_eq!(ok(&out), "l1\nl2\nl3\nl4\nl5\nl6\nl7\n");
    assert_eq!(tail.stderr(), "");
    tail.interrupt();
    assert!(tail.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn a_rotating_listener_is_followed_and_queried_whole() {
    // The writer and the readers together: a listener that rotates every
    // couple of batches (and gzips what it closes), `tail --stored`
    // following it from the start, then queries over the segments.
    let w = World::new();
    let sig = |i: u32| format!("z{i:03}");
    let ts = |i: u32| format!("2026-11-01T00:{:02}:{:02}Z", i / 60, i % 60);
    let batch = |from: u32, n: u32| -> Vec<u8> {
        let records: Vec<String> = (from..from + n)
            .map(|i| rec(&ts(i), "authz", &sig(i)))
            .collect();
        gzip(lines(&records).as_bytes())
    };
    let mut listener = w.start_listener("listen", &["--max-file-size", "2KiB"]);
    // -n covers all: records written before the reader first looks are
    // printed as the last N, the rest as they come.
    let mut tail = tail_stored(&w, &["-n", "1000"]);
    let (batches, per) = (20, 5);
    for b in 0..batches {
        let status = post(
            listener.addr,
            "/audit-logs",
            &[
                ("Authorization", AUTH),
                ("Content-Encoding", "application/gzip"),
            ],
            &batch(b * per, per),
        );
        assert_eq!(status, 202);
    }
    let all: Vec<String> = (0..batches * per).map(sig).collect();
    let want: Vec<&str> = all.iter().map(String::as_str).collect();
    wait_sigs(&mut tail, &want);

    // Closed segments are gzip'd in the background: wait until no plain
    // segment is left, so the queries read compressed ones.
    let dir = w.storage_dir("default");
    let segments = |gz: bool| -> usize {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.starts_with("events-") && n.ends_with(if gz { ".jsonl.gz" } else { ".jsonl" })
            })
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while segments(false) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(segments(false), 0, "every closed segment gets gzip'd");
    assert!(
        segments(true) >= 5,
        "2 KiB rotations: {} segments",
        segments(true)
    );

    let out = get(
        &w,
        &[
            "--stored", "--limit", "0", "-o", "jsonl", "--jq", ".sig", "-r",
        ],
    );
    assert_eq!(ok(&out), format!("{}\n", all.join("\n")));
    // A window reads only what it covers, from whichever files hold it.
    let out = get(
        &w,
        &[
            "--stored",
            "--start-time",
            &ts(37),
            "--end-time",
            &ts(61),
            "-o",
            "jsonl",
            "--jq",
            ".sig",
            "-r",
        ],
    );
    let window: Vec<String> = (37..=61).map(sig).collect();
    assert_eq!(ok(&out), format!("{}\n", window.join("\n")));
    // The default: the 50 most recent, oldest first.
    let out = get(&w, &["--stored", "-o", "jsonl", "--jq", ".sig", "-r"]);
    let recent: Vec<String> = (50..100).map(sig).collect();
    assert_eq!(ok(&out), format!("{}\n", recent.join("\n")));

    assert_eq!(tail.stderr(), "");
    tail.interrupt();
    assert!(tail.wait_exit(Duration::from_secs(10)).success());
    listener.stop_ok();
}

#[test]
fn grep_prints_what_grep_would_and_reads_nothing_else() {
    let w = World::new();
    let dir = store(&w);
    let cef = verbatim_cef("authorization.konnect.cef.txt");
    let seg1 = lines(&[
        rec("2026-01-01T00:01:00Z", "authz", "a1"),
        rec("2026-01-01T00:02:00Z", "access", "a2"),
        // Not a record, and no match: neither read nor reported.
        "not a record".to_owned(),
        rec("2026-01-01T00:03:00Z", "authn", "a3"),
    ]);
    write_segment(&dir, 1, &seg1, true);
    let seg2 = lines(&[
        rec("2026-01-01T00:04:00Z", "authz", "b1"),
        // Not a record, but it matches: reported.
        "not a record, p-b2".to_owned(),
        rec("2026-01-01T00:05:00Z", "access", "b2"),
    ]);
    write_segment(&dir, 2, &seg2, false);
    let active = format!(
        "{}{cef}\n",
        lines(&[rec("2026-01-01T00:06:00Z", "authz", "c1")])
    );
    std::fs::write(dir.join("events.jsonl"), &active).unwrap();
    // What `zcat | grep` prints: the lines holding the pattern, as stored.
    let grep = |pattern: &str| -> String {
        let re = regex::bytes::Regex::new(pattern).unwrap();
        [seg1.as_str(), seg2.as_str(), active.as_str()]
            .concat()
            .lines()
            .filter(|l| re.is_match(l.as_bytes()))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let query = |args: &[&str]| {
        let mut all = vec!["--stored", "--limit", "0", "-o", "jsonl"];
        all.extend(args);
        get(&w, &all)
    };
    let out = query(&["--grep", "p-(a|b)2"]);
    assert_eq!(
        ok(&out),
        grep("p-(a|b)2").replace("not a record, p-b2\n", "")
    );
    assert_eq!(sigs(&out.stdout), ["a2", "b2"]);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(":2: not an audit record"),
        "{}",
        out.stderr
    );
    // A CEF record is matched as the line stored (its JSON form has
    // `"action":"retrieve"`, no `action=`), and printed as stored.
    let out = query(&["--grep", "action=retrieve"]);
    assert_eq!(ok(&out), format!("{cef}\n"));
    assert_eq!(ok(&query(&["--grep", "(?i)P-A[13]"])), grep("(?i)P-A[13]"));
    assert_eq!(ok(&query(&["--grep", "P-A[13]"])), "");
    // With every other filter: all must hold.
    let out = query(&[
        "--grep",
        "p-[abc]1",
        "--type",
        "authorization",
        "--since",
        "100000d",
    ]);
    assert_eq!(sigs(ok(&out)), ["a1", "b1", "c1"]);
    let out = query(&[
        "--grep",
        "p-[abc]1",
        "--type",
        "authorization",
        "--jq",
        ".sig",
        "-r",
    ]);
    assert_eq!(ok(&out), "a1\nb1\nc1\n");
    // The most recent N that match (no window, no --limit 0).
    let out = get(
        &w,
        &["--stored", "--grep", "p-.1", "--limit", "2", "-o", "jsonl"],
    );
    assert_eq!(sigs(ok(&out)), ["b1", "c1"]);
    // --file: the same rule.
    let file = dir.join(format!("{}.gz", seg_name(1)));
    let out = get(
        &w,
        &[
            "--file",
            file.to_str().unwrap(),
            "--limit",
            "0",
            "-o",
            "jsonl",
            "--grep",
            "p-a[23]",
        ],
    );
    assert_eq!(sigs(ok(&out)), ["a2", "a3"]);
    assert_eq!(out.stderr, "");
    // A pattern that is not one.
    let out = get(&w, &["--stored", "--grep", "(?z)"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("invalid --grep pattern"),
        "{}",
        out.stderr
    );
}

#[test]
fn tail_stored_greps_what_it_prints_first_and_what_it_follows() {
    let w = World::new();
    let dir = store(&w);
    let active = dir.join("events.jsonl");
    let r = |i: u32, kind: &str| rec(&format!("2026-08-01T00:00:{i:02}Z"), kind, &format!("s{i}"));
    std::fs::write(
        &active,
        lines(&[r(1, "authz"), r(2, "access"), r(3, "authz"), r(4, "access")]),
    )
    .unwrap();
    let mut tail = tail_stored_following(&w, &["-n", "5", "--grep", "Ingress"]);
    wait_sigs(&mut tail, &["s2", "s4"]);
    append(&active, &lines(&[r(5, "authz"), r(6, "access")]));
    wait_sigs(&mut tail, &["s2", "s4", "s6"]);
    assert_eq!(tail.stderr(), "");
    tail.interrupt();
    assert!(tail.wait_exit(Duration::from_secs(10)).success());
}
