//! Konnect's error bodies: `application/problem+json` with `status`, `title`,
//! `type`, `instance` (`kong:trace:<number>`), `detail`, and for 400s
//! `invalid_parameters`.
//!
//! The shapes follow the `BaseError`, `BadRequestError` and `InvalidParameter*`
//! schemas of the audit-log OpenAPI files; `tests/contract.rs` checks them.

use hyper::StatusCode;
use serde::Serialize;

/// One entry of `invalid_parameters`.
///
/// Serialises as `InvalidParameterStandard` (`field`, `reason`, optional
/// `rule` and `source`), or as `InvalidParameterChoiceItem` when `choices`
/// is set (then `rule` is `enum`), or as `InvalidParameterMaximumLength` /
/// `InvalidParameterMinimumLength` when `maximum` / `minimum` is set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct InvalidParameter {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<i64>,
}

impl InvalidParameter {
    /// A standard entry: `{field, reason, rule?, source}`.
    pub fn new(
        field: impl Into<String>,
        source: &'static str,
        rule: Option<&'static str>,
        reason: impl Into<String>,
    ) -> Self {
        InvalidParameter {
            field: field.into(),
            rule,
            source: Some(source),
            reason: reason.into(),
            choices: None,
            minimum: None,
            maximum: None,
        }
    }

    /// A value outside a closed set: `{field, rule: "enum", choices, reason}`.
    pub fn choice(
        field: impl Into<String>,
        source: &'static str,
        choices: &[&'static str],
    ) -> Self {
        InvalidParameter {
            rule: Some("enum"),
            reason: format!("must be one of: {}", choices.join(", ")),
            choices: Some(choices.to_vec()),
            ..InvalidParameter::new(field, source, None, "")
        }
    }

    /// A number below `minimum`: `{field, rule: "min", minimum, reason}`.
    pub fn min(field: impl Into<String>, source: &'static str, minimum: i64) -> Self {
        InvalidParameter {
            rule: Some("min"),
            reason: format!("must be at least {minimum}"),
            minimum: Some(minimum),
            ..InvalidParameter::new(field, source, None, "")
        }
    }

    /// A number above `maximum`: `{field, rule: "max", maximum, reason}`.
    pub fn max(field: impl Into<String>, source: &'static str, maximum: i64) -> Self {
        InvalidParameter {
            rule: Some("max"),
            reason: format!("must not be more than {maximum}"),
            maximum: Some(maximum),
            ..InvalidParameter::new(field, source, None, "")
        }
    }
}

/// A problem+json body.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Problem {
    pub status: u16,
    pub title: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub instance: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_parameters: Vec<InvalidParameter>,
}

impl Problem {
    /// A problem with the standard title of `status`. `trace` is the number
    /// shown in `instance` (`kong:trace:<trace>`).
    pub fn new(status: u16, trace: u64, detail: impl Into<String>) -> Self {
        let title = StatusCode::from_u16(status)
            .ok()
            .and_then(|code| code.canonical_reason())
            .unwrap_or("Error");
        Problem {
            status,
            title: title.to_string(),
            kind: format!("https://httpstatuses.com/{status}"),
            instance: format!("kong:trace:{trace}"),
            detail: detail.into(),
            invalid_parameters: Vec::new(),
        }
    }

    /// A 400 with its `invalid_parameters` (duplicates dropped: the schema
    /// says the list has unique items).
    pub fn bad_request(
        trace: u64,
        detail: impl Into<String>,
        params: Vec<InvalidParameter>,
    ) -> Self {
        let mut unique: Vec<InvalidParameter> = Vec::with_capacity(params.len());
        for param in params {
            if !unique.contains(&param) {
                unique.push(param);
            }
        }
        Problem {
            invalid_parameters: unique,
            ..Problem::new(400, trace, detail)
        }
    }

    /// Replaces the standard title (Konnect uses e.g. "Resource Conflict").
    pub fn titled(mut self, title: &str) -> Self {
        self.title = title.to_string();
        self
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a problem always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn problem_has_the_base_error_fields() {
        let body: serde_json::Value =
            serde_json::from_slice(&Problem::new(404, 42, "Not found").to_json()).unwrap();
        assert_eq!(
            body,
            json!({"status": 404, "title": "Not Found", "type": "https://httpstatuses.com/404",
                   "instance": "kong:trace:42", "detail": "Not found"})
        );
    }

    #[test]
    fn bad_request_lists_unique_parameters() {
        let name = InvalidParameter::new("name", "body", Some("required"), "is a required field");
        let problem = Problem::bad_request(
            7,
            "Required field missing",
            vec![
                name.clone(),
                name,
                InvalidParameter::choice("log_format", "body", &["cef", "json"]),
            ],
        );
        let body: serde_json::Value = serde_json::from_slice(&problem.to_json()).unwrap();
        assert_eq!(
            body["invalid_parameters"],
            json!([
                {"field": "name", "rule": "required", "source": "body", "reason": "is a required field"},
                {"field": "log_format", "rule": "enum", "source": "body",
                 "reason": "must be one of: cef, json", "choices": ["cef", "json"]}
            ])
        );
    }
}
