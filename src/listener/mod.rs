//! The local HTTP listener that receives Konnect's audit-log batches.
//!
//! `ingest` turns a request body into records (gzip detection, bounded
//! decoding, line splitting), `store` appends them durably to `events.jsonl`
//! with group commit, and `server` speaks HTTP and enforces the contract
//! (path, method, authorization, size limits) before anything is stored.
