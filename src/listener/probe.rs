//! The listener's side of the tunnel self-test (`listen --check`): before
//! the listener serves, a stand-in answers on its socket, recognises the
//! one probe that carries this run's one-time token and notes how it
//! arrived (path, whether the Authorization was intact). The probe is never
//! stored and never counted; it does not reach `server` or the store.
//!
//! Anything else that arrives meanwhile (a second or so) gets 503 with
//! `Retry-After`, as a listener that is not serving yet. Sending the probe
//! and judging the outcome is `listen::check`'s.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// The request header that carries the probe's token.
pub const PROBE_HEADER: &str = "x-kongctl-probe";

/// How the probe arrived at this listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The request path (without the query).
    pub path: String,
    /// Whether an `Authorization` header came at all.
    pub authorization_present: bool,
    /// Whether it was exactly the run's value (surrounding blanks aside,
    /// as the listener compares it).
    pub authorization_intact: bool,
}

/// Where the stand-in notes the probe's arrival.
#[derive(Debug, Clone, Default)]
pub struct ArrivalSlot(Arc<Mutex<Option<Arrival>>>);

impl ArrivalSlot {
    /// The first probe that arrived, if any.
    pub fn get(&self) -> Option<Arrival> {
        self.0.lock().expect("arrival lock poisoned").clone()
    }

    fn set_first(&self, arrival: Arrival) {
        let mut slot = self.0.lock().expect("arrival lock poisoned");
        if slot.is_none() {
            *slot = Some(arrival);
        }
    }
}

/// Answers on `listener` until the returned future is dropped: the request
/// carrying `token` in [`PROBE_HEADER`] gets 204 (and is noted in `slot`),
/// any other 503. Connections still open are closed when it is dropped.
pub async fn answer_probes(
    listener: &TcpListener,
    token: String,
    authorization: String,
    slot: ArrivalSlot,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(5))
        .keep_alive(false);
    let ctx = Arc::new((token, authorization, slot));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            // Transient accept failures: the probe times out on its own if
            // they persist.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let ctx = Arc::clone(&ctx);
        let conn = builder.serve_connection(
            TokioIo::new(stream),
            service_fn(move |req| {
                let ctx = Arc::clone(&ctx);
                async move {
                    let (token, authorization, slot) = &*ctx;
                    Ok::<_, Infallible>(answer(req, token, authorization, slot))
                }
            }),
        );
        connections.spawn(async move {
            let _ = conn.await;
        });
    }
}

fn answer(
    req: Request<Incoming>,
    token: &str,
    authorization: &str,
    slot: &ArrivalSlot,
) -> Response<Full<Bytes>> {
    let carried = req
        .headers()
        .get(PROBE_HEADER)
        .map(|v| v.as_bytes().trim_ascii());
    if carried.is_some_and(|t| bool::from(t.ct_eq(token.as_bytes()))) {
        let auth = req.headers().get(header::AUTHORIZATION);
        slot.set_first(Arrival {
            path: req.uri().path().to_string(),
            authorization_present: auth.is_some(),
            authorization_intact: auth.is_some_and(|v| {
                bool::from(
                    v.as_bytes()
                        .trim_ascii()
                        .ct_eq(authorization.trim().as_bytes()),
                )
            }),
        });
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NO_CONTENT;
        return resp;
    }
    let mut resp = Response::new(Full::new(Bytes::from_static(
        b"listener starting, retry shortly\n",
    )));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = resp.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::{exchange, request};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_token_is_a_probe_and_its_arrival_is_noted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slot = ArrivalSlot::default();
        let answering = answer_probes(
            &listener,
            "tok-123".into(),
            "Bearer s3cret".into(),
            slot.clone(),
        );
        let client = tokio::task::spawn_blocking(move || {
            let other = exchange(addr, &request("POST", "/audit-logs", &[], b"{}\n"));
            let wrong = exchange(
                addr,
                &request("POST", "/audit-logs", &[("X-Kongctl-Probe", "nope")], b""),
            );
            let probe = exchange(
                addr,
                &request(
                    "POST",
                    "/elsewhere",
                    &[
                        ("X-Kongctl-Probe", "tok-123"),
                        ("Authorization", "Bearer other"),
                    ],
                    b"",
                ),
            );
            (other, wrong, probe)
        });
        let (other, wrong, probe) = tokio::select! {
            _ = answering => unreachable!("answers until dropped"),
            r = client => r.unwrap(),
        };
        assert_eq!(other.status, 503, "{other:?}");
        assert_eq!(other.header("retry-after"), Some("1"));
        assert_eq!(wrong.status, 503, "{wrong:?}");
        assert_eq!(probe.status, 204, "{probe:?}");
        assert_eq!(
            slot.get(),
            Some(Arrival {
                path: "/elsewhere".into(),
                authorization_present: true,
                authorization_intact: false,
            })
        );
    }
}
