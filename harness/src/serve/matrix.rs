//! The board × check matrix over the newest runs: a row per (board, suite, check), a
//! column per run (oldest left), a cell per result. Pure: history rows in, matrix out.
//!
//! A cell is "flaky" when its check flipped between pass and fail at least twice within
//! the lab's flaky window ending at that run, the rule `hil nightly` names flaky checks
//! by; the window may reach into runs older than the columns shown, so the caller passes
//! those runs too (`window - 1` of them) and only the newest `last` become columns.

use crate::nightly::history::window::{ResultCell, RunInfo};
use crate::outcome::Outcome;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// What a cell shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellState {
    Pass,
    Fail,
    /// Pass or fail, but flipping within the flaky window.
    Flaky,
    Blocked,
    Skipped,
    InfraError,
    HarnessError,
    /// The run has no result for this row (the check was not in its suite then, or the
    /// board was not in the lab), or one whose outcome this hil does not know.
    Missing,
}

impl CellState {
    pub const ALL: [CellState; 8] = [
        CellState::Pass,
        CellState::Fail,
        CellState::Flaky,
        CellState::Blocked,
        CellState::Skipped,
        CellState::InfraError,
        CellState::HarnessError,
        CellState::Missing,
    ];

    fn of(o: Outcome) -> CellState {
        match o {
            Outcome::Pass => CellState::Pass,
            Outcome::Fail => CellState::Fail,
            Outcome::Blocked => CellState::Blocked,
            Outcome::Skipped => CellState::Skipped,
            Outcome::InfraError => CellState::InfraError,
            Outcome::HarnessError => CellState::HarnessError,
        }
    }

    /// The CSS class: report.html's outcome classes, plus the two only the matrix has.
    pub fn class(self) -> &'static str {
        match self {
            CellState::Pass => "pass",
            CellState::Fail => "fail",
            CellState::Flaky => "flaky",
            CellState::Blocked => "blocked",
            CellState::Skipped => "skipped",
            CellState::InfraError => "infra",
            CellState::HarnessError => "harness",
            CellState::Missing => "missing",
        }
    }

    /// The symbol: report.html's outcome marks, plus the two only the matrix has.
    pub fn symbol(self) -> &'static str {
        use crate::report::summary::mark;
        match self {
            CellState::Pass => mark(Outcome::Pass),
            CellState::Fail => mark(Outcome::Fail),
            CellState::Flaky => "≈",
            CellState::Blocked => mark(Outcome::Blocked),
            CellState::Skipped => mark(Outcome::Skipped),
            CellState::InfraError => mark(Outcome::InfraError),
            CellState::HarnessError => "✱",
            CellState::Missing => "·",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CellState::Pass => "pass",
            CellState::Fail => "fail",
            CellState::Flaky => "flaky",
            CellState::Blocked => "blocked",
            CellState::Skipped => "skipped",
            CellState::InfraError => "infrastructure error",
            CellState::HarnessError => "harness error",
            CellState::Missing => "missing",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub state: CellState,
    /// The recorded outcome (`pass`, `error:infrastructure`...), none when missing.
    pub outcome: Option<String>,
    /// The first line of the result's message.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub board: String,
    pub suite: String,
    pub check: String,
    /// One per column of [`Matrix::runs`], in the same order.
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matrix {
    /// The columns, oldest first.
    pub runs: Vec<RunInfo>,
    /// Sorted by board, check, suite.
    pub rows: Vec<Row>,
}

impl Matrix {
    /// Cells per state, in [`CellState::ALL`] order, states with none left out.
    pub fn counts(&self) -> Vec<(CellState, usize)> {
        let mut n: HashMap<CellState, usize> = HashMap::new();
        for c in self.rows.iter().flat_map(|r| &r.cells) {
            *n.entry(c.state).or_default() += 1;
        }
        CellState::ALL
            .into_iter()
            .filter_map(|s| Some((s, *n.get(&s)?)))
            .collect()
    }
}

/// `runs`: newest first, as the history returns them (`last` columns plus the older runs
/// the flaky window reaches into); `results`: the results of those runs.
pub fn build(runs: &[RunInfo], results: &[ResultCell], last: usize, window: usize) -> Matrix {
    let mut oldest_first: Vec<&RunInfo> = runs.iter().collect();
    oldest_first.reverse();
    let col_of: HashMap<&str, usize> = oldest_first
        .iter()
        .enumerate()
        .map(|(i, r)| (r.run_id.as_str(), i))
        .collect();
    let all = oldest_first.len();
    let first_shown = all.saturating_sub(last);

    // (board, check, suite) → the outcome and message per run, oldest first.
    type Slots<'a> = Vec<Option<(&'a str, &'a str)>>;
    let mut grid: BTreeMap<(&str, &str, &str), Slots<'_>> = BTreeMap::new();
    for r in results {
        let Some(&i) = col_of.get(r.run_id.as_str()) else {
            continue;
        };
        let slots = grid
            .entry((r.board.as_str(), r.check.as_str(), r.suite.as_str()))
            .or_insert_with(|| vec![None; all]);
        slots[i] = Some((r.outcome.as_str(), r.message.as_str()));
    }

    let rows = grid
        .into_iter()
        // A row only the older, hidden runs have would be all "missing": left out.
        .filter(|(_, slots)| slots[first_shown..].iter().any(Option::is_some))
        .map(|((board, check, suite), slots)| {
            let outcomes: Vec<Option<Outcome>> = slots
                .iter()
                .map(|s| s.and_then(|(o, _)| Outcome::from_json_name(o)))
                .collect();
            let cells = (first_shown..all)
                .map(|i| {
                    let Some((name, message)) = slots[i] else {
                        return Cell {
                            state: CellState::Missing,
                            outcome: None,
                            message: String::new(),
                        };
                    };
                    let state = match outcomes[i] {
                        Some(Outcome::Pass | Outcome::Fail)
                            if flaky(&outcomes[i.saturating_sub(window.max(1) - 1)..=i]) =>
                        {
                            CellState::Flaky
                        }
                        Some(o) => CellState::of(o),
                        None => CellState::Missing,
                    };
                    Cell {
                        state,
                        outcome: Some(name.to_string()),
                        message: message.lines().next().unwrap_or_default().to_string(),
                    }
                })
                .collect();
            Row {
                board: board.to_string(),
                suite: suite.to_string(),
                check: check.to_string(),
                cells,
            }
        })
        .collect();
    Matrix {
        runs: oldest_first[first_shown..]
            .iter()
            .map(|r| (*r).clone())
            .collect(),
        rows,
    }
}

/// At least two pass/fail flips in `window` (other outcomes say nothing either way), as
/// `hil nightly` counts them.
fn flaky(window: &[Option<Outcome>]) -> bool {
    let seq: Vec<Outcome> = window
        .iter()
        .flatten()
        .copied()
        .filter(|o| matches!(o, Outcome::Pass | Outcome::Fail))
        .collect();
    seq.windows(2).filter(|w| w[0] != w[1]).count() >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(i: i64) -> RunInfo {
        RunInfo {
            run_id: format!("r{i}"),
            lab: "lab".into(),
            seq: i,
            started: format!("2026-12-0{i}T00:00:00Z"),
            host: "h".into(),
            report_dir: format!("/reports/r{i}"),
            exit_code: 0,
        }
    }

    fn res(run: i64, board: &str, check: &str, outcome: &str) -> ResultCell {
        ResultCell {
            run_id: format!("r{run}"),
            board: board.into(),
            suite: "s".into(),
            check: check.into(),
            outcome: outcome.into(),
            message: format!("{outcome} here\nsecond line"),
        }
    }

    fn states(r: &Row) -> Vec<CellState> {
        r.cells.iter().map(|c| c.state).collect()
    }

    #[test]
    fn columns_are_oldest_first_rows_sorted_and_gaps_are_missing() {
        // Newest first, as the history answers.
        let runs: Vec<RunInfo> = (1..=3).rev().map(run).collect();
        let results = vec![
            res(1, "b2", "kernel", "pass"),
            res(2, "b2", "kernel", "error:infrastructure"),
            res(3, "b2", "kernel", "blocked"),
            res(1, "b1", "net", "skipped"),
            res(3, "b1", "net", "error:harness"),
            res(2, "b1", "kernel", "fail"),
            res(3, "b1", "kernel", "from-a-newer-hil"),
        ];
        let m = build(&runs, &results, 3, 5);
        let ids: Vec<&str> = m.runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["r1", "r2", "r3"]);
        let keys: Vec<(&str, &str)> = m
            .rows
            .iter()
            .map(|r| (r.board.as_str(), r.check.as_str()))
            .collect();
        assert_eq!(keys, [("b1", "kernel"), ("b1", "net"), ("b2", "kernel")]);
        use CellState::*;
        assert_eq!(states(&m.rows[0]), [Missing, Fail, Missing]);
        assert_eq!(
            m.rows[0].cells[2].outcome.as_deref(),
            Some("from-a-newer-hil")
        );
        assert_eq!(states(&m.rows[1]), [Skipped, Missing, HarnessError]);
        assert_eq!(states(&m.rows[2]), [Pass, InfraError, Blocked]);
        assert_eq!(m.rows[2].cells[1].message, "error:infrastructure here");
        assert_eq!(m.rows.iter().map(|r| r.cells.len()).sum::<usize>(), 9);
        assert_eq!(
            m.counts(),
            [
                (Pass, 1),
                (Fail, 1),
                (Blocked, 1),
                (Skipped, 1),
                (InfraError, 1),
                (HarnessError, 1),
                (Missing, 3)
            ]
        );
    }

    #[test]
    fn flips_within_the_window_make_a_cell_flaky_also_across_the_hidden_runs() {
        // r1..r6; only the newest 3 are columns, the window is 4 runs.
        let runs: Vec<RunInfo> = (1..=6).rev().map(run).collect();
        let seq = ["pass", "fail", "pass", "pass", "pass", "fail"];
        let results: Vec<ResultCell> = seq
            .iter()
            .enumerate()
            .map(|(i, o)| res(i as i64 + 1, "b", "k", o))
            .collect();
        let m = build(&runs, &results, 3, 4);
        let ids: Vec<&str> = m.runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["r4", "r5", "r6"]);
        use CellState::*;
        // r4: window r1..r4 = pass fail pass pass (2 flips); r5: fail pass pass pass (1);
        // r6: pass pass pass fail (1).
        assert_eq!(states(&m.rows[0]), [Flaky, Pass, Fail]);
        assert_eq!(m.rows[0].cells[0].outcome.as_deref(), Some("pass"));
    }

    #[test]
    fn a_row_only_hidden_runs_have_is_left_out() {
        let runs: Vec<RunInfo> = (1..=3).rev().map(run).collect();
        let results = vec![res(1, "gone", "k", "pass"), res(3, "b", "k", "pass")];
        let m = build(&runs, &results, 2, 5);
        assert_eq!(m.rows.len(), 1);
        assert_eq!(m.rows[0].board, "b");
        assert_eq!(states(&m.rows[0]), [CellState::Missing, CellState::Pass]);
    }
}
