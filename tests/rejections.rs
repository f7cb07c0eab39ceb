//! Graceful rejections: a client that writes its whole body before reading
//! (a blocking socket, as Python's http.client does) must read the
//! listener's 404, 405, 401 or 413 even though the listener answered before
//! reading the body, instead of failing with "broken pipe" or "connection
//! reset" (the listener closes lingering: half-close, drain, bounded).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

/// Larger than what the socket buffers of both ends absorb on loopback, so
/// that a listener closing without draining resets the connection while
/// the client is still writing.
const BODY: usize = 8 * 1024 * 1024;

/// Writes the request head and a `BODY`-byte body with blocking writes,
/// stopping at the first write error, then reads the status line.
fn blocking_exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: &str,
) -> Result<u16, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\n\
         Content-Type: text/plain\r\nContent-Length: {BODY}\r\n\r\n"
    );
    s.write_all(head.as_bytes())
        .map_err(|e| format!("write head: {e}"))?;
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..BODY / chunk.len() {
        s.write_all(&chunk)
            .map_err(|e| format!("write body: {e}"))?;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut buf) {
            Ok(0) => return Err(format!("closed before a status: {answer:?}")),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&answer);
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not a status line: {line:?}"))
}

#[test]
fn a_client_that_writes_its_whole_body_first_reads_every_early_rejection() {
    let w = World::new();
    let mut l = w.start_listener("listen", &[]);
    let cases = [
        ("POST", "/audit-logs", "Bearer test-secret", 413),
        ("POST", "/audit-logs", "Bearer wrong", 401),
        ("POST", "/elsewhere", "Bearer test-secret", 404),
        ("PUT", "/audit-logs", "Bearer test-secret", 405),
    ];
    let mut failures = Vec::new();
    for i in 0..100 {
        let (method, path, auth, want) = cases[i % cases.len()];
        match blocking_exchange(l.addr, method, path, auth) {
            Ok(status) if status == want => {}
            other => failures.push(format!("#{i} {method} {path}: want {want}, got {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 100 did not read the status:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Nothing was stored, and the listener still serves.
    assert_eq!(std::fs::read(w.events_file()).unwrap_or_default(), b"");
    assert_eq!(
        post(
            l.addr,
            "/audit-logs",
            &[("Authorization", "Bearer test-secret")],
            b"{\"ok\":1}\n"
        ),
        202
    );
    l.stop_ok();
}
