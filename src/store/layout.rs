//! The names of a profile's store files (ENGINE.md "Store layout"): the
//! active `events.jsonl`, closed segments
//! `events-<UTC receive time of the first record>-<seq>.jsonl[.gz]`, the
//! index `segments.json`, and the hidden temporary names a rotation or a
//! compression uses while it runs.
//!
//! Temporary names start with a dot so that nothing looking for
//! `events-*` (a reader, a user's glob) mistakes them for a segment.
//! What the files hold, and when they change, is left to the writer
//! ([`super::writer`], [`super::rotate`]), the maintenance thread
//! ([`super::maintain`]) and [`super::recover`].

use std::path::{Path, PathBuf};

use jiff::Timestamp;

/// The active file, one raw record per line.
pub const ACTIVE_FILE: &str = "events.jsonl";
/// The index of closed segments.
pub const INDEX_FILE: &str = "segments.json";
/// The next active file, created before a rotation renames the current one
/// away and renamed to [`ACTIVE_FILE`] right after. It holds no record
/// until then, so one left by a crash is removed.
pub const NEXT_ACTIVE_FILE: &str = ".events.jsonl.next";

const PREFIX: &str = "events-";
const PLAIN: &str = ".jsonl";
const GZ: &str = ".jsonl.gz";
/// Suffix of a compression's temporary file (after the `.gz` name).
const TEMP: &str = ".tmp";
/// `%Y%m%dT%H%M%SZ`, as segment names spell the receive time.
const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// Width of the zero-padded sequence number.
const SEQ_WIDTH: usize = 6;

/// A closed segment's identity: when its first record was received (to the
/// second) and its sequence number, which only grows for the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    /// Whole seconds, UTC.
    pub first_received: Timestamp,
    pub seq: u64,
}

/// Which form of a segment a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Plain,
    Gzip,
}

/// What a file name in the store directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFile {
    Active,
    Index,
    /// The next active file of a rotation that did not finish.
    NextActive,
    Segment(SegmentName, Form),
    /// A compression's unfinished output.
    CompressTemp(SegmentName),
}

impl SegmentName {
    /// The name for a segment whose first record arrived at
    /// `first_received` (cut to whole seconds).
    pub fn new(first_received: Timestamp, seq: u64) -> SegmentName {
        SegmentName {
            first_received: Timestamp::from_second(first_received.as_second())
                .expect("a timestamp's whole seconds are a timestamp"),
            seq,
        }
    }

    /// `events-20261127T170644Z-000001.jsonl` or `….jsonl.gz`.
    pub fn file_name(&self, form: Form) -> String {
        format!(
            "{PREFIX}{}-{:0width$}{}",
            self.first_received.strftime(TIME_FORMAT),
            self.seq,
            match form {
                Form::Plain => PLAIN,
                Form::Gzip => GZ,
            },
            width = SEQ_WIDTH
        )
    }

    pub fn path(&self, dir: &Path, form: Form) -> PathBuf {
        dir.join(self.file_name(form))
    }

    /// Where the compression of this segment writes before its rename.
    pub fn compress_temp(&self, dir: &Path) -> PathBuf {
        dir.join(format!(".{}{TEMP}", self.file_name(Form::Gzip)))
    }

    /// Reads `events-<time>-<seq>` (without the extension).
    fn parse_stem(stem: &str) -> Option<SegmentName> {
        let rest = stem.strip_prefix(PREFIX)?;
        let (time, seq) = rest.split_once('-')?;
        if seq.len() < SEQ_WIDTH || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let seq = seq.parse().ok()?;
        // jiff's strptime wants the `Z` as an offset it can read.
        let time =
            jiff::fmt::strtime::parse(TIME_FORMAT.replace('Z', "%z"), time.replace('Z', "+0000"))
                .ok()?
                .to_timestamp()
                .ok()?;
        Some(SegmentName {
            first_received: time,
            seq,
        })
    }
}

impl StoreFile {
    /// Classifies a file name of the store directory; `None` for anything
    /// else (state files, the lock, files of other programs).
    pub fn parse(name: &str) -> Option<StoreFile> {
        match name {
            ACTIVE_FILE => return Some(StoreFile::Active),
            INDEX_FILE => return Some(StoreFile::Index),
            NEXT_ACTIVE_FILE => return Some(StoreFile::NextActive),
            _ => {}
        }
        if let Some(hidden) = name.strip_prefix('.') {
            let stem = hidden.strip_suffix(TEMP)?.strip_suffix(GZ)?;
            return SegmentName::parse_stem(stem).map(StoreFile::CompressTemp);
        }
        if let Some(stem) = name.strip_suffix(GZ) {
            return SegmentName::parse_stem(stem).map(|n| StoreFile::Segment(n, Form::Gzip));
        }
        let stem = name.strip_suffix(PLAIN)?;
        SegmentName::parse_stem(stem).map(|n| StoreFile::Segment(n, Form::Plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn segment_names_spell_the_receive_second_and_a_padded_seq() {
        let n = SegmentName::new(at("2026-11-27T17:06:44.987Z"), 1);
        assert_eq!(n.first_received, at("2026-11-27T17:06:44Z"));
        assert_eq!(
            n.file_name(Form::Plain),
            "events-20261127T170644Z-000001.jsonl"
        );
        assert_eq!(
            n.file_name(Form::Gzip),
            "events-20261127T170644Z-000001.jsonl.gz"
        );
        assert_eq!(
            n.compress_temp(Path::new("/d")),
            Path::new("/d/.events-20261127T170644Z-000001.jsonl.gz.tmp")
        );
        // Past six digits the counter just grows.
        assert_eq!(
            SegmentName::new(at("2026-01-02T03:04:05Z"), 1234567).file_name(Form::Plain),
            "events-20260102T030405Z-1234567.jsonl"
        );
    }

    #[test]
    fn names_read_back_and_others_are_not_store_files() {
        let n = SegmentName::new(at("2026-11-27T17:06:44Z"), 42);
        for form in [Form::Plain, Form::Gzip] {
            assert_eq!(
                StoreFile::parse(&n.file_name(form)),
                Some(StoreFile::Segment(n, form))
            );
        }
        assert_eq!(
            StoreFile::parse(".events-20261127T170644Z-000042.jsonl.gz.tmp"),
            Some(StoreFile::CompressTemp(n))
        );
        assert_eq!(StoreFile::parse("events.jsonl"), Some(StoreFile::Active));
        assert_eq!(StoreFile::parse("segments.json"), Some(StoreFile::Index));
        assert_eq!(
            StoreFile::parse(".events.jsonl.next"),
            Some(StoreFile::NextActive)
        );
        for other in [
            "listener.json",
            "listener.lock",
            ".segments.json.abc123",
            "events-20261127T170644Z-42.jsonl",
            "events-20261327T170644Z-000042.jsonl",
            "events-20261127T170644Z-00004x.jsonl",
            "events-20261127T170644Z-000042.json",
            "events-20261127T170644Z-000042.jsonl.gz.tmp",
        ] {
            assert_eq!(StoreFile::parse(other), None, "{other}");
        }
    }

    #[test]
    fn names_sort_in_rotation_order_when_times_do() {
        let a = SegmentName::new(at("2026-11-27T17:06:44Z"), 9).file_name(Form::Gzip);
        let b = SegmentName::new(at("2026-11-27T17:06:44Z"), 10).file_name(Form::Plain);
        let c = SegmentName::new(at("2026-11-28T00:00:00Z"), 11).file_name(Form::Gzip);
        assert!(a < b && b < c, "{a} {b} {c}");
    }
}
