//! `preflight`: is this board able to pass devices to a KVM guest at all? Kernel options,
//! modules, KVM, the SMMU, the board file's devices and their IOMMU groups. Anything
//! missing makes the check `blocked` with every reason, so one run shows all fixes.

use super::{Check, CheckCtx, CheckFuture, CheckOutput};
use crate::boot::State;
use crate::config::load::from_table;
use crate::config::{ConfigError, Via};
use crate::error::StepError;
use crate::outcome::Outcome;
use crate::vfio;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreflightCheck {
    /// `CONFIG_` names without the prefix, each required as `y` or `m`.
    pub kernel_options: Vec<String>,
    /// Modules that must load (or be built in).
    #[serde(default)]
    pub modules: Vec<String>,
    /// Board devices to check (default: all of the board's `[[device]]`s).
    #[serde(default)]
    pub devices: Vec<String>,
}

/// Prints where the config came from (`HIL_CONFIG_FROM=...`) before the config itself, so
/// that the verdict can say which file it read.
const CONFIG_COMMAND: &str = "if [ -r /proc/config.gz ]; then echo HIL_CONFIG_FROM=/proc/config.gz; zcat /proc/config.gz; \
elif [ -r /boot/config-$(uname -r) ]; then echo HIL_CONFIG_FROM=/boot/config-$(uname -r); cat /boot/config-$(uname -r); else echo HIL_NO_KERNEL_CONFIG; fi";

/// The file the config was read from, as [`CONFIG_COMMAND`] announces it.
pub fn config_source(output: &str) -> Option<&str> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("HIL_CONFIG_FROM="))
}

/// The wanted options as found set, e.g. `CONFIG_VFIO=y, CONFIG_VFIO_PCI=m from
/// /proc/config.gz`: the board's own values, not just a count.
pub fn found_options(
    config: &BTreeMap<String, String>,
    wanted: &[String],
    source: Option<&str>,
) -> String {
    let set: Vec<String> = wanted
        .iter()
        .filter_map(|o| Some(format!("CONFIG_{o}={}", config.get(o.as_str())?)))
        .collect();
    match source {
        Some(src) => format!("{} from {src}", set.join(", ")),
        None => set.join(", "),
    }
}

/// What registered as IOMMU: the entries of /sys/class/iommu (or the SMMU's dmesg line when
/// sysfs lists none), e.g. `IOMMU smmu3.0x0000000009050000`.
pub fn iommu_found(output: &str) -> String {
    let names: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains(' ') && !l.contains(':'))
        .collect();
    if !names.is_empty() {
        return format!("IOMMU {}", names.join(", "));
    }
    let line = output
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let line = line.split_once("] ").map_or(line, |(_, rest)| rest);
    format!("IOMMU: {}", shorten(line, 80))
}

/// A short name for a PCI class code, as lspci would say it.
fn class_name(class: u32) -> String {
    match class >> 8 {
        0x0108 => "NVMe".into(),
        0x0106 => "SATA".into(),
        0x0200 => "Ethernet".into(),
        0x0280 => "network".into(),
        0x0300 => "VGA".into(),
        0x0600 => "host bridge".into(),
        0x0604 => "PCI bridge".into(),
        0x0c03 => "USB".into(),
        c => format!("class {c:04x}"),
    }
}

/// Which board device sits in which IOMMU group: `group 2: 0000:00:03.0 nvme (NVMe
/// 1b36:0010, driver nvme)`, one entry per group in group order, with every other device
/// that shares the group (they go to VFIO together).
pub fn describe_groups(devs: &[vfio::PciDev], found: &[(String, vfio::PciDev)]) -> String {
    let mut groups: BTreeMap<Option<u32>, Vec<String>> = BTreeMap::new();
    for (name, d) in found {
        groups.entry(d.group).or_default().push(format!(
            "{} {name} ({} {}, driver {})",
            d.address,
            class_name(d.class),
            d.id(),
            d.driver_name()
        ));
    }
    for (g, entries) in groups.iter_mut() {
        let Some(g) = g else { continue };
        for other in devs.iter().filter(|d| d.group == Some(*g)) {
            if !found.iter().any(|(_, f)| f.address == other.address) {
                entries.push(format!(
                    "{} ({} {}, driver {})",
                    other.address,
                    class_name(other.class),
                    other.id(),
                    other.driver_name()
                ));
            }
        }
    }
    groups
        .into_iter()
        .map(|(g, entries)| match g {
            Some(g) => format!("group {g}: {}", entries.join(" + ")),
            None => format!("no group: {}", entries.join(" + ")),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `s` cut to at most `max` characters at a word boundary, with `…` when cut.
pub fn shorten(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    let at = cut.rfind(' ').filter(|i| *i > max / 2).unwrap_or(cut.len());
    format!("{}…", cut[..at].trim_end())
}

/// `CONFIG_X=y|m` lines → X → value.
pub fn parse_config(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("CONFIG_")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// The options missing from a config, as reasons.
pub fn missing_options(config: &BTreeMap<String, String>, wanted: &[String]) -> Vec<String> {
    wanted
        .iter()
        .filter(|o| {
            !matches!(
                config.get(o.as_str()).map(String::as_str),
                Some("y") | Some("m")
            )
        })
        .map(|o| format!("kernel option CONFIG_{o} is not set"))
        .collect()
}

fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Check for PreflightCheck {
    const KIND: &'static str = "preflight";

    fn from_params(path: &Path, key: &str, params: toml::Table) -> Result<Self, ConfigError> {
        let c: PreflightCheck = from_table(path, key, params)?;
        for (i, o) in c.kernel_options.iter().enumerate() {
            if !safe_name(o) || o.starts_with("CONFIG_") {
                return Err(ConfigError::new(
                    path,
                    format!("{key}.kernel_options[{i}]"),
                    format!("is \"{o}\"; expected a name without CONFIG_, such as VFIO_PCI"),
                ));
            }
        }
        for (i, m) in c.modules.iter().enumerate() {
            if !safe_name(m) {
                return Err(ConfigError::new(
                    path,
                    format!("{key}.modules[{i}]"),
                    format!("is \"{m}\"; expected a module name such as vfio-pci"),
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
            let mut reasons = Vec::new();
            let mut good = Vec::new();
            let ssh = s.ssh()?;

            let cfg = ssh.exec(CONFIG_COMMAND, timeout).await?;
            if cfg.output.contains("HIL_NO_KERNEL_CONFIG") {
                reasons.push(
                    "kernel config not readable (no /proc/config.gz, no /boot/config-$(uname -r))"
                        .to_string(),
                );
            } else {
                let config = parse_config(&cfg.output);
                let missing = missing_options(&config, &self.kernel_options);
                if missing.is_empty() && !self.kernel_options.is_empty() {
                    good.push(found_options(
                        &config,
                        &self.kernel_options,
                        config_source(&cfg.output),
                    ));
                }
                reasons.extend(missing);
            }
            for m in &self.modules {
                let sys = m.replace('-', "_");
                let cmd = format!(
                    "modprobe {} 2>&1; [ -d {} ]",
                    crate::shell::quote(m),
                    crate::shell::quote(&format!("/sys/module/{sys}"))
                );
                let o = ssh.exec(&cmd, timeout).await?;
                if o.status != 0 {
                    reasons.push(format!("module {m} does not load: {}", o.output.trim()));
                }
            }
            if !self.modules.is_empty() {
                good.push(format!("modules load: {}", self.modules.join(" ")));
            }
            let kvm = ssh.exec("test -c /dev/kvm", timeout).await?;
            if kvm.status != 0 {
                reasons.push(
                    "no /dev/kvm: KVM not available (EL2 not enabled, or CONFIG_KVM off)".into(),
                );
            }
            let smmu = ssh
                .exec(
                    "ls /sys/class/iommu/ 2>/dev/null; dmesg | grep -m1 -i 'arm-smmu'",
                    timeout,
                )
                .await?;
            if smmu.output.trim().is_empty() {
                reasons.push("no IOMMU registered (/sys/class/iommu is empty): enable the SMMU node in the device tree".into());
            } else {
                good.push(iommu_found(&smmu.output));
            }

            let (devs, found) = match s.resolve_devices(&self.devices).await {
                Ok(x) => x,
                Err(StepError::Blocked(r)) => {
                    reasons.push(r);
                    (Vec::new(), Vec::new())
                }
                Err(e) => return Err(e),
            };
            let mut figures = serde_json::Map::new();
            for (name, d) in &found {
                figures.insert(
                    format!("device.{name}"),
                    serde_json::json!({"address": d.address, "id": d.id(), "driver": d.driver, "iommu_group": d.group}),
                );
            }
            let refs: Vec<&vfio::PciDev> = found.iter().map(|(_, d)| d).collect();
            if !refs.is_empty() {
                match vfio::check_viable(&devs, &refs) {
                    Ok(()) => good.push(describe_groups(&devs, &found)),
                    Err(r) => reasons.push(r),
                }
            }
            if reasons.is_empty() {
                Ok(CheckOutput {
                    outcome: Some(Outcome::Pass),
                    message: good.join("; "),
                    figures,
                })
            } else {
                Ok(CheckOutput {
                    outcome: Some(Outcome::Blocked),
                    message: reasons.join("; "),
                    figures,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_missing_options() {
        let c = parse_config("CONFIG_KVM=y\nCONFIG_VFIO=m\n# CONFIG_VFIO_PLATFORM is not set\nCONFIG_LOCALVERSION=\"\"\n");
        let want: Vec<String> = ["KVM", "VFIO", "VFIO_PLATFORM"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            missing_options(&c, &want),
            vec!["kernel option CONFIG_VFIO_PLATFORM is not set"]
        );
    }

    /// A config as the sim board's Debian arm64 kernel gives it, after the source line
    /// [`CONFIG_COMMAND`] prints.
    const CONFIG: &str = "HIL_CONFIG_FROM=/proc/config.gz\n#\n# Automatically generated file; DO NOT EDIT.\n\
CONFIG_KVM=y\nCONFIG_VFIO=m\nCONFIG_VFIO_PCI=m\nCONFIG_IOMMU_SUPPORT=y\n# CONFIG_VFIO_PLATFORM is not set\n";

    #[test]
    fn says_which_options_were_found_set_and_where() {
        let want: Vec<String> = ["KVM", "VFIO", "VFIO_PCI"].map(String::from).to_vec();
        let config = parse_config(CONFIG);
        assert_eq!(
            found_options(&config, &want, config_source(CONFIG)),
            "CONFIG_KVM=y, CONFIG_VFIO=m, CONFIG_VFIO_PCI=m from /proc/config.gz"
        );
        let boot = "HIL_CONFIG_FROM=/boot/config-6.1.0-hil\nCONFIG_KVM=y\n";
        assert_eq!(config_source(boot), Some("/boot/config-6.1.0-hil"));
    }

    #[test]
    fn names_the_iommu_that_registered() {
        let out = "smmu3.0x0000000009050000\n[    0.512345] arm-smmu-v3 9050000.smmuv3: ias 48-bit, oas 48-bit (features 0x00001fcf)\n";
        assert_eq!(iommu_found(out), "IOMMU smmu3.0x0000000009050000");
        let dmesg_only = "[    0.512345] arm-smmu-v3 9050000.smmuv3: ias 48-bit, oas 48-bit (features 0x00001fcf)\n";
        assert_eq!(
            iommu_found(dmesg_only),
            "IOMMU: arm-smmu-v3 9050000.smmuv3: ias 48-bit, oas 48-bit (features 0x00001fcf)"
        );
    }

    #[test]
    fn says_which_device_sits_in_which_group() {
        // The sysfs listing of vfio::LIST_COMMAND on the sim board with its bridge.
        let devs = vfio::parse_list(
            "0000:00:00.0 0x1b36 0x0008 0x060000 - 0\n\
0000:00:03.0 0x1b36 0x0010 0x010802 nvme 2\n\
0000:00:04.0 0x8086 0x10d3 0x020000 e1000e 3\n\
0000:00:09.0 0x1b36 0x000e 0x060400 shpchp 7\n\
0000:01:00.0 0x8086 0x100e 0x020000 e1000 7\n",
        );
        let pick = |name: &str, addr: &str| {
            let d = devs.iter().find(|d| d.address == addr).unwrap().clone();
            (name.to_string(), d)
        };
        let found = vec![
            pick("nic", "0000:00:04.0"),
            pick("nvme", "0000:00:03.0"),
            pick("legacy-nic", "0000:01:00.0"),
        ];
        assert_eq!(
            describe_groups(&devs, &found),
            "group 2: 0000:00:03.0 nvme (NVMe 1b36:0010, driver nvme); \
group 3: 0000:00:04.0 nic (Ethernet 8086:10d3, driver e1000e); \
group 7: 0000:01:00.0 legacy-nic (Ethernet 8086:100e, driver e1000) + 0000:00:09.0 (PCI bridge 1b36:000e, driver shpchp)"
        );
    }

    #[test]
    fn shortens_at_a_word_boundary() {
        assert_eq!(shorten("  short  ", 10), "short");
        assert_eq!(
            shorten("modprobe vfio-pci and then bind the device", 20),
            "modprobe vfio-pci…"
        );
        assert_eq!(shorten("averyveryverylongword", 8), "averyver…");
    }

    #[test]
    fn rejects_hostile_names() {
        let mut t = toml::Table::new();
        t.insert(
            "kernel_options".into(),
            toml::Value::Array(vec!["x'; reboot; '".into()]),
        );
        let e = PreflightCheck::from_params(Path::new("s.toml"), "check[0]", t).unwrap_err();
        assert_eq!(e.key, "check[0].kernel_options[0]");
    }
}
