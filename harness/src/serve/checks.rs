//! One check over the newest runs: its stability per board (the share of passes, as
//! `hil history` computes it) and its numeric figures per board, oldest first, ready to
//! plot. Pure: the history's rows of the check in, the view out.

use crate::nightly::history::CheckRun;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunResult {
    pub run_id: String,
    pub seq: i64,
    pub started: String,
    pub host: String,
    pub outcome: String,
    /// The first line of the result's message.
    pub message: String,
    pub duration_s: f64,
    /// Figure name → value.
    pub figures: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoardStability {
    pub board: String,
    pub suite: String,
    /// Runs looked at (at most the `last` asked for).
    pub runs: usize,
    pub passed: usize,
    /// 100 × passed / runs.
    pub stability_pct: f64,
    /// Newest first.
    pub results: Vec<RunResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FigurePoint {
    pub run_id: String,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FigureSeries {
    pub figure: String,
    pub board: String,
    pub suite: String,
    /// Oldest first.
    pub points: Vec<FigurePoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckView {
    pub check: String,
    pub last: usize,
    /// By board, then suite.
    pub boards: Vec<BoardStability>,
    /// By figure, then board, then suite.
    pub figures: Vec<FigureSeries>,
    /// The runs the figures are over (every run of any board shown), oldest first: the
    /// plots' shared axis.
    pub run_ids: Vec<String>,
}

/// `runs`: the check's runs, newest first (as [`crate::nightly::history::History::check_runs`]
/// returns them); each (board, suite) keeps its newest `last`.
pub fn build(check: &str, runs: &[CheckRun], last: usize) -> CheckView {
    let mut groups: BTreeMap<(&str, &str), Vec<&CheckRun>> = BTreeMap::new();
    for r in runs {
        let g = groups.entry((&r.board, &r.suite)).or_default();
        if g.len() < last {
            g.push(r);
        }
    }
    let mut boards = Vec::new();
    let mut figures: BTreeMap<(String, &str, &str), Vec<FigurePoint>> = BTreeMap::new();
    let mut axis: BTreeMap<(i64, &str, &str), ()> = BTreeMap::new();
    for ((board, suite), shown) in &groups {
        let passed = shown.iter().filter(|r| r.outcome == "pass").count();
        boards.push(BoardStability {
            board: board.to_string(),
            suite: suite.to_string(),
            runs: shown.len(),
            passed,
            stability_pct: 100.0 * passed as f64 / shown.len() as f64,
            results: shown
                .iter()
                .map(|r| RunResult {
                    run_id: r.run_id.clone(),
                    seq: r.seq,
                    started: r.started.clone(),
                    host: r.host.clone(),
                    outcome: r.outcome.clone(),
                    message: r.message.lines().next().unwrap_or_default().to_string(),
                    duration_s: r.duration_s,
                    figures: r.figures.iter().cloned().collect(),
                })
                .collect(),
        });
        for r in shown.iter().rev() {
            axis.insert((r.seq, &r.started, &r.run_id), ());
            for (name, v) in &r.figures {
                figures
                    .entry((name.clone(), board, suite))
                    .or_default()
                    .push(FigurePoint {
                        run_id: r.run_id.clone(),
                        value: *v,
                    });
            }
        }
    }
    // Oldest first: by start time, then sequence (runs of several labs interleave by time).
    let mut run_ids: Vec<(&str, i64, &str)> = axis
        .keys()
        .map(|(seq, started, id)| (*started, *seq, *id))
        .collect();
    run_ids.sort();
    run_ids.dedup_by(|a, b| a.2 == b.2);
    CheckView {
        check: check.to_string(),
        last,
        boards,
        figures: figures
            .into_iter()
            .map(|((figure, board, suite), points)| FigureSeries {
                figure,
                board: board.to_string(),
                suite: suite.to_string(),
                points,
            })
            .collect(),
        run_ids: run_ids
            .into_iter()
            .map(|(_, _, id)| id.to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(seq: i64, board: &str, outcome: &str, boot: f64) -> CheckRun {
        CheckRun {
            run_id: format!("r{seq}"),
            lab: "lab".into(),
            seq,
            started: format!("2026-12-{seq:02}T00:00:00Z"),
            host: "h".into(),
            board: board.into(),
            suite: "s".into(),
            outcome: outcome.into(),
            message: "m\nmore".into(),
            duration_s: 1.0,
            figures: vec![("boot_s".into(), boot)],
        }
    }

    #[test]
    fn stability_over_the_newest_runs_and_figures_oldest_first() {
        // Newest first.
        let runs = vec![
            r(4, "b1", "fail", 4.0),
            r(4, "b2", "pass", 40.0),
            r(3, "b1", "pass", 3.0),
            r(2, "b1", "pass", 2.0),
            r(1, "b1", "pass", 1.0),
        ];
        let v = build("boot", &runs, 3);
        assert_eq!(v.boards.len(), 2);
        let b1 = &v.boards[0];
        assert_eq!((b1.board.as_str(), b1.runs, b1.passed), ("b1", 3, 2));
        assert!((b1.stability_pct - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(b1.results[0].run_id, "r4");
        assert_eq!(b1.results[0].message, "m");
        assert_eq!(v.boards[1].stability_pct, 100.0);
        assert_eq!(v.figures.len(), 2);
        let pts: Vec<(&str, f64)> = v.figures[0]
            .points
            .iter()
            .map(|p| (p.run_id.as_str(), p.value))
            .collect();
        assert_eq!(pts, [("r2", 2.0), ("r3", 3.0), ("r4", 4.0)]);
        assert_eq!(v.figures[1].board, "b2");
        // r1 is older than every board's window: not on the axis.
        assert_eq!(v.run_ids, ["r2", "r3", "r4"]);
    }
}
