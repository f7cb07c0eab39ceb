//! One line per record: the record exactly as received, or what `--jq`
//! makes of its JSON view (a CEF record's is the object [`crate::record::cef`]
//! builds).
//!
//! With `--jq` the listener tail's rule applies (no result `null`, one as
//! is, several one array); with `-r` each result is a line of its own,
//! strings unquoted. A record the filter cannot handle is skipped with the
//! listener tail's warning on stderr; the query goes on.

use std::io::{self, BufWriter, Write};
use std::ops::Range;

use bytes::Bytes;

use super::{Output, Summary};
use crate::jq::JqFilter;
use crate::record::Record;

/// Room kept for a filtered line between records.
const LINE_KEEP: usize = 64 * 1024;

/// One record as [`Lines`] prints it, made ahead (see [`Preparer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// Printed, then a newline.
    Line(Bytes),
    /// Printed as nothing (`-r` and a filter with no result).
    Nothing,
    /// Not printed: this warning goes to stderr instead.
    Skipped(String),
}

/// What [`Lines`] does with a record, without its writer, for other
/// threads to do ahead: the filter's text, compiled by each thread that
/// [`Preparer::start`]s (jaq's compiled filters stay on their thread).
#[derive(Debug, Clone)]
pub struct Preparer {
    jq: Option<String>,
    raw: bool,
}

impl Preparer {
    /// A preparer on this thread.
    pub fn start(&self) -> Prepare {
        let jq = self.jq.as_deref().map(|expr| {
            JqFilter::compile(expr).expect("the filter compiled once already compiles again")
        });
        Prepare { jq, raw: self.raw }
    }
}

/// Makes the lines of records (one thread's [`Preparer`]).
pub struct Prepare {
    jq: Option<JqFilter>,
    raw: bool,
}

/// Where a prepared line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Made {
    /// The record's bytes as received.
    Record,
    /// These bytes of the buffer given.
    At(Range<usize>),
    Nothing,
    Skipped(String),
}

impl Prepare {
    /// Prepares `record`, appending what it makes to `buf`.
    pub fn prepare(&self, record: &Record, buf: &mut Vec<u8>) -> Made {
        let Some(filter) = &self.jq else {
            return Made::Record;
        };
        let start = buf.len();
        let json = record.json_bytes();
        let applied = if self.raw {
            filter.apply_raw_bytes(&json, buf)
        } else {
            filter.apply_bytes(&json, buf).map(|()| 1)
        };
        match applied {
            Ok(0) => Made::Nothing,
            Ok(_) => Made::At(start..buf.len()),
            Err(skip) => Made::Skipped(filter.skip_warning(&skip)),
        }
    }
}

pub struct Lines<W: Write, E: Write> {
    out: BufWriter<W>,
    warnings: E,
    prepare: Prepare,
    line: Vec<u8>,
}

impl<W: Write, E: Write> Lines<W, E> {
    pub fn new(out: W, warnings: E, jq: Option<JqFilter>, raw: bool) -> Self {
        Lines {
            out: BufWriter::with_capacity(64 * 1024, out),
            warnings,
            prepare: Prepare { jq, raw },
            line: Vec::new(),
        }
    }

    /// Flushes and gives back the writers.
    pub fn into_inner(self) -> io::Result<(W, E)> {
        let out = self
            .out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        Ok((out, self.warnings))
    }

    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")
    }

    fn warn(&mut self, warning: &str) -> io::Result<()> {
        // Keep lines and warnings in order on a terminal.
        self.out.flush()?;
        let _ = writeln!(self.warnings, "{warning}");
        Ok(())
    }
}

impl<W: Write, E: Write> Output for Lines<W, E> {
    fn record(&mut self, record: &Record) -> io::Result<()> {
        if self.line.capacity() > LINE_KEEP {
            self.line = Vec::new();
        }
        self.line.clear();
        match self.prepare.prepare(record, &mut self.line) {
            Made::Record => self.line(record.raw().trim_ascii()),
            Made::At(at) => {
                let line = std::mem::take(&mut self.line);
                let written = self.line(&line[at]);
                self.line = line;
                written
            }
            Made::Nothing => Ok(()),
            Made::Skipped(warning) => self.warn(&warning),
        }
    }

    fn preparer(&self) -> Option<Preparer> {
        Some(Preparer {
            jq: self.prepare.jq.as_ref().map(|f| f.expr().to_owned()),
            raw: self.prepare.raw,
        })
    }

    fn prepared(&mut self, prepared: &Prepared) -> io::Result<()> {
        match prepared {
            Prepared::Line(line) => self.line(line),
            Prepared::Nothing => Ok(()),
            Prepared::Skipped(warning) => self.warn(warning),
        }
    }

    fn caught_up(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self, _: &Summary) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(jq: Option<&str>, raw: bool, lines: &[&str]) -> (String, String) {
        let filter = jq.map(|e| JqFilter::compile(e).unwrap());
        let mut p = Lines::new(Vec::new(), Vec::new(), filter, raw);
        for l in lines {
            p.record(&Record::from_slice(l.as_bytes()).unwrap())
                .unwrap();
        }
        p.finish(&Summary::default()).unwrap();
        let (out, err) = p.into_inner().unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    const BIG: &str = r#"{"event_ts":"2026-01-01T00:00:00Z","name":"Authz.x","trace_id":3895213347334635099,"future_field":{"b":1,"a":2}}"#;

    #[test]
    fn records_print_exactly_as_received() {
        let (out, err) = print(None, false, &[BIG]);
        assert_eq!(out, format!("{BIG}\n"));
        assert_eq!(err, "");
    }

    #[test]
    fn jq_keeps_big_integers_and_uses_the_0_1_many_rule() {
        let (out, _) = print(Some(".trace_id"), false, &[BIG]);
        assert_eq!(out, "3895213347334635099\n");
        let (out, _) = print(Some("empty"), false, &[BIG]);
        assert_eq!(out, "null\n");
        let (out, _) = print(Some(".name, .trace_id"), false, &[BIG]);
        assert_eq!(out, "[\"Authz.x\",3895213347334635099]\n");
    }

    #[test]
    fn raw_output_writes_strings_unquoted_one_per_line() {
        let (out, _) = print(Some(".name, .future_field, empty"), true, &[BIG]);
        assert_eq!(out, "Authz.x\n{\"a\":2,\"b\":1}\n");
        let (out, _) = print(Some("empty"), true, &[BIG]);
        assert_eq!(out, "");
        let (out, _) = print(Some(r#""""#), true, &[BIG]);
        assert_eq!(out, "\n");
    }

    #[test]
    fn a_failing_record_is_skipped_with_a_warning() {
        let (out, err) = print(
            Some(".name | ascii_downcase"),
            false,
            &[r#"{"name":5}"#, r#"{"name":"OK"}"#],
        );
        assert_eq!(out, "\"ok\"\n");
        assert!(
            err.starts_with("skipping non-JSON or invalid jq record for filter \".name | ascii_downcase\": jq filter failed:"),
            "{err}"
        );
    }

    #[test]
    fn cef_records_print_raw_but_filter_as_json() {
        let cef = "2025-06-18T21:02:36Z konghq.com CEF:0|KongInc|Konnect|1.0|konnect|Authz.control-planes|1|action=list granted=true trace_id=3959872677347089807 sig=K";
        let (out, _) = print(None, false, &[cef]);
        assert_eq!(out, format!("{cef}\n"));
        let (out, _) = print(Some("{name, granted, trace_id, event_ts}"), false, &[cef]);
        assert_eq!(
            out,
            "{\"event_ts\":\"2025-06-18T21:02:36Z\",\"granted\":true,\"name\":\"Authz.control-planes\",\"trace_id\":3959872677347089807}\n"
        );
    }
}
