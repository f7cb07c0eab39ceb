//! `--principal <email|name|uuid>`: the records of some principals.
//!
//! Records carry a principal's id (`principal_id`) and, only when Konnect
//! is configured so, its name (`principal_name`). A value the user gives
//! is matched against both: as an id (exactly, case aside), and as a name
//! against `principal_name`. An email or a name is also resolved, once
//! before the query starts, to the ids of the users, system accounts and
//! (from the lookup cache) portal developers that have it
//! ([`crate::query::names::Names::principal_ids`]); [`Principals`] holds
//! the result. Reading the principal from a record is [`RecordView`]'s.

use std::collections::BTreeSet;

use super::view::RecordView;

/// The principals `--principal` keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principals {
    /// Ids, lower case: the values given, and those they resolved to.
    ids: BTreeSet<String>,
    /// The values given that are not UUIDs, lower case, for
    /// `principal_name`.
    names: BTreeSet<String>,
}

impl Principals {
    /// The values as given (each an id, an email or a name).
    pub fn new<S: AsRef<str>>(values: &[S]) -> Principals {
        let mut p = Principals::default();
        for value in values {
            let value = value.as_ref().trim();
            if value.is_empty() {
                continue;
            }
            let lower = value.to_lowercase();
            if !is_uuid(value) {
                p.names.insert(lower.clone());
            }
            p.ids.insert(lower);
        }
        p
    }

    /// Adds an id a name or an email resolved to.
    pub fn add_id(&mut self, id: &str) {
        self.ids.insert(id.to_lowercase());
    }

    /// The values given that need resolving to ids (emails and names).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Whether the record is one of these principals'.
    pub fn matches(&self, view: &RecordView<'_>) -> bool {
        let has = |set: &BTreeSet<String>, v: &str| {
            // Ids and names are usually lower case already.
            set.contains(v) || set.contains(&v.to_lowercase())
        };
        view.principal_id
            .as_deref()
            .is_some_and(|id| has(&self.ids, id))
            || view
                .principal_name
                .as_deref()
                .is_some_and(|name| has(&self.names, name))
    }
}

/// Who a record's principal is, as far as looking its name up goes: its
/// id, and for a Dev Portal record the portal (whose developers are
/// looked up there).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrincipalKey {
    pub id: String,
    pub portal_id: Option<String>,
}

impl PrincipalKey {
    /// The key of the record `view` shows, if it names a principal.
    pub fn of(view: &RecordView<'_>) -> Option<PrincipalKey> {
        let id = view.principal_id.as_deref().filter(|id| !id.is_empty())?;
        Some(PrincipalKey {
            id: id.to_owned(),
            portal_id: view
                .portal_id
                .as_deref()
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
        })
    }
}

/// Whether `text` is a UUID (`8-4-4-4-12` hex digits).
pub fn is_uuid(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn matches(p: &Principals, line: &str) -> bool {
        let record = Record::from_slice(line.as_bytes()).unwrap();
        p.matches(&RecordView::of(&record))
    }

    const ALICE: &str = "87655c36-8d63-48fe-9a1e-53b28dfbc19b";

    #[test]
    fn ids_match_exactly_whatever_the_case() {
        let p = Principals::new(&[ALICE.to_uppercase()]);
        assert!(matches(
            &p,
            &format!(r#"{{"event_class_id":"konnect","principal_id":"{ALICE}"}}"#)
        ));
        assert!(!matches(
            &p,
            r#"{"event_class_id":"konnect","principal_id":"someone-else"}"#
        ));
        assert_eq!(p.names().count(), 0);
        // A CEF record's principal too.
        let cef = format!(
            "2025-06-18T21:02:36Z konghq.com CEF:0|KongInc|Konnect|1.0|konnect|Authz.x|1|principal_id={ALICE} granted=true"
        );
        assert!(matches(&p, &cef));
    }

    #[test]
    fn names_match_principal_name_and_resolved_ids() {
        let mut p = Principals::new(&["Alice@Example.com", " "]);
        assert_eq!(p.names().collect::<Vec<_>>(), ["alice@example.com"]);
        let named = r#"{"event_class_id":"konnect","principal_id":"x","principal_name":"alice@example.com"}"#;
        assert!(matches(&p, named));
        let by_id = format!(r#"{{"event_class_id":"konnect","principal_id":"{ALICE}"}}"#);
        assert!(!matches(&p, &by_id));
        p.add_id(ALICE);
        assert!(matches(&p, &by_id));
        // A non-UUID id (the pull spec's example) is matched as given.
        let p = Principals::new(&["user_1234567890abcdef"]);
        assert!(matches(
            &p,
            r#"{"type":"authorization","ts":"2026-01-01T00:00:00Z","principal_id":"user_1234567890abcdef"}"#
        ));
    }

    #[test]
    fn uuid_shape() {
        assert!(is_uuid(ALICE));
        assert!(!is_uuid("87655c36-8d63-48fe-9a1e-53b28dfbc19"));
        assert!(!is_uuid("87655c36x8d63-48fe-9a1e-53b28dfbc19b"));
        assert!(!is_uuid("alice@example.com"));
    }
}
