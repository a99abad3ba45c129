//! `wasmhost compare`: one service, two forms (a container image and a
//! Wasm app), the same workload, side by side on this machine.
//!
//! Each form runs as its own `wasmhost` process, exactly as a user would
//! run it (`wasmhost run IMAGE`, `wasmhost serve APP`), so what is measured
//! is what would be deployed. Phases, in order:
//!
//! 1. artifact sizes: in the registry (what a pull transfers) and on disk;
//! 2. cold starts: process start to the first answer, rounds alternating
//!    between the forms, each from fresh state;
//! 3. mismatches: both forms started fresh, every workload request sent to
//!    both in turn, status, body and chosen headers compared;
//! 4. load, one form at a time: warm-up, then a closed loop at the given
//!    concurrency for the given time, with CPU time and memory of the
//!    form's processes (wasmhost and, for the container, its processes).

pub mod load;
pub mod process;
pub mod report;
pub mod server;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};

use self::load::{quantile, Connection, LoadResult, RequestSpec, INTERVAL};
use self::report::{
    FormReport, Latency, LoadReport, MemoryReport, MismatchReport, MismatchSample, Report, Samples,
    SizeReport,
};
use self::server::{Form, Server};

/// Everything a comparison needs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The container form.
    pub container: Form,
    /// The Wasm form.
    pub wasm: Form,
    /// The requests, cycled through.
    pub workload: Vec<RequestSpec>,
    /// Closed-loop workers.
    pub concurrency: usize,
    /// Measured load time per form.
    pub duration: Duration,
    /// Unmeasured load before it.
    pub warmup: Duration,
    /// Cold-start rounds per form.
    pub cold_starts: usize,
    /// Requests sent to both forms to compare answers.
    pub mismatch_requests: usize,
    /// Headers compared besides status and body (lowercase).
    pub compare_headers: Vec<String>,
}

/// Mismatches reported with what differed; the rest are only counted.
const MISMATCH_SAMPLES: usize = 5;

/// How often memory is sampled during the load.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Runs the whole comparison.
pub async fn run(plan: &Plan) -> Result<Report> {
    anyhow::ensure!(!plan.workload.is_empty(), "the workload has no requests");
    let work = tempfile::Builder::new()
        .prefix("wasmhost-compare-")
        .tempdir()
        .context("cannot create a working directory")?;
    eprintln!("compare: artifact sizes");
    let sizes = [
        plan.container.size().await.context("container form")?,
        plan.wasm.size().await.context("Wasm form")?,
    ];
    eprintln!("compare: {} cold starts per form", plan.cold_starts);
    let cold = cold_starts(plan, work.path()).await?;
    eprintln!("compare: {} requests to both forms", plan.mismatch_requests);
    let (container, wasm) = start_both(plan, work.path()).await?;
    let mismatch = match compare_answers(plan, &container, &wasm).await {
        Ok(mismatch) => mismatch,
        Err(e) => {
            container.stop().await;
            wasm.stop().await;
            return Err(e);
        }
    };
    let mut reports = Vec::new();
    for ((server, size), cold) in [&container, &wasm].into_iter().zip(sizes).zip(&cold) {
        reports.push(form_report(plan, server, size, cold).await);
    }
    container.stop().await;
    wasm.stop().await;
    let wasm_report = reports.pop().context("two forms were measured")?;
    let container_report = reports.pop().context("two forms were measured")?;
    Ok(Report::new(plan, container_report, wasm_report, mismatch))
}

/// Cold starts in milliseconds, container's then Wasm's, in rounds that
/// alternate between the forms so that drift hits both alike.
async fn cold_starts(plan: &Plan, work: &Path) -> Result<[Vec<f64>; 2]> {
    let mut cold = [Vec::new(), Vec::new()];
    for round in 0..plan.cold_starts {
        for (i, form) in [&plan.container, &plan.wasm].into_iter().enumerate() {
            let state = work.join(format!("cold-{}-{round}", form.label()));
            let (server, elapsed) = Server::start_cold(form, &state, &plan.workload[0]).await?;
            server.stop().await;
            cold[i].push(elapsed.as_secs_f64() * 1000.0);
        }
    }
    Ok(cold)
}

/// Both forms from fresh state, for the mismatch phase and the loads;
/// the container form is stopped again if the Wasm one cannot start.
async fn start_both(plan: &Plan, work: &Path) -> Result<(Server, Server)> {
    let probe = &plan.workload[0];
    let container = Server::start(&plan.container, &work.join("container"), probe).await?;
    match Server::start(&plan.wasm, &work.join("wasm"), probe).await {
        Ok(wasm) => Ok((container, wasm)),
        Err(e) => {
            container.stop().await;
            Err(e)
        }
    }
}

/// One form's load, CPU and memory, with its sizes and cold starts.
async fn form_report(plan: &Plan, server: &Server, size: SizeReport, cold: &[f64]) -> FormReport {
    let form = server.form();
    eprintln!(
        "compare: {} load, {} workers, {:?}",
        form.label(),
        plan.concurrency,
        plan.duration
    );
    let (load, memory, cpu_ms) = measure_load(plan, server).await;
    let requests = load.latencies_us.len() as u64;
    FormReport {
        artifact: form.artifact().to_owned(),
        command: form.command_line(),
        cold_start_ms: Samples::of(cold),
        load: load_report(&load),
        cpu_ms_per_request: if requests == 0 {
            0.0
        } else {
            cpu_ms / requests as f64
        },
        memory,
        size,
    }
}

/// Sends every request to both servers in turn and compares the answers.
async fn compare_answers(plan: &Plan, a: &Server, b: &Server) -> Result<MismatchReport> {
    let mut to_a = Connection::new(a.addr());
    let mut to_b = Connection::new(b.addr());
    let mut report = MismatchReport::default();
    for i in 0..plan.mismatch_requests {
        let request = &plan.workload[i % plan.workload.len()];
        let answer_a = to_a.send(request).await.context("container form")?;
        let answer_b = to_b.send(request).await.context("Wasm form")?;
        report.requests += 1;
        let differences = report::differences(&answer_a, &answer_b, &plan.compare_headers);
        if !differences.is_empty() {
            report.mismatches += 1;
            if report.samples.len() < MISMATCH_SAMPLES {
                report.samples.push(MismatchSample {
                    request: request.clone(),
                    differences,
                });
            }
        }
    }
    report.rate = if report.requests == 0 {
        0.0
    } else {
        report.mismatches as f64 / report.requests as f64
    };
    Ok(report)
}

/// The largest memory figures seen while sampling.
#[derive(Debug, Default, Clone, Copy)]
struct Peak {
    total: u64,
    host: u64,
    container: u64,
    host_private: u64,
}

impl Peak {
    fn add(&mut self, usage: process::Usage) {
        self.total = self.total.max(usage.memory());
        self.host = self.host.max(usage.host_memory);
        self.container = self.container.max(usage.container_memory);
        self.host_private = self.host_private.max(usage.host_private);
    }
}

/// Warm-up, then the measured closed loop with CPU and memory sampled
/// around and during it. Returns the load, memory and CPU milliseconds.
async fn measure_load(plan: &Plan, server: &Server) -> (LoadResult, MemoryReport, f64) {
    let workload = Arc::new(plan.workload.clone());
    let idle = server.usage();
    if !plan.warmup.is_zero() {
        load::run(
            server.addr(),
            workload.clone(),
            plan.concurrency,
            plan.warmup,
        )
        .await;
    }
    let before = server.usage();
    let pid = server.pid();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    // Peaks of the total and of each part, each taken at one moment.
    let sampler = tokio::spawn(async move {
        let mut peak = Peak::default();
        loop {
            if let Some(pid) = pid {
                peak.add(process::usage(pid));
            }
            tokio::select! {
                _ = &mut stop_rx => return peak,
                () = tokio::time::sleep(SAMPLE_EVERY) => {}
            }
        }
    });
    // CPU is read when the window closes, not when the last worker
    // returns: requests still in flight then are not counted, so neither
    // is the CPU they use afterwards.
    let (result, after) = tokio::join!(
        load::run(server.addr(), workload, plan.concurrency, plan.duration),
        async {
            tokio::time::sleep(plan.duration).await;
            server.usage()
        }
    );
    let _ = stop_tx.send(());
    let mut peak = sampler.await.unwrap_or_default();
    peak.add(after);
    let container = server.form().is_container();
    let memory = MemoryReport {
        idle_bytes: idle.memory(),
        peak_bytes: peak.total,
        host_bytes: peak.host,
        container_bytes: container.then_some(peak.container),
        per_instance_bytes: (!container).then(|| {
            peak.host_private.saturating_sub(idle.host_private) / plan.concurrency.max(1) as u64
        }),
    };
    (result, memory, after.cpu_ms() - before.cpu_ms())
}

fn load_report(load: &LoadResult) -> LoadReport {
    let sorted = &load.latencies_us;
    let ms = |us: u32| f64::from(us) / 1000.0;
    let seconds = load.elapsed.as_secs_f64().max(f64::EPSILON);
    let mean = if sorted.is_empty() {
        0.0
    } else {
        sorted.iter().map(|&v| f64::from(v)).sum::<f64>() / sorted.len() as f64 / 1000.0
    };
    LoadReport {
        requests: sorted.len() as u64,
        errors: load.errors,
        duration_s: seconds,
        rps: sorted.len() as f64 / seconds,
        latency_ms: Latency {
            p50: ms(quantile(sorted, 0.50)),
            p90: ms(quantile(sorted, 0.90)),
            p99: ms(quantile(sorted, 0.99)),
            max: ms(sorted.last().copied().unwrap_or(0)),
            mean,
        },
        histogram: report::histogram(sorted),
        interval_ms: INTERVAL.as_millis() as u64,
        throughput_rps: throughput(&load.per_interval, load.elapsed),
    }
}

/// Completions per interval as requests per second; the last interval
/// may be shorter than the others (the window is not a whole number of
/// intervals) and is scaled by its real width.
fn throughput(per_interval: &[u64], elapsed: Duration) -> Vec<f64> {
    let width = INTERVAL.as_secs_f64();
    let last = per_interval.len().saturating_sub(1);
    per_interval
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let seconds = if i == last {
                (elapsed.as_secs_f64() - width * i as f64).clamp(width / 1000.0, width)
            } else {
                width
            };
            n as f64 / seconds
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_last_interval_is_scaled_by_its_width() {
        // 0.6 s: two full 250 ms intervals and one of 100 ms.
        let rates = throughput(&[25, 25, 10], Duration::from_millis(600));
        assert_eq!(rates.len(), 3);
        assert!((rates[0] - 100.0).abs() < 1e-9);
        assert!((rates[2] - 100.0).abs() < 1e-6, "{rates:?}");
    }
}
