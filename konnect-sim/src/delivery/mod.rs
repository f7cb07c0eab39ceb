//! Webhook delivery work: each region's delivery lane, the cancellation
//! token of the current epoch, and the three sources of batches: triggers
//! ([`Deliveries::emit`]), steady rates (`rate.rs`) and replay jobs
//! (`replay.rs`). One batch's POST and retries are in `batch.rs`.
//!
//! Deliveries of one region never overlap: every source takes turns on the
//! region's lane, so batches arrive in the order they were made. A reset
//! cancels the epoch's work (retry waits, rates, replays) and starts a new
//! epoch; the state ignores late reports from the old one.

mod batch;
mod rate;
mod replay;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::config::{REGIONS, SimConfig};
use crate::records::Event;
use crate::snapshot::{Delivery, DeliverySource, TriggerReport};
use crate::state::SharedState;

/// The handle that runs deliveries. Cheap to clone; clones share the lanes.
#[derive(Clone)]
pub(crate) struct Deliveries {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<SharedState>,
    config: Arc<SimConfig>,
    /// The runtime the emulator started on: background work is spawned
    /// there, so the sync control calls work from any thread.
    runtime: Handle,
    /// One lock per region, held while a batch of that region is delivered.
    lanes: BTreeMap<&'static str, tokio::sync::Mutex<()>>,
    /// Cancelled by reset (then replaced) and by shutdown: stops background
    /// work (rates, replays, retry waits) of the current epoch.
    work: Mutex<CancellationToken>,
    /// Cancelled once, at shutdown; `work` is its child.
    shutdown: CancellationToken,
    rates: Mutex<BTreeMap<&'static str, rate::RateTask>>,
}

impl Deliveries {
    /// Deliveries on the current runtime, stopped for good by `shutdown`.
    pub fn new(
        state: Arc<SharedState>,
        config: Arc<SimConfig>,
        shutdown: CancellationToken,
    ) -> Deliveries {
        Deliveries {
            inner: Arc::new(Inner {
                state,
                config,
                runtime: Handle::current(),
                lanes: REGIONS
                    .iter()
                    .map(|r| (*r, tokio::sync::Mutex::new(())))
                    .collect(),
                work: Mutex::new(shutdown.child_token()),
                shutdown,
                rates: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Stops the work of the current epoch (retry waits, rates, replays) and
    /// starts a new one; for a reset of the state.
    pub fn restart(&self) {
        let mut work = lock(&self.inner.work);
        work.cancel();
        *work = self.inner.shutdown.child_token();
        drop(work);
        for (_, task) in std::mem::take(&mut *lock(&self.inner.rates)) {
            let _ = task.rate.send(0.0);
            task.task.abort();
        }
    }

    /// Stops every background delivery, for good (the shutdown token is
    /// cancelled by the caller).
    pub fn stop(&self) {
        lock(&self.inner.work).cancel();
        for (_, task) in std::mem::take(&mut *lock(&self.inner.rates)) {
            task.task.abort();
        }
    }

    fn work_token(&self) -> CancellationToken {
        let mut work = lock(&self.inner.work);
        if work.is_cancelled() && !self.inner.shutdown.is_cancelled() {
            *work = self.inner.shutdown.child_token();
        }
        work.clone()
    }

    /// Generates, stores and (if the webhook is enabled) delivers `count`
    /// events on the region's lane.
    pub async fn emit(
        &self,
        region: &'static str,
        count: usize,
        source: DeliverySource,
    ) -> TriggerReport {
        let cancel = self.work_token();
        let _lane = self.inner.lanes[region].lock().await;
        let (epoch, events) = {
            let mut state = self.inner.state.lock();
            let now = state.now();
            let events: Vec<Event> = (0..count)
                .map(|_| {
                    let mut event = state.generator.event(region, now);
                    event.seal = state.signing.seal_next();
                    event
                })
                .collect();
            state.store_events(&events);
            (state.epoch, events)
        };
        let (deliveries, not_delivered) = self
            .deliver_events(region, source, &events, epoch, &cancel)
            .await;
        TriggerReport {
            region: region.to_string(),
            generated: count,
            deliveries,
            not_delivered,
        }
    }

    /// Delivers events batch by batch to the region's current target
    /// (looked up again before each batch). Stops at the first batch that
    /// cannot be sent; the reason is returned.
    async fn deliver_events(
        &self,
        region: &'static str,
        source: DeliverySource,
        events: &[Event],
        epoch: u64,
        cancel: &CancellationToken,
    ) -> (Vec<Delivery>, Option<String>) {
        let mut deliveries = Vec::new();
        let batches: Vec<&[Event]> = events.chunks(self.inner.config.batch_size).collect();
        for (index, batch) in batches.iter().enumerate() {
            if cancel.is_cancelled() {
                return (deliveries, Some("stopped by reset or shutdown".to_string()));
            }
            let Some(target) = self.inner.state.lock().delivery_target(region) else {
                let reason = if index == 0 {
                    format!(
                        "the {region} webhook is not enabled with an endpoint; events were stored but not delivered"
                    )
                } else {
                    format!(
                        "the {region} webhook was disabled after {index} of {} batches",
                        batches.len()
                    )
                };
                return (deliveries, Some(reason));
            };
            let records = batch.iter().map(|e| e.render(target.log_format)).collect();
            let delivery = self
                .deliver_batch(region, source, &target, records, epoch, cancel)
                .await;
            deliveries.push(delivery);
        }
        (deliveries, None)
    }
}

/// Locks one of the handle's own mutexes, ignoring poisoning as
/// [`SharedState::lock`] does.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
