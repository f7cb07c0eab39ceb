//! Time as kongctl reads and writes it, on one time crate (jiff): the one
//! duration grammar of every duration flag, config key and test knob, the
//! one RFC 3339 parser, and the few time texts kongctl writes (state files'
//! RFC 3339 seconds, durations in messages) or reads from Konnect's
//! headers (HTTP dates).
//!
//! A duration ([`parse_duration`]) is Go's `time.ParseDuration` syntax
//! (`90s`, `1h30m`, `1.5h`, `300ms`, `-5m`), with Go's error texts, plus
//! days (`7d`, `1d12h`) and weeks, and what `--retain` and
//! `--rotate-every` took before (long unit names such as `30days` or
//! `2 hours`, blanks between parts). What a flag does with a negative or
//! zero duration is the flag's own rule, left to its caller.
//!
//! Go's `time.Duration.String` (`1m30s`), which some of the original's
//! messages print, is [`crate::gofmt::duration`].

use std::time::{Duration, SystemTime};

use jiff::{SignedDuration, Span, SpanRound, Timestamp, Unit};

/// Nanoseconds in each unit a duration may use. The Go units come first;
/// the longer names, weeks, months and years are those `--retain` took
/// (humantime's), kept so that no config file stops working.
const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),  // µ, MICRO SIGN
    ("\u{3bc}s", 1_000), // μ, GREEK SMALL LETTER MU
    ("ms", 1_000_000),
    ("s", SECOND),
    ("m", 60 * SECOND),
    ("h", HOUR),
    ("d", DAY),
    ("w", 7 * DAY),
    ("nsec", 1),
    ("nanos", 1),
    ("usec", 1_000),
    ("msec", 1_000_000),
    ("millis", 1_000_000),
    ("sec", SECOND),
    ("secs", SECOND),
    ("second", SECOND),
    ("seconds", SECOND),
    ("min", 60 * SECOND),
    ("mins", 60 * SECOND),
    ("minute", 60 * SECOND),
    ("minutes", 60 * SECOND),
    ("hr", HOUR),
    ("hrs", HOUR),
    ("hour", HOUR),
    ("hours", HOUR),
    ("day", DAY),
    ("days", DAY),
    ("wk", 7 * DAY),
    ("wks", 7 * DAY),
    ("week", 7 * DAY),
    ("weeks", 7 * DAY),
    // 30.44 and 365.25 days, as humantime counted them.
    ("M", 2_630_016 * SECOND),
    ("month", 2_630_016 * SECOND),
    ("months", 2_630_016 * SECOND),
    ("y", 31_557_600 * SECOND),
    ("yr", 31_557_600 * SECOND),
    ("yrs", 31_557_600 * SECOND),
    ("year", 31_557_600 * SECOND),
    ("years", 31_557_600 * SECOND),
];

const SECOND: u64 = 1_000_000_000;
const HOUR: u64 = 3600 * SECOND;
const DAY: u64 = 24 * HOUR;

/// Parses a duration: a sequence of decimal numbers, each with an optional
/// fraction and a unit, optionally signed (`1h30m`, `1.5h`, `-90s`, `7d`,
/// `1d12h`, `2 hours 30 min`); `0` needs no unit.
///
/// Follows Go's `time.ParseDuration` (its rounding, its range of about 292
/// years, its error texts: `time: invalid duration "x"`, `time: missing
/// unit in duration "15"`, `time: unknown unit "q" in duration "5q"`), and
/// adds the units of [`UNITS`] and ASCII blanks around and between parts.
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let invalid = || format!("time: invalid duration {}", quote(text));
    let trimmed = text.trim_ascii();
    let (negative, mut s) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    if s == "0" {
        return Ok(SignedDuration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s.starts_with('.') || s.as_bytes()[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // [0-9]*
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut whole: u64 = 0;
        for d in s[..digits].bytes() {
            if whole > LIMIT / 10 {
                return Err(invalid());
            }
            whole = whole * 10 + u64::from(d - b'0');
            if whole > LIMIT {
                return Err(invalid());
            }
        }
        s = &s[digits..];
        // (\.[0-9]*)?
        let (mut fraction, mut scale, mut post) = (0u64, 1f64, false);
        if let Some(rest) = s.strip_prefix('.') {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for d in rest[..digits].bytes() {
                if overflow || fraction > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = fraction * 10 + u64::from(d - b'0');
                if next > LIMIT {
                    overflow = true;
                    continue;
                }
                fraction = next;
                scale *= 10.0;
            }
            post = digits > 0;
            s = &rest[digits..];
        }
        if digits == 0 && !post {
            return Err(invalid());
        }
        s = s.trim_ascii_start();
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit() || c.is_ascii_whitespace())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", quote(text)));
        }
        let (unit, rest) = s.split_at(unit_len);
        s = rest.trim_ascii_start();
        let Some(&(_, unit_nanos)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!(
                "time: unknown unit {} in duration {}",
                quote(unit),
                quote(text)
            ));
        };
        if whole > LIMIT / unit_nanos {
            return Err(invalid());
        }
        let mut value = whole * unit_nanos;
        if fraction > 0 {
            // As Go: float64 arithmetic, truncated.
            value += (fraction as f64 * (unit_nanos as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total += value;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if negative {
        // -(1 << 63) nanoseconds is Go's minimum, and i64's.
        return Ok(SignedDuration::from_nanos((total as i64).wrapping_neg()));
    }
    if total > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(SignedDuration::from_nanos(total as i64))
}

/// `text` as a duration longer than zero, else `None`: for test knobs in
/// the environment, where anything else means "not set".
pub fn positive_duration(text: &str) -> Option<Duration> {
    parse_duration(text)
        .ok()
        .filter(|d| d.is_positive())
        .map(SignedDuration::unsigned_abs)
}

/// Go's `time` package quoting in its errors: bytes outside printable ASCII
/// as `\xNN`.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b' '..=b'~' => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// A duration for people, in jiff's friendly format with 24-hour days:
/// `1h 30m`, `7d`, `1d 12h`, `2s 500ms`.
pub fn format_duration(d: Duration) -> String {
    let Ok(signed) = SignedDuration::try_from(d) else {
        return format!("{}s", d.as_secs());
    };
    let round = SpanRound::new().largest(Unit::Day).days_are_24_hours();
    match Span::try_from(signed).and_then(|span| span.round(round)) {
        Ok(span) => format!("{span:#}"),
        Err(_) => format!("{signed:#}"),
    }
}

/// Parses an RFC 3339 time as Go's `time.RFC3339` layout reads it:
/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, nothing before or after, no
/// leap second. Every time kongctl reads (flags, records, state files,
/// Konnect's answers) goes through here.
///
/// The error says why, after Go's wording where Go has one:
/// `not of the form 2006-01-02T15:04:05Z07:00`, `second out of range`, or
/// jiff's diagnosis of an impossible date or offset.
pub fn parse_rfc3339(text: &str) -> Result<Timestamp, String> {
    if !rfc3339_shape(text.as_bytes()) {
        return Err("not of the form 2006-01-02T15:04:05Z07:00".into());
    }
    // jiff reads `:60` as `:59`; Go refuses it.
    if &text[17..19] == "60" {
        return Err("second out of range".into());
    }
    text.parse::<Timestamp>().map_err(|e| e.to_string())
}

/// Whether `b` has the shape of an RFC 3339 time (digits and separators in
/// their places); the values are jiff's to check.
fn rfc3339_shape(b: &[u8]) -> bool {
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    if b.len() < 20
        || !(digits(0..4)
            && b[4] == b'-'
            && digits(5..7)
            && b[7] == b'-'
            && digits(8..10)
            && b[10] == b'T'
            && digits(11..13)
            && b[13] == b':'
            && digits(14..16)
            && b[16] == b':'
            && digits(17..19))
    {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest {
        b"Z" => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// RFC 3339 in UTC with whole seconds (`2026-08-23T14:00:00Z`), as the
/// original's state files hold times; a fraction of a second is dropped.
pub fn rfc3339(t: SystemTime) -> String {
    let t = Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH);
    // Truncated, not rounded: a time never moves into the next second.
    let t = Timestamp::from_second(t.as_second()).unwrap_or(t);
    format!("{t:.0}")
}

/// [`rfc3339`] of now.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// An HTTP date (`Date`, `Retry-After`): IMF-fixdate, `Sun, 06 Nov 1994
/// 08:49:37 GMT`, or any other RFC 2822 date; `None` if it is none.
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(text.trim())
        .ok()
        .map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> SignedDuration {
        parse_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        parse_duration(s).unwrap_err()
    }

    fn secs(n: i64) -> SignedDuration {
        SignedDuration::from_secs(n)
    }

    #[test]
    fn go_durations_parse_as_go_parses_them() {
        assert_eq!(ok("15s"), secs(15));
        assert_eq!(ok("90s"), secs(90));
        assert_eq!(ok("1m30s"), secs(90));
        assert_eq!(ok("1h30m"), secs(5400));
        assert_eq!(ok("1.5h"), secs(5400));
        assert_eq!(ok("1.5s"), SignedDuration::from_millis(1500));
        assert_eq!(ok("300ms"), SignedDuration::from_millis(300));
        assert_eq!(ok("+300ms"), SignedDuration::from_millis(300));
        assert_eq!(ok(".5h"), secs(1800));
        assert_eq!(ok("1.s"), secs(1));
        assert_eq!(ok("1h2m3s4ms5us6ns"), SignedDuration::new(3723, 4_005_006));
        assert_eq!(ok("2\u{b5}s"), SignedDuration::from_micros(2));
        assert_eq!(ok("2\u{3bc}s"), SignedDuration::from_micros(2));
        assert_eq!(ok("0"), SignedDuration::ZERO);
        assert_eq!(ok("-0"), SignedDuration::ZERO);
        assert_eq!(ok("-5s"), secs(-5));
        assert_eq!(ok("-1.5m"), secs(-90));
        assert_eq!(
            ok("2562047h47m16.854775807s"),
            SignedDuration::from_nanos(i64::MAX)
        );
        assert_eq!(
            ok("-2562047h47m16.854775808s"),
            SignedDuration::from_nanos(i64::MIN)
        );
    }

    #[test]
    fn errors_are_go_texts() {
        assert_eq!(err(""), r#"time: invalid duration """#);
        assert_eq!(err("x"), r#"time: invalid duration "x""#);
        assert_eq!(err("soon"), r#"time: invalid duration "soon""#);
        assert_eq!(err("."), r#"time: invalid duration ".""#);
        assert_eq!(err("-"), r#"time: invalid duration "-""#);
        assert_eq!(
            err("1h-5m"),
            r#"time: unknown unit "h-" in duration "1h-5m""#
        );
        assert_eq!(err("15"), r#"time: missing unit in duration "15""#);
        assert_eq!(err("1h30"), r#"time: missing unit in duration "1h30""#);
        assert_eq!(err("5x"), r#"time: unknown unit "x" in duration "5x""#);
        assert_eq!(err("5D"), r#"time: unknown unit "D" in duration "5D""#);
        assert_eq!(
            err("1é"),
            r#"time: unknown unit "\xc3\xa9" in duration "1\xc3\xa9""#
        );
        assert_eq!(err("3000000h"), r#"time: invalid duration "3000000h""#);
        assert_eq!(err("300y"), r#"time: invalid duration "300y""#);
        assert_eq!(
            err("2562047h47m16.854775808s"),
            r#"time: invalid duration "2562047h47m16.854775808s""#
        );
    }

    #[test]
    fn days_and_weeks_work_everywhere() {
        assert_eq!(ok("7d"), secs(7 * 86400));
        assert_eq!(ok("1d12h"), secs(36 * 3600));
        assert_eq!(ok("1.5d"), secs(36 * 3600));
        assert_eq!(ok("30d"), secs(30 * 86400));
        assert_eq!(ok("2w"), secs(14 * 86400));
        assert_eq!(ok("-1d"), secs(-86400));
    }

    #[test]
    fn what_retain_took_before_still_parses() {
        // humantime's unit names and blanks, as a config.yaml may hold them.
        assert_eq!(ok("30days"), secs(30 * 86400));
        assert_eq!(ok("1 day"), secs(86400));
        assert_eq!(ok("2 hours 30 min"), secs(9000));
        assert_eq!(ok("1h 30m"), secs(5400));
        assert_eq!(ok("  90s "), secs(90));
        assert_eq!(ok("2weeks"), secs(14 * 86400));
        assert_eq!(ok("1hr 5mins 3secs"), secs(3903));
        assert_eq!(ok("250msec"), SignedDuration::from_millis(250));
        assert_eq!(ok("1M"), secs(2_630_016));
        assert_eq!(ok("1y"), secs(31_557_600));
        assert_eq!(ok("2years"), secs(2 * 31_557_600));
        // Blanks inside a number or a unit are still errors.
        assert_eq!(err("1 0s"), r#"time: missing unit in duration "1 0s""#);
        assert_eq!(err("1 h r"), r#"time: invalid duration "1 h r""#);
    }

    #[test]
    fn positive_durations_for_knobs() {
        assert_eq!(positive_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(positive_duration(" 5m "), Some(Duration::from_secs(300)));
        assert_eq!(positive_duration("0"), None);
        assert_eq!(positive_duration("-1s"), None);
        assert_eq!(positive_duration("soon"), None);
    }

    #[test]
    fn durations_format_for_people() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(format_duration(Duration::from_secs(7 * 86400)), "7d");
        assert_eq!(format_duration(Duration::from_secs(36 * 3600)), "1d 12h");
        assert_eq!(format_duration(Duration::from_millis(2500)), "2s 500ms");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        // What is printed reads back as the same duration.
        for d in [5400, 7 * 86400, 36 * 3600, 86399] {
            let d = Duration::from_secs(d);
            assert_eq!(ok(&format_duration(d)).unsigned_abs(), d);
        }
    }

    #[test]
    fn rfc3339_is_read_as_go_reads_it() {
        let t = |s: &str| parse_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(t("2026-08-23T14:00:00Z").as_second(), 1_787_493_600);
        assert_eq!(t("2026-08-23T09:00:00-05:00"), t("2026-08-23T14:00:00Z"));
        assert_eq!(
            t("2026-08-23T14:00:00.123456789+00:00").subsec_nanosecond(),
            123_456_789
        );
        assert_eq!(t("0001-01-01T00:00:00Z").as_second(), -62_135_596_800);
        let shape = "not of the form 2006-01-02T15:04:05Z07:00";
        for bad in [
            "yesterday",
            "",
            "2026-08-23",
            "2026-08-23 14:00:00Z",
            "2026-08-23t14:00:00Z",
            "2026-08-23T14:00:00",
            "2026-08-23T14:00Z",
            "2026-08-23T14:00:00z",
            "2026-08-23T14:00:00+0500",
            "2026-08-23T14:00:00+05",
            "2026-08-23T14:00:00.Z",
            "2026-08-23T14:00:00,5Z",
            " 2026-08-23T14:00:00Z",
            "2026-08-23T14:00:00Z ",
            "2026-08-23T14:00:00Z[UTC]",
            "+002026-08-23T14:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad).unwrap_err(), shape, "{bad:?}");
        }
        assert_eq!(
            parse_rfc3339("2026-12-31T23:59:60Z").unwrap_err(),
            "second out of range"
        );
        assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_err());
        assert!(parse_rfc3339("2026-02-30T00:00:00Z").is_err());
        assert!(parse_rfc3339("2026-01-01T24:00:00Z").is_err());
    }

    #[test]
    fn state_times_have_whole_seconds() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_787_493_600_999);
        assert_eq!(rfc3339(at), "2026-08-23T14:00:00Z");
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(1)),
            "1970-01-01T00:00:01Z"
        );
        assert_eq!(
            parse_rfc3339(&now_rfc3339()).unwrap().subsec_nanosecond(),
            0
        );
    }

    #[test]
    fn http_dates_read_imf_fixdate() {
        let at = |s| parse_http_date(s).map(|t| Timestamp::try_from(t).unwrap().as_second());
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(at(" Sun, 06 Nov 1994 08:49:37 GMT "), Some(784_111_777));
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 +0000"), Some(784_111_777));
        assert_eq!(at("120"), None);
        assert_eq!(at("soon"), None);
    }
}
