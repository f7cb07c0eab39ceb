//! Reads the profile's store for what a replay needs, per stream (the
//! organisation's records, and each Dev Portal's: those with its
//! `portal_id`): the newest stored record's own time (where that stream's
//! window starts) and the keys of the records in the window (what the dedup
//! gate must drop when Konnect sends them again).
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
//!
//! Segments are skipped (or, without an index, reading stops) below the
//! lowest window start of the streams asked for. A stream with no record
//! read yet has no such start: reading goes on, but not past what Konnect
//! still keeps ([`super::window::RETENTION`] on this machine's clock, with
//! a day's margin), so a Dev Portal with nothing stored does not make every
//! replay read the whole store; older records could not be replayed
//! anyway.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;

use super::window::{RETENTION, sub};
use crate::konnect::Stream;
use crate::record::{DedupKey, Record};
use crate::source::file::{self, LastLine, LineReader};
use crate::store::snapshot::{Known, Opened, Segment, Snapshot, SnapshotError};

/// The stream of `streams` a stored record came through: its Dev Portal's
/// if that is one of them, else the organisation's (the region's webhook
/// delivers everything that is not a listened-to portal's, portal records
/// included if Konnect sends them there).
pub fn stream_of(record: &Record, streams: &[Stream]) -> Stream {
    match record.portal_id() {
        Some(id) if streams.iter().any(|s| s.portal_id() == Some(id)) => {
            Stream::Portal(id.to_string())
        }
        _ => Stream::Org,
    }
}

/// What the store holds that a replay needs.
#[derive(Debug, Default)]
pub struct StoreScan {
    /// Per stream asked for: its newest record's own time, if any.
    pub newest: BTreeMap<Stream, Option<Timestamp>>,
    /// Keys and times of each stream's records at or after that stream's
    /// bound (its newest less the overlap, or the floor), all streams
    /// together.
    pub keys: Vec<(DedupKey, Timestamp)>,
    /// Files read, for the log.
    pub files: usize,
    /// Lines that were not records (reported by `source::file`).
    pub problems: usize,
}

impl StoreScan {
    /// The newest stored record of `stream`.
    pub fn newest_of(&self, stream: &Stream) -> Option<Timestamp> {
        self.newest.get(stream).copied().flatten()
    }
}

/// Where the store is.
#[derive(Debug, Clone)]
pub struct StoreFiles {
    /// The profile directory (segments and `segments.json`).
    pub dir: PathBuf,
    /// The active `events.jsonl`.
    pub active: PathBuf,
}

/// For each of `streams`, the newest record and the keys of its records
/// at or after `min(floor, newest - overlap)` (the earliest its replay
/// window can start), reading the active file only up to `committed` bytes
/// (what was acknowledged: a batch written but not yet synced may still be
/// cut, and Konnect then sends it again). Which stream a record belongs to
/// is [`stream_of`]'s; if the organisation's is not asked for, its records
/// are skipped.
pub fn scan(
    files: &StoreFiles,
    committed: u64,
    streams: &[Stream],
    floor: Option<Timestamp>,
    overlap: Duration,
) -> io::Result<StoreScan> {
    let kept = Some(sub(Timestamp::now(), RETENTION + RETENTION_MARGIN));
    let mut acc = Collector::new(streams, floor, kept, overlap);
    let snapshot = Snapshot::take(&files.dir).map_err(|e| match e {
        SnapshotError::Io { source, .. } => source,
        other => io::Error::other(other.to_string()),
    })?;
    scan_snapshot(&snapshot, files, committed, &mut acc)?;
    Ok(acc.finish())
}

/// [`scan`] over a snapshot already taken.
fn scan_snapshot(
    snapshot: &Snapshot,
    files: &StoreFiles,
    committed: u64,
    acc: &mut Collector,
) -> io::Result<()> {
    if let Some(f) = &snapshot.active {
        let name = files.active.display().to_string();
        // Whole lines only: `committed` ends at a batch's end, unless the
        // store rotated since it was read (the caller then scans again).
        acc.read(&name, f.take(committed), LastLine::Pending)?;
    }

    // Segments: by index where it knows them, else newest first until one
    // is older than the window. Segments are read newest first, so a
    // stream's newest record is usually met before its older segments,
    // which its bound then skips.
    let mut stop_when_older = !snapshot.indexed;
    for segment in snapshot.segments.iter().rev() {
        match segment.known {
            Some(Known {
                times: Some((_, newest)),
                ..
            }) if acc.bound().is_some_and(|b| newest < b) => continue,
            Some(_) => {}
            None if stop_when_older => {
                let newest = acc.read_segment(snapshot, segment)?;
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
        acc.read_segment(snapshot, segment)?;
    }
    Ok(())
}

/// How much of the active file's end [`newest_in_tail`] reads.
const TAIL_BYTES: u64 = 1 << 20;

/// How far past Konnect's retention a stream not yet met is looked for:
/// our clock may be behind Konnect's.
const RETENTION_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// The newest record time of `stream` (of the listener's `streams`) among
/// the last MiB of acknowledged records of the active file: cheap, and a
/// lower bound of the newest stored time (a replay may have appended older
/// records after newer ones), which errs on the side of replaying. `None`
/// if the file is empty or unreadable, or holds none of the stream's
/// records there.
pub fn newest_in_tail(
    active: &Path,
    committed: u64,
    stream: &Stream,
    streams: &[Stream],
) -> Option<Timestamp> {
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
                && stream_of(&record, streams) == *stream
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

/// Gathers keys per stream, dropping those that fall behind their
/// stream's bound as it moves.
struct Collector {
    floor: Option<Timestamp>,
    /// The oldest time worth reading for a stream not met yet.
    kept: Option<Timestamp>,
    overlap: Duration,
    streams: Vec<(Stream, Part)>,
    /// The streams asked for, for [`stream_of`].
    wanted: Vec<Stream>,
    files: usize,
    problems: usize,
}

/// One stream's newest record and keys.
#[derive(Default)]
struct Part {
    newest: Option<Timestamp>,
    keys: Vec<(DedupKey, Timestamp)>,
}

/// Keys gathered between prunes of those behind the bound.
const PRUNE_EVERY: usize = 1 << 16;

impl Collector {
    fn new(
        streams: &[Stream],
        floor: Option<Timestamp>,
        kept: Option<Timestamp>,
        overlap: Duration,
    ) -> Collector {
        Collector {
            floor,
            kept,
            overlap,
            streams: streams
                .iter()
                .map(|s| (s.clone(), Part::default()))
                .collect(),
            wanted: streams.to_vec(),
            files: 0,
            problems: 0,
        }
    }

    /// Where a stream's keys start: its newest less the overlap, or the
    /// floor, whichever is older.
    fn part_bound(&self, part: &Part) -> Option<Timestamp> {
        let from_newest = part.newest.map(|t| sub(t, self.overlap));
        match (from_newest, self.floor) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The oldest record time any stream still needs: below it, segments
    /// are skipped. A stream not met yet needs what Konnect keeps.
    fn bound(&self) -> Option<Timestamp> {
        let mut bound: Option<Timestamp> = None;
        for (_, part) in &self.streams {
            let b = match part.newest {
                Some(_) => self.part_bound(part),
                None => match (self.floor, self.kept) {
                    (Some(f), Some(k)) => Some(f.min(k)),
                    (f, k) => f.or(k),
                },
            };
            match b {
                Some(b) => bound = Some(bound.map_or(b, |x: Timestamp| x.min(b))),
                // Nothing bounds it: everything is read.
                None => return None,
            }
        }
        bound
    }

    /// Reads one file (`last`: whether a last line without newline is
    /// finished); returns the newest time in it (any stream's).
    fn read(
        &mut self,
        name: &str,
        reader: impl io::Read,
        last: LastLine,
    ) -> io::Result<Option<Timestamp>> {
        self.files += 1;
        let mut newest_here: Option<Timestamp> = None;
        let mut problems = 0;
        let mut added = 0usize;
        file::read_records(
            name,
            &mut LineReader::new(reader),
            last,
            &mut |_, record: Record| {
                let Some(t) = record.time() else {
                    return Ok(true);
                };
                if newest_here.is_none_or(|n| t > n) {
                    newest_here = Some(t);
                }
                let stream = stream_of(&record, &self.wanted);
                let Some(i) = self.streams.iter().position(|(s, _)| *s == stream) else {
                    return Ok(true);
                };
                let part = &mut self.streams[i].1;
                if part.newest.is_none_or(|n| t > n) {
                    part.newest = Some(t);
                }
                let bound = self.part_bound(&self.streams[i].1);
                if bound.is_none_or(|b| t >= b) {
                    self.streams[i].1.keys.push((record.bytes_key(), t));
                    added += 1;
                    if added.is_multiple_of(PRUNE_EVERY) {
                        self.prune();
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
        for i in 0..self.streams.len() {
            if let Some(bound) = self.part_bound(&self.streams[i].1) {
                self.streams[i].1.keys.retain(|(_, t)| *t >= bound);
            }
        }
    }

    fn finish(mut self) -> StoreScan {
        self.prune();
        let mut scan = StoreScan {
            files: self.files,
            problems: self.problems,
            ..StoreScan::default()
        };
        for (stream, part) in self.streams {
            scan.newest.insert(stream, part.newest);
            scan.keys.extend(part.keys);
        }
        scan
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
    const ORG: &[Stream] = &[Stream::Org];

    fn portal_rec(portal: &str, sig: &str, ts: &str) -> String {
        format!(
            r#"{{"event_ts":"{ts}","event_class_id":"AUTHENTICATION_TYPE_BASIC","name":"AUTHENTICATION_OUTCOME_SUCCESS","portal_id":"{portal}","sig":"{sig}"}}"#
        )
    }

    /// `minutes` before now, whole seconds, RFC 3339.
    fn ago(minutes: i64) -> String {
        let t = Timestamp::now() - jiff::SignedDuration::from_mins(minutes);
        format!("{:.0}", Timestamp::from_second(t.as_second()).unwrap())
    }

    #[test]
    fn each_stream_gets_its_own_newest_and_window_keys() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = Stream::Portal("pa".into());
        let b = Stream::Portal("pb".into());
        // Portal b's newest is an hour older than everything else: its
        // window reaches back, the others' do not.
        let b_old = portal_rec("pb", "b0", &ago(62));
        let b_new = portal_rec("pb", "b1", &ago(60));
        let org_old = rec("o0", &ago(61));
        let org_new = rec("o1", &ago(1));
        let a_new = portal_rec("pa", "a1", &ago(2));
        // A portal not listened to: its records came through the region's
        // webhook, so they are the organisation's stream's.
        let other = portal_rec("pz", "z1", &ago(0));
        write(
            &d.join("events.jsonl"),
            &[
                b_old.clone(),
                org_old.clone(),
                b_new.clone(),
                org_new.clone(),
                a_new.clone(),
                other.clone(),
            ],
        );
        let len = std::fs::metadata(d.join("events.jsonl")).unwrap().len();
        let streams = [
            Stream::Org,
            a.clone(),
            b.clone(),
            Stream::Portal("none".into()),
        ];
        let s = scan(&files(d), len, &streams, None, MIN2).unwrap();
        assert_eq!(s.newest_of(&Stream::Org), Some(t(&ago(0))));
        assert_eq!(s.newest_of(&a), Some(t(&ago(2))));
        assert_eq!(s.newest_of(&b), Some(t(&ago(60))));
        assert_eq!(s.newest_of(&Stream::Portal("none".into())), None);
        assert!(!s.newest.contains_key(&Stream::Portal("pz".into())));
        let mut keys: Vec<DedupKey> = s.keys.iter().map(|(k, _)| *k).collect();
        keys.sort();
        let mut want = vec![
            key(&b_old),
            key(&b_new),
            key(&org_new),
            key(&a_new),
            key(&other),
        ];
        want.sort();
        assert_eq!(
            keys, want,
            "b's two records, the newest of the org (pz's among them) and of a; not the org's older one"
        );
    }

    #[test]
    fn a_stream_not_met_is_looked_for_back_to_what_konnect_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let p = Stream::Portal("pa".into());
        // Segments of 30, 20 and 5 days ago (no index), the portal's record
        // in the one of 5 days; the active file holds only the org's.
        let older = Timestamp::now() - jiff::SignedDuration::from_hours(30 * 24);
        let ancient = Timestamp::now() - jiff::SignedDuration::from_hours(20 * 24);
        let week = Timestamp::now() - jiff::SignedDuration::from_hours(5 * 24);
        let at = |t: Timestamp| format!("{:.0}", Timestamp::from_second(t.as_second()).unwrap());
        write_gz(
            &d.join("events-20000101T000000Z-000000.jsonl.gz"),
            &[portal_rec("pa", "older", &at(older))],
        );
        write_gz(
            &d.join("events-20000101T000000Z-000001.jsonl.gz"),
            &[portal_rec("pa", "old", &at(ancient))],
        );
        write_gz(
            &d.join("events-20000102T000000Z-000002.jsonl.gz"),
            &[portal_rec("pa", "p5", &at(week)), rec("o5", &at(week))],
        );
        write(&d.join("events.jsonl"), &[rec("o0", &ago(1))]);
        let len = std::fs::metadata(d.join("events.jsonl")).unwrap().len();
        let s = scan(&files(d), len, &[Stream::Org, p.clone()], None, MIN2).unwrap();
        assert_eq!(s.newest_of(&p), Some(t(&at(week))));
        assert_eq!(
            s.files, 3,
            "the active file, then segments newest first up to the first older than the window"
        );
        // A portal with no record at all is looked for back to the
        // retention only: the 30-day-old segment is not read.
        let s = scan(&files(d), len, &[Stream::Portal("pz".into())], None, MIN2).unwrap();
        assert_eq!(s.newest_of(&Stream::Portal("pz".into())), None);
        assert_eq!(s.files, 3);
    }

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
        let s = scan(&files(dir.path()), len, ORG, None, MIN2).unwrap();
        assert_eq!(s.newest_of(&Stream::Org), Some(t("2026-08-23T12:00:00Z")));
        let keys: Vec<DedupKey> = s.keys.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [key(&near), key(&newest), key(&late)]);

        // Only up to the acknowledged length.
        let first_two = (old.len() + near.len() + 2) as u64;
        let s = scan(&files(dir.path()), first_two, ORG, None, MIN2).unwrap();
        assert_eq!(s.newest_of(&Stream::Org), Some(t("2026-08-23T11:58:30Z")));

        // A floor reaches further back.
        let s = scan(
            &files(dir.path()),
            len,
            ORG,
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
        let both = [Stream::Org, Stream::Portal("p".into())];
        assert_eq!(
            newest_in_tail(&path, len, &Stream::Org, &both),
            Some(t("2026-08-23T12:00:00Z"))
        );
        assert_eq!(newest_in_tail(&path, 0, &Stream::Org, &both), None);
        assert_eq!(
            newest_in_tail(&dir.path().join("none"), 10, &Stream::Org, &both),
            None
        );
        assert_eq!(
            newest_in_tail(&path, len, &Stream::Portal("p".into()), &both),
            None,
            "no record of the portal"
        );
    }

    #[test]
    fn an_empty_store_has_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = scan(&files(&dir.path().join("missing")), 0, ORG, None, MIN2).unwrap();
        assert_eq!(s.newest_of(&Stream::Org), None);
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
        let s = scan(&files(d), len, ORG, None, MIN2).unwrap();
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
        let s = scan(&files(d), 0, ORG, None, MIN2).unwrap();
        assert_eq!(s.newest_of(&Stream::Org), Some(t("2026-08-23T11:59:30Z")));
        let keys: Vec<DedupKey> = s.keys.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [key(&recent)]);
        assert_eq!(
            s.files, 3,
            "stops after the first segment older than the window"
        );
    }

    #[test]
    fn a_segment_compressed_or_deleted_after_the_snapshot_is_read_from_its_gz_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let one = rec("one", "2026-08-23T11:59:00Z");
        let two = rec("two", "2026-08-23T11:59:30Z");
        let plain1 = d.join("events-20260823T115900Z-000001.jsonl");
        let plain2 = d.join("events-20260823T115930Z-000002.jsonl");
        write(&plain1, std::slice::from_ref(&one));
        write(&plain2, std::slice::from_ref(&two));
        std::fs::write(d.join("events.jsonl"), b"").unwrap();
        let snapshot = Snapshot::take(d).unwrap();
        // The compression of segment 1 finishes (.gz in, plain out), and
        // retention deletes segment 2, before the scan opens them.
        write_gz(
            &d.join("events-20260823T115900Z-000001.jsonl.gz"),
            std::slice::from_ref(&one),
        );
        std::fs::remove_file(&plain1).unwrap();
        std::fs::remove_file(&plain2).unwrap();
        let mut acc = Collector::new(ORG, Some(t("2026-08-23T00:00:00Z")), None, MIN2);
        scan_snapshot(&snapshot, &files(d), 0, &mut acc).unwrap();
        let s = acc.finish();
        let keys: Vec<DedupKey> = s.keys.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [key(&one)], "read from its .gz, not taken as deleted");
        assert_eq!(s.files, 2, "the active file and segment 1");
    }
}
