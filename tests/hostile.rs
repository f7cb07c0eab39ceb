//! Hostile input against a running listener, through the real binary and a
//! raw TCP client (no HTTP library to tidy up what we send): every request
//! gets its status, and a refused request stores nothing, not even part of
//! its body.
//!
//! The authorization comparison is constant-time by construction
//! (`subtle::ConstantTimeEq` over the expected length, in
//! `src/listener/server.rs`); timing it from here would only measure noise,
//! so it is not tested here.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

const AUTH: &str = "Bearer test-secret";
/// `--max-body-bytes` for the tests that do not need the default 1 MiB.
const MAX: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// A raw HTTP/1.1 client.

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One connection, kept alive between requests.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect to the listener");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response (its body by Content-Length).
    fn reply(&mut self) -> io::Result<Reply> {
        self.read_reply(true)
    }

    /// Reads the response to a HEAD request (no body, whatever
    /// Content-Length says).
    fn head_reply(&mut self) -> io::Result<Reply> {
        self.read_reply(false)
    }

    fn read_reply(&mut self, with_body: bool) -> io::Result<Reply> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {head:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length") && with_body)
            .map_or(0, |(_, v)| v.parse().unwrap());
        while self.buf.len() < head_end + len {
            self.fill()?;
        }
        let body = self.buf[head_end..head_end + len].to_vec();
        self.buf.drain(..head_end + len);
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk)? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// Waits until the peer closes the connection (EOF or reset); how
    /// long that took, or `None` if it stayed open for `limit`.
    fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        self.stream.set_read_timeout(Some(limit)).unwrap();
        let mut chunk = [0u8; 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Some(started.elapsed()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(_) => return Some(started.elapsed()),
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A request with a Content-Length body and a Host header.
fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: t.tunnel.test\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    req
}

/// Sends `raw` on a fresh connection and reads the response, while a
/// second thread keeps writing `tail` (a body the server may refuse to
/// read: write errors are expected then and ignored).
fn exchange(addr: SocketAddr, raw: &[u8], tail: Vec<u8>) -> Reply {
    let mut c = Conn::open(addr);
    c.send(raw).expect("send the request head");
    let mut writer = c.stream.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        for piece in tail.chunks(64 * 1024) {
            if writer.write_all(piece).is_err() {
                break;
            }
        }
    });
    let reply = c.reply().expect("a response");
    drop(c);
    let _ = feeder.join();
    reply
}

fn post(addr: SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    exchange(
        addr,
        &request("POST", "/audit-logs", headers, body),
        Vec::new(),
    )
}

fn post_authed(addr: SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut all = vec![("Authorization", AUTH)];
    all.extend_from_slice(headers);
    post(addr, &all, body)
}

fn stored(w: &World) -> Vec<u8> {
    std::fs::read(w.events_file()).unwrap_or_default()
}

/// Asserts a refusal: status, the original's text, and nothing stored.
#[track_caller]
fn assert_refused(w: &World, case: &str, reply: &Reply, status: u16, text: &str) {
    assert_eq!(reply.status, status, "{case}: {reply:?}");
    assert_eq!(reply.text(), format!("{text}\n"), "{case}: response body");
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

// ---------------------------------------------------------------------------
// Method, path, authorization.

#[test]
fn other_methods_are_405_with_allow_post() {
    let w = World::new();
    let l = listener(&w, MAX);
    for method in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "FROB"] {
        let reply = exchange(
            l.addr,
            &request(
                method,
                "/audit-logs",
                &[("Authorization", AUTH)],
                b"{\"a\":1}",
            ),
            Vec::new(),
        );
        assert_refused(&w, method, &reply, 405, "method not allowed");
        assert_eq!(reply.header("Allow"), Some("POST"), "{method}: {reply:?}");
    }
    // HEAD: the same status and Allow, no body.
    let mut c = Conn::open(l.addr);
    c.send(&request(
        "HEAD",
        "/audit-logs",
        &[("Authorization", AUTH)],
        b"",
    ))
    .unwrap();
    let reply = c.head_reply().unwrap();
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("Allow"), Some("POST"));
    stop(l, &w);
}

#[test]
fn other_paths_are_404() {
    let w = World::new();
    let l = listener(&w, MAX);
    for path in [
        "/",
        "/audit-logs/",
        "/audit-logsx",
        "/AUDIT-LOGS",
        "//audit-logs",
        "/x/audit-logs",
        "/audit-logs/../audit-logs",
        "/audit%2Dlogs",
        "*",
    ] {
        let reply = exchange(
            l.addr,
            &request("POST", path, &[("Authorization", AUTH)], b"{\"a\":1}"),
            Vec::new(),
        );
        assert_refused(&w, path, &reply, 404, "404 page not found");
    }
    // The query string is not part of the path.
    let reply = exchange(
        l.addr,
        &request("POST", "/audit-logs?x=1", &[("Authorization", AUTH)], b"q"),
        Vec::new(),
    );
    assert_eq!(reply.status, 202);
    assert_eq!(stored(&w), b"q\n");
    stop(l, &w);
}

#[test]
fn authorization_must_match_exactly_but_surrounding_blanks_are_trimmed() {
    let w = World::new();
    let l = listener(&w, MAX);
    let missing = post(l.addr, &[], b"{}");
    assert_refused(&w, "missing", &missing, 401, "unauthorized");
    for (case, value) in [
        ("empty", ""),
        ("wrong", "Bearer nope"),
        ("last byte differs", "Bearer test-secreu"),
        ("first byte differs", "Cearer test-secret"),
        ("prefix", "Bearer test-secre"),
        ("longer", "Bearer test-secret0"),
        ("double space inside", "Bearer  test-secret"),
        ("tab inside", "Bearer\ttest-secret"),
        ("scheme case", "bearer test-secret"),
        ("token only", "test-secret"),
        ("Basic", "Basic dGVzdDpzZWNyZXQ="),
    ] {
        let reply = post(l.addr, &[("Authorization", value)], b"{}");
        assert_refused(&w, case, &reply, 401, "unauthorized");
    }
    // The original trims the header: blanks around it are accepted.
    for (i, value) in [
        " Bearer test-secret",
        "Bearer test-secret   ",
        "\tBearer test-secret\t",
    ]
    .iter()
    .enumerate()
    {
        let reply = post(
            l.addr,
            &[("Authorization", value)],
            format!("r{i}").as_bytes(),
        );
        assert_eq!(reply.status, 202, "{value:?}: {reply:?}");
    }
    assert_eq!(stored(&w), b"r0\nr1\nr2\n");
    stop(l, &w);
}

// ---------------------------------------------------------------------------
// Body size.

fn chunked(data: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn chunked_head(extra: &str) -> Vec<u8> {
    format!(
        "POST /audit-logs HTTP/1.1\r\nHost: t.tunnel.test\r\nAuthorization: {AUTH}\r\n\
         Transfer-Encoding: chunked\r\n{extra}\r\n"
    )
    .into_bytes()
}

#[test]
fn oversize_bodies_are_413_and_store_nothing() {
    let w = World::new();
    let l = listener(&w, MAX);
    let too_big = vec![b'x'; MAX + 1];

    // Content-Length over the limit, body sent: refused.
    let reply = post_authed(l.addr, &[], &too_big);
    assert_refused(
        &w,
        "Content-Length max+1",
        &reply,
        413,
        "request body too large",
    );

    // Content-Length of 10 GiB, no body sent: refused from the headers
    // alone, without waiting for the body.
    let head = format!(
        "POST /audit-logs HTTP/1.1\r\nHost: t\r\nAuthorization: {AUTH}\r\nContent-Length: {}\r\n\r\n",
        10u64 << 30
    );
    let reply = exchange(l.addr, head.as_bytes(), Vec::new());
    assert_refused(
        &w,
        "Content-Length 10 GiB",
        &reply,
        413,
        "request body too large",
    );

    // Chunked (no Content-Length), small chunks adding up to max+1.
    let reply = exchange(l.addr, &chunked_head(""), chunked(&too_big, 4096));
    assert_refused(&w, "chunked max+1", &reply, 413, "request body too large");

    // Chunked, one chunk announcing 256 MiB, streamed until refused.
    let mut body = format!("{:x}\r\n", 256u64 << 20).into_bytes();
    body.extend(std::iter::repeat_n(b'y', 4 * MAX));
    let reply = exchange(l.addr, &chunked_head(""), body);
    assert_refused(
        &w,
        "one 256 MiB chunk",
        &reply,
        413,
        "request body too large",
    );

    // A record fitting raw but not decoded: gzip of max+1 bytes.
    let reply = post_authed(l.addr, &[("Content-Encoding", "gzip")], &gzip(&too_big));
    assert_refused(
        &w,
        "decoded max+1",
        &reply,
        413,
        "decoded request body too large",
    );

    // Exactly the limit, raw and decoded, is accepted.
    let at_limit = vec![b'z'; MAX];
    assert_eq!(post_authed(l.addr, &[], &at_limit).status, 202);
    assert_eq!(
        post_authed(l.addr, &[("Content-Encoding", "gzip")], &gzip(&at_limit)).status,
        202
    );
    let mut want = at_limit.clone();
    want.push(b'\n');
    want.extend_from_slice(&at_limit);
    want.push(b'\n');
    assert_eq!(stored(&w), want);
    stop(l, &w);
}

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
        let mut c = Conn::open(l.addr);
        let _ = c.send(&raw);
        match c.reply() {
            Ok(reply) => assert_eq!(reply.status, status, "{case}: {reply:?}"),
            Err(e) => panic!("{case}: no response ({e}), want {status}"),
        }
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
    let mut c = Conn::open(l.addr);
    c.send(smuggle.as_bytes()).unwrap();
    let first = c.reply().expect("a response");
    assert_eq!(first.status, 202, "CL+TE: {first:?}");
    assert!(
        c.closed_within(Duration::from_secs(5)).is_some(),
        "connection closed after a CL+TE request"
    );
    assert!(c.buf.is_empty(), "no second response: {:?}", c.buf);
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

#[test]
fn truncated_and_corrupt_gzip_is_400() {
    let w = World::new();
    let l = listener(&w, MAX);
    let good = gzip(b"{\"a\":1}\n{\"b\":2}\n");
    let n = good.len();
    let flip = |i: usize| {
        let mut g = good.clone();
        g[i] ^= 0xff;
        g
    };
    let mut trailing_garbage = good.clone();
    trailing_garbage.extend_from_slice(b"garbage after the member");
    for (case, body) in [
        ("only the magic bytes", b"\x1f\x8b".to_vec()),
        ("header only", good[..10].to_vec()),
        ("cut in the middle", good[..n / 2].to_vec()),
        ("trailer missing", good[..n - 8].to_vec()),
        ("trailer cut", good[..n - 1].to_vec()),
        ("deflate data corrupt", flip(12)),
        ("CRC wrong", flip(n - 8)),
        ("length wrong", flip(n - 4)),
        ("compression method not deflate", flip(2)),
        ("garbage after a valid member", trailing_garbage),
    ] {
        for encoding in [Some("gzip"), None] {
            let headers: Vec<(&str, &str)> = encoding
                .map(|e| ("Content-Encoding", e))
                .into_iter()
                .collect();
            let reply = post_authed(l.addr, &headers, &body);
            let case = format!("{case}, Content-Encoding {encoding:?}");
            assert_refused(&w, &case, &reply, 400, "failed to decode request body");
        }
    }
    stop(l, &w);
}

#[test]
fn content_encoding_lies_are_seen_through() {
    let w = World::new();
    let l = listener(&w, MAX);
    // Says gzip, is not: refused rather than stored as text.
    for encoding in [
        "gzip",
        "application/gzip",
        "x-gzip",
        "GZIP",
        "identity, gzip",
    ] {
        let reply = post_authed(
            l.addr,
            &[("Content-Encoding", encoding)],
            b"{\"plain\":1}\n",
        );
        assert_refused(&w, encoding, &reply, 400, "failed to decode request body");
    }
    // Is gzip, says nothing or something else: the magic bytes decide.
    let mut want = Vec::new();
    for (i, encoding) in [None, Some("identity"), Some("br"), Some("text/plain")]
        .into_iter()
        .enumerate()
    {
        let record = format!("{{\"gz\":{i}}}");
        let headers: Vec<(&str, &str)> = encoding
            .map(|e| ("Content-Encoding", e))
            .into_iter()
            .collect();
        let reply = post_authed(l.addr, &headers, &gzip(format!("{record}\n").as_bytes()));
        assert_eq!(reply.status, 202, "{encoding:?}: {reply:?}");
        want.extend_from_slice(record.as_bytes());
        want.push(b'\n');
    }
    // Unknown encodings on a plain body: stored as it is, like the original.
    let reply = post_authed(l.addr, &[("Content-Encoding", "br")], b"{\"br\":true}");
    assert_eq!(reply.status, 202);
    want.extend_from_slice(b"{\"br\":true}\n");
    assert_eq!(stored(&w), want, "stored decoded, in order");
    stop(l, &w);
}

// ---------------------------------------------------------------------------
// Records.

#[test]
fn lines_are_split_on_lf_trimmed_and_blank_ones_dropped() {
    let w = World::new();
    let l = listener(&w, MAX);
    // Nothing but blanks: accepted, nothing written.
    let reply = post_authed(l.addr, &[], b"\r\n\r\n   \n\t\n\x0b\x0c\n");
    assert_eq!(reply.status, 202);
    assert_eq!(stored(&w), b"");
    let body = b"\r\n{\"a\":1}\r\n\r\n  {\"b\":2}\t\r\n\n\x0c{\"c\":3}\x0b\nx\ry\r\n  inner  spaces  \nlast";
    assert_eq!(post_authed(l.addr, &[], body).status, 202);
    // The same through gzip.
    assert_eq!(
        post_authed(
            l.addr,
            &[("Content-Encoding", "gzip")],
            &gzip(b"\r\ngz\r\n\r\n")
        )
        .status,
        202
    );
    assert_eq!(
        stored(&w),
        b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\nx\ry\ninner  spaces\nlast\ngz\n"
    );
    stop(l, &w);
}

#[test]
fn invalid_utf8_and_nul_are_stored_byte_exact() {
    let w = World::new();
    let l = listener(&w, MAX);
    let records: [&[u8]; 6] = [
        b"\xff\xfe\xfd",
        b"{\"a\":\"\xc3\x28\"}",
        b"a\x00b",
        b"\x00",
        b"CEF:0|Kong|Konnect|1.0|x|caf\xe9|3|msg=\x80\x81",
        b"\xed\xa0\x80 surrogate",
    ];
    let mut body = records.join(&b"\n"[..]);
    body.push(b'\n');
    assert_eq!(post_authed(l.addr, &[], &body).status, 202);
    assert_eq!(
        post_authed(l.addr, &[("Content-Encoding", "gzip")], &gzip(&body)).status,
        202
    );
    let mut want = body.clone();
    want.extend_from_slice(&body);
    assert_eq!(stored(&w), want);
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
                let mut conn = Conn::open(addr);
                for i in 0..PER_CONNECTION {
                    let n = c * PER_CONNECTION + i;
                    if n >= 10_000 {
                        break;
                    }
                    let body = format!("{{\"n\":{n}}}");
                    conn.send(&request(
                        "POST",
                        "/audit-logs",
                        &[("Authorization", AUTH)],
                        body.as_bytes(),
                    ))
                    .unwrap_or_else(|e| panic!("request {n} on connection {c}: {e}"));
                    let reply = conn
                        .reply()
                        .unwrap_or_else(|e| panic!("reply {n} on connection {c}: {e}"));
                    assert_eq!(reply.status, 202, "request {n}");
                    assert_ne!(reply.header("Connection"), Some("close"), "kept alive");
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
    let mut slow = Conn::open(l.addr);
    slow.send(b"POST /audit-logs HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let started = Instant::now();
    let trickle = {
        let mut s = slow.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            // A header byte every 250 ms: progress does not extend the
            // deadline.
            for b in format!("Authorization: {AUTH}\r\nX-Slow: {}", "s".repeat(100)).bytes() {
                if s.write_all(&[b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    // Meanwhile, others are served at once.
    std::thread::sleep(Duration::from_secs(1));
    let quick = Instant::now();
    assert_eq!(post_authed(l.addr, &[], b"meanwhile").status, 202);
    assert!(quick.elapsed() < Duration::from_secs(2));
    let closed = slow.closed_within(Duration::from_secs(20));
    let at = started.elapsed();
    let _ = trickle.join();
    assert!(closed.is_some(), "slow connection still open after {at:?}");
    assert!(
        at >= Duration::from_secs(9) && at < Duration::from_secs(14),
        "closed after {at:?}, want the 10 s header timeout"
    );
    assert!(
        slow.buf.is_empty(),
        "no response to a request never finished"
    );
    assert_eq!(stored(&w), b"meanwhile\n");
    stop(l, &w);
}

#[test]
fn slow_bodies_are_accepted_whole_and_abandoned_ones_store_nothing() {
    let w = World::new();
    let l = listener(&w, MAX);
    // A body trickled in 20 pieces over two seconds, then complete.
    let body: Vec<u8> = (0..20)
        .flat_map(|i| format!("{{\"piece\":{i:03}}}\n").into_bytes())
        .collect();
    let mut c = Conn::open(l.addr);
    let req = request("POST", "/audit-logs", &[("Authorization", AUTH)], &body);
    let head_len = req.len() - body.len();
    c.send(&req[..head_len]).unwrap();
    for piece in body.chunks(body.len() / 20) {
        std::thread::sleep(Duration::from_millis(100));
        c.send(piece).unwrap();
        assert_eq!(
            stored(&w),
            b"",
            "nothing stored before the body is complete"
        );
    }
    assert_eq!(c.reply().unwrap().status, 202);
    assert_eq!(stored(&w), body);

    // Bodies abandoned half-way, by Content-Length and chunked: nothing.
    let before = stored(&w);
    let mut c = Conn::open(l.addr);
    let req = request(
        "POST",
        "/audit-logs",
        &[("Authorization", AUTH)],
        &[b'h'; 1000],
    );
    c.send(&req[..req.len() - 500]).unwrap();
    drop(c);
    let mut c = Conn::open(l.addr);
    c.send(&chunked_head("")).unwrap();
    c.send(b"10\r\n{\"half\":true}\n\r\n").unwrap();
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
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
    let mut conns: Vec<Conn> = (0..OVER)
        .map(|_| {
            let t = Instant::now();
            let c = Conn::open(l.addr);
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
        c.send(&request(
            "POST",
            "/audit-logs",
            &[("Authorization", AUTH)],
            format!("c{i}").as_bytes(),
        ))
        .unwrap();
    }
    let mut late = 0;
    for (i, c) in conns.iter_mut().enumerate() {
        let reply = c.reply().unwrap_or_else(|e| panic!("connection {i}: {e}"));
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
