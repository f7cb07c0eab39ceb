//! The OpenAPI contract: the four specs the emulator serves (audit logs v2
//! and v3, the Dev Portal audit-log subset, the identity subset), compiled
//! into the crate, and the checks made against them.
//!
//! - [`Contract::check_request`] judges a request a client sent: the
//!   operation exists, path parameters, query parameters (declared names,
//!   integer and boolean values, `deepObject` filters validated against
//!   their schema) and the JSON body against the request schema. The server
//!   runs it on every API call and keeps what fails as contract violations
//!   ([`crate::Sim::contract_violations`]); it only records, the handlers
//!   decide what to reject.
//! - [`Contract::check_response`] judges an answer: the status is listed for
//!   the operation, the content type is the listed one, the body validates.
//!   The emulator's own tests run it on every answer; a client's tests can
//!   too.
//!
//! OpenAPI 3.0 schemas are read as JSON Schema 2020-12 after turning
//! `nullable: true` into a `null` type; `$ref`s resolve within each spec.
//! One strictness goes beyond OpenAPI: a request body property that the
//! request schema does not name is a violation (the specs do not forbid
//! them, but Konnect ignores or rejects them, so a client that sends one
//! has a bug).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde_json::{Map, Value};

/// One response the specs describe: `(spec, path template, METHOD, status)`,
/// e.g. `("portal-audit-logs/v3", "/portals/{portalId}", "GET", 404)`.
pub type Operation = (String, String, String, u16);

/// The specs, by name, with the path prefix their `servers` put before
/// every path.
const SPECS: [(&str, &str, &str); 4] = [
    (
        "audit-logs/v2",
        "/v2",
        include_str!("../specs/developer.konghq.com/audit-logs/v2/openapi.yaml"),
    ),
    (
        "audit-logs/v3",
        "/v3",
        include_str!("../specs/developer.konghq.com/audit-logs/v3/openapi.yaml"),
    ),
    (
        "portal-audit-logs/v3",
        "/v3",
        include_str!("../specs/developer.konghq.com/portal-audit-logs/v3/openapi.yaml"),
    ),
    (
        "identity/v3",
        "/v3",
        include_str!("../specs/developer.konghq.com/identity/v3/openapi.yaml"),
    ),
];

/// Where a request lands in the specs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    /// The spec's name, e.g. `identity/v3`.
    pub spec: &'static str,
    /// The full path template, prefix included: `/v3/users/{userId}`.
    pub route: String,
    /// The operation's `operationId`, e.g. `get-user`; `None` when the
    /// path exists but not with this method.
    pub operation_id: Option<String>,
}

/// What [`Contract::check_request`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestCheck {
    /// The operation the request names, if the path is in a spec.
    pub route: Option<RouteMatch>,
    /// Every way the request breaks the contract; empty if it keeps it.
    pub violations: Vec<String>,
}

struct Spec {
    name: &'static str,
    prefix: &'static str,
    doc: Value,
}

/// The compiled specs, with validators cached per schema location.
pub struct Contract {
    specs: Vec<Spec>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl Contract {
    /// The contract, loaded once per process.
    pub fn global() -> &'static Contract {
        static CONTRACT: OnceLock<Contract> = OnceLock::new();
        CONTRACT.get_or_init(Contract::load)
    }

    fn load() -> Contract {
        let specs = SPECS
            .iter()
            .map(|(name, prefix, text)| {
                let yaml: serde_yaml_ng::Value =
                    serde_yaml_ng::from_str(text).expect("the compiled-in specs are YAML");
                let mut doc = serde_json::to_value(yaml).expect("the specs convert to JSON");
                openapi_nullable_to_json_schema(&mut doc);
                Spec { name, prefix, doc }
            })
            .collect();
        Contract {
            specs,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// The names of the specs: `audit-logs/v2`, `audit-logs/v3`,
    /// `portal-audit-logs/v3`, `identity/v3`.
    pub fn spec_names(&self) -> Vec<&'static str> {
        self.specs.iter().map(|s| s.name).collect()
    }

    /// Every `(spec, template, METHOD, status)` the spec named `spec` lists.
    ///
    /// # Panics
    /// If there is no such spec.
    pub fn operations(&self, spec: &str) -> BTreeSet<Operation> {
        let spec = self
            .specs
            .iter()
            .find(|s| s.name == spec)
            .unwrap_or_else(|| panic!("no spec named {spec:?}"));
        let mut all = BTreeSet::new();
        for (template, item) in spec.doc["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let Some(responses) = operation.get("responses").and_then(Value::as_object) else {
                    continue;
                };
                for status in responses.keys() {
                    all.insert((
                        spec.name.to_string(),
                        template.clone(),
                        method.to_uppercase(),
                        status.parse().expect("numeric status"),
                    ));
                }
            }
        }
        all
    }

    /// The spec and path template of a concrete path (`/v3/portals/…`):
    /// the template with the most literal segments that matches.
    fn find(&self, path: &str) -> Option<(&Spec, &str)> {
        let mut best: Option<(&Spec, &str, usize)> = None;
        for spec in &self.specs {
            let Some(rest) = path.strip_prefix(spec.prefix) else {
                continue;
            };
            if !rest.starts_with('/') {
                continue;
            }
            let segments: Vec<&str> = rest.split('/').collect();
            for template in spec.doc["paths"]
                .as_object()
                .into_iter()
                .flat_map(|paths| paths.keys())
            {
                let parts: Vec<&str> = template.split('/').collect();
                if parts.len() != segments.len() {
                    continue;
                }
                let mut literal = 0;
                let matches = parts.iter().zip(&segments).all(|(part, segment)| {
                    if is_parameter(part) {
                        !segment.is_empty()
                    } else {
                        literal += 1;
                        part == segment
                    }
                });
                if matches && best.is_none_or(|(_, _, score)| literal > score) {
                    best = Some((spec, template.as_str(), literal));
                }
            }
        }
        best.map(|(spec, template, _)| (spec, template))
    }

    /// The operation `method path` names, if its path is in a spec.
    pub fn route(&self, method: &str, path: &str) -> Option<RouteMatch> {
        let (spec, template) = self.find(path)?;
        let operation_id = spec.doc["paths"][template]
            .get(method.to_lowercase())
            .and_then(|op| op.get("operationId"))
            .and_then(Value::as_str)
            .map(str::to_string);
        Some(RouteMatch {
            spec: spec.name,
            route: format!("{}{template}", spec.prefix),
            operation_id,
        })
    }

    /// Checks a request against the spec of its path: the operation exists;
    /// every path and query parameter is declared and has a value of its
    /// schema (`deepObject` parameters such as `filter[name][eq]=x` are
    /// validated as the object they spell); the body, if the operation
    /// takes one, is JSON of the request schema with no property the schema
    /// does not name, and there is no body otherwise. `query` is the raw
    /// query string (percent-encoded).
    pub fn check_request(
        &self,
        method: &str,
        path: &str,
        query: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> RequestCheck {
        let Some((spec, template)) = self.find(path) else {
            return RequestCheck {
                route: None,
                violations: vec![format!("no spec has a path matching {path}")],
            };
        };
        let route = self.route(method, path);
        let item = &spec.doc["paths"][template];
        let Some(operation) = item.get(method.to_lowercase()) else {
            return RequestCheck {
                route,
                violations: vec![format!(
                    "the {} spec has no {} {}{template}",
                    spec.name,
                    method.to_uppercase(),
                    spec.prefix
                )],
            };
        };
        let mut violations = Vec::new();
        let parameters = self.parameters(spec, item, operation);
        self.check_path_parameters(spec, template, path, &parameters, &mut violations);
        self.check_query(spec, query, &parameters, &mut violations);
        self.check_body(spec, operation, content_type, body, &mut violations);
        RequestCheck { route, violations }
    }

    /// The path-level and operation-level parameters, `$ref`s resolved, as
    /// `(name, in, the parameter's JSON pointer)`.
    fn parameters<'a>(
        &self,
        spec: &'a Spec,
        item: &'a Value,
        operation: &'a Value,
    ) -> Vec<(String, String, &'a Value)> {
        let mut all = Vec::new();
        for list in [item.get("parameters"), operation.get("parameters")]
            .into_iter()
            .flatten()
        {
            for parameter in list.as_array().into_iter().flatten() {
                let parameter = match parameter.get("$ref").and_then(Value::as_str) {
                    Some(reference) => match resolve(&spec.doc, reference) {
                        Some(resolved) => resolved,
                        None => continue,
                    },
                    None => parameter,
                };
                let name = parameter["name"].as_str().unwrap_or_default().to_string();
                let place = parameter["in"].as_str().unwrap_or_default().to_string();
                all.push((name, place, parameter));
            }
        }
        all
    }

    fn check_path_parameters(
        &self,
        spec: &Spec,
        template: &str,
        path: &str,
        parameters: &[(String, String, &Value)],
        violations: &mut Vec<String>,
    ) {
        let rest = &path[spec.prefix.len()..];
        for (part, segment) in template.split('/').zip(rest.split('/')) {
            if !is_parameter(part) {
                continue;
            }
            let name = &part[1..part.len() - 1];
            let value = percent_decode(segment);
            let Some((_, _, parameter)) = parameters
                .iter()
                .find(|(n, place, _)| n == name && place == "path")
            else {
                violations.push(format!("path parameter {name} is not declared in the spec"));
                continue;
            };
            if let Err(problem) = self.validate_scalar(spec, &parameter["schema"], &value) {
                violations.push(format!("path parameter {name}={value:?}: {problem}"));
            }
        }
    }

    fn check_query(
        &self,
        spec: &Spec,
        query: &str,
        parameters: &[(String, String, &Value)],
        violations: &mut Vec<String>,
    ) {
        let query_parameters: Vec<&(String, String, &Value)> = parameters
            .iter()
            .filter(|(_, place, _)| place == "query")
            .collect();
        let mut deep: BTreeMap<&str, Value> = BTreeMap::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if !seen.insert(key.to_string()) {
                violations.push(format!("query parameter {key} is given more than once"));
                continue;
            }
            if let Some((name, _, parameter)) = query_parameters.iter().find(|(n, ..)| *n == key) {
                let empty_ok = parameter.get("allowEmptyValue") == Some(&Value::Bool(true));
                if value.is_empty() && empty_ok {
                    continue;
                }
                if parameter.get("style").and_then(Value::as_str) == Some("deepObject") {
                    violations.push(format!(
                        "query parameter {name} is a deepObject: give its fields as {name}[field]=…"
                    ));
                    continue;
                }
                if let Err(problem) = self.validate_scalar(spec, &parameter["schema"], &value) {
                    violations.push(format!("query parameter {key}={value:?}: {problem}"));
                }
                continue;
            }
            // A deepObject field: `name[a][b]=value`.
            let deep_parameter = query_parameters.iter().find(|(n, _, p)| {
                p.get("style").and_then(Value::as_str) == Some("deepObject")
                    && key.starts_with(&format!("{n}["))
            });
            let Some((name, ..)) = deep_parameter else {
                violations.push(format!(
                    "query parameter {key} is not declared in the spec (declared: {})",
                    query_parameters
                        .iter()
                        .map(|(n, ..)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                continue;
            };
            let Some(segments) = bracket_segments(&key[name.len()..]) else {
                violations.push(format!("query parameter {key} is not name[field]… form"));
                continue;
            };
            let root = deep
                .entry(name.as_str())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Err(problem) = insert_path(root, &segments, Value::String(value.into_owned())) {
                violations.push(format!("query parameter {key}: {problem}"));
            }
        }
        for (name, place, parameter) in parameters {
            if place == "query"
                && parameter.get("required") == Some(&Value::Bool(true))
                && !seen
                    .iter()
                    .any(|k| k == name || k.starts_with(&format!("{name}[")))
            {
                violations.push(format!("required query parameter {name} is missing"));
            }
        }
        for (name, mut object) in deep {
            let (_, _, parameter) = query_parameters
                .iter()
                .find(|(n, ..)| n == name)
                .expect("deep holds declared parameters only");
            let pointer = self.pointer_of(spec, &parameter["schema"]);
            let Some(pointer) = pointer else {
                continue;
            };
            let validator = self.validator(spec, &pointer);
            let mut problems = validate_coercing(&validator, &mut object);
            problems.extend(self.unknown_properties(spec, &pointer, &object));
            for problem in problems {
                violations.push(format!("query parameter {name}: {problem}"));
            }
        }
    }

    fn check_body(
        &self,
        spec: &Spec,
        operation: &Value,
        content_type: Option<&str>,
        body: &[u8],
        violations: &mut Vec<String>,
    ) {
        let Some(request_body) = operation.get("requestBody") else {
            if !body.is_empty() {
                violations.push(format!(
                    "the operation takes no request body, got {} bytes",
                    body.len()
                ));
            }
            return;
        };
        let (request_body, base) = match request_body.get("$ref").and_then(Value::as_str) {
            Some(reference) => match resolve(&spec.doc, reference) {
                Some(resolved) => (resolved, reference.to_string()),
                None => return,
            },
            None => (request_body, String::new()),
        };
        if body.is_empty() {
            if request_body.get("required") == Some(&Value::Bool(true)) {
                violations.push("the request body is required".to_string());
            }
            return;
        }
        let Some(content) = request_body.get("content").and_then(Value::as_object) else {
            return;
        };
        let media = content_type
            .map(|ct| {
                ct.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        if !content.contains_key(&media) {
            violations.push(format!(
                "Content-Type {:?} is not one the spec lists ({})",
                content_type.unwrap_or(""),
                content.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
            return;
        }
        let instance: Value = match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(e) => {
                violations.push(format!("the body is not JSON: {e}"));
                return;
            }
        };
        // A body described inline in the operation has no pointer of its
        // own; fall back to the schema's own `$ref`.
        let schema_pointer = if base.is_empty() {
            self.pointer_of(spec, &content[&media]["schema"])
        } else {
            Some(format!("{base}/content/{}/schema", escape_pointer(&media)))
        };
        let Some(schema_pointer) = schema_pointer else {
            return;
        };
        let validator = self.validator(spec, &schema_pointer);
        for error in validator.iter_errors(&instance) {
            let at = error.instance_path().as_str();
            violations.push(if at.is_empty() {
                format!("body: {error}")
            } else {
                format!("body: {error} at {at}")
            });
        }
        for problem in self.unknown_properties(spec, &schema_pointer, &instance) {
            violations.push(format!("body: {problem}"));
        }
    }

    /// The top-level properties of `instance` that the object schema at
    /// `pointer` does not name, when the schema leaves
    /// `additionalProperties` unsaid (where it says `false`, the validator
    /// reports them already).
    fn unknown_properties(&self, spec: &Spec, pointer: &str, instance: &Value) -> Vec<String> {
        let Some(schema) = resolve(&spec.doc, pointer).map(|s| self.deref(spec, s)) else {
            return Vec::new();
        };
        let (Some(object), Some(properties)) = (
            instance.as_object(),
            schema.get("properties").and_then(Value::as_object),
        ) else {
            return Vec::new();
        };
        if schema.get("additionalProperties").is_some() {
            return Vec::new();
        }
        object
            .keys()
            .filter(|k| !properties.contains_key(*k))
            .map(|key| {
                format!(
                    "property {key:?} is not in the schema (it names {})",
                    properties.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })
            .collect()
    }

    /// Follows a schema's `$ref` chain.
    fn deref<'a>(&self, spec: &'a Spec, mut schema: &'a Value) -> &'a Value {
        for _ in 0..16 {
            match schema.get("$ref").and_then(Value::as_str) {
                Some(reference) => match resolve(&spec.doc, reference) {
                    Some(next) => schema = next,
                    None => break,
                },
                None => break,
            }
        }
        schema
    }

    /// A JSON pointer to `schema` if it is a `$ref` (validators are built
    /// from pointers into the document).
    fn pointer_of(&self, spec: &Spec, schema: &Value) -> Option<String> {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            return Some(reference.to_string());
        }
        // An inline schema: find where it sits in the document.
        find_pointer(&spec.doc, schema, String::from("#"))
    }

    /// A path or query value against a scalar schema: integers and
    /// booleans are read from the text first.
    fn validate_scalar(&self, spec: &Spec, schema: &Value, text: &str) -> Result<(), String> {
        let schema = self.deref(spec, schema);
        let value = match schema.get("type").and_then(Value::as_str) {
            Some("integer") => match text.trim().parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => return Err("must be an integer".to_string()),
            },
            Some("number") => match text.trim().parse::<f64>() {
                Ok(n) => Value::from(n),
                Err(_) => return Err("must be a number".to_string()),
            },
            Some("boolean") => match text {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err("must be true or false".to_string()),
            },
            _ => Value::String(text.to_string()),
        };
        let Some(pointer) = self.pointer_of(spec, schema) else {
            return Ok(());
        };
        let validator = self.validator(spec, &pointer);
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Checks one answer of `method path` against the spec: the status must
    /// be listed for the operation, the content type must be the listed one
    /// and the body must validate against its schema (or be empty when the
    /// spec lists no content). Returns the operation covered.
    pub fn check_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Operation, String> {
        let path = path.split('?').next().unwrap_or(path);
        let (spec, template) = self
            .find(path)
            .ok_or_else(|| format!("no spec has a path matching {path}"))?;
        let name = spec.name;
        let operation = spec.doc["paths"][template]
            .get(method.to_lowercase())
            .ok_or_else(|| format!("the {name} spec has no {method} {template}"))?;
        let mut response = operation["responses"]
            .get(status.to_string())
            .ok_or_else(|| format!("the {name} spec lists no {status} for {method} {template}"))?;
        let mut pointer = format!(
            "#/paths/{}/{}/responses/{status}",
            escape_pointer(template),
            method.to_lowercase()
        );
        if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
            pointer = reference.to_string();
            response = resolve(&spec.doc, reference)
                .ok_or_else(|| format!("dangling $ref {reference}"))?;
        }
        let covered = (
            name.to_string(),
            template.to_string(),
            method.to_uppercase(),
            status,
        );
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            if !body.is_empty() {
                return Err(format!(
                    "{status} has no content in the spec, got {} bytes",
                    body.len()
                ));
            }
            return Ok(covered);
        };
        let media = content_type
            .map(|ct| ct.split(';').next().unwrap_or("").trim().to_string())
            .ok_or_else(|| {
                format!(
                    "{status} needs a Content-Type ({:?})",
                    content.keys().collect::<Vec<_>>()
                )
            })?;
        if !content.contains_key(&media) {
            return Err(format!(
                "{status} of {method} {template} has content type {media}, the spec lists {:?}",
                content.keys().collect::<Vec<_>>()
            ));
        }
        let schema_pointer = format!("{pointer}/content/{}/schema", escape_pointer(&media));
        let instance: Value = serde_json::from_slice(body)
            .map_err(|e| format!("body is not JSON ({e}): {}", String::from_utf8_lossy(body)))?;
        let validator = self.validator(spec, &schema_pointer);
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if !errors.is_empty() {
            return Err(format!(
                "{method} {path} {status}: body does not match {name} {schema_pointer}:\n  {}\nbody: {instance}",
                errors.join("\n  ")
            ));
        }
        Ok(covered)
    }

    /// Validates a body against a named schema of `components/schemas` of
    /// the spec named `spec`, for answers outside the specs' operations
    /// (unknown paths, faults).
    ///
    /// # Panics
    /// If there is no such spec.
    pub fn check_component(&self, spec: &str, schema: &str, body: &[u8]) -> Result<(), String> {
        let spec = self
            .specs
            .iter()
            .find(|s| s.name == spec)
            .unwrap_or_else(|| panic!("no spec named {spec:?}"));
        let instance: Value =
            serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
        let validator = self.validator(spec, &format!("#/components/schemas/{schema}"));
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{schema}: {}; body: {instance}", errors.join("; ")))
        }
    }

    /// A validator for the schema at `pointer`, with every `$ref` resolved
    /// against the whole document: the document itself is the root schema,
    /// with a `$ref` to the wanted location added.
    fn validator(&self, spec: &Spec, pointer: &str) -> Arc<jsonschema::Validator> {
        let key = format!("{}{pointer}", spec.name);
        let cached = self
            .validators
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(validator) = cached {
            return validator;
        }
        let mut root = spec.doc.clone();
        // A URI fragment: path templates' braces must be percent-encoded.
        root["$ref"] = Value::String(pointer.replace('{', "%7B").replace('}', "%7D"));
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("compile the schema at {} {pointer}: {e}", spec.name));
        let validator = Arc::new(validator);
        self.validators
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, validator.clone());
        validator
    }
}

/// Validates a `deepObject` parameter, whose leaves arrive as text: a leaf
/// the schema wants as a boolean or a number is converted (`true`, `42`)
/// and the object checked again. Returns the remaining problems.
fn validate_coercing(validator: &jsonschema::Validator, object: &mut Value) -> Vec<String> {
    for _ in 0..32 {
        let mut changed = false;
        let type_errors: Vec<String> = validator
            .iter_errors(object)
            .filter(|e| {
                matches!(
                    e.kind(),
                    jsonschema::error::ValidationErrorKind::Type { .. }
                )
            })
            .map(|e| e.instance_path().as_str().to_string())
            .collect();
        for pointer in type_errors {
            if let Some(leaf) = object.pointer_mut(&pointer)
                && let Value::String(text) = leaf
            {
                let coerced = match text.as_str() {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    other => other.parse::<i64>().ok().map(Value::from),
                };
                if let Some(value) = coerced {
                    *leaf = value;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    validator
        .iter_errors(object)
        .map(|e| {
            let at = e.instance_path().as_str().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{e} at {at}")
            }
        })
        .collect()
}

/// `[a][b]` → `["a", "b"]`; `None` unless the text is only bracketed parts.
fn bracket_segments(text: &str) -> Option<Vec<String>> {
    let mut segments = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        segments.push(inner[..end].to_string());
        rest = &inner[end + 1..];
    }
    (!segments.is_empty()).then_some(segments)
}

/// Sets `root[a][b]… = value`, creating objects on the way; an error if a
/// field is given both as a value and as an object.
fn insert_path(root: &mut Value, segments: &[String], value: Value) -> Result<(), String> {
    let (last, parents) = segments.split_last().expect("at least one segment");
    let mut node = root;
    for segment in parents {
        let object = node
            .as_object_mut()
            .ok_or("a field is given both as a value and as an object")?;
        node = object
            .entry(segment.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let object = node
        .as_object_mut()
        .ok_or("a field is given both as a value and as an object")?;
    if object.contains_key(last) {
        return Err("a field is given twice".to_string());
    }
    object.insert(last.clone(), value);
    Ok(())
}

fn is_parameter(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

fn percent_decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Where `target` (compared by address) sits under `value`.
fn find_pointer(value: &Value, target: &Value, at: String) -> Option<String> {
    if std::ptr::eq(value, target) {
        return Some(at);
    }
    match value {
        Value::Object(object) => object
            .iter()
            .find_map(|(k, v)| find_pointer(v, target, format!("{at}/{}", escape_pointer(k)))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_pointer(v, target, format!("{at}/{i}"))),
        _ => None,
    }
}

/// OpenAPI 3.0's `nullable: true` is `type: [T, "null"]` (and `null` in an
/// `enum`) in JSON Schema.
fn openapi_nullable_to_json_schema(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(kind)) = object.get("type").cloned() {
                    object.insert("type".into(), serde_json::json!([kind, "null"]));
                }
                if let Some(Value::Array(choices)) = object.get_mut("enum")
                    && !choices.contains(&Value::Null)
                {
                    choices.push(Value::Null);
                }
            }
            object
                .values_mut()
                .for_each(openapi_nullable_to_json_schema);
        }
        Value::Array(items) => items.iter_mut().for_each(openapi_nullable_to_json_schema),
        _ => {}
    }
}

fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: &str, path: &str, query: &str, body: &str) -> Vec<String> {
        let ct = (!body.is_empty()).then_some("application/json");
        Contract::global()
            .check_request(method, path, query, ct, body.as_bytes())
            .violations
    }

    const PORTAL: &str = "/v3/portals/3e551b39-227d-4297-b911-e68fd5d77c17";

    #[test]
    fn routes_name_the_spec_and_operation() {
        let route = Contract::global()
            .route("GET", "/v3/users/7f9fd312-a987-4628-b4c5-bb4f4fddd5f7")
            .unwrap();
        assert_eq!(route.spec, "identity/v3");
        assert_eq!(route.route, "/v3/users/{userId}");
        assert_eq!(route.operation_id.as_deref(), Some("get-user"));
        let route = Contract::global()
            .route("PATCH", &format!("{PORTAL}/audit-log-webhook"))
            .unwrap();
        assert_eq!(route.route, "/v3/portals/{portalId}/audit-log-webhook");
        assert_eq!(
            route.operation_id.as_deref(),
            Some("update-portal-audit-log-webhook")
        );
        assert_eq!(
            Contract::global()
                .route("GET", "/v2/audit-log-webhook/jwks.json")
                .unwrap()
                .route,
            "/v2/audit-log-webhook/jwks.json"
        );
        assert!(Contract::global().route("GET", "/v3/nothing").is_none());
    }

    #[test]
    fn good_requests_keep_the_contract() {
        assert_eq!(check("GET", "/v3/portals", "", ""), Vec::<String>::new());
        assert_eq!(
            check(
                "GET",
                "/v3/portals",
                "page%5Bsize%5D=10&page%5Bnumber%5D=2&filter%5Bname%5D%5Beq%5D=Portal+A&sort=name",
                ""
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            check(
                "GET",
                "/v3/portals",
                "filter[authentication_enabled]=true&filter[name]=A",
                ""
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            check(
                "PATCH",
                &format!("{PORTAL}/audit-log-webhook"),
                "",
                r#"{"enabled":true,"audit_log_destination_id":"9cb77dc2-ff99-4d47-84ab-7c5c1b3ef939"}"#
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            check(
                "GET",
                "/v3/users",
                "filter[email][eq]=a@b.test&filter[active]=true&page[size]=",
                ""
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            check(
                "PUT",
                "/v3/audit-log-replay-job",
                "",
                r#"{"start_at":"2025-01-01T00:00:00Z","end_at":"2025-01-02T00:00:00Z"}"#
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn what_the_specs_forbid_is_a_violation() {
        let bad = [
            check("GET", "/v3/portals/not-a-uuid", "", ""),
            check("GET", "/v3/portals", "page[size]=ten", ""),
            check("GET", "/v3/portals", "filter[nmae][eq]=x", ""),
            check("GET", "/v3/portals", "filter[name][like]=x", ""),
            check("GET", "/v3/portals", "filter[rbac_enabled]=maybe", ""),
            check("GET", "/v3/portals", "limit=5", ""),
            check("GET", "/v3/portals", "filter=x", ""),
            check("GET", "/v3/users", "filter[email][neq]=x", ""),
            check(
                "GET",
                "/v3/system-accounts",
                "filter[name][eq]=a&filter[name][eq]=b",
                "",
            ),
            check("POST", "/v3/portals", "", "{}"),
            check("GET", "/v3/no-such-thing", "", ""),
            check(
                "PATCH",
                &format!("{PORTAL}/audit-log-webhook"),
                "",
                r#"{"enabled":"yes"}"#,
            ),
            check(
                "PATCH",
                &format!("{PORTAL}/audit-log-webhook"),
                "",
                r#"{"audit_log_destination_id":"nope"}"#,
            ),
            check(
                "PATCH",
                &format!("{PORTAL}/audit-log-webhook"),
                "",
                r#"{"enabled":true,"endpoint":"https://x.test"}"#,
            ),
            check(
                "PATCH",
                &format!("{PORTAL}/audit-log-webhook"),
                "",
                "not json",
            ),
            check("GET", &format!("{PORTAL}/audit-log-webhook"), "", "{}"),
            check(
                "PUT",
                &format!("{PORTAL}/audit-log-replay-job"),
                "",
                r#"{"start_at":"2025-01-01T00:00:00Z"}"#,
            ),
            check(
                "PUT",
                &format!("{PORTAL}/audit-log-replay-job"),
                "",
                r#"{"start_at":"yesterday","end_at":"2025-01-01T00:00:00Z"}"#,
            ),
        ];
        for (i, violations) in bad.iter().enumerate() {
            assert!(!violations.is_empty(), "case {i} should be a violation");
        }
        let wrong_type = Contract::global().check_request(
            "PATCH",
            &format!("{PORTAL}/audit-log-webhook"),
            "",
            Some("text/plain"),
            b"{}",
        );
        assert_eq!(wrong_type.violations.len(), 1, "{wrong_type:?}");
    }

    #[test]
    fn deep_object_segments() {
        assert_eq!(
            bracket_segments("[a][b]"),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(bracket_segments("[a]x"), None);
        assert_eq!(bracket_segments(""), None);
        let mut root = Value::Object(Map::new());
        insert_path(&mut root, &["a".into()], "1".into()).unwrap();
        assert!(insert_path(&mut root, &["a".into(), "b".into()], "2".into()).is_err());
        assert!(insert_path(&mut root, &["a".into()], "3".into()).is_err());
    }
}
