//! The task's stdio: containerd's FIFOs (what `ctr run` and CRI's log
//! copier read), a `file://` log, or nothing. stdin is never read: an app
//! answers HTTP.

#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

use anyhow::{bail, Context as _, Result};

/// Opens `uri` for the task to write to.
pub fn open_output(uri: &str) -> Result<OwnedFd> {
    if uri.is_empty() {
        return Ok(File::options().write(true).open("/dev/null")?.into());
    }
    if let Some(path) = uri.strip_prefix("file://") {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)
            .with_context(|| format!("cannot open the log file `{path}`"))?;
        return Ok(file.into());
    }
    if uri.contains("://") {
        bail!("stdio `{uri}`: only FIFOs and `file://` are supported");
    }
    let path = Path::new(uri);
    let is_fifo = std::fs::metadata(path)
        .with_context(|| format!("cannot open `{uri}`"))?
        .file_type()
        .is_fifo();
    if !is_fifo {
        return Ok(OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open `{uri}`"))?
            .into());
    }
    // containerd opens its reading side before `Create`. Opening a FIFO
    // write-only would still block until a reader comes; read-write
    // never does. Holding that, reopen it write-only through /proc (now
    // instant: a reader exists), and let the read-write one go, so that
    // the task sees EPIPE, not a full pipe, once the reader has gone.
    let both = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open the FIFO `{uri}`"))?;
    let write_only = OpenOptions::new()
        .write(true)
        .open(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&both)
        ))
        .with_context(|| format!("cannot reopen the FIFO `{uri}`"))?;
    drop(both);
    Ok(write_only.into())
}

/// `/dev/null` for reading.
pub fn null_input() -> Result<OwnedFd> {
    Ok(File::open("/dev/null")?.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    #[test]
    fn a_fifo_opens_at_once_and_delivers() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // containerd opens its side (read, non-blocking) before Create.
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let mut out = File::from(open_output(fifo.to_str().unwrap()).unwrap());
        out.write_all(b"hello\n").unwrap();
        drop(out);
        let mut s = String::new();
        reader.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello\n");
        assert!(open_output("binary:///usr/bin/logger").is_err());
        let log = dir.path().join("log");
        let mut f = File::from(open_output(&format!("file://{}", log.display())).unwrap());
        f.write_all(b"x").unwrap();
        assert_eq!(std::fs::read(&log).unwrap(), b"x");
    }
}
