//! Every answer of every endpoint, success and error, checked against the
//! OpenAPI files; and proof that the checker rejects what the specs forbid.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use konnect_sim::{Fault, FaultAction, SimConfig};
use serde_json::json;

use crate::common::{Answer, Api, Auth, Contract, Operation, Receiver, start_sim, start_sim_with};

const READONLY: &str = "kpat_readonly_contract_test_token_0000000000000000";

fn rfc3339(time: SystemTime) -> String {
    let time = jiff::Timestamp::try_from(time).expect("the clock is within jiff's range");
    format!("{time:.0}")
}

/// The whole API surface, every documented status we can provoke, each
/// answer validated against the spec; then the set of (spec, path, method,
/// status) seen must be everything the specs list, except 403 on reads
/// (read-only tokens may read, so nothing answers 403 to a GET).
#[tokio::test]
async fn every_documented_response_matches_the_spec() {
    let config = SimConfig {
        readonly_pats: vec![READONLY.to_string()],
        ..SimConfig::for_tests()
    };
    let sim = start_sim_with(config).await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    let readonly = || Auth::Header(format!("Bearer {READONLY}"));
    let none = || Auth::None;
    let unknown = "9b4b8f0e-55a4-4b51-9d2b-4c1c8b1f0d11";

    // v2 webhook, unconfigured.
    assert_eq!(api.get("/v2/audit-log-webhook").await.status, 200);
    api.call("GET", "/v2/audit-log-webhook", None, none())
        .await
        .problem(401);
    // v3 webhook before any destination: 404.
    api.get("/v3/audit-log-webhook").await.problem(404);
    api.call("GET", "/v3/audit-log-webhook", None, none())
        .await
        .problem(401);
    api.delete("/v3/audit-log-webhook").await.problem(404);
    api.patch("/v3/audit-log-webhook", json!({"enabled": true}))
        .await
        .problem(404);
    // JWKS needs no token.
    let jwks = api
        .call("GET", "/v2/audit-log-webhook/jwks.json", None, none())
        .await;
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.json()["keys"][0]["crv"], "Ed25519");

    for version in ["v2", "v3"] {
        let list = format!("/{version}/audit-log-destinations");
        assert_eq!(api.get(&list).await.status, 200);
        api.call("GET", &list, None, none()).await.problem(401);

        let body = json!({"name": format!("contract-{version}"), "endpoint": receiver.url("/hook"),
                          "authorization": "Bearer hook", "log_format": "json"});
        let created = api.post(&list, body.clone()).await;
        assert_eq!(created.status, 201);
        let id = created.json()["id"].as_str().unwrap().to_string();
        api.post(&list, json!({})).await.problem(400);
        api.call("POST", &list, Some(body.clone()), none())
            .await
            .problem(401);
        api.call("POST", &list, Some(body.clone()), readonly())
            .await
            .problem(403);

        let one = format!("{list}/{id}");
        assert_eq!(api.get(&one).await.status, 200);
        assert_eq!(api.call("GET", &one, None, readonly()).await.status, 200);
        api.get(&format!("{list}/{unknown}")).await.problem(404);
        api.call("GET", &one, None, none()).await.problem(401);

        assert_eq!(
            api.patch(&one, json!({"skip_ssl_verification": true}))
                .await
                .status,
            200
        );
        api.patch(&one, json!({"log_format": "xml"}))
            .await
            .problem(400);
        api.patch(&format!("{list}/{unknown}"), json!({"name": "x"}))
            .await
            .problem(404);
        api.call("PATCH", &one, Some(json!({"name": "x"})), none())
            .await
            .problem(401);
        api.call("PATCH", &one, Some(json!({"name": "x"})), readonly())
            .await
            .problem(403);

        // Attach it, so deleting it conflicts.
        let attached = api
            .patch(
                "/v3/audit-log-webhook",
                json!({"audit_log_destination_id": id, "enabled": true}),
            )
            .await;
        assert_eq!(attached.status, 200);
        api.delete(&one).await.problem(409);

        // Events and a delivery, so the status has its last_* fields.
        let report = sim.trigger("us", 3).await;
        assert!(report.all_delivered(), "{report:?}");
        let status = format!("/{version}/audit-log-webhook/status");
        let shown = api.get(&status).await;
        assert_eq!(shown.status, 200);
        assert_eq!(shown.json()["last_response_code"], 202);
        api.call("GET", &status, None, none()).await.problem(401);

        // Replay: accepted, conflict while it runs, bad ranges.
        let replay = format!("/{version}/audit-log-replay-job");
        assert_eq!(api.get(&replay).await.status, 200);
        api.call("GET", &replay, None, none()).await.problem(401);
        let range = json!({
            "start_at": rfc3339(SystemTime::now() - Duration::from_secs(3600)),
            "end_at": rfc3339(SystemTime::now()),
        });
        receiver.script([Answer::Delayed(Duration::from_millis(400), 202)]);
        assert_eq!(api.put(&replay, range.clone()).await.status, 202);
        let other = if version == "v2" { "v3" } else { "v2" };
        api.put(&format!("/{other}/audit-log-replay-job"), range.clone())
            .await
            .problem(409);
        api.put(&replay, json!({"start_at": "yesterday"}))
            .await
            .problem(400);
        api.call("PUT", &replay, Some(range.clone()), none())
            .await
            .problem(401);
        api.call("PUT", &replay, Some(range.clone()), readonly())
            .await
            .problem(403);
        sim.wait_for(Duration::from_secs(5), |s| {
            s.replay_jobs["us"].status == "completed"
        })
        .await
        .expect("the replay job completes");
        assert_eq!(api.get(&replay).await.json()["status"], "completed");

        // Detach, then the destination can go.
        api.call("DELETE", "/v3/audit-log-webhook", None, none())
            .await
            .problem(401);
        api.call("DELETE", "/v3/audit-log-webhook", None, readonly())
            .await
            .problem(403);
        assert_eq!(api.delete("/v3/audit-log-webhook").await.status, 204);
        api.call("DELETE", &one, None, none()).await.problem(401);
        api.call("DELETE", &one, None, readonly())
            .await
            .problem(403);
        assert_eq!(api.delete(&one).await.status, 204);
        api.delete(&one).await.problem(404);
    }

    // v3 webhook: success, bad id, unknown destination, auth.
    let id = api
        .create_destination("v3-hook", &receiver.url("/hook"), "cef")
        .await;
    let enable = json!({"audit_log_destination_id": id, "enabled": true});
    let enabled = api.patch("/v3/audit-log-webhook", enable.clone()).await;
    assert_eq!(enabled.json(), enable);
    assert_eq!(api.get("/v3/audit-log-webhook").await.json(), enable);
    api.patch(
        "/v3/audit-log-webhook",
        json!({"audit_log_destination_id": "nope"}),
    )
    .await
    .problem(400);
    api.patch(
        "/v3/audit-log-webhook",
        json!({"audit_log_destination_id": unknown}),
    )
    .await
    .problem(404);
    api.call(
        "PATCH",
        "/v3/audit-log-webhook",
        Some(enable.clone()),
        none(),
    )
    .await
    .problem(401);
    api.call(
        "PATCH",
        "/v3/audit-log-webhook",
        Some(enable.clone()),
        readonly(),
    )
    .await
    .problem(403);

    // v2 webhook: configured view, disable, bad body, auth.
    let shown = api.get("/v2/audit-log-webhook").await.json();
    assert_eq!(shown["endpoint"], receiver.url("/hook"));
    assert_eq!(shown["log_format"], "cef");
    assert_eq!(
        api.patch("/v2/audit-log-webhook", json!({"enabled": false}))
            .await
            .status,
        200
    );
    api.patch("/v2/audit-log-webhook", json!({"endpoint": "not a url"}))
        .await
        .problem(400);
    api.call(
        "PATCH",
        "/v2/audit-log-webhook",
        Some(json!({"enabled": false})),
        none(),
    )
    .await
    .problem(401);
    api.call(
        "PATCH",
        "/v2/audit-log-webhook",
        Some(json!({"enabled": false})),
        readonly(),
    )
    .await
    .problem(403);

    // Pull API: a page with all three types, a bad query, auth.
    sim.trigger("us", 30).await;
    let page = api.get("/v3/audit-logs?page%5Bsize%5D=100").await.json();
    let types: BTreeSet<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["authentication", "authorization", "gateway_access"])
    );
    api.get("/v3/audit-logs?page%5Bsize%5D=0")
        .await
        .problem(400);
    api.get("/v3/audit-logs?filter%5Btype%5D=login")
        .await
        .problem(400);
    api.call("GET", "/v3/audit-logs", None, none())
        .await
        .problem(401);

    let contract = Contract::global();
    let expected: BTreeSet<Operation> = contract
        .operations("audit-logs/v2")
        .into_iter()
        .chain(contract.operations("audit-logs/v3"))
        .filter(|(_, _, method, status)| !(method == "GET" && *status == 403))
        .collect();
    let covered = api.covered();
    eprintln!("covered {} of {} operations", covered.len(), expected.len());
    let missing: Vec<&Operation> = expected.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "documented answers never exercised: {missing:#?}"
    );
    sim.shutdown().await;
}

/// The checker is not vacuous: bodies, statuses and content types the specs
/// do not allow are rejected.
#[test]
fn the_contract_checker_rejects_what_the_specs_forbid() {
    let contract = Contract::global();
    let json = Some("application/json");
    let problem = Some("application/problem+json");
    let ok = |method: &str, path: &str, status: u16, ct: Option<&str>, body: &str| {
        contract.check_response(method, path, status, ct, body.as_bytes())
    };
    let destination = r#"{"id":"07ec3858-066b-4629-bdc5-d4aa893b424d","name":"d","endpoint":"https://e.test/x",
        "log_format":"json","skip_ssl_verification":false,"created_at":"2023-03-20T09:29:14.52Z",
        "updated_at":"2023-03-21T09:29:14.52Z"}"#;
    let error =
        r#"{"status":404,"title":"Not Found","instance":"kong:trace:1","detail":"Not found"}"#;

    // Accepted as a baseline.
    ok(
        "GET",
        "/v3/audit-log-destinations/07ec3858-066b-4629-bdc5-d4aa893b424d",
        200,
        json,
        destination,
    )
    .unwrap();
    ok("GET", "/v3/audit-log-destinations/x", 404, problem, error).unwrap();
    ok("DELETE", "/v2/audit-log-destinations/x", 204, None, "").unwrap();
    ok(
        "GET",
        "/v2/audit-log-webhook",
        200,
        json,
        r#"{"enabled":false,"endpoint":"unconfigured"}"#,
    )
    .unwrap();

    let rejected = [
        // Wrong types, formats and enums.
        ok(
            "GET",
            "/v2/audit-log-webhook",
            200,
            json,
            r#"{"enabled":"no"}"#,
        ),
        ok(
            "GET",
            "/v2/audit-log-webhook",
            200,
            json,
            r#"{"enabled":false,"log_format":"xml"}"#,
        ),
        ok(
            "GET",
            "/v3/audit-log-destinations/x",
            200,
            json,
            &destination.replace("07ec3858-066b-4629-bdc5-d4aa893b424d", "not-a-uuid"),
        ),
        ok(
            "GET",
            "/v2/audit-log-webhook",
            200,
            json,
            r#"{"updated_at":"yesterday"}"#,
        ),
        // Missing required fields.
        ok(
            "GET",
            "/v3/audit-log-webhook",
            200,
            json,
            r#"{"enabled":true}"#,
        ),
        ok(
            "GET",
            "/v3/audit-log-destinations",
            200,
            json,
            r#"{"data":[]}"#,
        ),
        ok(
            "GET",
            "/v3/audit-log-destinations",
            200,
            json,
            r#"{"data":[],"meta":{"size":10,"next":3,"previous":null}}"#,
        ),
        ok(
            "GET",
            "/v3/audit-log-destinations/x",
            404,
            problem,
            r#"{"status":404,"title":"Not Found","detail":"x"}"#,
        ),
        ok("POST", "/v3/audit-log-destinations", 400, problem, error),
        ok(
            "POST",
            "/v3/audit-log-destinations",
            400,
            problem,
            r#"{"status":400,"title":"Bad Request","instance":"kong:trace:1","detail":"x","invalid_parameters":[{"field":"name"}]}"#,
        ),
        ok(
            "GET",
            "/v3/audit-logs",
            200,
            json,
            r#"{"data":[{"type":"authorization"}],"meta":{"page":{"size":1,"next":null,"previous":null}}}"#,
        ),
        ok(
            "GET",
            "/v3/audit-logs",
            200,
            json,
            r#"{"data":[],"meta":{"page":{"size":1,"next":null,"previous":null}},"extra":1}"#,
        ),
        // Statuses and content types the spec does not list.
        ok("GET", "/v2/audit-log-webhook", 418, problem, error),
        ok("GET", "/v3/audit-log-destinations/x", 404, json, error),
        ok(
            "GET",
            "/v2/audit-log-webhook/jwks.json",
            401,
            problem,
            error,
        ),
        ok("DELETE", "/v2/audit-log-destinations/x", 204, None, "{}"),
        // Paths and methods the specs do not have.
        ok("GET", "/v3/audit-log-webhook/jwks.json", 200, json, "{}"),
        ok("POST", "/v2/audit-log-webhook", 200, json, "{}"),
        ok("GET", "/v1/audit-log-webhook", 200, json, "{}"),
    ];
    for (i, result) in rejected.iter().enumerate() {
        assert!(result.is_err(), "case {i} should be rejected");
    }
}

/// The same for the portal and identity specs: `additionalProperties:
/// false` bodies, required fields, formats, page-number `meta`.
#[test]
fn the_contract_checker_rejects_what_the_portal_and_identity_specs_forbid() {
    let contract = Contract::global();
    let json = Some("application/json");
    let check = |path: &str, body: &serde_json::Value| {
        contract.check_response("GET", path, 200, json, body.to_string().as_bytes())
    };
    let portal = serde_json::json!({
        "id": "9f9fd312-a987-4628-b4c5-bb4f4fddd5f7", "name": "Portal A",
        "display_name": "Developer Portal A", "description": null,
        "authentication_enabled": true, "rbac_enabled": false, "sipr_enabled": false,
        "default_api_visibility": "private", "default_page_visibility": "private",
        "default_application_auth_strategy_id": null, "auto_approve_developers": false,
        "auto_approve_applications": false, "default_domain": "abc.us.portal.konghq.com",
        "canonical_domain": "abc.us.portal.konghq.com",
        "created_at": "2022-02-07T17:46:57.52Z", "updated_at": "2022-10-08T17:00:00.52Z"});
    let one = "/v3/portals/9f9fd312-a987-4628-b4c5-bb4f4fddd5f7";
    check(one, &portal).unwrap();
    let list = serde_json::json!({"data": [portal], "meta": {"page": {"number": 1, "size": 10, "total": 1}}});
    check("/v3/portals", &list).unwrap();
    let user = serde_json::json!({"id": "7f9fd312-a987-4628-b4c5-bb4f4fddd5f7",
        "email": "user@email.com", "full_name": "Jane Doe", "active": true});
    check("/v3/users/7f9fd312-a987-4628-b4c5-bb4f4fddd5f7", &user).unwrap();

    let with = |base: &serde_json::Value, key: &str, value: serde_json::Value| {
        let mut changed = base.clone();
        changed[key] = value;
        changed
    };
    let without = |base: &serde_json::Value, key: &str| {
        let mut changed = base.clone();
        changed.as_object_mut().unwrap().remove(key);
        changed
    };
    let rejected = [
        check(one, &with(&portal, "portal_id", serde_json::json!("x"))),
        check(one, &without(&portal, "description")),
        check(
            one,
            &with(
                &portal,
                "default_api_visibility",
                serde_json::json!("secret"),
            ),
        ),
        check(one, &with(&portal, "id", serde_json::json!("not-a-uuid"))),
        check(
            "/v3/portals",
            &with(&list, "meta", serde_json::json!({"next": null})),
        ),
        check(
            &format!("{one}/developers/7cd9feff-b4da-4a9f-ba49-cbe83c75ff22"),
            &serde_json::json!({"id": "7cd9feff-b4da-4a9f-ba49-cbe83c75ff22",
                                "email": "d@example.com", "full_name": "D", "status": "approved"}),
        ),
        check(
            &format!("{one}/audit-log-webhook"),
            &serde_json::json!({"enabled": true, "audit_log_destination_id": ""}),
        ),
        check(
            &format!("{one}/audit-log-webhook/status"),
            &serde_json::json!({"webhook_status": "unconfigured"}),
        ),
        check(
            "/v3/users/7f9fd312-a987-4628-b4c5-bb4f4fddd5f7",
            &with(&user, "email", serde_json::json!("not an email")),
        ),
        check(
            "/v3/system-accounts",
            &serde_json::json!({"data": [], "meta": {"page": {"number": 1}}}),
        ),
        contract.check_response(
            "GET",
            "/v3/users",
            401,
            Some("application/problem+json"),
            b"{}",
        ),
    ];
    for (i, result) in rejected.iter().enumerate() {
        assert!(result.is_err(), "case {i} should be rejected");
    }
}

/// Answers the specs do not describe (unknown paths, wrong methods, injected
/// faults, oversized bodies) still have Konnect's error shape.
#[tokio::test]
async fn answers_outside_the_specs_are_still_konnect_errors() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let contract = Contract::global();
    let base_error = |reply: &crate::common::Reply| {
        reply.problem(reply.status);
        contract
            .check_component("audit-logs/v3", "BaseError", &reply.body)
            .unwrap();
    };

    let unknown = api.raw("GET", "/v3/no-such-thing", None, Auth::Pat).await;
    assert_eq!(unknown.status, 404);
    base_error(&unknown);

    let wrong_method = api
        .raw("POST", "/v2/audit-log-webhook", Some(b"{}"), Auth::Pat)
        .await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.headers["allow"], "GET, PATCH");
    base_error(&wrong_method);

    sim.inject_fault(Fault {
        method: None,
        path: "/v3/audit-log-destinations".into(),
        count: 1,
        action: FaultAction::Status {
            status: 503,
            retry_after: Some(1),
        },
    });
    let faulted = api
        .raw("GET", "/v3/audit-log-destinations", None, Auth::Pat)
        .await;
    assert_eq!(faulted.status, 503);
    base_error(&faulted);

    let huge = vec![b' '; (1 << 20) + 1];
    let too_big = api
        .raw("POST", "/v3/audit-log-destinations", Some(&huge), Auth::Pat)
        .await;
    assert_eq!(too_big.status, 400);
    contract
        .check_component("audit-logs/v3", "BadRequestError", &too_big.body)
        .unwrap();
    sim.shutdown().await;
}
