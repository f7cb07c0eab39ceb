//! One `--on`/`--exec` pair at work: reads the store from its cursor,
//! queues the records its `--on` matches, runs their commands at most
//! `--exec-jobs` at a time, in stored order, and saves its cursor at its
//! oldest record whose command has not finished, with the positions of the
//! records after it whose command finished (`done`), as soon as a command
//! ends (see "Reading ahead, saving behind" in [`crate::store::cursor`]).
//!
//! So after a crash the next start runs again exactly the commands whose
//! end was not saved: those running at the kill, and any that ended in the
//! moment before it. Without a crash each matched record's command runs
//! once: a stop lets the running commands end (up to their timeout) and
//! leaves the queued records to the next start, the cursor saved before
//! them. Reading stops while [`QUEUE_LIMIT`] records are queued or
//! running, so a slow command holds back only its own pair, never the
//! listener (records wait in the store, not in memory).

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::command::{self, CommandEnv, Finished, Outcome};
use super::{ExecPair, PairReport};
use crate::record::{Format, Record};
use crate::store::Committed;
use crate::store::cursor::{Handler, Position, Records, Step, StoreConsumer};

/// Records of one pair queued or running at most; reading waits beyond.
const QUEUE_LIMIT: usize = 256;
/// How often reading progress alone (records that matched nothing) is
/// saved; a command's end is saved at once.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// A look at the store even without news of a commit (a failed read is
/// retried then).
const RESCAN_EVERY: Duration = Duration::from_secs(1);

/// `--exec-timeout` and `--exec-jobs`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub jobs: usize,
}

/// A pair's counts, shared with the listener's state refresher.
#[derive(Debug, Default)]
pub struct Counts {
    pending: AtomicU64,
    ran: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
}

impl Counts {
    pub fn report(&self, pair: &ExecPair) -> PairReport {
        PairReport {
            on: pair.on_text.clone(),
            command: pair.command.clone(),
            pending: self.pending.load(Ordering::Relaxed),
            ran: self.ran.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
        }
    }
}

/// The state saved with a pair's cursor.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    /// The pair, for people reading the file.
    #[serde(default)]
    on: String,
    #[serde(default)]
    command: String,
    /// Records after the cursor whose command finished.
    #[serde(default)]
    done: Vec<Position>,
}

/// The state of a pair that has finished nothing yet.
pub fn initial_state(pair: &ExecPair) -> serde_json::Value {
    serde_json::to_value(Saved {
        on: pair.on_text.clone(),
        command: pair.command.clone(),
        done: Vec::new(),
    })
    .expect("a pair's state serialises")
}

/// `--on X --exec Y` of a saved cursor state, for messages.
pub fn describe_saved(state: &serde_json::Value) -> String {
    match serde_json::from_value::<Saved>(state.clone()) {
        Ok(s) if !s.on.is_empty() => format!(
            "--on {} --exec {}",
            crate::gofmt::quote(&s.on),
            crate::gofmt::quote(&s.command)
        ),
        _ => "an --on/--exec pair".into(),
    }
}

/// A matched record waiting for, or running, its command.
struct Job {
    at: Position,
    line: Vec<u8>,
    rules: Vec<&'static str>,
    format: &'static str,
    event_type: &'static str,
    event_ts: String,
}

impl Job {
    /// `KONGCTL_RECORD_ID`: the record's place in the store, the same
    /// when its command runs again after a crash.
    fn id(&self) -> String {
        format!("{}:{}", self.at.seq, self.at.offset)
    }

    /// The variables describing the record (README, "Acting on records").
    fn vars(&self, pair: &ExecPair) -> Vec<(&'static str, String)> {
        vec![
            ("KONGCTL_ON", pair.on_text.clone()),
            ("KONGCTL_RULE", self.rules.join(",")),
            ("KONGCTL_RECORD_ID", self.id()),
            ("KONGCTL_RECORD_FORMAT", self.format.to_owned()),
            ("KONGCTL_EVENT_TYPE", self.event_type.to_owned()),
            ("KONGCTL_EVENT_TS", self.event_ts.clone()),
        ]
    }
}

/// One pair: its cursor, its queue, what runs and what finished.
pub struct PairFollower {
    index: usize,
    pair: Arc<ExecPair>,
    /// `None` only while a blocking read or save has it.
    consumer: Option<StoreConsumer>,
    /// Where reading goes on.
    read_at: Position,
    queue: VecDeque<Job>,
    running: BTreeSet<Position>,
    /// Records whose command was killed unfinished (an abandoned stop):
    /// left to the next start, the cursor saved before them.
    left: BTreeSet<Position>,
    /// Finished records at or after the oldest unfinished one.
    done: BTreeSet<Position>,
    counts: Arc<Counts>,
    /// What the cursor file holds.
    saved: Option<(Position, Vec<Position>)>,
    last_save: Instant,
}

impl PairFollower {
    pub fn new(
        index: usize,
        pair: Arc<ExecPair>,
        consumer: StoreConsumer,
        state: serde_json::Value,
    ) -> PairFollower {
        let saved: Saved = serde_json::from_value(state).unwrap_or_default();
        let read_at = consumer.position();
        PairFollower {
            index,
            pair,
            consumer: Some(consumer),
            read_at,
            queue: VecDeque::new(),
            running: BTreeSet::new(),
            left: BTreeSet::new(),
            done: saved.done.iter().copied().collect(),
            counts: Arc::new(Counts::default()),
            saved: Some((read_at, saved.done)),
            last_save: Instant::now(),
        }
    }

    pub fn counts(&self) -> Arc<Counts> {
        self.counts.clone()
    }

    /// Runs the pair until `stop` (then until its running commands end);
    /// `abort` kills them.
    pub async fn run(
        mut self,
        mut committed: watch::Receiver<Committed>,
        stop: CancellationToken,
        abort: CancellationToken,
        env: Arc<CommandEnv>,
        limits: Limits,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Position, Outcome)>();
        let mut more = true;
        let mut store_open = true;
        loop {
            let stopping = stop.is_cancelled();
            if !stopping {
                if more && self.has_room() {
                    more = self.read().await;
                }
                self.launch(&tx, &env, limits, &abort);
            }
            self.counts.pending.store(
                (self.queue.len() + self.running.len() + self.left.len()) as u64,
                Ordering::Relaxed,
            );
            let finished = stopping && self.running.is_empty();
            if self.finished_unsaved() || finished || self.last_save.elapsed() >= SAVE_EVERY {
                self.save().await;
            }
            if finished {
                return;
            }
            if !stopping && more && self.has_room() {
                continue;
            }
            let progress_due = self.last_save + SAVE_EVERY;
            tokio::select! {
                Some(done) = rx.recv() => {
                    self.finish(done);
                    while let Ok(done) = rx.try_recv() {
                        self.finish(done);
                    }
                    more = true;
                }
                changed = committed.changed(), if store_open && !stopping => {
                    store_open = changed.is_ok();
                    more = true;
                }
                _ = stop.cancelled(), if !stopping => {}
                _ = tokio::time::sleep(RESCAN_EVERY), if !stopping => more = true,
                _ = tokio::time::sleep_until(progress_due), if Some(self.low_water()) != self.saved_at() => {}
            }
        }
    }

    fn has_room(&self) -> bool {
        self.queue.len() + self.running.len() < QUEUE_LIMIT
    }

    /// Reads one batch; whether there may be more to read now.
    async fn read(&mut self) -> bool {
        let mut consumer = self.consumer.take().expect("the consumer is home");
        let pair = self.pair.clone();
        let done = self.done.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut matcher = Matcher {
                pair: &pair,
                done: &done,
                jobs: Vec::new(),
            };
            let step = consumer.step_unsaved(&mut matcher);
            (consumer, matcher.jobs, step.map_err(|e| e.to_string()))
        })
        .await;
        let (consumer, jobs, step) = match read {
            Ok(read) => read,
            Err(e) => panic!("an --exec read panicked: {e}"),
        };
        self.read_at = consumer.position();
        self.consumer = Some(consumer);
        self.queue.extend(jobs);
        match step {
            Ok(Step::Delivered(_)) => true,
            Ok(Step::CaughtUp) => false,
            Err(e) => {
                tracing::warn!(pair = self.index + 1, error = %e, "--exec cannot read the store; trying again");
                false
            }
        }
    }

    /// Starts queued commands while fewer than `--exec-jobs` run.
    fn launch(
        &mut self,
        tx: &mpsc::UnboundedSender<(Position, Outcome)>,
        env: &Arc<CommandEnv>,
        limits: Limits,
        abort: &CancellationToken,
    ) {
        while self.running.len() < limits.jobs {
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            self.running.insert(job.at);
            let (pair, tx, env, abort) =
                (self.pair.clone(), tx.clone(), env.clone(), abort.clone());
            tokio::spawn(async move {
                let vars = job.vars(&pair);
                let finished = command::run(
                    &pair.command,
                    &job.line,
                    &env,
                    &vars,
                    limits.timeout,
                    &abort,
                )
                .await;
                log(&pair, &job, &finished, limits.timeout);
                let _ = tx.send((job.at, finished.outcome));
            });
        }
    }

    /// Counts a command's end; an abandoned one is left to the next start.
    fn finish(&mut self, (at, outcome): (Position, Outcome)) {
        self.running.remove(&at);
        let count = match outcome {
            Outcome::Succeeded => &self.counts.ran,
            Outcome::Failed(_) => &self.counts.failed,
            Outcome::TimedOut => &self.counts.timed_out,
            Outcome::Abandoned => {
                self.left.insert(at);
                return;
            }
        };
        count.fetch_add(1, Ordering::Relaxed);
        self.done.insert(at);
    }

    /// The oldest record whose command has not finished, else where
    /// reading goes on: where the cursor is saved.
    fn low_water(&self) -> Position {
        let mut low = self.read_at;
        for first in [self.running.first(), self.left.first()]
            .into_iter()
            .flatten()
        {
            low = low.min(*first);
        }
        if let Some(job) = self.queue.front() {
            low = low.min(job.at);
        }
        low
    }

    fn saved_at(&self) -> Option<Position> {
        self.saved.as_ref().map(|(at, _)| *at)
    }

    /// Whether a command's end is not in the cursor file yet.
    fn finished_unsaved(&self) -> bool {
        let low = self.low_water();
        let saved_done = self
            .saved
            .as_ref()
            .map(|(_, d)| d.as_slice())
            .unwrap_or(&[]);
        self.done
            .range(low..)
            .any(|p| saved_done.binary_search(p).is_err())
    }

    /// Saves the cursor at the low-water mark with what finished beyond,
    /// unless the file already says so.
    async fn save(&mut self) {
        let low = self.low_water();
        self.done = self.done.split_off(&low);
        let done: Vec<Position> = self.done.iter().copied().collect();
        self.last_save = Instant::now();
        if self.saved.as_ref() == Some(&(low, done.clone())) {
            return;
        }
        let state = serde_json::to_value(Saved {
            on: self.pair.on_text.clone(),
            command: self.pair.command.clone(),
            done: done.clone(),
        })
        .expect("a pair's state serialises");
        let consumer = self.consumer.take().expect("the consumer is home");
        let (consumer, result) = tokio::task::spawn_blocking(move || {
            let r = consumer.save_at(low, state);
            (consumer, r)
        })
        .await
        .unwrap_or_else(|e| panic!("an --exec save panicked: {e}"));
        self.consumer = Some(consumer);
        match result {
            Ok(()) => self.saved = Some((low, done)),
            Err(e) => {
                tracing::warn!(pair = self.index + 1, error = %e, "--exec cannot save its cursor; trying again")
            }
        }
    }
}

/// The cursor's handler: queues the records the pair's `--on` matches.
struct Matcher<'a> {
    pair: &'a ExecPair,
    /// Records whose command finished before a restart.
    done: &'a BTreeSet<Position>,
    jobs: Vec<Job>,
}

impl Handler for Matcher<'_> {
    type Error = std::convert::Infallible;

    fn handle(&mut self, records: &Records<'_>) -> Result<(), Self::Error> {
        for (at, line) in records.iter_at() {
            if self.done.contains(&at) {
                continue;
            }
            let matched = match self.pair.on.matches(line) {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(skip) => {
                    let message = format!(
                        "--on {}: record {}:{} is no match: {skip}",
                        crate::gofmt::quote(&self.pair.on_text),
                        at.seq,
                        at.offset
                    );
                    tracing::warn!("{message}");
                    eprintln!("Warning: {message}");
                    continue;
                }
            };
            let record = Record::from_slice(line).ok();
            self.jobs.push(Job {
                at,
                line: line.to_vec(),
                rules: matched.rules,
                format: record.as_ref().map_or("", |r| format_name(r.format())),
                event_type: record
                    .as_ref()
                    .and_then(Record::kind)
                    .map_or("", |k| k.as_str()),
                event_ts: record
                    .as_ref()
                    .and_then(Record::time)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            });
        }
        Ok(())
    }
}

/// `KONGCTL_RECORD_FORMAT`.
fn format_name(format: Format) -> &'static str {
    match format {
        Format::Json => "json",
        Format::Cps => "cps",
        Format::Cef => "cef",
        Format::Pull => "pull",
        Format::OtherJson => "other",
    }
}

/// Logs a command's end: success at info, anything else at warn and on
/// stderr (the log file of a detached listener).
fn log(pair: &ExecPair, job: &Job, finished: &Finished, timeout: Duration) {
    let record = job.id();
    let duration_ms = finished.duration.as_millis() as u64;
    let stderr = String::from_utf8_lossy(&finished.stderr);
    let stderr = stderr.trim_end();
    let what = format!(
        "--exec {} for record {record} (--on {})",
        crate::gofmt::quote(&pair.command),
        crate::gofmt::quote(&pair.on_text)
    );
    let tail = if stderr.is_empty() {
        String::new()
    } else {
        format!("; stderr: {}", crate::gofmt::quote(stderr))
    };
    let problem = match &finished.outcome {
        Outcome::Succeeded => {
            tracing::info!(
                on = %pair.on_text,
                command = %pair.command,
                record = %record,
                status = 0,
                duration_ms,
                stderr = %stderr,
                "--exec command finished"
            );
            return;
        }
        Outcome::Failed(why) => format!("{what} failed after {duration_ms} ms: {why}{tail}"),
        Outcome::TimedOut => format!(
            "{what} was killed (its process group) at --exec-timeout {}{tail}",
            crate::time::format_duration(timeout)
        ),
        Outcome::Abandoned => {
            tracing::warn!(
                "{what} was killed: the stop was abandoned; it runs again at the next start{tail}"
            );
            return;
        }
    };
    tracing::warn!("{problem}");
    eprintln!("Warning: {problem}");
}

#[cfg(test)]
mod tests {
    use super::super::{ExecSettings, prepare, start};
    use super::*;
    use crate::store::cursor::CommittedView;

    fn locked(n: usize) -> String {
        format!(
            r#"{{"event_class_id":"AUTHENTICATION_TYPE_BASIC","name":"AUTHENTICATION_OUTCOME_LOCKED","severity":6,"n":{n}}}"#
        ) + "\n"
    }

    fn settings(command: &str, jobs: u16) -> ExecSettings {
        ExecSettings::from_flags(&["locked".into()], &[command.into()], None, Some(jobs))
            .unwrap()
            .unwrap()
    }

    /// The cursor file of the only pair in `dir`.
    fn cursor(dir: &std::path::Path) -> serde_json::Value {
        let file = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "cursor"))
            .unwrap();
        serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
    }

    async fn until(what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Records that finish out of order: the cursor waits at the slow one
    /// with the others in `done`; a restart runs the slow one only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_cursor_waits_at_the_oldest_unfinished_record() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let out = d.join("out");
        std::fs::create_dir(&out).unwrap();
        let text: String = (0..3).map(locked).collect();
        std::fs::write(d.join("events.jsonl"), &text).unwrap();
        let (tx, rx) = watch::channel(Committed {
            generation: 0,
            offset: 0,
        });
        let view = CommittedView {
            first_seq: 1,
            committed: rx.clone(),
        };
        // While `slow` exists, record 0 waits (until killed); the others
        // end at once.
        let slow = d.join("slow");
        std::fs::write(&slow, "").unwrap();
        let command = format!(
            r#"id=$(printf %s "$KONGCTL_RECORD_ID" | tr : _); if [ "$KONGCTL_RECORD_ID" = 1:0 ] && [ -f {} ]; then sleep 600; fi; : > {}/$id"#,
            slow.display(),
            out.display()
        );
        let s = settings(&command, 3);
        let prepared = prepare(d, &view, &s).unwrap();
        // Stored after the pair started.
        tx.send_replace(Committed {
            generation: 0,
            offset: text.len() as u64,
        });
        let abort = CancellationToken::new();
        let run = start(prepared, rx.clone(), abort.clone());
        let line = locked(0).len() as u64;
        until("records 1 and 2 saved as done", || {
            let c = cursor(d);
            c["seq"] == 1
                && c["offset"] == 0
                && c["state"]["done"]
                    == serde_json::json!([
                        {"seq": 1, "offset": line},
                        {"seq": 1, "offset": 2 * line}
                    ])
        })
        .await;
        let report = run.counts().report();
        assert_eq!((report.pairs[0].ran, report.pairs[0].pending), (2, 1));
        // A stop abandoned: the slow one is killed and stays to do.
        run.stop();
        abort.cancel();
        let report = run.wait().await;
        assert_eq!(report.pairs[0].ran, 2);
        assert_eq!(report.pairs[0].pending, 1);
        assert_eq!(cursor(d)["offset"], 0);

        // The next start runs record 0 only (and fast this time).
        std::fs::remove_file(&slow).unwrap();
        std::fs::remove_dir_all(&out).unwrap();
        std::fs::create_dir(&out).unwrap();
        let prepared = prepare(d, &view, &s).unwrap();
        let run = start(prepared, rx, CancellationToken::new());
        until("record 0 ran", || out.join("1_0").exists()).await;
        until("saved", || {
            let c = cursor(d);
            c["offset"] == 3 * line && c["state"]["done"] == serde_json::json!([])
        })
        .await;
        let report = run.wait().await;
        assert_eq!((report.pairs[0].ran, report.pairs[0].pending), (1, 0));
        let ran: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(ran, ["1_0"]);
    }
}
