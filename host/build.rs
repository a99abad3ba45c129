//! Builds wasmhost's container init (`init/main.rs`) as a static binary of
//! its own, which the library embeds (`container::init`): it runs inside
//! images whatever libc they carry, or none. A separate rustc call, since
//! Cargo cannot link one binary of a package statically and the others
//! not.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "init/main.rs";
    println!("cargo:rerun-if-changed={source}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let binary = out.join("wasmhost-init");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition=2021",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
            "-C",
            "codegen-units=1",
            "--crate-name",
            "wasmhost_init",
            "-o",
        ])
        .arg(&binary)
        .arg(source)
        .status()
        .expect("cannot run rustc for the container init");
    assert!(status.success(), "building the container init ({source}) failed");
}
