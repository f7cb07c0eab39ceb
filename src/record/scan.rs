//! The fast path of reading a JSON record: one pass over its bytes that
//! checks the whole text is JSON and notes where the top-level members the
//! record view reads are, without building any value or copying anything.
//!
//! It is exact by construction rather than by imitation: it accepts a
//! record only when it is sure that serde_json (the slow path, which also
//! words the errors users see) would accept it and read the same members.
//! Anything unusual (a syntax error, invalid UTF-8, a probed member given
//! twice, an escaped top-level key, a `\u` escape of a surrogate, nesting
//! deeper than [`MAX_DEPTH`]) makes it give up ([`scan`] returns `None`),
//! and the caller reads the record the slow way.

use std::ops::Range;

/// Deeper than this, the slow path decides (serde_json stops at 128).
const MAX_DEPTH: usize = 100;

/// The probed members' values, as byte ranges of the scanned text (a
/// string's range includes its quotes).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Members {
    pub event_ts: Option<Range<usize>>,
    pub ts: Option<Range<usize>>,
    pub kind: Option<Range<usize>>,
    pub event_class_id: Option<Range<usize>>,
    pub name: Option<Range<usize>>,
    pub sig: Option<Range<usize>>,
    pub signature: Option<Range<usize>>,
    pub authentication_type: Option<Range<usize>>,
    pub portal_id: Option<Range<usize>>,
    pub event: Option<Range<usize>>,
}

impl Members {
    /// The slot of a top-level key, if it is probed.
    fn slot(&mut self, key: &[u8]) -> Option<&mut Option<Range<usize>>> {
        Some(match key {
            b"event_ts" => &mut self.event_ts,
            b"ts" => &mut self.ts,
            b"type" => &mut self.kind,
            b"event_class_id" => &mut self.event_class_id,
            b"name" => &mut self.name,
            b"sig" => &mut self.sig,
            b"signature" => &mut self.signature,
            b"authentication_type" => &mut self.authentication_type,
            b"portal_id" => &mut self.portal_id,
            b"event" => &mut self.event,
            _ => return None,
        })
    }
}

/// Scans `text`, which must start with `{` and have no surrounding
/// whitespace. `None`: read it the slow way.
pub(crate) fn scan(text: &[u8]) -> Option<Members> {
    // Most records are printable ASCII throughout: then a string ends at
    // its next quote or backslash, found with memchr. Others must be UTF-8
    // for the member ranges to be strings serde_json would take, and their
    // strings are checked byte by byte for control characters.
    let plain = printable(text);
    if !plain && !text.is_ascii() && std::str::from_utf8(text).is_err() {
        return None;
    }
    let mut s = Scanner { text, i: 0, plain };
    let mut members = Members::default();
    s.expect(b'{')?;
    s.space();
    if s.peek()? == b'}' {
        s.i += 1;
        return s.at_end().then_some(members);
    }
    loop {
        s.space();
        s.expect(b'"')?;
        let key_start = s.i;
        let escaped = s.string()?;
        let key = &text[key_start..s.i - 1];
        s.space();
        s.expect(b':')?;
        s.space();
        let value_start = s.i;
        s.value()?;
        if let Some(slot) = members.slot(key) {
            // serde_json refuses a repeated member that it reads; the slow
            // path reads such a record whole.
            if slot.is_some() {
                return None;
            }
            *slot = Some(value_start..s.i);
        } else if escaped {
            // An escaped key may spell a probed one.
            return None;
        }
        s.space();
        match s.next()? {
            b',' => continue,
            b'}' => return s.at_end().then_some(members),
            _ => return None,
        }
    }
}

/// Whether some byte of `x` ends a run of ordinary string bytes: a quote,
/// a backslash or a control character (SWAR, as in `gojson`'s string scan).
fn special(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let equal = |x: u64, b: u8| below(x ^ (ONES * u64::from(b)), 1);
    below(x, 0x20) | equal(x, b'"') | equal(x, b'\\') != 0
}

struct Scanner<'a> {
    text: &'a [u8],
    i: usize,
    /// Every byte is printable ASCII (0x20 to 0x7e).
    plain: bool,
}

/// Whether every byte of `text` is printable ASCII (no control character,
/// no DEL, nothing above 0x7f), eight at a time.
fn printable(text: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let (words, rest) = text.as_chunks::<8>();
    let mut bad = 0u64;
    for w in words {
        let x = u64::from_le_bytes(*w);
        // High bit set, or below 0x20, or 0x7f (DEL, which +1 carries).
        bad |= x | (x.wrapping_sub(ONES * 0x20) & !x) | x.wrapping_add(ONES);
    }
    bad & HIGH == 0 && rest.iter().all(|&b| (0x20..0x7f).contains(&b))
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    fn at_end(&mut self) -> bool {
        self.space();
        self.i == self.text.len()
    }

    /// Skips a string whose opening quote was consumed; returns whether it
    /// held an escape.
    fn string(&mut self) -> Option<bool> {
        let mut escaped = false;
        loop {
            if self.plain {
                // No control character anywhere: only a quote or a
                // backslash ends the run.
                let rest = &self.text[self.i..];
                self.i += memchr::memchr2(b'"', b'\\', rest)?;
                match self.next()? {
                    b'"' => return Some(escaped),
                    _ => {
                        escaped = true;
                        self.escape()?;
                        continue;
                    }
                }
            }
            let rest = &self.text[self.i..];
            // Ordinary bytes eight at a time.
            let mut k = 0;
            while let Some(word) = rest.get(k..k + 8) {
                let x = u64::from_le_bytes(word.try_into().expect("eight bytes"));
                if special(x) {
                    break;
                }
                k += 8;
            }
            self.i += k;
            match self.next()? {
                b'"' => return Some(escaped),
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                0x00..=0x1f => return None,
                _ => {}
            }
        }
    }

    /// Checks an escape whose backslash was consumed.
    fn escape(&mut self) -> Option<()> {
        match self.next()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(()),
            b'u' => {
                let hex = self.text.get(self.i..self.i + 4)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) || matches!(hex[0], b'd' | b'D') {
                    // Surrogates: left to serde_json's rules.
                    return None;
                }
                self.i += 4;
                Some(())
            }
            _ => None,
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        // `01`, `1x`: let serde_json say what is wrong.
        match self.peek() {
            Some(b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'.' | b'+' | b'-') => None,
            _ => Some(()),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.text.get(self.i..self.i + word.len())? != word {
            return None;
        }
        self.i += word.len();
        Some(())
    }

    /// Skips one value (the scanner is at its first byte), nested values
    /// without recursion.
    fn value(&mut self) -> Option<()> {
        // What each open container is: true for an object.
        let mut open: Vec<bool> = Vec::new();
        loop {
            // A value starts here.
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    self.string()?;
                }
                b'-' | b'0'..=b'9' => self.number()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                c @ (b'{' | b'[') => {
                    self.i += 1;
                    if open.len() == MAX_DEPTH {
                        return None;
                    }
                    let object = c == b'{';
                    self.space();
                    let close = if object { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.i += 1;
                    } else {
                        open.push(object);
                        if object {
                            self.key()?;
                        }
                        continue;
                    }
                }
                _ => return None,
            }
            // A value ended: close what ends after it.
            loop {
                let Some(&object) = open.last() else {
                    return Some(());
                };
                self.space();
                match self.next()? {
                    b',' => {
                        self.space();
                        if object {
                            self.key()?;
                        }
                        break;
                    }
                    b'}' if object => {
                        open.pop();
                    }
                    b']' if !object => {
                        open.pop();
                    }
                    _ => return None,
                }
            }
        }
    }

    /// Skips `"key" :` and the space before the value.
    fn key(&mut self) -> Option<()> {
        self.space();
        self.expect(b'"')?;
        self.string()?;
        self.space();
        self.expect(b':')?;
        self.space();
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str) -> Option<Vec<(&'static str, String)>> {
        let m = scan(text.as_bytes())?;
        let s = |r: &Option<Range<usize>>| r.clone().map(|r| text[r].to_owned());
        let all = [
            ("event_ts", s(&m.event_ts)),
            ("ts", s(&m.ts)),
            ("type", s(&m.kind)),
            ("event_class_id", s(&m.event_class_id)),
            ("name", s(&m.name)),
            ("sig", s(&m.sig)),
            ("signature", s(&m.signature)),
            ("authentication_type", s(&m.authentication_type)),
            ("portal_id", s(&m.portal_id)),
            ("event", s(&m.event)),
        ];
        Some(
            all.into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect(),
        )
    }

    #[test]
    fn finds_the_probed_members_and_skips_the_rest() {
        let got = spans(
            r#"{"a":[1,{"b":"x\"y"},[]],"event_ts":"2026-01-01T00:00:00Z" , "n":-1.5e+3,"sig":"s","event":{"x":null},"t":true}"#,
        )
        .unwrap();
        assert_eq!(
            got,
            [
                ("event_ts", r#""2026-01-01T00:00:00Z""#.to_owned()),
                ("sig", r#""s""#.to_owned()),
                ("event", r#"{"x":null}"#.to_owned()),
            ]
        );
        assert_eq!(spans("{}").unwrap(), []);
        assert_eq!(spans(r#"{"name":5}"#).unwrap(), [("name", "5".to_owned())]);
    }

    #[test]
    fn gives_up_on_anything_unusual() {
        for text in [
            r#"{"a":1"#,
            r#"{"a":1}x"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":{"b"}}"#,
            r#"{"a":"\x"}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a":"\ud800"}"#,
            r#"{"sig":"a","sig":"b"}"#,
            r#"{"\u0073ig":"a"}"#,
            r#"{"a":1,}"#,
            r#"{,}"#,
        ] {
            assert_eq!(scan(text.as_bytes()), None, "{text}");
        }
        assert_eq!(scan(b"{\"a\":\"\xff\"}"), None);
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert_eq!(scan(deep.as_bytes()), None);
        // Escapes in values are fine; an escaped key may spell a probed one.
        assert!(scan(br#"{"x":"\u00e9\n","a":"\"\\\/\b\f\r\t"}"#).is_some());
        assert_eq!(scan(br#"{"x\n":1}"#), None);
    }
}
