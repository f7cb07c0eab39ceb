//! Injected faults: make the next N matching API calls fail with a status,
//! wait before being handled, or lose their connection.
//!
//! Faults apply to the Konnect API only, never to the `/_sim/` admin API, and
//! are checked before anything else (before the PAT), like a failing load
//! balancer in front of Konnect.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::snapshot::FaultState;

/// A fault for the next `count` requests that match `method` and `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// `None` matches every method; otherwise compared case-insensitively.
    pub method: Option<String>,
    /// An exact path (`/v2/audit-log-webhook`), or a prefix ending in `*`
    /// (`/v3/audit-log-destinations/*`, `*` for every path). The query string
    /// is not part of the match.
    pub path: String,
    /// How many matching requests get the fault; then it is gone.
    pub count: u32,
    pub action: FaultAction,
}

/// What a fault does to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer `status` with a problem+json body, and a `Retry-After` header
    /// (seconds) if given. `status` must be 100..=599.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Answer `status` with a problem+json body whose `detail` is given,
    /// to imitate a specific Konnect answer (e.g. 409 `Destination is in
    /// use` while Konnect releases a webhook's reference).
    Problem { status: u16, detail: String },
    /// Wait, then handle the request normally.
    Delay(Duration),
    /// Close the connection without answering.
    Drop,
    /// Handle the request normally. Armed before another fault on the same
    /// path, it lets the first `count` matching requests through (e.g. the
    /// first page of a listing) before that fault applies.
    Pass,
}

impl Fault {
    /// A fault answering `status` to the next `count` `method path` calls.
    pub fn status(method: Option<&str>, path: &str, count: u32, status: u16) -> Fault {
        Fault {
            method: method.map(str::to_string),
            path: path.to_string(),
            count,
            action: FaultAction::Status {
                status,
                retry_after: None,
            },
        }
    }

    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        let method_matches = self
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method));
        let path_matches = match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == self.path,
        };
        method_matches && path_matches
    }

    pub(crate) fn describe(&self) -> String {
        self.action.describe()
    }
}

impl FaultAction {
    pub(crate) fn describe(&self) -> String {
        match self {
            FaultAction::Status {
                status,
                retry_after: Some(seconds),
            } => format!("status {status} (Retry-After: {seconds})"),
            FaultAction::Status { status, .. } => format!("status {status}"),
            FaultAction::Problem { status, detail } => format!("status {status} ({detail})"),
            FaultAction::Delay(wait) => format!("delay {}ms", wait.as_millis()),
            FaultAction::Drop => "drop".to_string(),
            FaultAction::Pass => "pass".to_string(),
        }
    }
}

/// An armed fault and how many more requests it applies to.
#[derive(Clone, Debug)]
pub(crate) struct PendingFault {
    pub fault: Fault,
    pub remaining: u32,
}

impl PendingFault {
    pub fn state(&self) -> FaultState {
        FaultState {
            method: self.fault.method.clone(),
            path: self.fault.path.clone(),
            remaining: self.remaining,
            action: self.fault.describe(),
        }
    }
}

/// The JSON form of a fault in the admin API (`POST /_sim/faults`):
/// `{"method"?, "path", "count"? (default 1)}` plus exactly one of
/// `"status"` (with optional `"retry_after"`), `"delay_ms"`, `"drop": true`
/// or `"pass": true`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    #[serde(default)]
    pub method: Option<String>,
    pub path: String,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub retry_after: Option<u64>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub delay_ms: Option<u64>,
    #[serde(default)]
    pub drop: bool,
    #[serde(default)]
    pub pass: bool,
}

fn one() -> u32 {
    1
}

impl TryFrom<FaultSpec> for Fault {
    type Error = String;

    fn try_from(spec: FaultSpec) -> Result<Fault, String> {
        let action = match (spec.status, spec.delay_ms, spec.drop || spec.pass) {
            _ if spec.drop && spec.pass => {
                return Err("\"drop\" and \"pass\" cannot be combined".to_string());
            }
            (Some(status), None, false) => {
                if !(100..=599).contains(&status) {
                    return Err(format!("status {status} is not an HTTP status (100-599)"));
                }
                match spec.detail {
                    Some(detail) if spec.retry_after.is_none() => {
                        FaultAction::Problem { status, detail }
                    }
                    Some(_) => {
                        return Err("\"detail\" and \"retry_after\" cannot be combined".into());
                    }
                    None => FaultAction::Status {
                        status,
                        retry_after: spec.retry_after,
                    },
                }
            }
            _ if spec.detail.is_some() && spec.status.is_none() => {
                return Err("\"detail\" needs a \"status\"".to_string());
            }
            (None, Some(ms), false) if spec.retry_after.is_none() => {
                FaultAction::Delay(Duration::from_millis(ms))
            }
            (None, None, true) if spec.retry_after.is_none() && spec.drop => FaultAction::Drop,
            (None, None, true) if spec.retry_after.is_none() => FaultAction::Pass,
            _ => {
                return Err(
                    "give exactly one of \"status\" (with optional \"retry_after\"), \"delay_ms\", \"drop\": true or \"pass\": true"
                        .to_string(),
                );
            }
        };
        if spec.path.is_empty() {
            return Err("\"path\" must not be empty (use \"*\" for every path)".to_string());
        }
        if spec.count == 0 {
            return Err("\"count\" must be at least 1".to_string());
        }
        Ok(Fault {
            method: spec.method,
            path: spec.path,
            count: spec.count,
            action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_method_and_exact_or_prefix_path() {
        let exact = Fault::status(Some("get"), "/v2/audit-log-webhook", 1, 503);
        assert!(exact.matches("GET", "/v2/audit-log-webhook"));
        assert!(!exact.matches("PATCH", "/v2/audit-log-webhook"));
        assert!(!exact.matches("GET", "/v2/audit-log-webhook/status"));
        let prefix = Fault::status(None, "/v3/audit-log-destinations/*", 1, 500);
        assert!(prefix.matches("DELETE", "/v3/audit-log-destinations/abc"));
        assert!(!prefix.matches("GET", "/v3/audit-log-destinations"));
        assert!(Fault::status(None, "*", 1, 500).matches("PUT", "/anything"));
    }

    #[test]
    fn spec_needs_exactly_one_action() {
        let spec = |json: &str| {
            serde_json::from_str::<FaultSpec>(json)
                .map_err(|e| e.to_string())
                .and_then(Fault::try_from)
        };
        assert_eq!(
            spec(r#"{"path":"/x","status":429,"retry_after":3,"count":2}"#).unwrap(),
            Fault {
                method: None,
                path: "/x".into(),
                count: 2,
                action: FaultAction::Status {
                    status: 429,
                    retry_after: Some(3)
                }
            }
        );
        assert_eq!(
            spec(r#"{"method":"GET","path":"/x","delay_ms":20}"#)
                .unwrap()
                .action,
            FaultAction::Delay(Duration::from_millis(20))
        );
        assert_eq!(
            spec(r#"{"path":"/x","drop":true}"#).unwrap().action,
            FaultAction::Drop
        );
        assert_eq!(
            spec(r#"{"path":"/x","pass":true,"count":3}"#)
                .unwrap()
                .action,
            FaultAction::Pass
        );
        assert!(spec(r#"{"path":"/x","pass":true,"drop":true}"#).is_err());
        assert!(spec(r#"{"path":"/x"}"#).is_err());
        assert!(spec(r#"{"path":"/x","status":500,"drop":true}"#).is_err());
        assert!(spec(r#"{"path":"/x","delay_ms":5,"retry_after":1}"#).is_err());
        assert!(spec(r#"{"path":"/x","status":700}"#).is_err());
        assert!(spec(r#"{"path":"/x","status":500,"count":0}"#).is_err());
        assert!(spec(r#"{"path":"/x","status":500,"colour":"red"}"#).is_err());
    }
}
