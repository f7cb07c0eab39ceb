//! The emulator handle: starting and stopping the server, and the control
//! calls tests make (trigger events, steady rates, tunnels, faults, reset,
//! snapshots). Replay jobs accepted by the API run here too.
//!
//! Deliveries of one region never overlap: triggers, the steady rate and
//! replay jobs take turns on the region's delivery lane, so batches arrive in
//! the order they were made.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{REGIONS, SimConfig, known_region};
use crate::delivery::deliver_batch;
use crate::fault::{Fault, PendingFault};
use crate::records::Event;
use crate::server;
use crate::snapshot::{DeliverySource, Snapshot, TriggerReport};
use crate::state::{ReplayStatus, State};
use crate::time::{self, Millis};

/// Events a steady rate may owe at once (when deliveries are slower than
/// the rate, the backlog is capped here).
const MAX_RATE_BACKLOG: f64 = 10_000.0;

/// A running emulator. Cheap to clone; every clone controls the same one.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    /// The runtime `start` ran on: background work is spawned there, so the
    /// sync control calls work from any thread.
    runtime: tokio::runtime::Handle,
    config: SimConfig,
    state: Mutex<State>,
    /// One lock per region, held while a batch of that region is delivered.
    lanes: BTreeMap<&'static str, tokio::sync::Mutex<()>>,
    /// Cancelled by reset (then replaced) and by shutdown: stops background
    /// work (rates, replays, retry waits) of the current epoch.
    work: Mutex<CancellationToken>,
    rates: Mutex<BTreeMap<&'static str, RateTask>>,
    shutdown: CancellationToken,
    server: Mutex<Option<JoinHandle<()>>>,
}

struct RateTask {
    rate: watch::Sender<f64>,
    task: JoinHandle<()>,
}

impl Sim {
    /// Binds `addr` (port 0 picks a free port) and starts serving.
    ///
    /// # Panics
    /// If `config.batch_size` is 0.
    pub async fn start(addr: SocketAddr, config: SimConfig) -> std::io::Result<Sim> {
        assert!(
            config.batch_size >= 1,
            "SimConfig::batch_size must be at least 1"
        );
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = State::new(&config);
        let shutdown = CancellationToken::new();
        let sim = Sim {
            inner: Arc::new(Inner {
                addr,
                runtime: tokio::runtime::Handle::current(),
                config,
                state: Mutex::new(state),
                lanes: REGIONS
                    .iter()
                    .map(|r| (*r, tokio::sync::Mutex::new(())))
                    .collect(),
                work: Mutex::new(shutdown.child_token()),
                rates: Mutex::new(BTreeMap::new()),
                shutdown,
                server: Mutex::new(None),
            }),
        };
        let task = sim.inner.runtime.spawn(server::serve(
            sim.clone(),
            listener,
            sim.inner.shutdown.clone(),
        ));
        *lock(&sim.inner.server) = Some(task);
        tracing::info!(%addr, "konnect-sim listening");
        Ok(sim)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT`: what replaces both Konnect hosts
    /// (`--base-url`). An unspecified bind address (`0.0.0.0`, `::`) is
    /// reported as loopback.
    pub fn base_url(&self) -> String {
        let addr = self.inner.addr;
        match addr {
            SocketAddr::V4(v4) if v4.ip().is_unspecified() => {
                format!("http://127.0.0.1:{}", v4.port())
            }
            SocketAddr::V6(v6) if v6.ip().is_unspecified() => format!("http://[::1]:{}", v6.port()),
            _ => format!("http://{addr}"),
        }
    }

    /// The first configured PAT (empty if none is configured).
    pub fn pat(&self) -> String {
        self.inner.config.pats.first().cloned().unwrap_or_default()
    }

    /// Stands in for a completed `kongctl login`: a fresh access token,
    /// valid for `ttl` (zero: already expired), and a refresh token for
    /// `POST /kauth/api/v1/refresh`, whose tokens last
    /// [`SimConfig::login_ttl`](crate::SimConfig::login_ttl).
    pub fn issue_login(&self, ttl: Duration) -> crate::LoginGrant {
        let mut state = self.state();
        let state = &mut *state;
        let generator = &mut state.generator;
        state.logins.issue(|| generator.bytes(32), ttl)
    }

    /// How many login refreshes succeeded.
    pub fn login_refreshes(&self) -> u64 {
        self.state().logins.refreshed
    }

    /// A copy of the whole state.
    pub fn snapshot(&self) -> Snapshot {
        self.state().snapshot()
    }

    /// Polls the state until `done` holds or `timeout` passes; `Err` carries
    /// the last snapshot.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Snapshot) -> bool,
    ) -> Result<Snapshot, Box<Snapshot>> {
        let deadline = Instant::now() + timeout;
        loop {
            let snapshot = self.snapshot();
            if done(&snapshot) {
                return Ok(snapshot);
            }
            if Instant::now() >= deadline {
                return Err(Box::new(snapshot));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Generates `count` events in `region` now and, if the region's webhook
    /// is enabled, delivers them in batches of `batch_size`, one batch after
    /// the other. Returns when every batch is finished (retries included).
    /// Without an enabled webhook the events are only stored.
    ///
    /// # Panics
    /// If `region` is not one of `us`, `eu`, `au`, `me`, `in`, `sg`.
    pub async fn trigger(&self, region: &str, count: usize) -> TriggerReport {
        let region = expect_region(region);
        self.emit(region, count, DeliverySource::Trigger).await
    }

    /// Generates events in `region` at a steady `per_second` rate (0 stops),
    /// delivered like [`Sim::trigger`]'s.
    ///
    /// # Panics
    /// If `region` is unknown or `per_second` is negative or not finite.
    pub fn set_rate(&self, region: &str, per_second: f64) {
        let region = expect_region(region);
        assert!(
            per_second.is_finite() && per_second >= 0.0,
            "rate must be a finite number of events per second >= 0, not {per_second}"
        );
        let mut rates = lock(&self.inner.rates);
        if per_second == 0.0 {
            if let Some(task) = rates.remove(region) {
                let _ = task.rate.send(0.0);
            }
            self.state().rates.remove(region);
            return;
        }
        self.state().rates.insert(region, per_second);
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

    /// Routes deliveries to `host` (an endpoint's host name, any port) to
    /// `target` over plain HTTP, keeping the endpoint's path and query and
    /// sending `Host: <host>`.
    pub fn add_tunnel(&self, host: &str, target: SocketAddr) {
        self.state()
            .tunnels
            .insert(host.to_ascii_lowercase(), target);
    }

    /// Removes a tunnel; true if there was one.
    pub fn remove_tunnel(&self, host: &str) -> bool {
        self.state()
            .tunnels
            .remove(&host.to_ascii_lowercase())
            .is_some()
    }

    /// Arms a fault for the next `fault.count` matching API requests. Faults
    /// are tried in the order they were armed.
    ///
    /// # Panics
    /// If a `Status` fault's status is not in 100..=599.
    pub fn inject_fault(&self, fault: Fault) {
        if let crate::FaultAction::Status { status, .. }
        | crate::FaultAction::Problem { status, .. } = &fault.action
        {
            let status = *status;
            assert!(
                (100..=599).contains(&status),
                "fault status {status} is not an HTTP status"
            );
        }
        if fault.count == 0 {
            return;
        }
        let remaining = fault.count;
        self.state().faults.push(PendingFault { fault, remaining });
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Back to the initial state: sentinel webhooks, no destinations, events,
    /// deliveries, requests, tunnels, faults or rates. Retries and replay
    /// jobs in progress stop and record nothing more.
    pub fn reset(&self) {
        let mut work = lock(&self.inner.work);
        work.cancel();
        *work = self.inner.shutdown.child_token();
        drop(work);
        for (_, task) in std::mem::take(&mut *lock(&self.inner.rates)) {
            let _ = task.rate.send(0.0);
            task.task.abort();
        }
        self.state().reset();
        tracing::info!("state reset");
    }

    /// Stops serving: no new connections, in-flight requests get up to 3
    /// seconds, background work stops.
    pub async fn shutdown(self) {
        self.inner.shutdown.cancel();
        lock(&self.inner.work).cancel();
        for (_, task) in std::mem::take(&mut *lock(&self.inner.rates)) {
            task.task.abort();
        }
        let server = lock(&self.inner.server).take();
        if let Some(server) = server {
            let _ = server.await;
        }
        tracing::info!("konnect-sim stopped");
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    pub(crate) fn config(&self) -> &SimConfig {
        &self.inner.config
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
    pub(crate) async fn emit(
        &self,
        region: &'static str,
        count: usize,
        source: DeliverySource,
    ) -> TriggerReport {
        let cancel = self.work_token();
        let _lane = self.inner.lanes[region].lock().await;
        let (epoch, events) = {
            let mut state = self.state();
            let now = time::now();
            let events: Vec<Event> = (0..count)
                .map(|_| state.generator.event(region, now))
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
    ) -> (Vec<crate::Delivery>, Option<String>) {
        let mut deliveries = Vec::new();
        let batches: Vec<&[Event]> = events.chunks(self.config().batch_size).collect();
        for (index, batch) in batches.iter().enumerate() {
            if cancel.is_cancelled() {
                return (deliveries, Some("stopped by reset or shutdown".to_string()));
            }
            let Some(target) = self.state().delivery_target(region) else {
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
            let delivery =
                deliver_batch(self, region, source, &target, records, epoch, cancel).await;
            deliveries.push(delivery);
        }
        (deliveries, None)
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

    /// Runs an accepted replay job: re-delivers the region's stored events of
    /// `[start, end]` to the current webhook, then marks the job completed
    /// (every batch delivered) or failed.
    pub(crate) fn spawn_replay(
        &self,
        region: &'static str,
        start: Millis,
        end: Millis,
        epoch: u64,
    ) {
        let sim = self.clone();
        let cancel = self.work_token();
        self.inner.runtime.spawn(async move {
            let _lane = sim.inner.lanes[region].lock().await;
            let events: Vec<Event> = {
                let mut state = sim.state();
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
                let (deliveries, not_delivered) = sim
                    .deliver_events(region, DeliverySource::Replay, &events, epoch, &cancel)
                    .await;
                not_delivered.is_none() && deliveries.iter().all(|d| d.delivered)
            };
            let mut state = sim.state();
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

fn expect_region(region: &str) -> &'static str {
    known_region(region)
        .unwrap_or_else(|| panic!("unknown region {region:?}; regions are us, eu, au, me, in, sg"))
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not wedge
/// the emulator for the others).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
