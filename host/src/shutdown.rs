//! Shutdown as a value the server is handed, so tests can trigger it
//! without signals and the binary can wire it to SIGINT/SIGTERM.

use tokio::sync::watch;

/// How many shutdown requests have arrived: the first starts a graceful
/// drain, the second means "stop now".
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<u32>,
}

/// The sending side, kept by whoever decides when to stop.
#[derive(Clone)]
pub struct ShutdownTrigger {
    tx: watch::Sender<u32>,
}

impl Shutdown {
    /// A shutdown pair: trigger it to stop the server holding `Shutdown`.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(0);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// A shutdown driven by SIGINT and SIGTERM; must be called inside a
    /// tokio runtime.
    pub fn from_signals() -> std::io::Result<Shutdown> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let (trigger, shutdown) = Shutdown::new();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                trigger.trigger();
            }
        });
        Ok(shutdown)
    }

    /// Resolves once at least `n` shutdown requests have arrived.
    pub async fn requested(&mut self, n: u32) {
        // An error means every trigger is gone: no request can come.
        if self.rx.wait_for(|count| *count >= n).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl ShutdownTrigger {
    /// Requests a shutdown; the second call asks for an immediate stop.
    pub fn trigger(&self) {
        self.tx.send_modify(|count| *count += 1);
    }
}
