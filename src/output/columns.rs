//! `--columns HEADER=.field`: the original's custom text columns for `ps`
//! and `ps stop` (its `internal/cmd/output/columns` package), also taken by
//! the queries' `-o text`.
//!
//! This module owns the flag's grammar, reading each item as `-o json`
//! prints it, and formatting what a path finds as a table cell. A value of
//! the flag holds one or more specs separated by commas (commas inside
//! brackets or quotes do not count); the flag may be repeated. A spec is a
//! header, `=`, and a path: `.` (the whole item), `.field`, `.a.b`,
//! `.["quoted key"]`, `.list[0]` or a string slice `.field[2:8]` (in
//! characters). A path that finds nothing (an unknown field, an index out
//! of range, a slice of a non-string) gives an empty cell; strings are put
//! on one line, numbers and booleans printed as in JSON, objects and arrays
//! as compact JSON with sorted keys. Laying out the table is left to
//! [`super::table`], and deciding whether the flag applies to the output
//! format to the caller, through [`resolve`].

use crate::{gofmt, gojson};
use serde_json::Value;
use std::borrow::Cow;

/// One selected column: its header and where its cells come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub header: String,
    steps: Vec<Step>,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// `.name` or `["name"]`: a member of an object.
    Key(String),
    /// `[3]`: an element of an array.
    Index(usize),
    /// `[2:8]`, `[:8]`, `[2:]`: characters of a string.
    Slice {
        start: Option<usize>,
        end: Option<usize>,
    },
}

/// A `--columns` value that cannot be used, in the original's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColumnsError {
    #[error("--columns is only supported with --output text")]
    NotText,
    #[error("--columns requires at least one column")]
    NoColumn,
    #[error("invalid --columns value: unexpected closing bracket")]
    UnexpectedClosingBracket,
    #[error("invalid --columns value: empty column")]
    EmptyColumn,
    #[error("invalid --columns value: unterminated quoted key or bracket")]
    Unterminated,
    /// Holds the spec as given.
    #[error("invalid --columns value {}: expected HEADER=.field", gofmt::quote(.0))]
    NotHeaderAndPath(String),
    /// Headers must differ regardless of case.
    #[error("duplicate --columns header {}", gofmt::quote(.0))]
    DuplicateHeader(String),
    #[error("invalid path for column {}: {reason}", gofmt::quote(.header))]
    InvalidPath { header: String, reason: String },
}

/// The columns selected by the `--columns` values, `None` when there are
/// none (the command prints its own table). Only text output has columns.
pub fn resolve(values: &[String], text_output: bool) -> Result<Option<Vec<Column>>, ColumnsError> {
    if values.is_empty() {
        return Ok(None);
    }
    if !text_output {
        return Err(ColumnsError::NotText);
    }
    parse(values).map(Some)
}

/// Parses repeated and comma-separated `HEADER=.path` specs.
pub fn parse(values: &[String]) -> Result<Vec<Column>, ColumnsError> {
    let mut specs = Vec::new();
    for value in values {
        specs.extend(split_specs(value)?);
    }
    if specs.is_empty() {
        return Err(ColumnsError::NoColumn);
    }
    let mut columns: Vec<Column> = Vec::with_capacity(specs.len());
    for spec in specs {
        let (header, path) = match spec.split_once('=') {
            Some((h, p)) if !h.trim().is_empty() && !p.trim().is_empty() => (h.trim(), p.trim()),
            _ => return Err(ColumnsError::NotHeaderAndPath(spec.to_owned())),
        };
        let lower = header.to_lowercase();
        if columns.iter().any(|c| c.header.to_lowercase() == lower) {
            return Err(ColumnsError::DuplicateHeader(header.to_owned()));
        }
        let steps = parse_path(path).map_err(|reason| ColumnsError::InvalidPath {
            header: header.to_owned(),
            reason,
        })?;
        columns.push(Column {
            header: header.to_owned(),
            steps,
        });
    }
    Ok(columns)
}

/// Splits one flag value at the commas outside brackets and JSON strings.
fn split_specs(value: &str) -> Result<Vec<&str>, ColumnsError> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    fn take(part: &str) -> Result<&str, ColumnsError> {
        let part = part.trim();
        if part.is_empty() {
            return Err(ColumnsError::EmptyColumn);
        }
        Ok(part)
    }
    for (i, c) in value.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' => depth += 1,
            ']' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or(ColumnsError::UnexpectedClosingBracket)?;
            }
            ',' if depth == 0 => {
                parts.push(take(&value[start..i])?);
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_string || depth != 0 {
        return Err(ColumnsError::Unterminated);
    }
    parts.push(take(&value[start..])?);
    Ok(parts)
}

/// Compiles a path; the error is the reason, without the column.
fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    if path == "." {
        return Ok(Vec::new());
    }
    if !path.starts_with('.') {
        return Err("path must start with '.'".into());
    }
    let bytes = path.as_bytes();
    let mut steps = Vec::new();
    // After the leading `.`, a field name may follow directly or after
    // another `.`; `[` starts a bracket step anywhere.
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'[' => {
                let (step, next) = parse_bracket(path, i)?;
                steps.push(step);
                i = next;
                continue;
            }
            b'.' => {
                i += 1;
                if i == bytes.len() {
                    return Err("field name cannot be empty".into());
                }
            }
            _ => {}
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'.' && bytes[i] != b'[' {
            i += 1;
        }
        if start == i {
            return Err(format!("unexpected character '{}'", char::from(bytes[i])));
        }
        // `.` and `[` are ASCII, so `start..i` falls on character bounds.
        let field = &path[start..i];
        if field.chars().any(char::is_whitespace) {
            return Err(format!(
                "field {} contains whitespace; use a quoted key",
                gofmt::quote(field)
            ));
        }
        steps.push(Step::Key(field.to_owned()));
    }
    Ok(steps)
}

/// Reads the bracket step opening at `open`; returns it and the index after
/// its `]`.
fn parse_bracket(path: &str, open: usize) -> Result<(Step, usize), String> {
    let bytes = path.as_bytes();
    let mut in_string = false;
    let mut escaped = false;
    let mut close = None;
    for (i, &b) in bytes.iter().enumerate().skip(open + 1) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b']' => {
                close = Some(i);
                break;
            }
            _ => {}
        }
    }
    let close = close.ok_or("unterminated bracket")?;
    let content = path[open + 1..close].trim();
    let step = if content.is_empty() {
        return Err("empty bracket".into());
    } else if content.starts_with('"') {
        Step::Key(
            gojson::parse_string(content.as_bytes())
                .map_err(|e| format!("invalid quoted key: {e}"))?,
        )
    } else if content.contains(':') {
        parse_slice(content)?
    } else {
        match content.parse::<i64>() {
            Ok(n) if n >= 0 => Step::Index(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => return Err(format!("invalid array index {}", gofmt::quote(content))),
        }
    };
    Ok((step, close + 1))
}

fn parse_slice(content: &str) -> Result<Step, String> {
    let (start, end) = content.split_once(':').expect("a slice has a colon");
    if end.contains(':') || (start.is_empty() && end.is_empty()) {
        return Err(format!(
            "invalid string slice {}: expected [start:end]",
            gofmt::quote(content)
        ));
    }
    let bound = |text: &str, which: &str| -> Result<Option<usize>, String> {
        if text.is_empty() {
            return Ok(None);
        }
        match text.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
            _ => Err(format!(
                "invalid string slice {which} {}: slice bound must be a non-negative integer",
                gofmt::quote(text)
            )),
        }
    };
    let (start, end) = (bound(start, "start")?, bound(end, "end")?);
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(format!(
            "invalid string slice {}: start exceeds end",
            gofmt::quote(content)
        ));
    }
    Ok(Step::Slice { start, end })
}

/// The table's rows: one per element of `items` (a JSON array, or one
/// item), one cell per column.
pub fn project(items: &Value, columns: &[Column]) -> Vec<Vec<String>> {
    let items = match items {
        Value::Array(items) => items.iter().collect(),
        item => vec![item],
    };
    items
        .into_iter()
        .map(|item| {
            columns
                .iter()
                .map(|c| cell(evaluate(item, &c.steps).as_deref()))
                .collect()
        })
        .collect()
}

/// The selected columns of `items` as a table fitted to `width`: the
/// header line only when there are no items, as in the original.
pub fn render(items: &Value, columns: &[Column], width: usize) -> String {
    let headers: Vec<&str> = columns.iter().map(|c| c.header.as_str()).collect();
    super::table::render(&headers, &project(items, columns), width)
}

/// What `steps` find in `value`, if anything.
fn evaluate<'a>(value: &'a Value, steps: &[Step]) -> Option<Cow<'a, Value>> {
    let mut current = Cow::Borrowed(value);
    for step in steps {
        current = match (step, current) {
            (Step::Key(key), Cow::Borrowed(Value::Object(map))) => Cow::Borrowed(map.get(key)?),
            (Step::Index(n), Cow::Borrowed(Value::Array(items))) => Cow::Borrowed(items.get(*n)?),
            (Step::Slice { start, end }, current) => {
                let Value::String(s) = current.as_ref() else {
                    return None;
                };
                let count = s.chars().count();
                let end = end.unwrap_or(count).min(count);
                let start = start.unwrap_or(0).min(end);
                Cow::Owned(Value::String(
                    s.chars().skip(start).take(end - start).collect(),
                ))
            }
            // Only a slice makes an owned value, and it is a string.
            _ => return None,
        };
    }
    Some(current)
}

/// A cell: empty for nothing or null, strings on one line, numbers and
/// booleans as JSON prints them, objects and arrays as compact JSON.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.split_whitespace().collect::<Vec<_>>().join(" "),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(v) => {
            let mut out = Vec::new();
            write_go_json(v, &mut out);
            String::from_utf8(out).expect("JSON of a serde_json::Value is UTF-8")
        }
    }
}

/// Compact JSON as Go's `json.Marshal` writes it: object keys sorted, and
/// strings escaped as `tail --jq` prints them (`<`, `>`, `&`, U+2028 and
/// U+2029 too).
fn write_go_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => gojson::write_str(out, s.as_bytes()),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_go_json(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                gojson::write_str(out, key.as_bytes());
                out.push(b':');
                write_go_json(item, out);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    fn columns(values: &[&str]) -> Vec<Column> {
        parse(&strings(values)).unwrap_or_else(|e| panic!("{values:?}: {e}"))
    }

    fn error(values: &[&str]) -> String {
        parse(&strings(values)).unwrap_err().to_string()
    }

    #[test]
    fn specs_are_repeated_or_comma_separated() {
        let cols = columns(&["PID=.pid, STATUS = .status", "Log File=.log_file"]);
        let headers: Vec<&str> = cols.iter().map(|c| c.header.as_str()).collect();
        assert_eq!(headers, ["PID", "STATUS", "Log File"]);
        assert_eq!(cols[1].steps, [Step::Key("status".into())]);
        // Commas inside brackets and quoted keys do not split.
        let cols = columns(&[
            r#"NAME=.name,TEAM=.labels["team,]primary"]"#,
            "FIRST=.items[0]",
        ]);
        assert_eq!(
            cols[1].steps,
            [
                Step::Key("labels".into()),
                Step::Key("team,]primary".into())
            ]
        );
        assert_eq!(cols[2].steps, [Step::Key("items".into()), Step::Index(0)]);
    }

    #[test]
    fn paths_cover_fields_keys_indexes_and_slices() {
        let steps = |path: &str| columns(&[&format!("X={path}")]).remove(0).steps;
        assert_eq!(steps("."), []);
        assert_eq!(
            steps(".a.b"),
            [Step::Key("a".into()), Step::Key("b".into())]
        );
        // The original also reads a doubled leading dot as one.
        assert_eq!(steps("..a"), [Step::Key("a".into())]);
        assert_eq!(
            steps(r#".["a b"][2][:8]"#),
            [
                Step::Key("a b".into()),
                Step::Index(2),
                Step::Slice {
                    start: None,
                    end: Some(8)
                }
            ]
        );
        assert_eq!(
            steps(r#".["\u00e9\"\ud83d\ude00\ud800"]"#),
            [Step::Key("é\"😀\u{fffd}".into())]
        );
        assert_eq!(
            steps(".id[+2: ]"),
            [
                Step::Key("id".into()),
                Step::Slice {
                    start: Some(2),
                    end: None
                }
            ]
        );
    }

    #[test]
    fn bad_specs_are_rejected_with_the_originals_messages() {
        for (values, message) in [
            (
                &["NAME"][..],
                r#"invalid --columns value "NAME": expected HEADER=.field"#,
            ),
            (
                &["=.name"],
                r#"invalid --columns value "=.name": expected HEADER=.field"#,
            ),
            (
                &["NAME= "],
                r#"invalid --columns value "NAME=": expected HEADER=.field"#,
            ),
            (
                &["NAME=name"],
                r#"invalid path for column "NAME": path must start with '.'"#,
            ),
            (
                &["NAME=.labels[team]"],
                r#"invalid path for column "NAME": invalid array index "team""#,
            ),
            (
                &["NAME=.name,name=.other"],
                r#"duplicate --columns header "name""#,
            ),
            (
                &["NAME=.name", "Name=.x"],
                r#"duplicate --columns header "Name""#,
            ),
            (&["NAME=.name,"], "invalid --columns value: empty column"),
            (&[""], "invalid --columns value: empty column"),
            (&["A=.a,,B=.b"], "invalid --columns value: empty column"),
            (
                &["A=.a]"],
                "invalid --columns value: unexpected closing bracket",
            ),
            (
                &["A=.a[0"],
                "invalid --columns value: unterminated quoted key or bracket",
            ),
            (
                &[r#"A=.["a]"#],
                "invalid --columns value: unterminated quoted key or bracket",
            ),
            (
                &["NAME=.name[:]"],
                r#"invalid path for column "NAME": invalid string slice ":": expected [start:end]"#,
            ),
            (
                &["NAME=.name[-1:]"],
                r#"invalid path for column "NAME": invalid string slice start "-1": slice bound must be a non-negative integer"#,
            ),
            (
                &["NAME=.name[:nope]"],
                r#"invalid path for column "NAME": invalid string slice end "nope": slice bound must be a non-negative integer"#,
            ),
            (
                &["NAME=.name[1:2:3]"],
                r#"invalid path for column "NAME": invalid string slice "1:2:3": expected [start:end]"#,
            ),
            (
                &["NAME=.name[4:2]"],
                r#"invalid path for column "NAME": invalid string slice "4:2": start exceeds end"#,
            ),
            (
                &["A=.a[1 :2]"],
                r#"invalid path for column "A": invalid string slice start "1 ": slice bound must be a non-negative integer"#,
            ),
            (
                &["A=.a[ ]"],
                r#"invalid path for column "A": empty bracket"#,
            ),
            (
                &["A=.a[-1]"],
                r#"invalid path for column "A": invalid array index "-1""#,
            ),
            (
                &["A=.."],
                r#"invalid path for column "A": field name cannot be empty"#,
            ),
            (
                &["A=.a."],
                r#"invalid path for column "A": field name cannot be empty"#,
            ),
            (
                &["A=.a..b"],
                r#"invalid path for column "A": unexpected character '.'"#,
            ),
            (
                &["A=.a.[0]"],
                r#"invalid path for column "A": unexpected character '['"#,
            ),
            (
                &["A=.log file"],
                r#"invalid path for column "A": field "log file" contains whitespace; use a quoted key"#,
            ),
            (
                &[r#"A=.["a"x]"#],
                r#"invalid path for column "A": invalid quoted key: invalid character 'x' after top-level value"#,
            ),
            (
                &[r#"A=.["\q"]"#],
                r#"invalid path for column "A": invalid quoted key: invalid character 'q' in string escape code"#,
            ),
            (
                &["A=.[\"\t\"]"],
                r#"invalid path for column "A": invalid quoted key: invalid character '\t' in string literal"#,
            ),
            (
                &[r#"A=.["\u12g4"]"#],
                r#"invalid path for column "A": invalid quoted key: invalid character 'g' in \u hexadecimal character escape"#,
            ),
        ] {
            assert_eq!(error(values), message, "{values:?}");
        }
    }

    #[test]
    fn only_text_output_has_columns() {
        assert_eq!(resolve(&[], false), Ok(None));
        assert_eq!(resolve(&[], true), Ok(None));
        assert_eq!(
            resolve(&strings(&["PID=.pid"]), false)
                .unwrap_err()
                .to_string(),
            "--columns is only supported with --output text"
        );
        // The format is checked before the specs.
        assert_eq!(
            resolve(&strings(&["nonsense"]), false),
            Err(ColumnsError::NotText)
        );
        assert_eq!(
            resolve(&strings(&["PID=.pid"]), true)
                .unwrap()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn projects_items_missing_fields_empty() {
        let cols = columns(&[
            r#"NAME=.name,TEAM=.labels["team,]primary"]"#,
            "FIRST=.items[0]",
        ]);
        let items = json!([
            {"name": "payments", "labels": {"team,]primary": "platform"}, "items": ["one", "two"]},
            {"name": "billing"},
        ]);
        assert_eq!(
            project(&items, &cols),
            [["payments", "platform", "one"], ["billing", "", ""]]
        );
        // One item that is not an array is one row.
        assert_eq!(project(&json!({"name": "x"}), &cols), [["x", "", ""]]);
        assert!(project(&json!([]), &cols).is_empty());
    }

    #[test]
    fn formats_values_as_the_original() {
        let cols =
            columns(&["N=.n,B=.b,NULL=.z,S=.s,O=.o,A=.a,WHOLE=.,DEEP=.o.k[1],NOPE=.n.x,IDX=.s[0]"]);
        let item = json!({
            "n": 4242, "b": false, "z": null, "s": " two\n lines\t",
            "o": {"z": 1, "k": [true, "<&>"]}, "a": [1, "x"],
        });
        assert_eq!(
            project(&item, &cols)[0],
            [
                "4242",
                "false",
                "",
                "two lines",
                r#"{"k":[true,"\u003c\u0026\u003e"],"z":1}"#,
                r#"[1,"x"]"#,
                r#"{"a":[1,"x"],"b":false,"n":4242,"o":{"k":[true,"\u003c\u0026\u003e"],"z":1},"s":" two\n lines\t","z":null}"#,
                "<&>",
                "",
                "",
            ]
        );
    }

    #[test]
    fn slices_count_characters_and_need_a_string() {
        let cols = columns(&["PREFIX=.id[:8],TAIL=.id[9:],MIDDLE=.id[4:8],UNICODE=.name[:2]"]);
        let item = json!({"id": "12345678-abcd", "name": "世界-service"});
        assert_eq!(
            project(&item, &cols)[0],
            ["12345678", "abcd", "5678", "世界"]
        );
        let cols = columns(&["V=.items[:1],FAR=.id[20:30],P=.pid[0:1]"]);
        let item = json!({"items": ["one"], "id": "short", "pid": 42});
        assert_eq!(project(&item, &cols)[0], ["", "", ""]);
    }

    #[test]
    fn renders_the_header_alone_for_no_items() {
        let cols = columns(&["PID=.pid,STATUS=.status"]);
        assert_eq!(render(&json!([]), &cols, 120), "PID  STATUS\n");
        assert_eq!(
            render(
                &json!([{"pid": 4242, "status": "running"}, {"pid": 7}]),
                &cols,
                120
            ),
            "PID   STATUS\n4242  running\n7     \n"
        );
    }
}
