//! Throughput and CPU per MiB on one pty stream of kernel-log text ending in the awaited
//! pattern: a raw read (the limit), hil's console broker + expect engine, rexpect, pexpect.
//!
//! The stream is written two ways ([`Writes`]): one write() per line, as a console prints
//! (the writer's side of the pty is the limit, as in the reference figures), and
//! 64 KiB at a time (the pty is never short of data: the reader's own speed is the limit).

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

/// How the feeder hands the stream to the pty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// One write() per line of text, as a console prints.
    PerLine,
    /// 64 KiB per write(): the reader is never waiting for the writer.
    Bulk,
}

impl Writes {
    /// The `stream` field of a result row.
    pub fn label(self) -> &'static str {
        match self {
            Writes::PerLine => "per-line writes",
            Writes::Bulk => "64 KiB writes",
        }
    }
}

/// One console streaming `bytes` of seeded text as fast as the pty takes it.
pub(super) fn feeder(bytes: u64, seed: u64, writes: Writes) -> anyhow::Result<Feeder> {
    Feeder::spawn(&FeedArgs {
        consoles: 1,
        bytes,
        rate: 0,
        seed,
        marks: 0,
        mark_gap: 0,
        mark_interval_us: 0,
        per_line: writes == Writes::PerLine,
    })
}

pub(super) fn result(
    engine: &str,
    writes: Writes,
    bytes: u64,
    wall: Duration,
    cpu: Duration,
    note: &str,
) -> EngineResult {
    let mib = bytes as f64 / (1 << 20) as f64;
    EngineResult {
        engine: engine.into(),
        stream: writes.label().into(),
        bytes,
        bytes_written: bytes,
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
    writes: Writes,
) -> anyhow::Result<EngineResult> {
    let mut f = feeder(bytes, seed, writes)?;
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
            writes,
            got,
            wall,
            cpu,
            "control: the raw loop plus hil's console log write per read",
        ));
    }
    Ok(result(
        RAW,
        writes,
        got,
        wall,
        cpu,
        "64 KiB read() loop, no matching",
    ))
}

/// The engine names the targets look up.
pub const RAW: &str = "raw pty read";
pub const HIL: &str = "hil (broker + log + expect)";
/// The control row's engine name (not a target's subject).
pub const RAW_LOGGED: &str = "control: raw read + console log";

/// hil's path exactly as a run uses it: the broker (serialport open, log file with per-line
/// timestamps, fan-out) and an Expecter waiting on the awaited pattern + 5 death patterns.
pub async fn hil(
    bytes: u64,
    seed: u64,
    log_dir: std::path::PathBuf,
    writes: Writes,
) -> anyhow::Result<EngineResult> {
    let mut f = feeder(bytes, seed, writes)?;
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
        HIL,
        writes,
        got,
        wall,
        cpu,
        "6 patterns; console log written to a file",
    ))
}

#[cfg(feature = "bench-rexpect")]
pub fn rexpect(bytes: u64, seed: u64) -> anyhow::Result<EngineResult> {
    let mut f = feeder(bytes, seed, Writes::Bulk)?;
    let file = open_tty(&f.paths[0])?;
    let (t0, c0) = (Instant::now(), sys::cpu_time());
    f.go()?;
    peers::rexpect_follow(file)?;
    let (wall, cpu) = (t0.elapsed(), sys::cpu_time() - c0);
    let total = f.report()?.written[0];
    Ok(result(
        "rexpect 0.6",
        Writes::Bulk,
        total,
        wall,
        cpu,
        "NBReader, ReadUntil::Any of the 6 patterns",
    ))
}

pub fn pexpect(bytes: u64, seed: u64, cfg: peers::PexpectConfig) -> anyhow::Result<EngineResult> {
    let version = peers::ensure_pexpect()?;
    let mut f = feeder(bytes, seed, Writes::Bulk)?;
    let p = peers::Pexpect::start(&f.paths[0], false, cfg)?;
    f.go()?;
    let r = p.result()?;
    let total = f.report()?.written[0];
    Ok(result(
        &format!("pexpect {version} ({}:{})", cfg.maxread, cfg.window),
        Writes::Bulk,
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

/// One row per engine and stream with the median throughput and median CPU per MiB of its
/// runs.
pub fn medians(runs: &[EngineResult]) -> Vec<EngineResult> {
    let mut names: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| (r.stream.as_str(), r.engine.as_str()))
        .collect();
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
        .map(|(stream, name)| {
            let of: Vec<&EngineResult> = runs
                .iter()
                .filter(|r| r.engine == name && r.stream == stream)
                .collect();
            let rate = median(of.iter().map(|r| r.mib_per_s).collect());
            let per_mib = median(of.iter().map(|r| r.cpu_s_per_mib).collect());
            let mib = of[0].mib;
            EngineResult {
                engine: name.to_string(),
                stream: stream.to_string(),
                bytes: of[0].bytes,
                bytes_written: of[0].bytes_written,
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

/// labgrid itself on the pty: its `SerialDriver` through a `RawSerialPort`, waiting with
/// its `expect` (pexpect with `maxread=1`, no search window, reading what the port holds).
pub fn labgrid(bytes: u64, seed: u64, python: &std::path::Path) -> anyhow::Result<EngineResult> {
    let mut f = feeder(bytes, seed, Writes::Bulk)?;
    let mut lg = peers::Labgrid::start(python, peers::LabgridPort::Pty(&f.paths[0]))?;
    let version = lg.version.clone();
    lg.go()?;
    f.go()?;
    let r = lg.result()?;
    let total = f.report()?.written[0];
    anyhow::ensure!(
        r.bytes == total,
        "labgrid read {} of {total} bytes",
        r.bytes
    );
    Ok(result(
        &format!("{LABGRID} {version} (SerialDriver, pty)"),
        Writes::Bulk,
        r.bytes,
        Duration::from_secs_f64(r.wall_s),
        Duration::from_secs_f64(r.cpu_s),
        "RawSerialPort, SerialDriver.expect of the 6 patterns",
    ))
}

/// The start of every labgrid row's engine name.
pub const LABGRID: &str = "labgrid";
