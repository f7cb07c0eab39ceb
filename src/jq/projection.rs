//! Which members of a record a jq filter reads, so that only those are
//! parsed into values ([`crate::gojson::parse_members`]).
//!
//! Most filters people give `--jq` pick a few fields: `{ts: .event_ts,
//! name}`, `select(.request.status_code >= 400) | .event_id`. Parsing the
//! other members of a 600-byte record into values costs more than running
//! the filter. [`members`] looks at the filter's syntax tree and names the
//! top-level members it reads when it provably reads nothing else of its
//! input: the record is used only as the input of `.name` (or `.["name"]`,
//! `{name}`), of `select`, and of terms that hand it on to those; every
//! other use (printing it, `keys`, `.[]`, `..`, `length`, a comparison, a
//! variable bound to it, a definition, anything it does not know) means
//! "all of it" (`None`). Whatever a filter does with the members' own
//! values is free: those are parsed whole.
//!
//! With the members a filter reads, the results, errors and warnings are
//! the same as with the whole record: it is still an object, indexing an
//! object by name cannot fail, and a member not parsed is one the filter
//! never asks for. The JSON syntax of the members skipped is still checked
//! with Go's messages.

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Pattern, Term};
use jaq_core::path::Part;

/// The top-level members `expr` reads, sorted, if it reads nothing else of
/// its input (see the module documentation).
pub fn members(expr: &str) -> Option<Vec<Box<[u8]>>> {
    let term = jaq_core::load::parse(expr, |p| p.term())?;
    let mut keys = Vec::new();
    match walk(&term, Kind::Record, &mut keys)? {
        // The filter's results include the record itself.
        Kind::Record => None,
        Kind::Derived => {
            keys.sort();
            keys.dedup();
            Some(keys)
        }
    }
}

/// What a term's input or output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The record itself: only its members may be looked at.
    Record,
    /// Values taken from its members (or made up): anything goes.
    Derived,
}

/// Either of two outputs.
fn either(a: Kind, b: Kind) -> Kind {
    if a == Kind::Record || b == Kind::Record {
        Kind::Record
    } else {
        Kind::Derived
    }
}

/// A string literal's text, if it has no interpolation or format.
pub(super) fn literal(t: &Term<&str>) -> Option<String> {
    let Term::Str(None, parts) = t else {
        return None;
    };
    let mut s = String::new();
    for part in parts {
        match part {
            StrPart::Str(text) => s.push_str(text),
            StrPart::Char(c) => s.push(*c),
            StrPart::Term(_) => return None,
        }
    }
    Some(s)
}

/// `t`'s output when its input is `input`, noting the members of the record
/// it reads in `keys`; `None` when it may read more than members.
fn walk(t: &Term<&str>, input: Kind, keys: &mut Vec<Box<[u8]>>) -> Option<Kind> {
    use Kind::{Derived, Record};
    if input == Derived {
        // Nothing here can reach the record: no variable holds it.
        return Some(Derived);
    }
    // A term whose output must not be the record (it is looked at whole).
    let value = |t: &Term<&str>, keys: &mut Vec<Box<[u8]>>| match walk(t, Record, keys)? {
        Derived => Some(Derived),
        Record => None,
    };
    Some(match t {
        Term::Id => Record,
        Term::Num(_) | Term::Var(_) | Term::Arr(None) => Derived,
        Term::Str(None, parts) => {
            for part in parts {
                if let StrPart::Term(t) = part {
                    value(t, keys)?;
                }
            }
            Derived
        }
        Term::Arr(Some(t)) | Term::Neg(t) => value(t, keys)?,
        Term::Obj(entries) => {
            for (k, v) in entries {
                match v {
                    // `{name}` is `{name: .name}`; `{$x}` is the variable.
                    None => match k {
                        Term::Var(_) => {}
                        k => keys.push(literal(k)?.into_bytes().into()),
                    },
                    Some(v) => {
                        value(k, keys)?;
                        value(v, keys)?;
                    }
                }
            }
            Derived
        }
        Term::BinOp(l, op, r) => match op {
            BinaryOp::Pipe(None) => {
                let through = walk(l, Record, keys)?;
                walk(r, through, keys)?
            }
            BinaryOp::Pipe(Some(Pattern::Var(_))) => {
                value(l, keys)?;
                walk(r, Record, keys)?
            }
            BinaryOp::Comma | BinaryOp::Alt => {
                either(walk(l, Record, keys)?, walk(r, Record, keys)?)
            }
            BinaryOp::Or | BinaryOp::And | BinaryOp::Math(_) | BinaryOp::Cmp(_) => {
                value(l, keys)?;
                value(r, keys)?;
                Derived
            }
            _ => return None,
        },
        Term::TryCatch(t, _) => {
            // The handler's input is an error, which holds no part of the
            // record that the term did not read as a member.
            walk(t, Record, keys)?
        }
        Term::IfThenElse(branches, otherwise) => {
            let mut out = match otherwise {
                Some(t) => walk(t, Record, keys)?,
                None => Record,
            };
            for (cond, then) in branches {
                value(cond, keys)?;
                out = either(out, walk(then, Record, keys)?);
            }
            out
        }
        Term::Call(name, args) => match (*name, args.as_slice()) {
            ("null" | "true" | "false" | "empty", []) => Derived,
            // Only whether the record is true, which an object always is.
            ("not", []) => Derived,
            ("select", [f]) => {
                value(f, keys)?;
                Record
            }
            ("error", [f]) => value(f, keys)?,
            _ => return None,
        },
        Term::Path(t, path) => {
            let target = walk(t, Record, keys)?;
            // Index terms see the path term's input, the record.
            for (part, _) in &path.0 {
                match part {
                    Part::Index(i) => {
                        value(i, keys)?;
                    }
                    Part::Range(from, to) => {
                        for i in [from, to].into_iter().flatten() {
                            value(i, keys)?;
                        }
                    }
                }
            }
            if target == Record {
                match path.0.first() {
                    Some((Part::Index(i), _)) => keys.push(literal(i)?.into_bytes().into()),
                    _ => return None,
                }
            }
            Derived
        }
        Term::Recurse
        | Term::Str(Some(_), _)
        | Term::Label(..)
        | Term::Break(_)
        | Term::Fold(..)
        | Term::Def(..) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Option<Vec<String>> {
        members(expr).map(|keys| {
            keys.iter()
                .map(|k| String::from_utf8(k.to_vec()).unwrap())
                .collect()
        })
    }

    #[test]
    fn picks_of_fields_read_those_fields() {
        let cases: &[(&str, &[&str])] = &[
            (
                "{ts: .event_ts, name, principal_id, granted}",
                &["event_ts", "granted", "name", "principal_id"],
            ),
            (
                "{ts: .event_ts, name, request: (.request // null)}",
                &["event_ts", "name", "request"],
            ),
            (
                "select(.request.status_code >= 400) | .event_id",
                &["event_id", "request"],
            ),
            (".name", &["name"]),
            (r#".["a b"], ."c""#, &["a b", "c"]),
            (".a[.b]", &["a", "b"]),
            (".a | keys", &["a"]),
            ("[.a, .b?] | length", &["a", "b"]),
            (r#""\(.a)-\(.b)""#, &["a", "b"]),
            ("if .a then .b else .c end", &["a", "b", "c"]),
            (".a as $x | .b + $x", &["a", "b"]),
            ("try .a catch .", &["a"]),
            ("{(.k): .v}", &["k", "v"]),
            ("select(.a and (.b | not)) | {c}", &["a", "b", "c"]),
            ("empty", &[]),
            ("1, null", &[]),
        ];
        for (expr, want) in cases {
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(names(expr), Some(want), "{expr}");
        }
    }

    #[test]
    fn any_other_use_of_the_record_reads_all_of_it() {
        for expr in [
            ".",
            "select(.a > 1)",
            ".a, .",
            "keys",
            "length",
            ".[]",
            "..",
            "to_entries",
            ". as $r | $r.a",
            ". == {}",
            "{a: .}",
            "[.]",
            r#""\(.)""#,
            "@json",
            "def f: .a; f",
            ".[0]",
            ".[1:]",
            "reduce .a as $x (0; . + $x)",
            "if .a then . else .b end",
            "getpath([\"a\"])",
            ".a |= 1",
            "error(.)",
            "include \"x\"; .a",
            ".a[",
        ] {
            assert_eq!(names(expr), None, "{expr}");
        }
    }
}
