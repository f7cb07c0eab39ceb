//! Reads the profile's store for what a replay needs: the newest stored
//! record's own time (where the window starts) and the keys of the records
//! in the window (what the dedup gate must drop when Konnect sends them
//! again).
//!
//! The store is read through one snapshot (`crate::store::snapshot`),
//! which holds every record stored before it exactly once, whatever the
//! listener rotates, compresses and deletes meanwhile: the active file up
//! to its last acknowledged byte, and the segments whose `newest_event_at`
//! (in `segments.json`) reaches the window. Without a readable index,
//! segment files are read newest first until one holds nothing as new as
//! the window; a segment on disk that the index does not list is read. A
//! segment compressed after the snapshot is read from its `.gz`; one that
//! retention deleted is skipped (its records are no longer stored, so
//! storing them again is no duplicate). Records are read with
//! `crate::source::file`.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;

use super::window::sub;
use crate::record::{DedupKey, Record};
use crate::source::file::{self, LastLine, LineReader};
use crate::store::snapshot::{Known, Opened, Segment, Snapshot, SnapshotError};

/// What the store holds that a replay needs.
#[derive(Debug, Default)]
pub struct StoreScan {
    /// The newest record's own time, if any record has one.
    pub newest: Option<Timestamp>,
    /// Keys and times of the records at or after [`StoreScan::bound`].
    pub keys: Vec<(DedupKey, Timestamp)>,
    /// The oldest time whose records were collected.
    pub bound: Option<Timestamp>,
    /// Files read, for the log.
    pub files: usize,
    /// Lines that were not records (reported by `source::file`).
    pub problems: usize,
}

/// Where the store is.
#[derive(Debug, Clone)]
pub struct StoreFiles {
    /// The profile directory (segments and `segments.json`).
    pub dir: PathBuf,
    /// The active `events.jsonl`.
    pub active: PathBuf,
}

/// Collects the keys of records at or after `min(floor, newest - overlap)`
/// (the earliest a replay window can start), reading the active file only
/// up to `committed` bytes (what was acknowledged: a batch written but not
/// yet synced may still be cut, and Konnect then sends it again).
pub fn scan(
    files: &StoreFiles,
    committed: u64,
    floor: Option<Timestamp>,
    overlap: Duration,
) -> io::Result<StoreScan> {
    let mut acc = Collector::new(floor, overlap);
    let snapshot = Snapshot::take(&files.dir).map_err(|e| match e {
        SnapshotError::Io { source, .. } => source,
        other => io::Error::other(other.to_string()),
    })?;
    if let Some(f) = &snapshot.active {
        let name = files.active.display().to_string();
        // Whole lines only: `committed` ends at a batch's end, unless the
        // store rotated since it was read (the caller then scans again).
        acc.read(&name, f.take(committed), LastLine::Pending)?;
    }

    // Segments: by index where it knows them, else newest first until one
    // is older than the window.
    for newest in snapshot.segments.iter().filter_map(segment_newest) {
        acc.saw_time(newest);
    }
    let mut stop_when_older = !snapshot.indexed;
    for segment in snapshot.segments.iter().rev() {
        match segment.known {
            Some(Known {
                times: Some((_, newest)),
                ..
            }) if acc.bound().is_some_and(|b| newest < b) => continue,
            Some(_) => {}
            None if stop_when_older => {
                let newest = acc.read_segment(&snapshot, segment)?;
                if let (Some(newest), Some(bound)) = (newest, acc.bound())
                    && newest < bound
                {
                    break;
                }
                continue;
            }
            // On disk but not in an index that exists: stale index.
            None => stop_when_older = false,
        }
        acc.read_segment(&snapshot, segment)?;
    }
    Ok(acc.finish())
}

/// The newest record time the index gives for `segment`.
fn segment_newest(segment: &Segment) -> Option<Timestamp> {
    segment
        .known
        .and_then(|k| k.times)
        .map(|(_, newest)| newest)
}

/// How much of the active file's end [`newest_in_tail`] reads.
const TAIL_BYTES: u64 = 1 << 20;

/// The newest record time among the last MiB of acknowledged records of the
/// active file: cheap, and a lower bound of the newest stored time (a
/// replay may have appended older records after newer ones), which errs on
/// the side of replaying. `None` if the file is empty or unreadable.
pub fn newest_in_tail(active: &Path, committed: u64) -> Option<Timestamp> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(active).ok()?;
    let from = committed.saturating_sub(TAIL_BYTES);
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut reader = BufReader::new(f.take(committed - from));
    if from > 0 {
        // The first line is probably cut: skip to the next one.
        let mut skipped = Vec::new();
        io::BufRead::read_until(&mut reader, b'\n', &mut skipped).ok()?;
    }
    let mut newest: Option<Timestamp> = None;
    file::read_lines(
        &active.display().to_string(),
        reader,
        &mut |record: Record| {
            if let Some(t) = record.time()
                && newest.is_none_or(|n| t > n)
            {
                newest = Some(t);
            }
            Ok(true)
        },
        &mut |_| {},
    )
    .ok()?;
    newest
}

/// Gathers keys, dropping those that fall behind the bound as it moves.
struct Collector {
    floor: Option<Timestamp>,
    overlap: Duration,
    newest: Option<Timestamp>,
    keys: Vec<(DedupKey, Timestamp)>,
    files: usize,
    problems: usize,
}

/// Keys gathered between prunes of those behind the bound.
const PRUNE_EVERY: usize = 1 << 16;

impl Collector {
    fn new(floor: Option<Timestamp>, overlap: Duration) -> Collector {
        Collector {
            floor,
            overlap,
            newest: None,
            keys: Vec::new(),
            files: 0,
            problems: 0,
        }
    }

    fn bound(&self) -> Option<Timestamp> {
        let from_newest = self.newest.map(|t| sub(t, self.overlap));
        match (from_newest, self.floor) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn saw_time(&mut self, t: Timestamp) {
        if self.newest.is_none_or(|n| t > n) {
            self.newest = Some(t);
        }
    }

    /// Reads one file (`last`: whether a last line without newline is
    /// finished); returns the newest time in it.
    fn read(
        &mut self,
        name: &str,
        reader: impl io::Read,
        last: LastLine,
    ) -> io::Result<Option<Timestamp>> {
        self.files += 1;
        let mut newest_here: Option<Timestamp> = None;
        let mut problems = 0;
        file::read_records(
            name,
            &mut LineReader::new(reader),
            last,
            &mut |_, record: Record| {
                if let Some(t) = record.time() {
                    self.saw_time(t);
                    if newest_here.is_none_or(|n| t > n) {
                        newest_here = Some(t);
                    }
                    if self.bound().is_none_or(|b| t >= b) {
                        self.keys.push((record.bytes_key(), t));
                        if self.keys.len().is_multiple_of(PRUNE_EVERY) {
                            self.prune();
                        }
                    }
                }
                Ok(true)
            },
            &mut |problem| {
                problems += 1;
                tracing::debug!(%problem, "replay scan: skipped a line");
            },
        )?;
        self.problems += problems;
        Ok(newest_here)
    }

    fn read_segment(
        &mut self,
        snapshot: &Snapshot,
        segment: &Segment,
    ) -> io::Result<Option<Timestamp>> {
        match snapshot.open(segment)? {
            Opened::File { file, path, .. } => self.read(
                &path.display().to_string(),
                file::decode(file)?,
                LastLine::Final,
            ),
            Opened::Gone { path } => {
                tracing::info!(file = %path.display(), "replay scan: {}", crate::store::snapshot::GONE);
                Ok(None)
            }
        }
    }

    fn prune(&mut self) {
        if let Some(bound) = self.bound() {
            self.keys.retain(|(_, t)| *t >= bound);
        }
    }

    fn finish(mut self) -> StoreScan {
        self.prune();
        StoreScan {
            newest: self.newest,
            bound: self.bound(),
            keys: self.keys,
            files: self.files,
            problems: self.problems,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn rec(sig: &str, ts: &str) -> String {
        format!(
            r#"{{"event_ts":"{ts}","event_class_id":"konnect","name":"Authz.x","sig":"{sig}"}}"#
        )
    }

    fn key(line: &str) -> DedupKey {
        Record::from_slice(line.as_bytes()).unwrap().bytes_key()
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn write(path: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(path, text).unwrap();
    }

    fn write_gz(path: &Path, lines: &[String]) {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for l in lines {
            e.write_all(l.as_bytes()).unwrap();
            e.write_all(b"\n").unwrap();
        }
        std::fs::write(path, e.finish().unwrap()).unwrap();
    }

    fn files(dir: &Path) -> StoreFiles {
        StoreFiles {
            dir: dir.to_path_buf(),
            active: dir.join("events.jsonl"),
        }
    }

    const MIN2: Duration = Duration::from_secs(120);

    #[test]
    fn newest_time_and_the_window_keys_of_the_active_file() {
        let dir = tempfile::tempdir().unwrap();
        let old = rec("a", "2026-08-23T10:00:00Z");
        let near = rec("b", "2026-08-23T11:58:30Z");
        let newest = rec("c", "2026-08-23T12:00:00Z");
        // A replayed older record appended after the newest one.
        let late = rec("d", "2026-08-23T11:59:00Z");
        write(
            &dir.path().join("events.jsonl"),
            &[old.clone(), near.clone(), newest.clone(), late.clone()],
        );
        let len = std::fs::metadata(dir.path().join("events.jsonl"))
            .unwrap()
            .len();
        let s = scan(&files(dir.path()), len, None, MIN2).unwrap();
        assert_eq!(s.newest, Some(t("2026-08-23T12:00:00Z")));
        assert_eq!(s.bound, Some(t("2026-08-23T11:58:00Z")));
        let keys: Vec<DedupKey> = s.keys.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [key(&near), key(&newest), key(&late)]);

        // Only up to the acknowledged length.
        let first_two = (old.len() + near.len() + 2) as u64;
        let s = scan(&files(dir.path()), first_two, None, MIN2).unwrap();
        assert_eq!(s.newest, Some(t("2026-08-23T11:58:30Z")));

        // A floor reaches further back.
        let s = scan(
            &files(dir.path()),
            len,
            Some(t("2026-08-23T09:00:00Z")),
            MIN2,
        )
        .unwrap();
        assert_eq!(s.keys.len(), 4);
    }

    #[test]
    fn the_tail_gives_the_newest_recent_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut lines: Vec<String> = (0..30_000)
            .map(|i| rec(&format!("s{i}"), "2026-08-23T10:00:00Z"))
            .collect();
        lines.push(rec("new", "2026-08-23T12:00:00Z"));
        lines.push(rec("late", "2026-08-23T11:00:00Z"));
        write(&path, &lines);
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len > TAIL_BYTES);
        assert_eq!(newest_in_tail(&path, len), Some(t("2026-08-23T12:00:00Z")));
        assert_eq!(newest_in_tail(&path, 0), None);
        assert_eq!(newest_in_tail(&dir.path().join("none"), 10), None);
    }

    #[test]
    fn an_empty_store_has_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = scan(&files(&dir.path().join("missing")), 0, None, MIN2).unwrap();
        assert_eq!(s.newest, None);
        assert!(s.keys.is_empty());
    }

    #[test]
    fn records_across_a_rotation_are_found_with_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let before = rec("old", "2026-08-20T00:00:00Z");
        let just_rotated = rec("r", "2026-08-23T11:59:00Z");
        let in_gz = rec("g", "2026-08-23T11:58:10Z");
        write_gz(
            &d.join("events-20260820T000000Z-000001.jsonl.gz"),
            std::slice::from_ref(&before),
        );
        write_gz(
            &d.join("events-20260823T115800Z-000002.jsonl.gz"),
            std::slice::from_ref(&in_gz),
        );
        // Being compressed: both forms, the plain one is read.
        write(
            &d.join("events-20260823T115900Z-000003.jsonl"),
            std::slice::from_ref(&just_rotated),
        );
        std::fs::write(
            d.join("events-20260823T115900Z-000003.jsonl.gz"),
            b"partial",
        )
        .unwrap();
        let active = rec("now", "2026-08-23T12:00:00Z");
        write(&d.join("events.jsonl"), std::slice::from_ref(&active));
        std::fs::write(
            d.join("segments.json"),
            serde_json::json!({"version": 1, "next_seq": 4, "segments": [
                {"file": "events-20260820T000000Z-000001.jsonl.gz", "first_received_at": "2026-08-20T00:00:00Z",
                 "oldest_event_at": "2026-08-20T00:00:00Z", "newest_event_at": "2026-08-20T00:00:00Z", "records": 1, "bytes": 1},
                {"file": "events-20260823T115800Z-000002.jsonl.gz", "first_received_at": "2026-08-23T11:58:00Z",
                 "oldest_event_at": "2026-08-23T11:58:10Z", "newest_event_at": "2026-08-23T11:58:10Z", "records": 1, "bytes": 1},
                {"file": "events-20260823T115900Z-000003.jsonl.gz", "first_received_at": "2026-08-23T11:59:00Z",
                 "oldest_event_at": "2026-08-23T11:59:00Z", "newest_event_at": "2026-08-23T11:59:00Z", "records": 1, "bytes": 1},
                {"file": "events-20260819T000000Z-000000.jsonl.gz", "first_received_at": "2026-08-19T00:00:00Z",
                 "oldest_event_at": null, "newest_event_at": null, "records": 0, "bytes": 0}
            ]})
            .to_string(),
        )
        .unwrap();
        let len = std::fs::metadata(d.join("events.jsonl")).unwrap().len();
        let s = scan(&files(d), len, None, MIN2).unwrap();
        let mut keys: Vec<DedupKey> = s.keys.iter().map(|(k, _)| *k).collect();
        keys.sort();
        let mut want = vec![key(&active), key(&just_rotated), key(&in_gz)];
        want.sort();
        assert_eq!(keys, want);
        assert_eq!(s.files, 3, "the old segment is skipped by the index");
    }

    #[test]
    fn without_an_index_segments_are_read_newest_first_until_older_than_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_gz(
            &d.join("events-20260801T000000Z-000001.jsonl.gz"),
            &[rec("ancient", "2026-08-01T00:00:00Z")],
        );
        write_gz(
            &d.join("events-20260823T100000Z-000002.jsonl.gz"),
            &[rec("older", "2026-08-23T10:00:00Z")],
        );
        let recent = rec("recent", "2026-08-23T11:59:30Z");
        write(
            &d.join("events-20260823T115930Z-000003.jsonl"),
            std::slice::from_ref(&recent),
        );
        // The active file was just rotated: empty.
        std::fs::write(d.join("events.jsonl"), b"").unwrap();
        std::fs::write(d.join("segments.json"), b"{not json").unwrap();
        let s = scan(&files(d), 0, None, MIN2).unwrap();
        assert_eq!(s.newest, Some(t("2026-08-23T11:59:30Z")));
        let keys: Vec<DedupKey> = s.keys.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [key(&recent)]);
        assert_eq!(
            s.files, 3,
            "stops after the first segment older than the window"
        );
    }
}
