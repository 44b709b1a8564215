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
        self.seq += 1;
        let n = self.seq;
        let start = Regex::new(&format!(r"HIL_S_{n}\r?\n")).expect("marker regex");
        let end = Regex::new(&format!(r"HIL_E_{n}_(\d+)")).expect("marker regex");
        self.exp.clear();
        let line = format!(
            "echo HIL''_S_{n}; eval {}; echo HIL''_E_{n}_$?\r",
            shell_words::quote(cmd)
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
    use super::prompt_regex;

    #[test]
    fn prompt_ignores_trailing_cursor_query() {
        let p = prompt_regex("# $").unwrap();
        assert!(p.is_match(b"HIL_E_1_0\r\n/ # \x1b[6n"));
        assert!(p.is_match(b"/ # "));
        assert!(!p.is_match(b"/ # \x1b[6nls"));
        assert!(prompt_regex(r"\$").unwrap().is_match(b"$"));
    }
}
