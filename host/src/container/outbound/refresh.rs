//! Names in the allow-list resolved again while the container runs, so a
//! service whose addresses change stays reachable (and its old addresses
//! stop being allowed).
//!
//! A thread per container wakes every interval
//! ([`crate::limits::CONTAINER_OUTBOUND_RESOLVE_INTERVAL`] unless set),
//! resolves the named entries and reloads the filters only when the
//! allowed set changed. A name that does not resolve this time keeps its
//! last addresses: a resolver's bad minute is no reason to cut a
//! container off. Connections already open stay open either way (the
//! filter accepts replies of established connections).

#![forbid(unsafe_code)]

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::allow::{Destination, Entry};
use super::filter::{self, Family};
use super::Namespace;

/// The allow-list's entries and what each resolved to last.
#[derive(Debug)]
pub struct Allowed {
    entries: Vec<(Entry, Vec<Destination>)>,
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
        Ok(Self { entries })
    }

    /// Every allowed destination, in the entries' order.
    pub fn destinations(&self) -> Vec<Destination> {
        self.entries
            .iter()
            .flat_map(|(_, d)| d.iter().cloned())
            .collect()
    }

    /// Whether any entry can change when resolved again.
    pub fn has_names(&self) -> bool {
        self.entries.iter().any(|(entry, _)| entry.is_name())
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

/// The thread resolving names again; dropped, it stops (at once when it
/// is waiting, after the lookup when it is resolving).
pub struct Refresher {
    _stop: mpsc::Sender<()>,
}

impl Refresher {
    /// Every `interval`, resolves `allowed`'s names again and reloads the
    /// `families`' filters in `netns` when what they allow changed.
    pub fn start(
        netns: Namespace,
        mut allowed: Allowed,
        families: Vec<Family>,
        interval: Duration,
        name: &str,
    ) -> Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        // Its log lines say which container they are about.
        let span = tracing::info_span!("outbound", container = %name);
        std::thread::Builder::new()
            .name(format!("outbound-{name}"))
            .spawn(move || {
                let _entered = span.enter();
                // Nothing is ever sent: the sender's drop is the signal.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let Some(now) = allowed.refresh(Entry::resolve) else {
                        continue;
                    };
                    if let Err(e) = filter::load(&netns.path(), &families, &now) {
                        tracing::error!("outbound: cannot reload the filter: {e:#}");
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
        assert!(allowed.has_names());
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
        assert!(!Allowed::resolve(entries).unwrap().has_names());
    }
}
