//! The service flags of `listen`/`tail` (`--admin-address`, `--dry-run`,
//! `--log-max-size`, `--log-keep`) checked into [`ServiceOptions`] and
//! [`LogRoll`], each from its flag, else the environment or config.yaml
//! (`audit-logs:` under the profile), else its default, as the store's
//! settings are (`crate::listen::options::pick`).

use std::net::SocketAddr;

use super::ServiceOptions;
use crate::cli::ListenArgs;
use crate::config::ServiceSettings;
use crate::error::CliError;
use crate::listen::options::{parse_listen_address, pick};
use crate::logging::LogRoll;
use crate::store::policy::{parse_optional_size, parse_size};

impl ServiceOptions {
    /// Checks the admin address (never the listener's port) and
    /// `--dry-run`.
    pub fn resolve(
        args: &ListenArgs,
        configured: &ServiceSettings,
        listen_address: SocketAddr,
        command_path: &str,
    ) -> Result<ServiceOptions, CliError> {
        let usage = |m: String| CliError::usage(m, command_path);
        let admin_address = pick(
            ("admin-address", &args.admin_address),
            &configured.admin_address,
            parse_admin_address,
            &usage,
        )?;
        if let Some(admin) = admin_address
            && admin.port() != 0
            && admin.port() == listen_address.port()
        {
            return Err(usage(format!(
                "--admin-address {admin} uses the listener's port {}: the admin endpoint needs a port of its own (0 picks a free one)",
                listen_address.port()
            )));
        }
        Ok(ServiceOptions {
            admin_address,
            dry_run: args.dry_run.unwrap_or(false),
        })
    }
}

impl LogRoll {
    /// `--log-max-size` and `--log-keep`, else configured, else 10 MiB and
    /// 5 files.
    pub fn resolve(
        args: &ListenArgs,
        configured: &ServiceSettings,
        command_path: &str,
    ) -> Result<LogRoll, CliError> {
        let usage = |m: String| CliError::usage(m, command_path);
        let default = LogRoll::default();
        Ok(LogRoll {
            max_size: pick(
                ("log-max-size", &args.log_max_size),
                &configured.log_max_size,
                parse_optional_size,
                &usage,
            )?
            .unwrap_or(default.max_size),
            keep: pick(
                ("log-keep", &args.log_keep),
                &configured.log_keep,
                parse_keep,
                &usage,
            )?
            .unwrap_or(default.keep),
        })
    }
}

/// HOST:PORT, as `--listen-address` takes it.
fn parse_admin_address(raw: &str) -> Result<SocketAddr, String> {
    parse_listen_address(raw).map_err(|_| {
        "use HOST:PORT with an IP address, e.g. 127.0.0.1:9464 (port 0 picks a free one)".into()
    })
}

/// A number of files, 1 to 100.
fn parse_keep(raw: &str) -> Result<usize, String> {
    match parse_size(raw) {
        Ok(n) if (1..=100).contains(&n) && raw.trim().bytes().all(|b| b.is_ascii_digit()) => {
            Ok(n as usize)
        }
        _ => Err("use a whole number of files from 1 to 100".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Given;

    fn listen() -> SocketAddr {
        "127.0.0.1:19090".parse().unwrap()
    }

    fn resolve(args: &ListenArgs, configured: &ServiceSettings) -> Result<ServiceOptions, String> {
        ServiceOptions::resolve(args, configured, listen(), "kongctl listen").map_err(|e| e.message)
    }

    #[test]
    fn the_flag_beats_the_configuration_and_off_is_the_default() {
        let none = ServiceSettings::default();
        assert_eq!(
            resolve(&ListenArgs::default(), &none),
            Ok(ServiceOptions::default())
        );
        let configured = ServiceSettings {
            admin_address: Some(Given {
                value: "127.0.0.1:9464".into(),
                origin: "KONGCTL_DEFAULT_AUDIT_LOGS_ADMIN_ADDRESS".into(),
            }),
            ..Default::default()
        };
        let o = resolve(&ListenArgs::default(), &configured).unwrap();
        assert_eq!(o.admin_address, Some("127.0.0.1:9464".parse().unwrap()));
        let args = ListenArgs {
            admin_address: Some(":0".into()),
            dry_run: Some(true),
            ..Default::default()
        };
        let o = resolve(&args, &configured).unwrap();
        assert_eq!(o.admin_address, Some("0.0.0.0:0".parse().unwrap()));
        assert!(o.dry_run);
    }

    #[test]
    fn bad_addresses_and_the_listeners_port_are_refused() {
        let args = ListenArgs {
            admin_address: Some("localhost".into()),
            ..Default::default()
        };
        let e = resolve(&args, &ServiceSettings::default()).unwrap_err();
        assert!(
            e.starts_with("invalid --admin-address \"localhost\": use HOST:PORT"),
            "{e}"
        );
        let args = ListenArgs {
            admin_address: Some("0.0.0.0:19090".into()),
            ..Default::default()
        };
        let e = resolve(&args, &ServiceSettings::default()).unwrap_err();
        assert!(e.contains("the listener's port 19090"), "{e}");
        let configured = ServiceSettings {
            admin_address: Some(Given {
                value: "nope".into(),
                origin: "/c/config.yaml".into(),
            }),
            ..Default::default()
        };
        let e = resolve(&ListenArgs::default(), &configured).unwrap_err();
        assert!(
            e.starts_with("invalid audit-logs.admin-address \"nope\" in /c/config.yaml"),
            "{e}"
        );
    }

    #[test]
    fn log_rolling_defaults_and_limits() {
        let none = ServiceSettings::default();
        let roll = |args: &ListenArgs| LogRoll::resolve(args, &none, "kongctl listen");
        assert_eq!(roll(&ListenArgs::default()).unwrap(), LogRoll::default());
        let args = ListenArgs {
            log_max_size: Some("0".into()),
            log_keep: Some("2".into()),
            ..Default::default()
        };
        assert_eq!(
            roll(&args).unwrap(),
            LogRoll {
                max_size: None,
                keep: 2
            }
        );
        for bad in ["0", "101", "2KiB", "x"] {
            let args = ListenArgs {
                log_keep: Some(bad.into()),
                ..Default::default()
            };
            assert!(roll(&args).is_err(), "{bad}");
        }
    }
}
