//! A profile's store of received records beyond the active file: closed
//! segments, their index, and the rules that rotate, compress and delete
//! them (issue 13; the layout is ENGINE.md's "Store layout" contract).
//!
//! - [`layout`]: file names (active file, segments, index, temporary names).
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
//! Appending records and rotating the active file (both on the ingest
//! path, under the group commit) are `crate::listener::store`'s; what
//! readers do with the records is `crate::source`'s.

pub mod cursor;
pub mod index;
pub mod layout;
pub mod maintain;
pub mod policy;
pub mod recover;
pub mod scan;
pub mod snapshot;

use std::path::Path;
use std::sync::OnceLock;

pub use index::{Index, SegmentEntry};
pub use layout::{Form, SegmentName, StoreFile};
pub use maintain::{ClosedSegment, StoreSummary};
pub use policy::StorePolicy;
pub use recover::Recovered;
pub use snapshot::{Opened, Segment, Snapshot, SnapshotError};

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

/// Background work yields the CPU to ingest: the calling thread's nice
/// value is raised to 19 (Linux sets it per thread). Used by the
/// maintenance thread and the signature checker (`crate::verify::checker`).
pub(crate) fn lower_thread_priority() {
    // SAFETY: setpriority only reads its integer arguments; `gettid` names
    // this thread.
    let tid = nix::unistd::gettid().as_raw() as libc::id_t;
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, 19) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower a background thread's priority");
    }
}
