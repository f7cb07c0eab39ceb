//! File safety over a whole session (listen, tail, a failed start, detach,
//! ps, ps stop), run with umask 000 so that only the modes kongctl sets
//! explicitly count: directories 0700, files 0600, no secret in any file,
//! log (at trace level) or output, nothing outside the config directory,
//! and state files that are valid JSON whenever they are read.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use konnect_sim::{Fault, SimConfig};

/// The Konnect token of this test's emulator.
const PAT: &str = "kpat_FILESxSECRETx0123456789abcdefghijklmnopqrstuv";
/// The listener's authorization value, and its token alone (in case
/// something logs the value split).
const AUTH: &str = "Bearer authz-SECRET-5b1d7e0c2a94";
const AUTH_TOKEN: &str = "authz-SECRET-5b1d7e0c2a94";

fn world() -> World {
    World::with_config(SimConfig {
        pats: vec![PAT.to_string()],
        ..SimConfig::for_tests()
    })
}

/// Lets every file and directory be created with the mode kongctl asks
/// for, unmasked.
fn umask_000(cmd: &mut Command) -> &mut Command {
    // SAFETY: umask is async-signal-safe and touches only this child.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::stat::umask(nix::sys::stat::Mode::empty());
            Ok(())
        })
    }
}

/// `kongctl` at trace level with umask 000; the PAT in the environment.
fn kongctl(w: &World) -> Command {
    let mut cmd = w.kongctl();
    umask_000(&mut cmd).args(["--log-level", "trace"]);
    cmd
}

/// A `listen`/`tail` command whose authorization comes from the
/// environment, on a fresh tunnel host.
fn listener_cmd(w: &World, verb: &str) -> (Command, String) {
    let host = w.tunnel_host();
    let mut cmd = kongctl(w);
    cmd.env("KONGCTL_LISTEN_AUTHORIZATION", AUTH).args([
        verb,
        "--endpoint",
        &format!("https://{host}/audit-logs"),
        "--listen-address",
        "127.0.0.1:0",
    ]);
    (cmd, host)
}

fn start(w: &World, cmd: Command, host: &str) -> Listener {
    w.start_listener_cmd(cmd, host)
}

fn cmdline(pid: i32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap()).into_owned()
}

/// Every file and directory under `root` (not `root` itself).
fn walk(root: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                todo.push(path.clone());
            }
            out.push((path, meta));
        }
    }
    out
}

/// Modes that are not 0700 (directories) or 0600 (files), and anything
/// else (symlinks, sockets).
fn wrong_modes(root: &Path) -> Vec<String> {
    walk(root)
        .into_iter()
        .filter_map(|(path, meta)| {
            let mode = meta.permissions().mode() & 0o7777;
            let want = if meta.is_dir() {
                0o700
            } else if meta.is_file() {
                0o600
            } else {
                return Some(format!("{}: not a file or directory", path.display()));
            };
            (mode != want).then(|| format!("{}: {mode:04o}, want {want:04o}", path.display()))
        })
        .collect()
}

/// Where a secret shows up in `text`: `(secret name, context)`.
fn secrets_in(text: &[u8]) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    for (name, secret) in [("PAT", PAT), ("authorization", AUTH_TOKEN)] {
        if let Some(at) = text
            .windows(secret.len())
            .position(|w| w == secret.as_bytes())
        {
            let from = at.saturating_sub(80);
            let to = (at + secret.len() + 40).min(text.len());
            found.push((name, String::from_utf8_lossy(&text[from..to]).into_owned()));
        }
    }
    found
}

/// What a session leaves for the checks.
struct Session {
    /// Every command's stdout and stderr, labelled.
    outputs: Vec<(String, String)>,
    /// Command lines of the listeners while they ran, labelled.
    cmdlines: Vec<(String, String)>,
    /// Wrong modes seen while the detached listener was running.
    modes_while_running: Vec<String>,
}

/// listen (secrets from the environment, events delivered, a refused
/// request), tail, a start that Konnect refuses, a detached listener given
/// its secrets as flags, ps, ps stop: all at trace level, umask 000.
fn session(w: &World) -> Session {
    let mut s = Session {
        outputs: Vec::new(),
        cmdlines: Vec::new(),
        modes_while_running: Vec::new(),
    };

    let (cmd, host) = listener_cmd(w, "listen");
    let mut l = start(w, cmd, &host);
    s.cmdlines.push(("listen".into(), cmdline(l.proc.pid())));
    assert!(w.sim.trigger("us", 60).all_delivered());
    let refused = post(
        l.addr,
        "/audit-logs",
        &[("Authorization", "Bearer nope")],
        b"x",
    );
    assert_eq!(refused, 401);
    l.stop_ok();
    s.outputs
        .push(("listen".into(), l.proc.stdout() + &l.proc.stderr()));

    let (cmd, host) = listener_cmd(w, "tail");
    let mut l = start(w, cmd, &host);
    s.cmdlines.push(("tail".into(), cmdline(l.proc.pid())));
    assert!(w.sim.trigger("us", 10).all_delivered());
    l.proc
        .wait_stdout("10 records", |o| o.lines().count() >= 10);
    l.stop_ok();
    s.outputs
        .push(("tail".into(), l.proc.stdout() + &l.proc.stderr()));

    // Konnect refuses the token: the error shows the request, not the token.
    w.sim
        .inject_fault(Fault::status(Some("GET"), "/v2/audit-log-webhook", 1, 401));
    let (cmd, _) = listener_cmd(w, "listen");
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    s.outputs
        .push(("refused start".into(), out.stdout + &out.stderr));

    // Detached, secrets given as flags (the child must not carry them in
    // its argv).
    let host = w.tunnel_host();
    let mut cmd = kongctl(w);
    cmd.env_remove("KONGCTL_DEFAULT_KONNECT_PAT").args([
        "listen",
        "--endpoint",
        &format!("https://{host}/audit-logs"),
        "--listen-address",
        "127.0.0.1:0",
        "--detach",
        "--pat",
        PAT,
        "--authorization",
        AUTH,
    ]);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let pid = detached_pid(&out.stdout);
    let _guard = PidGuard(pid);
    s.outputs
        .push(("listen --detach".into(), out.stdout + &out.stderr));
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.config_dir().join(format!("processes/{pid}.json"))).unwrap(),
    )
    .unwrap();
    w.sim.add_tunnel(
        &host,
        record["listen_address"].as_str().unwrap().parse().unwrap(),
    );
    s.cmdlines.push(("detached".into(), cmdline(pid)));
    assert!(w.sim.trigger("us", 10).all_delivered());
    s.modes_while_running = wrong_modes(&w.config_dir());
    for args in [&["ps"][..], &["ps", "-o", "json"]] {
        let mut cmd = kongctl(w);
        cmd.args(args);
        let out = Running::run_command(cmd);
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
        s.outputs.push((args.join(" "), out.stdout + &out.stderr));
    }
    let mut cmd = kongctl(w);
    cmd.args(["ps", "stop", &pid.to_string()]);
    let out = Running::run_command(cmd);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(!alive(pid), "the detached listener stopped");
    s.outputs.push(("ps stop".into(), out.stdout + &out.stderr));
    w.assert_konnect_clean();
    s
}

#[test]
fn every_directory_is_0700_and_every_file_0600_even_with_umask_000() {
    let w = world();
    let s = session(&w);
    assert!(
        s.modes_while_running.is_empty(),
        "while a detached listener ran:\n{}",
        s.modes_while_running.join("\n")
    );
    let wrong = wrong_modes(&w.config_dir());
    assert!(wrong.is_empty(), "after the session:\n{}", wrong.join("\n"));
    let mode = std::fs::metadata(w.config_dir()).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o700, "the config directory itself");
    // The session did create what it should have.
    for path in [
        "audit-logs/default/events.jsonl",
        "audit-logs/default/listener.json",
        "audit-logs/default/destination.json",
        "logs/kongctl.log",
    ] {
        assert!(w.config_dir().join(path).is_file(), "{path} exists");
    }
}

#[test]
fn no_secret_in_files_logs_output_or_command_lines() {
    let w = world();
    let s = session(&w);
    let log = std::fs::read(w.config_dir().join("logs/kongctl.log")).unwrap();
    assert!(
        log.len() > 10_000,
        "the trace log has content to search ({} bytes)",
        log.len()
    );
    let mut leaks = Vec::new();
    for (path, meta) in walk(w.dir.path()) {
        if meta.is_file() {
            for (name, context) in secrets_in(&std::fs::read(&path).unwrap()) {
                leaks.push(format!("{name} in {}: …{context}…", path.display()));
            }
        }
    }
    for (label, text) in s.outputs.iter().chain(&s.cmdlines) {
        for (name, context) in secrets_in(text.as_bytes()) {
            leaks.push(format!("{name} in {label}: …{context}…"));
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    // The checks looked at the right things.
    assert_eq!(s.cmdlines.len(), 3);
    assert!(s.cmdlines[2].1.contains("listen"), "{:?}", s.cmdlines[2]);
    assert!(
        s.outputs
            .iter()
            .any(|(l, o)| l == "refused start" && o.contains("status 401 Unauthorized")),
        "{:?}",
        s.outputs
    );
}

#[test]
fn nothing_is_written_outside_the_config_dir() {
    let w = world();
    session(&w);
    let top: Vec<String> = std::fs::read_dir(w.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, vec!["kongctl".to_string()], "HOME holds only kongctl/");
    let config: Vec<String> = std::fs::read_dir(w.config_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut config = config;
    config.sort();
    assert_eq!(
        config,
        ["audit-logs", "logs", "processes"],
        "kongctl/ holds"
    );
}

#[test]
fn state_files_are_valid_json_whenever_they_are_read() {
    let w = world();
    let dir = w.storage_dir("default");
    let stop_reading = Arc::new(AtomicBool::new(false));
    // Reads both state files in a loop from before the start to after the
    // stop: once a file exists it must always exist and parse.
    let reader = {
        let (dir, stop_reading) = (dir.clone(), stop_reading.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            let mut counts = std::collections::BTreeSet::new();
            let mut statuses = std::collections::BTreeSet::new();
            let mut seen = [false, false];
            while !stop_reading.load(Ordering::SeqCst) {
                for (i, name) in ["listener.json", "destination.json"].iter().enumerate() {
                    let bytes = match std::fs::read(dir.join(name)) {
                        Ok(b) => b,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !seen[i] => {
                            continue;
                        }
                        Err(e) => panic!("{name} unreadable after it existed: {e}"),
                    };
                    seen[i] = true;
                    reads += 1;
                    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                        panic!(
                            "{name} is not JSON ({e}): {:?}",
                            String::from_utf8_lossy(&bytes)
                        )
                    });
                    match i {
                        0 => counts.insert(v["records_received"].as_u64().unwrap()),
                        _ => statuses.insert(v["status"].as_str().unwrap().to_string()),
                    };
                }
            }
            (reads, counts, statuses)
        })
    };
    let (cmd, host) = listener_cmd(&w, "listen");
    let mut l = start(&w, cmd, &host);
    // Events flow for long enough to refresh listener.json's counters
    // (every 2 s) a few times.
    for _ in 0..6 {
        assert!(w.sim.trigger("us", 20).all_delivered());
        std::thread::sleep(Duration::from_millis(1000));
    }
    l.stop_ok();
    stop_reading.store(true, Ordering::SeqCst);
    let (reads, counts, statuses) = reader.join().expect("every read parsed");
    assert!(
        counts.len() >= 3,
        "saw listener.json counters {counts:?} in {reads} reads: want several rewrites"
    );
    assert_eq!(counts.last(), Some(&120));
    assert!(
        statuses.contains("active") && statuses.contains("deleted"),
        "saw destination.json statuses {statuses:?}"
    );
}
