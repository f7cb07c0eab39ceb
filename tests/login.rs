//! Authentication with the token file of the original's `kongctl login`
//! (`<config dir>/.<profile>-konnect-token.json`) instead of a PAT: used as
//! is while valid, renewed through Konnect's refresh endpoint (and saved)
//! when expired or about to, also in the middle of a run.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// Writes the profile's token file as the original's `kongctl login` does
/// (`received_at` in local time with an offset) and returns its path.
fn write_token_file(w: &World, access: &str, refresh: &str, expires_in: u64) -> PathBuf {
    let path = w.config_dir().join(".default-konnect-token.json");
    std::fs::create_dir_all(w.config_dir()).unwrap();
    let received_at = jiff::Timestamp::now().display_with_offset(jiff::tz::offset(-8));
    let file = json!({
        "token": {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "scope": "",
        },
        "received_at": received_at.to_string(),
    });
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn read_json(path: &PathBuf) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `listener_command` without any PAT in the environment.
fn without_pat(w: &World) -> (Command, String) {
    let (mut cmd, host) = w.listener_command("listen", &[]);
    cmd.env_remove("KONGCTL_DEFAULT_KONNECT_PAT");
    (cmd, host)
}

fn stop_clean(w: &World, l: &mut Listener) {
    l.stop_ok();
    w.assert_konnect_clean();
}

#[test]
fn a_valid_login_token_is_used_as_is() {
    let w = World::new();
    let grant = w.sim.issue_login(Duration::from_secs(3600));
    let path = write_token_file(&w, &grant.access_token, &grant.refresh_token, 3600);
    let before = std::fs::read(&path).unwrap();

    let (cmd, host) = without_pat(&w);
    let mut l = w.start_listener_cmd(cmd, &host);
    w.sim.trigger("us", 5);
    let stored = std::fs::read_to_string(w.events_file()).unwrap();
    assert_eq!(stored.lines().count(), 5, "{stored}");
    stop_clean(&w, &mut l);

    assert_eq!(w.sim.login_refreshes(), 0);
    assert_eq!(w.calls("POST", "/kauth/"), 0);
    assert_eq!(std::fs::read(&path).unwrap(), before, "file rewritten");
    let output = format!("{}{}", l.proc.stdout(), l.proc.stderr());
    assert!(!output.contains(&grant.access_token));
}

#[test]
fn an_expired_login_token_is_renewed_and_saved_before_the_first_call() {
    let w = World::new();
    let grant = w.sim.issue_login(Duration::ZERO);
    let path = write_token_file(&w, &grant.access_token, &grant.refresh_token, 0);

    let (cmd, host) = without_pat(&w);
    let mut l = w.start_listener_cmd(cmd, &host);
    assert_eq!(w.sim.login_refreshes(), 1);
    let requests = w.snapshot().requests;
    let first_refresh = requests
        .iter()
        .position(|r| r.path == "/kauth/api/v1/refresh")
        .unwrap();
    assert_eq!(requests[first_refresh].status, 200);
    assert!(
        requests[..first_refresh].iter().all(|r| r.status != 401),
        "a call went out with the expired token: {requests:?}"
    );

    // Saved in the original's shape, 0600, with the new pair.
    let saved = read_json(&path);
    let token = &saved["token"];
    assert_ne!(token["access_token"], grant.access_token.as_str());
    assert_ne!(token["refresh_token"], grant.refresh_token.as_str());
    assert_eq!(token["token_type"], "Bearer");
    let expires_in = token["expires_in"].as_i64().unwrap();
    assert!((3500..=3600).contains(&expires_in), "{saved}");
    assert!(
        saved["received_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok(),
        "{saved}"
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    w.sim.trigger("us", 3);
    stop_clean(&w, &mut l);
    assert_eq!(w.sim.login_refreshes(), 1, "renewed once only");
}

#[test]
fn a_token_that_expires_while_listening_is_renewed_for_cleanup() {
    let w = World::new();
    // Good for the start (more than the 60 s margin), not for the cleanup
    // a few seconds later (less than 60 s left).
    let grant = w.sim.issue_login(Duration::from_secs(63));
    let written = Instant::now();
    let path = write_token_file(&w, &grant.access_token, &grant.refresh_token, 63);

    let (cmd, host) = without_pat(&w);
    let mut l = w.start_listener_cmd(cmd, &host);
    assert_eq!(w.sim.login_refreshes(), 0);
    // Time passing is the point: nothing but the clock moves the token's
    // remaining life (63 s - 4 s = 59 s) under the 60 s renewal margin.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(written.elapsed()));
    stop_clean(&w, &mut l);
    assert_eq!(w.sim.login_refreshes(), 1);
    assert_ne!(
        read_json(&path)["token"]["access_token"],
        grant.access_token.as_str()
    );
}

#[test]
fn a_refused_renewal_fails_before_any_remote_change() {
    let w = World::new();
    let grant = w.sim.issue_login(Duration::ZERO);
    let path = write_token_file(&w, &grant.access_token, "krt_revoked", 0);

    let (cmd, _host) = without_pat(&w);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("cannot use the login token in {}", path.display()))
            && out.stderr.contains("refused to renew it"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("krt_revoked"), "{}", out.stderr);
    assert_eq!(w.calls("POST", "/v3/audit-log-destinations"), 0);
    assert_eq!(w.calls("PATCH", "/v3/audit-log-webhook"), 0);
    w.assert_konnect_clean();
}

#[test]
fn a_pat_beats_the_login_token_file_and_neither_is_an_error_naming_both() {
    let w = World::new();
    let path = w.config_dir().join(".default-konnect-token.json");
    std::fs::create_dir_all(w.config_dir()).unwrap();
    std::fs::write(&path, "not a token file").unwrap();
    let (cmd, host) = w.listener_command("listen", &[]);
    let mut l = w.start_listener_cmd(cmd, &host);
    stop_clean(&w, &mut l);

    std::fs::remove_file(&path).unwrap();
    let calls_before = w.snapshot().requests.len();
    let (cmd, _host) = without_pat(&w);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("authentication token not available.")
            && out.stderr.contains("KONGCTL_DEFAULT_KONNECT_PAT")
            && out.stderr.contains(".default-konnect-token.json"),
        "{}",
        out.stderr
    );
    assert_eq!(w.snapshot().requests.len(), calls_before, "a Konnect call");
}

#[test]
fn a_detached_listener_renews_the_login_token_itself() {
    let w = World::new();
    let grant = w.sim.issue_login(Duration::ZERO);
    let path = write_token_file(&w, &grant.access_token, &grant.refresh_token, 0);
    let host = w.tunnel_host();
    let mut cmd = w.kongctl();
    cmd.env_remove("KONGCTL_DEFAULT_KONNECT_PAT").args([
        "listen",
        "--endpoint",
        &format!("https://{host}/audit-logs"),
        "--listen-address",
        "127.0.0.1:0",
        "--detach",
    ]);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let pid = detached_pid(&out.stdout);
    let _guard = PidGuard(pid);

    // The child read the file, renewed it and configured Konnect before
    // the parent reported it started.
    assert_eq!(w.sim.login_refreshes(), 1);
    assert!(w.snapshot().webhooks["us"].enabled);
    assert_ne!(
        read_json(&path)["token"]["access_token"],
        grant.access_token.as_str()
    );

    let stop = w.run(&["ps", "stop", &pid.to_string()]);
    assert_eq!(stop.code(), Some(0), "{}\n{}", stop.stdout, stop.stderr);
    assert!(!alive(pid));
    w.assert_konnect_clean();
    assert_eq!(w.sim.login_refreshes(), 1, "the renewed token lasted");
}
