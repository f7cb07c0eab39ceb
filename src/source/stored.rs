//! A profile's stored events, as one source: its closed segments (plain or
//! gzip'd) and its active `events.jsonl`, read in record-time order for
//! `get audit-logs --stored`, and followed across rotation for
//! `tail --stored` ([`follow`]).
//!
//! The store is read through `crate::store::snapshot`, which owns the
//! layout and never writes or locks: [`Snapshot::take`] pins one view that
//! holds every record acknowledged before it exactly once, whatever the
//! listener (detached or not) rotates, compresses and deletes meanwhile. A
//! segment compressed after it was listed is read from its `.gz`; one that
//! retention deleted is skipped with one warning; the active file, held
//! open, is read as it was rotated.
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

use std::io::{self, Seek, SeekFrom};

use jiff::Timestamp;

use crate::output::Output;
use crate::query::{Limit, Pipeline, Window};
use crate::record::Record;
use crate::source::file::{self, LastLine, LineReader, Problem};
use crate::source::order::{Position, TimeOrder, position};
use crate::source::parallel::{self, Floor, Input, Order, Source};
use crate::store::Form;
use crate::store::snapshot::{GONE, Known, Opened, Segment, open_segment};

pub use crate::store::snapshot::{Snapshot, SnapshotError};

/// Whether a query over `window` can skip `segment` without reading it:
/// the index says it holds nothing in the window.
pub fn outside(segment: &Segment, window: &Window) -> bool {
    match segment.known {
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

/// The latest time `segment` may hold (`None`: any).
fn newest(segment: &Segment) -> Option<Option<Timestamp>> {
    match segment.known {
        Some(Known {
            times: Some((_, newest)),
            ..
        }) => Some(Some(newest)),
        Some(Known { times: None, .. }) => Some(None),
        None => None,
    }
}

/// Reads segment `index` of the snapshot's segments, handing its records
/// with their positions (input `index`) to `on_record` (false stops). A
/// segment compressed since it was listed is read from its `.gz`; one
/// deleted since is skipped with one warning. Lines `admit` refuses
/// (`--grep`) are not read.
pub fn read_segment(
    snapshot: &Snapshot,
    index: usize,
    admit: &dyn Fn(&[u8]) -> bool,
    on_record: &mut dyn FnMut(Position, Record) -> io::Result<bool>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<()> {
    let (path, file) = match snapshot.open(&snapshot.segments[index]) {
        Ok(Opened::File { file, path, .. }) => (path, file),
        Ok(Opened::Gone { path }) => {
            on_problem(Problem {
                file: path.display().to_string(),
                line: None,
                what: GONE.to_owned(),
            });
            return Ok(());
        }
        Err(e) => {
            let path = snapshot.segments[index]
                .name
                .path(&snapshot.dir, Form::Plain);
            on_problem(Problem {
                file: path.display().to_string(),
                line: None,
                what: format!("cannot open: {e}; skipped"),
            });
            return Ok(());
        }
    };
    let mut lines = LineReader::new(file::decode(file)?);
    file::read_admitted(
        &path.display().to_string(),
        &mut lines,
        LastLine::Final,
        admit,
        &mut |line, record| on_record(position(index, line), record),
        on_problem,
    )?;
    Ok(())
}

/// Reads the snapshot's active file from its start up to its last whole
/// line, as input `input`; returns the offset after that line (where a
/// follower goes on).
pub fn read_active(
    snapshot: &mut Snapshot,
    input: usize,
    admit: &dyn Fn(&[u8]) -> bool,
    on_record: &mut dyn FnMut(Position, Record) -> io::Result<bool>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<u64> {
    let name = snapshot.active_path().display().to_string();
    let Some(file) = &mut snapshot.active else {
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
    read_active(
        snapshot,
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
        if outside(segment, &query.window) {
            continue;
        }
        // Once N are held and one more was dropped (so the output says
        // truncated either way), a segment whose records are all as old
        // as the oldest held cannot add to the N: it is stored before
        // them, and ties go to the later stored.
        if order.dropped()
            && let (Some(Some(floor)), Some(newest)) = (order.last_floor(), newest(segment))
            && newest.is_none_or(|n| n <= floor)
        {
            continue;
        }
        read_segment(
            snapshot,
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
        if !outside(segment, &query.window) {
            inputs.push(segment_input(snapshot, segment, index));
        }
    }
    parallel::run(inputs, pipeline, on_problem)
}

/// Segment `index` of the snapshot as an input of a merged query: its floor
/// and order from the index (none known: any time, any order). It is opened
/// by its reader: plain, else gzip'd, else gone (one warning).
fn segment_input(snapshot: &Snapshot, segment: &Segment, index: usize) -> Input {
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
    let dir = snapshot.dir.clone();
    let name = segment.name;
    let plain = name.path(&dir, Form::Plain).display().to_string();
    let open = move || {
        let problem = |file: String, what: String| {
            parallel::Opened::Failed(Problem {
                file,
                line: None,
                what,
            })
        };
        match open_segment(&dir, &name) {
            Ok(Opened::File { file, path, .. }) => match file::decode_here(file) {
                Ok(reader) => parallel::Opened::Reader(reader, Some(path.display().to_string())),
                Err(e) => problem(
                    path.display().to_string(),
                    format!("cannot open: {e}; skipped"),
                ),
            },
            Ok(Opened::Gone { path }) => problem(path.display().to_string(), GONE.to_owned()),
            Err(e) => problem(
                name.path(&dir, Form::Plain).display().to_string(),
                format!("cannot open: {e}; skipped"),
            ),
        }
    };
    Input {
        name: plain,
        source: Source::Stream(Box::new(open)),
        floor,
        order,
        last: LastLine::Final,
        number: index,
    }
}
