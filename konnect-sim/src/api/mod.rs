//! The Konnect API (audit-log v2 and v3, and the login token refresh):
//! routing, the PAT check, and one module per endpoint family.
//!
//! Handlers work on a [`Context`] (state, configuration, deliveries) and an
//! [`ApiRequest`] whose body has already been read, and return an
//! [`ApiResponse`]; the HTTP plumbing, fault injection and request log are
//! in `server.rs`. State changes go through `state.rs`; accepted replay jobs
//! are run by `delivery/replay.rs`.
//!
//! | Module | Paths |
//! | --- | --- |
//! | `webhook` | `/v2/audit-log-webhook`, `/v3/audit-log-webhook`, `/{v}/audit-log-webhook/status` |
//! | `jwks` | `/v2/audit-log-webhook/jwks.json` |
//! | `destinations` | `/{v}/audit-log-destinations`, `/{v}/audit-log-destinations/{id}` |
//! | `replay` | `/{v}/audit-log-replay-job` |
//! | `audit_logs` | `/v3/audit-logs` (the pull API) |
//! | `login` | `/kauth/api/v1/refresh` |
//!
//! `route` maps paths to endpoints, `body` checks request bodies and
//! `paging` makes and reads the list cursors.

mod audit_logs;
mod body;
mod destinations;
mod jwks;
mod login;
mod paging;
mod replay;
mod route;
mod webhook;

use bytes::Bytes;
use hyper::Method;
use serde_json::Value;

use crate::context::Context;
use crate::problem::{InvalidParameter, Problem};
use crate::state::State;
use route::{Route, Version};

pub(crate) use login::REFRESH_PATH;

const JSON: &str = "application/json";
const PROBLEM_JSON: &str = "application/problem+json";

/// A Konnect API request with its body read.
#[derive(Debug)]
pub(crate) struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub region: &'static str,
    /// The raw `Authorization` header.
    pub authorization: Option<String>,
    /// The raw `Cookie` header (the login refresh endpoint's input).
    pub cookie: Option<String>,
    pub body: Bytes,
}

/// What to answer.
#[derive(Debug)]
pub(crate) struct ApiResponse {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl ApiResponse {
    pub fn json(status: u16, body: &Value) -> ApiResponse {
        ApiResponse {
            status,
            content_type: Some(JSON),
            headers: Vec::new(),
            body: serde_json::to_vec(body).expect("a JSON value always serialises"),
        }
    }

    pub fn problem(problem: &Problem) -> ApiResponse {
        ApiResponse {
            status: problem.status,
            content_type: Some(PROBLEM_JSON),
            headers: Vec::new(),
            body: problem.to_json(),
        }
    }

    pub fn no_content() -> ApiResponse {
        ApiResponse {
            status: 204,
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> ApiResponse {
        self.headers.push((name, value));
        self
    }
}

/// A problem response with a fresh trace number.
pub(crate) fn problem(state: &mut State, status: u16, detail: &str) -> ApiResponse {
    let trace = state.trace();
    ApiResponse::problem(&Problem::new(status, trace, detail))
}

/// A 400 listing the invalid parameters, with a fresh trace number.
fn bad_request(state: &mut State, detail: &str, params: Vec<InvalidParameter>) -> ApiResponse {
    let trace = state.trace();
    ApiResponse::problem(&Problem::bad_request(trace, detail, params))
}

/// Answers one Konnect API request.
pub(crate) fn handle(ctx: &Context, req: &ApiRequest) -> ApiResponse {
    if req.path == login::REFRESH_PATH {
        return login::refresh(ctx, req);
    }
    let Some(route) = Route::parse(&req.path) else {
        return problem(&mut ctx.state(), 404, "Not found");
    };
    // The JWKS endpoint publishes public keys; its spec lists no 401/403.
    if route != Route::Jwks
        && let Err(response) = authenticate(ctx, req)
    {
        return response;
    }
    let methods = route.methods();
    if !methods.contains(&req.method) {
        let allow = methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        return problem(&mut ctx.state(), 405, "Method not allowed").with_header("allow", allow);
    }
    let region = req.region;
    match (&route, &req.method) {
        (Route::Webhook(Version::V2), &Method::GET) => webhook::get_v2(ctx, region),
        (Route::Webhook(Version::V2), &Method::PATCH) => webhook::patch_v2(ctx, req),
        (Route::Webhook(Version::V3), &Method::GET) => webhook::get_v3(ctx, region),
        (Route::Webhook(Version::V3), &Method::PATCH) => webhook::patch_v3(ctx, req),
        (Route::Webhook(Version::V3), &Method::DELETE) => webhook::delete_v3(ctx, region),
        (Route::WebhookStatus(_), _) => webhook::status(ctx, region),
        (Route::Jwks, _) => jwks::get(ctx),
        (Route::Destinations(version), &Method::GET) => {
            destinations::list(ctx, *version, &req.query)
        }
        (Route::Destinations(_), _) => destinations::create(ctx, &req.body),
        (Route::Destination(_, id), &Method::GET) => destinations::get(ctx, id),
        (Route::Destination(_, id), &Method::PATCH) => destinations::patch(ctx, id, &req.body),
        (Route::Destination(_, id), _) => destinations::delete(ctx, id),
        (Route::ReplayJob(_), &Method::GET) => replay::get(ctx, region),
        (Route::ReplayJob(_), _) => replay::put(ctx, region, &req.body),
        (Route::AuditLogs, _) => audit_logs::list(ctx, region, &req.query),
        _ => unreachable!("every allowed method of every route is handled"),
    }
}

/// `Authorization: Bearer <token>` with a configured token; read-only tokens
/// may only read.
fn authenticate(ctx: &Context, req: &ApiRequest) -> Result<(), ApiResponse> {
    let token = req.authorization.as_deref().and_then(|header| {
        let (scheme, token) = header.trim().split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    });
    let config = ctx.config();
    let known = |list: &[String]| token.is_some_and(|t| list.iter().any(|p| p == t));
    if known(&config.pats) || token.is_some_and(|t| ctx.state().logins.accepts(t)) {
        return Ok(());
    }
    if known(&config.readonly_pats) {
        if req.method == Method::GET {
            return Ok(());
        }
        return Err(problem(
            &mut ctx.state(),
            403,
            "You do not have permission to perform this action",
        ));
    }
    Err(problem(&mut ctx.state(), 401, "Invalid credentials")
        .with_header("www-authenticate", "Bearer".to_string()))
}
