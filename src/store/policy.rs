//! When the store rotates and what it keeps: `--max-file-size`,
//! `--rotate-every`, `--retain` and `--retain-size` (or the same keys under
//! `audit-logs:` in the profile's config), read here from the strings the
//! user gave. Choosing between flag, environment and config file is the
//! caller's (`crate::listen::options`).

use std::time::Duration;

/// `--max-file-size` when none is given: 128 MiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 128 << 20;

/// The shortest `--rotate-every` or `--retain`: rotation by time is checked
/// once a second, so anything shorter would not be honoured.
pub const MIN_DURATION: Duration = Duration::from_secs(1);

/// Validated rotation and retention settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorePolicy {
    /// Rotate once the active file reaches this many bytes; `None` never.
    pub max_file_size: Option<u64>,
    /// Rotate an active file whose first record was received this long ago.
    pub rotate_every: Option<Duration>,
    /// Delete closed segments whose newest record is older than this.
    pub retain: Option<Duration>,
    /// Keep the closed (compressed) segments under this many bytes.
    pub retain_size: Option<u64>,
}

impl Default for StorePolicy {
    fn default() -> StorePolicy {
        StorePolicy {
            max_file_size: Some(DEFAULT_MAX_FILE_SIZE),
            rotate_every: None,
            retain: None,
            retain_size: None,
        }
    }
}

impl StorePolicy {
    /// Never rotates or deletes: one `events.jsonl`, as before rotation
    /// existed.
    pub fn keep_one_file() -> StorePolicy {
        StorePolicy {
            max_file_size: None,
            ..StorePolicy::default()
        }
    }
}

/// Reads a size: a whole number of bytes, optionally followed by `B`,
/// `KiB`, `MiB` or `GiB` (any case, blanks allowed before the unit).
pub fn parse_size(text: &str) -> Result<u64, String> {
    const HINT: &str = "use a whole number of bytes, optionally with KiB, MiB or GiB (e.g. 128MiB)";
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(HINT.into());
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "kib" => 10,
        "mib" => 20,
        "gib" => 30,
        _ => return Err(HINT.into()),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| "too large".to_string())
}

/// Reads a duration such as `90s`, `15m`, `1h30m`, `7d`
/// ([`crate::time::parse_duration`]); `0` means off. Anything else shorter
/// than [`MIN_DURATION`] (or negative) is refused.
pub fn parse_duration(text: &str) -> Result<Option<Duration>, String> {
    let d = crate::time::parse_duration(text)
        .map_err(|e| format!("{e}; use a duration such as 90s, 15m, 12h or 7d"))?;
    if d.is_zero() {
        return Ok(None);
    }
    if d.is_negative() || d.unsigned_abs() < MIN_DURATION {
        return Err("must be at least 1s (or 0 for off)".into());
    }
    Ok(Some(d.unsigned_abs()))
}

/// `--max-file-size` and `--retain-size`: `0` means off.
pub fn parse_optional_size(text: &str) -> Result<Option<u64>, String> {
    parse_size(text).map(|n| (n > 0).then_some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_bytes_and_binary_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size(" 128 MiB "), Ok(128 << 20));
        assert_eq!(parse_size("2gib"), Ok(2 << 30));
        for bad in ["", "MiB", "-1", "1.5GiB", "10MB", "10 M", "ten"] {
            assert!(
                parse_size(bad).unwrap_err().contains("KiB, MiB or GiB"),
                "{bad}"
            );
        }
        assert_eq!(parse_size("17179869184GiB"), Err("too large".into()));
        assert_eq!(parse_optional_size("0"), Ok(None));
        assert_eq!(parse_optional_size("1KiB"), Ok(Some(1024)));
    }

    #[test]
    fn zero_is_off_and_subsecond_or_negative_is_refused() {
        assert_eq!(parse_duration("0"), Ok(None));
        assert_eq!(parse_duration("90s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_duration("1h30m"), Ok(Some(Duration::from_secs(5400))));
        assert_eq!(
            parse_duration("7d"),
            Ok(Some(Duration::from_secs(7 * 86400)))
        );
        assert_eq!(
            parse_duration("30days"),
            Ok(Some(Duration::from_secs(30 * 86400)))
        );
        assert!(parse_duration("500ms").unwrap_err().contains("at least 1s"));
        assert!(parse_duration("-1h").unwrap_err().contains("at least 1s"));
        assert!(parse_duration("soon").unwrap_err().contains("such as 90s"));
    }
}
