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
//! accepted like a PAT until they expire. This module keeps the tokens; the
//! refresh endpoint is `api/login.rs`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::codec::base64url;
use crate::time::{self, Millis};

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
    pub fn consume(&mut self, refresh_token: &str) -> bool {
        self.refresh.remove(refresh_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
