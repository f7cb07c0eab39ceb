//! `listen` and `tail`: the startup that loses nothing, the serving loop,
//! and the cleanup that leaves Konnect as it was.
//!
//! Startup order (SPEC §3): validate, lock the profile, open the event
//! store, bind, finish an earlier listener's interrupted cleanup (reclaim),
//! check the webhook is unconfigured, check the name is unused, create the
//! destination, attach the webhook, write the state files, then serve. Any
//! failure or interrupt after the first remote change undoes what was done.
//! The HTTP listener lives in `crate::listener`, record printing in
//! `crate::tail`.

pub mod cleanup;
pub mod options;
pub mod state;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Auth, Settings};
use crate::error::{CliError, exit_code};
use crate::konnect::client::{ClientOptions, Host, redact_url};
use crate::konnect::{
    AuditLogs, Credential, Hosts, KonnectClient, KonnectError, LoginToken, NewDestination,
};
use crate::listener::{EventStore, ListenerSettings};
use cleanup::{Leftovers, Progress, SharedProgress};
pub use options::{AuthorizationOrigin, ListenOptions, LogFormat};
use state::{CleanupStatus, DestinationState, ListenerState, ProfileLock, StoragePaths};

/// How long cleanup may take after a stop (SPEC §8).
const CLEANUP_DEADLINE: Duration = Duration::from_secs(60);
/// After a stop request during startup, how long a destination create
/// already sent may take to answer: Konnect acts on a create it received
/// even if we stop waiting, and a destination we never hear of cannot be
/// undone.
const CREATE_GRACE: Duration = Duration::from_secs(5);
/// How often listener.json's counters are refreshed.
const STATE_REFRESH: Duration = Duration::from_secs(2);
/// Test only, not for users: overrides `STATE_REFRESH` (e.g. `1ms`) so a
/// test can stop a listener while a refresh is being written.
const STATE_REFRESH_ENV: &str = "KONGCTL_TEST_STATE_REFRESH";

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
}

/// Called once startup succeeded (bound, Konnect configured, state files
/// written), before serving.
pub type OnReady = Box<dyn FnOnce(&Ready) + Send>;

/// Hooks for the detached child.
#[derive(Default)]
pub struct Hooks {
    pub on_ready: Option<OnReady>,
}

/// Signals: the first SIGINT/SIGTERM/SIGHUP asks to stop, a second one
/// aborts cleanup.
#[derive(Clone)]
struct Signals {
    stop: CancellationToken,
    abort: CancellationToken,
}

impl Signals {
    fn install() -> Result<Signals, CliError> {
        use tokio::signal::unix::{SignalKind, signal};
        let stop = CancellationToken::new();
        let abort = CancellationToken::new();
        let mut streams = Vec::new();
        for kind in [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ] {
            streams.push(
                signal(kind).map_err(|e| {
                    CliError::new(format!("failed to install signal handlers: {e}"))
                })?,
            );
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        for mut s in streams {
            let tx = tx.clone();
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
            });
        }
        let (s, a) = (stop.clone(), abort.clone());
        tokio::spawn(async move {
            let mut count = 0;
            while rx.recv().await.is_some() {
                count += 1;
                if count == 1 {
                    tracing::info!("stop requested");
                    s.cancel();
                } else {
                    tracing::warn!("second stop request: abandoning cleanup");
                    a.cancel();
                }
            }
        });
        Ok(Signals { stop, abort })
    }
}

/// Everything one run needs.
struct Run {
    settings: Settings,
    opts: ListenOptions,
    paths: StoragePaths,
    audit: AuditLogs,
    progress: SharedProgress,
    signals: Signals,
}

/// Runs `listen` or `tail` until stopped; `Ok` after a clean stop whose
/// cleanup succeeded.
pub async fn run(settings: Settings, opts: ListenOptions, hooks: Hooks) -> Result<(), CliError> {
    let signals = Signals::install()?;
    let hosts = Hosts::resolve(
        settings.base_url.as_deref(),
        &settings.region,
        settings.konnect_domain,
    )
    .map_err(CliError::new)?;
    let credential = match settings.auth().map_err(CliError::new)? {
        Auth::Pat(pat) => Credential::Pat(pat),
        Auth::LoginFile(path) => {
            let refresh = hosts.url(Host::Regional, &settings.refresh_path, &[]);
            Credential::Login(LoginToken::new(path, refresh))
        }
    };
    let client = KonnectClient::new(hosts, credential, client_options_from_env())
        .map_err(|e| CliError::new(e.to_string()))?;
    for w in &opts.warnings {
        eprintln!("Warning: {w}");
    }

    // Lock, store and socket first: all local, all before any remote change.
    let paths = StoragePaths::new(settings.audit_log_dir());
    crate::fsutil::create_private_dir_all(&paths.dir).map_err(|e| {
        CliError::new(format!(
            "failed to create storage directory {}: {e}",
            paths.dir.display()
        ))
    })?;
    let lock = ProfileLock::acquire(&paths.lock_file).map_err(|e| {
        let holder = match &e {
            state::LockError::Held {
                holder: Some(pid), ..
            } => format!("stop it first (kongctl ps stop {pid}, or kill -TERM {pid}), or "),
            _ => String::new(),
        };
        CliError::new(e.to_string()).with_hint(format!(
            "{holder}use another --profile for a second listener"
        ))
    })?;
    let (store, repair) = EventStore::open(&paths.events_file).map_err(|e| {
        CliError::new(format!(
            "failed to open events file {}: {e}",
            paths.events_file.display()
        ))
    })?;
    if let Some(r) = repair {
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

    let run = Run {
        settings,
        opts,
        paths,
        audit: AuditLogs::new(client),
        progress: Arc::new(Mutex::new(Progress::default())),
        signals,
    };
    let result = run.lifecycle(listener, bound, store, hooks).await;
    drop(lock);
    result
}

/// Client timeouts; `KONGCTL_KONNECT_TIMEOUT` (e.g. `5s`) shortens the
/// per-request timeout for slow or flaky links and for tests.
fn client_options_from_env() -> ClientOptions {
    let mut o = ClientOptions::default();
    if let Some(t) = std::env::var("KONGCTL_KONNECT_TIMEOUT")
        .ok()
        .and_then(|v| humantime::parse_duration(v.trim()).ok())
        .filter(|d| !d.is_zero())
    {
        o.request_timeout = t;
        o.connect_timeout = o.connect_timeout.min(t);
    }
    o
}

/// `STATE_REFRESH`, or the test-only override in `STATE_REFRESH_ENV`.
fn state_refresh_interval() -> Duration {
    std::env::var(STATE_REFRESH_ENV)
        .ok()
        .and_then(|v| humantime::parse_duration(v.trim()).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(STATE_REFRESH)
}

/// The accept backlog asked for; the kernel caps it at
/// `net.core.somaxconn`, as Go's `net.Listen` (the original) uses. Tokio's
/// `TcpListener::bind` asks for 128 only: a burst of more connections than
/// that, while the listener is at its connection limit or busy accepting,
/// had its SYNs dropped and waited a second or more to retry.
const ACCEPT_BACKLOG: u32 = 4096;

async fn bind(addr: SocketAddr) -> Result<TcpListener, CliError> {
    let listen = || {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(ACCEPT_BACKLOG)
    };
    listen().map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => "bind: address already in use".to_string(),
            std::io::ErrorKind::PermissionDenied => "bind: permission denied".to_string(),
            std::io::ErrorKind::AddrNotAvailable => {
                "bind: cannot assign requested address".to_string()
            }
            _ => format!("bind: {e}"),
        };
        let err = CliError::new(format!("listen tcp {addr}: {why}"));
        match e.kind() {
            std::io::ErrorKind::AddrInUse => err.with_hint(
                "another program (or listener) uses this port: choose another with --listen-address; nothing was changed in Konnect",
            ),
            _ => err,
        }
    })
}

/// Why serving ended.
enum StopReason {
    Signal,
    StdoutClosed,
    ListenerFailed(String),
}

impl Run {
    async fn lifecycle(
        self,
        listener: TcpListener,
        bound: SocketAddr,
        store: EventStore,
        hooks: Hooks,
    ) -> Result<(), CliError> {
        // Setup, raced against the first signal. On interrupt the in-flight
        // request is abandoned, except a destination create, which gets a
        // grace period to answer; `Progress` says what may exist.
        let outcome = {
            let mut setup = std::pin::pin!(self.setup());
            let mut outcome = tokio::select! {
                r = &mut setup => Some(r),
                _ = self.signals.stop.cancelled() => None,
            };
            if outcome.is_none() && self.create_in_flight() {
                eprintln!(
                    "Waiting up to {}s for Konnect to answer the destination create, so that it can be undone (Ctrl+C again to stop now)",
                    CREATE_GRACE.as_secs()
                );
                outcome = tokio::select! {
                    r = &mut setup => Some(r),
                    _ = tokio::time::sleep(CREATE_GRACE) => None,
                    _ = self.signals.abort.cancelled() => None,
                };
            }
            outcome
        };
        match outcome {
            Some(Ok(())) if !self.signals.stop.is_cancelled() => {}
            Some(Err(err)) if !self.signals.stop.is_cancelled() => {
                return Err(self.undo_after_failed_setup(err).await);
            }
            _ => {
                let err =
                    CliError::new("interrupted during startup").with_code(exit_code::INTERRUPTED);
                let err = self.undo_after_failed_setup(err).await;
                return Err(err);
            }
        }

        let local_endpoint = local_endpoint(bound, &self.opts.path);
        let started_at = state::now_rfc3339();
        let listener_state = ListenerState {
            started_at: started_at.clone(),
            profile: self.settings.profile.clone(),
            listen_address: bound.to_string(),
            listen_path: self.opts.path.clone(),
            local_endpoint: local_endpoint.clone(),
            public_url: self.opts.public_url.clone(),
            events_file: self.paths.events_file.display().to_string(),
            pid: std::process::id(),
            running: true,
            records_received: 0,
            requests_received: 0,
            last_event_at: None,
            updated_at: Some(started_at),
            stopped_at: None,
        };
        if let Err(e) = state::write_json(&self.paths.listener_file, &listener_state) {
            let err = CliError::new(format!(
                "failed to write listener state file {}: {e}",
                self.paths.listener_file.display()
            ));
            return Err(self.undo_after_failed_setup(err).await);
        }

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
            });
        }

        let reason = self.serve(listener, store, listener_state).await;
        self.finish(reason, destination_id).await
    }

    /// A destination create was sent and has not answered yet.
    fn create_in_flight(&self) -> bool {
        let p = self.progress.lock().expect("progress lock poisoned");
        p.create_sent && p.destination.is_none()
    }

    fn destination_id(&self) -> Option<String> {
        let p = self.progress.lock().expect("progress lock poisoned");
        p.destination.as_ref().map(|d| d.id.clone())
    }

    /// Steps 4–7 of startup.
    async fn setup(&self) -> Result<(), CliError> {
        let opts = &self.opts;
        self.reclaim().await?;

        if opts.configure_webhook {
            let hook = self
                .audit
                .webhook()
                .await
                .map_err(|e| step_error("read regional audit-log webhook", e))?;
            if !hook.is_unconfigured() {
                return Err(CliError::new(format!(
                    "regional audit-log webhook is already configured (enabled={} endpoint={:?}); expected enabled=false and endpoint=\"unconfigured\"",
                    hook.enabled, hook.endpoint
                ))
                .with_hint(format!(
                    "another listener or integration uses the {} webhook; stop it (kongctl ps) or clear the webhook in Konnect, or use --configure-webhook=false",
                    self.settings.region
                )));
            }
        }

        let taken = self
            .audit
            .destinations_named(&opts.name)
            .await
            .map_err(|e| step_error("list audit-log destinations", e))?;
        if !taken.is_empty() {
            return Err(
                CliError::new(format!("destination name {:?} already exists", opts.name))
                    .with_hint("choose another --name, or delete the old destination in Konnect"),
            );
        }

        {
            let mut p = self.progress.lock().expect("progress lock poisoned");
            p.name = Some(opts.name.clone());
            p.create_sent = true;
        }
        // Recorded before the request: if this process dies between
        // Konnect creating the destination and the record of its id below,
        // the next start finds it by name (reclaim).
        self.write_destination_state(false, CleanupStatus::Active, None)?;
        let destination = self
            .audit
            .create_destination(&NewDestination {
                name: &opts.name,
                endpoint: opts.endpoint.as_str(),
                log_format: opts.log_format.as_str(),
                skip_ssl_verification: opts.skip_ssl_verification,
                authorization: opts.authorization.expose(),
            })
            .await
            .map_err(|e| step_error("create audit-log destination", e))?;
        tracing::info!(destination_id = %destination.id, name = %destination.name, "created audit-log destination");
        self.progress
            .lock()
            .expect("progress lock poisoned")
            .destination = Some(destination.clone());
        self.write_destination_state(false, CleanupStatus::Active, None)?;
        if self.signals.stop.is_cancelled() {
            // Interrupted while the create was answering: stop here.
            return Err(CliError::new("interrupted during startup"));
        }

        if opts.configure_webhook {
            self.progress
                .lock()
                .expect("progress lock poisoned")
                .attach_sent = true;
            self.audit
                .attach_webhook(&destination.id)
                .await
                .map_err(|e| step_error("configure regional audit-log webhook", e))?;
            self.progress
                .lock()
                .expect("progress lock poisoned")
                .webhook_attached = true;
            tracing::info!(destination_id = %destination.id, region = %self.settings.region, "attached regional audit-log webhook");
            self.write_destination_state(true, CleanupStatus::Active, None)?;
        }
        Ok(())
    }

    /// Finishes the cleanup of an earlier listener of this profile that
    /// died before it could (SPEC §8). We hold the profile lock, so that
    /// listener is gone.
    async fn reclaim(&self) -> Result<(), CliError> {
        let previous: Option<DestinationState> = state::read_json(&self.paths.destination_file)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "unreadable destination state file; ignoring it");
                None
            });
        let Some(prev) = previous else { return Ok(()) };
        if prev.status == CleanupStatus::Deleted {
            return Ok(());
        }
        // No id: the earlier listener died before it learnt the id of the
        // destination it asked for (it never attached the webhook to it);
        // the destination, if created, is found by its unique name.
        let destination = prev
            .destination_id
            .clone()
            .map(|id| crate::konnect::Destination {
                id,
                name: prev.destination_name.clone(),
                endpoint: prev.destination_endpoint.clone(),
                log_format: prev.log_format.clone(),
                skip_ssl_verification: Some(prev.skip_ssl_verification),
            });
        let id = match &destination {
            Some(d) => d.id.clone(),
            None => format!("named {:?}", prev.destination_name),
        };
        let progress = Progress {
            name: Some(prev.destination_name.clone()),
            create_sent: true,
            attach_sent: destination.is_some()
                && (prev.webhook_configured || prev.status == CleanupStatus::Active),
            webhook_attached: prev.webhook_configured,
            destination,
        };
        let previous_pid = if prev.pid > 0 {
            format!(" (pid {})", prev.pid)
        } else {
            String::new()
        };
        eprintln!(
            "Reclaiming Konnect state left by an earlier listener of profile {:?}{previous_pid}: destination {id}",
            self.settings.profile
        );
        let deadline = Instant::now() + CLEANUP_DEADLINE;
        let left = Mutex::new(Leftovers::default());
        match cleanup::release(&self.audit, &progress, deadline, &left).await {
            Ok(report) => {
                let mut done = prev.clone();
                done.status = CleanupStatus::Deleted;
                done.cleanup_error = None;
                done.deleted_at = Some(state::now_rfc3339());
                let _ = state::write_json(&self.paths.destination_file, &done);
                let deleted = match report.destinations_removed.as_slice() {
                    [] => format!("no audit-log destination {id} was found"),
                    ids => format!("deleted audit-log destination {}", ids.join(", ")),
                };
                eprintln!(
                    "Reclaimed: {}{deleted}",
                    if report.webhook_released {
                        "released the regional audit-log webhook, "
                    } else {
                        ""
                    }
                );
                Ok(())
            }
            Err(e) => Err(CliError::new(format!(
                "finish the cleanup of an earlier listener of this profile: {e}"
            ))
            .with_hint(format!(
                "{}; fix the cause and start again, or remove them in Konnect and delete {}",
                e.left.describe(&self.settings.region),
                self.paths.destination_file.display()
            ))),
        }
    }

    fn write_destination_state(
        &self,
        webhook_configured: bool,
        status: CleanupStatus,
        cleanup_error: Option<String>,
    ) -> Result<(), CliError> {
        let p = self
            .progress
            .lock()
            .expect("progress lock poisoned")
            .clone();
        // Before the create request's answer, the name is all there is.
        let (id, name) = match (&p.destination, &p.name) {
            (Some(d), _) => (Some(d.id.clone()), d.name.clone()),
            (None, Some(name)) if p.create_sent => (None, name.clone()),
            (None, _) => return Ok(()),
        };
        let previous: Option<DestinationState> = state::read_json(&self.paths.destination_file)
            .ok()
            .flatten();
        let created_at = previous
            .filter(|s| id.is_some() && s.destination_id == id)
            .map(|s| s.created_at)
            .unwrap_or_else(state::now_rfc3339);
        let s = DestinationState {
            created_at,
            profile: self.settings.profile.clone(),
            destination_id: id,
            destination_name: name,
            destination_endpoint: redact_url(&self.opts.endpoint),
            log_format: Some(self.opts.log_format.as_str().to_string()),
            skip_ssl_verification: self.opts.skip_ssl_verification,
            authorization_configured: true,
            webhook_configured,
            region: self.settings.region.clone(),
            events_file: self.paths.events_file.display().to_string(),
            destination_state_file: self.paths.destination_file.display().to_string(),
            pid: std::process::id(),
            deleted_at: (status == CleanupStatus::Deleted).then(state::now_rfc3339),
            status,
            cleanup_error,
        };
        state::write_json(&self.paths.destination_file, &s).map_err(|e| {
            CliError::new(format!(
                "failed to write destination state file {}: {e}",
                self.paths.destination_file.display()
            ))
        })
    }

    /// Undoes a failed or interrupted startup, then returns `err` (extended
    /// with what could not be undone).
    async fn undo_after_failed_setup(&self, err: CliError) -> CliError {
        {
            let p = self.progress.lock().expect("progress lock poisoned");
            if !p.create_sent && !p.attach_sent {
                return err;
            }
        }
        match self.release_all().await {
            Released::Done(report) => {
                tracing::info!(?report, "undid partial startup");
                err
            }
            Released::Failed(e) => {
                let mut out = err;
                out.message = format!("{}\ncleanup error: {e}", out.message);
                out.hint = Some(self.leftover_hint(&e.left));
                out
            }
            Released::Interrupted(left) => {
                let mut out = err.with_code(exit_code::INTERRUPTED);
                out.hint = Some(format!(
                    "cleanup interrupted: {}",
                    self.leftover_hint(&left)
                ));
                out
            }
        }
    }

    /// Releases everything startup created, with a fresh deadline, unless a
    /// second signal abandons it; destination.json records the outcome.
    async fn release_all(&self) -> Released {
        let progress = self
            .progress
            .lock()
            .expect("progress lock poisoned")
            .clone();
        let left = Mutex::new(Leftovers::of(&progress));
        let deadline = Instant::now() + CLEANUP_DEADLINE;
        let outcome = tokio::select! {
            r = cleanup::release(&self.audit, &progress, deadline, &left) => Some(r),
            _ = self.signals.abort.cancelled() => None,
        };
        let failed = |why: String| {
            let _ = self.write_destination_state(
                progress.webhook_attached,
                CleanupStatus::CleanupFailed,
                Some(why),
            );
        };
        match outcome {
            Some(Ok(report)) => {
                self.mark_deleted_if_known();
                Released::Done(report)
            }
            Some(Err(e)) => {
                failed(e.to_string());
                Released::Failed(e)
            }
            None => {
                failed("cleanup interrupted".into());
                Released::Interrupted(left.into_inner().expect("leftovers lock poisoned"))
            }
        }
    }

    /// What may be left, and that the next start finishes the cleanup.
    fn leftover_hint(&self, left: &Leftovers) -> String {
        format!(
            "{}; the next `kongctl listen` with profile {:?} finishes the cleanup",
            left.describe(&self.settings.region),
            self.settings.profile
        )
    }

    fn mark_deleted_if_known(&self) {
        let attached = self
            .progress
            .lock()
            .expect("progress lock poisoned")
            .webhook_attached;
        if let Err(e) = self.write_destination_state(attached, CleanupStatus::Deleted, None) {
            tracing::warn!(error = %e.message, "failed to record the completed cleanup");
        }
    }

    /// The startup block (listen) or its log line (tail).
    fn announce(&self, bound: &SocketAddr, local_endpoint: &str, destination_id: Option<&str>) {
        let opts = &self.opts;
        let id = destination_id.unwrap_or("");
        let auth = match opts.authorization_origin {
            AuthorizationOrigin::User => "true",
            AuthorizationOrigin::Generated => "true (generated for this run)",
        };
        let mode = if opts.tail { " (tail mode)" } else { "" };
        tracing::info!(
            destination_name = %opts.name,
            destination_id = %id,
            endpoint = %redact_url(&opts.endpoint),
            log_format = opts.log_format.as_str(),
            local_endpoint = %local_endpoint,
            listen_address = %bound,
            events_file = %self.paths.events_file.display(),
            "Konnect Audit-Log Listener Started{mode}"
        );
        tracing::info!("Listening for audit-log events{mode}.");
        if opts.tail {
            return;
        }
        let mut text = String::new();
        text.push_str("Konnect Audit-Log Listener Started\n\nDestination\n");
        text.push_str(&format!("  name: {}\n", opts.name));
        text.push_str(&format!("  id: {id}\n"));
        text.push_str(&format!("  endpoint: {}\n", redact_url(&opts.endpoint)));
        text.push_str(&format!("  log format: {}\n", opts.log_format.as_str()));
        text.push_str(&format!(
            "  skip ssl verification: {}\n",
            opts.skip_ssl_verification
        ));
        text.push_str(&format!("  authorization configured: {auth}\n"));
        text.push_str(&format!(
            "  webhook configured: {}\n",
            opts.configure_webhook
        ));
        text.push_str("\nListener\n");
        text.push_str(&format!("  local endpoint: {local_endpoint}\n"));
        text.push_str(&format!("  listen address: {bound}\n"));
        text.push_str(&format!("  path: {}\n", opts.path));
        if let Some(p) = &opts.public_url {
            text.push_str(&format!("  public base URL: {p}\n"));
        }
        text.push_str(&format!(
            "  events file: {}\n",
            self.paths.events_file.display()
        ));
        text.push_str(&format!(
            "  destination state file: {}\n",
            self.paths.destination_file.display()
        ));
        text.push_str("\nListening for audit-log events. Press Ctrl+C to stop.\n");
        print_stdout(&text);
    }

    /// Serves until a signal, a listener failure or (tail) a closed stdout.
    async fn serve(
        &self,
        listener: TcpListener,
        store: EventStore,
        mut listener_state: ListenerState,
    ) -> StopReason {
        // Tail from here: taken before the server starts, so no record
        // acknowledged by this run is missed.
        let committed = store.committed();
        let tail_start = *committed.borrow();
        let shutdown = CancellationToken::new();
        let settings = ListenerSettings::new(
            self.opts.path.clone(),
            self.opts.authorization.expose().to_string(),
            self.opts.max_body_bytes,
        );
        let mut server = tokio::spawn(crate::listener::serve(
            listener,
            settings,
            store.clone(),
            shutdown.clone(),
        ));

        let stdout_closed = CancellationToken::new();
        let follower = if self.opts.tail {
            let filter = self.opts.jq.as_deref().map(|expr| {
                crate::tail::JqFilter::compile(expr).expect("the filter compiled during validation")
            });
            let path = self.paths.events_file.clone();
            let closed = stdout_closed.clone();
            Some(tokio::spawn(async move {
                let end = crate::tail::run(path, tail_start, committed, filter).await;
                if matches!(
                    end,
                    Ok(crate::tail::TailEnd {
                        stdout_closed: true
                    })
                ) {
                    closed.cancel();
                }
                end
            }))
        } else {
            None
        };

        let refresher = {
            let store = store.clone();
            let path = self.paths.listener_file.clone();
            let mut s = listener_state.clone();
            let every = state_refresh_interval();
            tokio::spawn(async move {
                let mut last = (0, 0);
                loop {
                    tokio::time::sleep(every).await;
                    let stats = store.stats();
                    if (stats.records, stats.requests) != last {
                        last = (stats.records, stats.requests);
                        apply_stats(&mut s, &stats);
                        if let Err(e) = state::write_json(&path, &s) {
                            tracing::warn!(error = %e, "failed to refresh listener state file");
                        }
                    }
                }
            })
        };

        let reason = tokio::select! {
            _ = self.signals.stop.cancelled() => StopReason::Signal,
            _ = stdout_closed.cancelled() => StopReason::StdoutClosed,
            r = &mut server => StopReason::ListenerFailed(match r {
                Ok(Ok(_)) => "listener stopped unexpectedly".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("listener task failed: {e}"),
            }),
        };
        match &reason {
            StopReason::Signal => tracing::info!("stopping: signal received"),
            StopReason::StdoutClosed => tracing::info!("stopping: stdout closed"),
            StopReason::ListenerFailed(e) => {
                tracing::error!(error = %e, "stopping: listener failed")
            }
        }

        // Stop accepting and drain in-flight requests (bounded inside
        // serve), then close the store so the follower sees the final
        // committed offset and prints every acknowledged record.
        shutdown.cancel();
        if !server.is_finished() {
            match tokio::time::timeout(Duration::from_secs(10), &mut server).await {
                Ok(Ok(Ok(report))) => tracing::info!(?report, "listener drained"),
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "listener ended with an error"),
                Ok(Err(e)) => tracing::warn!(error = %e, "listener task failed"),
                Err(_) => {
                    tracing::warn!("listener did not drain in time");
                    server.abort();
                }
            }
        }
        // A refresh may be mid-write (on another worker thread); wait for it
        // to end, so the final write below is the last one.
        refresher.abort();
        let _ = refresher.await;
        let stats = store.stats();
        store.close();
        if let Some(f) = follower {
            match tokio::time::timeout(Duration::from_secs(10), f).await {
                Ok(Ok(Ok(end))) => tracing::debug!(?end, "tail finished"),
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "tail failed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "tail task failed"),
                Err(_) => tracing::warn!("tail did not finish printing in time"),
            }
        }
        apply_stats(&mut listener_state, &stats);
        listener_state.running = false;
        listener_state.stopped_at = Some(state::now_rfc3339());
        if let Err(e) = state::write_json(&self.paths.listener_file, &listener_state) {
            tracing::warn!(error = %e, "failed to write final listener state");
        }
        reason
    }

    /// Cleanup after serving, with a fresh deadline; a second signal
    /// abandons it and reports what is left.
    async fn finish(
        self,
        reason: StopReason,
        destination_id: Option<String>,
    ) -> Result<(), CliError> {
        let listener_error = match reason {
            StopReason::ListenerFailed(e) => Some(e),
            StopReason::Signal | StopReason::StdoutClosed => None,
        };
        let id = destination_id.unwrap_or_default();
        match self.release_all().await {
            Released::Done(_) => {
                if self.opts.tail {
                    tracing::info!(destination_id = %id, "Listener stopped. Deleted audit-log destination (tail mode).");
                } else {
                    tracing::info!(destination_id = %id, "Listener stopped. Deleted audit-log destination.");
                    print_stdout(&format!(
                        "\nListener stopped. Deleted audit-log destination: {id}\n"
                    ));
                }
                match listener_error {
                    Some(e) => Err(CliError::new(e)),
                    None => Ok(()),
                }
            }
            Released::Failed(e) => {
                let message = match listener_error {
                    Some(l) => format!("{l}\ncleanup error: {e}"),
                    None => e.to_string(),
                };
                Err(CliError::new(message).with_hint(self.leftover_hint(&e.left)))
            }
            Released::Interrupted(left) => {
                Err(CliError::new("cleanup interrupted by a second signal")
                    .with_hint(self.leftover_hint(&left))
                    .with_code(exit_code::INTERRUPTED))
            }
        }
    }
}

/// How a release ended.
enum Released {
    Done(cleanup::CleanupReport),
    Failed(cleanup::CleanupError),
    /// Abandoned by a second signal; what may still exist.
    Interrupted(Leftovers),
}

fn apply_stats(s: &mut ListenerState, stats: &crate::listener::StoreStats) {
    s.records_received = stats.records;
    s.requests_received = stats.requests;
    s.last_event_at = stats.last_event.map(state::rfc3339);
    s.updated_at = Some(state::now_rfc3339());
}

/// `Error: <step>: <why>`: which startup step failed and why.
fn step_error(step: &str, e: KonnectError) -> CliError {
    let err = CliError::new(format!("{step}: {e}"));
    match e.status().map(|s| s.as_u16()) {
        Some(401) => err.with_hint(
            "Konnect rejected the access token: check --pat / KONGCTL_<PROFILE>_KONNECT_PAT (or, without a PAT, log in again with the original kongctl login)",
        ),
        Some(403) => err.with_hint(
            "the access token lacks permission for audit logs: an organisation admin token is needed",
        ),
        _ => err,
    }
}

/// `http://host:port/path` for the bound address (unspecified → 127.0.0.1;
/// IPv6 bracketed).
pub fn local_endpoint(bound: SocketAddr, path: &str) -> String {
    let host = match bound.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}{path}", bound.port())
}

/// Prints to stdout; a closed stdout is not an error worth dying for here.
fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_endpoint_formats_like_the_original() {
        assert_eq!(
            local_endpoint("0.0.0.0:19090".parse().unwrap(), "/audit-logs"),
            "http://127.0.0.1:19090/audit-logs"
        );
        assert_eq!(
            local_endpoint("[::1]:80".parse().unwrap(), "/a"),
            "http://[::1]:80/a"
        );
    }
}
