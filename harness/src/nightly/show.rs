//! `hil history CHECK`: what the nightly history holds of one check, per board: its recent
//! outcomes (newest first, with run, time and lab host), its figures, and its stability
//! (the share of passes over the runs shown). Reads either backend.

use super::history::at::HistoryAt;
use super::history::{CheckRun, History, HistoryError};
use crate::error::UsageError;
use crate::outcome::exit;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct HistoryArgs {
    /// The check's name, as in the suite file.
    check: String,
    /// Only this board.
    #[arg(long)]
    board: Option<String>,
    /// How many of the newest runs to show per board (and to compute the stability over).
    #[arg(long, default_value_t = 20)]
    last: usize,
    /// The lab file: its `history`, and only its lab's runs.
    #[arg(long, value_name = "LABFILE")]
    lab: Option<PathBuf>,
    /// The history: a SQLite file or a postgres:// URL (default: $HIL_DATABASE_URL, else
    /// the lab file's `history`).
    #[arg(long, value_name = "FILE|URL")]
    history: Option<String>,
}

pub fn cli(args: HistoryArgs) -> anyhow::Result<i32> {
    if args.last == 0 {
        return Err(UsageError("--last 0 shows nothing; expected 1 or more runs".into()).into());
    }
    let lab = args
        .lab
        .as_deref()
        .map(super::lab_file::Lab::load)
        .transpose()?;
    let at = HistoryAt::choose(args.history.as_deref(), lab.as_ref().map(|l| &l.history))?;
    let lab_name = lab.as_ref().map(|l| l.name.as_str()).unwrap_or("");
    let mut h = History::open_existing(&at)?;
    let mut runs = h.check_runs(lab_name, &args.check)?;
    if let Some(b) = &args.board {
        runs.retain(|r| &r.board == b);
    }
    if runs.is_empty() {
        let known = match &args.board {
            // The check is there, only not on this board: name the boards that ran it.
            Some(_) => {
                let mut boards: Vec<String> = h
                    .check_runs(lab_name, &args.check)?
                    .into_iter()
                    .map(|r| r.board)
                    .collect();
                boards.sort();
                boards.dedup();
                if boards.is_empty() {
                    h.checks(lab_name)?.join(", ")
                } else {
                    format!("(boards that ran it) {}", boards.join(", "))
                }
            }
            None => h.checks(lab_name)?.join(", "),
        };
        return Err(HistoryError::UnknownCheck {
            at: if lab_name.is_empty() {
                at.to_string()
            } else {
                format!("lab {lab_name} in the {at}")
            },
            check: args.check.clone(),
            on: args
                .board
                .as_ref()
                .map(|b| format!(" on board {b}"))
                .unwrap_or_default(),
            known: if known.is_empty() {
                "none yet".into()
            } else {
                known
            },
        }
        .into());
    }
    print!("{}", render(&args.check, lab_name, &at, &runs, args.last));
    Ok(exit::OK)
}

/// The report: a section per board and suite, newest runs first.
pub fn render(check: &str, lab: &str, at: &HistoryAt, runs: &[CheckRun], last: usize) -> String {
    let mut s = format!("check {check}");
    if !lab.is_empty() {
        s.push_str(&format!(" in lab {lab}"));
    }
    s.push_str(&format!(" ({at})\n"));
    let mut groups: Vec<((&str, &str), Vec<&CheckRun>)> = Vec::new();
    for r in runs {
        let key = (r.board.as_str(), r.suite.as_str());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    for ((board, suite), all) in &groups {
        let shown = &all[..all.len().min(last)];
        let passed = shown.iter().filter(|r| r.outcome == "pass").count();
        let pct = 100.0 * passed as f64 / shown.len() as f64;
        let plural = if shown.len() == 1 { "" } else { "s" };
        let over = if all.len() > last {
            format!("over the last {} run{plural}", shown.len())
        } else {
            format!("over all {} run{plural} recorded", shown.len())
        };
        s.push_str(&format!(
            "\n{board} (suite {suite}): stability {pct:.0}% — {passed} of {} passed, {over}\n",
            shown.len()
        ));
        let host_w = shown.iter().map(|r| r.host.len()).max().unwrap_or(0).max(4);
        let run_w = shown
            .iter()
            .map(|r| r.run_id.len())
            .max()
            .unwrap_or(0)
            .max(3);
        s.push_str(&format!(
            "  {:<20}  {:<run_w$}  {:<host_w$}  {:<22}  {:>8}  figures\n",
            "time", "run", "host", "outcome", "duration"
        ));
        for r in shown {
            let host = if r.host.is_empty() { "?" } else { &r.host };
            s.push_str(&format!(
                "  {:<20}  {:<run_w$}  {:<host_w$}  {:<22}  {:>6.1} s  {}\n",
                short_time(&r.started),
                r.run_id,
                host,
                r.outcome,
                r.duration_s,
                figures(&r.figures)
            ));
            if r.outcome != "pass" && !r.message.is_empty() {
                let first = r.message.lines().next().unwrap_or_default();
                s.push_str(&format!("      {}\n", one_line(first, 100)));
            }
        }
    }
    s
}

/// At most `n` characters, with an ellipsis when cut.
fn one_line(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// RFC 3339 to the second: `2026-01-02T03:04:05Z`.
fn short_time(t: &str) -> String {
    match (t.get(..19), t.ends_with('Z')) {
        (Some(head), true) => format!("{head}Z"),
        _ => t.to_string(),
    }
}

fn figures(f: &[(String, f64)]) -> String {
    let parts: Vec<String> = f
        .iter()
        .map(|(k, v)| {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{k}={}", *v as i64)
            } else {
                format!("{k}={v:.3}")
            }
        })
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nightly::history::at::Store;

    fn r(run: &str, board: &str, outcome: &str, host: &str) -> CheckRun {
        CheckRun {
            run_id: run.into(),
            lab: "lab".into(),
            seq: 0,
            started: "2026-12-02T00:40:00.123456Z".into(),
            host: host.into(),
            board: board.into(),
            suite: "s".into(),
            outcome: outcome.into(),
            message: format!("{outcome} message\nsecond line"),
            duration_s: 1.25,
            figures: vec![("exit_status".into(), 0.0), ("rx_bps".into(), 1234.5678)],
        }
    }

    #[test]
    fn stability_is_over_the_runs_shown_and_says_how_many() {
        let at = HistoryAt {
            store: Store::File("h.sqlite".into()),
            from: "lab.toml key `history`".into(),
        };
        let runs = [
            r("n3", "b1", "fail", "lab-b"),
            r("n3", "b2", "pass", "lab-b"),
            r("n2", "b1", "pass", "lab-a"),
            r("n1", "b1", "pass", "lab-a"),
        ];
        let text = render("kernel", "lab", &at, &runs, 2);
        assert!(
            text.starts_with(
                "check kernel in lab lab (history file h.sqlite (lab.toml key `history`))\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\nb1 (suite s): stability 50% — 1 of 2 passed, over the last 2 runs\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "\nb2 (suite s): stability 100% — 1 of 1 passed, over all 1 run recorded\n"
            ),
            "{text}"
        );
        assert!(!text.contains("n1"), "{text}");
        let b1 = text.find("\nb1 ").unwrap();
        let (n3, n2) = (
            text[b1..].find("n3").unwrap(),
            text[b1..].find("n2").unwrap(),
        );
        assert!(n3 < n2, "newest first: {text}");
        assert!(
            text.contains("2026-12-02T00:40:00Z  n3   lab-b  fail"),
            "{text}"
        );
        assert!(text.contains("exit_status=0 rx_bps=1234.568"), "{text}");
        assert!(text.contains("      fail message\n"), "{text}");
        assert!(!text.contains("pass message"), "{text}");
    }
}
