//! clap's own errors (unknown flag, missing value, bad value, unknown
//! command) in the shape of ours: `Error: <what>`, an optional `Hint:` line,
//! a blank line and `Run '<command path> --help' for usage`, exit 1.
//!
//! The wording follows the original's flag library (Go's pflag and cobra:
//! `unknown flag: --x`, `flag needs an argument: --x`, `invalid argument
//! "v" for "--x" flag: …`, `unknown command "x" for "kongctl"`) where it has
//! an equivalent, so scripts that grep those keep working; other kinds keep
//! clap's first paragraph. Help and version requests are not errors and are
//! left to clap. The command path is read from the arguments against the
//! command tree, since clap's error does not carry it for every kind.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::error::CliError;

/// Our error for `err`, raised while parsing `args` (program name first)
/// against `command`; `None` for `--help`, `--version` and the help shown
/// for a missing subcommand, which clap prints itself.
pub fn to_cli_error(
    err: &clap::Error,
    command: &clap::Command,
    args: &[OsString],
) -> Option<CliError> {
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return None;
    }
    let path = command_path(command, args);
    let (message, hint) = describe(err, &path);
    let e = CliError::usage(message, &path);
    Some(match hint {
        Some(h) => e.with_hint(h),
        None => e,
    })
}

/// The message and hint for one error.
fn describe(err: &clap::Error, path: &str) -> (String, Option<String>) {
    let arg = context_str(err, ContextKind::InvalidArg);
    // `--log-level <LEVEL>` → `--log-level`: the flag as users type it.
    let flag = arg.as_deref().map(|a| a.split(' ').next().unwrap_or(a));
    let value = context_str(err, ContextKind::InvalidValue);
    let suggestion = |kind| {
        context_strs(err, kind)
            .first()
            .map(|s| format!("did you mean {s}?"))
    };
    match err.kind() {
        ErrorKind::UnknownArgument => {
            let typed = arg.unwrap_or_default();
            let typed = typed.split('=').next().unwrap_or_default().to_string();
            let message = if let Some(long) = typed.strip_prefix("--") {
                format!("unknown flag: --{long}")
            } else if let Some(short) = typed.strip_prefix('-').filter(|s| !s.is_empty()) {
                let c = short.chars().next().expect("short flag has a character");
                format!("unknown shorthand flag: '{c}' in {typed}")
            } else {
                clap_message(err)
            };
            (message, suggestion(ContextKind::SuggestedArg))
        }
        ErrorKind::InvalidSubcommand => {
            let name = context_str(err, ContextKind::InvalidSubcommand).unwrap_or_default();
            (
                format!("unknown command {} for {}", quote(&name), quote(path)),
                suggestion(ContextKind::SuggestedSubcommand),
            )
        }
        ErrorKind::InvalidValue if value.as_deref() == Some("") => (
            format!("flag needs an argument: {}", flag.unwrap_or_default()),
            None,
        ),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation if flag.is_some() => {
            let flag = flag.expect("checked above");
            let value = value.unwrap_or_default();
            let why = match err.kind() {
                ErrorKind::InvalidValue => {
                    let valid = context_strs(err, ContextKind::ValidValue);
                    if valid.is_empty() {
                        "invalid value".to_string()
                    } else {
                        format!("possible values are {}", valid.join(", "))
                    }
                }
                _ => std::error::Error::source(err)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "invalid value".into()),
            };
            let message = if flag.starts_with('-') {
                format!(
                    "invalid argument {} for {} flag: {why}",
                    quote(&value),
                    quote(flag)
                )
            } else {
                format!("invalid argument {} for {flag}: {why}", quote(&value))
            };
            (message, suggestion(ContextKind::SuggestedValue))
        }
        _ => (clap_message(err), None),
    }
}

/// clap's message without its `error: ` prefix, tips, usage and "For more
/// information" lines: the first paragraph, its lines joined.
fn clap_message(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let first = rendered.split("\n\n").next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    first
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn context_str(err: &clap::Error, kind: ContextKind) -> Option<String> {
    match err.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        ContextValue::Strings(v) => v.first().cloned(),
        _ => None,
    }
}

fn context_strs(err: &clap::Error, kind: ContextKind) -> Vec<String> {
    match err.get(kind) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        Some(ContextValue::StyledStr(s)) => vec![s.to_string()],
        Some(ContextValue::StyledStrs(v)) => v.iter().map(ToString::to_string).collect(),
        _ => Vec::new(),
    }
}

/// Go's `%q` for the plain strings met here.
fn quote(s: &str) -> String {
    crate::gofmt::quote(s)
}

/// `kongctl listen audit-logs`: the subcommands named in `args` (by name or
/// alias, shown by name), skipping flags and their values, up to the first
/// word that is not a subcommand of the command reached so far.
pub fn command_path(command: &clap::Command, args: &[OsString]) -> String {
    let mut root = command.clone();
    root.build();
    let mut current = &root;
    let mut path = vec![root.get_name().to_string()];
    let mut words = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        if let Some(long) = word.strip_prefix("--") {
            if !long.contains('=') && long_takes_value(current, long) {
                words.next();
            }
        } else if let Some(shorts) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            // A cluster (`-dy`) or a short flag with its value attached
            // (`-pdev`): only a value-taking flag at the end takes the next
            // word.
            let mut chars = shorts.chars();
            while let Some(c) = chars.next() {
                if short_takes_value(current, c) {
                    if chars.as_str().is_empty() {
                        words.next();
                    }
                    break;
                }
            }
        } else if let Some(sub) = current.find_subcommand(word.as_ref()) {
            path.push(sub.get_name().to_string());
            current = sub;
        } else if current.has_subcommands() && current.get_positionals().next().is_none() {
            // An unknown command: the path stops at its parent.
            break;
        }
    }
    path.join(" ")
}

/// Whether `--name` of `cmd` needs a value (not one with an optional value,
/// such as `--detach [true|false]`).
fn long_takes_value(cmd: &clap::Command, name: &str) -> bool {
    cmd.get_arguments()
        .find(|a| {
            a.get_long() == Some(name)
                || a.get_all_aliases()
                    .is_some_and(|aliases| aliases.contains(&name))
        })
        .is_some_and(needs_value)
}

fn short_takes_value(cmd: &clap::Command, c: char) -> bool {
    cmd.get_arguments()
        .find(|a| {
            a.get_short() == Some(c)
                || a.get_all_short_aliases()
                    .is_some_and(|aliases| aliases.contains(&c))
        })
        .is_some_and(needs_value)
}

fn needs_value(arg: &clap::Arg) -> bool {
    arg.get_action().takes_values() && arg.get_num_args().is_none_or(|n| n.min_values() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::{CommandFactory, Parser};

    fn error_for(argv: &[&str]) -> Option<String> {
        let args: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let err = Cli::try_parse_from(&args).expect_err("parsing fails");
        to_cli_error(&err, &Cli::command(), &args).map(|e| e.to_string())
    }

    #[test]
    fn paths_follow_subcommands_and_skip_flag_values() {
        let path = |argv: &[&str]| {
            let args: Vec<OsString> = argv.iter().map(OsString::from).collect();
            command_path(&Cli::command(), &args)
        };
        assert_eq!(path(&["kongctl"]), "kongctl");
        assert_eq!(path(&["kongctl", "lsn", "--foo"]), "kongctl listen");
        assert_eq!(
            path(&["kongctl", "--profile", "listen", "ps", "stop", "--x"]),
            "kongctl ps stop"
        );
        assert_eq!(
            path(&["kongctl", "-p", "tail", "listen", "k", "al", "--endpoint"]),
            "kongctl listen konnect audit-logs"
        );
        assert_eq!(
            path(&["kongctl", "-pdev", "get", "audit-log", "dest"]),
            "kongctl get audit-logs destination"
        );
        assert_eq!(path(&["kongctl", "nope", "listen"]), "kongctl");
        assert_eq!(
            path(&["kongctl", "listen", "-d", "audit-logs"]),
            "kongctl listen audit-logs"
        );
        assert_eq!(
            path(&["kongctl", "delete", "konnect", "al", "hook", "-y"]),
            "kongctl delete konnect audit-logs webhook"
        );
    }

    #[test]
    fn common_errors_read_like_the_originals() {
        assert_eq!(
            error_for(&["kongctl", "listen", "--endpont", "x"]).unwrap(),
            "Error: unknown flag: --endpont\nHint: did you mean --endpoint?\n\n\
             Run 'kongctl listen --help' for usage"
        );
        assert_eq!(
            error_for(&["kongctl", "ps", "-x"]).unwrap(),
            "Error: unknown shorthand flag: 'x' in -x\n\nRun 'kongctl ps --help' for usage"
        );
        assert_eq!(
            error_for(&["kongctl", "tail", "--endpoint"]).unwrap(),
            "Error: flag needs an argument: --endpoint\n\nRun 'kongctl tail --help' for usage"
        );
        assert_eq!(
            error_for(&["kongctl", "lisen"]).unwrap(),
            "Error: unknown command \"lisen\" for \"kongctl\"\nHint: did you mean listen?\n\n\
             Run 'kongctl --help' for usage"
        );
        assert_eq!(
            error_for(&["kongctl", "--log-level", "loud", "ps"]).unwrap(),
            "Error: invalid argument \"loud\" for \"--log-level\" flag: possible values are \
             trace, debug, info, warn, error\n\nRun 'kongctl ps --help' for usage"
        );
        assert_eq!(
            error_for(&["kongctl", "get", "audit-logs", "dest"]).unwrap(),
            "Error: the following required arguments were not provided: <ID|NAME>\n\n\
             Run 'kongctl get audit-logs destination --help' for usage"
        );
        assert_eq!(error_for(&["kongctl", "--help"]), None);
        assert_eq!(error_for(&["kongctl", "listen", "-V"]), None);
    }
}
