//! Where queried records come from. Each source yields [`Record`]s to the
//! query [`Pipeline`](crate::query::Pipeline) in time order, as far as it
//! can, and knows whether it follows:
//!
//! - [`file`]: lines of a file, plain or gzip'd (`--file`, stored segments);
//! - [`order`]: time-ordering for sources stored in another order;
//! - [`parallel`]: many inputs read on every core and merged in time order
//!   (stored segments and the active file, exported files);
//! - [`stored`]: the profile's store (segments and active file), queried
//!   in time order or followed across rotation;
//! - [`pull`]: Konnect's audit-log pull API, windowed on Konnect's clock,
//!   paged, retried and followed.
//!
//! [`Record`]: crate::record::Record

pub mod file;
pub mod order;
pub mod parallel;
pub mod pull;
pub mod stored;
