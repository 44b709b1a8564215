//! `serve-matrix`: the dashboard's matrix page over a long history. A temporary SQLite
//! history is filled through the history API with `runs` nightly runs of a lab (boards ×
//! checks, a few failures, a boot figure per board), `hil serve`'s server is started on
//! 127.0.0.1 in this process, and `/matrix` is requested over TCP one request at a time;
//! each answer is timed from the request's first byte written to its last byte read.

use super::lease_scale::percentile::Spread;
use crate::lease::Leases;
use crate::nightly::changes::Key;
use crate::nightly::history::at::{HistoryAt, Store};
use crate::nightly::history::{History, Row, RunRow};
use crate::serve::{serve, Lab};
use serde::Serialize;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The answer time the matrix page must stay under (p99).
pub const P99_TARGET_MS: f64 = 200.0;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeMatrixArgs {
    /// Nightly runs in the serve-matrix history.
    #[arg(long, default_value_t = 1000)]
    pub serve_runs: usize,
    /// Boards and checks of each of those runs.
    #[arg(long, default_value_t = 8)]
    pub serve_boards: usize,
    #[arg(long, default_value_t = 12)]
    pub serve_checks: usize,
    /// Matrix page requests timed (per page size).
    #[arg(long, default_value_t = 200)]
    pub serve_requests: usize,
}

#[derive(Debug, Serialize)]
pub struct PageTimes {
    pub path: String,
    pub bytes: usize,
    pub cells: usize,
    pub times: Spread,
}

#[derive(Debug, Serialize)]
pub struct ServeMatrixResult {
    pub runs: usize,
    pub boards: usize,
    pub checks: usize,
    pub results: usize,
    pub history_bytes: u64,
    pub fill_s: f64,
    /// The default page (`/matrix`, 20 runs), then a wider one.
    pub pages: Vec<PageTimes>,
}

impl ServeMatrixResult {
    pub fn table(&self) -> String {
        let mut s = format!(
            "serve-matrix: {} runs × {} boards × {} checks ({} results, {:.1} MiB SQLite, filled in {:.1} s)\n",
            self.runs,
            self.boards,
            self.checks,
            self.results,
            self.history_bytes as f64 / 1048576.0,
            self.fill_s
        );
        s.push_str(&format!(
            "{:<24} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}\n",
            "page", "requests", "cells", "KiB", "p50 ms", "p99 ms", "max ms"
        ));
        for p in &self.pages {
            s.push_str(&format!(
                "{:<24} {:>9} {:>7} {:>9.0} {:>9.2} {:>9.2} {:>9.2}\n",
                p.path,
                p.times.count,
                p.cells,
                p.bytes as f64 / 1024.0,
                p.times.p50_ms,
                p.times.p99_ms,
                p.times.max_ms
            ));
        }
        s
    }
}

/// A deterministic spread of outcomes: mostly passes, a failing check now and then, a
/// rare infrastructure error and skip.
fn outcome(run: usize, board: usize, check: usize, seed: u64) -> &'static str {
    let mut x = (run as u64 * 1_000_003 + board as u64 * 7919 + check as u64 * 104_729) ^ seed;
    x ^= x >> 13;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    match x % 100 {
        0..=5 => "fail",
        6 => "error:infrastructure",
        7 => "skipped",
        _ => "pass",
    }
}

fn fill(
    at: &HistoryAt,
    a: &ServeMatrixArgs,
    seed: u64,
    dir: &std::path::Path,
) -> anyhow::Result<usize> {
    let mut h = History::open(at)?;
    let mut n = 0;
    for run in 0..a.serve_runs {
        let run_id = format!("nightly-bench-{run:05}");
        let mut rows = Vec::with_capacity(a.serve_boards * a.serve_checks);
        for b in 0..a.serve_boards {
            for c in 0..a.serve_checks {
                let check = if c == 0 {
                    "boot".to_string()
                } else {
                    format!("check-{c:02}")
                };
                let figures = if c == 0 {
                    vec![(
                        "boot_s".to_string(),
                        10.0 + (run % 7) as f64 * 0.1 + b as f64,
                    )]
                } else {
                    Vec::new()
                };
                let o = outcome(run, b, c, seed);
                rows.push(Row {
                    key: Key {
                        board: format!("board-{b:02}"),
                        suite: "nightly".into(),
                        check,
                    },
                    outcome: o.into(),
                    message: if o == "pass" {
                        String::new()
                    } else {
                        format!("{o} in run {run}")
                    },
                    duration_s: 1.5,
                    figures,
                });
            }
        }
        n += rows.len();
        let code = crate::outcome::exit_code(
            rows.iter()
                .filter_map(|r| crate::outcome::Outcome::from_json_name(&r.outcome))
                .collect::<Vec<_>>()
                .iter(),
        );
        // One night a day from 2026-01-01.
        let started = crate::serve::boards::rfc3339(1_767_225_600.0 + run as f64 * 86_400.0);
        h.record(
            &RunRow {
                run_id: run_id.clone(),
                lab: "bench-lab".into(),
                host: "bench-host".into(),
                started,
                report_dir: dir.join(&run_id).display().to_string(),
                exit_code: code,
            },
            &rows,
        )?;
    }
    Ok(n)
}

/// One GET over a fresh connection; the whole answer.
async fn get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<Vec<u8>> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    if !out.starts_with(b"HTTP/1.1 200 ") {
        anyhow::bail!(
            "{path}: {}",
            String::from_utf8_lossy(&out[..out.len().min(300)])
        );
    }
    Ok(out)
}

pub async fn run(a: &ServeMatrixArgs, seed: u64) -> anyhow::Result<ServeMatrixResult> {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let tmp = base.join(format!("hil-bench-serve-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let r = measure(a, seed, &tmp).await;
    let _ = std::fs::remove_dir_all(&tmp);
    r
}

async fn measure(
    a: &ServeMatrixArgs,
    seed: u64,
    tmp: &std::path::Path,
) -> anyhow::Result<ServeMatrixResult> {
    let at = HistoryAt {
        store: Store::File(tmp.join("history.sqlite")),
        from: "hil bench serve-matrix".into(),
    };
    let t = Instant::now();
    let (at2, a2, dir) = (at.clone(), a.clone(), tmp.to_path_buf());
    let results = tokio::task::spawn_blocking(move || fill(&at2, &a2, seed, &dir)).await??;
    let fill_s = t.elapsed().as_secs_f64();
    let history_bytes = std::fs::metadata(tmp.join("history.sqlite"))?.len();

    let boards = (0..a.serve_boards)
        .map(|b| format!("board-{b:02}"))
        .collect();
    let lab = Lab::new(
        "bench-lab".into(),
        Some(boards),
        5,
        20,
        Leases::in_dir(tmp.join("leases")),
        at,
    );
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        lab,
        "127.0.0.1:0".parse()?,
        move |a| {
            let _ = addr_tx.send(a);
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let addr = addr_rx.await?;
    let mut pages = Vec::new();
    for path in ["/matrix", "/matrix?last=100"] {
        // A first request warms SQLite's page cache; it is not counted.
        let body = get(addr, path).await?;
        let cells = String::from_utf8_lossy(&body)
            .matches("<td class=\"cell c-")
            .count();
        let mut ms = Vec::with_capacity(a.serve_requests);
        for _ in 0..a.serve_requests {
            let t = Instant::now();
            get(addr, path).await?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        pages.push(PageTimes {
            path: path.into(),
            bytes: body.len(),
            cells,
            times: Spread::of(&ms),
        });
    }
    let _ = stop_tx.send(());
    server.await??;
    Ok(ServeMatrixResult {
        runs: a.serve_runs,
        boards: a.serve_boards,
        checks: a.serve_checks,
        results,
        history_bytes,
        fill_s,
        pages,
    })
}
