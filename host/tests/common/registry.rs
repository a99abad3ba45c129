//! A real registry for tests: Debian's `docker-registry` (the CNCF
//! distribution server), started on 127.0.0.1 and a free port with storage
//! in a temporary directory, optionally behind htpasswd basic auth, and
//! stopped when dropped. `scripts/install-test-deps.sh` installs it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running registry.
pub struct TestRegistry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`.
    pub host: String,
    /// `(user, password)` when started with basic auth.
    pub credentials: Option<(String, String)>,
}

impl TestRegistry {
    /// An anonymous registry.
    pub fn start() -> TestRegistry {
        Self::start_inner(None)
    }

    /// A registry that requires `user`/`password` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> TestRegistry {
        Self::start_inner(Some((user.to_owned(), password.to_owned())))
    }

    fn start_inner(credentials: Option<(String, String)>) -> TestRegistry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = &credentials {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (apache2-utils; run scripts/install-test-deps.sh)");
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry (run scripts/install-test-deps.sh)");
        let registry = TestRegistry {
            child: Some(child),
            dir,
            host,
            credentials,
        };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        while TcpStream::connect(&self.host).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "docker-registry did not listen on {}",
                self.host
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `<host>/<repository>`.
    pub fn reference(&self, repository: &str) -> String {
        format!("{}/{repository}", self.host)
    }

    /// `http://<host>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.host)
    }

    /// Stops the registry (it stays stopped).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The file that holds blob `digest` in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The registry's storage root.
    pub fn storage(&self) -> &Path {
        self.dir.path()
    }

    fn with_auth(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    /// Uploads a blob through the distribution API; returns its digest.
    pub async fn push_blob(&self, repository: &str, bytes: &[u8]) -> String {
        use sha2::Digest as _;
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
        let client = reqwest::Client::new();
        let start = self
            .with_auth(client.post(format!("{}/v2/{repository}/blobs/uploads/", self.base())))
            .send()
            .await
            .unwrap();
        assert_eq!(
            start.status(),
            202,
            "start upload: {}",
            start.text().await.unwrap()
        );
        let location = start.headers()["location"].to_str().unwrap().to_owned();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base())
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let done = self
            .with_auth(client.put(format!("{location}{sep}digest={digest}")))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            done.status(),
            201,
            "finish upload: {}",
            done.text().await.unwrap()
        );
        digest
    }

    /// PUTs a manifest; returns the registry's status and body.
    pub async fn put_manifest(
        &self,
        repository: &str,
        tag: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> (u16, String) {
        let response = self
            .with_auth(
                reqwest::Client::new()
                    .put(format!("{}/v2/{repository}/manifests/{tag}", self.base())),
            )
            .header("content-type", content_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// GETs a manifest with every manifest type accepted.
    pub async fn get_manifest(&self, repository: &str, tag: &str) -> serde_json::Value {
        let response = self
            .with_auth(
                reqwest::Client::new()
                    .get(format!("{}/v2/{repository}/manifests/{tag}", self.base())),
            )
            .header(
                "accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
                 application/vnd.docker.distribution.manifest.v2+json",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// GETs a blob.
    pub async fn get_blob(&self, repository: &str, digest: &str) -> Vec<u8> {
        let response = self
            .with_auth(
                reqwest::Client::new()
                    .get(format!("{}/v2/{repository}/blobs/{digest}", self.base())),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap().to_vec()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestRegistry {
    /// Writes a manifest straight into the registry's storage under `tag`,
    /// bypassing the validation the registry does on upload: how a
    /// compromised or older registry would serve a hostile document.
    pub fn inject_manifest(&self, repository: &str, tag: &str, bytes: &[u8]) -> String {
        use sha2::Digest as _;
        let hex = hex::encode(sha2::Sha256::digest(bytes));
        let digest = format!("sha256:{hex}");
        let blob = self.blob_file(&digest);
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, bytes).unwrap();
        let repo = self
            .dir
            .path()
            .join("data/docker/registry/v2/repositories")
            .join(repository)
            .join("_manifests");
        for link in [
            repo.join("revisions/sha256").join(&hex).join("link"),
            repo.join("tags").join(tag).join("current/link"),
            repo.join("tags")
                .join(tag)
                .join("index/sha256")
                .join(&hex)
                .join("link"),
        ] {
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::fs::write(&link, &digest).unwrap();
        }
        digest
    }
}
