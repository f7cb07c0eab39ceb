//! Replay jobs: once the API has accepted a job (`api/replay.rs`, for a
//! region's or a portal's), it waits `pending` for the stream's delivery
//! lane (and while tests hold replay jobs), then goes `running` while the
//! stream's stored events of the job's range are re-delivered to the
//! stream's current webhook, and ends `completed` (every batch delivered)
//! or `failed` (a batch was not delivered, or a test asked for the failure
//! with `Sim::fail_replay_jobs` / `Sim::fail_portal_replay_jobs`).

use std::time::Duration;

use super::Deliveries;
use crate::records::Event;
use crate::snapshot::DeliverySource;
use crate::state::{ReplayStatus, State, Stream};
use crate::time::{self, Millis};

/// How often a held job looks whether it may go on.
const HOLD_POLL: Duration = Duration::from_millis(5);

impl Deliveries {
    /// Runs an accepted replay job of `[start, end]` in the background, on
    /// the stream's lane. Nothing is recorded if the state was reset since
    /// `epoch`.
    pub fn spawn_replay(&self, stream: Stream, start: Millis, end: Millis, epoch: u64) {
        let deliveries = self.clone();
        let cancel = self.work_token();
        self.inner.runtime.spawn(async move {
            {
                let mut state = deliveries.inner.state.lock();
                if state.epoch != epoch {
                    return;
                }
                set_replay_status(&mut state, stream, ReplayStatus::Pending);
            }
            while deliveries.inner.state.lock().replay_control.hold {
                tokio::select! {
                    () = tokio::time::sleep(HOLD_POLL) => {}
                    () = cancel.cancelled() => return,
                }
            }
            let lane = deliveries.lane(stream);
            let _lane = lane.lock().await;
            let (events, forced_failure): (Vec<Event>, bool) = {
                let mut state = deliveries.inner.state.lock();
                if state.epoch != epoch {
                    return;
                }
                set_replay_status(&mut state, stream, ReplayStatus::Running);
                let forced_failure = state.replay_control.take_failure(stream);
                let events = state
                    .events
                    .iter()
                    .filter(|e| {
                        e.region == stream.region()
                            && e.portal == stream.portal()
                            && e.ts >= start
                            && e.ts <= end
                    })
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
                    .deliver_events(stream, DeliverySource::Replay, &events, epoch, &cancel)
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
                set_replay_status(&mut state, stream, status);
                tracing::info!(
                    region = stream.region(),
                    portal = stream.portal().map(|id| id.to_string()),
                    events = events.len(),
                    forced_failure,
                    status = status.as_str(),
                    "replay job finished"
                );
            }
        });
    }
}

fn set_replay_status(state: &mut State, stream: Stream, status: ReplayStatus) {
    if let Some(job) = state.replay_job_mut(stream) {
        job.status = status;
        job.updated_at = Some(time::now());
    }
}
