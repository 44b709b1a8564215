//! `guest-boot`: start the KVM guest with the bound devices and reach its shell.

use super::{Check, CheckCtx, CheckFuture, CheckOutput};
use crate::boot::State;
use crate::config::load::from_table;
use crate::config::{ConfigError, Via};
use crate::outcome::Outcome;
use serde::Deserialize;
use std::path::Path;
use std::time::Instant;

/// No parameters (unknown keys are still errors).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestBootCheck {}

impl Check for GuestBootCheck {
    const KIND: &'static str = "guest-boot";

    fn from_params(path: &Path, key: &str, params: toml::Table) -> Result<Self, ConfigError> {
        from_table(path, key, params)
    }

    fn needs(&self, _via: Via) -> State {
        State::LinuxSsh
    }

    fn run<'a>(&'a self, ctx: &'a mut CheckCtx<'_>) -> CheckFuture<'a> {
        Box::pin(async move {
            let s = &mut *ctx.session;
            let t = Instant::now();
            s.start_guest().await?;
            let boot_s = t.elapsed().as_secs_f64();
            let mut figures = serde_json::Map::new();
            figures.insert("guest_boot_s".into(), serde_json::json!(boot_s));
            let mut message = format!("guest shell reached in {boot_s:.1} s");
            for (remote, sha) in &s.uploaded {
                figures.insert(format!("uploaded_sha256.{remote}"), serde_json::json!(sha));
                message.push_str(&format!("; uploaded {remote} (sha256 verified)"));
            }
            if let Some(g) = s.guest() {
                if let Ok(st) = g.qmp("query-status").await {
                    message.push_str(&format!(
                        "; QMP status {}",
                        st["status"].as_str().unwrap_or("?")
                    ));
                    figures.insert("qmp_status".into(), st["status"].clone());
                }
            }
            Ok(CheckOutput {
                outcome: Some(Outcome::Pass),
                message,
                figures,
            })
        })
    }
}
