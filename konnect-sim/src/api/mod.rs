//! The Konnect API (audit-log v2 and v3, Dev Portal audit logs, identity,
//! and the login token refresh): routing, the host and PAT checks, and one
//! module per endpoint family.
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
//! | `portals` | `/v3/portals`, `/v3/portals/{id}`, `/v3/portals/{id}/developers/{id}` |
//! | `portal_webhook` | `/v3/portals/{id}/audit-log-webhook`, `.../status`, `/v3/portals/{id}/audit-log-replay-job` |
//! | `identity` | `/v3/users`, `/v3/users/{id}`, `/v3/system-accounts`, `/v3/system-accounts/{id}` |
//! | `login` | `/kauth/api/v1/refresh` |
//!
//! `route` maps paths to endpoints, `body` checks request bodies, `paging`
//! makes and reads the list cursors and `pages` does page-number paging and
//! `filter[...]` for the portal and identity lists.

mod audit_logs;
mod body;
mod destinations;
mod identity;
mod jwks;
mod login;
mod pages;
mod paging;
mod portal_webhook;
mod portals;
mod replay;
mod route;
mod webhook;

use bytes::Bytes;
use hyper::Method;
use serde_json::Value;

use crate::config::HostKind;
use crate::context::Context;
use crate::problem::{InvalidParameter, Problem};
use crate::state::{State, Stream};
use route::{Hosts, Route, Version};

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
    /// Which Konnect host the `Host` header names (a loopback address plays
    /// every host).
    pub host: HostKind,
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
    // A loopback base URL plays every host; a Konnect host name says which
    // one the client meant, and portals are only on the regional hosts,
    // identity only on the global one.
    let wrong_host = match (route.hosts(), req.host) {
        (Hosts::Regional, HostKind::Global) => Some(
            "Dev Portals are served on the regional hosts (https://{region}.api.konghq.com), not the global one",
        ),
        (Hosts::Global, HostKind::Regional) => Some(
            "Users and system accounts are served on the global host (https://global.api.konghq.com), not a regional one",
        ),
        _ => None,
    };
    if let Some(detail) = wrong_host {
        return problem(&mut ctx.state(), 404, detail);
    }
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
        (Route::ReplayJob(_), &Method::GET) => replay::get(ctx, Stream::Org(region)),
        (Route::ReplayJob(_), _) => replay::put(ctx, Stream::Org(region), &req.body),
        (Route::AuditLogs, _) => audit_logs::list(ctx, region, &req.query),
        (Route::Portals, _) => portals::list(ctx, region, &req.query),
        (Route::Portal(id), _) => portals::get(ctx, region, id),
        (Route::PortalDeveloper(id, developer), _) => {
            portals::developer(ctx, region, id, developer)
        }
        (Route::PortalWebhook(id), &Method::GET) => portal_webhook::get(ctx, region, id),
        (Route::PortalWebhook(id), &Method::PATCH) => portal_webhook::patch(ctx, req, id),
        (Route::PortalWebhook(id), _) => portal_webhook::delete(ctx, region, id),
        (Route::PortalWebhookStatus(id), _) => portal_webhook::status(ctx, region, id),
        (Route::PortalReplayJob(id), &Method::GET) => portal_webhook::get_replay(ctx, region, id),
        (Route::PortalReplayJob(id), _) => portal_webhook::put_replay(ctx, region, id, &req.body),
        (Route::Users, _) => identity::list_users(ctx, &req.query),
        (Route::User(id), _) => identity::get_user(ctx, id),
        (Route::SystemAccounts, _) => identity::list_system_accounts(ctx, &req.query),
        (Route::SystemAccount(id), _) => identity::get_system_account(ctx, id),
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
