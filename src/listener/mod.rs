//! The local HTTP listener that receives Konnect's audit-log batches.
//!
//! `ingest` turns a request body into records (gzip detection, bounded
//! with group commit, and `server` speaks HTTP and enforces the contract
//! Konnect itself, state files and signal handling belong to the caller.

pub mod ingest;

pub use ingest::Batch;
