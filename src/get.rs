//! The audit-log read commands: `get audit-logs` (pull API, `--stored`,
//! `--file`, and the read-only views of the region's setup) and the two
//! tails that are queries rather than listeners (the pull `tail` and
//! `tail --stored`).
//!
//! Each turns its flags into [`QueryOptions`] (one set of checks and
//! messages for all, before any request), picks a source, and runs the
//! records through the query [`Pipeline`] into the printer `-o` chose. A
//! closed stdout ends the command quietly with exit 0; so does Ctrl+C, after
//! printing what was fetched. The pull's own work (windows, clock, paging,
//! retries, following) is [`crate::source::pull`]'s; the inspection views
//! are [`crate::inspect`]'s.

use std::io;
use std::path::PathBuf;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::cli::{
    AuditLogResource, GetAuditLogs, OutputFormat, PortalArg, QueryArgs, ReadArgs, TailArgs,
};
use crate::config::Settings;
use crate::error::CliError;
use crate::inspect;
use crate::konnect::client::ClientOptions;
use crate::konnect::{AuditLogs, KonnectClient, KonnectError, Stream};
use crate::output::summary::SummaryPrinter;
use crate::output::{self, Output, Summary};
use crate::query::names::{Named, Names};
use crate::query::options::{QueryFlags, QueryOptions};
use crate::query::{Limit, Origin, Pipeline, Query, Window};
use crate::record::Record;
use crate::source::file::{self, LastLine, Problem};
use crate::source::order::TimeOrder;
use crate::source::parallel::{self, Floor, Input, Opened, Order, Source};
use crate::source::pull::{PullError, Puller};
use crate::source::stored::follow::{self, FollowError};
use crate::source::stored::{self, Snapshot};

/// The flags of a query command, before checks.
fn query_flags(
    args: &QueryArgs,
    read: &ReadArgs,
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
        alerts: read.alerts.clone(),
        principals: read.principals.clone(),
        summary: false,
        resolve: read.resolve,
        grep: read.grep.clone(),
    }
}

/// `get audit-logs`.
pub fn get_audit_logs(settings: &Settings, args: GetAuditLogs, path: &str) -> Result<(), CliError> {
    if let Some(resource) = args.resource {
        return inspect_setup(settings, resource, path);
    }
    let flags = QueryFlags {
        summary: args.summary,
        ..query_flags(
            &args.query,
            &args.read,
            args.jq.as_ref(),
            &args.positional,
            settings.output,
            false,
        )
    }
    .page_size_from_profile(settings.page_size);
    let mut opts = flags.check().map_err(|e| CliError::usage(e.0, path))?;
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
    if (args.org || !args.portals.is_empty()) && !offline {
        return Err(CliError::usage(
            format!(
                "{} filters stored events: use it with --stored or --file",
                if args.org { "--org" } else { "--portal" }
            ),
            path,
        ));
    }
    if args.verify {
        return verify_offline(settings, &args, path);
    }
    if opts.follow && !args.files.is_empty() {
        return Err(CliError::usage("--follow cannot be used with --file", path));
    }
    if opts.follow && args.stored {
        return Err(CliError::usage(
            "--follow cannot be used with --stored: use 'kongctl tail --stored'",
            path,
        ));
    }
    opts.origin = origin(settings, args.org, &args.portals)?;
    let names = prepare_names(settings, &mut opts);
    if !args.files.is_empty() {
        return query_files(opts, names, &args.files, args.strict);
    }
    if args.stored {
        return query_stored(settings, opts, names, args.strict);
    }
    pull(settings, opts, names)
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
        (!args.portals.is_empty(), "--portal"),
        (args.org, "--org"),
        (!args.read.alerts.is_empty(), "--alert"),
        (!args.read.principals.is_empty(), "--principal"),
        (args.read.resolve.is_some(), "--resolve"),
        (args.read.grep.is_some(), "--grep"),
        (args.summary, "--summary"),
    ]
    .into_iter()
    .find_map(|(given, name)| given.then_some(name));
    if let Some(flag) = query_flag {
        return Err(CliError::usage(
            format!("--verify checks every record: it cannot be combined with {flag}"),
            path,
        ));
    }
    let archive = if args.stored {
        let dir = settings.audit_log_dir();
        crate::verify::offline::Archive::stored(&dir)
            .map_err(|e| CliError::new(format!("failed to list stored events: {e}")))?
    } else {
        crate::verify::offline::Archive::Files(args.files.clone())
    };
    let keys = crate::verify::offline::load_keys(settings, args.jwks.as_deref())?;
    crate::verify::offline::run(
        archive,
        &keys,
        &crate::verify::offline::Options {
            strict: args.strict,
            format: settings.output.query_format(),
        },
    )
}

/// `--org` / `--portal` as a filter of stored records (names resolved in
/// Konnect, ids as given).
fn origin(settings: &Settings, org: bool, portals: &[String]) -> Result<Origin, CliError> {
    Ok(if org {
        Origin::Org
    } else if portals.is_empty() {
        Origin::Any
    } else {
        Origin::Portals(crate::portal::ids_for_filter(settings, portals)?)
    })
}

/// The pull `tail`: `get audit-logs --follow` with a five-minute catch-up.
pub fn tail_pull(settings: &Settings, args: TailArgs, path: &str) -> Result<(), CliError> {
    refuse_listener_flags(&args, path)?;
    if !args.listen.portals.is_empty() {
        return Err(CliError::usage(
            "--portal filters stored events: use it with --stored, or with --endpoint to listen to a Dev Portal",
            path,
        ));
    }
    let flags = query_flags(
        &args.query,
        &args.listen.read,
        args.listen.jq.as_ref(),
        &args.listen.positional,
        settings.output,
        true,
    )
    .page_size_from_profile(settings.page_size);
    let mut opts = flags.check().map_err(|e| CliError::usage(e.0, path))?;
    let names = prepare_names(settings, &mut opts);
    pull(settings, opts, names)
}

/// Principal names for a query, when it shows any: the text table's
/// PRINCIPAL column, `--resolve`, the summary's top principals and
/// `--principal` by email or name need them; `--resolve=false` turns them
/// off. Resolves `--principal` into the record filter.
fn prepare_names(settings: &Settings, opts: &mut QueryOptions) -> Option<Names> {
    let table = opts.output.format == output::Format::Text && opts.output.jq.is_none();
    let wanted = opts.resolve == Some(true)
        || (opts.resolve.is_none() && (table || opts.summary))
        || !opts.principals.is_empty();
    let names = if wanted && opts.resolve != Some(false) {
        Names::open(settings)
    } else {
        None
    };
    if opts.resolve == Some(true)
        && names.is_none()
        && let Err(why) = settings.auth()
    {
        eprintln!("warning: --resolve: {why}; records are printed without principal_name");
    }
    if !opts.principals.is_empty() {
        // A name or an email is looked up even with --resolve=false: the
        // filter needs its ids. The cache is read without a token too.
        let fallback;
        let lookup = match &names {
            Some(n) => Some(n),
            None => {
                fallback = Names::open(settings).or_else(|| Some(Names::cached(settings)));
                fallback.as_ref()
            }
        };
        opts.filter.principals = Some(std::sync::Arc::new(Names::principals(
            lookup,
            &opts.principals,
        )));
    }
    names
}

/// Runs a pull (finite or following) from Konnect into stdout.
fn pull(settings: &Settings, mut opts: QueryOptions, names: Option<Names>) -> Result<(), CliError> {
    // The credential is checked before anything is sent.
    settings.auth().map_err(CliError::new)?;
    let options = ClientOptions {
        // The pull retries pages itself (with a line on stderr each); this
        // only caps how long a Retry-After may make it wait.
        backoff_max: std::time::Duration::from_secs(60),
        ..ClientOptions::from_env()
    };
    let client = KonnectClient::from_settings(settings, options).map_err(CliError::new)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("kongctl-pull")
        .build()
        .map_err(|e| CliError::new(format!("failed to start the async runtime: {e}")))?;
    let follow = opts.follow;
    let stop = CancellationToken::new();
    let stdout = io::stdout();
    let query = Puller::pipeline_query(&opts);
    // The printer takes the output settings; the puller the rest.
    let printer = query_printer(&mut opts, names, stdout.lock());
    let mut pipeline = Pipeline::new(query, printer);
    let mut puller = Puller::new(AuditLogs::new(client), &opts, stop.clone());
    let result = runtime.block_on(async {
        let signals = tokio::spawn(stop_on_signal(stop.clone()));
        let result = puller.run(&opts, &mut pipeline).await;
        signals.abort();
        result
    });
    let printed = pipeline.printed();
    let outcome = match result {
        Ok(more) => pipeline.finish(more).map(|_| ()),
        // Ctrl+C: print what was fetched (as truncated), exit 0.
        Err(PullError::Interrupted) => {
            pipeline.mark_truncated();
            pipeline.finish(true).map(|_| ())
        }
        Err(PullError::Output(e)) => Err(e),
        Err(error) => {
            // What was fetched is still printed (a JSON document says it
            // is truncated); the command fails.
            pipeline.mark_truncated();
            let printed = pipeline
                .finish(true)
                .map(|(s, _)| s.count)
                .unwrap_or(printed);
            return Err(pull_error(settings, error, follow, printed));
        }
    };
    finish_output(outcome)
}

/// Cancels `stop` on Ctrl+C or SIGTERM.
async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    stop.cancel();
}

/// The message a failed pull ends with: what failed, how many records were
/// printed before, and for a rejected token where it came from.
fn pull_error(settings: &Settings, error: PullError, follow: bool, printed: usize) -> CliError {
    let konnect = match &error {
        PullError::Request { error, .. } => Some(error),
        _ => None,
    };
    let gave_up = match &error {
        PullError::Request { error, tries }
            if error.is_transient() || matches!(error, KonnectError::Decode { .. }) =>
        {
            Some(*tries)
        }
        _ => None,
    };
    let what = if follow {
        "failed to follow audit logs".to_string()
    } else if printed > 0 || gave_up.is_some() {
        let tries = gave_up
            .map(|t| format!(" after {t} tries"))
            .unwrap_or_default();
        format!(
            "failed to retrieve all audit logs{tries} ({printed} record{} printed)",
            if printed == 1 { "" } else { "s" }
        )
    } else {
        "failed to retrieve audit logs".to_string()
    };
    let err = CliError::new(format!("{what}: {error}"));
    match konnect.and_then(KonnectError::status).map(|s| s.as_u16()) {
        Some(401) => err.with_hint(settings.rejected_token_hint()),
        Some(403) => err.with_hint(
            "the access token lacks permission for audit logs: an organisation admin token is needed",
        ),
        _ => err,
    }
}

/// `get audit-logs destinations|destination|webhook|replay-job`.
fn inspect_setup(
    settings: &Settings,
    resource: AuditLogResource,
    path: &str,
) -> Result<(), CliError> {
    let child = match &resource {
        AuditLogResource::Destinations => "destinations",
        AuditLogResource::Destination { .. } => "destination",
        AuditLogResource::Webhook(_) => "webhook",
        AuditLogResource::ReplayJob(_) => "replay-job",
    };
    let command = format!("{path} {child}");
    if settings.output == OutputFormat::Jsonl {
        return Err(CliError::usage(
            format!("invalid output format \"jsonl\": {child} supports text, json or yaml"),
            &command,
        ));
    }
    settings.auth().map_err(CliError::new)?;
    let client =
        KonnectClient::from_settings(settings, ClientOptions::from_env()).map_err(CliError::new)?;
    let api = AuditLogs::new(client);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("failed to start the async runtime: {e}")))?;
    let output = settings.output;
    let konnect_err = |what: &str, e: KonnectError| {
        let status = e.status().map(|s| s.as_u16());
        let err = CliError::new(format!("{what}: {e}"));
        match status {
            Some(401) => err.with_hint(settings.rejected_token_hint()),
            _ => err,
        }
    };
    let text = runtime.block_on(async {
        match resource {
            AuditLogResource::Destinations | AuditLogResource::Destination { .. } => {
                let items = api
                    .all_destinations()
                    .await
                    .map_err(|e| konnect_err("failed to retrieve audit-log destinations", e))?;
                let views = inspect::destinations(&items);
                if let AuditLogResource::Destination { id_or_name } = resource {
                    let view = inspect::find_destination(views, &id_or_name).map_err(|e| {
                        CliError::new(format!("failed to get audit-log destination: {e}"))
                    })?;
                    return Ok(match output {
                        OutputFormat::Text => inspect::destination_text(&view),
                        _ => inspect::document(&view, output),
                    });
                }
                Ok(match output {
                    OutputFormat::Text => inspect::destinations_text(&views),
                    _ => inspect::document(&views, output),
                })
            }
            AuditLogResource::Webhook(PortalArg { portal: Some(text) }) => {
                let portal = crate::portal::resolve(settings, &api, &text).await?;
                let what = "failed to retrieve the Dev Portal's audit-log webhook configuration";
                let stream = Stream::Portal(portal.id.clone());
                let hook = api
                    .stream_webhook_document(&stream)
                    .await
                    .map_err(|e| konnect_err(what, e))?;
                let status = api
                    .portal_status_document(&portal.id)
                    .await
                    .map_err(|e| konnect_err(what, e))?;
                let view = inspect::PortalWebhookView::new(&portal, hook.as_ref(), status);
                Ok(match output {
                    OutputFormat::Text => inspect::portal_webhook_text(&view),
                    _ => inspect::document(&view, output),
                })
            }
            AuditLogResource::Webhook(PortalArg { portal: None }) => {
                let what = "failed to retrieve regional audit-log webhook configuration";
                let v2 = api
                    .webhook_document()
                    .await
                    .map_err(|e| konnect_err(what, e))?;
                let v3 = api
                    .webhook_v3_document()
                    .await
                    .map_err(|e| konnect_err(what, e))?;
                let status = api
                    .webhook_status_document()
                    .await
                    .map_err(|e| konnect_err(what, e))?;
                let view = inspect::WebhookView::new(&v2, v3.as_ref(), status);
                Ok(match output {
                    OutputFormat::Text => inspect::webhook_text(&view),
                    _ => inspect::document(&view, output),
                })
            }
            AuditLogResource::ReplayJob(PortalArg { portal }) => {
                let portal = match portal {
                    Some(text) => Some(crate::portal::resolve(settings, &api, &text).await?),
                    None => None,
                };
                let (stream, what) = match &portal {
                    Some(p) => (
                        Stream::Portal(p.id.clone()),
                        "failed to retrieve the Dev Portal's audit-log replay job",
                    ),
                    None => (
                        Stream::Org,
                        "failed to retrieve the regional audit-log replay job",
                    ),
                };
                let job = api
                    .replay_job_document(&stream)
                    .await
                    .map_err(|e| konnect_err(what, e))?;
                let label = portal.as_ref().map(crate::konnect::Portal::label);
                Ok::<String, CliError>(match output {
                    OutputFormat::Text => inspect::replay_job_text(job.as_ref(), label.as_deref()),
                    _ => inspect::document(&job, output),
                })
            }
        }
    })?;
    use std::io::Write;
    finish_output(io::stdout().lock().write_all(text.as_bytes()))
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
        &args.listen.read,
        args.listen.jq.as_ref(),
        &args.listen.positional,
        output,
        true,
    );
    let mut opts = flags.check().map_err(|e| CliError::usage(e.0, path))?;
    opts.origin = origin(settings, args.org, &args.listen.portals)?;
    let dir = settings.audit_log_dir();
    // The header comes before the records: a PORTAL column if portal
    // records may follow.
    opts.output.portal_column = match &opts.origin {
        Origin::Portals(_) => true,
        Origin::Org => false,
        Origin::Any => receives_portals(&dir),
    };
    let names = prepare_names(settings, &mut opts);
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
        origin: opts.origin.clone(),
        filter: opts.filter.clone(),
        grep: opts.grep.clone(),
    };
    let stdout = io::stdout();
    let printer = query_printer(&mut opts, names, stdout.lock());
    let mut sink = TailSink {
        pipeline: Pipeline::new(query.clone(), printer),
    };
    match follow::run(&dir, query, lines, opts.follow, &mut sink) {
        Ok(()) => finish_output(sink.pipeline.finish(false).map(|_| ())),
        Err(FollowError::Io(e)) => finish_output(Err(e)),
        Err(e) => Err(CliError::new(e.to_string())),
    }
}

/// Whether the profile's listener receives (or last received) Dev Portal
/// audit logs, as its `listener.json` says.
fn receives_portals(dir: &std::path::Path) -> bool {
    crate::listen::state::read_json::<crate::listen::state::ListenerState>(
        &dir.join("listener.json"),
    )
    .ok()
    .flatten()
    .is_some_and(|s| !s.portals.is_empty())
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
/// order. The last N are held and sorted ([`TimeOrder`]); the first N or all
/// are read on every core and merged ([`parallel`]), a plain file in place.
fn query_files(
    mut opts: QueryOptions,
    names: Option<Names>,
    files: &[PathBuf],
    strict: bool,
) -> Result<(), CliError> {
    let query = opts.query(Timestamp::now());
    let mut problems = 0usize;
    let mut on_problem = |problem: Problem| {
        problems += 1;
        eprintln!("{problem}");
    };
    if let Limit::Last(_) = query.limit {
        let mut order = TimeOrder::new(query.clone());
        for path in files {
            file::read(
                path,
                &mut |record| {
                    order.push(record);
                    Ok(true)
                },
                &mut on_problem,
            )
            .map_err(|e| CliError::new(format!("failed to read {}: {e}", path.display())))?;
        }
        let (records, dropped) = order.into_sorted();
        let stdout = io::stdout();
        let printer = query_printer(&mut opts, names, stdout.lock());
        finish_output(print_all(query, printer, records, dropped).map(|_| ()))?;
        return strict_check(strict, problems);
    }
    // Every file is opened first: one that cannot be fails the command.
    let mut inputs = Vec::with_capacity(files.len());
    for (number, path) in files.iter().enumerate() {
        let input = file_input(path, number)
            .map_err(|e| CliError::new(format!("failed to read {}: {e}", path.display())))?;
        inputs.push(input);
    }
    let stdout = io::stdout();
    let printer = query_printer(&mut opts, names, stdout.lock());
    let mut pipeline = Pipeline::new(query, printer);
    let result = parallel::run(inputs, &mut pipeline, &mut on_problem)
        .and_then(|()| pipeline.finish(false).map(|_| ()));
    finish_output(result)?;
    strict_check(strict, problems)
}

/// A `--file` as an input of the merged query: a plain file read in place,
/// anything else (gzip, stdin, a pipe) as a stream in unknown order.
fn file_input(path: &std::path::Path, number: usize) -> io::Result<Input> {
    use std::os::unix::fs::FileExt;
    let name = path.display().to_string();
    let stream = |open: Box<dyn FnOnce() -> io::Result<Box<dyn io::Read + Send>> + Send>| {
        let name = name.clone();
        Source::Stream(Box::new(move || match open() {
            Ok(reader) => Opened::Reader(reader, None),
            Err(e) => Opened::Failed(Problem {
                file: name,
                line: None,
                what: file::read_failure(0, &e),
            }),
        }))
    };
    let source = if path == std::path::Path::new("-") {
        stream(Box::new(|| file::decode_here(io::stdin())))
    } else {
        let f = std::fs::File::open(path)?;
        let mut magic = [0u8; 2];
        let gzip = f.read_at(&mut magic, 0).is_ok_and(|n| n == 2) && magic == [0x1f, 0x8b];
        if f.metadata()?.is_file() && !gzip {
            Source::InPlace(f)
        } else {
            stream(Box::new(move || file::decode_here(f)))
        }
    };
    Ok(Input {
        name,
        source,
        floor: Floor::Any,
        order: Order::Unknown,
        last: LastLine::Final,
        number,
    })
}

/// `get audit-logs --stored`: the profile's segments and active file, in
/// time order.
fn query_stored(
    settings: &Settings,
    mut opts: QueryOptions,
    names: Option<Names>,
    strict: bool,
) -> Result<(), CliError> {
    let query = opts.query(Timestamp::now());
    let dir = settings.audit_log_dir();
    let mut snapshot = Snapshot::take(&dir).map_err(|e| CliError::new(e.to_string()))?;
    let stdout = io::stdout();
    let printer = query_printer(&mut opts, names, stdout.lock());
    let mut pipeline = Pipeline::new(query, printer);
    let mut problems = 0usize;
    let result = stored::query(&mut snapshot, &mut pipeline, &mut |problem| {
        // A segment retention deleted during the read is no unreadable
        // line: warned of, and not held against --strict.
        if problem.what != crate::store::snapshot::GONE {
            problems += 1;
        }
        eprintln!("{problem}");
    })
    .and_then(|()| pipeline.finish(false).map(|_| ()));
    finish_output(result)?;
    strict_check(strict, problems)
}

/// The printer of a query: the one `-o` chose, or with `--summary` the
/// summary (of the query's window, on this machine's clock); with `names`,
/// the records reach it named ([`Named`]) where it shows names (the text
/// table, or any output with `--resolve`).
fn query_printer<'a, W: io::Write + 'a>(
    opts: &mut QueryOptions,
    names: Option<Names>,
    out: W,
) -> Box<dyn Output + 'a> {
    let spec = std::mem::take(&mut opts.output);
    if opts.summary {
        let window = opts.time.window(Timestamp::now());
        let printer = SummaryPrinter::new(out, spec.format, window, output::chart::width());
        return match names {
            Some(names) if opts.resolve != Some(false) => {
                Box::new(printer.with_names(Box::new(names)))
            }
            _ => Box::new(printer),
        };
    }
    let table = spec.format == output::Format::Text && spec.jq.is_none();
    let printer = output::printer(
        spec,
        out,
        io::stderr(),
        crate::output::table::terminal_width(),
    );
    match names {
        Some(names) if opts.resolve == Some(true) || (opts.resolve.is_none() && table) => {
            Box::new(Named::new(printer, names))
        }
        _ => printer,
    }
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
