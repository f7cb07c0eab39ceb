//! Lingering close: after answering a request whose body it did not read
//! (404, 405, 401, 413 from `Content-Length`, a body cut off), the listener
//! half-closes and reads and discards what the client still sends, bounded
//! in bytes and time, before it closes the socket.
//!
//! Why: closing a socket with unread data makes the kernel send a reset.
//! A client still writing its body then fails with "broken pipe" or
//! "connection reset" before it reads our status, so a sender with a wrong
//! Authorization never sees the 401 (Konnect records a connection error, no
//! status). nginx does the same (`lingering_close`); Go's net/http reads a
//! little of the rest. Draining up to [`LINGER_BYTES`] or [`LINGER_TIME`]
//! lets even a client that only reads after writing its whole body (Python's
//! http.client, a blocking `write_all` then `read`) get the status.
//!
//! The wrapper is transparent until hyper shuts the connection down and the
//! request handler has asked for lingering on it ([`Linger::request`]); an
//! idle keep-alive connection closed at shutdown does not linger.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Most bytes read and discarded after the answer.
pub const LINGER_BYTES: usize = 16 * 1024 * 1024;
/// Longest time spent reading them.
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// Set by the request handler when it answers without reading the body.
#[derive(Debug, Clone, Default)]
pub struct Linger(Arc<AtomicBool>);

impl Linger {
    /// The connection drains before closing.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// An I/O stream that lingers on shutdown when asked to.
pub struct LingeringIo<T> {
    io: T,
    linger: Linger,
    state: State,
    bytes: usize,
    time: Duration,
}

enum State {
    Open,
    /// Write side shut; discarding input until EOF, the byte budget or the
    /// deadline.
    Draining {
        left: usize,
        deadline: Pin<Box<Sleep>>,
    },
    Closed,
}

impl<T> LingeringIo<T> {
    pub fn new(io: T, linger: Linger) -> Self {
        LingeringIo::with_limits(io, linger, LINGER_BYTES, LINGER_TIME)
    }

    pub fn with_limits(io: T, linger: Linger, bytes: usize, time: Duration) -> Self {
        LingeringIo {
            io,
            linger,
            state: State::Open,
            bytes,
            time,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for LingeringIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LingeringIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Open => {
                    // The FIN goes after the answer: the client sees the
                    // whole response, then the end of it.
                    ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
                    if !this.linger.requested() {
                        this.state = State::Closed;
                        return Poll::Ready(Ok(()));
                    }
                    this.state = State::Draining {
                        left: this.bytes,
                        deadline: Box::pin(tokio::time::sleep(this.time)),
                    };
                }
                State::Draining { left, deadline } => {
                    if deadline.as_mut().poll(cx).is_ready() {
                        tracing::debug!("lingering close: time limit reached");
                        this.state = State::Closed;
                        continue;
                    }
                    let mut scratch = [0u8; 32 * 1024];
                    loop {
                        let mut buf = ReadBuf::new(&mut scratch[..(*left).min(32 * 1024)]);
                        match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                            Poll::Pending => return Poll::Pending,
                            // EOF: the client is done sending.
                            Poll::Ready(Ok(())) if buf.filled().is_empty() => break,
                            Poll::Ready(Ok(())) => {
                                *left -= buf.filled().len();
                                if *left == 0 {
                                    tracing::debug!("lingering close: byte limit reached");
                                    break;
                                }
                            }
                            Poll::Ready(Err(_)) => break,
                        }
                    }
                    this.state = State::Closed;
                }
                State::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn without_a_request_shutdown_does_not_wait() {
        let (mut client, server) = pair().await;
        let mut io = LingeringIo::new(server, Linger::default());
        // The client keeps the connection open and sends nothing: a
        // lingering close would wait here for the time limit.
        tokio::time::timeout(Duration::from_secs(1), io.shutdown())
            .await
            .expect("shutdown returns at once")
            .unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn a_requested_linger_answers_first_then_drains_to_eof() {
        let (mut client, server) = pair().await;
        let linger = Linger::default();
        linger.request();
        let mut io = LingeringIo::new(server, linger);
        io.write_all(b"HTTP/1.1 401 Unauthorized\r\n\r\n")
            .await
            .unwrap();
        let closing = tokio::spawn(async move { io.shutdown().await });
        // The client writes far more than the socket buffers hold, then
        // reads: it must neither fail to write nor miss the answer.
        let body = vec![b'x'; 6 * 1024 * 1024];
        client.write_all(&body).await.unwrap();
        client.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"HTTP/1.1 401 Unauthorized\r\n\r\n");
        closing.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn draining_stops_at_the_byte_and_time_limits() {
        // Byte limit: a client that never stops sending.
        let (mut client, server) = pair().await;
        let linger = Linger::default();
        linger.request();
        let mut io = LingeringIo::with_limits(server, linger, 64 * 1024, Duration::from_secs(30));
        let sender = tokio::spawn(async move {
            let chunk = vec![b'x'; 64 * 1024];
            while client.write_all(&chunk).await.is_ok() {}
        });
        tokio::time::timeout(Duration::from_secs(10), io.shutdown())
            .await
            .expect("the byte limit ends draining")
            .unwrap();
        drop(io);
        sender.await.unwrap();

        // Time limit: a client that sends nothing and keeps the
        // connection open.
        let (_client, server) = pair().await;
        let linger = Linger::default();
        linger.request();
        let mut io =
            LingeringIo::with_limits(server, linger, 1024 * 1024, Duration::from_millis(200));
        let started = std::time::Instant::now();
        io.shutdown().await.unwrap();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }
}
