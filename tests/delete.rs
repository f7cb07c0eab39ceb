//! `kongctl delete audit-logs destination|webhook` against the emulator:
//! what it shows, when it asks (a pseudo-terminal plays the user), what it
//! refuses (a running listener's objects, without `--force`), the 409 "in
//! use" it waits out, and the startup guard's hint that names it.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use konnect_sim::{Fault, FaultAction};

const THEIR_ENDPOINT: &str = "https://siem.example.com/konnect";

/// One Konnect API call, as another integration would make it; the status
/// and the body.
fn konnect(w: &World, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, body) = w.konnect_call(method, path, body);
    let value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    (status, value)
}

/// A destination someone else made, optionally with the webhook pointing
/// at it; returns its id.
fn their_destination(w: &World, name: &str, attach: bool) -> String {
    let (status, body) = konnect(
        w,
        "POST",
        "/v3/audit-log-destinations",
        &format!(
            r#"{{"name":"{name}","endpoint":"{THEIR_ENDPOINT}","log_format":"cef","authorization":"Bearer theirs"}}"#
        ),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    if attach {
        let (status, body) = konnect(
            w,
            "PATCH",
            "/v3/audit-log-webhook",
            &format!(r#"{{"audit_log_destination_id":"{id}","enabled":true}}"#),
        );
        assert_eq!(status, 200, "{body}");
    }
    id
}

/// `kongctl <args>` with stdin on a pseudo-terminal where `answer` is
/// typed; returns the output.
fn run_on_terminal(w: &World, args: &[&str], answer: &str) -> Output {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut cmd = w.kongctl();
    cmd.args(args).stdin(Stdio::from(pty.slave));
    let mut master = std::fs::File::from(pty.master);
    master.write_all(answer.as_bytes()).unwrap();
    // Drain the terminal's echo so that it never fills up.
    let mut echo = master.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while matches!(echo.read(&mut buf), Ok(n) if n > 0) {}
    });
    let out = Running::run_command(cmd);
    drop(master);
    out
}

#[test]
fn deleting_the_webhook_shows_the_plan_and_clears_it() {
    let w = World::new();
    let id = their_destination(&w, "their-siem", true);
    let out = w.run(&["delete", "audit-logs", "webhook", "--yes"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout,
        "Deleted the us audit-log webhook (disabled, endpoint unconfigured).\n"
    );
    assert_eq!(
        out.stderr,
        format!(
            "This deletes the us audit-log webhook:\n  enabled: true\n  endpoint: {THEIR_ENDPOINT}\n  \
             destination: {id}\nAfterwards it is disabled with endpoint \"unconfigured\": Konnect \
             stops delivering audit logs for us.\n\
             Audit-log destination {id} still exists; to delete it: kongctl delete audit-logs destination {id}\n"
        )
    );
    let hook = &w.snapshot().webhooks["us"];
    assert!(!hook.enabled && hook.endpoint == "unconfigured" && hook.destination_id.is_none());
    assert_eq!(
        w.snapshot().destinations.len(),
        1,
        "the destination is kept"
    );

    // Nothing left to delete.
    let again = w.run(&["delete", "konnect", "audit-logs", "hook", "--yes"]);
    assert_eq!(again.code(), Some(0), "{}", again.stderr);
    assert_eq!(
        again.stdout,
        "The us audit-log webhook is not configured; nothing to delete.\n"
    );
}

#[test]
fn without_a_terminal_yes_is_required_and_nothing_changes() {
    let w = World::new();
    their_destination(&w, "their-siem", true);
    let before = w.snapshot();
    let out = w.run(&["delete", "audit-logs", "webhook"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.ends_with(
            "Error: --yes is required when stdin is not a terminal; nothing was changed\n\n\
             Run 'kongctl delete audit-logs webhook --help' for usage\n"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(w.snapshot().webhooks, before.webhooks);
}

#[test]
fn on_a_terminal_it_asks_and_only_yes_deletes() {
    let w = World::new();
    let id = their_destination(&w, "their-siem", false);

    let no = run_on_terminal(&w, &["delete", "audit-logs", "destination", &id], "n\n");
    assert_eq!(no.code(), Some(1), "{}", no.stderr);
    assert!(no.stderr.contains("Continue? [y/N] "), "{}", no.stderr);
    assert!(
        no.stderr
            .ends_with("Error: cancelled; nothing was changed\n"),
        "{}",
        no.stderr
    );
    assert_eq!(w.snapshot().destinations.len(), 1);

    let yes = run_on_terminal(&w, &["delete", "audit-logs", "dest", "their-siem"], "y\n");
    assert_eq!(yes.code(), Some(0), "{}", yes.stderr);
    assert!(
        yes.stderr.starts_with(&format!(
            "This deletes audit-log destination {id}:\n  name: their-siem\n  endpoint: \
             {THEIR_ENDPOINT}\n  log format: cef\nContinue? [y/N] "
        )),
        "{}",
        yes.stderr
    );
    assert_eq!(yes.stdout, format!("Deleted audit-log destination: {id}\n"));
    assert!(w.snapshot().destinations.is_empty());
}

#[test]
fn a_destination_in_use_is_released_first_and_409_is_waited_out() {
    let w = World::new();
    let id = their_destination(&w, "their-siem", true);
    // Konnect releases the webhook's reference asynchronously: the first
    // deletes answer 409 "in use", as in the listener's cleanup.
    w.sim.inject_fault(Fault {
        method: Some("DELETE".into()),
        path: "/v3/audit-log-destinations/*".into(),
        count: 2,
        action: FaultAction::Problem {
            status: 409,
            detail: "Destination is in use".into(),
        },
    });
    let out = w.run(&["delete", "k", "audit-logs", "destination", &id, "-y"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(
            "\nThe us audit-log webhook points at it: it is disabled and cleared first.\n"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stdout,
        format!(
            "Deleted the us audit-log webhook (disabled, endpoint unconfigured).\n\
             Deleted audit-log destination: {id}\n"
        )
    );
    assert_eq!(w.calls("DELETE", "/v3/audit-log-destinations/"), 3);
    w.assert_konnect_clean();
}

#[test]
fn what_a_running_listener_owns_is_refused_with_its_pid_unless_forced() {
    let w = World::new();
    let mut l = w.start_listener("listen", &[]);
    let pid = l.proc.pid();
    let id = w.snapshot().destinations[0].id.clone();
    let name = w.snapshot().destinations[0].name.clone();

    let hook = w.run(&["delete", "audit-logs", "webhook", "--yes"]);
    assert_eq!(hook.code(), Some(1));
    assert_eq!(
        hook.stderr,
        format!(
            "Error: the us audit-log webhook belongs to a running kongctl listener (pid {pid}, profile \"default\")\n\
             Hint: stop it instead (kongctl ps stop {pid}, or kill -TERM {pid}): it clears the webhook \
             itself when it stops; --force removes it anyway\n"
        )
    );
    let dest = w.run(&["delete", "audit-logs", "destination", &name, "--yes"]);
    assert_eq!(dest.code(), Some(1));
    assert!(
        dest.stderr.starts_with(&format!(
            "Error: audit-log destination {id} (\"{name}\") belongs to a running kongctl listener (pid {pid}, "
        )),
        "{}",
        dest.stderr
    );
    assert_eq!(w.snapshot().destinations.len(), 1);
    assert!(w.snapshot().webhooks["us"].enabled);

    // --force: removed, with a warning; the listener's own cleanup then
    // finds them gone and still ends well.
    let forced = w.run(&[
        "delete",
        "audit-logs",
        "destination",
        &id,
        "--yes",
        "--force",
    ]);
    assert_eq!(forced.code(), Some(0), "{}", forced.stderr);
    assert!(
        forced.stderr.contains(&format!(
            "Warning: the running kongctl listener pid {pid} (profile \"default\") owns it (--force)"
        )),
        "{}",
        forced.stderr
    );
    w.assert_konnect_clean();
    l.stop_ok();
    w.assert_konnect_clean();
}

#[test]
fn a_detached_listeners_objects_are_refused_with_its_pid() {
    let w = World::new();
    let host = w.tunnel_host();
    let out = w.run(&[
        "listen",
        "--endpoint",
        &format!("https://{host}/audit-logs"),
        "--listen-address",
        "127.0.0.1:0",
        "--detach",
    ]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let pid = detached_pid(&out.stdout);
    let _guard = PidGuard(pid);
    let id = w.snapshot().destinations[0].id.clone();
    for args in [
        vec!["delete", "audit-logs", "webhook", "--yes"],
        vec!["delete", "audit-logs", "destination", id.as_str(), "--yes"],
    ] {
        let out = w.run(&args);
        assert_eq!(out.code(), Some(1), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "belongs to a running kongctl listener (pid {pid}, profile \"default\")"
            )) && out
                .stderr
                .contains(&format!("Hint: stop it instead (kongctl ps stop {pid}, ")),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(w.snapshot().destinations.len(), 1);
    assert!(w.snapshot().webhooks["us"].enabled);
    let stop = w.run(&["ps", "stop", &pid.to_string()]);
    assert_eq!(stop.code(), Some(0), "{}", stop.stderr);
    w.assert_konnect_clean();
}

#[test]
fn a_dead_listeners_leftovers_can_be_deleted() {
    let w = World::new();
    let mut l = w.start_listener("listen", &[]);
    let id = w.snapshot().destinations[0].id.clone();
    // Killed: its destination.json still says active, with a dead pid.
    l.proc.signal(nix::sys::signal::Signal::SIGKILL);
    l.proc.wait_exit(Duration::from_secs(10));
    let out = w.run(&["delete", "audit-logs", "destination", &id, "--yes"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    w.assert_konnect_clean();
}

#[test]
fn unknown_and_ambiguous_names_are_errors() {
    let w = World::new();
    let out = w.run(&["delete", "audit-logs", "destination", "nope", "--yes"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr,
        "Error: no audit-log destination has the id or name \"nope\"\n\
         Hint: kongctl get audit-logs destinations lists them\n"
    );
    let a = their_destination(&w, "twin", false);
    let b = their_destination(&w, "twin", false);
    let out = w.run(&["delete", "audit-logs", "destination", "twin", "--yes"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr,
        format!(
            "Error: 2 audit-log destinations are named \"twin\": {a}, {b}\nHint: delete one by its id\n"
        )
    );
    assert_eq!(w.snapshot().destinations.len(), 2);
}

#[test]
fn the_startup_guard_names_the_delete_command() {
    let w = World::new();
    their_destination(&w, "their-siem", true);
    let (cmd, _) = w.listener_command("listen", &[]);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains(
            "or clear it with 'kongctl delete audit-logs webhook', or use --configure-webhook=false"
        ),
        "{}",
        out.stderr
    );
    // And after the delete, the guard lets a listener start.
    let del = w.run(&["delete", "audit-logs", "webhook", "--yes"]);
    assert_eq!(del.code(), Some(0), "{}", del.stderr);
    let mut l = w.start_listener("listen", &[]);
    l.stop_ok();
}
