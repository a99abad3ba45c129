//! Building a container image from one static binary, without Docker: a
//! single tar+gzip layer (the binary, `/etc/passwd`, `/etc/group`, `/tmp`)
//! and an OCI config, reproducible byte for byte (fixed timestamps and
//! owners), written as an OCI image layout.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use super::layout;
use super::media::{self, Descriptor};
use super::store::digest_of;

/// What goes into the image besides the binary.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The static binary, placed at `/usr/local/bin/<its name>` and run as
    /// the entrypoint.
    pub binary: PathBuf,
    /// Arguments after the binary (`Cmd`).
    pub args: Vec<String>,
    /// `ExposedPorts`.
    pub ports: Vec<u16>,
    /// `Env`, after a default `PATH`.
    pub environment: Vec<(String, String)>,
    /// `User`, when not root.
    pub user: Option<String>,
}

/// What was built.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    /// `oci:<dir>:<tag>`, usable wherever an image is.
    pub reference: String,
    /// The manifest's digest.
    pub digest: String,
    /// Bytes of config + layer (what a registry stores).
    pub size: u64,
}

/// Timestamps in the image: `SOURCE_DATE_EPOCH` when set (the
/// reproducible-builds convention), else the epoch, so that the same
/// binary always gives the same digest.
fn timestamp() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// An image of files (an app for the containerd shim): one layer.
#[derive(Debug, Clone)]
pub struct FilesSpec {
    /// (path without the leading `/`, bytes); directories are implied.
    pub files: Vec<(String, Vec<u8>)>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Env`.
    pub environment: Vec<(String, String)>,
    /// `ExposedPorts`.
    pub ports: Vec<u16>,
}

/// Builds an image of `spec`'s files (read-only, owned by root) and writes
/// it into the layout `dir` under `tag`.
pub fn build_files(spec: &FilesSpec, dir: &Path, tag: &str) -> Result<Built> {
    let mut entries: Vec<(String, u32, Option<&[u8]>)> = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for (path, _) in &spec.files {
        let mut parent = Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.display().to_string());
            parent = p.parent();
        }
    }
    for dir in &dirs {
        entries.push((dir.clone(), 0o755, None));
    }
    for (path, bytes) in &spec.files {
        entries.push((path.clone(), 0o644, Some(bytes)));
    }
    let tar = tar_of(&entries)?;
    let env: Vec<String> = spec
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    write_image(dir, tag, &tar, |diff_id| {
        let created = created();
        serde_json::json!({
            "created": created,
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Entrypoint": spec.entrypoint,
                "Env": env,
                "WorkingDir": "/",
                "ExposedPorts": exposed_ports(&spec.ports),
            },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created": created, "created_by": "wasmhost image app" }],
        })
    })
}

/// Writes a one-layer image into the layout `dir` under `tag`: `tar`
/// gzipped as its layer, the config `config_of(diff_id)` makes.
fn write_image(
    dir: &Path,
    tag: &str,
    tar: &[u8],
    config_of: impl FnOnce(&str) -> serde_json::Value,
) -> Result<Built> {
    let diff_id = digest_of(tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(tar)?;
    let layer = gz.finish()?;
    let config = serde_json::to_vec(&config_of(&diff_id))?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": Descriptor::of(&config, media::OCI_IMAGE_CONFIG),
        "layers": [Descriptor::of(&layer, "application/vnd.oci.image.layer.v1.tar+gzip")],
    }))?;
    let descriptor = layout::write(dir, tag, &manifest, &[&config, &layer])?;
    Ok(Built {
        reference: format!("oci:{}:{tag}", dir.display()),
        digest: descriptor.digest,
        size: (config.len() + layer.len()) as u64,
    })
}

/// The images' `created` time, from [`timestamp`].
fn created() -> String {
    chrono::DateTime::from_timestamp(timestamp() as i64, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `ExposedPorts` of `ports`: `{"8080/tcp": {}}`.
fn exposed_ports(ports: &[u16]) -> serde_json::Map<String, serde_json::Value> {
    ports
        .iter()
        .map(|p| (format!("{p}/tcp"), serde_json::json!({})))
        .collect()
}

/// A tar of `entries` (path, mode, contents or `None` for a directory),
/// reproducible: root-owned, fixed timestamps.
fn tar_of(entries: &[(String, u32, Option<&[u8]>)]) -> Result<Vec<u8>> {
    let mtime = timestamp();
    let mut builder = tar::Builder::new(Vec::new());
    for (path, mode, bytes) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        header.set_mode(*mode);
        match bytes {
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, path, std::io::empty())?;
            }
            Some(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, path, *bytes)?;
            }
        }
    }
    Ok(builder.into_inner()?)
}

/// Writes the image `tag` of the layout `dir` as an OCI archive (a tar of
/// a layout holding that image only), named `name` (a full reference:
/// `ctr images import` and `docker load` take it from the index's
/// annotations).
pub fn write_archive(dir: &Path, tag: &str, name: &str, out: &Path) -> Result<()> {
    let entry = layout::entry(dir, Some(tag))?;
    let blob = |digest: &str| -> Result<Vec<u8>> {
        let hex = super::store::sha256_hex(digest)?;
        std::fs::read(dir.join("blobs/sha256").join(hex))
            .with_context(|| format!("blob {digest} is missing from `{}`", dir.display()))
    };
    let manifest_bytes = blob(&entry.digest)?;
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes)?;
    let mut digests = vec![entry.digest.clone()];
    if let Some(d) = manifest["config"]["digest"].as_str() {
        digests.push(d.to_owned());
    }
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        if let Some(d) = layer["digest"].as_str() {
            digests.push(d.to_owned());
        }
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [{
            "mediaType": entry.media_type,
            "digest": entry.digest,
            "size": entry.size,
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": name,
            },
        }],
    });
    let index = serde_json::to_vec_pretty(&index)?;
    let layout_file: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let blobs = digests
        .iter()
        .map(|d| {
            Ok((
                format!("blobs/sha256/{}", super::store::sha256_hex(d)?),
                blob(d)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut entries: Vec<(String, u32, Option<&[u8]>)> = vec![
        ("oci-layout".into(), 0o644, Some(layout_file)),
        ("index.json".into(), 0o644, Some(&index)),
        ("blobs".into(), 0o755, None),
        ("blobs/sha256".into(), 0o755, None),
    ];
    for (path, bytes) in &blobs {
        entries.push((path.clone(), 0o644, Some(bytes)));
    }
    let tar = tar_of(&entries)?;
    std::fs::write(out, tar).with_context(|| format!("cannot write `{}`", out.display()))
}

/// Builds the image and writes it into the layout `dir` under `tag`.
pub fn build(spec: &ImageSpec, dir: &Path, tag: &str) -> Result<Built> {
    let binary = std::fs::read(&spec.binary)
        .with_context(|| format!("cannot read `{}`", spec.binary.display()))?;
    check_static(&binary).with_context(|| format!("`{}`", spec.binary.display()))?;
    let name = spec
        .binary
        .file_name()
        .and_then(|n| n.to_str())
        .context("the binary's file name is not UTF-8")?;
    let entrypoint = format!("/usr/local/bin/{name}");
    let tar = layer_tar(&binary, &entrypoint)?;
    write_image(dir, tag, &tar, |diff_id| {
        config_json(spec, &entrypoint, diff_id)
    })
}

fn config_json(spec: &ImageSpec, entrypoint: &str, diff_id: &str) -> serde_json::Value {
    let mut env = vec!["PATH=/usr/local/bin:/usr/bin:/bin".to_owned()];
    env.extend(spec.environment.iter().map(|(k, v)| format!("{k}={v}")));
    let created = created();
    let mut config = serde_json::json!({
        "Entrypoint": [entrypoint],
        "Env": env,
        "WorkingDir": "/",
        "ExposedPorts": exposed_ports(&spec.ports),
    });
    if !spec.args.is_empty() {
        config["Cmd"] = serde_json::json!(spec.args);
    }
    if let Some(user) = &spec.user {
        config["User"] = serde_json::json!(user);
    }
    serde_json::json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": created, "created_by": format!("wasmhost image build {entrypoint}") }],
    })
}

/// The one layer: directories, the two account files the runtime reads a
/// `User` name from, and the binary.
fn layer_tar(binary: &[u8], entrypoint: &str) -> Result<Vec<u8>> {
    let mtime = timestamp();
    let mut builder = tar::Builder::new(Vec::new());
    let mut append = |path: &str, mode: u32, bytes: Option<&[u8]>| -> Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        header.set_mode(mode);
        match bytes {
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, path, std::io::empty())?;
            }
            Some(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, path, bytes)?;
            }
        }
        Ok(())
    };
    for dir in ["etc", "tmp", "usr", "usr/local", "usr/local/bin"] {
        append(dir, if dir == "tmp" { 0o1777 } else { 0o755 }, None)?;
    }
    append(
        "etc/passwd",
        0o644,
        Some(b"root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n"),
    )?;
    append("etc/group", 0o644, Some(b"root:x:0:\nnobody:x:65534:\n"))?;
    append(entrypoint.trim_start_matches('/'), 0o755, Some(binary))?;
    Ok(builder.into_inner()?)
}

/// An image of one binary has no dynamic loader or libc: refuse a binary
/// that needs them, naming what it asks for, instead of building an image
/// that fails at start with "no such file or directory".
fn check_static(elf: &[u8]) -> Result<()> {
    if elf.get(..4) != Some(b"\x7fELF") {
        bail!("not an ELF executable");
    }
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        bail!("not a 64-bit little-endian ELF executable");
    }
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if u16_at(0x12) != Some(62) {
        bail!("not an x86-64 executable (images are built for linux/amd64)");
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        bail!("truncated ELF header");
    };
    let truncated = || anyhow::anyhow!("truncated ELF program headers");
    for i in 0..usize::from(phnum) {
        let at = usize::try_from(phoff)?
            .checked_add(i * usize::from(phentsize))
            .ok_or_else(truncated)?;
        let kind = elf
            .get(at..at.checked_add(4).ok_or_else(truncated)?)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        const PT_INTERP: u32 = 3;
        if kind == Some(PT_INTERP) {
            let offset = usize::try_from(u64_at(at + 8).unwrap_or(0))?;
            let size = usize::try_from(u64_at(at + 32).unwrap_or(0))?;
            let interpreter = offset
                .checked_add(size)
                .and_then(|end| elf.get(offset..end))
                .map(|b| String::from_utf8_lossy(b).trim_end_matches('\0').to_owned())
                .unwrap_or_default();
            bail!(
                "dynamically linked (it needs `{interpreter}`), but the image holds only the \
                 binary: build it static (`RUSTFLAGS=\"-C target-feature=+crt-static\"` with an \
                 explicit `--target`, or a musl target)"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_binaries_are_refused_by_name() {
        // The test binary itself is dynamically linked.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let err = check_static(&me).unwrap_err().to_string();
        assert!(err.contains("dynamically linked"), "{err}");
        assert!(err.contains("ld-linux"), "{err}");
        assert!(check_static(b"#!/bin/sh\n").is_err());
    }

    /// The smallest ELF header `check_static` accepts: x86-64, no program
    /// headers (so no interpreter).
    fn static_elf() -> Vec<u8> {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // 64-bit
        elf[5] = 1; // little-endian
        elf[0x12] = 62; // x86-64
        elf[0x36] = 56; // program header size
        elf
    }

    #[test]
    fn the_same_binary_builds_the_same_image() {
        let work = tempfile::tempdir().unwrap();
        let bin = work.path().join("tool");
        std::fs::write(&bin, static_elf()).unwrap();
        let spec = ImageSpec {
            binary: bin,
            args: vec!["--serve".into()],
            ports: vec![8080],
            environment: vec![("MODE".into(), "x".into())],
            user: Some("nobody".into()),
        };
        let a = build(&spec, &work.path().join("a"), "v1").unwrap();
        let b = build(&spec, &work.path().join("b"), "v1").unwrap();
        assert_eq!(a.digest, b.digest);
        // Another tag in the same layout keeps the first.
        build(&spec, &work.path().join("a"), "v2").unwrap();
        let store = crate::oci::store::ContentStore::at(work.path().join("store"));
        let pulled =
            crate::oci::pull::import_layout(&work.path().join("a"), Some("v1"), &store).unwrap();
        assert_eq!(pulled.digest, a.digest);
        assert_eq!(pulled.kind, crate::oci::media::Kind::Image);
        let config: serde_json::Value =
            serde_json::from_slice(&store.read(&pulled.config.digest).unwrap()).unwrap();
        assert_eq!(config["config"]["Entrypoint"][0], "/usr/local/bin/tool");
        assert_eq!(config["config"]["Cmd"][0], "--serve");
        assert_eq!(config["config"]["User"], "nobody");
        assert_eq!(
            config["config"]["ExposedPorts"]["8080/tcp"],
            serde_json::json!({})
        );
        assert!(
            crate::oci::pull::import_layout(&work.path().join("a"), Some("v2"), &store).is_ok()
        );
    }

    #[test]
    fn a_layout_blob_that_lies_about_its_size_is_refused() {
        let work = tempfile::tempdir().unwrap();
        let bin = work.path().join("tool");
        std::fs::write(&bin, static_elf()).unwrap();
        let spec = ImageSpec {
            binary: bin,
            args: vec![],
            ports: vec![],
            environment: vec![],
            user: None,
        };
        let dir = work.path().join("img");
        let built = build(&spec, &dir, "latest").unwrap();
        let hex = built.digest.trim_start_matches("sha256:");
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap())
                .unwrap();
        let layer = manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        // Same digest name, other content: appended bytes.
        let path = dir.join("blobs/sha256").join(layer);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"more");
        std::fs::write(&path, bytes).unwrap();
        let store = crate::oci::store::ContentStore::at(work.path().join("store"));
        let err = crate::oci::pull::import_layout(&dir, None, &store).unwrap_err();
        assert!(
            format!("{err:#}").contains("its descriptor says"),
            "{err:#}"
        );
    }
}
