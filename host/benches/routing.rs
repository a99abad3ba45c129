//! Cost of `Router::route` on a 1,000-route table: the budget is 1 µs per
//! request. The table mixes exact, wildcard and parameter routes under
//! shared prefixes, as a large Spin application's would be, so a lookup
//! walks several trie levels and sometimes backs out of a literal branch.
//!
//! Run with `cargo bench -p wasmhost --bench routing`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use wasmhost::router::Router;

const ROUTES: usize = 1_000;

/// Ten groups under `/api`, each route one of four shapes.
fn table() -> Vec<(String, usize)> {
    (0..ROUTES)
        .map(|i| {
            let group = i % 10;
            let route = match i % 4 {
                0 => format!("/api/g{group}/r{i}"),
                1 => format!("/api/g{group}/r{i}/..."),
                2 => format!("/api/g{group}/r{i}/:id"),
                _ => format!("/api/g{group}/:tenant/r{i}/:id/..."),
            };
            (route, i)
        })
        .collect()
}

fn routing(c: &mut Criterion) {
    let routes = table();
    let router = Router::build(routes.iter().map(|(route, i)| (route, *i)))
        .expect("the bench table is valid");
    let cases = [
        // The last route: no literal `t42` under `g9`, so the lookup backs
        // out to the parameter branch, then captures two parameters and the
        // path info.
        ("hit deep", "/api/g9/t42/r999/7/orders/1", Some(999)),
        ("hit exact", "/api/g8/r998/42", Some(998)),
        // Walks into `g9`, fails on both branches, backs out.
        ("miss deep", "/api/g9/t42/r1000/7", None),
        ("miss at root", "/nope/x", None),
    ];
    let mut group = c.benchmark_group("route/1000 routes");
    for (name, path, want) in cases {
        let got = router.route(path).map(|m| *m.target());
        assert_eq!(got, want, "{name}: `{path}`");
        group.bench_function(name, |b| {
            b.iter(|| router.route(black_box(path)).map(|m| *m.target()))
        });
    }
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
