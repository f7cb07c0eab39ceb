//! The writer: durable, append-only storage of records in `events.jsonl`,
//! with group commit, on the ingest path (`crate::listener::server` calls
//! [`EventStore::append`] for each request's batch).
//!
//! A request writes its own [`Batch`] (already laid out as `record\n…`)
//! with one `write`, under a lock, so a request's records are never
//! interleaved with or split by another's, and then awaits a oneshot. One
//! dedicated thread, the syncer, takes everything written so far,
//! `fdatasync`s once and answers every request it covered. While it syncs,
//! requests keep copying their batches into the page cache for the next
//! sync, so under concurrency one sync serves many requests.
//!
//! Writing on the request's own thread (a copy into the page cache, tens of
//! microseconds for a usual batch, like inflating it) saves a hand-over to a
//! writer thread on the path of every request, which on a busy 2-core
//! machine can wait for a time slice (in interleaved runs against a writer
//! thread: 4-28% more records/s at 8 senders; at 64, between -7% and +25%,
//! within the machine's noise).
//!
//! Up to the committed offset the file holds whole, acknowledged lines;
//! past it, at most whole batches written and not yet synced. A failed
//! write is cut back to the end of the last whole batch, and a failed sync
//! to the committed offset (failing every batch written since), before the
//! waiters hear about the failure; if that truncation fails too, it is
//! retried before the next write. A crash can leave unacknowledged batches
//! past the committed offset (Konnect redelivers them: at-least-once) and,
//! if the machine itself went down mid-write, a final line without `\n`,
//! which the next [`EventStore::open`] cuts off.
//!
//! Rotation (`--max-file-size`, `--rotate-every`: [`super::rotate`])
//! happens under the same lock as writes, between two batches, so a batch
//! is never split: the batch that reaches the size limit is written, then
//! the file rotates, and a marker is queued behind the old file's batches.
//! The syncer syncs those batches on the old file, then the directory (so
//! the renames are durable before any record of the new file is
//! acknowledged), then carries on with the new file and hands the closed
//! segment to the maintenance thread ([`super::maintain`]: index, gzip,
//! retention). A crash between any two of these steps leaves every
//! acknowledged record in exactly one file, which [`super::recover`] then
//! sorts out.
//!
//! Readers of the live stream ([`EventStore::subscribe`], `tail`) follow the
//! committed offset of each generation of the active file and are told of
//! each rotation (the old file's final length and the next file), so they
//! see every acknowledged record once, across rotations.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot, watch};

use super::batch::Batch;
use super::durable::{Committed, sync_dir};
use super::maintain::{ClosedSegment, Maintainer, StoreSummary};
use super::policy::StorePolicy;
use super::recover::{self, Recovered};
use super::rotate::{Active, RotatePolicy, Rotated};
use crate::fsutil::{create_private_dir_all, open_private_append};

pub use super::recover::Repair;

/// Why records were not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Writing or syncing failed. The request's records were cut from the
    /// file before this was returned (or, if cutting failed too, will be
    /// before the next write).
    #[error("failed to append to {path}: {source}")]
    Write {
        path: PathBuf,
        source: Arc<io::Error>,
    },
    /// The store was closed before the records could be written.
    #[error("event store is closed")]
    Closed,
}

/// What [`EventStore::open`] repaired before the first append.
#[derive(Debug, Default)]
pub struct Opened {
    /// The active file's torn last line, cut off.
    pub repair: Option<Repair>,
    /// What was finished or undone of an interrupted rotation, compression
    /// or deletion, one line each (`<path>: <what>`).
    pub notes: Vec<String>,
}

/// Counters since the store was opened, for the caller's state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Records durably appended.
    pub records: u64,
    /// Requests (batches with at least one record) durably appended.
    pub requests: u64,
    /// Syncs performed; `requests / commits` is the group-commit factor.
    pub commits: u64,
    /// When the last batch became durable.
    pub last_event: Option<SystemTime>,
    /// Size of the active file up to the last durable record.
    pub committed_bytes: u64,
    /// Rotations done.
    pub rotations: u64,
}

/// A follower's view of the stream of committed records
/// ([`EventStore::subscribe`]).
pub struct Subscription {
    /// The active file when subscribing...
    pub file: Arc<File>,
    pub generation: u64,
    /// ...and its committed length then: follow from here.
    pub start: u64,
    /// How far the active file is durable; the sender closes when the store
    /// stops.
    pub committed: watch::Receiver<Committed>,
    /// One message per rotation, sent before `committed` moves to the next
    /// generation.
    pub rotations: mpsc::UnboundedReceiver<Rotation>,
}

/// The active file of `generation` was closed at `len` bytes (all durable);
/// `next` is the file of `generation + 1`.
pub struct Rotation {
    pub generation: u64,
    pub len: u64,
    pub next: Arc<File>,
}

impl Subscription {
    /// A subscription to a finished file: everything in its first `len`
    /// bytes is committed, and nothing more will come (`tail-file`).
    pub fn finished(file: File, len: u64) -> Subscription {
        let (_, committed) = watch::channel(Committed {
            generation: 0,
            offset: len,
        });
        let (_, rotations) = mpsc::unbounded_channel();
        Subscription {
            file: Arc::new(file),
            generation: 0,
            start: 0,
            committed,
            rotations,
        }
    }
}

/// Request buffers kept for reuse, at most this many...
const POOL_BUFFERS: usize = 64;
/// ...of at most this capacity (a usual batch of 50 records is 40-50 KB);
/// so at most 8 MiB stay allocated after a burst.
const POOL_BUFFER_MAX: usize = 128 * 1024;
/// How often an idle syncer checks `--rotate-every`.
const ROTATE_CHECK: Duration = Duration::from_secs(1);

/// Handle to the store; clones share the syncer thread, which stops after
/// [`close`](EventStore::close) or when the last clone is dropped, once
/// whatever was written is synced.
#[derive(Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    committed: watch::Receiver<Committed>,
    /// The seq the active file of generation 0 takes when rotated.
    first_seq: u64,
    path: PathBuf,
    syncer: Mutex<Option<JoinHandle<()>>>,
}

/// State shared by the handles and the syncer.
///
/// Lock order: `active` before `disk` before `sync`; `pool` is never held
/// with any of them.
struct Shared {
    /// The file being appended to. Held while its content changes (a write
    /// or a rollback) or it rotates, so neither runs under the other.
    active: Mutex<Active>,
    /// Batches written, not yet synced.
    disk: Mutex<Disk>,
    written: Condvar,
    /// The syncer's side: the file it syncs, what of it is durable, and
    /// who follows the stream.
    sync: Mutex<SyncState>,
    path: PathBuf,
    dir: PathBuf,
    rotation: RotatePolicy,
    records: AtomicU64,
    requests: AtomicU64,
    commits: AtomicU64,
    rotations: AtomicU64,
    last_event: Mutex<Option<SystemTime>>,
    /// Buffers of batches already written, for the next requests' bodies:
    /// with a fresh allocation per request, faulting in and zeroing its
    /// pages cost more than inflating into them (measured with perf at 64
    /// senders).
    pool: Mutex<Vec<Vec<u8>>>,
    /// Where closed segments go; `None` when the store does not rotate and
    /// runs no maintenance (tests of the write path).
    maintainer: Option<Maintainer>,
}

struct Disk {
    /// Written, awaiting the next sync, in file order; rotation markers
    /// between the batches of two files.
    queue: Vec<Entry>,
    /// End of the last whole batch written to the active file.
    end: u64,
    /// The active file may hold bytes past `end` (a failed write whose
    /// rollback failed too); they are cut before the next write.
    dirty: bool,
    /// No more writes: the syncer syncs what is left and stops.
    closed: bool,
}

struct SyncState {
    /// The file the syncer is at: the active file, or, while a rotation
    /// marker waits in the queue, the one before it.
    file: Arc<File>,
    generation: u64,
    /// End of its last durable batch.
    committed: u64,
    /// The directory must be synced before the next commit (a rotation
    /// renamed files in it).
    dir_unsynced: bool,
    subscribers: Vec<mpsc::UnboundedSender<Rotation>>,
}

enum Entry {
    Batch(Pending),
    Rotated(Box<Rotated>),
}

struct Pending {
    batch: Batch,
    /// End of the batch in its file.
    end: u64,
    done: oneshot::Sender<Result<(), StoreError>>,
}

impl EventStore {
    /// Opens (creating if needed) the events file at `path`: first makes
    /// the store directory whole after an interrupted run
    /// (`crate::store::recover`), repairs a torn final line of the active
    /// file, then starts the syncer and the maintenance thread under
    /// `policy`.
    ///
    /// The parent directory is created 0700 and the file 0600 (an existing
    /// file more open than that is tightened). The directory is synced so a
    /// newly created file survives a crash along with its first records.
    pub fn open(path: &Path, policy: StorePolicy) -> io::Result<(EventStore, Opened)> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        create_private_dir_all(dir)?;
        let recovered = recover::recover(dir)?;
        let file = open_private_append(path)?;
        let meta = file.metadata()?;
        if meta.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        sync_dir(dir)?;
        let repair = recover::repair_torn_tail(&file, path)?;
        let committed = file.metadata()?.len();
        let first_received = recover::first_received_estimate(&file)?;
        let notes = recovered.notes.clone();
        let store = EventStore::build(
            file,
            path.to_owned(),
            committed,
            policy,
            Some((recovered, first_received)),
        )?;
        Ok((store, Opened { repair, notes }))
    }

    /// Starts the syncer on `file`, opened for appending, whose durable
    /// content ends at `committed`, without rotation or maintenance (tests
    /// of the write path).
    #[cfg(test)]
    pub(crate) fn start(file: File, path: PathBuf, committed: u64) -> io::Result<EventStore> {
        EventStore::build(file, path, committed, StorePolicy::keep_one_file(), None)
    }

    fn build(
        file: File,
        path: PathBuf,
        committed: u64,
        policy: StorePolicy,
        maintained: Option<(Recovered, Option<Timestamp>)>,
    ) -> io::Result<EventStore> {
        let file = Arc::new(file);
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        let (next_seq, last_segment, first_received) = match &maintained {
            Some((r, first)) => (
                r.index.next_seq,
                r.last_segment,
                first.map(|t| {
                    // Its age, on the monotonic clock.
                    let age = Timestamp::now()
                        .duration_since(t)
                        .try_into()
                        .unwrap_or(Duration::ZERO);
                    let since = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
                    (t, since)
                }),
            ),
            None => (1, None, None),
        };
        let (tx, rx) = watch::channel(Committed {
            generation: 0,
            offset: committed,
        });
        let maintainer = match maintained {
            Some((recovered, _)) => Some(Maintainer::start(
                dir.clone(),
                policy,
                recovered,
                file.clone(),
                rx.clone(),
            )?),
            None => None,
        };
        let shared = Arc::new(Shared {
            active: Mutex::new(Active {
                file: file.clone(),
                first_received: first_received.filter(|_| committed > 0),
                next_seq,
                last_segment,
                retry_at: None,
            }),
            disk: Mutex::new(Disk {
                queue: Vec::new(),
                end: committed,
                dirty: false,
                closed: false,
            }),
            written: Condvar::new(),
            sync: Mutex::new(SyncState {
                file,
                generation: 0,
                committed,
                dir_unsynced: false,
                subscribers: Vec::new(),
            }),
            path: path.clone(),
            dir,
            rotation: RotatePolicy {
                max_file_size: maintainer.as_ref().and(policy.max_file_size),
                every: maintainer.as_ref().and(policy.rotate_every),
            },
            records: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
            last_event: Mutex::new(None),
            pool: Mutex::new(Vec::new()),
            maintainer,
        });
        let syncer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("kongctl-sync".into())
                .spawn(move || shared.run_syncer(tx))?
        };
        Ok(EventStore {
            inner: Arc::new(Inner {
                shared,
                committed: rx,
                first_seq: next_seq,
                path,
                syncer: Mutex::new(Some(syncer)),
            }),
        })
    }

    /// Appends the batch's records and returns once they are on disk
    /// (written and `fdatasync`ed). An empty batch returns at once.
    ///
    /// The write happens before the first await, on the caller's thread
    /// (blocking it for the copy into the page cache, and for another
    /// request's write in progress). If the caller stops awaiting after
    /// that, the batch is still synced: a request that is not answered may
    /// be stored, never the other way round.
    pub async fn append(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (done, rx) = oneshot::channel();
        self.inner.shared.write(batch, done)?;
        rx.await.unwrap_or(Err(StoreError::Closed))
    }

    /// An empty buffer for a request body, with the capacity of an earlier
    /// batch's when one is free.
    pub fn buffer(&self) -> Vec<u8> {
        lock(&self.inner.shared.pool).pop().unwrap_or_default()
    }

    /// Hands a buffer back for reuse (kept only while the pool has room).
    pub fn recycle(&self, buffer: Vec<u8>) {
        self.inner.shared.recycle(buffer);
    }

    /// How far the active file is durable (generation and offset), updated
    /// after each sync. Everything before it is whole lines that were
    /// acknowledged. The sender closes when the store stops.
    pub fn committed(&self) -> watch::Receiver<Committed> {
        self.inner.committed.clone()
    }

    /// The committed end as a [`crate::store::cursor::StoreConsumer`]
    /// follows it: which segment the active file becomes, and how far it
    /// is durable.
    pub fn committed_view(&self) -> crate::store::cursor::CommittedView {
        crate::store::cursor::CommittedView {
            first_seq: self.inner.first_seq,
            committed: self.inner.committed.clone(),
        }
    }

    /// Follows the committed records from now on, across rotations.
    pub fn subscribe(&self) -> Subscription {
        let mut s = lock(&self.inner.shared.sync);
        let (tx, rotations) = mpsc::unbounded_channel();
        s.subscribers.push(tx);
        Subscription {
            file: s.file.clone(),
            generation: s.generation,
            start: s.committed,
            committed: self.inner.committed.clone(),
            rotations,
        }
    }

    pub fn stats(&self) -> StoreStats {
        let shared = &self.inner.shared;
        StoreStats {
            records: shared.records.load(Ordering::Relaxed),
            requests: shared.requests.load(Ordering::Relaxed),
            commits: shared.commits.load(Ordering::Relaxed),
            last_event: *lock(&shared.last_event),
            committed_bytes: self.inner.committed.borrow().offset,
            rotations: shared.rotations.load(Ordering::Relaxed),
        }
    }

    /// Segments, bytes and record times of the whole store, as far as the
    /// maintenance thread has summed them up; `None` without maintenance.
    pub fn summary(&self) -> Option<StoreSummary> {
        self.inner
            .shared
            .maintainer
            .as_ref()
            .map(Maintainer::summary)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stops accepting batches, syncs what is written, and waits for the
    /// syncer to finish, then stops the maintenance thread (a compression
    /// in progress is abandoned, to be redone by the next start). Appends
    /// after this fail with [`StoreError::Closed`]. Blocks for at most one
    /// write and two syncs.
    pub fn close(&self) {
        self.inner.close();
    }
}

impl Inner {
    fn close(&self) {
        {
            // Under the active lock: no write is half done when the flag is
            // set, so the syncer sees every batch written before it stops.
            let _active = lock(&self.shared.active);
            lock(&self.shared.disk).closed = true;
        }
        self.shared.written.notify_one();
        let syncer = lock(&self.syncer).take();
        if let Some(syncer) = syncer {
            // A thread that panicked failed its waiters by dropping them.
            let _ = syncer.join();
        }
        // After the syncer, which may have handed over one last segment.
        if let Some(m) = &self.shared.maintainer {
            m.stop();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

/// Locks, ignoring poison: the data behind these locks stays consistent
/// even if a holder panicked (queues of pending batches, offsets, a
/// timestamp), and a panic is a bug reported elsewhere.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(guard).unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn recycle(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() == 0 || buffer.capacity() > POOL_BUFFER_MAX {
            return;
        }
        buffer.clear();
        let mut pool = lock(&self.pool);
        if pool.len() < POOL_BUFFERS {
            pool.push(buffer);
        }
    }

    /// Appends the batch after the last whole one written and hands it to
    /// the syncer, rotating the active file before it if it is due (size
    /// already reached, or old enough) and after it if it reached the size
    /// limit. If the write fails, the file is left as it was and the
    /// batch's waiter is told; if the store is closed, the caller is.
    fn write(
        &self,
        mut batch: Batch,
        done: oneshot::Sender<Result<(), StoreError>>,
    ) -> Result<(), StoreError> {
        let mut active = lock(&self.active);
        let mut end = {
            let mut disk = lock(&self.disk);
            if disk.closed {
                return Err(StoreError::Closed);
            }
            if disk.dirty {
                let end = disk.end;
                if let Err(e) = self.truncate(&active.file, &mut disk, end) {
                    drop(disk);
                    self.fail([done], e);
                    return Ok(());
                }
            }
            disk.end
        };
        if self.rotation.due(&active, end) {
            self.rotate(&mut active);
            end = lock(&self.disk).end;
        }
        let bytes = batch.as_bytes();
        let len = bytes.len() as u64;
        if let Err(e) = (&*active.file).write_all(bytes) {
            tracing::error!(path = %self.path.display(), error = %e, "write failed; rolling back");
            let mut disk = lock(&self.disk);
            if let Err(rollback) = self.truncate(&active.file, &mut disk, end) {
                tracing::error!(path = %self.path.display(), error = %rollback, "rollback failed; retrying before the next write");
            }
            drop(disk);
            self.fail([done], e);
            return Ok(());
        }
        active.received();
        // Written: the syncer needs only the record count from here on.
        self.recycle(batch.take_bytes());
        let end = end + len;
        {
            let mut disk = lock(&self.disk);
            disk.end = end;
            disk.queue.push(Entry::Batch(Pending { batch, end, done }));
        }
        self.written.notify_one();
        if self.rotation.full(end) {
            self.rotate(&mut active);
        }
        Ok(())
    }

    /// `--rotate-every` when no batch comes to check it: rotates if due.
    fn rotate_if_due(&self) {
        let mut active = lock(&self.active);
        if self.rotation.due(&active, lock(&self.disk).end) {
            self.rotate(&mut active);
        }
    }

    /// Closes the active file as a segment and starts a new one
    /// (`super::rotate`), queueing the rotation behind the old file's
    /// batches. On failure the active file stays.
    fn rotate(&self, active: &mut Active) {
        {
            let disk = lock(&self.disk);
            if disk.closed || disk.dirty || disk.end == 0 {
                return;
            }
        }
        let Some(rotated) = active.rotate(&self.dir, &self.path) else {
            return;
        };
        {
            let mut disk = lock(&self.disk);
            disk.end = 0;
            disk.queue.push(Entry::Rotated(Box::new(rotated)));
        }
        self.written.notify_one();
    }

    /// Cuts `file` (the active file) back to `len`, durably, or marks it
    /// dirty.
    fn truncate(&self, file: &File, disk: &mut Disk, len: u64) -> io::Result<()> {
        disk.dirty = true;
        file.set_len(len)?;
        file.sync_data()?;
        disk.dirty = false;
        Ok(())
    }

    /// Syncs what requests wrote, as soon as the previous sync is done,
    /// then answers the requests it covered.
    ///
    /// It does not wait for more batches before syncing: under load, the
    /// batches written while one sync runs make the next group by
    /// themselves, and waiting only idles the senders of the batches
    /// already written. (An earlier version waited up to two syncs'
    /// duration for as many batches as the last sync covered: fewer, larger
    /// syncs, but in 3 interleaved rounds of gzip batches the median was 17%
    /// fewer records/s at 8 senders and the same at 64.)
    fn run_syncer(&self, tx: watch::Sender<Committed>) {
        let mut syncing = Duration::ZERO;
        loop {
            let entries = {
                let mut disk = lock(&self.disk);
                loop {
                    if !disk.queue.is_empty() {
                        break std::mem::take(&mut disk.queue);
                    }
                    if disk.closed {
                        tracing::debug!(
                            requests = self.requests.load(Ordering::Relaxed),
                            commits = self.commits.load(Ordering::Relaxed),
                            syncing_ms = syncing.as_millis() as u64,
                            "syncer stopped"
                        );
                        return;
                    }
                    if self.rotation.every.is_none() {
                        disk = wait(&self.written, disk);
                        continue;
                    }
                    let (d, timeout) = self
                        .written
                        .wait_timeout(disk, ROTATE_CHECK)
                        .unwrap_or_else(|e| e.into_inner());
                    disk = d;
                    if timeout.timed_out() && disk.queue.is_empty() && !disk.closed {
                        // Idle: nobody writes to check `--rotate-every`.
                        drop(disk);
                        self.rotate_if_due();
                        disk = lock(&self.disk);
                    }
                }
            };
            self.sync_entries(entries, &tx, &mut syncing);
        }
    }

    /// Commits the batches in `entries`, file by file, and passes each
    /// rotation on.
    fn sync_entries(
        &self,
        entries: Vec<Entry>,
        tx: &watch::Sender<Committed>,
        syncing: &mut Duration,
    ) {
        let mut run = Vec::new();
        let mut rest = entries.into_iter();
        while let Some(entry) = rest.next() {
            match entry {
                Entry::Batch(p) => run.push(p),
                Entry::Rotated(r) => {
                    if let Err(e) = self.commit(&mut run, tx, syncing) {
                        let after: Vec<Entry> =
                            std::iter::once(Entry::Rotated(r)).chain(rest).collect();
                        return self.roll_back(run, after, e, tx);
                    }
                    self.finish_rotation(*r, tx);
                }
            }
        }
        if let Err(e) = self.commit(&mut run, tx, syncing) {
            self.roll_back(run, Vec::new(), e, tx);
        }
    }

    /// Syncs the syncer's file (after the directory, if a rotation renamed
    /// files) and answers `run`'s requests. On failure `run` is left for
    /// [`Shared::roll_back`].
    fn commit(
        &self,
        run: &mut Vec<Pending>,
        tx: &watch::Sender<Committed>,
        syncing: &mut Duration,
    ) -> io::Result<()> {
        let Some(end) = run.last().map(|p| p.end) else {
            return Ok(());
        };
        let (file, dir_unsynced) = {
            let s = lock(&self.sync);
            (s.file.clone(), s.dir_unsynced)
        };
        let started = Instant::now();
        if dir_unsynced {
            sync_dir(&self.dir)?;
            lock(&self.sync).dir_unsynced = false;
        }
        // Covers every write that returned before the call: all of `run`.
        let synced = file.sync_data();
        *syncing += started.elapsed();
        synced?;
        {
            let mut s = lock(&self.sync);
            s.committed = end;
            tx.send_replace(Committed {
                generation: s.generation,
                offset: end,
            });
        }
        let records: usize = run.iter().map(|p| p.batch.len()).sum();
        self.records.fetch_add(records as u64, Ordering::Relaxed);
        self.requests.fetch_add(run.len() as u64, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_event) = Some(SystemTime::now());
        for p in run.drain(..) {
            let _ = p.done.send(Ok(()));
        }
        Ok(())
    }

    /// Moves the syncer to the next active file: tells the followers and
    /// hands the closed one, durable up to its committed length, to the
    /// maintenance thread.
    fn finish_rotation(&self, r: Rotated, tx: &watch::Sender<Committed>) {
        let closed = {
            let mut s = lock(&self.sync);
            let len = s.committed;
            let generation = s.generation;
            s.subscribers.retain(|sub| {
                sub.send(Rotation {
                    generation,
                    len,
                    next: r.next.clone(),
                })
                .is_ok()
            });
            let old = std::mem::replace(&mut s.file, r.next.clone());
            s.generation += 1;
            s.committed = 0;
            s.dir_unsynced = true;
            tx.send_replace(Committed {
                generation: s.generation,
                offset: 0,
            });
            ClosedSegment {
                name: r.name,
                first_received_at: r.first_received_at,
                generation,
                file: old,
                len,
                next: r.next,
            }
        };
        self.rotations.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.maintainer {
            m.closed(closed);
        }
    }

    /// After a failed sync: cuts every file back to what is durable (the
    /// page cache no longer tells what is on disk), fails `failed`, every
    /// batch in `after` and every batch written since, and passes the
    /// rotations among them on, so that the syncer ends at the active file.
    fn roll_back(
        &self,
        failed: Vec<Pending>,
        after: Vec<Entry>,
        e: io::Error,
        tx: &watch::Sender<Committed>,
    ) {
        tracing::error!(path = %self.path.display(), error = %e, "sync failed; rolling back");
        let mut active = lock(&self.active);
        let mut disk = lock(&self.disk);
        let later = std::mem::take(&mut disk.queue);
        let mut lost: Vec<_> = failed.into_iter().map(|p| p.done).collect();
        for entry in after.into_iter().chain(later) {
            match entry {
                Entry::Batch(p) => lost.push(p.done),
                Entry::Rotated(r) => {
                    // The file closing is not the active one: cut it here.
                    let (file, len) = {
                        let s = lock(&self.sync);
                        (s.file.clone(), s.committed)
                    };
                    if let Err(cut) = file.set_len(len).and_then(|()| file.sync_data()) {
                        tracing::error!(error = %cut, "could not cut a closed segment back to its durable records");
                    }
                    self.finish_rotation(*r, tx);
                }
            }
        }
        // Every rotation passed on: the syncer is at the active file.
        let committed = lock(&self.sync).committed;
        disk.end = committed;
        if let Err(rollback) = self.truncate(&active.file, &mut disk, committed) {
            tracing::error!(path = %self.path.display(), error = %rollback, "rollback failed; retrying before the next write");
        }
        if committed == 0 {
            active.first_received = None;
        }
        drop(disk);
        drop(active);
        self.fail(lost, e);
    }

    fn fail(
        &self,
        lost: impl IntoIterator<Item = oneshot::Sender<Result<(), StoreError>>>,
        e: io::Error,
    ) {
        let err = StoreError::Write {
            path: self.path.clone(),
            source: Arc::new(e),
        };
        for done in lost {
            let _ = done.send(Err(err.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::layout::Form;
    use std::fs;
    use std::os::unix::fs::OpenOptionsExt;

    fn batch(text: &str) -> Batch {
        Batch::from_decoded(text.as_bytes().to_vec())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn creates_private_dir_and_file_and_appends_whole_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a/b/events.jsonl");
        let (store, opened) = EventStore::open(&path, StorePolicy::keep_one_file()).unwrap();
        assert_eq!(opened.repair, None);
        assert!(opened.notes.is_empty());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&tmp.path().join("a/b")), 0o700);
        assert_eq!(mode(&path), 0o600);

        let rt = runtime();
        let committed = store.committed();
        rt.block_on(store.append(batch("one\r\n\ntwo"))).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one\ntwo\n");
        assert_eq!(committed.borrow().offset, 8);
        rt.block_on(store.append(batch(" \n"))).unwrap();
        rt.block_on(store.append(batch("three\n"))).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one\ntwo\nthree\n");
        let stats = store.stats();
        assert_eq!(
            (stats.records, stats.requests, stats.committed_bytes),
            (3, 2, 14)
        );
        assert!(stats.last_event.is_some());
        store.close();
        assert_eq!(
            rt.block_on(store.append(batch("late")))
                .unwrap_err()
                .to_string(),
            "event store is closed"
        );
        assert_eq!(fs::read(&path).unwrap(), b"one\ntwo\nthree\n");
    }

    #[test]
    fn reopening_appends_after_existing_records_and_tightens_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("events.jsonl");
        fs::write(&path, b"old\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let (store, opened) = EventStore::open(&path, StorePolicy::keep_one_file()).unwrap();
        assert_eq!(opened.repair, None);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(store.committed().borrow().offset, 4);
        runtime().block_on(store.append(batch("new"))).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"old\nnew\n");
    }

    #[test]
    fn torn_tail_is_cut_back_to_the_last_newline() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("events.jsonl");
        fs::write(&path, b"{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        let (store, opened) = EventStore::open(&path, StorePolicy::keep_one_file()).unwrap();
        assert_eq!(
            opened.repair,
            Some(Repair {
                path: path.clone(),
                removed_bytes: 5,
                kept_bytes: 16
            })
        );
        assert_eq!(store.committed().borrow().offset, 16);
        runtime()
            .block_on(store.append(batch("{\"d\":4}")))
            .unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            b"{\"a\":1}\n{\"b\":2}\n{\"d\":4}\n"
        );
    }

    #[test]
    fn torn_tail_longer_than_a_chunk_and_without_any_newline() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("events.jsonl");
        let mut content = b"first\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', 200_000));
        fs::write(&path, &content).unwrap();
        let (_, opened) = EventStore::open(&path, StorePolicy::keep_one_file()).unwrap();
        assert_eq!(opened.repair.unwrap().removed_bytes, 200_000);
        assert_eq!(fs::read(&path).unwrap(), b"first\n");

        let lone = tmp.path().join("lone/events.jsonl");
        fs::create_dir(tmp.path().join("lone")).unwrap();
        fs::write(&lone, b"no newline at all").unwrap();
        let (_, opened) = EventStore::open(&lone, StorePolicy::keep_one_file()).unwrap();
        assert_eq!(opened.repair.unwrap().kept_bytes, 0);
        assert_eq!(fs::read(&lone).unwrap(), b"");
    }

    /// `tasks` tasks each append 20 batches of 5 records `t<task> r<batch>
    /// i<record>` at once.
    fn append_concurrently(store: &EventStore, tasks: u32) {
        runtime().block_on(async {
            let mut handles = Vec::new();
            for t in 0..tasks {
                let store = store.clone();
                handles.push(tokio::spawn(async move {
                    for r in 0..20 {
                        let body: String = (0..5).map(|i| format!("t{t} r{r} i{i}\n")).collect();
                        store.append(batch(&body)).await.unwrap();
                    }
                }));
            }
            for h in handles {
                h.await.unwrap();
            }
        });
    }

    #[test]
    fn concurrent_batches_are_contiguous_and_each_stored_once() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("events.jsonl");
        let (store, _) = EventStore::open(&path, StorePolicy::keep_one_file()).unwrap();
        append_concurrently(&store, 32);
        let content = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = content.lines().collect();
        assert_eq!(lines.len(), 32 * 20 * 5);
        for group in lines.chunks(5) {
            let prefix = group[0].rsplit_once(' ').unwrap().0;
            for (i, line) in group.iter().enumerate() {
                assert_eq!(*line, format!("{prefix} i{i}"));
            }
        }
        let mut sorted = lines.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), lines.len());
        let stats = store.stats();
        assert_eq!(stats.requests, 640);
        assert!(stats.commits <= stats.requests);
    }

    #[test]
    fn a_failed_write_fails_the_waiters_and_stores_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("events.jsonl");
        fs::write(&path, b"kept\n").unwrap();
        // A read-only descriptor: every write fails with EBADF.
        let file = fs::OpenOptions::new()
            .read(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        let store = EventStore::start(file, path.clone(), 5).unwrap();
        let err = runtime().block_on(store.append(batch("lost"))).unwrap_err();
        assert!(matches!(err, StoreError::Write { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"kept\n");
        assert_eq!(store.stats().records, 0);
        assert_eq!(store.committed().borrow().offset, 5);
    }

    #[test]
    fn the_store_recovers_when_writes_work_again() {
        use std::os::fd::AsRawFd;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("events.jsonl");
        let (store, _) = EventStore::open(&path, StorePolicy::keep_one_file()).unwrap();
        let rt = runtime();
        rt.block_on(store.append(batch("first"))).unwrap();
        // Swap the store's descriptor for a read-only one on the same file:
        // writes and truncation fail until it is swapped back. (SAFETY of the
        // libc calls: they only duplicate and close descriptors this test
        // owns; the store's File keeps owning `fd` throughout.)
        let fd = lock(&store.inner.shared.active).file.as_raw_fd();
        let saved = unsafe { libc::dup(fd) };
        let read_only = fs::File::open(&path).unwrap();
        assert_eq!(unsafe { libc::dup2(read_only.as_raw_fd(), fd) }, fd);
        let err = rt.block_on(store.append(batch("lost"))).unwrap_err();
        assert!(matches!(err, StoreError::Write { .. }), "{err}");
        assert!(lock(&store.inner.shared.disk).dirty);
        assert_eq!(unsafe { libc::dup2(saved, fd) }, fd);
        unsafe { libc::close(saved) };
        rt.block_on(store.append(batch("third"))).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first\nthird\n");
        let stats = store.stats();
        assert_eq!((stats.requests, stats.records), (2, 2));
    }

    #[test]
    fn leftovers_past_the_written_end_are_cut_before_the_next_write() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("events.jsonl");
        fs::write(&path, b"kept\n").unwrap();
        let file = open_private_append(&path).unwrap();
        // What a write cut short by ENOSPC leaves when its rollback failed too.
        (&file).write_all(b"half a rec").unwrap();
        let store = EventStore::start(file, path.clone(), 5).unwrap();
        lock(&store.inner.shared.disk).dirty = true;
        runtime().block_on(store.append(batch("next"))).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"kept\nnext\n");
        assert_eq!(store.committed().borrow().offset, 10);
        assert!(!lock(&store.inner.shared.disk).dirty);
    }

    #[test]
    fn written_batches_give_their_buffers_back_within_bounds() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _) = EventStore::open(
            &tmp.path().join("events.jsonl"),
            StorePolicy::keep_one_file(),
        )
        .unwrap();
        assert_eq!(store.buffer().capacity(), 0);
        let mut body = Vec::with_capacity(1000);
        body.extend_from_slice(b"one\ntwo\n");
        runtime()
            .block_on(store.append(Batch::from_decoded(body)))
            .unwrap();
        let reused = store.buffer();
        assert!(reused.is_empty() && reused.capacity() >= 1000);
        assert_eq!(store.buffer().capacity(), 0);
        // Too large to keep.
        store.recycle(Vec::with_capacity(POOL_BUFFER_MAX + 1));
        for _ in 0..POOL_BUFFERS + 5 {
            store.recycle(Vec::with_capacity(10));
        }
        assert_eq!(lock(&store.inner.shared.pool).len(), POOL_BUFFERS);
        assert!(store.buffer().capacity() <= POOL_BUFFER_MAX);
    }

    /// Every record of the store in `dir`, segments (in seq order, read
    /// as readers read them) then the active file.
    fn stored_lines(dir: &Path) -> Vec<String> {
        use crate::store::snapshot::{Opened, Snapshot};
        use std::io::Read;
        let snapshot = Snapshot::take(dir).unwrap();
        let mut text = String::new();
        for segment in &snapshot.segments {
            let Opened::File { file, form, .. } = snapshot.open(segment).unwrap() else {
                panic!("segment {} gone", segment.seq());
            };
            match form {
                Form::Plain => io::BufReader::new(file).read_to_string(&mut text),
                Form::Gzip => flate2::read::MultiGzDecoder::new(io::BufReader::new(file))
                    .read_to_string(&mut text),
            }
            .unwrap();
        }
        text.push_str(&fs::read_to_string(dir.join("events.jsonl")).unwrap());
        text.lines().map(str::to_owned).collect()
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn index(dir: &Path) -> crate::store::Index {
        crate::store::Index::read(dir).unwrap().unwrap_or_default()
    }

    #[test]
    fn the_batch_that_reaches_the_size_limit_is_written_then_the_file_rotates() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        let path = dir.join("events.jsonl");
        let policy = StorePolicy {
            max_file_size: Some(10),
            ..StorePolicy::keep_one_file()
        };
        let (store, _) = EventStore::open(&path, policy).unwrap();
        let rt = runtime();
        // 6 bytes: under the limit. Then 8 more: crosses it, so the file
        // holds both batches (14 bytes) and rotates.
        rt.block_on(store.append(batch("{\"a\":1}"))).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"a\":1}\n");
        rt.block_on(store.append(batch("{\"b\":2}\n{}"))).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"", "a new active file");
        rt.block_on(store.append(batch("{\"c\":3}"))).unwrap();
        assert_eq!(store.stats().rotations, 1);
        assert_eq!(store.committed().borrow().generation, 1);
        wait_until("the segment compressed and indexed", || {
            index(&dir).segments.first().is_some_and(|s| {
                s.file.ends_with(".jsonl.gz") && !dir.join(&s.file[..s.file.len() - 3]).exists()
            })
        });
        let idx = index(&dir);
        assert_eq!(idx.next_seq, 2);
        let s = &idx.segments[0];
        assert!(s.file.starts_with("events-") && s.file.ends_with("-000001.jsonl.gz"));
        assert_eq!(s.records, 3);
        assert_eq!((s.oldest_event_at, s.newest_event_at), (None, None));
        assert_eq!(s.bytes, fs::metadata(dir.join(&s.file)).unwrap().len());
        assert_eq!(
            stored_lines(&dir),
            ["{\"a\":1}", "{\"b\":2}", "{}", "{\"c\":3}"]
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join(&s.file)), 0o600);
        assert_eq!(mode(&path), 0o600);
        // Published once the plain copy is gone.
        wait_until("the summary", || {
            let summary = store.summary().unwrap();
            summary.segments == 1 && summary.bytes == s.bytes + 8
        });
        // Nothing else in the directory: no temporary file left.
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [s.file.as_str(), "events.jsonl", "segments.json"]);
    }

    #[test]
    fn concurrent_batches_across_many_rotations_are_each_stored_once_and_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        let policy = StorePolicy {
            max_file_size: Some(300),
            ..StorePolicy::keep_one_file()
        };
        let (store, _) = EventStore::open(&dir.join("events.jsonl"), policy).unwrap();
        let mut follower = store.subscribe();
        assert_eq!((follower.generation, follower.start), (0, 0));
        append_concurrently(&store, 16);
        let rotations = store.stats().rotations;
        assert!(rotations > 20, "{rotations}");
        let lines = stored_lines(&dir);
        assert_eq!(lines.len(), 16 * 20 * 5);
        for group in lines.chunks(5) {
            let prefix = group[0].rsplit_once(' ').unwrap().0;
            for (i, line) in group.iter().enumerate() {
                assert_eq!(
                    *line,
                    format!("{prefix} i{i}"),
                    "a batch split or interleaved"
                );
            }
        }
        let mut sorted = lines.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), lines.len());

        // The follower is told of every rotation, in order, with the closed
        // file's final length, before the committed offset moves on.
        let mut generation = 0;
        let mut followed = 0u64;
        while let Ok(r) = follower.rotations.try_recv() {
            assert_eq!(r.generation, generation);
            assert!(r.len >= 300, "rotated at {} bytes", r.len);
            followed += r.len;
            generation += 1;
        }
        assert_eq!(generation, rotations);
        let committed = *follower.committed.borrow();
        assert_eq!(committed.generation, rotations);
        let total: usize = lines.iter().map(|l| l.len() + 1).sum();
        assert_eq!(followed + committed.offset, total as u64);
    }

    #[test]
    fn an_idle_active_file_rotates_once_its_first_record_is_old_enough() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        let policy = StorePolicy {
            max_file_size: None,
            rotate_every: Some(Duration::from_secs(1)),
            ..StorePolicy::keep_one_file()
        };
        let (store, _) = EventStore::open(&dir.join("events.jsonl"), policy).unwrap();
        let started = Instant::now();
        runtime()
            .block_on(store.append(batch("{\"a\":1}")))
            .unwrap();
        // No further batch: the syncer's own check rotates it.
        wait_until("a time rotation", || store.stats().rotations == 1);
        assert!(started.elapsed() >= Duration::from_secs(1));
        // An empty active file does not rotate.
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(store.stats().rotations, 1);
        assert_eq!(stored_lines(&dir), ["{\"a\":1}"]);
    }

    #[test]
    fn retention_by_size_deletes_the_oldest_compressed_segments() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        let policy = StorePolicy {
            max_file_size: Some(1),
            retain_size: Some(1),
            ..StorePolicy::keep_one_file()
        };
        let (store, _) = EventStore::open(&dir.join("events.jsonl"), policy).unwrap();
        let rt = runtime();
        for i in 0..3 {
            rt.block_on(store.append(batch(&format!("{{\"n\":{i}}}"))))
                .unwrap();
        }
        // Every segment is larger than 1 byte compressed: all go, the
        // active (empty) file stays.
        wait_until("retention", || {
            let idx = index(&dir);
            idx.next_seq == 4 && idx.segments.is_empty()
        });
        assert_eq!(stored_lines(&dir), Vec::<String>::new());
        wait_until("the summary", || store.summary().unwrap().segments == 0);
    }
}
