//! The `kongctl` binary: parse, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match kongctl::cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let command = kongctl::cli::Cli::command();
            return match kongctl::parse_error::to_cli_error(&e, &command, &args) {
                // Every parse error is exit 1, as the original's; EX_CONFIG
                // (78) under `listen --dry-run`.
                Some(err) => {
                    eprintln!("{err}");
                    let dry_run = args.iter().any(|a| {
                        a.to_str()
                            .is_some_and(|a| a == "--dry-run" || a.starts_with("--dry-run="))
                    });
                    ExitCode::from(if dry_run {
                        kongctl::error::exit_code::CONFIG as u8
                    } else {
                        1
                    })
                }
                // --help and --version are not failures.
                None => {
                    let _ = e.print();
                    ExitCode::from(if e.use_stderr() { 1 } else { 0 })
                }
            };
        }
    };
    match kongctl::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(u8::try_from(err.code).unwrap_or(1))
        }
    }
}
