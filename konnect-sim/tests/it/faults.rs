//! Injected faults (status, Retry-After, delay, drop) and reset.

use std::time::{Duration, Instant};

use konnect_sim::{Fault, FaultAction};
use serde_json::json;

use crate::common::{Api, Auth, Receiver, start_sim};

#[tokio::test]
async fn a_status_fault_answers_n_times_then_the_api_does() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    sim.inject_fault(Fault::status(Some("GET"), "/v2/audit-log-webhook", 2, 503));
    assert_eq!(sim.snapshot().faults[0].remaining, 2);
    for _ in 0..2 {
        // 503 is not in the spec: not checked against it.
        let reply = api
            .raw("GET", "/v2/audit-log-webhook", None, Auth::Pat)
            .await;
        let body = reply.problem(503);
        assert_eq!(body["title"], "Service Unavailable");
    }
    assert_eq!(api.get("/v2/audit-log-webhook").await.status, 200);
    assert!(sim.snapshot().faults.is_empty());
    let faults: Vec<Option<String>> = sim
        .snapshot()
        .requests
        .iter()
        .map(|r| r.fault.clone())
        .collect();
    assert_eq!(
        faults,
        [Some("status 503".into()), Some("status 503".into()), None]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_problem_fault_carries_the_given_detail() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    sim.inject_fault(Fault {
        method: Some("DELETE".into()),
        path: "/v3/audit-log-destinations/*".into(),
        count: 1,
        action: FaultAction::Problem {
            status: 409,
            detail: "Destination is in use".into(),
        },
    });
    let reply = api
        .raw(
            "DELETE",
            "/v3/audit-log-destinations/6945c4c4-3e06-4c5c-87e0-726d0cda4e05",
            None,
            Auth::Pat,
        )
        .await;
    let body = reply.problem(409);
    assert_eq!(body["detail"], "Destination is in use");
    assert_eq!(
        sim.snapshot().requests[0].fault.as_deref(),
        Some("status 409 (Destination is in use)")
    );
    // The admin API takes the same fault as `status` + `detail`.
    let url = format!("{}/_sim/faults", sim.base_url());
    let resp = crate::common::http_client()
        .build()
        .unwrap()
        .post(&url)
        .header("content-type", "application/json")
        .body(json!({"path": "/x", "status": 409, "detail": "d", "retry_after": 1}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        400,
        "detail and retry_after together are refused"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_match_method_and_path_prefix() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    sim.inject_fault(Fault {
        method: Some("post".into()),
        path: "/v3/audit-log-destinations*".into(),
        count: 1,
        action: FaultAction::Status {
            status: 429,
            retry_after: Some(7),
        },
    });
    // Another method and another path are not affected.
    assert_eq!(api.get("/v3/audit-log-destinations").await.status, 200);
    assert_eq!(api.get("/v2/audit-log-webhook").await.status, 200);
    let body = json!({"name": "n", "endpoint": "https://e.test", "authorization": "a", "log_format": "cef"});
    let limited = api
        .raw(
            "POST",
            "/v3/audit-log-destinations",
            Some(body.to_string().as_bytes()),
            Auth::Pat,
        )
        .await;
    limited.problem(429);
    assert_eq!(limited.headers["retry-after"], "7");
    assert!(
        sim.snapshot().destinations.is_empty(),
        "a faulted call is not handled"
    );
    assert_eq!(
        api.post("/v3/audit-log-destinations", body).await.status,
        201
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_apply_before_the_pat_check_but_not_to_the_admin_api() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    sim.inject_fault(Fault::status(None, "*", 1, 500));
    let admin = api.raw("GET", "/_sim/state", None, Auth::None).await;
    assert_eq!(admin.status, 200);
    let reply = api
        .raw("GET", "/v2/audit-log-webhook", None, Auth::None)
        .await;
    reply.problem(500);
    api.call("GET", "/v2/audit-log-webhook", None, Auth::None)
        .await
        .problem(401);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_delay_fault_waits_then_answers_normally() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    sim.inject_fault(Fault {
        method: None,
        path: "/v3/audit-log-webhook".into(),
        count: 1,
        action: FaultAction::Delay(Duration::from_millis(300)),
    });
    let started = Instant::now();
    api.get("/v3/audit-log-webhook").await.problem(404);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    api.get("/v3/audit-log-webhook").await.problem(404);
    assert!(started.elapsed() < Duration::from_millis(300));
    let log = sim.snapshot().requests;
    assert_eq!(log[0].fault.as_deref(), Some("delay 300ms"));
    assert_eq!(log[0].status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_drop_fault_closes_the_connection_without_an_answer() {
    let sim = start_sim().await;
    sim.inject_fault(Fault {
        method: Some("DELETE".into()),
        path: "/v3/audit-log-webhook".into(),
        count: 1,
        action: FaultAction::Drop,
    });
    // A client without connection reuse, so nothing retries behind our back.
    let client = crate::common::http_client()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("{}/v3/audit-log-webhook", sim.base_url());
    let bearer = format!("Bearer {}", sim.pat());
    let error = client
        .delete(&url)
        .header("authorization", &bearer)
        .send()
        .await
        .expect_err("the connection is dropped");
    assert!(!error.is_timeout() && !error.is_status(), "{error:?}");
    let next = client
        .delete(&url)
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 404, "the next call is handled");
    let log = sim.snapshot().requests;
    assert_eq!((log[0].status, log[0].fault.as_deref()), (0, Some("drop")));
    assert_eq!(log[1].status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn reset_returns_to_the_initial_state() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    api.enable_webhook("before-reset", &receiver.url("/hook"), "json")
        .await;
    sim.trigger("us", 5).await;
    sim.add_tunnel("t.test", receiver.addr);
    sim.inject_fault(Fault::status(None, "/nowhere", 3, 500));
    sim.set_rate("eu", 1.0);
    let before = sim.snapshot();
    assert!(!before.is_pristine() && !before.tunnels.is_empty() && !before.faults.is_empty());

    sim.reset();
    let after = sim.snapshot();
    assert!(after.is_pristine());
    assert!(after.deliveries.is_empty() && after.requests.is_empty());
    assert!(after.tunnels.is_empty() && after.faults.is_empty() && after.rates.is_empty());
    assert_eq!((after.events_generated, after.events_stored), (0, 0));
    assert!(
        after
            .replay_jobs
            .values()
            .all(|j| j.status == "unconfigured")
    );
    assert_eq!(after.org_id, before.org_id, "same organisation");
    assert_eq!(
        api.get("/v2/audit-log-webhook").await.json()["endpoint"],
        "unconfigured"
    );
    assert!(
        api.get("/v3/audit-logs").await.json()["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Usable as new, with fresh ids.
    let old_id = before.destinations[0].id.clone();
    let new_id = api
        .create_destination("after-reset", &receiver.url("/hook"), "json")
        .await;
    assert_ne!(new_id, old_id);
    sim.shutdown().await;
}
