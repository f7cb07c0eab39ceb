//! `kongctl delete audit-logs destination <id|name>` and `kongctl delete
//! audit-logs webhook [--portal <id|name>]`: clearing Konnect state that
//! blocks `listen` (Kong's "webhook already configured" troubleshooting
//! step, for the region's webhook or a Dev Portal's) or that a listener
//! left behind.
//!
//! Each command reads what exists, refuses to touch what a running kongctl
//! listener on this machine owns (see `owners`) unless `--force`, shows what
//! will change on stderr, asks on a terminal unless `--yes` (and requires
//! `--yes` without one), then makes the same calls as a listener's cleanup
//! (`konnect::audit_logs`: release the webhook, delete the destination
//! waiting out 409 "destination is in use"; `konnect::portals`: delete a
//! portal's webhook waiting out 409). The result goes to stdout.

pub mod owners;

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::cli::{ConfirmArgs, DeleteResource, DeleteWebhookArgs};
use crate::config::Settings;
use crate::error::CliError;
use crate::konnect::audit_logs::Removal;
use crate::konnect::portals::looks_like_uuid;
use crate::konnect::{AuditLogs, Destination, Portal};
use owners::Owner;

/// How long deleting may wait out "destination is in use", as cleanup.
const DELETE_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `delete audit-logs <resource>`; `command_path` is for messages.
pub fn run(
    settings: &Settings,
    resource: DeleteResource,
    command_path: &str,
) -> Result<(), CliError> {
    let audit = audit_logs(settings)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("failed to start the async runtime: {e}")))?;
    let owners = owners::live_owners(&settings.config_dir);
    let ctx = Ctx {
        settings,
        audit: &audit,
        owners: &owners,
        command_path,
    };
    match resource {
        DeleteResource::Webhook(DeleteWebhookArgs { portal, confirm }) => match portal.portal {
            Some(text) => runtime.block_on(ctx.portal_webhook(&text, confirm)),
            None => runtime.block_on(ctx.webhook(confirm)),
        },
        DeleteResource::Destination(args) => {
            runtime.block_on(ctx.destination(args.id_or_name.trim(), args.confirm))
        }
    }
}

/// The Konnect client for `settings` (PAT, else the login token file).
fn audit_logs(settings: &Settings) -> Result<AuditLogs, CliError> {
    let client = crate::konnect::KonnectClient::from_settings(
        settings,
        crate::konnect::client::ClientOptions::from_env(),
    )
    .map_err(CliError::new)?;
    Ok(AuditLogs::new(client))
}

struct Ctx<'a> {
    settings: &'a Settings,
    audit: &'a AuditLogs,
    owners: &'a [Owner],
    command_path: &'a str,
}

impl Ctx<'_> {
    async fn webhook(&self, confirm: ConfirmArgs) -> Result<(), CliError> {
        let region = &self.settings.region;
        let hook = self
            .audit
            .webhook()
            .await
            .map_err(|e| self.konnect_error("read regional audit-log webhook", e))?;
        let attached = self
            .audit
            .webhook_destination()
            .await
            .map_err(|e| self.konnect_error("read regional audit-log webhook", e))?;
        if hook.is_unconfigured() && attached.is_none() {
            println!("The {region} audit-log webhook is not configured; nothing to delete.");
            return Ok(());
        }
        let owner = attached.as_deref().and_then(|id| {
            self.owners
                .iter()
                .find(|o| o.destination_id.as_deref() == Some(id))
        });
        if let Some(o) = owner
            && !confirm.force
        {
            return Err(owned_error(
                format!("the {region} audit-log webhook"),
                o,
                "it clears the webhook itself when it stops",
            ));
        }
        let mut plan = format!(
            "This deletes the {region} audit-log webhook:\n  enabled: {}\n  endpoint: {}\n  destination: {}\n\
             Afterwards it is disabled with endpoint \"unconfigured\": Konnect stops delivering audit logs for {region}.",
            hook.enabled,
            redact(&hook.endpoint),
            attached.as_deref().unwrap_or("(none)"),
        );
        if let Some(o) = owner {
            plan.push_str(&format!("\n{}", forced_note(o)));
        }
        self.confirm(&plan, confirm)?;
        let deadline = Instant::now() + DELETE_DEADLINE;
        self.audit
            .release_webhook(Some(deadline))
            .await
            .map_err(|e| self.konnect_error("release audit-log webhook", e))?;
        println!("Deleted the {region} audit-log webhook (disabled, endpoint unconfigured).");
        if let Some(id) = attached {
            eprintln!(
                "Audit-log destination {id} still exists; to delete it: kongctl delete audit-logs destination {id}"
            );
        }
        Ok(())
    }

    /// `delete audit-logs webhook --portal <id|name>`.
    async fn portal_webhook(&self, text: &str, confirm: ConfirmArgs) -> Result<(), CliError> {
        let portal: Portal = crate::portal::resolve(self.settings, self.audit, text).await?;
        let label = portal.label();
        let hook = self
            .audit
            .portal_webhook(&portal.id)
            .await
            .map_err(|e| self.konnect_error("read the Dev Portal's audit-log webhook", e))?;
        if !hook.enabled && hook.destination_id.is_none() {
            println!(
                "The audit-log webhook of Dev Portal {label} is not configured; nothing to delete."
            );
            return Ok(());
        }
        let owner = self
            .owners
            .iter()
            .find(|o| o.owns_portal_webhook(&portal.id, hook.destination_id.as_deref()));
        if let Some(o) = owner
            && !confirm.force
        {
            return Err(owned_error(
                format!("the audit-log webhook of Dev Portal {label}"),
                o,
                "it restores the webhook itself when it stops",
            ));
        }
        let mut plan = format!(
            "This deletes the audit-log webhook of Dev Portal {label}:\n  enabled: {}\n  destination: {}\n\
             Afterwards it is disabled with no destination: Konnect stops delivering the portal's audit logs.",
            hook.enabled,
            hook.destination_id.as_deref().unwrap_or("(none)"),
        );
        if let Some(o) = owner {
            plan.push_str(&format!("\n{}", forced_note(o)));
        }
        self.confirm(&plan, confirm)?;
        let deadline = Instant::now() + DELETE_DEADLINE;
        self.audit
            .delete_portal_webhook(&portal.id, deadline)
            .await
            .map_err(|e| self.konnect_error("delete the Dev Portal's audit-log webhook", e))?;
        println!("Deleted the audit-log webhook of Dev Portal {label} (disabled, no destination).");
        if let Some(id) = hook.destination_id {
            eprintln!(
                "Audit-log destination {id} still exists; to delete it: kongctl delete audit-logs destination {id}"
            );
        }
        Ok(())
    }

    async fn destination(&self, id_or_name: &str, confirm: ConfirmArgs) -> Result<(), CliError> {
        if id_or_name.is_empty() {
            return Err(CliError::usage(
                "provide the id or name of an audit-log destination",
                self.command_path,
            ));
        }
        let region = &self.settings.region;
        let d = self.resolve(id_or_name).await?;
        let owner = self
            .owners
            .iter()
            .find(|o| o.owns_destination(&d.id, &d.name));
        if let Some(o) = owner
            && !confirm.force
        {
            return Err(owned_error(
                format!("audit-log destination {} ({:?})", d.id, d.name),
                o,
                "it deletes its destination itself when it stops",
            ));
        }
        let attached = self
            .audit
            .webhook_destination()
            .await
            .map_err(|e| self.konnect_error("read regional audit-log webhook", e))?;
        let in_use = attached.as_deref() == Some(d.id.as_str());

        let mut plan = format!(
            "This deletes audit-log destination {}:\n  name: {}\n  endpoint: {}\n  log format: {}",
            d.id,
            d.name,
            redact(&d.endpoint),
            d.log_format.as_deref().unwrap_or("(unknown)"),
        );
        if in_use {
            plan.push_str(&format!(
                "\nThe {region} audit-log webhook points at it: it is disabled and cleared first."
            ));
        }
        if let Some(o) = owner {
            plan.push_str(&format!("\n{}", forced_note(o)));
        }
        self.confirm(&plan, confirm)?;

        let deadline = Instant::now() + DELETE_DEADLINE;
        if in_use {
            self.audit
                .release_webhook(Some(deadline))
                .await
                .map_err(|e| self.konnect_error("release audit-log webhook", e))?;
            println!("Deleted the {region} audit-log webhook (disabled, endpoint unconfigured).");
        }
        match self.audit.delete_destination(&d.id, deadline).await {
            Ok(Removal::Deleted) | Ok(Removal::AlreadyGone) => {
                println!("Deleted audit-log destination: {}", d.id);
                Ok(())
            }
            Err(e) => {
                let in_use = e.status() == Some(reqwest::StatusCode::CONFLICT);
                let err = self.konnect_error("delete audit-log destination", e);
                Err(if in_use {
                    err.with_hint(
                        "a webhook still points at it, perhaps another region's or a Dev Portal's: \
                         kongctl delete audit-logs webhook --region <region>, or \
                         kongctl delete audit-logs webhook --portal <portal>",
                    )
                } else {
                    err
                })
            }
        }
    }

    /// The destination named by `id_or_name`: an id if one exists, else the
    /// only destination of that name.
    async fn resolve(&self, id_or_name: &str) -> Result<Destination, CliError> {
        if looks_like_uuid(id_or_name)
            && let Some(d) = self
                .audit
                .destination(id_or_name)
                .await
                .map_err(|e| self.konnect_error("read audit-log destination", e))?
        {
            return Ok(d);
        }
        let mut named = self
            .audit
            .destinations_named(id_or_name)
            .await
            .map_err(|e| self.konnect_error("list audit-log destinations", e))?;
        match named.len() {
            0 => Err(CliError::new(format!(
                "no audit-log destination has the id or name {id_or_name:?}"
            ))
            .with_hint("kongctl get audit-logs destinations lists them")),
            1 => Ok(named.remove(0)),
            n => Err(CliError::new(format!(
                "{n} audit-log destinations are named {id_or_name:?}: {}",
                named
                    .iter()
                    .map(|d| d.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .with_hint("delete one by its id")),
        }
    }

    /// Shows `plan` and asks, unless `--yes`; without a terminal `--yes` is
    /// required.
    fn confirm(&self, plan: &str, confirm: ConfirmArgs) -> Result<(), CliError> {
        eprintln!("{plan}");
        if confirm.yes {
            return Ok(());
        }
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Err(CliError::usage(
                "--yes is required when stdin is not a terminal; nothing was changed",
                self.command_path,
            ));
        }
        eprint!("Continue? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        stdin
            .lock()
            .read_line(&mut answer)
            .map_err(|e| CliError::new(format!("failed to read the answer: {e}")))?;
        match answer.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Ok(()),
            _ => Err(CliError::new("cancelled; nothing was changed")),
        }
    }

    fn konnect_error(&self, step: &str, e: crate::konnect::KonnectError) -> CliError {
        let err = CliError::new(format!("{step}: {e}"));
        match e.status().map(|s| s.as_u16()) {
            Some(401) => err.with_hint(self.settings.rejected_token_hint()),
            Some(403) => err.with_hint(
                "the access token lacks permission for audit logs: an organisation admin token is needed",
            ),
            _ => err,
        }
    }
}

/// The refusal to remove `what`, owned by the running listener `o`.
fn owned_error(what: String, o: &Owner, why_stop: &str) -> CliError {
    CliError::new(format!(
        "{what} belongs to a running kongctl listener (pid {}, profile {:?})",
        o.pid, o.profile
    ))
    .with_hint(format!(
        "stop it instead (kongctl ps stop {pid}, or kill -TERM {pid}): {why_stop}; --force removes it anyway",
        pid = o.pid
    ))
}

fn forced_note(o: &Owner) -> String {
    format!(
        "Warning: the running kongctl listener pid {} (profile {:?}) owns it (--force): \
         it stops receiving audit logs and its own cleanup will find it gone.",
        o.pid, o.profile
    )
}

/// An endpoint for display, without credentials or secret query values.
fn redact(endpoint: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(u) => crate::konnect::error::redact_url(&u),
        Err(_) => endpoint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uuids_are_looked_up_as_ids() {
        assert!(looks_like_uuid("6f1c2a3b-0000-4000-8000-000000000001"));
        assert!(!looks_like_uuid("kongctl-box-1234"));
        assert!(!looks_like_uuid(""));
    }

    #[test]
    fn refusals_name_the_pid_and_the_way_out() {
        let o = Owner {
            pid: 4242,
            profile: "dev".into(),
            destination_id: Some("d1".into()),
            destination_name: None,
            portal_ids: Vec::new(),
        };
        let e = owned_error("the us audit-log webhook".into(), &o, "it clears it");
        assert_eq!(
            e.to_string(),
            "Error: the us audit-log webhook belongs to a running kongctl listener (pid 4242, profile \"dev\")\n\
             Hint: stop it instead (kongctl ps stop 4242, or kill -TERM 4242): it clears it; --force removes it anyway"
        );
    }

    #[test]
    fn endpoints_are_shown_without_credentials() {
        assert_eq!(redact("https://user:pw@h.test/a"), "https://h.test/a");
        assert_eq!(redact("unconfigured"), "unconfigured");
    }
}
