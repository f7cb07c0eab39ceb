//! `listen --check`: the probe through the public endpoint, on loopback
//! only. The endpoint is the listener itself (reached; at a wrong path;
//! through a proxy that drops the Authorization), a closed port, another
//! local server, or that server spoken to with TLS. `strict` must stop
//! before any Konnect call; `warn` must start as before, adding only
//! stderr lines.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

fn listen_cmd(w: &World, endpoint: &str, port: u16, check: &str) -> Command {
    let mut cmd = w.kongctl();
    cmd.args([
        "listen",
        "--endpoint",
        endpoint,
        "--listen-address",
        &format!("127.0.0.1:{port}"),
        "--authorization",
        "Bearer test-secret",
        "--check",
        check,
    ]);
    cmd
}

/// Reads a request head (up to the blank line) from `s`.
fn read_head(s: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    head
}

/// Another local server: answers anything it is sent with `404 Not
/// Found` and closes.
fn other_server() -> u16 {
    counting_other_server().0
}

/// `other_server`, with the number of connections it accepted.
fn counting_other_server() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (port, accepted)
}

/// A server that accepts, reads and never answers (a tunnel that hangs);
/// it holds every connection until the test ends.
fn silent_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = s.read(&mut buf);
            held.push(s);
        }
    });
    port
}

/// A proxy in front of `target` that drops the Authorization header (as a
/// misconfigured tunnel can); one request per connection.
fn header_dropping_proxy(target: u16) -> u16 {
    authorization_rewriting_proxy(target, None)
}

/// A proxy in front of `target` that replaces the Authorization header
/// with `replacement` (`None`: drops it); one request per connection.
fn authorization_rewriting_proxy(target: u16, replacement: Option<&'static str>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut client in l.incoming().flatten() {
            let head = String::from_utf8_lossy(&read_head(&mut client)).into_owned();
            let kept: String = head
                .split_inclusive("\r\n")
                .filter_map(|line| {
                    if !line.to_ascii_lowercase().starts_with("authorization:") {
                        Some(line.to_string())
                    } else {
                        replacement.map(|r| format!("Authorization: {r}\r\n"))
                    }
                })
                .collect();
            let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let _ = upstream.write_all(kept.as_bytes());
            let mut answer = Vec::new();
            let _ = upstream.read_to_end(&mut answer);
            let _ = client.write_all(&answer);
        }
    });
    port
}

/// Runs a `--check strict` listener that must fail before touching
/// Konnect; returns stderr.
fn strict_failure(w: &World, endpoint: &str, port: u16) -> String {
    let out = Running::run_command(listen_cmd(w, endpoint, port, "strict"));
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "", "nothing on stdout");
    assert!(
        out.stderr.contains(
            "Hint: nothing was changed in Konnect.\nCheck:\n  \
             - The destination endpoint includes the listener path (/audit-logs).\n"
        ),
        "{}",
        out.stderr
    );
    let s = w.snapshot();
    assert!(
        s.requests.is_empty(),
        "strict failed after Konnect calls: {:?}",
        s.requests
    );
    assert!(s.is_pristine());
    out.stderr
}

#[test]
fn a_probe_through_the_listener_itself_passes_strict_and_is_neither_stored_nor_counted() {
    let w = World::new();
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}/audit-logs");
    let mut proc = Running::spawn(listen_cmd(&w, &endpoint, port, "strict"));
    proc.wait_for_listener_state(&w.storage_dir("default"));
    // The state file is written just before the startup block is printed.
    let out = proc.wait_stdout("the startup block", |s| s.contains("events file:"));
    assert!(
        out.starts_with("Konnect Audit-Log Listener Started\n"),
        "{out}"
    );
    assert!(!proc.stderr().contains("tunnel check"), "{}", proc.stderr());
    proc.interrupt();
    assert!(proc.wait_exit(Duration::from_secs(60)).success());
    let events = std::fs::read(w.events_file()).unwrap_or_default();
    assert!(events.is_empty(), "the probe was stored: {events:?}");
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.storage_dir("default").join("listener.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["requests_received"], 0, "{state}");
    assert_eq!(state["records_received"], 0, "{state}");
    w.assert_konnect_clean();
}

#[test]
fn strict_stops_before_konnect_when_nothing_listens_at_the_endpoint() {
    let w = World::new();
    let closed = free_port();
    let stderr = strict_failure(
        &w,
        &format!("http://127.0.0.1:{closed}/audit-logs"),
        free_port(),
    );
    assert!(
        stderr.contains(&format!(
            "Error: tunnel check: http://127.0.0.1:{closed}/audit-logs does not reach this \
             listener: the connection failed ("
        )),
        "{stderr}"
    );
}

#[test]
fn strict_shows_the_status_of_another_server_at_the_endpoint() {
    let w = World::new();
    let other = other_server();
    let stderr = strict_failure(
        &w,
        &format!("http://127.0.0.1:{other}/audit-logs"),
        free_port(),
    );
    assert!(
        stderr.contains(
            "does not reach this listener: something else answered 404 Not Found \
             (the tunnel forwards to another program, port or path)"
        ),
        "{stderr}"
    );
}

#[test]
fn strict_reports_a_failed_tls_handshake() {
    let w = World::new();
    let plain = other_server();
    let stderr = strict_failure(
        &w,
        &format!("https://127.0.0.1:{plain}/audit-logs"),
        free_port(),
    );
    assert!(
        stderr.contains("does not reach this listener: the TLS handshake failed ("),
        "{stderr}"
    );
}

#[test]
fn strict_reports_a_probe_that_arrives_at_another_path() {
    let w = World::new();
    let port = free_port();
    let stderr = strict_failure(&w, &format!("http://127.0.0.1:{port}/other"), port);
    assert!(
        stderr
            .contains("reaches this listener at path /other, but the listener serves /audit-logs"),
        "{stderr}"
    );
}

#[test]
fn strict_reports_an_authorization_removed_on_the_way() {
    let w = World::new();
    let port = free_port();
    let proxy = header_dropping_proxy(port);
    let stderr = strict_failure(&w, &format!("http://127.0.0.1:{proxy}/audit-logs"), port);
    assert!(
        stderr
            .contains("reaches this listener, but the Authorization header was removed on the way"),
        "{stderr}"
    );
}

#[test]
fn strict_reports_an_authorization_changed_on_the_way() {
    let w = World::new();
    let port = free_port();
    let proxy = authorization_rewriting_proxy(port, Some("Basic dHVubmVsOnVzZXI="));
    let stderr = strict_failure(&w, &format!("http://127.0.0.1:{proxy}/audit-logs"), port);
    assert!(
        stderr.contains(
            "reaches this listener, but the Authorization header was changed on the way: \
             Konnect's deliveries would get 401"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("dHVubmVs"),
        "a header value was shown: {stderr}"
    );
}

/// `tail` with a webhook listener runs the same check: strict stops before
/// Konnect, and a probe through the tail's own socket passes.
#[test]
fn tail_checks_the_tunnel_too() {
    let w = World::new();
    let closed = free_port();
    let mut cmd = w.kongctl();
    cmd.args([
        "tail",
        "--endpoint",
        &format!("http://127.0.0.1:{closed}/audit-logs"),
        "--listen-address",
        "127.0.0.1:0",
        "--check",
        "strict",
    ]);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains(&format!(
            "Error: tunnel check: http://127.0.0.1:{closed}/audit-logs does not reach this \
             listener: the connection failed ("
        )),
        "{}",
        out.stderr
    );
    assert!(w.snapshot().is_pristine());

    let port = free_port();
    let mut cmd = w.kongctl();
    cmd.args([
        "tail",
        "--endpoint",
        &format!("http://127.0.0.1:{port}/audit-logs"),
        "--listen-address",
        &format!("127.0.0.1:{port}"),
        "--authorization",
        "Bearer test-secret",
        "--check",
        "strict",
    ]);
    let mut proc = Running::spawn(cmd);
    proc.wait_for_listener_state(&w.storage_dir("default"));
    assert!(!proc.stderr().contains("tunnel check"), "{}", proc.stderr());
    assert_eq!(w.snapshot().destinations.len(), 1);
    proc.interrupt();
    assert!(proc.wait_exit(Duration::from_secs(60)).success());
    assert_eq!(proc.stdout(), "", "the probe was printed as an event");
    w.assert_konnect_clean();
}

#[test]
fn warn_prints_the_finding_and_the_checklist_and_starts_as_before() {
    let w = World::new();
    let closed = free_port();
    let endpoint = format!("http://127.0.0.1:{closed}/audit-logs");
    // The default is warn (the harness turns the check off for other
    // tests).
    let mut cmd = w.kongctl();
    cmd.env_remove("KONGCTL_LISTEN_CHECK").args([
        "listen",
        "--endpoint",
        &endpoint,
        "--listen-address",
        "127.0.0.1:0",
        "--authorization",
        "Bearer test-secret",
    ]);
    let mut proc = Running::spawn(cmd);
    let state = proc.wait_for_listener_state(&w.storage_dir("default"));
    let stderr = proc.stderr();
    assert!(
        stderr.contains(&format!(
            "Warning: tunnel check: {endpoint} does not reach this listener: the connection failed ("
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "Check:\n  - The destination endpoint includes the listener path (/audit-logs).\n  \
             - The tunnel forwards the HTTPS endpoint to the local listen address and port ({}).\n  \
             - The listener is running and bound to the expected --listen-address.\n  \
             - The Authorization header configuration matches on both sides.\n\
             Starting anyway (--check strict stops here instead, --check off skips the check).\n",
            state["listen_address"].as_str().unwrap()
        )),
        "{stderr}"
    );
    // stdout is the startup block, as without the check.
    let out = proc.wait_stdout("the startup block", |s| s.contains("events file:"));
    assert!(out.starts_with("Konnect Audit-Log Listener Started\n\nDestination\n"));
    assert!(!out.contains("tunnel"), "{out}");
    assert_eq!(w.snapshot().destinations.len(), 1);
    proc.interrupt();
    assert!(proc.wait_exit(Duration::from_secs(60)).success());
    w.assert_konnect_clean();
}

#[test]
fn the_environment_sets_the_mode_and_the_flag_wins() {
    let w = World::new();
    let closed = free_port();
    let endpoint = format!("http://127.0.0.1:{closed}/audit-logs");
    let args = [
        "listen",
        "--endpoint",
        &endpoint,
        "--listen-address",
        "127.0.0.1:0",
    ];
    let mut cmd = w.kongctl();
    cmd.args(args).env("KONGCTL_LISTEN_CHECK", "strict");
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("\nError: tunnel check: "),
        "{}",
        out.stderr
    );
    assert!(w.snapshot().requests.is_empty());

    let mut cmd = w.kongctl();
    cmd.args(args)
        .args(["--check", "off"])
        .env("KONGCTL_LISTEN_CHECK", "strict");
    let mut proc = Running::spawn(cmd);
    proc.wait_for_listener_state(&w.storage_dir("default"));
    proc.interrupt();
    assert!(proc.wait_exit(Duration::from_secs(60)).success());

    let mut cmd = w.kongctl();
    cmd.args(args).env("KONGCTL_LISTEN_CHECK", "loud");
    let out = Running::run_command(cmd);
    assert_eq!(
        out.stderr,
        "Error: invalid KONGCTL_LISTEN_CHECK \"loud\", allowed values are: off, warn, strict\n\n\
         Run 'kongctl listen --help' for usage\n"
    );
}

#[test]
fn off_sends_no_probe() {
    let w = World::new();
    let (other, accepted) = counting_other_server();
    let mut proc = Running::spawn(listen_cmd(
        &w,
        &format!("http://127.0.0.1:{other}/audit-logs"),
        0,
        "off",
    ));
    proc.wait_for_listener_state(&w.storage_dir("default"));
    assert!(!proc.stderr().contains("tunnel check"), "{}", proc.stderr());
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "a probe was sent");
    proc.interrupt();
    assert!(proc.wait_exit(Duration::from_secs(60)).success());
}

#[test]
fn strict_gives_up_on_an_endpoint_that_never_answers_after_the_probe_timeout() {
    let w = World::new();
    let silent = silent_server();
    let started = Instant::now();
    let stderr = strict_failure(
        &w,
        &format!("http://127.0.0.1:{silent}/audit-logs"),
        free_port(),
    );
    let took = started.elapsed();
    assert!(
        stderr.contains("does not reach this listener: no answer within 3s"),
        "{stderr}"
    );
    // Bounded by the 3 s probe timeout (plus process start on a busy
    // machine), not by the 5 s Konnect timeout or a TCP timeout.
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(15),
        "took {took:?}"
    );
}

/// The shape the other test files use (an emulator tunnel host, which
/// resolves only inside the emulator, so the probe cannot reach the
/// listener), under the default: the listener warns that the name does not
/// resolve, prints the same stdout as with `--check off`, and serves.
#[test]
fn the_default_warns_about_an_unresolvable_tunnel_host_and_changes_no_stdout() {
    let w = World::new();
    let banner = |l: &mut Listener| {
        let out = l
            .proc
            .wait_stdout("the startup block", |s| s.contains("events file:"));
        // Mask what differs between two runs: the destination's id and
        // name, the tunnel host, the address.
        out.lines()
            .map(|line| match line.split_once(':') {
                Some((k, _)) => format!("{k}: …"),
                None => line.to_string(),
            })
            .collect::<Vec<_>>()
    };

    let (cmd, host) = w.listener_command("listen", &["--check", "off"]);
    let mut off = w.start_listener_cmd(cmd, &host);
    let off_stdout = banner(&mut off);
    assert_eq!(off_stdout[0], "Konnect Audit-Log Listener Started");
    assert_eq!(off.proc.stderr(), "");
    off.stop_ok();

    let (mut cmd, host) = w.listener_command("listen", &[]);
    cmd.env_remove("KONGCTL_LISTEN_CHECK");
    let mut l = w.start_listener_cmd(cmd, &host);
    assert_eq!(banner(&mut l), off_stdout, "stdout changed under warn");
    let stderr = l.proc.stderr();
    assert!(
        stderr.starts_with(&format!(
            "Warning: tunnel check: https://{host}/audit-logs does not reach this listener: \
             the host name does not resolve ("
        )),
        "{stderr}"
    );
    // It serves as before: the emulator's deliveries arrive.
    w.sim.trigger("us", 3);
    eventually("3 records stored", || {
        read_lines(&w.events_file()).len() == 3
    });
    l.stop_ok();
    w.assert_konnect_clean();
}

#[test]
fn a_detached_listener_shows_the_warning_through_its_parent() {
    let w = World::new();
    let closed = free_port();
    let endpoint = format!("http://127.0.0.1:{closed}/audit-logs");
    let out = w.run(&[
        "listen",
        "--check",
        "warn",
        "--endpoint",
        &endpoint,
        "--listen-address",
        "127.0.0.1:0",
        "--authorization",
        "Bearer test-secret",
        "--detach",
    ]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let _guard = PidGuard(detached_pid(&out.stdout));
    assert!(
        out.stderr.contains(&format!(
            "Warning: tunnel check: {endpoint} does not reach this listener: the connection failed ("
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout
            .starts_with("Detached Konnect audit-log listener started.\n"),
        "{}",
        out.stdout
    );
    let stop = w.run(&["ps", "stop", "--all"]);
    assert_eq!(stop.code(), Some(0), "{}\n{}", stop.stdout, stop.stderr);
    w.assert_konnect_clean();
}
