//! Undoing what a listener did in Konnect: release the regional webhook and
//! delete the destination.
//!
//! The same code runs after a normal stop, when startup fails half-way, when
//! startup is interrupted, and when the next start of a profile finds that
//! an earlier listener died before it could clean up (reclaim).

use std::sync::{Arc, Mutex};
use std::time::Instant;

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
}

pub type SharedProgress = Arc<Mutex<Progress>>;

/// What cleanup achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupReport {
    pub webhook_released: bool,
    /// Ids of destinations deleted (or found already gone).
    pub destinations_removed: Vec<String>,
}

/// Why cleanup could not finish, and what is left.
#[derive(Debug)]
pub struct CleanupError {
    pub step: &'static str,
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
    pub webhook: bool,
    pub destination_id: Option<String>,
    pub destination_name: Option<String>,
}

impl Leftovers {
    pub fn of(p: &Progress) -> Leftovers {
        Leftovers {
            webhook: p.attach_sent,
            destination_id: p.destination.as_ref().map(|d| d.id.clone()),
            destination_name: if p.create_sent { p.name.clone() } else { None },
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.webhook && self.destination_id.is_none() && self.destination_name.is_none()
    }

    /// A sentence for users: what may be left and how to get rid of it.
    pub fn describe(&self, region: &str) -> String {
        let mut parts = Vec::new();
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

/// Releases the webhook (if startup attached or tried to attach it) and
/// deletes the destination, before `deadline`. `left` says, at every
/// moment, what may still exist: if the caller abandons the release (a
/// second Ctrl+C), it reports that.
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
        destinations_removed: Vec::new(),
    };
    *lock(left) = Leftovers::of(progress);
    let fail = |step, source| CleanupError {
        step,
        source,
        left: lock(left).clone(),
    };

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
                    step: "delete audit-log destination",
                    source: e,
                    left: lock(left).clone(),
                });
            }
        }
    }
    Ok(())
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
    }
}
