//! wasmhost's init: pid 1 of a container, in front of the image's command
//! (`init = true`, the default; Docker's `--init` runs tini the same way).
//!
//! A program that runs as pid 1 of a pid namespace gets no signal it has
//! no handler for (the kernel drops them), so most images ignore SIGTERM
//! and every stop waits for the grace period; and nothing reaps the
//! orphans its children leave. This init runs the command as its child,
//! forwards every signal it receives to it (SIGTERM, the image's
//! `StopSignal`, SIGHUP, …), reaps every process that ends, and exits as
//! the command did (its exit code, or 128 + the signal that ended it).
//! When it exits the kernel ends what is left in the namespace.
//!
//! Built on its own by `host/build.rs`, linked statically (it runs in any
//! image, whatever its libc) and embedded in wasmhost, which installs it
//! under `/run/wasmhost/exe/` and mounts it read-only into containers.
//! Only std and five libc calls, declared here.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitCode};

/// glibc's `sigset_t` on x86-64: 1024 bits.
#[repr(C)]
struct SigSet([u64; 16]);

/// glibc's `siginfo_t`: 128 bytes, the signal number first.
#[repr(C)]
struct SigInfo {
    signo: i32,
    rest: [i32; 31],
}

extern "C" {
    fn sigfillset(set: *mut SigSet) -> i32;
    fn sigprocmask(how: i32, set: *const SigSet, old: *mut SigSet) -> i32;
    fn sigwaitinfo(set: *const SigSet, info: *mut SigInfo) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn kill(pid: i32, signal: i32) -> i32;
}

const SIG_SETMASK: i32 = 2;
const WNOHANG: i32 = 1;
const SIGCHLD: i32 = 17;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        eprintln!("wasmhost-init: no command to run");
        return ExitCode::from(127);
    };
    // Every signal blocked, to be taken one at a time by `sigwaitinfo`:
    // no handler runs between a fork and its bookkeeping. The command gets
    // an empty mask again (below): a mask is inherited across exec, and
    // a program that blocks SIGTERM or SIGINT never sees them.
    let mut all = SigSet([0; 16]);
    // SAFETY: `all` is a valid, writable sigset_t of glibc's size;
    // blocking signals in this single-threaded process affects only it.
    unsafe {
        sigfillset(&mut all);
        sigprocmask(SIG_SETMASK, &all, std::ptr::null_mut());
    }
    let mut command = Command::new(program);
    command.args(rest);
    // SAFETY: runs in the forked child before exec; sigprocmask is
    // async-signal-safe and the empty set is a valid sigset_t.
    unsafe {
        command.pre_exec(|| {
            let empty = SigSet([0; 16]);
            if sigprocmask(SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("wasmhost-init: cannot run `{}`: {e}", program.to_string_lossy());
            // The shell's codes: not found, or found but not runnable.
            let code = if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
            return ExitCode::from(code);
        }
    };
    let command = child.id() as i32;
    loop {
        let mut info = SigInfo {
            signo: 0,
            rest: [0; 31],
        };
        // SAFETY: both pointers are to live values of glibc's layout.
        let signal = unsafe { sigwaitinfo(&all, &mut info) };
        if signal < 0 {
            continue; // EINTR
        }
        if signal != SIGCHLD {
            // SAFETY: a plain system call; the command may be gone already
            // (ESRCH), which is fine: its SIGCHLD is pending.
            unsafe { kill(command, signal) };
            continue;
        }
        // Reap everything that ended: the command, and orphans that were
        // handed to pid 1.
        loop {
            let mut status = 0;
            // SAFETY: `status` is a valid i32 to write to.
            let reaped = unsafe { waitpid(-1, &mut status, WNOHANG) };
            if reaped <= 0 {
                break;
            }
            if reaped == command {
                return ExitCode::from(exit_code(status));
            }
        }
    }
}

/// The command's end as a shell reports it: its exit code, or 128 plus
/// the number of the signal that ended it.
fn exit_code(status: i32) -> u8 {
    let signal = status & 0x7f;
    if signal == 0 {
        ((status >> 8) & 0xff) as u8
    } else {
        128u8.wrapping_add(signal as u8)
    }
}
