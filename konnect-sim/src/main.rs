//! `konnect-sim`: the emulator as a process, for the README demo, shell
//! scripts and benchmarks.
//!
//! It binds a loopback address, prints one line a shell can `eval`
//! (`KONNECT_BASE_URL=http://127.0.0.1:PORT KONNECT_PAT=kpat_...`), logs every
//! API request and delivery attempt to stderr (never a token or an
//! authorization value), and stops cleanly on SIGINT or SIGTERM. Exit codes:
//! 0 after a signal (and for `--help`, `--version`), 1 when it cannot
//! listen, 2 for a usage error (clap's code) or a refused `--listen`.
//!
//! [`Cli`] only parses; `Options::from` turns it into the [`SimConfig`] and
//! the startup settings.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use clap::builder::PossibleValuesParser;
use konnect_sim::{MAX_RETRIES, REGIONS, Sim, SimConfig};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// An offline emulator of the Kong Konnect audit-log API and its webhook
/// delivery. Prints `KONNECT_BASE_URL=... KONNECT_PAT=...` on one line, then
/// serves until SIGINT or SIGTERM. Control it with the admin API under /_sim/
/// (see konnect-sim/README.md).
//
// One paragraph per doc comment: `-h` and `--help` show the same compact list.
#[derive(Debug, Parser)]
#[command(
    name = "konnect-sim",
    version,
    max_term_width = 100,
    after_help = "Logs go to stderr; set KONNECT_SIM_LOG (e.g. `debug`, `warn`) to filter them."
)]
struct Cli {
    /// Address to bind.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// Allow a non-loopback --listen address (the emulator accepts a
    /// published PAT: never expose it).
    #[arg(long)]
    allow_remote: bool,

    /// Accepted PAT; repeat for several; the first is printed [default: the
    /// demo PAT].
    #[arg(long = "pat", value_name = "TOKEN", value_parser = token)]
    pats: Vec<String>,

    /// Accepted PAT for reads only (403 on mutations); repeatable.
    #[arg(long = "readonly-pat", value_name = "TOKEN", value_parser = token)]
    readonly_pats: Vec<String>,

    /// Records per delivered batch.
    #[arg(
        long,
        value_name = "N",
        default_value_t = SimConfig::default().batch_size,
        value_parser = batch_size
    )]
    batch_size: usize,

    /// Generate events steadily from the start.
    #[arg(long, value_name = "EVENTS_PER_SEC", value_parser = rate)]
    rate: Option<f64>,

    /// Region of --rate.
    #[arg(
        long,
        value_name = "REGION",
        default_value = "us",
        value_parser = PossibleValuesParser::new(REGIONS)
    )]
    rate_region: String,

    /// Waits before delivery retries: one value doubles (MS,2MS,4MS,8MS), or
    /// list up to 4.
    #[arg(
        long = "retry-wait-ms",
        value_name = "MS[,MS...]",
        default_value = "1000,2000,4000,8000",
        value_parser = retry_waits
    )]
    retry_waits: RetryWaits,

    /// Limit of one delivery attempt.
    #[arg(
        long = "delivery-timeout-ms",
        value_name = "MS",
        default_value_t = SimConfig::default().delivery_timeout.as_millis() as u64
    )]
    delivery_timeout_ms: u64,

    /// Seed of ids and generated records.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

/// The waits of `--retry-wait-ms`.
#[derive(Clone, Debug, PartialEq)]
struct RetryWaits(Vec<Duration>);

/// What the command line asks for, checked.
#[derive(Debug)]
struct Options {
    listen: SocketAddr,
    allow_remote: bool,
    config: SimConfig,
    rate: Option<f64>,
    rate_region: String,
}

impl From<Cli> for Options {
    fn from(cli: Cli) -> Options {
        let defaults = SimConfig::default();
        Options {
            listen: cli.listen,
            allow_remote: cli.allow_remote,
            config: SimConfig {
                pats: if cli.pats.is_empty() {
                    defaults.pats
                } else {
                    cli.pats
                },
                readonly_pats: cli.readonly_pats,
                batch_size: cli.batch_size,
                retry_waits: cli.retry_waits.0,
                delivery_timeout: Duration::from_millis(cli.delivery_timeout_ms.max(1)),
                seed: cli.seed.unwrap_or(defaults.seed),
                ..defaults
            },
            rate: cli.rate,
            rate_region: cli.rate_region,
        }
    }
}

/// A PAT value: not empty, no blanks.
fn token(value: &str) -> Result<String, String> {
    if value.trim().is_empty() || value.contains(char::is_whitespace) {
        return Err("needs a token without blanks".to_string());
    }
    Ok(value.to_string())
}

fn batch_size(text: &str) -> Result<usize, String> {
    match number::<usize>(text)? {
        0 => Err("must be at least 1".to_string()),
        size => Ok(size),
    }
}

fn rate(text: &str) -> Result<f64, String> {
    let rate = number::<f64>(text)?;
    if !rate.is_finite() || rate < 0.0 {
        return Err("must be a number of events per second >= 0".to_string());
    }
    Ok(rate)
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a valid number"))
}

/// `MS` (doubled three times) or `MS,MS,...` (at most four).
fn retry_waits(text: &str) -> Result<RetryWaits, String> {
    let values = text
        .split(',')
        .map(number::<u64>)
        .collect::<Result<Vec<u64>, String>>()?;
    match values.as_slice() {
        [one] => Ok(RetryWaits(
            (0..4)
                .map(|i| Duration::from_millis(one.saturating_mul(1 << i)))
                .collect(),
        )),
        many if many.len() <= MAX_RETRIES => Ok(RetryWaits(
            many.iter().map(|ms| Duration::from_millis(*ms)).collect(),
        )),
        _ => Err(format!(
            "takes one value or at most {MAX_RETRIES} (Konnect retries at most {MAX_RETRIES} times)"
        )),
    }
}

fn main() -> ExitCode {
    // Help and version exit 0, usage errors 2 (clap's codes).
    let options = Options::from(Cli::parse());
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
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        let argv = std::iter::once("konnect-sim").chain(args.iter().copied());
        Cli::try_parse_from(argv).map(Options::from)
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_loopback_the_demo_pat_and_the_library_defaults() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.listen, SocketAddr::from(([127, 0, 0, 1], 0)));
        assert_eq!(options.config.pats, [konnect_sim::DEMO_PAT]);
        assert!(!options.allow_remote);
        assert_eq!(options.rate, None);
        assert_eq!(options.rate_region, "us");
        let defaults = SimConfig::default();
        assert_eq!(options.config.batch_size, defaults.batch_size);
        assert_eq!(options.config.retry_waits, defaults.retry_waits);
        assert_eq!(options.config.delivery_timeout, defaults.delivery_timeout);
        assert_eq!(options.config.seed, defaults.seed);
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let options = parse(&[
            "--listen=127.0.0.1:9",
            "--allow-remote",
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
            "--delivery-timeout-ms=0",
            "--seed",
            "3",
        ])
        .unwrap();
        assert_eq!(options.listen.port(), 9);
        assert!(options.allow_remote);
        assert_eq!(options.config.pats, ["kpat_a", "kpat_b"]);
        assert_eq!(options.config.readonly_pats, ["kpat_r"]);
        assert_eq!(options.config.batch_size, 7);
        assert_eq!(options.rate, Some(2.5));
        assert_eq!(options.rate_region, "eu");
        assert_eq!(
            options.config.retry_waits,
            [10, 20, 40, 80].map(Duration::from_millis)
        );
        assert_eq!(options.config.delivery_timeout, Duration::from_millis(1));
        assert_eq!(options.config.seed, 3);
    }

    #[test]
    fn retry_waits_take_a_list_of_at_most_four() {
        assert_eq!(
            retry_waits("1,2,3").unwrap(),
            RetryWaits([1, 2, 3].map(Duration::from_millis).to_vec())
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
            &["--rate", "NaN"],
            &["--rate-region", "mars"],
            &["--pat", ""],
            &["--pat", "a b"],
            &["--frobnicate"],
        ] {
            let error = parse(bad).expect_err(&format!("{bad:?}"));
            assert_eq!(error.exit_code(), 2, "{bad:?}: {error}");
        }
    }
}
