//! Engine logic on a board that needs no emulator: command power writing to a log, and
//! checks of the test's own that need no boot (state `Off`), so the engine's steps, their
//! deadlines, lease fencing and panic handling are tested in seconds.

use super::*;
use crate::checks::{Check, CheckCtx, CheckFuture, CheckOutput, CheckSpec};
use crate::config::{ConfigError, Via};
use crate::lease::Leases;
use crate::runner::{run, RunOptions};

/// What a test check does when it runs.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    Pass,
    Blocked,
    Panic,
    /// Never finishes on its own (only something from outside ends it).
    Hang,
}

#[derive(Debug)]
struct TestCheck(Behaviour);

impl Check for TestCheck {
    const KIND: &'static str = "engine-test";

    fn from_params(path: &Path, key: &str, _: toml::Table) -> Result<Self, ConfigError> {
        Err(ConfigError::new(path, key, "test-only kind"))
    }

    fn needs(&self, _via: Via) -> State {
        State::Off
    }

    fn run<'a>(&'a self, _ctx: &'a mut CheckCtx<'_>) -> CheckFuture<'a> {
        Box::pin(async move {
            match self.0 {
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
    dir: tempfile::TempDir,
    power_log: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let power_log = dir.path().join("power.log");
        Lab { dir, power_log }
    }

    /// A board powered by commands that append `on`/`off` to the power log.
    fn board(&self, lease_ttl_s: u64) -> BoardPlan {
        let p = self.dir.path().join("bench.toml");
        let log = self.power_log.display();
        std::fs::write(
            &p,
            format!(
                r##"name = "bench"
soc = "rk3588"
[console]
device = "/dev/null"
baud = 115200
[power]
backend = "command"
on = "echo on >> {log}"
off = "echo off >> {log}"
timeout_s = 5
[lease]
ttl_s = {lease_ttl_s}
[bootloader]
kind = "u-boot"
prompt = "=> "
autoboot = "Hit any key"
interrupt = " "
timeout_s = 10
command_timeout_s = 10
boot_command = "booti"
[linux]
bootargs = ""
prompt = "# $"
boot_timeout_s = 10
shell_timeout_s = 5
"##
            ),
        )
        .unwrap();
        let board = Board::load(&p).unwrap();
        BoardPlan { path: p, board }
    }

    fn leases(&self) -> Leases {
        Leases {
            dir: self.dir.path().join("leases"),
        }
    }

    fn power_log(&self) -> String {
        std::fs::read_to_string(&self.power_log).unwrap_or_default()
    }

    async fn run(&self, checks: Vec<CheckSpec>, deadline_s: Option<u64>, ttl: u64) -> RunReport {
        let out = self.dir.path().join("report");
        run(RunOptions {
            suite: Suite {
                path: self.dir.path().join("suite.toml"),
                name: "engine".into(),
                description: String::new(),
                deadline: deadline_s.map(Duration::from_secs),
                checks,
            },
            boards: vec![self.board(ttl)],
            out,
            run_id: "engine-test".into(),
            progress: false,
            leases: self.leases(),
            policy: Policy::run(false),
            image_set: None,
        })
        .await
        .unwrap()
    }

    /// results.json as written, parsed back into the report type.
    fn written(&self) -> RunReport {
        let text = std::fs::read_to_string(self.dir.path().join("report/results.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

fn outcome_of<'a>(r: &'a RunReport, name: &str) -> &'a CaseReport {
    r.cases()
        .map(|(_, c)| c)
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name} in {r:#?}"))
}

use crate::report::RunReport;

#[tokio::test]
async fn a_panic_inside_a_check_still_powers_the_board_off_and_leaves_valid_reports() {
    let lab = Lab::new();
    let r = lab
        .run(
            vec![
                spec("parse", Behaviour::Panic, 5),
                spec("after", Behaviour::Pass, 5),
            ],
            None,
            60,
        )
        .await;
    let c = outcome_of(&r, "parse");
    assert_eq!(c.outcome, Outcome::HarnessError, "{c:?}");
    assert!(c.message.contains("parser bug: index 3"), "{}", c.message);
    // The board is powered off again (it was reset after the panic, and at teardown), the
    // next check still ran, and the lease was given back.
    assert!(lab.power_log().contains("off"), "{}", lab.power_log());
    assert_eq!(outcome_of(&r, "after").outcome, Outcome::Pass);
    assert!(lab.leases().read("bench").is_none());
    // The reports on disk are complete and say the same.
    let w = lab.written();
    assert!(w.complete);
    assert_eq!(w.exit_code, Some(crate::outcome::exit::HARNESS));
    assert_eq!(outcome_of(&w, "parse").outcome, Outcome::HarnessError);
}

#[tokio::test]
async fn a_lease_taken_over_during_a_check_cancels_it_and_the_loser_never_powers_off() {
    let lab = Lab::new();
    let leases = lab.leases();
    // Someone takes the board over half a second into the hanging check (as after an
    // expiry); the holder's next heartbeat (every quarter of the 1 s TTL) finds it.
    let thief = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut rec = leases.read("bench").expect("the run holds the lease");
        rec.owner.job = "nightly-9".into();
        rec.owner.pid = 1;
        rec.token += 1;
        std::fs::write(
            leases.dir.join("bench.json"),
            serde_json::to_string(&rec).unwrap(),
        )
        .unwrap();
    });
    let t = Instant::now();
    let r = lab
        .run(
            vec![
                spec("long", Behaviour::Hang, 60),
                spec("next", Behaviour::Pass, 5),
            ],
            None,
            1,
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
    assert!(!lab.power_log().contains("off"), "{}", lab.power_log());
    assert_eq!(lab.leases().read("bench").unwrap().owner.job, "nightly-9");
    assert_eq!(r.exit_code, Some(crate::outcome::exit::INFRASTRUCTURE));
}

#[tokio::test]
async fn a_run_whose_every_check_is_blocked_tested_nothing() {
    let lab = Lab::new();
    let r = lab
        .run(
            vec![
                spec("a", Behaviour::Blocked, 5),
                spec("b", Behaviour::Blocked, 5),
            ],
            None,
            60,
        )
        .await;
    assert_eq!(outcome_of(&r, "boot").outcome, Outcome::Pass);
    assert_eq!(r.exit_code, Some(crate::outcome::exit::NOTHING_TESTED));
}

#[tokio::test]
async fn the_job_deadline_ends_a_hanging_check_and_skips_the_rest() {
    let lab = Lab::new();
    let t = Instant::now();
    let r = lab
        .run(
            vec![
                spec("stuck", Behaviour::Hang, 600),
                spec("later", Behaviour::Pass, 5),
            ],
            Some(1),
            60,
        )
        .await;
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let c = outcome_of(&r, "stuck");
    assert_eq!(c.outcome, Outcome::InfraError);
    assert!(c.message.contains("job deadline of 1 s"), "{}", c.message);
    assert_eq!(outcome_of(&r, "later").outcome, Outcome::Skipped);
    // Teardown ran: the board was powered off.
    assert!(lab.power_log().contains("off"), "{}", lab.power_log());
}
