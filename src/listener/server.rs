//! The HTTP/1.1 side of the listener: accept loop, connection limit,
//! timeouts, the request contract and graceful shutdown.
//!
//! Checks run in the original's order and answer with its texts (Go's
//! `http.Error`: `text/plain; charset=utf-8`, `X-Content-Type-Options:
//! nosniff`, the message and `\n`):
//!
//! | check | status | body |
//! | --- | --- | --- |
//! | path differs from the configured one | 404 | `404 page not found` |
//! | method is not POST | 405 + `Allow: POST` | `method not allowed` |
//! | trimmed `Authorization` differs (constant time) | 401 | `unauthorized` |
//! | raw body over the limit (Content-Length or counted) | 413 | `request body too large` |
//! | body read fails or exceeds `body_read_timeout` | 400 | `failed to read request body` |
//! | decoded body over the limit | 413 | `decoded request body too large` |
//! | gzip invalid, or gzip announced without magic bytes | 400 | `failed to decode request body` |
//! | the screen (signature check) cannot set records aside | 500 | `failed to persist audit-log event` |
//! | storing fails | 500 | `failed to persist audit-log event` |
//! | records durable (or none) | 202 | empty |
//!
//! A rejection before the body was read adds `Connection: close`: the unread
//! body would otherwise have to be drained to reuse the connection. The
//! connection then closes lingering (`linger`): half-closed, the rest of the
//! body read and discarded (bounded), so that the client reads the status
//! instead of a reset.
//!
//! Connection limit: when `max_connections` are open, the loop stops calling
//! `accept` until one closes, so new clients wait in the kernel's backlog
//! (and get the kernel's refusal when that is full) instead of being
//! accepted and dropped. Idle keep-alive connections do not hold a slot
//! forever: hyper's header read timeout also runs while waiting for the next
//! request on a kept-alive connection.
//!
//! Memory: the `Authorization` check comes before any body byte is read,
//! so only a sender holding the secret can make the listener buffer a body
//! (at most `max_body_bytes` raw plus `max_body_bytes` decoded per request).
//! Anyone else can hold at most hyper's read buffer per connection, capped
//! at 64 KiB here (hyper's default is about 400 KiB), with a head of at most
//! 16 KiB, for at most the header read timeout.
//!
//! Decoding runs inline on the runtime: it is bounded by `max_body_bytes`
//! of output, and inflating runs at about 950 MB/s per core here (a
//! 50-record, 42 KB batch in about 45 us, a full 1 MiB body in about
//! 1.1 ms), which is less than handing each request to the blocking pool
//! and back would cost in wake-ups at thousands of requests per second.
//! Writing the batch into the page cache (see `store`) runs inline too.
//! Body buffers come from the store's pool of written batches.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::counters::IngestCounters;
use super::dedup::DedupGate;
use super::ingest::{self, BodyEncoding, DecodeError};
use super::linger::{Linger, LingeringIo};
use crate::store::{Batch, EventStore};

/// Largest read buffer of a connection.
pub(crate) const READ_BUFFER_MAX: usize = 64 * 1024;
/// Largest request head (request line and headers); larger ones get 431.
pub(crate) const HEAD_MAX: usize = 16 * 1024;

/// How the listener serves; everything the caller decides.
///
/// `Debug` shows `authorization` as `<redacted>`, so settings can be logged.
#[derive(Clone)]
pub struct ListenerSettings {
    /// The only path served, compared exactly (query string ignored).
    pub path: String,
    /// The exact `Authorization` value required (surrounding whitespace of
    /// both it and the header is ignored). Never logged.
    pub authorization: String,
    /// Limit for the raw body and, separately, for the decoded body.
    pub max_body_bytes: usize,
    /// Time allowed for a request's headers, and for the next request to
    /// start on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// Time allowed to receive a whole body once the headers are in.
    pub body_read_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// After shutdown is requested, how long in-flight requests may take
    /// before their connections are dropped.
    pub drain_timeout: Duration,
    /// Runs on every request's records before they are stored (the
    /// signature check); none by default.
    pub screen: Option<Arc<dyn Screen>>,
    /// Drops replayed duplicates while gap healing has it open (closed,
    /// and free, otherwise).
    pub dedup: DedupGate,
    /// Requests by status, records and bytes received: shared with whoever
    /// reports them (`listener.json`, the admin endpoint).
    pub counters: Arc<IngestCounters>,
}

/// Why a [`Screen`] could not do its part.
pub type ScreenError = Box<dyn std::error::Error + Send + Sync>;

/// A stage between a request's decoded records and the store, such as the
/// signature check (`crate::verify`). It may remove records (having put
/// them elsewhere); when it fails, the request fails as a storage failure
/// does (500, nothing stored), so Konnect sends the batch again.
pub trait Screen: Send + Sync {
    /// The records of `batch` to store.
    fn screen(
        &self,
        batch: Batch,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Batch, ScreenError>> + Send + '_>>;
}

impl ListenerSettings {
    /// Settings with the defaults: 10 s for headers (the original's
    /// `ReadHeaderTimeout`), 30 s for a body, 1024 connections, 5 s drain.
    pub fn new(
        path: impl Into<String>,
        authorization: impl Into<String>,
        max_body_bytes: usize,
    ) -> Self {
        ListenerSettings {
            path: path.into(),
            authorization: authorization.into(),
            max_body_bytes,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
            drain_timeout: Duration::from_secs(5),
            screen: None,
            dedup: DedupGate::new(),
            counters: Arc::default(),
        }
    }
}

impl std::fmt::Debug for ListenerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerSettings")
            .field("path", &self.path)
            .field("authorization", &"<redacted>")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("max_connections", &self.max_connections)
            .field("drain_timeout", &self.drain_timeout)
            .field("screen", &self.screen.is_some())
            .field("dedup", &self.dedup)
            .finish()
    }
}

/// What happened while serving, returned when `serve` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServeReport {
    /// Connections accepted.
    pub connections: u64,
    /// Requests answered or in progress (every status).
    pub requests: u64,
    /// Requests answered 202 (with or without records).
    pub accepted: u64,
    /// Requests answered 4xx.
    pub rejected: u64,
    /// Requests answered 500 (store failure).
    pub failed: u64,
    /// Connections still busy when the drain timeout expired, dropped.
    pub aborted_connections: u64,
}

/// Why `serve` stopped before shutdown was requested.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("failed to accept connections on {addr}: {source}")]
    Accept {
        addr: String,
        #[source]
        source: io::Error,
    },
}

/// Serves the listener contract on `listener` until `shutdown` is
/// cancelled, then stops accepting, lets in-flight requests finish (idle
/// connections close at once) for up to `drain_timeout`, drops the
/// connections still open and returns the counts.
///
/// Transient accept errors (a connection reset before it was accepted, out
/// of file descriptors or memory) are logged and retried, with a 100 ms pause
/// for resource exhaustion; any other accept error ends serving with
/// [`ServeError::Accept`], after the same drain.
pub async fn serve(
    listener: TcpListener,
    settings: ListenerSettings,
    store: EventStore,
    shutdown: CancellationToken,
) -> Result<ServeReport, ServeError> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let drain_timeout = settings.drain_timeout;
    let limit = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(READ_BUFFER_MAX)
        .max_header_size(HEAD_MAX)
        .keep_alive(true);
    let ctx = Arc::new(Context {
        expected_auth: trim(settings.authorization.as_bytes()).to_vec(),
        settings,
        store,
        counts: Counts::default(),
    });
    // Connections stop on this token, cancelled when serving ends for any
    // reason, so a fatal accept error drains like a shutdown does.
    let stop = shutdown.child_token();
    let mut connections = JoinSet::new();
    let mut outcome = Ok(());

    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            permit = Arc::clone(&limit).acquire_owned() => {
                permit.expect("the connection semaphore is never closed")
            }
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_resource_exhaustion(&e) => {
                tracing::warn!(error = %e, "accept failed; retrying in 100ms");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
            Err(e) if is_connection_error(&e) => {
                tracing::debug!(error = %e, "connection failed before accept");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, %addr, "accept failed; stopping the listener");
                outcome = Err(ServeError::Accept { addr, source: e });
                break;
            }
        };
        // Responses are tiny and written once: do not let Nagle hold them.
        let _ = stream.set_nodelay(true);
        ctx.counts.connections.fetch_add(1, Ordering::Relaxed);
        let ctx = Arc::clone(&ctx);
        let linger = Linger::default();
        let conn = builder.serve_connection(
            TokioIo::new(LingeringIo::new(stream, linger.clone())),
            service_fn(move |req| {
                let ctx = Arc::clone(&ctx);
                let linger = linger.clone();
                async move { Ok::<_, Infallible>(ctx.handle(req, &linger).await) }
            }),
        );
        let stop = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener);
    stop.cancel();
    let open = connections.len();
    let drained = tokio::time::timeout(drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    let mut aborted = 0;
    if drained.is_err() {
        aborted = connections.len() as u64;
        tracing::warn!(
            aborted,
            "drain timeout expired; dropping connections still in flight"
        );
        connections.shutdown().await;
    }
    tracing::debug!(open, aborted, "listener stopped");
    let c = &ctx.counts;
    let answered = &ctx.settings.counters;
    let report = ServeReport {
        connections: c.connections.load(Ordering::Relaxed),
        requests: c.requests.load(Ordering::Relaxed),
        accepted: answered.count(202),
        rejected: super::counters::STATUSES
            .iter()
            .filter(|s| (400..500).contains(*s))
            .map(|s| answered.count(*s))
            .sum(),
        failed: answered.count(500),
        aborted_connections: aborted,
    };
    outcome.map(|()| report)
}

/// Out of descriptors, buffers or memory: another accept may work soon.
fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Errors about the one connection being accepted, not about the listener
/// (accept(2) passes on pending network errors of the new socket).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    ) || matches!(
        e.raw_os_error(),
        Some(
            libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
        )
    )
}

/// Connections and requests begun; the answers are counted in
/// `ListenerSettings::counters`.
#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    requests: AtomicU64,
}

struct Context {
    settings: ListenerSettings,
    expected_auth: Vec<u8>,
    store: EventStore,
    counts: Counts,
}

/// Every way a request is refused, in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection {
    NotFound,
    MethodNotAllowed,
    Unauthorized,
    BodyTooLarge,
    BodyRead,
    DecodedTooLarge,
    Decode,
    Persist,
}

impl Rejection {
    fn status(self) -> StatusCode {
        match self {
            Rejection::NotFound => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::Unauthorized => StatusCode::UNAUTHORIZED,
            Rejection::BodyTooLarge | Rejection::DecodedTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::BodyRead | Rejection::Decode => StatusCode::BAD_REQUEST,
            Rejection::Persist => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The original's `http.Error` text, newline included.
    fn body(self) -> &'static str {
        match self {
            Rejection::NotFound => "404 page not found\n",
            Rejection::MethodNotAllowed => "method not allowed\n",
            Rejection::Unauthorized => "unauthorized\n",
            Rejection::BodyTooLarge => "request body too large\n",
            Rejection::BodyRead => "failed to read request body\n",
            Rejection::DecodedTooLarge => "decoded request body too large\n",
            Rejection::Decode => "failed to decode request body\n",
            Rejection::Persist => "failed to persist audit-log event\n",
        }
    }

    /// Whether the request body may still be (partly) unread.
    fn before_body(self) -> bool {
        matches!(
            self,
            Rejection::NotFound
                | Rejection::MethodNotAllowed
                | Rejection::Unauthorized
                | Rejection::BodyTooLarge
                | Rejection::BodyRead
        )
    }

    fn response(self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::from_static(self.body().as_bytes())));
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if self == Rejection::MethodNotAllowed {
            h.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        if self.before_body() {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

impl Context {
    /// Answers one request; asks `linger` for a lingering close when the
    /// answer leaves body bytes unread.
    async fn handle(&self, req: Request<Incoming>, linger: &Linger) -> Response<Full<Bytes>> {
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
        match self.ingest(req).await {
            Ok(records) => {
                self.settings
                    .counters
                    .answered(StatusCode::ACCEPTED.as_u16());
                tracing::trace!(records, "batch stored");
                let mut resp = Response::new(Full::new(Bytes::new()));
                *resp.status_mut() = StatusCode::ACCEPTED;
                resp
            }
            Err(rejection) => {
                self.settings.counters.answered(rejection.status().as_u16());
                if rejection.before_body() {
                    linger.request();
                }
                rejection.response()
            }
        }
    }

    /// Runs the checks and stores the records; returns how many.
    async fn ingest(&self, req: Request<Incoming>) -> Result<usize, Rejection> {
        let settings = &self.settings;
        if req.uri().path() != settings.path {
            return Err(Rejection::NotFound);
        }
        if req.method() != Method::POST {
            return Err(Rejection::MethodNotAllowed);
        }
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .map_or(&b""[..], |v| v.as_bytes());
        if !constant_time_eq(trim(auth), &self.expected_auth) {
            tracing::debug!("rejected request with a wrong or missing Authorization");
            return Err(Rejection::Unauthorized);
        }
        let max = settings.max_body_bytes;
        let declared = content_length(&req);
        if declared.is_some_and(|n| n > max as u64) {
            return Err(Rejection::BodyTooLarge);
        }
        let header_says_gzip = req
            .headers()
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .any(|v| ingest::content_encoding_names_gzip(v.as_bytes()));

        let raw = tokio::time::timeout(
            settings.body_read_timeout,
            read_body(req.into_body(), max, declared, self.store.buffer()),
        )
        .await
        .map_err(|_| {
            tracing::debug!("request body not received within the body read timeout");
            Rejection::BodyRead
        })??;
        let raw_len = raw.len();

        let decoded = match ingest::detect_encoding(header_says_gzip, &raw) {
            Ok(BodyEncoding::Gzip) => {
                let decoded = ingest::gunzip_bounded_into(&raw, max, self.store.buffer());
                self.store.recycle(raw);
                decoded
            }
            Ok(BodyEncoding::Plain) => ingest::decode_body(BodyEncoding::Plain, raw, max),
            Err(e) => Err(e),
        }
        .map_err(|e| match e {
            DecodeError::TooLarge => Rejection::DecodedTooLarge,
            DecodeError::Corrupt => Rejection::Decode,
        })?;
        let decoded_len = decoded.len();
        let mut batch = Batch::from_decoded(decoded);
        settings
            .counters
            .received(raw_len, decoded_len, batch.len());
        if let Some(screen) = &settings.screen {
            // Replayed copies of records already held are dropped before
            // they cost a check; nothing is remembered yet.
            settings.dedup.drop_known(&mut batch);
            let before = batch.len();
            batch = match screen.screen(batch).await {
                Ok(batch) => {
                    settings.counters.set_aside(before - batch.len());
                    batch
                }
                Err(e) => {
                    settings.counters.stored(false);
                    tracing::error!(error = %e, "failed to screen a batch");
                    return Err(Rejection::Persist);
                }
            };
        }
        // Only records the screen kept may take a key: a tampered copy set
        // aside must not make the genuine record a duplicate.
        let admission = settings.dedup.admit(&mut batch);
        let records = batch.len();
        let appended = self.store.append(batch).await;
        if records > 0 {
            settings.counters.stored(appended.is_ok());
        }
        if let Err(e) = appended {
            admission.revoke();
            tracing::error!(error = %e, records, "failed to persist a batch");
            return Err(Rejection::Persist);
        }
        Ok(records)
    }
}

/// The body length announced by `Content-Length` (hyper parsed and
/// validated it); `None` for a chunked body.
fn content_length(req: &Request<Incoming>) -> Option<u64> {
    use hyper::body::Body;
    req.body().size_hint().exact()
}

/// Collects the body into `buf` (emptied first), never holding more than
/// `max` bytes.
async fn read_body(
    mut body: Incoming,
    max: usize,
    declared: Option<u64>,
    mut buf: Vec<u8>,
) -> Result<Vec<u8>, Rejection> {
    // Exact for a Content-Length body; chunked bodies start small and grow.
    let initial = declared.map_or(16 * 1024, |n| n as usize).min(max);
    buf.clear();
    buf.reserve(initial);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            tracing::debug!(error = %e, "failed to read request body");
            Rejection::BodyRead
        })?;
        if let Ok(data) = frame.into_data() {
            if data.len() > max - buf.len() {
                return Err(Rejection::BodyTooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// ASCII whitespace trim, as Go's `strings.TrimSpace` for these values.
fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// Compares in time that depends only on the expected value's length, so
/// neither the content nor the length of the secret leaks through timing.
fn constant_time_eq(got: &[u8], expected: &[u8]) -> bool {
    let mut equal = (got.len() as u64).ct_eq(&(expected.len() as u64));
    for (i, want) in expected.iter().enumerate() {
        let byte = got.get(i).copied().unwrap_or(0);
        equal &= byte.ct_eq(want);
    }
    equal.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Instant;
    use test_support::{RawConn, Reply, chunked, exchange, request};
    use tokio::net::TcpStream;
    use tokio::task::JoinHandle;

    const AUTH: &str = "Bearer s3cret-token-0123456789";
    const MAX: usize = 64 * 1024;

    /// A listener served on this test's runtime. The raw client
    /// (`test_support`) blocks; the test body calls it directly, which is
    /// fine on the multi-thread runtime: `#[tokio::test]` runs the body on
    /// the test's own thread, and `serve` on the worker threads.
    struct Fixture {
        addr: SocketAddr,
        events: PathBuf,
        shutdown: CancellationToken,
        serving: JoinHandle<Result<ServeReport, ServeError>>,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        async fn start() -> Fixture {
            Fixture::start_with(|_| {}).await
        }

        async fn start_with(tune: impl FnOnce(&mut ListenerSettings)) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let events = dir.path().join("profile/events.jsonl");
            let (store, _) =
                EventStore::open(&events, crate::store::StorePolicy::keep_one_file()).unwrap();
            Fixture::start_on(dir, events, store, tune).await
        }

        async fn start_on(
            dir: tempfile::TempDir,
            events: PathBuf,
            store: EventStore,
            tune: impl FnOnce(&mut ListenerSettings),
        ) -> Fixture {
            let mut settings = ListenerSettings::new("/audit-logs", AUTH, MAX);
            settings.header_read_timeout = Duration::from_secs(5);
            settings.body_read_timeout = Duration::from_secs(5);
            settings.drain_timeout = Duration::from_secs(5);
            tune(&mut settings);
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let shutdown = CancellationToken::new();
            let serving = tokio::spawn(serve(listener, settings, store, shutdown.clone()));
            Fixture {
                addr,
                events,
                shutdown,
                serving,
                _dir: dir,
            }
        }

        fn stored(&self) -> Vec<u8> {
            std::fs::read(&self.events).unwrap()
        }

        fn post(&self, headers: &[(&str, &str)], body: &[u8]) -> Reply {
            exchange(self.addr, &request("POST", "/audit-logs", headers, body))
        }

        fn post_authed(&self, headers: &[(&str, &str)], body: &[u8]) -> Reply {
            let mut all = vec![("Authorization", AUTH)];
            all.extend_from_slice(headers);
            self.post(&all, body)
        }

        async fn stop(&mut self) -> ServeReport {
            self.shutdown.cancel();
            tokio::time::timeout(Duration::from_secs(10), &mut self.serving)
                .await
                .expect("serve returns after shutdown")
                .unwrap()
                .unwrap()
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stores_a_batch_and_answers_202_after_it_is_in_the_file() {
        let mut f = Fixture::start().await;
        let reply = f.post_authed(
            &[("Content-Type", "text/plain")],
            b"{\"id\":\"evt-1\"}\n{\"id\":\"evt-2\"}\n",
        );
        assert_eq!(reply.status, 202, "{reply:?}");
        assert!(reply.body.is_empty());
        // Read the moment the reply is in: the records must already be there.
        assert_eq!(f.stored(), b"{\"id\":\"evt-1\"}\n{\"id\":\"evt-2\"}\n");
        let report = f.stop().await;
        assert_eq!(
            (report.requests, report.accepted, report.rejected),
            (1, 1, 0)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_paths_are_404_and_the_query_string_is_ignored() {
        let f = Fixture::start().await;
        for path in [
            "/",
            "/audit-logs/",
            "/audit-log",
            "/AUDIT-LOGS",
            "/audit-logs/x",
            "/audit-logsx",
            "//audit-logs",
            "/x/audit-logs",
            // Not normalised, not percent-decoded.
            "/audit-logs/../audit-logs",
            "/audit%2Dlogs",
            "*",
        ] {
            let reply = exchange(
                f.addr,
                &request("POST", path, &[("Authorization", AUTH)], b"x"),
            );
            reply.assert_go_error(404, "404 page not found");
        }
        assert!(f.stored().is_empty());
        let reply = exchange(
            f.addr,
            &request(
                "POST",
                "/audit-logs?source=konnect",
                &[("Authorization", AUTH)],
                b"q",
            ),
        );
        assert_eq!(reply.status, 202);
        assert_eq!(f.stored(), b"q\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_methods_are_405_with_allow_post() {
        let f = Fixture::start().await;
        for method in ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "FROB"] {
            let reply = exchange(
                f.addr,
                &request(method, "/audit-logs", &[("Authorization", AUTH)], b"x"),
            );
            assert_eq!(reply.status, 405, "{method}");
            assert_eq!(reply.header("allow"), Some("POST"));
            if method != "HEAD" {
                reply.assert_go_error(405, "method not allowed");
            }
        }
        // The path is checked first.
        let reply = exchange(f.addr, &request("GET", "/nope", &[], b""));
        assert_eq!(reply.status, 404);
        assert!(f.stored().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn authorization_must_match_exactly_after_trimming() {
        let f = Fixture::start().await;
        let mut last_byte_differs = AUTH.to_string();
        last_byte_differs.pop();
        last_byte_differs.push('8');
        let longer = format!("{AUTH}0");
        let first_byte_differs = format!("C{}", &AUTH[1..]);
        let double_space = AUTH.replacen(' ', "  ", 1);
        let tab_inside = AUTH.replacen(' ', "\t", 1);
        let token_only = AUTH.trim_start_matches("Bearer ");
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("Authorization", "")],
            vec![("Authorization", "Bearer wrong")],
            vec![("Authorization", &last_byte_differs)],
            vec![("Authorization", &AUTH[..AUTH.len() - 1])],
            vec![("Authorization", &longer)],
            vec![("Authorization", "bearer s3cret-token-0123456789")],
            vec![("X-Authorization", AUTH)],
            vec![("Authorization", &first_byte_differs)],
            vec![("Authorization", &double_space)],
            vec![("Authorization", &tab_inside)],
            vec![("Authorization", token_only)],
            vec![("Authorization", "Basic dGVzdDpzZWNyZXQ=")],
        ];
        for headers in &cases {
            f.post(headers, b"{\"id\":\"evt-1\"}\n")
                .assert_go_error(401, "unauthorized");
        }
        assert!(f.stored().is_empty());
        for (i, padded) in [
            format!("  {AUTH}\t"),
            format!(" {AUTH}"),
            format!("{AUTH}   "),
            format!("\t{AUTH}\t"),
        ]
        .iter()
        .enumerate()
        {
            let reply = f.post(&[("Authorization", padded)], format!("r{i}").as_bytes());
            assert_eq!(reply.status, 202, "{padded:?}: {reply:?}");
        }
        assert_eq!(f.stored(), b"r0\nr1\nr2\nr3\n");
    }

    #[test]
    fn settings_debug_redacts_the_authorization() {
        let shown = format!("{:?}", ListenerSettings::new("/audit-logs", AUTH, MAX));
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("authorization: \"<redacted>\""), "{shown}");
    }

    #[test]
    fn constant_time_eq_compares_length_and_every_byte() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abc\0", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
        assert!(constant_time_eq(b"", b""));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn raw_body_over_the_limit_is_413() {
        let f = Fixture::start().await;
        let exact = vec![b'a'; MAX];
        let over = vec![b'a'; MAX + 1];
        // Declared by Content-Length: rejected before the body is read.
        f.post_authed(&[], &over)
            .assert_go_error(413, "request body too large");
        // Announced only (`request` adds no second Content-Length).
        let huge = request(
            "POST",
            "/audit-logs",
            &[("Authorization", AUTH), ("Content-Length", "10000000000")],
            b"",
        );
        exchange(f.addr, &huge).assert_go_error(413, "request body too large");
        // Chunked: counted while reading.
        f.post_authed(&[("Transfer-Encoding", "chunked")], &chunked(&over, 1000))
            .assert_go_error(413, "request body too large");
        // One chunk announcing 256 MiB, streamed until refused.
        let mut one_chunk = format!("{:x}\r\n", 256u64 << 20).into_bytes();
        one_chunk.extend(std::iter::repeat_n(b'y', 4 * MAX));
        f.post_authed(&[("Transfer-Encoding", "chunked")], &one_chunk)
            .assert_go_error(413, "request body too large");
        // A gzip body is limited raw too, before any decoding.
        f.post_authed(&[("Content-Encoding", "gzip")], &over)
            .assert_go_error(413, "request body too large");
        assert!(f.stored().is_empty());
        // Exactly the limit is fine, both ways.
        assert_eq!(f.post_authed(&[], &exact).status, 202);
        let reply = f.post_authed(&[("Transfer-Encoding", "chunked")], &chunked(&exact, 7000));
        assert_eq!(reply.status, 202);
        let mut expected = exact.clone();
        expected.push(b'\n');
        expected.extend_from_slice(&exact);
        expected.push(b'\n');
        assert_eq!(f.stored(), expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gzip_bomb_is_413_quickly() {
        let f = Fixture::start().await;
        // 64 MiB of newlines-and-zeros: ~64 KiB gzip, under the raw limit.
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        let block = vec![b'0'; 1 << 20];
        for _ in 0..64 {
            enc.write_all(&block).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < MAX, "{}", bomb.len());
        let started = Instant::now();
        f.post_authed(&[("Content-Encoding", "application/gzip")], &bomb)
            .assert_go_error(413, "decoded request body too large");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // One byte over decoded, far under raw.
        f.post_authed(&[("Content-Encoding", "gzip")], &gzip(&vec![b'r'; MAX + 1]))
            .assert_go_error(413, "decoded request body too large");
        // Decoded exactly at the limit is fine.
        let mut at_limit = vec![b'r'; MAX - 1];
        at_limit.push(b'\n');
        let reply = f.post_authed(&[("Content-Encoding", "gzip")], &gzip(&at_limit));
        assert_eq!(reply.status, 202);
        assert_eq!(f.stored(), at_limit);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corrupt_or_truncated_gzip_is_400() {
        let f = Fixture::start().await;
        let good = gzip(b"{\"id\":\"evt-1\"}\n{\"id\":\"evt-2\"}\n");
        let truncated = &good[..good.len() - 5];
        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x55;
        let mut garbage = vec![0x1f, 0x8b];
        garbage.extend_from_slice(b"not deflate at all");
        let n = good.len();
        let flip = |i: usize| {
            let mut g = good.clone();
            g[i] ^= 0xff;
            g
        };
        let mut trailing_garbage = good.clone();
        trailing_garbage.extend_from_slice(b"garbage after the member");
        for (case, body) in [
            ("cut near the end", truncated),
            ("deflate data corrupt", &flipped),
            ("magic bytes, then no deflate", &garbage),
            ("only the magic bytes", &good[..2]),
            ("header only", &good[..10]),
            ("cut in the middle", &good[..n / 2]),
            ("trailer missing", &good[..n - 8]),
            ("trailer cut", &good[..n - 1]),
            ("CRC wrong", &flip(n - 8)),
            ("length wrong", &flip(n - 4)),
            ("compression method not deflate", &flip(2)),
            ("garbage after a valid member", &trailing_garbage),
        ] {
            let reply = f.post_authed(&[("Content-Encoding", "gzip")], body);
            assert_eq!(reply.status, 400, "{case}: {reply:?}");
            reply.assert_go_error(400, "failed to decode request body");
            // The magic bytes alone make it gzip.
            let reply = f.post_authed(&[], body);
            assert_eq!(reply.status, 400, "{case}, no Content-Encoding: {reply:?}");
            reply.assert_go_error(400, "failed to decode request body");
        }
        assert!(f.stored().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn content_encoding_lies_are_seen_through() {
        let f = Fixture::start().await;
        // Says gzip, is plain: refused, nothing stored.
        for enc in [
            "gzip",
            "x-gzip",
            "application/gzip",
            "GZIP",
            "identity, GZIP",
        ] {
            f.post_authed(&[("Content-Encoding", enc)], b"{\"plain\":true}\n")
                .assert_go_error(400, "failed to decode request body");
        }
        f.post_authed(&[("Content-Encoding", "gzip")], b"")
            .assert_go_error(400, "failed to decode request body");
        assert!(f.stored().is_empty());
        // Says nothing (or something else), is gzip: decoded by its magic bytes.
        let gz = gzip(b"{\"n\":1}\n");
        for headers in [
            vec![],
            vec![("Content-Encoding", "identity")],
            vec![("Content-Encoding", "deflate")],
            vec![("Content-Encoding", "br")],
            vec![("Content-Encoding", "text/plain")],
            vec![("Content-Type", "text/plain")],
        ] {
            assert_eq!(f.post_authed(&headers, &gz).status, 202);
        }
        // Konnect's own header, with two concatenated members.
        let mut two = gzip(b"{\"n\":2}\n");
        two.extend(gzip(b"{\"n\":3}"));
        let reply = f.post_authed(&[("Content-Encoding", "application/gzip")], &two);
        assert_eq!(reply.status, 202);
        // An unknown encoding on a plain body: stored as it is, like the
        // original.
        let reply = f.post_authed(&[("Content-Encoding", "br")], b"{\"br\":true}");
        assert_eq!(reply.status, 202);
        assert_eq!(
            f.stored(),
            b"{\"n\":1}\n"
                .repeat(6)
                .into_iter()
                .chain(*b"{\"n\":2}\n{\"n\":3}\n{\"br\":true}\n")
                .collect::<Vec<_>>()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lines_are_trimmed_blank_ones_dropped_and_bytes_kept() {
        let f = Fixture::start().await;
        let body = b"\r\n  {\"a\":1}\r\n\r\n \t \nCEF:0|Kong|\xff\xfe\x00nul|\r\n\xe2\x82\xac\n";
        assert_eq!(f.post_authed(&[], body).status, 202);
        assert_eq!(
            f.stored(),
            b"{\"a\":1}\nCEF:0|Kong|\xff\xfe\x00nul|\n\xe2\x82\xac\n"
        );
        // Blank bodies: 202 and nothing written, plain or gzip.
        for body in [
            b"".to_vec(),
            b"\r\n \n\n".to_vec(),
            b"\r\n\r\n   \n\t\n\x0b\x0c\n".to_vec(),
            gzip(b"\n\n"),
        ] {
            assert_eq!(f.post_authed(&[], &body).status, 202);
        }
        let mut want = b"{\"a\":1}\nCEF:0|Kong|\xff\xfe\x00nul|\n\xe2\x82\xac\n".to_vec();
        assert_eq!(f.stored(), want);
        // Split on LF only; a lone CR, inner blanks and a last line without
        // LF are kept; vertical tab and form feed are trimmed as blanks.
        let body = b"\x0c{\"c\":3}\x0b\nx\ry\r\n  inner  spaces  \nlast";
        assert_eq!(f.post_authed(&[], body).status, 202);
        want.extend_from_slice(b"{\"c\":3}\nx\ry\ninner  spaces\nlast\n");
        assert_eq!(f.stored(), want);
        // Invalid UTF-8 (a lone continuation byte, a surrogate, Latin-1)
        // and NUL stay byte for byte, plain and through gzip.
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
        assert_eq!(f.post_authed(&[], &body).status, 202);
        assert_eq!(
            f.post_authed(&[("Content-Encoding", "gzip")], &gzip(&body))
                .status,
            202
        );
        want.extend_from_slice(&body);
        want.extend_from_slice(&body);
        assert_eq!(f.stored(), want);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_failure_is_500_and_nothing_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events.jsonl");
        std::fs::write(&events, b"").unwrap();
        // A read-only descriptor: every write fails.
        let file = std::fs::File::open(&events).unwrap();
        let store = EventStore::start(file, events.clone(), 0).unwrap();
        let mut f = Fixture::start_on(dir, events, store, |_| {}).await;
        f.post_authed(&[], b"{\"id\":1}\n")
            .assert_go_error(500, "failed to persist audit-log event");
        assert!(f.stored().is_empty());
        let report = f.stop().await;
        assert_eq!((report.accepted, report.failed), (0, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_never_interleave_and_each_record_is_stored_once() {
        let mut f = Fixture::start().await;
        let mut tasks = Vec::new();
        for t in 0..64 {
            let addr = f.addr;
            tasks.push(tokio::spawn(async move {
                // One keep-alive connection per sender, like Konnect's.
                let stream = TcpStream::connect(addr).await.unwrap();
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                for r in 0..20 {
                    let body: String = (0..10)
                        .map(|i| format!("{{\"t\":{t},\"r\":{r},\"i\":{i}}}\n"))
                        .collect();
                    let body = if r % 2 == 0 {
                        Bytes::from(gzip(body.as_bytes()))
                    } else {
                        Bytes::from(body)
                    };
                    let req = Request::post("/audit-logs")
                        .header("Host", "test")
                        .header("Authorization", AUTH)
                        .body(Full::new(body))
                        .unwrap();
                    let resp = sender.send_request(req).await.unwrap();
                    assert_eq!(resp.status(), 202);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let stored = String::from_utf8(f.stored()).unwrap();
        let lines: Vec<&str> = stored.lines().collect();
        assert_eq!(lines.len(), 64 * 20 * 10);
        // Each request's ten records are contiguous and in order.
        for group in lines.chunks(10) {
            let prefix = &group[0][..group[0].rfind(",\"i\"").unwrap()];
            for (i, line) in group.iter().enumerate() {
                assert_eq!(*line, format!("{prefix},\"i\":{i}}}"));
            }
        }
        let mut unique = lines.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), lines.len());
        let report = f.stop().await;
        assert_eq!((report.connections, report.accepted), (64, 64 * 20));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_headers_get_the_connection_closed() {
        let f = Fixture::start_with(|s| s.header_read_timeout = Duration::from_millis(300)).await;
        let mut slow = RawConn::connect(f.addr).unwrap();
        slow.send(b"POST /audit-logs HTTP/1.1\r\nHost: te").unwrap();
        let closed = slow
            .wait_closed(Duration::from_secs(3))
            .expect("connection still open after 3s");
        assert!(closed.after >= Duration::from_millis(250), "{closed:?}");
        assert!(slow.pending().is_empty(), "{:?}", slow.pending());
        // An idle kept-alive connection is closed the same way.
        let mut idle = RawConn::connect(f.addr).unwrap();
        let closed = idle.wait_closed(Duration::from_secs(3));
        assert!(closed.is_some(), "idle connection still open after 3s");
        assert!(f.stored().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn oversized_request_heads_are_refused() {
        let f = Fixture::start().await;
        let filler = "x".repeat(HEAD_MAX);
        let reply = f.post_authed(&[("X-Filler", &filler)], b"{}");
        assert_eq!(reply.status, 431, "{reply:?}");
        assert!(f.stored().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_body_is_400_after_the_body_timeout() {
        let f = Fixture::start_with(|s| s.body_read_timeout = Duration::from_millis(300)).await;
        let mut conn = RawConn::connect(f.addr).unwrap();
        let req = request(
            "POST",
            "/audit-logs",
            &[("Authorization", AUTH)],
            &[b'x'; 100],
        );
        conn.send(&req[..req.len() - 90]).unwrap();
        let started = Instant::now();
        conn.read_reply()
            .unwrap()
            .assert_go_error(400, "failed to read request body");
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert!(f.stored().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_over_the_limit_wait_to_be_accepted() {
        let f = Fixture::start_with(|s| s.max_connections = 1).await;
        let mut first = RawConn::connect(f.addr).unwrap();
        first
            .send(&request(
                "POST",
                "/audit-logs",
                &[("Authorization", AUTH)],
                b"one",
            ))
            .unwrap();
        let reply = first.read_reply().unwrap();
        assert_eq!(reply.status, 202);
        assert!(!reply.closes_connection(), "{reply:?}");
        // The kernel completes the handshake, but nobody serves it yet.
        let second = std::thread::spawn({
            let addr = f.addr;
            move || {
                exchange(
                    addr,
                    &request("POST", "/audit-logs", &[("Authorization", AUTH)], b"two"),
                )
            }
        });
        // The point is that time passes without the second being served.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!second.is_finished());
        assert_eq!(f.stored(), b"one\n");
        drop(first);
        // `exchange` gives up (and panics) after its read timeout.
        let reply = second.join().expect("the second request is served");
        assert_eq!(reply.status, 202);
        assert_eq!(f.stored(), b"one\ntwo\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_drains_an_in_flight_request_and_refuses_new_ones() {
        let f = Fixture::start().await;
        let mut conn = RawConn::connect(f.addr).unwrap();
        let req = request(
            "POST",
            "/audit-logs",
            &[("Authorization", AUTH)],
            b"{\"late\":true}\n",
        );
        let (head, tail) = req.split_at(req.len() - 5);
        conn.send(head).unwrap();
        // Let the server see the headers before shutdown starts.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let idle = RawConn::connect(f.addr).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        f.shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            RawConn::connect(f.addr).is_err(),
            "still accepting after shutdown"
        );
        conn.send(tail).unwrap();
        let reply = conn.read_reply().unwrap();
        assert_eq!(reply.status, 202);
        let report = tokio::time::timeout(Duration::from_secs(5), f.serving)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::read(&f.events).unwrap(), b"{\"late\":true}\n");
        assert_eq!(
            (
                report.connections,
                report.accepted,
                report.aborted_connections
            ),
            (2, 1, 0)
        );
        drop(idle);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drain_timeout_drops_requests_that_do_not_finish() {
        let mut f = Fixture::start_with(|s| s.drain_timeout = Duration::from_millis(300)).await;
        let mut conn = RawConn::connect(f.addr).unwrap();
        let req = request(
            "POST",
            "/audit-logs",
            &[("Authorization", AUTH)],
            b"{\"never\":1}\n",
        );
        conn.send(&req[..req.len() - 3]).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let report = f.stop().await;
        assert!(f.stored().is_empty());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(report.aborted_connections, 1);
        let closed = conn.wait_closed(Duration::from_secs(5));
        assert!(closed.is_some(), "connection still open after the drain");
        assert!(
            conn.pending().is_empty(),
            "no reply for a dropped request: {:?}",
            conn.pending()
        );
    }
}
