//! OCI registries end to end: the real `wasmhost` binary against a real
//! registry (Debian's `docker-registry`, see `common::registry`), and
//! interop with `skopeo` and `umoci`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::registry::{RecordingProxy, TestRegistry};
use common::{guest, http1, run, Failed, Server};
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// A content store of its own, so tests never see each other's pulls.
struct Store(tempfile::TempDir);

impl Store {
    fn new() -> Store {
        Store(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> &str {
        self.0.path().to_str().unwrap()
    }

    /// Blob files, including partial ones.
    fn blob_files(&self) -> Vec<String> {
        let dir = self.0.path().join("blobs/sha256");
        std::fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn ref_count(&self) -> usize {
        std::fs::read_dir(self.0.path().join("refs")).map_or(0, |d| d.count())
    }

    /// Asserts the store holds nothing at all.
    fn assert_empty(&self) {
        assert_eq!(self.blob_files(), Vec::<String>::new(), "blobs left behind");
        assert_eq!(self.ref_count(), 0, "references left behind");
    }
}

/// `wasmhost` with a Docker config directory of its own (no credentials
/// unless a test writes some).
fn wasmhost(args: &[&str], docker_config: &Path) -> Failed {
    run(args, &[("DOCKER_CONFIG", docker_config.to_str().unwrap())])
}

fn ok(out: Failed) -> String {
    assert_eq!(
        out.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    out.stdout
}

fn failed(out: Failed) -> String {
    assert_ne!(
        out.code,
        Some(0),
        "expected a failure; stdout: {}",
        out.stdout
    );
    out.stderr
}

fn push(source: &Path, reference: &str, config: &Path) -> Value {
    let out = ok(wasmhost(
        &["push", source.to_str().unwrap(), reference, "--json"],
        config,
    ));
    serde_json::from_str(&out).expect("push --json prints JSON")
}

fn pull(reference: &str, store: &Store, config: &Path) -> Value {
    let out = ok(wasmhost(
        &["pull", reference, "--cache-dir", store.path(), "--json"],
        config,
    ));
    serde_json::from_str(&out).expect("pull --json prints JSON")
}

/// `cache gc --json` of `store`, forgetting `forget` first if given.
fn cache_gc(store: &Store, forget: Option<&str>, config: &Path) -> Value {
    let mut args = vec!["cache", "gc", "--cache-dir", store.path(), "--json"];
    if let Some(reference) = forget {
        args.extend(["--ref", reference]);
    }
    serde_json::from_str(&ok(wasmhost(&args, config))).expect("gc --json prints JSON")
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn serve_ref(reference: &str, store: &Store, docker_config: &Path) -> Server {
    Server::start_env(
        &[
            "serve",
            reference,
            "--listen",
            "127.0.0.1:0",
            "--cache-dir",
            store.path(),
        ],
        &[("DOCKER_CONFIG", docker_config.to_str().unwrap())],
    )
}

#[tokio::test]
async fn a_component_is_pushed_as_a_cncf_artifact_pulled_verified_and_served_by_reference() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    let hello = guest("hello");
    let reference = registry.reference("team/hello:1.0");
    let pushed = push(&hello, &reference, config.path());

    // The registry holds the CNCF Wasm layout.
    let manifest = registry.get_manifest("team/hello", "1.0").await;
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    let wasm = std::fs::read(&hello).unwrap();
    assert_eq!(manifest["layers"][0]["digest"], sha256(&wasm));
    let wasm_config: Value = serde_json::from_slice(
        &registry
            .get_blob("team/hello", manifest["config"]["digest"].as_str().unwrap())
            .await,
    )
    .unwrap();
    assert_eq!(wasm_config["architecture"], "wasm");
    assert_eq!(wasm_config["os"], "wasip2");
    assert_eq!(wasm_config["layerDigests"][0], sha256(&wasm));
    assert!(wasm_config["component"]["exports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e
            .as_str()
            .unwrap()
            .starts_with("wasi:http/incoming-handler@0.2")));

    let store = Store::new();
    let pulled = pull(&reference, &store, config.path());
    assert_eq!(pulled["digest"], pushed["digest"]);
    assert_eq!(pulled["kind"], "Wasm component");
    let path = pulled["path"].as_str().unwrap();
    assert_eq!(
        std::fs::read(path).unwrap(),
        wasm,
        "the stored layer is the component"
    );

    let server = serve_ref(&reference, &store, config.path());
    let body = http1().get(server.url("/")).send().await.unwrap();
    assert_eq!(body.status(), 200);
    assert_eq!(body.text().await.unwrap(), "Hello, world!\n");

    // `cache ls` lists the reference; `cache gc --ref` frees its blobs.
    let listed: Value = serde_json::from_str(&ok(wasmhost(
        &["cache", "ls", "--cache-dir", store.path(), "--json"],
        config.path(),
    )))
    .unwrap();
    assert_eq!(listed["refs"][0]["reference"], reference);
    assert_eq!(listed["refs"][0]["digest"], pushed["digest"]);
    assert_eq!(listed["blobs"].as_array().unwrap().len(), 3);
    let gc = cache_gc(&store, None, config.path());
    assert_eq!(gc["removed_blobs"], 0, "a referenced component is kept");
    let gc = cache_gc(&store, Some(&reference), config.path());
    assert_eq!(gc["removed_blobs"], 3);
    store.assert_empty();
}

#[tokio::test]
async fn skopeo_reads_and_copies_what_wasmhost_pushes() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    let hello = guest("hello");
    let reference = registry.reference("interop/hello:1");
    let pushed = push(&hello, &reference, config.path());
    let inspect = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .expect("skopeo (run scripts/install-test-deps.sh)");
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    assert_eq!(
        sha256(&inspect.stdout),
        pushed["digest"],
        "skopeo sees the manifest pushed"
    );

    let layout = tempfile::tempdir().unwrap();
    let copy = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:hello", layout.path().display()))
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let wasm = std::fs::read(&hello).unwrap();
    let digest = sha256(&wasm);
    let copied = layout
        .path()
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());
    assert_eq!(std::fs::read(copied).unwrap(), wasm);
}

/// Pushes an app the way `spin registry push` lays it out, through the
/// registry API: `layers` (each pushed as a blob), then the locked app as
/// the last layer, named by the image config's label; no `mediaType` in the
/// manifest body, as Spin writes it.
async fn push_spin_app(
    registry: &TestRegistry,
    repo: &str,
    tag: &str,
    locked: &str,
    layers: &[(&[u8], &str)],
) {
    let mut descriptors = Vec::new();
    for (bytes, media_type) in layers {
        let digest = registry.push_blob(repo, bytes).await;
        descriptors.push(json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() }));
    }
    let locked_digest = registry.push_blob(repo, locked.as_bytes()).await;
    descriptors.push(
        json!({ "mediaType": "application/vnd.fermyon.spin.application.v1+config",
                             "digest": locked_digest, "size": locked.len() }),
    );
    let config = json!({ "architecture": "wasm", "os": "wasip1",
        "config": { "Labels": { "com.fermyon.spin.lockedAppDigest": locked_digest } },
        "rootfs": { "type": "layers", "diff_ids": [] } })
    .to_string();
    let config_digest = registry.push_blob(repo, config.as_bytes()).await;
    let manifest = json!({
        "schemaVersion": 2,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest, "size": config.len() },
        "layers": descriptors,
    })
    .to_string();
    let (status, body) = registry
        .put_manifest(repo, tag, OCI_MANIFEST, manifest.as_bytes())
        .await;
    assert_eq!(status, 201, "{body}");
}

/// An OCI image built with umoci (busybox-free: one file), pushed by
/// skopeo.
fn umoci_image(registry: &TestRegistry, repository: &str) -> (String, tempfile::TempDir) {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let bundle = work.path().join("bundle");
    common::images::sh(&format!(
        "umoci init --layout {l}
         umoci new --image {l}:app
         umoci unpack --rootless --image {l}:app {b}
         mkdir -p {b}/rootfs/etc && echo hello > {b}/rootfs/etc/greeting
         umoci repack --image {l}:app {b}
         umoci config --image {l}:app --config.cmd /bin/sh --os linux --architecture amd64
         skopeo copy --dest-tls-verify=false oci:{l}:app docker://{r}",
        l = layout.display(),
        b = bundle.display(),
        r = registry.reference(repository),
    ));
    (registry.reference(repository), work)
}

#[tokio::test]
async fn container_images_from_umoci_and_skopeo_and_indexes_pull_into_the_same_store() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    let (reference, _work) = umoci_image(&registry, "legacy/app:1");
    let store = Store::new();
    let pulled = pull(&reference, &store, config.path());
    assert_eq!(pulled["kind"], "container image");
    let layers = pulled["layers"].as_array().unwrap();
    assert!(!layers.is_empty());
    for layer in layers {
        let digest = layer["digest"].as_str().unwrap();
        assert!(
            store.blob_files().contains(&digest[7..].to_owned()),
            "{digest} stored"
        );
    }

    // The same image as a Docker v2 schema 2 manifest.
    let docker_ref = registry.reference("legacy/docker:1");
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--format",
            "v2s2",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .arg(format!("docker://{reference}"))
        .arg(format!("docker://{docker_ref}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docker = pull(&docker_ref, &store, config.path());
    assert_eq!(docker["kind"], "container image");
    assert_eq!(
        docker["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );

    // A multi-arch index resolves to linux/amd64.
    let manifest = registry.get_manifest("legacy/app", "1").await;
    let bytes = manifest.to_string().into_bytes();
    // Re-serialising may reorder keys: push our copy so the digest is exact.
    let (status, body) = registry
        .put_manifest("legacy/app", "exact", OCI_MANIFEST, &bytes)
        .await;
    assert_eq!(status, 201, "{body}");
    let exact = sha256(&bytes);
    let entry = |os: &str, arch: &str| {
        json!({ "mediaType": OCI_MANIFEST, "digest": exact, "size": bytes.len(),
                "platform": { "os": os, "architecture": arch } })
    };
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [entry("linux", "arm64"), entry("linux", "amd64")] });
    let (status, body) = registry
        .put_manifest(
            "legacy/app",
            "multi",
            OCI_INDEX,
            index.to_string().as_bytes(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let multi = pull(
        &registry.reference("legacy/app:multi"),
        &store,
        config.path(),
    );
    assert_eq!(multi["manifest"], exact);
    assert_eq!(multi["digest"], sha256(index.to_string().as_bytes()));

    // An index with nothing for this host is refused by name.
    let arm_only = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry("linux", "arm64")] });
    registry
        .put_manifest(
            "legacy/app",
            "arm",
            OCI_INDEX,
            arm_only.to_string().as_bytes(),
        )
        .await;
    let fresh = Store::new();
    let arm_ref = registry.reference("legacy/app:arm");
    let err = failed(wasmhost(
        &["pull", &arm_ref, "--cache-dir", fresh.path()],
        config.path(),
    ));
    assert!(err.contains(&arm_ref), "{err}");
    assert!(
        err.contains("no wasm or linux/amd64 entry (it has: linux/arm64)"),
        "{err}"
    );
    fresh.assert_empty();
}

/// A copy of examples/spin-app with absolute sources, plus a file larger
/// than Spin's 128-byte inline limit and a variable.
fn spin_app_dir() -> tempfile::TempDir {
    let example = common::repo_root().join("examples/spin-app");
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(example.join("spin.toml"))
        .unwrap()
        .replace(
            "../../target/",
            &format!("{}/target/", common::repo_root().display()),
        );
    std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
    std::fs::create_dir_all(dir.path().join("static")).unwrap();
    std::fs::copy(
        example.join("static/index.html"),
        dir.path().join("static/index.html"),
    )
    .unwrap();
    std::fs::write(dir.path().join("static/tiny.txt"), "tiny").unwrap();
    dir
}

#[tokio::test]
async fn a_spin_app_round_trips_in_spins_registry_format() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    let app = spin_app_dir();
    let reference = registry.reference("apps/spin-app:0.1.0");
    push(&app.path().join("spin.toml"), &reference, config.path());

    let manifest = registry.get_manifest("apps/spin-app", "0.1.0").await;
    let layers = manifest["layers"].as_array().unwrap();
    let types: Vec<&str> = layers
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "application/vnd.wasm.content.layer.v1+wasm")
            .count(),
        3
    );
    assert!(
        types.contains(&"application/vnd.wasm.content.layer.v1+data"),
        "{types:?}"
    );
    assert_eq!(
        types.last(),
        Some(&"application/vnd.fermyon.spin.application.v1+config")
    );
    let locked_digest = layers.last().unwrap()["digest"].as_str().unwrap();
    let image_config: Value = serde_json::from_slice(
        &registry
            .get_blob(
                "apps/spin-app",
                manifest["config"]["digest"].as_str().unwrap(),
            )
            .await,
    )
    .unwrap();
    assert_eq!(
        image_config["config"]["Labels"]["com.fermyon.spin.lockedAppDigest"],
        locked_digest
    );
    let locked: Value =
        serde_json::from_slice(&registry.get_blob("apps/spin-app", locked_digest).await).unwrap();
    assert_eq!(locked["spin_lock_version"], 0);
    let files = locked["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "files")
        .unwrap()["files"]
        .as_array()
        .unwrap()
        .clone();
    let tiny = files
        .iter()
        .find(|f| f["path"] == "static/tiny.txt")
        .unwrap();
    assert_eq!(
        tiny["inline"], "dGlueQ",
        "small files are inlined, base64 without padding"
    );
    let index = files
        .iter()
        .find(|f| f["path"] == "static/index.html")
        .unwrap();
    assert!(index.get("inline").is_none());
    assert!(layers.iter().any(|l| l["digest"] == index["digest"]));

    let store = Store::new();
    let server = serve_ref(&reference, &store, config.path());
    let client = http1();
    let page = client
        .get(server.url("/static/index.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Served by wasmhost"));
    let tiny = client
        .get(server.url("/static/tiny.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(tiny.text().await.unwrap(), "tiny");
    let count = client.get(server.url("/count")).send().await.unwrap();
    assert_eq!(count.text().await.unwrap(), "1");
    let api = client
        .get(server.url("/api/greet/oci"))
        .send()
        .await
        .unwrap();
    assert!(api.text().await.unwrap().contains("Hello, oci!"));
}

#[tokio::test]
async fn a_spin_app_pushed_by_hand_through_the_registry_api_is_served() {
    // What `spin registry push` uploads, byte for byte in shape: no
    // `mediaType` in the manifest body, the locked app as the last layer.
    let registry = TestRegistry::start();
    let repo = "byhand/app";
    let wasm = std::fs::read(guest("static-files")).unwrap();
    let big = "x".repeat(500);
    let wasm_digest = sha256(&wasm);
    let big_digest = sha256(big.as_bytes());
    let locked = json!({
        "spin_lock_version": 0,
        "metadata": { "name": "byhand", "trigger": { "type": "http" }, "triggers": {}, "version": "1.0.0" },
        "triggers": [{ "id": "web-http-trigger", "trigger_type": "http",
                       "trigger_config": { "component": "web", "route": "/..." } }],
        "components": [{
            "id": "web",
            "source": { "content_type": "application/wasm", "digest": wasm_digest },
            "files": [
                { "digest": big_digest, "path": "big.txt" },
                { "digest": sha256(b"hi"), "inline": "aGk", "path": "small.txt" },
            ],
        }],
    })
    .to_string();
    push_spin_app(
        &registry,
        repo,
        "1.0.0",
        &locked,
        &[
            (&wasm, "application/vnd.wasm.content.layer.v1+wasm"),
            (big.as_bytes(), "application/vnd.wasm.content.layer.v1+data"),
        ],
    )
    .await;

    let docker_config = tempfile::tempdir().unwrap();
    let store = Store::new();
    let server = serve_ref(
        &registry.reference("byhand/app:1.0.0"),
        &store,
        docker_config.path(),
    );
    let client = http1();
    let big_served = client.get(server.url("/big.txt")).send().await.unwrap();
    assert_eq!(big_served.status(), 200);
    assert_eq!(big_served.text().await.unwrap(), big);
    let small = client.get(server.url("/small.txt")).send().await.unwrap();
    assert_eq!(small.text().await.unwrap(), "hi");
}

#[tokio::test]
async fn a_digest_needs_no_registry_and_a_tag_falls_back_to_its_last_digest_with_a_warning() {
    let mut registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    let reference = registry.reference("team/hello:stable");
    let pushed = push(&guest("hello"), &reference, config.path());
    let digest = pushed["digest"].as_str().unwrap().to_owned();
    let store = Store::new();
    pull(&reference, &store, config.path());
    let never_pulled = registry.reference("team/other:1");
    registry.stop();

    let pinned = format!("{}@{digest}", registry.reference("team/hello"));
    let server = serve_ref(&pinned, &store, config.path());
    let response = http1().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "Hello, world!\n");
    assert!(
        server.log().contains("from the local store"),
        "{}",
        server.log()
    );
    drop(server);

    let server = serve_ref(&reference, &store, config.path());
    let response = http1().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "Hello, world!\n");
    let warning = server.wait_for_log(
        "cannot reach the registry",
        std::time::Duration::from_secs(5),
    );
    assert!(
        warning.contains(&reference) && warning.contains(&digest),
        "{warning}"
    );
    drop(server);

    let err = failed(wasmhost(
        &[
            "serve",
            &never_pulled,
            "--cache-dir",
            store.path(),
            "--listen",
            "127.0.0.1:0",
        ],
        config.path(),
    ));
    assert!(err.contains(&never_pulled), "{err}");
    assert!(
        err.contains("unreachable") && err.contains("never pulled here before"),
        "{err}"
    );
}

#[tokio::test]
async fn basic_auth_registries_need_a_login_which_is_checked_and_stored() {
    let registry = TestRegistry::start_with_auth("alice", "s3cret");
    let config = tempfile::tempdir().unwrap();
    let hello = guest("hello");
    let reference = registry.reference("private/hello:1");

    let err = failed(wasmhost(
        &["push", hello.to_str().unwrap(), &reference],
        config.path(),
    ));
    assert!(err.contains(&reference) && err.contains("401"), "{err}");

    let bad = failed(wasmhost(
        &[
            "registry",
            "login",
            &registry.host,
            "-u",
            "alice",
            "-p",
            "wrong",
        ],
        config.path(),
    ));
    assert!(
        bad.contains("cannot log in") && bad.contains("401"),
        "{bad}"
    );
    assert!(
        !config.path().join("config.json").exists(),
        "nothing stored for a bad password"
    );

    ok(wasmhost(
        &[
            "registry",
            "login",
            &registry.host,
            "-u",
            "alice",
            "-p",
            "s3cret",
        ],
        config.path(),
    ));
    let stored: Value =
        serde_json::from_slice(&std::fs::read(config.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(stored["auths"][&registry.host]["auth"], "YWxpY2U6czNjcmV0");

    let pushed = push(&hello, &reference, config.path());
    let store = Store::new();
    let pulled = pull(&reference, &store, config.path());
    assert_eq!(pulled["digest"], pushed["digest"]);

    ok(wasmhost(
        &["registry", "logout", &registry.host],
        config.path(),
    ));
    let fresh = Store::new();
    let err = failed(wasmhost(
        &["pull", &reference, "--cache-dir", fresh.path()],
        config.path(),
    ));
    assert!(err.contains("401"), "{err}");
    fresh.assert_empty();
}

/// Pushes hello to `repository`; returns (manifest digest, wasm digest).
fn pushed_hello(registry: &TestRegistry, repository: &str, config: &Path) -> (String, String) {
    let pushed = push(&guest("hello"), &registry.reference(repository), config);
    let wasm = std::fs::read(guest("hello")).unwrap();
    (pushed["digest"].as_str().unwrap().to_owned(), sha256(&wasm))
}

#[tokio::test]
async fn corrupt_truncated_and_hostile_content_is_refused_by_reference_and_leaves_nothing() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();

    // A blob whose bytes changed in the registry's storage.
    let (_, wasm_digest) = pushed_hello(&registry, "bad/corrupt:1", config.path());
    let blob = registry.blob_file(&wasm_digest);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let store = Store::new();
    let reference = registry.reference("bad/corrupt:1");
    let err = failed(wasmhost(
        &["pull", &reference, "--cache-dir", store.path()],
        config.path(),
    ));
    assert!(err.contains(&reference) && err.contains("digest"), "{err}");
    store.assert_empty();

    // A truncated blob.
    std::fs::write(&blob, &bytes[..bytes.len() / 2]).unwrap();
    let err = failed(wasmhost(
        &["pull", &reference, "--cache-dir", store.path()],
        config.path(),
    ));
    assert!(err.contains(&reference), "{err}");
    assert!(
        err.contains("size mismatch") || err.contains("digest"),
        "{err}"
    );
    store.assert_empty();
    // The same pulled by `serve` does not start either.
    let err = failed(wasmhost(
        &[
            "serve",
            &reference,
            "--cache-dir",
            store.path(),
            "--listen",
            "127.0.0.1:0",
        ],
        config.path(),
    ));
    assert!(err.contains(&reference), "{err}");
    store.assert_empty();

    // A manifest that is both an image and an index (CVE-2021-41190). The
    // registry refuses it on upload, so it is written into its storage.
    let fine = registry.get_manifest("bad/corrupt", "1").await;
    let mut hostile = fine.clone();
    hostile["manifests"] = json!([{ "mediaType": OCI_MANIFEST, "digest": wasm_digest, "size": 1 }]);
    let (status, _) = registry
        .put_manifest("bad/cve", "1", OCI_MANIFEST, hostile.to_string().as_bytes())
        .await;
    assert_eq!(status, 400, "the registry itself refuses it on upload");
    registry.inject_manifest("bad/corrupt", "cve", hostile.to_string().as_bytes());
    let reference = registry.reference("bad/corrupt:cve");
    let err = failed(wasmhost(
        &["pull", &reference, "--cache-dir", store.path()],
        config.path(),
    ));
    assert!(
        err.contains(&reference) && err.contains("CVE-2021-41190"),
        "{err}"
    );
    store.assert_empty();

    // Unknown and missing media types.
    let mut unknown = fine.clone();
    unknown["config"]["mediaType"] = json!("application/x-unknown");
    unknown["layers"][0]["mediaType"] = json!("application/x-other");
    registry
        .put_manifest(
            "bad/corrupt",
            "unknown",
            OCI_MANIFEST,
            unknown.to_string().as_bytes(),
        )
        .await;
    let reference = registry.reference("bad/corrupt:unknown");
    let err = failed(wasmhost(
        &["pull", &reference, "--cache-dir", store.path()],
        config.path(),
    ));
    assert!(
        err.contains(&reference) && err.contains("unknown artifact"),
        "{err}"
    );
    assert!(err.contains("application/x-other"), "{err}");
    let mut missing = fine.clone();
    missing["layers"][0]
        .as_object_mut()
        .unwrap()
        .remove("mediaType");
    registry
        .put_manifest(
            "bad/corrupt",
            "missing",
            OCI_MANIFEST,
            missing.to_string().as_bytes(),
        )
        .await;
    let reference = registry.reference("bad/corrupt:missing");
    let err = failed(wasmhost(
        &["pull", &reference, "--cache-dir", store.path()],
        config.path(),
    ));
    assert!(
        err.contains(&reference) && err.contains("no media type"),
        "{err}"
    );
    store.assert_empty();

    // Not there.
    let reference = registry.reference("bad/absent:1");
    let err = failed(wasmhost(
        &["pull", &reference, "--cache-dir", store.path()],
        config.path(),
    ));
    assert!(err.contains(&reference) && err.contains("404"), "{err}");
    store.assert_empty();

    // No registry at all: a port held by a socket that does not listen.
    let (_held, refusing) = common::registry::refusing_address();
    let reference = format!("{refusing}/bad/down:1");
    let err = failed(wasmhost(
        &["pull", &reference, "--cache-dir", store.path()],
        config.path(),
    ));
    assert!(
        err.contains(&reference) && err.contains("unreachable"),
        "{err}"
    );
    store.assert_empty();
}

#[tokio::test]
async fn a_manifest_registry_source_is_pulled_as_a_component() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    push(
        &guest("hello"),
        &registry.reference("example/hello:0.1.0"),
        config.path(),
    );
    let dir = tempfile::tempdir().unwrap();
    let manifest: PathBuf = dir.path().join("spin.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"spin_manifest_version = 2
[application]
name = "from-registry"
[[trigger.http]]
route = "/..."
component = "hello"
[component.hello]
source = {{ registry = "{}", package = "example:hello", version = "0.1.0" }}
"#,
            registry.host
        ),
    )
    .unwrap();
    let store = Store::new();
    let server = Server::start_env(
        &[
            "serve",
            manifest.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--cache-dir",
            store.path(),
        ],
        &[("DOCKER_CONFIG", config.path().to_str().unwrap())],
    );
    let response = http1().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "Hello, world!\n");
}

#[tokio::test]
async fn token_registries_are_reached_with_a_bearer_token_from_their_token_service() {
    let registry = TestRegistry::start_with_token_auth("bob", "hunter2");
    let config = tempfile::tempdir().unwrap();
    let hello = guest("hello");
    let reference = registry.reference("tokens/hello:1");

    // Anonymous: the token service refuses, so does the registry.
    let err = failed(wasmhost(
        &["push", hello.to_str().unwrap(), &reference],
        config.path(),
    ));
    assert!(err.contains(&reference) && err.contains("401"), "{err}");

    let bad = failed(wasmhost(
        &[
            "registry",
            "login",
            &registry.host,
            "-u",
            "bob",
            "-p",
            "wrong",
        ],
        config.path(),
    ));
    assert!(bad.contains("cannot log in"), "{bad}");
    ok(wasmhost(
        &[
            "registry",
            "login",
            &registry.host,
            "-u",
            "bob",
            "-p",
            "hunter2",
        ],
        config.path(),
    ));
    let pushed = push(&hello, &reference, config.path());
    let store = Store::new();
    let pulled = pull(&reference, &store, config.path());
    assert_eq!(pulled["digest"], pushed["digest"]);
}

#[tokio::test]
async fn a_spin_app_in_archive_mode_is_served_from_its_tar_gzip_layer() {
    // `SPIN_OCI_ARCHIVE_LAYERS=1 spin registry push`: a component's files
    // as one tar+gzip layer, the locked app naming each file by the digest
    // of its own bytes.
    let registry = TestRegistry::start();
    let repo = "byhand/archive";
    let wasm = std::fs::read(guest("static-files")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let page = "<h1>from an archive</h1>".repeat(20);
    std::fs::create_dir_all(work.path().join("files/docs")).unwrap();
    std::fs::write(work.path().join("files/docs/page.html"), &page).unwrap();
    let tarball = work.path().join("files.tar.gz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(work.path().join("files"))
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let archive = std::fs::read(&tarball).unwrap();
    let wasm_digest = sha256(&wasm);
    let locked = json!({
        "spin_lock_version": 0,
        "metadata": { "name": "archive" },
        "triggers": [{ "id": "t", "trigger_type": "http",
                       "trigger_config": { "component": "web", "route": "/..." } }],
        "components": [{
            "id": "web",
            "source": { "content_type": "application/wasm", "digest": wasm_digest },
            "files": [{ "digest": sha256(page.as_bytes()), "path": "docs/page.html" }],
        }],
    })
    .to_string();
    push_spin_app(
        &registry,
        repo,
        "1",
        &locked,
        &[
            (&wasm, "application/vnd.wasm.content.layer.v1+wasm"),
            (&archive, "application/vnd.wasm.content.bundle.v1.tar+gzip"),
        ],
    )
    .await;
    let docker_config = tempfile::tempdir().unwrap();
    let store = Store::new();
    let server = serve_ref(
        &registry.reference("byhand/archive:1"),
        &store,
        docker_config.path(),
    );
    let served = http1()
        .get(server.url("/docs/page.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.text().await.unwrap(), page);
}

#[tokio::test]
async fn a_runwasi_component_image_is_pulled_and_served() {
    // runwasi's layout: an OCI image config and the component as a
    // `application/vnd.bytecodealliance.wasm.component.layer.v0+wasm` layer.
    let registry = TestRegistry::start();
    let repo = "runwasi/hello";
    let wasm = std::fs::read(guest("hello")).unwrap();
    let wasm_digest = registry.push_blob(repo, &wasm).await;
    let config = json!({ "architecture": "wasm", "os": "wasip2",
        "config": { "Entrypoint": ["/hello.wasm"] },
        "rootfs": { "type": "layers", "diff_ids": [wasm_digest] } })
    .to_string();
    let config_digest = registry.push_blob(repo, config.as_bytes()).await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
                     "digest": wasm_digest, "size": wasm.len() }],
    })
    .to_string();
    let (status, body) = registry
        .put_manifest(repo, "1", OCI_MANIFEST, manifest.as_bytes())
        .await;
    assert_eq!(status, 201, "{body}");
    let docker_config = tempfile::tempdir().unwrap();
    let store = Store::new();
    let server = serve_ref(
        &registry.reference("runwasi/hello:1"),
        &store,
        docker_config.path(),
    );
    let response = http1().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "Hello, world!\n");
}

#[tokio::test]
async fn every_manifest_request_accepts_the_oci_and_docker_manifest_and_index_types() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    push(
        &guest("hello"),
        &registry.reference("accept/hello:1"),
        config.path(),
    );
    // The same registry through a proxy that records what wasmhost asks.
    let proxy = RecordingProxy::start(&registry.host);
    let store = Store::new();
    for reference in [
        format!("{}/accept/hello:1", proxy.host),
        format!("{}/accept/hello:1", proxy.host),
    ] {
        pull(&reference, &store, config.path());
    }
    let heads = proxy.heads();
    let manifest_requests: Vec<&String> = heads
        .iter()
        .filter(|head| {
            head.lines()
                .next()
                .is_some_and(|line| line.contains("/manifests/"))
        })
        .collect();
    assert!(!manifest_requests.is_empty(), "{heads:#?}");
    for head in manifest_requests {
        let accept: Vec<&str> = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .filter(|(name, _)| name.eq_ignore_ascii_case("accept"))
            .flat_map(|(_, value)| value.split(','))
            .map(|media_type| media_type.split(';').next().unwrap_or_default().trim())
            .collect();
        for media_type in [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST] {
            assert!(
                accept.contains(&media_type),
                "{media_type} not accepted:\n{head}"
            );
        }
    }
}

#[tokio::test]
async fn insecure_speaks_plain_http_to_a_registry_that_is_not_on_loopback() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    let pushed = push(
        &guest("hello"),
        &registry.reference("plain/hello:1"),
        config.path(),
    );
    // `0.0.0.0` is not a loopback address by its name, so wasmhost insists
    // on HTTPS for it; a connection to it still reaches this machine's
    // loopback registry (Linux connects to 127.0.0.1).
    let port = registry.host.rsplit(':').next().unwrap();
    let reference = format!("0.0.0.0:{port}/plain/hello:1");
    let store = Store::new();
    let err = failed(wasmhost(
        &["pull", &reference, "--cache-dir", store.path()],
        config.path(),
    ));
    assert!(
        err.contains(&reference) && err.contains(&format!("https://0.0.0.0:{port}/")),
        "{err}"
    );
    store.assert_empty();
    let out = ok(wasmhost(
        &[
            "pull",
            &reference,
            "--insecure",
            "--cache-dir",
            store.path(),
            "--json",
        ],
        config.path(),
    ));
    let pulled: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pulled["digest"], pushed["digest"]);
    // `serve REF --insecure` pulls the same way.
    let fresh = Store::new();
    let server = Server::start_env(
        &[
            "serve",
            &reference,
            "--insecure",
            "--listen",
            "127.0.0.1:0",
            "--cache-dir",
            fresh.path(),
        ],
        &[("DOCKER_CONFIG", config.path().to_str().unwrap())],
    );
    let response = http1().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "Hello, world!\n");
}

/// A `docker-credential-<name>` helper in `dir` that answers `get` with
/// `user`/`secret` and appends each server it was asked about to
/// `dir/asked`.
fn credential_helper(dir: &Path, name: &str, user: &str, secret: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let helper = dir.join(format!("docker-credential-{name}"));
    let asked = dir.join("asked");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nserver=$(cat)\necho \"$server\" >> '{}'\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}' \"$server\"\n",
            asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn credentials_come_from_docker_credential_helpers() {
    let registry = TestRegistry::start_with_auth("carol", "from-a-helper");
    let bin = tempfile::tempdir().unwrap();
    credential_helper(bin.path(), "wasmhost-test", "carol", "from-a-helper");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let reference = registry.reference("helped/hello:1");
    let hello = guest("hello");
    // `credHelpers` names a helper per registry; `credsStore` one for all.
    for (round, config_json) in [
        json!({ "credHelpers": { registry.host.clone(): "wasmhost-test" } }),
        json!({ "credsStore": "wasmhost-test" }),
    ]
    .into_iter()
    .enumerate()
    {
        let config = tempfile::tempdir().unwrap();
        std::fs::write(config.path().join("config.json"), config_json.to_string()).unwrap();
        let env = [
            ("DOCKER_CONFIG", config.path().to_str().unwrap()),
            ("PATH", path.as_str()),
        ];
        let pushed = run(
            &["push", hello.to_str().unwrap(), &reference, "--json"],
            &env,
        );
        assert_eq!(pushed.code, Some(0), "round {round}: {}", pushed.stderr);
        let store = Store::new();
        let pulled = run(
            &["pull", &reference, "--cache-dir", store.path(), "--json"],
            &env,
        );
        assert_eq!(pulled.code, Some(0), "round {round}: {}", pulled.stderr);
    }
    let asked = std::fs::read_to_string(bin.path().join("asked")).unwrap();
    assert!(
        asked.lines().count() >= 4 && asked.lines().all(|server| server == registry.host),
        "the helper was asked about: {asked:?}"
    );
    // Without a helper's answer the registry refuses: the credentials did
    // come from it.
    let config = tempfile::tempdir().unwrap();
    let err = failed(wasmhost(
        &["pull", &reference, "--cache-dir", Store::new().path()],
        config.path(),
    ));
    assert!(err.contains("401"), "{err}");
}

#[tokio::test]
async fn cache_gc_removes_a_forgotten_apps_directory_with_its_key_value_data() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    let app = spin_app_dir();
    let reference = registry.reference("apps/forgotten:1");
    push(&app.path().join("spin.toml"), &reference, config.path());
    let store = Store::new();
    let server = serve_ref(&reference, &store, config.path());
    let count = http1().get(server.url("/count")).send().await.unwrap();
    assert_eq!(count.text().await.unwrap(), "1");
    drop(server);
    let apps = store.0.path().join("apps");
    let pulled: Vec<PathBuf> = std::fs::read_dir(&apps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(pulled.len(), 1, "{pulled:?}");
    let key_value = files_named(&pulled[0], "key_value.redb");
    assert_eq!(
        key_value.len(),
        1,
        "the app's key-value data is in its directory"
    );

    // Still referenced: kept.
    cache_gc(&store, None, config.path());
    assert!(pulled[0].is_dir() && key_value[0].is_file());
    // Forgotten: its blobs, its directory and its data go.
    let gc = cache_gc(&store, Some(&reference), config.path());
    assert!(gc["removed_blobs"].as_u64().unwrap() > 0, "{gc}");
    assert!(!pulled[0].exists(), "the forgotten app's directory is kept");
    store.assert_empty();
}

/// Every file named `name` below `dir`.
fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_named(&path, name));
        } else if entry.file_name() == name {
            found.push(path);
        }
    }
    found
}

// Precompiled code attached as a referrer (`push --precompiled`), used by
// `serve REF --trust-precompiled`.

const PRECOMPILED_TYPE: &str = "application/vnd.wasmhost.precompiled.v1";
const ENGINE_KEY: &str = "dev.wasmhost.precompiled.engine-key";
const COMPONENT_DIGEST: &str = "dev.wasmhost.precompiled.component-digest";

/// Pushes hello with its compiled code to `repository:1`; returns the
/// push's JSON.
fn push_precompiled_hello(registry: &TestRegistry, repository: &str, config: &Path) -> Value {
    let reference = registry.reference(&format!("{repository}:1"));
    let out = ok(wasmhost(
        &[
            "push",
            guest("hello").to_str().unwrap(),
            &reference,
            "--precompiled",
            "--json",
        ],
        config,
    ));
    serde_json::from_str(&out).expect("push --json prints JSON")
}

/// The referrers tag (OCI 1.1 tag schema) of manifest `digest`.
fn referrers_tag(digest: &str) -> String {
    digest.replace(':', "-")
}

/// `serve REF` on an empty node (a fresh cache), with `extra` flags.
fn serve_fresh(reference: &str, store: &Store, config: &Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "serve",
        reference,
        "--listen",
        "127.0.0.1:0",
        "--cache-dir",
        store.path(),
    ];
    args.extend_from_slice(extra);
    Server::start_env(&args, &[("DOCKER_CONFIG", config.to_str().unwrap())])
}

fn compiled_entries(store: &Store) -> Vec<PathBuf> {
    std::fs::read_dir(store.0.path().join("compiled"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

/// Replaces the one referrer listed for `subject` in `repository` with a
/// copy changed by `change` (pushed by digest, listed under the tag with
/// the changed annotations), as a registry that cannot be trusted might.
async fn rewrite_referrer(
    registry: &TestRegistry,
    repository: &str,
    subject: &str,
    change: impl Fn(&mut Value),
) {
    let tag = referrers_tag(subject);
    let mut index = registry.get_manifest(repository, &tag).await;
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let mut manifest = registry.get_manifest(repository, &digest).await;
    change(&mut manifest);
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let new_digest = sha256(&bytes);
    let (status, body) = registry
        .put_manifest(repository, &new_digest, OCI_MANIFEST, &bytes)
        .await;
    assert_eq!(status, 201, "{body}");
    index["manifests"][0]["digest"] = json!(new_digest);
    index["manifests"][0]["size"] = json!(bytes.len());
    index["manifests"][0]["annotations"] = manifest["annotations"].clone();
    let (status, body) = registry
        .put_manifest(
            repository,
            &tag,
            OCI_INDEX,
            &serde_json::to_vec(&index).unwrap(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn precompiled_code_from_a_trusted_registry_is_loaded_instead_of_compiled() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    let pushed = push_precompiled_hello(&registry, "team/pre", config.path());
    let subject = pushed["digest"].as_str().unwrap();
    let referrer = pushed["precompiled"].as_str().unwrap();

    // Listed under the referrers tag, tied to the component by digests.
    let index = registry
        .get_manifest("team/pre", &referrers_tag(subject))
        .await;
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["digest"], referrer);
    assert_eq!(index["manifests"][0]["artifactType"], PRECOMPILED_TYPE);
    let manifest = registry.get_manifest("team/pre", referrer).await;
    assert_eq!(manifest["subject"]["digest"], subject);
    let wasm = std::fs::read(guest("hello")).unwrap();
    assert_eq!(manifest["annotations"][COMPONENT_DIGEST], sha256(&wasm));
    assert_eq!(
        manifest["annotations"][ENGINE_KEY].as_str().unwrap().len(),
        64
    );
    let code = registry
        .get_blob(
            "team/pre",
            manifest["layers"][0]["digest"].as_str().unwrap(),
        )
        .await;

    // An empty node that trusts the registry loads it: nothing compiles.
    let store = Store::new();
    let server = serve_fresh(
        &registry.reference("team/pre:1"),
        &store,
        config.path(),
        &["--trust-precompiled", &registry.host],
    );
    server.wait_for_log("using precompiled code", Duration::from_secs(5));
    let line = server.wait_for_log("loaded `", Duration::from_secs(5));
    assert!(line.contains("compiled code loaded from cache"), "{line}");
    let entries = compiled_entries(&store);
    assert_eq!(entries.len(), 1);
    assert_eq!(std::fs::read(&entries[0]).unwrap(), code);
    let response = http1().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "Hello, world!\n");

    // Pushed again, the entry for this engine is replaced, not added.
    push_precompiled_hello(&registry, "team/pre", config.path());
    let index = registry
        .get_manifest("team/pre", &referrers_tag(subject))
        .await;
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn precompiled_code_from_a_registry_not_named_as_trusted_is_not_looked_for() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    push_precompiled_hello(&registry, "team/pre", config.path());
    let store = Store::new();
    let server = serve_fresh(
        &registry.reference("team/pre:1"),
        &store,
        config.path(),
        &["--trust-precompiled", "registry.example.com"],
    );
    let line = server.wait_for_log("not looked for", Duration::from_secs(5));
    assert!(line.contains("--trust-precompiled"), "{line}");
    let line = server.wait_for_log("loaded `", Duration::from_secs(5));
    assert!(!line.contains("from cache"), "{line}");
    assert!(server.log_count("using precompiled code") == 0);
    let (status, _) = common::get_blocking(&server.url("/"));
    assert_eq!(status, 200);
}

#[tokio::test]
async fn precompiled_code_for_another_engine_is_not_used() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    let pushed = push_precompiled_hello(&registry, "team/pre", config.path());
    let subject = pushed["digest"].as_str().unwrap();
    rewrite_referrer(&registry, "team/pre", subject, |manifest| {
        manifest["annotations"][ENGINE_KEY] = json!("0".repeat(64));
    })
    .await;
    let store = Store::new();
    let server = serve_fresh(
        &registry.reference("team/pre:1"),
        &store,
        config.path(),
        &["--trust-precompiled", &registry.host],
    );
    let line = server.wait_for_log("not used", Duration::from_secs(5));
    assert!(
        line.contains("no precompiled code for this engine"),
        "{line}"
    );
    let line = server.wait_for_log("loaded `", Duration::from_secs(5));
    assert!(!line.contains("from cache"), "{line}");
    let (status, _) = common::get_blocking(&server.url("/"));
    assert_eq!(status, 200);
}

/// How a test rewrites a referrer manifest.
type ChangeReferrer = Box<dyn Fn(&mut Value)>;

#[tokio::test]
async fn precompiled_code_not_tied_to_the_component_by_digest_is_refused() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    // Another component's manifest, to point a referrer at.
    let other = push(
        &guest("echo"),
        &registry.reference("team/other:1"),
        config.path(),
    );
    let cases: [(&str, ChangeReferrer); 2] = [
        (
            "it was compiled from component",
            Box::new(|manifest: &mut Value| {
                manifest["annotations"][COMPONENT_DIGEST] =
                    json!(format!("sha256:{}", "1".repeat(64)));
            }),
        ),
        (
            "it is attached to",
            Box::new(move |manifest: &mut Value| {
                manifest["subject"]["digest"] = other["digest"].clone();
            }),
        ),
    ];
    for (why, change) in cases {
        let repository = format!("team/tampered-{}", why.len());
        let pushed = push_precompiled_hello(&registry, &repository, config.path());
        let subject = pushed["digest"].as_str().unwrap();
        rewrite_referrer(&registry, &repository, subject, |m| change(m)).await;
        let store = Store::new();
        let server = serve_fresh(
            &registry.reference(&format!("{repository}:1")),
            &store,
            config.path(),
            &["--trust-precompiled", &registry.host],
        );
        let line = server.wait_for_log("refused", Duration::from_secs(5));
        assert!(line.contains(why) && line.contains("compiling"), "{line}");
        let line = server.wait_for_log("loaded `", Duration::from_secs(5));
        assert!(!line.contains("from cache"), "{line}");
        let (status, _) = common::get_blocking(&server.url("/"));
        assert_eq!(status, 200);
    }
}
/// A Spin app of two components, `hello` at `/hello` and `echo` at
/// `/echo`.
fn two_component_app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        r#"spin_manifest_version = 2

[application]
name = "two"

[[trigger.http]]
route = "/hello"
component = "hello"

[[trigger.http]]
route = "/echo"
component = "echo"

[component.hello]
source = "{}"

[component.echo]
source = "{}"
"#,
        guest("hello").display(),
        guest("echo").display()
    );
    std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
    dir
}

/// Pushes the two-component app with its compiled code to
/// `repository:1`; returns the push's JSON.
fn push_precompiled_app(
    registry: &TestRegistry,
    repository: &str,
    app: &Path,
    config: &Path,
) -> Value {
    let reference = registry.reference(&format!("{repository}:1"));
    let manifest = app.join("spin.toml");
    let out = ok(wasmhost(
        &[
            "push",
            manifest.to_str().unwrap(),
            &reference,
            "--precompiled",
            "--json",
        ],
        config,
    ));
    serde_json::from_str(&out).expect("push --json prints JSON")
}

/// Both components of the two-component app answer.
async fn assert_both_answer(server: &Server) {
    let hello = http1().get(server.url("/hello")).send().await.unwrap();
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.text().await.unwrap(), "Hello, world!\n");
    let echo = http1()
        .post(server.url("/echo"))
        .body("ping")
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), 200);
    assert_eq!(echo.text().await.unwrap(), "ping");
}

/// The log lines saying a component was loaded, once both are.
fn loaded_lines(server: &Server) -> Vec<String> {
    server.wait_for_log_count("loaded `", 2, Duration::from_secs(30));
    server
        .log()
        .lines()
        .filter(|l| l.contains("loaded `"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn precompiled_code_of_a_spin_apps_components_is_loaded_instead_of_compiled() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    let app = two_component_app();
    let pushed = push_precompiled_app(&registry, "team/app", app.path(), config.path());
    let subject = pushed["digest"].as_str().unwrap();
    let referrer = pushed["precompiled"].as_str().unwrap();

    // One referrer of the app's manifest, one code layer per component
    // layer, each tied to its component by digest.
    let index = registry
        .get_manifest("team/app", &referrers_tag(subject))
        .await;
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["digest"], referrer);
    let manifest = registry.get_manifest("team/app", referrer).await;
    assert_eq!(manifest["subject"]["digest"], subject);
    assert_eq!(manifest["artifactType"], PRECOMPILED_TYPE);
    assert_eq!(
        manifest["annotations"][ENGINE_KEY].as_str().unwrap().len(),
        64
    );
    let mut tied: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["annotations"][COMPONENT_DIGEST]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    tied.sort();
    let mut components: Vec<String> = ["hello", "echo"]
        .iter()
        .map(|name| sha256(&std::fs::read(guest(name)).unwrap()))
        .collect();
    components.sort();
    assert_eq!(tied, components);
    let mut code = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        code.push(
            registry
                .get_blob("team/app", layer["digest"].as_str().unwrap())
                .await,
        );
    }

    // An empty node that trusts the registry loads both: nothing compiles.
    let store = Store::new();
    let server = serve_fresh(
        &registry.reference("team/app:1"),
        &store,
        config.path(),
        &["--trust-precompiled", &registry.host],
    );
    let loaded = loaded_lines(&server);
    assert_eq!(
        server.log_count("using precompiled code"),
        2,
        "{}",
        server.log()
    );
    assert!(
        loaded
            .iter()
            .all(|l| l.contains("compiled code loaded from cache")),
        "{loaded:?}"
    );
    let mut entries: Vec<Vec<u8>> = compiled_entries(&store)
        .iter()
        .map(|e| std::fs::read(e).unwrap())
        .collect();
    entries.sort();
    code.sort();
    assert_eq!(entries, code, "the cache holds exactly the pushed code");
    assert_both_answer(&server).await;
    drop(server);

    // Without --trust-precompiled the node compiles, as ever.
    let store = Store::new();
    let server = serve_fresh(
        &registry.reference("team/app:1"),
        &store,
        config.path(),
        &[],
    );
    let loaded = loaded_lines(&server);
    assert!(
        loaded.iter().all(|l| !l.contains("from cache")),
        "{loaded:?}"
    );
    assert_eq!(server.log_count("using precompiled code"), 0);
    assert_both_answer(&server).await;
}

#[tokio::test]
async fn precompiled_code_of_an_app_tied_to_another_component_is_not_used() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    let app = two_component_app();
    let pushed = push_precompiled_app(&registry, "team/app", app.path(), config.path());
    let subject = pushed["digest"].as_str().unwrap();
    rewrite_referrer(&registry, "team/app", subject, |manifest| {
        manifest["layers"][0]["annotations"][COMPONENT_DIGEST] =
            json!(format!("sha256:{}", "1".repeat(64)));
    })
    .await;
    let store = Store::new();
    let server = serve_fresh(
        &registry.reference("team/app:1"),
        &store,
        config.path(),
        &["--trust-precompiled", &registry.host],
    );
    let loaded = loaded_lines(&server);
    let line = server.wait_for_log("refused", Duration::from_secs(5));
    assert!(
        line.contains("it was compiled from components") && line.contains("compiling"),
        "{line}"
    );
    assert_eq!(server.log_count("refused"), 1, "{}", server.log());
    assert_eq!(
        server.log_count("using precompiled code"),
        1,
        "{}",
        server.log()
    );
    assert_eq!(
        loaded.iter().filter(|l| l.contains("from cache")).count(),
        1,
        "only the component whose code is tied to it loads it: {loaded:?}"
    );
    assert_both_answer(&server).await;
}

// Signed precompiled code (`push --sign-key`, `serve --precompiled-signer`):
// cosign's key-based format, keys made with openssl as an operator would.

const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const COSIGN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";

/// `openssl` with `args`, which must succeed.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh ECDSA P-256 key pair in `dir`: (PKCS#8 private, SPKI public).
fn key_pair(dir: &Path, name: &str) -> (String, String) {
    let private = dir.join(format!("{name}.pem")).to_str().unwrap().to_owned();
    let public = dir.join(format!("{name}.pub")).to_str().unwrap().to_owned();
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &private,
    ]);
    openssl(&["pkey", "-in", &private, "-pubout", "-out", &public]);
    (private, public)
}

/// Pushes hello with its compiled code to `repository:1`, signed with
/// `key` when given; returns the push's JSON.
fn push_signed_hello(
    registry: &TestRegistry,
    repository: &str,
    key: Option<&str>,
    config: &Path,
) -> Value {
    let reference = registry.reference(&format!("{repository}:1"));
    let hello = guest("hello");
    let mut args = vec![
        "push",
        hello.to_str().unwrap(),
        &reference,
        "--precompiled",
        "--json",
    ];
    if let Some(key) = key {
        args.extend(["--sign-key", key]);
    }
    serde_json::from_str(&ok(wasmhost(&args, config))).expect("push --json prints JSON")
}

/// The cosign signature tag of manifest `digest`.
fn signature_tag(digest: &str) -> String {
    format!("{}.sig", referrers_tag(digest))
}

#[tokio::test]
async fn precompiled_code_signed_by_a_named_key_is_loaded_and_its_signature_is_cosigns() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = key_pair(keys.path(), "signer");
    let pushed = push_signed_hello(&registry, "team/signed", Some(&private), config.path());
    let referrer = pushed["precompiled"].as_str().unwrap();
    let tag = signature_tag(referrer);
    assert_eq!(
        pushed["precompiled_signature"],
        registry.reference(&format!("team/signed:{tag}"))
    );

    // cosign's layout: one simple-signing layer whose payload names the
    // referrer, its signature an annotation openssl verifies.
    let manifest = registry.get_manifest("team/signed", &tag).await;
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], SIMPLE_SIGNING);
    let payload = registry
        .get_blob("team/signed", layers[0]["digest"].as_str().unwrap())
        .await;
    assert_eq!(
        String::from_utf8(payload.clone()).unwrap(),
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{}"}},"image":{{"docker-manifest-digest":"{referrer}"}},"type":"cosign container image signature"}},"optional":null}}"#,
            registry.reference("team/signed")
        )
    );
    use base64::Engine as _;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(layers[0]["annotations"][COSIGN_SIGNATURE].as_str().unwrap())
        .unwrap();
    let payload_file = keys.path().join("payload.json");
    let signature_file = keys.path().join("signature.der");
    std::fs::write(&payload_file, &payload).unwrap();
    std::fs::write(&signature_file, &signature).unwrap();
    openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        &public,
        "-signature",
        signature_file.to_str().unwrap(),
        payload_file.to_str().unwrap(),
    ]);

    // Another signer's signature first (cosign adds one layer per
    // signing): it is passed over for the named key's.
    let (other, _) = key_pair(keys.path(), "other");
    plant_signature(&registry, "team/signed", &tag, referrer, &other, true).await;

    // A node that names the key loads the code: nothing compiles.
    let store = Store::new();
    let server = serve_fresh(
        &registry.reference("team/signed:1"),
        &store,
        config.path(),
        &[
            "--trust-precompiled",
            &registry.host,
            "--precompiled-signer",
            &public,
        ],
    );
    let line = server.wait_for_log("using precompiled code", Duration::from_secs(10));
    assert!(line.contains(&format!("signed by `{public}`")), "{line}");
    let line = server.wait_for_log("loaded `", Duration::from_secs(5));
    assert!(line.contains("compiled code loaded from cache"), "{line}");
    let (status, _) = common::get_blocking(&server.url("/"));
    assert_eq!(status, 200);

}

/// Adds to the signature manifest at `tag` (first, before the ones it
/// holds, or instead of them) a signature by `key` made with openssl, of
/// a payload naming `digest`.
async fn plant_signature(
    registry: &TestRegistry,
    repository: &str,
    tag: &str,
    digest: &str,
    key: &str,
    keep: bool,
) {
    let dir = tempfile::tempdir().unwrap();
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#,
        registry.reference(repository)
    );
    let payload_file = dir.path().join("payload.json");
    let signature_file = dir.path().join("signature.der");
    std::fs::write(&payload_file, &payload).unwrap();
    openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        key,
        "-out",
        signature_file.to_str().unwrap(),
        payload_file.to_str().unwrap(),
    ]);
    use base64::Engine as _;
    let signature =
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&signature_file).unwrap());
    let mut manifest = registry.get_manifest(repository, tag).await;
    let blob = registry.push_blob(repository, payload.as_bytes()).await;
    let mut layers = vec![json!({
        "mediaType": SIMPLE_SIGNING,
        "digest": blob,
        "size": payload.len(),
        "annotations": { COSIGN_SIGNATURE: signature },
    })];
    if keep {
        layers.extend(manifest["layers"].as_array().unwrap().iter().cloned());
    }
    manifest["layers"] = json!(layers);
    let (status, body) = registry
        .put_manifest(
            repository,
            tag,
            OCI_MANIFEST,
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn precompiled_code_not_signed_by_a_named_key_is_compiled() {
    let registry = TestRegistry::start();
    let config = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = key_pair(keys.path(), "signer");
    let (other, _) = key_pair(keys.path(), "other");
    // Each case: the key it is pushed with, whether its signature is then
    // replaced by one of the component's manifest, and the reason logged.
    let cases: [(Option<&str>, bool, &str); 3] = [
        (None, false, "it is not signed"),
        (Some(&other), false, "verifies with none of the named keys"),
        (Some(&private), true, "its payload signs sha256:"),
    ];
    for (i, (key, sign_the_component, why)) in cases.into_iter().enumerate() {
        let repository = format!("team/unsigned-{i}");
        let pushed = push_signed_hello(&registry, &repository, key, config.path());
        // A valid signature by the named key, of the component's manifest
        // rather than of the referrer: not a signature of the code.
        if sign_the_component {
            let tag = signature_tag(pushed["precompiled"].as_str().unwrap());
            let component = pushed["digest"].as_str().unwrap();
            plant_signature(&registry, &repository, &tag, component, &private, false).await;
        }
        let store = Store::new();
        let server = serve_fresh(
            &registry.reference(&format!("{repository}:1")),
            &store,
            config.path(),
            &[
                "--trust-precompiled",
                &registry.host,
                "--precompiled-signer",
                &public,
            ],
        );
        let line = server.wait_for_log("refused", Duration::from_secs(10));
        assert!(
            line.contains(why) && line.contains("--precompiled-signer") && line.contains("compiling"),
            "{why}: {line}"
        );
        let line = server.wait_for_log("loaded `", Duration::from_secs(10));
        assert!(!line.contains("from cache"), "{line}");
        assert_eq!(server.log_count("using precompiled code"), 0);
        let (status, _) = common::get_blocking(&server.url("/"));
        assert_eq!(status, 200);
    }
}

#[test]
fn a_key_file_that_cannot_be_used_stops_the_start_or_the_push_with_its_name() {
    let config = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = key_pair(keys.path(), "signer");
    let missing = keys.path().join("missing.pub");
    // No registry is reached: the keys are read first.
    let reference = "127.0.0.1:9/team/never:1";
    let serve = |signer: &str| {
        failed(wasmhost(
            &[
                "serve",
                reference,
                "--listen",
                "127.0.0.1:0",
                "--trust-precompiled",
                "127.0.0.1:9",
                "--precompiled-signer",
                signer,
            ],
            config.path(),
        ))
    };
    // A private key where the public one belongs.
    let err = serve(&private);
    assert!(
        err.contains("--precompiled-signer")
            && err.contains(&format!("`{private}`"))
            && err.contains("BEGIN PUBLIC KEY"),
        "{err}"
    );
    assert!(!err.contains("serving"), "{err}");
    let err = serve(missing.to_str().unwrap());
    assert!(err.contains("cannot read key file"), "{err}");
    // The public key where the private one belongs.
    let err = failed(wasmhost(
        &[
            "push",
            guest("hello").to_str().unwrap(),
            reference,
            "--precompiled",
            "--sign-key",
            &public,
        ],
        config.path(),
    ));
    assert!(
        err.contains("--sign-key") && err.contains(&format!("`{public}`")) && err.contains("PKCS#8"),
        "{err}"
    );
}
