//! What tests and the admin API can read of the emulator's state: a
//! serialisable copy made by [`crate::Sim::snapshot`].
//!
//! A snapshot never contains a token or an authorization value, only whether
//! one is set.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::identity::{SystemAccountState, UserState};
use crate::portal::PortalState;

/// A copy of the whole emulator state at one instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The organisation id every generated record carries.
    pub org_id: String,
    /// The audit-log webhook of each of the six regions.
    pub webhooks: BTreeMap<String, WebhookState>,
    /// All destinations (org-wide), oldest first.
    pub destinations: Vec<DestinationState>,
    /// Delivered or attempted batches, oldest first (the last 500 are kept).
    pub deliveries: Vec<Delivery>,
    /// Every Konnect API call (not the `/_sim/` admin calls), oldest first
    /// (the last 10,000 are kept).
    pub requests: Vec<RequestLogEntry>,
    /// Events generated since start or the last reset.
    pub events_generated: u64,
    /// Events currently kept for the pull API and replay jobs (the last
    /// 20,000 are kept).
    pub events_stored: usize,
    /// Records the pull API can list, all regions: generated events (the
    /// newest 20,000), seeded and raw records.
    #[serde(default)]
    pub audit_logs_stored: usize,
    /// How far the emulated Konnect's clock is ahead of this machine's, in
    /// milliseconds (negative: behind).
    #[serde(default)]
    pub clock_offset_ms: i64,
    /// The replay job of each region.
    pub replay_jobs: BTreeMap<String, ReplayJobState>,
    /// Tunnels: public host to local address.
    pub tunnels: BTreeMap<String, String>,
    /// Faults that are still armed.
    pub faults: Vec<FaultState>,
    /// Steady event rates (events per second) of the regions that have one.
    pub rates: BTreeMap<String, f64>,
    /// Whether deliveries fail as if the receiver were down
    /// ([`crate::Sim::set_receiver_down`]).
    #[serde(default)]
    pub receiver_down: bool,
    /// API calls per operation since start or the last reset, keyed
    /// `"METHOD /v3/path/{template}"` as the specs spell the path (a path
    /// in no spec is counted under itself), injected faults included.
    #[serde(default)]
    pub request_counts: BTreeMap<String, u64>,
    /// Requests that broke the OpenAPI contract, oldest first (the last
    /// 1,000 are kept); see [`crate::contract::Contract::check_request`].
    #[serde(default)]
    pub contract_violations: Vec<ContractViolation>,
    /// The Dev Portals of every region, in creation order, each with its
    /// webhook, replay job and developers.
    #[serde(default)]
    pub portals: Vec<PortalState>,
    /// Users seeded for the identity API, in creation order.
    #[serde(default)]
    pub users: Vec<UserState>,
    /// System accounts seeded for the identity API, in creation order.
    #[serde(default)]
    pub system_accounts: Vec<SystemAccountState>,
}

impl Snapshot {
    /// The webhook of `region`.
    ///
    /// # Panics
    /// If `region` is not one of `us`, `eu`, `au`, `me`, `in`, `sg`.
    pub fn webhook(&self, region: &str) -> &WebhookState {
        self.webhooks
            .get(region)
            .unwrap_or_else(|| panic!("no region {region:?}; regions are us, eu, au, me, in, sg"))
    }

    /// True when nothing is configured: every region's webhook is the
    /// unconfigured sentinel, every portal's webhook is disabled without a
    /// destination, and there are no destinations. (Portals, developers,
    /// users and system accounts are seeded data, not configuration.)
    pub fn is_pristine(&self) -> bool {
        self.destinations.is_empty()
            && self.webhooks.values().all(WebhookState::is_unconfigured)
            && self.portals.iter().all(|p| p.webhook.is_unconfigured())
    }

    /// The portal with this id.
    pub fn portal(&self, id: &str) -> Option<&PortalState> {
        self.portals.iter().find(|p| p.id == id)
    }

    /// The portal of `region` with this name (names are unique per region).
    pub fn portal_named(&self, region: &str, name: &str) -> Option<&PortalState> {
        self.portals
            .iter()
            .find(|p| p.region == region && p.name == name)
    }

    /// The delivered records of one portal's webhook, in delivery order.
    pub fn delivered_portal_records(&self, portal_id: &str) -> Vec<&str> {
        self.deliveries
            .iter()
            .filter(|d| d.delivered && d.portal_id.as_deref() == Some(portal_id))
            .flat_map(|d| d.records.iter().map(String::as_str))
            .collect()
    }

    /// The destination with this id.
    pub fn destination(&self, id: &str) -> Option<&DestinationState> {
        self.destinations.iter().find(|d| d.id == id)
    }

    /// The destinations with this name (names are not unique).
    pub fn destinations_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a DestinationState> + 'a {
        self.destinations.iter().filter(move |d| d.name == name)
    }

    /// The logged API calls with this method and path (query ignored).
    pub fn requests_to<'a>(
        &'a self,
        method: &'a str,
        path: &'a str,
    ) -> impl Iterator<Item = &'a RequestLogEntry> + 'a {
        self.requests
            .iter()
            .filter(move |r| r.method.eq_ignore_ascii_case(method) && r.path == path)
    }

    /// Every record of every successfully delivered batch, in delivery order.
    pub fn delivered_records(&self) -> Vec<&str> {
        self.deliveries
            .iter()
            .filter(|d| d.delivered)
            .flat_map(|d| d.records.iter().map(String::as_str))
            .collect()
    }
}

/// One region's audit-log webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookState {
    pub enabled: bool,
    /// The attached destination (v3 webhook), if any.
    pub destination_id: Option<String>,
    /// What `GET /v2/audit-log-webhook` shows: the destination's endpoint,
    /// the endpoint set through v2, or `unconfigured`.
    pub endpoint: String,
    /// What `GET /v2/audit-log-webhook` shows as `log_format`.
    pub log_format: String,
    pub skip_ssl_verification: bool,
    /// Whether deliveries would carry an `Authorization` value.
    pub authorization_set: bool,
    /// When the webhook was last changed, `None` if never.
    pub updated_at: Option<String>,
}

impl WebhookState {
    /// The sentinel state: `{"enabled":false,"endpoint":"unconfigured"}`.
    pub fn is_unconfigured(&self) -> bool {
        !self.enabled && self.endpoint == "unconfigured" && self.destination_id.is_none()
    }
}

/// One audit-log destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationState {
    pub id: String,
    pub name: String,
    pub endpoint: String,
    pub log_format: String,
    pub skip_ssl_verification: bool,
    /// Whether an authorization value is stored (its value is never shown).
    pub authorization_set: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// Why a batch was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverySource {
    /// [`crate::Sim::trigger`] or `POST /_sim/trigger`.
    Trigger,
    /// The steady rate of [`crate::Sim::set_rate`].
    Rate,
    /// A replay job (`PUT /v2|v3/audit-log-replay-job` or
    /// `PUT /v3/portals/{id}/audit-log-replay-job`).
    Replay,
}

/// One batch: the records sent in one POST, with every attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Increasing number, unique within a Sim.
    pub id: u64,
    pub region: String,
    /// The portal whose webhook sent the batch; `None` for the region's
    /// (organisation) webhook.
    #[serde(default)]
    pub portal_id: Option<String>,
    pub source: DeliverySource,
    /// The destination the webhook pointed at, `None` for a webhook
    /// configured through v2 (endpoint and authorization set inline).
    pub destination_id: Option<String>,
    pub endpoint: String,
    pub log_format: String,
    /// The records of the batch, exactly as sent (one per line of the body).
    pub records: Vec<String>,
    pub attempts: Vec<Attempt>,
    /// False while attempts are still being made.
    pub finished: bool,
    /// True when an attempt got a 2xx answer.
    pub delivered: bool,
    /// How the batch ended, in words (`None` while unfinished).
    pub outcome: Option<String>,
    pub started_at: String,
}

/// One POST of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When the attempt started (RFC 3339).
    pub at: String,
    /// The receiver's answer, `None` if there was none.
    pub status: Option<u16>,
    /// Why there was no answer (connection refused, timeout, no TLS ...).
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// One Konnect API call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLogEntry {
    pub at: String,
    pub method: String,
    pub path: String,
    /// The raw query string, empty if none.
    pub query: String,
    /// The region the `Host` header named (`us` if none).
    pub region: String,
    /// The status answered; 0 when an injected fault dropped the connection.
    pub status: u16,
    /// The injected fault that shaped this answer, if any.
    pub fault: Option<String>,
}

/// A request that broke the OpenAPI contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractViolation {
    pub at: String,
    pub method: String,
    pub path: String,
    /// The raw query string, empty if none.
    pub query: String,
    /// The spec's `operationId` of the call, if the path and method are in
    /// a spec.
    pub operation: Option<String>,
    /// What is wrong, one entry per problem.
    pub problems: Vec<String>,
}

/// One region's replay job, as `GET /v3/audit-log-replay-job` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayJobState {
    pub start_at: String,
    pub end_at: String,
    pub status: String,
    pub updated_at: String,
}

/// An armed fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultState {
    pub method: Option<String>,
    pub path: String,
    pub remaining: u32,
    /// `status 503`, `status 429 (Retry-After: 2)`, `delay 250ms` or `drop`.
    pub action: String,
}

/// What [`crate::Sim::trigger`] did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TriggerReport {
    pub region: String,
    /// The portal whose events these are ([`crate::Sim::trigger_portal`]);
    /// `None` for organisation events.
    #[serde(default)]
    pub portal_id: Option<String>,
    /// Events generated (all of them are kept for the pull API).
    pub generated: usize,
    /// The batches sent, in order, each finished (retries included).
    pub deliveries: Vec<Delivery>,
    /// Why some or all events were not delivered (no enabled webhook ...).
    pub not_delivered: Option<String>,
}

impl TriggerReport {
    /// True when every generated event went out in a batch that got a 2xx.
    pub fn all_delivered(&self) -> bool {
        self.not_delivered.is_none()
            && self.deliveries.iter().all(|d| d.delivered)
            && self
                .deliveries
                .iter()
                .map(|d| d.records.len())
                .sum::<usize>()
                == self.generated
    }

    /// The records of the batches that got a 2xx, in order.
    pub fn delivered_records(&self) -> Vec<&str> {
        self.deliveries
            .iter()
            .filter(|d| d.delivered)
            .flat_map(|d| d.records.iter().map(String::as_str))
            .collect()
    }
}
