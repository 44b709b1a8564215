//! Errors of a step on a board, and their classification into an outcome — done here,
//! once, so checks and transports only say what happened, never what it means.

use crate::expect::ExpectError;
use crate::outcome::Outcome;
use crate::power::PowerError;
use crate::shell::ShellError;
use crate::ssh::SshError;

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Power(#[from] PowerError),
    #[error(transparent)]
    Console(#[from] ExpectError),
    #[error(transparent)]
    Shell(#[from] ShellError),
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// Lab equipment trouble found by a step (bootloader silent, TFTP failed...).
    #[error("{0}")]
    Infra(String),
    /// A precondition missing on the DUT.
    #[error("{0}")]
    Blocked(String),
    /// The kernel refused a vfio-pci bind.
    #[error("{0}")]
    BindFailed(String),
    /// The guest misbehaved while booting (exited, hung).
    #[error("{0}")]
    GuestFailed(String),
    /// The check's limit passed.
    #[error("did not finish within {0} s")]
    CheckTimeout(u64),
    /// The board's lease expired or was taken over: nothing more may be done to the
    /// board, which someone else may hold by now.
    #[error("{0}")]
    LeaseLost(String),
    /// The suite's whole-job deadline passed.
    #[error("job deadline of {secs} s reached (suite deadline_s)")]
    JobDeadline { secs: u64 },
    /// A bug in hil (a panic caught in a step, an impossible state).
    #[error("{0}")]
    Harness(String),
}

impl StepError {
    /// The one place errors become outcomes (DESIGN.md, "Outcomes").
    pub fn outcome(&self) -> Outcome {
        match self {
            StepError::Power(_) => Outcome::InfraError,
            StepError::Console(e) | StepError::Shell(ShellError::Expect(e)) => match e {
                // A panic or Oops while the DUT was asked to do something: the DUT failed.
                ExpectError::Death { .. } => Outcome::Fail,
                ExpectError::Closed { .. } => Outcome::InfraError,
                // The console said nothing we expected: the board is not responding.
                ExpectError::Timeout { .. } => Outcome::InfraError,
            },
            StepError::Shell(ShellError::Timeout { .. }) => Outcome::Fail,
            // hil will not type it: the check cannot run as written.
            StepError::Shell(ShellError::Unsafe { .. }) => Outcome::Blocked,
            StepError::Ssh(SshError::Timeout { .. }) => Outcome::Fail,
            StepError::Ssh(_) => Outcome::InfraError,
            StepError::Infra(_) => Outcome::InfraError,
            StepError::Blocked(_) => Outcome::Blocked,
            StepError::CheckTimeout(_) => Outcome::Fail,
            StepError::LeaseLost(_) | StepError::JobDeadline { .. } => Outcome::InfraError,
            StepError::GuestFailed(_) | StepError::BindFailed(_) => Outcome::Fail,
            StepError::Harness(_) => Outcome::HarnessError,
        }
    }

    /// The board needs a fresh boot before it can be used again.
    pub fn board_lost(&self) -> bool {
        matches!(
            self,
            StepError::Console(ExpectError::Death { .. } | ExpectError::Closed { .. })
                | StepError::Shell(ShellError::Expect(
                    ExpectError::Death { .. } | ExpectError::Closed { .. }
                ))
        )
    }

    /// Lab equipment is gone: further checks on this board would only repeat the error.
    pub fn lab_broken(&self) -> bool {
        self.outcome() == Outcome::InfraError
    }

    /// A power cycle and a fresh boot may cure it (an infrastructure retry): lab trouble,
    /// but not the end of the job or of the lease.
    pub fn retryable(&self) -> bool {
        self.lab_broken()
            && !matches!(
                self,
                StepError::LeaseLost(_) | StepError::JobDeadline { .. }
            )
    }
}

/// Lab trouble that ends a whole command (not one step of a board run): a sim lab that
/// cannot be built, a board that cannot be leased, a console that does not open. Exit 3.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct LabTrouble {
    pub what: String,
    /// What the operator can do about it.
    pub hint: Option<String>,
}

impl LabTrouble {
    pub fn new(what: impl Into<String>) -> LabTrouble {
        LabTrouble {
            what: what.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> LabTrouble {
        self.hint = Some(hint.into());
        self
    }
}

/// Bad usage or configuration found before any board was touched. Exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The one place an error that ends a command becomes an exit status, with the hint to
/// print under it. Configuration and usage errors are 2, lab trouble 3; anything else is
/// unexpected, and an unexpected error is a bug in hil (4), never mistaken for the lab's.
pub fn classify(e: &anyhow::Error) -> (i32, Option<String>) {
    use crate::outcome::exit;
    for cause in e.chain() {
        if cause.is::<crate::config::ConfigErrors>()
            || cause.is::<crate::config::ConfigError>()
            || cause.is::<UsageError>()
        {
            return (exit::CONFIG, None);
        }
        if let Some(h) = cause.downcast_ref::<crate::nightly::history::HistoryError>() {
            use crate::nightly::history::HistoryError;
            return match h {
                HistoryError::Missing { .. } | HistoryError::UnknownCheck { .. } => {
                    (exit::CONFIG, None)
                }
                HistoryError::Db { .. } => (exit::INFRASTRUCTURE, h.hint().map(String::from)),
            };
        }
        if let Some(t) = cause.downcast_ref::<LabTrouble>() {
            return (exit::INFRASTRUCTURE, t.hint.clone());
        }
        if let Some(l) = cause.downcast_ref::<crate::lease::LeaseError>() {
            let hint = match l {
                crate::lease::LeaseError::Busy { .. } => {
                    Some("wait for the holder, or run with --wait to queue for the board".into())
                }
                crate::lease::LeaseError::QueueTimeout { .. } => Some(
                    "the board stayed busy: give a longer --queue-timeout or a higher --priority; `hil boards` shows its holder and queue".into(),
                ),
                crate::lease::LeaseError::Db { .. } => Some(
                    "check that the lease database is up and reachable from this host, or unset HIL_DATABASE_URL to use this host's lease files".into(),
                ),
                _ => None,
            };
            return (exit::INFRASTRUCTURE, hint);
        }
        if cause.is::<PowerError>() || cause.is::<SshError>() || cause.is::<StepError>() {
            return (exit::INFRASTRUCTURE, None);
        }
    }
    (
        exit::HARNESS,
        Some("this is a bug in hil: please report it with the command and this message".into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::exit;

    #[test]
    fn unexpected_errors_are_harness_errors_not_lab_trouble() {
        let e = anyhow::anyhow!("index out of range");
        assert_eq!(classify(&e).0, exit::HARNESS);
        let e = anyhow::Error::new(LabTrouble::new("apt download failed")).context("lab build");
        assert_eq!(classify(&e).0, exit::INFRASTRUCTURE);
        let e = anyhow::Error::new(UsageError("--board twice".into()));
        assert_eq!(classify(&e).0, exit::CONFIG);
        let busy = crate::lease::LeaseError::Busy {
            board: "b".into(),
            holder: "job 1".into(),
        };
        let (code, hint) = classify(&anyhow::Error::new(busy));
        assert_eq!(code, exit::INFRASTRUCTURE);
        assert!(hint.unwrap().contains("--wait"));
    }
}
