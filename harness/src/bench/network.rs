//! The network console: a feeder floods a pty, ser2net exports the pty's slave on
//! 127.0.0.1, and each reader follows it over TCP: hil's broker + expect through ser2net
//! in RFC 2217 mode and in raw TCP mode, a plain TCP read of the raw port (the ceiling),
//! and labgrid's own `SerialDriver` on an `rfc2217://` `NetworkSerialPort`.
//!
//! Every row gets a fresh feeder and a fresh ser2net (the pty's path changes), and starts
//! its clock only once ser2net holds the pty open, so the whole stream is forwarded.

use super::patterns::{death_patterns, AWAITED, END_TEXT};
use super::throughput::{feeder, result, Writes};
use super::{peers, sys, EngineResult};
use crate::console::ser2net::{self, Ser2net};
use crate::console::Console;
use crate::expect::Expecter;
use anyhow::Context;
use regex::bytes::Regex;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const HIL_RFC2217: &str = "hil via ser2net rfc2217://";
pub const HIL_TCP: &str = "hil via ser2net tcp://";
pub const RAW_TCP: &str = "raw TCP read of ser2net";
/// The start of the labgrid row's engine name.
pub const LABGRID: &str = "labgrid";

/// How long ser2net may take to open the pty once a client is connected.
const OPEN_WITHIN: Duration = Duration::from_secs(10);

/// A feeder and a ser2net in front of its pty, in `accepter` mode.
struct Rig {
    feeder: super::feeder::Feeder,
    server: Ser2net,
    pty: PathBuf,
}

impl Rig {
    fn start(bytes: u64, seed: u64, accepter: &str) -> anyhow::Result<Rig> {
        let feeder = feeder(bytes, seed, Writes::Bulk)?;
        let pty = PathBuf::from(&feeder.paths[0]);
        let port = ser2net::free_port()?;
        let server = Ser2net::start(accepter, port, &pty)?;
        Ok(Rig {
            feeder,
            server,
            pty,
        })
    }

    fn port(&self) -> u16 {
        self.server.port
    }

    /// Once a reader is connected: waits for ser2net to hold the pty, then starts.
    fn go(&mut self) -> anyhow::Result<(Instant, Duration, Duration)> {
        self.go_with(|| Ok(()))
    }

    /// Bytes the feeder wrote, once it is done.
    fn written(&mut self) -> anyhow::Result<u64> {
        Ok(self.feeder.report()?.written[0])
    }

    fn exporter_note(&self, since: Duration, bytes: u64) -> String {
        let cpu = proc_cpu(self.server.pid()).saturating_sub(since);
        format!(
            "ser2net {:.4} CPU s/MiB",
            cpu.as_secs_f64() / (bytes as f64 / (1 << 20) as f64)
        )
    }
}

/// hil's path as a run uses it for `console.device = "SCHEME://127.0.0.1:PORT"`.
pub async fn hil(
    bytes: u64,
    seed: u64,
    log_dir: PathBuf,
    rfc2217: bool,
) -> anyhow::Result<EngineResult> {
    let (accepter, scheme, name) = if rfc2217 {
        ("telnet(rfc2217)", "rfc2217", HIL_RFC2217)
    } else {
        ("tcp", "tcp", HIL_TCP)
    };
    let mut rig = tokio::task::spawn_blocking(move || Rig::start(bytes, seed, accepter)).await??;
    let url = format!("{scheme}://127.0.0.1:{}", rig.port());
    let log = log_dir.join("network-console.log");
    let console = Console::open_device(&url, 115_200, None, &log, "bench")
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let mut ex = Expecter::new(console.subscribe(), death_patterns());
    let awaited = Regex::new(AWAITED)?;
    let (mut rig, (t0, c0, e0)) = tokio::task::spawn_blocking(move || {
        let t = rig.go()?;
        anyhow::Ok((rig, t))
    })
    .await??;
    let m = ex
        .expect(&[&awaited], Duration::from_secs(3600))
        .await
        .with_context(|| format!("hil expect on {url}"))?;
    let (wall, cpu) = (t0.elapsed(), sys::cpu_time() - c0);
    anyhow::ensure!(m.index == 0);
    let got = console.received();
    let note = rig.exporter_note(e0, got);
    let total = tokio::task::spawn_blocking(move || rig.written()).await??;
    anyhow::ensure!(
        got == total,
        "hil received {got} of {total} bytes over {url}"
    );
    drop(console);
    let _ = std::fs::remove_file(&log);
    Ok(with_written(
        result(
            name,
            Writes::Bulk,
            got,
            wall,
            cpu,
            &format!("broker + log + expect, 6 patterns; {note}"),
        ),
        total,
    ))
}

/// The ceiling: a blocking 64 KiB read loop on ser2net's raw TCP port, no matching.
pub fn raw(bytes: u64, seed: u64) -> anyhow::Result<EngineResult> {
    let mut rig = Rig::start(bytes, seed, "tcp")?;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", rig.port()))?;
    let (t0, c0, e0) = rig.go()?;
    let want = bytes + END_TEXT.len() as u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    while got < want {
        let n = s.read(&mut buf)?;
        anyhow::ensure!(n > 0, "ser2net closed the connection after {got} bytes");
        got += n as u64;
    }
    let (wall, cpu) = (t0.elapsed(), sys::cpu_time() - c0);
    let note = rig.exporter_note(e0, got);
    let total = rig.written()?;
    anyhow::ensure!(got == total, "raw TCP read {got} of {total} bytes");
    Ok(with_written(
        result(
            RAW_TCP,
            Writes::Bulk,
            got,
            wall,
            cpu,
            &format!("tcp accepter, 64 KiB read() loop, no matching; {note}"),
        ),
        total,
    ))
}

/// labgrid's own network console: `NetworkSerialPort` (protocol rfc2217) and its
/// `SerialDriver`, waiting with its `expect`, in a child Python; CPU is the child's own.
pub fn labgrid(bytes: u64, seed: u64, python: &Path) -> anyhow::Result<EngineResult> {
    let mut rig = Rig::start(bytes, seed, "telnet(rfc2217)")?;
    let mut lg = peers::Labgrid::start(python, peers::LabgridPort::Net(rig.port(), "rfc2217"))?;
    let version = lg.version.clone();
    let (_, _, e0) = rig.go_with(|| lg.go())?;
    let r = lg.result()?;
    let note = rig.exporter_note(e0, r.bytes);
    let total = rig.written()?;
    anyhow::ensure!(
        r.bytes == total,
        "labgrid read {} of {total} bytes",
        r.bytes
    );
    Ok(with_written(
        result(
            &format!("{LABGRID} {version} SerialDriver rfc2217://"),
            Writes::Bulk,
            r.bytes,
            Duration::from_secs_f64(r.wall_s),
            Duration::from_secs_f64(r.cpu_s),
            &format!("NetworkSerialPort, SerialDriver.expect of the 6 patterns; {note}"),
        ),
        total,
    ))
}

impl Rig {
    /// Like [`Rig::go`], with `also` (the reader's own start) just before the feeder's.
    fn go_with(
        &mut self,
        also: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<(Instant, Duration, Duration)> {
        self.server.wait_device_open(&self.pty, OPEN_WITHIN)?;
        let exporter = proc_cpu(self.server.pid());
        also()?;
        let t = (Instant::now(), sys::cpu_time(), exporter);
        self.feeder.go()?;
        Ok(t)
    }
}

/// The row with the feeder's own count of what it wrote.
fn with_written(mut e: EngineResult, total: u64) -> EngineResult {
    e.bytes_written = total;
    e
}

/// utime + stime of process `pid` from /proc/PID/stat (zero if it cannot be read).
pub fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / hz)
}
