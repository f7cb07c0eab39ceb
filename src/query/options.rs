//! The query flags of `get audit-logs`, the pull `tail` and the stored-event
//! reads, checked once, in upstream kongctl's order and words, before any
//! request or file read.
//!
//! Flags arrive as [`QueryFlags`] (strings and options, as clap gave them;
//! `cli.rs` builds it) and leave as [`QueryOptions`]: a time spec that
//! becomes a [`Window`] once the caller knows what "now" is (Konnect's
//! clock for the pull API, the local one for stored events), the type, the
//! limit, follow settings and the output choice. Messages are upstream's
//! (`internal/cmd/root/products/konnect/auditlogs/pull.go`), so scripts and
//! users see the same errors; where we accept more than upstream (`--jq`
//! with text output while following, `--type access`), the rule says so.

use std::time::Duration;

use jiff::Timestamp;

use super::{Filter, Grep, Limit, Origin, Query, Rules, Window};
use crate::gofmt;
use crate::jq::JqFilter;
use crate::output::columns::{self, Column};
use crate::output::{Format, OutputSpec};
use crate::record::EventType;

/// Records printed by a query with no time window and no `--limit`.
pub const DEFAULT_LIMIT: usize = 50;
/// The catch-up window of a follow with no `--start-time`.
pub const FOLLOW_LOOKBACK: Duration = Duration::from_secs(5 * 60);
/// How far each poll re-reads the previous window.
pub const FOLLOW_OVERLAP: Duration = Duration::from_secs(60);
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The flags as given (`None` = not given).
#[derive(Debug, Clone, Default)]
pub struct QueryFlags {
    pub positional: Vec<String>,
    pub output: Format,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub since: Option<String>,
    pub event_type: Option<String>,
    pub limit: Option<String>,
    pub follow: bool,
    pub poll_interval: Option<String>,
    /// `--page-size`, else the profile's `konnect.page-size`.
    pub page_size: Option<String>,
    pub jq: Option<String>,
    pub jq_raw_output: bool,
    pub columns: Vec<String>,
    /// `--alert` values (rule names, comma-separated, repeatable).
    pub alerts: Vec<String>,
    /// `--principal` values.
    pub principals: Vec<String>,
    /// `--summary` (`get audit-logs` only).
    pub summary: bool,
    /// `--resolve[=BOOL]`.
    pub resolve: Option<bool>,
    pub grep: Option<String>,
}

/// The time flags, to be resolved against a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeSpec {
    pub since: Option<Duration>,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub follow: bool,
}

impl TimeSpec {
    /// Whether any time flag was given.
    pub fn has_window(&self) -> bool {
        self.since.is_some() || self.start.is_some() || self.end.is_some()
    }

    /// The window at `now`: `--since d` is [now-d, now]; `--start-time`
    /// and `--end-time` as given; following starts at `--start-time` or
    /// five minutes ago and runs to now (upstream's rules).
    pub fn window(&self, now: Timestamp) -> Window {
        if let Some(since) = self.since {
            return Window {
                start: Some(sub(now, since)),
                end: Some(now),
            };
        }
        let mut window = Window {
            start: self.start,
            end: self.end,
        };
        if self.follow {
            window.start = Some(window.start.unwrap_or_else(|| sub(now, FOLLOW_LOOKBACK)));
            window.end = Some(now);
        }
        window
    }
}

/// `now - d`, saturating at the earliest time jiff can hold.
pub fn sub(now: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| now.checked_sub(d).ok())
        .unwrap_or(Timestamp::MIN)
}

/// Checked query flags.
#[derive(Debug)]
pub struct QueryOptions {
    pub time: TimeSpec,
    pub kind: Option<EventType>,
    pub limit: Limit,
    pub follow: bool,
    pub poll_interval: Duration,
    pub page_size: u32,
    pub output: OutputSpec,
    /// `--org` / `--portal`: set by the command once portal names are
    /// resolved.
    pub origin: Origin,
    /// `--alert`; the principals are added once resolved
    /// ([`Principals`](super::Principals)).
    pub filter: Filter,
    /// `--principal` values, to be resolved into `filter`.
    pub principals: Vec<String>,
    /// `--summary`: print the summary instead of the records.
    pub summary: bool,
    /// `--resolve`: `Some(true)` adds `principal_name` to JSON records,
    /// `Some(false)` turns every lookup off, `None` names tables only.
    pub resolve: Option<bool>,
    /// `--grep`.
    pub grep: Option<Grep>,
}

impl QueryOptions {
    /// The query at `now`.
    pub fn query(&self, now: Timestamp) -> Query {
        Query {
            window: self.time.window(now),
            kind: self.kind,
            limit: self.limit,
            origin: self.origin.clone(),
            filter: self.filter.clone(),
            grep: self.grep.clone(),
        }
    }
}

/// A flag error, shown as `Error: <text>` with the usage hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryFlagError(pub String);

fn err<T>(text: impl Into<String>) -> Result<T, QueryFlagError> {
    Err(QueryFlagError(text.into()))
}

impl QueryFlags {
    /// Checks the flags in upstream's order.
    pub fn check(&self) -> Result<QueryOptions, QueryFlagError> {
        if !self.positional.is_empty() {
            return err("the audit-logs command does not accept positional arguments");
        }
        let jq_expr = self.jq.as_deref().map(str::trim).unwrap_or("");
        // `--jq ''` given explicitly means `.`, as upstream.
        let has_jq = self.jq.is_some();
        let jq_expr = if has_jq && jq_expr.is_empty() {
            "."
        } else {
            jq_expr
        };
        if self.summary {
            self.check_summary(has_jq)?;
        }
        let columns = self.check_output(has_jq)?;
        let alerts = Rules::parse(&self.alerts).map_err(|e| QueryFlagError(e.to_string()))?;

        let page_size = match &self.page_size {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => {
                let n = parse_int(text, "page-size")?;
                if !(1..=i64::from(MAX_PAGE_SIZE)).contains(&n) {
                    return err(format!("--page-size must be between 1 and {MAX_PAGE_SIZE}"));
                }
                n as u32
            }
        };
        let since = match &self.since {
            None => None,
            Some(text) => {
                let (negative, d) = parse_signed_duration(text, "since")?;
                if negative && !d.is_zero() {
                    return err("--since must be positive");
                }
                (!d.is_zero()).then_some(d)
            }
        };
        let start_given = self
            .start_time
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty());
        let end_given = self
            .end_time
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty());
        if since.is_some() && (start_given || end_given) {
            return err("--since cannot be combined with --start-time or --end-time");
        }
        let limit_value = match &self.limit {
            None => None,
            Some(text) => Some(parse_int(text, "limit")?),
        };
        if limit_value.is_some_and(|n| n < 0) {
            return err("--limit must be non-negative");
        }
        let poll_interval = match &self.poll_interval {
            None => DEFAULT_POLL_INTERVAL,
            Some(text) => {
                let (negative, d) = parse_signed_duration(text, "poll-interval")?;
                if negative || d.is_zero() {
                    return err("--poll-interval must be positive");
                }
                d
            }
        };
        let kind = match self.event_type.as_deref().filter(|t| !t.is_empty()) {
            None => None,
            Some(name) => Some(EventType::parse(name).ok_or_else(|| {
                QueryFlagError(format!(
                    "invalid --type {}: must be authentication, authorization, or gateway_access",
                    gofmt::quote(name)
                ))
            })?),
        };
        if self.follow {
            if end_given {
                return err("--end-time cannot be used with --follow");
            }
            if limit_value.is_some_and(|n| n != 0) {
                return err("--limit cannot be used with --follow");
            }
            if !matches!(self.output, Format::Text | Format::Jsonl) {
                return err(
                    "--follow requires row-oriented output: use --output text or --output jsonl",
                );
            }
        }
        let start = parse_bound(self.start_time.as_deref(), "start-time")?;
        let end = parse_bound(self.end_time.as_deref(), "end-time")?;
        if let (Some(s), Some(e)) = (start, end)
            && s > e
        {
            return err("--start-time must not be later than --end-time");
        }
        // Rules of one log type read that type only (Konnect's
        // `filter[type]` for a pull): the others cannot match.
        let kind = kind.or_else(|| alerts.only_type());
        let time = TimeSpec {
            since,
            start,
            end,
            follow: self.follow,
        };
        let n = limit_value.map(|n| n as usize);
        let limit = match n {
            Some(0) => Limit::Unlimited,
            _ if self.follow => Limit::Unlimited,
            // A summary counts every record the window holds.
            None if self.summary => Limit::Unlimited,
            Some(n) if time.has_window() => Limit::First(n),
            None if time.has_window() => Limit::Unlimited,
            Some(n) => Limit::Last(n),
            None => Limit::Last(DEFAULT_LIMIT),
        };
        let jq = if has_jq {
            Some(JqFilter::compile(jq_expr).map_err(|e| QueryFlagError(e.to_string()))?)
        } else {
            None
        };
        // Ours: upstream has no --grep. Checked last, as the other
        // additions.
        let grep = match &self.grep {
            Some(pattern) => Some(Grep::new(pattern).map_err(QueryFlagError)?),
            None => None,
        };
        Ok(QueryOptions {
            time,
            kind,
            limit,
            follow: self.follow,
            poll_interval,
            page_size,
            output: OutputSpec {
                format: self.output,
                jq,
                raw: self.jq_raw_output,
                columns,
                follow: self.follow,
                portal_column: false,
            },
            origin: Origin::Any,
            filter: Filter {
                alerts,
                principals: None,
            },
            principals: self.principals.clone(),
            summary: self.summary,
            resolve: self.resolve,
            grep,
        })
    }

    /// What `--summary` cannot be combined with: it prints one document of
    /// its own, once.
    fn check_summary(&self, has_jq: bool) -> Result<(), QueryFlagError> {
        if self.follow {
            return err("--summary cannot be used with --follow");
        }
        if self.output == Format::Jsonl {
            return err("--summary supports --output text, json or yaml");
        }
        if has_jq {
            return err("--summary cannot be combined with --jq");
        }
        if !self.columns.is_empty() {
            return err("--summary cannot be combined with --columns");
        }
        Ok(())
    }

    /// The output rules, upstream's `validateAuditLogOutputOptions`, with
    /// one relaxation: while following, `--jq` also works with text output
    /// (one filtered line per record, as the listener's `tail --jq`).
    fn check_output(&self, has_jq: bool) -> Result<Option<Vec<Column>>, QueryFlagError> {
        let raw = self.jq_raw_output;
        match self.output {
            Format::Jsonl => {
                if raw && !has_jq {
                    return err("--jq-raw-output requires --jq");
                }
                if !self.columns.is_empty() {
                    return err("--columns is only supported with --output text");
                }
                Ok(None)
            }
            format => {
                let row_jq = self.follow && format == Format::Text;
                if raw {
                    if !has_jq {
                        return err("--jq-raw-output requires --jq");
                    }
                    if format != Format::Json && !row_jq {
                        return err(
                            "--jq-raw-output is only supported with --output json when used with --jq",
                        );
                    }
                } else if has_jq && !matches!(format, Format::Json | Format::Yaml) && !row_jq {
                    return err("--jq is only supported with --output json or --output yaml");
                }
                let columns = columns::resolve(&self.columns, format == Format::Text)
                    .map_err(|e| QueryFlagError(e.to_string()))?;
                if columns.is_some() && has_jq {
                    return err("--columns cannot be combined with --jq");
                }
                Ok(columns)
            }
        }
    }
}

/// Parses an int flag as Go's `strconv.ParseInt` does, with pflag's error.
fn parse_int(text: &str, flag: &str) -> Result<i64, QueryFlagError> {
    text.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        QueryFlagError(format!(
            "invalid argument {} for \"--{flag}\" flag: strconv.ParseInt: parsing {}: {why}",
            gofmt::quote(text),
            gofmt::quote(text)
        ))
    })
}

/// Parses a duration flag ([`crate::time::parse_duration`]), telling a
/// negative one apart.
fn parse_signed_duration(text: &str, flag: &str) -> Result<(bool, Duration), QueryFlagError> {
    let bad = |e: String| {
        QueryFlagError(format!(
            "invalid argument {} for \"--{flag}\" flag: {e}",
            gofmt::quote(text)
        ))
    };
    let d = crate::time::parse_duration(text.trim()).map_err(bad)?;
    Ok((d.is_negative(), d.unsigned_abs()))
}

/// Parses `--start-time`/`--end-time`: RFC 3339 with `T`, seconds and an
/// offset (`Z` or numeric), fractional seconds allowed, as Go's
/// `time.RFC3339` parser takes it.
fn parse_bound(text: Option<&str>, flag: &str) -> Result<Option<Timestamp>, QueryFlagError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    crate::time::parse_rfc3339(text).map(Some).map_err(|why| {
        QueryFlagError(format!(
            "invalid --{flag}: expected RFC3339: parsing time {} as \"2006-01-02T15:04:05Z07:00\": {why}",
            gofmt::quote(text)
        ))
    })
}

impl QueryFlags {
    /// Marks `page_size` as the profile's `konnect.page-size` rather than
    /// the flag: there, 0 means the default (as upstream's `GetInt` of an
    /// unset key).
    pub fn page_size_from_profile(mut self, value: Option<i64>) -> Self {
        if self.page_size.is_none()
            && let Some(v) = value
        {
            self.page_size = Some(if v == 0 {
                DEFAULT_PAGE_SIZE.to_string()
            } else {
                v.to_string()
            });
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> QueryFlags {
        QueryFlags::default()
    }

    fn error(f: QueryFlags) -> String {
        f.check().unwrap_err().0
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_are_the_fifty_most_recent_as_text() {
        let o = flags().check().unwrap();
        assert_eq!(o.limit, Limit::Last(50));
        assert_eq!(o.page_size, 100);
        assert_eq!(o.poll_interval, Duration::from_secs(10));
        assert_eq!(o.output.format, Format::Text);
        assert!(o.query(Timestamp::now()).window.is_open());
        // --type alone is no window: still 50.
        let o = QueryFlags {
            event_type: Some("authorization".into()),
            ..flags()
        }
        .check()
        .unwrap();
        assert_eq!(o.limit, Limit::Last(50));
        assert_eq!(o.kind, Some(EventType::Authorization));
    }

    #[test]
    fn limit_is_first_n_with_a_window_and_last_n_without() {
        let with = |limit: Option<&str>, since: Option<&str>| {
            QueryFlags {
                limit: limit.map(Into::into),
                since: since.map(Into::into),
                ..flags()
            }
            .check()
            .unwrap()
            .limit
        };
        assert_eq!(with(None, Some("1h")), Limit::Unlimited);
        assert_eq!(with(Some("7"), Some("1h")), Limit::First(7));
        assert_eq!(with(Some("7"), None), Limit::Last(7));
        assert_eq!(with(Some("0"), None), Limit::Unlimited);
    }

    #[test]
    fn windows_follow_upstream() {
        let now = t("2026-08-23T14:00:00Z");
        let since = QueryFlags {
            since: Some("1h30m".into()),
            ..flags()
        }
        .check()
        .unwrap();
        assert_eq!(
            since.query(now).window,
            Window {
                start: Some(t("2026-08-23T12:30:00Z")),
                end: Some(now)
            }
        );
        let follow = QueryFlags {
            follow: true,
            ..flags()
        }
        .check()
        .unwrap();
        assert_eq!(
            follow.query(now).window,
            Window {
                start: Some(t("2026-08-23T13:55:00Z")),
                end: Some(now)
            }
        );
        assert_eq!(follow.limit, Limit::Unlimited);
        let offset = QueryFlags {
            start_time: Some("2026-08-23T09:00:00-05:00".into()),
            end_time: Some("2026-08-24T14:00:00Z".into()),
            ..flags()
        }
        .check()
        .unwrap();
        assert_eq!(
            offset.query(now).window,
            Window {
                start: Some(t("2026-08-23T14:00:00Z")),
                end: Some(t("2026-08-24T14:00:00Z"))
            }
        );
    }

    #[test]
    fn every_validation_message_is_upstreams() {
        let cases: Vec<(QueryFlags, &str)> = vec![
            (
                QueryFlags {
                    positional: vec!["x".into()],
                    ..flags()
                },
                "the audit-logs command does not accept positional arguments",
            ),
            (
                QueryFlags {
                    output: Format::Jsonl,
                    jq_raw_output: true,
                    ..flags()
                },
                "--jq-raw-output requires --jq",
            ),
            (
                QueryFlags {
                    output: Format::Jsonl,
                    columns: vec!["A=.a".into()],
                    ..flags()
                },
                "--columns is only supported with --output text",
            ),
            (
                QueryFlags {
                    output: Format::Json,
                    columns: vec!["A=.a".into()],
                    ..flags()
                },
                "--columns is only supported with --output text",
            ),
            (
                QueryFlags {
                    jq: Some(".".into()),
                    ..flags()
                },
                "--jq is only supported with --output json or --output yaml",
            ),
            (
                QueryFlags {
                    output: Format::Yaml,
                    jq: Some(".".into()),
                    jq_raw_output: true,
                    ..flags()
                },
                "--jq-raw-output is only supported with --output json when used with --jq",
            ),
            (
                QueryFlags {
                    columns: vec!["A=.a".into()],
                    jq: Some(".".into()),
                    follow: true,
                    ..flags()
                },
                "--columns cannot be combined with --jq",
            ),
            (
                QueryFlags {
                    page_size: Some("0".into()),
                    ..flags()
                },
                "--page-size must be between 1 and 1000",
            ),
            (
                QueryFlags {
                    page_size: Some("1001".into()),
                    ..flags()
                },
                "--page-size must be between 1 and 1000",
            ),
            (
                QueryFlags {
                    since: Some("-5m".into()),
                    ..flags()
                },
                "--since must be positive",
            ),
            (
                QueryFlags {
                    since: Some("5m".into()),
                    start_time: Some("2026-01-01T00:00:00Z".into()),
                    ..flags()
                },
                "--since cannot be combined with --start-time or --end-time",
            ),
            (
                QueryFlags {
                    limit: Some("-1".into()),
                    ..flags()
                },
                "--limit must be non-negative",
            ),
            (
                QueryFlags {
                    poll_interval: Some("0s".into()),
                    ..flags()
                },
                "--poll-interval must be positive",
            ),
            (
                QueryFlags {
                    event_type: Some("login".into()),
                    ..flags()
                },
                "invalid --type \"login\": must be authentication, authorization, or gateway_access",
            ),
            (
                QueryFlags {
                    follow: true,
                    end_time: Some("2026-01-01T00:00:00Z".into()),
                    ..flags()
                },
                "--end-time cannot be used with --follow",
            ),
            (
                QueryFlags {
                    follow: true,
                    limit: Some("5".into()),
                    ..flags()
                },
                "--limit cannot be used with --follow",
            ),
            (
                QueryFlags {
                    follow: true,
                    output: Format::Json,
                    ..flags()
                },
                "--follow requires row-oriented output: use --output text or --output jsonl",
            ),
            (
                QueryFlags {
                    start_time: Some("2026-01-02T00:00:00Z".into()),
                    end_time: Some("2026-01-01T00:00:00Z".into()),
                    ..flags()
                },
                "--start-time must not be later than --end-time",
            ),
            (
                QueryFlags {
                    limit: Some("ten".into()),
                    ..flags()
                },
                "invalid argument \"ten\" for \"--limit\" flag: strconv.ParseInt: parsing \"ten\": invalid syntax",
            ),
            (
                QueryFlags {
                    since: Some("5x".into()),
                    ..flags()
                },
                "invalid argument \"5x\" for \"--since\" flag: time: unknown unit \"x\" in duration \"5x\"",
            ),
        ];
        for (f, want) in cases {
            assert_eq!(error(f), want);
        }
        let bad_time = error(QueryFlags {
            start_time: Some("yesterday".into()),
            ..flags()
        });
        assert!(
            bad_time
                .starts_with("invalid --start-time: expected RFC3339: parsing time \"yesterday\""),
            "{bad_time}"
        );
        let no_t = error(QueryFlags {
            end_time: Some("2026-01-01 00:00:00Z".into()),
            ..flags()
        });
        assert!(
            no_t.starts_with("invalid --end-time: expected RFC3339"),
            "{no_t}"
        );
    }

    #[test]
    fn jq_with_text_is_allowed_while_following() {
        let o = QueryFlags {
            follow: true,
            jq: Some(".name".into()),
            ..flags()
        }
        .check()
        .unwrap();
        assert!(o.output.jq.is_some());
        let raw = QueryFlags {
            follow: true,
            jq: Some(".name".into()),
            jq_raw_output: true,
            ..flags()
        }
        .check()
        .unwrap();
        assert!(raw.output.raw);
    }

    #[test]
    fn a_bad_jq_expression_fails_before_anything_runs() {
        let e = error(QueryFlags {
            output: Format::Jsonl,
            jq: Some(".records[".into()),
            ..flags()
        });
        assert!(e.starts_with("invalid jq expression"), "{e}");
    }

    #[test]
    fn access_is_an_alias_of_gateway_access() {
        let o = QueryFlags {
            event_type: Some("access".into()),
            ..flags()
        }
        .check()
        .unwrap();
        assert_eq!(o.kind, Some(EventType::GatewayAccess));
    }

    #[test]
    fn profile_page_size_zero_means_the_default() {
        let o = flags().page_size_from_profile(Some(0)).check().unwrap();
        assert_eq!(o.page_size, 100);
        let o = flags().page_size_from_profile(Some(250)).check().unwrap();
        assert_eq!(o.page_size, 250);
        let o = QueryFlags {
            page_size: Some("7".into()),
            ..flags()
        }
        .page_size_from_profile(Some(250))
        .check()
        .unwrap();
        assert_eq!(o.page_size, 7);
    }
}
