//! Go's formatting of strings and durations, for the texts the original
//! printed with them: `%q` in `skipping ... for filter "<expr>"` and
//! `invalid PID "x"`, `time.Duration` in `did not exit within 1m30s`.
//! Reading durations (Go's syntax and more) is [`crate::time`]'s.
//!
//! Rust's `{:?}` differs from Go's `%q` on control characters (`\u{1}` where
//! Go writes `\x01`), and a friendly duration is written its own way
//! (`1m 30s`).

use std::time::Duration;

/// Quotes `s` as Go's `strconv.Quote` (and `fmt`'s `%q`) do.
///
/// `"` and `\` are backslashed; printable characters stay as they are; the
/// rest become `\a \b \f \n \r \t \v`, `\xNN` below U+0020 and for DEL,
/// `\uNNNN` or `\UNNNNNNNN` above. Printable is Go's `unicode.IsPrint`, here
/// approximated without Unicode tables: control, format, separator and
/// private-use characters are escaped, unassigned code points are not.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if is_print(c) => out.push(c),
            '\x07' => out.push_str(r"\a"),
            '\x08' => out.push_str(r"\b"),
            '\x0c' => out.push_str(r"\f"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            '\x0b' => out.push_str(r"\v"),
            c if c < ' ' || c == '\x7f' => out.push_str(&format!(r"\x{:02x}", u32::from(c))),
            c if u32::from(c) < 0x10000 => out.push_str(&format!(r"\u{:04x}", u32::from(c))),
            c => out.push_str(&format!(r"\U{:08x}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// Formats `d` as Go's `time.Duration.String` does: `0s`, `1.5s`, `1m30s`,
/// `1h0m0s`, `250ms`, `1.5µs`, `42ns`.
pub fn duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    // Below a second: one unit, with a fraction.
    let (unit_nanos, unit) = match nanos {
        0..1_000 => return format!("{nanos}ns"),
        1_000..1_000_000 => (1_000, "µs"),
        1_000_000..1_000_000_000 => (1_000_000, "ms"),
        _ => (1_000_000_000, "s"),
    };
    let whole = nanos / unit_nanos;
    let frac = fraction(nanos % unit_nanos, unit_nanos);
    if unit != "s" {
        return format!("{whole}{frac}{unit}");
    }
    let (hours, minutes, seconds) = (whole / 3600, whole / 60 % 60, whole % 60);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}{frac}s"),
        (0, _) => format!("{minutes}m{seconds}{frac}s"),
        _ => format!("{hours}h{minutes}m{seconds}{frac}s"),
    }
}

/// `.` and the digits of `part / whole` without trailing zeros, or nothing.
fn fraction(part: u128, whole: u128) -> String {
    if part == 0 {
        return String::new();
    }
    let digits = whole.ilog10() as usize;
    let text = format!("{part:0digits$}");
    format!(".{}", text.trim_end_matches('0'))
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and
/// the ASCII space.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    // Cc, and the separators Zs, Zl, Zp.
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    // Format characters (Cf) and private use (Co).
    !matches!(
        u32::from(c),
        0x00ad
            | 0x0600..=0x0605
            | 0x061c
            | 0x06dd
            | 0x070f
            | 0x0890..=0x0891
            | 0x08e2
            | 0x180e
            | 0x200b..=0x200f
            | 0x202a..=0x202e
            | 0x2060..=0x2064
            | 0x2066..=0x206f
            | 0xe000..=0xf8ff
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
            | 0xf0000..=0x10ffff
    )
}

#[cfg(test)]
mod tests {
    use super::{duration, quote};
    use std::time::Duration;

    #[test]
    fn durations_read_as_go_prints_them() {
        // Expected values are what Go's time.Duration.String returns.
        let ms = Duration::from_millis;
        for (d, want) in [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(15), "15s"),
            (ms(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (ms(2 * 3600 * 1000 + 30 * 60 * 1000 + 500), "2h30m0.5s"),
            (ms(250), "250ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(1500), "1.5µs"),
            (Duration::from_nanos(42), "42ns"),
            (Duration::new(1, 1), "1.000000001s"),
        ] {
            assert_eq!(duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn quotes_like_go_strconv_quote() {
        // Expected values are what Go's strconv.Quote returns.
        assert_eq!(quote(".request.id"), r#"".request.id""#);
        assert_eq!(
            quote(r#"select(.a == "x\y")"#),
            r#""select(.a == \"x\\y\")""#
        );
        assert_eq!(quote("a\tb\nc\x07\x0b"), r#""a\tb\nc\a\v""#);
        assert_eq!(quote("\x01\x1f\x7f"), r#""\x01\x1f\x7f""#);
        assert_eq!(quote("é ü 日本 😀"), "\"é ü 日本 😀\"");
        assert_eq!(quote("\u{a0}\u{2028}\u{feff}"), r#""\u00a0\u2028\ufeff""#);
        assert_eq!(quote("\u{85}"), r#""\u0085""#);
        assert_eq!(quote("\u{f0000}"), r#""\U000f0000""#);
        assert_eq!(quote(""), r#""""#);
    }
}
