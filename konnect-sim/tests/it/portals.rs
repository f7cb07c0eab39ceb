//! The Dev Portal endpoints as the portal spec says: every documented
//! answer provoked and validated, the portal list's paging, filters and
//! sorting, the webhook and replay job state machines (409s included),
//! the regional-host rule and the request contract checker.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use konnect_sim::{Fault, FaultAction, NewPortal, SimConfig};
use serde_json::{Value, json};

use crate::common::{Api, Auth, Contract, Operation, Receiver, start_sim, start_sim_with};

const READONLY: &str = "kpat_readonly_portal_test_token_00000000000000000";
const UNKNOWN: &str = "9b4b8f0e-55a4-4b51-9d2b-4c1c8b1f0d11";

fn rfc3339(time: SystemTime) -> String {
    let time = jiff::Timestamp::try_from(time).expect("the clock is within jiff's range");
    format!("{time:.0}")
}

fn last_hour() -> Value {
    json!({
        "start_at": rfc3339(SystemTime::now() - Duration::from_secs(3600)),
        "end_at": rfc3339(SystemTime::now()),
    })
}

fn names(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {page}"))
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// Every documented answer of every portal operation, each validated
/// against the portal spec; then the set covered must be all of them but
/// 403 on reads (read-only tokens may read).
#[tokio::test]
async fn every_documented_portal_response_matches_the_spec() {
    let sim = start_sim_with(SimConfig {
        readonly_pats: vec![READONLY.to_string()],
        ..SimConfig::for_tests()
    })
    .await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    let readonly = || Auth::Header(format!("Bearer {READONLY}"));
    let none = || Auth::None;
    let portal = sim.add_portal("us", "Portal A").unwrap();
    let developer = sim
        .add_portal_developer(&portal.id, "dev@example.test", "Jane Dev")
        .unwrap();
    let base = format!("/v3/portals/{}", portal.id);

    // The list and one portal.
    let list = api.get("/v3/portals").await.json();
    assert_eq!(
        list["meta"]["page"],
        json!({"number": 1, "size": 10, "total": 1})
    );
    api.get("/v3/portals?page%5Bsize%5D=x").await.problem(400);
    api.call("GET", "/v3/portals", None, none())
        .await
        .problem(401);
    assert_eq!(api.get(&base).await.json(), list["data"][0]);
    api.get(&format!("/v3/portals/{UNKNOWN}"))
        .await
        .problem(404);
    api.call("GET", &base, None, none()).await.problem(401);

    // A developer.
    let dev = format!("{base}/developers/{}", developer.id);
    let shown = api.get(&dev).await.json();
    assert_eq!(shown["email"], "dev@example.test");
    assert_eq!(shown["status"], "approved");
    api.get(&format!("{base}/developers/{UNKNOWN}"))
        .await
        .problem(404);
    api.call("GET", &dev, None, none()).await.problem(401);

    // The webhook.
    let webhook = format!("{base}/audit-log-webhook");
    assert_eq!(api.get(&webhook).await.json(), json!({"enabled": false}));
    api.get(&format!("/v3/portals/{UNKNOWN}/audit-log-webhook"))
        .await
        .problem(404);
    api.call("GET", &webhook, None, none()).await.problem(401);
    let destination = api
        .create_destination("portal-hook", &receiver.url("/portal"), "json")
        .await;
    let enable = json!({"audit_log_destination_id": destination, "enabled": true});
    assert_eq!(api.patch(&webhook, enable.clone()).await.json(), enable);
    api.patch(&webhook, json!({"enabled": "yes"}))
        .await
        .problem(400);
    api.patch(
        &format!("/v3/portals/{UNKNOWN}/audit-log-webhook"),
        enable.clone(),
    )
    .await
    .problem(404);
    api.call("PATCH", &webhook, Some(enable.clone()), none())
        .await
        .problem(401);
    api.call("PATCH", &webhook, Some(enable.clone()), readonly())
        .await
        .problem(403);

    // Its status, after a real delivery.
    let report = sim.trigger_portal(&portal.id, 3).await;
    assert!(report.all_delivered(), "{report:?}");
    let status = format!("{webhook}/status");
    let shown = api.get(&status).await.json();
    assert_eq!(shown["last_response_code"], 202);
    assert_eq!(shown["webhook_status"], "active");
    api.get(&format!("/v3/portals/{UNKNOWN}/audit-log-webhook/status"))
        .await
        .problem(404);
    api.call("GET", &status, None, none()).await.problem(401);

    // The replay job: accepted, conflict while it runs, bad ranges.
    let replay = format!("{base}/audit-log-replay-job");
    assert_eq!(api.get(&replay).await.json()["status"], "unconfigured");
    api.get(&format!("/v3/portals/{UNKNOWN}/audit-log-replay-job"))
        .await
        .problem(404);
    api.call("GET", &replay, None, none()).await.problem(401);
    // Held, the job stays pending (active) until released.
    sim.hold_replay_jobs(true);
    assert_eq!(api.put(&replay, last_hour()).await.status, 202);
    let conflict = api.put(&replay, last_hour()).await.problem(409);
    assert_eq!(conflict["detail"], "A replay job is currently running");
    // The webhook it delivers through cannot be deleted meanwhile.
    api.delete(&webhook).await.problem(409);
    api.put(&replay, json!({"start_at": "yesterday"}))
        .await
        .problem(400);
    api.put(
        &format!("/v3/portals/{UNKNOWN}/audit-log-replay-job"),
        last_hour(),
    )
    .await
    .problem(404);
    api.call("PUT", &replay, Some(last_hour()), none())
        .await
        .problem(401);
    api.call("PUT", &replay, Some(last_hour()), readonly())
        .await
        .problem(403);
    sim.hold_replay_jobs(false);
    sim.wait_for(Duration::from_secs(10), |s| {
        s.portal(&portal.id).unwrap().replay_job.status == "completed"
    })
    .await
    .expect("the replay job completes");

    // Delete the webhook, then the destination can go.
    api.delete(&format!("/{}/audit-log-destinations/{destination}", "v3"))
        .await
        .problem(409);
    api.call("DELETE", &webhook, None, none())
        .await
        .problem(401);
    api.call("DELETE", &webhook, None, readonly())
        .await
        .problem(403);
    api.delete(&format!("/v3/portals/{UNKNOWN}/audit-log-webhook"))
        .await
        .problem(404);
    assert_eq!(api.delete(&webhook).await.status, 204);
    assert_eq!(api.get(&webhook).await.json(), json!({"enabled": false}));
    assert_eq!(
        api.delete(&format!("/v3/audit-log-destinations/{destination}"))
            .await
            .status,
        204
    );

    let expected: BTreeSet<Operation> = Contract::global()
        .operations("portal-audit-logs/v3")
        .into_iter()
        .filter(|(_, _, method, status)| !(method == "GET" && *status == 403))
        .collect();
    let covered = api.covered();
    let missing: Vec<&Operation> = expected.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "documented answers never exercised: {missing:#?}"
    );
    sim.shutdown().await;
}

/// `page[size]`/`page[number]` with `meta.page.total`; the filter forms
/// of `PortalFilterParameters`; `sort`; 400s in the spec's example shape.
#[tokio::test]
async fn the_portal_list_pages_filters_and_sorts() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    for (name, rbac) in [
        ("Beta", true),
        ("alpha", false),
        ("Gamma", true),
        ("delta", false),
    ] {
        sim.add_portal_with(&NewPortal {
            rbac_enabled: rbac,
            description: (name == "Gamma").then(|| "the third".to_string()),
            ..NewPortal::named(name)
        })
        .unwrap();
    }
    sim.add_portal("eu", "Elsewhere").unwrap();
    assert!(
        sim.add_portal("us", "alpha")
            .unwrap_err()
            .contains("unique"),
        "names are unique in a region"
    );
    assert!(
        sim.add_portal("eu", "alpha").is_ok(),
        "but not across regions"
    );

    let page = |query: &str| {
        let api = &api;
        let path = format!("/v3/portals?{query}");
        async move { api.get(&path).await.json() }
    };
    let first = page("page%5Bsize%5D=3").await;
    assert_eq!(names(&first), ["Beta", "alpha", "Gamma"], "creation order");
    assert_eq!(
        first["meta"]["page"],
        json!({"number": 1, "size": 3, "total": 4})
    );
    let second = page("page%5Bsize%5D=3&page%5Bnumber%5D=2").await;
    assert_eq!(names(&second), ["delta"]);
    assert_eq!(second["meta"]["page"]["number"], 2);
    assert_eq!(
        names(&page("page[size]=3&page[number]=9").await),
        Vec::<String>::new()
    );

    assert_eq!(
        names(&page("filter%5Bname%5D%5Beq%5D=alpha").await),
        ["alpha"]
    );
    assert_eq!(names(&page("filter[name]=Gamma").await), ["Gamma"]);
    assert_eq!(
        names(&page("filter[name][eq]=ALPHA").await),
        Vec::<String>::new()
    );
    assert_eq!(names(&page("filter[name][contains]=LT").await), ["delta"]);
    assert_eq!(
        names(&page("filter[name][oeq]=Beta,delta").await),
        ["Beta", "delta"]
    );
    assert_eq!(
        names(&page("filter[name][ocontains]=amm,lph").await),
        ["alpha", "Gamma"]
    );
    assert_eq!(
        names(&page("filter[name][neq]=Beta").await),
        ["alpha", "Gamma", "delta"]
    );
    assert_eq!(
        names(&page("filter[rbac_enabled]=true").await),
        ["Beta", "Gamma"]
    );
    assert_eq!(
        names(&page("filter[rbac_enabled]=false&filter[name][contains]=a").await),
        ["alpha", "delta"]
    );
    assert_eq!(
        names(&page("filter[description][contains]=third").await),
        ["Gamma"]
    );
    let gamma = sim
        .snapshot()
        .portal_named("us", "Gamma")
        .unwrap()
        .id
        .clone();
    assert_eq!(
        names(&page(&format!("filter[id][eq]={gamma}")).await),
        ["Gamma"]
    );
    assert_eq!(
        page("filter[name][eq]=Beta").await["meta"]["page"]["total"],
        1
    );

    assert_eq!(
        names(&page("sort=name").await),
        ["Beta", "Gamma", "alpha", "delta"]
    );
    assert_eq!(
        names(&page("sort=name%20desc").await),
        ["delta", "alpha", "Gamma", "Beta"]
    );
    assert_eq!(
        names(&page("sort=-rbac_enabled,name").await),
        ["Beta", "Gamma", "alpha", "delta"]
    );

    let bad_size = api.get("/v3/portals?page%5Bsize%5D=ten").await.problem(400);
    assert_eq!(bad_size["title"], "Invalid Request");
    assert_eq!(
        bad_size["invalid_parameters"],
        json!([{"field": "page[size]", "rule": "is_number", "source": "query",
                "reason": "\"page[size]\" must be a number"}])
    );
    let bad_number = api.get("/v3/portals?page%5Bnumber%5D=x").await.problem(400);
    assert_eq!(bad_number["invalid_parameters"][0]["field"], "page[number]");
    let bad_sort = api.get("/v3/portals?sort=colour").await.problem(400);
    assert_eq!(bad_sort["invalid_parameters"][0]["rule"], "enum");
    assert_eq!(bad_sort["invalid_parameters"][0]["field"], "sort");
    for query in [
        "filter[nmae][eq]=x",
        "filter[name][like]=x",
        "filter[rbac_enabled]=maybe",
        "filter[id]=x",
        "filter[name][eq][x]=y",
    ] {
        api.get(&format!("/v3/portals?{query}")).await.problem(400);
    }

    // Regions: the eu host lists eu's portals.
    let eu = api.with_host("eu.api.konghq.com");
    assert_eq!(
        names(&eu.get("/v3/portals?sort=name").await.json()),
        ["Elsewhere", "alpha"]
    );
    // Another region's portal is not found.
    eu.get(&format!("/v3/portals/{gamma}")).await.problem(404);
    sim.shutdown().await;
}

/// Portals are regional: the global host does not serve them.
#[tokio::test]
async fn portals_are_not_on_the_global_host() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let portal = sim.add_portal("us", "P").unwrap();
    let global = api.with_host("global.api.konghq.com");
    for path in [
        "/v3/portals".to_string(),
        format!("/v3/portals/{}", portal.id),
        format!("/v3/portals/{}/audit-log-webhook", portal.id),
    ] {
        let reply = global.raw("GET", &path, None, Auth::Pat).await;
        assert_eq!(reply.status, 404, "{path}");
        assert!(reply.text().contains("regional hosts"), "{}", reply.text());
    }
    let regional = api.with_host("us.api.konghq.com");
    assert_eq!(regional.get("/v3/portals").await.status, 200);
    sim.shutdown().await;
}

/// PATCH keeps what it does not name, refuses properties the body does not
/// have, an unknown or malformed destination, and enabling without one;
/// DELETE empties the destination and disables; a destination a portal
/// webhook points at cannot be deleted.
#[tokio::test]
async fn the_portal_webhook_state_machine() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let portal = sim.add_portal("us", "P").unwrap();
    let other = sim.add_portal("us", "Q").unwrap();
    let webhook = format!("/v3/portals/{}/audit-log-webhook", portal.id);
    assert!(sim.snapshot().is_pristine());

    let blank = api
        .patch(&webhook, json!({"enabled": true}))
        .await
        .problem(400);
    assert_eq!(
        blank["invalid_parameters"][0],
        json!({"field": "audit_log_destination_id", "rule": "required", "source": "body",
               "reason": "cannot be blank"})
    );
    assert_eq!(
        api.patch(&webhook, json!({"enabled": false})).await.json(),
        json!({"enabled": false})
    );
    let extra = api
        .patch(
            &webhook,
            json!({"enabled": false, "endpoint": "https://x.test"}),
        )
        .await
        .problem(400);
    assert_eq!(extra["invalid_parameters"][0]["field"], "endpoint");
    assert_eq!(extra["invalid_parameters"][0]["rule"], "unknown_property");
    let malformed = api
        .patch(&webhook, json!({"audit_log_destination_id": "nope"}))
        .await
        .problem(400);
    assert_eq!(
        malformed["invalid_parameters"][0]["reason"],
        "destination id format is invalid"
    );
    api.patch(&webhook, json!({"audit_log_destination_id": UNKNOWN}))
        .await
        .problem(404);
    let not_json = api
        .call_bytes("PATCH", &webhook, Some(b"not json"), Auth::Pat)
        .await
        .problem(400);
    assert_eq!(
        not_json["invalid_parameters"][0],
        json!({"field": "body", "source": "body", "reason": "request format is invalid"})
    );

    let destination = api
        .create_destination("shared", "https://listener.example.test/hook", "cef")
        .await;
    // Attach without enabling, then enable alone: the destination stays.
    assert_eq!(
        api.patch(&webhook, json!({"audit_log_destination_id": destination}))
            .await
            .json(),
        json!({"enabled": false, "audit_log_destination_id": destination})
    );
    assert_eq!(
        api.patch(&webhook, json!({"enabled": true})).await.json(),
        json!({"enabled": true, "audit_log_destination_id": destination})
    );
    let snapshot = sim.snapshot();
    let state = &snapshot.portal(&portal.id).unwrap().webhook;
    assert!(state.enabled);
    assert_eq!(state.destination_id.as_deref(), Some(destination.as_str()));
    assert!(!snapshot.is_pristine());
    assert!(
        snapshot
            .portal(&other.id)
            .unwrap()
            .webhook
            .is_unconfigured(),
        "one webhook per portal"
    );
    // The region's webhook is untouched.
    assert!(snapshot.webhook("us").is_unconfigured());

    // The org webhook can share the destination; it is in use while either
    // points at it, enabled or not.
    api.patch(
        "/v3/audit-log-webhook",
        json!({"audit_log_destination_id": destination, "enabled": true}),
    )
    .await;
    api.patch(&webhook, json!({"enabled": false})).await;
    let in_use = api
        .delete(&format!("/v3/audit-log-destinations/{destination}"))
        .await
        .problem(409);
    assert_eq!(in_use["detail"], "Destination is in use");
    assert_eq!(api.delete("/v3/audit-log-webhook").await.status, 204);
    api.delete(&format!("/v2/audit-log-destinations/{destination}"))
        .await
        .problem(409);

    assert_eq!(api.delete(&webhook).await.status, 204);
    assert_eq!(api.delete(&webhook).await.status, 204, "idempotent");
    assert_eq!(api.get(&webhook).await.json(), json!({"enabled": false}));
    assert_eq!(
        api.delete(&format!("/v3/audit-log-destinations/{destination}"))
            .await
            .status,
        204
    );
    assert!(sim.snapshot().is_pristine());
    sim.shutdown().await;
}

/// The portal replay job: the 7-day window, 202 `accepted`, 409 while it
/// is accepted, pending or running, re-delivery of that portal's events
/// only, `failed` when asked or when nothing is enabled.
#[tokio::test]
async fn the_portal_replay_job_state_machine() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    let portal = sim.add_portal("us", "P").unwrap();
    let other = sim.add_portal("us", "Q").unwrap();
    let base = format!("/v3/portals/{}", portal.id);
    let replay = format!("{base}/audit-log-replay-job");
    let destination = api
        .create_destination("replays", &receiver.url("/hook"), "json")
        .await;
    for id in [&portal.id, &other.id] {
        api.patch(
            &format!("/v3/portals/{id}/audit-log-webhook"),
            json!({"audit_log_destination_id": destination, "enabled": true}),
        )
        .await;
    }
    api.patch(
        "/v3/audit-log-webhook",
        json!({"audit_log_destination_id": destination, "enabled": true}),
    )
    .await;
    let mine = sim.trigger_portal(&portal.id, 7).await;
    assert!(mine.all_delivered(), "{mine:?}");
    sim.trigger_portal(&other.id, 4).await;
    sim.trigger("us", 5).await;

    let now = SystemTime::now();
    let week = Duration::from_secs(7 * 24 * 3600);
    for (start, end) in [
        (now - week - Duration::from_secs(120), now),
        (now, now - Duration::from_secs(60)),
        (
            now - Duration::from_secs(60),
            now + Duration::from_secs(3600),
        ),
    ] {
        api.put(
            &replay,
            json!({"start_at": rfc3339(start), "end_at": rfc3339(end)}),
        )
        .await
        .problem(400);
    }
    api.put(&replay, json!({"end_at": rfc3339(now)}))
        .await
        .problem(400);

    sim.hold_replay_jobs(true);
    let accepted = api.put(&replay, last_hour()).await;
    assert_eq!(accepted.status, 202);
    assert_eq!(accepted.json()["status"], "accepted");
    sim.wait_for(Duration::from_secs(5), |s| {
        s.portal(&portal.id).unwrap().replay_job.status == "pending"
    })
    .await
    .expect("pending while held");
    api.put(&replay, last_hour()).await.problem(409);
    // Another portal's job is independent.
    let others = format!("/v3/portals/{}/audit-log-replay-job", other.id);
    assert_eq!(api.put(&others, last_hour()).await.status, 202);
    let before = receiver.received().len();
    sim.hold_replay_jobs(false);
    sim.wait_for(Duration::from_secs(10), |s| {
        s.portal(&portal.id).unwrap().replay_job.status == "completed"
            && s.portal(&other.id).unwrap().replay_job.status == "completed"
    })
    .await
    .expect("both complete");
    let shown = api.get(&replay).await.json();
    assert_eq!(shown["status"], "completed");
    assert_ne!(shown["updated_at"], "0001-01-01T00:00:00Z");

    // The job re-sent exactly this portal's 7 events, as they were.
    let snapshot = sim.snapshot();
    let replayed: Vec<&str> = snapshot
        .deliveries
        .iter()
        .filter(|d| {
            d.source == konnect_sim::DeliverySource::Replay
                && d.portal_id.as_deref() == Some(portal.id.as_str())
        })
        .flat_map(|d| d.records.iter().map(String::as_str))
        .collect();
    assert_eq!(replayed, mine.delivered_records());
    assert_eq!(
        receiver.received().len(),
        before + 2,
        "one batch per portal"
    );
    assert_eq!(
        snapshot.replay_jobs["us"].status, "unconfigured",
        "the org job is apart"
    );

    // Failures: asked for, this portal only.
    sim.fail_portal_replay_jobs(&portal.id, 1);
    assert_eq!(api.put(&others, last_hour()).await.status, 202);
    assert_eq!(api.put(&replay, last_hour()).await.status, 202);
    sim.wait_for(Duration::from_secs(10), |s| {
        s.portal(&portal.id).unwrap().replay_job.status == "failed"
            && s.portal(&other.id).unwrap().replay_job.status == "completed"
    })
    .await
    .expect("only this portal's job fails");
    // And with the webhook deleted, there is nowhere to replay to.
    api.delete(&format!("{base}/audit-log-webhook")).await;
    assert_eq!(api.put(&replay, last_hour()).await.status, 202);
    sim.wait_for(Duration::from_secs(10), |s| {
        s.portal(&portal.id).unwrap().replay_job.status == "failed"
    })
    .await
    .expect("no webhook: failed");
    sim.shutdown().await;
}

/// Every new route can be failed by the fault injection, with a status
/// (and Retry-After), a delay or a dropped connection.
#[tokio::test]
async fn portal_routes_take_faults() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let portal = sim.add_portal("us", "P").unwrap();
    let base = format!("/v3/portals/{}", portal.id);
    sim.inject_fault(Fault {
        method: Some("PATCH".into()),
        path: format!("{base}/audit-log-webhook"),
        count: 2,
        action: FaultAction::Status {
            status: 503,
            retry_after: Some(3),
        },
    });
    for _ in 0..2 {
        let reply = api
            .raw(
                "PATCH",
                &format!("{base}/audit-log-webhook"),
                Some(b"{\"enabled\":false}"),
                Auth::Pat,
            )
            .await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.headers["retry-after"], "3");
    }
    assert_eq!(
        api.patch(
            &format!("{base}/audit-log-webhook"),
            json!({"enabled": false})
        )
        .await
        .status,
        200
    );
    sim.inject_fault(Fault {
        method: None,
        path: "/v3/portals/*".into(),
        count: 1,
        action: FaultAction::Problem {
            status: 409,
            detail: "Conflict".into(),
        },
    });
    api.delete(&format!("{base}/audit-log-webhook"))
        .await
        .problem(409);
    sim.inject_fault(Fault {
        method: None,
        path: "/v3/portals".into(),
        count: 1,
        action: FaultAction::Drop,
    });
    let client = crate::common::http_client().build().unwrap();
    let dropped = client
        .get(format!("{}/v3/portals", sim.base_url()))
        .bearer_auth(sim.pat())
        .send()
        .await;
    assert!(dropped.is_err(), "the connection is dropped");
    sim.inject_fault(Fault {
        method: None,
        path: format!("{base}/audit-log-replay-job"),
        count: 1,
        action: FaultAction::Delay(Duration::from_millis(150)),
    });
    let started = std::time::Instant::now();
    assert_eq!(
        api.get(&format!("{base}/audit-log-replay-job"))
            .await
            .status,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
    let snapshot = sim.snapshot();
    assert_eq!(
        snapshot.request_counts["PATCH /v3/portals/{portalId}/audit-log-webhook"],
        3
    );
    assert_eq!(snapshot.request_counts["GET /v3/portals"], 1);
    sim.shutdown().await;
}

/// The request checker: a client that keeps the contract leaves no
/// violation; one that does not is recorded, readable from `Sim` and the
/// admin API, and cleared on demand.
#[tokio::test]
async fn requests_that_break_the_contract_are_recorded() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let portal = sim.add_portal("us", "P").unwrap();
    let base = format!("/v3/portals/{}", portal.id);
    api.get("/v3/portals?filter%5Bname%5D%5Beq%5D=P&page%5Bsize%5D=100")
        .await;
    api.get(&format!("{base}/audit-log-webhook")).await;
    api.patch(
        &format!("{base}/audit-log-webhook"),
        json!({"enabled": false}),
    )
    .await;
    api.put(&format!("{base}/audit-log-replay-job"), last_hour())
        .await;
    assert_eq!(sim.contract_violations(), Vec::new());

    // `limit` is not a parameter of the list (it is ignored) and
    // `endpoint` not a property of the webhook body (it is refused): both
    // are recorded.
    api.raw("GET", "/v3/portals?limit=5", None, Auth::Pat).await;
    api.raw(
        "PATCH",
        &format!("{base}/audit-log-webhook"),
        Some(br#"{"enabled":false,"endpoint":"https://x.test"}"#),
        Auth::Pat,
    )
    .await;
    let violations = sim.contract_violations();
    assert_eq!(violations.len(), 2, "{violations:#?}");
    assert_eq!(violations[0].operation.as_deref(), Some("list-portals"));
    assert!(
        violations[0].problems[0].contains("limit"),
        "{violations:?}"
    );
    assert_eq!(
        violations[1].operation.as_deref(),
        Some("update-portal-audit-log-webhook")
    );
    assert!(
        violations[1].problems[0].contains("endpoint"),
        "{violations:?}"
    );

    let listed = api
        .raw("GET", "/_sim/contract-violations", None, Auth::None)
        .await
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["path"], "/v3/portals");
    assert_eq!(listed[0]["query"], "limit=5");
    assert_eq!(
        api.raw("DELETE", "/_sim/contract-violations", None, Auth::None)
            .await
            .status,
        204
    );
    assert!(sim.contract_violations().is_empty());
    sim.shutdown().await;
}

/// The admin API seeds and removes portals and developers and triggers a
/// portal's events, for shell demos and other languages.
#[tokio::test]
async fn admin_api_seeds_portals_and_triggers_their_events() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    let created = api.admin("POST",
        "/_sim/portals",
        Some(
            json!({"name": "Partner Portal", "description": "for partners", "rbac_enabled": true}),
        ),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_string();
    assert_eq!(created.json()["region"], "us");
    let taken = api
        .admin(
            "POST",
            "/_sim/portals",
            Some(json!({"name": "Partner Portal"})),
        )
        .await;
    assert_eq!(taken.status, 400);
    assert!(taken.text().contains("unique"), "{}", taken.text());
    let eu = api
        .admin(
            "POST",
            "/_sim/portals",
            Some(json!({"name": "Partner Portal", "region": "eu"})),
        )
        .await;
    assert_eq!(eu.status, 201);
    assert_eq!(
        api.admin(
            "POST",
            "/_sim/portals",
            Some(json!({"name": "x", "colour": 1}))
        )
        .await
        .status,
        400
    );
    let shown = api.get(&format!("/v3/portals/{id}")).await.json();
    assert_eq!(shown["description"], "for partners");
    assert_eq!(shown["rbac_enabled"], true);

    let developer = api
        .admin(
            "POST",
            &format!("/_sim/portals/{id}/developers"),
            Some(
                json!({"email": "jane@example.test", "full_name": "Jane Dev", "status": "pending"}),
            ),
        )
        .await;
    assert_eq!(developer.status, 201, "{}", developer.text());
    let developer_id = developer.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        api.get(&format!("/v3/portals/{id}/developers/{developer_id}"))
            .await
            .json()["status"],
        "pending"
    );
    assert_eq!(
        api.admin(
            "POST",
            &format!("/_sim/portals/{UNKNOWN}/developers"),
            Some(json!({"email": "a@b.test", "full_name": "A"}))
        )
        .await
        .status,
        404
    );

    let destination = api
        .create_destination("admin", &receiver.url("/p"), "cef")
        .await;
    api.patch(
        &format!("/v3/portals/{id}/audit-log-webhook"),
        json!({"audit_log_destination_id": destination, "enabled": true}),
    )
    .await;
    let triggered = api
        .admin(
            "POST",
            "/_sim/trigger",
            Some(json!({"portal_id": id, "count": 3})),
        )
        .await;
    assert_eq!(triggered.status, 200, "{}", triggered.text());
    let report: konnect_sim::TriggerReport = serde_json::from_slice(&triggered.body).unwrap();
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(report.portal_id.as_deref(), Some(id.as_str()));
    for record in report.delivered_records() {
        assert!(
            record.contains(&format!(" principal_id={developer_id} ")),
            "{record}"
        );
    }
    assert_eq!(
        api.admin(
            "POST",
            "/_sim/trigger",
            Some(json!({"portal_id": UNKNOWN, "count": 1}))
        )
        .await
        .status,
        404
    );
    let knobs = api
        .admin(
            "POST",
            "/_sim/replay-jobs",
            Some(json!({"portal_id": id, "fail": 2})),
        )
        .await
        .json();
    assert_eq!(knobs["fail_portals"][&id], 2);
    assert_eq!(knobs["fail"], 0, "the any-stream count is untouched");

    let listed = api.admin("GET", "/_sim/portals", None).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["developers"][0]["email"], "jane@example.test");
    assert_eq!(listed[0]["webhook"]["enabled"], true);
    // Removing a portal takes its webhook along; the destination stays.
    assert_eq!(
        api.admin("DELETE", &format!("/_sim/portals/{id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        api.admin("DELETE", &format!("/_sim/portals/{id}"), None)
            .await
            .status,
        404
    );
    api.get(&format!("/v3/portals/{id}")).await.problem(404);
    assert_eq!(
        api.delete(&format!("/v3/audit-log-destinations/{destination}"))
            .await
            .status,
        204
    );
    sim.shutdown().await;
}
