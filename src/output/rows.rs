//! `-o text`: one row per record, under upstream's headers
//! `TIMESTAMP TYPE PRINCIPAL ACTION RESULT TRACE ID` or the `--columns`
//! the user chose. When Dev Portal records are shown, a `PORTAL` column
//! (the record's `portal_id`) follows `TYPE`: in a finite table when any
//! row has one, in a follow when the command says portal records may come
//! (its header is printed before they do).
//!
//! A finite query prints one aligned table at the end, fitted to the
//! terminal as `ps` is ([`super::table`]). A follow prints the header
//! once, before its first row, then each row as it comes, cells joined by
//! tabs, as upstream does.
//!
//! The default row is upstream's mapping of a pull record (`ts`, `type`,
//! `principal_id`, `action` or `authentication_type`, `outcome` or
//! `granted`, for gateway access `method uri` and `status_code`,
//! `trace_id`; PRINCIPAL is the `principal_name` when the record has one,
//! which [`crate::query::names::Named`] adds when a token is at hand),
//! extended to the webhook's records, which name things
//! differently: their type comes from the record view
//! ([`crate::record::EventType::of_webhook`]); an authentication's action
//! and result come from its event class and name
//! (`AUTHENTICATION_TYPE_PAT` → `pat`, `AUTHENTICATION_OUTCOME_SUCCESS` →
//! `success`); a gateway access's from `act`, `request` and `status`.
//! Numbers (a webhook `trace_id`) print exactly.

use std::io::{self, BufWriter, Write};

use serde_json::{Map, Value};

use super::columns::{self, Column};
use super::table;
use super::{Output, Summary};
use crate::record::{EventType, Record};

pub const HEADERS: [&str; 6] = [
    "TIMESTAMP",
    "TYPE",
    "PRINCIPAL",
    "ACTION",
    "RESULT",
    "TRACE ID",
];

/// The header of the portal column, and where it goes (after `TYPE`).
pub const PORTAL_HEADER: &str = "PORTAL";
const PORTAL_AT: usize = 2;

pub struct Rows<W: Write> {
    out: BufWriter<W>,
    columns: Option<Vec<Column>>,
    follow: bool,
    width: usize,
    /// Finite tables: each row and its record's portal id.
    rows: Vec<(Vec<String>, Option<String>)>,
    header_written: bool,
    /// A follow's rows have the PORTAL column.
    portal_column: bool,
}

impl<W: Write> Rows<W> {
    pub fn new(out: W, columns: Option<Vec<Column>>, follow: bool, width: usize) -> Self {
        Rows {
            out: BufWriter::with_capacity(64 * 1024, out),
            columns,
            follow,
            width,
            rows: Vec::new(),
            header_written: false,
            portal_column: false,
        }
    }

    /// A follow shows the PORTAL column from its first row (a finite
    /// table decides from its rows).
    pub fn with_portal_column(mut self, portal_column: bool) -> Self {
        self.portal_column = portal_column;
        self
    }

    pub fn into_inner(self) -> io::Result<W> {
        self.out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)
    }

    fn headers(&self, portal: bool) -> Vec<&str> {
        match &self.columns {
            Some(columns) => columns.iter().map(|c| c.header.as_str()).collect(),
            None => {
                let mut headers = HEADERS.to_vec();
                if portal {
                    headers.insert(PORTAL_AT, PORTAL_HEADER);
                }
                headers
            }
        }
    }

    fn row(&self, record: &Record) -> Vec<String> {
        let value: Value = serde_json::from_slice(record.json()).unwrap_or(Value::Null);
        match &self.columns {
            Some(columns) => columns::project(&value, columns)
                .into_iter()
                .next()
                .unwrap_or_default(),
            None => default_row(&value, record.kind()).to_vec(),
        }
    }
}

impl<W: Write> Output for Rows<W> {
    fn record(&mut self, record: &Record) -> io::Result<()> {
        let mut row = self.row(record);
        let portal = record.portal_id().map(str::to_owned);
        if !self.follow {
            self.rows.push((row, portal));
            return Ok(());
        }
        let with_portal = self.portal_column && self.columns.is_none();
        if !self.header_written {
            self.header_written = true;
            let header = self.headers(with_portal).join("\t");
            writeln!(self.out, "{header}")?;
        }
        if with_portal {
            row.insert(PORTAL_AT, portal.unwrap_or_default());
        }
        writeln!(self.out, "{}", row.join("\t"))
    }

    fn caught_up(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self, _: &Summary) -> io::Result<()> {
        if !self.follow {
            let with_portal = self.columns.is_none() && self.rows.iter().any(|(_, p)| p.is_some());
            let rows: Vec<Vec<String>> = std::mem::take(&mut self.rows)
                .into_iter()
                .map(|(mut row, portal)| {
                    if with_portal {
                        row.insert(PORTAL_AT, portal.unwrap_or_default());
                    }
                    row
                })
                .collect();
            let text = table::render(&self.headers(with_portal), &rows, self.width);
            self.out.write_all(text.as_bytes())?;
        }
        self.out.flush()
    }
}

/// The default row of one record (see the module documentation).
pub fn default_row(value: &Value, kind: Option<EventType>) -> [String; 6] {
    let empty = Map::new();
    let mut record = value.as_object().unwrap_or(&empty);
    // A cps record's fields are those of the event it wraps.
    if let Some(Value::Object(event)) = record.get("event")
        && !record.contains_key("event_ts")
        && !record.contains_key("ts")
    {
        record = event;
    }
    let mut type_name = first_string(record, &["type", "event_type"]);
    let from_webhook = type_name.is_empty();
    if from_webhook && let Some(kind) = kind {
        type_name = kind.as_str().to_owned();
    }
    // The principal's name when the record has one (Konnect's, or the one
    // the query's names stage added), else its id.
    let mut principal = first_string(record, &["principal_name"]);
    if principal.is_empty() {
        principal = first_string(record, &["principal_id"]);
    }
    if principal.is_empty() {
        principal = nested_first(
            record,
            &[
                &["principal", "name"],
                &["principal", "id"],
                &["actor", "name"],
                &["actor", "id"],
                &["user", "id"],
            ],
            false,
        );
    }
    let mut action = first_string(record, &["action", "authentication_type"]);
    let mut result = first_string(record, &["outcome", "result"]);
    if let Some(Value::Bool(granted)) = record.get("granted") {
        result = if *granted { "granted" } else { "denied" }.to_owned();
    }
    if type_name == "gateway_access" {
        let method = nested_first(
            record,
            &[&["request", "method"], &["method"], &["act"]],
            false,
        );
        let uri = nested_first(
            record,
            &[&["request", "uri"], &["uri"], &["request"]],
            false,
        );
        action = format!("{method} {uri}").trim().to_owned();
        result = first_scalar(record, &["status_code", "status"]);
        if result.is_empty() {
            result = nested_first(record, &[&["response", "status_code"]], true);
        }
    } else if from_webhook && type_name == "authentication" {
        let class = first_string(record, &["event_class_id"]);
        let name = first_string(record, &["name"]);
        if action.is_empty() {
            action = suffix_lower(&class, "AUTHENTICATION_TYPE_");
        }
        if result.is_empty() {
            result = suffix_lower(&name, "AUTHENTICATION_OUTCOME_");
        }
    }
    [
        first_string(record, &["ts", "timestamp", "event_ts"]),
        type_name,
        principal,
        action,
        result,
        first_scalar(record, &["trace_id", "traceId"]),
    ]
}

fn suffix_lower(text: &str, prefix: &str) -> String {
    text.strip_prefix(prefix)
        .unwrap_or(text)
        .to_ascii_lowercase()
}

fn first_string(record: &Map<String, Value>, keys: &[&str]) -> String {
    keys.iter()
        .find_map(|k| record.get(*k).and_then(Value::as_str))
        .unwrap_or("")
        .to_owned()
}

/// A string, number or boolean, as text.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn first_scalar(record: &Map<String, Value>, keys: &[&str]) -> String {
    keys.iter()
        .find_map(|k| record.get(*k).and_then(scalar))
        .unwrap_or_default()
}

/// The first path that leads to a string (or, if `scalars`, any scalar).
fn nested_first(record: &Map<String, Value>, paths: &[&[&str]], scalars: bool) -> String {
    paths
        .iter()
        .find_map(|path| {
            let (first, rest) = path.split_first()?;
            let mut value = record.get(*first)?;
            for key in rest {
                value = value.as_object()?.get(*key)?;
            }
            match value {
                Value::String(s) => Some(s.clone()),
                other if scalars => scalar(other),
                _ => None,
            }
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: &str) -> [String; 6] {
        let record = Record::from_slice(line.as_bytes()).unwrap();
        default_row(
            &serde_json::from_slice(record.json()).unwrap(),
            record.kind(),
        )
    }

    #[test]
    fn upstream_rows_for_the_three_pull_types() {
        assert_eq!(
            row(
                r#"{"type":"authentication","ts":"2026-08-23T14:00:00Z","principal_id":"user-1","authentication_type":"sso","outcome":"success","trace_id":"trace-1"}"#
            ),
            [
                "2026-08-23T14:00:00Z",
                "authentication",
                "user-1",
                "sso",
                "success",
                "trace-1"
            ]
        );
        assert_eq!(
            row(
                r#"{"type":"authorization","ts":"2026-08-23T14:00:01Z","principal_id":"user-2","action":"gateway.read","granted":false,"trace_id":"trace-2"}"#
            ),
            [
                "2026-08-23T14:00:01Z",
                "authorization",
                "user-2",
                "gateway.read",
                "denied",
                "trace-2"
            ]
        );
        assert_eq!(
            row(
                r#"{"type":"gateway_access","ts":"2026-08-23T14:00:02Z","principal_id":"user-3","method":"POST","uri":"/v2/services","status_code":201,"trace_id":"trace-3"}"#
            ),
            [
                "2026-08-23T14:00:02Z",
                "gateway_access",
                "user-3",
                "POST /v2/services",
                "201",
                "trace-3"
            ]
        );
    }

    #[test]
    fn webhook_records_fill_the_same_columns() {
        assert_eq!(
            row(
                r#"{"cef_version":0,"event_class_id":"AUTHENTICATION_TYPE_BASIC","event_ts":"2025-05-16T00:28:01Z","name":"AUTHENTICATION_OUTCOME_SUCCESS","principal_id":"p1","trace_id":6891110586028963295}"#
            ),
            [
                "2025-05-16T00:28:01Z",
                "authentication",
                "p1",
                "basic",
                "success",
                "6891110586028963295"
            ]
        );
        assert_eq!(
            row(
                r#"{"action":"list","event_class_id":"konnect","event_ts":"2025-05-16T00:28:01Z","granted":true,"name":"Authz.portals","principal_id":"p2","trace_id":1}"#
            ),
            [
                "2025-05-16T00:28:01Z",
                "authorization",
                "p2",
                "list",
                "granted",
                "1"
            ]
        );
        assert_eq!(
            row(
                r#"{"act":"GET","event_class_id":"KongGateway","event_ts":"2025-05-16T00:28:01Z","name":"Ingress","principal_id":"p3","request":"/v2/x","status":200,"trace_id":2}"#
            ),
            [
                "2025-05-16T00:28:01Z",
                "gateway_access",
                "p3",
                "GET /v2/x",
                "200",
                "2"
            ]
        );
        assert_eq!(
            row(
                r#"{"event":{"act":"GET","event_class_id":"KongGateway","event_ts":"2025-05-16T00:28:01Z","name":"Ingress","principal_id":"p3","request":"/v2/x","status":200,"trace_id":2}}"#
            ),
            [
                "2025-05-16T00:28:01Z",
                "gateway_access",
                "p3",
                "GET /v2/x",
                "200",
                "2"
            ]
        );
        let cef = row(
            "2025-06-18T21:02:36Z konghq.com CEF:0|KongInc|Konnect|1.0|konnect|Authz.control-planes|1|action=list granted=true principal_id=p4 trace_id=3959872677347089807 sig=K",
        );
        assert_eq!(
            cef,
            [
                "2025-06-18T21:02:36Z",
                "authorization",
                "p4",
                "list",
                "granted",
                "3959872677347089807"
            ]
        );
    }

    fn render(follow: bool, columns: Option<&str>, lines: &[&str]) -> String {
        render_with(follow, false, columns, lines)
    }

    fn render_with(follow: bool, portal: bool, columns: Option<&str>, lines: &[&str]) -> String {
        let columns = columns.map(|c| columns::parse(&[c.to_owned()]).unwrap());
        let mut rows = Rows::new(Vec::new(), columns, follow, 0).with_portal_column(portal);
        for l in lines {
            rows.record(&Record::from_slice(l.as_bytes()).unwrap())
                .unwrap();
        }
        rows.finish(&Summary::default()).unwrap();
        String::from_utf8(rows.into_inner().unwrap()).unwrap()
    }

    const R: &str = r#"{"type":"authorization","ts":"2026-08-23T14:00:01Z","principal_id":"user-2","action":"gateway.read","granted":false,"trace_id":"trace-2"}"#;

    #[test]
    fn finite_tables_are_aligned_and_follow_rows_tab_separated() {
        assert_eq!(
            render(false, None, &[R]),
            "TIMESTAMP             TYPE           PRINCIPAL  ACTION        RESULT  TRACE ID\n2026-08-23T14:00:01Z  authorization  user-2     gateway.read  denied  trace-2\n"
        );
        assert_eq!(
            render(false, None, &[]),
            "TIMESTAMP  TYPE  PRINCIPAL  ACTION  RESULT  TRACE ID\n"
        );
        assert_eq!(
            render(true, None, &[R, R]),
            "TIMESTAMP\tTYPE\tPRINCIPAL\tACTION\tRESULT\tTRACE ID\n2026-08-23T14:00:01Z\tauthorization\tuser-2\tgateway.read\tdenied\ttrace-2\n2026-08-23T14:00:01Z\tauthorization\tuser-2\tgateway.read\tdenied\ttrace-2\n"
        );
        assert_eq!(render(true, None, &[]), "");
    }

    const P: &str = r#"{"cef_version":0,"event_class_id":"AUTHENTICATION_TYPE_BASIC","event_product":"Dev-Portal","event_ts":"2025-06-23T14:28:47Z","name":"AUTHENTICATION_OUTCOME_SUCCESS","portal_id":"3e551b39","principal_id":"dev-1","trace_id":7}"#;

    #[test]
    fn portal_records_bring_a_portal_column() {
        assert_eq!(
            render(false, None, &[R, P]),
            "TIMESTAMP             TYPE            PORTAL    PRINCIPAL  ACTION        RESULT   TRACE ID\n\
             2026-08-23T14:00:01Z  authorization             user-2     gateway.read  denied   trace-2\n\
             2025-06-23T14:28:47Z  authentication  3e551b39  dev-1      basic         success  7\n"
        );
        // A follow: from its first row when told, else never.
        assert_eq!(
            render_with(true, true, None, &[R, P]),
            "TIMESTAMP\tTYPE\tPORTAL\tPRINCIPAL\tACTION\tRESULT\tTRACE ID\n\
             2026-08-23T14:00:01Z\tauthorization\t\tuser-2\tgateway.read\tdenied\ttrace-2\n\
             2025-06-23T14:28:47Z\tauthentication\t3e551b39\tdev-1\tbasic\tsuccess\t7\n"
        );
        assert!(render(true, None, &[P]).starts_with("TIMESTAMP\tTYPE\tPRINCIPAL\t"));
        // The user's columns are the user's.
        assert_eq!(
            render(false, Some("WHO=.principal_id"), &[P]),
            "WHO\ndev-1\n"
        );
    }

    #[test]
    fn columns_pick_fields_of_each_record() {
        assert_eq!(
            render(
                false,
                Some("WHO=.principal_id,OK=.granted,DAY=.ts[:10]"),
                &[R]
            ),
            "WHO     OK     DAY\nuser-2  false  2026-08-23\n"
        );
    }
}
