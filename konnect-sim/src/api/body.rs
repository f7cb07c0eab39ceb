//! Request bodies: parsing the JSON object and checking its fields the way
//! Konnect reports them (every invalid field in `invalid_parameters`, with
//! the rule or reason the specs' examples use).

use serde_json::{Map, Value};
use url::Url;
use uuid::Uuid;

use super::{ApiResponse, bad_request};
use crate::problem::InvalidParameter;
use crate::records::LogFormat;
use crate::state::State;

/// Parses a request body that must be a JSON object.
pub(super) fn parse_object(
    state: &mut State,
    body: &[u8],
) -> Result<Map<String, Value>, ApiResponse> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(bad_request(
            state,
            "Could not parse request body",
            vec![InvalidParameter::new(
                "body",
                "body",
                None,
                "request format is invalid",
            )],
        )),
    }
}

/// Field-by-field checks of a JSON body, collecting every problem.
pub(super) struct BodyCheck<'a> {
    body: &'a Map<String, Value>,
    /// Each problem with the `detail` it would give on its own.
    errors: Vec<(InvalidParameter, &'static str)>,
}

impl<'a> BodyCheck<'a> {
    pub fn new(body: &'a Map<String, Value>) -> BodyCheck<'a> {
        BodyCheck {
            body,
            errors: Vec::new(),
        }
    }

    pub fn fail(&mut self, param: InvalidParameter, detail: &'static str) {
        self.errors.push((param, detail));
    }

    /// The field's value; `null` counts as absent.
    pub fn value(&mut self, field: &str, required: bool) -> Option<&'a Value> {
        match self.body.get(field) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(
                        InvalidParameter::new(
                            field,
                            "body",
                            Some("required"),
                            "is a required field",
                        ),
                        "Required field missing",
                    );
                }
                None
            }
            Some(value) => Some(value),
        }
    }

    pub fn string(&mut self, field: &str, required: bool) -> Option<String> {
        match self.value(field, required)? {
            Value::String(text) => Some(text.clone()),
            _ => {
                self.fail(
                    InvalidParameter::new(field, "body", Some("is_string"), "must be a string"),
                    "Invalid request body",
                );
                None
            }
        }
    }

    /// A string that must not be empty or only blanks.
    pub fn non_blank(&mut self, field: &str, required: bool) -> Option<String> {
        let text = self.string(field, required)?;
        if text.trim().is_empty() {
            self.fail(
                InvalidParameter::new(field, "body", None, "cannot be blank"),
                "Required field missing",
            );
            return None;
        }
        Some(text)
    }

    /// An absolute http(s) URL.
    pub fn endpoint(&mut self, required: bool) -> Option<String> {
        let endpoint = self.non_blank("endpoint", required)?;
        let valid = endpoint.trim() == endpoint
            && Url::parse(&endpoint).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some_and(|h| !h.is_empty())
            });
        if !valid {
            self.fail(
                InvalidParameter::new("endpoint", "body", None, "must be a valid URL"),
                "Invalid endpoint",
            );
            return None;
        }
        Some(endpoint)
    }

    /// A value that can be sent as the `Authorization` header of deliveries.
    pub fn authorization(&mut self, required: bool) -> Option<String> {
        let value = self.non_blank("authorization", required)?;
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            self.fail(
                InvalidParameter::new(
                    "authorization",
                    "body",
                    None,
                    "must be a valid HTTP header value",
                ),
                "Invalid request body",
            );
            return None;
        }
        Some(value)
    }

    pub fn boolean(&mut self, field: &str) -> Option<bool> {
        match self.value(field, false)? {
            Value::Bool(flag) => Some(*flag),
            _ => {
                self.fail(
                    InvalidParameter::new(field, "body", Some("is_boolean"), "must be a boolean"),
                    "Invalid request body",
                );
                None
            }
        }
    }

    /// `audit_log_destination_id`: a hyphenated UUID (the webhooks' 400
    /// says `destination id format is invalid` otherwise, `null` included).
    pub fn destination_id(&mut self) -> Option<Uuid> {
        let value = self.body.get("audit_log_destination_id")?;
        let uuid = value.as_str().and_then(super::destinations::parse_uuid);
        if uuid.is_none() {
            self.fail(
                InvalidParameter::new(
                    "audit_log_destination_id",
                    "body",
                    Some("is_uuid"),
                    "destination id format is invalid",
                ),
                "Could not parse destination id",
            );
        }
        uuid
    }

    pub fn log_format(&mut self, required: bool) -> Option<LogFormat> {
        let value = self.value("log_format", required)?;
        match value.as_str().and_then(LogFormat::parse) {
            Some(format) => Some(format),
            None => {
                self.fail(
                    InvalidParameter::choice("log_format", "body", &LogFormat::NAMES),
                    "Invalid request body",
                );
                None
            }
        }
    }

    /// `Ok` if no check failed, otherwise the 400 listing every failure.
    pub fn finish(self, state: &mut State) -> Result<(), ApiResponse> {
        let Some((_, detail)) = self.errors.first() else {
            return Ok(());
        };
        let detail = *detail;
        let params = self.errors.into_iter().map(|(param, _)| param).collect();
        Err(bad_request(state, detail, params))
    }
}
