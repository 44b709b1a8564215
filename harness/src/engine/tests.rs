//! Engine logic on the fake board (`crate::fake_board`: U-Boot, TFTP boot and a Linux shell
//! played by hil itself), with checks of the test's own that run on the booted board's
//! console, so the engine's steps, their deadlines, lease fencing and panic handling are
//! tested end to end in seconds. What the engine powers off is read back from the console
//! log, where every power-off hil makes is marked.

use super::*;
use crate::checks::{Check, CheckCtx, CheckFuture, CheckOutput, CheckSpec};
use crate::config::{ConfigError, Via};
use crate::lease::{FileLeases, Leases};
use crate::report::RunReport;
use crate::runner::{run, RunOptions};

/// What a test check does when it runs.
#[derive(Debug, Clone)]
enum Behaviour {
    Pass,
    Blocked,
    Panic,
    /// Never finishes on its own (only something from outside ends it).
    Hang,
    /// Like `Hang`, and says when it has started.
    HangAndSay(Arc<tokio::sync::Notify>),
}

#[derive(Debug)]
struct TestCheck(Behaviour);

impl Check for TestCheck {
    const KIND: &'static str = "engine-test";

    fn from_params(path: &Path, key: &str, _: toml::Table) -> Result<Self, ConfigError> {
        Err(ConfigError::new(path, key, "test-only kind"))
    }

    fn needs(&self, _via: Via) -> State {
        State::LinuxConsole
    }

    fn run<'a>(&'a self, _ctx: &'a mut CheckCtx<'_>) -> CheckFuture<'a> {
        Box::pin(async move {
            match &self.0 {
                Behaviour::Pass => Ok(CheckOutput {
                    outcome: Some(Outcome::Pass),
                    message: "fine".into(),
                    ..Default::default()
                }),
                Behaviour::Blocked => Ok(CheckOutput {
                    outcome: Some(Outcome::Blocked),
                    message: "no such device".into(),
                    ..Default::default()
                }),
                Behaviour::Panic => panic!("parser bug: index 3 out of range"),
                Behaviour::Hang => {
                    std::future::pending::<()>().await;
                    unreachable!()
                }
                Behaviour::HangAndSay(started) => {
                    started.notify_one();
                    std::future::pending::<()>().await;
                    unreachable!()
                }
            }
        })
    }
}

fn spec(name: &str, b: Behaviour, timeout_s: u64) -> CheckSpec {
    CheckSpec {
        name: name.into(),
        timeout: Duration::from_secs(timeout_s),
        via: Via::Console,
        retries: 0,
        kind: Box::new(TestCheck(b)),
        hint: None,
    }
}

struct Lab {
    /// The fake board's file and its temp dir (which also holds leases and reports).
    fake: crate::fake_board::tests::TestBoard,
}

impl Lab {
    /// The fake board (U-Boot, TFTP boot and a Linux shell played by hil itself, ready in
    /// milliseconds) with this lease TTL, and no SSH: the test checks need only the console.
    fn new(lease_ttl_s: u64) -> Lab {
        let fake = crate::fake_board::tests::test_board("", |t| {
            let (head, rest) = t.split_once("[ssh]").unwrap();
            let (_, fake) = rest.split_once("[fake]").unwrap();
            let fake = fake.replace("ssh_host_key = ", "# ssh_host_key = ");
            format!("{head}[fake]{fake}\n[lease]\nttl_s = {lease_ttl_s}\n")
        });
        Lab { fake }
    }

    fn board(&self) -> BoardPlan {
        BoardPlan {
            path: self.fake.path.clone(),
            board: self.fake.board.clone(),
        }
    }

    fn leases(&self) -> FileLeases {
        FileLeases {
            dir: self.dir().join("leases"),
        }
    }

    /// The board's console log of the run, where hil marks each power-off it makes.
    fn console_log(&self) -> String {
        let p = self.dir().join("report/boards/fake-unit/console.log");
        String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned()
    }

    fn power_offs(&self) -> usize {
        self.console_log().matches("### hil: power off").count()
    }

    fn dir(&self) -> &Path {
        self.fake.dir.path()
    }

    async fn run(&self, checks: Vec<CheckSpec>, deadline_s: Option<u64>) -> RunReport {
        let out = self.dir().join("report");
        run(RunOptions {
            suite: Suite {
                path: self.dir().join("suite.toml"),
                name: "engine".into(),
                description: String::new(),
                deadline: deadline_s.map(Duration::from_secs),
                checks,
                selected: None,
            },
            boards: vec![self.board()],
            out,
            run_id: "engine-test".into(),
            progress: crate::progress::Mode::Quiet,
            leases: Leases::Files(self.leases()),
            policy: Policy::run(false),
            image_set: None,
        })
        .await
        .unwrap()
    }

    /// results.json as written, parsed back into the report type.
    fn written(&self) -> RunReport {
        let text = std::fs::read_to_string(self.dir().join("report/results.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

fn outcome_of<'a>(r: &'a RunReport, name: &str) -> &'a CaseReport {
    r.cases()
        .map(|(_, c)| c)
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name} in {r:#?}"))
}

#[tokio::test]
async fn a_panic_inside_a_check_still_powers_the_board_off_and_leaves_valid_reports() {
    let lab = Lab::new(60);
    let r = lab
        .run(
            vec![
                spec("parse", Behaviour::Panic, 5),
                spec("after", Behaviour::Pass, 5),
            ],
            None,
        )
        .await;
    let c = outcome_of(&r, "parse");
    assert_eq!(c.outcome, Outcome::HarnessError, "{c:?}");
    assert!(c.message.contains("parser bug: index 3"), "{}", c.message);
    // The board is powered off twice (reset after the panic, so the next check gets a fresh
    // boot, and at teardown), the next check still ran, and the lease was given back.
    assert_eq!(lab.power_offs(), 2, "{}", lab.console_log());
    assert_eq!(outcome_of(&r, "boot").outcome, Outcome::Pass);
    assert_eq!(outcome_of(&r, "after").outcome, Outcome::Pass);
    assert!(lab.leases().read("fake-unit").unwrap().is_none());
    // The reports on disk are complete and say the same.
    let w = lab.written();
    assert!(w.complete);
    assert_eq!(w.exit_code, Some(crate::outcome::exit::HARNESS));
    assert_eq!(outcome_of(&w, "parse").outcome, Outcome::HarnessError);
}

#[tokio::test]
async fn a_lease_taken_over_during_a_check_cancels_it_and_the_loser_never_powers_off() {
    let lab = Lab::new(1);
    let leases = lab.leases();
    // Someone takes the board over once the hanging check runs on the booted board (as
    // after an expiry); the holder's next heartbeat (every quarter of the 1 s TTL) finds it.
    let started = Arc::new(tokio::sync::Notify::new());
    let said = started.clone();
    let thief = tokio::spawn(async move {
        said.notified().await;
        let mut rec = leases
            .read("fake-unit")
            .unwrap()
            .expect("the run holds the lease");
        rec.owner.job = "nightly-9".into();
        rec.owner.pid = 1;
        rec.token += 1;
        leases.overwrite(&rec).unwrap();
    });
    let t = Instant::now();
    let r = lab
        .run(
            vec![
                spec("long", Behaviour::HangAndSay(started), 60),
                spec("next", Behaviour::Pass, 5),
            ],
            None,
        )
        .await;
    thief.await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let c = outcome_of(&r, "long");
    assert_eq!(c.outcome, Outcome::InfraError, "{c:?}");
    assert!(
        c.message.contains("lost") && c.message.contains("nightly-9"),
        "{}",
        c.message
    );
    let next = outcome_of(&r, "next");
    assert_eq!(next.outcome, Outcome::InfraError);
    assert!(next.message.starts_with("not run:"), "{}", next.message);
    let td = outcome_of(&r, "teardown");
    assert!(td.message.starts_with("not torn down"), "{}", td.message);
    // Never powered off by the loser, and the new holder's lease is left alone.
    assert_eq!(lab.power_offs(), 0, "{}", lab.console_log());
    assert_eq!(
        lab.leases().read("fake-unit").unwrap().unwrap().owner.job,
        "nightly-9"
    );
    assert_eq!(r.exit_code, Some(crate::outcome::exit::INFRASTRUCTURE));
}

#[tokio::test]
async fn a_run_whose_every_check_is_blocked_tested_nothing() {
    let lab = Lab::new(60);
    let r = lab
        .run(
            vec![
                spec("a", Behaviour::Blocked, 5),
                spec("b", Behaviour::Blocked, 5),
            ],
            None,
        )
        .await;
    assert_eq!(outcome_of(&r, "boot").outcome, Outcome::Pass);
    assert_eq!(r.exit_code, Some(crate::outcome::exit::NOTHING_TESTED));
}

#[tokio::test]
async fn the_job_deadline_ends_a_hanging_check_and_skips_the_rest() {
    let lab = Lab::new(60);
    let t = Instant::now();
    let r = lab
        .run(
            vec![
                spec("stuck", Behaviour::Hang, 600),
                spec("later", Behaviour::Pass, 5),
            ],
            Some(1),
        )
        .await;
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let c = outcome_of(&r, "stuck");
    assert_eq!(c.outcome, Outcome::InfraError);
    assert!(c.message.contains("job deadline of 1 s"), "{}", c.message);
    assert_eq!(outcome_of(&r, "later").outcome, Outcome::Skipped);
    // Teardown ran: the board was powered off.
    assert_eq!(lab.power_offs(), 1, "{}", lab.console_log());
}
