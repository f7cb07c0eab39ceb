//! Which records were already seen, by [`DedupKey`], with memory bounded by
//! time: a follower re-reads an overlap of its previous window, and evicts
//! keys older than that overlap once it is past them ([`Dedup::evict_before`]).
//!
//! Each key remembers the record's own time; a record without one is
//! remembered at the time the caller gives ([`Dedup::set_fallback_time`]:
//! the end of the window that brought it, as upstream kongctl does), so it
//! is evicted too.

use std::collections::HashMap;

use jiff::Timestamp;

use crate::record::DedupKey;

#[derive(Debug, Default)]
pub struct Dedup {
    seen: HashMap<DedupKey, Timestamp>,
    fallback: Option<Timestamp>,
}

impl Dedup {
    pub fn new() -> Dedup {
        Dedup::default()
    }

    /// The time kept for records that have none.
    pub fn set_fallback_time(&mut self, t: Timestamp) {
        self.fallback = Some(t);
    }

    /// Records `key`; false if it was already there.
    pub fn insert(&mut self, key: DedupKey, time: Option<Timestamp>) -> bool {
        let time = time.or(self.fallback).unwrap_or_else(Timestamp::now);
        match self.seen.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(time);
                true
            }
        }
    }

    /// Whether `key` was seen (and not evicted).
    pub fn contains(&self, key: &DedupKey) -> bool {
        self.seen.contains_key(key)
    }

    /// Forgets `key` (a record whose storing failed); true if it was there.
    pub fn remove(&mut self, key: &DedupKey) -> bool {
        self.seen.remove(key).is_some()
    }

    /// Forgets keys whose time is before `t`.
    pub fn evict_before(&mut self, t: Timestamp) {
        self.retain(|time| time >= t);
    }

    /// Keeps only the keys whose time `keep` accepts: a catch-up that pages
    /// through a long window keeps the keys near the page it is on and
    /// those the next poll will see again, not the whole window.
    pub fn retain(&mut self, mut keep: impl FnMut(Timestamp) -> bool) {
        self.seen.retain(|_, time| keep(*time));
        // Give memory back after a large catch-up.
        if self.seen.capacity() > 4 * self.seen.len().max(1024) {
            self.seen.shrink_to_fit();
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn second_insert_of_a_key_is_refused_until_evicted() {
        let mut d = Dedup::new();
        let k = DedupKey(7);
        assert!(d.insert(k, Some(t("2026-01-01T00:00:00Z"))));
        assert!(!d.insert(k, Some(t("2026-01-01T00:05:00Z"))));
        d.evict_before(t("2026-01-01T00:00:00Z"));
        assert!(d.contains(&k), "eviction keeps keys at the boundary");
        d.evict_before(t("2026-01-01T00:00:01Z"));
        assert!(!d.contains(&k));
        assert!(d.insert(k, None));
        assert!(d.remove(&k));
        assert!(!d.remove(&k));
        assert!(d.insert(k, None), "a removed key is new again");
    }

    #[test]
    fn retain_keeps_what_the_predicate_accepts() {
        let mut d = Dedup::new();
        for (k, ts) in [
            (1, "2026-01-01T00:00:00Z"),
            (2, "2026-01-01T00:05:00Z"),
            (3, "2026-01-01T00:10:00Z"),
        ] {
            d.insert(DedupKey(k), Some(t(ts)));
        }
        d.retain(|time| time != t("2026-01-01T00:05:00Z"));
        assert!(d.contains(&DedupKey(1)) && !d.contains(&DedupKey(2)) && d.contains(&DedupKey(3)));
    }

    #[test]
    fn untimed_records_use_the_fallback_time() {
        let mut d = Dedup::new();
        d.set_fallback_time(t("2026-01-01T00:10:00Z"));
        d.insert(DedupKey(1), None);
        d.evict_before(t("2026-01-01T00:09:00Z"));
        assert_eq!(d.len(), 1);
        d.evict_before(t("2026-01-01T00:11:00Z"));
        assert!(d.is_empty());
    }
}
