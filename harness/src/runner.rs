//! The orchestrator: one task per board runs the suite; one dispatcher (this module's
//! `run`) owns the report and rewrites it after every testcase. Board tasks only send
//! events; no state is shared between them.

use crate::boot::{BoardSession, State};
use crate::checks::CheckSpec;
use crate::config::{expand, Board, Suite};
use crate::error::StepError;
use crate::expect::{linux_death_patterns, Expecter};
use crate::outcome::{exit, exit_code, Outcome};
use crate::report::{tail_text, CaseReport, ReportWriter, RunReport};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
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

/// Console text kept per testcase in the report (the full log is on disk).
const SLICE_MAX: usize = 256 * 1024;

pub struct BoardPlan {
    pub path: PathBuf,
    pub board: Board,
}

pub struct RunOptions {
    pub suite: Suite,
    pub boards: Vec<BoardPlan>,
    pub out: PathBuf,
    pub run_id: String,
    pub progress: bool,
    /// Where board leases live.
    pub leases: crate::lease::Leases,
    /// Queue for a busy board instead of failing at once.
    pub wait: bool,
    /// A kernel build to boot instead of the board's usual images (bisect, nightly).
    pub image_set: Option<crate::image_set::ImageSet>,
}

/// What every board task shares.
struct Shared {
    suite: Suite,
    tx: mpsc::UnboundedSender<Event>,
    run_start: Instant,
    /// The suite's whole-job deadline, as an instant.
    deadline: Option<tokio::time::Instant>,
    leases: crate::lease::Leases,
    owner: crate::lease::Owner,
    wait: bool,
    image_set: Option<crate::image_set::ImageSet>,
}

enum Event {
    Props(String, BTreeMap<String, String>),
    Case(String, CaseReport),
}

/// Runs the suite on every board; returns the exit code.
pub async fn run(opts: RunOptions) -> anyhow::Result<i32> {
    let writer = ReportWriter::create(&opts.out).map_err(|e| {
        anyhow::anyhow!(
            "cannot write the report directory {}: {e}",
            opts.out.display()
        )
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
        boards: Vec::new(),
    };
    for b in &opts.boards {
        report.board_mut(&b.board.name);
    }
    writer.write(&report)?;
    eprintln!("hil: run {} → {}", opts.run_id, opts.out.display());

    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        deadline: opts
            .suite
            .deadline
            .map(|d| crate::config::limits::deadline_from(started.into(), d)),
        suite: opts.suite,
        tx,
        run_start: started,
        leases: opts.leases,
        owner: crate::lease::Owner::this_process(&opts.run_id),
        wait: opts.wait,
        image_set: opts.image_set,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for plan in opts.boards {
        let run_dir = writer.board_dir(&plan.board.name);
        tasks.spawn(board_task(plan, run_dir, shared.clone(), stop_rx.clone()));
    }
    // The board tasks hold the only senders: the loop below ends when they all have.
    drop(shared);

    let mut interrupted = false;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(Event::Props(board, props)) => report.board_mut(&board).properties.extend(props),
                Some(Event::Case(board, case)) => {
                    eprintln!("hil: {board}: {} {} ({:.1} s){}", crate::report::summary::mark(case.outcome), case.name, case.duration_s,
                        if case.outcome == Outcome::Pass { String::new() } else { format!(": {}", case.outcome.label()) });
                    if case.outcome != Outcome::Pass && !case.message.is_empty() {
                        eprintln!("      {}", case.message.chars().take(400).collect::<String>());
                    }
                    report.board_mut(&board).cases.push(case);
                }
                None => break,
            },
            _ = interrupt_signal(), if !interrupted => {
                interrupted = true;
                eprintln!("hil: interrupted; restoring devices, powering boards off, writing the partial report (again to force)");
                stop_tx.send_replace(true);
            }
            _ = interrupt_signal(), if interrupted => {
                eprintln!("hil: interrupted again; stopping now");
                tasks.abort_all();
            }
        }
        report.duration_s = started.elapsed().as_secs_f64();
        if let Err(e) = writer.write(&report) {
            eprintln!("hil: warning: cannot update the report: {e}");
        }
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            if e.is_panic() {
                eprintln!("hil: error: harness: a board task panicked: {e}");
                if let Some(b) = report.boards.first_mut() {
                    b.cases
                        .push(harness_case(format!("board task panicked: {e}")));
                }
            }
        }
    }
    let code = if interrupted {
        exit::INTERRUPTED
    } else {
        exit_code(report.outcomes())
    };
    report.complete = !interrupted;
    report.exit_code = Some(code);
    report.duration_s = started.elapsed().as_secs_f64();
    writer.write(&report)?;
    eprintln!(
        "hil: done in {:.1} s, exit {code}; report: {}",
        report.duration_s,
        writer.dir.join("summary.md").display()
    );
    Ok(code)
}

fn harness_case(message: String) -> CaseReport {
    case(
        "harness",
        "harness",
        Outcome::HarnessError,
        message,
        0.0,
        0.0,
    )
}

fn case(
    name: &str,
    kind: &str,
    outcome: Outcome,
    message: String,
    started_s: f64,
    duration_s: f64,
) -> CaseReport {
    CaseReport {
        name: name.into(),
        kind: kind.into(),
        outcome,
        message,
        duration_s,
        started_s,
        figures: Default::default(),
        console: String::new(),
        attempts: Vec::new(),
        flaky: false,
    }
}

fn attempt_of(c: CaseReport) -> crate::report::Attempt {
    crate::report::Attempt {
        outcome: c.outcome,
        message: c.message,
        duration_s: c.duration_s,
        started_s: c.started_s,
        console: c.console,
    }
}

/// Collects what the board's console (and the guest's, when one runs) prints while a
/// case runs.
struct Capture {
    board: Option<mpsc::UnboundedReceiver<crate::console::Event>>,
    guest: Option<mpsc::UnboundedReceiver<crate::console::Event>>,
}

impl Capture {
    fn start(s: &BoardSession) -> Capture {
        Capture {
            board: s.console().map(|c| c.subscribe()),
            guest: s.guest_console().map(|c| c.subscribe()),
        }
    }

    fn drain(rx: Option<mpsc::UnboundedReceiver<crate::console::Event>>) -> String {
        let mut raw = Vec::new();
        if let Some(mut rx) = rx {
            while let Ok(ev) = rx.try_recv() {
                if let crate::console::Event::Data(d) = ev {
                    raw.extend_from_slice(&d);
                    if raw.len() > 4 * SLICE_MAX {
                        raw.drain(..raw.len() - SLICE_MAX);
                    }
                }
            }
        }
        crate::text::clean(&raw)
    }

    fn take(self) -> String {
        let board = Self::drain(self.board);
        let guest = Self::drain(self.guest);
        let text = if guest.trim().is_empty() {
            board
        } else {
            format!("{board}\n--- guest console ---\n{guest}")
        };
        tail_text(&text, SLICE_MAX)
    }
}

async fn board_task(
    plan: BoardPlan,
    run_dir: PathBuf,
    sh: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let name = plan.board.name.clone();
    let suite = &sh.suite;
    let run_start = sh.run_start;
    let send_case = |c: CaseReport| {
        let _ = sh.tx.send(Event::Case(name.clone(), c));
    };
    let skip_all = |why: &str, at: f64| {
        for c in &suite.checks {
            send_case(case(
                &c.name,
                c.kind_name(),
                Outcome::Skipped,
                format!("not run: {why}"),
                at,
                0.0,
            ));
        }
    };
    let mut props = BTreeMap::new();
    props.insert("soc".to_string(), plan.board.soc.clone());
    props.insert("board_file".to_string(), plan.path.display().to_string());

    // The lease first: nothing of the board (not even its sim files) is touched before.
    let t0 = Instant::now();
    let lease = tokio::select! {
        r = take_lease(&plan.board, &sh) => r,
        _ = stop.wait_for(|v| *v) => Err("interrupted while waiting for the board".to_string()),
        _ = until(sh.deadline) => Err(format!("job deadline of {} s reached while waiting for the board", deadline_secs(suite))),
    };
    let lease = match lease {
        Ok((held, note)) => {
            props.insert("lease".into(), held.record().owner.describe());
            if let Some(n) = note {
                props.insert("lease_taken_over_from".into(), n);
            }
            held
        }
        Err(msg) => {
            let _ = sh.tx.send(Event::Props(name.clone(), props));
            send_case(case(
                "lease",
                "lease",
                Outcome::InfraError,
                msg,
                0.0,
                t0.elapsed().as_secs_f64(),
            ));
            skip_all("the board could not be leased", 0.0);
            return;
        }
    };

    // Prepare: sim images, placeholders, pinned host key.
    let t0 = Instant::now();
    let session = match prepare(&plan, &run_dir, &mut props, sh.image_set.as_ref()).await {
        Ok(s) => s,
        Err(e) => {
            let _ = sh.tx.send(Event::Props(name.clone(), props));
            send_case(case(
                "prepare",
                "prepare",
                e.outcome(),
                e.to_string(),
                0.0,
                t0.elapsed().as_secs_f64(),
            ));
            skip_all("board preparation failed", 0.0);
            let _ = lease.release();
            return;
        }
    };
    let _ = sh.tx.send(Event::Props(name.clone(), props.clone()));
    let mut s = session;

    // Flash (when the board file has a [flash] step) before the board is powered on.
    if let Some(fcfg) = s.board.flash.clone() {
        let t = Instant::now();
        let at = run_start.elapsed().as_secs_f64();
        let tools = crate::flash::backend::Tools::default();
        match crate::flash::backend::flash(&fcfg, &run_dir, &tools).await {
            Ok(rep) => {
                let hashes: BTreeMap<String, String> = rep
                    .images
                    .iter()
                    .map(|(name, _, sha)| (format!("image_sha256.{name}"), sha.clone()))
                    .collect();
                let _ = sh.tx.send(Event::Props(name.clone(), hashes));
                let msg = format!(
                    "{} flashed {} image(s) in {:.1} s",
                    rep.backend,
                    rep.images.len(),
                    rep.duration_s
                );
                send_case(case(
                    "flash",
                    "flash",
                    Outcome::Pass,
                    msg,
                    at,
                    t.elapsed().as_secs_f64(),
                ));
            }
            Err(e) => {
                send_case(case(
                    "flash",
                    "flash",
                    e.outcome(),
                    e.to_string(),
                    at,
                    t.elapsed().as_secs_f64(),
                ));
                skip_all("flashing failed", at);
                let _ = lease.release();
                return;
            }
        }
    }

    // Infrastructure retries left for this board (boot and checks share the budget).
    let mut infra_budget = s.board.retry.infrastructure;

    // Boot as its own testcase: how long it took, and where it stopped if it did.
    let first = suite
        .checks
        .iter()
        .map(|c| c.needs())
        .min()
        .unwrap_or(State::LinuxConsole);
    let mut attempts = Vec::new();
    let boot = loop {
        let t = Instant::now();
        let started_s = run_start.elapsed().as_secs_f64();
        let capture = Capture::start(&s);
        let r = tokio::select! {
            r = s.reach(first) => r,
            _ = until(sh.deadline) => Err(deadline_error(suite)),
        };
        let mut c = case(
            "boot",
            "boot",
            Outcome::Pass,
            String::new(),
            started_s,
            t.elapsed().as_secs_f64(),
        );
        // The console did not exist before power-on; take the whole boot from the log.
        c.console = boot_slice(&run_dir).unwrap_or_else(|| capture.take());
        match &r {
            Ok(()) => {
                c.message = format!("reached {:?} in {:.1} s", s.state, c.duration_s);
                c.figures
                    .insert("boot_s".into(), serde_json::json!(c.duration_s));
            }
            Err(e) => {
                c.outcome = e.outcome();
                c.message = e.to_string();
            }
        }
        let retry = matches!(&r, Err(e) if e.outcome() == Outcome::InfraError && !is_deadline(e))
            && infra_budget > 0
            && !*stop.borrow();
        if !retry {
            c.attempts = std::mem::take(&mut attempts);
            break (c, r.is_ok());
        }
        infra_budget -= 1;
        s.console_mark(&format!(
            "boot attempt {} ended in an infrastructure error ({}); power-cycling and booting again",
            attempts.len() + 1,
            c.message
        ));
        attempts.push(attempt_of(c));
        let _ = s.power_off().await;
    };
    let (boot_case, booted) = boot;
    let mut lab_broken = !booted;
    let facts: BTreeMap<String, String> = s
        .facts
        .clone()
        .into_iter()
        .filter(|(k, _)| k == "kernel")
        .collect();
    let _ = sh.tx.send(Event::Props(name.clone(), facts));
    send_case(boot_case);

    let mut interrupted = false;
    let mut deadline_hit = false;
    for spec in &suite.checks {
        if interrupted || *stop.borrow() {
            interrupted = true;
            let at = run_start.elapsed().as_secs_f64();
            send_case(case(
                &spec.name,
                spec.kind_name(),
                Outcome::Skipped,
                "not run: interrupted".into(),
                at,
                0.0,
            ));
            continue;
        }
        if deadline_hit
            || sh
                .deadline
                .is_some_and(|d| tokio::time::Instant::now() >= d)
        {
            deadline_hit = true;
            send_case(case(
                &spec.name,
                spec.kind_name(),
                Outcome::Skipped,
                format!(
                    "not run: job deadline of {} s reached",
                    deadline_secs(suite)
                ),
                run_start.elapsed().as_secs_f64(),
                0.0,
            ));
            continue;
        }
        if let Some(why) = lease.lost.borrow().clone() {
            lab_broken = true;
            send_case(case(
                &spec.name,
                spec.kind_name(),
                Outcome::InfraError,
                format!("not run: {why}"),
                run_start.elapsed().as_secs_f64(),
                0.0,
            ));
            continue;
        }
        if lab_broken {
            send_case(case(
                &spec.name,
                spec.kind_name(),
                Outcome::Skipped,
                "not run: the board was lost to an earlier error".into(),
                run_start.elapsed().as_secs_f64(),
                0.0,
            ));
            continue;
        }
        let mut attempts = Vec::new();
        let mut failed_runs = 0;
        let c = loop {
            let t = Instant::now();
            let (c, err) = tokio::select! {
                c = run_check(&mut s, spec, run_start) => c,
                _ = stop.wait_for(|v| *v) => {
                    interrupted = true;
                    let at = run_start.elapsed().as_secs_f64();
                    let mut c = case(&spec.name, spec.kind_name(), Outcome::Skipped, "interrupted while running".into(), at, t.elapsed().as_secs_f64());
                    c.console = boot_slice_tail(&run_dir);
                    (c, None)
                }
                _ = until(sh.deadline) => {
                    deadline_hit = true;
                    let at = run_start.elapsed().as_secs_f64();
                    let e = deadline_error(suite);
                    let mut c = case(&spec.name, spec.kind_name(), e.outcome(), format!("{e} while this check ran"), at, t.elapsed().as_secs_f64());
                    c.console = boot_slice_tail(&run_dir);
                    (c, None)
                }
            };
            if interrupted || deadline_hit {
                break c;
            }
            if let Some(e) = &err {
                if e.lab_broken() {
                    if infra_budget == 0 {
                        lab_broken = true;
                        break c;
                    }
                    // Lab trouble is not the DUT's fault: power-cycle, boot again (the next
                    // run_check reaches the state it needs) and run the check again.
                    infra_budget -= 1;
                    eprintln!(
                        "hil: {name}: {}: infrastructure error ({}); power-cycling and running it again",
                        spec.name, c.message
                    );
                    attempts.push(attempt_of(c));
                    let _ = s.power_off().await;
                    continue;
                } else if e.board_lost() {
                    // The DUT died (panic): later checks (and a re-run) get a fresh board.
                    let _ = s.power_off().await;
                }
            }
            if c.outcome == Outcome::Fail && failed_runs < spec.retries {
                failed_runs += 1;
                eprintln!(
                    "hil: {name}: {} failed ({}); running it again ({failed_runs} of {} retries)",
                    spec.name,
                    c.message.lines().next().unwrap_or(""),
                    spec.retries
                );
                attempts.push(attempt_of(c));
                continue;
            }
            break c;
        };
        let mut c = c;
        c.flaky = c.outcome == Outcome::Pass && attempts.iter().any(|a| a.outcome == Outcome::Fail);
        c.attempts = attempts;
        send_case(c);
    }
    // Devices go back to their drivers whatever happened (pass, fail, interrupt), while
    // the board still runs; then power off.
    if let Err(e) = s.teardown().await {
        let at = run_start.elapsed().as_secs_f64();
        send_case(case(
            "teardown",
            "teardown",
            e.outcome(),
            e.to_string(),
            at,
            0.0,
        ));
    }
    let _ = s.power_off().await;
    // Each gap is also marked in the console log and fails no case by itself; the count
    // tells a reader of the report that some of the board's output was lost.
    let gaps = BTreeMap::from([("console_gaps".to_string(), s.console_gaps().to_string())]);
    let _ = sh.tx.send(Event::Props(name.clone(), gaps));
    if let Err(e) = lease.release() {
        eprintln!("hil: {name}: warning: could not release the lease: {e}");
    }
}

/// Waits until the instant, or forever without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn deadline_secs(suite: &Suite) -> u64 {
    suite.deadline.map_or(0, |d| d.as_secs())
}

fn deadline_error(suite: &Suite) -> StepError {
    StepError::Infra(format!(
        "job deadline of {} s reached (suite deadline_s)",
        deadline_secs(suite)
    ))
}

fn is_deadline(e: &StepError) -> bool {
    matches!(e, StepError::Infra(m) if m.starts_with("job deadline"))
}

/// Takes the board's lease (queueing when `--wait`); the note names an expired lease that
/// was taken over.
async fn take_lease(
    board: &Board,
    sh: &Shared,
) -> Result<(crate::lease::Held, Option<String>), String> {
    let name = board.name.clone();
    let mut on_busy = |holder: &str| {
        eprintln!("hil: {name}: waiting for the board: {holder}");
    };
    let wait = crate::lease::Wait {
        enabled: sh.wait,
        poll: Duration::from_secs(1),
        on_busy: &mut on_busy,
    };
    let ttl = Duration::from_secs(board.lease.ttl_s);
    match crate::lease::Held::acquire(sh.leases.clone(), &board.name, sh.owner.clone(), ttl, wait)
        .await
    {
        Ok((held, prev)) => {
            let note = prev.map(|p| {
                let d = p.describe(crate::lease::now());
                eprintln!("hil: {}: took over an expired lease: {d}", board.name);
                d
            });
            Ok((held, note))
        }
        Err(e @ crate::lease::LeaseError::Busy { .. }) => {
            Err(format!("{e}; run with --wait to queue for it"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The last part of the board's console log (for a case cut short).
fn boot_slice_tail(run_dir: &std::path::Path) -> String {
    boot_slice(run_dir)
        .map(|s| tail_text(&s, 16 * 1024))
        .unwrap_or_default()
}

/// The console log from its start (the whole boot), as text.
fn boot_slice(run_dir: &std::path::Path) -> Option<String> {
    let raw = std::fs::read(run_dir.join("console.log")).ok()?;
    Some(tail_text(&crate::text::clean(&raw), SLICE_MAX))
}

async fn run_check(
    s: &mut BoardSession,
    spec: &CheckSpec,
    run_start: Instant,
) -> (CaseReport, Option<StepError>) {
    let t = Instant::now();
    let started_s = run_start.elapsed().as_secs_f64();
    let mut c = case(
        &spec.name,
        spec.kind_name(),
        Outcome::Pass,
        String::new(),
        started_s,
        0.0,
    );
    let result = match s.reach(spec.needs()).await {
        Err(e) => Err(e),
        Ok(()) => {
            let capture = Capture::start(s);
            // Watch the console for a panic or the board going away while the check talks to
            // the board (SSH would otherwise just hang).
            let mut watch = s
                .console()
                .map(|con| Expecter::new(con.subscribe(), linux_death_patterns()));
            // Grace beyond the check's own limit, for the transport to report its timeout.
            let limit = spec.timeout.saturating_add(Duration::from_secs(10));
            let r = tokio::select! {
                r = tokio::time::timeout(limit, spec.run(s)) => r.unwrap_or(Err(StepError::CheckTimeout(spec.timeout.as_secs()))),
                e = async { match watch.as_mut() { Some(w) => w.watch().await, None => std::future::pending().await } } => Err(e.into()),
            };
            c.console = capture.take();
            r
        }
    };
    c.duration_s = t.elapsed().as_secs_f64();
    match result {
        Ok(out) => {
            c.outcome = out.outcome.unwrap_or(Outcome::Pass);
            c.message = out.message;
            c.figures = out.figures;
            (c, None)
        }
        Err(e) => {
            c.outcome = e.outcome();
            c.message = e.to_string();
            (c, Some(e))
        }
    }
}

/// Resolves placeholders (provisioning the sim lab for a simulated board) and builds the
/// board session. `image_set`: a kernel build to boot instead of the usual images.
pub async fn prepare(
    plan: &BoardPlan,
    run_dir: &std::path::Path,
    props: &mut BTreeMap<String, String>,
    image_set: Option<&crate::image_set::ImageSet>,
) -> Result<BoardSession, StepError> {
    std::fs::create_dir_all(run_dir)
        .map_err(|e| StepError::Infra(format!("{}: {e}", run_dir.display())))?;
    let mut vars = expand::Vars::new();
    vars.insert("cache", crate::lab::cache_root().display().to_string());
    vars.insert("run_dir", run_dir.display().to_string());
    if let Some(b) = image_set {
        vars.insert("build", b.dir.display().to_string());
        props.insert("build".into(), b.name.clone());
    }
    if plan.board.simulated {
        let images = crate::lab::build(&crate::lab::BuildOptions {
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        })
        .await
        .map_err(|e| StepError::Infra(format!("sim lab build failed: {e:#}")))?;
        let bd =
            crate::lab::prepare_board_with(&images, &plan.board.name, image_set).map_err(|e| {
                StepError::Infra(format!(
                    "sim board {} preparation failed: {e:#}",
                    plan.board.name
                ))
            })?;
        vars.insert("images", images.dir.display().to_string());
        vars.insert("board_dir", bd.dir.display().to_string());
        props.insert("kernel_package".into(), images.kernel_version.clone());
        for (k, p) in [
            ("image_sha256.kernel", &bd.tftp.join("Image.gz")),
            ("image_sha256.initrd", &bd.tftp.join("initrd.gz")),
        ] {
            if let Ok(h) = crate::hash::sha256_file(p) {
                props.insert(k.into(), h);
            }
        }
    }
    let board = plan
        .board
        .expanded(&plan.path, &vars)
        .map_err(|e| StepError::Harness(e.to_string()))?;
    let target = board
        .ssh_target(&plan.path)
        .map_err(|e| StepError::Infra(e.to_string()))?;
    Ok(BoardSession::new(board, run_dir.to_path_buf(), target))
}
