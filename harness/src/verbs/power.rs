//! `hil power BOARD on|off|cycle|status`: the board's power outside a run.
//!
//! `on`, `off` and `cycle` hold the board's lease while they act (refused, exit 3, naming
//! the holder when someone else holds it). They drive the power that exists apart from
//! hil: `command` (relay/PDU commands), `pdudaemon`, `manual`. A `qemu` or `fake` board's
//! power is a process of the hil that powers it and would end with this command, so those
//! are refused (exit 2) with what to use instead. `status` only reads: it takes no lease
//! and shows who holds the board.

use crate::config::board::PowerBackend;
use crate::config::Board;
use crate::error::UsageError;
use crate::outcome::exit;
use crate::power::Power;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    On,
    Off,
    Cycle,
    Status,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::On => "on",
            Action::Off => "off",
            Action::Cycle => "cycle",
            Action::Status => "status",
        }
    }
}

pub async fn cli((_, board): &(PathBuf, Board), action: Action) -> anyhow::Result<i32> {
    if action == Action::Status {
        for line in status(board) {
            println!("{line}");
        }
        return Ok(exit::OK);
    }
    refuse_process_power(board, action)?;
    let _lease = super::take_lease(board, "power").await?;
    let mut p = Power::new(board, PathBuf::from("reports").join("power"));
    match action {
        Action::On => p.on().await?,
        Action::Off => p.off().await?,
        Action::Cycle => p.cycle().await?,
        Action::Status => unreachable!("handled above"),
    }
    println!("{}", done(board, action));
    Ok(exit::OK)
}

/// QEMU and the fake board are processes of the hil that powers them.
fn refuse_process_power(board: &Board, action: Action) -> Result<(), UsageError> {
    let instead = match board.power.backend {
        PowerBackend::Qemu => "its power is the QEMU process of the hil that runs it, which would end with this command: use `hil lab up` / `hil lab down` (a sim board in the background) or `hil console`",
        PowerBackend::Fake => "a fake board exists only within the hil process that powers it (a run or `hil console`), which would end with this command",
        _ => return Ok(()),
    };
    Err(UsageError(format!(
        "hil power {} {}: board {} has power.backend = \"{}\"; {instead}",
        board.name,
        action.word(),
        board.name,
        board.power.backend.name()
    )))
}

/// What was done, as far as the backend can tell.
fn done(board: &Board, action: Action) -> String {
    let n = &board.name;
    let w = action.word();
    match board.power.backend {
        PowerBackend::Pdudaemon => {
            let p = crate::power::pdudaemon::PduDaemonPower::new(n, &board.power);
            format!(
                "board {n}: power {w} requested; {} accepted it (it only queues requests: the board's console shows when it is done)",
                p.describe()
            )
        }
        PowerBackend::Command => {
            let key = match action {
                Action::Cycle if board.power.cycle.is_some() => "power.cycle",
                Action::Cycle => "power.off, 2 s, power.on",
                Action::Off => "power.off",
                _ => "power.on",
            };
            format!("board {n}: power {w} done ({key} ran)")
        }
        PowerBackend::Manual => format!("board {n}: power {w} confirmed by the operator"),
        PowerBackend::Qemu | PowerBackend::Fake => format!("board {n}: power {w}"),
    }
}

/// The lines `status` prints: the backend, what it knows of the power, the lease.
pub fn status(board: &Board) -> Vec<String> {
    let n = &board.name;
    let held = super::held(n);
    let power = match board.power.backend {
        PowerBackend::Pdudaemon => {
            let p = crate::power::pdudaemon::PduDaemonPower::new(n, &board.power);
            format!(
                "unknown (pdudaemon only queues requests; {})",
                p.describe()
            )
        }
        PowerBackend::Command => {
            "unknown (the command backend's on/off commands only switch; they do not report)"
                .into()
        }
        PowerBackend::Manual => "unknown (the board is switched by hand)".into(),
        PowerBackend::Qemu => match crate::lab_ctl::up_state(n) {
            Some(st) => format!("on: QEMU pid {} runs (`hil lab up`), console {}", st.pid, st.pty),
            None if held => "no `hil lab up` QEMU runs; the holder below may run the board's QEMU (it lives only within that hil)".into(),
            None => "off: no QEMU of this board runs".into(),
        },
        PowerBackend::Fake if held => {
            "the holder below may run it (a fake board exists only within the hil that powers it)"
                .into()
        }
        PowerBackend::Fake => {
            "off (a fake board exists only within a run or `hil console`)".into()
        }
    };
    vec![
        format!(
            "board {n}: power.backend = \"{}\"",
            board.power.backend.name()
        ),
        format!("power: {power}"),
        super::lease_line(n),
    ]
}
