//! Serving (SPEC §3 step 8 onwards): the HTTP listener (`crate::listener`)
//! and, for `tail`, the record follower (`crate::tail`) run until a stop
//! request, a listener failure or (tail) a closed stdout; then the listener
//! drains and the follower prints every acknowledged record. This module
//! also owns `listener.json`'s content: its first version (written by
//! `run` in startup step 7), its counters refreshed while serving, and its
//! final `running: false` write. Gap healing (`crate::replay`) runs beside
//! the listener while it serves, its status kept in `listener.json`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Run;
use super::state::{self, ListenerState};
use crate::listener::{DedupGate, EventStore, ListenerSettings};
use crate::replay::{Healing, ReplayReport, SharedReport, StoreFiles, Timing};

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
                // Read before this state replaces the previous listener's.
                crate::replay::previous_missing_window(&self.paths.listener_file),
            )),
        }
    }

    /// Serves until a signal, a listener failure or (tail) a closed stdout.
    pub(super) async fn serve(
        &self,
        listener: TcpListener,
        store: EventStore,
        mut listener_state: ListenerState,
    ) -> StopReason {
        // Tail from here: taken before the server starts, so no record
        // acknowledged by this run is missed.
        let feed = self.opts.tail.then(|| store.subscribe());
        let shutdown = CancellationToken::new();
        let mut settings = ListenerSettings::new(
            self.opts.path.clone(),
            self.opts.authorization.expose().to_string(),
            self.opts.max_body_bytes,
        );
        settings.screen = self
            .verifier
            .clone()
            .map(|v| v as std::sync::Arc<dyn crate::listener::Screen>);
        let gate = settings.dedup.clone();
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
            automatic: self.opts.configure_webhook,
            report: report.clone(),
            timing: Timing::from_env(),
        });

        let stdout_closed = CancellationToken::new();
        let follower = if let Some(feed) = feed {
            let filter = self.opts.jq.as_deref().map(|expr| {
                crate::jq::JqFilter::compile(expr).expect("the filter compiled during validation")
            });
            let closed = stdout_closed.clone();
            Some(tokio::spawn(async move {
                let end = crate::tail::run(feed, filter).await;
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
            let verifier = self.verifier.clone();
            let report = report.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                let mut last = (0, 0, None, report.version(), 0, store.summary());
                loop {
                    tokio::time::sleep(every).await;
                    let stats = store.stats();
                    // Records refused by `--verify reject` change only
                    // the verify counts; the store also changes without
                    // records arriving (compression, retention, the first
                    // scan).
                    let now = (
                        stats.records,
                        stats.requests,
                        verifier.as_ref().map(|v| v.counts()),
                        report.version(),
                        gate.dropped(),
                        store.summary(),
                    );
                    if now != last {
                        apply_stats(&mut s, &stats);
                        s.verify = now.2;
                        s.replay = Some(replay_report(&report, &gate));
                        s.store = now.5.clone();
                        last = now;
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
        if let Some(healing) = healing {
            healing.stop().await;
        }
        listener_state.replay = Some(replay_report(&report, &gate));
        let stats = store.stats();
        listener_state.store = store.summary();
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
        listener_state.verify = self.verifier.as_ref().map(|v| v.counts());
        listener_state.running = false;
        listener_state.stopped_at = Some(crate::time::now_rfc3339());
        if let Err(e) = state::write_json(&self.paths.listener_file, &listener_state) {
            tracing::warn!(error = %e, "failed to write final listener state");
        }
        reason
    }
}

/// The replay report with the gate's current count of dropped duplicates.
fn replay_report(report: &SharedReport, gate: &DedupGate) -> ReplayReport {
    let mut r = report.get();
    r.duplicates_dropped = gate.dropped();
    r
}

fn apply_stats(s: &mut ListenerState, stats: &crate::listener::StoreStats) {
    s.records_received = stats.records;
    s.requests_received = stats.requests;
    s.last_event_at = stats.last_event.map(crate::time::rfc3339);
    s.updated_at = Some(crate::time::now_rfc3339());
}
