//! Undoing what a listener did in Konnect, in the reverse order of startup:
//! give each Dev Portal's webhook back as it was, release the regional
//! webhook, delete the destination.
//!
//! The same code runs after a normal stop, when startup fails half-way, when
//! startup is interrupted, and when the next start of a profile finds that
//! an earlier listener died before it could clean up (reclaim).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use reqwest::StatusCode;

use super::state::{PortalRelease, PortalState};
use crate::konnect::audit_logs::Removal;
use crate::konnect::{AuditLogs, Destination, KonnectError};

/// What startup has done so far in Konnect, updated as it goes, so that an
/// interrupted or failed startup can be undone precisely.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    /// The destination name; set before the create request is sent.
    pub name: Option<String>,
    /// A create request was sent: the destination may exist even without an
    /// id (the answer was lost).
    pub create_sent: bool,
    pub destination: Option<Destination>,
    /// A webhook PATCH was sent: the webhook may point at the destination.
    pub attach_sent: bool,
    pub webhook_attached: bool,
    /// The Dev Portals (`--portal`), in the order their webhooks are
    /// attached, each with what startup found and did.
    pub portals: Vec<PortalState>,
}

pub type SharedProgress = Arc<Mutex<Progress>>;

/// What cleanup achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupReport {
    pub webhook_released: bool,
    /// Labels of the portals whose webhooks were given back.
    pub portals_released: Vec<String>,
    /// Ids of destinations deleted (or found already gone).
    pub destinations_removed: Vec<String>,
}

/// Why cleanup could not finish, and what is left.
#[derive(Debug)]
pub struct CleanupError {
    pub step: String,
    pub source: KonnectError,
    pub left: Leftovers,
}

impl std::fmt::Display for CleanupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.source)
    }
}

/// What may still exist in Konnect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Labels (`name (id)`) of the Dev Portals whose webhooks may still
    /// point at the destination.
    pub portals: Vec<String>,
    pub webhook: bool,
    pub destination_id: Option<String>,
    pub destination_name: Option<String>,
}

impl Leftovers {
    pub fn of(p: &Progress) -> Leftovers {
        Leftovers {
            portals: p
                .portals
                .iter()
                .filter(|s| s.attach_sent)
                .map(PortalState::label)
                .collect(),
            webhook: p.attach_sent,
            destination_id: p.destination.as_ref().map(|d| d.id.clone()),
            destination_name: if p.create_sent { p.name.clone() } else { None },
        }
    }

    pub fn is_empty(&self) -> bool {
        self.portals.is_empty()
            && !self.webhook
            && self.destination_id.is_none()
            && self.destination_name.is_none()
    }

    /// A sentence for users: what may be left and how to get rid of it.
    pub fn describe(&self, region: &str) -> String {
        let mut parts = Vec::new();
        match self.portals.as_slice() {
            [] => {}
            [one] => parts.push(format!(
                "the audit-log webhook of Dev Portal {one} may still point at this listener's destination"
            )),
            many => parts.push(format!(
                "the audit-log webhooks of Dev Portals {} may still point at this listener's destination",
                many.join(", ")
            )),
        }
        if self.webhook {
            parts.push(format!(
                "the {region} audit-log webhook may still point at this listener's destination"
            ));
        }
        match (&self.destination_id, &self.destination_name) {
            (Some(id), _) => parts.push(format!("audit-log destination {id} may still exist")),
            (None, Some(name)) => parts.push(format!(
                "an audit-log destination named {name:?} may have been created"
            )),
            (None, None) => {}
        }
        if parts.is_empty() {
            "nothing was left in Konnect".into()
        } else {
            parts.join("; ")
        }
    }
}

/// Gives back each Dev Portal's webhook startup attached or tried to
/// attach (last first), releases the regional webhook (likewise) and
/// deletes the destination, before `deadline`. `left` says, at every
/// moment, what may still exist: if the caller abandons the release (a
/// second Ctrl+C), it reports that.
///
/// A portal's webhook is given back only while it still points at our
/// destination (or while that cannot be told), as the regional one: one
/// someone pointed elsewhere, or cleared, meanwhile is left alone. Given
/// back means as startup found it: cleared (`DELETE`) if it had no
/// destination, else pointed back at its previous destination, disabled
/// (cleared if that destination no longer exists).
///
/// The webhook is only released while it still points at our destination
/// (or while that cannot be told): a webhook someone re-pointed in the
/// meantime, at another destination or at an inline (v2) endpoint, is
/// theirs and is left alone. Besides the destination we know, every
/// destination of the listener's (unique) name is deleted: one whose create
/// got no answer, or one a late create made.
pub async fn release(
    audit: &AuditLogs,
    progress: &Progress,
    deadline: Instant,
    left: &Mutex<Leftovers>,
) -> Result<CleanupReport, CleanupError> {
    let mut report = CleanupReport {
        webhook_released: false,
        portals_released: Vec::new(),
        destinations_removed: Vec::new(),
    };
    *lock(left) = Leftovers::of(progress);
    let fail = |step: &str, source| CleanupError {
        step: step.to_string(),
        source,
        left: lock(left).clone(),
    };

    let ours = progress.destination.as_ref().map(|d| d.id.as_str());
    for portal in progress.portals.iter().rev().filter(|p| p.attach_sent) {
        let label = portal.label();
        if release_portal(audit, portal, ours, deadline)
            .await
            .map_err(|e| {
                fail(
                    &format!("restore the audit-log webhook of Dev Portal {label}"),
                    e,
                )
            })?
        {
            report.portals_released.push(label.clone());
        }
        lock(left).portals.retain(|l| *l != label);
    }

    if progress.attach_sent {
        let ours = progress.destination.as_ref().map(|d| d.id.as_str());
        let points_elsewhere = match audit.webhook_destination().await {
            Ok(Some(current)) => ours.is_some_and(|o| o != current),
            // No destination attached: the webhook is released already, or
            // someone configured it the v2 way (inline endpoint); either
            // way it is not ours to disable.
            Ok(None) => ours.is_some(),
            Err(e) => {
                tracing::debug!(error = %e, "could not read the v3 webhook; releasing anyway");
                false
            }
        };
        if points_elsewhere {
            tracing::warn!(
                "the regional webhook does not point at this listener's destination; leaving it alone"
            );
        } else {
            audit
                .release_webhook(Some(deadline))
                .await
                .map_err(|e| fail("release audit-log webhook", e))?;
            report.webhook_released = true;
        }
        lock(left).webhook = false;
    }

    // The destination we know, then any other of our name: a create whose
    // answer was lost may have taken effect late, after a retry made
    // another. The name was unused when the listener started, so every
    // destination of that name is this listener's.
    let known: Vec<String> = progress.destination.iter().map(|d| d.id.clone()).collect();
    delete_destinations(audit, known, deadline, &mut report, left).await?;
    if progress.create_sent
        && let Some(name) = &progress.name
    {
        let found = audit
            .destinations_named(name)
            .await
            .map_err(|e| fail("look up audit-log destination", e))?;
        let others = found
            .into_iter()
            .map(|d| d.id)
            .filter(|id| !report.destinations_removed.contains(id))
            .collect();
        delete_destinations(audit, others, deadline, &mut report, left).await?;
    }
    lock(left).destination_name = None;
    Ok(report)
}

async fn delete_destinations(
    audit: &AuditLogs,
    ids: Vec<String>,
    deadline: Instant,
    report: &mut CleanupReport,
    left: &Mutex<Leftovers>,
) -> Result<(), CleanupError> {
    for id in ids {
        match audit.delete_destination(&id, deadline).await {
            Ok(Removal::Deleted) | Ok(Removal::AlreadyGone) => {
                report.destinations_removed.push(id);
                lock(left).destination_id = None;
            }
            Err(e) => {
                lock(left).destination_id = Some(id);
                return Err(CleanupError {
                    step: "delete audit-log destination".into(),
                    source: e,
                    left: lock(left).clone(),
                });
            }
        }
    }
    Ok(())
}

/// Gives one portal's webhook back, if it still points at `ours` (or that
/// cannot be told); true if it did.
async fn release_portal(
    audit: &AuditLogs,
    portal: &PortalState,
    ours: Option<&str>,
    deadline: Instant,
) -> Result<bool, KonnectError> {
    let id = portal.portal_id.as_str();
    let points_elsewhere = match audit.portal_webhook(id).await {
        Ok(hook) => match (hook.destination_id.as_deref(), ours) {
            (Some(current), Some(o)) => current != o,
            (Some(_), None) => false,
            // Cleared: given back already, or by someone else.
            (None, _) => true,
        },
        Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {
            tracing::warn!(
                portal_id = id,
                "the Dev Portal no longer exists; nothing to give back"
            );
            return Ok(false);
        }
        Err(e) => {
            tracing::debug!(portal_id = id, error = %e, "could not read the portal's webhook; giving it back anyway");
            false
        }
    };
    if points_elsewhere {
        tracing::warn!(
            portal_id = id,
            "the Dev Portal's webhook does not point at this listener's destination; leaving it alone"
        );
        return Ok(false);
    }
    if let (PortalRelease::Restore, Some(previous)) =
        (portal.release, portal.previous_destination_id.as_deref())
    {
        match audit
            .repoint_portal_webhook(id, previous, false, Some(deadline))
            .await
        {
            Ok(_) => {
                tracing::info!(
                    portal_id = id,
                    destination_id = previous,
                    "pointed the Dev Portal's webhook back at its previous destination, disabled"
                );
                return Ok(true);
            }
            // The previous destination is gone (or refused): clearing is
            // the nearest to what was there.
            Err(e)
                if matches!(
                    e.status(),
                    Some(StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST)
                ) =>
            {
                tracing::warn!(portal_id = id, destination_id = previous, error = %e, "could not point the Dev Portal's webhook back at its previous destination; clearing it");
            }
            Err(e) => return Err(e),
        }
    }
    audit.delete_portal_webhook(id, deadline).await?;
    tracing::info!(portal_id = id, "cleared the Dev Portal's webhook");
    Ok(true)
}

fn lock(left: &Mutex<Leftovers>) -> std::sync::MutexGuard<'_, Leftovers> {
    left.lock().expect("leftovers lock poisoned")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_describe_what_may_exist() {
        let mut p = Progress {
            name: Some("kongctl-box-1".into()),
            ..Default::default()
        };
        assert!(Leftovers::of(&p).is_empty());
        assert_eq!(
            Leftovers::of(&p).describe("us"),
            "nothing was left in Konnect"
        );
        p.create_sent = true;
        assert_eq!(
            Leftovers::of(&p).describe("us"),
            "an audit-log destination named \"kongctl-box-1\" may have been created"
        );
        p.destination = Some(Destination {
            id: "d1".into(),
            name: "kongctl-box-1".into(),
            endpoint: String::new(),
            log_format: None,
            skip_ssl_verification: None,
        });
        p.attach_sent = true;
        assert_eq!(
            Leftovers::of(&p).describe("eu"),
            "the eu audit-log webhook may still point at this listener's destination; \
             audit-log destination d1 may still exist"
        );
        let mut a = PortalState::found("p1".into(), "dev".into(), None);
        a.attach_sent = true;
        let b = PortalState::found("p2".into(), "docs".into(), Some("d0".into()));
        p.portals = vec![a.clone(), b.clone()];
        assert_eq!(
            Leftovers::of(&p).describe("eu"),
            "the audit-log webhook of Dev Portal dev (p1) may still point at this listener's \
             destination; the eu audit-log webhook may still point at this listener's destination; \
             audit-log destination d1 may still exist",
            "a portal whose attach was not sent is not left"
        );
        p.portals = vec![
            a.clone(),
            PortalState {
                attach_sent: true,
                ..b
            },
        ];
        assert!(
            Leftovers::of(&p)
                .describe("eu")
                .starts_with("the audit-log webhooks of Dev Portals dev (p1), docs (p2) may"),
        );
    }
}
