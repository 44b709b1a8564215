//! `report-html-256m`: the run page of a board whose console produced 256 MiB. A run
//! directory is made with a console log of that size (hil's own log format: a header,
//! stamped kernel-style lines, a case marker now and then, a panic near the end) and a
//! report of 40 cases spread over it; `report.html` is rendered by the same function a run
//! uses, and opened in headless Chromium from a file URL, timed from the request to the
//! page's load event. Side by side in the same run, the same report over a 64 KiB log (shown
//! whole): the page of a 256 MiB log must open about as fast as that of a small one.

use super::lease_scale::percentile::Spread;
use super::textgen::KernelLog;
use crate::outcome::Outcome;
use crate::report::{BoardReport, CaseReport, RunReport};
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the page must stay under.
pub const SIZE_TARGET_BYTES: u64 = 5 << 20;
pub const OPEN_TARGET_MS: f64 = 2000.0;

const BOARD: &str = "bench-board";
const CASES: usize = 40;

#[derive(Debug, Serialize)]
pub struct PageResult {
    pub console_log_bytes: u64,
    pub html_bytes: u64,
    pub render_ms: f64,
    /// Request to load event, over `opens` loads in one browser.
    pub open: Spread,
}

#[derive(Debug, Serialize)]
pub struct ReportHtmlResult {
    pub large: PageResult,
    pub small: PageResult,
    /// Median open time of the large log's page over the small one's.
    pub open_ratio: f64,
}

impl ReportHtmlResult {
    pub fn table(&self) -> String {
        let mut s = String::from(
            "report-html: report.html of one board, opened in headless Chromium from a file URL\n",
        );
        s.push_str(&format!(
            "{:<14} {:>12} {:>10} {:>10} {:>7} {:>9} {:>9} {:>9}\n",
            "console log",
            "log MiB",
            "page KiB",
            "render ms",
            "opens",
            "p50 ms",
            "p99 ms",
            "max ms"
        ));
        for (name, p) in [("256 MiB", &self.large), ("64 KiB", &self.small)] {
            s.push_str(&format!(
                "{:<14} {:>12.1} {:>10.0} {:>10.1} {:>7} {:>9.1} {:>9.1} {:>9.1}\n",
                name,
                p.console_log_bytes as f64 / 1048576.0,
                p.html_bytes as f64 / 1024.0,
                p.render_ms,
                p.open.count,
                p.open.p50_ms,
                p.open.p99_ms,
                p.open.max_ms
            ));
        }
        s.push_str(&format!(
            "open time, 256 MiB log / 64 KiB log (medians): {:.2}\n",
            self.open_ratio
        ));
        s
    }
}

pub fn run(opens: usize, seed: u64) -> anyhow::Result<ReportHtmlResult> {
    let chromium = crate::browser::installed().ok_or_else(|| {
        anyhow::anyhow!(
            "{} is not installed (Debian's package `chromium`)",
            crate::browser::CHROMIUM
        )
    })?;
    let base = super::log_dir().join("report-html");
    let result = (|| {
        let large = base.join("large");
        let small = base.join("small");
        let large_log = make_run(&large, 256 << 20, seed)?;
        let small_log = make_run(&small, 64 << 10, seed)?;
        let mut b = crate::browser::Browser::start(&chromium, 1400, 1000)?;
        // Interleaved, so a slow moment of the machine hits both alike.
        let (mut tl, mut ts) = (Vec::new(), Vec::new());
        let (lr, sr) = (render(&large)?, render(&small)?);
        for _ in 0..opens.max(1) {
            tl.push(open(&mut b, &large)?);
            ts.push(open(&mut b, &small)?);
        }
        let errors = b.errors(Duration::from_millis(200));
        if !errors.is_empty() {
            anyhow::bail!("the page logged errors: {errors:?}");
        }
        let page = |dir: &Path, log: u64, render_ms: f64, t: &[f64]| -> anyhow::Result<_> {
            Ok(PageResult {
                console_log_bytes: log,
                html_bytes: std::fs::metadata(dir.join("report.html"))?.len(),
                render_ms,
                open: Spread::of(t),
            })
        };
        let large = page(&large, large_log, lr, &tl)?;
        let small = page(&small, small_log, sr, &ts)?;
        let open_ratio = large.open.p50_ms / small.open.p50_ms.max(0.001);
        Ok(ReportHtmlResult {
            large,
            small,
            open_ratio,
        })
    })();
    let _ = std::fs::remove_dir_all(&base);
    result
}

/// Renders `dir/report.html` from `dir/results.json`; the render time in ms.
fn render(dir: &Path) -> anyhow::Result<f64> {
    let r: RunReport = serde_json::from_slice(&std::fs::read(dir.join("results.json"))?)?;
    let t = Instant::now();
    let html = crate::report::html::render(&r, dir);
    let ms = t.elapsed().as_secs_f64() * 1e3;
    std::fs::write(dir.join("report.html"), html)?;
    Ok(ms)
}

fn open(b: &mut crate::browser::Browser, dir: &Path) -> anyhow::Result<f64> {
    let url = format!("file://{}", dir.join("report.html").display());
    // From a blank page each time: the load measured is the report's, not a cached one.
    b.open("about:blank", Duration::from_secs(30))?;
    Ok(b.open(&url, Duration::from_secs(60))?.as_secs_f64() * 1e3)
}

/// A run directory whose board's console log holds at least `bytes`; its real length.
fn make_run(dir: &Path, bytes: usize, seed: u64) -> anyhow::Result<u64> {
    let board_dir = dir.join("boards").join(BOARD);
    std::fs::create_dir_all(&board_dir)?;
    let started = "2026-12-01T02:00:00Z";
    let mut f = std::io::BufWriter::new(std::fs::File::create(board_dir.join("console.log"))?);
    writeln!(
        f,
        "# hil console log: board {BOARD}; t=0 is {started}; [+seconds] per line"
    )?;
    // One hour of log at an even rate; a case marker at the start of each case's part.
    let duration_s = 3600.0;
    let mut gen = KernelLog::new(seed);
    let mut chunk = Vec::new();
    let mut written = 0usize;
    let mut line_no = 0usize;
    let lines_total = bytes / 120 + 1;
    while written < bytes {
        chunk.clear();
        gen.fill(&mut chunk, 64 << 10);
        for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let t = duration_s * line_no as f64 / lines_total as f64;
            let case = line_no * CASES / lines_total;
            let at_case = line_no == case * lines_total / CASES;
            if at_case {
                let m = format!("[+{t:>11.6}] ### hil: check c{case:02} starts\n");
                f.write_all(m.as_bytes())?;
                written += m.len();
            }
            let stamp = format!("[+{t:>11.6}] ");
            f.write_all(stamp.as_bytes())?;
            f.write_all(line)?;
            f.write_all(b"\n")?;
            written += stamp.len() + line.len() + 1;
            line_no += 1;
        }
    }
    let t = duration_s * 0.99;
    writeln!(
        f,
        "[+{t:>11.6}] Kernel panic - not syncing: Fatal exception in interrupt"
    )?;
    f.flush()?;
    drop(f);
    let cases = (0..CASES)
        .map(|i| {
            let start = duration_s * i as f64 / CASES as f64;
            let fail = i == CASES - 1;
            CaseReport {
                name: format!("c{i:02}"),
                kind: "shell".into(),
                outcome: if fail { Outcome::Fail } else { Outcome::Pass },
                message: if fail {
                    "the board died: Kernel panic".into()
                } else {
                    String::new()
                },
                duration_s: duration_s / CASES as f64 * 0.9,
                started_s: start,
                figures: Default::default(),
                console: if fail {
                    "Kernel panic - not syncing: Fatal exception in interrupt".into()
                } else {
                    String::new()
                },
                attempts: Vec::new(),
                flaky: false,
                timeout_s: Some(120.0),
            }
        })
        .collect();
    let r = RunReport {
        run_id: "bench".into(),
        suite: "bench".into(),
        suite_file: "bench.toml".into(),
        harness_version: env!("CARGO_PKG_VERSION").into(),
        started: started.into(),
        complete: true,
        duration_s,
        exit_code: Some(1),
        checks_selected: None,
        boards: vec![BoardReport {
            name: BOARD.into(),
            properties: Default::default(),
            cases,
        }],
    };
    std::fs::write(dir.join("results.json"), serde_json::to_vec(&r)?)?;
    Ok(std::fs::metadata(board_dir.join("console.log"))?.len())
}
