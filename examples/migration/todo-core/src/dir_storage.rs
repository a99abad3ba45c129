//! [`Storage`] as a directory: one file per key, each write atomic, so that
//! a crash or a `docker kill` mid-write leaves the old value or the new one,
//! never half of one.
//!
//! Only `std::fs`, so both forms use it: the native binary on its
//! container's `/data`, the component on the same directory mounted by the
//! host (a WASI preopen). Several processes and instances may share one
//! directory: every write goes to a temporary file of its own and is renamed
//! into place, and [`Storage::create`] claims a key with a hard link, which
//! the file system lets exactly one writer win.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use std::hash::{BuildHasher, Hasher};

use crate::Storage;

/// Longest key accepted. File names are limited to 255 bytes on Linux file
/// systems, and a key's temporary file adds `.` and `.tmp`; 200 leaves room.
pub const MAX_KEY_LEN: usize = 200;

/// Where writes are prepared; starts with `.`, which no key may.
const TEMP_DIR: &str = ".tmp";

/// Name of the file written and removed at start-up to prove that the
/// directory is writable. It starts with `.`, which no key may, so it can
/// never be mistaken for one.
const PROBE_FILE: &str = ".write-probe";

/// Why a storage call failed; logged, never sent to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A key that is not safe as a file name; `todo-core` never makes one.
    #[error("key `{0}` cannot be a file name: use up to 200 ASCII letters, digits and `_-:.`, not starting with `.`")]
    BadKey(String),
    /// The data directory cannot be created, read or written.
    #[error("cannot use `{path}` as the data directory: {error}; set TODO_DATA_DIR to a writable directory")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        error: io::Error,
    },
    /// A file operation failed.
    #[error("cannot {action} `{path}`: {error}")]
    File {
        /// What was being done: `read`, `write`, ...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: io::Error,
    },
}

/// Keys are stored as files in one directory.
#[derive(Debug)]
pub struct DirStorage {
    dir: PathBuf,
}

impl DirStorage {
    /// The directory `dir`, unchecked: for a caller that opens it once per
    /// request (a Wasm instance) and lets the first file operation report a
    /// bad directory.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        DirStorage { dir: dir.into() }
    }

    /// Opens `dir`, creating it if missing, and checks that it is readable
    /// and writable, so that a bad volume fails at start-up rather than at
    /// the first `POST`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        let checked = fs::create_dir_all(&dir)
            .and_then(|()| fs::read_dir(&dir).map(drop))
            .and_then(|()| fs::write(dir.join(PROBE_FILE), b""))
            .and_then(|()| fs::remove_file(dir.join(PROBE_FILE)));
        match checked {
            Ok(()) => Ok(DirStorage { dir }),
            Err(error) => Err(StoreError::Dir { path: dir, error }),
        }
    }

    fn file(&self, key: &str) -> Result<PathBuf, StoreError> {
        if is_valid_key(key) {
            Ok(self.dir.join(key))
        } else {
            Err(StoreError::BadKey(key.to_owned()))
        }
    }

    /// One per write, so that concurrent writers (threads, processes, Wasm
    /// instances) never share one. The random part comes from std's
    /// randomly seeded hasher, which needs no dependency on either target.
    /// In a directory of their own, so that listing the keys never meets
    /// a temporary file that is renamed away while it is being read.
    fn temp_file(&self, key: &str) -> Result<PathBuf, StoreError> {
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let dir = self.dir.join(TEMP_DIR);
        fs::create_dir_all(&dir).map_err(|error| self.dir_error(error))?;
        Ok(dir.join(format!("{key}.{random:016x}")))
    }

    /// Makes a rename or link durable; the component's file system may not
    /// open directories as files, where the host's own writes stand in.
    fn sync_dir(&self) -> Result<(), StoreError> {
        match File::open(&self.dir).and_then(|dir| dir.sync_all()) {
            Ok(()) => Ok(()),
            Err(_) if cfg!(target_os = "wasi") => Ok(()),
            Err(error) => Err(self.dir_error(error)),
        }
    }

    fn dir_error(&self, error: io::Error) -> StoreError {
        StoreError::Dir {
            path: self.dir.clone(),
            error,
        }
    }
}

/// Keys map to file names unchanged, so they must not contain `/`, be `.`
/// or `..`, or start with `.` (reserved for temporary files).
fn is_valid_key(key: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_-:.".contains(&b);
    !key.is_empty() && key.len() <= MAX_KEY_LEN && !key.starts_with('.') && key.bytes().all(allowed)
}

fn file_error(action: &'static str, path: &Path, error: io::Error) -> StoreError {
    StoreError::File {
        action,
        path: path.to_owned(),
        error,
    }
}

/// Writes and syncs `bytes`, so that the rename that follows can never
/// expose a file whose contents are still only in the page cache.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

impl Storage for DirStorage {
    type Error = StoreError;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.file(key)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(file_error("read", &path, error)),
        }
    }

    /// Temporary file, sync, rename over the old file, sync the directory
    /// (which makes the rename itself survive a power cut).
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let path = self.file(key)?;
        let temp = self.temp_file(key)?;
        if let Err(e) = write_synced(&temp, value) {
            let _ = fs::remove_file(&temp);
            return Err(file_error("write", &temp, e));
        }
        if let Err(e) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(file_error("replace", &path, e));
        }
        self.sync_dir()
    }

    /// Written in full to a temporary file, then hard-linked to its name:
    /// the link fails if the name exists, so of two writers racing for one
    /// key exactly one wins, and a reader never sees a half-written file.
    fn create(&mut self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        let path = self.file(key)?;
        let temp = self.temp_file(key)?;
        if let Err(e) = write_synced(&temp, value) {
            let _ = fs::remove_file(&temp);
            return Err(file_error("write", &temp, e));
        }
        let linked = fs::hard_link(&temp, &path);
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => self.sync_dir().map(|()| true),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(file_error("create", &path, error)),
        }
    }

    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        let path = self.file(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(file_error("delete", &path, error)),
        }
    }

    /// Names that could not be keys (anything else someone put in the
    /// directory) are skipped. A key deleted while the directory is being
    /// read can fail the whole listing (WASI looks at every entry it
    /// returns); the listing is then read again, a few times at most.
    fn keys(&self) -> Result<Vec<String>, StoreError> {
        let mut attempts = 0;
        loop {
            match self.list() {
                Err(error)
                    if error.kind() == io::ErrorKind::NotFound && attempts < LIST_ATTEMPTS =>
                {
                    attempts += 1;
                }
                result => return result.map_err(|error| self.dir_error(error)),
            }
        }
    }
}

/// Readings of a directory that keeps changing under [`Storage::keys`].
const LIST_ATTEMPTS: u32 = 5;

impl DirStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut keys = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                if is_valid_key(&name) {
                    keys.push(name);
                }
            }
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests;
