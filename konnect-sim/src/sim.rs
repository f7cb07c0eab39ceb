//! The emulator handle: starting and stopping the server, and the control
//! calls tests make (trigger events, steady rates, tunnels, faults, reset,
//! snapshots).
//!
//! The calls themselves are in `context.rs` (shared with the admin API) and
//! `delivery/`; this module adds the listening socket and the public,
//! documented surface.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{SimConfig, known_region};
use crate::context::Context;
use crate::fault::Fault;
use crate::history::{CursorMode, SeedReport};
use crate::identity::{NewSystemAccount, NewUser, SystemAccountState, UserState};
use crate::login::LoginGrant;
use crate::portal::{DeveloperState, NewDeveloper, NewPortal, PortalState};
use crate::server;
use crate::signing::Forgeries;
use crate::snapshot::{DeliverySource, Snapshot, TriggerReport};

/// A running emulator. Cheap to clone; every clone controls the same one.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    context: Context,
    shutdown: CancellationToken,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Sim {
    /// Binds `addr` (port 0 picks a free port) and starts serving.
    ///
    /// # Panics
    /// If `config.batch_size` is 0.
    pub async fn start(addr: SocketAddr, config: SimConfig) -> std::io::Result<Sim> {
        assert!(
            config.batch_size >= 1,
            "SimConfig::batch_size must be at least 1"
        );
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let context = Context::new(config, shutdown.clone());
        let server = tokio::spawn(server::serve(context.clone(), listener, shutdown.clone()));
        tracing::info!(%addr, "konnect-sim listening");
        Ok(Sim {
            inner: Arc::new(Inner {
                addr,
                context,
                shutdown,
                server: Mutex::new(Some(server)),
            }),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT`: what replaces both Konnect hosts
    /// (`--base-url`). An unspecified bind address (`0.0.0.0`, `::`) is
    /// reported as loopback.
    pub fn base_url(&self) -> String {
        let addr = self.inner.addr;
        match addr {
            SocketAddr::V4(v4) if v4.ip().is_unspecified() => {
                format!("http://127.0.0.1:{}", v4.port())
            }
            SocketAddr::V6(v6) if v6.ip().is_unspecified() => format!("http://[::1]:{}", v6.port()),
            _ => format!("http://{addr}"),
        }
    }

    /// The first configured PAT (empty if none is configured).
    pub fn pat(&self) -> String {
        self.context()
            .config()
            .pats
            .first()
            .cloned()
            .unwrap_or_default()
    }

    /// Stands in for a completed `kongctl login`: a fresh access token,
    /// valid for `ttl` (zero: already expired), and a refresh token for
    /// `POST /kauth/api/v1/refresh`, whose tokens last
    /// [`SimConfig::login_ttl`](crate::SimConfig::login_ttl).
    pub fn issue_login(&self, ttl: Duration) -> LoginGrant {
        self.context().issue_login(ttl)
    }

    /// How many login refreshes succeeded.
    pub fn login_refreshes(&self) -> u64 {
        self.context().state().logins.refreshed
    }

    /// A copy of the whole state.
    pub fn snapshot(&self) -> Snapshot {
        self.context().snapshot()
    }

    /// Polls the state until `done` holds or `timeout` passes; `Err` carries
    /// the last snapshot.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Snapshot) -> bool,
    ) -> Result<Snapshot, Box<Snapshot>> {
        let deadline = Instant::now() + timeout;
        loop {
            let snapshot = self.snapshot();
            if done(&snapshot) {
                return Ok(snapshot);
            }
            if Instant::now() >= deadline {
                return Err(Box::new(snapshot));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Generates `count` events in `region` now and, if the region's webhook
    /// is enabled, delivers them in batches of `batch_size`, one batch after
    /// the other. Returns when every batch is finished (retries included).
    /// Without an enabled webhook the events are only stored.
    ///
    /// # Panics
    /// If `region` is not one of `us`, `eu`, `au`, `me`, `in`, `sg`.
    pub async fn trigger(&self, region: &str, count: usize) -> TriggerReport {
        let region = expect_region(region);
        self.context()
            .deliveries()
            .emit(region, count, DeliverySource::Trigger)
            .await
    }

    /// Generates events in `region` at a steady `per_second` rate (0 stops),
    /// delivered like [`Sim::trigger`]'s.
    ///
    /// # Panics
    /// If `region` is unknown or `per_second` is negative or not finite.
    pub fn set_rate(&self, region: &str, per_second: f64) {
        let region = expect_region(region);
        assert!(
            per_second.is_finite() && per_second >= 0.0,
            "rate must be a finite number of events per second >= 0, not {per_second}"
        );
        self.context().deliveries().set_rate(region, per_second);
    }

    /// Routes deliveries to `host` (an endpoint's host name, any port) to
    /// `target` over plain HTTP, keeping the endpoint's path and query and
    /// sending `Host: <host>`.
    pub fn add_tunnel(&self, host: &str, target: SocketAddr) {
        self.context().add_tunnel(host, target);
    }

    /// Removes a tunnel; true if there was one.
    pub fn remove_tunnel(&self, host: &str) -> bool {
        self.context().remove_tunnel(host)
    }

    /// Arms a fault for the next `fault.count` matching API requests. Faults
    /// are tried in the order they were armed.
    ///
    /// # Panics
    /// If a `Status` or `Problem` fault's status is not in 100..=599.
    pub fn inject_fault(&self, fault: Fault) {
        self.context().inject_fault(fault);
    }

    /// Adds `count` generated records to `region`'s pull-API history, their
    /// times spread evenly over the `span` before the emulated now (whole
    /// seconds, as Konnect's `ts`). They are not delivered: this is history
    /// Konnect kept, for catch-up tests and benchmarks. A million cost the
    /// emulator tens of megabytes (a page makes them again from a seed).
    ///
    /// # Panics
    /// If `region` is unknown.
    pub fn seed_audit_logs(&self, region: &str, count: usize, span: Duration) -> SeedReport {
        let region = expect_region(region);
        let now = self.context().state().now();
        let start = now.saturating_sub(span.as_millis().min(i64::MAX as u128) as i64);
        self.context()
            .seed_audit_logs(region, count, start, Some(now))
    }

    /// Like [`Sim::seed_audit_logs`], over `[start, end]` (instants on the
    /// emulated clock).
    ///
    /// # Panics
    /// If `region` is unknown or `start` is after `end`.
    pub fn seed_audit_logs_between(
        &self,
        region: &str,
        count: usize,
        start: SystemTime,
        end: SystemTime,
    ) -> SeedReport {
        let region = expect_region(region);
        assert!(start <= end, "start must not be after end");
        self.context()
            .seed_audit_logs(region, count, millis(start), Some(millis(end)))
    }

    /// Adds records to `region`'s pull-API history exactly as given (one
    /// JSON object each, with an RFC 3339 `ts`; its `type` is what
    /// `filter[type]` matches): for unknown fields, integers beyond 2^53 or
    /// records that arrive late. `Err` says which record is unusable; then
    /// none is added.
    ///
    /// # Panics
    /// If `region` is unknown.
    pub fn add_raw_audit_logs(&self, region: &str, records: &[&str]) -> Result<SeedReport, String> {
        let region = expect_region(region);
        let records: Vec<String> = records.iter().map(|r| r.to_string()).collect();
        self.context().add_raw_audit_logs(region, &records)
    }

    /// How the pull API's cursors point into the list ([`CursorMode::Keyed`]
    /// after a start or reset).
    pub fn set_cursor_mode(&self, mode: CursorMode) {
        self.context().set_cursor_mode(mode);
    }

    /// Sets the emulated Konnect's clock `offset_ms` milliseconds ahead of
    /// this machine's (negative: behind). It moves the `Date` header of
    /// every API answer, the time of new events, and the pull API's default
    /// `filter[ts][lte]` ("now"). A reset sets it back to 0.
    pub fn set_clock_offset(&self, offset_ms: i64) {
        self.context().set_clock_offset(offset_ms);
    }

    /// The emulated Konnect's current time.
    pub fn now(&self) -> SystemTime {
        let ms = self.context().state().now();
        if ms >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_millis(ms as u64)
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
        }
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.context().clear_faults();
    }

    /// A new Ed25519 key signs the records generated from now on; the JWKS
    /// lists it first, and the earlier keys only if `keep_old`. Returns the
    /// new key's `kid`. Events generated before keep their signatures.
    pub fn rotate_signing_key(&self, keep_old: bool) -> String {
        self.context().rotate_signing_key(None, keep_old)
    }

    /// Like [`Sim::rotate_signing_key`], with the key made from `seed`
    /// (RFC 8032's 32-byte private key), so that a test or a benchmark can
    /// sign records as this emulator does and have its JWKS verify them.
    pub fn rotate_signing_key_to_seed(&self, seed: [u8; 32], keep_old: bool) -> String {
        self.context().rotate_signing_key(Some(seed), keep_old)
    }

    /// Makes the next `tampered` generated events tampered (signed, then
    /// their `src` changed, so the signature fails) and the `unsigned`
    /// after them unsigned (no `sig`). Adds to what is still pending;
    /// returns the pending counts. A reset drops them.
    pub fn forge_next(&self, tampered: u64, unsigned: u64) -> Forgeries {
        self.context().forge_next(tampered, unsigned)
    }

    /// While `down`, every delivery attempt (triggers, rates, replay jobs)
    /// fails at once with a connection error, as if the receiver were down:
    /// Konnect retries, gives up, and the events are not delivered, so a
    /// listener misses them as it would while stopped or asleep. The events
    /// are still stored, for the pull API and replay jobs.
    pub fn set_receiver_down(&self, down: bool) {
        self.context().set_receiver_down(down);
    }

    /// The next `count` replay jobs (any region, any portal) fail: they go
    /// `running`, deliver nothing and end `failed`.
    pub fn fail_replay_jobs(&self, count: u32) {
        self.context().state().replay_control.fail_next = count;
    }

    /// While `hold` is set, accepted replay jobs wait in `pending` (so a
    /// second `PUT` meets the 409 of a running job); clearing it lets them
    /// run.
    pub fn hold_replay_jobs(&self, hold: bool) {
        self.context().state().replay_control.hold = hold;
    }

    /// Adds a Dev Portal named `name` to `region` (every other field as the
    /// spec's defaults; see [`Sim::add_portal_with`]). `Err` if the region
    /// has a portal of that name already (names are unique).
    pub fn add_portal(&self, region: &str, name: &str) -> Result<PortalState, String> {
        self.add_portal_with(&NewPortal {
            region: Some(region.to_string()),
            ..NewPortal::named(name)
        })
    }

    /// Adds a Dev Portal, as an organisation admin would have made it
    /// (Konnect's portal management is not emulated): it is listed by
    /// `GET /v3/portals` of its region, has an unconfigured audit-log
    /// webhook and replay job, and no developers. `Err` says why it cannot
    /// be added (unknown region, name taken, invalid field).
    pub fn add_portal_with(&self, portal: &NewPortal) -> Result<PortalState, String> {
        self.context().add_portal(portal)
    }

    /// Removes a portal with its webhook, replay job and developers (its
    /// destination stays); false if there is none with this id. A replay
    /// job still running ends without recording anything.
    pub fn remove_portal(&self, id: &str) -> bool {
        self.context().remove_portal(id)
    }

    /// Adds an approved developer to a portal; see
    /// [`Sim::add_portal_developer_with`].
    pub fn add_portal_developer(
        &self,
        portal_id: &str,
        email: &str,
        full_name: &str,
    ) -> Result<DeveloperState, String> {
        self.add_portal_developer_with(
            portal_id,
            &NewDeveloper {
                email: email.to_string(),
                full_name: full_name.to_string(),
                ..NewDeveloper::default()
            },
        )
    }

    /// Adds a developer to a portal: `GET
    /// /v3/portals/{portalId}/developers/{developerId}` shows it, and the
    /// portal's events name one of its developers as `principal_id` once it
    /// has any. `Err` for an unknown portal, a taken email or id, or an
    /// invalid field.
    pub fn add_portal_developer_with(
        &self,
        portal_id: &str,
        developer: &NewDeveloper,
    ) -> Result<DeveloperState, String> {
        self.context().add_developer(portal_id, developer)
    }

    /// Generates `count` Dev Portal authentication events of the portal
    /// (developer logins, `event_product` `Dev-Portal`, with `portal_id`,
    /// signed like the organisation's) and, if the portal's webhook is
    /// enabled, delivers them to its destination in batches, with the same
    /// format, headers, gzip and retries as the organisation's webhook.
    /// Returns when every batch is finished. The events are stored for the
    /// portal's replay jobs and the pull API.
    ///
    /// # Panics
    /// If there is no portal with this id.
    pub async fn trigger_portal(&self, portal_id: &str, count: usize) -> TriggerReport {
        let stream = self
            .context()
            .portal_stream(portal_id)
            .unwrap_or_else(|| panic!("no portal with id {portal_id:?}"));
        self.context()
            .deliveries()
            .emit_stream(stream, count, DeliverySource::Trigger)
            .await
    }

    /// The next `count` replay jobs of this portal fail (they go
    /// `running`, deliver nothing and end `failed`); other streams' jobs
    /// are not affected. Replaces an earlier count for the portal.
    ///
    /// # Panics
    /// If there is no portal with this id.
    pub fn fail_portal_replay_jobs(&self, portal_id: &str, count: u32) {
        if let Err(reason) = self.context().fail_portal_replay_jobs(portal_id, count) {
            panic!("{reason}");
        }
    }

    /// Adds an active user with this email and full name; see
    /// [`Sim::add_user_with`].
    pub fn add_user(&self, email: &str, full_name: &str) -> Result<UserState, String> {
        self.add_user_with(&NewUser {
            email: email.to_string(),
            full_name: full_name.to_string(),
            ..NewUser::default()
        })
    }

    /// Adds a user to the organisation: `GET /v3/users` lists it, `GET
    /// /v3/users/{id}` shows it, and from now on organisation events name
    /// a seeded user or system account as `principal_id` (chosen at
    /// random among them). `Err` for a taken email or id or an invalid
    /// field.
    pub fn add_user_with(&self, user: &NewUser) -> Result<UserState, String> {
        self.context().add_user(user)
    }

    /// Adds a system account with this name and description; see
    /// [`Sim::add_system_account_with`].
    pub fn add_system_account(
        &self,
        name: &str,
        description: &str,
    ) -> Result<SystemAccountState, String> {
        self.add_system_account_with(&NewSystemAccount {
            name: name.to_string(),
            description: Some(description.to_string()),
            ..NewSystemAccount::default()
        })
    }

    /// Adds a system account to the organisation (listed and shown by the
    /// identity API, and named by organisation events as users are).
    pub fn add_system_account_with(
        &self,
        account: &NewSystemAccount,
    ) -> Result<SystemAccountState, String> {
        self.context().add_system_account(account)
    }

    /// The requests that broke the OpenAPI contract since start, the last
    /// reset or [`Sim::clear_contract_violations`], oldest first: an
    /// undocumented path or method, an undeclared or ill-typed query or
    /// path parameter, a body that does not match the request schema or
    /// names a property the schema does not (see
    /// [`crate::contract::Contract::check_request`]). The emulator still
    /// answers such requests as Konnect would; a client's test asserts this
    /// list is empty to prove it keeps the contract.
    pub fn contract_violations(&self) -> Vec<crate::ContractViolation> {
        self.context().state().contract_violations()
    }

    /// Forgets the contract violations recorded so far (a test that sent
    /// bad requests on purpose, before the part that must be clean).
    pub fn clear_contract_violations(&self) {
        self.context().state().clear_contract_violations();
    }

    /// How many API calls `method route` got since start or the last reset,
    /// faulted ones included; `route` is the path as the specs spell it,
    /// with the version: `sim.request_count("GET", "/v3/users/{userId}")`.
    /// A path in no spec is counted under itself.
    pub fn request_count(&self, method: &str, route: &str) -> u64 {
        let key = format!("{} {route}", method.to_ascii_uppercase());
        self.context()
            .state()
            .request_counts
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    /// Every per-route count ([`Sim::request_count`]), keyed
    /// `"METHOD /v3/route"`.
    pub fn request_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.context().state().request_counts.clone()
    }

    /// Back to the initial state: sentinel webhooks, no destinations, events,
    /// deliveries, requests, tunnels, faults or rates, no portals, users or
    /// system accounts, no request counts or contract violations, the
    /// receiver up and replay jobs neither held nor made to fail. Retries and replay
    /// jobs in progress stop and record nothing more.
    pub fn reset(&self) {
        self.context().reset();
    }

    /// Stops serving: no new connections, in-flight requests get up to 3
    /// seconds, background work stops.
    pub async fn shutdown(self) {
        self.inner.shutdown.cancel();
        self.context().deliveries().stop();
        let server = self
            .inner
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(server) = server {
            let _ = server.await;
        }
        tracing::info!("konnect-sim stopped");
    }

    fn context(&self) -> &Context {
        &self.inner.context
    }
}

fn expect_region(region: &str) -> &'static str {
    known_region(region)
        .unwrap_or_else(|| panic!("unknown region {region:?}; regions are us, eu, au, me, in, sg"))
}

/// Milliseconds since the Unix epoch (negative before it).
fn millis(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_millis().min(i64::MAX as u128) as i64),
    }
}
