//! A log destination that never blocks the thread writing to it: a line
//! that cannot be written at once is dropped and counted.
//!
//! stderr and stdout are shared with whoever started wasmhost, so their
//! open file description must not be made non-blocking (a shell sharing
//! the terminal would see its own reads fail). Instead the sink opens the
//! same pipe, terminal or file again through `/proc/self/fd/N` — a new
//! description of its own — with `O_NONBLOCK`. A socket cannot be opened
//! that way (journald hands services sockets); the sink then sends each
//! line with `MSG_DONTWAIT`, which is non-blocking per call.
//!
//! A queue and a writer thread would also never block, but wake that
//! thread for every line: measured at ~4 % of the requests per second of
//! a component that logs a line per request, on two cores.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::socket::{send, MsgFlags};

/// Lines dropped by every sink because their reader fell behind.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Lines dropped so far, across stderr and stdout.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Where the lines go.
#[derive(Debug)]
enum Target {
    /// A description of our own, non-blocking (or, without `/proc`, a
    /// duplicate of the inherited one, which may block).
    File(File),
    /// A socket, written with `MSG_DONTWAIT`.
    Socket(OwnedFd),
}

/// One non-blocking destination (stderr or stdout).
#[derive(Debug)]
pub struct Sink {
    target: Target,
}

impl Sink {
    /// A sink for the inherited descriptor `fd`; says so on stderr when it
    /// could only be made blocking.
    pub fn for_fd(fd: impl AsFd) -> io::Result<Sink> {
        let fd = fd.as_fd();
        let reopened = OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let target = match reopened {
            Ok(file) => Target::File(file),
            // Sockets cannot be opened through /proc.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                Target::Socket(fd.try_clone_to_owned()?)
            }
            Err(e) => {
                eprintln!(
                    "warning: cannot open a non-blocking view of descriptor {} ({e}): \
                     log writes may block",
                    fd.as_raw_fd()
                );
                Target::File(File::from(fd.try_clone_to_owned()?))
            }
        };
        Ok(Sink { target })
    }

    /// Writes `line` whole, or as much of it as fits without waiting; the
    /// rest is dropped (and counted once).
    pub fn write_line(&self, mut line: &[u8]) {
        while !line.is_empty() {
            let written = match &self.target {
                Target::File(file) => (&*file).write(line),
                Target::Socket(fd) => send(
                    fd.as_raw_fd(),
                    line,
                    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
                )
                .map_err(io::Error::from),
            };
            match written {
                Ok(0) => break,
                Ok(n) => line = &line[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // Full (EAGAIN), or the reader is gone (EPIPE): the
                    // line is lost either way; the request goes on.
                    DROPPED.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

/// A `Write` handle on a shared sink, as `tracing_subscriber` asks for one
/// per event.
#[derive(Debug, Clone, Copy)]
pub struct SinkWriter<'a>(pub &'a Sink);

impl io::Write for SinkWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_line(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn a_full_pipe_drops_lines_instead_of_blocking() {
        let (mut reader, writer) = std::io::pipe().expect("a pipe");
        let sink = Sink::for_fd(&writer).expect("a sink on the pipe");
        let line = vec![b'x'; 1024];
        let before = dropped_lines();
        // Far more than a pipe holds (64 KiB): must return, not block.
        for _ in 0..200 {
            sink.write_line(&line);
        }
        assert!(dropped_lines() >= before + 100);
        // What was written is whole lines' bytes, in order.
        drop(writer);
        drop(sink);
        let mut got = Vec::new();
        reader.read_to_end(&mut got).expect("read the pipe");
        assert!(!got.is_empty() && got.iter().all(|&b| b == b'x'));
    }

    #[test]
    fn the_inherited_description_stays_blocking() {
        let (_reader, writer) = std::io::pipe().expect("a pipe");
        let _sink = Sink::for_fd(&writer).expect("a sink on the pipe");
        let flags = nix::fcntl::fcntl(writer.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)
            .expect("read the flags");
        assert_eq!(flags & libc::O_NONBLOCK, 0);
    }
}
