//! Dev Portal events delivered through the portal's own webhook: the
//! verbatim sample's shape, the destination's format, Kong's signature,
//! the organisation webhook's headers, gzip and retries, the status
//! endpoint, and every event exactly once when the organisation and two
//! portals share one destination.

use std::collections::BTreeSet;

use konnect_sim::DeliverySource;
use serde_json::{Value, json};

use crate::common::{Answer, Api, Receiver, signed_parts, start_sim, verifies};

/// Points the portal's webhook at the destination and enables it.
async fn attach(api: &Api, portal: &str, destination: &str) {
    let reply = api
        .patch(
            &format!("/v3/portals/{portal}/audit-log-webhook"),
            json!({"audit_log_destination_id": destination, "enabled": true}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// The keys of the verbatim Dev-Portal JSON sample, in its order.
const SAMPLE_KEYS: [&str; 18] = [
    "cef_version",
    "event_class_id",
    "event_product",
    "event_ts",
    "event_vendor",
    "event_version",
    "name",
    "org_id",
    "portal_id",
    "principal_id",
    "request",
    "rt",
    "severity",
    "src",
    "success",
    "trace_id",
    "user_agent",
    "sig",
];

#[tokio::test]
async fn portal_events_go_through_the_portal_webhook_in_its_format_signed() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let jwks = api.get("/v2/audit-log-webhook/jwks.json").await.json();
    for format in ["json", "cef", "cps"] {
        let receiver = Receiver::start().await;
        let portal = sim.add_portal("us", &format!("portal-{format}")).unwrap();
        let jane = sim
            .add_portal_developer(&portal.id, "jane@example.test", "Jane Dev")
            .unwrap();
        let joe = sim
            .add_portal_developer(&portal.id, "joe@example.test", "Joe Dev")
            .unwrap();
        let destination = api
            .create_destination(&format!("d-{format}"), &receiver.url("/dp?x=1"), format)
            .await;
        attach(&api, &portal.id, &destination).await;

        let report = sim.trigger_portal(&portal.id, 60).await;
        assert!(report.all_delivered(), "{report:?}");
        assert_eq!(report.portal_id.as_deref(), Some(portal.id.as_str()));
        let got = receiver.received();
        assert_eq!(
            got.iter().map(|r| r.records().len()).collect::<Vec<_>>(),
            [50, 10]
        );
        for request in &got {
            assert_eq!(request.method, "POST");
            assert_eq!(request.target, "/dp?x=1");
            assert_eq!(request.header("authorization"), Some("Bearer hook-secret"));
            assert_eq!(request.header("content-type"), Some("text/plain"));
            assert_eq!(request.header("content-encoding"), Some("application/gzip"));
            assert_eq!(&request.raw_body[..2], &[0x1f, 0x8b], "gzip magic");
            assert!(request.body.ends_with('\n'));
        }
        let records = receiver.records();
        assert_eq!(records, report.delivered_records());
        let developers = BTreeSet::from([jane.id.as_str(), joe.id.as_str()]);
        for record in &records {
            // cps wraps the signed JSON line.
            let signed = match format {
                "cps" => record
                    .strip_prefix("{\"event\":")
                    .and_then(|r| r.strip_suffix('}'))
                    .unwrap(),
                _ => record,
            };
            let (message, sig) = signed_parts(signed).unwrap_or_else(|| panic!("{record}"));
            assert!(verifies(&jwks, &message, &sig), "{format}: {record}");
            let event: Value = match format {
                "cef" => {
                    let (_, rest) = record.split_once(' ').unwrap();
                    assert!(
                        rest.starts_with(
                            "konghq.com CEF:0|KongInc|Dev-Portal|1.0|AUTHENTICATION_TYPE_"
                        ),
                        "{record}"
                    );
                    assert!(
                        rest.contains(" request=/api/v2/developer/authenticate ")
                            && rest.contains(&format!(" portal_id={} ", portal.id)),
                        "{record}"
                    );
                    let principal = rest
                        .split(' ')
                        .find_map(|kv| kv.strip_prefix("principal_id="))
                        .unwrap();
                    assert!(developers.contains(principal), "{record}");
                    continue;
                }
                "cps" => {
                    let wrapped: Value = serde_json::from_str(record).unwrap();
                    wrapped["event"].clone()
                }
                _ => serde_json::from_str(record).unwrap(),
            };
            let keys: Vec<&str> = record_keys(record, format);
            assert_eq!(keys, SAMPLE_KEYS, "the sample's keys, in order: {record}");
            assert_eq!(event["event_product"], "Dev-Portal");
            assert_eq!(event["portal_id"], portal.id.as_str());
            assert_eq!(event["request"], "/api/v2/developer/authenticate");
            assert!(
                event["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("AUTHENTICATION_OUTCOME_"),
                "{record}"
            );
            assert!(event.get("kong_initiated").is_none());
            assert!(developers.contains(event["principal_id"].as_str().unwrap()));
        }
        // Nothing went through the region's webhook, which is not set.
        let snapshot = sim.snapshot();
        assert!(snapshot.webhook("us").is_unconfigured());
        assert_eq!(snapshot.deliveries.len(), 2);
        assert!(
            snapshot
                .deliveries
                .iter()
                .all(|d| d.portal_id.as_deref() == Some(portal.id.as_str())
                    && d.destination_id.as_deref() == Some(destination.as_str())
                    && d.log_format == format)
        );
        assert_eq!(
            snapshot.delivered_portal_records(&portal.id),
            report.delivered_records()
        );
        sim.reset();
    }
    sim.shutdown().await;
}

/// The keys of a JSON or cps record, in order.
fn record_keys<'a>(record: &'a str, format: &str) -> Vec<&'a str> {
    let object = if format == "cps" {
        record
            .strip_prefix("{\"event\":")
            .and_then(|r| r.strip_suffix('}'))
            .unwrap()
    } else {
        record
    };
    let mut keys = Vec::new();
    let mut rest = object;
    // Top-level keys: `"key":` after `{` or `,` (values here hold no `,"`).
    while let Some(start) = rest.find(['{', ',']) {
        rest = &rest[start + 1..];
        if let Some(key) = rest.strip_prefix('"')
            && let Some(end) = key.find("\":")
        {
            keys.push(&key[..end]);
        }
    }
    keys
}

#[tokio::test]
async fn portal_deliveries_retry_and_feed_the_portal_status() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    let portal = sim.add_portal("us", "P").unwrap();
    let destination = api
        .create_destination("retries", &receiver.url("/hook"), "json")
        .await;
    attach(&api, &portal.id, &destination).await;
    let status = format!("/v3/portals/{}/audit-log-webhook/status", portal.id);
    assert_eq!(
        api.get(&status).await.json(),
        json!({"webhook_status": "active", "webhook_enabled": true})
    );

    receiver.script([Answer::Status(500), Answer::Status(429), Answer::Drop]);
    let report = sim.trigger_portal(&portal.id, 3).await;
    assert!(report.all_delivered(), "{report:?}");
    let attempts: Vec<Option<u16>> = report.deliveries[0]
        .attempts
        .iter()
        .map(|a| a.status)
        .collect();
    assert_eq!(attempts, [Some(500), Some(429), None, Some(202)]);
    assert_eq!(receiver.received().len(), 4);
    let shown = api.get(&status).await.json();
    assert_eq!(shown["webhook_status"], "active");
    assert_eq!(shown["last_response_code"], 202);

    // Retries run out: inactive, with the last answer.
    receiver.script(vec![Answer::Status(500); 5]);
    let report = sim.trigger_portal(&portal.id, 2).await;
    assert!(!report.all_delivered());
    assert_eq!(report.deliveries[0].attempts.len(), 5);
    let shown = api.get(&status).await.json();
    assert_eq!(shown["webhook_status"], "inactive");
    assert_eq!(shown["last_response_code"], 500);
    assert_eq!(shown["last_response_message"], "answer 500");
    assert!(shown["last_attempt_at"].is_string());
    // The region's status saw none of it.
    let org = api.get("/v3/audit-log-webhook/status").await.json();
    assert_eq!(
        org,
        json!({"webhook_status": "inactive", "webhook_enabled": false})
    );

    // A 400 is not retried; a disabled webhook delivers nothing.
    receiver.script([Answer::Status(400)]);
    let report = sim.trigger_portal(&portal.id, 1).await;
    assert_eq!(report.deliveries[0].attempts.len(), 1);
    api.patch(
        &format!("/v3/portals/{}/audit-log-webhook", portal.id),
        json!({"enabled": false}),
    )
    .await;
    let before = receiver.received().len();
    let report = sim.trigger_portal(&portal.id, 4).await;
    assert!(report.deliveries.is_empty());
    assert!(
        report
            .not_delivered
            .as_deref()
            .is_some_and(|r| r.contains("not enabled")),
        "{report:?}"
    );
    assert_eq!(receiver.received().len(), before);
    assert_eq!(
        api.get(&status).await.json()["webhook_status"],
        "inactive",
        "disabled"
    );
    sim.shutdown().await;
}

/// The organisation and two portals deliver to one destination (one
/// listener): every generated event arrives exactly once, through the
/// webhook of its stream, and the pull API lists them all.
#[tokio::test]
async fn org_and_portals_sharing_a_destination_deliver_each_event_once() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    let a = sim.add_portal("us", "A").unwrap();
    let b = sim.add_portal("us", "B").unwrap();
    let destination = api
        .enable_webhook("shared", &receiver.url("/all"), "json")
        .await;
    attach(&api, &a.id, &destination).await;
    attach(&api, &b.id, &destination).await;

    let (org, from_a, from_b) = tokio::join!(
        sim.trigger("us", 120),
        sim.trigger_portal(&a.id, 70),
        sim.trigger_portal(&b.id, 30),
    );
    for report in [&org, &from_a, &from_b] {
        assert!(report.all_delivered(), "{report:?}");
    }
    let received = receiver.records();
    assert_eq!(received.len(), 220);
    let unique: BTreeSet<&String> = received.iter().collect();
    assert_eq!(unique.len(), 220, "no record twice");
    let expected: BTreeSet<&str> = org
        .delivered_records()
        .into_iter()
        .chain(from_a.delivered_records())
        .chain(from_b.delivered_records())
        .collect();
    assert_eq!(
        received.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        expected
    );
    for record in org.delivered_records() {
        let event: Value = serde_json::from_str(record).unwrap();
        assert_eq!(event["event_product"], "Konnect", "{record}");
        assert!(event.get("portal_id").is_none(), "{record}");
    }
    for (report, portal) in [(&from_a, &a), (&from_b, &b)] {
        for record in report.delivered_records() {
            let event: Value = serde_json::from_str(record).unwrap();
            assert_eq!(event["portal_id"], portal.id.as_str(), "{record}");
        }
    }
    // Each batch went through one webhook, and the history says which.
    let snapshot = sim.snapshot();
    let by_stream = |portal: Option<&str>| {
        snapshot
            .deliveries
            .iter()
            .filter(|d| d.portal_id.as_deref() == portal && d.source == DeliverySource::Trigger)
            .map(|d| d.records.len())
            .sum::<usize>()
    };
    assert_eq!(by_stream(None), 120);
    assert_eq!(by_stream(Some(&a.id)), 70);
    assert_eq!(by_stream(Some(&b.id)), 30);
    assert!(snapshot.deliveries.iter().all(|d| d.attempts.len() == 1));

    // The pull API lists the portal events too, with portal_id.
    let page = api
        .get("/v3/audit-logs?page%5Bsize%5D=1000&filter%5Btype%5D=authentication")
        .await
        .json();
    let with_portal = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["portal_id"].is_string())
        .count();
    assert_eq!(with_portal, 100);
    sim.shutdown().await;
}

/// Organisation events name seeded users and system accounts; portal
/// events name the portal's developers.
#[tokio::test]
async fn records_name_seeded_principals() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    api.enable_webhook("names", &receiver.url("/n"), "json")
        .await;
    let before = sim.trigger("us", 20).await;
    let user = sim.add_user("ana@example.test", "Ana Admin").unwrap();
    let account = sim.add_system_account("terraform", "CI").unwrap();
    let report = sim.trigger("us", 40).await;
    let seeded = BTreeSet::from([user.id.as_str(), account.id.as_str()]);
    let principals: BTreeSet<String> = report
        .delivered_records()
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(r).unwrap()["principal_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        principals
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        seeded,
        "both seeded principals appear, and no other"
    );
    for record in before.delivered_records() {
        let event: Value = serde_json::from_str(record).unwrap();
        assert!(!seeded.contains(event["principal_id"].as_str().unwrap()));
    }
    sim.shutdown().await;
}
