//! Readers agree under every race (issue 20): a real listener rotating
//! every 64 KiB and gzipping what it closes, under continuous load, while
//! every reader of the store runs in a loop against it:
//!
//! - `get audit-logs --stored --limit 0 -o jsonl` (the query reader);
//! - `tail --stored` following (the snapshot, then every rotation);
//! - offline `get audit-logs --stored --verify -o json`;
//! - replay's store scan (`kongctl::replay::scan::scan`, the code a gap
//!   heal runs inside the listener), in this process, against the live
//!   store directory.
//!
//! Every read checks that it saw every record acknowledged before it
//! started exactly once. Each load thread posts its batches one after the
//! other, so its records are stored in its own order: what a consistent
//! read sees of a thread is records 0..m with nothing missing, twice or out
//! of place, and m reaches at least the last record acknowledged before
//! the read. Offline `--verify` prints counts per file, not records: its
//! read is checked file by file against the store as it stands once the
//! listener has stopped (every segment counted whole, in seq order, and
//! the active file's count a prefix of the segment it became).
//!
//! `KONGCTL_STORE_RACE_READS` sets the number of reads (default 40, split
//! over the four readers; the bar is 200 or more). A longer run
//! spaces its batches out so that the store ends as large as the default
//! run's; `KONGCTL_STORE_RACE_PACE_MS` sets the time between two batches
//! of a load thread instead (60 by default: about four rotations a
//! second). A second test
//! adds retention (`--retain 2s`), which deletes segments during reads:
//! a read then skips each with one warning naming it, and never sees a
//! record twice.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::load::{Answer, Conn};
use common::*;
use kongctl::record::{DedupKey, Record};

/// Load threads, each posting its batches in order.
const THREADS: usize = 4;
/// Records per batch.
const BATCH: u64 = 20;
/// Time between two batches of one thread (about four rotations a
/// second), for the default number of reads; longer runs space the
/// batches out so that the store, which every read reads whole, stays as
/// large as the default run's at its end.
const PACE: Duration = Duration::from_millis(60);
const PACED_READS: usize = 40;
/// Padding bytes per record (noise: gzip shrinks it as it does real
/// records, rather than to nothing).
const PAD: usize = 100;

/// A record's identity: load thread and its number there.
type Id = (usize, u64);

/// The stored line of record `n` of thread `t`.
fn line(t: usize, n: u64, ts: &str) -> String {
    let pad = noise((t as u64) << 40 | n, PAD);
    format!(
        "{{\"event_ts\":\"{ts}\",\"event_class_id\":\"konnect\",\"name\":\"Race.load\",\"t\":{t},\"n\":{n},\"pad\":\"{pad}\"}}"
    )
}

/// A record line's identity (`None`: not one of ours).
fn id_of(text: &str) -> Option<Id> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    Some((v["t"].as_u64()? as usize, v["n"].as_u64()?))
}

/// What the load threads got acknowledged, and when.
#[derive(Default)]
struct Acks {
    /// Per thread: (when the 202 came, records of the thread stored up to
    /// then), in order.
    per_thread: Vec<Mutex<Vec<(Instant, u64)>>>,
    /// Each record's dedup key (what replay's scan returns).
    keys: Mutex<HashMap<DedupKey, Id>>,
    stop: AtomicBool,
    /// Time between two batches of one thread.
    pace: Duration,
}

impl Acks {
    fn new(reads: usize) -> Acks {
        Acks {
            per_thread: (0..THREADS).map(|_| Mutex::new(Vec::new())).collect(),
            pace: std::env::var("KONGCTL_STORE_RACE_PACE_MS")
                .ok()
                .and_then(|ms| ms.parse().ok())
                .map_or(
                    PACE * (reads / PACED_READS).max(1) as u32,
                    Duration::from_millis,
                ),
            ..Acks::default()
        }
    }

    /// Per thread, how many of its records were acknowledged before `t`.
    fn before(&self, t: Instant) -> Vec<u64> {
        self.per_thread
            .iter()
            .map(|acks| {
                let acks = acks.lock().unwrap();
                acks.iter()
                    .take_while(|(at, _)| *at < t)
                    .last()
                    .map_or(0, |(_, n)| *n)
            })
            .collect()
    }

    fn total(&self) -> u64 {
        self.before(Instant::now()).iter().sum()
    }
}

/// Sets [`Acks::stop`] when dropped, so that the load stops however the
/// reads end (a failed assertion included).
struct StopLoad<'a>(&'a Acks);

impl Drop for StopLoad<'_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

/// The longest a load runs, whatever else happens.
const LOAD_LIMIT: Duration = Duration::from_secs(1800);

/// One load thread: a batch of `BATCH` records every `PACE`, each sent
/// once, until told to stop.
fn load(addr: std::net::SocketAddr, t: usize, acks: &Acks) {
    let mut conn = Conn::connect(addr).expect("load connects");
    let mut n = 0u64;
    let started = Instant::now();
    let mut next = started;
    while !acks.stop.load(Ordering::Relaxed) && started.elapsed() < LOAD_LIMIT {
        let ts = jiff::Timestamp::now().to_string();
        let lines: Vec<String> = (n..n + BATCH).map(|i| line(t, i, &ts)).collect();
        {
            let mut keys = acks.keys.lock().unwrap();
            for (i, l) in (n..).zip(&lines) {
                let key = Record::from_slice(l.as_bytes()).unwrap().dedup_key();
                keys.insert(key, (t, i));
            }
        }
        let body = lines.join("\n");
        match conn.post(body.as_bytes(), false) {
            Answer::Status { code: 202, .. } => {}
            other => panic!("load thread {t}: batch at {n} answered {other:?}"),
        }
        n += BATCH;
        acks.per_thread[t].lock().unwrap().push((Instant::now(), n));
        next += acks.pace;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// Where a thread's records must start in a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// At its first record: nothing was deleted.
    First,
    /// At its oldest record seen: retention deleted the oldest segments
    /// before the read.
    OldestSeen,
}

/// Checks one read: `seen` (records in output order) against `before`
/// (per thread, the records acknowledged before the read started). With
/// `stored_order`, each thread's records must come in order too. Returns
/// the problems found, and counts them into `tally`.
fn check_read(
    what: &str,
    seen: &[Id],
    before: &[u64],
    stored_order: bool,
    from: Start,
    tally: &Tally,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut once = HashSet::new();
    let mut last: Vec<Option<u64>> = vec![None; THREADS];
    let mut first: Vec<Option<u64>> = vec![None; THREADS];
    for &(t, n) in seen {
        if t >= THREADS {
            problems.push(format!("{what}: a record of no load thread ({t}, {n})"));
            continue;
        }
        if !once.insert((t, n)) {
            tally.twice.fetch_add(1, Ordering::Relaxed);
            problems.push(format!("{what}: record {t}/{n} twice"));
        }
        if stored_order && last[t].is_some_and(|l| n <= l) {
            problems.push(format!(
                "{what}: record {t}/{n} after {t}/{}",
                last[t].unwrap()
            ));
        }
        last[t] = Some(last[t].map_or(n, |l| l.max(n)));
        first[t] = Some(first[t].map_or(n, |f| f.min(n)));
    }
    for t in 0..THREADS {
        // Everything of the thread up to the newest seen, and at least
        // what was acknowledged before the read.
        let upto = last[t].map_or(0, |l| l + 1).max(before[t]);
        let lowest = match from {
            Start::First => 0,
            Start::OldestSeen => first[t].unwrap_or(upto),
        };
        let missing: Vec<u64> = (lowest..upto)
            .filter(|n| !once.contains(&(t, *n)))
            .collect();
        if !missing.is_empty() {
            tally.missing.fetch_add(missing.len(), Ordering::Relaxed);
            problems.push(format!(
                "{what}: {} record(s) of thread {t} missing, first {t}/{} (acknowledged before the read: {})",
                missing.len(),
                missing[0],
                before[t]
            ));
        }
    }
    problems
}

/// Counters over the whole run.
#[derive(Default)]
struct Tally {
    reads: Mutex<BTreeMap<&'static str, usize>>,
    missing: AtomicUsize,
    twice: AtomicUsize,
    failed: AtomicUsize,
    gone_warnings: AtomicUsize,
    problems: Mutex<Vec<String>>,
}

impl Tally {
    fn read(&self, kind: &'static str, problems: Vec<String>) {
        *self.reads.lock().unwrap().entry(kind).or_default() += 1;
        if !problems.is_empty() && std::env::var_os("KONGCTL_STORE_RACE_VERBOSE").is_some() {
            eprintln!("{kind}: {problems:?}");
        }
        self.problems.lock().unwrap().extend(problems);
    }

    fn failed(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.problems.lock().unwrap().push(what);
    }

    fn total(&self) -> usize {
        self.reads.lock().unwrap().values().sum()
    }

    /// Fails the test with the first problems found, if any.
    fn assert_clean(&self, summary: &str) {
        let problems = self.problems.lock().unwrap();
        assert!(
            problems.is_empty(),
            "{summary}\n{} problem(s), the first ones:\n{}",
            problems.len(),
            problems
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// The record ids of jsonl output.
fn ids(stdout: &str, what: &str, problems: &mut Vec<String>) -> Vec<Id> {
    stdout
        .lines()
        .filter_map(|l| {
            let id = id_of(l);
            if id.is_none() {
                problems.push(format!("{what}: not one of the records sent: {l:.120}"));
            }
            id
        })
        .collect()
}

/// Warnings a read may print: a segment retention deleted during it, one
/// each, and only where retention runs (`from`). Anything else on stderr
/// is a problem.
fn gone_warnings(stderr: &str, what: &str, from: Start, problems: &mut Vec<String>) -> usize {
    let mut named = HashSet::new();
    for l in stderr.lines() {
        match l
            .strip_prefix("warning: ")
            .and_then(|rest| rest.strip_suffix(kongctl::store::snapshot::GONE))
        {
            Some(file) => {
                if from == Start::First {
                    problems.push(format!("{what}: no retention runs, yet: {l}"));
                }
                if !named.insert(file.to_owned()) {
                    problems.push(format!("{what}: warned twice of {file}"));
                }
            }
            None => problems.push(format!("{what}: stderr: {l}")),
        }
    }
    named.len()
}

/// A segment's seq from a path, `None` for the active file.
fn seq_of(path: &str) -> Option<u64> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name
        .strip_suffix(".jsonl.gz")
        .or_else(|| name.strip_suffix(".jsonl"))?;
    stem.rsplit_once('-')?.1.parse().ok()
}

/// One offline `--verify` read, kept to be checked against the store once
/// the listener has stopped.
struct VerifyRead {
    before: Vec<u64>,
    /// (seq of the file, `None` for the active file; records counted).
    files: Vec<(Option<u64>, u64)>,
}

/// Every record of the stopped store: by segment seq, and the active file.
fn final_store(dir: &Path) -> (BTreeMap<u64, Vec<Id>>, Vec<Id>) {
    let mut segments: BTreeMap<u64, Vec<Id>> = BTreeMap::new();
    let mut plain_seen = HashSet::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // Plain before gz: a plain file beside its .gz is the whole one.
    entries.sort_by_key(|p| p.extension().is_some_and(|e| e == "gz"));
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("events-") {
            continue;
        }
        let Some(seq) = seq_of(&name) else { continue };
        if !plain_seen.insert(seq) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let text = if name.ends_with(".gz") {
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .unwrap();
            text
        } else {
            String::from_utf8(bytes).unwrap()
        };
        segments.insert(seq, text.lines().filter_map(id_of).collect());
    }
    let active = std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(id_of)
        .collect();
    (segments, active)
}

/// Checks the `--verify` reads against the stopped store.
fn check_verify_reads(reads: &[VerifyRead], dir: &Path, tally: &Tally) {
    let (segments, active) = final_store(dir);
    for (i, read) in reads.iter().enumerate() {
        let what = format!("--verify read {i}");
        let mut problems = Vec::new();
        let mut seen: Vec<Id> = Vec::new();
        let mut last_seq = 0;
        let mut active_count = None;
        for &(seq, count) in &read.files {
            match seq {
                Some(seq) => {
                    if active_count.is_some() || seq <= last_seq {
                        problems.push(format!("{what}: segment {seq} out of order"));
                    }
                    last_seq = seq;
                    match segments.get(&seq) {
                        Some(held) if held.len() as u64 == count => seen.extend(held),
                        Some(held) => problems.push(format!(
                            "{what}: segment {seq} counted {count} records, it holds {}",
                            held.len()
                        )),
                        None => problems.push(format!("{what}: segment {seq} is not in the store")),
                    }
                }
                None => active_count = Some(count),
            }
        }
        if let Some(count) = active_count {
            // The active file read is the one that became the next
            // segment, or is still active.
            let became = segments.get(&(last_seq + 1)).unwrap_or(&active);
            if (became.len() as u64) < count {
                problems.push(format!(
                    "{what}: the active file counted {count} records; it became a file of {}",
                    became.len()
                ));
            }
            seen.extend(became.iter().take(count as usize));
        }
        problems.extend(check_read(
            &what,
            &seen,
            &read.before,
            false,
            Start::First,
            tally,
        ));
        tally.problems.lock().unwrap().extend(problems);
    }
}

/// Runs `reads` reads spread over the four readers against the listener
/// of `w` (the store in `dir`) while `acks` records the load; returns the
/// `--verify` reads to check once the store stopped.
fn read_in_loops(
    w: &World,
    dir: &Path,
    acks: &Acks,
    tally: &Tally,
    reads: usize,
    readers: &[&'static str],
    from: Start,
) -> Vec<VerifyRead> {
    let per_kind = reads.div_ceil(readers.len());
    let verify_reads = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for &kind in readers {
            let verify_reads = &verify_reads;
            s.spawn(move || {
                for i in 0..per_kind {
                    let what = format!("{kind} read {i}");
                    let started = Instant::now();
                    match kind {
                        "get" => read_get(w, &what, acks, from, tally),
                        "verify" => {
                            if let Some(r) = read_verify(w, &what, acks, from, tally) {
                                verify_reads.lock().unwrap().push(r);
                            }
                        }
                        "tail" => read_tail(w, &what, acks, from, tally),
                        "scan" => read_scan(dir, &what, acks, from, tally),
                        _ => unreachable!(),
                    }
                    if std::env::var_os("KONGCTL_STORE_RACE_VERBOSE").is_some() {
                        let plain = std::fs::read_dir(dir)
                            .map(|d| {
                                d.filter_map(|e| e.ok())
                                    .filter(|e| {
                                        let n = e.file_name().to_string_lossy().into_owned();
                                        n.starts_with("events-") && n.ends_with(".jsonl")
                                    })
                                    .count()
                            })
                            .unwrap_or(0);
                        eprintln!(
                            "{what}: {:.1?}, {} records acknowledged, {} files, {plain} plain",
                            started.elapsed(),
                            acks.total(),
                            segments_on_disk(dir)
                        );
                    }
                }
            });
        }
    });
    verify_reads.into_inner().unwrap()
}

fn read_get(w: &World, what: &str, acks: &Acks, from: Start, tally: &Tally) {
    let before = acks.before(Instant::now());
    let out = w.run(&[
        "get",
        "audit-logs",
        "--stored",
        "--limit",
        "0",
        "-o",
        "jsonl",
    ]);
    if !out.status.success() {
        return tally.failed(format!("{what}: exit {:?}: {}", out.code(), out.stderr));
    }
    let mut problems = Vec::new();
    let gone = gone_warnings(&out.stderr, what, from, &mut problems);
    tally.gone_warnings.fetch_add(gone, Ordering::Relaxed);
    let seen = ids(&out.stdout, what, &mut problems);
    if gone == 0 {
        problems.extend(check_read(what, &seen, &before, false, from, tally));
    } else {
        problems.extend(check_after_retention(what, &seen, tally));
    }
    tally.read("get --stored", problems);
}

fn read_verify(
    w: &World,
    what: &str,
    acks: &Acks,
    from: Start,
    tally: &Tally,
) -> Option<VerifyRead> {
    let before = acks.before(Instant::now());
    let out = w.run(&["get", "audit-logs", "--stored", "--verify", "-o", "json"]);
    if !out.status.success() {
        tally.failed(format!("{what}: exit {:?}: {}", out.code(), out.stderr));
        return None;
    }
    let mut problems = Vec::new();
    let gone = gone_warnings(&out.stderr, what, from, &mut problems);
    tally.gone_warnings.fetch_add(gone, Ordering::Relaxed);
    let report: Vec<serde_json::Value> = match serde_json::from_str(&out.stdout) {
        Ok(r) => r,
        Err(e) => {
            tally.failed(format!(
                "{what}: output is not the report ({e}): {:.200}",
                out.stdout
            ));
            return None;
        }
    };
    let mut files = Vec::new();
    for file in &report {
        let path = file["file"].as_str().unwrap_or_default();
        let count: u64 = ["valid", "invalid", "unsigned", "unverifiable"]
            .iter()
            .map(|k| file[k].as_u64().unwrap_or(0))
            .sum();
        if file["invalid"].as_u64() != Some(0) {
            problems.push(format!("{what}: invalid records in {path}"));
        }
        let seq = seq_of(path);
        if seq.is_none() && !path.ends_with("/events.jsonl") {
            problems.push(format!("{what}: a file that is no store file: {path}"));
        }
        files.push((seq, count));
    }
    tally.read("get --stored --verify", problems);
    // Checked against the stopped store; with retention, segments are gone
    // by then: only the counts' order and the exit are checked.
    (gone == 0).then_some(VerifyRead { before, files })
}

fn read_tail(w: &World, what: &str, acks: &Acks, from: Start, tally: &Tally) {
    let started = Instant::now();
    let before = acks.before(started);
    let mut tail = w.spawn(&["tail", "--stored", "-n", "1000000000", "-o", "jsonl"]);
    // Caught up with what was acknowledged before it started, then with
    // what was acknowledged while it followed.
    let mut problems = Vec::new();
    let caught_up = |tail: &mut Running, want: &[u64], problems: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = tail.stdout();
            let mut top = vec![0u64; THREADS];
            for (t, n) in out.lines().filter_map(id_of) {
                if t < THREADS {
                    top[t] = top[t].max(n + 1);
                }
            }
            if top.iter().zip(want).all(|(got, want)| got >= want) {
                return true;
            }
            if !tail.is_running() || Instant::now() > deadline {
                problems.push(format!(
                    "{what}: did not print every record acknowledged (wanted {want:?}, got {top:?}); running: {}; stderr: {}",
                    tail.is_running(),
                    tail.stderr()
                ));
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut followed = before.clone();
    if caught_up(&mut tail, &before, &mut problems) {
        // Follow across a few rotations (a 64 KiB segment takes about a
        // quarter of a second of load).
        let until = Instant::now() + Duration::from_millis(800);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        followed = acks.before(Instant::now());
        caught_up(&mut tail, &followed, &mut problems);
    }
    tail.interrupt();
    let status = tail.wait_exit(Duration::from_secs(60));
    if !status.success() {
        return tally.failed(format!("{what}: exit {status:?}: {}", tail.stderr()));
    }
    let gone = gone_warnings(&tail.stderr(), what, from, &mut problems);
    tally.gone_warnings.fetch_add(gone, Ordering::Relaxed);
    let seen = ids(&tail.stdout(), what, &mut problems);
    if gone == 0 {
        problems.extend(check_read(what, &seen, &followed, true, from, tally));
    } else {
        problems.extend(check_after_retention(what, &seen, tally));
    }
    tally.read("tail --stored", problems);
}

fn read_scan(dir: &Path, what: &str, acks: &Acks, from: Start, tally: &Tally) {
    let before = acks.before(Instant::now());
    let files = kongctl::replay::StoreFiles {
        dir: dir.to_path_buf(),
        active: dir.join("events.jsonl"),
    };
    // From the dawn of time: every record's key is collected.
    let floor = Some(jiff::Timestamp::UNIX_EPOCH);
    let scanned = match kongctl::replay::scan::scan(
        &files,
        u64::MAX,
        &[kongctl::konnect::Stream::Org],
        floor,
        Duration::ZERO,
    ) {
        Ok(s) => s,
        Err(e) => return tally.failed(format!("{what}: {e}")),
    };
    let keys = acks.keys.lock().unwrap();
    let mut problems = Vec::new();
    let seen: Vec<Id> = scanned
        .keys
        .iter()
        .filter_map(|(key, _)| {
            let id = keys.get(key).copied();
            if id.is_none() {
                problems.push(format!("{what}: a key of no record sent"));
            }
            id
        })
        .collect();
    drop(keys);
    if scanned.problems > 0 {
        problems.push(format!("{what}: {} unreadable line(s)", scanned.problems));
    }
    problems.extend(check_read(what, &seen, &before, false, from, tally));
    tally.read("replay scan", problems);
}

/// A read during which retention deleted a segment: records may be missing
/// (those of the deleted segments), never twice.
fn check_after_retention(what: &str, seen: &[Id], tally: &Tally) -> Vec<String> {
    let mut problems = Vec::new();
    let mut once = HashSet::new();
    for id in seen {
        if !once.insert(*id) {
            tally.twice.fetch_add(1, Ordering::Relaxed);
            problems.push(format!("{what}: record {}/{} twice", id.0, id.1));
        }
    }
    problems
}

/// The number of reads asked for, from the environment.
fn reads_asked(default: usize) -> usize {
    std::env::var("KONGCTL_STORE_RACE_READS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn report(tally: &Tally, started: Instant, acks: &Acks, rotations: usize) -> String {
    let reads = tally.reads.lock().unwrap().clone();
    format!(
        "reads {reads:?} ({} in all) in {:.0?}: {} missing, {} twice, {} failed commands, {} retention warnings; {} records acknowledged, {} segments on disk",
        tally.total(),
        started.elapsed(),
        tally.missing.load(Ordering::Relaxed),
        tally.twice.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
        tally.gone_warnings.load(Ordering::Relaxed),
        acks.total(),
        rotations,
    )
}

fn segments_on_disk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("events-"))
                .count()
        })
        .unwrap_or(0)
}

/// Starts the load on `l` and waits until the store holds a few segments.
fn start_load<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    l: &Listener,
    acks: &'env Acks,
    dir: &Path,
) {
    for t in 0..THREADS {
        let addr = l.addr;
        s.spawn(move || load(addr, t, acks));
    }
    eventually("the store to rotate a few times", || {
        segments_on_disk(dir) >= 3
    });
}

#[test]
fn every_reader_sees_every_acknowledged_record_once_while_the_store_rotates() {
    let w = World::new();
    let mut l = w.start_listener("listen", &["--max-file-size", "64KiB"]);
    let dir = w.storage_dir("default");
    let reads = reads_asked(PACED_READS);
    let acks = Acks::new(reads);
    let tally = Tally::default();
    let started = Instant::now();
    let verify_reads = std::thread::scope(|s| {
        let _stop = StopLoad(&acks);
        start_load(s, &l, &acks, &dir);
        read_in_loops(
            &w,
            &dir,
            &acks,
            &tally,
            reads,
            &["get", "verify", "tail", "scan"],
            Start::First,
        )
    });
    l.stop_ok();
    check_verify_reads(&verify_reads, &dir, &tally);
    let summary = report(&tally, started, &acks, segments_on_disk(&dir));
    eprintln!("store race: {summary}");
    tally.assert_clean(&summary);
    assert!(tally.total() >= reads, "{summary}");
    assert!(segments_on_disk(&dir) > 5, "{summary}");
}

#[test]
fn a_segment_retention_deletes_during_a_read_is_skipped_with_one_warning() {
    let w = World::new();
    // Segments go 2 s after their newest record (plain or compressed),
    // several a second: often while a read runs.
    let mut l = w.start_listener("listen", &["--max-file-size", "64KiB", "--retain", "2s"]);
    let dir = w.storage_dir("default");
    let reads = (reads_asked(PACED_READS) / 2).clamp(20, 100);
    let acks = Acks::new(reads);
    let tally = Tally::default();
    let started = Instant::now();
    std::thread::scope(|s| {
        let _stop = StopLoad(&acks);
        start_load(s, &l, &acks, &dir);
        eventually("retention to delete the first segment", || {
            !std::fs::read_dir(&dir).unwrap().any(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                name.starts_with("events-") && seq_of(&name) == Some(1)
            })
        });
        read_in_loops(
            &w,
            &dir,
            &acks,
            &tally,
            reads,
            &["get", "verify"],
            Start::OldestSeen,
        );
    });
    l.stop_ok();
    let summary = report(&tally, started, &acks, segments_on_disk(&dir));
    eprintln!("store race with retention: {summary}");
    tally.assert_clean(&summary);
}
