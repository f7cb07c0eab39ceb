//! The local HTTP listener that receives Konnect's audit-log batches.
//!
//! `ingest` turns a request body into records (gzip detection, bounded
//! decoding, line splitting), `store` appends them durably to `events.jsonl`
//! with group commit and rotates it into segments (whose upkeep is
//! `crate::store`'s), and `server` speaks HTTP and enforces the contract
//! (path, method, authorization, size limits) before anything is stored.
//! Konnect itself, state files and signal handling belong to the caller.

pub mod ingest;
pub mod server;
pub mod store;

pub use ingest::Batch;
pub use server::{ListenerSettings, ServeError, ServeReport, serve};
pub use store::{EventStore, Opened, Repair, StoreError, StoreStats, Subscription};
