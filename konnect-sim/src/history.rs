//! The audit-log history that the pull API (`GET /v3/audit-logs`) serves:
//! per region, every record in the order the API lists them, which is
//! ascending by time (`ts`) and, for equal times, by when the emulator
//! learnt of the record. That order is documented here because the v3 spec
//! leaves it open.
//!
//! A record gets here three ways:
//! - an event the emulator generated (and delivered, if a webhook was
//!   enabled): its `AuditLog` view is rendered once and kept, so that every
//!   event delivered by webhook can also be pulled; the newest
//!   [`MAX_WEBHOOK_EVENTS`] are kept, as for replay;
//! - a seeded record, one of a series added over a time span for catch-up
//!   tests and benchmarks: only its number and type are kept, and a page
//!   makes it again from the series seed ([`Generator::event_in_series`]),
//!   so a million of them cost tens of megabytes, not gigabytes;
//! - a raw record a test gives verbatim (unknown fields, integers beyond
//!   2^53): kept and served byte for byte.
//!
//! Cursors are keyed by default (a page continues after the last record it
//! showed, whatever was added meanwhile). [`CursorMode::Offset`] makes them
//! positions in the filtered list instead, so that a record added before
//! the cursor shifts the pages under a client, as an offset-paged API would:
//! tests use it to check that a client neither skips nor repeats records.
//! HTTP and validation are `api/audit_logs.rs`'s.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use serde_json::Value;

use crate::config::REGIONS;
use crate::records::{Event, Generator};
use crate::signing::{Seal, SigningKey};
use crate::time::Millis;

/// Generated events kept for the pull API (as `state::MAX_EVENTS` keeps
/// them for replay).
pub(crate) const MAX_WEBHOOK_EVENTS: usize = crate::state::MAX_EVENTS;

/// The pull API's record types (`type`, `filter[type]`).
pub(crate) const TYPES: [&str; 3] = ["authorization", "authentication", "gateway_access"];

/// Where a record sits in a region's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    /// The record's `ts`, in milliseconds.
    pub ts: Millis,
    /// Insertion order, unique within the Sim.
    pub n: u64,
}

impl Key {
    fn first_at(ts: Millis) -> Key {
        Key { ts, n: 0 }
    }

    fn last_at(ts: Millis) -> Key {
        Key { ts, n: u64::MAX }
    }
}

/// One record of the history.
#[derive(Clone, Debug)]
enum Entry {
    /// A generated event's `AuditLog` JSON.
    Rendered { kind: &'static str, text: Box<str> },
    /// Record `n` of the series of `series`, made again on demand, signed
    /// by the key that signed when it was seeded (so that its `signature`
    /// stays the same across reads, as a stored record's does).
    Seeded {
        kind: &'static str,
        series: u64,
        key: Arc<SigningKey>,
    },
    /// A record as a test gave it.
    Raw {
        kind: Option<&'static str>,
        text: Box<str>,
    },
}

impl Entry {
    fn kind(&self) -> Option<&'static str> {
        match self {
            Entry::Rendered { kind, .. } | Entry::Seeded { kind, .. } => Some(kind),
            Entry::Raw { kind, .. } => *kind,
        }
    }
}

/// How the pull API's cursors point into the list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CursorMode {
    /// After (or before) a given record: pages never shift.
    #[default]
    Keyed,
    /// After (or before) a position in the filtered list: records added
    /// before it shift the following pages.
    Offset,
}

/// A decoded `page[after]` or `page[before]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cursor {
    Key(Key),
    Offset(usize),
}

impl Cursor {
    /// The opaque text of a cursor (base64url, as Konnect's look).
    pub fn encode(self) -> String {
        let text = match self {
            Cursor::Key(key) => format!("event:{}:{}", key.ts, key.n),
            Cursor::Offset(at) => format!("offset:{at}"),
        };
        crate::codec::base64url(text.as_bytes())
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let bytes = crate::codec::base64url_decode(text)?;
        let text = std::str::from_utf8(&bytes).ok()?;
        if let Some(rest) = text.strip_prefix("event:") {
            let (ts, n) = rest.split_once(':')?;
            return Some(Cursor::Key(Key {
                ts: ts.parse().ok()?,
                n: n.parse().ok()?,
            }));
        }
        text.strip_prefix("offset:")?
            .parse()
            .ok()
            .map(Cursor::Offset)
    }
}

/// What one page asks for (validated by the handler).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageQuery<'a> {
    pub gte: Millis,
    pub lte: Millis,
    pub kind: Option<&'a str>,
    pub size: usize,
    pub after: Option<Cursor>,
    pub before: Option<Cursor>,
}

/// One page: the records' JSON texts and the cursors of the neighbours.
#[derive(Debug, Default)]
pub(crate) struct Page {
    pub records: Vec<String>,
    pub next: Option<Cursor>,
    pub previous: Option<Cursor>,
}

/// What a seeding added.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeedReport {
    pub region: String,
    /// Records added.
    pub added: usize,
    /// `ts` of the oldest and newest added record (RFC 3339), if any.
    pub oldest: Option<String>,
    pub newest: Option<String>,
}

/// Every region's history.
pub(crate) struct History {
    regions: BTreeMap<&'static str, BTreeMap<Key, Entry>>,
    /// Keys of the generated events, oldest first, for the cap.
    webhook_keys: VecDeque<(&'static str, Key)>,
    next_n: u64,
    next_series: u64,
    pub cursors: CursorMode,
}

impl History {
    pub fn new() -> History {
        History {
            regions: REGIONS.iter().map(|r| (*r, BTreeMap::new())).collect(),
            webhook_keys: VecDeque::new(),
            next_n: 1,
            next_series: 1,
            cursors: CursorMode::Keyed,
        }
    }

    fn region_mut(&mut self, region: &str) -> &mut BTreeMap<Key, Entry> {
        self.regions
            .get_mut(region)
            .expect("the history holds every region")
    }

    fn key(&mut self, ts: Millis) -> Key {
        let n = self.next_n;
        self.next_n += 1;
        Key { ts, n }
    }

    /// Records in all regions.
    pub fn len(&self) -> usize {
        self.regions.values().map(BTreeMap::len).sum()
    }

    /// Adds generated events (their pull view), dropping the oldest
    /// generated ones beyond [`MAX_WEBHOOK_EVENTS`].
    pub fn add_events(&mut self, events: &[Event]) {
        for event in events {
            let key = self.key(event.ts);
            let text = event.pull_view().to_string().into_boxed_str();
            let kind = event.kind.pull_type();
            self.region_mut(event.region)
                .insert(key, Entry::Rendered { kind, text });
            self.webhook_keys.push_back((event.region, key));
        }
        while self.webhook_keys.len() > MAX_WEBHOOK_EVENTS {
            if let Some((region, key)) = self.webhook_keys.pop_front() {
                self.region_mut(region).remove(&key);
            }
        }
    }

    /// Adds `count` generated records whose times are spread evenly over
    /// `[start, end]` (whole seconds, as Konnect's `ts`), as if Konnect had
    /// kept them; they are not delivered.
    pub fn seed(
        &mut self,
        generator: &mut Generator,
        signer: &Arc<SigningKey>,
        region: &'static str,
        count: usize,
        start: Millis,
        end: Millis,
    ) -> SeedReport {
        let series = self.next_series;
        self.next_series += 1;
        let span = (end - start).max(0) as i128;
        let mut oldest = None;
        let mut newest = None;
        for i in 0..count {
            let at = if count > 1 {
                start + (span * i as i128 / (count as i128 - 1)) as Millis
            } else {
                start
            };
            let ts = at - at.rem_euclid(1000);
            let key = self.key(ts);
            let kind = generator
                .event_in_series(series, key.n, region, ts)
                .kind
                .pull_type();
            self.region_mut(region).insert(
                key,
                Entry::Seeded {
                    kind,
                    series,
                    key: signer.clone(),
                },
            );
            oldest = Some(oldest.map_or(ts, |o: Millis| o.min(ts)));
            newest = Some(newest.map_or(ts, |o: Millis| o.max(ts)));
        }
        SeedReport {
            region: region.to_string(),
            added: count,
            oldest: oldest.map(crate::time::format_seconds),
            newest: newest.map(crate::time::format_seconds),
        }
    }

    /// Adds records given as JSON text, kept byte for byte. Each must be a
    /// JSON object with an RFC 3339 `ts`; its `type`, if one of the three,
    /// is what `filter[type]` matches.
    pub fn add_raw(
        &mut self,
        region: &'static str,
        records: &[String],
    ) -> Result<SeedReport, String> {
        let mut parsed = Vec::with_capacity(records.len());
        for (i, text) in records.iter().enumerate() {
            let value: Value =
                serde_json::from_str(text).map_err(|e| format!("record {i} is not JSON: {e}"))?;
            let ts = value
                .get("ts")
                .and_then(Value::as_str)
                .and_then(crate::time::parse_rfc3339)
                .ok_or_else(|| format!("record {i} has no RFC 3339 \"ts\""))?;
            let kind = value
                .get("type")
                .and_then(Value::as_str)
                .and_then(|t| TYPES.iter().find(|known| **known == t).copied());
            parsed.push((ts, kind, text.trim()));
        }
        let mut oldest = None;
        let mut newest = None;
        for (ts, kind, text) in &parsed {
            let key = self.key(*ts);
            self.region_mut(region).insert(
                key,
                Entry::Raw {
                    kind: *kind,
                    text: (*text).into(),
                },
            );
            oldest = Some(oldest.map_or(*ts, |o: Millis| o.min(*ts)));
            newest = Some(newest.map_or(*ts, |o: Millis| o.max(*ts)));
        }
        Ok(SeedReport {
            region: region.to_string(),
            added: parsed.len(),
            oldest: oldest.map(crate::time::format_exact),
            newest: newest.map(crate::time::format_exact),
        })
    }

    /// Forgets everything (a reset).
    pub fn clear(&mut self) {
        for records in self.regions.values_mut() {
            records.clear();
        }
        self.webhook_keys.clear();
        self.cursors = CursorMode::Keyed;
    }

    /// One page of `region`'s records matching `query`, rendered.
    pub fn page(&self, generator: &mut Generator, region: &'static str, query: &PageQuery) -> Page {
        let records = &self.regions[region];
        let in_window = records
            .range(Key::first_at(query.gte)..=Key::last_at(query.lte))
            .filter(|(_, entry)| query.kind.is_none_or(|k| entry.kind() == Some(k)));
        let (chosen, next, previous): (Vec<(&Key, &Entry)>, _, _) = match self.cursors {
            CursorMode::Keyed => {
                let lower = Bound::Included(Key::first_at(query.gte));
                let upper = Bound::Included(Key::last_at(query.lte));
                let matching = |lower: Bound<Key>, upper: Bound<Key>| {
                    records
                        .range((lower, upper))
                        .filter(|(_, entry)| query.kind.is_none_or(|k| entry.kind() == Some(k)))
                };
                let chosen: Vec<(&Key, &Entry)> = match (query.after, query.before) {
                    (Some(Cursor::Key(after)), _) => {
                        let lower = if after >= Key::first_at(query.gte) {
                            Bound::Excluded(after)
                        } else {
                            lower
                        };
                        matching(lower, upper).take(query.size).collect()
                    }
                    (None, Some(Cursor::Key(before))) => {
                        let upper = if before <= Key::last_at(query.lte) {
                            Bound::Excluded(before)
                        } else {
                            upper
                        };
                        let mut page: Vec<_> =
                            matching(lower, upper).rev().take(query.size).collect();
                        page.reverse();
                        page
                    }
                    _ => matching(lower, upper).take(query.size).collect(),
                };
                let next = chosen
                    .last()
                    .filter(|(last, _)| matching(Bound::Excluded(**last), upper).next().is_some())
                    .map(|(last, _)| Cursor::Key(**last));
                let previous = chosen
                    .first()
                    .filter(|(first, _)| matching(lower, Bound::Excluded(**first)).next().is_some())
                    .map(|(first, _)| Cursor::Key(**first));
                (chosen, next, previous)
            }
            CursorMode::Offset => {
                let all: Vec<(&Key, &Entry)> = in_window.collect();
                let (from, to) = match (query.after, query.before) {
                    (Some(Cursor::Offset(after)), _) => {
                        let from = (after + 1).min(all.len());
                        (from, (from + query.size).min(all.len()))
                    }
                    (None, Some(Cursor::Offset(before))) => {
                        let to = before.min(all.len());
                        (to.saturating_sub(query.size), to)
                    }
                    _ => (0, query.size.min(all.len())),
                };
                let chosen = all[from..to].to_vec();
                let next = (to < all.len() && to > from).then(|| Cursor::Offset(to - 1));
                let previous = (from > 0 && to > from).then_some(Cursor::Offset(from));
                (chosen, next, previous)
            }
        };
        let records = chosen
            .into_iter()
            .map(|(key, entry)| match entry {
                Entry::Rendered { text, .. } | Entry::Raw { text, .. } => text.to_string(),
                Entry::Seeded {
                    series,
                    key: signer,
                    ..
                } => {
                    let mut event = generator.event_in_series(*series, key.n, region, key.ts);
                    event.seal = Seal::Signed(signer.clone());
                    event.pull_view().to_string()
                }
            })
            .collect();
        Page {
            records,
            next,
            previous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_750_000_000_000;

    fn test_key() -> Arc<SigningKey> {
        Arc::new(SigningKey::generate(&mut Generator::new(7)))
    }

    fn query(size: usize) -> PageQuery<'static> {
        PageQuery {
            gte: 0,
            lte: Millis::MAX / 2,
            kind: None,
            size,
            after: None,
            before: None,
        }
    }

    fn ts_of(text: &str) -> String {
        serde_json::from_str::<Value>(text).unwrap()["ts"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn cursors_round_trip() {
        for cursor in [
            Cursor::Key(Key { ts: T0, n: 7 }),
            Cursor::Key(Key { ts: -5, n: 0 }),
            Cursor::Offset(42),
        ] {
            assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        }
        assert_eq!(Cursor::decode("bm9wZQ"), None);
        assert_eq!(Cursor::decode("not base64!"), None);
    }

    #[test]
    fn records_are_listed_by_time_then_arrival() {
        let mut generator = Generator::new(1);
        let mut history = History::new();
        history.seed(
            &mut generator,
            &test_key(),
            "us",
            3,
            T0 + 10_000,
            T0 + 12_000,
        );
        let late = format!(
            r#"{{"ts":"{}","type":"authorization","n":1}}"#,
            crate::time::format_seconds(T0 + 11_000)
        );
        history.add_raw("us", std::slice::from_ref(&late)).unwrap();
        let page = history.page(&mut generator, "us", &query(10));
        let times: Vec<String> = page.records.iter().map(|r| ts_of(r)).collect();
        let s = |ms| crate::time::format_seconds(ms);
        assert_eq!(
            times,
            [
                s(T0 + 10_000),
                s(T0 + 11_000),
                s(T0 + 11_000),
                s(T0 + 12_000)
            ]
        );
        assert_eq!(page.records[2], late, "the later arrival comes second");
        assert!(page.next.is_none() && page.previous.is_none());
    }

    #[test]
    fn seeded_records_are_the_same_every_time_they_are_shown() {
        let mut generator = Generator::new(1);
        let mut history = History::new();
        let report = history.seed(&mut generator, &test_key(), "eu", 1000, T0, T0 + 999_000);
        assert_eq!(report.added, 1000);
        assert_eq!(report.oldest.as_deref(), Some("2025-06-15T15:06:40Z"));
        let first = history.page(&mut generator, "eu", &query(1000));
        let again = history.page(&mut generator, "eu", &query(1000));
        assert_eq!(first.records, again.records);
        let unique: std::collections::BTreeSet<&String> = first.records.iter().collect();
        assert_eq!(unique.len(), 1000);
        assert!(
            history
                .page(&mut generator, "us", &query(10))
                .records
                .is_empty()
        );
    }

    #[test]
    fn keyed_pages_do_not_shift_but_offset_pages_do() {
        let mut generator = Generator::new(1);
        for mode in [CursorMode::Keyed, CursorMode::Offset] {
            let mut history = History::new();
            history.cursors = mode;
            history.seed(
                &mut generator,
                &test_key(),
                "us",
                4,
                T0 + 10_000,
                T0 + 40_000,
            );
            let first = history.page(&mut generator, "us", &query(2));
            // A late record, older than the whole first page.
            let late = format!(r#"{{"ts":"{}"}}"#, crate::time::format_seconds(T0));
            history.add_raw("us", &[late]).unwrap();
            let second = history.page(
                &mut generator,
                "us",
                &PageQuery {
                    after: first.next,
                    ..query(2)
                },
            );
            let overlap = second
                .records
                .iter()
                .filter(|r| first.records.contains(r))
                .count();
            match mode {
                CursorMode::Keyed => assert_eq!(overlap, 0),
                CursorMode::Offset => assert_eq!(overlap, 1, "the page shifted by one"),
            }
        }
    }

    #[test]
    fn webhook_events_are_capped() {
        let mut generator = Generator::new(1);
        let mut history = History::new();
        let events: Vec<Event> = (0..MAX_WEBHOOK_EVENTS + 5)
            .map(|i| generator.event("us", T0 + i as Millis))
            .collect();
        history.add_events(&events);
        assert_eq!(history.len(), MAX_WEBHOOK_EVENTS);
    }
}
