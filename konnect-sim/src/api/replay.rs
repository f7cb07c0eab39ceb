//! `/v2|v3/audit-log-replay-job` (the region's replay job) and
//! `/v3/portals/{portalId}/audit-log-replay-job` (a portal's): the same
//! rules for both. This module validates and accepts a job;
//! `delivery/replay.rs` runs it.

use super::ApiResponse;
use super::body::{BodyCheck, parse_object};
use crate::context::Context;
use crate::problem::{InvalidParameter, Problem};
use crate::state::{ReplayStatus, Stream};
use crate::time::{self, DAY, Millis};

/// How far in the future a replay range may end (clock skew allowance).
const REPLAY_FUTURE_SLACK: Millis = 60_000;

/// GET the last job of the stream (or the unset one).
pub(super) fn get(ctx: &Context, stream: Stream) -> ApiResponse {
    let mut state = ctx.state();
    match state.replay_job(stream) {
        Some(job) => ApiResponse::json(200, &job.to_json()),
        None => gone(&mut state, stream),
    }
}

/// A portal removed while its request was handled.
fn gone(state: &mut crate::state::State, stream: Stream) -> ApiResponse {
    super::problem(state, 404, &format!("{} is gone", stream.describe()))
}

/// PUT `{start_at, end_at}`: both RFC 3339, start not after end, within the
/// last 7 days. 409 while a job of the same stream runs.
pub(super) fn put(ctx: &Context, stream: Stream, body: &[u8]) -> ApiResponse {
    let mut state = ctx.state();
    let object = match parse_object(&mut state, body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    let mut check = BodyCheck::new(&object);
    let instant = |check: &mut BodyCheck, field: &str| {
        let text = check.string(field, true)?;
        let parsed = time::parse_rfc3339(&text);
        if parsed.is_none() {
            check.fail(
                InvalidParameter::new(
                    field,
                    "body",
                    Some("is_date_time"),
                    "must be an RFC 3339 date-time",
                ),
                "Invalid request body",
            );
        }
        parsed
    };
    let start = instant(&mut check, "start_at");
    let end = instant(&mut check, "end_at");
    if let (Some(start), Some(end)) = (start, end) {
        let now = state.now();
        if start > end {
            check.fail(
                InvalidParameter::new("end_at", "body", None, "must not be before start_at"),
                "Invalid time range",
            );
        }
        if start < now - 7 * DAY {
            check.fail(
                InvalidParameter::new("start_at", "body", None, "must be within the last 7 days"),
                "Invalid time range",
            );
        }
        if end > now + REPLAY_FUTURE_SLACK {
            check.fail(
                InvalidParameter::new("end_at", "body", None, "must not be in the future"),
                "Invalid time range",
            );
        }
    }
    if let Err(response) = check.finish(&mut state) {
        return response;
    }
    let (Some(start), Some(end)) = (start, end) else {
        unreachable!("BodyCheck::finish fails when a time is missing or invalid");
    };
    let active = state
        .replay_job(stream)
        .is_some_and(|job| job.status.is_active());
    if active {
        let trace = state.trace();
        return ApiResponse::problem(
            &Problem::new(409, trace, "A replay job is currently running")
                .titled("Resource Conflict"),
        );
    }
    let epoch = state.epoch;
    let Some(job) = state.replay_job_mut(stream) else {
        return gone(&mut state, stream);
    };
    job.start_at = Some(start);
    job.end_at = Some(end);
    job.status = ReplayStatus::Accepted;
    job.updated_at = Some(time::now());
    let body = job.to_json();
    drop(state);
    ctx.deliveries().spawn_replay(stream, start, end, epoch);
    ApiResponse::json(202, &body)
}
