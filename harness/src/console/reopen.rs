//! Getting a console's transport back after it went away.
//!
//! A USB-serial adapter that re-enumerates (a hub reset, a loose cable, the board's own
//! USB power cycling) disappears and comes back under the same `/dev/serial/by-id` or
//! by-path link, usually within seconds. The broker then polls that path, reopens it with
//! the same settings and logs how long the console was blind. Input typed meanwhile is
//! held (up to [`HELD_LIMIT`]) and sent once the transport is back; whatever could not be
//! held, or was never sent, is named in the log rather than silently dropped.
//!
//! A network console (ser2net restarted, the exporter rebooted, a link dropped) is
//! reconnected the same way: its address is tried until it accepts again. A USB adapter
//! named by its serial number or port is looked up in sysfs at every try, so it is found
//! again under whatever ttyUSB/ttyACM number it comes back as.

use super::log::ConsoleLog;
use super::transport::Transport;
use super::usb::SysfsRoot;
use super::Input;
use crate::config::board::{NetConsole, UsbAdapter};
use crate::config::serial_line::SerialLine;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How often the path is tried while it is away: fast enough that a gap costs little
/// board output, slow enough to be no load.
const POLL: Duration = Duration::from_millis(100);
/// How long one login to a console server may take (TCP, handshake, key exchange, the
/// channel and its command).
const SSH_LOGIN_LIMIT: Duration = Duration::from_secs(15);
/// Input held while the transport is away; a console is typed at in commands, not bulk.
pub const HELD_LIMIT: usize = 64 * 1024;

/// Where and how to reopen, and for how long to try.
#[derive(Debug, Clone)]
pub struct Reopen {
    pub target: Target,
    pub line: SerialLine,
    pub within: Duration,
}

/// What a console is opened from.
#[derive(Debug, Clone)]
pub enum Target {
    /// A serial device path.
    Serial(String),
    /// A network console's URL.
    Net(NetConsole),
    /// A USB-serial adapter by serial number or port, found under `sysfs`.
    Usb {
        adapter: UsbAdapter,
        sysfs: SysfsRoot,
    },
    /// A console server: log in, run `command` there; its stdin/stdout is the line.
    Ssh {
        login: crate::ssh::SshTarget,
        command: String,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Serial(p) => f.write_str(p),
            Target::Net(n) => write!(f, "{n}"),
            Target::Usb { adapter, .. } => write!(f, "{adapter}"),
            Target::Ssh { login, command } => write!(
                f,
                "ssh://{}@{}:{} ({command})",
                login.user, login.host, login.port
            ),
        }
    }
}

impl Target {
    /// Opens (connects) once; a network console gets at most `within` for it.
    pub async fn open(&self, line: SerialLine, within: Duration) -> std::io::Result<Transport> {
        match self {
            Target::Serial(p) => Transport::open_serial(p, line),
            Target::Net(n) => Transport::connect(n, line, within).await,
            Target::Usb { adapter, sysfs } => {
                let tty = super::usb::resolve(sysfs, adapter).map_err(std::io::Error::other)?;
                Transport::open_serial(&tty, line)
            }
            Target::Ssh { login, command } => {
                let kind = crate::ssh::StreamKind::Exec(command.clone());
                let stream = login
                    .open_stream(kind, within.min(SSH_LOGIN_LIMIT))
                    .await
                    .map_err(std::io::Error::other)?;
                Transport::from_fd(stream.into())
            }
        }
    }

    /// How long the first open may take: a device opens at once, a network console
    /// connects and negotiates, a console server needs a login as well.
    pub fn first_open_limit(&self) -> Duration {
        match self {
            Target::Ssh { .. } => SSH_LOGIN_LIMIT,
            _ => super::transport::CONNECT_TIMEOUT,
        }
    }

    /// The least time between two opens. A console server is logged in to at most once a
    /// second: an attach command that exits at once (its adapter is gone, its lock is
    /// held) must not turn into a storm of logins.
    fn min_spacing(&self) -> Duration {
        match self {
            Target::Ssh { .. } => Duration::from_secs(1),
            _ => Duration::ZERO,
        }
    }

    /// "reopened" for a device, "reconnected" for an address.
    pub fn back(&self) -> &'static str {
        match self {
            Target::Serial(_) | Target::Usb { .. } => "reopened",
            Target::Net(_) | Target::Ssh { .. } => "reconnected",
        }
    }
}

pub enum GaveUp {
    /// The path did not come back in time; the last open error.
    Timeout(String),
    /// Every console handle was dropped while waiting.
    Released,
}

impl Reopen {
    /// Polls the path until it opens, logging marks that arrive meanwhile and holding
    /// input. Returns the new transport and how long the console was without one.
    /// `opened`: when the transport that was lost had been opened.
    pub(super) async fn wait(
        &self,
        opened: Instant,
        log: &mut ConsoleLog,
        input: &mut mpsc::UnboundedReceiver<Input>,
        held: &mut HeldInput,
    ) -> Result<(Transport, Duration), GaveUp> {
        let start = Instant::now();
        let deadline = start + self.within;
        // The first try waits out the target's spacing since the last open.
        let first = (opened + self.target.min_spacing()).max(start);
        let mut tick = tokio::time::interval_at(first, POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let left = deadline.saturating_duration_since(Instant::now()).max(POLL);
                    match self.target.open(self.line, left).await {
                        Ok(t) => return Ok((t, start.elapsed())),
                        Err(e) if Instant::now() >= deadline => {
                            return Err(GaveUp::Timeout(e.to_string()))
                        }
                        Err(_) => {}
                    }
                }
                msg = input.recv() => match msg {
                    Some(Input::Bytes(data)) => held.hold(&data),
                    Some(Input::Mark(m)) => { let _ = log.mark(&m); }
                    Some(Input::Follower { data, who }) => {
                        let _ = log.mark(&super::follower_input(&who, &data));
                        held.hold(&data);
                    }
                    Some(Input::Break) => {
                        let _ = log.mark("break not sent: the console transport is away");
                    }
                    None => return Err(GaveUp::Released),
                },
            }
        }
    }
}

/// Input typed while no transport is there to take it.
#[derive(Debug, Default)]
pub struct HeldInput {
    bytes: Vec<u8>,
    /// Bytes refused because the limit was reached.
    dropped: usize,
}

impl HeldInput {
    pub fn hold(&mut self, data: &[u8]) {
        let room = HELD_LIMIT.saturating_sub(self.bytes.len());
        let take = room.min(data.len());
        self.bytes.extend_from_slice(&data[..take]);
        self.dropped += data.len() - take;
    }

    /// What to send now that a transport is back, after noting it (and any loss) in the
    /// log; `None` when nothing was typed meanwhile.
    pub fn take(&mut self, log: &mut ConsoleLog) -> Option<Vec<u8>> {
        if self.dropped > 0 {
            let _ = log.mark(&format!(
                "{} bytes typed while the console transport was away were dropped (more than {HELD_LIMIT} held)",
                self.dropped
            ));
            self.dropped = 0;
        }
        if self.bytes.is_empty() {
            return None;
        }
        let _ = log.mark(&format!(
            "sending {} bytes typed while the console transport was away",
            self.bytes.len()
        ));
        Some(std::mem::take(&mut self.bytes))
    }

    /// The console closes for good: name what was typed and never sent.
    pub fn abandon(&mut self, log: &mut ConsoleLog) {
        let lost = self.bytes.len() + self.dropped;
        if lost > 0 {
            let _ = log.mark(&format!(
                "{lost} bytes typed while the console transport was away were never sent"
            ));
        }
        *self = HeldInput::default();
    }
}
