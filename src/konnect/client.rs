//! HTTP to Konnect: hosts, authentication, timeouts, retries.
//!
//! Every request carries `Authorization: Bearer <PAT>`, `Accept:
//! application/json` and a `User-Agent`, has a timeout, and is retried with
//! exponential backoff and full jitter on connection errors, timeouts, 429
//! (honouring `Retry-After`) and 5xx, never on other statuses. A failed call
//! becomes a [`KonnectError`] (see `error`), which keeps what a user needs to
//! act: the request, the status, the problem+json
//! `title`/`detail`/`invalid_parameters` and the `instance` trace id.

use std::fmt;
use std::time::{Duration, Instant};

use super::error::{ApiError, KonnectError, error_chain, redact_url};
use super::login::{Credential, LoginToken};
use crate::config::{Auth, Settings};
use bytes::Bytes;
use reqwest::{Method, StatusCode, Url};

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

impl ClientOptions {
    /// The defaults, with `KONGCTL_KONNECT_TIMEOUT` (a duration such as
    /// `5s`) as the request timeout if set (tests use it to fail fast).
    pub fn from_env() -> ClientOptions {
        let mut o = ClientOptions::default();
        if let Some(t) = std::env::var("KONGCTL_KONNECT_TIMEOUT")
            .ok()
            .and_then(|v| crate::time::positive_duration(&v))
        {
            o.request_timeout = t;
            o.connect_timeout = o.connect_timeout.min(t);
        }
        o
    }
}

/// A 2xx response.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
    pub url: Url,
    pub method: Method,
    /// Konnect's clock when it answered (its `Date` header, whole seconds),
    /// and this machine's clock when the answer arrived: together, how far
    /// apart the two clocks are.
    pub date: Option<std::time::SystemTime>,
    pub received_at: std::time::SystemTime,
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
    /// The client every command uses: the hosts of `settings`
    /// (`--base-url` or the region's), and the PAT, else the login token
    /// file (renewed as it expires), as [`Settings::auth`] picks.
    pub fn from_settings(settings: &Settings, options: ClientOptions) -> Result<Self, String> {
        let hosts = Hosts::resolve(
            settings.base_url.as_deref(),
            &settings.region,
            settings.konnect_domain,
        )?;
        let credential = match settings.auth()? {
            Auth::Pat(pat) => Credential::Pat(pat),
            Auth::LoginFile(path) => {
                let refresh = hosts.url(Host::Regional, &settings.refresh_path, &[]);
                Credential::Login(LoginToken::new(path, refresh))
            }
        };
        KonnectClient::new(hosts, credential, options).map_err(|e| e.to_string())
    }

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
        let date = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::time::parse_http_date);
        let received_at = std::time::SystemTime::now();
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
                date,
                received_at,
            })
        } else {
            let mut err = ApiError::from_response(method, &url, status, &body);
            err.retry_after = retry_after;
            Err((KonnectError::Api(Box::new(err)), retry_after))
        }
    }
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
    let when = crate::time::parse_http_date(v)?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
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
}
