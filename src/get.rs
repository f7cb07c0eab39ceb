//! The audit-log read commands: `get audit-logs` (pull API, `--stored`,
//! `--file`, and the read-only views of the region's setup) and the two
//! tails that are queries rather than listeners (the pull `tail` and
//! `tail --stored`).
//!
//! Each turns its flags into [`QueryOptions`] (one set of checks and
//! messages for all), picks a source, and runs the records through the
//! query [`Pipeline`] into the printer `-o` chose. A closed stdout ends the
//! command quietly with exit 0.

use std::io;
use std::path::PathBuf;

use jiff::Timestamp;

use crate::cli::{GetAuditLogs, OutputFormat, QueryArgs, TailArgs};
use crate::config::Settings;
use crate::error::CliError;
use crate::output::{self, Output, Summary};
use crate::query::Pipeline;
use crate::query::options::{QueryFlags, QueryOptions};
use crate::source::{file, order::TimeOrder};

/// The flags of a query command, before checks.
fn query_flags(
    args: &QueryArgs,
    jq: Option<&String>,
    positional: &[String],
    output: OutputFormat,
    follow_default: bool,
) -> QueryFlags {
    QueryFlags {
        positional: positional.to_vec(),
        output: output.query_format(),
        start_time: args.start_time.clone(),
        end_time: args.end_time.clone(),
        since: args.since.clone(),
        event_type: args.event_type.clone(),
        limit: args.limit.clone(),
        follow: args.follow.unwrap_or(follow_default),
        poll_interval: args.poll_interval.clone(),
        page_size: args.page_size.clone(),
        jq: jq.cloned(),
        jq_raw_output: args.jq_raw_output,
        columns: args.columns.clone(),
    }
}

/// `get audit-logs`.
pub fn get_audit_logs(settings: &Settings, args: GetAuditLogs, path: &str) -> Result<(), CliError> {
    if let Some(resource) = args.resource {
        return Err(CliError::new(format!(
            "{path} {resource:?} is not available yet"
        )));
    }
    let flags = query_flags(
        &args.query,
        args.jq.as_ref(),
        &args.positional,
        settings.output,
        false,
    );
    let opts = flags.check().map_err(|e| CliError::usage(e.0, path))?;
    if args.stored && !args.files.is_empty() {
        return Err(CliError::usage(
            "--stored cannot be combined with --file",
            path,
        ));
    }
    let offline = args.stored || !args.files.is_empty();
    if args.verify && !offline {
        return Err(CliError::usage(
            "--verify requires --stored or --file",
            path,
        ));
    }
    if args.jwks.is_some() && !args.verify {
        return Err(CliError::usage("--jwks requires --verify", path));
    }
    if args.strict && !offline {
        return Err(CliError::usage(
            "--strict requires --stored or --file",
            path,
        ));
    }
    if args.verify {
        return verify_offline(settings, &args, path);
    }
    if !args.files.is_empty() {
        if opts.follow {
            return Err(CliError::usage("--follow cannot be used with --file", path));
        }
        return query_files(opts, &args.files, args.strict);
    }
    Err(CliError::new(format!(
        "{path}: this source is not available yet"
    )))
}

/// `get audit-logs --stored|--file … --verify`: the signature check of
/// every record (see [`crate::verify::offline`]); the query flags do not
/// apply.
fn verify_offline(settings: &Settings, args: &GetAuditLogs, path: &str) -> Result<(), CliError> {
    let q = &args.query;
    let query_flag = [
        (q.start_time.is_some(), "--start-time"),
        (q.end_time.is_some(), "--end-time"),
        (q.since.is_some(), "--since"),
        (q.event_type.is_some(), "--type"),
        (q.limit.is_some(), "--limit"),
        (q.follow.is_some(), "--follow"),
        (q.poll_interval.is_some(), "--poll-interval"),
        (q.page_size.is_some(), "--page-size"),
        (args.jq.is_some(), "--jq"),
        (q.jq_raw_output, "--jq-raw-output"),
        (!q.columns.is_empty(), "--columns"),
    ]
    .into_iter()
    .find_map(|(given, name)| given.then_some(name));
    if let Some(flag) = query_flag {
        return Err(CliError::usage(
            format!("--verify checks every record: it cannot be combined with {flag}"),
            path,
        ));
    }
    let files = if args.stored {
        let dir = settings.audit_log_dir();
        crate::verify::offline::stored_files(&dir).map_err(|e| {
            CliError::new(format!(
                "failed to list stored events in {}: {e}",
                dir.display()
            ))
        })?
    } else {
        args.files.clone()
    };
    let keys = crate::verify::offline::load_keys(settings, args.jwks.as_deref())?;
    crate::verify::offline::run(
        &files,
        &keys,
        &crate::verify::offline::Options {
            strict: args.strict,
            format: settings.output.query_format(),
        },
    )
}

/// The pull `tail`.
pub fn tail_pull(_settings: &Settings, args: TailArgs, path: &str) -> Result<(), CliError> {
    refuse_listener_flags(&args, path)?;
    Err(CliError::new(format!(
        "{path}: the pull API is not available yet"
    )))
}

/// `tail --stored`.
pub fn tail_stored(_settings: &Settings, args: TailArgs, path: &str) -> Result<(), CliError> {
    refuse_listener_flags(&args, path)?;
    Err(CliError::new(format!(
        "{path}: --stored is not available yet"
    )))
}

/// Flags of the webhook listener make no sense without a tunnel: say so
/// rather than ignore them.
fn refuse_listener_flags(args: &TailArgs, path: &str) -> Result<(), CliError> {
    match args.listener_only_flag() {
        Some(flag) => Err(CliError::usage(
            format!(
                "{flag} is a webhook listener flag: give --endpoint or --public-url, or use '{path} listener'"
            ),
            path,
        )),
        None => Ok(()),
    }
}

/// Prints what `run` feeds a pipeline, treating a closed stdout as the
/// end.
fn finish_output(result: io::Result<()>) -> Result<(), CliError> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if output::is_closed_pipe(&e) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(CliError::new(e.to_string())),
        Err(e) => Err(CliError::new(format!("failed to write audit logs: {e}"))),
    }
}

/// `get audit-logs --file PATH...`: every record of the files, in time
/// order.
fn query_files(opts: QueryOptions, files: &[PathBuf], strict: bool) -> Result<(), CliError> {
    let query = opts.query(Timestamp::now());
    let mut order = TimeOrder::new(query);
    let mut problems = 0usize;
    for path in files {
        file::read(
            path,
            &mut |record| {
                order.push(record);
                Ok(true)
            },
            &mut |problem| {
                problems += 1;
                eprintln!("{problem}");
            },
        )
        .map_err(|e| CliError::new(format!("failed to read {}: {e}", path.display())))?;
    }
    let (records, dropped) = order.into_sorted();
    let spec = opts.output;
    let stdout = io::stdout();
    let printer = output::printer(
        spec,
        stdout.lock(),
        io::stderr(),
        crate::ps::terminal_width(),
    );
    finish_output(print_all(query, printer, records, dropped).map(|_| ()))?;
    if strict && problems > 0 {
        return Err(CliError::new(format!(
            "{problems} line(s) could not be read as audit records (--strict)"
        )));
    }
    Ok(())
}

/// Pushes ordered records through a pipeline to `printer`.
fn print_all<O: Output>(
    query: crate::query::Query,
    printer: O,
    records: Vec<crate::record::Record>,
    dropped: bool,
) -> io::Result<Summary> {
    let mut pipeline = Pipeline::new(query, printer);
    if dropped {
        pipeline.mark_truncated();
    }
    for record in records {
        pipeline.push(record)?;
    }
    pipeline.finish(false).map(|(summary, _)| summary)
}
