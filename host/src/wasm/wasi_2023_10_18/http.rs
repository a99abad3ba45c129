//! `wasi:http@0.2.0-rc-2023-10-18` (types, outgoing-handler) over
//! wasmtime-wasi-http's 0.2 host, on the same table and hooks: an outgoing
//! request goes through wasmhost's `send_request`, so
//! `allowed_outbound_hosts`, `self` and `*.spin.internal` apply.
//!
//! What changed since, and how each is bridged:
//! - `fields` is built from its entries in its constructor, and its
//!   changes cannot fail: a header 0.2 forbids a guest to set
//!   (`connection`, `host`, ...) is left out, as 0.2 would refuse it; a
//!   name or value that is not valid HTTP, or a change to immutable fields
//!   (an incoming request's headers), traps with the reason.
//! - `outgoing-request` and `outgoing-response` take method, path,
//!   scheme, authority (or status) in their constructors and headers by
//!   borrow (copied); an invalid one traps. A request without an
//!   authority is a relative URL, which Spin sends to the app itself: it
//!   goes to `self`, so only `allowed_outbound_hosts = ["http://self"]`
//!   lets it through.
//! - `write` is 0.2's `body`.
//! - The four-case `error` replaces `error-code`: timeouts are
//!   `timeout-error`, unreachable or malformed destinations `invalid-url`,
//!   protocol violations `protocol-error`, the rest (a request
//!   `allowed_outbound_hosts` denies, among others) `unexpected-error`,
//!   each with 0.2's code as its text.
//! - Request options are a record of milliseconds, not a resource.
//! - `future-trailers.get` has no "no trailers": none are empty trailers.

use std::time::Duration;

use wasmtime::component::Resource;
use wasmtime_wasi_http::WasiHttpCtxView;

use super::latest::http::types as latest;
use super::snapshot::http::{outgoing_handler, types};
use types::{
    Error, Fields, FutureIncomingResponse, FutureTrailers, IncomingBody, IncomingRequest,
    IncomingResponse, Method, OutgoingBody, OutgoingRequest, OutgoingResponse, RequestOptions,
    ResponseOutparam, Scheme, StatusCode,
};

type Pollable = super::latest::io::poll::Pollable;
type InputStream = super::latest::io::streams::InputStream;
type OutputStream = super::latest::io::streams::OutputStream;

super::same_cases!(latest::Method, Method:
    Get, Head, Post, Put, Delete, Connect, Options, Trace, Patch, Other(method),
);
super::same_cases!(latest::Scheme, Scheme: Http, Https, Other(scheme));

/// The authority a request without one is sent to: the app itself.
const SELF_AUTHORITY: &str = "self";

impl From<latest::ErrorCode> for Error {
    fn from(code: latest::ErrorCode) -> Self {
        use latest::ErrorCode as C;
        let text = format!("{code:?}");
        match code {
            C::DnsTimeout
            | C::ConnectionTimeout
            | C::ConnectionReadTimeout
            | C::ConnectionWriteTimeout
            | C::HttpResponseTimeout => Error::TimeoutError(text),
            C::DnsError(_)
            | C::DestinationNotFound
            | C::DestinationIpProhibited
            | C::DestinationIpUnroutable
            | C::HttpRequestUriInvalid
            | C::HttpRequestUriTooLong => Error::InvalidUrl(text),
            C::HttpProtocolError
            | C::HttpResponseIncomplete
            | C::HttpResponseHeaderSectionSize(_)
            | C::HttpResponseHeaderSize(_)
            | C::HttpResponseBodySize(_)
            | C::HttpResponseTrailerSectionSize(_)
            | C::HttpResponseTrailerSize(_)
            | C::HttpResponseTransferCoding(_)
            | C::HttpResponseContentCoding(_)
            | C::HttpUpgradeFailed
            | C::TlsProtocolError
            | C::TlsCertificateError
            | C::TlsAlertReceived(_) => Error::ProtocolError(text),
            _ => Error::UnexpectedError(text),
        }
    }
}

/// What the guest's `error` becomes for the 0.2 host (which only logs it
/// and answers 500).
fn error_code(error: Error) -> latest::ErrorCode {
    let text = match error {
        Error::InvalidUrl(s) => format!("invalid URL: {s}"),
        Error::TimeoutError(s) => format!("timeout: {s}"),
        Error::ProtocolError(s) => format!("protocol error: {s}"),
        Error::UnexpectedError(s) => s,
    };
    latest::ErrorCode::InternalError(Some(text))
}

/// A header change 0.2 refuses: a forbidden header is left out (`Ok`),
/// anything else traps.
fn header_change(
    result: wasmtime_wasi_http::p2::HeaderResult<()>,
    name: &str,
) -> wasmtime::Result<()> {
    let Err(error) = result else {
        return Ok(());
    };
    match error.downcast()? {
        latest::HeaderError::Forbidden => {
            tracing::debug!("header `{name}` left out: a guest may not set it");
            Ok(())
        }
        latest::HeaderError::InvalidSyntax => {
            wasmtime::bail!("header `{name}` is not a valid HTTP header name and value")
        }
        latest::HeaderError::Immutable => {
            wasmtime::bail!("header `{name}` cannot be changed: these headers are immutable")
        }
    }
}

/// A mutable copy of the guest's (borrowed) headers, for a constructor
/// that takes them over.
fn copied(
    view: &mut WasiHttpCtxView<'_>,
    headers: Resource<Fields>,
) -> wasmtime::Result<Resource<Fields>> {
    latest::HostFields::clone(view, headers)
}

impl types::Host for WasiHttpCtxView<'_> {}

impl types::HostFields for WasiHttpCtxView<'_> {
    fn new(&mut self, entries: Vec<(String, Vec<u8>)>) -> wasmtime::Result<Resource<Fields>> {
        let fields = latest::HostFields::new(self)?;
        for (name, value) in entries {
            let appended = latest::HostFields::append(
                self,
                Resource::new_borrow(fields.rep()),
                name.clone(),
                value,
            );
            if let Err(e) = header_change(appended, &name) {
                latest::HostFields::drop(self, fields)?;
                return Err(e);
            }
        }
        Ok(fields)
    }

    fn get(&mut self, fields: Resource<Fields>, name: String) -> wasmtime::Result<Vec<Vec<u8>>> {
        latest::HostFields::get(self, fields, name)
    }

    fn set(
        &mut self,
        fields: Resource<Fields>,
        name: String,
        values: Vec<Vec<u8>>,
    ) -> wasmtime::Result<()> {
        let result = latest::HostFields::set(self, fields, name.clone(), values);
        header_change(result, &name)
    }

    fn delete(&mut self, fields: Resource<Fields>, name: String) -> wasmtime::Result<()> {
        let result = latest::HostFields::delete(self, fields, name.clone());
        header_change(result, &name)
    }

    fn append(
        &mut self,
        fields: Resource<Fields>,
        name: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<()> {
        let result = latest::HostFields::append(self, fields, name.clone(), value);
        header_change(result, &name)
    }

    fn entries(&mut self, fields: Resource<Fields>) -> wasmtime::Result<Vec<(String, Vec<u8>)>> {
        latest::HostFields::entries(self, fields)
    }

    fn clone(&mut self, fields: Resource<Fields>) -> wasmtime::Result<Resource<Fields>> {
        latest::HostFields::clone(self, fields)
    }

    fn drop(&mut self, fields: Resource<Fields>) -> wasmtime::Result<()> {
        latest::HostFields::drop(self, fields)
    }
}

impl types::HostIncomingRequest for WasiHttpCtxView<'_> {
    fn method(&mut self, request: Resource<IncomingRequest>) -> wasmtime::Result<Method> {
        latest::HostIncomingRequest::method(self, request).map(Into::into)
    }

    fn path_with_query(
        &mut self,
        request: Resource<IncomingRequest>,
    ) -> wasmtime::Result<Option<String>> {
        latest::HostIncomingRequest::path_with_query(self, request)
    }

    fn scheme(&mut self, request: Resource<IncomingRequest>) -> wasmtime::Result<Option<Scheme>> {
        Ok(latest::HostIncomingRequest::scheme(self, request)?.map(Into::into))
    }

    fn authority(
        &mut self,
        request: Resource<IncomingRequest>,
    ) -> wasmtime::Result<Option<String>> {
        latest::HostIncomingRequest::authority(self, request)
    }

    fn headers(
        &mut self,
        request: Resource<IncomingRequest>,
    ) -> wasmtime::Result<Resource<Fields>> {
        latest::HostIncomingRequest::headers(self, request)
    }

    fn consume(
        &mut self,
        request: Resource<IncomingRequest>,
    ) -> wasmtime::Result<Result<Resource<IncomingBody>, ()>> {
        latest::HostIncomingRequest::consume(self, request)
    }

    fn drop(&mut self, request: Resource<IncomingRequest>) -> wasmtime::Result<()> {
        latest::HostIncomingRequest::drop(self, request)
    }
}

impl types::HostOutgoingRequest for WasiHttpCtxView<'_> {
    fn new(
        &mut self,
        method: Method,
        path_with_query: Option<String>,
        scheme: Option<Scheme>,
        authority: Option<String>,
        headers: Resource<Fields>,
    ) -> wasmtime::Result<Resource<OutgoingRequest>> {
        let headers = copied(self, headers)?;
        let request = latest::HostOutgoingRequest::new(self, headers)?;
        let this = || Resource::<OutgoingRequest>::new_borrow(request.rep());
        let authority = authority.unwrap_or_else(|| SELF_AUTHORITY.to_owned());
        let refused = if latest::HostOutgoingRequest::set_method(self, this(), method.into())?
            .is_err()
        {
            Some("method")
        } else if latest::HostOutgoingRequest::set_path_with_query(self, this(), path_with_query)?
            .is_err()
        {
            Some("path")
        } else if latest::HostOutgoingRequest::set_scheme(self, this(), scheme.map(Into::into))?
            .is_err()
        {
            Some("scheme")
        } else if latest::HostOutgoingRequest::set_authority(self, this(), Some(authority))?
            .is_err()
        {
            Some("authority")
        } else {
            None
        };
        if let Some(what) = refused {
            latest::HostOutgoingRequest::drop(self, request)?;
            wasmtime::bail!("outgoing-request: the {what} is not valid HTTP");
        }
        Ok(request)
    }

    fn write(
        &mut self,
        request: Resource<OutgoingRequest>,
    ) -> wasmtime::Result<Result<Resource<OutgoingBody>, ()>> {
        latest::HostOutgoingRequest::body(self, request)
    }

    fn drop(&mut self, request: Resource<OutgoingRequest>) -> wasmtime::Result<()> {
        latest::HostOutgoingRequest::drop(self, request)
    }
}

impl types::HostResponseOutparam for WasiHttpCtxView<'_> {
    fn set(
        &mut self,
        param: Resource<ResponseOutparam>,
        response: Result<Resource<OutgoingResponse>, Error>,
    ) -> wasmtime::Result<()> {
        latest::HostResponseOutparam::set(self, param, response.map_err(error_code))
    }

    fn drop(&mut self, param: Resource<ResponseOutparam>) -> wasmtime::Result<()> {
        latest::HostResponseOutparam::drop(self, param)
    }
}

impl types::HostIncomingResponse for WasiHttpCtxView<'_> {
    fn status(&mut self, response: Resource<IncomingResponse>) -> wasmtime::Result<StatusCode> {
        latest::HostIncomingResponse::status(self, response)
    }

    fn headers(
        &mut self,
        response: Resource<IncomingResponse>,
    ) -> wasmtime::Result<Resource<Fields>> {
        latest::HostIncomingResponse::headers(self, response)
    }

    fn consume(
        &mut self,
        response: Resource<IncomingResponse>,
    ) -> wasmtime::Result<Result<Resource<IncomingBody>, ()>> {
        latest::HostIncomingResponse::consume(self, response)
    }

    fn drop(&mut self, response: Resource<IncomingResponse>) -> wasmtime::Result<()> {
        latest::HostIncomingResponse::drop(self, response)
    }
}

impl types::HostIncomingBody for WasiHttpCtxView<'_> {
    fn stream(
        &mut self,
        body: Resource<IncomingBody>,
    ) -> wasmtime::Result<Result<Resource<InputStream>, ()>> {
        latest::HostIncomingBody::stream(self, body)
    }

    fn finish(
        &mut self,
        body: Resource<IncomingBody>,
    ) -> wasmtime::Result<Resource<FutureTrailers>> {
        latest::HostIncomingBody::finish(self, body)
    }

    fn drop(&mut self, body: Resource<IncomingBody>) -> wasmtime::Result<()> {
        latest::HostIncomingBody::drop(self, body)
    }
}

impl types::HostFutureTrailers for WasiHttpCtxView<'_> {
    fn subscribe(
        &mut self,
        trailers: Resource<FutureTrailers>,
    ) -> wasmtime::Result<Resource<Pollable>> {
        latest::HostFutureTrailers::subscribe(self, trailers)
    }

    fn get(
        &mut self,
        trailers: Resource<FutureTrailers>,
    ) -> wasmtime::Result<Option<Result<Resource<Fields>, Error>>> {
        Ok(match latest::HostFutureTrailers::get(self, trailers)? {
            None => None,
            Some(Ok(Ok(Some(trailers)))) => Some(Ok(trailers)),
            Some(Ok(Ok(None))) => Some(Ok(latest::HostFields::new(self)?)),
            Some(Ok(Err(code))) => Some(Err(code.into())),
            Some(Err(())) => {
                wasmtime::bail!("future-trailers.get: the trailers were taken already")
            }
        })
    }

    fn drop(&mut self, trailers: Resource<FutureTrailers>) -> wasmtime::Result<()> {
        latest::HostFutureTrailers::drop(self, trailers)
    }
}

impl types::HostOutgoingResponse for WasiHttpCtxView<'_> {
    fn new(
        &mut self,
        status: StatusCode,
        headers: Resource<Fields>,
    ) -> wasmtime::Result<Resource<OutgoingResponse>> {
        let headers = copied(self, headers)?;
        let response = latest::HostOutgoingResponse::new(self, headers)?;
        let this = Resource::new_borrow(response.rep());
        if latest::HostOutgoingResponse::set_status_code(self, this, status)?.is_err() {
            latest::HostOutgoingResponse::drop(self, response)?;
            wasmtime::bail!("outgoing-response: {status} is not an HTTP status code");
        }
        Ok(response)
    }

    fn write(
        &mut self,
        response: Resource<OutgoingResponse>,
    ) -> wasmtime::Result<Result<Resource<OutgoingBody>, ()>> {
        latest::HostOutgoingResponse::body(self, response)
    }

    fn drop(&mut self, response: Resource<OutgoingResponse>) -> wasmtime::Result<()> {
        latest::HostOutgoingResponse::drop(self, response)
    }
}

impl types::HostOutgoingBody for WasiHttpCtxView<'_> {
    fn write(
        &mut self,
        body: Resource<OutgoingBody>,
    ) -> wasmtime::Result<Result<Resource<OutputStream>, ()>> {
        latest::HostOutgoingBody::write(self, body)
    }

    fn finish(
        &mut self,
        body: Resource<OutgoingBody>,
        trailers: Option<Resource<Fields>>,
    ) -> wasmtime::Result<()> {
        // The snapshot cannot tell the guest the body was refused (its
        // length differs from its `content-length`, say): that traps.
        match latest::HostOutgoingBody::finish(self, body, trailers) {
            Ok(()) => Ok(()),
            Err(e) => wasmtime::bail!("outgoing-body.finish: {:?}", e.downcast()?),
        }
    }

    fn drop(&mut self, body: Resource<OutgoingBody>) -> wasmtime::Result<()> {
        latest::HostOutgoingBody::drop(self, body)
    }
}

impl types::HostFutureIncomingResponse for WasiHttpCtxView<'_> {
    fn get(
        &mut self,
        response: Resource<FutureIncomingResponse>,
    ) -> wasmtime::Result<Option<Result<Result<Resource<IncomingResponse>, Error>, ()>>> {
        let got = latest::HostFutureIncomingResponse::get(self, response)?;
        Ok(got.map(|taken| taken.map(|result| result.map_err(Error::from))))
    }

    fn subscribe(
        &mut self,
        response: Resource<FutureIncomingResponse>,
    ) -> wasmtime::Result<Resource<Pollable>> {
        latest::HostFutureIncomingResponse::subscribe(self, response)
    }

    fn drop(&mut self, response: Resource<FutureIncomingResponse>) -> wasmtime::Result<()> {
        latest::HostFutureIncomingResponse::drop(self, response)
    }
}

impl outgoing_handler::Host for WasiHttpCtxView<'_> {
    fn handle(
        &mut self,
        request: Resource<OutgoingRequest>,
        options: Option<RequestOptions>,
    ) -> wasmtime::Result<Result<Resource<FutureIncomingResponse>, Error>> {
        let millis = |ms: Option<u32>| ms.map(|ms| Duration::from_millis(ms.into()));
        let options = options
            .map(|o| {
                self.table.push(wasmtime_wasi_http::RequestOptions {
                    connect_timeout: millis(o.connect_timeout_ms),
                    first_byte_timeout: millis(o.first_byte_timeout_ms),
                    between_bytes_timeout: millis(o.between_bytes_timeout_ms),
                })
            })
            .transpose()?;
        let borrowed = options.as_ref().map(|o| Resource::new_borrow(o.rep()));
        let sent = super::latest::http::outgoing_handler::Host::handle(self, request, borrowed);
        if let Some(options) = options {
            self.table.delete(options)?;
        }
        match sent {
            Ok(response) => Ok(Ok(response)),
            Err(e) => Ok(Err(e.downcast()?.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::component::ResourceTable;
    use wasmtime_wasi_http::WasiHttpCtx;

    use super::*;
    use types::HostFields as _;

    #[test]
    fn errors_keep_their_kind_in_the_four_cases_of_the_snapshot() {
        use latest::ErrorCode as C;
        let cases = [
            (C::HttpRequestDenied, "unexpected"),
            (C::ConnectionRefused, "unexpected"),
            (C::ConnectionTimeout, "timeout"),
            (C::HttpResponseTimeout, "timeout"),
            (C::DestinationNotFound, "url"),
            (C::HttpRequestUriInvalid, "url"),
            (C::HttpProtocolError, "protocol"),
            (C::TlsCertificateError, "protocol"),
        ];
        for (code, want) in cases {
            let got = match Error::from(code.clone()) {
                Error::UnexpectedError(_) => "unexpected",
                Error::TimeoutError(_) => "timeout",
                Error::InvalidUrl(_) => "url",
                Error::ProtocolError(_) => "protocol",
            };
            assert_eq!(got, want, "{code:?}");
        }
    }

    #[test]
    fn fields_leave_out_forbidden_headers_and_trap_on_invalid_ones() {
        let mut ctx = WasiHttpCtx::new();
        let mut table = ResourceTable::new();
        let mut view = WasiHttpCtxView {
            ctx: &mut ctx,
            table: &mut table,
            hooks: Default::default(),
        };
        let entries = vec![
            ("x-kept".to_owned(), b"yes".to_vec()),
            ("connection".to_owned(), b"close".to_vec()),
        ];
        let fields = view.new(entries).unwrap();
        let kept = latest::HostFields::entries(&mut view, Resource::new_borrow(fields.rep()));
        assert_eq!(kept.unwrap(), vec![("x-kept".to_owned(), b"yes".to_vec())]);
        let invalid = view.new(vec![("not a name".to_owned(), b"x".to_vec())]);
        let error = invalid.err().unwrap().to_string();
        assert!(error.contains("`not a name`"), "{error}");
    }
}
