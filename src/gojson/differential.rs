//! gojson's parser against serde_json on generated input: the same
//! documents accepted and refused, and the same values where both accept, so
//! that its JSON grammar is checked against an independent parser rather
//! than assumed.
//!
//! Values are compared in a common form ([`Norm`]): integers as exact
//! decimal text (serde_json's own text of the number when it is too large
//! for a machine integer), floats by their bits. Where Go (and gojq, whose
//! reading of numbers gojson follows) knowingly differs from serde_json, the
//! generated input carries an equivalent that serde_json reads as Go reads
//! the original, and the test checks that serde_json refuses the original
//! for that reason and no other:
//!
//! - a lone UTF-16 surrogate escape is U+FFFD in Go, an error in serde_json;
//! - each byte of invalid UTF-8 in a string is U+FFFD in Go, an error in
//!   serde_json;
//! - `-0` is the integer 0 in gojq, the float -0.0 in serde_json;
//! - an integer beyond float64's range is exact in gojq, "number out of
//!   range" in serde_json;
//! - Go refuses nesting deeper than 10000 levels, serde_json stops at 128
//!   unless told otherwise (the judge here is told otherwise).
//!
//! Duplicate object keys are not among them: Go's maps and serde_json's
//! `Value` both keep the last, so generated objects repeat keys freely.

use super::{MAX_DEPTH, parse};
use bytes::Bytes;
use jaq_json::{Num, Val};
use proptest::prelude::*;
use proptest::sample::Index;
use serde::Deserialize as _;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// A parsed value in a form both parsers' results convert to.
#[derive(Debug, Clone, PartialEq)]
enum Norm {
    Null,
    Bool(bool),
    /// Exact decimal text.
    Int(String),
    /// The bits of a float64, so that 0 and -0 differ.
    Float(u64),
    Str(Vec<u8>),
    Arr(Vec<Norm>),
    Obj(BTreeMap<Vec<u8>, Norm>),
}

fn from_gojson(v: &Val) -> Norm {
    match v {
        Val::Null => Norm::Null,
        Val::Bool(b) => Norm::Bool(*b),
        Val::Num(Num::Int(i)) => Norm::Int(i.to_string()),
        Val::Num(Num::BigInt(i)) => Norm::Int(i.to_string()),
        Val::Num(Num::Float(f)) => Norm::Float(f.to_bits()),
        Val::Num(n @ Num::Dec(_)) => panic!("gojson read a number as a decimal: {n:?}"),
        Val::TStr(s) => Norm::Str(s.to_vec()),
        Val::BStr(s) => panic!("gojson read a byte string: {s:?}"),
        Val::Arr(items) => Norm::Arr(items.iter().map(from_gojson).collect()),
        Val::Obj(map) => Norm::Obj(
            map.iter()
                .map(|(k, v)| match k {
                    Val::TStr(k) => (k.to_vec(), from_gojson(v)),
                    k => panic!("gojson read a key that is not a string: {k:?}"),
                })
                .collect(),
        ),
    }
}

/// serde_json's reading of a value it has accepted.
fn from_serde(raw: &RawValue) -> Norm {
    let text = raw.get();
    let read = "serde_json reads again what it accepted";
    match text.as_bytes()[0] {
        b'n' => Norm::Null,
        b't' => Norm::Bool(true),
        b'f' => Norm::Bool(false),
        b'"' => Norm::Str(
            serde_json::from_str::<String>(text)
                .expect(read)
                .into_bytes(),
        ),
        b'[' => Norm::Arr(
            serde_json::from_str::<Vec<&RawValue>>(text)
                .expect(read)
                .into_iter()
                .map(from_serde)
                .collect(),
        ),
        // Of duplicate keys the last wins, as in Go.
        b'{' => Norm::Obj(
            serde_json::from_str::<BTreeMap<String, &RawValue>>(text)
                .expect(read)
                .into_iter()
                .map(|(k, v)| (k.into_bytes(), from_serde(v)))
                .collect(),
        ),
        _ if text.contains(['.', 'e', 'E']) => {
            Norm::Float(serde_json::from_str::<f64>(text).expect(read).to_bits())
        }
        // Known difference: gojq reads `-0` as the integer 0, serde_json as
        // the float -0.0.
        _ if text == "-0" => Norm::Int("0".into()),
        _ => {
            let n: serde_json::Number = serde_json::from_str(text).expect(read);
            match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Norm::Int(i.to_string()),
                (_, Some(u)) => Norm::Int(u.to_string()),
                // Beyond 64 bits serde_json keeps only a float; the digits
                // it validated are the exact value.
                _ => Norm::Int(text.to_owned()),
            }
        }
    }
}

/// serde_json's verdict on `input` as one JSON value, with no nesting limit
/// of its own (Go's is checked apart, in
/// [`nesting_limits_differ_as_expected`]).
fn serde_verdict(input: &[u8]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(input);
    de.disable_recursion_limit();
    serde_json::Value::deserialize(&mut de)?;
    de.end()
}

fn gojson_verdict(input: &[u8]) -> Result<Val, String> {
    parse(&Bytes::copy_from_slice(input), MAX_DEPTH)
        .map(|v| v.expect("no limit below Go's"))
        .map_err(|e| e.to_string())
}

/// serde_json's errors for what Go reads as U+FFFD: a lone surrogate escape
/// and invalid UTF-8 in a string.
fn is_replacement_difference(e: &serde_json::Error) -> bool {
    let m = e.to_string();
    [
        "lone leading surrogate in hex escape",
        "unexpected end of hex escape",
        "invalid unicode code point",
    ]
    .iter()
    .any(|known| m.starts_with(known))
}

/// Checks gojson on `input` against serde_json on `equivalent`, which reads
/// as Go reads `input`; when they differ, serde_json must refuse `input`
/// itself for a known difference.
fn check_equivalent(input: &[u8], equivalent: &[u8]) -> Result<(), TestCaseError> {
    let ours = gojson_verdict(input);
    let theirs = serde_verdict(equivalent);
    prop_assert_eq!(
        ours.is_ok(),
        theirs.is_ok(),
        "gojson {:?}, serde_json {:?}",
        ours.as_ref().err(),
        theirs.as_ref().err()
    );
    if input != equivalent {
        let e =
            serde_verdict(input).expect_err("the equivalent stands for input serde_json refuses");
        prop_assert!(
            is_replacement_difference(&e) || theirs.is_err(),
            "serde_json refused for another reason: {}",
            e
        );
    }
    if let Ok(v) = ours {
        let raw: &RawValue = serde_json::from_slice(equivalent).expect("serde_json accepted it");
        prop_assert_eq!(from_gojson(&v), from_serde(raw));
    }
    Ok(())
}

/// Checks gojson against serde_json on the same `input`; the only
/// disagreement allowed is serde_json refusing what Go reads as U+FFFD.
fn check_same(input: &[u8]) -> Result<(), TestCaseError> {
    let ours = gojson_verdict(input);
    match (ours, serde_verdict(input)) {
        (Ok(v), Ok(())) => {
            let raw: &RawValue = serde_json::from_slice(input).expect("serde_json accepted it");
            prop_assert_eq!(from_gojson(&v), from_serde(raw));
        }
        (Err(_), Err(_)) => {}
        // Known difference: Go reads a lone surrogate or invalid UTF-8 as U+FFFD.
        (Ok(_), Err(e)) if is_replacement_difference(&e) => {}
        (ours, theirs) => prop_assert!(
            false,
            "gojson {:?}, serde_json {:?}",
            ours.err(),
            theirs.err()
        ),
    }
    Ok(())
}

/// A piece of string content: as the input writes it, and as an input
/// serde_json reads as Go reads the first (the same bytes unless Go and
/// serde_json differ on it).
#[derive(Debug, Clone)]
struct Piece {
    go: Vec<u8>,
    serde: Vec<u8>,
}

fn same(s: &str) -> Piece {
    Piece {
        go: s.into(),
        serde: s.into(),
    }
}

fn piece() -> impl Strategy<Value = Piece> {
    let ascii = proptest::char::range(' ', '~')
        .prop_filter("quote and backslash only escaped", |c| {
            !matches!(c, '"' | '\\')
        })
        .prop_map(|c| same(&c.to_string()));
    let text = prop::sample::select(vec![
        "\u{7f}",
        "é",
        "日本",
        "😀",
        "\u{2028}",
        "\u{2029}",
        "\u{fffd}",
        "\u{10ffff}",
        "<&>",
    ])
    .prop_map(same);
    let escape = prop::sample::select(vec![
        r#"\""#,
        r"\\",
        r"\/",
        r"\b",
        r"\f",
        r"\n",
        r"\r",
        r"\t",
        r"\u0000",
        r"\u001f",
        r"\u00e9",
        r"\uABCD",
        r"\u2028",
        r"\ud83d\ude00",
        r"\uDBFF\uDFFF",
        r"\uD800\uDC00",
    ])
    .prop_map(same);
    // Known differences: Go reads these as U+FFFD, once per lone surrogate
    // or per byte it cannot decode; serde_json refuses them. Each ends in
    // `x` (or begins with it) so that it cannot pair with a neighbour.
    let replaced = |go: &[u8], serde: &[u8]| Piece {
        go: go.into(),
        serde: serde.into(),
    };
    let replaced = prop::sample::select(vec![
        replaced(br"\ud800x", br"\ufffdx"),
        replaced(br"x\udc00", br"x\ufffd"),
        replaced(br"x\udfff", br"x\ufffd"),
        replaced(br"\ud800\u0041", br"\ufffd\u0041"),
        replaced(br"\ud800\ud800\udc00", br"\ufffd\ud800\udc00"),
        replaced(br"\udbff\n", br"\ufffd\n"),
        replaced(b"\xffx", br"\ufffdx"),
        replaced(b"\x80x", br"\ufffdx"),
        replaced(b"\xc0\x80x", br"\ufffd\ufffdx"),
        replaced(b"\xed\xa0\x80x", br"\ufffd\ufffd\ufffdx"),
        replaced(b"\xe2\x82x", br"\ufffd\ufffdx"),
        replaced(b"\xf0\x9f\x98x", br"\ufffd\ufffd\ufffdx"),
        replaced(b"\xf4\x90\x80\x80x", br"\ufffd\ufffd\ufffd\ufffdx"),
    ]);
    prop_oneof![6 => ascii, 2 => text, 3 => escape, 1 => replaced]
}

/// A JSON number's text: integers of every length up to 300 digits (inside
/// float64's range), fractions, exponents up to three digits (so also out
/// of range, which both refuse, and underflow to 0, which both accept).
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?(0|[1-9][0-9]{0,20})",
        "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
        "-?[1-9][0-9]{18,300}",
        prop::sample::select(vec![
            "-0",
            "-0.0",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
            "1.7976931348623157e308",
            "1.7976931348623159e308",
            "4.9e-324",
            "2e-324",
            "0.1e1",
            "1E+2",
        ])
        .prop_map(str::to_owned),
    ]
}

#[derive(Debug, Clone)]
enum Doc {
    Lit(&'static str),
    Num(String),
    Str(Vec<Piece>),
    Arr(Vec<Doc>),
    Obj(Vec<(Vec<Piece>, Doc)>),
}

fn string() -> impl Strategy<Value = Vec<Piece>> {
    prop::collection::vec(piece(), 0..8)
}

fn key() -> impl Strategy<Value = Vec<Piece>> {
    // A few short keys often, so that objects repeat them.
    prop_oneof![
        prop::sample::select(vec!["a", "b", "", "event_ts"]).prop_map(|k| vec![same(k)]),
        string(),
    ]
}

fn doc() -> impl Strategy<Value = Doc> {
    let leaf = prop_oneof![
        prop::sample::select(vec!["null", "true", "false"]).prop_map(Doc::Lit),
        number().prop_map(Doc::Num),
        string().prop_map(Doc::Str),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Doc::Arr),
            prop::collection::vec((key(), inner), 0..6).prop_map(Doc::Obj),
        ]
    })
}

/// `doc` inside up to 300 arrays or single-member objects.
fn nested() -> impl Strategy<Value = Doc> {
    (doc(), prop::collection::vec(any::<bool>(), 0..300)).prop_map(|(mut d, levels)| {
        for in_array in levels {
            d = if in_array {
                Doc::Arr(vec![d])
            } else {
                Doc::Obj(vec![(vec![same("k")], d)])
            };
        }
        d
    })
}

/// Whitespace between tokens, taken in turn.
fn spaces() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(
        prop::sample::select(vec!["", "", "", " ", "\t", "\n", "\r", " \r\n\t "]),
        1..8,
    )
}

/// Writes a [`Doc`] as the input and as its serde_json equivalent.
struct Render {
    go: Vec<u8>,
    serde: Vec<u8>,
    spaces: Vec<&'static str>,
    next: usize,
}

impl Render {
    fn new(doc: &Doc, spaces: Vec<&'static str>) -> Render {
        let mut r = Render {
            go: Vec::new(),
            serde: Vec::new(),
            spaces,
            next: 0,
        };
        r.doc(doc);
        r
    }

    fn both(&mut self, s: &[u8]) {
        self.go.extend_from_slice(s);
        self.serde.extend_from_slice(s);
    }

    fn space(&mut self) {
        let s = self.spaces[self.next % self.spaces.len()];
        self.next += 1;
        self.both(s.as_bytes());
    }

    fn string(&mut self, pieces: &[Piece]) {
        self.both(b"\"");
        for p in pieces {
            self.go.extend_from_slice(&p.go);
            self.serde.extend_from_slice(&p.serde);
        }
        self.both(b"\"");
    }

    fn doc(&mut self, doc: &Doc) {
        self.space();
        match doc {
            Doc::Lit(l) => self.both(l.as_bytes()),
            Doc::Num(n) => self.both(n.as_bytes()),
            Doc::Str(s) => self.string(s),
            Doc::Arr(items) => {
                self.both(b"[");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.both(b",");
                    }
                    self.doc(item);
                }
                if items.is_empty() {
                    self.space();
                }
                self.both(b"]");
            }
            Doc::Obj(members) => {
                self.both(b"{");
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        self.both(b",");
                    }
                    self.space();
                    self.string(k);
                    self.space();
                    self.both(b":");
                    self.doc(v);
                }
                if members.is_empty() {
                    self.space();
                }
                self.both(b"}");
            }
        }
        self.space();
    }
}

/// An edit of a valid UTF-8 text that keeps it valid UTF-8: ASCII bytes go
/// in at character boundaries, whole characters come out.
#[derive(Debug, Clone)]
enum Edit {
    Insert(Index, u8),
    Replace(Index, u8),
    Delete(Index),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes that matter to JSON's grammar, and any other ASCII.
    let byte = prop_oneof![
        prop::sample::select(b"\"\\[]{}:,.-+eE0123456789 \t\n\rtrufalsn\x00\x1fu/x".to_vec()),
        0u8..0x80,
    ];
    prop_oneof![
        (any::<Index>(), byte.clone()).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), byte).prop_map(|(i, b)| Edit::Replace(i, b)),
        any::<Index>().prop_map(Edit::Delete),
        any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> Vec<u8> {
    let mut text = text.to_owned();
    for edit in edits {
        let bounds: Vec<usize> = text
            .char_indices()
            .map(|(i, _)| i)
            .chain([text.len()])
            .collect();
        let at = |i: &Index| bounds[i.index(bounds.len())];
        match edit {
            Edit::Insert(i, b) => text.insert(at(i), char::from(*b)),
            Edit::Replace(i, b) => {
                let at = at(i);
                if at < text.len() {
                    text.remove(at);
                }
                text.insert(at, char::from(*b));
            }
            Edit::Delete(i) => {
                let at = at(i);
                if at < text.len() {
                    text.remove(at);
                }
            }
            Edit::Truncate(i) => text.truncate(at(i)),
        }
    }
    text.into_bytes()
}

proptest! {
    #[test]
    fn generated_documents_read_as_serde_json_reads_their_equivalents(
        doc in doc(),
        spaces in spaces(),
    ) {
        let r = Render::new(&doc, spaces);
        check_equivalent(&r.go, &r.serde)?;
    }

    #[test]
    fn deeply_nested_documents_read_as_serde_json_reads_them(
        doc in nested(),
        spaces in spaces(),
    ) {
        let r = Render::new(&doc, spaces);
        check_equivalent(&r.go, &r.serde)?;
    }

    #[test]
    fn edited_documents_are_refused_or_read_as_serde_json_does(
        doc in doc(),
        spaces in spaces(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        // The serde_json equivalent is valid UTF-8 even where the input is not.
        let r = Render::new(&doc, spaces);
        let text = std::str::from_utf8(&r.serde).expect("the equivalent is valid UTF-8");
        check_same(&apply(text, &edits))?;
    }

    #[test]
    fn token_soup_is_refused_or_read_as_serde_json_does(
        tokens in prop::collection::vec(
            prop::sample::select(vec![
                "{", "}", "[", "]", ":", ",", " ", "\"a\"", "\"", "\\", "\\u", "00e9",
                "d800", "1", "0", "-", ".", "e", "+", "5", "true", "nul", "null", "fals",
                "\t", "\x01", "\u{7f}", "é", "NaN", "Infinity", "'",
            ]),
            0..24,
        ),
    ) {
        check_same(tokens.concat().as_bytes())?;
    }

    #[test]
    fn arbitrary_bytes_are_refused_or_read_as_serde_json_does(
        input in prop::collection::vec(any::<u8>(), 0..48),
    ) {
        check_same(&input)?;
        // The same bytes inside a string: mostly valid JSON.
        let mut quoted = vec![b'"'];
        quoted.extend(input.iter().filter(|&&b| b != b'"' && b != b'\\'));
        quoted.push(b'"');
        check_same(&quoted)?;
    }

    #[test]
    fn projected_documents_are_the_full_ones_less_the_members_not_wanted(
        doc in doc(),
        spaces in spaces(),
        edits in prop::collection::vec(edit(), 0..3),
        wanted in prop::collection::vec(prop::sample::select(vec!["a", "b", "", "é", "x y"]), 0..3),
    ) {
        let r = Render::new(&doc, spaces);
        let text = std::str::from_utf8(&r.serde).expect("the equivalent is valid UTF-8");
        check_projection(&r.go, &wanted)?;
        check_projection(&apply(text, &edits), &wanted)?;
    }

    #[test]
    fn projected_token_soup_fails_as_the_full_parse_does(
        tokens in prop::collection::vec(
            prop::sample::select(vec![
                "{", "}", "[", "]", ":", ",", " ", "\"a\"", "\"b\"", "\"", "\\", "\\u", "00e9",
                "d800", "1", "0", "-", ".", "e", "+", "5", "true", "nul", "null", "1e999",
                "\t", "\x01", "é",
            ]),
            0..24,
        ),
    ) {
        let text = format!("{{{}", tokens.concat());
        check_projection(text.as_bytes(), &["a"])?;
        check_projection(text.as_bytes(), &[])?;
    }

    #[test]
    fn integers_beyond_float64_are_exact_where_serde_json_refuses_them(
        digits in "-?[1-9][0-9]{309,400}",
    ) {
        // Known difference: gojq keeps every integer exact; serde_json reads
        // integers beyond 64 bits as float64 and refuses those out of its range.
        let e = serde_verdict(digits.as_bytes()).unwrap_err();
        prop_assert!(e.to_string().starts_with("number out of range"), "{}", e);
        let v = gojson_verdict(digits.as_bytes()).unwrap();
        prop_assert_eq!(from_gojson(&v), Norm::Int(digits.clone()));
        // Inside a document too.
        let doc = format!("{{\"trace_id\":{digits}}}");
        let v = gojson_verdict(doc.as_bytes()).unwrap();
        prop_assert_eq!(
            from_gojson(&v),
            Norm::Obj([(b"trace_id".to_vec(), Norm::Int(digits))].into())
        );
    }
}

/// A projected parse (`parse_members`) is the full parse without the
/// members not wanted, and fails exactly as the full parse does.
fn check_projection(input: &[u8], wanted: &[&str]) -> Result<(), TestCaseError> {
    let mut keys: Vec<Box<[u8]>> = wanted.iter().map(|k| k.as_bytes().into()).collect();
    keys.sort();
    keys.dedup();
    let record = Bytes::copy_from_slice(input);
    let full = parse(&record, MAX_DEPTH).map(|v| v.expect("no limit below Go's"));
    let projected =
        super::parse_members(&record, MAX_DEPTH, Some(&keys)).map(|v| v.expect("no limit"));
    match (full, projected) {
        (Ok(full), Ok(projected)) => {
            let want = match from_gojson(&full) {
                Norm::Obj(mut map) => {
                    map.retain(|k, _| keys.iter().any(|w| **w == k[..]));
                    Norm::Obj(map)
                }
                other => other,
            };
            prop_assert_eq!(want, from_gojson(&projected));
        }
        (Err(a), Err(b)) => prop_assert_eq!(
            a.to_string(),
            b.to_string(),
            "{}",
            String::from_utf8_lossy(input)
        ),
        (a, b) => prop_assert!(false, "full {:?}, projected {:?}", a, b),
    }
    Ok(())
}

#[test]
fn nesting_limits_differ_as_expected() {
    // serde_json and gojson both recurse to drop 10000 levels.
    std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(|| {
            let nested = |n| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
            // Go's limit: both read 10000 levels.
            assert!(gojson_verdict(&nested(MAX_DEPTH)).is_ok());
            assert!(serde_verdict(&nested(MAX_DEPTH)).is_ok());
            // Known difference: Go refuses one level more; serde_json, with
            // its own limit turned off, does not.
            assert_eq!(
                gojson_verdict(&nested(MAX_DEPTH + 1)).unwrap_err(),
                "invalid character '[' exceeded max depth"
            );
            assert!(serde_verdict(&nested(MAX_DEPTH + 1)).is_ok());
            // And serde_json's default limit, which the judge turns off.
            let e = serde_json::from_slice::<serde_json::Value>(&nested(128)).unwrap_err();
            assert!(e.to_string().starts_with("recursion limit exceeded"), "{e}");
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn known_differences_are_what_the_generators_say() {
    // Each replaced piece: serde_json refuses it as the comparison expects,
    // and gojson reads it as serde_json reads its equivalent.
    let cases: [(&[u8], &[u8]); 3] = [
        (br#""\ud800x""#, br#""\ufffdx""#),
        (b"\"\xe2\x82x\"", br#""\ufffd\ufffdx""#),
        (br#""\ud800\ud800\udc00""#, br#""\ufffd\ud800\udc00""#),
    ];
    for (input, equivalent) in cases {
        assert!(is_replacement_difference(
            &serde_verdict(input).unwrap_err()
        ));
        assert_eq!(
            from_gojson(&gojson_verdict(input).unwrap()),
            from_serde(serde_json::from_slice(equivalent).unwrap())
        );
    }
    // `-0`: serde_json's float, gojq's integer.
    assert_eq!(
        serde_json::from_str::<serde_json::Value>("-0")
            .unwrap()
            .as_f64()
            .map(f64::to_bits),
        Some((-0.0f64).to_bits())
    );
    assert_eq!(
        from_gojson(&gojson_verdict(b"-0").unwrap()),
        Norm::Int("0".into())
    );
}
