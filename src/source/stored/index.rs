//! The store's names and its index, as a reader sees them (the store
//! layout contract of issue 13; the listener writes both).
//!
//! A closed segment is `events-<UTC receive time of its first record,
//! %Y%m%dT%H%M%SZ>-<seq>.jsonl`, or `….jsonl.gz` once compressed; seq only
//! grows for the profile, so it gives the rotation order. Anything else in
//! the directory (the active `events.jsonl`, state files, a compression's
//! temporary file) is not a segment.
//!
//! `segments.json` lists each segment with the oldest and newest of its
//! records' own times, which is what lets a query skip a segment without
//! opening it. The reader trusts it only as far as it goes: a segment it
//! does not list is read whatever the query, an entry whose file is gone is
//! ignored, and an index that is missing, unreadable or of another version
//! is as good as none (everything is read).

use std::collections::HashMap;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::record::parse_time;

/// The index's file name in the profile directory.
pub const INDEX_FILE: &str = "segments.json";
/// The active file's name in the profile directory.
pub const ACTIVE_FILE: &str = "events.jsonl";

/// A segment file's name, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentName {
    pub seq: u64,
    /// The plain file's name (`events-…-000001.jsonl`), also for a
    /// compressed one: the key the index is matched by.
    pub stem: String,
    pub gz: bool,
}

/// Reads a directory entry's name as a segment's, if it is one.
pub fn segment_name(name: &str) -> Option<SegmentName> {
    let (stem, gz) = match name.strip_suffix(".gz") {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    let middle = stem.strip_prefix("events-")?.strip_suffix(".jsonl")?;
    let (stamp, seq) = middle.split_once('-')?;
    let b = stamp.as_bytes();
    let stamp_ok = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    if !stamp_ok || seq.is_empty() || !seq.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(SegmentName {
        seq: seq.parse().ok()?,
        stem: stem.to_owned(),
        gz,
    })
}

/// What the index says of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// The oldest and newest record times; `None` when no record of the
    /// segment has a time.
    pub times: Option<(Timestamp, Timestamp)>,
    /// Records in the segment, if the index says.
    pub records: Option<u64>,
    /// How far its records are from time order (`max_lateness_ms`), if the
    /// index says: a reader streams the segment in time order with this
    /// much lookahead.
    pub lateness: Option<SignedDuration>,
}

impl Known {
    /// Whether the segment holds no record at all.
    pub fn is_empty(&self) -> bool {
        self.records == Some(0)
    }
}

#[derive(Deserialize)]
struct IndexFile {
    version: u64,
    #[serde(default)]
    segments: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    file: String,
    #[serde(default)]
    oldest_event_at: Option<String>,
    #[serde(default)]
    newest_event_at: Option<String>,
    #[serde(default)]
    records: Option<u64>,
    #[serde(default)]
    max_lateness_ms: Option<u64>,
}

/// Why the index was not used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a segment index: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path} has version {version}; this kongctl reads version 1")]
    Version { path: String, version: u64 },
}

/// The index of the store in `dir`, by segment stem; empty when there is
/// none. An index that cannot be used is an error, for the caller to log:
/// reading goes on without it.
pub fn read_index(dir: &Path) -> Result<HashMap<String, Known>, IndexError> {
    let path = dir.join(INDEX_FILE);
    let name = path.display().to_string();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(source) => return Err(IndexError::Read { path: name, source }),
    };
    let index: IndexFile = serde_json::from_slice(&bytes).map_err(|source| IndexError::Parse {
        path: name.clone(),
        source,
    })?;
    if index.version != 1 {
        return Err(IndexError::Version {
            path: name,
            version: index.version,
        });
    }
    let mut known = HashMap::with_capacity(index.segments.len());
    for entry in index.segments {
        let Some(segment) = segment_name(&entry.file) else {
            continue;
        };
        let oldest = entry.oldest_event_at.as_deref().and_then(parse_time);
        let newest = entry.newest_event_at.as_deref().and_then(parse_time);
        let times = match (oldest, newest) {
            (Some(o), Some(n)) if o <= n => Some((o, n)),
            // Both null: no timed record. Anything else is not a range
            // this reader can trust: leave the segment unknown.
            (None, None) if entry.oldest_event_at.is_none() && entry.newest_event_at.is_none() => {
                None
            }
            _ => continue,
        };
        known.insert(
            segment.stem,
            Known {
                times,
                records: entry.records,
                lateness: entry
                    .max_lateness_ms
                    .and_then(|ms| i64::try_from(ms).ok())
                    .map(SignedDuration::from_millis),
            },
        );
    }
    Ok(known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_follow_the_contract() {
        let s = segment_name("events-20261127T170644Z-000042.jsonl.gz").unwrap();
        assert_eq!(s.seq, 42);
        assert_eq!(s.stem, "events-20261127T170644Z-000042.jsonl");
        assert!(s.gz);
        let p = segment_name("events-20261127T170644Z-1000000.jsonl").unwrap();
        assert_eq!((p.seq, p.gz), (1_000_000, false));
        for not in [
            "events.jsonl",
            "segments.json",
            "events-20261127T170644Z-000042.jsonl.gz.tmp",
            ".events-20261127T170644Z-000042.jsonl.gz",
            "events-20261127T170644-000042.jsonl",
            "events-20261127T170644Z-.jsonl",
            "events-20261127T170644Z-00a042.jsonl",
            "events-2026112XT170644Z-000042.jsonl",
            "listener.json",
        ] {
            assert_eq!(segment_name(not), None, "{not}");
        }
    }

    fn index(dir: &Path, text: &str) -> Result<HashMap<String, Known>, IndexError> {
        std::fs::write(dir.join(INDEX_FILE), text).unwrap();
        read_index(dir)
    }

    #[test]
    fn the_index_gives_times_by_stem() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_index(dir.path()).unwrap().is_empty());
        let known = index(
            dir.path(),
            r#"{"version":1,"next_seq":4,"segments":[
              {"file":"events-20260101T000000Z-000001.jsonl.gz","first_received_at":"2026-01-01T00:00:00Z",
               "oldest_event_at":"2025-12-31T23:59:00Z","newest_event_at":"2026-01-01T10:00:00+01:00","records":3,"bytes":100},
              {"file":"events-20260102T000000Z-000002.jsonl","oldest_event_at":null,"newest_event_at":null,"records":0,"bytes":0},
              {"file":"events-20260103T000000Z-000003.jsonl","oldest_event_at":"2026-01-03T00:00:00Z","newest_event_at":"2026-01-02T00:00:00Z"},
              {"file":"something-else.jsonl","oldest_event_at":null,"newest_event_at":null}
            ]}"#,
        )
        .unwrap();
        assert_eq!(known.len(), 2);
        let first = known["events-20260101T000000Z-000001.jsonl"];
        assert_eq!(
            first.times,
            Some((
                "2025-12-31T23:59:00Z".parse().unwrap(),
                "2026-01-01T09:00:00Z".parse().unwrap()
            ))
        );
        assert_eq!(first.records, Some(3));
        let second = known["events-20260102T000000Z-000002.jsonl"];
        assert_eq!(second.times, None);
        assert!(second.is_empty());
        // Newest before oldest: not trusted, so not known.
        assert!(!known.contains_key("events-20260103T000000Z-000003.jsonl"));
    }

    #[test]
    fn an_unusable_index_is_an_error_to_log() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            index(dir.path(), "{\"version\":1,\"segm"),
            Err(IndexError::Parse { .. })
        ));
        assert!(matches!(
            index(dir.path(), r#"{"version":2,"segments":[]}"#),
            Err(IndexError::Version { version: 2, .. })
        ));
    }
}
