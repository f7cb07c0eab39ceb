//! Go's `json.Marshal` as the original printed each result (see [`super`]
//! for the rules it keeps).

use super::{key_order, swar};
use core::fmt;
use jaq_json::{Num, Val};
use std::io::Write as _;

/// Why a filter result cannot be written as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// NaN or an infinity; `json.Marshal` refuses them, so did the original.
    /// Holds Go's message, e.g. `json: unsupported value: +Inf`.
    Unsupported(String),
    /// An object key that is not a string. jaq can build `{(1): 2}`, gojq
    /// cannot; holds gojq's message for it.
    Key(String),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Unsupported(m) | EncodeError::Key(m) => f.write_str(m),
        }
    }
}

/// Appends `v` to `out` as `json.Marshal` would write it.
pub fn write(out: &mut Vec<u8>, v: &Val) -> Result<(), EncodeError> {
    match v {
        Val::Null => out.extend_from_slice(b"null"),
        Val::Bool(true) => out.extend_from_slice(b"true"),
        Val::Bool(false) => out.extend_from_slice(b"false"),
        Val::Num(n) => write_num(out, n)?,
        Val::TStr(s) | Val::BStr(s) => write_str(out, s),
        Val::Arr(items) => {
            out.push(b'[');
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                write(out, item)?;
            }
            out.push(b']');
        }
        Val::Obj(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (k, v) in map.iter() {
                match k {
                    Val::TStr(s) | Val::BStr(s) => entries.push((&s[..], v)),
                    _ => {
                        return Err(EncodeError::Key(format!(
                            "expected a string for object key but got: {} ({k})",
                            type_name(k)
                        )));
                    }
                }
            }
            if !entries.is_sorted_by(|a, b| key_order(a.0, b.0).is_le()) {
                entries.sort_unstable_by(|a, b| key_order(a.0, b.0));
            }
            out.push(b'{');
            for (k, (key, value)) in entries.into_iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write(out, value)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// gojq's name for the type of a value.
fn type_name(v: &Val) -> &'static str {
    match v {
        Val::Null => "null",
        Val::Bool(_) => "boolean",
        Val::Num(_) => "number",
        Val::TStr(_) | Val::BStr(_) => "string",
        Val::Arr(_) => "array",
        Val::Obj(_) => "object",
    }
}

fn write_num(out: &mut Vec<u8>, n: &Num) -> Result<(), EncodeError> {
    match n {
        Num::Int(i) => write!(out, "{i}").expect("writing to a Vec cannot fail"),
        Num::BigInt(i) => write!(out, "{i}").expect("writing to a Vec cannot fail"),
        Num::Float(f) => write_float(out, *f)?,
        // A number literal of the filter, such as `1.50`; gojq reads it as a
        // float64 like any other non-integer.
        Num::Dec(d) => write_float(out, d.parse().unwrap_or(f64::NAN))?,
    }
    Ok(())
}

/// Go's float encoder: `strconv.FormatFloat(f, 'f', -1, 64)`, or the `'e'`
/// form below 1e-6 and from 1e21 on, with a one-digit exponent kept short
/// (`1e-7`, not `1e-07`).
fn write_float(out: &mut Vec<u8>, f: f64) -> Result<(), EncodeError> {
    if !f.is_finite() {
        let s = if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        };
        return Err(EncodeError::Unsupported(format!(
            "json: unsupported value: {s}"
        )));
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust's `{:e}` and Go's 'e' pick the same shortest digits; Go signs
        // positive exponents.
        let start = out.len();
        write!(out, "{f:e}").expect("writing to a Vec cannot fail");
        let e = start
            + out[start..]
                .iter()
                .position(|&c| c == b'e')
                .expect("{:e} writes an exponent");
        if out.get(e + 1) != Some(&b'-') {
            out.insert(e + 1, b'+');
        }
    } else {
        // Rust's `{}` is the shortest round-trip form without exponent, as
        // Go's 'f' with precision -1.
        write!(out, "{f}").expect("writing to a Vec cannot fail");
    }
    Ok(())
}

/// Go's `appendString` with HTML escaping on, as `json.Marshal` uses it:
/// `"`, `\`, control characters, `<`, `>`, `&`, U+2028 and U+2029 escaped,
/// and each byte that is not part of valid UTF-8 written as `\ufffd`.
pub fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        // Copy runs of bytes that need no care eight at a time.
        while let Some(x) = swar::word_at(s, i) {
            let care = swar::less_than(x, 0x20)
                | swar::equal(x, b'"')
                | swar::equal(x, b'\\')
                | swar::equal(x, b'<')
                | swar::equal(x, b'>')
                | swar::equal(x, b'&')
                | (x & swar::HIGH);
            if care != 0 {
                break;
            }
            i += 8;
        }
        let Some(&c) = s.get(i) else { break };
        let (escape, len): (&[u8], usize) = match c {
            b'\\' => (br"\\", 1),
            b'"' => (b"\\\"", 1),
            b'\x08' => (br"\b", 1),
            b'\x0c' => (br"\f", 1),
            b'\n' => (br"\n", 1),
            b'\r' => (br"\r", 1),
            b'\t' => (br"\t", 1),
            0x00..=0x1f | b'<' | b'>' | b'&' => (
                &[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 0xf)],
                ],
                1,
            ),
            0x00..=0x7f => {
                i += 1;
                continue;
            }
            _ => match utf8_len(&s[i..]) {
                // Line and paragraph separators end lines in JavaScript.
                Some(3) if s[i..i + 3] == *"\u{2028}".as_bytes() => (br"\u2028", 3),
                Some(3) if s[i..i + 3] == *"\u{2029}".as_bytes() => (br"\u2029", 3),
                Some(n) => {
                    i += n;
                    continue;
                }
                None => (br"\ufffd", 1),
            },
        };
        out.extend_from_slice(&s[start..i]);
        out.extend_from_slice(escape);
        i += len;
        start = i;
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// The length of the UTF-8 character that `s` starts with, if it is valid.
fn utf8_len(s: &[u8]) -> Option<usize> {
    let n = match s[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    std::str::from_utf8(s.get(..n)?).ok().map(|_| n)
}
