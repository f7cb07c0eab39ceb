//! How queried audit records are printed: one printer per `-o` choice,
//! shared by every source (pull API, stored events, files).
//!
//! - `jsonl` ([`jsonl`]): each record exactly as received, one per line,
//!   streamed; with `--jq`, the filter's line instead (no result `null`, one
//!   result as is, several an array, as the listener's `tail --jq`), or
//!   with `-r` one line per result with strings unquoted.
//! - `json`/`yaml` ([`envelope`]): upstream's
//!   `{"metadata":{"count","truncated"},"data":[…]}`, printed at the end;
//!   `--jq` applies to the envelope.
//! - `text` ([`rows`]): upstream's `TIMESTAMP TYPE PRINCIPAL ACTION RESULT
//!   TRACE ID` table, or the `--columns` table, aligned at the end; while
//!   following, a header once and tab-separated rows as records come (with
//!   `--jq`, the filter's lines as for `jsonl`).
//!
//! - `--summary` ([`summary`]): counts instead of records, printed at the
//!   end as text (with a bar chart, [`chart`]) or one JSON/YAML document.
//!
//! A printer's errors are its writer's: a closed stdout ends the command
//! (quietly, see [`is_closed_pipe`]). What a filter cannot handle in one
//! record is a warning on stderr and that record is skipped.

pub mod chart;
pub mod columns;
pub mod envelope;
pub mod goindent;
pub mod jsonl;
pub mod rows;
pub mod summary;
pub mod table;

use std::io::{self, Write};

use crate::jq::JqFilter;
use crate::record::Record;
use columns::Column;
pub use jsonl::{Made, Prepare, Prepared, Preparer};

/// `-o` for queries: upstream's `json|yaml|text`, plus `jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    Yaml,
    Jsonl,
}

/// What to print and how.
#[derive(Debug, Default)]
pub struct OutputSpec {
    pub format: Format,
    pub jq: Option<JqFilter>,
    /// `-r/--jq-raw-output`.
    pub raw: bool,
    pub columns: Option<Vec<Column>>,
    /// Rows are printed as they come instead of aligned at the end.
    pub follow: bool,
    /// A follow's text rows have the PORTAL column (Dev Portal records may
    /// come).
    pub portal_column: bool,
}

/// What a finished query printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub count: usize,
    /// More records matched than the limit let through.
    pub truncated: bool,
}

/// A printer of records.
pub trait Output {
    /// Prints (or holds) one record.
    fn record(&mut self, record: &Record) -> io::Result<()>;
    /// The source has caught up for now: make what was printed visible.
    fn caught_up(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Prints what was held and flushes.
    fn finish(&mut self, summary: &Summary) -> io::Result<()>;
    /// For a printer that prints each record on a line of its own: what
    /// makes those lines on other threads (the stored query's workers),
    /// to be printed in order with [`Output::prepared`].
    fn preparer(&self) -> Option<Preparer> {
        None
    }
    /// Prints one record as [`Output::preparer`] prepared it.
    fn prepared(&mut self, _: &Prepared) -> io::Result<()> {
        Err(io::Error::other(
            "this printer takes records, not prepared lines",
        ))
    }
}

impl<O: Output + ?Sized> Output for Box<O> {
    fn record(&mut self, record: &Record) -> io::Result<()> {
        (**self).record(record)
    }
    fn preparer(&self) -> Option<Preparer> {
        (**self).preparer()
    }
    fn prepared(&mut self, prepared: &Prepared) -> io::Result<()> {
        (**self).prepared(prepared)
    }
    fn caught_up(&mut self) -> io::Result<()> {
        (**self).caught_up()
    }
    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        (**self).finish(summary)
    }
}

/// The printer for `spec`, writing records to `out` and per-record
/// warnings to `warnings`; `width` is the terminal's (0: not a terminal,
/// tables are fitted to 120 columns as upstream).
pub fn printer<'a, W: Write + 'a, E: Write + 'a>(
    spec: OutputSpec,
    out: W,
    warnings: E,
    width: usize,
) -> Box<dyn Output + 'a> {
    match spec.format {
        Format::Jsonl => Box::new(jsonl::Lines::new(out, warnings, spec.jq, spec.raw)),
        Format::Text if spec.jq.is_some() => {
            Box::new(jsonl::Lines::new(out, warnings, spec.jq, spec.raw))
        }
        Format::Json | Format::Yaml => Box::new(envelope::Envelope::new(
            out,
            spec.format == Format::Yaml,
            spec.jq,
            spec.raw,
        )),
        Format::Text => Box::new(
            rows::Rows::new(out, spec.columns, spec.follow, width)
                .with_portal_column(spec.portal_column),
        ),
    }
}

/// Whether an output error means the reader went away (`| head`): the
/// command then ends quietly with exit 0.
pub fn is_closed_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_pipe_is_recognised() {
        assert!(is_closed_pipe(&io::Error::from(io::ErrorKind::BrokenPipe)));
        assert!(!is_closed_pipe(&io::Error::other("disk full")));
    }
}
