//! One round of replays, start to end, and the loop that runs the rounds
//! one at a time as triggers come in.
//!
//! A round covers the streams its triggers name (all of them at start and
//! after sleep; the one whose delivery failed otherwise): open the dedup
//! gate (from here on every record received is remembered), read the store
//! once for each stream's newest stored record and the keys of its window,
//! read Konnect's clock and each stream's current job, plan each stream's
//! window, seed the gate; then, for each stream side by side, `PUT` its job
//! (waiting out a 409 while another job of that stream runs, and Konnect
//! failures, with backoff, for as long as the listener lives) and watch it
//! until it is `completed` or `failed`. A failed job leaves its window in
//! that stream's report as missing, with a warning; the stream's next
//! replay, for whatever reason it starts, covers that window too. The gate
//! closes once no job has run for a grace period.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::report::{Phase, SharedReport};
use super::scan::{self, StoreScan};
use super::triggers::Trigger;
use super::window::{self, OVERLAP, Plan, Window};
use super::{Backfill, Healing, Timing};
use crate::konnect::replay_job::{JobStatus, ReplayJob};
use crate::konnect::{AuditLogs, KonnectError, Stream};
use crate::listener::DedupGate;

/// How a stream's replay ended.
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
    /// Per stream, the window a failed replay left missing.
    missing: BTreeMap<Stream, Window>,
}

impl Healer {
    pub fn new(h: Healing, started_at: Timestamp) -> Healer {
        // A window the previous listener left missing is covered by the
        // stream's first replay.
        let report = h.report.get();
        let missing = h
            .streams
            .iter()
            .filter_map(|s| {
                let w = report.stream(&s.stream).missing_window?.window()?;
                Some((s.stream.clone(), w))
            })
            .collect();
        Healer {
            h,
            started_at,
            missing,
        }
    }

    /// Runs rounds as triggers come, until the triggers are gone.
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
            // Triggers that came during the last round are covered by one
            // more: its windows reach to now.
            let mut streams = self.streams_for(&trigger);
            while let Ok(more) = triggers.try_recv() {
                for s in self.streams_for(&more) {
                    if !streams.contains(&s) {
                        streams.push(s);
                    }
                }
            }
            if streams.is_empty() {
                continue;
            }
            if self.round(&trigger, &streams).await {
                close_gate_at = Some(Instant::now() + self.h.timing.gate_grace);
            } else if close_gate_at.is_none() {
                // No job was asked for, and none is in its grace period:
                // nothing will come twice.
                self.h.gate.close();
            }
        }
    }

    /// The streams a trigger replays.
    fn streams_for(&self, trigger: &Trigger) -> Vec<Stream> {
        self.h
            .streams
            .iter()
            .filter(|s| match trigger {
                Trigger::Startup => true,
                Trigger::Sleep(_) => s.automatic,
                Trigger::DeliveryFailed(stream, _) => s.stream == *stream,
            })
            .map(|s| s.stream.clone())
            .collect()
    }

    /// `" of Dev Portal name (id)"` for a portal, nothing for the
    /// organisation: messages about the organisation's replays read as
    /// before portals existed.
    fn of(&self, stream: &Stream) -> String {
        match stream {
            Stream::Org => String::new(),
            Stream::Portal(id) => {
                let name = self
                    .h
                    .streams
                    .iter()
                    .find(|s| s.stream == *stream)
                    .map(|s| s.name.as_str())
                    .unwrap_or("");
                if name.is_empty() {
                    format!(" of Dev Portal {id}")
                } else {
                    format!(" of Dev Portal {name} ({id})")
                }
            }
        }
    }

    /// One round; true if a job was asked for (its batches may still be
    /// arriving).
    async fn round(&mut self, trigger: &Trigger, streams: &[Stream]) -> bool {
        tracing::info!(
            trigger = trigger.name(),
            streams = streams.len(),
            "replay: starting"
        );
        self.h.report.update(|r| {
            for s in streams {
                r.change_stream(s, |st| {
                    st.state = Phase::Scanning;
                    st.trigger = Some(trigger.name().to_string());
                    st.last_error = None;
                });
            }
        });
        self.h.gate.open();
        let outcomes = self.attempt(trigger, streams).await;
        let dropped = self.h.gate.dropped();
        let mut requested = false;
        for (stream, outcome) in outcomes {
            requested |= matches!(outcome, Outcome::Completed(_) | Outcome::Failed(..));
            self.settle(&stream, outcome);
        }
        self.h.report.update(|r| r.duplicates_dropped = dropped);
        requested
    }

    /// Records how a stream's replay ended: its report, its missing
    /// window, a warning when something may be missing.
    fn settle(&mut self, stream: &Stream, outcome: Outcome) {
        let of = self.of(stream);
        let refused = matches!(outcome, Outcome::Refused(..));
        match outcome {
            Outcome::Completed(w) => {
                tracing::info!(window = %w, %stream, "replay: completed");
                if self.missing.get(stream).is_some_and(|m| w.covers(m)) {
                    self.missing.remove(stream);
                }
                let missing = self.missing.get(stream).map(|m| m.text());
                self.h.report.update_stream(stream, |r| {
                    r.state = Phase::Idle;
                    r.job_status = Some(JobStatus::Completed.to_string());
                    r.jobs_completed += 1;
                    r.missing_window = missing;
                });
            }
            Outcome::Failed(w, why) | Outcome::Refused(w, why) => {
                let missing = self.missing.get(stream).map_or(w, |m| m.hull(w));
                self.missing.insert(stream.clone(), missing);
                warn(&format!(
                    "audit-log replay{of} failed: events from {} to {} may be missing ({why}); \
                     the next replay includes them",
                    fmt(missing.start),
                    fmt(missing.end)
                ));
                self.h.report.update_stream(stream, |r| {
                    r.state = Phase::Idle;
                    r.window = Some(w.text());
                    if refused {
                        r.job_status = None;
                    }
                    r.jobs_failed += 1;
                    r.missing_window = Some(missing.text());
                    r.last_error = Some(why);
                });
            }
            Outcome::Nothing => {
                tracing::info!(%stream, "replay: nothing stored yet, nothing to replay");
                self.h
                    .report
                    .update_stream(stream, |r| r.state = Phase::Idle);
            }
            Outcome::Unasked(why) => {
                warn(&format!(
                    "audit-log replay{of} could not be requested ({why}); events missed while no listener ran may be missing"
                ));
                self.h.report.update_stream(stream, |r| {
                    r.state = Phase::Idle;
                    r.last_error = Some(why);
                });
            }
        }
    }

    async fn attempt(&mut self, trigger: &Trigger, streams: &[Stream]) -> Vec<(Stream, Outcome)> {
        // The store first: a stream with nothing stored and nothing asked
        // for has nothing to replay and no reason to call Konnect. Its keys
        // are gathered from a little before any start the window can get
        // (a `--backfill` duration is measured on Konnect's clock, below).
        let startup_floor = match trigger {
            Trigger::Startup => self
                .h
                .backfill
                .floor(Timestamp::now())
                .map(|f| window::sub(f, CLOCK_SKEW)),
            _ => None,
        };
        let missing_floor = streams
            .iter()
            .filter_map(|s| self.missing.get(s).map(|m| m.start))
            .min();
        let scan_floor = min_opt(startup_floor, missing_floor);
        let scanned = match self.scan(streams, scan_floor).await {
            Ok(s) => s,
            Err(why) => {
                return streams
                    .iter()
                    .map(|s| (s.clone(), Outcome::Unasked(why.clone())))
                    .collect();
            }
        };
        tracing::info!(
            newest = ?scanned.newest,
            keys = scanned.keys.len(),
            files = scanned.files,
            problems = scanned.problems,
            "replay: store read"
        );

        let mut outcomes = Vec::new();
        let mut planned: Vec<(Stream, Window)> = Vec::new();
        for stream in streams {
            match self
                .plan_stream(trigger, stream, scanned.newest_of(stream), startup_floor)
                .await
            {
                Ok(w) => planned.push((stream.clone(), w)),
                Err(outcome) => outcomes.push((stream.clone(), outcome)),
            }
        }
        let Some(hull) = planned.iter().map(|(_, w)| *w).reduce(Window::hull) else {
            return outcomes;
        };
        self.h.gate.seed(scanned.keys);
        self.h.gate.evict_before(hull.start);
        self.h.gate.remember_only(hull.start, hull.end);

        // Each stream's job side by side: one stream waiting out its own
        // running job does not hold the others back.
        let mut jobs = JoinSet::new();
        for (stream, w) in planned {
            let job = Job {
                audit: self.h.audit.clone(),
                report: self.h.report.clone(),
                gate: self.h.gate.clone(),
                timing: self.h.timing,
                stream: stream.clone(),
            };
            let trigger = trigger.name();
            jobs.spawn(async move {
                let outcome = job.run(w, trigger).await;
                (stream, outcome)
            });
        }
        while let Some(done) = jobs.join_next().await {
            match done {
                Ok(result) => outcomes.push(result),
                Err(e) => tracing::warn!(error = %e, "replay job task failed"),
            }
        }
        outcomes
    }

    /// Reads the store for `streams` from `floor`, again if it rotated
    /// meanwhile.
    async fn scan(
        &self,
        streams: &[Stream],
        floor: Option<Timestamp>,
    ) -> Result<StoreScan, String> {
        // The acknowledged length belongs to one generation of the active
        // file: if the store rotated during the scan, the length may not
        // fit the file that was read, so the scan is done again (a rotation
        // takes at least a batch, so this ends).
        let mut tries = 0;
        loop {
            tries += 1;
            let committed = *self.h.store.committed().borrow();
            let files = self.h.files.clone();
            let wanted = streams.to_vec();
            let scanned = tokio::task::spawn_blocking(move || {
                scan::scan(&files, committed.offset, &wanted, floor, OVERLAP)
            })
            .await;
            let scanned = match scanned {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(format!("failed to read the stored events: {e}")),
                Err(e) => return Err(format!("store scan failed: {e}")),
            };
            let rotated = self.h.store.committed().borrow().generation != committed.generation;
            if !rotated || tries >= 5 {
                return Ok(scanned);
            }
            tracing::debug!("replay: the store rotated while it was read; reading again");
        }
    }

    /// The window `stream` replays, or why it does not.
    async fn plan_stream(
        &self,
        trigger: &Trigger,
        stream: &Stream,
        newest: Option<Timestamp>,
        startup_floor: Option<Timestamp>,
    ) -> Result<Window, Outcome> {
        let missing = self.missing.get(stream).copied();
        if newest.is_none()
            && startup_floor.is_none()
            && missing.is_none()
            && *trigger == Trigger::Startup
        {
            return Err(Outcome::Nothing);
        }
        // Konnect's clock: windows end at its now.
        let now = match self
            .retrying(stream, "read the replay job", || {
                self.h.audit.replay_job(stream)
            })
            .await
        {
            Ok(dated) => konnect_now(dated.date),
            Err(e) => {
                // Konnect refused: what stays missing, on our clock.
                return Err(match self.plan(trigger, stream, newest, Timestamp::now()) {
                    Some((w, _)) => Outcome::Refused(w, e),
                    None => Outcome::Unasked(e),
                });
            }
        };
        if let Trigger::Startup = trigger
            && self.h.backfill.floor(now).is_some_and(|f| f >= now)
        {
            return Err(Outcome::Unasked(format!(
                "--backfill {} is not in the past on Konnect's clock ({})",
                self.h.backfill.text(),
                fmt(now)
            )));
        }
        let Some((w, clamped)) = self.plan(trigger, stream, newest, now) else {
            return Err(Outcome::Nothing);
        };
        if clamped {
            let message = format!(
                "the replay{} starts at {}: Konnect keeps audit logs for 7 days, older events cannot be sent again",
                self.of(stream),
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
        Ok(w)
    }

    /// The window to replay at `now` (Konnect's clock), with whether it
    /// was clamped to Konnect's retention; `None` if there is nothing to
    /// replay.
    fn plan(
        &self,
        trigger: &Trigger,
        stream: &Stream,
        newest_stored: Option<Timestamp>,
        now: Timestamp,
    ) -> Option<(Window, bool)> {
        let backfill_floor = match trigger {
            Trigger::Startup => self.h.backfill.floor(now),
            _ => None,
        };
        let floor = min_opt(backfill_floor, self.missing.get(stream).map(|m| m.start));
        // A gap noticed while running, before anything of the stream was
        // stored: what was sent since the listener started.
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

    /// Calls `f` until it succeeds or fails for good (not a transient
    /// failure), waiting with backoff in between: Konnect being away for a
    /// while does not cancel a replay.
    async fn retrying<T, F, Fut>(&self, stream: &Stream, what: &str, f: F) -> Result<T, String>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, KonnectError>>,
    {
        let mut wait = self.h.timing.retry_first;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() => {
                    tracing::info!(error = %e, %stream, wait_ms = wait.as_millis() as u64, "replay: failed to {what}; trying again");
                    self.h.report.update_stream(stream, |r| {
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

/// One stream's job: requested, then watched to its end.
struct Job {
    audit: AuditLogs,
    report: SharedReport,
    gate: DedupGate,
    timing: Timing,
    stream: Stream,
}

impl Job {
    async fn run(self, w: Window, trigger: &'static str) -> Outcome {
        // PUT, waiting out other jobs.
        let mut wait = self.timing.retry_first;
        loop {
            match self
                .audit
                .request_replay(&self.stream, w.start, w.end)
                .await
            {
                Ok(_) => break,
                Err(e) if is_conflict(&e) || e.is_transient() => {
                    let why = if is_conflict(&e) {
                        match self.stream {
                            Stream::Org => {
                                "another replay job is running in the region".to_string()
                            }
                            Stream::Portal(_) => {
                                "another replay job of the Dev Portal is running".to_string()
                            }
                        }
                    } else {
                        e.to_string()
                    };
                    tracing::info!(window = %w, stream = %self.stream, wait_ms = wait.as_millis() as u64, reason = %why, "replay: waiting to request the job");
                    self.report.update_stream(&self.stream, |r| {
                        r.state = Phase::Waiting;
                        r.window = Some(w.text());
                        r.job_status = None;
                        r.last_error = Some(format!(
                            "{why}; trying again in {}",
                            crate::time::format_duration(round_ms(wait))
                        ));
                    });
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.timing.retry_max);
                }
                Err(e) => return Outcome::Refused(w, format!("the replay request failed: {e}")),
            }
        }
        tracing::info!(window = %w, stream = %self.stream, trigger, "replay: job requested");
        self.report.update_stream(&self.stream, |r| {
            r.state = Phase::Replaying;
            r.window = Some(w.text());
            r.job_status = Some(JobStatus::Accepted.to_string());
            r.last_error = None;
        });
        self.watch(w).await
    }

    /// Looks at the job until it ends.
    async fn watch(&self, w: Window) -> Outcome {
        let mut shown = JobStatus::Accepted;
        loop {
            tokio::time::sleep(self.timing.job_poll).await;
            let job: ReplayJob = match self.audit.replay_job(&self.stream).await {
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
                    self.report.update_stream(&self.stream, |r| {
                        r.job_status = Some(JobStatus::Failed.to_string())
                    });
                    return Outcome::Failed(w, "Konnect's replay job failed".into());
                }
                status if status != shown => {
                    tracing::info!(window = %w, stream = %self.stream, status = %status, "replay: job status");
                    let dropped = self.gate.dropped();
                    self.report.update(|r| {
                        r.change_stream(&self.stream, |s| s.job_status = Some(status.to_string()));
                        r.duplicates_dropped = dropped;
                    });
                    shown = status;
                }
                _ => {}
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
