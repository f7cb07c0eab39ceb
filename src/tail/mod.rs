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
use crate::output::{Output, Summary};
use crate::query::names::{Named, Names};
use crate::query::{Filter, Grep};
use crate::record::Record;
use crate::store::Subscription;

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
    /// `--alert` and `--principal` by id: the records to print (the query
    /// engine's [`Filter`]); the others are stored, not printed.
    pub filter: Filter,
    /// `--principal` values to resolve to ids (emails, names) with
    /// `names`, before the first record is printed.
    pub principals: Vec<String>,
    /// Principal names: for `--principal`, and with `resolve` to add
    /// `principal_name` to each record ([`Named`]).
    pub names: Option<Names>,
    /// `--resolve`.
    pub resolve: bool,
    /// `--grep`: records whose bytes do not match are not read at all.
    pub grep: Option<Grep>,
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
pub fn print_file(
    path: &Path,
    filter: Option<JqFilter>,
    grep: Option<Grep>,
) -> std::io::Result<TailEnd> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let options = TailOptions {
        jq: filter,
        grep,
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
    let mut filter = options.filter;
    if !options.principals.is_empty() {
        // Looked up here, off the listener's tasks: records committed
        // meanwhile wait in the subscription.
        filter.principals = Some(std::sync::Arc::new(Names::principals(
            options.names.as_ref(),
            &options.principals,
        )));
    }
    let printer = TailPrinter::new(std::io::stdout(), std::io::stderr(), options.jq);
    let output = match options.names {
        Some(names) if options.resolve => Printing::Named(Named::new(TailOutput(printer), names)),
        _ => Printing::Plain(printer),
    };
    let mut sink = StdoutSink {
        grep: options.grep,
        filter,
        output,
    };
    let followed = handle.block_on(follow::follow(feed, &mut sink))?;
    let _ = match &mut sink.output {
        Printing::Plain(p) => p.flush(),
        Printing::Named(n) => n.finish(&Summary::default()),
    };
    Ok(TailEnd {
        stdout_closed: followed.end == FollowEnd::OutputClosed,
    })
}

/// Records as stored, or named first (`--resolve`).
enum Printing {
    Plain(TailPrinter<std::io::Stdout, std::io::Stderr>),
    Named(Named<TailOutput>),
}

struct StdoutSink {
    grep: Option<Grep>,
    filter: Filter,
    output: Printing,
}

impl RecordSink for StdoutSink {
    fn record(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.grep.as_ref().is_some_and(|g| !g.is_match(bytes)) {
            return Ok(());
        }
        if let Printing::Plain(printer) = &mut self.output
            && self.filter.is_empty()
        {
            // No record is read beyond its bytes.
            return printer.print(bytes);
        }
        match Record::from_slice(bytes) {
            Ok(r) if !self.filter.matches(&r) => Ok(()),
            Ok(r) => match &mut self.output {
                Printing::Plain(printer) => printer.print(bytes),
                Printing::Named(named) => named.record(&r),
            },
            // A line that is no audit record matches no filter, and has no
            // principal to name: it prints as it is, in its place.
            Err(_) if !self.filter.is_empty() => Ok(()),
            Err(_) => match &mut self.output {
                Printing::Plain(printer) => printer.print(bytes),
                Printing::Named(named) => {
                    named.caught_up()?;
                    named.inner_mut().0.print(bytes)
                }
            },
        }
    }

    fn caught_up(&mut self) -> std::io::Result<()> {
        match &mut self.output {
            Printing::Plain(printer) => printer.flush(),
            Printing::Named(named) => named.caught_up(),
        }
    }
}

/// The tail's printer as a query output.
struct TailOutput(TailPrinter<std::io::Stdout, std::io::Stderr>);

impl Output for TailOutput {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        self.0.print(record.raw().trim_ascii())
    }

    fn caught_up(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }

    fn finish(&mut self, _: &Summary) -> std::io::Result<()> {
        self.0.flush()
    }
}
