//! One run of an `--exec` command: `/bin/sh -c <command>` in a process
//! group of its own, the record's line on its standard input, its standard
//! output discarded (it would mix with `tail`'s records), the first KiB of
//! its standard error kept for the log, killed with its whole group at the
//! timeout or when the listener abandons its stop.
//!
//! Its environment is the listener's without any `KONGCTL_*` variable (the
//! PAT and the listener's authorization can be there), plus the variables
//! describing the record that [`crate::exec`]'s follower gives it.

use std::ffi::OsString;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// How much of a command's standard error is kept.
pub const STDERR_KEPT: usize = 1024;
/// How long, after a command exited, its standard error is read on while
/// something it left in the background holds it open.
const STDERR_GRACE: Duration = Duration::from_millis(500);

/// The environment every command starts from.
#[derive(Debug, Clone)]
pub struct CommandEnv {
    vars: Vec<(OsString, OsString)>,
}

impl CommandEnv {
    /// This process's environment without its `KONGCTL_*` variables.
    pub fn from_process() -> CommandEnv {
        CommandEnv::from_vars(std::env::vars_os())
    }

    fn from_vars(vars: impl Iterator<Item = (OsString, OsString)>) -> CommandEnv {
        CommandEnv {
            vars: vars
                .filter(|(k, _)| !k.as_encoded_bytes().starts_with(b"KONGCTL_"))
                .collect(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0.
    Succeeded,
    /// Another exit status, a signal, or no start: why.
    Failed(String),
    /// Killed at the timeout.
    TimedOut,
    /// Killed because the listener abandoned its stop: not finished.
    Abandoned,
}

/// A finished run.
#[derive(Debug)]
pub struct Finished {
    pub outcome: Outcome,
    pub duration: Duration,
    /// The first [`STDERR_KEPT`] bytes of standard error.
    pub stderr: Vec<u8>,
}

/// Runs `command` with `stdin` on its standard input and `vars` added to
/// `env`, for at most `timeout`; `abandon` kills it early.
pub async fn run(
    command: &str,
    stdin: &[u8],
    env: &CommandEnv,
    vars: &[(&str, String)],
    timeout: Duration,
    abandon: &CancellationToken,
) -> Finished {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .env_clear()
        .envs(env.vars.iter().map(|(k, v)| (k, v)))
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Finished {
                outcome: Outcome::Failed(format!("cannot start /bin/sh: {e}")),
                duration: started.elapsed(),
                stderr: Vec::new(),
            };
        }
    };
    let group = child.id().map(|id| nix::unistd::Pid::from_raw(id as i32));

    // The record, then end of input; a command that does not read it (or
    // exits first) is no error.
    let feed = child.stdin.take().map(|mut pipe| {
        let mut line = Vec::with_capacity(stdin.len() + 1);
        line.extend_from_slice(stdin);
        line.push(b'\n');
        tokio::spawn(async move {
            let _ = pipe.write_all(&line).await;
        })
    });
    let kept = Arc::new(Mutex::new(Vec::new()));
    let reader = child.stderr.take().map(|mut pipe| {
        let kept = kept.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut kept = kept.lock().expect("stderr buffer lock");
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        })
    });

    let ended = tokio::select! {
        status = child.wait() => Some(status),
        _ = tokio::time::sleep(timeout) => None,
        _ = abandon.cancelled() => None,
    };
    let outcome = match ended {
        Some(Ok(status)) if status.success() => Outcome::Succeeded,
        Some(Ok(status)) => Outcome::Failed(describe_status(status)),
        Some(Err(e)) => Outcome::Failed(format!("cannot wait for the command: {e}")),
        None => {
            if let Some(group) = group {
                // The whole group: what the shell started too.
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            }
            let _ = child.wait().await;
            if abandon.is_cancelled() {
                Outcome::Abandoned
            } else {
                Outcome::TimedOut
            }
        }
    };
    let duration = started.elapsed();
    if let Some(feed) = feed {
        feed.abort();
    }
    if let Some(mut reader) = reader
        && tokio::time::timeout(STDERR_GRACE, &mut reader)
            .await
            .is_err()
    {
        reader.abort();
    }
    let stderr = std::mem::take(&mut *kept.lock().expect("stderr buffer lock"));
    Finished {
        outcome,
        duration,
        stderr,
    }
}

/// `exit status 3`, `killed by signal 9 (SIGKILL)`.
fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(sig) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(name) => format!("killed by signal {sig} ({name})"),
            Err(_) => format!("killed by signal {sig}"),
        },
        None => format!("{status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> CommandEnv {
        CommandEnv::from_vars(
            [
                ("PATH", std::env::var("PATH").unwrap_or_default()),
                ("KEEP", "kept".into()),
                ("KONGCTL_DEFAULT_KONNECT_PAT", "kpat_secret".into()),
                ("KONGCTL_LISTEN_AUTHORIZATION", "Bearer s".into()),
            ]
            .into_iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        )
    }

    async fn run_it(command: &str, timeout: Duration) -> Finished {
        run(
            command,
            b"{\"a\":1}",
            &env(),
            &[("KONGCTL_RULE", "locked".into())],
            timeout,
            &CancellationToken::new(),
        )
        .await
    }

    #[tokio::test]
    async fn the_record_is_on_stdin_and_kongctl_variables_are_ours_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let f = run_it(
            &format!(
                "cat > {0}; echo \"$KEEP $KONGCTL_RULE ${{KONGCTL_DEFAULT_KONNECT_PAT-none}} ${{KONGCTL_LISTEN_AUTHORIZATION-none}}\" >> {0}",
                out.display()
            ),
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(f.outcome, Outcome::Succeeded);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"a\":1}\nkept locked none none\n"
        );
    }

    #[tokio::test]
    async fn failures_keep_the_first_kib_of_stderr() {
        let f = run_it(
            "echo oops >&2; head -c 5000 /dev/zero | tr '\\0' x >&2; exit 3",
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(f.outcome, Outcome::Failed("exit status 3".into()));
        assert_eq!(f.stderr.len(), STDERR_KEPT);
        assert!(f.stderr.starts_with(b"oops\nxxx"));
        let f = run_it("kill -TERM $$", Duration::from_secs(20)).await;
        assert_eq!(
            f.outcome,
            Outcome::Failed("killed by signal 15 (SIGTERM)".into())
        );
        // Not reading stdin is fine.
        assert_eq!(
            run_it("true", Duration::from_secs(20)).await.outcome,
            Outcome::Succeeded
        );
    }

    #[tokio::test]
    async fn the_timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let started = Instant::now();
        // A child of the shell in the background, and the shell waiting.
        let f = run_it(
            &format!("sleep 30 & echo $! > {}; wait", pidfile.display()),
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(f.outcome, Outcome::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background sleep died with the group (it may linger as a
        // zombie until init reaps it).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let running = state
                .rsplit(')')
                .next()
                .is_some_and(|s| !s.trim_start().starts_with('Z') && !s.is_empty());
            if !running {
                break;
            }
            assert!(Instant::now() < deadline, "pid {pid} still runs");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn abandoning_kills_and_says_so() {
        let abandon = CancellationToken::new();
        let a = abandon.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            a.cancel();
        });
        let f = run(
            "sleep 30",
            b"",
            &env(),
            &[],
            Duration::from_secs(60),
            &abandon,
        )
        .await;
        assert_eq!(f.outcome, Outcome::Abandoned);
    }
}
