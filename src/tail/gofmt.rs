//! Go's `%q` quoting, for the messages the original printed with it
//! (`skipping ... for filter "<expr>"`, `invalid PID "x"`).
//!
//! Rust's `{:?}` differs from Go's `%q` on control characters (`\u{1}` where
//! Go writes `\x01`), so the original's texts need this.

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
    use super::quote;

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
