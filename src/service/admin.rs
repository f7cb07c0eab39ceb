//! The admin endpoint (`--admin-address`): plain HTTP/1.1 on a port of its
//! own, never the webhook's (which the tunnel exposes), for a supervisor
//! and a scraper on the machine or the private network.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /healthz` | 200 `ok`: the process serves HTTP |
//! | `GET /readyz` | 200 `ready`, or 503 with the one-line reason (`health`) |
//! | `GET /metrics` | 200, the Prometheus text format or OpenMetrics (`metrics`) |
//! | any other path | 404 `404 page not found` |
//! | another method | 405 with `Allow: GET, HEAD` |
//!
//! `HEAD` answers as `GET` without the body. The limits are the webhook
//! listener's: a head of at most 16 KiB, a 64 KiB read buffer, 10 s for
//! the head (and for the next request on a kept-alive connection), and a
//! bounded number of connections (more wait in the kernel's backlog).
//! Request bodies are never read; a request that has one is answered with
//! `Connection: close`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::health::Health;
use super::metrics;
use crate::error::CliError;
use crate::listener::server::{HEAD_MAX, READ_BUFFER_MAX};

/// Connections served at once (a scraper and a supervisor need a few).
const MAX_CONNECTIONS: usize = 64;
/// Time allowed for a request's head, and between requests.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an answer may take to be written before the connection goes.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds the admin address, with the webhook listener's error messages.
pub async fn bind(addr: SocketAddr, webhook: SocketAddr) -> Result<TcpListener, CliError> {
    TcpListener::bind(addr).await.map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => "bind: address already in use".to_string(),
            std::io::ErrorKind::PermissionDenied => "bind: permission denied".to_string(),
            _ => format!("bind: {e}"),
        };
        let err = CliError::new(format!("admin endpoint: listen tcp {addr}: {why}"));
        if e.kind() == std::io::ErrorKind::AddrInUse {
            err.with_hint(format!(
                "another program uses this port: choose another --admin-address (not the listener's {}); nothing was changed in Konnect",
                webhook.port()
            ))
        } else {
            err
        }
    })
}

struct Context {
    health: Arc<Health>,
    registry: Registry,
}

/// Serves until `stop` is cancelled; connections in progress are closed
/// gracefully (their answers are short).
pub async fn serve(listener: TcpListener, health: Arc<Health>, stop: CancellationToken) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(READ_BUFFER_MAX)
        .max_header_size(HEAD_MAX)
        .keep_alive(true);
    let ctx = Arc::new(Context {
        registry: metrics::registry(health.clone()),
        health,
    });
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            p = Arc::clone(&limit).acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "admin endpoint: accept failed");
                    // Out of descriptors and the like: let it pass.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let ctx = Arc::clone(&ctx);
        let conn = builder.serve_connection(
            TokioIo::new(stream),
            service_fn(move |req| {
                let ctx = Arc::clone(&ctx);
                async move { Ok::<_, Infallible>(ctx.answer(&req)) }
            }),
        );
        let stop = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut conn = std::pin::pin!(conn);
            let done = tokio::time::timeout(CONNECTION_TIMEOUT, async {
                tokio::select! {
                    r = conn.as_mut() => r,
                    _ = stop.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                }
            });
            match done.await {
                Ok(Err(e)) => tracing::debug!(error = %e, "admin connection ended with an error"),
                Err(_) => tracing::debug!("admin connection timed out"),
                Ok(Ok(())) => {}
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.shutdown().await;
}

impl Context {
    fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let head = req.method() == Method::HEAD;
        let mut resp = match (req.uri().path(), req.method()) {
            ("/healthz" | "/readyz" | "/metrics", &Method::GET | &Method::HEAD) => {
                self.route(req.uri().path(), req)
            }
            ("/healthz" | "/readyz" | "/metrics", _) => {
                let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                r
            }
            _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
        };
        if head {
            let len = resp.body().size_hint().exact().unwrap_or(0);
            *resp.body_mut() = Full::new(Bytes::new());
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        // The body is never read: close rather than drain it.
        if req.body().size_hint().exact() != Some(0) {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }

    fn route(&self, path: &str, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        match path {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" => {
                let state = self.health.snapshot();
                match self.health.readiness(state.as_ref()) {
                    Ok(()) => text(StatusCode::OK, "ready\n"),
                    Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("{why}\n")),
                }
            }
            _ => {
                let accept = req
                    .headers()
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok());
                let (body, content_type) =
                    metrics::encode(&self.registry, metrics::wants_openmetrics(accept));
                let mut r = Response::new(Full::new(Bytes::from(body)));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                r
            }
        }
    }
}

/// A plain-text answer, as the webhook listener's (Go's `http.Error`).
fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listen::state::ListenerState;
    use crate::service::Snapshots;
    use test_support::{exchange, request};

    struct Fixed(ListenerState);
    impl Snapshots for Fixed {
        fn snapshot(&self) -> ListenerState {
            self.0.clone()
        }
    }

    fn state() -> ListenerState {
        serde_json::from_value(serde_json::json!({
            "started_at": "2026-01-01T00:00:00Z", "profile": "default",
            "listen_address": "127.0.0.1:1", "listen_path": "/a",
            "local_endpoint": "http://127.0.0.1:1/a", "events_file": "/e/events.jsonl",
            "records_received": 7, "requests_received": 2,
            "ingest": {"requests": {"202": 2, "401": 1}, "records": 9, "records_set_aside": 0,
                       "bytes_raw": 10, "bytes_decoded": 20, "store_failing": false},
            "replay": {"state": "idle", "backfill": "auto", "jobs_completed": 1,
                       "jobs_failed": 0, "duplicates_dropped": 2}
        }))
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_health_readiness_and_metrics_and_nothing_else() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health = Arc::new(Health::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, health.clone(), stop.clone()));
        let get = |path: &str| exchange(addr, &request("GET", path, &[], b""));

        let r = get("/healthz");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));
        let r = get("/readyz");
        assert_eq!(r.status, 503);
        assert!(r.body.starts_with(b"starting"), "{r:?}");

        health.serving(Arc::new(Fixed(state())));
        let r = get("/readyz");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ready\n"[..]));

        let r = get("/metrics");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some(metrics::PROMETHEUS_TEXT));
        let body = String::from_utf8(r.body.clone()).unwrap();
        assert!(
            body.contains("kongctl_audit_records_stored_total 7\n"),
            "{body}"
        );
        assert!(
            body.contains("kongctl_audit_requests_total{code=\"401\"} 1\n"),
            "{body}"
        );
        assert!(
            body.contains("kongctl_audit_records_set_aside_total{reason=\"duplicate\"} 2\n"),
            "{body}"
        );
        assert!(body.contains("kongctl_audit_ready 1\n"), "{body}");
        assert!(body.contains("process_resident_memory_bytes "), "{body}");
        assert!(!body.contains("# EOF"), "{body}");

        let r = exchange(
            addr,
            &request(
                "GET",
                "/metrics",
                &[("Accept", "application/openmetrics-text; version=1.0.0")],
                b"",
            ),
        );
        assert_eq!(r.header("content-type"), Some(metrics::OPENMETRICS_TEXT));
        assert!(String::from_utf8_lossy(&r.body).ends_with("# EOF\n"));

        for path in ["/", "/metrics/", "/audit-logs", "/healthz?x", "/HEALTHZ"] {
            let r = get(path);
            if path == "/healthz?x" {
                assert_eq!(r.status, 200, "the query string is not the path");
                continue;
            }
            assert_eq!(r.status, 404, "{path}");
            assert_eq!(r.body, b"404 page not found\n");
        }
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let r = exchange(addr, &request(method, "/metrics", &[], b"x"));
            assert_eq!(r.status, 405, "{method}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
        }
        let r = exchange(addr, &request("HEAD", "/healthz", &[], b""));
        assert_eq!(r.status, 200);
        assert!(r.body.is_empty());

        assert!(health.draining());
        assert_eq!(get("/readyz").status, 503);
        assert_eq!(get("/healthz").status, 200);
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
