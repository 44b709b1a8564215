//! Memory while one console streams a long run of text through the broker and an expect
//! call that waits for the end: resident memory is sampled as the byte count grows, so a
//! leak or an unbounded buffer shows as a slope.

use super::patterns::{death_patterns, AWAITED};
use super::{sys, MemoryResult, MemorySample};
use crate::console::Console;
use crate::expect::Expecter;
use anyhow::Context;
use regex::bytes::Regex;
use std::time::{Duration, Instant};

pub async fn hil(bytes: u64, seed: u64) -> anyhow::Result<MemoryResult> {
    let mut f = super::throughput::feeder(bytes, seed, super::throughput::Writes::Bulk)?;
    // The log goes to /dev/null here: a GiB on the shared disk would measure the disk, and
    // the formatting work is still done.
    let console = Console::open(&f.paths[0], 1_500_000, None, "/dev/null".as_ref(), "bench")?;
    let mut ex = Expecter::new(console.subscribe(), death_patterns());
    let awaited = Regex::new(AWAITED)?;
    let (baseline, _) = sys::rss_kib();
    let sampler = {
        let console = console.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut next = 16u64 << 20;
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let got = console.received();
                if got >= next {
                    let (rss, _) = sys::rss_kib();
                    samples.push(MemorySample {
                        mib_streamed: got as f64 / (1 << 20) as f64,
                        rss_kib: rss,
                    });
                    next = got + (bytes / 32).max(16 << 20);
                }
                if console.closed_reason().is_some() || got >= bytes {
                    return samples;
                }
            }
        })
    };
    let t0 = Instant::now();
    f.go()?;
    ex.expect(&[&awaited], Duration::from_secs(3600))
        .await
        .context("hil expect")?;
    let wall = t0.elapsed();
    let samples = sampler.await?;
    let (end_rss, peak) = sys::rss_kib();
    let total = f.report()?.written[0];
    anyhow::ensure!(console.received() == total, "bytes lost");
    Ok(MemoryResult {
        mib_streamed: total as f64 / (1 << 20) as f64,
        wall_s: wall.as_secs_f64(),
        rss_before_kib: baseline,
        rss_after_kib: end_rss,
        peak_rss_kib: peak,
        samples,
    })
}
