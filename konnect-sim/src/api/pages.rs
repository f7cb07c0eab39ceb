//! Page-number paging and `deepObject` filters, shared by the portal list
//! and the identity lists (the audit-log API pages by cursor, `paging.rs`).
//!
//! Paging: `page[size]` (default [`crate::SimConfig::page_size_default`],
//! at most [`MAX_PAGE_SIZE`]) and `page[number]` (from 1); the answer's
//! `meta.page` is `{number, size, total}` with `total` the number of
//! matching items. A filter is `filter[field]=value` or
//! `filter[field][op]=value`; each list says which fields and operators it
//! takes and how it reports the others.

use serde_json::{Value, json};

use crate::problem::InvalidParameter;

/// The largest `page[size]`: larger ones are served this many (assumed;
/// the specs give no maximum).
pub(super) const MAX_PAGE_SIZE: usize = 100;

/// A page of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PageNumber {
    /// From 1.
    pub number: usize,
    pub size: usize,
}

impl PageNumber {
    /// Reads `page[size]` and `page[number]`; an empty value means the
    /// default. A value that is not a whole number is a 400 with the
    /// portal spec's `is_number` example; 0 is a 400 too.
    pub fn parse(
        pairs: &[(String, String)],
        default_size: usize,
    ) -> Result<PageNumber, Vec<InvalidParameter>> {
        let mut errors = Vec::new();
        let mut read = |name: &str, default: usize| match super::paging::query_value(pairs, name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            None => default,
            Some(text) => match text.parse::<usize>() {
                Ok(0) => {
                    errors.push(InvalidParameter::min(name, "query", 1));
                    default
                }
                Ok(n) => n,
                Err(_) => {
                    errors.push(InvalidParameter::new(
                        name,
                        "query",
                        Some("is_number"),
                        format!("\"{name}\" must be a number"),
                    ));
                    default
                }
            },
        };
        let size = read("page[size]", default_size.clamp(1, MAX_PAGE_SIZE));
        let number = read("page[number]", 1);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(PageNumber {
            number,
            size: size.min(MAX_PAGE_SIZE),
        })
    }

    /// The page's items out of all matching ones.
    pub fn slice<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .skip((self.number - 1).saturating_mul(self.size))
            .take(self.size)
            .cloned()
            .collect()
    }

    /// `{data, meta: {page: {number, size, total}}}`.
    pub fn body(&self, data: Vec<Value>, total: usize) -> Value {
        json!({
            "meta": {"page": {"number": self.number, "size": self.size, "total": total}},
            "data": data,
        })
    }
}

/// One `filter[...]` of the query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct FilterTerm {
    /// The query key as given (`filter[name][eq]`).
    pub key: String,
    pub field: String,
    /// `None` for `filter[field]=value`.
    pub op: Option<String>,
    pub value: String,
}

/// The `filter[...]` terms of the query; `Err` with the key of one that is
/// not `filter[field]` or `filter[field][op]`.
pub(super) fn filter_terms(pairs: &[(String, String)]) -> Result<Vec<FilterTerm>, String> {
    let mut terms = Vec::new();
    for (key, value) in pairs {
        let Some(rest) = key.strip_prefix("filter") else {
            continue;
        };
        let mut parts = Vec::new();
        let mut text = rest;
        while let Some(inner) = text.strip_prefix('[') {
            let Some(end) = inner.find(']') else {
                return Err(key.clone());
            };
            parts.push(inner[..end].to_string());
            text = &inner[end + 1..];
        }
        let (field, op) = match (text.is_empty(), parts.as_slice()) {
            (true, [field]) => (field.clone(), None),
            (true, [field, op]) => (field.clone(), Some(op.clone())),
            _ => return Err(key.clone()),
        };
        terms.push(FilterTerm {
            key: key.clone(),
            field,
            op,
            value: value.clone(),
        });
    }
    Ok(terms)
}

/// How a list can filter one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FieldFilter {
    /// Text with these operators; `bare` also takes `filter[field]=value`
    /// (as `eq`).
    Text {
        ops: &'static [&'static str],
        bare: bool,
    },
    /// `filter[field]=true|false`.
    Bool,
}

/// Why a term cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum BadTerm {
    /// The list cannot filter this field.
    UnknownField,
    /// Not one of these operators.
    UnknownOp(&'static [&'static str]),
    /// A boolean field with another value (or with an operator).
    NotBool,
}

/// Checks a term against the list's fields.
pub(super) fn check_term(
    term: &FilterTerm,
    fields: &[(&str, FieldFilter)],
) -> Result<FieldFilter, BadTerm> {
    let Some((_, filter)) = fields.iter().find(|(name, _)| *name == term.field) else {
        return Err(BadTerm::UnknownField);
    };
    match (filter, term.op.as_deref()) {
        (FieldFilter::Bool, None) if matches!(term.value.as_str(), "true" | "false") => Ok(*filter),
        (FieldFilter::Bool, _) => Err(BadTerm::NotBool),
        (FieldFilter::Text { bare: true, .. }, None) => Ok(*filter),
        (FieldFilter::Text { ops, .. }, None) => Err(BadTerm::UnknownOp(ops)),
        (FieldFilter::Text { ops, .. }, Some(op)) if ops.contains(&op) => Ok(*filter),
        (FieldFilter::Text { ops, .. }, Some(_)) => Err(BadTerm::UnknownOp(ops)),
    }
}

/// Whether a text field's value passes a checked term: `eq` (or a bare
/// value) and `neq` compare exactly, `contains` without case, `oeq` and
/// `ocontains` take a comma-separated list (any may match). A missing value
/// (`null`) passes only `neq`.
pub(super) fn text_matches(term: &FilterTerm, value: Option<&str>) -> bool {
    let op = term.op.as_deref().unwrap_or("eq");
    let Some(value) = value else {
        return op == "neq";
    };
    let contains = |part: &str| value.to_lowercase().contains(&part.to_lowercase());
    match op {
        "eq" => value == term.value,
        "neq" => value != term.value,
        "contains" => contains(&term.value),
        "oeq" => term.value.split(',').any(|v| v == value),
        "ocontains" => term.value.split(',').any(contains),
        _ => false,
    }
}

/// Whether a boolean field's value passes a checked term.
pub(super) fn bool_matches(term: &FilterTerm, value: bool) -> bool {
    term.value == if value { "true" } else { "false" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &str) -> Vec<(String, String)> {
        super::super::paging::query_pairs(query)
    }

    #[test]
    fn page_numbers_default_cap_and_reject() {
        assert_eq!(
            PageNumber::parse(&pairs(""), 10).unwrap(),
            PageNumber {
                number: 1,
                size: 10
            }
        );
        assert_eq!(
            PageNumber::parse(&pairs("page%5Bsize%5D=500&page%5Bnumber%5D=3"), 10).unwrap(),
            PageNumber {
                number: 3,
                size: MAX_PAGE_SIZE
            }
        );
        assert_eq!(
            PageNumber::parse(&pairs("page[size]=&page[number]="), 10).unwrap(),
            PageNumber {
                number: 1,
                size: 10
            }
        );
        let errors = PageNumber::parse(&pairs("page[size]=x&page[number]=0"), 10).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].field, "page[size]");
        assert_eq!(errors[0].rule, Some("is_number"));
        assert_eq!(errors[1].rule, Some("min"));
        let page = PageNumber { number: 2, size: 2 };
        assert_eq!(page.slice(&[1, 2, 3, 4, 5]), vec![3, 4]);
        assert_eq!(
            PageNumber { number: 4, size: 2 }.slice(&[1, 2, 3]),
            Vec::<i32>::new()
        );
    }

    #[test]
    fn filters_parse_check_and_match() {
        let terms =
            filter_terms(&pairs("filter[name][eq]=A&filter[rbac]=true&page[size]=1")).unwrap();
        assert_eq!(terms.len(), 2);
        assert_eq!(terms[0].field, "name");
        assert_eq!(terms[0].op.as_deref(), Some("eq"));
        assert_eq!(terms[1].op, None);
        assert!(filter_terms(&pairs("filter[a][b][c]=1")).is_err());
        assert!(filter_terms(&pairs("filter=1")).is_err());
        assert!(filter_terms(&pairs("filterx=1")).is_err());

        const OPS: &[&str] = &["eq", "contains"];
        let fields = [
            (
                "name",
                FieldFilter::Text {
                    ops: OPS,
                    bare: false,
                },
            ),
            ("rbac", FieldFilter::Bool),
        ];
        assert!(check_term(&terms[0], &fields).is_ok());
        assert!(check_term(&terms[1], &fields).is_ok());
        let term = |key: &str| filter_terms(&pairs(key)).unwrap().remove(0);
        assert_eq!(
            check_term(&term("filter[nope][eq]=1"), &fields),
            Err(BadTerm::UnknownField)
        );
        assert_eq!(
            check_term(&term("filter[name][neq]=1"), &fields),
            Err(BadTerm::UnknownOp(OPS))
        );
        assert_eq!(
            check_term(&term("filter[name]=1"), &fields),
            Err(BadTerm::UnknownOp(OPS))
        );
        assert_eq!(
            check_term(&term("filter[rbac]=yes"), &fields),
            Err(BadTerm::NotBool)
        );

        assert!(text_matches(
            &term("filter[n][contains]=por"),
            Some("My Portal")
        ));
        assert!(!text_matches(
            &term("filter[n][eq]=my portal"),
            Some("My Portal")
        ));
        assert!(text_matches(&term("filter[n][oeq]=a,b"), Some("b")));
        assert!(text_matches(
            &term("filter[n][ocontains]=x,TAL"),
            Some("portal")
        ));
        assert!(text_matches(&term("filter[n][neq]=a"), None));
        assert!(!text_matches(&term("filter[n]=a"), None));
        assert!(bool_matches(&term("filter[b]=false"), false));
    }
}
