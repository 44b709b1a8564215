//! `hil lab up|down`: a sim board running in the background for interactive work.
//!
//! `up` starts the board's QEMU paused and records it in `<board_dir>/lab-up.json`;
//! `hil console` then attaches and lets the CPU run, so nothing printed is lost.
//! `up --to linux` (or `bootloader`) walks the board there first and leaves it running,
//! for `hil ssh` and `hil console` to find it booted. A board
//! whose serial port `qemu.args` wire to a socket (an exporter's relay, see
//! `boards/sim-rk3588-exported.toml`) runs at once: its console is already connected.

use crate::attach::walk::To;
use crate::boot::BoardSession;
use crate::config::{expand, Board};
use crate::power::qemu::QemuPower;
use crate::power::Power;
use crate::runtime::ProcId;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize, Deserialize)]
pub struct UpState {
    pub pid: u32,
    pub pty: String,
    pub qmp: PathBuf,
    /// The QEMU as started: pid, start time and executable. A state file without it (or
    /// whose pid no longer matches it) names no process hil may signal.
    #[serde(default)]
    pub process: Option<ProcId>,
}

impl UpState {
    /// `Ok` when the recorded QEMU is still running as hil started it; else why the
    /// state file is stale.
    pub fn check(&self) -> Result<(), String> {
        match &self.process {
            Some(p) if p.pid == self.pid => p.check(),
            Some(p) => Err(format!("pid {} does not match the recorded process {}", self.pid, p.pid)),
            None => Err(format!(
                "pid {} has no recorded start time and executable, so it cannot be told from another process",
                self.pid
            )),
        }
    }
}

/// Expands a sim board's placeholders after making sure its images exist.
pub async fn sim_board(path: &Path, board: &Board) -> anyhow::Result<(Board, PathBuf)> {
    if !board.simulated {
        anyhow::bail!(crate::error::UsageError(format!(
            "board {} is not simulated; `hil lab` only manages sim boards",
            board.name
        )));
    }
    let images = crate::lab::build(&crate::lab::BuildOptions {
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    })
    .await?;
    let bd = crate::lab::prepare_board(&images, &board.name)?;
    let mut vars = expand::Vars::new();
    vars.insert("images", images.dir.display().to_string());
    vars.insert("board_dir", bd.dir.display().to_string());
    vars.insert("cache", crate::lab::cache_root()?.display().to_string());
    vars.insert("run_dir", bd.dir.display().to_string());
    Ok((board.expanded(path, &vars)?, bd.dir))
}

fn state_path(board_dir: &Path) -> PathBuf {
    board_dir.join("lab-up.json")
}

/// The state file of a board's `up`, whatever it says.
fn read_state(board_dir: &Path) -> Option<UpState> {
    serde_json::from_slice(&std::fs::read(state_path(board_dir)).ok()?).ok()
}

/// The running `up` instance of a board: its state file names a QEMU that still runs as
/// it was started (same pid, start time and executable).
pub fn running(board_dir: &Path) -> Option<UpState> {
    read_state(board_dir).filter(|st| st.check().is_ok())
}

/// A board's state dir under hil's cache (where `hil lab up` keeps its state).
fn board_state_dir(board: &str) -> anyhow::Result<PathBuf> {
    Ok(crate::lab::cache_root()?.join("boards").join(board))
}

/// The running `up` instance of the sim board named `board`, found without building the
/// lab (its state lives in the board dir under hil's cache).
pub fn up_state(board: &str) -> Option<UpState> {
    running(&board_state_dir(board).ok()?)
}

/// The `up` state recorded when QEMU `q` was started.
fn state_of(q: &QemuPower, pty: String) -> anyhow::Result<UpState> {
    let pid = q.pid().unwrap_or(0);
    Ok(UpState {
        pid,
        pty,
        qmp: q.qmp_path()?,
        process: ProcId::of(pid),
    })
}

/// `hil lab up BOARD [--to bootloader|linux]`. Without `--to` the board's QEMU starts
/// paused for `hil console` to attach to. With it, the board is walked there by the boot
/// state machine (as `hil console --to` walks one) and left running, so that `hil ssh` and
/// `hil console` find it there. Returns the exit status (130 when interrupted).
pub async fn up((path, board): &(PathBuf, Board), to: Option<To>) -> anyhow::Result<i32> {
    if to == Some(To::Guest) {
        anyhow::bail!(crate::error::UsageError(format!(
            "`hil lab up {} --to guest`: a guest runs only as long as the hil that started it; use `hil console {} --to guest`, or `--to linux` here",
            board.name, board.name
        )));
    }
    let (board, dir) = sim_board(path, board).await?;
    if let Some(st) = running(&dir) {
        if to.is_some() {
            anyhow::bail!(crate::error::UsageError(format!(
                "{} is already up (QEMU pid {}); --to walks it from power-off: `hil lab down {}` first",
                board.name, st.pid, board.name
            )));
        }
        println!(
            "{} is already up: QEMU pid {}, console {}",
            board.name, st.pid, st.pty
        );
        return Ok(crate::outcome::exit::OK);
    }
    // The board is ours until `hil lab down` (or up_ttl_s): a run refuses it, naming us.
    let leases = crate::lease::Leases::from_env();
    let ttl = std::time::Duration::from_secs(board.lease.up_ttl_s);
    leases.try_acquire(&board.name, &crate::lease::Leases::lab_up_owner(), ttl)?;
    let started = match to {
        None => start_paused(&board, &dir).await.map(Some),
        Some(to) => start_walked(path, &board, &dir, to).await,
    };
    let st = match started {
        Ok(Some(st)) => st,
        Ok(None) => {
            let _ = leases.release_lab_up(&board.name);
            return Ok(crate::outcome::exit::INTERRUPTED);
        }
        Err(e) => {
            let _ = leases.release_lab_up(&board.name);
            return Err(e);
        }
    };
    std::fs::write(state_path(&dir), serde_json::to_vec_pretty(&st)?)?;
    Ok(crate::outcome::exit::OK)
}

/// Starts the board's QEMU paused (or running, when its serial port is wired).
async fn start_paused(board: &Board, dir: &Path) -> anyhow::Result<UpState> {
    let mut q = QemuPower::new_detached(board, dir.to_path_buf());
    // A board whose serial port qemu.args wire to a relay has its console at its own path.
    let armed = q.arm().await?;
    // A wired port's socket chardev connected while QEMU started (a client without
    // `reconnect` connects before the machine is created, or QEMU exits), so whatever is on
    // the far side sees the board from reset: the CPU can run now. This is how an exporter
    // host's board is powered: `up` is the PDU's "on" command, and nobody attaches here.
    let wired = armed.is_none();
    if wired {
        q.on().await?;
    }
    let pty = armed.unwrap_or_else(|| board.console.device.clone());
    let st = state_of(&q, pty.clone())?;
    if wired {
        println!(
            "{} is up and running: QEMU pid {}, serial port wired to {pty}",
            board.name, st.pid
        );
    } else {
        println!(
            "{} is up (paused until a console attaches): QEMU pid {}, console {pty}",
            board.name, st.pid
        );
        println!("attach with: hil console {}", board.name);
    }
    Ok(st)
}

/// Starts the board's QEMU and walks it to `to`, its console logged to
/// `<board_dir>/console.log`; `None` when interrupted (the board is off again).
async fn start_walked(
    path: &Path,
    board: &Board,
    dir: &Path,
    to: To,
) -> anyhow::Result<Option<UpState>> {
    let target = board.ssh_target(path)?;
    let mut s = BoardSession::new(board.clone(), dir.to_path_buf(), target);
    s.power = Power::Qemu(Box::new(QemuPower::new_detached(board, dir.to_path_buf())));
    if crate::attach::walk::walk(&mut s, to.state(), None)
        .await?
        .is_some()
    {
        return Ok(None);
    }
    let Power::Qemu(q) = &s.power else {
        unreachable!("set to QEMU above")
    };
    let st = state_of(q, q.pty().unwrap_or(&board.console.device).to_string())?;
    let what = crate::attach::walk::step_name(to.state());
    s.console_mark(&format!(
        "hil lab up: reached {what}; the board stays up until `hil lab down`"
    ));
    println!(
        "{} is up at {what}: QEMU pid {}, console {} (log {})",
        board.name,
        st.pid,
        st.pty,
        dir.join("console.log").display()
    );
    println!(
        "attach with: hil console {}; stop with: hil lab down {}",
        board.name, board.name
    );
    Ok(Some(st))
}

/// `hil lab down BOARD`. Finds the board's state without building the lab. Only the QEMU
/// that `up` started is stopped: a state file whose pid is now another process (or that
/// does not say which process it was) is reported stale and removed, and nothing is
/// signalled.
pub async fn down((_path, board): &(PathBuf, Board)) -> anyhow::Result<()> {
    if !board.simulated {
        anyhow::bail!(crate::error::UsageError(format!(
            "board {} is not simulated; `hil lab` only manages sim boards",
            board.name
        )));
    }
    let dir = board_state_dir(&board.name)?;
    let leases = crate::lease::Leases::from_env();
    let Some(st) = read_state(&dir) else {
        // A lease left by an `up` whose QEMU died is given back too.
        leases.release_lab_up(&board.name)?;
        println!("{} is not up", board.name);
        return Ok(());
    };
    let Some(proc_id) = st.process.clone().filter(|_| st.check().is_ok()) else {
        let why = st.check().err().unwrap_or_default();
        let _ = std::fs::remove_file(state_path(&dir));
        leases.release_lab_up(&board.name)?;
        println!(
            "{} is not up: its pid file {} was stale ({why}); nothing was signalled",
            board.name,
            state_path(&dir).display()
        );
        return Ok(());
    };
    // A QEMU that does not answer QMP within its start limit is hung: it is killed below.
    let t = std::time::Duration::from_secs(board.qemu.as_ref().map_or(30, |q| q.start_timeout_s));
    if let Ok(mut q) = crate::power::qemu::open_qmp(&st.qmp, t).await {
        let _ = q.execute_timeout("quit", None, t).await;
    }
    for _ in 0..50 {
        if proc_id.check().is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Checked again right before the signal: once it has exited the pid may be reused.
    if proc_id.check().is_ok() {
        if let Err(e) = proc_id.signal(libc::SIGKILL) {
            eprintln!("hil: {e}");
        }
    }
    let _ = std::fs::remove_file(state_path(&dir));
    leases.release_lab_up(&board.name)?;
    println!("{} is down", board.name);
    Ok(())
}
