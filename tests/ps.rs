//! `listen --detach`, `ps` and `ps stop` end to end: real detached
//! listeners against the emulator, and records of other or dead processes.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key:?} in {out}"))
        .trim()
}

fn detach(w: &World, extra: &[&str]) -> (Output, String) {
    let host = w.tunnel_host();
    let endpoint = format!("https://{host}/audit-logs");
    let mut args = vec![
        "listen",
        "--endpoint",
        &endpoint,
        "--listen-address",
        "127.0.0.1:0",
        "--detach",
    ];
    args.extend_from_slice(extra);
    (w.run(&args), host)
}

#[test]
fn detached_listener_runs_is_listed_and_stops_with_cleanup() {
    let w = World::new();
    let (out, host) = detach(
        &w,
        &[
            "--authorization",
            "Bearer top-secret-value",
            "--pat",
            &w.sim.pat(),
        ],
    );
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .starts_with("Detached Konnect audit-log listener started.\n  pid: "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .ends_with("Use the log file to inspect listener startup and runtime details.\n")
    );
    let pid: i32 = field(&out.stdout, "pid:").parse().unwrap();
    let _guard = PidGuard(pid);
    let log_file = PathBuf::from(field(&out.stdout, "log file:"));
    let record_file = PathBuf::from(field(&out.stdout, "process record:"));
    assert_eq!(
        log_file,
        w.config_dir()
            .join(format!("logs/kongctl-listener-{pid}.log"))
    );
    assert_eq!(
        record_file,
        w.config_dir().join(format!("processes/{pid}.json"))
    );
    assert!(alive(pid));

    // Ready means ready: Konnect is configured when the parent returns.
    let s = w.snapshot();
    assert!(s.webhooks["us"].enabled);
    assert_eq!(s.destinations.len(), 1);

    // No secret in the child's argv or in its record.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(!cmdline.contains("top-secret-value"), "{cmdline:?}");
    assert!(!cmdline.contains(&w.sim.pat()), "{cmdline:?}");
    assert!(!cmdline.contains("--detach"), "{cmdline:?}");
    let record_text = std::fs::read_to_string(&record_file).unwrap();
    assert!(!record_text.contains("top-secret-value") && !record_text.contains(&w.sim.pat()));
    let record: Value = serde_json::from_str(&record_text).unwrap();
    assert_eq!(record["pid"], pid);
    assert_eq!(record["kind"], "konnect.audit-logs.listen");
    assert_eq!(record["profile"], "default");
    assert!(record["start_time_ticks"].as_u64().unwrap() > 0);
    assert!(
        record["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "<redacted>")
    );
    let addr = record["listen_address"].as_str().unwrap().to_string();

    // Events reach the detached listener's file.
    w.sim.add_tunnel(&host, addr.parse().unwrap());
    let report = w.sim.trigger("us", 30);
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(read_lines(&w.events_file()), w.delivered_records());

    // ps, in all three formats.
    let text = w.run(&["ps"]);
    assert_eq!(text.code(), Some(0));
    let mut lines = text.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["PID", "STATUS", "KIND", "PROFILE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row,
        [
            pid.to_string().as_str(),
            "running",
            "konnect.audit-logs.listen",
            "default"
        ]
    );
    let json = w.run(&["ps", "-o", "json"]);
    let listed: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(listed[0]["pid"], pid);
    assert_eq!(listed[0]["status"], "running");
    assert_eq!(listed[0]["record_file"], record_file.to_str().unwrap());
    let yaml = w.run(&["ps", "--output", "yaml"]);
    assert!(yaml.stdout.contains("status: running"), "{}", yaml.stdout);
    assert!(
        yaml.stdout.contains(&format!("pid: {pid}")),
        "{}",
        yaml.stdout
    );

    // Stop: SIGTERM, wait until gone (its cleanup done), record removed.
    let stop = w.run(&["ps", "stop", "--all"]);
    assert_eq!(stop.code(), Some(0), "{}\n{}", stop.stdout, stop.stderr);
    let row: Vec<&str> = stop
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row, [pid.to_string().as_str(), "stopped", "true"]);
    assert!(!alive(pid));
    assert!(!record_file.exists());
    w.assert_konnect_clean();
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(
        log.contains("Listener stopped. Deleted audit-log destination"),
        "{log}"
    );
    assert!(!log.contains("top-secret-value"));
    assert_eq!(
        w.run(&["ps"]).stdout,
        "No detached kongctl processes found.\n"
    );
}

#[test]
fn detach_failure_is_reported_by_the_parent_and_leaves_nothing() {
    let w = World::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = w.run(&[
        "listen",
        "--endpoint",
        "https://h.test/audit-logs",
        "--listen-address",
        &addr,
        "-d",
    ]);
    assert_eq!(out.code(), Some(1), "{}", out.stdout);
    assert!(
        out.stderr.starts_with(&format!(
            "Error: listen tcp {addr}: bind: address already in use"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "nothing claims success: {}",
        out.stdout
    );
    assert!(
        w.snapshot().requests.is_empty(),
        "nothing happened in Konnect"
    );
    // The failed child's record and log stay for debugging; ps shows it
    // exited, and stop prunes it.
    let listed: Value = serde_json::from_str(&w.run(&["ps", "-o", "json"]).stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let pid = listed[0]["pid"].as_i64().unwrap() as i32;
    eventually("child gone", || !alive(pid));
    let listed: Value = serde_json::from_str(&w.run(&["ps", "-o", "json"]).stdout).unwrap();
    assert_eq!(listed[0]["status"], "exited");
    assert!(PathBuf::from(listed[0]["log_file"].as_str().unwrap()).exists());
    let stop = w.run(&["ps", "stop", &pid.to_string()]);
    assert_eq!(stop.code(), Some(0));
    assert!(stop.stdout.contains("pruned"), "{}", stop.stdout);
}

fn write_record(w: &World, pid: i32, start_time_ticks: u64) -> PathBuf {
    let dir = w.config_dir().join("processes");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{pid}.json"));
    let record = serde_json::json!({
        "pid": pid,
        "kind": "konnect.audit-logs.listen",
        "profile": "default",
        "created_at": "2026-01-01T00:00:00Z",
        "args": ["listen"],
        "start_time_ticks": start_time_ticks,
    });
    std::fs::write(&path, record.to_string()).unwrap();
    path
}

#[test]
fn a_reused_pid_is_stale_and_never_signalled() {
    let w = World::new();
    let mut victim = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = victim.id() as i32;
    // A record for this pid from "another process": start time differs.
    let record = write_record(&w, pid, 1);
    let listed: Value = serde_json::from_str(&w.run(&["ps", "-o", "json"]).stdout).unwrap();
    assert_eq!(listed[0]["status"], "stale");
    let stop = w.run(&["ps", "stop", &pid.to_string()]);
    assert_eq!(stop.code(), Some(0), "{}", stop.stderr);
    assert!(stop.stdout.contains("pruned"), "{}", stop.stdout);
    assert!(!record.exists());
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        victim.try_wait().unwrap().is_none(),
        "the unrelated process was not signalled"
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn a_dead_pid_is_exited_and_pruned() {
    let w = World::new();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    child.wait().unwrap();
    let record = write_record(&w, pid, 12345);
    let text = w.run(&["ps"]).stdout;
    assert!(text.lines().nth(1).unwrap().contains("exited"), "{text}");
    let stop = w.run(&["ps", "stop", "--all"]);
    assert_eq!(stop.code(), Some(0));
    assert!(stop.stdout.contains("pruned"), "{}", stop.stdout);
    assert!(!record.exists());
}

#[test]
fn ps_stop_argument_errors_match_the_original() {
    let w = World::new();
    for (args, msg) in [
        (
            &["ps", "stop", "123", "--all"][..],
            "do not provide a PID when using --all",
        ),
        (&["ps", "stop"], "provide a process PID or use --all"),
        (&["ps", "stop", "abc"], "invalid PID \"abc\""),
        (
            &["ps", "stop", "4194000"],
            "no detached process record found for PID 4194000",
        ),
    ] {
        let out = w.run(args);
        assert_eq!(out.code(), Some(1), "{args:?}");
        assert!(
            out.stderr.starts_with(&format!("Error: {msg}")),
            "{args:?}: {}",
            out.stderr
        );
    }
    let out = w.run(&["ps", "extra"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .starts_with("Error: the ps command does not accept positional arguments")
    );
    let out = w.run(&["ps", "stop", "--all"]);
    assert_eq!(out.code(), Some(0));
    assert_eq!(out.stdout, "No detached kongctl processes matched.\n");
}

/// A record for a pid that has exited (`exited` in `ps`).
fn exited_record(w: &World) -> (i32, PathBuf) {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    child.wait().unwrap();
    (pid, write_record(w, pid, 12345))
}

#[test]
fn ps_columns_print_exactly_the_selected_fields() {
    let w = World::new();
    // No records: the header line alone, as the original.
    let out = w.run(&["ps", "--columns", "PID=.pid,STATUS=.status"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "PID  STATUS\n");

    let (pid, _record) = exited_record(&w);
    let out = w.run(&["ps", "--columns", "PID=.pid,STATUS=.status"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let width = pid.to_string().len().max(3);
    assert_eq!(
        out.stdout,
        format!("{:width$}  STATUS\n{pid:<width$}  exited\n", "PID")
    );

    // Repeated flags add up; an unknown field is an empty cell; string
    // slices and the record path (any field `-o json` shows) work.
    let out = w.run(&[
        "ps",
        "--columns",
        "DAY=.created_at[:10],NOPE=.no_such_field",
        "--columns",
        "PROFILE=.profile, FILE=.record_file",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let file = w.config_dir().join(format!("processes/{pid}.json"));
    let file = file.to_str().unwrap();
    // Cells longer than 40 columns are cut with `…`.
    let file = if file.chars().count() > 40 {
        format!("{}…", file.chars().take(39).collect::<String>())
    } else {
        file.to_string()
    };
    assert_eq!(
        out.stdout,
        format!("DAY         NOPE  PROFILE  FILE\n2026-01-01        default  {file}\n")
    );
}

#[test]
fn ps_columns_are_text_only_and_checked_like_the_original() {
    let w = World::new();
    let (_, record) = exited_record(&w);
    for (args, command) in [
        (
            &["ps", "-o", "json", "--columns", "PID=.pid"][..],
            "kongctl ps",
        ),
        (
            &[
                "ps",
                "stop",
                "--all",
                "--output",
                "yaml",
                "--columns",
                "PID=.pid",
            ],
            "kongctl ps stop",
        ),
        // Before the stop targets, as in the original.
        (
            &["ps", "--columns", "PID=.pid", "stop", "-o", "json"],
            "kongctl ps stop",
        ),
    ] {
        let out = w.run(args);
        assert_eq!(out.code(), Some(1), "{args:?}");
        assert_eq!(out.stdout, "", "{args:?}");
        assert_eq!(
            out.stderr,
            format!(
                "Error: --columns is only supported with --output text\n\n\
                 Run '{command} --help' for usage\n"
            ),
            "{args:?}"
        );
    }
    assert!(record.exists(), "nothing was pruned");

    for (spec, message) in [
        (
            "PID=pid",
            r#"invalid path for column "PID": path must start with '.'"#,
        ),
        (
            "PID",
            r#"invalid --columns value "PID": expected HEADER=.field"#,
        ),
        ("PID=.pid,pid=.kind", r#"duplicate --columns header "pid""#),
        ("PID=.pid,", "invalid --columns value: empty column"),
    ] {
        let out = w.run(&["ps", "--columns", spec]);
        assert_eq!(out.code(), Some(1), "{spec}");
        assert_eq!(
            out.stderr,
            format!("Error: {message}\n\nRun 'kongctl ps --help' for usage\n"),
            "{spec}"
        );
    }
}

#[test]
fn ps_stop_columns_show_the_stop_result_fields() {
    let w = World::new();
    let (pid, record) = exited_record(&w);
    let out = w.run(&[
        "ps",
        "stop",
        "--all",
        "--columns",
        "PID=.pid,ACTION=.action,OK=.success,DETAIL=.detail,STATUS=.status",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let width = pid.to_string().len().max(3);
    assert_eq!(
        out.stdout,
        format!(
            "{:width$}  ACTION  OK    DETAIL                        STATUS\n\
             {pid:<width$}  pruned  true  removed stale process record  \n",
            "PID"
        )
    );
    assert!(!record.exists());
    // Nothing left to stop: the header line alone.
    let out = w.run(&["ps", "stop", "--all", "--columns", "PID=.pid"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "PID\n");
}
