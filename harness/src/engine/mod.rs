//! The per-board engine. One [`BoardRun`] value owns one board for one run and walks it
//! through its steps, each a method: [`lease`](BoardRun::lease),
//! [`prepare`](BoardRun::prepare), [`flash`](BoardRun::flash), [`boot`](BoardRun::boot),
//! [`check`](BoardRun::check) (per suite check) and [`teardown`](BoardRun::teardown).
//! `hil run`, `nightly`, `bisect` and `checklist` all drive it; what differs between them
//! is a [`Policy`] (stop at the first blocker, staged boot, queue for the lease, ask the
//! operator).
//!
//! What the engine guarantees on every path:
//! - every step waits within a deadline: its own time-out from the board or suite file,
//!   the suite's `deadline_s`, Ctrl-C/SIGTERM, and the board's lease (a lost lease cancels
//!   the step at once);
//! - before each board-touching step (power, flash, boot, every check, teardown) the lease
//!   is proven current (fencing); a run that lost its lease stops and never tears down or
//!   powers off a board that someone else may hold by now;
//! - a panic inside a step is a harness error of that step, and teardown (VFIO restore,
//!   guest stop, power off) still runs, within its own deadline;
//! - every step ends as one testcase sent to the dispatcher, which writes the reports.

pub mod capture;
pub mod policy;
mod service;

pub use policy::Policy;

use crate::boot::{BoardSession, State};
use crate::checks::CheckSpec;
use crate::config::{expand, Board, Suite};
use crate::error::StepError;
use crate::expect::{linux_death_patterns, Expecter};
use crate::lease::{Held, Leases, Owner};
use crate::outcome::Outcome;
use crate::report::{Attempt, CaseReport};
use capture::Capture;
use futures_util::FutureExt;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// A board file, loaded and validated.
pub struct BoardPlan {
    pub path: PathBuf,
    pub board: Board,
}

/// What a board's engine tells the dispatcher. Every step sends `Started`, and ends
/// either as a `Case` of the report or, for a setup step that passed without one (lease,
/// prepare, teardown), as `Done`: the dispatcher's progress display is built from these
/// alone.
pub enum Event {
    Props(String, BTreeMap<String, String>),
    Case(String, CaseReport),
    /// Board, step name, the step's time-out where it has one.
    Started(String, String, Option<Duration>),
    /// Board, step name, outcome, seconds.
    Done(String, String, Outcome, f64),
}

/// What the run shares with every board's engine.
pub struct RunContext {
    pub suite: Suite,
    pub events: mpsc::UnboundedSender<Event>,
    pub run_start: Instant,
    /// The suite's whole-job deadline (none when unset).
    pub deadline: Option<tokio::time::Instant>,
    pub leases: Leases,
    pub owner: Owner,
    /// A kernel build to boot instead of the board's usual images (bisect, nightly).
    pub image_set: Option<crate::image_set::ImageSet>,
    pub policy: Policy,
}

/// Why the remaining checks of a board are not run.
#[derive(Debug, Clone)]
pub enum Halt {
    Interrupted,
    Deadline,
    LeaseLost(String),
    /// Lab equipment failed and the infrastructure retry budget is spent.
    BoardLost,
    /// A step before the checks failed (lease, prepare, flash, boot).
    Setup(&'static str),
    /// The policy stops at the first step that did not pass.
    Blocker(String),
}

pub struct BoardRun {
    cx: Arc<RunContext>,
    plan: BoardPlan,
    run_dir: PathBuf,
    stop: watch::Receiver<bool>,
    lease: Option<Held>,
    /// The board's console published to followers while the lease is held.
    publisher: Option<crate::console::follow::Publisher>,
    session: Option<BoardSession>,
    props: BTreeMap<String, String>,
    /// Infrastructure retries left (boot and checks share the budget).
    infra_budget: u32,
    halt: Option<Halt>,
    /// The outcome of every case emitted, for the board's service count.
    outcomes: std::sync::Mutex<Vec<Outcome>>,
}

impl BoardRun {
    pub fn new(
        plan: BoardPlan,
        run_dir: PathBuf,
        cx: Arc<RunContext>,
        stop: watch::Receiver<bool>,
    ) -> BoardRun {
        let mut props = BTreeMap::new();
        props.insert("soc".to_string(), plan.board.soc.clone());
        props.insert("board_file".to_string(), plan.path.display().to_string());
        BoardRun {
            infra_budget: plan.board.retry.infrastructure,
            cx,
            plan,
            run_dir,
            stop,
            lease: None,
            publisher: None,
            session: None,
            props,
            halt: None,
            outcomes: Default::default(),
        }
    }

    fn name(&self) -> &str {
        &self.plan.board.name
    }

    fn at(&self) -> f64 {
        self.cx.run_start.elapsed().as_secs_f64()
    }

    fn emit(&self, c: CaseReport) {
        self.outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(c.outcome);
        let _ = self.cx.events.send(Event::Case(self.name().to_string(), c));
    }

    fn started(&self, step: &str, timeout: Option<Duration>) {
        if let Some(p) = &self.publisher {
            p.fanout().step(crate::console::follow::proto::Step {
                name: step.to_string(),
                since: crate::lease::now(),
                timeout_s: timeout.map(|t| t.as_secs_f64()),
            });
        }
        let _ = self.cx.events.send(Event::Started(
            self.name().to_string(),
            step.to_string(),
            timeout,
        ));
    }

    fn done(&self, step: &str, t: Instant) {
        let _ = self.cx.events.send(Event::Done(
            self.name().to_string(),
            step.to_string(),
            Outcome::Pass,
            t.elapsed().as_secs_f64(),
        ));
    }

    fn send_props(&self, props: BTreeMap<String, String>) {
        let _ = self
            .cx
            .events
            .send(Event::Props(self.name().to_string(), props));
    }

    /// All steps, in order, under the policy. Consumes the engine: the board is given back
    /// (torn down, lease released) when this returns.
    pub async fn drive(mut self) {
        if let Err(h) = self.setup().await {
            self.halt = Some(h);
        }
        let cx = self.cx.clone();
        for spec in &cx.suite.checks {
            self.check(spec).await;
        }
        self.teardown().await;
        // Followers are told before the board is given back: what they see next would be
        // another run's.
        if let Some(p) = self.publisher.take() {
            p.finish(&format!("run {} ended", self.cx.owner.run_id))
                .await;
        }
        if let Some(lease) = self.lease.take() {
            if self.lease_lost().is_none() {
                self.note_service().await;
                if let Err(e) = lease.release() {
                    eprintln!(
                        "hil: {}: warning: could not release the lease: {e}",
                        self.name()
                    );
                }
            }
        }
    }

    /// Counts the run towards the board's service (while the board is still ours); an
    /// interrupted run counts for nothing.
    async fn note_service(&self) {
        if matches!(self.halt, Some(Halt::Interrupted)) {
            return;
        }
        let outcomes = self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let board = &self.plan.board;
        service::note_run(
            &self.cx.leases,
            &board.name,
            outcomes,
            board.lease.out_of_service_after,
            self.cx.policy.health,
        )
        .await;
    }

    async fn setup(&mut self) -> Result<(), Halt> {
        self.lease().await?;
        self.prepare().await?;
        self.flash().await?;
        self.boot().await
    }

    /// Takes the board's lease: nothing of the board (not even its sim files) is touched
    /// before. Queues behind the holder when the policy says so.
    pub async fn lease(&mut self) -> Result<(), Halt> {
        let t = Instant::now();
        self.started("lease", self.cx.policy.queue_timeout);
        let mut stop = self.stop.clone();
        let r = tokio::select! {
            r = take_lease(&self.plan.board, &self.cx) => r,
            _ = stop.wait_for(|v| *v) => Err("interrupted while waiting for the board".to_string()),
            _ = until(self.cx.deadline) => Err(format!("{} while waiting for the board", deadline_error(&self.cx.suite))),
        };
        match r {
            Ok((held, note)) => {
                self.props
                    .insert("lease".into(), held.record().owner.describe());
                self.props
                    .insert("lease_token".into(), held.record().token.to_string());
                if let Some(n) = note {
                    self.props.insert("lease_taken_over_from".into(), n);
                }
                self.publisher = self.publish(&held);
                self.lease = Some(held);
                self.done("lease", t);
                Ok(())
            }
            Err(msg) => {
                self.send_props(self.props.clone());
                self.emit(case(
                    "lease",
                    "lease",
                    Outcome::InfraError,
                    msg,
                    0.0,
                    t.elapsed().as_secs_f64(),
                ));
                Err(Halt::Setup("the board could not be leased"))
            }
        }
    }

    /// Publishes the board's console for `hil console BOARD` on this host while the run
    /// holds it. A run is not failed for it: without the socket nobody can follow, which
    /// is said once.
    fn publish(&self, held: &Held) -> Option<crate::console::follow::Publisher> {
        let header = crate::console::follow::proto::Header {
            run: self.cx.owner.run_id.clone(),
            holder: held.record().owner.describe(),
            input: self.cx.policy.follower_input,
        };
        let dir = self.cx.leases.host_dir();
        let r = dir.checked_dir().map_err(|e| e.to_string()).and_then(|d| {
            crate::console::follow::Publisher::start(d, self.name(), header)
                .map_err(|e| e.to_string())
        });
        match r {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!(
                    "hil: {}: warning: its console cannot be followed during this run: {e}",
                    self.name()
                );
                None
            }
        }
    }

    /// Sim images, placeholders, the pinned host key: the board session.
    pub async fn prepare(&mut self) -> Result<(), Halt> {
        let t = Instant::now();
        self.started("prepare", None);
        let mut props = std::mem::take(&mut self.props);
        let r = guarded(prepare_session(
            &self.plan,
            &self.run_dir,
            &mut props,
            self.cx.image_set.as_ref(),
        ))
        .await;
        self.send_props(props.clone());
        self.props = props;
        match r {
            Ok(mut s) => {
                if let Some(p) = &self.publisher {
                    s.publish_console(p.fanout());
                }
                self.session = Some(s);
                self.done("prepare", t);
                Ok(())
            }
            Err(e) => {
                self.emit(case(
                    "prepare",
                    "prepare",
                    e.outcome(),
                    e.to_string(),
                    0.0,
                    t.elapsed().as_secs_f64(),
                ));
                Err(Halt::Setup("board preparation failed"))
            }
        }
    }

    /// The board file's `[flash]` step, before the board is powered on.
    pub async fn flash(&mut self) -> Result<(), Halt> {
        let Some(fcfg) = self.session.as_ref().and_then(|s| s.board.flash.clone()) else {
            return Ok(());
        };
        let t = Instant::now();
        let at = self.at();
        self.started("flash", Some(Duration::from_secs(fcfg.timeout_s())));
        if let Err(e) = self.fence().await {
            self.emit(case("flash", "flash", e.outcome(), e.to_string(), at, 0.0));
            return Err(self.halt_for(&e));
        }
        let tools = crate::flash::backend::Tools::default();
        let run_dir = self.run_dir.clone();
        let r = self
            .bounded(async { crate::flash::backend::flash(&fcfg, &run_dir, &tools).await })
            .await;
        match r {
            Ok(Ok(rep)) => {
                let hashes: BTreeMap<String, String> = rep
                    .images
                    .iter()
                    .map(|(name, _, sha)| (format!("image_sha256.{name}"), sha.clone()))
                    .collect();
                self.send_props(hashes);
                let msg = format!(
                    "{} flashed {} image(s) in {:.1} s",
                    rep.backend,
                    rep.images.len(),
                    rep.duration_s
                );
                self.emit(case(
                    "flash",
                    "flash",
                    Outcome::Pass,
                    msg,
                    at,
                    t.elapsed().as_secs_f64(),
                ));
                Ok(())
            }
            Ok(Err(e)) => {
                self.emit(case(
                    "flash",
                    "flash",
                    e.outcome(),
                    e.to_string(),
                    at,
                    t.elapsed().as_secs_f64(),
                ));
                Err(Halt::Setup("flashing failed"))
            }
            Err(e) => {
                self.emit(case(
                    "flash",
                    "flash",
                    e.outcome(),
                    e.to_string(),
                    at,
                    t.elapsed().as_secs_f64(),
                ));
                Err(self.halt_for(&e))
            }
        }
    }

    /// Powers the board on and boots it as far as the first check needs, as one `boot`
    /// case (or the checklist's three stages). Infrastructure errors are retried after a
    /// power cycle within the board's budget.
    pub async fn boot(&mut self) -> Result<(), Halt> {
        let first = self
            .cx
            .suite
            .checks
            .iter()
            .map(|c| c.needs())
            .min()
            .unwrap_or(State::LinuxConsole);
        let stages: Vec<State> = if self.cx.policy.staged_boot {
            vec![State::Bootloader, State::LinuxConsole]
        } else {
            vec![first]
        };
        for target in stages {
            self.boot_stage(target).await?;
        }
        if let Some(s) = &self.session {
            let facts: BTreeMap<String, String> = s
                .facts
                .clone()
                .into_iter()
                .filter(|(k, _)| k == "kernel")
                .collect();
            self.send_props(facts);
        }
        Ok(())
    }

    async fn boot_stage(&mut self, target: State) -> Result<(), Halt> {
        let staged = self.cx.policy.staged_boot;
        let mut attempts = Vec::new();
        loop {
            let t = Instant::now();
            let started_s = self.at();
            // Taken before the boot: the limit depends on where the board starts from.
            let limit = self.session.as_ref().map(|s| s.limit_to(target));
            self.started(&boot_step_name(staged, target), limit);
            let r = match self.fence().await {
                Err(e) => Err(e),
                Ok(()) => {
                    let s = self.session.as_mut().ok_or_else(no_session);
                    match s {
                        Err(e) => Err(e),
                        Ok(s) => {
                            let fut = s.reach(target);
                            bounded_by(&self.cx, self.lease.as_ref(), &mut self.stop, guarded(fut))
                                .await
                                .and_then(|r| r)
                        }
                    }
                }
            };
            let Some(s) = self.session.as_ref() else {
                return Err(Halt::Setup("board preparation failed"));
            };
            let alive = s.console().is_some_and(|c| c.received() > 0);
            let reached = s.state;
            let mut c = case(
                "boot",
                "boot",
                Outcome::Pass,
                String::new(),
                started_s,
                t.elapsed().as_secs_f64(),
            );
            c.timeout_s = limit.map(|d| d.as_secs_f64());
            // The console did not exist before power-on; take the whole boot from the log.
            c.console = capture::log_slice(&self.run_dir).unwrap_or_default();
            match &r {
                Ok(()) => {
                    c.message = format!("reached {reached:?} in {:.1} s", c.duration_s);
                    c.figures
                        .insert("boot_s".into(), serde_json::json!(c.duration_s));
                }
                Err(_) if *self.stop.borrow() => {
                    c.outcome = Outcome::Skipped;
                    c.message = "interrupted while booting".into();
                }
                Err(e) => {
                    c.outcome = e.outcome();
                    c.message = e.to_string();
                }
            }
            let retry = matches!(&r, Err(e) if e.retryable())
                && self.infra_budget > 0
                && !*self.stop.borrow();
            if retry {
                self.infra_budget -= 1;
                if let Some(s) = self.session.as_mut() {
                    s.console_mark(&format!(
                        "boot attempt {} ended in an infrastructure error ({}); power-cycling and booting again",
                        attempts.len() + 1,
                        c.message
                    ));
                    let _ = s.power_off().await;
                }
                attempts.push(attempt_of(c));
                continue;
            }
            c.attempts = std::mem::take(&mut attempts);
            let cases = if staged {
                stage_cases(target, c, alive)
            } else {
                vec![c]
            };
            let blocker = cases.iter().find(|c| c.outcome != Outcome::Pass).cloned();
            match (blocker, r) {
                (None, _) => {
                    cases.into_iter().for_each(|c| self.emit(c));
                    return Ok(());
                }
                (Some(b), r) => {
                    let halt = match &r {
                        Err(e) => self.halt_for(e),
                        Ok(()) => Halt::Setup("the board did not boot"),
                    };
                    if matches!(halt, Halt::Setup(_)) && self.ask_retry(&b).await {
                        if let Some(s) = self.session.as_mut() {
                            let _ = s.power_off().await;
                        }
                        continue;
                    }
                    cases.into_iter().for_each(|c| self.emit(c));
                    return Err(halt);
                }
            }
        }
    }

    /// One suite check: the board state it needs, then the check within its time limit,
    /// raced against the console's death patterns, the job deadline, Ctrl-C and the
    /// lease. A failure is re-run up to the check's `retries` (a pass after that is
    /// flaky); an infrastructure error power-cycles the board and runs the check again
    /// within the board's budget.
    pub async fn check(&mut self, spec: &CheckSpec) {
        if let Some(c) = self.not_run(spec) {
            self.emit(c);
            return;
        }
        let mut attempts = Vec::new();
        let mut failed_runs = 0;
        let c = loop {
            let (c, err) = self.attempt(spec).await;
            if self.halt.is_some() {
                break c;
            }
            if let Some(e) = &err {
                if e.retryable() {
                    if self.infra_budget == 0 {
                        self.halt = Some(Halt::BoardLost);
                        break c;
                    }
                    // Lab trouble is not the DUT's fault: power-cycle, boot again (the next
                    // attempt reaches the state it needs) and run the check again.
                    self.infra_budget -= 1;
                    eprintln!(
                        "hil: {}: {}: infrastructure error ({}); power-cycling and running it again",
                        self.name(),
                        spec.name,
                        c.message
                    );
                    attempts.push(attempt_of(c));
                    self.power_off().await;
                    continue;
                } else if e.lab_broken() {
                    self.halt = Some(self.halt_for(e));
                    break c;
                } else if e.board_lost() || matches!(e, StepError::Harness(_)) {
                    // The DUT died (panic), or hil's own bug left it in an unknown state:
                    // later checks (and a re-run) get a fresh board.
                    self.power_off().await;
                }
            }
            if c.outcome == Outcome::Fail && failed_runs < spec.retries {
                failed_runs += 1;
                eprintln!(
                    "hil: {}: {} failed ({}); running it again ({failed_runs} of {} retries)",
                    self.name(),
                    spec.name,
                    c.message.lines().next().unwrap_or(""),
                    spec.retries
                );
                attempts.push(attempt_of(c));
                continue;
            }
            if c.outcome != Outcome::Pass
                && self.cx.policy.stop_at_first_blocker
                && self.ask_retry(&c).await
            {
                continue;
            }
            break c;
        };
        let mut c = c;
        c.flaky = c.outcome == Outcome::Pass && attempts.iter().any(|a| a.outcome == Outcome::Fail);
        c.attempts = attempts;
        if c.outcome != Outcome::Pass && self.cx.policy.stop_at_first_blocker && self.halt.is_none()
        {
            self.halt = Some(Halt::Blocker(spec.name.clone()));
        }
        self.emit(c);
    }

    /// The case of a check that is not run, when the board cannot run it.
    fn not_run(&mut self, spec: &CheckSpec) -> Option<CaseReport> {
        if self.halt.is_none() && *self.stop.borrow() {
            self.halt = Some(Halt::Interrupted);
        }
        if self.halt.is_none()
            && self
                .cx
                .deadline
                .is_some_and(|d| tokio::time::Instant::now() >= d)
        {
            self.halt = Some(Halt::Deadline);
        }
        let (outcome, why) = match self.halt.as_ref()? {
            Halt::Interrupted => (Outcome::Skipped, "interrupted".to_string()),
            Halt::Deadline => (
                Outcome::Skipped,
                format!(
                    "job deadline of {} s reached",
                    deadline_secs(&self.cx.suite)
                ),
            ),
            // The lease is lab state that every later check depends on.
            Halt::LeaseLost(why) => (Outcome::InfraError, why.clone()),
            Halt::BoardLost => (
                Outcome::Skipped,
                "the board was lost to an earlier error".to_string(),
            ),
            Halt::Setup(why) => (Outcome::Skipped, why.to_string()),
            Halt::Blocker(name) => (Outcome::Skipped, format!("stopped at {name}")),
        };
        let mut c = case(
            &spec.name,
            spec.kind_name(),
            outcome,
            format!("not run: {why}"),
            self.at(),
            0.0,
        );
        c.timeout_s = Some(spec.timeout.as_secs_f64());
        Some(c)
    }

    /// One run of a check, with everything that can cut it short.
    async fn attempt(&mut self, spec: &CheckSpec) -> (CaseReport, Option<StepError>) {
        let t = Instant::now();
        let started_s = self.at();
        let mut c = case(
            &spec.name,
            spec.kind_name(),
            Outcome::Pass,
            String::new(),
            started_s,
            0.0,
        );
        c.timeout_s = Some(spec.timeout.as_secs_f64());
        self.started(&spec.name, Some(spec.timeout));
        let fenced = self.fence().await;
        let result = match (fenced, self.session.as_mut()) {
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(no_session()),
            (Ok(()), Some(s)) => {
                let fut = run_check(s, spec);
                bounded_by(&self.cx, self.lease.as_ref(), &mut self.stop, guarded(fut))
                    .await
                    .and_then(|r| r)
            }
        };
        c.duration_s = t.elapsed().as_secs_f64();
        match result {
            Ok((out, console)) => {
                c.outcome = out.outcome.unwrap_or(Outcome::Pass);
                c.message = out.message;
                c.figures = out.figures;
                c.console = console;
                (c, None)
            }
            Err(e) => {
                match &e {
                    StepError::JobDeadline { .. } => self.halt = Some(Halt::Deadline),
                    StepError::LeaseLost(why) => self.halt = Some(Halt::LeaseLost(why.clone())),
                    _ => {}
                }
                if *self.stop.borrow() && self.halt.is_none() {
                    self.halt = Some(Halt::Interrupted);
                    c.outcome = Outcome::Skipped;
                    c.message = "interrupted while running".into();
                } else {
                    c.outcome = e.outcome();
                    c.message = match &e {
                        StepError::JobDeadline { .. } => format!("{e} while this check ran"),
                        _ => e.to_string(),
                    };
                }
                if c.console.is_empty() {
                    c.console = capture::log_tail(&self.run_dir);
                }
                (c, Some(e))
            }
        }
    }

    /// Devices back to their drivers, guest stopped, board powered off: on every path of a
    /// board that is still ours, within its own deadline (from the board file: a shell
    /// command's time-out per bound device and two more, plus the power time-out). A run
    /// that lost its lease leaves the board alone.
    pub async fn teardown(&mut self) {
        let Some(mut s) = self.session.take() else {
            return;
        };
        if let Some(why) = self.lease_lost_now().await {
            s.console_mark(&format!(
                "lease lost ({why}): the board is left as it is, not torn down or powered off"
            ));
            self.emit(case(
                "teardown",
                "teardown",
                Outcome::InfraError,
                format!("not torn down: {why}"),
                self.at(),
                0.0,
            ));
            // Dropping the session would stop a QEMU-powered board: it may be someone
            // else's now, so it is left running until this process ends.
            std::mem::forget(s);
            return;
        }
        let t = Instant::now();
        let at = self.at();
        let shell = Duration::from_secs(s.board.linux.shell_timeout_s);
        let power = Duration::from_secs(s.board.power.timeout_s.unwrap_or(30));
        let limit = shell
            .saturating_mul(s.bindings.len() as u32 + 2)
            .saturating_add(power);
        self.started("teardown", Some(limit));
        let mut problems = Vec::new();
        match tokio::time::timeout(limit, guarded(s.teardown())).await {
            Err(_) => problems.push(format!(
                "restoring devices did not finish within {} s",
                limit.as_secs()
            )),
            Ok(Err(e)) => problems.push(e.to_string()),
            Ok(Ok(())) => {}
        }
        let power_limit = power.saturating_add(Duration::from_secs(10));
        match tokio::time::timeout(power_limit, s.power_off()).await {
            Err(_) => problems.push(format!(
                "power off did not finish within {} s",
                power_limit.as_secs()
            )),
            Ok(Err(e)) => problems.push(format!("power off: {e}")),
            Ok(Ok(())) => {}
        }
        if !problems.is_empty() {
            self.emit(case(
                "teardown",
                "teardown",
                Outcome::InfraError,
                problems.join("; "),
                at,
                t.elapsed().as_secs_f64(),
            ));
        } else {
            self.done("teardown", t);
        }
        // Each gap is also marked in the console log and fails no case by itself; the
        // count and the time without transport tell a reader of the report that some of
        // the board's output was lost, and how much of the run that was.
        self.send_props(BTreeMap::from([
            ("console_gaps".to_string(), s.console_gaps().to_string()),
            (
                "console_gap_s".to_string(),
                format!("{:.1}", s.console_gap_time().as_secs_f64()),
            ),
        ]));
    }

    /// Powers the board off between attempts (it boots again for the next), unless the
    /// lease is gone.
    async fn power_off(&mut self) {
        if self.lease_lost_now().await.is_some() {
            return;
        }
        if let Some(s) = self.session.as_mut() {
            let _ = s.power_off().await;
        }
    }

    /// Proves the lease still current before a board-touching step.
    async fn fence(&mut self) -> Result<(), StepError> {
        match self.lease_lost_now().await {
            Some(why) => Err(StepError::LeaseLost(why)),
            None => Ok(()),
        }
    }

    fn lease_lost(&self) -> Option<String> {
        match &self.halt {
            Some(Halt::LeaseLost(why)) => Some(why.clone()),
            _ => None,
        }
    }

    /// The lease's state now: lost already, or found lost by the fencing check.
    async fn lease_lost_now(&mut self) -> Option<String> {
        if let Some(why) = self.lease_lost() {
            return Some(why);
        }
        let lease = self.lease.as_ref()?;
        match lease.check_current().await {
            Ok(()) => None,
            Err(e) => {
                let why = e.to_string();
                self.halt = Some(Halt::LeaseLost(why.clone()));
                Some(why)
            }
        }
    }

    fn halt_for(&self, e: &StepError) -> Halt {
        match e {
            StepError::LeaseLost(why) => Halt::LeaseLost(why.clone()),
            StepError::JobDeadline { .. } => Halt::Deadline,
            _ if *self.stop.borrow() => Halt::Interrupted,
            _ => Halt::Setup("the board did not boot"),
        }
    }

    /// Runs `fut` bounded by the job deadline, Ctrl-C and the lease.
    async fn bounded<T>(&mut self, fut: impl Future<Output = T>) -> Result<T, StepError> {
        bounded_by(&self.cx, self.lease.as_ref(), &mut self.stop, fut).await
    }

    /// The policy's operator prompt at a blocker (on the blocking pool: it reads stdin).
    async fn ask_retry(&self, c: &CaseReport) -> bool {
        let Some(prompt) = self.cx.policy.retry_prompt.clone() else {
            return false;
        };
        let c = c.clone();
        tokio::task::spawn_blocking(move || prompt(&c))
            .await
            .unwrap_or(false)
    }
}

/// The name a boot stage is shown under while it runs: the case it will end as.
fn boot_step_name(staged: bool, target: State) -> String {
    match (staged, target) {
        (false, _) => "boot".into(),
        (true, State::Bootloader) => "bootloader reached".into(),
        (true, _) => "kernel boots".into(),
    }
}

/// The checklist's three boot cases from one stage's result: whether the console printed
/// at all, then the bootloader, then the kernel.
fn stage_cases(target: State, c: CaseReport, alive: bool) -> Vec<CaseReport> {
    let named = |name: &str, c: &CaseReport| CaseReport {
        name: name.into(),
        ..c.clone()
    };
    if target == State::Bootloader {
        if c.outcome != Outcome::Pass && !alive {
            return vec![named("console alive", &c)];
        }
        let mut a = named("console alive", &c);
        a.outcome = Outcome::Pass;
        a.message = "the board prints on its console".into();
        a.duration_s = 0.0;
        a.attempts.clear();
        a.figures.clear();
        vec![a, named("bootloader reached", &c)]
    } else {
        vec![named("kernel boots", &c)]
    }
}

/// Races `fut` against the job deadline, Ctrl-C and the lease being lost.
async fn bounded_by<T>(
    cx: &RunContext,
    lease: Option<&Held>,
    stop: &mut watch::Receiver<bool>,
    fut: impl Future<Output = T>,
) -> Result<T, StepError> {
    let lost = async {
        match lease {
            Some(l) => l.lost().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = fut => Ok(r),
        _ = until(cx.deadline) => Err(deadline_error(&cx.suite)),
        why = lost => Err(StepError::LeaseLost(why)),
        _ = stop.wait_for(|v| *v) => Err(StepError::Infra("interrupted".into())),
    }
}

/// A panic inside a step becomes that step's harness error instead of unwinding through
/// the engine, so teardown still runs on the board.
async fn guarded<T>(fut: impl Future<Output = Result<T, StepError>>) -> Result<T, StepError> {
    match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(p) => Err(StepError::Harness(format!(
            "hil panicked in this step: {}",
            panic_message(p.as_ref())
        ))),
    }
}

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn no_session() -> StepError {
    StepError::Harness("no board session (preparation did not run)".into())
}

/// The check itself, once the board is where it needs it: returns its output and the
/// console slice.
async fn run_check(
    s: &mut BoardSession,
    spec: &CheckSpec,
) -> Result<(crate::checks::CheckOutput, String), StepError> {
    s.reach(spec.needs()).await?;
    let capture = Capture::start(s);
    // Watch the console for a panic or the board going away while the check talks to the
    // board (SSH would otherwise just hang).
    let mut watch = s
        .console()
        .map(|con| Expecter::new(con.subscribe(), linux_death_patterns()));
    // Grace beyond the check's own limit, for the transport to report its own time-out.
    let limit = spec.timeout.saturating_add(Duration::from_secs(10));
    let r = tokio::select! {
        r = tokio::time::timeout(limit, spec.run(s)) => r.unwrap_or(Err(StepError::CheckTimeout(spec.timeout.as_secs()))),
        e = async { match watch.as_mut() { Some(w) => w.watch().await, None => std::future::pending().await } } => Err(e.into()),
    };
    let console = capture.take();
    match r {
        Ok(out) => Ok((out, console)),
        Err(e) => Err(e),
    }
}

pub(crate) fn case(
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
        timeout_s: None,
    }
}

fn attempt_of(c: CaseReport) -> Attempt {
    Attempt {
        outcome: c.outcome,
        message: c.message,
        duration_s: c.duration_s,
        started_s: c.started_s,
        console: c.console,
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
    StepError::JobDeadline {
        secs: deadline_secs(suite),
    }
}

/// Takes the board's lease (queueing when the policy says so); the note names an expired
/// lease that was taken over.
async fn take_lease(board: &Board, cx: &RunContext) -> Result<(Held, Option<String>), String> {
    let name = board.name.clone();
    let mut on_busy = |holder: &str| {
        eprintln!("hil: {name}: waiting for the board: {holder}");
    };
    let wait = crate::lease::Wait {
        enabled: cx.policy.wait_for_lease,
        poll: Duration::from_secs(1),
        priority: cx.policy.priority,
        timeout: cx.policy.queue_timeout,
        on_busy: &mut on_busy,
    };
    let ttl = Duration::from_secs(board.lease.ttl_s);
    let health = cx.policy.health;
    if !health {
        if let Some(why) = service::refusal(&cx.leases, &board.name).await {
            return Err(why);
        }
    }
    match Held::acquire(cx.leases.clone(), &board.name, cx.owner.clone(), ttl, wait).await {
        Ok((held, prev)) => {
            // It may have gone out of service while this run waited in its queue.
            if !health {
                if let Some(why) = service::refusal(&cx.leases, &board.name).await {
                    return Err(why);
                }
            }
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

/// Resolves placeholders (provisioning the sim lab for a simulated board) and builds the
/// board session. `image_set`: a kernel build to boot instead of the usual images.
pub async fn prepare_session(
    plan: &BoardPlan,
    run_dir: &Path,
    props: &mut BTreeMap<String, String>,
    image_set: Option<&crate::image_set::ImageSet>,
) -> Result<BoardSession, StepError> {
    std::fs::create_dir_all(run_dir)
        .map_err(|e| StepError::Infra(format!("{}: {e}", run_dir.display())))?;
    let mut vars = expand::Vars::new();
    let cache = crate::lab::cache_root().map_err(|e| StepError::Infra(e.to_string()))?;
    vars.insert("cache", cache.display().to_string());
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

#[cfg(test)]
mod tests;
