//! The Konnect API, as far as audit logs need it.
//!
//! `client` owns HTTP: hosts, authentication, timeouts and retries.
//! `error` owns what a failed call reports (shared with `login`, whose token
//! renewal fails the same ways). `login` owns the credential: a PAT or
//! `kongctl login`'s token file. `audit_logs` knows the audit-log endpoints
//! (webhook and destinations) and the quirks of their payloads;
//! `replay_job` the region's replay job and the webhook's delivery status,
//! which gap healing (`crate::replay`) watches. Nothing here
//! logs or formats the PAT or a destination's authorization value.

pub mod audit_logs;
pub mod client;
pub mod error;
pub mod login;
pub mod replay_job;

pub use audit_logs::{AuditLogs, Destination, NewDestination, WebhookState};
pub use client::{Hosts, KonnectClient};
pub use error::{ApiError, KonnectError};
pub use login::{Credential, LoginToken};
