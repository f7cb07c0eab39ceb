//! What the request handlers (the Konnect API and the admin API) work on:
//! the shared state (which also holds the armed faults), the configuration
//! and the delivery handle, together with the control calls that both the
//! admin API and [`crate::Sim`] offer.
//!
//! Keeping this apart from `Sim` lets the server and the handlers be built
//! without the handle that starts them: `sim` → `server` → `api`/`admin` →
//! `context` → `delivery`/`state`, with no way back.

use std::net::SocketAddr;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::SimConfig;
use crate::delivery::Deliveries;
use crate::fault::{Fault, FaultAction, PendingFault};
use crate::history::{CursorMode, SeedReport};
use crate::identity::{NewSystemAccount, NewUser, SystemAccountState, UserState};
use crate::login::LoginGrant;
use crate::portal::{DeveloperState, NewDeveloper, NewPortal, PortalState};
use crate::signing::Forgeries;
use crate::snapshot::Snapshot;
use crate::state::{SharedState, State, Stream};

/// The emulator's shared parts. Cheap to clone; clones share everything.
#[derive(Clone)]
pub(crate) struct Context {
    state: Arc<SharedState>,
    config: Arc<SimConfig>,
    deliveries: Deliveries,
}

impl Context {
    /// A fresh state for `config`; background work runs on the current
    /// runtime until `shutdown` is cancelled.
    pub fn new(config: SimConfig, shutdown: CancellationToken) -> Context {
        let state = Arc::new(SharedState::new(State::new(&config)));
        let config = Arc::new(config);
        let deliveries = Deliveries::new(state.clone(), config.clone(), shutdown);
        Context {
            state,
            config,
            deliveries,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    pub fn deliveries(&self) -> &Deliveries {
        &self.deliveries
    }

    /// See [`crate::Sim::snapshot`].
    pub fn snapshot(&self) -> Snapshot {
        self.state().snapshot()
    }

    /// See [`crate::Sim::issue_login`].
    pub fn issue_login(&self, ttl: Duration) -> LoginGrant {
        let mut state = self.state();
        let state = &mut *state;
        let generator = &mut state.generator;
        state.logins.issue(|| generator.bytes(32), ttl)
    }

    /// See [`crate::Sim::add_tunnel`].
    pub fn add_tunnel(&self, host: &str, target: SocketAddr) {
        self.state()
            .tunnels
            .insert(host.to_ascii_lowercase(), target);
    }

    /// See [`crate::Sim::remove_tunnel`].
    pub fn remove_tunnel(&self, host: &str) -> bool {
        self.state()
            .tunnels
            .remove(&host.to_ascii_lowercase())
            .is_some()
    }

    /// See [`crate::Sim::inject_fault`].
    ///
    /// # Panics
    /// If a `Status` or `Problem` fault's status is not in 100..=599.
    pub fn inject_fault(&self, fault: Fault) {
        if let FaultAction::Status { status, .. } | FaultAction::Problem { status, .. } =
            &fault.action
        {
            let status = *status;
            assert!(
                (100..=599).contains(&status),
                "fault status {status} is not an HTTP status"
            );
        }
        if fault.count == 0 {
            return;
        }
        let remaining = fault.count;
        self.state().faults.push(PendingFault { fault, remaining });
    }

    /// See [`crate::Sim::clear_faults`].
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// See [`crate::Sim::seed_audit_logs`]. `start` and `end` are on the
    /// emulated clock; `None` is its "now".
    pub fn seed_audit_logs(
        &self,
        region: &'static str,
        count: usize,
        start: crate::time::Millis,
        end: Option<crate::time::Millis>,
    ) -> SeedReport {
        let mut state = self.state();
        let state = &mut *state;
        let end = end.unwrap_or_else(|| state.now());
        state.history.seed(
            &mut state.generator,
            &state.signing.current_key(),
            region,
            count,
            start.min(end),
            end,
        )
    }

    /// See [`crate::Sim::add_raw_audit_logs`].
    pub fn add_raw_audit_logs(
        &self,
        region: &'static str,
        records: &[String],
    ) -> Result<SeedReport, String> {
        self.state().history.add_raw(region, records)
    }

    /// See [`crate::Sim::set_cursor_mode`].
    pub fn set_cursor_mode(&self, mode: CursorMode) {
        self.state().history.cursors = mode;
    }

    /// See [`crate::Sim::set_clock_offset`].
    pub fn set_clock_offset(&self, offset: crate::time::Millis) {
        self.state().clock_offset = offset;
    }

    /// See [`crate::Sim::rotate_signing_key`].
    pub fn rotate_signing_key(&self, seed: Option<[u8; 32]>, keep_old: bool) -> String {
        let mut state = self.state();
        let state = &mut *state;
        let kid = state.signing.rotate(&mut state.generator, seed, keep_old);
        tracing::info!(%kid, keep_old, "signing key rotated");
        kid
    }

    /// See [`crate::Sim::forge_next`].
    pub fn forge_next(&self, tampered: u64, unsigned: u64) -> Forgeries {
        self.state().signing.forge(tampered, unsigned)
    }

    /// See [`crate::Sim::set_receiver_down`].
    pub fn set_receiver_down(&self, down: bool) {
        self.state().receiver_down = down;
        tracing::info!(down, "receiver switched");
    }

    /// See [`crate::Sim::add_portal_with`].
    pub fn add_portal(&self, portal: &NewPortal) -> Result<PortalState, String> {
        let added = self.state().add_portal(portal)?;
        tracing::info!(id = %added.id, region = %added.region, name = %added.name, "portal added");
        Ok(added)
    }

    /// See [`crate::Sim::remove_portal`].
    pub fn remove_portal(&self, id: &str) -> bool {
        Uuid::parse_str(id).is_ok_and(|id| self.state().remove_portal(id))
    }

    /// See [`crate::Sim::add_portal_developer_with`].
    pub fn add_developer(
        &self,
        portal: &str,
        developer: &NewDeveloper,
    ) -> Result<DeveloperState, String> {
        let id = Uuid::parse_str(portal).map_err(|_| format!("no portal with id {portal:?}"))?;
        self.state().add_developer(id, developer)
    }

    /// The stream of a portal, if it exists.
    pub fn portal_stream(&self, portal: &str) -> Option<Stream> {
        let id = Uuid::parse_str(portal).ok()?;
        let state = self.state();
        let portal = state.portal(id)?;
        Some(Stream::Portal(portal.region, id))
    }

    /// See [`crate::Sim::fail_portal_replay_jobs`].
    pub fn fail_portal_replay_jobs(&self, portal: &str, count: u32) -> Result<(), String> {
        let Some(stream) = self.portal_stream(portal) else {
            return Err(format!("no portal with id {portal:?}"));
        };
        let id = stream.portal().expect("a portal stream");
        self.state()
            .replay_control
            .fail_next_of_portal
            .insert(id, count);
        Ok(())
    }

    /// See [`crate::Sim::add_user_with`].
    pub fn add_user(&self, user: &NewUser) -> Result<UserState, String> {
        self.state().add_user(user)
    }

    /// See [`crate::Sim::add_system_account_with`].
    pub fn add_system_account(
        &self,
        account: &NewSystemAccount,
    ) -> Result<SystemAccountState, String> {
        self.state().add_system_account(account)
    }

    /// See [`crate::Sim::reset`].
    pub fn reset(&self) {
        self.deliveries.restart();
        self.state().reset();
        tracing::info!("state reset");
    }
}
