//! `get audit-logs --summary`: what a query's records add up to, instead
//! of the records.
//!
//! The printer is an [`Output`] like the others, so every source and
//! filter of a query feeds it; it keeps counts, never records
//! ([`Tally`]): totals by type and outcome, per principal and per action
//! (each at most [`MAX_KEYS`] distinct, the rest counted as `(other)`), per
//! alert rule ([`crate::query::alert`]) and per hour of the records' own
//! time. At the end it prints the window, those totals, the top
//! [`TOP`] principals (named when a name is at hand: Konnect's
//! `principal_name`, or a lookup through [`Names`]) and actions, and the
//! events over time as a bar chart ([`super::chart`]) in hours for a
//! window of up to two days, else in days. `-o json|yaml` print the same
//! numbers as one document.
//!
//! Actions are named so that counts mean something: an authentication by
//! its type (`login pat`), an authorization by its action and resource
//! (`list portals`), a gateway access by its method and path; ids in
//! resources and paths read `{id}`, so one route counts once.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::{Format, Output, Summary, chart};
use crate::query::principal::is_uuid;
use crate::query::{PrincipalKey, RecordView, Rule, Window};
use crate::record::{EventType, Record};

/// Principals and actions listed.
pub const TOP: usize = 10;
/// Distinct principals (or actions) counted one by one; beyond, `(other)`.
pub const MAX_KEYS: usize = 100_000;
/// A window up to this long is charted in hours, a longer one in days.
const HOURLY_UP_TO: SignedDuration = SignedDuration::from_hours(48);
/// Most buckets charted (the latest are kept).
const MAX_BUCKETS: usize = 1000;

/// Names for principals, looked up when the summary is printed (only the
/// top ones are asked for).
pub trait Names {
    /// The display names of those `keys` that have one.
    fn names(&self, keys: &[PrincipalKey]) -> HashMap<PrincipalKey, String>;
}

/// Counts by text, with a bound on distinct keys. Counting a key already
/// seen allocates nothing.
#[derive(Debug, Default)]
struct Counter {
    counts: HashMap<Box<str>, u64>,
    other: u64,
}

impl Counter {
    fn add(&mut self, key: &str) {
        if let Some(n) = self.counts.get_mut(key) {
            *n += 1;
        } else if self.counts.len() < MAX_KEYS {
            self.counts.insert(key.into(), 1);
        } else {
            self.other += 1;
        }
    }

    fn total(&self) -> u64 {
        self.counts.values().sum::<u64>() + self.other
    }

    /// The `n` largest, ties by key; `(other)` is the caller's.
    fn top(&self, n: usize) -> Vec<(&str, u64)> {
        let mut all: Vec<(&str, u64)> = self.counts.iter().map(|(k, &c)| (&**k, c)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        all.truncate(n);
        all
    }
}

/// The counts of one type.
#[derive(Debug, Default)]
struct TypeTally {
    records: u64,
    outcomes: Counter,
}

/// What the records add up to.
#[derive(Debug, Default)]
pub struct Tally {
    records: u64,
    untimed: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    types: BTreeMap<&'static str, TypeTally>,
    /// By principal id.
    principals: Counter,
    /// The portal of a Dev Portal principal (whose developers are looked
    /// up there), by principal id.
    portals: HashMap<Box<str>, Box<str>>,
    /// Names Konnect sent (`principal_name`), by principal id.
    sent_names: HashMap<Box<str>, Box<str>>,
    actions: Counter,
    /// Reused for each record's outcome and action.
    scratch: String,
    alerts: [u64; Rule::ALL.len()],
    /// Records per hour since the epoch.
    hours: BTreeMap<i64, u64>,
}

impl Tally {
    /// Counts one record.
    pub fn add(&mut self, record: &Record) {
        self.records += 1;
        match record.time() {
            Some(t) => {
                self.first = Some(self.first.map_or(t, |f| f.min(t)));
                self.last = Some(self.last.map_or(t, |l| l.max(t)));
                *self
                    .hours
                    .entry(t.as_second().div_euclid(3600))
                    .or_default() += 1;
            }
            None => self.untimed += 1,
        }
        let view = RecordView::of(record);
        let t = self
            .types
            .entry(record.kind().map_or("other", EventType::as_str))
            .or_default();
        t.records += 1;
        self.scratch.clear();
        outcome(&view, &mut self.scratch);
        t.outcomes.add(&self.scratch);
        if let Some(id) = view.principal_id.as_deref().filter(|id| !id.is_empty()) {
            self.principals.add(id);
            let room = self.portals.len() < MAX_KEYS;
            if let Some(portal) = view.portal_id.as_deref().filter(|p| !p.is_empty())
                && room
                && !self.portals.contains_key(id)
            {
                self.portals.insert(id.into(), portal.into());
            }
            if let Some(name) = view.principal_name.as_deref().filter(|n| !n.is_empty())
                && self.sent_names.len() < MAX_KEYS
                && !self.sent_names.contains_key(id)
            {
                self.sent_names.insert(id.into(), name.into());
            }
        }
        self.scratch.clear();
        action(&view, &mut self.scratch);
        self.actions.add(&self.scratch);
        for (i, rule) in Rule::ALL.into_iter().enumerate() {
            if rule.matches(&view) {
                self.alerts[i] += 1;
            }
        }
    }

    /// The lookup key of principal `id`.
    fn key(&self, id: &str) -> PrincipalKey {
        PrincipalKey {
            id: id.to_owned(),
            portal_id: self.portals.get(id).map(|p| p.to_string()),
        }
    }
}

/// A record's outcome, in its type's terms, into `out`: an
/// authentication's outcome (`success`, `locked`), an authorization's
/// `granted`/`denied`, a gateway access's status code.
fn outcome(view: &RecordView<'_>, out: &mut String) {
    use std::fmt::Write as _;
    match view.kind {
        Some(EventType::Authentication) => match view.auth_outcome() {
            Some(o) => out.extend(o.chars().map(|c| c.to_ascii_lowercase())),
            None => out.push_str(match view.success {
                Some(true) => "success",
                Some(false) => "failure",
                None => "unknown",
            }),
        },
        Some(EventType::Authorization) => out.push_str(match view.granted {
            Some(true) => "granted",
            Some(false) => "denied",
            None => "unknown",
        }),
        Some(EventType::GatewayAccess) => match view.status {
            Some(s) => {
                let _ = write!(out, "{s}");
            }
            None => out.push_str("unknown"),
        },
        None => out.push_str("unknown"),
    }
}

/// A record's action (see the module documentation), into `out`.
fn action(view: &RecordView<'_>, out: &mut String) {
    match view.kind {
        Some(EventType::Authentication) => {
            let kind = view
                .authentication_type
                .as_deref()
                .or_else(|| {
                    view.event_class_id
                        .as_deref()
                        .and_then(|c| c.strip_prefix("AUTHENTICATION_TYPE_"))
                })
                .unwrap_or("unknown");
            out.push_str("login ");
            out.extend(kind.chars().map(|c| c.to_ascii_lowercase()));
        }
        Some(EventType::Authorization) => {
            out.push_str(view.action.as_deref().unwrap_or("unknown"));
            let resource = match view.name.as_deref().and_then(|n| n.strip_prefix("Authz.")) {
                Some(r) => Some(r),
                None => view.resource.as_deref().map(krn_resource),
            };
            if let Some(r) = resource.filter(|r| !r.is_empty()) {
                out.push(' ');
                push_without_ids(r, out);
            }
        }
        Some(EventType::GatewayAccess) => {
            out.push_str(view.method.as_deref().unwrap_or(""));
            let path = view.path.as_deref().unwrap_or("");
            let path = path.split('?').next().unwrap_or("");
            if !path.is_empty() {
                if !out.is_empty() {
                    out.push(' ');
                }
                push_without_ids(path, out);
            }
        }
        None => out.push_str(view.name.as_deref().unwrap_or("unknown")),
    }
}

/// The resource of a KRN (`krn:konnect:reg/us:org/…:portals/*` →
/// `portals/*`): its last `:`-separated part.
fn krn_resource(krn: &str) -> &str {
    krn.rsplit(':').next().unwrap_or(krn)
}

/// `path` with each segment that is an id (a UUID, a number, a long hex
/// string) as `{id}`, into `out`.
fn push_without_ids(path: &str, out: &mut String) {
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let id = is_uuid(seg)
            || (!seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()))
            || (seg.len() >= 16 && seg.bytes().all(|b| b.is_ascii_hexdigit()));
        out.push_str(if id { "{id}" } else { seg });
    }
}

/// The summary printer.
pub struct SummaryPrinter<W: Write> {
    out: W,
    yaml: bool,
    json: bool,
    window: Window,
    width: usize,
    tally: Tally,
    names: Option<Box<dyn Names>>,
}

impl<W: Write> SummaryPrinter<W> {
    /// A summary of a query over `window` (its bounds are shown, and
    /// charted when given), printed as `format` in `width` columns.
    pub fn new(out: W, format: Format, window: Window, width: usize) -> Self {
        SummaryPrinter {
            out,
            yaml: format == Format::Yaml,
            json: format == Format::Json,
            window,
            width,
            tally: Tally::default(),
            names: None,
        }
    }

    /// Names the top principals with `names`.
    pub fn with_names(mut self, names: Box<dyn Names>) -> Self {
        self.names = Some(names);
        self
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    /// The numbers, as the JSON document `-o json` prints.
    pub fn document(&self, summary: &Summary) -> Value {
        let t = &self.tally;
        // Whole seconds, as records have them (a --since window ends at a
        // fraction of a second).
        let time = |t: Option<Timestamp>| t.map(|t| format!("{t:.0}"));
        let types: Vec<Value> = t
            .types
            .iter()
            .map(|(name, tt)| {
                json!({
                    "type": name,
                    "records": tt.records,
                    "outcomes": tt.outcomes
                        .top(usize::MAX)
                        .into_iter()
                        .map(|(o, n)| json!({"outcome": o, "records": n}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let top: Vec<(PrincipalKey, u64)> = t
            .principals
            .top(TOP)
            .into_iter()
            .map(|(id, n)| (t.key(id), n))
            .collect();
        let keys: Vec<PrincipalKey> = top
            .iter()
            .filter(|(k, _)| !t.sent_names.contains_key(k.id.as_str()))
            .map(|(k, _)| k.clone())
            .collect();
        let looked_up = match &self.names {
            Some(names) if !keys.is_empty() => names.names(&keys),
            _ => HashMap::new(),
        };
        let principals: Vec<Value> = top
            .iter()
            .map(|(k, n)| {
                let name = t
                    .sent_names
                    .get(k.id.as_str())
                    .map(|n| n.to_string())
                    .or_else(|| looked_up.get(k).cloned());
                let mut p = json!({"id": k.id, "name": name, "records": n});
                if let Some(portal) = &k.portal_id {
                    p["portal_id"] = json!(portal);
                }
                p
            })
            .collect();
        let actions: Vec<Value> = t
            .actions
            .top(TOP)
            .into_iter()
            .map(|(a, n)| json!({"action": a, "records": n}))
            .collect();
        let alerts: Vec<Value> = Rule::ALL
            .into_iter()
            .zip(t.alerts)
            .map(|(r, n)| json!({"rule": r.name(), "records": n}))
            .collect();
        let chart = self.buckets();
        json!({
            "window": {"start": time(self.window.start), "end": time(self.window.end)},
            "first": time(t.first),
            "last": time(t.last),
            "records": t.records,
            "untimed": t.untimed,
            "truncated": summary.truncated,
            "types": types,
            "principals": principals,
            "other_principals": t.principals.other,
            "actions": actions,
            "other_actions": t.actions.other,
            "alerts": alerts,
            "buckets": chart.as_ref().map(|c| json!({
                "unit": c.unit.name(),
                "counts": c.counts.iter().map(|(start, n)| json!({
                    "start": start.to_string(),
                    "records": n,
                })).collect::<Vec<_>>(),
            })),
        })
    }

    /// The chart's buckets: over the window where it is given, else from
    /// the first record to the last.
    fn buckets(&self) -> Option<Buckets> {
        let t = &self.tally;
        let start = self.window.start.or(t.first)?;
        let end = self.window.end.or(t.last)?.max(start);
        let unit = if end.duration_since(start) <= HOURLY_UP_TO {
            Unit::Hour
        } else {
            Unit::Day
        };
        let (mut from, to) = (unit.index(start), unit.index(end));
        if to - from >= MAX_BUCKETS as i64 {
            // A wide window: the records' own span, at most the latest.
            if let (Some(first), Some(last)) = (t.first, t.last) {
                from = from.max(unit.index(first)).min(unit.index(last));
            }
            from = from.max(to - MAX_BUCKETS as i64 + 1);
        }
        let mut counts: BTreeMap<i64, u64> = (from..=to).map(|i| (i, 0)).collect();
        for (&hour, &n) in &t.hours {
            let i = match unit {
                Unit::Hour => hour,
                Unit::Day => hour.div_euclid(24),
            };
            if let Some(c) = counts.get_mut(&i) {
                *c += n;
            }
        }
        Some(Buckets {
            unit,
            counts: counts
                .into_iter()
                .map(|(i, n)| (unit.start(i), n))
                .collect(),
        })
    }

    fn text(&self, summary: &Summary) -> String {
        let doc = self.document(summary);
        let mut out = String::new();
        let str_of = |v: &Value| v.as_str().map(str::to_owned);
        let (start, end) = (
            str_of(&doc["window"]["start"]),
            str_of(&doc["window"]["end"]),
        );
        let window = match (start, end) {
            (Some(s), Some(e)) => format!("{s} to {e}"),
            (Some(s), None) => format!("from {s}"),
            (None, Some(e)) => format!("until {e}"),
            (None, None) => "all records".to_owned(),
        };
        out.push_str(&format!("Window   {window}\n"));
        let t = &self.tally;
        let mut records = format!("Records  {}", t.records);
        if let (Some(first), Some(last)) = (t.first, t.last) {
            records.push_str(&format!(", first {first}, last {last}"));
        }
        if t.untimed > 0 {
            records.push_str(&format!(", {} without a time", t.untimed));
        }
        if summary.truncated {
            records.push_str(" (--limit reached: more records matched)");
        }
        out.push_str(&records);
        out.push('\n');
        if t.records == 0 {
            return out;
        }

        let mut sections: Vec<(&str, Vec<(String, u64)>)> = Vec::new();
        let mut types = Vec::new();
        for ty in doc["types"].as_array().into_iter().flatten() {
            types.push((text(&ty["type"]), count(&ty["records"])));
            for o in ty["outcomes"].as_array().into_iter().flatten() {
                types.push((format!("  {}", text(&o["outcome"])), count(&o["records"])));
            }
        }
        sections.push(("BY TYPE AND OUTCOME", types));
        let mut principals: Vec<(String, u64)> = doc["principals"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let label = match p["name"].as_str() {
                    Some(name) => name.to_owned(),
                    None => text(&p["id"]),
                };
                (label, count(&p["records"]))
            })
            .collect();
        let shown: u64 = principals.iter().map(|p| p.1).sum();
        let with_principal = t.principals.total();
        if with_principal > shown {
            principals.push(("(others)".to_owned(), with_principal - shown));
        }
        sections.push(("TOP PRINCIPALS", principals));
        let mut actions: Vec<(String, u64)> = doc["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| (text(&a["action"]), count(&a["records"])))
            .collect();
        let shown: u64 = actions.iter().map(|a| a.1).sum();
        if t.records > shown {
            actions.push(("(others)".to_owned(), t.records - shown));
        }
        sections.push(("TOP ACTIONS", actions));
        sections.push((
            "ALERTS",
            Rule::ALL
                .into_iter()
                .zip(t.alerts)
                .map(|(r, n)| (r.name().to_owned(), n))
                .collect(),
        ));
        let count_width = t.records.to_string().len().max("RECORDS".len());
        let label_width = sections
            .iter()
            .flat_map(|(h, rows)| {
                std::iter::once(h.chars().count()).chain(rows.iter().map(|r| r.0.chars().count()))
            })
            .max()
            .unwrap_or(0)
            .min(self.width.saturating_sub(count_width + 2).max(20));
        for (heading, rows) in &sections {
            out.push('\n');
            out.push_str(&format!(
                "{:<label_width$}  {:>count_width$}\n",
                heading, "RECORDS"
            ));
            for (label, n) in rows {
                out.push_str(&format!(
                    "{:<label_width$}  {n:>count_width$}\n",
                    cut(label, label_width)
                ));
            }
        }
        if let Some(chart) = self.buckets() {
            out.push_str(&format!(
                "\nEVENTS PER {} (UTC)\n",
                chart.unit.name().to_uppercase()
            ));
            let bars: Vec<(String, u64)> = chart
                .counts
                .iter()
                .map(|(start, n)| (chart.unit.label(*start), *n))
                .collect();
            out.push_str(&chart::render(&bars, self.width));
        }
        out
    }
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// `s` cut to `width` characters, with `…` when cut.
fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Hour,
    Day,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Hour => "hour",
            Unit::Day => "day",
        }
    }

    fn seconds(self) -> i64 {
        match self {
            Unit::Hour => 3600,
            Unit::Day => 86_400,
        }
    }

    fn index(self, t: Timestamp) -> i64 {
        t.as_second().div_euclid(self.seconds())
    }

    fn start(self, index: i64) -> Timestamp {
        Timestamp::from_second(index.saturating_mul(self.seconds())).unwrap_or(Timestamp::MIN)
    }

    fn label(self, start: Timestamp) -> String {
        match self {
            Unit::Hour => start.strftime("%Y-%m-%d %H:%M").to_string(),
            Unit::Day => start.strftime("%Y-%m-%d").to_string(),
        }
    }
}

/// Records per bucket, oldest first.
struct Buckets {
    unit: Unit,
    counts: Vec<(Timestamp, u64)>,
}

impl<W: Write> Output for SummaryPrinter<W> {
    fn record(&mut self, record: &Record) -> io::Result<()> {
        self.tally.add(record);
        Ok(())
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        if self.json || self.yaml {
            let doc = self.document(summary);
            if self.yaml {
                let text = serde_yaml_ng::to_string(&doc).map_err(io::Error::other)?;
                self.out.write_all(text.as_bytes())?;
            } else {
                let text = serde_json::to_string_pretty(&doc).map_err(io::Error::other)?;
                self.out.write_all(text.as_bytes())?;
                self.out.write_all(b"\n")?;
            }
        } else {
            let text = self.text(summary);
            self.out.write_all(text.as_bytes())?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printer(format: Format, window: Window, width: usize) -> SummaryPrinter<Vec<u8>> {
        SummaryPrinter::new(Vec::new(), format, window, width)
    }

    fn feed(p: &mut SummaryPrinter<Vec<u8>>, lines: &[String]) -> String {
        for l in lines {
            p.record(&Record::from_slice(l.as_bytes()).unwrap())
                .unwrap();
        }
        p.finish(&Summary::default()).unwrap();
        String::from_utf8(std::mem::take(&mut p.out)).unwrap()
    }

    fn bucket_counts(doc: &Value) -> Vec<u64> {
        doc["buckets"]["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["records"].as_u64().unwrap())
            .collect()
    }

    fn authz(ts: &str, who: &str, granted: bool, name: &str) -> String {
        format!(
            r#"{{"event_class_id":"konnect","event_ts":"{ts}","name":"{name}","action":"list","granted":{granted},"principal_id":"{who}"}}"#
        )
    }

    #[test]
    fn actions_read_ids_as_placeholders() {
        let without_ids = |path: &str| {
            let mut out = String::new();
            push_without_ids(path, &mut out);
            out
        };
        assert_eq!(
            without_ids(
                "/konnect-api/api/control_planes/1c026712-c17d-4e30-ac27-53a6cdc56b9c/services"
            ),
            "/konnect-api/api/control_planes/{id}/services"
        );
        assert_eq!(without_ids("/v2/things/42"), "/v2/things/{id}");
        assert_eq!(
            krn_resource("krn:konnect:reg/us:org/abc:portals/*"),
            "portals/*"
        );
        let view = |line: &str| {
            let r = Record::from_slice(line.as_bytes()).unwrap();
            let mut out = String::new();
            action(&RecordView::of(&r), &mut out);
            out
        };
        assert_eq!(
            view(
                r#"{"type":"authentication","ts":"2026-01-01T00:00:00Z","authentication_type":"sso"}"#
            ),
            "login sso"
        );
        assert_eq!(
            view(
                r#"{"event_class_id":"AUTHENTICATION_TYPE_PAT","name":"AUTHENTICATION_OUTCOME_SUCCESS"}"#
            ),
            "login pat"
        );
        assert_eq!(
            view(
                r#"{"event_class_id":"konnect","name":"Authz.control-planes/1c026712-c17d-4e30-ac27-53a6cdc56b9c","action":"retrieve"}"#
            ),
            "retrieve control-planes/{id}"
        );
        assert_eq!(
            view(
                r#"{"event_class_id":"KongGateway","name":"Ingress","act":"GET","request":"/a/12?x=1"}"#
            ),
            "GET /a/{id}"
        );
    }

    #[test]
    fn counts_by_type_outcome_principal_action_and_rule() {
        let mut p = printer(Format::Json, Window::default(), 80);
        let lines = vec![
            authz("2026-08-23T10:05:00Z", "alice", true, "Authz.portals"),
            authz("2026-08-23T10:06:00Z", "alice", false, "Authz.portals"),
            authz("2026-08-23T12:00:00Z", "bob", true, "Authz.control-planes"),
            r#"{"event_class_id":"KongGateway","event_ts":"2026-08-23T12:30:00Z","name":"Ingress","act":"POST","request":"/x","status":503,"principal_id":"bob","principal_name":"Bob B"}"#.to_owned(),
            r#"{"event":{"event_class_id":"AUTHENTICATION_TYPE_PAT","event_ts":"2026-08-23T12:31:00Z","name":"AUTHENTICATION_OUTCOME_LOCKED","success":"false","principal_id":"carol"}}"#.to_owned(),
        ];
        let doc: Value = serde_json::from_str(&feed(&mut p, &lines)).unwrap();
        assert_eq!(doc["records"], 5);
        assert_eq!(doc["first"], "2026-08-23T10:05:00Z");
        assert_eq!(doc["last"], "2026-08-23T12:31:00Z");
        assert_eq!(
            doc["types"],
            json!([
                {"type": "authentication", "records": 1, "outcomes": [{"outcome": "locked", "records": 1}]},
                {"type": "authorization", "records": 3, "outcomes": [
                    {"outcome": "granted", "records": 2}, {"outcome": "denied", "records": 1}]},
                {"type": "gateway_access", "records": 1, "outcomes": [{"outcome": "503", "records": 1}]},
            ])
        );
        assert_eq!(
            doc["principals"],
            json!([
                {"id": "alice", "name": null, "records": 2},
                {"id": "bob", "name": "Bob B", "records": 2},
                {"id": "carol", "name": null, "records": 1},
            ])
        );
        assert_eq!(
            doc["actions"][0],
            json!({"action": "list portals", "records": 2})
        );
        assert_eq!(
            doc["alerts"],
            json!([
                {"rule": "locked", "records": 1},
                {"rule": "failed-login", "records": 1},
                {"rule": "denied", "records": 1},
                {"rule": "forbidden", "records": 0},
                {"rule": "server-error", "records": 1},
            ])
        );
        // Less than two days: hours, from the first record's to the last's.
        assert_eq!(doc["buckets"]["unit"], "hour");
        let counts = bucket_counts(&doc);
        assert_eq!(counts, [2, 0, 3]);
        assert_eq!(doc["buckets"]["counts"][0]["start"], "2026-08-23T10:00:00Z");
    }

    #[test]
    fn a_window_is_charted_whole_in_days_beyond_two_days() {
        let window = Window {
            start: Some("2026-08-20T00:00:00Z".parse().unwrap()),
            end: Some("2026-08-23T23:59:59Z".parse().unwrap()),
        };
        let mut p = printer(Format::Json, window, 80);
        let doc: Value = serde_json::from_str(&feed(
            &mut p,
            &[authz("2026-08-22T10:00:00Z", "a", true, "Authz.x")],
        ))
        .unwrap();
        assert_eq!(doc["buckets"]["unit"], "day");
        let counts = bucket_counts(&doc);
        assert_eq!(counts, [0, 0, 1, 0]);
        assert_eq!(doc["window"]["start"], "2026-08-20T00:00:00Z");
    }

    #[test]
    fn names_are_asked_for_the_top_principals_only() {
        struct Fixed;
        impl Names for Fixed {
            fn names(&self, keys: &[PrincipalKey]) -> HashMap<PrincipalKey, String> {
                keys.iter()
                    .filter(|k| k.id == "alice")
                    .map(|k| (k.clone(), "Alice A <alice@example.com>".to_owned()))
                    .collect()
            }
        }
        let mut p = printer(Format::Text, Window::default(), 60).with_names(Box::new(Fixed));
        let text = feed(
            &mut p,
            &[
                authz("2026-08-23T10:05:00Z", "alice", true, "Authz.portals"),
                authz("2026-08-23T10:06:00Z", "bob", false, "Authz.portals"),
            ],
        );
        assert!(text.contains("Alice A <alice@example.com>"), "{text}");
        assert!(text.contains("\nbob "), "{text}");
    }

    #[test]
    fn nothing_to_count_says_so() {
        let mut p = printer(Format::Text, Window::default(), 80);
        assert_eq!(feed(&mut p, &[]), "Window   all records\nRecords  0\n");
    }
}
