//! Test guest: a plain program. For wasm32-wasip2 it becomes a component that
//! exports `wasi:cli/run` and no HTTP handler, which the host must refuse to
//! serve with a clear error.

fn main() {
    println!("hi");
}
