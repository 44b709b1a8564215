//! `vfio-platform`: hand platform devices (R-Car GPIO, SCIF) to vfio-platform, after
//! finding out whether the board can do it at all (DOMAIN.md): does the kernel offer the
//! vfio-platform driver (and the no-IOMMU mode the R-Car flow needs), does the board's
//! QEMU accept `-device vfio-platform`, do the devices exist? Anything missing makes the
//! check `blocked` with `unsupported configuration: ...` naming every missing piece.
//! When all is there: `enable_unsafe_noiommu_mode`, `driver_override`, unbind, bind,
//! recording each device's original driver (figures and `artifacts/vfio-platform.json`).

use super::{Check, CheckCtx, CheckFuture, CheckOutput};
use crate::boot::{BoardSession, State};
use crate::checks::preflight::parse_config;
use crate::config::load::from_table;
use crate::config::{ConfigError, Via};
use crate::error::StepError;
use crate::outcome::Outcome;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VfioPlatformCheck {
    /// Platform device names (`e6055000.gpio`, `e6e68000.serial`).
    #[serde(default)]
    pub devices: Vec<String>,
    /// The R-Car IPMMU does not cover GPIO/SCIF: the flow needs VFIO's no-IOMMU mode.
    #[serde(default = "yes")]
    pub noiommu: bool,
    /// The board's QEMU (default: the board file's `[guest] binary`, else
    /// `qemu-system-aarch64`).
    pub qemu: Option<String>,
}

fn yes() -> bool {
    true
}

/// What the board offers, from [`probe_command`]'s output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// `/sys/bus/platform/drivers/vfio-platform` exists (before or after modprobe).
    pub driver: bool,
    /// What `modprobe vfio-platform` said when the driver was absent.
    pub modprobe: String,
    /// The kernel config's CONFIG_VFIO_PLATFORM / CONFIG_VFIO_NOIOMMU (`None`: config not
    /// readable; `Some("")`: not set).
    pub config_platform: Option<String>,
    pub config_noiommu: Option<String>,
    /// `/sys/module/vfio/parameters/enable_unsafe_noiommu_mode` exists.
    pub noiommu_param: bool,
    pub qemu_found: bool,
    /// `-device help` lists vfio-platform, or `-device vfio-platform,help` describes it.
    pub qemu_device: bool,
    /// (device, Some(driver or "")) when present, (device, None) when absent.
    pub devices: Vec<(String, Option<String>)>,
}

fn valid_device(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 64
        && !d.starts_with('-')
        && d.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
}

fn valid_binary(b: &str) -> bool {
    !b.is_empty()
        && !b.starts_with('-')
        && b.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
}

/// One SSH command probing everything; each finding is a `HIL_*` line.
pub fn probe_command(qemu: &str, devices: &[String]) -> String {
    let q = crate::shell::quote(qemu);
    let mut c = String::from(
        "if [ -d /sys/bus/platform/drivers/vfio-platform ]; then echo HIL_VP_DRIVER=1; \
         else m=$(modprobe vfio-platform 2>&1); \
         if [ -d /sys/bus/platform/drivers/vfio-platform ]; then echo HIL_VP_DRIVER=1; \
         else echo HIL_VP_DRIVER=0; echo \"HIL_VP_MODPROBE=$(echo $m)\"; fi; fi; \
         modprobe vfio >/dev/null 2>&1; \
         [ -e /sys/module/vfio/parameters/enable_unsafe_noiommu_mode ] && echo HIL_NOIOMMU=1 || echo HIL_NOIOMMU=0; \
         if [ -r /proc/config.gz ]; then k=$(zcat /proc/config.gz); \
         elif [ -r /boot/config-$(uname -r) ]; then k=$(cat /boot/config-$(uname -r)); else k=; fi; \
         if [ -n \"$k\" ]; then echo HIL_CONFIG=1; echo \"$k\" | grep -E '^CONFIG_VFIO_(PLATFORM|NOIOMMU)='; \
         else echo HIL_CONFIG=0; fi; ",
    );
    c.push_str(&format!(
        "if command -v {q} >/dev/null 2>&1; then echo HIL_QEMU=1; \
         if {q} -M none -device help 2>&1 | grep -q '\"vfio-platform\"' \
         || {q} -M none -device vfio-platform,help 2>&1 | grep -q 'vfio-platform options'; \
         then echo HIL_QEMU_VP=1; else echo HIL_QEMU_VP=0; fi; else echo HIL_QEMU=0; fi"
    ));
    for d in devices {
        let p = crate::shell::quote(&format!("/sys/bus/platform/devices/{d}")).into_owned();
        let q = crate::shell::quote(d);
        c.push_str(&format!(
            "; if [ -e {p} ]; then echo \"HIL_DEV \"{q}\" present $(basename \"$(readlink {p}/driver)\" 2>/dev/null)\"; \
             else echo 'HIL_DEV '{q}' absent'; fi"
        ));
    }
    c
}

pub fn parse_probe(out: &str) -> Probe {
    let mut p = Probe::default();
    let mut config = false;
    for l in out.lines() {
        let l = l.trim();
        match l {
            "HIL_VP_DRIVER=1" => p.driver = true,
            "HIL_NOIOMMU=1" => p.noiommu_param = true,
            "HIL_CONFIG=1" => config = true,
            "HIL_QEMU=1" => p.qemu_found = true,
            "HIL_QEMU_VP=1" => p.qemu_device = true,
            _ => {}
        }
        if let Some(m) = l.strip_prefix("HIL_VP_MODPROBE=") {
            p.modprobe = m.trim().to_string();
        }
        if let Some(rest) = l.strip_prefix("HIL_DEV ") {
            let mut it = rest.split_whitespace();
            if let (Some(name), Some(state)) = (it.next(), it.next()) {
                let drv = (state == "present")
                    .then(|| it.next().filter(|d| *d != ".").unwrap_or("").to_string());
                p.devices.push((name.to_string(), drv));
            }
        }
    }
    if config {
        let c = parse_config(out);
        p.config_platform = Some(c.get("VFIO_PLATFORM").cloned().unwrap_or_default());
        p.config_noiommu = Some(c.get("VFIO_NOIOMMU").cloned().unwrap_or_default());
    }
    p
}

fn config_note(v: &Option<String>, name: &str) -> String {
    match v.as_deref() {
        None => "kernel config not readable".into(),
        Some("y") | Some("m") => format!("CONFIG_{name}={}", v.as_deref().unwrap_or("")),
        Some(_) => format!("CONFIG_{name} is not set"),
    }
}

impl Check for VfioPlatformCheck {
    const KIND: &'static str = "vfio-platform";

    fn from_params(path: &Path, key: &str, params: toml::Table) -> Result<Self, ConfigError> {
        let c: VfioPlatformCheck = from_table(path, key, params)?;
        for (i, d) in c.devices.iter().enumerate() {
            if !valid_device(d) {
                return Err(ConfigError::new(
                    path,
                    format!("{key}.devices[{i}]"),
                    format!("is {d:?}; expected a platform device name such as \"e6055000.gpio\""),
                ));
            }
        }
        if let Some(q) = &c.qemu {
            if !valid_binary(q) {
                return Err(ConfigError::new(
                    path,
                    format!("{key}.qemu"),
                    format!(
                        "is {q:?}; expected a program name or path such as \"qemu-system-aarch64\""
                    ),
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
            let timeout = ctx.timeout;
            let s = &mut *ctx.session;
            let qemu = self
                .qemu
                .clone()
                .or_else(|| s.board.guest.as_ref().map(|g| g.binary.clone()))
                .unwrap_or_else(|| "qemu-system-aarch64".into());
            let ssh = s.ssh()?;
            let out = ssh
                .exec(&probe_command(&qemu, &self.devices), timeout)
                .await?;
            let p = parse_probe(&out.output);
            let mut figures = serde_json::Map::new();
            figures.insert("kernel_vfio_platform".into(), p.driver.into());
            figures.insert("kernel_noiommu".into(), p.noiommu_param.into());
            figures.insert("qemu_vfio_platform".into(), p.qemu_device.into());
            let missing = self.missing(&p, &qemu);
            if !missing.is_empty() {
                return Ok(CheckOutput {
                    outcome: Some(Outcome::Blocked),
                    message: format!("unsupported configuration: {}", missing.join("; ")),
                    figures,
                });
            }
            let mut bound = serde_json::Map::new();
            for (d, drv) in &p.devices {
                let original = drv.clone().unwrap_or_default();
                bound.insert(
                    d.clone(),
                    serde_json::json!({ "original_driver": original }),
                );
                // Recorded before the bind, so a failure half-way still says what to restore.
                save(s, &bound);
                let o = s.ssh()?.exec(&self.bind_command(d), timeout).await?;
                if o.status != 0 {
                    return Err(StepError::BindFailed(format!(
                        "binding {d} to vfio-platform failed: {}",
                        o.output.trim()
                    )));
                }
            }
            figures.insert("devices".into(), serde_json::Value::Object(bound));
            let names: Vec<&str> = p.devices.iter().map(|(d, _)| d.as_str()).collect();
            Ok(CheckOutput {
                outcome: Some(Outcome::Pass),
                message: if names.is_empty() {
                    "kernel and QEMU offer vfio-platform".into()
                } else {
                    format!(
                        "{} bound to vfio-platform{}",
                        names.join(", "),
                        if self.noiommu { " (no-IOMMU mode)" } else { "" }
                    )
                },
                figures,
            })
        })
    }
}

impl VfioPlatformCheck {
    /// Every missing piece, worded for the report.
    pub fn missing(&self, p: &Probe, qemu: &str) -> Vec<String> {
        let mut m = Vec::new();
        if !p.driver {
            let mut why = vec![config_note(&p.config_platform, "VFIO_PLATFORM")];
            if !p.modprobe.is_empty() {
                why.push(format!("modprobe vfio-platform: {}", p.modprobe));
            }
            m.push(format!(
                "kernel has no vfio-platform driver ({})",
                why.join("; ")
            ));
        }
        if self.noiommu && !p.noiommu_param {
            m.push(format!(
                "kernel has no VFIO no-IOMMU mode ({})",
                config_note(&p.config_noiommu, "VFIO_NOIOMMU")
            ));
        }
        if !p.qemu_found {
            m.push(format!("board has no QEMU `{qemu}`"));
        } else if !p.qemu_device {
            m.push(format!(
                "board QEMU `{qemu}` does not accept -device vfio-platform (removed in QEMU 10.2)"
            ));
        }
        for (d, drv) in &p.devices {
            if drv.is_none() {
                m.push(format!("no platform device {d} on the board"));
            }
        }
        m
    }

    /// noiommu (when asked for), then per device: driver_override, unbind, bind, verify.
    pub fn bind_command(&self, device: &str) -> String {
        let d = crate::shell::quote(device).into_owned();
        let p = crate::shell::quote(&format!("/sys/bus/platform/devices/{device}")).into_owned();
        let mut c = String::new();
        if self.noiommu {
            c.push_str("echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode && ");
        }
        c.push_str(&format!(
            "echo vfio-platform > {p}/driver_override && \
             {{ [ ! -e {p}/driver ] || echo {d} > {p}/driver/unbind; }} && \
             echo {d} > /sys/bus/platform/drivers/vfio-platform/bind && \
             [ \"$(basename \"$(readlink {p}/driver)\")\" = vfio-platform ]"
        ));
        c
    }

    /// Back to the original driver (or none): clear the override, unbind, bind/probe.
    pub fn restore_command(device: &str, original: Option<&str>) -> String {
        let d = crate::shell::quote(device).into_owned();
        let p = crate::shell::quote(&format!("/sys/bus/platform/devices/{device}")).into_owned();
        let rebind = match original.filter(|o| !o.is_empty()) {
            Some(o) => format!(
                "echo {d} > {}",
                crate::shell::quote(&format!("/sys/bus/platform/drivers/{o}/bind"))
            ),
            None => format!("echo {d} > /sys/bus/platform/drivers_probe"),
        };
        format!(
            "echo > {p}/driver_override; \
             {{ [ ! -e {p}/driver ] || echo {d} > {p}/driver/unbind; }}; {rebind}"
        )
    }
}

fn save(s: &BoardSession, bound: &serde_json::Map<String, serde_json::Value>) {
    let dir = s.run_dir.join("artifacts");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(j) = serde_json::to_string_pretty(bound) {
        let _ = std::fs::write(dir.join("vfio-platform.json"), j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(devices: &[&str]) -> VfioPlatformCheck {
        VfioPlatformCheck {
            devices: devices.iter().map(|d| d.to_string()).collect(),
            noiommu: true,
            qemu: None,
        }
    }

    // What the sim board answered (Debian 6.1 kernel without VFIO_PLATFORM, busybox modprobe,
    // QEMU 7.2), recorded in a sim-rcar run's ssh.log.
    const SIM: &str = "HIL_VP_DRIVER=0
HIL_VP_MODPROBE=modprobe: module vfio-platform not found in modules.dep
HIL_NOIOMMU=0
HIL_CONFIG=1
HIL_QEMU=1
HIL_QEMU_VP=1
HIL_DEV 9030000.pl061 present pl061_gpio
";

    #[test]
    fn sim_is_unsupported_naming_the_kernel() {
        let p = parse_probe(SIM);
        assert!(!p.driver && !p.noiommu_param && p.qemu_found && p.qemu_device);
        assert_eq!(p.config_platform.as_deref(), Some(""));
        assert_eq!(
            p.devices,
            vec![("9030000.pl061".to_string(), Some("pl061_gpio".to_string()))]
        );
        let m = check(&["9030000.pl061"]).missing(&p, "qemu-system-aarch64");
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].starts_with("kernel has no vfio-platform driver (CONFIG_VFIO_PLATFORM is not set; modprobe vfio-platform: modprobe: module vfio-platform not found in modules.dep)"), "{m:?}");
        assert_eq!(
            m[1],
            "kernel has no VFIO no-IOMMU mode (CONFIG_VFIO_NOIOMMU is not set)"
        );
    }

    #[test]
    fn names_every_missing_piece() {
        let p = parse_probe(
            "HIL_VP_DRIVER=1\nHIL_NOIOMMU=1\nHIL_CONFIG=0\nHIL_QEMU=1\nHIL_QEMU_VP=0\nHIL_DEV e6055000.gpio absent\nHIL_DEV e6e68000.serial present sh-sci\n",
        );
        assert_eq!(p.config_platform, None);
        let m = check(&["e6055000.gpio", "e6e68000.serial"]).missing(&p, "/usr/bin/qemu");
        assert_eq!(
            m,
            vec![
                "board QEMU `/usr/bin/qemu` does not accept -device vfio-platform (removed in QEMU 10.2)".to_string(),
                "no platform device e6055000.gpio on the board".to_string(),
            ]
        );
        let p = parse_probe(
            "HIL_VP_DRIVER=1\nHIL_NOIOMMU=0\nHIL_CONFIG=1\nCONFIG_VFIO_PLATFORM=m\nHIL_QEMU=0\n",
        );
        let mut c = check(&[]);
        c.noiommu = false;
        assert_eq!(
            c.missing(&p, "qemu-system-aarch64"),
            vec!["board has no QEMU `qemu-system-aarch64`".to_string()]
        );
        let p = parse_probe("HIL_VP_DRIVER=1\nHIL_NOIOMMU=1\nHIL_QEMU=1\nHIL_QEMU_VP=1\nHIL_DEV e6055000.gpio present gpio_rcar\n");
        assert!(check(&["e6055000.gpio"]).missing(&p, "q").is_empty());
    }

    #[test]
    fn probe_command_asks_kernel_qemu_and_devices() {
        let c = probe_command("qemu-system-aarch64", &["e6055000.gpio".into()]);
        assert!(c.contains("modprobe vfio-platform"), "{c}");
        assert!(c.contains("/sys/bus/platform/drivers/vfio-platform"), "{c}");
        assert!(c.contains("enable_unsafe_noiommu_mode"), "{c}");
        assert!(c.contains("/boot/config-$(uname -r)"), "{c}");
        assert!(
            c.contains("qemu-system-aarch64 -M none -device help"),
            "{c}"
        );
        assert!(c.contains("-device vfio-platform,help"), "{c}");
        assert!(
            c.contains("[ -e /sys/bus/platform/devices/e6055000.gpio ]"),
            "{c}"
        );
    }

    #[test]
    fn bind_and_restore_commands() {
        let c = check(&["e6055000.gpio"]);
        assert_eq!(
            c.bind_command("e6055000.gpio"),
            "echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode && \
             echo vfio-platform > /sys/bus/platform/devices/e6055000.gpio/driver_override && \
             { [ ! -e /sys/bus/platform/devices/e6055000.gpio/driver ] || echo e6055000.gpio > /sys/bus/platform/devices/e6055000.gpio/driver/unbind; } && \
             echo e6055000.gpio > /sys/bus/platform/drivers/vfio-platform/bind && \
             [ \"$(basename \"$(readlink /sys/bus/platform/devices/e6055000.gpio/driver)\")\" = vfio-platform ]"
        );
        let mut c2 = c.clone();
        c2.noiommu = false;
        assert!(c2.bind_command("e6e68000.serial").starts_with(
            "echo vfio-platform > /sys/bus/platform/devices/e6e68000.serial/driver_override"
        ));
        assert_eq!(
            VfioPlatformCheck::restore_command("e6055000.gpio", Some("gpio_rcar")),
            "echo > /sys/bus/platform/devices/e6055000.gpio/driver_override; \
             { [ ! -e /sys/bus/platform/devices/e6055000.gpio/driver ] || echo e6055000.gpio > /sys/bus/platform/devices/e6055000.gpio/driver/unbind; }; \
             echo e6055000.gpio > /sys/bus/platform/drivers/gpio_rcar/bind"
        );
        assert!(VfioPlatformCheck::restore_command("e6055000.gpio", None)
            .ends_with("echo e6055000.gpio > /sys/bus/platform/drivers_probe"));
    }

    #[test]
    fn rejects_hostile_params() {
        let mut t = toml::Table::new();
        t.insert(
            "devices".into(),
            toml::Value::Array(vec!["e6055000.gpio; reboot".into()]),
        );
        let e = VfioPlatformCheck::from_params(Path::new("s.toml"), "check[0]", t).unwrap_err();
        assert_eq!(e.key, "check[0].devices[0]");
        let mut t = toml::Table::new();
        t.insert("qemu".into(), "-x".into());
        let e = VfioPlatformCheck::from_params(Path::new("s.toml"), "check[0]", t).unwrap_err();
        assert_eq!(e.key, "check[0].qemu");
    }
}
