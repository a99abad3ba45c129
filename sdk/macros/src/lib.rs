//! The `#[http_component]` attribute of `wasmhost-sdk`.
//!
//! It lives in its own crate only because Rust requires attribute macros to
//! be in a `proc-macro` crate; use it through `wasmhost_sdk::http_component`.

use proc_macro::TokenStream;
use quote::quote;
use syn::spanned::Spanned;

/// Turns `fn handle(req: Request) -> impl IntoResponse` into the component's
/// `wasi:http/incoming-handler` export.
///
/// The function itself is left untouched so it stays callable (and testable)
/// as ordinary Rust; the attribute only adds the export glue beside it, which
/// has to be expanded in the final (cdylib) crate for the export to be linked.
#[proc_macro_attribute]
pub fn http_component(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return syn::Error::new(attr.span(), "#[http_component] takes no arguments")
            .to_compile_error()
            .into();
    }
    let func = syn::parse_macro_input!(item as syn::ItemFn);
    if let Some(asyncness) = func.sig.asyncness {
        return syn::Error::new(
            asyncness.span(),
            "#[http_component] functions must not be async: wasi:http 0.2 handlers are synchronous",
        )
        .to_compile_error()
        .into();
    }
    let name = &func.sig.ident;
    quote! {
        #func

        const _: () = {
            struct __WasmhostHttpComponent;

            impl ::wasmhost_sdk::__private::Guest for __WasmhostHttpComponent {
                fn handle(
                    request: ::wasmhost_sdk::__private::IncomingRequest,
                    response_out: ::wasmhost_sdk::__private::ResponseOutparam,
                ) {
                    ::wasmhost_sdk::__private::run(request, response_out, #name);
                }
            }

            ::wasmhost_sdk::__private::wasi::http::proxy::export!(
                __WasmhostHttpComponent with_types_in ::wasmhost_sdk::__private::wasi
            );
        };
    }
    .into()
}
