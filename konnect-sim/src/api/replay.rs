//! `/v2|v3/audit-log-replay-job`: the region's replay job. This module
//! validates and accepts a job; `delivery/replay.rs` runs it.

use super::ApiResponse;
use super::body::{BodyCheck, parse_object};
use crate::context::Context;
use crate::problem::{InvalidParameter, Problem};
use crate::state::ReplayStatus;
use crate::time::{self, DAY, Millis};

/// How far in the future a replay range may end (clock skew allowance).
const REPLAY_FUTURE_SLACK: Millis = 60_000;

/// GET /v2|v3/audit-log-replay-job: the last job of the region (or the
/// unset one).
pub(super) fn get(ctx: &Context, region: &str) -> ApiResponse {
    ApiResponse::json(200, &ctx.state().replay_jobs[region].to_json())
}

/// PUT /v2|v3/audit-log-replay-job `{start_at, end_at}`: both RFC 3339,
/// start not after end, within the last 7 days. 409 while a job runs.
pub(super) fn put(ctx: &Context, region: &'static str, body: &[u8]) -> ApiResponse {
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
    if state.replay_jobs[region].status.is_active() {
        let trace = state.trace();
        return ApiResponse::problem(
            &Problem::new(409, trace, "A replay job is currently running")
                .titled("Resource Conflict"),
        );
    }
    let epoch = state.epoch;
    let job = state
        .replay_jobs
        .get_mut(region)
        .expect("every region has a replay job");
    job.start_at = Some(start);
    job.end_at = Some(end);
    job.status = ReplayStatus::Accepted;
    job.updated_at = Some(time::now());
    let body = job.to_json();
    drop(state);
    ctx.deliveries().spawn_replay(region, start, end, epoch);
    ApiResponse::json(202, &body)
}
