//! The Konnect API, as far as audit logs need it.
//!
//! `client` owns HTTP: hosts, authentication, timeouts and retries, and
//! builds the one client every command uses from the resolved settings.
//! `pull` knows one page of the audit-log pull API (`GET /v3/audit-logs`);
//! following pages and windows is `source::pull`'s.
//! `error` owns what a failed call reports (shared with `login`, whose token
//! renewal fails the same ways). `login` owns the credential: a PAT or
//! `kongctl login`'s token file. `audit_logs` knows the audit-log endpoints
//! (webhook, destinations, replay job) and the quirks of their payloads;
//! `replay_job` the region's replay job and the webhook's delivery status,
//! which gap healing (`crate::replay`) watches, for the organisation or a
//! Dev Portal (`portals::Stream`); `portals` the region's Dev Portals and
//! their own audit-log webhooks; `pull` the pull API's pages; `identity`
//! who a principal is (users, system accounts, portal developers). Nothing
//! here
//! logs or formats the PAT or a destination's authorization value.

pub mod audit_logs;
pub mod client;
pub mod error;
pub mod identity;
pub mod login;
pub mod portals;
pub mod pull;
pub mod replay_job;
#[cfg(test)]
pub(crate) mod testing;

pub use audit_logs::{AuditLogs, Destination, NewDestination, WebhookState};
pub use client::{Hosts, KonnectClient};
pub use error::{ApiError, KonnectError};
pub use login::{Credential, LoginToken};
pub use portals::{Portal, PortalWebhook, Stream};

/// The items of one page of a Konnect list (`{"data": [...], "meta": ...}`),
/// taken out of `body` (its `meta` stays for the paging); none when `data`
/// is missing or not a list. Destinations page by cursor, portals by number:
/// the items read the same.
pub(crate) fn take_page_items(body: &mut serde_json::Value) -> Vec<serde_json::Value> {
    match body.get_mut("data").map(serde_json::Value::take) {
        Some(serde_json::Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn page_items_are_taken_and_meta_stays() {
        let mut body = json!({"data": [{"id": "a"}, {"id": "b"}], "meta": {"page": {"total": 2}}});
        assert_eq!(
            super::take_page_items(&mut body),
            vec![json!({"id": "a"}), json!({"id": "b"})]
        );
        assert_eq!(body.pointer("/meta/page/total"), Some(&json!(2)));
        for mut odd in [
            json!({}),
            json!({"data": {"id": "a"}}),
            json!([1]),
            json!(null),
        ] {
            assert!(super::take_page_items(&mut odd).is_empty(), "{odd}");
        }
    }
}
