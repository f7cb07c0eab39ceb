//! Gap healing through the real binary against the emulator: events that
//! Konnect could not deliver (listener killed, machine asleep, deliveries
//! failing) come back through a replay job and are stored exactly once;
//! a running job (409) is waited for; a failed job is reported with its
//! missing window.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

/// The test-only timing: replay intervals scaled from this tick.
const TICK: &str = "20ms";

/// `listener_command` with test timing; the webhook status monitor is slow
/// unless a test asks otherwise, so that it does not race other triggers.
fn command(w: &World, verb: &str, extra: &[&str]) -> (Command, String) {
    let (mut cmd, host) = w.listener_command(verb, extra);
    cmd.env("KONGCTL_TEST_REPLAY_TICK", TICK)
        .env("KONGCTL_TEST_STATE_REFRESH", "20ms")
        .env("KONGCTL_TEST_WEBHOOK_STATUS_EVERY", "1h");
    (cmd, host)
}

/// Starts `cmd` and points its tunnel at it. Replay jobs are held until
/// the tunnel is there: a job the listener asks for at start must not be
/// delivered to a host the emulator cannot reach yet.
fn start(w: &World, cmd: Command, host: &str) -> Listener {
    w.sim.hold_replay_jobs(true);
    let listener = w.start_listener_cmd(cmd, host);
    w.sim.hold_replay_jobs(false);
    listener
}

/// The `replay` object of listener.json.
fn replay(w: &World) -> Value {
    let path = w.storage_dir("default").join("listener.json");
    std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(|v| v["replay"].clone())
        .unwrap_or(Value::Null)
}

fn wait_replay(w: &World, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        eventually(what, || {
            last = replay(w);
            done(&last)
        })
    }));
    if ok.is_err() {
        panic!("{what}: last replay status {last:#}");
    }
    last
}

fn kill(listener: &mut Listener) {
    listener.proc.signal(Signal::SIGKILL);
    listener.proc.wait_exit(Duration::from_secs(10));
}

#[test]
fn a_killed_listener_misses_nothing_after_a_restart() {
    let w = World::new();
    let (cmd, host) = command(&w, "listen", &[]);
    let mut first = start(&w, cmd, &host);
    let before = w.sim.trigger("us", 60);
    assert!(before.all_delivered(), "{before:?}");
    kill(&mut first);

    // Konnect retries (4 times) and gives up: a real gap.
    let during = w.sim.trigger("us", 40);
    assert!(during.deliveries.iter().all(|d| !d.delivered));
    assert!(
        during.deliveries[0].attempts.len() > 1,
        "retried: {:?}",
        during.deliveries[0].attempts
    );
    assert_eq!(read_lines(&w.events_file()).len(), 60);

    let (cmd, host) = command(&w, "listen", &[]);
    let mut second = start(&w, cmd, &host);
    let done = wait_replay(&w, "the startup replay completes", |r| {
        r["jobs_completed"] == 1
    });
    assert_eq!(done["trigger"], "startup");
    assert_eq!(done["state"], "idle");
    assert_eq!(done["job_status"], "completed");
    assert!(done.get("missing_window").is_none(), "{done}");
    assert_each_once(&read_lines(&w.events_file()), &emitted(&[&before, &during]));
    // The window starts 2 minutes before the newest stored record.
    let newest = before
        .deliveries
        .iter()
        .flat_map(|d| &d.records)
        .map(|r| {
            serde_json::from_str::<Value>(r).unwrap()["event_ts"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .max()
        .unwrap();
    let newest: jiff::Timestamp = newest.parse().unwrap();
    let start_at: jiff::Timestamp = done["window"]["start"].as_str().unwrap().parse().unwrap();
    assert_eq!(newest.as_second() - start_at.as_second(), 120, "{done}");
    // What was stored already came again and was dropped.
    eventually("the duplicates are counted", || {
        replay(&w)["duplicates_dropped"] == 60
    });
    let put = w
        .snapshot()
        .requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path == "/v3/audit-log-replay-job")
        .count();
    assert_eq!(put, 1);

    second.stop_ok();
    w.assert_konnect_clean();
}

/// The event time of a stored line.
fn event_ts(line: &str) -> String {
    serde_json::from_str::<Value>(line).unwrap()["event_ts"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn records_already_rotated_into_segments_are_not_stored_again() {
    // The store layout contract (ENGINE.md): closed segments next to the
    // active file, compressed or not, listed in segments.json or not yet.
    // A restart's replay must find the window's records in all of them.
    let w = World::new();
    let (cmd, host) = command(&w, "listen", &[]);
    let mut first = start(&w, cmd, &host);
    let before = w.sim.trigger("us", 40);
    assert!(before.all_delivered(), "{before:?}");
    kill(&mut first);
    let during = w.sim.trigger("us", 20);
    assert!(during.deliveries.iter().all(|d| !d.delivered));

    // Rotate by hand: the first 30 records into a compressed segment the
    // index lists, the next 10 into a plain one it does not list yet (a
    // stale index), and no active file at all.
    let dir = w.storage_dir("default");
    let stored = read_lines(&w.events_file());
    assert_eq!(stored.len(), 40);
    let (old, new) = stored.split_at(30);
    let gz_name = "events-20260101T000000Z-000001.jsonl.gz";
    let gz_file = std::fs::File::create(dir.join(gz_name)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(gz_file, flate2::Compression::fast());
    for line in old {
        writeln!(gz, "{line}").unwrap();
    }
    gz.finish().unwrap();
    let plain_name = "events-20260101T000100Z-000002.jsonl";
    std::fs::write(dir.join(plain_name), new.join("\n") + "\n").unwrap();
    let times: Vec<String> = old.iter().map(|l| event_ts(l)).collect();
    let index = serde_json::json!({
        "version": 1,
        "next_seq": 2,
        "segments": [{
            "file": gz_name,
            "first_received_at": "2026-01-01T00:00:00Z",
            "oldest_event_at": times.iter().min(),
            "newest_event_at": times.iter().max(),
            "records": old.len(),
            "bytes": std::fs::metadata(dir.join(gz_name)).unwrap().len(),
        }],
    });
    std::fs::write(dir.join("segments.json"), index.to_string()).unwrap();
    std::fs::remove_file(w.events_file()).unwrap();

    let (cmd, host) = command(&w, "listen", &[]);
    let mut second = start(&w, cmd, &host);
    let done = wait_replay(&w, "the startup replay completes", |r| {
        r["jobs_completed"] == 1
    });
    // The window starts 2 minutes before the newest record, found in the
    // unlisted plain segment.
    let newest: jiff::Timestamp = new
        .iter()
        .map(|l| event_ts(l))
        .max()
        .unwrap()
        .parse()
        .unwrap();
    let start_at: jiff::Timestamp = done["window"]["start"].as_str().unwrap().parse().unwrap();
    assert_eq!(newest.as_second() - start_at.as_second(), 120, "{done}");
    eventually("the duplicates are counted", || {
        replay(&w)["duplicates_dropped"] == 40
    });
    // Whatever the store made of the hand-made segments meanwhile (the
    // unlisted plain one gets indexed and gzip'd), the stored records are
    // read back through the store reader, exactly as stored.
    let out = w
        .kongctl()
        .args([
            "get",
            "audit-logs",
            "--stored",
            "--limit",
            "0",
            "-o",
            "jsonl",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let all: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let active = read_lines(&w.events_file());
    assert_eq!(active.len(), 20, "only the missed records are new");
    assert_each_once(&all, &emitted(&[&before, &during]));
    second.stop_ok();
    w.assert_konnect_clean();
}

#[test]
fn a_machine_that_slept_misses_nothing() {
    let w = World::new();
    let offset = w.dir.path().join("clock-offset");
    let (mut cmd, host) = command(&w, "listen", &[]);
    cmd.env("KONGCTL_TEST_CLOCK_OFFSET_FILE", &offset);
    let mut listener = start(&w, cmd, &host);
    let awake = w.sim.trigger("us", 30);
    assert!(awake.all_delivered());

    // Asleep: nothing reaches the listener, Konnect gives up.
    w.sim.set_receiver_down(true);
    let asleep = w.sim.trigger("us", 25);
    assert!(asleep.deliveries.iter().all(|d| !d.delivered));
    w.sim.set_receiver_down(false);
    assert_eq!(replay(&w)["jobs_completed"], 0, "nothing stored at start");

    // Waking up: the wall clock jumps ahead of the monotonic clock.
    std::fs::write(&offset, "5m").unwrap();
    let done = wait_replay(&w, "the wake-up replay completes", |r| {
        r["jobs_completed"] == 1
    });
    assert_eq!(done["trigger"], "sleep");
    assert_each_once(&read_lines(&w.events_file()), &emitted(&[&awake, &asleep]));
    eventually("the duplicates are counted", || {
        replay(&w)["duplicates_dropped"] == 30
    });
    listener.stop_ok();
    w.assert_konnect_clean();
}

#[test]
fn a_failed_delivery_reported_by_konnect_is_replayed() {
    let w = World::new();
    let (mut cmd, host) = command(&w, "tail", &[]);
    cmd.env("KONGCTL_TEST_WEBHOOK_STATUS_EVERY", "50ms");
    let mut listener = start(&w, cmd, &host);
    let ok = w.sim.trigger("us", 20);
    assert!(ok.all_delivered());
    w.sim.set_receiver_down(true);
    let failed = w.sim.trigger("us", 10);
    assert!(failed.deliveries.iter().all(|d| !d.delivered));
    w.sim.set_receiver_down(false);

    let done = wait_replay(&w, "the replay of the failed delivery completes", |r| {
        r["jobs_completed"].as_u64() >= Some(1) && r["state"] == "idle"
    });
    assert_eq!(done["trigger"], "webhook_status");
    let all = emitted(&[&ok, &failed]);
    assert_each_once(&read_lines(&w.events_file()), &all);
    // Replayed records are printed like live ones, once.
    let out = listener
        .proc
        .wait_stdout("every record printed", |o| o.lines().count() >= all.len());
    let printed: Vec<String> = out.lines().map(str::to_string).collect();
    assert_each_once(&printed, &all);
    listener.stop_ok();
}

#[test]
fn a_running_replay_job_is_waited_for() {
    let w = World::new();
    let (cmd, host) = command(&w, "listen", &[]);
    let mut first = start(&w, cmd, &host);
    let before = w.sim.trigger("us", 10);
    kill(&mut first);
    let during = w.sim.trigger("us", 5);
    assert!(during.deliveries.iter().all(|d| !d.delivered));

    // Someone else's job, held running in the region: PUT answers 409.
    w.sim.hold_replay_jobs(true);
    let now = jiff::Timestamp::now();
    let body = serde_json::json!({
        "start_at": format!("{:.0}", now - jiff::SignedDuration::from_secs(3600)),
        "end_at": format!("{now:.0}"),
    })
    .to_string();
    let auth = format!("Bearer {}", w.sim.pat());
    let reply = test_support::exchange(
        w.sim.addr(),
        &test_support::request(
            "PUT",
            "/v3/audit-log-replay-job",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        ),
    );
    assert_eq!(reply.status, 202, "{reply:?}");

    let (cmd, host) = command(&w, "listen", &[]);
    let proc = Running::spawn(cmd);
    let state = proc.wait_for_listener_state(&w.storage_dir("default"));
    w.sim.add_tunnel(
        &host,
        state["listen_address"].as_str().unwrap().parse().unwrap(),
    );
    let mut second = Listener {
        proc,
        addr: state["listen_address"].as_str().unwrap().parse().unwrap(),
        endpoint: format!("https://{host}/audit-logs"),
    };
    let waiting = wait_replay(&w, "the listener waits out the 409", |r| {
        r["state"] == "waiting"
    });
    assert!(
        waiting["last_error"]
            .as_str()
            .unwrap()
            .starts_with("another replay job is running in the region; trying again in "),
        "{waiting}"
    );
    assert!(waiting["window"]["start"].is_string(), "{waiting}");
    eventually("the PUT is retried", || {
        w.snapshot()
            .requests
            .iter()
            .filter(|r| r.method == "PUT" && r.status == 409)
            .count()
            >= 2
    });

    // The other job ends; ours goes through.
    w.sim.hold_replay_jobs(false);
    let done = wait_replay(&w, "our replay completes", |r| r["jobs_completed"] == 1);
    assert_eq!(done["trigger"], "startup");
    assert_each_once(&read_lines(&w.events_file()), &emitted(&[&before, &during]));
    second.stop_ok();
    w.assert_konnect_clean();
}

#[test]
fn a_failed_replay_job_is_reported_with_its_missing_window_then_healed() {
    let w = World::new();
    let (cmd, host) = command(&w, "listen", &[]);
    let mut first = start(&w, cmd, &host);
    let before = w.sim.trigger("us", 10);
    kill(&mut first);
    let during = w.sim.trigger("us", 5);

    // Detached this time: ps -o json shows the failure, the log warns.
    w.sim.fail_replay_jobs(1);
    let offset = w.dir.path().join("clock-offset");
    let host = w.tunnel_host();
    let endpoint = format!("https://{host}/audit-logs");
    let mut cmd = w.kongctl();
    cmd.args([
        "listen",
        "-d",
        "--endpoint",
        &endpoint,
        "--listen-address",
        "127.0.0.1:0",
        "--authorization",
        "Bearer test-secret",
    ])
    .env("KONGCTL_TEST_REPLAY_TICK", TICK)
    .env("KONGCTL_TEST_STATE_REFRESH", "20ms")
    .env("KONGCTL_TEST_WEBHOOK_STATUS_EVERY", "1h")
    .env("KONGCTL_TEST_CLOCK_OFFSET_FILE", &offset);
    let out = Running::run_command(cmd);
    assert!(out.status.success(), "{out:?}");
    let pid = detached_pid(&out.stdout);
    let _guard = PidGuard(pid);
    let state: Value = serde_json::from_slice(
        &std::fs::read(w.storage_dir("default").join("listener.json")).unwrap(),
    )
    .unwrap();
    w.sim.add_tunnel(
        &host,
        state["listen_address"].as_str().unwrap().parse().unwrap(),
    );

    let ps = || -> Value {
        let out = w.run(&["ps", "-o", "json"]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_str(&out.stdout).unwrap()
    };
    let mut listed = Value::Null;
    eventually("ps shows the failed replay", || {
        listed = ps();
        listed[0]["replay"]["jobs_failed"] == 1
    });
    let r = &listed[0]["replay"];
    assert_eq!(r["missing_window"], r["window"], "{r}");
    assert_eq!(r["last_error"], "Konnect's replay job failed");
    assert_eq!(r["state"], "idle");
    let missing = r["missing_window"].clone();
    let log_file = listed[0]["log_file"].as_str().unwrap().to_string();
    let warning = format!(
        "Warning: audit-log replay failed: events from {} to {} may be missing (Konnect's replay job failed); the next replay includes them",
        missing["start"].as_str().unwrap(),
        missing["end"].as_str().unwrap()
    );
    // The state file can show the failure before the log writer (a
    // background thread) has written the warning: wait for it.
    let read_log = || std::fs::read_to_string(&log_file).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !read_log().contains(&warning) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = read_log();
    assert!(log.contains(&warning), "{warning}\nnot in the log:\n{log}");
    assert_eq!(read_lines(&w.events_file()).len(), 10);

    // The next replay (here: after a sleep) covers the missing window too.
    std::fs::write(&offset, "10m").unwrap();
    eventually("a later replay completes", || {
        ps()[0]["replay"]["jobs_completed"] == 1
    });
    let healed = ps();
    let r = &healed[0]["replay"];
    assert!(r.get("missing_window").is_none(), "{r}");
    assert_eq!(r["window"]["start"], missing["start"], "{r}");
    assert_each_once(&read_lines(&w.events_file()), &emitted(&[&before, &during]));

    let stop = w.run(&["ps", "stop", &pid.to_string()]);
    assert!(stop.status.success(), "{stop:?}");
    w.assert_konnect_clean();
}

#[test]
fn a_replay_konnect_refuses_is_reported_with_its_missing_window_then_healed() {
    let w = World::new();
    let offset = w.dir.path().join("clock-offset");
    let (cmd, host) = command(&w, "listen", &[]);
    let mut first = start(&w, cmd, &host);
    let before = w.sim.trigger("us", 10);
    kill(&mut first);
    let during = w.sim.trigger("us", 5);

    // Konnect refuses (not a passing failure: no retry) to say how the
    // region's replay job stands: no job can be asked for.
    w.sim.inject_fault(konnect_sim::Fault::status(
        Some("GET"),
        "/v3/audit-log-replay-job",
        1,
        403,
    ));
    let (mut cmd, host) = command(&w, "listen", &[]);
    cmd.env("KONGCTL_TEST_CLOCK_OFFSET_FILE", &offset);
    let mut second = start(&w, cmd, &host);
    let failed = wait_replay(&w, "the refusal is reported", |r| r["jobs_failed"] == 1);
    assert_eq!(failed["state"], "idle");
    assert!(failed.get("job_status").is_none(), "{failed}");
    assert_eq!(failed["missing_window"], failed["window"], "{failed}");
    let why = failed["last_error"].as_str().unwrap();
    assert!(why.starts_with("failed to read the replay job: "), "{why}");
    let missing = failed["missing_window"].clone();
    let warning = format!(
        "Warning: audit-log replay failed: events from {} to {} may be missing ({why}); the next replay includes them",
        missing["start"].as_str().unwrap(),
        missing["end"].as_str().unwrap()
    );
    eventually("the warning is on stderr", || {
        second.proc.stderr().contains(&warning)
    });
    assert_eq!(read_lines(&w.events_file()).len(), 10);

    // The next replay covers the missing window.
    std::fs::write(&offset, "10m").unwrap();
    let healed = wait_replay(&w, "a later replay completes", |r| r["jobs_completed"] == 1);
    assert!(healed.get("missing_window").is_none(), "{healed}");
    assert_eq!(healed["window"]["start"], missing["start"], "{healed}");
    assert_each_once(&read_lines(&w.events_file()), &emitted(&[&before, &during]));
    second.stop_ok();
    w.assert_konnect_clean();
}

#[test]
fn a_window_left_missing_is_replayed_by_the_next_listener() {
    let w = World::new();
    let (cmd, host) = command(&w, "listen", &[]);
    let mut first = start(&w, cmd, &host);
    let before = w.sim.trigger("us", 10);
    kill(&mut first);
    let during = w.sim.trigger("us", 5);

    // The second listener's replay is refused: a window stays missing.
    w.sim.inject_fault(konnect_sim::Fault::status(
        Some("GET"),
        "/v3/audit-log-replay-job",
        1,
        403,
    ));
    let (cmd, host) = command(&w, "listen", &[]);
    let mut second = start(&w, cmd, &host);
    let failed = wait_replay(&w, "the refusal is reported", |r| r["jobs_failed"] == 1);
    let missing = failed["missing_window"].clone();
    let missing_start: jiff::Timestamp = missing["start"].as_str().unwrap().parse().unwrap();
    // Newer records are stored live (a second later at least, as windows
    // are whole seconds), so "the newest stored record less 2 minutes" no
    // longer reaches back to the missing window.
    eventually("the clock is past the newest stored second", || {
        jiff::Timestamp::now().as_second() > missing_start.as_second() + 120
    });
    let live = w.sim.trigger("us", 5);
    assert!(live.all_delivered(), "{live:?}");
    second.stop_ok();

    // The next listener replays from the missing window's start.
    let (cmd, host) = command(&w, "listen", &[]);
    let mut third = start(&w, cmd, &host);
    let done = wait_replay(&w, "the missing window is replayed", |r| {
        r["jobs_completed"] == 1
    });
    assert_eq!(done["window"]["start"], missing["start"], "{done}");
    assert!(done.get("missing_window").is_none(), "{done}");
    assert_each_once(
        &read_lines(&w.events_file()),
        &emitted(&[&before, &during, &live]),
    );
    third.stop_ok();
    w.assert_konnect_clean();
}

#[test]
fn a_backfill_duration_replays_even_with_nothing_stored_and_tail_prints_it() {
    let w = World::new();
    // Events from before any listener: stored at Konnect, never delivered.
    let earlier = w.sim.trigger("us", 8);
    assert!(earlier.deliveries.is_empty());

    let (cmd, host) = command(&w, "tail", &["--backfill", "10m"]);
    let mut listener = start(&w, cmd, &host);
    let done = wait_replay(&w, "the backfill completes", |r| r["jobs_completed"] == 1);
    assert_eq!(done["backfill"], "10m");
    let replayed: Vec<String> = w
        .snapshot()
        .deliveries
        .iter()
        .filter(|d| d.source == konnect_sim::DeliverySource::Replay)
        .flat_map(|d| d.records.clone())
        .collect();
    assert_eq!(replayed.len(), 8);
    assert_each_once(&read_lines(&w.events_file()), &replayed);
    let out = listener
        .proc
        .wait_stdout("the replayed records printed", |o| o.lines().count() >= 8);
    let printed: Vec<String> = out.lines().map(str::to_string).collect();
    assert_each_once(&printed, &replayed);
    listener.stop_ok();
}

#[test]
fn a_backfill_time_replays_from_that_time() {
    let w = World::new();
    let earlier = w.sim.trigger("us", 6);
    assert!(earlier.deliveries.is_empty());
    let from = format!(
        "{:.0}",
        jiff::Timestamp::now() - jiff::SignedDuration::from_secs(600)
    );
    let (cmd, host) = command(&w, "listen", &["--backfill", &from]);
    let mut listener = start(&w, cmd, &host);
    let done = wait_replay(&w, "the backfill completes", |r| r["jobs_completed"] == 1);
    assert_eq!(done["backfill"], from.as_str());
    assert_eq!(done["window"]["start"], from.as_str(), "{done}");
    let replayed: Vec<String> = w
        .snapshot()
        .deliveries
        .iter()
        .filter(|d| d.source == konnect_sim::DeliverySource::Replay)
        .flat_map(|d| d.records.clone())
        .collect();
    assert_eq!(replayed.len(), 6);
    assert_each_once(&read_lines(&w.events_file()), &replayed);
    listener.stop_ok();
}

#[test]
fn without_configuring_the_webhook_auto_does_not_replay() {
    // The region's webhook may point elsewhere: a replay would go there.
    let w = World::new();
    let (cmd, host) = command(&w, "listen", &[]);
    let mut first = start(&w, cmd, &host);
    assert!(w.sim.trigger("us", 3).all_delivered());
    first.stop_ok();

    let (cmd, host) = command(&w, "listen", &["--configure-webhook=false"]);
    let mut second = start(&w, cmd, &host);
    let r = replay(&w);
    assert_eq!(r["state"], "off", "{r}");
    assert_eq!(
        r["backfill"], "auto (no automatic healing: --configure-webhook=false)",
        "{r}"
    );
    second.stop_ok();
    let replay_calls = w
        .snapshot()
        .requests
        .iter()
        .filter(|r| r.path.ends_with("/audit-log-replay-job"))
        .count();
    assert_eq!(replay_calls, 0);
}

#[test]
fn backfill_off_asks_konnect_for_nothing() {
    let w = World::new();
    let (cmd, host) = command(&w, "listen", &[]);
    let mut first = start(&w, cmd, &host);
    w.sim.trigger("us", 3);
    first.stop_ok();

    let (cmd, host) = command(&w, "listen", &["--backfill", "off"]);
    let mut second = start(&w, cmd, &host);
    assert_eq!(replay(&w)["state"], "off");
    second.stop_ok();
    let replay_calls = w
        .snapshot()
        .requests
        .iter()
        .filter(|r| r.path.ends_with("/audit-log-replay-job"))
        .count();
    // The first listener had nothing stored: no replay either.
    assert_eq!(replay_calls, 0);

    let bad = w.run(&[
        "listen",
        "--endpoint",
        "https://h.test/a",
        "--backfill",
        "soon",
    ]);
    assert_eq!(bad.code(), Some(1));
    assert!(
        bad.stderr
            .starts_with("Error: invalid --backfill \"soon\": "),
        "{}",
        bad.stderr
    );
    let pull = w.run(&["tail", "--backfill", "1h"]);
    assert_eq!(pull.code(), Some(1));
    assert!(
        pull.stderr
            .starts_with("Error: --backfill is a webhook listener flag"),
        "{}",
        pull.stderr
    );
}

/// Issue 19 item 5: during gap healing, a copy of a missed record with its
/// genuine `sig` but changed content arrives before Konnect's replay of
/// the record. It must not make the genuine record a duplicate: under
/// `reject` it is set aside and the genuine one stored; under `warn` both
/// are stored (the copy counted invalid).
#[test]
fn a_tampered_copy_arriving_first_does_not_shadow_the_genuine_replay() {
    for mode in ["reject", "warn"] {
        let w = World::new();
        let (cmd, host) = command(&w, "listen", &["--verify", mode]);
        let mut first = start(&w, cmd, &host);
        let before = w.sim.trigger("us", 10);
        assert!(before.all_delivered(), "{mode}: {before:?}");
        kill(&mut first);
        let during = w.sim.trigger("us", 5);
        assert!(during.deliveries.iter().all(|d| !d.delivered));
        let genuine = during.deliveries[0].records[0].clone();
        assert!(genuine.contains("\"sig\":\""), "{genuine}");
        let tampered = genuine.replacen("{\"", "{\"tampered\":true,\"", 1);

        // The replay job is asked for and held at Konnect: the gate is
        // open, the genuine record not yet sent.
        let (cmd, host) = command(&w, "listen", &["--verify", mode]);
        w.sim.hold_replay_jobs(true);
        let mut second = w.start_listener_cmd(cmd, &host);
        wait_replay(&w, "the replay job is accepted", |r| {
            r["state"] == "replaying"
        });
        let reply = test_support::exchange(
            second.addr,
            &test_support::request(
                "POST",
                "/audit-logs",
                &[("Authorization", "Bearer test-secret")],
                format!("{tampered}\n").as_bytes(),
            ),
        );
        assert_eq!(reply.status, 202, "{mode}: {reply:?}");
        w.sim.hold_replay_jobs(false);
        wait_replay(&w, "the replay completes", |r| r["jobs_completed"] == 1);

        let stored = read_lines(&w.events_file());
        let mut expected = emitted(&[&before, &during]);
        let rejected = w.storage_dir("default").join("rejected.jsonl");
        if mode == "warn" {
            expected.push(tampered.clone());
            assert!(!rejected.exists());
        } else {
            let aside = read_lines(&rejected);
            assert_eq!(aside.len(), 1, "{aside:?}");
            let entry: Value = serde_json::from_str(&aside[0]).unwrap();
            assert_eq!(entry["record"], tampered.as_str());
            assert_eq!(entry["reason"], "invalid_signature");
        }
        assert_each_once(&stored, &expected);
        second.stop_ok();
    }
}
