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
//!
//! What is kept at once is capped ([`crate::limits::CONTAINER_OUTBOUND_MAX_LEARNED`]).
//! Past the cap, the addresses soonest to expire are dropped first, not
//! the new ones refused: the container is about to connect to what it was
//! just answered, while what is dropped was looked up longest ago (a
//! lookup again allows it again), and its open connections stay open.
//! Refusing the new ones would instead cut a long-running container off
//! from every new name once the cap is reached, until old entries expire.
//! Cilium's DNS-based policy likewise caps the addresses it keeps per
//! name and garbage-collects those over the cap rather than refusing new
//! answers.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::allow::{Destination, Entry};

/// Learned destinations and until when each is allowed.
#[derive(Debug)]
pub struct Learned {
    until: BTreeMap<Destination, Instant>,
    /// The most kept at once.
    cap: usize,
    /// Whether the cap was reached (it is said once in the log).
    capped: bool,
}

impl Default for Learned {
    fn default() -> Self {
        Self::with_cap(crate::limits::CONTAINER_OUTBOUND_MAX_LEARNED)
    }
}

impl Learned {
    /// Keeping at most `cap` destinations (at least one).
    pub fn with_cap(cap: usize) -> Self {
        Self {
            until: BTreeMap::new(),
            cap: cap.max(1),
            capped: false,
        }
    }

    /// Records that `name` was answered with `addresses` (each with its
    /// TTL in seconds) at `now`: every entry covering `name` allows each
    /// address on its ports for max(TTL, `at_least`). Past the cap, those
    /// soonest to expire are dropped (this answer's last). Whether a
    /// destination is new (the filter must then be reloaded).
    pub fn learn<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a Entry>,
        name: &str,
        addresses: &[(IpAddr, u32)],
        now: Instant,
        at_least: Duration,
    ) -> bool {
        let mut fresh = Vec::new();
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
                        self.until.insert(destination.clone(), until);
                        fresh.push(destination);
                    }
                }
            }
        }
        while self.until.len() > self.cap {
            self.drop_soonest(&fresh, name);
        }
        !fresh.is_empty()
    }

    /// Drops the destination soonest to expire, one of `fresh` (this
    /// answer's) only when nothing else is left.
    fn drop_soonest(&mut self, fresh: &[Destination], name: &str) {
        let soonest = |others_only: bool| {
            self.until
                .iter()
                .filter(|(destination, _)| !others_only || !fresh.contains(destination))
                .min_by_key(|(_, until)| **until)
                .map(|(destination, _)| destination.clone())
        };
        let Some(dropped) = soonest(true).or_else(|| soonest(false)) else {
            return;
        };
        if !self.capped {
            self.capped = true;
            tracing::warn!(
                "outbound: more than {} addresses learned through `*.domain` lookups \
                 (the last for `{name}`); dropping those soonest to expire first",
                self.cap
            );
        }
        tracing::debug!("outbound: {dropped:?} dropped (over the cap)");
        self.until.remove(&dropped);
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
    fn past_the_cap_the_addresses_soonest_to_expire_are_dropped_first() {
        let mut learned = Learned::with_cap(2);
        let start = Instant::now();
        let entries = allow::read(&["http://*.example.test:8080".to_owned()]).unwrap();
        let mut learn = |name: &str, address: &str, ttl: u32| {
            learned.learn(&entries, name, &[(ip(address), ttl)], start, INTERVAL)
        };
        assert!(learn("a.example.test", "10.1.1.1", 300));
        assert!(learn("b.example.test", "10.1.1.2", 100));
        // A third: the one soonest to expire (b's) goes, the new one stays.
        assert!(learn("c.example.test", "10.1.1.3", 200));
        let kept = |learned: &Learned| learned.destinations().cloned().collect::<Vec<_>>();
        assert_eq!(kept(&learned), [to("10.1.1.1", 8080), to("10.1.1.3", 8080)]);
        // Even when the new one would expire soonest of all.
        assert!(learned.learn(
            &entries,
            "d.example.test",
            &[(ip("10.1.1.4"), 0)],
            start,
            INTERVAL
        ));
        assert_eq!(kept(&learned), [to("10.1.1.1", 8080), to("10.1.1.4", 8080)]);
        // An answer bigger than the cap keeps what fits.
        let many = [
            (ip("10.2.0.1"), 60),
            (ip("10.2.0.2"), 60),
            (ip("10.2.0.3"), 60),
        ];
        assert!(learned.learn(&entries, "e.example.test", &many, start, INTERVAL));
        assert_eq!(learned.destinations().count(), 2);
        assert!(learned.capped);
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
