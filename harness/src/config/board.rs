//! Board files (`boards/*.toml`): how to reach, power, boot and log into one board.

use super::error::{ConfigError, ConfigErrors};
use super::expand;
use super::load::load_toml;
use regex::Regex;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Must match the file name (`boards/<name>.toml`), so `--board NAME` finds it.
    pub name: String,
    pub soc: String,
    #[serde(default)]
    pub description: String,
    /// A board emulated by the sim lab: `hil run` provisions its images first.
    #[serde(default)]
    pub simulated: bool,
    pub console: ConsoleCfg,
    pub power: PowerCfg,
    pub qemu: Option<QemuCfg>,
    pub flash: Option<FlashCfg>,
    pub bootloader: BootloaderCfg,
    pub linux: LinuxCfg,
    pub ssh: Option<SshCfg>,
    /// Devices handed to the guest (vfio-pci), found by address or by id/class.
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceCfg>,
    pub guest: Option<GuestCfg>,
    /// What the `dma` check drives (config/pcie.rs).
    pub dma: Option<super::pcie::DmaCfg>,
    /// The PCI tree the `pci-topology` check expects (config/pcie.rs).
    pub pci_topology: Option<super::pcie::PciTopologyCfg>,
    /// How long a run's claim on the board lives without a heartbeat.
    #[serde(default)]
    pub lease: LeaseCfg,
    /// Recovery budgets for lab trouble.
    #[serde(default)]
    pub retry: RetryCfg,
    /// How the fake board behaves (`power.backend = "fake"`, config/fake.rs).
    pub fake: Option<super::fake::FakeCfg>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseCfg {
    /// A lease not renewed for this long has expired and may be taken over (a killed job's
    /// board frees itself). The holder renews it every quarter of this.
    #[serde(default = "default_lease_ttl")]
    pub ttl_s: u64,
}

fn default_lease_ttl() -> u64 {
    60
}

impl Default for LeaseCfg {
    fn default() -> Self {
        LeaseCfg {
            ttl_s: default_lease_ttl(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryCfg {
    /// How many times in one run the board is power-cycled and booted again after an
    /// infrastructure error (console silent, TFTP, QEMU gone) while booting or during a
    /// check; the check is then run again. Failures of the DUT are never retried here.
    #[serde(default)]
    pub infrastructure: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCfg {
    /// How suites refer to it (`nvme`, `nic`).
    pub name: String,
    /// PCI address `DDDD:BB:DD.F`.
    pub address: Option<String>,
    /// `vendor:device` in hex (`1b36:0010`), when the address is not fixed.
    pub id: Option<String>,
    /// PCI class prefix in hex (`0x0108` for NVMe), narrowing `id`.
    pub class: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestCfg {
    /// The QEMU binary on the board.
    pub binary: String,
    /// Its arguments; hil appends `-qmp` and one `-device vfio-pci,host=ADDR` per device.
    pub args: Vec<String>,
    /// QMP port on the board's loopback, reached through SSH.
    pub qmp_port: u16,
    /// Regex printed once the guest's shell is about to start.
    pub ready: Option<String>,
    pub prompt: String,
    pub boot_timeout_s: u64,
    pub shell_timeout_s: u64,
    /// Files copied to the board over SSH (and verified by sha256) before the guest
    /// starts: `"/board/path" = "local path"`.
    #[serde(default)]
    pub upload: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleCfg {
    /// `qemu` (the pty the QEMU power backend reports) or a serial device path; use
    /// `/dev/serial/by-id/...` or by-path, never `ttyUSBn` (it moves on re-enumeration).
    pub device: String,
    pub baud: u32,
    /// A device-path console whose transport vanishes (USB re-enumeration) is reopened if
    /// the same path comes back within this many seconds; 0 closes it at once. Default
    /// [`DEFAULT_REOPEN_TIMEOUT_S`]. Not for `qemu`: that pty dies with QEMU.
    pub reopen_timeout_s: Option<u64>,
}

/// A USB-serial adapter re-enumerates in a few seconds; a hub reset can take longer.
pub const DEFAULT_REOPEN_TIMEOUT_S: u64 = 30;
/// Longer than this and a board without a console would go unnoticed for too long.
const MAX_REOPEN_TIMEOUT_S: u64 = 3600;

impl ConsoleCfg {
    /// How long a lost transport may stay away before the console counts as closed;
    /// `None` for a console that is never reopened (the QEMU pty).
    pub fn reopen_within(&self) -> Option<std::time::Duration> {
        if self.device == "qemu" {
            return None;
        }
        let s = self.reopen_timeout_s.unwrap_or(DEFAULT_REOPEN_TIMEOUT_S);
        (s > 0).then(|| std::time::Duration::from_secs(s))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PowerBackend {
    Qemu,
    Command,
    Manual,
    /// The fake board in hil's library (tests of hil's own logic): config/fake.rs.
    Fake,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerCfg {
    pub backend: PowerBackend,
    /// `command`: shell commands run on the lab host (relay, PDU).
    pub on: Option<String>,
    pub off: Option<String>,
    pub cycle: Option<String>,
    /// `command`: limit per command; `manual`: how long to wait for the operator.
    pub timeout_s: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QemuCfg {
    pub binary: String,
    pub machine: String,
    pub cpu: String,
    pub smp: u32,
    pub memory_mb: u32,
    pub bios: Option<String>,
    /// Devices, netdevs, drives: passed as they are after placeholder expansion.
    #[serde(default)]
    pub args: Vec<String>,
    /// How long QEMU may take to come up paused and answer QMP.
    pub start_timeout_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlashBackend {
    /// Copy kernel/initrd into the lab's TFTP directory for U-Boot to fetch.
    Tftp,
    Rkdeveloptool,
    ImageWrite,
    FlashWriter,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlashCfg {
    pub backend: FlashBackend,
    /// tftp: the directory the lab's TFTP server serves for this board.
    pub tftp_dir: Option<String>,
    /// tftp: files to copy there, `name = "source path"`.
    #[serde(default)]
    pub files: std::collections::BTreeMap<String, String>,
    /// rkdeveloptool: the loader (`db`) and the image written with `wl` at `sector`.
    pub loader: Option<String>,
    pub image: Option<String>,
    pub sector: Option<u64>,
    /// flash-writer: the Flash Writer S-record and the serial device of SCIF download mode.
    pub writer: Option<String>,
    /// image-write: the block device (SD-mux) the host image is written to.
    pub target: Option<String>,
    pub timeout_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootloaderKind {
    UBoot,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootloaderCfg {
    pub kind: BootloaderKind,
    /// The interactive prompt, a literal (`=> `).
    pub prompt: String,
    /// The autoboot countdown line, a literal (`Hit any key to stop autoboot`).
    pub autoboot: String,
    /// What to type to stop autoboot.
    pub interrupt: String,
    /// From power-on to the prompt.
    pub timeout_s: u64,
    /// Commands typed at the prompt before booting; each must return to the prompt.
    #[serde(default)]
    pub commands: Vec<String>,
    /// Per command (a 32 MB TFTP takes ~20 s on the sim).
    pub command_timeout_s: u64,
    /// The command that starts Linux (`booti ...`); it never returns to the prompt.
    pub boot_command: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinuxCfg {
    /// Kernel command line; hil types `setenv bootargs ...` before `boot_command`.
    pub bootargs: String,
    /// Regex printed once the root shell is about to start (optional, speeds detection).
    pub ready: Option<String>,
    /// Regex matching the shell prompt at the end of the output (`# $`).
    pub prompt: String,
    /// From `boot_command` to the shell prompt.
    pub boot_timeout_s: u64,
    /// Default limit for console shell setup commands.
    pub shell_timeout_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshCfg {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private key to log in with.
    pub identity: String,
    /// The board's pinned host key, `ssh-ed25519 AAAA...` (or use `host_key_file`).
    pub host_key: Option<String>,
    pub host_key_file: Option<String>,
    /// From Linux on the console to a working SSH login (dropbear starts late).
    pub connect_timeout_s: u64,
}

impl Board {
    /// Loads and validates `path`; every problem names the file and key.
    pub fn load(path: &Path) -> Result<Board, ConfigErrors> {
        let board: Board = load_toml(path).map_err(|e| ConfigErrors(vec![e]))?;
        let errs = board.validate(path);
        if errs.is_empty() {
            Ok(board)
        } else {
            Err(ConfigErrors(errs))
        }
    }

    fn validate(&self, path: &Path) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let mut err = |key: &str, msg: String| errs.push(ConfigError::new(path, key, msg));

        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            if stem != self.name {
                err(
                    "name",
                    format!(
                        "is \"{}\" but the file is {stem}.toml; expected them to match",
                        self.name
                    ),
                );
            }
        }
        if !(1..=86_400).contains(&self.lease.ttl_s) {
            err(
                "lease.ttl_s",
                format!(
                    "is {}; expected 1 to 86400 seconds (60 is a good default)",
                    self.lease.ttl_s
                ),
            );
        }
        if self.retry.infrastructure > 10 {
            err(
                "retry.infrastructure",
                format!(
                    "is {}; expected at most 10 (each retry power-cycles and boots the board again)",
                    self.retry.infrastructure
                ),
            );
        }
        // A leading placeholder ({run_dir}, {board_dir}) expands to an absolute path.
        if self.console.device != "qemu"
            && self.console.device != "fake"
            && !self.console.device.starts_with('/')
            && !self.console.device.starts_with('{')
        {
            err("console.device", format!("is \"{}\"; expected \"qemu\", \"fake\" or an absolute device path such as /dev/serial/by-id/...", self.console.device));
        }
        match self.console.reopen_timeout_s {
            Some(_) if self.console.device == "qemu" => err(
                "console.reopen_timeout_s",
                "is set but console.device is \"qemu\"; the pty QEMU creates dies with QEMU and is never reopened: expected this key only with a device path".into(),
            ),
            Some(s) if s > MAX_REOPEN_TIMEOUT_S => err(
                "console.reopen_timeout_s",
                format!("is {s}; expected at most {MAX_REOPEN_TIMEOUT_S} seconds (0 turns re-opening off)"),
            ),
            _ => {}
        }
        if self.console.device.starts_with("/dev/ttyUSB")
            || self.console.device.starts_with("/dev/ttyACM")
        {
            err("console.device", format!("is \"{}\", a name that changes when USB re-enumerates; expected a /dev/serial/by-id/ or /dev/serial/by-path/ link", self.console.device));
        }
        match self.power.backend {
            PowerBackend::Qemu => {
                if self.qemu.is_none() {
                    err(
                        "qemu",
                        "is missing; expected a [qemu] table when power.backend = \"qemu\"".into(),
                    );
                }
                // "qemu": hil gives the board's serial port a pty and adds -serial itself.
                // A device path: qemu.args must wire the serial port to whatever serves
                // that path (a socket chardev and a relay, as in the console re-open test).
                let serial_in_args = self
                    .qemu
                    .as_ref()
                    .is_some_and(|q| q.args.iter().any(|a| a == "-serial"));
                if self.console.device == "qemu" && serial_in_args {
                    err("qemu.args", "has -serial while console.device = \"qemu\"; hil adds the console's -serial itself: expected no -serial, or console.device set to the path that serial port is relayed to".into());
                }
                if self.console.device != "qemu" && self.qemu.is_some() && !serial_in_args {
                    err("console.device", format!("is \"{}\" with power.backend = \"qemu\", but qemu.args has no -serial, so nothing feeds that device; expected \"qemu\" (hil connects QEMU's serial port to a pty) or a -chardev/-serial pair in qemu.args that serves it", self.console.device));
                }
            }
            PowerBackend::Command => {
                for (k, v) in [("power.on", &self.power.on), ("power.off", &self.power.off)] {
                    if v.is_none() {
                        err(
                            k,
                            "is missing; expected a shell command when power.backend = \"command\""
                                .into(),
                        );
                    }
                }
                if self.power.timeout_s.is_none() {
                    err(
                        "power.timeout_s",
                        "is missing; expected seconds allowed per power command".into(),
                    );
                }
            }
            PowerBackend::Manual => {
                if self.power.timeout_s.is_none() {
                    err(
                        "power.timeout_s",
                        "is missing; expected seconds to wait for the operator".into(),
                    );
                }
            }
            // Checked with the [fake] table below.
            PowerBackend::Fake => {}
        }
        if self.console.device == "qemu" && self.power.backend != PowerBackend::Qemu {
            err(
                "console.device",
                "is \"qemu\" but power.backend is not \"qemu\"; expected a serial device path"
                    .into(),
            );
        }
        if let Some(f) = &self.flash {
            let need: &[(&str, bool)] = match f.backend {
                FlashBackend::Tftp => &[("flash.tftp_dir", f.tftp_dir.is_some())],
                FlashBackend::Rkdeveloptool => &[
                    ("flash.loader", f.loader.is_some()),
                    ("flash.image", f.image.is_some()),
                    ("flash.sector", f.sector.is_some()),
                ],
                FlashBackend::ImageWrite => &[
                    ("flash.image", f.image.is_some()),
                    ("flash.target", f.target.is_some()),
                ],
                FlashBackend::FlashWriter => &[("flash.writer", f.writer.is_some())],
            };
            for (k, present) in need {
                if !present {
                    err(
                        k,
                        format!(
                            "is missing; expected it when flash.backend = \"{:?}\"",
                            f.backend
                        )
                        .to_lowercase(),
                    );
                }
            }
        }
        if let Some(r) = &self.linux.ready {
            if let Err(e) = Regex::new(r) {
                err("linux.ready", format!("is not a valid regex: {e}"));
            }
        }
        if let Err(e) = Regex::new(&self.linux.prompt) {
            err("linux.prompt", format!("is not a valid regex: {e}"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            let key = format!("device[{i}]");
            if !names.insert(d.name.as_str()) {
                err(
                    &format!("{key}.name"),
                    format!("\"{}\" is used twice; expected unique device names", d.name),
                );
            }
            match (&d.address, &d.id) {
                (None, None) => err(&key, "has neither address nor id; expected address = \"0000:00:03.0\" or id = \"1b36:0010\"".into()),
                (Some(a), _) if crate::vfio::parse_address(a).is_none() => {
                    err(&format!("{key}.address"), format!("is \"{a}\"; expected a PCI address like 0000:00:03.0"))
                }
                (_, Some(id)) if crate::vfio::parse_id(id).is_none() => {
                    err(&format!("{key}.id"), format!("is \"{id}\"; expected vendor:device in hex like 1b36:0010"))
                }
                _ => {}
            }
            if let Some(c) = &d.class {
                let ok = c.strip_prefix("0x").is_some_and(|h| {
                    !h.is_empty() && h.len() <= 6 && h.chars().all(|c| c.is_ascii_hexdigit())
                });
                if !ok {
                    err(
                        &format!("{key}.class"),
                        format!("is \"{c}\"; expected a hex class prefix like 0x0108"),
                    );
                }
            }
        }
        if let Some(g) = &self.guest {
            if let Some(r) = &g.ready {
                if let Err(e) = Regex::new(r) {
                    err("guest.ready", format!("is not a valid regex: {e}"));
                }
            }
            if self.ssh.is_none() {
                err(
                    "guest",
                    "needs an [ssh] table: the guest is started on the board over SSH".into(),
                );
            }
        }
        if let Some(s) = &self.ssh {
            match (&s.host_key, &s.host_key_file) {
                (None, None) => err("ssh.host_key", "is missing; expected the board's pinned host key (\"ssh-ed25519 AAAA...\") or ssh.host_key_file".into()),
                (Some(_), Some(_)) => err("ssh.host_key_file", "is set together with ssh.host_key; expected only one".into()),
                (Some(k), None) if crate::ssh::parse_public_key(k).is_none() => {
                    err("ssh.host_key", "expected \"<type> <base64>\" as in an OpenSSH .pub file".into());
                }
                _ => {}
            }
        }
        // Placeholders: only known names, and only on simulated boards for lab paths.
        for (key, value) in self.placeholder_fields() {
            if let Some(p) = expand::unknown_placeholder(&value) {
                err(
                    &key,
                    format!(
                        "uses unknown placeholder {{{p}}}; expected one of {}",
                        expand::known_list()
                    ),
                );
            }
        }
        if let Some(d) = &self.dma {
            super::pcie::validate_dma(path, d, &mut errs);
        }
        if let Some(t) = &self.pci_topology {
            super::pcie::validate_topology(path, t, &mut errs);
        }
        super::fake::validate(path, self, &mut errs);
        errs
    }

    /// Every value that may carry `{placeholders}`, with its key.
    fn placeholder_fields(&self) -> Vec<(String, String)> {
        let mut v = vec![("console.device".to_string(), self.console.device.clone())];
        if let Some(q) = &self.qemu {
            if let Some(b) = &q.bios {
                v.push(("qemu.bios".into(), b.clone()));
            }
            for (i, a) in q.args.iter().enumerate() {
                v.push((format!("qemu.args[{i}]"), a.clone()));
            }
        }
        if let Some(s) = &self.ssh {
            v.push(("ssh.identity".into(), s.identity.clone()));
            if let Some(f) = &s.host_key_file {
                v.push(("ssh.host_key_file".into(), f.clone()));
            }
        }
        if let Some(g) = &self.guest {
            for (remote, local) in &g.upload {
                v.push((format!("guest.upload.\"{remote}\""), local.clone()));
            }
        }
        if let Some(f) = &self.flash {
            if let Some(d) = &f.tftp_dir {
                v.push(("flash.tftp_dir".into(), d.clone()));
            }
            for (name, src) in &f.files {
                v.push((format!("flash.files.{name}"), src.clone()));
            }
        }
        v
    }
}

/// Where board files live: `$HIL_BOARDS` or `boards/` under the current directory.
pub fn boards_dir() -> PathBuf {
    std::env::var_os("HIL_BOARDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("boards"))
}

/// Finds `boards/<name>.toml`; a clear error lists what exists.
pub fn find(name: &str) -> Result<PathBuf, ConfigError> {
    let dir = boards_dir();
    let path = dir.join(format!("{name}.toml"));
    if path.is_file() {
        return Ok(path);
    }
    let known = list(&dir)
        .iter()
        .filter_map(|p| p.file_stem()?.to_str().map(String::from))
        .collect::<Vec<_>>();
    Err(ConfigError::new(
        &path,
        "",
        format!(
            "no such board file; expected one of: {}",
            if known.is_empty() {
                "(none)".into()
            } else {
                known.join(", ")
            }
        ),
    ))
}

/// All `*.toml` files in `dir`, sorted.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl Board {
    /// A copy with every `{placeholder}` replaced; an unknown or unset one names its key.
    pub fn expanded(&self, path: &Path, vars: &expand::Vars) -> Result<Board, ConfigError> {
        let mut b = self.clone();
        let ex = |key: &str, v: &mut String| -> Result<(), ConfigError> {
            *v = expand::expand(v, vars).map_err(|m| ConfigError::new(path, key, m))?;
            Ok(())
        };
        ex("console.device", &mut b.console.device)?;
        if let Some(q) = &mut b.qemu {
            if let Some(bios) = &mut q.bios {
                ex("qemu.bios", bios)?;
            }
            for (i, a) in q.args.iter_mut().enumerate() {
                ex(&format!("qemu.args[{i}]"), a)?;
            }
        }
        if let Some(s) = &mut b.ssh {
            ex("ssh.identity", &mut s.identity)?;
            if let Some(f) = &mut s.host_key_file {
                ex("ssh.host_key_file", f)?;
            }
        }
        if let Some(g) = &mut b.guest {
            for (remote, local) in g.upload.iter_mut() {
                ex(&format!("guest.upload.\"{remote}\""), local)?;
            }
        }
        if let Some(f) = &mut b.flash {
            if let Some(d) = &mut f.tftp_dir {
                ex("flash.tftp_dir", d)?;
            }
            for (name, src) in f.files.iter_mut() {
                ex(&format!("flash.files.{name}"), src)?;
            }
        }
        Ok(b)
    }

    /// The SSH target with its pinned host key, read from the board file or its key file.
    pub fn ssh_target(&self, path: &Path) -> Result<Option<crate::ssh::SshTarget>, ConfigError> {
        let Some(s) = &self.ssh else { return Ok(None) };
        let (key_text, key_name) = match (&s.host_key, &s.host_key_file) {
            (Some(k), _) => (k.clone(), "ssh.host_key"),
            (None, Some(f)) => (
                std::fs::read_to_string(f).map_err(|e| {
                    ConfigError::new(
                        path,
                        "ssh.host_key_file",
                        format!("cannot read {f}: {e}; expected the board's public host key file"),
                    )
                })?,
                "ssh.host_key_file",
            ),
            (None, None) => return Err(ConfigError::new(path, "ssh.host_key", "is missing")),
        };
        let (_, blob) = crate::ssh::parse_public_key(&key_text).ok_or_else(|| {
            ConfigError::new(
                path,
                key_name,
                "expected \"<type> <base64>\" as in an OpenSSH .pub file",
            )
        })?;
        Ok(Some(crate::ssh::SshTarget {
            host: s.host.clone(),
            port: s.port,
            user: s.user.clone(),
            identity: PathBuf::from(&s.identity),
            host_key: blob,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal board file; `console` and `power`/`qemu` tables are the parts under test.
    fn board(console: &str, power: &str) -> Result<Board, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.toml");
        let text = format!(
            r##"name = "b"
soc = "rk3588"
[console]
{console}
{power}
[bootloader]
kind = "u-boot"
prompt = "=> "
autoboot = "Hit any key"
interrupt = " "
timeout_s = 10
command_timeout_s = 10
boot_command = "booti"
[linux]
bootargs = ""
prompt = "# $"
boot_timeout_s = 10
shell_timeout_s = 10
"##
        );
        std::fs::write(&p, text).unwrap();
        Board::load(&p).map_err(|e| e.to_string())
    }

    const QEMU_PTY: &str = r#"[power]
backend = "qemu"
[qemu]
binary = "q"
machine = "virt"
cpu = "max"
smp = 1
memory_mb = 64
start_timeout_s = 5
args = []"#;
    const QEMU_RELAYED: &str = r#"[power]
backend = "qemu"
[qemu]
binary = "q"
machine = "virt"
cpu = "max"
smp = 1
memory_mb = 64
start_timeout_s = 5
args = ["-chardev", "socket,id=c,path={run_dir}/c.sock,reconnect=1", "-serial", "chardev:c"]"#;
    const MANUAL: &str = "[power]\nbackend = \"manual\"\ntimeout_s = 60";

    #[test]
    fn reopen_limit_defaults_for_device_paths_and_is_off_for_the_qemu_pty() {
        let b = board("device = \"/dev/serial/by-id/x\"\nbaud = 115200", MANUAL).unwrap();
        assert_eq!(
            b.console.reopen_within(),
            Some(std::time::Duration::from_secs(DEFAULT_REOPEN_TIMEOUT_S))
        );
        let b = board(
            "device = \"/dev/serial/by-id/x\"\nbaud = 115200\nreopen_timeout_s = 0",
            MANUAL,
        )
        .unwrap();
        assert_eq!(b.console.reopen_within(), None, "0 turns re-opening off");
        let b = board("device = \"qemu\"\nbaud = 115200", QEMU_PTY).unwrap();
        assert_eq!(b.console.reopen_within(), None);
    }

    #[test]
    fn reopen_limit_on_the_qemu_pty_or_absurdly_long_is_an_error() {
        let e = board(
            "device = \"qemu\"\nbaud = 115200\nreopen_timeout_s = 5",
            QEMU_PTY,
        )
        .unwrap_err();
        assert!(
            e.contains("console.reopen_timeout_s") && e.contains("never reopened"),
            "{e}"
        );
        let e = board(
            "device = \"/dev/serial/by-id/x\"\nbaud = 115200\nreopen_timeout_s = 86400",
            MANUAL,
        )
        .unwrap_err();
        assert!(e.contains("expected at most 3600"), "{e}");
    }

    #[test]
    fn qemu_board_may_relay_its_serial_to_a_device_path_but_not_leave_it_unfed() {
        let b = board(
            "device = \"{run_dir}/console-tty\"\nbaud = 115200\nreopen_timeout_s = 20",
            QEMU_RELAYED,
        )
        .unwrap();
        assert_eq!(b.console.reopen_within().unwrap().as_secs(), 20);
        // a path nothing in qemu.args feeds: the old mistake is still caught
        let e = board("device = \"/dev/serial/by-id/x\"\nbaud = 115200", QEMU_PTY).unwrap_err();
        assert!(
            e.contains("console.device") && e.contains("no -serial"),
            "{e}"
        );
        // hil's own pty and a -serial of the board file's would be two consoles
        let e = board("device = \"qemu\"\nbaud = 115200", QEMU_RELAYED).unwrap_err();
        assert!(e.contains("qemu.args") && e.contains("has -serial"), "{e}");
        // relative paths are still refused; a leading placeholder is not relative
        let e = board("device = \"console-tty\"\nbaud = 115200", MANUAL).unwrap_err();
        assert!(e.contains("absolute device path"), "{e}");
    }
}
