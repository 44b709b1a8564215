//! Power by lab-host commands (relay boards, PDUs): `on`, `off`, `cycle` from the board file.

use super::PowerError;
use crate::config::board::PowerCfg;
use std::time::Duration;

pub struct CommandPower {
    on: Option<String>,
    off: Option<String>,
    cycle: Option<String>,
    timeout: Duration,
    /// How long a board stays off in a cycle without a `cycle` command.
    off_for: Duration,
}

/// Off, then on at once, may not reset a board at all: its supply capacitors keep it
/// running through a short gap. Two seconds is what relay `cycle` commands commonly wait.
const CYCLE_OFF_FOR: Duration = Duration::from_secs(2);

impl CommandPower {
    pub fn new(cfg: &PowerCfg) -> CommandPower {
        CommandPower {
            on: cfg.on.clone(),
            off: cfg.off.clone(),
            cycle: cfg.cycle.clone(),
            timeout: Duration::from_secs(cfg.timeout_s.unwrap_or(30)),
            off_for: CYCLE_OFF_FOR,
        }
    }

    /// `power.cycle` when the board file gives one (a PDU's own reboot is one atomic
    /// action), else off, a pause, and on.
    pub async fn cycle(&mut self) -> Result<(), PowerError> {
        if let Some(cmd) = self.cycle.as_deref() {
            return run("cycle", Some(cmd), self.timeout).await;
        }
        self.off().await?;
        tokio::time::sleep(self.off_for).await;
        self.on().await
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

    /// Power commands that append what they did to a file, as a relay log would.
    fn logging_power(log: &std::path::Path, cycle: Option<&str>) -> CommandPower {
        let sh = |word: &str| format!("echo {word} >> '{}'", log.display());
        CommandPower {
            on: Some(sh("on")),
            off: Some(sh("off")),
            cycle: cycle.map(sh),
            timeout: Duration::from_secs(5),
            off_for: Duration::from_millis(10),
        }
    }

    #[tokio::test]
    async fn cycle_runs_the_cycle_command_or_off_then_on() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("relay.log");
        logging_power(&log, Some("cycle")).cycle().await.unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "cycle\n");

        std::fs::remove_file(&log).unwrap();
        logging_power(&log, None).cycle().await.unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "off\non\n");

        // a failing off stops the cycle: the board is not switched on blindly
        std::fs::remove_file(&log).unwrap();
        let mut p = logging_power(&log, None);
        p.off = Some("echo relay stuck >&2; exit 1".into());
        let e = p.cycle().await.unwrap_err();
        assert!(e.to_string().contains("relay stuck"), "{e}");
        assert!(!log.exists(), "on was not run");

        let mut p = logging_power(&log, Some("cycle"));
        p.cycle = Some("exit 4".into());
        let e = p.cycle().await.unwrap_err();
        assert!(e.to_string().contains("power cycle command"), "{e}");
    }
}
