//! Records read from a file of lines: a stored segment (plain or gzip'd),
//! the active events file, any exported file given with `--file`, or stdin
//! (`-`).
//!
//! gzip is recognised by its magic bytes, not the name, and may hold
//! several members (as `cat a.gz b.gz` makes). Blank lines are skipped.
//! What cannot be read is a [`Problem`], reported and skipped, and the rest
//! of the file is still read: a line that is no record, a last line cut
//! short without its newline (a torn tail), a gzip stream that breaks off
//! (what was readable before the break is kept). A last line without a
//! newline that is a whole record is taken as is: exports often end so.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use bytes::Bytes;
use flate2::bufread::MultiGzDecoder;

use crate::record::Record;

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

/// Opens `path` (`-` is stdin) as lines, gunzipping when the content is
/// gzip.
pub fn open(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    let raw: Box<dyn Read + Send> = if path == Path::new("-") {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path)?)
    };
    let mut reader = BufReader::with_capacity(256 * 1024, raw);
    Ok(if is_gzip(&mut reader)? {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            MultiGzDecoder::new(reader),
        ))
    } else {
        Box::new(reader)
    })
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
    reader: impl BufRead,
    on_record: &mut dyn FnMut(Record) -> io::Result<bool>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<()> {
    read_numbered_lines(name, reader, &mut |_, record| on_record(record), on_problem)
}

/// [`read`], handing `on_record` each record's 1-based line number too
/// (for reports that name a record by its place in the file).
pub fn read_numbered(
    path: &Path,
    on_record: &mut dyn FnMut(u64, Record) -> io::Result<bool>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<()> {
    let name = path.display().to_string();
    let reader = open(path)?;
    read_numbered_lines(&name, reader, on_record, on_problem)
}

fn read_numbered_lines(
    name: &str,
    mut reader: impl BufRead,
    on_record: &mut dyn FnMut(u64, Record) -> io::Result<bool>,
    on_problem: &mut dyn FnMut(Problem),
) -> io::Result<()> {
    let mut line = Vec::with_capacity(4096);
    let mut number = 0u64;
    loop {
        line.clear();
        let read = match reader.read_until(b'\n', &mut line) {
            Ok(n) => n,
            Err(e) => {
                let what = if e.kind() == io::ErrorKind::InvalidInput
                    || e.kind() == io::ErrorKind::InvalidData
                    || e.kind() == io::ErrorKind::UnexpectedEof
                {
                    format!(
                        "corrupt gzip data after line {number}: {e}; the rest of the file is skipped"
                    )
                } else {
                    format!("read failed after line {number}: {e}; the rest of the file is skipped")
                };
                on_problem(Problem {
                    file: name.to_owned(),
                    line: None,
                    what,
                });
                return Ok(());
            }
        };
        if read == 0 {
            return Ok(());
        }
        number += 1;
        let complete = line.last() == Some(&b'\n');
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match Record::new(Bytes::copy_from_slice(text)) {
            Ok(record) => {
                if !on_record(number, record)? {
                    return Ok(());
                }
            }
            Err(why) if !complete => on_problem(Problem {
                file: name.to_owned(),
                line: Some(number),
                what: format!("torn last line (no newline at the end): {why}"),
            }),
            Err(why) => on_problem(Problem {
                file: name.to_owned(),
                line: Some(number),
                what: format!("not an audit record: {why}"),
            }),
        }
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
