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
    /// Nothing was tested: no check reached pass or fail (all blocked or skipped). Never
    /// green: a CI job whose board tested nothing must not look like one that passed.
    pub const NOTHING_TESTED: i32 = 5;
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
    pub const ALL: [Outcome; 6] = [
        Outcome::Pass,
        Outcome::Fail,
        Outcome::Blocked,
        Outcome::Skipped,
        Outcome::InfraError,
        Outcome::HarnessError,
    ];

    /// The name in results.json and the history (`error:infrastructure`...).
    pub fn json_name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Blocked => "blocked",
            Outcome::Skipped => "skipped",
            Outcome::InfraError => "error:infrastructure",
            Outcome::HarnessError => "error:harness",
        }
    }

    pub fn from_json_name(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.json_name() == name)
    }

    /// Lab or harness trouble: no verdict on the DUT.
    pub fn is_error(self) -> bool {
        matches!(self, Outcome::InfraError | Outcome::HarnessError)
    }

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

/// The exit status for a set of check outcomes: a DUT failure wins over lab trouble (it is
/// what a nightly job must flag), lab trouble over a harness bug, a harness bug over a run
/// that tested nothing, and a run in which some check passed and none failed is 0. Only
/// the outcomes of checks belong here, not the engine's own steps (a `boot` that passed
/// tested nothing the suite asked for): see [`exit_code_of_cases`].
pub fn exit_code<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> i32 {
    let (mut fail, mut infra, mut harness, mut tested) = (false, false, false, false);
    for o in outcomes {
        match o {
            Outcome::Fail => fail = true,
            Outcome::InfraError => infra = true,
            Outcome::HarnessError => harness = true,
            Outcome::Pass => tested = true,
            Outcome::Blocked | Outcome::Skipped => {}
        }
    }
    if fail {
        exit::FAIL
    } else if infra {
        exit::INFRASTRUCTURE
    } else if harness {
        exit::HARNESS
    } else if tested {
        exit::OK
    } else {
        exit::NOTHING_TESTED
    }
}

/// The case kinds the engine itself reports (they are steps, not checks): their errors
/// count, their passes do not make a run "tested".
pub const ENGINE_STEP_KINDS: &[&str] =
    &["lease", "prepare", "flash", "boot", "teardown", "harness"];

/// [`exit_code`] over a report's cases given as (kind, outcome): engine steps count only
/// when they did not pass.
pub fn exit_code_of_cases<'a>(cases: impl IntoIterator<Item = (&'a str, &'a Outcome)>) -> i32 {
    exit_code(cases.into_iter().filter_map(|(kind, o)| {
        (!ENGINE_STEP_KINDS.contains(&kind) || *o != Outcome::Pass).then_some(o)
    }))
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
        // Nothing tested is never green.
        assert_eq!(exit_code(&[Outcome::Blocked, Outcome::Skipped]), 5);
        assert_eq!(exit_code(&[]), 5);
    }

    #[test]
    fn a_passing_boot_alone_is_nothing_tested() {
        let boot = ("boot", &Outcome::Pass);
        let blocked = ("vfio-platform", &Outcome::Blocked);
        assert_eq!(exit_code_of_cases([boot, blocked]), exit::NOTHING_TESTED);
        assert_eq!(
            exit_code_of_cases([("boot", &Outcome::InfraError), blocked]),
            exit::INFRASTRUCTURE
        );
        assert_eq!(
            exit_code_of_cases([boot, ("shell", &Outcome::Pass)]),
            exit::OK
        );
    }

    #[test]
    fn json_names_follow_design() {
        let s = serde_json::to_string(&[Outcome::InfraError, Outcome::Pass]).unwrap();
        assert_eq!(s, r#"["error:infrastructure","pass"]"#);
        for o in Outcome::ALL {
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.json_name()));
            assert_eq!(Outcome::from_json_name(o.json_name()), Some(o));
        }
    }
}
