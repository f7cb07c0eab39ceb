//! Reclaim (SPEC §8, run first in startup step 4): an earlier listener of
//! this profile that died before its cleanup left a destination, and
//! perhaps the regional webhook and Dev Portal webhooks, recorded in
//! `destination.json`; this finishes that cleanup before anything new is
//! created. The release itself
//! is `cleanup::release`.

use std::sync::Mutex;
use std::time::Instant;

use super::cleanup::{self, Leftovers, Progress};
use super::state::{self, CleanupStatus, DestinationState};
use super::{CLEANUP_DEADLINE, Run};
use crate::error::CliError;

impl Run {
    /// Finishes the cleanup of an earlier listener of this profile that
    /// died before it could (SPEC §8). We hold the profile lock, so that
    /// listener is gone.
    pub(super) async fn reclaim(&self) -> Result<(), CliError> {
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
            // A portal attach recorded as sent is checked and given back
            // (one whose destination id was never learnt was never sent).
            portals: prev.portals.clone(),
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
                done.deleted_at = Some(crate::time::now_rfc3339());
                let _ = state::write_json(&self.paths.destination_file, &done);
                let deleted = match report.destinations_removed.as_slice() {
                    [] => format!("no audit-log destination {id} was found"),
                    ids => format!("deleted audit-log destination {}", ids.join(", ")),
                };
                let portals = match report.portals_released.as_slice() {
                    [] => String::new(),
                    [one] => format!("restored the audit-log webhook of Dev Portal {one}, "),
                    many => format!(
                        "restored the audit-log webhooks of Dev Portals {}, ",
                        many.join(", ")
                    ),
                };
                eprintln!(
                    "Reclaimed: {portals}{}{deleted}",
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
}
