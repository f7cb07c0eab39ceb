//! A profile's stored events, as one source: its closed segments (plain or
//! gzip'd) and its active `events.jsonl`, read in record-time order for
//! `get audit-logs --stored`, and followed across rotation for
//! `tail --stored` ([`follow`]).
//!
//! The layout is the listener's ([`index`] reads the names and the index);
//! this module never writes to it and takes no lock, so it works while a
//! listener (detached or not) stores, rotates, compresses and deletes.
//! [`Snapshot::take`] pins one consistent view: the segments listed and
//! the active file opened with no rotation in between (else it looks
//! again). What changes after that is tolerated: a segment deleted by
//! retention is skipped, one compressed meanwhile is read from its `.gz`,
//! and the active file, held open, is read as it was rotated.
//!
//! Ordering without holding the store in memory ([`query`]): stored order is
//! receive order, which is nearly time order, and the index gives each
//! segment's oldest and newest record time. So:
//!
//! - the default query (no window: the N most recent) reads newest first
//!   and stops once no older segment can hold a record among the newest N,
//!   holding N records ([`TimeOrder`]);
//! - a window query (or `--limit 0`) skips every segment whose times miss
//!   the window, then reads the active file and the other segments on every
//!   core and merges them in time order ([`parallel`]): a segment the index
//!   says is in time order (its `max_lateness_ms`) is streamed, the active
//!   file is read in place (where its matching records are, then those
//!   records in order), and a record prints as soon as no unread one can
//!   come before it. With `--limit N` it stops once N are printed and one
//!   more was found.
//!
//! Worst case: a segment the index does not describe (no index, or one
//! written before it) may hold any time in any order, so it is held until
//! read whole, and nothing it may precede is printed before; a store whose
//! segments all overlap (a replay of old events into every segment) is
//! held whole. Memory is then that of the matching records, as for
//! `--file`.

pub mod follow;
pub mod index;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::output::Output;
use crate::query::{Limit, Pipeline, Window};
use crate::record::Record;
use crate::source::file::{self, LastLine, LineReader, Problem};
use crate::source::order::{Position, TimeOrder, position};
use crate::source::parallel::{self, Floor, Input, Opened, Order, Source};
use index::{ACTIVE_FILE, Known, read_index, segment_name};

/// How many times [`Snapshot::take`] looks again when a rotation happens
/// while it looks.
const SNAPSHOT_TRIES: usize = 20;

/// A closed segment.
#[derive(Debug, Clone)]
pub struct Segment {
    pub seq: u64,
    /// `events-…-<seq>.jsonl`.
    pub stem: String,
    /// The plain file was listed (a compression may be under way); else
    /// only the `.gz` was.
    pub plain: bool,
    /// What the index says of it, if it lists it.
    pub known: Option<Known>,
}

impl Segment {
    /// The file to read: the plain one while it is listed (a `.gz` beside
    /// it may still be being written), else the `.gz`.
    pub fn file(&self, dir: &Path) -> PathBuf {
        if self.plain {
            dir.join(&self.stem)
        } else {
            dir.join(format!("{}.gz", self.stem))
        }
    }

    /// The files to open in turn: the plain one while it was listed (a
    /// compression may finish meanwhile), then the `.gz`.
    fn tries(&self, dir: &Path) -> Vec<PathBuf> {
        let mut tries = Vec::with_capacity(2);
        if self.plain {
            tries.push(dir.join(&self.stem));
        }
        tries.push(dir.join(format!("{}.gz", self.stem)));
        tries
    }

    /// Whether a query over `window` can skip this segment without reading
    /// it: the index says it holds nothing in the window.
    pub fn outside(&self, window: &Window) -> bool {
        match self.known {
            None => false,
            Some(k) if k.is_empty() => true,
            // Records without a time are in only an open window.
            Some(Known { times: None, .. }) => !window.is_open(),
            Some(Known {
                times: Some((oldest, newest)),
                ..
            }) => !window.overlaps(oldest, newest),
        }
    }

    /// The latest time this segment may hold (`None`: any).
    fn newest(&self) -> Option<Option<Timestamp>> {
        match self.known {
            Some(Known {
                times: Some((_, newest)),
                ..
            }) => Some(Some(newest)),
            Some(Known { times: None, .. }) => Some(None),
            None => None,
        }
    }
}

/// One consistent view of a profile's store.
pub struct Snapshot {
    pub dir: PathBuf,
    /// Closed segments in rotation order.
    pub segments: Vec<Segment>,
    /// The active file, opened after the segments were listed and before a
    /// second listing found no new one: the rotation after the last listed
    /// segment will turn exactly this file into the next segment.
    pub active: Option<File>,
    /// The highest seq listed (0 when none).
    pub last_seq: u64,
}

/// Why the store could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path} kept rotating while it was being read; try again")]
    Unsettled { path: String },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoredError + '_ {
    move |source| StoredError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The segments in `dir`, in seq order (empty if `dir` does not exist).
pub fn list_segments(dir: &Path) -> io::Result<Vec<Segment>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut by_seq: HashMap<u64, Segment> = HashMap::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().and_then(segment_name) else {
            continue;
        };
        let segment = by_seq.entry(name.seq).or_insert_with(|| Segment {
            seq: name.seq,
            stem: name.stem.clone(),
            plain: false,
            known: None,
        });
        // Plain and gz both present: a compression is under way and the
        // plain file is the whole one.
        segment.plain |= !name.gz;
    }
    let mut segments: Vec<Segment> = by_seq.into_values().collect();
    segments.sort_by_key(|s| s.seq);
    Ok(segments)
}

impl Snapshot {
    /// Lists the store in `dir` and opens its active file, looking again if
    /// a rotation happened meanwhile. A store that does not exist (yet) is
    /// an empty one.
    pub fn take(dir: &Path) -> Result<Snapshot, StoredError> {
        for _ in 0..SNAPSHOT_TRIES {
            let before = list_segments(dir).map_err(io_error(dir))?;
            let active_path = dir.join(ACTIVE_FILE);
            let active = match File::open(&active_path) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_error(&active_path)(e)),
            };
            let mut segments = list_segments(dir).map_err(io_error(dir))?;
            let last = |s: &[Segment]| s.last().map_or(0, |s| s.seq);
            if last(&segments) != last(&before) {
                // The active file we opened may be one that was rotated
                // meanwhile: its records would be read twice, or a
                // segment missed.
                continue;
            }
            let known = read_index(dir).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "segment index not used; reading every segment");
                HashMap::new()
            });
            for segment in &mut segments {
                segment.known = known.get(&segment.stem).copied();
            }
            let last_seq = last(&segments);
            return Ok(Snapshot {
                dir: dir.to_path_buf(),
                segments,
                active,
                last_seq,
            });
        }
        Err(StoredError::Unsettled {
            path: dir.display().to_string(),
        })
    }

    /// The active file's path (for messages).
    pub fn active_path(&self) -> PathBuf {
        self.dir.join(ACTIVE_FILE)
    }

    /// Reads segment `index` of [`Snapshot::segments`], handing its
    /// records with their positions (input `index`) to `on_record` (false
    /// stops). A segment deleted since it was listed is skipped; one
    /// compressed since is read from its `.gz`. Lines `admit` refuses
    /// (`--grep`) are not read.
    pub fn read_segment(
        &self,
        index: usize,
        admit: &dyn Fn(&[u8]) -> bool,
        on_record: &mut dyn FnMut(Position, Record) -> io::Result<bool>,
        on_problem: &mut dyn FnMut(Problem),
    ) -> io::Result<()> {
        read_segment_file(
            &self.dir,
            &self.segments[index],
            index,
            admit,
            on_record,
            on_problem,
        )
    }

    /// Reads the active file from its start up to its last whole line,
    /// as input `input`; returns the offset after that line (where a
    /// follower goes on).
    pub fn read_active(
        &mut self,
        input: usize,
        admit: &dyn Fn(&[u8]) -> bool,
        on_record: &mut dyn FnMut(Position, Record) -> io::Result<bool>,
        on_problem: &mut dyn FnMut(Problem),
    ) -> io::Result<u64> {
        let name = self.active_path().display().to_string();
        let Some(file) = &mut self.active else {
            return Ok(0);
        };
        file.seek(SeekFrom::Start(0))?;
        let mut lines = LineReader::new(&*file);
        file::read_admitted(
            &name,
            &mut lines,
            LastLine::Pending,
            admit,
            &mut |line, record| on_record(position(input, line), record),
            on_problem,
        )
    }
}

/// Reads one closed segment of the store in `dir` (see
/// [`Snapshot::read_segment`]).
pub fn read_segment_file(
    dir: &Path,
    segment: &Segment,
    input: usize,
    admit: &dyn Fn(&[u8]) -> bool,
    on_record: &mut dyn FnMut(Position, Record) -> io::Result<bool>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<()> {
    for path in segment.tries(dir) {
        let reader = match File::open(&path) {
            Ok(f) => file::decode(f)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                on_problem(Problem {
                    file: path.display().to_string(),
                    line: None,
                    what: format!("cannot open: {e}; skipped"),
                });
                return Ok(());
            }
        };
        let mut lines = LineReader::new(reader);
        file::read_admitted(
            &path.display().to_string(),
            &mut lines,
            LastLine::Final,
            admit,
            &mut |line, record| on_record(position(input, line), record),
            on_problem,
        )?;
        return Ok(());
    }
    // Deleted by retention since it was listed: its records are gone.
    tracing::debug!(segment = %segment.stem, "segment gone before it was read");
    Ok(())
}

/// Runs the pipeline's query over the snapshot, in record-time order (see
/// the module documentation). Problems go to `on_problem`; output errors
/// (a closed stdout) end the query and are returned.
pub fn query<O: Output>(
    snapshot: &mut Snapshot,
    pipeline: &mut Pipeline<O>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<()> {
    match pipeline.query().limit {
        Limit::Last(_) => newest_first(snapshot, pipeline, on_problem),
        Limit::First(_) | Limit::Unlimited => merged(snapshot, pipeline, on_problem),
    }
}

/// The N most recent: newest input first, into a [`TimeOrder`] of N.
fn newest_first<O: Output>(
    snapshot: &mut Snapshot,
    pipeline: &mut Pipeline<O>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<()> {
    let query = pipeline.query().clone();
    let mut order = TimeOrder::new(query.clone());
    let active = snapshot.segments.len();
    let admit = |line: &[u8]| query.admits(line);
    snapshot.read_active(
        active,
        &admit,
        &mut |at, record| {
            order.push_at(record, at);
            Ok(true)
        },
        on_problem,
    )?;
    for index in (0..snapshot.segments.len()).rev() {
        let segment = &snapshot.segments[index];
        if segment.outside(&query.window) {
            continue;
        }
        // Once N are held and one more was dropped (so the output says
        // truncated either way), a segment whose records are all as old
        // as the oldest held cannot add to the N: it is stored before
        // them, and ties go to the later stored.
        if order.dropped()
            && let (Some(Some(floor)), Some(newest)) = (order.last_floor(), segment.newest())
            && newest.is_none_or(|n| n <= floor)
        {
            continue;
        }
        snapshot.read_segment(
            index,
            &admit,
            &mut |at, record| {
                order.push_at(record, at);
                Ok(true)
            },
            on_problem,
        )?;
    }
    let (records, dropped) = order.into_sorted();
    if dropped {
        pipeline.mark_truncated();
    }
    for record in records {
        pipeline.push(record)?;
    }
    Ok(())
}

/// A window query or no limit: the active file and the segments the window
/// needs, read on every core and merged in record-time order
/// ([`parallel`]).
fn merged<O: Output>(
    snapshot: &mut Snapshot,
    pipeline: &mut Pipeline<O>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<()> {
    let query = pipeline.query().clone();
    let mut inputs = Vec::new();
    if let Some(active) = &snapshot.active {
        // Read in place: what it holds is noted, not held.
        inputs.push(Input {
            name: snapshot.active_path().display().to_string(),
            source: Source::InPlace(active.try_clone()?),
            floor: Floor::Any,
            order: Order::Unknown,
            last: LastLine::Pending,
            number: snapshot.segments.len(),
        });
    }
    for (index, segment) in snapshot.segments.iter().enumerate() {
        if !segment.outside(&query.window) {
            inputs.push(segment_input(&snapshot.dir, segment, index));
        }
    }
    parallel::run(inputs, pipeline, on_problem)
}

/// Segment `index` of the store in `dir` as an input of a merged query:
/// its floor and order from the index (none known: any time, any order).
fn segment_input(dir: &Path, segment: &Segment, index: usize) -> Input {
    let floor = match segment.known {
        Some(Known {
            times: Some((oldest, _)),
            ..
        }) => Floor::At(oldest),
        _ => Floor::Any,
    };
    let order = match segment.known.and_then(|k| k.lateness) {
        Some(late) => Order::Lateness(late),
        None => Order::Unknown,
    };
    let name = segment.file(dir).display().to_string();
    let (dir, segment) = (dir.to_path_buf(), segment.clone());
    Input {
        name,
        source: Source::Stream(Box::new(move || open_segment(&dir, &segment))),
        floor,
        order,
        last: LastLine::Final,
        number: index,
    }
}

/// Opens a closed segment of the store in `dir` for reading: its plain file
/// while it is listed, else its `.gz`; gone if neither is there (deleted by
/// retention since it was listed).
fn open_segment(dir: &Path, segment: &Segment) -> Opened {
    for path in segment.tries(dir) {
        let failed = |e: io::Error| {
            Opened::Failed(Problem {
                file: path.display().to_string(),
                line: None,
                what: format!("cannot open: {e}; skipped"),
            })
        };
        match File::open(&path) {
            Ok(f) => {
                return match file::decode_here(f) {
                    Ok(reader) => Opened::Reader(reader, Some(path.display().to_string())),
                    Err(e) => failed(e),
                };
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return failed(e),
        }
    }
    tracing::debug!(segment = %segment.stem, "segment gone before it was read");
    Opened::Gone
}
