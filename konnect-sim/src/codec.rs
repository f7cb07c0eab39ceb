//! Byte encodings the emulator needs: unpadded base64url (signatures, JWKS
//! keys, paging cursors) and gzip (delivery bodies).

use std::io::Write;

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD};
use flate2::Compression;
use flate2::write::GzEncoder;

/// Unpadded base64url (RFC 4648 §5). Decoding also takes input whose unused
/// last bits are not zero (`Zh` for `f`), as the emulator always has: a
/// hand-edited paging cursor means the same as before.
const BASE64URL: GeneralPurpose =
    GeneralPurpose::new(&URL_SAFE, NO_PAD.with_decode_allow_trailing_bits(true));

/// Unpadded base64url, the encoding of Konnect's `sig` values.
pub(crate) fn base64url(bytes: &[u8]) -> String {
    BASE64URL.encode(bytes)
}

/// Decodes unpadded base64url; `None` for anything else (padding, the
/// standard alphabet's `+` and `/`, a length of 4n+1).
pub(crate) fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    BASE64URL.decode(text).ok()
}

/// The body of one delivery: every record followed by `\n`, gzip-compressed.
/// Lower-case hex digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn gzip_lines(records: &[String]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    for record in records {
        // Writing into a Vec cannot fail.
        encoder
            .write_all(record.as_bytes())
            .and_then(|()| encoder.write_all(b"\n"))
            .expect("writing gzip into memory cannot fail");
    }
    encoder
        .finish()
        .expect("finishing gzip into memory cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64url(plain.as_bytes()), encoded);
            assert_eq!(base64url_decode(encoded).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url_decode("-_8"), Some(vec![0xfb, 0xff]));
    }

    #[test]
    fn base64url_rejects_other_alphabets_and_lengths() {
        assert_eq!(base64url_decode("Zm9v+g"), None);
        assert_eq!(base64url_decode("Zm9vY"), None);
        assert_eq!(base64url_decode("Zg=="), None);
        assert_eq!(base64url_decode("Zh").as_deref(), Some(b"f".as_slice()));
    }

    #[test]
    fn gzip_lines_ends_every_record_with_a_newline() {
        let body = gzip_lines(&["a".to_string(), "b c".to_string()]);
        assert_eq!(&body[..2], &[0x1f, 0x8b], "gzip magic");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "a\nb c\n");
    }
}
