//! Dev Portal audit logs through the real binary against the emulator:
//! `listen --portal` stores the organisation's and each portal's events
//! once and gives every webhook back as it found it; unknown, ambiguous and
//! busy portals change nothing; every portal step of startup and cleanup
//! failed in every way (error status, timeout, dropped connection, a
//! signal while it is held) leaves Konnect as it was; a listener killed
//! while portal webhooks point at it is reclaimed at the next start, and
//! each stream's gap is replayed; every request the client sends keeps the
//! portal spec's contract (the emulator's checker). Reading stored portal
//! records (`--portal`, `--org`, the PORTAL column) and the portal variants
//! of `get`/`delete audit-logs webhook` are at the end.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use konnect_sim::{Fault, FaultAction};
use serde_json::Value;

/// The test-only timing of gap healing (see tests/replay.rs).
const TICK: &str = "20ms";

// ---------------------------------------------------------------------------
// Helpers.

/// A world with two portals in `us`, "Partner Portal" and "Docs Portal".
struct Portals {
    w: World,
    a: konnect_sim::PortalState,
    b: konnect_sim::PortalState,
}

fn portals() -> Portals {
    let w = World::new();
    let a = w.sim.add_portal("us", "Partner Portal").unwrap();
    let b = w.sim.add_portal("us", "Docs Portal").unwrap();
    Portals { w, a, b }
}

/// Another integration's destination; returns its id.
fn their_destination(w: &World) -> String {
    let (status, body) = w.konnect_call(
        "POST",
        "/v3/audit-log-destinations",
        r#"{"name":"their-siem","endpoint":"https://siem.example.com/in","authorization":"Bearer theirs","log_format":"cef"}"#,
    );
    assert_eq!(status, 201, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Points `portal`'s webhook at `destination` (`enabled` as given), as
/// another integration would.
fn point_portal(w: &World, portal: &str, destination: &str, enabled: bool) {
    let (status, body) = w.konnect_call(
        "PATCH",
        &format!("/v3/portals/{portal}/audit-log-webhook"),
        &format!(r#"{{"audit_log_destination_id":"{destination}","enabled":{enabled}}}"#),
    );
    assert_eq!(status, 200, "{body}");
}

/// `(enabled, destination)` of a portal's webhook.
fn portal_hook(w: &World, portal: &str) -> (bool, Option<String>) {
    let s = w.snapshot();
    let p = s.portal(portal).expect("the portal exists");
    (p.webhook.enabled, p.webhook.destination_id.clone())
}

/// Konnect as it started, portals included: the region's webhook
/// unconfigured, only the destinations in `kept`, each portal's webhook
/// as in `hooks`.
fn assert_left_as_found(w: &World, kept: &[&str], hooks: &[(&str, (bool, Option<String>))]) {
    let s = w.snapshot();
    let hook = &s.webhooks["us"];
    assert!(
        !hook.enabled && hook.endpoint == "unconfigured" && hook.destination_id.is_none(),
        "region's webhook left configured: {hook:?}"
    );
    let mut ids: Vec<&str> = s.destinations.iter().map(|d| d.id.as_str()).collect();
    ids.sort_unstable();
    let mut want = kept.to_vec();
    want.sort_unstable();
    assert_eq!(ids, want, "destinations left: {:?}", s.destinations);
    for (portal, want) in hooks {
        assert_eq!(&portal_hook(w, portal), want, "webhook of portal {portal}");
    }
}

fn unconfigured() -> (bool, Option<String>) {
    (false, None)
}

/// Every request kongctl sent kept the specs' contract.
fn assert_contract_kept(w: &World) {
    let violations = w.sim.contract_violations();
    assert!(
        violations.is_empty(),
        "contract violations: {violations:#?}"
    );
}

/// `listen` with the portals as flags, test timing and client timeout.
fn listen_command(w: &World, portals: &[&str], timeout: &str) -> (Command, String) {
    let mut extra = Vec::new();
    for p in portals {
        extra.push("--portal");
        extra.push(*p);
    }
    let (mut cmd, host) = w.listener_command("listen", &extra);
    cmd.env("KONGCTL_KONNECT_TIMEOUT", timeout)
        .env("KONGCTL_TEST_REPLAY_TICK", TICK)
        .env("KONGCTL_TEST_STATE_REFRESH", "20ms")
        .env("KONGCTL_TEST_WEBHOOK_STATUS_EVERY", "1h");
    (cmd, host)
}

/// Starts `cmd` and points its tunnel at it, holding replay jobs until the
/// tunnel is there (see tests/replay.rs).
fn start(w: &World, cmd: Command, host: &str) -> Listener {
    w.sim.hold_replay_jobs(true);
    let l = w.start_listener_cmd(cmd, host);
    w.sim.hold_replay_jobs(false);
    l
}

/// The `replay` object of listener.json.
fn replay(w: &World) -> Value {
    std::fs::read(w.storage_dir("default").join("listener.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(|v| v["replay"].clone())
        .unwrap_or(Value::Null)
}

/// The replay entry of `portal` in listener.json.
fn portal_replay(w: &World, portal: &str) -> Value {
    replay(w)["portals"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["portal_id"] == portal).cloned())
        .unwrap_or(Value::Null)
}

fn kill(l: &mut Listener) {
    l.proc.signal(nix::sys::signal::Signal::SIGKILL);
    l.proc.wait_exit(Duration::from_secs(10));
}

// ---------------------------------------------------------------------------
// The whole life of a listener with two portals.

#[test]
fn two_portals_store_every_stream_once_and_every_webhook_is_given_back() {
    let Portals { w, a, b } = portals();
    // Portal b's webhook points (disabled) at another integration's
    // destination: it gets that back, not an empty webhook.
    let theirs = their_destination(&w);
    point_portal(&w, &b.id, &theirs, false);

    let (cmd, host) = listen_command(&w, &["Partner Portal", &b.id], "5s");
    let mut l = start(&w, cmd, &host);
    let s = w.snapshot();
    let ours = s
        .destinations
        .iter()
        .find(|d| d.id != theirs)
        .expect("the listener's destination")
        .id
        .clone();
    assert_eq!(
        s.webhooks["us"].destination_id.as_deref(),
        Some(ours.as_str())
    );
    assert_eq!(portal_hook(&w, &a.id), (true, Some(ours.clone())));
    assert_eq!(portal_hook(&w, &b.id), (true, Some(ours.clone())));

    // What a user sees: the portals in the banner (printed just after
    // listener.json is written) and in listener.json.
    let banner = l
        .proc
        .wait_stdout("the startup block", |out| out.contains("Press Ctrl+C"));
    assert!(
        banner.contains(&format!(
            "  dev portal webhooks configured: Partner Portal ({}), Docs Portal ({})\n",
            a.id, b.id
        )),
        "{banner}"
    );
    let state: Value = serde_json::from_slice(
        &std::fs::read(w.storage_dir("default").join("listener.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        state["portals"],
        serde_json::json!([{"id": a.id, "name": "Partner Portal"}, {"id": b.id, "name": "Docs Portal"}])
    );
    let dest = w.destination_state();
    assert_eq!(dest["portals"][0]["release"], "delete", "{dest}");
    assert_eq!(dest["portals"][1]["release"], "restore", "{dest}");
    assert_eq!(
        dest["portals"][1]["previous_destination_id"],
        theirs.as_str()
    );

    let org = w.sim.trigger("us", 30);
    let pa = w.sim.trigger_portal(&a.id, 20);
    let pb = w.sim.trigger_portal(&b.id, 10);
    for r in [&org, &pa, &pb] {
        assert!(r.all_delivered(), "{r:?}");
    }
    assert!(
        pa.deliveries
            .iter()
            .all(|d| d.portal_id.as_deref() == Some(a.id.as_str())),
        "portal a's events came through its own webhook"
    );
    let stored = read_lines(&w.events_file());
    assert_each_once(&stored, &emitted(&[&org, &pa, &pb]));
    let with_portal = |id: &str| {
        stored
            .iter()
            .filter(|l| serde_json::from_str::<Value>(l).unwrap()["portal_id"] == id)
            .count()
    };
    assert_eq!((with_portal(&a.id), with_portal(&b.id)), (20, 10));

    let out = l.stop_ok();
    assert!(
        out.ends_with(&format!(
            "\nListener stopped. Deleted audit-log destination: {ours}\n"
        )),
        "{out}"
    );
    assert_left_as_found(
        &w,
        &[&theirs],
        &[
            (&a.id, unconfigured()),
            (&b.id, (false, Some(theirs.clone()))),
        ],
    );
    assert_eq!(w.destination_state()["status"], "deleted");
    assert_contract_kept(&w);
}

#[test]
fn without_the_regions_webhook_the_portals_are_still_pointed_and_healed() {
    let Portals { w, a, .. } = portals();
    let (mut cmd, host) = listen_command(&w, &["Partner Portal"], "5s");
    cmd.arg("--configure-webhook=false");
    let mut l = start(&w, cmd, &host);
    let s = w.snapshot();
    assert!(
        s.webhooks["us"].is_unconfigured(),
        "the region's is left alone"
    );
    let ours = s.destinations[0].id.clone();
    assert_eq!(portal_hook(&w, &a.id), (true, Some(ours)));
    let r = replay(&w);
    assert_eq!(r["state"], "off", "{r}");
    assert_eq!(r["portals"][0]["state"], "idle", "{r}");
    let pa = w.sim.trigger_portal(&a.id, 4);
    assert!(pa.all_delivered(), "{pa:?}");
    assert_each_once(&read_lines(&w.events_file()), &emitted(&[&pa]));
    l.stop_ok();
    assert_left_as_found(&w, &[], &[(&a.id, unconfigured())]);
    assert_contract_kept(&w);
}

#[test]
fn tail_and_a_detached_listener_take_portals_too() {
    let Portals { w, a, .. } = portals();
    // tail: the portal's records are printed as they are stored.
    let (mut cmd, host) = w.listener_command("tail", &["--portal", &a.id]);
    cmd.env("KONGCTL_TEST_REPLAY_TICK", TICK);
    let mut l = w.start_listener_cmd(cmd, &host);
    let pa = w.sim.trigger_portal(&a.id, 3);
    assert!(pa.all_delivered(), "{pa:?}");
    let printed = l
        .proc
        .wait_stdout("the portal's records", |out| out.lines().count() >= 3);
    for record in emitted(&[&pa]) {
        assert!(printed.contains(&record), "{printed}");
    }
    l.stop_ok();
    assert_left_as_found(&w, &[], &[(&a.id, unconfigured())]);

    // -d: the detached child points the portal's webhook, ps shows it,
    // ps stop gives it back.
    let host = w.tunnel_host();
    let endpoint = format!("https://{host}/audit-logs");
    let out = w.run(&[
        "listen",
        "-d",
        "--endpoint",
        &endpoint,
        "--listen-address",
        "127.0.0.1:0",
        "--authorization",
        "Bearer test-secret",
        "--portal",
        "Partner Portal",
    ]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let pid = detached_pid(&out.stdout);
    let _guard = PidGuard(pid);
    let ours = w.snapshot().destinations[0].id.clone();
    assert_eq!(portal_hook(&w, &a.id), (true, Some(ours)));
    let ps = w.run(&["ps", "-o", "json"]);
    let listed: Value = serde_json::from_str(&ps.stdout).unwrap();
    assert_eq!(
        listed[0]["portals"],
        serde_json::json!([{"id": a.id, "name": "Partner Portal"}]),
        "{}",
        ps.stdout
    );
    assert_eq!(
        listed[0]["replay"]["portals"][0]["portal_id"],
        a.id.as_str()
    );
    let stop = w.run(&["ps", "stop", &pid.to_string()]);
    assert_eq!(stop.code(), Some(0), "{}\n{}", stop.stdout, stop.stderr);
    assert_left_as_found(&w, &[], &[(&a.id, unconfigured())]);
    assert_contract_kept(&w);
}

// ---------------------------------------------------------------------------
// A portal's records are signed like the organisation's.

#[test]
fn portal_records_are_checked_against_the_organisations_keys() {
    for format in ["json", "cef"] {
        let Portals { w, a, .. } = portals();
        let (cmd, host) = listen_command(&w, &[&a.id], "5s");
        let mut cmd = cmd;
        cmd.args(["--verify", "reject", "--log-format", format]);
        let mut l = start(&w, cmd, &host);
        // One tampered, one unsigned, six as Konnect signs them.
        w.sim.forge_next(1, 1);
        let report = w.sim.trigger_portal(&a.id, 8);
        assert!(report.all_delivered(), "{report:?}");
        let sent = emitted(&[&report]);
        let (forged, kept): (Vec<&String>, Vec<&String>) = sent
            .iter()
            .partition(|r| r.contains("203.0.113.255") || !r.contains("sig"));
        assert_eq!((forged.len(), kept.len()), (2, 6), "{format}: {sent:#?}");
        let dir = w.storage_dir("default");
        assert_eq!(
            read_lines(&w.events_file()),
            kept.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "{format}"
        );
        assert_eq!(read_lines(&dir.join("rejected.jsonl")).len(), 2, "{format}");
        l.stop_ok();
        let state: Value =
            serde_json::from_slice(&std::fs::read(dir.join("listener.json")).unwrap()).unwrap();
        assert_eq!(
            state["verify"],
            serde_json::json!({"valid": 6, "invalid": 1, "unsigned": 1, "unverifiable": 0, "pending": 0}),
            "{format}"
        );
        // The offline check agrees, with the keys the listener saved.
        let out = w.run(&["get", "audit-logs", "--stored", "--verify"]);
        assert_eq!(
            out.code(),
            Some(0),
            "{format}: {}\n{}",
            out.stdout,
            out.stderr
        );
        assert_contract_kept(&w);
    }
}

// ---------------------------------------------------------------------------
// Portals that cannot be used change nothing.

#[test]
fn an_unknown_or_ambiguous_portal_fails_before_any_change() {
    let Portals { w, a, b } = portals();
    // Unknown: the region's portals are listed.
    let (cmd, _) = listen_command(&w, &["Partner Portal", "Nope"], "5s");
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(
        out.stderr,
        format!(
            "Error: --portal \"Nope\": no Dev Portal has the id or name \"Nope\"\n\
             Hint: the region's portals: Partner Portal ({}), Docs Portal ({}); portals are \
             regional: --region picks another\n",
            a.id, b.id
        )
    );
    // An id of no portal.
    let (cmd, _) = listen_command(&w, &["3e551b39-227d-4297-b911-e68fd5d77c17"], "5s");
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("Error: --portal \"3e551b39-227d-4297-b911-e68fd5d77c17\": no Dev Portal"),
        "{}",
        out.stderr
    );
    // (Two portals of one name cannot be made: Konnect and the emulator
    // keep names unique in a region. The message for that case is checked
    // by konnect::portals' unit test against a scripted Konnect.)
    assert_eq!(w.calls("POST", "/"), 0, "nothing created");
    assert_eq!(w.calls("PATCH", "/"), 0, "nothing changed");
    assert!(!w.storage_dir("default").join("destination.json").exists());
    assert_contract_kept(&w);
}

#[test]
fn a_portal_whose_webhook_is_enabled_elsewhere_is_refused() {
    let Portals { w, a, b } = portals();
    let theirs = their_destination(&w);
    point_portal(&w, &b.id, &theirs, true);
    let (cmd, _) = listen_command(&w, &[&a.id, "Docs Portal"], "5s");
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(
        out.stderr,
        format!(
            "Error: the audit-log webhook of Dev Portal Docs Portal ({b}) is already enabled \
             (destination {theirs}); expected it disabled\n\
             Hint: another listener or integration uses it; stop it (kongctl ps), or clear it \
             with 'kongctl delete audit-logs webhook --portal {b}', or leave out --portal Docs Portal\n",
            b = b.id
        )
    );
    assert_eq!(
        w.calls("POST", "/v3/audit-log-destinations"),
        1,
        "theirs, and no other"
    );
    assert_left_as_found(
        &w,
        &[&theirs],
        &[
            (&a.id, unconfigured()),
            (&b.id, (true, Some(theirs.clone()))),
        ],
    );
    assert_contract_kept(&w);
}

// ---------------------------------------------------------------------------
// The fault matrix: every portal step, failed in every way.

/// Attempts the client makes per call, the first included.
const ATTEMPTS: u32 = 4;

/// A portal step of a listener's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Resolving a name: the portal list.
    Lookup,
    /// Startup guard: the portal's webhook read.
    Guard,
    /// Pointing the portal's webhook at the destination.
    Attach,
    /// Cleanup: does the portal's webhook still point at us?
    Ownership,
    /// Cleanup: giving the webhook back (DELETE: it had no destination).
    Clear,
    /// Cleanup: giving the webhook back (PATCH: it had one).
    Restore,
}

impl Step {
    fn startup(self) -> bool {
        matches!(self, Step::Lookup | Step::Guard | Step::Attach)
    }

    fn method(self) -> &'static str {
        match self {
            Step::Lookup | Step::Guard | Step::Ownership => "GET",
            Step::Attach | Step::Restore => "PATCH",
            Step::Clear => "DELETE",
        }
    }

    /// The path the fault is armed on, for portal `id` (the second
    /// portal, so the first has been attached when the second fails).
    fn path(self, id: &str) -> String {
        match self {
            Step::Lookup => "/v3/portals".into(),
            _ => format!("/v3/portals/{id}/audit-log-webhook"),
        }
    }

    /// The patch that restores also attaches (same method and path): the
    /// fault on a restore is armed after startup.
    fn fault(self, id: &str, count: u32, action: FaultAction) -> Fault {
        Fault {
            method: Some(self.method().into()),
            path: self.path(id),
            count,
            action,
        }
    }

    /// `Error: <step>:` when it gives up.
    fn error(self, b: &str) -> String {
        match self {
            Step::Lookup => "Error: look up Dev Portal: GET".into(),
            Step::Guard => {
                format!("Error: read the audit-log webhook of Dev Portal Docs Portal ({b}): GET")
            }
            Step::Attach => format!(
                "Error: configure the audit-log webhook of Dev Portal Docs Portal ({b}): PATCH"
            ),
            Step::Ownership => unreachable!("a failed ownership read gives back anyway"),
            Step::Clear => format!(
                "Error: restore the audit-log webhook of Dev Portal Docs Portal ({b}): DELETE"
            ),
            Step::Restore => format!(
                "Error: restore the audit-log webhook of Dev Portal Docs Portal ({b}): PATCH"
            ),
        }
    }
}

/// How a step fails.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Status(u16),
    RateLimited,
    Timeout,
    Drop,
}

impl Kind {
    fn action(self) -> FaultAction {
        match self {
            Kind::Status(status) => FaultAction::Status {
                status,
                retry_after: None,
            },
            Kind::RateLimited => FaultAction::Status {
                status: 429,
                retry_after: Some(1),
            },
            Kind::Timeout => FaultAction::Delay(Duration::from_secs(3)),
            Kind::Drop => FaultAction::Drop,
        }
    }

    fn why(self) -> &'static str {
        match self {
            Kind::Status(500) => "status 500 Internal Server Error",
            Kind::Status(503) => "status 503 Service Unavailable",
            Kind::Status(_) => unreachable!(),
            Kind::RateLimited => "status 429 Too Many Requests",
            Kind::Timeout => "no response within 1.0s",
            Kind::Drop => "connection closed before message completed",
        }
    }

    fn timeout(self) -> &'static str {
        match self {
            Kind::Timeout => "1s",
            _ => "5s",
        }
    }
}

const KINDS: [Kind; 5] = [
    Kind::Status(500),
    Kind::Status(503),
    Kind::RateLimited,
    Kind::Timeout,
    Kind::Drop,
];

#[derive(Clone, Copy, Debug)]
struct Case {
    step: Step,
    kind: Kind,
    /// Fails fewer times than the retry budget (rides it out) or more.
    within: bool,
}

impl Case {
    fn name(&self) -> String {
        format!(
            "{:?} failing {} with {:?}",
            self.step,
            if self.within {
                "within budget"
            } else {
                "beyond budget"
            },
            self.kind
        )
    }
}

fn matrix(step: Step) {
    let mut cases = Vec::new();
    for kind in KINDS {
        for within in [true, false] {
            cases.push(Case { step, kind, within });
        }
    }
    run_cases(cases, Case::name, run_case);
}

/// The world of a fault case: two portals, the second ("Docs Portal")
/// the one that fails; it points (disabled) at another destination when
/// the case is about restoring one.
struct Setup {
    w: World,
    a: String,
    b: String,
    theirs: Option<String>,
}

fn setup(step: Step) -> Setup {
    let Portals { w, a, b } = portals();
    let theirs = (step == Step::Restore).then(|| {
        let theirs = their_destination(&w);
        point_portal(&w, &b.id, &theirs, false);
        theirs
    });
    Setup {
        w,
        a: a.id,
        b: b.id,
        theirs,
    }
}

impl Setup {
    /// Each portal's webhook as it was before the listener.
    fn found(&self) -> Vec<(&str, (bool, Option<String>))> {
        vec![
            (self.a.as_str(), unconfigured()),
            (self.b.as_str(), (false, self.theirs.clone())),
        ]
    }

    fn kept(&self) -> Vec<&str> {
        self.theirs.iter().map(String::as_str).collect()
    }

    fn command(&self, timeout: &str) -> (Command, String) {
        // By name, so that the lookup is a step of its own.
        listen_command(&self.w, &["Partner Portal", "Docs Portal"], timeout)
    }
}

fn run_case(case: Case) {
    let s = setup(case.step);
    let w = &s.w;
    let count = if case.within {
        ATTEMPTS - 1
    } else {
        ATTEMPTS + 2
    };
    let fault = case.step.fault(&s.b, count, case.kind.action());
    let (cmd, host) = s.command(case.kind.timeout());
    if case.step.startup() {
        w.sim.inject_fault(fault);
        if case.within {
            let mut l = start(w, cmd, &host);
            assert_used(w, &case, &s.b, ATTEMPTS - 1);
            let ours = w
                .snapshot()
                .destinations
                .iter()
                .find(|d| Some(&d.id) != s.theirs.as_ref())
                .unwrap()
                .id
                .clone();
            assert_eq!(portal_hook(w, &s.b), (true, Some(ours)));
            l.stop_ok();
        } else {
            let out = Running::run_command(cmd);
            assert_eq!(out.code(), Some(1), "{}", out.stderr);
            let want = case.step.error(&s.b);
            assert!(
                out.stderr.starts_with(&want)
                    && out.stderr.lines().next().unwrap().contains(case.kind.why()),
                "want {want:?} … {:?}:\n{}",
                case.kind.why(),
                out.stderr
            );
            assert!(!out.stdout.contains("Listener Started"), "{}", out.stdout);
            assert_used(w, &case, &s.b, ATTEMPTS);
        }
    } else {
        let mut l = start(w, cmd, &host);
        w.sim.inject_fault(fault);
        l.proc.interrupt();
        let status = l.proc.wait_exit(Duration::from_secs(60));
        let err = l.proc.stderr();
        if case.within || case.step == Step::Ownership {
            assert!(status.success(), "{err}");
            assert_used(
                w,
                &case,
                &s.b,
                if case.within { ATTEMPTS - 1 } else { ATTEMPTS },
            );
        } else {
            assert_eq!(status.code(), Some(1), "{err}");
            let want = case.step.error(&s.b);
            assert!(
                err.starts_with(&want) && err.lines().next().unwrap().contains(case.kind.why()),
                "want {want:?} … {:?}:\n{err}",
                case.kind.why()
            );
            assert!(
                err.contains(&format!(
                    "the audit-log webhooks of Dev Portals Partner Portal ({}), Docs Portal ({}) \
                     may still point at this listener's destination",
                    s.a, s.b
                )),
                "{err}"
            );
            assert_eq!(w.destination_state()["status"], "cleanup_failed");
            assert_used(w, &case, &s.b, ATTEMPTS);
            // The next start finishes the cleanup.
            w.sim.clear_faults();
            let (cmd, host) = s.command("5s");
            let mut next = start(w, cmd, &host);
            let reclaim = next.proc.stderr();
            assert!(
                reclaim.contains(&format!(
                    "Reclaimed: restored the audit-log webhooks of Dev Portals Docs Portal ({}), \
                     Partner Portal ({}), ",
                    s.b, s.a
                )),
                "{reclaim}"
            );
            next.stop_ok();
        }
    }
    w.sim.clear_faults();
    assert_left_as_found(w, &s.kept(), &s.found());
    assert_contract_kept(w);
}

/// Asserts the case's fault was met exactly `attempts` times: the client
/// retried as long as its budget allows, and no longer.
fn assert_used(w: &World, case: &Case, b: &str, attempts: u32) {
    let armed = if case.within {
        ATTEMPTS - 1
    } else {
        ATTEMPTS + 2
    };
    let left: u32 = w
        .snapshot()
        .faults
        .iter()
        .filter(|f| f.path == case.step.path(b))
        .map(|f| f.remaining)
        .sum();
    assert_eq!(armed - left, attempts, "attempts that met the fault");
}

#[test]
fn portal_lookup_faults() {
    matrix(Step::Lookup);
}

#[test]
fn portal_guard_faults() {
    matrix(Step::Guard);
}

#[test]
fn portal_attach_faults() {
    matrix(Step::Attach);
}

#[test]
fn portal_ownership_read_faults() {
    matrix(Step::Ownership);
}

#[test]
fn portal_clear_faults() {
    matrix(Step::Clear);
}

#[test]
fn portal_restore_faults() {
    matrix(Step::Restore);
}

/// A 4xx is final: one attempt, then the same clean outcome.
#[test]
fn portal_client_errors_are_not_retried_and_leave_nothing() {
    // (A 404 on the clearing DELETE means the portal is gone, which an
    // injected 404 would only pretend: the webhook would still hold the
    // destination. 400 and 403 there.)
    let cases: Vec<(Step, u16)> = vec![
        (Step::Guard, 403),
        (Step::Guard, 404),
        (Step::Attach, 400),
        (Step::Attach, 403),
        (Step::Attach, 404),
        (Step::Clear, 400),
        (Step::Clear, 403),
    ];
    run_cases(
        cases,
        |(s, c)| format!("{s:?} answering {c}"),
        |(step, code)| {
            let s = setup(step);
            let w = &s.w;
            let fault = Fault::status(Some(step.method()), &step.path(&s.b), 1, code);
            let (cmd, host) = s.command("5s");
            if step.startup() {
                w.sim.inject_fault(fault);
                let out = Running::run_command(cmd);
                assert_eq!(out.code(), Some(1), "{}", out.stderr);
                assert!(
                    out.stderr.starts_with(&step.error(&s.b))
                        && out.stderr.contains(&format!(": status {code} ")),
                    "{}",
                    out.stderr
                );
            } else {
                let mut l = start(w, cmd, &host);
                w.sim.inject_fault(fault);
                l.proc.interrupt();
                assert_eq!(l.proc.wait_exit(Duration::from_secs(60)).code(), Some(1));
                let (cmd, host) = s.command("5s");
                start(w, cmd, &host).stop_ok();
            }
            assert_eq!(
                w.snapshot()
                    .requests
                    .iter()
                    .filter(|r| r.method == step.method()
                        && r.path == step.path(&s.b)
                        && r.status == code)
                    .count(),
                1,
                "one attempt"
            );
            w.sim.clear_faults();
            assert_left_as_found(w, &s.kept(), &s.found());
        },
    );
}

/// A signal while a portal step is held: startup steps are abandoned and
/// undone (exit 130); a held cleanup step is finished unless a second
/// signal comes, and then the next start reclaims.
#[test]
fn a_signal_during_a_portal_step_leaves_nothing() {
    let steps = vec![
        Step::Lookup,
        Step::Guard,
        Step::Attach,
        Step::Clear,
        Step::Restore,
    ];
    run_cases(
        steps,
        |s| format!("SIGINT while {s:?} is held"),
        |step| {
            let s = setup(step);
            let w = &s.w;
            let hold = step.fault(&s.b, 1, FaultAction::Delay(Duration::from_secs(60)));
            let (cmd, host) = s.command("30s");
            let held = |what: &str| eventually(what, || w.snapshot().faults.is_empty());
            if step.startup() {
                w.sim.inject_fault(hold);
                let mut proc = Running::spawn(cmd);
                held("the held step to arrive");
                let sent = Instant::now();
                proc.interrupt();
                let status = proc.wait_exit(Duration::from_secs(20));
                let err = proc.stderr();
                assert_eq!(status.code(), Some(130), "{err}");
                assert!(sent.elapsed() < Duration::from_secs(10), "{err}");
                assert!(
                    err.lines()
                        .any(|l| l == "Error: interrupted during startup"),
                    "{err}"
                );
            } else {
                let mut l = start(w, cmd, &host);
                w.sim.inject_fault(hold);
                l.proc.interrupt();
                held("cleanup to reach the held step");
                l.proc.interrupt();
                let status = l.proc.wait_exit(Duration::from_secs(20));
                let err = l.proc.stderr();
                assert_eq!(status.code(), Some(130), "{err}");
                assert!(
                    err.contains(&format!(
                        "Hint: the audit-log webhooks of Dev Portals Partner Portal ({}), Docs \
                         Portal ({}) may still point at this listener's destination; the us \
                         audit-log webhook may still point at this listener's destination",
                        s.a, s.b
                    )),
                    "{err}"
                );
                w.sim.clear_faults();
                let (cmd, host) = s.command("5s");
                let mut next = start(w, cmd, &host);
                assert!(
                    next.proc
                        .stderr()
                        .contains("Reclaimed: restored the audit-log webhooks of Dev Portals"),
                    "{}",
                    next.proc.stderr()
                );
                next.stop_ok();
            }
            w.sim.clear_faults();
            assert_left_as_found(w, &s.kept(), &s.found());
            assert_contract_kept(w);
        },
    );
}

// ---------------------------------------------------------------------------
// Killed while portal webhooks point at it.

#[test]
fn a_killed_listener_is_reclaimed_and_every_streams_gap_replayed() {
    let Portals { w, a, b } = portals();
    let (cmd, host) = listen_command(&w, &[&a.id, &b.id], "5s");
    let mut first = start(&w, cmd, &host);
    let org1 = w.sim.trigger("us", 20);
    let a1 = w.sim.trigger_portal(&a.id, 10);
    let b1 = w.sim.trigger_portal(&b.id, 10);
    for r in [&org1, &a1, &b1] {
        assert!(r.all_delivered(), "{r:?}");
    }
    let dead = w.snapshot().destinations[0].id.clone();
    kill(&mut first);

    // Konnect retries and gives up on every stream: three gaps.
    let org2 = w.sim.trigger("us", 15);
    let a2 = w.sim.trigger_portal(&a.id, 7);
    let b2 = w.sim.trigger_portal(&b.id, 5);
    for r in [&org2, &a2, &b2] {
        assert!(r.deliveries.iter().all(|d| !d.delivered), "{r:?}");
    }

    let (cmd, host) = listen_command(&w, &[&a.id, &b.id], "5s");
    let mut second = start(&w, cmd, &host);
    let err = second.proc.stderr();
    assert!(
        err.contains(&format!(
            "Reclaimed: restored the audit-log webhooks of Dev Portals {} ({}), {} ({}), \
             released the regional audit-log webhook, deleted audit-log destination {dead}",
            b.name, b.id, a.name, a.id
        )),
        "{err}"
    );
    let done = |r: &Value| r["jobs_completed"] == 1;
    eventually("every stream's startup replay completes", || {
        done(&replay(&w)) && done(&portal_replay(&w, &a.id)) && done(&portal_replay(&w, &b.id))
    });
    for id in [&a.id, &b.id] {
        let r = portal_replay(&w, id);
        assert_eq!(r["trigger"], "startup", "{r}");
        assert_eq!(r["job_status"], "completed", "{r}");
    }
    assert_each_once(
        &read_lines(&w.events_file()),
        &emitted(&[&org1, &a1, &b1, &org2, &a2, &b2]),
    );
    // One job per stream, each through its own endpoint.
    let puts = |path: &str| {
        w.snapshot()
            .requests
            .iter()
            .filter(|r| r.method == "PUT" && r.path == path)
            .count()
    };
    assert_eq!(puts("/v3/audit-log-replay-job"), 1);
    for id in [&a.id, &b.id] {
        assert_eq!(puts(&format!("/v3/portals/{id}/audit-log-replay-job")), 1);
    }
    second.stop_ok();
    assert_left_as_found(&w, &[], &[(&a.id, unconfigured()), (&b.id, unconfigured())]);
    assert_contract_kept(&w);
}

#[test]
fn a_failed_delivery_in_a_portals_status_replays_that_portal_only() {
    let Portals { w, a, b } = portals();
    let (mut cmd, host) = listen_command(&w, &[&a.id, &b.id], "5s");
    cmd.env("KONGCTL_TEST_WEBHOOK_STATUS_EVERY", "100ms");
    let mut l = start(&w, cmd, &host);
    let a1 = w.sim.trigger_portal(&a.id, 5);
    assert!(a1.all_delivered());
    // The listener answers nothing for a while: portal a's next batch is
    // lost, and its webhook status says so.
    w.sim.remove_tunnel(&host);
    let lost = w.sim.trigger_portal(&a.id, 4);
    assert!(lost.deliveries.iter().all(|d| !d.delivered), "{lost:?}");
    w.sim.add_tunnel(&host, l.addr);
    eventually("portal a's gap is replayed", || {
        portal_replay(&w, &a.id)["jobs_completed"] == 1
    });
    let r = portal_replay(&w, &a.id);
    assert_eq!(r["trigger"], "webhook_status", "{r}");
    assert_eq!(portal_replay(&w, &b.id)["jobs_completed"], 0);
    assert_eq!(
        replay(&w)["jobs_completed"],
        0,
        "the organisation's stream is not replayed"
    );
    assert_each_once(&read_lines(&w.events_file()), &emitted(&[&a1, &lost]));
    l.stop_ok();
    assert_contract_kept(&w);
}

#[test]
fn a_portals_failed_replay_job_is_reported_as_its_own_missing_window() {
    let Portals { w, a, .. } = portals();
    let (cmd, host) = listen_command(&w, &[&a.id], "5s");
    let mut first = start(&w, cmd, &host);
    let a1 = w.sim.trigger_portal(&a.id, 5);
    assert!(a1.all_delivered());
    kill(&mut first);
    let a2 = w.sim.trigger_portal(&a.id, 3);
    w.sim.fail_portal_replay_jobs(&a.id, 1);
    let (cmd, host) = listen_command(&w, &[&a.id], "5s");
    let mut second = start(&w, cmd, &host);
    eventually("portal a's replay fails", || {
        portal_replay(&w, &a.id)["jobs_failed"] == 1
    });
    let r = portal_replay(&w, &a.id);
    assert!(r["missing_window"].is_object(), "{r}");
    assert_eq!(
        replay(&w)["jobs_failed"],
        0,
        "the organisation's stream is fine"
    );
    eventually("the warning names the portal", || {
        second.proc.stderr().contains(&format!(
            "Warning: audit-log replay of Dev Portal Partner Portal ({}) failed: events from",
            a.id
        ))
    });
    second.stop_ok();
    // The next listener covers the window left missing.
    let (cmd, host) = listen_command(&w, &[&a.id], "5s");
    let mut third = start(&w, cmd, &host);
    eventually("the missing window is replayed", || {
        let r = portal_replay(&w, &a.id);
        r["jobs_completed"] == 1 && r.get("missing_window").is_none()
    });
    assert_each_once(&read_lines(&w.events_file()), &emitted(&[&a1, &a2]));
    third.stop_ok();
    assert_contract_kept(&w);
}

// ---------------------------------------------------------------------------
// Reading portal records, and one portal's webhook and replay job.

/// A store with the organisation's and two portals' records, written by a
/// real listener; returns the world and what each stream emitted.
fn stored_streams() -> (Portals, Vec<String>, Vec<String>, Vec<String>) {
    let p = portals();
    let (cmd, host) = listen_command(&p.w, &[&p.a.id, &p.b.id], "5s");
    let mut l = start(&p.w, cmd, &host);
    let org = p.w.sim.trigger("us", 4);
    let a = p.w.sim.trigger_portal(&p.a.id, 3);
    let b = p.w.sim.trigger_portal(&p.b.id, 2);
    for r in [&org, &a, &b] {
        assert!(r.all_delivered(), "{r:?}");
    }
    l.stop_ok();
    (p, emitted(&[&org]), emitted(&[&a]), emitted(&[&b]))
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

fn lines(out: &Output) -> Vec<String> {
    out.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn stored_records_are_read_by_portal_or_organisation() {
    let (Portals { w, a, b }, org, pa, pb) = stored_streams();
    let get = |extra: &[&str]| {
        let mut args = vec![
            "get",
            "audit-logs",
            "--stored",
            "-o",
            "jsonl",
            "--limit",
            "0",
        ];
        args.extend_from_slice(extra);
        let out = w.run(&args);
        assert_eq!(out.code(), Some(0), "{extra:?}: {}", out.stderr);
        sorted(lines(&out))
    };
    assert_eq!(get(&["--portal", "Partner Portal"]), sorted(pa.clone()));
    assert_eq!(get(&["--portal", &b.id]), sorted(pb.clone()));
    assert_eq!(
        get(&["--portal", &a.id, "--portal", "Docs Portal"]),
        sorted([pa.clone(), pb.clone()].concat())
    );
    assert_eq!(get(&["--org"]), sorted(org.clone()));
    assert_eq!(get(&[]).len(), org.len() + pa.len() + pb.len());

    // tail --stored takes them too.
    let out = w.run(&[
        "tail",
        "--stored",
        "--follow=false",
        "-n",
        "100",
        "--portal",
        "Docs Portal",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(sorted(lines(&out)), sorted(pb.clone()));
    let out = w.run(&["tail", "--stored", "--follow=false", "-n", "100", "--org"]);
    assert_eq!(sorted(lines(&out)), sorted(org.clone()));

    // The text table shows whose records they are (cells cut to fit 120
    // columns).
    let out = w.run(&["get", "audit-logs", "--stored", "--limit", "0"]);
    let table = out.stdout;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "TIMESTAMP",
            "TYPE",
            "PORTAL",
            "PRINCIPAL",
            "ACTION",
            "RESULT",
            "TRACE",
            "ID"
        ],
        "{table}"
    );
    assert_eq!(table.matches(&a.id[..8]).count(), pa.len(), "{table}");
    let out = w.run(&["get", "audit-logs", "--stored", "--org", "--limit", "0"]);
    assert!(!out.stdout.contains("PORTAL"), "{}", out.stdout);

    // A name needs a token; an id does not.
    let offline = |args: &[&str]| {
        let mut cmd = w.kongctl();
        cmd.env_remove("KONGCTL_DEFAULT_KONNECT_PAT").args(args);
        Running::run_command(cmd)
    };
    let out = offline(&[
        "get",
        "audit-logs",
        "--stored",
        "-o",
        "jsonl",
        "--portal",
        &a.id,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(sorted(lines(&out)), sorted(pa.clone()));
    let out = offline(&[
        "get",
        "audit-logs",
        "--stored",
        "--portal",
        "Partner Portal",
    ]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.starts_with(
            "Error: --portal \"Partner Portal\": a portal name is looked up in Konnect, which needs an access token: authentication token not available."
        ) && out.stderr.contains(
            "\nHint: give the portal's id instead (--portal <uuid>): an id needs no token and works offline\n"
        ),
        "{}",
        out.stderr
    );
    // Stored filters need the store.
    let out = w.run(&["get", "audit-logs", "--portal", &a.id]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .starts_with("Error: --portal filters stored events: use it with --stored or --file"),
        "{}",
        out.stderr
    );
    assert_contract_kept(&w);
}

#[test]
fn one_portals_webhook_and_replay_job_are_shown_and_its_webhook_deleted() {
    let Portals { w, a, .. } = portals();
    let out = w.run(&["get", "audit-logs", "webhook", "--portal", "Partner Portal"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "Konnect Dev Portal audit-log webhook\n  portal: Partner Portal ({})\n  enabled: false\n  \
             destination id: n/a\n  delivery status: inactive\n  last attempt at: n/a\n  \
             last response code: n/a\n  last response message: n/a\n",
            a.id
        )
    );
    let out = w.run(&[
        "get",
        "audit-logs",
        "replay-job",
        "--portal",
        &a.id,
        "-o",
        "json",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let job: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(job["status"], "unconfigured", "{job}");
    let out = w.run(&["get", "audit-logs", "webhook", "--portal", "Nope"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .starts_with("Error: --portal \"Nope\": no Dev Portal"),
        "{}",
        out.stderr
    );

    // Nothing configured: nothing to delete.
    let out = w.run(&[
        "delete",
        "audit-logs",
        "webhook",
        "--portal",
        &a.id,
        "--yes",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "The audit-log webhook of Dev Portal Partner Portal ({}) is not configured; nothing to delete.\n",
            a.id
        )
    );

    // A running listener's portal webhook is refused, then forced.
    let (cmd, host) = listen_command(&w, &[&a.id], "5s");
    let mut l = start(&w, cmd, &host);
    let pid = l.proc.pid();
    let ours = w.snapshot().destinations[0].id.clone();
    let out = w.run(&[
        "get",
        "audit-logs",
        "webhook",
        "--portal",
        &a.id,
        "-o",
        "json",
    ]);
    let view: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(view["enabled"], true);
    assert_eq!(view["audit_log_destination_id"], ours.as_str());
    let refused = w.run(&[
        "delete",
        "audit-logs",
        "webhook",
        "--portal",
        "Partner Portal",
        "--yes",
    ]);
    assert_eq!(refused.code(), Some(1));
    assert_eq!(
        refused.stderr,
        format!(
            "Error: the audit-log webhook of Dev Portal Partner Portal ({}) belongs to a running kongctl \
             listener (pid {pid}, profile \"default\")\n\
             Hint: stop it instead (kongctl ps stop {pid}, or kill -TERM {pid}): it restores the webhook \
             itself when it stops; --force removes it anyway\n",
            a.id
        )
    );
    // Without a terminal, --yes is required.
    let asked = w.run(&[
        "delete",
        "audit-logs",
        "webhook",
        "--portal",
        &a.id,
        "--force",
    ]);
    assert_eq!(asked.code(), Some(1), "{}", asked.stderr);
    assert!(
        asked
            .stderr
            .contains("This deletes the audit-log webhook of Dev Portal Partner Portal")
    );
    assert!(
        asked
            .stderr
            .contains("--yes is required when stdin is not a terminal; nothing was changed")
    );
    assert_eq!(portal_hook(&w, &a.id), (true, Some(ours.clone())));
    let forced = w.run(&[
        "delete",
        "audit-logs",
        "webhook",
        "--portal",
        &a.id,
        "--yes",
        "--force",
    ]);
    assert_eq!(forced.code(), Some(0), "{}", forced.stderr);
    assert_eq!(
        forced.stdout,
        format!(
            "Deleted the audit-log webhook of Dev Portal Partner Portal ({}) (disabled, no destination).\n",
            a.id
        )
    );
    assert!(
        forced.stderr.contains(&format!(
            "Warning: the running kongctl listener pid {pid} (profile \"default\") owns it (--force)"
        )) && forced.stderr.contains(&format!("Audit-log destination {ours} still exists")),
        "{}",
        forced.stderr
    );
    assert_eq!(portal_hook(&w, &a.id), unconfigured());
    // The listener's own cleanup then finds it cleared and still ends well.
    l.stop_ok();
    assert_left_as_found(&w, &[], &[(&a.id, unconfigured())]);
    assert_contract_kept(&w);
}
