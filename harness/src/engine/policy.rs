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
    /// Place in a busy board's queue: higher is served first.
    pub priority: i32,
    /// The longest wait in a board's queue; `None`: as long as it takes.
    pub queue_timeout: Option<std::time::Duration>,
    /// At a blocker, ask whether to run the step again.
    pub retry_prompt: Option<RetryPrompt>,
    /// A health run: allowed on a board out of service, and puts it back in service when
    /// it passes (`hil checklist`, `hil run --health`).
    pub health: bool,
    /// Followers of a board's console (`hil console BOARD` while this run holds it) may
    /// type at the board (`hil run --console-input`); else they only watch.
    pub follower_input: bool,
}

impl Policy {
    /// `hil run`: every check, one boot case; `wait` from `--wait`.
    pub fn run(wait: bool) -> Policy {
        Policy {
            wait_for_lease: wait,
            ..Policy::default()
        }
    }

    /// `hil nightly` and `hil bisect`: every check; they queue for a busy board with the
    /// priority of `HIL_PRIORITY` (0 when unset; when not a number, 0 with a warning: a
    /// matrix of boards is not refused for its queue place).
    pub fn batch() -> Policy {
        let priority = crate::lease::queue::priority_from_env().unwrap_or_else(|e| {
            eprintln!("hil: warning: {e}; queueing with priority 0");
            0
        });
        Policy {
            priority,
            ..Policy::run(true)
        }
    }

    /// `hil checklist`: stop at the first blocker, staged boot; queues for a busy board
    /// like `hil run --wait` when `wait`, else refuses naming the holder.
    pub fn checklist(wait: bool, retry_prompt: Option<RetryPrompt>) -> Policy {
        Policy {
            stop_at_first_blocker: true,
            staged_boot: true,
            wait_for_lease: wait,
            retry_prompt,
            health: true,
            ..Policy::default()
        }
    }
}

/// How a command that waits for a busy board queues: `--priority`, `--queue-timeout`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct QueueArgs {
    /// Place in a busy board's queue: higher is served first, equal ones in order of
    /// arrival (default: $HIL_PRIORITY, else 0).
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Give up after this long in a busy board's queue (an infrastructure error naming
    /// the board and its holder); implies --wait. Default: wait as long as it takes.
    #[arg(long = "queue-timeout", value_name = "SECONDS")]
    pub queue_timeout: Option<u64>,
}

impl QueueArgs {
    /// Puts the queueing into `policy`; `--queue-timeout` turns waiting on.
    pub fn apply(&self, policy: &mut Policy) -> Result<(), crate::error::UsageError> {
        policy.priority = match self.priority {
            Some(p) => p,
            None => crate::lease::queue::priority_from_env().map_err(crate::error::UsageError)?,
        };
        if let Some(s) = self.queue_timeout {
            if s == 0 {
                return Err(crate::error::UsageError(
                    "--queue-timeout 0: give a number of seconds above 0, or leave --wait out to be refused at once".into(),
                ));
            }
            policy.queue_timeout = Some(std::time::Duration::from_secs(s));
            policy.wait_for_lease = true;
        }
        Ok(())
    }
}
