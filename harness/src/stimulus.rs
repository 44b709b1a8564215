//! Stimuli: something outside the DUT that makes an input change (a button press, a relay
//! toggling a line), fired by a check at the moment it is ready to count the effect.
//!
//! - `qmp`: a QMP command to the guest's QEMU on the board (sim: `system_powerdown` pulses
//!   the guest PL061's power-key line);
//! - `command`: a lab-host command with `sh -c` (a relay, a lab-host GPIO), with a limit;
//! - `manual`: an operator prompt on stderr, confirmed with Enter on a tty (bring-up desks).
//!
//! In a suite it is a table in the check's parameters:
//! `stimulus = { kind = "qmp", command = "system_powerdown" }`.

use crate::boot::BoardSession;
use crate::error::StepError;
use serde::Deserialize;
use std::io::IsTerminal;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Stimulus {
    /// A QMP command (no arguments) to the guest's QEMU, e.g. `system_powerdown`.
    Qmp { command: String },
    /// A lab-host command run with `sh -c`; a non-zero exit or overrun is lab trouble.
    Command {
        run: String,
        #[serde(default = "default_command_timeout")]
        timeout_s: u64,
    },
    /// The operator does it and presses Enter.
    Manual {
        prompt: String,
        #[serde(default = "default_manual_timeout")]
        timeout_s: u64,
    },
}

fn default_command_timeout() -> u64 {
    30
}

fn default_manual_timeout() -> u64 {
    300
}

impl Stimulus {
    /// A one-line description for messages.
    pub fn describe(&self) -> String {
        match self {
            Stimulus::Qmp { command } => format!("QMP {command}"),
            Stimulus::Command { run, .. } => format!("command `{run}`"),
            Stimulus::Manual { .. } => "operator action".into(),
        }
    }

    /// Checks the values serde cannot: a QMP command is one identifier, limits are > 0.
    /// Returns (field, message) for a [`crate::config::ConfigError`].
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match self {
            Stimulus::Qmp { command } => {
                if command.is_empty()
                    || !command
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err((
                        "command",
                        format!(
                            "is {command:?}; expected a QMP command name such as system_powerdown"
                        ),
                    ));
                }
            }
            Stimulus::Command { run, timeout_s } => {
                if run.trim().is_empty() {
                    return Err(("run", "is empty; expected a shell command".into()));
                }
                if *timeout_s == 0 {
                    return Err((
                        "timeout_s",
                        "is 0; expected a positive number of seconds".into(),
                    ));
                }
            }
            Stimulus::Manual { timeout_s, .. } => {
                if *timeout_s == 0 {
                    return Err((
                        "timeout_s",
                        "is 0; expected a positive number of seconds".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    pub async fn fire(&self, s: &mut BoardSession) -> Result<(), StepError> {
        match self {
            Stimulus::Qmp { command } => {
                if let Some(c) = s.guest_console() {
                    c.mark(format!("stimulus: QMP {command}"));
                }
                let g = s.guest().ok_or_else(|| {
                    StepError::Blocked(format!(
                        "QMP stimulus {command}: the guest is not running (use via = \"guest\")"
                    ))
                })?;
                g.qmp(command).await.map(|_| ())
            }
            Stimulus::Command { run, timeout_s } => {
                run_command(run, Duration::from_secs(*timeout_s)).await
            }
            Stimulus::Manual { prompt, timeout_s } => {
                manual(prompt, Duration::from_secs(*timeout_s)).await
            }
        }
    }
}

/// Runs a suite's lab-host stimulus command (a relay, a lab-host GPIO).
pub async fn run_command(cmd: &str, timeout: Duration) -> Result<(), StepError> {
    crate::host_cmd::run_sh("stimulus command", cmd, timeout)
        .await
        .map_err(StepError::Infra)
}

async fn manual(prompt: &str, timeout: Duration) -> Result<(), StepError> {
    if !std::io::stdin().is_terminal() {
        return Err(StepError::Infra(format!(
            "manual stimulus needs an operator (stdin is not a tty): {prompt}"
        )));
    }
    eprintln!("hil: {prompt} — then press Enter ({} s)", timeout.as_secs());
    let mut line = String::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    match tokio::time::timeout(timeout, stdin.read_line(&mut line)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(StepError::Infra(format!(
            "reading operator confirmation: {e}"
        ))),
        Err(_) => Err(StepError::Infra(format!(
            "manual stimulus needs an operator: nobody confirmed within {} s",
            timeout.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Stimulus, toml::de::Error> {
        #[derive(Deserialize)]
        struct T {
            stimulus: Stimulus,
        }
        toml::from_str::<T>(s).map(|t| t.stimulus)
    }

    #[test]
    fn deserializes_each_kind() {
        assert_eq!(
            parse(r#"stimulus = { kind = "qmp", command = "system_powerdown" }"#).unwrap(),
            Stimulus::Qmp {
                command: "system_powerdown".into()
            }
        );
        assert_eq!(
            parse(r#"stimulus = { kind = "command", run = "relay 3 pulse" }"#).unwrap(),
            Stimulus::Command {
                run: "relay 3 pulse".into(),
                timeout_s: 30
            }
        );
        assert_eq!(
            parse(r#"stimulus = { kind = "manual", prompt = "press SW3", timeout_s = 20 }"#)
                .unwrap(),
            Stimulus::Manual {
                prompt: "press SW3".into(),
                timeout_s: 20
            }
        );
    }

    #[test]
    fn rejects_unknown_kinds_and_keys() {
        let e = parse(r#"stimulus = { kind = "relay", run = "x" }"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `relay`"), "{e}");
        let e = parse(r#"stimulus = { kind = "qmp", command = "x", args = 1 }"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `args`"), "{e}");
        let e = parse(r#"stimulus = { kind = "command" }"#).unwrap_err();
        assert!(e.to_string().contains("missing field `run`"), "{e}");
    }

    #[test]
    fn validates_values() {
        let q = Stimulus::Qmp {
            command: "system_powerdown; quit".into(),
        };
        assert_eq!(q.validate().unwrap_err().0, "command");
        let c = Stimulus::Command {
            run: "true".into(),
            timeout_s: 0,
        };
        assert_eq!(c.validate().unwrap_err().0, "timeout_s");
        assert!(Stimulus::Qmp {
            command: "system_powerdown".into()
        }
        .validate()
        .is_ok());
    }

    #[tokio::test]
    async fn command_errors_are_lab_trouble() {
        assert!(run_command("true", Duration::from_secs(5)).await.is_ok());
        let e = run_command("echo relay stuck >&2; exit 3", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, StepError::Infra(_)));
        assert!(e.to_string().contains("relay stuck"), "{e}");
        let e = run_command("sleep 5", Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("did not finish within"), "{e}");
    }
}
