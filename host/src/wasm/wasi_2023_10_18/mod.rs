//! Components built against WASI `0.2.0-rc-2023-10-18`, the pre-release
//! Spin 2's `fermyon:spin@2.0.0` world and Spin SDK 2.x for Rust were built
//! on (Spin still serves them).
//!
//! Unlike `0.2.0-rc-2023-11-10` ([`super::pre_release`]), this snapshot
//! differs from 0.2 in shapes, not only names: `wasi:io/poll` has
//! `poll-list`/`poll-one` instead of `poll` and pollable methods,
//! `output-stream.splice` takes its source by value and `forward` exists,
//! the monotonic clock has one `subscribe` with an `absolute` flag,
//! `wasi:http/types` has constructors taking everything at once,
//! `write` instead of `body`, a four-case `error` instead of `error-code`,
//! request options as a record of milliseconds and trailers that are never
//! absent, `wasi:filesystem` has `access-at`, permission changes and locks,
//! and `wasi:sockets` UDP sends and receives on the socket itself. So the
//! snapshot gets bindings of its own, generated from its WIT (`wit/`, see
//! `wit/README.md` for where it came from), and each of its functions is
//! implemented by converting its arguments and calling wasmtime-wasi's (or
//! wasmtime-wasi-http's) 0.2 implementation on the same state: the same
//! resource table, so a stream or pollable made through one version is the
//! same resource in the other (a Spin SDK 2 module componentized with the
//! 0.2 wasip1 adapter imports both), the same WASI context (environment,
//! preopens, stdio into the guest log) and the same wasi:http hooks, so an
//! outgoing request goes through wasmhost's `send_request`
//! ([`super::state`]): `allowed_outbound_hosts`, `self` and
//! `*.spin.internal` apply as for 0.2 components.
//!
//! What the 0.2 host no longer has is answered as the snapshot allows:
//! `wasi:filesystem`'s `access-at`, `change-*-permissions-at` and locks,
//! and `wasi:sockets`' `ipv6-only` and `no-delay`, return `unsupported` /
//! `not-supported`; `wasi:clocks/timezone` answers UTC (the 0.2 host has no
//! time zone either).
//!
//! One file per package: [`io`], [`clocks`], [`random`], [`cli`],
//! [`filesystem`], [`sockets`], [`http`]. The component's
//! `wasi:http/incoming-handler@0.2.0-rc-2023-10-18` export is called
//! through [`HttpHandlerPre`], on the same request path as 0.2 handlers
//! ([`super::component`]).

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView as _};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView as _};
use wasmtime_wasi::TrappableError;
use wasmtime_wasi_http::{WasiHttp, WasiHttpView as _};

use super::state::GuestState;

mod cli;
mod clocks;
mod filesystem;
mod http;
mod io;
mod random;
mod sockets;

/// The version suffix of every interface this module serves.
pub const VERSION: &str = "@0.2.0-rc-2023-10-18";

/// The 0.2 host's bindings, which every function here calls.
mod latest {
    pub use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, io, random, sockets};
    pub use wasmtime_wasi_http::p2::bindings::http;
}

mod bindings {
    use super::latest;

    wasmtime::component::bindgen!({
        path: "src/wasm/wasi_2023_10_18/wit",
        world: "wasmhost:wasi-2023-10-18/http-handler",
        imports: {
            // Async where the 0.2 function called is async (or, for the
            // drops and `splice`, may wait on it).
            "wasi:io/poll.poll-list": async | trappable,
            "wasi:io/poll.poll-one": async | trappable,
            "wasi:io/streams.[method]input-stream.blocking-read": async | trappable,
            "wasi:io/streams.[method]input-stream.blocking-skip": async | trappable,
            "wasi:io/streams.[drop]input-stream": async | trappable,
            "wasi:io/streams.[method]output-stream.blocking-write-and-flush": async | trappable,
            "wasi:io/streams.[method]output-stream.blocking-flush": async | trappable,
            "wasi:io/streams.[method]output-stream.blocking-write-zeroes-and-flush": async | trappable,
            "wasi:io/streams.[method]output-stream.splice": async | trappable,
            "wasi:io/streams.[method]output-stream.blocking-splice": async | trappable,
            "wasi:io/streams.[method]output-stream.forward": async | trappable,
            "wasi:io/streams.[drop]output-stream": async | trappable,
            "wasi:filesystem/types.[method]descriptor.advise": async | trappable,
            "wasi:filesystem/types.[method]descriptor.sync-data": async | trappable,
            "wasi:filesystem/types.[method]descriptor.get-flags": async | trappable,
            "wasi:filesystem/types.[method]descriptor.get-type": async | trappable,
            "wasi:filesystem/types.[method]descriptor.set-size": async | trappable,
            "wasi:filesystem/types.[method]descriptor.set-times": async | trappable,
            "wasi:filesystem/types.[method]descriptor.read": async | trappable,
            "wasi:filesystem/types.[method]descriptor.write": async | trappable,
            "wasi:filesystem/types.[method]descriptor.read-directory": async | trappable,
            "wasi:filesystem/types.[method]descriptor.sync": async | trappable,
            "wasi:filesystem/types.[method]descriptor.create-directory-at": async | trappable,
            "wasi:filesystem/types.[method]descriptor.stat": async | trappable,
            "wasi:filesystem/types.[method]descriptor.stat-at": async | trappable,
            "wasi:filesystem/types.[method]descriptor.set-times-at": async | trappable,
            "wasi:filesystem/types.[method]descriptor.link-at": async | trappable,
            "wasi:filesystem/types.[method]descriptor.open-at": async | trappable,
            "wasi:filesystem/types.[method]descriptor.readlink-at": async | trappable,
            "wasi:filesystem/types.[method]descriptor.remove-directory-at": async | trappable,
            "wasi:filesystem/types.[method]descriptor.rename-at": async | trappable,
            "wasi:filesystem/types.[method]descriptor.symlink-at": async | trappable,
            "wasi:filesystem/types.[method]descriptor.unlink-file-at": async | trappable,
            "wasi:filesystem/types.[method]descriptor.is-same-object": async | trappable,
            "wasi:filesystem/types.[method]descriptor.metadata-hash": async | trappable,
            "wasi:filesystem/types.[method]descriptor.metadata-hash-at": async | trappable,
            "wasi:filesystem/types.[method]directory-entry-stream.read-directory-entry": async | trappable,
            "wasi:sockets/tcp.[method]tcp-socket.start-bind": async | trappable,
            "wasi:sockets/tcp.[method]tcp-socket.start-listen": async | trappable,
            "wasi:sockets/udp-create-socket.create-udp-socket": async | trappable,
            "wasi:sockets/udp.[method]udp-socket.start-bind": async | trappable,
            "wasi:sockets/udp.[method]udp-socket.finish-connect": async | trappable,
            "wasi:sockets/udp.[method]udp-socket.receive": async | trappable,
            "wasi:sockets/udp.[method]udp-socket.send": async | trappable,
            "wasi:sockets/udp.[drop]udp-socket": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        require_store_data_send: true,
        // Every resource is the 0.2 host's own type, in the same table.
        with: {
            "wasi:io/poll.pollable": latest::io::poll::Pollable,
            "wasi:io/streams.input-stream": latest::io::streams::InputStream,
            "wasi:io/streams.output-stream": latest::io::streams::OutputStream,
            "wasi:io/streams.error": latest::io::error::Error,
            "wasi:cli/terminal-input.terminal-input": latest::cli::terminal_input::TerminalInput,
            "wasi:cli/terminal-output.terminal-output": latest::cli::terminal_output::TerminalOutput,
            "wasi:filesystem/types.descriptor": latest::filesystem::types::Descriptor,
            "wasi:filesystem/types.directory-entry-stream": latest::filesystem::types::DirectoryEntryStream,
            "wasi:sockets/network.network": latest::sockets::network::Network,
            "wasi:sockets/tcp.tcp-socket": latest::sockets::tcp::TcpSocket,
            "wasi:sockets/udp.udp-socket": super::sockets::UdpSocket,
            "wasi:sockets/ip-name-lookup.resolve-address-stream": latest::sockets::ip_name_lookup::ResolveAddressStream,
            "wasi:http/types.fields": latest::http::types::Fields,
            "wasi:http/types.incoming-request": latest::http::types::IncomingRequest,
            "wasi:http/types.outgoing-request": latest::http::types::OutgoingRequest,
            "wasi:http/types.response-outparam": latest::http::types::ResponseOutparam,
            "wasi:http/types.incoming-response": latest::http::types::IncomingResponse,
            "wasi:http/types.incoming-body": latest::http::types::IncomingBody,
            "wasi:http/types.future-trailers": latest::http::types::FutureTrailers,
            "wasi:http/types.outgoing-response": latest::http::types::OutgoingResponse,
            "wasi:http/types.outgoing-body": latest::http::types::OutgoingBody,
            "wasi:http/types.future-incoming-response": latest::http::types::FutureIncomingResponse,
        },
    });
}

/// The snapshot's interfaces, by package.
mod snapshot {
    pub use super::bindings::wasi::{cli, clocks, filesystem, http, io, random, sockets};
}

/// A component's `wasi:http/incoming-handler@0.2.0-rc-2023-10-18` export,
/// resolved once at load, instantiated per request.
pub use bindings::{HttpHandler, HttpHandlerPre};

/// The resource table alone: what `wasi:io` needs.
struct Io;

impl HasData for Io {
    type Data<'a> = &'a mut ResourceTable;
}

/// Adds every `@0.2.0-rc-2023-10-18` interface to `linker`. The 0.2
/// interfaces stay as they are: a component may import both.
pub fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    use snapshot::{cli, clocks, filesystem, http, io, random, sockets};
    let l = linker;
    io::poll::add_to_linker::<_, Io>(l, GuestState::table_mut)?;
    io::streams::add_to_linker::<_, Io>(l, GuestState::table_mut)?;
    clocks::wall_clock::add_to_linker::<_, WasiClocks>(l, |s| s.clocks())?;
    clocks::monotonic_clock::add_to_linker::<_, WasiClocks>(l, |s| s.clocks())?;
    clocks::timezone::add_to_linker::<_, WasiClocks>(l, |s| s.clocks())?;
    random::random::add_to_linker::<_, WasiRandom>(l, |s| s.random())?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, |s| s.random())?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, |s| s.random())?;
    cli::environment::add_to_linker::<_, WasiCli>(l, |s| s.cli())?;
    cli::exit::add_to_linker::<_, WasiCli>(l, |s| s.cli())?;
    cli::stdin::add_to_linker::<_, WasiCli>(l, |s| s.cli())?;
    cli::stdout::add_to_linker::<_, WasiCli>(l, |s| s.cli())?;
    cli::stderr::add_to_linker::<_, WasiCli>(l, |s| s.cli())?;
    cli::terminal_input::add_to_linker::<_, WasiCli>(l, |s| s.cli())?;
    cli::terminal_output::add_to_linker::<_, WasiCli>(l, |s| s.cli())?;
    cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, |s| s.cli())?;
    cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, |s| s.cli())?;
    cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, |s| s.cli())?;
    filesystem::types::add_to_linker::<_, WasiFilesystem>(l, |s| s.filesystem())?;
    filesystem::preopens::add_to_linker::<_, WasiFilesystem>(l, |s| s.filesystem())?;
    sockets::network::add_to_linker::<_, WasiSockets>(l, |s| s.sockets())?;
    sockets::instance_network::add_to_linker::<_, WasiSockets>(l, |s| s.sockets())?;
    sockets::ip_name_lookup::add_to_linker::<_, WasiSockets>(l, |s| s.sockets())?;
    sockets::tcp::add_to_linker::<_, WasiSockets>(l, |s| s.sockets())?;
    sockets::tcp_create_socket::add_to_linker::<_, WasiSockets>(l, |s| s.sockets())?;
    sockets::udp::add_to_linker::<_, WasiSockets>(l, |s| s.sockets())?;
    sockets::udp_create_socket::add_to_linker::<_, WasiSockets>(l, |s| s.sockets())?;
    http::types::add_to_linker::<_, WasiHttp>(l, |s| s.http())?;
    http::outgoing_handler::add_to_linker::<_, WasiHttp>(l, |s| s.http())?;
    Ok(())
}

/// A 0.2 call's result for the snapshot: the value converted, an error
/// the guest may see converted to the snapshot's error value, a trap left
/// a trap.
fn returned<T, U, E, F>(result: Result<T, TrappableError<E>>) -> wasmtime::Result<Result<U, F>>
where
    U: From<T>,
    E: std::error::Error + Send + Sync + 'static,
    F: From<E>,
{
    match result {
        Ok(value) => Ok(Ok(value.into())),
        Err(error) => Ok(Err(error.downcast()?.into())),
    }
}

/// `From` both ways between two enums (or variants) with the same cases,
/// `(payload)` marking a case that carries a value converted with `into`.
macro_rules! same_cases {
    ($a:path, $b:path: $($case:ident $(($value:ident))?),* $(,)?) => {
        $crate::wasm::wasi_2023_10_18::same_cases!(@one $a => $b: $($case $(($value))?),*);
        $crate::wasm::wasi_2023_10_18::same_cases!(@one $b => $a: $($case $(($value))?),*);
    };
    (@one $from:path => $to:path: $($case:ident $(($value:ident))?),*) => {
        impl From<$from> for $to {
            fn from(value: $from) -> $to {
                use $from as From_;
                use $to as To;
                match value {
                    $(From_::$case $(($value))? => To::$case $(($value.into()))?,)*
                }
            }
        }
    };
}
pub(crate) use same_cases;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use wasmtime::component::Component;

    use super::*;
    use crate::wasm::component::linker;
    use crate::wasm::engine::{EngineSettings, Runtime};
    use crate::wasm::load::{self, HandlerKind};

    /// A component importing every function of the vendored snapshot's
    /// world (a dummy module wit-component makes from the WIT) and
    /// exporting its incoming-handler.
    fn everything() -> Vec<u8> {
        let mut resolve = wit_parser::Resolve::default();
        let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/wasm/wasi_2023_10_18/wit");
        let (package, _) = resolve.push_dir(&wit).unwrap();
        let world = resolve
            .select_world(&[package], Some("http-handler"))
            .unwrap();
        encode(&resolve, world)
    }

    /// A component whose handler is a WASI 0.2 export but which imports
    /// interfaces of the pre-release (what a library still on Spin SDK 2's
    /// bindings brings into a component built for 0.2). Its handler's
    /// shape is a stand-in: linking looks at imports only.
    fn mixed() -> Vec<u8> {
        const MIXED: &str = "
            package test:mixed;

            world mixed {
                import wasi:random/random@0.2.0-rc-2023-10-18;
                import wasi:http/outgoing-handler@0.2.0-rc-2023-10-18;
                export wasi:http/incoming-handler@0.2.6;
            }

            package wasi:http@0.2.6 {
                interface incoming-handler {
                    handle: func();
                }
            }
        ";
        let mut resolve = wit_parser::Resolve::default();
        let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/wasm/wasi_2023_10_18/wit");
        resolve.push_dir(&wit).unwrap();
        let package = resolve.push_str("mixed.wit", MIXED).unwrap();
        let world = resolve.select_world(&[package], Some("mixed")).unwrap();
        encode(&resolve, world)
    }

    fn encode(resolve: &wit_parser::Resolve, world: wit_parser::WorldId) -> Vec<u8> {
        let abi = wit_parser::ManglingAndAbi::Legacy(wit_parser::LiftLowerAbi::Sync);
        let mut module = wit_component::dummy_module(resolve, world, abi);
        wit_component::embed_component_metadata(
            &mut module,
            resolve,
            world,
            wit_component::StringEncoding::UTF8,
        )
        .unwrap();
        wit_component::ComponentEncoder::default()
            .module(&module)
            .unwrap()
            .validate(true)
            .encode()
            .unwrap()
    }

    fn runtime() -> Runtime {
        Runtime::new(&EngineSettings {
            memory_limit: 16 << 20,
            pooling: false,
            max_concurrency: 1,
            baseline: false,
            ..EngineSettings::defaults(false)
        })
        .unwrap()
    }

    #[test]
    fn a_0_2_handler_importing_interfaces_of_the_pre_release_links() {
        let prepared = load::prepare(Path::new("mixed.wasm"), mixed()).unwrap();
        assert_eq!(prepared.kind, HandlerKind::P2);
        let runtime = runtime();
        let component = Component::new(&runtime.engine, &prepared.bytes).unwrap();
        let linked = linker(&runtime.engine, prepared.kind)
            .unwrap()
            .instantiate_pre(&component);
        assert!(linked.is_ok(), "{:#}", linked.err().unwrap());
    }

    #[test]
    fn every_function_of_the_snapshot_is_linked_with_the_snapshots_types() {
        let component = everything();
        let prepared = load::prepare(Path::new("everything.wasm"), component).unwrap();
        assert_eq!(prepared.kind, HandlerKind::P2Rc20231018);
        let runtime = runtime();
        let component = Component::new(&runtime.engine, &prepared.bytes).unwrap();
        let pre = linker(&runtime.engine, prepared.kind)
            .unwrap()
            .instantiate_pre(&component)
            .unwrap();
        HttpHandlerPre::new(pre).unwrap();
    }
}
