//! What gap healing tells the user: the `replay` object of `listener.json`,
//! which `ps -o json|yaml` shows with the listener's counters. Its
//! top-level fields are the organisation's stream; each Dev Portal's stream
//! has the same fields in its entry of `portals`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::window::WindowText;
use crate::konnect::Stream;

/// Where healing stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// `--backfill off` (or `auto` without `--configure-webhook`).
    Off,
    /// Nothing to do: no gap seen, or the last replay is over.
    #[default]
    Idle,
    /// Reading the store for the window and the records it holds.
    Scanning,
    /// Konnect is running another replay job (409); trying again later.
    Waiting,
    /// Our job is accepted, pending or running at Konnect.
    Replaying,
}

/// The `replay` object of `listener.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayReport {
    pub state: Phase,
    /// `--backfill` as given (`auto`, `off`, a duration or a time).
    pub backfill: String,
    /// What started the current or last replay: `startup`, `sleep` (the
    /// wall clock jumped: the machine slept) or `webhook_status` (Konnect
    /// reported a failed delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// The current or last replay job's window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowText>,
    /// Konnect's status of that job (`accepted`, `pending`, `running`,
    /// `completed`, `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_status: Option<String>,
    #[serde(default)]
    pub jobs_completed: u64,
    #[serde(default)]
    pub jobs_failed: u64,
    /// Replayed records dropped because they were already stored.
    #[serde(default)]
    pub duplicates_dropped: u64,
    /// Events in this window may be missing: a replay of it failed and none
    /// has covered it since. The next replay includes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_window: Option<WindowText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Konnect's delivery status of the region's webhook, as the status
    /// monitor (`triggers`) last read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookDelivery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Each Dev Portal's stream (`--portal`), in the listener's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub portals: Vec<PortalReplay>,
}

/// One stream's healing: the organisation's fields of [`ReplayReport`], or
/// a Dev Portal's entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStatus {
    pub state: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_status: Option<String>,
    #[serde(default)]
    pub jobs_completed: u64,
    #[serde(default)]
    pub jobs_failed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_window: Option<WindowText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A Dev Portal's stream in the `replay` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalReplay {
    pub portal_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub portal_name: String,
    #[serde(flatten)]
    pub status: StreamStatus,
}

impl ReplayReport {
    /// The status of `stream` (a portal not in the report: the default).
    pub fn stream(&self, stream: &Stream) -> StreamStatus {
        match stream {
            Stream::Org => StreamStatus {
                state: self.state,
                trigger: self.trigger.clone(),
                window: self.window.clone(),
                job_status: self.job_status.clone(),
                jobs_completed: self.jobs_completed,
                jobs_failed: self.jobs_failed,
                missing_window: self.missing_window.clone(),
                last_error: self.last_error.clone(),
            },
            Stream::Portal(id) => self
                .portals
                .iter()
                .find(|p| p.portal_id == *id)
                .map(|p| p.status.clone())
                .unwrap_or_default(),
        }
    }

    /// Changes the status of `stream` (a portal not in the report gets an
    /// entry).
    pub fn change_stream(&mut self, stream: &Stream, change: impl FnOnce(&mut StreamStatus)) {
        match stream {
            Stream::Org => {
                let mut s = self.stream(stream);
                change(&mut s);
                self.state = s.state;
                self.trigger = s.trigger;
                self.window = s.window;
                self.job_status = s.job_status;
                self.jobs_completed = s.jobs_completed;
                self.jobs_failed = s.jobs_failed;
                self.missing_window = s.missing_window;
                self.last_error = s.last_error;
            }
            Stream::Portal(id) => {
                let i = match self.portals.iter().position(|p| p.portal_id == *id) {
                    Some(i) => i,
                    None => {
                        self.portals.push(PortalReplay {
                            portal_id: id.clone(),
                            ..PortalReplay::default()
                        });
                        self.portals.len() - 1
                    }
                };
                change(&mut self.portals[i].status);
            }
        }
    }
}

/// The webhook's last delivery attempt as Konnect reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// When Konnect last tried to deliver (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    /// Whether that attempt failed (an error answer, or the webhook marked
    /// inactive).
    pub last_attempt_failed: bool,
    /// The answer Konnect got, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_response_code: Option<u16>,
}

/// The report shared between the healer and the state file writer, with a
/// version that moves on every change (so the writer knows when to write).
#[derive(Clone, Default)]
pub struct SharedReport {
    inner: Arc<(Mutex<ReplayReport>, AtomicU64)>,
}

impl SharedReport {
    pub fn new(report: ReplayReport) -> SharedReport {
        SharedReport {
            inner: Arc::new((Mutex::new(report), AtomicU64::new(1))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ReplayReport> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the report as it is now.
    pub fn get(&self) -> ReplayReport {
        self.lock().clone()
    }

    /// Changes the report (stamping `updated_at`).
    pub fn update(&self, change: impl FnOnce(&mut ReplayReport)) {
        let mut report = self.lock();
        change(&mut report);
        report.updated_at = Some(crate::time::now_rfc3339());
        self.inner.1.fetch_add(1, Ordering::SeqCst);
    }

    /// Changes one stream's status (stamping `updated_at`).
    pub fn update_stream(&self, stream: &Stream, change: impl FnOnce(&mut StreamStatus)) {
        self.update(|r| r.change_stream(stream, change));
    }

    /// Moves on every [`SharedReport::update`].
    pub fn version(&self) -> u64 {
        self.inner.1.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_only_what_is_known() {
        let report = ReplayReport {
            backfill: "auto".into(),
            ..ReplayReport::default()
        };
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            serde_json::json!({"state": "idle", "backfill": "auto", "jobs_completed": 0,
                               "jobs_failed": 0, "duplicates_dropped": 0})
        );
        let shared = SharedReport::new(report);
        let before = shared.version();
        shared.update(|r| r.state = Phase::Waiting);
        assert!(shared.version() > before);
        assert_eq!(shared.get().state, Phase::Waiting);
        assert!(shared.get().updated_at.is_some());
    }

    #[test]
    fn each_portal_has_its_own_entry_beside_the_organisations_fields() {
        let shared = SharedReport::new(ReplayReport {
            backfill: "auto".into(),
            ..ReplayReport::default()
        });
        let p = Stream::Portal("p1".into());
        shared.update_stream(&p, |s| {
            s.state = Phase::Replaying;
            s.jobs_completed = 2;
        });
        shared.update_stream(&Stream::Org, |s| s.jobs_failed = 1);
        let r = shared.get();
        assert_eq!((r.jobs_failed, r.jobs_completed), (1, 0));
        assert_eq!(r.stream(&p).jobs_completed, 2);
        assert_eq!(
            r.stream(&Stream::Portal("other".into())),
            StreamStatus::default()
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["portals"],
            serde_json::json!([{"portal_id": "p1", "state": "replaying", "jobs_completed": 2,
                                "jobs_failed": 0}])
        );
        let back: ReplayReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }
}
