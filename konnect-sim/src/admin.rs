//! The admin API under `/_sim/`: the HTTP form of the [`crate::Sim`] control calls,
//! for the binary, shell demos and tests in other languages. No PAT is
//! needed, faults never apply and calls are not in the request log.
//!
//! | Method | Path | Body | Answer |
//! | --- | --- | --- | --- |
//! | GET | `/_sim/state` | | 200 [`crate::Snapshot`] |
//! | POST | `/_sim/trigger` | `{"region"?, "portal_id"?, "count"}` | 200 [`crate::TriggerReport`], after every batch finished (a portal's events with `portal_id`) |
//! | POST | `/_sim/rate` | `{"region"?, "per_second"}` | 200 `{"region", "per_second"}` |
//! | GET | `/_sim/tunnels` | | 200 `{host: "ip:port"}` |
//! | POST | `/_sim/tunnels` | `{"host", "target": "ip:port"}` | 201 `{host: "ip:port"}` |
//! | DELETE | `/_sim/tunnels/{host}` | | 204, 404 |
//! | GET | `/_sim/faults` | | 200 `[FaultState]` |
//! | POST | `/_sim/faults` | `{"method"?, "path", "count"?, "status" + ("retry_after" \| "detail")? \| "delay_ms" \| "drop": true}` | 201 `[FaultState]` |
//! | DELETE | `/_sim/faults` | | 204 |
//! | POST | `/_sim/receiver` | `{"down": bool}` | 200 `{"down"}`: deliveries fail as if the receiver were down |
//! | POST | `/_sim/replay-jobs` | `{"fail"?: n, "hold"?: bool, "portal_id"?}` | 200 `{"fail", "hold", "fail_portals"?}`: the next `n` jobs (of that portal only, with `portal_id`; default 1 then) fail; held jobs stay `pending` |
//! | GET | `/_sim/portals` | | 200 `[PortalState]` |
//! | POST | `/_sim/portals` | [`crate::NewPortal`] (`{"name", "region"?, ...}`) | 201 [`crate::PortalState`] |
//! | DELETE | `/_sim/portals/{id}` | | 204, 404 |
//! | POST | `/_sim/portals/{id}/developers` | [`crate::NewDeveloper`] (`{"email", "full_name", "status"?, "id"?}`) | 201 [`crate::DeveloperState`] |
//! | GET | `/_sim/users` | | 200 `[UserState]` |
//! | POST | `/_sim/users` | [`crate::NewUser`] (`{"email", "full_name", ...}`) | 201 [`crate::UserState`] |
//! | GET | `/_sim/system-accounts` | | 200 `[SystemAccountState]` |
//! | POST | `/_sim/system-accounts` | [`crate::NewSystemAccount`] (`{"name", "description"?, ...}`) | 201 [`crate::SystemAccountState`] |
//! | GET | `/_sim/contract-violations` | | 200 `[ContractViolation]`: requests that broke the OpenAPI contract |
//! | DELETE | `/_sim/contract-violations` | | 204: forgets them |
//! | GET | `/_sim/request-counts` | | 200 `{"GET /v3/users/{userId}": n, …}` |
//! | POST | `/_sim/reset` | | 204 |
//! | POST | `/_sim/signing-keys/rotate` | `{"keep_old"?, "seed"?}` (default false; `seed`: the new key's 32 bytes, unpadded base64url) | 200 the new JWKS |
//! | POST | `/_sim/forgeries` | `{"tampered"?, "unsigned"?}` | 200 `{"tampered", "unsigned"}` still to come |
//! | POST | `/_sim/logins` | `{"ttl_seconds"?}` (default 3600) | 201 [`crate::LoginGrant`]: what `kongctl login` would store |
//! | POST | `/_sim/audit-logs` | `{"region"?, "count", "start"?, "end"?}` or `{"region"?, "count", "span_seconds"}` or `{"region"?, "records": [{…}]}` | 201 [`crate::SeedReport`] |
//! | PUT | `/_sim/audit-logs/cursors` | `{"mode": "keyed" \| "offset"}` | 200 `{"mode"}` |
//! | GET | `/_sim/clock` | | 200 `{"offset_ms", "now"}` |
//! | PUT | `/_sim/clock` | `{"offset_seconds"}` or `{"offset_ms"}` | 200 `{"offset_ms", "now"}` |
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
use crate::history::CursorMode;
use crate::identity::{NewSystemAccount, NewUser};
use crate::portal::{NewDeveloper, NewPortal};
use crate::snapshot::DeliverySource;
use crate::state::Stream;

/// Largest `count` of one trigger.
const MAX_TRIGGER: usize = 1_000_000;
/// Largest steady rate.
const MAX_RATE: f64 = 100_000.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    #[serde(default)]
    region: Option<String>,
    /// A portal's events instead of the region's.
    #[serde(default)]
    portal_id: Option<String>,
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
    /// `fail` counts this portal's jobs only.
    #[serde(default)]
    portal_id: Option<String>,
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

/// Largest `count` of one seeding (the history keeps every seeded record).
const MAX_SEED: usize = 5_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedBody {
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    count: Option<usize>,
    /// RFC 3339, on the emulated clock.
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    /// Instead of `start`: the span before `end` (or now).
    #[serde(default)]
    span_seconds: Option<u64>,
    /// Records to keep verbatim, instead of generated ones.
    #[serde(default)]
    records: Option<Vec<Box<serde_json::value::RawValue>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorBody {
    mode: CursorMode,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    #[serde(default)]
    offset_seconds: Option<i64>,
    #[serde(default)]
    offset_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    keep_old: bool,
    /// The new key's 32-byte seed, unpadded base64url (a known test key).
    #[serde(default)]
    seed: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForgeriesBody {
    #[serde(default)]
    tampered: u64,
    #[serde(default)]
    unsigned: u64,
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
            let stream = match body.portal_id.as_deref() {
                None => Stream::Org(region),
                Some(portal) => match ctx.portal_stream(portal) {
                    Some(stream) if body.region.is_none() || stream.region() == region => stream,
                    Some(_) => return bad(ctx, "the portal is in another region"),
                    None => return not_found(ctx, &format!("no portal with id {portal:?}")),
                },
            };
            let report = ctx
                .deliveries()
                .emit_stream(stream, body.count, DeliverySource::Trigger)
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
        (&Method::POST, "audit-logs") => {
            let body: SeedBody = match parse(ctx, body) {
                Ok(body) => body,
                Err(response) => return response,
            };
            let region = match pick_region(ctx, body.region.as_deref(), region) {
                Ok(region) => region,
                Err(response) => return response,
            };
            seed(ctx, region, body)
        }
        (&Method::PUT, "audit-logs/cursors") => {
            let body: CursorBody = match parse(ctx, body) {
                Ok(body) => body,
                Err(response) => return response,
            };
            ctx.set_cursor_mode(body.mode);
            json_response(200, &json!({"mode": body.mode}))
        }
        (&Method::GET, "clock") => clock(ctx),
        (&Method::PUT, "clock") => {
            let body: ClockBody = match parse(ctx, body) {
                Ok(body) => body,
                Err(response) => return response,
            };
            let offset = match (body.offset_seconds, body.offset_ms) {
                (Some(s), None) => s.checked_mul(1000),
                (None, Some(ms)) => Some(ms),
                _ => {
                    return bad(
                        ctx,
                        "give exactly one of \"offset_seconds\" or \"offset_ms\"",
                    );
                }
            };
            match offset.filter(|ms| ms.unsigned_abs() <= 100 * 365 * crate::time::DAY as u64) {
                Some(ms) => {
                    ctx.set_clock_offset(ms);
                    clock(ctx)
                }
                None => bad(ctx, "the clock offset must be within 100 years"),
            }
        }
        (&Method::POST, "signing-keys/rotate") => {
            let body: RotateBody = match parse(ctx, body) {
                Ok(body) => body,
                Err(response) => return response,
            };
            let seed = match body.seed.as_deref().map(crate::codec::base64url_decode) {
                None => None,
                Some(Some(bytes)) if bytes.len() == 32 => Some(bytes.try_into().expect("32 bytes")),
                Some(_) => return bad(ctx, "seed must be 32 bytes of unpadded base64url"),
            };
            ctx.rotate_signing_key(seed, body.keep_old);
            let jwks = ctx.state().signing.jwks();
            ApiResponse::json(200, &jwks)
        }
        (&Method::POST, "forgeries") => {
            let body: ForgeriesBody = match parse(ctx, body) {
                Ok(body) => body,
                Err(response) => return response,
            };
            json_response(200, &ctx.forge_next(body.tampered, body.unsigned))
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
            if let Some(portal) = body.portal_id.as_deref() {
                let fail = body.fail.unwrap_or(1);
                if let Err(reason) = ctx.fail_portal_replay_jobs(portal, fail) {
                    return not_found(ctx, &reason);
                }
            }
            let mut state = ctx.state();
            let control = &mut state.replay_control;
            if let (Some(fail), None) = (body.fail, &body.portal_id) {
                control.fail_next = fail;
            }
            if let Some(hold) = body.hold {
                control.hold = hold;
            }
            let portals: serde_json::Map<String, Value> = control
                .fail_next_of_portal
                .iter()
                .map(|(id, n)| (id.to_string(), json!(n)))
                .collect();
            let mut answer = json!({"fail": control.fail_next, "hold": control.hold});
            if !portals.is_empty() {
                answer["fail_portals"] = Value::Object(portals);
            }
            drop(state);
            json_response(200, &answer)
        }
        (&Method::GET, "portals") => json_response(200, &ctx.snapshot().portals),
        (&Method::POST, "portals") => {
            let portal: NewPortal = match parse(ctx, body) {
                Ok(portal) => portal,
                Err(response) => return response,
            };
            let portal = NewPortal {
                region: Some(portal.region.unwrap_or_else(|| region.to_string())),
                ..portal
            };
            match ctx.add_portal(&portal) {
                Ok(added) => json_response(201, &added),
                Err(reason) => bad(ctx, &reason),
            }
        }
        (method, portal) if portal.starts_with("portals/") => {
            portal_admin(ctx, method, &portal["portals/".len()..], body)
        }
        (&Method::GET, "users") => json_response(200, &ctx.snapshot().users),
        (&Method::POST, "users") => {
            let user: NewUser = match parse(ctx, body) {
                Ok(user) => user,
                Err(response) => return response,
            };
            match ctx.add_user(&user) {
                Ok(added) => json_response(201, &added),
                Err(reason) => bad(ctx, &reason),
            }
        }
        (&Method::GET, "system-accounts") => json_response(200, &ctx.snapshot().system_accounts),
        (&Method::POST, "system-accounts") => {
            let account: NewSystemAccount = match parse(ctx, body) {
                Ok(account) => account,
                Err(response) => return response,
            };
            match ctx.add_system_account(&account) {
                Ok(added) => json_response(201, &added),
                Err(reason) => bad(ctx, &reason),
            }
        }
        (&Method::GET, "contract-violations") => {
            json_response(200, &ctx.state().contract_violations())
        }
        (&Method::DELETE, "contract-violations") => {
            ctx.state().clear_contract_violations();
            ApiResponse::no_content()
        }
        (&Method::GET, "request-counts") => {
            let counts = ctx.state().request_counts.clone();
            json_response(200, &counts)
        }
        (&Method::POST, "reset") => {
            ctx.reset();
            ApiResponse::no_content()
        }
        (
            _,
            "state"
            | "trigger"
            | "rate"
            | "tunnels"
            | "faults"
            | "receiver"
            | "replay-jobs"
            | "reset"
            | "audit-logs"
            | "audit-logs/cursors"
            | "clock"
            | "signing-keys/rotate"
            | "forgeries"
            | "contract-violations"
            | "request-counts"
            | "portals"
            | "users"
            | "system-accounts",
        ) => problem(&mut ctx.state(), 405, "Method not allowed"),
        _ => problem(
            &mut ctx.state(),
            404,
            "Unknown admin path; see GET /_sim/state and the README",
        ),
    }
}

/// `/_sim/portals/{id}` (DELETE) and `/_sim/portals/{id}/developers`
/// (POST).
fn portal_admin(ctx: &Context, method: &Method, rest: &str, body: &[u8]) -> ApiResponse {
    match (method, rest.split_once('/')) {
        (&Method::DELETE, None) => {
            if ctx.remove_portal(rest) {
                ApiResponse::no_content()
            } else {
                not_found(ctx, &format!("no portal with id {rest:?}"))
            }
        }
        (&Method::POST, Some((id, "developers"))) => {
            let developer: NewDeveloper = match parse(ctx, body) {
                Ok(developer) => developer,
                Err(response) => return response,
            };
            if ctx.portal_stream(id).is_none() {
                return not_found(ctx, &format!("no portal with id {id:?}"));
            }
            match ctx.add_developer(id, &developer) {
                Ok(added) => json_response(201, &added),
                Err(reason) => bad(ctx, &reason),
            }
        }
        (_, None) | (_, Some((_, "developers"))) => {
            problem(&mut ctx.state(), 405, "Method not allowed")
        }
        _ => not_found(ctx, "Unknown admin path; see the README"),
    }
}

fn not_found(ctx: &Context, detail: &str) -> ApiResponse {
    problem(&mut ctx.state(), 404, detail)
}

/// `POST /_sim/audit-logs`: generated records over a span, or raw ones.
fn seed(ctx: &Context, region: &'static str, body: SeedBody) -> ApiResponse {
    if let Some(records) = body.records {
        if body.count.is_some()
            || body.start.is_some()
            || body.end.is_some()
            || body.span_seconds.is_some()
        {
            return bad(
                ctx,
                "\"records\" cannot be combined with \"count\", \"start\", \"end\" or \"span_seconds\"",
            );
        }
        let texts: Vec<String> = records.iter().map(|r| r.get().to_string()).collect();
        return match ctx.add_raw_audit_logs(region, &texts) {
            Ok(report) => json_response(201, &report),
            Err(reason) => bad(ctx, &reason),
        };
    }
    let Some(count) = body.count else {
        return bad(ctx, "give \"count\" (generated records) or \"records\"");
    };
    if count > MAX_SEED {
        return bad(ctx, &format!("count must be at most {MAX_SEED}"));
    }
    let instant = |text: &Option<String>, name: &str| match text {
        None => Ok(None),
        Some(text) => crate::time::parse_rfc3339(text)
            .map(Some)
            .ok_or_else(|| format!("\"{name}\" must be an RFC 3339 date-time")),
    };
    let (start, end) = match (instant(&body.start, "start"), instant(&body.end, "end")) {
        (Ok(start), Ok(end)) => (start, end),
        (Err(reason), _) | (_, Err(reason)) => return bad(ctx, &reason),
    };
    let end_at = end.unwrap_or_else(|| ctx.state().now());
    let start = match (start, body.span_seconds) {
        (Some(_), Some(_)) => return bad(ctx, "give \"start\" or \"span_seconds\", not both"),
        (Some(start), None) => start,
        (None, Some(span)) => end_at.saturating_sub((span as i64).saturating_mul(1000)),
        (None, None) => return bad(ctx, "give \"start\" or \"span_seconds\""),
    };
    if start > end_at {
        return bad(ctx, "\"start\" must not be after \"end\"");
    }
    json_response(
        201,
        &ctx.seed_audit_logs(region, count, start, Some(end_at)),
    )
}

/// The emulated clock.
fn clock(ctx: &Context) -> ApiResponse {
    let state = ctx.state();
    let (offset, now) = (state.clock_offset, state.now());
    drop(state);
    json_response(
        200,
        &json!({"offset_ms": offset, "now": crate::time::format_millis(now)}),
    )
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
