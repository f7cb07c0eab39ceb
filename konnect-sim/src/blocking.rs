//! A blocking handle for synchronous tests: the emulator runs on its own
//! thread with its own tokio runtime, and every method waits for the answer.
//!
//! It may be used from any thread, including from inside another runtime
//! (calls then block that runtime's thread while they wait).

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::config::SimConfig;
use crate::fault::Fault;
use crate::snapshot::{Snapshot, TriggerReport};

/// An emulator on 127.0.0.1 with a random port, stopped when dropped.
pub struct Sim {
    sim: crate::Sim,
    runtime: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sim {
    /// Starts an emulator on `127.0.0.1:0`.
    pub fn start(config: SimConfig) -> std::io::Result<Sim> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("konnect-sim".to_string())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("konnect-sim-worker")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
                    match crate::Sim::start(addr, config).await {
                        Ok(sim) => {
                            let _ = ready_tx.send(Ok((sim.clone(), Handle::current())));
                            let _ = stop_rx.await;
                            sim.shutdown().await;
                        }
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                        }
                    }
                });
            })?;
        match ready_rx.recv() {
            Ok(Ok((sim, runtime))) => Ok(Sim {
                sim,
                runtime,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(error)) => {
                let _ = thread.join();
                Err(error)
            }
            Err(_) => {
                let _ = thread.join();
                Err(std::io::Error::other(
                    "the konnect-sim thread ended before starting",
                ))
            }
        }
    }

    /// Runs `future` on the emulator's runtime and waits for its output.
    fn run<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        self.runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv()
            .expect("the konnect-sim runtime runs until the handle is dropped")
    }

    /// The async handle, for calls this type does not wrap.
    pub fn handle(&self) -> &crate::Sim {
        &self.sim
    }

    pub fn addr(&self) -> SocketAddr {
        self.sim.addr()
    }

    pub fn base_url(&self) -> String {
        self.sim.base_url()
    }

    pub fn pat(&self) -> String {
        self.sim.pat()
    }

    /// See [`crate::Sim::issue_login`].
    pub fn issue_login(&self, ttl: Duration) -> crate::LoginGrant {
        self.sim.issue_login(ttl)
    }

    /// See [`crate::Sim::login_refreshes`].
    pub fn login_refreshes(&self) -> u64 {
        self.sim.login_refreshes()
    }

    pub fn snapshot(&self) -> Snapshot {
        self.sim.snapshot()
    }

    /// See [`crate::Sim::wait_for`].
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Snapshot) -> bool,
    ) -> Result<Snapshot, Box<Snapshot>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let snapshot = self.snapshot();
            if done(&snapshot) {
                return Ok(snapshot);
            }
            if std::time::Instant::now() >= deadline {
                return Err(Box::new(snapshot));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// See [`crate::Sim::trigger`].
    pub fn trigger(&self, region: &str, count: usize) -> TriggerReport {
        let sim = self.sim.clone();
        let region = region.to_string();
        self.run(async move { sim.trigger(&region, count).await })
    }

    /// See [`crate::Sim::set_rate`].
    pub fn set_rate(&self, region: &str, per_second: f64) {
        self.sim.set_rate(region, per_second);
    }

    /// See [`crate::Sim::seed_audit_logs`].
    pub fn seed_audit_logs(&self, region: &str, count: usize, span: Duration) -> crate::SeedReport {
        self.sim.seed_audit_logs(region, count, span)
    }

    /// See [`crate::Sim::seed_audit_logs_between`].
    pub fn seed_audit_logs_between(
        &self,
        region: &str,
        count: usize,
        start: std::time::SystemTime,
        end: std::time::SystemTime,
    ) -> crate::SeedReport {
        self.sim.seed_audit_logs_between(region, count, start, end)
    }

    /// See [`crate::Sim::add_raw_audit_logs`].
    pub fn add_raw_audit_logs(
        &self,
        region: &str,
        records: &[&str],
    ) -> Result<crate::SeedReport, String> {
        self.sim.add_raw_audit_logs(region, records)
    }

    /// See [`crate::Sim::set_cursor_mode`].
    pub fn set_cursor_mode(&self, mode: crate::CursorMode) {
        self.sim.set_cursor_mode(mode);
    }

    /// See [`crate::Sim::set_clock_offset`].
    pub fn set_clock_offset(&self, offset_ms: i64) {
        self.sim.set_clock_offset(offset_ms);
    }

    /// See [`crate::Sim::now`].
    pub fn now(&self) -> std::time::SystemTime {
        self.sim.now()
    }

    pub fn add_tunnel(&self, host: &str, target: SocketAddr) {
        self.sim.add_tunnel(host, target);
    }

    pub fn remove_tunnel(&self, host: &str) -> bool {
        self.sim.remove_tunnel(host)
    }

    pub fn inject_fault(&self, fault: Fault) {
        self.sim.inject_fault(fault);
    }

    pub fn clear_faults(&self) {
        self.sim.clear_faults();
    }

    /// See [`crate::Sim::rotate_signing_key`].
    pub fn rotate_signing_key(&self, keep_old: bool) -> String {
        self.sim.rotate_signing_key(keep_old)
    }

    /// See [`crate::Sim::rotate_signing_key_to_seed`].
    pub fn rotate_signing_key_to_seed(&self, seed: [u8; 32], keep_old: bool) -> String {
        self.sim.rotate_signing_key_to_seed(seed, keep_old)
    }

    /// See [`crate::Sim::forge_next`].
    pub fn forge_next(&self, tampered: u64, unsigned: u64) -> crate::Forgeries {
        self.sim.forge_next(tampered, unsigned)
    }

    pub fn reset(&self) {
        self.sim.reset();
    }

    /// See [`crate::Sim::set_receiver_down`].
    pub fn set_receiver_down(&self, down: bool) {
        self.sim.set_receiver_down(down);
    }

    /// See [`crate::Sim::fail_replay_jobs`].
    pub fn fail_replay_jobs(&self, count: u32) {
        self.sim.fail_replay_jobs(count);
    }

    /// See [`crate::Sim::hold_replay_jobs`].
    pub fn hold_replay_jobs(&self, hold: bool) {
        self.sim.hold_replay_jobs(hold);
    }

    /// See [`crate::Sim::add_portal`].
    pub fn add_portal(&self, region: &str, name: &str) -> Result<crate::PortalState, String> {
        self.sim.add_portal(region, name)
    }

    /// See [`crate::Sim::add_portal_with`].
    pub fn add_portal_with(&self, portal: &crate::NewPortal) -> Result<crate::PortalState, String> {
        self.sim.add_portal_with(portal)
    }

    /// See [`crate::Sim::remove_portal`].
    pub fn remove_portal(&self, id: &str) -> bool {
        self.sim.remove_portal(id)
    }

    /// See [`crate::Sim::add_portal_developer`].
    pub fn add_portal_developer(
        &self,
        portal_id: &str,
        email: &str,
        full_name: &str,
    ) -> Result<crate::DeveloperState, String> {
        self.sim.add_portal_developer(portal_id, email, full_name)
    }

    /// See [`crate::Sim::add_portal_developer_with`].
    pub fn add_portal_developer_with(
        &self,
        portal_id: &str,
        developer: &crate::NewDeveloper,
    ) -> Result<crate::DeveloperState, String> {
        self.sim.add_portal_developer_with(portal_id, developer)
    }

    /// See [`crate::Sim::trigger_portal`].
    pub fn trigger_portal(&self, portal_id: &str, count: usize) -> TriggerReport {
        let sim = self.sim.clone();
        let portal_id = portal_id.to_string();
        self.run(async move { sim.trigger_portal(&portal_id, count).await })
    }

    /// See [`crate::Sim::fail_portal_replay_jobs`].
    pub fn fail_portal_replay_jobs(&self, portal_id: &str, count: u32) {
        self.sim.fail_portal_replay_jobs(portal_id, count);
    }

    /// See [`crate::Sim::add_user`].
    pub fn add_user(&self, email: &str, full_name: &str) -> Result<crate::UserState, String> {
        self.sim.add_user(email, full_name)
    }

    /// See [`crate::Sim::add_user_with`].
    pub fn add_user_with(&self, user: &crate::NewUser) -> Result<crate::UserState, String> {
        self.sim.add_user_with(user)
    }

    /// See [`crate::Sim::add_system_account`].
    pub fn add_system_account(
        &self,
        name: &str,
        description: &str,
    ) -> Result<crate::SystemAccountState, String> {
        self.sim.add_system_account(name, description)
    }

    /// See [`crate::Sim::add_system_account_with`].
    pub fn add_system_account_with(
        &self,
        account: &crate::NewSystemAccount,
    ) -> Result<crate::SystemAccountState, String> {
        self.sim.add_system_account_with(account)
    }

    /// See [`crate::Sim::contract_violations`].
    pub fn contract_violations(&self) -> Vec<crate::ContractViolation> {
        self.sim.contract_violations()
    }

    /// See [`crate::Sim::clear_contract_violations`].
    pub fn clear_contract_violations(&self) {
        self.sim.clear_contract_violations();
    }

    /// See [`crate::Sim::request_count`].
    pub fn request_count(&self, method: &str, route: &str) -> u64 {
        self.sim.request_count(method, route)
    }

    /// Stops the emulator and its thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
