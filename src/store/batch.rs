//! One request's records as they go to disk (a [`Batch`]), and the record
//! rule that cuts a decoded request body into them (the original's): split
//! the body on `\n`, trim each line of surrounding ASCII whitespace (space,
//! `\t`, `\n`, `\v`, `\f`, `\r`, the ASCII part of Go's `bytes.TrimSpace`),
//! drop empty lines, keep every other byte as it is: records need not be
//! JSON or UTF-8, and NUL is data.
//!
//! Decoding the body (gzip, limits) is `crate::listener::ingest`'s; the
//! writer ([`super::writer`]) appends a batch with one write.

use std::ops::Range;

/// The whitespace trimmed around records: the ASCII bytes Go's
/// `unicode.IsSpace` accepts (Rust's `is_ascii_whitespace` lacks `\v`).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

pub(crate) fn trim_ascii_space(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s
        && is_space(*first)
    {
        s = rest;
    }
    while let [rest @ .., last] = s
        && is_space(*last)
    {
        s = rest;
    }
    s
}

/// The records of a decoded body, as byte ranges into it, in order.
pub fn record_ranges(body: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || next_record(body, &mut start))
}

/// The first record in the lines from `*start` on, moving `*start` past the
/// line it ends. Blank lines on the way are skipped.
fn next_record(body: &[u8], start: &mut usize) -> Option<Range<usize>> {
    while *start < body.len() {
        let line_end = memchr::memchr(b'\n', &body[*start..]).map_or(body.len(), |i| *start + i);
        let mut s = *start;
        let mut e = line_end;
        *start = line_end + 1;
        while s < e && is_space(body[s]) {
            s += 1;
        }
        while e > s && is_space(body[e - 1]) {
            e -= 1;
        }
        if s < e {
            return Some(s..e);
        }
    }
    None
}

/// One request's records, laid out exactly as they go to disk: each record
/// followed by `\n`, nothing else. Built in place from the decoded body, so a
/// batch costs no allocation beyond that body and is written with one iovec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    bytes: Vec<u8>,
    records: usize,
}

impl Batch {
    /// Splits a decoded body into records and compacts them in place.
    ///
    /// In place is safe because the output never overtakes the input: the
    /// k-th record is written at or before where it was read, since every
    /// earlier record was followed by at least one byte (its `\n`) that the
    /// output replaces with exactly one `\n`. Only a last record without a
    /// trailing newline needs one byte more.
    pub fn from_decoded(mut body: Vec<u8>) -> Batch {
        let mut out = 0;
        let mut records = 0;
        let mut start = 0;
        while let Some(Range { start: s, end: e }) = next_record(&body, &mut start) {
            // Usually nothing moves: Konnect sends clean `record\n` lines.
            if s != out {
                body.copy_within(s..e, out);
            }
            out += e - s;
            // `out <= e`: this position held the record just moved or the
            // `\n` after it, or is the end of a last line without one.
            if out == body.len() {
                body.push(b'\n');
            } else {
                body[out] = b'\n';
            }
            out += 1;
            records += 1;
        }
        body.truncate(out);
        Batch {
            bytes: body,
            records,
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The bytes to append: every record followed by `\n`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Takes the bytes out once they are written, for reuse; the batch
    /// keeps only its record count (all the store needs until the sync).
    pub(super) fn take_bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }

    /// Keeps only the records `keep` accepts (asked once per record, in
    /// order), compacting in place: what the replay dedup gate
    /// (`super::dedup`) drops never reaches the file.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let mut out = 0;
        let mut start = 0;
        let mut kept = 0;
        while start < self.bytes.len() {
            let end =
                memchr::memchr(b'\n', &self.bytes[start..]).map_or(self.bytes.len(), |i| start + i);
            let next = (end + 1).min(self.bytes.len());
            if keep(&self.bytes[start..end]) {
                self.bytes.copy_within(start..next, out);
                out += next - start;
                kept += 1;
            }
            start = next;
        }
        self.bytes.truncate(out);
        self.records = kept;
    }

    /// The records, without their newlines.
    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        records_of(&self.bytes)
    }

    /// The byte ranges of consecutive runs of at most `most` records, which
    /// [`records_of`] splits again: one pass over the batch.
    pub fn record_runs(&self, most: usize) -> Vec<(Range<usize>, usize)> {
        let most = most.max(1);
        let mut runs = Vec::with_capacity(self.records.div_ceil(most));
        let (mut start, mut left) = (0, self.records);
        while left > 0 {
            let n = left.min(most);
            let end = memchr::memchr_iter(b'\n', &self.bytes[start..])
                .nth(n - 1)
                .map_or(self.bytes.len(), |i| start + i + 1);
            runs.push((start..end, n));
            (start, left) = (end, left - n);
        }
        runs
    }
}

/// The records of `bytes` laid out as a [`Batch`]'s (or a run of them),
/// without their newlines.
pub fn records_of(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .strip_suffix(b"\n")
        .map(|b| b.split(|&c| c == b'\n'))
        .into_iter()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference model of the record rule, written the obvious way.
    fn model_records(body: &[u8]) -> Vec<Vec<u8>> {
        body.split(|&b| b == b'\n')
            .map(|l| trim_ascii_space(l).to_vec())
            .filter(|l| !l.is_empty())
            .collect()
    }

    #[test]
    fn retain_keeps_the_chosen_records_in_order() {
        let mut batch = Batch::from_decoded(b"a\nbb\n  ccc\r\nd".to_vec());
        let mut asked = Vec::new();
        batch.retain(|r| {
            asked.push(r.to_vec());
            r != b"bb" && r != b"d"
        });
        assert_eq!(asked, [&b"a"[..], b"bb", b"ccc", b"d"]);
        assert_eq!(batch.as_bytes(), b"a\nccc\n");
        assert_eq!(batch.len(), 2);
        batch.retain(|_| false);
        assert!(batch.is_empty());
        assert_eq!(batch.as_bytes(), b"");
    }

    #[test]
    fn split_trims_crlf_and_drops_blank_lines() {
        let body = b"\r\n  {\"a\":1}\r\n\r\n\t\x0b\x0c \n{\"b\":2}  \nlast-no-newline";
        let batch = Batch::from_decoded(body.to_vec());
        assert_eq!(batch.as_bytes(), b"{\"a\":1}\n{\"b\":2}\nlast-no-newline\n");
        assert_eq!(batch.len(), 3);
        let ranges: Vec<_> = record_ranges(body).map(|r| &body[r]).collect();
        assert_eq!(ranges, batch.records().collect::<Vec<_>>());
    }

    #[test]
    fn split_keeps_non_utf8_nul_and_unicode_spaces() {
        let body = b"\xff\xfe\x00CEF:0|a\x00b\n\xc2\xa0nbsp\xc2\xa0\n".to_vec();
        let batch = Batch::from_decoded(body);
        assert_eq!(
            batch.records().collect::<Vec<_>>(),
            vec![&b"\xff\xfe\x00CEF:0|a\x00b"[..], b"\xc2\xa0nbsp\xc2\xa0"]
        );
    }

    #[test]
    fn blank_bodies_have_no_records() {
        for body in [&b""[..], b"\n", b"  \r\n\t\n", b"\x0b"] {
            let batch = Batch::from_decoded(body.to_vec());
            assert!(batch.is_empty());
            assert!(batch.as_bytes().is_empty());
            assert_eq!(batch.records().count(), 0);
        }
    }

    fn line_soup() -> impl Strategy<Value = Vec<u8>> {
        // Bias towards the interesting bytes so short inputs hit the edge cases.
        let byte = prop_oneof![
            4 => Just(b'\n'),
            2 => Just(b'\r'),
            2 => Just(b' '),
            1 => Just(b'\t'),
            1 => Just(b'\x0b'),
            1 => Just(0u8),
            8 => any::<u8>(),
        ];
        proptest::collection::vec(byte, 0..300)
    }

    proptest! {
        #[test]
        fn batch_matches_the_model(body in line_soup()) {
            let model = model_records(&body);
            let batch = Batch::from_decoded(body.clone());
            prop_assert_eq!(batch.len(), model.len());
            let mut expected = Vec::new();
            for r in &model {
                expected.extend_from_slice(r);
                expected.push(b'\n');
            }
            prop_assert_eq!(batch.as_bytes(), &expected[..]);
            for rec in batch.records() {
                prop_assert!(!rec.is_empty());
                prop_assert!(!rec.contains(&b'\n'));
                prop_assert!(!is_space(rec[0]) && !is_space(rec[rec.len() - 1]));
            }
            let ranges: Vec<Vec<u8>> = record_ranges(&body).map(|r| body[r].to_vec()).collect();
            prop_assert_eq!(ranges, model);
        }

        #[test]
        fn record_runs_cover_the_batch_in_order(body in line_soup(), most in 1usize..6) {
            let batch = Batch::from_decoded(body);
            let runs = batch.record_runs(most);
            let mut records = Vec::new();
            let mut at = 0;
            for (range, n) in &runs {
                prop_assert_eq!(range.start, at, "runs are consecutive");
                at = range.end;
                prop_assert!(*n >= 1 && *n <= most);
                let run: Vec<&[u8]> = records_of(&batch.as_bytes()[range.clone()]).collect();
                prop_assert_eq!(run.len(), *n);
                records.extend(run);
            }
            prop_assert_eq!(at, batch.as_bytes().len());
            prop_assert_eq!(records, batch.records().collect::<Vec<_>>());
            prop_assert_eq!(runs.len(), batch.len().div_ceil(most));
        }

        #[test]
        fn retain_keeps_exactly_the_chosen_records(body in line_soup(), pick in any::<u64>()) {
            let model = model_records(&body);
            let chosen = |i: usize| pick.rotate_left(i as u32) & 1 == 1;
            let mut batch = Batch::from_decoded(body);
            let mut seen = Vec::new();
            let mut i = 0;
            batch.retain(|r| {
                seen.push(r.to_vec());
                i += 1;
                chosen(i - 1)
            });
            prop_assert_eq!(&seen, &model);
            let kept: Vec<Vec<u8>> =
                model.iter().enumerate().filter(|(i, _)| chosen(*i)).map(|(_, r)| r.clone()).collect();
            prop_assert_eq!(batch.len(), kept.len());
            let mut expected = Vec::new();
            for r in &kept {
                expected.extend_from_slice(r);
                expected.push(b'\n');
            }
            prop_assert_eq!(batch.as_bytes(), &expected[..]);
        }

    }
}
