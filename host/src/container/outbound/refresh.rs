//! The allowed set over time: names in the allow-list resolved again
//! while the container runs, so a service whose addresses change stays
//! reachable (and its old addresses stop being allowed), and addresses
//! the container's resolver learned ([`super::learned`]) added and
//! expired. Both change one set behind one lock ([`Enforced`]), and each
//! change reloads the filter under that lock, so no reload undoes
//! another.
//!
//! A thread per container wakes every interval
//! ([`crate::limits::CONTAINER_OUTBOUND_RESOLVE_INTERVAL`] unless set),
//! resolves the named entries and reloads the filters only when the
//! allowed set changed. A name that does not resolve this time keeps its
//! last addresses: a resolver's bad minute is no reason to cut a
//! container off. Connections already open stay open either way (the
//! filter accepts replies of established connections).

#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};

use super::allow::{Destination, Entry};
use super::filter::{self, Family};
use super::learned::Learned;
use super::Namespace;

/// The allow-list's entries, what each resolved to last, and what the
/// container's resolver learned for its `*.domain` entries.
#[derive(Debug)]
pub struct Allowed {
    entries: Vec<(Entry, Vec<Destination>)>,
    learned: Learned,
}

impl Allowed {
    /// Resolves every entry: at the start, a name that does not resolve is
    /// an error (the user's list is wrong, or the network is).
    pub fn resolve(entries: Vec<Entry>) -> Result<Self> {
        let entries = entries
            .into_iter()
            .map(|entry| {
                let destinations = entry.resolve()?;
                Ok((entry, destinations))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            entries,
            learned: Learned::default(),
        })
    }

    /// Every allowed destination, in the entries' order, then the learned
    /// ones.
    pub fn destinations(&self) -> Vec<Destination> {
        self.entries
            .iter()
            .flat_map(|(_, d)| d.iter())
            .chain(self.learned.destinations())
            .cloned()
            .collect()
    }

    /// Whether what is allowed can change over time: an entry is a name
    /// (resolved again) or a `*.domain` (learned, expiring).
    pub fn changes(&self) -> bool {
        self.entries
            .iter()
            .any(|(entry, _)| entry.is_name() || entry.is_pattern())
    }

    /// Records the resolver's answer for `name` (see [`Learned::learn`]);
    /// the new destinations if it allowed something new.
    pub fn learn(
        &mut self,
        name: &str,
        addresses: &[(IpAddr, u32)],
        now: Instant,
        at_least: Duration,
    ) -> Option<Vec<Destination>> {
        let entries = self.entries.iter().map(|(entry, _)| entry);
        self.learned
            .learn(entries, name, addresses, now, at_least)
            .then(|| self.destinations())
    }

    /// Forgets learned addresses expired by `now`; the new destinations if
    /// any did.
    pub fn expire(&mut self, now: Instant) -> Option<Vec<Destination>> {
        self.learned.expire(now).then(|| self.destinations())
    }

    /// Resolves the names again with `resolve`; the new destinations if
    /// they differ from the last. A name that fails keeps its last
    /// addresses (logged).
    pub fn refresh(
        &mut self,
        resolve: impl Fn(&Entry) -> Result<Vec<Destination>>,
    ) -> Option<Vec<Destination>> {
        let mut changed = false;
        for (entry, last) in &mut self.entries {
            if !entry.is_name() {
                continue;
            }
            match resolve(entry) {
                Ok(now) if now != *last => {
                    tracing::info!("outbound: `{}` now allows {}", entry.text, addresses(&now));
                    *last = now;
                    changed = true;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("outbound: {e:#}; keeping its last addresses"),
            }
        }
        changed.then(|| self.destinations())
    }
}

fn addresses(destinations: &[Destination]) -> String {
    let shown: Vec<String> = destinations
        .iter()
        .map(|d| {
            d.address
                .map_or_else(|| "any".to_owned(), |a| a.to_string())
        })
        .collect();
    match shown.is_empty() {
        true => "nothing".to_owned(),
        false => shown.join(", "),
    }
}

/// The allowed set and the filters in the container's namespace that
/// enforce it, changed by the refresher and the resolver.
pub struct Enforced {
    allowed: Mutex<Allowed>,
    netns: Namespace,
    families: Vec<Family>,
    resolver: filter::Resolver,
}

impl Enforced {
    pub fn new(
        allowed: Allowed,
        netns: Namespace,
        families: Vec<Family>,
        resolver: filter::Resolver,
    ) -> Self {
        Self {
            allowed: Mutex::new(allowed),
            netns,
            families,
            resolver,
        }
    }

    /// Applies `change` to the allowed set and, when it returns a new set,
    /// reloads the filters before the lock is let go.
    pub fn change(
        &self,
        change: impl FnOnce(&mut Allowed) -> Option<Vec<Destination>>,
    ) -> Result<()> {
        let mut allowed = self
            .allowed
            .lock()
            .map_err(|_| anyhow!("the outbound allow-list lock is poisoned"))?;
        match change(&mut allowed) {
            Some(now) => filter::load(&self.netns.path(), &self.families, &now, &self.resolver)
                .context("cannot reload the outbound filter"),
            None => Ok(()),
        }
    }
}

/// The thread resolving names again and expiring learned addresses;
/// dropped, it stops (at once when it is waiting, after the lookup when
/// it is resolving).
pub struct Refresher {
    _stop: mpsc::Sender<()>,
}

impl Refresher {
    /// Every `interval`, resolves the allow-list's names again, expires
    /// learned addresses, and reloads the filters when what they allow
    /// changed.
    pub fn start(enforced: Arc<Enforced>, interval: Duration, name: &str) -> Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        // Its log lines say which container they are about.
        let span = tracing::info_span!("outbound", container = %name);
        std::thread::Builder::new()
            .name(format!("outbound-{name}"))
            .spawn(move || {
                let _entered = span.enter();
                // Nothing is ever sent: the sender's drop is the signal.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let changed = enforced.change(|allowed| {
                        let refreshed = allowed.refresh(Entry::resolve);
                        allowed.expire(Instant::now()).or(refreshed)
                    });
                    if let Err(e) = changed {
                        tracing::error!("outbound: {e:#}");
                    }
                }
            })
            .context("cannot start the thread that resolves outbound names again")?;
        Ok(Self { _stop: stop })
    }
}

#[cfg(test)]
mod tests {
    use super::super::allow;
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    fn to(address: &str, port: u16) -> Destination {
        Destination {
            address: Some(address.parse().unwrap()),
            ports: (port, port),
        }
    }

    /// `Allowed` as resolved at the start, `db.test` at `10.0.0.1`.
    fn at_start() -> Allowed {
        let entries = allow::read(&[
            "http://10.9.9.9:80".to_owned(),
            "postgres://db.test".to_owned(),
        ])
        .unwrap();
        Allowed {
            entries: vec![
                (entries[0].clone(), vec![to("10.9.9.9", 80)]),
                (entries[1].clone(), vec![to("10.0.0.1", 5432)]),
            ],
            learned: Learned::default(),
        }
    }

    /// A resolver answering from a table; a name not in it fails.
    fn answering<'a>(
        table: &'a RefCell<HashMap<&'static str, Vec<Destination>>>,
    ) -> impl Fn(&Entry) -> Result<Vec<Destination>> + 'a {
        move |entry| match &entry.host {
            allow::Host::Name(name) => table
                .borrow()
                .get(name.as_str())
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("cannot resolve `{name}`")),
            _ => panic!("only names are resolved again: {entry:?}"),
        }
    }

    #[test]
    fn a_changed_name_gives_the_new_set_and_an_unchanged_one_nothing() {
        let mut allowed = at_start();
        assert!(allowed.changes());
        let table = RefCell::new(HashMap::from([("db.test", vec![to("10.0.0.1", 5432)])]));
        assert_eq!(allowed.refresh(answering(&table)), None);
        table
            .borrow_mut()
            .insert("db.test", vec![to("10.0.0.2", 5432), to("fd00::9", 5432)]);
        assert_eq!(
            allowed.refresh(answering(&table)),
            Some(vec![
                to("10.9.9.9", 80),
                to("10.0.0.2", 5432),
                to("fd00::9", 5432)
            ])
        );
        assert_eq!(allowed.refresh(answering(&table)), None);
    }

    #[test]
    fn a_name_that_fails_to_resolve_keeps_its_last_addresses() {
        let mut allowed = at_start();
        let table = RefCell::new(HashMap::new());
        assert_eq!(allowed.refresh(answering(&table)), None);
        assert_eq!(
            allowed.destinations(),
            [to("10.9.9.9", 80), to("10.0.0.1", 5432)]
        );
    }

    #[test]
    fn a_list_of_addresses_only_has_nothing_to_resolve_again() {
        let entries =
            allow::read(&["http://10.9.9.9:80".to_owned(), "*://*:443".to_owned()]).unwrap();
        assert!(!Allowed::resolve(entries).unwrap().changes());
    }

    #[test]
    fn learned_addresses_join_the_entries_and_leave_when_expired() {
        let entries = allow::read(&[
            "http://10.9.9.9:80".to_owned(),
            "http://*.example.test:8080".to_owned(),
        ])
        .unwrap();
        let mut allowed = Allowed::resolve(entries).unwrap();
        assert!(allowed.changes());
        let now = Instant::now();
        let interval = Duration::from_secs(30);
        let answer = [("10.1.1.1".parse().unwrap(), 60)];
        assert_eq!(allowed.learn("other.test", &answer, now, interval), None);
        assert_eq!(
            allowed.learn("api.example.test", &answer, now, interval),
            Some(vec![to("10.9.9.9", 80), to("10.1.1.1", 8080)])
        );
        assert_eq!(
            allowed.learn("api.example.test", &answer, now, interval),
            None
        );
        assert_eq!(allowed.expire(now + Duration::from_secs(59)), None);
        assert_eq!(
            allowed.expire(now + Duration::from_secs(60)),
            Some(vec![to("10.9.9.9", 80)])
        );
    }
}
