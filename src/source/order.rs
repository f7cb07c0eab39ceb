//! Putting a source's records in time order before they reach the pipeline,
//! for sources whose order is not time order (an exported file, records
//! stored in receive order).
//!
//! The sort is stable (equal times keep their source order) and records
//! without a time come first, as upstream kongctl sorts them. Under a limit
//! only the records that can still be printed are held: the first N or the
//! last N by time, so memory follows the limit, not the input; without one,
//! every matching record is held until the source ends.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use jiff::Timestamp;

use crate::query::{Limit, Query};
use crate::record::Record;

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

    /// Offers one record; records the query does not match are not kept.
    pub fn push(&mut self, record: Record) {
        if !self.query.matches(&record) {
            return;
        }
        let held = Held {
            time: record.time(),
            seq: self.seq,
            record,
        };
        self.seq += 1;
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
}
