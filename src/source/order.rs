//! Putting a source's records in time order before they reach the pipeline,
//! for sources whose order is not time order (an exported file, records
//! stored in receive order).
//!
//! The order is by record time, stable: equal times keep their stored order
//! (a [`Position`]: which input, which line), and records without a time
//! come first among those held with them, as upstream kongctl sorts them.
//! Two ways to get there:
//!
//! - [`TimeOrder`] holds what a limit can still print, then sorts it: the
//!   first N or the last N by time, so memory follows the limit, not the
//!   input; without a limit, every matching record until the source ends.
//! - [`Merge`] streams: each input (a stored segment) is a run, checked for
//!   order as it is read and sorted only if it is not; held runs are merged
//!   and given out as soon as the caller knows no unread input holds an
//!   earlier record (a [`Bound`], from the inputs' known time ranges). When
//!   the inputs' ranges barely overlap, as stored segments do, it holds about
//!   one input at a time; when an unread input may hold anything (no range
//!   known), it holds everything until that input is read.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use jiff::Timestamp;

use crate::query::{Limit, Query};
use crate::record::Record;

/// Where a record is stored: input `n` (a segment, a file) and line `l`
/// give `n << 40 | l`, so positions sort in stored order.
pub type Position = u64;

/// The [`Position`] of line `line` of input `input`.
pub fn position(input: usize, line: u64) -> Position {
    ((input as u64) << 40) | (line & ((1 << 40) - 1))
}

/// A record with its place in the source, ordered by (time, place).
struct Held {
    time: Option<Timestamp>,
    seq: u64,
    record: Record,
}

impl Held {
    fn key(&self) -> (Option<Timestamp>, u64) {
        (self.time, self.seq)
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

enum Store {
    All(Vec<Held>),
    /// The N smallest: a max-heap whose top is the first to drop.
    First(usize, BinaryHeap<Held>),
    /// The N largest: a min-heap.
    Last(usize, BinaryHeap<Reverse<Held>>),
}

/// Collects the records of a query and gives them back in time order.
pub struct TimeOrder {
    query: Query,
    store: Store,
    seq: u64,
    /// Matching records dropped because of the limit.
    dropped: bool,
}

impl TimeOrder {
    pub fn new(query: Query) -> TimeOrder {
        let store = match query.limit {
            Limit::Unlimited => Store::All(Vec::new()),
            Limit::First(n) => Store::First(n, BinaryHeap::with_capacity(n.min(1 << 16) + 1)),
            Limit::Last(n) => Store::Last(n, BinaryHeap::with_capacity(n.min(1 << 16) + 1)),
        };
        TimeOrder {
            query,
            store,
            seq: 0,
            dropped: false,
        }
    }

    /// Offers one record, placed after the ones offered before; records
    /// the query does not match are not kept.
    pub fn push(&mut self, record: Record) {
        let seq = self.seq;
        self.seq += 1;
        self.push_at(record, seq);
    }

    /// Offers one record stored at `at` (for a source read in another
    /// order than stored, e.g. newest segment first). Do not mix with
    /// [`TimeOrder::push`].
    pub fn push_at(&mut self, record: Record, at: Position) {
        if !self.query.matches(&record) {
            return;
        }
        // Held: in bytes of its own, not pinning the block it came from.
        let held = Held {
            time: record.time(),
            seq: at,
            record: record.detached(),
        };
        match &mut self.store {
            Store::All(all) => all.push(held),
            Store::First(n, heap) => {
                heap.push(held);
                if heap.len() > *n {
                    heap.pop();
                    self.dropped = true;
                }
            }
            Store::Last(n, heap) => {
                heap.push(Reverse(held));
                if heap.len() > *n {
                    heap.pop();
                    self.dropped = true;
                }
            }
        }
    }

    /// Under [`Limit::Last`], once N records are held: the time of the
    /// oldest of them. A record older than this, or as old and stored
    /// before it, can no longer be printed, so inputs whose records are all
    /// that old need not be read.
    pub fn last_floor(&self) -> Option<Option<Timestamp>> {
        match &self.store {
            Store::Last(n, heap) if heap.len() >= *n => Some(heap.peek().and_then(|h| h.0.time)),
            _ => None,
        }
    }

    /// Whether the limit has dropped a matching record so far.
    pub fn dropped(&self) -> bool {
        self.dropped
    }

    /// The held records in time order, and whether the limit dropped any.
    pub fn into_sorted(self) -> (Vec<Record>, bool) {
        let mut held: Vec<Held> = match self.store {
            Store::All(all) => all,
            Store::First(_, heap) => heap.into_vec(),
            Store::Last(_, heap) => heap.into_iter().map(|Reverse(h)| h).collect(),
        };
        held.sort_unstable();
        (held.into_iter().map(|h| h.record).collect(), self.dropped)
    }
}

/// How far held records may be given out: before the earliest time any
/// unread input may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// An unread input may hold records of any time.
    Nothing,
    /// Every unread input's records are at or after this time. Records
    /// held at exactly this time wait: an unread input's record of the same
    /// time may be stored before them.
    Before(Timestamp),
    /// Nothing is left unread.
    Everything,
}

impl Bound {
    fn admits(&self, time: Option<Timestamp>) -> bool {
        match (self, time) {
            (Bound::Everything, _) => true,
            (Bound::Nothing, _) => false,
            (Bound::Before(_), None) => true,
            (Bound::Before(bound), Some(t)) => t < *bound,
        }
    }
}

/// Held runs above which they are merged into one, so that giving out a
/// record looks at a few run heads, not at every input held.
const MAX_RUNS: usize = 8;

/// Records of several inputs, each a run, given out in time order as far
/// as a [`Bound`] allows (see the module documentation).
#[derive(Default)]
pub struct Merge {
    runs: Vec<VecDeque<Held>>,
    current: Vec<Held>,
    /// Whether `current` is in (time, position) order so far.
    current_sorted: bool,
    held: usize,
}

impl Merge {
    pub fn new() -> Merge {
        Merge {
            current_sorted: true,
            ..Merge::default()
        }
    }

    /// Adds a record of the input being read (positions grow within an
    /// input).
    pub fn push(&mut self, record: Record, at: Position) {
        let held = Held {
            time: record.time(),
            seq: at,
            record: record.detached(),
        };
        if let Some(last) = self.current.last()
            && last.key() > held.key()
        {
            self.current_sorted = false;
        }
        self.current.push(held);
        self.held += 1;
    }

    /// Ends the input being read: its records become a run, sorted if they
    /// were not in order.
    pub fn end_input(&mut self) {
        let mut run = std::mem::take(&mut self.current);
        let sorted = std::mem::replace(&mut self.current_sorted, true);
        if run.is_empty() {
            return;
        }
        if !sorted {
            run.sort_unstable();
        }
        self.runs.push(run.into());
        if self.runs.len() > MAX_RUNS {
            let mut all: Vec<Held> = self.runs.drain(..).flatten().collect();
            // Runs of sorted pieces: the sort finds and merges them.
            all.sort();
            self.runs.push(all.into());
        }
    }

    /// Records held (read and not given out).
    pub fn held(&self) -> usize {
        self.held
    }

    /// The earliest held record of the ended inputs, if `bound` lets it
    /// out.
    pub fn pop(&mut self, bound: Bound) -> Option<Record> {
        let (index, _) = self
            .runs
            .iter()
            .enumerate()
            .filter_map(|(i, run)| run.front().map(|h| (i, h.key())))
            .min_by_key(|(_, key)| *key)?;
        let run = &mut self.runs[index];
        if !bound.admits(run.front().and_then(|h| h.time)) {
            return None;
        }
        let held = run.pop_front().expect("the run has a head");
        if run.is_empty() {
            self.runs.swap_remove(index);
        }
        self.held -= 1;
        Some(held.record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ts: &str, sig: &str) -> Record {
        Record::from_slice(format!(r#"{{"event_ts":"{ts}","sig":"{sig}"}}"#).as_bytes()).unwrap()
    }

    fn sigs(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| r.signature().unwrap().to_owned())
            .collect()
    }

    fn input() -> Vec<Record> {
        vec![
            rec("2026-01-01T00:03:00Z", "c"),
            rec("2026-01-01T00:01:00Z", "a"),
            rec("2026-01-01T00:02:00Z", "b1"),
            rec("2026-01-01T00:04:00Z", "d"),
            rec("2026-01-01T00:02:00Z", "b2"),
        ]
    }

    fn order(limit: Limit) -> (Vec<String>, bool) {
        let mut o = TimeOrder::new(Query {
            limit,
            ..Query::all()
        });
        for r in input() {
            o.push(r);
        }
        let (records, dropped) = o.into_sorted();
        (sigs(&records), dropped)
    }

    #[test]
    fn sorts_by_time_keeping_ties_in_source_order() {
        assert_eq!(
            order(Limit::Unlimited),
            (
                vec!["a".into(), "b1".into(), "b2".into(), "c".into(), "d".into()],
                false
            )
        );
    }

    #[test]
    fn limits_hold_only_what_can_be_printed() {
        assert_eq!(
            order(Limit::First(2)),
            (vec!["a".into(), "b1".into()], true)
        );
        assert_eq!(order(Limit::Last(2)), (vec!["c".into(), "d".into()], true));
        assert_eq!(
            order(Limit::Last(3)),
            (vec!["b2".into(), "c".into(), "d".into()], true)
        );
        assert!(!order(Limit::First(9)).1);
    }

    fn merged(inputs: Vec<Vec<Record>>, bounds: Vec<Bound>) -> Vec<Vec<String>> {
        // Before reading input i, give out what bounds[i] allows; after the
        // last, everything.
        let mut m = Merge::new();
        let mut out = Vec::new();
        for (i, (records, bound)) in inputs.into_iter().zip(bounds).enumerate() {
            let mut step = Vec::new();
            while let Some(r) = m.pop(bound) {
                step.push(r);
            }
            out.push(sigs(&step));
            for (line, r) in records.into_iter().enumerate() {
                m.push(r, position(i, line as u64 + 1));
            }
            m.end_input();
        }
        let mut rest = Vec::new();
        while let Some(r) = m.pop(Bound::Everything) {
            rest.push(r);
        }
        out.push(sigs(&rest));
        assert_eq!(m.held(), 0);
        out
    }

    #[test]
    fn merge_gives_out_what_no_unread_input_can_precede() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let out = merged(
            vec![
                vec![
                    rec("2026-01-01T00:01:00Z", "a"),
                    rec("2026-01-01T00:03:00Z", "c"),
                ],
                // Out of order inside, and overlapping the first.
                vec![
                    rec("2026-01-01T00:04:00Z", "d"),
                    rec("2026-01-01T00:02:00Z", "b"),
                ],
                vec![rec("2026-01-01T00:05:00Z", "e")],
            ],
            vec![
                Bound::Nothing,
                Bound::Before(t("2026-01-01T00:02:00Z")),
                Bound::Before(t("2026-01-01T00:05:00Z")),
            ],
        );
        assert_eq!(out, [vec![], vec!["a"], vec!["b", "c", "d"], vec!["e"]]);
    }

    #[test]
    fn merge_keeps_equal_times_in_stored_order_across_inputs() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let out = merged(
            vec![
                vec![rec("2026-01-01T00:02:00Z", "x1")],
                vec![
                    rec("2026-01-01T00:02:00Z", "x2"),
                    rec("2026-01-01T00:01:00Z", "w"),
                ],
            ],
            // The second input starts at 00:01, so x1 may not go first.
            vec![Bound::Nothing, Bound::Before(t("2026-01-01T00:01:00Z"))],
        );
        assert_eq!(out, [vec![], vec![], vec!["w", "x1", "x2"]]);
        // A bound equal to a held time holds it back.
        let out = merged(
            vec![
                vec![rec("2026-01-01T00:02:00Z", "x1")],
                vec![rec("2026-01-01T00:02:00Z", "x2")],
            ],
            vec![Bound::Nothing, Bound::Before(t("2026-01-01T00:02:00Z"))],
        );
        assert_eq!(out, [vec![], vec![], vec!["x1", "x2"]]);
    }

    #[test]
    fn merge_collapses_many_runs_and_stays_ordered() {
        let inputs: Vec<Vec<Record>> = (0..20)
            .map(|i| {
                vec![
                    rec(
                        &format!("2026-01-01T00:{:02}:00Z", 40 - i),
                        &format!("r{i}a"),
                    ),
                    rec(&format!("2026-01-01T00:{:02}:30Z", i), &format!("r{i}b")),
                ]
            })
            .collect();
        let out = merged(inputs, vec![Bound::Nothing; 20]);
        let all = out.last().unwrap();
        assert_eq!(all.len(), 40);
        assert_eq!(all[0], "r0b");
        assert_eq!(all[39], "r0a");
    }

    #[test]
    fn last_floor_is_the_oldest_kept_once_full() {
        let mut o = TimeOrder::new(Query {
            limit: Limit::Last(2),
            ..Query::all()
        });
        o.push_at(rec("2026-01-01T00:03:00Z", "c"), position(1, 1));
        assert_eq!(o.last_floor(), None);
        o.push_at(rec("2026-01-01T00:04:00Z", "d"), position(1, 2));
        o.push_at(rec("2026-01-01T00:01:00Z", "a"), position(0, 1));
        assert_eq!(
            o.last_floor(),
            Some(Some("2026-01-01T00:03:00Z".parse().unwrap()))
        );
        assert_eq!(sigs(&o.into_sorted().0), ["c", "d"]);
    }
}
