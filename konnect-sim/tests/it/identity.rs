//! The identity endpoints (users, system accounts) as the identity spec
//! says: every documented answer, paging and filters, the global-host
//! rule, 404s, injected 429s with Retry-After, and the per-route request
//! counts a client test uses to prove a cache works.

use std::collections::BTreeSet;

use konnect_sim::{Fault, FaultAction, NewSystemAccount, NewUser, SimConfig};
use serde_json::{Value, json};

use crate::common::{Api, Auth, Contract, Operation, start_sim, start_sim_with};

const READONLY: &str = "kpat_readonly_identity_test_token_0000000000000000";
const UNKNOWN: &str = "9b4b8f0e-55a4-4b51-9d2b-4c1c8b1f0d11";

fn emails(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {page}"))
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect()
}

fn account_names(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {page}"))
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn every_documented_identity_response_matches_the_spec() {
    let sim = start_sim_with(SimConfig {
        readonly_pats: vec![READONLY.to_string()],
        ..SimConfig::for_tests()
    })
    .await;
    let api = Api::new(&sim);
    let none = || Auth::None;
    let user = sim.add_user("ana@example.test", "Ana Admin").unwrap();
    let account = sim.add_system_account("terraform", "CI runs").unwrap();

    let users = api.get("/v3/users").await.json();
    assert_eq!(
        users["meta"]["page"],
        json!({"number": 1, "size": 10, "total": 1})
    );
    assert_eq!(users["data"][0]["id"], user.id.as_str());
    api.get("/v3/users?filter%5Bactions%5D%5Bcontains%5D=x")
        .await
        .problem(400);
    let one = api.get(&format!("/v3/users/{}", user.id)).await.json();
    assert_eq!(
        one,
        json!({"id": user.id, "email": "ana@example.test", "full_name": "Ana Admin",
               "preferred_name": "Ana", "active": true, "inferred_region": "us",
               "created_at": user.created_at, "updated_at": user.updated_at})
    );
    let bad_id = api.get("/v3/users/not-a-uuid").await.problem(400);
    assert_eq!(
        bad_id["invalid_parameters"],
        json!([{"field": "id", "rule": "is_uuid", "source": "path",
                "reason": "must be a valid UUID v4"}])
    );
    api.get(&format!("/v3/users/{UNKNOWN}")).await.problem(404);

    let accounts = api.get("/v3/system-accounts").await.json();
    assert_eq!(accounts["data"][0]["name"], "terraform");
    assert_eq!(accounts["meta"]["page"]["total"], 1);
    api.get("/v3/system-accounts?filter%5Bname%5D%5Bneq%5D=x")
        .await
        .problem(400);
    api.call("GET", "/v3/system-accounts", None, none())
        .await
        .problem(401);
    let shown = api
        .get(&format!("/v3/system-accounts/{}", account.id))
        .await
        .json();
    assert_eq!(
        shown,
        json!({"id": account.id, "name": "terraform", "description": "CI runs",
               "created_at": account.created_at, "updated_at": account.updated_at,
               "konnect_managed": false})
    );
    api.get(&format!("/v3/system-accounts/{UNKNOWN}"))
        .await
        .problem(404);
    api.get("/v3/system-accounts/anything").await.problem(404);
    api.call(
        "GET",
        &format!("/v3/system-accounts/{}", account.id),
        None,
        none(),
    )
    .await
    .problem(401);
    // Read-only tokens read.
    let readonly = api
        .call(
            "GET",
            "/v3/users",
            None,
            Auth::Header(format!("Bearer {READONLY}")),
        )
        .await;
    assert_eq!(readonly.status, 200);
    // The spec lists no 401 for the user endpoints; the emulator still
    // wants a token there (outside the spec, so not checked against it).
    let anonymous = api.raw("GET", "/v3/users", None, none()).await;
    assert_eq!(anonymous.status, 401);

    let expected: BTreeSet<Operation> = Contract::global()
        .operations("identity/v3")
        .into_iter()
        .filter(|(_, _, method, status)| !(method == "GET" && *status == 403))
        .collect();
    let covered = api.covered();
    let missing: Vec<&Operation> = expected.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "documented answers never exercised: {missing:#?}"
    );
    // The deliberately bad requests above, and only those, broke the
    // contract (`accountId` is any string in the spec).
    let broken: Vec<String> = sim
        .contract_violations()
        .iter()
        .map(|v| format!("{}?{}", v.path, v.query))
        .collect();
    assert_eq!(
        broken,
        [
            "/v3/users?filter%5Bactions%5D%5Bcontains%5D=x",
            "/v3/users/not-a-uuid?",
            "/v3/system-accounts?filter%5Bname%5D%5Bneq%5D=x",
        ]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn identity_lists_page_and_filter() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    for (email, name, active) in [
        ("ana@example.test", "Ana Admin", true),
        ("bo@example.test", "Bo Builder", true),
        ("cy@partner.test", "Cy Contractor", false),
        ("di@example.test", "Di Dev", true),
    ] {
        sim.add_user_with(&NewUser {
            email: email.into(),
            full_name: name.into(),
            active: Some(active),
            ..NewUser::default()
        })
        .unwrap();
    }
    assert!(
        sim.add_user("ANA@example.test", "Another Ana").is_err(),
        "emails are unique"
    );
    let fixed = sim
        .add_user_with(&NewUser {
            email: "fixed@example.test".into(),
            full_name: "Fixed Id".into(),
            id: Some(UNKNOWN.into()),
            ..NewUser::default()
        })
        .unwrap();
    assert_eq!(fixed.id, UNKNOWN);
    for (name, description, managed) in [
        ("terraform", "CI runs", false),
        ("konnect-internal", "managed by Konnect", true),
        ("deck", "GitOps", false),
    ] {
        sim.add_system_account_with(&NewSystemAccount {
            name: name.into(),
            description: Some(description.into()),
            konnect_managed: managed,
            ..NewSystemAccount::default()
        })
        .unwrap();
    }

    let get = |path: &str| {
        let api = &api;
        let path = path.to_string();
        async move { api.get(&path).await.json() }
    };
    let first = get("/v3/users?page%5Bsize%5D=2").await;
    assert_eq!(emails(&first), ["ana@example.test", "bo@example.test"]);
    assert_eq!(
        first["meta"]["page"],
        json!({"number": 1, "size": 2, "total": 5})
    );
    let third = get("/v3/users?page%5Bsize%5D=2&page%5Bnumber%5D=3").await;
    assert_eq!(emails(&third), ["fixed@example.test"]);
    assert_eq!(
        emails(&get("/v3/users?filter%5Bemail%5D%5Beq%5D=bo%40example.test").await),
        ["bo@example.test"]
    );
    assert_eq!(
        emails(&get("/v3/users?filter[email][contains]=PARTNER").await),
        ["cy@partner.test"]
    );
    assert_eq!(
        emails(&get("/v3/users?filter[full_name][eq]=Di%20Dev").await),
        ["di@example.test"]
    );
    assert_eq!(
        emails(&get("/v3/users?filter[full_name][contains]=ad").await),
        ["ana@example.test"]
    );
    assert_eq!(
        emails(&get("/v3/users?filter[active]=false").await),
        ["cy@partner.test"]
    );
    assert_eq!(
        emails(&get(&format!("/v3/users?filter[id][eq]={UNKNOWN}")).await),
        ["fixed@example.test"]
    );
    assert_eq!(
        emails(&get(&format!("/v3/users?filter[id]={UNKNOWN}")).await),
        ["fixed@example.test"]
    );
    assert_eq!(
        get("/v3/users?filter[email][eq]=nobody@example.test").await["meta"]["page"]["total"],
        0
    );

    assert_eq!(
        account_names(&get("/v3/system-accounts?filter[name][eq]=deck").await),
        ["deck"]
    );
    assert_eq!(
        account_names(&get("/v3/system-accounts?filter[name][contains]=TERRA").await),
        ["terraform"]
    );
    assert_eq!(
        account_names(&get("/v3/system-accounts?filter[description][contains]=konnect").await),
        ["konnect-internal"]
    );
    assert_eq!(
        account_names(&get("/v3/system-accounts?filter[konnect_managed]=false").await),
        ["terraform", "deck"]
    );

    let unsupported = api
        .get("/v3/users?filter%5Bemail%5D%5Bneq%5D=x")
        .await
        .problem(400);
    assert_eq!(
        unsupported["invalid_parameters"],
        json!([{"field": "[filter][email][neq]", "source": "query",
                "reason": "[neq] is not a supported filter operation"}])
    );
    for query in [
        "filter[actions][contains]=x",
        "filter[email]=bare",
        "filter[active]=yes",
        "page[size]=many",
        "page[number]=0",
    ] {
        api.get(&format!("/v3/users?{query}")).await.problem(400);
    }
    api.get("/v3/system-accounts?filter[konnect_managed]=1")
        .await
        .problem(400);
    sim.shutdown().await;
}

/// Identity is on the global host only.
#[tokio::test]
async fn identity_is_not_on_regional_hosts() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let user = sim.add_user("ana@example.test", "Ana Admin").unwrap();
    let regional = api.with_host("eu.api.konghq.com");
    let reply = regional
        .raw("GET", &format!("/v3/users/{}", user.id), None, Auth::Pat)
        .await;
    assert_eq!(reply.status, 404);
    assert!(reply.text().contains("global host"), "{}", reply.text());
    let global = api.with_host("global.api.konghq.com");
    assert_eq!(
        global.get(&format!("/v3/users/{}", user.id)).await.status,
        200
    );
    assert_eq!(global.get("/v3/system-accounts").await.status, 200);
    sim.shutdown().await;
}

/// What a client with a lookup cache needs: 429 with Retry-After and 5xx
/// on demand, 404 for unknown ids, and per-route counts to prove a second
/// run made no lookup.
#[tokio::test]
async fn lookups_can_be_throttled_failed_and_counted() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let user = sim.add_user("ana@example.test", "Ana Admin").unwrap();
    let path = format!("/v3/users/{}", user.id);
    sim.inject_fault(Fault {
        method: Some("GET".into()),
        path: "/v3/users/*".into(),
        count: 2,
        action: FaultAction::Status {
            status: 429,
            retry_after: Some(1),
        },
    });
    sim.inject_fault(Fault::status(Some("GET"), "/v3/system-accounts/*", 1, 503));
    for _ in 0..2 {
        let throttled = api.raw("GET", &path, None, Auth::Pat).await;
        assert_eq!(throttled.status, 429);
        assert_eq!(throttled.headers["retry-after"], "1");
        assert_eq!(
            throttled.content_type.as_deref(),
            Some("application/problem+json")
        );
    }
    assert_eq!(api.get(&path).await.status, 200);
    let failed = api
        .raw(
            "GET",
            &format!("/v3/system-accounts/{UNKNOWN}"),
            None,
            Auth::Pat,
        )
        .await;
    assert_eq!(failed.status, 503);
    api.get(&format!("/v3/users/{UNKNOWN}")).await.problem(404);

    assert_eq!(sim.request_count("GET", "/v3/users/{userId}"), 4);
    assert_eq!(
        sim.request_count("get", "/v3/system-accounts/{accountId}"),
        1
    );
    assert_eq!(sim.request_count("GET", "/v3/users"), 0);
    let counts = api
        .raw("GET", "/_sim/request-counts", None, Auth::None)
        .await
        .json();
    assert_eq!(counts["GET /v3/users/{userId}"], 4);
    assert!(
        sim.contract_violations().is_empty(),
        "{:?}",
        sim.contract_violations()
    );
    sim.reset();
    assert_eq!(sim.request_count("GET", "/v3/users/{userId}"), 0);
    sim.shutdown().await;
}

/// The admin API seeds principals for shell demos and other languages.
#[tokio::test]
async fn admin_api_seeds_users_and_system_accounts() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let user = api.admin("POST",
        "/_sim/users",
        Some(json!({"email": "ana@example.test", "full_name": "Ana Admin", "preferred_name": "A"})),
    )
    .await;
    assert_eq!(user.status, 201);
    assert_eq!(user.json()["preferred_name"], "A");
    assert_eq!(
        api.admin(
            "POST",
            "/_sim/users",
            Some(json!({"email": "ana@example.test", "full_name": "Again"}))
        )
        .await
        .status,
        400
    );
    assert_eq!(
        api.admin("POST", "/_sim/users", Some(json!({"email": "x@y.test"})))
            .await
            .status,
        400,
        "full_name is required"
    );
    let account = api
        .admin(
            "POST",
            "/_sim/system-accounts",
            Some(json!({"name": "deck", "konnect_managed": true})),
        )
        .await;
    assert_eq!(account.status, 201);
    assert_eq!(account.json()["description"], "");
    let listed = api.admin("GET", "/_sim/users", None).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let listed = api.admin("GET", "/_sim/system-accounts", None).await.json();
    assert_eq!(listed[0]["konnect_managed"], true);
    let snapshot = sim.snapshot();
    assert_eq!(snapshot.users.len(), 1);
    assert_eq!(snapshot.system_accounts.len(), 1);
    sim.shutdown().await;
}
