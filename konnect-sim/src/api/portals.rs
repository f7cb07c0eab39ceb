//! `/v3/portals`, `/v3/portals/{portalId}` and
//! `/v3/portals/{portalId}/developers/{developerId}`: the region's Dev
//! Portals (seeded by tests) as the portal spec shows them. The portal's
//! audit-log webhook and replay job are `portal_webhook.rs`'s.

use std::cmp::Ordering;

use uuid::Uuid;

use super::destinations::parse_uuid;
use super::pages::{BadTerm, FieldFilter, PageNumber, bool_matches, check_term, filter_terms};
use super::paging::{query_pairs, query_value};
use super::{ApiResponse, problem};
use crate::context::Context;
use crate::portal::{FieldValue, Portal};
use crate::problem::{InvalidParameter, Problem};
use crate::state::State;

/// The string filter operators of the spec's `StringFieldFilter`.
const STRING_OPS: &[&str] = &["eq", "contains", "ocontains", "oeq", "neq"];
/// The operators of the spec's `UuidFieldFilter`.
const UUID_OPS: &[&str] = &["eq", "oeq", "neq"];

/// The fields of `PortalFilterParameters` and how each filters.
const FILTERS: [(&str, FieldFilter); 12] = [
    (
        "id",
        FieldFilter::Text {
            ops: UUID_OPS,
            bare: false,
        },
    ),
    (
        "name",
        FieldFilter::Text {
            ops: STRING_OPS,
            bare: true,
        },
    ),
    (
        "description",
        FieldFilter::Text {
            ops: STRING_OPS,
            bare: true,
        },
    ),
    ("authentication_enabled", FieldFilter::Bool),
    ("rbac_enabled", FieldFilter::Bool),
    (
        "default_api_visibility",
        FieldFilter::Text {
            ops: STRING_OPS,
            bare: true,
        },
    ),
    (
        "default_page_visibility",
        FieldFilter::Text {
            ops: STRING_OPS,
            bare: true,
        },
    ),
    (
        "default_application_auth_strategy_id",
        FieldFilter::Text {
            ops: UUID_OPS,
            bare: false,
        },
    ),
    ("auto_approve_developers", FieldFilter::Bool),
    ("auto_approve_applications", FieldFilter::Bool),
    (
        "default_domain",
        FieldFilter::Text {
            ops: STRING_OPS,
            bare: true,
        },
    ),
    (
        "canonical_domain",
        FieldFilter::Text {
            ops: STRING_OPS,
            bare: true,
        },
    ),
];

/// The attributes `sort` takes (the `SortPortals` parameter's description).
const SORT_FIELDS: [&str; 10] = [
    "name",
    "description",
    "authentication_enabled",
    "rbac_enabled",
    "auto_approve_applications",
    "auto_approve_developers",
    "default_domain",
    "canonical_domain",
    "created_at",
    "updated_at",
];

/// The list's 400: title and detail as the spec's `ListPortalsBadRequest`
/// examples.
fn invalid(state: &mut State, params: Vec<InvalidParameter>) -> ApiResponse {
    let trace = state.trace();
    ApiResponse::problem(
        &Problem::bad_request(trace, "Invalid Parameters", params).titled("Invalid Request"),
    )
}

/// One sort key: a field, descending or not.
struct SortKey {
    field: &'static str,
    descending: bool,
}

/// The 400's parameter for a `sort` it cannot use (the spec's
/// `ListPortalsBadRequestExample3` shape, listing every attribute).
fn sort_error() -> InvalidParameter {
    InvalidParameter {
        reason: format!("must be one of [{}]", SORT_FIELDS.join(", ")),
        ..InvalidParameter::choice("sort", "query", &SORT_FIELDS)
    }
}

/// `sort=name`, `sort=name desc`, `sort=-name`, comma-separated for
/// several keys; `None` if it names anything else.
fn parse_sort(text: &str) -> Option<Vec<SortKey>> {
    let mut keys = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, descending) = match part.split_once(' ') {
            Some((name, "desc")) => (name, true),
            Some((name, "asc")) => (name, false),
            Some(_) => ("", false),
            None => match part.strip_prefix('-') {
                Some(name) => (name, true),
                None => (part, false),
            },
        };
        let field = SORT_FIELDS.iter().find(|f| **f == name)?;
        keys.push(SortKey { field, descending });
    }
    Some(keys)
}

fn compare(a: &Portal, b: &Portal, keys: &[SortKey]) -> Ordering {
    for key in keys {
        let ordering = match key.field {
            "created_at" => a.created_at.cmp(&b.created_at),
            "updated_at" => a.updated_at.cmp(&b.updated_at),
            field => a.field(field).cmp(&b.field(field)),
        };
        let ordering = if key.descending {
            ordering.reverse()
        } else {
            ordering
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// GET /v3/portals: the region's portals, in creation order unless
/// `sort` says otherwise, filtered by `filter[...]`, one page.
pub(super) fn list(ctx: &Context, region: &str, query: &str) -> ApiResponse {
    let pairs = query_pairs(query);
    let mut state = ctx.state();
    let mut params = Vec::new();
    let page = PageNumber::parse(&pairs, ctx.config().page_size_default)
        .map_err(|errors| params.extend(errors))
        .ok();
    let sort = match query_value(&pairs, "sort") {
        None => Vec::new(),
        Some(text) => parse_sort(text).unwrap_or_else(|| {
            params.push(sort_error());
            Vec::new()
        }),
    };
    let terms = match filter_terms(&pairs) {
        Ok(terms) => terms,
        Err(key) => {
            params.push(InvalidParameter::new(
                key,
                "query",
                Some("invalid"),
                "is not filter[field] or filter[field][operator]",
            ));
            Vec::new()
        }
    };
    for term in &terms {
        match check_term(term, &FILTERS) {
            Ok(_) => {}
            Err(BadTerm::UnknownField) => params.push(InvalidParameter::new(
                term.key.clone(),
                "query",
                Some("unknown_property"),
                format!("{} is not a field portals can be filtered by", term.field),
            )),
            Err(BadTerm::UnknownOp(ops)) => params.push(InvalidParameter {
                reason: format!("must be one of [{}]", ops.join(", ")),
                ..InvalidParameter::choice(term.key.clone(), "query", ops)
            }),
            Err(BadTerm::NotBool) => params.push(InvalidParameter::new(
                term.key.clone(),
                "query",
                Some("is_boolean"),
                "must be true or false",
            )),
        }
    }
    let Some(page) = page.filter(|_| params.is_empty()) else {
        return invalid(&mut state, params);
    };
    let mut matching: Vec<&Portal> = state
        .portals
        .iter()
        .filter(|p| p.region == region)
        .filter(|p| terms.iter().all(|term| portal_matches(p, term)))
        .collect();
    matching.sort_by(|a, b| compare(a, b, &sort));
    let data = page
        .slice(&matching)
        .into_iter()
        .map(Portal::to_json)
        .collect();
    ApiResponse::json(200, &page.body(data, matching.len()))
}

fn portal_matches(portal: &Portal, term: &super::pages::FilterTerm) -> bool {
    if term.field == "id" {
        let id = portal.id.to_string();
        return super::pages::text_matches(term, Some(&id));
    }
    match portal.field(&term.field) {
        Some(FieldValue::Text(value)) => super::pages::text_matches(term, value),
        Some(FieldValue::Bool(value)) => bool_matches(term, value),
        None => false,
    }
}

/// 404 for a portal id that names no portal of the region.
pub(super) fn portal_not_found(state: &mut State, id: &str) -> ApiResponse {
    problem(state, 404, &format!("Portal [{id}] not found"))
}

/// The portal `id` names in `region`, or the 404 to answer. Portals are
/// regional: another region's portal is not found.
pub(super) fn find_portal(state: &mut State, region: &str, id: &str) -> Result<Uuid, ApiResponse> {
    match parse_uuid(id).filter(|uuid| state.portal(*uuid).is_some_and(|p| p.region == region)) {
        Some(uuid) => Ok(uuid),
        None => Err(portal_not_found(state, id)),
    }
}

/// GET /v3/portals/{portalId}.
pub(super) fn get(ctx: &Context, region: &str, id: &str) -> ApiResponse {
    let mut state = ctx.state();
    match find_portal(&mut state, region, id) {
        Ok(uuid) => ApiResponse::json(200, &state.portal(uuid).expect("found above").to_json()),
        Err(response) => response,
    }
}

/// GET /v3/portals/{portalId}/developers/{developerId}.
pub(super) fn developer(ctx: &Context, region: &str, id: &str, developer: &str) -> ApiResponse {
    let mut state = ctx.state();
    let uuid = match find_portal(&mut state, region, id) {
        Ok(uuid) => uuid,
        Err(response) => return response,
    };
    let found = parse_uuid(developer).and_then(|d| {
        state
            .portal(uuid)
            .and_then(|p| p.developer(d))
            .map(|d| serde_json::to_value(d).expect("a developer always serialises"))
    });
    match found {
        Some(body) => ApiResponse::json(200, &body),
        None => problem(
            &mut state,
            404,
            &format!("Developer [{developer}] not found in portal [{id}]"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_takes_the_documented_attributes() {
        let keys = parse_sort("name desc, -created_at,rbac_enabled").unwrap();
        let shown: Vec<(&str, bool)> = keys.iter().map(|k| (k.field, k.descending)).collect();
        assert_eq!(
            shown,
            [
                ("name", true),
                ("created_at", true),
                ("rbac_enabled", false)
            ]
        );
        assert!(parse_sort("colour").is_none());
        assert!(parse_sort("name sideways").is_none());
        let error = sort_error();
        assert_eq!(error.field, "sort");
        assert_eq!(error.rule, Some("enum"));
        assert!(
            error.reason.starts_with("must be one of [name, "),
            "{error:?}"
        );
    }
}
