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
use crate::query::Grep;

/// How printing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailEnd {
    /// stdout was closed by its reader: the caller stops and cleans up.
    pub stdout_closed: bool,
}

/// Prints to stdout every record committed after the subscription's start,
/// those `grep` matches (if given) through `filter` (if given), until the
/// store closes (after its last record) or stdout is closed. Runs on a
/// blocking thread of its own: a slow stdout never holds up the listener.
pub async fn run(
    feed: Subscription,
    filter: Option<JqFilter>,
    grep: Option<Grep>,
) -> std::io::Result<TailEnd> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || print_committed(&handle, feed, filter, grep))
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
pub fn print_file(
    path: &Path,
    filter: Option<JqFilter>,
    grep: Option<Grep>,
) -> std::io::Result<TailEnd> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    print_committed(
        runtime.handle(),
        Subscription::finished(file, len),
        filter,
        grep,
    )
}

/// Follows the subscription, printing to stdout, until the store closes or
/// stdout does. Blocks the thread.
fn print_committed(
    handle: &tokio::runtime::Handle,
    feed: Subscription,
    filter: Option<JqFilter>,
    grep: Option<Grep>,
) -> std::io::Result<TailEnd> {
    let mut sink =
        StdoutSink(TailPrinter::new(std::io::stdout(), std::io::stderr(), filter).with_grep(grep));
    let followed = handle.block_on(follow::follow(feed, &mut sink))?;
    let _ = sink.0.flush();
    Ok(TailEnd {
        stdout_closed: followed.end == FollowEnd::OutputClosed,
    })
}

struct StdoutSink(TailPrinter<std::io::Stdout, std::io::Stderr>);

impl RecordSink for StdoutSink {
    fn record(&mut self, record: &[u8]) -> std::io::Result<()> {
        self.0.print(record)
    }

    fn caught_up(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
