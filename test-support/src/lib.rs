//! A raw HTTP/1.1 client for tests, shared by the listener's unit tests
//! (`src/listener/server.rs`) and the integration tests under `tests/`.
//!
//! "Raw" because the point of these tests is what a server does with
//! exactly the bytes it gets: a request line it cannot parse, a body cut
//! half-way, a chunk size that overflows, `Content-Length` and
//! `Transfer-Encoding` together. An HTTP library would refuse to send those
//! or tidy them up, so this client sends whatever bytes it is given and
//! only parses what comes back.
//!
//! - [`request`] builds the common well-formed case (it adds `Host` and
//!   `Content-Length` unless given); anything else is written by hand.
//! - [`RawConn`] is one connection: send bytes (all at once, in pieces, or
//!   from a second thread while the reply is read), read replies one after
//!   the other on a kept-alive connection, and wait for the server to close
//!   it, telling an orderly close from a reset.
//! - [`exchange`] is the one-shot form: a fresh connection, the bytes, the
//!   reply.
//!
//! It is blocking (`std::net`). Async tests on a multi-thread tokio runtime
//! may call it from the test body: `#[tokio::test]` drives that body on the
//! test's own thread, outside the worker pool serving the listener, so
//! blocking there starves nothing. From a spawned task, use
//! `tokio::task::spawn_blocking` or a thread.
//!
//! Replies are read by their framing: no body for `HEAD` (see
//! [`RawConn::read_head_reply`]), 1xx, 204 and 304; `Content-Length` bytes;
//! otherwise up to the close. Chunked replies are refused with an error:
//! the servers under test (hyper with whole bodies) never send them.
//!
//! It knows nothing of kongctl: no default path, credentials or statuses.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a read or write may block, and a connect may take, before the
/// operation fails with `TimedOut` (change a connection's with
/// [`RawConn::set_timeout`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// `method path HTTP/1.1`, then `Host: test` and `Content-Length:
/// <body length>` unless `headers` has a `Host`, resp. a `Content-Length`
/// or `Transfer-Encoding` (matched case-insensitively), then `headers` in
/// order, a blank line and `body` as it is (already chunk-framed if
/// `headers` says chunked; see [`chunked`]).
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !has("host") {
        head.push_str("Host: test\r\n");
    }
    if !has("content-length") && !has("transfer-encoding") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// `data` in the chunked transfer coding, in chunks of at most `chunk`
/// bytes, with the final zero-size chunk.
pub fn chunked(data: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / chunk.max(1) * 8 + 5);
    for part in data.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Sends `raw` on a fresh connection and returns the reply (head only if
/// `raw` is a `HEAD` request); panics (with what was received) if none
/// comes.
///
/// `raw` is written by a second thread while this one reads, because a
/// server may answer before it has read everything (413 on the
/// `Content-Length` alone, then close): a write error is expected then and
/// ignored, and a body larger than the socket buffers cannot block the
/// reading of the reply.
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut conn = RawConn::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let writer = conn.send_in_background(raw.to_vec());
    let reply = if raw.starts_with(b"HEAD ") {
        conn.read_head_reply()
    } else {
        conn.read_reply()
    };
    let reply = reply.unwrap_or_else(|e| panic!("no reply from {addr}: {e}"));
    drop(conn);
    let _ = writer.join();
    reply
}

/// A reply as received.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// In the order received, names as sent, values without surrounding
    /// blanks.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header called `name` (case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the server said it closes the connection after this reply.
    pub fn closes_connection(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    /// Asserts the shape of Go's `http.Error`: `status`, the body `text`
    /// plus `\n`, `Content-Type: text/plain; charset=utf-8` and
    /// `X-Content-Type-Options: nosniff`.
    #[track_caller]
    pub fn assert_go_error(&self, status: u16, text: &str) {
        assert_eq!(self.status, status, "status of {self:?}");
        assert_eq!(self.text(), format!("{text}\n"), "body of {self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "Content-Type of {self:?}"
        );
        assert_eq!(
            self.header("x-content-type-options"),
            Some("nosniff"),
            "X-Content-Type-Options of {self:?}"
        );
    }
}

/// How a connection ended, seen from this side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    /// From the start of the wait to the close.
    pub after: Duration,
    /// `true` for a reset (RST), `false` for an orderly close (FIN).
    pub reset: bool,
}

/// One client connection, kept alive between replies.
#[derive(Debug)]
pub struct RawConn {
    stream: TcpStream,
    /// Received and not yet returned as (part of) a reply.
    pending: Vec<u8>,
}

impl RawConn {
    /// Connects, with Nagle off (each send leaves at once, so a test that
    /// sends in pieces is seen in pieces) and [`DEFAULT_TIMEOUT`] for the
    /// connect and for every read and write.
    pub fn connect(addr: SocketAddr) -> io::Result<RawConn> {
        let stream = TcpStream::connect_timeout(&addr, DEFAULT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        let conn = RawConn {
            stream,
            pending: Vec::new(),
        };
        conn.set_timeout(DEFAULT_TIMEOUT)?;
        Ok(conn)
    }

    /// How long a read or write may block before it fails with `TimedOut`.
    pub fn set_timeout(&self, limit: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(limit))?;
        self.stream.set_write_timeout(Some(limit))
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// This end's address (its port tells the connection apart in the
    /// kernel's tables).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// A second handle on the socket, for writing from another thread
    /// (a trickle of bytes, a body the server may refuse to read).
    pub fn writer(&self) -> io::Result<TcpStream> {
        self.stream.try_clone()
    }

    /// Writes `bytes` from a second thread, in 64 KiB pieces, stopping at
    /// the first error (the server closed or reset the connection), which
    /// the handle returns.
    pub fn send_in_background(&self, bytes: Vec<u8>) -> JoinHandle<io::Result<()>> {
        let writer = self.writer();
        std::thread::spawn(move || {
            let mut writer = writer?;
            for piece in bytes.chunks(64 * 1024) {
                writer.write_all(piece)?;
            }
            Ok(())
        })
    }

    /// Closes the sending half (the server reads EOF), keeping the
    /// receiving half open.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    /// Reads the next reply; bytes after it stay for the next call.
    ///
    /// Fails with `UnexpectedEof` if the server closes first (with the
    /// bytes received in the message), `ConnectionReset` on a reset,
    /// `TimedOut` if the timeout passes, `InvalidData` for a head that is
    /// not an HTTP/1.x status line or a chunked body.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        self.read(true)
    }

    /// Reads the reply to a `HEAD` request: head only, whatever
    /// `Content-Length` says.
    pub fn read_head_reply(&mut self) -> io::Result<Reply> {
        self.read(false)
    }

    /// Bytes received but not part of a reply returned so far (e.g. an
    /// unexpected second reply, or the start of an incomplete one).
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// Reads until the server closes the connection, keeping what arrives
    /// in [`pending`](Self::pending); `None` if it is still open after
    /// `limit`. Leaves the timeout at `limit`.
    pub fn wait_closed(&mut self, limit: Duration) -> Option<Closed> {
        let started = Instant::now();
        self.set_timeout(limit).ok()?;
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Some(Closed {
                        after: started.elapsed(),
                        reset: false,
                    });
                }
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return None,
                Err(_) => {
                    return Some(Closed {
                        after: started.elapsed(),
                        reset: true,
                    });
                }
            }
        }
    }

    fn read(&mut self, with_body: bool) -> io::Result<Reply> {
        let head_end = loop {
            if let Some(i) = find(&self.pending, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill()?;
        };
        let (status, headers) = parse_head(&self.pending[..head_end])?;
        let reply_has_body = with_body && !matches!(status, 100..=199 | 204 | 304);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if reply_has_body
            && header("transfer-encoding")
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            return Err(invalid(format!(
                "chunked reply bodies are not supported: {:?}",
                String::from_utf8_lossy(&self.pending[..head_end])
            )));
        }
        let length = match header("content-length") {
            _ if !reply_has_body => Some(0),
            Some(v) => Some(
                v.parse::<usize>()
                    .map_err(|_| invalid(format!("Content-Length {v:?}")))?,
            ),
            None => None,
        };
        let end = match length {
            Some(len) => {
                while self.pending.len() < head_end + len {
                    self.fill()?;
                }
                head_end + len
            }
            // Delimited by the close.
            None => loop {
                match self.fill() {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        break self.pending.len();
                    }
                    Err(e) => return Err(e),
                }
            },
        };
        let body = self.pending[head_end..end].to_vec();
        self.pending.drain(..end);
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Appends the next bytes received to `pending`.
    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "connection closed by the server; received but not returned: {:?}",
                            excerpt(&self.pending)
                        ),
                    ));
                }
                Ok(n) => {
                    self.pending.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "no complete reply in time; received but not returned: {:?}",
                            excerpt(&self.pending)
                        ),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The status and headers of a head ending in `\r\n\r\n`.
fn parse_head(head: &[u8]) -> io::Result<(u16, Vec<(String, String)>)> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("not an HTTP/1.x status line: {status_line:?}")))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    Ok((status, headers))
}

fn is_timeout(e: &io::Error) -> bool {
    // A socket read timeout shows as WouldBlock on Unix.
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// The first 300 bytes of `bytes`, for error messages.
fn excerpt(bytes: &[u8]) -> String {
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
    if bytes.len() > 300 {
        format!("{shown}… ({} bytes)", bytes.len())
    } else {
        shown
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// How [`serve_once`]'s connection ends.
    #[derive(Clone, Copy, PartialEq)]
    enum End {
        /// Closed after the answer is written.
        Close,
        /// Kept open until the client closes it.
        WaitForClient,
        /// Reset, without reading or answering, once the first byte is in.
        Reset,
    }

    /// A one-connection server: reads until `until` has arrived (or EOF;
    /// nothing for an empty `until`), writes `answer`, then ends as `end`
    /// says. Returns what it read before answering.
    fn serve_once(
        answer: &'static [u8],
        until: &'static [u8],
        end: End,
    ) -> (SocketAddr, JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut chunk = [0u8; 1024];
            if end == End::Reset {
                // Closing with unread data makes the kernel send a reset.
                s.peek(&mut chunk).unwrap();
                return got;
            }
            while !until.is_empty() && find(&got, until).is_none() {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
            }
            s.write_all(answer).unwrap();
            if end == End::WaitForClient {
                while let Ok(1..) = s.read(&mut chunk) {}
            }
            got
        });
        (addr, server)
    }

    #[test]
    fn request_adds_host_and_length_unless_given() {
        assert_eq!(
            request("POST", "/p", &[("X-A", "1")], b"body"),
            b"POST /p HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\nX-A: 1\r\n\r\nbody"
        );
        assert_eq!(
            request(
                "GET",
                "/",
                &[("host", "h"), ("transfer-encoding", "chunked")],
                b"0\r\n\r\n"
            ),
            b"GET / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
        );
        assert_eq!(
            request("POST", "/", &[("Content-Length", "9")], b""),
            b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 9\r\n\r\n"
        );
    }

    #[test]
    fn chunked_frames_every_piece_and_ends_with_a_zero_chunk() {
        assert_eq!(
            chunked(b"abcdefghijk", 8),
            b"8\r\nabcdefgh\r\n3\r\nijk\r\n0\r\n\r\n"
        );
        assert_eq!(chunked(b"", 8), b"0\r\n\r\n");
    }

    #[test]
    fn replies_are_read_one_after_the_other_by_their_framing() {
        let (addr, server) = serve_once(
            b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n\
              HTTP/1.1 405 Method Not Allowed\r\nAllow: POST\r\nContent-Length: 19\r\n\r\nmethod not allowed\n\
              HTTP/1.1 204 No Content\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n\
              HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nuntil the close",
            b"",
            End::Close,
        );
        let mut c = RawConn::connect(addr).unwrap();
        let r = c.read_reply().unwrap();
        assert_eq!((r.status, r.body.len()), (202, 0));
        let r = c.read_reply().unwrap();
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("POST"));
        assert_eq!(r.text(), "method not allowed\n");
        assert_eq!(c.read_reply().unwrap().status, 204);
        // A HEAD reply: the length describes a body that is not sent.
        let r = c.read_head_reply().unwrap();
        assert_eq!((r.status, r.body.len()), (200, 0));
        let r = c.read_reply().unwrap();
        assert!(r.closes_connection());
        assert_eq!(r.text(), "until the close");
        assert!(c.pending().is_empty());
        server.join().unwrap();
    }

    #[test]
    fn exchange_reads_no_body_after_a_head_request() {
        // The server does not close: reading a body of 19 bytes would time
        // out.
        let (addr, server) = serve_once(
            b"HTTP/1.1 405 Method Not Allowed\r\nAllow: POST\r\nContent-Length: 19\r\n\r\n",
            b"\r\n\r\n",
            End::WaitForClient,
        );
        let reply = exchange(addr, &request("HEAD", "/", &[], b""));
        assert_eq!((reply.status, reply.header("Allow")), (405, Some("POST")));
        assert!(reply.body.is_empty());
        server.join().unwrap();
    }

    #[test]
    fn a_close_before_the_reply_is_complete_is_an_error_with_what_came() {
        let (addr, server) = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"\r\n\r\n",
            End::Close,
        );
        let mut c = RawConn::connect(addr).unwrap();
        c.send(&request("POST", "/", &[], b"")).unwrap();
        let e = c.read_reply().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        assert!(e.to_string().contains("short"), "{e}");
        assert!(server.join().unwrap().starts_with(b"POST / HTTP/1.1\r\n"));
    }

    #[test]
    fn garbage_and_chunked_replies_are_invalid_data() {
        for (answer, what) in [
            (&b"SSH-2.0-OpenSSH\r\n\r\n"[..], "status line"),
            (
                &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
                "chunked",
            ),
        ] {
            let (addr, server) = serve_once(answer, b"", End::Close);
            let e = RawConn::connect(addr).unwrap().read_reply().unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
            assert!(e.to_string().contains(what), "{e}");
            server.join().unwrap();
        }
    }

    #[test]
    fn wait_closed_tells_a_close_from_a_reset_and_from_an_open_connection() {
        let (addr, server) = serve_once(b"", b"x", End::Close);
        let mut c = RawConn::connect(addr).unwrap();
        c.send(b"x").unwrap();
        let closed = c.wait_closed(Duration::from_secs(10)).expect("closed");
        assert!(!closed.reset);
        server.join().unwrap();

        let (addr, server) = serve_once(b"", b"x", End::Reset);
        let mut c = RawConn::connect(addr).unwrap();
        c.send(b"x").unwrap();
        server.join().unwrap();
        let closed = c.wait_closed(Duration::from_secs(10)).expect("reset");
        assert!(closed.reset, "{closed:?}");

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = RawConn::connect(listener.local_addr().unwrap()).unwrap();
        assert_eq!(c.wait_closed(Duration::from_millis(100)), None);
    }

    #[test]
    fn exchange_reads_the_reply_to_a_request_the_server_stops_reading() {
        // 4 MiB is more than the socket buffers hold: written from the
        // caller's thread it would block before the reply is read.
        let (addr, server) = serve_once(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 23\r\nConnection: close\r\n\r\nrequest body too large\n",
            b"\r\n\r\n",
            End::Close,
        );
        let reply = exchange(addr, &request("POST", "/", &[], &vec![b'x'; 4 << 20]));
        assert_eq!(reply.status, 413);
        assert!(reply.closes_connection());
        server.join().unwrap();
    }
}
