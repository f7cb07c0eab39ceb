//! `konnect-sim`: the emulator as a process, for the README demo, shell
//! scripts and benchmarks.
//!
//! It binds a loopback address, prints one line a shell can `eval`
//! (`KONNECT_BASE_URL=http://127.0.0.1:PORT KONNECT_PAT=kpat_...`), logs every
//! API request and delivery attempt to stderr (never a token or an
//! authorization value), and stops cleanly on SIGINT or SIGTERM. Exit codes:
//! 0 after a signal, 1 when it cannot listen, 2 for a usage error.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use konnect_sim::{REGIONS, Sim, SimConfig};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "\
Usage: konnect-sim [OPTIONS]

An offline emulator of the Kong Konnect audit-log API and its webhook
delivery. Prints `KONNECT_BASE_URL=... KONNECT_PAT=...` on one line, then
serves until SIGINT or SIGTERM. Control it with the admin API under /_sim/
(see konnect-sim/README.md).

Options:
      --listen ADDR               Address to bind [default: 127.0.0.1:0]
      --allow-remote              Allow a non-loopback --listen address (the
                                  emulator accepts a published PAT: never
                                  expose it)
      --pat TOKEN                 Accepted PAT; repeat for several; the first
                                  is printed [default: the demo PAT]
      --readonly-pat TOKEN        Accepted PAT for reads only (403 on
                                  mutations); repeatable
      --batch-size N              Records per delivered batch [default: 50]
      --rate EVENTS_PER_SEC       Generate events steadily from the start
      --rate-region REGION        Region of --rate [default: us]
      --retry-wait-ms MS[,MS...]  Waits before delivery retries: one value
                                  doubles (MS,2MS,4MS,8MS), or list up to 4
                                  [default: 1000,2000,4000,8000]
      --delivery-timeout-ms MS    Limit of one delivery attempt [default: 10000]
      --seed N                    Seed of ids and generated records
  -h, --help                      Print this help
  -V, --version                   Print the version

Logs go to stderr; set KONNECT_SIM_LOG (e.g. `debug`, `warn`) to filter them.
";

/// What the command line asks for.
enum Command {
    Run(Box<Options>),
    Help,
    Version,
}

struct Options {
    listen: SocketAddr,
    allow_remote: bool,
    config: SimConfig,
    rate: Option<f64>,
    rate_region: String,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut options = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        allow_remote: false,
        config: SimConfig::default(),
        rate: None,
        rate_region: "us".to_string(),
    };
    let mut pats = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--allow-remote" => options.allow_remote = true,
            "--listen" => {
                let text = value()?;
                options.listen = text
                    .parse()
                    .map_err(|_| format!("--listen {text:?} is not an IP:PORT address"))?;
            }
            "--pat" => pats.push(non_empty("--pat", value()?)?),
            "--readonly-pat" => options
                .config
                .readonly_pats
                .push(non_empty("--readonly-pat", value()?)?),
            "--batch-size" => {
                options.config.batch_size = number::<usize>("--batch-size", &value()?)?;
                if options.config.batch_size == 0 {
                    return Err("--batch-size must be at least 1".to_string());
                }
            }
            "--rate" => {
                let rate = number::<f64>("--rate", &value()?)?;
                if !rate.is_finite() || rate < 0.0 {
                    return Err("--rate must be a number of events per second >= 0".to_string());
                }
                options.rate = Some(rate);
            }
            "--rate-region" => {
                let region = value()?;
                if !REGIONS.contains(&region.as_str()) {
                    return Err(format!(
                        "--rate-region {region:?} is not one of {}",
                        REGIONS.join(", ")
                    ));
                }
                options.rate_region = region;
            }
            "--retry-wait-ms" => options.config.retry_waits = retry_waits(&value()?)?,
            "--delivery-timeout-ms" => {
                let ms = number::<u64>("--delivery-timeout-ms", &value()?)?;
                options.config.delivery_timeout = Duration::from_millis(ms.max(1));
            }
            "--seed" => options.config.seed = number::<u64>("--seed", &value()?)?,
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    if !pats.is_empty() {
        options.config.pats = pats;
    }
    Ok(Command::Run(Box::new(options)))
}

fn non_empty(flag: &str, value: String) -> Result<String, String> {
    if value.trim().is_empty() || value.contains(char::is_whitespace) {
        return Err(format!("{flag} needs a token without blanks"));
    }
    Ok(value)
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{flag} {text:?} is not a valid number"))
}

/// `MS` (doubled three times) or `MS,MS,...` (at most four).
fn retry_waits(text: &str) -> Result<Vec<Duration>, String> {
    let values = text
        .split(',')
        .map(|part| number::<u64>("--retry-wait-ms", part))
        .collect::<Result<Vec<u64>, String>>()?;
    match values.as_slice() {
        [one] => Ok((0..4)
            .map(|i| Duration::from_millis(one.saturating_mul(1 << i)))
            .collect()),
        many if many.len() <= konnect_sim::MAX_RETRIES => {
            Ok(many.iter().map(|ms| Duration::from_millis(*ms)).collect())
        }
        _ => Err(format!(
            "--retry-wait-ms takes one value or at most {} (Konnect retries at most {} times)",
            konnect_sim::MAX_RETRIES,
            konnect_sim::MAX_RETRIES
        )),
    }
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(options)) => *options,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("konnect-sim {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("konnect-sim: error: {message}\n\nRun 'konnect-sim --help' for usage.");
            return ExitCode::from(2);
        }
    };
    if !options.listen.ip().is_loopback() && !options.allow_remote {
        eprintln!(
            "konnect-sim: error: refusing to listen on {}: the emulator accepts a published PAT, so it only \
             listens on loopback (127.0.0.1, ::1). Add --allow-remote if you really mean it.",
            options.listen
        );
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_env("KONNECT_SIM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("konnect-sim: error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(options))
}

async fn run(options: Options) -> ExitCode {
    // Install the handlers before announcing the address, so a signal sent
    // right after the line is read is not lost.
    let (mut terminate, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("konnect-sim: error: cannot install signal handlers: {error}");
            return ExitCode::FAILURE;
        }
    };
    let sim = match Sim::start(options.listen, options.config).await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!(
                "konnect-sim: error: cannot listen on {}: {error}",
                options.listen
            );
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let announced = writeln!(
        stdout,
        "KONNECT_BASE_URL={} KONNECT_PAT={}",
        sim.base_url(),
        sim.pat()
    )
    .and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(error) = announced {
        // Whoever started us can no longer learn the address.
        eprintln!("konnect-sim: error: cannot write to stdout: {error}");
        sim.shutdown().await;
        return ExitCode::FAILURE;
    }
    if let Some(rate) = options.rate {
        sim.set_rate(&options.rate_region, rate);
    }
    let signal_name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!(signal = signal_name, "shutting down");
    sim.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        match parse_args(args.iter().map(|a| a.to_string()))? {
            Command::Run(options) => Ok(*options),
            _ => Err("not a run".to_string()),
        }
    }

    #[test]
    fn defaults_are_loopback_and_the_demo_pat() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.listen, SocketAddr::from(([127, 0, 0, 1], 0)));
        assert_eq!(options.config.pats, [konnect_sim::DEMO_PAT]);
        assert!(!options.allow_remote);
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let options = parse(&[
            "--listen=127.0.0.1:9",
            "--pat",
            "kpat_a",
            "--pat=kpat_b",
            "--readonly-pat",
            "kpat_r",
            "--batch-size",
            "7",
            "--rate",
            "2.5",
            "--rate-region",
            "eu",
            "--retry-wait-ms",
            "10",
            "--seed",
            "3",
        ])
        .unwrap();
        assert_eq!(options.listen.port(), 9);
        assert_eq!(options.config.pats, ["kpat_a", "kpat_b"]);
        assert_eq!(options.config.readonly_pats, ["kpat_r"]);
        assert_eq!(options.config.batch_size, 7);
        assert_eq!(options.rate, Some(2.5));
        assert_eq!(options.rate_region, "eu");
        assert_eq!(
            options.config.retry_waits,
            [10, 20, 40, 80].map(Duration::from_millis)
        );
        assert_eq!(options.config.seed, 3);
    }

    #[test]
    fn retry_waits_take_a_list_of_at_most_four() {
        assert_eq!(
            retry_waits("1,2,3").unwrap(),
            [1, 2, 3].map(Duration::from_millis)
        );
        assert!(retry_waits("1,2,3,4,5").is_err());
        assert!(retry_waits("x").is_err());
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for bad in [
            &["--listen", "localhost:0"][..],
            &["--listen"],
            &["--batch-size", "0"],
            &["--rate", "-1"],
            &["--rate-region", "mars"],
            &["--pat", ""],
            &["--frobnicate"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
