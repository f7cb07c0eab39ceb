//! HTTP to Konnect: hosts, authentication, timeouts, retries, errors.
//!
//! Every request carries `Authorization: Bearer <PAT>`, `Accept:
//! application/json` and a `User-Agent`, has a timeout, and is retried with
//! exponential backoff and full jitter on connection errors, timeouts, 429
//! (honouring `Retry-After`) and 5xx, never on other statuses. Errors keep
//! what a user needs to act: the request, the status, the problem+json
//! `title`/`detail`/`invalid_parameters` and the `instance` trace id.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::login::Credential;

/// The two Konnect hosts: the region's (webhook) and the global one
/// (destinations). `--base-url` replaces both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosts {
    pub regional: Url,
    pub global: Url,
}

impl Hosts {
    /// `https://<region>.api.<domain>` and `https://global.api.<domain>`
    /// (`domain` is `konghq.com`, or `konghq.tech` for `--konnect-env
    /// tech`), or `base_url` for both.
    pub fn resolve(base_url: Option<&str>, region: &str, domain: &str) -> Result<Hosts, String> {
        if let Some(base) = base_url {
            let url = Url::parse(base)
                .map_err(|e| format!("invalid --base-url {base:?}: {e}"))
                .and_then(|u| match u.scheme() {
                    "http" | "https" if u.host().is_some() => Ok(u),
                    _ => Err(format!(
                        "invalid --base-url {base:?}: use an absolute http(s) URL such as https://us.api.konghq.com"
                    )),
                })?;
            return Ok(Hosts {
                regional: url.clone(),
                global: url,
            });
        }
        let global = format!("https://global.api.{domain}");
        let regional = if region == "global" {
            global.clone()
        } else {
            format!("https://{region}.api.{domain}")
        };
        Ok(Hosts {
            regional: Url::parse(&regional)
                .map_err(|e| format!("invalid region {region:?}: {e}"))?,
            global: Url::parse(&global)
                .map_err(|e| format!("invalid Konnect host {global}: {e}"))?,
        })
    }
}

impl Hosts {
    /// The URL of `path` (with an optional query) on `host`. The base URL's
    /// own path, if any, is kept as a prefix.
    pub fn url(&self, host: Host, path: &str, query: &[(&str, &str)]) -> Url {
        let base = match host {
            Host::Regional => &self.regional,
            Host::Global => &self.global,
        };
        let mut url = base.clone();
        let prefix = base.path().trim_end_matches('/');
        url.set_path(&format!("{prefix}{path}"));
        url.set_query(None);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }
}

/// Which Konnect host a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Regional,
    Global,
}

/// Timeouts and the retry schedule.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_attempts: 4,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(5),
        }
    }
}

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
    fn from_response(method: Method, url: &Url, status: StatusCode, body: &[u8]) -> ApiError {
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

/// A 2xx response.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
    pub url: Url,
    pub method: Method,
}

impl Response {
    /// The body as JSON (an empty body is `null`).
    pub fn json(&self) -> Result<serde_json::Value, KonnectError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| KonnectError::Decode {
            method: self.method.clone(),
            url: redact_url(&self.url),
            reason: format!("body is not JSON: {e}"),
        })
    }
}

/// How a single call may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Retry transient failures (safe for GET, PATCH to a fixed state,
    /// DELETE).
    Transient,
    /// One attempt; the caller decides (a POST that may have taken effect).
    Once,
}

/// A Konnect API client.
#[derive(Clone)]
pub struct KonnectClient {
    http: reqwest::Client,
    hosts: Hosts,
    credential: std::sync::Arc<Credential>,
    options: ClientOptions,
}

impl fmt::Debug for KonnectClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KonnectClient")
            .field("hosts", &self.hosts)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl KonnectClient {
    pub fn new(
        hosts: Hosts,
        credential: impl Into<Credential>,
        options: ClientOptions,
    ) -> Result<Self, KonnectError> {
        // reqwest is built with `rustls-no-provider` so that ring, not
        // aws-lc-rs (a C build), does the crypto; it then takes the process
        // default provider. `Err` means one is installed already: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("kongctl/", env!("CARGO_PKG_VERSION"), " (rust)"))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| KonnectError::Setup(error_chain(&e)))?;
        Ok(KonnectClient {
            http,
            hosts,
            credential: std::sync::Arc::new(credential.into()),
            options,
        })
    }

    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The URL of `path` (with an optional query) on `host`. The base URL's
    /// own path, if any, is kept as a prefix.
    pub fn url(&self, host: Host, path: &str, query: &[(&str, &str)]) -> Url {
        self.hosts.url(host, path, query)
    }

    /// Sends one call, retrying transient failures as `retry` allows, until
    /// `deadline` (if any) would be passed. Returns the 2xx response, or the
    /// last error.
    pub async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        retry: Retry,
        deadline: Option<Instant>,
    ) -> Result<Response, KonnectError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = self
                .attempt(method.clone(), url.clone(), body, deadline)
                .await;
            let (err, retry_after) = match result {
                Ok(resp) => return Ok(resp),
                Err(e) => e,
            };
            if retry == Retry::Once || !err.is_transient() || attempt >= self.options.max_attempts {
                return Err(err);
            }
            let wait = retry_after.unwrap_or_else(|| backoff(&self.options, attempt));
            if let Some(d) = deadline
                && Instant::now() + wait >= d
            {
                return Err(err);
            }
            tracing::warn!(
                %method,
                url = %redact_url(&url),
                attempt,
                wait_ms = wait.as_millis() as u64,
                error = %err,
                "Konnect call failed, retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// The wait before attempt `attempt + 1` after a transient failure.
    pub fn backoff(&self, attempt: u32) -> Duration {
        backoff(&self.options, attempt)
    }

    async fn attempt(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        deadline: Option<Instant>,
    ) -> Result<Response, (KonnectError, Option<Duration>)> {
        let mut timeout = self.options.request_timeout;
        if let Some(d) = deadline {
            timeout = timeout.min(d.saturating_duration_since(Instant::now()));
        }
        let token = self
            .credential
            .bearer(&self.http, timeout)
            .await
            .map_err(|e| (e, None))?;
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(timeout);
        if let Some(b) = body {
            req = req.json(b);
        }
        let started = Instant::now();
        let transport = |e: reqwest::Error| {
            // A request that got no answer can be retried; a malformed
            // request or an unusable URL cannot.
            let transient = e.is_connect() || e.is_timeout() || e.is_request() || e.is_body();
            let mut reason = error_chain(&e);
            if e.is_timeout() {
                reason = format!(
                    "no response within {:.1}s ({reason})",
                    timeout.as_secs_f64()
                );
            }
            (
                KonnectError::Transport {
                    method: method.clone(),
                    url: redact_url(&url),
                    reason,
                    transient,
                },
                None,
            )
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after)
            .map(|d| d.min(self.options.backoff_max * 6));
        let body = resp.bytes().await.map_err(transport)?;
        tracing::debug!(
            %method,
            url = %redact_url(&url),
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Konnect call"
        );
        if status.is_success() {
            Ok(Response {
                status,
                body,
                url,
                method,
            })
        } else {
            let mut err = ApiError::from_response(method, &url, status, &body);
            err.retry_after = retry_after;
            Err((KonnectError::Api(Box::new(err)), retry_after))
        }
    }
}

fn retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Exponential backoff with full jitter: a random wait in
/// `[base*2^(attempt-1) / 2, base*2^(attempt-1)]`, capped at `backoff_max`.
fn backoff(options: &ClientOptions, attempt: u32) -> Duration {
    let exp = options
        .backoff_base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let cap = exp.min(options.backoff_max);
    let jitter: f64 = rand::random::<f64>();
    cap.mul_f64(0.5 + 0.5 * jitter)
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
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
    fn hosts_follow_region_and_base_url() {
        let h = Hosts::resolve(None, "eu", "konghq.com").unwrap();
        assert_eq!(h.regional.as_str(), "https://eu.api.konghq.com/");
        assert_eq!(h.global.as_str(), "https://global.api.konghq.com/");
        let h = Hosts::resolve(None, "global", "konghq.com").unwrap();
        assert_eq!(h.regional, h.global);
        let h = Hosts::resolve(Some("http://127.0.0.1:9"), "eu", "konghq.com").unwrap();
        assert_eq!(h.regional.as_str(), "http://127.0.0.1:9/");
        assert_eq!(h.global, h.regional);
        assert!(Hosts::resolve(Some("127.0.0.1:9"), "us", "konghq.com").is_err());
        assert!(Hosts::resolve(Some("ftp://x"), "us", "konghq.com").is_err());
        let h = Hosts::resolve(None, "au", "konghq.tech").unwrap();
        assert_eq!(h.regional.as_str(), "https://au.api.konghq.tech/");
        assert_eq!(h.global.as_str(), "https://global.api.konghq.tech/");
    }

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
    fn backoff_grows_and_is_capped() {
        let o = ClientOptions::default();
        for attempt in 1..10 {
            let w = backoff(&o, attempt);
            let full = o
                .backoff_base
                .saturating_mul(1 << (attempt - 1))
                .min(o.backoff_max);
            assert!(w >= full / 2 && w <= full, "attempt {attempt}: {w:?}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn urls_in_messages_hide_credentials() {
        let u = Url::parse("https://user:pw@h.test/p?token=abc&page%5Bafter%5D=c1").unwrap();
        let r = redact_url(&u);
        assert!(!r.contains("pw") && !r.contains("abc"), "{r}");
        assert!(r.contains("page%5Bafter%5D=c1"), "{r}");
    }
}
