//! Power backends. Powering on is two-phase so the console is always attached before the
//! board's CPU runs (nothing it prints is lost): `arm` prepares (the QEMU backend starts
//! QEMU paused and reports its console pty; the fake backend makes a pty), the caller
//! opens the console, then `on`.

pub mod command;
pub mod fake;
pub mod manual;
pub mod pdudaemon;
pub mod qemu;

use crate::config::board::{Board, PowerBackend};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    #[error("power: {0}")]
    Failed(String),
    #[error("power: the board's QEMU exited ({0})")]
    QemuExited(String),
}

pub enum Power {
    Qemu(Box<qemu::QemuPower>),
    Command(command::CommandPower),
    Manual(manual::ManualPower),
    Fake(Box<fake::FakePower>),
    Pdudaemon(pdudaemon::PduDaemonPower),
}

impl Power {
    /// `qemu` needs the board's expanded QEMU config and a directory for its logs/sockets.
    pub fn new(board: &Board, run_dir: PathBuf) -> Power {
        match board.power.backend {
            PowerBackend::Qemu => Power::Qemu(Box::new(qemu::QemuPower::new(board, run_dir))),
            PowerBackend::Command => Power::Command(command::CommandPower::new(&board.power)),
            PowerBackend::Manual => {
                Power::Manual(manual::ManualPower::new(&board.name, &board.power))
            }
            PowerBackend::Fake => Power::Fake(Box::new(fake::FakePower::new(board, run_dir))),
            PowerBackend::Pdudaemon => {
                Power::Pdudaemon(pdudaemon::PduDaemonPower::new(&board.name, &board.power))
            }
        }
    }

    /// Prepares power-on; returns the console device if the backend creates it.
    pub async fn arm(&mut self) -> Result<Option<String>, PowerError> {
        match self {
            Power::Qemu(q) => q.arm().await,
            Power::Fake(f) => f.arm().await,
            _ => Ok(None),
        }
    }

    pub async fn on(&mut self) -> Result<(), PowerError> {
        match self {
            Power::Qemu(q) => q.on().await,
            Power::Command(c) => c.on().await,
            Power::Manual(m) => m.on().await,
            Power::Fake(f) => f.on().await,
            Power::Pdudaemon(p) => p.on().await,
        }
    }

    pub async fn off(&mut self) -> Result<(), PowerError> {
        match self {
            Power::Qemu(q) => q.off().await,
            Power::Command(c) => c.off().await,
            Power::Manual(m) => m.off().await,
            Power::Fake(f) => f.off().await,
            Power::Pdudaemon(p) => p.off().await,
        }
    }

    /// Powers the board off and on again, leaving it as `on` does. The command backend
    /// runs `power.cycle` when the board file has one, else off, a pause, and on. A QEMU
    /// board is reset through QMP instead: its console is a pty of the QEMU process, so
    /// stopping that process would take the console with it. pdudaemon reboots the outlet
    /// (off, `power.cycle_delay_s`, on, one request). Others go off, then on.
    pub async fn cycle(&mut self) -> Result<(), PowerError> {
        match self {
            Power::Command(c) => c.cycle().await,
            Power::Pdudaemon(p) => p.cycle().await,
            Power::Qemu(q) => q.reset().await,
            _ => {
                self.off().await?;
                self.on().await
            }
        }
    }

    /// For the sim backend: resolves when the board's QEMU exits on its own (a crash or a
    /// kill). Never resolves for backends that cannot tell.
    pub async fn died(&mut self) -> String {
        match self {
            Power::Qemu(q) => q.died().await,
            _ => std::future::pending().await,
        }
    }
}
