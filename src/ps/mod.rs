//! Detached-listener process records and the `ps` / `ps stop` commands.
//!
//! [`record`] reads and writes `<config>/processes/<pid>.json` (the detach
//! code writes one per background listener) and [`procfs`] tells whether a
//! record's process is still the one it was written for.

pub mod procfs;
pub mod record;

pub use procfs::{Inspection, Status, start_time_ticks};
pub use record::{LISTEN_KIND, ProcessRecord, Timestamp, redact_args};
