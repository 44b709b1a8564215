//! Line input as U-Boot's and busybox's line editors do it: typed characters are echoed,
//! Enter ends a line, backspace erases, Ctrl-C interrupts, escape sequences are dropped.

use std::collections::VecDeque;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Line(String),
    Interrupt,
}

#[derive(Debug, Default)]
pub struct Editor {
    line: Vec<u8>,
    /// The `\n` of a `\r\n` pair is not a second Enter.
    after_cr: bool,
    /// Inside an escape sequence (`ESC [ ... final`).
    esc: Option<Vec<u8>>,
    pub keys: VecDeque<Key>,
}

impl Editor {
    /// Takes typed bytes; returns what to echo. Completed lines and Ctrl-C queue in `keys`.
    pub fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        let mut echo = Vec::new();
        for &b in data {
            if let Some(seq) = &mut self.esc {
                seq.push(b);
                // ESC alone then one byte, or CSI parameters up to a final byte.
                let done = match seq.as_slice() {
                    [b'['] => false,
                    [b'[', .., last] => (0x40..=0x7e).contains(last),
                    _ => true,
                };
                if done {
                    self.esc = None;
                }
                continue;
            }
            let after_cr = std::mem::take(&mut self.after_cr);
            match b {
                b'\r' | b'\n' => {
                    if b == b'\n' && after_cr {
                        continue;
                    }
                    self.after_cr = b == b'\r';
                    echo.extend_from_slice(b"\r\n");
                    let line =
                        String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
                    self.keys.push_back(Key::Line(line));
                }
                0x03 => {
                    self.line.clear();
                    echo.extend_from_slice(b"^C");
                    self.keys.push_back(Key::Interrupt);
                }
                0x08 | 0x7f => {
                    if self.line.pop().is_some() {
                        echo.extend_from_slice(b"\x08 \x08");
                    }
                }
                0x1b => self.esc = Some(Vec::new()),
                b'\t' => {
                    self.line.push(b);
                    echo.push(b' ');
                }
                b if b < 0x20 => {}
                b => {
                    self.line.push(b);
                    echo.push(b);
                }
            }
        }
        echo
    }

    /// Forgets a half-typed line (the board reset or was interrupted).
    pub fn reset(&mut self) {
        *self = Editor::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_echo_backspace_interrupt_and_escapes() {
        let mut e = Editor::default();
        let echo = e.feed(b"ech\x7fho a\r\nb\x1b[1;1Rc\r");
        assert_eq!(echo, b"ech\x08 \x08ho a\r\nbc\r\n");
        assert_eq!(e.keys.pop_front(), Some(Key::Line("echo a".into())));
        assert_eq!(e.keys.pop_front(), Some(Key::Line("bc".into())));
        e.feed(b"half\x03");
        assert_eq!(e.keys.pop_front(), Some(Key::Interrupt));
        e.feed(b"\n");
        assert_eq!(e.keys.pop_front(), Some(Key::Line(String::new())));
        assert!(e.keys.is_empty());
    }
}
