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
            StepError::Ssh(SshError::Timeout { .. }) => Outcome::Fail,
            StepError::Ssh(_) => Outcome::InfraError,
            StepError::Infra(_) => Outcome::InfraError,
            StepError::Blocked(_) => Outcome::Blocked,
            StepError::CheckTimeout(_) => Outcome::Fail,
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
}
