//! The `nvme_io` check: write a pattern to an area of an NVMe namespace, read it back and
//! verify it, timing both directions. Uses fio (`--verify=crc32c`) when the DUT has it,
//! else busybox tools: a random pattern made in `/tmp`, `dd` to the device and back, and
//! `sha256sum` on both copies.
//!
//! Every shell command is built and every output judged by pure functions here; `run` only
//! sequences them, so the logic is tested without a board.
//!
//! Facts about the guest's busybox (Debian busybox-static 1.35.0, checked on the amd64 build
//! of the same package and config):
//! - `dd` has `iflag=direct` and `oflag=direct` (and `fullblock`), but prints only the
//!   `N+M records in/out` lines: no `bytes ... copied, S seconds` line. Coreutils and
//!   busybox builds with that line enabled do print it, and it is preferred when present.
//! - `date +%s.%N` prints a literal `%N`, so the timestamps also carry `/proc/uptime`
//!   (10 ms resolution).
//! - `dd of=/dev/nvme0n1` when the node is missing creates a regular file in devtmpfs and
//!   "succeeds": every dd runs behind a `[ -b ]` test.

use super::{Check, CheckCtx, CheckFuture, CheckOutput, ViaRule};
use crate::config::load::from_table;
use crate::config::ConfigError;
use crate::error::StepError;
use crate::outcome::Outcome;
use crate::shell::{CmdOutput, ConsoleShell};
use regex::Regex;
use serde::Deserialize;
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::time::Instant;

const MIB: u64 = 1024 * 1024;
/// The dd flow keeps the pattern and the read-back copy in `/tmp`, which is RAM (tmpfs,
/// half of the guest's 256 MiB at most): both copies together stay within 64 MiB.
const MAX_RAM_MIB: u64 = 64;
/// A multiple of 4 KiB suits both 512-byte and 4Kn namespaces under O_DIRECT.
const BLOCK_ALIGN_KIB: u64 = 4;
/// dd allocates one block in RAM.
const MAX_BLOCK_KIB: u64 = 16 * 1024;
const PATTERN: &str = "/tmp/hil-nvme-io.pattern";
const READBACK: &str = "/tmp/hil-nvme-io.readback";
/// Least time given to the `rm -f` of two tmpfs files when the check's own time is up; it
/// fits inside the runner's grace after a check's limit.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(8);
/// Printed by the generated commands when the device node is not (or no longer) a block
/// device, instead of letting dd create a file in its place.
const NOT_BLOCK: &str = "hil: not a block device:";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FioMode {
    /// fio when `command -v fio` finds it (and no `inject_after_write`), else dd.
    #[default]
    Auto,
    Never,
    Always,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "default_device")]
    device: String,
    #[serde(default = "default_size_mib")]
    size_mib: u64,
    #[serde(default)]
    offset_mib: u64,
    #[serde(default = "default_block_kib")]
    block_kib: u64,
    inject_after_write: Option<String>,
    #[serde(default)]
    fio: FioMode,
}

fn default_device() -> String {
    "/dev/nvme0n1".into()
}

fn default_size_mib() -> u64 {
    16
}

fn default_block_kib() -> u64 {
    1024
}

#[derive(Debug, Clone, PartialEq)]
pub struct NvmeIoCheck {
    pub device: String,
    pub size_mib: u64,
    pub offset_mib: u64,
    pub block_kib: u64,
    /// Fault-injection hook for tests: a shell command run between the write and the
    /// read-back (e.g. overwrite part of the area), so a suite can prove that corruption is
    /// caught. Forces the dd flow: fio writes and verifies in one run.
    pub inject_after_write: Option<String>,
    pub fio: FioMode,
}

/// What the probe command found on the DUT.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub device: DeviceState,
    /// `blockdev --getsize64`, when available.
    pub size_bytes: Option<u64>,
    pub fio: bool,
    /// `dd` lists the `direct` flag.
    pub direct: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Block,
    /// Exists, but is not a block device (a regular file left by a write to a missing node).
    NotBlock,
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Fio,
    Dd { direct: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Write,
    Read,
}

/// dd's own summary line: bytes copied and the seconds it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DdStats {
    pub bytes: u64,
    pub seconds: f64,
}

/// One job of fio's JSON report.
#[derive(Debug, Clone, PartialEq)]
pub struct FioJob {
    pub name: String,
    pub error: i64,
    pub write: FioDir,
    /// With `--verify`, the verify pass is accounted as reads.
    pub read: FioDir,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FioDir {
    pub io_bytes: u64,
    pub bw_bytes: f64,
    pub iops: f64,
}

/// busybox (when built with the third status line): `16777216 bytes (16.0MB) copied,
/// 0.123456 seconds, 129.6MB/s`; coreutils: `16777216 bytes (17 MB, 16 MiB) copied,
/// 0.0501 s, 335 MB/s` (the decimal comma of some locales included).
static DD_STATS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^(\d+) bytes (?:\([^)]*\) )?copied, (\d+(?:[.,]\d+)?) s(?:econds)?\b")
        .expect("static regex")
});
static DD_RECORDS_OUT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^(\d+)\+(\d+) records out$").expect("static regex"));
static SHA256_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^([0-9a-f]{64}) [ *]?(\S+)$").expect("static regex"));

impl Check for NvmeIoCheck {
    const KIND: &'static str = "nvme-io";
    const VIA: ViaRule = ViaRule::CONSOLE_SHELL;

    fn from_params(path: &Path, key: &str, params: toml::Table) -> Result<Self, ConfigError> {
        let p: Params = from_table(path, key, params)?;
        let err = |field: &str, msg: String| ConfigError::new(path, format!("{key}.{field}"), msg);
        if !valid_device(&p.device) {
            return Err(err(
                "device",
                format!(
                    "is {:?}; expected a path under /dev/ of letters, digits, '/', '.', '_' \
                     and '-' (e.g. \"/dev/nvme0n1\")",
                    p.device
                ),
            ));
        }
        if p.size_mib == 0 {
            return Err(err("size_mib", "is 0; expected at least 1 MiB".into()));
        }
        if p.fio != FioMode::Always && 2 * p.size_mib > MAX_RAM_MIB {
            return Err(err(
                "size_mib",
                format!(
                    "is {}; the dd flow keeps two copies in /tmp (RAM), so at most {} MiB \
                     (or set fio = \"always\")",
                    p.size_mib,
                    MAX_RAM_MIB / 2
                ),
            ));
        }
        if p.block_kib == 0 || p.block_kib % BLOCK_ALIGN_KIB != 0 || p.block_kib > MAX_BLOCK_KIB {
            return Err(err(
                "block_kib",
                format!(
                    "is {}; expected a multiple of {BLOCK_ALIGN_KIB} from {BLOCK_ALIGN_KIB} to \
                     {MAX_BLOCK_KIB} (direct I/O needs whole sectors)",
                    p.block_kib
                ),
            ));
        }
        if (p.size_mib * 1024) % p.block_kib != 0 {
            return Err(err(
                "block_kib",
                format!(
                    "is {}; expected a divisor of size_mib ({} MiB = {} KiB)",
                    p.block_kib,
                    p.size_mib,
                    p.size_mib * 1024
                ),
            ));
        }
        // dd seeks in whole blocks.
        let offset_kib = p
            .offset_mib
            .checked_mul(1024)
            .filter(|k| k.checked_mul(1024).is_some());
        match offset_kib {
            Some(k) if k % p.block_kib == 0 => {}
            Some(_) => {
                return Err(err(
                    "offset_mib",
                    format!(
                        "is {}; expected a multiple of block_kib ({} KiB)",
                        p.offset_mib, p.block_kib
                    ),
                ))
            }
            None => {
                return Err(err(
                    "offset_mib",
                    format!("is {}; too large for a device offset", p.offset_mib),
                ))
            }
        }
        if let Some(cmd) = &p.inject_after_write {
            if cmd.trim().is_empty() {
                return Err(err(
                    "inject_after_write",
                    "is empty; expected a shell command or no key".into(),
                ));
            }
            if p.fio == FioMode::Always {
                return Err(err(
                    "inject_after_write",
                    "needs the dd flow (fio writes and verifies in one run); set fio = \
                     \"auto\" or \"never\""
                        .into(),
                ));
            }
        }
        Ok(NvmeIoCheck {
            device: p.device,
            size_mib: p.size_mib,
            offset_mib: p.offset_mib,
            block_kib: p.block_kib,
            inject_after_write: p.inject_after_write,
            fio: p.fio,
        })
    }

    fn run<'a>(&'a self, ctx: &'a mut CheckCtx<'_>) -> CheckFuture<'a> {
        Box::pin(async move {
            let timeout = ctx.timeout;
            let shell = ctx.console_shell()?;
            let deadline = crate::config::limits::deadline_from(Instant::now(), timeout);
            let out = shell
                .run(&self.probe_command(), super::time_left(deadline, timeout)?)
                .await?;
            let plan = match self.judge_probe(&out) {
                Ok(p) => p,
                Err(verdict) => return Ok(verdict),
            };
            match plan {
                Plan::Fio => {
                    let out = shell
                        .run(&self.fio_command(), super::time_left(deadline, timeout)?)
                        .await?;
                    Ok(self.judge_fio(&out.output, out.status))
                }
                Plan::Dd { direct } => {
                    let result = self.run_dd(shell, direct, deadline, timeout).await;
                    // The copies take up to 64 MiB of the guest's RAM: remove them whatever
                    // happened. The verdict on the data stands either way: a slow or failed `rm`
                    // (a loaded machine) is noted, never turned into the check's outcome.
                    let limit = deadline
                        .saturating_duration_since(Instant::now())
                        .max(CLEANUP_TIMEOUT);
                    let cleanup = shell.run(&cleanup_command(), limit).await;
                    let mut verdict = result?;
                    if let Err(e) = cleanup {
                        verdict
                            .message
                            .push_str(&format!("; cleanup of the pattern files failed: {e}"));
                    }
                    Ok(verdict)
                }
            }
        })
    }
}

impl NvmeIoCheck {
    async fn run_dd(
        &self,
        shell: &mut ConsoleShell,
        direct: bool,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<CheckOutput, StepError> {
        let out = shell
            .run(
                &self.pattern_command(),
                super::time_left(deadline, timeout)?,
            )
            .await?;
        let written = match self.judge_pattern(&out) {
            Ok(sum) => sum,
            Err(verdict) => return Ok(verdict),
        };
        let out = shell
            .run(
                &self.write_command(direct),
                super::time_left(deadline, timeout)?,
            )
            .await?;
        let write_s = match self.judge_transfer(Dir::Write, &out) {
            Ok(s) => s,
            Err(verdict) => return Ok(verdict),
        };
        if let Some(cmd) = &self.inject_after_write {
            let out = shell.run(cmd, super::time_left(deadline, timeout)?).await?;
            if let Err(verdict) = self.judge_inject(&out) {
                return Ok(verdict);
            }
        }
        let out = shell
            .run(
                &self.read_command(direct),
                super::time_left(deadline, timeout)?,
            )
            .await?;
        let read_s = match self.judge_transfer(Dir::Read, &out) {
            Ok(s) => s,
            Err(verdict) => return Ok(verdict),
        };
        let out = shell
            .run(
                &readback_sum_command(),
                super::time_left(deadline, timeout)?,
            )
            .await?;
        let read = match self.judge_readback_sum(&out) {
            Ok(sum) => sum,
            Err(verdict) => return Ok(verdict),
        };
        Ok(self.verdict(&written, &read, write_s, read_s, direct))
    }

    fn dev(&self) -> String {
        crate::shell::quote(&self.device).into_owned()
    }

    fn block_bytes(&self) -> u64 {
        self.block_kib * 1024
    }

    /// Blocks of `block_kib` in the test area, and blocks before it.
    fn count_and_seek(&self) -> (u64, u64) {
        (
            self.size_mib * 1024 / self.block_kib,
            self.offset_mib * 1024 / self.block_kib,
        )
    }

    /// One line per fact, `hil-NAME=VALUE`, so the parse does not depend on tool wording.
    pub fn probe_command(&self) -> String {
        let dev = self.dev();
        format!(
            "if [ -b {dev} ]; then echo hil-dev=block; elif [ -e {dev} ]; then echo hil-dev=other; \
             else echo hil-dev=missing; fi; \
             echo \"hil-size=$(blockdev --getsize64 {dev} 2>/dev/null)\"; \
             if command -v fio >/dev/null 2>&1; then echo hil-fio=yes; else echo hil-fio=no; fi; \
             if dd --help 2>&1 | grep -q direct; then echo hil-direct=yes; \
             else echo hil-direct=no; fi"
        )
    }

    /// DOMAIN.md's fio verify run on the configured area. Sizes go in bytes: with fio's
    /// default `kb_base=1024`, `16MiB` would mean 16 * 10^6.
    pub fn fio_command(&self) -> String {
        format!(
            "fio --name=hil-nvme-io --filename={} --direct=1 --rw=write --bs={} --size={} \
             --offset={} --verify=crc32c --verify_fatal=1 --output-format=json",
            self.dev(),
            self.block_bytes(),
            self.size_mib * MIB,
            self.offset_mib * MIB
        )
    }

    /// Random data, so stale content from an earlier run can never match by accident.
    pub fn pattern_command(&self) -> String {
        format!(
            "dd if=/dev/urandom of={PATTERN} bs={MIB} count={} iflag=fullblock && sha256sum {PATTERN}",
            self.size_mib
        )
    }

    /// `conv=fsync` so the time includes reaching the device; `notrunc` is meaningless for
    /// a block device but keeps a regular file (should one appear) from being cut.
    pub fn write_command(&self, direct: bool) -> String {
        let (count, seek) = self.count_and_seek();
        let flag = if direct { " oflag=direct" } else { "" };
        self.timed(&format!(
            "dd if={PATTERN} of={} bs={} seek={seek} count={count} conv=fsync,notrunc{flag}",
            self.dev(),
            self.block_bytes()
        ))
    }

    /// Without O_DIRECT the pages just written are still cached: drop them so the read
    /// really comes from the device.
    pub fn read_command(&self, direct: bool) -> String {
        let (count, skip) = self.count_and_seek();
        let (before, flag) = if direct {
            ("", " iflag=direct")
        } else {
            ("sync; echo 3 > /proc/sys/vm/drop_caches; ", "")
        };
        let dd = format!(
            "dd if={} of={READBACK} bs={} skip={skip} count={count}{flag}",
            self.dev(),
            self.block_bytes()
        );
        format!("{before}{}", self.timed(&dd))
    }

    /// `dd` between two timestamps, only on a block device, with dd's exit status as the
    /// command's (`(exit N)` sets `$?` without leaving the console's shell).
    fn timed(&self, dd: &str) -> String {
        let dev = self.dev();
        format!(
            "{stamp0}; if [ -b {dev} ]; then {dd}; HIL_RC=$?; \
             else echo \"{NOT_BLOCK} \"{dev}; HIL_RC=2; fi; {stamp1}; (exit $HIL_RC)",
            stamp0 = stamp("hil-t0"),
            stamp1 = stamp("hil-t1"),
        )
    }

    fn area(&self) -> String {
        format!(
            "{} MiB of {} at offset {} MiB",
            self.size_mib, self.device, self.offset_mib
        )
    }

    fn judge_probe(&self, out: &CmdOutput) -> Result<Plan, CheckOutput> {
        let Some(p) = parse_probe(&out.output) else {
            return Err(fail(
                format!(
                    "the probe for {} printed no result (exit status {}); output: {:?}",
                    self.device,
                    out.status,
                    crate::text::excerpt(&out.output)
                ),
                serde_json::Map::new(),
            ));
        };
        match p.device {
            DeviceState::Missing => {
                return Err(blocked(format!(
                    "no {} on the DUT: NVMe not passed through or driver missing",
                    self.device
                )))
            }
            DeviceState::NotBlock => {
                return Err(blocked(format!(
                    "{} exists but is not a block device (a file left by a write to a missing \
                     node?); remove it and check that NVMe is passed through",
                    self.device
                )))
            }
            DeviceState::Block => {}
        }
        let end = (self.offset_mib + self.size_mib) * MIB;
        if let Some(size) = p.size_bytes {
            if end > size {
                return Err(blocked(format!(
                    "{} holds {} MiB; the test area ends at {} MiB (offset_mib + size_mib)",
                    self.device,
                    size / MIB,
                    end / MIB
                )));
            }
        }
        let fio = match self.fio {
            FioMode::Never => false,
            FioMode::Auto => p.fio && self.inject_after_write.is_none(),
            FioMode::Always if p.fio => true,
            FioMode::Always => {
                return Err(blocked(
                    "fio not found on the DUT (fio = \"always\")".into(),
                ))
            }
        };
        Ok(if fio {
            Plan::Fio
        } else {
            Plan::Dd { direct: p.direct }
        })
    }

    fn judge_pattern(&self, out: &CmdOutput) -> Result<String, CheckOutput> {
        match sha256_of(&out.output, PATTERN) {
            Some(sum) if out.status == 0 => Ok(sum),
            // Not the NVMe's fault: /tmp full, no sha256sum...
            _ => Err(blocked(format!(
                "could not make the {} MiB test pattern in {PATTERN} (exit status {}): {:?}",
                self.size_mib,
                out.status,
                crate::text::excerpt(&out.output)
            ))),
        }
    }

    /// The transfer's duration in seconds when it could be measured.
    fn judge_transfer(&self, dir: Dir, out: &CmdOutput) -> Result<Option<f64>, CheckOutput> {
        let what = match dir {
            Dir::Write => format!("writing {}", self.area()),
            Dir::Read => format!("reading back {}", self.area()),
        };
        if out.output.contains(NOT_BLOCK) {
            return Err(blocked(format!(
                "{what}: {} is no longer a block device (NVMe gone?)",
                self.device
            )));
        }
        if out.status != 0 {
            return Err(fail(
                format!(
                    "{what} failed (dd exit status {}): {}",
                    out.status,
                    dd_errors(&out.output)
                ),
                serde_json::Map::new(),
            ));
        }
        let (count, _) = self.count_and_seek();
        if let Some((full, partial)) = parse_records_out(&out.output) {
            if full != count || partial != 0 {
                return Err(fail(
                    format!(
                        "{what}: dd copied {full}+{partial} of {count} blocks of {} KiB",
                        self.block_kib
                    ),
                    serde_json::Map::new(),
                ));
            }
        }
        Ok(transfer_seconds(&out.output))
    }

    fn judge_inject(&self, out: &CmdOutput) -> Result<(), CheckOutput> {
        if out.status == 0 {
            return Ok(());
        }
        // The read-back could not be interpreted: the suite's fault, not the DUT's.
        Err(blocked(format!(
            "inject_after_write failed (exit status {}): {:?}",
            out.status,
            crate::text::excerpt(&out.output)
        )))
    }

    fn judge_readback_sum(&self, out: &CmdOutput) -> Result<String, CheckOutput> {
        match sha256_of(&out.output, READBACK) {
            Some(sum) if out.status == 0 => Ok(sum),
            _ => Err(fail(
                format!(
                    "no checksum of the read-back copy (exit status {}): {:?}",
                    out.status,
                    crate::text::excerpt(&out.output)
                ),
                serde_json::Map::new(),
            )),
        }
    }

    fn verdict(
        &self,
        written: &str,
        read: &str,
        write_s: Option<f64>,
        read_s: Option<f64>,
        direct: bool,
    ) -> CheckOutput {
        let bytes = self.size_mib * MIB;
        let write_mb_s = write_s.and_then(|s| mb_per_s(bytes, s));
        let read_mb_s = read_s.and_then(|s| mb_per_s(bytes, s));
        let mut figures = serde_json::Map::new();
        figures.insert("method".into(), "dd".into());
        figures.insert("direct_io".into(), direct.into());
        figures.insert("bytes".into(), bytes.into());
        figures.insert("write_mb_s".into(), opt(write_mb_s));
        figures.insert("read_mb_s".into(), opt(read_mb_s));
        figures.insert("sha256".into(), written.into());
        if written != read {
            figures.insert("sha256_read".into(), read.into());
            return fail(
                format!(
                    "{}: data read back differs from what was written (sha256 {written} vs {read})",
                    self.area()
                ),
                figures,
            );
        }
        CheckOutput {
            outcome: Some(Outcome::Pass),
            message: format!(
                "{} written and read back intact (sha256 {}); write {}, read {}{}",
                self.area(),
                &written[..written.len().min(16)],
                rate(write_mb_s),
                rate(read_mb_s),
                if direct { " (O_DIRECT)" } else { "" }
            ),
            figures,
        }
    }

    fn judge_fio(&self, output: &str, status: i32) -> CheckOutput {
        let bytes = self.size_mib * MIB;
        let mut problems = Vec::new();
        // fio prints this to stderr, beside (not in) the JSON report.
        if let Some(line) = output.lines().find(|l| l.contains("verify failed")) {
            problems.push(format!("fio verify failed: {}", line.trim()));
        }
        let jobs = parse_fio_json(output);
        let mut figures = serde_json::Map::new();
        figures.insert("method".into(), "fio".into());
        figures.insert("bytes".into(), bytes.into());
        match &jobs {
            None => problems.push(format!(
                "fio printed no complete JSON report (exit status {status}); output: {:?}",
                crate::text::excerpt(output)
            )),
            Some(jobs) if jobs.is_empty() => problems.push("fio reported no jobs".into()),
            Some(jobs) => {
                let sum = |f: fn(&FioJob) -> f64| jobs.iter().map(f).sum::<f64>();
                let write_mb_s = sum(|j| j.write.bw_bytes) / 1e6;
                let read_mb_s = sum(|j| j.read.bw_bytes) / 1e6;
                figures.insert("write_mb_s".into(), round2(write_mb_s).into());
                figures.insert("read_mb_s".into(), round2(read_mb_s).into());
                figures.insert("write_iops".into(), round2(sum(|j| j.write.iops)).into());
                figures.insert("read_iops".into(), round2(sum(|j| j.read.iops)).into());
                for j in jobs {
                    if j.error != 0 {
                        // 84 (EILSEQ) is how fio reports a verify mismatch.
                        problems.push(format!("fio job {} ended with error {}", j.name, j.error));
                    }
                    if j.write.io_bytes < bytes {
                        problems.push(format!(
                            "fio job {} wrote {} of {bytes} bytes",
                            j.name, j.write.io_bytes
                        ));
                    }
                    if j.read.io_bytes < bytes {
                        problems.push(format!(
                            "fio job {} verified {} of {bytes} bytes",
                            j.name, j.read.io_bytes
                        ));
                    }
                }
            }
        }
        // fio's exit status is the number of failed jobs.
        if status != 0 {
            problems.push(format!("fio exited with status {status}"));
        }
        if problems.is_empty() {
            let get = |k: &str| figures.get(k).and_then(|v| v.as_f64());
            CheckOutput {
                outcome: Some(Outcome::Pass),
                message: format!(
                    "fio wrote and verified (crc32c) {}; write {}, read {}",
                    self.area(),
                    rate(get("write_mb_s")),
                    rate(get("read_mb_s"))
                ),
                figures,
            }
        } else {
            fail(format!("{}: {}", self.area(), problems.join("; ")), figures)
        }
    }
}

pub fn cleanup_command() -> String {
    format!("rm -f {PATTERN} {READBACK}")
}

fn readback_sum_command() -> String {
    format!("sha256sum {READBACK}")
}

/// A timestamp line: `/proc/uptime` (always there, 10 ms) and `date +%s.%N` (nanoseconds
/// with coreutils, a literal `%N` with Debian's busybox).
fn stamp(label: &str) -> String {
    format!("echo \"{label} up=$(cut -d' ' -f1 /proc/uptime) date=$(date +%s.%N)\"")
}

pub fn parse_probe(output: &str) -> Option<Probe> {
    let mut device = None;
    let mut size_bytes = None;
    let mut fio = None;
    let mut direct = None;
    for line in output.lines() {
        let Some((k, v)) = line.trim().split_once('=') else {
            continue;
        };
        match k {
            "hil-dev" => {
                device = match v {
                    "block" => Some(DeviceState::Block),
                    "other" => Some(DeviceState::NotBlock),
                    "missing" => Some(DeviceState::Missing),
                    _ => None,
                }
            }
            "hil-size" => size_bytes = v.parse().ok(),
            "hil-fio" => fio = Some(v == "yes"),
            "hil-direct" => direct = Some(v == "yes"),
            _ => {}
        }
    }
    Some(Probe {
        device: device?,
        size_bytes,
        fio: fio?,
        direct: direct?,
    })
}

/// dd's summary line (coreutils, or busybox built with it).
pub fn parse_dd_stats(output: &str) -> Option<DdStats> {
    let c = DD_STATS.captures_iter(output).last()?;
    Some(DdStats {
        bytes: c[1].parse().ok()?,
        seconds: c[2].replace(',', ".").parse().ok()?,
    })
}

/// `N+M records out`: full and partial blocks written.
pub fn parse_records_out(output: &str) -> Option<(u64, u64)> {
    let c = DD_RECORDS_OUT.captures_iter(output).last()?;
    Some((c[1].parse().ok()?, c[2].parse().ok()?))
}

/// Seconds between the `hil-t0`/`hil-t1` stamps: `date` when it printed nanoseconds at both
/// ends, else `/proc/uptime`.
pub fn parse_stamps(output: &str) -> Option<f64> {
    let fields = |label: &str| -> (Option<f64>, Option<f64>) {
        let Some(line) = output
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{label} ")))
        else {
            return (None, None);
        };
        let mut up = None;
        let mut date = None;
        for f in line.split_whitespace() {
            if let Some(v) = f.strip_prefix("up=") {
                up = v.parse::<f64>().ok();
            } else if let Some(v) = f.strip_prefix("date=") {
                // Only a real fraction: `1795320894.%N` or a bare `1795320894` has no
                // sub-second part worth timing with.
                if v.split_once('.')
                    .is_some_and(|(s, ns)| !s.is_empty() && ns.len() >= 3)
                {
                    date = v.parse::<f64>().ok();
                }
            }
        }
        (up, date)
    };
    let (up0, date0) = fields("hil-t0");
    let (up1, date1) = fields("hil-t1");
    match (date0, date1, up0, up1) {
        (Some(a), Some(b), _, _) if b >= a => Some(b - a),
        (_, _, Some(a), Some(b)) if b >= a => Some(b - a),
        _ => None,
    }
}

/// dd's own timing when it printed one (it excludes the shell's overhead), else the stamps.
pub fn transfer_seconds(output: &str) -> Option<f64> {
    parse_dd_stats(output)
        .map(|s| s.seconds)
        .or_else(|| parse_stamps(output))
}

/// fio's JSON report inside the console output: with `--output-format=json` fio still prints
/// errors (`fio: pid=..., err=84/...`) and verify failures as text before it.
pub fn parse_fio_json(output: &str) -> Option<Vec<FioJob>> {
    let mut offset = 0;
    for line in output.split_inclusive('\n') {
        if line.trim() == "{" {
            let mut values = serde_json::Deserializer::from_str(&output[offset..])
                .into_iter::<serde_json::Value>();
            if let Some(Ok(report)) = values.next() {
                let jobs = report.get("jobs")?.as_array()?;
                return jobs.iter().map(fio_job).collect();
            }
        }
        offset += line.len();
    }
    None
}

fn fio_job(j: &serde_json::Value) -> Option<FioJob> {
    let dir = |k: &str| -> FioDir {
        let d = j.get(k);
        let num = |f: &str| d.and_then(|d| d.get(f)).and_then(|v| v.as_f64());
        FioDir {
            io_bytes: d
                .and_then(|d| d.get("io_bytes"))
                .and_then(|v| v.as_u64())
                .unwrap_or(0),
            bw_bytes: num("bw_bytes").unwrap_or(0.0),
            iops: num("iops").unwrap_or(0.0),
        }
    };
    Some(FioJob {
        name: j.get("jobname")?.as_str()?.to_string(),
        error: j.get("error")?.as_i64()?,
        write: dir("write"),
        read: dir("read"),
    })
}

fn sha256_of(output: &str, path: &str) -> Option<String> {
    SHA256_LINE
        .captures_iter(output)
        .find(|c| &c[2] == path)
        .map(|c| c[1].to_string())
}

/// Only the unusual: path under /dev/, and nothing a shell would interpret.
fn valid_device(d: &str) -> bool {
    d.len() > "/dev/".len()
        && d.len() <= 255
        && d.starts_with("/dev/")
        && !d.ends_with('/')
        && !d.split('/').any(|part| part == "..")
        && d.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
}

/// dd's own error lines (`dd: error writing '/dev/nvme0n1': Input/output error`), else
/// the output's end.
fn dd_errors(output: &str) -> String {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("dd:"))
        .collect();
    if lines.is_empty() {
        format!("{:?}", crate::text::excerpt(output))
    } else {
        lines.join("; ")
    }
}

/// Decimal MB/s (as fio's `bw_bytes` and coreutils dd count); `None` when the clock could
/// not see the transfer at all.
fn mb_per_s(bytes: u64, seconds: f64) -> Option<f64> {
    (seconds > 0.0).then(|| round2(bytes as f64 / seconds / 1e6))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn rate(mb_s: Option<f64>) -> String {
    mb_s.map_or_else(|| "too fast to time".into(), |r| format!("{r} MB/s"))
}

fn opt(x: Option<f64>) -> serde_json::Value {
    x.map_or(serde_json::Value::Null, Into::into)
}

fn fail(message: String, figures: serde_json::Map<String, serde_json::Value>) -> CheckOutput {
    CheckOutput {
        outcome: Some(Outcome::Fail),
        message,
        figures,
    }
}

fn blocked(message: String) -> CheckOutput {
    CheckOutput {
        outcome: Some(Outcome::Blocked),
        message,
        figures: serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flash::testdata::body;

    macro_rules! data {
        ($dir:literal, $name:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/",
                $dir,
                "/",
                $name
            ))
        };
    }
    macro_rules! output {
        ($name:literal) => {
            body(data!("outputs", $name))
        };
    }

    fn table(extra: &[(&str, toml::Value)]) -> toml::Table {
        let mut t = toml::Table::new();
        for (k, v) in extra {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    fn check(extra: &[(&str, toml::Value)]) -> NvmeIoCheck {
        NvmeIoCheck::from_params(Path::new("s.toml"), "check[0]", table(extra)).unwrap()
    }

    fn error(extra: &[(&str, toml::Value)]) -> ConfigError {
        NvmeIoCheck::from_params(Path::new("s.toml"), "check[4]", table(extra)).unwrap_err()
    }

    /// The area of the recorded outputs: 8 MiB at 4 MiB of a 64 MiB loop device, 256 KiB blocks.
    fn loop_check() -> NvmeIoCheck {
        check(&[
            ("device", "/dev/loop0".into()),
            ("size_mib", 8.into()),
            ("offset_mib", 4.into()),
            ("block_kib", 256.into()),
        ])
    }

    fn out(output: impl Into<String>, status: i32) -> CmdOutput {
        CmdOutput {
            output: output.into(),
            status,
        }
    }

    #[test]
    fn defaults() {
        let c = check(&[]);
        assert_eq!(c.device, "/dev/nvme0n1");
        assert_eq!((c.size_mib, c.offset_mib, c.block_kib), (16, 0, 1024));
        assert_eq!(c.fio, FioMode::Auto);
        assert_eq!(c.inject_after_write, None);
    }

    #[test]
    fn bad_params_name_the_key() {
        for dev in [
            "nvme0n1",
            "/dev/",
            "/dev/nvme0n1; rm -rf /",
            "/dev/$(reboot)",
            "/dev/../etc/passwd",
            "/tmp/x",
            "/dev/nvme 0",
        ] {
            let e = error(&[("device", dev.into())]);
            assert_eq!(e.key, "check[4].device", "{dev}: {e}");
        }
        assert_eq!(error(&[("size_mib", 0.into())]).key, "check[4].size_mib");
        let e = error(&[("size_mib", 33.into())]);
        assert_eq!(e.key, "check[4].size_mib");
        assert!(e.message.contains("at most 32 MiB"), "{e}");
        // fio needs no RAM copies.
        assert_eq!(
            check(&[("size_mib", 64.into()), ("fio", "always".into())]).size_mib,
            64
        );
        assert_eq!(error(&[("size_mib", (-1).into())]).key, "check[4].size_mib");
        assert_eq!(error(&[("block_kib", 0.into())]).key, "check[4].block_kib");
        assert_eq!(error(&[("block_kib", 6.into())]).key, "check[4].block_kib");
        let e = error(&[("size_mib", 1.into()), ("block_kib", 2048.into())]);
        assert!(e.message.contains("divisor of size_mib"), "{e}");
        let e = error(&[("offset_mib", 1.into()), ("block_kib", 2048.into())]);
        assert_eq!(e.key, "check[4].offset_mib");
        let e = error(&[("offset_mib", (i64::MAX).into())]);
        assert!(e.message.contains("too large"), "{e}");
        let e = error(&[("inject_after_write", " ".into())]);
        assert_eq!(e.key, "check[4].inject_after_write");
        let e = error(&[
            ("inject_after_write", "true".into()),
            ("fio", "always".into()),
        ]);
        assert!(e.message.contains("needs the dd flow"), "{e}");
        let e = error(&[("fio", "sometimes".into())]);
        assert_eq!(e.key, "check[4].fio");
        assert!(e.message.contains("unknown variant `sometimes`"), "{e}");
        let e = error(&[("size", 16.into())]);
        assert!(e.message.contains("unknown field `size`"), "{e}");
    }

    #[test]
    fn commands() {
        let c = check(&[]);
        assert_eq!(
            c.fio_command(),
            "fio --name=hil-nvme-io --filename=/dev/nvme0n1 --direct=1 --rw=write \
             --bs=1048576 --size=16777216 --offset=0 --verify=crc32c --verify_fatal=1 \
             --output-format=json"
        );
        assert_eq!(
            c.pattern_command(),
            "dd if=/dev/urandom of=/tmp/hil-nvme-io.pattern bs=1048576 count=16 \
             iflag=fullblock && sha256sum /tmp/hil-nvme-io.pattern"
        );
        let l = loop_check();
        let w = l.write_command(true);
        assert!(
            w.contains(
                "if [ -b /dev/loop0 ]; then dd if=/tmp/hil-nvme-io.pattern of=/dev/loop0 \
                 bs=262144 seek=16 count=32 conv=fsync,notrunc oflag=direct; HIL_RC=$?;"
            ),
            "{w}"
        );
        assert!(w.ends_with("(exit $HIL_RC)"), "{w}");
        assert!(!l.write_command(false).contains("direct"));
        let r = l.read_command(true);
        assert!(
            r.contains("dd if=/dev/loop0 of=/tmp/hil-nvme-io.readback bs=262144 skip=16 count=32 iflag=direct;"),
            "{r}"
        );
        assert!(!r.contains("drop_caches"));
        let r = l.read_command(false);
        assert!(
            r.starts_with("sync; echo 3 > /proc/sys/vm/drop_caches; "),
            "{r}"
        );
        assert!(!r.contains("iflag=direct"), "{r}");
        assert_eq!(
            cleanup_command(),
            "rm -f /tmp/hil-nvme-io.pattern /tmp/hil-nvme-io.readback"
        );
    }

    #[test]
    fn probe_on_recorded_outputs() {
        let p = parse_probe(&output!("busybox-nvme-io-probe-block.txt")).unwrap();
        assert_eq!(
            p,
            Probe {
                device: DeviceState::Block,
                size_bytes: Some(64 * MIB),
                fio: false,
                direct: true
            }
        );
        let p = parse_probe(&output!("busybox-nvme-io-probe-missing.txt")).unwrap();
        assert_eq!(p.device, DeviceState::Missing);
        assert_eq!(p.size_bytes, None);
        assert_eq!(parse_probe("sh: syntax error: unexpected \"fi\"\n"), None);
    }

    #[test]
    fn missing_device_is_blocked() {
        let c = check(&[]);
        let v = c
            .judge_probe(&out(output!("busybox-nvme-io-probe-missing.txt"), 0))
            .unwrap_err();
        assert_eq!(v.outcome, Some(Outcome::Blocked));
        assert_eq!(
            v.message,
            "no /dev/nvme0n1 on the DUT: NVMe not passed through or driver missing"
        );
        let v = c
            .judge_probe(&out(
                "hil-dev=other\nhil-size=\nhil-fio=no\nhil-direct=yes\n",
                0,
            ))
            .unwrap_err();
        assert_eq!(v.outcome, Some(Outcome::Blocked));
        assert!(v.message.contains("not a block device"), "{}", v.message);
    }

    #[test]
    fn probe_picks_the_flow() {
        let probe = |fio: bool, size_mib: u64| {
            out(
                format!(
                    "hil-dev=block\nhil-size={}\nhil-fio={}\nhil-direct=yes\n",
                    size_mib * MIB,
                    if fio { "yes" } else { "no" }
                ),
                0,
            )
        };
        let auto = check(&[]);
        assert_eq!(auto.judge_probe(&probe(true, 1024)).ok(), Some(Plan::Fio));
        assert_eq!(
            auto.judge_probe(&probe(false, 1024)).ok(),
            Some(Plan::Dd { direct: true })
        );
        let injecting = check(&[("inject_after_write", "true".into())]);
        assert_eq!(
            injecting.judge_probe(&probe(true, 1024)).ok(),
            Some(Plan::Dd { direct: true })
        );
        let never = check(&[("fio", "never".into())]);
        assert_eq!(
            never.judge_probe(&probe(true, 1024)).ok(),
            Some(Plan::Dd { direct: true })
        );
        let always = check(&[("fio", "always".into())]);
        let v = always.judge_probe(&probe(false, 1024)).unwrap_err();
        assert_eq!(v.outcome, Some(Outcome::Blocked));
        assert!(v.message.contains("fio not found"), "{}", v.message);
        // The area must fit in the namespace: 16 MiB at 0 does not fit in 8 MiB.
        let v = auto.judge_probe(&probe(false, 8)).unwrap_err();
        assert_eq!(v.outcome, Some(Outcome::Blocked));
        assert!(v.message.contains("holds 8 MiB"), "{}", v.message);
        // No dd direct flag: fall back to dropping caches.
        let no_direct = out("hil-dev=block\nhil-size=\nhil-fio=no\nhil-direct=no\n", 0);
        assert_eq!(
            auto.judge_probe(&no_direct).ok(),
            Some(Plan::Dd { direct: false })
        );
    }

    #[test]
    fn dd_stats_lines() {
        let s = parse_dd_stats(&output!("coreutils-nvme-io-write-direct.txt")).unwrap();
        assert_eq!(s.bytes, 8 * MIB);
        assert_eq!(s.seconds, 0.0131156);
        // busybox dd.c's format, when built with FEATURE_DD_THIRD_STATUS_LINE (Debian's
        // busybox-static 1.35 is not).
        let bb = "16+0 records in\n16+0 records out\n16777216 bytes (16.0MB) copied, 0.123456 seconds, 129.6MB/s\n";
        assert_eq!(
            parse_dd_stats(bb),
            Some(DdStats {
                bytes: 16 * MIB,
                seconds: 0.123456
            })
        );
        let comma = "16777216 bytes (17 MB, 16 MiB) copied, 0,5 s, 33,6 MB/s\n";
        assert_eq!(parse_dd_stats(comma).map(|s| s.seconds), Some(0.5));
        assert_eq!(
            parse_dd_stats(&output!("busybox-nvme-io-write-direct.txt")),
            None
        );
    }

    #[test]
    fn timing_prefers_dd_then_date_then_uptime() {
        // busybox: date prints `%N`, so /proc/uptime (4564.04 -> 4564.06).
        let t = transfer_seconds(&output!("busybox-nvme-io-write-direct.txt")).unwrap();
        assert!((t - 0.02).abs() < 1e-6, "{t}");
        let coreutils = output!("coreutils-nvme-io-write-direct.txt");
        assert_eq!(transfer_seconds(&coreutils), Some(0.0131156));
        let without_dd_line: String = coreutils
            .lines()
            .filter(|l| !l.contains("copied"))
            .map(|l| format!("{l}\n"))
            .collect();
        let t = parse_stamps(&without_dd_line).unwrap();
        assert!(t > 0.0 && t < 0.1, "{t}");
        assert_eq!(
            parse_stamps("hil-t0 up=1.00 date=5.%N\nhil-t1 up=1.50 date=6.%N\n"),
            Some(0.5)
        );
        assert_eq!(parse_stamps("hil-t0 up=1.00 date=5.%N\n"), None);
    }

    #[test]
    fn transfers() {
        let c = loop_check();
        let s = c
            .judge_transfer(
                Dir::Write,
                &out(output!("busybox-nvme-io-write-direct.txt"), 0),
            )
            .unwrap();
        assert!(s.is_some());

        let v = c
            .judge_transfer(
                Dir::Write,
                &out(output!("busybox-nvme-io-write-past-end.txt"), 1),
            )
            .unwrap_err();
        assert_eq!(v.outcome, Some(Outcome::Fail));
        assert_eq!(
            v.message,
            "writing 8 MiB of /dev/loop0 at offset 4 MiB failed (dd exit status 1): \
             dd: error writing '/dev/loop0': No space left on device"
        );

        // The kernel's EIO as dd reports it (busybox and coreutils wording).
        let eio = "hil-t0 up=1.00 date=5.%N\ndd: error reading '/dev/loop0': Input/output error\n\
                   3+0 records in\n3+0 records out\nhil-t1 up=1.50 date=6.%N\n";
        let v = c.judge_transfer(Dir::Read, &out(eio, 1)).unwrap_err();
        assert_eq!(v.outcome, Some(Outcome::Fail));
        assert!(v.message.starts_with("reading back 8 MiB"), "{}", v.message);
        assert!(v.message.contains("Input/output error"), "{}", v.message);

        // A short copy without an error status is no success either.
        let short = "hil-t0 up=1.00 date=5.%N\n30+0 records in\n30+0 records out\nhil-t1 up=1.50 date=6.%N\n";
        let v = c.judge_transfer(Dir::Read, &out(short, 0)).unwrap_err();
        assert_eq!(v.outcome, Some(Outcome::Fail));
        assert!(
            v.message.contains("copied 30+0 of 32 blocks"),
            "{}",
            v.message
        );

        let gone = "hil-t0 up=1.00 date=5.%N\nhil: not a block device: /dev/loop0\nhil-t1 up=1.01 date=5.%N\n";
        let v = c.judge_transfer(Dir::Read, &out(gone, 2)).unwrap_err();
        assert_eq!(v.outcome, Some(Outcome::Blocked));
    }

    #[test]
    fn checksum_mismatch_is_a_fail() {
        let c = loop_check();
        let written = c
            .judge_pattern(&out(output!("busybox-nvme-io-pattern.txt"), 0))
            .unwrap();
        assert_eq!(
            written,
            "3f776c2ecbe38d0a1e6285fc6f0523bd14dbd61408ca95e12f48a3329d1e90b9"
        );
        let read = c
            .judge_readback_sum(&out(
                output!("busybox-nvme-io-readback-sum-corrupted.txt"),
                0,
            ))
            .unwrap();
        let read_s = transfer_seconds(&output!("busybox-nvme-io-read-direct-corrupted.txt"));
        let v = c.verdict(&written, &read, Some(0.02), read_s, true);
        assert_eq!(v.outcome, Some(Outcome::Fail));
        assert_eq!(
            v.message,
            format!(
                "8 MiB of /dev/loop0 at offset 4 MiB: data read back differs from what was \
                 written (sha256 {written} vs {read})"
            )
        );
        assert_eq!(v.figures["sha256_read"], read.as_str());
    }

    #[test]
    fn intact_data_passes_with_figures() {
        let c = loop_check();
        let sum = "3f776c2ecbe38d0a1e6285fc6f0523bd14dbd61408ca95e12f48a3329d1e90b9";
        let v = c.verdict(sum, sum, Some(0.02), Some(0.0), true);
        assert_eq!(v.outcome, Some(Outcome::Pass), "{}", v.message);
        assert_eq!(v.figures["bytes"], 8 * MIB);
        assert_eq!(v.figures["write_mb_s"], 419.43);
        assert_eq!(v.figures["read_mb_s"], serde_json::Value::Null);
        assert_eq!(v.figures["sha256"], sum);
        assert!(
            v.message
                .contains("write 419.43 MB/s, read too fast to time (O_DIRECT)"),
            "{}",
            v.message
        );
    }

    #[test]
    fn no_room_for_the_pattern_is_blocked() {
        let full = "dd: error writing '/tmp/hil-nvme-io.pattern': No space left on device\n\
                    11+0 records in\n10+0 records out\n";
        let v = check(&[]).judge_pattern(&out(full, 1)).unwrap_err();
        assert_eq!(v.outcome, Some(Outcome::Blocked));
        assert!(
            v.message.contains("No space left on device"),
            "{}",
            v.message
        );
    }

    #[test]
    fn failed_injection_is_blocked() {
        let c = check(&[("inject_after_write", "false".into())]);
        assert!(c.judge_inject(&out("", 0)).is_ok());
        let v = c
            .judge_inject(&out("sh: nosuch: not found\n", 127))
            .unwrap_err();
        assert_eq!(v.outcome, Some(Outcome::Blocked));
        assert!(v.message.contains("exit status 127"), "{}", v.message);
    }

    #[test]
    fn fio_pass_on_recorded_run() {
        let c = loop_check();
        let o = output!("fio-3.33-write-verify-ok-json.txt");
        let jobs = parse_fio_json(&o).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].name, "hil-nvme-io");
        assert_eq!(jobs[0].write.io_bytes, 8 * MIB);
        assert_eq!(jobs[0].read.io_bytes, 8 * MIB);
        let v = c.judge_fio(&o, 0);
        assert_eq!(v.outcome, Some(Outcome::Pass), "{}", v.message);
        assert_eq!(v.figures["write_mb_s"], 932.07);
        assert_eq!(v.figures["read_mb_s"], 838.86);
        assert_eq!(v.figures["method"], "fio");
    }

    #[test]
    fn fio_verify_failure_fails() {
        let c = loop_check();
        let v = c.judge_fio(&output!("fio-3.33-verify-only-crc32c-failure-json.txt"), 1);
        assert_eq!(v.outcome, Some(Outcome::Fail));
        for part in [
            "fio verify failed: crc32c: verify failed at file /dev/loop0 offset 4456448",
            "fio job hil-nvme-io ended with error 84",
            "fio exited with status 1",
        ] {
            assert!(v.message.contains(part), "{part}: {}", v.message);
        }

        // The published text of a verify failure (no JSON in that run).
        let text = body(data!("transcripts", "fio-verify-crc32c-failure-text.txt"));
        let v = c.judge_fio(&text, 1);
        assert_eq!(v.outcome, Some(Outcome::Fail));
        assert!(
            v.message.contains(
                "crc32c: verify failed at file /mountedDisk2/test1/testjob1.0.0 offset 26738688"
            ),
            "{}",
            v.message
        );
    }

    #[test]
    fn truncated_fio_report_is_not_a_pass() {
        let c = loop_check();
        let partial = body(data!(
            "transcripts",
            "fio-json-one-job-partial-noverify.txt"
        ));
        assert_eq!(parse_fio_json(&partial), None);
        let v = c.judge_fio(&partial, 0);
        assert_eq!(v.outcome, Some(Outcome::Fail));
        assert!(
            v.message.contains("no complete JSON report"),
            "{}",
            v.message
        );

        // Closed after the stored part, the real job reads: a read-only run, so nothing
        // was written and nothing is claimed.
        let closed = format!("{partial}\"lat_ns\" : {{}} }} }} ] }}\n");
        let jobs = parse_fio_json(&closed).unwrap();
        assert_eq!(jobs[0].read.bw_bytes, 12411965845.0);
        assert_eq!(jobs[0].write, FioDir::default());
        let v = c.judge_fio(&closed, 0);
        assert_eq!(v.outcome, Some(Outcome::Fail));
        assert!(
            v.message.contains("wrote 0 of 8388608 bytes"),
            "{}",
            v.message
        );
        assert_eq!(v.figures["read_mb_s"], 12411.97);
    }
}
