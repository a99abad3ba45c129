//! A real registry for tests: Debian's `docker-registry` (the CNCF
//! distribution server), started on 127.0.0.1 port 0 (it logs the address
//! it bound) with storage in a temporary directory, optionally behind
//! htpasswd basic auth, and stopped when dropped.
//! `scripts/install-test-deps.sh` installs it.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
        Self::start_inner(None, None)
    }

    /// A registry that requires `user`/`password` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> TestRegistry {
        Self::start_inner(Some((user.to_owned(), password.to_owned())), None)
    }

    /// A registry that takes only bearer tokens, issued by a token service
    /// (see [`TokenService`]) to `user`/`password`.
    pub fn start_with_token_auth(user: &str, password: &str) -> TestRegistry {
        let dir = tempfile::tempdir().expect("tempdir");
        let service = TokenService::start(dir.path(), user, password);
        let config = format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            service.realm,
            service.cert.display()
        );
        let mut registry = Self::start_inner(None, Some((dir, config)));
        registry.credentials = Some((user.to_owned(), password.to_owned()));
        registry
    }

    fn start_inner(
        credentials: Option<(String, String)>,
        extra: Option<(tempfile::TempDir, String)>,
    ) -> TestRegistry {
        let (dir, extra_config) = match extra {
            Some((dir, config)) => (dir, config),
            None => (tempfile::tempdir().expect("tempdir"), String::new()),
        };
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:0\n",
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
        config.push_str(&extra_config);
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start docker-registry (run scripts/install-test-deps.sh)");
        let host = listening_address(&mut child);
        TestRegistry {
            child: Some(child),
            dir,
            host,
            credentials,
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

/// Reads the registry's log until it says `listening on ADDR` (the address
/// it bound, port 0 resolved), and returns ADDR; the rest of the log is
/// drained (and dropped) so the registry never blocks on a full pipe.
fn listening_address(child: &mut Child) -> String {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sent {
                continue;
            }
            match line.split("listening on ").nth(1) {
                Some(rest) => {
                    let addr = rest.split(['"', ' ', ',']).next().unwrap_or_default();
                    let _ = tx.send(Ok(addr.to_owned()));
                    sent = true;
                }
                None => seen.push(line),
            }
        }
        if !sent {
            let _ = tx.send(Err(seen.join("\n")));
        }
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(addr)) => addr,
        Ok(Err(log)) => panic!("docker-registry exited without listening:\n{log}"),
        Err(_) => {
            let _ = child.kill();
            panic!("docker-registry did not say where it listens within 10 s")
        }
    }
}

/// An address on this machine that refuses connections, and stays so for
/// as long as the returned socket lives: bound (so nothing else takes the
/// port) but not listening.
pub fn refusing_address() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("an address"))
        .expect("bind 127.0.0.1:0");
    let addr = socket.local_addr().expect("bound address");
    (socket, addr)
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

const SERVICE: &str = "wasmhost-test-registry";
const ISSUER: &str = "wasmhost-test-issuer";

/// A minimal token service of the kind Docker Hub, GHCR and Harbor run:
/// `GET /token?scope=…&service=…` with basic auth answers a JWT (RS256,
/// the signing certificate in `x5c`) granting the scopes asked for, which
/// the registry verifies against the certificate in its config. Signed
/// with the `openssl` command.
pub struct TokenService {
    /// The `realm` URL.
    pub realm: String,
    /// The certificate the registry trusts.
    pub cert: PathBuf,
}

impl TokenService {
    fn start(dir: &Path, user: &str, password: &str) -> TokenService {
        let key = dir.join("token-key.pem");
        let cert = dir.join("token-cert.pem");
        let status = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=wasmhost-test-token"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl req failed");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .expect("openssl x509");
        use base64::Engine as _;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der.stdout);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let user = user.to_owned();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &expected, &user, &key, &x5c);
            }
        });
        TokenService { realm, cert }
    }
}

fn answer(
    mut stream: std::net::TcpStream,
    expected: &str,
    user: &str,
    key: &Path,
    x5c: &str,
) -> std::io::Result<()> {
    use std::io::{BufRead as _, Write as _};
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorized = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization")
                && value.trim() == format!("Basic {expected}")
            {
                authorized = true;
            }
        }
    }
    if !authorized {
        let body = r#"{"details":"wrong user name or password"}"#;
        return write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let access: Vec<serde_json::Value> = query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("scope="))
        .map(|scope| scope.replace("%3A", ":").replace("%2F", "/").replace("%2C", ","))
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({ "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>() }))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    use base64::Engine as _;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "x5c": [x5c] });
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
        "iat": now, "jti": format!("{now}-{}", std::process::id()), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        url.encode(header.to_string()),
        url.encode(claims.to_string())
    );
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    openssl
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(signing_input.as_bytes())?;
    let signature = openssl.wait_with_output()?.stdout;
    let token = format!("{signing_input}.{}", url.encode(signature));
    let body =
        serde_json::json!({ "token": token, "access_token": token, "expires_in": 300 }).to_string();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A proxy in front of a registry that records the head of every request
/// it passes on. It asks the registry to close each connection after its
/// answer (`Connection: close`), so that every request of a client that
/// keeps connections open still arrives on a connection of its own, and
/// is recorded.
pub struct RecordingProxy {
    /// `127.0.0.1:<port>`, to use in references instead of the registry's.
    pub host: String,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    /// Starts a proxy to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> RecordingProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let host = listener.local_addr().expect("bound address").to_string();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (recorded, upstream) = (heads.clone(), upstream.to_owned());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (recorded, upstream) = (recorded.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = relay(client, &upstream, &recorded);
                });
            }
        });
        RecordingProxy { host, heads }
    }

    /// The heads recorded so far, request line first, one string each.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// Reads one request head from `client`, records it, and relays the
/// exchange to `upstream` with `Connection: close`.
fn relay(
    client: std::net::TcpStream,
    upstream: &str,
    recorded: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let name = line.split(':').next().unwrap_or_default();
        if !name.eq_ignore_ascii_case("connection") {
            head.push(line.trim_end().to_owned());
        }
    }
    recorded.lock().unwrap().push(head.join("\n"));
    let mut server = std::net::TcpStream::connect(upstream)?;
    for line in &head {
        write!(server, "{line}\r\n")?;
    }
    write!(server, "Connection: close\r\n\r\n")?;
    // Whatever the client sends after the head (a body) goes on as is.
    let buffered = reader.buffer().to_vec();
    server.write_all(&buffered)?;
    let (mut from_client, mut to_server) = (reader.into_inner(), server.try_clone()?);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
    });
    let mut to_client = client;
    std::io::copy(&mut server, &mut to_client)?;
    to_client.shutdown(std::net::Shutdown::Both)
}
