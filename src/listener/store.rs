//! Durable, append-only storage of records in `events.jsonl`, with group
//! commit.
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
//! which the next [`EventStore::open`] cuts off. Reading and following the
//! file (`tail`) is the caller's, guided by [`EventStore::committed`].

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{oneshot, watch};

use super::ingest::Batch;
use crate::fsutil::{create_private_dir_all, open_private_append};

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

/// What [`EventStore::open`] did to a file whose last line was torn by a
/// crash during a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub path: PathBuf,
    /// Bytes removed from the end: the partial line after the last `\n`.
    /// They were never acknowledged, so Konnect redelivers them.
    pub removed_bytes: u64,
    /// Size of the file after the repair.
    pub kept_bytes: u64,
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
    /// Size of the file up to the last durable record.
    pub committed_bytes: u64,
}

/// Request buffers kept for reuse, at most this many...
const POOL_BUFFERS: usize = 64;
/// ...of at most this capacity (a usual batch of 50 records is 40-50 KB);
/// so at most 8 MiB stay allocated after a burst.
const POOL_BUFFER_MAX: usize = 128 * 1024;

/// Handle to the store; clones share the syncer thread, which stops after
/// [`close`](EventStore::close) or when the last clone is dropped, once
/// whatever was written is synced.
#[derive(Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    committed: watch::Receiver<u64>,
    path: PathBuf,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// State shared by the handles and the syncer.
///
/// Lock order: `file_lock` before `disk`; `pool` is never held with either.
struct Shared {
    /// Batches written, not yet synced.
    disk: Mutex<Disk>,
    written: Condvar,
    /// Held while the file's content changes (a write or a rollback), so a
    /// rollback never runs under a write in progress.
    file_lock: Mutex<()>,
    file: File,
    path: PathBuf,
    records: AtomicU64,
    requests: AtomicU64,
    commits: AtomicU64,
    last_event: Mutex<Option<SystemTime>>,
    /// Buffers of batches already written, for the next requests' bodies:
    /// with a fresh allocation per request, faulting in and zeroing its
    /// pages cost more than inflating into them (measured with perf at 64
    /// senders).
    pool: Mutex<Vec<Vec<u8>>>,
}

struct Disk {
    /// Written, awaiting the next sync, in file order.
    written: Vec<Pending>,
    /// End of the last whole batch written: `committed` plus `written`.
    end: u64,
    /// End of the last durable batch.
    committed: u64,
    /// The file may hold bytes past `end` (a failed write whose rollback
    /// failed too); they are cut before the next write.
    dirty: bool,
    /// No more writes: the syncer syncs what is left and stops.
    closed: bool,
}

struct Pending {
    batch: Batch,
    done: oneshot::Sender<Result<(), StoreError>>,
}

impl EventStore {
    /// Opens (creating if needed) the events file at `path`, repairs a torn
    /// final line and starts the syncer thread.
    ///
    /// The parent directory is created 0700 and the file 0600 (an existing
    /// file more open than that is tightened). The directory is synced so a
    /// newly created file survives a crash along with its first records.
    pub fn open(path: &Path) -> io::Result<(EventStore, Option<Repair>)> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        create_private_dir_all(dir)?;
        let file = open_private_append(path)?;
        let meta = file.metadata()?;
        if meta.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        File::open(dir)?.sync_all()?;
        let repair = repair_torn_tail(&file, path)?;
        let committed = file.metadata()?.len();
        EventStore::start(file, path.to_owned(), committed).map(|store| (store, repair))
    }

    /// Starts the syncer on `file`, opened for appending, whose durable
    /// content ends at `committed`.
    pub(super) fn start(file: File, path: PathBuf, committed: u64) -> io::Result<EventStore> {
        let shared = Arc::new(Shared {
            disk: Mutex::new(Disk {
                written: Vec::new(),
                end: committed,
                committed,
                dirty: false,
                closed: false,
            }),
            written: Condvar::new(),
            file_lock: Mutex::new(()),
            file,
            path: path.clone(),
            records: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            last_event: Mutex::new(None),
            pool: Mutex::new(Vec::new()),
        });
        let (tx, rx) = watch::channel(committed);
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
                path,
                threads: Mutex::new(vec![syncer]),
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
        self.inner.shared.write(Pending { batch, done })?;
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

    /// The file size up to the last durable record, updated after each
    /// sync. Everything before it is whole lines that were acknowledged.
    /// The sender closes when the store stops.
    pub fn committed(&self) -> watch::Receiver<u64> {
        self.inner.committed.clone()
    }

    pub fn stats(&self) -> StoreStats {
        let shared = &self.inner.shared;
        StoreStats {
            records: shared.records.load(Ordering::Relaxed),
            requests: shared.requests.load(Ordering::Relaxed),
            commits: shared.commits.load(Ordering::Relaxed),
            last_event: *lock(&shared.last_event),
            committed_bytes: *self.inner.committed.borrow(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stops accepting batches, syncs what is written, and waits for the
    /// syncer to finish. Appends after this fail with
    /// [`StoreError::Closed`]. Blocks for at most one write and two syncs.
    pub fn close(&self) {
        self.inner.close();
    }
}

impl Inner {
    fn close(&self) {
        {
            // Under the file lock: no write is half done when the flag is
            // set, so the syncer sees every batch written before it stops.
            let _file = lock(&self.shared.file_lock);
            lock(&self.shared.disk).closed = true;
        }
        self.shared.written.notify_one();
        for handle in lock(&self.threads).drain(..) {
            // A thread that panicked failed its waiters by dropping them.
            let _ = handle.join();
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
    /// the syncer. If that fails, the file is left as it was and the batch's
    /// waiter is told; if the store is closed, the caller is.
    fn write(&self, mut pending: Pending) -> Result<(), StoreError> {
        let _file = lock(&self.file_lock);
        let end = {
            let mut disk = lock(&self.disk);
            if disk.closed {
                return Err(StoreError::Closed);
            }
            if disk.dirty {
                let end = disk.end;
                if let Err(e) = self.truncate(&mut disk, end) {
                    drop(disk);
                    self.fail([pending], e);
                    return Ok(());
                }
            }
            disk.end
        };
        let bytes = pending.batch.as_bytes();
        let len = bytes.len() as u64;
        if let Err(e) = (&self.file).write_all(bytes) {
            tracing::error!(path = %self.path.display(), error = %e, "write failed; rolling back");
            let mut disk = lock(&self.disk);
            if let Err(rollback) = self.truncate(&mut disk, end) {
                tracing::error!(path = %self.path.display(), error = %rollback, "rollback failed; retrying before the next write");
            }
            drop(disk);
            self.fail([pending], e);
            return Ok(());
        }
        // Written: the syncer needs only the record count from here on.
        self.recycle(pending.batch.take_bytes());
        let mut disk = lock(&self.disk);
        disk.end = end + len;
        disk.written.push(pending);
        self.written.notify_one();
        Ok(())
    }

    /// Cuts the file back to `len`, durably, or marks it dirty.
    fn truncate(&self, disk: &mut Disk, len: u64) -> io::Result<()> {
        disk.dirty = true;
        self.file.set_len(len)?;
        self.file.sync_data()?;
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
    fn run_syncer(&self, tx: watch::Sender<u64>) {
        // For the log line at the end.
        let mut syncing = Duration::ZERO;
        loop {
            let (group, end) = {
                let mut disk = lock(&self.disk);
                while disk.written.is_empty() && !disk.closed {
                    disk = wait(&self.written, disk);
                }
                if disk.written.is_empty() {
                    tracing::debug!(
                        requests = self.requests.load(Ordering::Relaxed),
                        commits = self.commits.load(Ordering::Relaxed),
                        syncing_ms = syncing.as_millis() as u64,
                        "syncer stopped"
                    );
                    return;
                }
                (std::mem::take(&mut disk.written), disk.end)
            };
            let started = Instant::now();
            // Covers every write that returned before the call: all of `group`.
            let synced = self.file.sync_data();
            syncing += started.elapsed();
            match synced {
                Ok(()) => {
                    lock(&self.disk).committed = end;
                    let records: usize = group.iter().map(|p| p.batch.len()).sum();
                    self.records.fetch_add(records as u64, Ordering::Relaxed);
                    self.requests
                        .fetch_add(group.len() as u64, Ordering::Relaxed);
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    *lock(&self.last_event) = Some(SystemTime::now());
                    tx.send_replace(end);
                    for p in group {
                        let _ = p.done.send(Ok(()));
                    }
                }
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "sync failed; rolling back");
                    // After a failed fsync the page cache no longer tells what
                    // is on disk: drop everything not known durable, including
                    // batches written since, and fail their requests too.
                    let _file = lock(&self.file_lock);
                    let mut disk = lock(&self.disk);
                    let committed = disk.committed;
                    disk.end = committed;
                    let later = std::mem::take(&mut disk.written);
                    if let Err(rollback) = self.truncate(&mut disk, committed) {
                        tracing::error!(path = %self.path.display(), error = %rollback, "rollback failed; retrying before the next write");
                    }
                    drop(disk);
                    self.fail(group.into_iter().chain(later), e);
                }
            }
        }
    }

    fn fail(&self, pending: impl IntoIterator<Item = Pending>, e: io::Error) {
        let err = StoreError::Write {
            path: self.path.clone(),
            source: Arc::new(e),
        };
        for p in pending {
            let _ = p.done.send(Err(err.clone()));
        }
    }
}

/// If the file does not end with `\n`, cuts it back to just after the last
/// `\n` (or to empty) and syncs. Such a tail can only come from a write cut
/// short by a crash, and a commit is only acknowledged after its last `\n`
/// is durable, so the bytes removed were never acknowledged.
fn repair_torn_tail(file: &File, path: &Path) -> io::Result<Option<Repair>> {
    const CHUNK: u64 = 64 * 1024;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut end = len;
    let mut buf = vec![0u8; CHUNK.min(len) as usize];
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if end == len && chunk.last() == Some(&b'\n') {
            return Ok(None);
        }
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        end = start;
    };
    file.set_len(keep)?;
    file.sync_all()?;
    Ok(Some(Repair {
        path: path.to_owned(),
        removed_bytes: len - keep,
        kept_bytes: keep,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let (store, repair) = EventStore::open(&path).unwrap();
        assert_eq!(repair, None);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&tmp.path().join("a/b")), 0o700);
        assert_eq!(mode(&path), 0o600);

        let rt = runtime();
        let committed = store.committed();
        rt.block_on(store.append(batch("one\r\n\ntwo"))).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one\ntwo\n");
        assert_eq!(*committed.borrow(), 8);
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
        let (store, repair) = EventStore::open(&path).unwrap();
        assert_eq!(repair, None);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(*store.committed().borrow(), 4);
        runtime().block_on(store.append(batch("new"))).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"old\nnew\n");
    }

    #[test]
    fn torn_tail_is_cut_back_to_the_last_newline() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("events.jsonl");
        fs::write(&path, b"{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        let (store, repair) = EventStore::open(&path).unwrap();
        assert_eq!(
            repair,
            Some(Repair {
                path: path.clone(),
                removed_bytes: 5,
                kept_bytes: 16
            })
        );
        assert_eq!(*store.committed().borrow(), 16);
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
        let (_, repair) = EventStore::open(&path).unwrap();
        assert_eq!(repair.unwrap().removed_bytes, 200_000);
        assert_eq!(fs::read(&path).unwrap(), b"first\n");

        let lone = tmp.path().join("lone.jsonl");
        fs::write(&lone, b"no newline at all").unwrap();
        let (_, repair) = EventStore::open(&lone).unwrap();
        assert_eq!(repair.unwrap().kept_bytes, 0);
        assert_eq!(fs::read(&lone).unwrap(), b"");
    }

    #[test]
    fn concurrent_batches_are_contiguous_and_each_stored_once() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("events.jsonl");
        let (store, _) = EventStore::open(&path).unwrap();
        let rt = runtime();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for t in 0..32 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    for r in 0..20 {
                        let body: String = (0..5).map(|i| format!("t{t} r{r} i{i}\n")).collect();
                        store.append(batch(&body)).await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
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
        assert_eq!(*store.committed().borrow(), 5);
    }

    #[test]
    fn the_store_recovers_when_writes_work_again() {
        use std::os::fd::AsRawFd;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("events.jsonl");
        let (store, _) = EventStore::open(&path).unwrap();
        let rt = runtime();
        rt.block_on(store.append(batch("first"))).unwrap();
        // Swap the store's descriptor for a read-only one on the same file:
        // writes and truncation fail until it is swapped back. (SAFETY of the
        // libc calls: they only duplicate and close descriptors this test
        // owns; the store's File keeps owning `fd` throughout.)
        let fd = store.inner.shared.file.as_raw_fd();
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
        assert_eq!(*store.committed().borrow(), 10);
        assert!(!lock(&store.inner.shared.disk).dirty);
    }

    #[test]
    fn written_batches_give_their_buffers_back_within_bounds() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _) = EventStore::open(&tmp.path().join("events.jsonl")).unwrap();
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
}
