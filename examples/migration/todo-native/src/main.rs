//! The `todo-native` binary: read the environment, open the store, bind,
//! then hand over to [`todo_native::server::run`].

#![forbid(unsafe_code)]

use anyhow::Context;
use todo_core::DirStorage;
use todo_native::config::Config;
use todo_native::{server, shutdown};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let storage = DirStorage::open(&config.data_dir)?;
    let stop = shutdown::on_signal().context("cannot listen for SIGTERM and SIGINT")?;
    let listener = TcpListener::bind(config.addr())
        .await
        .with_context(|| format!("cannot listen on `{}`; is the port in use?", config.addr()))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    eprintln!(
        "todo-native: listening on http://{addr}, data in `{}`",
        config.data_dir.display()
    );
    server::run(listener, storage, stop).await;
    Ok(())
}
