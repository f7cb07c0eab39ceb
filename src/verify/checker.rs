//! `--verify warn`'s checker: every stored record's signature checked once,
//! off the request path.
//!
//! Under `warn` a request is acknowledged once its records are durable; no
//! signature is checked on its way. This checker follows the store from a
//! cursor saved beside it (`verify.cursor`, see `crate::store::cursor`),
//! only as far as records are committed, across rotation and compression,
//! and checks what it reads in batches ([`super::check::check_lines`]) on
//! every core, in threads of Linux's idle scheduling class (`SCHED_IDLE`,
//! else nice 19), so that it takes the cores only when requests leave them
//! idle. It holds one batch
//! (at most 1 MiB of records) at a time however far it lags.
//!
//! Counts and the first record of each kind logged are the verifier's
//! ([`LiveVerifier`]), as under `reject`. A record that no key verifies
//! may be signed by a key Konnect has rotated in since: the checker (not a
//! request) waits for the JWKS fetched again.
//!
//! **Exactly once.** The cursor is saved after each batch, with the
//! checker's running totals since the cursor was first made, so a record
//! stored just before a crash is checked at the next start, and the totals
//! count each record once (a batch checked but not saved is checked and
//! counted again from the saved totals). `verify.pending` (in
//! `listener.json`) is what is stored and not yet checked.
//!
//! **Stopping.** When the listener stops, the checker goes on until it has
//! checked every committed record or [`FINISH_WITHIN`] has passed; what is
//! left is checked by the next start. A cursor file that cannot be written
//! stops nothing: the checker logs it and tries again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::check::{self, Outcome};
use super::live::LiveVerifier;
use super::{Counts, KeySet};
use crate::store::cursor::{CommittedView, Handler, Records, Start, Step, StoreConsumer};

/// The checker's cursor is `<dir>/verify.cursor`.
pub const CURSOR_NAME: &str = "verify";
/// How long a stopping listener lets the checker finish.
pub const FINISH_WITHIN: Duration = Duration::from_secs(10);
/// How often an idle checker looks for records without being woken by a
/// commit.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// After a failure to read the store or save the cursor, the wait before
/// trying again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Test only, not for users: `KONGCTL_TEST_VERIFY_HOLD=<n>` makes the
/// checker stop after `n` batches (0: before any), as if it were slow, so
/// that a test can kill the listener with records pending.
const HOLD_ENV: &str = "KONGCTL_TEST_VERIFY_HOLD";

/// How far the checker is; shared with whoever reports it.
#[derive(Debug, Default)]
struct Progress {
    /// Records after the cursor when the checker started.
    backlog: AtomicU64,
    /// Records checked since then.
    checked: AtomicU64,
}

/// What is saved with the cursor.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    /// Every record checked since the cursor file was made.
    #[serde(default)]
    totals: Counts,
}

/// The running checker.
pub struct Checker {
    progress: Arc<Progress>,
    stop: Arc<Stop>,
    /// Taken by the first [`Checker::finish`].
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Stop {
    /// Set when the listener stops: finish, then end.
    requested: AtomicBool,
    deadline: std::sync::Mutex<Option<Instant>>,
    wake: Notify,
}

impl Checker {
    /// Opens the checker's cursor in `dir` (the store's directory; from the
    /// end of the store when there is none yet) and counts what is left
    /// from the last run, then starts checking in the background. Called
    /// before the listener serves, so that the count is of records stored
    /// before this run. `records_before` is the store's own count of
    /// records appended so far by this run (0 at startup).
    pub fn start(
        verifier: Arc<LiveVerifier>,
        dir: &Path,
        committed: CommittedView,
        runtime: tokio::runtime::Handle,
    ) -> std::io::Result<Checker> {
        let (consumer, state) =
            StoreConsumer::open(dir, CURSOR_NAME, Start::End, Some(committed.clone()))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        let saved: Saved = serde_json::from_value(state).unwrap_or_default();
        let backlog = consumer.backlog().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not count the records left unchecked by the last run");
            0
        });
        if backlog > 0 {
            tracing::info!(
                records = backlog,
                "checking the signatures of records stored but not checked before the last stop"
            );
        }
        let progress = Arc::new(Progress {
            backlog: AtomicU64::new(backlog),
            checked: AtomicU64::new(0),
        });
        let stop = Arc::new(Stop::default());
        let hold = std::env::var(HOLD_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok());
        let mut handler = CheckHandler {
            verifier,
            runtime: runtime.clone(),
            saved,
            progress: progress.clone(),
        };
        let thread = {
            let stop = stop.clone();
            let dir = dir.to_path_buf();
            std::thread::Builder::new()
                .name("kongctl-verify".into())
                .spawn(move || {
                    crate::store::idle_thread_priority();
                    run(
                        consumer,
                        &mut handler,
                        committed,
                        runtime,
                        &stop,
                        hold,
                        &dir,
                    );
                })?
        };
        Ok(Checker {
            progress,
            stop,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Records stored and not yet checked, given the store's count of
    /// records appended by this run.
    pub fn pending(&self, appended: u64) -> u64 {
        let p = &self.progress;
        (p.backlog.load(Ordering::Relaxed) + appended)
            .saturating_sub(p.checked.load(Ordering::Relaxed))
    }

    /// Lets the checker finish what is committed (the store should be
    /// closed first, so that nothing more comes), for at most `within`;
    /// returns once it ended.
    pub async fn finish(&self, within: Duration) {
        *self.stop.deadline.lock().expect("deadline lock") = Some(Instant::now() + within);
        self.stop.requested.store(true, Ordering::SeqCst);
        self.stop.wake.notify_one();
        let thread = self.thread.lock().expect("checker thread lock").take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        // Not finished (a failed start): let the thread end at its next
        // look without waiting for it.
        self.stop.requested.store(true, Ordering::SeqCst);
        self.stop.wake.notify_one();
    }
}

/// The checker thread: checks batches until stopped.
fn run(
    mut consumer: StoreConsumer,
    handler: &mut CheckHandler,
    committed: CommittedView,
    runtime: tokio::runtime::Handle,
    stop: &Stop,
    hold: Option<u64>,
    dir: &Path,
) {
    let mut batches = 0u64;
    let mut failing = false;
    let past_deadline = || {
        stop.requested.load(Ordering::SeqCst)
            && stop
                .deadline
                .lock()
                .expect("deadline lock")
                .is_some_and(|d| Instant::now() >= d)
    };
    // Marked seen before each look at the store, so that the wait below
    // ends at the first commit after that look (and at once if one came
    // during it).
    let mut changes = committed.committed.clone();
    let mut store_open = true;
    loop {
        changes.borrow_and_update();
        let held = hold.is_some_and(|h| batches >= h);
        let step = if held {
            Ok(Step::CaughtUp)
        } else {
            consumer.step(handler)
        };
        match step {
            Ok(Step::Delivered(_)) => {
                batches += 1;
                failing = false;
                if past_deadline() {
                    break;
                }
                continue;
            }
            Ok(Step::CaughtUp) => {
                failing = false;
                if stop.requested.load(Ordering::SeqCst) {
                    // The store is closed: caught up is the end.
                    break;
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, dir = %dir.display(), "the signature checker cannot go on; trying again every second");
                }
                failing = true;
                if past_deadline() || stop.requested.load(Ordering::SeqCst) && held {
                    break;
                }
            }
        }
        if held && stop.requested.load(Ordering::SeqCst) {
            break;
        }
        let wait = if failing { RETRY_AFTER } else { IDLE_POLL };
        runtime.block_on(async {
            tokio::select! {
                // Closed when the store stops: then only the stop wakes it.
                changed = changes.changed(), if store_open => store_open = changed.is_ok(),
                _ = stop.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        });
    }
    let left = consumer.backlog().unwrap_or(0);
    if left > 0 {
        tracing::warn!(
            records = left,
            "stopping with records whose signatures are not checked yet; the next start checks them"
        );
    }
}

/// Checks each batch the consumer hands over.
struct CheckHandler {
    verifier: Arc<LiveVerifier>,
    runtime: tokio::runtime::Handle,
    saved: Saved,
    progress: Arc<Progress>,
}

impl Handler for CheckHandler {
    type Error = std::convert::Infallible;

    fn handle(&mut self, records: &Records<'_>) -> Result<(), Self::Error> {
        let lines: Vec<&[u8]> = records.iter().collect();
        let keys = self.verifier.keys();
        let mut outcomes = check_on_every_core(&lines, &keys);
        if outcomes.iter().any(|o| o.may_need_new_keys())
            && let Some(newer) = self
                .runtime
                .block_on(self.verifier.newer_keys(keys.generation))
        {
            let mut scratch = Vec::new();
            for (outcome, line) in outcomes.iter_mut().zip(&lines) {
                if outcome.may_need_new_keys() {
                    *outcome = check::check_line(line, &newer, &mut scratch);
                }
            }
        }
        self.verifier.count(&outcomes);
        for outcome in &outcomes {
            self.saved.totals.add(outcome.kind(), 1);
        }
        self.progress
            .checked
            .fetch_add(outcomes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn state(&self) -> serde_json::Value {
        serde_json::to_value(&self.saved).expect("totals serialise")
    }
}

/// [`check::check_lines`] split over the machine's cores, each part in a
/// thread of the idle scheduling class.
pub fn check_on_every_core(lines: &[&[u8]], keys: &KeySet) -> Vec<Outcome> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // A thread per core only pays for a batch worth it (a few ms of
    // checks); a trickle of records is checked on this thread.
    if cores == 1 || lines.len() < super::batch::TOGETHER_FROM * cores {
        return check::check_lines(lines, keys);
    }
    let per = lines.len().div_ceil(cores);
    std::thread::scope(|scope| {
        let parts: Vec<_> = lines
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    crate::store::idle_thread_priority();
                    check::check_lines(part, keys)
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("checking signatures does not panic"))
            .collect()
    })
}

/// The checker's cursor file in the store directory `dir`.
pub fn cursor_file(dir: &Path) -> PathBuf {
    dir.join(format!(
        "{CURSOR_NAME}{}",
        crate::store::cursor::CURSOR_SUFFIX
    ))
}
