//! The error a command ends with, and the exit codes.
//!
//! Messages keep the original's shape, `Error: <what failed>: <why>` on
//! stderr, which users' scripts grep; a usage error adds the original's
//! `Run '<command> --help' for usage` line, and some errors add a hint line
//! saying what to do.

use std::fmt;

/// Exit codes. The original exits 1 on every failure; scripts rely on it, so
/// 1 stays the general failure.
pub mod exit_code {
    /// The command did what was asked (including a listener stopped with
    /// Ctrl+C whose Konnect cleanup succeeded).
    pub const SUCCESS: i32 = 0;
    /// Any failure: bad flags or config, a Konnect error, a listener error,
    /// a cleanup that could not finish.
    pub const FAILURE: i32 = 1;
    /// `listen --dry-run` only: a bad flag, value or config file
    /// (`EX_CONFIG` of sysexits.h), as opposed to 1, Konnect or the tunnel
    /// stopping a start.
    pub const CONFIG: i32 = 78;
    /// A second Ctrl+C interrupted cleanup; what was left is printed.
    pub const INTERRUPTED: i32 = 130;
}

/// A failure to report to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub message: String,
    /// For usage errors: the command path for `Run '<path> --help' for usage`.
    pub usage_of: Option<String>,
    /// What the user can do about it.
    pub hint: Option<String>,
    pub code: i32,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            usage_of: None,
            hint: None,
            code: exit_code::FAILURE,
        }
    }

    pub fn usage(message: impl Into<String>, command_path: &str) -> Self {
        CliError {
            usage_of: Some(command_path.to_string()),
            ..CliError::new(message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }
}

impl fmt::Display for CliError {
    /// The full text for stderr, without a trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nHint: {hint}")?;
        }
        if let Some(path) = &self.usage_of {
            write!(f, "\n\nRun '{path} --help' for usage")?;
        }
        Ok(())
    }
}

impl std::error::Error for CliError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_look_like_the_original() {
        let e = CliError::usage("--jq requires --tail", "kongctl listen");
        assert_eq!(
            e.to_string(),
            "Error: --jq requires --tail\n\nRun 'kongctl listen --help' for usage"
        );
        assert_eq!(e.code, exit_code::FAILURE);
    }

    #[test]
    fn hints_follow_the_message() {
        let e = CliError::new("boom").with_hint("do this");
        assert_eq!(e.to_string(), "Error: boom\nHint: do this");
    }
}
