//! The HTTP server: accepts connections on the one loopback port, sends
//! `/_sim/` requests to the admin API and everything else through fault
//! injection, the Konnect API and the request log.
//!
//! Shutdown stops accepting, lets in-flight requests finish (3 seconds at
//! most) and closes idle keep-alive connections.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, DATE, HOST, RETRY_AFTER};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::api::{self, ApiRequest, ApiResponse};
use crate::config::{host_kind, region_of_host};
use crate::context::Context;
use crate::contract::Contract;
use crate::fault::FaultAction;
use crate::problem::{InvalidParameter, Problem};
use crate::snapshot::{ContractViolation, RequestLogEntry};
use crate::time;

/// Largest request body accepted (Konnect's limit is not documented).
const BODY_LIMIT: usize = 1 << 20;
/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Accepts connections until `shutdown` is cancelled, then drains them.
pub(crate) async fn serve(ctx: Context, listener: TcpListener, shutdown: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(ctx.clone(), stream, shutdown.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = connections.len(),
            "closing connections that did not finish in time"
        );
        connections.abort_all();
    }
}

async fn serve_connection(ctx: Context, stream: TcpStream, shutdown: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| handle(ctx.clone(), request));
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Returned by the service to make hyper close the connection without
/// answering (the `Drop` fault).
#[derive(Debug)]
struct DroppedByFault;

impl fmt::Display for DroppedByFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DroppedByFault {}

async fn handle(
    ctx: Context,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DroppedByFault> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .unwrap_or("")
        .to_string();
    let region = region_of_host(&host);
    let host = host_kind(&host);

    if path == "/_sim" || path.starts_with("/_sim/") {
        let response = match read_body(request).await {
            Ok(body) => admin::handle(&ctx, &method, &path, region, &body).await,
            Err(detail) => body_problem(&ctx, detail),
        };
        return Ok(dated(&ctx, response));
    }

    let mut log = RequestLogEntry {
        at: time::format_millis(time::now()),
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        region: region.to_string(),
        status: 0,
        fault: None,
    };
    let authorization = request
        .headers()
        .get(AUTHORIZATION)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let cookie = request
        .headers()
        .get(COOKIE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    // Read before any fault applies, so that every request is checked
    // against the contract, faulted ones too.
    let body = read_body(request).await;
    check_contract(&ctx, &log, content_type.as_deref(), &body);

    let fault = ctx.state().take_fault(method.as_str(), &path);
    if let Some(action) = fault {
        log.fault = Some(action.describe());
        match action {
            FaultAction::Drop => {
                record(&ctx, log);
                return Err(DroppedByFault);
            }
            FaultAction::Status {
                status,
                retry_after,
            } => {
                let trace = ctx.state().trace();
                let mut response = ApiResponse::problem(&Problem::new(
                    status,
                    trace,
                    "Injected fault (konnect-sim)",
                ));
                if let Some(seconds) = retry_after {
                    response = response.with_header(RETRY_AFTER.as_str(), seconds.to_string());
                }
                log.status = status;
                record(&ctx, log);
                return Ok(dated(&ctx, response));
            }
            FaultAction::Problem { status, detail } => {
                let trace = ctx.state().trace();
                let response = ApiResponse::problem(&Problem::new(status, trace, detail));
                log.status = status;
                record(&ctx, log);
                return Ok(dated(&ctx, response));
            }
            FaultAction::Delay(wait) => {
                tokio::time::sleep(wait).await;
            }
            FaultAction::Pass => {}
        }
    }

    let response = match body {
        Ok(body) => api::handle(
            &ctx,
            &ApiRequest {
                method,
                path,
                query,
                region,
                host,
                authorization,
                cookie,
                body,
            },
        ),
        Err(detail) => body_problem(&ctx, detail),
    };
    log.status = response.status;
    record(&ctx, log);
    Ok(dated(&ctx, response))
}

/// Counts the call under its operation's route and records how it breaks
/// the OpenAPI contract, if it does. The login refresh is in no spec (it is
/// what the original kongctl uses) and is only counted.
fn check_contract(
    ctx: &Context,
    request: &RequestLogEntry,
    content_type: Option<&str>,
    body: &Result<Bytes, &'static str>,
) {
    let method = request.method.as_str();
    let contract = Contract::global();
    if request.path == api::REFRESH_PATH {
        ctx.state()
            .count_request(format!("{method} {}", request.path));
        return;
    }
    let bytes = body.as_ref().map(|b| &b[..]).unwrap_or_default();
    let check = contract.check_request(method, &request.path, &request.query, content_type, bytes);
    let mut problems = check.violations;
    if let Err(reason) = body {
        problems.push(format!("the body could not be read: {reason}"));
    }
    let route = check
        .route
        .as_ref()
        .map_or_else(|| request.path.clone(), |route| route.route.clone());
    let mut state = ctx.state();
    state.count_request(format!("{method} {route}"));
    if !problems.is_empty() {
        tracing::warn!(
            method,
            path = %request.path,
            problems = %problems.join("; "),
            "request breaks the API contract"
        );
        state.record_violation(ContractViolation {
            at: request.at.clone(),
            method: method.to_string(),
            path: request.path.clone(),
            query: request.query.clone(),
            operation: check.route.and_then(|route| route.operation_id),
            problems,
        });
    }
}

fn record(ctx: &Context, entry: RequestLogEntry) {
    tracing::info!(
        method = %entry.method,
        path = %entry.path,
        region = %entry.region,
        status = entry.status,
        fault = entry.fault.as_deref(),
        "api request"
    );
    ctx.state().log_request(entry);
}

/// The whole body, or why it could not be read.
async fn read_body(request: Request<Incoming>) -> Result<Bytes, &'static str> {
    match Limited::new(request.into_body(), BODY_LIMIT)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err("Request body is larger than 1 MiB")
        }
        Err(_) => Err("Could not read request body"),
    }
}

fn body_problem(ctx: &Context, detail: &str) -> ApiResponse {
    let trace = ctx.state().trace();
    ApiResponse::problem(&Problem::bad_request(
        trace,
        detail,
        vec![InvalidParameter::new(
            "body",
            "body",
            None,
            "request format is invalid",
        )],
    ))
}

/// The response with a `Date` header on the emulated Konnect's clock (hyper
/// would write the machine's): clients that place their time windows on
/// Konnect's clock read it.
fn dated(ctx: &Context, response: ApiResponse) -> Response<Full<Bytes>> {
    let now = ctx.state().now();
    into_hyper(response.with_header(DATE.as_str(), time::format_http_date(now)))
}

fn into_hyper(response: ApiResponse) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(response.status);
    if let Some(content_type) = response.content_type {
        builder = builder.header(CONTENT_TYPE, content_type);
    }
    for (name, value) in response.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .unwrap_or_else(|_| {
            let mut fallback = Response::new(Full::new(Bytes::new()));
            *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}
