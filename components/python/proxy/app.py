"""Test fixture: a Python hello component for the plain `wasi:http/proxy`
world (no Spin SDK), so that `wasmtime serve` can run the same file as
wasmhost. Built by scripts/build-fixtures.sh with componentize-py against
the wasi:http@0.2.0 WIT that the spin-sdk wheel ships.

Every request: 200 "hello from Python", and `x-instance-requests`, how
many requests this instance has handled (1 when each request gets a
fresh instance), as components/hello does.
"""

from wit_world import exports
from wit_world.imports.types import (
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
)
from wit_world.types import Ok

BODY = b"hello from Python"

# Requests this instance has handled; module state lives as long as the
# instance does.
handled = 0


class IncomingHandler(exports.IncomingHandler):
    """Answers every request 200 with BODY."""

    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        global handled
        handled += 1
        response = OutgoingResponse(Fields.from_list([
            ("content-type", b"text/plain"),
            ("x-instance-requests", str(handled).encode()),
        ]))
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        # The stream is a child of the body: drop it before finishing.
        with body.write() as stream:
            stream.blocking_write_and_flush(BODY)
        OutgoingBody.finish(body, None)
