//! Measurements: the one-core gunzip and signature check rates and the
//! time to listening.

use std::ffi::OsString;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct GunzipArgs {
    /// File listing the gzip bodies, one path per line.
    #[arg(long, value_name = "FILE")]
    pub(crate) list: PathBuf,
    /// How long to measure, in seconds.
    #[arg(long, value_name = "S", default_value_t = 3.0)]
    pub(crate) secs: f64,
}

/// Gunzips the bodies listed in `--list`, round after round, for `--secs`
/// seconds on this one thread (so at most one core), into one reused buffer,
/// with the listener's own routine (`gunzip_bounded_into`: zlib-rs,
/// header and CRC-32 checked): the part of a gzip request no listener can
/// skip. Prints bodies/s, records/s (a record is a `\n`-terminated line) and
/// decoded MB/s.
pub fn gunzip_cmd(args: &GunzipArgs) -> Result<(), String> {
    let bodies = read_bodies(&args.list)?;
    let mut out = Vec::new();
    let mut records_per_round = 0u64;
    let mut decoded_per_round = 0u64;
    for b in &bodies {
        out = gunzip(b, out)?;
        records_per_round += out.iter().filter(|&&c| c == b'\n').count() as u64;
        decoded_per_round += out.len() as u64;
    }
    let started = Instant::now();
    let limit = secs(args.secs)?;
    let mut rounds = 0u64;
    while started.elapsed() < limit {
        for b in &bodies {
            out = gunzip(b, out)?;
        }
        rounds += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let bodies_done = rounds * bodies.len() as u64;
    println!(
        "gunzip bodies_per_s={:.0} records_per_s={:.0} decoded_mb_per_s={:.1} bodies={} secs={elapsed:.2}",
        bodies_done as f64 / elapsed,
        (rounds * records_per_round) as f64 / elapsed,
        (rounds * decoded_per_round) as f64 / elapsed / 1e6,
        bodies.len()
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct SigcheckArgs {
    /// File listing the plain bodies, one path per line.
    #[arg(long, value_name = "FILE")]
    pub(crate) list: PathBuf,
    /// How long to measure each case, in seconds.
    #[arg(long, value_name = "S", default_value_t = 3.0)]
    pub(crate) secs: f64,
}

/// Runs the listener's signature check over the records of the listed
/// bodies on this one thread, for `--secs` seconds per case, and prints
/// records/s (per core): `as_is` with the bodies' own `sig` values, one
/// record at a time (`check::check_line`), and with every record signed
/// anew by the test key, which the check is given: `signed` one record at
/// a time (single verification), `signed_batch50` in groups of 50 (a
/// request's records under `--verify reject`, `check::check_lines`, which
/// checks groups under 256 one by one), `signed_batch1024` in groups of
/// up to 1024 (about what the `warn` checker hands each core: one batch
/// equation).
pub fn sigcheck_cmd(args: &SigcheckArgs) -> Result<(), String> {
    use kongctl::verify::{KeySet, check};

    let key = crate::sign::TestKey::new();
    let keys = KeySet::parse(key.jwks().as_bytes()).map_err(|e| e.to_string())?;
    let as_is: Vec<Vec<u8>> = read_bodies(&args.list)?
        .iter()
        .flat_map(|b| {
            b.split(|&c| c == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect();
    let signed: Vec<Vec<u8>> = as_is
        .iter()
        .map(|line| key.sign(&String::from_utf8_lossy(line)).into_bytes())
        .collect();
    let limit = secs(args.secs)?;
    let mut scratch = Vec::new();
    let mut line = format!("sigcheck records={}", as_is.len());
    // A batch size of 1: one record at a time.
    for (name, records, batch) in [
        ("as_is", &as_is, 1),
        ("signed", &signed, 1),
        ("signed_batch50", &signed, 50),
        ("signed_batch1024", &signed, 1024),
    ] {
        let lines: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let mut check_all = |count: &mut dyn FnMut(check::Kind)| {
            if batch == 1 {
                for r in &lines {
                    count(check::check_line(r, &keys, &mut scratch).kind());
                }
            } else {
                for part in lines.chunks(batch) {
                    for outcome in check::check_lines(part, &keys) {
                        count(outcome.kind());
                    }
                }
            }
        };
        let mut outcomes = [0u64; 4];
        check_all(&mut |kind| outcomes[kind as usize] += 1);
        let started = Instant::now();
        let mut rounds = 0u64;
        while started.elapsed() < limit {
            check_all(&mut |kind| {
                std::hint::black_box(kind);
            });
            rounds += 1;
        }
        let per_s = (rounds * records.len() as u64) as f64 / started.elapsed().as_secs_f64();
        line.push_str(&format!(
            " {name}_records_per_s={per_s:.0} {name}_valid={} {name}_invalid={}",
            outcomes[0], outcomes[1]
        ));
    }
    println!("{line}");
    Ok(())
}

/// The listener's gunzip with its default limit (`--max-body-bytes`, 1 MiB).
fn gunzip(body: &[u8], out: Vec<u8>) -> Result<Vec<u8>, String> {
    kongctl::listener::ingest::gunzip_bounded_into(body, 1 << 20, out)
        .map_err(|e| format!("gunzip: {e}"))
}

/// A measuring time that `Duration` can hold and that is not negative.
fn secs(s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|e| format!("--secs {s}: {e}"))
}

#[derive(clap::Args)]
pub struct DiskArgs {
    /// File listing the plain bodies, one path per line.
    #[arg(long, value_name = "FILE")]
    pub(crate) list: PathBuf,
    /// The file to append to (deleted at the end).
    #[arg(long, value_name = "PATH")]
    pub(crate) file: PathBuf,
    /// Bodies per write and fdatasync.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub(crate) group: usize,
    /// How long to measure, in seconds.
    #[arg(long, value_name = "S", default_value_t = 3.0)]
    pub(crate) secs: f64,
}

/// Appends the bodies listed in `--list` (plain, record per line) to
/// `--file`, `--group` bodies per `write`, each write followed by
/// `fdatasync`, for `--secs` seconds, then deletes the file. Prints the
/// records/s and MB/s that were made durable: what the disk allows a
/// listener that stores these records with group commit, whatever its CPU.
pub fn disk_cmd(args: &DiskArgs) -> Result<(), String> {
    use std::io::Write;
    let (path, group) = (&args.file, args.group);
    let limit = secs(args.secs)?;
    let bodies = read_bodies(&args.list)?;
    let mut chunk = Vec::new();
    let mut records_per_chunk = 0u64;
    for b in bodies.iter().cycle().take(group.max(1)) {
        chunk.extend_from_slice(b);
        records_per_chunk += b.iter().filter(|&&c| c == b'\n').count() as u64;
    }
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    let started = Instant::now();
    let mut chunks = 0u64;
    let result = (|| {
        while started.elapsed() < limit {
            file.write_all(&chunk)?;
            file.sync_data()?;
            chunks += 1;
        }
        std::io::Result::Ok(())
    })();
    let elapsed = started.elapsed().as_secs_f64();
    let _ = fs::remove_file(path);
    result.map_err(|e| format!("write {}: {e}", path.display()))?;
    println!(
        "disk records_per_s={:.0} mb_per_s={:.1} syncs_per_s={:.0} group={group} secs={elapsed:.2}",
        (chunks * records_per_chunk) as f64 / elapsed,
        (chunks * chunk.len() as u64) as f64 / elapsed / 1e6,
        chunks as f64 / elapsed
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct StartupArgs {
    /// How many starts.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub(crate) runs: usize,
    /// The state file whose `"running": true` means ready (deleted before
    /// each start).
    #[arg(long, value_name = "FILE")]
    pub(crate) state: PathBuf,
    /// Also note when this port on 127.0.0.1 first accepts a connection.
    #[arg(long, value_name = "P")]
    pub(crate) port: Option<u16>,
    /// Where the command's stdout and stderr go (appended).
    #[arg(long, value_name = "FILE", default_value = "/dev/null")]
    pub(crate) log: PathBuf,
    /// The command to start, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub(crate) command: Vec<OsString>,
}

/// Starts the command `--runs` times. Each time: deletes `--state`, execs the
/// command and polls every 100 us until the state file exists and says
/// `"running": true` (kongctl writes `listener.json` once the listener is
/// bound and Konnect is configured, just before it serves), and, with
/// `--port`, notes when that port first accepts a TCP connection. Then sends
/// SIGTERM and waits for a clean exit (the listener's Konnect cleanup), so
/// the next run starts from the same state. Prints each run and min/median/max.
pub fn startup_cmd(args: &StartupArgs) -> Result<(), String> {
    let (program, rest) = args
        .command
        .split_first()
        .expect("clap requires at least one word of COMMAND");
    let (runs, state, port) = (args.runs, &args.state, args.port);
    let log = args.log.display();

    let mut ready_ms = Vec::new();
    let mut port_ms = Vec::new();
    for run in 1..=runs {
        let _ = fs::remove_file(state);
        let log_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&args.log)
            .map_err(|e| format!("open {log}: {e}"))?;
        let started = Instant::now();
        let mut child = Command::new(program)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("exec {}: {e}", program.to_string_lossy()))?;
        let (mut ready, mut accepted) = (None, None);
        let outcome = loop {
            if accepted.is_none()
                && let Some(p) = port
                && TcpStream::connect(("127.0.0.1", p)).is_ok()
            {
                accepted = Some(started.elapsed());
            }
            if is_running(state) {
                ready = Some(started.elapsed());
                break Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                break Err(format!(
                    "run {run}: the command exited ({status}) before it was ready; see {log}"
                ));
            }
            if started.elapsed() > Duration::from_secs(20) {
                break Err(format!("run {run}: not ready within 20 s; see {log}"));
            }
            std::thread::sleep(Duration::from_micros(100));
        };
        let stopped = stop(&mut child);
        outcome?;
        stopped.map_err(|e| format!("run {run}: {e}; see {log}"))?;
        let ready = ready.expect("set when the loop ends well");
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        match accepted {
            Some(a) => println!(
                "startup run={run} ready_ms={:.1} port_accepting_ms={:.1}",
                ms(ready),
                ms(a)
            ),
            None => println!("startup run={run} ready_ms={:.1}", ms(ready)),
        }
        ready_ms.push(ms(ready));
        if let Some(a) = accepted {
            port_ms.push(ms(a));
        }
    }
    let summary = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        format!("{:.1}/{median:.1}/{:.1}", v[0], v[v.len() - 1])
    };
    let mut line = format!(
        "startup_summary runs={runs} ready_ms={}",
        summary(&mut ready_ms)
    );
    if !port_ms.is_empty() {
        line += &format!(" port_accepting_ms={}", summary(&mut port_ms));
    }
    println!("{line}");
    Ok(())
}

fn is_running(state: &Path) -> bool {
    fs::read(state).is_ok_and(|s| s.windows(15).any(|w| w == b"\"running\": true"))
}

/// SIGTERM, then wait up to 20 s for a successful exit (SIGKILL after that).
fn stop(child: &mut std::process::Child) -> Result<(), String> {
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) on the pid of our own child, which has not been
    // waited for yet, so the pid cannot have been reused.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("exited with {status} after SIGTERM")),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("did not exit within 20 s of SIGTERM (killed)".into());
            }
        }
    }
}

/// The bodies whose paths `list` holds, one per line; at least one.
fn read_bodies(list: &Path) -> Result<Vec<Vec<u8>>, String> {
    let text = fs::read_to_string(list).map_err(|e| format!("read {}: {e}", list.display()))?;
    let bodies: Vec<Vec<u8>> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|p| fs::read(p).map_err(|e| format!("read {p}: {e}")))
        .collect::<Result<_, _>>()?;
    if bodies.is_empty() {
        return Err(format!("no bodies listed in {}", list.display()));
    }
    Ok(bodies)
}
