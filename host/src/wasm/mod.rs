//! Everything that runs WebAssembly: the engine and its settings
//! ([`engine`]), turning files into components ([`load`]), the compiled-code
//! cache ([`cache`]), its key ([`engine_key`]) and its one compile per
//! entry across processes ([`compile_lock`]), serving baseline code
//! while the optimised code compiles ([`tiered`]), WASI 0.2 pre-release
//! components ([`pre_release`] renames `0.2.0-rc-2023-11-10`,
//! [`wasi_2023_10_18`] serves `0.2.0-rc-2023-10-18`), per-store state
//! ([`state`]) with its WASI context built on first use ([`lazy_wasi`]),
//! a guest's outgoing request ([`outgoing`]: sent with the component's TLS
//! configuration) and its body ([`kept_body`]),
//! guest stdio ([`guest_log`]), the bounded wait for an instance slot
//! ([`admission`]), the backend that serves requests
//! ([`component`]) through either 0.2 handler ([`p2_handler`]) and Spin's
//! CGI-style executor ([`wagi`]).

pub mod admission;
pub mod cache;
pub mod compile_lock;
pub mod component;
pub mod engine;
pub mod engine_key;
pub mod guest_log;
pub mod kept_body;
pub mod lazy_wasi;
pub mod load;
pub mod outgoing;
pub mod p2_handler;
pub mod p3;
pub mod pre_release;
pub mod spin_host;
pub mod state;
pub mod tiered;
pub mod wagi;
pub mod wasi_2023_10_18;

pub use component::{ComponentBackend, ComponentOptions, LoadReport};
