//! `dma`: does DMA through the IOMMU move the right bytes?
//!
//! Sim boards (`[dma] device`): the board's `edudma` tool (fixtures/edudma/, a VFIO
//! userspace driver) maps a buffer with VFIO_IOMMU_MAP_DMA and programs QEMU's `edu` DMA
//! engine RAM → device → RAM, verifying the bytes each round. hil binds the device to
//! vfio-pci for the run and puts its driver back afterwards. When the board's QEMU writes
//! an smmuv3 trace (a `-trace ...,file=PATH` in `[qemu] args`), the part written during the
//! check is kept as an artifact and summarised for the device's stream ID: translations
//! and fault events go into results.json, and a DMA that passed without any translation
//! (it bypassed the IOMMU) or with faults fails. `fault_probe = true` adds a transfer to an
//! unmapped IOVA, which the SMMU must fault.
//!
//! Real boards (`[dma] self_test`): the board's own DMA self-test runs over SSH and its
//! success line is matched.
//!
//! `corrupt_offset = N` is the fault-injection hook: edudma flips that byte of the
//! destination buffer after the device → RAM transfer, so the check must fail.

use super::{Check, CheckCtx, CheckFuture, CheckOutput};
use crate::boot::State;
use crate::config::load::from_table;
use crate::config::{ConfigError, Via};
use crate::error::StepError;
use crate::outcome::Outcome;
use crate::vfio::{self, Binding};
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;
use tokio::time::Instant;

/// edu's 4 KiB buffer less one byte (QEMU 7.2 rejects a transfer that fills it exactly).
pub const MAX_BYTES: u32 = 4095;
/// edu clamps DMA addresses to 28 bits.
const EDU_DMA_LIMIT: u64 = 1 << 28;
const PAGE: u64 = 4096;
/// Short board-side steps (driver lookup, bind, restore).
const STEP: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DmaCheck {
    /// PCI address of the DMA engine (default: the board file's `[dma] device`).
    pub device: Option<String>,
    #[serde(default = "default_rounds")]
    pub rounds: u32,
    /// Bytes per transfer, 1..=4095.
    #[serde(default = "default_bytes")]
    pub bytes: u32,
    #[serde(default = "default_seed")]
    pub seed: u32,
    /// Where the buffer is mapped in the device's address space (page aligned).
    #[serde(default = "default_iova")]
    pub iova: u64,
    /// How long one transfer may take.
    #[serde(default = "default_dma_timeout_ms")]
    pub dma_timeout_ms: u32,
    /// Also DMA to an unmapped IOVA and require the IOMMU to fault it.
    #[serde(default)]
    pub fault_probe: bool,
    /// Fault injection: flip this byte of the destination buffer (the check must fail).
    pub corrupt_offset: Option<u32>,
}

fn default_rounds() -> u32 {
    2
}
fn default_bytes() -> u32 {
    MAX_BYTES
}
fn default_seed() -> u32 {
    1
}
fn default_iova() -> u64 {
    0x10_0000
}
fn default_dma_timeout_ms() -> u32 {
    5000
}

/// What one edudma run printed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ToolReport {
    pub group: Option<u32>,
    pub id: Option<String>,
    /// Per round: (to-device µs, from-device µs).
    pub rounds: Vec<(u64, u64)>,
    pub mismatch: Option<String>,
    pub fault_probe_iova: Option<u64>,
    /// (rounds, bytes) from the PASS line.
    pub pass: Option<(u32, u32)>,
    pub error: Option<String>,
}

static DEVICE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^edudma: device \S+ group (\d+) id (0x[0-9a-f]+)").expect("static regex")
});
static ROUND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^edudma: round (\d+): to-device \d+ bytes in (\d+) us, from-device \d+ bytes in (\d+) us",
    )
    .expect("static regex")
});
static PASS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^edudma: PASS (\d+) rounds, (\d+) bytes each way verified").expect("static regex")
});
static PROBE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^edudma: fault probe: .* unmapped iova 0x([0-9a-f]+)").expect("static regex")
});

/// Parses edudma's output (see fixtures/edudma/edudma.c for the lines).
pub fn parse_tool(out: &str) -> ToolReport {
    let mut r = ToolReport::default();
    for line in out.lines().map(str::trim) {
        if let Some(c) = DEVICE.captures(line) {
            r.group = c[1].parse().ok();
            r.id = Some(c[2].to_string());
        } else if let Some(c) = ROUND.captures(line) {
            if let (Ok(a), Ok(b)) = (c[2].parse(), c[3].parse()) {
                r.rounds.push((a, b));
            }
        } else if let Some(c) = PASS.captures(line) {
            r.pass = c[1].parse().ok().zip(c[2].parse().ok());
        } else if let Some(c) = PROBE.captures(line) {
            r.fault_probe_iova = u64::from_str_radix(&c[1], 16).ok();
        } else if let Some(m) = line.strip_prefix("edudma: mismatch ") {
            r.mismatch = Some(m.to_string());
        } else if let Some(e) = line.strip_prefix("edudma: error: ") {
            r.error = Some(e.to_string());
        }
    }
    r
}

/// Per stream ID: what the smmuv3 trace recorded.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SidTrace {
    pub translations: u64,
    /// Lowest and highest IOVA translated.
    pub iova_min: Option<u64>,
    pub iova_max: Option<u64>,
    /// `smmuv3_translate_abort` lines.
    pub aborts: u64,
    /// `smmuv3_record_event` lines (faults reported to the OS), by event type.
    pub events: BTreeMap<String, u64>,
}

impl SidTrace {
    pub fn fault_events(&self) -> u64 {
        self.events.values().sum()
    }
}

static SID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bsid=0x([0-9a-f]+)").expect("static regex"));
static IOVA: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\biova[= ]0x([0-9a-f]+)").expect("static regex"));

/// Summarises QEMU's smmuv3 trace (log backend, with or without `PID@TIME:` prefixes).
pub fn parse_trace(text: &str) -> BTreeMap<u32, SidTrace> {
    let mut m: BTreeMap<u32, SidTrace> = BTreeMap::new();
    for line in text.lines() {
        // `12345@1700000000.123456:smmuv3_...` when QEMU timestamps its messages
        let line = match line.split_once(':') {
            Some((pre, rest)) if pre.contains('@') && !pre.contains(' ') => rest,
            _ => line,
        };
        let mut words = line.split_whitespace();
        let Some(event) = words.next() else { continue };
        let Some(sid) = SID
            .captures(line)
            .and_then(|c| u32::from_str_radix(&c[1], 16).ok())
        else {
            continue;
        };
        let e = m.entry(sid).or_default();
        match event {
            "smmuv3_translate_success" => {
                e.translations += 1;
                if let Some(iova) = IOVA
                    .captures(line)
                    .and_then(|c| u64::from_str_radix(&c[1], 16).ok())
                {
                    e.iova_min = Some(e.iova_min.map_or(iova, |v| v.min(iova)));
                    e.iova_max = Some(e.iova_max.map_or(iova, |v| v.max(iova)));
                }
            }
            "smmuv3_translate_abort" => e.aborts += 1,
            "smmuv3_record_event" => {
                let kind = words.next().unwrap_or("?").to_string();
                *e.events.entry(kind).or_default() += 1;
            }
            _ => {}
        }
    }
    m
}

/// The stream ID of a PCI function behind an SMMU with an identity `iommu-map` (QEMU virt):
/// its requester ID, bus << 8 | device << 3 | function.
pub fn stream_id(address: &str) -> Option<u32> {
    let a = vfio::parse_address(address)?;
    let bus = u32::from_str_radix(&a[5..7], 16).ok()?;
    let dev = u32::from_str_radix(&a[8..10], 16).ok()?;
    let func = u32::from_str_radix(&a[11..12], 16).ok()?;
    Some(bus << 8 | dev << 3 | func)
}

/// The trace file of a `-trace ...,file=PATH` option in the board's QEMU arguments.
pub fn trace_file(qemu_args: &[String]) -> Option<PathBuf> {
    // QEMU keeps the file of the last -trace option that names one.
    qemu_args
        .windows(2)
        .filter(|w| w[0] == "-trace")
        .flat_map(|w| w[1].split(','))
        .filter_map(|opt| opt.strip_prefix("file="))
        .next_back()
        .map(PathBuf::from)
}

impl Check for DmaCheck {
    const KIND: &'static str = "dma";

    fn from_params(path: &Path, key: &str, params: toml::Table) -> Result<Self, ConfigError> {
        let c: DmaCheck = from_table(path, key, params)?;
        let err = |f: &str, m: String| ConfigError::new(path, format!("{key}.{f}"), m);
        if let Some(d) = &c.device {
            if vfio::parse_address(d).is_none() {
                return Err(err(
                    "device",
                    format!("is \"{d}\"; expected a PCI address like 0000:00:07.0"),
                ));
            }
        }
        if !(1..=1000).contains(&c.rounds) {
            return Err(err(
                "rounds",
                format!("is {}; expected 1 to 1000", c.rounds),
            ));
        }
        if !(1..=MAX_BYTES).contains(&c.bytes) {
            return Err(err(
                "bytes",
                format!("is {}; expected 1 to {MAX_BYTES} (edu's buffer)", c.bytes),
            ));
        }
        // Two buffer pages plus the fault probe's page must stay addressable by edu.
        if c.iova % PAGE != 0 || c.iova + 3 * PAGE > EDU_DMA_LIMIT {
            return Err(err(
                "iova",
                format!(
                    "is 0x{:x}; expected a 4 KiB aligned address below 0x{:x}",
                    c.iova,
                    EDU_DMA_LIMIT - 3 * PAGE
                ),
            ));
        }
        if c.dma_timeout_ms == 0 {
            return Err(err(
                "dma_timeout_ms",
                "is 0; expected milliseconds per transfer".into(),
            ));
        }
        if let Some(o) = c.corrupt_offset {
            if o >= c.bytes {
                return Err(err(
                    "corrupt_offset",
                    format!("is {o}; expected an offset below bytes ({})", c.bytes),
                ));
            }
        }
        Ok(c)
    }

    fn needs(&self, _via: Via) -> State {
        State::LinuxSsh
    }

    fn run<'a>(&'a self, ctx: &'a mut CheckCtx<'_>) -> CheckFuture<'a> {
        Box::pin(async move {
            let (name, timeout) = (ctx.name, ctx.timeout);
            let s = &mut *ctx.session;
            let deadline = crate::config::limits::deadline_from(Instant::now(), timeout);
            let Some(cfg) = s.board.dma.clone() else {
                return Err(StepError::Blocked(format!(
                    "board {} has no [dma] table: add device = \"ADDR\" (an edu DMA engine) or self_test/success",
                    s.board.name
                )));
            };
            if let (Some(cmd), Some(success)) = (&cfg.self_test, &cfg.success) {
                let out = s
                    .ssh()?
                    .exec(cmd, super::time_left(deadline, timeout)?)
                    .await?;
                return Ok(judge_self_test(success, out.status, &out.output));
            }
            let address = self
                .device
                .clone()
                .or(cfg.device)
                .and_then(|a| vfio::parse_address(&a))
                .ok_or_else(|| StepError::Blocked("no DMA device address".into()))?;

            let probe = format!(
                "modprobe vfio-pci 2>&1; d={}; if [ ! -e \"$d\" ]; then echo HIL_NO_DEVICE; \
                 else dr=$(readlink \"$d/driver\"); echo \"HIL_DRIVER ${{dr##*/}}\"; fi; command -v edudma >/dev/null || echo HIL_NO_TOOL",
                crate::shell::quote(&format!("/sys/bus/pci/devices/{address}"))
            );
            let out = s.ssh()?.exec(&probe, STEP).await?;
            if out.output.contains("HIL_NO_DEVICE") {
                return Err(StepError::Blocked(format!(
                    "no PCI device at {address} on the board"
                )));
            }
            if out.output.contains("HIL_NO_TOOL") {
                return Err(StepError::Blocked(
                    "edudma is not on the board (the sim lab puts it in the board's initramfs)"
                        .into(),
                ));
            }
            let driver = out
                .output
                .lines()
                .find_map(|l| l.strip_prefix("HIL_DRIVER"))
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_string);
            let bound_here = driver.as_deref() != Some("vfio-pci");
            if bound_here {
                let out = s.ssh()?.exec(&vfio::bind_command(&address), STEP).await?;
                if out.status != 0 {
                    return Err(StepError::BindFailed(format!(
                        "binding {address} to vfio-pci failed: {}",
                        out.output.trim()
                    )));
                }
            }

            let trace = s.board.qemu.as_ref().and_then(|q| trace_file(&q.args));
            let trace_start = trace.as_ref().map(|p| file_len(p));
            let tool = s
                .ssh()?
                .exec(
                    &self.tool_command(&address),
                    super::time_left(deadline, timeout)?,
                )
                .await;
            // Put the device back whatever the tool did.
            if bound_here {
                let b = Binding {
                    name: "dma".into(),
                    address: address.clone(),
                    group: 0,
                    original_driver: driver.clone(),
                };
                s.ssh()?.exec(&vfio::restore_command(&b), STEP).await?;
            }
            let tool = tool?;
            let report = parse_tool(&tool.output);

            let mut figures = serde_json::Map::new();
            figures.insert("device".into(), address.clone().into());
            if let Some(g) = report.group {
                figures.insert("iommu_group".into(), g.into());
            }
            figures.insert(
                "rounds_verified".into(),
                report.pass.map_or(0, |p| p.0).into(),
            );
            figures.insert("bytes_per_transfer".into(), self.bytes.into());
            if !report.rounds.is_empty() {
                let n = report.rounds.len() as f64;
                let avg = |f: fn(&(u64, u64)) -> u64| {
                    report.rounds.iter().map(f).sum::<u64>() as f64 / n / 1000.0
                };
                figures.insert("to_device_ms".into(), round2(avg(|r| r.0)).into());
                figures.insert("from_device_ms".into(), round2(avg(|r| r.1)).into());
            }
            let smmu = match (&trace, trace_start) {
                // Without the file there is no evidence either way: say so rather than
                // reading "no translation" as a bypass.
                (Some(path), Some(_)) if !path.is_file() => {
                    figures.insert(
                        "smmu".into(),
                        serde_json::json!({ "trace_missing": path.display().to_string() }),
                    );
                    None
                }
                (Some(path), Some(start)) => {
                    let slice = read_from(path, start);
                    let dir = s.run_dir.join("artifacts");
                    let _ = std::fs::create_dir_all(&dir);
                    let artifact = dir.join(format!("smmuv3-{}.log", safe(name)));
                    let _ = std::fs::write(&artifact, &slice);
                    let sid = stream_id(&address).unwrap_or_default();
                    let all = parse_trace(&slice);
                    let mine = all.get(&sid).cloned().unwrap_or_default();
                    figures.insert(
                        "smmu".into(),
                        serde_json::json!({
                            "trace": artifact.display().to_string(),
                            "stream_id": format!("0x{sid:x}"),
                            "translations": mine.translations,
                            "fault_events": mine.fault_events(),
                            "events": mine.events,
                            "aborts": mine.aborts,
                            "iova_min": mine.iova_min.map(|v| format!("0x{v:x}")),
                            "iova_max": mine.iova_max.map(|v| format!("0x{v:x}")),
                            "other_stream_translations": all.iter().filter(|(k, _)| **k != sid).map(|(_, v)| v.translations).sum::<u64>(),
                            "other_stream_fault_events": all.iter().filter(|(k, _)| **k != sid).map(|(_, v)| v.fault_events()).sum::<u64>(),
                        }),
                    );
                    Some((sid, mine))
                }
                _ => None,
            };
            let missing = trace.as_ref().filter(|p| !p.is_file());
            let mut v = self.judge(
                &address,
                &report,
                tool.status,
                &tool.output,
                smmu.as_ref(),
                figures,
            );
            if let Some(p) = missing {
                v.message.push_str(&format!(
                    "; no smmuv3 trace at {} (the board's QEMU -trace option wrote nothing)",
                    p.display()
                ));
            }
            Ok(v)
        })
    }
}

impl DmaCheck {
    pub fn tool_command(&self, address: &str) -> String {
        let mut a = vec![
            "edudma".to_string(),
            "-r".into(),
            self.rounds.to_string(),
            "-n".into(),
            self.bytes.to_string(),
            "-i".into(),
            self.seed.to_string(),
            "-a".into(),
            format!("0x{:x}", self.iova),
            "-t".into(),
            self.dma_timeout_ms.to_string(),
        ];
        if let Some(o) = self.corrupt_offset {
            a.extend(["--corrupt".into(), o.to_string()]);
        }
        if self.fault_probe {
            a.push("--fault-probe".into());
        }
        a.push(address.to_string());
        format!("{} 2>&1", crate::shell::join(a))
    }

    /// The verdict on edudma's report and, when traced, the SMMU's view of it.
    pub fn judge(
        &self,
        address: &str,
        r: &ToolReport,
        status: i32,
        output: &str,
        smmu: Option<&(u32, SidTrace)>,
        figures: serde_json::Map<String, serde_json::Value>,
    ) -> CheckOutput {
        let out = |o: Outcome, message: String| CheckOutput {
            outcome: Some(o),
            message,
            figures: figures.clone(),
        };
        if status == 127 {
            return out(
                Outcome::Blocked,
                format!("edudma did not run: {}", crate::text::excerpt(output)),
            );
        }
        if let Some(m) = &r.mismatch {
            return out(Outcome::Fail, format!("{address}: data mismatch {m}"));
        }
        if let Some(e) = &r.error {
            // Setup trouble (VFIO, group, mapping) means the DMA could not be tried;
            // a transfer that never finishes (exit 4) is the device misbehaving.
            let o = if status == 4 {
                Outcome::Fail
            } else {
                Outcome::Blocked
            };
            return out(o, format!("{address}: {e}"));
        }
        let Some((rounds, bytes)) = r.pass.filter(|_| status == 0) else {
            return out(
                Outcome::Fail,
                format!(
                    "{address}: edudma exited {status} without a verdict: {}",
                    crate::text::excerpt(output)
                ),
            );
        };
        let mut msg = format!("{address}: {rounds} rounds of {bytes} bytes each way verified");
        if let Some((sid, t)) = smmu {
            if t.translations == 0 {
                return out(
                    Outcome::Fail,
                    format!("{msg}, but the SMMU trace has no translation for stream 0x{sid:x}: the DMA bypassed the IOMMU"),
                );
            }
            msg.push_str(&format!(
                "; SMMU stream 0x{sid:x}: {} translations",
                t.translations
            ));
            if self.fault_probe {
                if t.fault_events() == 0 {
                    return out(
                        Outcome::Fail,
                        format!(
                            "{msg}, but no fault event for the DMA to unmapped iova {}",
                            r.fault_probe_iova
                                .map_or("?".into(), |v| format!("0x{v:x}"))
                        ),
                    );
                }
                msg.push_str(&format!(
                    ", {} fault event(s) for the unmapped probe",
                    t.fault_events()
                ));
            } else if t.fault_events() > 0 {
                return out(
                    Outcome::Fail,
                    format!(
                        "{msg}, but {} SMMU fault event(s) for the device: {:?}",
                        t.fault_events(),
                        t.events
                    ),
                );
            }
        }
        out(Outcome::Pass, msg)
    }
}

/// Real boards: the self-test's exit status and its success line.
pub fn judge_self_test(success: &str, status: i32, output: &str) -> CheckOutput {
    let text = crate::text::clean(output.as_bytes());
    let matched = Regex::new(&format!("(?m){success}"))
        .ok()
        .and_then(|re| re.find(&text).map(|m| m.as_str().to_string()));
    let (outcome, message) = match (status, matched) {
        (0, Some(line)) => (Outcome::Pass, format!("self-test: {line}")),
        (0, None) => (
            Outcome::Fail,
            format!(
                "self-test exited 0 but printed no line matching /{success}/: {}",
                crate::text::excerpt(&text)
            ),
        ),
        (st, _) => (
            Outcome::Fail,
            format!("self-test exited {st}: {}", crate::text::excerpt(&text)),
        ),
    };
    CheckOutput {
        outcome: Some(outcome),
        message,
        figures: serde_json::Map::new(),
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// What was appended to the trace since `start` (QEMU flushes each trace line).
fn read_from(p: &Path, start: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(p) {
        if f.seek(SeekFrom::Start(start)).is_ok() {
            let _ = f.read_to_end(&mut buf);
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Recorded on the sim board (edu at 00:07.0, QEMU 7.2, kernel 6.1).
    const PASS_RUN: &str = "\
edudma: device 0000:00:07.0 group 8 id 0x010000ed
edudma: mapped iova 0x100000 size 8192
edudma: round 1: to-device 4095 bytes in 99942 us, from-device 4095 bytes in 100740 us
edudma: round 2: to-device 4095 bytes in 100777 us, from-device 4095 bytes in 100647 us
edudma: PASS 2 rounds, 4095 bytes each way verified
";
    const CORRUPT_RUN: &str = "\
edudma: device 0000:00:07.0 group 8 id 0x010000ed
edudma: mapped iova 0x100000 size 8192
edudma: round 1: to-device 4095 bytes in 99879 us, from-device 4095 bytes in 99966 us
edudma: mismatch round 1: 1 of 4095 bytes differ, first at offset 0x5: expected 0xea got 0x15
";
    const MAP_FAIL: &str = "\
edudma: device 0000:00:07.0 group 8 id 0x010000ed
edudma: error: VFIO_IOMMU_MAP_DMA: Invalid argument
";
    const TRACE: &str = "\
smmuv3_translate_success smmuv3-iommu-memory-region-16-2 sid=0x10 iova=0xfffff040 translated=0x8090040 perm=0x3
smmuv3_record_event SMMU_EVT_F_TRANSLATION sid=0x200
smmuv3_translate_success smmuv3-iommu-memory-region-56-11 sid=0x38 iova=0x100000 translated=0x43f2e000 perm=0x3
smmuv3_translate_success smmuv3-iommu-memory-region-56-11 sid=0x38 iova=0x101000 translated=0x43f29000 perm=0x3
4242@1700000000.000001:smmuv3_translate_abort smmuv3-iommu-memory-region-56-11 sid=0x38 abort on iova 0x103000 is_write=1
4242@1700000000.000002:smmuv3_record_event SMMU_EVT_F_TRANSLATION sid=0x38
";

    fn check(toml_text: &str) -> DmaCheck {
        DmaCheck::from_params(
            Path::new("s.toml"),
            "check[0]",
            toml::from_str(toml_text).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn parses_tool_output() {
        let r = parse_tool(PASS_RUN);
        assert_eq!(r.group, Some(8));
        assert_eq!(r.id.as_deref(), Some("0x010000ed"));
        assert_eq!(r.rounds, [(99942, 100740), (100777, 100647)]);
        assert_eq!(r.pass, Some((2, 4095)));
        let c = parse_tool(CORRUPT_RUN);
        assert!(c.pass.is_none());
        assert!(c.mismatch.unwrap().contains("first at offset 0x5"));
        assert_eq!(
            parse_tool(MAP_FAIL).error.as_deref(),
            Some("VFIO_IOMMU_MAP_DMA: Invalid argument")
        );
    }

    #[test]
    fn summarises_the_trace_per_stream() {
        let t = parse_trace(TRACE);
        let edu = &t[&0x38];
        assert_eq!(edu.translations, 2);
        assert_eq!(
            (edu.iova_min, edu.iova_max),
            (Some(0x100000), Some(0x101000))
        );
        assert_eq!(edu.aborts, 1);
        assert_eq!(edu.events["SMMU_EVT_F_TRANSLATION"], 1);
        assert_eq!(t[&0x200].fault_events(), 1);
        assert_eq!(t[&0x10].translations, 1);
    }

    #[test]
    fn stream_ids_and_trace_file() {
        assert_eq!(stream_id("0000:00:07.0"), Some(0x38));
        assert_eq!(stream_id("0000:03:00.0"), Some(0x300));
        assert_eq!(stream_id("0000:05:01.2"), Some(0x50a));
        let args: Vec<String> = [
            "-trace",
            "smmuv3_translate_success",
            "-trace",
            "enable=smmuv3_record_event,file=/r/smmuv3-trace.log",
            "-device",
            "edu",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            trace_file(&args),
            Some(PathBuf::from("/r/smmuv3-trace.log"))
        );
        assert_eq!(trace_file(&args[..2]), None);
    }

    #[test]
    fn verdicts() {
        let c = check("");
        let t = parse_trace(TRACE);
        let clean = SidTrace {
            translations: 4,
            ..Default::default()
        };
        let pass = c.judge(
            "0000:00:07.0",
            &parse_tool(PASS_RUN),
            0,
            PASS_RUN,
            Some(&(0x38, clean.clone())),
            Default::default(),
        );
        assert_eq!(pass.outcome, Some(Outcome::Pass), "{}", pass.message);
        assert!(pass.message.contains("4 translations"), "{}", pass.message);
        // No trace configured: the bytes alone decide.
        assert_eq!(
            c.judge("a", &parse_tool(PASS_RUN), 0, "", None, Default::default())
                .outcome,
            Some(Outcome::Pass)
        );
        let bad = c.judge(
            "0000:00:07.0",
            &parse_tool(CORRUPT_RUN),
            1,
            CORRUPT_RUN,
            Some(&(0x38, clean.clone())),
            Default::default(),
        );
        assert_eq!(bad.outcome, Some(Outcome::Fail));
        assert!(
            bad.message.contains("data mismatch round 1"),
            "{}",
            bad.message
        );
        let bypass = c.judge(
            "a",
            &parse_tool(PASS_RUN),
            0,
            "",
            Some(&(0x38, SidTrace::default())),
            Default::default(),
        );
        assert_eq!(bypass.outcome, Some(Outcome::Fail));
        assert!(
            bypass.message.contains("bypassed the IOMMU"),
            "{}",
            bypass.message
        );
        // A fault for the device fails a plain run and is required by a fault probe.
        let faulted = (0x38, t[&0x38].clone());
        assert_eq!(
            c.judge(
                "a",
                &parse_tool(PASS_RUN),
                0,
                "",
                Some(&faulted),
                Default::default()
            )
            .outcome,
            Some(Outcome::Fail)
        );
        let probe = check("fault_probe = true");
        assert_eq!(
            probe
                .judge(
                    "a",
                    &parse_tool(PASS_RUN),
                    0,
                    "",
                    Some(&faulted),
                    Default::default()
                )
                .outcome,
            Some(Outcome::Pass)
        );
        assert_eq!(
            probe
                .judge(
                    "a",
                    &parse_tool(PASS_RUN),
                    0,
                    "",
                    Some(&(0x38, clean)),
                    Default::default()
                )
                .outcome,
            Some(Outcome::Fail)
        );
        assert_eq!(
            c.judge(
                "a",
                &parse_tool(MAP_FAIL),
                3,
                MAP_FAIL,
                None,
                Default::default()
            )
            .outcome,
            Some(Outcome::Blocked)
        );
        assert_eq!(
            c.judge(
                "a",
                &ToolReport {
                    error: Some("round 1: to-device DMA did not finish in 5000 ms".into()),
                    ..Default::default()
                },
                4,
                "",
                None,
                Default::default()
            )
            .outcome,
            Some(Outcome::Fail)
        );
    }

    #[test]
    fn params_are_validated_and_passed_on() {
        let c = check(
            "rounds = 3\nbytes = 100\ncorrupt_offset = 7\nfault_probe = true\niova = 0x200000",
        );
        assert_eq!(
            c.tool_command("0000:00:07.0"),
            "edudma -r 3 -n 100 -i 1 -a 0x200000 -t 5000 --corrupt 7 --fault-probe 0000:00:07.0 2>&1"
        );
        let err = |t: &str| {
            DmaCheck::from_params(Path::new("s.toml"), "check[0]", toml::from_str(t).unwrap())
                .unwrap_err()
                .key
        };
        assert_eq!(err("bytes = 4096"), "check[0].bytes");
        assert_eq!(err("iova = 0x100800"), "check[0].iova");
        assert_eq!(err("corrupt_offset = 5000"), "check[0].corrupt_offset");
        assert_eq!(err("device = \"07.0\""), "check[0].device");
        assert_eq!(err("colour = 1"), "check[0].colour");
    }

    #[test]
    fn self_test_needs_status_and_line() {
        let ok = judge_self_test(
            "^dmatest: .* 0 failures",
            0,
            "\x1b[0mdmatest: 100 tests, 0 failures\n",
        );
        assert_eq!(ok.outcome, Some(Outcome::Pass), "{}", ok.message);
        assert_eq!(
            judge_self_test("0 failures", 0, "dmatest: 3 failures").outcome,
            Some(Outcome::Fail)
        );
        assert_eq!(
            judge_self_test("0 failures", 1, "0 failures").outcome,
            Some(Outcome::Fail)
        );
    }
}
