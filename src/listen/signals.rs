//! Stop requests: SIGINT, SIGTERM and SIGHUP. The first asks the listener
//! to stop (startup is undone, or serving ends and cleanup runs); a second
//! one abandons the cleanup (SPEC §8). What stopping does is left to
//! `startup` and `finish`.
//!
//! Except SIGHUP to a detached listener: it has no terminal to hang up
//! (it runs in a session of its own), so a SIGHUP is someone asking it to
//! reopen its log file (logrotate's `postrotate`), which it does
//! (`crate::logging::reopen`) and keeps serving.

use tokio_util::sync::CancellationToken;

use crate::error::CliError;

/// Signals: the first SIGINT/SIGTERM/SIGHUP asks to stop, a second one
/// aborts cleanup.
#[derive(Clone)]
pub(super) struct Signals {
    pub(super) stop: CancellationToken,
    pub(super) abort: CancellationToken,
}

impl Signals {
    pub(super) fn install() -> Result<Signals, CliError> {
        use tokio::signal::unix::{SignalKind, signal};
        let stop = CancellationToken::new();
        let abort = CancellationToken::new();
        let mut streams = Vec::new();
        for (kind, hangup) in [
            (SignalKind::interrupt(), false),
            (SignalKind::terminate(), false),
            (SignalKind::hangup(), true),
        ] {
            streams.push((
                signal(kind).map_err(|e| {
                    CliError::new(format!("failed to install signal handlers: {e}"))
                })?,
                hangup,
            ));
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        for (mut s, hangup) in streams {
            let tx = tx.clone();
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    if hangup && crate::logging::reopen() {
                        continue;
                    }
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
