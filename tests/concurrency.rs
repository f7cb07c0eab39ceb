//! Concurrency safety (SPEC §3 step 2, §4, §6, §8): one writer per profile
//! (a second listener touches nothing, not even Konnect), `tail` reading the
//! file the listener writes under load, and stops (SIGTERM) in the middle
//! of a burst or of requests still being sent, which must never answer 202
//! for a record that is not stored.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::load::*;
use common::*;
use nix::sys::signal::Signal;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The complete lines of `bytes` (a trailing partial line is left out).
fn whole_lines(bytes: &[u8]) -> Vec<&[u8]> {
    match bytes.iter().rposition(|&b| b == b'\n') {
        Some(end) => bytes[..end].split(|&b| b == b'\n').collect(),
        None => Vec::new(),
    }
}

/// Asserts `lines` are whole records, each once, and returns their seqs.
fn seqs_of(lines: &[&[u8]], what: &str) -> HashSet<u64> {
    let mut seen = HashSet::new();
    for line in lines {
        let r = Record::parse(line).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(seen.insert(r.seq), "{what}: record {} twice", r.seq);
    }
    seen
}

/// The profile's files, without listener.json's counters (the running
/// listener refreshes them every few seconds).
fn state_files(w: &World) -> Vec<Option<Vec<u8>>> {
    let dir = w.storage_dir("default");
    let mut files: Vec<_> = ["destination.json", "listener.lock", "events.jsonl"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).ok())
        .collect();
    let mut listener: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("listener.json")).unwrap()).unwrap();
    let fields = listener.as_object_mut().unwrap();
    for counter in [
        "records_received",
        "requests_received",
        "last_event_at",
        "updated_at",
    ] {
        fields.remove(counter);
    }
    files.push(Some(listener.to_string().into_bytes()));
    files
}

#[test]
fn a_second_listener_on_the_profile_changes_nothing_not_even_in_konnect() {
    let w = World::new();
    let mut first = w.start_listener("listen", &[]);
    assert_eq!(
        post(
            first.addr,
            "/audit-logs",
            &[("Authorization", AUTH)],
            b"{\"a\":1}\n"
        ),
        202
    );
    let files = state_files(&w);
    let requests = w.snapshot().requests.len();
    let pid = first.proc.pid();
    for verb in ["listen", "tail"] {
        let out = w.run(&[
            verb,
            "--endpoint",
            "https://h.test/second",
            "--listen-address",
            "127.0.0.1:0",
        ]);
        assert_eq!(out.code(), Some(1), "{verb}: {}", out.stderr);
        assert!(
            out.stderr.starts_with(&format!(
                "Error: another kongctl listener (pid {pid}) is already running for this profile"
            )),
            "{verb}: {}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains(&format!("kongctl ps stop {pid}, or kill -TERM {pid}")),
            "{verb}: {}",
            out.stderr
        );
        assert_eq!(out.stdout, "", "{verb}");
    }
    assert_eq!(
        w.snapshot().requests.len(),
        requests,
        "the second listeners made no Konnect call at all"
    );
    assert_eq!(state_files(&w), files, "nor touched the profile's files");
    // The first one is unharmed.
    assert_eq!(
        post(
            first.addr,
            "/audit-logs",
            &[("Authorization", AUTH)],
            b"{\"b\":2}\n"
        ),
        202
    );
    first.proc.interrupt();
    assert!(first.proc.wait_exit(Duration::from_secs(30)).success());
    w.assert_konnect_clean();
    assert_eq!(read_lines(&w.events_file()), ["{\"a\":1}", "{\"b\":2}"]);
}

#[test]
fn simultaneous_starts_on_one_profile_let_exactly_one_through() {
    // One world: from the second round on, the lock file still holds the
    // previous winner's pid, which no loser may report.
    let w = World::new();
    for round in 0..3 {
        let creates = w.calls("POST", "/v3/audit-log-destinations");
        let mut procs: Vec<Running> = (0..4)
            .map(|_| {
                let endpoint = format!("https://{}/audit-logs", w.tunnel_host());
                w.spawn(&[
                    "listen",
                    "--endpoint",
                    &endpoint,
                    "--listen-address",
                    "127.0.0.1:0",
                    "--authorization",
                    AUTH,
                ])
            })
            .collect();
        let deadline = Instant::now() + PATIENCE;
        while procs
            .iter_mut()
            .map(|p| p.is_running())
            .filter(|&r| r)
            .count()
            > 1
        {
            assert!(Instant::now() < deadline, "more than one listener runs");
            std::thread::sleep(Duration::from_millis(20));
        }
        let running: Vec<usize> = procs
            .iter_mut()
            .enumerate()
            .filter_map(|(i, p)| p.is_running().then_some(i))
            .collect();
        assert_eq!(running.len(), 1, "one listener wins");
        let mut winner = procs.remove(running[0]);
        winner.wait_for_listener_state(&w.storage_dir("default"));
        for p in &mut procs {
            let status = p.wait_exit(PATIENCE);
            assert_eq!(status.code(), Some(1));
            assert!(
                p.stderr().starts_with(&format!(
                    "Error: another kongctl listener (pid {}) is already running for this profile",
                    winner.pid()
                )),
                "round {round}: a loser names the winner: {}",
                p.stderr()
            );
        }
        assert_eq!(
            w.calls("POST", "/v3/audit-log-destinations"),
            creates + 1,
            "round {round}: one destination created"
        );
        assert_eq!(w.snapshot().destinations.len(), 1);
        winner.interrupt();
        assert!(winner.wait_exit(Duration::from_secs(30)).success());
        w.assert_konnect_clean();
    }
}

/// The records this run appended: the file after `from`.
fn new_part(w: &World, from: usize) -> Vec<u8> {
    let bytes = std::fs::read(w.events_file()).expect("events file");
    bytes[from..].to_vec()
}

#[test]
fn tail_prints_every_acknowledged_record_once_in_file_order_under_load() {
    let w = World::new();
    // Records of an earlier run, and the torn tail of its crash: neither is
    // printed by this run's tail, which starts at the repaired end.
    let old: String = (0..3)
        .map(|i| record_line(1_000_000 + i, 4) + "\n")
        .collect();
    std::fs::create_dir_all(w.storage_dir("default")).unwrap();
    let torn = "{\"seq\":1000003,\"n\"";
    std::fs::write(w.events_file(), format!("{old}{torn}")).unwrap();
    let mut l = w.start_listener("tail", &[]);
    let from = old.len();

    let seqs = SeqSource::new();
    let mut config = LoadConfig::konnect_like(rand::random());
    config.requests_per_thread = Some(60);
    let load = Load::start(l.addr, &config, &seqs);
    let mut checks = 0;
    while !load.is_finished() {
        // Whatever tail printed so far is a prefix of the file, line for
        // line: stdout first, then the file, which only grows.
        let out = l.proc.stdout_bytes();
        let file = new_part(&w, from);
        let printed = whole_lines(&out);
        let stored = whole_lines(&file);
        assert!(
            printed.len() <= stored.len() && printed[..] == stored[..printed.len()],
            "tail's output is not a prefix of the file ({} vs {} lines)",
            printed.len(),
            stored.len()
        );
        checks += 1;
        std::thread::sleep(Duration::from_millis(25));
    }
    let report = load.stop();
    assert!(report.other_statuses.is_empty() && report.unanswered.is_empty());
    let file = new_part(&w, from);
    let stored = whole_lines(&file);
    let expected = stored.len();
    l.proc
        .wait_stdout("every stored record", |o| o.lines().count() >= expected);
    let out = l.proc.stdout_bytes();
    assert_eq!(whole_lines(&out), stored, "tail printed the file, in order");
    let printed = seqs_of(&whole_lines(&out), "tail output");
    assert_eq!(printed, report.acked, "every acknowledged record, once");

    l.proc.interrupt();
    assert!(l.proc.wait_exit(Duration::from_secs(30)).success());
    assert_eq!(l.proc.stdout_bytes(), out, "nothing more at exit");
    assert!(
        l.proc
            .stderr()
            .contains(&format!("removed a torn final line ({} bytes)", torn.len())),
        "{}",
        l.proc.stderr()
    );
    w.assert_konnect_clean();
    println!(
        "tail under load: {} requests, {} records, {checks} prefix checks",
        report.requests_acked,
        printed.len()
    );
}

#[test]
fn sigterm_during_a_burst_loses_nothing_acknowledged() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    for round in 0..3 {
        let w = World::new();
        let mut l = w.start_listener("tail", &[]);
        let seqs = SeqSource::new();
        let load = Load::start(l.addr, &LoadConfig::konnect_like(rng.random()), &seqs);
        eventually("the burst's first 202", || load.acked_requests() > 0);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
        l.proc.signal(Signal::SIGTERM);
        let status = l.proc.wait_exit(Duration::from_secs(60));
        let report = load.stop();
        let what = format!("round {round} (seed {seed})");
        assert!(status.success(), "{what}: {status:?}\n{}", l.proc.stderr());
        assert!(
            report.other_statuses.is_empty(),
            "{what}: statuses other than 202 or a failed connection: {:?}",
            report.other_statuses
        );

        let file = std::fs::read(w.events_file()).expect("events file");
        assert!(file.last().is_none_or(|&b| b == b'\n'), "{what}: torn");
        let stored = seqs_of(&whole_lines(&file), &what);
        let lost: Vec<_> = report.acked.difference(&stored).collect();
        assert!(
            lost.is_empty(),
            "{what}: acknowledged but not stored: {lost:?}"
        );
        assert!(
            stored
                .iter()
                .all(|s| report.unanswered.contains(s) || report.acked.contains(s)),
            "{what}: stored records that were never sent"
        );
        // tail printed everything stored before it exited.
        assert_eq!(
            whole_lines(&l.proc.stdout_bytes()),
            whole_lines(&file),
            "{what}: tail printed the whole file"
        );
        w.assert_konnect_clean();
        println!(
            "{what}: {} requests acked, {} unanswered, {} records stored ({} acked)",
            report.requests_acked,
            report.requests_unanswered,
            stored.len(),
            report.acked.len()
        );
    }
}

/// A request that is still being sent when the listener is told to stop.
struct InFlight {
    conn: Conn,
    rest: Vec<u8>,
    seqs: std::ops::Range<u64>,
    /// When, after SIGTERM, the client sends the rest of the request.
    after: Duration,
}

#[test]
fn sigterm_with_requests_in_flight_never_answers_202_without_storing() {
    let w = World::new();
    let mut l = w.start_listener("listen", &[]);
    let seqs = SeqSource::new();
    let ms = Duration::from_millis;
    let mut flights = Vec::new();
    // Half-sent requests, finished at various times after the signal: well
    // within the 5 s drain (must get 202 and be stored) and after it (must
    // fail at the connection level, nothing stored).
    for (i, after) in [
        ms(0),
        ms(50),
        ms(500),
        ms(2000),
        ms(3000),
        ms(6500),
        ms(7000),
    ]
    .into_iter()
    .flat_map(|a| [a, a])
    .enumerate()
    {
        let gzip = i % 2 == 1;
        let range = seqs.take(20);
        let body = batch_body(range.clone(), 100, gzip);
        let mut conn = Conn::connect(l.addr).unwrap();
        let req = Conn::request(&body, gzip);
        let half = req.len() - body.len() + body.len() / 2;
        conn.send_raw(&req[..half]).unwrap();
        flights.push(InFlight {
            conn,
            rest: req[half..].to_vec(),
            seqs: range,
            after,
        });
    }
    // Kept-alive connections, idle after a 202, that post again right after
    // the signal: 202 and stored, or a connection-level failure.
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut conn = Conn::connect(l.addr).unwrap();
        let range = seqs.take(5);
        let answer = conn.post(&batch_body(range.clone(), 10, false), false);
        assert_eq!(
            answer,
            Answer::Status {
                code: 202,
                close: false
            }
        );
        idle.push((conn, range));
    }
    // The listener has accepted and read what was sent so far: each
    // request in flight is under way when the signal comes.
    let clients: Vec<_> = flights
        .iter()
        .map(|f| f.conn.local_addr())
        .chain(idle.iter().map(|(conn, _)| conn.local_addr()))
        .collect();
    wait_until_read(l.addr, &clients);

    let stopped = Instant::now();
    l.proc.signal(Signal::SIGTERM);
    let mut threads = Vec::new();
    for mut f in flights {
        threads.push(std::thread::spawn(move || {
            std::thread::sleep(f.after.saturating_sub(stopped.elapsed()));
            let answer = match f.conn.send_raw(&f.rest) {
                Ok(()) => f.conn.read_answer(),
                Err(_) => Answer::ConnectionFailed,
            };
            (Some(f.after), f.seqs, answer)
        }));
    }
    for (i, (mut conn, _)) in idle.into_iter().enumerate() {
        let range = seqs.take(5);
        threads.push(std::thread::spawn(move || {
            std::thread::sleep(ms(i as u64 * 20));
            let answer = conn.post(&batch_body(range.clone(), 10, true), true);
            (None, range, answer)
        }));
    }
    let status = l.proc.wait_exit(Duration::from_secs(60));
    let took = stopped.elapsed();
    assert!(status.success(), "{status:?}\n{}", l.proc.stderr());
    assert!(
        took < Duration::from_secs(15),
        "the drain is bounded: {took:?}"
    );
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    let file = std::fs::read(w.events_file()).unwrap();
    let stored = seqs_of(&whole_lines(&file), "events.jsonl");
    let mut summary = Vec::new();
    for (after, range, answer) in &results {
        let kept = range.clone().filter(|s| stored.contains(s)).count();
        let len = range.clone().count();
        let what = format!(
            "request sent {after:?} after SIGTERM: {answer:?}, {kept} of {} stored",
            len
        );
        match answer {
            Answer::Status { code: 202, .. } => {
                assert_eq!(kept, len, "202 without storage: {what}")
            }
            Answer::Status { .. } => panic!("a status other than 202: {what}"),
            Answer::ConnectionFailed => {
                assert!(kept == 0 || kept == len, "a batch stored in part: {what}")
            }
        }
        match after {
            Some(a) if *a <= ms(3000) => assert!(
                matches!(answer, Answer::Status { code: 202, .. }),
                "finished within the drain, so answered: {what}"
            ),
            Some(_) => assert!(
                *answer == Answer::ConnectionFailed && kept == 0,
                "finished after the drain, so dropped: {what}"
            ),
            None => {}
        }
        summary.push(what);
    }
    w.assert_konnect_clean();
    println!("stopped in {took:?}\n{}", summary.join("\n"));
}
