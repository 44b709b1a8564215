//! `summary.md`: the checklist a person reads first.

use super::RunReport;
use crate::outcome::Outcome;
use std::fmt::Write;

pub fn mark(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "✔",
        Outcome::Fail => "✘",
        Outcome::Blocked => "⊘",
        Outcome::Skipped => "–",
        Outcome::InfraError | Outcome::HarnessError => "⚠",
    }
}

pub fn render(r: &RunReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# hil run {} — suite `{}`\n", r.run_id, r.suite);
    let state = if r.complete {
        "complete"
    } else {
        "in progress or interrupted"
    };
    let _ = writeln!(
        s,
        "Run {state}; {:.1} s; exit code {}.\n",
        r.duration_s,
        r.exit_code.map_or("-".into(), |c| c.to_string())
    );
    if let Some(names) = &r.checks_selected {
        let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        let _ = writeln!(
            s,
            "Subset of the suite: only {} (`--check`).\n",
            names.join(", ")
        );
    }
    for b in &r.boards {
        let _ = writeln!(s, "## {}\n", b.name);
        for (k, v) in &b.properties {
            let _ = writeln!(s, "- {k}: `{v}`");
        }
        let _ = writeln!(
            s,
            "\n| | check | outcome | time | detail |\n|---|---|---|---|---|"
        );
        for c in &b.cases {
            let detail = c.message.replace('|', "\\|").replace('\n', " ");
            let mut detail: String = detail.chars().take(160).collect();
            if !c.attempts.is_empty() {
                let earlier: Vec<&str> = c.attempts.iter().map(|a| a.outcome.label()).collect();
                let note = if c.flaky { "FLAKY: " } else { "" };
                detail = format!(
                    "{note}attempt {} (earlier: {}) {detail}",
                    c.attempts.len() + 1,
                    earlier.join(", ")
                );
            }
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} s | {} |",
                mark(c.outcome),
                c.name,
                c.outcome.label(),
                c.duration_s,
                detail
            );
        }
        let _ = writeln!(
            s,
            "\nLogs: `boards/{}/console.log`, `boards/{}/ssh.log`.\n",
            b.name, b.name
        );
    }
    s
}
