//! A profile's store of received records: the active file and the closed
//! segments, their index, the writer that appends to it, the rules that
//! rotate, compress and delete, and the one way to read it all back (issue
//! 13; the layout is ENGINE.md's "Store layout" contract). This module owns
//! the layout: nothing outside it names a store file.
//!
//! - [`layout`]: file names (active file, segments, index, temporary names).
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
pub mod index;
pub mod layout;
pub mod maintain;
pub mod policy;
pub mod recover;
pub mod rotate;
pub mod scan;
pub mod snapshot;
pub mod writer;

use std::path::Path;
use std::sync::OnceLock;

pub use batch::Batch;
pub use index::{Index, SegmentEntry};
pub use layout::{Form, SegmentName, StoreFile};
pub use maintain::{ClosedSegment, StoreSummary};
pub use policy::StorePolicy;
pub use recover::Recovered;
pub use snapshot::{Segment, Snapshot, SnapshotError};
pub use writer::{EventStore, Opened, Rotation, StoreError, StoreStats, Subscription};

/// How far the active file is durable: `offset` bytes of the active file
/// of `generation` (which starts at 0 when the store opens and grows by
/// one at each rotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Committed {
    pub generation: u64,
    pub offset: u64,
}

/// Test only, not for users: `KONGCTL_TEST_STORE_PAUSE=<point>` stops the
/// thread that reaches that point of a rotation, compression or deletion
/// (the first time), after printing `test: store paused at <point>: <path>`
/// to stderr, so that a test can SIGKILL the listener exactly there.
const PAUSE_ENV: &str = "KONGCTL_TEST_STORE_PAUSE";

/// Stops here forever if the test hook names `point` (see [`PAUSE_ENV`]).
pub(crate) fn pause_point(point: &str, path: &Path) {
    static WANTED: OnceLock<Option<String>> = OnceLock::new();
    let wanted = WANTED.get_or_init(|| std::env::var(PAUSE_ENV).ok().filter(|v| !v.is_empty()));
    if wanted.as_deref() == Some(point) {
        eprintln!("test: store paused at {point}: {}", path.display());
        loop {
            std::thread::park();
        }
    }
}

/// Syncs a directory, so that the names created, renamed or removed in it
/// survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

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
