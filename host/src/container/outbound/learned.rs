//! Addresses allowed because the container's resolver ([`super::dns`])
//! was answered with them for a name under a `*.domain` entry: the
//! answer → allowed-set step, pure, so it is tested without a network.
//!
//! An address is kept for its answer's TTL, but never less than the
//! resolve interval: a TTL of a few seconds (or 0) would otherwise take
//! the address away while the container is still connecting to it, and
//! the expiry is only looked at once an interval anyway. Seen again, it
//! is kept longer; connections already open stay open when it expires
//! (the filter accepts replies of established connections).

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::allow::{Destination, Entry};

/// Learned destinations and until when each is allowed.
#[derive(Debug, Default)]
pub struct Learned {
    until: BTreeMap<Destination, Instant>,
}

impl Learned {
    /// Records that `name` was answered with `addresses` (each with its
    /// TTL in seconds) at `now`: every entry covering `name` allows each
    /// address on its ports for max(TTL, `at_least`). Whether a
    /// destination is new (the filter must then be reloaded).
    pub fn learn<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a Entry>,
        name: &str,
        addresses: &[(IpAddr, u32)],
        now: Instant,
        at_least: Duration,
    ) -> bool {
        let mut grew = false;
        for entry in entries.into_iter().filter(|entry| entry.covers(name)) {
            for &(address, ttl) in addresses {
                let until = now + at_least.max(Duration::from_secs(u64::from(ttl)));
                let destination = Destination {
                    address: Some(address),
                    ports: entry.ports,
                };
                match self.until.get_mut(&destination) {
                    Some(known) => *known = (*known).max(until),
                    None => {
                        tracing::info!(
                            "outbound: `{}` allows {address} (answered for `{name}`)",
                            entry.text
                        );
                        self.until.insert(destination, until);
                        grew = true;
                    }
                }
            }
        }
        grew
    }

    /// Forgets what expired by `now`; whether anything did.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.until.len();
        self.until.retain(|destination, until| {
            let keep = *until > now;
            if !keep {
                tracing::info!("outbound: {destination:?} expired");
            }
            keep
        });
        self.until.len() != before
    }

    /// What is allowed now.
    pub fn destinations(&self) -> impl Iterator<Item = &Destination> {
        self.until.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::super::allow;
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn to(address: &str, port: u16) -> Destination {
        Destination {
            address: Some(ip(address)),
            ports: (port, port),
        }
    }

    fn entries() -> Vec<Entry> {
        allow::read(&[
            "http://*.example.test:8080".to_owned(),
            "https://*.api.example.test".to_owned(),
            "http://named.other.test:80".to_owned(),
        ])
        .unwrap()
    }

    const INTERVAL: Duration = Duration::from_secs(30);

    #[test]
    fn an_answer_for_a_covered_name_allows_its_addresses_on_the_entrys_ports() {
        let mut learned = Learned::default();
        let now = Instant::now();
        let answer = [(ip("10.1.1.1"), 300), (ip("fd00::1"), 300)];
        assert!(learned.learn(&entries(), "v1.api.example.test.", &answer, now, INTERVAL));
        // Both patterns cover it, each with its own port.
        let got: Vec<_> = learned.destinations().cloned().collect();
        assert_eq!(
            got,
            [
                to("10.1.1.1", 443),
                to("10.1.1.1", 8080),
                to("fd00::1", 443),
                to("fd00::1", 8080)
            ]
        );
        // The same answer again is nothing new.
        assert!(!learned.learn(&entries(), "v1.api.example.test", &answer, now, INTERVAL));
    }

    #[test]
    fn an_answer_for_a_name_no_pattern_covers_allows_nothing() {
        let mut learned = Learned::default();
        let now = Instant::now();
        for name in ["example.test", "api.example.test.evil", "other.test"] {
            assert!(!learned.learn(&entries(), name, &[(ip("10.1.1.1"), 300)], now, INTERVAL));
        }
        // An exact name is the refresher's, not the resolver's: its
        // answer is not learned (it is not under a pattern).
        assert!(!learned.learn(
            &entries(),
            "named.other.test",
            &[(ip("10.1.1.2"), 300)],
            now,
            INTERVAL
        ));
        assert_eq!(learned.destinations().count(), 0);
    }

    #[test]
    fn an_address_expires_after_its_ttl_but_not_before_the_interval_unless_seen_again() {
        let mut learned = Learned::default();
        let start = Instant::now();
        let entries = allow::read(&["http://*.example.test:8080".to_owned()]).unwrap();
        learned.learn(
            &entries,
            "a.example.test",
            &[(ip("10.1.1.1"), 0)],
            start,
            INTERVAL,
        );
        learned.learn(
            &entries,
            "b.example.test",
            &[(ip("10.1.1.2"), 120)],
            start,
            INTERVAL,
        );
        assert!(!learned.expire(start + INTERVAL - Duration::from_secs(1)));
        assert!(learned.expire(start + INTERVAL));
        assert_eq!(
            learned.destinations().cloned().collect::<Vec<_>>(),
            [to("10.1.1.2", 8080)]
        );
        // Seen again at 100 s with 120 s: kept until 220 s.
        let later = start + Duration::from_secs(100);
        assert!(!learned.learn(
            &entries,
            "b.example.test",
            &[(ip("10.1.1.2"), 120)],
            later,
            INTERVAL
        ));
        assert!(!learned.expire(start + Duration::from_secs(219)));
        assert!(learned.expire(start + Duration::from_secs(220)));
        assert_eq!(learned.destinations().count(), 0);
    }
}
