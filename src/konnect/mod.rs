//! The Konnect API, as far as audit logs need it.
//!
//! `client` owns HTTP: hosts, authentication, timeouts, retries and error
//! reporting. `audit_logs` knows the audit-log endpoints (webhook and
//! destinations) and the quirks of their payloads. Nothing here logs or
//! formats the PAT or a destination's authorization value.

pub mod audit_logs;
pub mod client;
pub mod login;

pub use audit_logs::{AuditLogs, Destination, NewDestination, WebhookState};
pub use client::{ApiError, Hosts, KonnectClient, KonnectError};
pub use login::{Credential, LoginToken};
