//! `get audit-logs --stored|--file … --verify`: the tamper check of an
//! archive. Every record of every file is checked ([`super::check`])
//! against one key set: `--jwks FILE`, else the `jwks.json` the profile's
//! listener saved, else Konnect's JWKS fetched now.
//!
//! Output, per `-o`:
//! - `text`: one summary line per file on stdout, `<file>: valid N, invalid
//!   N, unsigned N, unverifiable N`; each failing record named on stderr,
//!   `<file>:<line>: <reason>: <why>` (invalid ones; unsigned ones too with
//!   `--strict`).
//! - `jsonl`: each invalid or unsigned record on stdout, `{"file", "line",
//!   "reason", "detail", "record"}` (`record` the raw line as a JSON
//!   string); the summary lines on stderr.
//! - `json`/`yaml`: one document, a list of `{"file", "valid", "invalid",
//!   "unsigned", "unverifiable", "failures": [...]}`.
//!
//! The command fails (exit 1) when any record is invalid; with `--strict`
//! also when any is unsigned or any line is no audit record. Unverifiable
//! records (cps, pull) never fail it.
//!
//! Files are checked one per core; what each reports is kept until the
//! files before it are printed, so the output is that of one check after
//! the other.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::check::{self, Kind, Outcome};
use super::jwks::KeySet;
use super::{Counts, JWKS_FILE};
use crate::config::Settings;
use crate::error::CliError;
use crate::konnect::client::ClientOptions;
use crate::konnect::{AuditLogs, KonnectClient};
use crate::output::{self, Format};
use crate::source::file;

/// What to check and how to report it.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--strict`.
    pub strict: bool,
    pub format: Format,
}

/// One record that failed (or, unsigned, may fail) the check.
#[derive(Debug, Clone, Serialize)]
struct Failure {
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    line: u64,
    reason: &'static str,
    detail: &'static str,
    record: String,
}

/// One file's result, for `-o json|yaml`.
#[derive(Debug, Serialize)]
struct FileReport {
    file: String,
    #[serde(flatten)]
    counts: Counts,
    failures: Vec<Failure>,
}

/// The profile's stored events, oldest first: the closed segments
/// (`events-<time>-<seq>.jsonl`, or `.jsonl.gz` once compressed; the plain
/// one while both exist), in rotation order (their seq), then the active
/// `events.jsonl`.
pub fn stored_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    // The store reader's listing: segments in rotation (seq) order, the
    // plain file where a compression is under way (it is the whole one).
    let mut files: Vec<PathBuf> = crate::source::stored::list_segments(dir)?
        .into_iter()
        .map(|segment| segment.file(dir))
        .collect();
    let active = dir.join("events.jsonl");
    if active.exists() {
        files.push(active);
    }
    Ok(files)
}

/// The keys to check against: `--jwks FILE`, else the profile's saved
/// `jwks.json`, else Konnect's, fetched now.
pub fn load_keys(settings: &Settings, jwks: Option<&Path>) -> Result<KeySet, CliError> {
    if let Some(path) = jwks {
        return KeySet::read(path).map_err(|e| CliError::new(format!("--jwks: {e}")));
    }
    let saved = settings.audit_log_dir().join(JWKS_FILE);
    if saved.exists() {
        return KeySet::read(&saved).map_err(|e| {
            CliError::new(format!("saved signing keys: {e}"))
                .with_hint("give the keys with --jwks FILE, or delete the file to fetch Konnect's")
        });
    }
    fetch_keys(settings).map_err(|e| {
        CliError::new(format!("fetch audit-log signing keys (JWKS): {e}")).with_hint(
            "give the keys with --jwks FILE; a listener saves Konnect's in the profile's jwks.json",
        )
    })
}

fn fetch_keys(settings: &Settings) -> Result<KeySet, String> {
    let client = KonnectClient::from_settings(settings, ClientOptions::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("failed to start the async runtime: {e}"))?;
    let body = runtime
        .block_on(AuditLogs::new(client).jwks(None))
        .map_err(|e| e.to_string())?;
    KeySet::parse(&body).map_err(|e| format!("Konnect's JWKS: {e}"))
}

/// Checks every record of `files` against `keys` and reports as
/// `opts.format` says.
pub fn run(files: &[PathBuf], keys: &KeySet, opts: &Options) -> Result<(), CliError> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match check_files(files, keys, opts, &mut out) {
        Ok(outcome) => outcome,
        Err(e) if output::is_closed_pipe(&e) => Ok(()),
        Err(e) => Err(CliError::new(format!("failed to check signatures: {e}"))),
    }
}

/// The work of [`run`]; `Err` only for I/O on `out` (the verdict is the
/// inner result). Files are checked one per core ([`check_file`]), and
/// what each reports is printed in file order, as one read after the other
/// would print it.
fn check_files(
    files: &[PathBuf],
    keys: &KeySet,
    opts: &Options,
    out: &mut impl Write,
) -> io::Result<Result<(), CliError>> {
    let mut totals = Counts::default();
    let mut unreadable = 0u64;
    let mut reports = Vec::new();
    let mut failed = None;
    in_order(
        files,
        |path| check_file(path, keys, opts),
        |done| {
            for chunk in done.report {
                match chunk {
                    Chunk::Out(bytes) => out.write_all(&bytes)?,
                    Chunk::Err(line) => eprintln!("{line}"),
                }
            }
            if let Some(e) = done.read_error {
                failed = Some(e);
                return Ok(false);
            }
            unreadable += done.unreadable;
            for kind in Kind::ALL {
                totals.add(kind, done.counts.get(kind));
            }
            if let Some(report) = done.file_report {
                reports.push(report);
            }
            Ok(true)
        },
    )?;
    if let Some(e) = failed {
        return Ok(Err(e));
    }
    match opts.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &reports)?;
            writeln!(out)?;
        }
        Format::Yaml => {
            let text = serde_yaml_ng::to_string(&reports).map_err(io::Error::other)?;
            out.write_all(text.as_bytes())?;
        }
        Format::Text | Format::Jsonl => {}
    }
    out.flush()?;
    Ok(verdict(&totals, unreadable, opts.strict))
}

/// Runs `work` on each of `items` on every core, a few items ahead of
/// `take`, which gets the results in `items`' order (false stops).
fn in_order<I: Sync, T: Send>(
    items: &[I],
    work: impl Fn(&I) -> T + Sync,
    mut take: impl FnMut(T) -> io::Result<bool>,
) -> io::Result<()> {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len())
        .max(1);
    let next = AtomicUsize::new(0);
    // A worker takes an item only with a credit, given back as each result
    // is taken: what waits to be printed stays a few items' worth.
    let (credit_tx, credit_rx) = std::sync::mpsc::sync_channel::<()>(2 * workers);
    let credit_rx = std::sync::Mutex::new(credit_rx);
    for _ in 0..2 * workers {
        let _ = credit_tx.send(());
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(usize, T)>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (next, credit_rx, done_tx, work) = (&next, &credit_rx, done_tx.clone(), &work);
            scope.spawn(move || {
                loop {
                    let credit = credit_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    if credit.is_err() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { return };
                    if done_tx.send((i, work(item))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut waiting = BTreeMap::new();
        let mut turn = 0;
        let result = (|| {
            while turn < items.len() {
                let Ok((i, done)) = done_rx.recv() else {
                    break;
                };
                waiting.insert(i, done);
                while let Some(done) = waiting.remove(&turn) {
                    turn += 1;
                    if !take(done)? {
                        return Ok(());
                    }
                    let _ = credit_tx.send(());
                }
            }
            Ok(())
        })();
        // Let the workers go (they stop at their next credit).
        drop(credit_tx);
        drop(done_rx);
        result
    })
}

/// What checking one file found, in the order it found it.
struct FileDone {
    report: Vec<Chunk>,
    counts: Counts,
    unreadable: u64,
    /// For `-o json|yaml`.
    file_report: Option<FileReport>,
    read_error: Option<CliError>,
}

/// Part of a file's report: bytes for stdout or a line for stderr.
enum Chunk {
    Out(Vec<u8>),
    Err(String),
}

/// A file's report, kept in order until its turn to print.
#[derive(Default)]
struct Report(Vec<Chunk>);

impl Report {
    fn err(&mut self, line: String) {
        self.0.push(Chunk::Err(line));
    }
}

impl Write for Report {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.last_mut() {
            Some(Chunk::Out(bytes)) => bytes.extend_from_slice(buf),
            _ => self.0.push(Chunk::Out(buf.to_vec())),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Checks every record of one file.
fn check_file(path: &Path, keys: &KeySet, opts: &Options) -> FileDone {
    let name = path.display().to_string();
    let mut report = Report::default();
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    let mut unreadable = 0u64;
    let mut scratch = Vec::new();
    let problems = std::cell::RefCell::new(Vec::new());
    let read = file::read_numbered(
        path,
        &mut |line, record| {
            for p in problems.borrow_mut().drain(..) {
                report.err(p);
            }
            let outcome = check::check(&record, keys, &mut scratch);
            counts.add(outcome.kind(), 1);
            let Some(reason) = outcome.reason() else {
                return Ok(true);
            };
            let failure = Failure {
                file: Some(name.clone()),
                line,
                reason,
                detail: outcome.detail(),
                record: String::from_utf8_lossy(record.raw().trim_ascii()).into_owned(),
            };
            report_failure(opts, outcome, failure, &mut report, &mut failures)?;
            Ok(true)
        },
        &mut |problem| {
            unreadable += 1;
            problems.borrow_mut().push(problem.to_string());
        },
    );
    for p in problems.into_inner() {
        report.err(p);
    }
    let mut done = FileDone {
        report: Vec::new(),
        counts,
        unreadable,
        file_report: None,
        read_error: None,
    };
    if let Err(e) = read {
        done.read_error = Some(CliError::new(format!("failed to read {name}: {e}")));
        done.report = report.0;
        return done;
    }
    let summary = format!(
        "{name}: valid {}, invalid {}, unsigned {}, unverifiable {}",
        counts.valid, counts.invalid, counts.unsigned, counts.unverifiable
    );
    match opts.format {
        Format::Text => {
            let _ = writeln!(report, "{summary}");
        }
        Format::Jsonl => report.err(summary),
        Format::Json | Format::Yaml => {
            done.file_report = Some(FileReport {
                file: name,
                counts,
                failures,
            })
        }
    }
    done.report = report.0;
    done
}

/// Prints or keeps one failing record, as the format wants.
fn report_failure(
    opts: &Options,
    outcome: Outcome,
    mut failure: Failure,
    out: &mut Report,
    kept: &mut Vec<Failure>,
) -> io::Result<()> {
    match opts.format {
        Format::Jsonl => {
            serde_json::to_writer(&mut *out, &failure)?;
            writeln!(out)
        }
        Format::Text => {
            // Unsigned records fail only with --strict; an archive of a
            // listener without signing would name every record.
            if outcome.kind() == Kind::Invalid || opts.strict {
                out.err(format!(
                    "{}:{}: {}: {}",
                    failure.file.as_deref().unwrap_or(""),
                    failure.line,
                    failure.reason,
                    failure.detail
                ));
            }
            Ok(())
        }
        Format::Json | Format::Yaml => {
            failure.file = None;
            kept.push(failure);
            Ok(())
        }
    }
}

/// Exit 1 when a record is invalid; with `--strict` also when one is
/// unsigned or a line is no record.
fn verdict(totals: &Counts, unreadable: u64, strict: bool) -> Result<(), CliError> {
    let mut failures = Vec::new();
    if totals.invalid > 0 {
        failures.push(format!(
            "{} record(s) with an invalid signature",
            totals.invalid
        ));
    }
    if strict && totals.unsigned > 0 {
        failures.push(format!(
            "{} record(s) without a signature (--strict)",
            totals.unsigned
        ));
    }
    if strict && unreadable > 0 {
        failures.push(format!(
            "{unreadable} line(s) could not be read as audit records (--strict)"
        ));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CliError::new(format!(
            "signature check failed: {}",
            failures.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::check::tests::{key_pair, signed_json};

    #[test]
    fn stored_files_are_the_segments_in_rotation_order_then_the_active_file() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "events.jsonl",
            "events-20260102T000000Z-000002.jsonl.gz",
            "events-20260101T000000Z-000001.jsonl.gz",
            // Mid-compression: the plain one is read.
            "events-20260103T000000Z-000003.jsonl",
            "events-20260103T000000Z-000003.jsonl.gz",
            "rejected.jsonl",
            "jwks.json",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let names: Vec<String> = stored_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "events-20260101T000000Z-000001.jsonl.gz",
                "events-20260102T000000Z-000002.jsonl.gz",
                "events-20260103T000000Z-000003.jsonl",
                "events.jsonl",
            ]
        );
    }

    fn check_text(
        lines: &[String],
        format: Format,
        strict: bool,
    ) -> (String, Result<(), CliError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let (_, jwks) = key_pair(1);
        let keys = KeySet::parse(jwks.as_bytes()).unwrap();
        let opts = Options { strict, format };
        let mut out = Vec::new();
        let verdict = check_files(std::slice::from_ref(&path), &keys, &opts, &mut out).unwrap();
        let text = String::from_utf8(out)
            .unwrap()
            .replace(&path.display().to_string(), "F");
        (text, verdict)
    }

    #[test]
    fn a_tampered_record_fails_the_check_and_is_named() {
        let (pair, _) = key_pair(1);
        let good = signed_json(&pair, r#"{"event_ts":"2026-01-01T00:00:00Z","name":"a"}"#);
        let bad = signed_json(&pair, r#"{"event_ts":"2026-01-01T00:00:01Z","name":"b"}"#)
            .replace("\"b\"", "\"B\"");
        let unsigned = r#"{"event_ts":"2026-01-01T00:00:02Z","name":"c"}"#.to_string();
        let lines = [good.clone(), bad.clone(), unsigned.clone()];

        let (text, verdict) = check_text(&lines, Format::Text, false);
        assert_eq!(text, "F: valid 1, invalid 1, unsigned 1, unverifiable 0\n");
        assert_eq!(
            verdict.unwrap_err().message,
            "signature check failed: 1 record(s) with an invalid signature"
        );

        let (jsonl, _) = check_text(&lines, Format::Jsonl, false);
        let rows: Vec<serde_json::Value> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["line"], 2);
        assert_eq!(rows[0]["reason"], "invalid_signature");
        assert_eq!(rows[0]["record"], bad.as_str());
        assert_eq!(rows[1]["line"], 3);
        assert_eq!(rows[1]["reason"], "missing_signature");
        assert_eq!(rows[1]["record"], unsigned.as_str());
    }

    #[test]
    fn unsigned_records_fail_only_with_strict() {
        let (pair, _) = key_pair(1);
        let lines = [
            signed_json(&pair, r#"{"event_ts":"2026-01-01T00:00:00Z"}"#),
            r#"{"event_ts":"2026-01-01T00:00:02Z"}"#.to_string(),
            r#"{"event":{"event_ts":"2026-01-01T00:00:02Z","sig":"x"}}"#.to_string(),
        ];
        let (text, verdict) = check_text(&lines, Format::Text, false);
        assert_eq!(text, "F: valid 1, invalid 0, unsigned 1, unverifiable 1\n");
        assert!(verdict.is_ok());
        let (_, verdict) = check_text(&lines, Format::Text, true);
        assert_eq!(
            verdict.unwrap_err().message,
            "signature check failed: 1 record(s) without a signature (--strict)"
        );
        let (json, _) = check_text(&lines, Format::Json, true);
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc[0]["file"], "F");
        assert_eq!(doc[0]["valid"], 1);
        assert_eq!(doc[0]["failures"][0]["line"], 2);
        assert!(doc[0]["failures"][0].get("file").is_none());
    }
}
