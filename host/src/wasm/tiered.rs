//! Tiered compilation: a component missing from the compile cache answers
//! at once from a baseline compile (Winch: one pass, no optimisation, about
//! ten times faster to produce than Cranelift's code) while Cranelift
//! compiles it on a thread of its own; new instances switch to the
//! optimised code as soon as it is ready. Only the optimised code goes to
//! the cache.
//!
//! With several processes on one cache directory (`serve --workers N`),
//! each answers from baseline code of its own (it is not cached: a tenth
//! of the optimising compile's work, and a process cannot answer before
//! it has some code), while only one runs the Cranelift compile: the
//! others' background threads wait for it on the entry's lock
//! ([`super::compile_lock`]) and switch to the code it stored. That wait
//! is how they learn the code is ready; no polling. If the compiling
//! process dies, its lock goes with it and a waiter compiles instead.
//!
//! [`Code`] is the one seam: the pre-instantiated code a backend
//! instantiates from, replaced atomically. An instance keeps the code (and
//! so the engine) it was created from until it is dropped, so a switch
//! never mixes a store of one engine with code of the other.
//!
//! Winch in wasmtime 48 supports what wasmhost needs of the baseline on
//! x86-64: epoch interruption (deadlines and the overrun pool work the
//! same), the component model (its trampolines are compiled by Cranelift,
//! they are small), SIMD (given AVX). It refuses GC, function references,
//! tail calls, exceptions and relaxed SIMD; a component that uses them
//! fails the baseline compile and is compiled by Cranelift before serving,
//! with a log line saying why. Only `wasi:http` 0.2 handlers start on
//! baseline code: 0.3 handlers need the concurrency machinery and WAGI
//! programs are rare enough to compile first.

use std::sync::{Arc, Weak};
use std::thread;
use std::time::Instant;

use anyhow::{Context as _, Result};
use arc_swap::ArcSwap;
use wasmtime::component::Component;
use wasmtime::Engine;

use super::cache::{CompileCache, Origin};

/// The code a backend instantiates from now: perhaps baseline code at
/// first, then the optimised code, never back.
pub struct Code<P> {
    current: ArcSwap<P>,
}

impl<P> Code<P> {
    /// Code that starts as `pre`.
    pub fn new(pre: P) -> Self {
        Self {
            current: ArcSwap::from_pointee(pre),
        }
    }

    /// The code to build the next instance from.
    pub fn current(&self) -> Arc<P> {
        self.current.load_full()
    }

    /// Makes `pre` the code of every instance created from now on.
    fn replace(&self, pre: P) {
        self.current.store(Arc::new(pre));
    }
}

/// Compiles `bytes` with the baseline compiler on `baseline`. An error
/// says why Winch cannot take the component (the caller then compiles
/// with Cranelift first).
pub fn compile_baseline(baseline: &Engine, bytes: &[u8]) -> Result<Component> {
    let started = Instant::now();
    let component = Component::new(baseline, bytes)
        .map_err(anyhow::Error::from)
        .context("the baseline compiler (Winch) cannot compile it")?;
    tracing::debug!("baseline code compiled in {:?}", started.elapsed());
    Ok(component)
}

/// What the background compile needs to swap optimised code into a
/// backend: the code to replace, and how to link a component into it.
pub struct Upgrade<P, F> {
    /// The backend's code; held weakly, so a backend dropped meanwhile (an
    /// app reloaded) is not kept alive: its code then only goes to the cache.
    pub target: Weak<Code<P>>,
    /// Links optimised code the way the baseline code was linked.
    pub link: F,
}

/// Compiles `bytes` with `engine` (Cranelift) on a thread of its own,
/// stores it in `cache`, then swaps it into `upgrade.target`. `id` names
/// the component in the log. Failures are logged: the baseline code keeps
/// serving.
pub fn optimise_in_background<P, F>(
    id: Arc<str>,
    engine: Engine,
    cache: CompileCache,
    bytes: Vec<u8>,
    upgrade: Upgrade<P, F>,
) -> Result<()>
where
    P: Send + Sync + 'static,
    F: FnOnce(&Component) -> Result<P> + Send + 'static,
{
    thread::Builder::new()
        .name("wasmhost-optimise".into())
        .spawn(move || {
            let started = Instant::now();
            let optimised = cache.compile(&engine, &bytes).and_then(|(component, origin)| {
                Ok(((upgrade.link)(&component)?, origin))
            });
            match (optimised, upgrade.target.upgrade()) {
                (Ok((pre, origin)), Some(code)) => {
                    code.replace(pre);
                    tracing::info!(
                        component = %id,
                        "optimised code ready in {:?}{}; new instances use it",
                        started.elapsed(),
                        if origin == Origin::Peer {
                            " (compiled by another process, loaded from the cache)"
                        } else {
                            ""
                        }
                    );
                }
                (Ok(_), None) => tracing::debug!(
                    component = %id,
                    "optimised code ready after the component was unloaded"
                ),
                (Err(e), _) => tracing::error!(
                    component = %id,
                    "the optimising compile failed; still serving baseline code: {e:#}"
                ),
            }
        })
        .context("cannot start the optimising compile's thread")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::engine::{EngineSettings, Runtime};
    use wasmtime::component::Linker;
    use wasmtime::{Store, Trap};

    fn runtime() -> Runtime {
        Runtime::new(&EngineSettings {
            memory_limit: 16 << 20,
            pooling: false,
            max_concurrency: 4,
            baseline: true,
            ..EngineSettings::defaults(false)
        })
        .unwrap()
    }

    /// A component whose `spin` never returns.
    const LOOPING: &str = r#"(component
        (core module $m (func (export "spin") (loop $l (br $l))))
        (core instance $i (instantiate $m))
        (func (export "spin") (canon lift (core func $i "spin"))))"#;

    #[test]
    fn baseline_code_is_interrupted_at_its_epoch_deadline() {
        let runtime = runtime();
        let baseline = runtime.baseline_engine().unwrap();
        let component = compile_baseline(&baseline, &wat::parse_str(LOOPING).unwrap()).unwrap();
        let mut store = Store::new(&baseline, ());
        store.set_epoch_deadline(1);
        store.epoch_deadline_trap();
        let instance = Linker::new(&baseline)
            .instantiate(&mut store, &component)
            .unwrap();
        let spin = instance
            .get_typed_func::<(), ()>(&mut store, "spin")
            .unwrap();
        // The engine's own ticker ends the loop: a hang here is the failure.
        let error = spin.call(&mut store, ()).unwrap_err();
        assert_eq!(error.downcast_ref::<Trap>(), Some(&Trap::Interrupt));
    }

    #[test]
    fn a_component_winch_cannot_compile_is_an_error_that_says_so() {
        let tail_call = r#"(component
            (core module $m
                (func $f (result i32) (return_call $g))
                (func $g (result i32) (i32.const 1))
                (export "f" (func $f))))"#;
        let runtime = runtime();
        let baseline = runtime.baseline_engine().unwrap();
        let error = compile_baseline(&baseline, &wat::parse_str(tail_call).unwrap()).unwrap_err();
        assert!(format!("{error:#}").contains("Winch"), "{error:#}");
        // Cranelift takes it.
        assert!(Component::new(&runtime.engine, wat::parse_str(tail_call).unwrap()).is_ok());
    }

    #[test]
    fn the_components_of_one_app_share_one_baseline_engine_while_it_lives() {
        let runtime = runtime();
        let first = runtime.baseline_engine().unwrap();
        let second = runtime.baseline_engine().unwrap();
        assert!(Engine::same(&first, &second));
        assert!(!Engine::same(&first, &runtime.engine));
    }

    #[test]
    fn new_instances_get_the_replacement_and_old_ones_keep_theirs() {
        let code = Code::new(1);
        let before = code.current();
        code.replace(2);
        assert_eq!((*before, *code.current()), (1, 2));
    }
}
