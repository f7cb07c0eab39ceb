//! One replay, start to end, and the loop that runs them one at a time as
//! triggers come in.
//!
//! A replay: open the dedup gate (from here on every record received is
//! remembered), read Konnect's clock and current job, read the store for
//! the newest stored record and the keys of the window, seed the gate,
//! `PUT` the job (waiting out a 409 while another job runs, and Konnect
//! failures, with backoff, for as long as the listener lives), then watch
//! the job until it is `completed` or `failed`. A failed job leaves its
//! window in the report as missing, with a warning; the next replay, for
//! whatever reason it starts, covers that window too. The gate closes once
//! no job has run for a grace period.

use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::report::Phase;
use super::scan::{self, StoreScan};
use super::triggers::Trigger;
use super::window::{self, OVERLAP, Plan, Window};
use super::{Backfill, Healing};
use crate::konnect::KonnectError;
use crate::konnect::replay_job::{JobStatus, ReplayJob};

/// How a replay ended.
enum Outcome {
    Completed(Window),
    /// The job failed, or Konnect refused to run it: the window stays
    /// missing.
    Failed(Window, String),
    /// Konnect refused (not a passing failure) before a job was requested:
    /// the window, on our clock, stays missing.
    Refused(Window, String),
    /// Nothing to replay (nothing stored, no backfill asked for).
    Nothing,
    /// The store could not be read: no window.
    Unasked(String),
}

pub(super) struct Healer {
    h: Healing,
    /// When the listener started (our clock): what a gap noticed while
    /// running replays from when nothing is stored yet.
    started_at: Timestamp,
    /// The window a failed replay left missing.
    missing: Option<Window>,
}

impl Healer {
    pub fn new(h: Healing, started_at: Timestamp) -> Healer {
        // A window the previous listener left missing is covered by the
        // first replay.
        let missing = h.report.get().missing_window.and_then(|text| text.window());
        Healer {
            h,
            started_at,
            missing,
        }
    }

    /// Runs replays as triggers come, until the triggers are gone.
    pub async fn run(mut self, mut triggers: mpsc::UnboundedReceiver<Trigger>) {
        let mut close_gate_at: Option<Instant> = None;
        loop {
            let trigger = tokio::select! {
                t = triggers.recv() => match t {
                    Some(t) => t,
                    None => return,
                },
                () = sleep_until(close_gate_at) => {
                    self.h.gate.close();
                    close_gate_at = None;
                    let dropped = self.h.gate.dropped();
                    self.h.report.update(|r| r.duplicates_dropped = dropped);
                    tracing::debug!("replay dedup gate closed");
                    continue;
                }
            };
            // Triggers that came during the last replay are covered by one
            // more: its window reaches to now.
            while triggers.try_recv().is_ok() {}
            if self.replay(trigger).await {
                close_gate_at = Some(Instant::now() + self.h.timing.gate_grace);
            } else if close_gate_at.is_none() {
                // No job was asked for, and none is in its grace period:
                // nothing will come twice.
                self.h.gate.close();
            }
        }
    }

    /// One replay; true if a job was asked for (its batches may still be
    /// arriving).
    async fn replay(&mut self, trigger: Trigger) -> bool {
        tracing::info!(trigger = trigger.name(), "replay: starting");
        self.h.report.update(|r| {
            r.state = Phase::Scanning;
            r.trigger = Some(trigger.name().to_string());
            r.last_error = None;
        });
        self.h.gate.open();
        let outcome = self.attempt(&trigger).await;
        let dropped = self.h.gate.dropped();
        let requested = matches!(outcome, Outcome::Completed(_) | Outcome::Failed(..));
        let refused = matches!(outcome, Outcome::Refused(..));
        match outcome {
            Outcome::Completed(w) => {
                tracing::info!(window = %w, "replay: completed");
                if self.missing.is_some_and(|m| w.covers(&m)) {
                    self.missing = None;
                }
                let missing = self.missing.map(|m| m.text());
                self.h.report.update(|r| {
                    r.state = Phase::Idle;
                    r.job_status = Some(JobStatus::Completed.to_string());
                    r.jobs_completed += 1;
                    r.duplicates_dropped = dropped;
                    r.missing_window = missing;
                });
            }
            Outcome::Failed(w, why) | Outcome::Refused(w, why) => {
                let missing = self.missing.map_or(w, |m| m.hull(w));
                self.missing = Some(missing);
                warn(&format!(
                    "audit-log replay failed: events from {} to {} may be missing ({why}); \
                     the next replay includes them",
                    fmt(missing.start),
                    fmt(missing.end)
                ));
                self.h.report.update(|r| {
                    r.state = Phase::Idle;
                    r.window = Some(w.text());
                    if refused {
                        r.job_status = None;
                    }
                    r.jobs_failed += 1;
                    r.duplicates_dropped = dropped;
                    r.missing_window = Some(missing.text());
                    r.last_error = Some(why);
                });
            }
            Outcome::Nothing => {
                tracing::info!("replay: nothing stored yet, nothing to replay");
                self.h.report.update(|r| r.state = Phase::Idle);
            }
            Outcome::Unasked(why) => {
                warn(&format!(
                    "audit-log replay could not be requested ({why}); events missed while no listener ran may be missing"
                ));
                self.h.report.update(|r| {
                    r.state = Phase::Idle;
                    r.last_error = Some(why);
                });
            }
        }
        requested
    }

    async fn attempt(&mut self, trigger: &Trigger) -> Outcome {
        // The store first: with nothing stored and nothing asked for, there
        // is nothing to replay and no reason to call Konnect. Its keys are
        // gathered from a little before any start the window can get (a
        // `--backfill` duration is measured on Konnect's clock, below).
        let startup_floor = match trigger {
            Trigger::Startup => self
                .h
                .backfill
                .floor(Timestamp::now())
                .map(|f| window::sub(f, CLOCK_SKEW)),
            _ => None,
        };
        let scan_floor = min_opt(startup_floor, self.missing.map(|m| m.start));
        // The acknowledged length belongs to one generation of the active
        // file: if the store rotated during the scan, the length may not
        // fit the file that was read, so the scan is done again (a rotation
        // takes at least a batch, so this ends).
        let mut tries = 0;
        let scanned: StoreScan = loop {
            tries += 1;
            let committed = *self.h.store.committed().borrow();
            let files = self.h.files.clone();
            let scanned = tokio::task::spawn_blocking(move || {
                scan::scan(&files, committed.offset, scan_floor, OVERLAP)
            })
            .await;
            let scanned = match scanned {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    return Outcome::Unasked(format!("failed to read the stored events: {e}"));
                }
                Err(e) => return Outcome::Unasked(format!("store scan failed: {e}")),
            };
            let rotated = self.h.store.committed().borrow().generation != committed.generation;
            if !rotated || tries >= 5 {
                break scanned;
            }
            tracing::debug!("replay: the store rotated while it was read; reading again");
        };
        tracing::info!(
            newest = ?scanned.newest,
            keys = scanned.keys.len(),
            files = scanned.files,
            problems = scanned.problems,
            "replay: store read"
        );
        if scanned.newest.is_none() && scan_floor.is_none() && *trigger == Trigger::Startup {
            return Outcome::Nothing;
        }

        // Konnect's clock: windows end at its now.
        let now = match self
            .retrying("read the replay job", || self.h.audit.replay_job())
            .await
        {
            Ok(dated) => konnect_now(dated.date),
            Err(e) => {
                // Konnect refused: what stays missing, on our clock.
                return match self.plan(trigger, scanned.newest, Timestamp::now()) {
                    Some((w, _)) => Outcome::Refused(w, e),
                    None => Outcome::Unasked(e),
                };
            }
        };
        if let Trigger::Startup = trigger
            && self.h.backfill.floor(now).is_some_and(|f| f >= now)
        {
            return Outcome::Unasked(format!(
                "--backfill {} is not in the past on Konnect's clock ({})",
                self.h.backfill.text(),
                fmt(now)
            ));
        }
        let Some((w, clamped)) = self.plan(trigger, scanned.newest, now) else {
            return Outcome::Nothing;
        };
        if clamped {
            let message = format!(
                "the replay starts at {}: Konnect keeps audit logs for 7 days, older events cannot be sent again",
                fmt(w.start)
            );
            if matches!(self.h.backfill, Backfill::Since(_) | Backfill::From(_))
                && matches!(trigger, Trigger::Startup)
            {
                warn(&message);
            } else {
                tracing::warn!("{message}");
            }
        }
        self.h.gate.seed(scanned.keys);
        self.h.gate.evict_before(w.start);
        self.h.gate.remember_only(w.start, w.end);

        // PUT, waiting out other jobs.
        let mut wait = self.h.timing.retry_first;
        loop {
            match self.h.audit.request_replay(w.start, w.end).await {
                Ok(_) => break,
                Err(e) if is_conflict(&e) || e.is_transient() => {
                    let why = if is_conflict(&e) {
                        "another replay job is running in the region".to_string()
                    } else {
                        e.to_string()
                    };
                    tracing::info!(window = %w, wait_ms = wait.as_millis() as u64, reason = %why, "replay: waiting to request the job");
                    self.h.report.update(|r| {
                        r.state = Phase::Waiting;
                        r.window = Some(w.text());
                        r.job_status = None;
                        r.last_error = Some(format!(
                            "{why}; trying again in {}",
                            crate::time::format_duration(round_ms(wait))
                        ));
                    });
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.h.timing.retry_max);
                }
                Err(e) => return Outcome::Refused(w, format!("the replay request failed: {e}")),
            }
        }
        tracing::info!(window = %w, trigger = trigger.name(), "replay: job requested");
        self.h.report.update(|r| {
            r.state = Phase::Replaying;
            r.window = Some(w.text());
            r.job_status = Some(JobStatus::Accepted.to_string());
            r.last_error = None;
        });
        self.watch(w).await
    }

    /// The window to replay at `now` (Konnect's clock), with whether it
    /// was clamped to Konnect's retention; `None` if there is nothing to
    /// replay.
    fn plan(
        &self,
        trigger: &Trigger,
        newest_stored: Option<Timestamp>,
        now: Timestamp,
    ) -> Option<(Window, bool)> {
        let backfill_floor = match trigger {
            Trigger::Startup => self.h.backfill.floor(now),
            _ => None,
        };
        let floor = min_opt(backfill_floor, self.missing.map(|m| m.start));
        // A gap noticed while running, before anything was stored: what
        // was sent since the listener started.
        let floor = match (trigger, newest_stored) {
            (Trigger::Startup, _) | (_, Some(_)) => floor,
            (_, None) => min_opt(floor, Some(self.started_at)),
        };
        window::plan(Plan {
            newest_stored,
            floor,
            now,
        })
    }

    /// Looks at the job until it ends.
    async fn watch(&self, w: Window) -> Outcome {
        let mut shown = JobStatus::Accepted;
        loop {
            tokio::time::sleep(self.h.timing.job_poll).await;
            let job: ReplayJob = match self.h.audit.replay_job().await {
                Ok(dated) => dated.value,
                Err(e) => {
                    tracing::debug!(error = %e, "replay: job status unavailable; looking again");
                    continue;
                }
            };
            if !job.is_range(w.start, w.end) {
                // Another job replaced ours: it ended, how is unknown.
                return Outcome::Failed(
                    w,
                    "another replay job replaced it before its outcome was seen".into(),
                );
            }
            match job.status {
                JobStatus::Completed => return Outcome::Completed(w),
                JobStatus::Failed => {
                    self.h
                        .report
                        .update(|r| r.job_status = Some(JobStatus::Failed.to_string()));
                    return Outcome::Failed(w, "Konnect's replay job failed".into());
                }
                status if status != shown => {
                    tracing::info!(window = %w, status = %status, "replay: job status");
                    let dropped = self.h.gate.dropped();
                    self.h.report.update(|r| {
                        r.job_status = Some(status.to_string());
                        r.duplicates_dropped = dropped;
                    });
                    shown = status;
                }
                _ => {}
            }
        }
    }

    /// Calls `f` until it succeeds or fails for good (not a transient
    /// failure), waiting with backoff in between: Konnect being away for a
    /// while does not cancel a replay.
    async fn retrying<T, F, Fut>(&self, what: &str, f: F) -> Result<T, String>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, KonnectError>>,
    {
        let mut wait = self.h.timing.retry_first;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() => {
                    tracing::info!(error = %e, wait_ms = wait.as_millis() as u64, "replay: failed to {what}; trying again");
                    self.h.report.update(|r| {
                        r.state = Phase::Waiting;
                        r.last_error = Some(format!("failed to {what}: {e}"));
                    });
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.h.timing.retry_max);
                }
                Err(e) => return Err(format!("failed to {what}: {e}")),
            }
        }
    }
}

/// How far our clock may be from Konnect's, for the keys gathered before
/// Konnect's clock is known (extra keys cost only memory, until evicted).
const CLOCK_SKEW: Duration = Duration::from_secs(300);

fn is_conflict(e: &KonnectError) -> bool {
    e.status() == Some(reqwest::StatusCode::CONFLICT)
}

/// Konnect's now from an answer's `Date`, ours when it gave none.
fn konnect_now(date: Option<SystemTime>) -> Timestamp {
    let t = date.unwrap_or_else(SystemTime::now);
    Timestamp::try_from(t).unwrap_or_else(|_| Timestamp::now())
}

fn min_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn fmt(t: Timestamp) -> String {
    format!("{t:.0}")
}

/// Whole milliseconds, for messages.
fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// A warning for the user: on stderr (the log file of a detached listener)
/// and in the log.
fn warn(message: &str) {
    tracing::warn!("{message}");
    eprintln!("Warning: {message}");
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
