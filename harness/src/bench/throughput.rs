//! Throughput and CPU per MiB on one pty stream of kernel-log text ending in the awaited
//! pattern: a raw read (the limit), hil's console broker + expect engine, rexpect, pexpect.

use super::feeder::{FeedArgs, Feeder};
use super::patterns::{death_patterns, AWAITED};
use super::{peers, sys, EngineResult};
use crate::console::log::ConsoleLog;
use crate::console::Console;
use crate::expect::Expecter;
use anyhow::Context;
use regex::bytes::Regex;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// One console streaming `bytes` of seeded text as fast as the pty takes it.
pub(super) fn feeder(bytes: u64, seed: u64) -> anyhow::Result<Feeder> {
    Feeder::spawn(&FeedArgs {
        consoles: 1,
        bytes,
        rate: 0,
        seed,
        marks: 0,
        mark_gap: 0,
        mark_interval_us: 0,
    })
}

fn result(engine: &str, bytes: u64, wall: Duration, cpu: Duration, note: &str) -> EngineResult {
    let mib = bytes as f64 / (1 << 20) as f64;
    EngineResult {
        engine: engine.into(),
        mib,
        wall_s: wall.as_secs_f64(),
        mib_per_s: mib / wall.as_secs_f64(),
        cpu_s: cpu.as_secs_f64(),
        cpu_s_per_mib: cpu.as_secs_f64() / mib,
        note: note.into(),
    }
}

/// Reads the pty with plain blocking reads until every byte has come: the pty's limit.
/// With `log_to`, each read is also written to a console log exactly as hil's broker
/// writes it (a control: it shows what keeping a log costs any reader of this pty).
pub fn raw(
    bytes: u64,
    seed: u64,
    log_to: Option<std::path::PathBuf>,
) -> anyhow::Result<EngineResult> {
    let mut f = feeder(bytes, seed)?;
    let file = open_tty(&f.paths[0])?;
    let mut log = match &log_to {
        Some(p) => Some(ConsoleLog::create(p, "bench raw")?),
        None => None,
    };
    let mut buf = vec![0u8; 64 * 1024];
    let (t0, c0) = (Instant::now(), sys::cpu_time());
    f.go()?;
    let want = bytes + super::patterns::END_TEXT.len() as u64;
    let mut got = 0u64;
    while got < want {
        // SAFETY: buf is writable for its length; the fd is open.
        let n = unsafe { libc::read(file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        anyhow::ensure!(n > 0, "raw read ended after {got} bytes");
        if let Some(log) = log.as_mut() {
            log.write(&buf[..n as usize])?;
        }
        got += n as u64;
    }
    let (wall, cpu) = (t0.elapsed(), sys::cpu_time() - c0);
    let total = f.report()?.written[0];
    anyhow::ensure!(got == total, "raw read {got} of {total} bytes");
    if let Some(p) = log_to {
        let _ = std::fs::remove_file(p);
        return Ok(result(
            RAW_LOGGED,
            got,
            wall,
            cpu,
            "control: the raw loop plus hil's console log write per read",
        ));
    }
    Ok(result(
        "raw pty read",
        got,
        wall,
        cpu,
        "64 KiB read() loop, no matching",
    ))
}

/// The control row's engine name (not a target's subject).
pub const RAW_LOGGED: &str = "control: raw read + console log";

/// hil's path exactly as a run uses it: the broker (serialport open, log file with per-line
/// timestamps, fan-out) and an Expecter waiting on the awaited pattern + 5 death patterns.
pub async fn hil(
    bytes: u64,
    seed: u64,
    log_dir: std::path::PathBuf,
) -> anyhow::Result<EngineResult> {
    let mut f = feeder(bytes, seed)?;
    let log = log_dir.join("throughput-console.log");
    let console = Console::open(&f.paths[0], 1_500_000, None, &log, "bench")?;
    let mut ex = Expecter::new(console.subscribe(), death_patterns());
    let awaited = Regex::new(AWAITED)?;
    let (t0, c0) = (Instant::now(), sys::cpu_time());
    f.go()?;
    let m = ex
        .expect(&[&awaited], Duration::from_secs(3600))
        .await
        .context("hil expect")?;
    let (wall, cpu) = (t0.elapsed(), sys::cpu_time() - c0);
    anyhow::ensure!(m.index == 0);
    let total = f.report()?.written[0];
    let got = console.received();
    anyhow::ensure!(got == total, "hil received {got} of {total} bytes");
    let _ = std::fs::remove_file(&log);
    Ok(result(
        "hil (broker + log + expect)",
        got,
        wall,
        cpu,
        "6 patterns; console log written to a file",
    ))
}

#[cfg(feature = "bench-rexpect")]
pub fn rexpect(bytes: u64, seed: u64) -> anyhow::Result<EngineResult> {
    let mut f = feeder(bytes, seed)?;
    let file = open_tty(&f.paths[0])?;
    let (t0, c0) = (Instant::now(), sys::cpu_time());
    f.go()?;
    peers::rexpect_follow(file)?;
    let (wall, cpu) = (t0.elapsed(), sys::cpu_time() - c0);
    let total = f.report()?.written[0];
    Ok(result(
        "rexpect 0.6",
        total,
        wall,
        cpu,
        "NBReader, ReadUntil::Any of the 6 patterns",
    ))
}

pub fn pexpect(bytes: u64, seed: u64, cfg: peers::PexpectConfig) -> anyhow::Result<EngineResult> {
    let version = peers::ensure_pexpect()?;
    let mut f = feeder(bytes, seed)?;
    let p = peers::Pexpect::start(&f.paths[0], false, cfg)?;
    f.go()?;
    let r = p.result()?;
    let total = f.report()?.written[0];
    Ok(result(
        &format!("pexpect {version} ({}:{})", cfg.maxread, cfg.window),
        total,
        Duration::from_secs_f64(r.wall_s),
        Duration::from_secs_f64(r.cpu_s),
        &format!("fdspawn, 6 patterns, {cfg}"),
    ))
}

pub fn open_tty(path: &str) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("opening {path}"))?;
    Ok(f)
}

/// One row per engine with the median throughput and median CPU per MiB of its runs.
pub fn medians(runs: &[EngineResult]) -> Vec<EngineResult> {
    let mut names: Vec<&str> = runs.iter().map(|r| r.engine.as_str()).collect();
    names.dedup();
    names.sort();
    names.dedup();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        // an even count: the mean of the middle two
        (v[(n - 1) / 2] + v[n / 2]) / 2.0
    };
    names
        .into_iter()
        .rev()
        .map(|name| {
            let of: Vec<&EngineResult> = runs.iter().filter(|r| r.engine == name).collect();
            let rate = median(of.iter().map(|r| r.mib_per_s).collect());
            let per_mib = median(of.iter().map(|r| r.cpu_s_per_mib).collect());
            let mib = of[0].mib;
            EngineResult {
                engine: name.to_string(),
                mib,
                wall_s: mib / rate,
                mib_per_s: rate,
                cpu_s: per_mib * mib,
                cpu_s_per_mib: per_mib,
                note: format!("median of {} runs; {}", of.len(), of[0].note),
            }
        })
        .collect()
}
