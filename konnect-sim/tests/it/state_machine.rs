//! The Konnect state as kongctl sees it: the webhook sentinel, destinations
//! and their paging and filters, PAT checks, validation, regions, v2 inline
//! webhooks, the pull API and replay jobs.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use konnect_sim::SimConfig;
use serde_json::{Value, json};

use crate::common::{Answer, Api, Auth, Receiver, start_sim, start_sim_with};

const SENTINEL_ENDPOINT: &str = "unconfigured";

fn rfc3339(time: SystemTime) -> String {
    let time = jiff::Timestamp::try_from(time).expect("the clock is within jiff's range");
    format!("{time:.0}")
}

fn invalid_fields(problem: &Value) -> Vec<(String, String)> {
    problem["invalid_parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("no invalid_parameters: {problem}"))
        .iter()
        .map(|p| {
            (
                p["field"].as_str().unwrap().to_string(),
                p["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The exact sequence kongctl runs: guard, create, attach, release.
#[tokio::test]
async fn webhook_lifecycle_as_kongctl_drives_it() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    assert!(sim.snapshot().is_pristine());

    let webhook = api.get("/v2/audit-log-webhook").await.json();
    assert_eq!(webhook["enabled"], false);
    assert_eq!(webhook["endpoint"], SENTINEL_ENDPOINT);

    let endpoint = "https://listener.example.test/audit-logs";
    let id = api
        .create_destination("kongctl-host-1", endpoint, "json")
        .await;
    let attached = api
        .patch(
            "/v3/audit-log-webhook",
            json!({"audit_log_destination_id": id, "enabled": true}),
        )
        .await;
    assert_eq!(
        attached.json(),
        json!({"audit_log_destination_id": id, "enabled": true})
    );

    let webhook = api.get("/v2/audit-log-webhook").await.json();
    assert_eq!(webhook["enabled"], true);
    assert_eq!(webhook["endpoint"], endpoint);
    assert_eq!(webhook["log_format"], "json");

    let one = format!("/v2/audit-log-destinations/{id}");
    let conflict = api.delete(&one).await.problem(409);
    assert_eq!(conflict["detail"], "Destination is in use");

    // Disabling keeps the destination attached: still in use.
    let disabled = api
        .patch("/v2/audit-log-webhook", json!({"enabled": false}))
        .await
        .json();
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["endpoint"], endpoint);
    assert_eq!(
        sim.snapshot().webhook("us").destination_id.as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        api.delete(&one).await.problem(409)["detail"],
        "Destination is in use"
    );

    assert_eq!(api.delete("/v3/audit-log-webhook").await.status, 204);
    let webhook = api.get("/v2/audit-log-webhook").await.json();
    assert_eq!(webhook["enabled"], false);
    assert_eq!(webhook["endpoint"], SENTINEL_ENDPOINT);
    api.get("/v3/audit-log-webhook").await.problem(404);

    assert_eq!(api.delete(&one).await.status, 204);
    api.get(&one).await.problem(404);
    api.delete(&one).await.problem(404);
    assert!(sim.snapshot().is_pristine());

    let calls: Vec<(String, String, u16)> = sim
        .snapshot()
        .requests
        .iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.status))
        .collect();
    let destinations = "/v3/audit-log-destinations".to_string();
    assert_eq!(
        calls[0],
        ("GET".into(), "/v2/audit-log-webhook".into(), 200)
    );
    assert_eq!(calls[1], ("POST".into(), destinations, 201));
    assert_eq!(
        calls[2],
        ("PATCH".into(), "/v3/audit-log-webhook".into(), 200)
    );
    assert_eq!(calls[4], ("DELETE".into(), one.clone(), 409));
    assert_eq!(calls.last().unwrap(), &("DELETE".to_string(), one, 404));
    sim.shutdown().await;
}

#[tokio::test]
async fn paging_visits_every_destination_exactly_once() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(
            api.create_destination(&format!("dest-{i:02}"), "https://e.test/x", "cef")
                .await,
        );
    }
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut next = Some("/v3/audit-log-destinations?page%5Bsize%5D=10".to_string());
    while let Some(link) = next {
        let page = api.get(&link).await.json();
        assert_eq!(page["meta"]["size"], 10);
        for item in page["data"].as_array().unwrap() {
            assert!(item.get("authorization").is_none(), "{item}");
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        next = page["meta"]["next"].as_str().map(str::to_string);
        pages.push(page);
        assert!(pages.len() <= 3, "too many pages");
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(
        pages
            .iter()
            .map(|p| p["data"].as_array().unwrap().len())
            .collect::<Vec<_>>(),
        [10, 10, 5]
    );
    assert_eq!(seen, created, "every id once, in creation order");
    assert_eq!(pages[0]["meta"]["previous"], Value::Null);
    assert_eq!(pages[2]["meta"]["next"], Value::Null);

    // Going back from the last page gives the middle page again.
    let back = pages[2]["meta"]["previous"].as_str().unwrap();
    assert_eq!(api.get(back).await.json()["data"], pages[1]["data"]);

    // The default page size is 10; v2 lists the same store.
    let default = api.get("/v2/audit-log-destinations").await.json();
    assert_eq!(default["data"], pages[0]["data"]);
    assert!(
        default["meta"]["next"]
            .as_str()
            .unwrap()
            .starts_with("/v2/audit-log-destinations?")
    );
    // An unreadable cursor is an empty last page, not the first page again.
    let garbage = api
        .get("/v3/audit-log-destinations?page%5Bafter%5D=garbage")
        .await
        .json();
    assert_eq!(garbage["data"], json!([]));
    assert_eq!(garbage["meta"]["next"], Value::Null);
    sim.shutdown().await;
}

#[tokio::test]
async fn name_filters_match_exactly_or_by_substring() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    for name in ["alpha-1", "alpha-2", "beta", "alpha-1"] {
        api.create_destination(name, "https://e.test/x", "json")
            .await;
    }
    let names = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect()
    };
    let eq = api
        .get("/v3/audit-log-destinations?filter%5Bname%5D%5Beq%5D=alpha-1")
        .await
        .json();
    assert_eq!(
        names(&eq),
        ["alpha-1", "alpha-1"],
        "duplicate names are allowed"
    );
    let contains = api
        .get("/v3/audit-log-destinations?filter%5Bname%5D%5Bcontains%5D=alpha")
        .await
        .json();
    assert_eq!(names(&contains), ["alpha-1", "alpha-2", "alpha-1"]);
    let bare = api
        .get("/v2/audit-log-destinations?filter%5Bname%5D=beta")
        .await
        .json();
    assert_eq!(names(&bare), ["beta"]);
    let none = api
        .get("/v3/audit-log-destinations?filter%5Bname%5D%5Beq%5D=alpha")
        .await
        .json();
    assert_eq!(names(&none), Vec::<String>::new());

    // The filter is kept in the page links.
    let first = api
        .get("/v3/audit-log-destinations?page%5Bsize%5D=2&filter%5Bname%5D%5Bcontains%5D=alpha")
        .await
        .json();
    assert_eq!(names(&first), ["alpha-1", "alpha-2"]);
    let second = api
        .get(first["meta"]["next"].as_str().unwrap())
        .await
        .json();
    assert_eq!(names(&second), ["alpha-1"]);
    assert_eq!(second["meta"]["next"], Value::Null);
    sim.shutdown().await;
}

#[tokio::test]
async fn only_configured_bearer_tokens_get_in() {
    let config = SimConfig {
        pats: vec!["kpat_first".into(), "spat_second".into()],
        readonly_pats: vec!["kpat_reader".into()],
        ..SimConfig::for_tests()
    };
    let sim = start_sim_with(config).await;
    let api = Api::new(&sim);
    assert_eq!(sim.pat(), "kpat_first");
    let list = "/v3/audit-log-destinations";
    let body = json!({"name": "n", "endpoint": "https://e.test", "authorization": "a", "log_format": "cef"});
    let header = |value: &str| Auth::Header(value.to_string());

    for auth in [
        Auth::None,
        header("Bearer kpat_wrong"),
        header("Basic a3BhdF9maXJzdDo="),
        header("kpat_first"),
        header("Bearer"),
        header("Bearer "),
    ] {
        let reply = api.call("GET", list, None, auth.clone()).await;
        let problem = reply.problem(401);
        assert_eq!(problem["title"], "Unauthorized", "{auth:?}");
        api.call("POST", list, Some(body.clone()), auth)
            .await
            .problem(401);
    }
    assert_eq!(
        api.call("GET", list, None, header("Bearer spat_second"))
            .await
            .status,
        200
    );
    assert_eq!(
        api.call("GET", list, None, header("bearer kpat_first"))
            .await
            .status,
        200
    );
    assert_eq!(
        api.call("GET", list, None, header("Bearer kpat_reader"))
            .await
            .status,
        200
    );
    let forbidden = api
        .call(
            "POST",
            list,
            Some(body.clone()),
            header("Bearer kpat_reader"),
        )
        .await;
    forbidden.problem(403);
    api.call(
        "PATCH",
        "/v2/audit-log-webhook",
        Some(json!({"enabled": false})),
        header("Bearer kpat_reader"),
    )
    .await
    .problem(403);
    assert!(
        sim.snapshot().destinations.is_empty(),
        "refused calls change nothing"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn invalid_bodies_get_400_with_invalid_parameters() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let list = "/v3/audit-log-destinations";
    let valid = json!({"name": "n", "endpoint": "https://e.test/x", "authorization": "Bearer t", "log_format": "json"});
    let without = |field: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };

    let missing = api.post(list, without("name")).await.problem(400);
    assert_eq!(missing["detail"], "Required field missing");
    assert_eq!(missing["invalid_parameters"][0]["rule"], "required");
    assert_eq!(
        invalid_fields(&missing),
        [("name".into(), "is a required field".into())]
    );

    let all_missing = api.post(list, json!({})).await.problem(400);
    let fields: BTreeSet<String> = invalid_fields(&all_missing)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from(["name", "endpoint", "authorization", "log_format"].map(String::from))
    );

    let format = api
        .post(list, with("log_format", json!("xml")))
        .await
        .problem(400);
    assert_eq!(format["invalid_parameters"][0]["field"], "log_format");
    assert_eq!(
        format["invalid_parameters"][0]["choices"],
        json!(["cef", "json", "cps"])
    );

    for endpoint in [
        "not a url",
        "/relative/path",
        "ftp://e.test/x",
        "mailto:a@b.test",
    ] {
        let bad = api
            .post(list, with("endpoint", json!(endpoint)))
            .await
            .problem(400);
        assert_eq!(
            invalid_fields(&bad),
            [("endpoint".into(), "must be a valid URL".into())],
            "{endpoint}"
        );
        assert_eq!(bad["detail"], "Invalid endpoint");
    }
    let blank = api
        .post(list, with("authorization", json!("  ")))
        .await
        .problem(400);
    assert_eq!(
        invalid_fields(&blank),
        [("authorization".into(), "cannot be blank".into())]
    );
    let typed = api
        .post(list, with("skip_ssl_verification", json!("yes")))
        .await
        .problem(400);
    assert_eq!(typed["invalid_parameters"][0]["rule"], "is_boolean");
    let typed = api.post(list, with("name", json!(7))).await.problem(400);
    assert_eq!(typed["invalid_parameters"][0]["rule"], "is_string");

    for body in [&b"{not json"[..], b"[]", b""] {
        let bad = api
            .call_bytes("POST", list, Some(body), Auth::Pat)
            .await
            .problem(400);
        assert_eq!(
            invalid_fields(&bad),
            [("body".into(), "request format is invalid".into())]
        );
    }
    // Unknown fields are not forbidden by the spec: ignored.
    assert_eq!(
        api.post(list, with("colour", json!("red"))).await.status,
        201
    );

    let bad_id = api
        .patch(
            "/v3/audit-log-webhook",
            json!({"audit_log_destination_id": "123", "enabled": true}),
        )
        .await
        .problem(400);
    assert_eq!(
        invalid_fields(&bad_id),
        [(
            "audit_log_destination_id".into(),
            "destination id format is invalid".into()
        )]
    );
    let bad_flag = api
        .patch("/v2/audit-log-webhook", json!({"enabled": "yes"}))
        .await
        .problem(400);
    assert_eq!(bad_flag["invalid_parameters"][0]["field"], "enabled");

    for path in [
        "/v3/audit-log-destinations/6f1c4a52-9a5e-4b0e-8f6c-2f1d6e8c9a01",
        "/v2/audit-log-destinations/not-a-uuid",
    ] {
        api.get(path).await.problem(404);
        api.patch(path, json!({"name": "x"})).await.problem(404);
        api.delete(path).await.problem(404);
    }
    assert_eq!(
        sim.snapshot().destinations.len(),
        1,
        "only the valid create stored anything"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn each_region_has_its_own_webhook_and_destinations_are_org_wide() {
    let sim = start_sim().await;
    let us = Api::new(&sim);
    let eu = us.with_host("eu.api.konghq.com");
    let global = us.with_host("global.api.konghq.com");

    let id = global
        .create_destination("eu-listener", "https://e.test/eu", "cps")
        .await;
    let attached = eu
        .patch(
            "/v3/audit-log-webhook",
            json!({"audit_log_destination_id": id, "enabled": true}),
        )
        .await;
    assert_eq!(attached.status, 200);
    assert_eq!(
        eu.get("/v2/audit-log-webhook").await.json()["endpoint"],
        "https://e.test/eu"
    );
    assert_eq!(
        us.get("/v2/audit-log-webhook").await.json()["endpoint"],
        SENTINEL_ENDPOINT
    );
    us.get("/v3/audit-log-webhook").await.problem(404);

    // The same destination list from every host; deleting is refused from
    // any host while the eu webhook refers to it.
    assert_eq!(
        us.get("/v3/audit-log-destinations").await.json()["data"][0]["id"],
        id.as_str()
    );
    us.delete(&format!("/v2/audit-log-destinations/{id}"))
        .await
        .problem(409);

    let snapshot = sim.snapshot();
    assert!(snapshot.webhook("eu").enabled);
    assert!(snapshot.webhook("us").is_unconfigured());
    assert!(
        snapshot
            .webhooks
            .iter()
            .filter(|(r, _)| *r != "eu")
            .all(|(_, w)| w.is_unconfigured())
    );
    let regions: Vec<&str> = snapshot
        .requests
        .iter()
        .map(|r| r.region.as_str())
        .collect();
    assert_eq!(regions[..3], ["us", "eu", "eu"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn v2_can_configure_a_webhook_without_a_destination() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;

    let refused = api
        .patch("/v2/audit-log-webhook", json!({"enabled": true}))
        .await
        .problem(400);
    assert_eq!(
        invalid_fields(&refused),
        [
            ("endpoint".into(), "cannot be blank".into()),
            ("authorization".into(), "cannot be blank".into())
        ]
    );
    let configured = api
        .patch(
            "/v2/audit-log-webhook",
            json!({"endpoint": receiver.url("/v2-hook"), "authorization": "Splunk abc",
                   "log_format": "json", "enabled": true}),
        )
        .await
        .json();
    assert_eq!(configured["endpoint"], receiver.url("/v2-hook"));
    assert_eq!(configured["enabled"], true);
    api.get("/v3/audit-log-webhook").await.problem(404);

    let report = sim.trigger("us", 3).await;
    assert!(report.all_delivered(), "{report:?}");
    let got = receiver.received();
    assert_eq!(got[0].header("authorization"), Some("Splunk abc"));
    assert_eq!(got[0].target, "/v2-hook");
    assert_eq!(report.deliveries[0].destination_id, None);

    assert_eq!(api.delete("/v3/audit-log-webhook").await.status, 204);
    assert!(sim.snapshot().webhook("us").is_unconfigured());
    sim.shutdown().await;
}

#[tokio::test]
async fn the_pull_api_pages_through_the_regions_events() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    sim.trigger("us", 45).await;
    sim.trigger("eu", 5).await;

    let mut trace_ids = Vec::new();
    let mut sizes = Vec::new();
    let mut next = Some("/v3/audit-logs".to_string());
    let mut pages = Vec::new();
    while let Some(link) = next {
        let page = api.get(&link).await.json();
        let data = page["data"].as_array().unwrap().clone();
        sizes.push(data.len());
        trace_ids.extend(
            data.iter()
                .map(|e| e["trace_id"].as_str().unwrap().to_string()),
        );
        // Links are relative to the API version, as in the spec's example.
        next = page["meta"]["page"]["next"]
            .as_str()
            .map(|link| format!("/v3{link}"));
        pages.push(page);
    }
    assert_eq!(sizes, [20, 20, 5], "default page size 20");
    let unique: BTreeSet<&String> = trace_ids.iter().collect();
    assert_eq!(unique.len(), 45);
    // The first event's trace id is 2^53 + 1, as a string, exact.
    assert_eq!(trace_ids[0], "9007199254740993");
    let back = pages[2]["meta"]["page"]["previous"].as_str().unwrap();
    assert_eq!(
        api.get(&format!("/v3{back}")).await.json()["data"],
        pages[1]["data"]
    );

    let eu = api.with_host("eu.api.konghq.com");
    assert_eq!(
        eu.get("/v3/audit-logs").await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    let authz = api
        .get("/v3/audit-logs?page%5Bsize%5D=1000&filter%5Btype%5D=authorization")
        .await
        .json();
    let authz = authz["data"].as_array().unwrap();
    assert!(!authz.is_empty());
    assert!(authz.iter().all(|e| e["type"] == "authorization"));
    let future = rfc3339(SystemTime::now() + Duration::from_secs(3600));
    let later = api
        .get(&format!(
            "/v3/audit-logs?filter%5Bts%5D%5Bgte%5D={future}&filter%5Bts%5D%5Blte%5D={future}"
        ))
        .await
        .json();
    assert_eq!(later["data"], json!([]));
    let too_big = api
        .get("/v3/audit-logs?page%5Bsize%5D=1001")
        .await
        .problem(400);
    assert_eq!(too_big["invalid_parameters"][0]["maximum"], 1000);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_down_receiver_misses_events_that_a_replay_job_then_brings() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    api.enable_webhook("gap", &receiver.url("/gap"), "json")
        .await;
    sim.trigger("us", 3).await;

    // Down: every attempt is a refused connection, retried and given up.
    sim.set_receiver_down(true);
    assert!(sim.snapshot().receiver_down);
    let missed = sim.trigger("us", 4).await;
    assert!(!missed.all_delivered());
    let attempts = &missed.deliveries[0].attempts;
    assert_eq!(attempts.len(), konnect_sim::MAX_RETRIES + 1);
    assert!(attempts.iter().all(|a| a.status.is_none()), "{attempts:?}");
    let status = api.get("/v3/audit-log-webhook/status").await.json();
    assert_eq!(status["webhook_status"], "inactive");
    assert_eq!(receiver.records().len(), 3);
    sim.set_receiver_down(false);

    // Held: the job waits `pending`, and a second PUT meets the 409.
    sim.hold_replay_jobs(true);
    let range = json!({
        "start_at": rfc3339(SystemTime::now() - Duration::from_secs(600)),
        "end_at": rfc3339(SystemTime::now() + Duration::from_secs(2)),
    });
    assert_eq!(
        api.put("/v3/audit-log-replay-job", range.clone())
            .await
            .json()["status"],
        "accepted"
    );
    sim.wait_for(Duration::from_secs(5), |s| {
        s.replay_jobs["us"].status == "pending"
    })
    .await
    .expect("a held job is pending");
    let conflict = api
        .put("/v3/audit-log-replay-job", range.clone())
        .await
        .problem(409);
    assert_eq!(conflict["detail"], "A replay job is currently running");
    sim.hold_replay_jobs(false);
    sim.wait_for(Duration::from_secs(5), |s| {
        s.replay_jobs["us"].status == "completed"
    })
    .await
    .expect("the released job completes");
    // All 7 again: the 3 delivered and the 4 missed.
    assert_eq!(receiver.records().len(), 3 + 7);

    // Made to fail: nothing is delivered.
    sim.fail_replay_jobs(1);
    assert_eq!(
        api.put("/v3/audit-log-replay-job", range.clone())
            .await
            .status,
        202
    );
    sim.wait_for(Duration::from_secs(5), |s| {
        s.replay_jobs["us"].status == "failed"
    })
    .await
    .expect("the job fails");
    assert_eq!(receiver.records().len(), 10);
    // The knob counts down: the next job runs.
    api.put("/v3/audit-log-replay-job", range).await;
    sim.wait_for(Duration::from_secs(5), |s| {
        s.replay_jobs["us"].status == "completed"
    })
    .await
    .expect("the next job completes");
    assert_eq!(receiver.records().len(), 17);
    sim.shutdown().await;
}

#[tokio::test]
async fn replay_jobs_redeliver_stored_events() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    let idle = api.get("/v3/audit-log-replay-job").await.json();
    assert_eq!(idle["status"], "unconfigured");

    // Events made while no webhook is enabled are stored, not delivered.
    let report = sim.trigger("us", 7).await;
    assert!(report.deliveries.is_empty());
    assert!(report.not_delivered.is_some());

    api.enable_webhook("replay", &receiver.url("/replay"), "json")
        .await;
    let hour_ago = rfc3339(SystemTime::now() - Duration::from_secs(3600));
    let soon = rfc3339(SystemTime::now() + Duration::from_secs(2));
    let accepted = api
        .put(
            "/v3/audit-log-replay-job",
            json!({"start_at": hour_ago, "end_at": soon}),
        )
        .await
        .json();
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(accepted["start_at"], hour_ago);
    sim.wait_for(Duration::from_secs(5), |s| {
        s.replay_jobs["us"].status == "completed"
    })
    .await
    .expect("replay completes");
    let replayed = receiver.records();
    assert_eq!(replayed.len(), 7);
    let pulled = api.get("/v3/audit-logs").await.json();
    for (record, entry) in replayed.iter().zip(pulled["data"].as_array().unwrap()) {
        let trace = entry["trace_id"].as_str().unwrap();
        assert!(
            record.contains(&format!("\"trace_id\":{trace},")),
            "{record} vs {trace}"
        );
    }
    let snapshot = sim.snapshot();
    assert!(
        snapshot
            .deliveries
            .iter()
            .all(|d| d.source == konnect_sim::DeliverySource::Replay)
    );

    // A receiver that refuses the batch fails the job.
    receiver.script([Answer::Status(404)]);
    api.put(
        "/v2/audit-log-replay-job",
        json!({"start_at": hour_ago, "end_at": soon}),
    )
    .await;
    sim.wait_for(Duration::from_secs(5), |s| {
        s.replay_jobs["us"].status == "failed"
    })
    .await
    .expect("replay fails");

    // Ranges: RFC 3339, ordered, within the last 7 days, not in the future.
    let eight_days_ago = rfc3339(SystemTime::now() - Duration::from_secs(8 * 86_400));
    let tomorrow = rfc3339(SystemTime::now() + Duration::from_secs(86_400));
    let cases = [
        (
            json!({"start_at": eight_days_ago, "end_at": soon}),
            "start_at",
            "must be within the last 7 days",
        ),
        (
            json!({"start_at": soon, "end_at": hour_ago}),
            "end_at",
            "must not be before start_at",
        ),
        (
            json!({"start_at": hour_ago, "end_at": tomorrow}),
            "end_at",
            "must not be in the future",
        ),
        (
            json!({"start_at": "2025-13-01T00:00:00Z", "end_at": soon}),
            "start_at",
            "must be an RFC 3339 date-time",
        ),
        (
            // ISO 8601 allows a space for the `T`; RFC 3339's date-time does not.
            json!({"start_at": hour_ago.replace('T', " "), "end_at": soon}),
            "start_at",
            "must be an RFC 3339 date-time",
        ),
        (
            json!({"start_at": hour_ago, "end_at": soon.replace('Z', "+0000")}),
            "end_at",
            "must be an RFC 3339 date-time",
        ),
        (json!({"end_at": soon}), "start_at", "is a required field"),
    ];
    for (body, field, reason) in cases {
        let problem = api
            .put("/v3/audit-log-replay-job", body.clone())
            .await
            .problem(400);
        assert!(
            invalid_fields(&problem).contains(&(field.to_string(), reason.to_string())),
            "{body}: {problem}"
        );
    }
    // Offsets other than Z are RFC 3339 too.
    let offset = rfc3339(SystemTime::now() - Duration::from_secs(60)).replace('Z', "+00:00");
    assert_eq!(
        api.put(
            "/v3/audit-log-replay-job",
            json!({"start_at": offset, "end_at": soon})
        )
        .await
        .status,
        202
    );
    sim.shutdown().await;
}
