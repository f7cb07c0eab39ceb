//! `/v3/users`, `/v3/users/{userId}`, `/v3/system-accounts` and
//! `/v3/system-accounts/{accountId}` (global host): the organisation's
//! principals, as the identity spec shows them, for clients that turn
//! `principal_id`s into names.
//!
//! Lists page by number and filter as the spec's parameters say; an
//! unsupported filter field or operator is the spec's 400 example
//! (`field: "[filter][actions][contains]"`, `reason: "[contains] is not a
//! supported filter operation"`).

use serde::Serialize;

use super::pages::{
    BadTerm, FieldFilter, FilterTerm, PageNumber, bool_matches, check_term, filter_terms,
    text_matches,
};
use super::paging::query_pairs;
use super::{ApiResponse, bad_request, problem};
use crate::context::Context;
use crate::identity::{SystemAccountState, UserState};
use crate::problem::InvalidParameter;
use crate::state::State;

/// `LegacyStringFieldFilter`'s operators.
const LEGACY_OPS: &[&str] = &["eq", "contains"];
/// `StringFieldEqualsFilter`'s (which also takes a bare value).
const EQ_OPS: &[&str] = &["eq"];

/// The user list's filter fields.
const USER_FILTERS: [(&str, FieldFilter); 4] = [
    (
        "id",
        FieldFilter::Text {
            ops: EQ_OPS,
            bare: true,
        },
    ),
    (
        "email",
        FieldFilter::Text {
            ops: LEGACY_OPS,
            bare: false,
        },
    ),
    (
        "full_name",
        FieldFilter::Text {
            ops: LEGACY_OPS,
            bare: false,
        },
    ),
    ("active", FieldFilter::Bool),
];

/// The system account list's filter fields.
const ACCOUNT_FILTERS: [(&str, FieldFilter); 3] = [
    (
        "name",
        FieldFilter::Text {
            ops: LEGACY_OPS,
            bare: false,
        },
    ),
    (
        "description",
        FieldFilter::Text {
            ops: LEGACY_OPS,
            bare: false,
        },
    ),
    ("konnect_managed", FieldFilter::Bool),
];

/// A field of a listed item, for filters.
enum Field<'a> {
    Text(&'a str),
    Bool(bool),
}

fn user_field<'a>(user: &'a UserState, name: &str) -> Option<Field<'a>> {
    Some(match name {
        "id" => Field::Text(&user.id),
        "email" => Field::Text(&user.email),
        "full_name" => Field::Text(&user.full_name),
        "active" => Field::Bool(user.active),
        _ => return None,
    })
}

fn account_field<'a>(account: &'a SystemAccountState, name: &str) -> Option<Field<'a>> {
    Some(match name {
        "name" => Field::Text(&account.name),
        "description" => Field::Text(&account.description),
        "konnect_managed" => Field::Bool(account.konnect_managed),
        _ => return None,
    })
}

fn matches(field: Option<Field<'_>>, term: &FilterTerm) -> bool {
    match field {
        Some(Field::Text(value)) => text_matches(term, Some(value)),
        Some(Field::Bool(value)) => bool_matches(term, value),
        None => false,
    }
}

/// Paging and filters of an identity list, or its 400.
fn read_query(
    ctx: &Context,
    state: &mut State,
    query: &str,
    fields: &[(&str, FieldFilter)],
) -> Result<(PageNumber, Vec<FilterTerm>), ApiResponse> {
    let pairs = query_pairs(query);
    let mut params = Vec::new();
    let page = PageNumber::parse(&pairs, ctx.config().page_size_default)
        .map_err(|errors| params.extend(errors))
        .ok();
    let terms = match filter_terms(&pairs) {
        Ok(terms) => terms,
        Err(key) => {
            params.push(InvalidParameter::new(
                key,
                "query",
                None,
                "request format is invalid",
            ));
            Vec::new()
        }
    };
    for term in &terms {
        let op = term.op.as_deref().unwrap_or("eq");
        match check_term(term, fields) {
            Ok(_) => {}
            Err(BadTerm::UnknownField | BadTerm::UnknownOp(_)) => {
                params.push(InvalidParameter::new(
                    format!("[filter][{}][{op}]", term.field),
                    "query",
                    None,
                    format!("[{op}] is not a supported filter operation"),
                ));
            }
            Err(BadTerm::NotBool) => params.push(InvalidParameter::new(
                format!("[filter][{}]", term.field),
                "query",
                Some("is_boolean"),
                "must be true or false",
            )),
        }
    }
    match page {
        Some(page) if params.is_empty() => Ok((page, terms)),
        _ => Err(bad_request(state, "Invalid query parameters", params)),
    }
}

fn list<T: Serialize + Clone>(
    ctx: &Context,
    query: &str,
    fields: &[(&str, FieldFilter)],
    items: impl Fn(&State) -> Vec<T>,
    keep: impl Fn(&T, &FilterTerm) -> bool,
) -> ApiResponse {
    let mut state = ctx.state();
    let (page, terms) = match read_query(ctx, &mut state, query, fields) {
        Ok(read) => read,
        Err(response) => return response,
    };
    let matching: Vec<T> = items(&state)
        .into_iter()
        .filter(|item| terms.iter().all(|term| keep(item, term)))
        .collect();
    let data = page
        .slice(&matching)
        .iter()
        .map(|item| serde_json::to_value(item).expect("identity bodies always serialise"))
        .collect();
    ApiResponse::json(200, &page.body(data, matching.len()))
}

/// GET /v3/users.
pub(super) fn list_users(ctx: &Context, query: &str) -> ApiResponse {
    list(
        ctx,
        query,
        &USER_FILTERS,
        |state| state.users.clone(),
        |user, term| matches(user_field(user, &term.field), term),
    )
}

/// GET /v3/system-accounts.
pub(super) fn list_system_accounts(ctx: &Context, query: &str) -> ApiResponse {
    list(
        ctx,
        query,
        &ACCOUNT_FILTERS,
        |state| state.system_accounts.clone(),
        |account, term| matches(account_field(account, &term.field), term),
    )
}

/// GET /v3/users/{userId}: 400 for an id that is not a UUID (the spec's
/// `must be a valid UUID v4` example), 404 for an unknown one.
pub(super) fn get_user(ctx: &Context, id: &str) -> ApiResponse {
    let mut state = ctx.state();
    if super::destinations::parse_uuid(id).is_none() {
        return bad_request(
            &mut state,
            "Invalid user id",
            vec![InvalidParameter::new(
                "id",
                "path",
                Some("is_uuid"),
                "must be a valid UUID v4",
            )],
        );
    }
    let found = state
        .users
        .iter()
        .find(|u| u.id.eq_ignore_ascii_case(id))
        .map(|u| serde_json::to_value(u).expect("a user always serialises"));
    match found {
        Some(body) => ApiResponse::json(200, &body),
        None => problem(&mut state, 404, &format!("User [{id}] not found")),
    }
}

/// GET /v3/system-accounts/{accountId}: 404 for anything unknown (the spec
/// lists no 400 here).
pub(super) fn get_system_account(ctx: &Context, id: &str) -> ApiResponse {
    let mut state = ctx.state();
    let found = state
        .system_accounts
        .iter()
        .find(|a| a.id.eq_ignore_ascii_case(id))
        .map(|a| serde_json::to_value(a).expect("a system account always serialises"));
    match found {
        Some(body) => ApiResponse::json(200, &body),
        None => problem(&mut state, 404, &format!("System account [{id}] not found")),
    }
}
