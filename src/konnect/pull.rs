//! One page of Konnect's audit-log pull API, `GET {regional}/v3/audit-logs`.
//!
//! The request carries upstream kongctl's parameters (`page[size]`,
//! `filter[ts][gte]`, `filter[ts][lte]` in UTC, `filter[type]`,
//! `page[after]`), percent-encoded. The answer must have a `data` array and
//! a `meta` object (upstream's checks and words); each entry of `data` is
//! kept as the bytes Konnect sent, so unknown fields, key order and integers
//! beyond 2^53 reach the output untouched. The next cursor is read from
//! `meta.page.next` (or `meta.next`): a path such as
//! `/audit-logs?page[after]=…` (relative to the API version, as in the v3
//! spec's example) or a URL gives its `page[after]`; anything else is the
//! cursor itself.
//!
//! One call is one attempt: windows, retries and following are the pull
//! source's (`source/pull.rs`), which has to decide them per page.

use std::time::SystemTime;

use jiff::Timestamp;
use reqwest::Method;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::audit_logs::AuditLogs;
use super::client::{Host, Retry};
use super::error::KonnectError;
use crate::record::{EventType, Record};

/// What one page request asks for.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub gte: Option<Timestamp>,
    pub lte: Option<Timestamp>,
    pub kind: Option<EventType>,
    pub size: u32,
    pub after: Option<String>,
}

/// One page of records.
#[derive(Debug)]
pub struct Page {
    pub records: Vec<Record>,
    /// The cursor of the next page; `None` on the last one.
    pub next: Option<String>,
    /// Konnect's clock when it answered, and ours when the answer came.
    pub date: Option<SystemTime>,
    pub received_at: SystemTime,
}

impl AuditLogs {
    /// GET {regional}/v3/audit-logs: one attempt, no retries.
    pub async fn audit_log_page(&self, request: &PageRequest) -> Result<Page, KonnectError> {
        let size = request.size.to_string();
        let gte = request.gte.map(utc);
        let lte = request.lte.map(utc);
        let mut query: Vec<(&str, &str)> = vec![("page[size]", &size)];
        if let Some(gte) = &gte {
            query.push(("filter[ts][gte]", gte));
        }
        if let Some(lte) = &lte {
            query.push(("filter[ts][lte]", lte));
        }
        if let Some(kind) = request.kind {
            query.push(("filter[type]", kind.as_str()));
        }
        if let Some(after) = &request.after {
            query.push(("page[after]", after));
        }
        let client = self.client();
        let url = client.url(Host::Regional, "/v3/audit-logs", &query);
        let resp = client
            .call(Method::GET, url, None, Retry::Once, None)
            .await?;
        let decode = |reason: String| KonnectError::Decode {
            method: resp.method.clone(),
            url: super::error::redact_url(&resp.url),
            reason,
        };
        let (records, next) = parse_page(&resp.body).map_err(decode)?;
        Ok(Page {
            records,
            next,
            date: resp.date,
            received_at: resp.received_at,
        })
    }
}

/// `time.RFC3339Nano` in UTC, as upstream sends the bounds.
fn utc(t: Timestamp) -> String {
    t.to_string()
}

/// The records and the next cursor of a page body.
pub fn parse_page(body: &[u8]) -> Result<(Vec<Record>, Option<String>), String> {
    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        data: Option<Vec<&'a RawValue>>,
        #[serde(borrow)]
        meta: Option<&'a RawValue>,
    }
    let body: Body = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let data = body.data.ok_or("missing data array")?;
    let meta = body
        .meta
        .filter(|m| m.get().trim_start().starts_with('{'))
        .ok_or("missing pagination metadata")?;
    let meta: serde_json::Value = serde_json::from_str(meta.get())
        .map_err(|e| format!("invalid pagination metadata: {e}"))?;
    let next = next_cursor(&meta)?;
    let records = data
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            Record::from_slice(raw.get().as_bytes())
                .map_err(|e| format!("data[{i}] is not an audit-log record: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((records, next))
}

/// The cursor in `meta.next` or `meta.page.next` (a string or null).
fn next_cursor(meta: &serde_json::Value) -> Result<Option<String>, String> {
    let next = meta
        .get("next")
        .filter(|v| !v.is_null())
        .or_else(|| meta.get("page").and_then(|p| p.get("next")));
    let next = match next {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(s)) => s.trim(),
        Some(other) => return Err(format!("invalid next-page link {other}")),
    };
    if next.is_empty() {
        return Ok(None);
    }
    let is_link = next.starts_with('/') || next.contains("://");
    if !is_link {
        return Ok(Some(next.to_string()));
    }
    let base = reqwest::Url::parse("http://konnect.invalid/v3/").expect("constant URL parses");
    let url = base
        .join(next)
        .map_err(|e| format!("invalid next-page link {next:?}: {e}"))?;
    url.query_pairs()
        .find(|(k, _)| k == "page[after]")
        .map(|(_, v)| Some(v.into_owned()))
        .filter(|v| v.as_deref().is_some_and(|v| !v.is_empty()))
        .ok_or_else(|| "next-page link does not contain page[after]".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_keep_each_record_byte_for_byte() {
        let body = br#"{"data":[{"ts":"2026-01-01T00:00:00Z","type":"authorization","n":18446744073709551617,"z":1,"a":2}, {"ts":"2026-01-01T00:00:01Z"}],"meta":{"page":{"next":"/audit-logs?page%5Bsize%5D=2&page%5Bafter%5D=abc","previous":null,"size":2}}}"#;
        let (records, next) = parse_page(body).unwrap();
        assert_eq!(
            records[0].raw(),
            br#"{"ts":"2026-01-01T00:00:00Z","type":"authorization","n":18446744073709551617,"z":1,"a":2}"#.as_slice()
        );
        assert_eq!(records.len(), 2);
        assert_eq!(next.as_deref(), Some("abc"));
    }

    #[test]
    fn cursors_come_from_links_or_stand_alone() {
        let cursor = |meta: serde_json::Value| next_cursor(&meta);
        assert_eq!(
            cursor(serde_json::json!({"page": {"next": "/audit-logs?page[after]=x1"}})),
            Ok(Some("x1".into()))
        );
        assert_eq!(
            cursor(
                serde_json::json!({"next": "https://us.api.konghq.com/v3/audit-logs?page%5Bafter%5D=x2"})
            ),
            Ok(Some("x2".into()))
        );
        assert_eq!(
            cursor(serde_json::json!({"page": {"next": "opaque"}})),
            Ok(Some("opaque".into()))
        );
        assert_eq!(
            cursor(serde_json::json!({"page": {"next": null}})),
            Ok(None)
        );
        assert_eq!(cursor(serde_json::json!({"page": {}})), Ok(None));
        assert_eq!(
            cursor(serde_json::json!({"page": {"next": "/audit-logs?page[before]=x"}})),
            Err("next-page link does not contain page[after]".into())
        );
    }

    #[test]
    fn a_body_without_data_or_meta_is_refused_with_upstreams_words() {
        assert_eq!(
            parse_page(br#"{"meta":{}}"#).unwrap_err(),
            "missing data array"
        );
        assert_eq!(
            parse_page(br#"{"data":[]}"#).unwrap_err(),
            "missing pagination metadata"
        );
        assert!(
            parse_page(br#"{"data":[1],"meta":{}}"#)
                .unwrap_err()
                .starts_with("data[0] is not an audit-log record")
        );
    }
}
