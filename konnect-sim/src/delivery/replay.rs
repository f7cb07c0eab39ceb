//! Replay jobs: once the API has accepted a job (`api/replay.rs`), it waits
//! `pending` for the region's delivery lane (and while tests hold replay
//! jobs), then goes `running` while the region's stored events of the job's
//! range are re-delivered to the current webhook, and ends `completed`
//! (every batch delivered) or `failed` (a batch was not delivered, or a test
//! asked for the failure with `Sim::fail_replay_jobs`).

use std::time::Duration;

use super::Deliveries;
use crate::records::Event;
use crate::snapshot::DeliverySource;
use crate::state::{ReplayStatus, State};
use crate::time::{self, Millis};

/// How often a held job looks whether it may go on.
const HOLD_POLL: Duration = Duration::from_millis(5);

impl Deliveries {
    /// Runs an accepted replay job of `[start, end]` in the background, on
    /// the region's lane. Nothing is recorded if the state was reset since
    /// `epoch`.
    pub fn spawn_replay(&self, region: &'static str, start: Millis, end: Millis, epoch: u64) {
        let deliveries = self.clone();
        let cancel = self.work_token();
        self.inner.runtime.spawn(async move {
            {
                let mut state = deliveries.inner.state.lock();
                if state.epoch != epoch {
                    return;
                }
                set_replay_status(&mut state, region, ReplayStatus::Pending);
            }
            while deliveries.inner.state.lock().replay_control.hold {
                tokio::select! {
                    () = tokio::time::sleep(HOLD_POLL) => {}
                    () = cancel.cancelled() => return,
                }
            }
            let _lane = deliveries.inner.lanes[region].lock().await;
            let (events, forced_failure): (Vec<Event>, bool) = {
                let mut state = deliveries.inner.state.lock();
                if state.epoch != epoch {
                    return;
                }
                set_replay_status(&mut state, region, ReplayStatus::Running);
                let control = &mut state.replay_control;
                let forced_failure = control.fail_next > 0;
                control.fail_next = control.fail_next.saturating_sub(1);
                let events = state
                    .events
                    .iter()
                    .filter(|e| e.region == region && e.ts >= start && e.ts <= end)
                    .cloned()
                    .collect();
                (events, forced_failure)
            };
            let ok = if forced_failure {
                false
            } else if events.is_empty() {
                true
            } else {
                let (batches, not_delivered) = deliveries
                    .deliver_events(region, DeliverySource::Replay, &events, epoch, &cancel)
                    .await;
                not_delivered.is_none() && batches.iter().all(|d| d.delivered)
            };
            let mut state = deliveries.inner.state.lock();
            if state.epoch == epoch {
                let status = if ok {
                    ReplayStatus::Completed
                } else {
                    ReplayStatus::Failed
                };
                set_replay_status(&mut state, region, status);
                tracing::info!(
                    region,
                    events = events.len(),
                    forced_failure,
                    status = status.as_str(),
                    "replay job finished"
                );
            }
        });
    }
}

fn set_replay_status(state: &mut State, region: &str, status: ReplayStatus) {
    if let Some(job) = state.replay_jobs.get_mut(region) {
        job.status = status;
        job.updated_at = Some(time::now());
    }
}
