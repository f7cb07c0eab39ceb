//! The emulator's configuration: accepted tokens, delivery batching and retry
//! timing, paging defaults and the random seed.
//!
//! Everything here is fixed for the life of a [`crate::Sim`]; the mutable state
//! (webhooks, destinations, deliveries) lives in `state.rs`.

use std::fmt;
use std::time::Duration;

/// The personal access token every emulator accepts unless configured otherwise.
///
/// It is published in this source file on purpose: the emulator is a test fake
/// and must only ever listen on loopback (the binary refuses anything else
/// without `--allow-remote`).
pub const DEMO_PAT: &str = "kpat_sim8mQ2vXk4TzR7wJ9nB3cL6pF1hD5gY0aUeWoSiKtNqMrPl";

/// The Konnect regions, in the order of the OpenAPI `servers` list.
///
/// The region of an API request is the first label of its `Host` header when
/// that label is one of these, otherwise `us`.
pub const REGIONS: [&str; 6] = ["us", "eu", "au", "me", "in", "sg"];

/// How many retries Konnect makes after a failed delivery attempt (documented:
/// "at most 4 retries").
pub const MAX_RETRIES: usize = 4;

/// Configuration of a [`crate::Sim`].
#[derive(Clone)]
pub struct SimConfig {
    /// Tokens accepted in `Authorization: Bearer <token>` for every call.
    /// The first one is what [`crate::Sim::pat`] returns.
    pub pats: Vec<String>,
    /// Tokens accepted for reads only: mutations with them get 403.
    pub readonly_pats: Vec<String>,
    /// Records per delivered batch (one POST). Must be at least 1.
    pub batch_size: usize,
    /// Wait before retry 1, 2, 3, 4. Fewer entries repeat the last one; an
    /// empty list retries immediately. There are never more than
    /// [`MAX_RETRIES`] retries.
    pub retry_waits: Vec<Duration>,
    /// Limit for one delivery attempt (connect, send, read the response).
    pub delivery_timeout: Duration,
    /// `page[size]` of the destination list when the request gives none.
    pub page_size_default: usize,
    /// Seed of the generator of ids, tokens and records, so runs are
    /// reproducible apart from timestamps.
    pub seed: u64,
    /// Lifetime of the access tokens the login refresh endpoint issues
    /// (Konnect: an hour).
    pub login_ttl: Duration,
}

impl Default for SimConfig {
    /// Production-like timing (retry waits of 1, 2, 4 and 8 seconds) and the
    /// demo PAT.
    fn default() -> Self {
        SimConfig {
            pats: vec![DEMO_PAT.to_string()],
            readonly_pats: Vec::new(),
            batch_size: 50,
            retry_waits: [1, 2, 4, 8].map(Duration::from_secs).to_vec(),
            delivery_timeout: Duration::from_secs(10),
            page_size_default: 10,
            // "konnect" in ASCII.
            seed: 0x006b_6f6e_6e65_6374,
            login_ttl: Duration::from_secs(3600),
        }
    }
}

impl SimConfig {
    /// Like [`SimConfig::default`], with retry waits of a few milliseconds and
    /// a shorter delivery timeout, so that retry tests take no time.
    pub fn for_tests() -> Self {
        SimConfig {
            retry_waits: [2, 4, 8, 16].map(Duration::from_millis).to_vec(),
            delivery_timeout: Duration::from_secs(5),
            ..SimConfig::default()
        }
    }

    /// The wait before retry number `retry` (0-based).
    pub(crate) fn retry_wait(&self, retry: usize) -> Duration {
        match self.retry_waits.get(retry) {
            Some(wait) => *wait,
            None => self.retry_waits.last().copied().unwrap_or(Duration::ZERO),
        }
    }
}

impl fmt::Debug for SimConfig {
    /// Token values are never printed, only how many there are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("pats", &format_args!("<{} redacted>", self.pats.len()))
            .field(
                "readonly_pats",
                &format_args!("<{} redacted>", self.readonly_pats.len()),
            )
            .field("batch_size", &self.batch_size)
            .field("retry_waits", &self.retry_waits)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("page_size_default", &self.page_size_default)
            .field("seed", &self.seed)
            .field("login_ttl", &self.login_ttl)
            .finish()
    }
}

/// The region named by a `Host` header value: its first label if that is a
/// Konnect region, otherwise `us`.
pub(crate) fn region_of_host(host: &str) -> &'static str {
    let label = host.split(['.', ':']).next().unwrap_or("");
    REGIONS
        .iter()
        .find(|region| region.eq_ignore_ascii_case(label))
        .copied()
        .unwrap_or("us")
}

/// Which Konnect host a request was sent to, as its `Host` header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostKind {
    /// `<region>.…` (`us.api.konghq.com`).
    Regional,
    /// `global.…`.
    Global,
    /// Anything else (`127.0.0.1:PORT`): plays every host.
    Any,
}

/// The kind of host a `Host` header value names, by its first label.
pub(crate) fn host_kind(host: &str) -> HostKind {
    let label = host.split(['.', ':']).next().unwrap_or("");
    if label.eq_ignore_ascii_case("global") {
        HostKind::Global
    } else if REGIONS.iter().any(|r| r.eq_ignore_ascii_case(label)) {
        HostKind::Regional
    } else {
        HostKind::Any
    }
}

/// The canonical spelling of `region` if it is a Konnect region.
pub(crate) fn known_region(region: &str) -> Option<&'static str> {
    REGIONS
        .iter()
        .find(|known| known.eq_ignore_ascii_case(region))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_comes_from_the_first_host_label() {
        assert_eq!(region_of_host("eu.api.konghq.com"), "eu");
        assert_eq!(region_of_host("SG.api.konghq.com:443"), "sg");
        assert_eq!(region_of_host("global.api.konghq.com"), "us");
        assert_eq!(region_of_host("127.0.0.1:8080"), "us");
        assert_eq!(region_of_host("au:8080"), "au");
        assert_eq!(region_of_host(""), "us");
    }

    #[test]
    fn host_kind_comes_from_the_first_label() {
        assert_eq!(host_kind("global.api.konghq.com"), HostKind::Global);
        assert_eq!(host_kind("eu.api.konghq.com:443"), HostKind::Regional);
        assert_eq!(host_kind("127.0.0.1:8080"), HostKind::Any);
        assert_eq!(host_kind("localhost"), HostKind::Any);
    }

    #[test]
    fn retry_waits_repeat_the_last_entry() {
        let config = SimConfig {
            retry_waits: vec![Duration::from_millis(1), Duration::from_millis(5)],
            ..SimConfig::default()
        };
        assert_eq!(config.retry_wait(0), Duration::from_millis(1));
        assert_eq!(config.retry_wait(1), Duration::from_millis(5));
        assert_eq!(config.retry_wait(3), Duration::from_millis(5));
        let none = SimConfig {
            retry_waits: vec![],
            ..SimConfig::default()
        };
        assert_eq!(none.retry_wait(2), Duration::ZERO);
    }

    #[test]
    fn debug_output_hides_tokens() {
        let text = format!("{:?}", SimConfig::default());
        assert!(!text.contains(DEMO_PAT), "{text}");
        assert!(text.contains("<1 redacted>"), "{text}");
    }
}
