//! `ps stop` waits for a detached listener's whole Konnect cleanup by
//! default (the original's 15 s default often ended first), and on a
//! terminal says what it waits for.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use konnect_sim::{Fault, FaultAction};

fn detach(w: &World) -> i32 {
    let host = w.tunnel_host();
    let out = w.run(&[
        "listen",
        "--endpoint",
        &format!("https://{host}/audit-logs"),
        "--listen-address",
        "127.0.0.1:0",
        "--check",
        "off",
        "--detach",
    ]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    detached_pid(&out.stdout)
}

#[test]
fn the_default_timeout_outlasts_a_slow_cleanup_and_a_terminal_is_told_why() {
    let w = World::new();
    let pid = detach(&w);
    let _guard = PidGuard(pid);
    let id = w.snapshot().destinations[0].id.clone();
    // Konnect keeps answering 409 "in use": the listener's cleanup backs
    // off (0.25 s doubling to 5 s) for about 18 s, past the original's
    // 15 s default.
    w.sim.inject_fault(Fault {
        method: Some("DELETE".into()),
        path: "/v3/audit-log-destinations/*".into(),
        count: 7,
        action: FaultAction::Problem {
            status: 409,
            detail: "Destination is in use".into(),
        },
    });

    // stderr on a pseudo-terminal, as when a user runs it.
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut cmd = w.kongctl();
    cmd.args(["ps", "stop", &pid.to_string()])
        .stderr(Stdio::from(pty.slave))
        .stdout(Stdio::piped());
    let started = Instant::now();
    let child = cmd.spawn().expect("ps stop starts");
    drop(cmd);
    let mut terminal = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        // EIO once the last writer (ps stop) is gone.
        while let Ok(n) = terminal.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    let told = reader.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{told}");
    assert!(took > Duration::from_secs(15), "cleanup took only {took:?}");
    let row: Vec<&str> = stdout.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, [pid.to_string().as_str(), "stopped", "true"]);
    assert!(
        told.contains(&format!(
            "Waiting up to 1m30s for pid {pid} to finish its Konnect cleanup (release the \
             audit-log webhook, delete destination {id}); Ctrl+C stops the waiting, not the cleanup"
        )),
        "{told:?}"
    );
    assert!(!alive(pid));
    w.assert_konnect_clean();
}

#[test]
fn without_a_terminal_ps_stop_says_nothing_on_stderr() {
    let w = World::new();
    let pid = detach(&w);
    let _guard = PidGuard(pid);
    let out = w.run(&["ps", "stop", "--all"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stderr, "");
    w.assert_konnect_clean();
}
