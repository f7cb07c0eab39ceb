//! Konnect's audit-log pull API as a source of records: windows placed on
//! Konnect's clock, paged, retried page by page, deduplicated, and followed.
//!
//! - **Clock.** Windows (`--since`, the follow's catch-up and polls) are
//!   computed on Konnect's clock, read from the `Date` header of its answers
//!   ([`KonnectClock`]); when a window needs "now" before any answer came,
//!   one small request reads it first. A machine whose clock is minutes off
//!   still gets Konnect's last five minutes and loses nothing while
//!   following.
//! - **Paging.** Pages follow `meta.page.next`'s `page[after]` (one page is
//!   `konnect::pull`'s); a repeated cursor is an error. The next page is
//!   requested while the current one is printed. Records are handed on page
//!   by page, never buffered whole, so memory does not grow with the window.
//! - **Retries.** Connection failures, timeouts, undecodable answers, 429
//!   and 5xx are retried, each with one line on stderr: after `Retry-After`
//!   for 429 and 503, else after a backoff with jitter growing from 1 s to
//!   60 s. A finite pull gives a page 5 tries; a follow retries until the
//!   page comes (its checkpoint stays before the window that failed). Any
//!   other 4xx ends the pull.
//! - **Dedup.** By the record's signature, else a hash of its bytes
//!   ([`crate::record::DedupKey`]), across pages (an API whose pages shift
//!   may repeat a record) and across the follow's overlapping windows. The
//!   set holds only keys near the page being read and those of the last
//!   [`FOLLOW_OVERLAP`] of the window, which the next poll reads again.
//! - **The 50 most recent** (no window, no follow) are found by reading
//!   back from now in growing windows until enough are found, not by paging
//!   through Konnect's whole retention.
//! - **Following.** After the catch-up (five minutes, or from
//!   `--start-time`), every `--poll-interval` reads `[checkpoint − 1 min,
//!   now]`, so a record that reaches Konnect up to a minute late is still
//!   printed, once.
//!
//! Filtering by window and type is Konnect's (the filters are sent); the
//! limit and printing are the query [`Pipeline`]'s. Ctrl+C (or SIGTERM)
//! stops the pull wherever it is; the caller flushes what was fetched.

use std::collections::VecDeque;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime};

use jiff::{SignedDuration, Timestamp};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::konnect::pull::{Page, PageRequest};
use crate::konnect::{AuditLogs, KonnectError};
use crate::output::Output;
use crate::query::options::{FOLLOW_OVERLAP, QueryOptions, sub};
use crate::query::{Dedup, Flow, Limit, Pipeline, Query, Window};
use crate::record::{EventType, Record};
use crate::source::order::TimeOrder;

/// Tries per page for a finite pull.
pub const FINITE_TRIES: u32 = 5;
/// The backoff's first and longest wait.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How far back the search for the most recent records goes, window by
/// window: Konnect's default range is the last 7 days.
const RECENT_SPANS: [Duration; 4] = [
    Duration::from_secs(5 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(24 * 60 * 60),
    Duration::from_secs(7 * 24 * 60 * 60),
];
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Why a pull ended early.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Konnect refused, or a page failed every try.
    #[error("{error}")]
    Request { error: KonnectError, tries: u32 },
    #[error("audit-log API returned repeated cursor {}", crate::gofmt::quote(.0))]
    RepeatedCursor(String),
    /// Ctrl+C or SIGTERM.
    #[error("interrupted")]
    Interrupted,
    /// Writing the output failed (a closed stdout included).
    #[error("{0}")]
    Output(#[from] io::Error),
}

/// Konnect's clock, as far as its `Date` headers tell: an offset from this
/// machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct KonnectClock {
    offset: Option<SignedDuration>,
}

impl KonnectClock {
    /// Whether an answer has set the clock yet.
    pub fn known(&self) -> bool {
        self.offset.is_some()
    }

    /// Konnect's current time (this machine's until an answer came).
    pub fn now(&self) -> Timestamp {
        let local = Timestamp::now();
        local
            .checked_add(self.offset.unwrap_or_default())
            .unwrap_or(local)
    }

    /// Learns from one answer: `date` is Konnect's `Date` (whole seconds,
    /// so Konnect's time then was within the following second), `received`
    /// ours when the answer came. Differences of a second or less are
    /// below what `Date` can tell and count as none; later answers move the
    /// offset only when it changed by more than that (a clock was set), so
    /// windows do not jitter.
    pub fn observe(&mut self, date: Option<SystemTime>, received: SystemTime) {
        let Some(date) = date else { return };
        let (Ok(date_ts), Ok(received_ts)) =
            (Timestamp::try_from(date), Timestamp::try_from(received))
        else {
            return;
        };
        let mid = date_ts
            .checked_add(SignedDuration::from_millis(500))
            .unwrap_or(date_ts);
        let estimate = mid.duration_since(received_ts);
        let estimate = if estimate.abs() <= SignedDuration::from_secs(1) {
            SignedDuration::ZERO
        } else {
            estimate
        };
        match self.offset {
            Some(current) if (estimate - current).abs() <= SignedDuration::from_secs(2) => {}
            _ => {
                if estimate != SignedDuration::ZERO {
                    tracing::info!(
                        offset_ms = estimate.as_millis() as i64,
                        "Konnect's clock differs from this machine's; windows use Konnect's"
                    );
                }
                self.offset = Some(estimate);
            }
        }
    }
}

/// How failed pages are retried and reported: `max_tries` of `None` is
/// until the page comes (following); `progress` says a progress line may
/// be on stderr, to clear before a notice.
#[derive(Debug, Clone, Copy)]
struct RetryPolicy {
    max_tries: Option<u32>,
    progress: bool,
}

/// A pull from Konnect.
pub struct Puller {
    api: AuditLogs,
    page_size: u32,
    kind: Option<EventType>,
    clock: KonnectClock,
    retry: RetryPolicy,
    stop: CancellationToken,
    dedup: Dedup,
    progress: Option<Progress>,
}

/// The pull's counters, drawn on stderr while it runs (a terminal only).
struct Progress {
    started: Instant,
    drawn: Option<Instant>,
    pages: u64,
    records: u64,
}

impl Progress {
    fn page(&mut self, records: usize) {
        self.pages += 1;
        self.records += records as u64;
        if self.drawn.is_none_or(|d| d.elapsed() >= PROGRESS_EVERY) {
            self.drawn = Some(Instant::now());
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            let mut err = io::stderr().lock();
            let _ = write!(
                err,
                "\r\x1b[K{} pages, {} records, {:.0} records/s",
                self.pages,
                self.records,
                self.records as f64 / secs
            );
            let _ = err.flush();
        }
    }

    /// Clears the line (before a notice, and at the end).
    fn clear(&mut self) {
        if self.drawn.take().is_some() {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

impl Puller {
    /// A pull of `kind` records in pages of `page_size`; `stop` ends it.
    pub fn new(api: AuditLogs, opts: &QueryOptions, stop: CancellationToken) -> Puller {
        let follow = opts.follow;
        // Progress is for people watching a finite pull; a script reading
        // stderr gets nothing from a pull that worked.
        let progress = !follow && io::stderr().is_terminal();
        Puller {
            api,
            page_size: opts.page_size,
            kind: opts.kind,
            clock: KonnectClock::default(),
            retry: RetryPolicy {
                max_tries: (!follow).then_some(FINITE_TRIES),
                progress,
            },
            stop,
            dedup: Dedup::new(),
            progress: progress.then(|| Progress {
                started: Instant::now(),
                drawn: None,
                pages: 0,
                records: 0,
            }),
        }
    }

    /// The query the pipeline applies: Konnect filters by window and type,
    /// the pipeline limits and applies the record filter (`--alert`,
    /// `--principal`), which Konnect has no parameter for.
    pub fn pipeline_query(opts: &QueryOptions) -> Query {
        Query {
            window: Window::default(),
            kind: None,
            limit: opts.limit,
            origin: opts.origin.clone(),
            filter: opts.filter.clone(),
            grep: opts.grep.clone(),
        }
    }

    /// Runs the pull `opts` describes into `pipeline`. `Ok(more)`: the pull
    /// ended (a finite one), `more` saying records beyond the limit exist.
    /// A follow only ends with an error (`Interrupted` for Ctrl+C).
    pub async fn run<O: Output>(
        &mut self,
        opts: &QueryOptions,
        pipeline: &mut Pipeline<O>,
    ) -> Result<bool, PullError> {
        let result = self.run_inner(opts, pipeline).await;
        if let Some(p) = &mut self.progress {
            p.clear();
        }
        result
    }

    async fn run_inner<O: Output>(
        &mut self,
        opts: &QueryOptions,
        pipeline: &mut Pipeline<O>,
    ) -> Result<bool, PullError> {
        let time = opts.time;
        if opts.follow {
            return self.follow(opts, pipeline).await;
        }
        if let Limit::Last(n) = opts.limit
            && !time.has_window()
        {
            return self.recent(n, pipeline).await;
        }
        if time.since.is_some() {
            self.read_clock().await?;
        }
        let window = time.window(self.clock.now());
        self.window(window, &mut |r| pipeline.push(r)).await
    }

    /// Makes sure Konnect's clock is known (one small request if no answer
    /// came yet).
    async fn read_clock(&mut self) -> Result<(), PullError> {
        if self.clock.known() {
            return Ok(());
        }
        // A one-second window at our "now" lists at most one record: the
        // answer's `Date` is what counts.
        let now = Timestamp::now();
        let request = PageRequest {
            gte: Some(now),
            lte: Some(now),
            kind: self.kind,
            size: 1,
            after: None,
        };
        let page = fetch(self.api.clone(), request, self.retry, self.stop.clone()).await?;
        self.clock.observe(page.date, page.received_at);
        if !self.clock.known() {
            // No `Date`: our clock is all there is.
            self.clock.offset = Some(SignedDuration::ZERO);
        }
        Ok(())
    }

    /// Reads every page of `window`, handing each new record to `sink`
    /// until it says the limit is reached. `Ok(more)`: records were left
    /// unread because of the limit.
    async fn window(
        &mut self,
        window: Window,
        sink: &mut dyn FnMut(Record) -> io::Result<Flow>,
    ) -> Result<bool, PullError> {
        self.dedup
            .set_fallback_time(window.end.unwrap_or_else(|| self.clock.now()));
        // Keys the next poll needs: its window starts an overlap before
        // this one's end.
        let keep_from = window.end.map(|end| sub(end, FOLLOW_OVERLAP));
        let mut request = PageRequest {
            gte: window.start,
            lte: window.end,
            kind: self.kind,
            size: self.page_size,
            after: None,
        };
        let mut cursors: VecDeque<String> = VecDeque::new();
        let mut pending: Option<JoinHandle<Result<Page, PullError>>> =
            Some(self.spawn_fetch(request.clone()));
        while let Some(task) = pending.take() {
            let page = match task.await {
                Ok(page) => page?,
                Err(join) => return Err(PullError::Output(io::Error::other(join))),
            };
            self.clock.observe(page.date, page.received_at);
            if let Some(p) = &mut self.progress {
                p.page(page.records.len());
            }
            if let Some(next) = &page.next {
                if cursors.contains(next) || request.after.as_ref() == Some(next) {
                    return Err(PullError::RepeatedCursor(next.clone()));
                }
                cursors.push_back(next.clone());
                // The last few cursors are enough to see a loop.
                if cursors.len() > 16 {
                    cursors.pop_front();
                }
                request.after = Some(next.clone());
                // Ask for the next page while this one is printed.
                pending = Some(self.spawn_fetch(request.clone()));
            }
            let has_next = pending.is_some();
            let (oldest, newest) = time_range(&page.records);
            let count = page.records.len();
            for (i, record) in page.records.into_iter().enumerate() {
                if !self.dedup.insert(record.dedup_key(), record.time()) {
                    continue;
                }
                if sink(record)? == Flow::Full {
                    if let Some(task) = pending.take() {
                        task.abort();
                    }
                    return Ok(i + 1 < count || has_next);
                }
            }
            // Keep the keys near this page (a shifting API may repeat its
            // records on the next) and those the next poll reads again.
            if let (Some(oldest), Some(newest)) = (oldest, newest) {
                let lo = sub(oldest, FOLLOW_OVERLAP);
                let hi = newest
                    .checked_add(SignedDuration::try_from(FOLLOW_OVERLAP).unwrap_or_default())
                    .unwrap_or(newest);
                self.dedup
                    .retain(|t| keep_from.is_some_and(|k| t >= k) || (t >= lo && t <= hi));
            }
        }
        Ok(false)
    }

    fn spawn_fetch(&self, request: PageRequest) -> JoinHandle<Result<Page, PullError>> {
        tokio::spawn(fetch(
            self.api.clone(),
            request,
            self.retry,
            self.stop.clone(),
        ))
    }

    /// The `n` most recent records (no window given): windows of growing
    /// span going back from now, each kept to what can still be printed,
    /// until `n` are found or Konnect's default range (7 days) is read.
    async fn recent<O: Output>(
        &mut self,
        n: usize,
        pipeline: &mut Pipeline<O>,
    ) -> Result<bool, PullError> {
        self.read_clock().await?;
        let now = self.clock.now();
        // The N most recent that pass the stream and record filters and
        // --grep, not their share of the N most recent.
        let origin = pipeline.query().origin.clone();
        let filter = pipeline.query().filter.clone();
        let grep = pipeline.query().grep.clone();
        let mut found: VecDeque<Record> = VecDeque::new();
        let mut more = false;
        let mut end = now;
        for span in RECENT_SPANS {
            if found.len() >= n {
                break;
            }
            let start = sub(now, span);
            let mut order = TimeOrder::new(Query {
                window: Window::default(),
                kind: None,
                limit: Limit::Last(n - found.len()),
                origin: origin.clone(),
                filter: filter.clone(),
                grep: grep.clone(),
            });
            self.window(
                Window {
                    start: Some(start),
                    end: Some(end),
                },
                &mut |r| {
                    order.push(r);
                    Ok(Flow::Continue)
                },
            )
            .await?;
            let (records, dropped) = order.into_sorted();
            for record in records.into_iter().rev() {
                found.push_front(record);
            }
            if dropped {
                more = true;
                break;
            }
            if found.len() >= n && span != RECENT_SPANS[RECENT_SPANS.len() - 1] {
                more = self.any_between(sub(now, RECENT_SPANS[3]), start).await?;
                break;
            }
            // The next window ends just before this one starts.
            end = start
                .checked_sub(SignedDuration::from_nanos(1))
                .unwrap_or(start);
        }
        if more {
            pipeline.mark_truncated();
        }
        for record in found {
            pipeline.push(record)?;
        }
        Ok(more)
    }

    /// Whether Konnect has any record in `[start, end)`.
    async fn any_between(&mut self, start: Timestamp, end: Timestamp) -> Result<bool, PullError> {
        let request = PageRequest {
            gte: Some(start),
            lte: Some(
                end.checked_sub(SignedDuration::from_nanos(1))
                    .unwrap_or(end),
            ),
            kind: self.kind,
            size: 1,
            after: None,
        };
        let page = fetch(self.api.clone(), request, self.retry, self.stop.clone()).await?;
        self.clock.observe(page.date, page.received_at);
        Ok(!page.records.is_empty())
    }

    /// The catch-up, then a poll every `--poll-interval`, until stopped.
    async fn follow<O: Output>(
        &mut self,
        opts: &QueryOptions,
        pipeline: &mut Pipeline<O>,
    ) -> Result<bool, PullError> {
        self.read_clock().await?;
        let first = opts.time.window(self.clock.now());
        self.window(first, &mut |r| pipeline.push(r)).await?;
        let mut checkpoint = first.end.unwrap_or_else(|| self.clock.now());
        pipeline.caught_up()?;
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return Err(PullError::Interrupted),
                () = tokio::time::sleep(opts.poll_interval) => {}
            }
            let now = self.clock.now().max(checkpoint);
            let window = Window {
                start: Some(sub(checkpoint, FOLLOW_OVERLAP)),
                end: Some(now),
            };
            self.window(window, &mut |r| pipeline.push(r)).await?;
            // Only a window read to its end moves the checkpoint.
            checkpoint = now;
            self.dedup.evict_before(sub(checkpoint, FOLLOW_OVERLAP));
            pipeline.caught_up()?;
        }
    }
}

/// The oldest and newest time among `records`.
fn time_range(records: &[Record]) -> (Option<Timestamp>, Option<Timestamp>) {
    let times = records.iter().filter_map(Record::time);
    let (mut lo, mut hi) = (None, None);
    for t in times {
        lo = Some(lo.map_or(t, |l: Timestamp| l.min(t)));
        hi = Some(hi.map_or(t, |h: Timestamp| h.max(t)));
    }
    (lo, hi)
}

/// One page, with the retries `retry` allows; each retry says so on
/// stderr. Runs as its own task so that the next page loads while the
/// current one is printed.
async fn fetch(
    api: AuditLogs,
    request: PageRequest,
    retry: RetryPolicy,
    stop: CancellationToken,
) -> Result<Page, PullError> {
    let mut tries = 0u32;
    loop {
        tries += 1;
        let result = tokio::select! {
            () = stop.cancelled() => return Err(PullError::Interrupted),
            r = api.audit_log_page(&request) => r,
        };
        let error = match result {
            Ok(page) => return Ok(page),
            Err(e) => e,
        };
        let retryable = error.is_transient() || matches!(error, KonnectError::Decode { .. });
        if !retryable || retry.max_tries.is_some_and(|max| tries >= max) {
            return Err(PullError::Request { error, tries });
        }
        let honoured = matches!(error.status().map(|s| s.as_u16()), Some(429 | 503));
        let wait = match error.retry_after() {
            Some(after) if honoured => after,
            _ => backoff(tries),
        };
        let line = match retry.max_tries {
            None => format!(
                "audit-log polling failed; retrying in {}: {error}",
                seconds(wait)
            ),
            Some(max) => format!(
                "audit-log request failed; retrying in {} (try {} of {max}): {error}",
                seconds(wait),
                tries + 1
            ),
        };
        if retry.progress {
            // Clear the progress line first (it is redrawn on the next page).
            eprintln!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
        tokio::select! {
            () = stop.cancelled() => return Err(PullError::Interrupted),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// The wait after the `failures`-th failure: doubling from 1 s, at most
/// 60 s, each a random point in its upper half (so many clients do not
/// retry in step), never under 1 s.
fn backoff(failures: u32) -> Duration {
    let nominal = BACKOFF_MIN
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(BACKOFF_MAX);
    nominal
        .mul_f64(0.5 + 0.5 * rand::random::<f64>())
        .clamp(BACKOFF_MIN, BACKOFF_MAX)
}

/// `3s`, `1.5s` (to a tenth).
fn seconds(d: Duration) -> String {
    let tenths = (d.as_millis() + 50) / 100;
    if tenths.is_multiple_of(10) {
        format!("{}s", tenths / 10)
    } else {
        format!("{}.{}s", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        SystemTime::from(s.parse::<Timestamp>().unwrap())
    }

    #[test]
    fn backoff_grows_from_one_second_to_a_minute_with_jitter() {
        for failures in 1..20 {
            let nominal = Duration::from_secs(1 << (failures - 1).min(6)).min(BACKOFF_MAX);
            for _ in 0..50 {
                let w = backoff(failures);
                assert!(w >= BACKOFF_MIN && w <= BACKOFF_MAX, "{w:?}");
                assert!(
                    w >= (nominal / 2).max(BACKOFF_MIN) && w <= nominal,
                    "{failures}: {w:?}"
                );
            }
        }
        assert_eq!(backoff(1), Duration::from_secs(1));
    }

    #[test]
    fn the_clock_follows_konnects_date_header() {
        let mut clock = KonnectClock::default();
        assert!(!clock.known());
        // Konnect five minutes ahead.
        clock.observe(
            Some(at("2026-01-01T00:05:00Z")),
            at("2026-01-01T00:00:00.400Z"),
        );
        assert_eq!(clock.offset, Some(SignedDuration::from_millis(300_100)));
        // Jitter within what Date can tell leaves it alone.
        clock.observe(
            Some(at("2026-01-01T00:05:01Z")),
            at("2026-01-01T00:00:00.100Z"),
        );
        assert_eq!(clock.offset, Some(SignedDuration::from_millis(300_100)));
        // A clock that was set moves it.
        clock.observe(Some(at("2026-01-01T00:00:00Z")), at("2026-01-01T00:05:00Z"));
        assert_eq!(clock.offset, Some(SignedDuration::from_millis(-299_500)));
        // Within a second: the same clock.
        let mut same = KonnectClock::default();
        same.observe(
            Some(at("2026-01-01T00:00:00Z")),
            at("2026-01-01T00:00:00.900Z"),
        );
        assert_eq!(same.offset, Some(SignedDuration::ZERO));
        // No Date: nothing learnt.
        let mut none = KonnectClock::default();
        none.observe(None, at("2026-01-01T00:00:00Z"));
        assert!(!none.known());
    }

    #[test]
    fn waits_print_as_seconds() {
        assert_eq!(seconds(Duration::from_secs(3)), "3s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
        assert_eq!(seconds(Duration::ZERO), "0s");
        assert_eq!(seconds(Duration::from_millis(1020)), "1s");
        assert_eq!(seconds(Duration::from_millis(1960)), "2s");
        assert_eq!(seconds(Duration::from_millis(1940)), "1.9s");
    }
}
