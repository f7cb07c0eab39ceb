//! One batch, delivered as Konnect documents it: one gzip POST per batch of
//! newline-terminated records, with the destination's `Authorization` value,
//! `Content-Type: text/plain` and `Content-Encoding: application/gzip`,
//! retried on a connection error, 429 or 500 (at most 4 retries). While
//! the receiver is switched down (`Sim::set_receiver_down`) every attempt
//! fails as a refused connection would.
//!
//! The emulator has no TLS client. An endpoint whose host is mapped by a
//! tunnel is delivered to over plain HTTP at the tunnel's local address (with
//! the endpoint's host as `Host`); other `http://` endpoints are delivered to
//! as they are; an unmapped `https://` endpoint fails the attempt (not
//! retried: it cannot succeed).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use url::{Host, Position, Url};

use super::Deliveries;
use crate::codec::gzip_lines;
use crate::config::MAX_RETRIES;
use crate::snapshot::{Attempt, Delivery, DeliverySource};
use crate::state::{LastAttempt, SharedState, Stream, Target};
use crate::time;

/// Bytes of a receiver's answer kept for the status endpoint.
const RESPONSE_EXCERPT: usize = 256;

/// Why an attempt got no HTTP answer.
#[derive(Debug)]
struct AttemptError {
    message: String,
    /// Connection errors and timeouts are retried; configuration errors
    /// (no TLS, unparsable endpoint) are not.
    retryable: bool,
}

impl AttemptError {
    fn connection(message: String) -> AttemptError {
        AttemptError {
            message,
            retryable: true,
        }
    }

    fn fatal(message: String) -> AttemptError {
        AttemptError {
            message,
            retryable: false,
        }
    }
}

impl Deliveries {
    /// Sends one batch to `target`, with retries, and logs it in the state
    /// (unless the state was reset since `epoch`). Returns the finished delivery.
    pub(super) async fn deliver_batch(
        &self,
        stream: Stream,
        source: DeliverySource,
        target: &Target,
        records: Vec<String>,
        epoch: u64,
        cancel: &CancellationToken,
    ) -> Delivery {
        let state = &*self.inner.state;
        let body = Bytes::from(gzip_lines(&records));
        let region = stream.region();
        let mut delivery = Delivery {
            id: 0,
            region: region.to_string(),
            portal_id: stream.portal().map(|id| id.to_string()),
            source,
            destination_id: target.destination_id.map(|id| id.to_string()),
            endpoint: target.endpoint.clone(),
            log_format: target.log_format.as_str().to_string(),
            records,
            attempts: Vec::new(),
            finished: false,
            delivered: false,
            outcome: None,
            started_at: time::format_millis(time::now()),
        };
        delivery.id = state.lock().begin_delivery(epoch, delivery.clone());
        let config = &*self.inner.config;
        let mut outcome = String::new();
        for attempt_number in 0..=MAX_RETRIES {
            if attempt_number > 0 {
                let wait = config.retry_wait(attempt_number - 1);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = cancel.cancelled() => {
                        outcome = format!("cancelled after {attempt_number} attempts (reset or shutdown)");
                        break;
                    }
                }
            }
            let started = Instant::now();
            let at = time::now();
            let result = match tokio::time::timeout(
                config.delivery_timeout,
                post_once(state, target, body.clone()),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(AttemptError::connection(format!(
                    "no answer within {} ms",
                    config.delivery_timeout.as_millis()
                ))),
            };
            let duration_ms = started.elapsed().as_millis() as u64;
            let (attempt, message, retry, delivered) = match result {
                Ok((status, excerpt)) => {
                    let delivered = (200..300).contains(&status);
                    let retry = status == 429 || status == 500;
                    let attempt = Attempt {
                        at: time::format_millis(at),
                        status: Some(status),
                        error: None,
                        duration_ms,
                    };
                    (attempt, excerpt, retry, delivered)
                }
                Err(error) => {
                    let attempt = Attempt {
                        at: time::format_millis(at),
                        status: None,
                        error: Some(error.message.clone()),
                        duration_ms,
                    };
                    (attempt, error.message, error.retryable, false)
                }
            };
            tracing::info!(
                region,
                portal = delivery.portal_id.as_deref(),
                delivery = delivery.id,
                attempt = attempt_number + 1,
                endpoint = %redact_userinfo(&target.endpoint),
                status = attempt.status,
                error = attempt.error.as_deref(),
                records = delivery.records.len(),
                "delivery attempt"
            );
            let last = LastAttempt {
                at,
                status: attempt.status,
                message,
                failing: !delivered,
            };
            state
                .lock()
                .record_attempt(epoch, stream, delivery.id, &attempt, last);
            let status = attempt.status;
            delivery.attempts.push(attempt);
            if delivered {
                delivery.delivered = true;
                outcome = format!("delivered: status {}", status.unwrap_or_default());
                break;
            }
            if !retry {
                outcome = match status {
                    Some(status) => format!("failed: status {status} is not retried"),
                    None => "failed: error is not retried".to_string(),
                };
                break;
            }
            if attempt_number == MAX_RETRIES {
                outcome = format!("failed: gave up after {} attempts", MAX_RETRIES + 1);
            }
        }
        delivery.finished = true;
        delivery.outcome = Some(outcome.clone());
        state
            .lock()
            .finish_delivery(epoch, delivery.id, delivery.delivered, &outcome);
        delivery
    }
}

/// One POST; the status and the start of the answer's body.
async fn post_once(
    state: &SharedState,
    target: &Target,
    body: Bytes,
) -> Result<(u16, String), AttemptError> {
    if state.lock().receiver_down {
        // What a sender sees when the receiving host is down: retried
        // like any connection error, so Konnect's retries run out.
        return Err(AttemptError::connection(
            "connect: connection refused (the receiver is down: Sim::set_receiver_down)"
                .to_string(),
        ));
    }
    let url = Url::parse(&target.endpoint)
        .map_err(|e| AttemptError::fatal(format!("endpoint is not a URL: {e}")))?;
    let host = url
        .host_str()
        .ok_or_else(|| AttemptError::fatal("endpoint has no host".to_string()))?;
    let host_header = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let path_and_query = &url[Position::BeforePath..Position::AfterQuery];
    let tunnel = state
        .lock()
        .tunnels
        .get(&host.to_ascii_lowercase())
        .copied();
    let stream = match tunnel {
        Some(local) => TcpStream::connect(local).await.map_err(|e| {
            AttemptError::connection(format!("tunnel {host} -> {local}: connect: {e}"))
        })?,
        None if url.scheme() == "https" => {
            return Err(AttemptError::fatal(format!(
                "cannot deliver to https://{host_header}: konnect-sim has no TLS client; \
                 map the host to a local listener with a tunnel (Sim::add_tunnel or POST /_sim/tunnels)"
            )));
        }
        None => connect_direct(&url).await?,
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| AttemptError::connection(format!("HTTP handshake: {}", error_chain(&e))))?;
    let driver = tokio::spawn(connection);
    let request = Request::post(path_and_query)
        .header(HOST, host_header)
        .header(AUTHORIZATION, target.authorization.expose())
        .header(CONTENT_TYPE, "text/plain")
        .header(CONTENT_ENCODING, "application/gzip")
        .body(Full::new(body))
        .map_err(|e| AttemptError::fatal(format!("cannot build the request: {e}")))?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| AttemptError::connection(error_chain(&e)))?;
        let status = response.status().as_u16();
        // The body only feeds `last_response_message`; a broken one is not
        // a failed delivery.
        let body = response
            .into_body()
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        let mut excerpt = String::from_utf8_lossy(&body[..body.len().min(RESPONSE_EXCERPT)])
            .trim()
            .to_string();
        if excerpt.is_empty() {
            excerpt = hyper::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("")
                .to_string();
        }
        Ok((status, excerpt))
    }
    .await;
    driver.abort();
    result
}

async fn connect_direct(url: &Url) -> Result<TcpStream, AttemptError> {
    let port = url.port_or_known_default().unwrap_or(80);
    let addresses: Vec<SocketAddr> = match url.host() {
        Some(Host::Ipv4(ip)) => vec![SocketAddr::from((ip, port))],
        Some(Host::Ipv6(ip)) => vec![SocketAddr::from((ip, port))],
        Some(Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|e| AttemptError::connection(format!("resolve {name}: {e}")))?
            .collect(),
        None => return Err(AttemptError::fatal("endpoint has no host".to_string())),
    };
    let mut last_error = None;
    for address in &addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some(format!("connect {address}: {e}")),
        }
    }
    Err(AttemptError::connection(last_error.unwrap_or_else(|| {
        format!("{} resolves to no address", url.host_str().unwrap_or(""))
    })))
}

/// An error and its sources, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// The URL without `user:password@`, for logs.
fn redact_userinfo(endpoint: &str) -> String {
    match Url::parse(endpoint) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => endpoint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_in_urls() {
        assert_eq!(redact_userinfo("https://u:p@h.test/x"), "https://h.test/x");
        assert_eq!(
            redact_userinfo("https://h.test/x?a=1"),
            "https://h.test/x?a=1"
        );
    }
}
