//! A durable follower of the store: every stored record handed, in stored
//! order and in batches, to a [`Handler`], across rotation, compression and
//! restarts, from a cursor saved in a file beside the store (`<name>.cursor`
//! in the store's directory).
//!
//! The listener's signature checker (`crate::verify::checker`) is one; so is
//! anything else that must act once on each stored record (at least once
//! across a crash, exactly once without one).
//!
//! **Positions.** A [`Position`] is byte `offset` of the file that is, or
//! becomes when it is rotated, segment `seq`: the active file takes the
//! store's next seq ([`Snapshot::next_seq`]), so a position stays valid
//! when the file is renamed to its segment name, gzip'd (the offset counts
//! decompressed bytes) or read by the next listener. Offsets fall on line
//! ends.
//!
//! **What is delivered.** In the listener's process, given the store's
//! committed end ([`CommittedView`]), only durable (acknowledged) records.
//! Elsewhere, every whole line of the active file, as `tail --stored`
//! prints them. A segment deleted by retention before it was read is
//! skipped with a warning ([`Handler::skipped`]).
//!
//! **Saving.** [`StoreConsumer::step`] reads up to [`MAX_BATCH_BYTES`] of
//! whole lines, gives them to the handler and, once it returned `Ok`,
//! replaces the cursor file atomically with the new position and the
//! handler's [`Handler::state`] (so a count kept there is exact across a
//! crash: the records of a batch whose cursor was not saved are delivered
//! again, and counted again from the saved count). The file is written
//! with [`crate::fsutil::write_atomic`]: synced, 0600.
//!
//! Waiting for new records, threads and priorities are the caller's: a
//! consumer only reads when asked ([`StoreConsumer::step`]).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::Committed;
use super::layout::Form;
use super::snapshot::{GONE, Opened, Snapshot, SnapshotError, open_segment};

/// The most bytes of records one batch holds (whole lines; a longer line
/// is a batch of its own).
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// The suffix of a cursor file's name.
pub const CURSOR_SUFFIX: &str = ".cursor";

/// A place in the store (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub seq: u64,
    pub offset: u64,
}

/// The cursor file's content.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    seq: u64,
    offset: u64,
    #[serde(default)]
    state: serde_json::Value,
}

/// Where a consumer without a cursor file starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// After every record stored so far: only what is stored from now on.
    End,
    /// At the oldest stored record.
    Beginning,
}

/// The store's committed end, for a consumer in the listener's process
/// (`EventStore::committed_view`): the active file of `generation` g is
/// segment `first_seq + g`.
#[derive(Debug, Clone)]
pub struct CommittedView {
    pub first_seq: u64,
    pub committed: watch::Receiver<Committed>,
}

impl CommittedView {
    /// The seq of the file being appended to, and its durable length.
    fn now(&self) -> (u64, u64) {
        let c = *self.committed.borrow();
        (self.first_seq + c.generation, c.offset)
    }
}

/// What a consumer hands its records to.
pub trait Handler {
    /// Why a batch could not be handled; the batch is delivered again at
    /// the next [`StoreConsumer::step`].
    type Error: std::fmt::Display;

    /// One batch of records, in stored order. The cursor moves past them
    /// once this returns `Ok`.
    fn handle(&mut self, records: &Records<'_>) -> Result<(), Self::Error>;

    /// Saved with the cursor after each batch, and given back by
    /// [`StoreConsumer::open`] (e.g. running totals).
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Records were skipped: `what` says which and why (a segment that
    /// retention deleted before it was read).
    fn skipped(&mut self, what: &str) {
        tracing::warn!("{what}");
    }
}

/// A batch of records: whole lines, each without its newline.
pub struct Records<'a> {
    bytes: &'a [u8],
    /// Where the batch starts in the store.
    pub from: Position,
}

impl<'a> Records<'a> {
    /// The records (blank lines skipped), in stored order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.bytes
            .split(|&b| b == b'\n')
            .filter(|line| !line.trim_ascii().is_empty())
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What [`StoreConsumer::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A batch of this many records was handled.
    Delivered(usize),
    /// Every record stored (committed) so far has been delivered.
    CaughtUp,
}

/// Why a consumer stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError<E: std::fmt::Display> {
    #[error("{0}")]
    Store(#[from] SnapshotError),
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("cannot save {path}: {source}")]
    Save { path: String, source: io::Error },
    #[error("{0}")]
    Handler(E),
}

/// The file being read.
struct Reading {
    seq: u64,
    path: PathBuf,
    source: Source,
    /// Still the active file (may grow), as far as the last look knew.
    active: bool,
}

enum Source {
    Plain(File),
    Gzip {
        decoder: Box<MultiGzDecoder<BufReader<File>>>,
        /// Decompressed bytes read out of the decoder so far.
        pos: u64,
        /// Bytes read past `pos` of the position that are not yet a whole
        /// line.
        carry: Vec<u8>,
    },
}

/// Follows one store from a cursor file (see the module documentation).
pub struct StoreConsumer {
    dir: PathBuf,
    cursor: PathBuf,
    position: Position,
    committed: Option<CommittedView>,
    reading: Option<Reading>,
    buf: Vec<u8>,
}

impl StoreConsumer {
    /// Opens the consumer `name` of the store in `dir`: from its cursor
    /// file if there is one, else from `start`. Returns it with the state
    /// saved with the cursor (`Null` when none).
    pub fn open(
        dir: &Path,
        name: &str,
        start: Start,
        committed: Option<CommittedView>,
    ) -> Result<(StoreConsumer, serde_json::Value), ConsumeError<std::convert::Infallible>> {
        let cursor = dir.join(format!("{name}{CURSOR_SUFFIX}"));
        let saved: Option<Saved> = match std::fs::read(&cursor) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(saved) => Some(saved),
                Err(e) => {
                    tracing::warn!(file = %cursor.display(), error = %e, "unreadable cursor file; starting from the end of the store");
                    None
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(ConsumeError::Read {
                    path: cursor.display().to_string(),
                    source,
                });
            }
        };
        let mut consumer = StoreConsumer {
            dir: dir.to_path_buf(),
            cursor,
            position: Position { seq: 0, offset: 0 },
            committed,
            reading: None,
            buf: Vec::new(),
        };
        let state = match saved {
            Some(saved) => {
                consumer.position = Position {
                    seq: saved.seq,
                    offset: saved.offset,
                };
                saved.state
            }
            None => {
                consumer.position = consumer.start_position(start)?;
                // Saved at once: records stored from here on are delivered
                // even if this process dies before its first batch.
                consumer
                    .write(&serde_json::Value::Null)
                    .map_err(|source| ConsumeError::Save {
                        path: consumer.cursor.display().to_string(),
                        source,
                    })?;
                serde_json::Value::Null
            }
        };
        Ok((consumer, state))
    }

    /// Where a consumer without a cursor starts.
    fn start_position(
        &self,
        start: Start,
    ) -> Result<Position, ConsumeError<std::convert::Infallible>> {
        let snapshot = Snapshot::take(&self.dir)?;
        Ok(match start {
            Start::Beginning => Position {
                seq: snapshot
                    .segments
                    .first()
                    .map_or(snapshot.next_seq, |s| s.seq()),
                offset: 0,
            },
            Start::End => {
                let (seq, end) = match &self.committed {
                    Some(view) => view.now(),
                    None => (snapshot.next_seq, whole_lines_end(snapshot.active.as_ref())),
                };
                Position { seq, offset: end }
            }
        })
    }

    /// Where the next record to deliver starts.
    pub fn position(&self) -> Position {
        self.position
    }

    /// The cursor file.
    pub fn cursor_path(&self) -> &Path {
        &self.cursor
    }

    /// Delivers the next batch of records after the cursor, if any, and
    /// saves the cursor once the handler returned.
    pub fn step<H: Handler>(&mut self, handler: &mut H) -> Result<Step, ConsumeError<H::Error>> {
        loop {
            if self.reading.is_none() && !self.open_current(handler)? {
                return Ok(Step::CaughtUp);
            }
            let reading = self.reading.as_mut().expect("opened above");
            // How far the file may be read, and whether it is finished.
            let (bound, finished) = match &self.committed {
                Some(view) => {
                    let (current, durable) = view.now();
                    if reading.seq < current {
                        // Rotated, and every batch of it is durable.
                        (None, true)
                    } else {
                        (Some(durable), false)
                    }
                }
                None => (None, !reading.active),
            };
            let path = reading.path.display().to_string();
            let read = read_lines(
                reading,
                self.position.offset,
                bound,
                finished,
                &mut self.buf,
            )
            .map_err(|source| ConsumeError::Read { path, source })?;
            if read > 0 {
                let records = Records {
                    bytes: &self.buf,
                    from: self.position,
                };
                let count = records.len();
                handler.handle(&records).map_err(ConsumeError::Handler)?;
                self.position.offset += read;
                self.save(handler)?;
                return Ok(Step::Delivered(count));
            }
            if !finished {
                let seq = reading.seq;
                if self.committed.is_some() || !self.rotated(seq)? {
                    // Idle: the batch buffer (up to 1 MiB) is not kept.
                    self.buf = Vec::new();
                    return Ok(Step::CaughtUp);
                }
                // Rotated (seen from outside the listener): the rest of it
                // is whole lines; read it to its end.
                if let Some(reading) = self.reading.as_mut() {
                    reading.active = false;
                }
                continue;
            }
            self.reading = None;
            self.position = Position {
                seq: self.position.seq + 1,
                offset: 0,
            };
        }
    }

    /// Whether the active file of `seq` has been rotated (out of the
    /// listener's process: a newer active file is there).
    fn rotated(&self, seq: u64) -> Result<bool, SnapshotError> {
        Ok(Snapshot::take(&self.dir)?.next_seq > seq)
    }

    /// Opens the file of the cursor's seq; `false` when there is none yet
    /// (no active file).
    fn open_current<H: Handler>(
        &mut self,
        handler: &mut H,
    ) -> Result<bool, ConsumeError<H::Error>> {
        loop {
            let snapshot = Snapshot::take(&self.dir)?;
            let seq = self.position.seq;
            if seq > snapshot.next_seq {
                // The store was replaced (deleted and started again).
                handler.skipped(&format!(
                    "{}: the store holds no segment {seq} any more (it was deleted and started again); going on from its oldest record",
                    self.dir.display()
                ));
                self.position = Position {
                    seq: snapshot
                        .segments
                        .first()
                        .map_or(snapshot.next_seq, |s| s.seq()),
                    offset: 0,
                };
                continue;
            }
            if seq == snapshot.next_seq {
                let Some(file) = snapshot.active else {
                    return Ok(false);
                };
                let path = snapshot.dir.join(super::layout::ACTIVE_FILE);
                let len = file
                    .metadata()
                    .map_err(|source| ConsumeError::Read {
                        path: path.display().to_string(),
                        source,
                    })?
                    .len();
                if self.position.offset > len {
                    // Cut back since (a torn tail repaired at start).
                    self.position.offset = whole_lines_end(Some(&file));
                }
                self.reading = Some(Reading {
                    seq,
                    path,
                    source: Source::Plain(file),
                    active: true,
                });
                return Ok(true);
            }
            let Some(segment) = snapshot.segments.iter().find(|s| s.seq() >= seq) else {
                // Every segment from `seq` on is gone: on to the active file.
                self.skip_to(snapshot.next_seq, seq, handler);
                continue;
            };
            if segment.seq() > seq {
                self.skip_to(segment.seq(), seq, handler);
                continue;
            }
            let opened =
                open_segment(&self.dir, &segment.name).map_err(|source| ConsumeError::Read {
                    path: segment
                        .name
                        .path(&self.dir, Form::Plain)
                        .display()
                        .to_string(),
                    source,
                })?;
            match opened {
                Opened::Gone { path } => {
                    handler.skipped(&format!("{}: {GONE}", path.display()));
                    self.position = Position {
                        seq: seq + 1,
                        offset: 0,
                    };
                }
                Opened::File { file, form, path } => {
                    let source = match form {
                        Form::Plain => Source::Plain(file),
                        Form::Gzip => Source::Gzip {
                            decoder: Box::new(MultiGzDecoder::new(BufReader::new(file))),
                            pos: 0,
                            carry: Vec::new(),
                        },
                    };
                    self.reading = Some(Reading {
                        seq,
                        path,
                        source,
                        active: false,
                    });
                    return Ok(true);
                }
            }
        }
    }

    /// Moves on to `seq` from `from`, whose segments are gone.
    fn skip_to<H: Handler>(&mut self, seq: u64, from: u64, handler: &mut H) {
        if seq > from {
            handler.skipped(&format!(
                "{}: segments {from} to {} were deleted by the store's retention before they were read; their records are skipped",
                self.dir.display(),
                seq - 1
            ));
        }
        self.position = Position { seq, offset: 0 };
    }

    fn save<H: Handler>(&self, handler: &H) -> Result<(), ConsumeError<H::Error>> {
        self.write(&handler.state())
            .map_err(|source| ConsumeError::Save {
                path: self.cursor.display().to_string(),
                source,
            })
    }

    fn write(&self, state: &serde_json::Value) -> io::Result<()> {
        let saved = Saved {
            seq: self.position.seq,
            offset: self.position.offset,
            state: state.clone(),
        };
        let bytes = serde_json::to_vec(&saved).expect("a cursor serialises");
        crate::fsutil::write_atomic(&self.cursor, &bytes)
    }

    /// Records after the cursor, stored (committed) so far: counted by
    /// reading them (the index's count for a whole segment it lists).
    pub fn backlog(&self) -> io::Result<u64> {
        let snapshot = Snapshot::take(&self.dir).map_err(io::Error::other)?;
        let mut count = 0;
        for segment in &snapshot.segments {
            let seq = segment.seq();
            if seq < self.position.seq {
                continue;
            }
            let offset = if seq == self.position.seq {
                self.position.offset
            } else {
                0
            };
            if offset == 0
                && let Some(known) = segment.known
            {
                count += known.records;
                continue;
            }
            if let Opened::File { file, form, .. } = open_segment(&self.dir, &segment.name)? {
                count += match form {
                    Form::Plain => count_lines(&file, offset, None)?,
                    Form::Gzip => {
                        let mut decoder = MultiGzDecoder::new(BufReader::new(file));
                        io::copy(&mut (&mut decoder).take(offset), &mut io::sink())?;
                        count_reader_lines(decoder)?
                    }
                };
            }
        }
        if let Some(active) = &snapshot.active {
            let offset = if snapshot.next_seq == self.position.seq {
                self.position.offset
            } else {
                0
            };
            let bound = match &self.committed {
                Some(view) => Some(view.now().1),
                None => Some(whole_lines_end(Some(active))),
            };
            if snapshot.next_seq >= self.position.seq {
                count += count_lines(active, offset, bound)?;
            }
        }
        Ok(count)
    }
}

/// The end of the last whole line of `file` (0 without a file).
fn whole_lines_end(file: Option<&File>) -> u64 {
    let Some(file) = file else { return 0 };
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return 0;
    };
    let mut end = len;
    let mut block = vec![0u8; 64 * 1024];
    while end > 0 {
        let from = end.saturating_sub(block.len() as u64);
        let got = &mut block[..(end - from) as usize];
        if file.read_exact_at(got, from).is_err() {
            return 0;
        }
        if let Some(i) = memchr::memrchr(b'\n', got) {
            return from + i as u64 + 1;
        }
        end = from;
    }
    0
}

/// Newlines in `file` from `offset` to `bound` (its end when `None`).
fn count_lines(file: &File, offset: u64, bound: Option<u64>) -> io::Result<u64> {
    let end = match bound {
        Some(b) => b,
        None => file.metadata()?.len(),
    };
    let mut block = vec![0u8; 256 * 1024];
    let mut at = offset;
    let mut lines = 0;
    while at < end {
        let want = ((end - at) as usize).min(block.len());
        let n = file.read_at(&mut block[..want], at)?;
        if n == 0 {
            break;
        }
        lines += memchr::memchr_iter(b'\n', &block[..n]).count() as u64;
        at += n as u64;
    }
    Ok(lines)
}

fn count_reader_lines(mut reader: impl Read) -> io::Result<u64> {
    let mut block = vec![0u8; 256 * 1024];
    let mut lines = 0;
    let mut last = b'\n';
    loop {
        let n = reader.read(&mut block)?;
        if n == 0 {
            break;
        }
        lines += memchr::memchr_iter(b'\n', &block[..n]).count() as u64;
        last = block[n - 1];
    }
    // A final line without its newline (a torn tail) is a record too.
    Ok(lines + u64::from(last != b'\n'))
}

/// Reads whole lines of `reading` from `offset` (below `bound` when
/// given) into `buf`, at most [`MAX_BATCH_BYTES`] (or one longer line);
/// returns how many bytes of the file they span (0: none yet). A
/// `finished` file ends at its end, even without a final newline.
fn read_lines(
    reading: &mut Reading,
    offset: u64,
    bound: Option<u64>,
    finished: bool,
    buf: &mut Vec<u8>,
) -> io::Result<u64> {
    buf.clear();
    match &mut reading.source {
        Source::Plain(file) => {
            let end = match bound {
                Some(b) => b,
                None => file.metadata()?.len(),
            };
            let mut at = offset;
            while at < end {
                let want = ((end - at) as usize).min(MAX_BATCH_BYTES);
                let start = buf.len();
                buf.resize(start + want, 0);
                let n = file.read_at(&mut buf[start..], at)?;
                buf.truncate(start + n);
                if n == 0 {
                    break;
                }
                at += n as u64;
                if memchr::memchr(b'\n', &buf[start..]).is_some() {
                    break;
                }
            }
            Ok(cut_at_line_end(buf, finished && at >= end))
        }
        Source::Gzip {
            decoder,
            pos,
            carry,
        } => {
            // `carry` holds what was read past the last whole line handed
            // out, which ended at `pos - carry.len()`.
            if *pos - carry.len() as u64 != offset {
                carry.clear();
                if *pos > offset {
                    return Err(io::Error::other("a gzip'd segment read backwards"));
                }
                *pos += io::copy(&mut (&mut **decoder).take(offset - *pos), &mut io::sink())?;
            }
            buf.append(carry);
            let mut eof = false;
            let mut block = vec![0u8; 64 * 1024];
            while buf.len() < MAX_BATCH_BYTES || memchr::memchr(b'\n', buf).is_none() {
                let n = decoder.read(&mut block)?;
                if n == 0 {
                    eof = true;
                    break;
                }
                *pos += n as u64;
                buf.extend_from_slice(&block[..n]);
            }
            if !eof {
                let whole = memchr::memrchr(b'\n', buf).map_or(0, |i| i + 1);
                carry.extend_from_slice(&buf[whole..]);
                buf.truncate(whole);
            }
            Ok(cut_at_line_end(buf, eof))
        }
    }
}

/// Keeps the whole lines of `buf` (all of it when `final_line`, with a
/// newline added to a last line without one); returns the bytes of the
/// file they span.
fn cut_at_line_end(buf: &mut Vec<u8>, final_line: bool) -> u64 {
    if buf.is_empty() {
        return 0;
    }
    if final_line {
        let len = buf.len() as u64;
        if buf.last() != Some(&b'\n') {
            buf.push(b'\n');
        }
        return len;
    }
    match memchr::memrchr(b'\n', buf) {
        Some(i) => {
            buf.truncate(i + 1);
            (i + 1) as u64
        }
        None => {
            buf.clear();
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SegmentName;
    use std::io::Write;

    /// Collects what it is given; fails on demand.
    #[derive(Default)]
    struct Collect {
        lines: Vec<String>,
        fail: bool,
        skipped: Vec<String>,
    }

    impl Handler for Collect {
        type Error = String;
        fn handle(&mut self, records: &Records<'_>) -> Result<(), String> {
            if self.fail {
                return Err("refused".into());
            }
            for line in records.iter() {
                self.lines.push(String::from_utf8(line.to_vec()).unwrap());
            }
            Ok(())
        }
        fn state(&self) -> serde_json::Value {
            serde_json::json!({ "seen": self.lines.len() })
        }
        fn skipped(&mut self, what: &str) {
            self.skipped.push(what.to_string());
        }
    }

    fn name(seq: u64) -> SegmentName {
        SegmentName::new("2026-11-27T17:06:44Z".parse().unwrap(), seq)
    }

    fn lines(from: usize, to: usize) -> String {
        (from..to).map(|i| format!("{{\"n\":{i}}}\n")).collect()
    }

    fn expected(from: usize, to: usize) -> Vec<String> {
        (from..to).map(|i| format!("{{\"n\":{i}}}")).collect()
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn drain(c: &mut StoreConsumer, h: &mut Collect) {
        while let Step::Delivered(_) = c.step(h).unwrap() {}
    }

    #[test]
    fn follows_segments_plain_and_gzipped_then_the_active_file_across_restarts_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(name(1).path(d, Form::Gzip), gzip(&lines(0, 3000))).unwrap();
        std::fs::write(name(2).path(d, Form::Plain), lines(3000, 3010)).unwrap();
        let active = d.join(super::super::layout::ACTIVE_FILE);
        std::fs::write(&active, lines(3010, 3020)).unwrap();

        let (mut c, state) = StoreConsumer::open(d, "t", Start::Beginning, None).unwrap();
        assert_eq!(state, serde_json::Value::Null);
        assert_eq!(c.backlog().unwrap(), 3020);
        let mut h = Collect::default();
        drain(&mut c, &mut h);
        assert_eq!(h.lines, expected(0, 3020));
        assert_eq!(c.backlog().unwrap(), 0);
        assert_eq!(
            c.position(),
            Position {
                seq: 3,
                offset: lines(3010, 3020).len() as u64
            }
        );

        // A line being written is left until it is whole.
        append(&active, "{\"n\":3020}\n{\"n\":30");
        drain(&mut c, &mut h);
        assert_eq!(h.lines.len(), 3021);
        append(&active, "21}\n");

        // A restart goes on from the saved cursor, with the saved state.
        let (mut c, state) = StoreConsumer::open(d, "t", Start::Beginning, None).unwrap();
        assert_eq!(state, serde_json::json!({ "seen": 3021 }));
        drain(&mut c, &mut h);
        assert_eq!(h.lines, expected(0, 3022));

        // Rotation (rename, then a new active file), more lines in each
        // before the consumer looks, then the segment gzip'd.
        append(&active, &lines(3022, 3025));
        std::fs::rename(&active, name(3).path(d, Form::Plain)).unwrap();
        std::fs::write(&active, lines(3025, 3027)).unwrap();
        drain(&mut c, &mut h);
        assert_eq!(h.lines, expected(0, 3027));
        std::fs::write(name(3).path(d, Form::Gzip), gzip(&lines(3010, 3025))).unwrap();
        std::fs::remove_file(name(3).path(d, Form::Plain)).unwrap();
        append(&active, &lines(3027, 3028));
        drain(&mut c, &mut h);
        assert_eq!(h.lines, expected(0, 3028));
        assert!(h.skipped.is_empty(), "{:?}", h.skipped);
        // Another consumer of its own, from the end: nothing old, but what
        // comes after its start, even across a restart before its first
        // batch.
        let (_, _) = StoreConsumer::open(d, "u", Start::End, None).unwrap();
        append(&active, &lines(3028, 3029));
        let (mut other, _) = StoreConsumer::open(d, "u", Start::End, None).unwrap();
        let mut h2 = Collect::default();
        drain(&mut other, &mut h2);
        assert_eq!(h2.lines, expected(3028, 3029));
    }

    #[test]
    fn batches_end_on_line_ends_in_files_larger_than_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(name(1).path(d, Form::Gzip), gzip(&lines(0, 150_000))).unwrap();
        let active = d.join(super::super::layout::ACTIVE_FILE);
        std::fs::write(&active, lines(150_000, 300_000)).unwrap();
        let (mut c, _) = StoreConsumer::open(d, "t", Start::Beginning, None).unwrap();
        let mut h = Collect::default();
        let mut batches = 0;
        while let Step::Delivered(n) = c.step(&mut h).unwrap() {
            assert!(n > 0);
            batches += 1;
        }
        assert!(batches >= 4, "{batches}");
        assert_eq!(h.lines, expected(0, 300_000));
    }

    #[test]
    fn a_restart_resumes_inside_a_segment_gzipped_since() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let active = d.join(super::super::layout::ACTIVE_FILE);
        std::fs::write(&active, lines(0, 10)).unwrap();
        let (mut c, _) = StoreConsumer::open(d, "t", Start::Beginning, None).unwrap();
        let mut h = Collect::default();
        drain(&mut c, &mut h);
        drop(c);
        append(&active, &lines(10, 20));
        std::fs::write(name(1).path(d, Form::Gzip), gzip(&lines(0, 20))).unwrap();
        std::fs::remove_file(&active).unwrap();
        std::fs::write(&active, lines(20, 25)).unwrap();
        let (mut c, _) = StoreConsumer::open(d, "t", Start::Beginning, None).unwrap();
        assert_eq!(c.backlog().unwrap(), 15);
        drain(&mut c, &mut h);
        assert_eq!(h.lines, expected(0, 25));
    }

    #[test]
    fn a_failed_batch_is_delivered_again_and_deleted_segments_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(name(1).path(d, Form::Plain), lines(0, 5)).unwrap();
        std::fs::write(name(3).path(d, Form::Plain), lines(10, 12)).unwrap();
        let (mut c, _) = StoreConsumer::open(d, "t", Start::Beginning, None).unwrap();
        let mut h = Collect {
            fail: true,
            ..Collect::default()
        };
        assert!(matches!(c.step(&mut h), Err(ConsumeError::Handler(_))));
        assert_eq!(c.position(), Position { seq: 1, offset: 0 });
        h.fail = false;
        drain(&mut c, &mut h);
        let mut want = expected(0, 5);
        want.extend(expected(10, 12));
        assert_eq!(h.lines, want);
        assert_eq!(h.skipped.len(), 1, "{:?}", h.skipped);
        assert!(h.skipped[0].contains("segments 2 to 2"), "{}", h.skipped[0]);
    }

    #[test]
    fn in_the_listener_only_committed_records_are_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let active = d.join(super::super::layout::ACTIVE_FILE);
        std::fs::write(&active, lines(0, 10)).unwrap();
        let committed_len = lines(0, 4).len() as u64;
        let (tx, rx) = watch::channel(Committed {
            generation: 0,
            offset: committed_len,
        });
        let view = CommittedView {
            first_seq: 1,
            committed: rx,
        };
        let (mut c, _) = StoreConsumer::open(d, "t", Start::Beginning, Some(view)).unwrap();
        let mut h = Collect::default();
        drain(&mut c, &mut h);
        assert_eq!(h.lines, expected(0, 4));
        // Rotated: the old file is durable to its end.
        std::fs::rename(&active, name(1).path(d, Form::Plain)).unwrap();
        std::fs::write(&active, lines(10, 12)).unwrap();
        drain(&mut c, &mut h);
        assert_eq!(h.lines, expected(0, 4), "not durable yet");
        tx.send_replace(Committed {
            generation: 1,
            offset: lines(10, 11).len() as u64,
        });
        drain(&mut c, &mut h);
        assert_eq!(h.lines, expected(0, 11));
    }
}
