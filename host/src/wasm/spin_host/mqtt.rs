//! `fermyon:spin/mqtt@2.0.0` and `spin:mqtt/mqtt@3.0.0` (the same
//! functions, `async`: WASIp3 components): publish to an MQTT broker, allowed only by
//! `allowed_outbound_hosts` (`mqtt://host[:port]`, default 1883; Spin's
//! `connection-failed("address … is not permitted")` when not). Each
//! guest connection is an MQTT session of its own (a broker knows its
//! clients by id, so sessions are not shared between instances);
//! `publish` returns once the broker has the message as the QoS asks:
//! sent (at most once), PUBACK (at least once) or PUBCOMP (exactly once).

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS};
use wasmtime::component::{Accessor, HasSelf, Resource};

use super::bindings::fermyon::spin::mqtt as v2;
use super::bindings_p3::spin::mqtt::mqtt as v3;
use crate::wasm::state::GuestState;

/// How long connecting (TCP and CONNACK) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a publish may wait for its acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages queued in the client before `publish` waits (one at a time is
/// all a guest call sends).
const CLIENT_QUEUE: usize = 10;

/// The shortest keep-alive the client library accepts.
const MIN_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// A guest's open MQTT session. The event loop sits behind an async lock
/// so that a publish can drive it without borrowing the instance's state
/// (WASIp3 calls), one publish at a time.
pub struct MqttConnection {
    client: AsyncClient,
    events: Arc<tokio::sync::Mutex<EventLoop>>,
}

fn failed(e: impl std::fmt::Display) -> v2::Error {
    v2::Error::ConnectionFailed(e.to_string())
}

/// Whether `allowed_outbound_hosts` lets the component reach `address`
/// (Spin's text if not).
fn allowed(state: &GuestState, address: &str) -> Result<(), v2::Error> {
    if state.outbound_allows_address(address) {
        Ok(())
    } else {
        Err(v2::Error::ConnectionFailed(format!(
            "address {address} is not permitted"
        )))
    }
}

/// Opens a session and waits for the broker's CONNACK.
async fn connect(
    address: &str,
    username: String,
    password: String,
    keep_alive_interval_in_secs: u64,
) -> Result<MqttConnection, v2::Error> {
    let uri = address
        .parse::<http::Uri>()
        .map_err(|_| v2::Error::InvalidAddress)?;
    let host = uri.host().ok_or(v2::Error::InvalidAddress)?.to_owned();
    let port = uri.port_u16().unwrap_or(1883);
    let client_id = format!("wasmhost-{:016x}", fastrand::u64(..));
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_keep_alive(MIN_KEEP_ALIVE.max(Duration::from_secs(keep_alive_interval_in_secs)));
    if !username.is_empty() {
        options.set_credentials(username, password);
    }
    let (client, mut events) = AsyncClient::new(options, CLIENT_QUEUE);
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => return Ok(()),
                Ok(_) => continue,
                Err(e) => return Err(failed(e)),
            }
        }
    })
    .await
    .map_err(|_| failed(format!("no CONNACK within {CONNECT_TIMEOUT:?}")))?;
    connected?;
    Ok(MqttConnection {
        client,
        events: Arc::new(tokio::sync::Mutex::new(events)),
    })
}

/// Publishes and waits until the broker has the message as `qos` asks.
async fn publish(
    (client, events): (AsyncClient, Arc<tokio::sync::Mutex<EventLoop>>),
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
) -> Result<(), v2::Error> {
    let mut events = events.lock().await;
    client
        .publish(topic, qos, false, payload)
        .await
        .map_err(|e| v2::Error::Other(e.to_string()))?;
    tokio::time::timeout(PUBLISH_TIMEOUT, async {
        loop {
            match (qos, events.poll().await.map_err(failed)?) {
                (QoS::AtMostOnce, Event::Outgoing(Outgoing::Publish(_)))
                | (QoS::AtLeastOnce, Event::Incoming(Incoming::PubAck(_)))
                | (QoS::ExactlyOnce, Event::Incoming(Incoming::PubComp(_))) => return Ok(()),
                _ => continue,
            }
        }
    })
    .await
    .map_err(|_| {
        v2::Error::Other(format!(
            "the broker did not acknowledge within {PUBLISH_TIMEOUT:?}"
        ))
    })?
}

impl GuestState {
    fn mqtt_push(&mut self, conn: MqttConnection) -> Result<Resource<MqttConnection>, v2::Error> {
        self.table_mut()
            .push(conn)
            .map_err(|e| v2::Error::Other(e.to_string()))
    }

    fn mqtt_session(
        &self,
        conn: &Resource<MqttConnection>,
    ) -> Result<(AsyncClient, Arc<tokio::sync::Mutex<EventLoop>>), v2::Error> {
        let session = self
            .table()
            .get(conn)
            .map_err(|e| v2::Error::Other(e.to_string()))?;
        Ok((session.client.clone(), Arc::clone(&session.events)))
    }

    fn mqtt_close(&mut self, conn: Resource<MqttConnection>) -> wasmtime::Result<()> {
        let session = self.table_mut().delete(conn)?;
        // Best effort: tell the broker; the socket closes with the event loop.
        let _ = session.client.try_disconnect();
        Ok(())
    }
}

impl v2::Host for GuestState {}

impl v2::HostConnection for GuestState {
    async fn open(
        &mut self,
        address: String,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> Result<Resource<MqttConnection>, v2::Error> {
        allowed(self, &address)?;
        let conn = connect(&address, username, password, keep_alive_interval_in_secs).await?;
        self.mqtt_push(conn)
    }

    async fn publish(
        &mut self,
        conn: Resource<MqttConnection>,
        topic: String,
        payload: Vec<u8>,
        qos: v2::Qos,
    ) -> Result<(), v2::Error> {
        let qos = match qos {
            v2::Qos::AtMostOnce => QoS::AtMostOnce,
            v2::Qos::AtLeastOnce => QoS::AtLeastOnce,
            v2::Qos::ExactlyOnce => QoS::ExactlyOnce,
        };
        publish(self.mqtt_session(&conn)?, topic, payload, qos).await
    }

    async fn drop(&mut self, conn: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.mqtt_close(conn)
    }
}

// 3.0.0: the same types as 2.0.0 under another package.
impl From<v2::Error> for v3::Error {
    fn from(e: v2::Error) -> Self {
        match e {
            v2::Error::InvalidAddress => v3::Error::InvalidAddress,
            v2::Error::TooManyConnections => v3::Error::TooManyConnections,
            v2::Error::ConnectionFailed(m) => v3::Error::ConnectionFailed(m),
            v2::Error::Other(m) => v3::Error::Other(m),
        }
    }
}

impl v3::Host for GuestState {}

impl v3::HostConnection for GuestState {
    async fn drop(&mut self, conn: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.mqtt_close(conn)
    }
}

// Each borrow of the instance's state inside `with`; connecting and
// publishing outside it.
impl<T> v3::HostConnectionWithStore<T> for HasSelf<GuestState> {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> Result<Resource<MqttConnection>, v3::Error> {
        accessor.with(|mut access| allowed(access.get(), &address))?;
        let conn = connect(&address, username, password, keep_alive_interval_in_secs).await?;
        Ok(accessor.with(|mut access| access.get().mqtt_push(conn))?)
    }

    async fn publish(
        accessor: &Accessor<T, Self>,
        conn: Resource<MqttConnection>,
        topic: String,
        payload: Vec<u8>,
        qos: v3::Qos,
    ) -> Result<(), v3::Error> {
        let qos = match qos {
            v3::Qos::AtMostOnce => QoS::AtMostOnce,
            v3::Qos::AtLeastOnce => QoS::AtLeastOnce,
            v3::Qos::ExactlyOnce => QoS::ExactlyOnce,
        };
        let session = accessor.with(|mut access| access.get().mqtt_session(&conn))?;
        Ok(publish(session, topic, payload, qos).await?)
    }
}
