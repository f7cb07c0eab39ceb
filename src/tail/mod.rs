//! `tail`: print stored records as they are acknowledged, optionally through
//! a jq filter run by jaq.
//!
//! [`follow`] reads the events file up to the offset the store has fsynced
//! (and on into the next file at each rotation), and [`printer`] writes the
//! lines to stdout, through the `--jq` filter of [`crate::jq`], and the
//! warnings to stderr. Starting and stopping the listener is left to the
//! caller.

pub mod follow;
pub mod printer;

pub use follow::{FollowEnd, Followed, RecordSink, follow};
pub use printer::TailPrinter;

use std::path::Path;

use crate::jq::JqFilter;
use crate::listener::Subscription;
use crate::query::Filter;

/// How printing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailEnd {
    /// stdout was closed by its reader: the caller stops and cleans up.
    pub stdout_closed: bool,
}

/// What tail prints of each committed record.
#[derive(Default)]
pub struct TailOptions {
    /// `--jq`.
    pub jq: Option<JqFilter>,
    /// `--alert` and `--principal`: the records to print (the query
    /// engine's [`Filter`]); the others are stored, not printed.
    pub filter: Filter,
}

/// Prints to stdout every record committed after the subscription's start
/// that passes `options.filter`, through `options.jq` if given, until the
/// store closes (after its last record) or stdout is closed. Runs on a
/// blocking thread of its own, after the records are stored and
/// acknowledged: a slow stdout (or a filter) never holds up the listener.
pub async fn run(feed: Subscription, options: TailOptions) -> std::io::Result<TailEnd> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || print_committed(&handle, feed, options))
        .await
        .map_err(std::io::Error::other)?
}

/// Prints the records already in the file at `path`, exactly as [`run`]
/// prints the records a listener commits (the same follow, filter and
/// printer), as if the store had committed the whole file and then closed.
///
/// This is the hidden `kongctl tail-file` command, which `bench/run.sh` uses
/// to time `tail --jq` on a large file against gojq without the listener's
/// ingest in the measurement.
pub fn print_file(path: &Path, filter: Option<JqFilter>) -> std::io::Result<TailEnd> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let options = TailOptions {
        jq: filter,
        ..TailOptions::default()
    };
    print_committed(runtime.handle(), Subscription::finished(file, len), options)
}

/// Follows the subscription, printing to stdout, until the store closes or
/// stdout does. Blocks the thread.
fn print_committed(
    handle: &tokio::runtime::Handle,
    feed: Subscription,
    options: TailOptions,
) -> std::io::Result<TailEnd> {
    let mut sink = StdoutSink {
        printer: TailPrinter::new(std::io::stdout(), std::io::stderr(), options.jq),
        filter: options.filter,
    };
    let followed = handle.block_on(follow::follow(feed, &mut sink))?;
    let _ = sink.printer.flush();
    Ok(TailEnd {
        stdout_closed: followed.end == FollowEnd::OutputClosed,
    })
}

struct StdoutSink {
    printer: TailPrinter<std::io::Stdout, std::io::Stderr>,
    filter: Filter,
}

impl RecordSink for StdoutSink {
    fn record(&mut self, record: &[u8]) -> std::io::Result<()> {
        // Without a filter no record is read beyond its bytes; with one, a
        // line that is no audit record matches nothing.
        if !self.filter.is_empty()
            && !crate::record::Record::from_slice(record).is_ok_and(|r| self.filter.matches(&r))
        {
            return Ok(());
        }
        self.printer.print(record)
    }

    fn caught_up(&mut self) -> std::io::Result<()> {
        self.printer.flush()
    }
}
