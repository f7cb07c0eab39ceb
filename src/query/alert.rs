//! Kong's recommended alert conditions for Konnect audit logs, as named
//! rules: what `--alert RULE[,RULE]` keeps, what the summary counts, and
//! what `--on RULE` acts on.
//!
//! Kong's audit-log reference ("Recommended alert conditions") lists the
//! field conditions a SIEM should alert on; each [`Rule`] is one of them,
//! read on every format through [`RecordView`] (the webhook's JSON, CEF and
//! cps, and the pull API's records, which have no severity and spell the
//! outcome `locked` where the webhook says `AUTHENTICATION_OUTCOME_LOCKED`):
//!
//! | rule | log type | condition | Kong's signal |
//! | --- | --- | --- | --- |
//! | `locked` | authentication | `name` is `AUTHENTICATION_OUTCOME_LOCKED` or `…_DISABLED` (pull: `outcome` `locked`/`disabled`), or `severity` 6 | Account locked; attempt on a disabled account |
//! | `failed-login` | authentication | `success` false (pull: `successful`; the string `"false"` too) | Potential brute force or credential stuffing (at volume) |
//! | `denied` | authorization | `granted` false, and not `kong_initiated` | Authorization denial |
//! | `forbidden` | gateway access | `status` 401 or 403 (pull: `status_code`), or `severity` 6 | HTTP 401 or 403, authentication failure at the gateway |
//! | `server-error` | gateway access | `status` 5xx, or `severity` 10 | HTTP 500, server error |
//!
//! `kong_initiated` records are excluded from `denied` as the docs say
//! ("System-generated event, exclude from user-action alerts"); the other
//! rules are about outcomes, whoever caused them. A record matches a
//! [`Rules`] set if it matches any of its rules.

use std::fmt;

use super::view::RecordView;
use crate::record::{EventType, Record};

/// One of Kong's alert conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    Locked,
    FailedLogin,
    Denied,
    Forbidden,
    ServerError,
}

impl Rule {
    /// Every rule, in the order they are listed and counted.
    pub const ALL: [Rule; 5] = [
        Rule::Locked,
        Rule::FailedLogin,
        Rule::Denied,
        Rule::Forbidden,
        Rule::ServerError,
    ];

    /// The rule's name, as `--alert` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Locked => "locked",
            Rule::FailedLogin => "failed-login",
            Rule::Denied => "denied",
            Rule::Forbidden => "forbidden",
            Rule::ServerError => "server-error",
        }
    }

    /// Kong's words for what the condition signals.
    pub fn signal(self) -> &'static str {
        match self {
            Rule::Locked => "Account locked, or an attempt on a disabled account",
            Rule::FailedLogin => "Potential brute force or credential stuffing (at volume)",
            Rule::Denied => "Authorization denial",
            Rule::Forbidden => "HTTP 401 or 403, authentication failure at the gateway",
            Rule::ServerError => "HTTP 500, server error",
        }
    }

    /// The one log type the rule applies to.
    pub fn event_type(self) -> EventType {
        match self {
            Rule::Locked | Rule::FailedLogin => EventType::Authentication,
            Rule::Denied => EventType::Authorization,
            Rule::Forbidden | Rule::ServerError => EventType::GatewayAccess,
        }
    }

    /// The rule named `name` (exact, lower case).
    pub fn parse(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Whether the record `view` shows matches this condition.
    pub fn matches(self, view: &RecordView<'_>) -> bool {
        match self {
            Rule::Locked => {
                view.kind == Some(EventType::Authentication)
                    && (view.severity == Some(6)
                        || view.auth_outcome_is("locked")
                        || view.auth_outcome_is("disabled"))
            }
            Rule::FailedLogin => {
                view.kind == Some(EventType::Authentication) && view.auth_succeeded() == Some(false)
            }
            Rule::Denied => {
                view.kind == Some(EventType::Authorization)
                    && view.granted == Some(false)
                    && view.kong_initiated != Some(true)
            }
            Rule::Forbidden => {
                view.kind == Some(EventType::GatewayAccess)
                    && (view.severity == Some(6) || matches!(view.status, Some(401 | 403)))
            }
            Rule::ServerError => {
                view.kind == Some(EventType::GatewayAccess)
                    && (view.severity == Some(10) || matches!(view.status, Some(500..=599)))
            }
        }
    }

    /// [`Rule::matches`] for a record (reads its view).
    pub fn matches_record(self, record: &Record) -> bool {
        self.matches(&RecordView::of(record))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of rules: what `--alert` keeps (any of them). Empty means no
/// alert filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Rules(u8);

impl Rules {
    pub fn all() -> Rules {
        Rule::ALL.into_iter().collect()
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, rule: Rule) -> bool {
        self.0 & Self::bit(rule) != 0
    }

    pub fn insert(&mut self, rule: Rule) {
        self.0 |= Self::bit(rule);
    }

    /// The rules of the set, in [`Rule::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Rule> {
        Rule::ALL.into_iter().filter(move |&r| self.contains(r))
    }

    /// The log type all the set's rules apply to, if they share one: a
    /// query may then ask its source for that type only (the pull API's
    /// `filter[type]`).
    pub fn only_type(self) -> Option<EventType> {
        let mut types = self.iter().map(Rule::event_type);
        let first = types.next()?;
        types.all(|t| t == first).then_some(first)
    }

    /// Whether the record matches any rule of the set.
    pub fn matches(self, view: &RecordView<'_>) -> bool {
        self.iter().any(|r| r.matches(view))
    }

    fn bit(rule: Rule) -> u8 {
        1 << (rule as u8)
    }

    /// Reads `--alert` values: rule names separated by commas, repeatable,
    /// `all` for every rule; case and blanks around names do not matter.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Rules, UnknownRule> {
        let mut rules = Rules::default();
        for value in values {
            for name in value.as_ref().split(',') {
                let name = name.trim().to_ascii_lowercase();
                if name == "all" {
                    rules = Rules::all();
                    continue;
                }
                match Rule::parse(&name) {
                    Some(rule) => rules.insert(rule),
                    None => return Err(UnknownRule(name)),
                }
            }
        }
        Ok(rules)
    }
}

impl FromIterator<Rule> for Rules {
    fn from_iter<I: IntoIterator<Item = Rule>>(iter: I) -> Rules {
        let mut rules = Rules::default();
        for rule in iter {
            rules.insert(rule);
        }
        rules
    }
}

/// A name that is no rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid --alert {}: the rules are locked, failed-login, denied, forbidden, server-error (or all)",
    crate::gofmt::quote(.0)
)]
pub struct UnknownRule(pub String);

#[cfg(test)]
mod tests {
    use super::super::view::tests as samples;
    use super::*;

    fn matching(line: &str) -> Vec<&'static str> {
        let record = Record::from_slice(line.as_bytes()).unwrap();
        Rule::ALL
            .into_iter()
            .filter(|r| r.matches_record(&record))
            .map(Rule::name)
            .collect()
    }

    /// `json` with `changes` applied (members replaced or added).
    fn with(json: &str, changes: &[(&str, serde_json::Value)]) -> String {
        let mut value: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(json).unwrap();
        for (k, v) in changes {
            value.insert((*k).to_owned(), v.clone());
        }
        serde_json::to_string(&value).unwrap()
    }

    fn cef_with(cef: &str, name: Option<&str>, severity: Option<&str>, ext: &str) -> String {
        // Header: time host CEF:0|vendor|product|version|class|name|severity|ext
        let (head, rest) = cef.split_once("CEF:").unwrap();
        let mut parts: Vec<String> = rest.splitn(8, '|').map(str::to_owned).collect();
        if let Some(n) = name {
            parts[5] = n.to_owned();
        }
        if let Some(s) = severity {
            parts[6] = s.to_owned();
        }
        if !ext.is_empty() {
            parts[7] = format!("{ext} {}", parts[7]);
        }
        format!("{head}CEF:{}", parts.join("|"))
    }

    fn json_samples() -> Vec<&'static str> {
        samples::SAMPLES_JSON.lines().collect()
    }

    fn cef_samples() -> Vec<&'static str> {
        samples::SAMPLES_CEF.lines().collect()
    }

    fn cps(json: &str) -> String {
        format!(r#"{{"event":{json}}}"#)
    }

    #[test]
    fn kongs_samples_match_no_rule() {
        for line in samples::SAMPLES_JSON
            .lines()
            .chain(samples::SAMPLES_CEF.lines())
            .chain(samples::SAMPLES_CPS.lines())
        {
            assert!(matching(line).is_empty(), "{line}");
        }
    }

    #[test]
    fn locked_on_json_cps_and_cef() {
        let auth = json_samples()[0];
        for outcome in [
            "AUTHENTICATION_OUTCOME_LOCKED",
            "AUTHENTICATION_OUTCOME_DISABLED",
        ] {
            let json = with(
                auth,
                &[
                    ("name", outcome.into()),
                    ("severity", 6.into()),
                    ("success", "false".into()),
                ],
            );
            assert_eq!(matching(&json), ["locked", "failed-login"]);
            assert_eq!(matching(&cps(&json)), ["locked", "failed-login"]);
        }
        // Severity 6 alone (the docs: "account locked or disabled").
        assert_eq!(matching(&with(auth, &[("severity", 6.into())])), ["locked"]);
        let cef = cef_with(
            cef_samples()[0],
            Some("AUTHENTICATION_OUTCOME_LOCKED"),
            Some("6"),
            "",
        )
        .replace("success=true", "success=false");
        assert_eq!(matching(&cef), ["locked", "failed-login"]);
    }

    #[test]
    fn failed_login_reads_success_as_string_or_boolean() {
        let auth = json_samples()[0];
        let failed = with(
            auth,
            &[
                ("name", "AUTHENTICATION_OUTCOME_INVALID_PASSWORD".into()),
                ("severity", 1.into()),
                ("success", "false".into()),
            ],
        );
        assert_eq!(matching(&failed), ["failed-login"]);
        assert_eq!(matching(&cps(&failed)), ["failed-login"]);
        let boolean = with(auth, &[("success", false.into())]);
        assert_eq!(matching(&boolean), ["failed-login"]);
        let cef = cef_samples()[0].replace("success=true", "success=false");
        assert_eq!(matching(&cef), ["failed-login"]);
        // The Dev Portal's logins too.
        let portal = cef_samples()[1].replace("success=true", "success=false");
        assert_eq!(matching(&portal), ["failed-login"]);
    }

    #[test]
    fn denied_excludes_what_kong_initiated() {
        let authz = json_samples()[2];
        let denied = with(authz, &[("granted", false.into()), ("severity", 6.into())]);
        assert_eq!(matching(&denied), ["denied"]);
        assert_eq!(matching(&cps(&denied)), ["denied"]);
        let by_kong = with(&denied, &[("kong_initiated", true.into())]);
        assert!(matching(&by_kong).is_empty());
        let cef = cef_samples()[2].replace("granted=true", "granted=false");
        assert_eq!(matching(&cef), ["denied"]);
        let cef_kong = cef.replace("granted=false", "granted=false kong_initiated=true");
        assert!(matching(&cef_kong).is_empty());
    }

    #[test]
    fn forbidden_and_server_error_on_access_records() {
        let access = json_samples()[3];
        for status in [401, 403] {
            let json = with(access, &[("status", status.into()), ("severity", 6.into())]);
            assert_eq!(matching(&json), ["forbidden"]);
            assert_eq!(matching(&cps(&json)), ["forbidden"]);
            let cef = cef_samples()[3].replace("status=200", &format!("status={status}"));
            assert_eq!(matching(&cef), ["forbidden"], "{cef}");
        }
        for status in [500, 502, 503] {
            let json = with(
                access,
                &[("status", status.into()), ("severity", 10.into())],
            );
            assert_eq!(matching(&json), ["server-error"]);
            assert_eq!(matching(&cps(&json)), ["server-error"]);
            let cef = cef_samples()[3].replace("status=200", &format!("status={status}"));
            assert_eq!(matching(&cef), ["server-error"], "{cef}");
        }
        // Severity alone, as the docs' conditions are written.
        assert_eq!(
            matching(&cef_with(cef_samples()[3], None, Some("10"), "")),
            ["server-error"]
        );
        assert!(matching(&with(access, &[("status", 404.into())])).is_empty());
        // An authorization with severity 6 is a denial, not a 403.
        let authz6 = with(json_samples()[2], &[("severity", 6.into())]);
        assert!(matching(&authz6).is_empty());
    }

    #[test]
    fn pull_records() {
        let locked = r#"{"type":"authentication","successful":false,"outcome":"locked","authentication_type":"basic","principal_id":"u","signature":"s","ts":"2026-08-23T14:00:00Z"}"#;
        assert_eq!(matching(locked), ["locked", "failed-login"]);
        let disabled = locked.replace("\"locked\"", "\"disabled\"");
        assert_eq!(matching(&disabled), ["locked", "failed-login"]);
        let bad_password = locked.replace("\"locked\"", "\"invalid_password\"");
        assert_eq!(matching(&bad_password), ["failed-login"]);
        let ok = r#"{"type":"authentication","successful":true,"outcome":"success","authentication_type":"sso","signature":"s","ts":"2026-08-23T14:00:00Z"}"#;
        assert!(matching(ok).is_empty());
        let denied = r#"{"type":"authorization","granted":false,"action":"list","resource":"krn:x","principal_id":"u","signature":"s","ts":"2026-08-23T14:00:00Z"}"#;
        assert_eq!(matching(denied), ["denied"]);
        let access = |code: u16| {
            format!(
                r#"{{"type":"gateway_access","method":"GET","uri":"/x","status_code":{code},"principal_id":"u","signature":"s","ts":"2026-08-23T14:00:00Z"}}"#
            )
        };
        assert_eq!(matching(&access(403)), ["forbidden"]);
        assert_eq!(matching(&access(401)), ["forbidden"]);
        assert_eq!(matching(&access(500)), ["server-error"]);
        assert!(matching(&access(201)).is_empty());
    }

    #[test]
    fn a_set_of_one_log_type_says_so() {
        let set = |names: &str| Rules::parse(&[names]).unwrap().only_type();
        assert_eq!(set("locked,failed-login"), Some(EventType::Authentication));
        assert_eq!(
            set("forbidden,server-error"),
            Some(EventType::GatewayAccess)
        );
        assert_eq!(set("denied"), Some(EventType::Authorization));
        assert_eq!(set("denied,locked"), None);
        assert_eq!(Rules::default().only_type(), None);
    }

    #[test]
    fn rule_lists_parse_with_all_and_say_what_is_valid() {
        assert_eq!(
            Rules::parse(&["locked,denied"])
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            [Rule::Locked, Rule::Denied]
        );
        assert_eq!(
            Rules::parse(&["server-error", " Forbidden "])
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            [Rule::Forbidden, Rule::ServerError]
        );
        assert_eq!(Rules::parse(&["all"]).unwrap(), Rules::all());
        assert!(Rules::parse::<&str>(&[]).unwrap().is_empty());
        assert_eq!(
            Rules::parse(&["locked,brute"]).unwrap_err().to_string(),
            "invalid --alert \"brute\": the rules are locked, failed-login, denied, forbidden, server-error (or all)"
        );
        assert!(Rules::parse(&[""]).is_err());
        for rule in Rule::ALL {
            assert_eq!(Rule::parse(rule.name()), Some(rule));
            assert_eq!(rule.to_string(), rule.name());
        }
    }
}
