//! The floor for a request that does one SQLite insert and one select:
//! the same two statements from native Rust, on a file opened with the
//! very settings wasmhost uses (`app::sqlite::Database`: WAL,
//! `synchronous = FULL`), so the difference to the Wasm figure
//! (bench/platform_bench.py) is what the component and the host add.

use criterion::{criterion_group, criterion_main, Criterion};
use wasmhost::services::sqlite::{execute, Database, Value};

fn insert_and_select(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open(&dir.path().join("sqlite_db.db")).expect("open");
    db.execute_batch("CREATE TABLE bench (id INTEGER PRIMARY KEY, note TEXT)")
        .expect("schema");
    let conn = db.connection().expect("connection");
    c.bench_function(
        "sqlite insert + select (native, WAL, synchronous=FULL)",
        |b| {
            b.iter(|| {
                execute(
                    &conn,
                    "INSERT INTO bench (note) VALUES (?)",
                    vec![Value::Text("hello".into())],
                )
                .expect("insert");
                let id = conn.last_insert_rowid();
                execute(
                    &conn,
                    "SELECT note FROM bench WHERE id = ?",
                    vec![Value::Integer(id)],
                )
                .expect("select")
            })
        },
    );
}

criterion_group!(benches, insert_and_select);
criterion_main!(benches);
