//! The store's background thread: everything about closed segments that
//! must not hold up a request.
//!
//! The writer ([`super::writer`]) rotates the active file and, once
//! every batch of it is durable, hands the closed segment over
//! ([`Maintainer::closed`]). This thread then, in order:
//!
//! 1. sums the segment up ([`super::scan`]: records, oldest and newest
//!    record time) and lists it in `segments.json`;
//! 2. gzips it: `.<name>.gz.tmp` written and fsynced, renamed to
//!    `<name>.gz`, the directory fsynced, the index updated, then the plain
//!    file removed. A crash at any point leaves either the plain file, or
//!    a complete `.gz` (with or without the plain file beside it), which
//!    [`super::recover`] sorts out;
//! 3. applies retention, oldest segment first: `--retain` deletes segments
//!    whose newest record is older than the duration, `--retain-size`
//!    deletes compressed segments while they take more bytes on disk than
//!    the cap (a segment counts once compressed). A deletion removes the
//!    file, syncs the directory, then drops the entry from the index;
//!    readers tolerate a listed segment that is gone.
//!
//! It also scans the active file as records are committed, so that the
//! store's summary (`listener.json`, `ps -o json`) covers its records too,
//! and the scan is already done when the file rotates.
//!
//! The thread runs at the lowest CPU priority: under load, compression
//! falls behind and catches up later rather than slowing ingest (the
//! plain segments wait on disk meanwhile). A stop abandons a compression
//! in progress (its temporary file removed); the next start does it again.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::durable::{Committed, pause_point, sync_dir};
use super::index::{Index, SegmentEntry};
use super::layout::{Form, SegmentName};
use super::policy::StorePolicy;
use super::recover::Recovered;
use super::scan::{LineScanner, Span};

/// How often the active file is scanned and age retention checked.
const TICK: Duration = Duration::from_secs(1);
/// Read size while scanning and compressing.
const CHUNK: usize = 256 * 1024;
/// gzip level of closed segments. Level 6 (zlib's default) packs audit
/// records about 10% smaller than level 1 for twice the CPU; the thread
/// has time, and `--retain-size` counts compressed bytes.
const GZIP_LEVEL: u32 = 6;

/// A segment the writer closed: every byte of it up to `len` is a durable
/// record, and nothing more will be written to it.
pub struct ClosedSegment {
    pub name: SegmentName,
    /// When its first record arrived, to the precision of the clock.
    pub first_received_at: Timestamp,
    /// The generation of the active file it was (see `super::durable::Committed`).
    pub generation: u64,
    /// A read handle on it (valid whatever it is renamed to).
    pub file: Arc<File>,
    pub len: u64,
    /// The active file that follows it.
    pub next: Arc<File>,
}

/// The store as `listener.json` and `ps -o json` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSummary {
    /// Closed segments (the active file not counted).
    pub segments: u64,
    /// Bytes on disk of the closed segments and the active file.
    pub bytes: u64,
    /// The oldest and newest record times in the whole store.
    pub oldest_event_at: Option<Timestamp>,
    pub newest_event_at: Option<Timestamp>,
}

enum Message {
    Closed(ClosedSegment),
    Stop,
}

/// What the thread last published for [`Maintainer::summary`].
#[derive(Debug, Default, Clone, Copy)]
struct Published {
    segments: u64,
    segment_bytes: u64,
    span: Span,
}

/// Handle to the background thread.
pub struct Maintainer {
    tx: mpsc::Sender<Message>,
    stop: Arc<AtomicBool>,
    published: Arc<Mutex<Published>>,
    committed: watch::Receiver<Committed>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Maintainer {
    /// Starts the thread for the store in `dir`, whose active file
    /// (`active`, generation 0) is committed as far as `committed` says.
    pub fn start(
        dir: PathBuf,
        policy: StorePolicy,
        recovered: Recovered,
        active: Arc<File>,
        committed: watch::Receiver<Committed>,
    ) -> io::Result<Maintainer> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let published = Arc::new(Mutex::new(Published::default()));
        let listed: Vec<u64> = recovered
            .index
            .segments
            .iter()
            .filter_map(|e| e.name().map(|(n, _)| n.seq))
            .collect();
        let mut worker = Worker {
            compress: recovered
                .uncompressed
                .iter()
                .filter(|n| listed.contains(&n.seq))
                .map(|&name| Compress { name, source: None })
                .collect(),
            unindexed: recovered.unindexed.into(),
            index: recovered.index,
            dir,
            policy,
            active: ActiveScan::new(0, active),
            committed: committed.clone(),
            stop: stop.clone(),
            published: published.clone(),
            rx,
        };
        worker.publish();
        let thread = std::thread::Builder::new()
            .name("kongctl-store".into())
            .spawn(move || {
                super::lower_thread_priority();
                worker.run();
            })?;
        Ok(Maintainer {
            tx,
            stop,
            published,
            committed,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands over a segment the writer closed.
    pub fn closed(&self, segment: ClosedSegment) {
        // A send fails only once the thread has stopped; the segment stays
        // plain and is indexed and compressed by the next start.
        let _ = self.tx.send(Message::Closed(segment));
    }

    /// The store now: closed segments as far as the thread has processed
    /// them, plus the active file.
    pub fn summary(&self) -> StoreSummary {
        let p = *self.published.lock().unwrap_or_else(|e| e.into_inner());
        StoreSummary {
            segments: p.segments,
            bytes: p.segment_bytes + self.committed.borrow().offset,
            oldest_event_at: p.span.oldest,
            newest_event_at: p.span.newest,
        }
    }

    /// Stops the thread (abandoning a compression in progress) and waits
    /// for it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.tx.send(Message::Stop);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Maintainer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How far the active file has been scanned.
struct ActiveScan {
    generation: u64,
    file: Arc<File>,
    scanned: u64,
    scanner: LineScanner,
}

impl ActiveScan {
    fn new(generation: u64, file: Arc<File>) -> ActiveScan {
        ActiveScan {
            generation,
            file,
            scanned: 0,
            scanner: LineScanner::default(),
        }
    }
}

/// A plain segment to gzip: read through the writer's handle up to its
/// durable length, or (`None`) from its file as found at startup.
struct Compress {
    name: SegmentName,
    source: Option<(Arc<File>, u64)>,
}

/// Why a long step ended early.
enum Outcome<T> {
    Done(T),
    Stopped,
}

struct Worker {
    dir: PathBuf,
    policy: StorePolicy,
    index: Index,
    /// Segments found on disk at startup without an index entry.
    unindexed: VecDeque<(SegmentName, Form)>,
    compress: VecDeque<Compress>,
    active: ActiveScan,
    committed: watch::Receiver<Committed>,
    stop: Arc<AtomicBool>,
    published: Arc<Mutex<Published>>,
    rx: mpsc::Receiver<Message>,
}

impl Worker {
    fn run(&mut self) {
        let mut next_tick = Instant::now();
        loop {
            let busy = !self.unindexed.is_empty() || !self.compress.is_empty();
            let wait = if busy {
                Duration::ZERO
            } else {
                next_tick.saturating_duration_since(Instant::now())
            };
            match self.rx.recv_timeout(wait) {
                Ok(Message::Closed(segment)) => {
                    // Segments first: each one's scan continues the active
                    // file's.
                    self.close(segment);
                    continue;
                }
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.stopped() {
                return;
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
            if let Some(segment) = self.unindexed.pop_front() {
                self.index_found(segment);
            } else if let Some(job) = self.compress.pop_front() {
                self.gzip(job);
            }
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn tick(&mut self) {
        let committed = *self.committed.borrow();
        // A newer generation means a segment closed and its message is on
        // its way: scan it then.
        if committed.generation == self.active.generation {
            self.scan_active_to(committed.offset);
        }
        self.apply_retention();
        self.publish();
    }

    /// Scans the active file's committed lines up to `end`.
    fn scan_active_to(&mut self, end: u64) -> Outcome<()> {
        let mut buf = vec![0u8; CHUNK];
        let a = &mut self.active;
        while a.scanned < end {
            if self.stop.load(Ordering::Relaxed) {
                return Outcome::Stopped;
            }
            let want = ((end - a.scanned) as usize).min(CHUNK);
            match a.file.read_at(&mut buf[..want], a.scanned) {
                Ok(0) => break,
                Ok(n) => {
                    a.scanner.feed(&buf[..n]);
                    a.scanned += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(error = %e, "failed to read the active file for the store summary");
                    break;
                }
            }
        }
        Outcome::Done(())
    }

    /// Indexes a segment the writer closed and queues its compression.
    fn close(&mut self, c: ClosedSegment) {
        if self.active.generation != c.generation {
            // Not the file scanned so far (cannot happen: segments close in
            // order); scan it from its start.
            self.active = ActiveScan::new(c.generation, c.file.clone());
        }
        if let Outcome::Stopped = self.scan_active_to(c.len) {
            return;
        }
        let scanned = std::mem::replace(
            &mut self.active,
            ActiveScan::new(c.generation + 1, c.next.clone()),
        );
        let span = scanned.scanner.finish();
        let path = c.name.path(&self.dir, Form::Plain);
        if span.records == 0 {
            // Every batch written to it failed and was cut back. The index
            // counts its seq first, so that readers still tell which seq
            // the active file takes (`super::snapshot`).
            self.index.next_seq = self.index.next_seq.max(c.name.seq + 1);
            self.write_index();
            tracing::info!(file = %path.display(), "removing an empty segment");
            if let Err(e) = std::fs::remove_file(&path).and_then(|()| sync_dir(&self.dir)) {
                tracing::warn!(file = %path.display(), error = %e, "failed to remove an empty segment");
            }
            return;
        }
        tracing::info!(file = %path.display(), records = span.records, bytes = c.len, "segment closed");
        self.index.upsert(SegmentEntry {
            file: c.name.file_name(Form::Plain),
            first_received_at: c.first_received_at,
            oldest_event_at: span.oldest,
            newest_event_at: span.newest,
            max_lateness_ms: span.lateness_ms(),
            records: span.records,
            bytes: c.len,
        });
        self.write_index();
        self.compress.push_back(Compress {
            name: c.name,
            source: Some((c.file, c.len)),
        });
        self.apply_retention();
        self.publish();
    }

    /// Indexes a segment found on disk without an entry.
    fn index_found(&mut self, (name, form): (SegmentName, Form)) {
        let path = name.path(&self.dir, form);
        let scanned = File::open(&path).and_then(|f| {
            let bytes = f.metadata()?.len();
            let reader: Box<dyn Read> = match form {
                Form::Plain => Box::new(f),
                Form::Gzip => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(f))),
            };
            Ok((self.scan_reader(reader, &path), bytes))
        });
        let (span, bytes) = match scanned {
            Ok((Outcome::Done(span), bytes)) => (span, bytes),
            Ok((Outcome::Stopped, _)) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "failed to index a segment");
                return;
            }
        };
        self.index.upsert(SegmentEntry {
            file: name.file_name(form),
            first_received_at: name.first_received,
            oldest_event_at: span.oldest,
            newest_event_at: span.newest,
            max_lateness_ms: span.lateness_ms(),
            records: span.records,
            bytes,
        });
        self.write_index();
        tracing::info!(file = %path.display(), records = span.records, "indexed a segment found at startup");
        if form == Form::Plain {
            self.compress.push_back(Compress { name, source: None });
        }
        self.apply_retention();
        self.publish();
    }

    /// Scans what `reader` yields; a read error (a corrupt gzip member)
    /// ends the scan with what was read before it.
    fn scan_reader(&self, mut reader: impl Read, path: &Path) -> Outcome<Span> {
        let mut scanner = LineScanner::default();
        let mut buf = vec![0u8; CHUNK];
        loop {
            if self.stopped() {
                return Outcome::Stopped;
            }
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => scanner.feed(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "segment unreadable past this point; indexing what precedes it");
                    break;
                }
            }
        }
        Outcome::Done(scanner.finish())
    }

    /// Compresses one plain segment (see the module documentation for the
    /// order of the steps).
    fn gzip(&mut self, job: Compress) {
        let name = job.name;
        if self.index.position(name.seq).is_none() {
            return; // deleted by retention meanwhile
        }
        let plain = name.path(&self.dir, Form::Plain);
        let (source, len) = match job.source {
            Some(s) => s,
            None => match File::open(&plain).and_then(|f| {
                let len = f.metadata()?.len();
                Ok((Arc::new(f), len))
            }) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(file = %plain.display(), error = %e, "cannot compress a segment");
                    return;
                }
            },
        };
        let temp = name.compress_temp(&self.dir);
        let gz = name.path(&self.dir, Form::Gzip);
        let written = match self.write_gzip(&source, len, &temp) {
            Ok(Outcome::Done(bytes)) => bytes,
            Ok(Outcome::Stopped) => {
                let _ = std::fs::remove_file(&temp);
                tracing::info!(file = %plain.display(), "compression abandoned at stop; the next start compresses the segment");
                return;
            }
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                tracing::error!(file = %plain.display(), error = %e, "failed to compress a segment; it stays uncompressed");
                return;
            }
        };
        pause_point("compress-written", &temp);
        if let Err(e) = std::fs::rename(&temp, &gz).and_then(|()| sync_dir(&self.dir)) {
            let _ = std::fs::remove_file(&temp);
            tracing::error!(file = %gz.display(), error = %e, "failed to put a compressed segment in place; it stays uncompressed");
            return;
        }
        pause_point("compress-renamed", &gz);
        if let Some(i) = self.index.position(name.seq) {
            let entry = &mut self.index.segments[i];
            entry.file = name.file_name(Form::Gzip);
            entry.bytes = written;
        }
        self.write_index();
        pause_point("compress-indexed", &gz);
        if let Err(e) = std::fs::remove_file(&plain).and_then(|()| sync_dir(&self.dir)) {
            tracing::warn!(file = %plain.display(), error = %e, "failed to remove a compressed segment's plain copy; the next start does");
        }
        tracing::info!(file = %gz.display(), plain_bytes = len, bytes = written, "segment compressed");
        self.apply_retention();
        self.publish();
    }

    /// Writes `source[..len]` gzip'd to `temp` (0600) and syncs it;
    /// returns its size.
    fn write_gzip(&self, source: &File, len: u64, temp: &Path) -> io::Result<Outcome<u64>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(temp)?;
        let mut gz = flate2::write::GzEncoder::new(
            BufWriter::with_capacity(CHUNK, file),
            flate2::Compression::new(GZIP_LEVEL),
        );
        let mut buf = vec![0u8; CHUNK];
        let mut at = 0u64;
        while at < len {
            if self.stopped() {
                return Ok(Outcome::Stopped);
            }
            let want = ((len - at) as usize).min(CHUNK);
            let n = match source.read_at(&mut buf[..want], at) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("segment ends at byte {at}, {len} expected"),
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            gz.write_all(&buf[..n])?;
            at += n as u64;
        }
        let file = gz.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(Outcome::Done(file.metadata()?.len()))
    }

    /// Deletes the segments retention no longer keeps, oldest first.
    fn apply_retention(&mut self) {
        let mut doomed: Vec<u64> = Vec::new();
        if let Some(retain) = self.policy.retain
            && let Ok(retain) = jiff::SignedDuration::try_from(retain)
            && let Ok(cutoff) = Timestamp::now().checked_sub(retain)
        {
            for e in &self.index.segments {
                // A segment without record times counts by its receive time.
                if e.newest_event_at.unwrap_or(e.first_received_at) < cutoff {
                    doomed.extend(e.name().map(|(n, _)| n.seq));
                }
            }
        }
        if let Some(cap) = self.policy.retain_size {
            let compressed = |e: &&SegmentEntry| e.name().is_some_and(|(_, f)| f == Form::Gzip);
            let mut total: u64 = self
                .index
                .segments
                .iter()
                .filter(compressed)
                .filter(|e| !doomed.contains(&e.name().map_or(0, |(n, _)| n.seq)))
                .map(|e| e.bytes)
                .sum();
            for e in self.index.segments.iter().filter(compressed) {
                if total <= cap {
                    break;
                }
                let seq = e.name().map_or(0, |(n, _)| n.seq);
                if !doomed.contains(&seq) {
                    doomed.push(seq);
                    total -= e.bytes;
                }
            }
        }
        doomed.sort_unstable();
        for seq in doomed {
            self.delete(seq);
        }
    }

    /// Removes segment `seq`'s files, then its index entry.
    fn delete(&mut self, seq: u64) {
        let Some(i) = self.index.position(seq) else {
            return;
        };
        let (name, form) = self.index.segments[i]
            .name()
            .expect("index entries have segment names");
        let path = name.path(&self.dir, form);
        for f in [Form::Plain, Form::Gzip] {
            match std::fs::remove_file(name.path(&self.dir, f)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    tracing::error!(file = %path.display(), error = %e, "retention failed to delete a segment");
                    return;
                }
                _ => {}
            }
        }
        if let Err(e) = sync_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "failed to sync the store directory");
        }
        pause_point("delete-unlinked", &path);
        let entry = self.index.segments.remove(i);
        self.compress.retain(|j| j.name.seq != seq);
        self.write_index();
        tracing::info!(file = %path.display(), records = entry.records, bytes = entry.bytes, "retention deleted a segment");
    }

    fn write_index(&self) {
        if let Err(e) = self.index.write(&self.dir) {
            tracing::error!(dir = %self.dir.display(), error = %e, "failed to write segments.json; the next start rebuilds it");
        }
    }

    fn publish(&self) {
        let mut p = Published {
            segments: (self.index.segments.len() + self.unindexed.len()) as u64,
            ..Published::default()
        };
        for e in &self.index.segments {
            p.segment_bytes += e.bytes;
            p.span.merge(&Span {
                records: e.records,
                oldest: e.oldest_event_at,
                newest: e.newest_event_at,
                ..Span::default()
            });
        }
        for (name, form) in &self.unindexed {
            p.segment_bytes +=
                std::fs::metadata(name.path(&self.dir, *form)).map_or(0, |m| m.len());
        }
        p.span.merge(&self.active.scanner.span);
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }
}
