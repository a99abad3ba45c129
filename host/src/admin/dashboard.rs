//! The admin listener's `/`: a live dashboard, server-rendered HTML with
//! inline SVG charts that reloads itself (`<meta http-equiv="refresh">`):
//! no script, no build step, readable with scripts off or in a terminal
//! browser.
//!
//! What it shows: every rollout (phase, step, weight, the current window's
//! figures, the next decision, the weight over its decisions), every route
//! × component (requests, 5xx rate, p50/p99, mirror copies and mismatches,
//! and request rate and p99 over the last minutes as charts), the latest
//! mismatches with what differed, and the containers' states. The charts
//! come from [`History`], a sample of the counters every
//! [`limits::DASHBOARD_SAMPLE_EVERY`] taken by a task of the admin
//! listener.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::backend::StatusKind;
use crate::limits;
use crate::metrics::{Metrics, Snapshot};

use super::Admin;

/// The counters sampled over time.
#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

struct Sample {
    at: Instant,
    series: BTreeMap<(String, String), Snapshot>,
}

impl History {
    /// Samples `metrics` every [`limits::DASHBOARD_SAMPLE_EVERY`], keeping
    /// the last [`limits::DASHBOARD_SAMPLES_KEPT`], for the life of the
    /// process.
    pub async fn sample(self: Arc<Self>, metrics: Arc<Metrics>) {
        let mut tick = tokio::time::interval(limits::DASHBOARD_SAMPLE_EVERY);
        loop {
            tick.tick().await;
            let sample = Sample {
                at: Instant::now(),
                series: metrics.snapshots(),
            };
            if let Ok(mut samples) = self.samples.lock() {
                if samples.len() >= limits::DASHBOARD_SAMPLES_KEPT {
                    samples.pop_front();
                }
                samples.push_back(sample);
            }
        }
    }

    /// Per route, per component: (seconds ago, requests/s, p99 ms) for each
    /// interval between two samples.
    fn points(&self) -> BTreeMap<String, BTreeMap<String, Vec<(f64, f64, Option<f64>)>>> {
        let mut out: BTreeMap<String, BTreeMap<String, Vec<_>>> = BTreeMap::new();
        let Ok(samples) = self.samples.lock() else {
            return out;
        };
        let now = Instant::now();
        for (earlier, later) in samples.iter().zip(samples.iter().skip(1)) {
            let seconds = (later.at - earlier.at).as_secs_f64().max(1e-3);
            let ago = (now - later.at).as_secs_f64();
            for ((route, component), snapshot) in &later.series {
                let before = earlier.series.get(&(route.clone(), component.clone()));
                let window = before.map_or(*snapshot, |b| snapshot.since(b));
                out.entry(route.clone())
                    .or_default()
                    .entry(component.clone())
                    .or_default()
                    .push((
                        ago,
                        window.requests as f64 / seconds,
                        window.quantile(0.99).map(|s| s * 1e3),
                    ));
            }
        }
        out
    }
}

/// The page.
pub fn render(admin: &Admin) -> String {
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"2\"><title>wasmhost</title><style>\
         body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
         table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}\
         th{background:#f3f3f3}td:first-child,td:nth-child(2){text-align:left}\
         .bad{color:#b00;font-weight:bold}.good{color:#070}svg{background:#fafafa;border:1px solid #ddd;margin-right:1em}\
         </style></head><body><h1>wasmhost</h1>",
    );
    rollouts(admin, &mut page);
    routes(admin, &mut page);
    mismatches(admin, &mut page);
    containers(admin, &mut page);
    page.push_str("<p><small>Reloads every 2 s. Metrics: <a href=\"/metrics\">/metrics</a>.</small></p></body></html>\n");
    page
}

fn rollouts(admin: &Admin, page: &mut String) {
    let all = admin.rollouts.status();
    page.push_str("<h2>Rollouts</h2>");
    if all.is_empty() {
        page.push_str("<p>No route has a rollout.</p>");
        return;
    }
    for r in all {
        let s = &r.state;
        let class = match s.phase.name() {
            "rolled_back" | "aborted" => "bad",
            "complete" | "promoted" => "good",
            _ => "",
        };
        let _ = write!(
            page,
            "<section class=\"rollout\"><h3>{}: {} → {}</h3><p>phase <span class=\"{class}\">{}</span>, \
             step {} of {}, <b>{} %</b> to <code>{}</code>",
            esc(&s.route),
            esc(&s.from),
            esc(&s.to),
            s.phase.name(),
            s.step + 1,
            r.steps.len(),
            r.weight_percent,
            esc(&s.to),
        );
        if !r.settled() {
            let _ = write!(
                page,
                "; next decision in {:.0} s",
                r.next_decision_in_seconds
            );
        }
        page.push_str("</p>");
        if let Some(reason) = &s.reason {
            let _ = write!(page, "<p class=\"bad\">why: {}</p>", esc(reason));
        }
        let w = &r.window;
        let _ = write!(
            page,
            "<p>this window ({:.0} s): <code>{}</code> served {} ({} 5xx), <code>{}</code> {}; \
             p99 {} vs {}; {} mirrored, {} mismatched. Bounds: error rate ≤ {}, p99 ratio ≤ {}, \
             mismatch rate ≤ {}, at least {} requests.</p>",
            w.seconds,
            esc(&s.to),
            w.to_requests,
            w.to_errors,
            esc(&s.from),
            w.from_requests,
            ms(w.to_p99),
            ms(w.from_p99),
            w.mirrored,
            w.mismatches,
            r.max_error_rate,
            r.max_p99_ratio,
            r.max_mismatch_rate,
            r.min_requests,
        );
        let points: Vec<(f64, f64)> = s
            .decisions
            .iter()
            .map(|d| (d.at as f64, d.weight_percent))
            .collect();
        if !points.is_empty() {
            page.push_str(&chart(
                &format!("% to {} over its decisions", s.to),
                &[(s.to.clone(), points)],
                Some(100.0),
            ));
        }
        page.push_str(
            "<table><tr><th>decision</th><th>step</th><th>% to new</th><th>why</th></tr>",
        );
        for d in s.decisions.iter().rev().take(10) {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.action),
                d.step + 1,
                d.weight_percent,
                esc(&d.reason)
            );
        }
        page.push_str("</table></section>");
    }
}

fn routes(admin: &Admin, page: &mut String) {
    let totals = admin.metrics.snapshots();
    let mirrors = admin.metrics.mirror_totals();
    page.push_str("<h2>Routes</h2>");
    if totals.is_empty() {
        page.push_str("<p>No requests yet.</p>");
        return;
    }
    page.push_str(
        "<table><tr><th>route</th><th>component</th><th>requests</th><th>5xx rate</th>\
         <th>p50</th><th>p99</th><th>copies to it</th><th>mismatches</th></tr>",
    );
    for ((route, component), s) in &totals {
        let (copies, mismatched) = mirrors
            .get(&(route.clone(), component.clone()))
            .copied()
            .unwrap_or_default();
        let rate = if s.requests == 0 {
            0.0
        } else {
            s.errors as f64 / s.requests as f64
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td{}>{:.4}</td><td>{}</td><td>{}</td><td>{copies}</td><td{}>{mismatched}</td></tr>",
            esc(route),
            esc(component),
            s.requests,
            if rate > 0.0 { " class=\"bad\"" } else { "" },
            rate,
            ms(s.quantile(0.5)),
            ms(s.quantile(0.99)),
            if mismatched > 0 { " class=\"bad\"" } else { "" },
        );
    }
    page.push_str("</table>");
    for (route, components) in admin.history.points() {
        let rate: Vec<(String, Vec<(f64, f64)>)> = components
            .iter()
            .map(|(c, p)| (c.clone(), p.iter().map(|(ago, r, _)| (-ago, *r)).collect()))
            .collect();
        let p99: Vec<(String, Vec<(f64, f64)>)> = components
            .iter()
            .map(|(c, p)| {
                (
                    c.clone(),
                    p.iter()
                        .filter_map(|(ago, _, p99)| Some((-ago, (*p99)?)))
                        .collect(),
                )
            })
            .collect();
        let _ = write!(page, "<h3>{}</h3>", esc(&route));
        page.push_str(&chart("requests/s", &rate, None));
        page.push_str(&chart("p99, ms", &p99, None));
    }
}

fn mismatches(admin: &Admin, page: &mut String) {
    let recent = admin.metrics.recent_mismatches();
    page.push_str("<h2>Recent mismatches</h2>");
    if recent.is_empty() {
        page.push_str("<p>None.</p>");
        return;
    }
    page.push_str(
        "<table><tr><th>route</th><th>copy to</th><th>what differed</th><th>at (Unix s)</th></tr>",
    );
    for m in recent.iter().rev() {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td class=\"mismatch\">{}</td><td>{}</td></tr>",
            esc(&m.route),
            esc(&m.component),
            esc(&m.differences),
            m.at
        );
    }
    page.push_str("</table>");
}

fn containers(admin: &Admin, page: &mut String) {
    let states: Vec<(String, &'static str)> = admin
        .backend
        .status()
        .into_iter()
        .filter_map(|s| match s.kind {
            StatusKind::Container { state, .. } => Some((s.component.to_string(), state)),
            StatusKind::Wasm { .. } => None,
        })
        .collect();
    if states.is_empty() {
        return;
    }
    page.push_str("<h2>Containers</h2><ul>");
    for (component, state) in states {
        let _ = write!(page, "<li><code>{}</code>: {state}</li>", esc(&component));
    }
    page.push_str("</ul>");
}

/// A line chart: one polyline per series, x and y scaled to the box;
/// `y_max` fixes the top (else the largest value).
fn chart(title: &str, series: &[(String, Vec<(f64, f64)>)], y_max: Option<f64>) -> String {
    const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let (w, h, pad) = (360.0, 160.0, 24.0);
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut top) = (f64::MAX, f64::MIN, y_max.unwrap_or(0.0));
    for (x, y) in all {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        if y_max.is_none() {
            top = top.max(*y);
        }
    }
    if x0 > x1 {
        return String::new();
    }
    let span = (x1 - x0).max(1e-9);
    let top = if top > 0.0 { top } else { 1.0 };
    let mut svg = format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">\
         <text x=\"4\" y=\"14\" font-size=\"12\">{} (max {:.1})</text>",
        esc(title),
        esc(title),
        top
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let coords: Vec<String> = points
            .iter()
            .map(|(x, y)| {
                format!(
                    "{:.1},{:.1}",
                    pad + (x - x0) / span * (w - 2.0 * pad),
                    h - pad - y / top * (h - 2.0 * pad)
                )
            })
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{colour}\">{}</text>",
            coords.join(" "),
            pad + 90.0 * i as f64,
            h - 6.0,
            esc(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn ms(seconds: Option<f64>) -> String {
    seconds.map_or("–".to_owned(), |s| format!("{:.2} ms", s * 1e3))
}

/// `text` safe inside HTML text and attribute values.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_manifest_or_a_request_is_escaped() {
        assert_eq!(esc("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
    }

    #[test]
    fn a_chart_draws_one_polyline_per_series() {
        let svg = chart(
            "t",
            &[
                ("a".into(), vec![(0.0, 1.0), (1.0, 2.0)]),
                ("b".into(), vec![(0.0, 0.0), (1.0, 0.5)]),
            ],
            None,
        );
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(chart("t", &[], None).is_empty());
    }
}
