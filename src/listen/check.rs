//! The tunnel self-test (`--check off|warn|strict`, default `warn`): after
//! the socket is bound and before anything changes in Konnect, one probe
//! goes to the public endpoint (the full `--endpoint` URL, with this run's
//! authorization and a one-time token), while `listener::probe` answers on
//! the bound socket. Whether and how the probe arrived tells what Kong's
//! "No events arriving" checklist asks users to find out by hand:
//!
//! - it arrived, at the served path, with the authorization intact: fine;
//! - it arrived at another path, or with the authorization removed or
//!   changed (the tunnel rewrote it): Konnect's deliveries would get 404 or
//!   401;
//! - it did not arrive and something answered: the tunnel (or DNS) points
//!   at another program, port or path; its status is shown;
//! - no answer: the name does not resolve, TLS fails, the connection is
//!   refused, or nothing answers within [`PROBE_TIMEOUT`].
//!
//! `warn` prints the finding and the checklist on stderr and goes on;
//! `strict` fails before any Konnect change. The probe is bounded by
//! [`PROBE_TIMEOUT`] in all (resolving, connecting, TLS, answer), so a
//! tunnel URL that leads nowhere delays startup by at most that.

use std::time::Duration;

use url::Url;

use super::Run;
use crate::error::{CliError, exit_code};
use crate::konnect::error::redact_url;
use crate::listener::probe::{self, Arrival, ArrivalSlot, PROBE_HEADER};

/// The whole probe, from name resolution to the answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The environment variable that sets `--check` when the flag is not given.
pub const CHECK_ENV: &str = "KONGCTL_LISTEN_CHECK";

/// What `--check` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckMode {
    /// No probe.
    Off,
    /// Probe; a failure is a warning.
    #[default]
    Warn,
    /// Probe; a failure stops the run before any Konnect change.
    Strict,
}

impl CheckMode {
    /// `off`, `warn` or `strict` (any case), as in [`CHECK_ENV`].
    pub fn parse(raw: &str) -> Result<CheckMode, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(CheckMode::Off),
            "warn" => Ok(CheckMode::Warn),
            "strict" => Ok(CheckMode::Strict),
            _ => Err(format!(
                "invalid {CHECK_ENV} {raw:?}, allowed values are: off, warn, strict"
            )),
        }
    }
}

/// What the probe found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// It arrived at the served path with the authorization intact.
    Reached,
    /// It arrived, at another path.
    WrongPath { arrived: String },
    /// It arrived without its Authorization header, or with another value.
    AuthorizationRewritten { removed: bool },
    /// Something else answered, with this status.
    SomethingElse { status: u16, reason: String },
    /// The host name did not resolve.
    Dns(String),
    /// The TLS handshake failed.
    Tls(String),
    /// No connection could be made.
    Connect(String),
    /// No answer within [`PROBE_TIMEOUT`].
    Timeout,
    /// Any other failure of the request.
    Other(String),
}

impl Finding {
    /// The sentence for users, after `tunnel check: <endpoint> `.
    pub fn describe(&self, served_path: &str) -> String {
        match self {
            Finding::Reached => "reaches this listener".into(),
            Finding::WrongPath { arrived } => format!(
                "reaches this listener at path {arrived}, but the listener serves {served_path}: \
                 Konnect's deliveries would get 404; make the endpoint's path and --path agree, \
                 or fix the tunnel's path mapping"
            ),
            Finding::AuthorizationRewritten { removed: true } => {
                "reaches this listener, but the Authorization header was removed on the way: \
                 Konnect's deliveries would get 401; make the tunnel pass it through"
                    .into()
            }
            Finding::AuthorizationRewritten { removed: false } => {
                "reaches this listener, but the Authorization header was changed on the way: \
                 Konnect's deliveries would get 401; make the tunnel pass it through unchanged"
                    .into()
            }
            Finding::SomethingElse { status, reason } => format!(
                "does not reach this listener: something else answered {status}{}{reason} \
                 (the tunnel forwards to another program, port or path)",
                if reason.is_empty() { "" } else { " " },
            ),
            Finding::Dns(why) => {
                format!("does not reach this listener: the host name does not resolve ({why})")
            }
            Finding::Tls(why) => {
                format!("does not reach this listener: the TLS handshake failed ({why})")
            }
            Finding::Connect(why) => {
                format!("does not reach this listener: the connection failed ({why})")
            }
            Finding::Timeout => format!(
                "does not reach this listener: no answer within {}s",
                PROBE_TIMEOUT.as_secs()
            ),
            Finding::Other(why) => format!("does not reach this listener: {why}"),
        }
    }
}

/// Judges the probe: an arrival outranks whatever the client saw (a tunnel
/// may answer late or rewrite the answer); without one, the client's
/// outcome says what went wrong.
pub fn judge(
    arrival: Option<&Arrival>,
    served_path: &str,
    response: Result<(u16, String), Finding>,
) -> Finding {
    match arrival {
        Some(a) if a.path != served_path => Finding::WrongPath {
            arrived: a.path.clone(),
        },
        Some(a) if !a.authorization_intact => Finding::AuthorizationRewritten {
            removed: !a.authorization_present,
        },
        Some(_) => Finding::Reached,
        None => match response {
            Ok((status, reason)) => Finding::SomethingElse { status, reason },
            Err(f) => f,
        },
    }
}

/// Kong's "No events arriving" checklist, for this run.
pub fn checklist(path: &str, listen_address: &str) -> String {
    format!(
        "Check:\n  \
         - The destination endpoint includes the listener path ({path}).\n  \
         - The tunnel forwards the HTTPS endpoint to the local listen address and port ({listen_address}).\n  \
         - The listener is running and bound to the expected --listen-address.\n  \
         - The Authorization header configuration matches on both sides."
    )
}

impl Run {
    /// The tunnel self-test on the bound `listener` (a no-op with `--check
    /// off`). Returns the warning shown, if any; with `--check strict` a
    /// failed check is an error. A stop request during the probe ends the
    /// run, as during the rest of startup.
    pub(super) async fn check_tunnel(
        &self,
        listener: &tokio::net::TcpListener,
        bound: std::net::SocketAddr,
    ) -> Result<Option<String>, CliError> {
        let mode = self.opts.check;
        if mode == CheckMode::Off {
            return Ok(None);
        }
        let token = one_time_token();
        let slot = ArrivalSlot::default();
        let answering = probe::answer_probes(
            listener,
            token.clone(),
            self.opts.authorization.expose().to_string(),
            slot.clone(),
        );
        let sending = send_probe(
            &self.opts.endpoint,
            self.opts.authorization.expose(),
            &token,
            self.opts.skip_ssl_verification,
        );
        let response = tokio::select! {
            _ = answering => unreachable!("the stand-in answers until dropped"),
            _ = self.signals.stop.cancelled() => {
                return Err(CliError::new("interrupted during startup").with_code(exit_code::INTERRUPTED));
            }
            r = sending => r,
        };
        let finding = judge(slot.get().as_ref(), &self.opts.path, response);
        let endpoint = redact_url(&self.opts.endpoint);
        let text = format!(
            "tunnel check: {endpoint} {}",
            finding.describe(&self.opts.path)
        );
        if finding == Finding::Reached {
            tracing::info!("{text}");
            return Ok(None);
        }
        tracing::warn!(finding = ?finding, "{text}");
        let checklist = checklist(&self.opts.path, &bound.to_string());
        match mode {
            CheckMode::Strict => Err(CliError::new(text).with_hint(format!(
                "nothing was changed in Konnect.\n{checklist}\n--check warn starts anyway, --check off skips the check"
            ))),
            _ => {
                let warning = format!(
                    "{text}\n{checklist}\nStarting anyway (--check strict stops here instead, --check off skips the check)."
                );
                eprintln!("Warning: {warning}");
                Ok(Some(warning))
            }
        }
    }
}

/// 128 random bits, hex: recognises this run's probe and nothing else.
fn one_time_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// POSTs the probe (empty body) to `endpoint`; the status and reason that
/// came back, or why none did.
async fn send_probe(
    endpoint: &Url,
    authorization: &str,
    token: &str,
    skip_ssl_verification: bool,
) -> Result<(u16, String), Finding> {
    // As KonnectClient: ring for rustls; an Err means it is installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(PROBE_TIMEOUT)
        .timeout(PROBE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        // Konnect skips certificate checks when told to; so does the probe.
        .danger_accept_invalid_certs(skip_ssl_verification)
        .user_agent(concat!(
            "kongctl/",
            env!("CARGO_PKG_VERSION"),
            " (tunnel check)"
        ))
        .build()
        .map_err(|e| Finding::Other(crate::konnect::error::error_chain(&e)))?;
    let result = client
        .post(endpoint.clone())
        .header(reqwest::header::AUTHORIZATION, authorization)
        .header(PROBE_HEADER, token)
        .header(reqwest::header::CONTENT_TYPE, "text/plain")
        .send()
        .await;
    match result {
        Ok(resp) => {
            let status = resp.status();
            Ok((
                status.as_u16(),
                status.canonical_reason().unwrap_or("").to_string(),
            ))
        }
        Err(e) => Err(classify(&e)),
    }
}

/// Which of the failures a request error is, from its source chain.
fn classify(e: &reqwest::Error) -> Finding {
    let chain = crate::konnect::error::error_chain(e);
    if e.is_timeout() {
        return Finding::Timeout;
    }
    if involves_tls(e) {
        return Finding::Tls(innermost(e));
    }
    let lower = chain.to_ascii_lowercase();
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        Finding::Dns(innermost(e))
    } else if e.is_connect() {
        Finding::Connect(innermost(e))
    } else {
        Finding::Other(chain)
    }
}

/// Whether a rustls error is in the chain. An `io::Error` wrapping another
/// error does not list it as its source (its `source` is the wrapped
/// error's source), and the TLS layer's error comes wrapped in one or two
/// of them, so those are opened too.
fn involves_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.downcast_ref::<rustls::Error>().is_some() {
        return true;
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>()
        && let Some(inner) = io.get_ref()
        && involves_tls(inner)
    {
        return true;
    }
    e.source().is_some_and(involves_tls)
}

/// The last error of the chain: the specific cause ("Connection refused
/// (os error 111)", "Name or service not known").
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(path: &str, present: bool, intact: bool) -> Arrival {
        Arrival {
            path: path.into(),
            authorization_present: present,
            authorization_intact: intact,
        }
    }

    #[test]
    fn an_arrival_outranks_the_answer() {
        let ok = arrival("/audit-logs", true, true);
        assert_eq!(
            judge(Some(&ok), "/audit-logs", Err(Finding::Timeout)),
            Finding::Reached
        );
        assert_eq!(
            judge(
                Some(&arrival("/", true, true)),
                "/audit-logs",
                Ok((204, String::new()))
            ),
            Finding::WrongPath {
                arrived: "/".into()
            }
        );
        assert_eq!(
            judge(
                Some(&arrival("/audit-logs", false, false)),
                "/audit-logs",
                Ok((204, String::new()))
            ),
            Finding::AuthorizationRewritten { removed: true }
        );
        assert_eq!(
            judge(
                Some(&arrival("/audit-logs", true, false)),
                "/audit-logs",
                Ok((204, String::new()))
            ),
            Finding::AuthorizationRewritten { removed: false }
        );
        assert_eq!(
            judge(None, "/audit-logs", Ok((502, "Bad Gateway".into()))),
            Finding::SomethingElse {
                status: 502,
                reason: "Bad Gateway".into()
            }
        );
        assert_eq!(
            judge(None, "/audit-logs", Err(Finding::Timeout)),
            Finding::Timeout
        );
    }

    #[test]
    fn each_finding_has_its_own_message() {
        let all = [
            Finding::Reached,
            Finding::WrongPath {
                arrived: "/x".into(),
            },
            Finding::AuthorizationRewritten { removed: true },
            Finding::AuthorizationRewritten { removed: false },
            Finding::SomethingElse {
                status: 404,
                reason: "Not Found".into(),
            },
            Finding::Dns("no such host".into()),
            Finding::Tls("bad cert".into()),
            Finding::Connect("refused".into()),
            Finding::Timeout,
            Finding::Other("boom".into()),
        ];
        let texts: Vec<String> = all.iter().map(|f| f.describe("/audit-logs")).collect();
        for (i, a) in texts.iter().enumerate() {
            for b in &texts[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(
            texts[4],
            "does not reach this listener: something else answered 404 Not Found \
             (the tunnel forwards to another program, port or path)"
        );
        assert!(texts[1].contains("at path /x, but the listener serves /audit-logs"));
    }

    #[test]
    fn modes_parse_from_the_environment_value() {
        assert_eq!(CheckMode::parse(" Strict "), Ok(CheckMode::Strict));
        assert_eq!(CheckMode::parse("off"), Ok(CheckMode::Off));
        assert_eq!(CheckMode::parse("warn"), Ok(CheckMode::Warn));
        assert_eq!(
            CheckMode::parse("loud"),
            Err(
                "invalid KONGCTL_LISTEN_CHECK \"loud\", allowed values are: off, warn, strict"
                    .into()
            )
        );
    }

    #[test]
    fn tokens_are_fresh() {
        let a = one_time_token();
        assert_eq!(a.len(), 32);
        assert_ne!(a, one_time_token());
    }
}
