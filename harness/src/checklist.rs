//! `hil checklist BOARD`: a new board's bring-up, step by step, stopping at the first
//! blocker with what to fix. The first steps are the boot itself (console alive,
//! bootloader reached, kernel boots, timeouts from the board file); the rest are the checks
//! of a bring-up suite (default `suites/bring-up.toml`: kernel options, SMMU, PCIe devices
//! and IOMMU groups, VFIO bind, KVM, guest boot, passthrough checks), each with its `hint`.
//! Prints a ✔/✘ list and writes `summary.md` and `checklist.json`.

use crate::boot::{BoardSession, State};
use crate::checks::CheckSpec;
use crate::config::Suite;
use crate::error::StepError;
use crate::outcome::{exit, Outcome};
use crate::runner::BoardPlan;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct ChecklistArgs {
    board: String,
    /// The bring-up steps after boot.
    #[arg(long, default_value = "suites/bring-up.toml")]
    suite: PathBuf,
    /// At a blocker, wait for the operator: retry the step after a fix, or stop.
    #[arg(long)]
    interactive: bool,
    /// Report directory (default: reports/<run-id>/).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One line of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub outcome: Outcome,
    pub detail: String,
    /// Set on the step that stopped the checklist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    pub duration_s: f64,
}

const CONSOLE_HINT: &str = "no byte on the console after power-on: check the console device, baud rate and cable (TX/RX crossed, GND), and that the board gets power";
const BOOTLOADER_HINT: &str = "the console talks but the bootloader prompt never came: check [bootloader] autoboot/prompt/interrupt in the board file and the bootloader's environment";
const TFTP_HINT: &str = "the bootloader could not load the images: check the TFTP server, the board's network settings in [bootloader] commands and that the image files exist";
const KERNEL_HINT: &str = "the kernel did not reach the ready line: look at the end of console.log (panic, missing root filesystem, wrong device tree); check [linux] bootargs and ready";

fn mark(o: Outcome) -> &'static str {
    crate::report::summary::mark(o)
}

pub async fn cli(args: ChecklistArgs) -> anyhow::Result<i32> {
    let suite = Suite::load(&args.suite)?;
    let plan = crate::suite_run::load_boards(std::slice::from_ref(&args.board))?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no board"))?;
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("reports").join(crate::suite_run::run_id(&format!(
            "checklist-{}",
            args.board
        )))
    });
    run(&plan, &suite, &out, args.interactive).await
}

/// Runs the checklist; exit 0 when every step passed, else the blocker's exit status.
pub async fn run(
    plan: &BoardPlan,
    suite: &Suite,
    out: &Path,
    interactive: bool,
) -> anyhow::Result<i32> {
    let run_dir = out.join("boards").join(&plan.board.name);
    std::fs::create_dir_all(&run_dir)?;
    let mut props = BTreeMap::new();
    eprintln!("checklist: board {} → {}", plan.board.name, out.display());
    let mut steps: Vec<Step> = Vec::new();
    let mut s = match crate::runner::prepare(plan, &run_dir, &mut props, None).await {
        Ok(s) => s,
        Err(e) => {
            steps.push(step(
                "prepare",
                e.outcome(),
                e.to_string(),
                Some("the lab could not prepare the board: see the message".into()),
                0.0,
            ));
            return finish(plan, out, &steps, suite);
        }
    };
    let mut stopped = false;
    // Boot: three steps, told apart by how far the board got.
    loop {
        let t = Instant::now();
        let r = s.reach(State::Bootloader).await;
        let alive = s.console().is_some_and(|c| c.received() > 0);
        let secs = t.elapsed().as_secs_f64();
        let failed = match r {
            Ok(()) => {
                steps.push(step(
                    "console alive",
                    Outcome::Pass,
                    "the board prints on its console".into(),
                    None,
                    0.0,
                ));
                steps.push(step(
                    "bootloader reached",
                    Outcome::Pass,
                    format!(
                        "prompt {:?} in {secs:.1} s, commands done",
                        s.board.bootloader.prompt
                    ),
                    None,
                    secs,
                ));
                None
            }
            Err(e) if !alive => Some(step(
                "console alive",
                e.outcome(),
                e.to_string(),
                Some(CONSOLE_HINT.into()),
                secs,
            )),
            Err(e) => {
                steps.push(step(
                    "console alive",
                    Outcome::Pass,
                    "the board prints on its console".into(),
                    None,
                    0.0,
                ));
                let hint = if e.to_string().contains("TFTP") {
                    TFTP_HINT
                } else {
                    BOOTLOADER_HINT
                };
                Some(step(
                    "bootloader reached",
                    e.outcome(),
                    e.to_string(),
                    Some(hint.into()),
                    secs,
                ))
            }
        };
        let failed = match failed {
            Some(f) => Some(f),
            None => {
                let t = Instant::now();
                match s.reach(State::LinuxConsole).await {
                    Ok(()) => {
                        let kernel = s.facts.get("kernel").cloned().unwrap_or_default();
                        steps.push(step(
                            "kernel boots",
                            Outcome::Pass,
                            format!("{kernel}, shell in {:.1} s", t.elapsed().as_secs_f64()),
                            None,
                            t.elapsed().as_secs_f64(),
                        ));
                        None
                    }
                    Err(e) => Some(step(
                        "kernel boots",
                        e.outcome(),
                        e.to_string(),
                        Some(KERNEL_HINT.into()),
                        t.elapsed().as_secs_f64(),
                    )),
                }
            }
        };
        match failed {
            None => break,
            Some(f) => {
                let _ = s.power_off().await;
                if interactive {
                    for st in &steps {
                        print_step(st);
                    }
                    print_step(&f);
                    if ask_retry(&f) {
                        steps.clear();
                        continue;
                    }
                }
                steps.push(f);
                stopped = true;
                break;
            }
        }
    }
    if !(stopped && interactive) {
        for st in &steps {
            print_step(st);
        }
    }
    if !stopped {
        for spec in &suite.checks {
            let st = loop {
                let st = run_step(&mut s, spec).await;
                print_step(&st);
                if st.outcome != Outcome::Pass && interactive && ask_retry(&st) {
                    continue;
                }
                break st;
            };
            let pass = st.outcome == Outcome::Pass;
            steps.push(st);
            if !pass {
                break;
            }
        }
    }
    if let Err(e) = s.teardown().await {
        eprintln!("checklist: teardown: {e}");
    }
    let _ = s.power_off().await;
    finish(plan, out, &steps, suite)
}

fn step(
    name: &str,
    outcome: Outcome,
    detail: String,
    hint: Option<String>,
    duration_s: f64,
) -> Step {
    Step {
        name: name.into(),
        outcome,
        detail,
        hint: if outcome == Outcome::Pass { None } else { hint },
        duration_s,
    }
}

/// One suite check as a checklist step: the board state it needs, then the check, within
/// its time limit.
async fn run_step(s: &mut BoardSession, spec: &CheckSpec) -> Step {
    let t = Instant::now();
    let r: Result<crate::checks::CheckOutput, StepError> = match s.reach(spec.needs()).await {
        Err(e) => Err(e),
        Ok(()) => tokio::time::timeout(
            spec.timeout.saturating_add(Duration::from_secs(10)),
            spec.run(s),
        )
        .await
        .unwrap_or(Err(StepError::CheckTimeout(spec.timeout.as_secs()))),
    };
    let (outcome, detail) = match r {
        Ok(o) => (o.outcome.unwrap_or(Outcome::Pass), o.message),
        Err(e) => (e.outcome(), e.to_string()),
    };
    let hint = spec
        .hint
        .clone()
        .or_else(|| Some(format!("see the {} step's message", spec.name)));
    step(&spec.name, outcome, detail, hint, t.elapsed().as_secs_f64())
}

fn print_step(st: &Step) {
    let detail: String = st
        .detail
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(160)
        .collect();
    println!("{} {} — {detail}", mark(st.outcome), st.name);
    if let Some(h) = &st.hint {
        println!("    hint: {h}");
    }
    let _ = std::io::stdout().flush();
}

/// Interactive: the operator fixes the blocker and retries, or stops.
fn ask_retry(st: &Step) -> bool {
    eprint!("checklist: {} did not pass. Fix it, then press Enter to retry, or type q and Enter to stop: ", st.name);
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => false,
        Ok(_) => line.trim() != "q",
    }
}

fn finish(plan: &BoardPlan, out: &Path, steps: &[Step], suite: &Suite) -> anyhow::Result<i32> {
    let boot_names = ["console alive", "bootloader reached", "kernel boots"];
    let all: Vec<&str> = boot_names
        .iter()
        .copied()
        .chain(suite.checks.iter().map(|c| c.name.as_str()))
        .collect();
    let blocker = steps.iter().find(|s| s.outcome != Outcome::Pass);
    let mut md = format!("# Bring-up checklist: {}\n\n", plan.board.name);
    for st in steps {
        md.push_str(&format!(
            "- {} **{}** — {}\n",
            mark(st.outcome),
            st.name,
            st.detail.lines().next().unwrap_or("")
        ));
        if let Some(h) = &st.hint {
            md.push_str(&format!("  - hint: {h}\n"));
        }
    }
    let not_run: Vec<&str> = all
        .iter()
        .copied()
        .filter(|n| !steps.iter().any(|s| s.name == *n))
        .collect();
    for n in &not_run {
        md.push_str(&format!("- ☐ {n} — not run\n"));
    }
    let code = match blocker {
        None => {
            md.push_str(&format!("\nAll {} steps passed.\n", steps.len()));
            exit::OK
        }
        Some(b) => {
            md.push_str(&format!("\nStopped at **{}**.\n", b.name));
            match b.outcome {
                Outcome::InfraError => exit::INFRASTRUCTURE,
                Outcome::HarnessError => exit::HARNESS,
                _ => exit::FAIL,
            }
        }
    };
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("summary.md"), &md)?;
    let json = serde_json::json!({
        "board": plan.board.name,
        "steps": steps,
        "not_run": not_run,
        "stopped_at": blocker.map(|b| b.name.clone()),
        "exit_code": code,
    });
    std::fs::write(
        out.join("checklist.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    match blocker {
        None => println!(
            "checklist: all {} steps ✔ — {}",
            steps.len(),
            out.join("summary.md").display()
        ),
        Some(b) => println!(
            "checklist: stopped at {} — {}",
            b.name,
            out.join("summary.md").display()
        ),
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
    }

    #[test]
    fn bring_up_suite_loads_and_every_step_has_a_hint() {
        let suite = Suite::load(&repo_file("suites/bring-up.toml")).unwrap();
        assert!(suite.checks.len() >= 8);
        for c in &suite.checks {
            assert!(
                c.hint.as_deref().is_some_and(|h| !h.is_empty()),
                "{} has no hint",
                c.name
            );
        }
    }

    #[test]
    fn a_blocker_stops_the_list_and_later_steps_show_as_not_run() {
        let suite = Suite::load(&repo_file("suites/bring-up.toml")).unwrap();
        let path = repo_file("boards/sim-rk3588.toml");
        let plan = BoardPlan {
            board: crate::config::Board::load(&path).unwrap(),
            path,
        };
        let out = tempfile::tempdir().unwrap();
        let steps = vec![
            step(
                "console alive",
                Outcome::Pass,
                "prints".into(),
                Some("x".into()),
                0.0,
            ),
            step("bootloader reached", Outcome::Pass, "ok".into(), None, 1.0),
            step("kernel boots", Outcome::Pass, "ok".into(), None, 1.0),
            step("kernel options", Outcome::Pass, "all-set".into(), None, 1.0),
            step(
                "SMMU probed",
                Outcome::Fail,
                "no match".into(),
                Some("enable the SMMU node".into()),
                1.0,
            ),
        ];
        // A passing step never carries a hint.
        assert!(steps[0].hint.is_none());
        let code = finish(&plan, out.path(), &steps, &suite).unwrap();
        assert_eq!(code, exit::FAIL);
        let md = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
        assert!(
            md.contains("- ✘ **SMMU probed** — no match\n  - hint: enable the SMMU node"),
            "{md}"
        );
        assert!(md.contains("- ☐ VFIO bind — not run"), "{md}");
        assert!(md.contains("Stopped at **SMMU probed**"), "{md}");
        let j: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.path().join("checklist.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(j["stopped_at"], "SMMU probed");
        // Lab trouble at the blocker is exit 3, not a DUT verdict.
        let steps = vec![step(
            "console alive",
            Outcome::InfraError,
            "silent".into(),
            None,
            1.0,
        )];
        assert_eq!(
            finish(&plan, out.path(), &steps, &suite).unwrap(),
            exit::INFRASTRUCTURE
        );
    }
}
