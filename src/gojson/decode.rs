//! Go's `json.Unmarshal` as the original ran it, into jaq values (see
//! [`super`] for the rules it keeps).

use super::{key_order, key_prefix, swar};
use bytes::Bytes;
use core::fmt;
use jaq_json::{Map, Val};

/// Go's `encoding/json` nesting limit (`maxNestingDepth`).
pub const MAX_DEPTH: usize = 10_000;

/// Why a record is not JSON, worded as Go's `json.Unmarshal` words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError(String);

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SyntaxError {}

impl SyntaxError {
    fn invalid(c: u8, context: &str) -> Self {
        SyntaxError(format!("invalid character {} {context}", quote_char(c)))
    }

    fn eof() -> Self {
        SyntaxError("unexpected end of JSON input".into())
    }
}

/// Go's `quoteChar`: a byte shown between single quotes, escaped as Go would.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".into(),
        b'"' => "'\"'".into(),
        // Go converts the byte to the rune of the same number.
        _ => {
            let quoted = crate::gofmt::quote(char::from(c).encode_utf8(&mut [0; 4]));
            format!("'{}'", &quoted[1..quoted.len() - 1])
        }
    }
}

/// A container being parsed; its elements so far are on the scratch stacks
/// from `start` on.
enum Frame {
    Arr {
        start: usize,
    },
    /// `key` is the key of the value being parsed.
    Obj {
        start: usize,
        key: Bytes,
    },
}

/// Stacks of unfinished containers and their elements, kept per thread and
/// reused from record to record: growing fresh vectors for every object cost
/// more than the rest of parsing.
#[derive(Default)]
struct Scratch {
    frames: Vec<Frame>,
    items: Vec<Val>,
    entries: Vec<(Bytes, Val)>,
    /// Sort order of an object's entries: key prefix and entry index.
    order: Vec<(u64, usize)>,
    /// The containers open in a value read through without building it:
    /// true for an object.
    skipped: Vec<bool>,
}

impl Scratch {
    /// Most elements a stack keeps room for between records; one huge
    /// record should not hold its memory for the rest of the session.
    const KEEP: usize = 4096;

    /// Empties the stacks (after an error they hold a partial document).
    fn reset(&mut self) {
        fn reset<T>(v: &mut Vec<T>) {
            v.clear();
            v.shrink_to(Scratch::KEEP);
        }
        reset(&mut self.frames);
        reset(&mut self.items);
        reset(&mut self.entries);
        reset(&mut self.order);
        reset(&mut self.skipped);
    }
}

thread_local! {
    static SCRATCH: core::cell::RefCell<Scratch> = core::cell::RefCell::default();
}

/// Parses one JSON value from `record`, which must hold nothing else but
/// whitespace.
///
/// Returns `Ok(None)` if the value nests deeper than `depth_limit` (when that
/// is below Go's [`MAX_DEPTH`], beyond which nesting is a syntax error), so
/// that the caller can parse it again where deep values are safe to handle.
/// The parser itself does not recurse.
///
/// Strings without escapes share `record`'s buffer instead of being copied.
pub fn parse(record: &Bytes, depth_limit: usize) -> Result<Option<Val>, SyntaxError> {
    parse_members(record, depth_limit, None)
}

/// [`parse`], keeping of a top-level object only the members named in
/// `wanted` (sorted): the others are read through with every check and
/// message of a full parse, so the outcome for a record that is not valid
/// JSON is the same, but no value is built for them. For a filter that
/// reads only those members ([`crate::jq`] works that out), the
/// result is the same as filtering the whole object. `None` keeps all.
pub fn parse_members(
    record: &Bytes,
    depth_limit: usize,
    wanted: Option<&[Box<[u8]>]>,
) -> Result<Option<Val>, SyntaxError> {
    SCRATCH.with_borrow_mut(|scratch| {
        let result = Parser {
            src: record,
            i: 0,
            range_error: None,
            depth_limit: depth_limit.min(MAX_DEPTH),
        }
        .document(scratch, wanted);
        scratch.reset();
        result
    })
}

/// Decodes `text`, which holds one JSON string and nothing else but
/// whitespace, as `json.Unmarshal` into a Go `string` does: the same escapes,
/// U+FFFD for lone surrogates and invalid UTF-8, the same error texts.
///
/// A text holding another value fails with `Unmarshal`'s type error (`json:
/// cannot unmarshal number into Go value of type string`), except `null`,
/// which `Unmarshal` takes as no change and which reads here as the empty
/// string. For an array or object that error comes without a look inside it
/// for syntax errors, which `Unmarshal` would report first.
pub fn parse_string(text: &[u8]) -> Result<String, SyntaxError> {
    let text = Bytes::copy_from_slice(text);
    let mut parser = Parser {
        src: &text,
        i: 0,
        range_error: None,
        depth_limit: 0,
    };
    if parser.next_token() != Some(b'"') {
        let kind = match parse(&text, 0)? {
            Some(Val::Null) => return Ok(String::new()),
            Some(Val::Bool(_)) => "bool",
            Some(Val::Num(_)) => "number",
            Some(_) => unreachable!("depth 0 parses only scalars, and strings are handled below"),
            None if parser.next_token() == Some(b'[') => "array",
            None => "object",
        };
        return Err(SyntaxError(format!(
            "json: cannot unmarshal {kind} into Go value of type string"
        )));
    }
    parser.i += 1;
    let decoded = parser.string()?;
    if let Some(c) = parser.next_token() {
        return Err(SyntaxError::invalid(c, "after top-level value"));
    }
    Ok(String::from_utf8(decoded.into()).expect("decoded strings are valid UTF-8"))
}

struct Parser<'a> {
    src: &'a Bytes,
    i: usize,
    /// A number too large for float64. Like `Unmarshal`, report it only when
    /// the whole record is syntactically valid.
    range_error: Option<SyntaxError>,
    depth_limit: usize,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl Parser<'_> {
    /// The byte at `i`; past the end, a space. Go's scanner feeds one space
    /// at end of input, so a literal or number cut short fails on `' '`.
    fn at(&self, i: usize) -> u8 {
        self.src.get(i).copied().unwrap_or(b' ')
    }

    /// Skips whitespace and returns the next byte, if any.
    fn next_token(&mut self) -> Option<u8> {
        while let Some(&c) = self.src.get(self.i) {
            if !is_space(c) {
                return Some(c);
            }
            self.i += 1;
        }
        None
    }

    fn document(
        mut self,
        scratch: &mut Scratch,
        wanted: Option<&[Box<[u8]>]>,
    ) -> Result<Option<Val>, SyntaxError> {
        let Scratch {
            frames,
            items,
            entries,
            order,
            skipped,
        } = scratch;
        // The member of the top-level object being read is not wanted: its
        // value is read through, not kept.
        let mut unwanted = false;
        'value: loop {
            let mut keep = true;
            let c = if std::mem::take(&mut unwanted) {
                self.skip_value(1, skipped)?;
                keep = false;
                None
            } else {
                Some(self.next_token().ok_or_else(SyntaxError::eof)?)
            };
            let mut value = match c {
                None => Val::Null,
                Some(c) => match c {
                    b'{' | b'[' => {
                        if frames.len() == MAX_DEPTH {
                            return Err(SyntaxError::invalid(c, "exceeded max depth"));
                        }
                        if frames.len() == self.depth_limit {
                            return Ok(None);
                        }
                        self.i += 1;
                        let close = if c == b'{' { b'}' } else { b']' };
                        match self.next_token() {
                            Some(n) if n == close => {
                                self.i += 1;
                                if c == b'{' {
                                    Val::obj(Map::default())
                                } else {
                                    Val::Arr(Vec::new().into())
                                }
                            }
                            _ if c == b'[' => {
                                frames.push(Frame::Arr { start: items.len() });
                                continue 'value;
                            }
                            _ => {
                                let key = match wanted.filter(|_| frames.is_empty()) {
                                    Some(wanted) => self.member_key(wanted, &mut unwanted)?,
                                    None => self.object_key()?,
                                };
                                let start = entries.len();
                                frames.push(Frame::Obj { start, key });
                                continue 'value;
                            }
                        }
                    }
                    b'"' => {
                        self.i += 1;
                        Val::TStr(Box::new(self.string()?))
                    }
                    b'-' | b'0'..=b'9' => self.number()?,
                    b't' => self.literal(b"true", Val::Bool(true))?,
                    b'f' => self.literal(b"false", Val::Bool(false))?,
                    b'n' => self.literal(b"null", Val::Null)?,
                    _ => return Err(SyntaxError::invalid(c, "looking for beginning of value")),
                },
            };
            // A value is complete: hand it to its container, closing every
            // container that ends right after it.
            loop {
                let top = frames.len() == 1;
                match frames.last_mut() {
                    None => {
                        return match self.next_token() {
                            Some(c) => Err(SyntaxError::invalid(c, "after top-level value")),
                            None => match self.range_error {
                                Some(e) => Err(e),
                                None => Ok(Some(value)),
                            },
                        };
                    }
                    Some(Frame::Arr { start }) => {
                        items.push(value);
                        match self.next_token() {
                            Some(b',') => {
                                self.i += 1;
                                continue 'value;
                            }
                            Some(b']') => {
                                self.i += 1;
                                value = Val::Arr(items.drain(*start..).collect::<Vec<_>>().into());
                                frames.pop();
                            }
                            Some(c) => return Err(SyntaxError::invalid(c, "after array element")),
                            None => return Err(SyntaxError::eof()),
                        }
                    }
                    Some(Frame::Obj { start, key }) => {
                        let member = std::mem::take(key);
                        if std::mem::replace(&mut keep, true) {
                            entries.push((member, value));
                        }
                        match self.next_token() {
                            Some(b',') => {
                                self.i += 1;
                                *key = match wanted.filter(|_| top) {
                                    Some(wanted) => self.member_key(wanted, &mut unwanted)?,
                                    None => self.object_key()?,
                                };
                                continue 'value;
                            }
                            Some(b'}') => {
                                self.i += 1;
                                value = sorted_object(entries, *start, order);
                                frames.pop();
                            }
                            Some(c) => {
                                return Err(SyntaxError::invalid(c, "after object key:value pair"));
                            }
                            None => return Err(SyntaxError::eof()),
                        }
                    }
                }
            }
        }
    }

    /// Parses `"key" :` and leaves the position at the value.
    fn object_key(&mut self) -> Result<Bytes, SyntaxError> {
        self.key_quote()?;
        let key = self.string()?;
        self.key_colon()?;
        Ok(key)
    }

    /// The opening quote of an object key.
    fn key_quote(&mut self) -> Result<(), SyntaxError> {
        match self.next_token() {
            Some(b'"') => {
                self.i += 1;
                Ok(())
            }
            Some(c) => Err(SyntaxError::invalid(
                c,
                "looking for beginning of object key string",
            )),
            None => Err(SyntaxError::eof()),
        }
    }

    /// The colon after an object key.
    fn key_colon(&mut self) -> Result<(), SyntaxError> {
        match self.next_token() {
            Some(b':') => {
                self.i += 1;
                Ok(())
            }
            Some(c) => Err(SyntaxError::invalid(c, "after object key")),
            None => Err(SyntaxError::eof()),
        }
    }

    fn literal(&mut self, word: &'static [u8], value: Val) -> Result<Val, SyntaxError> {
        let name = std::str::from_utf8(word).expect("literals are ASCII");
        for (k, &want) in word.iter().enumerate().skip(1) {
            let c = self.at(self.i + k);
            if c != want {
                let context = format!("in literal {name} (expecting '{}')", char::from(want));
                return Err(SyntaxError::invalid(c, &context));
            }
        }
        self.i += word.len();
        Ok(value)
    }

    /// Parses a number the way Go's scanner delimits it, and converts it the
    /// way gojq does: integers exact, the rest float64.
    fn number(&mut self) -> Result<Val, SyntaxError> {
        let start = self.i;
        let mut i = self.i;
        // Skips the digits at `i`.
        let digits = |i: &mut usize| {
            while self.src.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
        };
        // Skips the digits at `i`, of which there must be one at least.
        let required_digits = |i: &mut usize, context| {
            if !self.at(*i).is_ascii_digit() {
                return Err(SyntaxError::invalid(self.at(*i), context));
            }
            digits(i);
            Ok(())
        };
        if self.at(i) == b'-' {
            i += 1;
        }
        match self.at(i) {
            b'0' => i += 1,
            b'1'..=b'9' => digits(&mut i),
            c => return Err(SyntaxError::invalid(c, "in numeric literal")),
        }
        let mut integer = true;
        if self.at(i) == b'.' {
            integer = false;
            i += 1;
            required_digits(&mut i, "after decimal point in numeric literal")?;
        }
        if matches!(self.at(i), b'e' | b'E') {
            integer = false;
            i += 1;
            if matches!(self.at(i), b'+' | b'-') {
                i += 1;
            }
            required_digits(&mut i, "in exponent of numeric literal")?;
        }
        self.i = i;
        let text = std::str::from_utf8(&self.src[start..i]).expect("numbers are ASCII");
        if integer {
            if let Ok(n) = text.parse::<isize>() {
                return Ok(Val::from(n));
            }
            // Too large for a machine integer: jaq keeps it as a big integer.
            return Ok(
                <Val as jaq_core::ValT>::from_num(text).expect("jaq reads every decimal integer")
            );
        }
        let f: f64 = text
            .parse()
            .expect("Go's number grammar is a subset of Rust's");
        if f.is_infinite() && self.range_error.is_none() {
            self.range_error = Some(SyntaxError(format!(
                "json: cannot unmarshal number {text} into Go value of type float64"
            )));
        }
        Ok(Val::from(f))
    }

    /// Parses the rest of a string whose opening quote has been consumed.
    fn string(&mut self) -> Result<Bytes, SyntaxError> {
        let start = self.i;
        let (end, plain, ascii) = self.string_end()?;
        let raw = &self.src[start..end];
        if plain && (ascii || std::str::from_utf8(raw).is_ok()) {
            return Ok(self.src.slice(start..end));
        }
        Ok(Bytes::from(unescape(raw)))
    }

    /// Checks the rest of a string whose opening quote has been consumed
    /// and moves past its closing quote; returns where that quote is,
    /// whether the string has no escape and whether it is all ASCII.
    fn string_end(&mut self) -> Result<(usize, bool, bool), SyntaxError> {
        let src: &[u8] = self.src;
        let start = self.i;
        let mut i = start;
        let mut plain = true;
        let mut ascii = true;
        loop {
            // Skip eight ordinary bytes at a time; most strings are mostly that.
            while let Some(x) = swar::word_at(src, i) {
                if swar::less_than(x, 0x20) | swar::equal(x, b'"') | swar::equal(x, b'\\') != 0 {
                    break;
                }
                ascii &= x & swar::HIGH == 0;
                i += 8;
            }
            let Some(&c) = src.get(i) else {
                return Err(SyntaxError::eof());
            };
            match c {
                b'"' => break,
                b'\\' => {
                    plain = false;
                    match self.at(i + 1) {
                        b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => i += 2,
                        b'u' => {
                            for k in 2..6 {
                                let h = self.at(i + k);
                                if !h.is_ascii_hexdigit() {
                                    return Err(SyntaxError::invalid(
                                        h,
                                        r"in \u hexadecimal character escape",
                                    ));
                                }
                            }
                            i += 6;
                        }
                        e => return Err(SyntaxError::invalid(e, "in string escape code")),
                    }
                }
                0x00..=0x1f => return Err(SyntaxError::invalid(c, "in string literal")),
                _ => {
                    ascii &= c < 0x80;
                    i += 1;
                }
            }
        }
        self.i = i + 1;
        Ok((i, plain, ascii))
    }

    /// Reads one value through without building it, with the checks and
    /// messages of [`Parser::document`]; `depth` containers are open around
    /// it. Nesting needs no recursion here, so only Go's own limit applies.
    fn skip_value(&mut self, depth: usize, open: &mut Vec<bool>) -> Result<(), SyntaxError> {
        open.clear();
        'value: loop {
            let c = self.next_token().ok_or_else(SyntaxError::eof)?;
            match c {
                b'{' | b'[' => {
                    if depth + open.len() == MAX_DEPTH {
                        return Err(SyntaxError::invalid(c, "exceeded max depth"));
                    }
                    self.i += 1;
                    let close = if c == b'{' { b'}' } else { b']' };
                    match self.next_token() {
                        Some(n) if n == close => self.i += 1,
                        _ if c == b'[' => {
                            open.push(false);
                            continue 'value;
                        }
                        _ => {
                            self.skip_key()?;
                            open.push(true);
                            continue 'value;
                        }
                    }
                }
                b'"' => {
                    self.i += 1;
                    self.string_end()?;
                }
                b'-' | b'0'..=b'9' => {
                    self.number()?;
                }
                b't' => {
                    self.literal(b"true", Val::Null)?;
                }
                b'f' => {
                    self.literal(b"false", Val::Null)?;
                }
                b'n' => {
                    self.literal(b"null", Val::Null)?;
                }
                _ => return Err(SyntaxError::invalid(c, "looking for beginning of value")),
            }
            // A value is complete: close what ends after it.
            loop {
                match open.last() {
                    None => return Ok(()),
                    Some(false) => match self.next_token() {
                        Some(b',') => {
                            self.i += 1;
                            continue 'value;
                        }
                        Some(b']') => {
                            self.i += 1;
                            open.pop();
                        }
                        Some(c) => return Err(SyntaxError::invalid(c, "after array element")),
                        None => return Err(SyntaxError::eof()),
                    },
                    Some(true) => match self.next_token() {
                        Some(b',') => {
                            self.i += 1;
                            self.skip_key()?;
                            continue 'value;
                        }
                        Some(b'}') => {
                            self.i += 1;
                            open.pop();
                        }
                        Some(c) => {
                            return Err(SyntaxError::invalid(c, "after object key:value pair"));
                        }
                        None => return Err(SyntaxError::eof()),
                    },
                }
            }
        }
    }

    /// [`Parser::object_key`] of a member of the top-level object, whose
    /// value is kept only if its key is `wanted`: else `unwanted` is set and
    /// the key is not built.
    fn member_key(
        &mut self,
        wanted: &[Box<[u8]>],
        unwanted: &mut bool,
    ) -> Result<Bytes, SyntaxError> {
        let at = self.i;
        self.skip_key()?;
        let end = self.i;
        // The key's text, when it has no escape: most keys.
        let start = self.src[at..]
            .iter()
            .position(|&c| c == b'"')
            .map(|q| at + q + 1);
        if let Some(start) = start {
            let close = start
                + self.src[start..end]
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\')
                    .unwrap_or(0);
            if self.src[close] == b'"' && self.src[start..close].is_ascii() {
                let raw = &self.src[start..close];
                if wanted.iter().any(|w| **w == *raw) {
                    return Ok(self.src.slice(start..close));
                }
                *unwanted = true;
                return Ok(Bytes::new());
            }
        }
        // Escapes or non-ASCII: read it as any key.
        self.i = at;
        let key = self.object_key()?;
        *unwanted = !wanted.iter().any(|w| **w == key[..]);
        Ok(key)
    }

    /// [`Parser::object_key`] without keeping the key.
    fn skip_key(&mut self) -> Result<(), SyntaxError> {
        self.key_quote()?;
        self.string_end()?;
        self.key_colon()
    }
}

/// Decodes the body of a syntactically valid JSON string as Go's `unquote`.
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let run = memchr::memchr(b'\\', &raw[i..]).map_or(raw.len(), |p| i + p);
        push_lossy(&mut out, &raw[i..run]);
        i = run;
        if i == raw.len() {
            break;
        }
        let short = match raw[i + 1] {
            b'b' => Some(b'\x08'),
            b'f' => Some(b'\x0c'),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            c @ (b'\\' | b'/' | b'"') => Some(c),
            _ => None,
        };
        if let Some(c) = short {
            out.push(c);
            i += 2;
            continue;
        }
        let unit = hex4(&raw[i + 2..i + 6]);
        i += 6;
        let c = if (0xD800..0xE000).contains(&unit) {
            // A high surrogate followed by a low one is a pair; anything else
            // is U+FFFD, and the next escape is read on its own.
            let low = (raw.get(i..i + 2) == Some(br"\u"))
                .then(|| raw.get(i + 2..i + 6).map(hex4))
                .flatten();
            match low {
                Some(low) if unit < 0xDC00 && (0xDC00..0xE000).contains(&low) => {
                    i += 6;
                    char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                }
                _ => None,
            }
        } else {
            char::from_u32(unit)
        };
        let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    }
    out
}

/// The value of four hex digits; anything else yields a value above U+FFFF,
/// which the caller then treats as no surrogate.
fn hex4(h: &[u8]) -> u32 {
    h.iter()
        .try_fold(0u32, |acc, &c| {
            char::from(c).to_digit(16).map(|d| acc * 16 + d)
        })
        .unwrap_or(u32::MAX)
}

/// Appends `bytes` with each byte of every invalid UTF-8 sequence replaced by
/// U+FFFD: Go's `utf8.DecodeRune` reports such bytes one at a time.
fn push_lossy(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        out.extend_from_slice(chunk.valid().as_bytes());
        for _ in chunk.invalid() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
}

/// Builds an object of `entries[start..]` (which it removes) with its keys
/// in bytewise order, the last of duplicate keys winning (Go's map
/// semantics). `order` is scratch space.
fn sorted_object(
    entries: &mut Vec<(Bytes, Val)>,
    start: usize,
    order: &mut Vec<(u64, usize)>,
) -> Val {
    let object = &mut entries[start..];
    let mut map = Map::with_capacity_and_hasher(object.len(), Default::default());
    if object.is_sorted_by(|a, b| key_order(&a.0, &b.0).is_lt()) {
        for (k, v) in entries.drain(start..) {
            map.insert(Val::TStr(Box::new(k)), v);
        }
        return Val::obj(map);
    }
    // Sort small (prefix, index) pairs rather than the entries themselves;
    // equal keys keep their input order, so the last one is inserted last.
    order.clear();
    order.extend(
        object
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (key_prefix(k), i)),
    );
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| object[a.1].0.cmp(&object[b.1].0))
            .then(a.1.cmp(&b.1))
    });
    for &(_, i) in order.iter() {
        let (k, v) = std::mem::take(&mut object[i]);
        map.insert(Val::TStr(Box::new(k)), v);
    }
    entries.truncate(start);
    Val::obj(map)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Parses `s` at Go's depth limit, the error as its text.
    pub(in crate::gojson) fn parse_str(s: &[u8]) -> Result<Val, String> {
        parse(&Bytes::copy_from_slice(s), MAX_DEPTH)
            .map(|v| v.expect("no depth limit below Go's"))
            .map_err(|e| e.to_string())
    }

    // Every expected text below is what Go's json.Unmarshal produces for the
    // same input, as run by the original's code; numbers as gojq reads them.

    #[test]
    fn syntax_errors_are_worded_as_go_words_them() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "unexpected end of JSON input"),
            (b"  ", "unexpected end of JSON input"),
            (
                b"nul",
                "invalid character ' ' in literal null (expecting 'l')",
            ),
            (
                b"nulx",
                "invalid character 'x' in literal null (expecting 'l')",
            ),
            (
                b"tru",
                "invalid character ' ' in literal true (expecting 'e')",
            ),
            (
                b"fals",
                "invalid character ' ' in literal false (expecting 'e')",
            ),
            (b"truex", "invalid character 'x' after top-level value"),
            (
                b"{\"a\":1} x",
                "invalid character 'x' after top-level value",
            ),
            (b"[1,2", "unexpected end of JSON input"),
            (
                b"[1,2,]",
                "invalid character ']' looking for beginning of value",
            ),
            (b"[1 2]", "invalid character '2' after array element"),
            (b"{\"a\" 1}", "invalid character '1' after object key"),
            (
                b"{\"a\":1,}",
                "invalid character '}' looking for beginning of object key string",
            ),
            (
                b"{a:1}",
                "invalid character 'a' looking for beginning of object key string",
            ),
            (
                b"{\"a\":1 \"b\":2}",
                "invalid character '\"' after object key:value pair",
            ),
            (b"\"abc", "unexpected end of JSON input"),
            (b"\"a\\x\"", "invalid character 'x' in string escape code"),
            (
                b"\"a\\u12\"",
                r#"invalid character '"' in \u hexadecimal character escape"#,
            ),
            (b"\"a\tb\"", r"invalid character '\t' in string literal"),
            (b"\"\x01\"", r"invalid character '\x01' in string literal"),
            (b"-", "invalid character ' ' in numeric literal"),
            (b"-a", "invalid character 'a' in numeric literal"),
            (b"01", "invalid character '1' after top-level value"),
            (
                b"1.",
                "invalid character ' ' after decimal point in numeric literal",
            ),
            (
                b"1.e5",
                "invalid character 'e' after decimal point in numeric literal",
            ),
            (
                b"1e+",
                "invalid character ' ' in exponent of numeric literal",
            ),
            (
                b"1ex",
                "invalid character 'x' in exponent of numeric literal",
            ),
            (
                b".5",
                "invalid character '.' looking for beginning of value",
            ),
            (
                b"+1",
                "invalid character '+' looking for beginning of value",
            ),
            (
                b"NaN",
                "invalid character 'N' looking for beginning of value",
            ),
            (
                b"# comment",
                "invalid character '#' looking for beginning of value",
            ),
            (
                b"'a'",
                r"invalid character '\'' looking for beginning of value",
            ),
            (
                b"[1,\x7f]",
                r"invalid character '\x7f' looking for beginning of value",
            ),
            (
                b"\xff",
                "invalid character 'ÿ' looking for beginning of value",
            ),
            (
                b"[1,\xc3\xa9]",
                "invalid character 'Ã' looking for beginning of value",
            ),
            (
                b"{\"a\":\"\\",
                "invalid character ' ' in string escape code",
            ),
            (b"{\"a\":1}}", "invalid character '}' after top-level value"),
            (
                b"{\"a\":1e400}",
                "json: cannot unmarshal number 1e400 into Go value of type float64",
            ),
            // A syntax error anywhere wins over a number out of range.
            (
                b"[-1e400, x]",
                "invalid character 'x' looking for beginning of value",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_str(input).unwrap_err(),
                *want,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn parse_string_decodes_one_string_as_unmarshal_into_a_go_string() {
        assert_eq!(
            parse_string(br#" "a\u00e9\"\ud83d\ude00\ud800\/" "#),
            Ok("a\u{e9}\"\u{1f600}\u{fffd}/".to_owned())
        );
        assert_eq!(parse_string(b"\"\xffok\""), Ok("\u{fffd}ok".to_owned()));
        assert_eq!(parse_string(b"null"), Ok(String::new()));
        for (input, want) in [
            (
                &br#""a"x"#[..],
                "invalid character 'x' after top-level value",
            ),
            (
                br#""a" "b""#,
                "invalid character '\"' after top-level value",
            ),
            (br#""\q""#, "invalid character 'q' in string escape code"),
            (
                br#""\u12g4""#,
                r"invalid character 'g' in \u hexadecimal character escape",
            ),
            (
                br#""\u12"#,
                r"invalid character ' ' in \u hexadecimal character escape",
            ),
            (b"\"\t\"", r"invalid character '\t' in string literal"),
            (b"\"abc", "unexpected end of JSON input"),
            (b"", "unexpected end of JSON input"),
            (
                b"12",
                "json: cannot unmarshal number into Go value of type string",
            ),
            (
                b"true",
                "json: cannot unmarshal bool into Go value of type string",
            ),
            (
                b"[1]",
                "json: cannot unmarshal array into Go value of type string",
            ),
            (
                b" {}",
                "json: cannot unmarshal object into Go value of type string",
            ),
            (
                b"nul",
                "invalid character ' ' in literal null (expecting 'l')",
            ),
            (b"12 x", "invalid character 'x' after top-level value"),
        ] {
            assert_eq!(
                parse_string(input).unwrap_err().to_string(),
                want,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn nesting_is_limited_as_in_go() {
        let nested = |n| format!("{}{}", "[".repeat(n), "]".repeat(n));
        // Dropping 10000 levels recurses deeper than a test thread's stack.
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || assert!(parse_str(nested(10_000).as_bytes()).is_ok()))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(
            parse_str(nested(10_001).as_bytes()).unwrap_err(),
            "invalid character '[' exceeded max depth"
        );
        // Below the caller's limit the parser gives up without an error.
        let record = Bytes::from(nested(5));
        assert!(parse(&record, 4).unwrap().is_none());
        assert!(parse(&record, 5).unwrap().is_some());
    }

    #[test]
    fn a_huge_record_leaves_no_huge_scratch_behind() {
        let members: Vec<String> = (0..20_000).map(|i| format!("\"k{i}\":[{i}]")).collect();
        let record = Bytes::from(format!("{{{}}}", members.join(",")));
        assert!(parse(&record, MAX_DEPTH).unwrap().is_some());
        SCRATCH.with_borrow(|s| {
            assert!(s.entries.capacity() <= Scratch::KEEP);
            assert!(s.order.capacity() <= Scratch::KEEP);
            assert!(s.items.capacity() <= Scratch::KEEP);
        });
    }

    #[test]
    fn strings_without_escapes_share_the_record() {
        let record = Bytes::from_static(br#"{"k":"value"}"#);
        let Val::Obj(map) = parse(&record, MAX_DEPTH).unwrap().unwrap() else {
            panic!("an object")
        };
        let Some(Val::TStr(s)) = map.values().next() else {
            panic!("a string")
        };
        assert_eq!(&s[..], b"value");
        assert!(record.as_ptr_range().contains(&s.as_ptr()));
    }
}
