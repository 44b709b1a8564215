//! `report.html`: the run on one self-contained page (inline CSS and SVG, no script, nothing
//! fetched), so it opens from a file URL on a machine without network. Per board: a
//! timeline of the cases, the table of checks with a failure's console evidence, and the
//! console log with an anchor where each case starts. All text from boards and configs is
//! escaped by the template (maud escapes every interpolation).

mod console;
mod timeline;

#[cfg(test)]
mod tests;

use super::summary::mark;
use super::{BoardReport, CaseReport, RunReport};
use crate::outcome::Outcome;
use maud::{html, Markup, DOCTYPE};
use std::path::Path;

pub(crate) const STYLE: &str = r#"
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1em; }
td, th { border: 1px solid #ccc; padding: .2em .5em; vertical-align: top; text-align: left; }
td.msg { white-space: pre-wrap; max-width: 50em; }
pre { background: #f6f6f6; padding: .5em; overflow-x: auto; }
pre.evidence { max-width: 60em; max-height: 25em; overflow: auto; }
pre.log { max-height: 40em; overflow: auto; font-size: 85%; }
pre.log .hil { color: #05a; font-weight: bold; }
pre.log .death { background: #fdd; color: #900; font-weight: bold; }
pre.log .cut { background: #ffc; display: block; }
pre.log a.anchor:target + a.anchor, pre.log a.anchor:target + span { outline: 2px solid #e80; }
tr:target { outline: 3px solid #e80; }
.o-pass { color: #176b2c; } .o-fail { color: #b00; } .o-blocked { color: #8a5a00; }
.o-skipped { color: #666; } .o-infra, .o-harness { color: #7a2a99; }
svg.timeline { font-size: 12px; display: block; }
svg .tick { stroke: #ddd; fill: #666; }
svg text.tick { stroke: none; }
svg .limit { fill: none; stroke: #999; stroke-dasharray: 4 3; }
svg .bar.pass { fill: #2e9e4a; } svg .bar.fail { fill: #d33; }
svg .bar.blocked { fill: #e0a030; } svg .bar.skipped { fill: #aaa; }
svg .bar.infra, svg .bar.harness { fill: #9b4dca; }
svg .bar.attempt { fill-opacity: .4; stroke: #333; stroke-dasharray: 3 2; }
svg .gap { fill: #fc0; fill-opacity: .35; }
svg a:hover text { text-decoration: underline; }
.warn { background: #ffc; padding: .3em .6em; display: inline-block; }
"#;

/// The CSS class of an outcome (the same word on bars and table cells).
pub(crate) fn outcome_class(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::Blocked => "blocked",
        Outcome::Skipped => "skipped",
        Outcome::InfraError => "infra",
        Outcome::HarnessError => "harness",
    }
}

/// A name as an id and URL fragment part: anything but letters, digits, `-`, `_` and `.`
/// becomes `-`, so no fragment needs percent-encoding.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The id of a case's row in the table.
pub(crate) fn case_id(board: &str, case: &str) -> String {
    format!("case-{}-{}", slug(board), slug(case))
}

/// The id of the anchor where a case's part of the console log starts.
fn log_id(board: &str, case: &str) -> String {
    format!("log-{}-{}", slug(board), slug(case))
}

/// A case that did not pass for a reason worth looking at: a failure or an error.
fn failed(c: &CaseReport) -> bool {
    c.outcome == Outcome::Fail || c.outcome.is_error()
}

/// The board and case of the earliest failed case of the run.
fn first_failure(r: &RunReport) -> Option<(&str, &CaseReport)> {
    r.cases()
        .filter(|(_, c)| failed(c))
        .min_by(|a, b| a.1.started_s.total_cmp(&b.1.started_s))
}

/// The page for the run so far; `dir` is the run directory the console logs are read from.
pub fn render(r: &RunReport, dir: &Path) -> String {
    let first = first_failure(r).map(|(b, c)| (b.to_string(), c.name.clone()));
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "hil run " (r.run_id) " — " (r.suite) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                (header(r, first.as_ref()))
                @for b in &r.boards {
                    (board_section(r, b, dir, first.as_ref()))
                }
            }
        }
    }
    .into_string()
}

fn header(r: &RunReport, first: Option<&(String, String)>) -> Markup {
    let totals: Vec<(Outcome, usize)> = Outcome::ALL
        .into_iter()
        .map(|o| (o, r.outcomes().filter(|x| **x == o).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    html! {
        h1 { "hil run " (r.run_id) }
        table.header {
            tr { th { "suite" } td { (r.suite) " (" (r.suite_file) ")" } }
            tr { th { "run id" } td { (r.run_id) } }
            tr { th { "started" } td { (r.started) } }
            tr { th { "duration" } td { (format!("{:.1} s", r.duration_s)) } }
            tr { th { "state" } td {
                @if r.complete { "complete" }
                @else { span.warn { "not complete: run still going or killed" } }
            } }
            tr { th { "exit code" } td { (r.exit_code.map_or("-".to_string(), |c| c.to_string())) } }
            tr { th { "cases" } td {
                @for (o, n) in &totals {
                    span class=(format!("o-{}", outcome_class(*o))) {
                        (mark(*o)) " " (o.label()) ": " (n)
                    }
                    " "
                }
            } }
            tr { th { "harness" } td { (r.harness_version) } }
        }
        p {
            @if let Some((board, name)) = first {
                a href="#first-failure" { "First failure: " (board) " / " (name) }
            } @else {
                "No failure."
            }
        }
    }
}

fn board_section(
    r: &RunReport,
    b: &BoardReport,
    dir: &Path,
    first: Option<&(String, String)>,
) -> Markup {
    let first_here = first.filter(|(board, _)| *board == b.name).map(|f| &f.1);
    let mut anchors: Vec<console::Anchor> = b
        .cases
        .iter()
        .map(|c| console::Anchor {
            started_s: c.started_s,
            id: log_id(&b.name, &c.name),
            first_failure: first_here == Some(&c.name),
        })
        .collect();
    anchors.sort_by(|a, b| a.started_s.total_cmp(&b.started_s));
    let href = format!("boards/{}/console.log", b.name);
    let log_path = dir.join("boards").join(&b.name).join("console.log");
    let log = console::read_log(&log_path)
        .ok()
        .map(|l| console::render(&l, &r.started, &anchors, &href));
    let placed: &[String] = log.as_ref().map_or(&[], |l| &l.placed);
    // Without a death line in the failed case's log the first failure's row is the
    // link's target: its message and evidence say what failed.
    let in_log = log.as_ref().is_some_and(|l| l.first_failure_placed);
    let row_target = first_here.filter(|_| !in_log);
    let gaps = log.as_ref().map_or(&[][..], |l| &l.gaps[..]);
    html! {
        section.board {
            h2 { "Board " (b.name) }
            @if !b.properties.is_empty() {
                table.props {
                    @for (k, v) in &b.properties { tr { th { (k) } td { (v) } } }
                }
            }
            @if let Some(n) = b.properties.get("console_gaps").filter(|n| *n != "0") {
                p.warn {
                    "Console transport lost " (n) " time(s) ("
                    (b.properties.get("console_gap_s").map_or("?", |s| s.as_str()))
                    " s without transport): the board's output of those times is missing."
                }
            }
            h3 { "Timeline" }
            (timeline::render(b, gaps))
            h3 { "Checks" }
            (cases_table(b, placed, row_target))
            h3 { "Console log" }
            @match &log {
                Some(l) => {
                    p { a href=(href) { (href) } }
                    (l.markup)
                }
                None => p { "No console log (" (href) ")." },
            }
        }
    }
}

fn cases_table(b: &BoardReport, placed: &[String], row_target: Option<&String>) -> Markup {
    html! {
        table.cases {
            tr { th { "outcome" } th { "name" } th { "kind" } th { "duration" }
                 th { "message" } th { "figures" } th { "evidence" } }
            @for c in &b.cases {
                (case_row(&b.name, c, placed, row_target == Some(&c.name)))
            }
        }
    }
}

fn case_row(board: &str, c: &CaseReport, placed: &[String], first_failure: bool) -> Markup {
    let log = log_id(board, &c.name);
    let class = outcome_class(c.outcome);
    html! {
        tr id=(case_id(board, &c.name)) {
            td class=(format!("o-{class}")) {
                @if first_failure { a id="first-failure" {} }
                (mark(c.outcome)) " " (c.outcome.label())
                @if c.flaky { " (flaky)" }
            }
            td { (c.name)
                @if placed.contains(&log) { " " a href=(format!("#{log}")) { "[log]" } } }
            td { (c.kind) }
            td { (format!("{:.1} s", c.duration_s))
                @if let Some(t) = c.timeout_s { (format!(" of {t:.0} s")) } }
            td.msg {
                (c.message)
                @for (i, a) in c.attempts.iter().enumerate() {
                    "\n" (format!("attempt {}: ", i + 1)) (mark(a.outcome)) " " (a.outcome.label())
                    (format!(", {:.1} s: ", a.duration_s)) (a.message)
                }
            }
            td { @for (k, v) in &c.figures { (k) "=" (figure(v)) br; } }
            td { @if failed(c) && !c.console.is_empty() { pre.evidence { (c.console) } } }
        }
    }
}

/// A figure as plain text: strings without their JSON quotes.
fn figure(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}
