//! What a run of stored lines holds, for the index and `listener.json`:
//! how many records, the oldest and newest of their own times
//! (`crate::record::Record::time`), and how far they are from time order
//! (the lateness). Lines are fed as they are read, so a segment is summed
//! up in one pass with bounded memory.

use std::io::{self, Read};

use jiff::{SignedDuration, Timestamp};

use crate::record::Record;

/// Records counted and their time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Non-empty lines (a line that is not a record still counts: it is
    /// stored, and readers report it).
    pub records: u64,
    pub oldest: Option<Timestamp>,
    pub newest: Option<Timestamp>,
    /// The most a record's time is before the newest time stored before
    /// it; `None` once a record without a time follows one with a time
    /// (it sorts before every timed record: no lookahead bounds it).
    pub lateness: Option<SignedDuration>,
}

impl Default for Span {
    fn default() -> Span {
        Span {
            records: 0,
            oldest: None,
            newest: None,
            lateness: Some(SignedDuration::ZERO),
        }
    }
}

impl Span {
    /// Counts one line (without its `\n`).
    pub fn add_line(&mut self, line: &[u8]) {
        if line.trim_ascii().is_empty() {
            return;
        }
        self.records += 1;
        let Ok(record) = Record::from_slice(line) else {
            // Not a record: readers skip it, so it is in no order.
            return;
        };
        match (record.time(), self.newest) {
            (Some(t), Some(newest)) if t < newest => {
                self.lateness = self.lateness.map(|l| l.max(newest.duration_since(t)));
            }
            (None, Some(_)) => self.lateness = None,
            _ => {}
        }
        if let Some(t) = record.time() {
            self.add_time(t);
        }
    }

    /// [`Span::lateness`] in whole milliseconds, rounded up (the index's
    /// `max_lateness_ms`).
    pub fn lateness_ms(&self) -> Option<u64> {
        let l = self.lateness?;
        let ms = l.as_millis();
        let exact = SignedDuration::from_millis(ms as i64) == l;
        u64::try_from(ms)
            .ok()
            .map(|ms| if exact { ms } else { ms + 1 })
    }

    fn add_time(&mut self, t: Timestamp) {
        self.oldest = Some(self.oldest.map_or(t, |o| o.min(t)));
        self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
    }

    /// Both spans together.
    pub fn merge(&mut self, other: &Span) {
        self.records += other.records;
        for t in [other.oldest, other.newest].into_iter().flatten() {
            self.add_time(t);
        }
    }
}

/// Splits a byte stream into lines across reads and feeds a [`Span`].
#[derive(Debug, Default)]
pub struct LineScanner {
    pub span: Span,
    /// The start of a line whose `\n` has not been seen yet.
    partial: Vec<u8>,
}

impl LineScanner {
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(i) = memchr::memchr(b'\n', chunk) {
            if self.partial.is_empty() {
                self.span.add_line(&chunk[..i]);
            } else {
                self.partial.extend_from_slice(&chunk[..i]);
                self.span.add_line(&self.partial);
                self.partial.clear();
            }
            chunk = &chunk[i + 1..];
        }
        self.partial.extend_from_slice(chunk);
    }

    /// The span, counting a last line without `\n` too.
    pub fn finish(mut self) -> Span {
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            self.span.add_line(&last);
        }
        self.span
    }
}

/// Sums up everything `reader` yields.
pub fn scan(mut reader: impl Read) -> io::Result<Span> {
    let mut scanner = LineScanner::default();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(scanner.finish()),
            Ok(n) => scanner.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_and_their_time_range_across_reads() {
        let text = concat!(
            "{\"event_ts\":\"2026-01-02T00:00:00Z\",\"name\":\"b\"}\n",
            "\n",
            "not a record\n",
            "{\"event\":{\"event_ts\":\"2026-01-01T00:00:00.5Z\"}}\n",
            "2026-01-03T10:00:00Z konghq.com CEF:0|KongInc|Konnect|1.0|konnect|Authz.x|1|rt=1\n",
            "{\"event_ts\":\"2026-01-01T12:00:00Z\"}"
        );
        let mut s = LineScanner::default();
        for chunk in text.as_bytes().chunks(7) {
            s.feed(chunk);
        }
        let span = s.finish();
        assert_eq!(span.records, 5);
        assert_eq!(span.oldest, Some("2026-01-01T00:00:00.5Z".parse().unwrap()));
        assert_eq!(
            span.newest.map(|t| t.to_string()).as_deref(),
            Some("2026-01-03T10:00:00Z")
        );
        assert_eq!(scan(text.as_bytes()).unwrap(), span);
    }

    #[test]
    fn lateness_is_how_far_a_record_is_behind_the_newest_before_it() {
        let span = |lines: &[&str]| {
            let mut s = LineScanner::default();
            for l in lines {
                s.feed(format!("{l}\n").as_bytes());
            }
            s.finish()
        };
        let at = |t: &str| format!("{{\"event_ts\":\"{t}\"}}");
        let ordered = span(&[
            r#"{"x":1}"#,
            &at("2026-01-01T00:00:00Z"),
            &at("2026-01-01T00:00:00Z"),
            "not a record",
            &at("2026-01-01T00:00:01Z"),
        ]);
        assert_eq!(ordered.lateness_ms(), Some(0));
        let late = span(&[
            &at("2026-01-01T00:00:10Z"),
            &at("2026-01-01T00:00:09.9995Z"),
            &at("2026-01-01T00:00:11Z"),
            &at("2026-01-01T00:00:08Z"),
        ]);
        assert_eq!(late.lateness, Some(SignedDuration::from_secs(3)));
        assert_eq!(late.lateness_ms(), Some(3000));
        let fraction = span(&[
            &at("2026-01-01T00:00:10Z"),
            &at("2026-01-01T00:00:09.9995Z"),
        ]);
        assert_eq!(fraction.lateness_ms(), Some(1));
        // A record without a time sorts before every timed one.
        let untimed = span(&[&at("2026-01-01T00:00:10Z"), r#"{"x":1}"#]);
        assert_eq!(untimed.lateness_ms(), None);
    }

    #[test]
    fn merging_widens_the_range() {
        let mut a = scan(&b"{\"event_ts\":\"2026-01-02T00:00:00Z\"}\n"[..]).unwrap();
        let b = scan(&b"{\"event_ts\":\"2026-01-01T00:00:00Z\"}\n{\"x\":1}\n"[..]).unwrap();
        a.merge(&b);
        assert_eq!(a.records, 3);
        assert_eq!(a.oldest, Some("2026-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(a.newest, Some("2026-01-02T00:00:00Z".parse().unwrap()));
        a.merge(&Span::default());
        assert_eq!(a.records, 3);
    }
}
