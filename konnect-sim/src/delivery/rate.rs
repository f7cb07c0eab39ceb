//! Steady rates: a background task per region that generates and delivers
//! events at a set number per second, catching up (up to a cap) when
//! deliveries are slower than the rate.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Deliveries, lock};
use crate::snapshot::DeliverySource;

/// Events a steady rate may owe at once (when deliveries are slower than
/// the rate, the backlog is capped here).
const MAX_RATE_BACKLOG: f64 = 10_000.0;

/// A region's running rate: its current value and its task.
pub(super) struct RateTask {
    pub rate: watch::Sender<f64>,
    pub task: JoinHandle<()>,
}

impl Deliveries {
    /// Generates events in `region` at `per_second` (0 stops), delivered
    /// like triggered ones; the rate is shown in snapshots. The caller checks
    /// that `per_second` is finite and not negative.
    pub fn set_rate(&self, region: &'static str, per_second: f64) {
        let mut rates = lock(&self.inner.rates);
        if per_second == 0.0 {
            if let Some(task) = rates.remove(region) {
                let _ = task.rate.send(0.0);
            }
            self.inner.state.lock().rates.remove(region);
            return;
        }
        self.inner.state.lock().rates.insert(region, per_second);
        if let Some(task) = rates.get(region)
            && !task.task.is_finished()
        {
            let _ = task.rate.send(per_second);
            return;
        }
        let (sender, receiver) = watch::channel(per_second);
        let cancel = self.work_token();
        let task = self
            .inner
            .runtime
            .spawn(self.clone().run_rate(region, receiver, cancel));
        rates.insert(region, RateTask { rate: sender, task });
    }

    async fn run_rate(
        self,
        region: &'static str,
        mut rate: watch::Receiver<f64>,
        cancel: CancellationToken,
    ) {
        let mut owed = 0.0f64;
        let mut last = Instant::now();
        loop {
            let per_second = *rate.borrow_and_update();
            if per_second <= 0.0 {
                return;
            }
            let tick = Duration::from_secs_f64((1.0 / per_second).clamp(0.01, 1.0));
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                changed = rate.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
                () = cancel.cancelled() => return,
            }
            // The sleep and a change to 0 can be ready together, and select
            // picks either: a rate set to 0 before this point emits nothing
            // more (callers wait for the last batch, then expect silence).
            if *rate.borrow() <= 0.0 {
                return;
            }
            let now = Instant::now();
            owed =
                (owed + per_second * now.duration_since(last).as_secs_f64()).min(MAX_RATE_BACKLOG);
            last = now;
            let count = owed.floor();
            if count >= 1.0 {
                owed -= count;
                self.emit(region, count as usize, DeliverySource::Rate)
                    .await;
            }
        }
    }
}
