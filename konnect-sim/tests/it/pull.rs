//! The pull API (`GET /v3/audit-logs`) as a client sees it: seeded history
//! paged in the documented order, webhook events available by pull, raw
//! records byte for byte, the clock offset, shifting offset cursors, faults
//! on the route, and the admin calls behind them. Every answer on the API
//! goes through the contract check of `Api`.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use konnect_sim::{CursorMode, Fault, FaultAction, SeedReport};
use serde_json::{Value, json};

use crate::common::{Api, Auth, Receiver, start_sim};

/// Every record of a listing, following `meta.page.next` (a path relative
/// to `/v3`); returns the records and the number of pages.
async fn pull_all(api: &Api, first: &str) -> (Vec<Value>, usize) {
    let mut records = Vec::new();
    let mut pages = 0;
    let mut next = Some(first.to_string());
    while let Some(path) = next {
        let page = api.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.text());
        let page = page.json();
        pages += 1;
        records.extend(page["data"].as_array().unwrap().iter().cloned());
        next = page["meta"]["page"]["next"].as_str().map(|link| {
            assert!(link.starts_with("/audit-logs?"), "{link}");
            format!("/v3{link}")
        });
    }
    (records, pages)
}

fn ts(record: &Value) -> jiff::Timestamp {
    record["ts"].as_str().unwrap().parse().unwrap()
}

fn rfc3339(t: SystemTime) -> String {
    format!("{:.0}", jiff::Timestamp::try_from(t).unwrap())
}

#[tokio::test]
async fn seeded_history_pages_in_time_order_with_every_type() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let report = sim.seed_audit_logs("us", 2500, Duration::from_secs(3600));
    assert_eq!(report.added, 2500);
    sim.trigger("us", 30).await;
    sim.seed_audit_logs("eu", 7, Duration::from_secs(60));

    let (records, pages) = pull_all(&api, "/v3/audit-logs?page%5Bsize%5D=1000").await;
    assert_eq!(records.len(), 2530);
    assert_eq!(pages, 3);
    let times: Vec<jiff::Timestamp> = records.iter().map(ts).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "ascending by ts");
    let types: BTreeSet<&str> = records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["authentication", "authorization", "gateway_access"])
    );
    let signatures: BTreeSet<&str> = records
        .iter()
        .map(|r| r["signature"].as_str().unwrap())
        .collect();
    assert_eq!(signatures.len(), records.len(), "every record is signed");

    // The same listing twice gives the same bytes (seeded records are made
    // again from their seed).
    let again = api.get("/v3/audit-logs?page%5Bsize%5D=1000").await;
    let first = api.get("/v3/audit-logs?page%5Bsize%5D=1000").await;
    assert_eq!(again.body, first.body);

    // Type and time filters, kept in the next links.
    let (authz, _) = pull_all(
        &api,
        "/v3/audit-logs?page%5Bsize%5D=100&filter%5Btype%5D=authorization",
    )
    .await;
    let expected = records
        .iter()
        .filter(|r| r["type"] == "authorization")
        .count();
    assert_eq!(authz.len(), expected);
    let from = times[1000];
    let to = times[1999];
    let (window, _) = pull_all(
        &api,
        &format!("/v3/audit-logs?page%5Bsize%5D=300&filter%5Bts%5D%5Bgte%5D={from}&filter%5Bts%5D%5Blte%5D={to}"),
    )
    .await;
    let expected = times.iter().filter(|t| **t >= from && **t <= to).count();
    assert_eq!(window.len(), expected);
    assert!(window.iter().all(|r| ts(r) >= from && ts(r) <= to));

    // Only the region asked for.
    let eu = api.with_host("eu.api.konghq.com");
    assert_eq!(pull_all(&eu, "/v3/audit-logs").await.0.len(), 7);

    // The default window is the last 7 days.
    sim.seed_audit_logs_between(
        "au",
        3,
        SystemTime::now() - Duration::from_secs(8 * 86_400),
        SystemTime::now() - Duration::from_secs(8 * 86_400),
    );
    let au = api.with_host("au.api.konghq.com");
    assert!(pull_all(&au, "/v3/audit-logs").await.0.is_empty());
    let old = rfc3339(SystemTime::now() - Duration::from_secs(9 * 86_400));
    assert_eq!(
        pull_all(
            &au,
            &format!("/v3/audit-logs?filter%5Bts%5D%5Bgte%5D={old}")
        )
        .await
        .0
        .len(),
        3
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn page_size_outside_1_to_1000_is_a_problem() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    for size in ["0", "1001", "-3", "ten"] {
        let problem = api
            .get(&format!("/v3/audit-logs?page%5Bsize%5D={size}"))
            .await
            .problem(400);
        assert_eq!(problem["invalid_parameters"][0]["field"], "page[size]");
    }
    api.get("/v3/audit-logs?page%5Bafter%5D=garbage")
        .await
        .problem(400);
    api.get("/v3/audit-logs?filter%5Bts%5D%5Bgte%5D=yesterday")
        .await
        .problem(400);
    assert_eq!(
        api.get("/v3/audit-logs?page%5Bsize%5D=1000").await.status,
        200
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn every_event_delivered_by_webhook_can_be_pulled() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    api.enable_webhook("pull", &receiver.url("/hook"), "json")
        .await;
    let report = sim.trigger("us", 25).await;
    assert!(report.all_delivered(), "{report:?}");
    let delivered: Vec<Value> = receiver
        .records()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let (pulled, _) = pull_all(&api, "/v3/audit-logs?page%5Bsize%5D=7").await;
    assert_eq!(pulled.len(), delivered.len());
    for (record, entry) in delivered.iter().zip(&pulled) {
        assert_eq!(entry["signature"], record["sig"]);
        assert_eq!(entry["ts"], record["event_ts"]);
        assert_eq!(
            entry["trace_id"].as_str().unwrap(),
            record["trace_id"].to_string()
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn raw_records_are_served_byte_for_byte() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let now = rfc3339(SystemTime::now());
    let big = format!(
        r#"{{"type":"authorization","signature":"c2ln","service":"s","resource":"krn:x","action":"list","granted":true,"org_id":"o","ts":"{now}","principal_id":"p","future_field":{{"n":18446744073709551615}},"trace_id":"1"}}"#
    );
    let report = sim.add_raw_audit_logs("us", &[&big]).unwrap();
    assert_eq!(report.added, 1);
    let page = api.get("/v3/audit-logs").await;
    assert!(page.text().contains(&big), "{}", page.text());
    assert!(
        sim.add_raw_audit_logs("us", &[r#"{"type":"authorization"}"#])
            .unwrap_err()
            .contains("ts")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_clock_offset_moves_the_date_header_and_now() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    for offset_min in [5i64, -5] {
        sim.set_clock_offset(offset_min * 60_000);
        let reply = api.get("/v3/audit-logs").await;
        let date = httpdate(reply.headers["date"].to_str().unwrap());
        let expected = shift(SystemTime::now(), offset_min * 60);
        let skew = diff(date, expected);
        assert!(skew <= Duration::from_secs(2), "Date off by {skew:?}");
        let emulated = sim.now();
        assert!(diff(emulated, expected) <= Duration::from_secs(1));

        // Events happen on the emulated clock, and its "now" bounds the
        // default window: records of its last minute are listed.
        sim.reset();
        sim.set_clock_offset(offset_min * 60_000);
        sim.seed_audit_logs("us", 5, Duration::from_secs(60));
        sim.trigger("us", 2).await;
        let (records, _) = pull_all(&api, "/v3/audit-logs").await;
        assert_eq!(records.len(), 7);
        let newest = ts(records.last().unwrap());
        let lag = diff(SystemTime::from(newest), expected);
        assert!(
            lag <= Duration::from_secs(2),
            "newest record {lag:?} from now"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn offset_cursors_let_late_records_shift_the_pages() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    sim.set_cursor_mode(CursorMode::Offset);
    sim.seed_audit_logs("us", 6, Duration::from_secs(60));
    let first = api.get("/v3/audit-logs?page%5Bsize%5D=3").await.json();
    let late = format!(
        r#"{{"type":"gateway_access","ts":"{}","signature":"bGF0ZQ"}}"#,
        rfc3339(SystemTime::now() - Duration::from_secs(300))
    );
    sim.add_raw_audit_logs("us", &[&late]).unwrap();
    let next = first["meta"]["page"]["next"].as_str().unwrap();
    let second = api.get(&format!("/v3{next}")).await.json();
    let repeated = second["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| first["data"].as_array().unwrap().contains(r))
        .count();
    assert_eq!(repeated, 1, "the late record pushed one record onto page 2");
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_apply_to_the_pull_route() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    sim.seed_audit_logs("us", 3, Duration::from_secs(60));
    let path = "/v3/audit-logs";
    let fault = |count, action| Fault {
        method: Some("GET".into()),
        path: path.into(),
        count,
        action,
    };
    sim.inject_fault(fault(1, FaultAction::Pass));
    sim.inject_fault(fault(
        1,
        FaultAction::Status {
            status: 429,
            retry_after: Some(2),
        },
    ));
    sim.inject_fault(fault(
        1,
        FaultAction::Status {
            status: 503,
            retry_after: None,
        },
    ));
    sim.inject_fault(fault(1, FaultAction::Delay(Duration::from_millis(300))));
    sim.inject_fault(fault(1, FaultAction::Drop));

    assert_eq!(api.raw("GET", path, None, Auth::Pat).await.status, 200);
    let limited = api.raw("GET", path, None, Auth::Pat).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"], "2");
    assert_eq!(api.raw("GET", path, None, Auth::Pat).await.status, 503);
    let started = std::time::Instant::now();
    assert_eq!(api.raw("GET", path, None, Auth::Pat).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let dropped = crate::common::http_client()
        .build()
        .unwrap()
        .get(format!("{}{path}", sim.base_url()))
        .bearer_auth(sim.pat())
        .send()
        .await;
    assert!(dropped.is_err(), "{dropped:?}");
    assert_eq!(api.get(path).await.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn admin_calls_seed_and_set_the_clock_and_cursors() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let admin = |method: &'static str, path: &'static str, body: Value| {
        let api = &api;
        async move {
            api.raw(method, path, Some(body.to_string().as_bytes()), Auth::None)
                .await
        }
    };
    let seeded = admin(
        "POST",
        "/_sim/audit-logs",
        json!({"count": 40, "span_seconds": 600}),
    )
    .await;
    assert_eq!(seeded.status, 201, "{}", seeded.text());
    let report: SeedReport = serde_json::from_slice(&seeded.body).unwrap();
    assert_eq!((report.region.as_str(), report.added), ("us", 40));
    let start = rfc3339(SystemTime::now() - Duration::from_secs(7200));
    let end = rfc3339(SystemTime::now() - Duration::from_secs(3600));
    let between = api
        .raw(
            "POST",
            "/_sim/audit-logs",
            Some(
                json!({"region": "eu", "count": 2, "start": start, "end": end})
                    .to_string()
                    .as_bytes(),
            ),
            Auth::None,
        )
        .await;
    assert_eq!(between.json()["oldest"], start);
    assert_eq!(between.json()["newest"], end);
    let raw = admin(
        "POST",
        "/_sim/audit-logs",
        json!({"records": [{"type": "authorization", "signature": "c2ln", "service": "s",
            "resource": "krn:x", "action": "list", "granted": true, "org_id": "o",
            "ts": rfc3339(SystemTime::now()), "principal_id": "p", "n": 9007199254740993u64}]}),
    )
    .await;
    assert_eq!(raw.status, 201);
    assert!(
        api.get("/v3/audit-logs?page%5Bsize%5D=100")
            .await
            .text()
            .contains("\"n\":9007199254740993")
    );
    assert_eq!(sim.snapshot().audit_logs_stored, 43);
    for bad in [
        json!({}),
        json!({"count": 1}),
        json!({"count": 1, "span_seconds": 5, "start": start}),
        json!({"count": 1, "start": "soon"}),
        json!({"count": 1, "records": []}),
        json!({"records": [{"type": "authorization"}]}),
    ] {
        assert_eq!(
            admin("POST", "/_sim/audit-logs", bad.clone()).await.status,
            400,
            "{bad}"
        );
    }

    let clock = admin("PUT", "/_sim/clock", json!({"offset_seconds": -300})).await;
    assert_eq!(clock.status, 200);
    assert_eq!(clock.json()["offset_ms"], -300_000);
    assert_eq!(sim.snapshot().clock_offset_ms, -300_000);
    assert_eq!(
        admin(
            "PUT",
            "/_sim/clock",
            json!({"offset_seconds": 1, "offset_ms": 1})
        )
        .await
        .status,
        400
    );
    let cursors = admin("PUT", "/_sim/audit-logs/cursors", json!({"mode": "offset"})).await;
    assert_eq!(cursors.json()["mode"], "offset");
    let page = api.get("/v3/audit-logs?page%5Bsize%5D=10").await.json();
    let next = page["meta"]["page"]["next"].as_str().unwrap();
    // A keyed cursor is refused once the mode is offset, and back.
    admin("PUT", "/_sim/audit-logs/cursors", json!({"mode": "keyed"})).await;
    api.get(&format!("/v3{next}")).await.problem(400);
    sim.reset();
    assert_eq!(sim.snapshot().audit_logs_stored, 0);
    assert_eq!(sim.snapshot().clock_offset_ms, 0);
    sim.shutdown().await;
}

/// Parses an HTTP date (the `Date` header).
fn httpdate(text: &str) -> SystemTime {
    let parsed = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    SystemTime::from(parsed)
}

/// `t` moved by `seconds` (either way).
fn shift(t: SystemTime, seconds: i64) -> SystemTime {
    let by = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 { t + by } else { t - by }
}

fn diff(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b).unwrap_or_else(|e| e.duration())
}
