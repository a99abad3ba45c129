//! The workers' Prometheus texts as one: what a scraper of the
//! supervisor's `/metrics` would see from a single process.
//!
//! Counters and histograms add up across workers (requests served,
//! bytes, duration buckets), and so do the gauges that count things
//! (in-flight requests, open connections, instance slots). A few gauges
//! say what state something is in; those are the same in every worker
//! when all is well, and their largest value is the honest merge (one
//! worker draining makes the whole `wasmhost_draining`).

use std::collections::HashMap;
use std::fmt::Write as _;

/// Gauges that hold a state, not a count: merged by their largest value.
const STATE_GAUGES: &[&str] = &[
    "wasmhost_draining",
    "wasmhost_rollout_weight_percent",
    "wasmhost_rollout_step",
    "wasmhost_rollout_phase",
];

/// One metric family: its help and type lines and its samples in the
/// order they were first seen.
#[derive(Default)]
struct Family {
    help: Option<String>,
    kind: Option<String>,
    samples: Vec<(String, f64)>,
    index: HashMap<String, usize>,
}

/// Merges Prometheus text-format documents, families and samples in the
/// order first seen. Lines that do not parse are dropped (a worker's
/// output is ours, so there are none in practice).
pub fn merge(texts: &[String]) -> String {
    let mut merged = Merged::default();
    for text in texts {
        for line in text.lines() {
            merged.add(line);
        }
    }
    merged.render()
}

/// Families by name, and their names in the order first seen.
#[derive(Default)]
struct Merged {
    order: Vec<String>,
    families: HashMap<String, Family>,
}

impl Merged {
    fn family(&mut self, name: &str) -> &mut Family {
        if !self.families.contains_key(name) {
            self.order.push(name.to_owned());
        }
        self.families.entry(name.to_owned()).or_default()
    }

    fn add(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            self.family(name)
                .help
                .get_or_insert_with(|| line.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split(' ');
            let name = words.next().unwrap_or_default();
            let kind = words.next().unwrap_or("untyped").to_owned();
            self.family(name).kind.get_or_insert(kind);
        } else if let Some((key, value)) = sample(line) {
            let name = self.family_of(&key).to_owned();
            let largest = STATE_GAUGES.contains(&name.as_str());
            let family = self.family(&name);
            match family.index.get(&key) {
                Some(&i) if largest => family.samples[i].1 = family.samples[i].1.max(value),
                Some(&i) => family.samples[i].1 += value,
                None => {
                    family.index.insert(key.clone(), family.samples.len());
                    family.samples.push((key, value));
                }
            }
        }
    }

    /// The family a series belongs to: its name without labels, and
    /// without the suffix a histogram's or summary's series carry.
    fn family_of<'k>(&self, key: &'k str) -> &'k str {
        let name = key.split('{').next().unwrap_or(key);
        let grouped = |base: &str| {
            self.families
                .get(base)
                .is_some_and(|f| matches!(f.kind.as_deref(), Some("histogram" | "summary")))
        };
        ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|base| grouped(base))
            .unwrap_or(name)
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for name in &self.order {
            let Some(family) = self.families.get(name) else {
                continue;
            };
            if let Some(help) = &family.help {
                out.push_str(help);
                out.push('\n');
            }
            if let Some(kind) = &family.kind {
                let _ = writeln!(out, "# TYPE {name} {kind}");
            }
            for (key, value) in &family.samples {
                let _ = writeln!(out, "{key} {}", number(*value));
            }
        }
        out
    }
}

/// A sample line's series (name and labels) and value; `None` for
/// comments, blank lines and anything else.
fn sample(line: &str) -> Option<(String, f64)> {
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    // Label values may hold spaces; the value follows the last one.
    let (key, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some((key.to_owned(), value))
}

/// A value as Prometheus writes it: whole numbers without a fraction.
fn number(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKER_A: &str = "\
# HELP wasmhost_requests_total Requests served.
# TYPE wasmhost_requests_total counter
wasmhost_requests_total{route=\"/\",status=\"200\"} 3
# HELP wasmhost_request_duration_seconds Request duration.
# TYPE wasmhost_request_duration_seconds histogram
wasmhost_request_duration_seconds_bucket{route=\"/\",le=\"0.005\"} 2
wasmhost_request_duration_seconds_bucket{route=\"/\",le=\"+Inf\"} 3
wasmhost_request_duration_seconds_sum{route=\"/\"} 0.25
wasmhost_request_duration_seconds_count{route=\"/\"} 3
# TYPE wasmhost_draining gauge
wasmhost_draining 0
";

    const WORKER_B: &str = "\
# HELP wasmhost_requests_total Requests served.
# TYPE wasmhost_requests_total counter
wasmhost_requests_total{route=\"/\",status=\"200\"} 4
wasmhost_requests_total{route=\"/a b\",status=\"500\"} 1
# HELP wasmhost_request_duration_seconds Request duration.
# TYPE wasmhost_request_duration_seconds histogram
wasmhost_request_duration_seconds_bucket{route=\"/\",le=\"0.005\"} 1
wasmhost_request_duration_seconds_bucket{route=\"/\",le=\"+Inf\"} 4
wasmhost_request_duration_seconds_sum{route=\"/\"} 0.5
wasmhost_request_duration_seconds_count{route=\"/\"} 4
# TYPE wasmhost_draining gauge
wasmhost_draining 1
";

    #[test]
    fn counters_and_histograms_add_up_and_a_state_gauge_takes_the_largest() {
        let merged = merge(&[WORKER_A.to_owned(), WORKER_B.to_owned()]);
        let expected = "\
# HELP wasmhost_requests_total Requests served.
# TYPE wasmhost_requests_total counter
wasmhost_requests_total{route=\"/\",status=\"200\"} 7
wasmhost_requests_total{route=\"/a b\",status=\"500\"} 1
# HELP wasmhost_request_duration_seconds Request duration.
# TYPE wasmhost_request_duration_seconds histogram
wasmhost_request_duration_seconds_bucket{route=\"/\",le=\"0.005\"} 3
wasmhost_request_duration_seconds_bucket{route=\"/\",le=\"+Inf\"} 7
wasmhost_request_duration_seconds_sum{route=\"/\"} 0.75
wasmhost_request_duration_seconds_count{route=\"/\"} 7
# TYPE wasmhost_draining gauge
wasmhost_draining 1
";
        assert_eq!(merged, expected);
    }

    #[test]
    fn one_worker_merges_to_itself() {
        assert_eq!(merge(&[WORKER_A.to_owned()]), WORKER_A);
    }
}
