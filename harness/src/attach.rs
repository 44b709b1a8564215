//! `hil console BOARD`: the live console in the terminal. Output is shown (and logged) as
//! the broker receives it; typed input goes to the board; Ctrl-] quits.
//!
//! A sim board that is `up` is attached to (and resumed if paused); otherwise a sim board
//! (or a fake one) is powered on here and off again on exit; a real board's serial device
//! is opened. With `--to STATE` the board is first walked to that state ([`walk`]).
//! While a run on this host holds the board, its published console is followed instead
//! ([`follow`]).

pub mod follow;
pub mod walk;

use crate::config::Board;
use crate::console::{Console, Event};
use crate::outcome::exit;
use crate::power::Power;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use tokio::io::AsyncReadExt;

const QUIT: u8 = 0x1d; // Ctrl-]

pub async fn console(
    (path, board): &(PathBuf, Board),
    to: Option<walk::To>,
    timestamps: bool,
) -> anyhow::Result<i32> {
    if let Some(to) = to {
        walk::check(path, board, to)?;
    } else if let Some(p) = follow::published(&board.name) {
        // A run drives the board: watched, never taken over. `--to` would change the
        // board, so it is refused below as for any busy board.
        if let Some(code) = follow::follow(&board.name, &p, timestamps).await? {
            return Ok(code);
        }
    }
    let mut power: Option<Power> = None;
    // A board that this user's `hil lab up` runs is already leased to them; any other board
    // is leased for as long as the console is attached (or walked), and a busy one is
    // refused naming its holder (a run drives it; typing into its console would break the
    // run).
    let lease = crate::verbs::take_lease(board, "console").await?;
    if let Some(to) = to {
        return walk::console_to(path, board, to, lease.as_ref()).await;
    }
    let (board, log_dir, device) = if board.simulated {
        let (b, dir) = crate::lab_ctl::sim_board(path, board).await?;
        if let Some(st) = crate::lab_ctl::running(&dir) {
            let console = open(&b, &st.pty, &dir).await?;
            let rx = console.subscribe();
            let t =
                std::time::Duration::from_secs(b.qemu.as_ref().map_or(30, |q| q.start_timeout_s));
            if let Ok(mut q) = crate::qmp::Qmp::connect_unix(&st.qmp, t).await {
                let _ = q.execute_timeout("cont", None, t).await;
            }
            return bridge(console, rx).await;
        }
        let mut p = Power::new(&b, dir.join("console"));
        let pty = p.arm().await?.unwrap_or_else(|| b.console.device.clone());
        power = Some(p);
        (b, dir, pty)
    } else if board.power.backend == crate::config::board::PowerBackend::Fake {
        let dir = PathBuf::from("reports").join("console");
        let mut p = Power::new(board, dir.join(&board.name));
        let pty = p
            .arm()
            .await?
            .unwrap_or_else(|| board.console.device.clone());
        power = Some(p);
        (board.clone(), dir, pty)
    } else {
        let dev = board.console.device.clone();
        (board.clone(), PathBuf::from("reports").join("console"), dev)
    };
    let console = open(&board, &device, &log_dir).await?;
    // Subscribed before power-on: the terminal shows the board from its first byte.
    let rx = console.subscribe();
    if let Some(p) = power.as_mut() {
        p.on().await?;
    }
    let code = bridge(console, rx).await;
    if let Some(p) = power.as_mut() {
        let _ = p.off().await;
    }
    code
}

async fn open(board: &Board, device: &str, log_dir: &std::path::Path) -> anyhow::Result<Console> {
    let log = log_dir.join(format!("console-{}.log", board.name));
    let title = format!("hil console {}", board.name);
    // The board's own console is reopened as its board file says (a USB re-enumeration, a
    // console server's link); a pty that QEMU made for this session dies with QEMU.
    let c = if device == board.console.device {
        Console::open_board(&board.console, &log, &title).await?
    } else {
        Console::open_device(device, board.console.line(), None, &log, &title).await?
    };
    eprintln!(
        "hil: console of {} on {device} (log {}); Ctrl-] quits",
        board.name,
        log.display()
    );
    Ok(c)
}

async fn bridge(
    console: Console,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
) -> anyhow::Result<i32> {
    let _raw = RawTerminal::enter();
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 1024];
    let mut stdin_open = true;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(Event::Data(d)) => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&d);
                    let _ = out.flush();
                }
                Some(Event::Notice(note)) => eprintln!("\r\nhil: {note}\r"),
                Some(Event::Closed(reason)) => {
                    eprintln!("\r\nhil: {reason}");
                    return Ok(exit::INFRASTRUCTURE);
                }
                None => return Ok(exit::INFRASTRUCTURE),
            },
            n = stdin.read(&mut buf), if stdin_open => match n {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if let Some(p) = buf[..n].iter().position(|b| *b == QUIT) {
                        if p > 0 { console.send(buf[..p].to_vec()); }
                        eprintln!("\r\nhil: console closed");
                        return Ok(exit::OK);
                    }
                    console.send(buf[..n].to_vec());
                }
            },
        }
    }
}

/// Puts the controlling terminal in raw mode while the console is attached (so Ctrl-C
/// reaches the board), and restores it on drop. Does nothing when stdin is not a tty.
struct RawTerminal(Option<libc::termios>);

impl RawTerminal {
    fn enter() -> RawTerminal {
        if !std::io::stdin().is_terminal() {
            return RawTerminal(None);
        }
        // SAFETY: termios calls on fd 0, which is a terminal (checked above).
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return RawTerminal(None);
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t);
            RawTerminal(Some(saved))
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            // SAFETY: restoring the attributes saved from the same fd.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        }
    }
}
