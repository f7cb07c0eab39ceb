//! One audit record, whatever carried it: the raw bytes exactly as received,
//! and a view of the few things every feature asks of a record.
//!
//! A record arrives as one line from the webhook (Konnect's JSON format, its
//! CEF format, or cps, which wraps the JSON object in `{"event": …}`), from
//! the pull API (the v3 `AuditLog` shape: `ts`, `type`, `signature`), or
//! from a stored or exported file holding any of those. The bytes are never
//! re-serialised: they are what is stored, what `-o jsonl` prints and what
//! Konnect signed. [`Record::new`] finds the format from the content and
//! reads, in one pass over the bytes, what the query engine needs: the
//! record's own time, its event type, where its signature is and the Dev
//! Portal it came from (`portal_id`, present only on a portal's records).
//! The rest waits until asked for: the signature and portal are ranges of
//! the bytes (decoded only if they hold escapes), and a CEF record's JSON
//! object, which `--jq`, `--columns` and `-o json` see ([`cef`]), is built
//! the first time it is wanted. A JSON record is read by a scanner that
//! builds nothing (`scan`); only a record it is not sure of goes through
//! serde_json, which also words the errors.
//!
//! Deciding what to do with a record (window, type, dedup, printing) is left
//! to [`crate::query`] and [`crate::output`]; checking its signature to the
//! verifier.

pub mod cef;
mod scan;

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use bytes::Bytes;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::value::RawValue;

/// How a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Konnect's webhook JSON: one flat object with `event_ts`, `name`,
    /// `event_class_id`, `sig`.
    Json,
    /// Konnect's webhook cps: `{"event": <the JSON object>}`.
    Cps,
    /// Konnect's webhook CEF: `<time> <host> CEF:0|vendor|product|…|k=v …`.
    Cef,
    /// The pull API's v3 shape: `ts`, `type`, `signature`.
    Pull,
    /// Some other JSON object: printed and filtered, with no time or type.
    OtherJson,
}

/// The pull API's event types, which `--type` takes for every source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Authentication,
    Authorization,
    GatewayAccess,
}

impl EventType {
    /// The pull API's name, as `--type` and `filter[type]` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Authentication => "authentication",
            EventType::Authorization => "authorization",
            EventType::GatewayAccess => "gateway_access",
        }
    }

    /// Reads a `--type` value: the pull API's three names, and `access`
    /// (the webhook's word for gateway access events) as an alias.
    pub fn parse(name: &str) -> Option<EventType> {
        match name {
            "authentication" => Some(EventType::Authentication),
            "authorization" => Some(EventType::Authorization),
            "gateway_access" | "access" => Some(EventType::GatewayAccess),
            _ => None,
        }
    }

    /// The type of a webhook record from its CEF signature id
    /// (`event_class_id`) and name: `AUTHENTICATION_*` is authentication,
    /// `konnect` (names `Authz.*`) authorization, `KongGateway` (name
    /// `Ingress`) gateway access.
    pub fn of_webhook(event_class_id: Option<&str>, name: Option<&str>) -> Option<EventType> {
        match (event_class_id, name) {
            (Some(id), _) if id.starts_with("AUTHENTICATION_") => Some(EventType::Authentication),
            (Some("konnect"), _) => Some(EventType::Authorization),
            (Some("KongGateway"), _) => Some(EventType::GatewayAccess),
            (_, Some(name)) if name.starts_with("AUTHENTICATION_OUTCOME_") => {
                Some(EventType::Authentication)
            }
            (_, Some(name)) if name.starts_with("Authz.") => Some(EventType::Authorization),
            (_, Some("Ingress")) => Some(EventType::GatewayAccess),
            _ => None,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a line is not an audit record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotARecord {
    #[error("empty line")]
    Empty,
    #[error("not a JSON object or a CEF line")]
    UnknownFormat,
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("invalid CEF: {0}")]
    InvalidCef(&'static str),
}

/// A record's identity for removing duplicates: 128 bits of SHA-256 over
/// its signature (`sig` or `signature`) when it has one, else over its raw
/// bytes. Two deliveries of one event carry the same signature; a record
/// without one is a duplicate only of the very same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupKey(pub u128);

impl DedupKey {
    fn of(tag: &[u8], bytes: &[u8]) -> DedupKey {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(tag);
        ctx.update(bytes);
        let digest = ctx.finish();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest.as_ref()[..16]);
        DedupKey(u128::from_be_bytes(first))
    }
}

/// A string member of a record (its signature, its portal), kept where it
/// is rather than copied.
#[derive(Clone)]
enum Text {
    None,
    /// A range of the raw bytes (valid UTF-8), as stored.
    At(Range<u32>),
    /// Decoded from a string with escapes.
    Decoded(Box<str>),
}

impl Text {
    /// The string `text` found in `raw`, if `keep` takes it: a range when
    /// `text` borrows `raw`'s bytes, else a copy.
    fn of(raw: &[u8], text: Option<Cow<'_, str>>, keep: impl Fn(&str) -> bool) -> Text {
        let Some(text) = text.filter(|s| keep(s)) else {
            return Text::None;
        };
        let start = (text.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
        match &text {
            Cow::Borrowed(s) if start <= raw.len() && raw.len() - start >= s.len() => {
                match (u32::try_from(start), u32::try_from(start + s.len())) {
                    (Ok(a), Ok(b)) => Text::At(a..b),
                    _ => Text::Decoded(text.into_owned().into_boxed_str()),
                }
            }
            _ => Text::Decoded(text.into_owned().into_boxed_str()),
        }
    }

    fn get<'a>(&'a self, raw: &'a [u8]) -> Option<&'a str> {
        match self {
            Text::None => None,
            Text::At(at) => std::str::from_utf8(&raw[at.start as usize..at.end as usize]).ok(),
            Text::Decoded(s) => Some(s),
        }
    }
}

/// One audit record: its raw bytes and what was read from them.
#[derive(Clone)]
pub struct Record {
    raw: Bytes,
    format: Format,
    time: Option<Timestamp>,
    kind: Option<EventType>,
    signature: Text,
    /// `portal_id`: the Dev Portal whose audit log this record is.
    portal_id: Text,
    /// The JSON object of a CEF record ([`cef::to_json`]), built when first
    /// asked for.
    cef_json: OnceLock<Bytes>,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("raw", &String::from_utf8_lossy(&self.raw))
            .field("format", &self.format)
            .field("time", &self.time)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Record {
    /// Reads one line (without its newline; surrounding blanks are
    /// ignored for detection but kept in the bytes).
    pub fn new(raw: Bytes) -> Result<Record, NotARecord> {
        let text = raw.trim_ascii();
        match text.first() {
            None => Err(NotARecord::Empty),
            Some(b'{') => Self::from_json(raw.clone(), text),
            Some(_) if cef::looks_like_cef(text) => Self::from_cef(raw.clone(), text),
            Some(_) => Err(NotARecord::UnknownFormat),
        }
    }

    /// Like [`Record::new`], for a line borrowed from a buffer.
    pub fn from_slice(raw: &[u8]) -> Result<Record, NotARecord> {
        Record::new(Bytes::copy_from_slice(raw))
    }

    fn from_json(raw: Bytes, text: &[u8]) -> Result<Record, NotARecord> {
        let probe = Probe::read(text)?;
        let (format, fields) = match &probe {
            Probe {
                event: Some(inner),
                event_ts: None,
                ts: None,
                ..
            } if inner.starts_with(b"{") => (Format::Cps, Probe::read(inner).unwrap_or_default()),
            Probe { ts: Some(_), .. } => (Format::Pull, probe),
            Probe {
                event_ts: Some(_), ..
            }
            | Probe {
                event_class_id: Some(_),
                ..
            } => (Format::Json, probe),
            _ => (Format::OtherJson, probe),
        };
        let time = match format {
            Format::Pull => fields.ts.as_deref().and_then(parse_time),
            _ => fields.event_ts.as_deref().and_then(parse_time),
        };
        let kind = match format {
            Format::Pull => fields
                .kind
                .as_deref()
                .and_then(EventType::parse)
                .or_else(|| {
                    // The v3 AuthenticationLog does not require `type`.
                    fields
                        .authentication_type
                        .is_some()
                        .then_some(EventType::Authentication)
                }),
            Format::OtherJson => fields.kind.as_deref().and_then(EventType::parse),
            _ => EventType::of_webhook(fields.event_class_id.as_deref(), fields.name.as_deref()),
        };
        let signature = Text::of(&raw, fields.sig.or(fields.signature), |s| !s.is_empty());
        let portal_id = Text::of(&raw, fields.portal_id, |s| !s.trim().is_empty());
        Ok(Record {
            raw,
            format,
            time,
            kind,
            signature,
            portal_id,
            cef_json: OnceLock::new(),
        })
    }

    fn from_cef(raw: Bytes, text: &[u8]) -> Result<Record, NotARecord> {
        let parsed = cef::parse(text).map_err(NotARecord::InvalidCef)?;
        let time = parsed.time.and_then(parse_time);
        let kind = EventType::of_webhook(parsed.event_class_id(), parsed.name());
        let signature = Text::of(&raw, parsed.extension("sig"), |s| !s.is_empty());
        let portal_id = Text::of(&raw, parsed.extension("portal_id"), |s| {
            !s.trim().is_empty()
        });
        Ok(Record {
            raw,
            format: Format::Cef,
            time,
            kind,
            signature,
            portal_id,
            cef_json: OnceLock::new(),
        })
    }

    /// The same record in bytes of its own, for one that is kept while the
    /// rest of the buffer it was read from goes (a record borrowed from a
    /// block of a file would keep the whole block).
    pub fn detached(&self) -> Record {
        Record {
            raw: Bytes::copy_from_slice(&self.raw),
            ..self.clone()
        }
    }

    /// The bytes exactly as received.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The record's own time: `event_ts` (webhook JSON), `event.event_ts`
    /// (cps), the CEF line's leading timestamp, or `ts` (pull).
    pub fn time(&self) -> Option<Timestamp> {
        self.time
    }

    /// The record's event type, in the pull API's terms.
    pub fn kind(&self) -> Option<EventType> {
        self.kind
    }

    /// The record's signature: `sig` (webhook) or `signature` (pull).
    pub fn signature(&self) -> Option<&str> {
        self.signature.get(&self.raw)
    }

    /// The Dev Portal this record came from (its `portal_id`, in any
    /// format); `None` for the organisation's records.
    pub fn portal_id(&self) -> Option<&str> {
        self.portal_id.get(&self.raw)
    }

    /// The key that identifies this record among deliveries of the same
    /// events (see [`DedupKey`]).
    pub fn dedup_key(&self) -> DedupKey {
        match self.signature() {
            Some(sig) => DedupKey::of(b"sig:", sig.as_bytes()),
            None => DedupKey::of(b"raw:", self.raw.trim_ascii()),
        }
    }

    /// The key of these exact bytes (surrounding blanks aside), signed or
    /// not: the listener's replay gate, where a copy with a genuine `sig`
    /// over changed content must not pass for the genuine record.
    pub fn bytes_key(&self) -> DedupKey {
        DedupKey::of(b"raw:", self.raw.trim_ascii())
    }

    /// The record as a JSON text: the raw bytes, except for CEF, whose
    /// header and extensions become an object shaped like Konnect's JSON
    /// format ([`cef`]).
    pub fn json(&self) -> &[u8] {
        match self.format {
            Format::Cef => self.cef_json(),
            _ => self.raw.trim_ascii(),
        }
    }

    /// [`Record::json`] as [`Bytes`] sharing the record's (no copy).
    pub fn json_bytes(&self) -> Bytes {
        match self.format {
            Format::Cef => self.cef_json().clone(),
            _ => self.raw.slice_ref(self.raw.trim_ascii()),
        }
    }

    fn cef_json(&self) -> &Bytes {
        self.cef_json.get_or_init(|| {
            // The line parsed when the record was made.
            cef::to_json(self.raw.trim_ascii())
                .unwrap_or_default()
                .into()
        })
    }
}

/// Parses an RFC 3339 time (`Z` or a numeric offset; blanks around it
/// ignored) with [`crate::time::parse_rfc3339`].
pub fn parse_time(text: &str) -> Option<Timestamp> {
    crate::time::parse_rfc3339(text.trim()).ok()
}

/// The top-level members of a JSON record that the view reads; the rest are
/// skipped without building values. Every member is taken as raw JSON, so
/// that one of an unexpected type (a numeric `event_ts`) leaves that field
/// unknown instead of failing the record.
#[derive(Debug, Default, PartialEq)]
struct Probe<'a> {
    event_ts: Option<Cow<'a, str>>,
    ts: Option<Cow<'a, str>>,
    kind: Option<Cow<'a, str>>,
    event_class_id: Option<Cow<'a, str>>,
    name: Option<Cow<'a, str>>,
    sig: Option<Cow<'a, str>>,
    signature: Option<Cow<'a, str>>,
    authentication_type: Option<Cow<'a, str>>,
    portal_id: Option<Cow<'a, str>>,
    /// The `event` member as JSON text.
    event: Option<&'a [u8]>,
}

#[derive(Deserialize)]
struct RawProbe<'a> {
    #[serde(borrow, default)]
    event_ts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ts: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event_class_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sig: Option<&'a RawValue>,
    #[serde(borrow, default)]
    signature: Option<&'a RawValue>,
    #[serde(borrow, default)]
    authentication_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    portal_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
}

impl<'a> Probe<'a> {
    /// Reads the probed members of `text` (trimmed, starting with `{`).
    fn read(text: &'a [u8]) -> Result<Probe<'a>, NotARecord> {
        match scan::scan(text) {
            Some(members) => Ok(Probe::at(text, &members)),
            None => Self::read_slowly(text),
        }
    }

    /// The members [`scan::scan`] found.
    fn at(text: &'a [u8], m: &scan::Members) -> Probe<'a> {
        let value = |at: &Option<Range<usize>>| at.clone().map(|r| &text[r]);
        let string = |at: &Option<Range<usize>>| -> Option<Cow<'a, str>> {
            let raw = value(at)?;
            // Scanned: valid UTF-8 and, unless escaped, the string itself.
            let raw = std::str::from_utf8(raw).ok()?;
            if !raw.starts_with('"') {
                return None;
            }
            if !raw.contains('\\') {
                return Some(Cow::Borrowed(&raw[1..raw.len() - 1]));
            }
            serde_json::from_str::<Cow<'_, str>>(raw).ok()
        };
        Probe {
            event_ts: string(&m.event_ts),
            ts: string(&m.ts),
            kind: string(&m.kind),
            event_class_id: string(&m.event_class_id),
            name: string(&m.name),
            sig: string(&m.sig),
            signature: string(&m.signature),
            authentication_type: string(&m.authentication_type),
            portal_id: string(&m.portal_id),
            // serde_json reads `null` as no member.
            event: value(&m.event).filter(|v| *v != b"null"),
        }
    }

    fn read_slowly(text: &'a [u8]) -> Result<Probe<'a>, NotARecord> {
        match serde_json::from_slice::<RawProbe<'a>>(text) {
            Ok(raw) => Ok(Probe {
                event_ts: string(raw.event_ts),
                ts: string(raw.ts),
                kind: string(raw.kind),
                event_class_id: string(raw.event_class_id),
                name: string(raw.name),
                sig: string(raw.sig),
                signature: string(raw.signature),
                authentication_type: string(raw.authentication_type),
                portal_id: string(raw.portal_id),
                event: raw.event.map(|e| e.get().as_bytes()),
            }),
            // serde refuses a repeated member, which Go's decoder (and so
            // jq) accepts, the last one winning: read such a record whole.
            Err(e) if e.to_string().starts_with("duplicate field") => Self::read_whole(text),
            Err(e) => Err(NotARecord::InvalidJson(e.to_string())),
        }
    }

    fn read_whole(text: &[u8]) -> Result<Probe<'a>, NotARecord> {
        let value: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| NotARecord::InvalidJson(e.to_string()))?;
        let field = |name: &str| -> Option<Cow<'a, str>> {
            value
                .get(name)
                .and_then(|v| v.as_str())
                .map(|s| Cow::Owned(s.to_owned()))
        };
        Ok(Probe {
            event_ts: field("event_ts"),
            ts: field("ts"),
            kind: field("type"),
            event_class_id: field("event_class_id"),
            name: field("name"),
            sig: field("sig"),
            signature: field("signature"),
            authentication_type: field("authentication_type"),
            portal_id: field("portal_id"),
            event: None,
        })
    }
}

/// The string a raw member holds, if it is a string.
fn string(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
    let raw = raw?.get();
    if !raw.starts_with('"') {
        return None;
    }
    // Unescaped strings borrow the record's bytes.
    serde_json::from_str::<Cow<'_, str>>(raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: &str) -> Record {
        Record::new(Bytes::copy_from_slice(line.as_bytes())).unwrap()
    }

    #[test]
    fn webhook_json_gives_time_type_and_signature() {
        let r = record(
            r#"{"cef_version":0,"event_class_id":"konnect","event_ts":"2025-05-16T00:28:01Z","name":"Authz.portals","sig":"abc","trace_id":8809518331380001234}"#,
        );
        assert_eq!(r.format(), Format::Json);
        assert_eq!(r.time(), Some("2025-05-16T00:28:01Z".parse().unwrap()));
        assert_eq!(r.kind(), Some(EventType::Authorization));
        assert_eq!(r.signature(), Some("abc"));
        assert_eq!(r.json(), r.raw().as_ref());
    }

    #[test]
    fn a_dev_portal_record_names_its_portal_in_every_format() {
        let portal = Some("3e551b39-227d-4297-b911-e68fd5d77c17");
        // Kong's verbatim Dev Portal sample, in the three webhook formats.
        let cef = include_str!("testdata/records.cef")
            .lines()
            .find(|l| l.contains("|Dev-Portal|"))
            .unwrap();
        let json = r#"{"cef_version":0,"event_class_id":"AUTHENTICATION_TYPE_BASIC","event_product":"Dev-Portal","event_ts":"2025-06-23T14:28:47Z","name":"AUTHENTICATION_OUTCOME_SUCCESS","portal_id":"3e551b39-227d-4297-b911-e68fd5d77c17","sig":"XQC3"}"#;
        let cps = format!(r#"{{"event":{json}}}"#);
        for line in [cef, json, &cps] {
            let r = record(line);
            assert_eq!(r.portal_id(), portal, "{line}");
            assert_eq!(r.kind(), Some(EventType::Authentication));
        }
        // The organisation's records have none; an empty one is none.
        assert_eq!(
            record(r#"{"event_class_id":"konnect","event_ts":"2025-01-01T00:00:00Z"}"#).portal_id(),
            None
        );
        assert_eq!(
            record(r#"{"event_ts":"2025-01-01T00:00:00Z","portal_id":""}"#).portal_id(),
            None
        );
    }

    #[test]
    fn webhook_types_follow_the_event_class() {
        let kind = |class: &str, name: &str| {
            record(&format!(
                r#"{{"event_class_id":"{class}","name":"{name}","event_ts":"2025-01-01T00:00:00Z"}}"#
            ))
            .kind()
        };
        assert_eq!(
            kind("AUTHENTICATION_TYPE_PAT", "AUTHENTICATION_OUTCOME_SUCCESS"),
            Some(EventType::Authentication)
        );
        assert_eq!(
            kind("konnect", "Authz.control-planes"),
            Some(EventType::Authorization)
        );
        assert_eq!(
            kind("KongGateway", "Ingress"),
            Some(EventType::GatewayAccess)
        );
        assert_eq!(kind("Other", "Thing"), None);
    }

    #[test]
    fn cps_reads_the_wrapped_event() {
        let r = record(
            r#"{"event":{"event_class_id":"KongGateway","event_ts":"2025-05-16T00:28:02+02:00","name":"Ingress","sig":"s1"}}"#,
        );
        assert_eq!(r.format(), Format::Cps);
        assert_eq!(r.time(), Some("2025-05-15T22:28:02Z".parse().unwrap()));
        assert_eq!(r.kind(), Some(EventType::GatewayAccess));
        assert_eq!(r.signature(), Some("s1"));
    }

    #[test]
    fn pull_records_use_ts_type_and_signature() {
        let r = record(
            r#"{"type":"gateway_access","ts":"2026-08-23T14:00:00.123Z","signature":"xyz","status_code":201}"#,
        );
        assert_eq!(r.format(), Format::Pull);
        assert_eq!(r.kind(), Some(EventType::GatewayAccess));
        assert_eq!(r.signature(), Some("xyz"));
        let authn = record(
            r#"{"ts":"2026-08-23T14:00:00Z","authentication_type":"sso","outcome":"success","signature":"q"}"#,
        );
        assert_eq!(authn.kind(), Some(EventType::Authentication));
    }

    #[test]
    fn fields_of_an_unexpected_type_are_unknown_not_fatal() {
        let r = record(r#"{"event_ts":1700000000,"event_class_id":"konnect","sig":null}"#);
        assert_eq!(r.time(), None);
        assert_eq!(r.kind(), Some(EventType::Authorization));
        assert_eq!(r.signature(), None);
    }

    #[test]
    fn repeated_members_are_read_as_go_does_last_one_wins() {
        let r = record(r#"{"event_ts":"2025-01-01T00:00:00Z","event_ts":"2025-01-02T00:00:00Z"}"#);
        assert_eq!(r.time(), Some("2025-01-02T00:00:00Z".parse().unwrap()));
    }

    #[test]
    fn dedup_key_is_the_signature_else_the_bytes() {
        let a = record(r#"{"event_ts":"2025-01-01T00:00:00Z","sig":"same"}"#);
        let b = record(r#"{"event_ts":"2025-01-01T00:00:00Z","x":1,"sig":"same"}"#);
        assert_eq!(a.dedup_key(), b.dedup_key());
        let c = record(r#"{"event_ts":"2025-01-01T00:00:00Z"}"#);
        let d = record(r#"{"event_ts":"2025-01-01T00:00:00Z" }"#);
        assert_ne!(c.dedup_key(), d.dedup_key());
        assert_eq!(
            c.dedup_key(),
            record(r#"{"event_ts":"2025-01-01T00:00:00Z"}"#).dedup_key()
        );
    }

    #[test]
    fn lines_that_are_no_record_say_why() {
        assert_eq!(Record::from_slice(b"  ").unwrap_err(), NotARecord::Empty);
        assert_eq!(
            Record::from_slice(b"hello world").unwrap_err(),
            NotARecord::UnknownFormat
        );
        assert!(matches!(
            Record::from_slice(b"{\"a\":").unwrap_err(),
            NotARecord::InvalidJson(_)
        ));
        assert!(matches!(
            Record::from_slice(b"[1,2]").unwrap_err(),
            NotARecord::UnknownFormat
        ));
    }

    #[test]
    fn other_json_objects_are_records_without_time() {
        let r = record(r#"{"id":"evt-3"}"#);
        assert_eq!(r.format(), Format::OtherJson);
        assert_eq!(r.time(), None);
        assert_eq!(r.kind(), None);
    }

    /// The scanner's reading of a JSON text, against serde_json's.
    fn same_as_serde(text: &[u8]) {
        let text = text.trim_ascii();
        if !text.starts_with(b"{") {
            return;
        }
        let slow = Probe::read_slowly(text);
        if let Some(m) = scan::scan(text) {
            let fast = Probe::at(text, &m);
            match &slow {
                Ok(slow) => assert_eq!(&fast, slow, "{}", String::from_utf8_lossy(text)),
                Err(e) => panic!(
                    "the scanner took what serde_json refuses ({e}): {}",
                    String::from_utf8_lossy(text)
                ),
            }
        }
        assert_eq!(
            Probe::read(text).map_err(|e| e.to_string()),
            slow.map_err(|e| e.to_string()),
            "{}",
            String::from_utf8_lossy(text)
        );
    }

    #[test]
    fn the_scanner_reads_kongs_samples_as_serde_json_does() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/konnect-verbatim");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read(entry.unwrap().path()).unwrap();
            for line in text.split(|&b| b == b'\n') {
                same_as_serde(line);
                seen += 1;
            }
        }
        assert!(seen > 10);
    }

    #[test]
    fn the_scanner_gives_the_slow_path_what_it_is_not_sure_of() {
        for text in [
            r#"{"sig":"a","sig":"b"}"#,
            r#"{"sig":"a\u0041b","event_ts":"2025-01-01T00:00:00Z"}"#,
            r#"{"\u0073ig":"x"}"#,
            r#"{"sig":"\ud83d\ude00"}"#,
            r#"{"sig":"\ud83d"}"#,
            r#"{"event":{"sig":"a","sig":"b"}}"#,
            r#"{"event": {"event_ts":"2025-01-01T00:00:00Z"}}"#,
            r#"{"event":[1]}"#,
            r#"{"event_ts":"2025-01-01T00:00:00Z","x":01}"#,
            r#"{"a":1e400,"sig":"q"}"#,
            r#"{"a":-0,"b":0.5e-3,"c":[],"d":{},"e":"","sig":null,"signature":"s"}"#,
            "{\"sig\":\"\u{e9}\"}",
            "{\"a\":\"\t\"}",
        ] {
            same_as_serde(text.as_bytes());
        }
        same_as_serde(b"{\"x\":\"\xff\",\"sig\":\"s\"}");
        same_as_serde(b"{\"sig\":\"\xff\"}");
        let deep = format!(
            r#"{{"sig":"s","a":{}{}}}"#,
            "[".repeat(120),
            "]".repeat(120)
        );
        same_as_serde(deep.as_bytes());
        let deeper = format!(
            r#"{{"sig":"s","a":{}{}}}"#,
            "[".repeat(140),
            "]".repeat(140)
        );
        same_as_serde(deeper.as_bytes());
    }

    proptest::proptest! {
        /// Texts cut and spliced from JSON tokens, valid or not.
        #[test]
        fn the_scanner_agrees_with_serde_json_on_any_text(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "{", "}", "[", "]", ":", ",", " ", "\"", "\\", "\\u00", "d8", "\\n",
                "\"sig\"", "\"event_ts\"", "\"ts\"", "\"type\"", "\"name\"",
                "\"event\"", "\"event_class_id\"", "\"signature\"",
                "\"authentication_type\"", "\"portal_id\"", "\"x\"", "\"2025-01-01T00:00:00Z\"",
                "\"konnect\"", "\"authorization\"", "0", "-", "1", ".", "e", "+",
                "true", "false", "null", "tru", "\u{e9}", "\t", "\u{1}",
            ]), 0..40)
        ) {
            let mut text = String::from("{");
            for p in parts {
                text.push_str(p);
            }
            same_as_serde(text.as_bytes());
        }

        /// Well-formed records with probed members of every type.
        #[test]
        fn the_scanner_agrees_on_well_formed_records(
            members in proptest::collection::vec((
                proptest::sample::select(vec![
                    "sig", "event_ts", "ts", "type", "name", "event", "event_class_id",
                    "signature", "authentication_type", "portal_id", "x", "trace_id",
                ]),
                proptest::sample::select(vec![
                    "\"s\"", "\"\"", "\"a\\\"b\"", "1", "-2.5e3", "null", "true",
                    "[1,{\"a\":[]}]", "{\"event_ts\":\"2025-01-01T00:00:00Z\",\"sig\":\"i\"}",
                    "\"2025-01-01T00:00:00+02:00\"", "\"konnect\"", "\"Authz.x\"",
                    "\"AUTHENTICATION_TYPE_PAT\"", "\"gateway_access\"",
                ]),
            ), 0..8)
        ) {
            let body: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            let text = format!("{{ {} }}", body.join(" , "));
            same_as_serde(text.as_bytes());
            if let Ok(r) = Record::from_slice(text.as_bytes()) {
                // The signature's range points at the right bytes.
                let _ = r.signature();
                let _ = r.dedup_key();
            }
        }
    }
}
