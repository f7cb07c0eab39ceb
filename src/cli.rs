//! The command line, as clap sees it: the command tree, every flag with the
//! original's names and defaults, and help text written for users.
//!
//! This module only parses. `config` resolves profiles, environment and
//! config file into settings, and `listen::options` validates the listen
//! flags into a `ListenOptions`; nothing below those sees clap types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Watch Kong Konnect audit logs from a terminal.
///
/// `listen` creates a Konnect audit-log destination for a public URL (a
/// tunnel to this machine), points the region's audit-log webhook at it and
/// stores every record Konnect delivers in
/// `<config>/audit-logs/<profile>/events.jsonl`. `tail` does the same and
/// prints each record, optionally through a jq filter. `ps` lists and stops
/// listeners started with `--detach`.
#[derive(Debug, Parser)]
#[command(
    name = "kongctl",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted by every command.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Global Options")]
pub struct GlobalArgs {
    /// Configuration profile to use.
    ///
    /// Selects the `<profile>` section of config.yaml, the
    /// `KONGCTL_<PROFILE>_*` environment variables and the storage directory
    /// `audit-logs/<profile>/`. [default: default]
    #[arg(
        short = 'p',
        long,
        global = true,
        env = "KONGCTL_PROFILE",
        value_name = "PROFILE"
    )]
    pub profile: Option<String>,

    /// Path to the configuration file.
    ///
    /// [default: $XDG_CONFIG_HOME/kongctl/config.yaml, else
    /// ~/.config/kongctl/config.yaml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config_file: Option<PathBuf>,

    /// Konnect personal or system access token (kpat_… or spat_…).
    ///
    /// Prefer `KONGCTL_<PROFILE>_KONNECT_PAT` or `konnect.pat` in
    /// config.yaml: a flag is visible to other users in the process list.
    #[arg(long, global = true, value_name = "TOKEN", hide_env_values = true)]
    pub pat: Option<String>,

    /// Base URL of the Konnect API, replacing both the regional and the
    /// global host (for a proxy or the bundled emulator).
    #[arg(long, global = true, value_name = "URL")]
    pub base_url: Option<String>,

    /// Konnect region whose audit-log webhook is used (us, eu, au, me, in,
    /// sg, …). [default: us]
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,

    /// How much to write to the log file. [default: error]
    #[arg(long, global = true, value_enum, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,

    /// Write logs to this file instead of `<config>/logs/kongctl.log`.
    ///
    /// `%PID%` in the path is replaced with the process id.
    #[arg(long, global = true, value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Accepted for compatibility with the original; this kongctl sends no
    /// telemetry.
    #[arg(long, global = true)]
    pub no_telemetry: bool,

    /// Konnect environment: `com` (production, the default) or `tech`
    /// (Kong's `*.api.konghq.tech` hosts). Hidden, as in the original.
    #[arg(long, global = true, hide = true, value_name = "ENV")]
    pub konnect_env: Option<String>,

    /// Output format for `ps`. [default: text]
    #[arg(short = 'o', long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
    Yaml,
    /// One JSON value per line (audit-log queries only).
    Jsonl,
}

impl OutputFormat {
    /// The query engine's format.
    pub fn query_format(self) -> crate::output::Format {
        match self {
            OutputFormat::Text => crate::output::Format::Text,
            OutputFormat::Json => crate::output::Format::Json,
            OutputFormat::Yaml => crate::output::Format::Yaml,
            OutputFormat::Jsonl => crate::output::Format::Jsonl,
        }
    }
}

/// `--verify` of `listen`/`tail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyMode {
    /// No check (and no JWKS fetch).
    Off,
    /// Check and count; store every record.
    Warn,
    /// Check and count; invalid and unsigned records go to rejected.jsonl.
    Reject,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive Konnect audit logs and store them in events.jsonl.
    ///
    /// Creates an audit-log destination for the public endpoint, points the
    /// region's audit-log webhook at it, and listens locally for the batches
    /// Konnect delivers. Ctrl+C removes the webhook and the destination.
    #[command(visible_alias = "lsn")]
    Listen(Box<ListenCommand>),

    /// Follow Konnect organization audit logs.
    ///
    /// With neither `--endpoint` nor `--public-url`: follow the audit-log
    /// pull API (a five-minute catch-up, then a poll every
    /// `--poll-interval`); no tunnel needed. With either: the webhook
    /// listener of `listen`, printing every record as it is stored (also
    /// `tail audit-logs listener`). With `--stored`: the last `-n` records
    /// this profile stored, then each new one as a listener stores it.
    Tail(Box<TailCommand>),

    /// Read Konnect audit logs: pull them, query stored events, or inspect
    /// the region's audit-log setup.
    Get(Box<GetCommand>),

    /// List detached listeners (`listen --detach`), or stop them.
    Ps(PsCommand),

    /// Remove Konnect audit-log state: a destination, or the region's
    /// webhook.
    ///
    /// For what a listener left behind, or what blocks `listen` ("webhook
    /// is already configured", "destination name already exists"). Shows
    /// what will change and asks first (`--yes` skips the question and is
    /// required without a terminal); refuses to remove what a running
    /// kongctl listener on this machine owns unless `--force`.
    Delete(Box<DeleteCommand>),

    /// Print a shell completion script (bash, zsh, fish or powershell).
    ///
    /// bash: add `source <(kongctl completion bash)` to ~/.bashrc.
    ///
    /// zsh: `kongctl completion zsh > "${fpath[1]}/_kongctl"`, then start a
    /// new shell (compinit must run in ~/.zshrc).
    ///
    /// fish: `kongctl completion fish > ~/.config/fish/completions/kongctl.fish`.
    ///
    /// PowerShell: add `kongctl completion powershell | Out-String |
    /// Invoke-Expression` to your $PROFILE.
    Completion(CompletionArgs),

    /// Print kongctl's version, the commit it was built from, its target
    /// and the compiler (`-o json|yaml` for scripts).
    Version(VersionArgs),

    /// Print the records of an events file as `tail` prints them, then exit.
    ///
    /// Hidden: for `bench/run.sh`, which times `tail --jq` on a large file.
    /// Runs the code `tail` runs on committed records (follow, filter,
    /// printer); touches no Konnect, lock or listener.
    #[command(name = "tail-file", hide = true)]
    TailFile(TailFileArgs),
}

/// `tail-file FILE [--jq FILTER]`.
#[derive(Debug, Args)]
pub struct TailFileArgs {
    /// The events file (one record per line).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// jq expression applied to each record, as `tail --jq`.
    #[arg(long, value_name = "FILTER")]
    pub jq: Option<String>,

    /// Regular expression records must match, as `tail --grep`.
    #[arg(long, value_name = "PATTERN")]
    pub grep: Option<String>,
}

/// `listen` / `tail`, optionally followed by `audit-logs` or
/// `konnect audit-logs` (the original's Konnect-first forms).
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ListenCommand {
    #[command(flatten)]
    pub args: ListenArgs,

    #[command(subcommand)]
    pub product: Option<ListenProduct>,
}

#[derive(Debug, Subcommand)]
pub enum ListenProduct {
    /// Konnect audit logs (the same as the parent command).
    #[command(name = "audit-logs", visible_aliases = ["audit-log", "al", "AL"])]
    AuditLogs(ListenArgs),

    /// Konnect resources.
    #[command(visible_aliases = ["k", "K"])]
    Konnect(KonnectListen),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_required = true)]
pub struct KonnectListen {
    #[command(subcommand)]
    pub resource: KonnectResource,
}

#[derive(Debug, Subcommand)]
pub enum KonnectResource {
    /// Konnect audit logs.
    #[command(name = "audit-logs", visible_aliases = ["audit-log", "al", "AL"])]
    AuditLogs(ListenArgs),
}

impl ListenCommand {
    /// The flags of whichever form was used, and the command path for
    /// messages such as `Run 'kongctl listen audit-logs --help' for usage`.
    pub fn into_args(self, verb: &str) -> (ListenArgs, String) {
        match self.product {
            None => (self.args, format!("kongctl {verb}")),
            Some(ListenProduct::AuditLogs(args)) => (args, format!("kongctl {verb} audit-logs")),
            Some(ListenProduct::Konnect(KonnectListen {
                resource: KonnectResource::AuditLogs(args),
            })) => (args, format!("kongctl {verb} konnect audit-logs")),
        }
    }
}

/// Flags of `listen` and `tail`.
#[derive(Debug, Args, Clone, Default)]
pub struct ListenArgs {
    /// Public URL Konnect delivers to (your tunnel), including the path.
    ///
    /// Example: https://my-host.ts.net/audit-logs. Takes precedence over
    /// `--public-url`.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// Public base URL of your tunnel; the endpoint is this URL's path
    /// joined with `--path`.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,

    /// Local address the listener binds.
    #[arg(long, default_value = "127.0.0.1:19090", value_name = "HOST:PORT")]
    pub listen_address: String,

    /// Path the listener serves (and that `--public-url` is joined with).
    #[arg(long, default_value = "/audit-logs", value_name = "PATH")]
    pub path: String,

    /// Largest request body accepted, applied to the raw body and again to
    /// the decoded (gunzipped) body.
    #[arg(long, default_value_t = 1_048_576, value_name = "BYTES")]
    pub max_body_bytes: i64,

    /// Name of the Konnect audit-log destination.
    ///
    /// [default: kongctl-<host>-<pid>]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Format Konnect delivers records in: json, cef or cps.
    #[arg(long, default_value = "json", value_name = "FORMAT")]
    pub log_format: String,

    /// Let Konnect skip TLS certificate checks when delivering to the
    /// endpoint (self-signed certificates, never in production).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub skip_ssl_verification: Option<bool>,

    /// Authorization header value Konnect sends and the listener requires,
    /// e.g. "Bearer s3cret".
    ///
    /// Without it a strong random value is generated for this run. Prefer
    /// the KONGCTL_LISTEN_AUTHORIZATION environment variable: a flag is
    /// visible to other users in the process list.
    #[arg(
        long,
        env = "KONGCTL_LISTEN_AUTHORIZATION",
        hide_env_values = true,
        value_name = "VALUE"
    )]
    pub authorization: Option<String>,

    /// Point the region's audit-log webhook at the new destination (and
    /// check first that it is unconfigured).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub configure_webhook: Option<bool>,

    /// Also receive this Dev Portal's audit logs (its developer logins), by
    /// id or name (repeatable).
    ///
    /// Its own webhook is pointed at the same destination after the
    /// region's (the region's portal list resolves a name; it must match
    /// exactly one portal), and restored when the listener stops. A portal
    /// whose webhook is already enabled is refused. With `tail --stored`:
    /// print only this portal's stored records.
    #[arg(long = "portal", value_name = "ID|NAME")]
    pub portals: Vec<String>,

    /// Print each record to stdout as it is stored (what `tail` does).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub tail: Option<bool>,

    /// Run the listener in the background; see `kongctl ps`.
    #[arg(short = 'd', long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub detach: Option<bool>,

    /// jq expression applied to each record in tail mode (run by jaq).
    ///
    /// No result prints null, one result prints it, several print a JSON
    /// array. Records that are not JSON are skipped with a warning.
    #[arg(long, value_name = "FILTER")]
    pub jq: Option<String>,

    #[command(flatten)]
    pub read: ReadArgs,

    /// Run the --exec given after it for each record stored that matches:
    /// alert rules (locked, failed-login, denied, forbidden, server-error,
    /// comma-separated, or all) or a jq filter (a match is an output that
    /// is neither false nor null). Repeatable, each with its --exec.
    #[arg(
        long = "on",
        value_name = "RULE|FILTER",
        help_heading = "Acting on records"
    )]
    pub on: Vec<String>,

    /// Command run by `sh -c` once per record the --on before it matches,
    /// after the record is stored, with the record's line on its standard
    /// input and KONGCTL_RULE, KONGCTL_RECORD_ID, KONGCTL_RECORD_FORMAT,
    /// KONGCTL_EVENT_TYPE and KONGCTL_EVENT_TS set. Exit status and stderr
    /// are logged; a record stored before a crash still gets its command
    /// at the next start.
    #[arg(
        long = "exec",
        value_name = "COMMAND",
        help_heading = "Acting on records"
    )]
    pub exec: Vec<String>,

    /// Kill a command, with its process group, still running after this
    /// long. [default: 30s]
    #[arg(long, value_name = "DURATION", help_heading = "Acting on records")]
    pub exec_timeout: Option<String>,

    /// How many commands of one --exec run at once (1 to 64). [default: 4]
    #[arg(long, value_name = "N", help_heading = "Acting on records")]
    pub exec_jobs: Option<u16>,

    /// Before changing anything in Konnect, send one probe through the
    /// endpoint and tell whether it reaches this listener.
    ///
    /// The probe carries the authorization and a one-time token; it is
    /// neither stored nor counted. `warn` prints what was found (DNS, TLS
    /// or connection failure, something else answering, a rewritten path or
    /// Authorization) with a checklist and starts anyway; `strict` stops
    /// with exit 1 instead; `off` skips it. It takes at most 3 s.
    /// [default: warn, env: KONGCTL_LISTEN_CHECK]
    #[arg(long, value_enum, value_name = "MODE")]
    pub check: Option<TunnelCheck>,

    /// Check each record's Ed25519 signature against Konnect's public keys
    /// (JWKS): off, warn or reject.
    ///
    /// warn stores every record and counts valid, invalid, unsigned and
    /// unverifiable (cps) records in listener.json and `ps -o json`; reject
    /// puts invalid and unsigned records in rejected.jsonl instead of the
    /// events file, and needs the JWKS at start. [default: warn]
    #[arg(long, value_enum, value_name = "MODE", hide_possible_values = true)]
    pub verify: Option<VerifyMode>,

    /// Have Konnect send again what no listener received: auto, off, a
    /// duration (e.g. 2h) or an RFC3339 time. [default: auto]
    ///
    /// auto: at start, replay from the newest stored record (less 2
    /// minutes) to now, and again whenever the machine wakes from sleep or
    /// Konnect reports a failed delivery. A duration or a time replays from
    /// there at start, even with nothing stored. Konnect keeps 7 days.
    /// Records already stored are not stored again.
    #[arg(long, value_name = "WHEN")]
    pub backfill: Option<String>,

    /// Rotate events.jsonl once it reaches this size; 0 never rotates.
    ///
    /// The batch that reaches the size is written first (a batch is never
    /// split), then the file becomes a closed segment
    /// events-<time>-<seq>.jsonl, gzip'd in the background, and a new
    /// events.jsonl begins. Bytes, or KiB, MiB, GiB. Also
    /// `audit-logs: max-file-size:` under the profile in config.yaml.
    /// [default: 128MiB]
    #[arg(long, value_name = "SIZE", help_heading = "Rotation and retention")]
    pub max_file_size: Option<String>,

    /// Also rotate events.jsonl once its first record is this old, e.g.
    /// 1h or 1d; 0 is off.
    ///
    /// Also `audit-logs: rotate-every:` in config.yaml. [default: off]
    #[arg(long, value_name = "DURATION", help_heading = "Rotation and retention")]
    pub rotate_every: Option<String>,

    /// Delete closed segments whose newest record is older than this, e.g.
    /// 30d; 0 keeps everything.
    ///
    /// Also `audit-logs: retain:` in config.yaml. [default: off]
    #[arg(long, value_name = "DURATION", help_heading = "Rotation and retention")]
    pub retain: Option<String>,

    /// Delete the oldest closed segments while the compressed ones take
    /// more than this on disk (events.jsonl not counted); 0 is off.
    ///
    /// Bytes, or KiB, MiB, GiB. Also `audit-logs: retain-size:` in
    /// config.yaml. [default: off]
    #[arg(long, value_name = "SIZE", help_heading = "Rotation and retention")]
    pub retain_size: Option<String>,

    /// Serve /healthz, /readyz and /metrics (Prometheus) on this address.
    ///
    /// HOST:PORT on a port of its own, never the listener's (the tunnel
    /// exposes that one); port 0 picks a free port, shown in the startup
    /// block, listener.json and `ps -o json`. Keep it off the internet.
    /// Also `audit-logs: admin-address:` in config.yaml. [default: off]
    #[arg(long, value_name = "HOST:PORT", help_heading = "Running as a service")]
    pub admin_address: Option<String>,

    /// Check everything a start needs and exit, changing nothing.
    ///
    /// Resolves flags, environment and config.yaml, reads the token, makes
    /// only read requests to Konnect (the webhook, the destination name,
    /// the JWKS), runs the tunnel check and prints what a start would
    /// create; writes no file. Exit 0 when a start would go ahead, 78 for a
    /// bad flag, value or config file, 1 when Konnect or the tunnel would
    /// stop it (for systemd's ExecStartPre=).
    #[arg(
        long,
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL",
        help_heading = "Running as a service"
    )]
    pub dry_run: Option<bool>,

    /// Roll the detached listener's log file once it reaches this size; 0
    /// never rolls.
    ///
    /// The full file becomes <log>.1 (the older ones move up, the oldest
    /// beyond --log-keep is deleted) and a new one begins; SIGHUP reopens
    /// the log file (for logrotate). Bytes, or KiB, MiB, GiB. Also
    /// `audit-logs: log-max-size:` in config.yaml. [default: 10MiB]
    #[arg(long, value_name = "SIZE", help_heading = "Running as a service")]
    pub log_max_size: Option<String>,

    /// How many rolled log files of the detached listener to keep.
    ///
    /// Also `audit-logs: log-keep:` in config.yaml. [default: 5]
    #[arg(long, value_name = "N", help_heading = "Running as a service")]
    pub log_keep: Option<String>,

    /// Unexpected positional arguments (reported with the original's
    /// message rather than clap's).
    #[arg(hide = true, value_name = "ARGS")]
    pub positional: Vec<String>,
}

/// `--check`: what to do about the tunnel self-test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TunnelCheck {
    Off,
    Warn,
    Strict,
}

/// `ps`: list detached listeners; `ps stop` stops them.
#[derive(Debug, Args)]
pub struct PsCommand {
    #[command(subcommand)]
    pub action: Option<PsAction>,

    #[command(flatten)]
    pub columns: ColumnsArg,

    /// Unexpected positional arguments (reported with the original's
    /// message).
    #[arg(hide = true, value_name = "ARGS")]
    pub positional: Vec<String>,
}

/// `--columns`, on `ps` and on `ps stop` (the original's persistent flag:
/// values given before and after `stop` add up).
#[derive(Debug, Args, Clone, Default)]
pub struct ColumnsArg {
    /// Print these columns instead of the table (text output only).
    ///
    /// Each column is HEADER=.FIELD, the field named as in `-o json`: for
    /// `ps` .pid, .status, .kind, .profile, .created_at, .log_file,
    /// .record_file and the listener's counters; for `ps stop` .pid, .kind,
    /// .action, .success, .detail. Separate columns with commas or repeat
    /// the flag: `--columns PID=.pid,STATUS=.status --columns LOG=.log_file`.
    /// Paths may go deeper (.a.b), quote a key (.["a b"]), index an array
    /// (.a[0]) or take characters of a string (.created_at[:10]). A field
    /// that is not there prints an empty cell.
    #[arg(long, value_name = "HEADER=.FIELD")]
    pub columns: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum PsAction {
    /// Stop a detached listener (SIGTERM, then wait for its Konnect
    /// cleanup), or prune its record if it is no longer running.
    Stop(PsStopArgs),
}

#[derive(Debug, Args)]
pub struct PsStopArgs {
    /// Process id of the detached listener (see `kongctl ps`).
    #[arg(value_name = "PID")]
    pub pid: Option<String>,

    /// Stop every recorded detached listener.
    #[arg(long)]
    pub all: bool,

    /// How long to wait for each process to exit (e.g. 15s, 1m30s).
    ///
    /// The default covers a listener's whole Konnect cleanup (up to 60 s
    /// after it stops serving), so `stopped` means its webhook and
    /// destination are gone.
    #[arg(long, default_value = crate::ps::stop::DEFAULT_TIMEOUT_TEXT, value_name = "DURATION")]
    pub timeout: String,

    #[command(flatten)]
    pub columns: ColumnsArg,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn every_listen_form_reaches_the_same_flags() {
        for form in [
            &["kongctl", "listen"][..],
            &["kongctl", "lsn"],
            &["kongctl", "listen", "audit-logs"],
            &["kongctl", "listen", "al"],
            &["kongctl", "listen", "konnect", "audit-logs"],
            &["kongctl", "listen", "k", "AL"],
        ] {
            let mut argv = form.to_vec();
            argv.extend(["--endpoint", "https://x.test/a", "--jq", "."]);
            let cli = parse(&argv);
            let Command::Listen(cmd) = cli.command else {
                panic!("{form:?} parsed as something else");
            };
            let (args, _) = cmd.into_args("listen");
            assert_eq!(args.endpoint.as_deref(), Some("https://x.test/a"));
            assert_eq!(args.jq.as_deref(), Some("."));
        }
    }

    fn tail(args: &[&str]) -> TailRequest {
        let mut argv = vec!["kongctl", "tail"];
        argv.extend(args);
        let Command::Tail(cmd) = parse(&argv).command else {
            panic!("{args:?} parsed as something else");
        };
        cmd.into_request()
    }

    #[test]
    fn tail_is_the_listener_with_a_tunnel_and_the_pull_api_without() {
        for form in [
            &["--endpoint", "https://x.test/a", "--jq", "."][..],
            &[
                "K",
                "audit-log",
                "--endpoint",
                "https://x.test/a",
                "--jq",
                ".",
            ],
            &[
                "audit-logs",
                "listener",
                "--endpoint",
                "https://x.test/a",
                "--jq",
                ".",
            ],
            &[
                "konnect",
                "audit-logs",
                "--public-url",
                "https://x.test",
                "--jq",
                ".",
            ],
        ] {
            let TailRequest::Listener { listen, stray, .. } = tail(form) else {
                panic!("{form:?} is not the listener");
            };
            assert_eq!(listen.jq.as_deref(), Some("."));
            assert_eq!(stray, None);
        }
        let TailRequest::Listener { path, .. } = tail(&["audit-logs", "listener"]) else {
            panic!()
        };
        assert_eq!(path, "kongctl tail audit-logs listener");
        let TailRequest::Listener { stray, .. } =
            tail(&["--endpoint", "https://x.test/a", "--since", "5m"])
        else {
            panic!()
        };
        assert_eq!(stray, Some("--since"));
        for form in [
            &[][..],
            &["audit-logs"],
            &["k", "audit-logs", "-o", "jsonl"],
        ] {
            assert!(matches!(tail(form), TailRequest::Pull(..)), "{form:?}");
        }
        let TailRequest::Stored(args, _) = tail(&["--stored", "-n", "30"]) else {
            panic!()
        };
        assert_eq!(args.lines.as_deref(), Some("30"));
    }

    #[test]
    fn get_audit_logs_forms() {
        for form in [
            &["kongctl", "get", "audit-logs"][..],
            &["kongctl", "get", "audit-log", "--since", "10m"],
            &["kongctl", "get", "konnect", "audit-logs"],
            &["kongctl", "get", "k", "audit-logs", "-F"],
        ] {
            let Command::Get(cmd) = parse(form).command else {
                panic!("{form:?}")
            };
            let (args, _) = cmd.into_audit_logs();
            assert!(args.resource.is_none(), "{form:?}");
        }
        let Command::Get(cmd) = parse(&["kongctl", "get", "audit-logs", "dest", "x"]).command
        else {
            panic!()
        };
        assert!(matches!(
            cmd.into_audit_logs().0.resource,
            Some(AuditLogResource::Destination { .. })
        ));
    }

    #[test]
    fn defaults_match_the_original() {
        let Command::Listen(cmd) = parse(&["kongctl", "listen"]).command else {
            panic!()
        };
        let (a, path) = cmd.into_args("listen");
        assert_eq!(path, "kongctl listen");
        assert_eq!(a.listen_address, "127.0.0.1:19090");
        assert_eq!(a.path, "/audit-logs");
        assert_eq!(a.max_body_bytes, 1_048_576);
        assert_eq!(a.log_format, "json");
        assert_eq!(a.configure_webhook, None);
        assert_eq!(a.detach, None);
    }

    #[test]
    fn bool_flags_take_an_optional_value_like_go_flags() {
        let Command::Listen(cmd) = parse(&[
            "kongctl",
            "listen",
            "-d",
            "--configure-webhook=false",
            "--skip-ssl-verification",
        ])
        .command
        else {
            panic!()
        };
        assert_eq!(cmd.args.detach, Some(true));
        assert_eq!(cmd.args.configure_webhook, Some(false));
        assert_eq!(cmd.args.skip_ssl_verification, Some(true));
    }

    #[test]
    fn stray_positionals_are_kept_for_the_original_message() {
        let Command::Listen(cmd) = parse(&["kongctl", "listen", "audit-logs", "extra"]).command
        else {
            panic!()
        };
        let (a, path) = cmd.into_args("listen");
        assert_eq!(path, "kongctl listen audit-logs");
        assert_eq!(a.positional, vec!["extra".to_string()]);
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = parse(&[
            "kongctl",
            "ps",
            "stop",
            "--all",
            "-o",
            "json",
            "--profile",
            "dev",
        ]);
        assert_eq!(cli.global.output, Some(OutputFormat::Json));
        assert_eq!(cli.global.profile.as_deref(), Some("dev"));
    }

    #[test]
    fn columns_apply_to_ps_and_ps_stop_and_repeat() {
        for argv in [
            &[
                "kongctl",
                "ps",
                "--columns",
                "PID=.pid,A=.a",
                "--columns",
                "B=.b",
            ][..],
            &[
                "kongctl",
                "ps",
                "--columns",
                "PID=.pid,A=.a",
                "stop",
                "--all",
                "--columns=B=.b",
            ],
            &[
                "kongctl",
                "ps",
                "stop",
                "--columns",
                "PID=.pid,A=.a",
                "--all",
                "--columns",
                "B=.b",
            ],
        ] {
            let Command::Ps(ps) = parse(argv).command else {
                panic!("{argv:?}")
            };
            let mut columns = ps.columns.columns;
            if let Some(PsAction::Stop(stop)) = ps.action {
                columns.extend(stop.columns.columns);
            }
            assert_eq!(columns, ["PID=.pid,A=.a", "B=.b"], "{argv:?}");
        }
    }
}

/// `tail`, `tail audit-logs`, `tail konnect audit-logs`, and their
/// `listener` child.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TailCommand {
    #[command(flatten)]
    pub args: TailArgs,

    #[command(subcommand)]
    pub product: Option<TailProduct>,
}

#[derive(Debug, Subcommand)]
pub enum TailProduct {
    /// Follow Konnect organization audit logs (the same as `tail`).
    #[command(name = "audit-logs", visible_aliases = ["audit-log", "al", "AL"])]
    AuditLogs(TailAuditLogs),

    /// Konnect resources.
    #[command(visible_aliases = ["k", "K"])]
    Konnect(KonnectTail),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_required = true)]
pub struct KonnectTail {
    #[command(subcommand)]
    pub resource: KonnectTailResource,
}

#[derive(Debug, Subcommand)]
pub enum KonnectTailResource {
    /// Follow Konnect organization audit logs.
    #[command(name = "audit-logs", visible_aliases = ["audit-log", "al", "AL"])]
    AuditLogs(TailAuditLogs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TailAuditLogs {
    #[command(flatten)]
    pub args: TailArgs,

    #[command(subcommand)]
    pub mode: Option<TailMode>,
}

#[derive(Debug, Subcommand)]
pub enum TailMode {
    /// Create a webhook destination and stream received events.
    ///
    /// Run the webhook-based tail: create a destination, configure the
    /// regional webhook, and stream records received by a local listener
    /// (the same as `tail --endpoint ...`).
    Listener(ListenArgs),
}

/// Flags of `tail`: the listener's, the pull query's, and the stored
/// tail's.
#[derive(Debug, Args, Clone, Default)]
pub struct TailArgs {
    #[command(flatten)]
    pub listen: ListenArgs,

    #[command(flatten)]
    pub query: QueryArgs,

    /// Read this profile's stored events instead of Konnect: print the last
    /// `-n` records, then follow new ones as a listener stores them.
    #[arg(long, help_heading = "Stored events")]
    pub stored: bool,

    /// With `--stored`: how many stored records to print before following.
    /// [default: 10]
    #[arg(
        short = 'n',
        long = "lines",
        value_name = "N",
        allow_hyphen_values = true,
        help_heading = "Stored events"
    )]
    pub lines: Option<String>,

    /// With `--stored`: print only the organisation's records, not the Dev
    /// Portals' (records without a portal_id).
    #[arg(long, conflicts_with = "portals", help_heading = "Stored events")]
    pub org: bool,
}

/// What a `tail` command line asks for.
#[derive(Debug)]
pub enum TailRequest {
    /// The webhook listener in tail mode, with the command path for
    /// messages and the first pull or stored flag given with it, if any
    /// (an error).
    Listener {
        listen: ListenArgs,
        path: String,
        stray: Option<&'static str>,
    },
    /// Follow the pull API.
    Pull(TailArgs, String),
    /// Print and follow stored events.
    Stored(TailArgs, String),
}

impl TailCommand {
    /// Which tail this is: `listener` or `--endpoint`/`--public-url` pick
    /// the webhook listener, `--stored` the store, anything else the pull
    /// API.
    pub fn into_request(self) -> TailRequest {
        let (args, path, mode) = match self.product {
            None => (self.args, "kongctl tail".to_owned(), None),
            Some(TailProduct::AuditLogs(t)) => {
                (t.args, "kongctl tail audit-logs".to_owned(), t.mode)
            }
            Some(TailProduct::Konnect(KonnectTail {
                resource: KonnectTailResource::AuditLogs(t),
            })) => (t.args, "kongctl tail konnect audit-logs".to_owned(), t.mode),
        };
        if let Some(TailMode::Listener(listen)) = mode {
            return TailRequest::Listener {
                listen,
                path: format!("{path} listener"),
                stray: args.pull_only_flag(),
            };
        }
        if args.listen.endpoint.is_some() || args.listen.public_url.is_some() {
            let stray = args.pull_only_flag();
            return TailRequest::Listener {
                listen: args.listen,
                path,
                stray,
            };
        }
        if args.stored {
            TailRequest::Stored(args, path)
        } else {
            TailRequest::Pull(args, path)
        }
    }
}

impl Command {
    /// The listener flags of `listen`, or of `tail` in listener mode (the
    /// choice `TailCommand::into_request` makes), without taking them.
    pub fn listener_args(&self) -> Option<&ListenArgs> {
        match self {
            Command::Listen(cmd) => Some(match &cmd.product {
                None => &cmd.args,
                Some(ListenProduct::AuditLogs(args)) => args,
                Some(ListenProduct::Konnect(KonnectListen {
                    resource: KonnectResource::AuditLogs(args),
                })) => args,
            }),
            Command::Tail(cmd) => {
                let (args, mode) = match &cmd.product {
                    None => (&cmd.args, None),
                    Some(TailProduct::AuditLogs(t))
                    | Some(TailProduct::Konnect(KonnectTail {
                        resource: KonnectTailResource::AuditLogs(t),
                    })) => (&t.args, t.mode.as_ref()),
                };
                match mode {
                    Some(TailMode::Listener(listen)) => Some(listen),
                    None if args.listen.endpoint.is_some() || args.listen.public_url.is_some() => {
                        Some(&args.listen)
                    }
                    None => None,
                }
            }
            _ => None,
        }
    }
}

impl TailArgs {
    /// The first flag given that only the pull or stored tail takes.
    pub fn pull_only_flag(&self) -> Option<&'static str> {
        let q = &self.query;
        [
            (q.start_time.is_some(), "--start-time"),
            (q.end_time.is_some(), "--end-time"),
            (q.since.is_some(), "--since"),
            (q.event_type.is_some(), "--type"),
            (q.limit.is_some(), "--limit"),
            (q.follow.is_some(), "--follow"),
            (q.poll_interval.is_some(), "--poll-interval"),
            (q.page_size.is_some(), "--page-size"),
            (q.jq_raw_output, "--jq-raw-output"),
            (!q.columns.is_empty(), "--columns"),
            (self.stored, "--stored"),
            (self.lines.is_some(), "--lines"),
            (self.org, "--org"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }

    /// The first flag given that only the webhook listener takes.
    pub fn listener_only_flag(&self) -> Option<&'static str> {
        let l = &self.listen;
        [
            (l.name.is_some(), "--name"),
            (l.skip_ssl_verification.is_some(), "--skip-ssl-verification"),
            (l.configure_webhook.is_some(), "--configure-webhook"),
            (l.tail.is_some(), "--tail"),
            (l.detach.is_some(), "--detach"),
            (l.check.is_some(), "--check"),
            (l.verify.is_some(), "--verify"),
            (l.backfill.is_some(), "--backfill"),
            (l.max_file_size.is_some(), "--max-file-size"),
            (l.rotate_every.is_some(), "--rotate-every"),
            (l.retain.is_some(), "--retain"),
            (l.retain_size.is_some(), "--retain-size"),
            (l.admin_address.is_some(), "--admin-address"),
            (l.dry_run.is_some(), "--dry-run"),
            (l.log_max_size.is_some(), "--log-max-size"),
            (l.log_keep.is_some(), "--log-keep"),
            (!l.on.is_empty(), "--on"),
            (!l.exec.is_empty(), "--exec"),
            (l.exec_timeout.is_some(), "--exec-timeout"),
            (l.exec_jobs.is_some(), "--exec-jobs"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }
}

/// Who and what to keep of the records a read prints, and their
/// principals' names: shared by every read (`get audit-logs`, the pull and
/// stored `tail`, and the listener's `tail`).
#[derive(Debug, Args, Clone, Default)]
pub struct ReadArgs {
    /// Keep the records that match Kong's alert conditions: locked,
    /// failed-login, denied, forbidden, server-error, or all (comma-separated
    /// or repeated).
    #[arg(
        long = "alert",
        value_name = "RULE[,RULE]",
        help_heading = "Who, what, how much"
    )]
    pub alerts: Vec<String>,

    /// Keep the records of this principal: a user's email or full name, a
    /// system account's name, a portal developer's email (from the lookup
    /// cache), or an id (repeatable).
    #[arg(
        long = "principal",
        value_name = "EMAIL|NAME|ID",
        help_heading = "Who, what, how much"
    )]
    pub principals: Vec<String>,

    /// Add `principal_name` (the principal's name, looked up in Konnect) to
    /// each JSON record that lacks it; `=false` turns off all lookups
    /// (tables then show ids). [default: names in tables when a token is at
    /// hand]
    #[arg(
        long,
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL",
        help_heading = "Who, what, how much"
    )]
    pub resolve: Option<bool>,

    /// Keep the records whose bytes, as stored, match this regular
    /// expression (`(?i)` at its start ignores case). Tested before a
    /// record is read, together with every other filter.
    #[arg(long, value_name = "PATTERN", help_heading = "Who, what, how much")]
    pub grep: Option<String>,
}

/// The flags of an audit-log query, shared by `get audit-logs` and `tail`
/// (upstream's names, defaults and help).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Query")]
pub struct QueryArgs {
    /// Inclusive RFC3339 lower bound for event timestamps.
    ///
    /// Accepts UTC (Z) or a numeric UTC offset, e.g. 2026-08-23T14:00:00Z
    /// or 2026-08-23T09:00:00-05:00.
    #[arg(long, value_name = "TIME")]
    pub start_time: Option<String>,

    /// Inclusive RFC3339 upper bound for event timestamps.
    ///
    /// Accepts UTC (Z) or a numeric UTC offset, e.g. 2026-08-24T14:00:00Z
    /// or 2026-08-24T09:00:00-05:00.
    #[arg(long, value_name = "TIME")]
    pub end_time: Option<String>,

    /// Retrieve events from the specified lookback period, e.g. 30s, 15m,
    /// 2h, 24h, 168h, 1h30m.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub since: Option<String>,

    /// Filter by event type: authentication, authorization, or
    /// gateway_access (`access` is accepted too).
    #[arg(long = "type", value_name = "TYPE")]
    pub event_type: Option<String>,

    /// Maximum total events to return.
    ///
    /// Defaults to the 50 most recent when no time window is specified;
    /// time-window queries are unlimited unless --limit is given. 0 means
    /// unlimited.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub limit: Option<String>,

    /// Poll continuously for new events until interrupted. [default: false
    /// for `get`, true for `tail`]
    #[arg(short = 'F', long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub follow: Option<bool>,

    /// Interval between successful polling cycles in follow mode.
    /// [default: 10s]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub poll_interval: Option<String>,

    /// Maximum audit-log records requested per API page (1..1000).
    /// [default: 100, config: konnect.page-size]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub page_size: Option<String>,

    /// Output string jq results without JSON quotes (like jq -r).
    #[arg(short = 'r', long)]
    pub jq_raw_output: bool,

    /// Select text columns as HEADER=.field (repeatable or
    /// comma-separated).
    ///
    /// Supports nested fields, quoted keys, array indexes, and string
    /// slices, e.g. --columns 'WHEN=.event_ts,WHO=.principal_id'.
    #[arg(long, value_name = "HEADER=.FIELD")]
    pub columns: Vec<String>,
}

/// `get`.
#[derive(Debug, Args)]
pub struct GetCommand {
    #[command(subcommand)]
    pub product: GetProduct,
}

#[derive(Debug, Subcommand)]
pub enum GetProduct {
    /// Get Konnect organization audit logs.
    #[command(name = "audit-logs", visible_alias = "audit-log")]
    AuditLogs(GetAuditLogs),

    /// Konnect resources.
    #[command(visible_aliases = ["k", "K"])]
    Konnect(KonnectGet),
}

#[derive(Debug, Args)]
#[command(subcommand_required = true)]
pub struct KonnectGet {
    #[command(subcommand)]
    pub resource: KonnectGetResource,
}

#[derive(Debug, Subcommand)]
pub enum KonnectGetResource {
    /// Get Konnect organization audit logs.
    #[command(name = "audit-logs", visible_alias = "audit-log")]
    AuditLogs(GetAuditLogs),
}

/// `get audit-logs`: retrieve Konnect organization audit logs through the
/// pull API, or from this profile's stored events (`--stored`) or exported
/// files (`--file`).
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GetAuditLogs {
    #[command(flatten)]
    pub query: QueryArgs,

    /// Filter JSON output with a jq expression (run by jaq).
    #[arg(long, value_name = "FILTER", help_heading = "Query")]
    pub jq: Option<String>,

    #[command(flatten)]
    pub read: ReadArgs,

    /// Print a summary instead of the records: the window, totals by type
    /// and outcome, the top principals and actions, a count per alert rule
    /// and the events over time as a bar chart (`-o json|yaml` for
    /// scripts). Without --limit every record of the window is counted.
    #[arg(long, help_heading = "Who, what, how much")]
    pub summary: bool,

    /// Query this profile's stored events (every segment and the active
    /// file) instead of Konnect.
    #[arg(long, help_heading = "Stored events")]
    pub stored: bool,

    /// Query this file instead of Konnect (repeatable; gzip is detected by
    /// content; `-` is stdin).
    #[arg(long = "file", value_name = "PATH", help_heading = "Stored events")]
    pub files: Vec<PathBuf>,

    /// With `--stored` or `--file`: check every record's Ed25519 signature
    /// and print a summary per file; exit 1 if any is invalid.
    #[arg(long, help_heading = "Stored events")]
    pub verify: bool,

    /// With `--verify`: the JWKS to check against. [default: the profile's
    /// saved jwks.json, else Konnect's]
    #[arg(long, value_name = "FILE", help_heading = "Stored events")]
    pub jwks: Option<PathBuf>,

    /// Exit 1 when any line could not be read (and, with `--verify`, when
    /// any record is unsigned).
    #[arg(long, help_heading = "Stored events")]
    pub strict: bool,

    /// With `--stored` or `--file`: only this Dev Portal's records (those
    /// with its portal_id), by id or name (repeatable). A name is looked up
    /// in Konnect; an id works offline.
    #[arg(
        long = "portal",
        value_name = "ID|NAME",
        help_heading = "Stored events"
    )]
    pub portals: Vec<String>,

    /// With `--stored` or `--file`: only the organisation's records (those
    /// without a portal_id).
    #[arg(long, conflicts_with = "portals", help_heading = "Stored events")]
    pub org: bool,

    /// Unexpected positional arguments (reported with upstream's message).
    #[arg(hide = true, value_name = "ARGS")]
    pub positional: Vec<String>,

    #[command(subcommand)]
    pub resource: Option<AuditLogResource>,
}

/// Read-only views of the region's audit-log setup.
#[derive(Debug, Subcommand)]
pub enum AuditLogResource {
    /// List audit-log destinations.
    #[command(visible_aliases = ["dests", "destination-list"])]
    Destinations,

    /// Show one audit-log destination, by id or name.
    #[command(visible_alias = "dest")]
    Destination {
        #[arg(value_name = "ID|NAME")]
        id_or_name: String,
    },

    /// Show the region's audit-log webhook and its delivery status, or a
    /// Dev Portal's (`--portal`).
    #[command(visible_alias = "hook")]
    Webhook(PortalArg),

    /// Show the region's audit-log replay job, or a Dev Portal's
    /// (`--portal`).
    #[command(name = "replay-job")]
    ReplayJob(PortalArg),
}

/// `--portal` of the commands about one stream's webhook or replay job.
#[derive(Debug, Args, Clone, Default)]
pub struct PortalArg {
    /// The Dev Portal's, by id or name, instead of the organisation's.
    #[arg(long, value_name = "ID|NAME")]
    pub portal: Option<String>,
}

impl GetCommand {
    /// The `audit-logs` flags and the command path for messages.
    pub fn into_audit_logs(self) -> (GetAuditLogs, String) {
        match self.product {
            GetProduct::AuditLogs(a) => (a, "kongctl get audit-logs".to_owned()),
            GetProduct::Konnect(KonnectGet {
                resource: KonnectGetResource::AuditLogs(a),
            }) => (a, "kongctl get konnect audit-logs".to_owned()),
        }
    }
}

/// `completion <SHELL>`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to generate the completion script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: CompletionShell,
}

/// Shells `completion` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

/// `version`: no flags of its own (`-o` is global).
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Unexpected positional arguments (reported with our usage message).
    #[arg(hide = true, value_name = "ARGS")]
    pub positional: Vec<String>,
}

/// `delete audit-logs …` and `delete konnect audit-logs …`.
#[derive(Debug, Args)]
pub struct DeleteCommand {
    #[command(subcommand)]
    pub product: DeleteProduct,
}

#[derive(Debug, Subcommand)]
pub enum DeleteProduct {
    /// Delete a Konnect audit-log destination or the region's webhook.
    #[command(name = "audit-logs", visible_aliases = ["audit-log", "al", "AL"])]
    AuditLogs(DeleteAuditLogs),

    /// Konnect resources.
    #[command(visible_aliases = ["k", "K"])]
    Konnect(KonnectDelete),
}

#[derive(Debug, Args)]
pub struct KonnectDelete {
    #[command(subcommand)]
    pub resource: KonnectDeleteResource,
}

#[derive(Debug, Subcommand)]
pub enum KonnectDeleteResource {
    /// Delete a Konnect audit-log destination or the region's webhook.
    #[command(name = "audit-logs", visible_aliases = ["audit-log", "al", "AL"])]
    AuditLogs(DeleteAuditLogs),
}

#[derive(Debug, Args)]
pub struct DeleteAuditLogs {
    #[command(subcommand)]
    pub resource: DeleteResource,
}

/// What `delete audit-logs` removes.
#[derive(Debug, Subcommand)]
pub enum DeleteResource {
    /// Delete an audit-log destination, by id or name.
    ///
    /// If the region's webhook points at it, the webhook is disabled and
    /// cleared first (Konnect refuses to delete a destination in use). A
    /// "destination is in use" answer is retried for up to 60 s, as the
    /// listener's own cleanup does.
    #[command(visible_alias = "dest")]
    Destination(DeleteDestinationArgs),

    /// Disable and clear the region's audit-log webhook (`--region`), or a
    /// Dev Portal's (`--portal`).
    ///
    /// Afterwards the webhook is `enabled=false`, `endpoint=unconfigured`,
    /// what `listen` expects (a portal's: disabled, no destination). The
    /// destination it pointed at is kept; delete it with `kongctl delete
    /// audit-logs destination <id>`.
    #[command(visible_alias = "hook")]
    Webhook(DeleteWebhookArgs),
}

/// `delete audit-logs webhook`.
#[derive(Debug, Args)]
pub struct DeleteWebhookArgs {
    #[command(flatten)]
    pub portal: PortalArg,

    #[command(flatten)]
    pub confirm: ConfirmArgs,
}

/// `delete audit-logs destination <ID|NAME>`.
#[derive(Debug, Args)]
pub struct DeleteDestinationArgs {
    /// The destination's id, or its name.
    #[arg(value_name = "ID|NAME")]
    pub id_or_name: String,

    #[command(flatten)]
    pub confirm: ConfirmArgs,
}

/// How a `delete` is confirmed.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct ConfirmArgs {
    /// Do not ask for confirmation (required without a terminal).
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Also remove what a running kongctl listener on this machine owns
    /// (that listener then receives nothing more).
    #[arg(long)]
    pub force: bool,
}

impl DeleteCommand {
    /// The resource and the command path for messages.
    pub fn into_resource(self) -> (DeleteResource, String) {
        let (a, base) = match self.product {
            DeleteProduct::AuditLogs(a) => (a, "kongctl delete audit-logs"),
            DeleteProduct::Konnect(KonnectDelete {
                resource: KonnectDeleteResource::AuditLogs(a),
            }) => (a, "kongctl delete konnect audit-logs"),
        };
        let leaf = match &a.resource {
            DeleteResource::Destination(_) => "destination",
            DeleteResource::Webhook(_) => "webhook",
        };
        (a.resource, format!("{base} {leaf}"))
    }
}
