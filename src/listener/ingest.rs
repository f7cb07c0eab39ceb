//! From a request body to records: gzip detection, bounded decoding and line
//! splitting. Everything here is a pure function of its input; HTTP and
//! storage live in `server` and `store`.
//!
//! Detection rule. A body that starts with the gzip magic bytes `1f 8b` is
//! gunzipped whatever `Content-Encoding` says: a text record can never start
//! with the control byte `0x1f`, and Konnect's `Content-Type: text/plain` with
//! a missing or wrong encoding header is a lie we can see through. A body whose
//! `Content-Encoding` names gzip but that lacks the magic bytes is not gzip
//! and is rejected as undecodable rather than stored as plain text, because a
//! sender that says gzip and sends something else is broken and storing its
//! bytes would put garbage lines in the file. Encodings other than gzip
//! (`identity`, unknown tokens) are treated as plain, as the original does.
//!
//! Record rule (the original's): split the decoded body on `\n`, trim each
//! line of surrounding ASCII whitespace (space, `\t`, `\n`, `\v`, `\f`, `\r`,
//! the ASCII part of Go's `bytes.TrimSpace`), drop empty lines, keep every
//! other byte as it is: records need not be JSON or UTF-8, and NUL is data.

use std::ops::Range;

/// The two bytes every gzip member starts with (RFC 1952, ID1 ID2).
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// How a request body is encoded, once the header and the bytes are both seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    Plain,
    Gzip,
}

/// Why a body could not be turned into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The decoded body would be larger than the limit.
    #[error("decoded request body too large")]
    TooLarge,
    /// Not valid gzip: wrong magic, bad header, bad CRC or length, truncated.
    #[error("failed to decode request body")]
    Corrupt,
}

/// Whether a `Content-Encoding` value names gzip.
///
/// Accepts a comma-separated list; each coding is compared without case and
/// without parameters. `gzip` and `x-gzip` are the HTTP names (RFC 9110
/// §8.4.1.3); `application/gzip` (what Konnect sends) and
/// `application/x-gzip` are media types that senders put there by mistake.
pub fn content_encoding_names_gzip(value: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|coding| {
        let coding = coding.split(|&b| b == b';').next().unwrap_or_default();
        let coding = trim_ascii_space(coding);
        [
            &b"gzip"[..],
            b"x-gzip",
            b"application/gzip",
            b"application/x-gzip",
        ]
        .iter()
        .any(|name| coding.eq_ignore_ascii_case(name))
    })
}

/// Decides how to decode `body`; see the module documentation for the rule.
pub fn detect_encoding(header_says_gzip: bool, body: &[u8]) -> Result<BodyEncoding, DecodeError> {
    if body.starts_with(&GZIP_MAGIC) {
        Ok(BodyEncoding::Gzip)
    } else if header_says_gzip {
        Err(DecodeError::Corrupt)
    } else {
        Ok(BodyEncoding::Plain)
    }
}

/// Gunzips `raw` (one or more concatenated members) into at most `max` bytes.
///
/// Memory is bounded by the output limit, not by what the input claims: the
/// buffer starts at the size announced by the last member's trailer (exact
/// for the usual single-member batch, capped at `max + 1`), grows by doubling
/// up to `max + 1` if that was a lie, and decoding stops as soon as one byte
/// more than `max` has been produced. A gzip bomb therefore costs at most
/// `max + 1` bytes and the time to inflate them.
pub fn gunzip_bounded(raw: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    gunzip_bounded_into(raw, max, Vec::new())
}

/// [`gunzip_bounded`] into `out`, whose content is replaced and whose
/// capacity is reused (a buffer from an earlier request saves allocating and
/// faulting in fresh pages for every batch).
///
/// Each member is inflated by zlib-rs in one call when the buffer is large
/// enough (the trailer's size makes it so for honest senders): straight into
/// the buffer's spare capacity, which is neither zeroed first nor copied into
/// an inflate window afterwards, as a streaming reader would. The header and
/// the CRC-32 and length trailer are checked by zlib-rs (gzip mode).
pub fn gunzip_bounded_into(
    raw: &[u8],
    max: usize,
    mut out: Vec<u8>,
) -> Result<Vec<u8>, DecodeError> {
    use zlib_rs::{Inflate, InflateFlush, Status};
    /// zlib's window bits for a gzip wrapper and a 32 KiB window.
    const GZIP_WINDOW_BITS: u8 = 16 + 15;

    if !raw.starts_with(&GZIP_MAGIC) {
        return Err(DecodeError::Corrupt);
    }
    let limit = max.saturating_add(1);
    out.clear();
    out.reserve(initial_capacity(raw, limit));
    let mut input = raw;
    // One round per member; any bytes after a member must be another one.
    while !input.is_empty() {
        if !input.starts_with(&GZIP_MAGIC) {
            return Err(DecodeError::Corrupt);
        }
        let mut inflate = Inflate::new(true, GZIP_WINDOW_BITS);
        loop {
            if out.len() >= limit {
                return Err(DecodeError::TooLarge);
            }
            if out.len() == out.capacity() {
                let grown = out.capacity().saturating_mul(2).max(4096).min(limit);
                out.reserve_exact(grown - out.len());
            }
            let room = (limit - out.len()).min(out.capacity() - out.len());
            let spare = &mut out.spare_capacity_mut()[..room];
            let (in_before, out_before) = (inflate.total_in(), inflate.total_out());
            let status = inflate
                .decompress_uninit(input, spare, InflateFlush::Finish)
                .map_err(|_| DecodeError::Corrupt)?;
            let consumed = (inflate.total_in() - in_before) as usize;
            let produced = (inflate.total_out() - out_before) as usize;
            // SAFETY: zlib-rs wrote `produced` bytes at the start of the
            // spare capacity (`total_out` counts exactly the bytes written),
            // and `produced <= room <= capacity - len`.
            unsafe { out.set_len(out.len() + produced) };
            input = &input[consumed..];
            match status {
                Status::StreamEnd => break,
                // Out of room: grow (or hit the limit) and go on.
                _ if out.len() == out.capacity() || out.len() >= limit => {}
                // Room left, yet not finished: the input ended early.
                _ => return Err(DecodeError::Corrupt),
            }
        }
    }
    if out.len() > max {
        return Err(DecodeError::TooLarge);
    }
    Ok(out)
}

/// The gzip trailer's ISIZE (uncompressed length mod 2^32 of the last
/// member), plus one byte so that reaching the end needs no regrowth, capped
/// at `limit`. Only a hint: the decoder output is what counts.
fn initial_capacity(raw: &[u8], limit: usize) -> usize {
    let hint = match raw.len().checked_sub(4) {
        Some(at) if raw.len() >= 18 => {
            let mut isize = [0u8; 4];
            isize.copy_from_slice(&raw[at..]);
            u32::from_le_bytes(isize) as usize + 1
        }
        _ => 4096,
    };
    hint.clamp(1, limit)
}

/// Decodes a request body to its plain bytes: gunzip if `encoding` says so,
/// otherwise the body itself (checked against `max` as the decoded limit too).
pub fn decode_body(
    encoding: BodyEncoding,
    raw: Vec<u8>,
    max: usize,
) -> Result<Vec<u8>, DecodeError> {
    match encoding {
        BodyEncoding::Gzip => gunzip_bounded(&raw, max),
        BodyEncoding::Plain if raw.len() > max => Err(DecodeError::TooLarge),
        BodyEncoding::Plain => Ok(raw),
    }
}

/// The whitespace trimmed around records: the ASCII bytes Go's
/// `unicode.IsSpace` accepts (Rust's `is_ascii_whitespace` lacks `\v`).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn trim_ascii_space(mut s: &[u8]) -> &[u8] {
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
        self.bytes
            .strip_suffix(b"\n")
            .map(|b| b.split(|&c| c == b'\n'))
            .into_iter()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use proptest::prelude::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

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
    fn content_encoding_names() {
        for yes in [
            "gzip",
            "GZIP",
            "x-gzip",
            "application/gzip",
            "Application/GZip",
            "application/x-gzip",
            "identity, gzip",
            " gzip ;q=1",
        ] {
            assert!(content_encoding_names_gzip(yes.as_bytes()), "{yes}");
        }
        for no in [
            "",
            "identity",
            "deflate",
            "br",
            "gzipped",
            "text/plain",
            "g zip",
        ] {
            assert!(!content_encoding_names_gzip(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn magic_bytes_decide_and_a_gzip_header_without_them_is_corrupt() {
        let gz = gzip(b"a\n");
        assert_eq!(detect_encoding(false, &gz), Ok(BodyEncoding::Gzip));
        assert_eq!(detect_encoding(true, &gz), Ok(BodyEncoding::Gzip));
        assert_eq!(detect_encoding(false, b"{}"), Ok(BodyEncoding::Plain));
        assert_eq!(detect_encoding(true, b"{}"), Err(DecodeError::Corrupt));
        assert_eq!(detect_encoding(true, b""), Err(DecodeError::Corrupt));
        assert_eq!(detect_encoding(false, b""), Ok(BodyEncoding::Plain));
    }

    #[test]
    fn gunzip_single_and_concatenated_members() {
        assert_eq!(gunzip_bounded(&gzip(b"hello\n"), 100).unwrap(), b"hello\n");
        let mut two = gzip(b"one\n");
        two.extend(gzip(b"two\n"));
        assert_eq!(gunzip_bounded(&two, 100).unwrap(), b"one\ntwo\n");
        assert_eq!(gunzip_bounded(&gzip(b""), 0).unwrap(), b"");
    }

    #[test]
    fn gunzip_into_replaces_the_content_and_reuses_the_buffer() {
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(b"old content");
        let ptr = buf.as_ptr();
        let out = gunzip_bounded_into(&gzip(b"new\n"), 100, buf).unwrap();
        assert_eq!(out, b"new\n");
        assert_eq!(out.as_ptr(), ptr);
        // Too small to start with: grows, as from an empty buffer.
        let data = vec![b'z'; 50_000];
        let out = gunzip_bounded_into(&gzip(&data), 1 << 20, Vec::with_capacity(8)).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn gunzip_limit_is_inclusive() {
        let data = vec![b'x'; 1000];
        assert_eq!(gunzip_bounded(&gzip(&data), 1000).unwrap(), data);
        assert_eq!(
            gunzip_bounded(&gzip(&data), 999),
            Err(DecodeError::TooLarge)
        );
    }

    #[test]
    fn gunzip_rejects_corrupt_and_truncated() {
        let gz = gzip(b"some text that compresses\n");
        for cut in 2..gz.len() {
            assert_eq!(
                gunzip_bounded(&gz[..cut], 1 << 20),
                Err(DecodeError::Corrupt),
                "cut at {cut}"
            );
        }
        let mut bad_crc = gz.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 0xff;
        assert_eq!(gunzip_bounded(&bad_crc, 1 << 20), Err(DecodeError::Corrupt));
        let mut trailing = gz.clone();
        trailing.extend_from_slice(b"junk");
        assert_eq!(
            gunzip_bounded(&trailing, 1 << 20),
            Err(DecodeError::Corrupt)
        );
        assert_eq!(gunzip_bounded(b"plain", 1 << 20), Err(DecodeError::Corrupt));
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit_with_a_lying_trailer() {
        // 4 MiB of zeros in one member: a few KiB compressed.
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&vec![0u8; 4 << 20]).unwrap();
        let mut bomb = enc.finish().unwrap();
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        assert_eq!(gunzip_bounded(&bomb, 64 * 1024), Err(DecodeError::TooLarge));
        // A trailer claiming 10 bytes must not let the buffer outgrow the limit either.
        let at = bomb.len() - 4;
        bomb[at..].copy_from_slice(&10u32.to_le_bytes());
        assert_eq!(initial_capacity(&bomb, 64 * 1024 + 1), 11);
        assert_eq!(gunzip_bounded(&bomb, 64 * 1024), Err(DecodeError::TooLarge));
        // Many small members add up the same way.
        let member = gzip(&vec![b'a'; 16 * 1024]);
        let many: Vec<u8> = member
            .iter()
            .copied()
            .cycle()
            .take(member.len() * 5)
            .collect();
        assert_eq!(gunzip_bounded(&many, 64 * 1024), Err(DecodeError::TooLarge));
        assert_eq!(gunzip_bounded(&many, 80 * 1024).unwrap().len(), 80 * 1024);
    }

    #[test]
    fn decode_plain_checks_the_limit() {
        assert_eq!(
            decode_body(BodyEncoding::Plain, b"abc".to_vec(), 3).unwrap(),
            b"abc"
        );
        assert_eq!(
            decode_body(BodyEncoding::Plain, b"abcd".to_vec(), 3),
            Err(DecodeError::TooLarge)
        );
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

        #[test]
        fn gunzip_roundtrips_within_the_limit(body in proptest::collection::vec(any::<u8>(), 0..2000), max in 0usize..2500) {
            let gz = gzip(&body);
            match gunzip_bounded(&gz, max) {
                Ok(out) => { prop_assert!(body.len() <= max); prop_assert_eq!(out, body); }
                Err(e) => { prop_assert!(body.len() > max); prop_assert_eq!(e, DecodeError::TooLarge); }
            }
        }

        #[test]
        fn gunzip_of_arbitrary_deflate_data_never_exceeds_the_bound(
            tail in proptest::collection::vec(any::<u8>(), 0..600),
            max in 0usize..300,
        ) {
            // A valid 10-byte member header, so the random bytes reach the inflater.
            let mut raw = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
            raw.extend(tail);
            if let Ok(out) = gunzip_bounded(&raw, max) {
                prop_assert!(out.len() <= max);
            }
        }

        #[test]
        fn gunzip_of_any_bytes_is_exact_or_an_error(
            body in proptest::collection::vec(any::<u8>(), 0..500),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
        ) {
            let mut gz = gzip(&body);
            for (at, x) in flips {
                let at = at % gz.len();
                gz[at] ^= x;
            }
            let keep = gz.len() - cut % 4.min(gz.len());
            gz.truncate(keep);
            // Damage that decodes at all must decode to the original: the CRC-32 and
            // ISIZE trailer catch changed data (flips in header flags or the
            // mtime/OS fields are harmless). Any error is a correct answer.
            if let Ok(out) = gunzip_bounded(&gz, 1000) {
                prop_assert!(out.len() <= 1000);
                prop_assert_eq!(out, body);
            }
        }
    }
}
