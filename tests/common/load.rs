//! Load for the crash and concurrency tests: client threads that post
//! batches of unique, self-checking records to a listener over keep-alive
//! connections and remember which records got a 202.
//!
//! A record is one JSON object, `{"seq":N,"n":L,"pad":"xx…x"}` with `L`
//! pad bytes: [`Record::parse`] accepts a line only if it is exactly what
//! [`record_line`] made for that `seq` and `n`, so a torn, glued or altered
//! line never passes for a record. Every `seq` comes from one [`SeqSource`]
//! and is sent once, never retried: a `seq` found twice in the file was
//! stored twice.

use std::collections::HashSet;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use test_support::RawConn;

/// The `Authorization` value `World::start_listener` configures.
pub const AUTH: &str = "Bearer test-secret";

/// Waits until the server at `server` has accepted every connection from
/// `clients` and read all that they sent, as the kernel's TCP table
/// (`/proc/net/tcp`, `tcp6`) shows it: the server's end of each has an
/// inode (it left the accept queue) and an empty receive queue.
pub fn wait_until_read(server: SocketAddr, clients: &[SocketAddr]) {
    let read_all = || {
        let table = ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect::<String>();
        clients.iter().all(|client| {
            table.lines().skip(1).any(|row| {
                let f: Vec<&str> = row.split_whitespace().collect();
                let port = |addr: &str| {
                    addr.rsplit(':')
                        .next()
                        .and_then(|p| u16::from_str_radix(p, 16).ok())
                };
                f.len() > 9
                    && port(f[1]) == Some(server.port())
                    && port(f[2]) == Some(client.port())
                    && f[9] != "0"
                    && f[4].rsplit(':').next() == Some("00000000")
            })
        })
    };
    super::eventually("the listener to read what was sent", read_all);
}

/// Hands out record numbers, unique across loads and listener restarts.
#[derive(Clone, Default)]
pub struct SeqSource(Arc<AtomicU64>);

impl SeqSource {
    pub fn new() -> SeqSource {
        SeqSource::default()
    }

    /// `count` consecutive numbers.
    pub fn take(&self, count: u64) -> std::ops::Range<u64> {
        let start = self.0.fetch_add(count, Ordering::Relaxed);
        start..start + count
    }

    /// How many numbers were handed out.
    pub fn issued(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The stored form of record `seq` with `pad` padding bytes.
pub fn record_line(seq: u64, pad: usize) -> String {
    format!(
        "{{\"seq\":{seq},\"n\":{pad},\"pad\":\"{}\"}}",
        "x".repeat(pad)
    )
}

/// A line of events.jsonl recognised as one of our records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
}

impl Record {
    /// Parses `line` as a complete JSON object and checks it is exactly
    /// [`record_line`] for its `seq` and `n`.
    pub fn parse(line: &[u8]) -> Result<Record, String> {
        let show = || String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned();
        let v: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| format!("not one complete JSON value ({e}): {}", show()))?;
        let seq = v["seq"]
            .as_u64()
            .ok_or_else(|| format!("no seq: {}", show()))?;
        let n = v["n"].as_u64().ok_or_else(|| format!("no n: {}", show()))?;
        if record_line(seq, n as usize).as_bytes() != line {
            return Err(format!("altered record {seq}: {}", show()));
        }
        Ok(Record { seq })
    }
}

/// A body of records, plain or gzip.
pub fn batch_body(seqs: std::ops::Range<u64>, pad: usize, gzip: bool) -> Vec<u8> {
    let mut text = String::new();
    for seq in seqs {
        text.push_str(&record_line(seq, pad));
        text.push('\n');
    }
    if gzip {
        super::gzip(text.as_bytes())
    } else {
        text.into_bytes()
    }
}

/// How a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A complete HTTP response with this status; `close` when the server
    /// said `Connection: close`.
    Status { code: u16, close: bool },
    /// The connection failed (refused, reset, closed) before a complete
    /// response arrived.
    ConnectionFailed,
}

/// One keep-alive HTTP/1.1 connection to the listener (test-support's raw
/// client).
pub struct Conn(RawConn);

impl Conn {
    pub fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let conn = RawConn::connect(addr)?;
        conn.set_timeout(super::PATIENCE)?;
        Ok(Conn(conn))
    }

    /// A POST of `body` to `/audit-logs`, as Konnect sends it.
    pub fn request(body: &[u8], gzip: bool) -> Vec<u8> {
        let mut headers = vec![("Authorization", AUTH), ("Content-Type", "text/plain")];
        if gzip {
            headers.push(("Content-Encoding", "application/gzip"));
        }
        test_support::request("POST", "/audit-logs", &headers, body)
    }

    /// This end's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.0
            .local_addr()
            .expect("a connected socket has an address")
    }

    /// Writes raw bytes (part of a request).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.send(bytes)
    }

    /// Posts `body` and reads the answer.
    pub fn post(&mut self, body: &[u8], gzip: bool) -> Answer {
        if self.send_raw(&Conn::request(body, gzip)).is_err() {
            return Answer::ConnectionFailed;
        }
        self.read_answer()
    }

    /// Reads one complete response.
    pub fn read_answer(&mut self) -> Answer {
        match self.0.read_reply() {
            Ok(reply) => Answer::Status {
                code: reply.status,
                close: reply.closes_connection(),
            },
            Err(_) => Answer::ConnectionFailed,
        }
    }
}

/// What the load generator does.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Client threads, one keep-alive connection each.
    pub threads: usize,
    /// Records per request.
    pub records_per_batch: usize,
    /// Padding bytes per record (a record is about `pad + 30` bytes).
    pub pad: usize,
    /// Share of requests sent gzip-compressed.
    pub gzip_share: f64,
    /// Seed of the per-thread RNGs (thread `i` uses `seed + i`).
    pub seed: u64,
    /// Requests per thread before it stops by itself (`None`: until
    /// stopped).
    pub requests_per_thread: Option<usize>,
}

impl LoadConfig {
    /// 8 threads posting batches of 50 records of about 200 bytes, half of
    /// them gzip, like Konnect's deliveries.
    pub fn konnect_like(seed: u64) -> LoadConfig {
        LoadConfig {
            threads: 8,
            records_per_batch: 50,
            pad: 170,
            gzip_share: 0.5,
            seed,
            requests_per_thread: None,
        }
    }
}

/// What the load saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Records whose request got a 202.
    pub acked: HashSet<u64>,
    /// Records whose request got no complete answer (may or may not be
    /// stored, at most once).
    pub unanswered: HashSet<u64>,
    /// Records whose request got another status.
    pub refused: HashSet<u64>,
    pub requests_acked: u64,
    pub requests_unanswered: u64,
    /// Statuses other than 202, with their counts.
    pub other_statuses: Vec<u16>,
}

impl LoadReport {
    fn merge(&mut self, other: LoadReport) {
        self.acked.extend(other.acked);
        self.unanswered.extend(other.unanswered);
        self.refused.extend(other.refused);
        self.requests_acked += other.requests_acked;
        self.requests_unanswered += other.requests_unanswered;
        self.other_statuses.extend(other.other_statuses);
    }

    /// Every record sent.
    pub fn sent(&self) -> impl Iterator<Item = &u64> {
        self.acked
            .iter()
            .chain(&self.unanswered)
            .chain(&self.refused)
    }
}

/// Running load; [`Load::stop`] ends it and returns the report.
pub struct Load {
    stop: Arc<AtomicBool>,
    acked_requests: Arc<AtomicU64>,
    threads: Vec<JoinHandle<LoadReport>>,
}

impl Load {
    /// Starts `config.threads` clients posting to `addr`'s `/audit-logs`.
    pub fn start(addr: SocketAddr, config: &LoadConfig, seqs: &SeqSource) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked_requests = Arc::new(AtomicU64::new(0));
        let threads = (0..config.threads)
            .map(|i| {
                let config = config.clone();
                let seqs = seqs.clone();
                let stop = Arc::clone(&stop);
                let acked = Arc::clone(&acked_requests);
                std::thread::Builder::new()
                    .name(format!("load-{i}"))
                    .spawn(move || client(addr, &config, i, &seqs, &stop, &acked))
                    .expect("load thread starts")
            })
            .collect();
        Load {
            stop,
            acked_requests,
            threads,
        }
    }

    /// Requests answered 202 so far.
    pub fn acked_requests(&self) -> u64 {
        self.acked_requests.load(Ordering::Relaxed)
    }

    /// Whether every thread finished by itself (`requests_per_thread`).
    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }

    /// Stops the clients (a request in progress is finished or fails) and
    /// returns what they saw.
    pub fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut report = LoadReport::default();
        for t in self.threads {
            report.merge(t.join().expect("load thread does not panic"));
        }
        report
    }
}

fn client(
    addr: SocketAddr,
    config: &LoadConfig,
    index: usize,
    seqs: &SeqSource,
    stop: &AtomicBool,
    acked_requests: &AtomicU64,
) -> LoadReport {
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(index as u64));
    let mut report = LoadReport::default();
    let mut conn: Option<Conn> = None;
    let mut sent = 0usize;
    while !stop.load(Ordering::Relaxed) && config.requests_per_thread.is_none_or(|max| sent < max) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::connect(addr) {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    // The listener is gone (killed) or not accepting yet.
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            },
        };
        let range = seqs.take(config.records_per_batch as u64);
        let gzip = rng.random_bool(config.gzip_share);
        let body = batch_body(range.clone(), config.pad, gzip);
        sent += 1;
        match c.post(&body, gzip) {
            Answer::Status { code: 202, close } => {
                report.acked.extend(range);
                report.requests_acked += 1;
                acked_requests.fetch_add(1, Ordering::Relaxed);
                if close {
                    conn = None;
                }
            }
            Answer::Status { code, .. } => {
                report.refused.extend(range);
                report.other_statuses.push(code);
                conn = None;
            }
            Answer::ConnectionFailed => {
                report.unanswered.extend(range);
                report.requests_unanswered += 1;
                conn = None;
            }
        }
    }
    report
}

/// What a scan of events.jsonl found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Each record's seq, in file order.
    pub seqs: Vec<u64>,
    /// Lines that are not one of our records.
    pub bad_lines: Vec<String>,
    /// Seqs found more than once (here or in `seen` before).
    pub duplicates: Vec<u64>,
    /// Whether the file ends without `\n` (a torn final line).
    pub torn: bool,
    /// Offset just past the last `\n` (relative to the scanned bytes).
    pub whole_end: usize,
}

/// Scans the whole lines of `bytes` (which must start at a line start),
/// adding each record's seq to `seen`.
pub fn scan(bytes: &[u8], seen: &mut HashSet<u64>) -> Scan {
    let mut out = Scan {
        torn: bytes.last().is_some_and(|&b| b != b'\n'),
        ..Scan::default()
    };
    let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
        return out;
    };
    out.whole_end = end + 1;
    for line in bytes[..end].split(|&b| b == b'\n') {
        match Record::parse(line) {
            Ok(r) => {
                if !seen.insert(r.seq) {
                    out.duplicates.push(r.seq);
                }
                out.seqs.push(r.seq);
            }
            Err(e) => out.bad_lines.push(e),
        }
    }
    out
}

/// The bytes of `path` from `offset` to its end.
pub fn read_from(path: &std::path::Path, offset: u64) -> Vec<u8> {
    use std::io::Seek;
    let mut f = std::fs::File::open(path).expect("events file opens");
    f.seek(io::SeekFrom::Start(offset)).expect("seek");
    let mut out = Vec::new();
    f.read_to_end(&mut out).expect("events file reads");
    out
}
