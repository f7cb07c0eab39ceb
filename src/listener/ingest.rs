//! From a request body to records: gzip detection and bounded decoding.
//! Everything here is a pure function of its input; HTTP lives in
//! `server`, and cutting the decoded body into records (the record rule)
//! and storing them in `crate::store`.
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
use crate::store::batch::trim_ascii_space;

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

    proptest! {
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
