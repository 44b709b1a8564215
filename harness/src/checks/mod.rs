//! Check kinds. Each kind validates its own parameters from the suite file and runs against
//! a [`BoardSession`]; it reports pass/fail/blocked with figures, or a [`StepError`] that
//! the runner classifies.

pub mod dma;
pub mod gpio;
pub mod guest_boot;
pub mod nvme_io;
pub mod pci_topology;
pub mod ping;
pub mod preflight;
pub mod sertest;
pub mod shell;
pub mod vfio_bind;
pub mod vfio_platform;

use crate::boot::{BoardSession, State};
use crate::config::load::from_table;
use crate::config::suite::{Defaults, RawCheck};
use crate::config::{ConfigError, Via};
use crate::error::StepError;
use crate::outcome::Outcome;
use std::path::Path;
use std::time::Duration;

pub const KINDS: &[&str] = &[
    "shell",
    "preflight",
    "vfio-bind",
    "guest-boot",
    "ping",
    "nvme-io",
    "vfio-platform",
    "gpio",
    "sertest",
    "dma",
    "pci-topology",
];

#[derive(Debug)]
pub struct CheckSpec {
    pub name: String,
    pub timeout: Duration,
    pub via: Via,
    /// Re-runs after a failure (reported as flaky when a re-run passes).
    pub retries: u32,
    pub kind: CheckKind,
    /// What to fix when the check does not pass (shown by `hil checklist`).
    pub hint: Option<String>,
}

#[derive(Debug)]
pub enum CheckKind {
    Shell(shell::ShellCheck),
    Preflight(preflight::PreflightCheck),
    VfioBind(vfio_bind::VfioBindCheck),
    GuestBoot(guest_boot::GuestBootCheck),
    Ping(ping::PingCheck),
    NvmeIo(nvme_io::NvmeIoCheck),
    Sertest(sertest::SertestCheck),
    VfioPlatform(vfio_platform::VfioPlatformCheck),
    Gpio(gpio::GpioCheck),
    Dma(dma::DmaCheck),
    PciTopology(pci_topology::PciTopologyCheck),
}

/// Kinds without parameters still reject unknown keys.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// What is left of a multi-step check's time limit; none left is the check's timeout.
pub(crate) fn time_left(
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<Duration, StepError> {
    let d = deadline.saturating_duration_since(tokio::time::Instant::now());
    if d.is_zero() {
        Err(StepError::CheckTimeout(timeout.as_secs()))
    } else {
        Ok(d)
    }
}

/// What a check found (its verdict on the DUT).
#[derive(Debug, Default)]
pub struct CheckOutput {
    pub outcome: Option<Outcome>,
    pub message: String,
    /// Measured figures (MB/s, RTT...) for results.json.
    pub figures: serde_json::Map<String, serde_json::Value>,
}

impl CheckSpec {
    pub fn from_raw(
        path: &Path,
        key: &str,
        raw: RawCheck,
        defaults: &Defaults,
    ) -> Result<CheckSpec, ConfigError> {
        let p = raw.params;
        let kind = match raw.kind.as_str() {
            "shell" => CheckKind::Shell(shell::ShellCheck::from_params(path, key, p)?),
            "preflight" => {
                CheckKind::Preflight(preflight::PreflightCheck::from_params(path, key, p)?)
            }
            "vfio-bind" => {
                CheckKind::VfioBind(vfio_bind::VfioBindCheck::from_params(path, key, p)?)
            }
            "ping" => CheckKind::Ping(ping::PingCheck::from_params(path, key, p)?),
            "nvme-io" => CheckKind::NvmeIo(nvme_io::NvmeIoCheck::from_params(path, key, p)?),
            "sertest" => CheckKind::Sertest(sertest::SertestCheck::from_params(path, key, p)?),
            "vfio-platform" => CheckKind::VfioPlatform(
                vfio_platform::VfioPlatformCheck::from_params(path, key, p)?,
            ),
            "gpio" => CheckKind::Gpio(gpio::GpioCheck::from_params(path, key, p)?),
            "dma" => CheckKind::Dma(dma::DmaCheck::from_params(path, key, p)?),
            "pci-topology" => {
                CheckKind::PciTopology(pci_topology::PciTopologyCheck::from_params(path, key, p)?)
            }
            "guest-boot" => {
                from_table::<NoParams>(path, key, p)?;
                CheckKind::GuestBoot(guest_boot::GuestBootCheck)
            }
            other => {
                let msg = format!(
                    "unknown check kind \"{other}\"; expected one of: {}",
                    KINDS.join(", ")
                );
                return Err(ConfigError::new(path, format!("{key}.kind"), msg));
            }
        };
        let via = raw.via.unwrap_or(match kind {
            // Passthrough checks look from inside the guest unless told otherwise.
            CheckKind::Ping(_) | CheckKind::NvmeIo(_) | CheckKind::Gpio(_) => Via::Guest,
            _ => defaults.via,
        });
        if via == Via::Ssh
            && matches!(
                kind,
                CheckKind::Ping(_) | CheckKind::NvmeIo(_) | CheckKind::Gpio(_)
            )
        {
            let msg = "is \"ssh\"; expected \"guest\" or \"console\" for this kind (it runs on a shell console)";
            return Err(ConfigError::new(path, format!("{key}.via"), msg));
        }
        Ok(CheckSpec {
            name: raw.name,
            timeout: Duration::from_secs(raw.timeout_s.unwrap_or(defaults.timeout_s)),
            via,
            retries: raw.retries.unwrap_or(defaults.retries),
            kind,
            hint: raw.hint,
        })
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            CheckKind::Shell(_) => "shell",
            CheckKind::Preflight(_) => "preflight",
            CheckKind::VfioBind(_) => "vfio-bind",
            CheckKind::GuestBoot(_) => "guest-boot",
            CheckKind::Ping(_) => "ping",
            CheckKind::NvmeIo(_) => "nvme-io",
            CheckKind::Sertest(_) => "sertest",
            CheckKind::VfioPlatform(_) => "vfio-platform",
            CheckKind::Gpio(_) => "gpio",
            CheckKind::Dma(_) => "dma",
            CheckKind::PciTopology(_) => "pci-topology",
        }
    }

    /// The board state the check needs.
    pub fn needs(&self) -> State {
        match (&self.kind, self.via) {
            (CheckKind::Preflight(_) | CheckKind::VfioBind(_) | CheckKind::GuestBoot(_), _) => {
                State::LinuxSsh
            }
            (CheckKind::VfioPlatform(_), _) => State::LinuxSsh,
            (CheckKind::Dma(_) | CheckKind::PciTopology(_), _) => State::LinuxSsh,
            // Slave in the guest, master on the board over SSH.
            (CheckKind::Sertest(_), _) => State::Guest,
            (_, Via::Console) => State::LinuxConsole,
            (_, Via::Ssh) => State::LinuxSsh,
            (_, Via::Guest) => State::Guest,
        }
    }

    pub async fn run(&self, s: &mut BoardSession) -> Result<CheckOutput, StepError> {
        match &self.kind {
            CheckKind::Shell(c) => c.run(s, self.via, self.timeout).await,
            CheckKind::Preflight(c) => c.run(s, self.timeout).await,
            CheckKind::VfioBind(c) => c.run(s).await,
            CheckKind::GuestBoot(c) => c.run(s).await,
            CheckKind::Ping(c) => c.run(self.shell(s)?, self.timeout).await,
            CheckKind::NvmeIo(c) => c.run(self.shell(s)?, self.timeout).await,
            CheckKind::Sertest(c) => c.run(s, self.timeout).await,
            CheckKind::VfioPlatform(c) => c.run(s, self.timeout).await,
            CheckKind::Gpio(c) => c.run(s, self.via, self.timeout).await,
            CheckKind::Dma(c) => c.run(s, &self.name, self.timeout).await,
            CheckKind::PciTopology(c) => c.run(s, self.timeout).await,
        }
    }

    /// The console shell a shell-console check runs on: the guest's or the board's.
    fn shell<'a>(
        &self,
        s: &'a mut BoardSession,
    ) -> Result<&'a mut crate::shell::ConsoleShell, StepError> {
        match self.via {
            Via::Guest => s.guest_shell(),
            _ => s.shell(),
        }
    }
}
