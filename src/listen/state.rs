//! The profile's storage directory: the single-writer lock and the state
//! files `listener.json` and `destination.json`.
//!
//! State files are 2-space JSON written atomically with mode 0600 (see
//! `fsutil`). `destination.json` is written as soon as a destination exists
//! and says whether its cleanup finished, so that the next start of the same
//! profile can finish a cleanup a crash interrupted (reclaim). Neither file
//! holds a secret or a raw Konnect response.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::fsutil;

/// Paths inside `<config>/audit-logs/<profile>/`.
#[derive(Debug, Clone)]
pub struct StoragePaths {
    pub dir: PathBuf,
    pub events_file: PathBuf,
    pub listener_file: PathBuf,
    pub destination_file: PathBuf,
    pub lock_file: PathBuf,
}

impl StoragePaths {
    pub fn new(dir: PathBuf) -> Self {
        StoragePaths {
            events_file: dir.join(crate::store::layout::ACTIVE_FILE),
            listener_file: dir.join("listener.json"),
            destination_file: dir.join("destination.json"),
            lock_file: dir.join("listener.lock"),
            dir,
        }
    }
}

/// Where a destination is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupStatus {
    /// Created; the listener that owns it is (or was) running.
    Active,
    /// Cleanup ran and removed everything.
    Deleted,
    /// Cleanup could not finish; the next start of this profile retries it.
    CleanupFailed,
}

/// `destination.json`: the original's fields, minus the raw responses (they
/// can carry data that does not belong on disk), plus the cleanup status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationState {
    pub created_at: String,
    pub profile: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_id: Option<String>,
    pub destination_name: String,
    pub destination_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    pub skip_ssl_verification: bool,
    pub authorization_configured: bool,
    pub webhook_configured: bool,
    #[serde(default)]
    pub region: String,
    pub events_file: String,
    pub destination_state_file: String,
    /// Ours: pid of the listener that created the destination.
    #[serde(default)]
    pub pid: u32,
    /// Ours: `active`, `deleted` or `cleanup_failed`.
    #[serde(default = "default_status")]
    pub status: CleanupStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// Ours: the Dev Portals (`--portal`) whose webhooks this listener
    /// points at its destination, as found at start and how each is
    /// restored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub portals: Vec<PortalState>,
}

fn default_status() -> CleanupStatus {
    CleanupStatus::Active
}

/// How a portal's webhook is given back, decided from what startup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortalRelease {
    /// It had no destination: `DELETE` (destination cleared, disabled)
    /// is what it was.
    Delete,
    /// It pointed (disabled) at another destination: pointed back at that
    /// one, disabled.
    Restore,
}

/// One Dev Portal of a listener, in `destination.json`: its webhook as
/// startup found it, and how far startup got with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalState {
    pub portal_id: String,
    pub portal_name: String,
    /// The destination its (disabled) webhook pointed at before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_destination_id: Option<String>,
    pub release: PortalRelease,
    /// A PATCH pointing the webhook at this listener's destination was
    /// sent: it may point there.
    #[serde(default)]
    pub attach_sent: bool,
    /// That PATCH succeeded.
    #[serde(default)]
    pub webhook_configured: bool,
}

impl PortalState {
    /// A portal whose webhook startup found disabled, pointing at
    /// `previous` (or nowhere).
    pub fn found(portal_id: String, portal_name: String, previous: Option<String>) -> PortalState {
        PortalState {
            release: match previous {
                Some(_) => PortalRelease::Restore,
                None => PortalRelease::Delete,
            },
            portal_id,
            portal_name,
            previous_destination_id: previous,
            attach_sent: false,
            webhook_configured: false,
        }
    }

    /// `name (id)`, for messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.portal_name, self.portal_id)
    }
}

/// A Dev Portal a listener receives, as `listener.json` and `ps` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalRef {
    pub id: String,
    pub name: String,
}

/// `listener.json`: the original's fields plus counters refreshed while the
/// listener runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerState {
    pub started_at: String,
    pub profile: String,
    pub listen_address: String,
    pub listen_path: String,
    pub local_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    pub events_file: String,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub running: bool,
    #[serde(default)]
    pub records_received: u64,
    #[serde(default)]
    pub requests_received: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<String>,
    /// Ours: the store's segments, bytes and record time range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<crate::store::StoreSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    /// Ours: records by signature check outcome (absent under
    /// `--verify off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::verify::Counts>,
    /// Gap healing: the replay status and any window still missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<crate::replay::ReplayReport>,
    /// Ours: the Dev Portals (`--portal`) whose audit logs it receives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub portals: Vec<PortalRef>,
    /// Ours: the admin endpoint's address (`--admin-address`), if it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_address: Option<String>,
    /// Ours: requests by status, records and bytes received, records set
    /// aside by the signature check (`crate::listener::counters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest: Option<crate::listener::IngestCounts>,
}

/// Writes `value` as 2-space JSON, atomically, 0600, no trailing newline
/// (as the original).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    fsutil::write_atomic(path, &text)
}

/// Reads a state file; `Ok(None)` when it does not exist.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The per-profile single-writer lock: an exclusive `flock` on
/// `listener.lock`, which holds the owner's pid for messages. The kernel
/// drops the lock when the process dies, however it dies.
pub struct ProfileLock {
    _lock: Flock<File>,
    path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another kongctl listener{} is already running for this profile (lock {})", holder.map(|p| format!(" (pid {p})")).unwrap_or_default(), path.display())]
    Held { holder: Option<u32>, path: PathBuf },
    #[error("failed to lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ProfileLock {
    pub fn acquire(path: &Path) -> Result<ProfileLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode_0600()
            .open(path)
            .map_err(io)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                return Err(LockError::Held {
                    holder: read_holder(&mut file),
                    path: path.to_path_buf(),
                });
            }
            Err((_, errno)) => return Err(io(std::io::Error::from(errno))),
        };
        lock.set_len(0).map_err(io)?;
        lock.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(lock, "{}", std::process::id()).map_err(io)?;
        lock.sync_data().map_err(io)?;
        Ok(ProfileLock {
            _lock: lock,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether [`ProfileLock::acquire`] would succeed now, without creating
    /// or writing the lock file (`--dry-run`): a missing file is free.
    pub fn check_free(path: &Path) -> Result<(), LockError> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(LockError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(_unlocked_on_drop) => Ok(()),
            Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                Err(LockError::Held {
                    holder: read_holder(&mut file),
                    path: path.to_path_buf(),
                })
            }
            Err((_, errno)) => Err(LockError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::from(errno),
            }),
        }
    }
}

/// The pid the lock's holder wrote. A holder that has only just taken the
/// lock may not have written it yet: the file is then empty or still names
/// the previous holder, who is dead. Such a content is read again for a
/// short while (two listeners started at once hit this window).
fn read_holder(file: &mut File) -> Option<u32> {
    const TRIES: u32 = 40;
    let mut pid = None;
    for attempt in 0..TRIES {
        let mut text = String::new();
        pid = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text))
            .ok()
            .and_then(|_| text.trim().parse::<u32>().ok());
        if pid.is_some_and(is_alive) || attempt + 1 == TRIES {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    pid
}

/// Whether a process with this pid exists (ours or not).
fn is_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    raw > 0
        && !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None),
            Err(nix::errno::Errno::ESRCH)
        )
}

trait OpenOptionsPrivate {
    fn mode_0600(&mut self) -> &mut Self;
}

impl OpenOptionsPrivate for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("listener.lock");
        let first = ProfileLock::acquire(&p).unwrap();
        let err = ProfileLock::acquire(&p).err().unwrap();
        let me = std::process::id();
        match &err {
            LockError::Held { holder, .. } => assert_eq!(*holder, Some(me)),
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains(&format!("(pid {me})")), "{err}");
        drop(first);
        ProfileLock::acquire(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_holder_that_has_not_written_its_pid_yet_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("listener.lock");
        // The lock taken, the file still naming a dead earlier holder: what
        // a loser sees between the winner's flock and its pid write.
        std::fs::write(&p, "999999999").unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let mut held = Flock::lock(file, FlockArg::LockExclusiveNonblock).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            held.set_len(0).unwrap();
            write!(held, "{}", std::process::id()).unwrap();
            held
        });
        match ProfileLock::acquire(&p).err().unwrap() {
            LockError::Held { holder, .. } => assert_eq!(holder, Some(std::process::id())),
            other => panic!("{other}"),
        }
        drop(writer.join().unwrap());
    }

    #[test]
    fn state_files_round_trip_without_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("destination.json");
        let s = DestinationState {
            created_at: crate::time::now_rfc3339(),
            profile: "default".into(),
            destination_id: Some("d1".into()),
            destination_name: "n".into(),
            destination_endpoint: "https://h.test/a".into(),
            log_format: Some("json".into()),
            skip_ssl_verification: false,
            authorization_configured: true,
            webhook_configured: true,
            region: "us".into(),
            events_file: "/e".into(),
            destination_state_file: p.display().to_string(),
            pid: 7,
            status: CleanupStatus::CleanupFailed,
            cleanup_error: Some("x".into()),
            deleted_at: None,
            portals: vec![PortalState::found(
                "p1".into(),
                "dev".into(),
                Some("d0".into()),
            )],
        };
        write_json(&p, &s).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.ends_with('\n'));
        assert!(text.contains("\n  \"profile\": \"default\""), "{text}");
        assert!(text.contains("\"status\": \"cleanup_failed\""), "{text}");
        assert!(text.contains("\"release\": \"restore\""), "{text}");
        assert_eq!(read_json::<DestinationState>(&p).unwrap(), Some(s));
        assert_eq!(
            read_json::<DestinationState>(&dir.path().join("missing")).unwrap(),
            None
        );
    }
}
