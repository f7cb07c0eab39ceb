//! Which time range to ask Konnect to replay: from the newest stored
//! record's own time, less an overlap, to now on Konnect's clock, clamped to
//! what Konnect keeps (7 days); or from where `--backfill` says.

use std::fmt;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// How far before the newest stored record a replay starts: records of the
/// same seconds may have been in a batch that never arrived, and the dedup
/// gate drops what was stored after all.
pub const OVERLAP: Duration = Duration::from_secs(120);

/// How long Konnect keeps audit logs, so the oldest a replay may start.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Kept off the retention edge: Konnect measures 7 days on its own clock at
/// the moment the `PUT` arrives, a little after the `Date` we measured from.
const RETENTION_MARGIN: Duration = Duration::from_secs(60);

/// A closed time range, on record times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Window {
    /// The smallest window holding both.
    pub fn hull(self, other: Window) -> Window {
        Window {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// Whether `other` lies within this window.
    pub fn covers(&self, other: &Window) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// For state files: RFC 3339, whole seconds.
    pub fn text(&self) -> WindowText {
        WindowText {
            start: format!("{:.0}", self.start),
            end: format!("{:.0}", self.end),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.0} to {:.0}", self.start, self.end)
    }
}

/// A window as `listener.json` and `ps -o json` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowText {
    pub start: String,
    pub end: String,
}

impl WindowText {
    /// The window again; `None` if either end is not an RFC 3339 time or
    /// they are out of order.
    pub fn window(&self) -> Option<Window> {
        let start = crate::time::parse_rfc3339(&self.start).ok()?;
        let end = crate::time::parse_rfc3339(&self.end).ok()?;
        (start <= end).then_some(Window { start, end })
    }
}

/// What the window was planned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The newest stored record's own time, if anything is stored.
    pub newest_stored: Option<Timestamp>,
    /// Where the replay must start at the latest: a `--backfill` start, a
    /// window still missing from an earlier failure.
    pub floor: Option<Timestamp>,
    /// Now on Konnect's clock.
    pub now: Timestamp,
}

/// The window to replay, and whether the retention cut it short; `None`
/// when there is nothing to replay from (nothing stored, no floor).
pub fn plan(p: Plan) -> Option<(Window, bool)> {
    let from_stored = p.newest_stored.map(|t| sub(t, OVERLAP));
    let start = match (from_stored, p.floor) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let oldest = sub(p.now, RETENTION - RETENTION_MARGIN);
    let clamped = start < oldest;
    // A stored record newer than Konnect's now (our clock ahead of its)
    // still gets its overlap replayed.
    let start = start.max(oldest).min(sub(p.now, OVERLAP));
    Some((
        Window {
            start: truncate(start),
            end: truncate(p.now),
        },
        clamped,
    ))
}

/// `t - d`, saturating at the earliest time.
pub fn sub(t: Timestamp, d: Duration) -> Timestamp {
    let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    t.checked_sub(d).unwrap_or(Timestamp::MIN)
}

/// Whole seconds, towards the past: what the `PUT` sends (the start then
/// still covers its record, the end is no later than Konnect's now).
fn truncate(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-08-23T12:00:00Z";

    #[test]
    fn from_the_newest_stored_record_less_the_overlap_to_konnects_now() {
        let (w, clamped) = plan(Plan {
            newest_stored: Some(t("2026-08-23T10:30:15.5Z")),
            floor: None,
            now: t("2026-08-23T12:00:00.9Z"),
        })
        .unwrap();
        assert_eq!(
            w,
            Window {
                start: t("2026-08-23T10:28:15Z"),
                end: t(NOW)
            }
        );
        assert!(!clamped);
        assert_eq!(
            w.to_string(),
            "2026-08-23T10:28:15Z to 2026-08-23T12:00:00Z"
        );
    }

    #[test]
    fn nothing_stored_and_no_floor_is_nothing_to_replay() {
        let p = Plan {
            newest_stored: None,
            floor: None,
            now: t(NOW),
        };
        assert_eq!(plan(p), None);
        let (w, _) = plan(Plan {
            floor: Some(t("2026-08-23T11:00:00Z")),
            ..p
        })
        .unwrap();
        assert_eq!(w.start, t("2026-08-23T11:00:00Z"));
    }

    #[test]
    fn the_earlier_of_floor_and_stored_wins() {
        let (w, _) = plan(Plan {
            newest_stored: Some(t("2026-08-23T11:00:00Z")),
            floor: Some(t("2026-08-23T09:00:00Z")),
            now: t(NOW),
        })
        .unwrap();
        assert_eq!(w.start, t("2026-08-23T09:00:00Z"));
    }

    #[test]
    fn clamped_to_konnects_retention_with_a_margin() {
        let (w, clamped) = plan(Plan {
            newest_stored: Some(t("2026-08-01T00:00:00Z")),
            floor: None,
            now: t(NOW),
        })
        .unwrap();
        assert!(clamped);
        assert_eq!(w.start, t("2026-08-16T12:01:00Z"));
    }

    #[test]
    fn a_stored_record_ahead_of_konnects_clock_still_gets_the_overlap() {
        let (w, _) = plan(Plan {
            newest_stored: Some(t("2026-08-23T12:05:00Z")),
            floor: None,
            now: t(NOW),
        })
        .unwrap();
        assert_eq!(w.start, t("2026-08-23T11:58:00Z"));
        assert!(w.start < w.end);
    }

    #[test]
    fn a_window_survives_its_text() {
        let w = Window {
            start: t("2026-08-23T10:00:00Z"),
            end: t("2026-08-23T12:00:00Z"),
        };
        assert_eq!(w.text().window(), Some(w));
        let backwards = WindowText {
            start: "2026-08-23T12:00:00Z".into(),
            end: "2026-08-23T10:00:00Z".into(),
        };
        assert_eq!(backwards.window(), None);
        let garbage = WindowText {
            start: "soon".into(),
            end: "2026-08-23T10:00:00Z".into(),
        };
        assert_eq!(garbage.window(), None);
    }

    #[test]
    fn hull_and_cover() {
        let a = Window {
            start: t("2026-08-23T10:00:00Z"),
            end: t("2026-08-23T11:00:00Z"),
        };
        let b = Window {
            start: t("2026-08-23T10:30:00Z"),
            end: t("2026-08-23T12:00:00Z"),
        };
        let h = a.hull(b);
        assert!(h.covers(&a) && h.covers(&b));
        assert!(!a.covers(&b));
        assert_eq!(
            h.text(),
            WindowText {
                start: "2026-08-23T10:00:00Z".into(),
                end: "2026-08-23T12:00:00Z".into()
            }
        );
    }
}
