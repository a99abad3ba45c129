//! The container's resolver, run by wasmhost: every DNS query the
//! container makes is answered here, so that a name under a `*.domain`
//! entry is allowed by address before the container has the address
//! (as Cilium's and OpenShift's DNS egress policies do).
//!
//! Where it listens: a UDP and a TCP socket on `127.0.0.1` (ports the
//! kernel picks) *inside* the container's namespace. A socket belongs to
//! the namespace it was made in, so a short-lived thread enters the
//! namespace (`setns` on the held descriptor), makes both and ends; the
//! serving thread stays in wasmhost's own namespace. The filter's `nat`
//! table redirects every query to port 53 there ([`super::filter`]), so
//! the image's `/etc/resolv.conf` needs no change (whatever it names,
//! slirp4netns' `10.0.2.3`, a host's resolver copied in at build time,
//! or nothing, which is glibc's `127.0.0.1`), and no other resolver is
//! reachable: no way around this one.
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
//! One thread serves both sockets, one query at a time: a container's
//! lookups are few, and each waits at most [`UPSTREAM_TIMEOUT`].

#![forbid(unsafe_code)]

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::filter;
use super::refresh::Enforced;
use super::Namespace;

/// How long the upstream resolver has to answer: glibc's own per-try
/// timeout (`options timeout:5`) is longer, so the container's retry is
/// not raced.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a TCP client of ours may take to send a query: glibc sends
/// its at once.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the serving thread looks whether it should stop: it is the
/// longest a dropped container's resolver lingers.
const STOP_CHECK: u16 = 250;

/// The largest DNS message (its length is two bytes over TCP).
const MAX_MESSAGE: usize = 65535;

/// The resolver's sockets, made in the container's namespace.
pub struct Sockets {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl Sockets {
    /// Binds both on `127.0.0.1` inside `netns`.
    pub fn bind(netns: &Namespace) -> Result<Self> {
        let netns = netns.try_clone()?;
        std::thread::Builder::new()
            .name("dns-bind".to_owned())
            .spawn(move || -> Result<Self> {
                // This thread alone moves; it ends right after.
                nix::sched::setns(netns.file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .context("cannot enter the container's network namespace")?;
                let here = (Ipv4Addr::LOCALHOST, 0);
                let udp = UdpSocket::bind(here).context("cannot bind the resolver's UDP socket")?;
                let tcp =
                    TcpListener::bind(here).context("cannot bind the resolver's TCP socket")?;
                Ok(Self { udp, tcp })
            })
            .context("cannot start a thread to bind the container's resolver")?
            .join()
            .map_err(|_| anyhow!("the thread binding the container's resolver panicked"))?
    }

    /// Where they listen, for the filter's redirect.
    pub fn ports(&self) -> Result<filter::Resolver> {
        Ok(filter::Resolver {
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

/// The serving thread; dropped, it stops (within [`STOP_CHECK`] ms).
pub struct Resolver {
    stop: Arc<AtomicBool>,
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
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
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let span = tracing::info_span!("outbound", container = %name);
        let server = Server {
            upstream,
            enforced,
            at_least,
        };
        std::thread::Builder::new()
            .name(format!("dns-{name}"))
            .spawn(move || {
                let _entered = span.enter();
                if let Err(e) = server.serve(&sockets, &stopped) {
                    tracing::error!("outbound: the container's resolver stopped: {e:#}");
                }
            })
            .context("cannot start the container's resolver thread")?;
        Ok(Self { stop })
    }
}

struct Server {
    upstream: SocketAddr,
    enforced: Arc<Enforced>,
    at_least: Duration,
}

impl Server {
    fn serve(&self, sockets: &Sockets, stop: &AtomicBool) -> Result<()> {
        let mut buffer = vec![0u8; MAX_MESSAGE];
        while !stop.load(Ordering::Relaxed) {
            let mut fds = [
                PollFd::new(sockets.udp.as_fd(), PollFlags::POLLIN),
                PollFd::new(sockets.tcp.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::from(STOP_CHECK)) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("cannot wait for queries"),
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            let (udp, tcp) = (ready(&fds[0]), ready(&fds[1]));
            if udp {
                self.serve_datagram(&sockets.udp, &mut buffer);
            }
            if tcp {
                match sockets.tcp.accept() {
                    Ok((stream, _)) => self.serve_stream(stream),
                    Err(e) => tracing::warn!("outbound: resolver accept: {e}"),
                }
            }
        }
        Ok(())
    }

    fn serve_datagram(&self, socket: &UdpSocket, buffer: &mut [u8]) {
        let (length, client) = match socket.recv_from(buffer) {
            Ok(received) => received,
            Err(e) => {
                tracing::warn!("outbound: resolver receive: {e}");
                return;
            }
        };
        if let Some(answer) = self.answer(&buffer[..length], Transport::Udp) {
            if let Err(e) = socket.send_to(&answer, client) {
                tracing::warn!("outbound: resolver send to {client}: {e}");
            }
        }
    }

    /// Queries on one TCP connection, one after another, until the client
    /// closes it or is slow.
    fn serve_stream(&self, mut stream: TcpStream) {
        if stream.set_read_timeout(Some(CLIENT_TIMEOUT)).is_err() {
            return;
        }
        while let Ok(query) = read_framed(&mut stream) {
            let Some(answer) = self.answer(&query, Transport::Tcp) else {
                return;
            };
            if write_framed(&mut stream, &answer).is_err() {
                return;
            }
        }
    }

    /// The answer to pass back for `query`: the upstream's, once what it
    /// allows is in the filter; SERVFAIL when that fails; nothing for
    /// what is no DNS query.
    fn answer(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let asked = match Message::from_vec(query) {
            Ok(asked) => asked,
            Err(e) => {
                tracing::debug!("outbound: not a DNS query ({e})");
                return None;
            }
        };
        let answered = forward(query, self.upstream, transport)
            .with_context(|| format!("upstream resolver {}", self.upstream))
            .and_then(|answer| {
                self.learn(&answer)?;
                Ok(answer)
            });
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
    /// reloads the filter if that is something new.
    fn learn(&self, answer: &[u8]) -> Result<()> {
        let Some((name, addresses)) = addresses(answer) else {
            return Ok(());
        };
        if addresses.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        self.enforced
            .change(|allowed| allowed.learn(&name, &addresses, now, self.at_least))
    }
}

#[derive(Debug, Clone, Copy)]
enum Transport {
    Udp,
    Tcp,
}

/// `query` sent to `upstream` over `transport`; its answer (the one with
/// the query's id, over UDP).
fn forward(query: &[u8], upstream: SocketAddr, transport: Transport) -> Result<Vec<u8>> {
    match transport {
        Transport::Udp => {
            let local: IpAddr = match upstream {
                SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
            };
            let socket = UdpSocket::bind((local, 0)).context("cannot bind a UDP socket")?;
            socket.connect(upstream).context("cannot connect")?;
            socket.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
            socket.send(query).context("cannot send the query")?;
            let deadline = Instant::now() + UPSTREAM_TIMEOUT;
            let mut buffer = vec![0u8; MAX_MESSAGE];
            loop {
                let length = socket.recv(&mut buffer).context("no answer")?;
                // A stray datagram (another id) is no answer to this.
                if length >= 2 && buffer[..2] == query[..2] {
                    return Ok(buffer[..length].to_vec());
                }
                if Instant::now() >= deadline {
                    bail!("no answer with the query's id");
                }
            }
        }
        Transport::Tcp => {
            let mut stream = TcpStream::connect_timeout(&upstream, UPSTREAM_TIMEOUT)
                .context("cannot connect over TCP")?;
            stream.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
            stream.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
            write_framed(&mut stream, query).context("cannot send the query")?;
            read_framed(&mut stream).context("no answer")
        }
    }
}

/// One DNS message over TCP: its length in two bytes, then it.
fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 2];
    stream.read_exact(&mut length)?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message)?;
    Ok(message)
}

fn write_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let length = u16::try_from(message.len())
        .map_err(|_| std::io::Error::other("a DNS message over 64 KiB"))?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed)
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
    #[test]
    fn queries_are_forwarded_unchanged_over_udp_and_tcp() {
        let reply = answer(
            "api.example.test.",
            vec![Record::from_rdata(
                name("api.example.test."),
                5,
                RData::A(A(Ipv4Addr::new(10, 2, 2, 2))),
            )],
        );
        let mut query = Message::new(7, MessageType::Query, OpCode::Query);
        query.add_query(Query::query(name("api.example.test."), RecordType::A));
        let query = query.to_vec().unwrap();

        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = TcpListener::bind(udp.local_addr().unwrap()).unwrap();
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
            assert_eq!(read_framed(&mut stream).unwrap(), expected_query);
            write_framed(&mut stream, &tcp_reply).unwrap();
        });
        assert_eq!(forward(&query, upstream, Transport::Udp).unwrap(), reply);
        assert_eq!(forward(&query, upstream, Transport::Tcp).unwrap(), reply);
        udp_server.join().unwrap();
        tcp_server.join().unwrap();
    }
}
