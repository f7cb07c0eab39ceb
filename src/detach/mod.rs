//! `listen --detach`: run the listener in the background, and report only
//! what really happened.
//!
//! The parent re-executes this binary without `--detach`, in a new session
//! (setsid, so a closed terminal does not kill it), with stdio on /dev/null;
//! the child logs to `<config>/logs/kongctl-listener-<pid>.log` and points
//! its stderr there too. Secrets reach the child
//! through the environment, never its argv. The parent registers the child
//! in `<config>/processes/<pid>.json`, then waits on an inherited pipe until
//! the child reports that it is listening and Konnect is configured, or that
//! it failed (with its error), and only then prints the outcome.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{Settings, env_key};
use crate::error::CliError;
use crate::listen::{ListenOptions, Ready};
use crate::ps::record::{self, ProcessRecord};

/// Environment variable naming the child's end of the readiness pipe.
pub const READY_FD_ENV: &str = "KONGCTL_DETACH_READY_FD";
/// Environment variable naming the child's process record (the original's).
pub const RECORD_ENV: &str = "KONGCTL_PROCESS_RECORD_FILE";
/// The authorization value for the child (the flag is kept out of argv).
pub const AUTHORIZATION_ENV: &str = "KONGCTL_LISTEN_AUTHORIZATION";

/// How long the parent waits for the child's report. Startup retries a
/// failing Konnect for a while, so this is generous; the child is stopped
/// if it is exceeded.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What the child sends over the pipe: one JSON line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Report {
    Ready {
        listen_address: String,
        local_endpoint: String,
        endpoint: String,
        destination_id: Option<String>,
        events_file: PathBuf,
        listener_state_file: PathBuf,
        /// Startup warnings (the tunnel check's) for the parent to show.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
        /// The admin endpoint's address, when it runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        admin_address: Option<String>,
    },
    Failed {
        message: String,
        hint: Option<String>,
    },
}

/// Starts a detached listener and waits for its report.
pub fn spawn(settings: &Settings, opts: &ListenOptions) -> Result<(), CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::new(format!("cannot find the kongctl executable: {e}")))?;
    let logs_dir = settings.logs_dir();
    crate::fsutil::create_private_dir_all(&logs_dir).map_err(|e| {
        CliError::new(format!(
            "failed to create log directory {}: {e}",
            logs_dir.display()
        ))
    })?;
    let processes_dir = settings.processes_dir();
    crate::fsutil::create_private_dir_all(&processes_dir).map_err(|e| {
        CliError::new(format!(
            "failed to create process directory {}: {e}",
            processes_dir.display()
        ))
    })?;
    let log_template = logs_dir.join("kongctl-listener-%PID%.log");
    let user_args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let child_args = child_args(&user_args, &log_template, settings);

    let (read_end, write_end) = nix::unistd::pipe()
        .map_err(|e| CliError::new(format!("failed to create the readiness pipe: {e}")))?;
    // The read end stays with the parent only.
    set_cloexec(&read_end);
    let fd = write_end.as_raw_fd();

    let mut cmd = Command::new(&exe);
    cmd.args(&child_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env(READY_FD_ENV, fd.to_string())
        .env(RECORD_ENV, processes_dir.join("%PID%.json").as_os_str())
        .env(AUTHORIZATION_ENV, opts.authorization.expose());
    if let Some((pat, _)) = &settings.pat {
        cmd.env(env_key(&settings.profile, "konnect.pat"), pat.expose());
    }
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork
    // and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| CliError::new(format!("failed to start the detached listener: {e}")))?;
    drop(write_end);
    let pid = child.id();
    // The child outlives us; it is reaped by init when it exits.
    drop(child);

    let log_file = crate::config::expand_pid(&log_template, pid);
    let record_file = processes_dir.join(format!("{pid}.json"));
    let mut rec = ProcessRecord {
        profile: Some(settings.profile.clone()),
        log_file: Some(log_file.display().to_string()),
        args: user_args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        start_time_ticks: wait_start_ticks(pid),
        ..ProcessRecord::listener(pid as i32)
    };
    if let Err(e) = record::write(&processes_dir, &rec) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        return Err(CliError::new(format!(
            "failed to write process record {}: {e}",
            record_file.display()
        )));
    }

    match wait_report(File::from(read_end), READY_TIMEOUT) {
        Ok(Some(Report::Ready {
            listen_address,
            endpoint,
            destination_id,
            events_file,
            listener_state_file,
            warnings,
            admin_address,
            ..
        })) => {
            // The child's stderr is its log file: show them here.
            for w in &warnings {
                eprintln!("Warning: {w}");
            }
            rec.listen_address = Some(listen_address);
            rec.endpoint = Some(endpoint);
            rec.destination_id = destination_id;
            rec.events_file = Some(events_file.display().to_string());
            rec.listener_state_file = Some(listener_state_file.display().to_string());
            if let Err(e) = record::write(&processes_dir, &rec) {
                tracing::warn!(error = %e, "failed to add listener details to the process record");
            }
            println!("Detached Konnect audit-log listener started.");
            println!("  pid: {pid}");
            println!("  log file: {}", log_file.display());
            println!("  process record: {}", record_file.display());
            if let Some(admin) = admin_address {
                println!("  admin endpoint: {admin}");
            }
            println!("Use the log file to inspect listener startup and runtime details.");
            Ok(())
        }
        Ok(Some(Report::Failed { message, hint })) => Err(CliError {
            message,
            hint: Some(match hint {
                Some(h) => format!(
                    "{h}\n(detached listener pid {pid}; log: {})",
                    log_file.display()
                ),
                None => format!("see the log file {}", log_file.display()),
            }),
            usage_of: None,
            code: crate::error::exit_code::FAILURE,
        }),
        Ok(None) => Err(CliError::new(format!(
            "detached listener (pid {pid}) exited before it was ready"
        ))
        .with_hint(format!("see the log file {}", log_file.display()))),
        Err(why) => {
            // Stop it: its own cleanup undoes whatever it did in Konnect.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            Err(CliError::new(format!(
                "detached listener (pid {pid}) {why}; sent it SIGTERM"
            ))
            .with_hint(format!("see the log file {}", log_file.display())))
        }
    }
}

/// The child's arguments: the user's, without `--detach` (and a bool value
/// after it), `--log-file`, and the secrets (`--pat`, `--authorization`),
/// which travel in the environment. A log file per child is added; without
/// an explicit `--log-level` the child logs at `info` so its log is useful.
fn child_args(user: &[OsString], log_template: &Path, settings: &Settings) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut saw_level = false;
    while i < user.len() {
        let arg = user[i].to_string_lossy();
        let a = arg.as_ref();
        let is_bool = |s: &str| {
            matches!(
                s.to_ascii_lowercase().as_str(),
                "true" | "false" | "1" | "0" | "t" | "f"
            )
        };
        if a == "--detach" || a == "-d" {
            if user
                .get(i + 1)
                .is_some_and(|n| is_bool(&n.to_string_lossy()))
            {
                i += 1;
            }
        } else if a.starts_with("--detach=") || a.starts_with("-d=") {
        } else if matches!(a, "--log-file" | "--pat" | "--authorization") {
            i += 1;
        } else if a.starts_with("--log-file=")
            || a.starts_with("--pat=")
            || a.starts_with("--authorization=")
        {
        } else {
            if a == "--log-level" || a.starts_with("--log-level=") {
                saw_level = true;
            }
            out.push(user[i].clone());
        }
        i += 1;
    }
    out.push("--log-file".into());
    out.push(log_template.as_os_str().to_owned());
    if !saw_level && settings.log_level == crate::cli::LogLevel::Error {
        out.push("--log-level".into());
        out.push("info".into());
    }
    out
}

/// `/proc/<pid>/stat` start time of the child, once it exists (≤ 500 ms).
fn wait_start_ticks(pid: u32) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        if let Ok(t) = crate::ps::procfs::start_time_ticks(pid as i32) {
            return Some(t);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn set_cloexec(fd: &OwnedFd) {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
}

/// Reads the child's one-line report; `Ok(None)` if it closed the pipe
/// without one (it died).
fn wait_report(mut pipe: File, limit: Duration) -> Result<Option<Report>, String> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let deadline = Instant::now() + limit;
    let mut buf = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("did not report ready within {}s", limit.as_secs()));
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("readiness pipe failed: {e}")),
        }
        let mut chunk = [0u8; 4096];
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.contains(&b'\n') {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("readiness pipe failed: {e}")),
        }
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    if line.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(line)
        .map(Some)
        .map_err(|e| format!("sent an unreadable report: {e}"))
}

/// The child's side: set when this process is a detached listener.
pub struct ChildChannel {
    pipe: Mutex<Option<File>>,
    record_file: Option<PathBuf>,
}

impl ChildChannel {
    /// Whether this process was started by `--detach` (its readiness pipe
    /// is named in the environment).
    pub fn is_child() -> bool {
        std::env::var_os(READY_FD_ENV).is_some()
    }

    /// The channel from the environment, if this process was started by
    /// `--detach`.
    pub fn from_env() -> Option<ChildChannel> {
        let fd: i32 = std::env::var(READY_FD_ENV).ok()?.parse().ok()?;
        // Only adopt an fd that is open and a pipe, never a random one.
        // SAFETY: fstat only writes into the zeroed struct we own; an
        // invalid fd makes it fail with EBADF.
        let is_pipe = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFIFO
        };
        if !is_pipe {
            return None;
        }
        // SAFETY: the parent passed us this fd for our exclusive use; it was
        // checked to be an open pipe above and nothing else owns it.
        let file = unsafe { File::from_raw_fd(fd) };
        let record_file = std::env::var_os(RECORD_ENV)
            .map(PathBuf::from)
            .map(|p| crate::config::expand_pid(&p, std::process::id()));
        Some(ChildChannel {
            pipe: Mutex::new(Some(file)),
            record_file,
        })
    }

    fn send(&self, report: &Report) {
        let mut guard = self.pipe.lock().expect("pipe lock poisoned");
        if let Some(mut f) = guard.take() {
            let mut line = serde_json::to_vec(report).expect("report serialises");
            line.push(b'\n');
            if let Err(e) = f.write_all(&line) {
                tracing::warn!(error = %e, "could not report to the detaching parent");
            }
        }
    }

    /// Tells the parent the listener is up.
    pub fn ready(&self, r: &Ready) {
        self.send(&Report::Ready {
            listen_address: r.listen_address.to_string(),
            local_endpoint: r.local_endpoint.clone(),
            endpoint: r.endpoint.clone(),
            destination_id: r.destination_id.clone(),
            events_file: r.events_file.clone(),
            listener_state_file: r.listener_state_file.clone(),
            warnings: r.warnings.clone(),
            admin_address: r.admin_address.map(crate::listen::admin_endpoint_base),
        });
    }

    /// Reports how the run ended: a failure before ready goes to the parent;
    /// a clean end removes our process record (a failed run keeps it for
    /// `ps` and debugging).
    pub fn finish(&self, result: &Result<(), CliError>) {
        match result {
            Ok(()) => {
                if let Some(p) = &self.record_file {
                    let _ = std::fs::remove_file(p);
                }
            }
            Err(e) => {
                tracing::error!(error = %e.message, "detached listener failed");
                self.send(&Report::Failed {
                    message: e.message.clone(),
                    hint: e.hint.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        let g = crate::cli::GlobalArgs::default();
        let mut env = std::collections::BTreeMap::new();
        env.insert("XDG_CONFIG_HOME".to_string(), "/cfg".to_string());
        Settings::resolve(&g, &env).unwrap()
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn strings(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn child_args_drop_detach_log_file_and_secrets() {
        let t = Path::new("/cfg/kongctl/logs/kongctl-listener-%PID%.log");
        let got = strings(child_args(
            &args(&[
                "listen",
                "--endpoint",
                "https://h/a",
                "-d",
                "true",
                "--pat",
                "kpat_x",
                "--authorization=Bearer s",
                "--log-file",
                "/tmp/mine.log",
                "--name",
                "n",
            ]),
            t,
            &settings(),
        ));
        assert_eq!(
            got,
            vec![
                "listen",
                "--endpoint",
                "https://h/a",
                "--name",
                "n",
                "--log-file",
                "/cfg/kongctl/logs/kongctl-listener-%PID%.log",
                "--log-level",
                "info"
            ]
        );
        let got = strings(child_args(
            &args(&[
                "listen",
                "--detach=true",
                "--log-level",
                "debug",
                "--authorization",
                "B x",
            ]),
            t,
            &settings(),
        ));
        assert_eq!(
            got,
            vec![
                "listen",
                "--log-level",
                "debug",
                "--log-file",
                "/cfg/kongctl/logs/kongctl-listener-%PID%.log"
            ]
        );
    }

    #[test]
    fn reports_round_trip_over_a_pipe() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut wf = File::from(w);
        let line = serde_json::to_string(&Report::Failed {
            message: "listen tcp 127.0.0.1:1: bind: address already in use".into(),
            hint: None,
        })
        .unwrap();
        writeln!(wf, "{line}").unwrap();
        drop(wf);
        match wait_report(File::from(r), Duration::from_secs(5)).unwrap() {
            Some(Report::Failed { message, .. }) => {
                assert!(message.contains("address already in use"))
            }
            other => panic!("{other:?}"),
        }
        let (r, w) = nix::unistd::pipe().unwrap();
        drop(w);
        assert!(
            wait_report(File::from(r), Duration::from_secs(5))
                .unwrap()
                .is_none()
        );
    }
}
