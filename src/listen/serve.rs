//! Serving (SPEC §3 step 8 onwards): the HTTP listener (`crate::listener`)
//! and, for `tail`, the record follower (`crate::tail`) run until a stop
//! request, a listener failure or (tail) a closed stdout; then the listener
//! drains and the follower prints every acknowledged record. This module
//! also owns `listener.json`'s content: its first version (written by
//! `run` in startup step 7), its counters refreshed while serving, and its
//! final `running: false` write. Gap healing (`crate::replay`) runs beside
//! the listener while it serves, its status kept in `listener.json`.
//! `listener.json` and the admin endpoint (`crate::service`) read the
//! counters through one [`Sources`], so they never disagree; the serving
//! loop also pings systemd's watchdog (`crate::service::notify`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Run;
use super::state::{self, ListenerState};
use crate::konnect::Stream;
use crate::listener::{DedupGate, IngestCounters, ListenerSettings};
use crate::replay::{HealedStream, Healing, ReplayReport, SharedReport, StoreFiles, Timing};
use crate::service::Snapshots;
use crate::store::EventStore;
use crate::verify::LiveVerifier;
use crate::verify::checker::Checker;

/// How often listener.json's counters are refreshed.
const STATE_REFRESH: Duration = Duration::from_secs(2);
/// Test only, not for users: overrides `STATE_REFRESH` (e.g. `1ms`) so a
/// test can stop a listener while a refresh is being written.
const STATE_REFRESH_ENV: &str = "KONGCTL_TEST_STATE_REFRESH";

/// `STATE_REFRESH`, or the test-only override in `STATE_REFRESH_ENV`.
fn state_refresh_interval() -> Duration {
    std::env::var(STATE_REFRESH_ENV)
        .ok()
        .and_then(|v| crate::time::positive_duration(&v))
        .unwrap_or(STATE_REFRESH)
}

/// How serving ended: why, the `--exec` pairs (stopped, their running
/// commands maybe not yet ended) and the final `listener.json`.
pub(super) struct Served {
    pub(super) reason: StopReason,
    pub(super) exec: Option<crate::exec::ExecRun>,
    pub(super) state: ListenerState,
}

/// Why serving ended.
pub(super) enum StopReason {
    Signal,
    StdoutClosed,
    ListenerFailed(String),
}

impl Run {
    /// `listener.json` as startup writes it (SPEC §3 step 7): serving, no
    /// records yet.
    pub(super) fn first_listener_state(
        &self,
        bound: SocketAddr,
        local_endpoint: &str,
    ) -> ListenerState {
        let started_at = crate::time::now_rfc3339();
        let portals = self.portal_refs();
        ListenerState {
            started_at: started_at.clone(),
            profile: self.settings.profile.clone(),
            listen_address: bound.to_string(),
            listen_path: self.opts.path.clone(),
            local_endpoint: local_endpoint.to_string(),
            public_url: self.opts.public_url.clone(),
            events_file: self.paths.events_file.display().to_string(),
            pid: std::process::id(),
            running: true,
            records_received: 0,
            requests_received: 0,
            last_event_at: None,
            store: None,
            updated_at: Some(started_at),
            stopped_at: None,
            verify: self.verifier.as_ref().map(|v| v.counts()),
            replay: Some(crate::replay::initial_report(
                &self.opts.backfill,
                self.opts.configure_webhook,
                &portals
                    .iter()
                    .map(|p| (p.id.clone(), p.name.clone()))
                    .collect::<Vec<_>>(),
                // Read before this state replaces the previous listener's.
                &crate::replay::previous_missing_windows(&self.paths.listener_file),
            )),
            portals,
            admin_address: self.service.admin_address().map(|a| a.to_string()),
            ingest: None,
            exec: None,
        }
    }

    /// The Dev Portals this listener receives (`--portal`, resolved).
    fn portal_refs(&self) -> Vec<state::PortalRef> {
        self.progress
            .lock()
            .expect("progress lock poisoned")
            .portals
            .iter()
            .map(|p| state::PortalRef {
                id: p.portal_id.clone(),
                name: p.portal_name.clone(),
            })
            .collect()
    }

    /// Serves until a signal, a listener failure or (tail) a closed stdout.
    pub(super) async fn serve(
        &self,
        listener: TcpListener,
        store: EventStore,
        listener_state: ListenerState,
        exec: Option<crate::exec::Prepared>,
    ) -> Served {
        // Tail from here: taken before the server starts, so no record
        // acknowledged by this run is missed.
        let feed = self.opts.tail.then(|| store.subscribe());
        // --exec from here too: commands left by an earlier run first.
        let exec = exec.map(|prepared| {
            crate::exec::start(prepared, store.committed(), self.signals.abort.clone())
        });
        let shutdown = CancellationToken::new();
        let mut settings = ListenerSettings::new(
            self.opts.path.clone(),
            self.opts.authorization.expose().to_string(),
            self.opts.max_body_bytes,
        );
        // Under `warn` records are checked after they are stored, by the
        // checker; under `reject`, before, on the request path.
        let checker = match &self.verifier {
            Some(v) if v.mode() == crate::verify::Mode::Warn => {
                match Checker::start(
                    v.clone(),
                    &self.paths.dir,
                    store.committed_view(),
                    tokio::runtime::Handle::current(),
                ) {
                    Ok(checker) => Some(checker),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the signature checker; checking each request's records before storing them instead");
                        None
                    }
                }
            }
            _ => None,
        };
        if checker.is_none() {
            settings.screen = self
                .verifier
                .clone()
                .map(|v| v as std::sync::Arc<dyn crate::listener::Screen>);
        }
        let checker = checker.map(std::sync::Arc::new);
        let gate = settings.dedup.clone();
        let counters = settings.counters.clone();
        let mut server = tokio::spawn(crate::listener::serve(
            listener,
            settings,
            store.clone(),
            shutdown.clone(),
        ));
        // Gap healing, once the listener serves (replayed records arrive
        // through it).
        let report = SharedReport::new(listener_state.replay.clone().unwrap_or_default());
        let healing = crate::replay::start(Healing {
            audit: self.audit.clone(),
            store: store.clone(),
            files: StoreFiles {
                dir: self.paths.dir.clone(),
                active: self.paths.events_file.clone(),
            },
            gate: gate.clone(),
            backfill: self.opts.backfill.clone(),
            streams: std::iter::once(HealedStream {
                stream: Stream::Org,
                automatic: self.opts.configure_webhook,
                name: String::new(),
            })
            .chain(self.portal_refs().into_iter().map(|p| HealedStream {
                stream: Stream::Portal(p.id),
                // Startup pointed the portal's webhook at this listener.
                automatic: true,
                name: p.name,
            }))
            .collect(),
            report: report.clone(),
            timing: Timing::from_env(),
        });
        let sources = Arc::new(Sources {
            base: listener_state.clone(),
            store: store.clone(),
            verifier: self.verifier.clone(),
            checker,
            exec: exec.as_ref().map(|e| e.counts()),
            report,
            gate,
            counters,
        });
        // Serving, with the webhook pointed here: ready.
        self.service.serving(sources.clone());

        let stdout_closed = CancellationToken::new();
        let follower = if let Some(feed) = feed {
            let filter = self.opts.jq.as_deref().map(|expr| {
                crate::jq::JqFilter::compile(expr).expect("the filter compiled during validation")
            });
            let closed = stdout_closed.clone();
            let read = &self.opts.read;
            let names = if read.resolve == Some(true) || !read.principals.is_empty() {
                crate::query::names::Names::open(&self.settings)
            } else {
                None
            };
            let options = crate::tail::TailOptions {
                jq: filter,
                filter: self.opts.filter.clone(),
                principals: read.principals.clone(),
                names,
                resolve: read.resolve == Some(true),
                grep: read.grep.as_deref().map(|pattern| {
                    crate::query::Grep::new(pattern)
                        .expect("the pattern compiled during validation")
                }),
            };
            Some(tokio::spawn(async move {
                let end = crate::tail::run(feed, options).await;
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
            let sources = sources.clone();
            let path = self.paths.listener_file.clone();
            let every = state_refresh_interval();
            let service = self.service.clone();
            tokio::spawn(async move {
                let mut last: Option<ListenerState> = None;
                loop {
                    tokio::time::sleep(every).await;
                    // Written when anything but the time changed: records
                    // refused by `--verify reject` change only the verify
                    // counts; the store also changes without records
                    // arriving (compression, retention, the first scan).
                    let now = sources.snapshot();
                    let mut key = now.clone();
                    key.updated_at = None;
                    if last.as_ref() != Some(&key) {
                        last = Some(key);
                        service.status(&now);
                        if let Err(e) = state::write_json(&path, &now) {
                            tracing::warn!(error = %e, "failed to refresh listener state file");
                        }
                    }
                }
            })
        };

        // systemd's watchdog is pinged from this loop, which also watches
        // the listener task: a wedged runtime stops the pings and systemd
        // restarts the service.
        let mut watchdog = self.service.watchdog_interval().map(|every| {
            let mut i = tokio::time::interval(every);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let reason = loop {
            tokio::select! {
                _ = self.signals.stop.cancelled() => break StopReason::Signal,
                _ = stdout_closed.cancelled() => break StopReason::StdoutClosed,
                r = &mut server => break StopReason::ListenerFailed(match r {
                    Ok(Ok(_)) => "listener stopped unexpectedly".to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => format!("listener task failed: {e}"),
                }),
                _ = tick(watchdog.as_mut()) => self.service.watchdog(),
            }
        };
        self.service.stopping();
        // Start no more commands; the running ones end on their own.
        if let Some(exec) = &exec {
            exec.stop();
        }
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
        if let Some(healing) = healing {
            healing.stop().await;
        }
        let mut listener_state = sources.snapshot();
        store.close();
        if let Some(f) = follower {
            match tokio::time::timeout(Duration::from_secs(10), f).await {
                Ok(Ok(Ok(end))) => tracing::debug!(?end, "tail finished"),
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "tail failed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "tail task failed"),
                Err(_) => tracing::warn!("tail did not finish printing in time"),
            }
        }
        // The store is closed: the checker checks what is left of it, for
        // a while (the rest waits for the next start).
        if let Some(checker) = &sources.checker {
            checker.finish(crate::verify::checker::FINISH_WITHIN).await;
        }
        listener_state.verify = sources.verify_counts(&store.stats());
        listener_state.exec = sources.exec_report();
        listener_state.running = false;
        listener_state.stopped_at = Some(crate::time::now_rfc3339());
        if let Err(e) = state::write_json(&self.paths.listener_file, &listener_state) {
            tracing::warn!(error = %e, "failed to write final listener state");
        }
        Served {
            reason,
            exec,
            state: listener_state,
        }
    }
}

/// Everything `listener.json`'s counters are read from: one snapshot of
/// them is what `listener.json` is written with and what the admin
/// endpoint answers from.
struct Sources {
    /// What does not change while serving (addresses, paths, start time).
    base: ListenerState,
    store: EventStore,
    verifier: Option<Arc<LiveVerifier>>,
    /// Under `--verify warn`: the checker that follows the store.
    checker: Option<Arc<Checker>>,
    /// With `--on`/`--exec`: the pairs' counts.
    exec: Option<crate::exec::ExecCounts>,
    report: SharedReport,
    gate: DedupGate,
    counters: Arc<IngestCounters>,
}

impl crate::service::Snapshots for Sources {
    fn snapshot(&self) -> ListenerState {
        let mut s = self.base.clone();
        apply_stats(&mut s, &self.store.stats());
        s.store = self.store.summary();
        s.verify = self.verify_counts(&self.store.stats());
        s.replay = Some(replay_report(&self.report, &self.gate));
        s.ingest = Some(self.counters.snapshot());
        s.exec = self.exec_report();
        s
    }
}

impl Sources {
    /// `listener.json`'s `exec` object: each `--on`/`--exec` pair's counts.
    fn exec_report(&self) -> Option<crate::exec::ExecReport> {
        self.exec.as_ref().map(crate::exec::ExecCounts::report)
    }

    /// `listener.json`'s `verify` object: the verifier's counts and, under
    /// `warn`, the records stored and not checked yet.
    fn verify_counts(&self, stats: &crate::store::StoreStats) -> Option<crate::verify::Counts> {
        let mut counts = self.verifier.as_ref()?.counts();
        counts.pending = self
            .checker
            .as_ref()
            .map_or(0, |c| c.pending(stats.records));
        Some(counts)
    }
}

/// The next tick of `interval`, or never.
async fn tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The replay report with the gate's current count of dropped duplicates.
fn replay_report(report: &SharedReport, gate: &DedupGate) -> ReplayReport {
    let mut r = report.get();
    r.duplicates_dropped = gate.dropped();
    r
}

fn apply_stats(s: &mut ListenerState, stats: &crate::store::StoreStats) {
    s.records_received = stats.records;
    s.requests_received = stats.requests;
    s.last_event_at = stats.last_event.map(crate::time::rfc3339);
    s.updated_at = Some(crate::time::now_rfc3339());
}
