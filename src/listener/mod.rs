//! The local HTTP listener that receives Konnect's audit-log batches.
//!
//! `ingest` decodes a request body (gzip detection, bounded decoding) for
//! `crate::store` to cut into records and append durably (its writer, with
//! group commit and rotation), and `server` speaks HTTP and enforces the contract
//! (path, method, authorization, size limits) before anything is stored;
//! `linger` lets a client whose body was refused unread read the answer;
//! `probe` answers the tunnel self-test before serving starts. `dedup` is
//! the gate that drops replayed duplicates on their way to the store while
//! gap healing (`crate::replay`) has Konnect replay a window. `counters`
//! counts requests by status, records and bytes, for every report.
//! Konnect itself, state files and signal handling belong to the caller.

pub mod counters;
pub mod dedup;
pub mod ingest;
pub mod linger;
pub mod probe;
pub mod server;

pub use counters::{IngestCounters, IngestCounts};
pub use dedup::DedupGate;
pub use server::{ListenerSettings, Screen, ScreenError, ServeError, ServeReport, serve};
