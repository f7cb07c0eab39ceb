//! The region's audit-log webhook: `/v2/audit-log-webhook` (inline
//! settings), `/v3/audit-log-webhook` (an attached destination) and
//! `/v2|v3/audit-log-webhook/status`. The rules of how v2 and v3 changes
//! combine are in the README ("State rules").

use serde_json::{Value, json};

use super::body::{BodyCheck, parse_object};
use super::destinations::destination_not_found;
use super::{ApiRequest, ApiResponse, bad_request, problem};
use crate::context::Context;
use crate::problem::InvalidParameter;
use crate::state::{Secret, State};
use crate::time;

/// GET /v2/audit-log-webhook: the attached destination's endpoint and
/// format, else the inline ones, else the unconfigured sentinel.
pub(super) fn get_v2(ctx: &Context, region: &str) -> ApiResponse {
    ApiResponse::json(200, &ctx.state().webhook_v2_json(region))
}

/// GET /v2|v3/audit-log-webhook/status.
pub(super) fn status(ctx: &Context, region: &str) -> ApiResponse {
    ApiResponse::json(200, &ctx.state().webhook_status_json(region))
}

/// PATCH /v2/audit-log-webhook.
///
/// `enabled` alone switches delivery on or off and keeps an attached
/// destination. Any of `endpoint`, `authorization`, `log_format`,
/// `skip_ssl_verification` configures the webhook the v2 way (inline,
/// without a destination) and detaches the destination. Enabling needs an
/// endpoint (and, inline, an authorization).
pub(super) fn patch_v2(ctx: &Context, req: &ApiRequest) -> ApiResponse {
    let mut state = ctx.state();
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
pub(super) fn get_v3(ctx: &Context, region: &str) -> ApiResponse {
    let mut state = ctx.state();
    match webhook_v3_json(&state, region) {
        Some(body) => ApiResponse::json(200, &body),
        None => webhook_not_found(&mut state),
    }
}

/// PATCH /v3/audit-log-webhook `{audit_log_destination_id?, enabled?}`.
pub(super) fn patch_v3(ctx: &Context, req: &ApiRequest) -> ApiResponse {
    let mut state = ctx.state();
    let object = match parse_object(&mut state, &req.body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    let mut check = BodyCheck::new(&object);
    let destination_id = check.destination_id();
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
pub(super) fn delete_v3(ctx: &Context, region: &str) -> ApiResponse {
    let mut state = ctx.state();
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
