//! The transcript a testcase carries (JUnit `system-out`): what the board's console
//! printed while the case ran, the SSH commands hil ran on the board and their output,
//! and the guest's console, each under a line naming its source; bounded, cleaned of
//! escape sequences.
//!
//! The SSH part and a guest console that starts during the case (the `guest-boot` check
//! starts the guest) are read from their logs (`ssh.log`, `guest-console.log`): what was
//! appended since the case began. One board's checks run one after another, so that is
//! this case's.

use crate::boot::BoardSession;
use crate::report::tail_text;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Console text kept per testcase in the report (the full log is on disk).
pub const SLICE_MAX: usize = 256 * 1024;

/// Subscribes to the consoles when a case starts; `take` gives their text at its end.
pub struct Capture {
    board: Option<mpsc::UnboundedReceiver<crate::console::Event>>,
    guest: Option<mpsc::UnboundedReceiver<crate::console::Event>>,
    ssh_log: LogFrom,
    /// Read only when no guest console ran when the case started.
    guest_log: LogFrom,
}

/// A log file and its length when the case started.
struct LogFrom {
    path: PathBuf,
    from: u64,
}

impl LogFrom {
    fn at(path: PathBuf) -> LogFrom {
        let from = std::fs::metadata(&path).map_or(0, |m| m.len());
        LogFrom { path, from }
    }

    /// What was appended since, the last [`SLICE_MAX`] bytes at most.
    fn appended(&self) -> Vec<u8> {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let len = f.metadata().map_or(0, |m| m.len());
        // A log rewritten from the start (a new session) is read whole.
        let from = if len < self.from { 0 } else { self.from };
        let from = from.max(len.saturating_sub(SLICE_MAX as u64));
        let mut raw = Vec::new();
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.take(SLICE_MAX as u64).read_to_end(&mut raw);
        }
        raw
    }
}

impl Capture {
    pub fn start(s: &BoardSession) -> Capture {
        Capture {
            board: s.console().map(|c| c.subscribe()),
            guest: s.guest_console().map(|c| c.subscribe()),
            ssh_log: LogFrom::at(s.run_dir.join("ssh.log")),
            guest_log: LogFrom::at(s.run_dir.join("guest-console.log")),
        }
    }

    fn drain(rx: Option<mpsc::UnboundedReceiver<crate::console::Event>>) -> String {
        let mut raw = Vec::new();
        if let Some(mut rx) = rx {
            while let Ok(ev) = rx.try_recv() {
                if let crate::console::Event::Data(d) = ev {
                    raw.extend_from_slice(&d);
                    if raw.len() > 4 * SLICE_MAX {
                        raw.drain(..raw.len() - SLICE_MAX);
                    }
                }
            }
        }
        crate::text::clean(&raw)
    }

    pub fn take(self) -> String {
        let board = Self::drain(self.board);
        let ssh = crate::text::clean(&self.ssh_log.appended());
        let guest = match self.guest {
            Some(rx) => Self::drain(Some(rx)),
            None => crate::text::clean(&self.guest_log.appended()),
        };
        let mut text = board;
        for (source, part) in [
            ("ssh (commands on the board)", ssh),
            ("guest console", guest),
        ] {
            if !part.trim().is_empty() {
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&format!("--- {source} ---\n{part}"));
            }
        }
        tail_text(&text, SLICE_MAX)
    }
}

/// The console log from its start (the whole boot), as text.
pub fn log_slice(run_dir: &Path) -> Option<String> {
    let raw = std::fs::read(run_dir.join("console.log")).ok()?;
    Some(tail_text(&crate::text::clean(&raw), SLICE_MAX))
}

/// The last part of the board's console log (for a case cut short).
pub fn log_tail(run_dir: &Path) -> String {
    log_slice(run_dir)
        .map(|s| tail_text(&s, 16 * 1024))
        .unwrap_or_default()
}
