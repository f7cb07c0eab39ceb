//! Dev Portal audit logs: the region's portals and each portal's own
//! audit-log webhook (`/v3/portals/{id}/audit-log-webhook`).
//!
//! A Dev Portal's developer logins are a second audit-log stream beside the
//! organisation's: the portal's webhook points at one of the organisation's
//! destinations (the same objects `audit_logs` creates, on the global host),
//! and the portal has its own replay job and delivery status (those are
//! `replay_job`'s, by [`Stream`]). Everything here is on the regional host:
//! the portal API has no global server.
//!
//! Calls and bodies follow the portal-management v3 spec exactly: the
//! portal list pages by number (`page[number]`, `meta.page.total`), the
//! webhook takes `{audit_log_destination_id, enabled}` and nothing else.
//! Turning a lookup into a message for users is left to the commands; what
//! a listener does with a portal's webhook (guard, attach, release) is
//! `crate::listen`'s.

use std::fmt;
use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::audit_logs::{AuditLogs, Removal, path_segment};
use super::client::{Host, Retry};
use super::error::KonnectError;

/// One of the two kinds of audit-log stream: the organisation's (the
/// region's webhook) or one Dev Portal's (that portal's webhook).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    Org,
    /// A portal, by id.
    Portal(String),
}

impl Stream {
    /// The path of this stream's webhook (GET/PATCH/DELETE).
    pub fn webhook_path(&self) -> String {
        match self {
            Stream::Org => "/v3/audit-log-webhook".into(),
            Stream::Portal(id) => format!("/v3/portals/{}/audit-log-webhook", path_segment(id)),
        }
    }

    /// The path of this stream's webhook delivery status.
    pub fn status_path(&self) -> String {
        format!("{}/status", self.webhook_path())
    }

    /// The path of this stream's replay job.
    pub fn replay_job_path(&self) -> String {
        match self {
            Stream::Org => "/v3/audit-log-replay-job".into(),
            Stream::Portal(id) => {
                format!("/v3/portals/{}/audit-log-replay-job", path_segment(id))
            }
        }
    }

    /// The portal id, for a portal's stream.
    pub fn portal_id(&self) -> Option<&str> {
        match self {
            Stream::Org => None,
            Stream::Portal(id) => Some(id),
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stream::Org => f.write_str("organisation"),
            Stream::Portal(id) => write!(f, "portal {id}"),
        }
    }
}

/// A Dev Portal, as far as audit logs need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Portal {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// A portal's audit-log webhook as GET shows it (the spec requires neither
/// field; a missing or empty destination id is none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalWebhook {
    #[serde(default)]
    pub enabled: bool,
    #[serde(
        default,
        rename = "audit_log_destination_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub destination_id: Option<String>,
}

impl PortalWebhook {
    fn from_body(body: &Value) -> PortalWebhook {
        PortalWebhook {
            enabled: body
                .get("enabled")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            destination_id: body
                .get("audit_log_destination_id")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        }
    }
}

/// Why `<id|name>` does not name one portal.
#[derive(Debug)]
pub enum ResolveError {
    Konnect(KonnectError),
    /// No portal has that id or name; `known` lists the region's portals
    /// (at most [`KNOWN_SHOWN`] of `known_total`), for the message.
    Unknown {
        text: String,
        known: Vec<Portal>,
        known_total: usize,
    },
    /// More than one portal has that name (names should be unique, but
    /// the list is what Konnect says).
    Ambiguous {
        text: String,
        matches: Vec<Portal>,
    },
}

impl From<KonnectError> for ResolveError {
    fn from(e: KonnectError) -> Self {
        ResolveError::Konnect(e)
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Konnect(e) => write!(f, "{e}"),
            ResolveError::Unknown { text, .. } => {
                write!(f, "no Dev Portal has the id or name {text:?}")
            }
            ResolveError::Ambiguous { text, matches } => write!(
                f,
                "{} Dev Portals are named {text:?}: {}",
                matches.len(),
                matches
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

impl ResolveError {
    /// What to do about it (none for a failed call: the caller knows).
    pub fn hint(&self) -> Option<String> {
        match self {
            ResolveError::Konnect(_) => None,
            ResolveError::Unknown {
                known, known_total, ..
            } if known.is_empty() && *known_total == 0 => Some(
                "the region has no Dev Portals; portals are regional: --region picks another"
                    .into(),
            ),
            ResolveError::Unknown {
                known, known_total, ..
            } => {
                let mut list = known
                    .iter()
                    .map(Portal::label)
                    .collect::<Vec<_>>()
                    .join(", ");
                if *known_total > known.len() {
                    list.push_str(&format!(" and {} more", known_total - known.len()));
                }
                Some(format!(
                    "the region's portals: {list}; portals are regional: --region picks another"
                ))
            }
            ResolveError::Ambiguous { .. } => Some("give the portal by its id".into()),
        }
    }
}

impl Portal {
    /// `name (id)`, for messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.id)
    }
}

/// How many of the region's portals an unknown name's message lists.
pub const KNOWN_SHOWN: usize = 10;

/// Page size of the portal list (the spec gives no maximum; Konnect's
/// lists take 100).
const PAGE_SIZE: usize = 100;

/// Whether `s` has the shape of Konnect's ids (a hyphenated UUID); anything
/// else can only be a name.
pub fn looks_like_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

impl AuditLogs {
    /// GET {regional}/v3/portals, every page, optionally with
    /// `filter[name][eq]`; each item read as a [`Portal`] (items that are
    /// not are skipped).
    async fn portal_pages(&self, name: Option<&str>) -> Result<Vec<Portal>, KonnectError> {
        let mut found = Vec::new();
        let size = PAGE_SIZE.to_string();
        let mut number = 1usize;
        loop {
            let page = number.to_string();
            let mut query = vec![("page[size]", size.as_str()), ("page[number]", &page)];
            if let Some(name) = name {
                query.push(("filter[name][eq]", name));
            }
            let url = self.client().url(Host::Regional, "/v3/portals", &query);
            let resp = self
                .client()
                .call(Method::GET, url.clone(), None, Retry::Transient, None)
                .await?;
            let mut body = resp.json()?;
            let items = super::take_page_items(&mut body);
            let count = items.len();
            found.extend(
                items
                    .into_iter()
                    .filter_map(|item| serde_json::from_value::<Portal>(item).ok()),
            );
            let total = body
                .pointer("/meta/page/total")
                .and_then(Value::as_u64)
                .map(|t| t as usize);
            // The last page: fewer items than asked for, or the total seen.
            let more = count > 0
                && match total {
                    Some(total) => number * PAGE_SIZE < total,
                    None => count >= PAGE_SIZE,
                };
            if !more {
                break;
            }
            number += 1;
            if number > 10_000 {
                return Err(KonnectError::Decode {
                    method: Method::GET,
                    url: url.to_string(),
                    reason: "portal list does not end (more than 10000 pages)".into(),
                });
            }
        }
        Ok(found)
    }

    /// Every portal of the region.
    pub async fn all_portals(&self) -> Result<Vec<Portal>, KonnectError> {
        self.portal_pages(None).await
    }

    /// Every portal called exactly `name` (filtered by Konnect, and each
    /// item compared again).
    pub async fn portals_named(&self, name: &str) -> Result<Vec<Portal>, KonnectError> {
        Ok(self
            .portal_pages(Some(name))
            .await?
            .into_iter()
            .filter(|p| p.name == name)
            .collect())
    }

    /// GET {regional}/v3/portals/{id}; `None` for 404.
    pub async fn portal(&self, id: &str) -> Result<Option<Portal>, KonnectError> {
        let path = format!("/v3/portals/{}", path_segment(id));
        let url = self.client().url(Host::Regional, &path, &[]);
        match self
            .client()
            .call(Method::GET, url.clone(), None, Retry::Transient, None)
            .await
        {
            Ok(resp) => {
                serde_json::from_value(resp.json()?)
                    .map(Some)
                    .map_err(|e| KonnectError::Decode {
                        method: Method::GET,
                        url: url.to_string(),
                        reason: format!("not a portal: {e}"),
                    })
            }
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The portal `id_or_name` names: a portal of that id if one exists
    /// (and the text has an id's shape), else the only portal of that name.
    pub async fn resolve_portal(&self, id_or_name: &str) -> Result<Portal, ResolveError> {
        if looks_like_uuid(id_or_name)
            && let Some(p) = self.portal(id_or_name).await?
        {
            return Ok(p);
        }
        let mut named = self.portals_named(id_or_name).await?;
        match named.len() {
            0 => {
                let known = self.all_portals().await?;
                let known_total = known.len();
                Err(ResolveError::Unknown {
                    text: id_or_name.to_string(),
                    known: known.into_iter().take(KNOWN_SHOWN).collect(),
                    known_total,
                })
            }
            1 => Ok(named.remove(0)),
            _ => Err(ResolveError::Ambiguous {
                text: id_or_name.to_string(),
                matches: named,
            }),
        }
    }

    /// GET {regional}/v3/portals/{id}/audit-log-webhook. A 404 (no such
    /// portal) is an error.
    pub async fn portal_webhook(&self, id: &str) -> Result<PortalWebhook, KonnectError> {
        let stream = Stream::Portal(id.to_string());
        let url = self
            .client()
            .url(Host::Regional, &stream.webhook_path(), &[]);
        let resp = self
            .client()
            .call(Method::GET, url, None, Retry::Transient, None)
            .await?;
        Ok(PortalWebhook::from_body(&resp.json()?))
    }

    /// PATCH {regional}/v3/portals/{id}/audit-log-webhook
    /// `{audit_log_destination_id, enabled: true}`: the portal's logins are
    /// delivered to `destination_id`.
    pub async fn attach_portal_webhook(
        &self,
        id: &str,
        destination_id: &str,
    ) -> Result<PortalWebhook, KonnectError> {
        let body = json!({ "audit_log_destination_id": destination_id, "enabled": true });
        self.patch_portal_webhook(id, &body, None).await
    }

    /// PATCH {regional}/v3/portals/{id}/audit-log-webhook
    /// `{audit_log_destination_id, enabled}`: the webhook as it was before
    /// a listener pointed it elsewhere.
    pub async fn repoint_portal_webhook(
        &self,
        id: &str,
        destination_id: &str,
        enabled: bool,
        deadline: Option<Instant>,
    ) -> Result<PortalWebhook, KonnectError> {
        let body = json!({ "audit_log_destination_id": destination_id, "enabled": enabled });
        self.patch_portal_webhook(id, &body, deadline).await
    }

    async fn patch_portal_webhook(
        &self,
        id: &str,
        body: &Value,
        deadline: Option<Instant>,
    ) -> Result<PortalWebhook, KonnectError> {
        let stream = Stream::Portal(id.to_string());
        let url = self
            .client()
            .url(Host::Regional, &stream.webhook_path(), &[]);
        let resp = self
            .client()
            .call(Method::PATCH, url, Some(body), Retry::Transient, deadline)
            .await?;
        Ok(PortalWebhook::from_body(&resp.json()?))
    }

    /// DELETE {regional}/v3/portals/{id}/audit-log-webhook (destination
    /// cleared, disabled), waiting out 409 with backoff from 250 ms
    /// doubling to 5 s until `deadline`, as a destination delete waits out
    /// "destination is in use" (the spec documents a 409 without saying
    /// when). 404 (the portal is gone) counts as gone.
    pub async fn delete_portal_webhook(
        &self,
        id: &str,
        deadline: Instant,
    ) -> Result<Removal, KonnectError> {
        let stream = Stream::Portal(id.to_string());
        let url = self
            .client()
            .url(Host::Regional, &stream.webhook_path(), &[]);
        self.delete_waiting(url, deadline, &|_| true).await
    }

    /// GET of a stream's webhook as Konnect shows it; `None` on 404.
    pub async fn stream_webhook_document(
        &self,
        stream: &Stream,
    ) -> Result<Option<Value>, KonnectError> {
        self.get_json(Host::Regional, &stream.webhook_path()).await
    }

    /// GET of a portal's webhook delivery status as Konnect shows it;
    /// `None` on 404.
    pub async fn portal_status_document(&self, id: &str) -> Result<Option<Value>, KonnectError> {
        let stream = Stream::Portal(id.to_string());
        self.get_json(Host::Regional, &stream.status_path()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::konnect::testing::{FakeKonnect, Reply};
    use std::time::Duration;

    fn portal(i: usize) -> Value {
        json!({"id": format!("00000000-0000-4000-8000-{i:012}"), "name": format!("p{i}"),
               "display_name": format!("P {i}")})
    }

    #[test]
    fn stream_paths_follow_the_spec() {
        assert_eq!(Stream::Org.webhook_path(), "/v3/audit-log-webhook");
        assert_eq!(Stream::Org.status_path(), "/v3/audit-log-webhook/status");
        assert_eq!(Stream::Org.replay_job_path(), "/v3/audit-log-replay-job");
        let p = Stream::Portal("p/1".into());
        assert_eq!(p.webhook_path(), "/v3/portals/p%2F1/audit-log-webhook");
        assert_eq!(
            p.status_path(),
            "/v3/portals/p%2F1/audit-log-webhook/status"
        );
        assert_eq!(
            p.replay_job_path(),
            "/v3/portals/p%2F1/audit-log-replay-job"
        );
        assert_eq!(p.to_string(), "portal p/1");
    }

    #[test]
    fn webhook_bodies_without_fields_read_as_unconfigured() {
        assert_eq!(
            PortalWebhook::from_body(&json!({})),
            PortalWebhook::default()
        );
        assert_eq!(
            PortalWebhook::from_body(&json!({"enabled": true, "audit_log_destination_id": ""})),
            PortalWebhook {
                enabled: true,
                destination_id: None
            }
        );
        assert!(looks_like_uuid("3e551b39-227d-4297-b911-e68fd5d77c17"));
        assert!(!looks_like_uuid("developer-portal"));
    }

    #[tokio::test]
    async fn the_portal_list_is_read_page_by_page_to_its_total() {
        let fake = FakeKonnect::start(|req| {
            assert_eq!(req.method, "GET");
            assert_eq!(req.path, "/v3/portals");
            assert_eq!(req.query("page[size]").as_deref(), Some("100"));
            let n: usize = req.query("page[number]").unwrap().parse().unwrap();
            let items: Vec<Value> = (0..100)
                .map(|i| (n - 1) * 100 + i)
                .filter(|i| *i < 230)
                .map(portal)
                .collect();
            Reply::json(
                200,
                json!({"data": items, "meta": {"page": {"number": n, "size": 100, "total": 230}}}),
            )
        });
        let all = fake.audit().all_portals().await.unwrap();
        assert_eq!(all.len(), 230);
        assert_eq!(all[229].name, "p229");
        assert_eq!(fake.requests().len(), 3, "three pages, no fourth");
    }

    #[tokio::test]
    async fn a_name_resolves_to_one_portal_or_says_what_matched() {
        let fake = FakeKonnect::start(|req| {
            let name = req.query("filter[name][eq]");
            let data: Vec<Value> = match name.as_deref() {
                Some("twice") => vec![portal(1), portal(2)]
                    .into_iter()
                    .map(|mut p| {
                        p["name"] = json!("twice");
                        p
                    })
                    .collect(),
                // Konnect's filter is trusted no further than the compare.
                Some("one") => vec![portal(3), {
                    let mut p = portal(4);
                    p["name"] = json!("one");
                    p
                }],
                Some(_) => vec![],
                None => (0..12).map(portal).collect(),
            };
            let total = data.len();
            Reply::json(
                200,
                json!({"data": data, "meta": {"page": {"number": 1, "size": 100, "total": total}}}),
            )
        });
        let audit = fake.audit();
        assert_eq!(
            audit.resolve_portal("one").await.unwrap().id,
            "00000000-0000-4000-8000-000000000004"
        );
        let e = audit.resolve_portal("twice").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 Dev Portals are named \"twice\": 00000000-0000-4000-8000-000000000001, \
             00000000-0000-4000-8000-000000000002"
        );
        assert_eq!(e.hint().unwrap(), "give the portal by its id");
        let e = audit.resolve_portal("none").await.unwrap_err();
        assert_eq!(e.to_string(), "no Dev Portal has the id or name \"none\"");
        let hint = e.hint().unwrap();
        assert!(
            hint.starts_with("the region's portals: p0 (00000000-0000-4000-8000-000000000000), p1")
                && hint.contains(", p9 (00000000-0000-4000-8000-000000000009) and 2 more;"),
            "{hint}"
        );
    }

    #[tokio::test]
    async fn an_id_is_looked_up_directly_and_a_missing_one_by_name() {
        let id = "3e551b39-227d-4297-b911-e68fd5d77c17";
        let fake = FakeKonnect::start(move |req| match req.path.as_str() {
            p if p == format!("/v3/portals/{id}") => {
                Reply::json(200, json!({"id": id, "name": "dev"}))
            }
            "/v3/portals" => Reply::json(
                200,
                json!({"data": [], "meta": {"page": {"number": 1, "size": 100, "total": 0}}}),
            ),
            _ => Reply::problem(404, "Not Found"),
        });
        let audit = fake.audit();
        assert_eq!(
            audit.resolve_portal(id).await.unwrap(),
            Portal {
                id: id.into(),
                name: "dev".into(),
                display_name: None
            }
        );
        let other = "3e551b39-227d-4297-b911-000000000000";
        let e = audit.resolve_portal(other).await.unwrap_err();
        assert!(
            e.hint()
                .unwrap()
                .starts_with("the region has no Dev Portals"),
            "{e}"
        );
        let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(
            paths,
            [
                format!("/v3/portals/{id}"),
                format!("/v3/portals/{other}"),
                "/v3/portals".into(),
                "/v3/portals".into()
            ]
        );
    }

    #[tokio::test]
    async fn webhook_calls_send_exactly_the_specs_bodies() {
        let fake = FakeKonnect::start(|req| match req.method.as_str() {
            "GET" => Reply::json(200, json!({"enabled": false})),
            "PATCH" => Reply::json(200, req.json()),
            "DELETE" => Reply::empty(204),
            _ => unreachable!(),
        });
        let audit = fake.audit();
        let id = "3e551b39-227d-4297-b911-e68fd5d77c17";
        assert_eq!(
            audit.portal_webhook(id).await.unwrap(),
            PortalWebhook::default()
        );
        let hook = audit.attach_portal_webhook(id, "d-1").await.unwrap();
        assert!(hook.enabled);
        audit
            .repoint_portal_webhook(id, "d-0", false, None)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            audit.delete_portal_webhook(id, deadline).await.unwrap(),
            Removal::Deleted
        );
        let reqs = fake.requests();
        let path = format!("/v3/portals/{id}/audit-log-webhook");
        assert!(reqs.iter().all(|r| r.path == path), "{reqs:?}");
        assert_eq!(
            reqs[1].json(),
            json!({"audit_log_destination_id": "d-1", "enabled": true})
        );
        assert_eq!(
            reqs[2].json(),
            json!({"audit_log_destination_id": "d-0", "enabled": false})
        );
        assert_eq!(reqs[3].method, "DELETE");
        assert!(reqs[3].body.is_empty());
    }

    #[tokio::test]
    async fn a_webhook_delete_waits_out_conflicts_until_its_deadline() {
        let fake = FakeKonnect::start_seq(vec![
            Reply::problem(409, "Resource Conflict"),
            Reply::problem(409, "Resource Conflict"),
            Reply::empty(204),
            Reply::problem(404, "Not Found"),
            Reply::problem(409, "Resource Conflict"),
        ]);
        let audit = fake.audit();
        let far = Instant::now() + Duration::from_secs(10);
        assert_eq!(
            audit.delete_portal_webhook("p", far).await.unwrap(),
            Removal::Deleted
        );
        assert_eq!(fake.requests().len(), 3);
        assert_eq!(
            audit.delete_portal_webhook("p", far).await.unwrap(),
            Removal::AlreadyGone
        );
        let near = Instant::now() + Duration::from_millis(100);
        let e = audit.delete_portal_webhook("p", near).await.unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::CONFLICT));
    }
}
