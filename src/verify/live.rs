//! The listener's verifier (`listen`/`tail --verify warn|reject`): the
//! keys, the counts, and under `reject` the stage between a request's
//! decoded batch and the store. Under `warn` records are checked after
//! they are stored, by `super::checker`, with this verifier's keys and
//! counts.
//!
//! Keys. The JWKS is fetched once at start, before any Konnect change, and
//! saved as `jwks.json` (see `crate::listen`). A record that no key
//! verifies may be signed by a key Konnect has rotated in since: the
//! check that meets it (a request under `reject`, the checker under
//! `warn`) fetches the JWKS again, at most once a minute for the whole
//! listener (the fetch at start aside) (checks failing meanwhile wait for
//! that one fetch and use its keys), with a short deadline ([`REFRESH_DEADLINE`])
//! so that Konnect's delivery does not time out, and checks its failed
//! records again with the new keys.
//!
//! Counts. Every record is counted as valid, invalid, unsigned or
//! unverifiable ([`Counts`], shown in `listener.json` and `ps -o json`),
//! and the first record of each kind is logged (a warning, except for
//! valid ones).
//!
//! `reject`. Invalid and unsigned records are appended to `rejected.jsonl`
//! (0600, fsynced) with the time and the reason, and removed from the
//! batch; the rest is stored as usual and the request still gets its 202,
//! so Konnect does not send the refused records again. cps and pull records
//! are unverifiable and always stored.
//!
//! Cost under `reject`. A request's records are handed to the checker
//! threads of [`super::pool`], one per core, which check the records of
//! the requests queued together in one group (a batch equation against the
//! key that verified last from 256 records on, see `super::batch`; single
//! checks below): under load a record costs a share of a batch equation,
//! and a lone request is checked at once.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::check::{self, Kind, Outcome};
use super::jwks::{JwksError, KeySet};
use super::pool::Pool;
use super::{Counts, Mode};
use crate::konnect::{AuditLogs, KonnectError};
use crate::store::Batch;

/// The JWKS is fetched again at most this often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// How long a check may wait for a JWKS fetched again.
pub const REFRESH_DEADLINE: Duration = Duration::from_secs(3);

/// Why the keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Fetch(#[from] KonnectError),
    #[error("Konnect's JWKS: {0}")]
    Jwks(#[from] JwksError),
}

/// Why a batch could not be screened: `rejected.jsonl` could not be
/// written (the request then fails as a storage failure would).
#[derive(Debug, thiserror::Error)]
#[error("failed to append to {}: {source}", path.display())]
pub struct RejectError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Where the JWKS comes from and is saved.
pub struct KeySource {
    pub audit: AuditLogs,
    /// `jwks.json` in the profile directory.
    pub saved: PathBuf,
}

impl KeySource {
    /// Fetches, parses and saves the JWKS.
    pub async fn fetch(&self, deadline: Option<Instant>) -> Result<KeySet, KeysError> {
        let body = self.audit.jwks(deadline).await?;
        let keys = KeySet::parse(&body)?;
        let saved = self.saved.clone();
        // A failure to save costs only the offline check its default keys.
        let written =
            tokio::task::spawn_blocking(move || crate::fsutil::write_atomic(&saved, &body)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(file = %self.saved.display(), error = %e, "failed to save the JWKS")
            }
            Err(e) => tracing::warn!(error = %e, "failed to save the JWKS"),
        }
        Ok(keys)
    }
}

/// The listener's verifier; shared by every request.
pub struct LiveVerifier {
    mode: Mode,
    keys: RwLock<Arc<KeySet>>,
    source: Option<KeySource>,
    counts: [AtomicU64; 4],
    seen: [AtomicBool; 4],
    /// Held while the JWKS is fetched again.
    refresh: tokio::sync::Mutex<()>,
    /// When the last fetch started, in milliseconds since `epoch` plus one
    /// (0: none yet), readable without the lock.
    last_fetch: AtomicU64,
    epoch: Instant,
    rejected: Arc<RejectedFile>,
    /// The checker threads of [`LiveVerifier::screen`], started at its
    /// first batch (`None` inside when they could not be).
    pool: OnceLock<Option<Pool>>,
}

impl LiveVerifier {
    /// A verifier without keys yet (see [`LiveVerifier::install`]).
    /// `rejected` is the path of `rejected.jsonl`.
    pub fn new(mode: Mode, source: Option<KeySource>, rejected: PathBuf) -> LiveVerifier {
        LiveVerifier {
            mode,
            keys: RwLock::new(Arc::new(KeySet::default())),
            source,
            counts: Default::default(),
            seen: Default::default(),
            refresh: tokio::sync::Mutex::new(()),
            last_fetch: AtomicU64::new(0),
            epoch: Instant::now(),
            rejected: Arc::new(RejectedFile {
                path: rejected,
                file: Mutex::new(None),
            }),
            pool: OnceLock::new(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The keys records are checked against now.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().expect("keys lock poisoned").clone()
    }

    /// Replaces the keys.
    pub fn install(&self, mut keys: KeySet) -> Arc<KeySet> {
        let mut slot = self.keys.write().expect("keys lock poisoned");
        keys.generation = slot.generation + 1;
        let keys = Arc::new(keys);
        *slot = keys.clone();
        keys
    }

    /// The first fetch, at start: retried like every Konnect read, no
    /// deadline. The keys are installed and saved when it succeeds. It does
    /// not count against the once a minute of fetching again: a key
    /// rotated in just after start is fetched at its first record.
    pub async fn fetch_at_start(&self) -> Result<Arc<KeySet>, KeysError> {
        let source = self
            .source
            .as_ref()
            .expect("a verifier that fetches at start has a key source");
        let keys = source.fetch(None).await?;
        Ok(self.install(keys))
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for kind in Kind::ALL {
            counts.add(kind, self.counts[kind as usize].load(Ordering::Relaxed));
        }
        counts
    }

    /// Checks a batch's records, counts them and, under `reject`, sets the
    /// invalid and unsigned ones aside in `rejected.jsonl`; returns what is
    /// to be stored.
    pub async fn screen(&self, batch: Batch) -> Result<Batch, RejectError> {
        if batch.is_empty() {
            return Ok(batch);
        }
        let keys = self.keys();
        let (mut batch, mut outcomes) = self.check(batch, keys.clone()).await;
        if outcomes.iter().any(|o| o.may_need_new_keys())
            && let Some(newer) = self.newer_keys(keys.generation).await
        {
            let mut scratch = Vec::new();
            for (outcome, line) in outcomes.iter_mut().zip(batch.records()) {
                if outcome.may_need_new_keys() {
                    *outcome = check::check_line(line, &newer, &mut scratch);
                }
            }
        }
        self.count(&outcomes);
        if self.mode != Mode::Reject || outcomes.iter().all(|o| o.reason().is_none()) {
            return Ok(batch);
        }
        let received_at = jiff::Timestamp::now()
            .round(jiff::Unit::Millisecond)
            .unwrap_or_else(|_| jiff::Timestamp::now());
        let mut lines = Vec::new();
        for (outcome, record) in outcomes.iter().zip(batch.records()) {
            if let Some(reason) = outcome.reason() {
                let entry = RejectedEntry {
                    received_at: received_at.to_string(),
                    reason,
                    record: String::from_utf8_lossy(record),
                };
                serde_json::to_writer(&mut lines, &entry).expect("a rejected entry serialises");
                lines.push(b'\n');
            }
        }
        RejectedFile::append(&self.rejected, lines).await?;
        let mut index = 0;
        batch.retain(|_| {
            let keep = outcomes[index].reason().is_none();
            index += 1;
            keep
        });
        Ok(batch)
    }

    /// Every record's outcome against `keys`: on the checker threads, or,
    /// if they could not be started, on the blocking pool.
    async fn check(&self, batch: Batch, keys: Arc<KeySet>) -> (Batch, Vec<Outcome>) {
        let pool = self.pool.get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            Pool::new(threads)
                .inspect_err(|e| {
                    tracing::error!(error = %e, "cannot start the signature checker threads; checking each request's records apart");
                })
                .ok()
        });
        if let Some(pool) = pool {
            return pool.check(batch, keys).await;
        }
        tokio::task::spawn_blocking(move || {
            let lines: Vec<&[u8]> = batch.records().collect();
            let outcomes = check::check_lines(&lines, &keys);
            drop(lines);
            (batch, outcomes)
        })
        .await
        .expect("checking signatures does not panic")
    }

    /// Keys newer than generation `seen`: those another request installed
    /// meanwhile, or a fresh fetch if the last one is a minute old. `None`
    /// when there are none, the fetch failed, or there is nowhere to fetch
    /// from.
    pub(crate) async fn newer_keys(&self, seen: u64) -> Option<Arc<KeySet>> {
        let source = self.source.as_ref()?;
        let current = self.keys();
        if current.generation != seen {
            return Some(current);
        }
        if !self.may_fetch() {
            return None;
        }
        let _fetching = self.refresh.lock().await;
        let current = self.keys();
        if current.generation != seen {
            return Some(current);
        }
        if !self.may_fetch() {
            return None;
        }
        self.mark_fetch();
        match source.fetch(Some(Instant::now() + REFRESH_DEADLINE)).await {
            Ok(keys) => {
                let keys = self.install(keys);
                tracing::info!(keys = keys.len(), kids = %keys.kids(), "fetched the JWKS again after a record failed its check");
                Some(keys)
            }
            Err(e) => {
                tracing::warn!(error = %e, "failed to fetch the JWKS again; next try in a minute at the earliest");
                None
            }
        }
    }

    fn may_fetch(&self) -> bool {
        match self.last_fetch.load(Ordering::Relaxed) {
            0 => true,
            at => {
                let since = self.epoch.elapsed().as_millis() as u64 - (at - 1);
                since >= REFRESH_EVERY.as_millis() as u64
            }
        }
    }

    fn mark_fetch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_fetch.store(now + 1, Ordering::Relaxed);
    }

    /// Adds `outcomes` to the counts and logs the first of each kind.
    pub(crate) fn count(&self, outcomes: &[Outcome]) {
        let mut counts = Counts::default();
        let mut first: [Option<Outcome>; 4] = [None; 4];
        for outcome in outcomes {
            let kind = outcome.kind();
            counts.add(kind, 1);
            first[kind as usize].get_or_insert(*outcome);
        }
        for kind in Kind::ALL {
            let n = counts.get(kind);
            if n == 0 {
                continue;
            }
            self.counts[kind as usize].fetch_add(n, Ordering::Relaxed);
            if let Some(outcome) = first[kind as usize]
                && !self.seen[kind as usize].swap(true, Ordering::Relaxed)
            {
                self.log_first(outcome);
            }
        }
    }

    /// The log line for the first record of a kind.
    fn log_first(&self, outcome: Outcome) {
        let what = outcome.detail();
        let action = match (self.mode, outcome.reason()) {
            (Mode::Reject, Some(_)) => "set aside in rejected.jsonl, not stored (--verify reject)",
            (_, Some(_)) => "stored anyway (--verify warn)",
            _ => "stored",
        };
        match outcome.kind() {
            Kind::Valid => tracing::info!("first record with a valid signature: {what}"),
            kind => tracing::warn!(
                kind = kind.as_str(),
                "first {} record: {what}; {action}",
                kind.as_str()
            ),
        }
    }
}

/// One line of `rejected.jsonl`.
#[derive(Serialize)]
struct RejectedEntry<'a> {
    received_at: String,
    reason: &'static str,
    /// The raw line as a JSON string (invalid UTF-8 replaced by U+FFFD).
    record: std::borrow::Cow<'a, str>,
}

/// `rejected.jsonl`: opened (0600) on first use, appended and fsynced.
struct RejectedFile {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl RejectedFile {
    async fn append(file: &Arc<RejectedFile>, lines: Vec<u8>) -> Result<(), RejectError> {
        // A rare path (forged or unsigned deliveries), with an fsync: off
        // the runtime's threads.
        let writer = file.clone();
        tokio::task::spawn_blocking(move || writer.append_sync(&lines))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)))
            .map_err(|source| RejectError {
                path: file.path.clone(),
                source,
            })
    }

    fn append_sync(&self, lines: &[u8]) -> io::Result<()> {
        let mut file = self.file.lock().expect("rejected file lock poisoned");
        if file.is_none() {
            *file = Some(crate::fsutil::open_private_append(&self.path)?);
        }
        let f = file.as_mut().expect("opened above");
        f.write_all(lines)?;
        f.sync_data()
    }
}

impl crate::listener::Screen for LiveVerifier {
    fn screen(
        &self,
        batch: Batch,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<Batch, crate::listener::ScreenError>> + Send + '_>,
    > {
        Box::pin(async move { LiveVerifier::screen(self, batch).await.map_err(Into::into) })
    }
}
