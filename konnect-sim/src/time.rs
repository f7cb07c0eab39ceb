//! Timestamps as Konnect writes them: RFC 3339 in UTC.
//!
//! Instants are kept as milliseconds since the Unix epoch ([`Millis`]).
//! Formatting uses `humantime`; parsing is done here because `humantime`
//! accepts only the `Z` form, while clients may send any RFC 3339 offset
//! (`2025-05-16T02:28:01+02:00`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since 1970-01-01T00:00:00Z.
pub(crate) type Millis = i64;

/// One day in milliseconds.
pub(crate) const DAY: Millis = 24 * 60 * 60 * 1000;

/// What Konnect's specs call the initial value of unset timestamps
/// ("Initial value is 0001-01-01T00:00:0Z", written here as valid RFC 3339).
pub(crate) const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The current time.
pub(crate) fn now() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as Millis)
        .unwrap_or(0)
}

fn system_time(ms: Millis) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// `2025-05-16T00:28:01Z`, the form of `event_ts` in Konnect records.
pub(crate) fn format_seconds(ms: Millis) -> String {
    humantime::format_rfc3339_seconds(system_time(ms)).to_string()
}

/// `2025-05-16T00:28:01.123Z`, used for `created_at`, `updated_at` and logs.
pub(crate) fn format_millis(ms: Millis) -> String {
    humantime::format_rfc3339_millis(system_time(ms)).to_string()
}

/// `Wed, 25 Nov 2026 21:28:22 GMT`, the form of a cookie's `Expires`.
pub(crate) fn format_http_date(ms: Millis) -> String {
    httpdate::fmt_http_date(system_time(ms))
}

/// Seconds precision when that loses nothing, milliseconds otherwise.
pub(crate) fn format_exact(ms: Millis) -> String {
    if ms % 1000 == 0 {
        format_seconds(ms)
    } else {
        format_millis(ms)
    }
}

/// Parses an RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`).
/// Digits of the fraction beyond milliseconds are ignored.
pub(crate) fn parse_rfc3339(text: &str) -> Option<Millis> {
    let b = text.as_bytes();
    let number = |from: usize, to: usize| -> Option<i64> {
        let digits = b.get(from..to)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')),
        )
    };
    let expect = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));

    let year = number(0, 4)?;
    let month = number(5, 7)?;
    let day = number(8, 10)?;
    let hour = number(11, 13)?;
    let minute = number(14, 16)?;
    let second = number(17, 19)?;
    if !(expect(4, b"-")
        && expect(7, b"-")
        && expect(10, b"Tt")
        && expect(13, b":")
        && expect(16, b":"))
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if expect(at, b".") {
        let start = at + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start {
            return None;
        }
        for place in 0..3 {
            millis = millis * 10
                + b.get(start + place)
                    .filter(|_| start + place < end)
                    .map_or(0, |d| i64::from(d - b'0'));
        }
        at = end;
    }
    let offset_minutes = match b.get(at)? {
        b'Z' | b'z' => {
            at += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let hours = number(at + 1, at + 3)?;
            let minutes = number(at + 4, at + 6)?;
            if !expect(at + 3, b":") || hours > 23 || minutes > 59 {
                return None;
            }
            at += 6;
            let total = hours * 60 + minutes;
            if *sign == b'-' { -total } else { total }
        }
        _ => return None,
    };
    if at != b.len()
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // A leap second (:60) is read as the last millisecond-precise instant of
    // its minute's end; Konnect never emits one.
    let second = second.min(59);
    let days = days_from_civil(year, month, day);
    let seconds = ((days * 24 + hour) * 60 + minute) * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_konnect_does() {
        assert_eq!(format_seconds(1_684_196_881_193), "2023-05-16T00:28:01Z");
        assert_eq!(format_millis(1_684_196_881_193), "2023-05-16T00:28:01.193Z");
        assert_eq!(format_exact(1_684_196_881_000), "2023-05-16T00:28:01Z");
        assert_eq!(format_exact(1_684_196_881_001), "2023-05-16T00:28:01.001Z");
    }

    #[test]
    fn parses_utc_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2023-05-16T00:28:01Z"),
            Some(1_684_196_881_000)
        );
        assert_eq!(
            parse_rfc3339("2023-05-16t00:28:01.193z"),
            Some(1_684_196_881_193)
        );
        assert_eq!(
            parse_rfc3339("2023-05-16T00:28:01.1Z"),
            Some(1_684_196_881_100)
        );
        assert_eq!(
            parse_rfc3339("2023-05-16T00:28:01.193456789Z"),
            Some(1_684_196_881_193)
        );
        assert_eq!(
            parse_rfc3339("2023-05-16T02:28:01+02:00"),
            Some(1_684_196_881_000)
        );
        assert_eq!(
            parse_rfc3339("2023-05-15T23:58:01-00:30"),
            Some(1_684_196_881_000)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00Z"),
            Some(1_709_208_000_000)
        );
        assert_eq!(parse_rfc3339(ZERO_TIME), Some(-62_135_596_800_000));
    }

    #[test]
    fn round_trips_what_it_formats() {
        for ms in [0, 1, 999, 1_700_000_000_000, 1_750_688_927_556] {
            assert_eq!(parse_rfc3339(&format_millis(ms)), Some(ms));
        }
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for bad in [
            "",
            "yesterday",
            "2023-05-16",
            "2023-05-16T00:28:01",
            "2023-05-16 00:28:01Z",
            "2023-13-16T00:28:01Z",
            "2023-02-29T00:28:01Z",
            "2023-05-16T24:00:00Z",
            "2023-05-16T00:28:01.Z",
            "2023-05-16T00:28:01+0200",
            "2023-05-16T00:28:01Zjunk",
            "+2023-05-16T00:28:01Z",
            "1684196881",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }
}
