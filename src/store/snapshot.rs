//! Reading the store while a listener writes it: the one listing of the
//! directory ([`list`]), the one way to open a closed segment
//! ([`open_segment`]: plain, else gzip'd, else gone), and the one view of
//! the whole store that every reader starts from ([`Snapshot`]): `get
//! audit-logs --stored`, `tail --stored`, replay's scan and offline
//! `--verify`. Nothing here writes or locks anything.
//!
//! **The guarantee.** A snapshot whose taking starts at time T holds every
//! closed segment that existed at T, and an active file such that the two
//! together hold every record acknowledged before T exactly once, whatever
//! rotations, compressions and deletions run meanwhile. A segment that
//! retention deletes before it is opened is [`Opened::Gone`]: its records
//! are skipped, and the reader says so once.
//!
//! **Why.** The writer changes the directory in three ways, each a
//! sequence of single renames and unlinks (`writer`, `rotate`,
//! `maintain`):
//!
//! - rotation renames `events.jsonl` to the next segment's plain name,
//!   then a new, empty file to `events.jsonl`;
//! - compression renames a complete, synced `.gz` into place, then removes
//!   the plain file;
//! - retention removes a segment's files, then its index entry.
//!
//! A directory read that runs while a name is added or removed may or may
//! not return that name (POSIX leaves it open), so one listing can miss a
//! segment whose compression both renamed and unlinked during it. Two
//! listings one after the other cannot both miss it: the second starts
//! after the first ended, when the compression is over or has not yet
//! begun its second step. So a snapshot is the union of two listings
//! ([`Snapshot::take`]), with the active file opened between them. If the
//! second listing holds a newer segment than the first, a rotation ran
//! around the open (the file opened may already be that segment, or the
//! first listing missed it), and the snapshot is taken again; otherwise
//! the file opened is the one the next rotation turns into segment
//! [`Snapshot::next_seq`], and every older segment is listed. That seq is
//! one past the newest segment listed, or, if retention deleted that one,
//! the index's `next_seq` (read before the first listing; the maintenance
//! thread counts a seq in the index before any of its files can go). If
//! the index's `next_seq` moved during the snapshot, a segment was indexed
//! meanwhile, which may be the active file's: the snapshot is taken again.
//!
//! Opening a segment tries its plain file first, then its `.gz`: the plain
//! file is removed only once the `.gz` is whole and in place, so when
//! neither opens, retention deleted the segment. (The other order could
//! miss both, if the compression finished in between.)
//!
//! `segments.json` ([`super::index`]) tells each segment's record times,
//! which lets a query skip it unopened ([`Segment::known`]). Readers trust
//! it only as far as it goes: a segment on disk that it does not list is
//! read whatever the query, an entry whose files are gone is ignored, and
//! an index that cannot be read is as good as none (every segment is
//! read).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};

use super::index::{Index, SegmentEntry};
use super::layout::{ACTIVE_FILE, Form, INDEX_FILE, SegmentName, StoreFile};

/// How many times [`Snapshot::take`] looks again when the store changed
/// while it looked (each look takes two directory reads; a rotation every
/// few milliseconds makes a retry now and then, never many in a row).
const SNAPSHOT_TRIES: usize = 100;

/// The store files found in a directory, by what they are.
#[derive(Debug, Default, Clone)]
pub struct Listing {
    /// Closed segments by seq.
    pub segments: BTreeMap<u64, Found>,
    /// The next active file of a rotation that did not finish is there.
    pub next_active: bool,
    /// Compressions' unfinished outputs.
    pub compress_temps: Vec<SegmentName>,
}

/// The files of one closed segment found by a listing: its plain form, its
/// gzip'd form, or both (a compression between its two steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Found {
    pub plain: Option<SegmentName>,
    pub gzip: Option<SegmentName>,
}

impl Found {
    /// The segment's name (the `.gz`'s where both are found: it is the
    /// one that stays).
    pub fn name(&self) -> SegmentName {
        self.gzip
            .or(self.plain)
            .expect("a segment is found by one of its files")
    }

    fn add(&mut self, other: Found) {
        self.plain = self.plain.or(other.plain);
        self.gzip = self.gzip.or(other.gzip);
    }
}

impl Listing {
    /// The highest segment seq listed (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.segments.keys().next_back().copied().unwrap_or(0)
    }
}

/// Reads the directory `dir` once. A directory that does not exist (yet)
/// holds no store file.
pub fn list(dir: &Path) -> io::Result<Listing> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Listing::default()),
        Err(e) => return Err(e),
    };
    let mut listing = Listing::default();
    for entry in entries {
        let entry = entry?;
        let Some(file) = entry.file_name().to_str().and_then(StoreFile::parse) else {
            continue;
        };
        match file {
            StoreFile::Segment(name, form) => {
                let found = listing.segments.entry(name.seq).or_default();
                match form {
                    Form::Plain => found.plain = Some(name),
                    Form::Gzip => found.gzip = Some(name),
                }
            }
            StoreFile::NextActive => listing.next_active = true,
            StoreFile::CompressTemp(name) => listing.compress_temps.push(name),
            StoreFile::Active | StoreFile::Index => {}
        }
    }
    listing.compress_temps.sort();
    Ok(listing)
}

/// A closed segment opened for reading, or the news that it is gone.
#[derive(Debug)]
pub enum Opened {
    /// The file open, which form it is, and its path (for messages).
    File {
        file: File,
        form: Form,
        path: PathBuf,
    },
    /// Neither file exists: deleted (by retention) since it was listed.
    /// `path` names the form last tried, for the warning.
    Gone { path: PathBuf },
}

/// Opens segment `name` of the store in `dir`: its plain file, else its
/// `.gz` (see the module documentation for why in this order).
pub fn open_segment(dir: &Path, name: &SegmentName) -> io::Result<Opened> {
    let mut last = None;
    for form in [Form::Plain, Form::Gzip] {
        let path = name.path(dir, form);
        match File::open(&path) {
            Ok(file) => return Ok(Opened::File { file, form, path }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => last = Some(path),
            Err(e) => return Err(e),
        }
    }
    Ok(Opened::Gone {
        path: last.expect("two forms were tried"),
    })
}

/// What a reader says of a segment it had to skip ([`Opened::Gone`]),
/// after the file's path.
pub const GONE: &str =
    "deleted by the store's retention while this read ran; its records are skipped";

/// What `segments.json` says of one segment, when a reader can trust it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// The oldest and newest record times; `None` when no record of the
    /// segment has a time.
    pub times: Option<(Timestamp, Timestamp)>,
    pub records: u64,
    /// How far its records are from time order (`max_lateness_ms`), if the
    /// index says: a reader streams the segment in time order with this
    /// much lookahead instead of holding it whole.
    pub lateness: Option<SignedDuration>,
}

impl Known {
    /// Whether the segment holds no record at all.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The entry's times, if they make a range: both null (no timed
    /// record), or oldest no later than newest. Anything else is not
    /// trusted, and the segment is read as if unlisted.
    fn from_entry(entry: &SegmentEntry) -> Option<Known> {
        let times = match (entry.oldest_event_at, entry.newest_event_at) {
            (Some(o), Some(n)) if o <= n => Some((o, n)),
            (None, None) => None,
            _ => return None,
        };
        Some(Known {
            times,
            records: entry.records,
            lateness: entry
                .max_lateness_ms
                .and_then(|ms| i64::try_from(ms).ok())
                .map(SignedDuration::from_millis),
        })
    }
}

/// A closed segment of a [`Snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub name: SegmentName,
    /// What the index says of it; `None` when it does not list it (yet).
    pub known: Option<Known>,
}

impl Segment {
    pub fn seq(&self) -> u64 {
        self.name.seq
    }
}

/// One consistent view of a profile's store (see the module
/// documentation for what it guarantees).
#[derive(Debug)]
pub struct Snapshot {
    pub dir: PathBuf,
    /// Closed segments in rotation (seq) order.
    pub segments: Vec<Segment>,
    /// The active file, held open: the records it holds when it is read
    /// follow the last segment's. `None` when there is none (no listener
    /// ever stored here, or a rotation was between its two renames).
    pub active: Option<File>,
    /// The seq the active file takes when it is rotated: every segment
    /// from this one on holds records of the active file or later ones.
    pub next_seq: u64,
    /// Whether `segments.json` was read: a segment it does not list
    /// (`known` is `None`) is then newer than the index, or the index is
    /// stale.
    pub indexed: bool,
}

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path} kept rotating while it was being read; try again")]
    Unsettled { path: String },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The index as read at one moment, and which file it was read from (a
/// rewrite replaces the file, so another inode means it changed).
struct IndexRead {
    index: Option<Index>,
    inode: Option<(u64, u64)>,
}

impl IndexRead {
    fn take(dir: &Path) -> IndexRead {
        let path = dir.join(INDEX_FILE);
        let inode = index_inode(&path);
        let index = Index::read(dir).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "segment index not used; reading every segment");
            None
        });
        IndexRead { index, inode }
    }

    fn next_seq(&self) -> u64 {
        self.index.as_ref().map_or(1, |i| i.next_seq)
    }
}

fn index_inode(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Makes one view of two listings taken around the open of the active
/// file (`first` before, `again` after) and the index's `next_seq` read
/// before the first and after the second: the segments of both listings,
/// and the seq the active file takes when rotated. `None` when the store
/// changed so that the file opened may not follow the last segment listed:
///
/// - `again` holds a newer segment than `first`: a rotation ran around the
///   open (the file opened may be that segment already, or `first` missed
///   it);
/// - the index's `next_seq` moved: a segment was indexed meanwhile, which
///   may be the active file's.
///
/// The active file's seq is one past the newest segment listed, unless
/// retention deleted that one, which the index then still counts.
fn settle(
    mut first: Listing,
    again: Listing,
    index_before: u64,
    index_after: u64,
) -> Option<(Listing, u64)> {
    if again.last_seq() > first.last_seq() || index_after != index_before {
        return None;
    }
    for (seq, found) in again.segments {
        first.segments.entry(seq).or_default().add(found);
    }
    let next_seq = index_before.max(first.last_seq() + 1);
    Some((first, next_seq))
}

impl Snapshot {
    /// Takes a snapshot of the store in `dir`. A store that does not exist
    /// (yet) is an empty one.
    pub fn take(dir: &Path) -> Result<Snapshot, SnapshotError> {
        for _ in 0..SNAPSHOT_TRIES {
            if let Some(snapshot) = Snapshot::try_take(dir)? {
                return Ok(snapshot);
            }
            std::thread::yield_now();
        }
        Err(SnapshotError::Unsettled {
            path: dir.display().to_string(),
        })
    }

    /// One attempt; `None` when the store changed in a way that leaves the
    /// view in doubt.
    fn try_take(dir: &Path) -> Result<Option<Snapshot>, SnapshotError> {
        let before = IndexRead::take(dir);
        let listing = list(dir).map_err(io_error(dir))?;
        let active_path = dir.join(ACTIVE_FILE);
        let active = match File::open(&active_path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error(&active_path)(e)),
        };
        let again = list(dir).map_err(io_error(dir))?;
        let index_after = if index_inode(&dir.join(INDEX_FILE)) == before.inode {
            before.next_seq()
        } else {
            IndexRead::take(dir).next_seq()
        };
        let Some((listing, next_seq)) = settle(listing, again, before.next_seq(), index_after)
        else {
            return Ok(None);
        };
        let known: BTreeMap<u64, Known> = before
            .index
            .iter()
            .flat_map(|i| &i.segments)
            .filter_map(|e| Some((e.name()?.0.seq, Known::from_entry(e)?)))
            .collect();
        let segments = listing
            .segments
            .values()
            .map(|found| {
                let name = found.name();
                Segment {
                    name,
                    known: known.get(&name.seq).copied(),
                }
            })
            .collect();
        Ok(Some(Snapshot {
            dir: dir.to_path_buf(),
            segments,
            active,
            next_seq,
            indexed: before.index.is_some(),
        }))
    }

    /// The active file's path (for messages).
    pub fn active_path(&self) -> PathBuf {
        self.dir.join(ACTIVE_FILE)
    }

    /// Opens one of [`Snapshot::segments`] (see [`open_segment`]).
    pub fn open(&self, segment: &Segment) -> io::Result<Opened> {
        open_segment(&self.dir, &segment.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn name(seq: u64) -> SegmentName {
        SegmentName::new("2026-11-27T17:06:44Z".parse().unwrap(), seq)
    }

    fn write(dir: &Path, seq: u64, form: Form, text: &str) {
        fs::write(name(seq).path(dir, form), text).unwrap();
    }

    fn seqs(s: &Snapshot) -> Vec<u64> {
        s.segments.iter().map(Segment::seq).collect()
    }

    #[test]
    fn a_listing_sorts_the_store_files_out() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(list(&d.join("missing")).unwrap().segments.is_empty());
        write(d, 2, Form::Plain, "");
        write(d, 2, Form::Gzip, "");
        write(d, 1, Form::Gzip, "");
        for other in [
            "events.jsonl",
            "segments.json",
            "listener.json",
            "events-20261127T170644Z-42.jsonl",
            "events-20261327T170644Z-000042.jsonl",
        ] {
            fs::write(d.join(other), "").unwrap();
        }
        fs::write(d.join(".events.jsonl.next"), "").unwrap();
        fs::write(name(3).compress_temp(d), "").unwrap();
        let l = list(d).unwrap();
        assert_eq!(l.segments.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            l.segments[&2],
            Found {
                plain: Some(name(2)),
                gzip: Some(name(2))
            }
        );
        assert_eq!(l.segments[&1].plain, None);
        assert!(l.next_active);
        assert_eq!(l.compress_temps, [name(3)]);
        assert_eq!(l.last_seq(), 2);
    }

    #[test]
    fn a_segment_opens_plain_then_gzipped_then_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, 1, Form::Plain, "plain");
        write(d, 1, Form::Gzip, "gz");
        let form = |o: Opened| match o {
            Opened::File { form, path, .. } => Ok((form, path)),
            Opened::Gone { path } => Err(path),
        };
        assert_eq!(
            form(open_segment(d, &name(1)).unwrap()),
            Ok((Form::Plain, name(1).path(d, Form::Plain)))
        );
        fs::remove_file(name(1).path(d, Form::Plain)).unwrap();
        assert_eq!(
            form(open_segment(d, &name(1)).unwrap()),
            Ok((Form::Gzip, name(1).path(d, Form::Gzip)))
        );
        fs::remove_file(name(1).path(d, Form::Gzip)).unwrap();
        assert_eq!(
            form(open_segment(d, &name(1)).unwrap()),
            Err(name(1).path(d, Form::Gzip))
        );
    }

    fn listing(found: &[(u64, Form)]) -> Listing {
        let mut l = Listing::default();
        for &(seq, form) in found {
            let f = l.segments.entry(seq).or_default();
            match form {
                Form::Plain => f.plain = Some(name(seq)),
                Form::Gzip => f.gzip = Some(name(seq)),
            }
        }
        l
    }

    #[test]
    fn two_listings_settle_into_one_view_or_ask_to_look_again() {
        use Form::{Gzip, Plain};
        let seqs = |l: &Listing| l.segments.keys().copied().collect::<Vec<_>>();
        // Nothing moved.
        let (l, next) = settle(
            listing(&[(1, Gzip), (2, Plain)]),
            listing(&[(1, Gzip), (2, Plain)]),
            2,
            2,
        )
        .unwrap();
        assert_eq!((seqs(&l), next), (vec![1, 2], 3));
        // Segment 2's compression renamed its .gz in and removed the plain
        // file while the first listing ran, which saw neither: the second
        // has it, and the view too.
        let (l, next) = settle(
            listing(&[(1, Gzip), (3, Plain)]),
            listing(&[(1, Gzip), (2, Gzip), (3, Plain)]),
            3,
            3,
        )
        .unwrap();
        assert_eq!((seqs(&l), next), (vec![1, 2, 3], 4));
        // The same race in the second listing: the first has it.
        let (l, _) = settle(
            listing(&[(1, Gzip), (2, Plain), (3, Plain)]),
            listing(&[(1, Gzip), (3, Plain)]),
            3,
            3,
        )
        .unwrap();
        assert_eq!(seqs(&l), [1, 2, 3]);
        assert_eq!(l.segments[&2].plain, Some(name(2)));
        // A rotation ran around the open of the active file.
        assert!(
            settle(
                listing(&[(1, Gzip)]),
                listing(&[(1, Gzip), (2, Plain)]),
                2,
                2
            )
            .is_none()
        );
        // A segment was indexed meanwhile.
        assert!(settle(listing(&[(1, Gzip)]), listing(&[(1, Gzip)]), 2, 3).is_none());
        // Retention deleted the newest segments; the index still counts
        // their seqs.
        let (l, next) = settle(listing(&[(1, Gzip)]), listing(&[]), 5, 5).unwrap();
        assert_eq!((seqs(&l), next), (vec![1], 5));
    }

    #[test]
    fn a_snapshot_lists_segments_with_what_the_index_trusts() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let empty = Snapshot::take(&d.join("missing")).unwrap();
        assert!(empty.segments.is_empty() && empty.active.is_none());
        assert_eq!(empty.next_seq, 1);

        for seq in [1, 2, 3] {
            write(d, seq, Form::Gzip, "x\n");
        }
        fs::write(d.join(ACTIVE_FILE), "a\n").unwrap();
        let entry = |seq: u64, oldest: Option<&str>, newest: Option<&str>| SegmentEntry {
            file: name(seq).file_name(Form::Gzip),
            first_received_at: name(seq).first_received,
            oldest_event_at: oldest.map(|t| t.parse().unwrap()),
            newest_event_at: newest.map(|t| t.parse().unwrap()),
            max_lateness_ms: (seq == 1).then_some(1500),
            records: seq,
            bytes: 1,
        };
        let mut index = Index::default();
        index.upsert(entry(
            1,
            Some("2026-01-01T00:00:00Z"),
            Some("2026-01-02T00:00:00Z"),
        ));
        // Newest before oldest: not a range to trust.
        index.upsert(entry(
            2,
            Some("2026-01-03T00:00:00Z"),
            Some("2026-01-02T00:00:00Z"),
        ));
        // Listed, but its files are gone: not in the snapshot.
        index.upsert(entry(9, None, None));
        index.write(d).unwrap();
        let s = Snapshot::take(d).unwrap();
        assert_eq!(seqs(&s), [1, 2, 3]);
        assert_eq!(
            s.segments[0].known,
            Some(Known {
                times: Some((
                    "2026-01-01T00:00:00Z".parse().unwrap(),
                    "2026-01-02T00:00:00Z".parse().unwrap()
                )),
                records: 1,
                lateness: Some(SignedDuration::from_millis(1500)),
            })
        );
        assert_eq!(s.segments[1].known, None);
        assert_eq!(s.segments[2].known, None, "not listed yet");
        assert!(s.active.is_some());
        // The index gave out seqs up to 9: the active file takes 10.
        assert_eq!(s.next_seq, 10);

        // An index that cannot be read is as good as none.
        fs::write(d.join(INDEX_FILE), "{").unwrap();
        let s = Snapshot::take(d).unwrap();
        assert_eq!(seqs(&s), [1, 2, 3]);
        assert!(s.segments.iter().all(|s| s.known.is_none()));
        assert_eq!(s.next_seq, 4);
    }
}
