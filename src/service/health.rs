//! Where the listener is in its life, and whether it is ready: the answer
//! of `/readyz`, the `kongctl_audit_ready` gauge and the `READY=1` of
//! systemd all come from here.
//!
//! Ready means: serving, with the region's webhook pointed at this
//! listener's destination (startup attached it before serving began, or
//! `--configure-webhook=false` asked not to), the last attempt to store a
//! batch worked, and Konnect's webhook status (read by gap healing's
//! monitor, `crate::replay`) shows no failed delivery newer than the newest
//! stored record. Anything else is a one-line reason.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;

use super::Snapshots;
use crate::listen::state::ListenerState;

/// The listener's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Binding, checking the tunnel, configuring Konnect.
    Starting = 0,
    /// Serving, with Konnect configured.
    Serving = 1,
    /// Shutdown has begun: draining, then removing what startup created.
    Draining = 2,
}

/// The phase, and the listener's counters once it serves.
#[derive(Default)]
pub struct Health {
    phase: AtomicU8,
    snapshots: OnceLock<Arc<dyn Snapshots>>,
}

impl Health {
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Starting,
            1 => Phase::Serving,
            _ => Phase::Draining,
        }
    }

    /// Serving begins (never after draining began).
    pub fn serving(&self, snapshots: Arc<dyn Snapshots>) {
        let _ = self.snapshots.set(snapshots);
        let _ = self.phase.compare_exchange(
            Phase::Starting as u8,
            Phase::Serving as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// Draining begins; `true` the first time.
    pub fn draining(&self) -> bool {
        self.phase.swap(Phase::Draining as u8, Ordering::SeqCst) != Phase::Draining as u8
    }

    /// The counters now, once serving began.
    pub fn snapshot(&self) -> Option<ListenerState> {
        self.snapshots.get().map(|s| s.snapshot())
    }

    /// `Ok` when ready; else why not, in one line.
    pub fn readiness(&self, state: Option<&ListenerState>) -> Result<(), String> {
        match self.phase() {
            Phase::Starting => return Err("starting: Konnect is not configured yet".into()),
            Phase::Draining => {
                return Err("draining: the listener is stopping".into());
            }
            Phase::Serving => {}
        }
        match state {
            Some(state) => ready_when_serving(state),
            None => Err("starting: the listener's counters are not available yet".into()),
        }
    }
}

/// Readiness of a serving listener, from its counters.
pub fn ready_when_serving(state: &ListenerState) -> Result<(), String> {
    if state.ingest.as_ref().is_some_and(|i| i.store_failing) {
        return Err(format!(
            "the last write to the store failed (see the log; {})",
            state.events_file
        ));
    }
    let delivery = state.replay.as_ref().and_then(|r| r.webhook.as_ref());
    if let Some(d) = delivery.filter(|d| d.last_attempt_failed) {
        let at = d.last_attempt_at.as_deref().and_then(parse);
        let newest = newest_stored(state);
        if let Some(at) = at
            && newest.is_none_or(|n| n < at)
        {
            let code = d
                .last_response_code
                .map(|c| format!(" (answer {c})"))
                .unwrap_or_default();
            return Err(format!(
                "Konnect reports a failed delivery at {at:.0}{code}, newer than the newest stored record"
            ));
        }
    }
    Ok(())
}

/// The newest of the newest stored record's own time and the time the
/// last batch was stored.
fn newest_stored(state: &ListenerState) -> Option<Timestamp> {
    let record = state.store.as_ref().and_then(|s| s.newest_event_at);
    let received = state.last_event_at.as_deref().and_then(parse);
    record.max(received)
}

fn parse(text: &str) -> Option<Timestamp> {
    text.parse().ok()
}

/// systemd's `STATUS=` while serving: the counts at a glance.
pub fn status_line(state: &ListenerState) -> String {
    let mut line = format!(
        "serving: {} records stored in {} batches",
        state.records_received, state.requests_received
    );
    if let Some(i) = &state.ingest {
        let refused: u64 = i
            .requests
            .iter()
            .filter(|(code, _)| code.as_str() != "202")
            .map(|(_, n)| n)
            .sum();
        if refused > 0 {
            line.push_str(&format!(", {refused} requests refused"));
        }
    }
    if let Some(at) = &state.last_event_at {
        line.push_str(&format!(", last at {at}"));
    }
    if let Err(why) = ready_when_serving(state) {
        line.push_str(&format!("; not ready: {why}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::{ReplayReport, WebhookDelivery};

    fn state() -> ListenerState {
        serde_json::from_value(serde_json::json!({
            "started_at": "2026-01-01T00:00:00Z", "profile": "default",
            "listen_address": "127.0.0.1:1", "listen_path": "/a",
            "local_endpoint": "http://127.0.0.1:1/a", "events_file": "/e/events.jsonl",
            "records_received": 5, "requests_received": 2,
            "last_event_at": "2026-01-01T10:00:00Z"
        }))
        .unwrap()
    }

    struct Fixed(ListenerState);
    impl Snapshots for Fixed {
        fn snapshot(&self) -> ListenerState {
            self.0.clone()
        }
    }

    #[test]
    fn ready_only_while_serving() {
        let h = Health::default();
        let s = state();
        assert!(h.readiness(Some(&s)).unwrap_err().starts_with("starting"));
        h.serving(Arc::new(Fixed(s.clone())));
        assert_eq!(h.readiness(h.snapshot().as_ref()), Ok(()));
        assert!(h.draining());
        assert!(!h.draining(), "once");
        assert!(h.readiness(Some(&s)).unwrap_err().starts_with("draining"));
        h.serving(Arc::new(Fixed(s.clone())));
        assert_eq!(h.phase(), Phase::Draining, "draining is final");
    }

    #[test]
    fn a_failed_store_write_or_a_newer_failed_delivery_is_not_ready() {
        let mut s = state();
        s.ingest = Some(crate::listener::IngestCounts {
            store_failing: true,
            ..Default::default()
        });
        assert!(ready_when_serving(&s).unwrap_err().contains("store failed"));
        s.ingest = None;

        let failed = |at: &str| ReplayReport {
            webhook: Some(WebhookDelivery {
                last_attempt_at: Some(at.into()),
                last_attempt_failed: true,
                last_response_code: Some(503),
            }),
            ..ReplayReport::default()
        };
        s.replay = Some(failed("2026-01-01T09:00:00Z"));
        assert_eq!(ready_when_serving(&s), Ok(()), "older than the last record");
        s.replay = Some(failed("2026-01-01T11:00:00Z"));
        let why = ready_when_serving(&s).unwrap_err();
        assert!(
            why.contains("failed delivery at 2026-01-01T11:00:00Z (answer 503)"),
            "{why}"
        );
        assert!(status_line(&s).contains("not ready"), "{}", status_line(&s));
        s.last_event_at = None;
        s.replay = Some(failed("2026-01-01T09:00:00Z"));
        assert!(ready_when_serving(&s).is_err(), "nothing stored at all");
    }

    #[test]
    fn status_lines_count() {
        let mut s = state();
        assert_eq!(
            status_line(&s),
            "serving: 5 records stored in 2 batches, last at 2026-01-01T10:00:00Z"
        );
        let mut ingest = crate::listener::IngestCounts::default();
        ingest.requests.insert("202".into(), 2);
        ingest.requests.insert("401".into(), 3);
        s.ingest = Some(ingest);
        assert!(status_line(&s).contains(", 3 requests refused"));
    }
}
