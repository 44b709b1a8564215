//! Check kinds. Each kind validates its own parameters from the suite file and runs against
//! a [`BoardSession`]; it reports pass/fail/blocked with figures, or a [`StepError`] that
//! the runner classifies.

pub mod shell;

use crate::boot::{BoardSession, State};
use crate::config::suite::{Defaults, RawCheck};
use crate::config::{ConfigError, Via};
use crate::error::StepError;
use crate::outcome::Outcome;
use std::path::Path;
use std::time::Duration;

#[derive(Debug)]
pub struct CheckSpec {
    pub name: String,
    pub timeout: Duration,
    pub via: Via,
    pub kind: CheckKind,
}

#[derive(Debug)]
pub enum CheckKind {
    Shell(shell::ShellCheck),
}

/// What a check found (its verdict on the DUT).
#[derive(Debug, Default)]
pub struct CheckOutput {
    pub outcome: Option<Outcome>,
    pub message: String,
    /// Measured figures (MB/s, RTT...) for results.json.
    pub figures: serde_json::Map<String, serde_json::Value>,
}

impl CheckSpec {
    pub fn from_raw(
        path: &Path,
        key: &str,
        raw: RawCheck,
        defaults: &Defaults,
    ) -> Result<CheckSpec, ConfigError> {
        let kind = match raw.kind.as_str() {
            "shell" => CheckKind::Shell(shell::ShellCheck::from_params(path, key, raw.params)?),
            other => {
                return Err(ConfigError::new(
                    path,
                    format!("{key}.kind"),
                    format!("unknown check kind \"{other}\"; expected one of: shell"),
                ))
            }
        };
        Ok(CheckSpec {
            name: raw.name,
            timeout: Duration::from_secs(raw.timeout_s.unwrap_or(defaults.timeout_s)),
            via: raw.via.unwrap_or(defaults.via),
            kind,
        })
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            CheckKind::Shell(_) => "shell",
        }
    }

    /// The board state the check needs.
    pub fn needs(&self) -> State {
        match self.via {
            Via::Console => State::LinuxConsole,
            Via::Ssh => State::LinuxSsh,
        }
    }

    pub async fn run(&self, s: &mut BoardSession) -> Result<CheckOutput, StepError> {
        match &self.kind {
            CheckKind::Shell(c) => c.run(s, self.via, self.timeout).await,
        }
    }
}
