//! Real servers from Debian packages for the outbound-service tests
//! (`scripts/install-test-deps.sh` installs them): each started on
//! 127.0.0.1 at a free port with a private data directory, and stopped
//! (killed) when dropped.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a freshly started server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A server process and where it listens.
pub struct Service {
    child: Child,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until_listening(child: &mut Child, port: u16, what: &str) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the server `command(port)` makes on a free port, retrying with
/// another port if it exits at once (someone took the port first: these
/// servers cannot report a port they picked themselves).
fn on_free_port(what: &str, dir: tempfile::TempDir, command: impl Fn(u16) -> Command) -> Service {
    for _ in 0..5 {
        let port = free_port();
        let mut child = command(port)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} (scripts/install-test-deps.sh installs it): {e}"));
        std::thread::sleep(Duration::from_millis(50));
        if let Ok(Some(_)) = child.try_wait() {
            continue;
        }
        wait_until_listening(&mut child, port, what);
        return Service {
            child,
            port,
            _dir: dir,
        };
    }
    panic!("could not start {what} on a free port");
}

/// `redis-server` with persistence off, in a scratch directory.
pub fn redis() -> Service {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    on_free_port("redis-server", dir, |port| {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&data);
        cmd
    })
}

/// Whether `program` is on PATH.
pub fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| Path::new(&dir).join(program).is_file())
    })
}

/// The `postgres` user's uid and gid (the Debian package creates it;
/// PostgreSQL refuses to run as root).
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a postgres user (scripts/install-test-deps.sh)")
    };
    (id("-u"), id("-g"))
}

fn postgres_bin(name: &str) -> std::path::PathBuf {
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL (scripts/install-test-deps.sh installs it)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no PostgreSQL `{name}`"))
}

/// A PostgreSQL server with a fresh cluster (trust authentication, user
/// `postgres`), `fsync` off: its data is scratch.
pub fn postgres() -> Service {
    start_postgres(None)
}

/// TLS for [`postgres_tls`]: the server's certificate chain and key (PEM).
pub struct PgTls<'a> {
    /// The certificate, PEM.
    pub cert_pem: &'a str,
    /// Its key, PEM.
    pub key_pem: &'a str,
}

/// Where [`postgres_tls`]'s user `postgres` logs in with: its password.
pub const PG_PASSWORD: &str = "tls-secret";

/// A PostgreSQL server that speaks TLS only: `ssl = on` with `tls`'s
/// certificate, TCP connections without TLS rejected (`hostnossl ...
/// reject`), TLS ones authenticated by SCRAM (user `postgres`, password
/// [`PG_PASSWORD`], so channel binding can be asked for).
pub fn postgres_tls(tls: PgTls<'_>) -> Service {
    start_postgres(Some(tls))
}

fn start_postgres(tls: Option<PgTls<'_>>) -> Service {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let (uid, gid) = postgres_user();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
    std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
    let status = Command::new(postgres_bin("initdb"))
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .uid(uid)
        .gid(gid)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("initdb");
    assert!(status.success(), "initdb failed");
    let mut settings = vec!["listen_addresses=127.0.0.1".to_owned(), "fsync=off".to_owned()];
    if let Some(tls) = &tls {
        for (name, text, mode) in [
            ("server.crt", tls.cert_pem, 0o644),
            ("server.key", tls.key_pem, 0o600),
        ] {
            let path = data.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        }
        // The socket in the scratch directory stays trusted: the harness
        // sets the password through it.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        settings.extend([
            "ssl=on".to_owned(),
            "ssl_cert_file=server.crt".to_owned(),
            "ssl_key_file=server.key".to_owned(),
        ]);
    }
    for _ in 0..5 {
        let port = free_port();
        let mut command = Command::new(postgres_bin("postgres"));
        command
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()]);
        for setting in &settings {
            command.args(["-c", setting]);
        }
        let mut child = command
            .arg("-k")
            .arg(dir.path())
            .uid(uid)
            .gid(gid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres");
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(Some(_)) = child.try_wait() {
            continue;
        }
        wait_until_listening(&mut child, port, "postgres");
        // Listening comes before accepting queries: wait for those too
        // (over the Unix socket, which every cluster here trusts).
        let sql = if tls.is_some() {
            format!("ALTER USER postgres PASSWORD '{PG_PASSWORD}'")
        } else {
            "SELECT 1".to_owned()
        };
        let started = Instant::now();
        while !Command::new("psql")
            .arg("-h")
            .arg(dir.path())
            .args(["-p", &port.to_string(), "-U", "postgres", "-c", &sql])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "postgres never accepted queries"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        return Service {
            child,
            port,
            _dir: dir,
        };
    }
    panic!("could not start postgres on a free port");
}

/// `mosquitto`, anonymous clients allowed, persistence off.
pub fn mosquitto() -> Service {
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().to_owned();
    let program = ["/usr/sbin/mosquitto", "mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).is_file() || installed(p))
        .expect("mosquitto (scripts/install-test-deps.sh installs it)");
    on_free_port("mosquitto", dir, |port| {
        let config = config_dir.join(format!("mosquitto-{port}.conf"));
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let mut cmd = Command::new(program);
        cmd.arg("-c").arg(config);
        cmd
    })
}

/// A MariaDB server (what Debian ships for MySQL) with a fresh data
/// directory, binary log and durability off (its data is scratch), and
/// database `spin_dev` that user `spin` (password `spin`) may use: the
/// names Spin's own MySQL tests use.
pub fn mariadb() -> Service {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let status = Command::new("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            // Runs as root (CI does): the server must be told that is meant.
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("mariadb-install-db (scripts/install-test-deps.sh installs it)");
    assert!(status.success(), "mariadb-install-db failed");
    let server = ["/usr/sbin/mariadbd", "mariadbd"]
        .into_iter()
        .find(|p| Path::new(p).is_file() || installed(p))
        .expect("mariadbd (scripts/install-test-deps.sh installs it)");
    let root = dir.path().to_owned();
    let service = on_free_port("mariadbd", dir, |port| {
        let mut cmd = Command::new(server);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", root.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", root.join("mysqld.pid").display()))
            .arg(format!("--port={port}"))
            .args([
                "--user=root",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-buffer-pool-size=16M",
            ]);
        cmd
    });
    let setup = "CREATE DATABASE spin_dev; \
                 CREATE USER 'spin'@'%' IDENTIFIED BY 'spin'; \
                 GRANT ALL ON spin_dev.* TO 'spin'@'%';";
    let started = Instant::now();
    // Listening comes before accepting logins: retry until it takes.
    while !Command::new("mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1", "-u", "root"])
        .arg(format!("--port={}", service.port))
        .args(["-e", setup])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "mariadbd never accepted the setup statements"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    service
}
