//! Is the process of a record still ours and alive? `/proc/<pid>/stat` and
//! `kill(pid, 0)` decide.
//!
//! A pid alone does not identify a process: after ours exits the kernel may
//! give its pid to another. The record keeps the start time of our process
//! (field 22 of `/proc/<pid>/stat`, in clock ticks since boot); a live pid
//! whose start time differs is someone else's and is reported `stale`, and
//! `ps stop` never signals it.

use super::record::ProcessRecord;
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use std::fmt;
use std::io;

/// What `ps` says about a record's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Alive, and its start time matches the record (or one of them is
    /// unknown).
    Running,
    /// Gone, or a zombie waiting to be reaped.
    Exited,
    /// The pid is alive but belongs to a later process.
    Stale,
    /// It could not be checked.
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Stale => "stale",
            Status::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of checking a record's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub status: Status,
    /// Why the check was incomplete, in the original's words (a Go error
    /// text), when it was.
    pub check_error: Option<String>,
}

/// The fields of `/proc/<pid>/stat` that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub state: char,
    /// Field 22: start time in clock ticks after boot.
    pub start_time_ticks: u64,
}

impl ProcStat {
    /// A zombie or dead process has exited; only its parent's `wait` is
    /// missing.
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Parses the contents of `/proc/<pid>/stat`.
///
/// The command name (field 2) is in parentheses and may itself contain
/// spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat(stat: &str) -> Option<ProcStat> {
    let (_, rest) = stat.trim_end().rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 is the first after the name; field 22 is 19 fields later.
    let start_time_ticks = fields.nth(18)?.parse().ok()?;
    Some(ProcStat {
        state,
        start_time_ticks,
    })
}

/// Reads `/proc/<pid>/stat`.
pub fn read_stat(pid: i32) -> io::Result<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc stat format"))
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks
/// after boot.
pub fn start_time_ticks(pid: i32) -> io::Result<u64> {
    read_stat(pid).map(|stat| stat.start_time_ticks)
}

/// Go's text for an errno (`no such process`), which the original showed.
pub fn errno_text(errno: Errno) -> String {
    let desc = errno.desc();
    let mut chars = desc.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => desc.to_owned(),
    }
}

/// Go's text for an I/O error.
pub fn io_error_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => errno_text(Errno::from_raw(code)),
        None => e.to_string(),
    }
}

/// Checks the process of `record`.
pub fn inspect(record: &ProcessRecord) -> Inspection {
    let status = |status| Inspection {
        status,
        check_error: None,
    };
    if record.pid <= 0 {
        return Inspection {
            status: Status::Unknown,
            check_error: Some("invalid process pid".into()),
        };
    }
    match kill(Pid::from_raw(record.pid), None) {
        // EPERM: it exists, as someone else's.
        Ok(()) | Err(Errno::EPERM) => {}
        Err(Errno::ESRCH) => return status(Status::Exited),
        Err(e) => {
            return Inspection {
                status: Status::Unknown,
                check_error: Some(errno_text(e)),
            };
        }
    }
    match read_stat(record.pid) {
        Ok(stat) if stat.has_exited() => status(Status::Exited),
        Ok(stat) => match record.start_time_ticks {
            Some(ours)
                if ours > 0 && stat.start_time_ticks > 0 && ours != stat.start_time_ticks =>
            {
                status(Status::Stale)
            }
            _ => status(Status::Running),
        },
        // It exited between the two checks.
        Err(e) if e.kind() == io::ErrorKind::NotFound => status(Status::Exited),
        // Alive but unreadable: the original's choice, running with a note.
        Err(e) => Inspection {
            status: Status::Running,
            check_error: Some(io_error_text(&e)),
        },
    }
}

/// Whether the process of `record` is gone for good: no such pid, a zombie,
/// or the pid now belongs to a process started at another time.
pub fn is_gone(record: &ProcessRecord) -> Result<bool, Errno> {
    match kill(Pid::from_raw(record.pid), None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(Errno::ESRCH) => return Ok(true),
        Err(e) => return Err(e),
    }
    Ok(match read_stat(record.pid) {
        Ok(stat) => {
            stat.has_exited()
                || record
                    .start_time_ticks
                    .is_some_and(|ours| ours > 0 && ours != stat.start_time_ticks)
        }
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn parses_stat_after_the_last_parenthesis() {
        let tail = "S 1 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        for comm in ["sleep", "a) b (c", "with space", ") )", "(x)"] {
            let stat = format!("4242 ({comm}) {tail}\n");
            assert_eq!(
                parse_stat(&stat),
                Some(ProcStat {
                    state: 'S',
                    start_time_ticks: 987654
                }),
                "comm {comm:?}"
            );
        }
        assert_eq!(parse_stat("4242 (x) Z 1 2 3"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn own_process_is_running() {
        // The original's TestReadStartTimeTicksCurrentProcess and
        // TestInspectRunningRecord.
        let pid = std::process::id() as i32;
        let ticks = start_time_ticks(pid).unwrap();
        assert!(ticks > 0);
        let mut record = ProcessRecord::listener(pid);
        record.start_time_ticks = Some(ticks);
        assert_eq!(
            inspect(&record),
            Inspection {
                status: Status::Running,
                check_error: None
            }
        );
        // Without start ticks the pid alone decides, as in the original.
        record.start_time_ticks = None;
        assert_eq!(inspect(&record).status, Status::Running);
    }

    #[test]
    fn a_reaped_child_has_exited() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        // Linux hands out pids in sequence, so it is not reused this soon.
        assert_eq!(
            inspect(&ProcessRecord::listener(pid)).status,
            Status::Exited
        );
    }

    #[test]
    fn a_zombie_has_exited() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let record = ProcessRecord::listener(pid);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while read_stat(pid).unwrap().state != 'Z' {
            assert!(
                std::time::Instant::now() < deadline,
                "child never became a zombie"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(inspect(&record).status, Status::Exited);
        assert_eq!(is_gone(&record), Ok(true));
        child.wait().unwrap();
    }

    #[test]
    fn a_live_pid_with_other_start_ticks_is_stale() {
        let mut victim = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = victim.id() as i32;
        let ticks = start_time_ticks(pid).unwrap();
        let mut record = ProcessRecord::listener(pid);
        record.start_time_ticks = Some(ticks + 1);
        assert_eq!(inspect(&record).status, Status::Stale);
        assert_eq!(is_gone(&record), Ok(true));
        record.start_time_ticks = Some(ticks);
        assert_eq!(inspect(&record).status, Status::Running);
        assert_eq!(is_gone(&record), Ok(false));
        victim.kill().unwrap();
        victim.wait().unwrap();
    }

    #[test]
    fn a_bad_pid_is_unknown() {
        let inspection = inspect(&ProcessRecord {
            pid: -1,
            ..ProcessRecord::listener(1)
        });
        assert_eq!(inspection.status, Status::Unknown);
        assert_eq!(
            inspection.check_error.as_deref(),
            Some("invalid process pid")
        );
    }

    #[test]
    fn errors_read_as_go_writes_them() {
        assert_eq!(errno_text(Errno::ESRCH), "no such process");
        assert_eq!(errno_text(Errno::EPERM), "operation not permitted");
        assert_eq!(
            io_error_text(&io::Error::from_raw_os_error(libc::EACCES)),
            "permission denied"
        );
    }
}
