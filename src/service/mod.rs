//! Running `listen` as a service: what a supervisor and a monitoring system
//! ask of a long-running listener, kept apart from the listener itself.
//!
//! - `health`: the listener's phase (starting, serving, draining) and the
//!   readiness verdict drawn from it and from a [`Snapshots`] of the
//!   counters.
//! - `admin`: the admin endpoint (`--admin-address`): `/healthz`,
//!   `/readyz` and `/metrics` on a port of its own, with the webhook
//!   port's limits.
//! - `metrics`: `/metrics` in the Prometheus text format or OpenMetrics,
//!   from the same snapshot `listener.json` is written from, plus the
//!   process' own `process_*` figures.
//! - `notify`: systemd's notification protocol (`READY=1`, `STATUS=`,
//!   `STOPPING=1`, `WATCHDOG=1`) when `NOTIFY_SOCKET` is set.
//!
//! `crate::listen` calls the hooks of [`Service`] at each step of its
//! lifecycle and provides the snapshots (it owns `listener.json`'s
//! content); `--dry-run` is `crate::listen`'s, the bounded log
//! `crate::logging`'s.

pub mod admin;
pub mod health;
pub mod metrics;
pub mod notify;
pub mod options;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::CliError;
use crate::listen::state::ListenerState;
pub use health::{Health, Phase};
pub use notify::Notifier;

/// The service settings of one `listen`/`tail` run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceOptions {
    /// `--admin-address`: where the admin endpoint listens; `None` is off.
    pub admin_address: Option<SocketAddr>,
    /// `--dry-run`: check everything, change nothing.
    pub dry_run: bool,
}

/// The listener's counters at one moment, as `listener.json` holds them;
/// provided by `crate::listen` once it serves.
pub trait Snapshots: Send + Sync {
    fn snapshot(&self) -> ListenerState;
}

/// The service side of one run: health, the admin endpoint (if asked for)
/// and systemd's notifications (if under systemd).
pub struct Service {
    health: Arc<Health>,
    admin_address: Option<SocketAddr>,
    admin: Mutex<Option<(CancellationToken, tokio::task::JoinHandle<()>)>>,
    notifier: Option<Notifier>,
}

impl Service {
    /// Binds the admin endpoint (if asked for) and serves it in the
    /// background: `/healthz` answers from now on, `/readyz` says
    /// "starting". `webhook` is the webhook listener's bound address,
    /// whose port the admin endpoint must not share.
    pub async fn start(opts: &ServiceOptions, webhook: SocketAddr) -> Result<Service, CliError> {
        let health = Arc::new(Health::default());
        let notifier = Notifier::from_env();
        if let Some(n) = &notifier {
            n.status("starting: checking Konnect and the tunnel");
        }
        let (admin_address, admin) = match opts.admin_address {
            None => (None, None),
            Some(addr) => {
                check_distinct(addr, webhook)?;
                let listener = admin::bind(addr, webhook).await?;
                let bound = listener
                    .local_addr()
                    .map_err(|e| CliError::new(format!("failed to read the admin address: {e}")))?;
                let stop = CancellationToken::new();
                let task = tokio::spawn(admin::serve(listener, health.clone(), stop.clone()));
                tracing::info!(admin_address = %bound, "admin endpoint listening");
                (Some(bound), Some((stop, task)))
            }
        };
        Ok(Service {
            health,
            admin_address,
            admin: Mutex::new(admin),
            notifier,
        })
    }

    /// No admin endpoint and no notifications (`--dry-run`, which checks
    /// and must not tell systemd anything).
    pub fn quiet() -> Service {
        Service {
            health: Arc::default(),
            admin_address: None,
            admin: Mutex::new(None),
            notifier: None,
        }
    }

    /// The admin endpoint's bound address, if it runs.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin_address
    }

    /// The listener serves and the webhook points at it (or the listener
    /// was told not to configure it): ready.
    pub fn serving(&self, snapshots: Arc<dyn Snapshots>) {
        self.health.serving(snapshots);
        if let Some(n) = &self.notifier {
            n.ready("serving: waiting for audit-log records");
        }
    }

    /// Shutdown has begun (a stop request, or serving ended): not ready
    /// any more, and systemd is told. Idempotent.
    pub fn stopping(&self) {
        if self.health.draining()
            && let Some(n) = &self.notifier
        {
            n.stopping("stopping: draining and removing the Konnect destination");
        }
    }

    /// A one-line summary for systemd's status while serving.
    pub fn status(&self, state: &ListenerState) {
        if let Some(n) = &self.notifier {
            n.status(&health::status_line(state));
        }
    }

    /// How often the serving loop must call [`Service::watchdog`], if
    /// systemd's watchdog is on.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.notifier.as_ref().and_then(Notifier::watchdog_interval)
    }

    /// Tells systemd's watchdog the serving loop is alive.
    pub fn watchdog(&self) {
        if let Some(n) = &self.notifier {
            n.watchdog();
        }
    }

    /// Stops the admin endpoint (the last thing a run does).
    pub async fn shutdown(&self) {
        let admin = self.admin.lock().expect("admin lock poisoned").take();
        if let Some((stop, task)) = admin {
            stop.cancel();
            let _ = task.await;
        }
    }
}

/// The admin endpoint never takes the webhook's port: the tunnel exposes
/// that one to the internet.
pub(crate) fn check_distinct(admin: SocketAddr, webhook: SocketAddr) -> Result<(), CliError> {
    if admin.port() != 0 && admin.port() == webhook.port() {
        return Err(CliError::new(format!(
            "--admin-address {admin} uses the listener's port {}: the admin endpoint needs a port of its own",
            webhook.port()
        ))
        .with_hint(
            "choose another port for --admin-address (0 picks a free one); nothing was changed in Konnect",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_endpoint_refuses_the_webhook_port() {
        let hook: SocketAddr = "127.0.0.1:19090".parse().unwrap();
        for admin in ["127.0.0.1:19090", "0.0.0.0:19090", "[::1]:19090"] {
            let e = check_distinct(admin.parse().unwrap(), hook).unwrap_err();
            assert!(e.message.contains("port of its own"), "{}", e.message);
        }
        check_distinct("127.0.0.1:0".parse().unwrap(), hook).unwrap();
        check_distinct("127.0.0.1:9464".parse().unwrap(), hook).unwrap();
    }
}
