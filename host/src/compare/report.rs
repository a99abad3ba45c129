//! What `wasmhost compare` found, as JSON, a text table and a
//! self-contained HTML page with SVG charts (no scripts, no network).

use std::fmt::Write as _;

use serde::Serialize;

use super::load::{Answer, RequestSpec};
use super::Plan;

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When it ran (UTC, RFC 3339).
    pub date: String,
    /// Where it ran.
    pub machine: Machine,
    /// The workload and its settings.
    pub settings: Settings,
    /// The container form.
    pub container: FormReport,
    /// The Wasm form.
    pub wasm: FormReport,
    /// Answers compared between the forms.
    pub mismatch: MismatchReport,
    /// Wasm's figure divided by the container's, for each headline figure.
    pub ratios: Ratios,
}

/// The machine.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Kernel release.
    pub kernel: String,
}

/// The workload.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Requests, cycled through.
    pub workload: Vec<RequestSpec>,
    /// Closed-loop workers.
    pub concurrency: usize,
    /// Measured seconds per form.
    pub duration_s: f64,
    /// Warm-up seconds per form.
    pub warmup_s: f64,
    /// Cold-start rounds per form.
    pub cold_starts: usize,
}

/// One form's figures.
#[derive(Debug, Clone, Serialize)]
pub struct FormReport {
    /// The image or app.
    pub artifact: String,
    /// How it was run.
    pub command: Vec<String>,
    /// Process start to first answer.
    pub cold_start_ms: Samples,
    /// The closed-loop load.
    pub load: LoadReport,
    /// CPU time of the form's processes per request served.
    pub cpu_ms_per_request: f64,
    /// Memory.
    pub memory: MemoryReport,
    /// Artifact size.
    pub size: SizeReport,
}

/// Repeated measurements.
#[derive(Debug, Clone, Serialize)]
pub struct Samples {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// All of them, in the order measured.
    pub samples: Vec<f64>,
}

impl Samples {
    /// Summarises `values`.
    pub fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = match sorted.len() {
            0 => 0.0,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Self {
            median,
            min: sorted.first().copied().unwrap_or(0.0),
            max: sorted.last().copied().unwrap_or(0.0),
            samples: values.to_vec(),
        }
    }
}

/// The closed-loop load.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Requests answered (below 500) inside the window.
    pub requests: u64,
    /// Requests failed (no answer, or 5xx).
    pub errors: u64,
    /// The window.
    pub duration_s: f64,
    /// Requests per second.
    pub rps: f64,
    /// Latency quantiles.
    pub latency_ms: Latency,
    /// Latency distribution, log-spaced buckets.
    pub histogram: Vec<Bucket>,
    /// Width of one throughput interval.
    pub interval_ms: u64,
    /// Requests per second in each interval.
    pub throughput_rps: Vec<f64>,
}

/// Latency quantiles, milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// One histogram bucket: requests slower than the previous bound, at most
/// `upper_ms`.
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// Upper bound, milliseconds.
    pub upper_ms: f64,
    /// Requests in it.
    pub count: u64,
}

/// Memory (PSS) of the form's processes.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// All processes, idle before the warm-up.
    pub idle_bytes: u64,
    /// All processes, the largest total sampled during the load.
    pub peak_bytes: u64,
    /// wasmhost's processes (server, runtime helper), their peak.
    pub host_bytes: u64,
    /// Container form: the container's own processes, their peak.
    pub container_bytes: Option<u64>,
    /// Wasm form: the growth of wasmhost's private memory from idle to its
    /// peak, divided by the concurrency. With a fresh instance per request there are that many
    /// live instances at the peak, so this approximates one instance's
    /// memory, plus whatever else grows with load (request buffers,
    /// blocking-pool threads).
    pub per_instance_bytes: Option<u64>,
}

/// Artifact size.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SizeReport {
    /// Config and layers in the registry: what a pull transfers.
    pub registry_bytes: u64,
    /// Unpacked on disk.
    pub disk_bytes: u64,
}

/// Answers compared.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MismatchReport {
    /// Requests sent to both.
    pub requests: u64,
    /// Answers that differed.
    pub mismatches: u64,
    /// `mismatches / requests`.
    pub rate: f64,
    /// The first few, with what differed.
    pub samples: Vec<MismatchSample>,
}

/// One mismatch.
#[derive(Debug, Clone, Serialize)]
pub struct MismatchSample {
    /// The request.
    pub request: RequestSpec,
    /// What differed.
    pub differences: Vec<String>,
}

/// Wasm ÷ container.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    /// Cold start, medians.
    pub cold_start: f64,
    /// Requests per second.
    pub rps: f64,
    /// Median latency.
    pub p50: f64,
    /// 99th percentile latency.
    pub p99: f64,
    /// CPU per request.
    pub cpu_per_request: f64,
    /// Peak memory.
    pub peak_memory: f64,
    /// Registry size.
    pub registry_size: f64,
}

fn ratio(wasm: f64, container: f64) -> f64 {
    if container == 0.0 {
        0.0
    } else {
        wasm / container
    }
}

impl Report {
    /// Puts the pieces together.
    pub fn new(
        plan: &Plan,
        container: FormReport,
        wasm: FormReport,
        mismatch: MismatchReport,
    ) -> Self {
        let ratios = Ratios {
            cold_start: ratio(wasm.cold_start_ms.median, container.cold_start_ms.median),
            rps: ratio(wasm.load.rps, container.load.rps),
            p50: ratio(wasm.load.latency_ms.p50, container.load.latency_ms.p50),
            p99: ratio(wasm.load.latency_ms.p99, container.load.latency_ms.p99),
            cpu_per_request: ratio(wasm.cpu_ms_per_request, container.cpu_ms_per_request),
            peak_memory: ratio(
                wasm.memory.peak_bytes as f64,
                container.memory.peak_bytes as f64,
            ),
            registry_size: ratio(
                wasm.size.registry_bytes as f64,
                container.size.registry_bytes as f64,
            ),
        };
        Self {
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            machine: machine(),
            settings: Settings {
                workload: plan.workload.clone(),
                concurrency: plan.concurrency,
                duration_s: plan.duration.as_secs_f64(),
                warmup_s: plan.warmup.as_secs_f64(),
                cold_starts: plan.cold_starts,
            },
            container,
            wasm,
            mismatch,
            ratios,
        }
    }

    /// A text table, one row per figure.
    pub fn table(&self) -> String {
        let (c, w, r) = (&self.container, &self.wasm, &self.ratios);
        let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
        let kib = |b: u64| format!("{:.0} KiB", b as f64 / 1024.0);
        let rows: Vec<(&str, String, String, String)> = vec![
            (
                "cold start (median)",
                format!("{:.1} ms", c.cold_start_ms.median),
                format!("{:.1} ms", w.cold_start_ms.median),
                format!("{:.2}×", r.cold_start),
            ),
            (
                "requests/s",
                format!("{:.0}", c.load.rps),
                format!("{:.0}", w.load.rps),
                format!("{:.2}×", r.rps),
            ),
            (
                "latency p50",
                format!("{:.3} ms", c.load.latency_ms.p50),
                format!("{:.3} ms", w.load.latency_ms.p50),
                format!("{:.2}×", r.p50),
            ),
            (
                "latency p90",
                format!("{:.3} ms", c.load.latency_ms.p90),
                format!("{:.3} ms", w.load.latency_ms.p90),
                String::new(),
            ),
            (
                "latency p99",
                format!("{:.3} ms", c.load.latency_ms.p99),
                format!("{:.3} ms", w.load.latency_ms.p99),
                format!("{:.2}×", r.p99),
            ),
            (
                "errors",
                c.load.errors.to_string(),
                w.load.errors.to_string(),
                String::new(),
            ),
            (
                "CPU per request",
                format!("{:.1} µs", c.cpu_ms_per_request * 1000.0),
                format!("{:.1} µs", w.cpu_ms_per_request * 1000.0),
                format!("{:.2}×", r.cpu_per_request),
            ),
            (
                "peak memory (PSS)",
                mib(c.memory.peak_bytes),
                mib(w.memory.peak_bytes),
                format!("{:.2}×", r.peak_memory),
            ),
            (
                "  container processes",
                c.memory.container_bytes.map_or(String::new(), mib),
                String::new(),
                String::new(),
            ),
            (
                "  growth ÷ concurrency",
                String::new(),
                w.memory.per_instance_bytes.map_or(String::new(), kib),
                String::new(),
            ),
            (
                "size in the registry",
                mib(c.size.registry_bytes),
                mib(w.size.registry_bytes),
                format!("{:.3}×", r.registry_size),
            ),
            (
                "size on disk",
                mib(c.size.disk_bytes),
                mib(w.size.disk_bytes),
                String::new(),
            ),
        ];
        let mut out = format!(
            "{:<26} {:>14} {:>14} {:>10}\n",
            "", "container", "wasm", "wasm/cont."
        );
        for (name, a, b, ratio) in rows {
            let _ = writeln!(out, "{name:<26} {a:>14} {b:>14} {ratio:>10}");
        }
        let _ = writeln!(
            out,
            "mismatches: {} of {} answers ({:.2} %)",
            self.mismatch.mismatches,
            self.mismatch.requests,
            self.mismatch.rate * 100.0
        );
        for sample in &self.mismatch.samples {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                sample.request.method,
                sample.request.path,
                sample.differences.join("; ")
            );
        }
        out
    }

    /// A self-contained HTML page: the table, a latency distribution and
    /// throughput over time, as inline SVG.
    pub fn html(&self) -> String {
        let mut page = String::from(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>wasmhost compare</title>\
             <style>body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}\
             table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}\
             td:first-child,th:first-child{text-align:left}pre{background:#f6f6f6;padding:8px;white-space:pre-wrap}\
             .c{color:#1f77b4}.w{color:#d62728}</style></head><body>",
        );
        let _ = write!(
            page,
            "<h1>wasmhost compare</h1><p>{} · {} × {} · kernel {}<br>container: <code>{}</code><br>wasm: <code>{}</code><br>\
             {} workers, {:.0} s measured after {:.0} s warm-up per form, {} cold starts per form</p>",
            escape(&self.date),
            self.machine.cpus,
            escape(&self.machine.cpu),
            escape(&self.machine.kernel),
            escape(&self.container.command.join(" ")),
            escape(&self.wasm.command.join(" ")),
            self.settings.concurrency,
            self.settings.duration_s,
            self.settings.warmup_s,
            self.settings.cold_starts,
        );
        page.push_str("<h2>Figures</h2><pre>");
        page.push_str(&escape(&self.table()));
        page.push_str("</pre><h2>Latency distribution</h2>");
        page.push_str(&histogram_svg(
            &self.container.load.histogram,
            &self.wasm.load.histogram,
        ));
        page.push_str("<h2>Throughput over time</h2>");
        page.push_str(&throughput_svg(
            &self.container.load.throughput_rps,
            &self.wasm.load.throughput_rps,
            self.container.load.interval_ms,
        ));
        page.push_str(
            "<p><span class=\"c\">■ container</span> &nbsp; <span class=\"w\">■ wasm</span></p>",
        );
        page.push_str("<h2>Workload</h2><pre>");
        for request in &self.settings.workload {
            let _ = writeln!(
                page,
                "{} {} {}",
                escape(&request.method),
                escape(&request.path),
                escape(&request.body)
            );
        }
        page.push_str("</pre></body></html>\n");
        page
    }
}

/// What differs between two answers: status, body, and each header in
/// `headers` (lowercase names).
pub fn differences(a: &Answer, b: &Answer, headers: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    if a.status != b.status {
        found.push(format!("status {} vs {}", a.status, b.status));
    }
    if a.body != b.body {
        let at = a
            .body
            .iter()
            .zip(b.body.iter())
            .take_while(|(x, y)| x == y)
            .count();
        let around = |body: &[u8]| {
            let end = (at + 24).min(body.len());
            String::from_utf8_lossy(&body[at.min(end)..end]).into_owned()
        };
        found.push(format!(
            "body differs at byte {at} ({:?} vs {:?}; {} vs {} bytes)",
            around(&a.body),
            around(&b.body),
            a.body.len(),
            b.body.len()
        ));
    }
    for name in headers {
        let value = |answer: &Answer| {
            answer
                .headers
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (x, y) = (value(a), value(b));
        if x != y {
            found.push(format!("header {name}: {x:?} vs {y:?}"));
        }
    }
    found
}

/// Log-spaced buckets from 10 µs to 100 s, ten per decade; only the range
/// that holds requests (none without requests).
pub fn histogram(sorted_us: &[u32]) -> Vec<Bucket> {
    if sorted_us.is_empty() {
        return Vec::new();
    }
    let bounds: Vec<f64> = (10..=80).map(|k| 10f64.powf(f64::from(k) / 10.0)).collect();
    let mut counts = vec![0u64; bounds.len()];
    let mut i = 0;
    for &value in sorted_us {
        while i + 1 < bounds.len() && f64::from(value) > bounds[i] {
            i += 1;
        }
        counts[i] += 1;
    }
    let first = counts.iter().position(|&c| c > 0).unwrap_or(0);
    let last = counts.iter().rposition(|&c| c > 0).unwrap_or(0);
    (first..=last)
        .map(|k| Bucket {
            upper_ms: bounds[k] / 1000.0,
            count: counts[k],
        })
        .collect()
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 300.0;
const MARGIN: f64 = 50.0;

/// Share of requests per bucket, both forms, on a log latency axis.
fn histogram_svg(container: &[Bucket], wasm: &[Bucket]) -> String {
    let all = || container.iter().chain(wasm);
    let (Some(low), Some(high)) = (
        all().map(|b| b.upper_ms).reduce(f64::min),
        all().map(|b| b.upper_ms).reduce(f64::max),
    ) else {
        return "<p>no requests</p>".to_owned();
    };
    let (low, high) = ((low / 1.3).log10(), (high * 1.3).log10());
    let share = |buckets: &[Bucket]| -> Vec<(f64, f64)> {
        let total = buckets.iter().map(|b| b.count).sum::<u64>().max(1) as f64;
        buckets
            .iter()
            .map(|b| (b.upper_ms.log10(), b.count as f64 / total))
            .collect()
    };
    let (c, w) = (share(container), share(wasm));
    let top = c
        .iter()
        .chain(&w)
        .map(|p| p.1)
        .fold(0.0, f64::max)
        .max(0.01);
    let x = |v: f64| MARGIN + (v - low) / (high - low).max(1e-9) * (WIDTH - 2.0 * MARGIN);
    let y = |v: f64| HEIGHT - MARGIN + -(v / top) * (HEIGHT - 2.0 * MARGIN);
    let mut svg = svg_open();
    let mut decade = low.floor();
    while decade <= high {
        if decade >= low {
            let _ = write!(
                svg,
                "<line x1='{0:.1}' x2='{0:.1}' y1='{1}' y2='{2}' stroke='#eee'/><text x='{0:.1}' y='{3}' font-size='12' text-anchor='middle'>{4} ms</text>",
                x(decade), MARGIN, HEIGHT - MARGIN, HEIGHT - MARGIN + 18.0, 10f64.powf(decade)
            );
        }
        decade += 1.0;
    }
    for (points, color) in [(&c, "#1f77b4"), (&w, "#d62728")] {
        let line: Vec<String> = points
            .iter()
            .map(|&(lx, s)| format!("{:.1},{:.1}", x(lx), y(s)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill='none' stroke='{color}' stroke-width='2' points='{}'/>",
            line.join(" ")
        );
    }
    let _ = write!(
        svg,
        "<text x='{MARGIN}' y='{}' font-size='12'>share of requests (peak {:.0} %)</text>",
        MARGIN - 10.0,
        top * 100.0
    );
    svg.push_str("</svg>");
    svg
}

/// Requests per second per interval, both forms, from the start of each
/// form's measured window.
fn throughput_svg(container: &[f64], wasm: &[f64], interval_ms: u64) -> String {
    let top = container.iter().chain(wasm).copied().fold(0.0, f64::max);
    let intervals = container.len().max(wasm.len()).max(2);
    if top == 0.0 {
        return "<p>no requests</p>".to_owned();
    }
    let x = |i: usize| MARGIN + i as f64 / (intervals - 1) as f64 * (WIDTH - 2.0 * MARGIN);
    let y = |v: f64| HEIGHT - MARGIN - v / (top * 1.1) * (HEIGHT - 2.0 * MARGIN);
    let mut svg = svg_open();
    for step in 0..=4 {
        let value = top * 1.1 * f64::from(step) / 4.0;
        let _ = write!(
            svg,
            "<line x1='{MARGIN}' x2='{}' y1='{1:.1}' y2='{1:.1}' stroke='#eee'/><text x='{2}' y='{1:.1}' font-size='12' text-anchor='end'>{3:.0}</text>",
            WIDTH - MARGIN, y(value), MARGIN - 4.0, value
        );
    }
    let seconds = intervals as f64 * interval_ms as f64 / 1000.0;
    let _ = write!(
        svg,
        "<text x='{MARGIN}' y='{}' font-size='12'>requests/s per {interval_ms} ms; x: 0 to {seconds:.1} s</text>",
        HEIGHT - MARGIN + 18.0
    );
    for (series, color) in [(container, "#1f77b4"), (wasm, "#d62728")] {
        let line: Vec<String> = series
            .iter()
            .enumerate()
            .map(|(i, &v)| format!("{:.1},{:.1}", x(i), y(v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill='none' stroke='{color}' stroke-width='2' points='{}'/>",
            line.join(" ")
        );
    }
    svg.push_str("</svg>");
    svg
}

fn svg_open() -> String {
    format!("<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}'>")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    Machine {
        cpu,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str, header: &str) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), header.into())],
            body: bytes::Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn differences_name_status_body_and_chosen_headers() {
        let a = answer(200, r#"{"id":1}"#, "application/json");
        assert!(differences(&a, &a.clone(), &["content-type".into()]).is_empty());
        let b = answer(201, r#"{"id":2}"#, "text/plain");
        let found = differences(&a, &b, &["content-type".into()]);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("status 200 vs 201"));
        assert!(found[1].contains("byte 6"), "{}", found[1]);
        assert!(found[2].contains("content-type"));
        // Headers not named are not compared.
        assert_eq!(
            differences(&a, &answer(200, r#"{"id":1}"#, "x"), &[]).len(),
            0
        );
    }

    #[test]
    fn histograms_count_every_request_once() {
        let values: Vec<u32> = vec![15, 90, 100, 101, 5_000, 5_000, 2_000_000];
        let buckets = histogram(&values);
        assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 7);
        assert!(buckets.first().unwrap().upper_ms >= 0.015);
        assert!(buckets.last().unwrap().upper_ms >= 2000.0);
        assert!(histogram(&[]).is_empty());
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(Samples::of(&[3.0, 1.0, 2.0]).median, 2.0);
        assert_eq!(Samples::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert_eq!(Samples::of(&[]).median, 0.0);
    }
}
