//! Hostile input against a running listener, through the real binary and a
//! raw TCP client (`test_support`: no HTTP library to tidy up what we
//! send): what only the real process shows. Its memory under gzip bombs,
//! the counters in listener.json, its fixed 10 s header timeout and
//! 1024-connection limit, hyper's parser as the binary configures it, and
//! slow or abandoned bodies, with what ends up in events.jsonl each time.
//!
//! The request contract itself (path, method, authorization, size limits,
//! gzip and encoding checks, line splitting, bytes kept as sent) is tested
//! case by case by the listener's unit tests in `src/listener/server.rs`,
//! with the same code that serves here; `tests/listen.rs` checks that the
//! binary's flags reach it.
//!
//! The authorization comparison is constant-time by construction
//! (`subtle::ConstantTimeEq` over the expected length, in
//! `src/listener/server.rs`); timing it from here would only measure noise,
//! so it is not tested here.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use test_support::{RawConn, Reply, exchange, request};

const AUTH: &str = "Bearer test-secret";
/// `--max-body-bytes` for the tests that do not need the default 1 MiB.
const MAX: usize = 64 * 1024;

fn post_authed(addr: SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut all = vec![("Authorization", AUTH)];
    all.extend_from_slice(headers);
    exchange(addr, &request("POST", "/audit-logs", &all, body))
}

/// A POST of `body` to the listener's path with the right authorization.
fn authed_request(body: &[u8]) -> Vec<u8> {
    request("POST", "/audit-logs", &[("Authorization", AUTH)], body)
}

fn stored(w: &World) -> Vec<u8> {
    std::fs::read(w.events_file()).unwrap_or_default()
}

/// Asserts a refusal: status, the original's text, and nothing stored.
#[track_caller]
fn assert_refused(w: &World, case: &str, reply: &Reply, status: u16, text: &str) {
    assert_eq!(reply.status, status, "{case}: {reply:?}");
    reply.assert_go_error(status, text);
    assert_eq!(
        stored(w),
        b"",
        "{case}: nothing may be stored for a refused request"
    );
}

fn listener(w: &World, max: usize) -> Listener {
    w.start_listener("listen", &["--max-body-bytes", &max.to_string()])
}

/// Stops the listener (Konnect cleanup included) and checks it exits 0.
fn stop(mut l: Listener, w: &World) {
    l.proc.interrupt();
    let status = l.proc.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit {status:?}\n{}", l.proc.stderr());
    w.assert_konnect_clean();
}

fn vm_hwm_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

fn chunked_head(extra: &str) -> Vec<u8> {
    format!(
        "POST /audit-logs HTTP/1.1\r\nHost: t.tunnel.test\r\nAuthorization: {AUTH}\r\n\
         Transfer-Encoding: chunked\r\n{extra}\r\n"
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------
// HTTP framing.

#[test]
fn malformed_http_is_refused_by_the_parser_and_stores_nothing() {
    let w = World::new();
    let l = listener(&w, MAX);
    let huge_header = format!("X-Pad: {}\r\n", "p".repeat(512 * 1024));
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    for (case, raw, status) in [
        ("garbage request line", b"HELLO THERE\r\n\r\n".to_vec(), 400),
        (
            "bad chunk size",
            [chunked_head("").as_slice(), b"zz\r\nabc\r\n0\r\n\r\n"].concat(),
            400,
        ),
        (
            "chunk size overflow",
            [chunked_head("").as_slice(), b"ffffffffffffffffff\r\nabc\r\n"].concat(),
            400,
        ),
        (
            "header over 512 KiB",
            format!("POST /audit-logs HTTP/1.1\r\nHost: t\r\n{huge_header}\r\n").into_bytes(),
            431,
        ),
        (
            "200 headers",
            format!("POST /audit-logs HTTP/1.1\r\nHost: t\r\n{many_headers}\r\n").into_bytes(),
            431,
        ),
        (
            "NUL in a header value",
            format!("POST /audit-logs HTTP/1.1\r\nHost: t\r\nAuthorization: {AUTH}\0\r\nContent-Length: 1\r\n\r\nx").into_bytes(),
            400,
        ),
    ] {
        let mut c = RawConn::connect(l.addr).expect("connect to the listener");
        // The server answers before reading all of a huge head.
        let writer = c.send_in_background(raw);
        match c.read_reply() {
            Ok(reply) => assert_eq!(reply.status, status, "{case}: {reply:?}"),
            Err(e) => panic!("{case}: no response ({e}), want {status}"),
        }
        let _ = writer.join();
        assert_eq!(stored(&w), b"", "{case}: nothing stored");
    }
    // Content-Length and chunked together (a smuggling attempt): chunked
    // framing wins (an empty body here), and the connection is closed after
    // the response (RFC 9112 §6.1), so the request hidden after it is never
    // read.
    let smuggle = format!(
        "POST /audit-logs HTTP/1.1\r\nHost: t\r\nAuthorization: {AUTH}\r\nContent-Length: 4\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /audit-logs HTTP/1.1\r\nHost: t\r\n\
         Authorization: {AUTH}\r\nContent-Length: 8\r\n\r\nsmuggled"
    );
    let mut c = RawConn::connect(l.addr).expect("connect to the listener");
    c.send(smuggle.as_bytes()).unwrap();
    let first = c.read_reply().expect("a response");
    assert_eq!(first.status, 202, "CL+TE: {first:?}");
    assert!(
        c.wait_closed(Duration::from_secs(5)).is_some(),
        "connection closed after a CL+TE request"
    );
    assert!(
        c.pending().is_empty(),
        "no second response: {:?}",
        c.pending()
    );
    assert_eq!(stored(&w), b"", "the smuggled request is not stored");
    // The listener still serves.
    assert_eq!(post_authed(l.addr, &[], b"after").status, 202);
    assert_eq!(stored(&w), b"after\n");
    stop(l, &w);
}

// ---------------------------------------------------------------------------
// gzip.

/// A single gzip member of `mib` MiB of zeros.
fn zeros_member(mib: usize) -> Vec<u8> {
    gzip(&vec![0u8; mib << 20])
}

#[test]
fn gzip_bombs_are_413_quickly_in_bounded_memory() {
    let w = World::new();
    // The default limit, 1 MiB raw and decoded.
    let l = w.start_listener("listen", &[]);
    let pid = l.proc.pid();
    let baseline = vm_hwm_kib(pid);

    // One member: 16 MiB of zeros in ~16 KiB.
    let single = zeros_member(16);
    // 110 members of 8 MiB each: ~880 MiB from under 1 MiB.
    let member = zeros_member(8);
    let multi: Vec<u8> = member.repeat(110);
    assert!(multi.len() < 1 << 20, "the bomb fits the raw limit");

    for (case, bomb) in [
        ("single member", &single),
        ("880 MiB in 110 members", &multi),
    ] {
        for encoding in [Some("application/gzip"), None] {
            let started = Instant::now();
            let headers: Vec<(&str, &str)> = encoding
                .map(|e| ("Content-Encoding", e))
                .into_iter()
                .collect();
            let reply = post_authed(l.addr, &headers, bomb);
            let took = started.elapsed();
            let case = format!("{case}, Content-Encoding {encoding:?}");
            assert_refused(&w, &case, &reply, 413, "decoded request body too large");
            assert!(took < Duration::from_secs(3), "{case}: took {took:?}");
        }
    }
    // Eight at once.
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (addr, bomb) = (l.addr, multi.clone());
            std::thread::spawn(move || post_authed(addr, &[("Content-Encoding", "gzip")], &bomb))
        })
        .collect();
    for s in senders {
        let reply = s.join().unwrap();
        assert_refused(
            &w,
            "concurrent bomb",
            &reply,
            413,
            "decoded request body too large",
        );
    }
    let peak = vm_hwm_kib(pid);
    assert!(
        peak < 64 * 1024,
        "listener peak RSS {peak} KiB (before the bombs: {baseline} KiB), want < 64 MiB"
    );
    assert_eq!(post_authed(l.addr, &[], b"still here").status, 202);
    stop(l, &w);
}

// ---------------------------------------------------------------------------
// Volume and slowness.

#[test]
fn ten_thousand_tiny_requests_on_kept_alive_connections_are_all_stored() {
    const CONNECTIONS: usize = 32;
    const PER_CONNECTION: usize = 10_000 / CONNECTIONS + 1;
    let w = World::new();
    let l = listener(&w, MAX);
    let started = Instant::now();
    let senders: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let addr = l.addr;
            std::thread::spawn(move || {
                let mut conn = RawConn::connect(addr).expect("connect to the listener");
                for i in 0..PER_CONNECTION {
                    let n = c * PER_CONNECTION + i;
                    if n >= 10_000 {
                        break;
                    }
                    let body = format!("{{\"n\":{n}}}");
                    conn.send(&authed_request(body.as_bytes()))
                        .unwrap_or_else(|e| panic!("request {n} on connection {c}: {e}"));
                    let reply = conn
                        .read_reply()
                        .unwrap_or_else(|e| panic!("reply {n} on connection {c}: {e}"));
                    assert_eq!(reply.status, 202, "request {n}");
                    assert!(!reply.closes_connection(), "kept alive: {reply:?}");
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    let took = started.elapsed();
    let lines = read_lines(&w.events_file());
    assert_eq!(lines.len(), 10_000, "every record stored once");
    let mut seen = vec![false; 10_000];
    for line in &lines {
        let n: usize = line
            .strip_prefix("{\"n\":")
            .and_then(|r| r.strip_suffix('}'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("torn or foreign line {line:?}"));
        assert!(!seen[n], "record {n} stored twice");
        seen[n] = true;
    }
    // The counters users see in listener.json catch up.
    let state = w.storage_dir("default").join("listener.json");
    eventually("listener.json counts 10000 requests", || {
        std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["requests_received"] == 10_000 && v["records_received"] == 10_000)
    });
    eprintln!("10000 requests on {CONNECTIONS} connections in {took:?}");
    stop(l, &w);
}

#[test]
fn slowloris_headers_are_cut_at_the_header_timeout_while_others_are_served() {
    // The header timeout is the original's 10 s and cannot be changed from
    // the command line; this test takes that long.
    let w = World::new();
    let l = listener(&w, MAX);
    let mut slow = RawConn::connect(l.addr).expect("connect to the listener");
    slow.send(b"POST /audit-logs HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let started = Instant::now();
    let trickled = Arc::new(AtomicUsize::new(0));
    let trickle = {
        let mut s = slow.writer().unwrap();
        let trickled = Arc::clone(&trickled);
        std::thread::spawn(move || {
            // A header byte every 250 ms: the slowness is the point, and
            // progress must not extend the deadline.
            for b in format!("Authorization: {AUTH}\r\nX-Slow: {}", "s".repeat(100)).bytes() {
                if s.write_all(&[b]).is_err() {
                    break;
                }
                trickled.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    // Meanwhile, once the trickle is under way, others are served at once.
    eventually("the trickle is under way", || {
        trickled.load(Ordering::Relaxed) >= 4
    });
    let quick = Instant::now();
    assert_eq!(post_authed(l.addr, &[], b"meanwhile").status, 202);
    assert!(quick.elapsed() < Duration::from_secs(2));
    let closed = slow.wait_closed(Duration::from_secs(20));
    let at = started.elapsed();
    let _ = trickle.join();
    assert!(closed.is_some(), "slow connection still open after {at:?}");
    assert!(
        at >= Duration::from_secs(9) && at < Duration::from_secs(14),
        "closed after {at:?}, want the 10 s header timeout"
    );
    assert!(
        slow.pending().is_empty(),
        "no response to a request never finished: {:?}",
        slow.pending()
    );
    assert_eq!(stored(&w), b"meanwhile\n");
    stop(l, &w);
}

#[test]
fn slow_bodies_are_accepted_whole_and_abandoned_ones_store_nothing() {
    let w = World::new();
    // At debug level the log says when the listener gave up on a body.
    let l = w.start_listener(
        "listen",
        &["--max-body-bytes", &MAX.to_string(), "--log-level", "debug"],
    );
    // A body trickled in 20 pieces over two seconds, then complete.
    let body: Vec<u8> = (0..20)
        .flat_map(|i| format!("{{\"piece\":{i:03}}}\n").into_bytes())
        .collect();
    let mut c = RawConn::connect(l.addr).expect("connect to the listener");
    let req = authed_request(&body);
    let head_len = req.len() - body.len();
    c.send(&req[..head_len]).unwrap();
    let pieces: Vec<&[u8]> = body.chunks(body.len() / 20).collect();
    for (i, piece) in pieces.iter().enumerate() {
        // The slowness is the point: a piece every 100 ms.
        std::thread::sleep(Duration::from_millis(100));
        c.send(piece).unwrap();
        // The last piece completes the body: from then on the listener may
        // store it at any moment, so only the pieces before it are checked.
        if i + 1 < pieces.len() {
            assert_eq!(
                stored(&w),
                b"",
                "nothing stored before the body is complete"
            );
        }
    }
    assert_eq!(c.read_reply().unwrap().status, 202);
    assert_eq!(stored(&w), body);

    // Bodies abandoned half-way, by Content-Length and chunked: nothing.
    let before = stored(&w);
    let mut c = RawConn::connect(l.addr).expect("connect to the listener");
    let req = authed_request(&[b'h'; 1000]);
    c.send(&req[..req.len() - 500]).unwrap();
    drop(c);
    let mut c = RawConn::connect(l.addr).expect("connect to the listener");
    c.send(&chunked_head("")).unwrap();
    c.send(b"10\r\n{\"half\":true}\n\r\n").unwrap();
    drop(c);
    let log = w.config_dir().join("logs/kongctl.log");
    eventually("the listener gave up on both bodies", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("failed to read request body")
            .count()
            >= 2
    });
    assert_eq!(stored(&w), before, "abandoned bodies store nothing");
    assert_eq!(post_authed(l.addr, &[], b"next").status, 202);
    stop(l, &w);
}

#[test]
fn more_connections_than_the_limit_wait_and_are_all_served() {
    // The listener serves 1024 connections at once (not configurable from
    // the command line); more wait to be accepted until a slot frees. Each
    // connection holds its slot after its request (kept alive) until the
    // 10 s idle timeout, so the last ones are served after about 10 s.
    const OVER: usize = 1100;
    let w = World::new();
    let l = listener(&w, MAX);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut conns: Vec<RawConn> = (0..OVER)
        .map(|_| {
            let t = Instant::now();
            let c = RawConn::connect(l.addr).expect("connect to the listener");
            slowest = slowest.max(t.elapsed());
            c
        })
        .collect();
    // A SYN dropped for a full accept queue is retried after a second.
    assert!(
        slowest < Duration::from_secs(1),
        "a connection took {slowest:?} to be established: the accept backlog overflowed"
    );
    for (i, c) in conns.iter_mut().enumerate() {
        c.send(&authed_request(format!("c{i}").as_bytes())).unwrap();
    }
    let mut late = 0;
    for (i, c) in conns.iter_mut().enumerate() {
        let reply = c
            .read_reply()
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert_eq!(reply.status, 202, "connection {i}");
        if started.elapsed() > Duration::from_secs(5) {
            late += 1;
        }
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(16), "all served in {took:?}");
    assert!(
        (OVER - 1024..OVER - 900).contains(&late),
        "{late} connections waited for a slot, want about {}",
        OVER - 1024
    );
    assert_eq!(read_lines(&w.events_file()).len(), OVER);
    stop(l, &w);
}
