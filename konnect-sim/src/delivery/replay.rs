//! Replay jobs: once the API has accepted a job (`api/replay.rs`), the
//! region's stored events of the job's range are re-delivered to the current
//! webhook, and the job goes `running`, then `completed` (every batch
//! delivered) or `failed`.

use super::Deliveries;
use crate::records::Event;
use crate::snapshot::DeliverySource;
use crate::state::{ReplayStatus, State};
use crate::time::{self, Millis};

impl Deliveries {
    /// Runs an accepted replay job of `[start, end]` in the background, on
    /// the region's lane. Nothing is recorded if the state was reset since
    /// `epoch`.
    pub fn spawn_replay(&self, region: &'static str, start: Millis, end: Millis, epoch: u64) {
        let deliveries = self.clone();
        let cancel = self.work_token();
        self.inner.runtime.spawn(async move {
            let _lane = deliveries.inner.lanes[region].lock().await;
            let events: Vec<Event> = {
                let mut state = deliveries.inner.state.lock();
                if state.epoch != epoch {
                    return;
                }
                set_replay_status(&mut state, region, ReplayStatus::Running);
                state
                    .events
                    .iter()
                    .filter(|e| e.region == region && e.ts >= start && e.ts <= end)
                    .cloned()
                    .collect()
            };
            let ok = if events.is_empty() {
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
