//! Putting a source's records in time order before they reach the pipeline,
//! for sources whose order is not time order (an exported file, records
//! stored in receive order).
//!
//! The order is by record time, stable: equal times keep their stored order
//! (a [`Position`]: which input, which line), and records without a time
//! come first among those held with them, as upstream kongctl sorts them.
//! [`TimeOrder`] holds what a limit can still print, then sorts it: the
//! first N or the last N by time, so memory follows the limit, not the
//! input; without a limit, every matching record until the source ends.
//! Streaming many inputs in this order as they are read is
//! [`crate::source::parallel`]'s.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

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
