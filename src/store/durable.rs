//! What of the store is durable, and how each step of a change to its
//! directory becomes so: [`Committed`] (how far the active file is synced,
//! which the writer publishes and the maintenance thread and followers
//! read), `sync_dir` (a rename or removal made durable), and, for crash
//! tests, `pause_point` (a place a step can be stopped at, to kill the
//! listener exactly there).

use std::path::Path;
use std::sync::OnceLock;

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
