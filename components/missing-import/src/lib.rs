//! Test guest: a valid HTTP component that also imports `acme:missing/greeter`,
//! an interface no host provides, so that instantiation fails and the host's
//! error for an unsatisfiable import can be tested.

use wasmhost_sdk::{http_component, Request, Response};

wit_bindgen::generate!({
    inline: "
        package acme:missing;

        interface greeter {
            greet: func() -> string;
        }

        world w {
            import greeter;
        }
    ",
});

#[http_component]
fn handle(_req: Request) -> Response {
    // Calling the import keeps it from being dropped as unused, which would
    // leave a component that instantiates fine.
    Response::new(acme::missing::greeter::greet().into())
}
