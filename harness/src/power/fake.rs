//! Power for the fake board (`power.backend = "fake"`, see `crate::fake_board`).
//!
//! `arm` makes a pty pair and reports its slave as the console device (as the QEMU
//! backend reports QEMU's pty); `on` starts the fake board on the master side, `off`
//! stops it and its SSH server. Power-ons are counted over the backend's life (one board
//! in one run), so a board file can script what differs from one boot to the next.

use super::PowerError;
use crate::config::Board;
use crate::fake_board::pty::Pty;
use crate::fake_board::script::Script;
use crate::fake_board::{FakeBoard, Spec};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

pub struct FakePower {
    spec: Result<Arc<Spec>, String>,
    script: Arc<Script>,
    scratch: PathBuf,
    boots: u32,
    /// The armed pty: the master until `on` hands it to the board (only the board may hold
    /// it, so that the board closing it is the console's end), the slave until `off`.
    master: Option<OwnedFd>,
    slave: Option<OwnedFd>,
    board: Option<FakeBoard>,
}

impl FakePower {
    pub fn new(board: &Board, run_dir: PathBuf) -> FakePower {
        let commands = board.fake.as_ref().map_or(&[][..], |f| &f.commands[..]);
        FakePower {
            spec: Spec::from_board(board).map(Arc::new),
            script: Arc::new(Script::new(commands)),
            scratch: run_dir.join("fake-root"),
            boots: 0,
            master: None,
            slave: None,
            board: None,
        }
    }

    pub async fn arm(&mut self) -> Result<Option<String>, PowerError> {
        self.off().await?;
        let pty = Pty::open().map_err(|e| PowerError::Failed(format!("fake board pty: {e}")))?;
        self.master = Some(pty.master);
        self.slave = Some(pty.slave);
        Ok(Some(pty.path))
    }

    pub async fn on(&mut self) -> Result<(), PowerError> {
        let spec = self.spec.clone().map_err(PowerError::Failed)?;
        let master = self
            .master
            .take()
            .ok_or_else(|| PowerError::Failed("on before arm".into()))?;
        self.boots += 1;
        let board = FakeBoard::start(spec, self.script.clone(), self.boots, master, &self.scratch)
            .map_err(PowerError::Failed)?;
        self.board = Some(board);
        Ok(())
    }

    pub async fn off(&mut self) -> Result<(), PowerError> {
        if let Some(b) = self.board.take() {
            b.stop().await;
        }
        self.master = None;
        self.slave = None;
        Ok(())
    }
}
