//! A profile's store of received records: the active file and the closed
//! segments, their index, the writer that appends to it, the rules that
//! rotate, compress and delete, and the one way to read it all back (issue
//! 13; the layout is ENGINE.md's "Store layout" contract). This module owns
//! the layout: nothing outside it names a store file.
//!
//! - [`layout`]: file names (active file, segments, index, temporary names).
//! - [`durable`]: how far the active file is durable, and how each step of
//!   a change to the directory becomes so.
//! - [`batch`]: one request's records as they go to disk (the record rule).
//! - [`writer`]: appends batches durably with group commit, on the ingest
//!   path; [`rotate`]: closes the active file into a segment.
//! - [`index`]: `segments.json`, replaced atomically.
//! - [`policy`]: `--max-file-size`, `--rotate-every`, `--retain`,
//!   `--retain-size`, parsed.
//! - [`scan`]: record counts and time ranges of stored lines.
//! - [`recover`]: at startup, finishes or undoes what a killed listener
//!   left half done, and says what it did.
//! - [`maintain`]: the background thread that indexes closed segments,
//!   gzips them and applies retention.
//! - [`cursor`]: a durable follower that hands every stored record once
//!   to a handler, from a cursor file beside the store.
//! - [`snapshot`]: reading it all back while a listener writes: the one
//!   listing, the one open of a segment, the one consistent view that
//!   every reader (`--stored` queries, `tail --stored`, replay's scan,
//!   offline `--verify`) starts from.
//!
//! Receiving requests is `crate::listener`'s; what readers do with the
//! records is `crate::source`'s.

pub mod batch;
pub mod cursor;
pub mod durable;
pub mod index;
pub mod layout;
pub mod maintain;
pub mod policy;
pub mod recover;
pub mod rotate;
pub mod scan;
pub mod snapshot;
pub mod writer;

pub use batch::Batch;
pub use durable::Committed;
pub use index::{Index, SegmentEntry};
pub use layout::{Form, SegmentName, StoreFile};
pub use maintain::{ClosedSegment, StoreSummary};
pub use policy::StorePolicy;
pub use recover::Recovered;
pub use snapshot::{Segment, Snapshot, SnapshotError};
pub use writer::{EventStore, Opened, Rotation, StoreError, StoreStats, Subscription};

/// Work that may wait for idle cores: the calling thread runs under
/// Linux's `SCHED_IDLE` policy (only when no other thread wants the core),
/// else at nice 19. Used by the signature checker
/// (`crate::verify::checker`), whose backlog is bounded by the store, not
/// by memory.
pub(crate) fn idle_thread_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        lower_thread_priority();
    }
}

/// Background work yields the CPU to ingest: the calling thread's nice
/// value is raised to 19 (Linux sets it per thread). Used by the
/// maintenance thread.
pub(crate) fn lower_thread_priority() {
    // SAFETY: setpriority only reads its integer arguments; `gettid` names
    // this thread.
    let tid = nix::unistd::gettid().as_raw() as libc::id_t;
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, 19) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower a background thread's priority");
    }
}
