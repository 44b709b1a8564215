//! A fake board in the library, for testing hil's own logic in milliseconds instead of
//! minutes on the emulated one.
//!
//! The fake sits on the far side of a pty, where a real board's UART would be, and runs as
//! tokio tasks inside the process that uses it. hil reaches it through exactly the code
//! that drives a real board: the console broker opens the pty's slave like any tty, the
//! expect engine and the console shell talk to it, and the ssh2 client logs into its SSH
//! server on 127.0.0.1 with a pinned host key. What the fake does:
//!
//! - U-Boot ([`uboot`]): banner, autoboot countdown (stopped by any key, or missed on the
//!   first N power-ons), a prompt, a small hush (`setenv`, `printenv`, `echo`, `$?`,
//!   `${var}`, `;`), `tftp` from a list of files (others fail with U-Boot's own
//!   `TFTP error: 'File not found' (1)`), `booti` (refused as U-Boot does when nothing was
//!   loaded at the kernel address).
//! - Linux ([`linux`]): kernel lines, the board's ready line, a shell prompt, hil's marker
//!   protocol with exit status, Ctrl-C.
//! - Commands ([`script`]), on the console and over SSH alike: the board file's
//!   `[[fake.command]]` rules (output, status, or an action: hang, flood, panic, vanish,
//!   freeze, reset), else a few built-ins, else `sh -c` on this machine in a scratch
//!   directory with a time limit.
//! - SSH ([`ssh`]): a russh server on 127.0.0.1 that accepts the board file's identity.
//!
//! [`crate::power::fake`] owns the pty and powers a [`FakeBoard`] on and off.

pub mod line;
pub mod linux;
pub mod pty;
pub mod script;
pub mod ssh;
pub mod uboot;

#[cfg(test)]
pub(crate) mod tests;

use crate::config::fake::FakeAction;
use crate::config::Board;
use crate::console::transport::Transport;
use script::{Script, ScriptCtx};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What a fake board is, resolved once from its board file.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub uboot_prompt: String,
    pub autoboot_text: String,
    pub autoboot_s: u32,
    pub miss_autoboot: u32,
    pub tftp_files: Option<Vec<String>>,
    pub boot_delay: Duration,
    pub ready_line: Option<String>,
    pub shell_prompt: String,
    pub kernel_release: String,
    pub command_timeout: Duration,
    pub ssh: Option<SshSpec>,
}

/// The fake's SSH server: where it listens, its host key, whom it lets in.
#[derive(Debug, Clone)]
pub struct SshSpec {
    pub port: u16,
    pub user: String,
    pub host_key: PathBuf,
    /// The board file's `ssh.identity`: the private key hil logs in with; its public half
    /// is the one key the server accepts.
    pub identity: PathBuf,
}

impl Spec {
    /// `board` has its placeholders expanded and was validated (config/fake.rs).
    pub fn from_board(board: &Board) -> Result<Spec, String> {
        let f = board
            .fake
            .as_ref()
            .ok_or_else(|| format!("board {} has no [fake] table", board.name))?;
        let ssh =
            match &board.ssh {
                None => None,
                Some(s) => Some(SshSpec {
                    port: s.port,
                    user: s.user.clone(),
                    host_key: PathBuf::from(f.ssh_host_key.clone().ok_or_else(|| {
                        format!("board {}: [fake] has no ssh_host_key", board.name)
                    })?),
                    identity: PathBuf::from(&s.identity),
                }),
            };
        Ok(Spec {
            name: board.name.clone(),
            uboot_prompt: f
                .uboot_prompt
                .clone()
                .unwrap_or_else(|| board.bootloader.prompt.clone()),
            autoboot_text: f
                .autoboot_text
                .clone()
                .unwrap_or_else(|| board.bootloader.autoboot.clone()),
            autoboot_s: f.autoboot_s,
            miss_autoboot: f.miss_autoboot,
            tftp_files: f.tftp_files.clone(),
            boot_delay: Duration::from_millis(f.boot_delay_ms),
            ready_line: f.ready_line_for(board),
            shell_prompt: f.shell_prompt.clone(),
            kernel_release: f.kernel_release.clone(),
            command_timeout: Duration::from_secs(f.command_timeout_s),
            ssh,
        })
    }
}

/// A board event: something that happens to the whole board, whichever side (console or
/// SSH) ran the command that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardEvent {
    Panic,
    Vanish,
    Freeze,
    Reset,
}

impl BoardEvent {
    pub fn of(action: FakeAction) -> Option<BoardEvent> {
        match action {
            FakeAction::Panic => Some(BoardEvent::Panic),
            FakeAction::Vanish => Some(BoardEvent::Vanish),
            FakeAction::Freeze => Some(BoardEvent::Freeze),
            FakeAction::Reset => Some(BoardEvent::Reset),
            FakeAction::Hang | FakeAction::Flood => None,
        }
    }
}

/// What one power-on of the board shares between its console task and its SSH server.
pub struct PowerOn {
    pub spec: Arc<Spec>,
    pub script: Arc<Script>,
    /// 1 for the first power-on of this board in the run.
    pub boot: u32,
    /// The board's "filesystem" for commands run on this machine: emptied at each
    /// power-on, as a tmpfs would be.
    pub scratch: PathBuf,
}

impl PowerOn {
    pub fn script_ctx(&self) -> ScriptCtx {
        ScriptCtx {
            script: self.script.clone(),
            boot: self.boot,
            scratch: self.scratch.clone(),
            kernel_release: self.spec.kernel_release.clone(),
            timeout: self.spec.command_timeout,
        }
    }
}

/// A powered-on fake board: its console task (which also owns the SSH server while Linux
/// runs). Dropping it, or [`FakeBoard::stop`], powers it off.
pub struct FakeBoard {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FakeBoard {
    /// Powers the board on: it starts talking on `master` (the pty side a UART would
    /// drive) at once. `scratch` is emptied first.
    pub fn start(
        spec: Arc<Spec>,
        script: Arc<Script>,
        boot: u32,
        master: OwnedFd,
        scratch: &Path,
    ) -> Result<FakeBoard, String> {
        let _ = std::fs::remove_dir_all(scratch);
        std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        // Keys are read here, so a missing file is a power-on error naming it, not a
        // silent SSH server that never starts.
        let keys = match &spec.ssh {
            Some(s) => Some(ssh::Keys::load(s)?),
            None => None,
        };
        let transport =
            Transport::from_fd(master).map_err(|e| format!("fake board console: {e}"))?;
        let on = Arc::new(PowerOn {
            spec,
            script,
            boot,
            scratch: scratch.to_path_buf(),
        });
        let task = tokio::spawn(run(on, transport, keys));
        Ok(FakeBoard { task: Some(task) })
    }

    /// Powers the board off and waits until it is: console closed, SSH server gone, the
    /// commands it ran killed.
    pub async fn stop(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for FakeBoard {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// The console side of a board: bytes to and from the pty master, and the board events
/// that SSH commands raise.
pub struct Con {
    t: Transport,
    buf: Vec<u8>,
}

impl Con {
    /// Writes text as a board's tty would send it: every `\n` as `\r\n`.
    pub async fn say(&self, text: &str) -> std::io::Result<()> {
        self.say_bytes(text.as_bytes()).await
    }

    pub async fn say_bytes(&self, data: &[u8]) -> std::io::Result<()> {
        self.t.write_all(&onlcr(data)).await
    }

    /// Writes bytes as they are (echo, escape sequences).
    pub async fn raw(&self, data: &[u8]) -> std::io::Result<()> {
        self.t.write_all(data).await
    }

    /// The next bytes typed at the board.
    pub async fn read(&mut self) -> std::io::Result<Vec<u8>> {
        let n = self.t.read(&mut self.buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "console end of stream",
            ));
        }
        Ok(self.buf[..n].to_vec())
    }

    /// A dead board: takes whatever is typed (as a UART does, its FIFO overflowing) and
    /// never answers, until powered off. Never returns.
    pub async fn dead(&mut self) -> std::convert::Infallible {
        while self.read().await.is_ok() {}
        std::future::pending().await
    }
}

/// `\n` → `\r\n`, as a tty's ONLCR does (a `\r\n` already there stays as it is).
pub fn onlcr(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 16);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// How Linux ended (a panic or a freeze never ends: the board is dead until power-off).
pub enum LinuxEnd {
    /// The board reset: U-Boot again.
    Reset,
    /// The board is gone: its console closes.
    Vanish,
}

async fn run(on: Arc<PowerOn>, transport: Transport, keys: Option<ssh::Keys>) {
    // Board events raised by SSH commands, for the console side to act on.
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut con = Con {
        t: transport,
        buf: vec![0u8; 16 * 1024],
    };
    loop {
        let Ok(bootargs) = uboot::run(&mut con, &on).await else {
            return;
        };
        match linux::run(
            &mut con,
            &on,
            &bootargs,
            keys.as_ref(),
            &mut events,
            &events_tx,
        )
        .await
        {
            Ok(LinuxEnd::Reset) => continue,
            // Returning drops the pty master: the console sees its end.
            Ok(LinuxEnd::Vanish) | Err(_) => return,
        }
    }
}
