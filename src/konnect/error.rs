//! Why a Konnect call failed, and what of a request may show in a message.
//!
//! [`KonnectError`] is shared by `client` (HTTP calls) and `login` (the
//! login token file and its renewal), which is why it lives apart from both:
//! `client` uses `login` for its credential, so `login` must not import
//! `client`. [`redact_url`] and [`error_chain`] are how both write a request
//! and a cause into a message without leaking credentials.

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

/// A problem reported by Konnect (a non-2xx response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub method: Method,
    pub url: String,
    pub status: StatusCode,
    pub title: Option<String>,
    pub detail: Option<String>,
    pub instance: Option<String>,
    pub invalid_parameters: Vec<(String, String)>,
    /// The start of a body that is not problem+json.
    pub body_excerpt: Option<String>,
    /// The wait the answer's `Retry-After` asked for (capped).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub(super) fn from_response(
        method: Method,
        url: &Url,
        status: StatusCode,
        body: &[u8],
    ) -> ApiError {
        #[derive(Deserialize)]
        struct Problem {
            title: Option<String>,
            detail: Option<String>,
            instance: Option<String>,
            message: Option<String>,
            #[serde(default)]
            invalid_parameters: Vec<InvalidParameter>,
        }
        #[derive(Deserialize)]
        struct InvalidParameter {
            field: Option<String>,
            reason: Option<String>,
        }
        let mut err = ApiError {
            method,
            url: redact_url(url),
            status,
            title: None,
            detail: None,
            instance: None,
            invalid_parameters: Vec::new(),
            body_excerpt: None,
            retry_after: None,
        };
        match serde_json::from_slice::<Problem>(body) {
            Ok(p) if p.title.is_some() || p.detail.is_some() || p.message.is_some() => {
                err.title = p.title;
                err.detail = p.detail.or(p.message);
                err.instance = p.instance;
                err.invalid_parameters = p
                    .invalid_parameters
                    .into_iter()
                    .map(|ip| (ip.field.unwrap_or_default(), ip.reason.unwrap_or_default()))
                    .collect();
            }
            _ => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                if !text.is_empty() {
                    err.body_excerpt = Some(excerpt(text, 300));
                }
            }
        }
        err
    }

    /// The problem text, lower-cased, for matching known conditions such as
    /// "destination is in use".
    pub fn mentions(&self, needle: &str) -> bool {
        let needle = needle.to_ascii_lowercase();
        [&self.title, &self.detail, &self.body_excerpt]
            .into_iter()
            .flatten()
            .any(|t| t.to_ascii_lowercase().contains(&needle))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = self.status.canonical_reason().unwrap_or("");
        write!(
            f,
            "{} {}: status {} {}",
            self.method,
            self.url,
            self.status.as_u16(),
            reason
        )?;
        let mut parts = Vec::new();
        if let Some(t) = self
            .title
            .as_deref()
            .filter(|t| *t != reason && !t.is_empty())
        {
            parts.push(t.to_string());
        }
        if let Some(d) = self.detail.as_deref().filter(|d| !d.is_empty()) {
            parts.push(d.to_string());
        }
        if let Some(b) = &self.body_excerpt {
            parts.push(b.clone());
        }
        if !parts.is_empty() {
            write!(f, ": {}", parts.join(": "))?;
        }
        if !self.invalid_parameters.is_empty() {
            let list: Vec<String> = self
                .invalid_parameters
                .iter()
                .map(|(field, reason)| format!("{field}: {reason}"))
                .collect();
            write!(f, " [{}]", list.join("; "))?;
        }
        if let Some(i) = &self.instance {
            write!(f, " (trace {i})")?;
        }
        Ok(())
    }
}

/// Why a Konnect call failed.
#[derive(Debug, thiserror::Error)]
pub enum KonnectError {
    /// Konnect answered with an error status.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// No answer: connection refused, reset, timed out, TLS failure…
    #[error("{method} {url}: {reason}")]
    Transport {
        method: Method,
        url: String,
        reason: String,
        /// Whether another attempt could succeed (connection-level failures).
        transient: bool,
    },
    /// An answer we could not use.
    #[error("{method} {url}: unexpected response: {reason}")]
    Decode {
        method: Method,
        url: String,
        reason: String,
    },
    #[error("failed to set up the HTTP client: {0}")]
    Setup(String),
    /// The `kongctl login` token file could not give a usable token.
    #[error("cannot use the login token in {}: {reason}", path.display())]
    Login {
        path: std::path::PathBuf,
        reason: String,
    },
}

impl KonnectError {
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            KonnectError::Api(e) => Some(e),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        self.api().map(|e| e.status)
    }

    /// The wait Konnect asked for before another attempt (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.api().and_then(|e| e.retry_after)
    }

    /// Whether the failure is worth another attempt: no answer at all, 429
    /// or 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            KonnectError::Transport { transient, .. } => *transient,
            KonnectError::Api(e) => retryable_status(e.status),
            _ => false,
        }
    }
}

fn retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// A URL for messages and logs: no userinfo, query values replaced.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    if !u.username().is_empty() || u.password().is_some() {
        let _ = u.set_username("");
        let _ = u.set_password(None);
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let keep = k.starts_with("page[") || k.starts_with("filter[");
                (
                    k.into_owned(),
                    if keep { v.into_owned() } else { "***".into() },
                )
            })
            .collect();
        u.set_query(None);
        if !pairs.is_empty() {
            u.query_pairs_mut().extend_pairs(pairs);
        }
    }
    u.to_string()
}

/// An error and its causes, `outer: inner: innermost`, without repeats.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_json_is_shown_with_trace_and_parameters() {
        let url = Url::parse("https://global.api.konghq.com/v3/audit-log-destinations").unwrap();
        let body = br#"{"status":400,"title":"Bad Request","detail":"Required field missing","instance":"konnect:trace:66","invalid_parameters":[{"field":"authorization","reason":"cannot be blank"}]}"#;
        let e = ApiError::from_response(Method::POST, &url, StatusCode::BAD_REQUEST, body);
        assert_eq!(
            e.to_string(),
            "POST https://global.api.konghq.com/v3/audit-log-destinations: status 400 Bad Request: \
             Required field missing [authorization: cannot be blank] (trace konnect:trace:66)"
        );
        let e = ApiError::from_response(
            Method::DELETE,
            &url,
            StatusCode::CONFLICT,
            b"{\"detail\":\"Destination is in use\"}",
        );
        assert!(e.mentions("destination is in use"));
        let e = ApiError::from_response(
            Method::GET,
            &url,
            StatusCode::BAD_GATEWAY,
            b"<html>oops</html>\n",
        );
        assert!(
            e.to_string()
                .ends_with("status 502 Bad Gateway: <html>oops</html>"),
            "{e}"
        );
    }

    #[test]
    fn urls_in_messages_hide_credentials() {
        let u = Url::parse("https://user:pw@h.test/p?token=abc&page%5Bafter%5D=c1").unwrap();
        let r = redact_url(&u);
        assert!(!r.contains("pw") && !r.contains("abc"), "{r}");
        assert!(r.contains("page%5Bafter%5D=c1"), "{r}");
    }
}
