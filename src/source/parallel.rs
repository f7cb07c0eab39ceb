//! Many inputs (a store's segments and active file, exported files) read on
//! every core and printed as one stream in record-time order: what `get
//! audit-logs --stored` and `--file` run for a query of the first N or of
//! all matching records.
//!
//! **Work.** Each input is cut into blocks of whole lines by a reader thread
//! (inflating a gzip'd segment as it goes, [`Blocks`]); worker threads, one
//! per core, take blocks from any input, read each line into a [`Record`]
//! once (a slice of the block, no copy), keep those the query matches and
//! prepare what the output prints for each ([`Output::preparer`]: the line
//! as stored, or the `--jq` filter's line). The calling thread merges the
//! results and prints them.
//!
//! **Order.** Records print by time, records without a time first, equal
//! times in stored order (input, then line: a [`Position`]), as
//! [`crate::source::order`] sorts them. The merge prints the record with
//! the smallest key once no record still unread can come before it. What
//! may still come is bounded per input:
//!
//! - an input not read yet holds nothing before its floor: the oldest time
//!   the store's index gives for a segment, or anything at all;
//! - a segment whose index gives its lateness `L` (how much older than the
//!   newest record stored before it a record can be; 0 when it is in time
//!   order, as a listener writes it) holds nothing further before the
//!   newest time read so far less `L`: it is streamed, holding only
//!   the records of its last `L`;
//! - an input whose order is not known (no index, an exported file) is held
//!   until it is read whole, then sorted: its time range forces that;
//! - a plain file read in place (the active file, a plain `--file`) is read
//!   twice instead of held: a first pass notes where each matching record
//!   is and its time, a second reads them back in time order, so what it
//!   holds is those notes (32 bytes a record), not the records.
//!
//! **Memory.** A reader waits when its input has [`CREDITS`] blocks
//! read and not yet printed, and it starts an input only while fewer than
//! [`AHEAD_PER_READER`] per reader are started and not printed whole (a
//! year of small daily segments would otherwise be read ahead whole, each
//! within its credits); when nothing can be printed and every reader is
//! waiting (overlapping inputs, a lateness wider than the credits), each
//! gets one more credit, and one more input may start, so the merge holds
//! what the inputs' time ranges force and no more. Problems (lines that are no record, unreadable files) are
//! reported per input in input order, as a sequential read reports them.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{Receiver, Sender, unbounded};
use jiff::{SignedDuration, Timestamp};

use crate::output::{Made, Output, Prepare, Prepared, Preparer};
use crate::query::{Pipeline, Query};
use crate::record::Record;
use crate::source::file::{Blocks, LastLine, Problem, read_failure};
use crate::source::order::{Position, position};

/// Bytes of lines handed to a worker at a time.
const BLOCK: usize = 256 * 1024;
/// Blocks of one input read and not yet printed before its reader waits.
pub const CREDITS: u64 = 4;
/// Inputs started and not yet printed whole, per reader thread, before
/// the readers wait to start another.
pub const AHEAD_PER_READER: usize = 2;

/// Where a record goes in the output: its time (none first), then where it
/// is stored.
type Key = (Option<Timestamp>, Position);

/// How far an input's records are from time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// No record is older than the newest stored before it by more than
    /// this (and none without a time follows one with a time).
    Lateness(SignedDuration),
    Unknown,
}

/// The earliest record an input may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floor {
    /// Any: records without a time, or nothing is known.
    Any,
    /// Nothing before this time.
    At(Timestamp),
}

/// An input opened by its reader.
pub enum Opened {
    /// Its bytes (inflated if need be), and the name its problems give if
    /// not the input's (the file that was found: plain or gzip'd).
    Reader(Box<dyn Read + Send>, Option<String>),
    /// Deleted since it was listed (a segment that retention removed): its
    /// records are gone.
    Gone,
    /// Could not be opened: the problem to report.
    Failed(Problem),
}

/// How an input is read.
pub enum Source {
    /// From its start, once, by a reader thread: `open` runs there.
    Stream(Box<dyn FnOnce() -> Opened + Send>),
    /// A plain file read in place (twice, see the module documentation).
    InPlace(File),
}

/// One input of a query.
pub struct Input {
    /// The name its problems give.
    pub name: String,
    pub source: Source,
    pub floor: Floor,
    pub order: Order,
    /// What a last line without a newline is.
    pub last: LastLine,
    /// Its number in [`Position`]s.
    pub number: usize,
}

/// What a worker made of one matching record.
enum Payload {
    Prepared(Prepared),
    Record(Record),
}

struct Item {
    key: Key,
    payload: Payload,
}

/// Where a matching record of an in-place input is.
#[derive(Debug, Clone, Copy)]
struct Ref {
    key: Key,
    offset: u64,
    len: u32,
}

enum Work {
    /// Every line: read, match, prepare.
    Lines { last: LastLine, detach: bool },
    /// Every line: read, match, note where (an in-place input's first pass).
    Locate { last: LastLine },
    /// The records at these ranges of the block, matched already.
    Refs(Vec<(Key, Range<u32>)>),
}

struct Job {
    input: usize,
    number: usize,
    seq: u64,
    name: Arc<str>,
    block: Bytes,
    /// Lines before the block.
    line: u64,
    /// Stream offset of the block's first byte.
    offset: u64,
    work: Work,
}

/// A worker's result for one block.
struct BlockDone {
    input: usize,
    seq: u64,
    items: Vec<Item>,
    refs: Vec<Ref>,
    problems: Vec<Problem>,
    /// The newest time of any record of the block (matching or not).
    newest: Option<Timestamp>,
    /// Lines in the block.
    lines: u64,
}

enum Msg {
    /// A reader took the input.
    Started(usize),
    Block(BlockDone),
    /// A reader finished the input after `blocks` blocks.
    End {
        input: usize,
        blocks: u64,
        problem: Option<Problem>,
    },
}

/// Runs `pipeline`'s query (of the first N or all records: not the last N)
/// over `inputs`, in record-time order. Problems go to `on_problem`;
/// output errors end the query and are returned.
pub fn run<O: Output>(
    inputs: Vec<Input>,
    pipeline: &mut Pipeline<O>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<()> {
    run_with(inputs, pipeline, on_problem, BLOCK)
}

/// [`run`] with blocks of `block` bytes.
fn run_with<O: Output>(
    inputs: Vec<Input>,
    pipeline: &mut Pipeline<O>,
    on_problem: &mut dyn FnMut(Problem),
    block: usize,
) -> io::Result<()> {
    if inputs.is_empty() {
        return Ok(());
    }
    let query = pipeline.query().clone();
    let preparer = pipeline.output_mut().preparer();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 16));
    let readers = (workers + 1).min(inputs.len());
    let (job_tx, job_rx) = unbounded::<Job>();
    let (msg_tx, msg_rx) = unbounded::<Msg>();
    // Permits to start an input: the merge gives one back for each input
    // printed whole. Only the merge keeps a sender, so that dropping it
    // ends readers waiting for one.
    let (start_tx, start_rx) = unbounded::<()>();
    let allowance = readers * AHEAD_PER_READER;
    for _ in 0..allowance {
        let _ = start_tx.send(());
    }
    let stop = Arc::new(AtomicBool::new(false));

    // In-place inputs first: until they are read nothing can be printed.
    let mut start_order: Vec<usize> = (0..inputs.len()).collect();
    start_order.sort_by_key(|&i| !matches!(inputs[i].source, Source::InPlace(_)));
    let mut slots: Vec<Slot> = Vec::with_capacity(inputs.len());
    let mut work: Vec<Option<ReaderWork>> = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.into_iter().enumerate() {
        let (credit_tx, credit_rx) = unbounded::<()>();
        for _ in 0..CREDITS {
            let _ = credit_tx.send(());
        }
        let name: Arc<str> = input.name.into();
        let (in_place, open) = match input.source {
            Source::InPlace(file) => (Some(Arc::new(file)), None),
            Source::Stream(open) => (None, Some(open)),
        };
        slots.push(Slot::new(
            input.number,
            name.clone(),
            input.floor,
            input.order,
            in_place.clone(),
            credit_tx,
            block,
        ));
        work.push(Some(ReaderWork {
            input: index,
            number: input.number,
            name,
            last: input.last,
            open,
            in_place,
            detach: input.order == Order::Unknown && preparer.is_none(),
            credits: credit_rx,
            block,
        }));
    }
    let work: Vec<Option<ReaderWork>> = start_order.iter().map(|&i| work[i].take()).collect();
    let work = std::sync::Mutex::new(work.into_iter());

    std::thread::scope(|scope| {
        let query = &query;
        for _ in 0..workers {
            let jobs = job_rx.clone();
            let msgs = msg_tx.clone();
            let preparer = preparer.clone();
            scope.spawn(move || worker(query, preparer.as_ref(), &jobs, &msgs));
        }
        drop(job_rx);
        for _ in 0..readers {
            let jobs = job_tx.clone();
            let msgs = msg_tx.clone();
            let (work, stop, starts) = (&work, &stop, start_rx.clone());
            scope.spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) || starts.recv().is_err() {
                        return;
                    }
                    let item = work.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some(Some(w)) = item else { return };
                    read_input(w, &jobs, &msgs);
                }
            });
        }
        drop(msg_tx);
        drop(start_rx);
        let mut merge = Merge::new(slots, start_order, job_tx, msg_rx, start_tx, allowance);
        let result = merge.run(pipeline, on_problem);
        // Stop the readers and workers: dropping the merge drops every
        // credit and the last job sender.
        stop.store(true, Ordering::Relaxed);
        drop(merge);
        result
    })
}

/// What a reader thread needs for one input.
struct ReaderWork {
    input: usize,
    number: usize,
    name: Arc<str>,
    last: LastLine,
    open: Option<Box<dyn FnOnce() -> Opened + Send>>,
    in_place: Option<Arc<File>>,
    detach: bool,
    credits: Receiver<()>,
    block: usize,
}

/// Reads one input into blocks for the workers.
fn read_input(w: ReaderWork, jobs: &Sender<Job>, msgs: &Sender<Msg>) {
    let _ = msgs.send(Msg::Started(w.input));
    let end = |blocks, problem| {
        let _ = msgs.send(Msg::End {
            input: w.input,
            blocks,
            problem,
        });
    };
    let mut name = w.name.clone();
    let (reader, locate): (Box<dyn Read + Send>, bool) = match (w.open, &w.in_place) {
        (_, Some(file)) => (Box::new(ReadAt::new(file.clone())), true),
        (Some(open), None) => match open() {
            Opened::Reader(r, found) => {
                if let Some(found) = found {
                    name = found.into();
                }
                (r, false)
            }
            Opened::Gone => return end(0, None),
            Opened::Failed(problem) => return end(0, Some(problem)),
        },
        (None, None) => return end(0, None),
    };
    let mut blocks = Blocks::new(reader, w.block);
    let (mut seq, mut line) = (0u64, 0u64);
    loop {
        let block = match blocks.next_block() {
            Ok(Some(block)) => block,
            Ok(None) => return end(seq, None),
            Err(e) => {
                let problem = Problem {
                    file: name.to_string(),
                    line: None,
                    what: read_failure(line, &e),
                };
                return end(seq, Some(problem));
            }
        };
        // Wait for room: the merge gives a credit back for each block
        // printed (or held because it must be).
        if w.credits.recv().is_err() {
            return;
        }
        let lines = memchr::memchr_iter(b'\n', &block.bytes).count() as u64;
        let work = if locate {
            Work::Locate { last: w.last }
        } else {
            Work::Lines {
                last: w.last,
                detach: w.detach,
            }
        };
        let job = Job {
            input: w.input,
            number: w.number,
            seq,
            name: name.clone(),
            block: block.bytes,
            line,
            offset: block.offset,
            work,
        };
        if jobs.send(job).is_err() {
            return;
        }
        seq += 1;
        line += lines;
    }
}

/// A shared file read from its start with `read_at` (so that the merge can
/// read the same file at other offsets meanwhile).
struct ReadAt {
    file: Arc<File>,
    at: u64,
}

impl ReadAt {
    fn new(file: Arc<File>) -> ReadAt {
        ReadAt { file, at: 0 }
    }
}

impl Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// A worker thread: blocks in, matching records out.
fn worker(query: &Query, preparer: Option<&Preparer>, jobs: &Receiver<Job>, msgs: &Sender<Msg>) {
    let prepare = preparer.map(Preparer::start);
    while let Ok(job) = jobs.recv() {
        let done = match &job.work {
            Work::Refs(refs) => refs_block(&job, refs, prepare.as_ref()),
            Work::Lines { last, detach } => lines_block(&job, query, *last, |key, record, out| {
                out.push(key, record, prepare.as_ref(), *detach);
            }),
            Work::Locate { last } => lines_block(&job, query, *last, |_, _, _| {}),
        };
        if msgs.send(Msg::Block(done)).is_err() {
            return;
        }
    }
}

/// Gathers the items of one block; the lines filters make for them go
/// into one buffer, shared by the items once the block is done.
struct Lines {
    buf: Vec<u8>,
    items: Vec<(Key, Result<Payload, Range<usize>>)>,
}

impl Lines {
    fn new() -> Lines {
        Lines {
            buf: Vec::new(),
            items: Vec::new(),
        }
    }

    /// Adds a matching record: prepared when the output can be, else the
    /// record itself (in bytes of its own if it is to be held).
    fn push(&mut self, key: Key, record: Record, prepare: Option<&Prepare>, detach: bool) {
        let payload = match prepare {
            None => Payload::Record(if detach { record.detached() } else { record }),
            Some(p) => match p.prepare(&record, &mut self.buf) {
                Made::Record => Payload::Prepared(Prepared::Line(record.raw().clone())),
                Made::At(at) => {
                    self.items.push((key, Err(at)));
                    return;
                }
                Made::Nothing => Payload::Prepared(Prepared::Nothing),
                Made::Skipped(warning) => Payload::Prepared(Prepared::Skipped(warning)),
            },
        };
        self.items.push((key, Ok(payload)));
    }

    fn finish(self) -> Vec<Item> {
        let buf = Bytes::from(self.buf);
        self.items
            .into_iter()
            .map(|(key, payload)| Item {
                key,
                payload: payload
                    .unwrap_or_else(|at| Payload::Prepared(Prepared::Line(buf.slice(at)))),
            })
            .collect()
    }
}

/// Reads the lines of a block: records that match go to `keep` (with
/// their key), the rest are counted and their problems noted.
fn lines_block(
    job: &Job,
    query: &Query,
    last: LastLine,
    mut keep: impl FnMut(Key, Record, &mut Lines),
) -> BlockDone {
    let block = &job.block;
    let locate = matches!(job.work, Work::Locate { .. });
    let mut lines = Lines::new();
    let mut refs = Vec::new();
    let mut problems = Vec::new();
    let mut newest: Option<Timestamp> = None;
    let mut number = job.line;
    let mut at = 0;
    // The last whole line, when --grep left it unread.
    let mut unread_last: Option<Range<usize>> = None;
    while at < block.len() {
        let (end, complete) = match memchr::memchr(b'\n', &block[at..]) {
            Some(i) => (at + i, true),
            None => (block.len(), false),
        };
        if !complete && last == LastLine::Pending {
            // Being written: neither read nor reported.
            break;
        }
        number += 1;
        let start = at;
        at = end + usize::from(complete);
        let line = &block[start..end];
        // --grep first: a line that does not match is not read at all.
        if !query.admits(line) {
            if complete {
                unread_last = Some(start..end);
            }
            continue;
        }
        unread_last = None;
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match Record::new(block.slice_ref(text)) {
            Ok(record) => {
                if record.time() > newest {
                    newest = record.time();
                }
                if !query.matches_read(&record) {
                    continue;
                }
                let key = (record.time(), position(job.number, number));
                if locate {
                    let skip = text.as_ptr() as usize - block.as_ptr() as usize;
                    refs.push(Ref {
                        key,
                        offset: job.offset + skip as u64,
                        len: text.len() as u32,
                    });
                } else {
                    keep(key, record, &mut lines);
                }
            }
            Err(why) => problems.push(Problem {
                file: job.name.to_string(),
                line: Some(number),
                what: if complete {
                    format!("not an audit record: {why}")
                } else {
                    format!("torn last line (no newline at the end): {why}")
                },
            }),
        }
    }
    // The block's last record gives its time for the merge's bound even
    // when --grep left it unread (read here, its problems not reported).
    if let Some(at) = unread_last
        && let Ok(record) = Record::new(block.slice_ref(block[at].trim_ascii()))
        && record.time() > newest
    {
        newest = record.time();
    }
    BlockDone {
        input: job.input,
        seq: job.seq,
        items: lines.finish(),
        refs,
        problems,
        newest,
        lines: number - job.line,
    }
}

/// Reads back records of an in-place input that matched in its first pass.
fn refs_block(job: &Job, refs: &[(Key, Range<u32>)], prepare: Option<&Prepare>) -> BlockDone {
    let mut lines = Lines::new();
    for (key, at) in refs {
        let range = at.start as usize..at.end as usize;
        // A record that no longer reads as one was cut from the file since
        // (the listener cuts a write that failed): it is not there.
        let Some(bytes) = job.block.get(range.clone()) else {
            continue;
        };
        if let Ok(record) = Record::new(job.block.slice_ref(bytes)) {
            lines.push(*key, record, prepare, false);
        }
    }
    BlockDone {
        input: job.input,
        seq: job.seq,
        items: lines.finish(),
        refs: Vec::new(),
        problems: Vec::new(),
        newest: None,
        lines: 0,
    }
}

/// Items that belong to no block (an input held whole, then sorted).
const NO_BLOCK: u64 = u64::MAX;

/// The merge's view of one input.
struct Slot {
    number: usize,
    name: Arc<str>,
    floor: Key,
    order: Order,
    in_place: Option<Arc<File>>,
    credits: Sender<()>,
    started: bool,
    /// Printed whole: its start permit went back and its queue was freed.
    closed: bool,
    /// Something of it was absorbed.
    touched: bool,
    /// Block results waiting for those before them.
    pending: BTreeMap<u64, BlockDone>,
    next_seq: u64,
    /// Blocks its reader sent, once it ended.
    blocks: Option<u64>,
    end_problem: Option<Problem>,
    /// Its reader's part is over and each of its blocks was absorbed.
    read: bool,
    newest: Option<Timestamp>,
    /// Lines absorbed so far.
    lines: u64,
    /// Items in key order, each with the seq of its block.
    queue: VecDeque<(Item, u64)>,
    /// Items of a stream in unknown order, until it is read.
    hold: Vec<Item>,
    /// Items still queued of blocks `left_base..`.
    left: VecDeque<usize>,
    left_base: u64,
    /// Credits sent (the first ones included), and reader blocks absorbed.
    granted: u64,
    absorbed: u64,
    problems: Vec<Problem>,
    /// In-place inputs: the matching records (sorted once read); how many
    /// were asked back, and how many came back.
    refs: Vec<Ref>,
    fetched: usize,
    queued_refs: usize,
    /// Fetches sent and not yet printed, each with its seq and its number
    /// of records.
    fetches: VecDeque<(u64, usize)>,
    fetch_seq: u64,
    /// Bytes of a fetch.
    block: usize,
}

impl Slot {
    fn new(
        number: usize,
        name: Arc<str>,
        floor: Floor,
        order: Order,
        in_place: Option<Arc<File>>,
        credits: Sender<()>,
        block: usize,
    ) -> Slot {
        let floor = match floor {
            Floor::Any => (None, position(number, 0)),
            Floor::At(t) => (Some(t), position(number, 0)),
        };
        Slot {
            number,
            name,
            floor,
            order,
            in_place,
            credits,
            started: false,
            closed: false,
            touched: false,
            pending: BTreeMap::new(),
            next_seq: 0,
            blocks: None,
            end_problem: None,
            read: false,
            newest: None,
            lines: 0,
            queue: VecDeque::new(),
            hold: Vec::new(),
            left: VecDeque::new(),
            left_base: 0,
            granted: CREDITS,
            absorbed: 0,
            problems: Vec::new(),
            refs: Vec::new(),
            fetched: 0,
            queued_refs: 0,
            fetches: VecDeque::new(),
            fetch_seq: 0,
            block,
        }
    }

    /// Every record of it that will be queued is.
    fn all_queued(&self) -> bool {
        self.read && (self.in_place.is_none() || self.queued_refs == self.refs.len())
    }

    /// Everything of it is printed.
    fn finished(&self) -> bool {
        self.all_queued() && self.queue.is_empty()
    }

    /// The smallest key its records not yet queued may have; `None`: no
    /// more will be queued.
    fn bound(&self) -> Option<Key> {
        if self.all_queued() {
            return None;
        }
        if !self.touched {
            return Some(self.floor);
        }
        if self.in_place.is_some() {
            if !self.read {
                return Some(self.floor);
            }
            return self.refs.get(self.queued_refs).map(|r| r.key);
        }
        match self.order {
            Order::Unknown => Some(self.floor),
            Order::Lateness(late) => {
                let time = self
                    .newest
                    .map(|t| t.checked_sub(late).unwrap_or(Timestamp::MIN));
                let next = (time, position(self.number, self.lines + 1));
                Some(next.max(self.floor))
            }
        }
    }

    /// Its reader used every credit and each block it read was absorbed:
    /// it waits for a credit.
    fn waiting(&self) -> bool {
        self.started && self.blocks.is_none() && self.granted == self.absorbed
    }

    /// Something of it is on its way to the merge.
    fn busy(&self) -> bool {
        let reading = self.started && self.blocks.is_none() && self.granted > self.absorbed;
        let in_flight = self.blocks.is_some_and(|b| self.next_seq < b)
            || (self.in_place.is_some() && self.read && self.next_seq < self.fetch_seq);
        reading || in_flight
    }

    /// Once a started input is printed whole, marks it closed and lets go
    /// of the capacity its queue grew to while it was read (an input keeps
    /// its slot until the query ends, and over hundreds of segments the
    /// queues' capacity was most of the memory); `true` the one time it
    /// closes, when its start permit is to go back.
    fn close(&mut self) -> bool {
        if self.closed || !self.started || !self.finished() {
            return false;
        }
        self.closed = true;
        self.queue = VecDeque::new();
        true
    }

    fn give_credit(&mut self) {
        self.granted += 1;
        let _ = self.credits.send(());
    }

    /// Notes one item of block `seq` printed.
    fn printed_one_of(&mut self, seq: u64) {
        if seq == NO_BLOCK {
            return;
        }
        if let Some(left) = self.left.get_mut((seq - self.left_base) as usize) {
            *left -= 1;
        }
        self.release();
    }

    /// Lets go of the blocks at the front whose items are all printed.
    fn release(&mut self) {
        while self.left.front() == Some(&0) {
            self.left.pop_front();
            self.left_base += 1;
            if self.in_place.is_some() && self.read {
                self.fetches.pop_front();
            } else {
                self.give_credit();
            }
        }
    }

    /// Queues an item of block `seq`, in key order.
    fn enqueue(&mut self, item: Item, seq: u64) {
        let at = match self.queue.back() {
            Some((last, _)) if last.key > item.key => self
                .queue
                .partition_point(|(queued, _)| queued.key < item.key),
            _ => self.queue.len(),
        };
        self.queue.insert(at, (item, seq));
    }

    /// Absorbs the block results that are next in order.
    fn drain(&mut self) {
        while let Some(mut done) = self.pending.remove(&self.next_seq) {
            // What the merge was told of this input so far. A record before
            // it breaks what the index says (a stale or wrong entry, a
            // record without a time in a segment the index gives times):
            // it is placed where the merge may still put it, the same
            // whatever the timing, not where its time says.
            if let Some(bound) = self.bound() {
                for item in &mut done.items {
                    if item.key < bound {
                        item.key.0 = bound.0;
                    }
                }
            }
            self.next_seq += 1;
            self.touched = true;
            self.problems.extend(done.problems);
            if done.newest > self.newest {
                self.newest = done.newest;
            }
            self.lines += done.lines;
            self.refs.extend(done.refs);
            let second_pass = self.in_place.is_some() && self.read;
            if !second_pass {
                self.absorbed += 1;
            }
            if second_pass {
                self.queued_refs += self
                    .fetches
                    .iter()
                    .find(|(seq, _)| *seq == done.seq)
                    .map_or(0, |(_, n)| *n);
            }
            if self.in_place.is_some() && !second_pass {
                // The first pass only notes where the records are.
                self.give_credit();
            } else if self.order == Order::Unknown && !second_pass {
                // Held until read whole: the block's room is given back.
                self.hold.extend(done.items);
                self.give_credit();
            } else {
                self.left.push_back(done.items.len());
                for item in done.items {
                    self.enqueue(item, done.seq);
                }
                self.release();
            }
        }
        if !self.read && self.blocks == Some(self.next_seq) {
            self.read = true;
            self.touched = true;
            if self.in_place.is_some() {
                // The second pass's blocks are the fetches, from this seq.
                self.left_base = self.next_seq;
                self.left.clear();
                // The first pass is over: its matching records in order.
                if !self.refs.is_sorted_by_key(|r| r.key) {
                    self.refs.sort_unstable_by_key(|r| r.key);
                }
                self.fetch_seq = self.next_seq;
            } else if !self.hold.is_empty() {
                let mut held = std::mem::take(&mut self.hold);
                held.sort_unstable_by_key(|item| item.key);
                self.queue
                    .extend(held.into_iter().map(|item| (item, NO_BLOCK)));
            }
        }
    }

    /// Reads back the next matching records of an in-place input, keeping
    /// [`CREDITS`] blocks of them on their way or waiting to be printed.
    fn fetch(&mut self, index: usize, jobs: &Sender<Job>) {
        let Some(file) = self.in_place.clone() else {
            return;
        };
        if !self.read {
            return;
        }
        while (self.fetches.len() as u64) < CREDITS && self.fetched < self.refs.len() {
            // A run of records in file order, up to a block's size.
            let first = self.fetched;
            let start = self.refs[first].offset;
            let mut end = start + u64::from(self.refs[first].len);
            let mut last = first + 1;
            while let Some(r) = self.refs.get(last) {
                let r_end = r.offset + u64::from(r.len);
                if r.offset < end || r_end - start > self.block as u64 {
                    break;
                }
                end = r_end;
                last += 1;
            }
            let mut buf = BytesMut::zeroed((end - start) as usize);
            let got = read_fully_at(&file, &mut buf, start);
            buf.truncate(got);
            let refs = self.refs[first..last]
                .iter()
                .map(|r| {
                    let from = (r.offset - start) as u32;
                    (r.key, from..from + r.len)
                })
                .collect();
            let seq = self.fetch_seq;
            self.fetch_seq += 1;
            self.fetches.push_back((seq, last - first));
            self.fetched = last;
            let job = Job {
                input: index,
                number: self.number,
                seq,
                name: self.name.clone(),
                block: buf.freeze(),
                line: 0,
                offset: start,
                work: Work::Refs(refs),
            };
            if jobs.send(job).is_err() {
                return;
            }
        }
    }
}

struct Merge {
    slots: Vec<Slot>,
    start_order: Vec<usize>,
    /// Each input's place in `start_order`.
    place: Vec<usize>,
    /// `floors[i]`: the smallest floor of `start_order[i..]`.
    floors: Vec<Option<Key>>,
    /// Readers took `start_order[..taken]` (or some of them): the others
    /// are bound by their floors.
    taken: usize,
    /// Inputs in `start_order[..taken]` whose bound may still count.
    live: Vec<usize>,
    jobs: Sender<Job>,
    msgs: Receiver<Msg>,
    /// Problems are reported for `start_order[problem_turn]` as they come;
    /// later inputs' wait for their turn.
    problem_turn: usize,
    /// Inputs with queued items.
    with_items: Vec<usize>,
    /// Gives the readers a permit to start one more input.
    starts: Sender<()>,
    /// Permits there are: given at the start and when stuck.
    allowance: usize,
}

impl Merge {
    fn new(
        slots: Vec<Slot>,
        start_order: Vec<usize>,
        jobs: Sender<Job>,
        msgs: Receiver<Msg>,
        starts: Sender<()>,
        allowance: usize,
    ) -> Merge {
        let mut place = vec![0; slots.len()];
        for (i, &k) in start_order.iter().enumerate() {
            place[k] = i;
        }
        let mut floors = vec![None; slots.len() + 1];
        for i in (0..slots.len()).rev() {
            let floor = slots[start_order[i]].floor;
            floors[i] = Some(floors[i + 1].map_or(floor, |f: Key| f.min(floor)));
        }
        Merge {
            allowance,
            slots,
            start_order,
            place,
            floors,
            taken: 0,
            live: Vec::new(),
            jobs,
            msgs,
            problem_turn: 0,
            with_items: Vec::new(),
            starts,
        }
    }

    fn run<O: Output>(
        &mut self,
        pipeline: &mut Pipeline<O>,
        on_problem: &mut dyn FnMut(Problem),
    ) -> io::Result<()> {
        loop {
            while let Ok(msg) = self.msgs.try_recv() {
                self.absorb(msg);
            }
            self.report(on_problem);
            if !self.print(pipeline)? {
                return Ok(());
            }
            if self.slots.iter().all(Slot::finished) {
                return Ok(());
            }
            self.return_starts();
            if self.slots.iter().all(|s| !s.busy()) {
                // Nothing can be printed and nothing is coming but what
                // waits for room: the inputs' ranges force holding more.
                for slot in &mut self.slots {
                    if slot.waiting() {
                        slot.give_credit();
                    }
                }
                // Every permit is an input started and not printed whole:
                // one more may start.
                let open = (self.slots.iter())
                    .filter(|slot| slot.started && !slot.closed)
                    .count();
                if self.taken < self.slots.len() && open >= self.allowance {
                    self.allowance += 1;
                    let _ = self.starts.send(());
                }
            }
            match self.msgs.recv() {
                Ok(msg) => self.absorb(msg),
                Err(_) => {
                    // Readers and workers are gone (cannot happen while
                    // anything is unread): print what there is.
                    self.report(on_problem);
                    self.print(pipeline)?;
                    return Ok(());
                }
            }
        }
    }

    /// Gives back the start permit of each input printed whole, and the
    /// memory its queue grew to.
    fn return_starts(&mut self) {
        for slot in &mut self.slots {
            if slot.close() {
                let _ = self.starts.send(());
            }
        }
    }

    fn absorb(&mut self, msg: Msg) {
        let k = match msg {
            Msg::Started(k) => {
                self.slots[k].started = true;
                let taken = self.place[k] + 1;
                while self.taken < taken {
                    self.live.push(self.start_order[self.taken]);
                    self.taken += 1;
                }
                return;
            }
            Msg::End {
                input,
                blocks,
                problem,
            } => {
                let slot = &mut self.slots[input];
                slot.blocks = Some(blocks);
                slot.end_problem = problem;
                input
            }
            Msg::Block(done) => {
                let k = done.input;
                self.slots[k].pending.insert(done.seq, done);
                k
            }
        };
        let slot = &mut self.slots[k];
        slot.drain();
        slot.fetch(k, &self.jobs);
        if !slot.queue.is_empty() && !self.with_items.contains(&k) {
            self.with_items.push(k);
        }
    }

    /// Reports problems in input order: those of the input whose turn it
    /// is as they come, and of each after it once those before are read.
    fn report(&mut self, on_problem: &mut dyn FnMut(Problem)) {
        while let Some(&k) = self.start_order.get(self.problem_turn) {
            let slot = &mut self.slots[k];
            for p in slot.problems.drain(..) {
                on_problem(p);
            }
            if !slot.read {
                return;
            }
            if let Some(p) = slot.end_problem.take() {
                on_problem(p);
            }
            self.problem_turn += 1;
        }
    }

    /// The smallest key a record not yet queued may have.
    fn bound(&mut self) -> Option<Key> {
        let slots = &self.slots;
        self.live.retain(|&k| slots[k].bound().is_some());
        let live = self.live.iter().filter_map(|&k| slots[k].bound()).min();
        match (live, self.floors[self.taken]) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Prints what no record still to come can precede; false once the
    /// pipeline wants no more.
    fn print<O: Output>(&mut self, pipeline: &mut Pipeline<O>) -> io::Result<bool> {
        loop {
            let slots = &self.slots;
            self.with_items.retain(|&k| !slots[k].queue.is_empty());
            let mut heads = self
                .with_items
                .iter()
                .map(|&k| (self.slots[k].queue[0].0.key, k));
            let Some(first) = heads.next() else {
                return Ok(true);
            };
            let (mut best, mut second) = (first, None::<Key>);
            for head in heads {
                if head < best {
                    second = Some(best.0);
                    best = head;
                } else if second.is_none_or(|s| head.0 < s) {
                    second = Some(head.0);
                }
            }
            let (key, k) = best;
            let bound = self.bound();
            if bound.is_some_and(|b| key >= b) {
                return Ok(true);
            }
            // Every item of that input before the next one's and the bound.
            let limit = match (bound, second) {
                (Some(b), Some(s)) => Some(b.min(s)),
                (b, s) => b.or(s),
            };
            let slot = &mut self.slots[k];
            while let Some((item, _)) = slot.queue.front() {
                if limit.is_some_and(|l| item.key >= l) {
                    break;
                }
                let (item, seq) = slot.queue.pop_front().expect("an item is queued");
                slot.printed_one_of(seq);
                match item.payload {
                    Payload::Prepared(p) => pipeline.push_prepared(&p)?,
                    Payload::Record(r) => pipeline.push(r)?,
                };
                if pipeline.is_done() {
                    return Ok(false);
                }
            }
            slot.fetch(k, &self.jobs);
        }
    }
}

/// Reads `buf.len()` bytes at `offset`, or as many as there are.
fn read_fully_at(file: &File, buf: &mut [u8], offset: u64) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::jsonl::Lines;
    use crate::output::{Output, Summary};
    use crate::query::{Limit, Window};
    use crate::record::EventType;
    use flate2::write::GzEncoder;
    use proptest::prelude::*;
    use std::io::Write;

    /// How a generated input is given to the merge.
    #[derive(Debug, Clone, Copy)]
    enum How {
        /// A gzip'd stream with the index's floor and lateness.
        Gz,
        /// A plain stream whose order is not known.
        Plain,
        /// A plain file read in place.
        InPlace,
    }

    /// One input: records (seconds after a base time, or none; whether an
    /// authorization record).
    #[derive(Debug, Clone)]
    struct Spec {
        records: Vec<(Option<u8>, bool)>,
        how: How,
    }

    fn line(t: Option<u8>, authz: bool, sig: &str) -> String {
        let class = if authz { "konnect" } else { "KongGateway" };
        match t {
            Some(t) => format!(
                r#"{{"event_class_id":"{class}","event_ts":"2026-01-01T00:{:02}:{:02}Z","sig":"{sig}"}}"#,
                t / 60,
                t % 60
            ),
            None => format!(r#"{{"event_class_id":"{class}","sig":"{sig}"}}"#),
        }
    }

    fn time(t: u8) -> Timestamp {
        format!("2026-01-01T00:{:02}:{:02}Z", t / 60, t % 60)
            .parse()
            .unwrap()
    }

    /// What the index would say of records: their floor and lateness.
    fn index_of(records: &[(Option<u8>, bool)]) -> (Floor, Order) {
        let mut newest: Option<u8> = None;
        let mut late = Some(0u8);
        for (t, _) in records {
            match (*t, newest) {
                (Some(t), Some(n)) if t < n => late = late.map(|l| l.max(n - t)),
                (None, Some(_)) => late = None,
                _ => {}
            }
            if t.is_some() && *t > newest {
                newest = *t;
            }
        }
        let floor = if records.iter().any(|(t, _)| t.is_none()) {
            Floor::Any
        } else {
            records
                .iter()
                .filter_map(|(t, _)| *t)
                .min()
                .map_or(Floor::Any, |t| Floor::At(time(t)))
        };
        let order = late.map_or(Order::Unknown, |l| {
            Order::Lateness(SignedDuration::from_secs(i64::from(l)))
        });
        (floor, order)
    }

    fn sig(input: usize, line: usize) -> String {
        format!("i{input}l{line}")
    }

    fn inputs(dir: &std::path::Path, specs: &[Spec]) -> Vec<Input> {
        specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut text = String::new();
                for (l, (t, authz)) in spec.records.iter().enumerate() {
                    text.push_str(&line(*t, *authz, &sig(i, l)));
                    text.push('\n');
                }
                let path = dir.join(format!("in{i}"));
                let (floor, order) = index_of(&spec.records);
                let source = match spec.how {
                    How::Gz => {
                        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
                        gz.write_all(text.as_bytes()).unwrap();
                        std::fs::write(&path, gz.finish().unwrap()).unwrap();
                        let path = path.clone();
                        Source::Stream(Box::new(move || {
                            let f = File::open(&path).unwrap();
                            Opened::Reader(crate::source::file::decode_here(f).unwrap(), None)
                        }))
                    }
                    How::Plain => {
                        std::fs::write(&path, &text).unwrap();
                        let path = path.clone();
                        Source::Stream(Box::new(move || {
                            Opened::Reader(Box::new(File::open(&path).unwrap()), None)
                        }))
                    }
                    How::InPlace => {
                        std::fs::write(&path, &text).unwrap();
                        Source::InPlace(File::open(&path).unwrap())
                    }
                };
                let (floor, order) = match spec.how {
                    How::Gz => (floor, order),
                    _ => (Floor::Any, Order::Unknown),
                };
                Input {
                    name: path.display().to_string(),
                    source,
                    floor,
                    order,
                    last: LastLine::Final,
                    number: i,
                }
            })
            .collect()
    }

    /// The signatures the query should print, in order.
    fn expected(specs: &[Spec], query: &Query) -> Vec<String> {
        let mut all: Vec<(Key, String)> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            for (l, (t, authz)) in spec.records.iter().enumerate() {
                if query.kind == Some(EventType::Authorization) && !authz {
                    continue;
                }
                all.push(((t.map(time), position(i, l as u64 + 1)), sig(i, l)));
            }
        }
        all.sort();
        let mut sigs: Vec<String> = all.into_iter().map(|(_, s)| s).collect();
        if let Limit::First(n) = query.limit {
            sigs.truncate(n);
        }
        sigs
    }

    /// Records as they come, without a preparer.
    #[derive(Default)]
    struct Collect(Vec<String>);

    impl Output for Collect {
        fn record(&mut self, record: &Record) -> io::Result<()> {
            self.0.push(record.signature().unwrap().to_owned());
            Ok(())
        }
        fn finish(&mut self, _: &Summary) -> io::Result<()> {
            Ok(())
        }
    }

    fn run_both(specs: &[Spec], query: Query, block: usize) -> (Vec<String>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let mut lines = Pipeline::new(
            query.clone(),
            Lines::new(Vec::new(), Vec::new(), None, false),
        );
        run_with(
            inputs(dir.path(), specs),
            &mut lines,
            &mut |p| panic!("{p}"),
            block,
        )
        .unwrap();
        let (_, lines) = lines.finish(false).unwrap();
        let (out, _) = lines.into_inner().unwrap();
        let printed = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| {
                Record::from_slice(l.as_bytes())
                    .unwrap()
                    .signature()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let mut records = Pipeline::new(query, Collect::default());
        run_with(
            inputs(dir.path(), specs),
            &mut records,
            &mut |p| panic!("{p}"),
            block,
        )
        .unwrap();
        let (_, collected) = records.finish(false).unwrap();
        (printed, collected.0)
    }

    fn spec() -> impl Strategy<Value = Spec> {
        let record = (
            prop_oneof![1 => Just(None), 12 => (0u8..40).prop_map(Some)],
            any::<bool>(),
        );
        (
            prop::collection::vec(record, 0..30),
            prop_oneof![Just(How::Gz), Just(How::Plain), Just(How::InPlace)],
        )
            .prop_map(|(records, how)| Spec { records, how })
    }

    /// Inputs mostly in time order and one after the other, as stores are.
    fn store_like() -> impl Strategy<Value = Vec<Spec>> {
        prop::collection::vec((0u8..20, 1u8..3, 0u8..4), 1..24).prop_map(|parts| {
            let mut at = 0u8;
            parts
                .into_iter()
                .enumerate()
                .map(|(i, (n, step, jitter))| {
                    let records = (0..n)
                        .map(|j| {
                            let t = at.saturating_add(j * step).saturating_sub(jitter * (j % 2));
                            (Some(t.min(239)), j % 3 != 0)
                        })
                        .collect();
                    at = at.saturating_add(n * step);
                    let how = if i == 0 { How::InPlace } else { How::Gz };
                    Spec { records, how }
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_inputs_print_in_record_time_order(
            specs in prop::collection::vec(spec(), 1..24),
            block in 30usize..400,
            authz in any::<bool>(),
            first in prop::option::of(0usize..40),
        ) {
            let query = Query {
                window: Window::default(),
                kind: authz.then_some(EventType::Authorization),
                limit: first.map_or(Limit::Unlimited, Limit::First),
                ..Query::all()
            };
            let want = expected(&specs, &query);
            let (printed, collected) = run_both(&specs, query, block);
            prop_assert_eq!(&printed, &want);
            prop_assert_eq!(&collected, &want);
        }

        #[test]
        fn store_like_inputs_print_in_record_time_order(
            specs in store_like(),
            block in 30usize..300,
        ) {
            let query = Query::all();
            let (printed, _) = run_both(&specs, query.clone(), block);
            prop_assert_eq!(printed, expected(&specs, &query));
        }
    }

    #[test]
    fn problems_come_in_input_order_and_lines() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(
            &a,
            format!(
                "{}\nnot a record\n{}\n",
                line(Some(5), true, "a1"),
                line(Some(9), true, "a2")
            ),
        )
        .unwrap();
        std::fs::write(
            &b,
            format!("oops\n{}\n{{\"torn\":", line(Some(1), true, "b1")),
        )
        .unwrap();
        let stream = |path: std::path::PathBuf| {
            Source::Stream(Box::new(move || {
                Opened::Reader(Box::new(File::open(&path).unwrap()), None)
            }))
        };
        let inputs = vec![
            Input {
                name: "A".into(),
                source: stream(a),
                floor: Floor::Any,
                order: Order::Unknown,
                last: LastLine::Final,
                number: 0,
            },
            Input {
                name: "B".into(),
                source: stream(b),
                floor: Floor::Any,
                order: Order::Unknown,
                last: LastLine::Final,
                number: 1,
            },
            Input {
                name: "C".into(),
                source: Source::Stream(Box::new(|| {
                    Opened::Failed(Problem {
                        file: "C".into(),
                        line: None,
                        what: "cannot open".into(),
                    })
                })),
                floor: Floor::Any,
                order: Order::Unknown,
                last: LastLine::Final,
                number: 2,
            },
        ];
        let mut problems = Vec::new();
        let mut p = Pipeline::new(Query::all(), Collect::default());
        run_with(
            inputs,
            &mut p,
            &mut |problem| problems.push(problem.to_string()),
            16,
        )
        .unwrap();
        let (_, got) = p.finish(false).unwrap();
        assert_eq!(got.0, ["b1", "a1", "a2"]);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert_eq!(
            problems[0],
            "warning: A:2: not an audit record: not a JSON object or a CEF line"
        );
        assert_eq!(
            problems[1],
            "warning: B:1: not an audit record: not a JSON object or a CEF line"
        );
        assert!(
            problems[2].starts_with("warning: B:3: torn last line"),
            "{problems:?}"
        );
        assert_eq!(problems[3], "warning: C: cannot open");
    }

    #[test]
    fn a_pending_last_line_is_neither_read_nor_reported() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("events.jsonl");
        std::fs::write(
            &a,
            format!(
                "{}\n{}",
                line(Some(5), true, "a1"),
                &line(Some(6), true, "a2")[..20]
            ),
        )
        .unwrap();
        let inputs = vec![Input {
            name: "A".into(),
            source: Source::InPlace(File::open(&a).unwrap()),
            floor: Floor::Any,
            order: Order::Unknown,
            last: LastLine::Pending,
            number: 0,
        }];
        let mut p = Pipeline::new(Query::all(), Collect::default());
        run_with(inputs, &mut p, &mut |problem| panic!("{problem}"), 16).unwrap();
        assert_eq!(p.finish(false).unwrap().1.0, ["a1"]);
    }

    #[test]
    fn an_index_that_is_wrong_still_prints_every_record_once_the_same_way() {
        // The index says in order from 00:00:30, but the records are not.
        let specs = vec![
            Spec {
                records: vec![(Some(10), true), (Some(20), true)],
                how: How::InPlace,
            },
            Spec {
                records: vec![
                    (Some(35), true),
                    (Some(5), true),
                    (None, true),
                    (Some(40), true),
                ],
                how: How::Gz,
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let run = || {
            let mut inputs = inputs(dir.path(), &specs);
            inputs[1].floor = Floor::At(time(30));
            inputs[1].order = Order::Lateness(SignedDuration::ZERO);
            let mut p = Pipeline::new(Query::all(), Collect::default());
            run_with(inputs, &mut p, &mut |problem| panic!("{problem}"), 64).unwrap();
            p.finish(false).unwrap().1.0
        };
        let first = run();
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, ["i0l0", "i0l1", "i1l0", "i1l1", "i1l2", "i1l3"]);
        for _ in 0..20 {
            assert_eq!(run(), first);
        }
    }
}
