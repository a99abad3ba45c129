//! A key-value store kept in Redis (`[key_value_store.<label>] type =
//! "redis"`, `url`), so several wasmhost processes (replicas) share it, as
//! Spin's Redis store does: `get`/`set`/`delete` are GET/SET/DEL,
//! `get-keys` KEYS, `increment` INCRBY (the value is Redis's decimal text),
//! compare-and-swap WATCH/MULTI/EXEC on a connection of its own.

use std::time::Duration;

use anyhow::Context as _;
use redis::aio::MultiplexedConnection;

use super::key_value::KvError;

/// How long connecting to the store's server may take before the guest's
/// call fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One Redis-backed store: a client, and the connection every instance
/// shares (multiplexed; reopened after it fails).
pub struct RedisStore {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

fn other(e: impl std::fmt::Display) -> KvError {
    KvError::Other(e.to_string())
}

impl RedisStore {
    /// A store at `url` (`redis://host[:port][/db]`); nothing connects yet,
    /// so a server that is down fails calls, not the start.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .with_context(|| format!("`{url}` is not a Redis URL (`redis://host[:port][/db]`)"))?;
        Ok(Self {
            client,
            conn: tokio::sync::Mutex::new(None),
        })
    }

    async fn connect(&self) -> Result<MultiplexedConnection, KvError> {
        tokio::time::timeout(
            CONNECT_TIMEOUT,
            self.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| {
            other(format!(
                "connecting to Redis timed out after {CONNECT_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| other(format!("cannot connect to Redis: {e}")))
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, KvError> {
        let mut conn = {
            let mut shared = self.conn.lock().await;
            match shared.as_ref() {
                Some(conn) => conn.clone(),
                None => {
                    let conn = self.connect().await?;
                    *shared = Some(conn.clone());
                    conn
                }
            }
        };
        match cmd.query_async::<T>(&mut conn).await {
            Ok(value) => Ok(value),
            Err(e) => {
                if e.is_io_error() || e.is_connection_dropped() {
                    *self.conn.lock().await = None;
                }
                Err(other(e))
            }
        }
    }

    /// GET.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    /// SET.
    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.query::<()>(redis::cmd("SET").arg(key).arg(value))
            .await
    }

    /// DEL.
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.query::<()>(redis::cmd("DEL").arg(key)).await
    }

    /// KEYS *.
    pub async fn keys(&self) -> Result<Vec<String>, KvError> {
        self.query(redis::cmd("KEYS").arg("*")).await
    }

    /// INCRBY.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.query(redis::cmd("INCRBY").arg(key).arg(delta)).await
    }

    /// Sets `key` to `value` if it still holds `expected`: WATCH, GET,
    /// MULTI/SET/EXEC on a connection of its own (WATCH is per connection).
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Result<(), Option<Vec<u8>>>, KvError> {
        let mut conn = self.connect().await?;
        redis::cmd("WATCH")
            .arg(key)
            .query_async::<()>(&mut conn)
            .await
            .map_err(other)?;
        let current: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(other)?;
        if current.as_deref() != expected {
            let _ = redis::cmd("UNWATCH").query_async::<()>(&mut conn).await;
            return Ok(Err(current));
        }
        let committed: Option<()> = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(key)
            .arg(value)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(other)?;
        match committed {
            Some(()) => Ok(Ok(())),
            // Someone wrote between WATCH and EXEC.
            None => Ok(Err(self.get(key).await?)),
        }
    }
}
