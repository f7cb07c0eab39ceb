//! `kongctl-bench`: the helpers `bench/run.sh` needs that are better done in
//! Rust than in shell, so the harness needs nothing beyond cargo and a few
//! Debian packages.
//!
//! - `corpus`: Konnect-like records (JSONL) for `tail --jq`;
//! - `store`: a profile's store (gzip'd segments, index, active file) of
//!   Konnect webhook records, for `get audit-logs --stored`;
//! - `bodies`: request bodies of N records, plain and gzip, for the load;
//! - `bomb`: a gzip body that decodes to far more than the listener's limit;
//! - `gunzip`: how many of the gzip bodies one core can merely gunzip per
//!   second, with the listener's own inflater (flate2 on zlib-rs);
//! - `verify`: every line of a file is exactly one JSON object, and there
//!   are at least N lines;
//! - `go-escape`: rewrites gojq's output with Go's `json.Marshal` escapes of
//!   `<`, `>`, `&`, U+2028 and U+2029 (what the original `tail --jq` printed);
//! - `startup`: time from exec to a listener being ready, repeated;
//! - `disk`: how many records/s this disk takes durably (the plain bodies
//!   appended and `fdatasync`ed in groups, like the listener's group
//!   commit, without HTTP or decoding): the ceiling of any durable listener;
//! - `free-port`: an unused TCP port on 127.0.0.1.

mod corpus;
mod measure;
mod sign;
mod store;

use std::fs;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Helpers for bench/run.sh.
#[derive(Parser)]
#[command(name = "kongctl-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes Konnect-like audit records, one JSON object per line.
    Corpus {
        /// How many records.
        #[arg(long, value_name = "N")]
        records: u64,
        /// Seed of the generator: the same seed gives the same records.
        #[arg(long, value_name = "S", default_value_t = 7)]
        seed: u64,
        /// The JSONL file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Writes a profile's store (segments.json, gzip'd segments, an active
    /// events.jsonl) of Konnect webhook records ending now.
    Store(store::StoreArgs),
    /// Writes request bodies of N records each, plain and gzip, with lists
    /// of their paths (list.plain, list.gzip).
    Bodies {
        /// Records per body.
        #[arg(long, value_name = "N")]
        records: usize,
        /// How many bodies.
        #[arg(long, value_name = "B")]
        bodies: usize,
        /// Seed of the generator.
        #[arg(long, value_name = "S", default_value_t = 42)]
        seed: u64,
        /// The directory to write them to (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Sign every record with a fixed test key (Kong's scheme, `sig`
        /// last), so that a listener checking signatures does one Ed25519
        /// verification per record (the key is not Konnect's: the records
        /// fail the check, at the full cost of one).
        #[arg(long)]
        signed: bool,
    },
    /// Writes a gzip body that decodes to N MiB of newlines.
    Bomb {
        /// Decoded size in MiB.
        #[arg(long, value_name = "N")]
        decoded_mib: usize,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Measures how fast one core merely gunzips the listed bodies.
    Gunzip(measure::GunzipArgs),
    /// Measures how fast one core checks the signatures of the listed
    /// (plain) bodies' records, as they are and validly signed.
    Sigcheck(measure::SigcheckArgs),
    /// Checks that every line of FILE is one JSON object and that there are
    /// at least MIN_LINES lines (exit 0 on PASS, 1 on FAIL).
    Verify {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[arg(value_name = "MIN_LINES")]
        min_lines: u64,
    },
    /// Copies stdin to stdout with Go's json.Marshal escapes of <, >, &,
    /// U+2028 and U+2029.
    GoEscape,
    /// Measures how many records/s this disk takes durably.
    Disk(measure::DiskArgs),
    /// Measures the time from exec to a listener being ready, repeatedly.
    Startup(measure::StartupArgs),
    /// Prints an unused TCP port on 127.0.0.1.
    FreePort,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let name = matches.subcommand_name().unwrap_or_default().to_owned();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Corpus { records, seed, out } => corpus_cmd(records, seed, &out),
        Command::Bodies {
            records,
            bodies,
            seed,
            out,
            signed,
        } => bodies_cmd(records, bodies, seed, signed, &out),
        Command::Bomb { decoded_mib, out } => bomb_cmd(decoded_mib, &out),
        Command::Store(args) => store::store_cmd(&args),
        Command::Gunzip(args) => measure::gunzip_cmd(&args),
        Command::Sigcheck(args) => measure::sigcheck_cmd(&args),
        Command::Verify { file, min_lines } => return verify_cmd(&file, min_lines),
        Command::GoEscape => go_escape(io::stdin().lock(), io::stdout().lock()),
        Command::Disk(args) => measure::disk_cmd(&args),
        Command::Startup(args) => measure::startup_cmd(&args),
        Command::FreePort => free_port(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kongctl-bench {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn err(context: &str, path: &Path) -> impl FnOnce(io::Error) -> String {
    let what = format!("{context} {}", path.display());
    move |e| format!("{what}: {e}")
}

fn corpus_cmd(records: u64, seed: u64, out: &Path) -> Result<(), String> {
    let mut g = corpus::Generator::new(seed);
    let file = fs::File::create(out).map_err(err("create", out))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut line = String::new();
    let mut bytes = 0u64;
    for _ in 0..records {
        line.clear();
        g.record(&mut line);
        bytes += line.len() as u64;
        w.write_all(line.as_bytes()).map_err(err("write", out))?;
    }
    w.flush().map_err(err("write", out))?;
    println!(
        "corpus={} records={records} bytes={bytes} avg_record_bytes={}",
        out.display(),
        bytes / records.max(1)
    );
    Ok(())
}

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    use flate2::{Compression, write::GzEncoder};
    let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
    e.write_all(data).expect("writing to a Vec cannot fail");
    e.finish().expect("writing to a Vec cannot fail")
}

fn bodies_cmd(
    per_body: usize,
    count: usize,
    seed: u64,
    signed: bool,
    dir: &Path,
) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(err("create", dir))?;
    let dir = fs::canonicalize(dir).map_err(err("resolve", dir))?;
    let mut g = corpus::Generator::new(seed);
    let key = signed.then(sign::TestKey::new);
    let mut line = String::new();
    let (mut plain_list, mut gzip_list) = (String::new(), String::new());
    let (mut plain_bytes, mut gzip_bytes) = (0, 0);
    for i in 0..count {
        let mut body = String::new();
        for _ in 0..per_body {
            line.clear();
            g.record(&mut line);
            match &key {
                Some(key) => {
                    body.push_str(&key.sign(line.trim_end_matches('\n')));
                    body.push('\n');
                }
                None => body.push_str(&line),
            }
        }
        // Go's gzip default level, which Konnect's sender uses.
        let gz = gzip(body.as_bytes(), 6);
        let plain = dir.join(format!("body_{i:03}.ndjson"));
        let zipped = dir.join(format!("body_{i:03}.ndjson.gz"));
        fs::write(&plain, &body).map_err(err("write", &plain))?;
        fs::write(&zipped, &gz).map_err(err("write", &zipped))?;
        plain_bytes += body.len();
        gzip_bytes += gz.len();
        plain_list += &format!("{}\n", plain.display());
        gzip_list += &format!("{}\n", zipped.display());
    }
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        fs::write(&p, text).map_err(err("write", &p))
    };
    write("list.plain", &plain_list)?;
    write("list.gzip", &gzip_list)?;
    println!(
        "bodies={count} records_per_body={per_body} signed={signed} avg_plain_bytes={} avg_gzip_bytes={} dir={}",
        plain_bytes / count.max(1),
        gzip_bytes / count.max(1),
        dir.display()
    );
    Ok(())
}

fn bomb_cmd(mib: usize, out: &Path) -> Result<(), String> {
    let gz = gzip(&vec![b'\n'; mib << 20], 9);
    fs::write(out, &gz).map_err(err("write", out))?;
    println!(
        "bomb={} bytes={} decoded_bytes={}",
        out.display(),
        gz.len(),
        mib << 20
    );
    Ok(())
}

/// Exit 0 on PASS, 1 on FAIL or an unreadable file (bad usage: clap's 2).
fn verify_cmd(path: &Path, min: u64) -> ExitCode {
    match verify(path, min) {
        Ok(report) => {
            println!("{}", report.line());
            if report.pass() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            println!("verify=FAIL lines=0 expected_min={min} reason={e:?}");
            ExitCode::FAILURE
        }
    }
}

struct VerifyReport {
    lines: u64,
    min: u64,
    bad: u64,
    first_bad: Option<u64>,
    trailing_newline: bool,
}

impl VerifyReport {
    fn pass(&self) -> bool {
        self.bad == 0 && self.trailing_newline && self.lines >= self.min
    }

    fn line(&self) -> String {
        let mut s = format!(
            "verify={} lines={} expected_min={} extra={}",
            if self.pass() { "PASS" } else { "FAIL" },
            self.lines,
            self.min,
            self.lines as i64 - self.min as i64
        );
        if self.bad > 0 {
            s += &format!(
                " bad_lines={} first_bad={}",
                self.bad,
                self.first_bad.unwrap_or(0)
            );
        }
        if !self.trailing_newline {
            s += " no_trailing_newline";
        }
        if self.lines < self.min {
            s += " too_few_lines";
        }
        s
    }
}

/// Accepts exactly one JSON object (whatever it holds) and nothing after it.
struct AnyObject;

impl<'de> serde::Deserialize<'de> for AnyObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = AnyObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<AnyObject, A::Error> {
                while m
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(AnyObject)
            }
        }
        d.deserialize_map(V)
    }
}

fn verify(path: &Path, min: u64) -> io::Result<VerifyReport> {
    let mut r = BufReader::with_capacity(1 << 20, fs::File::open(path)?);
    let mut report = VerifyReport {
        lines: 0,
        min,
        bad: 0,
        first_bad: None,
        trailing_newline: true,
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        report.lines += 1;
        let record = match line.strip_suffix(b"\n") {
            Some(record) => record,
            None => {
                report.trailing_newline = false;
                &line[..]
            }
        };
        if serde_json::from_slice::<AnyObject>(record).is_err() {
            report.bad += 1;
            report.first_bad.get_or_insert(report.lines);
        }
    }
    Ok(report)
}

/// Go's `json.Marshal` escapes these where gojq writes them as they are;
/// in compact JSON output they can only occur inside strings.
fn go_escape(mut input: impl Read, output: impl Write) -> Result<(), String> {
    let mut w = BufWriter::with_capacity(1 << 20, output);
    let mut buf = vec![0u8; 1 << 20];
    // Up to two bytes of a U+2028/U+2029 sequence cut by a read.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = input.read(&mut buf).map_err(|e| e.to_string())?;
        let mut chunk = std::mem::take(&mut carry);
        chunk.extend_from_slice(&buf[..n]);
        let mut end = chunk.len();
        if n > 0 {
            // Keep an unfinished "\xe2" or "\xe2\x80" for the next read.
            if chunk.ends_with(b"\xe2") {
                end -= 1;
            } else if chunk.ends_with(b"\xe2\x80") {
                end -= 2;
            }
        }
        let mut i = 0;
        while i < end {
            let b = chunk[i];
            let escaped: Option<&[u8]> = match b {
                b'<' => Some(b"\\u003c"),
                b'>' => Some(b"\\u003e"),
                b'&' => Some(b"\\u0026"),
                0xe2 if chunk[i..end].starts_with(b"\xe2\x80\xa8") => Some(b"\\u2028"),
                0xe2 if chunk[i..end].starts_with(b"\xe2\x80\xa9") => Some(b"\\u2029"),
                _ => None,
            };
            match escaped {
                Some(e) => {
                    w.write_all(e).map_err(|e| e.to_string())?;
                    i += if b == 0xe2 { 3 } else { 1 };
                }
                None => {
                    w.write_all(&[b]).map_err(|e| e.to_string())?;
                    i += 1;
                }
            }
        }
        carry.extend_from_slice(&chunk[end..]);
        if n == 0 {
            break;
        }
    }
    w.flush().map_err(|e| e.to_string())
}

fn free_port() -> Result<(), String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    println!("{}", l.local_addr().map_err(|e| e.to_string())?.port());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every form bench/run.sh uses parses into what it means.
    #[test]
    fn parses_what_run_sh_sends() {
        let parse = |line: &str| {
            Cli::try_parse_from(std::iter::once("kongctl-bench").chain(line.split(' ')))
                .unwrap_or_else(|e| panic!("{line}: {e}"))
                .command
        };
        assert!(matches!(
            parse("bodies --records 50 --bodies 16 --seed 42 --out /w/bodies"),
            Command::Bodies { records: 50, bodies: 16, seed: 42, out, signed: false } if out == Path::new("/w/bodies")
        ));
        assert!(matches!(
            parse("bodies --records 50 --bodies 16 --seed 42 --signed --out /w/bodies"),
            Command::Bodies { signed: true, .. }
        ));
        assert!(matches!(
            parse("sigcheck --list /w/bodies/list.plain --secs 1"),
            Command::Sigcheck(_)
        ));
        assert!(matches!(
            parse("bomb --decoded-mib 64 --out /w/bomb.gz"),
            Command::Bomb {
                decoded_mib: 64,
                ..
            }
        ));
        assert!(matches!(
            parse("corpus --records 50000 --out /w/c.jsonl"),
            Command::Corpus {
                records: 50000,
                seed: 7,
                ..
            }
        ));
        assert!(matches!(parse("free-port"), Command::FreePort));
        assert!(matches!(parse("go-escape"), Command::GoEscape));
        assert!(matches!(
            parse("verify /w/events.jsonl 2550"),
            Command::Verify {
                min_lines: 2550,
                ..
            }
        ));
        assert!(matches!(
            parse("gunzip --list /w/list.gzip --secs 1"),
            Command::Gunzip(measure::GunzipArgs { secs: 1.0, .. })
        ));
        assert!(matches!(
            parse("disk --list /w/list.plain --file /w/disk.dat --group 8 --secs 1"),
            Command::Disk(measure::DiskArgs { group: 8, .. })
        ));
        let Command::Startup(s) = parse(
            "startup --runs 7 --port 4000 --log /w/s.log --state /w/listener.json -- \
             kongctl listen --listen-address 127.0.0.1:4000 -d",
        ) else {
            panic!("not startup")
        };
        assert_eq!((s.runs, s.port), (7, Some(4000)));
        // Everything after `--` is the command, flags included.
        assert_eq!(
            s.command,
            [
                "kongctl",
                "listen",
                "--listen-address",
                "127.0.0.1:4000",
                "-d"
            ]
        );
    }

    #[test]
    fn refuses_what_the_old_parser_refused() {
        for line in [
            "verify /w/e.jsonl many",
            "startup --runs 1 --state /w/s kongctl",
            "startup --runs 1 --state /w/s --",
            "corpus --out /w/c.jsonl",
            "bodies --records 1 --bodies 1 --out /w --extra 1",
        ] {
            let argv = std::iter::once("kongctl-bench").chain(line.split(' '));
            assert!(Cli::try_parse_from(argv).is_err(), "{line} parsed");
        }
    }

    #[test]
    fn go_escape_rewrites_exactly_the_five() {
        let input = "{\"a\":\"<b> & \u{2028}\u{2029} é \u{2027}\"}\n".as_bytes();
        let mut out = Vec::new();
        go_escape(input, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a\":\"\\u003cb\\u003e \\u0026 \\u2028\\u2029 é \u{2027}\"}\n"
        );
    }

    #[test]
    fn go_escape_handles_a_sequence_cut_by_a_read() {
        // A reader that returns one byte at a time.
        struct Drip<'a>(&'a [u8]);
        impl Read for Drip<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((&b, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = b;
                self.0 = rest;
                Ok(1)
            }
        }
        let mut out = Vec::new();
        go_escape(Drip("x\u{2028}y\u{e9}".as_bytes()), &mut out).unwrap();
        assert_eq!(out, "x\\u2028y\u{e9}".as_bytes());
    }

    #[test]
    fn verify_counts_and_rejects_glued_or_non_object_lines() {
        let dir = std::env::temp_dir().join(format!("kongctl-bench-verify-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("e.jsonl");
        fs::write(&p, "{\"a\":18446744073709551617}\n{}\n").unwrap();
        assert!(verify(&p, 2).unwrap().pass());
        assert!(!verify(&p, 3).unwrap().pass());
        fs::write(&p, "{\"a\":1}{\"b\":2}\n[1]\n{\"c\":3}").unwrap();
        let r = verify(&p, 0).unwrap();
        assert_eq!(
            (r.lines, r.bad, r.first_bad, r.trailing_newline),
            (3, 2, Some(1), false)
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
