//! `listen` and `tail`: the startup that loses nothing, the serving loop,
//! and the cleanup that leaves Konnect as it was. `run` and
//! `Run::lifecycle` are the whole sequence, step by step (SPEC §3, §8);
//! each step lives in one module:
//!
//! - `options`: 1. validate the flags and the endpoint (before `run`).
//! - `signals`: stop requests; the first stops, a second abandons cleanup.
//! - `state`: 2. the per-profile lock, and the state files' format.
//! - `bind`: 3. bind the socket, before anything remote changes.
//! - `check`: the tunnel self-test through the public endpoint, still
//!   before anything remote changes.
//! - `keys`: 4. before any Konnect change, the JWKS for `--verify`.
//! - `reclaim`: 4. then, finish an earlier listener's interrupted cleanup.
//! - `startup`: 4–6. webhook guard, unused name, create the destination
//!   (recorded in `destination.json`), attach the webhook; undo on failure
//!   or interrupt.
//! - `serve`: 7. `listener.json`; then serving, draining and its final
//!   `running: false`.
//! - `banner`: 8. the startup block (listen) or its log lines (tail).
//! - `finish`: cleanup after a stop or a failed startup, with
//!   `cleanup::release` doing the Konnect calls.
//! - `dry_run`: `--dry-run`, the same checks with only reads, then what a
//!   start would create.
//!
//! Health, the admin endpoint and systemd's notifications are
//! `crate::service`'s; `run` and `serve` call its hooks.
//!
//! Any failure or interrupt after the first remote change undoes what was
//! done. The HTTP listener lives in `crate::listener`, record printing in
//! `crate::tail`.

mod banner;
mod bind;
pub mod check;
pub mod cleanup;
mod dry_run;
mod finish;
mod keys;
pub mod options;
mod reclaim;
mod serve;
mod signals;
mod startup;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Settings;
use crate::error::CliError;
use crate::konnect::client::ClientOptions;
use crate::konnect::error::redact_url;
use crate::konnect::{AuditLogs, KonnectClient};
use crate::store::EventStore;
use crate::verify::{self, LiveVerifier, live::KeySource};
pub use banner::local_endpoint_base as admin_endpoint_base;
use bind::bind;
pub use bind::local_endpoint;
use cleanup::{Progress, SharedProgress};
pub use dry_run::dry_run;
pub use options::{AuthorizationOrigin, ListenOptions, LogFormat};
use signals::Signals;
use state::{ProfileLock, StoragePaths};

/// How long cleanup may take after a stop (SPEC §8).
const CLEANUP_DEADLINE: Duration = Duration::from_secs(60);

/// What a started listener tells whoever waits for it (the `--detach`
/// parent).
#[derive(Debug, Clone)]
pub struct Ready {
    pub listen_address: SocketAddr,
    pub local_endpoint: String,
    pub endpoint: String,
    pub destination_id: Option<String>,
    pub events_file: PathBuf,
    pub listener_state_file: PathBuf,
    /// Warnings startup showed on stderr (the tunnel check's), for a
    /// parent whose child's stderr is a log file.
    pub warnings: Vec<String>,
    /// The admin endpoint's bound address (`--admin-address`).
    pub admin_address: Option<SocketAddr>,
}

/// Called once startup succeeded (bound, Konnect configured, state files
/// written), before serving.
pub type OnReady = Box<dyn FnOnce(&Ready) + Send>;

/// Hooks for the detached child.
#[derive(Default)]
pub struct Hooks {
    pub on_ready: Option<OnReady>,
}

/// Everything one run needs.
struct Run {
    settings: Settings,
    opts: ListenOptions,
    paths: StoragePaths,
    audit: AuditLogs,
    progress: SharedProgress,
    signals: Signals,
    /// The signature check (`--verify warn|reject`); `None` under `off`.
    verifier: Option<Arc<LiveVerifier>>,
    /// Health, the admin endpoint and systemd's notifications.
    service: Arc<crate::service::Service>,
}

/// Runs `listen` or `tail` until stopped; `Ok` after a clean stop whose
/// cleanup succeeded.
pub async fn run(settings: Settings, opts: ListenOptions, hooks: Hooks) -> Result<(), CliError> {
    let signals = Signals::install()?;
    let client = KonnectClient::from_settings(&settings, ClientOptions::from_env())
        .map_err(CliError::new)?;
    for w in &opts.warnings {
        eprintln!("Warning: {w}");
    }

    // Steps 2 and 3 (lock, store, socket) first: all local, all before any
    // remote change.
    let paths = StoragePaths::new(settings.audit_log_dir());
    crate::fsutil::create_private_dir_all(&paths.dir).map_err(|e| {
        CliError::new(format!(
            "failed to create storage directory {}: {e}",
            paths.dir.display()
        ))
    })?;
    let lock = ProfileLock::acquire(&paths.lock_file).map_err(lock_error)?;
    let (store, opened) = EventStore::open(&paths.events_file, opts.store).map_err(|e| {
        CliError::new(format!(
            "failed to open events file {}: {e}",
            paths.events_file.display()
        ))
    })?;
    // What an interrupted rotation, compression or deletion left, finished
    // or undone (stderr is the log file of a detached listener).
    for note in &opened.notes {
        eprintln!("Warning: {note}");
        tracing::warn!(note = %note, "store recovered");
    }
    if let Some(r) = opened.repair {
        eprintln!(
            "Warning: {}: removed a torn final line ({} bytes) left by an interrupted write; \
             it was never acknowledged, so Konnect delivers it again",
            paths.events_file.display(),
            r.removed_bytes
        );
        tracing::warn!(file = %paths.events_file.display(), removed_bytes = r.removed_bytes, "repaired torn final line");
    }
    let listener = bind(opts.listen_address).await?;
    let bound = listener
        .local_addr()
        .map_err(|e| CliError::new(format!("failed to read the bound address: {e}")))?;
    // The admin endpoint answers from here on (`/readyz`: starting), and a
    // stop request at any point makes it (and systemd) see the listener
    // stopping.
    let service = Arc::new(crate::service::Service::start(&opts.service, bound).await?);
    {
        let (service, stop) = (service.clone(), signals.stop.clone());
        tokio::spawn(async move {
            stop.cancelled().await;
            service.stopping();
        });
    }

    let audit = AuditLogs::new(client);
    let verifier = (opts.verify != verify::Mode::Off).then(|| {
        Arc::new(LiveVerifier::new(
            opts.verify,
            Some(KeySource {
                audit: audit.clone(),
                saved: paths.dir.join(verify::JWKS_FILE),
            }),
            paths.dir.join(verify::REJECTED_FILE),
        ))
    });
    let run = Run {
        settings,
        opts,
        paths,
        audit,
        progress: Arc::new(Mutex::new(Progress::default())),
        signals,
        verifier,
        service: service.clone(),
    };
    let result = run.lifecycle(listener, bound, store, hooks).await;
    drop(lock);
    service.shutdown().await;
    result
}

/// The profile's lock is held (or cannot be taken): what to do about it.
fn lock_error(e: state::LockError) -> CliError {
    let holder = match &e {
        state::LockError::Held {
            holder: Some(pid), ..
        } => format!("stop it first (kongctl ps stop {pid}, or kill -TERM {pid}), or "),
        _ => String::new(),
    };
    CliError::new(e.to_string()).with_hint(format!(
        "{holder}use another --profile for a second listener"
    ))
}

/// Client timeouts; `KONGCTL_KONNECT_TIMEOUT` (e.g. `5s`) shortens the
/// per-request timeout for slow or flaky links and for tests.
impl Run {
    /// Steps 4–8, serving, and the cleanup after it.
    async fn lifecycle(
        self,
        listener: TcpListener,
        bound: SocketAddr,
        store: EventStore,
        hooks: Hooks,
    ) -> Result<(), CliError> {
        // The tunnel self-test, before any remote change.
        let check_warning = self.check_tunnel(&listener, bound).await?;

        // Steps 4–6 (undone if they fail or are interrupted).
        self.start().await?;

        // Step 7: listener.json (destination.json was written during setup).
        let local_endpoint = local_endpoint(bound, &self.opts.path);
        let mut listener_state = self.first_listener_state(bound, &local_endpoint);
        listener_state.store = store.summary();
        if let Err(e) = state::write_json(&self.paths.listener_file, &listener_state) {
            let err = CliError::new(format!(
                "failed to write listener state file {}: {e}",
                self.paths.listener_file.display()
            ));
            return Err(self.undo_after_failed_setup(err).await);
        }

        // Step 8: the startup block, then serve until stopped and clean up.
        let destination_id = self.destination_id();
        self.announce(&bound, &local_endpoint, destination_id.as_deref());
        if let Some(ready) = hooks.on_ready {
            ready(&Ready {
                listen_address: bound,
                local_endpoint: local_endpoint.clone(),
                endpoint: redact_url(&self.opts.endpoint),
                destination_id: destination_id.clone(),
                events_file: self.paths.events_file.clone(),
                listener_state_file: self.paths.listener_file.clone(),
                warnings: check_warning.into_iter().collect(),
                admin_address: self.service.admin_address(),
            });
        }

        let reason = self.serve(listener, store, listener_state).await;
        self.finish(reason, destination_id).await
    }
}
