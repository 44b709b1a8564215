//! Running a command on a console shell and getting back its output and exit status.
//!
//! Protocol: one line `echo HIL''_S_n; eval '<cmd>'; echo HIL''_E_n_$?`. The quotes keep the
//! echoed command line from matching the markers, `eval` keeps a syntax error in `<cmd>`
//! from swallowing the end marker, and the output is what lies between the two markers.
//! Kernel messages are silenced on the console first (`dmesg -n 1`) so they do not land in
//! command output; death patterns still reach the expect engine either way.

use crate::console::Console;
use crate::expect::{ExpectError, Expecter};
use regex::bytes::Regex;
use std::time::Duration;

pub fn prompt_regex(prompt: &str) -> Result<Regex, regex::Error> {
    match prompt.strip_suffix('$') {
        Some(head) if !head.ends_with('\\') => {
            Regex::new(&format!(r"(?:{head})(?:\x1b\[[0-9;?]*[A-Za-z])*$"))
        }
        _ => Regex::new(prompt),
    }
}

#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// Cleaned text (no ANSI, no `\r`).
    pub output: String,
    pub status: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("command `{cmd}` did not finish within {secs} s (Ctrl-C sent)")]
    Timeout {
        cmd: String,
        secs: u64,
        partial: String,
    },
    #[error(transparent)]
    Expect(ExpectError),
    /// The command holds a control character (a newline, Ctrl-C...): on a terminal the
    /// line discipline acts on it even inside quotes, so hil does not type it.
    #[error("command {cmd:?} holds a control character; hil does not type it at a board shell")]
    Unsafe { cmd: String },
}

/// `s` as one word for a POSIX shell on the board: unchanged when it holds only characters
/// no shell treats specially (letters, digits and `_-./:@%+,`), else in single quotes with
/// each `'` written `'\''`. Every value put into a command typed at a board shell (console
/// or SSH) goes through here, whether it comes from a board file, a suite file or the
/// board's own output. Control characters are quoted too, but a console shell refuses the
/// whole command ([`ShellError::Unsafe`], see [`refuse_control`]).
pub fn quote(s: &str) -> std::borrow::Cow<'_, str> {
    let plain = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'-' | b'.' | b'/' | b':' | b'@' | b'%' | b'+' | b','
                )
        });
    if plain {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out.into()
}

/// Words joined into one command line, each through [`quote`].
pub fn join<I, S>(words: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    words
        .into_iter()
        .map(|w| quote(w.as_ref()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A command typed at a terminal must hold no control character: the tty's line
/// discipline acts on `^C`, `^D`, `^U`, a newline ends the line, and so on, quoted or not.
pub fn refuse_control(cmd: &str) -> Result<(), ShellError> {
    if cmd.chars().any(|c| c.is_control()) {
        return Err(ShellError::Unsafe {
            cmd: cmd.to_string(),
        });
    }
    Ok(())
}

pub struct ConsoleShell {
    console: Console,
    exp: Expecter,
    prompt: Regex,
    seq: u64,
}

impl ConsoleShell {
    /// `prompt` is matched at the end of the output; when it ends in `$`, terminal escape
    /// sequences after it are ignored (busybox's line editor sends a cursor position query,
    /// `ESC[6n`, right after its prompt). Nothing answers the query, and nothing needs to:
    /// busybox does not wait for the report (it only uses one, when it comes, to correct
    /// its idea of the cursor column), so the typed line is read at once.
    pub fn new(
        console: Console,
        exp: Expecter,
        prompt: &str,
    ) -> Result<ConsoleShell, regex::Error> {
        Ok(ConsoleShell {
            console,
            exp,
            prompt: prompt_regex(prompt)?,
            seq: 0,
        })
    }

    /// Gets a fresh prompt and quiets kernel messages on the console.
    pub async fn init(&mut self, timeout: Duration) -> Result<(), ShellError> {
        self.console.send("\r");
        self.exp
            .expect(&[&self.prompt], timeout)
            .await
            .map_err(ShellError::Expect)?;
        self.run("dmesg -n 1", timeout).await?;
        Ok(())
    }

    pub async fn run(&mut self, cmd: &str, timeout: Duration) -> Result<CmdOutput, ShellError> {
        refuse_control(cmd)?;
        self.seq += 1;
        let n = self.seq;
        let start = Regex::new(&format!(r"HIL_S_{n}\r?\n")).expect("marker regex");
        let end = Regex::new(&format!(r"HIL_E_{n}_(\d+)")).expect("marker regex");
        self.exp.clear();
        let line = format!(
            "echo HIL''_S_{n}; eval {}; echo HIL''_E_{n}_$?\r",
            quote(cmd)
        );
        self.console.send(line);
        let deadline = crate::config::limits::deadline_after(timeout);
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        let result = async {
            self.exp.expect(&[&start], left()).await?;
            let m = self.exp.expect(&[&end], left()).await?;
            Ok::<_, ExpectError>(m)
        }
        .await;
        match result {
            Ok(m) => {
                let status = end
                    .captures(&m.matched)
                    .and_then(|c| std::str::from_utf8(&c[1]).ok()?.parse().ok())
                    .unwrap_or(-1);
                // Wait for the prompt so the next command is not typed into this one.
                let _ = self
                    .exp
                    .expect(&[&self.prompt], Duration::from_secs(5))
                    .await;
                Ok(CmdOutput {
                    output: crate::text::clean(&m.before),
                    status,
                })
            }
            Err(ExpectError::Timeout { tail, .. }) => {
                self.interrupt().await;
                Err(ShellError::Timeout {
                    cmd: cmd.to_string(),
                    secs: timeout.as_secs(),
                    partial: tail,
                })
            }
            Err(e) => Err(ShellError::Expect(e)),
        }
    }

    /// Ctrl-C and wait briefly for a prompt, so the console is usable again.
    async fn interrupt(&mut self) {
        self.console.send("\x03");
        let _ = self
            .exp
            .expect(&[&self.prompt], Duration::from_secs(5))
            .await;
    }

    pub fn console(&self) -> &Console {
        &self.console
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    /// What a real POSIX shell makes of `word` as one argument.
    fn through_sh(word: &str) -> Vec<String> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("for a in {word}; do printf '%s\\0' \"$a\"; done"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(String::from)
            .collect()
    }

    #[test]
    fn quoted_hostile_values_reach_the_shell_as_one_unchanged_word() {
        for v in [
            "a,b",
            "x'; reboot; '",
            "gpiochip0; reboot",
            "$(reboot)",
            "`reboot`",
            "a b\tc",
            "'",
            "''",
            "",
            "*",
            "~root",
            "x=y",
            "a\\b\"c",
            "-n",
            "gpio\nchip",
        ] {
            assert_eq!(
                through_sh(&quote(v)),
                vec![v.to_string()],
                "{v:?} as {}",
                quote(v)
            );
        }
        assert_eq!(quote("x'; reboot; '"), "'x'\\''; reboot; '\\'''");
        // Plain words stay as they are (command lines in logs stay readable).
        assert_eq!(quote("/dev/ttyS0"), "/dev/ttyS0");
        assert_eq!(quote("gpiochip0"), "gpiochip0");
        assert_eq!(
            join(["gpioinfo", "chip; reboot"]),
            "gpioinfo 'chip; reboot'"
        );
    }

    #[test]
    fn a_console_command_with_a_control_character_is_refused() {
        for cmd in [
            "gpioinfo 'a\nb'",
            "echo 'x\r'",
            "a\u{3}",
            "a\u{4}",
            "a\u{7f}",
        ] {
            assert!(
                matches!(refuse_control(cmd), Err(ShellError::Unsafe { .. })),
                "{cmd:?}"
            );
        }
        assert!(refuse_control("gpioinfo 'x'\\''; reboot; '\\'''").is_ok());
    }

    #[test]
    fn prompt_ignores_trailing_cursor_query() {
        let p = prompt_regex("# $").unwrap();
        assert!(p.is_match(b"HIL_E_1_0\r\n/ # \x1b[6n"));
        assert!(p.is_match(b"/ # "));
        assert!(!p.is_match(b"/ # \x1b[6nls"));
        assert!(prompt_regex(r"\$").unwrap().is_match(b"$"));
    }
}
