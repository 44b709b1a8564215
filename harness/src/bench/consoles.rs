//! Many consoles in one process: N ptys fed at a 1.5 Mbaud-equivalent rate by the feeder
//! (another process), each followed by its own broker, log and expect call, all on hil's
//! runtime. Counts this process's CPU and every byte written against every byte received.

use super::feeder::{FeedArgs, Feeder};
use super::patterns::{death_patterns, AWAITED};
use super::{sys, ConsolesResult};
use crate::console::Console;
use crate::expect::Expecter;
use regex::bytes::Regex;
use std::path::Path;
use std::time::{Duration, Instant};

/// 1.5 Mbaud at 8N1 (10 bits per byte).
pub const RATE: u64 = 1_500_000 / 10;

pub async fn run(
    n: usize,
    seconds: u64,
    seed: u64,
    log_dir: &Path,
) -> anyhow::Result<ConsolesResult> {
    let limit = sys::raise_nofile(4 * n as u64 + 256)?;
    anyhow::ensure!(
        limit >= 2 * n as u64 + 64,
        "open-file limit {limit} is too low for {n} consoles (raise the hard limit: ulimit -Hn)"
    );
    let bytes = RATE * seconds;
    let mut f = Feeder::spawn(&FeedArgs {
        consoles: n,
        bytes,
        rate: RATE,
        seed,
        marks: 0,
        mark_gap: 0,
        mark_interval_us: 0,
        per_line: false,
    })?;
    let dir = log_dir.join(format!("consoles-{n}"));
    std::fs::create_dir_all(&dir)?;
    let awaited = Regex::new(AWAITED)?;
    let mut consoles = Vec::with_capacity(n);
    let mut waits = Vec::with_capacity(n);
    for (i, path) in f.paths.iter().enumerate() {
        let c = Console::open(
            path,
            1_500_000,
            None,
            &dir.join(format!("{i}.log")),
            "bench",
        )?;
        let mut ex = Expecter::new(c.subscribe(), death_patterns());
        let re = awaited.clone();
        let timeout = Duration::from_secs(seconds * 6 + 120);
        waits.push(tokio::spawn(async move {
            ex.expect(&[&re], timeout).await.map(|_| ())
        }));
        consoles.push(c);
    }
    let (t0, c0) = (Instant::now(), sys::cpu_time());
    f.go()?;
    let mut failed = Vec::new();
    for (i, w) in waits.into_iter().enumerate() {
        match w.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed.push(format!("console {i}: {e}")),
            Err(e) => failed.push(format!("console {i}: task: {e}")),
        }
    }
    let (wall, cpu) = (t0.elapsed(), sys::cpu_time() - c0);
    let report = f.report()?;
    let written: u64 = report.written.iter().sum();
    let received: u64 = consoles.iter().map(|c| c.received()).sum();
    drop(consoles);
    drop(f);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ConsolesResult {
        consoles: n,
        seconds_each: seconds,
        target_rate_bps_each: RATE,
        wall_s: wall.as_secs_f64(),
        feeder_elapsed_s: report.elapsed_s,
        achieved_rate_bps_each: written as f64 / n as f64 / report.elapsed_s,
        cpu_s: cpu.as_secs_f64(),
        cpu_cores: cpu.as_secs_f64() / wall.as_secs_f64(),
        bytes_written: written,
        bytes_received: received,
        bytes_lost: written.saturating_sub(received),
        failed,
    })
}
