//! The query pipeline every read of audit records goes through, whatever
//! the source: Konnect's pull API, the profile's stored segments, an
//! exported file, or the listener's committed records.
//!
//! A source hands records to a [`Pipeline`] in the order it wants them
//! printed (time order, as far as it can tell); the pipeline keeps those in
//! the time window, of the requested type and stream ([`Origin`]) and
//! through the record filter
//! ([`Filter`]: Kong's alert conditions, [`alert`], and the principals of
//! `--principal`, [`principal`]), drops duplicates by
//! [`DedupKey`](crate::record::DedupKey) (bounded: the follower evicts what
//! is older than its overlap), applies the limit (the first N, or the last
//! N, which it holds until the end) and passes the rest to an
//! [`Output`](crate::output::Output). Turning flags into a [`Query`] is
//! [`options`]; printing is [`crate::output`]; fetching and following are
//! the sources'.

pub mod alert;
pub mod dedup;
pub mod grep;
pub mod names;
pub mod options;
pub mod principal;
pub mod view;

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use jiff::Timestamp;

use crate::output::{Output, Prepared, Summary};
use crate::record::{EventType, Record};
pub use alert::{Rule, Rules};
pub use dedup::Dedup;
pub use grep::Grep;
pub use principal::{PrincipalKey, Principals};
pub use view::RecordView;

/// An inclusive time window; a missing bound is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

impl Window {
    pub fn is_open(&self) -> bool {
        self.start.is_none() && self.end.is_none()
    }

    /// Whether a record with time `t` falls in the window. A record
    /// without a time is in only an open window: it cannot be placed.
    pub fn contains(&self, t: Option<Timestamp>) -> bool {
        match t {
            None => self.is_open(),
            Some(t) => {
                self.start.is_none_or(|start| t >= start) && self.end.is_none_or(|end| t <= end)
            }
        }
    }

    /// Whether records between `oldest` and `newest` (inclusive) can fall
    /// in the window; for skipping whole segments.
    pub fn overlaps(&self, oldest: Timestamp, newest: Timestamp) -> bool {
        self.start.is_none_or(|start| newest >= start) && self.end.is_none_or(|end| oldest <= end)
    }
}

/// How many records to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Unlimited,
    /// The first N in the source's order (a time-window query).
    First(usize),
    /// The last N in the source's order, printed oldest first (a query
    /// with no window: "the 50 most recent").
    Last(usize),
}

/// Whose records to keep: the organisation's, Dev Portals', or both. A
/// record's stream is its `portal_id` (present only on a portal's
/// records).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Origin {
    /// Every record.
    #[default]
    Any,
    /// `--org`: records without a `portal_id`.
    Org,
    /// `--portal`: records of these portals (by id).
    Portals(Vec<String>),
}

impl Origin {
    pub fn matches(&self, record: &Record) -> bool {
        match self {
            Origin::Any => true,
            Origin::Org => record.portal_id().is_none(),
            Origin::Portals(ids) => record
                .portal_id()
                .is_some_and(|p| ids.iter().any(|id| id.eq_ignore_ascii_case(p))),
        }
    }
}

/// What to keep of a source's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub window: Window,
    pub kind: Option<EventType>,
    pub limit: Limit,
    pub origin: Origin,
    pub filter: Filter,
    /// `--grep`: records whose bytes match ([`grep`]).
    pub grep: Option<Grep>,
}

impl Query {
    /// Everything, in the source's order.
    pub fn all() -> Query {
        Query {
            window: Window::default(),
            kind: None,
            limit: Limit::Unlimited,
            origin: Origin::Any,
            filter: Filter::default(),
            grep: None,
        }
    }

    /// Whether a record passes every filter: its bytes `--grep`, then the
    /// window, type, stream and record filters.
    pub fn matches(&self, record: &Record) -> bool {
        self.admits(record.raw()) && self.matches_read(record)
    }

    /// Whether a line's bytes, as stored, pass `--grep` (a source asks this
    /// before it reads the line into a record).
    pub fn admits(&self, line: &[u8]) -> bool {
        self.grep.as_ref().is_none_or(|g| g.is_match(line))
    }

    /// [`Query::matches`] for a record whose bytes were [`Query::admits`]ed.
    pub fn matches_read(&self, record: &Record) -> bool {
        self.window.contains(record.time())
            && self.kind.is_none_or(|k| record.kind() == Some(k))
            && self.origin.matches(record)
            && self.filter.matches(record)
    }
}

/// What is kept of a record by its content rather than its time, type and
/// stream: `--alert` rules (any of them) and `--principal` (any of them).
/// Both given: a record must pass both. Empty: every record passes, and
/// none is read further than [`Record`] already did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub alerts: Rules,
    /// Resolved once, before the query starts.
    pub principals: Option<Arc<Principals>>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.principals.is_none()
    }

    /// Whether `record` passes.
    pub fn matches(&self, record: &Record) -> bool {
        if self.is_empty() {
            return true;
        }
        let view = RecordView::of(record);
        (self.alerts.is_empty() || self.alerts.matches(&view))
            && self.principals.as_ref().is_none_or(|p| p.matches(&view))
    }
}

/// Whether a source should keep going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The limit is reached: nothing further will be printed, but the
    /// source may push the rest of what it holds (so that the summary can
    /// tell whether more existed).
    Full,
}

/// A source's records on their way to an output.
pub struct Pipeline<O: Output> {
    query: Query,
    dedup: Option<Dedup>,
    output: O,
    /// The last N, under [`Limit::Last`].
    tail: VecDeque<Record>,
    printed: usize,
    /// Records matched beyond the limit.
    truncated: bool,
}

impl<O: Output> Pipeline<O> {
    pub fn new(query: Query, output: O) -> Self {
        Pipeline {
            query,
            dedup: None,
            output,
            tail: VecDeque::new(),
            printed: 0,
            truncated: false,
        }
    }

    /// Drops records already seen, by dedup key.
    pub fn with_dedup(mut self, dedup: Dedup) -> Self {
        self.dedup = Some(dedup);
        self
    }

    pub fn dedup_mut(&mut self) -> Option<&mut Dedup> {
        self.dedup.as_mut()
    }

    pub fn output_mut(&mut self) -> &mut O {
        &mut self.output
    }

    pub fn query(&self) -> &Query {
        &self.query
    }

    /// Records printed (or held for printing) so far.
    pub fn printed(&self) -> usize {
        self.printed + self.tail.len()
    }

    /// Offers one record. Errors are the output's (a closed stdout).
    pub fn push(&mut self, record: Record) -> io::Result<Flow> {
        if !self.query.matches(&record) {
            return Ok(self.flow());
        }
        if let Some(dedup) = &mut self.dedup
            && !dedup.insert(record.dedup_key(), record.time())
        {
            return Ok(self.flow());
        }
        match self.query.limit {
            Limit::Unlimited => {
                self.output.record(&record)?;
                self.printed += 1;
            }
            Limit::First(n) if self.printed >= n => self.truncated = true,
            Limit::First(_) => {
                self.output.record(&record)?;
                self.printed += 1;
            }
            Limit::Last(0) => self.truncated = true,
            Limit::Last(n) => {
                if self.tail.len() == n {
                    self.tail.pop_front();
                    self.truncated = true;
                }
                // Held to the end: not pinning the block it was read from.
                self.tail.push_back(record.detached());
            }
        }
        Ok(self.flow())
    }

    /// Offers one record that the source matched against the query itself
    /// and had prepared by the output's [`Output::preparer`]. Only for
    /// queries of the first N or all (a source that holds the last N
    /// pushes records).
    pub fn push_prepared(&mut self, prepared: &Prepared) -> io::Result<Flow> {
        match self.query.limit {
            Limit::First(n) if self.printed >= n => self.truncated = true,
            Limit::First(_) | Limit::Unlimited => {
                self.output.prepared(prepared)?;
                self.printed += 1;
            }
            Limit::Last(_) => {
                return Err(io::Error::other(
                    "prepared records cannot be held for the last N",
                ));
            }
        }
        Ok(self.flow())
    }

    /// Whether nothing more can change the result: the limit's first N
    /// are printed and a further match was seen (so the summary says
    /// truncated). A source may stop reading then.
    pub fn is_done(&self) -> bool {
        self.truncated && self.flow() == Flow::Full
    }

    fn flow(&self) -> Flow {
        match self.query.limit {
            Limit::First(n) if self.printed >= n => Flow::Full,
            _ => Flow::Continue,
        }
    }

    /// Notes that matching records were left out before reaching the
    /// pipeline (a source that applied the limit itself, as
    /// [`crate::source::order::TimeOrder`] does).
    pub fn mark_truncated(&mut self) {
        self.truncated = true;
    }

    /// Tells the output that the source has caught up (a follower between
    /// polls): rows are flushed.
    pub fn caught_up(&mut self) -> io::Result<()> {
        self.output.caught_up()
    }

    /// Ends the query: prints held records and the output's closing part.
    /// `more` says the source knows of matching records it did not push
    /// (a next page after the limit was reached).
    pub fn finish(mut self, more: bool) -> io::Result<(Summary, O)> {
        for record in std::mem::take(&mut self.tail) {
            self.output.record(&record)?;
            self.printed += 1;
        }
        let full = match self.query.limit {
            Limit::First(n) => self.printed >= n,
            _ => false,
        };
        let summary = Summary {
            count: self.printed,
            truncated: self.truncated || (more && full),
        };
        self.output.finish(&summary)?;
        Ok((summary, self.output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects the raw lines it is given.
    #[derive(Default)]
    struct Lines(Vec<String>, Option<Summary>, usize);

    impl Output for Lines {
        fn record(&mut self, record: &Record) -> io::Result<()> {
            self.0
                .push(String::from_utf8_lossy(record.raw()).into_owned());
            Ok(())
        }
        fn caught_up(&mut self) -> io::Result<()> {
            self.2 += 1;
            Ok(())
        }
        fn finish(&mut self, summary: &Summary) -> io::Result<()> {
            self.1 = Some(*summary);
            Ok(())
        }
    }

    fn rec(ts: &str, class: &str, sig: &str) -> Record {
        Record::from_slice(
            format!(r#"{{"event_class_id":"{class}","event_ts":"{ts}","sig":"{sig}"}}"#).as_bytes(),
        )
        .unwrap()
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn run(query: Query, records: Vec<Record>, dedup: bool) -> (Vec<String>, Summary) {
        let mut p = Pipeline::new(query, Lines::default());
        if dedup {
            p = p.with_dedup(Dedup::new());
        }
        for r in records {
            p.push(r).unwrap();
        }
        let (summary, out) = p.finish(false).unwrap();
        (out.0, summary)
    }

    fn sigs(lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["sig"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    fn five() -> Vec<Record> {
        vec![
            rec("2026-01-01T00:00:00Z", "konnect", "a"),
            rec("2026-01-01T00:01:00Z", "AUTHENTICATION_TYPE_PAT", "b"),
            rec("2026-01-01T00:02:00Z", "konnect", "c"),
            rec("2026-01-01T00:03:00Z", "KongGateway", "d"),
            rec("2026-01-01T00:04:00Z", "konnect", "e"),
        ]
    }

    #[test]
    fn origin_keeps_the_organisations_or_the_named_portals_records() {
        let portal = |p: &str, sig: &str| {
            Record::from_slice(
                format!(
                    r#"{{"event_ts":"2026-01-01T00:00:0{sig}Z","event_class_id":"AUTHENTICATION_TYPE_BASIC","portal_id":"{p}","sig":"{sig}"}}"#
                )
                .as_bytes(),
            )
            .unwrap()
        };
        let records = || {
            let mut all = five();
            all.push(portal("3E551B39-227D-4297-B911-E68FD5D77C17", "7"));
            all.push(portal("11111111-227d-4297-b911-e68fd5d77c17", "8"));
            all
        };
        let q = |origin| Query {
            origin,
            ..Query::all()
        };
        let (lines, _) = run(q(Origin::Org), records(), false);
        assert_eq!(sigs(&lines), ["a", "b", "c", "d", "e"]);
        // Ids compare without case (a UUID is a UUID).
        let one = Origin::Portals(vec!["3e551b39-227d-4297-b911-e68fd5d77c17".into()]);
        let (lines, _) = run(q(one), records(), false);
        assert_eq!(sigs(&lines), ["7"]);
        let (lines, _) = run(q(Origin::Any), records(), false);
        assert_eq!(lines.len(), 7);
    }

    #[test]
    fn window_is_inclusive_at_both_ends() {
        let q = Query {
            window: Window {
                start: Some(t("2026-01-01T00:01:00Z")),
                end: Some(t("2026-01-01T00:03:00Z")),
            },
            ..Query::all()
        };
        let (lines, summary) = run(q, five(), false);
        assert_eq!(sigs(&lines), ["b", "c", "d"]);
        assert_eq!(summary.count, 3);
        assert!(!summary.truncated);
    }

    #[test]
    fn records_without_time_pass_only_an_open_window() {
        let untimed = Record::from_slice(br#"{"id":"x"}"#).unwrap();
        assert!(Window::default().contains(untimed.time()));
        let w = Window {
            start: Some(t("2026-01-01T00:00:00Z")),
            end: None,
        };
        assert!(!w.contains(untimed.time()));
    }

    #[test]
    fn type_filter_uses_the_pull_api_names() {
        let q = Query {
            kind: Some(EventType::Authorization),
            ..Query::all()
        };
        assert_eq!(sigs(&run(q, five(), false).0), ["a", "c", "e"]);
    }

    #[test]
    fn first_n_stops_and_reports_truncation() {
        let q = Query {
            limit: Limit::First(2),
            ..Query::all()
        };
        let mut p = Pipeline::new(q, Lines::default());
        let flows: Vec<Flow> = five().into_iter().map(|r| p.push(r).unwrap()).collect();
        assert_eq!(
            flows,
            [
                Flow::Continue,
                Flow::Full,
                Flow::Full,
                Flow::Full,
                Flow::Full
            ]
        );
        let (summary, out) = p.finish(false).unwrap();
        assert_eq!(sigs(&out.0), ["a", "b"]);
        assert_eq!(summary.count, 2);
        assert!(summary.truncated);
    }

    #[test]
    fn first_n_exactly_reached_is_truncated_only_if_the_source_has_more() {
        let q = Query {
            limit: Limit::First(5),
            ..Query::all()
        };
        assert!(!run(q.clone(), five(), false).1.truncated);
        let mut p = Pipeline::new(q, Lines::default());
        for r in five() {
            p.push(r).unwrap();
        }
        assert!(p.finish(true).unwrap().0.truncated);
    }

    #[test]
    fn last_n_keeps_the_most_recent_in_order() {
        let q = Query {
            limit: Limit::Last(2),
            ..Query::all()
        };
        let (lines, summary) = run(q, five(), false);
        assert_eq!(sigs(&lines), ["d", "e"]);
        assert!(summary.truncated);
        let q = Query {
            limit: Limit::Last(9),
            ..Query::all()
        };
        let (lines, summary) = run(q, five(), false);
        assert_eq!(lines.len(), 5);
        assert!(!summary.truncated);
    }

    #[test]
    fn duplicates_are_dropped_by_signature() {
        let mut records = five();
        records.push(rec("2026-01-01T00:02:00Z", "konnect", "c"));
        records.insert(0, rec("2026-01-01T00:04:00Z", "konnect", "e"));
        let (lines, _) = run(Query::all(), records, true);
        assert_eq!(sigs(&lines), ["e", "a", "b", "c", "d"]);
    }

    #[test]
    fn overlaps_tells_which_segments_to_read() {
        let w = Window {
            start: Some(t("2026-01-02T00:00:00Z")),
            end: Some(t("2026-01-03T00:00:00Z")),
        };
        assert!(!w.overlaps(t("2026-01-01T00:00:00Z"), t("2026-01-01T23:59:59Z")));
        assert!(w.overlaps(t("2026-01-01T00:00:00Z"), t("2026-01-02T00:00:00Z")));
        assert!(w.overlaps(t("2026-01-02T12:00:00Z"), t("2026-01-02T13:00:00Z")));
        assert!(w.overlaps(t("2026-01-03T00:00:00Z"), t("2026-01-04T00:00:00Z")));
        assert!(!w.overlaps(t("2026-01-03T00:00:01Z"), t("2026-01-04T00:00:00Z")));
        assert!(Window::default().overlaps(t("2000-01-01T00:00:00Z"), t("2000-01-01T00:00:00Z")));
    }
}
