// Test fixture: a JavaScript hello component for the plain wasi:http/proxy
// world, with no Spin SDK, so that `wasmtime serve` runs the same file as
// wasmhost (issues 13 and 17). componentize-js attaches the fetch event to
// the world's `wasi:http/incoming-handler` export.
//
// Every request: 200 "hello from JavaScript", and `x-instance-requests`,
// how many requests this instance has handled (1 when each request gets a
// fresh instance), as components/hello does.
const BODY = 'hello from JavaScript';

// Requests this instance has handled; module state lives as long as the
// instance does (the build-time snapshot holds 0).
let handled = 0;

addEventListener('fetch', (event) => {
    handled += 1;
    event.respondWith(new Response(BODY, {
        headers: { 'content-type': 'text/plain', 'x-instance-requests': String(handled) },
    }));
});
