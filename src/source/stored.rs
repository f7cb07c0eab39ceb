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
//! - a window query skips every segment whose times miss the window, then
//!   reads the active file and the segments oldest first as sorted runs
//!   ([`Merge`]), printing a held record as soon as no unread segment can
//!   hold an earlier one. It holds the active file's matching records and
//!   about one segment's (those past the next segment's oldest time); with
//!   `--limit N`, it stops once N are printed and one more was found.
//!
//! Worst case: a segment the index does not describe (no index, or one
//! written before it) may hold any time, so nothing read before it is
//! printed until it is read; a store whose segments all overlap (a replay
//! of old events into every segment) is held whole. Memory is then that of
//! the matching records, as for `--file`.

pub mod follow;

use std::io::{self, Seek, SeekFrom};

use jiff::Timestamp;

use crate::output::Output;
use crate::query::{Limit, Pipeline, Window};
use crate::record::Record;
use crate::source::file::{self, LastLine, LineReader, Problem};
use crate::source::order::{Bound, Merge, Position, TimeOrder, position};
use crate::store::Form;
use crate::store::snapshot::{GONE, Known, Opened, Segment};

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

/// The earliest time `segment` may hold, as a bound for records read
/// before it.
fn floor(segment: &Segment) -> Bound {
    match segment.known {
        Some(k) if k.is_empty() => Bound::Everything,
        Some(Known {
            times: Some((oldest, _)),
            ..
        }) => Bound::Before(oldest),
        // Records without a time only: they come first among those held
        // with them, which they would be if printed now.
        Some(Known { times: None, .. }) => Bound::Everything,
        None => Bound::Nothing,
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

/// The tighter of two bounds.
fn min_bound(a: Bound, b: Bound) -> Bound {
    match (a, b) {
        (Bound::Nothing, _) | (_, Bound::Nothing) => Bound::Nothing,
        (Bound::Everything, x) | (x, Bound::Everything) => x,
        (Bound::Before(x), Bound::Before(y)) => Bound::Before(x.min(y)),
    }
}

/// Reads segment `index` of the snapshot's segments, handing its records
/// with their positions (input `index`) to `on_record` (false stops). A
/// segment compressed since it was listed is read from its `.gz`; one
/// deleted since is skipped with one warning.
pub fn read_segment(
    snapshot: &Snapshot,
    index: usize,
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
    file::read_records(
        &path.display().to_string(),
        &mut lines,
        LastLine::Final,
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
    on_record: &mut dyn FnMut(Position, Record) -> io::Result<bool>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<u64> {
    let name = snapshot.active_path().display().to_string();
    let Some(file) = &mut snapshot.active else {
        return Ok(0);
    };
    file.seek(SeekFrom::Start(0))?;
    let mut lines = LineReader::new(&*file);
    file::read_records(
        &name,
        &mut lines,
        LastLine::Pending,
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
    let query = *pipeline.query();
    let mut order = TimeOrder::new(query);
    let active = snapshot.segments.len();
    read_active(
        snapshot,
        active,
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

/// A window query or no limit: sorted runs merged as they become safe to
/// print.
fn merged<O: Output>(
    snapshot: &mut Snapshot,
    pipeline: &mut Pipeline<O>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<()> {
    let query = *pipeline.query();
    let wanted: Vec<usize> = (0..snapshot.segments.len())
        .filter(|&i| !outside(&snapshot.segments[i], &query.window))
        .collect();
    // floors[k]: the earliest time segments wanted[k..] may hold.
    let mut floors = vec![Bound::Everything; wanted.len() + 1];
    for k in (0..wanted.len()).rev() {
        floors[k] = min_bound(floors[k + 1], floor(&snapshot.segments[wanted[k]]));
    }
    let mut merge = Merge::new();
    // The active file first: the index does not describe it, so read
    // after the segments it would hold back everything before it.
    let active = snapshot.segments.len();
    read_active(
        snapshot,
        active,
        &mut |at, record| {
            if query.matches(&record) {
                merge.push(record, at);
            }
            Ok(true)
        },
        on_problem,
    )?;
    merge.end_input();
    for (k, &index) in wanted.iter().enumerate() {
        if !give_out(&mut merge, floors[k], pipeline)? {
            return Ok(());
        }
        read_segment(
            snapshot,
            index,
            &mut |at, record| {
                if query.matches(&record) {
                    merge.push(record, at);
                }
                Ok(true)
            },
            on_problem,
        )?;
        merge.end_input();
    }
    give_out(&mut merge, Bound::Everything, pipeline)?;
    Ok(())
}

/// Pushes what `bound` lets out of `merge` to the pipeline; false once the
/// pipeline wants no more (its limit is reached and it knows there was
/// more).
fn give_out<O: Output>(
    merge: &mut Merge,
    bound: Bound,
    pipeline: &mut Pipeline<O>,
) -> io::Result<bool> {
    while let Some(record) = merge.pop(bound) {
        pipeline.push(record)?;
        if pipeline.is_done() {
            return Ok(false);
        }
    }
    Ok(true)
}
