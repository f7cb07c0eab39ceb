//! Logging with `tracing`: to the log file, to a rolled log file for the
//! detached listener, or to stderr under systemd.
//!
//! Like the original, kongctl logs to a file (`--log-file`, default
//! `<config>/logs/kongctl.log`) at `--log-level` (default `error`), never to
//! stdout, so `tail` output stays records only. Nothing logged carries a
//! token or an authorization value: the fields logged are chosen for that.
//!
//! [`Target::Rolled`] is the detached listener's own log
//! (`kongctl-listener-<pid>.log`, which is also its stderr): once it
//! reaches [`LogRoll::max_size`] it becomes `<log>.1` (older ones move up
//! to `<log>.<keep>`, the oldest is deleted) and a new file begins, and
//! [`reopen`] (on SIGHUP, for logrotate's `postrotate`) opens the path
//! again. Either way the new file is put on fd 2 too, so a warning or a
//! panic written to stderr lands in the current file. A hand-written
//! writer rather than a crate's: tracing-appender rolls by time only, and
//! the size-rolling crates neither follow with fd 2 nor reopen on demand.
//!
//! [`Target::Stderr`] is for a foreground listener under systemd
//! ([`under_systemd`]): plain lines without ANSI colours, and without the
//! time when stderr is the journal (journald stamps each line).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::filter::LevelFilter;

use crate::cli::LogLevel;

/// Log lines queued for the writer thread; beyond that, lines are dropped
/// (the default, lossy, behaviour) rather than blocking the listener.
const LOG_LINES_BUFFERED: usize = 4096;

/// When the detached listener's log rolls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRoll {
    /// Roll once the file reaches this size; `None` never rolls.
    pub max_size: Option<u64>,
    /// Rolled files kept: `<log>.1` (newest) to `<log>.<keep>`.
    pub keep: usize,
}

impl Default for LogRoll {
    fn default() -> LogRoll {
        LogRoll {
            max_size: Some(10 << 20),
            keep: 5,
        }
    }
}

/// Where log lines go.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Appended to this file (shared by every command).
    File(&'a Path),
    /// This file, which is also stderr, rolled and reopened (the detached
    /// listener).
    Rolled(&'a Path, LogRoll),
    /// stderr, without colours; without the time if `journal`.
    Stderr { journal: bool },
}

/// Whether this process runs under systemd as a service: `NOTIFY_SOCKET`
/// is set (`Type=notify`), or `JOURNAL_STREAM` names the stream stderr is
/// (systemd's own test for "stderr goes to the journal").
pub fn under_systemd() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some() || stderr_is_journal()
}

/// `JOURNAL_STREAM` is `<device>:<inode>` of the journal's stream; it is
/// only ours if stderr is that very stream (a child's stderr may have been
/// redirected since).
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    // st_dev and st_ino are u64 here, narrower on some targets.
    #[allow(clippy::unnecessary_cast)]
    let (st_dev, st_ino) = (stat.st_dev as u64, stat.st_ino as u64);
    dev.parse::<u64>().ok() == Some(st_dev) && ino.parse::<u64>().ok() == Some(st_ino)
}

/// The rolled log, for [`reopen`].
static ROLLED: OnceLock<Arc<Rolling>> = OnceLock::new();

/// Opens the detached listener's log file again at its path (after
/// logrotate moved it away), and points stderr at it. `false` when this
/// process has no rolled log (SIGHUP then keeps its meaning: stop).
pub fn reopen() -> bool {
    let Some(rolling) = ROLLED.get() else {
        return false;
    };
    match rolling.reopen() {
        Ok(()) => tracing::info!(file = %rolling.path.display(), "log file reopened (SIGHUP)"),
        Err(e) => {
            tracing::warn!(file = %rolling.path.display(), error = %e, "failed to reopen the log file")
        }
    }
    true
}

/// Starts logging to `target`. Keep the guard alive: dropping it flushes.
/// If the file cannot be opened, logging is off and the reason is returned
/// for a warning.
pub fn init(target: Target, level: LogLevel) -> Result<WorkerGuard, String> {
    let level = match level {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    };
    // The channel to the writer thread is allocated, and every slot of it
    // touched, up front: the default 128,000 lines hold 4 MiB of memory for
    // the whole run, more than the rest of an idle listener.
    let builder = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_LINES_BUFFERED);
    let fmt = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(level)
        .with_target(false);
    let (guard, started) = match target {
        Target::File(file) => {
            let (writer, guard) = builder.finish(open_log(file)?);
            (guard, fmt.with_writer(writer).try_init())
        }
        Target::Rolled(file, roll) => {
            let rolling = Arc::new(Rolling::open(file, roll)?);
            let _ = ROLLED.set(rolling.clone());
            let (writer, guard) = builder.finish(RollingWriter(rolling));
            (guard, fmt.with_writer(writer).try_init())
        }
        Target::Stderr { journal } => {
            let (writer, guard) = builder.finish(io::stderr());
            let fmt = fmt.with_writer(writer);
            let started = if journal {
                fmt.without_time().try_init()
            } else {
                fmt.try_init()
            };
            (guard, started)
        }
    };
    started.map_err(|e| format!("cannot start logging: {e}"))?;
    Ok(guard)
}

/// Creates the log's directory (0700) and opens the file for appending
/// (0600).
fn open_log(file: &Path) -> Result<File, String> {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::fsutil::create_private_dir_all(dir)
        .map_err(|e| format!("cannot create log directory {}: {e}", dir.display()))?;
    crate::fsutil::open_private_append(file)
        .map_err(|e| format!("cannot open log file {}: {e}", file.display()))
}

/// The rolled log file.
struct Rolling {
    path: PathBuf,
    roll: LogRoll,
    file: Mutex<File>,
}

impl Rolling {
    fn open(path: &Path, roll: LogRoll) -> Result<Rolling, String> {
        let file = open_log(path)?;
        point_stderr_at(&file);
        Ok(Rolling {
            path: path.to_path_buf(),
            roll,
            file: Mutex::new(file),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, File> {
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reopen(&self) -> io::Result<()> {
        let mut file = self.lock();
        let fresh = crate::fsutil::open_private_append(&self.path)?;
        point_stderr_at(&fresh);
        *file = fresh;
        Ok(())
    }

    /// `<log>.<n>`.
    fn rolled(&self, n: usize) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// Writes a whole line, rolling first if it would take the file past
    /// the size (a line is never split across files). The size is the
    /// file's own (fstat), so whatever went to stderr counts too.
    fn write_line(&self, line: &[u8]) -> io::Result<()> {
        let mut file = self.lock();
        if let Some(max) = self.roll.max_size {
            let size = file.metadata()?.len();
            if size > 0 && size + line.len() as u64 > max {
                match self.roll_over() {
                    Ok(fresh) => *file = fresh,
                    // Keep writing to the full file rather than lose lines;
                    // the next line tries again.
                    Err(e) => {
                        let _ = writeln!(file, "kongctl: failed to roll the log file: {e}");
                    }
                }
            }
        }
        file.write_all(line)
    }

    /// Moves `<log>` to `<log>.1` (and each older one up, the oldest gone)
    /// and opens a new `<log>`.
    fn roll_over(&self) -> io::Result<File> {
        let keep = self.roll.keep.max(1);
        match std::fs::remove_file(self.rolled(keep)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for n in (1..keep).rev() {
            match std::fs::rename(self.rolled(n), self.rolled(n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, self.rolled(1))?;
        let fresh = crate::fsutil::open_private_append(&self.path)?;
        point_stderr_at(&fresh);
        Ok(fresh)
    }
}

/// fd 2 becomes `file` (the old one closes); on failure stderr stays.
fn point_stderr_at(file: &File) {
    let _ = nix::unistd::dup2_stderr(file);
}

/// The writer the logging thread owns.
struct RollingWriter(Arc<Rolling>);

impl Write for RollingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_line(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolling(dir: &Path, max: u64, keep: usize) -> Rolling {
        // Not through `Rolling::open`: the test's stderr stays the test's.
        let path = dir.join("l.log");
        Rolling {
            file: Mutex::new(open_log(&path).unwrap()),
            path,
            roll: LogRoll {
                max_size: Some(max),
                keep,
            },
        }
    }

    fn read(p: PathBuf) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn rolls_at_the_size_and_keeps_so_many_files() {
        let dir = tempfile::tempdir().unwrap();
        let r = rolling(dir.path(), 20, 2);
        for i in 0..8 {
            r.write_line(format!("line {i} 0123456\n").as_bytes())
                .unwrap();
        }
        // 15-byte lines, 20 bytes at most: one line a file.
        assert_eq!(read(r.path.clone()), "line 7 0123456\n");
        assert_eq!(read(r.rolled(1)), "line 6 0123456\n");
        assert_eq!(read(r.rolled(2)), "line 5 0123456\n");
        assert!(!r.rolled(3).exists());
        use std::os::unix::fs::PermissionsExt;
        for p in [r.path.clone(), r.rolled(1), r.rolled(2)] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", p.display());
        }
    }

    #[test]
    fn a_line_longer_than_the_limit_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let r = rolling(dir.path(), 4, 3);
        r.write_line(b"a very long line\n").unwrap();
        r.write_line(b"next\n").unwrap();
        assert_eq!(read(r.rolled(1)), "a very long line\n");
        assert_eq!(read(r.path.clone()), "next\n");
    }

    #[test]
    fn reopen_follows_a_file_moved_away() {
        let dir = tempfile::tempdir().unwrap();
        let r = rolling(dir.path(), 1 << 20, 2);
        r.write_line(b"before\n").unwrap();
        let moved = dir.path().join("moved.log");
        std::fs::rename(&r.path, &moved).unwrap();
        r.write_line(b"still the old file\n").unwrap();
        // Reopen without touching the test's stderr.
        *r.lock() = crate::fsutil::open_private_append(&r.path).unwrap();
        r.write_line(b"after\n").unwrap();
        assert_eq!(read(moved), "before\nstill the old file\n");
        assert_eq!(read(r.path.clone()), "after\n");
    }
}
