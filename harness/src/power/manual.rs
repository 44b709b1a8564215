//! Manual power: the operator switches the board and confirms with Enter (bring-up desks).

use super::PowerError;
use crate::config::board::PowerCfg;
use std::io::IsTerminal;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

pub struct ManualPower {
    board: String,
    timeout: Duration,
}

impl ManualPower {
    pub fn new(board: &str, cfg: &PowerCfg) -> ManualPower {
        ManualPower {
            board: board.into(),
            timeout: Duration::from_secs(cfg.timeout_s.unwrap_or(300)),
        }
    }

    pub async fn on(&mut self) -> Result<(), PowerError> {
        self.prompt("ON").await
    }

    pub async fn off(&mut self) -> Result<(), PowerError> {
        self.prompt("OFF").await
    }

    async fn prompt(&self, state: &str) -> Result<(), PowerError> {
        if !std::io::stdin().is_terminal() {
            return Err(PowerError::Failed(format!(
                "board {} uses manual power but no operator terminal is attached (stdin is not a tty)",
                self.board
            )));
        }
        eprintln!(
            "hil: switch board {} {state} now, then press Enter ({} s)",
            self.board,
            self.timeout.as_secs()
        );
        let mut line = String::new();
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        match tokio::time::timeout(self.timeout, stdin.read_line(&mut line)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(PowerError::Failed(format!(
                "reading operator confirmation: {e}"
            ))),
            Err(_) => Err(PowerError::Failed(format!(
                "nobody confirmed power {state} of {} within {} s",
                self.board,
                self.timeout.as_secs()
            ))),
        }
    }
}
