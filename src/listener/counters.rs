//! What the HTTP side of the listener counts while it serves: requests by
//! the status they were answered with, the records and bytes they brought,
//! the records the screen (signature check) set aside, and whether the last
//! attempt to store a batch failed.
//!
//! One set of counters, shared: `server` adds to it, and whoever reports
//! (`listener.json`'s `ingest` object, the admin endpoint's `/metrics` and
//! `/readyz`, the drain log's `ServeReport`) reads a [`IngestCounts`]
//! snapshot of it, so no two reports can disagree. Status codes are a fixed
//! set (those `server` answers with), so the counts stay bounded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Every status `server` answers a request with (hyper's own 431 for an
/// oversized head and 400 for an unparsable one never reach it).
pub const STATUSES: [u16; 7] = [202, 400, 401, 404, 405, 413, 500];

/// The live counters.
#[derive(Debug, Default)]
pub struct IngestCounters {
    by_status: [AtomicU64; STATUSES.len()],
    records: AtomicU64,
    records_set_aside: AtomicU64,
    bytes_raw: AtomicU64,
    bytes_decoded: AtomicU64,
    store_failing: AtomicBool,
}

/// A copy of the counters at one moment: `listener.json`'s `ingest` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestCounts {
    /// Requests answered, by status code (every code in [`STATUSES`]).
    pub requests: BTreeMap<String, u64>,
    /// Records in the decoded bodies of authorised requests, before
    /// duplicates are dropped or records set aside.
    pub records: u64,
    /// Records the signature check set aside (`--verify reject`:
    /// `rejected.jsonl`).
    pub records_set_aside: u64,
    /// Request body bytes as received (gzip'd or plain)...
    pub bytes_raw: u64,
    /// ...and after decoding.
    pub bytes_decoded: u64,
    /// The last attempt to store a batch failed (cleared by the next one
    /// that succeeds).
    pub store_failing: bool,
}

impl IngestCounters {
    /// Counts a request answered with `status` (one of [`STATUSES`]).
    pub fn answered(&self, status: u16) {
        match STATUSES.iter().position(|s| *s == status) {
            Some(i) => {
                self.by_status[i].fetch_add(1, Ordering::Relaxed);
            }
            None => debug_assert!(false, "status {status} is not in STATUSES"),
        }
    }

    /// A body of `raw` bytes that decoded to `decoded` bytes holding
    /// `records` records.
    pub fn received(&self, raw: usize, decoded: usize, records: usize) {
        self.bytes_raw.fetch_add(raw as u64, Ordering::Relaxed);
        self.bytes_decoded
            .fetch_add(decoded as u64, Ordering::Relaxed);
        self.records.fetch_add(records as u64, Ordering::Relaxed);
    }

    /// Records the screen took out of a batch.
    pub fn set_aside(&self, records: usize) {
        if records > 0 {
            self.records_set_aside
                .fetch_add(records as u64, Ordering::Relaxed);
        }
    }

    /// Whether the last attempt to store a batch worked.
    pub fn stored(&self, ok: bool) {
        self.store_failing.store(!ok, Ordering::Relaxed);
    }

    pub fn count(&self, status: u16) -> u64 {
        STATUSES
            .iter()
            .position(|s| *s == status)
            .map_or(0, |i| self.by_status[i].load(Ordering::Relaxed))
    }

    pub fn snapshot(&self) -> IngestCounts {
        IngestCounts {
            requests: STATUSES
                .iter()
                .map(|s| (s.to_string(), self.count(*s)))
                .collect(),
            records: self.records.load(Ordering::Relaxed),
            records_set_aside: self.records_set_aside.load(Ordering::Relaxed),
            bytes_raw: self.bytes_raw.load(Ordering::Relaxed),
            bytes_decoded: self.bytes_decoded.load(Ordering::Relaxed),
            store_failing: self.store_failing.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_has_every_status_and_what_was_counted() {
        let c = IngestCounters::default();
        c.answered(202);
        c.answered(202);
        c.answered(401);
        c.received(100, 400, 3);
        c.set_aside(1);
        c.stored(false);
        let s = c.snapshot();
        assert_eq!(s.requests.len(), STATUSES.len());
        assert_eq!(s.requests["202"], 2);
        assert_eq!(s.requests["401"], 1);
        assert_eq!(s.requests["500"], 0);
        assert_eq!(
            (s.records, s.records_set_aside, s.bytes_raw, s.bytes_decoded),
            (3, 1, 100, 400)
        );
        assert!(s.store_failing);
        c.stored(true);
        assert!(!c.snapshot().store_failing);
    }
}
