//! What `hil run` shows while it works. The board engines publish when a step starts and
//! ends ([`crate::engine::Event`]); the dispatcher hands those to one [`Progress`], which
//! is the only place that decides how they look:
//!
//! - [`Mode::Live`] (stderr is a terminal): one line per board, redrawn in place, with the
//!   board, its current step and the time spent against the step's time-out;
//! - [`Mode::Lines`] (CI logs, pipes): a line when a step starts and one when it ends, with
//!   its time, nothing redrawn;
//! - [`Mode::Quiet`] (runs inside nightly, bisect and checklist, which print their own
//!   account): only the line of each finished testcase.

use crate::outcome::Outcome;
use crate::report::summary::mark;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Lines,
    Quiet,
}

impl Mode {
    /// Live lines on a terminal, plain lines otherwise.
    pub fn for_stderr() -> Mode {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Mode::Live
        } else {
            Mode::Lines
        }
    }
}

/// Where one board is: its current step (none between steps and at the end).
#[derive(Debug, Clone, PartialEq)]
pub struct BoardState {
    pub board: String,
    pub step: Option<Step>,
    /// Steps finished so far (testcases and passed setup steps).
    pub done: usize,
    /// The outcome of the last finished step that did not pass, if any.
    pub last_problem: Option<(String, Outcome)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub started: Instant,
    pub timeout: Option<Duration>,
}

/// The live line of one board at `now`: `board  step  12.3 s / 60 s  [####------]`. A
/// pure function of the state so that the terminal form can be tested without one.
pub fn live_line(s: &BoardState, now: Instant, board_width: usize) -> String {
    let mut line = format!("{:<board_width$}", s.board);
    match &s.step {
        None => {
            line.push_str(&format!("  idle ({} step(s) done)", s.done));
        }
        Some(step) => {
            let elapsed = now.saturating_duration_since(step.started);
            line.push_str(&format!("  {}  {:.1} s", step.name, elapsed.as_secs_f64()));
            if let Some(t) = step.timeout.filter(|t| !t.is_zero()) {
                let frac = (elapsed.as_secs_f64() / t.as_secs_f64()).clamp(0.0, 1.0);
                let filled = (frac * 10.0).round() as usize;
                line.push_str(&format!(
                    " / {} s  [{}{}]",
                    secs(t),
                    "#".repeat(filled),
                    "-".repeat(10 - filled)
                ));
            }
        }
    }
    if let Some((name, o)) = &s.last_problem {
        line.push_str(&format!("  (last problem: {name} {})", o.label()));
    }
    line
}

/// The line of a step that starts (plain form).
pub fn start_line(board: &str, step: &str, timeout: Option<Duration>) -> String {
    match timeout {
        Some(t) => format!("hil: {board}: ▶ {step} (time-out {} s)", secs(t)),
        None => format!("hil: {board}: ▶ {step}"),
    }
}

/// The line of a step that ended, with its time; the message follows on the next line
/// for a step that did not pass.
pub fn end_line(
    board: &str,
    step: &str,
    outcome: Outcome,
    duration_s: f64,
    message: &str,
) -> String {
    let mut s = format!("hil: {board}: {} {step} ({duration_s:.1} s)", mark(outcome));
    if outcome != Outcome::Pass {
        s.push_str(&format!(": {}", outcome.label()));
        if !message.is_empty() {
            s.push_str(&format!(
                "\n      {}",
                message.chars().take(400).collect::<String>()
            ));
        }
    }
    s
}

/// Whole seconds when the limit is whole, else one decimal.
fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.1}", d.as_secs_f64())
    }
}

/// The run's progress display (see the module's documentation).
pub struct Progress {
    mode: Mode,
    boards: BTreeMap<String, BoardState>,
    width: usize,
    bars: Option<(MultiProgress, BTreeMap<String, ProgressBar>)>,
}

impl Progress {
    pub fn new(mode: Mode, boards: &[String]) -> Progress {
        let width = boards.iter().map(|b| b.chars().count()).max().unwrap_or(0);
        let states = boards
            .iter()
            .map(|b| {
                (
                    b.clone(),
                    BoardState {
                        board: b.clone(),
                        step: None,
                        done: 0,
                        last_problem: None,
                    },
                )
            })
            .collect();
        let bars = (mode == Mode::Live).then(|| {
            let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let bars = boards
                .iter()
                .map(|b| {
                    let pb = mp.add(ProgressBar::new_spinner());
                    pb.set_style(style.clone());
                    (b.clone(), pb)
                })
                .collect();
            (mp, bars)
        });
        let mut p = Progress {
            mode,
            boards: states,
            width,
            bars,
        };
        p.tick();
        p
    }

    /// How often the live lines are redrawn (the elapsed time moves); `None` when nothing
    /// is redrawn.
    pub fn tick_every(&self) -> Option<Duration> {
        (self.mode == Mode::Live).then_some(Duration::from_millis(250))
    }

    /// A line of the run's own (start, interruption, end), above the live lines.
    pub fn note(&self, line: &str) {
        match &self.bars {
            Some((mp, _)) => {
                let _ = mp.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    pub fn started(&mut self, board: &str, step: &str, timeout: Option<Duration>) {
        if self.mode == Mode::Lines {
            eprintln!("{}", start_line(board, step, timeout));
        }
        if let Some(s) = self.boards.get_mut(board) {
            s.step = Some(Step {
                name: step.to_string(),
                started: Instant::now(),
                timeout,
            });
        }
        self.tick();
    }

    /// A step ended. `testcase`: it ended as a testcase of the report (a check, the
    /// boot), whose line every mode prints; the setup steps that pass without one (lease,
    /// prepare, teardown) are shown only where steps are (live and plain lines).
    pub fn ended(
        &mut self,
        board: &str,
        step: &str,
        outcome: Outcome,
        duration_s: f64,
        message: &str,
        testcase: bool,
    ) {
        if testcase || self.mode != Mode::Quiet {
            self.note(&end_line(board, step, outcome, duration_s, message));
        }
        if let Some(s) = self.boards.get_mut(board) {
            if s.step.as_ref().is_some_and(|st| st.name == step) {
                s.step = None;
            }
            s.done += 1;
            if outcome != Outcome::Pass {
                s.last_problem = Some((step.to_string(), outcome));
            }
        }
        self.tick();
    }

    /// Redraws the live lines.
    pub fn tick(&mut self) {
        let Some((_, bars)) = &self.bars else {
            return;
        };
        let now = Instant::now();
        for (name, pb) in bars {
            if let Some(s) = self.boards.get(name) {
                pb.set_message(live_line(s, now, self.width));
            }
        }
    }

    /// Clears the live lines: what stays on the terminal is the plain account above them.
    pub fn finish(&mut self) {
        if let Some((mp, bars)) = self.bars.take() {
            for pb in bars.values() {
                pb.finish_and_clear();
            }
            let _ = mp.clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(step: Option<Step>) -> BoardState {
        BoardState {
            board: "rk3588-a".into(),
            step,
            done: 2,
            last_problem: None,
        }
    }

    #[test]
    fn a_live_line_shows_the_board_its_step_and_the_time_against_the_time_out() {
        let t0 = Instant::now();
        let s = state(Some(Step {
            name: "pcie-link".into(),
            started: t0,
            timeout: Some(Duration::from_secs(60)),
        }));
        assert_eq!(
            live_line(&s, t0 + Duration::from_millis(12_340), 10),
            "rk3588-a    pcie-link  12.3 s / 60 s  [##--------]"
        );
        // Past its limit (the grace before the step is cut): the bar stays full.
        assert_eq!(
            live_line(&s, t0 + Duration::from_secs(65), 8),
            "rk3588-a  pcie-link  65.0 s / 60 s  [##########]"
        );
    }

    #[test]
    fn a_live_line_without_a_limit_or_a_step_says_so() {
        let t0 = Instant::now();
        let s = state(Some(Step {
            name: "prepare".into(),
            started: t0,
            timeout: None,
        }));
        assert_eq!(
            live_line(&s, t0 + Duration::from_millis(1500), 8),
            "rk3588-a  prepare  1.5 s"
        );
        let mut idle = state(None);
        idle.last_problem = Some(("boot".into(), Outcome::InfraError));
        assert_eq!(
            live_line(&idle, t0, 8),
            "rk3588-a  idle (2 step(s) done)  (last problem: boot error: infrastructure)"
        );
    }

    #[test]
    fn plain_lines_name_the_step_its_limit_and_its_time() {
        assert_eq!(
            start_line("b", "boot", Some(Duration::from_millis(40_500))),
            "hil: b: ▶ boot (time-out 40.5 s)"
        );
        assert_eq!(start_line("b", "lease", None), "hil: b: ▶ lease");
        assert_eq!(
            end_line("b", "kernel", Outcome::Pass, 0.04, "ignored"),
            "hil: b: ✔ kernel (0.0 s)"
        );
        assert_eq!(
            end_line("b", "kernel", Outcome::Fail, 1.26, "got 6.2"),
            "hil: b: ✘ kernel (1.3 s): fail\n      got 6.2"
        );
    }
}
