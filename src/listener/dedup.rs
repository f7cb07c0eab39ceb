//! The listener's duplicate gate: while Konnect replays a window, a record
//! already stored, or already received since the gate opened, is dropped
//! before it is written, by its [`DedupKey`].
//!
//! The gate is closed most of the time, and a closed gate costs one atomic
//! load per request: records are not even parsed. Gap healing
//! (`crate::replay`) opens it before it reads the store for the keys of the
//! replay window (so nothing received meanwhile slips through), seeds it
//! with those keys, and closes it once its jobs are over; the keys it holds
//! are those of the replay window and of what arrived while it was open,
//! and [`DedupGate::evict_before`] forgets what is older than the window.
//! Once the window is known ([`DedupGate::remember_only`]), records outside
//! it are still checked but no longer remembered: Konnect will not send
//! them again in this replay, so a long wait for the job (another job
//! running) costs no memory for the live records meanwhile.
//!
//! A record's key is taken when it is admitted, after the signature screen
//! (`--verify reject`) kept it and before it is written; if the write
//! fails, the request's keys are given back ([`Admission::revoke`]), so
//! Konnect's retry of the failed batch is stored rather than dropped as a
//! duplicate of itself. Lines that are not audit records have no key and
//! always pass.
//!
//! The key is the record's exact bytes ([`Record::bytes_key`]), not its
//! signature: Konnect's replay of a record is the same bytes (its
//! signature covers them), while a copy that carries a genuine `sig` over
//! changed content is another record. So a tampered copy that arrives
//! first, stored under `--verify warn|off` or set aside under `reject`,
//! never makes the genuine record a duplicate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;

use crate::query::dedup::Dedup;
use crate::record::{DedupKey, Record};
use crate::store::Batch;

/// The gate. Cheap to clone; clones share it. [`Default`] is closed.
#[derive(Clone, Default)]
pub struct DedupGate {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    open: AtomicBool,
    seen: Mutex<Dedup>,
    /// The replay window, once known: only records in it are remembered.
    window: Mutex<Option<(Timestamp, Timestamp)>>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for DedupGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupGate")
            .field("open", &self.is_open())
            .field("keys", &self.keys())
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// The keys one request added to the gate, to give back if its write
/// fails.
#[must_use = "revoke the admission if the batch is not stored"]
pub struct Admission {
    gate: Option<DedupGate>,
    keys: Vec<DedupKey>,
}

impl Admission {
    /// The batch was not stored: its records are unknown again.
    pub fn revoke(self) {
        if let Some(gate) = self.gate
            && !self.keys.is_empty()
        {
            let mut seen = gate.seen();
            for key in &self.keys {
                seen.remove(key);
            }
        }
    }
}

impl DedupGate {
    pub fn new() -> DedupGate {
        DedupGate::default()
    }

    fn seen(&self) -> MutexGuard<'_, Dedup> {
        // A panic while holding the lock leaves a set of keys that is still
        // a set of keys.
        self.inner.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn window(&self) -> MutexGuard<'_, Option<(Timestamp, Timestamp)>> {
        self.inner.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on, every record admitted is remembered and its duplicates
    /// dropped (until [`DedupGate::remember_only`] narrows what is
    /// remembered). The keys already held are kept.
    pub fn open(&self) {
        *self.window() = None;
        self.inner.open.store(true, Ordering::SeqCst);
    }

    /// Lets everything through again and forgets every key.
    pub fn close(&self) {
        self.inner.open.store(false, Ordering::SeqCst);
        *self.window() = None;
        *self.seen() = Dedup::new();
    }

    /// From now on, only records whose own time is in `[start, end]` (the
    /// replay window) are remembered; the others are still dropped if
    /// already known. Records without a time are always remembered.
    pub fn remember_only(&self, start: Timestamp, end: Timestamp) {
        *self.window() = Some((start, end));
    }

    pub fn is_open(&self) -> bool {
        self.inner.open.load(Ordering::SeqCst)
    }

    /// Remembers records already stored (their keys and own times).
    pub fn seed(&self, keys: impl IntoIterator<Item = (DedupKey, Timestamp)>) {
        let mut seen = self.seen();
        for (key, time) in keys {
            seen.insert(key, Some(time));
        }
    }

    /// Forgets keys of records older than `t` (before the replay window:
    /// Konnect will not send them again).
    pub fn evict_before(&self, t: Timestamp) {
        self.seen().evict_before(t);
    }

    /// Keys held.
    pub fn keys(&self) -> usize {
        self.seen().len()
    }

    /// Records dropped as duplicates since the listener started.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Drops from `batch` the records the gate already holds (when open),
    /// remembering nothing: run before the screen, so that replayed copies
    /// are not checked again.
    pub fn drop_known(&self, batch: &mut Batch) {
        if !self.is_open() {
            return;
        }
        let keys: Vec<Option<DedupKey>> = batch
            .records()
            .map(|raw| Record::from_slice(raw).ok().map(|r| r.bytes_key()))
            .collect();
        let keep: Vec<bool> = {
            let seen = self.seen();
            keys.iter()
                .map(|key| key.is_none_or(|k| !seen.contains(&k)))
                .collect()
        };
        self.drop_unkept(batch, keep);
    }

    /// Removes the records whose verdict is false, counting them.
    fn drop_unkept(&self, batch: &mut Batch, keep: Vec<bool>) {
        let dropped = keep.iter().filter(|k| !**k).count();
        if dropped > 0 {
            self.inner
                .dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
            let mut verdicts = keep.into_iter();
            batch.retain(|_| verdicts.next().unwrap_or(true));
            tracing::debug!(dropped, kept = batch.len(), "dropped replayed duplicates");
        }
    }

    /// Drops from `batch` the records the gate has seen (when open) and
    /// remembers the others.
    pub fn admit(&self, batch: &mut Batch) -> Admission {
        if !self.is_open() {
            return Admission {
                gate: None,
                keys: Vec::new(),
            };
        }
        // Parsed outside the lock: requests only contend for the inserts.
        let records: Vec<Option<(DedupKey, Option<Timestamp>)>> = batch
            .records()
            .map(|raw| {
                Record::from_slice(raw)
                    .ok()
                    .map(|r| (r.bytes_key(), r.time()))
            })
            .collect();
        let window = *self.window();
        let remembered = |time: &Option<Timestamp>| match (window, time) {
            (Some((start, end)), Some(t)) => start <= *t && *t <= end,
            _ => true,
        };
        let mut keys = Vec::with_capacity(records.len());
        let mut keep = Vec::with_capacity(records.len());
        {
            let mut seen = self.seen();
            seen.set_fallback_time(Timestamp::now());
            for record in &records {
                keep.push(match record {
                    None => true,
                    Some((key, time)) if !remembered(time) => !seen.contains(key),
                    Some((key, time)) => {
                        let new = seen.insert(*key, *time);
                        if new {
                            keys.push(*key);
                        }
                        new
                    }
                });
            }
        }
        self.drop_unkept(batch, keep);
        Admission {
            gate: Some(self.clone()),
            keys,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sig: &str, ts: &str) -> String {
        format!(
            r#"{{"event_ts":"{ts}","event_class_id":"konnect","name":"Authz.x","sig":"{sig}"}}"#
        )
    }

    fn batch(lines: &[String]) -> Batch {
        let mut body = lines.join("\n");
        body.push('\n');
        Batch::from_decoded(body.into_bytes())
    }

    fn key(raw: &str) -> (DedupKey, Timestamp) {
        let r = Record::from_slice(raw.as_bytes()).unwrap();
        (r.bytes_key(), r.time().unwrap())
    }

    #[test]
    fn a_closed_gate_lets_everything_through() {
        let gate = DedupGate::new();
        let a = line("s1", "2026-08-23T12:00:00Z");
        let mut b = batch(&[a.clone(), a.clone()]);
        let admission = gate.admit(&mut b);
        assert_eq!(b.len(), 2);
        assert!(admission.keys.is_empty());
        assert_eq!(gate.keys(), 0);
    }

    #[test]
    fn an_open_gate_drops_seeded_and_repeated_records() {
        let gate = DedupGate::new();
        let stored = line("s1", "2026-08-23T12:00:00Z");
        let fresh = line("s2", "2026-08-23T12:00:01Z");
        gate.open();
        gate.seed([key(&stored)]);
        let mut b = batch(&[
            stored.clone(),
            fresh.clone(),
            "not a record".into(),
            fresh.clone(),
        ]);
        let _ = gate.admit(&mut b);
        assert_eq!(b.as_bytes(), format!("{fresh}\nnot a record\n").as_bytes());
        assert_eq!(gate.dropped(), 2);
        // The same record again in a later request.
        let mut again = batch(std::slice::from_ref(&fresh));
        let _ = gate.admit(&mut again);
        assert!(again.is_empty());
        gate.close();
        let mut after = batch(&[fresh]);
        let _ = gate.admit(&mut after);
        assert_eq!(after.len(), 1, "closed: no memory left");
    }

    #[test]
    fn a_copy_with_the_same_sig_and_other_bytes_is_not_a_duplicate() {
        let gate = DedupGate::new();
        gate.open();
        let genuine = line("s1", "2026-08-23T12:00:00Z");
        let tampered = genuine.replace("Authz.x", "Authz.y");
        let _ = gate.admit(&mut batch(std::slice::from_ref(&tampered)));
        let mut b = batch(std::slice::from_ref(&genuine));
        gate.drop_known(&mut b);
        assert_eq!(b.len(), 1);
        let _ = gate.admit(&mut b);
        assert_eq!(b.len(), 1);
        // Its own replay is dropped, before and at admission.
        let mut again = batch(std::slice::from_ref(&genuine));
        gate.drop_known(&mut again);
        assert!(again.is_empty());
        assert_eq!(gate.dropped(), 1);
        assert_eq!(gate.keys(), 2);
    }

    #[test]
    fn a_revoked_admission_lets_the_retry_in() {
        let gate = DedupGate::new();
        gate.open();
        let a = line("s1", "2026-08-23T12:00:00Z");
        let mut first = batch(std::slice::from_ref(&a));
        gate.admit(&mut first).revoke();
        let mut retry = batch(std::slice::from_ref(&a));
        let _ = gate.admit(&mut retry);
        assert_eq!(retry.len(), 1);
    }

    #[test]
    fn only_records_in_the_window_are_remembered_once_it_is_known() {
        let gate = DedupGate::new();
        gate.open();
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        gate.remember_only(t("2026-08-23T11:00:00Z"), t("2026-08-23T12:00:00Z"));
        let inside = line("s1", "2026-08-23T12:00:00Z");
        let after = line("s2", "2026-08-23T12:00:01Z");
        let seeded_after = line("s3", "2026-08-23T12:30:00Z");
        gate.seed([key(&seeded_after)]);
        let mut b = batch(&[inside.clone(), after.clone(), seeded_after.clone()]);
        let _ = gate.admit(&mut b);
        assert_eq!(b.len(), 2, "a known record outside the window is dropped");
        assert_eq!(gate.keys(), 2, "the one after the window is not remembered");
        let mut again = batch(&[inside, after]);
        let _ = gate.admit(&mut again);
        assert_eq!(again.len(), 1);
        // A new replay remembers everything until its window is known.
        gate.open();
        let later = line("s4", "2026-08-23T13:00:00Z");
        let _ = gate.admit(&mut batch(std::slice::from_ref(&later)));
        let mut twice = batch(&[later]);
        let _ = gate.admit(&mut twice);
        assert!(twice.is_empty());
    }

    #[test]
    fn eviction_forgets_records_before_the_window() {
        let gate = DedupGate::new();
        gate.open();
        let old = line("s1", "2026-08-23T11:00:00Z");
        let new = line("s2", "2026-08-23T12:00:00Z");
        gate.seed([key(&old), key(&new)]);
        gate.evict_before("2026-08-23T11:30:00Z".parse().unwrap());
        assert_eq!(gate.keys(), 1);
        let mut b = batch(&[old, new]);
        let _ = gate.admit(&mut b);
        assert_eq!(b.len(), 1);
    }
}
