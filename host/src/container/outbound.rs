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
//! `--disable-host-loopback` keeps the host's `127.0.0.1` (wasmhost's
//! admin port, local databases) out of reach.
//!
//! The allow-list is enforced in the network path, not by the image: an
//! iptables filter in the container's namespace (loaded before the
//! container runs; the container holds no CAP_NET_ADMIN to change it
//! unless `cap_add` gives it) accepts loopback, replies, DNS to slirp's
//! resolver and TCP to the allowed addresses and ports, and rejects the
//! rest at once. Host names are resolved when the container starts.
//! Entries are Spin's (`scheme://host:port`, `*` host or port, port
//! ranges, `insecure:allow-all`); `*.domain` cannot be enforced by
//! address and is refused by name.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::{IpAddr, ToSocketAddrs as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context as _, Result};

use crate::parse::well_known_port;

/// slirp4netns' built-in resolver, the one address DNS may go to.
const SLIRP_DNS: &str = "10.0.2.3";

/// The slirp4netns MTU its manual recommends for throughput.
const SLIRP_MTU: &str = "65520";

/// The way out of one container's namespace; dropped, it is closed.
pub struct Outbound {
    slirp: Child,
}

impl Outbound {
    /// Loads the filter for `allowed` into the namespace at `netns`, then
    /// starts slirp4netns on it.
    pub fn open(netns: &Path, allowed: &[String]) -> Result<Self> {
        let rules = filter_rules(&destinations(allowed)?);
        let mut restore = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(["iptables-restore", "--wait"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run `nsenter iptables-restore` (Debian's util-linux and iptables)")?;
        restore
            .stdin
            .take()
            .context("iptables-restore has no stdin")?
            .write_all(rules.as_bytes())?;
        let out = restore.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "cannot load the outbound filter: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let slirp = Command::new("slirp4netns")
            .args(["--configure", "--mtu", SLIRP_MTU, "--disable-host-loopback"])
            .arg("--netns-type=path")
            .arg(netns)
            .arg("tap0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run slirp4netns (Debian's slirp4netns) for outbound network")?;
        Ok(Self { slirp })
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

/// Where TCP may go: an address (`None`: any) and a port range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub address: Option<IpAddr>,
    pub ports: (u16, u16),
}

/// The destinations `allowed` (Spin's entries, checked by
/// `services::outbound::AllowList::parse` where they were read) name,
/// host names resolved.
pub fn destinations(allowed: &[String]) -> Result<Vec<Destination>> {
    let mut out = Vec::new();
    for entry in allowed {
        if entry == "insecure:allow-all" {
            out.push(Destination {
                address: None,
                ports: (1, u16::MAX),
            });
            continue;
        }
        let (scheme, rest) = entry.split_once("://").unwrap_or(("", entry));
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => {
                (host, Some(port))
            }
            _ => (rest, None),
        };
        let ports = match port {
            None => {
                let port = well_known_port(scheme)
                    .with_context(|| format!("`{entry}`: give a port"))?;
                (port, port)
            }
            Some("*") => (1, u16::MAX),
            Some(text) => {
                let (lo, hi) = text.split_once('-').unwrap_or((text, text));
                (
                    lo.parse().with_context(|| format!("`{entry}`: bad port"))?,
                    hi.parse().with_context(|| format!("`{entry}`: bad port"))?,
                )
            }
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host == "*" {
            out.push(Destination {
                address: None,
                ports,
            });
        } else if host.starts_with("*.") {
            bail!(
                "`{entry}`: a container's outbound network is filtered by address; \
                 name the hosts (`*.domain` cannot be resolved to addresses)"
            );
        } else {
            let addresses = (host, 0)
                .to_socket_addrs()
                .with_context(|| format!("`{entry}`: cannot resolve `{host}`"))?;
            for address in addresses.filter(|a| a.is_ipv4()) {
                out.push(Destination {
                    address: Some(address.ip()),
                    ports,
                });
            }
        }
    }
    Ok(out)
}

/// The iptables-restore input: loopback, replies and DNS to slirp's
/// resolver accepted, then TCP to `allowed`; anything else rejected at
/// once (a reset for TCP), so a denied connection fails fast.
pub fn filter_rules(allowed: &[Destination]) -> String {
    let mut rules = String::from(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n\
         -A OUTPUT -o lo -j ACCEPT\n\
         -A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n",
    );
    for protocol in ["udp", "tcp"] {
        rules.push_str(&format!(
            "-A OUTPUT -p {protocol} -d {SLIRP_DNS} --dport 53 -j ACCEPT\n"
        ));
    }
    for destination in allowed {
        let address = match destination.address {
            Some(address) => format!(" -d {address}"),
            None => String::new(),
        };
        let (lo, hi) = destination.ports;
        rules.push_str(&format!(
            "-A OUTPUT -p tcp{address} --dport {lo}:{hi} -j ACCEPT\n"
        ));
    }
    rules.push_str(
        "-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset\n\
         -A OUTPUT -j REJECT\nCOMMIT\n",
    );
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn entries_become_addresses_and_port_ranges() {
        let got = destinations(&entries(&[
            "postgres://127.0.0.1",
            "http://10.1.2.3:8080",
            "*://*:8000-8010",
            "insecure:allow-all",
        ]))
        .unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            got,
            [
                Destination { address: ip("127.0.0.1"), ports: (5432, 5432) },
                Destination { address: ip("10.1.2.3"), ports: (8080, 8080) },
                Destination { address: None, ports: (8000, 8010) },
                Destination { address: None, ports: (1, u16::MAX) },
            ]
        );
        let err = destinations(&entries(&["https://*.example.com"])).unwrap_err();
        assert!(err.to_string().contains("name the hosts"), "{err}");
    }

    #[test]
    fn the_filter_accepts_what_is_allowed_and_rejects_the_rest() {
        let rules = filter_rules(&[Destination {
            address: Some("10.1.2.3".parse().unwrap()),
            ports: (8080, 8080),
        }]);
        assert!(rules.contains(":OUTPUT DROP"), "{rules}");
        assert!(rules.contains("-A OUTPUT -p tcp -d 10.1.2.3 --dport 8080:8080 -j ACCEPT\n"), "{rules}");
        let accept = rules.find("--dport 8080:8080").unwrap();
        let reject = rules.find("REJECT").unwrap();
        assert!(accept < reject, "{rules}");
        assert!(rules.ends_with("COMMIT\n"));
    }
}
