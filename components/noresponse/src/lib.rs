//! Test guest: returns from the handler without ever setting the response,
//! a contract violation the host must turn into an error response. It uses
//! the `wasi` bindings directly because the SDK cannot be made to do this.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct NoResponse;

impl Guest for NoResponse {
    fn handle(_request: IncomingRequest, _response_out: ResponseOutparam) {}
}

wasi::http::proxy::export!(NoResponse with_types_in wasi);
