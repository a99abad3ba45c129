//! The wasi:http 0.2 handlers wasmhost serves on one request path
//! ([`super::component`]): a 0.2.x release's
//! `wasi:http/incoming-handler`, and the `0.2.0-rc-2023-10-18`
//! pre-release's ([`super::wasi_2023_10_18`]). Both take the same request
//! and response-outparam resources, so everything around the call (limits,
//! deadlines, reuse, the response body) is the same.

use anyhow::Result;
use wasmtime::component::{InstancePre, Resource};
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};

use super::load::HandlerKind;
use super::state::GuestState;
use super::wasi_2023_10_18::{HttpHandler, HttpHandlerPre};

/// A component's 0.2 handler, resolved once at load.
pub enum P2HandlerPre {
    /// `wasi:http/incoming-handler@0.2.x`.
    Release(ProxyPre<GuestState>),
    /// `wasi:http/incoming-handler@0.2.0-rc-2023-10-18`.
    Rc20231018(HttpHandlerPre<GuestState>),
}

/// One instance's 0.2 handler.
pub enum P2Handler {
    /// `wasi:http/incoming-handler@0.2.x`.
    Release(Proxy),
    /// `wasi:http/incoming-handler@0.2.0-rc-2023-10-18`.
    Rc20231018(HttpHandler),
}

impl P2HandlerPre {
    /// The handler of kind `kind` that `pre` exports (an error when it
    /// exports none of that kind, or with the wrong type).
    pub fn new(kind: HandlerKind, pre: InstancePre<GuestState>) -> Result<Self> {
        Ok(match kind {
            HandlerKind::P2 => P2HandlerPre::Release(ProxyPre::new(pre)?),
            HandlerKind::P2Rc20231018 => P2HandlerPre::Rc20231018(HttpHandlerPre::new(pre)?),
            HandlerKind::P3 => anyhow::bail!("a wasi:http 0.3 handler is not a 0.2 one"),
        })
    }

    /// The engine the code was compiled for.
    pub fn engine(&self) -> &Engine {
        match self {
            P2HandlerPre::Release(pre) => pre.engine(),
            P2HandlerPre::Rc20231018(pre) => pre.engine(),
        }
    }

    /// A new instance in `store`.
    pub async fn instantiate(&self, store: &mut Store<GuestState>) -> wasmtime::Result<P2Handler> {
        Ok(match self {
            P2HandlerPre::Release(pre) => P2Handler::Release(pre.instantiate_async(store).await?),
            P2HandlerPre::Rc20231018(pre) => {
                P2Handler::Rc20231018(pre.instantiate_async(store).await?)
            }
        })
    }
}

impl P2Handler {
    /// Calls the guest's `handle` with `request` and `out`.
    pub async fn handle(
        &self,
        store: &mut Store<GuestState>,
        request: Resource<HostIncomingRequest>,
        out: Resource<HostResponseOutparam>,
    ) -> wasmtime::Result<()> {
        match self {
            P2Handler::Release(proxy) => {
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(store, request, out)
                    .await
            }
            P2Handler::Rc20231018(handler) => {
                handler
                    .wasi_http_incoming_handler()
                    .call_handle(store, request, out)
                    .await
            }
        }
    }
}
