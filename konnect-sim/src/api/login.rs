//! `POST /kauth/api/v1/refresh`: the browser-login token refresh (not in
//! the OpenAPI specs; modelled on what the original kongctl sends and reads).
//! The refresh token comes in the `konnectrefreshtoken` cookie, the new
//! tokens leave in two `Set-Cookie` headers. The tokens themselves are kept
//! by `login.rs`.

use hyper::Method;

use super::{ApiRequest, ApiResponse, problem};
use crate::context::Context;
use crate::time::{self, Millis};

/// The refresh endpoint (kongctl's `konnect.refresh-path` default).
pub(crate) const REFRESH_PATH: &str = "/kauth/api/v1/refresh";
const ACCESS_COOKIE: &str = "konnectaccesstoken";
const REFRESH_COOKIE: &str = "konnectrefreshtoken";

/// `POST /kauth/api/v1/refresh`.
pub(super) fn refresh(ctx: &Context, req: &ApiRequest) -> ApiResponse {
    if req.method != Method::POST {
        return problem(&mut ctx.state(), 405, "Method not allowed")
            .with_header("allow", "POST".to_string());
    }
    let presented = req
        .cookie
        .as_deref()
        .and_then(|header| cookie_value(header, REFRESH_COOKIE));
    let ttl = ctx.config().login_ttl;
    let grant = {
        let mut state = ctx.state();
        let state = &mut *state;
        if !presented.is_some_and(|t| state.logins.consume(t)) {
            return problem(state, 401, "Invalid refresh token");
        }
        state.logins.refreshed += 1;
        let generator = &mut state.generator;
        state.logins.issue(|| generator.bytes(32), ttl)
    };
    let expires = time::format_http_date(time::now().saturating_add(ttl.as_millis() as Millis));
    ApiResponse {
        status: 200,
        content_type: None,
        headers: Vec::new(),
        body: Vec::new(),
    }
    .with_header(
        "set-cookie",
        format!(
            "{ACCESS_COOKIE}={}; Path=/; Expires={expires}; HttpOnly; Secure; SameSite=Strict",
            grant.access_token
        ),
    )
    .with_header(
        "set-cookie",
        format!(
            "{REFRESH_COOKIE}={}; Path={REFRESH_PATH}; HttpOnly; Secure; SameSite=Strict",
            grant.refresh_token
        ),
    )
}

/// The value of cookie `name` in a `Cookie` request header.
fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name && !value.is_empty()).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_named_cookie() {
        let header = "a=1; konnectrefreshtoken=krt_x; b=2";
        assert_eq!(cookie_value(header, REFRESH_COOKIE), Some("krt_x"));
        assert_eq!(cookie_value("konnectrefreshtoken=", REFRESH_COOKIE), None);
        assert_eq!(cookie_value("x=krt_x", REFRESH_COOKIE), None);
    }
}
