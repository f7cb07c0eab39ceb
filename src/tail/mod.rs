//! `tail`: print stored records as they are acknowledged, optionally through
//! a jq filter run by jaq.
//!
//! [`filter`] compiles `--jq` once and runs it per record, printing results
//! as the original did. Starting and stopping the listener is left to the
//! caller.

pub mod filter;
pub mod gofmt;
mod json;

pub use filter::{FilterCompileError, JqFilter, RecordSkip};
