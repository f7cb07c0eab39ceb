//! The filters people give `--jq` most, run without jaq's interpreter:
//! picks of fields (`{ts: .event_ts, name}`, `.a.b`), alternatives
//! (`.request // null`), `select` with a comparison, and pipes of those.
//!
//! jaq runs any filter by building boxed iterators per term and per record;
//! for a pick of four fields that costs more than parsing the record. A
//! [`Simple`] filter is the same terms evaluated directly on the parsed
//! record, each giving one value or none. It gives what jaq gives or does
//! not answer: any step that jaq could fail on (indexing something that is
//! not an object or null) makes it step aside ([`Unsure`]), and the record
//! goes through jaq, which words the error. The tests run both on the same
//! records.

use jaq_core::ValT;
use jaq_core::load::parse::{BinaryOp, Term};
use jaq_core::ops::Cmp;
use jaq_core::path::{Opt, Part};
use jaq_json::Val;

use super::projection::literal;
use crate::gojson;

/// A filter made of terms that each give one value or none. It holds no
/// jaq value (those are not `Send`): literals and keys are kept as text.
#[derive(Debug)]
pub enum Simple {
    /// `.`
    Id,
    Lit(Lit),
    /// `f.a.b` with literal keys.
    Path(Box<Simple>, Vec<String>),
    /// `{k: f, name}` with literal keys, none twice; only where its value
    /// is printed (not looked into), so it is written without being built.
    Obj(Obj),
    /// `f // g`
    Alt(Box<Simple>, Box<Simple>),
    /// `f | g`
    Pipe(Box<Simple>, Box<Simple>),
    /// `select(f)`
    Select(Box<Simple>),
    /// `f == g`, `f < g`, …
    Cmp(Box<Simple>, Cmp, Box<Simple>),
}

/// A literal.
#[derive(Debug, Clone)]
pub enum Lit {
    Null,
    Bool(bool),
    Int(isize),
    Str(String),
}

/// An object built by the filter.
#[derive(Debug)]
pub struct Obj {
    /// In the order written.
    members: Vec<(String, Simple)>,
    /// Member indexes in key order (Go's `json.Marshal` sorts keys
    /// bytewise).
    sorted: Vec<usize>,
}

/// A step jaq may fail on: let jaq run the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsure;

/// What a term gives: a value, or an object it built.
pub enum Value<'f> {
    Val(Val),
    Obj(&'f Obj, Vec<Value<'f>>),
}

impl Value<'_> {
    /// As jq tests a value: neither null nor false.
    fn truthy(&self) -> bool {
        match self {
            Value::Val(v) => v.as_bool(),
            Value::Obj(..) => true,
        }
    }

    fn val(self) -> Result<Val, Unsure> {
        match self {
            Value::Val(v) => Ok(v),
            Value::Obj(..) => Err(Unsure),
        }
    }
}

/// Where a term's output goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Printed (or put in an object that is printed).
    Printed,
    /// Looked into: indexed, compared, tested.
    Read,
}

impl Simple {
    /// `expr` as a simple filter, if it is one.
    pub fn compile(expr: &str) -> Option<Simple> {
        let term = jaq_core::load::parse(expr, |p| p.term())?;
        Simple::from_term(&term, Use::Printed)
    }

    fn from_term(t: &Term<&str>, usage: Use) -> Option<Simple> {
        let read = |t: &Term<&str>| Simple::from_term(t, Use::Read).map(Box::new);
        let same = |t: &Term<&str>| Simple::from_term(t, usage).map(Box::new);
        Some(match t {
            Term::Id => Simple::Id,
            // jaq reads an integer literal as a machine integer; others
            // (floats, big integers) are left to it.
            Term::Num(n) => Simple::Lit(Lit::Int(n.parse().ok()?)),
            Term::Str(None, _) => Simple::Lit(Lit::Str(literal(t)?)),
            Term::Call(name, args) => match (*name, args.as_slice()) {
                ("null", []) => Simple::Lit(Lit::Null),
                ("true", []) => Simple::Lit(Lit::Bool(true)),
                ("false", []) => Simple::Lit(Lit::Bool(false)),
                ("select", [f]) => Simple::Select(read(f)?),
                _ => return None,
            },
            Term::Obj(entries) if usage == Use::Printed => {
                let mut members: Vec<(String, Simple)> = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let key = literal(k)?;
                    if members.iter().any(|(seen, _)| *seen == key) {
                        return None;
                    }
                    let value = match v {
                        // `{name}` is `{name: .name}`.
                        None => Simple::Path(Box::new(Simple::Id), vec![key.clone()]),
                        Some(v) => Simple::from_term(v, Use::Printed)?,
                    };
                    members.push((key, value));
                }
                let mut sorted: Vec<usize> = (0..members.len()).collect();
                sorted.sort_by(|&a, &b| members[a].0.as_bytes().cmp(members[b].0.as_bytes()));
                Simple::Obj(Obj { members, sorted })
            }
            Term::Path(t, path) => {
                let mut keys = Vec::with_capacity(path.0.len());
                for (part, opt) in &path.0 {
                    match (part, opt) {
                        (Part::Index(k), Opt::Essential) => keys.push(literal(k)?),
                        _ => return None,
                    }
                }
                Simple::Path(read(t)?, keys)
            }
            Term::BinOp(l, op, r) => match op {
                BinaryOp::Pipe(None) => Simple::Pipe(read(l)?, same(r)?),
                BinaryOp::Alt => Simple::Alt(same(l)?, same(r)?),
                BinaryOp::Cmp(op) => Simple::Cmp(read(l)?, *op, read(r)?),
                _ => return None,
            },
            _ => return None,
        })
    }

    /// The filter's output for `input`: one value or none.
    pub fn eval<'f>(&'f self, input: &Val) -> Result<Option<Value<'f>>, Unsure> {
        Ok(Some(match self {
            Simple::Id => Value::Val(input.clone()),
            Simple::Lit(lit) => Value::Val(match lit {
                Lit::Null => Val::Null,
                Lit::Bool(b) => Val::Bool(*b),
                Lit::Int(n) => Val::from(*n),
                Lit::Str(s) => Val::from(s.clone()),
            }),
            Simple::Path(t, keys) => {
                let Some(v) = t.eval(input)? else {
                    return Ok(None);
                };
                let mut v = v.val()?;
                for key in keys {
                    v = match &v {
                        Val::Obj(map) => map
                            .iter()
                            .find(|(k, _)| matches!(k, Val::TStr(k) if k[..] == *key.as_bytes()))
                            .map_or(Val::Null, |(_, v)| v.clone()),
                        Val::Null => Val::Null,
                        _ => return Err(Unsure),
                    };
                }
                Value::Val(v)
            }
            Simple::Obj(obj) => {
                // Every member is evaluated, so that one jaq would fail on
                // is not hidden by an empty one before it.
                let mut values = Vec::with_capacity(obj.members.len());
                let mut empty = false;
                for (_, value) in &obj.members {
                    match value.eval(input)? {
                        Some(v) => values.push(v),
                        None => empty = true,
                    }
                }
                if empty {
                    return Ok(None);
                }
                Value::Obj(obj, values)
            }
            Simple::Alt(l, r) => match l.eval(input)? {
                Some(v) if v.truthy() => v,
                _ => return r.eval(input),
            },
            Simple::Pipe(l, r) => match l.eval(input)? {
                Some(v) => return r.eval(&v.val()?),
                None => return Ok(None),
            },
            Simple::Select(f) => match f.eval(input)? {
                Some(v) if v.truthy() => Value::Val(input.clone()),
                _ => return Ok(None),
            },
            Simple::Cmp(l, op, r) => {
                let (l, r) = (l.eval(input)?, r.eval(input)?);
                match (l, r) {
                    (Some(l), Some(r)) => Value::Val(Val::Bool(op.run(&l.val()?, &r.val()?))),
                    _ => return Ok(None),
                }
            }
        }))
    }
}

/// Writes `value` as `json.Marshal` does ([`gojson::write`]).
pub fn write(out: &mut Vec<u8>, value: &Value<'_>) -> Result<(), gojson::EncodeError> {
    match value {
        Value::Val(v) => gojson::write(out, v),
        Value::Obj(obj, values) => {
            out.push(b'{');
            for (n, &i) in obj.sorted.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                gojson::write_str(out, obj.members[i].0.as_bytes());
                out.push(b':');
                write(out, &values[i])?;
            }
            out.push(b'}');
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_common_shapes_and_nothing_else() {
        for expr in [
            ".",
            ".a",
            ".a.b",
            r#".["a b"]"#,
            "{ts: .event_ts, name, principal_id, granted}",
            "{ts: .event_ts, name, request: (.request // null)}",
            "select(.request.status_code >= 400) | .event_id",
            r#"select(.name == "x") | {a: 1, b: "s", c: true, d: null}"#,
            ".a // .b // 3",
        ] {
            assert!(Simple::compile(expr).is_some(), "{expr}");
        }
        for expr in [
            ".[]",
            ".a?",
            ".[0]",
            "keys",
            "{a: 1, a: 2}",
            "{(.k): 1}",
            "{$x}",
            ".a + 1",
            ".a, .b",
            r#""\(.a)""#,
            "def f: .; f",
            "length",
            "empty",
            ".a as $x | $x",
            "try .a",
            "not",
        ] {
            assert!(Simple::compile(expr).is_none(), "{expr}");
        }
    }
}
