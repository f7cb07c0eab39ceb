//! Naming a Dev Portal on the command line (`--portal <id|name>` of
//! `listen`, `tail`, `get audit-logs` and `delete audit-logs webhook`): the
//! one place that turns the lookup (`konnect::portals`) into what a user
//! reads when it fails. Which records belong to a portal is the query
//! engine's (`crate::query`); what a listener does with a portal's webhook
//! is `crate::listen`'s.

use crate::config::Settings;
use crate::error::CliError;
use crate::konnect::portals::{Portal, ResolveError};
use crate::konnect::{AuditLogs, KonnectError};

/// The portal `text` names, or an error that says why not: unknown (with
/// the region's portals), ambiguous (with the ids), or the failed call.
pub async fn resolve(
    settings: &Settings,
    audit: &AuditLogs,
    text: &str,
) -> Result<Portal, CliError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(CliError::new("--portal must not be empty"));
    }
    audit.resolve_portal(text).await.map_err(|e| match e {
        ResolveError::Konnect(e) => konnect_error(settings, "look up Dev Portal", e),
        other => {
            let hint = other.hint();
            let err = CliError::new(format!("--portal {text:?}: {other}"));
            match hint {
                Some(h) => err.with_hint(h),
                None => err,
            }
        }
    })
}

/// Resolves each of `texts`, in order, without repeats (a portal given by
/// id and by name counts once).
pub async fn resolve_all(
    settings: &Settings,
    audit: &AuditLogs,
    texts: &[String],
) -> Result<Vec<Portal>, CliError> {
    let mut portals: Vec<Portal> = Vec::new();
    for text in texts {
        let p = resolve(settings, audit, text).await?;
        if !portals.iter().any(|q| q.id == p.id) {
            portals.push(p);
        }
    }
    Ok(portals)
}

/// The portal ids `texts` name, for keeping only their stored records: an
/// id as it is (no token or network needed), a name looked up in Konnect
/// (which needs an access token: without one, say so and how to do
/// without).
pub fn ids_for_filter(settings: &Settings, texts: &[String]) -> Result<Vec<String>, CliError> {
    let mut ids: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for text in texts {
        let text = text.trim();
        if text.is_empty() {
            return Err(CliError::new("--portal must not be empty"));
        }
        if crate::konnect::portals::looks_like_uuid(text) {
            ids.push(text.to_ascii_lowercase());
        } else {
            names.push(text.to_string());
        }
    }
    if !names.is_empty() {
        if let Err(why) = settings.auth() {
            return Err(CliError::new(format!(
                "--portal {:?}: a portal name is looked up in Konnect, which needs an access token: {why}",
                names[0]
            ))
            .with_hint(
                "give the portal's id instead (--portal <uuid>): an id needs no token and works offline",
            ));
        }
        let client = crate::konnect::KonnectClient::from_settings(
            settings,
            crate::konnect::client::ClientOptions::from_env(),
        )
        .map_err(CliError::new)?;
        let audit = AuditLogs::new(client);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::new(format!("failed to start the async runtime: {e}")))?;
        for p in runtime.block_on(resolve_all(settings, &audit, &names))? {
            ids.push(p.id.to_ascii_lowercase());
        }
    }
    ids.dedup();
    Ok(ids)
}

/// `Error: <step>: <why>`, with the hint for a rejected token (401) or a
/// token without the right (403).
pub fn konnect_error(settings: &Settings, step: &str, e: KonnectError) -> CliError {
    let err = CliError::new(format!("{step}: {e}"));
    match e.status().map(|s| s.as_u16()) {
        Some(401) => err.with_hint(settings.rejected_token_hint()),
        Some(403) => err.with_hint(
            "the access token lacks permission for Dev Portals or audit logs: \
             an organisation admin token (or Audit Log Admin and Portal Creator roles) is needed",
        ),
        _ => err,
    }
}
