//! Container images for tests, built here from Debian's busybox-static
//! with umoci and pushed to a test registry with skopeo: no Docker, no
//! network.

use std::path::Path;
use std::process::Command;

use super::registry::TestRegistry;

/// Runs a shell script, panicking with its stderr on failure.
pub fn sh(script: &str) {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}\nfailed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A busybox httpd image serving `/www` on port 8080, with CGI scripts
/// under `/www/cgi-bin` that report on the container from inside (its
/// processes, network, user, namespaces, mounts, init, descriptors,
/// cgroup limits, capabilities and seccomp filter, how many processes it
/// may fork) or try to break it (`crash` kills pid 1, `hog` eats memory,
/// `sicken` makes `/tmp/sick`, which fails `health`); pushed as
/// `<registry>/<repository>`, with `config`'s fields (`Healthcheck`,
/// `User`, ...) set in its config. Returns the reference.
pub fn busybox_httpd(
    registry: &TestRegistry,
    repository: &str,
    work: &Path,
    config: &[(&str, serde_json::Value)],
) -> String {
    let layout = work.join("layout");
    let bundle = work.join("bundle");
    let reference = registry.reference(repository);
    sh(&format!(
        r#"
umoci init --layout {l}
umoci new --image {l}:httpd
umoci unpack --image {l}:httpd {b}
r={b}/rootfs
mkdir -p $r/bin $r/www/cgi-bin $r/etc $r/tmp
chmod 1777 $r/tmp
cp "$(command -v busybox)" $r/bin/busybox
for tool in sh cat ps ls kill hostname id tr tail sed grep; do ln -s busybox $r/bin/$tool; done
echo 'root:x:0:0:root:/root:/bin/sh' > $r/etc/passwd
echo 'www:x:33:33:www:/www:/bin/sh' >> $r/etc/passwd
echo 'root:x:0:' > $r/etc/group
echo 'www:x:33:' >> $r/etc/group
echo 'hello from busybox' > $r/www/index.html
mkdir -p $r/www/legacy && echo 'legacy page' > $r/www/legacy/index.html
cgi() {{ printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\n%s\n' "$2" > $r/www/cgi-bin/$1; chmod 755 $r/www/cgi-bin/$1; }}
cgi ps 'ps -o pid,comm'
cgi net 'cat /proc/net/dev'
cgi whoami 'id; hostname'
cgi mounts 'cat /proc/self/mounts'
cgi crash 'kill -9 1'
cgi env 'echo "GREETING=$GREETING"'
cgi limits 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>&1'
cgi init 'cat /proc/1/cmdline | tr "\\0" " "'
cgi fds 'ls -l /proc/1/fd | tail -n +2 | sed "s/.*-> //"'
cgi uidmap 'cat /proc/self/uid_map'
cgi ns 'for n in net user mnt pid; do /bin/busybox readlink /proc/self/ns/$n; done'
cgi status 'grep -E "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):" /proc/self/status'
cgi seccomp '/bin/busybox unshare -U /bin/busybox true 2>&1; echo "exit=$?"'
cgi forks 'i=0; while [ $i -lt 64 ]; do /bin/busybox sleep 2 & i=$((i+1)); echo "started=$i"; done'
printf '#!/bin/sh\n/bin/busybox sleep 600\n' > $r/www/cgi-bin/stall; chmod 755 $r/www/cgi-bin/stall
cgi sicken 'touch /tmp/sick; echo sick'
cgi checked 'cat /tmp/checked 2>&1'
printf '#!/bin/sh\nif [ -e /tmp/sick ]; then printf "HTTP/1.0 500 Sick\\r\\n\\r\\nsick\\n"; else printf "Content-Type: text/plain\\n\\nok\\n"; fi\n' > $r/www/cgi-bin/health; chmod 755 $r/www/cgi-bin/health
cgi stall-body '/bin/busybox sleep 600'
cgi traceparent 'echo "traceparent=$HTTP_TRACEPARENT"'
cgi hog '/bin/busybox head -c 200000000 /dev/zero | /bin/busybox sort > /dev/null; echo "exit=$?"; cat /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events 2>/dev/null'
umoci repack --image {l}:httpd {b}
umoci config --image {l}:httpd --os linux --architecture amd64 \
  --config.entrypoint /bin/busybox \
  --config.cmd httpd --config.cmd -f --config.cmd -p --config.cmd 8080 --config.cmd -h --config.cmd /www \
  --config.exposedports 8080/tcp --config.user www
"#,
        l = layout.display(),
        b = bundle.display(),
    ));
    for (field, value) in config {
        set_config(&layout, "httpd", field, value);
    }
    sh(&format!(
        "skopeo copy --quiet --dest-tls-verify=false oci:{}:httpd docker://{reference}",
        layout.display()
    ));
    reference
}

/// Sets `config.<field>` of image `tag` in the OCI layout at `layout` (a
/// new config blob, a new manifest naming it, the index pointing there):
/// for what umoci cannot write, such as a `Healthcheck`.
pub fn set_config(layout: &Path, tag: &str, field: &str, value: &serde_json::Value) {
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let read = |digest: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(blob(digest)).unwrap()).unwrap()
    };
    let write = |json: &serde_json::Value| -> (String, usize) {
        let bytes = serde_json::to_vec(json).unwrap();
        let digest = sha256(&bytes);
        std::fs::write(blob(&digest), &bytes).unwrap();
        (digest, bytes.len())
    };
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no `{tag}` in {}", index_path.display()));
    let mut manifest = read(entry["digest"].as_str().unwrap());
    let mut config = read(manifest["config"]["digest"].as_str().unwrap());
    config["config"][field] = value.clone();
    let (digest, size) = write(&config);
    manifest["config"]["digest"] = digest.into();
    manifest["config"]["size"] = size.into();
    let (digest, size) = write(&manifest);
    entry["digest"] = digest.into();
    entry["size"] = size.into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// One layer's entries, built into a tar by [`tar_layer`].
/// The busybox httpd image in a registry of its own, with a cache
/// directory for the `wasmhost run`s of one test.
pub struct BusyboxFixture {
    _registry: TestRegistry,
    _work: tempfile::TempDir,
    pub cache: tempfile::TempDir,
    pub reference: String,
}

impl BusyboxFixture {
    /// Builds and pushes the image as `repository` in a fresh registry.
    pub fn new(repository: &str) -> BusyboxFixture {
        Self::with_config(repository, &[])
    }

    /// As [`BusyboxFixture::new`], the image with `healthcheck` (Docker's
    /// JSON) as its HEALTHCHECK.
    pub fn with_healthcheck(repository: &str, healthcheck: serde_json::Value) -> BusyboxFixture {
        Self::with_config(repository, &[("Healthcheck", healthcheck)])
    }

    /// As [`BusyboxFixture::new`], with `config`'s fields set in the
    /// image's config (Docker's JSON).
    pub fn with_config(repository: &str, config: &[(&str, serde_json::Value)]) -> BusyboxFixture {
        let registry = TestRegistry::start();
        let work = tempfile::tempdir().unwrap();
        let reference = busybox_httpd(&registry, repository, work.path(), config);
        BusyboxFixture {
            _registry: registry,
            _work: work,
            cache: tempfile::tempdir().unwrap(),
            reference,
        }
    }

    /// `wasmhost run IMAGE --listen 127.0.0.1:0 --cache-dir … <extra>`,
    /// with a 1 s stop grace unless `extra` sets one.
    pub fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "run",
            self.reference.as_str(),
            "--listen",
            "127.0.0.1:0",
            "--cache-dir",
            self.cache.path().to_str().unwrap(),
        ];
        if !extra.contains(&"--stop-grace") {
            args.extend(["--stop-grace", "1s"]);
        }
        args.extend_from_slice(extra);
        args
    }

    /// Starts `wasmhost run` on the image.
    pub fn run(&self, extra: &[&str]) -> super::Server {
        super::Server::start(&self.args(extra))
    }
}

pub enum Entry<'a> {
    /// A regular file with its bytes and mode.
    File(&'a str, &'a [u8], u32),
    /// A directory.
    Dir(&'a str),
    /// A symlink and its target.
    Symlink(&'a str, &'a str),
    /// Any path, written into the header as is (for hostile names).
    RawFile(&'a str, &'a [u8]),
}

/// A tar layer of `entries`.
pub fn tar_layer(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        match entry {
            Entry::File(path, bytes, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                header.set_mode(*mode);
                builder.append_data(&mut header, path, *bytes).unwrap();
            }
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                header.set_mode(0o755);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .unwrap();
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                header.set_mode(0o777);
                builder.append_link(&mut header, path, target).unwrap();
            }
            Entry::RawFile(path, bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                header.set_mode(0o644);
                let name = &mut header.as_old_mut().name;
                name[..path.len()].copy_from_slice(path.as_bytes());
                header.set_cksum();
                builder.append(&header, *bytes).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Pushes an image of `layers` (plain tars, pushed gzip-compressed) with
/// `entrypoint` and one exposed port through the registry API; returns its
/// reference.
pub async fn push_image(
    registry: &TestRegistry,
    repository: &str,
    tag: &str,
    layers: &[Vec<u8>],
    entrypoint: &[&str],
    port: u16,
) -> String {
    use std::io::Write as _;
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(layer).unwrap();
        let gz = gz.finish().unwrap();
        let digest = registry.push_blob(repository, &gz).await;
        diff_ids.push(sha256(layer));
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest, "size": gz.len(),
        }));
    }
    let config = serde_json::json!({
        "os": "linux", "architecture": "amd64",
        "config": { "Entrypoint": entrypoint, "ExposedPorts": { format!("{port}/tcp"): {} } },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    })
    .to_string();
    let config_digest = registry.push_blob(repository, config.as_bytes()).await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest, "size": config.len() },
        "layers": descriptors,
    })
    .to_string();
    let (status, body) = registry
        .put_manifest(
            repository,
            tag,
            "application/vnd.oci.image.manifest.v1+json",
            manifest.as_bytes(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    registry.reference(&format!("{repository}:{tag}"))
}

/// The Debian bookworm image `scripts/build-images.sh` builds with
/// mmdebstrap (a root filesystem layer with `/dev` nodes and python3, and
/// a layer with the service and whiteouts), pushed to a registry of its
/// own as `debian:nobody` (the image's user `nobody`), `debian:root` and
/// `debian:nginx` (Debian's nginx-light as root, port 80, StopSignal SIGQUIT).
pub struct DebianFixture {
    _registry: TestRegistry,
    pub cache: tempfile::TempDir,
    pub nobody: String,
    pub root: String,
    pub nginx: String,
}

impl DebianFixture {
    pub fn new() -> DebianFixture {
        static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
        BUILT.get_or_init(|| {
            let status = Command::new("bash")
                .arg(super::repo_root().join("scripts/build-images.sh"))
                .stdout(std::process::Stdio::null())
                .status()
                .expect("run scripts/build-images.sh");
            assert!(status.success(), "building the Debian image failed");
        });
        let layout = super::repo_root().join("target/fixtures/images/debian");
        let registry = TestRegistry::start();
        let push = |tag: &str, as_tag: &str| {
            let reference = registry.reference(&format!("debian:{as_tag}"));
            sh(&format!(
                "skopeo copy --quiet --dest-tls-verify=false oci:{}:{tag} docker://{reference}",
                layout.display()
            ));
            reference
        };
        let nobody = push("bookworm-python", "nobody");
        let root = push("bookworm-python-root", "root");
        let nginx = push("bookworm-nginx", "nginx");
        DebianFixture {
            _registry: registry,
            cache: tempfile::tempdir().unwrap(),
            nobody,
            root,
            nginx,
        }
    }

    /// Starts `wasmhost run REFERENCE --listen 127.0.0.1:0 --cache-dir …
    /// <extra>`.
    pub fn run(&self, reference: &str, extra: &[&str]) -> super::Server {
        let mut args = vec![
            "run",
            reference,
            "--listen",
            "127.0.0.1:0",
            "--cache-dir",
            self.cache.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        super::Server::start(&args)
    }
}
