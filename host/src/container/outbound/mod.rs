//! Outbound network for a container (`network = "outbound"`), allowed
//! only where its `allowed_outbound_hosts` say.
//!
//! The way out is slirp4netns (Debian's package): a user-mode TCP/IP
//! stack behind a tap device in the container's namespace, whose
//! connections leave as ordinary sockets of a host process. Nothing is
//! added to the host's network: no veth, bridge, route, NAT rule or
//! forwarding switch, so nothing of the host's own configuration (or
//! another tool's firewall) has to be touched or trusted, and the
//! namespace stays the one wasmhost reaches the container through. Its
//! `--disable-host-loopback` keeps the host's `127.0.0.1` and `::1`
//! (wasmhost's admin port, local databases) out of reach.
//!
//! The allow-list is enforced in the network path, not by the image: an
//! iptables filter per address family in the container's namespace
//! ([`filter`]), loaded before slirp4netns opens the way out (the
//! container holds no CAP_NET_ADMIN to change it unless `cap_add` gives
//! it). Entries are Spin's (`scheme://host:port`, `*` host or port, port
//! ranges, IPv6 literals in brackets, `insecure:allow-all`, `*.domain`;
//! [`allow`]). Names are resolved (A and AAAA) at the start and again
//! every interval while the container runs ([`refresh`]).
//!
//! DNS goes through a resolver wasmhost runs for the container ([`dns`]):
//! the filter redirects every query that leaves loopback to it (over
//! IPv4 and IPv6), it forwards them to the host's resolver, and the
//! addresses answered for a name under a `*.domain` entry are allowed
//! (with the entry's ports, for max(TTL, the resolve interval), a capped
//! number of them; [`learned`]) before the answer reaches the container.
//! So a `*.domain` entry allows what the container looked up through it,
//! and an address it did not look up stays refused. A DNS server the
//! container runs for itself on loopback keeps its queries.
//!
//! In a user namespace the container makes its network namespace itself,
//! so the way out is opened once wasmhost has adopted it, just after the
//! container started: a connection its service makes in its first
//! milliseconds may find no route, but never an unfiltered one.
//! slirp4netns joins the container's user namespace (`--userns-path`), as
//! the namespace's owner would make its tap device.
//!
//! IPv6: the filter for it is loaded whenever the kernel has IPv6 (so no
//! IPv6 path is left open); slirp4netns gives the container an address
//! (`fd00::/64`, DNS at `fd00::3`) only when the host has an IPv6 default
//! route. Without one, a container with an IPv6 address would try AAAA
//! answers first and wait for each to fail; without the address, its
//! resolver (`AI_ADDRCONFIG`) asks for IPv4 only, as on such a host.

#![forbid(unsafe_code)]

pub mod allow;
pub mod dns;
pub mod filter;
pub mod learned;
pub mod refresh;

use std::fs::File;
use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use filter::Family;
use refresh::{Allowed, Enforced, Refresher};

/// The host's resolver configuration, whose first nameserver the
/// container's resolver asks.
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// The slirp4netns MTU its manual recommends for throughput.
const SLIRP_MTU: &str = "65520";

/// The way out of one container's namespace; dropped, it is closed (and
/// its names are no longer resolved).
pub struct Outbound {
    slirp: Child,
    /// slirp4netns' ready pipe, kept open so it never writes to a closed
    /// pipe.
    _ready: ChildStdout,
    /// The namespaces slirp4netns was pointed at, held open while it runs.
    _namespaces: (Namespace, Option<Namespace>),
    /// The container's resolver (stops when dropped).
    resolver: Option<dns::Resolver>,
    /// The names resolved again and learned addresses expired, when
    /// anything can change (stops when dropped).
    refresher: Option<Refresher>,
}

/// What opening a container's way out takes.
pub struct Opening<'a> {
    /// The container's network namespace.
    pub netns: &'a Path,
    /// The user namespace owning it, when the container has one.
    pub userns: Option<&'a Path>,
    /// The `allowed_outbound_hosts` entries.
    pub allowed: &'a [String],
    /// How often names are resolved again.
    pub resolve_interval: Duration,
    /// The container's id, for thread names and messages.
    pub id: &'a str,
    /// The image's `/etc/resolv.conf`, if it has one: whether it names a
    /// nameserver decides whether loopback queries are the container's
    /// own ([`dns::redirect`]).
    pub image_resolv_conf: Option<&'a str>,
}

impl Outbound {
    /// Binds the container's resolver and loads the filters into the
    /// namespace, then starts slirp4netns on it and waits until the
    /// container's interface is configured.
    pub fn open(opening: &Opening<'_>) -> Result<Self> {
        let netns = Namespace::open(opening.netns)?;
        let userns = opening.userns.map(Namespace::open).transpose()?;
        let allowed = Allowed::resolve(allow::read(opening.allowed)?)?;
        let upstream = dns::upstream(Path::new(HOST_RESOLV_CONF))?;
        let sockets = dns::Sockets::bind(&netns)?;
        let resolver = sockets.resolver(dns::redirect(opening.image_resolv_conf))?;
        let mut families = vec![Family::V4];
        if kernel_has_ipv6() {
            families.push(Family::V6);
        }
        filter::load(&netns.path(), &families, &allowed.destinations(), &resolver)?;
        let ipv6 = families.contains(&Family::V6) && host_has_ipv6_route();
        let (slirp, ready) = start_slirp(&netns, userns.as_ref(), ipv6)?;
        let enforced_netns = netns.try_clone();
        // Made before anything else can fail, so that slirp4netns is
        // stopped on every way out of here.
        let mut outbound = Self {
            slirp,
            _ready: ready,
            _namespaces: (netns, userns),
            resolver: None,
            refresher: None,
        };
        let changes = allowed.changes();
        let enforced = Arc::new(Enforced::new(allowed, enforced_netns?, families, resolver));
        outbound.resolver = Some(dns::Resolver::start(
            sockets,
            upstream,
            enforced.clone(),
            opening.resolve_interval,
            opening.id,
        )?);
        if changes {
            outbound.refresher = Some(Refresher::start(
                enforced,
                opening.resolve_interval,
                opening.id,
            )?);
        }
        Ok(outbound)
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        if let Err(e) = self.slirp.kill() {
            tracing::warn!("cannot stop slirp4netns: {e}");
        }
        let _ = self.slirp.wait();
    }
}

/// slirp4netns on `netns`, once it says the interface is configured.
fn start_slirp(
    netns: &Namespace,
    userns: Option<&Namespace>,
    ipv6: bool,
) -> Result<(Child, ChildStdout)> {
    let mut command = Command::new("slirp4netns");
    command
        .args(["--configure", "--mtu", SLIRP_MTU, "--disable-host-loopback"])
        // Its own messages go to stderr; stdout is free for the one byte
        // it writes when the interface is configured.
        .arg("--ready-fd=1");
    if ipv6 {
        command.arg("--enable-ipv6");
    }
    if let Some(userns) = userns {
        command.arg(format!("--userns-path={}", userns.path().display()));
    }
    let mut slirp = command
        .arg("--netns-type=path")
        .arg(netns.path())
        .arg("tap0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run slirp4netns (Debian's slirp4netns) for outbound network")?;
    let mut ready = match slirp.stdout.take() {
        Some(ready) => ready,
        None => bail!("slirp4netns has no stdout"),
    };
    let mut byte = [0u8; 1];
    // slirp4netns either configures the interface or exits (end of file).
    let configured = matches!(ready.read(&mut byte), Ok(1));
    if !configured {
        let _ = slirp.kill();
        let status = slirp.wait().map(|s| s.to_string()).unwrap_or_default();
        bail!("slirp4netns did not configure the container's interface ({status})");
    }
    Ok((slirp, ready))
}

/// A namespace held open, so the path given to other processes
/// (`/proc/<wasmhost>/fd/<n>`) names this namespace for as long as it is
/// held, whatever becomes of the thread or process it was found through.
pub struct Namespace {
    file: File,
}

impl Namespace {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?;
        Ok(Self { file })
    }

    fn try_clone(&self) -> Result<Self> {
        let file = self
            .file
            .try_clone()
            .context("cannot duplicate a namespace descriptor")?;
        Ok(Self { file })
    }

    /// The namespace as a path another process can open.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.file.as_raw_fd()
        ))
    }
}

/// Whether this kernel has IPv6 at all (`ipv6.disable=1` removes it).
fn kernel_has_ipv6() -> bool {
    Path::new("/proc/net/if_inet6").exists()
}

/// Whether the host has an IPv6 default route (one not of type
/// unreachable, which the kernel keeps on `lo`).
fn host_has_ipv6_route() -> bool {
    std::fs::read_to_string("/proc/net/ipv6_route").is_ok_and(|table| has_default_route(&table))
}

/// `RTF_REJECT`: an unreachable or prohibit route.
const RTF_REJECT: u32 = 0x0200;

/// Whether `/proc/net/ipv6_route` text has a usable default route: its
/// columns are destination, prefix length, source, source prefix length,
/// next hop, metric, references, use, flags, device.
fn has_default_route(table: &str) -> bool {
    table.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [destination, length, _, _, _, _, _, _, flags, device] = fields[..] else {
            return false;
        };
        let flags = u32::from_str_radix(flags, 16).unwrap_or(RTF_REJECT);
        destination.bytes().all(|b| b == b'0')
            && length == "00"
            && flags & RTF_REJECT == 0
            && device != "lo"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_route_counts_unless_it_is_unreachable() {
        let zero = "00000000000000000000000000000000";
        let route = |flags: &str, device: &str| {
            format!("{zero} 00 {zero} 00 fd000000000000000000000000000001 00000400 00000001 00000000 {flags} {device}\n")
        };
        let link = format!("fd000000000000000000000000000000 40 {zero} 00 {zero} 00000100 00000001 00000000 00000001 eth0\n");
        assert!(has_default_route(
            &(link.clone() + &route("00000003", "eth0"))
        ));
        assert!(!has_default_route(&link));
        assert!(!has_default_route(&(link + &route("00200200", "lo"))));
        assert!(!has_default_route(""));
    }

    #[test]
    fn a_namespace_is_named_by_our_descriptor() {
        let ns = Namespace::open(Path::new("/proc/self/ns/net")).unwrap();
        let path = ns.path();
        assert!(
            path.starts_with(format!("/proc/{}/fd/", std::process::id())),
            "{path:?}"
        );
        assert_eq!(
            std::fs::read_link(&path).unwrap(),
            std::fs::read_link("/proc/self/ns/net").unwrap()
        );
    }
}
