//! `/v2|v3/audit-log-destinations` and `/{id}`: the org-wide destinations a
//! webhook can be attached to.

use serde_json::json;
use uuid::Uuid;

use super::body::{BodyCheck, parse_object};
use super::paging::{decode_cursor, encode_cursor, link, query_pairs, query_value};
use super::route::Version;
use super::{ApiResponse, problem};
use crate::context::Context;
use crate::state::{DeleteRefusal, Destination, Secret, State};
use crate::time;

/// Largest `page[size]` of the destination list (assumed; the spec gives no
/// maximum for it).
const MAX_DESTINATION_PAGE: usize = 100;
/// What the list's cursors start with (before base64url).
const CURSOR_PREFIX: &str = "dest:";

/// A destination id in a path: a hyphenated UUID (anything else is 404, as
/// the spec lists no 400 for these routes).
pub(super) fn parse_uuid(text: &str) -> Option<Uuid> {
    if text.len() != 36 {
        return None;
    }
    Uuid::parse_str(text).ok()
}

/// 404 for an id that names no destination.
pub(super) fn destination_not_found(state: &mut State, id: &str) -> ApiResponse {
    problem(
        state,
        404,
        &format!("Audit log destination [{id}] not found"),
    )
}

/// GET /v2|v3/audit-log-destinations: cursor paging over the destinations in
/// creation order, `filter[name][eq]` (or `filter[name]`) and
/// `filter[name][contains]`.
///
/// The spec lists no 400 for this call, so a `page[size]` that is not a
/// positive integer means the default, one above the maximum means the
/// maximum, and an unreadable cursor gives an empty last page.
pub(super) fn list(ctx: &Context, version: Version, query: &str) -> ApiResponse {
    let pairs = query_pairs(query);
    let default_size = ctx
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

    let state = ctx.state();
    let matching: Vec<&Destination> = state
        .destinations
        .iter()
        .filter(|d| eq.is_none_or(|name| d.name == name))
        .filter(|d| contains.is_none_or(|part| d.name.contains(part)))
        .collect();
    let page: Vec<&Destination> = match (after, before) {
        (Some(cursor), _) => match decode_cursor(cursor, CURSOR_PREFIX) {
            Some(seq) => matching
                .iter()
                .filter(|d| d.seq > seq)
                .take(size)
                .copied()
                .collect(),
            None => Vec::new(),
        },
        (None, Some(cursor)) => match decode_cursor(cursor, CURSOR_PREFIX) {
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
            (direction, encode_cursor(CURSOR_PREFIX, seq)),
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
pub(super) fn create(ctx: &Context, body: &[u8]) -> ApiResponse {
    let mut state = ctx.state();
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

/// GET /v2|v3/audit-log-destinations/{id}.
pub(super) fn get(ctx: &Context, id: &str) -> ApiResponse {
    let mut state = ctx.state();
    match parse_uuid(id).and_then(|uuid| state.destination(uuid)) {
        Some(destination) => ApiResponse::json(200, &destination.to_json()),
        None => destination_not_found(&mut state, id),
    }
}

/// PATCH /v2|v3/audit-log-destinations/{id}: any of the create fields.
pub(super) fn patch(ctx: &Context, id: &str, body: &[u8]) -> ApiResponse {
    let mut state = ctx.state();
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
pub(super) fn delete(ctx: &Context, id: &str) -> ApiResponse {
    let mut state = ctx.state();
    let Some(uuid) = parse_uuid(id) else {
        return destination_not_found(&mut state, id);
    };
    match state.delete_destination(uuid) {
        Ok(()) => ApiResponse::no_content(),
        Err(DeleteRefusal::NotFound) => destination_not_found(&mut state, id),
        Err(DeleteRefusal::InUse) => problem(&mut state, 409, "Destination is in use"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_must_be_hyphenated() {
        assert!(parse_uuid("07ec3858-066b-4629-bdc5-d4aa893b424d").is_some());
        assert!(parse_uuid("07EC3858-066B-4629-BDC5-D4AA893B424D").is_some());
        assert!(parse_uuid("07ec3858066b4629bdc5d4aa893b424d").is_none());
        assert!(parse_uuid("not-a-uuid").is_none());
    }
}
