//! `--jq`: a jq filter compiled once by jaq and run on every record.
//!
//! Output follows the original: the record is parsed as JSON, the filter run,
//! and no result prints `null`, one result prints it, several print one JSON
//! array of them, all encoded as Go's `json.Marshal` does (see
//! [`crate::gojson`]). A record that is not JSON, a filter error or a result
//! JSON cannot hold skips the record with a warning ([`RecordSkip`]).
//!
//! Every printer runs `--jq` through this module: the live `tail` and
//! `tail-file` ([`crate::tail`]) and every query output ([`crate::output`]).
//! What a printer does with a skip (a warning line, a count) is its own.
//! The listener's `--on FILTER` ([`crate::exec`]) asks the same filter
//! whether a record matches ([`JqFilter::matches`]).
//!
//! An invalid expression fails at startup with the original's prefixes
//! (`invalid jq expression: ` for syntax, `failed to compile jq expression: `
//! for unknown names), followed by jaq's diagnosis with the expression and
//! the error marked under it.

mod projection;
mod simple;

use crate::gojson::{self, EncodeError, SyntaxError};
use bytes::Bytes;
use core::fmt;
use core::ops::Range;
use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, compile, data::JustLut};
use jaq_json::Val;

type Data = JustLut<Val>;

/// Records nested deeper than this are filtered on a thread with a large
/// stack ([`JqFilter::apply_deep`]); up to it, on the caller's stack, where
/// it costs well under 1 MiB even in a debug build.
const SHALLOW_DEPTH: usize = 128;

/// Stack for records up to Go's nesting limit (10000): about 25 KiB a level,
/// several times what the deepest recursion measured needs. Untouched stack
/// pages cost no memory.
const DEEP_STACK: usize = 256 << 20;

/// A compiled `--jq` filter.
pub struct JqFilter {
    expr: String,
    filter: jaq_core::Filter<Data>,
    /// The only members of a record the filter reads, when it reads no
    /// more ([`projection`]): the others are not parsed into values.
    members: Option<Vec<Box<[u8]>>>,
    /// The filter without jaq's interpreter, if it is that simple
    /// ([`simple`]).
    simple: Option<simple::Simple>,
}

impl fmt::Debug for JqFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JqFilter")
            .field("expr", &self.expr)
            .finish()
    }
}

impl JqFilter {
    /// Reads the `--jq` flag as the original did: surrounding whitespace is
    /// trimmed, and an empty expression means no filter (records print raw).
    pub fn from_flag(expr: &str) -> Result<Option<JqFilter>, FilterCompileError> {
        let expr = expr.trim();
        if expr.is_empty() {
            return Ok(None);
        }
        Self::compile(expr).map(Some)
    }

    /// Parses and compiles `expr` with jaq's core, standard and JSON
    /// libraries. Module imports are refused: a filter reads nothing but the
    /// record.
    pub fn compile(expr: &str) -> Result<JqFilter, FilterCompileError> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(
                &arena,
                File {
                    code: expr,
                    path: (),
                },
            )
            .map_err(|errs| FilterCompileError::load(expr, errs))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| FilterCompileError::compile(expr, errs))?;
        Ok(JqFilter {
            expr: expr.to_owned(),
            filter,
            members: projection::members(expr),
            simple: simple::Simple::compile(expr),
        })
    }

    /// The expression as compiled.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Runs the filter on one record and appends its output line to `out`,
    /// without a trailing newline.
    ///
    /// On error nothing is appended (`out` keeps its length), so one buffer
    /// can collect many records.
    pub fn apply(&self, record: &[u8], out: &mut Vec<u8>) -> Result<(), RecordSkip> {
        // One copy of the record; strings without escapes point into it.
        self.apply_bytes(&Bytes::copy_from_slice(record), out)
    }

    /// [`JqFilter::apply`] to a record already in [`Bytes`] (no copy).
    pub fn apply_bytes(&self, record: &Bytes, out: &mut Vec<u8>) -> Result<(), RecordSkip> {
        self.apply_as(record, out, Results::Line).map(|_| ())
    }

    /// Runs the filter as `-r/--jq-raw-output` asks (jq's `-r`): each
    /// result on a line of its own, a string as its raw text, anything else
    /// as compact JSON. Every line but the last ends with a newline; the
    /// last does not. Returns the number of results (lines): none prints
    /// nothing.
    pub fn apply_raw(&self, record: &[u8], out: &mut Vec<u8>) -> Result<usize, RecordSkip> {
        self.apply_raw_bytes(&Bytes::copy_from_slice(record), out)
    }

    /// [`JqFilter::apply_raw`] to a record already in [`Bytes`] (no copy).
    pub fn apply_raw_bytes(&self, record: &Bytes, out: &mut Vec<u8>) -> Result<usize, RecordSkip> {
        self.apply_as(record, out, Results::RawLines)
    }

    fn apply_as(
        &self,
        record: &Bytes,
        out: &mut Vec<u8>,
        mode: Results,
    ) -> Result<usize, RecordSkip> {
        let start = out.len();
        let result = self.on_record(record, |input| self.run(input, &mut *out, mode));
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// Whether the record matches the filter, as `--on FILTER` reads it:
    /// the filter yields a truthy value, any output that is neither `false`
    /// nor `null` (jq's truthiness, as `select` reads it). Outputs are read
    /// up to the first truthy one; an error before it (the record is not
    /// JSON, the filter fails) is the record's [`RecordSkip`]. No output at
    /// all is no match.
    pub fn matches(&self, record: &[u8]) -> Result<bool, RecordSkip> {
        use jaq_core::ValT;
        // One copy of the record; strings without escapes point into it.
        let record = Bytes::copy_from_slice(record);
        self.on_record(&record, |input| {
            let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
            for result in self.filter.id.run((ctx, input)) {
                if result.map_err(filter_error)?.as_bool() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    /// Parses the record and hands it to `f`: on the caller's stack up to
    /// [`SHALLOW_DEPTH`], else on a thread of its own ([`Self::on_deep`]).
    /// Only the members the filter reads are parsed into values.
    fn on_record<T: Send>(
        &self,
        record: &Bytes,
        f: impl FnOnce(Val) -> Result<T, RecordSkip> + Send,
    ) -> Result<T, RecordSkip> {
        match gojson::parse_members(record, SHALLOW_DEPTH, self.members.as_deref()) {
            Ok(Some(input)) => f(input),
            Ok(None) => self.on_deep(record, f),
            Err(e) => Err(RecordSkip::InvalidJson(e)),
        }
    }

    /// Parses and filters a record nested deeper than [`SHALLOW_DEPTH`] on
    /// a thread of its own with a stack large enough for Go's nesting
    /// limit: jaq, like printing and dropping values, recurses once per
    /// level, a few KiB each.
    fn on_deep<T: Send>(
        &self,
        record: &Bytes,
        f: impl FnOnce(Val) -> Result<T, RecordSkip> + Send,
    ) -> Result<T, RecordSkip> {
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("kongctl-jq-deep".into())
                .stack_size(DEEP_STACK)
                .spawn_scoped(scope, || {
                    match gojson::parse_members(record, gojson::MAX_DEPTH, self.members.as_deref())
                    {
                        Ok(Some(input)) => f(input),
                        Ok(None) => unreachable!("gojson::parse stops at MAX_DEPTH with an error"),
                        Err(e) => Err(RecordSkip::InvalidJson(e)),
                    }
                });
            match worker {
                Ok(worker) => worker
                    .join()
                    .unwrap_or_else(|_| Err(RecordSkip::Filter("jq filter panicked".into()))),
                Err(e) => Err(RecordSkip::Filter(format!(
                    "no thread for a deeply nested record: {e}"
                ))),
            }
        })
    }

    fn run(&self, input: Val, out: &mut Vec<u8>, mode: Results) -> Result<usize, RecordSkip> {
        if let Some(simple) = &self.simple
            && let Ok(result) = simple.eval(&input)
        {
            let start = out.len();
            match result {
                None if mode == Results::Line => out.extend_from_slice(b"null"),
                None => return Ok(0),
                Some(simple::Value::Val(Val::TStr(s) | Val::BStr(s)))
                    if mode == Results::RawLines =>
                {
                    out.extend_from_slice(&s);
                    return Ok(1);
                }
                Some(value) => {
                    if simple::write(out, &value).is_err() {
                        // jaq words what cannot be written.
                        out.truncate(start);
                        return self.run_jaq(input, out, mode);
                    }
                    return Ok(1);
                }
            }
            return Ok(0);
        }
        self.run_jaq(input, out, mode)
    }

    fn run_jaq(&self, input: Val, out: &mut Vec<u8>, mode: Results) -> Result<usize, RecordSkip> {
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        let results = self
            .filter
            .id
            .run((ctx, input))
            .map(|r| r.map_err(filter_error));
        Self::write(results, out, mode)
    }

    /// Writes a record's results as `mode` says.
    fn write(
        results: impl Iterator<Item = Result<Val, RecordSkip>>,
        out: &mut Vec<u8>,
        mode: Results,
    ) -> Result<usize, RecordSkip> {
        let start = out.len();
        let mut count = 0usize;
        // The original collected every result before encoding, so a filter
        // error wins over an encoding error of an earlier result.
        let mut encode_error = None;
        for result in results {
            let value = result?;
            count += 1;
            if encode_error.is_some() {
                continue;
            }
            match (mode, count) {
                (_, 1) => {}
                (Results::Line, 2) => {
                    out.insert(start, b'[');
                    out.push(b',');
                }
                (Results::Line, _) => out.push(b','),
                (Results::RawLines, _) => out.push(b'\n'),
            }
            let written = match (&mode, &value) {
                (Results::RawLines, Val::TStr(s) | Val::BStr(s)) => {
                    out.extend_from_slice(s);
                    Ok(())
                }
                _ => gojson::write(out, &value),
            };
            if let Err(e) = written {
                encode_error = Some(e);
            }
        }
        if let Some(e) = encode_error {
            return Err(match e {
                EncodeError::Key(m) => RecordSkip::Filter(m),
                e @ EncodeError::Unsupported(_) => RecordSkip::Encode(e),
            });
        }
        match (mode, count) {
            (Results::Line, 0) => out.extend_from_slice(b"null"),
            (Results::Line, 2..) => out.push(b']'),
            _ => {}
        }
        Ok(count)
    }

    /// The warning printed to stderr for a skipped record, without newline:
    /// `skipping non-JSON or invalid jq record for filter "<expr>": <reason>`.
    pub fn skip_warning(&self, reason: &RecordSkip) -> String {
        format!(
            "skipping non-JSON or invalid jq record for filter {}: {reason}",
            crate::gofmt::quote(&self.expr)
        )
    }
}

/// A filter's error (or `halt`) as the record's skip.
fn filter_error(exn: jaq_core::Exn<Val>) -> RecordSkip {
    let reason = match exn.get_err() {
        Ok(err) => bounded(error_text(err)),
        // `halt` would exit the process in jaq's own runner; here it only
        // ends this record.
        Err(exn) => match exn.get_halt() {
            Ok(code) => format!("halt with exit code {code}"),
            Err(_) => "unexpected control flow out of the filter".into(),
        },
    };
    RecordSkip::Filter(reason)
}

/// The text of a filter error. A value raised with `error(v)` reads as in
/// gojq (`error: boom`); jaq's own errors carry their message as that value.
fn error_text(err: jaq_core::Error<Val>) -> String {
    let message = err.to_string();
    match err.into_val() {
        Val::TStr(s) if *s == message.as_bytes() => message,
        Val::TStr(s) | Val::BStr(s) => format!("error: {}", String::from_utf8_lossy(&s)),
        value => {
            let mut json = Vec::new();
            match gojson::write(&mut json, &value) {
                Ok(()) => format!("error: {}", String::from_utf8_lossy(&json)),
                Err(_) => format!("error: {value}"),
            }
        }
    }
}

/// Cuts a filter error to [`MAX_REASON`] bytes: jaq's messages quote whole
/// values, and one warning per record must not print each record in full.
fn bounded(mut reason: String) -> String {
    if reason.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push_str(" ...");
    }
    reason
}

/// How a record's results become output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Results {
    /// The original's rule: no result `null`, one as is, several an array.
    Line,
    /// jq's `-r`: one line per result, strings unquoted.
    RawLines,
}

/// Longest filter error shown in a warning, in bytes.
const MAX_REASON: usize = 300;

/// Why a record printed nothing; the text is the original's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordSkip {
    /// `record is not valid JSON: <Go's json error>`
    #[error("record is not valid JSON: {0}")]
    InvalidJson(SyntaxError),
    /// `jq filter failed: <error>`; the error text is jaq's.
    #[error("jq filter failed: {0}")]
    Filter(String),
    /// A result JSON cannot hold (NaN, infinity): `json: unsupported value:
    /// NaN`, which the original printed without a prefix.
    #[error("{0}")]
    Encode(EncodeError),
}

/// A `--jq` expression that does not compile.
///
/// Display: the original's prefix, then for each error jaq's message and the
/// expression with the offending part marked:
///
/// ```text
/// invalid jq expression: expected closing bracket
///   1 | .records[
///     |         ^ unclosed delimiter [
///     |          ^ unexpected end of input
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterCompileError {
    stage: Stage,
    code: String,
    reports: Vec<Report>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Lexing or parsing: gojq.Parse in the original.
    Parse,
    /// Name resolution: gojq.Compile in the original.
    Compile,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Report {
    message: String,
    /// Byte ranges of the code, each with the text to put under it.
    labels: Vec<(Range<usize>, String)>,
}

impl std::error::Error for FilterCompileError {}

impl FilterCompileError {
    fn load(code: &str, errs: load::Errors<&str, ()>) -> Self {
        let mut reports = Vec::new();
        for (file, err) in errs {
            // Only the expression itself can hold errors; jaq's own
            // definitions are known to load.
            if file.code.as_ptr() != code.as_ptr() {
                continue;
            }
            match err {
                load::Error::Io(errs) => {
                    reports.extend(errs.into_iter().map(|(path, why)| Report {
                        message: format!("cannot import {path}: {why}"),
                        labels: vec![(load::span(code, path), why)],
                    }));
                }
                load::Error::Lex(errs) => {
                    reports.extend(errs.into_iter().map(|e| lex_report(code, e)));
                }
                load::Error::Parse(errs) => {
                    reports.extend(errs.into_iter().map(|(expected, found)| Report {
                        message: format!("expected {}", expected.as_str()),
                        labels: vec![(load::span(code, found), unexpected(found))],
                    }));
                }
            }
        }
        FilterCompileError {
            stage: Stage::Parse,
            code: code.to_owned(),
            reports,
        }
    }

    fn compile(code: &str, errs: compile::Errors<&str, ()>) -> Self {
        use compile::Undefined;
        let mut reports = Vec::new();
        for (file, errs) in errs {
            if file.code.as_ptr() != code.as_ptr() {
                continue;
            }
            for (name, undefined) in errs {
                let wrong_args =
                    |expected| format!("wrong number of arguments to {name} (expected {expected})");
                let message = match (name, undefined) {
                    ("reduce", Undefined::Filter(_)) => wrong_args("2"),
                    ("foreach", Undefined::Filter(_)) => wrong_args("2 or 3"),
                    (_, Undefined::Filter(arity)) => format!("undefined filter {name}/{arity}"),
                    (_, other) => format!("undefined {} {name}", other.as_str()),
                };
                reports.push(Report {
                    labels: vec![(load::span(code, name), message.clone())],
                    message,
                });
            }
        }
        FilterCompileError {
            stage: Stage::Compile,
            code: code.to_owned(),
            reports,
        }
    }
}

fn lex_report(code: &str, (expected, found): load::lex::Error<&str>) -> Report {
    // The lexer hands over the rest of the input; mark its first character.
    let found = &found[..found.chars().next().map_or(0, char::len_utf8)];
    let mut labels = Vec::new();
    if let load::lex::Expect::Delim(open) = expected {
        labels.push((load::span(code, open), format!("unclosed delimiter {open}")));
    }
    let what = if found.is_empty() {
        "unexpected end of input".to_owned()
    } else {
        format!("unexpected character {found}")
    };
    labels.push((load::span(code, found), what));
    Report {
        message: format!("expected {}", expected.as_str()),
        labels,
    }
}

/// What the parser found instead of what it expected.
fn unexpected(found: &str) -> String {
    if found.is_empty() {
        "unexpected end of input".into()
    } else {
        "unexpected token".into()
    }
}

impl fmt::Display for FilterCompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.stage {
            Stage::Parse => "invalid jq expression: ",
            Stage::Compile => "failed to compile jq expression: ",
        })?;
        if self.reports.is_empty() {
            return write!(f, "{}", crate::gofmt::quote(&self.code));
        }
        for (k, report) in self.reports.iter().enumerate() {
            if k > 0 {
                writeln!(f)?;
            }
            f.write_str(&report.message)?;
            render_labels(f, &self.code, &report.labels)?;
        }
        Ok(())
    }
}

/// Writes the lines of `code` that labels point at, each followed by one
/// marker line per label: `^` under the marked characters, then the text.
fn render_labels(
    f: &mut fmt::Formatter<'_>,
    code: &str,
    labels: &[(Range<usize>, String)],
) -> fmt::Result {
    let mut labels: Vec<_> = labels.iter().collect();
    labels.sort_by_key(|(range, _)| (range.start, range.end));
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(code.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |pos: usize| line_starts.partition_point(|&s| s <= pos) - 1;
    let width = line_starts.len().to_string().len();
    let mut shown = None;
    for (range, text) in labels {
        let line = line_of(range.start);
        let start = line_starts[line];
        let end = line_starts
            .get(line + 1)
            .map_or(code.len(), |&next| next - 1);
        let line_text = &code[start..end];
        if shown != Some(line) {
            write!(
                f,
                "\n  {:>width$} | {}",
                line + 1,
                line_text.replace('\t', "    ")
            )?;
            shown = Some(line);
        }
        let column = columns(&line_text[..range.start - start]);
        let marked = columns(&code[range.start..range.end.min(end)]).max(1);
        write!(
            f,
            "\n  {:width$} | {:column$}{} {text}",
            "",
            "",
            "^".repeat(marked)
        )?;
    }
    Ok(())
}

/// Display columns of `s` with tabs shown as four spaces.
fn columns(s: &str) -> usize {
    s.chars().map(|c| if c == '\t' { 4 } else { 1 }).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(expr: &str, record: &str) -> Result<String, String> {
        let filter = JqFilter::compile(expr).unwrap();
        let mut out = Vec::new();
        filter
            .apply(record.as_bytes(), &mut out)
            .map(|()| String::from_utf8(out).unwrap())
            .map_err(|e| e.to_string())
    }

    /// Runs `expr` over `records` line by line as `tail --jq` prints them,
    /// with `SKIP ` before each warning.
    fn tail_lines(expr: &str, records: &[u8]) -> Vec<u8> {
        let filter = JqFilter::compile(expr).unwrap();
        let mut lines = Vec::new();
        for record in records.strip_suffix(b"\n").unwrap().split(|&c| c == b'\n') {
            if let Err(e) = filter.apply(record, &mut lines) {
                lines.extend_from_slice(b"SKIP ");
                lines.extend_from_slice(filter.skip_warning(&e).as_bytes());
            }
            lines.push(b'\n');
        }
        lines
    }

    #[test]
    fn a_record_matches_when_the_filter_yields_a_truthy_value() {
        let m =
            |expr: &str, record: &str| JqFilter::compile(expr).unwrap().matches(record.as_bytes());
        let rec = r#"{"name":"AUTHENTICATION_OUTCOME_LOCKED","severity":6,"n":0,"s":""}"#;
        assert_eq!(m(".severity == 6", rec), Ok(true));
        assert_eq!(m(".severity == 1", rec), Ok(false));
        assert_eq!(m("select(.severity > 5)", rec), Ok(true));
        assert_eq!(m("select(.severity > 6)", rec), Ok(false), "no output");
        assert_eq!(m("empty", rec), Ok(false));
        assert_eq!(m(".missing", rec), Ok(false), "null");
        // 0 and "" are truthy in jq.
        assert_eq!(m(".n", rec), Ok(true));
        assert_eq!(m(".s", rec), Ok(true));
        assert_eq!(m("null, false, 1", rec), Ok(true));
        // Outputs are read up to the first truthy one.
        assert_eq!(m("true, error(\"late\")", rec), Ok(true));
        assert_eq!(
            m("false, error(\"boom\")", rec),
            Err(RecordSkip::Filter("error: boom".into()))
        );
        assert!(matches!(
            m(".", "not json"),
            Err(RecordSkip::InvalidJson(_))
        ));
        // Deeper than the caller's stack is asked for.
        let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000));
        assert_eq!(m("length == 1", &deep), Ok(true));
    }

    /// Filters that read only some members give, with only those parsed
    /// and run without jaq where they are simple enough, exactly what jaq
    /// gives with the whole record: results, errors and warnings, on every
    /// record of the original's test data and on some made for it.
    #[test]
    fn reading_only_the_members_a_filter_reads_changes_nothing() {
        let mut records: Vec<Vec<u8>> = include_bytes!("testdata/records.jsonl")
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        for extra in [
            r#"{"a":{"x":1},"b":"x","c":[1,2],"k":"v","v":3,"event_id":"e"}"#,
            r#"{"a":"s","b":null,"request":{"status_code":500},"event_id":7}"#,
            r#"{"a":1,"b":2,"a":{"x":"last"}}"#,
            r#"{"a":1,"b":[1,2,3}"#,
            r#"{"z":1e999,"a":1}"#,
            r#"{"z":"\ud800","a":"\u00e9"}"#,
            r#"[1,2]"#,
            r#""text""#,
        ] {
            records.push(extra.as_bytes().to_vec());
        }
        for expr in [
            "{ts: .event_ts, name, principal_id, granted}",
            "{ts: .event_ts, name, request: (.request // null)}",
            "select(.request.status_code >= 400) | .event_id",
            ".a[.b]",
            ".a.x",
            ".a | keys",
            ".a + .b",
            r#""\(.a)-\(.b)""#,
            "try (.a | tostring) catch .",
            "if .a then .b else .c end",
            ".a as $x | [.b, $x]",
            "{(.k): .v}",
            "select(.a and (.b | not)) | {c}",
            "{a, b: .b.x, c: (.c // null), d: (.a // 7), e: \"s\", f: true}",
            "select(.a == 1) | .b",
            "select(.a >= \"s\") | {b}",
            "select(.request.status_code < 500) | .event_id",
            ".a.x // .b",
            "select(.b) | .a",
            "{event_ts, sig: .sig} | .sig",
        ] {
            let projected = JqFilter::compile(expr).unwrap();
            assert!(projected.members.is_some(), "{expr}");
            let mut whole = JqFilter::compile(expr).unwrap();
            whole.members = None;
            whole.simple = None;
            for record in &records {
                let run = |f: &JqFilter| {
                    let mut out = Vec::new();
                    let mut raw = Vec::new();
                    let line = f.apply(record, &mut out).map_err(|e| f.skip_warning(&e));
                    let lines = f.apply_raw(record, &mut raw).map_err(|e| e.to_string());
                    (line, out, lines, raw)
                };
                assert_eq!(
                    run(&projected),
                    run(&whole),
                    "{expr} on {}",
                    String::from_utf8_lossy(record)
                );
            }
        }
    }

    thread_local! {
        /// Each filter run without jaq where it can, and by jaq alone.
        static SIMPLE_PAIRS: Vec<(JqFilter, JqFilter)> = [
            "{ts: .a, name, x: .x.y}",
            "{ts: .a, name, request: (.request // null)}",
            "select(.request.status_code >= 400) | .event_id",
            "select(.a == 1) | {b, c}",
            "select(.a) | .b // .c",
            ".x.x.y",
            "select(.b < \"s\") | .name",
            "{a: {b: .b, c: 1}, d: .x}",
        ]
        .into_iter()
        .map(|expr| {
            let fast = JqFilter::compile(expr).unwrap();
            assert!(fast.simple.is_some(), "{expr}");
            let mut jaq = JqFilter::compile(expr).unwrap();
            jaq.simple = None;
            jaq.members = None;
            (fast, jaq)
        })
        .collect();
    }

    proptest::proptest! {
        /// The filters run without jaq give what jaq gives, on records of
        /// every shape those filters can meet.
        #[test]
        fn simple_filters_give_what_jaq_gives(
            members in proptest::collection::vec((
                proptest::sample::select(vec!["a", "b", "c", "x", "request", "event_id", "name"]),
                proptest::sample::select(vec![
                    "null", "true", "false", "0", "1", "-3", "400", "500", "2.5", "1e3",
                    "12345678901234567890", "\"s\"", "\"\"", "\"t<&>\"", "[]", "[1,\"a\"]",
                    "{}", "{\"x\":1}", "{\"status_code\":404,\"x\":null}", "{\"x\":{\"y\":2}}",
                ]),
            ), 0..6),
        ) {
            let body: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let record = format!("{{{}}}", body.join(","));
            let run = |f: &JqFilter| {
                let mut out = Vec::new();
                let mut raw = Vec::new();
                let line = f.apply(record.as_bytes(), &mut out).map_err(|e| e.to_string());
                let lines = f.apply_raw(record.as_bytes(), &mut raw).map_err(|e| e.to_string());
                (line, String::from_utf8_lossy(&out).into_owned(), lines, String::from_utf8_lossy(&raw).into_owned())
            };
            SIMPLE_PAIRS.with(|pairs| {
                for (fast, jaq) in pairs {
                    proptest::prop_assert_eq!(run(fast), run(jaq), "{} on {}", fast.expr(), record);
                }
                Ok(())
            })?;
        }
    }

    /// Output of the original's code (Go's json.Unmarshal, gojq, Go's
    /// json.Marshal), with numbers read as gojq reads them; see
    /// testdata/README.md.
    #[test]
    fn output_matches_the_original_pipeline_byte_for_byte() {
        let records = include_bytes!("testdata/records.jsonl");
        let cases: [(&str, &[u8]); 7] = [
            (".", include_bytes!("testdata/golden/identity.out")),
            (
                "{ts:.event_ts, name, request:(.request // null)}",
                include_bytes!("testdata/golden/projection.out"),
            ),
            (
                "select(.request.status_code >= 400) | .event_id",
                include_bytes!("testdata/golden/select_status.out"),
            ),
            (
                "{ts: .event_ts, name}",
                include_bytes!("testdata/golden/ts_name.out"),
            ),
            (
                "select(.severity > 3)",
                include_bytes!("testdata/golden/select_severity.out"),
            ),
            (".trace_id", include_bytes!("testdata/golden/trace_id.out")),
            (
                ".event_id, .trace_id",
                include_bytes!("testdata/golden/multi.out"),
            ),
        ];
        for (expr, expected) in cases {
            let got = tail_lines(expr, records);
            assert!(
                got == expected,
                "filter {expr}:\n{}",
                String::from_utf8_lossy(&got)
            );
        }
        let got = tail_lines(".", include_bytes!("testdata/tricky.jsonl"));
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(include_bytes!("testdata/golden/tricky.out"))
        );
    }

    #[test]
    fn results_print_as_null_value_or_array() {
        assert_eq!(run("empty", "{}").unwrap(), "null");
        assert_eq!(
            run(".request.id", r#"{"request":{"id":"abc"}}"#).unwrap(),
            r#""abc""#
        );
        assert_eq!(run(".a, .b", r#"{"a":1,"b":[2]}"#).unwrap(), "[1,[2]]");
        assert_eq!(run(".[]", "[1,2,3]").unwrap(), "[1,2,3]");
        assert_eq!(run("[.[]]", "[]").unwrap(), "[]");
    }

    #[test]
    fn gojq_object_order_is_what_the_filter_sees() {
        assert_eq!(
            run("keys_unsorted", r#"{"b":1,"a":2}"#).unwrap(),
            r#"["a","b"]"#
        );
        assert_eq!(run("[.[]]", r#"{"b":1,"a":2}"#).unwrap(), "[2,1]");
    }

    #[test]
    fn skips_carry_the_original_reasons() {
        assert_eq!(
            run(".", "not-json").unwrap_err(),
            "record is not valid JSON: invalid character 'o' in literal null (expecting 'u')"
        );
        assert_eq!(
            run(r#"error("boom")"#, "{}").unwrap_err(),
            "jq filter failed: error: boom"
        );
        assert_eq!(
            run(r#"error({a: "<"})"#, "{}").unwrap_err(),
            r#"jq filter failed: error: {"a":"\u003c"}"#
        );
        assert_eq!(
            run(".a.b", r#"{"a":"x"}"#).unwrap_err(),
            r#"jq filter failed: cannot index "x" with "b""#
        );
        assert_eq!(
            run(".x * 1e308 * 10", r#"{"x":1}"#).unwrap_err(),
            "json: unsupported value: +Inf"
        );
        assert_eq!(
            run("[nan]", "{}").unwrap_err(),
            "json: unsupported value: NaN"
        );
        // As in the original, a filter error wins over a result JSON cannot hold.
        assert_eq!(
            run(r#"nan, error("late")"#, "{}").unwrap_err(),
            "jq filter failed: error: late"
        );
        assert_eq!(
            run("{(1): 2}", "{}").unwrap_err(),
            "jq filter failed: expected a string for object key but got: number (1)"
        );
    }

    #[test]
    fn halt_ends_the_record_not_the_process() {
        assert_eq!(
            run("halt", "{}").unwrap_err(),
            "jq filter failed: halt with exit code 0"
        );
        assert_eq!(
            run("halt(3)", "{}").unwrap_err(),
            "jq filter failed: halt with exit code 3"
        );
    }

    #[test]
    fn long_filter_errors_are_cut() {
        let record = format!(r#"{{"a":"{}"}}"#, "x".repeat(5000));
        let reason = run(".a.b", &record).unwrap_err();
        assert!(reason.len() < 400, "{reason}");
        assert!(reason.ends_with(" ..."));
    }

    #[test]
    fn a_skipped_record_appends_nothing() {
        let filter = JqFilter::compile(".a, error(\"x\")").unwrap();
        let mut out = b"kept".to_vec();
        assert!(filter.apply(br#"{"a":1}"#, &mut out).is_err());
        assert!(filter.apply(b"{", &mut out).is_err());
        assert_eq!(out, b"kept");
        filter.apply(b"[", &mut out).unwrap_err();
        JqFilter::compile(".a")
            .unwrap()
            .apply(br#"{"a":2}"#, &mut out)
            .unwrap();
        assert_eq!(out, b"kept2");
    }

    #[test]
    fn deeply_nested_records_are_filtered_off_the_callers_stack() {
        // 10000 levels (Go's limit) need far more stack than a test
        // thread's 2 MiB when jaq prints or drops them.
        let record = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(run("tojson | length", &record).unwrap(), "20000");
        let reason = run(".a", &record).unwrap_err();
        assert!(
            reason.starts_with("jq filter failed: cannot index [[[["),
            "{reason}"
        );
    }

    #[test]
    fn the_warning_line_quotes_the_expression_as_go() {
        let filter = JqFilter::compile(r#"select(.name == "x")"#).unwrap();
        let mut out = Vec::new();
        let skip = filter.apply(b"nope", &mut out).unwrap_err();
        assert_eq!(
            filter.skip_warning(&skip),
            r#"skipping non-JSON or invalid jq record for filter "select(.name == \"x\")": record is not valid JSON: invalid character 'o' in literal null (expecting 'u')"#
        );
    }

    #[test]
    fn the_flag_is_trimmed_and_blank_means_no_filter() {
        assert!(JqFilter::from_flag("  \n").unwrap().is_none());
        let filter = JqFilter::from_flag("  .a ").unwrap().unwrap();
        assert_eq!(filter.expr(), ".a");
    }

    #[test]
    fn syntax_errors_show_the_expression_with_the_error_marked() {
        let err = JqFilter::compile(".records[").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid jq expression: expected closing bracket\n\
             \x20 1 | .records[\n\
             \x20   |         ^ unclosed delimiter [\n\
             \x20   |          ^ unexpected end of input"
        );
        let err = JqFilter::compile(".a |\n\t.b | §").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid jq expression: expected token\n\
             \x20 2 |     .b | §\n\
             \x20   |          ^ unexpected character §"
        );
        let err = JqFilter::compile(".a ; .b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid jq expression: expected nothing\n\
             \x20 1 | .a ; .b\n\
             \x20   |    ^ unexpected token"
        );
    }

    #[test]
    fn unknown_names_fail_to_compile() {
        assert_eq!(
            JqFilter::compile(".a | foo(1)").unwrap_err().to_string(),
            "failed to compile jq expression: undefined filter foo/1\n\
             \x20 1 | .a | foo(1)\n\
             \x20   |      ^^^ undefined filter foo/1"
        );
        assert_eq!(
            JqFilter::compile("$x").unwrap_err().to_string(),
            "failed to compile jq expression: undefined variable $x\n\
             \x20 1 | $x\n\
             \x20   | ^^ undefined variable $x"
        );
        // Filters read the record and nothing else.
        let err = JqFilter::compile(r#"import "m" as m; ."#)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid jq expression: cannot import m: "),
            "{err}"
        );
        assert!(JqFilter::compile("input").is_err());
    }

    #[test]
    fn a_compiled_filter_can_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<JqFilter>();
    }
}
