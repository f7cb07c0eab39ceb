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
use crate::query::options::{QueryFlags, QueryOptions};
use crate::query::{Limit, Pipeline, Query, Window};
use crate::record::Record;
use crate::source::file::{self, Problem};
use crate::source::order::TimeOrder;
use crate::source::stored::follow::{self, FollowError};
use crate::source::stored::{self, Snapshot};

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
    if !args.files.is_empty() {
        if opts.follow {
            return Err(CliError::usage("--follow cannot be used with --file", path));
        }
        return query_files(opts, &args.files, args.strict);
    }
    if args.stored {
        if opts.follow {
            return Err(CliError::usage(
                "--follow cannot be used with --stored: use 'kongctl tail --stored'",
                path,
            ));
        }
        return query_stored(settings, opts, args.strict);
    }
    Err(CliError::new(format!(
        "{path}: this source is not available yet"
    )))
}

/// The pull `tail`.
pub fn tail_pull(_settings: &Settings, args: TailArgs, path: &str) -> Result<(), CliError> {
    refuse_listener_flags(&args, path)?;
    Err(CliError::new(format!(
        "{path}: the pull API is not available yet"
    )))
}

/// Records `tail --stored` prints before following, unless `-n` says.
pub const DEFAULT_TAIL_LINES: usize = 10;

/// `tail --stored`: the last `-n` stored records, then each new one.
pub fn tail_stored(settings: &Settings, args: TailArgs, path: &str) -> Result<(), CliError> {
    refuse_listener_flags(&args, path)?;
    // Records print as stored (as the listener's tail prints them) unless
    // an output was chosen.
    let output = if settings.output_given {
        settings.output
    } else {
        OutputFormat::Jsonl
    };
    let flags = query_flags(
        &args.query,
        args.listen.jq.as_ref(),
        &args.listen.positional,
        output,
        true,
    );
    let opts = flags.check().map_err(|e| CliError::usage(e.0, path))?;
    let lines = match args.lines.as_deref() {
        None => DEFAULT_TAIL_LINES,
        Some(text) => parse_lines(text).map_err(|e| CliError::usage(e, path))?,
    };
    // The window bounds what is printed, the last N as much as what
    // follows; following has no end.
    let now = Timestamp::now();
    let start = opts
        .time
        .since
        .map(|d| crate::query::options::sub(now, d))
        .or(opts.time.start);
    let query = Query {
        window: Window {
            start,
            end: if opts.follow { None } else { opts.time.end },
        },
        kind: opts.kind,
        limit: Limit::Unlimited,
    };
    let stdout = io::stdout();
    let printer = output::printer(
        opts.output,
        stdout.lock(),
        io::stderr(),
        crate::ps::terminal_width(),
    );
    let mut sink = TailSink {
        pipeline: Pipeline::new(query, printer),
    };
    let dir = settings.audit_log_dir();
    match follow::run(&dir, query, lines, opts.follow, &mut sink) {
        Ok(()) => finish_output(sink.pipeline.finish(false).map(|_| ())),
        Err(FollowError::Io(e)) => finish_output(Err(e)),
        Err(e) => Err(CliError::new(e.to_string())),
    }
}

/// Reads `-n/--lines`.
fn parse_lines(text: &str) -> Result<usize, String> {
    match text.trim().parse::<i64>() {
        Ok(n) if n < 0 => Err("--lines must be non-negative".to_owned()),
        Ok(n) => Ok(n as usize),
        Err(_) => Err(format!(
            "invalid argument {} for \"-n, --lines\" flag: not a number of records",
            crate::gofmt::quote(text)
        )),
    }
}

/// `tail --stored`'s records on their way to the printer.
struct TailSink<O: Output> {
    pipeline: Pipeline<O>,
}

impl<O: Output> follow::Sink for TailSink<O> {
    fn record(&mut self, record: Record) -> io::Result<()> {
        self.pipeline.push(record).map(|_| ())
    }

    fn caught_up(&mut self) -> io::Result<()> {
        self.pipeline.caught_up()
    }

    fn problem(&mut self, problem: Problem) {
        // Lines printed so far first, so that a terminal shows the warning
        // where it belongs.
        let _ = self.pipeline.caught_up();
        eprintln!("{problem}");
    }
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
    strict_check(strict, problems)
}

/// `get audit-logs --stored`: the profile's segments and active file, in
/// time order.
fn query_stored(settings: &Settings, opts: QueryOptions, strict: bool) -> Result<(), CliError> {
    let query = opts.query(Timestamp::now());
    let dir = settings.audit_log_dir();
    let mut snapshot = Snapshot::take(&dir).map_err(|e| CliError::new(e.to_string()))?;
    let stdout = io::stdout();
    let printer = output::printer(
        opts.output,
        stdout.lock(),
        io::stderr(),
        crate::ps::terminal_width(),
    );
    let mut pipeline = Pipeline::new(query, printer);
    let mut problems = 0usize;
    let result = stored::query(&mut snapshot, &mut pipeline, &mut |problem| {
        problems += 1;
        eprintln!("{problem}");
    })
    .and_then(|()| pipeline.finish(false).map(|_| ()));
    finish_output(result)?;
    strict_check(strict, problems)
}

/// `--strict`: any line that could not be read fails the command.
fn strict_check(strict: bool, problems: usize) -> Result<(), CliError> {
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
