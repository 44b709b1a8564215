//! What a use of the engine puts on top of its steps. `hil run`, `nightly` and `bisect`
//! run every check (nightly and bisect differ above the engine: which builds, what they
//! compare); `checklist` stops at the first step that does not pass, boots in stages so
//! the blocker says how far the board got, and may let an operator retry a step.

use crate::report::CaseReport;
use std::sync::Arc;

/// Asked at a step that did not pass; `true` runs the step again (after a fix).
pub type RetryPrompt = Arc<dyn Fn(&CaseReport) -> bool + Send + Sync>;

#[derive(Clone, Default)]
pub struct Policy {
    /// Stop at the first step (boot stage or check) that does not pass; later checks are
    /// reported `skipped`.
    pub stop_at_first_blocker: bool,
    /// Boot as three cases (`console alive`, `bootloader reached`, `kernel boots`) instead
    /// of one `boot` case.
    pub staged_boot: bool,
    /// Queue for a board another run holds instead of failing at once.
    pub wait_for_lease: bool,
    /// At a blocker, ask whether to run the step again.
    pub retry_prompt: Option<RetryPrompt>,
}

impl Policy {
    /// `hil run`: every check, one boot case; `wait` from `--wait`.
    pub fn run(wait: bool) -> Policy {
        Policy {
            wait_for_lease: wait,
            ..Policy::default()
        }
    }

    /// `hil nightly` and `hil bisect`: every check; they queue for a busy board.
    pub fn batch() -> Policy {
        Policy::run(true)
    }

    /// `hil checklist`: stop at the first blocker, staged boot; queues for a busy board
    /// like `hil run --wait` when `wait`, else refuses naming the holder.
    pub fn checklist(wait: bool, retry_prompt: Option<RetryPrompt>) -> Policy {
        Policy {
            stop_at_first_blocker: true,
            staged_boot: true,
            wait_for_lease: wait,
            retry_prompt,
        }
    }
}
