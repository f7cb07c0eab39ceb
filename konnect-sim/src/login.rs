//! Browser-login tokens: what `kongctl login` stores and Konnect's refresh
//! endpoint renews.
//!
//! `kongctl login` (the device flow, not emulated) leaves an access token and
//! a refresh token in `.<profile>-konnect-token.json`. When the access token
//! has expired, kongctl `POST`s to `/kauth/api/v1/refresh` with the refresh
//! token in the `konnectrefreshtoken` cookie and no body; Konnect answers 200
//! with two `Set-Cookie` headers: `konnectaccesstoken` (the new access token,
//! its `Expires` the token's expiry) and `konnectrefreshtoken` (the next
//! refresh token, `Path` the refresh path). A refresh token works once.
//!
//! Tests start from [`crate::Sim::issue_login`], which stands in for a
//! completed `kongctl login`. Access tokens it issues or refreshes are
//! accepted like a PAT until they expire.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hyper::Method;
use serde::{Deserialize, Serialize};

use crate::api::{ApiRequest, ApiResponse, problem};
use crate::codec::base64url;
use crate::sim::Sim;
use crate::time::{self, Millis};

/// The refresh endpoint (kongctl's `konnect.refresh-path` default).
pub(crate) const REFRESH_PATH: &str = "/kauth/api/v1/refresh";
const ACCESS_COOKIE: &str = "konnectaccesstoken";
const REFRESH_COOKIE: &str = "konnectrefreshtoken";

/// Tokens of one login, as `kongctl login` receives them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginGrant {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the access token is valid from now.
    pub expires_in: u64,
}

/// Issued tokens: access tokens with their expiry, unused refresh tokens.
#[derive(Default)]
pub(crate) struct Logins {
    access: HashMap<String, Millis>,
    refresh: HashSet<String>,
    /// Successful refreshes, for the snapshot.
    pub refreshed: u64,
}

impl Logins {
    pub fn issue(&mut self, token_bytes: impl FnMut() -> Vec<u8>, ttl: Duration) -> LoginGrant {
        let mut token_bytes = token_bytes;
        let access_token = format!("kat_{}", base64url(&token_bytes()));
        let refresh_token = format!("krt_{}", base64url(&token_bytes()));
        let ttl_ms = Millis::try_from(ttl.as_millis()).unwrap_or(Millis::MAX / 2);
        self.access
            .insert(access_token.clone(), time::now().saturating_add(ttl_ms));
        self.refresh.insert(refresh_token.clone());
        LoginGrant {
            access_token,
            refresh_token,
            expires_in: ttl.as_secs(),
        }
    }

    /// Whether `token` is an access token that has not expired.
    pub fn accepts(&self, token: &str) -> bool {
        self.access
            .get(token)
            .is_some_and(|expiry| time::now() < *expiry)
    }

    /// Uses up `refresh_token`; false if it was not issued or already used.
    fn consume(&mut self, refresh_token: &str) -> bool {
        self.refresh.remove(refresh_token)
    }
}

/// `POST /kauth/api/v1/refresh`.
pub(crate) fn refresh(sim: &Sim, req: &ApiRequest) -> ApiResponse {
    if req.method != Method::POST {
        return problem(&mut sim.state(), 405, "Method not allowed")
            .with_header("allow", "POST".to_string());
    }
    let presented = req
        .cookie
        .as_deref()
        .and_then(|header| cookie_value(header, REFRESH_COOKIE));
    let ttl = sim.config().login_ttl;
    let grant = {
        let mut state = sim.state();
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

    #[test]
    fn access_tokens_expire_and_refresh_tokens_work_once() {
        let mut logins = Logins::default();
        let mut n = 0u8;
        let mut bytes = || {
            n += 1;
            vec![n; 8]
        };
        let live = logins.issue(&mut bytes, Duration::from_secs(60));
        let dead = logins.issue(&mut bytes, Duration::ZERO);
        assert!(logins.accepts(&live.access_token));
        assert!(!logins.accepts(&dead.access_token));
        assert!(!logins.accepts("kat_unknown"));
        assert!(logins.consume(&live.refresh_token));
        assert!(!logins.consume(&live.refresh_token));
    }
}
