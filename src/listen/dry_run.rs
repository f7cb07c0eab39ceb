//! `listen --dry-run`: everything a start checks, with nothing changed.
//!
//! Local: the profile's lock is free (read, never created), the listen
//! and admin addresses can be bound (then released). Then the tunnel
//! self-test (`check`), as `--check` says. Then Konnect, reads only: the
//! JWKS for `--verify` (not saved), an earlier listener's unfinished
//! cleanup (reported, not done), the region's webhook unconfigured, the
//! destination name unused (`startup`'s own checks). Last, what a start
//! would create. No file is written: no lock, no state files, no events
//! file, no `jwks.json`, no log file (logs go to stderr).
//!
//! The first check that would stop a start ends the run with its error
//! (exit 1); bad flags, values and config files are caught before this
//! runs (exit 78, `crate::error::exit_code::CONFIG`).

use std::sync::{Arc, Mutex};

use super::cleanup::Progress;
use super::signals::Signals;
use super::state::{self, CleanupStatus, DestinationState, ProfileLock, StoragePaths};
use super::{Run, bind, local_endpoint, lock_error};
use crate::config::Settings;
use crate::error::{CliError, exit_code};
use crate::konnect::client::ClientOptions;
use crate::konnect::error::redact_url;
use crate::konnect::{AuditLogs, KonnectClient};
use crate::listen::ListenOptions;
use crate::listen::check::CheckMode;
use crate::service::Service;
use crate::verify::{KeySet, Mode};

/// Runs the checks and prints the plan; `Ok` when a start would go ahead.
pub async fn dry_run(settings: Settings, opts: ListenOptions) -> Result<(), CliError> {
    let signals = Signals::install()?;
    let client = KonnectClient::from_settings(&settings, ClientOptions::from_env())
        .map_err(|e| CliError::new(e).with_code(exit_code::CONFIG))?;
    for w in &opts.warnings {
        eprintln!("Warning: {w}");
    }
    let paths = StoragePaths::new(settings.audit_log_dir());
    ProfileLock::check_free(&paths.lock_file).map_err(lock_error)?;
    let listener = bind(opts.listen_address).await?;
    let bound = listener
        .local_addr()
        .map_err(|e| CliError::new(format!("failed to read the bound address: {e}")))?;
    let admin = match opts.service.admin_address {
        Some(addr) => {
            crate::service::check_distinct(addr, bound)?;
            let admin = crate::service::admin::bind(addr, bound).await?;
            Some(admin.local_addr().unwrap_or(addr))
        }
        None => None,
    };
    let run = Run {
        settings,
        opts,
        paths,
        audit: AuditLogs::new(client),
        progress: Arc::new(Mutex::new(Progress::default())),
        signals,
        verifier: None,
        service: Arc::new(Service::quiet()),
    };
    let mut notes = Vec::new();
    let tunnel = run.check_tunnel(&listener, bound).await?;
    notes.push(match (run.opts.check, tunnel) {
        (CheckMode::Off, _) => "tunnel check: skipped (--check off)".to_string(),
        (_, Some(_)) => "tunnel check: failed, see the warning above (a start goes ahead anyway under --check warn)".to_string(),
        (_, None) => format!(
            "tunnel check: {} reaches this listener",
            redact_url(&run.opts.endpoint)
        ),
    });
    notes.push(run.signing_keys().await?);
    if let Some(note) = run.unfinished_cleanup() {
        notes.push(note);
    }
    run.check_webhook_unconfigured().await?;
    let portals = crate::portal::resolve_all(&run.settings, &run.audit, &run.opts.portals).await?;
    run.check_portals_free(&portals).await?;
    if !portals.is_empty() {
        let names: Vec<String> = portals.iter().map(|p| p.label()).collect();
        notes.push(format!(
            "dev portal webhooks: free, would point at the destination: {}",
            names.join(", ")
        ));
    }
    run.check_name_unused().await?;
    drop(listener);
    super::banner::print_stdout(&run.plan(bound, admin, &notes));
    Ok(())
}

impl Run {
    /// The JWKS for `--verify`, fetched and not saved: under `reject` a
    /// failure stops a start, under `warn` it is a warning.
    async fn signing_keys(&self) -> Result<String, CliError> {
        const STEP: &str = "fetch audit-log signing keys (JWKS)";
        if self.opts.verify == Mode::Off {
            return Ok("signature checks: off (--verify off)".into());
        }
        let keys = match self.audit.jwks(None).await {
            Ok(body) => KeySet::parse(&body).map_err(|e| CliError::new(format!("{STEP}: {e}"))),
            Err(e) => Err(super::startup::step_error(&self.settings, STEP, e)),
        };
        match keys {
            Ok(keys) => Ok(format!(
                "signature checks: {} with {} key(s) from Konnect's JWKS",
                self.opts.verify.as_str(),
                keys.len()
            )),
            Err(e) if self.opts.verify == Mode::Reject => Err(e),
            Err(e) => {
                eprintln!("Warning: {}", e.message);
                Ok("signature checks: warn, without Konnect's keys for now (see the warning above)".into())
            }
        }
    }

    /// What an earlier listener of this profile left for the next start to
    /// clean up, if anything.
    fn unfinished_cleanup(&self) -> Option<String> {
        let prev: DestinationState = state::read_json(&self.paths.destination_file).ok()??;
        if prev.status == CleanupStatus::Deleted {
            return None;
        }
        let what = prev
            .destination_id
            .clone()
            .unwrap_or_else(|| format!("named {:?}", prev.destination_name));
        Some(format!(
            "first finish the cleanup an earlier listener (pid {}) left: destination {what}{}",
            prev.pid,
            if prev.webhook_configured {
                " and the region's webhook"
            } else {
                ""
            }
        ))
    }

    /// What a start would create and where it would listen and write.
    fn plan(
        &self,
        bound: std::net::SocketAddr,
        admin: Option<std::net::SocketAddr>,
        notes: &[String],
    ) -> String {
        let opts = &self.opts;
        let mut text = String::from("Dry run: nothing was changed in Konnect or on disk.\n\n");
        text.push_str("Checked\n");
        for n in notes {
            text.push_str(&format!("  {n}\n"));
        }
        text.push_str(&format!(
            "  Konnect: the {} webhook is {}, destination name {:?} is unused\n",
            self.settings.region,
            if opts.configure_webhook {
                "unconfigured"
            } else {
                "left alone (--configure-webhook=false)"
            },
            opts.name
        ));
        text.push_str("\nA start would\n");
        text.push_str(&format!(
            "  create audit-log destination {:?} for {} (log format {})\n",
            opts.name,
            redact_url(&opts.endpoint),
            opts.log_format.as_str()
        ));
        if opts.configure_webhook {
            text.push_str(&format!(
                "  point the {} audit-log webhook at it\n",
                self.settings.region
            ));
        }
        let port_note = if opts.listen_address.port() == 0 {
            " (port 0: a free port, this time "
        } else {
            " ("
        };
        text.push_str(&format!(
            "  listen on {}{port_note}{})\n",
            opts.listen_address,
            local_endpoint(bound, &opts.path)
        ));
        if let Some(admin) = admin {
            text.push_str(&format!(
                "  serve /healthz, /readyz and /metrics on {} (this time http://{admin})\n",
                opts.service.admin_address.map_or(admin, |a| a),
            ));
        }
        text.push_str(&format!(
            "  store records in {}\n",
            self.paths.events_file.display()
        ));
        text
    }
}
