//! The dashboard's HTML pages, rendered on the server with maud (escaped by default): no
//! script, no file fetched from elsewhere, so a page works without JavaScript and from a
//! lab network without internet. Styles and outcome marks are report.html's, so a cell
//! of the matrix and a row of a run's report look alike.

use super::boards::BoardState;
use super::checks::CheckView;
use super::matrix::{CellState, Matrix};
use super::plot;
use maud::{html, Markup, PreEscaped, DOCTYPE};

const STYLE: &str = r#"
nav a { margin-right: 1em; }
table.matrix td.cell { text-align: center; padding: 0; min-width: 1.6em; }
table.matrix td.cell a { display: block; padding: .15em .3em; text-decoration: none; color: inherit; }
table.matrix th.run { font-size: 75%; writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; }
.c-pass { background: #cdeccf; color: #176b2c; }
.c-fail { background: #f7c6c6; color: #a00; font-weight: bold; }
.c-flaky { background: #ffe0b0; color: #8a4b00; font-weight: bold; }
.c-blocked { background: #fff3b0; color: #6b5200; }
.c-skipped { background: #e8e8e8; color: #555; }
.c-infra { background: #e3cff2; color: #5b1a80; }
.c-harness { background: #cfd8f2; color: #1a2f80; }
.c-missing { background: #fff; color: #999; }
ul.legend { list-style: none; padding: 0; }
ul.legend li { display: inline-block; margin: 0 .6em .3em 0; padding: .1em .4em; border: 1px solid #ccc; }
svg.plot { font-size: 11px; display: block; margin: .3em 0 1em; }
svg.plot .axis { stroke: #333; }
svg.plot .grid { stroke: #ddd; }
svg.plot .tick, svg.plot .legend { fill: #444; }
.muted { color: #777; }
.err { background: #fdd; padding: .3em .6em; }
"#;

/// A path segment or query value, percent-encoded (everything but RFC 3986's unreserved
/// characters), so run ids, suites and check names of any spelling make a working link.
pub fn seg(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Where a matrix cell leads: the run's report, at the row of that board's check.
pub fn cell_href(run_id: &str, suite: &str, board: &str, check: &str) -> String {
    format!(
        "/runs/{}/report.html?suite={}#{}",
        seg(run_id),
        seg(suite),
        crate::report::html::case_id(board, check)
    )
}

fn page(title: &str, lab: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                // No favicon request: a 404 for it would be a console error on every page.
                link rel="icon" href="data:,";
                title { (title) " — hil serve" @if !lab.is_empty() { " (lab " (lab) ")" } }
                style { (PreEscaped(crate::report::html::STYLE)) (PreEscaped(STYLE)) }
            }
            body {
                nav {
                    a href="/" { "Boards" }
                    a href="/matrix" { "Matrix" }
                    a href="/metrics" { "Metrics" }
                    a href="/api/boards" { "JSON API" }
                }
                h1 { (title) @if !lab.is_empty() { span.muted { " — lab " (lab) } } }
                (body)
            }
        }
    }
    .into_string()
}

/// An error page body (the history or leases could not be read).
pub fn error(title: &str, lab: &str, why: &str) -> String {
    page(title, lab, html! { p.err { (why) } })
}

fn secs(s: f64) -> String {
    if s.abs() < 120.0 {
        format!("{s:.0} s")
    } else if s.abs() < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

pub fn boards(lab: &str, boards: &[BoardState]) -> String {
    page(
        "Boards",
        lab,
        html! {
            @if boards.is_empty() { p { "No boards: no board files and no leases." } }
            table.boards {
                tr { th { "board" } th { "state" } th { "holder" } th { "queue" } th { "service" } }
                @for b in boards {
                    tr id=(format!("board-{}", b.board)) {
                        td { (b.board) @if !b.has_file { br; span.muted { "(no board file on this host)" } } }
                        td {
                            @if b.out_of_service.is_some() { span.o-fail { "out of service" } }
                            @else if b.holder.is_some() { span.o-blocked { "held" } }
                            @else { span.o-pass { "free" } }
                        }
                        td.holder {
                            @if let Some(h) = &b.holder {
                                "job " (h.job) " (" (h.user) "@" (h.host) ", pid " (h.pid) ", run " (h.run_id) ")" br;
                                "since " (h.since) br;
                                "heartbeat " (h.heartbeat) " (" (secs(h.heartbeat_age_s)) " ago, expires in " (secs(h.expires_in_s)) ")"
                                @if let Some(s) = &b.step {
                                    br; span.step { "at step " b { (s.name) } " for " (secs(s.elapsed_s))
                                        @if let Some(t) = s.timeout_s { " of " (secs(t)) } }
                                }
                                @if let Some(href) = &b.live_console {
                                    br; a.live href=(href) { "live console" }
                                }
                            } @else { span.muted { "-" } }
                        }
                        td.queue {
                            @if b.queue.is_empty() { span.muted { "empty" } }
                            @else {
                                ol {
                                    @for w in &b.queue {
                                        li { "priority " (w.priority) ": job " (w.job) " (" (w.user) "@" (w.host) ", pid " (w.pid) ", run " (w.run_id) "), waiting " (secs(w.waiting_s)) }
                                    }
                                }
                            }
                        }
                        td.service {
                            @if let Some(s) = &b.out_of_service {
                                "out since " (s.since) " by " (s.by) ": " (s.reason)
                            } @else {
                                "in service"
                                @if b.infra_errors_in_a_row > 0 { " (" (b.infra_errors_in_a_row) " infrastructure errors in a row)" }
                            }
                            @if let Some(e) = &b.error { br; span.err { (e) } }
                        }
                    }
                }
            }
        },
    )
}

/// A board's console as a run drives it: the one page with a script (the browser's
/// EventSource, reading [`super::live`]'s stream from this same server). Read-only.
pub fn live_console(lab: &str, b: &BoardState, events: &str) -> String {
    page(
        &format!("Console of {}", b.board),
        lab,
        html! {
            p #live-state { "connecting to " a href=(events) { (events) } " …" }
            p #live-step {
                @if let Some(s) = &b.step { "step: " (s.name) " since " (s.since) }
            }
            pre.log #live data-events=(events) {}
            noscript { p.err { "This page needs JavaScript to follow the console; the event stream itself is at " (events) "." } }
            script { (PreEscaped(super::live::SCRIPT)) }
        },
    )
}

fn legend() -> Markup {
    html! {
        ul.legend {
            @for s in CellState::ALL {
                li class=(format!("c-{}", s.class())) { (s.symbol()) " " (s.label()) }
            }
        }
    }
}

pub fn matrix(lab: &str, m: &Matrix, last: usize, window: usize) -> String {
    page(
        "Matrix",
        lab,
        html! {
            p {
                "Board × check over the last " (m.runs.len()) " run(s)"
                @if m.runs.len() < last { " (of " (last) " asked for)" }
                ", oldest left. A cell links to that run's report; flaky: at least two pass/fail flips within "
                (window) " runs. "
                @for n in [10, 20, 50, 100] { a href=(format!("/matrix?last={n}")) { "last " (n) } " " }
            }
            (legend())
            @if m.runs.is_empty() { p { "No runs in the history yet." } }
            @else {
                table.matrix {
                    tr {
                        th { "board" } th { "check" } th { "suite" }
                        @for r in &m.runs {
                            th.run title=(format!("{} on {} at {}, exit {}", r.run_id, r.host, r.started, r.exit_code)) {
                                "#" (r.seq) " " (r.started.get(..10).unwrap_or(&r.started))
                            }
                        }
                    }
                    @for row in &m.rows {
                        tr {
                            td { a href=(format!("/#board-{}", row.board)) { (row.board) } }
                            td { a href=(format!("/checks/{}", seg(&row.check))) { (row.check) } }
                            td { (row.suite) }
                            @for (cell, run) in row.cells.iter().zip(&m.runs) {
                                td class=(format!("cell c-{}", cell.state.class()))
                                    title=(format!("{} — {}{}{}", run.run_id, cell.state.label(),
                                        cell.outcome.as_deref().filter(|o| *o != cell.state.label()).map(|o| format!(" ({o})")).unwrap_or_default(),
                                        if cell.message.is_empty() { String::new() } else { format!(": {}", cell.message) })) {
                                    @if cell.outcome.is_some() {
                                        a href=(cell_href(&run.run_id, &row.suite, &row.board, &row.check)) { (cell.state.symbol()) }
                                    } @else {
                                        (cell.state.symbol())
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn check(lab: &str, v: &CheckView) -> String {
    // Run ids are too long to sit side by side under a plot: the ends say which way time
    // runs, and each point's tooltip names its run.
    let (first, last) = ("← oldest run", "newest run →");
    let mut names: Vec<&str> = v.figures.iter().map(|f| f.figure.as_str()).collect();
    names.dedup();
    page(
        &format!("Check {}", v.check),
        lab,
        html! {
            h2 { "Stability over the last " (v.last) " runs" }
            table.stability {
                tr { th { "board" } th { "suite" } th { "stability" } th { "passed" } th { "newest results" } }
                @for b in &v.boards {
                    tr {
                        td { (b.board) } td { (b.suite) }
                        td { (format!("{:.0}%", b.stability_pct)) }
                        td { (b.passed) " of " (b.runs) }
                        td {
                            @for r in &b.results {
                                @let o = crate::outcome::Outcome::from_json_name(&r.outcome);
                                a class=(o.map_or("o-skipped".to_string(), |o| format!("o-{}", crate::report::html::outcome_class(o))))
                                  href=(cell_href(&r.run_id, &b.suite, &b.board, &v.check))
                                  title=(format!("{} at {}: {} {}", r.run_id, r.started, r.outcome, r.message)) {
                                    (o.map_or("?", crate::report::summary::mark))
                                }
                                " "
                            }
                        }
                    }
                }
            }
            h2 { "Figures" }
            @if names.is_empty() { p { "This check records no numeric figures." } }
            @for name in &names {
                h3 { (name) }
                @let series: Vec<plot::Series> = v.figures.iter().filter(|f| f.figure == *name).map(|f| plot::Series {
                    name: format!("{} ({})", f.board, f.suite),
                    points: f.points.iter().filter_map(|p| {
                        let x = v.run_ids.iter().position(|id| *id == p.run_id)?;
                        Some((x, p.value, format!("{} {}: {}", f.board, p.run_id, plot::tick(p.value))))
                    }).collect(),
                }).collect();
                (plot::line_plot(name, v.run_ids.len(), &series, first, last))
            }
        },
    )
}

/// The page of a path no route has.
pub fn not_found(lab: &str, what: &str) -> String {
    page(
        "Not found",
        lab,
        html! { p { (what) } p { a href="/" { "Boards" } } },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_encoded_and_point_at_the_case_row() {
        assert_eq!(seg("nightly-lab 1/x?"), "nightly-lab%201%2Fx%3F");
        assert_eq!(
            cell_href("r 1", "fake-night", "fake-board", "kernel"),
            "/runs/r%201/report.html?suite=fake-night#case-fake-board-kernel"
        );
    }
}
