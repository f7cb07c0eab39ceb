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

use std::io::{self, Read, Write};
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
use crate::source::file::{self, LastLine, LineReader};
use crate::store::Form;
use crate::store::snapshot::{GONE, Opened, Segment, Snapshot, SnapshotError};

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

/// What `--verify` checks.
#[derive(Debug)]
pub enum Archive {
    /// Files given with `--file` (`-` is stdin), in order.
    Files(Vec<PathBuf>),
    /// The profile's store (`--stored`), oldest first: its closed segments
    /// (`events-<time>-<seq>.jsonl`, or `.jsonl.gz` once compressed) in
    /// rotation (seq) order, then the active `events.jsonl` up to its last
    /// whole line. Read through one snapshot, so a listener rotating,
    /// compressing and deleting meanwhile makes no record read twice or
    /// missed (a segment retention deletes is skipped with a warning).
    Stored(Snapshot),
}

impl Archive {
    /// The profile's store in `dir`.
    pub fn stored(dir: &Path) -> Result<Archive, SnapshotError> {
        Snapshot::take(dir).map(Archive::Stored)
    }
}

/// One file to check, as [`check_files`] goes through an [`Archive`].
enum Input<'a> {
    Path(&'a Path),
    Segment(&'a Segment),
    Active,
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

/// Checks every record of `archive` against `keys` and reports as
/// `opts.format` says.
pub fn run(archive: Archive, keys: &KeySet, opts: &Options) -> Result<(), CliError> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match check_files(archive, keys, opts, &mut out) {
        Ok(outcome) => outcome,
        Err(e) if output::is_closed_pipe(&e) => Ok(()),
        Err(e) => Err(CliError::new(format!("failed to check signatures: {e}"))),
    }
}

/// The work of [`run`]; `Err` only for I/O on `out` (the verdict is the
/// inner result). Files are checked one per core ([`check_input`]), and
/// what each reports is printed in file order, as one read after the other
/// would print it.
fn check_files(
    mut archive: Archive,
    keys: &KeySet,
    opts: &Options,
    out: &mut impl Write,
) -> io::Result<Result<(), CliError>> {
    let mut totals = Counts::default();
    let mut unreadable = 0u64;
    let mut reports = Vec::new();
    let active = match &mut archive {
        Archive::Stored(snapshot) => snapshot
            .active
            .take()
            .map(|f| (snapshot.active_path(), std::sync::Mutex::new(Some(f)))),
        Archive::Files(_) => None,
    };
    let inputs: Vec<Input> = match &archive {
        Archive::Files(paths) => paths.iter().map(|p| Input::Path(p)).collect(),
        Archive::Stored(snapshot) => {
            let segments = snapshot.segments.iter().map(Input::Segment);
            segments
                .chain(active.is_some().then_some(Input::Active))
                .collect()
        }
    };
    let mut failed = None;
    in_order(
        &inputs,
        |input| check_input(input, &archive, active.as_ref(), keys, opts),
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

/// Checks every record of one input of the archive (the active file, held
/// open, taken by the one check of it).
fn check_input(
    input: &Input,
    archive: &Archive,
    active: Option<&(PathBuf, std::sync::Mutex<Option<std::fs::File>>)>,
    keys: &KeySet,
    opts: &Options,
) -> FileDone {
    let mut report = Report::default();
    let mut done = FileDone {
        report: Vec::new(),
        counts: Counts::default(),
        unreadable: 0,
        file_report: None,
        read_error: None,
    };
    // The file's name, its records' reader, and whether a last line
    // without newline is finished (not in the active file: it is being
    // written).
    let (name, reader, last) = match input {
        Input::Path(path) => (
            path.display().to_string(),
            file::open(path),
            LastLine::Final,
        ),
        Input::Segment(segment) => {
            let Archive::Stored(snapshot) = archive else {
                unreachable!("segments come from a snapshot")
            };
            match snapshot.open(segment) {
                Ok(Opened::File { file, path, .. }) => (
                    path.display().to_string(),
                    file::decode(file),
                    LastLine::Final,
                ),
                Ok(Opened::Gone { path }) => {
                    // Not a failure, even with --strict: the listener's
                    // policy removed it.
                    report.err(format!("warning: {}: {GONE}", path.display()));
                    done.report = report.0;
                    return done;
                }
                Err(e) => {
                    let path = segment.name.path(&snapshot.dir, Form::Plain);
                    (path.display().to_string(), Err(e), LastLine::Final)
                }
            }
        }
        Input::Active => {
            let (path, file) = active.expect("listed only when held");
            let file = file
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .expect("the active file is checked once");
            let file: Box<dyn Read + Send> = Box::new(file);
            (path.display().to_string(), Ok(file), LastLine::Pending)
        }
    };
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    let mut scratch = Vec::new();
    let problems = std::cell::RefCell::new(Vec::new());
    let read = reader.and_then(|reader| {
        file::read_records(
            &name,
            &mut LineReader::new(reader),
            last,
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
                done.unreadable += 1;
                problems.borrow_mut().push(problem.to_string());
            },
        )
    });
    for p in problems.into_inner() {
        report.err(p);
    }
    done.counts = counts;
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
    use std::io::Write;

    #[test]
    fn the_store_is_its_segments_in_rotation_order_then_the_active_file() {
        let dir = tempfile::tempdir().unwrap();
        let record = r#"{"event_ts":"2026-01-01T00:00:00Z"}"#;
        let gz = |text: &str| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap()
        };
        let one = format!("{record}\n");
        let two = format!("{record}\n{record}\n");
        for (name, content) in [
            // The active file: its unfinished last line is left for later.
            (
                "events.jsonl",
                format!("{record}\n{{\"event_ts\"").into_bytes(),
            ),
            ("events-20260102T000000Z-000002.jsonl.gz", gz(&two)),
            ("events-20260101T000000Z-000001.jsonl.gz", gz(&one)),
            // Mid-compression: the plain one is read.
            (
                "events-20260103T000000Z-000003.jsonl",
                two.clone().into_bytes(),
            ),
            (
                "events-20260103T000000Z-000003.jsonl.gz",
                b"partial".to_vec(),
            ),
            ("rejected.jsonl", one.clone().into_bytes()),
            ("jwks.json", Vec::new()),
        ] {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let (_, jwks) = key_pair(1);
        let keys = KeySet::parse(jwks.as_bytes()).unwrap();
        let opts = Options {
            strict: true,
            format: Format::Text,
        };
        let mut out = Vec::new();
        let archive = Archive::stored(dir.path()).unwrap();
        let verdict = check_files(archive, &keys, &opts, &mut out).unwrap();
        let text = String::from_utf8(out)
            .unwrap()
            .replace(&format!("{}/", dir.path().display()), "");
        assert_eq!(
            text,
            "events-20260101T000000Z-000001.jsonl.gz: valid 0, invalid 0, unsigned 1, unverifiable 0\n\
             events-20260102T000000Z-000002.jsonl.gz: valid 0, invalid 0, unsigned 2, unverifiable 0\n\
             events-20260103T000000Z-000003.jsonl: valid 0, invalid 0, unsigned 2, unverifiable 0\n\
             events.jsonl: valid 0, invalid 0, unsigned 1, unverifiable 0\n"
        );
        assert_eq!(
            verdict.unwrap_err().message,
            "signature check failed: 6 record(s) without a signature (--strict)"
        );
    }

    #[test]
    fn a_segment_compressed_or_deleted_after_the_listing_is_read_from_its_gz_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let record = r#"{"event_ts":"2026-01-01T00:00:00Z"}"#;
        let two = format!("{record}\n{record}\n");
        let plain1 = d.join("events-20260101T000000Z-000001.jsonl");
        let plain2 = d.join("events-20260102T000000Z-000002.jsonl");
        std::fs::write(&plain1, &two).unwrap();
        std::fs::write(&plain2, &two).unwrap();
        let archive = Archive::stored(d).unwrap();
        // Segment 1's compression finishes and retention deletes segment 2
        // before the check opens them.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(two.as_bytes()).unwrap();
        std::fs::write(
            d.join("events-20260101T000000Z-000001.jsonl.gz"),
            e.finish().unwrap(),
        )
        .unwrap();
        std::fs::remove_file(&plain1).unwrap();
        std::fs::remove_file(&plain2).unwrap();
        let (_, jwks) = key_pair(1);
        let keys = KeySet::parse(jwks.as_bytes()).unwrap();
        let opts = Options {
            strict: false,
            format: Format::Text,
        };
        let mut out = Vec::new();
        let verdict = check_files(archive, &keys, &opts, &mut out).unwrap();
        let text = String::from_utf8(out)
            .unwrap()
            .replace(&format!("{}/", d.display()), "");
        assert_eq!(
            text,
            "events-20260101T000000Z-000001.jsonl.gz: valid 0, invalid 0, unsigned 2, unverifiable 0\n"
        );
        assert!(
            verdict.is_ok(),
            "a segment deleted by retention fails nothing"
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
        let verdict =
            check_files(Archive::Files(vec![path.clone()]), &keys, &opts, &mut out).unwrap();
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
