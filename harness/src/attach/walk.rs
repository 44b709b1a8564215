//! `hil console BOARD --to bootloader|linux|guest`: before the console is handed to the
//! terminal, the board is walked with the boot state machine ([`BoardSession::reach`]) to
//! that state, one edge at a time, each reported on stderr
//! (`hil: sim-rk3588: reaching linux… reached in 12.3 s`). A step that fails powers the
//! board off again and ends the command naming the step; Ctrl-] after the hand-over
//! stops the guest, puts bound devices back and powers the board off.

use crate::boot::{BoardSession, State};
use crate::config::Board;
use crate::engine::{prepare_session, BoardPlan};
use crate::error::{StepError, UsageError};
use crate::lease::Held;
use crate::outcome::{exit, Outcome};
use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where `--to` takes the board before the console is handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum To {
    /// U-Boot's prompt, autoboot interrupted and the board file's commands run.
    Bootloader,
    /// Linux booted, its shell prompt on the console.
    Linux,
    /// The board file's KVM guest running on the board; the guest's console is attached.
    Guest,
}

impl To {
    pub fn state(self) -> State {
        match self {
            To::Bootloader => State::Bootloader,
            To::Linux => State::LinuxConsole,
            To::Guest => State::Guest,
        }
    }
}

/// The name of the step that reaches `s`, as the progress lines and errors say it.
pub fn step_name(s: State) -> &'static str {
    match s {
        State::Off => "power off",
        State::Bootloader => "bootloader",
        State::LinuxConsole => "linux",
        State::LinuxSsh => "ssh",
        State::Guest => "guest",
    }
}

/// What the board file must have for the walk, checked before the board is leased or
/// touched: `--to guest` needs the `[guest]` table, and the `[ssh]` one it is started
/// through. A sim board that `hil lab up` runs is where it is: it is attached to without
/// `--to`, not walked.
pub fn check(path: &Path, board: &Board, to: To) -> Result<(), UsageError> {
    if to == To::Guest {
        for (table, missing) in [
            ("[guest]", board.guest.is_none()),
            ("[ssh]", board.ssh.is_none()),
        ] {
            if missing {
                return Err(UsageError(format!(
                    "{}: board {} has no {table} table; `hil console {} --to guest` starts the guest that the board file's [guest] table describes, over its [ssh] target: expected both tables, or --to linux",
                    path.display(),
                    board.name,
                    board.name
                )));
            }
        }
    }
    if board.simulated {
        if let Some(st) = crate::lab_ctl::up_state(&board.name) {
            return Err(UsageError(format!(
                "board {} is up (`hil lab up`, QEMU pid {}); --to walks a board from power-off: `hil console {}` attaches to it as it is, or `hil lab down {}` first",
                board.name, st.pid, board.name, board.name
            )));
        }
    }
    Ok(())
}

/// `hil console BOARD --to STATE` under the lease the caller holds: walks the board,
/// hands its console over, and powers it off when the person quits.
pub async fn console_to(
    path: &Path,
    board: &Board,
    to: To,
    lease: Option<&Held>,
) -> anyhow::Result<i32> {
    let run_dir = PathBuf::from("reports").join("console").join(&board.name);
    let plan = BoardPlan {
        path: path.to_path_buf(),
        board: board.clone(),
    };
    let mut props = BTreeMap::new();
    let mut s = prepare_session(&plan, &run_dir, &mut props, None)
        .await
        .map_err(|e| step_failure(&board.name, "prepare", e))?;
    if let Some(code) = walk(&mut s, to.state(), lease).await? {
        return Ok(code);
    }
    let what = step_name(to.state());
    let Some(console) = s.hand_over() else {
        shut_down(&mut s).await;
        return Err(anyhow::anyhow!(
            "board {}: reached {what} but no console is open",
            board.name
        ));
    };
    let log = if to == To::Guest {
        run_dir.join("guest-console.log")
    } else {
        run_dir.join("console.log")
    };
    // Read before hil's own hand-over mark goes into the log after it.
    let prompt = last_line(&log);
    s.console_mark(&format!(
        "hil console: reached {what}; console handed over to the terminal"
    ));
    eprintln!(
        "hil: console of {} at {what} (log {}); Ctrl-] quits and powers the board off",
        board.name,
        log.display()
    );
    let rx = console.subscribe();
    if to == To::Bootloader {
        // Typing at U-Boot (even an empty line, which repeats the last command) would
        // change the board: its prompt is shown from the log instead.
        show(prompt.as_deref());
    } else {
        // An empty command line: the shell prints its prompt again, live.
        console.send("\r");
    }
    let code = super::bridge(console, rx).await;
    shut_down(&mut s).await;
    eprintln!("hil: {}: powered off", board.name);
    code
}

/// Walks `s` edge by edge to `target`. `Some(code)` when interrupted (the board is
/// powered off again); an error naming the step that failed (the board powered off).
pub async fn walk(
    s: &mut BoardSession,
    target: State,
    lease: Option<&Held>,
) -> anyhow::Result<Option<i32>> {
    let name = s.board.name.clone();
    let steps = [
        State::Bootloader,
        State::LinuxConsole,
        State::LinuxSsh,
        State::Guest,
    ];
    for step in steps.into_iter().filter(|st| *st <= target) {
        let what = step_name(step);
        eprint!("hil: {name}: reaching {what}… ");
        let _ = std::io::stderr().flush();
        let t = Instant::now();
        let lost = async {
            match lease {
                Some(l) => l.lost().await,
                None => std::future::pending().await,
            }
        };
        let r = tokio::select! {
            r = s.reach(step) => r,
            why = lost => Err(StepError::LeaseLost(why)),
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted");
                shut_down(s).await;
                eprintln!("hil: {name}: powered off");
                return Ok(Some(exit::INTERRUPTED));
            }
        };
        let took = t.elapsed().as_secs_f64();
        match r {
            Ok(()) => eprintln!("reached in {took:.1} s"),
            Err(e) => {
                eprintln!("failed after {took:.1} s");
                // A lost lease means the board may be someone else's by now: left alone.
                if !matches!(e, StepError::LeaseLost(_)) {
                    shut_down(s).await;
                }
                return Err(step_failure(&name, what, e));
            }
        }
    }
    Ok(None)
}

/// The error of a failed step, naming it: lab trouble stays a [`StepError`] (exit 3), a
/// bug in hil does not (exit 4).
fn step_failure(board: &str, step: &str, e: StepError) -> anyhow::Error {
    let what = format!("board {board}: reaching {step} failed");
    if e.outcome() == Outcome::HarnessError {
        anyhow::anyhow!("{what}: {e}")
    } else {
        anyhow::Error::new(e).context(what)
    }
}

/// Guest stopped, devices back on their drivers, board powered off; what fails is said
/// but does not change the command's status.
async fn shut_down(s: &mut BoardSession) {
    if let Err(e) = s.teardown().await {
        eprintln!("hil: {}: warning: {e}", s.board.name);
    }
    if let Err(e) = s.power_off().await {
        eprintln!("hil: {}: warning: power off: {e}", s.board.name);
    }
}

/// Prints the board's last, unfinished line (its prompt), read from its console log: the
/// output before the hand-over went to the log, not to the terminal.
fn show(line: Option<&[u8]>) {
    if let Some(line) = line {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line);
        let _ = out.flush();
    }
}

/// The text after the log's last newline without its timestamp; `None` when the log ends
/// with a complete line (or with a mark of hil's own).
pub fn last_line(log: &Path) -> Option<Vec<u8>> {
    let mut f = std::fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(std::io::SeekFrom::Start(len.saturating_sub(4096)))
        .ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    let start = memchr::memrchr(b'\n', &tail).map_or(0, |i| i + 1);
    let line = &tail[start..];
    let text = match line.strip_prefix(b"[+") {
        Some(rest) => &rest[memchr::memmem::find(rest, b"] ")? + 2..],
        None => line,
    };
    (!text.is_empty() && !text.starts_with(b"### hil:")).then(|| text.to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn the_last_unfinished_line_of_the_log_is_the_prompt_without_its_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("console.log");
        std::fs::write(
            &p,
            "# hil console log\n[+   0.100000] hil:rc=0\r\n[+   0.100100] => ",
        )
        .unwrap();
        assert_eq!(last_line(&p).unwrap(), b"=> ");
        std::fs::write(&p, "# hil console log\n[+   0.100000] hil:rc=0\r\n").unwrap();
        assert_eq!(last_line(&p), None);
        assert_eq!(last_line(&dir.path().join("absent.log")), None);
    }

    #[test]
    fn guest_needs_the_guest_and_ssh_tables_named_with_the_board_file() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/boards/fake-board.toml"),
        )
        .unwrap();
        let board: Board = toml::from_str(&text).unwrap();
        let path = Path::new("boards/fake-board.toml");
        let e = check(path, &board, To::Guest).unwrap_err().0;
        assert!(
            e.starts_with("boards/fake-board.toml: board fake-board has no [guest] table"),
            "{e}"
        );
        check(path, &board, To::Linux).unwrap();
        check(path, &board, To::Bootloader).unwrap();
    }
}
