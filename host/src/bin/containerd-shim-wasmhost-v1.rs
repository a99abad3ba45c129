//! containerd's shim for wasmhost apps (runtime `io.containerd.wasmhost.v1`).
//!
//! containerd executes the shim for every task (`start`, then the daemon
//! it leaves behind, and `delete` after a shim died), so it holds only the
//! shim: the task API, cgroups and mounts. The app itself is served by a
//! `wasmhost serve` child, found beside this binary.

fn main() -> std::process::ExitCode {
    wasmhost::shim::main()
}
