//! Startup: make the store directory whole again after whatever stopped
//! the last listener (SIGKILL, a power cut), before anything is appended.
//!
//! Every step of a rotation, a compression and a deletion leaves the
//! directory in a state that reads correctly (no record lost, none twice:
//! see [`super::writer`], [`super::rotate`] and [`super::maintain`] for the order of
//! their steps). What a step can leave half done is finished or undone
//! here, and each repair is described in a note for the log:
//!
//! - rotation: the unused next active file is removed; a segment the
//!   index does not list yet is indexed (in the background);
//! - compression: an unfinished `.gz` temporary file is removed (the plain
//!   segment stays and is compressed again); where a segment is there in
//!   both forms, the plain file is removed only once its `.gz` is proved
//!   whole ([`gzip_holds`]: it inflates, its own CRC-32 and length check
//!   out, and both match the plain file's); a `.gz` that does not is
//!   removed instead, and the plain segment compressed again;
//! - deletion: index entries whose files are gone are dropped;
//! - a plain segment or the active file with a torn last line (a write cut
//!   by a crash of the machine) is cut back to its last whole line.
//!
//! Nothing else here reads a segment's content (startup stays fast
//! whatever the history holds: the proof above reads the one segment a
//! compression was interrupted on): segments missing from the index are
//! handed to the maintenance thread to scan.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::durable::sync_dir;
use super::index::Index;
use super::layout::{Form, NEXT_ACTIVE_FILE, SegmentName};
use super::snapshot::list;

/// What [`recover`] found and did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The index, agreeing with the files on disk (written if it changed).
    pub index: Index,
    /// Closed segments on disk that the index does not list, oldest first.
    pub unindexed: Vec<(SegmentName, Form)>,
    /// Plain segments, listed or not, still to be compressed, oldest first.
    pub uncompressed: Vec<SegmentName>,
    /// The newest segment's name, so that the next rotation's name sorts
    /// after it.
    pub last_segment: Option<SegmentName>,
    /// One line per repair, for the log.
    pub notes: Vec<String>,
}

/// What `repair_torn_tail` did to a file whose last line was torn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub path: PathBuf,
    /// Bytes removed from the end: the partial line after the last `\n`.
    /// They were never acknowledged, so Konnect redelivers them.
    pub removed_bytes: u64,
    /// Size of the file after the repair.
    pub kept_bytes: u64,
}

/// Brings the store in `dir` (which exists) to a consistent state.
pub fn recover(dir: &Path) -> io::Result<Recovered> {
    let mut r = Recovered::default();
    let mut index_changed = false;
    match Index::read(dir) {
        Ok(Some(index)) => r.index = index,
        Ok(None) => {}
        Err(e) => {
            r.notes
                .push(format!("{e}; rebuilding it from the segment files"));
            index_changed = true;
        }
    }

    let listing = list(dir)?;
    if listing.next_active {
        let path = dir.join(NEXT_ACTIVE_FILE);
        remove(&path)?;
        r.notes.push(format!(
            "{}: removed the unused next active file of an interrupted rotation",
            path.display()
        ));
    }
    for seg in &listing.compress_temps {
        let path = seg.compress_temp(dir);
        remove(&path)?;
        r.notes.push(format!(
            "{}: removed the unfinished output of an interrupted compression; {} is compressed again",
            path.display(),
            seg.file_name(Form::Plain)
        ));
    }
    let mut plain = BTreeMap::new();
    let mut gz = BTreeMap::new();
    for (seq, found) in &listing.segments {
        plain.extend(found.plain.map(|n| (*seq, n)));
        gz.extend(found.gzip.map(|n| (*seq, n)));
    }

    // A .gz is renamed into place only once complete and synced, so the
    // plain copy beside it is a compression that stopped before removing
    // it; but the plain file is the one known whole, so the .gz must prove
    // it holds the same records before the plain file goes.
    for (seq, seg) in gz.clone() {
        let Some(plain_seg) = plain.get(&seq).copied() else {
            continue;
        };
        let plain_path = plain_seg.path(dir, Form::Plain);
        let gz_path = seg.path(dir, Form::Gzip);
        if gzip_holds(&gz_path, &plain_path)? {
            remove(&plain_path)?;
            plain.remove(&seq);
            r.notes.push(format!(
                "{}: removed the plain copy of a segment whose compression had finished ({})",
                plain_path.display(),
                seg.file_name(Form::Gzip)
            ));
        } else {
            remove(&gz_path)?;
            gz.remove(&seq);
            r.notes.push(format!(
                "{}: removed a compressed segment that does not inflate to its plain copy {} \
                 (cut short or damaged); the plain segment is kept and compressed again",
                gz_path.display(),
                plain_seg.file_name(Form::Plain)
            ));
        }
    }
    for seg in plain.values() {
        let path = seg.path(dir, Form::Plain);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?;
        if let Some(repair) = repair_torn_tail(&file, &path)? {
            r.notes.push(format!(
                "{}: removed a torn final line ({} bytes) left by an interrupted write; \
                 it was never acknowledged, so Konnect delivers it again",
                path.display(),
                repair.removed_bytes
            ));
        }
    }
    let on_disk = |seq: u64| -> Option<(SegmentName, Form)> {
        gz.get(&seq)
            .map(|s| (*s, Form::Gzip))
            .or_else(|| plain.get(&seq).map(|s| (*s, Form::Plain)))
    };

    // Entries whose file is gone were being deleted; entries of the other
    // form follow the file.
    let mut dropped = Vec::new();
    let mut kept = Vec::with_capacity(r.index.segments.len());
    for mut entry in std::mem::take(&mut r.index.segments) {
        let (listed, form) = entry.name().expect("Index::read checks every name");
        match on_disk(listed.seq) {
            Some((seg, actual)) => {
                let bytes = std::fs::metadata(seg.path(dir, actual))?.len();
                if actual != form || seg != listed || bytes != entry.bytes {
                    entry.file = seg.file_name(actual);
                    entry.bytes = bytes;
                    index_changed = true;
                }
                kept.push(entry);
            }
            None => dropped.push(entry.file),
        }
    }
    r.index.segments = kept;
    if !dropped.is_empty() {
        index_changed = true;
        r.notes.push(format!(
            "{}: dropped {} segment(s) whose deletion had not reached the index: {}",
            dir.join(super::layout::INDEX_FILE).display(),
            dropped.len(),
            dropped.join(", ")
        ));
    }

    let listed: std::collections::HashSet<u64> = r
        .index
        .segments
        .iter()
        .filter_map(|e| e.name().map(|(n, _)| n.seq))
        .collect();
    let all: BTreeMap<u64, (SegmentName, Form)> = plain
        .iter()
        .map(|(seq, s)| (*seq, (*s, Form::Plain)))
        .chain(gz.iter().map(|(seq, s)| (*seq, (*s, Form::Gzip))))
        .collect();
    r.unindexed = all
        .iter()
        .filter(|(seq, _)| !listed.contains(seq))
        .map(|(_, s)| *s)
        .collect();
    if !r.unindexed.is_empty() {
        let names: Vec<String> = r.unindexed.iter().map(|(n, f)| n.file_name(*f)).collect();
        r.notes.push(format!(
            "{}: {} closed segment(s) missing from the index (a rotation stopped before indexing \
             them, or the index was lost); indexing them: {}",
            dir.display(),
            names.len(),
            names.join(", ")
        ));
    }
    r.uncompressed = plain.values().copied().collect();
    r.last_segment = all.values().map(|(n, _)| *n).max_by_key(|n| n.seq);
    r.index.next_seq = r
        .index
        .next_seq
        .max(all.keys().next_back().map_or(1, |seq| seq + 1));
    if index_changed {
        r.index.write(dir)?;
    }
    sync_dir(dir)?;
    Ok(r)
}

/// Whether the gzip file `gz` holds exactly the bytes of `plain`: it
/// inflates to its end (which checks its own CRC-32 and length trailer),
/// and what it inflates to has the plain file's length and CRC-32. Any
/// failure to read `gz` is a no; failing to read `plain` is an error (the
/// plain file is the one to keep, and it cannot be vouched for).
pub fn gzip_holds(gz: &Path, plain: &Path) -> io::Result<bool> {
    const CHUNK: usize = 256 * 1024;
    /// The CRC-32 and length of everything `reader` yields.
    fn sum(mut reader: impl Read) -> io::Result<(u32, u64)> {
        let mut crc = flate2::Crc::new();
        let mut len = 0u64;
        let mut buf = vec![0u8; CHUNK];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok((crc.sum(), len)),
                Ok(n) => {
                    crc.update(&buf[..n]);
                    len += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    let want = sum(File::open(plain)?)?;
    let got = File::open(gz).and_then(|f| {
        sum(flate2::read::MultiGzDecoder::new(
            io::BufReader::with_capacity(CHUNK, f),
        ))
    });
    match got {
        Ok(got) => Ok(got == want),
        Err(e) => {
            tracing::warn!(file = %gz.display(), error = %e, "a compressed segment does not inflate whole");
            Ok(false)
        }
    }
}

fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// If the file does not end with `\n`, cuts it back to just after the last
/// `\n` (or to empty) and syncs. Such a tail can only come from a write cut
/// short by a crash, and a commit is only acknowledged after its last `\n`
/// is durable, so the bytes removed were never acknowledged.
pub fn repair_torn_tail(file: &File, path: &Path) -> io::Result<Option<Repair>> {
    const CHUNK: u64 = 64 * 1024;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut end = len;
    let mut buf = vec![0u8; CHUNK.min(len) as usize];
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if end == len && chunk.last() == Some(&b'\n') {
            return Ok(None);
        }
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        end = start;
    };
    file.set_len(keep)?;
    file.sync_all()?;
    Ok(Some(Repair {
        path: path.to_owned(),
        removed_bytes: len - keep,
        kept_bytes: keep,
    }))
}

/// When the first record of an active file left by an earlier run was
/// received, as well as can be told: that run's clock is not on disk, so
/// this takes the record's own time, kept between the file's creation and
/// its last write (a record's time is close to its delivery, but a clock
/// can be off); the last write's time if the record has none. `None` for
/// an empty file.
pub fn first_received_estimate(file: &File) -> io::Result<Option<Timestamp>> {
    const FIRST_LINE_MAX: usize = 1 << 20;
    let meta = file.metadata()?;
    if meta.len() == 0 {
        return Ok(None);
    }
    let ts =
        |t: io::Result<std::time::SystemTime>| t.ok().and_then(|t| Timestamp::try_from(t).ok());
    let written = ts(meta.modified()).unwrap_or_else(Timestamp::now);
    let created = ts(meta.created());
    let mut buf = vec![0u8; FIRST_LINE_MAX.min(meta.len() as usize)];
    let n = file.read_at(&mut buf, 0)?;
    let line = &buf[..n];
    let line = &line[..memchr::memchr(b'\n', line).unwrap_or(line.len())];
    let own = crate::record::Record::from_slice(line)
        .ok()
        .and_then(|r| r.time());
    Ok(Some(match own {
        Some(t) => t.min(written).max(created.unwrap_or(t)),
        None => written,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn seg(seq: u64) -> SegmentName {
        SegmentName::new("2026-11-27T17:06:44Z".parse().unwrap(), seq)
    }

    fn entry(dir: &Path, seq: u64, form: Form) -> crate::store::index::SegmentEntry {
        let file = seg(seq).file_name(form);
        crate::store::index::SegmentEntry {
            bytes: fs::metadata(dir.join(&file)).map(|m| m.len()).unwrap_or(3),
            file,
            first_received_at: seg(seq).first_received,
            oldest_event_at: None,
            newest_event_at: None,
            max_lateness_ms: None,
            records: 1,
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_empty_directory_needs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = recover(dir.path()).unwrap();
        assert!(r.notes.is_empty() && r.unindexed.is_empty() && r.last_segment.is_none());
        assert_eq!(r.index, Index::default());
        assert!(names(dir.path()).is_empty(), "nothing written");
    }

    #[test]
    fn every_half_done_step_is_finished_or_undone_and_noted() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // 1: compressed and indexed, fine. 2: compression renamed its .gz
        // in but the plain file is still there. 3: a compression's temp
        // file. 4: rotated, never indexed, torn tail. 5: listed, deleted.
        fs::write(seg(1).path(d, Form::Gzip), b"gz1").unwrap();
        fs::write(seg(2).path(d, Form::Plain), b"a\n").unwrap();
        fs::write(seg(2).path(d, Form::Gzip), gzip(b"a\n")).unwrap();
        fs::write(seg(3).path(d, Form::Plain), b"c\n").unwrap();
        fs::write(seg(3).compress_temp(d), b"half").unwrap();
        fs::write(seg(4).path(d, Form::Plain), b"d\ne").unwrap();
        fs::write(d.join(NEXT_ACTIVE_FILE), b"").unwrap();
        fs::write(d.join("events.jsonl"), b"x\n").unwrap();
        let mut index = Index::default();
        for (seq, form) in [
            (1, Form::Gzip),
            (2, Form::Plain),
            (3, Form::Plain),
            (5, Form::Gzip),
        ] {
            index.upsert(entry(d, seq, form));
        }
        index.write(d).unwrap();

        let r = recover(d).unwrap();
        let notes = r.notes.join("\n");
        for expected in [
            "removed the unused next active file of an interrupted rotation",
            "removed the unfinished output of an interrupted compression; events-20261127T170644Z-000003.jsonl is compressed again",
            "events-20261127T170644Z-000002.jsonl: removed the plain copy of a segment whose compression had finished (events-20261127T170644Z-000002.jsonl.gz)",
            "events-20261127T170644Z-000004.jsonl: removed a torn final line (1 bytes)",
            "dropped 1 segment(s) whose deletion had not reached the index: events-20261127T170644Z-000005.jsonl.gz",
            "1 closed segment(s) missing from the index",
        ] {
            assert!(notes.contains(expected), "{expected}\nin:\n{notes}");
        }
        assert_eq!(r.notes.len(), 6, "{notes}");
        assert_eq!(
            names(d),
            [
                "events-20261127T170644Z-000001.jsonl.gz",
                "events-20261127T170644Z-000002.jsonl.gz",
                "events-20261127T170644Z-000003.jsonl",
                "events-20261127T170644Z-000004.jsonl",
                "events.jsonl",
                "segments.json"
            ]
        );
        assert_eq!(fs::read(seg(4).path(d, Form::Plain)).unwrap(), b"d\n");
        assert_eq!(r.unindexed, [(seg(4), Form::Plain)]);
        assert_eq!(r.uncompressed, [seg(3), seg(4)]);
        assert_eq!(r.last_segment, Some(seg(4)));
        assert_eq!(r.index.next_seq, 6, "never reuses a seq the index gave out");
        let files: Vec<_> = r.index.segments.iter().map(|e| e.file.clone()).collect();
        assert_eq!(
            files,
            [
                "events-20261127T170644Z-000001.jsonl.gz",
                "events-20261127T170644Z-000002.jsonl.gz",
                "events-20261127T170644Z-000003.jsonl"
            ]
        );
        assert_eq!(
            r.index.segments[1].bytes,
            gzip(b"a\n").len() as u64,
            "the .gz's size"
        );
        assert_eq!(Index::read(d).unwrap().unwrap(), r.index, "written back");

        // A second start finds nothing to do.
        let again = recover(d).unwrap();
        assert_eq!(again.notes.len(), 1, "{:?}", again.notes);
        assert!(again.notes[0].contains("missing from the index"));
    }

    #[test]
    fn an_unreadable_index_is_rebuilt_from_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(seg(7).path(d, Form::Gzip), b"gz").unwrap();
        fs::write(d.join("segments.json"), b"{not json").unwrap();
        let r = recover(d).unwrap();
        assert!(
            r.notes[0].contains("is not a segment index"),
            "{:?}",
            r.notes
        );
        assert!(r.notes[0].ends_with("rebuilding it from the segment files"));
        assert_eq!(r.unindexed, [(seg(7), Form::Gzip)]);
        assert_eq!(r.index.next_seq, 8);
        assert_eq!(Index::read(d).unwrap().unwrap().segments, []);
    }

    #[test]
    fn a_plain_segment_goes_only_once_its_gz_is_proved_whole() {
        let records = b"{\"a\":1}\n{\"b\":2}\n".repeat(500);
        let good = gzip(&records);
        // Cut short: a crash of the machine can leave a renamed file whose
        // blocks never reached the disk.
        let truncated = good[..good.len() / 2].to_vec();
        // Whole, but its trailer's CRC-32 is wrong.
        let mut bad_crc = good.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 0xff;
        // Whole and valid, but of other records.
        let other = gzip(&b"{\"c\":3}\n".repeat(700));
        let cases: [(&str, &[u8], bool); 4] = [
            ("good", &good, true),
            ("truncated", &truncated, false),
            ("a wrong trailer", &bad_crc, false),
            ("other records", &other, false),
        ];
        for (what, gz, whole) in cases {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let plain_path = seg(1).path(d, Form::Plain);
            let gz_path = seg(1).path(d, Form::Gzip);
            fs::write(&plain_path, &records).unwrap();
            fs::write(&gz_path, gz).unwrap();
            assert_eq!(gzip_holds(&gz_path, &plain_path).unwrap(), whole, "{what}");
            let r = recover(d).unwrap();
            if whole {
                assert_eq!(names(d), [seg(1).file_name(Form::Gzip)], "{what}");
                assert!(r.notes[0].contains("removed the plain copy"), "{what}");
                assert!(r.uncompressed.is_empty(), "{what}");
            } else {
                assert_eq!(names(d), [seg(1).file_name(Form::Plain)], "{what}");
                assert_eq!(
                    fs::read(&plain_path).unwrap(),
                    records,
                    "{what}: kept whole"
                );
                assert!(
                    r.notes[0].ends_with(
                        "(cut short or damaged); the plain segment is kept and compressed again"
                    ),
                    "{what}: {:?}",
                    r.notes
                );
                assert_eq!(r.uncompressed, [seg(1)], "{what}: compressed again");
            }
        }
    }

    #[test]
    fn torn_tails_are_cut_back_to_the_last_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert_eq!(
            repair_torn_tail(&file, &path).unwrap(),
            Some(Repair {
                path: path.clone(),
                removed_bytes: 5,
                kept_bytes: 16
            })
        );
        assert_eq!(repair_torn_tail(&file, &path).unwrap(), None);

        let mut content = b"first\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', 200_000));
        fs::write(&path, &content).unwrap();
        assert_eq!(
            repair_torn_tail(&file, &path)
                .unwrap()
                .unwrap()
                .removed_bytes,
            200_000
        );
        fs::write(&path, b"no newline at all").unwrap();
        assert_eq!(
            repair_torn_tail(&file, &path).unwrap().unwrap().kept_bytes,
            0
        );
    }

    #[test]
    fn an_inherited_active_file_is_dated_by_its_first_record_within_its_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        fs::write(&path, b"").unwrap();
        assert_eq!(
            first_received_estimate(&File::open(&path).unwrap()).unwrap(),
            None
        );
        fs::write(&path, b"{\"event_ts\":\"2020-01-01T00:00:00Z\"}\n{}\n").unwrap();
        let created = File::open(&path)
            .unwrap()
            .metadata()
            .unwrap()
            .created()
            .ok();
        let got = first_received_estimate(&File::open(&path).unwrap())
            .unwrap()
            .unwrap();
        match created {
            // Not before the file existed.
            Some(c) => assert_eq!(got, Timestamp::try_from(c).unwrap()),
            None => assert_eq!(got, "2020-01-01T00:00:00Z".parse().unwrap()),
        }
        fs::write(&path, b"{\"event_ts\":\"2999-01-01T00:00:00Z\"}\n").unwrap();
        let got = first_received_estimate(&File::open(&path).unwrap())
            .unwrap()
            .unwrap();
        assert!(got <= Timestamp::now(), "not after its last write: {got}");
    }
}
