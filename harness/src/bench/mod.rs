//! `hil bench`: the console engine and the orchestrator measured against their limits and
//! their peers, in one run, as a table or JSON. BENCHMARKS.md has the method and figures.
//!
//! Every console measurement plays kernel-log-like text ([`textgen`]) into ptys from a
//! separate feeder process ([`feeder`]), so only the reader's CPU is counted.

pub mod consoles;
pub mod feeder;
pub mod latency;
pub mod lease_scale;
pub mod memory;
pub mod network;
pub mod orchestration;
pub mod patterns;
pub mod peers;
pub mod report_html;
pub mod serve_matrix;
pub mod sys;
pub mod textgen;
pub mod throughput;

use crate::console::ser2net;
use serde::Serialize;
use std::path::PathBuf;
use throughput::Writes;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Print the results as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Only these parts (comma-separated): throughput, latency, memory, consoles,
    /// network, orchestration, lease-scale, serve-matrix, report-html-256m.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// MiB streamed for the raw read and hil's engine.
    #[arg(long, default_value_t = 64)]
    pub stream_mib: u64,
    /// MiB streamed for rexpect (slower: a smaller stream, same per-MiB figures).
    #[arg(long, default_value_t = 16)]
    pub peer_mib: u64,
    /// MiB streamed through one console for the memory measurement.
    #[arg(long, default_value_t = 1024)]
    pub memory_mib: u64,
    /// Interleaved runs of the raw read and hil's engine (the pty's speed varies with the
    /// machine's load; medians are reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// pexpect set-ups to measure, MAXREAD:WINDOW:MIB (window 0 = none). The first is the
    /// one the CPU target compares against: labgrid's maxread=1 (with a window added, as
    /// without one a MiB takes minutes), then pexpect's defaults, then a tuned set-up.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1:4096:0.25,2000:0:1,2000:4096:16,65536:4096:16"
    )]
    pub pexpect: Vec<peers::PexpectConfig>,
    /// MiB labgrid itself follows on the pty (throughput part). Its expect keeps no search
    /// window, so its CPU per MiB grows with the stream: compare at the same size.
    #[arg(long, default_value_t = 2.0)]
    pub labgrid_mib: f64,
    /// labgrid version measured (installed with pip into ~/.cache/hil/bench-venv).
    #[arg(long, default_value = "26.0.1")]
    pub labgrid_version: String,
    /// Leave labgrid out (the throughput and network parts still run their other rows).
    #[arg(long)]
    pub no_labgrid: bool,
    /// MiB streamed through ser2net per network row for hil and the raw TCP read.
    #[arg(long, default_value_t = 32.0)]
    pub net_mib: f64,
    /// MiB streamed through ser2net for labgrid's network console.
    #[arg(long, default_value_t = 0.5)]
    pub net_labgrid_mib: f64,
    /// Interleaved rounds of the network part (medians are reported).
    #[arg(long, default_value_t = 3)]
    pub net_repeat: usize,
    /// Latency marks.
    #[arg(long, default_value_t = 2000)]
    pub marks: usize,
    /// Console counts for the concurrency measurement.
    #[arg(long, value_delimiter = ',', default_value = "64,256,1024")]
    pub consoles: Vec<usize>,
    /// Seconds of 1.5 Mbaud text per console.
    #[arg(long, default_value_t = 10)]
    pub console_seconds: u64,
    /// Suite and board for the orchestration measurement (boots the sim board).
    #[arg(long, default_value = "suites/smoke.toml")]
    pub suite: PathBuf,
    #[arg(long, default_value = "sim-rk3588")]
    pub board: String,
    /// hil/script pairs for the orchestration measurement (medians are reported).
    #[arg(long, default_value_t = 2)]
    pub orchestration_runs: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The lease-scale part: simulated lab hosts, boards and jobs on one PostgreSQL.
    #[command(flatten)]
    pub lease: lease_scale::plan::PlanArgs,
    /// The serve-matrix part: the dashboard's matrix page over a long history.
    #[command(flatten)]
    pub serve: serve_matrix::ServeMatrixArgs,
    /// The report-html-256m part: loads of each report page timed in Chromium.
    #[arg(long, default_value_t = 5)]
    pub report_opens: usize,
}

#[derive(Debug, Serialize)]
pub struct EngineResult {
    pub engine: String,
    /// How the feeder wrote the stream: "per-line writes" or "64 KiB writes".
    pub stream: String,
    /// Bytes the reader received, and bytes the feeder wrote (a row whose counts differ
    /// fails instead).
    pub bytes: u64,
    pub bytes_written: u64,
    pub mib: f64,
    pub wall_s: f64,
    pub mib_per_s: f64,
    pub cpu_s: f64,
    pub cpu_s_per_mib: f64,
    pub note: String,
}

#[derive(Debug, Serialize)]
pub struct LatencyResult {
    pub engine: String,
    pub marks: usize,
    pub missed: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct MemorySample {
    pub mib_streamed: f64,
    pub rss_kib: u64,
}

#[derive(Debug, Serialize)]
pub struct MemoryResult {
    pub mib_streamed: f64,
    pub wall_s: f64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub peak_rss_kib: u64,
    pub samples: Vec<MemorySample>,
}

#[derive(Debug, Serialize)]
pub struct ConsolesResult {
    pub consoles: usize,
    pub seconds_each: u64,
    pub target_rate_bps_each: u64,
    pub wall_s: f64,
    pub feeder_elapsed_s: f64,
    pub achieved_rate_bps_each: f64,
    pub cpu_s: f64,
    pub cpu_cores: f64,
    pub bytes_written: u64,
    pub bytes_received: u64,
    pub bytes_lost: u64,
    pub failed: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Debug, Serialize, Default)]
pub struct BenchReport {
    pub hil_version: String,
    pub cpus: usize,
    pub load_1m_before: f64,
    pub load_1m_after: f64,
    /// Medians for the raw read and hil, then one row per peer set-up.
    pub throughput: Vec<EngineResult>,
    /// Every raw and hil run, in the order run.
    pub throughput_runs: Vec<EngineResult>,
    /// Medians of the network console rows (through ser2net on 127.0.0.1).
    pub network: Vec<EngineResult>,
    /// Every network run, in the order run.
    pub network_runs: Vec<EngineResult>,
    pub latency: Vec<LatencyResult>,
    pub memory: Option<MemoryResult>,
    pub consoles: Vec<ConsolesResult>,
    pub orchestration: Option<orchestration::OrchestrationResult>,
    pub lease_scale: Option<lease_scale::LeaseScaleResult>,
    pub serve_matrix: Option<serve_matrix::ServeMatrixResult>,
    pub report_html: Option<report_html::ReportHtmlResult>,
    pub targets: Vec<Target>,
    /// Parts that could not be measured, with the reason.
    pub errors: Vec<String>,
    /// Rows left out on purpose or for want of a peer (labgrid not installable).
    pub skipped: Vec<String>,
}

/// Runs the selected parts; a part that fails is reported in `errors`, the rest still run.
pub async fn run(a: BenchArgs) -> anyhow::Result<BenchReport> {
    let want = |p: &str| a.only.is_empty() || a.only.iter().any(|o| o == p);
    let (load, cpus) = sys::machine_load();
    let mut r = BenchReport {
        hil_version: env!("CARGO_PKG_VERSION").into(),
        cpus,
        load_1m_before: load,
        ..Default::default()
    };
    let log_dir = log_dir();
    std::fs::create_dir_all(&log_dir)?;
    let mut err = |r: &mut BenchReport, what: &str, e: anyhow::Error| {
        eprintln!("hil bench: {what}: {e:#}");
        r.errors.push(format!("{what}: {e:#}"));
    };
    // labgrid (a venv from PyPI) for the throughput and network parts; without it those
    // parts still measure their other rows.
    let labgrid = if a.no_labgrid {
        r.skipped.push("labgrid: left out (--no-labgrid)".into());
        None
    } else if want("throughput") || want("network") {
        let v = a.labgrid_version.clone();
        match tokio::task::spawn_blocking(move || peers::ensure_labgrid(&v)).await? {
            Ok(p) => Some(p),
            Err(e) => {
                let why = format!(
                    "labgrid {}: not measured, it could not be installed: {e:#}",
                    a.labgrid_version
                );
                eprintln!("hil bench: {why}");
                r.skipped.push(why);
                None
            }
        }
    } else {
        None
    };
    // Memory first: the peak resident size is per process, so it must not include the
    // peers' buffers measured later in this same process.
    if want("memory") {
        progress(&format!("memory: {} MiB through one console", a.memory_mib));
        match on_worker(memory::hil(a.memory_mib << 20, a.seed)).await {
            Ok(m) => r.memory = Some(m),
            Err(e) => err(&mut r, "memory", e),
        }
    }
    if want("throughput") {
        let s = a.stream_mib << 20;
        let mut runs = Vec::new();
        for i in 0..a.repeat.max(1) {
            let n = format!("{}/{}", i + 1, a.repeat.max(1));
            for w in [Writes::PerLine, Writes::Bulk] {
                let mib = a.stream_mib;
                let what = |engine: &str| {
                    format!("throughput: {engine}, {mib} MiB in {}, run {n}", w.label())
                };
                progress(&what("raw read"));
                let raw = tokio::task::spawn_blocking(move || throughput::raw(s, a.seed, None, w))
                    .await?;
                push(&mut runs, raw, "throughput raw", &mut err, &mut r);
                progress(&what("raw read + console log"));
                let log = Some(log_dir.join("throughput-raw.log"));
                let raw_logged =
                    tokio::task::spawn_blocking(move || throughput::raw(s, a.seed, log, w)).await?;
                push(
                    &mut runs,
                    raw_logged,
                    "throughput raw + log",
                    &mut err,
                    &mut r,
                );
                progress(&what("hil"));
                let hil = on_worker(throughput::hil(s, a.seed, log_dir.clone(), w)).await;
                push(&mut runs, hil, "throughput hil", &mut err, &mut r);
            }
        }
        r.throughput.extend(throughput::medians(&runs));
        r.throughput_runs = runs;
        #[cfg(feature = "bench-rexpect")]
        {
            let p = a.peer_mib << 20;
            progress(&format!("throughput: rexpect, {} MiB", a.peer_mib));
            let rx = tokio::task::spawn_blocking(move || throughput::rexpect(p, a.seed)).await?;
            let mut one = Vec::new();
            push(&mut one, rx, "throughput rexpect", &mut err, &mut r);
            r.throughput.extend(one);
        }
        if let Some(py) = labgrid.clone() {
            progress(&format!(
                "throughput: labgrid SerialDriver on the pty, {} MiB",
                a.labgrid_mib
            ));
            let bytes = (a.labgrid_mib * (1 << 20) as f64) as u64;
            let lg = tokio::task::spawn_blocking(move || throughput::labgrid(bytes, a.seed, &py))
                .await?;
            let mut one = Vec::new();
            push(&mut one, lg, "throughput labgrid", &mut err, &mut r);
            r.throughput.extend(one);
        }
        for &cfg in &a.pexpect {
            progress(&format!("throughput: pexpect ({cfg}), {} MiB", cfg.mib));
            let bytes = (cfg.mib * (1 << 20) as f64) as u64;
            let px = tokio::task::spawn_blocking(move || throughput::pexpect(bytes, a.seed, cfg))
                .await?;
            let mut one = Vec::new();
            push(&mut one, px, "throughput pexpect", &mut err, &mut r);
            r.throughput.extend(one);
        }
    }
    if want("latency") {
        progress(&format!("latency: {} marks", a.marks));
        match on_worker(latency::hil(a.marks, a.seed, log_dir.clone())).await {
            Ok(l) => r.latency.push(l),
            Err(e) => err(&mut r, "latency hil", e),
        }
        let (n, seed) = (a.marks, a.seed);
        // Latency for pexpect's linear set-ups only: without a window it falls behind.
        for &cfg in a.pexpect.iter().filter(|c| c.window > 0 && c.maxread > 1) {
            match tokio::task::spawn_blocking(move || latency::pexpect(n, seed, cfg)).await? {
                Ok(l) => r.latency.push(l),
                Err(e) => err(&mut r, "latency pexpect", e),
            }
        }
    }
    if want("consoles") {
        for &n in &a.consoles {
            progress(&format!(
                "consoles: {n} at 1.5 Mbaud for {} s",
                a.console_seconds
            ));
            match consoles::run(n, a.console_seconds, a.seed, &log_dir).await {
                Ok(c) => r.consoles.push(c),
                Err(e) => err(&mut r, &format!("{n} consoles"), e),
            }
        }
    }
    if want("network") {
        if ser2net::installed() {
            let mut runs = Vec::new();
            let bytes = (a.net_mib * (1 << 20) as f64) as u64;
            let lg_bytes = (a.net_labgrid_mib * (1 << 20) as f64) as u64;
            let n = a.net_repeat.max(1);
            for i in 0..n {
                let round = format!("run {}/{n}", i + 1);
                for rfc2217 in [true, false] {
                    let name = if rfc2217 {
                        network::HIL_RFC2217
                    } else {
                        network::HIL_TCP
                    };
                    progress(&format!("network: {name}, {} MiB, {round}", a.net_mib));
                    let res =
                        on_worker(network::hil(bytes, a.seed, log_dir.clone(), rfc2217)).await;
                    push(&mut runs, res, "network hil", &mut err, &mut r);
                }
                progress(&format!(
                    "network: {}, {} MiB, {round}",
                    network::RAW_TCP,
                    a.net_mib
                ));
                let res = tokio::task::spawn_blocking(move || network::raw(bytes, a.seed)).await?;
                push(&mut runs, res, "network raw", &mut err, &mut r);
                if let Some(py) = labgrid.clone() {
                    progress(&format!(
                        "network: labgrid SerialDriver rfc2217://, {} MiB, {round}",
                        a.net_labgrid_mib
                    ));
                    let res = tokio::task::spawn_blocking(move || {
                        network::labgrid(lg_bytes, a.seed, &py)
                    })
                    .await?;
                    push(&mut runs, res, "network labgrid", &mut err, &mut r);
                }
            }
            r.network = throughput::medians(&runs);
            r.network_runs = runs;
        } else {
            err(
                &mut r,
                "network",
                anyhow::anyhow!("ser2net is not installed (apt-get install ser2net)"),
            );
        }
    }
    if want("orchestration") {
        progress("orchestration: hil run vs a shell script, same QEMU steps");
        match orchestration::run(&a.suite, &a.board, a.orchestration_runs).await {
            Ok(o) => r.orchestration = Some(o),
            Err(e) => err(&mut r, "orchestration", e),
        }
    }
    if want("lease-scale") {
        progress(&format!(
            "lease-scale: {} jobs from {} lab hosts on {} boards over {} s, one PostgreSQL",
            a.lease.jobs, a.lease.hosts, a.lease.boards, a.lease.spread_s
        ));
        match lease_scale::run(&a.lease).await {
            Ok(l) => r.lease_scale = Some(l),
            Err(e) => err(&mut r, "lease-scale", e),
        }
    }
    if want("serve-matrix") {
        progress(&format!(
            "serve-matrix: hil serve's /matrix over {} runs × {} boards × {} checks",
            a.serve.serve_runs, a.serve.serve_boards, a.serve.serve_checks
        ));
        match serve_matrix::run(&a.serve, a.seed).await {
            Ok(s) => r.serve_matrix = Some(s),
            Err(e) => err(&mut r, "serve-matrix", e),
        }
    }
    if want("report-html-256m") {
        progress("report-html-256m: report.html of a 256 MiB console log, opened in Chromium");
        let (opens, seed) = (a.report_opens, a.seed);
        match tokio::task::spawn_blocking(move || report_html::run(opens, seed)).await? {
            Ok(h) => r.report_html = Some(h),
            Err(e) => err(&mut r, "report-html-256m", e),
        }
    }
    let _ = std::fs::remove_dir_all(&log_dir);
    r.load_1m_after = sys::machine_load().0;
    r.targets = targets(&r);
    Ok(r)
}

/// Runs `f` as a task on the runtime's worker pool, where a run's board tasks (and so
/// their expect calls) run, rather than on the thread that blocks on the bench. Throughput
/// measured the same either way; only this placement showed the broker outrunning its
/// subscribers (see BENCHMARKS.md, "Changes made").
async fn on_worker<T: Send + 'static>(
    f: impl std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::spawn(f).await?
}

fn push(
    into: &mut Vec<EngineResult>,
    res: anyhow::Result<EngineResult>,
    what: &str,
    err: &mut impl FnMut(&mut BenchReport, &str, anyhow::Error),
    r: &mut BenchReport,
) {
    match res {
        Ok(e) => into.push(e),
        Err(e) => err(r, what, e),
    }
}

/// Console logs go to tmpfs when there is one: the measurement is of hil, not of the disk.
fn log_dir() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("hil-bench-{}", std::process::id()))
}

fn progress(what: &str) {
    eprintln!("hil bench: {what} ...");
}

fn engine<'a>(r: &'a BenchReport, prefix: &str) -> Option<&'a EngineResult> {
    r.throughput.iter().find(|e| e.engine.starts_with(prefix))
}

/// The row of `name` measured on the stream written `w`.
fn engine_on<'a>(r: &'a BenchReport, name: &str, w: Writes) -> Option<&'a EngineResult> {
    r.throughput
        .iter()
        .find(|e| e.engine == name && e.stream == w.label())
}

/// The targets, each with what was measured.
fn targets(r: &BenchReport) -> Vec<Target> {
    let mut t = Vec::new();
    // hil against the raw read on one stream, with the control (a raw read that writes
    // the same log) showing how much of any gap is the log write itself on this pty.
    let vs_raw = |w: Writes| {
        let raw = engine_on(r, throughput::RAW, w)?;
        let hil = engine_on(r, throughput::HIL, w)?;
        let ratio = hil.mib_per_s / raw.mib_per_s;
        let control = engine_on(r, throughput::RAW_LOGGED, w)
            .map(|c| {
                format!(
                    "; the control {:.0}% of the raw read, hil {:.0}% of the control",
                    100.0 * c.mib_per_s / raw.mib_per_s,
                    100.0 * hil.mib_per_s / c.mib_per_s
                )
            })
            .unwrap_or_default();
        Some((
            ratio,
            format!("{:.0}% with {}{control}", ratio * 100.0, w.label()),
        ))
    };
    // Judged where the pty (its writer's side) is the limit, as in the reference
    // figures; the 64 KiB-write stream, where the reader is the limit, is shown beside it.
    if let Some((ratio, lines)) = vs_raw(Writes::PerLine) {
        let bulk = vs_raw(Writes::Bulk)
            .map(|(_, b)| format!(" | {b}"))
            .unwrap_or_default();
        t.push(Target {
            what: "engine throughput vs raw pty read".into(),
            target: ">= 80%".into(),
            measured: format!("{lines}{bulk}"),
            met: ratio >= 0.8,
        });
    }
    let hil_bulk = engine_on(r, throughput::HIL, Writes::Bulk);
    if let (Some(px), Some(hil)) = (engine(r, "pexpect"), hil_bulk) {
        let ratio = px.cpu_s_per_mib / hil.cpu_s_per_mib;
        t.push(Target {
            what: format!("CPU per MiB vs {}", px.engine),
            target: "<= 1/50".into(),
            measured: format!("1/{ratio:.0}"),
            met: ratio >= 50.0,
        });
    }
    if let (Some(lg), Some(hil)) = (engine(r, throughput::LABGRID), hil_bulk) {
        let ratio = lg.cpu_s_per_mib / hil.cpu_s_per_mib;
        t.push(Target {
            what: format!("CPU per MiB vs {}", lg.engine),
            target: "<= 1/50".into(),
            measured: format!("1/{ratio:.0}"),
            met: ratio >= 50.0,
        });
    }
    let net = |name: &str| r.network.iter().find(|e| e.engine.starts_with(name));
    if let Some(raw) = net(network::RAW_TCP) {
        for name in [network::HIL_RFC2217, network::HIL_TCP] {
            if let Some(hil) = net(name) {
                let ratio = hil.mib_per_s / raw.mib_per_s;
                t.push(Target {
                    what: format!("{name} vs raw TCP read"),
                    target: ">= 80%".into(),
                    measured: format!(
                        "{:.0}% ({:.1} of {:.1} MiB/s)",
                        100.0 * ratio,
                        hil.mib_per_s,
                        raw.mib_per_s
                    ),
                    met: ratio >= 0.8,
                });
            }
        }
    }
    if let (Some(lg), Some(hil)) = (net(network::LABGRID), net(network::HIL_RFC2217)) {
        let ratio = lg.cpu_s_per_mib / hil.cpu_s_per_mib;
        t.push(Target {
            what: format!("network CPU per MiB vs {}", lg.engine),
            target: "<= 1/50".into(),
            measured: format!(
                "1/{ratio:.0} ({:.4} vs {:.3} CPU s/MiB)",
                hil.cpu_s_per_mib, lg.cpu_s_per_mib
            ),
            met: ratio >= 50.0,
        });
    }
    if let Some(l) = r.latency.iter().find(|l| l.engine == "hil") {
        t.push(Target {
            what: "p99 match latency".into(),
            target: "< 1 ms".into(),
            measured: format!("{:.3} ms", l.p99_ms),
            met: l.p99_ms < 1.0 && l.missed == 0,
        });
    }
    if let Some(m) = &r.memory {
        // Flat: the last sample within 10% (or 4 MiB) of the first one past warm-up.
        let first = m.samples.first().map_or(0, |s| s.rss_kib);
        let last = m.samples.last().map_or(0, |s| s.rss_kib);
        let grew = last.saturating_sub(first);
        t.push(Target {
            what: format!("memory flat over {:.0} MiB", m.mib_streamed),
            target: "flat".into(),
            measured: format!(
                "{} KiB at the first sample, {} KiB at the last (peak {} KiB)",
                first, last, m.peak_rss_kib
            ),
            met: !m.samples.is_empty() && (grew <= first / 10 || grew <= 4096),
        });
    }
    if let Some(c) = r.consoles.iter().max_by_key(|c| c.consoles) {
        t.push(Target {
            what: format!("{} consoles in one process", c.consoles),
            target: "< 1 core, 0 bytes lost".into(),
            measured: format!(
                "{:.2} cores, {} bytes lost, {:.0}% of the target rate offered",
                c.cpu_cores,
                c.bytes_lost,
                100.0 * c.achieved_rate_bps_each / c.target_rate_bps_each as f64
            ),
            // Met only if the feeder really offered (nearly) the full rate.
            met: c.cpu_cores < 1.0
                && c.bytes_lost == 0
                && c.failed.is_empty()
                && c.achieved_rate_bps_each >= 0.95 * c.target_rate_bps_each as f64,
        });
    }
    if let Some(o) = &r.orchestration {
        t.push(Target {
            what: "orchestration overhead".into(),
            target: "<= 5% of the suite's wall time".into(),
            measured: format!("{:+.1}%", o.overhead_pct),
            met: o.overhead_pct <= 5.0,
        });
    }
    if let Some(l) = &r.lease_scale {
        t.push(Target {
            what: format!("p99 lease grant of a free board, {} hosts", l.hosts),
            target: format!("< {} ms", lease_scale::GRANT_P99_TARGET_MS),
            measured: format!(
                "{:.2} ms (p50 {:.2} ms, {} grants)",
                l.grant_free.p99_ms, l.grant_free.p50_ms, l.grant_free.count
            ),
            met: l.grant_free.p99_ms < lease_scale::GRANT_P99_TARGET_MS,
        });
        t.push(Target {
            what: "lease double grants; every job ended as planned".into(),
            target: "0; no problems".into(),
            measured: format!(
                "{} double grants, {} problems",
                l.double_grants,
                l.problems.len()
            ),
            met: l.double_grants == 0 && l.problems.is_empty(),
        });
    }
    if let Some(s) = &r.serve_matrix {
        if let Some(p) = s.pages.first() {
            t.push(Target {
                what: format!("p99 answer of {} over {} runs", p.path, s.runs),
                target: format!("< {} ms", serve_matrix::P99_TARGET_MS),
                measured: format!(
                    "{:.2} ms (p50 {:.2} ms, {} requests)",
                    p.times.p99_ms, p.times.p50_ms, p.times.count
                ),
                met: p.times.p99_ms < serve_matrix::P99_TARGET_MS,
            });
        }
    }
    if let Some(h) = &r.report_html {
        t.push(Target {
            what: "report.html of a 256 MiB console log: size".into(),
            target: format!("< {} MiB", report_html::SIZE_TARGET_BYTES >> 20),
            measured: format!("{:.2} MiB", h.large.html_bytes as f64 / 1048576.0),
            met: h.large.html_bytes < report_html::SIZE_TARGET_BYTES,
        });
        t.push(Target {
            what: "report.html of a 256 MiB console log: opens in Chromium".into(),
            target: format!("< {} ms (slowest load)", report_html::OPEN_TARGET_MS),
            measured: format!(
                "{:.0} ms max, {:.0} ms median ({} loads); {:.2}× the 64 KiB log's page",
                h.large.open.max_ms, h.large.open.p50_ms, h.large.open.count, h.open_ratio
            ),
            met: h.large.open.max_ms < report_html::OPEN_TARGET_MS,
        });
    }
    t
}

/// The human-readable table.
pub fn table(r: &BenchReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "hil {} bench — {} CPUs, load (1 min) {:.2} before, {:.2} after\n",
        r.hil_version, r.cpus, r.load_1m_before, r.load_1m_after
    );
    if !r.throughput.is_empty() {
        let _ = writeln!(
            s,
            "{:<36} {:<16} {:>5} {:>9} {:>8} {:>10}  note",
            "throughput", "stream", "MiB", "MiB/s", "CPU s", "CPU s/MiB"
        );
        for e in &r.throughput {
            let _ = writeln!(
                s,
                "{:<36} {:<16} {:>5.2} {:>9.2} {:>8.2} {:>10.4}  {}",
                e.engine, e.stream, e.mib, e.mib_per_s, e.cpu_s, e.cpu_s_per_mib, e.note
            );
        }
        s.push('\n');
    }
    if !r.network.is_empty() {
        let _ = writeln!(
            s,
            "{:<40} {:>6} {:>9} {:>8} {:>10}  note",
            "network console (ser2net, 127.0.0.1)", "MiB", "MiB/s", "CPU s", "CPU s/MiB"
        );
        for e in &r.network {
            let _ = writeln!(
                s,
                "{:<40} {:>6.1} {:>9.2} {:>8.2} {:>10.4}  {}",
                e.engine, e.mib, e.mib_per_s, e.cpu_s, e.cpu_s_per_mib, e.note
            );
        }
        s.push('\n');
    }
    if !r.latency.is_empty() {
        let _ = writeln!(
            s,
            "{:<30} {:>7} {:>7} {:>9} {:>9} {:>9}",
            "match latency", "marks", "missed", "p50 ms", "p99 ms", "max ms"
        );
        for l in &r.latency {
            let _ = writeln!(
                s,
                "{:<30} {:>7} {:>7} {:>9.3} {:>9.3} {:>9.3}",
                l.engine, l.marks, l.missed, l.p50_ms, l.p99_ms, l.max_ms
            );
        }
        s.push('\n');
    }
    if let Some(m) = &r.memory {
        let _ = writeln!(
            s,
            "memory: {:.0} MiB through one console in {:.1} s; RSS {} KiB before, {} KiB after, peak {} KiB",
            m.mib_streamed, m.wall_s, m.rss_before_kib, m.rss_after_kib, m.peak_rss_kib
        );
        let samples: Vec<String> = m
            .samples
            .iter()
            .map(|x| format!("{:.0} MiB: {} KiB", x.mib_streamed, x.rss_kib))
            .collect();
        let _ = writeln!(s, "  RSS as it streamed: {}\n", samples.join(", "));
    }
    if !r.consoles.is_empty() {
        let _ = writeln!(
            s,
            "{:<10} {:>14} {:>9} {:>8} {:>7} {:>14} {:>10} {:>7}",
            "consoles", "offered B/s ea", "wall s", "CPU s", "cores", "received", "lost", "failed"
        );
        for c in &r.consoles {
            let _ = writeln!(
                s,
                "{:<10} {:>14.0} {:>9.1} {:>8.2} {:>7.2} {:>14} {:>10} {:>7}",
                c.consoles,
                c.achieved_rate_bps_each,
                c.wall_s,
                c.cpu_s,
                c.cpu_cores,
                c.bytes_received,
                c.bytes_lost,
                c.failed.len()
            );
        }
        s.push('\n');
    }
    if let Some(o) = &r.orchestration {
        let _ = writeln!(s, "{}\n", o.table());
    }
    if let Some(l) = &r.lease_scale {
        let _ = writeln!(s, "{}", l.table());
    }
    if let Some(m) = &r.serve_matrix {
        let _ = writeln!(s, "{}", m.table());
    }
    if let Some(h) = &r.report_html {
        let _ = writeln!(s, "{}", h.table());
    }
    if !r.targets.is_empty() {
        let _ = writeln!(s, "{:<60} {:<32} {:<5} measured", "target", "", "met");
        for t in &r.targets {
            let _ = writeln!(
                s,
                "{:<60} {:<32} {:<5} {}",
                t.what,
                t.target,
                if t.met { "yes" } else { "NO" },
                t.measured
            );
        }
    }
    for e in &r.errors {
        let _ = writeln!(s, "not measured: {e}");
    }
    for e in &r.skipped {
        let _ = writeln!(s, "skipped: {e}");
    }
    s
}
