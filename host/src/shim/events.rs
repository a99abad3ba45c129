//! Task events to containerd, in order, over its ttrpc socket
//! (`TTRPC_ADDRESS`, service `containerd.services.events.ttrpc.v1.Events`).
//!
//! One thread sends them, one at a time, in the order they were queued:
//! an exit must never overtake the start before it. A send that fails is
//! retried over a new connection for a while, because a lost `/tasks/exit`
//! leaves a pod terminating forever.

#![forbid(unsafe_code)]

use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use containerd_shim_protos::events::task::{TaskCreate, TaskDelete, TaskExit, TaskStart};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageDyn;
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::topics;
use containerd_shim_protos::ttrpc;
use containerd_shim_protos::EventsClient;

use super::log;

/// How long one event is retried before it is given up (logged).
const RETRY_FOR: Duration = Duration::from_secs(30);

/// A task event.
pub enum Event {
    /// `/tasks/create`.
    Create(TaskCreate),
    /// `/tasks/start`.
    Start(TaskStart),
    /// `/tasks/exit`.
    Exit(TaskExit),
    /// `/tasks/delete`.
    Delete(TaskDelete),
}

impl Event {
    fn topic(&self) -> &'static str {
        match self {
            Event::Create(_) => topics::TASK_CREATE_EVENT_TOPIC,
            Event::Start(_) => topics::TASK_START_EVENT_TOPIC,
            Event::Exit(_) => topics::TASK_EXIT_EVENT_TOPIC,
            Event::Delete(_) => topics::TASK_DELETE_EVENT_TOPIC,
        }
    }

    fn message(&self) -> &dyn MessageDyn {
        match self {
            Event::Create(e) => e,
            Event::Start(e) => e,
            Event::Exit(e) => e,
            Event::Delete(e) => e,
        }
    }
}

/// An `Any` as containerd's `typeurl` writes it: the message's full
/// protobuf name, no URL prefix.
pub fn to_any(message: &dyn MessageDyn) -> Any {
    let mut any = Any::new();
    any.type_url = message.descriptor_dyn().full_name().to_owned();
    any.value = message.write_to_bytes_dyn().unwrap_or_default();
    any
}

/// A protobuf timestamp.
pub fn timestamp(at: SystemTime) -> Timestamp {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = since.as_secs() as i64;
    ts.nanos = since.subsec_nanos() as i32;
    ts
}

enum Queued {
    Event(Event, SystemTime),
    Flush(mpsc::Sender<()>),
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<Queued>,
}

impl Publisher {
    /// Starts the sender thread for containerd at `ttrpc_address` (a path),
    /// events stamped with `namespace`.
    pub fn start(ttrpc_address: String, namespace: String) -> Self {
        let (tx, rx) = mpsc::channel::<Queued>();
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                let mut client: Option<EventsClient> = None;
                for queued in rx {
                    match queued {
                        Queued::Flush(done) => {
                            let _ = done.send(());
                        }
                        Queued::Event(event, at) => {
                            send(&mut client, &ttrpc_address, &namespace, &event, at)
                        }
                    }
                }
            })
            .expect("cannot start the events thread");
        Publisher { tx }
    }

    /// Queues `event`, stamped now.
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(Queued::Event(event, SystemTime::now()));
    }

    /// Waits (at most `within`) until every event queued before is sent or
    /// given up.
    pub fn flush(&self, within: Duration) {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Queued::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(within);
        }
    }
}

fn send(
    client: &mut Option<EventsClient>,
    address: &str,
    namespace: &str,
    event: &Event,
    at: SystemTime,
) {
    let mut envelope = Envelope::new();
    envelope.timestamp = Some(timestamp(at)).into();
    envelope.namespace = namespace.to_owned();
    envelope.topic = event.topic().to_owned();
    envelope.event = Some(to_any(event.message())).into();
    let mut request = ForwardRequest::new();
    request.envelope = Some(envelope).into();
    let started = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        if client.is_none() {
            match ttrpc::Client::connect(&format!("unix://{address}")) {
                Ok(c) => *client = Some(EventsClient::new(c)),
                Err(e) => log::line(&format!("events: cannot connect to {address}: {e}")),
            }
        }
        if let Some(c) = client.as_ref() {
            match c.forward(ttrpc::context::with_timeout(5_000_000_000), &request) {
                Ok(_) => {
                    log::debug(&format!("event {} sent", event.topic()));
                    return;
                }
                Err(e) => {
                    log::line(&format!("events: {} not sent: {e}", event.topic()));
                    *client = None;
                }
            }
        }
        if started.elapsed() > RETRY_FOR {
            log::line(&format!("events: gave up {}", event.topic()));
            return;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::Message as _;

    #[test]
    fn any_carries_the_protobuf_name_as_containerd_expects() {
        let mut exit = TaskExit::new();
        exit.container_id = "c".into();
        exit.exit_status = 137;
        let any = to_any(&exit);
        assert_eq!(any.type_url, "containerd.events.TaskExit");
        let back = TaskExit::parse_from_bytes(&any.value).unwrap();
        assert_eq!(back.exit_status, 137);
    }
}
