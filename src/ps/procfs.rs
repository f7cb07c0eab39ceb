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

/// Whether a live process that started at `live` ticks is the one a record
/// written with `recorded` ticks was for. Unknown start ticks (none in the
/// record, or 0 on either side, which the original wrote when `/proc` could
/// not tell) prove nothing, so the pid alone decides: only two known start
/// times that differ mean the pid now belongs to a later process (SPEC §7).
pub fn is_same_process(recorded: Option<u64>, live: u64) -> bool {
    match recorded {
        Some(ours) if ours > 0 && live > 0 => ours == live,
        _ => true,
    }
}

/// What the kernel says about the pid of a record.
enum Liveness {
    /// No such pid, or a zombie: our process has exited.
    Exited,
    /// Alive, but started at another time than ours.
    Reused,
    /// Alive and, as far as can be told, ours; `Some` when its stat could
    /// not be read (the pid alone decided).
    Ours(Option<io::Error>),
}

/// Probes the pid of `record` (which must be positive) with `kill(pid, 0)`
/// and `/proc/<pid>/stat`; the error is `kill`'s other than ESRCH and EPERM.
fn liveness(record: &ProcessRecord) -> Result<Liveness, Errno> {
    match kill(Pid::from_raw(record.pid), None) {
        // EPERM: it exists, as someone else's.
        Ok(()) | Err(Errno::EPERM) => {}
        Err(Errno::ESRCH) => return Ok(Liveness::Exited),
        Err(e) => return Err(e),
    }
    Ok(match read_stat(record.pid) {
        Ok(stat) if stat.has_exited() => Liveness::Exited,
        Ok(stat) if is_same_process(record.start_time_ticks, stat.start_time_ticks) => {
            Liveness::Ours(None)
        }
        Ok(_) => Liveness::Reused,
        // It exited between the two checks.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Liveness::Exited,
        Err(e) => Liveness::Ours(Some(e)),
    })
}

/// Checks the process of `record`.
pub fn inspect(record: &ProcessRecord) -> Inspection {
    if record.pid <= 0 {
        return Inspection {
            status: Status::Unknown,
            check_error: Some("invalid process pid".into()),
        };
    }
    let (status, check_error) = match liveness(record) {
        Ok(Liveness::Exited) => (Status::Exited, None),
        Ok(Liveness::Reused) => (Status::Stale, None),
        Ok(Liveness::Ours(None)) => (Status::Running, None),
        // Alive but unreadable: the original's choice, running with a note.
        Ok(Liveness::Ours(Some(e))) => (Status::Running, Some(io_error_text(&e))),
        Err(e) => (Status::Unknown, Some(errno_text(e))),
    };
    Inspection {
        status,
        check_error,
    }
}

/// Whether the process of `record` is gone for good: no such pid, a zombie,
/// or the pid now belongs to a process started at another time (the same
/// rule as [`inspect`]'s `exited` and `stale`).
pub fn is_gone(record: &ProcessRecord) -> Result<bool, Errno> {
    if record.pid <= 0 {
        // Names no process (kill() would take it for a process group).
        return Ok(true);
    }
    liveness(record).map(|l| !matches!(l, Liveness::Ours(_)))
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
    fn only_two_known_different_start_ticks_mean_another_process() {
        assert!(is_same_process(Some(100), 100));
        assert!(!is_same_process(Some(100), 101));
        // Unknown on either side: the pid alone decides.
        assert!(is_same_process(None, 100));
        assert!(is_same_process(None, 0));
        assert!(is_same_process(Some(0), 100));
        assert!(is_same_process(Some(100), 0));
        assert!(is_same_process(Some(0), 0));
    }

    #[test]
    fn inspect_and_is_gone_agree_when_the_record_has_zero_ticks() {
        let mut victim = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = victim.id() as i32;
        let mut record = ProcessRecord::listener(pid);
        for ticks in [None, Some(0)] {
            record.start_time_ticks = ticks;
            assert_eq!(inspect(&record).status, Status::Running, "{ticks:?}");
            assert_eq!(is_gone(&record), Ok(false), "{ticks:?}");
        }
        victim.kill().unwrap();
        victim.wait().unwrap();
        assert_eq!(inspect(&record).status, Status::Exited);
        assert_eq!(is_gone(&record), Ok(true));
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
