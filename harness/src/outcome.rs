//! The outcome taxonomy of DESIGN.md and the process exit codes derived from it.
//!
//! Every check ends in exactly one [`Outcome`]; errors are classified into an outcome once,
//! where they are turned into a result (see [`crate::runner`]), never in the checks.

use serde::{Deserialize, Serialize};

/// Process exit codes, one place for all of them.
pub mod exit {
    /// Everything passed (or was skipped/blocked).
    pub const OK: i32 = 0;
    /// At least one check failed: the DUT misbehaved.
    pub const FAIL: i32 = 1;
    /// Bad usage or configuration (board, suite, CLI).
    pub const CONFIG: i32 = 2;
    /// Lab equipment failed (power, console, TFTP, SSH before boot...).
    pub const INFRASTRUCTURE: i32 = 3;
    /// A bug in hil itself.
    pub const HARNESS: i32 = 4;
    /// Interrupted by Ctrl-C / SIGTERM.
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    Blocked,
    Skipped,
    /// Lab equipment failed.
    #[serde(rename = "error:infrastructure")]
    InfraError,
    /// A bug in hil.
    #[serde(rename = "error:harness")]
    HarnessError,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Blocked => "blocked",
            Outcome::Skipped => "skipped",
            Outcome::InfraError => "error: infrastructure",
            Outcome::HarnessError => "error: harness",
        }
    }
}

/// The exit status for a set of outcomes: a DUT failure wins over lab trouble (it is what a
/// nightly job must flag), lab trouble over a harness bug, and an all-green run is 0.
pub fn exit_code<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> i32 {
    let mut code = exit::OK;
    for o in outcomes {
        let c = match o {
            Outcome::Fail => exit::FAIL,
            Outcome::InfraError => exit::INFRASTRUCTURE,
            Outcome::HarnessError => exit::HARNESS,
            _ => exit::OK,
        };
        code = match (code, c) {
            (exit::FAIL, _) | (_, exit::FAIL) => exit::FAIL,
            (exit::INFRASTRUCTURE, _) | (_, exit::INFRASTRUCTURE) => exit::INFRASTRUCTURE,
            (a, b) => a.max(b),
        };
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_precedence() {
        assert_eq!(
            exit_code(&[Outcome::Pass, Outcome::Skipped, Outcome::Blocked]),
            0
        );
        assert_eq!(exit_code(&[Outcome::Pass, Outcome::InfraError]), 3);
        assert_eq!(exit_code(&[Outcome::InfraError, Outcome::Fail]), 1);
        assert_eq!(exit_code(&[Outcome::HarnessError]), 4);
        assert_eq!(exit_code(&[Outcome::HarnessError, Outcome::InfraError]), 3);
        assert_eq!(exit_code(&[]), 0);
    }

    #[test]
    fn json_names_follow_design() {
        let s = serde_json::to_string(&[Outcome::InfraError, Outcome::Pass]).unwrap();
        assert_eq!(s, r#"["error:infrastructure","pass"]"#);
    }
}
