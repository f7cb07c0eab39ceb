//! kongctl: watch Kong Konnect organisation audit logs from a terminal.
//!
//! `listen` points the region's audit-log webhook at a public URL (a tunnel to
//! this machine), receives Konnect's gzip'd batches on a local HTTP listener and
//! appends every record durably to `events.jsonl`; `tail` also prints each
//! record, optionally through a jq filter; `ps` lists and stops the listeners
//! started in the background with `--detach`.
//!
//! `main.rs` only parses arguments and maps the outcome to an exit code; the
//! work starts in [`run`].

pub mod fsutil;
pub mod listener;
pub mod ps;
pub mod tail;
