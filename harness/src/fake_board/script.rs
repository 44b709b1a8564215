//! What the fake board's Linux does with a command, on the console shell and over SSH
//! alike: the board file's `[[fake.command]]` rules first, then a few built-ins, then
//! `sh -c` on this machine.
//!
//! Commands no rule answers run on the machine hil runs on, as hil's user, in the board's
//! scratch directory, with the board file's time limit; `echo`, `test`, `sleep` and files
//! in the current directory then behave as on a board. It is not a sandbox: a command that
//! names `/sys`, `/dev` (other than null, zero, random, urandom), `/proc/sys`, sysrq or a
//! power, module or mount tool is refused (exit status 126), so a suite written for a real
//! board cannot change this machine by accident; script such commands instead.

use super::BoardEvent;
use crate::config::fake::{FakeAction, FakeCommand};
use regex::Regex;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// The board file's scripted commands, with how often each has answered in this run.
pub struct Script {
    rules: Vec<(Regex, FakeCommand)>,
    used: Mutex<Vec<u32>>,
}

impl Script {
    /// Rules whose regex does not compile never match (the board file's validation has
    /// already named them).
    pub fn new(commands: &[FakeCommand]) -> Script {
        let rules: Vec<(Regex, FakeCommand)> = commands
            .iter()
            .filter_map(|c| Some((Regex::new(&c.pattern).ok()?, c.clone())))
            .collect();
        let used = Mutex::new(vec![0; rules.len()]);
        Script { rules, used }
    }

    /// The rule that answers `cmd` on power-on `boot`, counting it as used.
    pub fn answer(&self, cmd: &str, boot: u32) -> Option<FakeCommand> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        for (i, (re, rule)) in self.rules.iter().enumerate() {
            let on_this_boot = rule.boots.as_ref().is_none_or(|b| b.contains(&boot));
            let left = rule.times.is_none_or(|t| used[i] < t);
            if on_this_boot && left && re.is_match(cmd) {
                used[i] += 1;
                return Some(rule.clone());
            }
        }
        None
    }
}

/// What a command needs to run.
#[derive(Clone)]
pub struct ScriptCtx {
    pub script: Arc<Script>,
    pub boot: u32,
    pub scratch: PathBuf,
    pub kernel_release: String,
    pub timeout: Duration,
}

/// What a running command produces.
#[derive(Debug)]
pub enum Step {
    Out(Vec<u8>),
    Exit(i32),
    /// The command did something to the whole board.
    Event(BoardEvent),
}

/// A running command. Dropping it stops the command (and kills what it ran here).
pub struct Job {
    rx: mpsc::Receiver<Step>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Job {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Job {
    /// Starts `cmd`. `stdin`: what is written to it (SSH channel data; its end is EOF);
    /// `None` gives it an empty stdin.
    pub fn start(
        cmd: &str,
        ctx: &ScriptCtx,
        stdin: Option<mpsc::UnboundedReceiver<Vec<u8>>>,
    ) -> Job {
        // Small: a flood waits for its reader instead of filling memory.
        let (tx, rx) = mpsc::channel(4);
        let cmd = cmd.to_string();
        let task = match ctx.script.answer(&cmd, ctx.boot) {
            Some(rule) => tokio::spawn(scripted(rule, tx)),
            None => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Some(out) = builtin(&cmd, &ctx) {
                        let _ = tx.send(Step::Out(out.into_bytes())).await;
                        let _ = tx.send(Step::Exit(0)).await;
                        return;
                    }
                    host(&cmd, &ctx, stdin, &tx).await;
                })
            }
        };
        Job { rx, task }
    }

    /// The next step; after the last one (or for a command that hangs) never returns.
    pub async fn next(&mut self) -> Step {
        match self.rx.recv().await {
            Some(s) => s,
            None => std::future::pending().await,
        }
    }
}

/// A rule's answer: its output, `after_s` later its status or its action.
async fn scripted(rule: FakeCommand, tx: mpsc::Sender<Step>) {
    let mut line = rule.output.clone();
    if !line.is_empty() && !line.ends_with('\n') {
        line.push('\n');
    }
    if rule.action != Some(FakeAction::Flood) && !line.is_empty() {
        let _ = tx.send(Step::Out(line.clone().into_bytes())).await;
    }
    if rule.after_s > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(rule.after_s)).await;
    }
    match rule.action {
        None => {
            let _ = tx.send(Step::Exit(rule.status as i32)).await;
        }
        Some(FakeAction::Flood) => {
            // Lines in batches: the reader's pace, not the channel's, sets the rate.
            let batch = line.repeat((4096 / line.len().max(1)).max(1)).into_bytes();
            while tx.send(Step::Out(batch.clone())).await.is_ok() {}
        }
        Some(FakeAction::Hang) => std::future::pending::<()>().await,
        Some(a) => {
            if let Some(ev) = BoardEvent::of(a) {
                let _ = tx.send(Step::Event(ev)).await;
            }
            std::future::pending::<()>().await;
        }
    }
}

/// Commands hil itself types at every board, answered as the board's kernel would
/// (`dmesg -n` run here would change this machine's console log level).
fn builtin(cmd: &str, ctx: &ScriptCtx) -> Option<String> {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    match words.as_slice() {
        ["dmesg", "-n", _] => Some(String::new()),
        ["uname", "-r"] => Some(format!("{}\n", ctx.kernel_release)),
        _ => None,
    }
}

/// Why a command must not run on this machine, if it must not.
pub fn refusal(cmd: &str) -> Option<&'static str> {
    static RULES: std::sync::OnceLock<Vec<(Regex, &'static str)>> = std::sync::OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (r"(^|[^\w.])/sys(/|\b)", "it names /sys"),
            (r"(^|[^\w.])/proc/sys(rq-trigger|/|\b)", "it names /proc/sys"),
            (r"sysrq", "it names sysrq"),
            (
                r"\b(modprobe|insmod|rmmod|reboot|poweroff|shutdown|halt|mount|umount|swapoff|mkfs(\.\w+)?|ip\s+(link|addr|route)|ifconfig|sysctl)\b",
                "it runs a power, module, mount or network tool",
            ),
        ]
        .into_iter()
        .map(|(re, why)| (Regex::new(re).expect("static regex"), why))
        .collect()
    });
    if let Some((_, why)) = rules.iter().find(|(re, _)| re.is_match(cmd)) {
        return Some(why);
    }
    static DEV: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let dev = DEV.get_or_init(|| Regex::new(r"(?:^|[^\w.])/dev/([\w.+-]*)").expect("static regex"));
    let harmless = ["null", "zero", "random", "urandom", "full"];
    dev.captures_iter(cmd)
        .any(|c| !harmless.contains(&&c[1]))
        .then_some("it names a device in /dev")
}

/// Kills a command's whole process group (what it started in the background too) when
/// the command ends or is dropped.
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the process group of a child this module started.
        unsafe { libc::kill(-self.0, libc::SIGKILL) };
    }
}

/// Runs `cmd` with `sh -c` here, stdout and stderr interleaved as a terminal shows them.
async fn host(
    cmd: &str,
    ctx: &ScriptCtx,
    stdin: Option<mpsc::UnboundedReceiver<Vec<u8>>>,
    tx: &mpsc::Sender<Step>,
) {
    let fail = |msg: String, status: i32| async move {
        let _ = tx.send(Step::Out(msg.into_bytes())).await;
        let _ = tx.send(Step::Exit(status)).await;
    };
    if let Some(why) = refusal(cmd) {
        let msg = format!(
            "fake board: not run on this machine ({why}); script it with [[fake.command]]\n"
        );
        return fail(msg, 126).await;
    }
    let (read_end, write_end) = match pipe() {
        Ok(p) => p,
        Err(e) => return fail(format!("fake board: pipe: {e}\n"), 127).await,
    };
    let (out, err) = match write_end.try_clone() {
        Ok(dup) => (Stdio::from(write_end), Stdio::from(dup)),
        Err(e) => return fail(format!("fake board: pipe: {e}\n"), 127).await,
    };
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .current_dir(&ctx.scratch)
        .env("HIL_FAKE_BOOT", ctx.boot.to_string())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe; it only sets a flag on the child, so a command
    // does not outlive a hil that was killed.
    unsafe {
        c.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let spawned = c.spawn();
    // The Command holds our copies of the pipe's write end: gone, EOF means the command
    // (and whatever it left running) closed it.
    drop(c);
    let mut child = match spawned {
        Ok(ch) => ch,
        Err(e) => return fail(format!("sh: cannot start: {e}\n"), 127).await,
    };
    let _group = child.id().map(|p| Group(p as i32));
    if let (Some(mut rx), Some(mut w)) = (stdin, child.stdin.take()) {
        tokio::spawn(async move {
            while let Some(data) = rx.recv().await {
                if w.write_all(&data).await.is_err() {
                    break;
                }
            }
        });
    }
    let mut reader = match tokio::net::unix::pipe::Receiver::from_owned_fd(read_end) {
        Ok(r) => r,
        Err(e) => return fail(format!("fake board: pipe: {e}\n"), 127).await,
    };
    let deadline = tokio::time::Instant::now() + ctx.timeout;
    let mut buf = vec![0u8; 16 * 1024];
    let mut status = None;
    loop {
        tokio::select! {
            n = reader.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Step::Out(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            },
            s = child.wait(), if status.is_none() => {
                status = Some(s.ok().and_then(|s| s.code()).unwrap_or(-1));
            }
            // A shell returns when its command exits, even if something it started in
            // the background still holds the output open: what is already written is
            // taken, then it ends.
            () = tokio::time::sleep(Duration::from_millis(100)), if status.is_some() => break,
            () = tokio::time::sleep_until(deadline) => {
                let msg = format!("fake board: command killed after {} s (fake.command_timeout_s)\n", ctx.timeout.as_secs());
                return fail(msg, 124).await;
            }
        }
    }
    let status = match status {
        Some(s) => s,
        None => child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1),
    };
    let _ = tx.send(Step::Exit(status)).await;
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two fds on success; each is then owned exactly once.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_would_change_this_machine_and_allows_plain_commands() {
        for bad in [
            "echo vfio-pci > /sys/bus/pci/devices/0000:00:03.0/driver_override",
            "echo c > /proc/sysrq-trigger",
            "cat /proc/sys/kernel/printk",
            "dd if=/dev/zero of=/dev/nvme0n1 bs=1M count=1",
            "modprobe vfio-pci",
            "ip link set eth0 down",
            "reboot -f",
        ] {
            assert!(refusal(bad).is_some(), "{bad}");
        }
        for ok in [
            "echo hello",
            "test -e hil-flaky && echo second",
            "ls 2>/dev/null; cat x > /dev/null",
            "head -c 4 /dev/urandom | wc -c",
            "sleep 1",
            "cat /proc/cpuinfo",
            "echo /system/thing",
        ] {
            assert_eq!(refusal(ok), None, "{ok}");
        }
    }
}
