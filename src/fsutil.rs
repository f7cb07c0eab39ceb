//! Private files and directories: every directory kongctl creates is 0700 and
//! every file 0600, and state files are replaced atomically (temp file, fsync,
//! rename, fsync of the directory) so a crash leaves the old or the new
//! content, never a mix.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` and any missing parents with mode 0700.
///
/// An existing directory keeps its contents; if it is more open than 0700
/// its mode is tightened, because it holds audit events and state files.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let meta = fs::metadata(dir)?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Opens `path` for appending, creating it with mode 0600 if it is missing.
pub fn open_private_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(path)
}

/// Replaces `path` with `contents` atomically, with mode 0600.
///
/// The data is written to a temporary file of its own in the same directory,
/// fsynced and renamed over `path`; the directory is then fsynced so the
/// rename survives a crash. Each call has its own temporary file, so
/// concurrent calls for one path (a refresh and the final write of
/// `listener.json`) each replace the file whole and never write into or
/// rename away each other's temporary file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    // `.<name>.<random>`: hidden, and named after the file it replaces if a
    // crash leaves it behind. Dropped (and so removed) on any error.
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(file_name);
    prefix.push(".");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dir_is_0700_even_if_it_existed_open() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("a/b");
        fs::create_dir_all(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir_all(&d).unwrap();
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn atomic_write_replaces_content_with_0600_and_leaves_no_temp() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("state.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn concurrent_atomic_writes_to_one_path_all_succeed_and_leave_one_whole_content() {
        const THREADS: usize = 8;
        const WRITES: usize = 25;
        // Large enough that a write is not one syscall's worth of luck.
        fn content(t: usize, i: usize) -> Vec<u8> {
            let mut c = format!("{t}:{i}:").into_bytes();
            c.resize(64 * 1024, b'a' + (t * WRITES + i) as u8 % 26);
            c
        }
        fn is_whole(bytes: &[u8]) -> bool {
            let text = String::from_utf8_lossy(bytes);
            let mut parts = text.splitn(3, ':');
            match (parts.next(), parts.next()) {
                (Some(t), Some(i)) => match (t.parse(), i.parse()) {
                    (Ok(t), Ok(i)) => content(t, i) == bytes,
                    _ => false,
                },
                _ => false,
            }
        }
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("listener.json");
        write_atomic(&p, &content(0, 0)).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    let bytes = fs::read(&p).expect("the file always exists");
                    assert!(is_whole(&bytes), "read a mix of writes");
                    reads += 1;
                }
                reads
            });
            let writers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let p = &p;
                    s.spawn(move || {
                        for i in 0..WRITES {
                            write_atomic(p, &content(t, i))
                                .unwrap_or_else(|e| panic!("write {t}:{i} failed: {e}"));
                        }
                    })
                })
                .collect();
            // Every writer is joined before the reader is told to stop,
            // and before any assertion, so a failure cannot hang the test.
            let failed = writers.into_iter().filter_map(|w| w.join().err()).count();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            let reads = reader.join();
            assert_eq!(failed, 0, "writers failed");
            assert!(reads.expect("every read was whole") > 0);
        });
        assert!(is_whole(&fs::read(&p).unwrap()));
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("listener.json")]);
    }
}
