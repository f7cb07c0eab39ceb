//! Go-compatible JSON: records in as jaq values, values out as Go's
//! `json.Marshal` writes them. `tail --jq` and `ps --columns` use it; so can
//! any code that must read or print JSON byte for byte as the original did.
//!
//! The original decoded each record with Go's `json.Unmarshal` into `any`, ran
//! gojq on it and printed each result with `json.Marshal`. This module keeps
//! what users can see of that:
//!
//! - [`parse`] reads one record's bytes into a jaq [`Val`](jaq_json::Val).
//!   It accepts exactly the JSON that Go's scanner accepts (no comments,
//!   `NaN`, leading `+` or trailing data, nesting at most [`MAX_DEPTH`]
//!   deep) and fails with the same message, e.g.
//!   `invalid character 'o' in literal null (expecting 'u')`. Strings decode as
//!   Go does: a lone surrogate escape or an invalid UTF-8 byte becomes U+FFFD.
//!   Object keys are stored sorted, because gojq keeps objects sorted, so
//!   `keys_unsorted`, `to_entries` and `.[]` see the order the original saw;
//!   of duplicate keys the last wins.
//! - Numbers follow gojq's own reader instead of `Unmarshal`'s float64:
//!   integers are exact at any size (Konnect's `trace_id` is above 2^53, which
//!   the original rounded), other numbers are float64.
//! - [`parse_string`] decodes a text that holds one JSON string, with the same
//!   rules and messages (`ps --columns '.["quoted key"]'`).
//! - [`write`] is `json.Marshal`: compact, object keys sorted bytewise, `<`,
//!   `>`, `&`, U+2028 and U+2029 escaped, control characters as `\b \f \n \r
//!   \t` or `\u00XX`, each invalid UTF-8 byte as `\ufffd`, floats in Go's
//!   shortest form (`1e+21`, `1e-7`, `0.1`), NaN and infinities refused.
//!   [`write_str`] is its string encoder alone.
//!
//! The reader is `decode.rs`, the writer `encode.rs` (after Go's
//! `encoding/json` files); the bytewise key order both keep is here.
//! Running filters is left to [`crate::jq`], reading files to its
//! callers. The tests of `differential` check the parser against serde_json
//! on generated input, with each known difference between Go and serde_json
//! spelled out.

mod decode;
#[cfg(test)]
mod differential;
mod encode;
mod swar;

pub use decode::{MAX_DEPTH, SyntaxError, parse, parse_members, parse_string};
pub use encode::{EncodeError, write, write_str};

/// Bytewise order, deciding most pairs of keys on their first eight bytes
/// without a call to `memcmp`.
fn key_order(a: &[u8], b: &[u8]) -> core::cmp::Ordering {
    key_prefix(a).cmp(&key_prefix(b)).then_with(|| a.cmp(b))
}

/// The first eight bytes of `key` as a big-endian number, zero-padded. Zero
/// padding keeps the order: a shorter key sorts first unless the longer one
/// continues with zero bytes, and then the prefixes tie.
fn key_prefix(key: &[u8]) -> u64 {
    let mut word = [0; 8];
    let n = key.len().min(8);
    word[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::decode::tests::parse_str;
    use super::*;
    use bytes::Bytes;
    use jaq_json::Val;

    fn roundtrip(s: &[u8]) -> String {
        let v = parse_str(s).unwrap();
        let mut out = Vec::new();
        write(&mut out, &v).unwrap();
        String::from_utf8(out).unwrap()
    }

    // Every expected text below is what Go's json.Unmarshal and json.Marshal
    // produce for the same input, as run by the original's code; numbers as
    // gojq reads them.

    #[test]
    fn integers_stay_exact_at_any_size() {
        assert_eq!(
            roundtrip(b"[9007199254740993,2568499420235423533,-9223372036854775808,9223372036854775808,123456789012345678901234567890,-0]"),
            "[9007199254740993,2568499420235423533,-9223372036854775808,9223372036854775808,123456789012345678901234567890,0]"
        );
    }

    #[test]
    fn floats_are_written_as_go_writes_float64() {
        assert_eq!(
            roundtrip(b"[1.0,1.5,1e300,0.1,1e21,1e20,1e-6,1e-7,2.5e-5,1E2,5e-324,1.7976931348623157e308,1e-400,-0.0,123.456e10,100000000000000000000.0]"),
            "[1,1.5,1e+300,0.1,1e+21,100000000000000000000,0.000001,1e-7,0.000025,100,5e-324,1.7976931348623157e+308,0,-0,1234560000000,100000000000000000000]"
        );
        let mut out = Vec::new();
        for (f, want) in [
            (f64::NAN, "json: unsupported value: NaN"),
            (f64::INFINITY, "json: unsupported value: +Inf"),
            (f64::NEG_INFINITY, "json: unsupported value: -Inf"),
        ] {
            let e = write(&mut out, &Val::from(f)).unwrap_err();
            assert_eq!(e.to_string(), want);
        }
    }

    #[test]
    fn strings_are_escaped_as_json_marshal_does() {
        assert_eq!(
            roundtrip(br#"{"s":"<a href=\"x\">&amp;</a>","u":"\b\f\n\r\t\u0001\u001f\/\\"}"#),
            r#"{"s":"\u003ca href=\"x\"\u003e\u0026amp;\u003c/a\u003e","u":"\b\f\n\r\t\u0001\u001f/\\"}"#
        );
        // U+2028 and U+2029 escaped, raw or not; DEL kept as it is.
        assert_eq!(
            roundtrip("\"\\u2028\\u2029\u{2028}\x7f\\u007f é😀\"".as_bytes()),
            "\"\\u2028\\u2029\\u2028\x7f\x7f é😀\""
        );
    }

    #[test]
    fn invalid_text_becomes_replacement_characters_as_in_go() {
        // Surrogate escapes: pairs decode, lone halves become U+FFFD.
        assert_eq!(
            roundtrip(
                br#""\ud83d\ude00 \ud800 \udc00 \ud800\u0041 \ud800\ud800\udc00 \uDBFF\uDFFF""#
            ),
            "\"😀 \u{FFFD} \u{FFFD} \u{FFFD}A \u{FFFD}𐀀 \u{10FFFF}\""
        );
        // Invalid UTF-8 in a record: one U+FFFD per byte Go cannot decode.
        assert_eq!(
            roundtrip(b"\"\xff\xfe \xe2\x82 a \xed\xa0\x80 \xc0\x80 \xf4\x90\x80\x80 ok\""),
            "\"\u{FFFD}\u{FFFD} \u{FFFD}\u{FFFD} a \u{FFFD}\u{FFFD}\u{FFFD} \u{FFFD}\u{FFFD} \u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD} ok\""
        );
        // Invalid UTF-8 made by a filter is written as the \ufffd escape.
        let mut out = Vec::new();
        write(
            &mut out,
            &Val::utf8_str(Bytes::from_static(b"a\xffb\xe2\x82")),
        )
        .unwrap();
        assert_eq!(out, br#""a\ufffdb\ufffd\ufffd""#);
    }

    #[test]
    fn objects_are_sorted_and_the_last_duplicate_wins() {
        assert_eq!(
            roundtrip(b"{\"dup\":1,\"b\":{\"k\":1,\"k\":[3]},\"dup\":2,\"ab\":1,\"a\":2,\"a\\u0000\":4,\"\xc3\xa9\":5,\"Z\":6,\"\":8,\"event_ts\":0,\"event_name\":0}"),
            "{\"\":8,\"Z\":6,\"a\":2,\"a\\u0000\":4,\"ab\":1,\"b\":{\"k\":[3]},\"dup\":2,\"event_name\":0,\"event_ts\":0,\"é\":5}"
        );
        // Parsed objects keep that order inside jaq too, as gojq's do.
        let v = parse_str(br#"{"b":1,"c":2,"a":3}"#).unwrap();
        let Val::Obj(map) = v else {
            panic!("an object")
        };
        let keys: Vec<_> = map.keys().map(|k| k.to_string()).collect();
        assert_eq!(keys, [r#""a""#, r#""b""#, r#""c""#]);
    }

    #[test]
    fn key_order_is_bytewise() {
        let mut keys: Vec<&[u8]> = vec![
            b"event_ts",
            b"event_",
            b"event_\0",
            b"a",
            b"",
            b"\xff",
            b"event_tsx",
            b"Z",
            b"event_name",
        ];
        let mut expected = keys.clone();
        expected.sort();
        keys.sort_by(|a, b| key_order(a, b));
        assert_eq!(keys, expected);
    }
}
