//! The run-level dispatcher: one [`BoardRun`] engine per board runs the suite in its own
//! task; the dispatcher (this module's [`run`]) owns the report, rewrites it after every
//! testcase, turns Ctrl-C/SIGTERM into a stop for every board, and returns the typed
//! report. Board engines only send events; no state is shared between them.

use crate::config::Suite;
use crate::engine::{BoardRun, Event, Policy, RunContext};
use crate::outcome::{exit, Outcome};
use crate::report::{CaseReport, ReportWriter, RunReport};
use futures_util::FutureExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// Ctrl-C or SIGTERM (a CI job being cancelled).
async fn interrupt_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub use crate::engine::BoardPlan;

pub struct RunOptions {
    pub suite: Suite,
    pub boards: Vec<BoardPlan>,
    pub out: PathBuf,
    pub run_id: String,
    /// How the run shows its progress on stderr.
    pub progress: crate::progress::Mode,
    /// Where board leases live.
    pub leases: crate::lease::Leases,
    /// What the run puts on top of the engine's steps.
    pub policy: Policy,
    /// A kernel build to boot instead of the board's usual images (bisect, nightly).
    pub image_set: Option<crate::image_set::ImageSet>,
}

/// Runs the suite on every board; returns the report (with its exit code).
pub async fn run(opts: RunOptions) -> anyhow::Result<RunReport> {
    let writer = ReportWriter::create(&opts.out).map_err(|e| {
        crate::error::UsageError(format!(
            "cannot write the report directory {}: {e}",
            opts.out.display()
        ))
    })?;
    let started = Instant::now();
    let mut report = RunReport {
        run_id: opts.run_id.clone(),
        suite: opts.suite.name.clone(),
        suite_file: opts.suite.path.display().to_string(),
        harness_version: env!("CARGO_PKG_VERSION").to_string(),
        started: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        complete: false,
        duration_s: 0.0,
        exit_code: None,
        checks_selected: opts.suite.selected.clone(),
        boards: Vec::new(),
    };
    for b in &opts.boards {
        report.board_mut(&b.board.name);
    }
    writer.write(&report)?;
    let names: Vec<String> = opts.boards.iter().map(|b| b.board.name.clone()).collect();
    let mut progress = crate::progress::Progress::new(opts.progress, &names);
    progress.note(&format!(
        "hil: run {} → {}",
        opts.run_id,
        opts.out.display()
    ));
    let mut ticks = progress.tick_every().map(tokio::time::interval);

    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let cx = Arc::new(RunContext {
        // A deadline too far to represent is no deadline (validation bounds it anyway).
        deadline: opts
            .suite
            .deadline
            .map(|d| crate::config::limits::deadline_from(started.into(), d)),
        suite: opts.suite,
        events: tx,
        run_start: started,
        leases: opts.leases,
        owner: crate::lease::Owner::this_process(&opts.run_id),
        image_set: opts.image_set,
        policy: opts.policy,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for plan in opts.boards {
        let run_dir = writer.board_dir(&plan.board.name);
        let name = plan.board.name.clone();
        let engine = BoardRun::new(plan, run_dir, cx.clone(), stop_rx.clone());
        let events = cx.events.clone();
        tasks.spawn(async move {
            // The engine guards each step; this catches a bug in the engine itself.
            if let Err(p) = std::panic::AssertUnwindSafe(engine.drive())
                .catch_unwind()
                .await
            {
                let msg = crate::engine::panic_message(p.as_ref());
                let _ = events.send(Event::Case(
                    name,
                    harness_case(format!("the board's engine panicked: {msg}")),
                ));
            }
        });
    }
    // The engines hold the only senders: the loop below ends when they all have.
    drop(cx);

    let mut interrupted = false;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(Event::Props(board, props)) => report.board_mut(&board).properties.extend(props),
                Some(Event::Started(board, step, timeout)) => {
                    progress.started(&board, &step, timeout);
                    continue;
                }
                Some(Event::Done(board, step, outcome, secs)) => {
                    progress.ended(&board, &step, outcome, secs, "", false);
                    continue;
                }
                Some(Event::Case(board, case)) => {
                    progress.ended(&board, &case.name, case.outcome, case.duration_s, &case.message, true);
                    report.board_mut(&board).cases.push(case);
                }
                None => break,
            },
            _ = async { match ticks.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                progress.tick();
                continue;
            }
            _ = interrupt_signal(), if !interrupted => {
                interrupted = true;
                progress.note("hil: interrupted; restoring devices, powering boards off, writing the partial report (again to force)");
                stop_tx.send_replace(true);
            }
            _ = interrupt_signal(), if interrupted => {
                progress.note("hil: interrupted again; stopping now");
                tasks.abort_all();
            }
        }
        report.duration_s = started.elapsed().as_secs_f64();
        if let Err(e) = writer.write(&report) {
            eprintln!("hil: warning: cannot update the report: {e}");
        }
    }
    while tasks.join_next().await.is_some() {}
    progress.finish();
    let code = if interrupted {
        exit::INTERRUPTED
    } else {
        report.exit_status()
    };
    report.complete = !interrupted;
    report.exit_code = Some(code);
    report.duration_s = started.elapsed().as_secs_f64();
    writer.write(&report)?;
    if code == exit::NOTHING_TESTED {
        eprintln!("hil: nothing was tested: no check passed or failed (exit {code})");
    }
    eprintln!(
        "hil: done in {:.1} s, exit {code}; report: {}",
        report.duration_s,
        writer.dir.join("summary.md").display()
    );
    Ok(report)
}

fn harness_case(message: String) -> CaseReport {
    crate::engine::case(
        "harness",
        "harness",
        Outcome::HarnessError,
        message,
        0.0,
        0.0,
    )
}
