//! Board files (`boards/*.toml`): how to reach, power, boot and log into one board.

use super::console_ssh::{ConsoleSshCfg, SshConsoleAddr};
use super::error::{ConfigError, ConfigErrors};
use super::expand;
use super::limits::{SecsRange, BAUD_MAX, REOPEN_MAX_S};
use super::load::{parse_toml, read_text};
use super::serial_line::{Flow, SerialLine};
use super::validate::Validation;
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
    /// How long `hil lab up` holds the board (no process renews that lease: the board
    /// runs in the background until `hil lab down`, which gives it back earlier).
    #[serde(default = "default_up_ttl")]
    pub up_ttl_s: u64,
    /// Take the board out of service after this many runs in a row ended in an
    /// infrastructure error (a health run puts it back); 0, the default: never by itself.
    #[serde(default)]
    pub out_of_service_after: u32,
}

fn default_lease_ttl() -> u64 {
    60
}

fn default_up_ttl() -> u64 {
    12 * 3600
}

impl Default for LeaseCfg {
    fn default() -> Self {
        LeaseCfg {
            ttl_s: default_lease_ttl(),
            up_ttl_s: default_up_ttl(),
            out_of_service_after: 0,
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
    /// `qemu` (the pty the QEMU power backend reports), a serial device path (use
    /// `/dev/serial/by-id/...` or by-path, never `ttyUSBn`: it moves on re-enumeration),
    /// a USB-serial adapter by identity (`usb-serial:SERIAL[:ifNN]`,
    /// `usb-path:PORT[:C.I]`, found through sysfs at every open), a network console
    /// `rfc2217://`, `telnet://`, `tcp://HOST:PORT`, or a console server reached by SSH,
    /// `ssh://USER@HOST[:PORT]` with a `[console.ssh]` table ([`ConsoleDevice`]).
    pub device: String,
    pub baud: u32,
    /// Data bits, parity and stop bits, `"8N1"` (the default) or e.g. `"7E1"`; set where
    /// hil owns the line (a local tty, RFC 2217).
    pub format: Option<String>,
    /// `"none"` (default), `"rts-cts"` or `"xon-xoff"`.
    #[serde(default)]
    pub flow: Flow,
    /// A device-path console whose transport vanishes (USB re-enumeration) is reopened if
    /// the same path comes back within this many seconds, a network console reconnected
    /// if its address accepts again in that time; 0 closes it at once. Default
    /// [`DEFAULT_REOPEN_TIMEOUT_S`]. Not for `qemu`: that pty dies with QEMU.
    pub reopen_timeout_s: Option<u64>,
    /// How to log in to the console server of an `ssh://` device, and what to run there.
    pub ssh: Option<ConsoleSshCfg>,
    /// The console server's login, made from `device` and `ssh` when the placeholders are
    /// expanded ([`Board::expanded`], which reads `ssh.host_key_file`).
    #[serde(skip)]
    pub ssh_login: Option<crate::ssh::SshTarget>,
}

/// What `console.device` names, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleDevice {
    /// The pty the QEMU power backend makes.
    Qemu,
    /// The pty the fake board makes.
    Fake,
    /// A local serial device (or pty) path.
    Path(String),
    /// A console exported over the network (ser2net and the like).
    Net(NetConsole),
    /// A local USB-serial adapter by its identity, its tty found through sysfs at every
    /// open (console/usb.rs).
    Usb(UsbAdapter),
    /// A console server reached by SSH (config/console_ssh.rs).
    Ssh(SshConsoleAddr),
}

/// A USB-serial adapter named by what survives re-enumeration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsbAdapter {
    /// `usb-serial:SERIAL[:ifNN]`: the device's USB serial number, and for a multi-port
    /// adapter the interface (`bInterfaceNumber`, hex as in /dev/serial/by-id's `-ifNN`).
    Serial {
        serial: String,
        interface: Option<u8>,
    },
    /// `usb-path:PORT[:CONFIG.INTERFACE]`: the USB port path as sysfs names the device
    /// (`1-1.4`), and optionally one of its interfaces (`1.0`).
    Path {
        port: String,
        interface: Option<String>,
    },
}

impl UsbAdapter {
    /// What is looked for, in words: `the one with serial number FT4ABCDE, interface 01`.
    pub fn wanted(&self) -> String {
        match self {
            UsbAdapter::Serial { serial, interface } => format!(
                "the one with serial number {serial}{}",
                interface.map_or(String::new(), |n| format!(", interface {n:02x}"))
            ),
            UsbAdapter::Path { port, interface } => format!(
                "the one on USB port {port}{}",
                interface
                    .as_ref()
                    .map_or(String::new(), |i| format!(", interface {i}"))
            ),
        }
    }

    fn parse_serial(d: &str, rest: &str) -> Result<UsbAdapter, String> {
        let expected = "expected usb-serial:SERIAL or usb-serial:SERIAL:ifNN with the adapter's USB serial number (ID_SERIAL_SHORT in `udevadm info /dev/ttyUSB0`) and, for a multi-port adapter, its interface as in /dev/serial/by-id's -ifNN, e.g. usb-serial:FT4ABCDE:if01";
        let (serial, interface) = match rest.rsplit_once(':') {
            None => (rest, None),
            Some((s, i)) => {
                let n = i
                    .strip_prefix("if")
                    .filter(|h| (1..=2).contains(&h.len()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match n {
                    Some(n) => (s, Some(n)),
                    None => {
                        return Err(format!(
                            "is \"{d}\"; \"{i}\" after the serial number is not an interface: {expected}"
                        ))
                    }
                }
            }
        };
        if serial.is_empty() {
            return Err(format!("is \"{d}\" with no serial number; {expected}"));
        }
        if serial
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == ':')
        {
            return Err(format!(
                "is \"{d}\"; \"{serial}\" is not a USB serial number (no spaces, `/` or `:`): {expected}"
            ));
        }
        Ok(UsbAdapter::Serial {
            serial: serial.to_string(),
            interface,
        })
    }

    fn parse_path(d: &str, rest: &str) -> Result<UsbAdapter, String> {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let (port, interface) = match rest.split_once(':') {
            Some((p, i)) => (p, Some(i)),
            None => (rest, None),
        };
        let port_ok = port
            .split_once('-')
            .is_some_and(|(bus, hubs)| digits(bus) && hubs.split('.').all(digits));
        let iface_ok = interface.is_none_or(|i| {
            i.split_once('.')
                .is_some_and(|(c, n)| digits(c) && digits(n))
        });
        if !port_ok || !iface_ok {
            return Err(format!(
                "is \"{d}\"; expected usb-path:PORT or usb-path:PORT:CONFIG.INTERFACE with the adapter's USB port path as sysfs names it (`ls /sys/bus/usb/devices`), e.g. usb-path:1-1.4 or usb-path:1-1.4:1.0"
            ));
        }
        Ok(UsbAdapter::Path {
            port: port.to_string(),
            interface: interface.map(str::to_string),
        })
    }
}

impl std::fmt::Display for UsbAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsbAdapter::Serial { serial, interface } => {
                write!(f, "usb-serial:{serial}")?;
                match interface {
                    Some(n) => write!(f, ":if{n:02x}"),
                    None => Ok(()),
                }
            }
            UsbAdapter::Path { port, interface } => {
                write!(f, "usb-path:{port}")?;
                match interface {
                    Some(i) => write!(f, ":{i}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// How a network console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetProto {
    /// Telnet with RFC 2217 COM-PORT-OPTION: hil sets the line to `console.baud` 8N1.
    Rfc2217,
    /// Telnet: the exporter's own line settings.
    Telnet,
    /// Raw TCP: bytes as they are, no negotiation.
    Tcp,
}

impl NetProto {
    pub fn scheme(self) -> &'static str {
        match self {
            NetProto::Rfc2217 => "rfc2217",
            NetProto::Telnet => "telnet",
            NetProto::Tcp => "tcp",
        }
    }
}

/// `SCHEME://HOST:PORT`. The host is an IP address or a name (resolved at connect time);
/// an IPv6 address is written in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConsole {
    pub proto: NetProto,
    pub host: String,
    pub port: u16,
}

impl NetConsole {
    /// `HOST:PORT` as a socket address is written (`[::1]:3000` for IPv6).
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for NetConsole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.proto.scheme(), self.addr())
    }
}

const URL_FORMS: &str =
    "rfc2217://HOST:PORT, telnet://HOST:PORT, tcp://HOST:PORT or ssh://USER@HOST[:PORT]";

impl ConsoleDevice {
    /// Parses a `console.device` value; the error says what to write instead.
    pub fn parse(d: &str) -> Result<ConsoleDevice, String> {
        match d {
            "qemu" => return Ok(ConsoleDevice::Qemu),
            "fake" => return Ok(ConsoleDevice::Fake),
            _ => {}
        }
        if let Some(rest) = d.strip_prefix("usb-serial:") {
            return UsbAdapter::parse_serial(d, rest).map(ConsoleDevice::Usb);
        }
        if let Some(rest) = d.strip_prefix("usb-path:") {
            return UsbAdapter::parse_path(d, rest).map(ConsoleDevice::Usb);
        }
        let Some((scheme, rest)) = d.split_once("://") else {
            return Ok(ConsoleDevice::Path(d.to_string()));
        };
        let proto = match scheme {
            "ssh" => return super::console_ssh::parse_addr(d, rest).map(ConsoleDevice::Ssh),
            "rfc2217" => NetProto::Rfc2217,
            "telnet" => NetProto::Telnet,
            "tcp" => NetProto::Tcp,
            _ => {
                return Err(format!(
                    "is \"{d}\", a URL with the unknown scheme \"{scheme}\"; expected {URL_FORMS} (rfc2217 for a ser2net port in telnet(rfc2217) mode), or a device path"
                ))
            }
        };
        let example = format!("{scheme}://192.0.2.10:3001");
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let Some((h, p)) = v6.split_once(']') else {
                return Err(format!("is \"{d}\"; an IPv6 address needs its closing bracket: expected {scheme}://[ADDR]:PORT"));
            };
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!(
                    "is \"{d}\"; \"{h}\" in brackets is not an IPv6 address"
                ));
            }
            (h, p.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(format!(
                "is \"{d}\" with no host; expected {scheme}://HOST:PORT, e.g. {example}"
            ));
        }
        let host_ok = host.contains(':')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
        if !host_ok {
            return Err(format!("is \"{d}\"; \"{host}\" is not a host name or IP address (no path, user or options after the port): expected {scheme}://HOST:PORT, e.g. {example}"));
        }
        let Some(port) = port.filter(|p| !p.is_empty()) else {
            return Err(format!("is \"{d}\" with no port; expected {scheme}://HOST:PORT with the exporter's TCP port (ser2net's accepter port), e.g. {example}"));
        };
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(format!("is \"{d}\"; the port \"{port}\" is not a TCP port: expected 1 to 65535 (nothing may follow it), e.g. {example}"))
            }
        };
        Ok(ConsoleDevice::Net(NetConsole {
            proto,
            host: host.to_string(),
            port,
        }))
    }
}

/// A USB-serial adapter re-enumerates in a few seconds; a hub reset can take longer.
pub const DEFAULT_REOPEN_TIMEOUT_S: u64 = 30;

/// `console.reopen_timeout_s`: the one board duration where 0 has a meaning.
const REOPEN_RANGE: SecsRange = SecsRange {
    max: REOPEN_MAX_S,
    zero: Some("turns re-opening off"),
};

impl ConsoleCfg {
    /// The line settings (validation has refused a `format` that does not parse).
    pub fn line(&self) -> SerialLine {
        let format = self.format.as_deref().unwrap_or("8N1");
        SerialLine::parse(self.baud, format, self.flow)
            .unwrap_or_else(|_| SerialLine::from(self.baud))
    }

    /// `device`, parsed (validation has refused a value that does not parse; an
    /// unparsable one counts as a path here and fails to open under its own name).
    pub fn target(&self) -> ConsoleDevice {
        ConsoleDevice::parse(&self.device)
            .unwrap_or_else(|_| ConsoleDevice::Path(self.device.clone()))
    }

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
    /// An outlet of a PDU that a pdudaemon serves over HTTP (power/pdudaemon.rs).
    Pdudaemon,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerCfg {
    pub backend: PowerBackend,
    /// `command`: shell commands run on the lab host (relay, PDU).
    pub on: Option<String>,
    pub off: Option<String>,
    pub cycle: Option<String>,
    /// `command`: limit per command; `manual`: how long to wait for the operator;
    /// `pdudaemon`: limit per HTTP request.
    pub timeout_s: Option<u64>,
    /// `pdudaemon`: where the daemon listens (a host name or an IP address) and its port.
    pub host: Option<String>,
    pub port: Option<u32>,
    /// `pdudaemon`: the PDU's name in pdudaemon's configuration (its `pdus` table).
    pub pdu: Option<String>,
    /// `pdudaemon`: the board's outlet (port number) on that PDU, from 1.
    pub outlet: Option<u32>,
    /// `pdudaemon`: how long a cycle keeps the outlet off (pdudaemon's reboot delay).
    pub cycle_delay_s: Option<u64>,
}

/// pdudaemon's own port.
pub const PDUDAEMON_PORT: u16 = 16421;

/// pdudaemon's own reboot delay when a request gives none.
pub const PDUDAEMON_CYCLE_DELAY_S: u64 = 5;

/// `power.cycle_delay_s`: an outlet off for longer than this is not a cycle but an outage.
const CYCLE_DELAY_RANGE: SecsRange = SecsRange {
    max: 600,
    zero: None,
};

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

pub use super::flash::{FlashBackend, FlashCfg};

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

impl LeaseCfg {
    fn validate(&self, v: &mut Validation) {
        v.secs("lease.ttl_s", self.ttl_s, SecsRange::LEASE);
        // A board kept up for interactive work: up to a suite's longest deadline.
        v.secs("lease.up_ttl_s", self.up_ttl_s, SecsRange::JOB);
        if self.out_of_service_after > MAX_OUT_OF_SERVICE_AFTER {
            v.err(
                "lease.out_of_service_after",
                format!(
                    "{} runs: at most {MAX_OUT_OF_SERVICE_AFTER} (0 never takes the board out of service by itself)",
                    self.out_of_service_after
                ),
            );
        }
    }
}

/// More infrastructure errors in a row than this would never take a board out of service
/// in practice: a typo, not a policy.
const MAX_OUT_OF_SERVICE_AFTER: u32 = 1000;

/// Each infrastructure retry power-cycles and boots the board again.
const MAX_INFRA_RETRIES: u32 = 10;

impl RetryCfg {
    fn validate(&self, v: &mut Validation) {
        if self.infrastructure > MAX_INFRA_RETRIES {
            let msg = format!(
                "is {}; expected at most {MAX_INFRA_RETRIES} (each retry power-cycles and boots the board again)",
                self.infrastructure
            );
            v.err("retry.infrastructure", msg);
        }
    }
}

impl ConsoleCfg {
    fn validate(&self, v: &mut Validation) {
        self.validate_device(v);
        self.validate_baud(v);
        self.validate_reopen(v);
        self.validate_ssh(v);
        self.validate_line(v);
    }

    /// A format that parses, and line settings only where hil sets the line.
    fn validate_line(&self, v: &mut Validation) {
        if let Some(f) = &self.format {
            if let Err(m) = SerialLine::parse(self.baud, f, self.flow) {
                v.err("console.format", m);
            }
        }
        let set = |key: &str| match key {
            "console.format" => self.format.as_deref().is_some_and(|f| f != "8N1"),
            _ => self.flow != Flow::None,
        };
        let elsewhere = match ConsoleDevice::parse(&self.device) {
            Ok(ConsoleDevice::Net(n)) if n.proto != NetProto::Rfc2217 => {
                Some(format!("{n} passes bytes only; set the line on the exporter (ser2net's connector, e.g. serialdev,/dev/ttyUSB0,115200n81), or use rfc2217://"))
            }
            Ok(ConsoleDevice::Ssh(a)) => Some(format!(
                "{a} runs console.ssh.command, which sets the line itself (e.g. microcom -s BAUD)"
            )),
            _ => None,
        };
        if let Some(why) = elsewhere {
            for key in ["console.format", "console.flow"] {
                if set(key) {
                    v.err(
                        key,
                        format!("is set, but hil cannot set the line of this console: {why}"),
                    );
                }
            }
        }
    }

    /// `[console.ssh]` goes with an `ssh://` device, and only with one.
    fn validate_ssh(&self, v: &mut Validation) {
        let is_ssh = matches!(
            ConsoleDevice::parse(&self.device),
            Ok(ConsoleDevice::Ssh(_))
        );
        match (&self.ssh, is_ssh) {
            (Some(s), true) => s.validate(v),
            (None, true) => v.err(
                "console.ssh",
                "is missing; an ssh:// console needs a [console.ssh] table with command, identity and host_key",
            ),
            (Some(_), false) => v.err(
                "console.ssh",
                format!("is set but console.device is \"{}\"; expected it only with console.device = \"ssh://USER@HOST[:PORT]\"", self.device),
            ),
            (None, false) => {}
        }
    }

    /// `qemu`, `fake`, a network URL, or an absolute path that stays the same across USB
    /// re-enumeration.
    fn validate_device(&self, v: &mut Validation) {
        let d = &self.device;
        match ConsoleDevice::parse(d) {
            Err(m) => return v.err("console.device", m),
            Ok(ConsoleDevice::Net(_) | ConsoleDevice::Usb(_) | ConsoleDevice::Ssh(_)) => return,
            Ok(_) => {}
        }
        // A leading placeholder ({run_dir}, {board_dir}) expands to an absolute path.
        if d != "qemu" && d != "fake" && !d.starts_with('/') && !d.starts_with('{') {
            v.err("console.device", format!("is \"{d}\"; expected \"qemu\", \"fake\", an absolute device path such as /dev/serial/by-id/..., a USB adapter (usb-serial:SERIAL[:ifNN], usb-path:PORT[:C.I]) or a network console ({URL_FORMS})"));
        }
        if d.starts_with("/dev/ttyUSB") || d.starts_with("/dev/ttyACM") {
            v.err("console.device", format!("is \"{d}\", a name that changes when USB re-enumerates; expected a /dev/serial/by-id/ or /dev/serial/by-path/ link, or the adapter by its identity: usb-serial:SERIAL[:ifNN] or usb-path:PORT[:C.I]"));
        }
    }

    fn validate_baud(&self, v: &mut Validation) {
        if !(1..=BAUD_MAX).contains(&self.baud) {
            let msg = format!(
                "is {}; expected the console's line rate, 1 to {BAUD_MAX} baud (115200 or 1500000 on most boards)",
                self.baud
            );
            v.err("console.baud", msg);
        }
    }

    fn validate_reopen(&self, v: &mut Validation) {
        let Some(s) = self.reopen_timeout_s else {
            return;
        };
        if self.device == "qemu" {
            v.err("console.reopen_timeout_s", "is set but console.device is \"qemu\"; the pty QEMU creates dies with QEMU and is never reopened: expected this key only with a device path");
        } else {
            v.secs("console.reopen_timeout_s", s, REOPEN_RANGE);
        }
    }
}

impl PowerCfg {
    fn validate(&self, v: &mut Validation) {
        self.validate_commands(v);
        self.validate_timeout(v);
        self.validate_pdudaemon(v);
    }

    /// `pdudaemon` needs where the daemon is and which outlet is the board's; other
    /// backends would silently ignore these keys.
    fn validate_pdudaemon(&self, v: &mut Validation) {
        if self.backend != PowerBackend::Pdudaemon {
            let set = [
                ("power.host", self.host.is_some()),
                ("power.port", self.port.is_some()),
                ("power.pdu", self.pdu.is_some()),
                ("power.outlet", self.outlet.is_some()),
                ("power.cycle_delay_s", self.cycle_delay_s.is_some()),
            ];
            for (key, _) in set.iter().filter(|(_, s)| *s) {
                v.err(*key, format!("is set but power.backend = \"{}\", which does not talk to pdudaemon: expected it only with backend = \"pdudaemon\"; remove it", self.backend.name()));
            }
            return;
        }
        match &self.host {
            None => v.err("power.host", "is missing; expected the host pdudaemon listens on, such as \"127.0.0.1\" or \"pdu-host.lab\""),
            Some(h) => {
                if let Some(m) = host_problem(h) {
                    v.err("power.host", m);
                }
            }
        }
        if let Some(p) = self.port {
            if !(1..=65535).contains(&p) {
                v.err("power.port", format!("is {p}; expected pdudaemon's TCP port, 1 to 65535 (its default is {PDUDAEMON_PORT}: leave the key out for that)"));
            }
        }
        match &self.pdu {
            None => v.err("power.pdu", "is missing; expected the PDU's name in pdudaemon's configuration (a key of its \"pdus\" table)"),
            Some(p) => {
                v.not_empty("power.pdu", p, "the PDU's name in pdudaemon's configuration (a key of its \"pdus\" table)");
                if let Some((at, c)) = super::validate::control_char(p) {
                    v.err("power.pdu", format!("contains {} at character {at}; expected the PDU's name as pdudaemon's configuration spells it", super::validate::describe_char(c)));
                }
            }
        }
        match self.outlet {
            None => v.err("power.outlet", "is missing; expected the board's outlet number on the PDU, from 1"),
            Some(0) => v.err("power.outlet", "is 0; expected the board's outlet number on the PDU, from 1 (PDUs count outlets from 1)"),
            Some(_) => {}
        }
        if let Some(d) = self.cycle_delay_s {
            v.secs("power.cycle_delay_s", d, CYCLE_DELAY_RANGE);
        }
    }

    /// pdudaemon's port, its default when the board file gives none.
    pub fn pdudaemon_port(&self) -> u16 {
        self.port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(PDUDAEMON_PORT)
    }

    /// `command` needs on and off; other backends run no commands, so the keys would be
    /// silently ignored.
    fn validate_commands(&self, v: &mut Validation) {
        let commands = [
            ("power.on", &self.on, true),
            ("power.off", &self.off, true),
            ("power.cycle", &self.cycle, false),
        ];
        for (key, cmd, needed) in commands {
            match (self.backend, cmd) {
                (PowerBackend::Command, None) if needed => v.err(
                    key,
                    "is missing; expected a shell command when power.backend = \"command\"",
                ),
                (PowerBackend::Command, Some(c)) => {
                    v.not_empty(key, c, "a shell command run on the lab host")
                }
                (_, Some(_)) => v.err(
                    key,
                    format!(
                        "is set but power.backend = \"{}\", which runs no commands: expected it only with backend = \"command\"; remove it",
                        self.backend.name()
                    ),
                ),
                _ => {}
            }
        }
    }

    /// `command`: the limit per command; `manual`: how long to wait for the operator.
    fn validate_timeout(&self, v: &mut Validation) {
        let what = match self.backend {
            PowerBackend::Command => "seconds allowed per power command",
            PowerBackend::Manual => "seconds to wait for the operator",
            PowerBackend::Pdudaemon => "seconds allowed per request to pdudaemon",
            PowerBackend::Qemu | PowerBackend::Fake => return,
        };
        match self.timeout_s {
            None => v.err("power.timeout_s", format!("is missing; expected {what}")),
            Some(t) => v.secs("power.timeout_s", t, SecsRange::STEP),
        }
    }
}

impl PowerBackend {
    pub fn name(self) -> &'static str {
        match self {
            PowerBackend::Qemu => "qemu",
            PowerBackend::Command => "command",
            PowerBackend::Manual => "manual",
            PowerBackend::Fake => "fake",
            PowerBackend::Pdudaemon => "pdudaemon",
        }
    }
}

/// Why `host` is not a literal IP address or a DNS name, or `None` if it is one. A URL, a
/// `host:port` or a path would be sent as part of the host name and never connect.
pub fn host_problem(host: &str) -> Option<String> {
    let expected = "expected a host name or an IP address only, such as \"127.0.0.1\" or \"pdu-host.lab\" (no scheme, port or path: the port goes in power.port)";
    if host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let name = host.strip_suffix('.').unwrap_or(host);
    if !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok) {
        return None;
    }
    Some(format!("is {host:?}; {expected}"))
}

impl QemuCfg {
    fn validate(&self, v: &mut Validation) {
        v.not_empty(
            "qemu.binary",
            &self.binary,
            "the QEMU program, such as \"qemu-system-aarch64\"",
        );
        v.not_empty(
            "qemu.machine",
            &self.machine,
            "a -M value, such as \"virt\"",
        );
        v.not_empty("qemu.cpu", &self.cpu, "a -cpu value, such as \"max\"");
        if self.smp == 0 {
            v.err("qemu.smp", "is 0; expected at least 1 CPU");
        }
        if self.memory_mb == 0 {
            v.err(
                "qemu.memory_mb",
                "is 0; expected the board's memory in MiB, such as 2048",
            );
        }
        v.secs(
            "qemu.start_timeout_s",
            self.start_timeout_s,
            SecsRange::STEP,
        );
    }
}

impl BootloaderCfg {
    fn validate(&self, v: &mut Validation) {
        self.validate_waits(v);
        self.validate_commands(v);
        v.secs("bootloader.timeout_s", self.timeout_s, SecsRange::STEP);
        v.secs(
            "bootloader.command_timeout_s",
            self.command_timeout_s,
            SecsRange::STEP,
        );
    }

    /// What hil waits for and types to stop autoboot. `interrupt` is a key press by design
    /// (`" "`, or `"\u0003"` for Ctrl-C), so control characters are allowed there.
    fn validate_waits(&self, v: &mut Validation) {
        let literal = "(an empty text matches at once, before the board printed anything)";
        v.not_empty(
            "bootloader.prompt",
            &self.prompt,
            &format!("the bootloader's prompt as printed, such as \"=> \" {literal}"),
        );
        v.not_empty(
            "bootloader.autoboot",
            &self.autoboot,
            &format!(
                "the autoboot countdown text, such as \"Hit any key to stop autoboot\" {literal}"
            ),
        );
        if self.interrupt.is_empty() {
            v.err("bootloader.interrupt", "is empty; expected the key that stops autoboot, such as \" \" or \"\\u0003\" (Ctrl-C)");
        }
    }

    /// Typed at the prompt: no control characters, and no empty line (U-Boot repeats the
    /// previous command on one).
    fn validate_commands(&self, v: &mut Validation) {
        for (i, c) in self.commands.iter().enumerate() {
            let key = format!("bootloader.commands[{i}]");
            v.not_empty(&key, c, "a bootloader command (an empty line makes U-Boot repeat the previous command): remove the entry");
            v.typed(&key, c);
        }
        v.not_empty(
            "bootloader.boot_command",
            &self.boot_command,
            "the command that starts Linux, such as \"booti ${kernel_addr_r} - ${fdt_addr}\"",
        );
        v.typed("bootloader.boot_command", &self.boot_command);
    }
}

impl LinuxCfg {
    fn validate(&self, v: &mut Validation) {
        self.validate_bootargs(v);
        if let Some(r) = &self.ready {
            v.pattern("linux.ready", r, "hil: board ready");
        }
        v.pattern("linux.prompt", &self.prompt, "# $");
        v.secs("linux.boot_timeout_s", self.boot_timeout_s, SecsRange::STEP);
        v.secs(
            "linux.shell_timeout_s",
            self.shell_timeout_s,
            SecsRange::STEP,
        );
    }

    /// Typed as `setenv bootargs '...'` at the bootloader prompt.
    fn validate_bootargs(&self, v: &mut Validation) {
        v.typed("linux.bootargs", &self.bootargs);
        if self.bootargs.contains('\'') {
            v.err("linux.bootargs", "contains a single quote; hil types `setenv bootargs '<bootargs>'`, so a quote would end the value early: expected no single quotes (spaces need none)");
        }
    }
}

impl SshCfg {
    fn validate(&self, v: &mut Validation) {
        v.not_empty("ssh.host", &self.host, "the board's host name or address");
        v.not_empty("ssh.user", &self.user, "the login user, such as \"root\"");
        v.not_empty(
            "ssh.identity",
            &self.identity,
            "the private key file to log in with",
        );
        if self.port == 0 {
            v.err(
                "ssh.port",
                "is 0; expected the board's SSH port, such as 22",
            );
        }
        v.secs(
            "ssh.connect_timeout_s",
            self.connect_timeout_s,
            SecsRange::STEP,
        );
        self.validate_host_key(v);
    }

    /// The host key is pinned: exactly one of the key itself or a file holding it.
    fn validate_host_key(&self, v: &mut Validation) {
        match (&self.host_key, &self.host_key_file) {
            (None, None) => v.err("ssh.host_key", "is missing; expected the board's pinned host key (\"ssh-ed25519 AAAA...\") or ssh.host_key_file"),
            (Some(_), Some(_)) => v.err("ssh.host_key_file", "is set together with ssh.host_key; expected only one: remove one of them"),
            (Some(k), None) if crate::ssh::parse_public_key(k).is_none() => {
                v.err("ssh.host_key", "expected \"<type> <base64>\" as in an OpenSSH .pub file");
            }
            _ => {}
        }
    }
}

impl GuestCfg {
    fn validate(&self, v: &mut Validation) {
        v.not_empty(
            "guest.binary",
            &self.binary,
            "the QEMU program on the board",
        );
        if self.qmp_port == 0 {
            v.err(
                "guest.qmp_port",
                "is 0; expected a free TCP port on the board's loopback, such as 4444",
            );
        }
        if let Some(r) = &self.ready {
            v.pattern("guest.ready", r, "hil: guest ready");
        }
        v.pattern("guest.prompt", &self.prompt, "# $");
        v.secs("guest.boot_timeout_s", self.boot_timeout_s, SecsRange::STEP);
        v.secs(
            "guest.shell_timeout_s",
            self.shell_timeout_s,
            SecsRange::STEP,
        );
    }
}

impl DeviceCfg {
    /// Found by address, or by vendor:device id (narrowed by class).
    fn validate(&self, v: &mut Validation, key: &str) {
        match (&self.address, &self.id) {
            (None, None) => v.err(key, "has neither address nor id; expected address = \"0000:00:03.0\" or id = \"1b36:0010\""),
            (Some(a), _) if crate::vfio::parse_address(a).is_none() => {
                v.err(format!("{key}.address"), format!("is \"{a}\"; expected a PCI address like 0000:00:03.0"))
            }
            (_, Some(id)) if crate::vfio::parse_id(id).is_none() => {
                v.err(format!("{key}.id"), format!("is \"{id}\"; expected vendor:device in hex like 1b36:0010"))
            }
            _ => {}
        }
        if let Some(c) = &self.class {
            let ok = c.strip_prefix("0x").is_some_and(|h| {
                !h.is_empty() && h.len() <= 6 && h.chars().all(|c| c.is_ascii_hexdigit())
            });
            if !ok {
                v.err(
                    format!("{key}.class"),
                    format!("is \"{c}\"; expected a hex class prefix like 0x0108"),
                );
            }
        }
    }
}

impl Board {
    /// Loads and validates `path`; every problem names the file and key.
    pub fn load(path: &Path) -> Result<Board, ConfigErrors> {
        let one = |e| ConfigErrors(vec![e]);
        let text = read_text(path).map_err(one)?;
        let board: Board =
            parse_toml(path, &text).map_err(|e| one(super::flash::locate_error(&text, e)))?;
        let errs = board.validate(path);
        if errs.is_empty() {
            Ok(board)
        } else {
            Err(ConfigErrors(errs))
        }
    }

    /// What serde cannot check: ranges, non-empty text, text typed on the console, keys
    /// that go together. One small validator per table or rule; all problems are collected.
    fn validate(&self, path: &Path) -> Vec<ConfigError> {
        let mut v = Validation::new(path);
        self.validate_name(&mut v);
        self.lease.validate(&mut v);
        self.retry.validate(&mut v);
        self.console.validate(&mut v);
        self.power.validate(&mut v);
        self.validate_power_tables(&mut v);
        self.validate_console_source(&mut v);
        if let Some(q) = &self.qemu {
            q.validate(&mut v);
        }
        if let Some(f) = &self.flash {
            f.validate(&mut v);
        }
        self.bootloader.validate(&mut v);
        self.linux.validate(&mut v);
        self.validate_devices(&mut v);
        self.validate_guest(&mut v);
        if let Some(s) = &self.ssh {
            s.validate(&mut v);
        }
        self.validate_placeholders(&mut v);
        if let Some(d) = &self.dma {
            super::pcie::validate_dma(path, d, v.errors_mut());
        }
        if let Some(t) = &self.pci_topology {
            super::pcie::validate_topology(path, t, v.errors_mut());
        }
        super::fake::validate(path, self, v.errors_mut());
        v.into_errors()
    }

    /// `--board NAME` finds `boards/NAME.toml`, so the two must agree.
    fn validate_name(&self, v: &mut Validation) {
        let Some(stem) = v.path().file_stem().and_then(|s| s.to_str()) else {
            return;
        };
        if stem != self.name {
            let msg = format!(
                "is \"{}\" but the file is {stem}.toml; expected them to match: rename one",
                self.name
            );
            v.err("name", msg);
        }
    }

    /// The power backend and the tables it needs.
    fn validate_power_tables(&self, v: &mut Validation) {
        if self.power.backend == PowerBackend::Qemu && self.qemu.is_none() {
            v.err(
                "qemu",
                "is missing; expected a [qemu] table when power.backend = \"qemu\"",
            );
        }
        if self.console.device == "qemu" && self.power.backend != PowerBackend::Qemu {
            v.err(
                "console.device",
                "is \"qemu\" but power.backend is not \"qemu\"; expected a serial device path",
            );
        }
    }

    /// A QEMU board's console: hil's own pty (`"qemu"`: hil adds `-serial`), or a device
    /// path that `qemu.args` wire the serial port to (a socket chardev and a relay).
    fn validate_console_source(&self, v: &mut Validation) {
        let Some(q) = self
            .qemu
            .as_ref()
            .filter(|_| self.power.backend == PowerBackend::Qemu)
        else {
            return;
        };
        let serial_in_args = q.args.iter().any(|a| a == "-serial");
        if self.console.device == "qemu" && serial_in_args {
            v.err("qemu.args", "has -serial while console.device = \"qemu\"; hil adds the console's -serial itself: expected no -serial, or console.device set to the path that serial port is relayed to");
        }
        if self.console.device != "qemu" && !serial_in_args {
            v.err("console.device", format!("is \"{}\" with power.backend = \"qemu\", but qemu.args has no -serial, so nothing feeds that device; expected \"qemu\" (hil connects QEMU's serial port to a pty) or a -chardev/-serial pair in qemu.args that serves it", self.console.device));
        }
    }

    /// Devices to pass through: unique names, and an address or an id to find each by.
    fn validate_devices(&self, v: &mut Validation) {
        let mut names = std::collections::HashSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            let key = format!("device[{i}]");
            if !names.insert(d.name.as_str()) {
                let msg = format!("\"{}\" is used twice; expected unique device names", d.name);
                v.err(format!("{key}.name"), msg);
            }
            d.validate(v, &key);
        }
    }

    /// The guest runs on the board, started over SSH.
    fn validate_guest(&self, v: &mut Validation) {
        let Some(g) = &self.guest else { return };
        g.validate(v);
        if self.ssh.is_none() {
            v.err(
                "guest",
                "needs an [ssh] table: the guest is started on the board over SSH; add [ssh]",
            );
        }
    }

    /// Placeholders: only known names.
    fn validate_placeholders(&self, v: &mut Validation) {
        for (key, value) in self.placeholder_fields() {
            if let Some(p) = expand::unknown_placeholder(&value) {
                let msg = format!(
                    "uses unknown placeholder {{{p}}}; expected one of {}",
                    expand::known_list()
                );
                v.err(key, msg);
            }
        }
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
        if let Some(s) = &self.console.ssh {
            v.push(("console.ssh.identity".into(), s.identity.clone()));
            if let Some(f) = &s.host_key_file {
                v.push(("console.ssh.host_key_file".into(), f.clone()));
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
            v.extend(f.paths());
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
        if let Some(s) = &mut b.console.ssh {
            ex("console.ssh.identity", &mut s.identity)?;
            if let Some(f) = &mut s.host_key_file {
                ex("console.ssh.host_key_file", f)?;
            }
        }
        if let (Ok(ConsoleDevice::Ssh(addr)), Some(cfg)) =
            (ConsoleDevice::parse(&b.console.device), &b.console.ssh)
        {
            b.console.ssh_login = Some(cfg.target(&addr, path)?);
        }
        if let Some(q) = &mut b.qemu {
            if let Some(bios) = &mut q.bios {
                ex("qemu.bios", bios)?;
            }
            let mut previous: Option<String> = None;
            for (i, a) in q.args.iter_mut().enumerate() {
                let template = a.clone();
                *a = expand::expand_qemu_arg(a, previous.as_deref(), vars)
                    .map_err(|m| ConfigError::new(path, format!("qemu.args[{i}]"), m))?;
                previous = Some(template);
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
            for (key, value) in f.paths_mut() {
                ex(&key, value)?;
            }
        }
        Ok(b)
    }

    /// The SSH target with its pinned host key, read from the board file or its key file.
    pub fn ssh_target(&self, path: &Path) -> Result<Option<crate::ssh::SshTarget>, ConfigError> {
        let Some(s) = &self.ssh else { return Ok(None) };
        let blob = super::host_key::pinned(
            path,
            s.host_key.as_deref(),
            s.host_key_file.as_deref(),
            "ssh",
        )?;
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
    fn a_console_server_console_needs_its_table_and_gets_a_pinned_login() {
        let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fake-board");
        let pub_line = std::fs::read_to_string(keys.join("ssh_host_ed25519.pub")).unwrap();
        let console =
            |device: &str, table: &str| format!("device = \"{device}\"\nbaud = 115200\n{table}");
        let table = format!(
            "[console.ssh]\ncommand = \"microcom -s 115200 /dev/ttyUSB3\"\nidentity = \"/k\"\nhost_key_file = \"{}\"\n",
            keys.join("ssh_host_ed25519.pub").display()
        );
        let b = board(&console("ssh://cs@192.0.2.20:2222", &table), MANUAL).unwrap();
        assert!(b.console.ssh_login.is_none(), "made when expanded");
        let b = b
            .expanded(Path::new("b.toml"), &expand::Vars::new())
            .unwrap();
        let login = b.console.ssh_login.unwrap();
        assert_eq!(
            (login.user.as_str(), login.host.as_str(), login.port),
            ("cs", "192.0.2.20", 2222)
        );
        assert_eq!(
            login.host_key,
            crate::ssh::parse_public_key(&pub_line).unwrap().1
        );

        let err = |device: &str, table: &str| board(&console(device, table), MANUAL).unwrap_err();
        let e = err("ssh://cs@192.0.2.20", "");
        assert!(e.contains("`console.ssh`: is missing"), "{e}");
        let e = err("/dev/serial/by-id/x", &table);
        assert!(
            e.contains("`console.ssh`: is set but console.device"),
            "{e}"
        );
        let e = err("ssh://192.0.2.20", &table);
        assert!(e.contains("console.device") && e.contains("no user"), "{e}");
        let bad = table.replace("microcom -s", "\\u0015reboot #");
        let e = err("ssh://cs@192.0.2.20", &bad);
        assert!(
            e.contains("console.ssh.command") && e.contains("control character"),
            "{e}"
        );
        let bad = table.replace("host_key_file", "host_key_path");
        let e = err("ssh://cs@192.0.2.20", &bad);
        assert!(e.contains("host_key_path"), "{e}");
        let no_key: String = table
            .lines()
            .filter(|l| !l.starts_with("host_key"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = err("ssh://cs@192.0.2.20", &no_key);
        assert!(e.contains("`console.ssh.host_key`: is missing"), "{e}");
    }

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
        assert!(e.contains("expected 0 to 3600 seconds"), "{e}");
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

    #[test]
    fn network_console_urls_parse_into_their_transport() {
        let net = |proto, host: &str, port| {
            ConsoleDevice::Net(NetConsole {
                proto,
                host: host.into(),
                port,
            })
        };
        let cases = [
            (
                "rfc2217://127.0.0.1:3001",
                net(NetProto::Rfc2217, "127.0.0.1", 3001),
            ),
            (
                "telnet://lab-exporter.local:2000",
                net(NetProto::Telnet, "lab-exporter.local", 2000),
            ),
            ("tcp://[::1]:4000", net(NetProto::Tcp, "::1", 4000)),
            ("qemu", ConsoleDevice::Qemu),
            ("fake", ConsoleDevice::Fake),
            (
                "/dev/serial/by-id/x",
                ConsoleDevice::Path("/dev/serial/by-id/x".into()),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(ConsoleDevice::parse(text), Ok(want), "{text}");
        }
        let ConsoleDevice::Net(n) = ConsoleDevice::parse("tcp://[::1]:4000").unwrap() else {
            unreachable!()
        };
        assert_eq!(n.to_string(), "tcp://[::1]:4000");
        let b = board(
            "device = \"rfc2217://127.0.0.1:3001\"\nbaud = 115200\nreopen_timeout_s = 7",
            MANUAL,
        )
        .unwrap();
        assert_eq!(
            b.console.target(),
            net(NetProto::Rfc2217, "127.0.0.1", 3001)
        );
        assert_eq!(b.console.reopen_within().unwrap().as_secs(), 7);
    }

    #[test]
    fn bad_console_urls_name_file_key_and_fix() {
        let cases = [
            ("rfc2217://127.0.0.1", "with no port; expected rfc2217://HOST:PORT"),
            ("telnet://127.0.0.1:", "with no port"),
            ("ssh://127.0.0.1:22", "with no user; expected ssh://USER@HOST[:PORT]"),
            ("serial://ttyS0", "unknown scheme \"serial\"; expected rfc2217://HOST:PORT, telnet://HOST:PORT, tcp://HOST:PORT or ssh://USER@HOST[:PORT]"),
            ("tcp://:3000", "with no host"),
            ("tcp://127.0.0.1:99999", "the port \"99999\" is not a TCP port"),
            ("tcp://127.0.0.1:0", "the port \"0\" is not a TCP port"),
            ("rfc2217://127.0.0.1:3001/ttyS0", "the port \"3001/ttyS0\" is not a TCP port"),
            ("rfc2217://user@host:3001", "is not a host name or IP address"),
            ("tcp://[::1:3000", "closing bracket"),
        ];
        for (dev, want) in cases {
            let e = board(&format!("device = \"{dev}\"\nbaud = 115200"), MANUAL).unwrap_err();
            assert!(
                e.contains("b.toml") && e.contains("key `console.device`") && e.contains(want),
                "{dev}: {e}"
            );
            assert_eq!(e.lines().count(), 1, "one error per mistake: {e}");
        }
    }

    #[test]
    fn usb_adapters_by_serial_number_or_port_parse_and_print_back() {
        let serial = |s: &str, i| {
            ConsoleDevice::Usb(UsbAdapter::Serial {
                serial: s.into(),
                interface: i,
            })
        };
        let path = |p: &str, i: Option<&str>| {
            ConsoleDevice::Usb(UsbAdapter::Path {
                port: p.into(),
                interface: i.map(str::to_string),
            })
        };
        for (text, want) in [
            ("usb-serial:FT4ABCDE", serial("FT4ABCDE", None)),
            ("usb-serial:FT4ABCDE:if01", serial("FT4ABCDE", Some(1))),
            ("usb-serial:0001:if0a", serial("0001", Some(10))),
            ("usb-path:1-1.4", path("1-1.4", None)),
            ("usb-path:1-1.4:1.0", path("1-1.4", Some("1.0"))),
            ("usb-path:3-2", path("3-2", None)),
        ] {
            assert_eq!(ConsoleDevice::parse(text).as_ref(), Ok(&want), "{text}");
            let ConsoleDevice::Usb(a) = want else {
                unreachable!()
            };
            assert_eq!(a.to_string(), text);
        }
        let b = board(
            "device = \"usb-serial:FT4ABCDE:if01\"\nbaud = 1500000",
            MANUAL,
        )
        .unwrap();
        assert_eq!(b.console.target(), serial("FT4ABCDE", Some(1)));
        assert_eq!(
            b.console.reopen_within().unwrap().as_secs(),
            DEFAULT_REOPEN_TIMEOUT_S
        );
        board("device = \"usb-path:1-1.4:1.0\"\nbaud = 115200", MANUAL).unwrap();
    }

    #[test]
    fn bad_usb_adapter_names_say_the_form() {
        for (dev, want) in [
            (
                "usb-serial:",
                "with no serial number; expected usb-serial:SERIAL or usb-serial:SERIAL:ifNN",
            ),
            ("usb-serial::if01", "with no serial number"),
            (
                "usb-serial:FT4ABCDE:01",
                "\"01\" after the serial number is not an interface",
            ),
            (
                "usb-serial:FT4ABCDE:if123",
                "\"if123\" after the serial number is not an interface",
            ),
            ("usb-serial:FT4 ABCDE", "is not a USB serial number"),
            (
                "usb-path:",
                "expected usb-path:PORT or usb-path:PORT:CONFIG.INTERFACE",
            ),
            (
                "usb-path:1-1.4:1",
                "e.g. usb-path:1-1.4 or usb-path:1-1.4:1.0",
            ),
            ("usb-path:ttyUSB0", "expected usb-path:PORT"),
            ("usb-path:1-1..4", "expected usb-path:PORT"),
        ] {
            let e = board(&format!("device = \"{dev}\"\nbaud = 115200"), MANUAL).unwrap_err();
            assert!(
                e.contains("b.toml") && e.contains("key `console.device`") && e.contains(want),
                "{dev}: {e}"
            );
            assert_eq!(e.lines().count(), 1, "one error per mistake: {e}");
        }
        let e = board("device = \"/dev/ttyUSB0\"\nbaud = 115200", MANUAL).unwrap_err();
        assert!(e.contains("usb-serial:SERIAL[:ifNN]"), "{e}");
    }

    /// The keys of every error of a manual-power board after `edit`.
    fn error_keys(edit: impl Fn(String) -> String) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.toml");
        let base = format!(
            r##"name = "b"
soc = "rk3588"
[console]
device = "/dev/serial/by-id/x"
baud = 115200
{MANUAL}
[bootloader]
kind = "u-boot"
prompt = "=> "
autoboot = "Hit any key"
interrupt = " "
timeout_s = 10
command_timeout_s = 10
commands = ["dhcp"]
boot_command = "booti"
[linux]
bootargs = "console=ttyS2"
prompt = "# $"
boot_timeout_s = 10
shell_timeout_s = 10
"##
        );
        std::fs::write(&p, edit(base)).unwrap();
        match Board::load(&p) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| e.key).collect(),
        }
    }

    #[test]
    fn out_of_service_after_is_bounded_and_off_by_default() {
        let keys = error_keys(|t| t + "[lease]\nout_of_service_after = 5000\n");
        assert_eq!(keys, ["lease.out_of_service_after"]);
        assert!(error_keys(|t| t + "[lease]\nout_of_service_after = 3\n").is_empty());
        assert_eq!(LeaseCfg::default().out_of_service_after, 0);
    }

    #[test]
    fn every_board_duration_refuses_zero_and_absurd_values() {
        assert_eq!(error_keys(|t| t), Vec::<String>::new());
        for key in [
            "timeout_s = 10\ncommand",
            "command_timeout_s = 10",
            "boot_timeout_s = 10",
            "shell_timeout_s = 10",
            "timeout_s = 60",
        ] {
            let name = key.split(" =").next().unwrap();
            for bad in ["0", "86401", "9223372036854775807"] {
                let keys = error_keys(|t| {
                    t.replacen(key, &key.replacen("10", bad, 1).replacen("60", bad, 1), 1)
                });
                assert_eq!(keys.len(), 1, "{name} = {bad}: {keys:?}");
                assert!(keys[0].ends_with(name), "{name} = {bad}: {keys:?}");
            }
        }
        let keys = error_keys(|t| t + "[lease]\nttl_s = 0\n");
        assert_eq!(keys, ["lease.ttl_s"]);
        let keys = error_keys(|t| {
            t + "[ssh]\nhost = \"b\"\nport = 0\nuser = \"root\"\nidentity = \"/k\"\nhost_key_file = \"/k.pub\"\nconnect_timeout_s = 0\n"
        });
        assert_eq!(keys, ["ssh.port", "ssh.connect_timeout_s"]);
    }

    #[test]
    fn typed_values_refuse_control_characters_but_interrupt_is_a_key() {
        let keys = error_keys(|t| {
            t.replace("[\"dhcp\"]", "[\"dhcp\", \"\", \"tftp\\tx\"]")
                .replace("boot_command = \"booti\"", "boot_command = \"booti\\r\"")
                .replace("interrupt = \" \"", "interrupt = \"\\u0003\"")
        });
        assert_eq!(
            keys,
            [
                "bootloader.commands[1]",
                "bootloader.commands[2]",
                "bootloader.boot_command"
            ]
        );
        let keys = error_keys(|t| t.replace("interrupt = \" \"", "interrupt = \"\""));
        assert_eq!(keys, ["bootloader.interrupt"]);
        let keys = error_keys(|t| t.replace("console=ttyS2", "console=ttyS2 x='y'"));
        assert_eq!(keys, ["linux.bootargs"]);
    }

    #[test]
    fn waits_must_be_text_the_board_prints() {
        let keys = error_keys(|t| {
            t.replace("autoboot = \"Hit any key\"", "autoboot = \" \"")
                .replace("prompt = \"# $\"", "prompt = \".*\"\nready = \"(\"")
        });
        assert_eq!(keys, ["bootloader.autoboot", "linux.ready", "linux.prompt"]);
    }

    #[test]
    fn power_keys_fit_the_backend() {
        // a cycle command on manual power would never run
        let keys = error_keys(|t| {
            t.replace(
                "backend = \"manual\"",
                "backend = \"manual\"\ncycle = \"x\"",
            )
        });
        assert_eq!(keys, ["power.cycle"]);
        let keys = error_keys(|t| {
            t.replace(
                "backend = \"manual\"",
                "backend = \"command\"\non = \"relay 1\"\noff = \" \"\ncycle = \"\"",
            )
        });
        assert_eq!(keys, ["power.off", "power.cycle"]);
        let keys = error_keys(|t| t.replace("baud = 115200", "baud = 12000001"));
        assert_eq!(keys, ["console.baud"]);
    }

    #[test]
    fn pdudaemon_power_needs_its_address_and_outlet() {
        let pdu = |keys: &str| {
            let keys = keys.to_string();
            move |t: String| {
                t.replace(
                    "backend = \"manual\"\ntimeout_s = 60",
                    &format!("backend = \"pdudaemon\"\ntimeout_s = 10\n{keys}"),
                )
            }
        };
        let good = "host = \"pdu-host.lab\"\npdu = \"rack1\"\noutlet = 3";
        assert_eq!(error_keys(pdu(good)), Vec::<String>::new());
        assert_eq!(
            error_keys(pdu(&format!("{good}\nport = 16999\ncycle_delay_s = 2"))),
            Vec::<String>::new()
        );
        assert_eq!(
            error_keys(pdu("")),
            ["power.host", "power.pdu", "power.outlet"]
        );
        assert_eq!(
            error_keys(pdu(
                "host = \"http://pdu:16421\"\npdu = \" \"\noutlet = 0\nport = 70000\ncycle_delay_s = 0"
            )),
            [
                "power.host",
                "power.port",
                "power.pdu",
                "power.outlet",
                "power.cycle_delay_s"
            ]
        );
        for host in ["127.0.0.1", "::1", "pdu", "pdu-host.lab."] {
            assert_eq!(host_problem(host), None, "{host}");
        }
        for host in ["", "pdu:16421", "pdu/x", "-pdu", "pdu..lab", "pdu host"] {
            let m = host_problem(host).unwrap_or_else(|| panic!("{host:?} accepted"));
            assert!(m.contains("no scheme, port or path"), "{m}");
        }
        // the keys mean nothing to another backend
        let keys = error_keys(|t| t.replace("timeout_s = 60", "timeout_s = 60\noutlet = 2"));
        assert_eq!(keys, ["power.outlet"]);
        // a missing time-out is named like the command backend's
        let keys = error_keys(|t| {
            t.replace(
                "backend = \"manual\"\ntimeout_s = 60",
                &format!("backend = \"pdudaemon\"\n{good}"),
            )
        });
        assert_eq!(keys, ["power.timeout_s"]);
    }

    #[test]
    fn qemu_numbers_and_flash_writer_are_checked() {
        let e = board(
            "device = \"qemu\"\nbaud = 115200",
            &QEMU_PTY
                .replace("smp = 1", "smp = 0")
                .replace("start_timeout_s = 5", "start_timeout_s = 0"),
        )
        .unwrap_err();
        assert!(e.contains("key `qemu.smp`: is 0"), "{e}");
        assert!(e.contains("key `qemu.start_timeout_s`: is 0"), "{e}");
        let keys = error_keys(|t| {
            t + "[flash]\nbackend = \"flash-writer\"\nwriter = \"w.mot\"\nport = \"/dev/ttyUSB0\"\ntimeout_s = 60\n"
        });
        assert_eq!(keys, ["flash.images"]);
        let keys = error_keys(|t| {
            t + "[flash]\nbackend = \"flash-writer\"\nwriter = \"w.mot\"\nport = \"/dev/ttyUSB0\"\ntimeout_s = 60\n[[flash.images]]\nname = \"bl2\"\nfile = \"bl2.srec\"\nformat = \"srec\"\nflash_addr = 0x40002\n[[flash.images]]\nname = \"u-boot\"\nfile = \"u-boot.bin\"\nformat = \"binary\"\nprogram_addr = 0x50000000\nflash_addr = 0x4000000\n"
        });
        assert_eq!(
            keys,
            [
                "flash.images[0].flash_addr",
                "flash.images[0].program_addr",
                "flash.images[1].flash_addr",
                "flash.images[1].program_addr"
            ]
        );
        let keys = error_keys(|t| {
            t + "[flash]\nbackend = \"tftp\"\ntftp_dir = \"{nope}/t\"\ntimeout_s = 60\n"
        });
        assert_eq!(keys, ["flash.tftp_dir"]);
    }
}
