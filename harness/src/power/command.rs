//! Power by lab-host commands (relay boards, PDUs): `on`, `off`, `cycle` from the board file.

use super::PowerError;
use crate::config::board::PowerCfg;
use std::time::Duration;

pub struct CommandPower {
    on: Option<String>,
    off: Option<String>,
    timeout: Duration,
}

impl CommandPower {
    pub fn new(cfg: &PowerCfg) -> CommandPower {
        CommandPower {
            on: cfg.on.clone(),
            off: cfg.off.clone(),
            timeout: Duration::from_secs(cfg.timeout_s.unwrap_or(30)),
        }
    }

    pub async fn on(&mut self) -> Result<(), PowerError> {
        run("on", self.on.as_deref(), self.timeout).await
    }

    pub async fn off(&mut self) -> Result<(), PowerError> {
        run("off", self.off.as_deref(), self.timeout).await
    }
}

/// Runs a board-file power command (none configured: nothing to do).
pub async fn run(what: &str, cmd: Option<&str>, timeout: Duration) -> Result<(), PowerError> {
    let Some(cmd) = cmd else { return Ok(()) };
    crate::host_cmd::run_sh(&format!("power {what} command"), cmd, timeout)
        .await
        .map_err(PowerError::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failing_and_hanging_commands_are_errors() {
        assert!(run("on", Some("true"), Duration::from_secs(5))
            .await
            .is_ok());
        let e = run(
            "on",
            Some("echo relay stuck >&2; exit 3"),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("relay stuck"), "{e}");
        let e = run("off", Some("sleep 5"), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("did not finish"), "{e}");
    }
}
