//! `guest-boot`: start the KVM guest with the bound devices and reach its shell.

use super::CheckOutput;
use crate::boot::BoardSession;
use crate::error::StepError;
use crate::outcome::Outcome;
use std::time::Instant;

#[derive(Debug)]
pub struct GuestBootCheck;

impl GuestBootCheck {
    pub async fn run(&self, s: &mut BoardSession) -> Result<CheckOutput, StepError> {
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
    }
}
