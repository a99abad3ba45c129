//! The Spin platform beyond HTTP, variables and key-value: SQLite, LLM,
//! wasi:keyvalue, wasi:config, the outbound database interfaces, and
//! components written in Python, end to end through the real binary.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{fixture, get_text, guest, http1, Server};

/// Writes `spin.toml` into `dir`, `{name}` standing for guest `name`
/// (wasm32-wasip2), `{python}` and `{js}` for the Python and JavaScript
/// fixtures.
fn write_manifest(dir: &Path, body: &str) -> std::path::PathBuf {
    let mut text = body.to_owned();
    for (name, path) in [
        ("{python}", "python/spin-py.wasm"),
        ("{js}", "js/spin-js.wasm"),
    ] {
        if text.contains(name) {
            text = text.replace(name, fixture(path).to_str().unwrap());
        }
    }
    for name in [
        "hello",
        "spin-sdk-sqlite",
        "spin-sdk-kv",
        "spin-sdk-pg",
        "spin-sdk-mysql",
        "spin-sdk-mqtt",
        "spin-sdk7",
        "spin-v1-http",
        "spin-sdk-outbound",
    ] {
        text = text.replace(&format!("{{{name}}}"), guest(name).to_str().unwrap());
    }
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const SQLITE_APP: &str = r#"
spin_manifest_version = 2
[application]
name = "sqlite"
[[trigger.http]]
route = "/sql/..."
component = "db"
[[trigger.http]]
route = "/nodb/..."
component = "nodb"
[component.db]
source = "{spin-sdk-sqlite}"
sqlite_databases = ["default"]
[component.nodb]
source = "{spin-sdk-sqlite}"
"#;

async fn sql(
    client: &reqwest::Client,
    server: &Server,
    db: &str,
    params: &str,
    statement: &str,
) -> String {
    client
        .post(server.url(&format!("/sql/{db}?{params}")))
        .body(statement.to_owned())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_spin_sdk_component_runs_sqlite_statements_with_every_value_type() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), SQLITE_APP);
    let server = Server::serve(
        &manifest,
        &[
            "--sqlite",
            "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)",
        ],
    );
    let client = http1();
    let inserted = sql(
        &client,
        &server,
        "default",
        "p=i:-7&p=r:2.5&p=t:hello&p=b:00ff&p=n:",
        "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
    )
    .await;
    assert_eq!(inserted, "columns=[] rows=[] rowid=1 changes=1");
    let selected = sql(
        &client,
        &server,
        "default",
        "p=i:-7",
        "SELECT * FROM t WHERE i = ?",
    )
    .await;
    assert_eq!(
        selected,
        r#"columns=["i", "r", "s", "b", "n"] rows=[[Value::Integer(-7), Value::Real(2.5), Value::Text("hello"), Value::Blob([0, 255]), Value::Null]] rowid=1 changes=1"#
    );
    // SQLite's own message comes back as Spin's `io` error.
    let bad = sql(&client, &server, "default", "", "SELEKT 1").await;
    assert!(
        bad.starts_with("Error::Io(") && bad.contains("syntax error"),
        "{bad}"
    );
    // The database is `sqlite_db.db` in the state directory, as in Spin.
    assert!(dir.path().join(".wasmhost/sqlite_db.db").exists());
}

#[tokio::test]
async fn databases_not_granted_by_sqlite_databases_are_access_denied() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), SQLITE_APP);
    let server = Server::serve(&manifest, &[]);
    let client = http1();
    assert_eq!(
        get_text(&client, server.url("/sql/open/default")).await,
        "opened"
    );
    assert_eq!(
        get_text(&client, server.url("/sql/open/other")).await,
        "Error::AccessDenied"
    );
    assert_eq!(
        get_text(&client, server.url("/nodb/sql/open/default")).await,
        "Error::AccessDenied"
    );
}

#[test]
fn a_database_named_but_not_defined_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        &SQLITE_APP.replace(
            r#"sqlite_databases = ["default"]"#,
            r#"sqlite_databases = ["default", "orders"]"#,
        ),
    );
    let failed = Server::start_failing(&[
        "serve",
        manifest.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_ne!(failed.code, Some(0));
    assert!(
        failed.stderr.contains(
            "component `db`: SQLite database `orders` is not defined; define it in a runtime config file (`--runtime-config-file`) as `[sqlite_database.orders]` with `type = \"spin\"`"
        ),
        "{}",
        failed.stderr
    );
}

#[tokio::test]
async fn a_runtime_config_places_databases_and_sqlite_flags_run_a_file_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        &SQLITE_APP.replace(
            r#"sqlite_databases = ["default"]"#,
            r#"sqlite_databases = ["default", "orders"]"#,
        ),
    );
    let config = dir.path().join("rc.toml");
    std::fs::write(
        &config,
        "[sqlite_database.orders]\ntype = \"spin\"\npath = \"data/orders.db\"\n",
    )
    .unwrap();
    let schema = dir.path().join("schema.sql");
    std::fs::write(
        &schema,
        "CREATE TABLE o (id INTEGER); INSERT INTO o VALUES (41);",
    )
    .unwrap();
    let server = Server::serve(
        &manifest,
        &[
            "--runtime-config-file",
            config.to_str().unwrap(),
            "--sqlite",
            &format!("@{}", schema.display()),
            "--sqlite",
            "INSERT INTO o VALUES (42)",
        ],
    );
    let client = http1();
    // `--sqlite` runs against `default`.
    let rows = sql(
        &client,
        &server,
        "default",
        "",
        "SELECT id FROM o ORDER BY id",
    )
    .await;
    assert!(
        rows.contains("rows=[[Value::Integer(41)], [Value::Integer(42)]]"),
        "{rows}"
    );
    let created = sql(&client, &server, "orders", "", "CREATE TABLE x (a)").await;
    assert!(created.starts_with("columns=[]"), "{created}");
    assert!(dir.path().join("data/orders.db").exists());
}

#[tokio::test]
async fn every_write_a_guest_saw_succeed_survives_a_sigkill_under_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), SQLITE_APP);
    let mut server = Server::serve(
        &manifest,
        &[
            "--sqlite",
            "CREATE TABLE IF NOT EXISTS w (id INTEGER PRIMARY KEY)",
        ],
    );
    let client = http1();
    // Writers keep inserting until the host is killed under them; each
    // remembers the ids whose insert answered success.
    const WRITERS: u64 = 8;
    let url = server.url("/sql/default");
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0..10_000u64 {
                    let id = n * WRITERS + w;
                    let sent = client
                        .post(format!("{url}?p=i:{id}"))
                        .body("INSERT INTO w (id) VALUES (?)")
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    let Ok(resp) = sent else { break };
                    match resp.text().await {
                        Ok(text) if text.ends_with("changes=1") => acknowledged.push(id),
                        _ => break,
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert!(
        acknowledged.len() > 20,
        "only {} writes went through",
        acknowledged.len()
    );
    let restarted = Server::serve(&manifest, &[]);
    let count = sql(&client, &restarted, "default", "", "SELECT COUNT(*) FROM w").await;
    let stored: usize = count
        .split("Value::Integer(")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{count}"));
    assert!(
        stored >= acknowledged.len(),
        "{stored} rows stored, {} acknowledged",
        acknowledged.len()
    );
    for id in acknowledged.iter().step_by(17) {
        let row = sql(
            &client,
            &restarted,
            "default",
            &format!("p=i:{id}"),
            "SELECT id FROM w WHERE id = ?",
        )
        .await;
        assert!(
            row.contains(&format!("Value::Integer({id})")),
            "acknowledged id {id} lost: {row}"
        );
    }
}

/// A local HTTP server answering `GET /` with `Hello, world!`, for the
/// Python component's outbound request.
fn upstream() -> Server {
    Server::serve(&guest("hello"), &[])
}

const PYTHON_APP: &str = r#"
spin_manifest_version = 2
[application]
name = "python"
[variables]
upstream_port = { required = true }
redis_port = { required = true }
greeting = { default = "hi from the manifest" }
[[trigger.http]]
route = "/py/..."
component = "python"
[[trigger.http]]
route = "/rust/..."
component = "rust"
[component.python]
source = "{python}"
key_value_stores = ["default"]
sqlite_databases = ["default"]
ai_models = ["llama2-chat"]
allowed_outbound_hosts = ["http://127.0.0.1:{{ upstream_port }}", "redis://127.0.0.1:{{ redis_port }}"]
[component.python.variables]
greeting = "{{ greeting }}"
upstream = "http://127.0.0.1:{{ upstream_port }}"
redis_address = "redis://127.0.0.1:{{ redis_port }}"
[[trigger.http]]
route = "/closed/..."
component = "closed"
[component.closed]
source = "{python}"
allowed_outbound_hosts = ["http://127.0.0.1:{{ upstream_port }}"]
[component.closed.variables]
upstream = "http://127.0.0.1:{{ upstream_port }}"
redis_address = "redis://127.0.0.1:{{ redis_port }}"
[component.rust]
source = "{hello}"
"#;

#[tokio::test]
async fn a_python_spin_sdk_component_uses_key_value_variables_sqlite_outbound_http_redis_llm_wasi_config_and_wasi_keyvalue(
) {
    let upstream = upstream();
    let redis = common::services::redis();
    let port = upstream.addr.rsplit(':').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), PYTHON_APP);
    let server = Server::serve(
        &manifest,
        &[
            "--variable",
            &format!("upstream_port={port}"),
            "--variable",
            &format!("redis_port={}", redis.port),
        ],
    );
    let client = http1();
    // In order: the counters and row ids count requests.
    let cases = [
        ("/py/hello", "Hello from Python"),
        ("/rust/", "Hello, world!\n"),
        ("/py/kv", "1"),
        ("/py/kv", "2"),
        ("/py/vars", "hi from the manifest"),
        ("/py/sqlite", "1 rows, last id 1"),
        ("/py/sqlite", "2 rows, last id 2"),
        ("/py/outbound", "Hello, world!\n"),
        ("/py/redis", "from python"),
        // wasi:config over the same variables; a name no variable has is none.
        ("/py/config", "hi from the manifest|None"),
        // wasi:keyvalue over the same store; a cursor is refused as Spin does.
        (
            "/py/wasi-kv",
            "5|old|new|Error_Other(value='list_keys: cursor not supported')",
        ),
        // Not in allowed_outbound_hosts: Spin's `invalid-address`, no connection.
        ("/closed/redis", "error: Error_InvalidAddress()"),
    ];
    for (path, expected) in cases {
        assert_eq!(
            get_text(&client, server.url(path)).await,
            expected,
            "{path}"
        );
    }
    // No `[llm_compute]`: Spin's own error, as a value the guest handles.
    let llm = client.get(server.url("/py/llm")).send().await.unwrap();
    assert_eq!(llm.status(), 500);
    assert_eq!(
        llm.text().await.unwrap(),
        "error: Error_RuntimeError(value='Local LLM operations are not supported in this version of Spin.')"
    );
}

const JS_APP: &str = r#"
spin_manifest_version = 2
[application]
name = "js"
[variables]
upstream_port = { required = true }
[[trigger.http]]
route = "/js/..."
component = "js"
[[trigger.http]]
route = "/closed/..."
component = "closed"
[[trigger.http]]
route = "/py/..."
component = "python"
[[trigger.http]]
route = "/rust/..."
component = "rust"
[component.js]
source = "{js}"
key_value_stores = ["default"]
sqlite_databases = ["default"]
allowed_outbound_hosts = ["http://127.0.0.1:{{ upstream_port }}"]
variables = { greeting = "hi from JavaScript's manifest" }
[component.closed]
source = "{js}"
[component.python]
source = "{python}"
[component.rust]
source = "{hello}"
"#;

#[tokio::test]
async fn a_javascript_component_uses_key_value_variables_sqlite_and_fetch_beside_rust_and_python() {
    let upstream = upstream();
    let port = upstream.addr.rsplit(':').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), JS_APP);
    let server = Server::serve(&manifest, &["--variable", &format!("upstream_port={port}")]);
    let client = http1();
    let target = format!("http://127.0.0.1:{port}/");
    // In order: the counter and the table's rows count requests.
    let cases = [
        ("/js/hello".to_owned(), "Hello from JavaScript".to_owned()),
        ("/py/hello".to_owned(), "Hello from Python".to_owned()),
        ("/rust/".to_owned(), "Hello, world!\n".to_owned()),
        ("/js/count".to_owned(), "1".to_owned()),
        ("/js/count".to_owned(), "2".to_owned()),
        (
            "/js/var?greeting".to_owned(),
            "hi from JavaScript's manifest".to_owned(),
        ),
        (
            "/js/sql".to_owned(),
            "columns=n,s rows=integer:42,text:forty-two".to_owned(),
        ),
        (
            format!("/js/fetch?{target}"),
            "200 Hello, world!\n".to_owned(),
        ),
        // No grant, no variable, no outbound host: Spin's errors, as values.
        (
            "/closed/count".to_owned(),
            r#"error: {"tag":"access-denied"}"#.to_owned(),
        ),
        (
            "/closed/var?greeting".to_owned(),
            r#"error: {"tag":"undefined","val":"no variable `greeting` for this component"}"#
                .to_owned(),
        ),
    ];
    for (path, expected) in cases {
        assert_eq!(
            get_text(&client, server.url(&path)).await,
            expected,
            "{path}"
        );
    }
    let denied = get_text(&client, server.url(&format!("/closed/fetch?{target}"))).await;
    assert!(denied.starts_with("error: "), "{denied}");
}

const BASELINE_APP: &str = r#"
spin_manifest_version = 2
[application]
name = "baseline"
[[trigger.http]]
route = "/js/..."
component = "js"
[[trigger.http]]
route = "/py/..."
component = "python"
[component.js]
source = "{js}"
[component.python]
source = "{python}"
"#;

#[tokio::test]
async fn javascript_and_python_components_answer_from_baseline_code_with_an_empty_cache() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), BASELINE_APP);
    let server = Server::serve(&manifest, &["--no-cache"]);
    // Winch compiled both (the address is printed once every component
    // is loaded), so neither waited for Cranelift.
    server.wait_for_log_count("serving baseline (Winch) code", 2, Duration::from_secs(5));
    let client = http1();
    assert_eq!(
        get_text(&client, server.url("/js/hello")).await,
        "Hello from JavaScript"
    );
    assert_eq!(
        get_text(&client, server.url("/py/hello")).await,
        "Hello from Python"
    );
}

/// A server speaking Spin's remote LLM protocol: `POST /infer` answers
/// `{"text": "remote says hi", ...}`; every request is recorded
/// (request line, authorization, body).
async fn llm_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Head, then as much body as content-length says.
            let request = loop {
                let n = socket.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break Some((head.to_owned(), body.to_owned()));
                    }
                }
            };
            let Some((head, body)) = request else {
                continue;
            };
            let auth = head
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                .unwrap_or_default()
                .to_owned();
            record.lock().unwrap().push(format!(
                "{} | {auth} | {body}",
                head.lines().next().unwrap_or_default()
            ));
            let answer = r#"{"text":"remote says hi","usage":{"promptTokenCount":2,"generatedTokenCount":3}}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    (port, seen)
}

#[tokio::test]
async fn llm_compute_remote_http_forwards_inference_over_spins_protocol() {
    let (llm_port, seen) = llm_server().await;
    let upstream = upstream();
    let port = upstream.addr.rsplit(':').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), PYTHON_APP);
    let config = dir.path().join("rc.toml");
    std::fs::write(
        &config,
        format!("[llm_compute]\ntype = \"remote_http\"\nurl = \"http://127.0.0.1:{llm_port}/\"\nauth_token = \"secret\"\n"),
    )
    .unwrap();
    let server = Server::serve(
        &manifest,
        &[
            "--variable",
            &format!("upstream_port={port}"),
            "--variable",
            "redis_port=1",
            "--runtime-config-file",
            config.to_str().unwrap(),
        ],
    );
    let client = http1();
    assert_eq!(
        get_text(&client, server.url("/py/llm")).await,
        "remote says hi"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("POST /infer HTTP/1.1 | authorization: bearer secret | "),
        "{seen:?}"
    );
    assert!(seen[0].contains(r#""model":"llama2-chat""#), "{seen:?}");
    assert!(seen[0].contains(r#""prompt":"say hi""#), "{seen:?}");
    assert!(seen[0].contains(r#""maxTokens":100"#), "{seen:?}");
    // A model the component's `ai_models` does not name never leaves the host.
    let denied = client
        .get(server.url("/closed/llm"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        denied.contains("The component does not have access to use 'llama2-chat'"),
        "{denied}"
    );
}

/// Serves an app of two instances of `source`: `/<route>/...` may reach
/// `allowed` (an `allowed_outbound_hosts` entry), `/closed/...` may reach
/// nothing; both get the component variable `variable` (name, template).
/// `{{ port }}` is an application variable set to `port`; `flags` go to
/// `wasmhost serve` too.
fn serve_allowed_and_closed(
    dir: &Path,
    route: &str,
    source: &str,
    allowed: &str,
    (name, template): (&str, &str),
    port: u16,
    flags: &[&str],
) -> Server {
    let manifest = write_manifest(
        dir,
        &format!(
            r#"
spin_manifest_version = 2
[application]
name = "{route}"
[variables]
port = {{ required = true }}
[[trigger.http]]
route = "/{route}/..."
component = "open"
[[trigger.http]]
route = "/closed/..."
component = "closed"
[component.open]
source = "{source}"
allowed_outbound_hosts = ["{allowed}"]
variables = {{ {name} = "{template}" }}
[component.closed]
source = "{source}"
variables = {{ {name} = "{template}" }}
"#
        ),
    );
    let port = format!("port={port}");
    let mut args = vec!["--variable", &port];
    args.extend_from_slice(flags);
    Server::serve(&manifest, &args)
}

#[tokio::test]
async fn spin_sdk_components_query_postgres_through_the_v4_and_v2_interfaces_where_allowed() {
    let postgres = common::services::postgres();
    let dir = tempfile::tempdir().unwrap();
    let server = serve_allowed_and_closed(
        dir.path(),
        "pg",
        "{spin-sdk-pg}",
        "postgres://127.0.0.1:{{ port }}",
        (
            "pg_address",
            "postgres://postgres@127.0.0.1:{{ port }}/postgres",
        ),
        postgres.port,
        &[],
    );
    let client = http1();
    let v4 = get_text(&client, server.url("/pg/v4")).await;
    assert!(v4.starts_with("inserted=1 columns=["), "{v4}");
    assert!(
        v4.contains(r#"rows=[[DbValue::Int32(7), DbValue::Str("seven"), DbValue::Date((2024, 2, 29)), DbValue::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8"), DbValue::Floating64(2.5), DbValue::Boolean(true)]]"#),
        "{v4}"
    );
    assert!(v4.contains(r#"("tag", DbDataType::Uuid)"#), "{v4}");
    let v2 = get_text(&client, server.url("/pg/v2")).await;
    assert_eq!(v2, r#"rows=[[DbValue::Str("seven")]]"#);
    // 4.x's decimal, ranges and interval, both ways: as parameters read
    // back, and from PostgreSQL's own literals (integer ranges come back
    // normalized to [lower, upper), as PostgreSQL stores them).
    assert_eq!(
        get_text(&client, server.url("/pg/v4-types")).await,
        concat!(
            "types=[DbDataType::Decimal, DbDataType::RangeInt32, DbDataType::RangeInt64, DbDataType::RangeDecimal, DbDataType::ArrayDecimal, DbDataType::Interval] ",
            r#"sent=[[DbValue::Decimal("-1234.5678"), DbValue::RangeInt32((Some((2, RangeBoundKind::Inclusive)), Some((6, RangeBoundKind::Exclusive)))), DbValue::RangeInt64((None, Some((1099511627776, RangeBoundKind::Exclusive)))), DbValue::RangeDecimal((Some(("1.5", RangeBoundKind::Inclusive)), None)), DbValue::ArrayDecimal([Some("0.1"), None]), DbValue::Interval(Interval { micros: 3000001, days: 2, months: 14 })]] "#,
            r#"literal=[[DbValue::Decimal("12.50"), DbValue::RangeInt32((Some((1, RangeBoundKind::Inclusive)), Some((6, RangeBoundKind::Exclusive)))), DbValue::RangeInt32((None, None)), DbValue::Interval(Interval { micros: 3000000, days: 2, months: 12 })]]"#
        )
    );
    // Not in allowed_outbound_hosts: Spin's error text, no connection.
    let denied = get_text(&client, server.url("/closed/v4")).await;
    assert_eq!(
        denied,
        format!(
            "Error::ConnectionFailed(\"address postgres://127.0.0.1:{} is not permitted\")",
            postgres.port
        )
    );
}

#[tokio::test]
async fn spin_sdk_components_query_mysql_where_allowed_within_the_request_deadline() {
    let mariadb = common::services::mariadb();
    let dir = tempfile::tempdir().unwrap();
    let server = serve_allowed_and_closed(
        dir.path(),
        "mysql",
        "{spin-sdk-mysql}",
        "mysql://127.0.0.1:{{ port }}",
        (
            "mysql_address",
            "mysql://spin:spin@127.0.0.1:{{ port }}/spin_dev",
        ),
        mariadb.port,
        &["--timeout", "2s"],
    );
    let client = http1();
    // Every value type through typed parameters, and back with Spin's
    // column types.
    let written = get_text(&client, server.url("/mysql/write")).await;
    assert_eq!(
        written,
        "columns=[(\"id\", DbDataType::Int32), (\"name\", DbDataType::Str), \
         (\"small\", DbDataType::Int8), (\"big\", DbDataType::Uint64), \
         (\"price\", DbDataType::Floating64), (\"data\", DbDataType::Binary), \
         (\"note\", DbDataType::Str)] \
         rows=[[DbValue::Int32(7), DbValue::Str(\"seven\"), DbValue::Int8(-3), \
         DbValue::Uint64(18446744073709551615), DbValue::Floating64(2.5), \
         DbValue::Binary([1, 2, 3]), DbValue::DbNull]]"
    );
    assert_eq!(
        get_text(&client, server.url("/mysql/read")).await,
        r#"rows=[[DbValue::Str("seven")]]"#
    );
    let refused = get_text(&client, server.url("/mysql/bad")).await;
    assert!(
        refused.starts_with("Error::QueryFailed(") && refused.contains("no_such_table"),
        "{refused}"
    );
    // A query outliving the request deadline ends with the request (504),
    // and the pool still serves the next one.
    let started = std::time::Instant::now();
    let slow = client.get(server.url("/mysql/sleep")).send().await.unwrap();
    assert_eq!(slow.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        get_text(&client, server.url("/mysql/read")).await,
        r#"rows=[[DbValue::Str("seven")]]"#
    );
    // Not in allowed_outbound_hosts: Spin's error text, no connection.
    let denied = get_text(&client, server.url("/closed/read")).await;
    assert_eq!(
        denied,
        format!(
            "Error::ConnectionFailed(\"address mysql://spin:spin@127.0.0.1:{}/spin_dev is not permitted\")",
            mariadb.port
        )
    );
}

#[tokio::test]
async fn a_spin_sdk_7_component_streams_mysql_rows_through_spin_mysql_3() {
    let mariadb = common::services::mariadb();
    let dir = tempfile::tempdir().unwrap();
    let server = serve_allowed_and_closed(
        dir.path(),
        "p3",
        "{spin-sdk7}",
        "mysql://127.0.0.1:{{ port }}",
        ("unused", "{{ port }}"),
        mariadb.port,
        &[],
    );
    let client = http1();
    let address = format!("mysql://spin:spin@127.0.0.1:{}/spin_dev", mariadb.port);
    assert_eq!(
        get_text(&client, server.url(&format!("/p3/mysql?{address}"))).await,
        r#"columns=["id:DbDataType::Int32", "name:DbDataType::Str"] rows=["DbValue::Int32(3) DbValue::Str(\"three\")"]"#
    );
    let denied = get_text(&client, server.url(&format!("/closed/mysql?{address}"))).await;
    assert_eq!(
        denied,
        format!(
            "error: MysqlError(Error::ConnectionFailed(\"address {address} is not permitted\"))"
        )
    );
}

#[tokio::test]
async fn spin_1s_outbound_http_sends_where_allowed_and_says_destination_not_allowed_elsewhere() {
    let upstream = upstream();
    let port: u16 = upstream.addr.rsplit(':').next().unwrap().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = serve_allowed_and_closed(
        dir.path(),
        "v1",
        "{spin-v1-http}",
        "http://127.0.0.1:{{ port }}",
        ("unused", "{{ port }}"),
        port,
        &[],
    );
    let client = http1();
    let target = format!("http://127.0.0.1:{port}/");
    assert_eq!(
        get_text(&client, server.url(&format!("/v1/get?{target}"))).await,
        "200 Hello, world!\n"
    );
    let denied = get_text(&client, server.url(&format!("/closed/get?{target}"))).await;
    assert!(
        denied.contains(r#"name: "destination-not-allowed""#),
        "{denied}"
    );
    let invalid = get_text(&client, server.url("/v1/get?not-a-url")).await;
    assert!(invalid.contains(r#"name: "invalid-url""#), "{invalid}");
}

#[tokio::test]
async fn a_v1_manifest_is_served_with_its_base_route_and_its_sqlite_grant() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
spin_manifest_version = "1"
name = "old-app"
version = "1.0.0"
trigger = { type = "http", base = "/v1" }

[[component]]
id = "hello_world"
source = "{hello}"
[component.trigger]
route = "/hello"

[[component]]
id = "db"
source = "{spin-sdk-sqlite}"
sqlite_databases = ["default"]
[component.trigger]
route = "/sql/..."
"#,
    );
    let server = Server::serve(&manifest, &[]);
    let client = http1();
    assert_eq!(
        get_text(&client, server.url("/v1/hello")).await,
        "Hello, world!\n"
    );
    assert_eq!(
        get_text(&client, server.url("/v1/sql/open/default")).await,
        "opened"
    );
}

/// A Spin SDK key-value counter whose `default` store is the Redis at
/// `port`: its manifest and runtime config in `dir`, and the flags naming
/// the latter.
fn redis_counter_app(dir: &Path, port: u16) -> (std::path::PathBuf, Vec<String>) {
    let manifest = write_manifest(
        dir,
        r#"
spin_manifest_version = 2
[application]
name = "replicas"
[[trigger.http]]
route = "/kv/..."
component = "counter"
[component.counter]
source = "{spin-sdk-kv}"
key_value_stores = ["default"]
"#,
    );
    let config = dir.join("rc.toml");
    std::fs::write(
        &config,
        format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    (
        manifest,
        vec![
            "--runtime-config-file".into(),
            config.to_str().unwrap().into(),
        ],
    )
}

#[tokio::test]
async fn two_wasmhost_processes_share_one_key_value_store_on_redis() {
    let redis = common::services::redis();
    let dir = tempfile::tempdir().unwrap();
    let (manifest, args) = redis_counter_app(dir.path(), redis.port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = Server::serve(&manifest, &args);
    let b = Server::serve(&manifest, &args);
    let client = http1();
    // One counter, whichever replica answers.
    assert_eq!(get_text(&client, a.url("/kv/count")).await, "1");
    assert_eq!(get_text(&client, b.url("/kv/count")).await, "2");
    assert_eq!(get_text(&client, a.url("/kv/count")).await, "3");
    // Nothing was written locally.
    assert!(!dir.path().join(".wasmhost/key_value.redb").exists());
}

#[tokio::test]
async fn a_redis_key_value_store_whose_server_is_down_fails_the_call_not_the_host() {
    let port = common::services::redis().port;
    let dir = tempfile::tempdir().unwrap();
    let (manifest, args) = redis_counter_app(dir.path(), port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::serve(&manifest, &args);
    let resp = tokio::time::timeout(
        Duration::from_secs(15),
        http1().get(server.url("/kv/count")).send(),
    )
    .await
    .expect("a store that is down must not hang the request")
    .unwrap();
    // The SDK turns the store's error into a failed handler: 500, and the
    // host keeps serving.
    assert_eq!(resp.status(), 500);
    assert_eq!(
        http1()
            .get(server.url("/.well-known/spin/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// A subscriber to `topic` on the broker at `port`, subscribed when this
/// returns: what it receives arrives on the channel.
async fn subscribe(port: u16, topic: &str) -> tokio::sync::mpsc::UnboundedReceiver<Vec<u8>> {
    let mut options = rumqttc::MqttOptions::new(format!("test-{topic}"), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    let (subscriber, mut events) = rumqttc::AsyncClient::new(options, 10);
    subscriber
        .subscribe(topic, rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let (received_tx, received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        // The client lives as long as its event loop is polled.
        let _subscriber = subscriber;
        while let Ok(event) = events.poll().await {
            match event {
                rumqttc::Event::Incoming(rumqttc::Incoming::SubAck(_)) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p)) => {
                    let _ = received_tx.send(p.payload.to_vec());
                }
                _ => {}
            }
        }
    });
    subscribed
        .await
        .expect("the broker acknowledges the subscription");
    received
}

#[tokio::test]
async fn a_spin_sdk_component_publishes_over_mqtt_where_allowed() {
    let broker = common::services::mosquitto();
    let mut received = subscribe(broker.port, "wasmhost-test").await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve_allowed_and_closed(
        dir.path(),
        "mqtt",
        "{spin-sdk-mqtt}",
        "mqtt://127.0.0.1:{{ port }}",
        ("mqtt_address", "mqtt://127.0.0.1:{{ port }}"),
        broker.port,
        &[],
    );
    let client = http1();
    let published = client
        .post(server.url("/mqtt/wasmhost-test"))
        .body("hello broker")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(published, "published");
    let message = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("the message reaches the subscriber");
    assert_eq!(message, Some(b"hello broker".to_vec()));
    let denied = client
        .post(server.url("/closed/wasmhost-test"))
        .body("nope")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        denied,
        format!(
            "Error::ConnectionFailed(\"address mqtt://127.0.0.1:{} is not permitted\")",
            broker.port
        )
    );
}

#[tokio::test]
async fn a_spin_sdk_7_component_uses_sqlite_3_1_postgres_4_2_redis_3_and_mqtt_3_where_granted() {
    let (redis, postgres, broker) = (
        common::services::redis(),
        common::services::postgres(),
        common::services::mosquitto(),
    );
    let mut received = subscribe(broker.port, "p3").await;
    let dir = tempfile::tempdir().unwrap();
    let (r, p, m) = (redis.port, postgres.port, broker.port);
    let manifest = write_manifest(
        dir.path(),
        &format!(
            r#"
spin_manifest_version = 2
[application]
name = "p3-platform"
[[trigger.http]]
route = "/p3/..."
component = "open"
[[trigger.http]]
route = "/closed/..."
component = "closed"
[component.open]
source = "{{spin-sdk7}}"
sqlite_databases = ["default"]
allowed_outbound_hosts = ["redis://127.0.0.1:{r}", "postgres://127.0.0.1:{p}", "mqtt://127.0.0.1:{m}"]
[component.closed]
source = "{{spin-sdk7}}"
"#
        ),
    );
    let server = Server::serve(&manifest, &[]);
    let client = http1();
    let pg = format!("postgres://postgres@127.0.0.1:{p}/postgres");
    let rd = format!("redis://127.0.0.1:{r}");
    let mq = format!("mqtt://127.0.0.1:{m}");

    // spin:sqlite@3.1.0: open-async, execute-async (rows streamed),
    // last-insert-rowid-async, changes-async; every value type; two
    // statements at once on one connection.
    assert_eq!(
        get_text(&client, server.url("/p3/sqlite")).await,
        r#"rowid=1 changes=1 columns=["id", "name", "data", "score", "absent"] rows=["[Value::Integer(1), Value::Text(\"three\"), Value::Blob([1, 2, 3]), Value::Real(0.5), Value::Null]"] together=[Value::Integer(1)]/[Value::Text("three")]"#
    );
    let second = get_text(&client, server.url("/p3/sqlite")).await;
    assert!(second.starts_with("rowid=2 changes=1 "), "{second}");
    assert!(
        second.ends_with(r#" together=[Value::Integer(2)]/[Value::Text("three")]"#),
        "{second}"
    );
    // spin:postgres@4.2.0: open-async, then through the connection builder's
    // build-async; execute-async and query-async both ways.
    let expected = r#"inserted=1 columns=["id:DbDataType::Int32", "name:DbDataType::Str"] rows=["DbValue::Int32(3) DbValue::Str(\"three\")"]"#;
    assert_eq!(
        get_text(&client, server.url(&format!("/p3/pg?{pg}"))).await,
        expected
    );
    assert_eq!(
        get_text(&client, server.url(&format!("/p3/pg-builder?{pg}"))).await,
        expected
    );
    // spin:redis@3.0.0.
    assert_eq!(
        get_text(&client, server.url(&format!("/p3/redis?{rd}"))).await,
        r#"get=Some(Ok("p3-value")) incr=1 smembers=["a", "b"] execute=[RedisResult::Binary([104, 105])]"#
    );
    // spin:mqtt@3.0.0: the subscriber gets what the guest published.
    assert_eq!(
        get_text(&client, server.url(&format!("/p3/mqtt?{mq}"))).await,
        "published"
    );
    let message = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("the message reaches the subscriber");
    assert_eq!(message, Some(b"hello from p3".to_vec()));

    // Nothing granted: each capability's own refusal, as Spin words it.
    assert_eq!(
        get_text(&client, server.url("/closed/sqlite")).await,
        "error: Error::AccessDenied"
    );
    assert_eq!(
        get_text(&client, server.url(&format!("/closed/pg?{pg}"))).await,
        format!(
            "error: PgError(Error::ConnectionFailed(\"address postgres://127.0.0.1:{p} is not permitted\"))"
        )
    );
    assert_eq!(
        get_text(&client, server.url(&format!("/closed/redis?{rd}"))).await,
        "error: Error::InvalidAddress"
    );
    assert_eq!(
        get_text(&client, server.url(&format!("/closed/mqtt?{mq}"))).await,
        format!("error: Error::ConnectionFailed(\"address {mq} is not permitted\")")
    );
}

/// Writes `files` (name, text) into `dir/<sub>` and answers that directory.
fn write_files(dir: &Path, sub: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let at = dir.join(sub);
    std::fs::create_dir_all(&at).unwrap();
    for (name, text) in files {
        std::fs::write(at.join(name), text).unwrap();
    }
    at
}

#[tokio::test]
async fn postgres_over_tls_trusts_the_ca_client_tls_names_or_set_ca_root_gives_and_plain_tcp_is_refused(
) {
    use common::services::{postgres_tls, PgTls, PG_PASSWORD};
    use common::tls::TestCa;
    let ca = TestCa::new("wasmhost test CA");
    let leaf = ca.leaf(&["127.0.0.1", "localhost"], "postgres");
    let postgres = postgres_tls(PgTls {
        cert_pem: &leaf.cert_pem,
        key_pem: &leaf.key_pem,
    });
    let p = postgres.port;
    let dir = tempfile::tempdir().unwrap();
    // The runtime config in a directory of its own: its file paths are
    // relative to it, not to the manifest.
    let config_dir = write_files(
        dir.path(),
        "config",
        &[
            ("ca.pem", &ca.pem),
            (
                "rc.toml",
                "[[client_tls]]\ncomponent_ids = [\"trusting\"]\nhosts = [\"127.0.0.1\"]\nca_roots_file = \"ca.pem\"\n",
            ),
        ],
    );
    write_files(dir.path(), "certs", &[("ca.pem", &ca.pem)]);
    // `channel_binding=require`: SCRAM must bind to the TLS channel
    // (tls-server-end-point), or the login fails.
    let tls_address = format!(
        "postgres://postgres:{PG_PASSWORD}@127.0.0.1:{p}/postgres?sslmode=require&channel_binding=require"
    );
    let plain_address =
        format!("postgres://postgres:{PG_PASSWORD}@127.0.0.1:{p}/postgres?sslmode=disable");
    let allowed = format!("allowed_outbound_hosts = [\"postgres://127.0.0.1:{p}\"]");
    let manifest = write_manifest(
        dir.path(),
        &format!(
            r#"
spin_manifest_version = 2
[application]
name = "pg-tls"
[[trigger.http]]
route = "/trusting/..."
component = "trusting"
[[trigger.http]]
route = "/untrusting/..."
component = "untrusting"
[[trigger.http]]
route = "/plain/..."
component = "plain"
[[trigger.http]]
route = "/p3/..."
component = "p3"
[component.trusting]
source = "{{spin-sdk-pg}}"
{allowed}
variables = {{ pg_address = "{tls_address}" }}
[component.untrusting]
source = "{{spin-sdk-pg}}"
{allowed}
variables = {{ pg_address = "{tls_address}" }}
[component.plain]
source = "{{spin-sdk-pg}}"
{allowed}
variables = {{ pg_address = "{plain_address}" }}
[component.p3]
source = "{{spin-sdk7}}"
{allowed}
files = [{{ source = "certs", destination = "/" }}]
"#
        ),
    );
    let rc = config_dir.join("rc.toml");
    let server = Server::serve(
        &manifest,
        &["--runtime-config-file", rc.to_str().unwrap()],
    );
    let client = http1();
    // The CA named for this component and host: TLS, channel binding,
    // rows; through 4.x and 2.0.0 alike.
    let v4 = get_text(&client, server.url("/trusting/v4")).await;
    assert!(v4.starts_with("inserted=1 columns=["), "{v4}");
    assert_eq!(
        get_text(&client, server.url("/trusting/v2")).await,
        r#"rows=[[DbValue::Str("seven")]]"#
    );
    // No entry for this component: webpki's roots, which do not include
    // the test's CA; the guest is told why.
    let untrusted = get_text(&client, server.url("/untrusting/v4")).await;
    assert!(
        untrusted.starts_with(
            "Error::ConnectionFailed(\"error performing TLS handshake: invalid peer certificate: UnknownIssuer (the server's certificate is not trusted: name its CA in `ca_roots_file`"
        ),
        "{untrusted}"
    );
    // sslmode=disable against a server that refuses plain TCP: refused by
    // the server, as before.
    let plain = get_text(&client, server.url("/plain/v4")).await;
    assert!(plain.starts_with("Error::ConnectionFailed(\"db error:"), "{plain}");
    assert!(
        plain.contains("pg_hba.conf rejects connection for host \\\"127.0.0.1\\\"")
            && plain.contains("no encryption"),
        "{plain}"
    );
    // spin:postgres@4.2.0's builder: `set-ca-root` with the CA (the SDK
    // reads it from the component's files) is trusted too; without, not.
    let expected = r#"inserted=1 columns=["id:DbDataType::Int32", "name:DbDataType::Str"] rows=["DbValue::Int32(3) DbValue::Str(\"three\")"]"#;
    assert_eq!(
        get_text(&client, server.url(&format!("/p3/pg-ca?{tls_address}"))).await,
        expected
    );
    let without = get_text(&client, server.url(&format!("/p3/pg-builder?{tls_address}"))).await;
    assert!(
        without.starts_with("error: PgError(Error::ConnectionFailed(")
            && without.contains("UnknownIssuer"),
        "{without}"
    );
}

#[tokio::test]
async fn outbound_https_trusts_the_roots_and_presents_the_client_certificate_client_tls_names() {
    use common::tls::{https_server, TestCa};
    use std::sync::atomic::Ordering;
    let ca = TestCa::new("wasmhost test CA");
    let leaf = ca.leaf(&["127.0.0.1", "localhost"], "https-server");
    let client_ca = TestCa::new("wasmhost test client CA");
    let client_leaf = client_ca.leaf(&["client.test"], "wasmhost-client");
    let open = https_server(&leaf, None).await;
    let mutual = https_server(&leaf, Some(&client_ca)).await;
    let dir = tempfile::tempdir().unwrap();
    let rc = write_files(
        dir.path(),
        "config",
        &[
            ("ca.pem", &ca.pem),
            ("client.pem", &client_leaf.cert_pem),
            ("client.key", &client_leaf.key_pem),
            (
                "rc.toml",
                r#"
[[client_tls]]
component_ids = ["trusting", "v1"]
hosts = ["127.0.0.1"]
ca_roots_file = "ca.pem"

[[client_tls]]
component_ids = ["with-cert"]
hosts = ["127.0.0.1"]
ca_roots_file = "ca.pem"
client_cert_file = "client.pem"
client_private_key_file = "client.key"
"#,
            ),
        ],
    )
    .join("rc.toml");
    let mut body = String::from(
        "spin_manifest_version = 2\n[application]\nname = \"https\"\n",
    );
    for (id, source) in [
        ("trusting", "{spin-sdk-outbound}"),
        ("untrusting", "{spin-sdk-outbound}"),
        ("with-cert", "{spin-sdk-outbound}"),
        ("v1", "{spin-v1-http}"),
    ] {
        body.push_str(&format!(
            "[[trigger.http]]\nroute = \"/{id}/...\"\ncomponent = \"{id}\"\n\
             [component.{id}]\nsource = \"{source}\"\n\
             allowed_outbound_hosts = [\"https://127.0.0.1:*\"]\n"
        ));
    }
    let manifest = write_manifest(dir.path(), &body);
    let server = Server::serve(
        &manifest,
        &["--runtime-config-file", rc.to_str().unwrap()],
    );
    let client = http1();
    let fetch = |component: &str, port: u16| {
        server.url(&format!("/{component}/get?https://127.0.0.1:{port}/"))
    };
    // Trusted through `ca_roots_file`.
    assert_eq!(
        get_text(&client, fetch("trusting", open.port)).await,
        "200 hello over TLS, client certificate: none"
    );
    // Not named: webpki's roots, the handshake fails, the guest gets an
    // error; the server keeps serving the next one.
    let untrusted = get_text(&client, fetch("untrusting", open.port)).await;
    assert!(untrusted.starts_with("error: "), "{untrusted}");
    assert!(untrusted.contains("TlsProtocolError"), "{untrusted}");
    assert_eq!(open.failed_handshakes.load(Ordering::SeqCst), 1);
    server.wait_for_log(
        "TLS handshake failed: invalid peer certificate: UnknownIssuer (the server's certificate is not trusted",
        Duration::from_secs(5),
    );
    assert_eq!(
        get_text(&client, fetch("trusting", open.port)).await,
        "200 hello over TLS, client certificate: none"
    );
    // The client certificate is presented where an entry gives one.
    assert_eq!(
        get_text(&client, fetch("with-cert", mutual.port)).await,
        "200 hello over TLS, client certificate: wasmhost-client"
    );
    let refused = get_text(&client, fetch("trusting", mutual.port)).await;
    assert!(refused.starts_with("error: "), "{refused}");
    // Spin 1's fermyon:spin/http uses the component's entry too.
    assert_eq!(
        get_text(&client, fetch("v1", open.port)).await,
        "200 hello over TLS, client certificate: none"
    );
}

#[test]
fn client_tls_naming_no_component_of_the_app_or_a_missing_file_stops_the_start_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"hello\"\n[component.hello]\nsource = \"{hello}\"\n",
    );
    let rc = dir.path().join("rc.toml");
    let missing = dir.path().join("missing.pem");
    let cases = [
        (
            "[[client_tls]]\ncomponent_ids = [\"nope\"]\nhosts = [\"db\"]\n",
            format!(
                "runtime config `{}`: `client_tls[0].component_ids` names `nope`, which is not a component of the app (its components: hello)",
                rc.display()
            ),
        ),
        (
            "[[client_tls]]\ncomponent_ids = [\"hello\"]\nhosts = [\"db\"]\nca_roots_file = \"missing.pem\"\n",
            format!(
                "runtime config `{}`: `client_tls[0].ca_roots_file`: cannot read `{}`",
                rc.display(),
                missing.display()
            ),
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&rc, text).unwrap();
        let failed = Server::start_failing(&[
            "serve",
            manifest.to_str().unwrap(),
            "--runtime-config-file",
            rc.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ]);
        assert_ne!(failed.code, Some(0));
        assert!(failed.stderr.contains(&expected), "{}", failed.stderr);
        assert!(!failed.stdout.contains("serving"), "{}", failed.stdout);
    }
}
