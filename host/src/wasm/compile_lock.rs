//! One compile per compile-cache entry across processes: the workers of
//! `serve --workers N`, or separate `wasmhost serve`s sharing a cache
//! directory, would otherwise each compile a component missing from the
//! cache at the same moment, multiplying a multi-second Cranelift compile
//! by the number of processes and racing to write the same entry.
//!
//! How: whoever compiles the entry `<name>.cwasm` holds an exclusive
//! advisory lock (`flock`, through std's `File::lock`) on `<name>.cwasm.lock`
//! beside it while compiling and storing; the others block on that lock
//! and then find the entry stored. Why a lock on the entry rather than the
//! supervisor compiling before it starts its workers: the kernel releases
//! a `flock` when its holder dies, even by SIGKILL, so a waiter whose
//! compiling peer died gets the lock, finds no entry and compiles itself:
//! no timeout to choose, no wait forever; and it covers any processes
//! sharing a cache directory, not only one supervisor's workers, and the
//! background compile of tiered start-up as well as a compile before
//! serving. One lock per entry, not per directory: two components of an
//! app still compile at the same time.
//!
//! The holder removes the lock file (while still holding the lock) once
//! done, so the cache directory holds only entries. A waiter may therefore
//! wake holding a lock on a file no longer at that path; [`CompileLock::take`]
//! then locks the file now there, so two processes never both believe they
//! hold the entry's lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// The right to compile and store one cache entry; released on drop.
#[derive(Debug)]
pub struct CompileLock {
    /// Locked (`flock`, exclusive); closing it on drop unlocks.
    _file: File,
    path: PathBuf,
}

impl CompileLock {
    /// Waits until no other process (or thread) compiles `entry`, then
    /// holds its lock. Logs once when it has to wait, naming the entry.
    pub fn take(entry: &Path) -> io::Result<CompileLock> {
        let path = lock_path(entry);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut told = false;
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    if !told {
                        tracing::info!(
                            "another process is compiling `{}`; waiting for it",
                            entry.display()
                        );
                        told = true;
                    }
                    file.lock()?;
                }
                Err(TryLockError::Error(e)) => return Err(e),
            }
            if is_at(&file, &path)? {
                return Ok(CompileLock { _file: file, path });
            }
            // The holder we waited for removed the file: lock the one now
            // there (perhaps created by a third process meanwhile).
        }
    }
}

impl Drop for CompileLock {
    fn drop(&mut self) {
        // Removed while still locked (the file is closed after this), so
        // whoever waits on this file sees it gone and locks afresh.
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::debug!("cannot remove `{}`: {e}", self.path.display());
        }
    }
}

/// `<entry>.lock`: not ending in `.cwasm`, so never taken for an entry.
fn lock_path(entry: &Path) -> PathBuf {
    let mut name = entry.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Whether `file` is still the file at `path` (not removed or replaced).
fn is_at(file: &File, path: &Path) -> io::Result<bool> {
    let held = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(there) => Ok(held.dev() == there.dev() && held.ino() == there.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_second_taker_waits_until_the_first_lets_go_and_the_lock_file_goes_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("compiled").join("abc-def.cwasm");
        let first = CompileLock::take(&entry).unwrap();
        assert!(lock_path(&entry).exists());
        let (taken, waited) = mpsc::channel();
        let second = {
            let entry = entry.clone();
            std::thread::spawn(move || {
                let lock = CompileLock::take(&entry).unwrap();
                taken.send(()).unwrap();
                lock
            })
        };
        // Not a timing assertion: while `first` lives the thread cannot
        // have taken the lock, however long this waits.
        assert!(waited.recv_timeout(Duration::from_millis(200)).is_err());
        drop(first);
        waited.recv_timeout(Duration::from_secs(10)).unwrap();
        let second = second.join().unwrap();
        // The second holds the file now at the path, not the removed one.
        assert!(is_at(&second._file, &lock_path(&entry)).unwrap());
        drop(second);
        assert_eq!(
            std::fs::read_dir(entry.parent().unwrap()).unwrap().count(),
            0
        );
    }
}
