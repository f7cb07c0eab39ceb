//! Following `events.jsonl`: hand each record to a sink once the store has
//! acknowledged it.
//!
//! The store appends records and fsyncs them before it answers Konnect; it
//! then publishes the file length it has made durable on a watch channel.
//! [`follow`] reads only up to that committed offset, so `tail` never prints
//! a record that a crash could still lose, and never sees half a record.
//! When the store rotates the file, the follower is told the closed file's
//! final length and given the next file (a [`Subscription`]): it finishes
//! the closed one through its open handle (whatever the file is renamed,
//! compressed or deleted to meanwhile) and goes on with the next. When the
//! store drops its sender (the listener is stopping), the records
//! committed up to then are still printed before [`follow`] returns.
//!
//! Memory is one fixed read buffer plus the longest record (a record that
//! spans reads is gathered until its newline; the listener bounds records by
//! `--max-body-bytes`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::store::Subscription;

/// Size of the read buffer.
const READ_BUFFER: usize = 64 * 1024;

/// Where records go.
pub trait RecordSink {
    /// Takes one record, without its newline.
    fn record(&mut self, record: &[u8]) -> io::Result<()>;

    /// Called when every committed record has been passed on and [`follow`]
    /// is about to wait: the moment to flush buffered output.
    fn caught_up(&mut self) -> io::Result<()>;
}

/// Why [`follow`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowEnd {
    /// The store dropped its sender and every record it committed was passed
    /// on.
    StoreClosed,
    /// The sink failed with `BrokenPipe`: whoever read stdout is gone
    /// (`kongctl tail | head`). The caller should stop the listener and
    /// clean up, as on Ctrl+C.
    OutputClosed,
}

/// How far [`follow`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Followed {
    /// The generation of the active file it ended in...
    pub generation: u64,
    /// ...and the offset just past the last record the sink accepted there.
    pub offset: u64,
    pub end: FollowEnd,
}

/// Passes every record committed after the subscription's start (a record
/// boundary) to `sink`, across rotations, waiting for more.
///
/// Empty lines are skipped. Errors reading the file, and sink errors other
/// than `BrokenPipe`, are returned as they are. Reads and sink calls block
/// the calling task (records come from the page cache; the sink writes to
/// stdout), so run this on a task of its own.
pub async fn follow(feed: Subscription, sink: &mut impl RecordSink) -> io::Result<Followed> {
    follow_with_buffer(feed, sink, READ_BUFFER).await
}

async fn follow_with_buffer(
    feed: Subscription,
    sink: &mut impl RecordSink,
    buffer: usize,
) -> io::Result<Followed> {
    let Subscription {
        file,
        generation,
        start,
        mut committed,
        mut rotations,
    } = feed;
    let mut reader = Reader {
        file,
        generation,
        buf: vec![0; buffer],
        partial: Vec::new(),
        read_to: start,
        passed_to: start,
    };
    loop {
        let target = *committed.borrow_and_update();
        let passed = reader
            .catch_up(target, &mut rotations, sink)
            .and_then(|()| sink.caught_up());
        if let Err(e) = passed {
            return reader.stopped(e);
        }
        if committed.changed().await.is_err() {
            // The store is gone; what it committed before going still counts.
            let target = *committed.borrow();
            let passed = reader
                .catch_up(target, &mut rotations, sink)
                .and_then(|()| sink.caught_up());
            if let Err(e) = passed {
                return reader.stopped(e);
            }
            return Ok(Followed {
                generation: reader.generation,
                offset: reader.passed_to,
                end: FollowEnd::StoreClosed,
            });
        }
    }
}

struct Reader {
    file: Arc<File>,
    generation: u64,
    buf: Vec<u8>,
    /// Start of a record whose newline has not been read yet.
    partial: Vec<u8>,
    /// Offset of the next byte to read.
    read_to: u64,
    /// Offset just past the last record passed to the sink.
    passed_to: u64,
}

impl Reader {
    /// Passes every record up to `target`: first the rest of each file
    /// closed since (the store announced each rotation before `target`
    /// moved past it), then the active file's.
    fn catch_up(
        &mut self,
        target: crate::store::Committed,
        rotations: &mut tokio::sync::mpsc::UnboundedReceiver<crate::store::Rotation>,
        sink: &mut impl RecordSink,
    ) -> io::Result<()> {
        while self.generation < target.generation {
            let rotation = rotations.try_recv().map_err(|_| {
                io::Error::other(format!(
                    "the store moved to file generation {} without announcing the rotation of {}",
                    target.generation, self.generation
                ))
            })?;
            if rotation.generation != self.generation {
                continue; // before this follower's start
            }
            self.pass_to(rotation.len, sink)?;
            self.file = rotation.next;
            self.generation += 1;
            self.partial.clear();
            self.read_to = 0;
            self.passed_to = 0;
        }
        self.pass_to(target.offset, sink)
    }

    /// Reads up to `target` and passes every complete record to `sink`.
    fn pass_to(&mut self, target: u64, sink: &mut impl RecordSink) -> io::Result<()> {
        while self.read_to < target {
            let want = usize::try_from(target - self.read_to)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            let n = match self.file.read_at(&mut self.buf[..want], self.read_to) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => result?,
            };
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "events file ends at byte {} but {target} bytes were committed",
                        self.read_to
                    ),
                ));
            }
            self.read_to += n as u64;
            let mut chunk = &self.buf[..n];
            while let Some(newline) = memchr::memchr(b'\n', chunk) {
                let (line, rest) = (&chunk[..newline], &chunk[newline + 1..]);
                let record = if self.partial.is_empty() {
                    line
                } else {
                    self.partial.extend_from_slice(line);
                    &self.partial
                };
                if !record.is_empty() {
                    sink.record(record)?;
                }
                self.passed_to += record.len() as u64 + 1;
                if self.partial.capacity() > self.buf.len() {
                    // Do not keep a long record's memory.
                    self.partial = Vec::new();
                } else {
                    self.partial.clear();
                }
                chunk = rest;
            }
            self.partial.extend_from_slice(chunk);
        }
        Ok(())
    }

    /// Turns a failure into the outcome [`follow`] reports.
    fn stopped(&self, e: io::Error) -> io::Result<Followed> {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Ok(Followed {
                generation: self.generation,
                offset: self.passed_to,
                end: FollowEnd::OutputClosed,
            })
        } else {
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Committed;
    use crate::store::Rotation;
    use std::io::Write;
    use std::time::Duration;
    use tokio::sync::{mpsc, watch};

    fn at(offset: u64) -> Committed {
        Committed {
            generation: 0,
            offset,
        }
    }

    /// A subscription to the file at `path` from `start`, with no rotation.
    fn feed(
        path: &std::path::Path,
        start: u64,
        committed: watch::Receiver<Committed>,
    ) -> Subscription {
        let (_, rotations) = mpsc::unbounded_channel();
        Subscription {
            file: Arc::new(File::open(path).unwrap()),
            generation: 0,
            start,
            committed,
            rotations,
        }
    }

    /// Collects records; fails with `fail` at record number `fail_at`.
    #[derive(Default)]
    struct Collect {
        records: Vec<String>,
        caught_up: usize,
        fail_at: Option<(usize, io::ErrorKind)>,
    }

    impl RecordSink for Collect {
        fn record(&mut self, record: &[u8]) -> io::Result<()> {
            if let Some((n, kind)) = self.fail_at
                && self.records.len() == n
            {
                return Err(kind.into());
            }
            self.records
                .push(String::from_utf8(record.to_vec()).unwrap());
            Ok(())
        }

        fn caught_up(&mut self) -> io::Result<()> {
            self.caught_up += 1;
            Ok(())
        }
    }

    struct Events {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        file: File,
    }

    impl Events {
        fn new() -> Events {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("events.jsonl");
            let file = File::create(&path).unwrap();
            Events {
                _dir: dir,
                path,
                file,
            }
        }

        /// Appends lines and returns the new length.
        fn append(&mut self, lines: &[&str]) -> u64 {
            for line in lines {
                writeln!(self.file, "{line}").unwrap();
            }
            self.file.metadata().unwrap().len()
        }
    }

    async fn wait_for(what: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !what() {
            assert!(tokio::time::Instant::now() < deadline, "timed out");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn prints_committed_records_only_and_drains_when_the_store_closes() {
        let mut events = Events::new();
        let committed = events.append(&["one", "two"]);
        let (tx, rx) = watch::channel(at(committed));
        // Appended but not fsynced yet: must not be printed.
        let mut total = events.append(&["three"]);
        let sink = std::sync::Arc::new(std::sync::Mutex::new(Collect::default()));

        struct Shared(std::sync::Arc<std::sync::Mutex<Collect>>);
        impl RecordSink for Shared {
            fn record(&mut self, r: &[u8]) -> io::Result<()> {
                self.0.lock().unwrap().record(r)
            }
            fn caught_up(&mut self) -> io::Result<()> {
                self.0.lock().unwrap().caught_up()
            }
        }

        let path = events.path.clone();
        let mut shared = Shared(sink.clone());
        let task = tokio::spawn(async move { follow(feed(&path, 0, rx), &mut shared).await });

        wait_for(|| sink.lock().unwrap().caught_up >= 1).await;
        assert_eq!(sink.lock().unwrap().records, ["one", "two"]);

        tx.send(at(total)).unwrap();
        wait_for(|| sink.lock().unwrap().records.len() == 3).await;

        // Committed and then the store stops: still printed.
        total = events.append(&["four", "five"]);
        tx.send(at(total)).unwrap();
        drop(tx);
        let followed = task.await.unwrap().unwrap();
        assert_eq!(
            followed,
            Followed {
                generation: 0,
                offset: total,
                end: FollowEnd::StoreClosed
            }
        );
        assert_eq!(
            sink.lock().unwrap().records,
            ["one", "two", "three", "four", "five"]
        );
    }

    #[tokio::test]
    async fn records_longer_than_the_buffer_and_a_start_offset() {
        let mut events = Events::new();
        let long = "x".repeat(50);
        let first = events.append(&["skip-me"]);
        let total = events.append(&[&long, "", "a", "bc", &long]);
        let (tx, rx) = watch::channel(at(total));
        drop(tx);
        let mut sink = Collect::default();
        // A 7-byte buffer splits records at every possible place.
        let followed = follow_with_buffer(feed(&events.path, first, rx), &mut sink, 7)
            .await
            .unwrap();
        assert_eq!(followed.offset, total);
        assert_eq!(sink.records, [&long[..], "a", "bc", &long[..]]);
    }

    #[tokio::test]
    async fn a_broken_pipe_stops_cleanly_at_the_unprinted_record() {
        let mut events = Events::new();
        let total = events.append(&["one", "two", "three"]);
        let (_tx, rx) = watch::channel(at(total));
        let mut sink = Collect {
            fail_at: Some((1, io::ErrorKind::BrokenPipe)),
            ..Collect::default()
        };
        let followed = follow(feed(&events.path, 0, rx), &mut sink).await.unwrap();
        assert_eq!(
            followed,
            Followed {
                generation: 0,
                offset: 4,
                end: FollowEnd::OutputClosed
            }
        );
        assert_eq!(sink.records, ["one"]);
    }

    #[tokio::test]
    async fn other_sink_errors_are_errors() {
        let mut events = Events::new();
        let total = events.append(&["one"]);
        let (_tx, rx) = watch::channel(at(total));
        let mut sink = Collect {
            fail_at: Some((0, io::ErrorKind::PermissionDenied)),
            ..Collect::default()
        };
        let err = follow(feed(&events.path, 0, rx), &mut sink)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }

    #[tokio::test]
    async fn a_committed_offset_past_the_end_of_the_file_is_an_error() {
        let mut events = Events::new();
        let total = events.append(&["one"]);
        let (_tx, rx) = watch::channel(at(total + 10));
        let err = follow(feed(&events.path, 0, rx), &mut Collect::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn rotations_are_followed_to_the_closed_files_end_then_into_the_next() {
        let mut first = Events::new();
        let mut second = Events::new();
        let mut third = Events::new();
        first.append(&["skip"]);
        let start = first.file.metadata().unwrap().len();
        let end1 = first.append(&["a", "b"]);
        // Written to the closed file but never committed: not printed.
        first.append(&["uncommitted"]);
        let end2 = second.append(&["c"]);
        third.append(&["d", "e"]);
        let (rot_tx, rotations) = mpsc::unbounded_channel();
        let (tx, committed) = watch::channel(at(start));
        let sub = Subscription {
            file: Arc::new(File::open(&first.path).unwrap()),
            generation: 0,
            start,
            committed,
            rotations,
        };
        // The store announces each rotation before moving the offset on;
        // a follower may see several at once.
        for (generation, len, next) in [(0, end1, &second), (1, end2, &third)] {
            rot_tx
                .send(Rotation {
                    generation,
                    len,
                    next: Arc::new(File::open(&next.path).unwrap()),
                })
                .unwrap();
        }
        tx.send(Committed {
            generation: 2,
            offset: 2,
        })
        .unwrap();
        drop(tx);
        let mut sink = Collect::default();
        let followed = follow_with_buffer(sub, &mut sink, 3).await.unwrap();
        assert_eq!(sink.records, ["a", "b", "c", "d"]);
        assert_eq!(
            followed,
            Followed {
                generation: 2,
                offset: 2,
                end: FollowEnd::StoreClosed
            }
        );
    }

    #[tokio::test]
    async fn a_generation_change_without_its_rotation_is_an_error() {
        let mut events = Events::new();
        events.append(&["a"]);
        let (_tx, rx) = watch::channel(Committed {
            generation: 1,
            offset: 0,
        });
        let err = follow(feed(&events.path, 0, rx), &mut Collect::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("without announcing"), "{err}");
    }
}
