//! Process records: `<config>/processes/<pid>.json`, one per detached
//! listener, in the original's format so that either implementation can list
//! and stop the other's listeners.
//!
//! A record is JSON with 2-space indentation and no trailing newline, written
//! atomically with mode 0600 in a 0700 directory. Its `args` never hold a
//! secret: [`write`] redacts them. Files that do not parse are skipped when
//! listing, as the original does.

use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The `kind` of a detached audit-log listener.
pub const LISTEN_KIND: &str = "konnect.audit-logs.listen";

/// A detached process as recorded by the process that started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: i32,
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// When the record was written; a record without one is from the year 1,
    /// as Go reads it.
    #[serde(default)]
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
    /// The command line, with secrets redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Field 22 of `/proc/<pid>/stat` when the process was started: tells
    /// our process from a later one that reuses its pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time_ticks: Option<u64>,
    // Ours, beyond the original's fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_id: Option<String>,
    /// The listener's `listener.json`, whose counters `ps` shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_state_file: Option<String>,
}

impl ProcessRecord {
    /// A listener record for `pid`, created now, with nothing else set.
    pub fn listener(pid: i32) -> ProcessRecord {
        ProcessRecord {
            pid,
            kind: LISTEN_KIND.to_owned(),
            profile: None,
            created_at: Timestamp::now(),
            log_file: None,
            args: Vec::new(),
            start_time_ticks: None,
            listen_address: None,
            endpoint: None,
            events_file: None,
            destination_id: None,
            listener_state_file: None,
        }
    }
}

/// The record file of `pid` in `processes_dir`.
pub fn record_path(processes_dir: &Path, pid: i32) -> PathBuf {
    processes_dir.join(format!("{pid}.json"))
}

/// Why a record cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("process PID must be greater than zero")]
    InvalidPid,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Writes `record` (with its `args` redacted) to `<processes_dir>/<pid>.json`
/// and returns that path.
pub fn write(processes_dir: &Path, record: &ProcessRecord) -> Result<PathBuf, RecordError> {
    if record.pid <= 0 {
        return Err(RecordError::InvalidPid);
    }
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| RecordError::Io { path, source }
    };
    fsutil::create_private_dir_all(processes_dir).map_err(io_error(processes_dir))?;
    let path = record_path(processes_dir, record.pid);
    // As the original: trimmed names, redacted args.
    let trimmed = |s: &Option<String>| s.as_deref().map(|s| s.trim().to_owned());
    let record = ProcessRecord {
        kind: record.kind.trim().to_owned(),
        profile: trimmed(&record.profile),
        log_file: trimmed(&record.log_file),
        args: redact_args(&record.args),
        ..record.clone()
    };
    let json = serde_json::to_vec_pretty(&record).map_err(|source| RecordError::Json {
        path: path.clone(),
        source,
    })?;
    fsutil::write_atomic(&path, &json).map_err(io_error(&path))?;
    Ok(path)
}

/// Reads the record at `path`.
pub fn read(path: &Path) -> Result<ProcessRecord, RecordError> {
    let raw = std::fs::read(path).map_err(|source| RecordError::Io {
        path: path.to_owned(),
        source,
    })?;
    let record: ProcessRecord =
        serde_json::from_slice(&raw).map_err(|source| RecordError::Json {
            path: path.to_owned(),
            source,
        })?;
    if record.pid <= 0 {
        return Err(RecordError::InvalidPid);
    }
    Ok(record)
}

/// Every readable record in `processes_dir` with its path, newest first,
/// then by pid. A missing directory has none; files that are not records
/// are skipped (and logged at debug level).
pub fn read_all(processes_dir: &Path) -> io::Result<Vec<(ProcessRecord, PathBuf)>> {
    let entries = match std::fs::read_dir(processes_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut records = Vec::new();
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() || path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        match read(&path) {
            Ok(record) => records.push((record, path)),
            Err(e) => tracing::debug!(error = %e, "skipping unreadable process record"),
        }
    }
    records.sort_by(|(a, _), (b, _)| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| a.pid.cmp(&b.pid))
    });
    Ok(records)
}

/// Removes the record at `path`; a record already gone is not an error.
pub fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Flags whose values are secrets.
const SENSITIVE_FLAGS: [&str; 8] = [
    "--authorization",
    "--pat",
    "--token",
    "--access-token",
    "--api-key",
    "--apikey",
    "--password",
    "--secret",
];

fn is_sensitive(flag: &str) -> bool {
    let flag = flag.trim().to_lowercase();
    SENSITIVE_FLAGS.contains(&flag.as_str())
}

/// The original's redaction: `--flag=value` becomes `--flag=<redacted>`,
/// `--flag value` becomes `--flag <redacted>` unless the value starts with
/// `-` (then it is taken for the next flag and kept).
pub fn redact_args(args: &[String]) -> Vec<String> {
    let mut redacted = Vec::with_capacity(args.len());
    let mut args = args.iter().peekable();
    while let Some(arg) = args.next() {
        if let Some((flag, _)) = arg.split_once('=').filter(|(f, _)| f.starts_with('-'))
            && is_sensitive(flag)
        {
            redacted.push(format!("{flag}=<redacted>"));
            continue;
        }
        redacted.push(arg.clone());
        if is_sensitive(arg) && args.peek().is_some_and(|next| !next.starts_with('-')) {
            args.next();
            redacted.push("<redacted>".to_owned());
        }
    }
    redacted
}

/// An instant with nanoseconds, written as Go writes `time.Time` in JSON
/// (RFC 3339 in UTC, fractional seconds without trailing zeros, e.g.
/// `2025-03-01T08:00:00.5Z`). Reading also accepts a numeric UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(jiff::Timestamp);

impl Default for Timestamp {
    /// Go's zero time, `0001-01-01T00:00:00Z`.
    fn default() -> Self {
        Timestamp(
            jiff::Timestamp::from_second(GO_ZERO_TIME_SECS).expect("year 1 is within jiff's range"),
        )
    }
}

/// `0001-01-01T00:00:00Z` in seconds since the Unix epoch.
const GO_ZERO_TIME_SECS: i64 = -62_135_596_800;

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp(jiff::Timestamp::now())
    }

    /// Parses RFC 3339 (`2025-03-01T08:00:00Z`, `...00.123+02:00`) as Go's
    /// `time.RFC3339` does ([`crate::time::parse_rfc3339`]).
    pub fn parse(s: &str) -> Option<Timestamp> {
        crate::time::parse_rfc3339(s).ok().map(Timestamp)
    }

    pub fn to_system_time(self) -> SystemTime {
        SystemTime::from(self.0)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Timestamp {
        // Out of jiff's range (years beyond ±9999) only for a broken clock.
        Timestamp(jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
    }
}

impl fmt::Display for Timestamp {
    /// UTC, `Z`, and only the fractional digits needed (none for whole
    /// seconds), as Go's `time.RFC3339Nano`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ps::tests::strings;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn redacts_args_as_the_original() {
        // The original's TestRedactArgs.
        assert_eq!(
            redact_args(&strings(&[
                "listen",
                "--authorization",
                "super-secret",
                "--pat=token-value",
                "--endpoint",
                "https://example.test/audit-logs",
            ])),
            strings(&[
                "listen",
                "--authorization",
                "<redacted>",
                "--pat=<redacted>",
                "--endpoint",
                "https://example.test/audit-logs",
            ])
        );
        // Every flag, any case; a following flag is not taken for a value;
        // `=` in a value or a non-flag is left alone.
        assert_eq!(
            redact_args(&strings(&[
                "--TOKEN",
                "t",
                "--access-token=a",
                "--api-key",
                "--apikey",
                "k",
                "--password",
                "-",
                "--secret",
                "--Secret=",
                "--endpoint=https://x/?a=b",
                "x=--pat",
                "--pat",
            ])),
            strings(&[
                "--TOKEN",
                "<redacted>",
                "--access-token=<redacted>",
                "--api-key",
                "--apikey",
                "<redacted>",
                "--password",
                "-",
                "--secret",
                "--Secret=<redacted>",
                "--endpoint=https://x/?a=b",
                "x=--pat",
                "--pat",
            ])
        );
    }

    #[test]
    fn write_read_list_remove_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("kongctl/processes");
        let mut old = ProcessRecord::listener(20);
        old.created_at = Timestamp::parse("2025-03-01T08:00:00Z").unwrap();
        old.args = strings(&["listen", "--authorization", "s3cret", "-d"]);
        old.profile = Some(" dev ".into());
        old.start_time_ticks = Some(12345);
        let mut new_a = ProcessRecord::listener(30);
        new_a.created_at = Timestamp::parse("2025-03-02T08:00:00.5Z").unwrap();
        let mut new_b = new_a.clone();
        new_b.pid = 10;

        let path = write(&dir, &old).unwrap();
        assert_eq!(path, dir.join("20.json"));
        write(&dir, &new_a).unwrap();
        write(&dir, &new_b).unwrap();

        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);

        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\n  \"pid\": 20,\n  \"kind\": \"konnect.audit-logs.listen\",\n  \"profile\": \"dev\",\n  \
             \"created_at\": \"2025-03-01T08:00:00Z\",\n  \"args\": [\n    \"listen\",\n    \
             \"--authorization\",\n    \"<redacted>\",\n    \"-d\"\n  ],\n  \"start_time_ticks\": 12345\n}"
        );

        // Not records: skipped.
        std::fs::write(dir.join("junk.json"), "{").unwrap();
        std::fs::write(dir.join("0.json"), r#"{"pid":0}"#).unwrap();
        std::fs::write(dir.join(".20.json.tmp-1"), "{}").unwrap();
        std::fs::create_dir(dir.join("sub.json")).unwrap();

        let listed: Vec<i32> = read_all(&dir).unwrap().iter().map(|(r, _)| r.pid).collect();
        assert_eq!(listed, [10, 30, 20]);
        assert_eq!(read(&path).unwrap().args[2], "<redacted>");

        remove(&path).unwrap();
        remove(&path).unwrap();
        let listed: Vec<i32> = read_all(&dir).unwrap().iter().map(|(r, _)| r.pid).collect();
        assert_eq!(listed, [10, 30]);
        assert!(read_all(&tmp.path().join("missing")).unwrap().is_empty());
        assert!(matches!(
            write(&dir, &ProcessRecord::listener(0)),
            Err(RecordError::InvalidPid)
        ));
    }

    #[test]
    fn reads_a_record_written_by_the_original() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("4242.json");
        std::fs::write(
            &path,
            r#"{
  "pid": 4242,
  "kind": "konnect.audit-logs.listen",
  "created_at": "2025-03-01T08:00:00.123456789Z",
  "log_file": "/home/u/.config/kongctl/logs/kongctl-listener-4242.log",
  "args": ["listen", "--authorization", "<redacted>"]
}"#,
        )
        .unwrap();
        let record = read(&path).unwrap();
        assert_eq!(record.pid, 4242);
        assert_eq!(record.profile, None);
        assert_eq!(record.start_time_ticks, None);
        assert_eq!(
            record.created_at.to_string(),
            "2025-03-01T08:00:00.123456789Z"
        );
    }

    #[test]
    fn timestamps_read_and_write_as_go() {
        for (input, output) in [
            ("2025-03-01T08:00:00Z", "2025-03-01T08:00:00Z"),
            ("2025-03-01T08:00:00.500000000Z", "2025-03-01T08:00:00.5Z"),
            ("2025-03-01T10:30:00.25+02:30", "2025-03-01T08:00:00.25Z"),
            ("2024-02-29T23:59:59-01:00", "2024-03-01T00:59:59Z"),
            ("1969-12-31T23:59:59.9Z", "1969-12-31T23:59:59.9Z"),
            ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
        ] {
            assert_eq!(
                Timestamp::parse(input).unwrap().to_string(),
                output,
                "{input}"
            );
        }
        for bad in [
            "2025-03-01 08:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-03-01T08:00:00",
            "2025-03-01T08:00:00.Z",
            "2025-03-01T24:00:00Z",
            "2025-13-01T00:00:00Z",
            "2016-12-31T23:59:60Z",
        ] {
            assert!(Timestamp::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(Timestamp::default().to_string(), "0001-01-01T00:00:00Z");
        let now = SystemTime::now();
        assert_eq!(Timestamp::from(now).to_system_time(), now);
        let before = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(
            Timestamp::from(before).to_string(),
            "1969-12-31T23:59:58.5Z"
        );
    }
}
