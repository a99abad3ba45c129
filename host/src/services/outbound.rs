//! A component's `allowed_outbound_hosts`: where its outgoing HTTP
//! requests may go. Pure, table-tested.
//!
//! Entries follow Spin: `scheme://host[:port]` where the scheme may be `*`,
//! the host `*` or `*.domain` (any subdomain, not the domain itself), and
//! the port `*`, a number or a range `lo-hi`. A missing port means the
//! scheme's well-known one (http 80, https 443, postgres 5432, mysql 3306,
//! redis 6379, mqtt 1883, as in Spin); with a `*` scheme or another scheme
//! the port must be given. `insecure:allow-all` allows everything.
//! An empty list allows nothing. `{{ variable }}` templates are rendered
//! over the application variables before parsing (see
//! `app::assemble`), so one left here is an error. `http://self` (or
//! `https://self`) allows requests to the app's own routes (a relative URL,
//! or the host `self`); `http://<component>.spin.internal` (or
//! `*.spin.internal`) a component directly. Not supported, and refused by
//! name: CIDR ranges.

use std::fmt;

/// The parsed list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    All,
    /// `http://self`: the app's own routes.
    SelfApp,
    Host {
        scheme: Option<String>,
        host: HostRule,
        port: PortRule,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    Any,
    Exact(String),
    /// `*.example.com`: stored as `.example.com`.
    Subdomains(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortRule {
    Any,
    Range(u16, u16),
}

/// An entry that is not a valid allowed host, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEntry {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for InvalidEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid `allowed_outbound_hosts` entry `{}`: {}",
            self.entry, self.reason
        )
    }
}

impl std::error::Error for InvalidEntry {}

impl AllowList {
    /// Parses the entries of one component.
    pub fn parse(entries: &[String]) -> Result<Self, InvalidEntry> {
        let rules = entries
            .iter()
            .map(|e| parse_entry(e))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Whether the component may call its own app's routes (`self`).
    pub fn allows_self(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r, Rule::All | Rule::SelfApp))
    }

    /// Whether a request to `scheme://host:port` may go out.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.rules.iter().any(|rule| match rule {
            Rule::All => true,
            Rule::SelfApp => false,
            Rule::Host {
                scheme: s,
                host: h,
                port: p,
            } => {
                s.as_deref().is_none_or(|s| s.eq_ignore_ascii_case(scheme))
                    && match h {
                        HostRule::Any => true,
                        HostRule::Exact(exact) => *exact == host,
                        HostRule::Subdomains(suffix) => host.ends_with(suffix.as_str()),
                    }
                    && match p {
                        PortRule::Any => true,
                        PortRule::Range(lo, hi) => (*lo..=*hi).contains(&port),
                    }
            }
        })
    }
}

fn parse_entry(entry: &str) -> Result<Rule, InvalidEntry> {
    let bad = |reason: &str| InvalidEntry {
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    };
    if entry == "insecure:allow-all" {
        return Ok(Rule::All);
    }
    if entry.contains("{{") {
        return Err(bad("a `{{ variable }}` template left unrendered"));
    }
    let Some((scheme, rest)) = entry.split_once("://") else {
        return Err(bad(
            "expected `scheme://host[:port]`, e.g. `https://example.com`",
        ));
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        return Err(bad(
            "paths and CIDR ranges are not supported; give a host and an optional port",
        ));
    }
    let (host, port) = split_port(rest);
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if host == "self" || host == "self.alt" {
        return Ok(Rule::SelfApp);
    }
    let host = match host {
        "*" => HostRule::Any,
        h if h.starts_with("*.") => HostRule::Subdomains(h[1..].to_ascii_lowercase()),
        h if h.contains('*') => {
            return Err(bad(
                "a `*` in a host must be the whole host or lead `*.domain`",
            ))
        }
        h => HostRule::Exact(
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
        ),
    };
    let port = match port {
        Some("*") => PortRule::Any,
        Some(p) => match p.split_once('-') {
            Some((lo, hi)) => match (lo.parse(), hi.parse()) {
                (Ok(lo), Ok(hi)) if lo <= hi => PortRule::Range(lo, hi),
                _ => return Err(bad("a port range is `low-high` with low ≤ high")),
            },
            None => {
                let p = p
                    .parse()
                    .map_err(|_| bad("the port is not a number, `*` or a range"))?;
                PortRule::Range(p, p)
            }
        },
        None => match well_known_port(scheme) {
            Some(port) => PortRule::Range(port, port),
            None => return Err(bad("give a port (or `*`): this scheme has no default")),
        },
    };
    let scheme = match scheme {
        "*" => None,
        s if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Some(s.to_ascii_lowercase())
        }
        _ => return Err(bad("invalid scheme")),
    };
    Ok(Rule::Host { scheme, host, port })
}

/// The port a scheme's URLs mean when they name none (Spin's list); on
/// the ground floor, as containers' outbound filter reads entries too.
pub use crate::parse::well_known_port;

/// `host:port` → (host, port); IPv6 literals keep their brackets.
fn split_port(rest: &str) -> (&str, Option<&str>) {
    if rest.starts_with('[') {
        return match rest.find("]:") {
            Some(i) => (&rest[..=i], Some(&rest[i + 2..])),
            None => (rest, None),
        };
    }
    match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn requests_are_allowed_exactly_as_the_entries_say() {
        // (entries, scheme, host, port, allowed)
        let cases: &[(&[&str], &str, &str, u16, bool)] = &[
            (&[], "https", "example.com", 443, false),
            (&["https://example.com"], "https", "example.com", 443, true),
            (&["https://example.com"], "http", "example.com", 80, false),
            (
                &["https://example.com"],
                "https",
                "example.com",
                8443,
                false,
            ),
            (&["https://Example.COM"], "https", "example.com", 443, true),
            (&["http://example.com"], "http", "example.com", 80, true),
            (&["http://127.0.0.1:8080"], "http", "127.0.0.1", 8080, true),
            (&["http://127.0.0.1:8080"], "http", "127.0.0.1", 8081, false),
            (&["http://127.0.0.1:*"], "http", "127.0.0.1", 1, true),
            (
                &["http://127.0.0.1:8000-8999"],
                "http",
                "127.0.0.1",
                8500,
                true,
            ),
            (
                &["http://127.0.0.1:8000-8999"],
                "http",
                "127.0.0.1",
                9000,
                false,
            ),
            (&["*://example.com:443"], "http", "example.com", 443, true),
            (
                &["https://*.example.com"],
                "https",
                "api.example.com",
                443,
                true,
            ),
            (
                &["https://*.example.com"],
                "https",
                "example.com",
                443,
                false,
            ),
            (
                &["https://*.example.com"],
                "https",
                "badexample.com",
                443,
                false,
            ),
            (&["https://*"], "https", "anything.org", 443, true),
            (&["http://[::1]:3000"], "http", "[::1]", 3000, true),
            (&["insecure:allow-all"], "ftp", "x", 21, true),
            (&["redis://127.0.0.1"], "redis", "127.0.0.1", 6379, true),
            (
                &["postgres://db.internal"],
                "postgres",
                "db.internal",
                5432,
                true,
            ),
            (&["mysql://db:3307"], "mysql", "db", 3306, false),
            (
                &["https://a.com", "http://b.com:81"],
                "http",
                "b.com",
                81,
                true,
            ),
        ];
        for (entries, scheme, host, port, allowed) in cases {
            assert_eq!(
                list(entries).allows(scheme, host, *port),
                *allowed,
                "{entries:?} vs {scheme}://{host}:{port}"
            );
        }
    }

    #[test]
    fn invalid_entries_are_refused_with_the_reason() {
        let cases = [
            (
                "example.com",
                "expected `scheme://host[:port]`, e.g. `https://example.com`",
            ),
            (
                "*://example.com",
                "give a port (or `*`): this scheme has no default",
            ),
            (
                "https://example.com:http",
                "the port is not a number, `*` or a range",
            ),
            (
                "https://example.com:9-1",
                "a port range is `low-high` with low ≤ high",
            ),
            (
                "https://ex*ample.com",
                "a `*` in a host must be the whole host or lead `*.domain`",
            ),
            (
                "https://{{ host }}",
                "a `{{ variable }}` template left unrendered",
            ),
            (
                "http://10.0.0.0/8",
                "paths and CIDR ranges are not supported; give a host and an optional port",
            ),
        ];
        for (entry, reason) in cases {
            let err = AllowList::parse(&[entry.to_string()]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid `allowed_outbound_hosts` entry `{entry}`: {reason}")
            );
        }
    }
}
