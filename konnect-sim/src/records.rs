//! Audit-log records: generated from Kong's published samples and rendered in
//! the three webhook formats (`json`, `cef`, `cps`) and as pull-API entries.
//!
//! The four JSON samples in `samples/derived/records.json.jsonl` are the
//! templates: a generated record has exactly the keys of its template, in the
//! template's order, with the variable fields (time, addresses, ids, user
//! agent, trace id, signature, and the kind's own fields) replaced. The CEF
//! samples give, per kind, the extension keys and their order. Nothing here
//! knows about webhooks or HTTP.

use std::fmt;
use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore, SeedableRng};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::{Deserialize as DeriveDeserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::signing::Seal;
use crate::time::{self, Millis};

const JSON_SAMPLES: &str = include_str!("../samples/derived/records.json.jsonl");
const CEF_SAMPLES: &str = include_str!("../samples/derived/records.cef");

/// The CEF header fields of a JSON record; everything else is an extension.
const CEF_HEADER_KEYS: [&str; 8] = [
    "event_ts",
    "cef_version",
    "event_vendor",
    "event_product",
    "event_version",
    "event_class_id",
    "name",
    "severity",
];

/// 2^53 + 1: the smallest positive integer an IEEE double cannot hold.
pub const TRACE_ID_BEYOND_F64: u64 = 9_007_199_254_740_993;

/// A destination's `log_format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, DeriveDeserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// The spec's default.
    #[default]
    Cef,
    Json,
    Cps,
}

impl LogFormat {
    /// The enum of the spec's `LogFormat` schema, in its order.
    pub const NAMES: [&'static str; 3] = ["cef", "json", "cps"];

    pub fn parse(name: &str) -> Option<LogFormat> {
        match name {
            "cef" => Some(LogFormat::Cef),
            "json" => Some(LogFormat::Json),
            "cps" => Some(LogFormat::Cps),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Cef => "cef",
            LogFormat::Json => "json",
            LogFormat::Cps => "cps",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The four kinds of record Kong publishes samples of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// A login or token check against Konnect.
    Authentication,
    /// A developer login to a Dev Portal.
    PortalAuthentication,
    /// A permission check (`Authz.<resource>`).
    Authorization,
    /// A request through the Konnect API gateway (`Ingress`).
    Access,
}

impl EventKind {
    const ALL: [EventKind; 4] = [
        EventKind::Authentication,
        EventKind::PortalAuthentication,
        EventKind::Authorization,
        EventKind::Access,
    ];

    /// The kind of a record, from its `event_product` and `name`.
    fn classify(product: &str, name: &str) -> Option<EventKind> {
        if name.starts_with("AUTHENTICATION_OUTCOME_") {
            Some(if product == "Dev-Portal" {
                EventKind::PortalAuthentication
            } else {
                EventKind::Authentication
            })
        } else if name.starts_with("Authz.") {
            Some(EventKind::Authorization)
        } else if name == "Ingress" {
            Some(EventKind::Access)
        } else {
            None
        }
    }

    /// The `type` of the pull API (`filter[type]`).
    pub fn pull_type(self) -> &'static str {
        match self {
            EventKind::Authentication | EventKind::PortalAuthentication => "authentication",
            EventKind::Authorization => "authorization",
            EventKind::Access => "gateway_access",
        }
    }
}

/// A JSON object that keeps its keys in order (serde_json's map sorts them,
/// and the workspace does not enable `preserve_order`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Fields(Vec<(String, Value)>);

impl Fields {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value as text: strings as they are, other scalars as JSON, and
    /// an absent key as the empty string.
    pub fn text(&self, key: &str) -> String {
        match self.get(key) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }
    }

    /// Replaces the value of `key` in place, or appends the key.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    /// Removes `key` if present.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// Compact JSON with the keys in order; integers (such as `trace_id`)
    /// are written exactly.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&Value::from(key.as_str()).to_string());
            out.push(':');
            out.push_str(&value.to_string());
        }
        out.push('}');
        out
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;
        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(OrderedVisitor)
    }
}

/// A sample turned template: its fields and its kind's CEF extension layout.
struct Template {
    kind: EventKind,
    fields: Fields,
    cef_keys: Vec<String>,
}

/// The header fields and extensions of one CEF line, in order.
pub(crate) struct CefLine {
    pub ts: String,
    pub header: Vec<String>,
    pub extensions: Vec<(String, String)>,
}

/// Splits a one-line CEF record. Extension values may contain spaces (user
/// agents); a new extension starts at a space followed by `key=` where the key
/// is lower-case letters and underscores.
pub(crate) fn parse_cef(line: &str) -> Option<CefLine> {
    let (ts, rest) = line.split_once(' ')?;
    let rest = rest.strip_prefix("konghq.com ")?;
    let mut parts = rest.splitn(8, '|');
    let mut header = Vec::with_capacity(7);
    for _ in 0..7 {
        header.push(parts.next()?.to_string());
    }
    let extensions_text = parts.next()?;
    let mut extensions: Vec<(String, String)> = Vec::new();
    for token in extensions_text.split(' ') {
        let key_end = token.find('=');
        let starts_key = key_end.is_some_and(|end| {
            end > 0
                && token[..end]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
        });
        match (starts_key, key_end, extensions.last_mut()) {
            (true, Some(end), _) => {
                extensions.push((token[..end].to_string(), token[end + 1..].to_string()));
            }
            (_, _, Some((_, value))) => {
                value.push(' ');
                value.push_str(token);
            }
            _ => return None,
        }
    }
    Some(CefLine {
        ts: ts.to_string(),
        header,
        extensions,
    })
}

fn templates() -> &'static [Template] {
    static TEMPLATES: OnceLock<Vec<Template>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let cef_lines: Vec<CefLine> = CEF_SAMPLES
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| parse_cef(l).expect("samples/derived/records.cef is valid CEF"))
            .collect();
        for cef in &cef_lines {
            assert!(
                time::parse_rfc3339(&cef.ts).is_some(),
                "CEF sample timestamp {:?} is RFC 3339",
                cef.ts
            );
        }
        let mut templates: Vec<Template> = Vec::new();
        for line in JSON_SAMPLES.lines().filter(|l| !l.trim().is_empty()) {
            let mut fields: Fields = serde_json::from_str(line)
                .expect("samples/derived/records.json.jsonl is valid JSON");
            // The sample's signature signs nothing here: each event is
            // signed when rendered (`signing.rs`).
            fields.remove("sig");
            let kind = EventKind::classify(&fields.text("event_product"), &fields.text("name"))
                .expect("every JSON sample is one of the four kinds");
            // The first CEF sample of the same kind gives the layout.
            let cef = cef_lines
                .iter()
                .find(|cef| EventKind::classify(&cef.header[2], &cef.header[5]) == Some(kind))
                .expect("every kind has a CEF sample");
            templates.push(Template {
                kind,
                fields,
                cef_keys: cef
                    .extensions
                    .iter()
                    .map(|(k, _)| k.clone())
                    .filter(|k| k != "sig")
                    .collect(),
            });
        }
        for kind in EventKind::ALL {
            assert!(
                templates.iter().any(|t| t.kind == kind),
                "a JSON sample of kind {kind:?}"
            );
        }
        templates
    })
}

fn template(kind: EventKind) -> &'static Template {
    templates()
        .iter()
        .find(|t| t.kind == kind)
        .expect("templates() checked that every kind has a template")
}

/// One generated audit-log event.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub region: &'static str,
    /// `event_ts` (whole seconds).
    pub ts: Millis,
    pub kind: EventKind,
    /// The JSON record, keys in the template's order.
    pub fields: Fields,
    /// The URI the event is about (pull API `uri`); authorization records
    /// carry none in the webhook formats.
    pub uri: String,
    /// The KRN of an authorization event's resource (pull API `resource`).
    pub resource: String,
    /// How the event is signed (`Unsigned` as generated; the state seals
    /// it, see `signing.rs`).
    pub seal: Seal,
    /// The Dev Portal whose webhook delivers it (a `Dev-Portal`
    /// authentication event, with this `portal_id`); `None` for the
    /// organisation's events.
    pub portal: Option<Uuid>,
}

impl Event {
    /// The record as one line in `format`, signed as its seal says.
    pub fn render(&self, format: LogFormat) -> String {
        let format = match format {
            // cps wraps the JSON line, signature included.
            LogFormat::Cps => return format!("{{\"event\":{}}}", self.render(LogFormat::Json)),
            other => other,
        };
        let line = self.render_unsigned(&self.fields, format);
        match &self.seal {
            Seal::Unsigned => line,
            Seal::Signed(key) => {
                let sig = key.sign(line.as_bytes());
                attach_sig(line, &sig, format)
            }
            Seal::Tampered(key) => {
                let sig = key.sign(line.as_bytes());
                let mut changed = self.fields.clone();
                changed.set("src", TAMPERED_SRC);
                attach_sig(self.render_unsigned(&changed, format), &sig, format)
            }
        }
    }

    /// The line without a signature: the bytes a signature covers.
    fn render_unsigned(&self, fields: &Fields, format: LogFormat) -> String {
        match format {
            LogFormat::Json | LogFormat::Cps => fields.to_json(),
            LogFormat::Cef => self.to_cef(fields),
        }
    }

    /// The pull API's `signature`: the JSON line's (what it signs in
    /// Konnect is undocumented).
    fn pull_signature(&self) -> String {
        match &self.seal {
            Seal::Unsigned => String::new(),
            Seal::Signed(key) | Seal::Tampered(key) => key.sign(self.fields.to_json().as_bytes()),
        }
    }

    /// `{event_ts} konghq.com CEF:{version}|{vendor}|{product}|{event_version}|{class}|{name}|{severity}|k=v ...`
    /// with the extensions in the CEF sample's order. A layout key the record
    /// lacks is written empty, as the samples do with `actor_id=`.
    fn to_cef(&self, f: &Fields) -> String {
        let mut out = format!(
            "{} konghq.com CEF:{}|{}|{}|{}|{}|{}|{}|",
            f.text("event_ts"),
            escape_cef_header(&f.text("cef_version")),
            escape_cef_header(&f.text("event_vendor")),
            escape_cef_header(&f.text("event_product")),
            escape_cef_header(&f.text("event_version")),
            escape_cef_header(&f.text("event_class_id")),
            escape_cef_header(&f.text("name")),
            escape_cef_header(&f.text("severity")),
        );
        let layout = &template(self.kind).cef_keys;
        let extra = f
            .keys()
            .filter(|k| !CEF_HEADER_KEYS.contains(k) && !layout.iter().any(|l| l == k))
            .map(str::to_string)
            .collect::<Vec<_>>();
        for (i, key) in layout.iter().chain(extra.iter()).enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(key);
            out.push('=');
            out.push_str(&escape_cef_extension(&f.text(key)));
        }
        out
    }

    /// The entry of `GET /v3/audit-logs` (`AuthenticationLog`,
    /// `AuthorizationLog` or `GatewayAccessLog` of the v3 spec).
    pub fn pull_view(&self) -> Value {
        let f = &self.fields;
        let signature = self.pull_signature();
        let mut entry = match self.kind {
            EventKind::Authentication | EventKind::PortalAuthentication => json!({
                "type": "authentication",
                "successful": f.text("success") == "true",
                "principal_id": f.text("principal_id"),
                "signature": signature,
                "org_id": f.text("org_id"),
                "outcome": f.text("name").trim_start_matches("AUTHENTICATION_OUTCOME_").to_ascii_lowercase(),
                "authentication_type": f.text("event_class_id").trim_start_matches("AUTHENTICATION_TYPE_").to_ascii_lowercase(),
                "ts": f.text("event_ts"),
                "client_ip": f.text("src"),
                "uri": self.uri,
                "user_agent": f.text("user_agent"),
                "trace_id": f.text("trace_id"),
            }),
            EventKind::Authorization => json!({
                "type": "authorization",
                "signature": signature,
                "service": f.text("event_class_id"),
                "resource": self.resource,
                "action": f.text("action"),
                "granted": f.get("granted") == Some(&Value::Bool(true)),
                "org_id": f.text("org_id"),
                "ts": f.text("event_ts"),
                "principal_id": f.text("principal_id"),
                "client_ip": f.text("src"),
                "uri": self.uri,
                "user_agent": f.text("user_agent"),
                "trace_id": f.text("trace_id"),
            }),
            EventKind::Access => json!({
                "type": "gateway_access",
                "ts": f.text("event_ts"),
                "org_id": f.text("org_id"),
                "principal_id": f.text("principal_id"),
                "actor_id": f.text("actor_id"),
                "client_ip": f.text("src"),
                "trace_id": f.text("trace_id"),
                "user_agent": f.text("user_agent"),
                "method": f.text("act"),
                "uri": self.uri,
                "query": f.text("query"),
                "status_code": f.get("status").and_then(Value::as_i64).unwrap_or(0),
                "signature": signature,
            }),
        };
        if let Some(portal) = f.get("portal_id") {
            entry["portal_id"] = portal.clone();
        }
        entry
    }
}

/// The `src` of a tampered record: an address generated records never have.
const TAMPERED_SRC: &str = "203.0.113.255";

/// Adds the signature last, as Kong documents the signed bytes: JSON
/// `,"sig":"<value>"` before the closing brace, CEF ` sig=<value>`.
fn attach_sig(mut line: String, sig: &str, format: LogFormat) -> String {
    match format {
        LogFormat::Cef => {
            line.push_str(" sig=");
            line.push_str(sig);
        }
        LogFormat::Json | LogFormat::Cps => {
            let closing = line.pop();
            debug_assert_eq!(closing, Some('}'), "a JSON record ends with its object");
            line.push_str(",\"sig\":\"");
            line.push_str(sig);
            line.push_str("\"}");
        }
    }
    line
}

fn escape_cef_header(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// CEF extension escaping (`\`, `=`, line breaks). Generated values contain
/// none of these, so records look exactly like the samples.
fn escape_cef_extension(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

const USER_AGENTS: [&str; 10] = [
    "grpc-node-js/1.8.10",
    "grpc-go/1.51.0",
    "grpc-node/1.24.11 grpc-c/8.0.0 (linux; chttp2; ganges)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/113.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "kongctl/0.3.1",
    "curl/8.5.0",
    "deck/1.43.0",
    "terraform-provider-konnect/2.4.1",
    "",
];

/// (`event_class_id`, `request`) of Konnect authentication events.
const AUTHENTICATIONS: [(&str, &str); 6] = [
    ("AUTHENTICATION_TYPE_BASIC", "/api/v1/authenticate"),
    (
        "AUTHENTICATION_TYPE_PAT",
        "/api/v1/personal-access-tokens/introspect",
    ),
    (
        "AUTHENTICATION_TYPE_SPAT",
        "/api/v1/system-account-access-tokens/introspect",
    ),
    (
        "AUTHENTICATION_TYPE_SSO",
        "/api/v1/authenticate/sso/callback",
    ),
    (
        "AUTHENTICATION_TYPE_GITHUB",
        "/api/v1/authenticate/github/callback",
    ),
    (
        "AUTHENTICATION_TYPE_GOOGLE",
        "/api/v1/authenticate/google/callback",
    ),
];

const FAILED_OUTCOMES: [&str; 5] = [
    "AUTHENTICATION_OUTCOME_INVALID_PASSWORD",
    "AUTHENTICATION_OUTCOME_NOT_FOUND",
    "AUTHENTICATION_OUTCOME_TOKEN_EXPIRED",
    "AUTHENTICATION_OUTCOME_LOCKED",
    "AUTHENTICATION_OUTCOME_DISABLED",
];

const RESOURCES: [&str; 9] = [
    "portals",
    "control-planes",
    "teams",
    "users",
    "system-accounts",
    "api-products",
    "identity-providers",
    "audit-log-destinations",
    "mesh-control-planes",
];

const ACTIONS: [&str; 5] = ["list", "retrieve", "create", "update", "delete"];

/// Generates events, ids and trace numbers from one seeded random source.
pub(crate) struct Generator {
    rng: StdRng,
    org_id: String,
    principals: Vec<String>,
    /// The ids of the users and system accounts tests seeded: when there
    /// are any, organisation events name one of them as `principal_id`
    /// (instead of `principals`), so that lookups find them.
    seeded_principals: Vec<String>,
    developers: Vec<String>,
    portals: Vec<String>,
    control_planes: Vec<String>,
    next_seq: u64,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut ids = |n: usize| {
            (0..n)
                .map(|_| random_uuid(&mut rng).to_string())
                .collect::<Vec<_>>()
        };
        let org_id = ids(1).remove(0);
        let principals = ids(6);
        let developers = ids(4);
        let portals = ids(2);
        let control_planes = ids(3);
        Generator {
            rng,
            org_id,
            principals,
            seeded_principals: Vec::new(),
            developers,
            portals,
            control_planes,
            next_seq: 0,
        }
    }

    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// A fresh UUID v4.
    pub fn uuid(&mut self) -> Uuid {
        random_uuid(&mut self.rng)
    }

    /// A number for a problem's `instance` (`kong:trace:<number>`).
    pub fn trace_number(&mut self) -> u64 {
        self.rng.random_range(1_000_000_000_000_000_000..u64::MAX)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut bytes = vec![0; n];
        self.rng.fill_bytes(&mut bytes);
        bytes
    }

    /// The `trace_id` of event `seq`. All are above 2^53, so a reader that
    /// parses them as doubles loses digits: every tenth is an odd number just
    /// above 2^53 (the first one is exactly 2^53 + 1), every tenth is at
    /// least 2^63 (beyond `i64`), the rest are spread below 2^63 like the
    /// samples' ids.
    fn trace_id(&mut self, seq: u64) -> u64 {
        match seq % 10 {
            0 => TRACE_ID_BEYOND_F64 + 2 * ((seq / 10) % (1 << 51)),
            5 => self.rng.random_range(1u64 << 63..=u64::MAX),
            _ => self.rng.random_range((1u64 << 53) + 1..1u64 << 63),
        }
    }

    fn source_ip(&mut self) -> String {
        let r = &mut self.rng;
        match r.random_range(0..5) {
            0 => "127.0.0.6".to_string(),
            1 => format!(
                "10.{}.{}.{}",
                r.random_range(0..=255),
                r.random_range(0..=255),
                r.random_range(1..=254)
            ),
            2 => format!("203.0.113.{}", r.random_range(1..=254)),
            3 => format!("198.51.100.{}", r.random_range(1..=254)),
            _ => format!("172.71.232.{}", r.random_range(1..=254)),
        }
    }

    fn pick<'a>(&mut self, choices: &'a [&'a str]) -> &'a str {
        choices.choose(&mut self.rng).copied().unwrap_or_default()
    }

    fn pick_owned(rng: &mut StdRng, choices: &[String]) -> String {
        choices.choose(rng).cloned().unwrap_or_default()
    }

    /// Event `seq` of the reproducible series `series`: made from a random
    /// source of its own (seeded by both numbers) with this generator's
    /// organisation, so that a series of a million records needs no
    /// storage: the pull API makes each one again when a page shows it.
    pub fn event_in_series(
        &mut self,
        series: u64,
        seq: u64,
        region: &'static str,
        now: Millis,
    ) -> Event {
        // SplitMix64's odd constant spreads consecutive numbers apart.
        let seed = series ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let shared = std::mem::replace(&mut self.rng, StdRng::seed_from_u64(seed));
        let next_seq = std::mem::replace(&mut self.next_seq, seq);
        let event = self.event(region, now);
        self.rng = shared;
        self.next_seq = next_seq;
        event
    }

    /// Makes organisation events name these principals (the seeded users'
    /// and system accounts' ids); none: random ones again.
    pub fn set_principals(&mut self, ids: Vec<String>) {
        self.seeded_principals = ids;
    }

    /// A new organisation event of a random kind (Konnect authentication,
    /// authorization or access) in `region`, happening at `now`. Dev Portal
    /// events are not among them: Konnect sends those through the portal's
    /// own webhook ([`Generator::portal_event`]).
    pub fn event(&mut self, region: &'static str, now: Millis) -> Event {
        let kind = match self.rng.random_range(0..100) {
            0..35 => EventKind::Authentication,
            35..75 => EventKind::Authorization,
            _ => EventKind::Access,
        };
        self.event_of(kind, region, now, None)
    }

    /// A Dev Portal authentication event of `portal` (in `region`) at
    /// `now`: a developer login, `event_product` `Dev-Portal`, with
    /// `portal_id`. Its `principal_id` is one of `developers` (the portal's
    /// seeded developers) or, if there are none, a made-up developer id.
    pub fn portal_event(
        &mut self,
        region: &'static str,
        now: Millis,
        portal: Uuid,
        developers: &[String],
    ) -> Event {
        self.event_of(
            EventKind::PortalAuthentication,
            region,
            now,
            Some((portal, developers)),
        )
    }

    fn event_of(
        &mut self,
        kind: EventKind,
        region: &'static str,
        now: Millis,
        portal: Option<(Uuid, &[String])>,
    ) -> Event {
        let seq = self.next_seq;
        self.next_seq += 1;
        let ts = now - now.rem_euclid(1000);
        let mut f = template(kind).fields.clone();
        f.set("event_ts", time::format_seconds(ts));
        f.set("rt", now.to_string());
        f.set("org_id", self.org_id.clone());
        f.set("src", self.source_ip());
        let trace_id = self.trace_id(seq);
        f.set("trace_id", trace_id);
        let user_agent = self.pick(&USER_AGENTS);
        f.set("user_agent", user_agent);
        let principals = if self.seeded_principals.is_empty() {
            &self.principals
        } else {
            &self.seeded_principals
        };
        let principal = Self::pick_owned(&mut self.rng, principals);
        f.set("principal_id", principal);
        let (uri, resource) = match kind {
            EventKind::Authentication | EventKind::PortalAuthentication => {
                let (class, request) = if kind == EventKind::PortalAuthentication {
                    let developers = match portal {
                        Some((_, seeded)) if !seeded.is_empty() => seeded,
                        _ => &self.developers,
                    };
                    let developer = Self::pick_owned(&mut self.rng, developers);
                    f.set("principal_id", developer);
                    let portal_id = match portal {
                        Some((id, _)) => id.to_string(),
                        None => Self::pick_owned(&mut self.rng, &self.portals),
                    };
                    f.set("portal_id", portal_id);
                    let class =
                        self.pick(&["AUTHENTICATION_TYPE_BASIC", "AUTHENTICATION_TYPE_SSO"]);
                    (class, "/api/v2/developer/authenticate")
                } else {
                    *AUTHENTICATIONS
                        .choose(&mut self.rng)
                        .unwrap_or(&AUTHENTICATIONS[0])
                };
                let outcome = if self.rng.random_bool(0.85) {
                    "AUTHENTICATION_OUTCOME_SUCCESS"
                } else {
                    self.pick(&FAILED_OUTCOMES)
                };
                f.set("event_class_id", class);
                f.set("name", outcome);
                f.set("request", request);
                let success = outcome == "AUTHENTICATION_OUTCOME_SUCCESS";
                f.set("success", if success { "true" } else { "false" });
                (request.to_string(), String::new())
            }
            EventKind::Authorization => {
                let name = self.pick(&RESOURCES);
                let action = self.pick(&ACTIONS);
                let target = self.uuid().to_string();
                f.set("name", format!("Authz.{name}"));
                f.set("action", action);
                f.set("granted", self.rng.random_bool(0.9));
                let collection = matches!(action, "list" | "create");
                let uri = if collection {
                    format!("/v2/{name}")
                } else {
                    format!("/v2/{name}/{target}")
                };
                let id = if collection { "*".to_string() } else { target };
                (
                    uri,
                    format!("krn:konnect:reg/{region}:org/{}:{name}/{id}", self.org_id),
                )
            }
            EventKind::Access => {
                let cp = Self::pick_owned(&mut self.rng, &self.control_planes);
                let entity = self.uuid();
                let (method, request, status, query) = match self.rng.random_range(0..7) {
                    0 => (
                        "GET",
                        format!("/konnect-api/api/control_planes/{cp}/services"),
                        200,
                        "{\"size\":\"100\"}".to_string(),
                    ),
                    1 => (
                        "POST",
                        format!("/konnect-api/api/control_planes/{cp}/services"),
                        201,
                        "{}".to_string(),
                    ),
                    2 => {
                        let end = now / 1000;
                        let query =
                            format!("{{\"end\":\"{end}\",\"start\":\"{}\"}}", end - 172_800);
                        (
                            "POST",
                            "/konnect-api/api/vitals/v1/explore".to_string(),
                            200,
                            query,
                        )
                    }
                    3 => (
                        "GET",
                        "/konnect-api/api/control_planes".to_string(),
                        200,
                        "{}".to_string(),
                    ),
                    4 => (
                        "PATCH",
                        format!("/konnect-api/api/control_planes/{cp}/routes/{entity}"),
                        200,
                        "{}".to_string(),
                    ),
                    5 => (
                        "DELETE",
                        format!("/konnect-api/api/control_planes/{cp}/plugins/{entity}"),
                        204,
                        "{}".to_string(),
                    ),
                    _ => (
                        "GET",
                        format!("/konnect-api/api/control_planes/{cp}/consumers/{entity}"),
                        404,
                        "{}".to_string(),
                    ),
                };
                f.set("act", method);
                f.set("request", request.clone());
                f.set("status", status);
                f.set("query", query);
                (request, String::new())
            }
        };
        Event {
            region,
            ts,
            kind,
            fields: f,
            uri,
            resource,
            seal: Seal::Unsigned,
            portal: portal.map(|(id, _)| id),
        }
    }
}

fn random_uuid(rng: &mut StdRng) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERBATIM: [(&str, &str); 4] = [
        (
            include_str!("../samples/verbatim/authentication.konnect.json.txt"),
            include_str!("../samples/verbatim/authentication.konnect.cef.txt"),
        ),
        (
            include_str!("../samples/verbatim/authentication.dev-portal.json.txt"),
            include_str!("../samples/verbatim/authentication.dev-portal.cef.txt"),
        ),
        (
            include_str!("../samples/verbatim/authorization.konnect.json.txt"),
            include_str!("../samples/verbatim/authorization.konnect.cef.txt"),
        ),
        (
            include_str!("../samples/verbatim/access.konnect.json.txt"),
            include_str!("../samples/verbatim/access.konnect.cef.txt"),
        ),
    ];

    #[test]
    fn derived_samples_match_the_verbatim_ones() {
        let json_lines: Vec<&str> = JSON_SAMPLES.lines().collect();
        let cef_lines: Vec<&str> = CEF_SAMPLES.lines().collect();
        // The derived JSON file lists the samples in the order above; the
        // CEF one starts with the Konnect authentication sample too.
        let cef_order = [0, 1, 2, 3];
        for (i, (json, cef)) in VERBATIM.iter().enumerate() {
            // The docs' access sample has a trailing comma; the derived file
            // dropped it.
            let json = json.replace(",\n}", "\n}");
            let verbatim: Fields = serde_json::from_str(&json).unwrap();
            let derived: Fields = serde_json::from_str(json_lines[i]).unwrap();
            assert_eq!(verbatim, derived, "JSON sample {i}");
            let joined = cef.trim_end().replace('\n', " ");
            assert_eq!(joined, cef_lines[cef_order[i]], "CEF sample {i}");
        }
        assert_eq!(
            cef_lines[4],
            include_str!("../samples/verbatim/authorization.konnect.single-line.cef").trim_end()
        );
    }

    #[test]
    fn fields_keep_key_order_and_big_integers() {
        let fields: Fields =
            serde_json::from_str(r#"{"z":1,"a":"x","trace_id":18446744073709551615}"#).unwrap();
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["z", "a", "trace_id"]);
        assert_eq!(
            fields.to_json(),
            r#"{"z":1,"a":"x","trace_id":18446744073709551615}"#
        );
    }

    /// Rendering the CEF sample's own values through the JSON template of its
    /// kind gives the CEF sample back, byte for byte (but for the signature,
    /// which the emulator makes when it signs).
    #[test]
    fn cef_rendering_reproduces_the_samples() {
        for line in CEF_SAMPLES.lines().take(4) {
            let cef = parse_cef(line).unwrap();
            let kind = EventKind::classify(&cef.header[2], &cef.header[5]).unwrap();
            let mut fields = template(kind).fields.clone();
            fields.set("event_ts", cef.ts.clone());
            for (key, value) in CEF_HEADER_KEYS[1..].iter().zip(&cef.header) {
                let value = value.strip_prefix("CEF:").unwrap_or(value);
                fields.set(key, value.to_string());
            }
            for (key, value) in &cef.extensions {
                if fields.get(key).is_some() {
                    fields.set(key, value.clone());
                }
            }
            let event = Event {
                region: "us",
                ts: 0,
                kind,
                fields,
                uri: String::new(),
                resource: String::new(),
                seal: Seal::Unsigned,
                portal: None,
            };
            // The samples' signature is last; an unsigned event has none.
            let (unsigned, sig) = line.rsplit_once(" sig=").unwrap();
            assert!(!sig.contains(' '), "sig is the last extension: {line}");
            assert_eq!(event.render(LogFormat::Cef), unsigned);
        }
    }

    #[test]
    fn generated_records_keep_the_template_keys_in_order() {
        let mut generator = Generator::new(7);
        let now = 1_750_688_927_556;
        let mut seen = Vec::new();
        let portal = Uuid::nil();
        for i in 0..200 {
            let event = if i % 10 == 0 {
                generator.portal_event("eu", now, portal, &[])
            } else {
                generator.event("eu", now)
            };
            let template_keys: Vec<&str> = template(event.kind).fields.keys().collect();
            let keys: Vec<&str> = event.fields.keys().collect();
            assert_eq!(keys, template_keys, "{:?}", event.kind);
            assert_eq!(event.fields.text("event_ts"), "2025-06-23T14:28:47Z");
            assert_eq!(event.fields.text("rt"), "1750688927556");
            assert_eq!(event.fields.text("org_id"), generator.org_id());
            if !seen.contains(&event.kind) {
                seen.push(event.kind);
            }
        }
        assert_eq!(seen.len(), 4, "all kinds appear in 200 events");
    }

    #[test]
    fn formats_render_one_line_each() {
        let mut generator = Generator::new(1);
        for _ in 0..100 {
            let event = generator.event("us", 1_700_000_000_000);
            let json = event.render(LogFormat::Json);
            let cps = event.render(LogFormat::Cps);
            let cef = event.render(LogFormat::Cef);
            for line in [&json, &cps, &cef] {
                assert!(!line.contains('\n'), "{line}");
            }
            let parsed: Value = serde_json::from_str(&json).unwrap();
            let wrapped: Value = serde_json::from_str(&cps).unwrap();
            assert_eq!(wrapped, json!({ "event": parsed }));
            assert_eq!(cps, format!("{{\"event\":{json}}}"));
            let cef_line = parse_cef(&cef).unwrap();
            assert_eq!(cef_line.ts, event.fields.text("event_ts"));
            assert_eq!(cef_line.header[2], event.fields.text("event_product"));
            let trace = cef_line
                .extensions
                .iter()
                .find(|(k, _)| k == "trace_id")
                .unwrap();
            assert_eq!(trace.1, event.fields.text("trace_id"));
        }
    }

    #[test]
    fn trace_ids_are_integers_beyond_double_precision() {
        let mut generator = Generator::new(3);
        let events: Vec<Event> = (0..40)
            .map(|_| generator.event("us", 1_700_000_000_000))
            .collect();
        let first = events[0].render(LogFormat::Json);
        assert!(first.contains("\"trace_id\":9007199254740993,"), "{first}");
        for event in &events {
            let trace = event
                .fields
                .get("trace_id")
                .and_then(Value::as_u64)
                .unwrap();
            assert!(trace > 1 << 53, "{trace}");
        }
        assert!(
            events
                .iter()
                .any(|e| e.fields.get("trace_id").and_then(Value::as_u64).unwrap() >= 1 << 63)
        );
        let distinct: std::collections::BTreeSet<String> =
            events.iter().map(|e| e.fields.text("trace_id")).collect();
        assert_eq!(distinct.len(), events.len());
    }

    #[test]
    fn generation_is_reproducible_from_the_seed() {
        let render = |seed| {
            let mut generator = Generator::new(seed);
            (0..5)
                .map(|_| {
                    generator
                        .event("us", 1_700_000_000_000)
                        .render(LogFormat::Json)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(render(11), render(11));
        assert_ne!(render(11), render(12));
    }
}
