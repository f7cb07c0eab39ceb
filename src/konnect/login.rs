//! Credentials: a PAT, or the token file that `kongctl login` leaves.
//!
//! The original's browser login (the OAuth device flow) stores an access
//! token and a refresh token in `<config file dir>/.<profile>-konnect-token.json`:
//!
//! ```json
//! {"token":{"access_token":"…","refresh_token":"…","token_type":"Bearer",
//!   "expires_in":3600,"scope":""},"received_at":"2026-11-25T21:28:22.1-08:00"}
//! ```
//!
//! The access token is valid until `received_at + expires_in`. When it has
//! expired the original `POST`s to `<regional base URL><refresh path>`
//! (`/kauth/api/v1/refresh`) with the refresh token in the
//! `konnectrefreshtoken` cookie and no body; the answer's `Set-Cookie`s carry
//! the new access token (`konnectaccesstoken`, its `Expires` the token's
//! expiry) and the next refresh token (`konnectrefreshtoken`, on the refresh
//! path), which it saves back to the file (0600).
//!
//! We do the same, with two differences. The token is checked before every
//! call, not once at start, so a listener that outlives its access token
//! (an hour) renews it instead of failing its Konnect cleanup with 401. And
//! a token that expires within [`EXPIRY_MARGIN`] is renewed already, so no
//! call races the expiry. Before renewing, the file is read again: another
//! kongctl (or `kongctl login`) may have renewed it, and a refresh token
//! works once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use serde::{Deserialize, Serialize};

use super::error::{KonnectError, error_chain, redact_url};
use crate::secret::Secret;

/// A token expiring sooner than this is renewed before use.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// The access token's lifetime when Konnect's cookie gives no `Expires`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
const ACCESS_COOKIE: &str = "konnectaccesstoken";
const REFRESH_COOKIE: &str = "konnectrefreshtoken";

/// What authenticates calls to Konnect.
pub enum Credential {
    /// A personal or system access token, used as is.
    Pat(Secret),
    /// The token file of `kongctl login`, renewed when it expires.
    Login(LoginToken),
}

impl From<Secret> for Credential {
    fn from(pat: Secret) -> Self {
        Credential::Pat(pat)
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Pat(_) => f.write_str("Pat(<redacted>)"),
            Credential::Login(login) => f
                .debug_struct("Login")
                .field("path", &login.path)
                .finish_non_exhaustive(),
        }
    }
}

impl Credential {
    /// The bearer token for the next call.
    pub async fn bearer(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<Secret, KonnectError> {
        match self {
            Credential::Pat(pat) => Ok(pat.clone()),
            Credential::Login(login) => login.access_token(http, timeout).await,
        }
    }
}

/// `kongctl login`'s token file and where to renew it.
pub struct LoginToken {
    path: PathBuf,
    refresh_url: Url,
    /// The token last read or renewed, and when it expires.
    current: tokio::sync::Mutex<Option<(Secret, SystemTime)>>,
}

/// The file's content, in the original's field names.
#[derive(Serialize, Deserialize)]
struct TokenFile {
    token: Token,
    received_at: String,
}

#[derive(Serialize, Deserialize)]
struct Token {
    access_token: String,
    #[serde(default)]
    refresh_token: String,
    #[serde(default)]
    token_type: String,
    #[serde(default)]
    expires_in: i64,
    #[serde(default)]
    scope: String,
}

impl TokenFile {
    /// `received_at + expires_in`; `None` if `received_at` is not RFC 3339.
    fn expires_at(&self) -> Option<SystemTime> {
        let received = crate::time::parse_rfc3339(&self.received_at).ok()?;
        let received = SystemTime::from(received);
        let lifetime = Duration::from_secs(self.token.expires_in.max(0) as u64);
        Some(received + lifetime)
    }
}

/// Whether a token expiring at `expiry` is good for the next call.
fn fresh(expiry: SystemTime) -> bool {
    SystemTime::now() + EXPIRY_MARGIN < expiry
}

impl LoginToken {
    pub fn new(path: PathBuf, refresh_url: Url) -> LoginToken {
        LoginToken {
            path,
            refresh_url,
            current: tokio::sync::Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An access token good for at least [`EXPIRY_MARGIN`], renewed (and
    /// saved) if the file's has expired or is about to.
    pub async fn access_token(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<Secret, KonnectError> {
        let mut current = self.current.lock().await;
        if let Some((token, expiry)) = current.as_ref()
            && fresh(*expiry)
        {
            return Ok(token.clone());
        }
        let file = self.read()?;
        let expiry = file.expires_at().ok_or_else(|| {
            self.error(format!(
                "its received_at {:?} is not an RFC 3339 time",
                file.received_at
            ))
        })?;
        if fresh(expiry) && !file.token.access_token.is_empty() {
            let token = Secret::new(file.token.access_token);
            *current = Some((token.clone(), expiry));
            return Ok(token);
        }
        if file.token.refresh_token.is_empty() {
            return Err(self.error("it has expired and holds no refresh token".into()));
        }
        tracing::info!(path = %self.path.display(), "login token expired, renewing it");
        let renewed = self.refresh(http, file.token, timeout).await?;
        let expiry = renewed.expires_at().unwrap_or(SystemTime::now());
        let json = serde_json::to_vec(&renewed).expect("a token file serialises");
        crate::fsutil::write_atomic(&self.path, &json).map_err(|e| {
            self.error(format!(
                "it was renewed but could not be saved ({e}); the old refresh token no longer works"
            ))
        })?;
        tracing::info!(path = %self.path.display(), "login token renewed and saved");
        let token = Secret::new(renewed.token.access_token);
        *current = Some((token.clone(), expiry));
        Ok(token)
    }

    fn read(&self) -> Result<TokenFile, KonnectError> {
        let bytes = std::fs::read(&self.path).map_err(|e| self.error(format!("{e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| self.error(format!("it is not a kongctl login token file ({e})")))
    }

    /// `POST <refresh url>` with the refresh token as a cookie.
    async fn refresh(
        &self,
        http: &reqwest::Client,
        old: Token,
        timeout: Duration,
    ) -> Result<TokenFile, KonnectError> {
        let url = redact_url(&self.refresh_url);
        let response = http
            .post(self.refresh_url.clone())
            .header(COOKIE, format!("{REFRESH_COOKIE}={}", old.refresh_token))
            .header(CONTENT_TYPE, "application/json")
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| KonnectError::Transport {
                method: reqwest::Method::POST,
                url: url.clone(),
                reason: format!("renewing the login token: {}", error_chain(&e)),
                transient: e.is_connect() || e.is_timeout() || e.is_request(),
            })?;
        let status = response.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(KonnectError::Transport {
                method: reqwest::Method::POST,
                url,
                reason: format!("renewing the login token: status {status}"),
                transient: true,
            });
        }
        if status != reqwest::StatusCode::OK {
            return Err(self.error(format!(
                "it has expired and Konnect refused to renew it (POST {url}: status {status})"
            )));
        }
        let now = SystemTime::now();
        let mut access = None;
        let mut refresh = None;
        for value in response.headers().get_all(SET_COOKIE) {
            let Some(cookie) = value
                .to_str()
                .ok()
                .and_then(|v| cookie::Cookie::parse(v).ok())
            else {
                continue;
            };
            if cookie.value().is_empty() {
                continue;
            }
            match cookie.name() {
                ACCESS_COOKIE => {
                    let lifetime = cookie
                        .expires_datetime()
                        .map(|at| SystemTime::from(at).duration_since(now).unwrap_or_default())
                        .unwrap_or(DEFAULT_LIFETIME);
                    access = Some((cookie.value().to_string(), lifetime));
                }
                REFRESH_COOKIE if cookie.path() == Some(self.refresh_url.path()) => {
                    refresh = Some(cookie.value().to_string());
                }
                _ => {}
            }
        }
        let Some((access_token, lifetime)) = access else {
            return Err(self.error(format!(
                "Konnect renewed it without sending an access token (POST {url})"
            )));
        };
        Ok(TokenFile {
            token: Token {
                access_token,
                refresh_token: refresh.unwrap_or(old.refresh_token),
                token_type: "Bearer".into(),
                expires_in: lifetime.as_secs() as i64,
                scope: old.scope,
            },
            received_at: jiff::Timestamp::try_from(now)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
                .to_string(),
        })
    }

    fn error(&self, why: String) -> KonnectError {
        KonnectError::Login {
            path: self.path.clone(),
            reason: why,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(received_at: &str, expires_in: i64) -> TokenFile {
        TokenFile {
            token: Token {
                access_token: "a".into(),
                refresh_token: "r".into(),
                token_type: "Bearer".into(),
                expires_in,
                scope: String::new(),
            },
            received_at: received_at.into(),
        }
    }

    #[test]
    fn expiry_is_received_at_plus_expires_in_in_any_offset() {
        let utc = file("2026-11-25T20:00:00Z", 3600).expires_at().unwrap();
        let offset = file("2026-11-25T12:00:00.000000001-08:00", 3600)
            .expires_at()
            .unwrap();
        assert_eq!(
            utc,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_640_400)
        );
        assert_eq!(offset.duration_since(utc).unwrap(), Duration::from_nanos(1));
        assert!(file("yesterday", 3600).expires_at().is_none());
    }

    #[test]
    fn a_token_about_to_expire_is_not_fresh() {
        let now = SystemTime::now();
        assert!(fresh(now + EXPIRY_MARGIN + Duration::from_secs(5)));
        assert!(!fresh(now + EXPIRY_MARGIN - Duration::from_secs(5)));
        assert!(!fresh(now - Duration::from_secs(5)));
    }

    #[test]
    fn reads_the_originals_file_and_writes_the_same_shape() {
        let original = r#"{"token":{"access_token":"kat_1","refresh_token":"krt_1","token_type":"Bearer","expires_in":3600,"scope":""},"received_at":"2026-11-25T12:00:00.123456-08:00"}"#;
        let parsed: TokenFile = serde_json::from_str(original).unwrap();
        assert_eq!(parsed.token.access_token, "kat_1");
        let written: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&parsed).unwrap()).unwrap();
        let expected: serde_json::Value = serde_json::from_str(original).unwrap();
        assert_eq!(written, expected);
    }

    #[test]
    fn debug_output_hides_the_pat() {
        let pat = Credential::Pat(Secret::new("kpat_secret"));
        assert!(!format!("{pat:?}").contains("kpat_secret"));
    }
}
