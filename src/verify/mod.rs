//! Ed25519 signature checks of audit records: Konnect signs every webhook
//! record (`sig`) and publishes its public keys as a JWKS; this module
//! checks records against them, live in the listener and offline on
//! stored or exported files.
//!
//! - [`jwks`]: the keys, read from Konnect's JWKS document.
//! - [`check`]: one record's check on its raw bytes, Kong's documented
//!   scheme (which bytes are signed, per format), and its [`Outcome`].
//! - [`batch`]: many records against one key at once, with single
//!   verification's answers.
//! - [`live`]: the listener's verifier (`listen`/`tail --verify`): counts,
//!   a JWKS fetched again when a record fails (key rotation), and under
//!   `reject` the stage before the store that sets records aside in
//!   `rejected.jsonl`.
//! - [`pool`]: under `reject`, the checker threads that check the records
//!   of concurrent requests together.
//! - [`checker`]: under `warn`, the checker that follows the store and
//!   checks every stored record once, off the request path.
//! - [`offline`]: `get audit-logs --stored|--file … --verify`, the tamper
//!   check of an archive.
//!
//! Fetching the JWKS is `crate::konnect`'s; where records come from and go
//! to is the listener's and the sources'.

pub mod batch;
pub mod check;
pub mod checker;
pub mod jwks;
pub mod live;
pub mod offline;
pub mod pool;

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD_INDIFFERENT};
use serde::{Deserialize, Serialize};

pub use check::{Kind, Outcome};
pub use jwks::{JwksError, KeySet};
pub use live::LiveVerifier;

/// base64url, as Kong writes signatures and keys (unpadded; padding is
/// accepted when reading).
pub(crate) const BASE64URL: GeneralPurpose = GeneralPurpose::new(&URL_SAFE, NO_PAD_INDIFFERENT);

/// The file the listener saves the JWKS in, in the profile directory.
pub const JWKS_FILE: &str = "jwks.json";
/// Where `--verify reject` puts the records it refuses, in the profile
/// directory.
pub const REJECTED_FILE: &str = "rejected.jsonl";

/// What the listener does with signatures (`--verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No check, no JWKS fetch.
    Off,
    /// Check and count; every record is stored.
    Warn,
    /// Check and count; invalid and unsigned records go to
    /// `rejected.jsonl` instead of `events.jsonl`.
    Reject,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Warn => "warn",
            Mode::Reject => "reject",
        }
    }
}

/// How many records of each [`Kind`]: `listener.json`'s and `ps -o
/// json`'s `"verify"` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    #[serde(default)]
    pub valid: u64,
    #[serde(default)]
    pub invalid: u64,
    #[serde(default)]
    pub unsigned: u64,
    #[serde(default)]
    pub unverifiable: u64,
    /// Records stored and not checked yet (`--verify warn` checks after
    /// storing; always 0 under `reject`, which checks first).
    #[serde(default)]
    pub pending: u64,
}

impl Counts {
    pub fn add(&mut self, kind: Kind, n: u64) {
        *self.slot(kind) += n;
    }

    pub fn get(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Valid => self.valid,
            Kind::Invalid => self.invalid,
            Kind::Unsigned => self.unsigned,
            Kind::Unverifiable => self.unverifiable,
        }
    }

    fn slot(&mut self, kind: Kind) -> &mut u64 {
        match kind {
            Kind::Valid => &mut self.valid,
            Kind::Invalid => &mut self.invalid,
            Kind::Unsigned => &mut self.unsigned,
            Kind::Unverifiable => &mut self.unverifiable,
        }
    }
}
