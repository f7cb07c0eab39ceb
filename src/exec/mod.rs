//! `--on <RULE|FILTER> --exec <COMMAND>`: act on records live. Once a
//! record is stored (acknowledged), each pair whose `--on` it matches runs
//! its command once, with the record on the command's standard input.
//!
//! This module owns the flags (what `--on` means, [`On`]; the pairs and
//! their limits, [`ExecSettings`]), each pair's durable progress through
//! the store (`follow`) and the commands' runs (`command`). The listener
//! (`crate::listen`) opens the pairs' cursors at start ([`prepare`]), starts
//! them once it serves ([`start`]), puts [`ExecReport`] in `listener.json`
//! and stops them when it stops ([`ExecRun::stop`], [`ExecRun::wait`]).
//!
//! **What matches.** An `--on` that reads as alert rule names (`locked`,
//! `failed-login`, `denied`, `forbidden`, `server-error`, comma-separated,
//! or `all`) matches what `--alert` keeps ([`crate::query::Rules`]);
//! anything else is a jq filter ([`crate::jq`]) run on the record (a CEF
//! record as its JSON form, as `--jq`), and a record matches when it
//! yields a value that is neither `false` nor `null`.
//!
//! **Once per record.** Each pair follows the store with a cursor of its
//! own (`exec-<hash of --on and --exec>.cursor` beside the store, see
//! [`crate::store::cursor`]), which is only ever saved at the pair's oldest
//! record whose command has not finished, with the records after it whose
//! command finished: a crash runs again only the commands that had not
//! finished (or whose end was not yet saved), and nothing runs twice
//! without one. A pair seen for the first time starts at the end of the
//! store; the cursor of a pair no longer given is removed at start.
//! Per-pair cursors keep a slow or failing command from holding up the
//! other pairs, and make adding or removing a pair a file's presence.

mod command;
mod follow;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::jq::{JqFilter, RecordSkip};
use crate::query::Rules;
use crate::query::view::RecordView;
use crate::record::Record;
use crate::store::Committed;
use crate::store::cursor::{CURSOR_SUFFIX, CommittedView, Start, StoreConsumer};

pub use command::CommandEnv;
use follow::PairFollower;

/// How long a command may run by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// `DEFAULT_TIMEOUT` as the help shows it.
pub const DEFAULT_TIMEOUT_TEXT: &str = "30s";
/// Commands of one pair running at once, by default.
pub const DEFAULT_JOBS: u16 = 4;
/// The most `--exec-jobs` takes.
pub const MAX_JOBS: u16 = 64;
/// The prefix of a pair's cursor name.
const CURSOR_PREFIX: &str = "exec-";

/// What an `--on` matches.
pub enum On {
    /// Alert rule names: what `--alert` keeps.
    Rules(Rules),
    /// A jq filter: a record matches when it yields a truthy value.
    Filter(JqFilter),
}

impl std::fmt::Debug for On {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            On::Rules(r) => f.debug_tuple("Rules").field(r).finish(),
            On::Filter(j) => f.debug_tuple("Filter").field(&j.expr()).finish(),
        }
    }
}

/// A record an `--on` matched: the rules it matched (none for a filter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub rules: Vec<&'static str>,
}

impl On {
    /// Reads an `--on` value: rule names if it reads as rule names, else a
    /// jq filter. The error says what was wrong with both readings when
    /// the value looks like a rule list.
    pub fn parse(text: &str) -> Result<On, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("invalid --on \"\": give an alert rule or a jq filter".into());
        }
        if let Ok(rules) = Rules::parse(&[text]) {
            return Ok(On::Rules(rules));
        }
        JqFilter::compile(text).map(On::Filter).map_err(|e| {
            let quoted = crate::gofmt::quote(text);
            let looks_like_rules = text
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b',' | b' '));
            if looks_like_rules {
                format!(
                    "invalid --on {quoted}: not an alert rule (locked, failed-login, denied, \
                     forbidden, server-error, or all) and not a jq filter: {e}"
                )
            } else {
                format!("invalid --on {quoted}: {e}")
            }
        })
    }

    /// Whether the stored line matches; a filter's error is the line's
    /// [`RecordSkip`] (a warning, no match).
    pub fn matches(&self, line: &[u8]) -> Result<Option<Match>, RecordSkip> {
        let record = Record::from_slice(line);
        match self {
            On::Rules(rules) => {
                // A line that is no audit record matches no rule.
                let Ok(record) = record else { return Ok(None) };
                let view = RecordView::of(&record);
                let matched: Vec<&'static str> = rules
                    .iter()
                    .filter(|r| r.matches(&view))
                    .map(|r| r.name())
                    .collect();
                Ok((!matched.is_empty()).then_some(Match { rules: matched }))
            }
            On::Filter(filter) => {
                let json = match &record {
                    Ok(r) => r.json(),
                    Err(_) => line,
                };
                Ok(filter.matches(json)?.then_some(Match { rules: Vec::new() }))
            }
        }
    }
}

/// One `--on`/`--exec` pair.
#[derive(Debug)]
pub struct ExecPair {
    /// `--on` as given (trimmed).
    pub on_text: String,
    pub on: On,
    /// `--exec` as given, run by `sh -c`.
    pub command: String,
}

impl ExecPair {
    /// The pair's cursor name: `exec-` and 16 hex digits of SHA-256 over
    /// `--on` and `--exec`, so that a changed pair is a new one.
    pub fn cursor_name(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(self.on_text.as_bytes());
        ctx.update(b"\0");
        ctx.update(self.command.as_bytes());
        let digest = ctx.finish();
        let hex: String = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{CURSOR_PREFIX}{hex}")
    }
}

/// The validated `--on`/`--exec` flags.
#[derive(Debug, Clone)]
pub struct ExecSettings {
    pub pairs: Vec<Arc<ExecPair>>,
    /// `--exec-timeout`.
    pub timeout: Duration,
    /// `--exec-jobs`: commands of one pair running at once.
    pub jobs: usize,
}

impl ExecSettings {
    /// Reads the flags: the n-th `--exec` belongs to the n-th `--on`.
    /// `None` without pairs. Errors are the usage error's message.
    pub fn from_flags(
        on: &[String],
        exec: &[String],
        timeout: Option<&str>,
        jobs: Option<u16>,
    ) -> Result<Option<ExecSettings>, String> {
        if on.len() != exec.len() {
            return Err(format!(
                "--on and --exec go in pairs, each --on followed by the --exec it runs \
                 (got {} --on and {} --exec)",
                on.len(),
                exec.len()
            ));
        }
        if on.is_empty() {
            if timeout.is_some() {
                return Err("--exec-timeout requires --on and --exec".into());
            }
            if jobs.is_some() {
                return Err("--exec-jobs requires --on and --exec".into());
            }
            return Ok(None);
        }
        let timeout = match timeout {
            None => DEFAULT_TIMEOUT,
            Some(text) => crate::time::parse_duration(text.trim())
                .ok()
                .filter(|d| d.is_positive())
                .map(|d| d.unsigned_abs())
                .ok_or_else(|| {
                    format!(
                        "invalid --exec-timeout {text:?}: give a duration longer than zero, \
                         e.g. 30s or 2m"
                    )
                })?,
        };
        let jobs = match jobs {
            None => DEFAULT_JOBS,
            Some(n) if (1..=MAX_JOBS).contains(&n) => n,
            Some(n) => {
                return Err(format!(
                    "invalid --exec-jobs {n}: give 1 to {MAX_JOBS} commands at a time"
                ));
            }
        };
        let mut pairs: Vec<Arc<ExecPair>> = Vec::new();
        for (on_text, command) in on.iter().zip(exec) {
            let on_text = on_text.trim().to_owned();
            let on = On::parse(&on_text)?;
            if command.trim().is_empty() {
                return Err(format!(
                    "--exec for --on {} must not be empty",
                    crate::gofmt::quote(&on_text)
                ));
            }
            let pair = ExecPair {
                on_text,
                on,
                command: command.clone(),
            };
            if pairs
                .iter()
                .any(|p| p.on_text == pair.on_text && p.command == pair.command)
            {
                return Err(format!(
                    "--on {} --exec {} is given twice",
                    crate::gofmt::quote(&pair.on_text),
                    crate::gofmt::quote(&pair.command)
                ));
            }
            pairs.push(Arc::new(pair));
        }
        Ok(Some(ExecSettings {
            pairs,
            timeout,
            jobs: usize::from(jobs),
        }))
    }
}

/// `listener.json`'s (and `ps -o json`'s) `exec`: each pair's commands in
/// this run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecReport {
    pub pairs: Vec<PairReport>,
}

/// One pair's counts. `pending`: matched records whose command has not
/// finished (queued or running, those left by an earlier run included);
/// `ran`: commands that exited 0; `failed`: exited otherwise, were killed
/// by a signal or could not start; `timed_out`: killed at `--exec-timeout`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairReport {
    pub on: String,
    pub command: String,
    pub pending: u64,
    pub ran: u64,
    pub failed: u64,
    pub timed_out: u64,
}

/// The pairs with their cursors open, ready to [`start`].
pub struct Prepared {
    settings: ExecSettings,
    followers: Vec<PairFollower>,
}

impl Prepared {
    /// The report before any command ran: every pair, nothing counted.
    pub fn report(&self) -> ExecReport {
        ExecReport {
            pairs: self
                .settings
                .pairs
                .iter()
                .map(|pair| PairReport {
                    on: pair.on_text.clone(),
                    command: pair.command.clone(),
                    ..PairReport::default()
                })
                .collect(),
        }
    }
}

/// Opens each pair's cursor in the store directory `dir` (a new pair at
/// the store's committed end), and removes the cursors of pairs no longer
/// given. All local: the listener does it before anything remote.
pub fn prepare(
    dir: &Path,
    view: &CommittedView,
    settings: &ExecSettings,
) -> Result<Prepared, String> {
    let names: BTreeSet<String> = settings.pairs.iter().map(|p| p.cursor_name()).collect();
    remove_other_cursors(dir, view, &names);
    let mut followers = Vec::new();
    for (index, pair) in settings.pairs.iter().enumerate() {
        let name = pair.cursor_name();
        let (consumer, state) = StoreConsumer::open(dir, &name, Start::End, Some(view.clone()))
            .map_err(|e| {
                format!(
                    "cannot follow the store for --on {} --exec {}: {e}",
                    crate::gofmt::quote(&pair.on_text),
                    crate::gofmt::quote(&pair.command)
                )
            })?;
        // A new pair's cursor (saved by `open` at the end of the store)
        // names the pair, for people and for the warning when it goes.
        if state.is_null() {
            consumer
                .save_at(consumer.position(), follow::initial_state(pair))
                .map_err(|e| {
                    format!(
                        "cannot start --on {}: {e}",
                        crate::gofmt::quote(&pair.on_text)
                    )
                })?;
        }
        followers.push(PairFollower::new(index, pair.clone(), consumer, state));
    }
    Ok(Prepared {
        settings: settings.clone(),
        followers,
    })
}

/// Removes `exec-*.cursor` files of `dir` that are not in `keep`, saying
/// what their pair had not looked at yet.
fn remove_other_cursors(dir: &Path, view: &CommittedView, keep: &BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(name) = file
            .to_str()
            .and_then(|f| f.strip_suffix(CURSOR_SUFFIX))
            .filter(|n| n.starts_with(CURSOR_PREFIX))
        else {
            continue;
        };
        if keep.contains(name) {
            continue;
        }
        let path = entry.path();
        let opened = StoreConsumer::open(dir, name, Start::End, Some(view.clone()));
        let (what, left) = match &opened {
            Ok((consumer, state)) => (
                follow::describe_saved(state),
                consumer.backlog().unwrap_or(0),
            ),
            Err(_) => (name.to_owned(), 0),
        };
        match std::fs::remove_file(&path) {
            Ok(()) if left > 0 => {
                let message = format!(
                    "{what} is no longer given: removed its cursor {}, with {left} stored \
                     record(s) it had not looked at",
                    path.display()
                );
                tracing::warn!("{message}");
                eprintln!("Warning: {message}");
            }
            Ok(()) => {
                tracing::info!(cursor = %path.display(), "{what} is no longer given: removed its cursor");
            }
            Err(e) => {
                tracing::warn!(cursor = %path.display(), error = %e, "cannot remove the cursor of a pair no longer given");
            }
        }
    }
}

/// The pairs at work: their counts, and how to stop them.
pub struct ExecRun {
    counts: ExecCounts,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The pairs' live counts, for `listener.json`.
#[derive(Clone)]
pub struct ExecCounts {
    pairs: Vec<Arc<ExecPair>>,
    counts: Vec<Arc<follow::Counts>>,
}

impl ExecCounts {
    /// The counts so far.
    pub fn report(&self) -> ExecReport {
        ExecReport {
            pairs: self
                .pairs
                .iter()
                .zip(&self.counts)
                .map(|(pair, counts)| counts.report(pair))
                .collect(),
        }
    }
}

/// Starts every pair: pending commands first, then each record the store
/// commits (`committed`). A cancelled `abort` kills the running commands
/// (the second stop request).
pub fn start(
    prepared: Prepared,
    committed: watch::Receiver<Committed>,
    abort: CancellationToken,
) -> ExecRun {
    let stop = CancellationToken::new();
    let env = Arc::new(CommandEnv::from_process());
    let limits = follow::Limits {
        timeout: prepared.settings.timeout,
        jobs: prepared.settings.jobs,
    };
    let mut counts = Vec::new();
    let mut tasks = Vec::new();
    for follower in prepared.followers {
        counts.push(follower.counts());
        tasks.push(tokio::spawn(follower.run(
            committed.clone(),
            stop.clone(),
            abort.clone(),
            env.clone(),
            limits,
        )));
    }
    ExecRun {
        counts: ExecCounts {
            pairs: prepared.settings.pairs,
            counts,
        },
        stop,
        tasks,
    }
}

impl ExecRun {
    /// The live counts.
    pub fn counts(&self) -> ExecCounts {
        self.counts.clone()
    }

    /// Starts no more commands; those running go on until they end or
    /// time out. Records not yet run wait, in the cursors, for the next
    /// start.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits for the running commands to end ([`ExecRun::stop`] first),
    /// and returns the final counts.
    pub async fn wait(self) -> ExecReport {
        self.stop.cancel();
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "an --exec pair's task failed");
            }
        }
        self.counts.report()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn on_reads_rule_names_else_a_jq_filter() {
        assert!(matches!(On::parse("locked").unwrap(), On::Rules(r) if r.iter().count() == 1));
        assert!(
            matches!(On::parse(" locked, Denied ").unwrap(), On::Rules(r) if r.iter().count() == 2)
        );
        assert!(matches!(On::parse("all").unwrap(), On::Rules(r) if r == Rules::all()));
        assert!(matches!(
            On::parse(".severity >= 6").unwrap(),
            On::Filter(_)
        ));
        let typo = On::parse("lockd").unwrap_err();
        assert!(
            typo.starts_with("invalid --on \"lockd\": not an alert rule (locked, failed-login"),
            "{typo}"
        );
        assert!(typo.contains("failed to compile jq expression"), "{typo}");
        let bad = On::parse(".a ==").unwrap_err();
        assert!(
            bad.starts_with("invalid --on \".a ==\": invalid jq expression"),
            "{bad}"
        );
        assert!(On::parse("  ").is_err());
    }

    #[test]
    fn rules_and_filters_match_records() {
        let locked = r#"{"event_class_id":"AUTHENTICATION_TYPE_BASIC","name":"AUTHENTICATION_OUTCOME_LOCKED","severity":6,"success":"false","event_ts":"2026-08-23T14:00:00Z"}"#;
        let ok = r#"{"event_class_id":"AUTHENTICATION_TYPE_BASIC","name":"AUTHENTICATION_OUTCOME_SUCCESS","severity":0,"success":"true","event_ts":"2026-08-23T14:00:00Z"}"#;
        let on = On::parse("locked,failed-login,denied").unwrap();
        assert_eq!(
            on.matches(locked.as_bytes()).unwrap(),
            Some(Match {
                rules: vec!["locked", "failed-login"]
            })
        );
        assert_eq!(on.matches(ok.as_bytes()).unwrap(), None);
        assert_eq!(on.matches(b"not a record").unwrap(), None);
        let filter = On::parse(".severity >= 6").unwrap();
        assert_eq!(
            filter.matches(locked.as_bytes()).unwrap(),
            Some(Match { rules: vec![] })
        );
        assert_eq!(filter.matches(ok.as_bytes()).unwrap(), None);
        assert!(filter.matches(b"not json").is_err());
        // CEF is filtered as its JSON form.
        let cef = "2026-08-23T14:00:00Z konghq.com CEF:0|KongInc|Konnect|1.0|AUTHENTICATION_TYPE_BASIC|AUTHENTICATION_OUTCOME_LOCKED|6|rt=1 success=false sig=x";
        assert!(filter.matches(cef.as_bytes()).unwrap().is_some());
        assert!(on.matches(cef.as_bytes()).unwrap().is_some());
    }

    #[test]
    fn flags_pair_up_and_are_checked() {
        let ok = ExecSettings::from_flags(
            &strings(&["locked", ".x == 1"]),
            &strings(&["echo a", "echo b"]),
            Some("1s"),
            Some(2),
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok.pairs.len(), 2);
        assert_eq!(ok.timeout, Duration::from_secs(1));
        assert_eq!(ok.jobs, 2);
        assert_ne!(ok.pairs[0].cursor_name(), ok.pairs[1].cursor_name());
        assert!(ok.pairs[0].cursor_name().starts_with("exec-"));
        assert_eq!(ok.pairs[0].cursor_name().len(), "exec-".len() + 16);
        let defaults =
            ExecSettings::from_flags(&strings(&["all"]), &strings(&["true"]), None, None)
                .unwrap()
                .unwrap();
        assert_eq!(defaults.timeout, DEFAULT_TIMEOUT);
        assert_eq!(defaults.jobs, usize::from(DEFAULT_JOBS));
        assert!(
            ExecSettings::from_flags(&[], &[], None, None)
                .unwrap()
                .is_none()
        );

        let err = |on: &[&str], exec: &[&str], t: Option<&str>, j: Option<u16>| {
            ExecSettings::from_flags(&strings(on), &strings(exec), t, j).unwrap_err()
        };
        assert!(err(&["locked"], &[], None, None).contains("got 1 --on and 0 --exec"));
        assert!(err(&[], &["x"], None, None).contains("go in pairs"));
        assert_eq!(
            err(&[], &[], Some("1s"), None),
            "--exec-timeout requires --on and --exec"
        );
        assert_eq!(
            err(&[], &[], None, Some(2)),
            "--exec-jobs requires --on and --exec"
        );
        assert!(err(&["locked"], &["x"], Some("0"), None).starts_with("invalid --exec-timeout"));
        assert!(err(&["locked"], &["x"], Some("soon"), None).starts_with("invalid --exec-timeout"));
        assert!(err(&["locked"], &["x"], None, Some(0)).starts_with("invalid --exec-jobs 0"));
        assert!(err(&["locked"], &["x"], None, Some(65)).starts_with("invalid --exec-jobs 65"));
        assert!(err(&["locked"], &[" "], None, None).contains("must not be empty"));
        assert!(err(&["locked", "locked"], &["x", "x"], None, None).contains("given twice"));
    }
}
