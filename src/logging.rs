//! Logging to the log file with `tracing`.
//!
//! Like the original, kongctl logs to a file (`--log-file`, default
//! `<config>/logs/kongctl.log`) at `--log-level` (default `error`), never to
//! stdout, so `tail` output stays records only. Nothing logged carries a
//! token or an authorization value: the fields logged are chosen for that.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::filter::LevelFilter;

use crate::cli::LogLevel;

/// Log lines queued for the writer thread; beyond that, lines are dropped
/// (the default, lossy, behaviour) rather than blocking the listener.
const LOG_LINES_BUFFERED: usize = 4096;

/// Starts logging to `file`. Keep the guard alive: dropping it flushes.
/// If the file cannot be opened, logging is off and the reason is returned
/// for a warning.
pub fn init(file: &Path, level: LogLevel) -> Result<WorkerGuard, String> {
    let level = match level {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    };
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::fsutil::create_private_dir_all(dir)
        .map_err(|e| format!("cannot create log directory {}: {e}", dir.display()))?;
    let f = crate::fsutil::open_private_append(file)
        .map_err(|e| format!("cannot open log file {}: {e}", file.display()))?;
    // The channel to the writer thread is allocated, and every slot of it
    // touched, up front: the default 128,000 lines hold 4 MiB of memory for
    // the whole run, more than the rest of an idle listener.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_LINES_BUFFERED)
        .finish(f);
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_max_level(level)
        .with_target(false)
        .try_init()
        .map_err(|e| format!("cannot start logging: {e}"))?;
    Ok(guard)
}
