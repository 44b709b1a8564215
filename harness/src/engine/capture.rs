//! The console text a testcase carries: what the board's console (and the guest's, when
//! one runs) printed while the case ran, bounded, cleaned of escape sequences.

use crate::boot::BoardSession;
use crate::report::tail_text;
use std::path::Path;
use tokio::sync::mpsc;

/// Console text kept per testcase in the report (the full log is on disk).
pub const SLICE_MAX: usize = 256 * 1024;

/// Subscribes to the consoles when a case starts; `take` gives their text at its end.
pub struct Capture {
    board: Option<mpsc::UnboundedReceiver<crate::console::Event>>,
    guest: Option<mpsc::UnboundedReceiver<crate::console::Event>>,
}

impl Capture {
    pub fn start(s: &BoardSession) -> Capture {
        Capture {
            board: s.console().map(|c| c.subscribe()),
            guest: s.guest_console().map(|c| c.subscribe()),
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
        let guest = Self::drain(self.guest);
        let text = if guest.trim().is_empty() {
            board
        } else {
            format!("{board}\n--- guest console ---\n{guest}")
        };
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
