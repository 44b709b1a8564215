//! Match latency: from the moment the feeder writes a mark (after some log text) to the
//! moment the engine returns the match, on CLOCK_MONOTONIC shared by both processes.

use super::feeder::{FeedArgs, Feeder};
use super::patterns::{death_patterns, AWAITED, MARK};
use super::{peers, sys, LatencyResult};
use crate::console::Console;
use crate::expect::Expecter;
use anyhow::Context;
use regex::bytes::Regex;
use std::time::Duration;

fn feeder(marks: usize, seed: u64) -> anyhow::Result<Feeder> {
    Feeder::spawn(&FeedArgs {
        consoles: 1,
        bytes: 0,
        rate: 0,
        seed,
        marks,
        mark_gap: 2048,
        mark_interval_us: 1000,
        per_line: false,
    })
}

pub async fn hil(
    marks: usize,
    seed: u64,
    log_dir: std::path::PathBuf,
) -> anyhow::Result<LatencyResult> {
    let mut f = feeder(marks, seed)?;
    let log = log_dir.join("latency-console.log");
    let console = Console::open(&f.paths[0], 1_500_000, None, &log, "bench")?;
    let mut ex = Expecter::new(console.subscribe(), death_patterns());
    let (mark, end) = (Regex::new(MARK)?, Regex::new(AWAITED)?);
    let mut seen = vec![None; marks];
    f.go()?;
    loop {
        let m = ex
            .expect(&[&mark, &end], Duration::from_secs(600))
            .await
            .context("hil expect")?;
        let t = sys::monotonic_ns();
        if m.index == 1 {
            break;
        }
        let k = mark_number(&m.matched)?;
        seen[k] = Some(t);
    }
    let sent = f.report()?.mark_ns;
    let _ = std::fs::remove_file(&log);
    summarize("hil", &sent, &seen)
}

pub fn pexpect(
    marks: usize,
    seed: u64,
    cfg: peers::PexpectConfig,
) -> anyhow::Result<LatencyResult> {
    let version = peers::ensure_pexpect()?;
    let mut f = feeder(marks, seed)?;
    let p = peers::Pexpect::start(&f.paths[0], true, cfg)?;
    f.go()?;
    let r = p.result()?;
    let sent = f.report()?.mark_ns;
    let mut seen = vec![None; marks];
    for (k, t) in r.marks {
        let k: usize = k.parse()?;
        if k < marks {
            seen[k] = Some(t);
        }
    }
    summarize(&format!("pexpect {version} ({cfg})"), &sent, &seen)
}

fn mark_number(matched: &[u8]) -> anyhow::Result<usize> {
    let s = String::from_utf8_lossy(matched);
    s.trim()
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("mark without a number: {s:?}"))
}

fn summarize(engine: &str, sent: &[u64], seen: &[Option<u64>]) -> anyhow::Result<LatencyResult> {
    let mut lat: Vec<f64> = sent
        .iter()
        .zip(seen)
        .filter_map(|(s, r)| r.map(|r| r.saturating_sub(*s) as f64 / 1e6))
        .collect();
    let missed = seen.iter().filter(|s| s.is_none()).count();
    anyhow::ensure!(!lat.is_empty(), "{engine}: no mark matched");
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    Ok(LatencyResult {
        engine: engine.into(),
        marks: lat.len(),
        missed,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: lat[lat.len() - 1],
    })
}
