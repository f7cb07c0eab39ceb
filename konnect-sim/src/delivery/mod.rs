//! Webhook delivery work: each stream's delivery lane (a region's
//! organisation events, or one Dev Portal's), the cancellation token of the
//! current epoch, and the three sources of batches: triggers
//! ([`Deliveries::emit`]), steady rates (`rate.rs`) and replay jobs
//! (`replay.rs`). One batch's POST and retries are in `batch.rs`.
//!
//! Deliveries of one stream never overlap: every source takes turns on the
//! stream's lane, so batches arrive in the order they were made. Streams
//! are independent of each other (a portal's webhook sends while the
//! region's does), as Konnect's webhooks are. A reset cancels the epoch's
//! work (retry waits, rates, replays) and starts a new epoch; the state
//! ignores late reports from the old one.

mod batch;
mod rate;
mod replay;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::config::SimConfig;
use crate::records::Event;
use crate::snapshot::{Delivery, DeliverySource, TriggerReport};
use crate::state::{SharedState, Stream};

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
    /// One lock per stream, held while a batch of that stream is
    /// delivered; made on first use.
    lanes: Mutex<HashMap<Stream, Arc<tokio::sync::Mutex<()>>>>,
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
                lanes: Mutex::new(HashMap::new()),
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

    /// The delivery lane of a stream.
    fn lane(&self, stream: Stream) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.inner.lanes).entry(stream).or_default().clone()
    }

    /// Generates, stores and (if the webhook is enabled) delivers `count`
    /// organisation events of `region` on the region's lane.
    pub async fn emit(
        &self,
        region: &'static str,
        count: usize,
        source: DeliverySource,
    ) -> TriggerReport {
        self.emit_stream(Stream::Org(region), count, source).await
    }

    /// Generates, stores and (if the stream's webhook is enabled) delivers
    /// `count` events of the stream on its lane: organisation events, or a
    /// portal's developer logins (whose `principal_id` is one of the
    /// portal's developers, if it has any). A portal that is gone
    /// generates nothing.
    pub async fn emit_stream(
        &self,
        stream: Stream,
        count: usize,
        source: DeliverySource,
    ) -> TriggerReport {
        let cancel = self.work_token();
        let lane = self.lane(stream);
        let _lane = lane.lock().await;
        let region = stream.region();
        let made = {
            let mut state = self.inner.state.lock();
            let now = state.now();
            let developers: Option<Vec<String>> = match stream {
                Stream::Org(_) => Some(Vec::new()),
                Stream::Portal(_, id) => state
                    .portal(id)
                    .map(|p| p.developers.iter().map(|d| d.id.clone()).collect()),
            };
            developers.map(|developers| {
                let events: Vec<Event> = (0..count)
                    .map(|_| {
                        let mut event = match stream {
                            Stream::Org(_) => state.generator.event(region, now),
                            Stream::Portal(_, id) => {
                                state.generator.portal_event(region, now, id, &developers)
                            }
                        };
                        event.seal = state.signing.seal_next();
                        event
                    })
                    .collect();
                state.store_events(&events);
                (state.epoch, events)
            })
        };
        let portal_id = stream.portal().map(|id| id.to_string());
        let Some((epoch, events)) = made else {
            return TriggerReport {
                region: region.to_string(),
                portal_id,
                generated: 0,
                deliveries: Vec::new(),
                not_delivered: Some(format!("{} is gone", stream.describe())),
            };
        };
        let (deliveries, not_delivered) = self
            .deliver_events(stream, source, &events, epoch, &cancel)
            .await;
        TriggerReport {
            region: region.to_string(),
            portal_id,
            generated: count,
            deliveries,
            not_delivered,
        }
    }

    /// Delivers events batch by batch to the stream's current target
    /// (looked up again before each batch). Stops at the first batch that
    /// cannot be sent; the reason is returned.
    async fn deliver_events(
        &self,
        stream: Stream,
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
            let Some(target) = self.inner.state.lock().delivery_target(stream) else {
                let webhook = stream.describe();
                let reason = if index == 0 {
                    format!(
                        "{webhook} is not enabled with an endpoint; events were stored but not delivered"
                    )
                } else {
                    format!(
                        "{webhook} was disabled after {index} of {} batches",
                        batches.len()
                    )
                };
                return (deliveries, Some(reason));
            };
            let records = batch.iter().map(|e| e.render(target.log_format)).collect();
            let delivery = self
                .deliver_batch(stream, source, &target, records, epoch, cancel)
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
