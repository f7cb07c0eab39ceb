//! `ps stop <pid>` and `ps stop --all`.
//!
//! A running listener gets SIGTERM (never SIGKILL: it must delete its
//! Konnect webhook and destination on the way out) and counts as stopped
//! only once it is gone, after which its record is removed. A record whose
//! process has exited, or whose pid now belongs to a process started at
//! another time, is pruned without signalling anything.

use super::procfs::{self, Status};
use super::record::{self as records, ProcessRecord};
use crate::gofmt;
use crate::output::columns::Column;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;
use std::io;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// How long `--timeout` waits by default, and when it is zero: a stopping
/// listener drains its connections (up to 10 s), then gives its Konnect
/// cleanup 60 s; 90 s covers both, so that `stopped` means the cleanup is
/// over. (The original waited 15 s, often less than its cleanup.)
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);

/// `DEFAULT_TIMEOUT` as `--timeout` shows it.
pub const DEFAULT_TIMEOUT_TEXT: &str = "1m30s";

/// How often a stopping process is checked.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Which records to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopTarget {
    Pid(i32),
    All,
}

/// A `ps stop` that cannot start, in the original's words.
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error("do not provide a PID when using --all")]
    PidWithAll,
    #[error("provide a process PID or use --all")]
    NoTarget,
    /// Holds the argument as given.
    #[error("invalid PID {}", gofmt::quote(.0))]
    InvalidPid(String),
    #[error("no detached process record found for PID {0}")]
    NoRecord(i64),
    /// The process records could not be read.
    #[error(transparent)]
    Records(#[from] io::Error),
}

/// Reads the arguments of `ps stop` as the original did: `--all` and no pid,
/// or exactly one pid, a positive integer.
pub fn resolve_target(args: &[String], all: bool) -> Result<StopTarget, StopError> {
    match (all, args) {
        (true, []) => Ok(StopTarget::All),
        (true, _) => Err(StopError::PidWithAll),
        (false, [pid]) => match pid.parse::<i64>() {
            Ok(n) if n > 0 => i32::try_from(n)
                .map(StopTarget::Pid)
                .map_err(|_| StopError::NoRecord(n)),
            _ => Err(StopError::InvalidPid(pid.clone())),
        },
        (false, _) => Err(StopError::NoTarget),
    }
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StopResult {
    pub pid: i32,
    pub kind: String,
    /// `stopped`, `pruned` or `inspect`; `stop` or `prune` when that failed.
    pub action: &'static str,
    pub success: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Sent SIGTERM but still running when `--timeout` ran out (probably
    /// still deleting its Konnect webhook and destination).
    #[serde(skip)]
    pub still_running: bool,
}

/// Stops the targeted processes one after the other, newest first.
///
/// `timeout` bounds the wait for each process after SIGTERM; zero means
/// [`DEFAULT_TIMEOUT`], as in the original.
pub async fn stop(
    processes_dir: &Path,
    target: StopTarget,
    timeout: Duration,
) -> Result<Vec<StopResult>, StopError> {
    stop_with(processes_dir, target, timeout, &|_| {}).await
}

/// [`stop`], calling `waiting` with a sentence saying what it waits for
/// each time it starts waiting for a signalled process (for a terminal).
pub async fn stop_with(
    processes_dir: &Path,
    target: StopTarget,
    timeout: Duration,
    waiting: &dyn Fn(&str),
) -> Result<Vec<StopResult>, StopError> {
    let mut targets = records::read_all(processes_dir)?;
    if let StopTarget::Pid(pid) = target {
        targets.retain(|(record, _)| record.pid == pid);
        if targets.is_empty() {
            return Err(StopError::NoRecord(pid.into()));
        }
    }
    let timeout = if timeout.is_zero() {
        DEFAULT_TIMEOUT
    } else {
        timeout
    };
    let mut results = Vec::with_capacity(targets.len());
    for (record, path) in &targets {
        results.push(stop_one(record, path, timeout, waiting).await);
    }
    Ok(results)
}

/// What `ps stop` waits for after signalling `record`'s process.
pub fn waiting_text(record: &ProcessRecord, timeout: Duration) -> String {
    let what = match &record.destination_id {
        Some(id) => format!("release the audit-log webhook, delete destination {id}"),
        None => "release the audit-log webhook, delete its destination".to_string(),
    };
    format!(
        "Waiting up to {} for pid {} to finish its Konnect cleanup ({what}); \
         Ctrl+C stops the waiting, not the cleanup",
        gofmt::duration(timeout),
        record.pid
    )
}

async fn stop_one(
    record: &ProcessRecord,
    path: &Path,
    timeout: Duration,
    waiting: &dyn Fn(&str),
) -> StopResult {
    let result = |action, success, detail: String| StopResult {
        pid: record.pid,
        kind: record.kind.clone(),
        action,
        success,
        detail,
        still_running: false,
    };
    let remove = || {
        records::remove(path)
            .map_err(|e| format!("remove {}: {}", path.display(), procfs::io_error_text(&e)))
    };
    // Checked right before acting, so that the signal goes to the process
    // the record was written for.
    let inspection = procfs::inspect(record);
    match inspection.status {
        Status::Running => {
            match terminate(record, timeout, waiting).await {
                Ok(()) => {}
                Err(Terminate::TimedOut(detail)) => {
                    return StopResult {
                        still_running: true,
                        ..result("stop", false, detail)
                    };
                }
                Err(Terminate::Failed(detail)) => return result("stop", false, detail),
            }
            match remove() {
                Ok(()) => result(
                    "stopped",
                    true,
                    "sent SIGTERM and removed process record".into(),
                ),
                Err(e) => result(
                    "stop",
                    false,
                    format!("process stopped but failed to remove record: {e}"),
                ),
            }
        }
        Status::Exited | Status::Stale => match remove() {
            Ok(()) => result("pruned", true, "removed stale process record".into()),
            Err(e) => result(
                "prune",
                false,
                format!("failed to remove stale record: {e}"),
            ),
        },
        Status::Unknown => result(
            "inspect",
            false,
            inspection
                .check_error
                .unwrap_or_else(|| "unable to determine process state".into()),
        ),
    }
}

/// Why [`terminate`] failed; each holds the result's detail.
enum Terminate {
    /// The process was signalled and is still running.
    TimedOut(String),
    /// It could not be signalled or checked.
    Failed(String),
}

/// Sends SIGTERM and waits until the process is gone or `timeout` passed.
async fn terminate(
    record: &ProcessRecord,
    timeout: Duration,
    waiting: &dyn Fn(&str),
) -> Result<(), Terminate> {
    match kill(Pid::from_raw(record.pid), Signal::SIGTERM) {
        Ok(()) => {}
        Err(Errno::ESRCH) => return Ok(()),
        Err(e) => return Err(Terminate::Failed(procfs::errno_text(e))),
    }
    waiting(&waiting_text(record, timeout));
    let deadline = Instant::now() + timeout;
    loop {
        match procfs::is_gone(record) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(Terminate::Failed(procfs::errno_text(e))),
        }
        if Instant::now() >= deadline {
            return Err(Terminate::TimedOut(format!(
                "process {} did not exit within {}",
                record.pid,
                gofmt::duration(timeout)
            )));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Why a `ps stop` failed, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopFailures {
    /// The original's text: one `pid <n>: <detail>` line per failure.
    pub message: String,
    /// When a process outlived `--timeout`: it may still be cleaning up.
    pub hint: Option<String>,
}

/// The error of a `ps stop` with failures, or `None` when all succeeded.
/// The caller prints it as any error (`Error: ` first, then the hint) after
/// the results, and exits 1.
pub fn failures(results: &[StopResult]) -> Option<StopFailures> {
    let lines: Vec<String> = results
        .iter()
        .filter(|r| !r.success)
        .map(|r| format!("pid {}: {}", r.pid, r.detail))
        .collect();
    if lines.is_empty() {
        return None;
    }
    let running: Vec<String> = results
        .iter()
        .filter(|r| r.still_running)
        .map(|r| r.pid.to_string())
        .collect();
    // Only a timeout shorter than the default can end before a listener's
    // cleanup (up to 60s after draining) does. Another SIGTERM (another `ps stop`) makes it abandon
    // that cleanup, hence "check first".
    let hint = match running.as_slice() {
        [] => None,
        [pid] => Some(format!(
            "process {pid} is still running and may be finishing its Konnect cleanup \
             (up to 60s); check with kongctl ps, and if it is still running after that, \
             retry with a longer --timeout (kongctl ps stop {pid} --timeout 3m). \
             Stopping it again during its cleanup abandons the cleanup."
        )),
        pids => Some(format!(
            "processes {} are still running and may be finishing their Konnect cleanup \
             (up to 60s); check with kongctl ps, and if they are still running after that, \
             retry with a longer --timeout (kongctl ps stop <PID> --timeout 3m). \
             Stopping them again during their cleanup abandons the cleanup.",
            pids.join(", ")
        )),
    };
    Some(StopFailures {
        message: lines.join("\n"),
        hint,
    })
}

/// The original's text: `No detached kongctl processes matched.` or a table
/// `PID  ACTION  SUCCESS` fitted to `width` columns.
pub fn render_text(results: &[StopResult], width: usize) -> String {
    if results.is_empty() {
        return "No detached kongctl processes matched.\n".into();
    }
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.pid.to_string(),
                r.action.to_owned(),
                r.success.to_string(),
            ]
        })
        .collect();
    crate::output::table::render(&["PID", "ACTION", "SUCCESS"], &rows, width)
}

/// `--columns`: the selected columns of each result as `-o json` shows it,
/// fitted to `width` columns; the header line alone when there are none.
pub fn render_columns(results: &[StopResult], columns: &[Column], width: usize) -> String {
    let items = serde_json::to_value(results).expect("ps output serializes to JSON");
    crate::output::columns::render(&items, columns, width)
}

/// A JSON array with 2-space indentation (`[]` when empty) and a newline.
pub fn render_json(results: &[StopResult]) -> String {
    super::to_json(results)
}

/// A YAML sequence, keys sorted (`[]` when empty).
pub fn render_yaml(results: &[StopResult]) -> String {
    super::to_sorted_yaml(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ps::procfs::start_time_ticks;
    use crate::ps::tests::strings;
    use std::process::{Child, Command};

    #[test]
    fn targets_are_resolved_as_the_original() {
        // The original's TestResolveTargets cases, and its texts.
        assert_eq!(resolve_target(&[], true).unwrap(), StopTarget::All);
        assert_eq!(
            resolve_target(&strings(&["42"]), false).unwrap(),
            StopTarget::Pid(42)
        );
        assert_eq!(
            resolve_target(&strings(&["+42"]), false).unwrap(),
            StopTarget::Pid(42)
        );
        let err = |args: &[&str], all| resolve_target(&strings(args), all).unwrap_err().to_string();
        assert_eq!(err(&["42"], true), "do not provide a PID when using --all");
        assert_eq!(err(&[], false), "provide a process PID or use --all");
        assert_eq!(
            err(&["1", "2"], false),
            "provide a process PID or use --all"
        );
        assert_eq!(err(&["x"], false), r#"invalid PID "x""#);
        assert_eq!(err(&["0"], false), r#"invalid PID "0""#);
        assert_eq!(err(&["-3"], false), r#"invalid PID "-3""#);
        assert_eq!(err(&["\t"], false), r#"invalid PID "\t""#);
        assert_eq!(
            err(&["99999999999"], false),
            "no detached process record found for PID 99999999999"
        );
    }

    /// A `sleep 30` child, killed and reaped when dropped.
    struct Victim(Child);

    impl Victim {
        fn spawn() -> Victim {
            Victim(Command::new("sleep").arg("30").spawn().unwrap())
        }

        fn pid(&self) -> i32 {
            self.0.id() as i32
        }

        fn is_alive(&mut self) -> bool {
            self.0.try_wait().unwrap().is_none()
        }
    }

    impl Drop for Victim {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn record_for(pid: i32, ticks: Option<u64>) -> ProcessRecord {
        let mut record = ProcessRecord::listener(pid);
        record.start_time_ticks = ticks;
        record
    }

    #[tokio::test]
    async fn a_running_listener_is_sent_sigterm_and_its_record_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let mut victim = Victim::spawn();
        let ticks = start_time_ticks(victim.pid()).unwrap();
        let path = records::write(tmp.path(), &record_for(victim.pid(), Some(ticks))).unwrap();

        let results = stop(
            tmp.path(),
            StopTarget::Pid(victim.pid()),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(
            results,
            [StopResult {
                pid: victim.pid(),
                kind: "konnect.audit-logs.listen".into(),
                action: "stopped",
                success: true,
                detail: "sent SIGTERM and removed process record".into(),
                still_running: false,
            }]
        );
        assert!(!path.exists());
        // It was a zombie until now; its wait status tells it was SIGTERM.
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(victim.0.wait().unwrap().signal(), Some(libc::SIGTERM));
        assert_eq!(failures(&results), None);
    }

    #[tokio::test]
    async fn a_pid_with_other_start_ticks_is_pruned_never_signalled() {
        let tmp = tempfile::tempdir().unwrap();
        let mut victim = Victim::spawn();
        let ticks = start_time_ticks(victim.pid()).unwrap();
        let path = records::write(tmp.path(), &record_for(victim.pid(), Some(ticks + 7))).unwrap();

        let results = stop(tmp.path(), StopTarget::All, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(results[0].action, "pruned");
        assert_eq!(results[0].detail, "removed stale process record");
        assert!(!path.exists());
        std::thread::sleep(Duration::from_millis(200));
        assert!(victim.is_alive(), "the other process was signalled");
    }

    #[tokio::test]
    async fn exited_records_are_pruned_and_a_missing_pid_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        records::write(tmp.path(), &record_for(pid, None)).unwrap();

        let err = stop(tmp.path(), StopTarget::Pid(pid + 1), DEFAULT_TIMEOUT)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no detached process record found for PID {}", pid + 1)
        );
        let results = stop(tmp.path(), StopTarget::Pid(pid), DEFAULT_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(results[0].action, "pruned");
        assert!(
            stop(tmp.path(), StopTarget::All, DEFAULT_TIMEOUT)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_process_ignoring_sigterm_fails_after_the_timeout() {
        let tmp = tempfile::tempdir().unwrap();
        let mut stubborn = Victim(
            Command::new("sh")
                .args(["-c", "trap '' TERM; echo ready; exec sleep 30"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        // SIGTERM stays ignored through the exec; wait until it is.
        let mut ready = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(stubborn.0.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        let pid = stubborn.pid();
        let path =
            records::write(tmp.path(), &record_for(pid, start_time_ticks(pid).ok())).unwrap();

        let results = stop(tmp.path(), StopTarget::All, Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(results[0].action, "stop");
        assert!(!results[0].success);
        assert_eq!(
            results[0].detail,
            format!("process {pid} did not exit within 300ms")
        );
        assert!(path.exists());
        assert!(stubborn.is_alive());
        // The original's detail, and a hint: it may still be cleaning up.
        let failed = failures(&results).unwrap();
        assert_eq!(
            failed,
            StopFailures {
                message: format!("pid {pid}: process {pid} did not exit within 300ms"),
                hint: Some(format!(
                    "process {pid} is still running and may be finishing its Konnect cleanup \
                     (up to 60s); check with kongctl ps, and if it is still running after that, \
                     retry with a longer --timeout (kongctl ps stop {pid} --timeout 3m). \
                     Stopping it again during its cleanup abandons the cleanup."
                )),
            }
        );
        let error = crate::error::CliError::new(failed.message).with_hint(failed.hint.unwrap());
        assert!(
            error.to_string().starts_with(&format!(
                "Error: pid {pid}: process {pid} did not exit within 300ms\n\
                 Hint: process {pid} is still running"
            )),
            "{error}"
        );
    }

    fn result(pid: i32, action: &'static str, success: bool, detail: &str) -> StopResult {
        StopResult {
            pid,
            kind: "konnect.audit-logs.listen".into(),
            action,
            success,
            detail: detail.into(),
            still_running: false,
        }
    }

    #[test]
    fn renders_as_the_original() {
        assert_eq!(
            render_text(&[], 120),
            "No detached kongctl processes matched.\n"
        );
        assert_eq!(render_json(&[]), "[]\n");
        assert_eq!(render_yaml(&[]), "[]\n");
        let results = [
            result(
                4242,
                "stopped",
                true,
                "sent SIGTERM and removed process record",
            ),
            result(7, "inspect", false, ""),
        ];
        assert_eq!(
            render_text(&results, 120),
            "PID   ACTION   SUCCESS\n\
             4242  stopped  true\n\
             7     inspect  false\n"
        );
        assert_eq!(
            render_json(&results),
            r#"[
  {
    "pid": 4242,
    "kind": "konnect.audit-logs.listen",
    "action": "stopped",
    "success": true,
    "detail": "sent SIGTERM and removed process record"
  },
  {
    "pid": 7,
    "kind": "konnect.audit-logs.listen",
    "action": "inspect",
    "success": false
  }
]
"#
        );
        assert_eq!(
            render_yaml(&results),
            "- action: stopped\n  \
             detail: sent SIGTERM and removed process record\n  \
             kind: konnect.audit-logs.listen\n  \
             pid: 4242\n  \
             success: true\n\
             - action: inspect\n  \
             kind: konnect.audit-logs.listen\n  \
             pid: 7\n  \
             success: false\n"
        );
        assert_eq!(
            failures(&results).unwrap(),
            StopFailures {
                message: "pid 7: ".into(),
                hint: None
            }
        );
        // Several still running: one hint naming them all.
        let mut a = result(4242, "stop", false, "process 4242 did not exit within 15s");
        a.still_running = true;
        let b = StopResult {
            pid: 7,
            ..a.clone()
        };
        let hint = failures(&[a, b]).unwrap().hint.unwrap();
        assert!(
            hint.starts_with("processes 4242, 7 are still running and may be finishing"),
            "{hint}"
        );
    }

    #[test]
    fn columns_address_the_json_fields() {
        let columns = crate::output::columns::parse(&strings(&[
            "PID=.pid,OK=.success,DETAIL=.detail,KIND=.kind[:7]",
        ]))
        .unwrap();
        let results = [
            result(4242, "stopped", true, "sent SIGTERM"),
            result(7, "inspect", false, ""),
        ];
        assert_eq!(
            render_columns(&results, &columns, 120),
            "PID   OK     DETAIL        KIND\n\
             4242  true   sent SIGTERM  konnect\n\
             7     false                konnect\n"
        );
        assert_eq!(
            render_columns(&[], &columns, 120),
            "PID  OK  DETAIL  KIND\n"
        );
    }
}
