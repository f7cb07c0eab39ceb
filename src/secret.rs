//! [`Secret`]: a credential (a PAT, a login access token, a webhook's
//! authorization value) that never shows up in Debug output.
//!
//! It has a module of its own because both sides use it: `config` resolves
//! the PAT, `konnect` sends it and reads login tokens. Neither should have to
//! import the other for it.

use std::fmt;

/// A secret that never shows up in Debug output (and has no Display).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_debug_print() {
        let s = Secret::new("kpat_very_secret");
        assert!(!format!("{s:?}").contains("very_secret"));
        assert_eq!(s.expose(), "kpat_very_secret");
    }
}
