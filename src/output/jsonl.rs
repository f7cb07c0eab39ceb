//! One line per record: the record exactly as received, or what `--jq`
//! makes of its JSON view (a CEF record's is the object [`crate::record::cef`]
//! builds).
//!
//! With `--jq` the listener tail's rule applies (no result `null`, one as
//! is, several one array); with `-r` each result is a line of its own,
//! strings unquoted. A record the filter cannot handle is skipped with the
//! listener tail's warning on stderr; the query goes on.

use std::io::{self, BufWriter, Write};

use super::{Output, Summary};
use crate::jq::JqFilter;
use crate::record::Record;

/// Room kept for a filtered line between records.
const LINE_KEEP: usize = 64 * 1024;

pub struct Lines<W: Write, E: Write> {
    out: BufWriter<W>,
    warnings: E,
    jq: Option<JqFilter>,
    raw: bool,
    line: Vec<u8>,
}

impl<W: Write, E: Write> Lines<W, E> {
    pub fn new(out: W, warnings: E, jq: Option<JqFilter>, raw: bool) -> Self {
        Lines {
            out: BufWriter::with_capacity(64 * 1024, out),
            warnings,
            jq,
            raw,
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
}

impl<W: Write, E: Write> Output for Lines<W, E> {
    fn record(&mut self, record: &Record) -> io::Result<()> {
        let Some(filter) = &self.jq else {
            self.out.write_all(record.raw().trim_ascii())?;
            return self.out.write_all(b"\n");
        };
        if self.line.capacity() > LINE_KEEP {
            self.line = Vec::new();
        }
        self.line.clear();
        let json = record.json_bytes();
        let applied = if self.raw {
            filter.apply_raw_bytes(&json, &mut self.line)
        } else {
            filter.apply_bytes(&json, &mut self.line).map(|()| 1)
        };
        match applied {
            Ok(0) => Ok(()),
            Ok(_) => {
                self.line.push(b'\n');
                self.out.write_all(&self.line)
            }
            Err(skip) => {
                // Keep lines and warnings in order on a terminal.
                self.out.flush()?;
                let _ = writeln!(self.warnings, "{}", filter.skip_warning(&skip));
                Ok(())
            }
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
