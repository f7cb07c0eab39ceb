//! Rotation: when the active file becomes a closed segment
//! (`--max-file-size`, `--rotate-every`), which name it takes, and the
//! renames that close it and put a new, empty `events.jsonl` in its place.
//!
//! The group commit ([`super::writer`]) calls this between two batches,
//! under its write lock, so that a batch is never split, and queues the
//! `Rotated` marker it gets behind the old file's batches: syncing them,
//! then the directory, and handing the segment to the maintenance thread
//! stays the writer's.
//!
//! Closing costs a request no sync: the next active file is created under
//! a hidden name ([`NEXT_ACTIVE_FILE`]), the active file renamed to its
//! segment name (the open handles follow it), then the new file renamed to
//! `events.jsonl`. Each step either happens whole or not at all, and a
//! failure undoes the steps before it; a crash between two of them leaves
//! every acknowledged record in exactly one file, which
//! [`super::recover`] sorts out. Readers see each step as
//! [`super::snapshot`] describes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::durable::pause_point;
use super::layout::{Form, NEXT_ACTIVE_FILE, SegmentName};

/// After a failed rotation, writes go on to the active file and the next
/// attempt waits this long (the log says why).
const ROTATE_RETRY: Duration = Duration::from_secs(10);

/// When the active file rotates: at a size, at an age of its first record,
/// both, or (neither) never.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RotatePolicy {
    pub max_file_size: Option<u64>,
    pub every: Option<Duration>,
}

/// The active file, as the writers see it.
pub(super) struct Active {
    pub file: Arc<File>,
    /// When its first record arrived (wall clock for the segment name,
    /// monotonic for its age); `None` while it holds none.
    pub first_received: Option<(Timestamp, Instant)>,
    /// The seq the next segment takes.
    pub next_seq: u64,
    /// The last segment's name: the next one sorts after it even if the
    /// clock went back.
    pub last_segment: Option<SegmentName>,
    /// No rotation attempt before this (one failed).
    pub retry_at: Option<Instant>,
}

/// A rotation done: the closed segment, and the file now active.
pub(super) struct Rotated {
    pub name: SegmentName,
    pub first_received_at: Timestamp,
    pub next: Arc<File>,
}

impl RotatePolicy {
    /// Whether the active file, `end` bytes long, should rotate now.
    #[inline]
    pub fn due(&self, active: &Active, end: u64) -> bool {
        end > 0
            && (self.full(end)
                || self.every.is_some_and(|every| {
                    active
                        .first_received
                        .is_some_and(|(_, since)| since.elapsed() >= every)
                }))
    }

    /// Whether `end` bytes reach the size limit.
    #[inline]
    pub fn full(&self, end: u64) -> bool {
        self.max_file_size.is_some_and(|max| end >= max)
    }
}

impl Active {
    /// Notes the arrival of a record (the first one dates the file).
    #[inline]
    pub fn received(&mut self) {
        if self.first_received.is_none() {
            self.first_received = Some((Timestamp::now(), Instant::now()));
        }
    }

    /// Closes the active file (`path`, in `dir`) as the next segment and
    /// starts a new one. `None` when an earlier failure asks to wait, or
    /// when this attempt failed (logged; the active file stays, and the
    /// next attempt waits [`ROTATE_RETRY`]).
    pub fn rotate(&mut self, dir: &Path, path: &Path) -> Option<Rotated> {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        let (first_received_at, _) = self
            .first_received
            .unwrap_or_else(|| (Timestamp::now(), Instant::now()));
        let mut name = SegmentName::new(first_received_at, self.next_seq);
        if let Some(last) = self.last_segment {
            name.first_received = name.first_received.max(last.first_received);
        }
        let next = match switch_files(dir, path, &name) {
            Ok(next) => Arc::new(next),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "rotation failed; writing on to the active file, next attempt in {}s", ROTATE_RETRY.as_secs());
                self.retry_at = Some(Instant::now() + ROTATE_RETRY);
                return None;
            }
        };
        self.file = next.clone();
        self.first_received = None;
        self.next_seq += 1;
        self.last_segment = Some(name);
        self.retry_at = None;
        Some(Rotated {
            name,
            first_received_at,
            next,
        })
    }
}

/// Renames the active file `path` to segment `name` and puts a new, empty
/// one in its place; returns the new one.
fn switch_files(dir: &Path, path: &Path, name: &SegmentName) -> io::Result<File> {
    let next_path = dir.join(NEXT_ACTIVE_FILE);
    let segment = name.path(dir, Form::Plain);
    match std::fs::remove_file(&next_path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let next = OpenOptions::new()
        .create_new(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(&next_path)?;
    pause_point("rotate-created", &next_path);
    if let Err(e) = std::fs::rename(path, &segment) {
        let _ = std::fs::remove_file(&next_path);
        return Err(e);
    }
    pause_point("rotate-renamed", &segment);
    if let Err(e) = std::fs::rename(&next_path, path) {
        if let Err(back) = std::fs::rename(&segment, path) {
            tracing::error!(segment = %segment.display(), error = %back, "could not rename the segment back to the active file; the next start indexes it as a segment");
        }
        let _ = std::fs::remove_file(&next_path);
        return Err(e);
    }
    pause_point("rotate-switched", path);
    Ok(next)
}
