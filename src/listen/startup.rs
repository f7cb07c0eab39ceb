//! Startup against Konnect (SPEC §3 steps 4–6, after the local steps in
//! `run`): look up the `--portal` Dev Portals (before any change, so an
//! unknown or ambiguous one changes nothing), finish an earlier listener's
//! cleanup (`reclaim`), check the regional webhook is unconfigured and each
//! portal's webhook disabled, check the destination name is unused, create
//! the destination, attach the regional webhook, then each portal's,
//! recording each step in `destination.json` before it is sent. The whole of it races the first stop request (a
//! destination create already sent gets a grace period to answer), and a
//! failed or interrupted startup is undone here, with the release `finish`
//! owns.

use std::time::Duration;

use super::Run;
use super::finish::Released;
use super::state::{self, CleanupStatus, DestinationState, PortalState};
use crate::config::Settings;
use crate::error::{CliError, exit_code};
use crate::konnect::error::redact_url;
use crate::konnect::{KonnectError, NewDestination};

/// After a stop request during startup, how long a destination create
/// already sent may take to answer: Konnect acts on a create it received
/// even if we stop waiting, and a destination we never hear of cannot be
/// undone.
const CREATE_GRACE: Duration = Duration::from_secs(5);

impl Run {
    /// Steps 4–6 of startup, raced against the first stop request; a
    /// failed or interrupted startup is undone before its error returns.
    pub(super) async fn start(&self) -> Result<(), CliError> {
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
        Ok(())
    }

    /// A destination create was sent and has not answered yet.
    fn create_in_flight(&self) -> bool {
        let p = self.progress.lock().expect("progress lock poisoned");
        p.create_sent && p.destination.is_none()
    }

    pub(super) fn destination_id(&self) -> Option<String> {
        let p = self.progress.lock().expect("progress lock poisoned");
        p.destination.as_ref().map(|d| d.id.clone())
    }

    /// Steps 4–7 of startup (the signing keys and the portals first: they
    /// change nothing).
    async fn setup(&self) -> Result<(), CliError> {
        let opts = &self.opts;
        self.load_signing_keys().await?;
        let portals =
            crate::portal::resolve_all(&self.settings, &self.audit, &opts.portals).await?;
        self.reclaim().await?;

        self.check_webhook_unconfigured().await?;
        let found = self.check_portals_free(&portals).await?;
        self.progress
            .lock()
            .expect("progress lock poisoned")
            .portals = found;
        self.check_name_unused().await?;

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
            .map_err(|e| step_error(&self.settings, "create audit-log destination", e))?;
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
                .map_err(|e| {
                    step_error(&self.settings, "configure regional audit-log webhook", e)
                })?;
            self.progress
                .lock()
                .expect("progress lock poisoned")
                .webhook_attached = true;
            tracing::info!(destination_id = %destination.id, region = %self.settings.region, "attached regional audit-log webhook");
            self.write_destination_state(true, CleanupStatus::Active, None)?;
        }

        // Each portal's webhook, recorded as sent before it is sent (a
        // crash in between leaves it for reclaim to check).
        for (i, portal) in portals.iter().enumerate() {
            let label = portal.label();
            self.progress
                .lock()
                .expect("progress lock poisoned")
                .portals[i]
                .attach_sent = true;
            self.write_destination_state(opts.configure_webhook, CleanupStatus::Active, None)?;
            self.audit
                .attach_portal_webhook(&portal.id, &destination.id)
                .await
                .map_err(|e| {
                    step_error(
                        &self.settings,
                        &format!("configure the audit-log webhook of Dev Portal {label}"),
                        e,
                    )
                })?;
            self.progress
                .lock()
                .expect("progress lock poisoned")
                .portals[i]
                .webhook_configured = true;
            tracing::info!(destination_id = %destination.id, portal_id = %portal.id, "attached the Dev Portal's audit-log webhook");
            self.write_destination_state(opts.configure_webhook, CleanupStatus::Active, None)?;
        }
        Ok(())
    }

    /// Step 4: with `--configure-webhook`, the region's webhook must be
    /// unconfigured (read only; `--dry-run` runs it too).
    pub(super) async fn check_webhook_unconfigured(&self) -> Result<(), CliError> {
        if !self.opts.configure_webhook {
            return Ok(());
        }
        let hook = self
            .audit
            .webhook()
            .await
            .map_err(|e| step_error(&self.settings, "read regional audit-log webhook", e))?;
        if !hook.is_unconfigured() {
            return Err(CliError::new(format!(
                "regional audit-log webhook is already configured (enabled={} endpoint={:?}); expected enabled=false and endpoint=\"unconfigured\"",
                hook.enabled, hook.endpoint
            ))
            .with_hint(format!(
                "another listener or integration uses the {region} webhook; stop it (kongctl ps), \
                 or clear it with 'kongctl delete audit-logs webhook{flag}', or use --configure-webhook=false",
                region = self.settings.region,
                flag = region_flag(&self.settings.region),
            )));
        }
        Ok(())
    }

    /// Step 4, for `--portal`: each portal's webhook must be free
    /// (disabled); what it points at is what it gets back on exit (read
    /// only).
    pub(super) async fn check_portals_free(
        &self,
        portals: &[crate::konnect::portals::Portal],
    ) -> Result<Vec<PortalState>, CliError> {
        let mut found = Vec::with_capacity(portals.len());
        for portal in portals {
            let label = portal.label();
            let hook = self.audit.portal_webhook(&portal.id).await.map_err(|e| {
                step_error(
                    &self.settings,
                    &format!("read the audit-log webhook of Dev Portal {label}"),
                    e,
                )
            })?;
            if hook.enabled {
                return Err(CliError::new(format!(
                    "the audit-log webhook of Dev Portal {label} is already enabled (destination {}); expected it disabled",
                    hook.destination_id.as_deref().unwrap_or("none")
                ))
                .with_hint(format!(
                    "another listener or integration uses it; stop it (kongctl ps), \
                     or clear it with 'kongctl delete audit-logs webhook --portal {}{}', or leave out --portal {}",
                    portal.id,
                    region_flag(&self.settings.region),
                    portal.name,
                )));
            }
            found.push(PortalState::found(
                portal.id.clone(),
                portal.name.clone(),
                hook.destination_id,
            ));
        }
        Ok(found)
    }

    /// Step 5: no destination has the name yet (read only).
    pub(super) async fn check_name_unused(&self) -> Result<(), CliError> {
        let name = &self.opts.name;
        let taken = self
            .audit
            .destinations_named(name)
            .await
            .map_err(|e| step_error(&self.settings, "list audit-log destinations", e))?;
        if !taken.is_empty() {
            return Err(
                CliError::new(format!("destination name {name:?} already exists")).with_hint(
                    format!(
                        "choose another --name, or delete the old destination with 'kongctl delete audit-logs destination {name}'"
                    ),
                ),
            );
        }
        Ok(())
    }

    pub(super) fn write_destination_state(
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
            .unwrap_or_else(crate::time::now_rfc3339);
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
            deleted_at: (status == CleanupStatus::Deleted).then(crate::time::now_rfc3339),
            status,
            cleanup_error,
            portals: p.portals.clone(),
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
    pub(super) async fn undo_after_failed_setup(&self, err: CliError) -> CliError {
        {
            let p = self.progress.lock().expect("progress lock poisoned");
            if !p.create_sent && !p.attach_sent && !p.portals.iter().any(|s| s.attach_sent) {
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
}

/// `Error: <step>: <why>`: which startup step failed and why.
pub(super) fn step_error(settings: &Settings, step: &str, e: KonnectError) -> CliError {
    let err = CliError::new(format!("{step}: {e}"));
    match e.status().map(|s| s.as_u16()) {
        Some(401) => err.with_hint(settings.rejected_token_hint()),
        Some(403) => err.with_hint(
            "the access token lacks permission for audit logs: an organisation admin token is needed",
        ),
        _ => err,
    }
}

/// ` --region <r>` for commands suggested to the user, unless it is the
/// default region.
fn region_flag(region: &str) -> String {
    if region == "us" {
        String::new()
    } else {
        format!(" --region {region}")
    }
}
