//! Generated bindings for the Spin interfaces (`wit/spin.wit`); the
//! public API is in [`crate::variables`] and [`crate::key_value`].

wit_bindgen::generate!({
    path: "wit/spin.wit",
    world: "fermyon:spin/sdk",
});
