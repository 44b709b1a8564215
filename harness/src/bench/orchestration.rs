//! Orchestration overhead: the same sim suite driven by hil and by a plain shell script
//! doing the same QEMU steps. (Filled in below.)

use serde::Serialize;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct OrchestrationResult {
    pub hil_wall_s: f64,
    pub script_wall_s: f64,
    pub overhead_pct: f64,
}

impl OrchestrationResult {
    pub fn table(&self) -> String {
        format!(
            "orchestration: hil {:.1} s, shell script {:.1} s: overhead {:+.1}%",
            self.hil_wall_s, self.script_wall_s, self.overhead_pct
        )
    }
}

pub async fn run(_suite: &Path, _board: &str) -> anyhow::Result<OrchestrationResult> {
    anyhow::bail!("not implemented yet")
}
