//! An offline emulator of the Kong Konnect organisation audit-log API and of
//! its webhook delivery, for tests and demos of `kongctl listen/tail/ps`.
//!
//! One loopback port serves the v2 and v3 endpoints of the regional and the
//! global API (a client's `--base-url` replaces both hosts); the region of a
//! request is the first label of its `Host` header (`eu.api.konghq.com` →
//! `eu`), `us` otherwise. State is what Konnect keeps: destinations
//! (org-wide), one webhook and one replay job per region, the Dev Portals
//! of each region with their own webhook and replay job, users and system
//! accounts, the PATs that may call. When a region's (or a portal's)
//! webhook is enabled, generated audit-log records (built from Kong's
//! published samples) are POSTed to the destination as Konnect does: gzip
//! batches, one record per line, retried on connection errors, 429 and 500.
//! Every request is checked against the OpenAPI files ([`contract`]) and
//! what breaks them is recorded ([`Sim::contract_violations`]).
//!
//! Tests drive it in-process through [`Sim`] (async) or [`blocking::Sim`];
//! the `konnect-sim` binary offers the same control calls as an HTTP admin
//! API under `/_sim/` (see the README).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use konnect_sim::{Sim, SimConfig};
//! let sim = Sim::start("127.0.0.1:0".parse().unwrap(), SimConfig::for_tests()).await?;
//! // Run the client under test with `--base-url <sim.base_url()> --pat <sim.pat()>`;
//! // once it has enabled the webhook, make Konnect send it 120 events:
//! let report = sim.trigger("us", 120).await;
//! assert!(report.all_delivered(), "{report:?}");
//! // And check what it left behind.
//! assert!(sim.snapshot().is_pristine());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! A `Sim` that is not shut down stops with the runtime it was started on.

mod admin;
mod api;
pub mod blocking;
mod codec;
mod config;
mod context;
pub mod contract;
mod delivery;
mod fault;
mod history;
mod identity;
mod login;
mod portal;
mod problem;
mod records;
mod server;
mod signing;
mod sim;
mod snapshot;
mod state;
mod time;

pub use config::{DEMO_PAT, MAX_RETRIES, REGIONS, SimConfig};
pub use fault::{Fault, FaultAction};
pub use history::{CursorMode, SeedReport};
pub use identity::{NewSystemAccount, NewUser, SystemAccountState, UserState};
pub use login::LoginGrant;
pub use portal::{DeveloperState, NewDeveloper, NewPortal, PortalState, PortalWebhookState};
pub use records::{LogFormat, TRACE_ID_BEYOND_F64};
pub use signing::Forgeries;
pub use sim::Sim;
pub use snapshot::{
    Attempt, ContractViolation, Delivery, DeliverySource, DestinationState, FaultState,
    ReplayJobState, RequestLogEntry, Snapshot, TriggerReport, WebhookState,
};
