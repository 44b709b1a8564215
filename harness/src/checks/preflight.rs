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

const CONFIG_COMMAND: &str = "if [ -r /proc/config.gz ]; then zcat /proc/config.gz; \
elif [ -r /boot/config-$(uname -r) ]; then cat /boot/config-$(uname -r); else echo HIL_NO_KERNEL_CONFIG; fi";

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
                if missing.is_empty() {
                    good.push(format!("{} kernel options set", self.kernel_options.len()));
                }
                reasons.extend(missing);
            }
            for m in &self.modules {
                let sys = m.replace('-', "_");
                let cmd = format!("modprobe {m} 2>&1; [ -d /sys/module/{sys} ]");
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
                good.push("IOMMU present".into());
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
                    Ok(()) => good.push(format!("{} device(s) in viable IOMMU groups", refs.len())),
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
