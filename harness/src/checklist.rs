//! `hil checklist BOARD`: a new board's bring-up, step by step, stopping at the first
//! blocker with what to fix. The first steps are the boot itself (console alive,
//! bootloader reached, kernel boots, timeouts from the board file); the rest are the checks
//! of a bring-up suite (default `suites/bring-up.toml`: kernel options, SMMU, PCIe devices
//! and IOMMU groups, VFIO bind, KVM, guest boot, passthrough checks), each with its `hint`.
//! Prints a ✔/✘ list and writes `summary.md` and `checklist.json`.

use crate::config::Suite;
use crate::engine::policy::RetryPrompt;
use crate::engine::Policy;
use crate::outcome::{exit, Outcome};
use crate::report::CaseReport;
use crate::runner::{BoardPlan, RunOptions};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// Queue for a board another run holds instead of refusing at once.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    queue: crate::engine::policy::QueueArgs,
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
    let mut policy = Policy::checklist(args.wait, None);
    args.queue.apply(&mut policy)?;
    run(plan, suite, &out, args.interactive, policy).await
}

/// Runs the checklist on the engine (stop at the first blocker, staged boot); exit 0 when
/// every step passed, else the blocker's exit status.
pub async fn run(
    plan: BoardPlan,
    suite: Suite,
    out: &Path,
    interactive: bool,
    policy: Policy,
) -> anyhow::Result<i32> {
    let board = plan.board.name.clone();
    eprintln!("checklist: board {board} → {}", out.display());
    let hints: BTreeMap<String, Option<String>> = suite
        .checks
        .iter()
        .map(|c| (c.name.clone(), c.hint.clone()))
        .collect();
    let check_names: Vec<String> = suite.checks.iter().map(|c| c.name.clone()).collect();
    let prompt: Option<RetryPrompt> = interactive.then(|| {
        let hints = hints.clone();
        Arc::new(move |c: &CaseReport| {
            print_step(&step_of(c, &hints));
            ask_retry(&c.name)
        }) as RetryPrompt
    });
    let run_id = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| crate::suite_run::run_id(&format!("checklist-{board}")));
    let report = crate::runner::run(RunOptions {
        suite,
        boards: vec![plan],
        out: out.to_path_buf(),
        run_id,
        progress: crate::progress::Mode::Quiet,
        leases: crate::lease::Leases::from_env(),
        policy: Policy {
            retry_prompt: prompt,
            ..policy
        },
        image_set: None,
    })
    .await?;
    if report.exit_code == Some(exit::INTERRUPTED) {
        return Ok(exit::INTERRUPTED);
    }
    // Cases the engine did not run are the checklist's "not run" lines, not steps.
    let steps: Vec<Step> = report
        .cases()
        .filter(|(_, c)| c.outcome != Outcome::Skipped)
        .map(|(_, c)| step_of(c, &hints))
        .collect();
    for st in &steps {
        print_step(st);
    }
    finish(&board, out, &steps, &check_names)
}

/// A case of the engine as a checklist line, with what to fix when it did not pass: the
/// suite check's own `hint`, or for the engine's steps the hint of the stage that stopped.
fn step_of(c: &CaseReport, hints: &BTreeMap<String, Option<String>>) -> Step {
    let hint = match c.name.as_str() {
        "console alive" => Some(CONSOLE_HINT.to_string()),
        "bootloader reached" if c.message.contains("TFTP") => Some(TFTP_HINT.to_string()),
        "bootloader reached" => Some(BOOTLOADER_HINT.to_string()),
        "kernel boots" => Some(KERNEL_HINT.to_string()),
        "lease" => {
            Some("another run holds the board: wait for it, or run with --wait to queue".into())
        }
        "prepare" => Some("the lab could not prepare the board: see the message".into()),
        "teardown" => Some("devices or power were not put back: check the board by hand".into()),
        name => hints
            .get(name)
            .cloned()
            .flatten()
            .or_else(|| Some(format!("see the {name} step's message"))),
    };
    step(&c.name, c.outcome, c.message.clone(), hint, c.duration_s)
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
fn ask_retry(name: &str) -> bool {
    eprint!("checklist: {name} did not pass. Fix it, then press Enter to retry, or type q and Enter to stop: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => false,
        Ok(_) => line.trim() != "q",
    }
}

fn finish(board: &str, out: &Path, steps: &[Step], checks: &[String]) -> anyhow::Result<i32> {
    let boot_names = ["console alive", "bootloader reached", "kernel boots"];
    let all: Vec<&str> = boot_names
        .iter()
        .copied()
        .chain(checks.iter().map(|c| c.as_str()))
        .collect();
    let blocker = steps.iter().find(|s| s.outcome != Outcome::Pass);
    let mut md = format!("# Bring-up checklist: {board}\n\n");
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
        "board": board,
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
        let checks: Vec<String> = suite.checks.iter().map(|c| c.name.clone()).collect();
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
        let code = finish("sim-rk3588", out.path(), &steps, &checks).unwrap();
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
            finish("sim-rk3588", out.path(), &steps, &checks).unwrap(),
            exit::INFRASTRUCTURE
        );
    }
}
