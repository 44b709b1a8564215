//! The `[fake]` table of a board file: how the fake board (`power.backend = "fake"`, see
//! `crate::fake_board`) behaves. It stands in for a board in tests of hil's own logic, so
//! everything it does that a test may want to vary is a key here.
//!
//! Strings are taken literally: no `{placeholder}` expansion (U-Boot `${var}` in a scripted
//! output stays as typed). Paths are relative to the directory hil runs in.

use super::board::{Board, PowerBackend};
use super::error::ConfigError;
use regex::Regex;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeCfg {
    /// The private host key (OpenSSH ed25519) of the fake's SSH server; the board file pins
    /// its public half in `[ssh]`. Required when the board has an `[ssh]` table.
    pub ssh_host_key: Option<String>,
    /// U-Boot's prompt as the fake prints it; default `bootloader.prompt`.
    pub uboot_prompt: Option<String>,
    /// The autoboot line as the fake prints it (then `: N` counting down); default
    /// `bootloader.autoboot`. A different text is a board whose U-Boot hil does not know.
    pub autoboot_text: Option<String>,
    /// U-Boot's bootdelay: seconds the countdown waits for a key before booting on its own.
    #[serde(default = "default_autoboot_s")]
    pub autoboot_s: u32,
    /// The first N power-ons ignore the key that stops autoboot (it came too late) and boot
    /// Linux on their own; later power-ons stop at the prompt.
    #[serde(default)]
    pub miss_autoboot: u32,
    /// The files the lab's TFTP server has; any other name fails with U-Boot's
    /// `TFTP error: 'File not found' (1)`. Omitted: every file is there.
    pub tftp_files: Option<Vec<String>>,
    /// Milliseconds from the boot command to the ready line (the kernel booting).
    #[serde(default)]
    pub boot_delay_ms: u64,
    /// The line printed once Linux is up; default `linux.ready` when that regex is a plain
    /// text that matches itself.
    pub ready_line: Option<String>,
    /// The Linux shell prompt as printed; `linux.prompt` must match it.
    #[serde(default = "default_shell_prompt")]
    pub shell_prompt: String,
    /// What `uname -r` prints.
    #[serde(default = "default_kernel_release")]
    pub kernel_release: String,
    /// Commands no `[[fake.command]]` matches run on this machine (`sh -c` in a scratch
    /// directory); this many seconds later they are killed (exit status 124).
    #[serde(default = "default_command_timeout_s")]
    pub command_timeout_s: u64,
    /// Scripted commands, tried in order; the first that applies answers.
    #[serde(default, rename = "command")]
    pub commands: Vec<FakeCommand>,
}

/// One scripted command of the fake board's Linux (on the console shell and over SSH).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeCommand {
    /// Regex searched in the command (the part inside hil's markers on the console, the
    /// exec string over SSH).
    #[serde(rename = "match")]
    pub pattern: String,
    /// Printed first (`flood`: printed again and again, one line each time).
    #[serde(default)]
    pub output: String,
    /// The exit status when the command finishes (no `action`).
    #[serde(default)]
    pub status: u8,
    /// What happens after the output instead of finishing.
    pub action: Option<FakeAction>,
    /// Seconds between the output and the end (the status, or the action).
    #[serde(default)]
    pub after_s: f64,
    /// Only on these power-ons (1 is the first of the run); omitted: on every one.
    pub boots: Option<Vec<u32>>,
    /// Only the first N times it matches in the run; later matches fall through to the
    /// next rule (a check that fails once and then passes).
    pub times: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FakeAction {
    /// Never finishes (until Ctrl-C on the console, or the SSH channel is closed).
    Hang,
    /// Prints `output` as a line forever, as fast as it is read, until interrupted.
    Flood,
    /// The kernel panics: the panic lines on the console, then the board is dead.
    Panic,
    /// The board is gone: the console closes and SSH connections drop.
    Vanish,
    /// The board stops answering: console silent and deaf, SSH commands never end.
    Freeze,
    /// The board resets: U-Boot's banner again, then it boots on its own.
    Reset,
}

fn default_autoboot_s() -> u32 {
    2
}

fn default_shell_prompt() -> String {
    "/ # ".into()
}

fn default_kernel_release() -> String {
    "6.1.0-hil-fake".into()
}

fn default_command_timeout_s() -> u64 {
    60
}

impl FakeCfg {
    /// The line the fake prints when Linux is up, resolved against the board's
    /// `linux.ready` (see `ready_line`).
    pub fn ready_line_for(&self, board: &Board) -> Option<String> {
        self.ready_line.clone().or_else(|| {
            let r = board.linux.ready.as_ref()?;
            Regex::new(r)
                .ok()
                .filter(|re| re.is_match(r))
                .map(|_| r.clone())
        })
    }
}

/// Checks the `[fake]` table against the rest of the board file.
pub fn validate(path: &Path, b: &Board, errs: &mut Vec<ConfigError>) {
    let mut err = |k: &str, m: String| errs.push(ConfigError::new(path, k, m));
    let is_fake = b.power.backend == PowerBackend::Fake;
    let backend = format!("{:?}", b.power.backend).to_lowercase();
    if is_fake != (b.console.device == "fake") {
        err(
            "console.device",
            format!(
                "is \"{}\" with power.backend = \"{backend}\"; expected console.device = \"fake\" exactly when power.backend = \"fake\" (the fake board's console is a pty it makes)",
                b.console.device
            ),
        );
    }
    if is_fake && b.console.reopen_timeout_s.is_some() {
        err("console.reopen_timeout_s", "is set but console.device is \"fake\"; the fake's pty is never reopened: expected this key only with a device path".into());
    }
    let Some(f) = &b.fake else {
        if is_fake {
            err(
                "fake",
                "is missing; expected a [fake] table when power.backend = \"fake\"".into(),
            );
        }
        return;
    };
    if !is_fake {
        err(
            "fake",
            format!("is set but power.backend is \"{backend}\"; expected [fake] only with power.backend = \"fake\""),
        );
    }
    if let Some(s) = &b.ssh {
        if f.ssh_host_key.is_none() {
            err("fake.ssh_host_key", "is missing; expected the private host key (OpenSSH ed25519) of the fake's SSH server, whose public half [ssh] pins".into());
        }
        if s.host != "127.0.0.1" && s.host != "localhost" {
            err(
                "ssh.host",
                format!(
                    "is \"{}\"; the fake board's SSH server listens on 127.0.0.1 only: expected \"127.0.0.1\"",
                    s.host
                ),
            );
        }
    }
    match Regex::new(&b.linux.prompt) {
        Ok(re) if !re.is_match(&f.shell_prompt) => err(
            "fake.shell_prompt",
            format!(
                "is {:?}, which linux.prompt /{}/ does not match; expected a prompt the board file recognises",
                f.shell_prompt, b.linux.prompt
            ),
        ),
        _ => {}
    }
    if b.linux.ready.is_some() && f.ready_line_for(b).is_none() {
        err("fake.ready_line", "is missing and linux.ready is a regex, not a plain line; expected the line the fake prints when Linux is up".into());
    }
    if let (Some(line), Some(r)) = (&f.ready_line, &b.linux.ready) {
        if Regex::new(r).is_ok_and(|re| !re.is_match(line)) {
            err(
                "fake.ready_line",
                format!("is {line:?}, which linux.ready /{r}/ does not match; expected a line the board file recognises"),
            );
        }
    }
    if f.autoboot_s == 0 || f.autoboot_s > 60 {
        err(
            "fake.autoboot_s",
            format!(
                "is {}; expected 1 to 60 seconds (U-Boot's bootdelay)",
                f.autoboot_s
            ),
        );
    }
    if f.command_timeout_s == 0 || f.command_timeout_s > 3600 {
        err(
            "fake.command_timeout_s",
            format!("is {}; expected 1 to 3600 seconds", f.command_timeout_s),
        );
    }
    if let Some(files) = &f.tftp_files {
        for (i, name) in files.iter().enumerate() {
            if name.is_empty() || name.contains(char::is_whitespace) {
                err(
                    &format!("fake.tftp_files[{i}]"),
                    format!("is {name:?}; expected a file name without spaces"),
                );
            }
        }
    }
    for (i, c) in f.commands.iter().enumerate() {
        let key = |k: &str| format!("fake.command[{i}].{k}");
        if let Err(e) = Regex::new(&c.pattern) {
            err(&key("match"), format!("is not a valid regex: {e}"));
        }
        if !(c.after_s.is_finite() && (0.0..=3600.0).contains(&c.after_s)) {
            err(
                &key("after_s"),
                format!("is {}; expected 0 to 3600 seconds", c.after_s),
            );
        }
        if c.action == Some(FakeAction::Flood) && c.output.trim().is_empty() {
            err(
                &key("output"),
                "is empty with action = \"flood\"; expected the line to print again and again"
                    .into(),
            );
        }
        if c.action.is_some() && c.status != 0 {
            err(
                &key("status"),
                "is set together with action; expected one of them (an action never finishes the command)".into(),
            );
        }
        if let Some(boots) = &c.boots {
            if boots.is_empty() || boots.contains(&0) {
                err(
                    &key("boots"),
                    format!("is {boots:?}; expected power-on numbers counted from 1"),
                );
            }
        }
        if c.times == Some(0) {
            err(
                &key("times"),
                "is 0; expected at least 1 (or leave it out: every time)".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    /// A fake board file: `console`/`power` lines, then `rest` (tables after [linux]).
    fn load(console_power: &str, rest: &str) -> Result<Board, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.toml");
        let text = format!(
            r##"name = "f"
soc = "fake"
{console_power}
[bootloader]
kind = "u-boot"
prompt = "=> "
autoboot = "Hit any key"
interrupt = " "
timeout_s = 5
command_timeout_s = 5
boot_command = "booti"
[linux]
bootargs = ""
ready = "board up"
prompt = "# $"
boot_timeout_s = 5
shell_timeout_s = 5
{rest}
"##
        );
        std::fs::write(&p, text).unwrap();
        Board::load(&p).map_err(|e| e.to_string())
    }

    const FAKE: &str = "[console]\ndevice = \"fake\"\nbaud = 115200\n[power]\nbackend = \"fake\"";
    const SSH: &str = "[ssh]\nhost = \"127.0.0.1\"\nport = 2222\nuser = \"root\"\nidentity = \"/k\"\nhost_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAz8yxinzTeFwYuKJZJSUx6NUTVy18BIE2ws16Sz05rC\"\nconnect_timeout_s = 5";

    #[test]
    fn a_minimal_fake_board_loads_with_its_defaults() {
        let b = load(FAKE, "[fake]").unwrap();
        let f = b.fake.as_ref().unwrap();
        assert_eq!((f.autoboot_s, f.shell_prompt.as_str()), (2, "/ # "));
        assert_eq!(f.ready_line_for(&b).as_deref(), Some("board up"));
    }

    #[test]
    fn mistakes_name_the_file_and_key() {
        let cases: &[(&str, &str, &str)] = &[
            (FAKE, "[fake]\nbootdelay = 3", "bootdelay"),
            (FAKE, "", "key `fake`: is missing"),
            (
                "[console]\ndevice = \"/dev/serial/by-id/x\"\nbaud = 115200\n[power]\nbackend = \"fake\"",
                "[fake]",
                "key `console.device`: is \"/dev/serial/by-id/x\" with power.backend = \"fake\"",
            ),
            (
                "[console]\ndevice = \"/dev/serial/by-id/x\"\nbaud = 115200\n[power]\nbackend = \"manual\"\ntimeout_s = 5",
                "[fake]",
                "key `fake`: is set but power.backend is \"manual\"",
            ),
            (FAKE, "[fake]\nshell_prompt = \"$ \"", "key `fake.shell_prompt`"),
            (
                FAKE,
                "[fake]\nready_line = \"other\"",
                "key `fake.ready_line`: is \"other\", which linux.ready",
            ),
            (FAKE, "[fake]\n[[fake.command]]\nmatch = \"(\"", "key `fake.command[0].match`"),
            (
                FAKE,
                "[fake]\n[[fake.command]]\nmatch = \"yes\"\naction = \"flood\"",
                "key `fake.command[0].output`",
            ),
            (
                FAKE,
                "[fake]\n[[fake.command]]\nmatch = \"x\"\naction = \"hang\"\nstatus = 1",
                "key `fake.command[0].status`",
            ),
            (
                FAKE,
                "[fake]\n[[fake.command]]\nmatch = \"x\"\nboots = [0]",
                "key `fake.command[0].boots`",
            ),
            (
                FAKE,
                "[fake]\n[[fake.command]]\nmatch = \"x\"\naction = \"explode\"",
                "explode",
            ),
            (FAKE, &format!("{SSH}\n[fake]"), "key `fake.ssh_host_key`: is missing"),
            (
                FAKE,
                &format!("{}\n[fake]\nssh_host_key = \"/k\"", SSH.replace("127.0.0.1", "10.0.0.2")),
                "key `ssh.host`: is \"10.0.0.2\"",
            ),
        ];
        for (cp, rest, want) in cases {
            let e = load(cp, rest).unwrap_err();
            assert!(e.contains("f.toml") && e.contains(want), "{rest:?}: {e}");
        }
    }
}
