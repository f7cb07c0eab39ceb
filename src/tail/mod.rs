//! `tail`: print stored records as they are acknowledged, optionally through
//! a jq filter run by jaq.
//!
//! [`follow`] reads the events file up to the offset the store has fsynced,
//! [`filter`] compiles `--jq` once and runs it per record, printing results
//! as the original did, and [`printer`] writes the lines to stdout and the
//! warnings to stderr. Starting and stopping the listener is left to the
//! caller.

pub mod filter;
pub mod follow;
pub mod gofmt;
mod json;
pub mod printer;
mod swar;

pub use filter::{FilterCompileError, JqFilter, RecordSkip};
pub use follow::{FollowEnd, Followed, RecordSink, follow};
pub use printer::TailPrinter;
