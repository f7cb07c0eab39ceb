//! Turns the `listen`/`tail` flags into validated [`ListenOptions`].
//!
//! Validation happens here, before anything touches Konnect, and in the
//! original's order so the first error a user sees is the same. We also
//! check what the original only checks after Konnect is configured (listen
//! address, body limit), so bad input never causes remote changes.

use std::net::SocketAddr;

use url::Url;

use super::check::CheckMode;
use crate::cli::{ListenArgs, VerifyMode};
use crate::config::{Given, StoreSettings};
use crate::error::CliError;
use crate::store::StorePolicy;
use crate::store::policy::{parse_duration, parse_optional_size};

/// Delivery formats Konnect supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Cef,
    Json,
    Cps,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Cef => "cef",
            LogFormat::Json => "json",
            LogFormat::Cps => "cps",
        }
    }

    /// Any case, surrounding blanks ignored; the original's error otherwise.
    pub fn parse(raw: &str) -> Result<LogFormat, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "cef" => Ok(LogFormat::Cef),
            "json" => Ok(LogFormat::Json),
            "cps" => Ok(LogFormat::Cps),
            _ => Err(format!(
                "invalid log-format {:?}, allowed values are: cef, json, cps",
                raw
            )),
        }
    }
}

/// How the authorization value came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationOrigin {
    /// `--authorization` or `KONGCTL_LISTEN_AUTHORIZATION`.
    User,
    /// Generated for this run because none was given.
    Generated,
}

/// Validated settings of one `listen`/`tail` run.
#[derive(Clone)]
pub struct ListenOptions {
    pub endpoint: Url,
    /// The endpoint as the user gave it (or as built from --public-url).
    pub endpoint_raw: String,
    pub public_url: Option<String>,
    pub listen_address: SocketAddr,
    pub path: String,
    pub max_body_bytes: usize,
    pub name: String,
    pub log_format: LogFormat,
    pub skip_ssl_verification: bool,
    pub authorization: crate::secret::Secret,
    pub authorization_origin: AuthorizationOrigin,
    pub configure_webhook: bool,
    pub tail: bool,
    pub detach: bool,
    pub jq: Option<String>,
    /// `--alert`, `--principal`, `--resolve`: what tail prints of each
    /// record ([`crate::cli::ReadArgs`]); `alerts` checked.
    pub read: crate::cli::ReadArgs,
    pub filter: crate::query::Filter,
    /// The tunnel self-test before any Konnect change.
    pub check: CheckMode,
    /// `--verify`: what to do with records' signatures.
    pub verify: crate::verify::Mode,
    /// `--backfill`: what gap healing replays (`crate::replay`).
    pub backfill: crate::replay::Backfill,
    /// Rotation and retention of the store.
    pub store: StorePolicy,
    /// `--portal`: the Dev Portals (ids or names, as given, trimmed,
    /// without repeats) whose webhooks are pointed at the destination too.
    pub portals: Vec<String>,
    /// The admin endpoint and `--dry-run` (`crate::service`).
    pub service: crate::service::ServiceOptions,
    /// `--on`/`--exec` pairs and their limits (`crate::exec`).
    pub exec: Option<crate::exec::ExecSettings>,
    /// Warnings to show once the command has decided where output goes.
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for ListenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenOptions")
            .field(
                "endpoint",
                &crate::konnect::error::redact_url(&self.endpoint),
            )
            .field("listen_address", &self.listen_address)
            .field("path", &self.path)
            .field("name", &self.name)
            .field("log_format", &self.log_format)
            .field("tail", &self.tail)
            .field("detach", &self.detach)
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

/// `tail` turns `--tail` on unless the user set it.
pub fn default_tail_if_unset(args: &mut ListenArgs) {
    if args.tail.is_none() {
        args.tail = Some(true);
    }
}

impl ListenOptions {
    /// Validates `args`, with the profile's store settings under them.
    /// `check_jq` compiles the filter (so an invalid expression fails
    /// before anything remote happens).
    pub fn from_args(
        args: &ListenArgs,
        configured: &StoreSettings,
        command_path: &str,
        check_jq: &dyn Fn(&str) -> Result<(), String>,
    ) -> Result<ListenOptions, CliError> {
        let usage = |m: String| CliError::usage(m, command_path);

        if !args.positional.is_empty() {
            return Err(usage(
                "the audit-logs command does not accept positional arguments".into(),
            ));
        }
        let tail = args.tail.unwrap_or(false);
        let detach = args.detach.unwrap_or(false);
        let authorization = match args.authorization.as_deref() {
            Some(a) if a.trim().is_empty() => {
                return Err(usage("--authorization must not be empty".into()));
            }
            Some(a) => Some(a.trim().to_string()),
            None => None,
        };
        if detach && tail {
            return Err(usage("--detach is not supported with --tail".into()));
        }
        let jq = args
            .jq
            .as_deref()
            .map(str::trim)
            .filter(|j| !j.is_empty())
            .map(str::to_string);
        if jq.is_some() && !tail {
            return Err(usage("--jq requires --tail".into()));
        }
        if let Some(expr) = &jq {
            check_jq(expr).map_err(|e| usage(format!("invalid tail configuration: {e}")))?;
        }
        let read = &args.read;
        let read_flag = [
            (!read.alerts.is_empty(), "--alert"),
            (!read.principals.is_empty(), "--principal"),
            (read.resolve.is_some(), "--resolve"),
            (read.grep.is_some(), "--grep"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name));
        if let Some(flag) = read_flag
            && !tail
        {
            return Err(usage(format!("{flag} requires --tail")));
        }
        let alerts = crate::query::Rules::parse(&read.alerts).map_err(|e| usage(e.to_string()))?;
        if let Some(pattern) = &read.grep {
            crate::query::Grep::new(pattern).map_err(usage)?;
        }

        let path = normalize_path(&args.path);
        let endpoint_given = args
            .endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty());
        let public_url = args
            .public_url
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty());
        let endpoint_raw = match (endpoint_given, public_url) {
            (Some(e), _) => e.to_string(),
            (None, Some(p)) => endpoint_from_public_url(p, &path).map_err(|e| {
                usage(format!(
                    "failed to build endpoint from --public-url and --path: {e}"
                ))
            })?,
            (None, None) => return Err(usage("provide either --endpoint or --public-url".into())),
        };
        let endpoint = parse_endpoint(&endpoint_raw)
            .map_err(|e| usage(format!("endpoint must be a valid URL: {e}")))?;
        let log_format = LogFormat::parse(&args.log_format).map_err(usage)?;

        let backfill = match args.backfill.as_deref() {
            None => crate::replay::Backfill::Auto,
            Some(text) => match crate::replay::Backfill::parse(text).map_err(usage)? {
                crate::replay::Backfill::From(t) if t > jiff::Timestamp::now() => {
                    return Err(usage(format!(
                        "invalid --backfill {text:?}: the time is in the future"
                    )));
                }
                backfill => backfill,
            },
        };

        let exec = crate::exec::ExecSettings::from_flags(
            &args.on,
            &args.exec,
            args.exec_timeout.as_deref(),
            args.exec_jobs,
        )
        .map_err(usage)?;

        let listen_address = parse_listen_address(&args.listen_address).map_err(usage)?;
        if args.max_body_bytes <= 0 {
            return Err(usage("max-body-bytes must be greater than zero".into()));
        }
        let max_body_bytes = usize::try_from(args.max_body_bytes)
            .map_err(|_| usage("max-body-bytes is too large for this machine".into()))?;
        let store = store_policy(args, configured, &usage)?;
        let mut portals: Vec<String> = Vec::new();
        for p in &args.portals {
            let p = p.trim();
            if p.is_empty() {
                return Err(usage("--portal must not be empty".into()));
            }
            if !portals.iter().any(|q| q == p) {
                portals.push(p.to_string());
            }
        }

        let name = match args
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            Some(n) => n.to_string(),
            None => default_destination_name(&hostname(), std::process::id()),
        };

        // The flag, else the environment (for a shell or a test harness
        // whose tunnels the probe cannot reach), else warn.
        let check = match args.check {
            Some(crate::cli::TunnelCheck::Off) => CheckMode::Off,
            Some(crate::cli::TunnelCheck::Warn) => CheckMode::Warn,
            Some(crate::cli::TunnelCheck::Strict) => CheckMode::Strict,
            None => match std::env::var(super::check::CHECK_ENV) {
                Ok(v) if !v.trim().is_empty() => CheckMode::parse(&v).map_err(usage)?,
                _ => CheckMode::default(),
            },
        };

        let mut warnings = Vec::new();
        if endpoint.scheme() == "http" {
            warnings.push(format!(
                "endpoint {} uses plain http: Konnect delivers audit logs only to HTTPS endpoints, \
                 so put an HTTPS tunnel or proxy in front of the listener",
                crate::konnect::error::redact_url(&endpoint)
            ));
        }
        let (authorization, authorization_origin) = match authorization {
            Some(a) => (crate::secret::Secret::new(a), AuthorizationOrigin::User),
            None => (
                crate::secret::Secret::new(generate_authorization()),
                AuthorizationOrigin::Generated,
            ),
        };

        Ok(ListenOptions {
            endpoint,
            endpoint_raw,
            public_url: public_url.map(str::to_string),
            listen_address,
            path,
            max_body_bytes,
            name,
            log_format,
            skip_ssl_verification: args.skip_ssl_verification.unwrap_or(false),
            authorization,
            authorization_origin,
            configure_webhook: args.configure_webhook.unwrap_or(true),
            tail,
            detach,
            jq,
            read: read.clone(),
            // The principals are resolved by the tail, off the listener's
            // tasks (`crate::tail::TailOptions`).
            filter: crate::query::Filter {
                alerts,
                principals: None,
            },
            check,
            verify: match args.verify {
                None | Some(VerifyMode::Warn) => crate::verify::Mode::Warn,
                Some(VerifyMode::Off) => crate::verify::Mode::Off,
                Some(VerifyMode::Reject) => crate::verify::Mode::Reject,
            },
            backfill,
            store,
            portals,
            service: crate::service::ServiceOptions::default(),
            exec,
            warnings,
        })
    }
}

/// `--max-file-size`, `--rotate-every`, `--retain`, `--retain-size`, each
/// from its flag, else the environment or config.yaml, else its default.
/// A bad flag is a usage error; a bad configured value names where it came
/// from.
fn store_policy(
    args: &ListenArgs,
    configured: &StoreSettings,
    usage: &dyn Fn(String) -> CliError,
) -> Result<StorePolicy, CliError> {
    let default = StorePolicy::default();
    Ok(StorePolicy {
        max_file_size: pick(
            ("max-file-size", &args.max_file_size),
            &configured.max_file_size,
            parse_optional_size,
            usage,
        )?
        .unwrap_or(default.max_file_size),
        rotate_every: pick(
            ("rotate-every", &args.rotate_every),
            &configured.rotate_every,
            parse_duration,
            usage,
        )?
        .unwrap_or(default.rotate_every),
        retain: pick(
            ("retain", &args.retain),
            &configured.retain,
            parse_duration,
            usage,
        )?
        .unwrap_or(default.retain),
        retain_size: pick(
            ("retain-size", &args.retain_size),
            &configured.retain_size,
            parse_optional_size,
            usage,
        )?
        .unwrap_or(default.retain_size),
    })
}

/// A listen setting from its flag `--<name>`, else from the environment or
/// config.yaml (`audit-logs.<name>`), parsed; `None` when neither gives
/// it. A bad flag is a usage error; a bad configured value names where it
/// came from.
pub(crate) fn pick<T>(
    flag: (&'static str, &Option<String>),
    configured: &Option<Given>,
    parse: fn(&str) -> Result<T, String>,
    usage: &dyn Fn(String) -> CliError,
) -> Result<Option<T>, CliError> {
    let (name, value) = flag;
    if let Some(v) = value {
        return parse(v)
            .map(Some)
            .map_err(|e| usage(format!("invalid --{name} {v:?}: {e}")));
    }
    match configured {
        Some(g) => parse(&g.value).map(Some).map_err(|e| {
            CliError::new(format!(
                "invalid audit-logs.{name} {:?} in {}: {e}",
                g.value, g.origin
            ))
        }),
        None => Ok(None),
    }
}

/// `--path`: trimmed, empty means `/audit-logs`, always starts with `/`.
pub fn normalize_path(raw: &str) -> String {
    let p = raw.trim();
    if p.is_empty() {
        "/audit-logs".to_string()
    } else if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    }
}

/// The endpoint for `--public-url` and `--path`: the public URL's path
/// (without a trailing `/`) joined with `path`; `path` `/` means the public
/// URL's path itself. Query and fragment are dropped.
pub fn endpoint_from_public_url(public_url: &str, path: &str) -> Result<String, String> {
    let mut url = Url::parse(public_url)
        .ok()
        .filter(|u| u.has_host() && !u.cannot_be_a_base())
        .ok_or_else(|| "public URL must include scheme and host".to_string())?;
    let base = url.path().trim_end_matches('/').to_string();
    let joined = if path == "/" {
        if base.is_empty() {
            "/".to_string()
        } else {
            base
        }
    } else {
        format!("{base}{path}")
    };
    url.set_path(&joined);
    url.set_query(None);
    url.set_fragment(None);
    Ok(url.to_string())
}

/// An absolute http(s) URL with a host. (The original accepted anything Go's
/// ParseRequestURI accepts, such as `/x`, which Konnect then rejects.)
fn parse_endpoint(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("parse {raw:?}: {e}"))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(format!(
                "parse {raw:?}: scheme {other:?} is not supported, use https://"
            ));
        }
    }
    if !url.has_host() {
        return Err(format!("parse {raw:?}: missing host"));
    }
    Ok(url)
}

pub(crate) fn parse_listen_address(raw: &str) -> Result<SocketAddr, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("listen address cannot be empty".into());
    }
    // Go accepts ":19090" for all interfaces.
    let candidate = if let Some(port) = raw.strip_prefix(':') {
        format!("0.0.0.0:{port}")
    } else if let Some(port) = raw.strip_prefix("localhost:") {
        format!("127.0.0.1:{port}")
    } else {
        raw.to_string()
    };
    candidate.parse().map_err(|_| {
        format!(
            "invalid listen address {raw:?}: use HOST:PORT with an IP address, e.g. 127.0.0.1:19090"
        )
    })
}

/// `kongctl-<host>-<pid>`.
pub fn default_destination_name(host: &str, pid: u32) -> String {
    format!("kongctl-{}-{pid}", sanitize_name_component(host))
}

/// Lower-cased; anything but letters, digits, `-`, `_`, `.` becomes `-`;
/// `-` trimmed at the edges; empty becomes `unknown-host`.
pub fn sanitize_name_component(host: &str) -> String {
    let s: String = host
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-');
    if s.is_empty() {
        "unknown-host".to_string()
    } else {
        s.to_string()
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// A random authorization value (256 bits from the OS-seeded CSPRNG).
fn generate_authorization() -> String {
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("Bearer kongctl-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ListenArgs {
        ListenArgs {
            endpoint: Some("https://h.test/audit-logs".into()),
            listen_address: "127.0.0.1:19090".into(),
            path: "/audit-logs".into(),
            max_body_bytes: 1 << 20,
            log_format: "json".into(),
            ..Default::default()
        }
    }

    fn ok_jq(_: &str) -> Result<(), String> {
        Ok(())
    }

    fn err(a: &ListenArgs) -> String {
        ListenOptions::from_args(a, &StoreSettings::default(), "kongctl listen", &ok_jq)
            .unwrap_err()
            .message
    }

    #[test]
    fn endpoint_from_public_url_joins_paths() {
        let f = |u: &str, p: &str| endpoint_from_public_url(u, p);
        assert_eq!(
            f("https://h.test", "/audit-logs").unwrap(),
            "https://h.test/audit-logs"
        );
        assert_eq!(
            f("https://h.test/forwarded/", "/audit-logs").unwrap(),
            "https://h.test/forwarded/audit-logs"
        );
        assert_eq!(
            f("https://h.test/base?q=1#f", "/").unwrap(),
            "https://h.test/base"
        );
        assert_eq!(
            f("://broken", "/audit-logs").unwrap_err(),
            "public URL must include scheme and host"
        );
    }

    #[test]
    fn validation_order_and_messages_match_the_original() {
        let mut a = args();
        a.positional = vec!["x".into()];
        a.jq = Some(".".into());
        assert_eq!(
            err(&a),
            "the audit-logs command does not accept positional arguments"
        );

        let mut a = args();
        a.authorization = Some("  ".into());
        assert_eq!(err(&a), "--authorization must not be empty");

        let mut a = args();
        a.detach = Some(true);
        a.tail = Some(true);
        assert_eq!(err(&a), "--detach is not supported with --tail");

        let mut a = args();
        a.jq = Some(".a".into());
        assert_eq!(err(&a), "--jq requires --tail");

        let mut a = args();
        a.read.grep = Some("x".into());
        assert_eq!(err(&a), "--grep requires --tail");
        a.tail = Some(true);
        a.read.grep = Some("a(".into());
        assert!(
            err(&a).starts_with("invalid --grep pattern: regex parse error:"),
            "{}",
            err(&a)
        );

        let mut a = args();
        a.tail = Some(true);
        a.jq = Some(".records[".into());
        let e = ListenOptions::from_args(&a, &StoreSettings::default(), "kongctl tail", &|_| {
            Err("invalid jq expression: boom".into())
        })
        .unwrap_err();
        assert_eq!(
            e.message,
            "invalid tail configuration: invalid jq expression: boom"
        );
        assert_eq!(e.usage_of.as_deref(), Some("kongctl tail"));

        let mut a = args();
        a.endpoint = None;
        assert_eq!(err(&a), "provide either --endpoint or --public-url");

        a.public_url = Some("://broken".into());
        assert_eq!(
            err(&a),
            "failed to build endpoint from --public-url and --path: public URL must include scheme and host"
        );

        let mut a = args();
        a.endpoint = Some("/relative".into());
        assert!(err(&a).starts_with("endpoint must be a valid URL: "));

        let mut a = args();
        a.log_format = "XML".into();
        assert_eq!(
            err(&a),
            "invalid log-format \"XML\", allowed values are: cef, json, cps"
        );

        let mut a = args();
        a.backfill = Some("soon".into());
        assert!(
            err(&a).starts_with("invalid --backfill \"soon\": "),
            "{}",
            err(&a)
        );

        let mut a = args();
        a.listen_address = " ".into();
        assert_eq!(err(&a), "listen address cannot be empty");

        let mut a = args();
        a.max_body_bytes = 0;
        assert_eq!(err(&a), "max-body-bytes must be greater than zero");
    }

    #[test]
    fn defaults_and_normalisation() {
        let mut a = args();
        a.log_format = " CEF ".into();
        a.path = "hooks".into();
        a.public_url = Some("https://ignored.test".into());
        let o = ListenOptions::from_args(&a, &StoreSettings::default(), "kongctl listen", &ok_jq)
            .unwrap();
        assert_eq!(o.log_format, LogFormat::Cef);
        assert_eq!(o.path, "/hooks");
        assert_eq!(
            o.endpoint.as_str(),
            "https://h.test/audit-logs",
            "--endpoint wins"
        );
        assert!(o.configure_webhook);
        assert_eq!(o.backfill, crate::replay::Backfill::Auto);
        assert!(!o.tail && !o.detach);
        assert_eq!(o.authorization_origin, AuthorizationOrigin::Generated);
        assert!(o.authorization.expose().starts_with("Bearer kongctl-"));
        assert_eq!(o.authorization.expose().len(), "Bearer kongctl-".len() + 64);
        assert!(o.warnings.is_empty());
        assert!(o.name.starts_with("kongctl-"), "{}", o.name);

        let mut a = args();
        a.endpoint = Some("http://h.test/a".into());
        a.listen_address = ":0".into();
        let o = ListenOptions::from_args(&a, &StoreSettings::default(), "kongctl listen", &ok_jq)
            .unwrap();
        assert_eq!(o.warnings.len(), 1);
        assert_eq!(o.listen_address, "0.0.0.0:0".parse().unwrap());
    }

    #[test]
    fn destination_names_are_sanitised() {
        assert_eq!(sanitize_name_component("My Host.local"), "my-host.local");
        assert_eq!(sanitize_name_component("a/b\\c"), "a-b-c");
        assert_eq!(sanitize_name_component("--x--"), "x");
        assert_eq!(sanitize_name_component(""), "unknown-host");
        assert_eq!(default_destination_name("Box", 42), "kongctl-box-42");
    }

    #[test]
    fn tail_defaults_only_when_unset() {
        let mut a = args();
        default_tail_if_unset(&mut a);
        assert_eq!(a.tail, Some(true));
        let mut a = args();
        a.tail = Some(false);
        default_tail_if_unset(&mut a);
        assert_eq!(a.tail, Some(false));
    }
}
