//! The admin API under `/_sim/`: the HTTP form of the [`crate::Sim`] control calls,
//! for the binary, shell demos and tests in other languages. No PAT is
//! needed, faults never apply and calls are not in the request log.
//!
//! | Method | Path | Body | Answer |
//! | --- | --- | --- | --- |
//! | GET | `/_sim/state` | | 200 [`crate::Snapshot`] |
//! | POST | `/_sim/trigger` | `{"region"?, "count"}` | 200 [`crate::TriggerReport`], after every batch finished |
//! | POST | `/_sim/rate` | `{"region"?, "per_second"}` | 200 `{"region", "per_second"}` |
//! | GET | `/_sim/tunnels` | | 200 `{host: "ip:port"}` |
//! | POST | `/_sim/tunnels` | `{"host", "target": "ip:port"}` | 201 `{host: "ip:port"}` |
//! | DELETE | `/_sim/tunnels/{host}` | | 204, 404 |
//! | GET | `/_sim/faults` | | 200 `[FaultState]` |
//! | POST | `/_sim/faults` | `{"method"?, "path", "count"?, "status" + ("retry_after" \| "detail")? \| "delay_ms" \| "drop": true}` | 201 `[FaultState]` |
//! | DELETE | `/_sim/faults` | | 204 |
//! | POST | `/_sim/receiver` | `{"down": bool}` | 200 `{"down"}`: deliveries fail as if the receiver were down |
//! | POST | `/_sim/replay-jobs` | `{"fail"?: n, "hold"?: bool}` | 200 `{"fail", "hold"}`: the next `n` jobs fail; held jobs stay `pending` |
//! | POST | `/_sim/reset` | | 204 |
//! | POST | `/_sim/logins` | `{"ttl_seconds"?}` (default 3600) | 201 [`crate::LoginGrant`]: what `kongctl login` would store |
//!
//! `region` defaults to the region of the `Host` header (`us` on
//! `127.0.0.1`). Errors are problem+json like the Konnect API's.

use std::net::SocketAddr;

use hyper::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::{ApiResponse, problem};
use crate::config::known_region;
use crate::context::Context;
use crate::fault::{Fault, FaultSpec};
use crate::snapshot::DeliverySource;

/// Largest `count` of one trigger.
const MAX_TRIGGER: usize = 1_000_000;
/// Largest steady rate.
const MAX_RATE: f64 = 100_000.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    #[serde(default)]
    region: Option<String>,
    count: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateBody {
    #[serde(default)]
    region: Option<String>,
    per_second: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiverBody {
    down: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayJobsBody {
    #[serde(default)]
    fail: Option<u32>,
    #[serde(default)]
    hold: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    #[serde(default = "default_login_ttl")]
    ttl_seconds: u64,
}

fn default_login_ttl() -> u64 {
    3600
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TunnelBody {
    host: String,
    target: SocketAddr,
}

pub(crate) async fn handle(
    ctx: &Context,
    method: &Method,
    path: &str,
    region: &'static str,
    body: &[u8],
) -> ApiResponse {
    let route = path.trim_start_matches("/_sim").trim_start_matches('/');
    match (method, route) {
        (&Method::GET, "state") => json_response(200, &ctx.snapshot()),
        (&Method::POST, "logins") => {
            let body: LoginBody = match parse(ctx, body) {
                Ok(body) => body,
                Err(response) => return response,
            };
            let ttl = std::time::Duration::from_secs(body.ttl_seconds);
            json_response(201, &ctx.issue_login(ttl))
        }
        (&Method::POST, "trigger") => {
            let body: TriggerBody = match parse(ctx, body) {
                Ok(body) => body,
                Err(response) => return response,
            };
            let region = match pick_region(ctx, body.region.as_deref(), region) {
                Ok(region) => region,
                Err(response) => return response,
            };
            if body.count > MAX_TRIGGER {
                return bad(ctx, &format!("count must be at most {MAX_TRIGGER}"));
            }
            let report = ctx
                .deliveries()
                .emit(region, body.count, DeliverySource::Trigger)
                .await;
            json_response(200, &report)
        }
        (&Method::POST, "rate") => {
            let body: RateBody = match parse(ctx, body) {
                Ok(body) => body,
                Err(response) => return response,
            };
            let region = match pick_region(ctx, body.region.as_deref(), region) {
                Ok(region) => region,
                Err(response) => return response,
            };
            if !(body.per_second.is_finite() && (0.0..=MAX_RATE).contains(&body.per_second)) {
                return bad(ctx, &format!("per_second must be between 0 and {MAX_RATE}"));
            }
            ctx.deliveries().set_rate(region, body.per_second);
            json_response(
                200,
                &json!({"region": region, "per_second": body.per_second}),
            )
        }
        (&Method::GET, "tunnels") => json_response(200, &ctx.snapshot().tunnels),
        (&Method::POST, "tunnels") => {
            let body: TunnelBody = match parse(ctx, body) {
                Ok(body) => body,
                Err(response) => return response,
            };
            if body.host.is_empty() || body.host.contains(['/', ':', ' ']) {
                return bad(ctx, "host must be a host name without port or path");
            }
            ctx.add_tunnel(&body.host, body.target);
            json_response(201, &ctx.snapshot().tunnels)
        }
        (&Method::DELETE, tunnel) if tunnel.starts_with("tunnels/") => {
            if ctx.remove_tunnel(&tunnel["tunnels/".len()..]) {
                ApiResponse::no_content()
            } else {
                problem(&mut ctx.state(), 404, "No such tunnel")
            }
        }
        (&Method::GET, "faults") => json_response(200, &ctx.snapshot().faults),
        (&Method::POST, "faults") => {
            let spec: FaultSpec = match parse(ctx, body) {
                Ok(spec) => spec,
                Err(response) => return response,
            };
            match Fault::try_from(spec) {
                Ok(fault) => {
                    ctx.inject_fault(fault);
                    json_response(201, &ctx.snapshot().faults)
                }
                Err(reason) => bad(ctx, &reason),
            }
        }
        (&Method::DELETE, "faults") => {
            ctx.clear_faults();
            ApiResponse::no_content()
        }
        (&Method::POST, "receiver") => {
            let body: ReceiverBody = match parse(ctx, body) {
                Ok(body) => body,
                Err(response) => return response,
            };
            ctx.set_receiver_down(body.down);
            json_response(200, &json!({"down": body.down}))
        }
        (&Method::POST, "replay-jobs") => {
            let body: ReplayJobsBody = match parse(ctx, body) {
                Ok(body) => body,
                Err(response) => return response,
            };
            let mut state = ctx.state();
            let control = &mut state.replay_control;
            if let Some(fail) = body.fail {
                control.fail_next = fail;
            }
            if let Some(hold) = body.hold {
                control.hold = hold;
            }
            let answer = json!({"fail": control.fail_next, "hold": control.hold});
            drop(state);
            json_response(200, &answer)
        }
        (&Method::POST, "reset") => {
            ctx.reset();
            ApiResponse::no_content()
        }
        (
            _,
            "state" | "trigger" | "rate" | "tunnels" | "faults" | "receiver" | "replay-jobs"
            | "reset",
        ) => problem(&mut ctx.state(), 405, "Method not allowed"),
        _ => problem(
            &mut ctx.state(),
            404,
            "Unknown admin path; see GET /_sim/state and the README",
        ),
    }
}

fn json_response(status: u16, body: &impl serde::Serialize) -> ApiResponse {
    let value: Value = serde_json::to_value(body).expect("admin bodies always serialise");
    ApiResponse::json(status, &value)
}

fn bad(ctx: &Context, detail: &str) -> ApiResponse {
    problem(&mut ctx.state(), 400, detail)
}

fn parse<T: DeserializeOwned>(ctx: &Context, body: &[u8]) -> Result<T, ApiResponse> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| bad(ctx, &format!("invalid JSON body: {e}")))
}

fn pick_region(
    ctx: &Context,
    given: Option<&str>,
    from_host: &'static str,
) -> Result<&'static str, ApiResponse> {
    match given {
        None => Ok(from_host),
        Some(name) => known_region(name).ok_or_else(|| {
            bad(
                ctx,
                &format!("unknown region {name:?}; regions are us, eu, au, me, in, sg"),
            )
        }),
    }
}
