//! What `tail` writes: each record on stdout, raw or through `--jq`, and a
//! warning on stderr for each record the filter skips. `--jq` sees a CEF
//! record as its JSON object ([`crate::record::cef`]).

use super::follow::RecordSink;
use crate::jq::JqFilter;
use std::io::{self, BufWriter, Write};

/// Room kept for a filtered line between records.
const LINE_KEEP: usize = 64 * 1024;

/// Prints records as the original's tail did.
///
/// Without a filter a record prints as stored; with one, the filter's line.
/// Either way one line per record. Output is buffered and flushed when
/// [`follow`](super::follow::follow) has caught up (or before a warning, so
/// that a terminal shows lines and warnings in order), not per record.
pub struct TailPrinter<W: Write, E: Write> {
    out: BufWriter<W>,
    warnings: E,
    filter: Option<JqFilter>,
    line: Vec<u8>,
}

impl<W: Write, E: Write> TailPrinter<W, E> {
    /// `out` is stdout in production (`std::io::stdout().lock()`; the
    /// printer buffers it), `warnings` stderr.
    pub fn new(out: W, warnings: E, filter: Option<JqFilter>) -> Self {
        TailPrinter {
            out: BufWriter::with_capacity(64 * 1024, out),
            warnings,
            filter,
            line: Vec::new(),
        }
    }

    /// Prints one record (given without its newline).
    ///
    /// Fails only when writing stdout fails; `BrokenPipe` then means the
    /// reader went away. A warning that cannot be written is dropped, as the
    /// original did.
    pub fn print(&mut self, record: &[u8]) -> io::Result<()> {
        let Some(filter) = &self.filter else {
            self.out.write_all(record)?;
            return self.out.write_all(b"\n");
        };
        if self.line.capacity() > LINE_KEEP {
            // Do not keep a huge record's line.
            self.line = Vec::new();
        }
        self.line.clear();
        // A CEF record is filtered as the JSON object Konnect's JSON format
        // has for it, as in `get audit-logs` (the bytes stored and printed
        // without a filter stay the CEF line).
        let cef_json = match record.first() {
            Some(b'{') | None => None,
            Some(_) if crate::record::cef::looks_like_cef(record) => {
                crate::record::cef::to_json(record).ok()
            }
            Some(_) => None,
        };
        match filter.apply(cef_json.as_deref().unwrap_or(record), &mut self.line) {
            Ok(()) => {
                self.line.push(b'\n');
                self.out.write_all(&self.line)
            }
            Err(skip) => {
                self.out.flush()?;
                let warning = filter.skip_warning(&skip);
                let _ = writeln!(self.warnings, "{warning}");
                Ok(())
            }
        }
    }

    /// Writes out buffered lines.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the two writers.
    pub fn into_inner(self) -> io::Result<(W, E)> {
        let out = self
            .out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        Ok((out, self.warnings))
    }
}

impl<W: Write, E: Write> RecordSink for TailPrinter<W, E> {
    fn record(&mut self, record: &[u8]) -> io::Result<()> {
        self.print(record)
    }

    fn caught_up(&mut self) -> io::Result<()> {
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printer(jq: &str) -> TailPrinter<Vec<u8>, Vec<u8>> {
        TailPrinter::new(Vec::new(), Vec::new(), JqFilter::from_flag(jq).unwrap())
    }

    fn printed(p: TailPrinter<Vec<u8>, Vec<u8>>) -> (String, String) {
        let (out, err) = p.into_inner().unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    // The original's tail_stream tests.

    #[test]
    fn invalid_jq() {
        let err = JqFilter::from_flag(".records[").unwrap_err();
        assert!(
            err.to_string().starts_with("invalid jq expression: "),
            "{err}"
        );
    }

    #[test]
    fn raw() {
        let mut p = printer("");
        p.print(br#"{"a":1}"#).unwrap();
        p.print(br#"{"b":2}"#).unwrap();
        assert_eq!(printed(p), ("{\"a\":1}\n{\"b\":2}\n".into(), String::new()));
    }

    #[test]
    fn cef_records_filter_as_json_and_print_raw() {
        let cef = b"2025-06-18T21:02:36Z konghq.com CEF:0|KongInc|Konnect|1.0|konnect|Authz.control-planes|1|action=list granted=true trace_id=3959872677347089807 sig=K";
        let mut p = printer("{name, granted, trace_id}");
        p.print(cef).unwrap();
        assert_eq!(
            printed(p),
            (
                "{\"granted\":true,\"name\":\"Authz.control-planes\",\"trace_id\":3959872677347089807}\n".into(),
                String::new()
            )
        );
        let mut p = printer("");
        p.print(cef).unwrap();
        assert_eq!(printed(p).0, format!("{}\n", String::from_utf8_lossy(cef)));
    }

    #[test]
    fn jq() {
        let mut p = printer(".request.id");
        p.print(br#"{"request":{"id":"abc"}}"#).unwrap();
        assert_eq!(printed(p), ("\"abc\"\n".into(), String::new()));
    }

    #[test]
    fn skips_invalid_json_for_jq() {
        let mut p = printer(".request");
        p.print(b"not-json").unwrap();
        p.print(br#"{"request":{"ok":true}}"#).unwrap();
        let (out, err) = printed(p);
        assert_eq!(out, "{\"ok\":true}\n");
        assert_eq!(
            err,
            "skipping non-JSON or invalid jq record for filter \".request\": record is not valid JSON: invalid character 'o' in literal null (expecting 'u')\n"
        );
    }

    // Ours.

    #[test]
    fn raw_records_are_not_parsed() {
        let mut p = printer("   ");
        p.print(b"CEF:0|Kong|Konnect|1.0|x|y|1|a=b").unwrap();
        p.print(b"\xff not utf-8").unwrap();
        let (out, _) = p.into_inner().unwrap();
        assert_eq!(out, b"CEF:0|Kong|Konnect|1.0|x|y|1|a=b\n\xff not utf-8\n");
    }

    #[test]
    fn output_waits_for_a_flush_and_warnings_flush_it_first() {
        let mut p = printer(".a");
        p.print(br#"{"a":1}"#).unwrap();
        assert!(p.out.get_ref().is_empty());
        p.print(b"{").unwrap();
        assert_eq!(p.out.get_ref(), b"1\n");
        p.print(br#"{"a":2}"#).unwrap();
        p.caught_up().unwrap();
        assert_eq!(p.out.get_ref(), b"1\n2\n");
    }

    /// A writer whose reader has gone, like stdout piped into `head`.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_stdout_is_reported_as_broken_pipe() {
        let mut p = TailPrinter::new(ClosedPipe, Vec::new(), None);
        p.print(b"{}").unwrap();
        let err = p.caught_up().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
