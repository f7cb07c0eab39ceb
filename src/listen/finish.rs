//! Stopping (SPEC §8): after serving, or to undo a failed startup, release
//! what startup created (regional webhook, destination) with a fresh
//! deadline, unless a second stop request abandons it; `destination.json`
//! records the outcome so that the next start can finish an incomplete
//! cleanup. The Konnect calls are `cleanup::release`'s.

use std::sync::Mutex;
use std::time::Instant;

use super::cleanup::{self, Leftovers};
use super::serve::StopReason;
use super::state::CleanupStatus;
use super::{CLEANUP_DEADLINE, Run, banner};
use crate::error::{CliError, exit_code};

impl Run {
    /// Cleanup after serving, with a fresh deadline; a second signal
    /// abandons it and reports what is left.
    pub(super) async fn finish(
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
                    banner::print_stdout(&banner::stopped_line(&id));
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

    /// Releases everything startup created, with a fresh deadline, unless a
    /// second signal abandons it; destination.json records the outcome.
    pub(super) async fn release_all(&self) -> Released {
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
    pub(super) fn leftover_hint(&self, left: &Leftovers) -> String {
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
}

/// How a release ended.
pub(super) enum Released {
    Done(cleanup::CleanupReport),
    Failed(cleanup::CleanupError),
    /// Abandoned by a second signal; what may still exist.
    Interrupted(Leftovers),
}
