//! The emulated organisation: destinations (org-wide), one webhook and one
//! replay job per region, the Dev Portals of each region (each with its own
//! webhook and replay job), users and system accounts, stored events, the
//! delivery and request logs, tunnels and armed faults.
//!
//! Everything is plain data behind one mutex ([`SharedState`]); no lock is
//! held across an `.await`. HTTP parsing and validation live in `api/`,
//! delivery in `delivery/`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::{REGIONS, SimConfig};
use crate::fault::{FaultAction, PendingFault};
use crate::history::History;
use crate::identity::{
    NewSystemAccount, NewUser, SystemAccountState, UserState, new_system_account, new_user,
};
use crate::portal::{
    DeveloperState, NewDeveloper, NewPortal, Portal, PortalState, new_developer, parse_given_id,
};
use crate::records::{Event, Generator, LogFormat};
use crate::snapshot::{
    Attempt, ContractViolation, Delivery, DestinationState, ReplayJobState, RequestLogEntry,
    Snapshot, WebhookState,
};
use crate::time::{self, Millis, ZERO_TIME};

/// Events kept for the pull API and replay (Konnect keeps 7 days; a
/// long-running emulator keeps the newest ones, about 2 KiB each).
pub(crate) const MAX_EVENTS: usize = 20_000;
/// Batches kept in the delivery log (each holds its records' text).
pub(crate) const MAX_DELIVERIES: usize = 500;
/// Entries kept in the request log.
pub(crate) const MAX_REQUESTS: usize = 10_000;
/// Contract violations kept.
pub(crate) const MAX_VIOLATIONS: usize = 1_000;

/// A value that must never be shown: `Debug` prints `<redacted>`, and there is
/// no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An audit-log destination.
#[derive(Clone, Debug)]
pub(crate) struct Destination {
    /// Creation order; the list is sorted by it and cursors point into it.
    pub seq: u64,
    pub id: Uuid,
    pub name: String,
    pub endpoint: String,
    pub log_format: LogFormat,
    pub skip_ssl_verification: bool,
    pub authorization: Secret,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Destination {
    /// The `AuditLogDestination` body (never with `authorization`).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "name": self.name,
            "endpoint": self.endpoint,
            "log_format": self.log_format.as_str(),
            "skip_ssl_verification": self.skip_ssl_verification,
            "created_at": time::format_millis(self.created_at),
            "updated_at": time::format_millis(self.updated_at),
        })
    }

    fn state(&self) -> DestinationState {
        DestinationState {
            id: self.id.to_string(),
            name: self.name.clone(),
            endpoint: self.endpoint.clone(),
            log_format: self.log_format.as_str().to_string(),
            skip_ssl_verification: self.skip_ssl_verification,
            authorization_set: !self.authorization.expose().is_empty(),
            created_at: time::format_millis(self.created_at),
            updated_at: time::format_millis(self.updated_at),
        }
    }
}

/// Webhook settings made through `PATCH /v2/audit-log-webhook` (the legacy,
/// destination-less form).
#[derive(Clone, Debug, Default)]
pub(crate) struct InlineWebhook {
    pub endpoint: Option<String>,
    pub authorization: Option<Secret>,
    pub log_format: LogFormat,
    pub skip_ssl_verification: bool,
}

/// The last delivery attempt of a region, for the status endpoints.
#[derive(Clone, Debug)]
pub(crate) struct LastAttempt {
    pub at: Millis,
    pub status: Option<u16>,
    pub message: String,
    /// Whether the batch of this attempt ended (so far) in failure.
    pub failing: bool,
}

/// One region's webhook.
///
/// Invariant: `destination_id`, when set, names an existing destination
/// (deleting a referenced destination is refused).
#[derive(Clone, Debug, Default)]
pub(crate) struct Webhook {
    pub enabled: bool,
    pub destination_id: Option<Uuid>,
    pub inline: InlineWebhook,
    pub updated_at: Option<Millis>,
    pub last_attempt: Option<LastAttempt>,
}

impl Webhook {
    /// Whether anything is configured (what `DELETE /v3/audit-log-webhook`
    /// can delete).
    pub fn is_configured(&self) -> bool {
        self.enabled || self.destination_id.is_some() || self.inline.endpoint.is_some()
    }
}

/// A stream of audit-log events and the webhook that delivers it: the
/// organisation's events of a region (the region's webhook), or a Dev
/// Portal's (the portal's webhook).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Stream {
    Org(&'static str),
    Portal(&'static str, Uuid),
}

impl Stream {
    pub fn region(self) -> &'static str {
        match self {
            Stream::Org(region) | Stream::Portal(region, _) => region,
        }
    }

    pub fn portal(self) -> Option<Uuid> {
        match self {
            Stream::Org(_) => None,
            Stream::Portal(_, id) => Some(id),
        }
    }

    /// For logs and messages: `us` or `portal 3e55…`.
    pub fn describe(self) -> String {
        match self {
            Stream::Org(region) => format!("the {region} webhook"),
            Stream::Portal(_, id) => format!("the webhook of portal {id}"),
        }
    }
}

/// Where and how a region's events are delivered right now.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub destination_id: Option<Uuid>,
    pub endpoint: String,
    pub authorization: Secret,
    pub log_format: LogFormat,
}

/// A replay job's status, the spec's enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplayStatus {
    Unconfigured,
    Accepted,
    /// Accepted and waiting for its turn on the region's delivery lane
    /// (or held by [`crate::Sim::hold_replay_jobs`]).
    Pending,
    Running,
    Completed,
    Failed,
}

impl ReplayStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayStatus::Unconfigured => "unconfigured",
            ReplayStatus::Accepted => "accepted",
            ReplayStatus::Pending => "pending",
            ReplayStatus::Running => "running",
            ReplayStatus::Completed => "completed",
            ReplayStatus::Failed => "failed",
        }
    }

    pub fn is_active(self) -> bool {
        matches!(
            self,
            ReplayStatus::Accepted | ReplayStatus::Pending | ReplayStatus::Running
        )
    }
}

/// One region's replay job.
#[derive(Clone, Debug)]
pub(crate) struct ReplayJob {
    pub start_at: Option<Millis>,
    pub end_at: Option<Millis>,
    pub status: ReplayStatus,
    pub updated_at: Option<Millis>,
}

impl ReplayJob {
    pub fn new() -> ReplayJob {
        ReplayJob {
            start_at: None,
            end_at: None,
            status: ReplayStatus::Unconfigured,
            updated_at: None,
        }
    }

    pub fn state(&self) -> ReplayJobState {
        let format =
            |t: Option<Millis>| t.map_or_else(|| ZERO_TIME.to_string(), time::format_exact);
        ReplayJobState {
            start_at: format(self.start_at),
            end_at: format(self.end_at),
            status: self.status.as_str().to_string(),
            updated_at: self
                .updated_at
                .map_or_else(|| ZERO_TIME.to_string(), time::format_millis),
        }
    }

    /// The `AuditLogReplayJob` body.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.state()).expect("a replay job always serialises")
    }
}

/// Why a destination cannot be deleted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DeleteRefusal {
    NotFound,
    InUse,
}

/// The whole mutable state of a Sim.
pub(crate) struct State {
    /// Bumped by every reset; work started in an older epoch records nothing.
    pub epoch: u64,
    pub generator: Generator,
    pub webhooks: BTreeMap<&'static str, Webhook>,
    pub destinations: Vec<Destination>,
    next_destination_seq: u64,
    pub events: VecDeque<Event>,
    pub events_generated: u64,
    /// What the pull API serves.
    pub history: History,
    /// How far the emulated Konnect's clock is ahead of this machine's (its
    /// `Date` header, the time of new events, the pull API's "now").
    pub clock_offset: Millis,
    deliveries: VecDeque<Delivery>,
    next_delivery_id: u64,
    requests: VecDeque<RequestLogEntry>,
    /// API calls per operation (`"GET /v3/users/{userId}"`).
    pub request_counts: BTreeMap<String, u64>,
    /// Requests that broke the OpenAPI contract (`contract.rs`).
    contract_violations: VecDeque<ContractViolation>,
    pub replay_jobs: BTreeMap<&'static str, ReplayJob>,
    pub tunnels: BTreeMap<String, SocketAddr>,
    pub faults: Vec<PendingFault>,
    pub rates: BTreeMap<&'static str, f64>,
    /// The signing keys and the forgeries asked for (`signing.rs`); kept
    /// across resets, but for the forgeries.
    pub signing: crate::signing::Signing,
    /// Browser-login tokens issued (see `login.rs`).
    pub logins: crate::login::Logins,
    /// Every delivery attempt fails at once with a connection error, as
    /// if the receiver (a listener, its tunnel) were down
    /// ([`crate::Sim::set_receiver_down`]).
    pub receiver_down: bool,
    /// Test knobs of replay jobs ([`crate::Sim::fail_replay_jobs`],
    /// [`crate::Sim::hold_replay_jobs`]).
    pub replay_control: ReplayControl,
    /// Dev Portals of every region, in creation order.
    pub portals: Vec<Portal>,
    /// Users and system accounts, in creation order.
    pub users: Vec<UserState>,
    pub system_accounts: Vec<SystemAccountState>,
}

/// How the emulator bends its replay jobs for tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReplayControl {
    /// The next this many jobs (of any stream) fail (after `running`)
    /// without delivering.
    pub fail_next: u32,
    /// The next this many jobs of one portal fail; counted before
    /// `fail_next`.
    pub fail_next_of_portal: BTreeMap<Uuid, u32>,
    /// Jobs stay `pending` while this is set.
    pub hold: bool,
}

impl ReplayControl {
    /// Whether the job of `stream` that starts now is made to fail (and
    /// counts it).
    pub fn take_failure(&mut self, stream: Stream) -> bool {
        if let Some(id) = stream.portal()
            && let Some(left) = self.fail_next_of_portal.get_mut(&id)
            && *left > 0
        {
            *left -= 1;
            return true;
        }
        let fail = self.fail_next > 0;
        self.fail_next = self.fail_next.saturating_sub(1);
        fail
    }
}

impl State {
    pub fn new(config: &SimConfig) -> State {
        let mut generator = Generator::new(config.seed);
        let signing = crate::signing::Signing::new(&mut generator);
        let mut state = State {
            epoch: 0,
            generator,
            webhooks: BTreeMap::new(),
            destinations: Vec::new(),
            next_destination_seq: 1,
            events: VecDeque::new(),
            events_generated: 0,
            history: History::new(),
            clock_offset: 0,
            deliveries: VecDeque::new(),
            next_delivery_id: 1,
            requests: VecDeque::new(),
            request_counts: BTreeMap::new(),
            contract_violations: VecDeque::new(),
            replay_jobs: BTreeMap::new(),
            tunnels: BTreeMap::new(),
            faults: Vec::new(),
            rates: BTreeMap::new(),
            signing,
            logins: crate::login::Logins::default(),
            receiver_down: false,
            replay_control: ReplayControl::default(),
            portals: Vec::new(),
            users: Vec::new(),
            system_accounts: Vec::new(),
        };
        state.reset();
        state
    }

    /// Back to the initial state: sentinel webhooks, no destinations, events,
    /// logs, tunnels, faults or rates. The random source keeps going, so ids
    /// made after a reset differ from those made before.
    pub fn reset(&mut self) {
        self.epoch += 1;
        self.webhooks = REGIONS.iter().map(|r| (*r, Webhook::default())).collect();
        self.replay_jobs = REGIONS.iter().map(|r| (*r, ReplayJob::new())).collect();
        self.destinations.clear();
        self.events.clear();
        self.events_generated = 0;
        self.history.clear();
        self.clock_offset = 0;
        self.deliveries.clear();
        self.requests.clear();
        self.request_counts.clear();
        self.contract_violations.clear();
        self.tunnels.clear();
        self.faults.clear();
        self.rates.clear();
        self.receiver_down = false;
        self.replay_control = ReplayControl::default();
        self.portals.clear();
        self.users.clear();
        self.system_accounts.clear();
        self.generator.set_principals(Vec::new());
        self.signing.clear_forgeries();
    }

    /// The emulated Konnect's current time (this machine's, plus the
    /// clock offset).
    pub fn now(&self) -> Millis {
        time::now().saturating_add(self.clock_offset)
    }

    pub fn trace(&mut self) -> u64 {
        self.generator.trace_number()
    }

    pub fn webhook(&self, region: &str) -> &Webhook {
        self.webhooks
            .get(region)
            .expect("webhooks holds every region")
    }

    pub fn webhook_mut(&mut self, region: &str) -> &mut Webhook {
        self.webhooks
            .get_mut(region)
            .expect("webhooks holds every region")
    }

    pub fn destination(&self, id: Uuid) -> Option<&Destination> {
        self.destinations.iter().find(|d| d.id == id)
    }

    pub fn destination_mut(&mut self, id: Uuid) -> Option<&mut Destination> {
        self.destinations.iter_mut().find(|d| d.id == id)
    }

    /// Stores a new destination with a fresh id.
    pub fn create_destination(
        &mut self,
        name: String,
        endpoint: String,
        authorization: Secret,
        log_format: LogFormat,
        skip_ssl_verification: bool,
    ) -> &Destination {
        let now = time::now();
        let destination = Destination {
            seq: self.next_destination_seq,
            id: self.generator.uuid(),
            name,
            endpoint,
            log_format,
            skip_ssl_verification,
            authorization,
            created_at: now,
            updated_at: now,
        };
        self.next_destination_seq += 1;
        self.destinations.push(destination);
        self.destinations.last().expect("just pushed")
    }

    /// Deletes a destination unless a webhook of any region or any portal
    /// refers to it, enabled or not.
    pub fn delete_destination(&mut self, id: Uuid) -> Result<(), DeleteRefusal> {
        let index = self
            .destinations
            .iter()
            .position(|d| d.id == id)
            .ok_or(DeleteRefusal::NotFound)?;
        if self.webhooks.values().any(|w| w.destination_id == Some(id))
            || self
                .portals
                .iter()
                .any(|p| p.webhook.destination_id == Some(id))
        {
            return Err(DeleteRefusal::InUse);
        }
        self.destinations.remove(index);
        Ok(())
    }

    /// The target of a destination.
    fn destination_target(&self, id: Uuid) -> Option<Target> {
        let destination = self.destination(id)?;
        Some(Target {
            destination_id: Some(id),
            endpoint: destination.endpoint.clone(),
            authorization: destination.authorization.clone(),
            log_format: destination.log_format,
        })
    }

    /// Where the stream's events go now: `None` unless its webhook is
    /// enabled and has an endpoint.
    pub fn delivery_target(&self, stream: Stream) -> Option<Target> {
        let region = match stream {
            Stream::Org(region) => region,
            Stream::Portal(_, id) => {
                let webhook = &self.portal(id)?.webhook;
                if !webhook.enabled {
                    return None;
                }
                return self.destination_target(webhook.destination_id?);
            }
        };
        let webhook = self.webhook(region);
        if !webhook.enabled {
            return None;
        }
        if let Some(id) = webhook.destination_id {
            return self.destination_target(id);
        }
        let inline = &webhook.inline;
        Some(Target {
            destination_id: None,
            endpoint: inline.endpoint.clone()?,
            authorization: inline
                .authorization
                .clone()
                .unwrap_or_else(|| Secret::new("")),
            log_format: inline.log_format,
        })
    }

    /// What GET /v2/audit-log-webhook shows, as a [`WebhookState`].
    pub fn webhook_state(&self, region: &str) -> WebhookState {
        let webhook = self.webhook(region);
        let attached = webhook.destination_id.and_then(|id| self.destination(id));
        let (endpoint, log_format, skip, authorization_set) =
            match (attached, &webhook.inline.endpoint) {
                (Some(d), _) => (
                    d.endpoint.clone(),
                    d.log_format,
                    d.skip_ssl_verification,
                    !d.authorization.expose().is_empty(),
                ),
                (None, Some(endpoint)) => (
                    endpoint.clone(),
                    webhook.inline.log_format,
                    webhook.inline.skip_ssl_verification,
                    webhook.inline.authorization.is_some(),
                ),
                (None, None) => (
                    "unconfigured".to_string(),
                    LogFormat::default(),
                    false,
                    false,
                ),
            };
        WebhookState {
            enabled: webhook.enabled,
            destination_id: webhook.destination_id.map(|id| id.to_string()),
            endpoint,
            log_format: log_format.as_str().to_string(),
            skip_ssl_verification: skip,
            authorization_set,
            updated_at: webhook.updated_at.map(time::format_millis),
        }
    }

    /// The v2 `AuditLogWebhook` body.
    pub fn webhook_v2_json(&self, region: &str) -> Value {
        let state = self.webhook_state(region);
        json!({
            "endpoint": state.endpoint,
            "enabled": state.enabled,
            "log_format": state.log_format,
            "skip_ssl_verification": state.skip_ssl_verification,
            "updated_at": state.updated_at.unwrap_or_else(|| ZERO_TIME.to_string()),
        })
    }

    /// The v2/v3 `AuditLogWebhookStatus` body.
    pub fn webhook_status_json(&self, region: &str) -> Value {
        let webhook = self.webhook(region);
        status_json(webhook.enabled, webhook.last_attempt.as_ref())
    }

    pub fn portal(&self, id: Uuid) -> Option<&Portal> {
        self.portals.iter().find(|p| p.id == id)
    }

    pub fn portal_mut(&mut self, id: Uuid) -> Option<&mut Portal> {
        self.portals.iter_mut().find(|p| p.id == id)
    }

    /// The replay job of a stream (`None` for a portal that is gone).
    pub fn replay_job(&self, stream: Stream) -> Option<&ReplayJob> {
        match stream {
            Stream::Org(region) => self.replay_jobs.get(region),
            Stream::Portal(_, id) => self.portal(id).map(|p| &p.replay_job),
        }
    }

    pub fn replay_job_mut(&mut self, stream: Stream) -> Option<&mut ReplayJob> {
        match stream {
            Stream::Org(region) => self.replay_jobs.get_mut(region),
            Stream::Portal(_, id) => self.portal_mut(id).map(|p| &mut p.replay_job),
        }
    }

    /// Adds a portal; its name must be new in its region.
    pub fn add_portal(&mut self, new: &NewPortal) -> Result<PortalState, String> {
        let region = match new.region.as_deref() {
            None => "us",
            Some(name) => crate::config::known_region(name).ok_or_else(|| {
                format!("unknown region {name:?}; regions are us, eu, au, me, in, sg")
            })?,
        };
        if self
            .portals
            .iter()
            .any(|p| p.region == region && p.name == new.name)
        {
            return Err(format!(
                "a portal named {:?} exists in {region} already (names are unique)",
                new.name
            ));
        }
        let id = match parse_given_id(&new.id)? {
            Some(id) if self.portal(id).is_some() => {
                return Err(format!("a portal with id {id} exists already"));
            }
            Some(id) => id,
            None => self.generator.uuid(),
        };
        let label = crate::codec::hex(&self.generator.bytes(6));
        let portal = Portal::new(new, region, id, &label, time::now())?;
        let state = portal.state();
        self.portals.push(portal);
        Ok(state)
    }

    /// Removes a portal (with its webhook, replay job and developers).
    pub fn remove_portal(&mut self, id: Uuid) -> bool {
        let before = self.portals.len();
        self.portals.retain(|p| p.id != id);
        self.portals.len() != before
    }

    /// Adds a developer to a portal; emails are unique within a portal.
    pub fn add_developer(
        &mut self,
        portal: Uuid,
        new: &NewDeveloper,
    ) -> Result<DeveloperState, String> {
        let given = parse_given_id(&new.id)?;
        let id = given.unwrap_or_else(|| self.generator.uuid());
        let portal = self
            .portal_mut(portal)
            .ok_or_else(|| format!("no portal with id {portal}"))?;
        if portal
            .developers
            .iter()
            .any(|d| d.email.eq_ignore_ascii_case(&new.email) || d.id == id.to_string())
        {
            return Err(format!(
                "portal {} has a developer with this email or id already",
                portal.id
            ));
        }
        let developer = new_developer(new, id, time::now())?;
        portal.developers.push(developer.clone());
        Ok(developer)
    }

    /// Adds a user; emails are unique (without case).
    pub fn add_user(&mut self, new: &NewUser) -> Result<UserState, String> {
        let id = self.generator.uuid();
        let user = new_user(new, id, time::now())?;
        if self
            .users
            .iter()
            .any(|u| u.email.eq_ignore_ascii_case(&user.email) || u.id == user.id)
        {
            return Err(format!(
                "a user with email {:?} or id {} exists already",
                user.email, user.id
            ));
        }
        self.users.push(user.clone());
        self.refresh_principals();
        Ok(user)
    }

    /// Adds a system account.
    pub fn add_system_account(
        &mut self,
        new: &NewSystemAccount,
    ) -> Result<SystemAccountState, String> {
        let id = self.generator.uuid();
        let account = new_system_account(new, id, time::now())?;
        if self.system_accounts.iter().any(|a| a.id == account.id) {
            return Err(format!(
                "a system account with id {} exists already",
                account.id
            ));
        }
        self.system_accounts.push(account.clone());
        self.refresh_principals();
        Ok(account)
    }

    /// Organisation events name the seeded users and system accounts.
    fn refresh_principals(&mut self) {
        let ids = self
            .users
            .iter()
            .map(|u| u.id.clone())
            .chain(self.system_accounts.iter().map(|a| a.id.clone()))
            .collect();
        self.generator.set_principals(ids);
    }
}

/// The `AuditLogWebhookStatus` / `PortalAuditLogWebhookStatus` body of a
/// webhook: `active` while enabled and the latest batch did not fail.
pub(crate) fn status_json(enabled: bool, last_attempt: Option<&LastAttempt>) -> Value {
    let failing = last_attempt.is_some_and(|a| a.failing);
    let mut body = json!({
        "webhook_status": if enabled && !failing { "active" } else { "inactive" },
        "webhook_enabled": enabled,
    });
    if let Some(last) = last_attempt {
        body["last_attempt_at"] = json!(time::format_millis(last.at));
        if let Some(status) = last.status {
            body["last_response_code"] = json!(status);
        }
        body["last_response_message"] = json!(last.message);
    }
    body
}

impl State {
    /// Keeps generated events (oldest dropped beyond [`MAX_EVENTS`]), for
    /// replay and for the pull API.
    pub fn store_events(&mut self, events: &[Event]) {
        self.history.add_events(events);
        self.events_generated += events.len() as u64;
        self.events.extend(events.iter().cloned());
        while self.events.len() > MAX_EVENTS {
            self.events.pop_front();
        }
    }

    /// Logs a new, unfinished delivery and returns its id.
    pub fn begin_delivery(&mut self, epoch: u64, mut delivery: Delivery) -> u64 {
        let id = self.next_delivery_id;
        self.next_delivery_id += 1;
        if epoch == self.epoch {
            delivery.id = id;
            self.deliveries.push_back(delivery);
            while self.deliveries.len() > MAX_DELIVERIES {
                self.deliveries.pop_front();
            }
        }
        id
    }

    fn delivery_mut(&mut self, id: u64) -> Option<&mut Delivery> {
        self.deliveries.iter_mut().rev().find(|d| d.id == id)
    }

    /// Adds an attempt to a logged delivery and makes it the last attempt
    /// of the stream's webhook (for the status endpoints).
    pub fn record_attempt(
        &mut self,
        epoch: u64,
        stream: Stream,
        id: u64,
        attempt: &Attempt,
        last: LastAttempt,
    ) {
        if epoch != self.epoch {
            return;
        }
        if let Some(delivery) = self.delivery_mut(id) {
            delivery.attempts.push(attempt.clone());
        }
        match stream {
            Stream::Org(region) => self.webhook_mut(region).last_attempt = Some(last),
            Stream::Portal(_, portal) => {
                if let Some(portal) = self.portal_mut(portal) {
                    portal.webhook.last_attempt = Some(last);
                }
            }
        }
    }

    /// Marks a logged delivery finished.
    pub fn finish_delivery(&mut self, epoch: u64, id: u64, delivered: bool, outcome: &str) {
        if epoch != self.epoch {
            return;
        }
        if let Some(delivery) = self.delivery_mut(id) {
            delivery.finished = true;
            delivery.delivered = delivered;
            delivery.outcome = Some(outcome.to_string());
        }
    }

    pub fn log_request(&mut self, entry: RequestLogEntry) {
        self.requests.push_back(entry);
        while self.requests.len() > MAX_REQUESTS {
            self.requests.pop_front();
        }
    }

    /// Counts a call of `route` (`"GET /v3/users/{userId}"`).
    pub fn count_request(&mut self, route: String) {
        *self.request_counts.entry(route).or_default() += 1;
    }

    pub fn record_violation(&mut self, violation: ContractViolation) {
        self.contract_violations.push_back(violation);
        while self.contract_violations.len() > MAX_VIOLATIONS {
            self.contract_violations.pop_front();
        }
    }

    pub fn contract_violations(&self) -> Vec<ContractViolation> {
        self.contract_violations.iter().cloned().collect()
    }

    pub fn clear_contract_violations(&mut self) {
        self.contract_violations.clear();
    }

    /// The action of the first armed fault matching the request, counting
    /// the request against it.
    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<FaultAction> {
        let index = self
            .faults
            .iter()
            .position(|f| f.fault.matches(method, path))?;
        let pending = &mut self.faults[index];
        pending.remaining -= 1;
        let action = pending.fault.action.clone();
        if pending.remaining == 0 {
            self.faults.remove(index);
        }
        Some(action)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            org_id: self.generator.org_id().to_string(),
            webhooks: REGIONS
                .iter()
                .map(|r| (r.to_string(), self.webhook_state(r)))
                .collect(),
            destinations: self.destinations.iter().map(Destination::state).collect(),
            deliveries: self.deliveries.iter().cloned().collect(),
            requests: self.requests.iter().cloned().collect(),
            events_generated: self.events_generated,
            events_stored: self.events.len(),
            audit_logs_stored: self.history.len(),
            clock_offset_ms: self.clock_offset,
            replay_jobs: self
                .replay_jobs
                .iter()
                .map(|(r, job)| (r.to_string(), job.state()))
                .collect(),
            tunnels: self
                .tunnels
                .iter()
                .map(|(host, addr)| (host.clone(), addr.to_string()))
                .collect(),
            faults: self.faults.iter().map(PendingFault::state).collect(),
            rates: self
                .rates
                .iter()
                .map(|(r, rate)| (r.to_string(), *rate))
                .collect(),
            receiver_down: self.receiver_down,
            request_counts: self.request_counts.clone(),
            contract_violations: self.contract_violations(),
            portals: self.portals.iter().map(Portal::state).collect(),
            users: self.users.clone(),
            system_accounts: self.system_accounts.clone(),
        }
    }
}

/// The state behind its lock, shared by the request handlers, the
/// background deliveries and the [`crate::Sim`] handle.
pub(crate) struct SharedState(Mutex<State>);

impl SharedState {
    pub fn new(state: State) -> SharedState {
        SharedState(Mutex::new(state))
    }

    /// Locks the state, ignoring poisoning: a panicking test thread must not
    /// wedge the emulator for the others.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new(&SimConfig::for_tests())
    }

    fn add(state: &mut State, name: &str) -> Uuid {
        state
            .create_destination(
                name.into(),
                "https://example.com/audit-logs".into(),
                Secret::new("Bearer s3cret"),
                LogFormat::Json,
                false,
            )
            .id
    }

    #[test]
    fn starts_with_sentinel_webhooks() {
        let state = state();
        let snapshot = state.snapshot();
        assert!(snapshot.is_pristine());
        for region in REGIONS {
            assert_eq!(
                state.webhook_v2_json(region),
                json!({"endpoint": "unconfigured", "enabled": false, "log_format": "cef",
                       "skip_ssl_verification": false, "updated_at": ZERO_TIME})
            );
            assert!(state.delivery_target(Stream::Org(region)).is_none());
        }
    }

    #[test]
    fn a_referenced_destination_cannot_be_deleted() {
        let mut state = state();
        let id = add(&mut state, "a");
        state.webhook_mut("eu").destination_id = Some(id);
        assert_eq!(state.delete_destination(id), Err(DeleteRefusal::InUse));
        state.webhook_mut("eu").destination_id = None;
        assert_eq!(state.delete_destination(id), Ok(()));
        assert_eq!(state.delete_destination(id), Err(DeleteRefusal::NotFound));
    }

    #[test]
    fn target_needs_an_enabled_webhook_with_an_endpoint() {
        let mut state = state();
        let id = add(&mut state, "a");
        state.webhook_mut("us").destination_id = Some(id);
        assert!(
            state.delivery_target(Stream::Org("us")).is_none(),
            "disabled"
        );
        state.webhook_mut("us").enabled = true;
        let target = state.delivery_target(Stream::Org("us")).unwrap();
        assert_eq!(target.endpoint, "https://example.com/audit-logs");
        assert_eq!(target.authorization.expose(), "Bearer s3cret");
        assert_eq!(target.log_format, LogFormat::Json);
        assert!(
            state.delivery_target(Stream::Org("eu")).is_none(),
            "other region"
        );
        assert_eq!(
            state.webhook_state("us").endpoint,
            "https://example.com/audit-logs"
        );
    }

    #[test]
    fn snapshot_never_contains_authorization_values() {
        let mut state = state();
        add(&mut state, "a");
        let text = serde_json::to_string(&state.snapshot()).unwrap();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("\"authorization_set\":true"), "{text}");
        let debug = format!("{:?}", state.destinations[0]);
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn faults_count_down_and_disappear() {
        let mut state = state();
        state.faults.push(PendingFault {
            fault: crate::Fault::status(None, "/x", 2, 503),
            remaining: 2,
        });
        assert!(state.take_fault("GET", "/y").is_none());
        assert!(state.take_fault("GET", "/x").is_some());
        assert_eq!(state.faults[0].remaining, 1);
        assert!(state.take_fault("POST", "/x").is_some());
        assert!(state.faults.is_empty());
        assert!(state.take_fault("GET", "/x").is_none());
    }

    #[test]
    fn reset_forgets_everything_but_keeps_ids_fresh() {
        let mut state = state();
        let before = add(&mut state, "a");
        state.webhook_mut("us").destination_id = Some(before);
        state
            .tunnels
            .insert("t.test".into(), "127.0.0.1:1".parse().unwrap());
        let epoch = state.epoch;
        state.reset();
        assert!(state.epoch > epoch);
        assert!(state.snapshot().is_pristine());
        assert!(state.tunnels.is_empty());
        let after = add(&mut state, "a");
        assert_ne!(before, after);
    }
}
