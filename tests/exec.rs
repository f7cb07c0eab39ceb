//! `--on <RULE|FILTER> --exec <COMMAND>` end to end: the real listener
//! (foreground, `tail` and detached) against the emulator, with a script
//! as the command that leaves one file per run (the record it read on
//! stdin, the `KONGCTL_*` variables it saw, when it started and ended).
//!
//! The guarantees tested: each matching record's command runs once, and a
//! record that matches nothing runs nothing; a restart neither runs a
//! finished command again nor gives a new pair the history; a command past
//! `--exec-timeout` is killed with its process group while deliveries keep
//! their quick 202; a failing command is logged and the next records run;
//! after a SIGKILL every matching record's command runs at least once, and
//! exactly once for each record the pair's cursor file had saved as
//! finished (before its position, or in its `done` list) at the kill.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const AUTH: &str = "Bearer test-secret";

/// The command: `sh run.sh <dir>`, leaving `<id>.<pid>.start` (its pid),
/// `.stdin`, `.env` and, once done, `.done` in `<dir>`; it sleeps
/// `$EXEC_SLEEP` seconds first and exits 3 when its record holds
/// `fail-me`.
const SCRIPT: &str = r#"d="$1"
id=$(printf %s "$KONGCTL_RECORD_ID" | tr : _)
f="$d/$id.$$"
echo $$ > "$f.start"
cat > "$f.stdin"
env | grep '^KONGCTL_' | sort > "$f.env"
if grep -q fail-me "$f.stdin"; then echo "no luck for $id" >&2; exit 3; fi
if [ -n "$EXEC_SLEEP" ]; then sleep "$EXEC_SLEEP"; fi
: > "$f.done"
"#;

/// A webhook JSON authentication record: `LOCKED` (rules `locked` and
/// `failed-login`) or a successful login (no rule).
fn login(sig: &str, locked: bool) -> String {
    let (name, severity, success) = if locked {
        ("AUTHENTICATION_OUTCOME_LOCKED", 6, "false")
    } else {
        ("AUTHENTICATION_OUTCOME_SUCCESS", 0, "true")
    };
    json!({
        "cef_version": 0,
        "event_class_id": "AUTHENTICATION_TYPE_BASIC",
        "event_product": "Konnect",
        "event_ts": "2026-08-23T14:00:00Z",
        "event_vendor": "KongInc",
        "event_version": "1.0",
        "name": name,
        "org_id": "b065b594-6afc-4658-9101-5d9cf3f36b7b",
        "principal_id": "87655c36-8d63-48fe-9a1e-53b28dfbc19b",
        "severity": severity,
        "success": success,
        "sig": sig,
    })
    .to_string()
}

/// The same locked login as Konnect's CEF line.
fn locked_cef(sig: &str) -> String {
    format!(
        "2026-08-23T14:00:01Z konghq.com CEF:0|KongInc|Konnect|1.0|AUTHENTICATION_TYPE_BASIC|AUTHENTICATION_OUTCOME_LOCKED|6|rt=1 src=127.0.0.6 success=false org_id=b065b594-6afc-4658-9101-5d9cf3f36b7b principal_id=87655c36-8d63-48fe-9a1e-53b28dfbc19b sig={sig}"
    )
}

/// Posts `lines` as one delivery; returns the status and how long the
/// answer took.
fn deliver(addr: std::net::SocketAddr, lines: &[String]) -> (u16, Duration) {
    let body = lines.join("\n") + "\n";
    let started = Instant::now();
    let status = post(
        addr,
        "/audit-logs",
        &[("Authorization", AUTH)],
        body.as_bytes(),
    );
    (status, started.elapsed())
}

/// A directory the script writes into, and the script.
struct Runs {
    dir: PathBuf,
    script: PathBuf,
}

/// One run of the command.
#[derive(Debug)]
struct Run {
    pid: i32,
    stdin: String,
    env: BTreeMap<String, String>,
    done: bool,
}

impl Runs {
    fn new(w: &World, name: &str) -> Runs {
        let dir = w.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let script = w.dir.path().join("run.sh");
        std::fs::write(&script, SCRIPT).unwrap();
        Runs { dir, script }
    }

    /// The `--exec` value, with `EXEC_SLEEP` if given.
    fn command(&self, sleep: Option<&str>) -> String {
        let run = format!("sh {} {}", self.script.display(), self.dir.display());
        match sleep {
            Some(s) => format!("EXEC_SLEEP={s} {run}"),
            None => run,
        }
    }

    /// Every run so far, by record id (`seq:offset`).
    fn by_record(&self) -> BTreeMap<String, Vec<Run>> {
        let mut out: BTreeMap<String, Vec<Run>> = BTreeMap::new();
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let Some(stem) = name.strip_suffix(".start") else {
                continue;
            };
            let (id, pid) = stem.rsplit_once('.').unwrap();
            let read = |ext: &str| {
                std::fs::read_to_string(self.dir.join(format!("{stem}.{ext}"))).unwrap_or_default()
            };
            let env = read("env")
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            out.entry(id.replace('_', ":")).or_default().push(Run {
                pid: pid.parse().unwrap(),
                stdin: read("stdin"),
                env,
                done: self.dir.join(format!("{stem}.done")).exists(),
            });
        }
        out
    }

    fn count(&self, ext: &str) -> usize {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(ext)
            })
            .count()
    }

    fn wait_for(&self, ext: &str, n: usize) {
        eventually(
            &format!("{n} {ext} files in {}", self.dir.display()),
            || self.count(ext) >= n,
        );
    }

    /// Kills (SIGKILL) the process group of every run still alive: the
    /// commands a killed listener left behind.
    fn kill_leftovers(&self) {
        for runs in self.by_record().values() {
            for run in runs {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(run.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

impl Drop for Runs {
    fn drop(&mut self) {
        if self.dir.exists() {
            self.kill_leftovers();
        }
    }
}

/// `listener.json`'s `exec.pairs`.
fn exec_pairs(w: &World) -> Vec<Value> {
    let path = w.storage_dir("default").join("listener.json");
    let state: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    state["exec"]["pairs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The `exec-*.cursor` files of the default profile.
fn cursors(w: &World) -> BTreeSet<String> {
    std::fs::read_dir(w.storage_dir("default"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("exec-") && n.ends_with(".cursor"))
        .collect()
}

/// Whether any process is in process group `pgid`.
fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
}

#[test]
fn each_matching_record_runs_its_command_once_and_a_restart_runs_none_again() {
    let w = World::new();
    let locked = Runs::new(&w, "locked");
    let logins = Runs::new(&w, "logins");
    let (locked_cmd, logins_cmd) = (locked.command(None), logins.command(None));
    let pairs = [
        "--on",
        "locked",
        "--exec",
        &locked_cmd,
        "--on",
        r#".name == "AUTHENTICATION_OUTCOME_SUCCESS""#,
        "--exec",
        &logins_cmd,
    ];
    let mut l = w.start_listener("listen", &pairs);
    assert_eq!(exec_pairs(&w).len(), 2, "listener.json lists the pairs");

    let first = vec![login("a", true), login("b", false), locked_cef("c")];
    assert_eq!(deliver(l.addr, &first).0, 202);
    assert_eq!(deliver(l.addr, &[login("d", false)]).0, 202);
    assert_eq!(deliver(l.addr, &[login("e", true)]).0, 202);
    locked.wait_for(".done", 3);
    logins.wait_for(".done", 2);
    eventually("listener.json counts the runs", || {
        let p = exec_pairs(&w);
        p.len() == 2 && p[0]["ran"] == 3 && p[1]["ran"] == 2
    });
    l.stop_ok();

    let stored = read_lines(&w.events_file());
    assert_eq!(stored.len(), 5);
    let runs = locked.by_record();
    assert_eq!(runs.len(), 3, "{runs:#?}");
    let mut seen = Vec::new();
    for (id, runs) in &runs {
        assert_eq!(runs.len(), 1, "{id}: {runs:#?}");
        let run = &runs[0];
        assert!(run.done);
        // The record as stored, with its newline.
        let line = run.stdin.strip_suffix('\n').unwrap();
        assert!(stored.iter().any(|s| s == line), "{line}");
        seen.push(line.to_owned());
        assert_eq!(run.env["KONGCTL_RECORD_ID"], *id);
        assert_eq!(run.env["KONGCTL_ON"], "locked");
        assert_eq!(run.env["KONGCTL_RULE"], "locked");
        assert_eq!(run.env["KONGCTL_EVENT_TYPE"], "authentication");
        let format = if line.starts_with('{') { "json" } else { "cef" };
        assert_eq!(run.env["KONGCTL_RECORD_FORMAT"], format);
        assert!(run.env["KONGCTL_EVENT_TS"].starts_with("2026-08-23T14:00:0"));
        // Only ours: not the PAT or the base URL the listener was given.
        let names: Vec<&str> = run.env.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "KONGCTL_EVENT_TS",
                "KONGCTL_EVENT_TYPE",
                "KONGCTL_ON",
                "KONGCTL_RECORD_FORMAT",
                "KONGCTL_RECORD_ID",
                "KONGCTL_RULE"
            ]
        );
    }
    seen.sort();
    let mut want = vec![login("a", true), locked_cef("c"), login("e", true)];
    want.sort();
    assert_eq!(seen, want);
    let logins_runs = logins.by_record();
    assert_eq!(logins_runs.len(), 2);
    for runs in logins_runs.values() {
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].env["KONGCTL_RULE"], "");
        assert!(runs[0].stdin.contains("AUTHENTICATION_OUTCOME_SUCCESS"));
    }
    let pairs_state = exec_pairs(&w);
    assert_eq!(
        pairs_state[0],
        json!({"on": "locked", "command": locked_cmd, "pending": 0, "ran": 3, "failed": 0, "timed_out": 0})
    );
    assert_eq!(cursors(&w).len(), 2);

    // A restart with the first pair, and a new one: nothing runs again,
    // the new pair starts at the end, the dropped pair's cursor goes.
    let fresh = Runs::new(&w, "fresh");
    let fresh_cmd = fresh.command(None);
    let mut l = w.start_listener(
        "listen",
        &[
            "--on",
            "locked",
            "--exec",
            &locked_cmd,
            "--on",
            "all",
            "--exec",
            &fresh_cmd,
        ],
    );
    assert_eq!(cursors(&w).len(), 2, "the jq pair's cursor is removed");
    assert_eq!(deliver(l.addr, &[login("f", true)]).0, 202);
    locked.wait_for(".done", 4);
    fresh.wait_for(".done", 1);
    eventually("listener.json counts the runs", || {
        let p = exec_pairs(&w);
        p.len() == 2 && p[0]["ran"] == 1 && p[1]["ran"] == 1
    });
    l.stop_ok();
    assert_eq!(locked.count(".start"), 4);
    assert_eq!(fresh.count(".start"), 1);
    let fresh_runs = fresh.by_record();
    let run = &fresh_runs.values().next().unwrap()[0];
    assert_eq!(run.stdin, login("f", true) + "\n");
    assert_eq!(run.env["KONGCTL_ON"], "all");
}

#[test]
fn a_slow_command_is_killed_at_its_timeout_and_deliveries_stay_quick() {
    let w = World::new();
    let runs = Runs::new(&w, "slow");
    let cmd = runs.command(Some("5"));
    let mut l = w.start_listener(
        "tail",
        &[
            "--on",
            "locked",
            "--exec",
            &cmd,
            "--exec-timeout",
            "1s",
            "--exec-jobs",
            "1",
        ],
    );
    assert_eq!(deliver(l.addr, &[login("s1", true)]).0, 202);
    runs.wait_for(".start", 1);
    // While the first command sleeps (and the next ones queue up), each
    // delivery is answered at once.
    for sig in ["s2", "s3"] {
        let (status, took) = deliver(l.addr, &[login(sig, true), login("ok", false)]);
        assert_eq!(status, 202);
        assert!(took < Duration::from_millis(2500), "{sig}: {took:?}");
    }
    let err = l.proc.wait_stderr("three timeouts", |e| {
        e.matches("was killed (its process group) at --exec-timeout 1s")
            .count()
            >= 3
    });
    // tail printed every record, commands or not.
    l.proc
        .wait_stdout("the records", |o| o.lines().count() == 5);
    eventually("listener.json counts the timeouts", || {
        let p = exec_pairs(&w);
        p.len() == 1 && p[0]["timed_out"] == 3 && p[0]["pending"] == 0
    });
    let by_record = runs.by_record();
    assert_eq!(by_record.len(), 3);
    for runs in by_record.values() {
        assert_eq!(runs.len(), 1);
        assert!(!runs[0].done, "killed before it ended");
        assert!(
            !group_alive(runs[0].pid),
            "group {} still runs",
            runs[0].pid
        );
    }
    l.stop_ok();
    assert!(err.contains("Warning: --exec "), "{err}");
}

#[test]
fn a_failing_command_is_logged_and_the_next_records_still_run() {
    let w = World::new();
    let runs = Runs::new(&w, "failing");
    let cmd = runs.command(None);
    let log = w.dir.path().join("listener.log");
    let log_arg = log.to_str().unwrap();
    let mut l = w.start_listener(
        "listen",
        &[
            "--on",
            "locked",
            "--exec",
            &cmd,
            "--log-file",
            log_arg,
            "--log-level",
            "info",
        ],
    );
    assert_eq!(deliver(l.addr, &[login("fail-me", true)]).0, 202);
    assert_eq!(
        deliver(l.addr, &[login("fine-1", true), login("fine-2", true)]).0,
        202
    );
    runs.wait_for(".done", 2);
    let err = l
        .proc
        .wait_stderr("the failure", |e| e.contains("failed after"));
    eventually("listener.json counts the failure", || {
        let p = exec_pairs(&w);
        p.len() == 1 && p[0]["failed"] == 1 && p[0]["ran"] == 2
    });
    l.stop_ok();
    let line = err
        .lines()
        .find(|l| l.contains("failed after"))
        .unwrap()
        .to_owned();
    assert!(line.starts_with("Warning: --exec \"sh "), "{line}");
    assert!(line.contains("(--on \"locked\") failed after "), "{line}");
    assert!(
        line.contains(" ms: exit status 3; stderr: \"no luck for "),
        "{line}"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(log.matches("--exec command finished").count(), 2, "{log}");
    assert!(log.contains("exit status 3"), "{log}");
    assert_eq!(runs.count(".start"), 3);
}

#[test]
fn after_a_sigkill_every_matching_record_runs_and_saved_ones_not_again() {
    let w = World::new();
    let runs = Runs::new(&w, "crash");
    let cmd = runs.command(Some("0.5"));
    let args = ["--on", "locked", "--exec", &cmd, "--exec-jobs", "2"];
    let mut l = w.start_listener("listen", &args);
    let records: Vec<String> = (0..12)
        .flat_map(|i| {
            [
                login(&format!("k{i}"), true),
                login(&format!("o{i}"), false),
            ]
        })
        .collect();
    assert_eq!(deliver(l.addr, &records).0, 202);
    // Some finished, some not: kill it there.
    runs.wait_for(".done", 3);
    l.proc.signal(nix::sys::signal::Signal::SIGKILL);
    l.proc.wait_exit(PATIENCE);
    let finished_at_kill = runs.count(".done");
    assert!(finished_at_kill < 12, "killed too late: {finished_at_kill}");

    // What the cursor file says was finished, by record id.
    let cursor_files = cursors(&w);
    assert_eq!(cursor_files.len(), 1);
    let cursor: Value = serde_json::from_slice(
        &std::fs::read(w.storage_dir("default").join(cursor_files.first().unwrap())).unwrap(),
    )
    .unwrap();
    let saved_at = (
        cursor["seq"].as_u64().unwrap(),
        cursor["offset"].as_u64().unwrap(),
    );
    let saved_done: BTreeSet<(u64, u64)> = cursor["state"]["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["seq"].as_u64().unwrap(), p["offset"].as_u64().unwrap()))
        .collect();
    let saved_finished = |id: &str| {
        let (seq, offset) = id.split_once(':').unwrap();
        let at = (seq.parse().unwrap(), offset.parse().unwrap());
        at < saved_at || saved_done.contains(&at)
    };
    let before = runs.by_record();
    let saved: Vec<&String> = before.keys().filter(|id| saved_finished(id)).collect();
    assert!(
        !saved.is_empty(),
        "saved as finished: {saved:?}, cursor {cursor}"
    );

    // The next start runs the rest.
    let mut l = w.start_listener("listen", &args);
    eventually("every locked record's command finished", || {
        let by = runs.by_record();
        by.len() == 12 && by.values().all(|r| r.iter().any(|run| run.done))
    });
    eventually("nothing pending", || {
        let p = exec_pairs(&w);
        p.len() == 1 && p[0]["pending"] == 0
    });
    l.stop_ok();
    let after = runs.by_record();
    assert_eq!(after.len(), 12);
    for (id, list) in &after {
        assert!(list.iter().any(|r| r.done), "{id} never finished");
        if saved_finished(id) {
            assert_eq!(list.len(), 1, "{id} ran again though saved: {list:#?}");
        }
    }
    // Stored records that match nothing ran nothing.
    let stored = read_lines(&w.events_file());
    assert_eq!(stored.len(), 24);
    for list in after.values() {
        assert!(list[0].stdin.contains("AUTHENTICATION_OUTCOME_LOCKED"));
    }
}

#[test]
fn a_detached_listener_runs_commands_without_its_secrets() {
    let w = World::new();
    let runs = Runs::new(&w, "detached");
    let cmd = runs.command(None);
    let (listen, _) = w.listener_command("listen", &["--detach", "--on", "locked", "--exec", &cmd]);
    let out = Running::run_command(listen);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let pid = detached_pid(&out.stdout);
    let _guard = PidGuard(pid);
    let state_path = w.storage_dir("default").join("listener.json");
    let state: Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    let addr: std::net::SocketAddr = state["listen_address"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        deliver(addr, &[login("d1", true), login("d2", false)]).0,
        202
    );
    runs.wait_for(".done", 1);
    let by_record = runs.by_record();
    let run = &by_record.values().next().unwrap()[0];
    assert_eq!(run.stdin, login("d1", true) + "\n");
    // The child got the authorization and the PAT through its
    // environment; its commands get neither.
    let env_text = format!("{:?}", run.env);
    assert!(!env_text.contains("test-secret"), "{env_text}");
    assert!(!env_text.contains(&w.sim.pat()), "{env_text}");
    assert!(!run.env.contains_key("KONGCTL_LISTEN_AUTHORIZATION"));

    // ps -o json shows the pair's counts.
    eventually("ps shows the run", || {
        let ps = w.run(&["ps", "-o", "json"]);
        let list: Value = serde_json::from_str(&ps.stdout).unwrap_or(Value::Null);
        list[0]["exec"]["pairs"][0]["ran"] == 1
    });
    let stop = w.run(&["ps", "stop", &pid.to_string()]);
    assert_eq!(stop.code(), Some(0), "{}\n{}", stop.stdout, stop.stderr);
    assert!(!alive(pid));
    let log = std::fs::read_to_string(
        w.config_dir()
            .join(format!("logs/kongctl-listener-{pid}.log")),
    )
    .unwrap();
    assert!(log.contains("--exec command finished"), "{log}");
    assert_eq!(runs.count(".start"), 1);
}

#[test]
fn bad_pairs_fail_before_anything_remote() {
    let w = World::new();
    let run = |extra: &[&str]| Running::run_command(w.listener_command("listen", extra).0);
    let out = run(&["--on", ".a ==", "--exec", "true"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .contains("Error: invalid --on \".a ==\": invalid jq expression:"),
        "{}",
        out.stderr
    );
    let out = run(&["--on", "lockd", "--exec", "true"]);
    assert!(
        out.stderr.contains(
            "invalid --on \"lockd\": not an alert rule (locked, failed-login, denied, forbidden, server-error, or all) and not a jq filter: failed to compile jq expression"
        ),
        "{}",
        out.stderr
    );
    let out = run(&["--on", "locked"]);
    assert!(
        out.stderr.contains("got 1 --on and 0 --exec"),
        "{}",
        out.stderr
    );
    let out = run(&["--on", "locked", "--exec", "true", "--exec-timeout", "0"]);
    assert!(
        out.stderr.contains("invalid --exec-timeout \"0\""),
        "{}",
        out.stderr
    );
    // Not for the pull tail.
    let out = w.run(&["tail", "--on", "locked", "--exec", "true"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("--on is a webhook listener flag"),
        "{}",
        out.stderr
    );
    // Nothing was asked of Konnect.
    assert!(w.snapshot().requests.is_empty());
}
