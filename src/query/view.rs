//! The fields of one record that the alert rules ([`super::alert`]), the
//! principal filter ([`super::principal`]) and the summary
//! ([`crate::output::summary`]) read, whatever format carried it.
//!
//! Konnect names the same facts differently per format: the webhook's JSON
//! (and CEF, seen as that JSON, and cps, whose `event` holds it) has
//! `name` (`AUTHENTICATION_OUTCOME_LOCKED`), `severity`, `success` (the
//! string `"true"`/`"false"` in Kong's samples, a boolean by its prose),
//! `granted`, `kong_initiated` and `status`; the pull API's v3 `AuditLog`
//! has `outcome` (`locked`), `successful`, `granted` and `status_code`, and
//! no severity. A [`RecordView`] reads both into one shape, borrowing the
//! record's bytes, and is built only when a filter or the summary needs it
//! (a plain query never pays for it). A field of an unexpected type is
//! treated as absent, never as an error: records pass through untouched.
//!
//! What a record *is* (its time, type and signature) stays
//! [`crate::record`]'s; what to do with the view is the callers'.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::record::{EventType, Format, Record};

/// What the rules, the principal filter and the summary read of a record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// The record's type, in the pull API's terms ([`Record::kind`]).
    pub kind: Option<EventType>,
    /// The webhook's event name: `AUTHENTICATION_OUTCOME_*`, `Authz.*`,
    /// `Ingress`.
    pub name: Option<Cow<'a, str>>,
    /// The webhook's authentication class (`AUTHENTICATION_TYPE_PAT`) or
    /// authorization service (`konnect`).
    pub event_class_id: Option<Cow<'a, str>>,
    /// The pull API's authentication outcome (`locked`, `success`).
    pub outcome: Option<Cow<'a, str>>,
    /// The pull API's authentication type (`pat`, `sso`).
    pub authentication_type: Option<Cow<'a, str>>,
    /// The webhook's `severity` (a number, or a string holding one).
    pub severity: Option<i64>,
    /// The webhook's `success` or the pull API's `successful`.
    pub success: Option<bool>,
    pub granted: Option<bool>,
    /// Present (and `true`) only on actions Kong performed itself.
    pub kong_initiated: Option<bool>,
    /// The webhook's `status` or the pull API's `status_code`.
    pub status: Option<i64>,
    pub principal_id: Option<Cow<'a, str>>,
    /// Konnect's resolved name (present only when configured), or the one
    /// `--resolve` added.
    pub principal_name: Option<Cow<'a, str>>,
    /// Set on Dev Portal records: their principal is a portal developer.
    pub portal_id: Option<Cow<'a, str>>,
    /// An authorization's action (`list`).
    pub action: Option<Cow<'a, str>>,
    /// The pull API's authorization resource (a KRN).
    pub resource: Option<Cow<'a, str>>,
    /// A gateway access's method: the webhook's `act`, the pull's `method`.
    pub method: Option<Cow<'a, str>>,
    /// A gateway access's path: the webhook's `request`, the pull's `uri`.
    pub path: Option<Cow<'a, str>>,
}

impl<'a> RecordView<'a> {
    /// The view of `record` (its JSON; for cps the wrapped event; for CEF
    /// the JSON object it reads as).
    pub fn of(record: &'a Record) -> RecordView<'a> {
        let json = record.json();
        let fields = match record.format() {
            Format::Cps => Fields::read(json)
                .event
                .map(|inner| Fields::read(inner.get().as_bytes()))
                .unwrap_or_default(),
            _ => Fields::read(json),
        };
        fields.into_view(record.kind())
    }

    /// An authentication's outcome in the pull API's words, as the record
    /// has it (lower case in pull records, upper case in webhook names):
    /// `success`, `invalid_password`, `not_found`, `token_expired`,
    /// `locked`, `disabled`, `invalid`. See [`RecordView::auth_outcome_is`].
    pub fn auth_outcome(&self) -> Option<&str> {
        if let Some(outcome) = &self.outcome {
            return Some(outcome);
        }
        self.name
            .as_deref()?
            .strip_prefix("AUTHENTICATION_OUTCOME_")
    }

    /// Whether the authentication's outcome is `word` (lower case).
    pub fn auth_outcome_is(&self, word: &str) -> bool {
        self.auth_outcome()
            .is_some_and(|o| o.eq_ignore_ascii_case(word))
    }

    /// Whether an authentication succeeded: its `success`/`successful`,
    /// else its outcome.
    pub fn auth_succeeded(&self) -> Option<bool> {
        self.success.or_else(|| {
            self.auth_outcome()
                .map(|o| o.eq_ignore_ascii_case("success"))
        })
    }
}

/// The members read, each as a [`Scalar`] so that one of an unexpected
/// type leaves that field unknown instead of failing the record; the rest
/// are skipped.
#[derive(Deserialize, Default)]
struct RawFields<'a> {
    #[serde(borrow, default)]
    name: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    event_class_id: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    outcome: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    authentication_type: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    severity: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    success: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    successful: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    granted: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    kong_initiated: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    status: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    status_code: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    principal_id: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    principal_name: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    portal_id: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    action: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    resource: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    act: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    method: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    request: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    uri: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
}

/// A member's value as the view reads it: a string (borrowed unless it
/// had escapes), an integer, a boolean, or anything else (skipped).
#[derive(Debug, Default)]
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    #[default]
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(Scalar::Other, Scalar::Int))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The members of one object, raw, or owned when the object had to be
/// read whole.
#[derive(Default)]
struct Fields<'a> {
    raw: RawFields<'a>,
    /// A record with a repeated member (which serde refuses and Go's
    /// decoder, so jq, reads with the last one winning) is read as a value.
    whole: Option<serde_json::Value>,
    event: Option<&'a RawValue>,
}

impl<'a> Fields<'a> {
    fn read(text: &'a [u8]) -> Fields<'a> {
        match serde_json::from_slice::<RawFields<'a>>(text) {
            Ok(raw) => Fields {
                event: raw.event,
                raw,
                whole: None,
            },
            Err(_) => Fields {
                whole: serde_json::from_slice(text).ok(),
                ..Fields::default()
            },
        }
    }

    fn into_view(self, kind: Option<EventType>) -> RecordView<'a> {
        if let Some(value) = self.whole {
            return view_of_value(&value, kind);
        }
        let r = self.raw;
        RecordView {
            kind,
            name: string(r.name),
            event_class_id: string(r.event_class_id),
            outcome: string(r.outcome),
            authentication_type: string(r.authentication_type),
            severity: integer(r.severity),
            success: boolean(r.success).or_else(|| boolean(r.successful)),
            granted: boolean(r.granted),
            kong_initiated: boolean(r.kong_initiated),
            status: integer(r.status).or_else(|| integer(r.status_code)),
            principal_id: string(r.principal_id),
            principal_name: string(r.principal_name),
            portal_id: string(r.portal_id),
            action: string(r.action),
            resource: string(r.resource),
            method: string(r.act).or_else(|| string(r.method)),
            path: string(r.request).or_else(|| string(r.uri)),
        }
    }
}

/// The view of a record read whole (owned strings).
fn view_of_value(value: &serde_json::Value, kind: Option<EventType>) -> RecordView<'static> {
    let value = match value.get("event") {
        Some(inner) if inner.is_object() && value.get("event_ts").is_none() => inner,
        _ => value,
    };
    let raw = |key: &str| value.get(key).map(|v| v.to_string());
    let text = |key: &str| -> Option<Cow<'static, str>> {
        value
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(|s| Cow::Owned(s.to_owned()))
    };
    let int = |key: &str| raw(key).and_then(|r| integer_text(&r));
    let boolean = |key: &str| raw(key).and_then(|r| boolean_text(&r));
    RecordView {
        kind,
        name: text("name"),
        event_class_id: text("event_class_id"),
        outcome: text("outcome"),
        authentication_type: text("authentication_type"),
        severity: int("severity"),
        success: boolean("success").or_else(|| boolean("successful")),
        granted: boolean("granted"),
        kong_initiated: boolean("kong_initiated"),
        status: int("status").or_else(|| int("status_code")),
        principal_id: text("principal_id"),
        principal_name: text("principal_name"),
        portal_id: text("portal_id"),
        action: text("action"),
        resource: text("resource"),
        method: text("act").or_else(|| text("method")),
        path: text("request").or_else(|| text("uri")),
    }
}

/// The string a member holds, if it is a string.
fn string(value: Option<Scalar<'_>>) -> Option<Cow<'_, str>> {
    match value? {
        Scalar::Str(s) => Some(s),
        _ => None,
    }
}

/// A boolean, or a string holding `true`/`false` (the webhook's JSON writes
/// `success` as a string, and CEF has no types at all).
fn boolean(value: Option<Scalar<'_>>) -> Option<bool> {
    match value? {
        Scalar::Bool(b) => Some(b),
        Scalar::Str(s) => boolean_text(&s),
        _ => None,
    }
}

fn boolean_text(raw: &str) -> Option<bool> {
    match raw.trim().trim_matches('"') {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// An integer, or a string holding one.
fn integer(value: Option<Scalar<'_>>) -> Option<i64> {
    match value? {
        Scalar::Int(i) => Some(i),
        Scalar::Str(s) => integer_text(&s),
        _ => None,
    }
}

fn integer_text(raw: &str) -> Option<i64> {
    raw.trim().trim_matches('"').trim().parse().ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn view_of(line: &str) -> RecordView<'static> {
        let record = Record::from_slice(line.as_bytes()).unwrap();
        let view = RecordView::of(&record);
        // Owned copies, so the record can go.
        let own = |c: Option<Cow<'_, str>>| c.map(|c| Cow::Owned(c.into_owned()));
        RecordView {
            kind: view.kind,
            name: own(view.name),
            event_class_id: own(view.event_class_id),
            outcome: own(view.outcome),
            authentication_type: own(view.authentication_type),
            severity: view.severity,
            success: view.success,
            granted: view.granted,
            kong_initiated: view.kong_initiated,
            status: view.status,
            principal_id: own(view.principal_id),
            principal_name: own(view.principal_name),
            portal_id: own(view.portal_id),
            action: own(view.action),
            resource: own(view.resource),
            method: own(view.method),
            path: own(view.path),
        }
    }

    /// Kong's samples, one line each (see konnect-sim/SOURCES.md).
    pub(crate) const SAMPLES_JSON: &str =
        include_str!("../../konnect-sim/samples/derived/records.json.jsonl");
    pub(crate) const SAMPLES_CEF: &str =
        include_str!("../../konnect-sim/samples/derived/records.cef");
    pub(crate) const SAMPLES_CPS: &str =
        include_str!("../../konnect-sim/samples/derived/records.cps.jsonl");

    #[test]
    fn the_three_webhook_formats_give_the_same_view() {
        let json: Vec<_> = SAMPLES_JSON.lines().map(view_of).collect();
        let cps: Vec<_> = SAMPLES_CPS.lines().map(view_of).collect();
        assert_eq!(json, cps);
        let auth = &json[0];
        assert_eq!(auth.kind, Some(EventType::Authentication));
        assert_eq!(auth.success, Some(true));
        assert_eq!(auth.severity, Some(0));
        assert!(auth.auth_outcome_is("success"));
        assert_eq!(
            auth.principal_id.as_deref(),
            Some("87655c36-8d63-48fe-9a1e-53b28dfbc19b")
        );
        let portal = &json[1];
        assert_eq!(
            portal.portal_id.as_deref(),
            Some("3e551b39-227d-4297-b911-e68fd5d77c17")
        );
        let authz = &json[2];
        assert_eq!(authz.granted, Some(true));
        assert_eq!(authz.action.as_deref(), Some("list"));
        assert_eq!(authz.kong_initiated, None);
        let access = &json[3];
        assert_eq!(access.status, Some(201));
        assert_eq!(access.method.as_deref(), Some("POST"));
        // CEF keeps `success` as the string "true", as the JSON format.
        let cef: Vec<_> = SAMPLES_CEF.lines().map(view_of).collect();
        assert_eq!(cef[0].success, Some(true));
        assert_eq!(cef[0].kind, Some(EventType::Authentication));
        assert_eq!(cef[2].granted, Some(true));
        assert_eq!(cef[3].status, Some(200));
        assert_eq!(cef[3].severity, Some(1));
    }

    #[test]
    fn pull_records_name_the_same_facts_differently() {
        let v = view_of(
            r#"{"type":"authentication","ts":"2026-08-23T14:00:00Z","successful":false,"outcome":"locked","authentication_type":"basic","principal_id":"u1","signature":"s"}"#,
        );
        assert_eq!(v.success, Some(false));
        assert_eq!(v.auth_outcome(), Some("locked"));
        assert!(v.auth_outcome_is("locked"));
        assert_eq!(v.severity, None);
        let v = view_of(
            r#"{"type":"gateway_access","ts":"2026-08-23T14:00:00Z","method":"GET","uri":"/x","status_code":503,"signature":"s"}"#,
        );
        assert_eq!(v.status, Some(503));
        assert_eq!(v.method.as_deref(), Some("GET"));
        assert_eq!(v.path.as_deref(), Some("/x"));
    }

    #[test]
    fn odd_types_are_absent_and_repeated_members_are_read_as_go_does() {
        let v = view_of(
            r#"{"event_class_id":"konnect","event_ts":"2025-01-01T00:00:00Z","granted":"maybe","severity":[1],"status":"500"}"#,
        );
        assert_eq!(v.granted, None);
        assert_eq!(v.severity, None);
        assert_eq!(v.status, Some(500));
        let v = view_of(
            r#"{"event_class_id":"konnect","event_ts":"2025-01-01T00:00:00Z","granted":true,"granted":false}"#,
        );
        assert_eq!(v.granted, Some(false));
        let v = view_of(
            r#"{"event":{"event_class_id":"konnect","event_ts":"2025-01-01T00:00:00Z","granted":true,"granted":false}}"#,
        );
        assert_eq!(v.granted, Some(false));
    }
}
