//! What starts a replay while the listener runs: the machine waking up
//! from sleep (the wall clock jumped ahead of the monotonic clock, which
//! stands still during suspend: every automatic stream replays), and a
//! stream's webhook status (the region's, or a Dev Portal's) reporting a
//! failed delivery newer than that stream's newest stored record (a tunnel
//! that went down, a listener that answered 500: that stream replays).
//! Startup is the third trigger, sent by [`super::start`].

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::{Instant, MissedTickBehavior};

use super::Timing;
use super::report::{SharedReport, WebhookDelivery};
use super::scan::{StoreFiles, newest_in_tail};
use crate::konnect::{AuditLogs, Stream};
use crate::store::EventStore;

/// Why a replay starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Trigger {
    Startup,
    /// The wall clock moved this much more than the monotonic one.
    Sleep(Duration),
    /// Konnect's last delivery attempt of this stream, at this time,
    /// failed.
    DeliveryFailed(Stream, Timestamp),
}

impl Trigger {
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Sleep(_) => "sleep",
            Trigger::DeliveryFailed(..) => "webhook_status",
        }
    }
}

/// Test only, not for users: a file holding a duration (e.g. `5m`) that
/// the sleep detector adds to the wall clock, so a test can make the wall
/// clock jump as a machine waking from sleep sees it, without sleeping.
const CLOCK_OFFSET_FILE_ENV: &str = "KONGCTL_TEST_CLOCK_OFFSET_FILE";

/// The wall clock as the sleep detector reads it.
struct WallClock {
    offset_file: Option<PathBuf>,
}

impl WallClock {
    fn from_env() -> WallClock {
        WallClock {
            offset_file: std::env::var_os(CLOCK_OFFSET_FILE_ENV).map(PathBuf::from),
        }
    }

    fn now(&self) -> SystemTime {
        let offset = self
            .offset_file
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| crate::time::positive_duration(&t))
            .unwrap_or_default();
        SystemTime::now() + offset
    }
}

/// How much more the wall clock moved than the monotonic clock between two
/// readings; zero if it moved less (or backwards: a clock set back loses
/// nothing).
fn jump(wall: (SystemTime, SystemTime), mono: (Instant, Instant)) -> Duration {
    let walked = wall.1.duration_since(wall.0).unwrap_or_default();
    walked.saturating_sub(mono.1.duration_since(mono.0))
}

/// Reads both clocks every tick and sends [`Trigger::Sleep`] when the wall
/// clock jumped ahead.
pub(super) async fn watch_clock(tx: UnboundedSender<Trigger>, timing: Timing) {
    let clock = WallClock::from_env();
    let mut tick = tokio::time::interval(timing.clock_tick);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last = (clock.now(), Instant::now());
    loop {
        tick.tick().await;
        let now = (clock.now(), Instant::now());
        let slept = jump((last.0, now.0), (last.1, now.1));
        last = now;
        if slept > timing.sleep_jump {
            tracing::info!(
                slept_s = slept.as_secs(),
                "the wall clock jumped ahead (the machine slept?); replaying"
            );
            if tx.send(Trigger::Sleep(slept)).is_err() {
                return;
            }
        }
    }
}

/// What [`watch_webhook_status`] reads and where it reports.
pub(super) struct StatusWatch {
    pub audit: AuditLogs,
    /// The stream whose webhook status is read.
    pub stream: Stream,
    /// Every healed stream (a record belongs to one of them).
    pub streams: Vec<Stream>,
    pub store: EventStore,
    pub files: StoreFiles,
    pub report: SharedReport,
    pub timing: Timing,
}

/// Looks at `stream`'s webhook status every `status_every` and sends
/// [`Trigger::DeliveryFailed`] for a failed attempt that is newer than the
/// stream's newest stored record and than the last one acted on. Failures
/// from before the listener started are the startup replay's. The org's
/// status is also kept in the report (`listener.json`, and the admin
/// endpoint's `/readyz` and `/metrics`, read it there).
pub(super) async fn watch_webhook_status(tx: UnboundedSender<Trigger>, watch: StatusWatch) {
    let StatusWatch {
        audit,
        stream,
        streams,
        store,
        files,
        report,
        timing,
    } = watch;
    let mut handled: Option<Timestamp> = Timestamp::try_from(SystemTime::now()).ok();
    loop {
        tokio::time::sleep(timing.status_every).await;
        let status = match audit.webhook_status(&stream).await {
            Ok(dated) => dated.value,
            Err(e) => {
                tracing::debug!(error = %e, "webhook status unavailable");
                continue;
            }
        };
        let delivery = WebhookDelivery {
            // Full precision: readiness compares it with the newest stored
            // record, often within the same second.
            last_attempt_at: status.last_attempt_at.map(|t| t.to_string()),
            last_attempt_failed: status.last_attempt_failed(),
            last_response_code: status.last_response_code,
        };
        if stream == Stream::Org && report.get().webhook.as_ref() != Some(&delivery) {
            report.update(|r| r.webhook = Some(delivery));
        }
        if !status.last_attempt_failed() {
            continue;
        }
        let Some(at) = status.last_attempt_at else {
            continue;
        };
        if handled.is_some_and(|h| at <= h) {
            continue;
        }
        handled = Some(at);
        // If the store rotates meanwhile, this may read into a batch still
        // being written: one that arrived after the failed attempt, which
        // the status will show as the latest next time.
        let committed = store.committed().borrow().offset;
        let active = files.active.clone();
        let (of, all) = (stream.clone(), streams.clone());
        let newest =
            tokio::task::spawn_blocking(move || newest_in_tail(&active, committed, &of, &all))
                .await
                .ok()
                .flatten();
        if newest.is_some_and(|n| n >= at) {
            tracing::debug!(%at, %stream, "a failed delivery older than the newest stored record; nothing to replay");
            continue;
        }
        tracing::info!(
            %at,
            %stream,
            code = status.last_response_code,
            message = status.last_response_message.as_deref().unwrap_or(""),
            "Konnect reports a failed delivery; replaying"
        );
        if tx
            .send(Trigger::DeliveryFailed(stream.clone(), at))
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jump_is_what_the_wall_clock_moved_beyond_the_monotonic_clock() {
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let m0 = Instant::now();
        let m1 = m0 + Duration::from_secs(1);
        assert_eq!(
            jump((w0, w0 + Duration::from_secs(1)), (m0, m1)),
            Duration::ZERO
        );
        assert_eq!(
            jump((w0, w0 + Duration::from_secs(301)), (m0, m1)),
            Duration::from_secs(300)
        );
        assert_eq!(
            jump((w0, w0 - Duration::from_secs(60)), (m0, m1)),
            Duration::ZERO,
            "set back"
        );
    }

    #[test]
    fn the_test_offset_moves_the_wall_clock() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("offset");
        let clock = WallClock {
            offset_file: Some(file.clone()),
        };
        let before = clock.now();
        std::fs::write(&file, "10m").unwrap();
        let after = clock.now();
        assert!(after.duration_since(before).unwrap() >= Duration::from_secs(600));
    }
}
