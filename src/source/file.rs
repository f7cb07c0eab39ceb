//! Records read from a file of lines: a stored segment (plain or gzip'd),
//! the active events file, any exported file given with `--file`, or stdin
//! (`-`).
//!
//! gzip is recognised by its magic bytes, not the name, and may hold
//! several members (as `cat a.gz b.gz` makes); it is inflated on a thread of
//! its own ([`Prefetch`]), so that on two cores inflating and reading
//! records overlap. Lines are cut from large blocks ([`LineReader`]), not
//! read one by one. Blank lines are skipped. What cannot be read is a
//! [`Problem`], reported and skipped, and the rest of the file is still
//! read: a line that is no record, a last line cut short without its
//! newline (a torn tail), a gzip stream that breaks off (what was readable
//! before the break is kept). A last line without a newline that is a whole
//! record is taken as is: exports often end so. The active events file is
//! the exception ([`LastLine::Pending`]): there such a line is still being
//! written, and is left for a later read.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use bytes::{Bytes, BytesMut};
use flate2::bufread::MultiGzDecoder;

use crate::record::Record;

/// Size of the blocks lines are cut from, and of the inflated blocks
/// [`Prefetch`] hands over.
const BLOCK: usize = 256 * 1024;
/// Inflated blocks [`Prefetch`] may have ready ahead of the reader.
const PREFETCH_BLOCKS: usize = 4;

/// Something in a file that could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// 1-based; `None` for problems of the file as a whole.
    pub line: Option<u64>,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "warning: {}:{}: {}", self.file, line, self.what),
            None => write!(f, "warning: {}: {}", self.file, self.what),
        }
    }
}

/// Whether a reader starts with gzip's magic bytes (without consuming).
fn is_gzip(reader: &mut impl BufRead) -> io::Result<bool> {
    let head = reader.fill_buf()?;
    Ok(head.starts_with(&[0x1f, 0x8b]))
}

/// Opens `path` (`-` is stdin) for reading its lines, gunzipping (on a
/// thread of its own) when the content is gzip.
pub fn open(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    if path == Path::new("-") {
        return decode(io::stdin());
    }
    decode(File::open(path)?)
}

/// `raw` as it is, or inflated (on the caller's thread) if it is gzip: for
/// a reader that runs on a thread of its own already.
pub fn decode_here(raw: impl Read + Send + 'static) -> io::Result<Box<dyn Read + Send>> {
    let mut reader = BufReader::with_capacity(BLOCK, raw);
    Ok(if is_gzip(&mut reader)? {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    })
}

/// `raw` as it is, or inflated on a thread of its own if it is gzip.
pub fn decode(raw: impl Read + Send + 'static) -> io::Result<Box<dyn Read + Send>> {
    let mut reader = BufReader::with_capacity(BLOCK, raw);
    Ok(if is_gzip(&mut reader)? {
        Box::new(Prefetch::spawn(MultiGzDecoder::new(reader)))
    } else {
        Box::new(reader)
    })
}

/// A reader run on a thread of its own, a few blocks ahead of whoever
/// reads from this end. Dropping this end stops the thread at its next
/// block.
pub struct Prefetch {
    blocks: Receiver<io::Result<Vec<u8>>>,
    /// Emptied blocks, sent back for reuse.
    spare: SyncSender<Vec<u8>>,
    block: Vec<u8>,
    at: usize,
    done: bool,
}

impl Prefetch {
    pub fn spawn(mut inner: impl Read + Send + 'static) -> Prefetch {
        let (send, blocks) = sync_channel::<io::Result<Vec<u8>>>(PREFETCH_BLOCKS);
        let (spare, spares) = sync_channel::<Vec<u8>>(PREFETCH_BLOCKS + 2);
        std::thread::spawn(move || {
            loop {
                let mut block: Vec<u8> = spares.try_recv().unwrap_or_default();
                block.clear();
                block.resize(BLOCK, 0);
                let mut filled = 0;
                let result = loop {
                    match inner.read(&mut block[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == block.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                block.truncate(filled);
                let last = result.is_err() || filled == 0;
                if filled > 0 && send.send(Ok(block)).is_err() {
                    return;
                }
                if let Err(e) = result {
                    let _ = send.send(Err(e));
                }
                if last {
                    return;
                }
            }
        });
        Prefetch {
            blocks,
            spare,
            block: Vec::new(),
            at: 0,
            done: false,
        }
    }
}

impl Read for Prefetch {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.block.len() {
            if self.done {
                return Ok(0);
            }
            match self.blocks.recv() {
                Ok(Ok(block)) => {
                    let used = std::mem::replace(&mut self.block, block);
                    let _ = self.spare.try_send(used);
                    self.at = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A run of whole lines of a stream, shared by everything cut from it:
/// records read from a block point into it instead of being copied.
#[derive(Debug, Clone)]
pub struct Block {
    /// Ends just after a newline, except the stream's last block when the
    /// stream does not end with one.
    pub bytes: Bytes,
    /// Stream offset of `bytes[0]`.
    pub offset: u64,
}

/// Cuts a stream into [`Block`]s of about `size` bytes (more for a line
/// longer than that), reading until a block is full.
pub struct Blocks<R> {
    inner: R,
    /// Bytes read after the last newline handed out.
    rest: BytesMut,
    size: usize,
    eof: bool,
    /// Stream offset of `rest[0]`.
    offset: u64,
    /// A read error that came after the block handed out last.
    pending_error: Option<io::Error>,
}

impl<R: Read> Blocks<R> {
    pub fn new(inner: R, size: usize) -> Self {
        Blocks::starting_at(inner, size, 0)
    }

    /// Blocks of a stream whose first byte is at `offset` (for reading on
    /// from where an earlier read stopped).
    pub fn starting_at(inner: R, size: usize, offset: u64) -> Self {
        Blocks {
            inner,
            rest: BytesMut::new(),
            size,
            eof: false,
            offset,
            pending_error: None,
        }
    }

    /// The next block, `None` at the end. A read error is returned once
    /// every whole line before it was handed out; the unfinished line it
    /// cut is dropped.
    pub fn next_block(&mut self) -> io::Result<Option<Block>> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        loop {
            if self.eof {
                if self.rest.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(self.take(self.rest.len())));
            }
            let old = self.rest.len();
            // A fresh block unless the earlier one's memory is free again.
            self.rest.reserve(self.size);
            self.rest.resize(old + self.size, 0);
            let mut filled = old;
            let result = loop {
                match self.inner.read(&mut self.rest[filled..]) {
                    Ok(0) => break Ok(true),
                    Ok(n) => {
                        filled += n;
                        if filled == self.rest.len() {
                            break Ok(false);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            self.rest.truncate(filled);
            let whole = memchr::memrchr(b'\n', &self.rest[old..]).map(|i| old + i + 1);
            match (result, whole) {
                (Ok(eof), whole) => {
                    self.eof = eof;
                    if let Some(end) = whole {
                        return Ok(Some(self.take(end)));
                    }
                }
                (Err(e), Some(end)) => {
                    // Hand out the whole lines first; the error comes next.
                    self.rest.truncate(end);
                    let block = self.take(end);
                    self.pending_error = Some(e);
                    return Ok(Some(block));
                }
                (Err(e), None) => {
                    self.rest.clear();
                    return Err(e);
                }
            }
        }
    }

    fn take(&mut self, end: usize) -> Block {
        let bytes = self.rest.split_to(end).freeze();
        let block = Block {
            bytes,
            offset: self.offset,
        };
        self.offset += end as u64;
        block
    }
}

/// One line of a file, without its newline.
#[derive(Debug)]
pub struct Line {
    /// 1-based.
    pub number: u64,
    /// A slice of the block it was read from (no copy).
    pub bytes: Bytes,
    /// Ended by a newline (else it is the file's last line).
    pub complete: bool,
    /// Offset in the (decoded) stream just past this line and its newline.
    pub end: u64,
}

/// Cuts a stream into lines, a large block at a time.
pub struct LineReader<R> {
    blocks: Blocks<R>,
    block: Bytes,
    /// Unread lines are `block[at..]`.
    at: usize,
    number: u64,
    /// Stream offset of `block[at]`.
    offset: u64,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R) -> Self {
        LineReader::starting_at(inner, 0, 0)
    }

    /// A reader whose first line is line `number + 1`, at stream offset
    /// `offset` (for reading on from where an earlier read stopped).
    pub fn starting_at(inner: R, number: u64, offset: u64) -> Self {
        LineReader {
            blocks: Blocks::starting_at(inner, BLOCK, offset),
            block: Bytes::new(),
            at: 0,
            number,
            offset,
        }
    }

    /// Lines read so far.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The stream offset after the last line returned.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next line, `None` at the end. A last line without newline is
    /// returned with `complete: false`.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        while self.at == self.block.len() {
            match self.blocks.next_block()? {
                Some(block) => {
                    self.block = block.bytes;
                    self.at = 0;
                }
                None => return Ok(None),
            }
        }
        let rest = &self.block[self.at..];
        let (len, complete) = match memchr::memchr(b'\n', rest) {
            Some(i) => (i, true),
            None => (rest.len(), false),
        };
        let start = self.at;
        let taken = len + usize::from(complete);
        self.at += taken;
        self.number += 1;
        self.offset += taken as u64;
        Ok(Some(Line {
            number: self.number,
            bytes: self.block.slice(start..start + len),
            complete,
            end: self.offset,
        }))
    }
}

/// What a last line without a newline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastLine {
    /// The file is complete: the line is a record if it reads as one, else
    /// a torn tail (a problem).
    Final,
    /// The file is being written (the active events file): the line is not
    /// finished yet and is neither read nor reported.
    Pending,
}

/// Reads every record of `path`, in file order, handing each to
/// `on_record` (which returns false to stop) and each problem to
/// `on_problem`. Fails only if the file cannot be opened or `on_record`
/// fails.
pub fn read(
    path: &Path,
    on_record: &mut dyn FnMut(Record) -> io::Result<bool>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<()> {
    let name = path.display().to_string();
    let reader = open(path)?;
    read_lines(&name, reader, on_record, on_problem)
}

/// [`read`] over an open reader; `name` names it in problems.
pub fn read_lines(
    name: &str,
    reader: impl Read,
    on_record: &mut dyn FnMut(Record) -> io::Result<bool>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<()> {
    let mut lines = LineReader::new(reader);
    read_records(
        name,
        &mut lines,
        LastLine::Final,
        &mut |_, record| on_record(record),
        on_problem,
    )
    .map(|_| ())
}

/// [`read`], handing `on_record` each record's 1-based line number too
/// (for reports that name a record by its place in the file).
pub fn read_numbered(
    path: &Path,
    on_record: &mut dyn FnMut(u64, Record) -> io::Result<bool>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<()> {
    let name = path.display().to_string();
    let mut lines = LineReader::new(open(path)?);
    read_records(&name, &mut lines, LastLine::Final, on_record, on_problem).map(|_| ())
}

/// Reads the records of `lines` to its end, handing each with its line
/// number to `on_record` (false stops the read) and each problem to
/// `on_problem`. Returns the stream offset just past the last line taken
/// (with [`LastLine::Pending`], where the unfinished line starts).
pub fn read_records<R: Read>(
    name: &str,
    lines: &mut LineReader<R>,
    last: LastLine,
    on_record: &mut dyn FnMut(u64, Record) -> io::Result<bool>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<u64> {
    read_admitted(name, lines, last, &|_| true, on_record, on_problem)
}

/// [`read_records`] of the lines `admit` lets through: the others (a
/// `--grep` that does not match) are neither read nor reported.
pub fn read_admitted<R: Read>(
    name: &str,
    lines: &mut LineReader<R>,
    last: LastLine,
    admit: &dyn Fn(&[u8]) -> bool,
    on_record: &mut dyn FnMut(u64, Record) -> io::Result<bool>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<u64> {
    let mut taken = lines.offset();
    loop {
        let line = match lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(taken),
            Err(e) => {
                let number = lines.number();
                on_problem(Problem {
                    file: name.to_owned(),
                    line: None,
                    what: read_failure(number, &e),
                });
                return Ok(taken);
            }
        };
        if !line.complete && last == LastLine::Pending {
            return Ok(taken);
        }
        taken = line.end;
        if !admit(&line.bytes) {
            continue;
        }
        let (number, complete) = (line.number, line.complete);
        let text = line.bytes.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match Record::new(line.bytes.slice_ref(text)) {
            Ok(record) => {
                if !on_record(number, record)? {
                    return Ok(taken);
                }
            }
            Err(why) => on_problem(Problem {
                file: name.to_owned(),
                line: Some(number),
                what: if complete {
                    format!("not an audit record: {why}")
                } else {
                    format!("torn last line (no newline at the end): {why}")
                },
            }),
        }
    }
}

/// The problem text for a read that failed after line `number`.
pub(crate) fn read_failure(number: u64, e: &io::Error) -> String {
    if matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
    ) {
        format!("corrupt gzip data after line {number}: {e}; the rest of the file is skipped")
    } else {
        format!("read failed after line {number}: {e}; the rest of the file is skipped")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    const A: &str = r#"{"event_ts":"2026-01-01T00:00:00Z","sig":"a"}"#;
    const B: &str = r#"{"event_ts":"2026-01-01T00:00:01Z","sig":"b"}"#;

    fn collect(name: &str, bytes: &[u8]) -> (Vec<String>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut records = Vec::new();
        let mut problems = Vec::new();
        read(
            &path,
            &mut |r| {
                records.push(r.signature().unwrap_or("-").to_owned());
                Ok(true)
            },
            &mut |p| problems.push(p.to_string().replace(&path.display().to_string(), "F")),
        )
        .unwrap();
        (records, problems)
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn plain_and_gzip_read_alike_whatever_the_name() {
        let text = format!("{A}\n\n{B}\n");
        assert_eq!(collect("x.gz", text.as_bytes()).0, ["a", "b"]);
        assert_eq!(collect("x.jsonl", &gzip(&text)).0, ["a", "b"]);
        // Concatenated members, as `cat a.gz b.gz`.
        let mut two = gzip(&format!("{A}\n"));
        two.extend(gzip(&format!("{B}\n")));
        assert_eq!(collect("two", &two).0, ["a", "b"]);
    }

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let text = format!("{A}\nnot a record\n{{\"event_ts\":\n{B}\n{{\"torn\":");
        let (records, problems) = collect("f", text.as_bytes());
        assert_eq!(records, ["a", "b"]);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(
            problems[0],
            "warning: F:2: not an audit record: not a JSON object or a CEF line"
        );
        assert!(problems[1].starts_with("warning: F:3: not an audit record: invalid JSON"));
        assert!(problems[2].starts_with("warning: F:5: torn last line (no newline at the end)"));
    }

    #[test]
    fn numbered_reading_gives_each_records_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, format!("\n{A}\nnot a record\n\n{B}")).unwrap();
        let mut seen = Vec::new();
        read_numbered(
            &path,
            &mut |n, r| {
                seen.push((n, r.signature().unwrap_or("-").to_owned()));
                Ok(true)
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(seen, [(2, "a".to_owned()), (5, "b".to_owned())]);
    }

    #[test]
    fn a_whole_last_record_without_newline_is_kept() {
        let (records, problems) = collect("f", format!("{A}\n{B}").as_bytes());
        assert_eq!(records, ["a", "b"]);
        assert!(problems.is_empty());
    }

    #[test]
    fn a_broken_gzip_keeps_what_came_before() {
        let mut text = String::new();
        for i in 0..2000 {
            text.push_str(&format!(
                "{{\"event_ts\":\"2026-01-01T00:00:00Z\",\"sig\":\"s{i}\",\"pad\":\"{}\"}}\n",
                "x".repeat(i % 97)
            ));
        }
        let mut gz = gzip(&text);
        gz.truncate(gz.len() / 2);
        let (records, problems) = collect("f", &gz);
        assert!(
            !records.is_empty() && records.len() < 2000,
            "{}",
            records.len()
        );
        assert_eq!(records[0], "s0");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("warning: F: corrupt gzip data after line"),
            "{problems:?}"
        );
    }
}
