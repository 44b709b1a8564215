//! A board's run as an inline SVG: one row per case and per earlier attempt, the bar at
//! its start and as long as it took, over the limit it ran against when that is known.

use super::{case_id, outcome_class};
use crate::outcome::Outcome;
use crate::report::summary::mark;
use crate::report::{BoardReport, CaseReport};
use maud::{html, Markup};

const LABEL_W: f64 = 260.0;
const CHART_W: f64 = 900.0;
const ROW_H: f64 = 22.0;
const AXIS_H: f64 = 24.0;

/// One bar: a case, or one of its earlier attempts.
struct Bar<'a> {
    case: &'a CaseReport,
    /// `Some(n)`: the case's n-th attempt (from 1), which did not count.
    attempt: Option<usize>,
    outcome: Outcome,
    started_s: f64,
    duration_s: f64,
    message: &'a str,
}

fn bars(board: &BoardReport) -> Vec<Bar<'_>> {
    let mut out = Vec::new();
    for c in &board.cases {
        for (i, a) in c.attempts.iter().enumerate() {
            out.push(Bar {
                case: c,
                attempt: Some(i + 1),
                outcome: a.outcome,
                started_s: a.started_s,
                duration_s: a.duration_s,
                message: &a.message,
            });
        }
        out.push(Bar {
            case: c,
            attempt: None,
            outcome: c.outcome,
            started_s: c.started_s,
            duration_s: c.duration_s,
            message: &c.message,
        });
    }
    out
}

/// The run seconds the chart spans: to the latest end of a bar or of its limit.
fn span(bars: &[Bar], gaps: &[(f64, f64)]) -> f64 {
    let ends = bars.iter().map(|b| {
        let limit = b.case.timeout_s.unwrap_or(0.0);
        b.started_s + b.duration_s.max(limit)
    });
    let gap_ends = gaps.iter().map(|(s, l)| s + l);
    ends.chain(gap_ends)
        .filter(|e| e.is_finite())
        .fold(1.0, f64::max)
}

/// A tick step of 1, 2 or 5 times a power of ten giving at most ten ticks.
fn tick_step(span: f64) -> f64 {
    let mut step = 1.0;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if span / (step * m) <= 10.0 {
                return step * m;
            }
        }
        step *= 10.0;
    }
}

fn tooltip(bar: &Bar) -> String {
    let what = match bar.attempt {
        Some(n) => format!("{} (attempt {n}, not counted)", bar.case.name),
        None => bar.case.name.clone(),
    };
    let limit = bar
        .case
        .timeout_s
        .map_or(String::new(), |t| format!(" of a {t:.0} s limit"));
    format!(
        "{what}: {} {}, {:.1} s{limit}, from +{:.1} s\n{}",
        mark(bar.outcome),
        bar.outcome.label(),
        bar.duration_s,
        bar.started_s,
        bar.message
    )
}

/// The board's timeline. `gaps`: console gaps (start, length) in run seconds.
pub fn render(board: &BoardReport, gaps: &[(f64, f64)]) -> Markup {
    let bars = bars(board);
    let span = span(&bars, gaps);
    let x = |t: f64| LABEL_W + (t.max(0.0) / span) * CHART_W;
    let w = |d: f64| ((d.max(0.0) / span) * CHART_W).max(2.0);
    let height = AXIS_H + ROW_H * bars.len() as f64 + 4.0;
    let step = tick_step(span);
    let ticks: Vec<f64> = (0..)
        .map(|i| i as f64 * step)
        .take_while(|t| *t <= span)
        .collect();
    // Room on the right for the last tick's label.
    let total_w = LABEL_W + CHART_W + 40.0;
    html! {
        svg.timeline xmlns="http://www.w3.org/2000/svg" width=(total_w) height=(height)
            viewBox=(format!("0 0 {total_w} {height}")) role="img"
            aria-label=(format!("timeline of board {}", board.name)) {
            @for t in &ticks {
                line.tick x1=(x(*t)) x2=(x(*t)) y1=(AXIS_H - 4.0) y2=(height) {}
                text.tick x=(x(*t) + 2.0) y=(AXIS_H - 8.0) { (format!("{t:.0} s")) }
            }
            @for (s, l) in gaps {
                rect.gap x=(x(*s)) y=(AXIS_H - 4.0) width=(w(*l)) height=(height - AXIS_H + 4.0) {
                    title { (format!("console gap: {l:.1} s without transport, output lost")) }
                }
            }
            @for (row, bar) in bars.iter().enumerate() {
                (bar_row(bar, AXIS_H + row as f64 * ROW_H, &board.name, x, w))
            }
        }
    }
}

fn bar_row(
    bar: &Bar,
    y: f64,
    board: &str,
    x: impl Fn(f64) -> f64,
    w: impl Fn(f64) -> f64,
) -> Markup {
    let label = match bar.attempt {
        Some(n) => format!(
            "{} {} · {} (attempt {n})",
            mark(bar.outcome),
            bar.outcome.label(),
            bar.case.name
        ),
        None => format!(
            "{} {} · {}",
            mark(bar.outcome),
            bar.outcome.label(),
            bar.case.name
        ),
    };
    let class = match bar.attempt {
        Some(_) => format!("bar attempt {}", outcome_class(bar.outcome)),
        None => format!("bar {}", outcome_class(bar.outcome)),
    };
    html! {
        a href=(format!("#{}", case_id(board, &bar.case.name))) {
            title { (tooltip(bar)) }
            text.label x="4" y=(y + ROW_H - 7.0) { (label) }
            @if let Some(limit) = bar.case.timeout_s {
                rect.limit x=(x(bar.started_s)) y=(y + 3.0) width=(w(limit)) height=(ROW_H - 6.0) {}
            }
            rect class=(class) x=(x(bar.started_s)) y=(y + 5.0) width=(w(bar.duration_s))
                height=(ROW_H - 10.0) {}
        }
    }
}
