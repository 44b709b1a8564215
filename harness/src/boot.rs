//! The boot state machine of one board: Off → Bootloader → Linux (console) → Linux (SSH).
//!
//! `reach(state)` walks the edges from wherever the board is. Each edge has its own timeout
//! from the board file. U-Boot is typed at over the console, exactly as on a real board.

use crate::config::Board;
use crate::console::Console;
use crate::error::StepError;
use crate::expect::{linux_death_patterns, DeathPattern, ExpectError, Expecter};
use crate::guest::Guest;
use crate::power::Power;
use crate::shell::ConsoleShell;
use crate::ssh::{SshSession, SshTarget};
use crate::vfio::{self, Binding, PciDev};
use regex::bytes::Regex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Off,
    Bootloader,
    LinuxConsole,
    LinuxSsh,
    /// The KVM guest runs on the board with the board file's devices passed through.
    Guest,
}

/// U-Boot failures (DOMAIN.md) seen after a command: the lab (TFTP server, images) failed.
pub fn uboot_errors() -> Vec<DeathPattern> {
    vec![
        DeathPattern::new("TFTP failed", r"TFTP error: '[^']*' \(\d+\)"),
        DeathPattern::new("TFTP failed", r"Retry count exceeded"),
        DeathPattern::new("not an arm64 kernel Image", r"Bad Linux ARM64 Image magic!"),
        DeathPattern::new(
            "U-Boot does not know the command",
            r"Unknown command '[^']*'",
        ),
    ]
}

pub struct BoardSession {
    pub board: Board,
    pub run_dir: PathBuf,
    pub power: Power,
    pub state: State,
    console: Option<Console>,
    shell: Option<ConsoleShell>,
    /// The expecter that followed U-Boot, kept so no output is missed before `booti`.
    bootloader_expecter: Option<Expecter>,
    ssh: Option<SshSession>,
    ssh_target: Option<SshTarget>,
    /// Facts learned while booting (kernel release...), for report properties.
    pub facts: BTreeMap<String, String>,
    /// Devices hil moved to vfio-pci, to be put back at teardown.
    pub bindings: Vec<Binding>,
    /// Guest images copied to the board: board path → sha256 (verified there).
    pub uploaded: BTreeMap<String, String>,
    guest: Option<Guest>,
    /// Console gaps (transport lost and reopened) of the consoles already closed.
    past_console_gaps: u64,
    /// How long those consoles were without transport.
    past_console_gap_time: std::time::Duration,
    /// Where every console of the board opened in this session is published to the run's
    /// followers (`hil console BOARD` while the run holds the board).
    followers: Option<std::sync::Arc<crate::console::follow::Fanout>>,
}

impl BoardSession {
    /// `board` must already have its placeholders expanded.
    pub fn new(board: Board, run_dir: PathBuf, ssh_target: Option<SshTarget>) -> BoardSession {
        let power = Power::new(&board, run_dir.clone());
        BoardSession {
            board,
            run_dir,
            power,
            state: State::Off,
            console: None,
            shell: None,
            bootloader_expecter: None,
            ssh: None,
            ssh_target,
            facts: BTreeMap::new(),
            bindings: Vec::new(),
            uploaded: BTreeMap::new(),
            guest: None,
            past_console_gaps: 0,
            past_console_gap_time: std::time::Duration::ZERO,
            followers: None,
        }
    }

    /// Publishes the board's console, from its next power-on, to the run's followers.
    pub fn publish_console(&mut self, to: std::sync::Arc<crate::console::follow::Fanout>) {
        self.followers = Some(to);
    }

    /// How many times the board's console transport went away and was reopened during
    /// this run, over every boot.
    pub fn console_gaps(&self) -> u64 {
        self.past_console_gaps + self.console.as_ref().map_or(0, |c| c.gaps())
    }

    /// How long the console was without transport during this run, over every gap.
    pub fn console_gap_time(&self) -> std::time::Duration {
        self.past_console_gap_time
            + self
                .console
                .as_ref()
                .map_or_else(Default::default, |c| c.gap_time())
    }

    pub fn console(&self) -> Option<&Console> {
        self.console.as_ref()
    }

    /// The console a person takes over once the board is where they want it: the guest's
    /// while it runs, else the board's. hil's own readers of it (the console shell, the
    /// bootloader's expecter) let go, so nothing holds output that nobody reads.
    pub fn hand_over(&mut self) -> Option<Console> {
        self.shell = None;
        self.bootloader_expecter = None;
        match &self.guest {
            Some(g) => Some(g.console.clone()),
            None => self.console.clone(),
        }
    }

    /// Writes a marker line of hil's own into the board's console log (when open).
    pub fn console_mark(&self, what: &str) {
        if let Some(c) = &self.console {
            c.mark(what);
        }
    }

    pub async fn reach(&mut self, target: State) -> Result<(), StepError> {
        while self.state < target {
            match self.state {
                State::Off => self.power_on_to_bootloader().await?,
                State::Bootloader => self.boot_linux().await?,
                State::LinuxConsole => self.connect_ssh().await?,
                State::LinuxSsh => self.start_guest().await?,
                State::Guest => unreachable!("highest state"),
            }
        }
        Ok(())
    }

    /// The longest `reach(target)` may take from the board's state now: the sum of the
    /// limits of the edges it walks. Power-on to prompt waits twice (the autoboot line, then
    /// the prompt after the interrupt); booting Linux waits for the ready line, then up to a
    /// shell time-out each for the first prompt and for `uname -r`.
    pub fn limit_to(&self, target: State) -> Duration {
        let b = &self.board;
        let edge = |from: State| -> u64 {
            match from {
                State::Off => 2 * b.bootloader.timeout_s,
                State::Bootloader => b.linux.boot_timeout_s + 2 * b.linux.shell_timeout_s,
                State::LinuxConsole => b.ssh.as_ref().map_or(60, |s| s.connect_timeout_s),
                State::LinuxSsh => b.guest.as_ref().map_or(0, |g| g.boot_timeout_s),
                State::Guest => 0,
            }
        };
        let secs = [
            State::Off,
            State::Bootloader,
            State::LinuxConsole,
            State::LinuxSsh,
        ]
        .into_iter()
        .filter(|s| *s >= self.state && *s < target)
        .map(edge)
        .sum();
        Duration::from_secs(secs)
    }

    /// Powers the board off and forgets its sessions (after a panic, or at the end).
    pub async fn power_off(&mut self) -> Result<(), StepError> {
        self.guest = None;
        self.bindings.clear();
        self.ssh = None;
        self.shell = None;
        self.bootloader_expecter = None;
        if let Some(c) = &self.console {
            c.mark("power off");
        }
        let r = self.power.off().await;
        if let Some(c) = self.console.take() {
            self.past_console_gaps += c.gaps();
            self.past_console_gap_time += c.gap_time();
        }
        self.state = State::Off;
        r.map_err(StepError::from)
    }

    async fn power_on_to_bootloader(&mut self) -> Result<(), StepError> {
        let b = &self.board;
        // A pty the power backend made dies with the board's QEMU: never reopened. The
        // board's own device path is, after a USB re-enumeration (console::reopen).
        let log = self.run_dir.join("console.log");
        let title = format!("board {}", b.name);
        let armed = self.power.arm().await?;
        let opened = match &armed {
            Some(pty) => Console::open_device(pty, b.console.line(), None, &log, &title).await,
            None => Console::open_board(&b.console, &log, &title).await,
        };
        let device = armed.unwrap_or_else(|| b.console.device.clone());
        let console = opened.map_err(|e| StepError::Infra(format!("console {device}: {e}")))?;
        if let Some(f) = &self.followers {
            console.publish_to(f.clone());
        }
        let mut exp = Expecter::new(console.subscribe(), vec![]);
        console.mark(format!("power on (console {device})"));
        self.console = Some(console.clone());
        self.power.on().await?;
        let bl = &self.board.bootloader;
        let autoboot = Regex::new(&regex::escape(&bl.autoboot)).expect("escaped literal");
        let prompt = Regex::new(&regex::escape(&bl.prompt)).expect("escaped literal");
        let t = Duration::from_secs(bl.timeout_s);
        let m = exp.expect(&[&autoboot, &prompt], t).await.map_err(|e| match e {
            ExpectError::Timeout { tail, .. } => StepError::Infra(format!(
                "bootloader: neither \"{}\" nor the prompt \"{}\" within {} s after power-on; last output: {tail:?}",
                bl.autoboot, bl.prompt, bl.timeout_s
            )),
            e => e.into(),
        })?;
        if m.index == 0 {
            console.send(bl.interrupt.clone());
            exp.expect(&[&prompt], t).await.map_err(|e| match e {
                ExpectError::Timeout { tail, .. } => StepError::Infra(format!(
                    "bootloader: autoboot interrupted but no prompt \"{}\" within {} s (autoboot missed?); last output: {tail:?}",
                    bl.prompt, bl.timeout_s
                )),
                e => e.into(),
            })?;
        }
        self.state = State::Bootloader;
        // Commands: each must come back to the prompt; U-Boot errors are lab failures.
        exp.death = uboot_errors();
        let bootargs = format!(
            "setenv bootargs '{}'",
            self.board.linux.bootargs.replace('\'', "")
        );
        let commands: Vec<String> = self
            .board
            .bootloader
            .commands
            .iter()
            .cloned()
            .chain([bootargs])
            .collect();
        let ct = Duration::from_secs(self.board.bootloader.command_timeout_s);
        // `; echo hil:rc=$?` makes a silent failure visible (a tftp that found no network
        // returns to the prompt like a good one); the echoed command line shows `$?`
        // literally, so only the real output matches.
        let rc = Regex::new(r"hil:rc=(\d+)").expect("static regex");
        for cmd in commands {
            exp.clear();
            console.send(format!("{cmd}; echo hil:rc=$?\r"));
            let m = exp.expect(&[&rc], ct).await.map_err(|e| match e {
                ExpectError::Death { name, line } => {
                    StepError::Infra(format!("bootloader: `{cmd}`: {name}: {line}"))
                }
                ExpectError::Timeout { tail, .. } => StepError::Infra(format!(
                    "bootloader: `{cmd}` did not finish within {} s; last output: {tail:?}",
                    ct.as_secs()
                )),
                e => e.into(),
            })?;
            let code = rc
                .captures(&m.matched)
                .and_then(|c| std::str::from_utf8(&c[1]).ok()?.parse::<i32>().ok());
            if code != Some(0) {
                let out = crate::text::clean(&m.before);
                let out = out
                    .trim()
                    .lines()
                    .rev()
                    .take(6)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join(" | ");
                return Err(StepError::Infra(format!(
                    "bootloader: `{cmd}` failed (return code {}): {out}",
                    code.unwrap_or(-1)
                )));
            }
            exp.expect(&[&prompt], ct).await?;
        }
        self.bootloader_expecter = Some(exp);
        Ok(())
    }

    async fn boot_linux(&mut self) -> Result<(), StepError> {
        let console = self
            .console
            .clone()
            .ok_or_else(|| StepError::Harness("boot without console".into()))?;
        let mut exp = self
            .bootloader_expecter
            .take()
            .unwrap_or_else(|| Expecter::new(console.subscribe(), vec![]));
        let mut death = uboot_errors();
        death.extend(linux_death_patterns());
        exp.death = death;
        exp.clear();
        let l = self.board.linux.clone();
        console.send(format!("{}\r", self.board.bootloader.boot_command));
        let t = Duration::from_secs(l.boot_timeout_s);
        let started = tokio::time::Instant::now();
        let fail = |what: &str, e: ExpectError| match e {
            // U-Boot refusing the kernel is the lab's images, not the DUT.
            ExpectError::Death { name, line } if uboot_errors().iter().any(|d| d.name == name) => {
                StepError::Infra(format!(
                    "bootloader: `{}`: {name}: {line}",
                    self.board.bootloader.boot_command
                ))
            }
            ExpectError::Timeout { tail, .. } => StepError::Infra(format!(
                "linux: {what} not seen within {} s after `{}`; last output: {tail:?}",
                t.as_secs(),
                self.board.bootloader.boot_command
            )),
            e => e.into(),
        };
        if let Some(ready) = &l.ready {
            let re = Regex::new(ready).map_err(|e| StepError::Harness(e.to_string()))?;
            exp.expect(&[&re], t)
                .await
                .map_err(|e| fail(&format!("ready line /{ready}/"), e))?;
        }
        exp.death = linux_death_patterns();
        let left = t.saturating_sub(started.elapsed());
        let mut shell = ConsoleShell::new(console.clone(), exp, &l.prompt)
            .map_err(|e| StepError::Harness(e.to_string()))?;
        shell
            .init(left.max(Duration::from_secs(l.shell_timeout_s)))
            .await?;
        let st = Duration::from_secs(l.shell_timeout_s);
        if let Ok(o) = shell.run("uname -r", st).await {
            self.facts
                .insert("kernel".into(), o.output.trim().to_string());
        }
        self.facts.insert(
            "boot_seconds".into(),
            format!("{:.1}", started.elapsed().as_secs_f64()),
        );
        self.shell = Some(shell);
        self.state = State::LinuxConsole;
        Ok(())
    }

    async fn connect_ssh(&mut self) -> Result<(), StepError> {
        let target = self.ssh_target.clone().ok_or_else(|| {
            StepError::Blocked(format!(
                "board {} has no [ssh] table; checks with via = \"ssh\" need one",
                self.board.name
            ))
        })?;
        let t = Duration::from_secs(self.board.ssh.as_ref().map_or(60, |s| s.connect_timeout_s));
        let sess = target.connect(t, &self.run_dir.join("ssh.log")).await?;
        self.ssh = Some(sess);
        self.state = State::LinuxSsh;
        Ok(())
    }

    pub fn shell(&mut self) -> Result<&mut ConsoleShell, StepError> {
        self.shell
            .as_mut()
            .ok_or_else(|| StepError::Harness("no console shell: board not in Linux".into()))
    }

    pub fn ssh(&self) -> Result<&SshSession, StepError> {
        self.ssh
            .as_ref()
            .ok_or_else(|| StepError::Harness("no SSH session: board not reached over SSH".into()))
    }
}

/// VFIO and the guest.
impl BoardSession {
    fn artifact(&self, name: &str, text: &str) {
        let dir = self.run_dir.join("artifacts");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(name), text);
    }

    /// The board's PCI devices from sysfs, over SSH.
    pub async fn pci_devices(&self) -> Result<Vec<PciDev>, StepError> {
        let t = Duration::from_secs(self.board.linux.shell_timeout_s);
        let out = self.ssh()?.exec(vfio::LIST_COMMAND, t).await?;
        Ok(vfio::parse_list(&out.output))
    }

    /// The board file's devices, resolved; a missing one is `blocked` naming it.
    pub async fn resolve_devices(
        &self,
        names: &[String],
    ) -> Result<(Vec<PciDev>, Vec<(String, PciDev)>), StepError> {
        let devs = self.pci_devices().await?;
        let mut found = Vec::new();
        for cfg in self
            .board
            .devices
            .iter()
            .filter(|d| names.is_empty() || names.contains(&d.name))
        {
            let d = vfio::resolve(&devs, cfg).map_err(StepError::Blocked)?;
            found.push((cfg.name.clone(), d.clone()));
        }
        Ok((devs, found))
    }

    /// Moves the named devices (all board devices when empty) to vfio-pci, recording
    /// their drivers. With `whole_group`, other endpoints of their groups move too;
    /// otherwise a group with a device on a host driver is `blocked` (not viable).
    pub async fn bind_devices(
        &mut self,
        names: &[String],
        whole_group: bool,
    ) -> Result<&[Binding], StepError> {
        if !self.bindings.is_empty() {
            return Ok(&self.bindings);
        }
        let (devs, targets) = self.resolve_devices(names).await?;
        if targets.is_empty() {
            return Err(StepError::Blocked(format!(
                "board {} lists no [[device]] to pass through",
                self.board.name
            )));
        }
        self.artifact("pci-before-bind.txt", &vfio::render(&devs));
        let mut all: Vec<(String, PciDev)> = targets.clone();
        let refs: Vec<&PciDev> = targets.iter().map(|(_, d)| d).collect();
        if whole_group {
            for c in vfio::group_companions(&devs, &refs) {
                all.push((format!("group-member {}", c.address), c.clone()));
            }
        }
        let all_refs: Vec<&PciDev> = all.iter().map(|(_, d)| d).collect();
        vfio::check_viable(&devs, &all_refs).map_err(StepError::Blocked)?;
        let t = Duration::from_secs(self.board.linux.shell_timeout_s);
        for (name, d) in &all {
            let b = Binding {
                name: name.clone(),
                address: d.address.clone(),
                group: d.group.unwrap_or_default(),
                original_driver: d.driver.clone().filter(|x| x != "vfio-pci"),
            };
            // Recorded before the bind, so a failure half-way is still restored.
            self.bindings.push(b);
            self.save_bindings();
            let out = self.ssh()?.exec(&vfio::bind_command(&d.address), t).await?;
            if out.status != 0 {
                return Err(StepError::BindFailed(format!(
                    "binding {} ({}) to vfio-pci failed: {}",
                    d.address,
                    name,
                    out.output.trim()
                )));
            }
        }
        let after = self.pci_devices().await?;
        self.artifact("pci-after-bind.txt", &vfio::render(&after));
        // Devices no driver had claimed show their group only now.
        let bound: Vec<&PciDev> = after
            .iter()
            .filter(|d| self.bindings.iter().any(|b| b.address == d.address))
            .collect();
        vfio::check_viable(&after, &bound).map_err(StepError::Blocked)?;
        for b in self.bindings.iter_mut() {
            if let Some(d) = after.iter().find(|d| d.address == b.address) {
                b.group = d.group.unwrap_or_default();
            }
        }
        self.save_bindings();
        Ok(&self.bindings)
    }

    fn save_bindings(&self) {
        if let Ok(j) = serde_json::to_string_pretty(&self.bindings) {
            self.artifact("vfio-bindings.json", &j);
        }
    }

    /// Binds (if needed) and boots the guest.
    pub async fn start_guest(&mut self) -> Result<(), StepError> {
        if self.guest.is_some() {
            self.state = State::Guest;
            return Ok(());
        }
        let cfg = self.board.guest.clone().ok_or_else(|| {
            StepError::Blocked(format!("board {} has no [guest] section", self.board.name))
        })?;
        if self.state < State::LinuxSsh {
            self.connect_ssh().await?;
        }
        self.bind_devices(&[], false).await?;
        let t = Duration::from_secs(cfg.boot_timeout_s);
        for (remote, local) in &cfg.upload {
            let sha = self.ssh()?.upload(Path::new(local), remote, t).await?;
            self.uploaded.insert(remote.clone(), sha);
        }
        let target = self
            .ssh_target
            .clone()
            .ok_or_else(|| StepError::Harness("no ssh target".into()))?;
        let g = Guest::start(&target, &cfg, &self.bindings, &self.run_dir).await;
        let g = match g {
            Ok(g) => g,
            Err(e) => return Err(e),
        };
        self.guest = Some(g);
        self.state = State::Guest;
        Ok(())
    }

    pub fn guest_shell(&mut self) -> Result<&mut ConsoleShell, StepError> {
        self.guest
            .as_mut()
            .map(|g| &mut g.shell)
            .ok_or_else(|| StepError::Blocked("the guest is not running".into()))
    }

    pub fn guest(&mut self) -> Option<&mut Guest> {
        self.guest.as_mut()
    }

    pub fn guest_console(&self) -> Option<&Console> {
        self.guest.as_ref().map(|g| &g.console)
    }

    /// Stops the guest and puts every bound device back on its original driver. Safe to
    /// call at any point; returns what could not be restored.
    pub async fn teardown(&mut self) -> Result<(), StepError> {
        if let Some(g) = self.guest.take() {
            g.stop().await;
        }
        if self.state == State::Guest {
            self.state = State::LinuxSsh;
        }
        if self.bindings.is_empty() || self.ssh.is_none() {
            return Ok(());
        }
        let t = Duration::from_secs(self.board.linux.shell_timeout_s);
        let mut failed = Vec::new();
        for b in std::mem::take(&mut self.bindings) {
            match self.ssh()?.exec(&vfio::restore_command(&b), t).await {
                Ok(o) if o.status == 0 => {}
                Ok(o) => failed.push(format!("{}: {}", b.address, o.output.trim())),
                Err(e) => failed.push(format!("{}: {e}", b.address)),
            }
        }
        self.save_bindings();
        if let Ok(after) = self.pci_devices().await {
            self.artifact("pci-after-restore.txt", &vfio::render(&after));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(StepError::Infra(format!(
                "could not restore drivers: {}",
                failed.join("; ")
            )))
        }
    }
}

/// The boot state machine and the failure classes of its steps, on the fake board (the
/// same console broker, expect engine, console shell and ssh2 client as a real board).
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::State;
    use crate::error::StepError;
    use crate::fake_board::linux::PANIC;
    use crate::fake_board::tests::test_board;
    use crate::outcome::Outcome;
    use std::time::Duration;

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn boots_through_uboot_to_the_shell_and_ssh_and_runs_commands() {
        let tb = test_board("", |t| t);
        let mut s = tb.session();
        s.reach(State::LinuxSsh).await.unwrap();
        assert_eq!(s.facts["kernel"], "6.1.0-hil-fake");
        let o = s
            .shell()
            .unwrap()
            .run("echo hello; false", T)
            .await
            .unwrap();
        assert_eq!((o.output.as_str(), o.status), ("hello\n", 1));
        let o = s.ssh().unwrap().exec("echo over ssh", T).await.unwrap();
        assert_eq!((o.output.as_str(), o.status), ("over ssh\n", 0));
        s.power_off().await.unwrap();
        let log = tb.console_log();
        for needle in [
            "U-Boot 2023.01",
            "Bytes transferred",
            "Kernel command line: console=ttyAMA0 panic=-1",
            "hil: board ready",
            "### hil: power off",
        ] {
            assert!(log.contains(needle), "{needle:?} in {log}");
        }
    }

    #[tokio::test]
    async fn a_missing_tftp_file_is_an_infrastructure_error_naming_it() {
        let tb = test_board("", |t| t.replace("} Image.gz\"", "} Image-missing.gz\""));
        let mut s = tb.session();
        let e = s.reach(State::LinuxConsole).await.unwrap_err();
        assert_eq!(e.outcome(), Outcome::InfraError, "{e}");
        let msg = e.to_string();
        assert!(msg.contains("Image-missing.gz"), "{msg}");
        assert!(msg.contains("TFTP error: 'File not found' (1)"), "{msg}");
        s.power_off().await.unwrap();
    }

    #[tokio::test]
    async fn a_missed_autoboot_is_an_infrastructure_error_naming_the_awaited_text() {
        // The board prints another autoboot line than the board file waits for.
        let tb = test_board("autoboot_text = \"Press SPACE to abort autoboot\"", |t| {
            t.replacen("timeout_s = 5", "timeout_s = 1", 1)
        });
        let mut s = tb.session();
        let e = s.reach(State::LinuxConsole).await.unwrap_err();
        assert_eq!(e.outcome(), Outcome::InfraError, "{e}");
        assert!(
            e.to_string().contains("\"Hit any key to stop autoboot\""),
            "{e}"
        );
        s.power_off().await.unwrap();
        // The key comes too late on the first power-on only: the next boot works.
        let tb = test_board("miss_autoboot = 1", |t| {
            t.replacen("timeout_s = 5", "timeout_s = 1", 1)
        });
        let mut s = tb.session();
        let e = s.reach(State::LinuxConsole).await.unwrap_err();
        assert_eq!(e.outcome(), Outcome::InfraError, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("no prompt \"=> \"") && msg.contains("autoboot missed"),
            "{msg}"
        );
        s.power_off().await.unwrap();
        s.reach(State::LinuxConsole).await.unwrap();
        s.power_off().await.unwrap();
    }

    #[tokio::test]
    async fn a_panic_during_a_command_is_a_fail_with_the_panic_line() {
        let tb = test_board(
            r#"[[fake.command]]
match = "^crash-now$"
output = "about to crash"
action = "panic"
after_s = 0.2"#,
            |t| t,
        );
        let mut s = tb.session();
        s.reach(State::LinuxConsole).await.unwrap();
        let e = StepError::from(s.shell().unwrap().run("crash-now", T).await.unwrap_err());
        assert_eq!(e.outcome(), Outcome::Fail, "{e}");
        assert!(e.board_lost());
        let msg = e.to_string();
        assert!(
            msg.starts_with("kernel panic: ") && msg.contains(PANIC),
            "{msg}"
        );
        s.power_off().await.unwrap();
    }

    #[tokio::test]
    async fn the_console_vanishing_is_an_infrastructure_error() {
        let tb = test_board(
            r#"[[fake.command]]
match = "^unplug$"
action = "vanish""#,
            |t| t,
        );
        let mut s = tb.session();
        s.reach(State::LinuxSsh).await.unwrap();
        let e = StepError::from(s.shell().unwrap().run("unplug", T).await.unwrap_err());
        assert_eq!(e.outcome(), Outcome::InfraError, "{e}");
        assert!(e.to_string().contains("console closed"), "{e}");
        // SSH went with it.
        let e = StepError::from(s.ssh().unwrap().exec("true", T).await.unwrap_err());
        assert_eq!(e.outcome(), Outcome::InfraError, "{e}");
        s.power_off().await.unwrap();
    }
}
