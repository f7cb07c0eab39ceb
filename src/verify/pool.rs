//! Under `--verify reject`, the records of concurrent requests checked
//! together.
//!
//! One request carries a few dozen records (Konnect's batches), too few for
//! the batch equation to pay ([`super::batch::TOGETHER_FROM`]): checked
//! alone they cost a single verification each. Here requests hand their
//! records to a few checker threads (one per core) and wait; a thread that
//! comes free takes every part queued meanwhile, up to [`MOST`] records, and
//! checks them as one group. Under load the queue fills while the threads
//! work, so groups grow to hundreds of records and each costs a share of
//! one batch equation; a lone request is taken at once and checked alone,
//! with no wait for company. It is the store's group commit, for
//! signatures.
//!
//! Measured (bench/run.sh, 2 cores, signed gzip batches of 50): at 64
//! senders `reject` went from 0.51x to 0.86x the Go model; at 8 senders
//! (at most 400 records in flight, split between two threads) groups stay
//! under 256 and the ratio stays about 0.5x. Letting only one thread check
//! a small group at a time, so the other waits for 256, made 8 senders
//! worse (0.29x): the waiting thread idles.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;

use super::check::{self, Outcome};
use super::jwks::KeySet;
use crate::store::Batch;
use crate::store::batch::records_of;

/// A thread takes parts until its group holds this many records.
pub const MOST: usize = 1024;
/// A request's records are queued in parts of at most this many, so that
/// one large body is shared by the threads.
pub const PART: usize = 256;

/// The checker threads and their queue; the threads end when it drops.
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    queued: Condvar,
}

#[derive(Default)]
struct State {
    parts: VecDeque<Part>,
    closed: bool,
}

/// The `records` records at bytes `range` of a request's batch, to be
/// checked against `keys`.
struct Part {
    batch: Arc<Batch>,
    range: Range<usize>,
    records: usize,
    keys: Arc<KeySet>,
    answer: oneshot::Sender<Vec<Outcome>>,
}

impl Pool {
    /// Starts `threads` checker threads (at least one).
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            queued: Condvar::new(),
        });
        for n in 0..threads.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("kongctl-reject-{n}"))
                .spawn(move || shared.work())?;
        }
        Ok(Pool { shared })
    }

    /// Checks every record of `batch` against `keys`; gives the batch back
    /// with one outcome per record, in order.
    pub async fn check(&self, batch: Batch, keys: Arc<KeySet>) -> (Batch, Vec<Outcome>) {
        let total = batch.len();
        let batch = Arc::new(batch);
        let mut answers = Vec::with_capacity(total.div_ceil(PART));
        {
            let mut state = self.shared.state.lock().expect("verify pool lock poisoned");
            for (range, records) in batch.record_runs(PART) {
                let (answer, wait) = oneshot::channel();
                state.parts.push_back(Part {
                    batch: batch.clone(),
                    range,
                    records,
                    keys: keys.clone(),
                    answer,
                });
                answers.push(wait);
            }
        }
        self.shared.queued.notify_all();
        let mut outcomes = Vec::with_capacity(total);
        for wait in answers {
            // A thread answers every part it takes; it only ends once the
            // pool is dropped, which waits for no request.
            outcomes.extend(wait.await.expect("a verify thread answers every part"));
        }
        let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
        (batch, outcomes)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .expect("verify pool lock poisoned")
            .closed = true;
        self.shared.queued.notify_all();
    }
}

impl Shared {
    /// A checker thread: takes a group of queued parts, checks it, answers
    /// each part; until the pool is dropped and the queue is empty.
    fn work(&self) {
        while let Some(group) = self.next_group() {
            let keys = group[0].keys.clone();
            let lines: Vec<&[u8]> = group
                .iter()
                .flat_map(|part| records_of(&part.batch.as_bytes()[part.range.clone()]))
                .collect();
            let mut outcomes = check::check_lines(&lines, &keys).into_iter();
            drop(lines);
            for part in group {
                let answer: Vec<Outcome> = outcomes.by_ref().take(part.records).collect();
                // The request may be gone (its connection closed): nothing
                // waits for the answer then.
                let _ = part.answer.send(answer);
            }
        }
    }

    /// Waits for a part, then takes it and those queued behind it with the
    /// same keys, up to [`MOST`] records. `None` once the pool is dropped
    /// and nothing is queued.
    fn next_group(&self) -> Option<Vec<Part>> {
        let mut state = self.state.lock().expect("verify pool lock poisoned");
        loop {
            if let Some(first) = state.parts.pop_front() {
                let mut size = first.records;
                let mut group = vec![first];
                while let Some(next) = state.parts.front() {
                    if size + next.records > MOST || !Arc::ptr_eq(&next.keys, &group[0].keys) {
                        break;
                    }
                    size += next.records;
                    group.extend(state.parts.pop_front());
                }
                return Some(group);
            }
            if state.closed {
                return None;
            }
            state = self.queued.wait(state).expect("verify pool lock poisoned");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::check::tests::{key_pair, signed_json};
    use ring::signature::Ed25519KeyPair;

    /// `n` records signed with `key`, one per line.
    fn signed(key: &Ed25519KeyPair, n: usize) -> Vec<u8> {
        let mut body = Vec::new();
        for i in 0..n {
            let record = format!(r#"{{"event_id":"e{i}","name":"Authz.portals","n":1}}"#);
            body.extend_from_slice(signed_json(key, &record).as_bytes());
            body.push(b'\n');
        }
        body
    }

    /// Many requests at once, some with a forged record: every answer is
    /// the one a check of that request alone gives, in its order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_get_their_own_answers() {
        let (key, jwks) = key_pair(7);
        let keys = Arc::new(KeySet::parse(jwks.as_bytes()).unwrap());
        let pool = Arc::new(Pool::new(2).unwrap());
        let mut tasks = Vec::new();
        for request in 0..40usize {
            let (pool, keys) = (pool.clone(), keys.clone());
            let mut body = signed(&key, 1 + request * 7 % 60);
            if request % 3 == 0 {
                // Forge the first record: its "n" changed after signing.
                let at = body.windows(4).position(|w| w == b"\"n\":").unwrap();
                body[at + 4] = b'2';
            }
            tasks.push(tokio::spawn(async move {
                let batch = Batch::from_decoded(body.clone());
                let lines: Vec<&[u8]> = batch.records().collect();
                let alone = check::check_lines(&lines, &keys);
                let (back, pooled) = pool.check(batch.clone(), keys).await;
                assert_eq!(back, batch);
                assert_eq!(pooled, alone, "request {request}");
                alone
                    .iter()
                    .filter(|o| matches!(o, Outcome::Invalid(_)))
                    .count()
            }));
        }
        let mut forged = 0;
        for task in tasks {
            forged += task.await.unwrap();
        }
        assert_eq!(forged, 14, "one forged record in every third request");
    }

    /// A body larger than a part is split and answered in order.
    #[tokio::test]
    async fn a_large_body_is_answered_in_order() {
        let (key, jwks) = key_pair(9);
        let keys = Arc::new(KeySet::parse(jwks.as_bytes()).unwrap());
        let pool = Pool::new(2).unwrap();
        let mut body = signed(&key, PART * 3 + 5);
        body.extend_from_slice(b"{\"no\":\"sig\"}\n");
        let batch = Batch::from_decoded(body);
        let (_, outcomes) = pool.check(batch, keys).await;
        assert_eq!(outcomes.len(), PART * 3 + 6);
        assert!(
            outcomes[..PART * 3 + 5]
                .iter()
                .all(|o| *o == Outcome::Valid)
        );
        assert_eq!(outcomes[PART * 3 + 5], Outcome::Unsigned);
    }
}
