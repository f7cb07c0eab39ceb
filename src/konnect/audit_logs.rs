//! The audit-log endpoints: the regional webhook and the org's destinations.
//!
//! Calls, hosts and payloads follow the original kongctl so the two behave
//! the same against real Konnect: the webhook is read with v2 and pointed at
//! a destination with v3, destinations live on the global host (v3), and
//! release is `PATCH v2 {"enabled":false}` then `DELETE v3`. Reading is
//! tolerant (Konnect's payloads have moved between versions); writing is
//! exactly what the OpenAPI specs describe.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::{Host, KonnectClient, Retry};
use super::error::KonnectError;

/// The regional webhook as GET /v2/audit-log-webhook shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookState {
    pub enabled: bool,
    pub endpoint: String,
}

impl WebhookState {
    /// `enabled=false` and `endpoint="unconfigured"` (any case): nobody uses
    /// the region's webhook.
    pub fn is_unconfigured(&self) -> bool {
        !self.enabled && self.endpoint.eq_ignore_ascii_case("unconfigured")
    }
}

/// An audit-log destination. `authorization` is write-only in Konnect and
/// never part of this type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub log_format: Option<String>,
    #[serde(default)]
    pub skip_ssl_verification: Option<bool>,
}

/// What `create_destination` sends.
pub struct NewDestination<'a> {
    pub name: &'a str,
    pub endpoint: &'a str,
    pub log_format: &'a str,
    pub skip_ssl_verification: bool,
    pub authorization: &'a str,
}

/// Result of deleting something that may already be gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Deleted,
    AlreadyGone,
}

/// Audit-log operations over a [`KonnectClient`].
#[derive(Debug, Clone)]
pub struct AuditLogs {
    client: KonnectClient,
}

impl AuditLogs {
    pub fn new(client: KonnectClient) -> Self {
        AuditLogs { client }
    }

    pub fn client(&self) -> &KonnectClient {
        &self.client
    }

    /// GET {regional}/v2/audit-log-webhook.
    pub async fn webhook(&self) -> Result<WebhookState, KonnectError> {
        let url = self
            .client
            .url(Host::Regional, "/v2/audit-log-webhook", &[]);
        let resp = self
            .client
            .call(Method::GET, url, None, Retry::Transient, None)
            .await?;
        let body = resp.json()?;
        // The original searches the whole document for the first `enabled`
        // boolean and the first non-empty `endpoint`; do the same so a
        // wrapped payload (`{"data": {...}}`) reads the same.
        Ok(WebhookState {
            enabled: find_first(&body, &|k, v| k == "enabled" && v.is_boolean())
                .and_then(Value::as_bool)
                .unwrap_or(false),
            endpoint: find_first(&body, &|k, v| {
                k == "endpoint" && v.as_str().is_some_and(|s| !s.trim().is_empty())
            })
            .and_then(Value::as_str)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        })
    }

    /// GET {regional}/v2/audit-log-webhook/jwks.json: the public keys that
    /// sign the region's audit records, as the raw JWKS document (kept as
    /// is in `jwks.json`). Sent with the token (the v2 spec's security
    /// applies to it), retried like the other reads, until `deadline`.
    pub async fn jwks(&self, deadline: Option<Instant>) -> Result<bytes::Bytes, KonnectError> {
        let url = self
            .client
            .url(Host::Regional, "/v2/audit-log-webhook/jwks.json", &[]);
        let resp = self
            .client
            .call(Method::GET, url, None, Retry::Transient, deadline)
            .await?;
        Ok(resp.body)
    }

    /// GET {regional}/v3/audit-log-webhook: the destination id the webhook
    /// points at, if any (404 means none).
    pub async fn webhook_destination(&self) -> Result<Option<String>, KonnectError> {
        let url = self
            .client
            .url(Host::Regional, "/v3/audit-log-webhook", &[]);
        match self
            .client
            .call(Method::GET, url, None, Retry::Transient, None)
            .await
        {
            Ok(resp) => Ok(resp
                .json()?
                .get("audit_log_destination_id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every destination called exactly `name`, over all pages of
    /// GET {global}/v3/audit-log-destinations (filtered by name where
    /// Konnect supports it; every item is still compared).
    pub async fn destinations_named(&self, name: &str) -> Result<Vec<Destination>, KonnectError> {
        let items = self.destination_pages(Some(name)).await?;
        Ok(items
            .iter()
            .filter(|item| item.get("name").and_then(Value::as_str) == Some(name))
            .filter_map(|item| serde_json::from_value::<Destination>(item.clone()).ok())
            .collect())
    }

    /// Every destination of the organisation, as Konnect shows them, over
    /// all pages (the original reads only the first).
    pub async fn all_destinations(&self) -> Result<Vec<Value>, KonnectError> {
        self.destination_pages(None).await
    }

    /// The items of every page of GET {global}/v3/audit-log-destinations,
    /// optionally with `filter[name][eq]`.
    async fn destination_pages(&self, name: Option<&str>) -> Result<Vec<Value>, KonnectError> {
        let mut found = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0usize;
        loop {
            pages += 1;
            let mut query = vec![("page[size]", "100")];
            if let Some(name) = name {
                query.push(("filter[name][eq]", name));
            }
            if let Some(a) = &after {
                query.push(("page[after]", a));
            }
            let url = self
                .client
                .url(Host::Global, "/v3/audit-log-destinations", &query);
            let resp = self
                .client
                .call(Method::GET, url.clone(), None, Retry::Transient, None)
                .await?;
            let mut body = resp.json()?;
            let items = super::take_page_items(&mut body);
            let empty = items.is_empty();
            found.extend(items);
            let next = next_cursor(&body);
            match next {
                Some(cursor) if !empty && Some(&cursor) != after.as_ref() => {
                    after = Some(cursor);
                }
                _ => break,
            }
            if pages >= 10_000 {
                return Err(KonnectError::Decode {
                    method: Method::GET,
                    url: url.to_string(),
                    reason: "destination list does not end (more than 10000 pages)".into(),
                });
            }
        }
        Ok(found)
    }

    /// GET {global}/v3/audit-log-destinations/{id}; `None` for 404.
    pub async fn destination(&self, id: &str) -> Result<Option<Destination>, KonnectError> {
        let path = format!("/v3/audit-log-destinations/{}", path_segment(id));
        let url = self.client.url(Host::Global, &path, &[]);
        match self
            .client
            .call(Method::GET, url.clone(), None, Retry::Transient, None)
            .await
        {
            Ok(resp) => {
                let body = resp.json()?;
                // Tolerate a `{"data": {...}}` wrapper, as reading does
                // elsewhere.
                let item = body.get("data").filter(|d| d.is_object()).unwrap_or(&body);
                serde_json::from_value(item.clone())
                    .map(Some)
                    .map_err(|e| KonnectError::Decode {
                        method: Method::GET,
                        url: url.to_string(),
                        reason: format!("not an audit-log destination: {e}"),
                    })
            }
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET {regional}/v2/audit-log-webhook, as Konnect shows it.
    pub async fn webhook_document(&self) -> Result<Value, KonnectError> {
        self.get_json(Host::Regional, "/v2/audit-log-webhook")
            .await
            .map(|v| v.unwrap_or(Value::Null))
    }

    /// GET {regional}/v3/audit-log-webhook; `None` on 404 (no destination
    /// attached).
    pub async fn webhook_v3_document(&self) -> Result<Option<Value>, KonnectError> {
        self.get_json(Host::Regional, "/v3/audit-log-webhook").await
    }

    /// The webhook's delivery status: GET {regional}/v3/audit-log-webhook/status,
    /// else the v2 one; `None` if neither exists.
    pub async fn webhook_status_document(&self) -> Result<Option<Value>, KonnectError> {
        match self
            .get_json(Host::Regional, &super::Stream::Org.status_path())
            .await?
        {
            Some(v) => Ok(Some(v)),
            None => {
                self.get_json(Host::Regional, "/v2/audit-log-webhook/status")
                    .await
            }
        }
    }

    /// GET {regional}/v3/audit-log-replay-job, or the portal's; `None` on
    /// 404.
    pub async fn replay_job_document(
        &self,
        stream: &super::Stream,
    ) -> Result<Option<Value>, KonnectError> {
        self.get_json(Host::Regional, &stream.replay_job_path())
            .await
    }

    /// A GET's JSON body; `None` on 404.
    pub(super) async fn get_json(
        &self,
        host: Host,
        path: &str,
    ) -> Result<Option<Value>, KonnectError> {
        let url = self.client.url(host, path, &[]);
        match self
            .client
            .call(Method::GET, url, None, Retry::Transient, None)
            .await
        {
            Ok(resp) => resp.json().map(Some),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// POST {global}/v3/audit-log-destinations.
    ///
    /// A POST that fails without a clear answer (connection lost, timeout,
    /// 429, 5xx) may still have created the destination; before trying
    /// again the name is looked up, and a destination found by it (the name
    /// is unique: it was checked before) is adopted instead of creating a
    /// second one. If that lookup fails too, the create is not tried again
    /// (it could make a second destination) and the error is returned.
    pub async fn create_destination(
        &self,
        new: &NewDestination<'_>,
    ) -> Result<Destination, KonnectError> {
        let body = json!({
            "name": new.name,
            "endpoint": new.endpoint,
            "log_format": new.log_format,
            "skip_ssl_verification": new.skip_ssl_verification,
            "authorization": new.authorization,
        });
        let url = self
            .client
            .url(Host::Global, "/v3/audit-log-destinations", &[]);
        let max = self.client.options().max_attempts;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .client
                .call(Method::POST, url.clone(), Some(&body), Retry::Once, None)
                .await
            {
                Ok(resp) => {
                    let value = resp.json()?;
                    return destination_from_response(&value, new).ok_or_else(|| {
                        KonnectError::Decode {
                            method: Method::POST,
                            url: url.to_string(),
                            reason: "destination created but no destination ID was returned".into(),
                        }
                    });
                }
                Err(e) if e.is_transient() && attempt < max => {
                    let wait = e
                        .retry_after()
                        .unwrap_or_else(|| self.client.backoff(attempt));
                    tokio::time::sleep(wait).await;
                    match self.destinations_named(new.name).await {
                        Ok(mut existing) => {
                            if let Some(d) = existing.pop() {
                                tracing::warn!(
                                    destination_id = %d.id,
                                    error = %e,
                                    "destination create failed without a clear answer but the destination exists; using it"
                                );
                                return Ok(d);
                            }
                        }
                        // Whether the failed create took effect is unknown:
                        // another POST could make a second destination. Stop;
                        // the caller's undo looks the name up again.
                        Err(lookup) => {
                            tracing::warn!(error = %e, lookup_error = %lookup, "destination create failed and the name lookup too; not retrying");
                            return Err(e);
                        }
                    }
                    tracing::warn!(attempt, error = %e, "destination create failed, retrying");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// PATCH {regional}/v3/audit-log-webhook: point the webhook at
    /// `destination_id` and enable it.
    pub async fn attach_webhook(&self, destination_id: &str) -> Result<(), KonnectError> {
        let url = self
            .client
            .url(Host::Regional, "/v3/audit-log-webhook", &[]);
        let body = json!({ "audit_log_destination_id": destination_id, "enabled": true });
        self.client
            .call(Method::PATCH, url, Some(&body), Retry::Transient, None)
            .await?;
        Ok(())
    }

    /// Disable (PATCH v2 `{"enabled":false}`) then delete (DELETE v3) the
    /// regional webhook. 404 counts as done.
    pub async fn release_webhook(&self, deadline: Option<Instant>) -> Result<(), KonnectError> {
        let url = self
            .client
            .url(Host::Regional, "/v2/audit-log-webhook", &[]);
        let body = json!({ "enabled": false });
        match self
            .client
            .call(Method::PATCH, url, Some(&body), Retry::Transient, deadline)
            .await
        {
            Ok(_) => {}
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {}
            Err(e) => return Err(e),
        }
        let url = self
            .client
            .url(Host::Regional, "/v3/audit-log-webhook", &[]);
        match self
            .client
            .call(Method::DELETE, url, None, Retry::Transient, deadline)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// DELETE {global}/v3/audit-log-destinations/{id}, waiting out 409
    /// "destination is in use" (Konnect releases the webhook's reference
    /// asynchronously) with backoff from 250 ms doubling to 5 s, until
    /// `deadline`. 404 counts as gone.
    pub async fn delete_destination(
        &self,
        id: &str,
        deadline: Instant,
    ) -> Result<Removal, KonnectError> {
        let path = format!("/v3/audit-log-destinations/{}", path_segment(id));
        let url = self.client.url(Host::Global, &path, &[]);
        self.delete_waiting(url, deadline, &|e| {
            e.api().is_some_and(|a| a.mentions("destination is in use"))
        })
        .await
    }

    /// DELETE `url`, waiting out the 409s `wait_out` accepts with backoff
    /// from 250 ms doubling to 5 s, until `deadline` (any other 409 is an
    /// error at once). 404 counts as gone.
    pub(super) async fn delete_waiting(
        &self,
        url: reqwest::Url,
        deadline: Instant,
        wait_out: &dyn Fn(&KonnectError) -> bool,
    ) -> Result<Removal, KonnectError> {
        let mut wait = Duration::from_millis(250);
        loop {
            match self
                .client
                .call(
                    Method::DELETE,
                    url.clone(),
                    None,
                    Retry::Transient,
                    Some(deadline),
                )
                .await
            {
                Ok(_) => return Ok(Removal::Deleted),
                Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {
                    return Ok(Removal::AlreadyGone);
                }
                Err(e) if e.status() == Some(StatusCode::CONFLICT) && wait_out(&e) => {
                    if Instant::now() + wait >= deadline {
                        return Err(e);
                    }
                    tracing::info!(
                        url = %super::error::redact_url(&url),
                        wait_ms = wait.as_millis() as u64,
                        "delete conflicts, waiting"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The destination in a create response: the original takes the first
/// non-empty string under `id`, `audit_log_destination_id` or
/// `destination_id` anywhere in the document.
fn destination_from_response(value: &Value, new: &NewDestination<'_>) -> Option<Destination> {
    let id = find_first(value, &|k, v| {
        matches!(k, "id" | "audit_log_destination_id" | "destination_id")
            && v.as_str().is_some_and(|s| !s.trim().is_empty())
    })?
    .as_str()?
    .trim()
    .to_string();
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    Some(Destination {
        id,
        name: text("name").unwrap_or_else(|| new.name.to_string()),
        endpoint: text("endpoint").unwrap_or_else(|| new.endpoint.to_string()),
        log_format: text("log_format").or_else(|| Some(new.log_format.to_string())),
        skip_ssl_verification: value
            .get("skip_ssl_verification")
            .and_then(Value::as_bool)
            .or(Some(new.skip_ssl_verification)),
    })
}

/// The cursor of the next page: `meta.next` (or `meta.page.next`) is a URI
/// such as `/v3/audit-log-destinations?page[after]=abc`, or a bare cursor.
fn next_cursor(body: &Value) -> Option<String> {
    let meta = body.get("meta")?;
    let next = meta
        .get("next")
        .or_else(|| meta.get("page").and_then(|p| p.get("next")))?
        .as_str()?
        .trim();
    if next.is_empty() {
        return None;
    }
    if !next.contains('?') && !next.contains('/') {
        return Some(next.to_string());
    }
    let base = reqwest::Url::parse("http://cursor.invalid/").expect("constant URL parses");
    let url = base.join(next).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "page[after]")
        .map(|(_, v)| v.into_owned())
}

/// Depth-first search for the first `key: value` pair that `pred` accepts.
fn find_first<'a>(value: &'a Value, pred: &dyn Fn(&str, &Value) -> bool) -> Option<&'a Value> {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if pred(k, v) {
                    return Some(v);
                }
            }
            map.values().find_map(|v| find_first(v, pred))
        }
        Value::Array(items) => items.iter().find_map(|v| find_first(v, pred)),
        _ => None,
    }
}

/// Percent-encodes an id for use as one path segment.
pub(super) fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconfigured_sentinel_is_case_insensitive() {
        let w = WebhookState {
            enabled: false,
            endpoint: "UNCONFIGURED".into(),
        };
        assert!(w.is_unconfigured());
        let w = WebhookState {
            enabled: true,
            endpoint: "unconfigured".into(),
        };
        assert!(!w.is_unconfigured());
    }

    #[test]
    fn first_bool_search_goes_deep() {
        let v = json!({"data": {"config": {"enabled": true, "endpoint": "https://x"}}});
        assert_eq!(
            find_first(&v, &|k, v| k == "enabled" && v.is_boolean()),
            Some(&json!(true))
        );
        assert_eq!(
            find_first(&json!([1, {"a": 2}]), &|k, _| k == "enabled"),
            None
        );
    }

    #[test]
    fn next_cursor_reads_uri_or_bare_cursor() {
        let b = json!({"meta": {"next": "/v3/audit-log-destinations?page%5Bafter%5D=abc&page%5Bsize%5D=10"}});
        assert_eq!(next_cursor(&b).as_deref(), Some("abc"));
        let b = json!({"meta": {"next": "/v3/audit-log-destinations?page[after]=xyz"}});
        assert_eq!(next_cursor(&b).as_deref(), Some("xyz"));
        assert_eq!(
            next_cursor(&json!({"meta": {"page": {"next": "c2"}}})).as_deref(),
            Some("c2")
        );
        assert_eq!(next_cursor(&json!({"meta": {"next": null}})), None);
        assert_eq!(next_cursor(&json!({})), None);
    }

    #[test]
    fn destination_id_found_under_any_known_key() {
        let new = NewDestination {
            name: "n",
            endpoint: "https://e",
            log_format: "json",
            skip_ssl_verification: false,
            authorization: "a",
        };
        let d =
            destination_from_response(&json!({"data": {"audit_log_destination_id": "d1"}}), &new)
                .unwrap();
        assert_eq!(d.id, "d1");
        assert_eq!(d.name, "n");
        assert!(destination_from_response(&json!({"name": "n"}), &new).is_none());
    }

    #[test]
    fn ids_are_escaped_as_one_segment() {
        assert_eq!(path_segment("ab-1"), "ab-1");
        assert_eq!(path_segment("a/../b"), "a%2F..%2Fb");
    }
}
