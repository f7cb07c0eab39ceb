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

use crate::config::SimConfig;
use crate::delivery::Deliveries;
use crate::fault::{Fault, FaultAction, PendingFault};
use crate::login::LoginGrant;
use crate::snapshot::Snapshot;
use crate::state::{SharedState, State};

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

    /// See [`crate::Sim::set_receiver_down`].
    pub fn set_receiver_down(&self, down: bool) {
        self.state().receiver_down = down;
        tracing::info!(down, "receiver switched");
    }

    /// See [`crate::Sim::reset`].
    pub fn reset(&self) {
        self.deliveries.restart();
        self.state().reset();
        tracing::info!("state reset");
    }
}
