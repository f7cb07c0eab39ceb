//! Timestamps as Konnect writes them: RFC 3339 in UTC.
//!
//! Instants are kept as milliseconds since the Unix epoch ([`Millis`]);
//! `jiff` reads and writes them. Parsing checks the RFC 3339 layout first,
//! because jiff also reads ISO 8601 and Temporal forms that the specs'
//! `format: date-time` excludes.

use std::ops::Range;

use jiff::Timestamp;
use jiff::fmt::rfc2822::DateTimePrinter;

/// Milliseconds since 1970-01-01T00:00:00Z.
pub(crate) type Millis = i64;

/// One day in milliseconds.
pub(crate) const DAY: Millis = 24 * 60 * 60 * 1000;

/// What Konnect's specs call the initial value of unset timestamps
/// ("Initial value is 0001-01-01T00:00:0Z", written here as valid RFC 3339).
pub(crate) const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The current time.
pub(crate) fn now() -> Millis {
    Timestamp::now().as_millisecond()
}

/// The instant `ms`, or the nearest end of jiff's range (years -9999 to
/// 9999) beyond it: only a saturated expiry gets there.
fn timestamp(ms: Millis) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// `2025-05-16T00:28:01Z`, the form of `event_ts` in Konnect records.
pub(crate) fn format_seconds(ms: Millis) -> String {
    format!("{:.0}", timestamp(ms))
}

/// `2025-05-16T00:28:01.123Z`, used for `created_at`, `updated_at` and logs.
pub(crate) fn format_millis(ms: Millis) -> String {
    format!("{:.3}", timestamp(ms))
}

/// `Wed, 25 Nov 2026 21:28:22 GMT`, the form of a cookie's `Expires`.
/// Instants before 1970 are written as 1970 (RFC 9110 has no negative
/// years; only expiries, which are in the future, are written).
pub(crate) fn format_http_date(ms: Millis) -> String {
    DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&timestamp(ms.max(0)))
        .expect("years 1970 to 9999 have an RFC 9110 form")
}

/// Seconds precision when that loses nothing, milliseconds otherwise.
pub(crate) fn format_exact(ms: Millis) -> String {
    if ms % 1000 == 0 {
        format_seconds(ms)
    } else {
        format_millis(ms)
    }
}

/// Parses an RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`,
/// `T` and `Z` in either case). Digits of the fraction beyond milliseconds
/// are ignored; a leap second (`:60`) is read as `:59`, as jiff does.
///
/// The layout is checked here: jiff would also take a space for the `T`,
/// `+0200` or `+02`, a `,` before the fraction, a `[zone]` suffix, the basic
/// format (`20250516T002801Z`), signed six-digit years and offsets of 24 or
/// 25 hours, none of which is an RFC 3339 `date-time`.
pub(crate) fn parse_rfc3339(text: &str) -> Option<Millis> {
    let b = text.as_bytes();
    let digits = |range: Range<usize>| {
        b.get(range)
            .is_some_and(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit))
    };
    let is = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    let layout = digits(0..4)
        && is(4, b"-")
        && digits(5..7)
        && is(7, b"-")
        && digits(8..10)
        && is(10, b"Tt")
        && digits(11..13)
        && is(13, b":")
        && digits(14..16)
        && is(16, b":")
        && digits(17..19);
    if !layout {
        return None;
    }
    let mut fraction = 19..19;
    if is(19, b".") {
        let end = 20 + b[20..].iter().take_while(|d| d.is_ascii_digit()).count();
        if end == 20 {
            return None;
        }
        fraction = 20..end;
    }
    let offset = &text[fraction.end..];
    let offset_ok = match offset.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let two = |tens: u8, ones: u8| {
                (tens.is_ascii_digit() && ones.is_ascii_digit())
                    .then(|| (tens - b'0') * 10 + (ones - b'0'))
            };
            two(*h1, *h2).is_some_and(|hours| hours <= 23)
                && two(*m1, *m2).is_some_and(|minutes| minutes <= 59)
        }
        _ => false,
    };
    if !offset_ok {
        return None;
    }
    // Only milliseconds are kept: the fraction is cut there, so that jiff
    // (which reads at most nine digits) sees at most three.
    let kept = if fraction.is_empty() {
        19
    } else {
        fraction.end.min(fraction.start + 3)
    };
    let text = format!("{}{offset}", &text[..kept]);
    text.parse::<Timestamp>()
        .ok()
        .map(Timestamp::as_millisecond)
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
            "2023-05-16T00:28:01+02:60",
            "2023-05-16T00:28:01Zjunk",
            "+2023-05-16T00:28:01Z",
            "1684196881",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    /// Forms jiff reads (ISO 8601, Temporal) that are not RFC 3339: the
    /// specs' `date-time` excludes them, and so do Konnect's 400s.
    #[test]
    fn rejects_iso8601_forms_that_jiff_would_read() {
        for bad in [
            "2023-05-16 00:28:01Z",
            "2023-05-16T00:28:01+02",
            "2023-05-16T00:28:01+0200",
            "2023-05-16T00:28:01,5Z",
            "2023-05-16T00:28:01Z[UTC]",
            "2023-05-16T00:28:01+02:00[Europe/Paris]",
            "20230516T002801Z",
            "2023-05-16T00:28Z",
            "+002023-05-16T00:28:01Z",
            "2023-05-16T00:28:01+24:00",
        ] {
            assert!(
                bad.parse::<Timestamp>().is_ok(),
                "{bad:?} is a form jiff reads"
            );
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keeps_milliseconds_of_long_fractions_and_reads_a_leap_second_as_59() {
        assert_eq!(
            parse_rfc3339("2023-05-16T00:28:01.1934567891234Z"),
            Some(1_684_196_881_193)
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.9999Z"), Some(-1));
        assert_eq!(
            parse_rfc3339("2023-05-16T23:59:60Z"),
            parse_rfc3339("2023-05-16T23:59:59Z")
        );
        assert_eq!(
            parse_rfc3339("2023-05-16T00:28:01-00:00"),
            Some(1_684_196_881_000)
        );
    }

    #[test]
    fn formats_cookie_expiry_as_an_http_date() {
        assert_eq!(
            format_http_date(1_795_642_102_000),
            "Wed, 25 Nov 2026 21:28:22 GMT"
        );
        assert_eq!(format_http_date(-5), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            format_http_date(Millis::MAX),
            "Thu, 30 Dec 9999 22:00:00 GMT"
        );
    }
}
