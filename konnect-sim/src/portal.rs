//! Dev Portals: each region's portals (seeded by tests, as Konnect's portal
//! management is not emulated), their developers, and each portal's own
//! audit-log webhook and replay job.
//!
//! A portal's webhook points at one of the organisation's destinations
//! (org-wide, managed through the audit-log API); Dev Portal authentication
//! events go through it, not through the region's webhook. This module holds
//! the data and its JSON shapes (the portal spec's `Portal`,
//! `PortalDeveloper` and webhook bodies); the rules of the API are in
//! `api/portals.rs` and `api/portal_webhook.rs`, delivery in `delivery/`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::snapshot::ReplayJobState;
use crate::state::{LastAttempt, ReplayJob};
use crate::time::{self, Millis};

/// The longest `name` and `display_name` the spec allows.
const MAX_NAME: usize = 255;
/// The longest `description` the spec allows.
const MAX_DESCRIPTION: usize = 512;
/// The spec's `default_api_visibility` / `default_page_visibility` enum.
pub(crate) const VISIBILITIES: [&str; 2] = ["public", "private"];
/// The spec's `DeveloperStatus` enum.
pub(crate) const DEVELOPER_STATUSES: [&str; 4] = ["approved", "pending", "revoked", "rejected"];

/// A portal to add: [`crate::Sim::add_portal_with`] or `POST /_sim/portals`
/// (the same fields as JSON). Only `name` is required; the others default
/// as the spec's defaults say.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPortal {
    /// `us` (the default), `eu`, `au`, `me`, `in` or `sg`.
    #[serde(default)]
    pub region: Option<String>,
    /// Unique among the region's portals, 1 to 255 characters.
    pub name: String,
    /// Defaults to `name`.
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// A fixed id (a UUID) instead of a generated one.
    #[serde(default)]
    pub id: Option<String>,
    /// Defaults to true.
    #[serde(default)]
    pub authentication_enabled: Option<bool>,
    #[serde(default)]
    pub rbac_enabled: bool,
    #[serde(default)]
    pub auto_approve_developers: bool,
    #[serde(default)]
    pub auto_approve_applications: bool,
    /// `public` or `private` (the default).
    #[serde(default)]
    pub default_api_visibility: Option<String>,
    /// `public` or `private` (the default).
    #[serde(default)]
    pub default_page_visibility: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl NewPortal {
    /// A portal with this name in `us` and every other field defaulted.
    pub fn named(name: &str) -> NewPortal {
        NewPortal {
            name: name.to_string(),
            ..NewPortal::default()
        }
    }
}

/// A developer to add to a portal: [`crate::Sim::add_portal_developer_with`]
/// or `POST /_sim/portals/{id}/developers`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDeveloper {
    pub email: String,
    pub full_name: String,
    /// `approved` (the default), `pending`, `revoked` or `rejected`.
    #[serde(default)]
    pub status: Option<String>,
    /// A fixed id (a UUID) instead of a generated one.
    #[serde(default)]
    pub id: Option<String>,
}

/// A portal developer: exactly the spec's `PortalDeveloper` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeveloperState {
    pub id: String,
    pub email: String,
    pub full_name: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A portal's audit-log webhook, as a snapshot shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalWebhookState {
    pub enabled: bool,
    /// The organisation destination it points at, if any.
    pub destination_id: Option<String>,
    /// When it was last changed, `None` if never.
    pub updated_at: Option<String>,
}

impl PortalWebhookState {
    /// Never configured, or deleted: disabled and without a destination.
    pub fn is_unconfigured(&self) -> bool {
        !self.enabled && self.destination_id.is_none()
    }
}

/// One portal, as a snapshot shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalState {
    pub id: String,
    pub region: String,
    pub name: String,
    pub display_name: String,
    pub webhook: PortalWebhookState,
    pub replay_job: ReplayJobState,
    pub developers: Vec<DeveloperState>,
}

/// A portal's webhook.
///
/// Invariant: `destination_id`, when set, names an existing destination
/// (deleting a referenced destination is refused).
#[derive(Clone, Debug, Default)]
pub(crate) struct PortalWebhook {
    pub enabled: bool,
    pub destination_id: Option<Uuid>,
    pub updated_at: Option<Millis>,
    pub last_attempt: Option<LastAttempt>,
}

impl PortalWebhook {
    /// The spec's `PortalAuditLogWebhook` body: `enabled`, and the
    /// destination id when there is one (an empty id would not be a UUID).
    pub fn to_json(&self) -> Value {
        let mut body = json!({"enabled": self.enabled});
        if let Some(id) = self.destination_id {
            body["audit_log_destination_id"] = json!(id.to_string());
        }
        body
    }
}

/// A Dev Portal.
#[derive(Clone, Debug)]
pub(crate) struct Portal {
    pub id: Uuid,
    pub region: &'static str,
    pub name: String,
    pub display_name: String,
    pub description: Option<String>,
    pub authentication_enabled: bool,
    pub rbac_enabled: bool,
    pub auto_approve_developers: bool,
    pub auto_approve_applications: bool,
    pub default_api_visibility: String,
    pub default_page_visibility: String,
    /// `<12 hex digits>.<region>.portal.konghq.com`; also the canonical
    /// domain (no custom domains here).
    pub default_domain: String,
    pub labels: BTreeMap<String, String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub developers: Vec<DeveloperState>,
    pub webhook: PortalWebhook,
    pub replay_job: ReplayJob,
}

/// A portal field as filters and sorting see it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum FieldValue<'a> {
    Text(Option<&'a str>),
    Bool(bool),
}

impl Portal {
    /// Checks `new` and makes the portal (`id` when `new` names none).
    /// `region` is already known to be a region.
    pub fn new(
        new: &NewPortal,
        region: &'static str,
        id: Uuid,
        domain_label: &str,
        now: Millis,
    ) -> Result<Portal, String> {
        let name = new.name.clone();
        if name.trim().is_empty() || name.chars().count() > MAX_NAME {
            return Err(format!(
                "a portal name must have 1 to {MAX_NAME} characters, not {name:?}"
            ));
        }
        let display_name = new.display_name.clone().unwrap_or_else(|| name.clone());
        if display_name.is_empty() || display_name.chars().count() > MAX_NAME {
            return Err(format!(
                "a display_name must have 1 to {MAX_NAME} characters, not {display_name:?}"
            ));
        }
        if new
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
        {
            return Err(format!(
                "a description must have at most {MAX_DESCRIPTION} characters"
            ));
        }
        let visibility = |given: &Option<String>, field: &str| match given.as_deref() {
            None => Ok("private".to_string()),
            Some(v) if VISIBILITIES.contains(&v) => Ok(v.to_string()),
            Some(v) => Err(format!("{field} must be public or private, not {v:?}")),
        };
        let default_domain = format!("{domain_label}.{region}.portal.konghq.com");
        Ok(Portal {
            id,
            region,
            name,
            display_name,
            description: new.description.clone(),
            authentication_enabled: new.authentication_enabled.unwrap_or(true),
            rbac_enabled: new.rbac_enabled,
            auto_approve_developers: new.auto_approve_developers,
            auto_approve_applications: new.auto_approve_applications,
            default_api_visibility: visibility(
                &new.default_api_visibility,
                "default_api_visibility",
            )?,
            default_page_visibility: visibility(
                &new.default_page_visibility,
                "default_page_visibility",
            )?,
            default_domain,
            labels: new.labels.clone(),
            created_at: now,
            updated_at: now,
            developers: Vec::new(),
            webhook: PortalWebhook::default(),
            replay_job: ReplayJob::new(),
        })
    }

    /// The spec's `Portal` body (the same in the list and alone).
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "id": self.id.to_string(),
            "name": self.name,
            "display_name": self.display_name,
            "description": self.description,
            "authentication_enabled": self.authentication_enabled,
            "rbac_enabled": self.rbac_enabled,
            "sipr_enabled": false,
            "default_api_visibility": self.default_api_visibility,
            "default_page_visibility": self.default_page_visibility,
            "default_application_auth_strategy_id": null,
            "auto_approve_developers": self.auto_approve_developers,
            "auto_approve_applications": self.auto_approve_applications,
            "default_domain": self.default_domain,
            "canonical_domain": self.default_domain,
            "notifications_developer_pii_visibility_enabled": false,
            "created_at": time::format_millis(self.created_at),
            "updated_at": time::format_millis(self.updated_at),
        });
        if !self.labels.is_empty() {
            body["labels"] = json!(self.labels);
        }
        body
    }

    /// A field of the `Portal` body, for `filter[...]` and `sort`; `None`
    /// for a field neither can use.
    pub fn field(&self, name: &str) -> Option<FieldValue<'_>> {
        fn text(s: &str) -> FieldValue<'_> {
            FieldValue::Text(Some(s))
        }
        Some(match name {
            "id" => return None,
            "name" => text(&self.name),
            "description" => FieldValue::Text(self.description.as_deref()),
            "default_api_visibility" => text(&self.default_api_visibility),
            "default_page_visibility" => text(&self.default_page_visibility),
            "default_domain" | "canonical_domain" => text(&self.default_domain),
            "default_application_auth_strategy_id" => FieldValue::Text(None),
            "authentication_enabled" => FieldValue::Bool(self.authentication_enabled),
            "rbac_enabled" => FieldValue::Bool(self.rbac_enabled),
            "auto_approve_developers" => FieldValue::Bool(self.auto_approve_developers),
            "auto_approve_applications" => FieldValue::Bool(self.auto_approve_applications),
            _ => return None,
        })
    }

    pub fn developer(&self, id: Uuid) -> Option<&DeveloperState> {
        let id = id.to_string();
        self.developers.iter().find(|d| d.id == id)
    }

    pub fn state(&self) -> PortalState {
        PortalState {
            id: self.id.to_string(),
            region: self.region.to_string(),
            name: self.name.clone(),
            display_name: self.display_name.clone(),
            webhook: PortalWebhookState {
                enabled: self.webhook.enabled,
                destination_id: self.webhook.destination_id.map(|id| id.to_string()),
                updated_at: self.webhook.updated_at.map(time::format_millis),
            },
            replay_job: self.replay_job.state(),
            developers: self.developers.clone(),
        }
    }
}

/// Checks `new` and makes the developer (`id` when `new` names none).
pub(crate) fn new_developer(
    new: &NewDeveloper,
    id: Uuid,
    now: Millis,
) -> Result<DeveloperState, String> {
    if !new.email.contains('@') || new.email.chars().count() > MAX_NAME {
        return Err(format!(
            "a developer email must be an address of at most {MAX_NAME} characters, not {:?}",
            new.email
        ));
    }
    if new.full_name.chars().count() > MAX_NAME {
        return Err(format!(
            "a full_name must have at most {MAX_NAME} characters"
        ));
    }
    let status = new.status.clone().unwrap_or_else(|| "approved".to_string());
    if !DEVELOPER_STATUSES.contains(&status.as_str()) {
        return Err(format!(
            "a developer status must be one of {}, not {status:?}",
            DEVELOPER_STATUSES.join(", ")
        ));
    }
    let at = time::format_millis(now);
    Ok(DeveloperState {
        id: id.to_string(),
        email: new.email.clone(),
        full_name: new.full_name.clone(),
        status,
        created_at: at.clone(),
        updated_at: at,
    })
}

/// A fixed id given as text: a hyphenated UUID.
pub(crate) fn parse_given_id(id: &Option<String>) -> Result<Option<Uuid>, String> {
    match id {
        None => Ok(None),
        Some(text) if text.len() == 36 => Uuid::parse_str(text)
            .map(Some)
            .map_err(|_| format!("id {text:?} is not a UUID")),
        Some(text) => Err(format!("id {text:?} is not a UUID")),
    }
}
