//! A Dev Portal's audit-log webhook and replay job:
//! `/v3/portals/{portalId}/audit-log-webhook` (GET, PATCH, DELETE),
//! `.../audit-log-webhook/status` and `.../audit-log-replay-job` (GET,
//! PUT; the rules are the organisation replay job's, `replay.rs`).
//!
//! The webhook points at one of the organisation's destinations; a
//! destination a portal webhook points at cannot be deleted (409, as for
//! the region's webhook). Unlike the region's v3 webhook, a portal's always
//! exists: unconfigured it is `{"enabled": false}`.

use super::body::{BodyCheck, parse_object};
use super::destinations::destination_not_found;
use super::portals::find_portal;
use super::{ApiRequest, ApiResponse, bad_request, replay};
use crate::context::Context;
use crate::problem::{InvalidParameter, Problem};
use crate::state::{Stream, status_json};
use crate::time;

/// The properties of the PATCH body (`UpdatePortalAuditLogWebhook`).
const PATCH_FIELDS: [&str; 2] = ["enabled", "audit_log_destination_id"];

/// GET .../audit-log-webhook: `{enabled, audit_log_destination_id?}`.
pub(super) fn get(ctx: &Context, region: &str, id: &str) -> ApiResponse {
    let mut state = ctx.state();
    match find_portal(&mut state, region, id) {
        Ok(uuid) => ApiResponse::json(200, &state.portal(uuid).expect("found").webhook.to_json()),
        Err(response) => response,
    }
}

/// GET .../audit-log-webhook/status, from the real delivery attempts of
/// the portal's webhook.
pub(super) fn status(ctx: &Context, region: &str, id: &str) -> ApiResponse {
    let mut state = ctx.state();
    match find_portal(&mut state, region, id) {
        Ok(uuid) => {
            let webhook = &state.portal(uuid).expect("found").webhook;
            ApiResponse::json(
                200,
                &status_json(webhook.enabled, webhook.last_attempt.as_ref()),
            )
        }
        Err(response) => response,
    }
}

/// PATCH .../audit-log-webhook `{enabled?, audit_log_destination_id?}`.
///
/// A field left out keeps its value. Properties the body schema does not
/// name are refused (400 `unknown_property`). The destination must exist
/// (404 otherwise, as for the region's webhook); enabling needs one (400
/// `cannot be blank`).
pub(super) fn patch(ctx: &Context, req: &ApiRequest, id: &str) -> ApiResponse {
    let mut state = ctx.state();
    let uuid = match find_portal(&mut state, req.region, id) {
        Ok(uuid) => uuid,
        Err(response) => return response,
    };
    let object = match parse_object(&mut state, &req.body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    let mut check = BodyCheck::new(&object);
    for field in object
        .keys()
        .filter(|k| !PATCH_FIELDS.contains(&k.as_str()))
    {
        check.fail(
            InvalidParameter::new(
                field.clone(),
                "body",
                Some("unknown_property"),
                "is not a property of this body (enabled, audit_log_destination_id)",
            ),
            "Invalid request body",
        );
    }
    let destination_id = check.destination_id();
    let enabled = check.boolean("enabled");
    if let Err(response) = check.finish(&mut state) {
        return response;
    }
    if let Some(destination) = destination_id
        && state.destination(destination).is_none()
    {
        return destination_not_found(&mut state, &destination.to_string());
    }
    let current = &state.portal(uuid).expect("found").webhook;
    let will_enable = enabled.unwrap_or(current.enabled);
    if will_enable && destination_id.or(current.destination_id).is_none() {
        return bad_request(
            &mut state,
            "Required field missing",
            vec![InvalidParameter::new(
                "audit_log_destination_id",
                "body",
                Some("required"),
                "cannot be blank",
            )],
        );
    }
    let webhook = &mut state.portal_mut(uuid).expect("found").webhook;
    if let Some(destination) = destination_id {
        webhook.destination_id = Some(destination);
    }
    if let Some(enabled) = enabled {
        webhook.enabled = enabled;
    }
    webhook.updated_at = Some(time::now());
    ApiResponse::json(200, &webhook.to_json())
}

/// DELETE .../audit-log-webhook: clears the destination and disables, 204.
/// 409 while the portal's replay job is accepted, pending or running (it
/// delivers through this webhook).
pub(super) fn delete(ctx: &Context, region: &str, id: &str) -> ApiResponse {
    let mut state = ctx.state();
    let uuid = match find_portal(&mut state, region, id) {
        Ok(uuid) => uuid,
        Err(response) => return response,
    };
    let portal = state.portal_mut(uuid).expect("found");
    if portal.replay_job.status.is_active() {
        let trace = state.trace();
        return ApiResponse::problem(
            &Problem::new(
                409,
                trace,
                "A replay job is currently running through this webhook",
            )
            .titled("Resource Conflict"),
        );
    }
    let webhook = &mut portal.webhook;
    webhook.enabled = false;
    webhook.destination_id = None;
    webhook.updated_at = Some(time::now());
    ApiResponse::no_content()
}

/// GET .../audit-log-replay-job.
pub(super) fn get_replay(ctx: &Context, region: &'static str, id: &str) -> ApiResponse {
    let uuid = match find_portal(&mut ctx.state(), region, id) {
        Ok(uuid) => uuid,
        Err(response) => return response,
    };
    replay::get(ctx, Stream::Portal(region, uuid))
}

/// PUT .../audit-log-replay-job: as the region's job, for the portal's
/// events, through the portal's webhook.
pub(super) fn put_replay(
    ctx: &Context,
    region: &'static str,
    id: &str,
    body: &[u8],
) -> ApiResponse {
    let uuid = match find_portal(&mut ctx.state(), region, id) {
        Ok(uuid) => uuid,
        Err(response) => return response,
    };
    replay::put(ctx, Stream::Portal(region, uuid), body)
}
