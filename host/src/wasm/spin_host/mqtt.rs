//! `fermyon:spin/mqtt@2.0.0`: publish to an MQTT broker, allowed only by
//! `allowed_outbound_hosts` (`mqtt://host[:port]`, default 1883; Spin's
//! `connection-failed("address … is not permitted")` when not). Each
//! guest connection is an MQTT session of its own (a broker knows its
//! clients by id, so sessions are not shared between instances);
//! `publish` returns once the broker has the message as the QoS asks:
//! sent (at most once), PUBACK (at least once) or PUBCOMP (exactly once).

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS};
use wasmtime::component::Resource;

use super::bindings::fermyon::spin::mqtt as v2;
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

/// A guest's open MQTT session.
pub struct MqttConnection {
    client: AsyncClient,
    events: EventLoop,
}

fn failed(e: impl std::fmt::Display) -> v2::Error {
    v2::Error::ConnectionFailed(e.to_string())
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
        if !self.outbound_allows_address(&address) {
            return Err(v2::Error::ConnectionFailed(format!(
                "address {address} is not permitted"
            )));
        }
        let uri = address
            .parse::<http::Uri>()
            .map_err(|_| v2::Error::InvalidAddress)?;
        let host = uri.host().ok_or(v2::Error::InvalidAddress)?.to_owned();
        let port = uri.port_u16().unwrap_or(1883);
        let client_id = format!("wasmhost-{:016x}", fastrand::u64(..));
        let mut options = MqttOptions::new(client_id, host, port);
        options
            .set_keep_alive(MIN_KEEP_ALIVE.max(Duration::from_secs(keep_alive_interval_in_secs)));
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
        self.table_mut()
            .push(MqttConnection { client, events })
            .map_err(|e| v2::Error::Other(e.to_string()))
    }

    async fn publish(
        &mut self,
        conn: Resource<MqttConnection>,
        topic: String,
        payload: Vec<u8>,
        qos: v2::Qos,
    ) -> Result<(), v2::Error> {
        let session = self
            .table_mut()
            .get_mut(&conn)
            .map_err(|e| v2::Error::Other(e.to_string()))?;
        let qos = match qos {
            v2::Qos::AtMostOnce => QoS::AtMostOnce,
            v2::Qos::AtLeastOnce => QoS::AtLeastOnce,
            v2::Qos::ExactlyOnce => QoS::ExactlyOnce,
        };
        session
            .client
            .publish(topic, qos, false, payload)
            .await
            .map_err(|e| v2::Error::Other(e.to_string()))?;
        let events = &mut session.events;
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

    async fn drop(&mut self, conn: Resource<MqttConnection>) -> wasmtime::Result<()> {
        let session = self.table_mut().delete(conn)?;
        // Best effort: tell the broker; the socket closes with the event loop.
        let _ = session.client.try_disconnect();
        Ok(())
    }
}
