//! `GET /v3/audit-logs`, the pull API: the region's history (`history.rs`)
//! with cursor paging and the time and type filters of the v3 spec.
//!
//! Records are listed ascending by `ts`, then in the order the emulator
//! learnt of them. `meta.page.next` and `previous` are paths relative to the
//! API version, as in the spec's example (`/audit-logs?page[after]=…`),
//! carrying the page size and filters too. The body is written by hand so
//! that raw records go out byte for byte.

use serde_json::json;

use super::paging::{link, query_pairs, query_value};
use super::{ApiResponse, JSON, bad_request};
use crate::context::Context;
use crate::history::{Cursor, PageQuery, TYPES};
use crate::problem::InvalidParameter;
use crate::time::{self, DAY};

/// `page[size]` default and maximum (from the spec).
const AUDIT_LOG_PAGE_DEFAULT: usize = 20;
const AUDIT_LOG_PAGE_MAX: i64 = 1000;

/// GET /v3/audit-logs.
pub(super) fn list(ctx: &Context, region: &'static str, query: &str) -> ApiResponse {
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
    let kind = query_value(&pairs, "filter[type]").filter(|v| !v.is_empty());
    if kind.is_some_and(|k| !TYPES.contains(&k)) {
        errors.push(InvalidParameter::choice("filter[type]", "query", &TYPES));
    }
    let mode = state.history.cursors;
    let mut cursor = |key: &str| {
        let text = query_value(&pairs, key).filter(|v| !v.is_empty())?;
        // A cursor of the other mode (the mode changed while a client
        // paged) is as unknown as garbage.
        let decoded = Cursor::decode(text).filter(|c| {
            matches!(
                (c, mode),
                (Cursor::Key(_), crate::history::CursorMode::Keyed)
                    | (Cursor::Offset(_), crate::history::CursorMode::Offset)
            )
        });
        if decoded.is_none() {
            errors.push(InvalidParameter::new(
                key,
                "query",
                Some("invalid"),
                "is not a valid cursor",
            ));
        }
        decoded
    };
    let after = cursor("page[after]");
    let before = cursor("page[before]");
    if !errors.is_empty() {
        return bad_request(&mut state, "Invalid query parameters", errors);
    }
    let size = size.expect("no error means a size");
    let lte = lte.unwrap_or_else(|| state.now());
    let gte = gte.unwrap_or(lte - 7 * DAY);
    let page_query = PageQuery {
        gte,
        lte,
        kind,
        size,
        after,
        before,
    };
    let state = &mut *state;
    let page = state
        .history
        .page(&mut state.generator, region, &page_query);

    let page_link = |direction: &str, cursor: Cursor| {
        let mut params = vec![
            ("page[size]", size.to_string()),
            (direction, cursor.encode()),
        ];
        for key in ["filter[ts][gte]", "filter[ts][lte]", "filter[type]"] {
            if let Some(value) = query_value(&pairs, key).filter(|v| !v.is_empty()) {
                params.push((key, value.to_string()));
            }
        }
        link("/audit-logs", &params)
    };
    let meta = json!({"page": {
        "next": page.next.map(|c| page_link("page[after]", c)),
        "previous": page.previous.map(|c| page_link("page[before]", c)),
        "size": size,
    }});
    let mut body =
        String::with_capacity(page.records.iter().map(|r| r.len() + 1).sum::<usize>() + 256);
    body.push_str("{\"data\":[");
    for (i, record) in page.records.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(record);
    }
    body.push_str("],\"meta\":");
    body.push_str(&meta.to_string());
    body.push('}');
    ApiResponse {
        status: 200,
        content_type: Some(JSON),
        headers: Vec::new(),
        body: body.into_bytes(),
    }
}
