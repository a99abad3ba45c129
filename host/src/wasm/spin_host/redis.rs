//! `fermyon:spin/redis@2.0.0`: outbound Redis, allowed only by the
//! component's `allowed_outbound_hosts` (`redis://host[:port]`, default
//! port 6379; an address it does not allow is `invalid-address`, as in
//! Spin). Connections are multiplexed and shared by every instance of the
//! app ([`RedisPool`]), so a request does not pay a connect; each call
//! runs under the request's deadline like the rest of the guest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use wasmtime::component::Resource;

use super::bindings::fermyon::spin::redis as v2;
use crate::wasm::state::GuestState;

/// How long opening a connection to a Redis server may take: a server that
/// is down or unreachable fails the guest's `open` rather than its whole
/// request deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most a reply may hold (Spin bounds host-buffered results alike).
const MAX_REPLY_BYTES: usize = 32 << 20;

/// One app's Redis connections, by address.
#[derive(Default)]
pub struct RedisPool {
    connections: Mutex<HashMap<String, MultiplexedConnection>>,
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool").finish_non_exhaustive()
    }
}

impl RedisPool {
    async fn connect(&self, address: &str) -> Result<MultiplexedConnection, v2::Error> {
        let cached = self
            .connections
            .lock()
            .ok()
            .and_then(|c| c.get(address).cloned());
        if let Some(conn) = cached {
            return Ok(conn);
        }
        let client = redis::Client::open(address).map_err(|_| v2::Error::InvalidAddress)?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| {
                v2::Error::Other(format!(
                    "connecting to Redis at {} timed out after {CONNECT_TIMEOUT:?}",
                    redacted(address)
                ))
            })?
            .map_err(|e| {
                v2::Error::Other(format!(
                    "cannot connect to Redis at {}: {e}",
                    redacted(address)
                ))
            })?;
        if let Ok(mut connections) = self.connections.lock() {
            connections.insert(address.to_owned(), conn.clone());
        }
        Ok(conn)
    }

    /// Forgets a connection that failed, so the next `open` reconnects.
    fn evict(&self, address: &str) {
        if let Ok(mut connections) = self.connections.lock() {
            connections.remove(address);
        }
    }
}

/// `address` without its password, for messages.
fn redacted(address: &str) -> String {
    match address.parse::<http::Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.host()) {
            (Some(scheme), Some(host)) => match uri.port_u16() {
                Some(port) => format!("{scheme}://{host}:{port}"),
                None => format!("{scheme}://{host}"),
            },
            _ => "the given address".to_owned(),
        },
        Err(_) => "the given address".to_owned(),
    }
}

/// A guest's open connection: the shared multiplexed one, and its address
/// for eviction when it fails.
pub struct RedisConnection {
    address: String,
    conn: MultiplexedConnection,
}

impl GuestState {
    fn redis(
        &self,
        conn: &Resource<RedisConnection>,
    ) -> Result<(MultiplexedConnection, String), v2::Error> {
        let c = self
            .table()
            .get(conn)
            .map_err(|e| v2::Error::Other(e.to_string()))?;
        Ok((c.conn.clone(), c.address.clone()))
    }

    /// Runs `cmd` and reads its reply as `T`; a reply of another type is
    /// Spin's `type-error`.
    async fn redis_typed<T: redis::FromRedisValue>(
        &mut self,
        conn: &Resource<RedisConnection>,
        cmd: redis::Cmd,
    ) -> Result<T, v2::Error> {
        let value = self.redis_query(conn, cmd).await?;
        redis::from_redis_value(&value).map_err(|_| v2::Error::TypeError)
    }

    /// Runs `cmd` on the guest's connection; a connection that broke is
    /// evicted from the app's pool.
    async fn redis_query(
        &mut self,
        conn: &Resource<RedisConnection>,
        cmd: redis::Cmd,
    ) -> Result<redis::Value, v2::Error> {
        let (mut c, address) = self.redis(conn)?;
        match cmd.query_async::<redis::Value>(&mut c).await {
            Ok(value) => Ok(value),
            Err(e) => {
                if e.is_io_error() || e.is_connection_dropped() {
                    self.redis_pool().evict(&address);
                }
                Err(v2::Error::Other(e.to_string()))
            }
        }
    }
}

/// One reply as Spin's results: arrays flattened, maps refused.
fn results(
    value: redis::Value,
    out: &mut Vec<v2::RedisResult>,
    bytes: &mut usize,
) -> Result<(), v2::Error> {
    use redis::Value as V;
    let result = match value {
        V::Nil => v2::RedisResult::Nil,
        V::Int(i) => v2::RedisResult::Int64(i),
        V::BulkString(b) => {
            *bytes += b.len();
            v2::RedisResult::Binary(b)
        }
        V::SimpleString(s) => {
            *bytes += s.len();
            v2::RedisResult::Status(s)
        }
        V::Okay => v2::RedisResult::Status("OK".into()),
        V::Array(items) | V::Set(items) => {
            for item in items {
                results(item, out, bytes)?;
            }
            return Ok(());
        }
        V::Boolean(b) => v2::RedisResult::Int64(i64::from(b)),
        V::Double(d) => v2::RedisResult::Binary(d.to_string().into_bytes()),
        V::VerbatimString { text, .. } => v2::RedisResult::Binary(text.into_bytes()),
        V::ServerError(e) => return Err(v2::Error::Other(format!("{e:?}"))),
        other => {
            return Err(v2::Error::Other(format!(
                "a Redis reply of this kind cannot be returned: {other:?}"
            )))
        }
    };
    if *bytes > MAX_REPLY_BYTES {
        return Err(v2::Error::Other(format!(
            "query result exceeds limit of {MAX_REPLY_BYTES} bytes"
        )));
    }
    out.push(result);
    Ok(())
}

impl v2::Host for GuestState {}

impl v2::HostConnection for GuestState {
    async fn open(&mut self, address: String) -> Result<Resource<RedisConnection>, v2::Error> {
        if !self.outbound_allows_address(&address) {
            tracing::info!(
                "Redis connection to `{}` denied: not in the component's allowed outbound hosts",
                redacted(&address)
            );
            return Err(v2::Error::InvalidAddress);
        }
        let conn = self.redis_pool().connect(&address).await?;
        self.table_mut()
            .push(RedisConnection { address, conn })
            .map_err(|e| v2::Error::Other(e.to_string()))
    }

    async fn publish(
        &mut self,
        conn: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), v2::Error> {
        self.redis_typed(
            &conn,
            redis::cmd("PUBLISH").arg(channel).arg(payload).clone(),
        )
        .await
    }

    async fn get(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<Option<Vec<u8>>, v2::Error> {
        self.redis_typed(&conn, redis::cmd("GET").arg(key).clone())
            .await
    }

    async fn set(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), v2::Error> {
        self.redis_typed(&conn, redis::cmd("SET").arg(key).arg(value).clone())
            .await
    }

    async fn incr(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<i64, v2::Error> {
        self.redis_typed(&conn, redis::cmd("INCR").arg(key).clone())
            .await
    }

    async fn del(
        &mut self,
        conn: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> Result<u32, v2::Error> {
        self.redis_typed(&conn, redis::cmd("DEL").arg(keys).clone())
            .await
    }

    async fn sadd(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v2::Error> {
        self.redis_typed(&conn, redis::cmd("SADD").arg(key).arg(values).clone())
            .await
    }

    async fn smembers(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<Vec<String>, v2::Error> {
        self.redis_typed(&conn, redis::cmd("SMEMBERS").arg(key).clone())
            .await
    }

    async fn srem(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v2::Error> {
        self.redis_typed(&conn, redis::cmd("SREM").arg(key).arg(values).clone())
            .await
    }

    async fn execute(
        &mut self,
        conn: Resource<RedisConnection>,
        command: String,
        arguments: Vec<v2::RedisParameter>,
    ) -> Result<Vec<v2::RedisResult>, v2::Error> {
        let mut cmd = redis::cmd(&command);
        for argument in arguments {
            match argument {
                v2::RedisParameter::Int64(i) => cmd.arg(i),
                v2::RedisParameter::Binary(b) => cmd.arg(b),
            };
        }
        let value = self.redis_query(&conn, cmd).await?;
        let mut out = Vec::new();
        results(value, &mut out, &mut 0)?;
        Ok(out)
    }

    async fn drop(&mut self, conn: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table_mut().delete(conn)?;
        Ok(())
    }
}
