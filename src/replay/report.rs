//! What gap healing tells the user: the `replay` object of `listener.json`,
//! which `ps -o json|yaml` shows with the listener's counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::window::WindowText;

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
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
}
