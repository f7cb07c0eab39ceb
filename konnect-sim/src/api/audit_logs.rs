//! `GET /v3/audit-logs`, the pull API: the region's stored events, oldest
//! first, with cursor paging and the time and type filters of the v3 spec.
//! The entries are the events' `AuditLog` views (`records.rs`).

use serde_json::json;

use super::paging::{decode_cursor, encode_cursor, link, query_pairs, query_value};
use super::{ApiResponse, bad_request};
use crate::context::Context;
use crate::problem::InvalidParameter;
use crate::records::Event;
use crate::time::{self, DAY};

/// `page[size]` default and maximum (from the spec).
const AUDIT_LOG_PAGE_DEFAULT: usize = 20;
const AUDIT_LOG_PAGE_MAX: i64 = 1000;
/// What the list's cursors start with (before base64url).
const CURSOR_PREFIX: &str = "event:";

/// GET /v3/audit-logs: the region's stored events, oldest first.
pub(super) fn list(ctx: &Context, region: &str, query: &str) -> ApiResponse {
    let pairs = query_pairs(query);
    let mut state = ctx.state();
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
        let seq = decode_cursor(text, CURSOR_PREFIX);
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
            (direction, encode_cursor(CURSOR_PREFIX, seq)),
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
