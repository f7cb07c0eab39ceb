//! What a started listener shows (SPEC §3 step 8): the startup block `listen`
//! prints on stdout, as the original prints it (reference
//! kongctl-behaviour.md §4), or the log lines `tail` writes instead (its
//! stdout is records only), and the line printed after a successful
//! cleanup. The texts are pure functions, so their exact wording is tested
//! here.

use std::io::Write;
use std::net::SocketAddr;

use super::Run;
use super::options::{AuthorizationOrigin, ListenOptions};
use super::state::StoragePaths;
use crate::konnect::error::redact_url;

impl Run {
    /// The startup block (listen) or its log line (tail).
    pub(super) fn announce(
        &self,
        bound: &SocketAddr,
        local_endpoint: &str,
        destination_id: Option<&str>,
    ) {
        let opts = &self.opts;
        let id = destination_id.unwrap_or("");
        let mode = if opts.tail { " (tail mode)" } else { "" };
        tracing::info!(
            destination_name = %opts.name,
            destination_id = %id,
            endpoint = %redact_url(&opts.endpoint),
            log_format = opts.log_format.as_str(),
            local_endpoint = %local_endpoint,
            listen_address = %bound,
            admin_address = ?self.service.admin_address(),
            events_file = %self.paths.events_file.display(),
            "Konnect Audit-Log Listener Started{mode}"
        );
        tracing::info!("Listening for audit-log events{mode}.");
        let portals: Vec<String> = self
            .progress
            .lock()
            .expect("progress lock poisoned")
            .portals
            .iter()
            .map(|p| p.label())
            .collect();
        if !portals.is_empty() {
            tracing::info!(portals = %portals.join(", "), "Dev Portal webhooks configured");
        }
        if opts.tail {
            return;
        }
        print_stdout(&startup_block(
            opts,
            id,
            local_endpoint,
            bound,
            self.service.admin_address(),
            &self.paths,
            &portals,
        ));
    }
}

/// The startup block `listen` prints once serving: the destination as
/// created (endpoint redacted), the Dev Portals pointed at it (`name
/// (id)`, only with `--portal`), then where the listener listens and
/// writes (and, with `--admin-address`, where the admin endpoint answers).
pub(super) fn startup_block(
    opts: &ListenOptions,
    destination_id: &str,
    local_endpoint: &str,
    bound: &SocketAddr,
    admin: Option<SocketAddr>,
    paths: &StoragePaths,
    portals: &[String],
) -> String {
    let auth = match opts.authorization_origin {
        AuthorizationOrigin::User => "true",
        AuthorizationOrigin::Generated => "true (generated for this run)",
    };
    let mut text = String::new();
    text.push_str("Konnect Audit-Log Listener Started\n\nDestination\n");
    text.push_str(&format!("  name: {}\n", opts.name));
    text.push_str(&format!("  id: {destination_id}\n"));
    text.push_str(&format!("  endpoint: {}\n", redact_url(&opts.endpoint)));
    text.push_str(&format!("  log format: {}\n", opts.log_format.as_str()));
    text.push_str(&format!(
        "  skip ssl verification: {}\n",
        opts.skip_ssl_verification
    ));
    text.push_str(&format!("  authorization configured: {auth}\n"));
    text.push_str(&format!(
        "  webhook configured: {}\n",
        opts.configure_webhook
    ));
    if !portals.is_empty() {
        text.push_str(&format!(
            "  dev portal webhooks configured: {}\n",
            portals.join(", ")
        ));
    }
    text.push_str("\nListener\n");
    text.push_str(&format!("  local endpoint: {local_endpoint}\n"));
    text.push_str(&format!("  listen address: {bound}\n"));
    text.push_str(&format!("  path: {}\n", opts.path));
    if let Some(p) = &opts.public_url {
        text.push_str(&format!("  public base URL: {p}\n"));
    }
    if let Some(admin) = admin {
        text.push_str(&format!(
            "  admin endpoint: {}\n",
            local_endpoint_base(admin)
        ));
    }
    text.push_str(&format!("  events file: {}\n", paths.events_file.display()));
    text.push_str(&format!(
        "  destination state file: {}\n",
        paths.destination_file.display()
    ));
    text.push_str("\nListening for audit-log events. Press Ctrl+C to stop.\n");
    text
}

/// `http://host:port` for a bound address, as [`local_endpoint`] writes it.
pub fn local_endpoint_base(bound: SocketAddr) -> String {
    super::local_endpoint(bound, "")
}

/// What `listen` prints after a stop whose cleanup succeeded.
pub(super) fn stopped_line(destination_id: &str) -> String {
    format!("\nListener stopped. Deleted audit-log destination: {destination_id}\n")
}

/// Prints to stdout; a closed stdout is not an error worth dying for here.
pub(super) fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listen::local_endpoint;
    use crate::listen::options::LogFormat;
    use crate::secret::Secret;

    fn options(endpoint: &str, public_url: Option<&str>) -> ListenOptions {
        ListenOptions {
            endpoint: endpoint.parse().unwrap(),
            endpoint_raw: endpoint.to_string(),
            public_url: public_url.map(str::to_string),
            listen_address: "127.0.0.1:19090".parse().unwrap(),
            path: "/audit-logs".to_string(),
            max_body_bytes: 1 << 20,
            name: "kongctl-audit-logs-host-1234".to_string(),
            log_format: LogFormat::Json,
            skip_ssl_verification: false,
            authorization: Secret::new("Bearer secret"),
            authorization_origin: AuthorizationOrigin::User,
            configure_webhook: true,
            tail: false,
            detach: false,
            jq: None,
            read: Default::default(),
            filter: Default::default(),
            check: crate::listen::check::CheckMode::Warn,
            verify: crate::verify::Mode::Warn,
            backfill: crate::replay::Backfill::Auto,
            store: crate::store::StorePolicy::default(),
            portals: Vec::new(),
            service: crate::service::ServiceOptions::default(),
            warnings: Vec::new(),
        }
    }

    fn block(opts: &ListenOptions) -> String {
        block_with(opts, &[])
    }

    fn block_with(opts: &ListenOptions, portals: &[String]) -> String {
        let bound: SocketAddr = "127.0.0.1:19090".parse().unwrap();
        let paths = StoragePaths::new("/home/u/.config/kongctl/audit-logs/default".into());
        startup_block(
            opts,
            "7f9c1d2e-0000-4000-8000-000000000001",
            &local_endpoint(bound, &opts.path),
            &bound,
            None,
            &paths,
            portals,
        )
    }

    #[test]
    fn startup_block_without_public_url_is_the_originals() {
        let opts = options("https://abc.example.test/audit-logs", None);
        assert_eq!(
            block(&opts),
            "Konnect Audit-Log Listener Started\n\
             \n\
             Destination\n\
             \x20 name: kongctl-audit-logs-host-1234\n\
             \x20 id: 7f9c1d2e-0000-4000-8000-000000000001\n\
             \x20 endpoint: https://abc.example.test/audit-logs\n\
             \x20 log format: json\n\
             \x20 skip ssl verification: false\n\
             \x20 authorization configured: true\n\
             \x20 webhook configured: true\n\
             \n\
             Listener\n\
             \x20 local endpoint: http://127.0.0.1:19090/audit-logs\n\
             \x20 listen address: 127.0.0.1:19090\n\
             \x20 path: /audit-logs\n\
             \x20 events file: /home/u/.config/kongctl/audit-logs/default/events.jsonl\n\
             \x20 destination state file: /home/u/.config/kongctl/audit-logs/default/destination.json\n\
             \n\
             Listening for audit-log events. Press Ctrl+C to stop.\n"
        );
    }

    #[test]
    fn startup_block_with_public_url_shows_it_after_the_path() {
        let opts = options(
            "https://abc.example.test/audit-logs",
            Some("https://abc.example.test"),
        );
        assert_eq!(
            block(&opts),
            "Konnect Audit-Log Listener Started\n\
             \n\
             Destination\n\
             \x20 name: kongctl-audit-logs-host-1234\n\
             \x20 id: 7f9c1d2e-0000-4000-8000-000000000001\n\
             \x20 endpoint: https://abc.example.test/audit-logs\n\
             \x20 log format: json\n\
             \x20 skip ssl verification: false\n\
             \x20 authorization configured: true\n\
             \x20 webhook configured: true\n\
             \n\
             Listener\n\
             \x20 local endpoint: http://127.0.0.1:19090/audit-logs\n\
             \x20 listen address: 127.0.0.1:19090\n\
             \x20 path: /audit-logs\n\
             \x20 public base URL: https://abc.example.test\n\
             \x20 events file: /home/u/.config/kongctl/audit-logs/default/events.jsonl\n\
             \x20 destination state file: /home/u/.config/kongctl/audit-logs/default/destination.json\n\
             \n\
             Listening for audit-log events. Press Ctrl+C to stop.\n"
        );
    }

    #[test]
    fn startup_block_names_the_portals_after_the_webhook() {
        let opts = options("https://abc.example.test/audit-logs", None);
        let text = block_with(&opts, &["dev (p1)".into(), "docs (p2)".into()]);
        assert!(
            text.contains(
                "  webhook configured: true\n  dev portal webhooks configured: dev (p1), docs (p2)\n\nListener\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_admin_endpoint_follows_the_path() {
        let opts = options("https://abc.example.test/audit-logs", None);
        let bound: SocketAddr = "127.0.0.1:19090".parse().unwrap();
        let paths = StoragePaths::new("/d".into());
        let text = startup_block(
            &opts,
            "id",
            &local_endpoint(bound, &opts.path),
            &bound,
            Some("0.0.0.0:9464".parse().unwrap()),
            &paths,
            &[],
        );
        assert!(
            text.contains("  path: /audit-logs\n  admin endpoint: http://127.0.0.1:9464\n  events file: /d/events.jsonl\n"),
            "{text}"
        );
    }

    #[test]
    fn stopped_line_is_the_originals() {
        assert_eq!(
            stopped_line("7f9c"),
            "\nListener stopped. Deleted audit-log destination: 7f9c\n"
        );
    }
}
