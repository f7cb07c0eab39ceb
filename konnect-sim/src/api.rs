//! The Konnect audit-log API (v2 and v3): routing, PAT check, request
//! validation and the response bodies of every endpoint.
//!
//! Handlers work on an [`ApiRequest`] whose body has already been read, and
//! return an [`ApiResponse`]; the HTTP plumbing, fault injection and request
//! log are in `server.rs`. State changes go through `state.rs`; replay jobs
//! are run by `sim.rs`.

use bytes::Bytes;
use hyper::Method;
use serde_json::{Map, Value, json};
use url::Url;
use uuid::Uuid;

use crate::codec::{base64url, base64url_decode};
use crate::problem::{InvalidParameter, Problem};
use crate::records::{Event, LogFormat};
use crate::sim::Sim;
use crate::state::{DeleteRefusal, ReplayStatus, Secret, State};
use crate::time::{self, DAY, Millis};

pub(crate) const JSON: &str = "application/json";
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// Largest `page[size]` of the destination list (assumed; the spec gives no
/// maximum for it).
pub(crate) const MAX_DESTINATION_PAGE: usize = 100;
/// `page[size]` default and maximum of `GET /v3/audit-logs` (from the spec).
const AUDIT_LOG_PAGE_DEFAULT: usize = 20;
const AUDIT_LOG_PAGE_MAX: i64 = 1000;
/// How far in the future a replay range may end (clock skew allowance).
const REPLAY_FUTURE_SLACK: Millis = 60_000;

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

fn bad_request(state: &mut State, detail: &str, params: Vec<InvalidParameter>) -> ApiResponse {
    let trace = state.trace();
    ApiResponse::problem(&Problem::bad_request(trace, detail, params))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V2,
    V3,
}

impl Version {
    fn prefix(self) -> &'static str {
        match self {
            Version::V2 => "/v2",
            Version::V3 => "/v3",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Route {
    Webhook(Version),
    WebhookStatus(Version),
    Jwks,
    Destinations(Version),
    Destination(Version, String),
    ReplayJob(Version),
    AuditLogs,
}

impl Route {
    fn parse(path: &str) -> Option<Route> {
        let (version, rest) = if let Some(rest) = path.strip_prefix("/v2/") {
            (Version::V2, rest)
        } else if let Some(rest) = path.strip_prefix("/v3/") {
            (Version::V3, rest)
        } else {
            return None;
        };
        let route = match (version, rest) {
            (_, "audit-log-webhook") => Route::Webhook(version),
            (_, "audit-log-webhook/status") => Route::WebhookStatus(version),
            (Version::V2, "audit-log-webhook/jwks.json") => Route::Jwks,
            (_, "audit-log-destinations") => Route::Destinations(version),
            (_, "audit-log-replay-job") => Route::ReplayJob(version),
            (Version::V3, "audit-logs") => Route::AuditLogs,
            (_, other) => {
                let id = other.strip_prefix("audit-log-destinations/")?;
                if id.is_empty() || id.contains('/') {
                    return None;
                }
                let id = url::form_urlencoded::parse(format!("x={id}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                Route::Destination(version, id)
            }
        };
        Some(route)
    }

    /// The methods the spec lists for the route.
    fn methods(&self) -> &'static [Method] {
        match self {
            Route::Webhook(Version::V2) => &[Method::GET, Method::PATCH],
            Route::Webhook(Version::V3) => &[Method::GET, Method::PATCH, Method::DELETE],
            Route::WebhookStatus(_) | Route::Jwks | Route::AuditLogs => &[Method::GET],
            Route::Destinations(_) => &[Method::GET, Method::POST],
            Route::Destination(..) => &[Method::GET, Method::PATCH, Method::DELETE],
            Route::ReplayJob(_) => &[Method::GET, Method::PUT],
        }
    }
}

/// Answers one Konnect API request.
pub(crate) fn handle(sim: &Sim, req: &ApiRequest) -> ApiResponse {
    if req.path == crate::login::REFRESH_PATH {
        return crate::login::refresh(sim, req);
    }
    let Some(route) = Route::parse(&req.path) else {
        return problem(&mut sim.state(), 404, "Not found");
    };
    // The JWKS endpoint publishes public keys; its spec lists no 401/403.
    if route != Route::Jwks
        && let Err(response) = authenticate(sim, req)
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
        return problem(&mut sim.state(), 405, "Method not allowed").with_header("allow", allow);
    }
    let region = req.region;
    match (&route, &req.method) {
        (Route::Webhook(Version::V2), &Method::GET) => {
            ApiResponse::json(200, &sim.state().webhook_v2_json(region))
        }
        (Route::Webhook(Version::V2), &Method::PATCH) => patch_webhook_v2(sim, req),
        (Route::Webhook(Version::V3), &Method::GET) => get_webhook_v3(sim, region),
        (Route::Webhook(Version::V3), &Method::PATCH) => patch_webhook_v3(sim, req),
        (Route::Webhook(Version::V3), &Method::DELETE) => delete_webhook_v3(sim, region),
        (Route::WebhookStatus(_), _) => {
            ApiResponse::json(200, &sim.state().webhook_status_json(region))
        }
        (Route::Jwks, _) => jwks(sim),
        (Route::Destinations(version), &Method::GET) => {
            list_destinations(sim, *version, &req.query)
        }
        (Route::Destinations(_), _) => create_destination(sim, &req.body),
        (Route::Destination(_, id), &Method::GET) => get_destination(sim, id),
        (Route::Destination(_, id), &Method::PATCH) => patch_destination(sim, id, &req.body),
        (Route::Destination(_, id), _) => delete_destination(sim, id),
        (Route::ReplayJob(_), &Method::GET) => {
            let state = sim.state();
            ApiResponse::json(200, &state.replay_jobs[region].to_json())
        }
        (Route::ReplayJob(_), _) => put_replay_job(sim, region, &req.body),
        (Route::AuditLogs, _) => list_audit_logs(sim, region, &req.query),
        _ => unreachable!("every allowed method of every route is handled"),
    }
}

/// `Authorization: Bearer <token>` with a configured token; read-only tokens
/// may only read.
fn authenticate(sim: &Sim, req: &ApiRequest) -> Result<(), ApiResponse> {
    let token = req.authorization.as_deref().and_then(|header| {
        let (scheme, token) = header.trim().split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    });
    let config = sim.config();
    let known = |list: &[String]| token.is_some_and(|t| list.iter().any(|p| p == t));
    if known(&config.pats) || token.is_some_and(|t| sim.state().logins.accepts(t)) {
        return Ok(());
    }
    if known(&config.readonly_pats) {
        if req.method == Method::GET {
            return Ok(());
        }
        return Err(problem(
            &mut sim.state(),
            403,
            "You do not have permission to perform this action",
        ));
    }
    Err(problem(&mut sim.state(), 401, "Invalid credentials")
        .with_header("www-authenticate", "Bearer".to_string()))
}

/// Parses a request body that must be a JSON object.
fn parse_object(state: &mut State, body: &[u8]) -> Result<Map<String, Value>, ApiResponse> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(bad_request(
            state,
            "Could not parse request body",
            vec![InvalidParameter::new(
                "body",
                "body",
                None,
                "request format is invalid",
            )],
        )),
    }
}

/// Field-by-field checks of a JSON body, collecting every problem.
struct BodyCheck<'a> {
    body: &'a Map<String, Value>,
    /// Each problem with the `detail` it would give on its own.
    errors: Vec<(InvalidParameter, &'static str)>,
}

impl<'a> BodyCheck<'a> {
    fn new(body: &'a Map<String, Value>) -> BodyCheck<'a> {
        BodyCheck {
            body,
            errors: Vec::new(),
        }
    }

    fn fail(&mut self, param: InvalidParameter, detail: &'static str) {
        self.errors.push((param, detail));
    }

    /// The field's value; `null` counts as absent.
    fn value(&mut self, field: &str, required: bool) -> Option<&'a Value> {
        match self.body.get(field) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(
                        InvalidParameter::new(
                            field,
                            "body",
                            Some("required"),
                            "is a required field",
                        ),
                        "Required field missing",
                    );
                }
                None
            }
            Some(value) => Some(value),
        }
    }

    fn string(&mut self, field: &str, required: bool) -> Option<String> {
        match self.value(field, required)? {
            Value::String(text) => Some(text.clone()),
            _ => {
                self.fail(
                    InvalidParameter::new(field, "body", Some("is_string"), "must be a string"),
                    "Invalid request body",
                );
                None
            }
        }
    }

    /// A string that must not be empty or only blanks.
    fn non_blank(&mut self, field: &str, required: bool) -> Option<String> {
        let text = self.string(field, required)?;
        if text.trim().is_empty() {
            self.fail(
                InvalidParameter::new(field, "body", None, "cannot be blank"),
                "Required field missing",
            );
            return None;
        }
        Some(text)
    }

    /// An absolute http(s) URL.
    fn endpoint(&mut self, required: bool) -> Option<String> {
        let endpoint = self.non_blank("endpoint", required)?;
        let valid = endpoint.trim() == endpoint
            && Url::parse(&endpoint).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some_and(|h| !h.is_empty())
            });
        if !valid {
            self.fail(
                InvalidParameter::new("endpoint", "body", None, "must be a valid URL"),
                "Invalid endpoint",
            );
            return None;
        }
        Some(endpoint)
    }

    /// A value that can be sent as the `Authorization` header of deliveries.
    fn authorization(&mut self, required: bool) -> Option<String> {
        let value = self.non_blank("authorization", required)?;
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            self.fail(
                InvalidParameter::new(
                    "authorization",
                    "body",
                    None,
                    "must be a valid HTTP header value",
                ),
                "Invalid request body",
            );
            return None;
        }
        Some(value)
    }

    fn boolean(&mut self, field: &str) -> Option<bool> {
        match self.value(field, false)? {
            Value::Bool(flag) => Some(*flag),
            _ => {
                self.fail(
                    InvalidParameter::new(field, "body", Some("is_boolean"), "must be a boolean"),
                    "Invalid request body",
                );
                None
            }
        }
    }

    fn log_format(&mut self, required: bool) -> Option<LogFormat> {
        let value = self.value("log_format", required)?;
        match value.as_str().and_then(LogFormat::parse) {
            Some(format) => Some(format),
            None => {
                self.fail(
                    InvalidParameter::choice("log_format", "body", &LogFormat::NAMES),
                    "Invalid request body",
                );
                None
            }
        }
    }

    /// `Ok` if no check failed, otherwise the 400 listing every failure.
    fn finish(self, state: &mut State) -> Result<(), ApiResponse> {
        let Some((_, detail)) = self.errors.first() else {
            return Ok(());
        };
        let detail = *detail;
        let params = self.errors.into_iter().map(|(param, _)| param).collect();
        Err(bad_request(state, detail, params))
    }
}

/// A destination id in a path: a hyphenated UUID (anything else is 404, as
/// the spec lists no 400 for these routes).
fn parse_uuid(text: &str) -> Option<Uuid> {
    if text.len() != 36 {
        return None;
    }
    Uuid::parse_str(text).ok()
}

fn destination_not_found(state: &mut State, id: &str) -> ApiResponse {
    problem(
        state,
        404,
        &format!("Audit log destination [{id}] not found"),
    )
}

/// The destination list's cursor for a position (a destination's `seq`).
fn destination_cursor(seq: u64) -> String {
    base64url(format!("dest:{seq}").as_bytes())
}

fn event_cursor(seq: u64) -> String {
    base64url(format!("event:{seq}").as_bytes())
}

fn decode_cursor(cursor: &str, prefix: &str) -> Option<u64> {
    let bytes = base64url_decode(cursor)?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix(prefix)?
        .parse()
        .ok()
}

/// A page link: `path?k=v&...` with the keys percent-encoded as Konnect does
/// (`page%5Bafter%5D=...`).
fn link(path: &str, params: &[(&str, String)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in params {
        query.append_pair(key, value);
    }
    format!("{path}?{}", query.finish())
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// GET /v2|v3/audit-log-destinations: cursor paging over the destinations in
/// creation order, `filter[name][eq]` (or `filter[name]`) and
/// `filter[name][contains]`.
///
/// The spec lists no 400 for this call, so a `page[size]` that is not a
/// positive integer means the default, one above the maximum means the
/// maximum, and an unreadable cursor gives an empty last page.
fn list_destinations(sim: &Sim, version: Version, query: &str) -> ApiResponse {
    let pairs = query_pairs(query);
    let default_size = sim
        .config()
        .page_size_default
        .clamp(1, MAX_DESTINATION_PAGE);
    let size = query_value(&pairs, "page[size]")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .map_or(default_size, |n| n.min(MAX_DESTINATION_PAGE));
    let eq =
        query_value(&pairs, "filter[name][eq]").or_else(|| query_value(&pairs, "filter[name]"));
    let contains = query_value(&pairs, "filter[name][contains]");
    let after = query_value(&pairs, "page[after]").filter(|c| !c.is_empty());
    let before = query_value(&pairs, "page[before]").filter(|c| !c.is_empty());

    let state = sim.state();
    let matching: Vec<&crate::state::Destination> = state
        .destinations
        .iter()
        .filter(|d| eq.is_none_or(|name| d.name == name))
        .filter(|d| contains.is_none_or(|part| d.name.contains(part)))
        .collect();
    let page: Vec<&crate::state::Destination> = match (after, before) {
        (Some(cursor), _) => match decode_cursor(cursor, "dest:") {
            Some(seq) => matching
                .iter()
                .filter(|d| d.seq > seq)
                .take(size)
                .copied()
                .collect(),
            None => Vec::new(),
        },
        (None, Some(cursor)) => match decode_cursor(cursor, "dest:") {
            Some(seq) => {
                let earlier: Vec<_> = matching.iter().filter(|d| d.seq < seq).copied().collect();
                earlier[earlier.len().saturating_sub(size)..].to_vec()
            }
            None => Vec::new(),
        },
        (None, None) => matching.iter().take(size).copied().collect(),
    };

    let path = format!("{}/audit-log-destinations", version.prefix());
    let page_link = |direction: &str, seq: u64| {
        let mut params = vec![
            ("page[size]", size.to_string()),
            (direction, destination_cursor(seq)),
        ];
        if let Some(name) = eq {
            params.push(("filter[name][eq]", name.to_string()));
        }
        if let Some(part) = contains {
            params.push(("filter[name][contains]", part.to_string()));
        }
        link(&path, &params)
    };
    let next = page
        .last()
        .filter(|last| matching.iter().any(|d| d.seq > last.seq))
        .map(|last| page_link("page[after]", last.seq));
    let previous = page
        .first()
        .filter(|first| matching.iter().any(|d| d.seq < first.seq))
        .map(|first| page_link("page[before]", first.seq));
    ApiResponse::json(
        200,
        &json!({
            "data": page.iter().map(|d| d.to_json()).collect::<Vec<_>>(),
            "meta": {"next": next, "previous": previous, "size": size},
        }),
    )
}

/// POST /v2|v3/audit-log-destinations. Names need not be unique (what
/// Konnect does with duplicates is not documented).
fn create_destination(sim: &Sim, body: &[u8]) -> ApiResponse {
    let mut state = sim.state();
    let object = match parse_object(&mut state, body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    let mut check = BodyCheck::new(&object);
    let name = check.non_blank("name", true);
    let endpoint = check.endpoint(true);
    let authorization = check.authorization(true);
    let log_format = check.log_format(true);
    let skip = check.boolean("skip_ssl_verification");
    if let Err(response) = check.finish(&mut state) {
        return response;
    }
    let (Some(name), Some(endpoint), Some(authorization), Some(log_format)) =
        (name, endpoint, authorization, log_format)
    else {
        unreachable!("BodyCheck::finish fails when a required field is missing");
    };
    let destination = state.create_destination(
        name,
        endpoint,
        Secret::new(authorization),
        log_format,
        skip.unwrap_or(false),
    );
    ApiResponse::json(201, &destination.to_json())
}

fn get_destination(sim: &Sim, id: &str) -> ApiResponse {
    let mut state = sim.state();
    match parse_uuid(id).and_then(|uuid| state.destination(uuid)) {
        Some(destination) => ApiResponse::json(200, &destination.to_json()),
        None => destination_not_found(&mut state, id),
    }
}

/// PATCH /v2|v3/audit-log-destinations/{id}: any of the create fields.
fn patch_destination(sim: &Sim, id: &str, body: &[u8]) -> ApiResponse {
    let mut state = sim.state();
    let Some(uuid) = parse_uuid(id).filter(|uuid| state.destination(*uuid).is_some()) else {
        return destination_not_found(&mut state, id);
    };
    let object = match parse_object(&mut state, body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    let mut check = BodyCheck::new(&object);
    let name = check.non_blank("name", false);
    let endpoint = check.endpoint(false);
    let authorization = check.authorization(false);
    let log_format = check.log_format(false);
    let skip = check.boolean("skip_ssl_verification");
    if let Err(response) = check.finish(&mut state) {
        return response;
    }
    let destination = state.destination_mut(uuid).expect("checked above");
    if let Some(name) = name {
        destination.name = name;
    }
    if let Some(endpoint) = endpoint {
        destination.endpoint = endpoint;
    }
    if let Some(authorization) = authorization {
        destination.authorization = Secret::new(authorization);
    }
    if let Some(log_format) = log_format {
        destination.log_format = log_format;
    }
    if let Some(skip) = skip {
        destination.skip_ssl_verification = skip;
    }
    destination.updated_at = time::now();
    ApiResponse::json(200, &destination.to_json())
}

/// DELETE /v2|v3/audit-log-destinations/{id}: 409 while any region's webhook
/// refers to it.
fn delete_destination(sim: &Sim, id: &str) -> ApiResponse {
    let mut state = sim.state();
    let Some(uuid) = parse_uuid(id) else {
        return destination_not_found(&mut state, id);
    };
    match state.delete_destination(uuid) {
        Ok(()) => ApiResponse::no_content(),
        Err(DeleteRefusal::NotFound) => destination_not_found(&mut state, id),
        Err(DeleteRefusal::InUse) => problem(&mut state, 409, "Destination is in use"),
    }
}

/// PATCH /v2/audit-log-webhook.
///
/// `enabled` alone switches delivery on or off and keeps an attached
/// destination. Any of `endpoint`, `authorization`, `log_format`,
/// `skip_ssl_verification` configures the webhook the v2 way (inline,
/// without a destination) and detaches the destination. Enabling needs an
/// endpoint (and, inline, an authorization).
fn patch_webhook_v2(sim: &Sim, req: &ApiRequest) -> ApiResponse {
    let mut state = sim.state();
    let object = match parse_object(&mut state, &req.body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    let mut check = BodyCheck::new(&object);
    let endpoint = check.endpoint(false);
    let authorization = check.authorization(false);
    let log_format = check.log_format(false);
    let skip = check.boolean("skip_ssl_verification");
    let enabled = check.boolean("enabled");
    if let Err(response) = check.finish(&mut state) {
        return response;
    }
    let mut webhook = state.webhook(req.region).clone();
    let inline_change =
        endpoint.is_some() || authorization.is_some() || log_format.is_some() || skip.is_some();
    if inline_change {
        webhook.destination_id = None;
        if let Some(endpoint) = endpoint {
            webhook.inline.endpoint = Some(endpoint);
        }
        if let Some(authorization) = authorization {
            webhook.inline.authorization = Some(Secret::new(authorization));
        }
        if let Some(log_format) = log_format {
            webhook.inline.log_format = log_format;
        }
        if let Some(skip) = skip {
            webhook.inline.skip_ssl_verification = skip;
        }
    }
    if let Some(enabled) = enabled {
        webhook.enabled = enabled;
    }
    if webhook.enabled && webhook.destination_id.is_none() {
        let mut missing = Vec::new();
        if webhook.inline.endpoint.is_none() {
            missing.push(InvalidParameter::new(
                "endpoint",
                "body",
                None,
                "cannot be blank",
            ));
        }
        if webhook.inline.authorization.is_none() {
            missing.push(InvalidParameter::new(
                "authorization",
                "body",
                None,
                "cannot be blank",
            ));
        }
        if !missing.is_empty() {
            return bad_request(&mut state, "Required field missing", missing);
        }
    }
    webhook.updated_at = Some(time::now());
    *state.webhook_mut(req.region) = webhook;
    ApiResponse::json(200, &state.webhook_v2_json(req.region))
}

fn webhook_v3_json(state: &State, region: &str) -> Option<Value> {
    let webhook = state.webhook(region);
    let id = webhook.destination_id?;
    Some(json!({"audit_log_destination_id": id.to_string(), "enabled": webhook.enabled}))
}

fn webhook_not_found(state: &mut State) -> ApiResponse {
    problem(
        state,
        404,
        "No audit log webhook with a destination is configured in this region",
    )
}

/// GET /v3/audit-log-webhook: 404 until a destination is attached (the body
/// requires `audit_log_destination_id`).
fn get_webhook_v3(sim: &Sim, region: &str) -> ApiResponse {
    let mut state = sim.state();
    match webhook_v3_json(&state, region) {
        Some(body) => ApiResponse::json(200, &body),
        None => webhook_not_found(&mut state),
    }
}

/// PATCH /v3/audit-log-webhook `{audit_log_destination_id?, enabled?}`.
fn patch_webhook_v3(sim: &Sim, req: &ApiRequest) -> ApiResponse {
    let mut state = sim.state();
    let object = match parse_object(&mut state, &req.body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    let mut check = BodyCheck::new(&object);
    let destination_id = match object.get("audit_log_destination_id") {
        None => None,
        Some(value) => match value.as_str().and_then(parse_uuid) {
            Some(uuid) => Some(uuid),
            None => {
                check.fail(
                    InvalidParameter::new(
                        "audit_log_destination_id",
                        "body",
                        Some("is_uuid"),
                        "destination id format is invalid",
                    ),
                    "Could not parse destination id",
                );
                None
            }
        },
    };
    let enabled = check.boolean("enabled");
    if let Err(response) = check.finish(&mut state) {
        return response;
    }
    if let Some(uuid) = destination_id
        && state.destination(uuid).is_none()
    {
        return destination_not_found(&mut state, &uuid.to_string());
    }
    let webhook = state.webhook_mut(req.region);
    match destination_id {
        Some(uuid) => {
            webhook.destination_id = Some(uuid);
            webhook.inline = Default::default();
        }
        None if webhook.destination_id.is_none() => return webhook_not_found(&mut state),
        None => {}
    }
    let webhook = state.webhook_mut(req.region);
    if let Some(enabled) = enabled {
        webhook.enabled = enabled;
    }
    webhook.updated_at = Some(time::now());
    ApiResponse::json(
        200,
        &webhook_v3_json(&state, req.region).expect("a destination is attached"),
    )
}

/// DELETE /v3/audit-log-webhook: clears the destination (and any v2 inline
/// settings) and disables; GET /v2 shows the unconfigured sentinel again.
/// 404 when nothing is configured.
fn delete_webhook_v3(sim: &Sim, region: &str) -> ApiResponse {
    let mut state = sim.state();
    if !state.webhook(region).is_configured() {
        return problem(
            &mut state,
            404,
            "No audit log webhook is configured in this region",
        );
    }
    let webhook = state.webhook_mut(region);
    webhook.enabled = false;
    webhook.destination_id = None;
    webhook.inline = Default::default();
    webhook.updated_at = Some(time::now());
    ApiResponse::no_content()
}

/// GET /v2/audit-log-webhook/jwks.json: one Ed25519 public key, fixed for the
/// life of the Sim. The `sig` of generated records is random, not a signature
/// by this key.
fn jwks(sim: &Sim) -> ApiResponse {
    let state = sim.state();
    let (kid, x) = &state.jwk;
    ApiResponse::json(
        200,
        &json!({"keys": [{"kty": "OKP", "alg": "EdDSA", "kid": kid, "crv": "Ed25519", "x": x}]}),
    )
}

/// PUT /v2|v3/audit-log-replay-job `{start_at, end_at}`: both RFC 3339,
/// start not after end, within the last 7 days. 409 while a job runs.
fn put_replay_job(sim: &Sim, region: &'static str, body: &[u8]) -> ApiResponse {
    let mut state = sim.state();
    let object = match parse_object(&mut state, body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    let mut check = BodyCheck::new(&object);
    let instant = |check: &mut BodyCheck, field: &str| {
        let text = check.string(field, true)?;
        let parsed = time::parse_rfc3339(&text);
        if parsed.is_none() {
            check.fail(
                InvalidParameter::new(
                    field,
                    "body",
                    Some("is_date_time"),
                    "must be an RFC 3339 date-time",
                ),
                "Invalid request body",
            );
        }
        parsed
    };
    let start = instant(&mut check, "start_at");
    let end = instant(&mut check, "end_at");
    if let (Some(start), Some(end)) = (start, end) {
        let now = time::now();
        if start > end {
            check.fail(
                InvalidParameter::new("end_at", "body", None, "must not be before start_at"),
                "Invalid time range",
            );
        }
        if start < now - 7 * DAY {
            check.fail(
                InvalidParameter::new("start_at", "body", None, "must be within the last 7 days"),
                "Invalid time range",
            );
        }
        if end > now + REPLAY_FUTURE_SLACK {
            check.fail(
                InvalidParameter::new("end_at", "body", None, "must not be in the future"),
                "Invalid time range",
            );
        }
    }
    if let Err(response) = check.finish(&mut state) {
        return response;
    }
    let (Some(start), Some(end)) = (start, end) else {
        unreachable!("BodyCheck::finish fails when a time is missing or invalid");
    };
    if state.replay_jobs[region].status.is_active() {
        let trace = state.trace();
        return ApiResponse::problem(
            &Problem::new(409, trace, "A replay job is currently running")
                .titled("Resource Conflict"),
        );
    }
    let epoch = state.epoch;
    let job = state
        .replay_jobs
        .get_mut(region)
        .expect("every region has a replay job");
    job.start_at = Some(start);
    job.end_at = Some(end);
    job.status = ReplayStatus::Accepted;
    job.updated_at = Some(time::now());
    let body = job.to_json();
    drop(state);
    sim.spawn_replay(region, start, end, epoch);
    ApiResponse::json(202, &body)
}

/// GET /v3/audit-logs: the region's stored events, oldest first.
fn list_audit_logs(sim: &Sim, region: &str, query: &str) -> ApiResponse {
    let pairs = query_pairs(query);
    let mut state = sim.state();
    let mut errors = Vec::new();
    let size = match query_value(&pairs, "page[size]").filter(|v| !v.is_empty()) {
        None => Some(AUDIT_LOG_PAGE_DEFAULT),
        Some(text) => match text.trim().parse::<i64>() {
            Ok(n) if n < 1 => {
                errors.push(InvalidParameter::min("page[size]", "query", 1));
                None
            }
            Ok(n) if n > AUDIT_LOG_PAGE_MAX => {
                errors.push(InvalidParameter::max(
                    "page[size]",
                    "query",
                    AUDIT_LOG_PAGE_MAX,
                ));
                None
            }
            Ok(n) => Some(n as usize),
            Err(_) => {
                errors.push(InvalidParameter::new(
                    "page[size]",
                    "query",
                    Some("is_integer"),
                    "must be an integer",
                ));
                None
            }
        },
    };
    let mut time_bound = |key: &str| {
        let text = query_value(&pairs, key).filter(|v| !v.is_empty())?;
        let parsed = time::parse_rfc3339(text);
        if parsed.is_none() {
            errors.push(InvalidParameter::new(
                key,
                "query",
                Some("is_date_time"),
                "must be an RFC 3339 date-time",
            ));
        }
        parsed
    };
    let gte = time_bound("filter[ts][gte]");
    let lte = time_bound("filter[ts][lte]");
    const TYPES: [&str; 3] = ["authorization", "authentication", "gateway_access"];
    let kind = query_value(&pairs, "filter[type]").filter(|v| !v.is_empty());
    if kind.is_some_and(|k| !TYPES.contains(&k)) {
        errors.push(InvalidParameter::choice("filter[type]", "query", &TYPES));
    }
    let mut cursor = |key: &str| {
        let text = query_value(&pairs, key).filter(|v| !v.is_empty())?;
        let seq = decode_cursor(text, "event:");
        if seq.is_none() {
            errors.push(InvalidParameter::new(
                key,
                "query",
                Some("invalid"),
                "is not a valid cursor",
            ));
        }
        seq
    };
    let after = cursor("page[after]");
    let before = cursor("page[before]");
    if !errors.is_empty() {
        return bad_request(&mut state, "Invalid query parameters", errors);
    }
    let size = size.expect("no error means a size");
    let lte = lte.unwrap_or_else(time::now);
    let gte = gte.unwrap_or(lte - 7 * DAY);

    let matching: Vec<&Event> = state
        .events
        .iter()
        .filter(|e| e.region == region && e.ts >= gte && e.ts <= lte)
        .filter(|e| kind.is_none_or(|k| e.kind.pull_type() == k))
        .collect();
    let page: Vec<&Event> = match (after, before) {
        (Some(seq), _) => matching
            .iter()
            .filter(|e| e.seq > seq)
            .take(size)
            .copied()
            .collect(),
        (None, Some(seq)) => {
            let earlier: Vec<&Event> = matching.iter().filter(|e| e.seq < seq).copied().collect();
            earlier[earlier.len().saturating_sub(size)..].to_vec()
        }
        (None, None) => matching.iter().take(size).copied().collect(),
    };
    let page_link = |direction: &str, seq: u64| {
        let mut params = vec![
            ("page[size]", size.to_string()),
            (direction, event_cursor(seq)),
        ];
        for key in ["filter[ts][gte]", "filter[ts][lte]", "filter[type]"] {
            if let Some(value) = query_value(&pairs, key).filter(|v| !v.is_empty()) {
                params.push((key, value.to_string()));
            }
        }
        link("/v3/audit-logs", &params)
    };
    let next = page
        .last()
        .filter(|last| matching.iter().any(|e| e.seq > last.seq))
        .map(|last| page_link("page[after]", last.seq));
    let previous = page
        .first()
        .filter(|first| matching.iter().any(|e| e.seq < first.seq))
        .map(|first| page_link("page[before]", first.seq));
    ApiResponse::json(
        200,
        &json!({
            "data": page.iter().map(|e| e.pull_view()).collect::<Vec<_>>(),
            "meta": {"page": {"next": next, "previous": previous, "size": size}},
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_the_specs() {
        assert_eq!(
            Route::parse("/v2/audit-log-webhook"),
            Some(Route::Webhook(Version::V2))
        );
        assert_eq!(
            Route::parse("/v3/audit-log-webhook/status"),
            Some(Route::WebhookStatus(Version::V3))
        );
        assert_eq!(
            Route::parse("/v2/audit-log-webhook/jwks.json"),
            Some(Route::Jwks)
        );
        assert_eq!(Route::parse("/v3/audit-log-webhook/jwks.json"), None);
        assert_eq!(Route::parse("/v3/audit-logs"), Some(Route::AuditLogs));
        assert_eq!(Route::parse("/v2/audit-logs"), None);
        assert_eq!(
            Route::parse("/v2/audit-log-destinations/ab%2Dc"),
            Some(Route::Destination(Version::V2, "ab-c".into()))
        );
        assert_eq!(Route::parse("/v3/audit-log-destinations/a/b"), None);
        assert_eq!(Route::parse("/v3/audit-log-destinations/"), None);
        assert_eq!(Route::parse("/v1/audit-log-webhook"), None);
        assert_eq!(Route::parse("/v3/audit-log-webhook/"), None);
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor(&destination_cursor(42), "dest:"), Some(42));
        assert_eq!(decode_cursor(&destination_cursor(42), "event:"), None);
        assert_eq!(decode_cursor("not a cursor", "dest:"), None);
        assert_eq!(decode_cursor("", "dest:"), None);
    }

    #[test]
    fn links_percent_encode_the_brackets() {
        assert_eq!(
            link(
                "/v3/audit-log-destinations",
                &[
                    ("page[size]", "10".into()),
                    ("filter[name][eq]", "a b".into())
                ]
            ),
            "/v3/audit-log-destinations?page%5Bsize%5D=10&filter%5Bname%5D%5Beq%5D=a+b"
        );
    }

    #[test]
    fn uuids_must_be_hyphenated() {
        assert!(parse_uuid("07ec3858-066b-4629-bdc5-d4aa893b424d").is_some());
        assert!(parse_uuid("07EC3858-066B-4629-BDC5-D4AA893B424D").is_some());
        assert!(parse_uuid("07ec3858066b4629bdc5d4aa893b424d").is_none());
        assert!(parse_uuid("not-a-uuid").is_none());
    }
}
