//! JSON text re-indented the way Go's `json.Encoder` with
//! `SetIndent("", "  ")` prints a `json.RawMessage`: every token kept as
//! written (key order, number spelling, so integers beyond 2^53 stay
//! exact), insignificant whitespace replaced by two-space indentation,
//! `": "` after keys, empty objects and arrays as `{}` and `[]`, and the
//! HTML-sensitive characters `<`, `>`, `&`, U+2028 and U+2029 inside
//! strings escaped as `\u003c` and so on (the encoder's default).
//!
//! The input must be valid JSON (records are, by the time they are
//! printed); this module only moves whitespace and escapes characters.

/// Appends `json` re-indented to `out`, starting at nesting `depth` (for a
/// value placed inside an enclosing document), without a final newline.
pub fn indent_into(out: &mut Vec<u8>, json: &[u8], depth: usize) {
    let mut depth = depth;
    let mut i = 0;
    // After `{` or `[`: the newline waits for the first member, so that an
    // empty one stays `{}`.
    let mut pending_open = false;
    while i < json.len() {
        let b = json[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if pending_open && b != b'}' && b != b']' {
            newline(out, depth);
        }
        let was_open = std::mem::replace(&mut pending_open, false);
        match b {
            b'{' | b'[' => {
                out.push(b);
                depth += 1;
                pending_open = true;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if !was_open {
                    newline(out, depth);
                }
                out.push(b);
                i += 1;
            }
            b',' => {
                out.push(b',');
                newline(out, depth);
                i += 1;
            }
            b':' => {
                out.extend_from_slice(b": ");
                i += 1;
            }
            b'"' => i = string(out, json, i),
            _ => {
                // A number or literal: copied up to the next delimiter.
                let end = json[i..]
                    .iter()
                    .position(|&c| {
                        matches!(c, b',' | b'}' | b']' | b':') || c.is_ascii_whitespace()
                    })
                    .map_or(json.len(), |p| i + p);
                out.extend_from_slice(&json[i..end]);
                i = end;
            }
        }
    }
}

/// The whole document re-indented, with the newline `Encode` adds.
pub fn indent(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + json.len() / 4);
    indent_into(&mut out, json, 0);
    out.push(b'\n');
    out
}

fn newline(out: &mut Vec<u8>, depth: usize) {
    out.push(b'\n');
    for _ in 0..depth {
        out.extend_from_slice(b"  ");
    }
}

/// Copies the string starting at `json[start]` (a `"`), escaping as Go's
/// encoder does; returns the index after its closing quote.
fn string(out: &mut Vec<u8>, json: &[u8], start: usize) -> usize {
    out.push(b'"');
    let mut i = start + 1;
    while i < json.len() {
        match json[i] {
            b'\\' => {
                let end = (i + 2).min(json.len());
                out.extend_from_slice(&json[i..end]);
                i = end;
            }
            b'"' => {
                out.push(b'"');
                return i + 1;
            }
            b'<' => {
                out.extend_from_slice(b"\\u003c");
                i += 1;
            }
            b'>' => {
                out.extend_from_slice(b"\\u003e");
                i += 1;
            }
            b'&' => {
                out.extend_from_slice(b"\\u0026");
                i += 1;
            }
            // U+2028 and U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
            0xE2 if json.get(i + 1) == Some(&0x80)
                && matches!(json.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                out.extend_from_slice(if json[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(json: &str) -> String {
        String::from_utf8(indent(json.as_bytes())).unwrap()
    }

    #[test]
    fn indents_like_gos_encoder() {
        assert_eq!(
            text(r#"{"b":1,"a":[1, 2,{}],"c":{"d":[]},"e":"x y"}"#),
            "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    2,\n    {}\n  ],\n  \"c\": {\n    \"d\": []\n  },\n  \"e\": \"x y\"\n}\n"
        );
        assert_eq!(text("[]"), "[]\n");
        assert_eq!(text("  7 "), "7\n");
    }

    #[test]
    fn keeps_tokens_exactly() {
        let out = text(r#"{"trace_id":3895213347334635099,"f":1.50E+3,"s":"a\"b\\"}"#);
        assert!(out.contains("\"trace_id\": 3895213347334635099"), "{out}");
        assert!(out.contains("\"f\": 1.50E+3"), "{out}");
        assert!(out.contains(r#""s": "a\"b\\""#), "{out}");
    }

    #[test]
    fn escapes_html_characters_in_strings() {
        assert_eq!(
            text("\"<a href='x'>&\u{2028}\u{2029}\""),
            "\"\\u003ca href='x'\\u003e\\u0026\\u2028\\u2029\"\n"
        );
    }

    #[test]
    fn nested_placement_starts_at_the_given_depth() {
        let mut out = Vec::new();
        indent_into(&mut out, br#"{"a":1}"#, 2);
        assert_eq!(String::from_utf8(out).unwrap(), "{\n      \"a\": 1\n    }");
    }
}
