//! The filter in the container's network namespace: one iptables table
//! per address family, loaded whole (`iptables-restore` commits a table
//! in one transaction, so a reload never leaves a moment with half the
//! rules).
//!
//! Each accepts loopback, replies and TCP to the allowed destinations of
//! its family, and rejects the rest at once (a reset for TCP), so a
//! denied connection fails fast rather than hangs. DNS is the `nat`
//! tables': every query to port 53 that leaves loopback, whatever
//! resolver the image's `/etc/resolv.conf` names, is redirected to
//! wasmhost's resolver in the namespace ([`super::dns`]), the one place
//! off loopback DNS may go; over IPv6 too when the resolver listens on
//! `::1` (else the IPv6 table accepts no DNS at all). A query to the
//! namespace's own loopback is the container's business (a dnsmasq of its
//! own on `127.0.0.1:53`) and is left alone, unless the image names no
//! nameserver at all: then libc asks `127.0.0.1`, meaning "the platform's
//! resolver", and loopback queries are redirected too ([`Redirect`]). The
//! tables are all wasmhost's: the namespace is the container's alone.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context as _, Result};

use super::allow::Destination;

/// An address family, with what differs between its two filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// Where wasmhost's resolver listens in the namespace, and which
/// queries are sent there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolver {
    /// Its ports on `127.0.0.1`.
    pub v4: Ports,
    /// Its ports on `::1`, when the namespace has IPv6.
    pub v6: Option<Ports>,
    pub redirect: Redirect,
}

/// A UDP and a TCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub udp: u16,
    pub tcp: u16,
}

/// Which DNS queries go to wasmhost's resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirect {
    /// Those that leave loopback: a server the container runs for itself
    /// on `127.0.0.0/8` or `::1` keeps its queries.
    LeavingLoopback,
    /// All of them: the image names no nameserver, so libc asks
    /// `127.0.0.1`, where the container runs nothing of its own.
    Every,
}

impl Family {
    /// The resolver's ports in this family's loopback address, if it
    /// listens there.
    fn resolver_ports(self, resolver: &Resolver) -> Option<(&'static str, Ports)> {
        match self {
            Family::V4 => Some(("127.0.0.1", resolver.v4)),
            Family::V6 => resolver.v6.map(|ports| ("::1", ports)),
        }
    }

    /// The family's loopback network, as a rule's ` ! -d` excludes it.
    fn loopback(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.0/8",
            Family::V6 => "::1/128",
        }
    }

    fn restore_command(self) -> &'static str {
        match self {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        }
    }

    fn holds(self, address: IpAddr) -> bool {
        match self {
            Family::V4 => address.is_ipv4(),
            Family::V6 => address.is_ipv6(),
        }
    }

    /// What the family needs to work at all besides the allow-list: IPv6
    /// finds its router and neighbours with ICMPv6 (router solicitation,
    /// neighbour solicitation and advertisement), which a DROP policy
    /// would otherwise stop; IPv4's ARP is not IP and passes anyway.
    fn link_rules(self) -> &'static str {
        match self {
            Family::V4 => "",
            Family::V6 => {
                "-A OUTPUT -p ipv6-icmp --icmpv6-type router-solicitation -j ACCEPT\n\
                 -A OUTPUT -p ipv6-icmp --icmpv6-type neighbour-solicitation -j ACCEPT\n\
                 -A OUTPUT -p ipv6-icmp --icmpv6-type neighbour-advertisement -j ACCEPT\n"
            }
        }
    }
}

/// The `*-restore` input for `family`: the destinations of other families
/// are left out, and any-address destinations apply to both.
pub fn rules(family: Family, allowed: &[Destination], resolver: &Resolver) -> String {
    let mut rules = String::new();
    let listening = family.resolver_ports(resolver);
    if let Some((_, ports)) = listening {
        let leaving = match resolver.redirect {
            Redirect::LeavingLoopback => format!(" ! -d {}", family.loopback()),
            Redirect::Every => String::new(),
        };
        rules.push_str(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n\
             :OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n",
        );
        for (protocol, port) in [("udp", ports.udp), ("tcp", ports.tcp)] {
            rules.push_str(&format!(
                "-A OUTPUT{leaving} -p {protocol} --dport 53 -j REDIRECT --to-ports {port}\n"
            ));
        }
        rules.push_str("COMMIT\n");
    }
    rules.push_str(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n\
         -A OUTPUT -o lo -j ACCEPT\n\
         -A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n",
    );
    rules.push_str(family.link_rules());
    if let Some((address, ports)) = listening {
        // A redirected query keeps the interface it was routed to first
        // (the filter sees `-o tap0`), so `-o lo` above does not take it.
        for (protocol, port) in [("udp", ports.udp), ("tcp", ports.tcp)] {
            rules.push_str(&format!(
                "-A OUTPUT -p {protocol} -d {address} --dport {port} -j ACCEPT\n"
            ));
        }
    }
    for destination in allowed {
        let address = match destination.address {
            Some(address) if family.holds(address) => format!(" -d {address}"),
            Some(_) => continue,
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

/// Loads the filters of `families` for `allowed` into the namespace at
/// `netns`, replacing those there. The families' loads run side by side
/// (each is ~10-20 ms of `*-restore`, part of a cold start).
pub fn load(
    netns: &Path,
    families: &[Family],
    allowed: &[Destination],
    resolver: &Resolver,
) -> Result<()> {
    let loading = families
        .iter()
        .map(|&family| start_load(netns, family, allowed, resolver))
        .collect::<Vec<_>>();
    // Every started load is waited for (no process left unreaped), and
    // the first failure is the answer.
    let mut outcome = Ok(());
    for load in loading {
        let finished = load.and_then(|(command, restore)| finish_load(command, restore));
        if outcome.is_ok() {
            outcome = finished;
        }
    }
    outcome
}

fn finish_load(command: &str, restore: Child) -> Result<()> {
    let out = restore
        .wait_with_output()
        .with_context(|| format!("cannot wait for {command}"))?;
    if !out.status.success() {
        bail!(
            "cannot load the outbound filter ({command}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `nsenter … *-restore` for `family`, its input written.
fn start_load(
    netns: &Path,
    family: Family,
    allowed: &[Destination],
    resolver: &Resolver,
) -> Result<(&'static str, Child)> {
    let command = family.restore_command();
    let mut restore = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args([command, "--wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!("cannot run `nsenter {command}` (Debian's util-linux and iptables)")
        })?;
    // Dropped at the end of the statement: the end of its input.
    restore
        .stdin
        .take()
        .with_context(|| format!("{command} has no stdin"))?
        .write_all(rules(family, allowed, resolver).as_bytes())
        .with_context(|| format!("cannot write the rules to {command}"))?;
    Ok((command, restore))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(address: &str, port: u16) -> Destination {
        Destination {
            address: Some(address.parse().unwrap()),
            ports: (port, port),
        }
    }

    const RESOLVER: Resolver = Resolver {
        v4: Ports {
            udp: 40001,
            tcp: 40002,
        },
        v6: None,
        redirect: Redirect::LeavingLoopback,
    };

    const WITH_V6: Resolver = Resolver {
        v6: Some(Ports {
            udp: 40003,
            tcp: 40004,
        }),
        ..RESOLVER
    };

    #[test]
    fn the_filter_accepts_what_is_allowed_and_rejects_the_rest() {
        let rules = rules(Family::V4, &[to("10.1.2.3", 8080)], &RESOLVER);
        assert!(rules.contains(":OUTPUT DROP"), "{rules}");
        assert!(
            rules.contains("-A OUTPUT -p tcp -d 10.1.2.3 --dport 8080:8080 -j ACCEPT\n"),
            "{rules}"
        );
        let accept = rules.find("--dport 8080:8080").unwrap();
        let reject = rules.find("REJECT").unwrap();
        assert!(accept < reject, "{rules}");
        assert!(rules.ends_with("COMMIT\n"));
    }

    #[test]
    fn each_family_gets_its_own_addresses_and_both_get_any() {
        let allowed = [
            to("10.1.2.3", 80),
            to("fd00::1", 81),
            Destination {
                address: None,
                ports: (82, 82),
            },
        ];
        let v4 = rules(Family::V4, &allowed, &RESOLVER);
        let v6 = rules(Family::V6, &allowed, &RESOLVER);
        assert!(
            v4.contains("-d 10.1.2.3 --dport 80:80") && !v4.contains("fd00::1"),
            "{v4}"
        );
        assert!(
            v6.contains("-d fd00::1 --dport 81:81") && !v6.contains("10.1.2.3"),
            "{v6}"
        );
        for rules in [&v4, &v6] {
            assert!(
                rules.contains("-A OUTPUT -p tcp --dport 82:82 -j ACCEPT\n"),
                "{rules}"
            );
        }
        assert!(!v6.contains("53") && !v6.contains("nat"), "{v6}");
        assert!(
            v6.contains("neighbour-solicitation") && !v4.contains("icmp"),
            "{v6}"
        );
    }

    #[test]
    fn every_dns_query_leaving_loopback_is_redirected_to_wasmhosts_resolver_and_only_there() {
        let v4 = rules(Family::V4, &[], &RESOLVER);
        assert!(v4.starts_with("*nat\n"), "{v4}");
        assert!(
            v4.contains(
                "-A OUTPUT ! -d 127.0.0.0/8 -p udp --dport 53 -j REDIRECT --to-ports 40001\n"
            ) && v4.contains(
                "-A OUTPUT ! -d 127.0.0.0/8 -p tcp --dport 53 -j REDIRECT --to-ports 40002\n"
            ),
            "{v4}"
        );
        assert!(
            v4.contains("-A OUTPUT -p udp -d 127.0.0.1 --dport 40001 -j ACCEPT\n")
                && v4.contains("-A OUTPUT -p tcp -d 127.0.0.1 --dport 40002 -j ACCEPT\n"),
            "{v4}"
        );
        // No other way to a resolver: nothing else on port 53 is accepted
        // (loopback's own, `-o lo`, stays the container's).
        let filter = &v4[v4.find("*filter").unwrap()..];
        assert!(!filter.contains("--dport 53"), "{filter}");
        assert_eq!(v4.matches("COMMIT\n").count(), 2, "{v4}");
    }

    #[test]
    fn dns_over_ipv6_is_redirected_to_the_resolver_on_loopback_when_it_listens_there() {
        let v6 = rules(Family::V6, &[], &WITH_V6);
        assert!(
            v6.contains("-A OUTPUT ! -d ::1/128 -p udp --dport 53 -j REDIRECT --to-ports 40003\n")
                && v6.contains(
                    "-A OUTPUT ! -d ::1/128 -p tcp --dport 53 -j REDIRECT --to-ports 40004\n"
                ),
            "{v6}"
        );
        assert!(
            v6.contains("-A OUTPUT -p udp -d ::1 --dport 40003 -j ACCEPT\n")
                && v6.contains("-A OUTPUT -p tcp -d ::1 --dport 40004 -j ACCEPT\n"),
            "{v6}"
        );
        let filter = &v6[v6.find("*filter").unwrap()..];
        assert!(!filter.contains("--dport 53"), "{filter}");
        // The IPv4 table is unchanged by it.
        assert_eq!(
            rules(Family::V4, &[], &WITH_V6),
            rules(Family::V4, &[], &RESOLVER)
        );
    }

    #[test]
    fn an_image_naming_no_nameserver_has_its_loopback_queries_redirected_too() {
        let every = Resolver {
            redirect: Redirect::Every,
            ..WITH_V6
        };
        let v4 = rules(Family::V4, &[], &every);
        let v6 = rules(Family::V6, &[], &every);
        assert!(
            v4.contains("-A OUTPUT -p udp --dport 53 -j REDIRECT --to-ports 40001\n"),
            "{v4}"
        );
        assert!(
            v6.contains("-A OUTPUT -p udp --dport 53 -j REDIRECT --to-ports 40003\n"),
            "{v6}"
        );
        assert!(!v4.contains("! -d") && !v6.contains("! -d"), "{v4}{v6}");
    }
}
