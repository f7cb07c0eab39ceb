//! The read-only views of a region's audit-log setup: `get audit-logs
//! destinations`, `destination <id|name>`, `webhook` and `replay-job`,
//! printed as upstream kongctl prints the first three (`-o text`: a titled
//! block of `  key: value` lines, `n/a` for what Konnect left out; `-o
//! json|yaml`: the same fields as a document).
//!
//! Beyond upstream: every page of destinations is read (upstream reads the
//! first), the webhook view adds its delivery status (`…/status`, v3 else
//! v2) and the destination the v3 webhook points at, and `replay-job`
//! exists. Fetching is `konnect::audit_logs`'s.

use serde::Serialize;
use serde_json::Value;

use crate::cli::OutputFormat;

/// Konnect's "never set" time, shown as `n/a`.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A destination as shown (upstream's fields, empty ones left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DestinationView {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub log_format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_ssl_verification: Option<bool>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created_at: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub updated_at: String,
}

impl DestinationView {
    /// From one item of the destination list; `None` for an item without
    /// an endpoint, or without both id and name (upstream's rule).
    pub fn from_item(item: &Value) -> Option<DestinationView> {
        let view = DestinationView {
            id: text(item, "id"),
            name: text(item, "name"),
            endpoint: text(item, "endpoint"),
            log_format: text(item, "log_format"),
            skip_ssl_verification: item.get("skip_ssl_verification").and_then(Value::as_bool),
            created_at: text(item, "created_at"),
            updated_at: text(item, "updated_at"),
        };
        let named = !view.id.is_empty() || !view.name.is_empty();
        (named && !view.endpoint.is_empty()).then_some(view)
    }
}

/// The destinations of a list, sorted by name (case-insensitive), then id,
/// as upstream sorts them.
pub fn destinations(items: &[Value]) -> Vec<DestinationView> {
    let mut views: Vec<DestinationView> = items
        .iter()
        .filter_map(DestinationView::from_item)
        .collect();
    views.sort_by(|a, b| {
        (a.name.to_lowercase(), a.id.to_lowercase())
            .cmp(&(b.name.to_lowercase(), b.id.to_lowercase()))
    });
    views.dedup_by(|a, b| !a.id.is_empty() && a.id == b.id);
    views
}

/// The one destination whose id or name is exactly `selector`.
pub fn find_destination(
    views: Vec<DestinationView>,
    selector: &str,
) -> Result<DestinationView, String> {
    let target = selector.trim();
    if target.is_empty() {
        return Err("destination selector cannot be empty".into());
    }
    let mut matches: Vec<DestinationView> = views
        .into_iter()
        .filter(|d| d.id == target || d.name == target)
        .collect();
    match matches.len() {
        0 => Err(format!(
            "audit-log destination {} not found",
            crate::gofmt::quote(target)
        )),
        1 => Ok(matches.remove(0)),
        _ => Err(format!(
            "multiple audit-log destinations matched {}; use destination id instead",
            crate::gofmt::quote(target)
        )),
    }
}

/// The region's webhook as shown: upstream's fields, plus its delivery
/// status.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WebhookView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub log_format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_ssl_verification: Option<bool>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub audit_log_destination_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub updated_at: String,
    /// `…/audit-log-webhook/status` as Konnect answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

impl WebhookView {
    /// From `GET /v2/audit-log-webhook`, `GET /v3/audit-log-webhook` (if
    /// any) and the status (if any).
    pub fn new(v2: &Value, v3: Option<&Value>, status: Option<Value>) -> WebhookView {
        let destination = v3
            .map(|v| text(v, "audit_log_destination_id"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| first_text(v2, &["audit_log_destination_id", "destination_id"]));
        WebhookView {
            enabled: first_bool(v2, "enabled")
                .or_else(|| v3.and_then(|v| first_bool(v, "enabled"))),
            endpoint: first_text(v2, &["endpoint"]),
            log_format: first_text(v2, &["log_format"]),
            skip_ssl_verification: first_bool(v2, "skip_ssl_verification"),
            audit_log_destination_id: destination,
            updated_at: first_text(v2, &["updated_at"]),
            status,
        }
    }
}

/// A Dev Portal's audit-log webhook and its delivery status, for `get
/// audit-logs webhook --portal`.
#[derive(Debug, Clone, Serialize)]
pub struct PortalWebhookView {
    pub portal_id: String,
    pub portal_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub audit_log_destination_id: String,
    /// `…/audit-log-webhook/status` as Konnect answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

impl PortalWebhookView {
    /// From the portal, `GET /v3/portals/{id}/audit-log-webhook` and its
    /// status (if any).
    pub fn new(
        portal: &crate::konnect::Portal,
        hook: Option<&Value>,
        status: Option<Value>,
    ) -> PortalWebhookView {
        PortalWebhookView {
            portal_id: portal.id.clone(),
            portal_name: portal.name.clone(),
            enabled: hook.and_then(|h| h.get("enabled")).and_then(Value::as_bool),
            audit_log_destination_id: hook
                .map(|h| text(h, "audit_log_destination_id"))
                .unwrap_or_default(),
            status,
        }
    }
}

/// Prints `value` as `-o json|yaml` does for these views.
pub fn document<T: Serialize>(value: &T, output: OutputFormat) -> String {
    match output {
        OutputFormat::Yaml => {
            serde_yaml_ng::to_string(value).expect("inspection views serialise to YAML")
        }
        _ => {
            let mut json =
                serde_json::to_string_pretty(value).expect("inspection views serialise to JSON");
            json.push('\n');
            json
        }
    }
}

/// `-o text` of the destination list.
pub fn destinations_text(views: &[DestinationView]) -> String {
    if views.is_empty() {
        return "No Konnect audit-log destinations found.\n".into();
    }
    let mut out = format!("Konnect audit-log destinations ({})\n\n", views.len());
    for (i, view) in views.iter().enumerate() {
        out.push_str(&format!("Destination {}\n", i + 1));
        destination_fields(&mut out, view);
        if i + 1 < views.len() {
            out.push('\n');
        }
    }
    out
}

/// `-o text` of one destination.
pub fn destination_text(view: &DestinationView) -> String {
    let mut out = String::from("Konnect audit-log destination\n");
    destination_fields(&mut out, view);
    out
}

fn destination_fields(out: &mut String, d: &DestinationView) {
    for (key, value) in [
        ("id", na(&d.id)),
        ("name", na(&d.name)),
        ("endpoint", na(&d.endpoint)),
        ("log format", na(&d.log_format)),
        ("skip ssl verification", bool_or_na(d.skip_ssl_verification)),
        ("created at", na(&d.created_at)),
        ("updated at", na(&d.updated_at)),
    ] {
        out.push_str(&format!("  {key}: {value}\n"));
    }
}

/// `-o text` of the webhook.
pub fn webhook_text(w: &WebhookView) -> String {
    let lines = vec![
        ("enabled", bool_or_na(w.enabled)),
        ("endpoint", na(&w.endpoint)),
        ("log format", na(&w.log_format)),
        ("skip ssl verification", bool_or_na(w.skip_ssl_verification)),
        ("destination id", na(&w.audit_log_destination_id)),
        ("updated at", na(&w.updated_at)),
    ];
    status_lines(
        "Konnect regional audit-log webhook\n",
        lines,
        w.status.as_ref(),
    )
}

/// `-o text` of a Dev Portal's webhook.
pub fn portal_webhook_text(w: &PortalWebhookView) -> String {
    let lines = vec![
        ("portal", format!("{} ({})", w.portal_name, w.portal_id)),
        ("enabled", bool_or_na(w.enabled)),
        ("destination id", na(&w.audit_log_destination_id)),
    ];
    status_lines(
        "Konnect Dev Portal audit-log webhook\n",
        lines,
        w.status.as_ref(),
    )
}

/// `title`, `lines`, then the delivery status's fields, one per line.
fn status_lines(title: &str, mut lines: Vec<(&str, String)>, status: Option<&Value>) -> String {
    let mut out = String::from(title);
    let field = |key: &str| {
        status
            .map(|s| scalar(s.get(key)))
            .unwrap_or_else(|| "n/a".into())
    };
    lines.push(("delivery status", field("webhook_status")));
    lines.push(("last attempt at", field("last_attempt_at")));
    lines.push(("last response code", field("last_response_code")));
    lines.push(("last response message", field("last_response_message")));
    for (key, value) in lines {
        out.push_str(&format!("  {key}: {value}\n"));
    }
    out
}

/// `-o text` of the replay job (Konnect's `AuditLogReplayJob`), of the
/// region or of the Dev Portal `portal` (`name (id)`).
pub fn replay_job_text(job: Option<&Value>, portal: Option<&str>) -> String {
    let mut out = match portal {
        None => String::from("Konnect regional audit-log replay job\n"),
        Some(p) => format!("Konnect Dev Portal audit-log replay job\n  portal: {p}\n"),
    };
    let field = |key: &str| {
        job.map(|j| scalar(j.get(key)))
            .unwrap_or_else(|| "n/a".into())
    };
    for (key, label) in [
        ("status", "status"),
        ("start_at", "start at"),
        ("end_at", "end at"),
        ("updated_at", "updated at"),
    ] {
        out.push_str(&format!("  {label}: {}\n", field(key)));
    }
    out
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The first non-empty string under any of `keys`, searched depth-first
/// (a wrapped payload reads the same, as upstream reads it).
fn first_text(v: &Value, keys: &[&str]) -> String {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if keys.contains(&k.as_str())
                    && let Some(s) = child.as_str().map(str::trim).filter(|s| !s.is_empty())
                {
                    return s.to_string();
                }
            }
            map.values()
                .map(|child| first_text(child, keys))
                .find(|s| !s.is_empty())
                .unwrap_or_default()
        }
        Value::Array(items) => items
            .iter()
            .map(|child| first_text(child, keys))
            .find(|s| !s.is_empty())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn first_bool(v: &Value, key: &str) -> Option<bool> {
    match v {
        Value::Object(map) => map
            .get(key)
            .and_then(Value::as_bool)
            .or_else(|| map.values().find_map(|child| first_bool(child, key))),
        Value::Array(items) => items.iter().find_map(|child| first_bool(child, key)),
        _ => None,
    }
}

fn na(s: &str) -> String {
    if s.trim().is_empty() || s == ZERO_TIME {
        "n/a".into()
    } else {
        s.trim().to_string()
    }
}

fn bool_or_na(b: Option<bool>) -> String {
    b.map_or_else(|| "n/a".into(), |b| b.to_string())
}

/// A scalar as text (`n/a` when missing, empty or Konnect's zero time).
fn scalar(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "n/a".into(),
        Some(Value::String(s)) => na(s),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn destinations_are_sorted_and_printed_as_upstream() {
        let items = vec![
            json!({"id": "2", "name": "beta", "endpoint": "https://b", "log_format": "json", "skip_ssl_verification": false}),
            json!({"id": "1", "name": "Alpha", "endpoint": "https://a"}),
            json!({"id": "3", "name": "no endpoint"}),
        ];
        let views = destinations(&items);
        assert_eq!(views.len(), 2);
        assert_eq!(
            destinations_text(&views),
            "Konnect audit-log destinations (2)\n\nDestination 1\n  id: 1\n  name: Alpha\n  endpoint: https://a\n  log format: n/a\n  skip ssl verification: n/a\n  created at: n/a\n  updated at: n/a\n\nDestination 2\n  id: 2\n  name: beta\n  endpoint: https://b\n  log format: json\n  skip ssl verification: false\n  created at: n/a\n  updated at: n/a\n"
        );
        assert_eq!(
            destinations_text(&[]),
            "No Konnect audit-log destinations found.\n"
        );
        assert_eq!(
            document(&views[0], OutputFormat::Json),
            "{\n  \"id\": \"1\",\n  \"name\": \"Alpha\",\n  \"endpoint\": \"https://a\"\n}\n"
        );
    }

    #[test]
    fn a_destination_is_found_by_exact_id_or_name() {
        let views = || {
            destinations(&[
                json!({"id": "d1", "name": "one", "endpoint": "https://x"}),
                json!({"id": "d2", "name": "two", "endpoint": "https://x"}),
                json!({"id": "d3", "name": "two", "endpoint": "https://y"}),
            ])
        };
        assert_eq!(find_destination(views(), "d1").unwrap().name, "one");
        assert_eq!(find_destination(views(), "one").unwrap().id, "d1");
        assert_eq!(
            find_destination(views(), "nope").unwrap_err(),
            "audit-log destination \"nope\" not found"
        );
        assert_eq!(
            find_destination(views(), "two").unwrap_err(),
            "multiple audit-log destinations matched \"two\"; use destination id instead"
        );
    }

    #[test]
    fn webhook_and_replay_job_texts() {
        let v2 = json!({"endpoint": "unconfigured", "enabled": false, "log_format": "cef",
                        "skip_ssl_verification": false, "updated_at": ZERO_TIME});
        let view = WebhookView::new(
            &v2,
            None,
            Some(json!({"webhook_status": "inactive", "webhook_enabled": false})),
        );
        assert_eq!(
            webhook_text(&view),
            "Konnect regional audit-log webhook\n  enabled: false\n  endpoint: unconfigured\n  log format: cef\n  skip ssl verification: false\n  destination id: n/a\n  updated at: n/a\n  delivery status: inactive\n  last attempt at: n/a\n  last response code: n/a\n  last response message: n/a\n"
        );
        let v3 = json!({"audit_log_destination_id": "d1", "enabled": true});
        assert_eq!(
            WebhookView::new(&v2, Some(&v3), None).audit_log_destination_id,
            "d1"
        );
        assert_eq!(
            replay_job_text(
                Some(
                    &json!({"start_at": ZERO_TIME, "end_at": ZERO_TIME, "status": "unconfigured", "updated_at": ZERO_TIME})
                ),
                None
            ),
            "Konnect regional audit-log replay job\n  status: unconfigured\n  start at: n/a\n  end at: n/a\n  updated at: n/a\n"
        );
        assert_eq!(
            replay_job_text(Some(&json!({"status": "running"})), Some("dev (p1)")),
            "Konnect Dev Portal audit-log replay job\n  portal: dev (p1)\n  status: running\n  start at: n/a\n  end at: n/a\n  updated at: n/a\n"
        );
    }

    #[test]
    fn a_portals_webhook_names_the_portal() {
        let portal = crate::konnect::Portal {
            id: "p1".into(),
            name: "dev".into(),
            display_name: None,
        };
        let view = PortalWebhookView::new(
            &portal,
            Some(&json!({"enabled": true, "audit_log_destination_id": "d1"})),
            Some(json!({"webhook_status": "active", "webhook_enabled": true,
                        "last_attempt_at": "2026-08-23T12:00:00Z", "last_response_code": 200})),
        );
        assert_eq!(
            portal_webhook_text(&view),
            "Konnect Dev Portal audit-log webhook\n  portal: dev (p1)\n  enabled: true\n  destination id: d1\n  delivery status: active\n  last attempt at: 2026-08-23T12:00:00Z\n  last response code: 200\n  last response message: n/a\n"
        );
        let unconfigured = PortalWebhookView::new(&portal, Some(&json!({})), None);
        assert_eq!(
            serde_json::to_value(&unconfigured).unwrap(),
            json!({"portal_id": "p1", "portal_name": "dev"})
        );
    }
}
