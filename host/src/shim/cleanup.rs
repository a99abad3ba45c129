//! The `delete` action: containerd runs it when a shim died (or never
//! answered), in the bundle, and reads a `DeleteResponse` from stdout.
//! Whatever the task left goes: its processes (by cgroup), the cgroup,
//! the root filesystem mount, the socket.

#![forbid(unsafe_code)]

use std::path::Path;
use std::time::SystemTime;

use anyhow::Result;
use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::Message as _;

use super::args::Args;
use super::cgroup::Cgroup;
use super::events::timestamp;
use super::task::{Record, RECORD};
use super::{rootfs, socket};

/// Cleans up; returns the response's bytes.
pub fn delete(args: &Args) -> Result<Vec<u8>> {
    let bundle = match &args.bundle {
        Some(bundle) => bundle.clone(),
        None => std::env::current_dir()?,
    };
    let record: Option<Record> = std::fs::read(bundle.join(RECORD))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let mut pid = 0;
    if let Some(record) = &record {
        pid = record.pid;
        if let Ok(cgroup) = Cgroup::open(&record.cgroup, &args.id) {
            cgroup.remove();
        }
        let _ = std::fs::remove_file(bundle.join(RECORD));
    }
    rootfs::unmount(&bundle.join("rootfs"));
    let _ = std::fs::remove_file(socket::path(&args.address, &args.namespace, &args.id));
    remove_if_empty(&bundle.join("rootfs"));
    let mut response = DeleteResponse::new();
    response.pid = pid.max(0) as u32;
    response.exit_status = 128 + libc::SIGKILL as u32;
    response.exited_at = Some(timestamp(SystemTime::now())).into();
    Ok(response.write_to_bytes()?)
}

fn remove_if_empty(dir: &Path) {
    let _ = std::fs::remove_dir(dir);
}
