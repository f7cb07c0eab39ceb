//! Webhook delivery to a real local receiver: body, headers, batching,
//! formats, retries, tunnels, steady rates.

use std::time::Duration;

use konnect_sim::{DeliverySource, SimConfig, TRACE_ID_BEYOND_F64};
use serde_json::Value;

use crate::common::{Answer, Api, Receiver, refused_addr, start_sim, start_sim_with};

async fn sim_with_batch(batch_size: usize) -> konnect_sim::Sim {
    start_sim_with(SimConfig {
        batch_size,
        ..SimConfig::for_tests()
    })
    .await
}

#[tokio::test]
async fn batches_are_gzip_posts_with_konnects_headers() {
    for format in ["json", "cef", "cps"] {
        let sim = sim_with_batch(50).await;
        let api = Api::new(&sim);
        let receiver = Receiver::start().await;
        let id = api
            .enable_webhook(
                &format!("hook-{format}"),
                &receiver.url("/audit-logs?src=konnect"),
                format,
            )
            .await;

        let report = sim.trigger("us", 120).await;
        assert!(report.all_delivered(), "{report:?}");
        let got = receiver.received();
        assert_eq!(
            got.iter().map(|r| r.records().len()).collect::<Vec<_>>(),
            [50, 50, 20],
            "{format}"
        );
        for request in &got {
            assert_eq!(request.method, "POST");
            assert_eq!(request.target, "/audit-logs?src=konnect");
            assert_eq!(request.header("authorization"), Some("Bearer hook-secret"));
            assert_eq!(request.header("content-type"), Some("text/plain"));
            assert_eq!(request.header("content-encoding"), Some("application/gzip"));
            assert_eq!(
                request.header("host"),
                Some(receiver.addr.to_string().as_str())
            );
            assert_eq!(&request.raw_body[..2], &[0x1f, 0x8b], "gzip magic");
            assert!(
                request.body.ends_with('\n'),
                "every record ends with a newline"
            );
            assert!(!request.body.contains("\n\n"));
        }
        let records = receiver.records();
        assert_eq!(
            records,
            report.delivered_records(),
            "the report lists what was sent"
        );
        for record in &records {
            match format {
                "json" => {
                    let event: Value = serde_json::from_str(record).unwrap();
                    assert!(
                        event["event_ts"].is_string() && event["trace_id"].is_u64(),
                        "{record}"
                    );
                    assert!(
                        event["sig"].is_string() && event["org_id"].is_string(),
                        "{record}"
                    );
                }
                "cps" => {
                    let wrapped: Value = serde_json::from_str(record).unwrap();
                    assert_eq!(wrapped.as_object().unwrap().len(), 1, "{record}");
                    assert!(wrapped["event"]["trace_id"].is_u64(), "{record}");
                }
                _ => {
                    let (ts, rest) = record.split_once(' ').unwrap();
                    assert_eq!(ts.len(), 20, "{record}");
                    assert!(rest.starts_with("konghq.com CEF:0|KongInc|"), "{record}");
                    assert_eq!(rest.matches('|').count(), 7, "{record}");
                    assert!(
                        rest.contains(" trace_id=") && rest.contains(" sig="),
                        "{record}"
                    );
                }
            }
        }
        let snapshot = sim.snapshot();
        assert_eq!(snapshot.deliveries.len(), 3);
        assert!(snapshot.deliveries.iter().all(|d| d.delivered
            && d.finished
            && d.attempts.len() == 1
            && d.destination_id.as_deref() == Some(id.as_str())
            && d.log_format == format
            && d.source == DeliverySource::Trigger));
        assert_eq!(snapshot.events_generated, 120);
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn trace_ids_beyond_2_pow_53_arrive_verbatim() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    api.enable_webhook("big-ints", &receiver.url("/hook"), "json")
        .await;
    sim.trigger("us", 20).await;
    let records = receiver.records();
    let first = &records[0];
    assert!(
        first.contains(&format!("\"trace_id\":{TRACE_ID_BEYOND_F64},")),
        "{first}"
    );
    // A double cannot hold it: parsing as f64 and printing gives another
    // number, so a reader that does that is caught.
    assert_ne!((TRACE_ID_BEYOND_F64 as f64) as u64, TRACE_ID_BEYOND_F64);
    let beyond_i64 = records
        .iter()
        .filter(|r| {
            let value: Value = serde_json::from_str(r).unwrap();
            value["trace_id"].as_u64().unwrap() > i64::MAX as u64
        })
        .count();
    assert!(beyond_i64 >= 1, "some trace ids do not fit an i64");
    sim.shutdown().await;
}

#[tokio::test]
async fn retries_500_and_429_at_most_four_times() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    api.enable_webhook("retry", &receiver.url("/hook"), "json")
        .await;

    receiver.script([
        Answer::Status(500),
        Answer::Status(429),
        Answer::Status(202),
    ]);
    let report = sim.trigger("us", 2).await;
    let delivery = &report.deliveries[0];
    assert!(delivery.delivered, "{delivery:?}");
    let statuses: Vec<Option<u16>> = delivery.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(429), Some(202)]);
    let bodies: Vec<String> = receiver.received().iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies.len(), 3);
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "a retry resends the same batch"
    );

    receiver.script(std::iter::repeat_n(Answer::Status(500), 6));
    let report = sim.trigger("us", 2).await;
    let delivery = &report.deliveries[0];
    assert!(!delivery.delivered);
    assert_eq!(delivery.attempts.len(), 5, "one attempt and four retries");
    assert!(
        delivery.outcome.as_deref().unwrap().contains("gave up"),
        "{delivery:?}"
    );
    assert_eq!(receiver.received().len(), 3 + 5);

    let status = api.get("/v2/audit-log-webhook/status").await.json();
    assert_eq!(status["webhook_status"], "inactive");
    assert_eq!(status["last_response_code"], 500);
    assert_eq!(status["last_response_message"], "answer 500");
    sim.shutdown().await;
}

#[tokio::test]
async fn other_statuses_are_not_retried() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    api.enable_webhook("no-retry", &receiver.url("/hook"), "cef")
        .await;
    for status in [401, 404, 400, 503] {
        receiver.script([Answer::Status(status)]);
        let report = sim.trigger("us", 1).await;
        let delivery = &report.deliveries[0];
        assert!(!delivery.delivered);
        assert_eq!(delivery.attempts.len(), 1, "{status}: {delivery:?}");
        assert_eq!(delivery.attempts[0].status, Some(status));
    }
    assert_eq!(receiver.received().len(), 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn connection_errors_are_retried() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let closed = refused_addr().await;
    api.enable_webhook("refused", &format!("http://{closed}/hook"), "json")
        .await;
    let report = sim.trigger("us", 3).await;
    let delivery = &report.deliveries[0];
    assert!(!delivery.delivered);
    assert_eq!(delivery.attempts.len(), 5);
    for attempt in &delivery.attempts {
        assert_eq!(attempt.status, None);
        assert!(
            attempt.error.as_deref().unwrap().contains("connect"),
            "{attempt:?}"
        );
    }

    // A receiver that drops the connection once, then answers.
    let receiver = Receiver::start().await;
    api.patch(
        &format!(
            "/v3/audit-log-destinations/{}",
            delivery.destination_id.as_ref().unwrap()
        ),
        serde_json::json!({"endpoint": receiver.url("/hook")}),
    )
    .await;
    receiver.script([Answer::Drop]);
    let report = sim.trigger("us", 3).await;
    let delivery = &report.deliveries[0];
    assert!(delivery.delivered, "{delivery:?}");
    assert_eq!(delivery.attempts.len(), 2);
    assert!(delivery.attempts[0].error.is_some());
    assert_eq!(delivery.attempts[1].status, Some(202));
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_receivers_time_out_and_are_retried() {
    let sim = start_sim_with(SimConfig {
        delivery_timeout: Duration::from_millis(200),
        ..SimConfig::for_tests()
    })
    .await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    api.enable_webhook("slow", &receiver.url("/hook"), "json")
        .await;
    receiver.script([Answer::Delayed(Duration::from_millis(1000), 202)]);
    let report = sim.trigger("us", 1).await;
    let delivery = &report.deliveries[0];
    assert!(delivery.delivered, "{delivery:?}");
    assert!(
        delivery.attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("no answer within 200 ms")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn tunnels_route_public_hosts_to_local_listeners() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    api.enable_webhook("tunnel", "https://t1.tunnel.test/audit-logs?k=v", "json")
        .await;

    // Not tunnelled: an https endpoint cannot be reached (no TLS), not retried.
    let report = sim.trigger("us", 2).await;
    let delivery = &report.deliveries[0];
    assert!(!delivery.delivered);
    assert_eq!(delivery.attempts.len(), 1);
    assert!(
        delivery.attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("tunnel"),
        "{delivery:?}"
    );

    sim.add_tunnel("T1.tunnel.test", receiver.addr);
    assert_eq!(
        sim.snapshot().tunnels["t1.tunnel.test"],
        receiver.addr.to_string()
    );
    let report = sim.trigger("us", 2).await;
    assert!(report.all_delivered(), "{report:?}");
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("host"), Some("t1.tunnel.test"));
    assert_eq!(got[0].target, "/audit-logs?k=v");
    assert_eq!(got[0].header("authorization"), Some("Bearer hook-secret"));

    assert!(sim.remove_tunnel("t1.tunnel.test"));
    assert!(!sim.trigger("us", 1).await.deliveries[0].delivered);
    sim.shutdown().await;
}

#[tokio::test]
async fn without_an_enabled_webhook_events_are_only_stored() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let report = sim.trigger("us", 10).await;
    assert_eq!(report.generated, 10);
    assert!(report.deliveries.is_empty());
    assert!(
        report
            .not_delivered
            .as_deref()
            .unwrap()
            .contains("not enabled")
    );
    assert!(!report.all_delivered());

    // Attached but disabled: still nothing delivered.
    let receiver = Receiver::start().await;
    api.enable_webhook("off", &receiver.url("/hook"), "json")
        .await;
    api.patch(
        "/v2/audit-log-webhook",
        serde_json::json!({"enabled": false}),
    )
    .await;
    assert!(sim.trigger("us", 5).await.deliveries.is_empty());
    assert!(receiver.received().is_empty());
    let snapshot = sim.snapshot();
    assert_eq!(snapshot.events_generated, 15);
    assert_eq!(snapshot.events_stored, 15);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_steady_rate_delivers_until_set_to_zero() {
    let sim = sim_with_batch(5).await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    api.enable_webhook("rate", &receiver.url("/hook"), "cps")
        .await;
    sim.set_rate("us", 200.0);
    assert_eq!(sim.snapshot().rates["us"], 200.0);
    receiver.wait_for_requests(3, Duration::from_secs(5)).await;
    sim.set_rate("us", 0.0);
    assert!(sim.snapshot().rates.is_empty());
    // A batch in flight may still land; then nothing more comes.
    let settled = sim
        .wait_for(Duration::from_secs(5), |s| {
            s.deliveries.iter().all(|d| d.finished)
                && s.events_generated as usize == s.delivered_records().len()
        })
        .await
        .expect("the last batch lands")
        .deliveries
        .len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.received().len(),
        settled,
        "no delivery after rate 0"
    );
    assert_eq!(sim.snapshot().deliveries.len(), settled);
    let snapshot = sim.snapshot();
    assert!(
        snapshot
            .deliveries
            .iter()
            .all(|d| d.source == DeliverySource::Rate && d.delivered)
    );
    assert_eq!(
        snapshot.events_generated as usize,
        receiver.records().len(),
        "every generated event was delivered"
    );
    sim.shutdown().await;
}
