//! Konnect's CEF lines, read into the JSON object Konnect's JSON format
//! gives for the same event, so that one jq filter, `--type`, `--columns`
//! and the time filter work on both formats.
//!
//! A line is `<time> <host> CEF:<version>|<vendor>|<product>|<version>|
//! <event class id>|<name>|<severity>|<extensions>` (the `<time> <host> `
//! prefix is optional). The header gives `cef_version`, `event_vendor`,
//! `event_product`, `event_version`, `event_class_id`, `name` and
//! `severity`, the leading time gives `event_ts`, and every extension keeps
//! its key. Extension values run to the next ` key=`, so values with spaces
//! (`user_agent`) stay whole; the CEF escapes `\=`, `\\`, `\n` and `\r` are
//! undone. The fields Konnect's JSON format gives as strings stay strings
//! whatever they hold ([`STRING_FIELDS`]: its samples have `"rt":
//! "1684196881193"` and `"success": "true"` where the CEF line has
//! `rt=1684196881193 success=true`); any other value that is a JSON number
//! (kept exact at any size) or `true`/`false` is typed so (`trace_id`,
//! `status`, `granted`), anything else is a string. The object's keys are
//! sorted, as in Konnect's JSON format; a repeated key keeps its last
//! value.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// Extensions that Konnect's JSON format writes as strings, even when the
/// value reads as a number or a boolean (Kong's samples of both formats,
/// `tests/data/konnect-verbatim`).
pub const STRING_FIELDS: &[&str] = &[
    "act",
    "action",
    "actor_id",
    "org_id",
    "portal_id",
    "principal_id",
    "principal_name",
    "query",
    "request",
    "rt",
    "sig",
    "src",
    "success",
    "user_agent",
];

/// A CEF line split into its parts, borrowing the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CefLine<'a> {
    /// The leading timestamp, when the line has the `<time> <host> ` prefix.
    pub time: Option<&'a str>,
    /// version, vendor, product, device version, event class id, name,
    /// severity; escapes undone.
    pub header: [Cow<'a, str>; 7],
    /// Extensions in line order, values unescaped.
    pub extensions: Vec<(&'a str, Cow<'a, str>)>,
}

/// Whether `line` (trimmed) has the shape of a CEF record.
pub fn looks_like_cef(line: &[u8]) -> bool {
    cef_start(line).is_some()
}

/// Where `CEF:` starts: at 0, or after a `<time> <host> ` prefix.
fn cef_start(line: &[u8]) -> Option<usize> {
    if line.starts_with(b"CEF:") {
        return Some(0);
    }
    let first = line.iter().position(|&b| b == b' ')?;
    let rest = &line[first + 1..];
    let second = rest.iter().position(|&b| b == b' ')?;
    let start = first + 1 + second + 1;
    line[start..].starts_with(b"CEF:").then_some(start)
}

/// Splits a CEF line. The line must be UTF-8.
pub fn parse(line: &[u8]) -> Result<CefLine<'_>, &'static str> {
    let line = std::str::from_utf8(line).map_err(|_| "not valid UTF-8")?;
    let start = cef_start(line.as_bytes()).ok_or("no CEF: header")?;
    let time = (start > 0).then(|| line[..start].split(' ').next().unwrap_or(""));
    let mut rest = &line[start + "CEF:".len()..];
    let mut header: [Cow<'_, str>; 7] = Default::default();
    for field in header.iter_mut() {
        let end = unescaped_pipe(rest).ok_or("fewer than 8 header fields")?;
        *field = unescape_header(&rest[..end]);
        rest = &rest[end + 1..];
    }
    Ok(CefLine {
        time,
        header,
        extensions: extensions(rest),
    })
}

/// The index of the first `|` not escaped by a backslash.
fn unescaped_pipe(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'|' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn unescape_header(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next @ ('|' | '\\'))) => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Undoes CEF's extension escapes: `\=`, `\\`, `\n`, `\r`.
fn unescape_value(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.clone().next() {
            Some('=') => out.push('='),
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            // Not an escape CEF defines: keep the backslash.
            _ => {
                out.push('\\');
                continue;
            }
        }
        chars.next();
    }
    Cow::Owned(out)
}

/// Whether `s[at..]` starts with an extension key followed by `=`: its
/// length (up to the `=`) if so.
fn key_at(s: &[u8], at: usize) -> Option<usize> {
    let len = s[at..]
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .count();
    (len > 0 && s.get(at + len) == Some(&b'=')).then_some(len)
}

fn extensions(s: &str) -> Vec<(&str, Cow<'_, str>)> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let Some(mut key_len) = key_at(bytes, 0) else {
        return out;
    };
    let mut key_start = 0;
    loop {
        let value_start = key_start + key_len + 1;
        // The value ends before the next ` key=`.
        let mut next = None;
        let mut i = value_start;
        while i < bytes.len() {
            if bytes[i] == b'\\' {
                i += 2;
                continue;
            }
            if bytes[i] == b' '
                && let Some(len) = key_at(bytes, i + 1)
            {
                next = Some((i, len));
                break;
            }
            i += 1;
        }
        let value_end = next.map_or(bytes.len(), |(space, _)| space);
        let value_end = value_end.max(value_start).min(bytes.len());
        out.push((
            &s[key_start..key_start + key_len],
            unescape_value(s[value_start..value_end].trim_end_matches(' ')),
        ));
        match next {
            Some((space, len)) => {
                key_start = space + 1;
                key_len = len;
            }
            None => return out,
        }
    }
}

impl<'a> CefLine<'a> {
    pub fn event_class_id(&self) -> Option<&str> {
        Some(self.header[4].as_ref())
    }

    pub fn name(&self) -> Option<&str> {
        Some(self.header[5].as_ref())
    }

    /// The last value of extension `key`.
    pub fn extension(&self, key: &str) -> Option<Cow<'a, str>> {
        self.extensions
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }

    /// The JSON object for this line (see the module documentation).
    pub fn to_json(&self) -> Vec<u8> {
        enum Member<'v> {
            Text(&'v str),
            /// A JSON number or `true`/`false`, written as is.
            Literal(&'v str),
        }
        fn typed(v: &str) -> Member<'_> {
            if v == "true" || v == "false" || is_json_number(v) {
                Member::Literal(v)
            } else {
                Member::Text(v)
            }
        }
        fn number_or_text(v: &str) -> Member<'_> {
            if is_json_number(v) {
                Member::Literal(v)
            } else {
                Member::Text(v)
            }
        }
        let mut members: BTreeMap<&str, Member<'_>> = BTreeMap::new();
        let h = &self.header;
        members.insert("cef_version", number_or_text(&h[0]));
        members.insert("event_vendor", Member::Text(&h[1]));
        members.insert("event_product", Member::Text(&h[2]));
        members.insert("event_version", Member::Text(&h[3]));
        members.insert("event_class_id", Member::Text(&h[4]));
        members.insert("name", Member::Text(&h[5]));
        members.insert("severity", number_or_text(&h[6]));
        if let Some(time) = self.time {
            members.insert("event_ts", Member::Text(time));
        }
        for (key, value) in &self.extensions {
            let member = if STRING_FIELDS.contains(key) {
                Member::Text(value)
            } else {
                typed(value)
            };
            members.insert(key, member);
        }
        let mut out = Vec::with_capacity(256);
        out.push(b'{');
        for (i, (key, value)) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_string(&mut out, key);
            out.push(b':');
            match value {
                Member::Text(s) => write_json_string(&mut out, s),
                Member::Literal(s) => out.extend_from_slice(s.as_bytes()),
            }
        }
        out.push(b'}');
        out
    }
}

/// The whole line as a JSON object, in one step.
pub fn to_json(line: &[u8]) -> Result<Vec<u8>, &'static str> {
    parse(line).map(|l| l.to_json())
}

fn write_json_string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing a string to a Vec cannot fail");
}

/// JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
pub fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(line: &str) -> serde_json::Value {
        serde_json::from_slice(&to_json(line.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn kong_sample_becomes_the_json_format_shape() {
        let line = "2025-05-19T00:03:39Z konghq.com CEF:0|ExampleOrg|Konnect|1.0|AUTHENTICATION_TYPE_PAT|AUTHENTICATION_OUTCOME_SUCCESS|0|rt=3958q3097698 src=127.0.0.1 request=/api/v1/personal-access-tokens/introspect success=true org_id=b065b594 principal_id=87655c36 trace_id=3895213347334635099 user_agent=grpc-go/1.51.0 sig=N_4q2pCg";
        let raw = to_json(line.as_bytes()).unwrap();
        let text = String::from_utf8(raw).unwrap();
        // The big trace id is written exactly, not through a float.
        assert!(text.contains(r#""trace_id":3895213347334635099"#), "{text}");
        let v = json(line);
        assert_eq!(v["cef_version"], 0);
        assert_eq!(v["event_vendor"], "ExampleOrg");
        assert_eq!(v["event_product"], "Konnect");
        assert_eq!(v["event_version"], "1.0");
        assert_eq!(v["event_class_id"], "AUTHENTICATION_TYPE_PAT");
        assert_eq!(v["name"], "AUTHENTICATION_OUTCOME_SUCCESS");
        assert_eq!(v["severity"], 0);
        assert_eq!(v["event_ts"], "2025-05-19T00:03:39Z");
        assert_eq!(v["rt"], "3958q3097698");
        // A string in Konnect's JSON format, though it reads as a boolean.
        assert_eq!(v["success"], "true");
        assert_eq!(v["sig"], "N_4q2pCg");
        // Keys sorted, as in Konnect's JSON format.
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn values_with_spaces_and_empty_values_stay_whole() {
        let v = json(
            "2025-01-01T00:00:00Z konghq.com CEF:0|KongInc|Konnect|1.0|konnect|Authz.x|1|actor_id= user_agent=Mozilla/5.0 (X11; Linux x86_64) Gecko uri=/a?b=1 sig=z",
        );
        assert_eq!(v["actor_id"], "");
        assert_eq!(v["user_agent"], "Mozilla/5.0 (X11; Linux x86_64) Gecko");
        assert_eq!(v["uri"], "/a?b=1");
        assert_eq!(v["sig"], "z");
    }

    #[test]
    fn escapes_are_undone() {
        let v = json(r"CEF:0|V\|x|P|1.0|konnect|N|5|msg=a\=b c\\d\nline\rend other=\q");
        assert_eq!(v["event_vendor"], "V|x");
        assert_eq!(v["msg"], "a=b c\\d\nline\rend");
        assert_eq!(v["other"], "\\q");
        assert!(v.get("event_ts").is_none());
        assert_eq!(v["severity"], 5);
    }

    #[test]
    fn numbers_are_typed_only_when_json_says_so() {
        for (text, number) in [
            ("0", true),
            ("-1", true),
            ("1.5e10", true),
            ("123456789012345678901234567890", true),
            ("01", false),
            ("1.", false),
            ("+1", false),
            ("1e", false),
            ("", false),
            ("0x10", false),
            ("NaN", false),
        ] {
            assert_eq!(is_json_number(text), number, "{text:?}");
        }
    }

    #[test]
    fn repeated_keys_keep_the_last_value() {
        let v = json("CEF:0|V|P|1|konnect|N|0|a=1 a=two");
        assert_eq!(v["a"], "two");
    }

    #[test]
    fn malformed_lines_are_refused() {
        assert!(parse(b"CEF:0|only|three").is_err());
        assert!(parse(b"no cef here").is_err());
        assert!(!looks_like_cef(b"2025 host notcef"));
        assert!(looks_like_cef(b"2025-01-01T00:00:00Z konghq.com CEF:0|a"));
    }

    #[test]
    fn every_verbatim_sample_parses() {
        let samples = include_str!("testdata/records.cef");
        for line in samples.lines().filter(|l| !l.trim().is_empty()) {
            let parsed = parse(line.as_bytes()).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(parsed.time.is_some(), "{line}");
            assert!(parsed.extension("sig").is_some(), "{line}");
            let v = json(line);
            assert!(v["event_ts"].is_string(), "{line}");
        }
    }

    /// The CEF sample of a kind, its display line breaks joined.
    fn verbatim_cef(text: &str) -> String {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn json_type(v: &serde_json::Value) -> &'static str {
        match v {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "boolean",
            serde_json::Value::Number(_) => "number",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Array(_) => "array",
            serde_json::Value::Object(_) => "object",
        }
    }

    #[test]
    fn verbatim_cef_samples_convert_to_the_json_samples_shape() {
        let pairs = [
            (
                include_str!("../../tests/data/konnect-verbatim/access.konnect.cef.txt"),
                include_str!("../../tests/data/konnect-verbatim/access.konnect.json.txt"),
                &[][..],
            ),
            (
                include_str!("../../tests/data/konnect-verbatim/authentication.konnect.cef.txt"),
                include_str!("../../tests/data/konnect-verbatim/authentication.konnect.json.txt"),
                &[],
            ),
            (
                include_str!("../../tests/data/konnect-verbatim/authentication.dev-portal.cef.txt"),
                include_str!(
                    "../../tests/data/konnect-verbatim/authentication.dev-portal.json.txt"
                ),
                &[],
            ),
            (
                include_str!("../../tests/data/konnect-verbatim/authorization.konnect.cef.txt"),
                include_str!("../../tests/data/konnect-verbatim/authorization.konnect.json.txt"),
                // The docs' JSON example of this kind leaves it out.
                &["actor_id"],
            ),
        ];
        for (cef, json_text, extra) in pairs {
            let line = verbatim_cef(cef);
            let converted = json(&line);
            // The docs' access sample has a trailing comma.
            let sample: serde_json::Value =
                serde_json::from_str(&json_text.replace(",\n}", "\n}")).unwrap();
            let converted = converted.as_object().unwrap();
            let sample = sample.as_object().unwrap();
            let mut keys: Vec<&String> = converted.keys().collect();
            keys.retain(|k| !extra.contains(&k.as_str()));
            let mut want: Vec<&String> = sample.keys().collect();
            want.sort();
            assert_eq!(keys, want, "{line}");
            for (key, value) in sample {
                assert_eq!(
                    json_type(&converted[key]),
                    json_type(value),
                    "{key} in {line}"
                );
            }
            // Header fields the two events share carry the same values.
            assert_eq!(converted["cef_version"], sample["cef_version"]);
            assert_eq!(converted["name"], sample["name"]);
            assert_eq!(converted["severity"], sample["severity"]);
        }
        let single = json(include_str!(
            "../../tests/data/konnect-verbatim/authorization.konnect.single-line.cef"
        ));
        assert_eq!(single["trace_id"].to_string(), "3959872677347089807");
        assert_eq!(single["granted"], true);
        assert_eq!(single["rt"], "1750280466889");
        assert_eq!(single["event_ts"], "2025-06-18T21:02:36Z");
    }
}
