//! Running `listen` as a service, end to end against the emulator: the
//! admin endpoint's `/metrics` scraped under load and parsed with a
//! Prometheus text parser, `/readyz` through startup, serving and drain,
//! systemd played by a datagram socket, `--dry-run`, and the detached
//! listener's rolled log with SIGHUP.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use konnect_sim::{Fault, FaultAction};
use nix::sys::signal::Signal;
use test_support::{exchange, request};

fn get(addr: SocketAddr, path: &str) -> test_support::Reply {
    exchange(addr, &request("GET", path, &[], b""))
}

fn listener_json(w: &World) -> serde_json::Value {
    let bytes = std::fs::read(w.storage_dir("default").join("listener.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A scrape: (name, sorted labels) to value.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

/// `/metrics` parsed by prometheus-parse.
fn scrape(admin: SocketAddr) -> Samples {
    let r = get(admin, "/metrics");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(r.body).unwrap();
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut out = HashMap::new();
    for s in parsed.samples {
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            other => panic!("unexpected sample {other:?}"),
        };
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        assert!(
            out.insert((s.metric.clone(), labels), value).is_none(),
            "{} twice",
            s.metric
        );
    }
    out
}

fn metric(m: &Samples, name: &str, label: &[(&str, &str)]) -> f64 {
    let labels: Vec<(String, String)> = label
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    *m.get(&(name.to_string(), labels))
        .unwrap_or_else(|| panic!("no {name}{label:?} in {:?}", m.keys().collect::<Vec<_>>()))
}

fn admin_of(state: &serde_json::Value) -> SocketAddr {
    state["admin_address"]
        .as_str()
        .expect("admin_address in listener.json")
        .parse()
        .unwrap()
}

#[test]
fn metrics_scraped_under_load_equal_the_records_sent_and_listener_json() {
    let w = World::new();
    // The admin address from the environment (port 0: any free port).
    let (mut cmd, host) = w.listener_command("listen", &[]);
    cmd.env("KONGCTL_DEFAULT_AUDIT_LOGS_ADMIN_ADDRESS", "127.0.0.1:0")
        .env("KONGCTL_TEST_STATE_REFRESH", "50ms");
    let mut l = w.start_listener_cmd(cmd, &host);
    let banner = l.proc.wait_stdout("banner", |o| o.contains("Press Ctrl+C"));
    let state = l.proc.wait_for_listener_state(&w.storage_dir("default"));
    let admin = admin_of(&state);
    assert_ne!(admin.port(), l.addr.port());
    assert!(
        banner.contains(&format!("  admin endpoint: http://{admin}\n")),
        "{banner}"
    );

    // Scraped every 20 ms while Konnect delivers: every scrape parses and
    // no counter goes back.
    let stop = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(Mutex::new(0usize));
    let scraper = {
        let (stop, scrapes) = (stop.clone(), scrapes.clone());
        std::thread::spawn(move || {
            let mut last = 0.0;
            while !stop.load(Ordering::SeqCst) {
                let m = scrape(admin);
                let stored = metric(&m, "kongctl_audit_records_stored_total", &[]);
                assert!(
                    stored >= last,
                    "records stored went from {last} to {stored}"
                );
                last = stored;
                *scrapes.lock().unwrap() += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut sent = 0;
    for _ in 0..6 {
        let report = w.sim.trigger("us", 200);
        assert!(report.all_delivered(), "{report:?}");
        sent += 200;
    }
    // Refused requests are counted by status too.
    for _ in 0..3 {
        assert_eq!(
            post(
                l.addr,
                "/audit-logs",
                &[("Authorization", "Bearer wrong")],
                b"{}"
            ),
            401
        );
    }
    assert_eq!(post(l.addr, "/nope", &[], b"{}"), 404);
    stop.store(true, Ordering::SeqCst);
    scraper.join().expect("every scrape parsed");
    assert!(
        *scrapes.lock().unwrap() > 3,
        "the scraper ran during the load"
    );

    let batches = w
        .snapshot()
        .deliveries
        .iter()
        .filter(|d| d.delivered)
        .count() as u64;
    // The signature checker runs after the 202s (`--verify warn`): wait
    // until it has checked everything, so that both views are at rest.
    eventually(
        "listener.json to count every record, every one checked",
        || {
            let s = listener_json(&w);
            s["records_received"] == sent
                && s["ingest"]["requests"]["404"] == 1
                && s["verify"]["pending"] == 0
                && s["verify"]["valid"] == sent
        },
    );
    let m = scrape(admin);
    let s = listener_json(&w);
    let ingest = &s["ingest"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("{v} in {s:#}")) as f64;

    assert_eq!(
        metric(&m, "kongctl_audit_records_stored_total", &[]),
        sent as f64
    );
    assert_eq!(
        metric(&m, "kongctl_audit_records_stored_total", &[]),
        n(&s["records_received"])
    );
    assert_eq!(
        metric(&m, "kongctl_audit_records_received_total", &[]),
        sent as f64
    );
    assert_eq!(
        metric(&m, "kongctl_audit_records_received_total", &[]),
        n(&ingest["records"])
    );
    assert_eq!(
        metric(&m, "kongctl_audit_batches_stored_total", &[]),
        batches as f64
    );
    assert_eq!(
        metric(&m, "kongctl_audit_batches_stored_total", &[]),
        n(&s["requests_received"])
    );
    for (code, want) in [
        ("202", batches),
        ("401", 3),
        ("404", 1),
        ("500", 0),
        ("413", 0),
    ] {
        let got = metric(&m, "kongctl_audit_requests_total", &[("code", code)]);
        assert_eq!(got, want as f64, "code {code}");
        assert_eq!(got, n(&ingest["requests"][code]), "code {code}");
    }
    assert_eq!(
        metric(&m, "kongctl_audit_received_bytes_total", &[]),
        n(&ingest["bytes_raw"])
    );
    assert_eq!(
        metric(&m, "kongctl_audit_received_decoded_bytes_total", &[]),
        n(&ingest["bytes_decoded"])
    );
    let events = std::fs::metadata(w.events_file()).unwrap().len() as f64;
    assert_eq!(
        n(&ingest["bytes_decoded"]),
        events,
        "decoded bytes are the records stored"
    );
    assert!(n(&ingest["bytes_raw"]) < events, "Konnect sends gzip");
    assert_eq!(
        metric(
            &m,
            "kongctl_audit_records_set_aside_total",
            &[("reason", "duplicate")]
        ),
        n(&s["replay"]["duplicates_dropped"])
    );
    assert_eq!(
        metric(
            &m,
            "kongctl_audit_records_set_aside_total",
            &[("reason", "signature")]
        ),
        0.0
    );
    for result in ["valid", "invalid", "unsigned", "unverifiable"] {
        assert_eq!(
            metric(&m, "kongctl_audit_signatures_total", &[("result", result)]),
            n(&s["verify"][result]),
            "{result}"
        );
    }
    assert_eq!(
        metric(&m, "kongctl_audit_signatures_total", &[("result", "valid")]),
        sent as f64,
        "the emulator signs what it sends"
    );
    assert_eq!(
        metric(&m, "kongctl_audit_store_bytes", &[]),
        n(&s["store"]["bytes"])
    );
    assert_eq!(
        metric(&m, "kongctl_audit_store_segments", &[]),
        n(&s["store"]["segments"])
    );
    for (job, key) in [("completed", "jobs_completed"), ("failed", "jobs_failed")] {
        assert_eq!(
            metric(&m, "kongctl_audit_replay_jobs_total", &[("status", job)]),
            n(&s["replay"][key])
        );
    }
    let last: jiff::Timestamp = s["last_event_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        metric(
            &m,
            "kongctl_audit_last_record_received_timestamp_seconds",
            &[]
        ),
        last.as_second() as f64
    );
    assert_eq!(metric(&m, "kongctl_audit_ready", &[]), 1.0);
    assert_eq!(metric(&m, "kongctl_audit_store_write_failing", &[]), 0.0);
    assert!(metric(&m, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(metric(&m, "process_open_fds", &[]) > 3.0);
    assert!(metric(&m, "process_cpu_seconds_total", &[]) > 0.0);
    let start = metric(&m, "process_start_time_seconds", &[]);
    let now = jiff::Timestamp::now().as_second() as f64;
    assert!(
        start <= now + 1.0 && start > now - 600.0,
        "{start} vs {now}"
    );

    l.stop_ok();
    w.assert_konnect_clean();
}

#[test]
fn readyz_is_503_while_starting_and_draining_and_200_between() {
    let w = World::new();
    let port = free_port();
    let admin: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Startup held: the webhook attach answers 5 s late (long enough for a
    // loaded machine to start the process and poll the admin endpoint).
    w.sim.inject_fault(Fault {
        method: Some("PATCH".into()),
        path: "/v3/audit-log-webhook".into(),
        count: 1,
        action: FaultAction::Delay(Duration::from_secs(5)),
    });
    let (mut cmd, host) = w.listener_command("listen", &["--admin-address", &admin.to_string()]);
    cmd.env("KONGCTL_TEST_STATE_REFRESH", "50ms");
    let mut proc = Running::spawn(cmd);

    // Starting: alive, not ready.
    let mut starting = None;
    eventually(
        "the admin endpoint during startup",
        || match std::net::TcpStream::connect(admin) {
            Ok(_) => {
                let r = get(admin, "/readyz");
                starting = Some(r);
                true
            }
            Err(_) => false,
        },
    );
    let r = starting.unwrap();
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.text().starts_with("starting"), "{}", r.text());
    assert_eq!(get(admin, "/healthz").status, 200);
    assert!(
        !w.snapshot().webhooks["us"].enabled,
        "the 503 was seen before the webhook was attached"
    );

    // Serving: ready.
    let state = proc.wait_for_listener_state(&w.storage_dir("default"));
    assert_eq!(admin_of(&state), admin);
    let addr: SocketAddr = state["listen_address"].as_str().unwrap().parse().unwrap();
    w.sim.add_tunnel(&host, addr);
    // listener.json is written just before serving starts; readiness
    // follows within moments.
    eventually("/readyz to answer 200", || {
        let r = get(admin, "/readyz");
        (r.status, r.text().as_str()) == (200, "ready\n")
    });

    // Draining: the webhook release answers 2 s late; meanwhile not ready.
    w.sim.inject_fault(Fault {
        method: Some("PATCH".into()),
        path: "/v2/audit-log-webhook".into(),
        count: 1,
        action: FaultAction::Delay(Duration::from_secs(2)),
    });
    proc.interrupt();
    let mut draining = None;
    eventually("/readyz to say draining", || {
        let r = get(admin, "/readyz");
        let done = r.status == 503;
        draining = Some(r);
        done
    });
    let r = draining.unwrap();
    assert!(r.text().starts_with("draining"), "{}", r.text());
    assert!(proc.is_running(), "seen while the cleanup runs");
    assert_eq!(get(admin, "/healthz").status, 200);
    let status = proc.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{}", proc.stderr());
    w.assert_konnect_clean();
    assert!(
        std::net::TcpStream::connect(admin).is_err(),
        "the admin endpoint closes with the process"
    );
}

#[test]
fn the_admin_endpoint_refuses_the_listeners_port() {
    let w = World::new();
    let port = free_port().to_string();
    let out = w.run(&[
        "listen",
        "--endpoint",
        "https://h.tunnel.test/audit-logs",
        "--listen-address",
        &format!("127.0.0.1:{port}"),
        "--admin-address",
        &format!("0.0.0.0:{port}"),
    ]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("the admin endpoint needs a port of its own"),
        "{}",
        out.stderr
    );
    assert!(w.snapshot().requests.is_empty(), "nothing asked of Konnect");
}

/// Messages a fake systemd received, with when.
fn collect(
    socket: UnixDatagram,
    until: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(Instant, String)>> {
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !until.load(Ordering::SeqCst) {
            if let Ok(n) = socket.recv(&mut buf) {
                got.push((
                    Instant::now(),
                    String::from_utf8_lossy(&buf[..n]).into_owned(),
                ));
            }
        }
        got
    })
}

#[test]
fn systemd_hears_ready_after_the_webhook_points_here_then_watchdog_and_stopping() {
    let w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    // The attach answers late: READY=1 must wait for it.
    w.sim.inject_fault(Fault {
        method: Some("PATCH".into()),
        path: "/v3/audit-log-webhook".into(),
        count: 1,
        action: FaultAction::Delay(Duration::from_secs(1)),
    });
    let (mut cmd, host) = w.listener_command("listen", &["--log-level", "info"]);
    cmd.env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "1000000");
    let mut proc = Running::spawn(cmd);

    // READY=1: the emulator already shows the webhook pointed at the
    // destination when it arrives.
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 4096];
    let mut before_ready = Vec::new();
    loop {
        let n = socket.recv(&mut buf).expect("a notification");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.lines().any(|l| l == "READY=1") {
            let s = w.snapshot();
            let hook = &s.webhooks["us"];
            assert!(hook.enabled, "READY=1 before the webhook was enabled");
            assert_eq!(s.destinations.len(), 1);
            assert_eq!(
                hook.destination_id.as_deref(),
                Some(s.destinations[0].id.as_str())
            );
            break;
        }
        assert!(
            !msg.contains("WATCHDOG=1"),
            "a watchdog ping before READY=1: {msg}"
        );
        before_ready.push(msg);
    }
    assert!(
        before_ready
            .iter()
            .any(|m| m.starts_with("STATUS=starting")),
        "{before_ready:?}"
    );

    let state = proc.wait_for_listener_state(&w.storage_dir("default"));
    let addr: SocketAddr = state["listen_address"].as_str().unwrap().parse().unwrap();
    w.sim.add_tunnel(&host, addr);
    let done = Arc::new(AtomicBool::new(false));
    let received = collect(socket, done.clone());
    let report = w.sim.trigger("us", 30);
    assert!(report.all_delivered());
    // Three pings at half of WATCHDOG_USEC, then SIGTERM.
    std::thread::sleep(Duration::from_millis(3300));
    proc.signal(Signal::SIGTERM);
    let status = proc.wait_exit(Duration::from_secs(60));
    let exited = Instant::now();
    assert!(status.success(), "{}", proc.stderr());
    // The cleanup finished before the process exited.
    w.assert_konnect_clean();
    std::thread::sleep(Duration::from_millis(200));
    done.store(true, Ordering::SeqCst);
    let got = received.join().unwrap();

    let pings: Vec<Instant> = got
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    assert!(pings.len() >= 3, "{got:?}");
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(400) && gap < Duration::from_millis(1000),
            "pings {gap:?} apart, at half of WATCHDOG_USEC=1s: {got:?}"
        );
    }
    assert!(
        got.iter()
            .any(|(_, m)| m.starts_with("STATUS=serving: 30 records stored")),
        "{got:?}"
    );
    let stopping = got
        .iter()
        .find(|(_, m)| m.lines().any(|l| l == "STOPPING=1"))
        .unwrap_or_else(|| panic!("no STOPPING=1 in {got:?}"));
    assert!(stopping.0 < exited);
    assert!(
        !got.iter()
            .skip_while(|(_, m)| !m.contains("STOPPING=1"))
            .any(|(_, m)| m == "WATCHDOG=1"),
        "no pings once stopping: {got:?}"
    );
    // Under systemd the log goes to stderr (the journal), without colours,
    // and no log file is written.
    let stderr = proc.stderr();
    assert!(
        stderr.contains("Konnect Audit-Log Listener Started"),
        "{stderr}"
    );
    assert!(!stderr.contains('\x1b'), "ANSI colours: {stderr}");
    assert!(!w.config_dir().join("logs").exists());
}

#[test]
fn readyz_is_503_while_konnect_reports_a_failed_delivery_newer_than_the_store() {
    let w = World::new();
    let (mut cmd, host) = w.listener_command("listen", &["--admin-address", "127.0.0.1:0"]);
    cmd.env("KONGCTL_TEST_WEBHOOK_STATUS_EVERY", "50ms")
        .env("KONGCTL_TEST_STATE_REFRESH", "20ms");
    // No replay job runs until the test says so: the failure stays.
    w.sim.hold_replay_jobs(true);
    let mut l = w.start_listener_cmd(cmd, &host);
    let admin = admin_of(&listener_json(&w));
    assert!(w.sim.trigger("us", 5).all_delivered());
    eventually("ready", || get(admin, "/readyz").status == 200);

    w.sim.set_receiver_down(true);
    assert!(
        w.sim
            .trigger("us", 5)
            .deliveries
            .iter()
            .all(|d| !d.delivered)
    );
    let mut why = String::new();
    eventually("/readyz to report the failed delivery", || {
        let r = get(admin, "/readyz");
        why = r.text();
        r.status == 503
    });
    assert!(
        why.starts_with("Konnect reports a failed delivery at "),
        "{why}"
    );
    let m = scrape(admin);
    assert_eq!(metric(&m, "kongctl_audit_ready", &[]), 0.0);
    assert_eq!(
        metric(&m, "kongctl_audit_webhook_last_delivery_failed", &[]),
        1.0
    );
    eventually("listener.json to show the failed delivery", || {
        listener_json(&w)["replay"]["webhook"]["last_attempt_failed"] == true
    });

    // Deliveries work again: ready once a record newer than the failure is
    // stored.
    w.sim.set_receiver_down(false);
    assert!(w.sim.trigger("us", 5).all_delivered());
    eventually("ready again", || get(admin, "/readyz").status == 200);
    w.sim.hold_replay_jobs(false);
    l.stop_ok();
}

#[test]
fn dry_run_changes_nothing_and_says_what_a_start_would_do() {
    let w = World::new();
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}/audit-logs");
    let out = w.run(&[
        "listen",
        "--dry-run",
        "--endpoint",
        &endpoint,
        "--listen-address",
        &format!("127.0.0.1:{port}"),
        "--admin-address",
        "127.0.0.1:0",
        "--check",
        "strict",
        "--name",
        "svc-check",
    ]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stdout
            .starts_with("Dry run: nothing was changed in Konnect or on disk.\n"),
        "{}",
        out.stdout
    );
    for line in [
        &format!("  tunnel check: {endpoint} reaches this listener\n"),
        "  signature checks: warn with 1 key(s) from Konnect's JWKS\n",
        &format!("  create audit-log destination \"svc-check\" for {endpoint} (log format json)\n"),
        "  point the us audit-log webhook at it\n",
    ] {
        assert!(out.stdout.contains(line), "{line}\n{}", out.stdout);
    }
    let s = w.snapshot();
    assert!(!s.requests.is_empty(), "Konnect was read");
    for r in &s.requests {
        assert_eq!(r.method, "GET", "only reads: {} {}", r.method, r.path);
    }
    w.assert_konnect_clean();
    // Nothing on disk: no storage directory, no log file.
    assert!(
        !w.config_dir().exists(),
        "{:?}",
        std::fs::read_dir(w.dir.path()).unwrap().collect::<Vec<_>>()
    );
}

#[test]
fn dry_run_exits_78_for_bad_configuration_and_1_when_konnect_or_the_tunnel_would_stop_it() {
    let w = World::new();
    let base = [
        "listen",
        "--dry-run",
        "--endpoint",
        "https://h.tunnel.test/audit-logs",
        "--listen-address",
        "127.0.0.1:0",
    ];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        w.run(&args)
    };
    for (extra, says) in [
        (&["--log-format", "xml"][..], "invalid log-format"),
        (&["--no-such-flag"][..], "unknown flag"),
        (
            &["--admin-address", "nowhere"][..],
            "invalid --admin-address",
        ),
        (&["--max-file-size", "lots"][..], "invalid --max-file-size"),
        (&["--log-keep", "0"][..], "invalid --log-keep"),
    ] {
        let out = run(extra);
        assert_eq!(out.code(), Some(78), "{extra:?}: {out:?}");
        assert!(out.stderr.contains(says), "{extra:?}: {}", out.stderr);
    }
    // A bad config file, and a bad value in a good one.
    std::fs::create_dir_all(w.config_dir()).unwrap();
    let config = w.config_dir().join("config.yaml");
    std::fs::write(&config, "default: [unclosed\n").unwrap();
    let out = run(&[]);
    assert_eq!(out.code(), Some(78), "{out:?}");
    std::fs::write(
        &config,
        "default:\n  audit-logs:\n    admin-address: nowhere\n",
    )
    .unwrap();
    let out = run(&[]);
    assert_eq!(out.code(), Some(78), "{out:?}");
    assert!(
        out.stderr
            .contains("invalid audit-logs.admin-address \"nowhere\""),
        "{}",
        out.stderr
    );
    std::fs::remove_file(&config).unwrap();
    // No token anywhere.
    let mut cmd = w.kongctl();
    cmd.env_remove("KONGCTL_DEFAULT_KONNECT_PAT").args(base);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(78), "{out:?}");

    // Konnect would stop it: the webhook is taken.
    let mut l = w.start_listener("listen", &[]);
    let mut cmd = w.kongctl_profile("other");
    cmd.args(base);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("webhook is already configured"),
        "{}",
        out.stderr
    );
    l.stop_ok();
    // The tunnel would stop it: nothing answers the endpoint.
    let closed = free_port();
    let out = w.run(&[
        "listen",
        "--dry-run",
        "--endpoint",
        &format!("http://127.0.0.1:{closed}/audit-logs"),
        "--listen-address",
        "127.0.0.1:0",
        "--check",
        "strict",
    ]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("tunnel check"), "{}", out.stderr);
    w.assert_konnect_clean();
}

fn log_files(dir: &Path, pid: i32) -> Vec<String> {
    let prefix = format!("kongctl-listener-{pid}.log");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    names
}

#[test]
fn the_detached_listeners_log_rolls_and_sighup_reopens_it() {
    let w = World::new();
    let host = w.tunnel_host();
    let out = w.run(&[
        "listen",
        "--detach",
        "--endpoint",
        &format!("https://{host}/audit-logs"),
        "--listen-address",
        "127.0.0.1:0",
        "--authorization",
        "Bearer test-secret",
        "--log-level",
        "trace",
        "--log-max-size",
        "4KiB",
        "--log-keep",
        "2",
        "--admin-address",
        "127.0.0.1:0",
    ]);
    assert!(out.status.success(), "{out:?}");
    let pid = detached_pid(&out.stdout);
    let _guard = PidGuard(pid);
    let state = listener_json(&w);
    // The parent and ps say where the admin endpoint is.
    let admin = admin_of(&state);
    assert!(
        out.stdout
            .contains(&format!("  admin endpoint: http://{admin}\n")),
        "{}",
        out.stdout
    );
    let ps = w.run(&["ps", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&ps.stdout).unwrap();
    assert_eq!(listed[0]["admin_address"], admin.to_string(), "{listed}");
    let ps = w.run(&["ps", "--columns", "PID=.pid,ADMIN=.admin_address"]);
    assert!(ps.stdout.contains(&admin.to_string()), "{}", ps.stdout);
    assert_eq!(get(admin, "/healthz").status, 200);
    let addr: SocketAddr = state["listen_address"].as_str().unwrap().parse().unwrap();
    let logs = w.config_dir().join("logs");
    let log = logs.join(format!("kongctl-listener-{pid}.log"));

    // Every request logs a line at trace: enough of them roll the log.
    for _ in 0..200 {
        assert_eq!(
            post(
                addr,
                "/audit-logs",
                &[("Authorization", "Bearer test-secret")],
                b"{\"id\":1}\n"
            ),
            202
        );
    }
    eventually("two rolled files", || log_files(&logs, pid).len() == 3);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        log_files(&logs, pid),
        vec![
            format!("kongctl-listener-{pid}.log"),
            format!("kongctl-listener-{pid}.log.1"),
            format!("kongctl-listener-{pid}.log.2"),
        ]
    );
    for name in log_files(&logs, pid) {
        let len = std::fs::metadata(logs.join(&name)).unwrap().len();
        assert!(len <= 4096, "{name}: {len} bytes");
    }

    // logrotate moves the file away and sends SIGHUP: the listener keeps
    // serving and writes to a new file at the path.
    let moved = logs.join("moved.log");
    std::fs::rename(&log, &moved).unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGHUP).unwrap();
    eventually("the reopened log", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("log file reopened"))
    });
    assert!(alive(pid), "SIGHUP did not stop the detached listener");
    assert_eq!(
        post(
            addr,
            "/audit-logs",
            &[("Authorization", "Bearer test-secret")],
            b"{\"id\":2}\n"
        ),
        202
    );

    let stop = w.run(&["ps", "stop", &pid.to_string()]);
    assert!(stop.status.success(), "{stop:?}");
    w.assert_konnect_clean();
}

#[test]
fn sighup_still_stops_a_foreground_listener() {
    let w = World::new();
    let mut l = w.start_listener("listen", &[]);
    l.proc.signal(Signal::SIGHUP);
    let status = l.proc.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{}", l.proc.stderr());
    w.assert_konnect_clean();
}
