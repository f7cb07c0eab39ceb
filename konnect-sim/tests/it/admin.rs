//! The `/_sim/` admin API over plain HTTP, as a shell demo or another
//! language would use it.

use konnect_sim::{Snapshot, TriggerReport};
use serde_json::json;

use crate::common::{Api, Auth, Receiver, signed_parts, start_sim, verifies};

#[tokio::test]
async fn admin_api_round_trip() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;

    let state: Snapshot =
        serde_json::from_slice(&api.admin("GET", "/_sim/state", None).await.body).unwrap();
    assert!(state.is_pristine());
    assert_eq!(state.webhooks.len(), 6);

    // A tunnel for a public https endpoint, then a destination behind it.
    let tunnel = api
        .admin(
            "POST",
            "/_sim/tunnels",
            Some(json!({"host": "demo.tunnel.test", "target": receiver.addr.to_string()})),
        )
        .await;
    assert_eq!(tunnel.status, 201);
    assert_eq!(tunnel.json()["demo.tunnel.test"], receiver.addr.to_string());
    api.enable_webhook("admin-demo", "https://demo.tunnel.test/audit-logs", "json")
        .await;

    let trigger = api
        .admin("POST", "/_sim/trigger", Some(json!({"count": 5})))
        .await;
    assert_eq!(trigger.status, 200);
    let report: TriggerReport = serde_json::from_slice(&trigger.body).unwrap();
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(report.region, "us");
    assert_eq!(receiver.records(), report.delivered_records());

    let fault = api.admin("POST",
        "/_sim/faults",
        Some(json!({"method": "GET", "path": "/v2/audit-log-webhook", "status": 500, "count": 1})),
    )
    .await;
    assert_eq!(fault.status, 201);
    assert_eq!(fault.json()[0]["action"], "status 500");
    assert_eq!(
        api.admin("GET", "/_sim/faults", None).await.json()[0]["remaining"],
        1
    );
    assert_eq!(
        api.raw("GET", "/v2/audit-log-webhook", None, Auth::Pat)
            .await
            .status,
        500
    );
    assert_eq!(api.get("/v2/audit-log-webhook").await.status, 200);
    api.admin(
        "POST",
        "/_sim/faults",
        Some(json!({"path": "*", "drop": true, "count": 9})),
    )
    .await;
    assert_eq!(api.admin("DELETE", "/_sim/faults", None).await.status, 204);
    assert_eq!(
        api.admin("GET", "/_sim/faults", None).await.json(),
        json!([])
    );

    let rate = api
        .admin(
            "POST",
            "/_sim/rate",
            Some(json!({"region": "eu", "per_second": 5})),
        )
        .await;
    assert_eq!(rate.json(), json!({"region": "eu", "per_second": 5.0}));
    let state: Snapshot =
        serde_json::from_slice(&api.admin("GET", "/_sim/state", None).await.body).unwrap();
    assert_eq!(state.rates["eu"], 5.0);
    api.admin(
        "POST",
        "/_sim/rate",
        Some(json!({"region": "eu", "per_second": 0})),
    )
    .await;

    assert_eq!(
        api.admin("DELETE", "/_sim/tunnels/demo.tunnel.test", None)
            .await
            .status,
        204
    );
    assert_eq!(
        api.admin("DELETE", "/_sim/tunnels/demo.tunnel.test", None)
            .await
            .status,
        404
    );

    // The receiver switch and the replay-job knobs.
    let down = api
        .admin("POST", "/_sim/receiver", Some(json!({"down": true})))
        .await;
    assert_eq!(down.json(), json!({"down": true}));
    let state: Snapshot =
        serde_json::from_slice(&api.admin("GET", "/_sim/state", None).await.body).unwrap();
    assert!(state.receiver_down);
    api.admin("POST", "/_sim/receiver", Some(json!({"down": false})))
        .await;
    let knobs = api
        .admin("POST", "/_sim/replay-jobs", Some(json!({"fail": 2})))
        .await;
    assert_eq!(knobs.json(), json!({"fail": 2, "hold": false}));
    let knobs = api
        .admin("POST", "/_sim/replay-jobs", Some(json!({"hold": true})))
        .await;
    assert_eq!(knobs.json(), json!({"fail": 2, "hold": true}));
    api.admin(
        "POST",
        "/_sim/replay-jobs",
        Some(json!({"fail": 0, "hold": false})),
    )
    .await;

    // Bad input is a 400 problem, not a panic.
    for (path, body) in [
        ("/_sim/receiver", json!({})),
        ("/_sim/replay-jobs", json!({"fail": -1})),
        ("/_sim/trigger", json!({"count": "many"})),
        ("/_sim/trigger", json!({"count": 1, "region": "mars"})),
        ("/_sim/rate", json!({"per_second": -1})),
        ("/_sim/faults", json!({"path": "/x"})),
        ("/_sim/faults", json!({"path": "/x", "status": 42})),
        (
            "/_sim/tunnels",
            json!({"host": "a.test", "target": "not-an-address"}),
        ),
    ] {
        let reply = api.admin("POST", path, Some(body.clone())).await;
        reply.problem(400);
    }
    assert_eq!(api.admin("GET", "/_sim/nothing", None).await.status, 404);
    assert_eq!(api.admin("GET", "/_sim/reset", None).await.status, 405);

    // The log has the API calls only, and the snapshot no secrets.
    let state = api.admin("GET", "/_sim/state", None).await;
    let text = state.text();
    assert!(
        !text.contains("hook-secret") && !text.contains(&sim.pat()),
        "{text}"
    );
    let state: Snapshot = serde_json::from_slice(&state.body).unwrap();
    assert!(state.requests.iter().all(|r| !r.path.starts_with("/_sim")));
    assert!(state.destinations[0].authorization_set);

    assert_eq!(api.admin("POST", "/_sim/reset", None).await.status, 204);
    let state: Snapshot =
        serde_json::from_slice(&api.admin("GET", "/_sim/state", None).await.body).unwrap();
    assert!(state.is_pristine() && state.events_generated == 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn admin_trigger_takes_the_region_from_the_host() {
    let sim = start_sim().await;
    let api = Api::new(&sim).with_host("sg.api.konghq.com");
    let reply = api
        .raw(
            "POST",
            "/_sim/trigger",
            Some(br#"{"count": 2}"#),
            Auth::None,
        )
        .await;
    let report: TriggerReport = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(report.region, "sg");
    assert_eq!(sim.snapshot().events_generated, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn records_are_signed_by_the_jwks_key_and_forgeries_and_rotation_work() {
    let sim = start_sim().await;
    let api = Api::new(&sim);
    let receiver = Receiver::start().await;
    sim.add_tunnel("sign.tunnel.test", receiver.addr);
    for format in ["json", "cef"] {
        api.enable_webhook(
            &format!("sign-{format}"),
            "https://sign.tunnel.test/audit-logs",
            format,
        )
        .await;
        let jwks = api.get("/v2/audit-log-webhook/jwks.json").await.json();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        assert_eq!(jwks["keys"][0]["kty"], "OKP");
        assert_eq!(jwks["keys"][0]["crv"], "Ed25519");

        let forged = api
            .admin(
                "POST",
                "/_sim/forgeries",
                Some(json!({"tampered": 1, "unsigned": 1})),
            )
            .await;
        assert_eq!(forged.status, 200);
        assert_eq!(forged.json(), json!({"tampered": 1, "unsigned": 1}));
        let report = sim.trigger("us", 5).await;
        assert!(report.all_delivered(), "{report:?}");
        let lines = report.delivered_records();
        let (tampered_msg, tampered_sig) = signed_parts(lines[0]).unwrap();
        assert!(tampered_msg.contains("203.0.113.255"), "{}", lines[0]);
        assert!(!verifies(&jwks, &tampered_msg, &tampered_sig));
        assert!(signed_parts(lines[1]).is_none(), "unsigned: {}", lines[1]);
        for line in &lines[2..] {
            let (message, sig) = signed_parts(line).unwrap();
            assert_eq!(sig.len(), 64);
            assert!(verifies(&jwks, &message, &sig), "{format}: {line}");
        }

        // Rotation: the new key signs; the JWKS keeps the old one if asked.
        let rotated = api
            .admin(
                "POST",
                "/_sim/signing-keys/rotate",
                Some(json!({"keep_old": true})),
            )
            .await;
        assert_eq!(rotated.status, 200);
        let both = rotated.json();
        assert_eq!(both["keys"].as_array().unwrap().len(), 2);
        assert_eq!(both["keys"][1], jwks["keys"][0]);
        assert_eq!(
            api.get("/v2/audit-log-webhook/jwks.json").await.json(),
            both
        );
        let report = sim.trigger("us", 2).await;
        for line in report.delivered_records() {
            let (message, sig) = signed_parts(line).unwrap();
            assert!(!verifies(&jwks, &message, &sig), "the old key alone fails");
            assert!(verifies(&both, &message, &sig));
        }
        let kid = sim.rotate_signing_key(false);
        let only = api.get("/v2/audit-log-webhook/jwks.json").await.json();
        assert_eq!(only["keys"].as_array().unwrap().len(), 1);
        assert_eq!(only["keys"][0]["kid"], kid.as_str());
        sim.reset();
        sim.add_tunnel("sign.tunnel.test", receiver.addr);
    }
}
