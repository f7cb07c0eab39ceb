//! Fault tolerance: every Konnect call `kongctl listen` makes, failed by the
//! emulator in every way a network and an API gateway fail, fewer times
//! than the retry budget (the command rides it out) and more (it stops
//! cleanly and says what it left, or leaves nothing).
//!
//! The matrix runs one test per call; that test runs the call's twelve
//! cases (six faults, two fault counts) at once in threads, because most
//! of their time is spent waiting out backoffs and `Retry-After`. A failed
//! case is reported with the call, the fault and what was expected.
//!
//! Note on timeouts: the emulator abandons a delayed request when the
//! client hangs up, so a timed-out attempt changes nothing and is missing
//! from the request log; the number of attempts is read from the fault's
//! remaining count instead (it counts every matching request).
//!
//! After the matrix: 4xx answers, signals while a call is held, Konnect
//! unreachable during cleanup (`Link`, a TCP forwarder that can be cut), a
//! failing reclaim, webhooks configured by someone else, and answers lost
//! or late after Konnect acted (`Gateway`, an HTTP forwarder that can lose
//! or delay chosen requests, which the emulator's faults cannot: they fail
//! a request before it is handled).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use konnect_sim::{Fault, FaultAction};

/// Attempts the client makes per call, the first included.
const ATTEMPTS: u32 = 4;
/// Faults armed for "fewer than the budget": every retry but the last.
const WITHIN_BUDGET: u32 = ATTEMPTS - 1;
/// Faults armed for "more than the budget": two are left over, which
/// proves the client stopped after exactly `ATTEMPTS`.
const OVER_BUDGET: u32 = ATTEMPTS + 2;
/// The client timeout for timeout cases, and the delay that exceeds it.
const SHORT_TIMEOUT: &str = "1s";
const LONGER_THAN_TIMEOUT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------
// The calls and the faults.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Startup,
    Cleanup,
}

/// Every Konnect call of a listener's life, in the order they are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    /// Startup guard: is the regional webhook unconfigured?
    Guard,
    /// Is the destination name unused (all pages)?
    NameCheck,
    Create,
    /// Point the regional webhook at the destination and enable it.
    Attach,
    /// Cleanup: does the webhook still point at our destination?
    Ownership,
    /// Cleanup: disable the webhook.
    Disable,
    /// Cleanup: delete the webhook's configuration.
    Unhook,
    DeleteDestination,
}

impl Call {
    fn method(self) -> &'static str {
        match self {
            Call::Guard | Call::NameCheck | Call::Ownership => "GET",
            Call::Create => "POST",
            Call::Attach | Call::Disable => "PATCH",
            Call::Unhook | Call::DeleteDestination => "DELETE",
        }
    }

    /// The path as the emulator's fault matches it.
    fn fault_path(self) -> &'static str {
        match self {
            Call::Guard | Call::Disable => "/v2/audit-log-webhook",
            Call::NameCheck | Call::Create => "/v3/audit-log-destinations",
            Call::Attach | Call::Ownership | Call::Unhook => "/v3/audit-log-webhook",
            Call::DeleteDestination => "/v3/audit-log-destinations/*",
        }
    }

    fn matches(self, method: &str, path: &str) -> bool {
        method == self.method()
            && match self.fault_path().strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == self.fault_path(),
            }
    }

    fn phase(self) -> Phase {
        match self {
            Call::Guard | Call::NameCheck | Call::Create | Call::Attach => Phase::Startup,
            _ => Phase::Cleanup,
        }
    }

    /// The step an exhausted call is reported as: `Error: <step>: ...`.
    fn step(self) -> &'static str {
        match self {
            Call::Guard => "read regional audit-log webhook",
            Call::NameCheck => "list audit-log destinations",
            Call::Create => "create audit-log destination",
            Call::Attach => "configure regional audit-log webhook",
            // Never reported: a failed read releases the webhook anyway.
            Call::Ownership => "(not reported)",
            Call::Disable | Call::Unhook => "release audit-log webhook",
            Call::DeleteDestination => "delete audit-log destination",
        }
    }

    /// The status of the call when it works.
    fn success(self) -> u16 {
        match self {
            Call::Create => 201,
            Call::Unhook | Call::DeleteDestination => 204,
            _ => 200,
        }
    }

    fn describe(self) -> String {
        format!("{} {} ({self:?})", self.method(), self.fault_path())
    }
}

/// How a call fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// 429 with `Retry-After: 1`.
    RateLimited,
    Status(u16),
    /// No answer within the client timeout.
    Timeout,
    /// The connection is closed without an answer.
    Drop,
}

const KINDS: [Kind; 6] = [
    Kind::RateLimited,
    Kind::Status(500),
    Kind::Status(502),
    Kind::Status(503),
    Kind::Timeout,
    Kind::Drop,
];

impl Kind {
    fn action(self) -> FaultAction {
        match self {
            Kind::RateLimited => FaultAction::Status {
                status: 429,
                retry_after: Some(1),
            },
            Kind::Status(status) => FaultAction::Status {
                status,
                retry_after: None,
            },
            Kind::Timeout => FaultAction::Delay(LONGER_THAN_TIMEOUT),
            Kind::Drop => FaultAction::Drop,
        }
    }

    /// What the error says about the last failed attempt.
    fn why(self) -> &'static str {
        match self {
            Kind::RateLimited => "status 429 Too Many Requests",
            Kind::Status(500) => "status 500 Internal Server Error",
            Kind::Status(502) => "status 502 Bad Gateway",
            Kind::Status(503) => "status 503 Service Unavailable",
            Kind::Status(_) => unreachable!("only 500, 502, 503 are in the matrix"),
            Kind::Timeout => "no response within 1.0s",
            Kind::Drop => "connection closed before message completed",
        }
    }

    /// The status a failed attempt has in the request log (0: dropped);
    /// `None`: not logged (see the module note on timeouts).
    fn logged_as(self) -> Option<u16> {
        match self {
            Kind::RateLimited => Some(429),
            Kind::Status(s) => Some(s),
            Kind::Timeout => None,
            Kind::Drop => Some(0),
        }
    }

    /// The least time between two attempts: `Retry-After`, else the first
    /// backoff's lower bound (250 ms with full jitter down to half).
    fn min_gap(self) -> Duration {
        match self {
            Kind::RateLimited => Duration::from_millis(990),
            _ => Duration::from_millis(120),
        }
    }

    fn describe(self) -> String {
        match self {
            Kind::RateLimited => "429 Retry-After: 1".into(),
            Kind::Status(s) => format!("status {s}"),
            Kind::Timeout => format!("delay {LONGER_THAN_TIMEOUT:?} > timeout {SHORT_TIMEOUT}"),
            Kind::Drop => "dropped connection".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Budget {
    /// `WITHIN_BUDGET` faults: the call succeeds on its last attempt.
    Within,
    /// `OVER_BUDGET` faults: every attempt fails.
    Over,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    call: Call,
    kind: Kind,
    budget: Budget,
}

impl Case {
    fn count(&self) -> u32 {
        match self.budget {
            Budget::Within => WITHIN_BUDGET,
            Budget::Over => OVER_BUDGET,
        }
    }

    fn name(&self) -> String {
        format!(
            "{} failing {}× with {} ({:?} budget)",
            self.call.describe(),
            self.count(),
            self.kind.describe(),
            self.budget
        )
    }

    fn fault(&self) -> Fault {
        Fault {
            method: Some(self.call.method().into()),
            path: self.call.fault_path().into(),
            count: self.count(),
            action: self.kind.action(),
        }
    }

    /// The client timeout for this case: short only where a timeout is
    /// the fault, so that a slow machine does not time out other cases.
    fn timeout(&self) -> &'static str {
        match self.kind {
            Kind::Timeout => SHORT_TIMEOUT,
            _ => "5s",
        }
    }
}

// ---------------------------------------------------------------------------
// Running cases in parallel and reporting each one precisely.

fn matrix(call: Call) {
    let mut cases = Vec::new();
    for kind in KINDS {
        for budget in [Budget::Within, Budget::Over] {
            cases.push(Case { call, kind, budget });
        }
    }
    run_cases(cases, Case::name, run_case);
}

fn run_case(case: Case) {
    match (case.call.phase(), case.budget) {
        (Phase::Startup, Budget::Within) => startup_recovers(case),
        (Phase::Startup, Budget::Over) => startup_gives_up(case),
        (Phase::Cleanup, Budget::Within) => cleanup_recovers(case),
        (Phase::Cleanup, Budget::Over) if case.call == Call::Ownership => ownership_unknown(case),
        (Phase::Cleanup, Budget::Over) => cleanup_gives_up(case),
    }
}

// ---------------------------------------------------------------------------
// Helpers.

/// `listen` on a fresh tunnel, with the client timeout set.
fn listen_command(w: &World, timeout: &str) -> (Command, String) {
    let (mut cmd, host) = w.listener_command("listen", &[]);
    cmd.env("KONGCTL_KONNECT_TIMEOUT", timeout);
    (cmd, host)
}

/// One logged request: when it arrived, its status, whether a fault
/// shaped it.
struct Logged {
    at: SystemTime,
    status: u16,
    faulted: bool,
}

fn logged(w: &World, call: Call) -> Vec<Logged> {
    w.snapshot()
        .requests
        .iter()
        .filter(|r| call.matches(&r.method, &r.path))
        .map(|r| Logged {
            at: kongctl::time::parse_rfc3339(&r.at)
                .map(SystemTime::from)
                .expect("request time is RFC 3339"),
            status: r.status,
            faulted: r.fault.is_some(),
        })
        .collect()
}

/// Faults still armed for the call (each matching request used one).
fn remaining(w: &World, call: Call) -> u32 {
    w.snapshot()
        .faults
        .iter()
        .filter(|f| f.path == call.fault_path() && f.method.as_deref() == Some(call.method()))
        .map(|f| f.remaining)
        .sum()
}

/// Checks the request log of a call that failed `failures` times (and then
/// succeeded, if `then_success`): statuses in order, and the wait between
/// attempts (`Retry-After` honoured, backoff otherwise).
fn assert_attempts(w: &World, case: &Case, failures: u32, then_success: bool) {
    let log = logged(w, case.call);
    let mut want: Vec<u16> = Vec::new();
    if let Some(status) = case.kind.logged_as() {
        want.extend(std::iter::repeat_n(status, failures as usize));
    }
    if then_success {
        want.push(case.call.success());
    }
    let got: Vec<u16> = log.iter().map(|l| l.status).collect();
    assert_eq!(
        got,
        want,
        "request log statuses of {} (want {failures} failed attempts{})",
        case.call.describe(),
        if then_success { " then success" } else { "" }
    );
    let faulted = log.iter().filter(|l| l.faulted).count();
    assert_eq!(
        faulted,
        if case.kind.logged_as().is_some() {
            failures as usize
        } else {
            0
        },
        "faulted requests in the log"
    );
    for pair in log.windows(2).filter(|p| p[0].faulted) {
        let gap = pair[1].at.duration_since(pair[0].at).unwrap_or_default();
        assert!(
            gap >= case.kind.min_gap(),
            "retried after {gap:?}, want at least {:?} ({})",
            case.kind.min_gap(),
            case.kind.describe()
        );
    }
    let left = remaining(w, case.call);
    let want_left = case.count() - failures;
    assert_eq!(
        left,
        want_left,
        "armed faults left: {failures} attempts should have used {failures} of {}",
        case.count()
    );
}

/// Runs a command expected to end on its own (a failed start), giving up
/// after 30 s instead of the harness's 90 if it does not.
fn run_to_failure(cmd: Command) -> Output {
    let mut proc = Running::spawn(cmd);
    let status = proc.wait_exit(Duration::from_secs(30));
    Output {
        status,
        stdout: proc.stdout(),
        stderr: proc.stderr(),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

// ---------------------------------------------------------------------------
// The four outcomes.

/// A startup call fails fewer times than the budget: the listener starts,
/// made exactly one destination, and leaves Konnect clean when stopped.
fn startup_recovers(case: Case) {
    let w = World::new();
    w.sim.inject_fault(case.fault());
    let (cmd, host) = listen_command(&w, case.timeout());
    let mut l = w.start_listener_cmd(cmd, &host);
    assert_attempts(&w, &case, WITHIN_BUDGET, true);
    let s = w.snapshot();
    assert_eq!(s.destinations.len(), 1, "one destination, no duplicate");
    assert!(s.webhooks["us"].enabled, "webhook enabled");
    let id = s.destinations[0].id.clone();
    let out = l.stop_ok();
    assert!(
        out.ends_with(&format!(
            "\nListener stopped. Deleted audit-log destination: {id}\n"
        )),
        "{out}"
    );
    w.assert_konnect_clean();
}

/// A startup call fails on every attempt: exit 1 naming the step and the
/// last failure, exactly `ATTEMPTS` attempts, and nothing left in Konnect.
fn startup_gives_up(case: Case) {
    let w = World::new();
    w.sim.inject_fault(case.fault());
    let (cmd, _host) = listen_command(&w, case.timeout());
    let out = run_to_failure(cmd);
    assert_eq!(
        out.code(),
        Some(1),
        "exit code\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    let want = format!(
        "Error: {}: {} {}{}",
        case.call.step(),
        case.call.method(),
        w.sim.base_url(),
        case.call.fault_path()
    );
    assert!(
        out.stderr.starts_with(&want),
        "stderr should start with {want:?}:\n{}",
        out.stderr
    );
    assert!(
        first_line(&out.stderr).contains(case.kind.why()),
        "stderr should say {:?}:\n{}",
        case.kind.why(),
        out.stderr
    );
    assert!(
        !out.stdout.contains("Listener Started"),
        "no banner: {}",
        out.stdout
    );
    assert_attempts(&w, &case, ATTEMPTS, false);
    w.assert_konnect_clean();
    // destination.json is written before the create is sent: once it was,
    // the file says the cleanup finished.
    if matches!(case.call, Call::Create | Call::Attach) {
        assert_eq!(w.destination_state()["status"], "deleted");
    } else {
        assert!(
            !w.storage_dir("default").join("destination.json").exists(),
            "no create sent, no destination.json"
        );
    }
}

/// A cleanup call fails fewer times than the budget: the stop is clean.
fn cleanup_recovers(case: Case) {
    let w = World::new();
    let (cmd, host) = listen_command(&w, case.timeout());
    let mut l = w.start_listener_cmd(cmd, &host);
    let id = w.snapshot().destinations[0].id.clone();
    w.sim.inject_fault(case.fault());
    let out = l.stop_ok();
    assert!(
        out.ends_with(&format!(
            "\nListener stopped. Deleted audit-log destination: {id}\n"
        )),
        "{out}"
    );
    assert_attempts(&w, &case, WITHIN_BUDGET, true);
    w.assert_konnect_clean();
    assert_eq!(w.destination_state()["status"], "deleted");
}

/// The ownership check fails on every attempt: cleanup cannot tell whether
/// someone re-pointed the webhook and releases it anyway (it was ours when
/// we last knew); the stop is clean.
fn ownership_unknown(case: Case) {
    let w = World::new();
    let (cmd, host) = listen_command(&w, case.timeout());
    let mut l = w.start_listener_cmd(cmd, &host);
    w.sim.inject_fault(case.fault());
    l.stop_ok();
    assert_attempts(&w, &case, ATTEMPTS, false);
    assert_eq!(w.calls("PATCH", "/v2/audit-log-webhook"), 1);
    assert_eq!(w.calls("DELETE", "/v3/audit-log-webhook"), 1);
    w.assert_konnect_clean();
}

/// A cleanup call fails on every attempt: exit 1, the step and what is
/// left named on stderr, destination.json `cleanup_failed`, and the next
/// start finishes the cleanup.
fn cleanup_gives_up(case: Case) {
    let w = World::new();
    let (cmd, host) = listen_command(&w, case.timeout());
    let mut l = w.start_listener_cmd(cmd, &host);
    let id = w.snapshot().destinations[0].id.clone();
    w.sim.inject_fault(case.fault());
    l.proc.interrupt();
    let status = l.proc.wait_exit(Duration::from_secs(60));
    let err = l.proc.stderr();
    assert_eq!(status.code(), Some(1), "exit code\nstderr:\n{err}");
    let path = match case.call {
        Call::DeleteDestination => format!("/v3/audit-log-destinations/{id}"),
        other => other.fault_path().to_string(),
    };
    let want = format!(
        "Error: {}: {} {}{path}: ",
        case.call.step(),
        case.call.method(),
        w.sim.base_url()
    );
    assert!(
        err.starts_with(&want),
        "stderr should start with {want:?}:\n{err}"
    );
    assert!(
        first_line(&err).contains(case.kind.why()),
        "stderr should say {:?}:\n{err}",
        case.kind.why()
    );
    // What is left, honestly: the webhook only while it was not released.
    let dest_left = format!("audit-log destination {id} may still exist");
    let hook_left = "the us audit-log webhook may still point at this listener's destination";
    assert!(
        err.contains(&dest_left),
        "stderr should say {dest_left:?}:\n{err}"
    );
    assert_eq!(
        err.contains(hook_left),
        case.call != Call::DeleteDestination,
        "stderr mentions the webhook iff it was not released:\n{err}"
    );
    assert!(
        err.contains("the next `kongctl listen` with profile \"default\" finishes the cleanup"),
        "{err}"
    );
    assert!(
        !l.proc.stdout().contains("Listener stopped."),
        "no success line: {}",
        l.proc.stdout()
    );
    assert_attempts(&w, &case, ATTEMPTS, false);
    let state = w.destination_state();
    assert_eq!(state["status"], "cleanup_failed", "{state}");
    assert_eq!(state["destination_id"], id.as_str(), "{state}");
    // The leftovers are real.
    let s = w.snapshot();
    assert!(
        s.destination(&id).is_some(),
        "destination {id} still exists"
    );
    if case.call == Call::Disable {
        assert!(s.webhooks["us"].enabled, "webhook still enabled");
    }

    w.sim.clear_faults();
    assert_reclaimed(&w, &id);
}

/// Starts the default profile again: it finishes the earlier cleanup
/// (`id` deleted), starts normally, and leaves Konnect clean on stop.
fn assert_reclaimed(w: &World, id: &str) {
    let mut l = w.start_listener("listen", &[]);
    // Printed before listener.json says it serves, but stderr's reader
    // thread may not have it yet.
    let err = l
        .proc
        .wait_stderr("the reclaim's report", |err| err.contains("Reclaimed: "));
    assert!(
        err.contains("Reclaiming Konnect state left by an earlier listener of profile \"default\"")
            && err.contains(&format!("destination {id}")),
        "reclaim announced:\n{err}"
    );
    assert!(
        err.contains(&format!("deleted audit-log destination {id}")),
        "reclaim reported:\n{err}"
    );
    let s = w.snapshot();
    assert!(s.destination(id).is_none(), "old destination {id} deleted");
    assert_eq!(s.destinations.len(), 1, "only the new destination");
    assert!(
        s.webhooks["us"].enabled,
        "webhook points at the new listener"
    );
    l.stop_ok();
    w.assert_konnect_clean();
}

// ---------------------------------------------------------------------------
// The matrix: one test per call.

#[test]
fn guard_read_faults() {
    matrix(Call::Guard);
}

#[test]
fn name_check_faults() {
    matrix(Call::NameCheck);
}

#[test]
fn destination_create_faults() {
    matrix(Call::Create);
}

#[test]
fn webhook_attach_faults() {
    matrix(Call::Attach);
}

#[test]
fn cleanup_ownership_read_faults() {
    matrix(Call::Ownership);
}

#[test]
fn cleanup_webhook_disable_faults() {
    matrix(Call::Disable);
}

#[test]
fn cleanup_webhook_delete_faults() {
    matrix(Call::Unhook);
}

#[test]
fn cleanup_destination_delete_faults() {
    matrix(Call::DeleteDestination);
}

// ---------------------------------------------------------------------------
// 4xx answers are final: one attempt, never retried.

#[derive(Clone, Copy, Debug)]
struct Final {
    call: Call,
    status: u16,
}

impl Final {
    fn name(&self) -> String {
        format!("{} answering {}", self.call.describe(), self.status)
    }
}

#[test]
fn client_errors_are_never_retried() {
    let mut cases = Vec::new();
    for call in [Call::Guard, Call::NameCheck, Call::Create, Call::Attach] {
        for status in [400, 401, 403, 404, 409, 422] {
            cases.push(Final { call, status });
        }
    }
    for call in [
        Call::Ownership,
        Call::Disable,
        Call::Unhook,
        Call::DeleteDestination,
    ] {
        for status in [400, 403] {
            cases.push(Final { call, status });
        }
    }
    run_cases(cases, Final::name, run_final);
}

fn run_final(case: Final) {
    let w = World::new();
    let fault = Fault::status(
        Some(case.call.method()),
        case.call.fault_path(),
        2,
        case.status,
    );
    let calls = || logged(&w, case.call).len();
    match case.call.phase() {
        Phase::Startup => {
            w.sim.inject_fault(fault);
            let (cmd, _) = listen_command(&w, "5s");
            let out = run_to_failure(cmd);
            assert_eq!(out.code(), Some(1), "exit code\nstderr:\n{}", out.stderr);
            let want = format!(
                "Error: {}: {} {}{}",
                case.call.step(),
                case.call.method(),
                w.sim.base_url(),
                case.call.fault_path()
            );
            assert!(
                out.stderr.starts_with(&want),
                "want {want:?}:\n{}",
                out.stderr
            );
            assert!(
                first_line(&out.stderr).contains(&format!(": status {} ", case.status)),
                "{}",
                out.stderr
            );
            let hint = match case.status {
                401 => Some("Hint: Konnect rejected the access token"),
                403 => Some("Hint: the access token lacks permission for audit logs"),
                _ => None,
            };
            if let Some(hint) = hint {
                assert!(out.stderr.contains(hint), "want {hint:?}:\n{}", out.stderr);
            }
            assert_eq!(calls(), 1, "one attempt, not retried");
            w.assert_konnect_clean();
        }
        Phase::Cleanup => {
            let (cmd, host) = listen_command(&w, "5s");
            let mut l = w.start_listener_cmd(cmd, &host);
            w.sim.inject_fault(fault);
            l.proc.interrupt();
            let status = l.proc.wait_exit(Duration::from_secs(60));
            assert_eq!(calls(), 1, "one attempt, not retried");
            if case.call == Call::Ownership {
                // Best effort: the webhook is released anyway.
                assert!(status.success(), "{}", l.proc.stderr());
                w.assert_konnect_clean();
            } else {
                let err = l.proc.stderr();
                assert_eq!(status.code(), Some(1), "{err}");
                assert!(
                    err.starts_with(&format!("Error: {}: ", case.call.step()))
                        && first_line(&err).contains(&format!(": status {} ", case.status)),
                    "{err}"
                );
                assert_eq!(w.destination_state()["status"], "cleanup_failed");
            }
        }
    }
}

#[test]
fn a_conflict_other_than_in_use_is_not_waited_out() {
    let w = World::new();
    let mut l = w.start_listener("listen", &[]);
    let id = w.snapshot().destinations[0].id.clone();
    w.sim.inject_fault(Fault {
        method: Some("DELETE".into()),
        path: "/v3/audit-log-destinations/*".into(),
        count: 2,
        action: FaultAction::Problem {
            status: 409,
            detail: "Destination is locked by a replay job".into(),
        },
    });
    l.proc.interrupt();
    let status = l.proc.wait_exit(Duration::from_secs(60));
    let err = l.proc.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("Error: delete audit-log destination: DELETE ")
            && first_line(&err)
                .contains("status 409 Conflict: Destination is locked by a replay job"),
        "{err}"
    );
    assert_eq!(w.calls("DELETE", "/v3/audit-log-destinations/"), 1);
    assert!(err.contains(&format!("audit-log destination {id} may still exist")));
    w.sim.clear_faults();
    assert_reclaimed(&w, &id);
}

// ---------------------------------------------------------------------------
// Signals while a Konnect call is held.

/// Waits until the emulator has taken the (only) armed fault: the held
/// request is in flight.
fn wait_until_held(w: &World, what: &str) {
    eventually(what, || w.snapshot().faults.is_empty());
}

fn hold(call: Call) -> Fault {
    Fault {
        method: Some(call.method().into()),
        path: call.fault_path().into(),
        count: 1,
        action: FaultAction::Delay(Duration::from_secs(60)),
    }
}

#[test]
fn sigint_during_startup_exits_130_and_leaves_nothing() {
    let cases = vec![Call::Guard, Call::NameCheck, Call::Create, Call::Attach];
    run_cases(
        cases,
        |c| format!("SIGINT while {} is held", c.describe()),
        |call| {
            let w = World::new();
            w.sim.inject_fault(hold(call));
            let (cmd, _) = listen_command(&w, "30s");
            let mut proc = Running::spawn(cmd);
            wait_until_held(&w, "the held call to arrive");
            let sent = Instant::now();
            proc.interrupt();
            let status = proc.wait_exit(Duration::from_secs(20));
            let err = proc.stderr();
            assert_eq!(status.code(), Some(130), "exit code\nstderr:\n{err}");
            // A create gets 5 s to answer (Konnect may act on it anyway);
            // every other call is abandoned at once.
            let grace = if call == Call::Create {
                let waiting = "Waiting up to 5s for Konnect to answer the destination create, \
                               so that it can be undone (Ctrl+C again to stop now)\n";
                assert!(err.starts_with(waiting), "{err}");
                Duration::from_secs(5)
            } else {
                Duration::ZERO
            };
            let took = sent.elapsed();
            assert!(
                took >= grace && took < grace + Duration::from_secs(5),
                "stopped {took:?} after SIGINT, want {grace:?} and the undo"
            );
            assert!(
                err.lines()
                    .any(|l| l == "Error: interrupted during startup"),
                "{err}"
            );
            assert!(
                !proc.stdout().contains("Listener Started"),
                "{}",
                proc.stdout()
            );
            w.assert_konnect_clean();
            if call == Call::Attach {
                assert_eq!(w.destination_state()["status"], "deleted");
            }
        },
    );
}

#[test]
fn second_sigint_during_cleanup_exits_130_says_what_is_left_and_next_start_reclaims() {
    let w = World::new();
    let (cmd, host) = listen_command(&w, "30s");
    let mut l = w.start_listener_cmd(cmd, &host);
    let id = w.snapshot().destinations[0].id.clone();
    w.sim.inject_fault(hold(Call::Disable));
    l.proc.interrupt();
    wait_until_held(&w, "cleanup to reach the webhook release");
    l.proc.interrupt();
    let status = l.proc.wait_exit(Duration::from_secs(10));
    let err = l.proc.stderr();
    assert_eq!(status.code(), Some(130), "{err}");
    assert_eq!(
        err,
        format!(
            "Error: cleanup interrupted by a second signal\nHint: the us audit-log webhook may \
             still point at this listener's destination; audit-log destination {id} may still \
             exist; the next `kongctl listen` with profile \"default\" finishes the cleanup\n"
        )
    );
    let state = w.destination_state();
    assert_eq!(state["status"], "cleanup_failed", "{state}");
    assert_eq!(state["cleanup_error"], "cleanup interrupted", "{state}");
    assert!(w.snapshot().webhooks["us"].enabled, "left as said");
    assert_reclaimed(&w, &id);
}

#[test]
fn second_sigint_after_the_webhook_release_names_only_the_destination() {
    let w = World::new();
    let (cmd, host) = listen_command(&w, "30s");
    let mut l = w.start_listener_cmd(cmd, &host);
    let id = w.snapshot().destinations[0].id.clone();
    w.sim.inject_fault(hold(Call::DeleteDestination));
    l.proc.interrupt();
    wait_until_held(&w, "cleanup to reach the destination delete");
    l.proc.interrupt();
    let status = l.proc.wait_exit(Duration::from_secs(10));
    let err = l.proc.stderr();
    assert_eq!(status.code(), Some(130), "{err}");
    assert_eq!(
        err,
        format!(
            "Error: cleanup interrupted by a second signal\nHint: audit-log destination {id} may \
             still exist; the next `kongctl listen` with profile \"default\" finishes the cleanup\n"
        ),
        "the webhook was released already: only the destination is left"
    );
    assert!(!w.snapshot().webhooks["us"].enabled);
    assert_reclaimed(&w, &id);
}

#[test]
fn sigint_twice_during_startup_stops_the_undo_and_next_start_reclaims() {
    let w = World::new();
    w.sim.inject_fault(hold(Call::Attach));
    let (cmd, _) = listen_command(&w, "30s");
    let mut proc = Running::spawn(cmd);
    wait_until_held(&w, "the webhook attach to arrive");
    let id = w.snapshot().destinations[0].id.clone();
    // The undo starts with the ownership read: hold it too.
    w.sim.inject_fault(hold(Call::Ownership));
    proc.interrupt();
    wait_until_held(&w, "the undo to reach the ownership read");
    proc.interrupt();
    let status = proc.wait_exit(Duration::from_secs(10));
    let err = proc.stderr();
    assert_eq!(status.code(), Some(130), "{err}");
    assert_eq!(
        err,
        format!(
            "Error: interrupted during startup\nHint: cleanup interrupted: the us audit-log \
             webhook may still point at this listener's destination; audit-log destination {id} \
             may still exist; the next `kongctl listen` with profile \"default\" finishes the \
             cleanup\n"
        )
    );
    assert_eq!(w.destination_state()["status"], "cleanup_failed");
    assert_reclaimed(&w, &id);
}

// ---------------------------------------------------------------------------
// Konnect unreachable during cleanup.

#[test]
fn konnect_dropping_every_call_during_cleanup_is_reported_then_reclaimed() {
    let w = World::new();
    let mut l = w.start_listener("listen", &[]);
    let id = w.snapshot().destinations[0].id.clone();
    w.sim.inject_fault(Fault {
        method: None,
        path: "*".into(),
        count: 1000,
        action: FaultAction::Drop,
    });
    l.proc.interrupt();
    let status = l.proc.wait_exit(Duration::from_secs(60));
    let err = l.proc.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("Error: release audit-log webhook: PATCH ")
            && first_line(&err).contains("connection closed before message completed"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "Hint: the us audit-log webhook may still point at this listener's destination; \
             audit-log destination {id} may still exist; the next `kongctl listen` with profile \
             \"default\" finishes the cleanup"
        )),
        "{err}"
    );
    // Ownership read and webhook disable, four attempts each; then it gave up.
    assert_eq!(
        w.snapshot()
            .requests
            .iter()
            .filter(|r| r.status == 0)
            .count(),
        8
    );
    assert_eq!(w.destination_state()["status"], "cleanup_failed");
    w.sim.clear_faults();
    assert_reclaimed(&w, &id);
}

/// A TCP forwarder standing in for the network between kongctl and
/// Konnect; `cut` makes Konnect unreachable (connections refused, open
/// ones reset).
struct Link {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    accepter: Option<std::thread::JoinHandle<()>>,
}

impl Link {
    fn to(target: SocketAddr) -> Link {
        use Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let accepter = {
            let (down, open) = (down.clone(), open.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if down.load(Ordering::SeqCst) {
                        break; // drops the listener: connections are refused
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(target) else {
                        continue;
                    };
                    let mut open = open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                    for (mut from, mut to) in [
                        (client.try_clone().unwrap(), server.try_clone().unwrap()),
                        (server, client),
                    ] {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(Shutdown::Write);
                        });
                    }
                }
            })
        };
        Link {
            addr,
            down,
            open,
            accepter: Some(accepter),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn cut(&mut self) {
        self.down.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accepter
        if let Some(t) = self.accepter.take() {
            t.join().unwrap();
        }
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.cut();
    }
}

#[test]
fn konnect_unreachable_during_cleanup_is_reported_then_reclaimed() {
    let w = World::new();
    let mut link = Link::to(w.sim.addr());
    let (mut cmd, host) = listen_command(&w, "5s");
    cmd.env("KONGCTL_DEFAULT_KONNECT_BASE_URL", link.url());
    let mut l = w.start_listener_cmd(cmd, &host);
    let id = w.snapshot().destinations[0].id.clone();
    link.cut();
    l.proc.interrupt();
    let status = l.proc.wait_exit(Duration::from_secs(60));
    let err = l.proc.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.starts_with(&format!(
            "Error: release audit-log webhook: PATCH {}/v2/audit-log-webhook: ",
            link.url()
        )) && first_line(&err).contains("Connection refused"),
        "{err}"
    );
    assert!(
        err.contains(&format!("audit-log destination {id} may still exist")),
        "{err}"
    );
    assert_eq!(w.destination_state()["status"], "cleanup_failed");
    let s = w.snapshot();
    assert!(s.webhooks["us"].enabled && s.destination(&id).is_some());
    // Konnect is back (the next start talks to it directly).
    assert_reclaimed(&w, &id);
}

#[test]
fn a_failing_reclaim_changes_nothing_and_the_next_start_retries_it() {
    let w = World::new();
    let mut l = w.start_listener("listen", &[]);
    let id = w.snapshot().destinations[0].id.clone();
    w.sim.inject_fault(Fault::status(
        Some("DELETE"),
        "/v3/audit-log-destinations/*",
        ATTEMPTS,
        503,
    ));
    l.proc.interrupt();
    assert_eq!(l.proc.wait_exit(Duration::from_secs(60)).code(), Some(1));
    assert!(w.snapshot().faults.is_empty());

    // The reclaim fails the same way: the start stops before creating
    // anything, and says why.
    w.sim.inject_fault(Fault::status(
        Some("DELETE"),
        "/v3/audit-log-destinations/*",
        ATTEMPTS,
        503,
    ));
    let (cmd, _) = listen_command(&w, "5s");
    let out = run_to_failure(cmd);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "Error: finish the cleanup of an earlier listener of this profile: delete audit-log \
             destination: DELETE {}/v3/audit-log-destinations/{id}: status 503 Service Unavailable",
            w.sim.base_url()
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("audit-log destination {id} may still exist")),
        "{}",
        out.stderr
    );
    assert_eq!(
        w.calls("POST", "/v3/audit-log-destinations"),
        1,
        "nothing new created"
    );
    assert_eq!(w.destination_state()["status"], "cleanup_failed");
    assert_reclaimed(&w, &id);
}

// ---------------------------------------------------------------------------
// A webhook someone else configured is never released.

const THEIR_ENDPOINT: &str = "https://siem.example.com/konnect";

fn configure_their_webhook(w: &World) {
    let (status, _) = w.konnect_call(
        "PATCH",
        "/v2/audit-log-webhook",
        &format!(
            r#"{{"endpoint":"{THEIR_ENDPOINT}","authorization":"Bearer theirs","log_format":"cef","enabled":true}}"#
        ),
    );
    assert_eq!(status, 200, "their v2 webhook configuration");
}

fn assert_their_webhook_intact(w: &World) {
    let hook = w.snapshot().webhooks["us"].clone();
    assert!(
        hook.enabled && hook.endpoint == THEIR_ENDPOINT,
        "their webhook was released: {hook:?}"
    );
}

#[test]
fn stop_leaves_alone_a_webhook_reconfigured_by_someone_else() {
    let w = World::new();
    let mut l = w.start_listener("listen", &[]);
    configure_their_webhook(&w);
    l.stop_ok();
    assert_their_webhook_intact(&w);
    assert!(
        w.snapshot().destinations.is_empty(),
        "our destination deleted"
    );
}

#[test]
fn reclaim_leaves_alone_a_webhook_configured_by_someone_else_meanwhile() {
    let w = World::new();
    let mut l = w.start_listener("listen", &[]);
    let id = w.snapshot().destinations[0].id.clone();
    // Cleanup releases the webhook but cannot delete the destination.
    w.sim.inject_fault(Fault::status(
        Some("DELETE"),
        "/v3/audit-log-destinations/*",
        ATTEMPTS,
        503,
    ));
    l.proc.interrupt();
    assert_eq!(l.proc.wait_exit(Duration::from_secs(60)).code(), Some(1));
    configure_their_webhook(&w);

    // The next start deletes our destination, then stops at the guard:
    // the region's webhook is theirs.
    let (cmd, _) = listen_command(&w, "5s");
    let out = run_to_failure(cmd);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("deleted audit-log destination {id}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "Error: regional audit-log webhook is already configured (enabled=true endpoint=\"{THEIR_ENDPOINT}\")"
        )),
        "{}",
        out.stderr
    );
    assert_their_webhook_intact(&w);
    assert!(w.snapshot().destinations.is_empty());
}

// ---------------------------------------------------------------------------
// Answers lost after Konnect acted.
//
// The emulator's faults fail a request before it is handled. A timeout or a
// reset can also come after Konnect acted: the destination exists, the
// client does not know. `Gateway` sits between kongctl and the emulator,
// forwards requests one by one, and can lose the answer to chosen ones (or
// answer for the emulator without asking it).

/// What the gateway does to a matching request.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Forward it, then close the client's connection without the answer.
    LoseAnswer,
    /// Answer this status without forwarding.
    Answer(u16),
    /// Konnect is slow: forward it after this long, whether or not the
    /// client is still waiting, and relay the answer if it is.
    Late(Duration),
}

#[derive(Clone, Debug)]
struct Rule {
    method: &'static str,
    path: &'static str,
    /// Matching requests let through untouched first.
    skip: u32,
    count: u32,
    act: Act,
}

struct Gateway {
    addr: SocketAddr,
    rules: Arc<Mutex<Vec<Rule>>>,
}

impl Gateway {
    fn to(target: SocketAddr) -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let rules = Arc::new(Mutex::new(Vec::<Rule>::new()));
        let shared = rules.clone();
        // The accepting thread ends with the test process; connections end
        // when kongctl closes them.
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let rules = shared.clone();
                std::thread::spawn(move || {
                    let _ = Gateway::serve(client, target, &rules);
                });
            }
        });
        Gateway { addr, rules }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn add(&self, rule: Rule) {
        self.rules.lock().unwrap().push(rule);
    }

    fn armed(&self) -> u32 {
        self.rules.lock().unwrap().iter().map(|r| r.count).sum()
    }

    /// The action for a request, counting it against the first matching
    /// rule.
    fn decide(rules: &Mutex<Vec<Rule>>, method: &str, path: &str) -> Option<Act> {
        let mut rules = rules.lock().unwrap();
        let rule = rules
            .iter_mut()
            .find(|r| r.count > 0 && r.method == method && path.starts_with(r.path))?;
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        rule.count -= 1;
        Some(rule.act)
    }

    fn serve(
        mut client: TcpStream,
        target: SocketAddr,
        rules: &Mutex<Vec<Rule>>,
    ) -> std::io::Result<()> {
        let mut pending = Vec::new();
        loop {
            let Some(request) = read_message(&mut client, &mut pending, true)? else {
                return Ok(());
            };
            let line = String::from_utf8_lossy(
                &request[..request.iter().position(|&b| b == b'\r').unwrap_or(0)],
            )
            .into_owned();
            let mut parts = line.split(' ');
            let method = parts.next().unwrap_or("").to_string();
            let path = parts
                .next()
                .unwrap_or("")
                .split('?')
                .next()
                .unwrap_or("")
                .to_string();
            let act = Gateway::decide(rules, &method, &path);
            if let Some(Act::Answer(status)) = act {
                let body = format!(
                    r#"{{"status":{status},"title":"Gateway fault","detail":"Injected by the test gateway"}}"#
                );
                write!(
                    client,
                    "HTTP/1.1 {status} Fault\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )?;
                continue;
            }
            if let Some(Act::Late(after)) = act {
                std::thread::sleep(after);
            }
            let mut upstream = TcpStream::connect(target)?;
            upstream.write_all(&request)?;
            let mut rest = Vec::new();
            let response =
                read_message(&mut upstream, &mut rest, false)?.expect("the emulator answers");
            if let Some(Act::LoseAnswer) = act {
                let _ = client.shutdown(Shutdown::Both);
                return Ok(());
            }
            client.write_all(&response)?;
        }
    }
}

/// Reads one HTTP/1.1 message (head and Content-Length body) from
/// `stream`, keeping extra bytes in `pending`. `None` at a clean end of
/// stream before a message starts.
fn read_message(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
    is_request: bool,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return if pending.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        pending.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).to_ascii_lowercase();
    assert!(
        !head.contains("transfer-encoding: chunked"),
        "the gateway reads Content-Length bodies only: {head}"
    );
    let status_without_body =
        !is_request && (head.starts_with("http/1.1 204") || head.starts_with("http/1.1 304"));
    let len: usize = if status_without_body {
        0
    } else {
        head.lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    while pending.len() < head_end + len {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        pending.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(pending.drain(..head_end + len).collect()))
}

/// `listen` through the gateway.
fn listen_via(w: &World, gw: &Gateway) -> (Command, String) {
    let (mut cmd, host) = listen_command(w, "5s");
    cmd.env("KONGCTL_DEFAULT_KONNECT_BASE_URL", gw.url());
    (cmd, host)
}

fn lose_answer(call: Call) -> Rule {
    Rule {
        method: call.method(),
        path: call.fault_path().trim_end_matches('*'),
        skip: 0,
        count: 1,
        act: Act::LoseAnswer,
    }
}

#[test]
fn an_answer_lost_after_konnect_acted_is_retried_without_duplicates() {
    let calls = vec![
        Call::Guard,
        Call::NameCheck,
        Call::Create,
        Call::Attach,
        Call::Ownership,
        Call::Disable,
        Call::Unhook,
        Call::DeleteDestination,
    ];
    run_cases(
        calls,
        |c| format!("answer to {} lost", c.describe()),
        |call| {
            let w = World::new();
            let gw = Gateway::to(w.sim.addr());
            if call.phase() == Phase::Startup {
                gw.add(lose_answer(call));
            }
            let (cmd, host) = listen_via(&w, &gw);
            let mut l = w.start_listener_cmd(cmd, &host);
            let s = w.snapshot();
            assert_eq!(
                s.destinations.len(),
                1,
                "one destination: {:?}",
                s.destinations
            );
            assert_eq!(
                s.webhooks["us"].destination_id.as_deref(),
                Some(s.destinations[0].id.as_str()),
                "the webhook points at it"
            );
            if call.phase() == Phase::Cleanup {
                gw.add(lose_answer(call));
            }
            l.stop_ok();
            assert_eq!(gw.armed(), 0, "the answer was lost");
            assert_eq!(
                w.calls("POST", "/v3/audit-log-destinations"),
                1,
                "one create"
            );
            w.assert_konnect_clean();
        },
    );
}

#[test]
fn a_lost_create_answer_with_the_lookup_failing_leaves_no_destination_behind() {
    let w = World::new();
    let gw = Gateway::to(w.sim.addr());
    // The create takes effect but its answer is lost; every attempt of the
    // lookup that follows fails (the name check before it goes through).
    gw.add(lose_answer(Call::Create));
    gw.add(Rule {
        method: "GET",
        path: "/v3/audit-log-destinations",
        skip: 1,
        count: ATTEMPTS,
        act: Act::Answer(503),
    });
    // Another POST could make a second destination: kongctl gives up on
    // the create, and its undo finds the destination by name and deletes it.
    let (cmd, _) = listen_via(&w, &gw);
    let out = run_to_failure(cmd);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let want = format!(
        "Error: create audit-log destination: POST {}/v3/audit-log-destinations: ",
        gw.url()
    );
    assert!(
        out.stderr.starts_with(&want)
            && first_line(&out.stderr).contains("connection closed before message completed"),
        "want {want:?}…:\n{}",
        out.stderr
    );
    assert_eq!(
        w.calls("POST", "/v3/audit-log-destinations"),
        1,
        "one create"
    );
    assert_eq!(
        w.calls("DELETE", "/v3/audit-log-destinations/"),
        1,
        "undone"
    );
    assert_eq!(gw.armed(), 0);
    w.assert_konnect_clean();
}

#[test]
fn a_create_konnect_finishes_after_the_client_gave_up_leaves_no_duplicate() {
    let w = World::new();
    let gw = Gateway::to(w.sim.addr());
    // The first create reaches Konnect 2.5 s late, after the client's 1 s
    // timeout, its backoff, a lookup that finds nothing and a second
    // create: two destinations of the listener's name exist.
    gw.add(Rule {
        method: "POST",
        path: "/v3/audit-log-destinations",
        skip: 0,
        count: 1,
        act: Act::Late(Duration::from_millis(2500)),
    });
    let (mut cmd, host) = listen_via(&w, &gw);
    cmd.env("KONGCTL_KONNECT_TIMEOUT", "1s");
    let mut l = w.start_listener_cmd(cmd, &host);
    eventually("the late create to take effect", || {
        w.snapshot().destinations.len() == 2
    });
    let s = w.snapshot();
    assert_eq!(
        s.destinations[0].name, s.destinations[1].name,
        "both made by this listener"
    );
    l.stop_ok();
    w.assert_konnect_clean();
}

#[test]
fn sigint_during_a_slow_create_waits_for_its_answer_and_undoes_it() {
    let w = World::new();
    let gw = Gateway::to(w.sim.addr());
    // Konnect takes 2 s to create the destination.
    gw.add(Rule {
        method: "POST",
        path: "/v3/audit-log-destinations",
        skip: 0,
        count: 1,
        act: Act::Late(Duration::from_secs(2)),
    });
    let (cmd, _) = listen_via(&w, &gw);
    let mut proc = Running::spawn(cmd);
    eventually("the create to be sent", || gw.armed() == 0);
    let sent = Instant::now();
    proc.interrupt();
    let status = proc.wait_exit(Duration::from_secs(20));
    let err = proc.stderr();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "exited {:?} after SIGINT: the create answered within 2 s",
        sent.elapsed()
    );
    assert!(
        err.starts_with("Waiting up to 5s for Konnect to answer the destination create")
            && err.contains("\nError: interrupted during startup\n"),
        "{err}"
    );
    assert_eq!(w.calls("POST", "/v3/audit-log-destinations"), 1);
    assert_eq!(
        w.calls("DELETE", "/v3/audit-log-destinations/"),
        1,
        "undone"
    );
    w.assert_konnect_clean();
    assert_eq!(w.destination_state()["status"], "deleted");
}
