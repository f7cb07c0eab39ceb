//! `tail --stored`: the last N stored records, then every record the
//! listener writes after them, across rotation, until stopped.
//!
//! The last N are taken in stored order, as tail(1) takes lines: the active
//! file is scanned backwards from its last whole line, so a large one costs
//! only what is printed; if it holds fewer than N matching records, the
//! newest segments supply the rest. Then the active file is followed from
//! where that view ended, by polling: new whole lines are printed, and a
//! line without its newline yet is left until it is finished.
//!
//! Rotation renames the followed file to the next segment and starts a new
//! `events.jsonl`. The follower notices the path no longer names the file it
//! holds, reads the old file to its end (it no longer grows), then takes a
//! new snapshot (`crate::store::snapshot`) and reads every segment rotated
//! after the old file (when rotations came faster than the polls) before
//! it goes on with the new active file from its start. The snapshot tells
//! the seq each active file takes when rotated, so the old file, read
//! through its handle, is told from the segments after it by seq, whatever
//! was compressed or deleted meanwhile. Nothing is printed twice or
//! skipped; a segment that retention deletes before it is read is skipped
//! with one warning. A follower cannot see the listener's fsync: a record is
//! printed once written whole, which in the rare case of a failed fsync
//! (disk error) the listener then cuts from the file.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use super::{Snapshot, SnapshotError, outside, read_segment};
use crate::query::Query;
use crate::record::Record;
use crate::source::file::{self, LastLine, LineReader, Problem};
use crate::store::layout::ACTIVE_FILE;

/// How often the active file is looked at for new lines and rotation.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Block size of the backward scan.
const BACK_BLOCK: u64 = 64 * 1024;

/// Where a follower's records go.
pub trait Sink {
    /// One record, in stored order. An error (a closed stdout) stops the
    /// follower.
    fn record(&mut self, record: Record) -> io::Result<()>;
    /// Every record written so far was passed on.
    fn caught_up(&mut self) -> io::Result<()>;
    fn problem(&mut self, problem: Problem);
}

/// The active file being followed.
struct Active {
    file: File,
    inode: (u64, u64),
    /// Where the next unread line starts.
    offset: u64,
    /// Lines before `offset`, for warnings.
    lines: u64,
}

impl Active {
    fn new(file: File, offset: u64, lines: u64) -> io::Result<Active> {
        let meta = file.metadata()?;
        Ok(Active {
            file,
            inode: (meta.dev(), meta.ino()),
            offset,
            lines,
        })
    }
}

/// Follows one profile's store.
pub struct Follower {
    dir: PathBuf,
    query: Query,
    active: Option<Active>,
    /// The seq the followed file takes when it is rotated (the snapshot's
    /// `next_seq` when it was opened): segments from this one on are not
    /// read yet.
    next_seq: u64,
}

impl Follower {
    /// Takes a snapshot of the store in `dir`, passes the last `n` records
    /// that match `query` (its type and window; its limit is ignored) to
    /// `sink`, and returns a follower that goes on from there.
    pub fn start(
        dir: &Path,
        query: Query,
        n: usize,
        sink: &mut dyn Sink,
    ) -> Result<Follower, FollowError> {
        let mut snapshot = Snapshot::take(dir)?;
        let io_err = |path: &Path| {
            let path = path.display().to_string();
            move |source| FollowError::Store(SnapshotError::Io { path, source })
        };
        let active_path = snapshot.active_path();
        // Newest first, until printed.
        let mut newest: Vec<Record> = Vec::new();
        let mut active = None;
        if let Some(file) = snapshot.active.take() {
            let (end, lines, found) =
                last_of_active(&file, &active_path, &query, n, &mut |p| sink.problem(p))
                    .map_err(io_err(&active_path))?;
            newest = found;
            active = Some(Active::new(file, end, lines).map_err(io_err(&active_path))?);
        }
        // Newest segments first, until n are found.
        let mut index = snapshot.segments.len();
        while newest.len() < n && index > 0 {
            index -= 1;
            let segment = &snapshot.segments[index];
            if outside(segment, &query.window) {
                continue;
            }
            let want = n - newest.len();
            let mut ring = std::collections::VecDeque::with_capacity(want.min(1 << 16));
            read_segment(
                &snapshot,
                index,
                &|line| query.admits(line),
                &mut |_, record| {
                    if query.matches_read(&record) {
                        if ring.len() == want {
                            ring.pop_front();
                        }
                        ring.push_back(record.detached());
                    }
                    Ok(true)
                },
                &mut |p| sink.problem(p),
            )
            .map_err(io_err(dir))?;
            newest.extend(ring.into_iter().rev());
        }
        for record in newest.into_iter().rev() {
            sink.record(record).map_err(FollowError::Io)?;
        }
        sink.caught_up().map_err(FollowError::Io)?;
        Ok(Follower {
            dir: dir.to_path_buf(),
            query,
            active,
            next_seq: snapshot.next_seq,
        })
    }

    /// Passes on what was written since the last poll, following a
    /// rotation if one happened, then tells the sink it caught up.
    /// Errors are the sink's (a closed stdout) or an unreadable store.
    pub fn poll(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        match self.active.as_ref() {
            None => self.take_over(false, sink)?,
            Some(_) => {
                self.read_new(LastLine::Pending, sink)?;
                if self.rotated()? {
                    // Writes end before the rename: read the old file to
                    // its end; a line still without newline is torn.
                    self.read_new(LastLine::Final, sink)?;
                    self.active = None;
                    self.take_over(true, sink)?;
                }
            }
        }
        sink.caught_up()
    }

    /// Whether the active path no longer names the file being followed.
    fn rotated(&self) -> io::Result<bool> {
        let Some(active) = &self.active else {
            return Ok(false);
        };
        match std::fs::metadata(self.dir.join(ACTIVE_FILE)) {
            Ok(meta) => Ok((meta.dev(), meta.ino()) != active.inode),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Reads the active file's lines from where the last read stopped.
    fn read_new(&mut self, last: LastLine, sink: &mut dyn Sink) -> io::Result<()> {
        let name = self.dir.join(ACTIVE_FILE).display().to_string();
        let Some(active) = &mut self.active else {
            return Ok(());
        };
        let len = active.file.metadata()?.len();
        if len < active.offset {
            // The listener cut the file back (a failed write, or a torn
            // tail repaired at its start): go on from the new end.
            sink.problem(Problem {
                file: name.clone(),
                line: None,
                what: format!(
                    "shrank from {} to {len} bytes while being followed; following from its new end",
                    active.offset
                ),
            });
            active.offset = len;
            active.lines = count_lines(&active.file, len)?;
        }
        if len == active.offset {
            return Ok(());
        }
        active.file.seek(SeekFrom::Start(active.offset))?;
        let mut lines = LineReader::starting_at(&active.file, active.lines, active.offset);
        let query = &self.query;
        // Records and problems go to the one sink, from two callbacks.
        let shared = std::cell::RefCell::new(sink);
        let end = file::read_admitted(
            &name,
            &mut lines,
            last,
            &|line| query.admits(line),
            &mut |_, record| {
                if query.matches_read(&record) {
                    shared.borrow_mut().record(record)?;
                }
                Ok(true)
            },
            &mut |p| shared.borrow_mut().problem(p),
        )?;
        let counted = lines.number();
        active.offset = end;
        active.lines = if lines.offset() == end {
            counted
        } else {
            // The unfinished last line was counted but not taken.
            tracing::debug!(file = %name, offset = end, "tail --stored: the last line has no newline yet; left until whole");
            counted - 1
        };
        Ok(())
    }

    /// After the followed file was rotated (`rotated`: it is segment
    /// `next_seq` now, read to its end already) or while there is no
    /// active file: reads the segments rotated since, then follows the
    /// active file from its start.
    fn take_over(&mut self, rotated: bool, sink: &mut dyn Sink) -> io::Result<()> {
        let snapshot = Snapshot::take(&self.dir).map_err(|e| match e {
            SnapshotError::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        })?;
        let query = &self.query;
        for index in 0..snapshot.segments.len() {
            let seq = snapshot.segments[index].seq();
            if seq < self.next_seq || (rotated && seq == self.next_seq) {
                continue;
            }
            let shared = std::cell::RefCell::new(&mut *sink);
            read_segment(
                &snapshot,
                index,
                &|line| query.admits(line),
                &mut |_, record| {
                    if query.matches_read(&record) {
                        shared.borrow_mut().record(record)?;
                    }
                    Ok(true)
                },
                &mut |p| shared.borrow_mut().problem(p),
            )?;
        }
        self.next_seq = snapshot.next_seq;
        self.active = match snapshot.active {
            Some(file) => Some(Active::new(file, 0, 0)?),
            None => None,
        };
        self.read_new(LastLine::Pending, sink)
    }
}

/// Lines (newlines) in the first `len` bytes of `file`.
fn count_lines(file: &File, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; BACK_BLOCK as usize];
    let mut at = 0;
    let mut lines = 0;
    while at < len {
        let want = (len - at).min(BACK_BLOCK) as usize;
        let n = file.read_at(&mut buf[..want], at)?;
        if n == 0 {
            break;
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        at += n as u64;
    }
    Ok(lines)
}

/// The active file's last `n` records matching `query`, newest first,
/// found by reading backwards from its last whole line; also the offset
/// just past that line (where following starts) and the number of lines
/// before it.
fn last_of_active(
    file: &File,
    path: &Path,
    query: &Query,
    n: usize,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<(u64, u64, Vec<Record>)> {
    let len = file.metadata()?.len();
    // The end of the last whole line: an unfinished one is being written.
    let mut end = len;
    let mut block = vec![0u8; BACK_BLOCK as usize];
    loop {
        if end == 0 {
            break;
        }
        let from = end.saturating_sub(BACK_BLOCK);
        let got = &mut block[..(end - from) as usize];
        file.read_exact_at(got, from)?;
        match memchr::memrchr(b'\n', got) {
            Some(i) => {
                end = from + i as u64 + 1;
                break;
            }
            None => end = from,
        }
    }
    let mut found: Vec<Record> = Vec::new();
    // buf holds bytes [pos, pos + buf.len()), which end at a line end.
    let mut pos = end;
    let mut buf: Vec<u8> = Vec::new();
    let mut problems: Vec<(u64, String)> = Vec::new();
    let mut take = |line: &[u8], start: u64, found: &mut Vec<Record>| {
        let text = line.trim_ascii();
        if text.is_empty() || !query.admits(line) {
            return;
        }
        match Record::new(Bytes::copy_from_slice(text)) {
            Ok(record) => {
                if query.matches_read(&record) {
                    found.push(record);
                }
            }
            Err(why) => problems.push((start, format!("not an audit record: {why}"))),
        }
    };
    while found.len() < n {
        // Whole lines in buf, last first: each starts after a newline.
        let mut stop = buf.len();
        while found.len() < n && stop > 0 {
            let content = &buf[..stop - 1];
            match memchr::memrchr(b'\n', content) {
                Some(i) => {
                    take(&buf[i + 1..stop - 1], pos + i as u64 + 1, &mut found);
                    stop = i + 1;
                }
                None if pos == 0 => {
                    take(content, 0, &mut found);
                    stop = 0;
                }
                None => break,
            }
        }
        buf.truncate(stop);
        if pos == 0 || found.len() >= n {
            break;
        }
        let from = pos.saturating_sub(BACK_BLOCK);
        let mut head = vec![0u8; (pos - from) as usize];
        file.read_exact_at(&mut head, from)?;
        head.extend_from_slice(&buf);
        buf = head;
        pos = from;
    }
    // Problems in file order, with their line numbers.
    problems.sort_by_key(|(start, _)| *start);
    for (start, what) in problems {
        on_problem(Problem {
            file: path.display().to_string(),
            line: Some(count_lines(file, start)? + 1),
            what,
        });
    }
    let lines = count_lines(file, end)?;
    Ok((end, lines, found))
}

/// Prints the last `n` records of the store in `dir` matching `query`,
/// then follows it (polling every [`POLL_INTERVAL`]) until SIGINT or
/// SIGTERM, or until the sink fails (a closed stdout: returned as the
/// error). With `follow` false, stops after the last `n`.
pub fn run(
    dir: &Path,
    query: Query,
    n: usize,
    follow: bool,
    sink: &mut dyn Sink,
) -> Result<(), FollowError> {
    let mut follower = Follower::start(dir, query, n, sink)?;
    if !follow {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(FollowError::Runtime)?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).map_err(FollowError::Runtime)?;
        let mut terminate = signal(SignalKind::terminate()).map_err(FollowError::Runtime)?;
        // From here on, whatever is written is printed and Ctrl+C ends
        // the command cleanly (tests wait for this line).
        tracing::debug!(dir = %dir.display(), "tail --stored: following the store");
        loop {
            follower.poll(sink).map_err(FollowError::Io)?;
            tokio::select! {
                _ = interrupt.recv() => return Ok(()),
                _ = terminate.recv() => return Ok(()),
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    })
}

/// Why following stopped other than by a signal.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Store(#[from] SnapshotError),
    /// Reading the store, or writing the output (a closed stdout is
    /// `BrokenPipe`).
    #[error("{0}")]
    Io(io::Error),
    #[error("cannot watch for signals: {0}")]
    Runtime(io::Error),
}
