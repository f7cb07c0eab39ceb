//! kongctl: watch Kong Konnect organisation audit logs from a terminal.
//!
//! `listen` points the region's audit-log webhook at a public URL (a tunnel
//! to this machine), receives Konnect's gzip'd batches on a local HTTP
//! listener and appends every record durably to `events.jsonl`; `tail` also
//! prints each record, optionally through a jq filter; `ps` lists and stops
//! the listeners started in the background with `--detach`.
//!
//! `main.rs` only parses arguments and maps the outcome to an exit code; the
//! work starts in [`run`].

pub mod cli;
pub mod config;
pub mod delete;
pub mod detach;
pub mod error;
pub mod exec;
pub mod fsutil;
pub mod get;
pub mod gofmt;
pub mod gojson;
pub mod inspect;
pub mod jq;
pub mod konnect;
pub mod listen;
pub mod listener;
pub mod logging;
pub mod output;
pub mod parse_error;
pub mod portal;
pub mod ps;
pub mod query;
pub mod record;
pub mod replay;
pub mod secret;
pub mod service;
pub mod source;
pub mod store;
pub mod tail;
pub mod time;
pub mod verify;
pub mod version;

use cli::{Cli, Command};
use config::{ProcessEnv, Settings};
use error::CliError;
use listen::ListenOptions;

/// Runs one command.
pub fn run(cli: Cli) -> Result<(), CliError> {
    // Reads one file and prints: no profile, config or log file involved.
    if let Command::TailFile(args) = &cli.command {
        return tail_file_command(args);
    }
    // Neither needs a profile or Konnect: they work with a broken config.
    match &cli.command {
        Command::Version(args) => return version_command(&cli.global, args),
        Command::Completion(args) => return completion_command(args.shell),
        _ => {}
    }
    let dry_run = cli
        .command
        .listener_args()
        .is_some_and(|a| a.dry_run.unwrap_or(false));
    let settings = Settings::resolve(&cli.global, &ProcessEnv).map_err(|e| {
        let err = CliError::new(e.to_string());
        if dry_run {
            err.with_code(error::exit_code::CONFIG)
        } else {
            err
        }
    })?;
    let target = log_target(&cli, &settings, dry_run)?;
    let _log_guard = match logging::init(target, settings.log_level) {
        Ok(g) => Some(g),
        Err(why) => {
            eprintln!("Warning: logging disabled: {why}");
            None
        }
    };
    match cli.command {
        Command::Listen(cmd) => {
            let (args, path) = cmd.into_args("listen");
            listen_command(settings, args, path, "listen")
        }
        Command::Tail(cmd) => match cmd.into_request() {
            cli::TailRequest::Listener {
                stray: Some(flag),
                path,
                ..
            } => Err(CliError::usage(
                format!(
                    "{flag} cannot be used with the webhook listener (--endpoint, --public-url or 'listener')"
                ),
                &path,
            )),
            cli::TailRequest::Listener { listen, path, .. } => {
                listen_command(settings, listen, path, "tail")
            }
            cli::TailRequest::Pull(args, path) => get::tail_pull(&settings, args, &path),
            cli::TailRequest::Stored(args, path) => get::tail_stored(&settings, args, &path),
        },
        Command::Get(cmd) => {
            let (args, path) = cmd.into_audit_logs();
            get::get_audit_logs(&settings, args, &path)
        }
        Command::Ps(cmd) => ps_command(&settings, cmd),
        Command::Delete(cmd) => {
            let (resource, path) = cmd.into_resource();
            delete::run(&settings, resource, &path)
        }
        Command::TailFile(args) => tail_file_command(&args),
        Command::Version(args) => version_command(&cli.global, &args),
        Command::Completion(args) => completion_command(args.shell),
    }
}

/// Where this command logs: the detached listener to its own rolled log
/// file; a listener under systemd (unless given a log file), or one only
/// checking (`--dry-run`, which writes no file), to stderr; anything else
/// to the log file.
fn log_target<'a>(
    cli: &Cli,
    settings: &'a Settings,
    dry_run: bool,
) -> Result<logging::Target<'a>, CliError> {
    let Some(args) = cli.command.listener_args() else {
        return Ok(logging::Target::File(&settings.log_file));
    };
    let journal = logging::stderr_is_journal();
    if dry_run {
        return Ok(logging::Target::Stderr { journal });
    }
    if detach::ChildChannel::is_child() {
        let roll = logging::LogRoll::resolve(args, &settings.service, "kongctl listen")?;
        return Ok(logging::Target::Rolled(&settings.log_file, roll));
    }
    let default_file = settings.log_file == settings.logs_dir().join("kongctl.log");
    if default_file && logging::under_systemd() {
        return Ok(logging::Target::Stderr { journal });
    }
    Ok(logging::Target::File(&settings.log_file))
}

fn version_command(global: &cli::GlobalArgs, args: &cli::VersionArgs) -> Result<(), CliError> {
    if !args.positional.is_empty() {
        return Err(CliError::usage(
            "the version command does not accept positional arguments",
            "kongctl version",
        ));
    }
    let text = version::BuildInfo::current().render(global.output.unwrap_or_default());
    print_or_closed(&text)
}

/// The completion script for `shell`, generated from the command tree.
fn completion_command(shell: cli::CompletionShell) -> Result<(), CliError> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let shell = match shell {
        cli::CompletionShell::Bash => Shell::Bash,
        cli::CompletionShell::Zsh => Shell::Zsh,
        cli::CompletionShell::Fish => Shell::Fish,
        cli::CompletionShell::Powershell => Shell::PowerShell,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kongctl", &mut script);
    print_or_closed(&String::from_utf8_lossy(&script))
}

/// Writes `text` to stdout; a closed stdout (`| head`) is not an error.
fn print_or_closed(text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if output::is_closed_pipe(&e) => Ok(()),
        Err(e) => Err(CliError::new(format!("failed to write to stdout: {e}"))),
    }
}

fn tail_file_command(args: &cli::TailFileArgs) -> Result<(), CliError> {
    let filter = jq::JqFilter::from_flag(args.jq.as_deref().unwrap_or(""))
        .map_err(|e| CliError::new(e.to_string()))?;
    // A closed stdout (`| head`) is a normal end, as in `tail`.
    let grep = match &args.grep {
        Some(pattern) => Some(crate::query::Grep::new(pattern).map_err(CliError::new)?),
        None => None,
    };
    tail::print_file(&args.file, filter, grep)
        .map(|_| ())
        .map_err(|e| CliError::new(format!("failed to read {}: {e}", args.file.display())))
}

fn listen_command(
    settings: Settings,
    mut args: cli::ListenArgs,
    command_path: String,
    verb: &str,
) -> Result<(), CliError> {
    if verb == "tail" {
        listen::options::default_tail_if_unset(&mut args);
    }
    let check_jq = |expr: &str| {
        jq::JqFilter::compile(expr)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let dry_run = args.dry_run.unwrap_or(false);
    // Under --dry-run, a bad flag, value or config file is EX_CONFIG.
    let config_error = |e: CliError| {
        if dry_run {
            e.with_code(error::exit_code::CONFIG)
        } else {
            e
        }
    };
    let mut opts = ListenOptions::from_args(&args, &settings.store, &command_path, &check_jq)
        .map_err(config_error)?;
    opts.service = service::ServiceOptions::resolve(
        &args,
        &settings.service,
        opts.listen_address,
        &command_path,
    )
    .map_err(config_error)?;
    if dry_run {
        // Checked here too, so a bad roll setting fails the check as it
        // would fail the detached listener.
        logging::LogRoll::resolve(&args, &settings.service, &command_path).map_err(config_error)?;
    }
    // A credential is needed before anything else happens.
    settings
        .auth()
        .map_err(|e| config_error(CliError::new(e)))?;
    if dry_run {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::new(format!("failed to start the async runtime: {e}")))?;
        return runtime.block_on(listen::dry_run(settings, opts));
    }
    if opts.detach {
        return detach::spawn(&settings, &opts);
    }

    // A detached child reports readiness (or its failure) to its parent.
    let channel = detach::ChildChannel::from_env().map(std::sync::Arc::new);
    if channel.is_some() {
        redirect_stderr_to(&settings.log_file);
    }
    let mut hooks = listen::Hooks::default();
    if let Some(c) = &channel {
        let c = c.clone();
        hooks.on_ready = Some(Box::new(move |ready: &listen::Ready| c.ready(ready)));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kongctl")
        .build()
        .map_err(|e| CliError::new(format!("failed to start the async runtime: {e}")))?;
    let result = runtime.block_on(listen::run(settings, opts, hooks));
    if let Some(c) = &channel {
        c.finish(&result);
    }
    result
}

/// Points stderr at the log file (a detached child has no terminal), so
/// that anything written there, a panic included, is kept.
fn redirect_stderr_to(log_file: &std::path::Path) {
    if let Ok(f) = fsutil::open_private_append(log_file) {
        // dup2 onto fd 2 replaces stderr atomically; `f` is closed after,
        // fd 2 keeps the file open. On failure stderr stays what it was.
        let _ = nix::unistd::dup2_stderr(&f);
    }
}

fn ps_command(settings: &Settings, cmd: cli::PsCommand) -> Result<(), CliError> {
    use cli::{OutputFormat, PsAction};
    if settings.output == OutputFormat::Jsonl {
        return Err(CliError::usage(
            "invalid output format \"jsonl\": ps supports text, json or yaml",
            "kongctl ps",
        ));
    }
    let dir = settings.processes_dir();
    let width = output::table::terminal_width();
    match cmd.action {
        None => {
            if !cmd.positional.is_empty() {
                return Err(CliError::usage(
                    "the ps command does not accept positional arguments",
                    "kongctl ps",
                ));
            }
            let columns = output::columns::resolve(
                &cmd.columns.columns,
                settings.output == OutputFormat::Text,
            )
            .map_err(|e| CliError::usage(e.to_string(), "kongctl ps"))?;
            let listed = ps::list(&dir).map_err(|e| {
                CliError::new(format!(
                    "failed to read process records in {}: {e}",
                    dir.display()
                ))
            })?;
            print!(
                "{}",
                match settings.output {
                    OutputFormat::Text => match &columns {
                        Some(columns) => ps::list::render_columns(&listed, columns, width),
                        None => ps::list::render_text(&listed, width),
                    },
                    OutputFormat::Json => ps::list::render_json(&listed),
                    OutputFormat::Yaml => ps::list::render_yaml(&listed),
                    OutputFormat::Jsonl => unreachable!("jsonl is refused above"),
                }
            );
            Ok(())
        }
        Some(PsAction::Stop(args)) => {
            // Checked before the targets, as in the original.
            let mut values = cmd.columns.columns;
            values.extend(args.columns.columns);
            let columns = output::columns::resolve(&values, settings.output == OutputFormat::Text)
                .map_err(|e| CliError::usage(e.to_string(), "kongctl ps stop"))?;
            let pids: Vec<String> = args.pid.into_iter().collect();
            let target = ps::resolve_target(&pids, args.all)
                .map_err(|e| CliError::usage(e.to_string(), "kongctl ps stop"))?;
            // Go's duration syntax (`15s`, `1m30s`, `1.5s`), as the original
            // (and days); zero and below mean the default.
            let timeout = time::parse_duration(args.timeout.trim()).map_err(|e| {
                CliError::usage(
                    format!(
                        "invalid argument {:?} for \"--timeout\" flag: {e}",
                        args.timeout
                    ),
                    "kongctl ps stop",
                )
            })?;
            let timeout = timeout.max(jiff::SignedDuration::ZERO).unsigned_abs();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::new(format!("failed to start the async runtime: {e}")))?;
            // On a terminal, say what the (possibly long) wait is for.
            let tell = |what: &str| {
                if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                    eprintln!("{what}");
                }
            };
            let results = runtime
                .block_on(ps::stop::stop_with(&dir, target, timeout, &tell))
                .map_err(|e| CliError::new(e.to_string()))?;
            print!(
                "{}",
                match settings.output {
                    OutputFormat::Text => match &columns {
                        Some(columns) => ps::stop::render_columns(&results, columns, width),
                        None => ps::stop::render_text(&results, width),
                    },
                    OutputFormat::Json => ps::stop::render_json(&results),
                    OutputFormat::Yaml => ps::stop::render_yaml(&results),
                    OutputFormat::Jsonl => unreachable!("jsonl is refused above"),
                }
            );
            match ps::stop::failures(&results) {
                Some(f) => {
                    let error = CliError::new(f.message);
                    Err(match f.hint {
                        Some(hint) => error.with_hint(hint),
                        None => error,
                    })
                }
                None => Ok(()),
            }
        }
    }
}
