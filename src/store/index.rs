//! `segments.json`: what the store knows of each closed segment (its
//! file, when its first record arrived, the oldest and newest record
//! times, how many records, its size on disk), so that readers can skip
//! segments outside a time window without opening them.
//!
//! The index is replaced whole and atomically (temp file, fsync, rename,
//! fsync of the directory: `crate::fsutil::write_atomic`). It is a cache of
//! what the segment files hold, never the only copy of anything: a reader
//! that cannot use it reads every segment, and [`super::recover`] rebuilds
//! what is missing from the files themselves.

use std::io;
use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::layout::{Form, INDEX_FILE, SegmentName, StoreFile};

/// The index format this code writes.
pub const VERSION: u32 = 1;

/// The whole index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub version: u32,
    /// The sequence number the next rotation takes.
    pub next_seq: u64,
    /// Oldest first (rotation order).
    pub segments: Vec<SegmentEntry>,
}

/// One closed segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// The file name, `events-….jsonl` or `events-….jsonl.gz`.
    pub file: String,
    /// When the segment's first record was received (the listener's clock).
    pub first_received_at: Timestamp,
    /// The oldest and newest of its records' own times; `null` when none
    /// of its records has a time.
    pub oldest_event_at: Option<Timestamp>,
    pub newest_event_at: Option<Timestamp>,
    /// How much older than the newest record stored before it any record of
    /// the segment is, in milliseconds rounded up (0: in time order); absent
    /// when unknown, or when a record without a time follows one with a
    /// time. A reader can stream a segment in time order with this much
    /// lookahead instead of holding it whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lateness_ms: Option<u64>,
    pub records: u64,
    /// Size of `file` on disk.
    pub bytes: u64,
}

impl Default for Index {
    fn default() -> Index {
        Index {
            version: VERSION,
            next_seq: 1,
            segments: Vec::new(),
        }
    }
}

/// Why the index could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("failed to read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error("{path} is not a segment index: {reason}")]
    Invalid {
        path: std::path::PathBuf,
        reason: String,
    },
}

impl SegmentEntry {
    /// The segment's name and form, read from `file`.
    pub fn name(&self) -> Option<(SegmentName, Form)> {
        match StoreFile::parse(&self.file)? {
            StoreFile::Segment(name, form) => Some((name, form)),
            _ => None,
        }
    }
}

impl Index {
    /// Reads `<dir>/segments.json`; `Ok(None)` when there is none.
    pub fn read(dir: &Path) -> Result<Option<Index>, IndexError> {
        let path = dir.join(INDEX_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(IndexError::Read { path, source }),
        };
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| IndexError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if index.version != VERSION {
            return Err(IndexError::Invalid {
                path,
                reason: format!("version {} (this kongctl writes {VERSION})", index.version),
            });
        }
        if let Some(bad) = index.segments.iter().find(|s| s.name().is_none()) {
            return Err(IndexError::Invalid {
                path,
                reason: format!("{:?} is not a segment file name", bad.file),
            });
        }
        Ok(Some(index))
    }

    /// Replaces `<dir>/segments.json` atomically (2-space JSON, 0600).
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        crate::fsutil::write_atomic(&dir.join(INDEX_FILE), &text)
    }

    /// The entry of segment `seq`, if listed.
    pub fn position(&self, seq: u64) -> Option<usize> {
        self.segments
            .iter()
            .position(|s| s.name().is_some_and(|(n, _)| n.seq == seq))
    }

    /// Adds or replaces the entry of its segment, keeping rotation order.
    pub fn upsert(&mut self, entry: SegmentEntry) {
        let (name, _) = entry.name().expect("entries are built from segment names");
        self.next_seq = self.next_seq.max(name.seq + 1);
        match self.position(name.seq) {
            Some(i) => self.segments[i] = entry,
            None => {
                let at = self
                    .segments
                    .iter()
                    .position(|s| s.name().is_some_and(|(n, _)| n.seq > name.seq))
                    .unwrap_or(self.segments.len());
                self.segments.insert(at, entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, form: Form) -> SegmentEntry {
        let name = SegmentName::new("2026-11-27T17:06:44Z".parse().unwrap(), seq);
        SegmentEntry {
            file: name.file_name(form),
            first_received_at: "2026-11-27T17:06:44.5Z".parse().unwrap(),
            oldest_event_at: Some("2026-11-27T17:06:40.123Z".parse().unwrap()),
            newest_event_at: None,
            max_lateness_ms: None,
            records: 3,
            bytes: 120,
        }
    }

    #[test]
    fn the_index_is_the_contracts_json_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Index::read(dir.path()).unwrap(), None);
        let mut index = Index::default();
        index.upsert(entry(2, Form::Gzip));
        index.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("segments.json")).unwrap();
        assert_eq!(
            text,
            r#"{
  "version": 1,
  "next_seq": 3,
  "segments": [
    {
      "file": "events-20261127T170644Z-000002.jsonl.gz",
      "first_received_at": "2026-11-27T17:06:44.5Z",
      "oldest_event_at": "2026-11-27T17:06:40.123Z",
      "newest_event_at": null,
      "records": 3,
      "bytes": 120
    }
  ]
}"#
        );
        assert_eq!(Index::read(dir.path()).unwrap(), Some(index));
    }

    #[test]
    fn upsert_keeps_rotation_order_and_replaces_by_seq() {
        let mut index = Index::default();
        index.upsert(entry(5, Form::Plain));
        index.upsert(entry(3, Form::Plain));
        index.upsert(entry(9, Form::Plain));
        index.upsert(entry(5, Form::Gzip));
        let files: Vec<_> = index.segments.iter().map(|s| s.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "events-20261127T170644Z-000003.jsonl",
                "events-20261127T170644Z-000005.jsonl.gz",
                "events-20261127T170644Z-000009.jsonl"
            ]
        );
        assert_eq!(index.next_seq, 10);
    }

    #[test]
    fn unusable_indexes_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segments.json");
        for (content, why) in [
            ("{", "EOF while parsing"),
            (r#"{"version":2,"next_seq":1,"segments":[]}"#, "version 2"),
            (
                r#"{"version":1,"next_seq":1,"segments":[{"file":"x","first_received_at":"2026-01-01T00:00:00Z","oldest_event_at":null,"newest_event_at":null,"records":0,"bytes":0}]}"#,
                "\"x\" is not a segment file name",
            ),
        ] {
            std::fs::write(&path, content).unwrap();
            let err = Index::read(dir.path()).unwrap_err().to_string();
            assert!(err.contains(why), "{content}: {err}");
        }
    }
}
