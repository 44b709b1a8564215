//! `vfio-bind`: move the board's devices to vfio-pci (the whole IOMMU group when asked)
//! and report where each came from. The runner puts them back at teardown.

use super::{Check, CheckCtx, CheckFuture, CheckOutput};
use crate::boot::State;
use crate::config::load::from_table;
use crate::config::{ConfigError, Via};
use crate::outcome::Outcome;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VfioBindCheck {
    /// Board devices to bind (default: all).
    #[serde(default)]
    pub devices: Vec<String>,
    /// Also bind the other endpoints of each device's IOMMU group.
    #[serde(default)]
    pub whole_group: bool,
}

impl Check for VfioBindCheck {
    const KIND: &'static str = "vfio-bind";

    fn from_params(path: &Path, key: &str, params: toml::Table) -> Result<Self, ConfigError> {
        from_table(path, key, params)
    }

    fn needs(&self, _via: Via) -> State {
        State::LinuxSsh
    }

    fn run<'a>(&'a self, ctx: &'a mut CheckCtx<'_>) -> CheckFuture<'a> {
        Box::pin(async move {
            let s = &mut *ctx.session;
            let bindings = s.bind_devices(&self.devices, self.whole_group).await?;
            let mut figures = serde_json::Map::new();
            let lines: Vec<String> = bindings
                .iter()
                .map(|b| {
                    figures.insert(format!("bound.{}", b.name), serde_json::json!({"address": b.address, "iommu_group": b.group, "original_driver": b.original_driver}));
                    format!("{} {} {}→vfio-pci (group {})", b.name, b.address, b.original_driver.as_deref().unwrap_or("(none)"), b.group)
                })
                .collect();
            Ok(CheckOutput {
                outcome: Some(Outcome::Pass),
                message: lines.join("; "),
                figures,
            })
        })
    }
}
