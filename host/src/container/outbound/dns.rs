//! The container's resolver, run by wasmhost: every DNS query the
//! container sends off loopback is answered here, so that a name under a
//! `*.domain` entry is allowed by address before the container has the
//! address (as Cilium's and OpenShift's DNS egress policies do).
//!
//! Where it listens: a UDP and a TCP socket on `127.0.0.1`, and on `::1`
//! when the namespace has IPv6, *inside* the container's namespace, on
//! ports the kernel picks from the ephemeral range (so never port 53, and
//! never a service's usual port): the container may run a DNS server of
//! its own on `127.0.0.1:53` or `[::1]:53`, and binding it finds the
//! address free. A socket belongs to the namespace it was made in, so a
//! short-lived thread enters the namespace (`setns` on the held
//! descriptor), makes them and ends; the serving thread stays in
//! wasmhost's own namespace. The filter's `nat` tables redirect every
//! query to port 53 that leaves loopback there ([`super::filter`]), so
//! the image's `/etc/resolv.conf` needs no change (whatever it names,
//! slirp4netns' `10.0.2.3` or `fd00::3`, or a host's resolver copied in
//! at build time; when it names nothing, libc's `127.0.0.1` is redirected
//! too, [`redirect`]), and no other resolver is reachable: no way around
//! this one. (A query over IPv6 from a link-local address, sent in the
//! container's first second before its address has passed duplicate
//! address detection, cannot be answered from `::1`, which has no route
//! to the link; the client's retry comes from its address and is.)
//!
//! What it does with a query: forwards it unchanged to the first
//! `nameserver` of the host's `/etc/resolv.conf` (as slirp4netns'
//! resolver would), over the same transport (TCP for a truncated answer's
//! retry). Before the answer goes back, its A and AAAA records, when the
//! question's name is under a `*.domain` entry, are added to the allowed
//! set with that entry's ports and the filter is reloaded
//! ([`super::refresh::Enforced`]): by the time the container connects,
//! the address is allowed. Answers for other names are passed on too (DNS
//! itself is not what is restricted) and allow nothing. When the upstream
//! does not answer, or the filter cannot be reloaded, the container gets
//! SERVFAIL.
//!
//! Queries are answered concurrently, each on a task of its own (a
//! single-threaded tokio runtime on the resolver's thread; the filter's
//! reload, a process and a lock, on its blocking pool), so a slow answer
//! holds no other: at most [`crate::limits::CONTAINER_DNS_MAX_IN_FLIGHT`]
//! at once, past which a UDP query is dropped and a TCP connection
//! closed, as a loaded resolver does. Each waits at most
//! [`UPSTREAM_TIMEOUT`] for the upstream, and a TCP client at most
//! [`CLIENT_TIMEOUT`] for each of its queries.

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::timeout;

use super::filter::{self, Ports, Redirect};
use super::refresh::Enforced;
use super::Namespace;

/// How long the upstream resolver has to answer: glibc's own per-try
/// timeout (`options timeout:5`) is longer, so the container's retry is
/// not raced.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a TCP client of ours may take to send a query, or to take
/// its answer: glibc sends its at once. An idle connection is closed
/// after it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// The pause after a failed accept (out of descriptors, say), so that the
/// accept loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The largest DNS message (its length is two bytes over TCP).
const MAX_MESSAGE: usize = 65535;

/// Which queries go to the resolver, given the image's own
/// `/etc/resolv.conf` (`None`: it has none, or it cannot be read). One
/// that names a nameserver has its loopback queries left alone (a server
/// it runs for itself there is its own); one that names none has libc ask
/// `127.0.0.1`, so those are redirected too.
pub fn redirect(image_resolv_conf: Option<&str>) -> Redirect {
    let names_one = image_resolv_conf.is_some_and(|text| {
        text.lines()
            .any(|line| line.split_whitespace().next() == Some("nameserver"))
    });
    match names_one {
        true => Redirect::LeavingLoopback,
        false => Redirect::Every,
    }
}

/// A UDP and a TCP socket on one address.
struct Pair {
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
}

impl Pair {
    fn bind(address: IpAddr) -> std::io::Result<Self> {
        let here = (address, 0);
        let udp = std::net::UdpSocket::bind(here)?;
        let tcp = std::net::TcpListener::bind(here)?;
        // Served by tokio, which wants them non-blocking.
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        Ok(Self { udp, tcp })
    }

    fn ports(&self) -> Result<Ports> {
        Ok(Ports {
            udp: self
                .udp
                .local_addr()
                .context("resolver's UDP address")?
                .port(),
            tcp: self
                .tcp
                .local_addr()
                .context("resolver's TCP address")?
                .port(),
        })
    }
}

/// The resolver's sockets, made in the container's namespace.
pub struct Sockets {
    v4: Pair,
    /// On `::1`, when the namespace has IPv6.
    v6: Option<Pair>,
}

impl Sockets {
    /// Binds them on `127.0.0.1` and `::1` inside `netns`.
    pub fn bind(netns: &Namespace) -> Result<Self> {
        let netns = netns.try_clone()?;
        std::thread::Builder::new()
            .name("dns-bind".to_owned())
            .spawn(move || -> Result<Self> {
                // This thread alone moves; it ends right after.
                nix::sched::setns(netns.file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .context("cannot enter the container's network namespace")?;
                Self::bind_here()
            })
            .context("cannot start a thread to bind the container's resolver")?
            .join()
            .map_err(|_| anyhow!("the thread binding the container's resolver panicked"))?
    }

    /// Binds them in the calling thread's namespace.
    fn bind_here() -> Result<Self> {
        let v4 = Pair::bind(Ipv4Addr::LOCALHOST.into())
            .context("cannot bind the container's resolver on 127.0.0.1")?;
        // No `::1` when the kernel has no IPv6, or it is disabled in the
        // namespace: then DNS over IPv6 is refused by the filter.
        let v6 = match Pair::bind(Ipv6Addr::LOCALHOST.into()) {
            Ok(pair) => Some(pair),
            Err(e) => {
                tracing::debug!("outbound: no resolver on ::1 ({e})");
                None
            }
        };
        Ok(Self { v4, v6 })
    }

    /// Where they listen and which queries go there, for the filter.
    pub fn resolver(&self, redirect: Redirect) -> Result<filter::Resolver> {
        Ok(filter::Resolver {
            v4: self.v4.ports()?,
            v6: self.v6.as_ref().map(Pair::ports).transpose()?,
            redirect,
        })
    }
}

/// The serving thread; dropped, it stops at once (queries in flight are
/// dropped with it).
pub struct Resolver {
    _stop: oneshot::Sender<()>,
}

impl Resolver {
    /// Serves `sockets`, forwarding to `upstream`; learned addresses go
    /// into `enforced`, kept at least `at_least`.
    pub fn start(
        sockets: Sockets,
        upstream: SocketAddr,
        enforced: Arc<Enforced>,
        at_least: Duration,
        name: &str,
    ) -> Result<Self> {
        let (stop, stopped) = oneshot::channel();
        let span = tracing::info_span!("outbound", container = %name);
        let server = Arc::new(Server::new(upstream, enforced, at_least));
        let thread_name = format!("dns-{name}");
        let (built, was_built) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(thread_name.clone())
            .spawn(move || {
                let _entered = span.enter();
                // Made, used and dropped on this thread: a runtime may not
                // be dropped where the caller may be (inside another).
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name(thread_name)
                    .build();
                let runtime = match runtime {
                    Ok(runtime) => {
                        let _ = built.send(Ok(()));
                        runtime
                    }
                    Err(e) => {
                        let _ = built.send(Err(e));
                        return;
                    }
                };
                if let Err(e) = runtime.block_on(server.serve(sockets, stopped)) {
                    tracing::error!("outbound: the container's resolver stopped: {e:#}");
                }
            })
            .context("cannot start the container's resolver thread")?;
        was_built
            .recv()
            .context("the container's resolver thread ended at its start")?
            .context("cannot make the container's resolver runtime")?;
        Ok(Self { _stop: stop })
    }
}

struct Server {
    upstream: SocketAddr,
    enforced: Arc<Enforced>,
    at_least: Duration,
    /// A permit per query (or TCP connection) in flight, `cap` of them.
    in_flight: Arc<Semaphore>,
    cap: usize,
    /// Whether a query was dropped for the cap yet (said once in the log).
    overloaded: AtomicBool,
}

impl Server {
    fn new(upstream: SocketAddr, enforced: Arc<Enforced>, at_least: Duration) -> Self {
        Self::with_cap(
            upstream,
            enforced,
            at_least,
            crate::limits::CONTAINER_DNS_MAX_IN_FLIGHT,
        )
    }

    fn with_cap(
        upstream: SocketAddr,
        enforced: Arc<Enforced>,
        at_least: Duration,
        cap: usize,
    ) -> Self {
        Self {
            upstream,
            enforced,
            at_least,
            in_flight: Arc::new(Semaphore::new(cap)),
            cap,
            overloaded: AtomicBool::new(false),
        }
    }

    /// Serves every socket until `stop` is dropped.
    async fn serve(self: Arc<Self>, sockets: Sockets, stop: oneshot::Receiver<()>) -> Result<()> {
        for pair in std::iter::once(sockets.v4).chain(sockets.v6) {
            let udp =
                UdpSocket::from_std(pair.udp).context("cannot serve the resolver's UDP socket")?;
            let tcp = TcpListener::from_std(pair.tcp)
                .context("cannot serve the resolver's TCP socket")?;
            tokio::spawn(self.clone().serve_datagrams(Arc::new(udp)));
            tokio::spawn(self.clone().serve_streams(tcp));
        }
        // Nothing is ever sent: the sender's drop is the signal. The
        // runtime, dropped after, drops every task.
        let _ = stop.await;
        Ok(())
    }

    /// A permit for one more query in flight, if the cap allows it.
    fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let permit = self.in_flight.clone().try_acquire_owned().ok();
        if permit.is_none() && !self.overloaded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "outbound: the container has {} DNS queries in flight; dropping more until some are answered",
                self.cap
            );
        }
        permit
    }

    async fn serve_datagrams(self: Arc<Self>, socket: Arc<UdpSocket>) {
        let mut buffer = vec![0u8; MAX_MESSAGE];
        loop {
            let (length, client) = match socket.recv_from(&mut buffer).await {
                Ok(received) => received,
                Err(e) => {
                    tracing::warn!("outbound: resolver receive: {e}");
                    continue;
                }
            };
            let Some(permit) = self.admit() else {
                continue;
            };
            let query = buffer[..length].to_vec();
            let (server, socket) = (self.clone(), socket.clone());
            tokio::spawn(async move {
                let _permit = permit;
                if let Some(answer) = server.answer(&query, Transport::Udp).await {
                    if let Err(e) = socket.send_to(&answer, client).await {
                        tracing::warn!("outbound: resolver send to {client}: {e}");
                    }
                }
            });
        }
    }

    async fn serve_streams(self: Arc<Self>, listener: TcpListener) {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("outbound: resolver accept: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            // Past the cap the connection is closed (dropped) at once.
            let Some(permit) = self.admit() else {
                continue;
            };
            let server = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                server.serve_stream(stream).await;
            });
        }
    }

    /// Queries on one TCP connection, one after another, until the client
    /// closes it or is slow.
    async fn serve_stream(&self, mut stream: TcpStream) {
        while let Ok(Ok(query)) = timeout(CLIENT_TIMEOUT, read_framed(&mut stream)).await {
            let Some(answer) = self.answer(&query, Transport::Tcp).await else {
                return;
            };
            if !matches!(
                timeout(CLIENT_TIMEOUT, write_framed(&mut stream, &answer)).await,
                Ok(Ok(()))
            ) {
                return;
            }
        }
    }

    /// The answer to pass back for `query`: the upstream's, once what it
    /// allows is in the filter; SERVFAIL when that fails; nothing for
    /// what is no DNS query.
    async fn answer(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let asked = match Message::from_vec(query) {
            Ok(asked) => asked,
            Err(e) => {
                tracing::debug!("outbound: not a DNS query ({e})");
                return None;
            }
        };
        let answered = match forward(query, self.upstream, transport).await {
            Ok(answer) => self.learn(&answer).await.map(|()| answer),
            Err(e) => Err(e.context(format!("upstream resolver {}", self.upstream))),
        };
        match answered {
            Ok(answer) => Some(answer),
            Err(e) => {
                tracing::warn!("outbound: {e:#}; answering SERVFAIL");
                let mut failed = Message::error_msg(
                    asked.metadata.id,
                    asked.metadata.op_code,
                    ResponseCode::ServFail,
                );
                failed.queries = asked.queries;
                failed.to_vec().ok()
            }
        }
    }

    /// Adds what `answer` allows (when its name is under a pattern) and
    /// reloads the filter if that is something new: a process run under
    /// a lock, so on the blocking pool.
    async fn learn(&self, answer: &[u8]) -> Result<()> {
        let Some((name, addresses)) = addresses(answer) else {
            return Ok(());
        };
        if addresses.is_empty() {
            return Ok(());
        }
        let (enforced, at_least) = (self.enforced.clone(), self.at_least);
        tokio::task::spawn_blocking(move || {
            let now = Instant::now();
            enforced.change(|allowed| allowed.learn(&name, &addresses, now, at_least))
        })
        .await
        .context("the filter's reload did not finish")?
    }
}

#[derive(Debug, Clone, Copy)]
enum Transport {
    Udp,
    Tcp,
}

/// `query` sent to `upstream` over `transport`; its answer (the one with
/// the query's id, over UDP), within [`UPSTREAM_TIMEOUT`].
async fn forward(query: &[u8], upstream: SocketAddr, transport: Transport) -> Result<Vec<u8>> {
    let exchange = async {
        match transport {
            Transport::Udp => {
                let local: IpAddr = match upstream {
                    SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                    SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
                };
                let socket = UdpSocket::bind((local, 0))
                    .await
                    .context("cannot bind a UDP socket")?;
                socket.connect(upstream).await.context("cannot connect")?;
                socket.send(query).await.context("cannot send the query")?;
                let mut buffer = vec![0u8; MAX_MESSAGE];
                loop {
                    let length = socket.recv(&mut buffer).await.context("no answer")?;
                    // A stray datagram (another id) is no answer to this.
                    if length >= 2 && query.len() >= 2 && buffer[..2] == query[..2] {
                        buffer.truncate(length);
                        return Ok(buffer);
                    }
                }
            }
            Transport::Tcp => {
                let mut stream = TcpStream::connect(upstream)
                    .await
                    .context("cannot connect over TCP")?;
                write_framed(&mut stream, query)
                    .await
                    .context("cannot send the query")?;
                read_framed(&mut stream).await.context("no answer")
            }
        }
    };
    timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow!("no answer within {UPSTREAM_TIMEOUT:?}"))?
}

/// One DNS message over TCP: its length in two bytes, then it.
async fn read_framed(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).await?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

async fn write_framed(
    stream: &mut (impl AsyncWrite + Unpin),
    message: &[u8],
) -> std::io::Result<()> {
    let length = u16::try_from(message.len())
        .map_err(|_| std::io::Error::other("a DNS message over 64 KiB"))?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}

/// The question's name of a DNS answer and the A and AAAA addresses in
/// its answer section, each with its TTL (the name in lower case, with
/// no final dot); `None` for what is no answer
/// with a question. The answer section holds the question's name's
/// records and those of the CNAMEs it leads to: all are what the name
/// resolved to.
pub fn addresses(answer: &[u8]) -> Option<(String, Vec<(IpAddr, u32)>)> {
    let message = Message::from_vec(answer).ok()?;
    let name = message.queries.first()?.name().to_ascii();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let addresses = message
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some((IpAddr::V4(a.0), record.ttl)),
            RData::AAAA(aaaa) => Some((IpAddr::V6(aaaa.0), record.ttl)),
            _ => None,
        })
        .collect();
    Some((name, addresses))
}

/// The first `nameserver` of a resolv.conf text.
fn first_nameserver(text: &str) -> Option<IpAddr> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("nameserver"), Some(address)) => address.parse().ok(),
            _ => None,
        }
    })
}

/// The host's resolver, which queries are forwarded to: the first
/// `nameserver` of `path` (the host's `/etc/resolv.conf`), port 53.
pub fn upstream(path: &Path) -> Result<SocketAddr> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}` for the host's resolver", path.display()))?;
    let address = first_nameserver(&text).with_context(|| {
        format!(
            "`{}` names no nameserver for the container's resolver to ask",
            path.display()
        )
    })?;
    Ok(SocketAddr::new(address, 53))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::{A, AAAA, CNAME};
    use hickory_proto::rr::{Name, Record, RecordType};

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn answer(question: &str, records: Vec<Record>) -> Vec<u8> {
        let mut message = Message::new(7, MessageType::Response, OpCode::Query);
        message.add_query(Query::query(name(question), RecordType::A));
        for record in records {
            message.add_answer(record);
        }
        message.to_vec().unwrap()
    }

    #[test]
    fn an_answers_addresses_are_read_with_their_ttls_through_cnames() {
        let bytes = answer(
            "API.example.test.",
            vec![
                Record::from_rdata(
                    name("api.example.test."),
                    60,
                    RData::CNAME(CNAME(name("lb.cloud.test."))),
                ),
                Record::from_rdata(
                    name("lb.cloud.test."),
                    30,
                    RData::A(A(Ipv4Addr::new(10, 1, 1, 1))),
                ),
                Record::from_rdata(
                    name("lb.cloud.test."),
                    40,
                    RData::AAAA(AAAA("fd00::1".parse().unwrap())),
                ),
            ],
        );
        let (question, found) = addresses(&bytes).unwrap();
        assert_eq!(question, "api.example.test");
        assert_eq!(
            found,
            [
                (IpAddr::from([10, 1, 1, 1]), 30),
                ("fd00::1".parse().unwrap(), 40)
            ]
        );
    }

    #[test]
    fn what_is_no_answer_gives_no_addresses() {
        assert_eq!(addresses(b"\x00\x01garbage"), None);
        let (_, found) = addresses(&answer("nothing.test.", vec![])).unwrap();
        assert!(found.is_empty());
    }

    #[test]
    fn the_first_nameserver_of_resolv_conf_is_the_upstream() {
        let text = "# a comment\nsearch example.test\nnameserver fe80::1%eth0\nnameserver 10.255.255.53\nnameserver 10.0.0.2\n";
        assert_eq!(
            first_nameserver(text),
            Some(IpAddr::from([10, 255, 255, 53]))
        );
        assert_eq!(first_nameserver("options ndots:5\n"), None);
        let missing = upstream(Path::new("/nonexistent/resolv.conf")).unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/resolv.conf"),
            "{missing}"
        );
    }

    /// A real exchange over loopback: the forwarder passes the upstream's
    /// answer on unchanged, over UDP and over TCP.
    #[tokio::test]
    async fn queries_are_forwarded_unchanged_over_udp_and_tcp() {
        use std::io::{Read as _, Write as _};
        let reply = answer(
            "api.example.test.",
            vec![Record::from_rdata(
                name("api.example.test."),
                5,
                RData::A(A(Ipv4Addr::new(10, 2, 2, 2))),
            )],
        );
        let query = query(7, "api.example.test.");

        // A UDP and a TCP socket on one port: the kernel picks the UDP
        // port, and another test may hold the same TCP port; try again.
        let (udp, tcp) = (0..50)
            .find_map(|_| {
                let udp = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
                let tcp = std::net::TcpListener::bind(udp.local_addr().ok()?).ok()?;
                Some((udp, tcp))
            })
            .expect("a free UDP and TCP port pair on loopback");
        let upstream = udp.local_addr().unwrap();
        let (expected_query, udp_reply) = (query.clone(), reply.clone());
        let udp_server = std::thread::spawn(move || {
            let mut buffer = [0u8; 512];
            let (length, from) = udp.recv_from(&mut buffer).unwrap();
            assert_eq!(buffer[..length], expected_query[..]);
            udp.send_to(&udp_reply, from).unwrap();
        });
        let (expected_query, tcp_reply) = (query.clone(), reply.clone());
        let tcp_server = std::thread::spawn(move || {
            let (mut stream, _) = tcp.accept().unwrap();
            let mut length = [0u8; 2];
            stream.read_exact(&mut length).unwrap();
            let mut got = vec![0u8; usize::from(u16::from_be_bytes(length))];
            stream.read_exact(&mut got).unwrap();
            assert_eq!(got, expected_query);
            let mut framed = u16::try_from(tcp_reply.len())
                .unwrap()
                .to_be_bytes()
                .to_vec();
            framed.extend_from_slice(&tcp_reply);
            stream.write_all(&framed).unwrap();
        });
        assert_eq!(
            forward(&query, upstream, Transport::Udp).await.unwrap(),
            reply
        );
        assert_eq!(
            forward(&query, upstream, Transport::Tcp).await.unwrap(),
            reply
        );
        udp_server.join().unwrap();
        tcp_server.join().unwrap();
    }

    fn query(id: u16, asked: &str) -> Vec<u8> {
        let mut query = Message::new(id, MessageType::Query, OpCode::Query);
        query.add_query(Query::query(name(asked), RecordType::A));
        query.to_vec().unwrap()
    }

    /// An empty answer to `query` (nothing to learn).
    fn empty_answer(query: &[u8]) -> Vec<u8> {
        let asked = Message::from_vec(query).unwrap();
        let mut reply = Message::new(asked.metadata.id, MessageType::Response, OpCode::Query);
        reply.queries = asked.queries;
        reply.to_vec().unwrap()
    }

    fn id(message: &[u8]) -> u16 {
        Message::from_vec(message).unwrap().metadata.id
    }

    /// Bounds every wait of these tests.
    const WAIT: Duration = Duration::from_secs(10);

    /// A resolver on this test's loopback, forwarding to `upstream`, at
    /// most `cap` queries in flight; a client connected to it; the sender
    /// whose drop stops it.
    async fn serving(
        upstream: SocketAddr,
        cap: usize,
    ) -> (Arc<Server>, UdpSocket, oneshot::Sender<()>) {
        let sockets = Sockets::bind_here().unwrap();
        let resolver = sockets.resolver(Redirect::LeavingLoopback).unwrap();
        let allowed = super::super::refresh::Allowed::resolve(Vec::new()).unwrap();
        let netns = Namespace::open(Path::new("/proc/self/ns/net")).unwrap();
        let enforced = Arc::new(Enforced::new(
            allowed,
            netns,
            vec![filter::Family::V4],
            resolver,
        ));
        let server = Arc::new(Server::with_cap(
            upstream,
            enforced,
            Duration::from_secs(30),
            cap,
        ));
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(server.clone().serve(sockets, stopped));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client
            .connect(("127.0.0.1", resolver.v4.udp))
            .await
            .unwrap();
        (server, client, stop)
    }

    async fn receive(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buffer = vec![0u8; 1500];
        let (length, from) = timeout(WAIT, socket.recv_from(&mut buffer))
            .await
            .expect("a datagram in time")
            .unwrap();
        buffer.truncate(length);
        (buffer, from)
    }

    /// The upstream (this test) holds the first query's answer until it
    /// has the second, and answers the second first: the second reaches
    /// it, and its answer the client, while the first is still waiting.
    #[tokio::test]
    async fn a_slow_answer_holds_no_other_query() {
        let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (_server, client, _stop) = serving(upstream.local_addr().unwrap(), 8).await;
        client.send(&query(1, "slow.test.")).await.unwrap();
        let (first, first_from) = receive(&upstream).await;
        client.send(&query(2, "quick.test.")).await.unwrap();
        let (second, second_from) = receive(&upstream).await;
        assert_eq!((id(&first), id(&second)), (1, 2));
        upstream
            .send_to(&empty_answer(&second), second_from)
            .await
            .unwrap();
        let (answered, _) = receive(&client).await;
        assert_eq!(id(&answered), 2, "the quick query is answered first");
        upstream
            .send_to(&empty_answer(&first), first_from)
            .await
            .unwrap();
        let (answered, _) = receive(&client).await;
        assert_eq!(id(&answered), 1);
        assert_eq!(
            Message::from_vec(&answered).unwrap().metadata.response_code,
            ResponseCode::NoError
        );
    }

    /// With the one query it may have in flight waiting upstream, the
    /// resolver drops the next UDP query (it never reaches the upstream);
    /// once that one is answered, queries pass again.
    #[tokio::test]
    async fn past_the_cap_a_udp_query_is_dropped_until_one_in_flight_is_answered() {
        let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (server, client, _stop) = serving(upstream.local_addr().unwrap(), 1).await;
        client.send(&query(1, "held.test.")).await.unwrap();
        let (held, held_from) = receive(&upstream).await;
        client.send(&query(2, "dropped.test.")).await.unwrap();
        let started = Instant::now();
        while !server.overloaded.load(Ordering::Relaxed) {
            assert!(started.elapsed() < WAIT, "the second query was not dropped");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        upstream
            .send_to(&empty_answer(&held), held_from)
            .await
            .unwrap();
        assert_eq!(id(&receive(&client).await.0), 1);
        client.send(&query(3, "later.test.")).await.unwrap();
        let (next, next_from) = receive(&upstream).await;
        assert_eq!(id(&next), 3, "the dropped query never reached the upstream");
        upstream
            .send_to(&empty_answer(&next), next_from)
            .await
            .unwrap();
        assert_eq!(id(&receive(&client).await.0), 3);
    }

    #[test]
    fn an_image_naming_a_nameserver_keeps_its_loopback_queries() {
        assert_eq!(
            redirect(Some("# mine\nnameserver 127.0.0.1\n")),
            Redirect::LeavingLoopback
        );
        assert_eq!(
            redirect(Some("nameserver 10.0.2.3\n")),
            Redirect::LeavingLoopback
        );
        for none in [
            None,
            Some(""),
            Some("search example.test\noptions ndots:2\n"),
        ] {
            assert_eq!(redirect(none), Redirect::Every, "{none:?}");
        }
    }
}
