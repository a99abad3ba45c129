//! `fermyon:spin/redis@2.0.0` and `spin:redis/redis@3.0.0` (the same
//! functions, `async`: WASIp3 components): outbound Redis, allowed only by the
//! component's `allowed_outbound_hosts` (`redis://host[:port]`, default
//! port 6379; an address it does not allow is `invalid-address`, as in
//! Spin). Connections are multiplexed and shared by every instance of the
//! app ([`RedisPool`]), so a request does not pay a connect; each call
//! runs under the request's deadline like the rest of the guest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use wasmtime::component::{Accessor, HasSelf, Resource};

use super::bindings::fermyon::spin::redis as v2;
use super::bindings_p3::spin::redis::redis as v3;
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

/// What a call needs, taken out of the instance's state so that it is
/// awaited without borrowing that state: the shared connection, its
/// address, and the pool that forgets it when it breaks.
struct Handle {
    conn: MultiplexedConnection,
    address: String,
    pool: Arc<RedisPool>,
}

impl Handle {
    /// Runs `cmd`; a connection that broke is evicted from the app's pool.
    async fn query(mut self, cmd: redis::Cmd) -> Result<redis::Value, v2::Error> {
        match cmd.query_async::<redis::Value>(&mut self.conn).await {
            Ok(value) => Ok(value),
            Err(e) => {
                if e.is_io_error() || e.is_connection_dropped() {
                    self.pool.evict(&self.address);
                }
                Err(v2::Error::Other(e.to_string()))
            }
        }
    }

    /// Runs `cmd` and reads its reply as `T`; a reply of another type is
    /// Spin's `type-error`.
    async fn typed<T: redis::FromRedisValue>(self, cmd: redis::Cmd) -> Result<T, v2::Error> {
        let value = self.query(cmd).await?;
        redis::from_redis_value(&value).map_err(|_| v2::Error::TypeError)
    }

    /// Runs `execute`'s command and flattens its reply.
    async fn results(self, cmd: redis::Cmd) -> Result<Vec<v2::RedisResult>, v2::Error> {
        let value = self.query(cmd).await?;
        let mut out = Vec::new();
        results(value, &mut out, &mut 0)?;
        Ok(out)
    }
}

/// The commands behind the functions both versions have.
mod command {
    use super::v2::RedisParameter;
    use redis::{cmd, Cmd};

    pub fn publish(channel: String, payload: Vec<u8>) -> Cmd {
        cmd("PUBLISH").arg(channel).arg(payload).clone()
    }
    pub fn get(key: String) -> Cmd {
        cmd("GET").arg(key).clone()
    }
    pub fn set(key: String, value: Vec<u8>) -> Cmd {
        cmd("SET").arg(key).arg(value).clone()
    }
    pub fn incr(key: String) -> Cmd {
        cmd("INCR").arg(key).clone()
    }
    pub fn del(keys: Vec<String>) -> Cmd {
        cmd("DEL").arg(keys).clone()
    }
    pub fn sadd(key: String, values: Vec<String>) -> Cmd {
        cmd("SADD").arg(key).arg(values).clone()
    }
    pub fn smembers(key: String) -> Cmd {
        cmd("SMEMBERS").arg(key).clone()
    }
    pub fn srem(key: String, values: Vec<String>) -> Cmd {
        cmd("SREM").arg(key).arg(values).clone()
    }
    pub fn execute(command: &str, arguments: Vec<RedisParameter>) -> Cmd {
        let mut c = cmd(command);
        for argument in arguments {
            match argument {
                RedisParameter::Int64(i) => c.arg(i),
                RedisParameter::Binary(b) => c.arg(b),
            };
        }
        c
    }
}

impl GuestState {
    /// The app's pool, if `allowed_outbound_hosts` lets the component reach
    /// `address` (`invalid-address` if not, as in Spin).
    fn redis_allowed(&self, address: &str) -> Result<Arc<RedisPool>, v2::Error> {
        if !self.outbound_allows_address(address) {
            tracing::info!(
                "Redis connection to `{}` denied: not in the component's allowed outbound hosts",
                redacted(address)
            );
            return Err(v2::Error::InvalidAddress);
        }
        Ok(Arc::clone(self.redis_pool()))
    }

    fn redis_push(
        &mut self,
        address: String,
        conn: MultiplexedConnection,
    ) -> Result<Resource<RedisConnection>, v2::Error> {
        self.table_mut()
            .push(RedisConnection { address, conn })
            .map_err(|e| v2::Error::Other(e.to_string()))
    }

    fn redis_handle(&self, conn: &Resource<RedisConnection>) -> Result<Handle, v2::Error> {
        let c = self
            .table()
            .get(conn)
            .map_err(|e| v2::Error::Other(e.to_string()))?;
        Ok(Handle {
            conn: c.conn.clone(),
            address: c.address.clone(),
            pool: Arc::clone(self.redis_pool()),
        })
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
        let conn = self.redis_allowed(&address)?.connect(&address).await?;
        self.redis_push(address, conn)
    }

    async fn publish(
        &mut self,
        conn: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), v2::Error> {
        self.redis_handle(&conn)?
            .typed(command::publish(channel, payload))
            .await
    }

    async fn get(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<Option<Vec<u8>>, v2::Error> {
        self.redis_handle(&conn)?.typed(command::get(key)).await
    }

    async fn set(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), v2::Error> {
        self.redis_handle(&conn)?
            .typed(command::set(key, value))
            .await
    }

    async fn incr(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<i64, v2::Error> {
        self.redis_handle(&conn)?.typed(command::incr(key)).await
    }

    async fn del(
        &mut self,
        conn: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> Result<u32, v2::Error> {
        self.redis_handle(&conn)?.typed(command::del(keys)).await
    }

    async fn sadd(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v2::Error> {
        self.redis_handle(&conn)?
            .typed(command::sadd(key, values))
            .await
    }

    async fn smembers(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<Vec<String>, v2::Error> {
        self.redis_handle(&conn)?
            .typed(command::smembers(key))
            .await
    }

    async fn srem(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v2::Error> {
        self.redis_handle(&conn)?
            .typed(command::srem(key, values))
            .await
    }

    async fn execute(
        &mut self,
        conn: Resource<RedisConnection>,
        command: String,
        arguments: Vec<v2::RedisParameter>,
    ) -> Result<Vec<v2::RedisResult>, v2::Error> {
        self.redis_handle(&conn)?
            .results(command::execute(&command, arguments))
            .await
    }

    async fn drop(&mut self, conn: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table_mut().delete(conn)?;
        Ok(())
    }
}

// 3.0.0: the same types as 2.0.0 under another package.
impl From<v2::Error> for v3::Error {
    fn from(e: v2::Error) -> Self {
        match e {
            v2::Error::InvalidAddress => v3::Error::InvalidAddress,
            v2::Error::TooManyConnections => v3::Error::TooManyConnections,
            v2::Error::TypeError => v3::Error::TypeError,
            v2::Error::Other(m) => v3::Error::Other(m),
        }
    }
}

impl From<v3::RedisParameter> for v2::RedisParameter {
    fn from(p: v3::RedisParameter) -> Self {
        match p {
            v3::RedisParameter::Int64(i) => v2::RedisParameter::Int64(i),
            v3::RedisParameter::Binary(b) => v2::RedisParameter::Binary(b),
        }
    }
}

impl From<v2::RedisResult> for v3::RedisResult {
    fn from(r: v2::RedisResult) -> Self {
        match r {
            v2::RedisResult::Nil => v3::RedisResult::Nil,
            v2::RedisResult::Status(s) => v3::RedisResult::Status(s),
            v2::RedisResult::Int64(i) => v3::RedisResult::Int64(i),
            v2::RedisResult::Binary(b) => v3::RedisResult::Binary(b),
        }
    }
}

impl v3::Host for GuestState {}

impl v3::HostConnection for GuestState {
    async fn drop(&mut self, conn: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table_mut().delete(conn)?;
        Ok(())
    }
}

/// The guest's connection, taken out of the instance's state inside `with`.
fn handle<T>(
    accessor: &Accessor<T, HasSelf<GuestState>>,
    conn: &Resource<RedisConnection>,
) -> Result<Handle, v3::Error> {
    Ok(accessor.with(|mut access| access.get().redis_handle(conn))?)
}

/// Runs `cmd` on the guest's connection and reads its reply as `R`.
async fn typed<T, R: redis::FromRedisValue>(
    accessor: &Accessor<T, HasSelf<GuestState>>,
    conn: &Resource<RedisConnection>,
    cmd: redis::Cmd,
) -> Result<R, v3::Error> {
    Ok(handle(accessor, conn)?.typed(cmd).await?)
}

impl<T> v3::HostConnectionWithStore<T> for HasSelf<GuestState> {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> Result<Resource<RedisConnection>, v3::Error> {
        let pool = accessor.with(|mut access| access.get().redis_allowed(&address))?;
        let conn = pool.connect(&address).await?;
        Ok(accessor.with(|mut access| access.get().redis_push(address, conn))?)
    }

    async fn publish(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), v3::Error> {
        typed(accessor, &conn, command::publish(channel, payload)).await
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<Option<Vec<u8>>, v3::Error> {
        typed(accessor, &conn, command::get(key)).await
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), v3::Error> {
        typed(accessor, &conn, command::set(key, value)).await
    }

    async fn incr(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<i64, v3::Error> {
        typed(accessor, &conn, command::incr(key)).await
    }

    async fn del(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> Result<u32, v3::Error> {
        typed(accessor, &conn, command::del(keys)).await
    }

    async fn sadd(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v3::Error> {
        typed(accessor, &conn, command::sadd(key, values)).await
    }

    async fn smembers(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<Vec<String>, v3::Error> {
        typed(accessor, &conn, command::smembers(key)).await
    }

    async fn srem(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v3::Error> {
        typed(accessor, &conn, command::srem(key, values)).await
    }

    async fn execute(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        command: String,
        arguments: Vec<v3::RedisParameter>,
    ) -> Result<Vec<v3::RedisResult>, v3::Error> {
        let arguments = arguments.into_iter().map(Into::into).collect();
        let results = handle(accessor, &conn)?
            .results(command::execute(&command, arguments))
            .await?;
        Ok(results.into_iter().map(Into::into).collect())
    }
}
