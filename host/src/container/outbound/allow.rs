//! The allow-list as addresses: Spin's `allowed_outbound_hosts` entries
//! read into hosts and port ranges, and host names resolved, both
//! families.
//!
//! Reading and resolving are two steps because names are resolved again
//! while the container runs ([`super::refresh`]); an entry is read once.
//!
//! A `*.domain` entry has no addresses of its own: it allows what the
//! container's resolver ([`super::dns`]) is answered for names under it.
//! It matches as Spin matches it: any name ending in `.domain`, at any
//! depth, and not `domain` itself (list that too if it is wanted).

#![forbid(unsafe_code)]

use std::net::{IpAddr, ToSocketAddrs as _};

use anyhow::{bail, Context as _, Result};

use crate::parse::well_known_port;

/// Where TCP may go: an address (`None`: any) and a port range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Destination {
    pub address: Option<IpAddr>,
    pub ports: (u16, u16),
}

/// One entry of the allow-list, read but not resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry as the user wrote it, for messages.
    pub text: String,
    pub host: Host,
    pub ports: (u16, u16),
}

/// The host part of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// `*` or `insecure:allow-all`.
    Any,
    /// An IPv4 or IPv6 literal (`10.1.2.3`, `[fd00::1]`).
    Address(IpAddr),
    /// A name, resolved to its A and AAAA addresses.
    Name(String),
    /// `*.domain`: the names under `domain`, kept as the suffix they end
    /// in (`.domain`, lower case); allowed by what the container's
    /// resolver is answered for them.
    Subdomains(String),
}

/// The entries of `allowed` (Spin's, checked by
/// `services::outbound::AllowList::parse` where they were read).
pub fn read(allowed: &[String]) -> Result<Vec<Entry>> {
    allowed.iter().map(|entry| read_one(entry)).collect()
}

fn read_one(entry: &str) -> Result<Entry> {
    let any = |ports| Entry {
        text: entry.to_owned(),
        host: Host::Any,
        ports,
    };
    if entry == "insecure:allow-all" {
        return Ok(any((1, u16::MAX)));
    }
    let (scheme, rest) = entry.split_once("://").unwrap_or(("", entry));
    let rest = rest.trim_end_matches('/');
    let (host, port) = split_host_port(rest);
    let ports = match port {
        None => {
            let port =
                well_known_port(scheme).with_context(|| format!("`{entry}`: give a port"))?;
            (port, port)
        }
        Some("*") => (1, u16::MAX),
        Some(text) => {
            let (lo, hi) = text.split_once('-').unwrap_or((text, text));
            let port = |p: &str| {
                p.parse::<u16>()
                    .with_context(|| format!("`{entry}`: bad port `{p}`"))
            };
            (port(lo)?, port(hi)?)
        }
    };
    let host = if host == "*" {
        Host::Any
    } else if let Some(domain) = host.strip_prefix("*.") {
        if domain.is_empty() || domain.contains('*') {
            bail!("`{entry}`: give a domain after `*.` (`*.example.com`)");
        }
        Host::Subdomains(format!(
            ".{}",
            domain.trim_end_matches('.').to_ascii_lowercase()
        ))
    } else if let Some(literal) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Host::Address(
            literal
                .parse()
                .with_context(|| format!("`{entry}`: `{host}` is no IPv6 address"))?,
        )
    } else if let Ok(address) = host.parse::<IpAddr>() {
        Host::Address(address)
    } else {
        Host::Name(host.to_owned())
    };
    Ok(Entry {
        text: entry.to_owned(),
        host,
        ports,
    })
}

/// `host[:port]`, where an IPv6 host is bracketed (`[fd00::1]:8080`):
/// its colons are not the port's.
fn split_host_port(text: &str) -> (&str, Option<&str>) {
    if text.starts_with('[') {
        return match text.find(']') {
            Some(end) => {
                let (host, after) = text.split_at(end + 1);
                (host, after.strip_prefix(':'))
            }
            None => (text, None),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    }
}

impl Entry {
    /// The destinations this entry allows now: a name's addresses as the
    /// host's resolver gives them (sorted, so that a resolver rotating its
    /// answers is no change).
    pub fn resolve(&self) -> Result<Vec<Destination>> {
        let ports = self.ports;
        let addresses = match &self.host {
            Host::Any => vec![None],
            Host::Address(address) => vec![Some(*address)],
            // Allowed as the container's resolver learns them.
            Host::Subdomains(_) => Vec::new(),
            Host::Name(name) => {
                let mut addresses: Vec<_> = (name.as_str(), 0)
                    .to_socket_addrs()
                    .with_context(|| format!("`{}`: cannot resolve `{name}`", self.text))?
                    .map(|a| Some(a.ip()))
                    .collect();
                addresses.sort();
                addresses.dedup();
                addresses
            }
        };
        Ok(addresses
            .into_iter()
            .map(|address| Destination { address, ports })
            .collect())
    }

    /// Whether what it allows can change (a name's addresses).
    pub fn is_name(&self) -> bool {
        matches!(self.host, Host::Name(_))
    }

    /// Whether it is a `*.domain` pattern, allowing what is learned.
    pub fn is_pattern(&self) -> bool {
        matches!(self.host, Host::Subdomains(_))
    }

    /// Whether `name` (as asked of a resolver: any case, a final dot or
    /// not) is under this entry's `*.domain`.
    pub fn covers(&self, name: &str) -> bool {
        let Host::Subdomains(suffix) = &self.host else {
            return false;
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name.len() > suffix.len() && name.ends_with(suffix.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(list: &[&str]) -> Result<Vec<Destination>> {
        let entries = read(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        let mut out = Vec::new();
        for entry in entries {
            out.extend(entry.resolve()?);
        }
        Ok(out)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn entries_become_addresses_and_port_ranges() {
        let got = resolved(&[
            "postgres://127.0.0.1",
            "http://10.1.2.3:8080",
            "*://*:8000-8010",
            "insecure:allow-all",
        ])
        .unwrap();
        assert_eq!(
            got,
            [
                Destination {
                    address: ip("127.0.0.1"),
                    ports: (5432, 5432)
                },
                Destination {
                    address: ip("10.1.2.3"),
                    ports: (8080, 8080)
                },
                Destination {
                    address: None,
                    ports: (8000, 8010)
                },
                Destination {
                    address: None,
                    ports: (1, u16::MAX)
                },
            ]
        );
    }

    #[test]
    fn bracketed_ipv6_literals_are_addresses_with_or_without_a_port() {
        let got = resolved(&[
            "http://[fd00::1]:8080",
            "https://[2001:db8::7]",
            "http://[::1]/",
        ])
        .unwrap();
        assert_eq!(
            got,
            [
                Destination {
                    address: ip("fd00::1"),
                    ports: (8080, 8080)
                },
                Destination {
                    address: ip("2001:db8::7"),
                    ports: (443, 443)
                },
                Destination {
                    address: ip("::1"),
                    ports: (80, 80)
                },
            ]
        );
        let err = resolved(&["http://[not-v6]:80"]).unwrap_err();
        assert!(
            err.to_string().contains("`[not-v6]` is no IPv6 address"),
            "{err}"
        );
    }

    #[test]
    fn names_are_kept_as_names_until_resolved() {
        let entries = read(&["http://localhost:8080".to_owned()]).unwrap();
        assert_eq!(entries[0].host, Host::Name("localhost".into()));
        assert!(entries[0].is_name());
        let got = entries[0].resolve().unwrap();
        assert!(
            got.contains(&Destination {
                address: ip("127.0.0.1"),
                ports: (8080, 8080)
            }),
            "{got:?}"
        );
    }

    #[test]
    fn a_subdomain_pattern_covers_names_under_it_at_any_depth_but_not_the_domain() {
        let entries = read(&["https://*.Example.com".to_owned()]).unwrap();
        let entry = &entries[0];
        assert_eq!(entry.host, Host::Subdomains(".example.com".into()));
        assert_eq!(entry.ports, (443, 443));
        for covered in ["api.example.com", "a.b.example.com.", "API.EXAMPLE.COM"] {
            assert!(entry.covers(covered), "{covered}");
        }
        for not in [
            "example.com",
            "example.com.",
            "badexample.com",
            "example.com.evil",
            ".example.com",
        ] {
            assert!(!entry.covers(not), "{not}");
        }
        assert!(
            !read(&["https://api.example.com".to_owned()]).unwrap()[0].covers("x.api.example.com")
        );
        // Nothing is allowed by it until the resolver learns addresses.
        assert_eq!(entry.resolve().unwrap(), []);
        assert!(!entry.is_name());
    }

    #[test]
    fn a_subdomain_pattern_needs_a_domain_and_a_port_needs_a_number() {
        let err = resolved(&["https://*."]).unwrap_err();
        assert!(
            err.to_string().contains("give a domain after `*.`"),
            "{err}"
        );
        let err = resolved(&["http://10.1.2.3:http"]).unwrap_err();
        assert!(err.to_string().contains("bad port `http`"), "{err}");
    }
}
