//! An instance's WASI context, built the first time the guest needs it.
//!
//! A `WasiCtx` costs 13 allocations and two generator seedings to build
//! (bench/RESULTS.md, "Fresh-instance request in process"), and a fresh
//! instance serves one request: a wasi:http handler that only reads its
//! request and writes its response never touches it, because requests,
//! responses and their streams live in the resource table. So a fresh
//! instance keeps only what its context is made from ([`Recipe`]) and
//! builds the context on the guest's first call of an interface that needs
//! it (cli, clocks, random, filesystem, sockets). A guest that uses WASI
//! pays the same as before; one that does not, nothing.
//!
//! wasmtime-wasi reaches the table for wasi:io (streams, poll, error)
//! through `WasiView::ctx()` as well, which would build the context at the
//! first stream write; [`add_io_to_linker`] defines those three interfaces
//! again over the table alone.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::guest_log::{CurrentRequest, GuestLog};
use super::state::{GuestState, InstancePolicy};
use crate::volume::Volume;

/// What an instance's WASI context is made from: its stdio (to the log,
/// tagged with the request), environment and preopened directories.
pub struct Recipe {
    id: Arc<str>,
    request: CurrentRequest,
    environment: Vec<(String, String)>,
    files: Option<Arc<tempfile::TempDir>>,
    volumes: Vec<Volume>,
}

impl Recipe {
    /// The context of an instance of component `id` under `policy`; its
    /// stdio tells which request `request` names at the time of writing.
    pub fn new(id: Arc<str>, request: CurrentRequest, policy: &InstancePolicy) -> Self {
        Self {
            id,
            request,
            environment: policy.environment.clone(),
            files: policy.files.clone(),
            volumes: policy.volumes.clone(),
        }
    }

    /// A builder holding everything but what a caller adds (a WAGI
    /// program's argv and stdin).
    pub fn builder(&self) -> WasiCtxBuilder {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(GuestLog::stdout(self.id.clone(), self.request.clone()))
            .stderr(GuestLog::stderr(self.id.clone(), self.request.clone()))
            .envs(&self.environment);
        if let Some(files) = &self.files {
            // The directory was created at start-up and is kept alive by
            // this recipe; failing to open it now means the host itself is
            // broken, so the instance runs without it and says so.
            if let Err(e) = wasi.preopened_dir(files.path(), "/", FsPerms::ReadOnly) {
                tracing::error!(component = %self.id, "cannot mount the component's files: {e}");
            }
        }
        for volume in &self.volumes {
            let perms = if volume.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            // Created at start-up; gone now means someone removed it: the
            // instance runs without it and the log says why.
            if let Err(e) = wasi.preopened_dir(&volume.host, &volume.container, perms) {
                tracing::error!(
                    component = %self.id,
                    "cannot mount `{}` at `{}`: {e}",
                    volume.host.display(),
                    volume.container
                );
            }
        }
        wasi
    }
}

/// A WASI context, built now or on first use.
pub struct LazyWasi {
    ctx: Option<WasiCtx>,
    /// Taken when the context is built.
    recipe: Option<Recipe>,
}

impl LazyWasi {
    /// A context built already (a WAGI program's, which always uses it).
    pub fn built(ctx: WasiCtx) -> Self {
        Self {
            ctx: Some(ctx),
            recipe: None,
        }
    }

    /// A context built from `recipe` when first asked for.
    pub fn deferred(recipe: Recipe) -> Self {
        Self {
            ctx: None,
            recipe: Some(recipe),
        }
    }

    /// The context, built now if this is its first use.
    pub fn get(&mut self) -> &mut WasiCtx {
        let recipe = &mut self.recipe;
        self.ctx.get_or_insert_with(|| match recipe.take() {
            Some(recipe) => recipe.builder().build(),
            // `built` leaves no recipe, and sets `ctx`: never reached.
            None => WasiCtx::builder().build(),
        })
    }

    /// Whether the context has been built (for tests).
    pub fn is_built(&self) -> bool {
        self.ctx.is_some()
    }
}

/// wasi:io's host side takes the resource table alone.
struct TableOnly;

impl HasData for TableOnly {
    type Data<'a> = &'a mut ResourceTable;
}

/// Redefines wasi:io 0.2 (streams, poll, error) in `linker` over the
/// instance's resource table, replacing wasmtime-wasi's definitions, which
/// reach the same table through the WASI context and so would build it at
/// the first stream write. Call after `wasmtime_wasi::p2::add_to_linker_async`.
pub fn add_io_to_linker(linker: &mut Linker<GuestState>) -> anyhow::Result<()> {
    use wasmtime_wasi::p2::bindings::io;
    linker.allow_shadowing(true);
    let added = (|| {
        io::error::add_to_linker::<GuestState, TableOnly>(linker, GuestState::table_mut)?;
        io::poll::add_to_linker::<GuestState, TableOnly>(linker, GuestState::table_mut)?;
        io::streams::add_to_linker::<GuestState, TableOnly>(linker, GuestState::table_mut)
    })();
    linker.allow_shadowing(false);
    added?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> Recipe {
        let policy = InstancePolicy {
            environment: vec![("GREETING".into(), "hello".into())],
            ..InstancePolicy::default()
        };
        Recipe::new("test".into(), CurrentRequest::default(), &policy)
    }

    #[test]
    fn a_deferred_context_is_built_on_first_use_only() {
        let mut wasi = LazyWasi::deferred(recipe());
        assert!(!wasi.is_built());
        let first: *const WasiCtx = wasi.get();
        assert!(wasi.is_built());
        let second: *const WasiCtx = wasi.get();
        assert_eq!(first, second, "built again on the second use");
    }

    #[test]
    fn a_context_built_at_once_is_kept() {
        let mut wasi = LazyWasi::built(recipe().builder().build());
        assert!(wasi.is_built());
        let first: *const WasiCtx = wasi.get();
        assert_eq!(first, wasi.get() as *const WasiCtx);
    }

    /// Serves one request to the `hello` guest (built by
    /// scripts/build-guests.sh) from a fresh instance, through the
    /// linker requests use; whether its WASI context got built.
    async fn hello_builds_its_context(path_and_query: &str) -> bool {
        use http_body_util::{BodyExt, Empty};
        use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
        use wasmtime_wasi_http::p2::bindings::ProxyPre;
        use wasmtime_wasi_http::WasiHttpView;

        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/guest/wasm32-wasip2/release/hello.wasm");
        assert!(
            path.exists(),
            "build the guests first: scripts/build-guests.sh"
        );
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = wasmtime::Engine::new(&config).unwrap();
        let component = wasmtime::component::Component::from_file(&engine, &path).unwrap();
        let linker =
            super::super::component::linker(&engine, super::super::load::HandlerKind::P2).unwrap();
        let pre = ProxyPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        let mut store = super::super::state::new_store(
            &engine,
            "hello".into(),
            CurrentRequest::default(),
            &InstancePolicy::default(),
        );
        let req = http::Request::builder()
            .uri(format!("http://test{path_and_query}"))
            .body(
                Empty::<bytes::Bytes>::new()
                    .map_err(|never| -> wasmtime_wasi_http::Error { match never {} }),
            )
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (req, out) = {
            let mut http = store.data_mut().http();
            let req = http.new_incoming_request(Scheme::Http, req).unwrap();
            (req, http.new_response_outparam(tx).unwrap())
        };
        let proxy = pre.instantiate_async(&mut store).await.unwrap();
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, req, out)
            .await
            .unwrap();
        let resp = rx.await.unwrap().unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"Hello, world!\n");
        store.data().wasi_built()
    }

    #[tokio::test]
    async fn a_handler_that_only_answers_never_builds_its_wasi_context() {
        assert!(!hello_builds_its_context("/").await);
    }

    #[tokio::test]
    async fn a_handler_that_prints_builds_its_wasi_context() {
        assert!(hello_builds_its_context("/?log").await);
    }
}
