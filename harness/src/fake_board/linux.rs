//! The fake board's Linux on the console: kernel lines, the ready line, a shell prompt,
//! then commands typed at the shell, hil's marker protocol (`echo HIL''_S_n; eval
//! '<cmd>'; echo HIL''_E_n_$?`, see shell.rs) answered with the command's exit status.
//!
//! Ctrl-C stops the running command as a tty's SIGINT would (the rest of its line is not
//! run, so no end marker). Board events (a scripted panic, vanish, freeze or reset, from
//! the console or from an SSH command) end this phase.

use super::line::{Editor, Key};
use super::script::{Job, Step};
use super::ssh::{Keys, Server};
use super::{BoardEvent, Con, LinuxEnd, PowerOn};
use regex::Regex;
use std::io;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The line a panic prints; hil's death patterns look for `Kernel panic - not syncing`.
pub const PANIC: &str = "Kernel panic - not syncing: hil fake board: scripted panic";

/// Kernel log timestamps, seconds since the kernel started.
struct Clock(Instant);

impl Clock {
    fn line(&self, text: &str) -> String {
        let t = self.0.elapsed();
        format!("[{:5}.{:06}] {text}\n", t.as_secs(), t.subsec_micros())
    }
}

/// Boots Linux (U-Boot handed over with `bootargs`) and runs its shell until a board event
/// ends it. Panic and freeze never return: the board is dead until powered off.
pub async fn run(
    con: &mut Con,
    on: &Arc<PowerOn>,
    bootargs: &str,
    keys: Option<&Keys>,
    events: &mut mpsc::UnboundedReceiver<BoardEvent>,
    events_tx: &mpsc::UnboundedSender<BoardEvent>,
) -> io::Result<LinuxEnd> {
    let spec = &on.spec;
    let clock = Clock(Instant::now());
    let mut boot = String::new();
    for l in [
        "Booting Linux on physical CPU 0x0000000000 [0x000f0510]".to_string(),
        format!(
            "Linux version {} (hil@fake-board) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP",
            spec.kernel_release
        ),
        format!("Machine model: hil fake board ({})", spec.name),
        format!("Kernel command line: {bootargs}"),
    ] {
        boot.push_str(&clock.line(&l));
    }
    con.say(&boot).await?;
    tokio::time::sleep(spec.boot_delay).await;
    let mut sshd = None;
    if let (Some(s), Some(k)) = (&spec.ssh, keys) {
        match Server::start(s, k, on.script_ctx(), events_tx.clone()).await {
            Ok(srv) => sshd = Some(srv),
            Err(e) => {
                con.say(&clock.line(&format!(
                    "dropbear: cannot listen on 127.0.0.1:{}: {e}",
                    s.port
                )))
                .await?
            }
        }
    }
    con.say(&clock.line("Run /init as init process")).await?;
    if let Some(r) = &spec.ready_line {
        con.say(&format!("{r}\n")).await?;
    }
    let prompt = spec.shell_prompt.as_bytes();
    con.raw(prompt).await?;

    let ctx = on.script_ctx();
    let marker = Regex::new(r"^echo HIL''_S_(\d+); eval (.*); echo HIL''_E_(\d+)_\$\?$")
        .expect("static regex");
    let mut editor = Editor::default();
    // The running command and, for a marker line, its sequence number.
    let mut job: Option<(Job, Option<String>)> = None;
    let event = loop {
        if job.is_none() {
            if let Some(key) = editor.keys.pop_front() {
                match key {
                    Key::Interrupt => {
                        con.say("\n").await?;
                        con.raw(prompt).await?;
                    }
                    Key::Line(l) if l.trim().is_empty() => con.raw(prompt).await?,
                    Key::Line(l) => {
                        let m = marker.captures(&l).and_then(|c| {
                            let words = shell_words::split(&c[2]).ok()?;
                            (c[1] == c[3] && words.len() == 1)
                                .then(|| (c[1].to_string(), words[0].clone()))
                        });
                        match m {
                            Some((n, cmd)) => {
                                con.say(&format!("HIL_S_{n}\n")).await?;
                                job = Some((Job::start(&cmd, &ctx, None), Some(n)));
                            }
                            None => job = Some((Job::start(&l, &ctx, None), None)),
                        }
                    }
                }
                continue;
            }
        }
        tokio::select! {
            data = con.read() => {
                let echo = editor.feed(&data?);
                con.raw(&echo).await?;
                if job.is_some() && editor.keys.contains(&Key::Interrupt) {
                    // SIGINT: the command dies, and the tty drops what was typed ahead.
                    job = None;
                    editor.reset();
                    con.say("\n").await?;
                    con.raw(prompt).await?;
                }
            }
            step = async {
                match job.as_mut() {
                    Some((j, _)) => j.next().await,
                    None => std::future::pending().await,
                }
            } => match step {
                Step::Out(b) => con.say_bytes(&b).await?,
                Step::Exit(status) => {
                    if let Some((_, Some(n))) = job.take() {
                        con.say(&format!("HIL_E_{n}_{status}\n")).await?;
                    }
                    con.raw(prompt).await?;
                }
                Step::Event(ev) => break ev,
            },
            ev = events.recv() => match ev {
                Some(ev) => break ev,
                None => return Err(io::Error::other("board event channel closed")),
            },
            _ = async {
                match sshd.as_mut() {
                    Some(s) => s.accept().await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    };
    drop(job);
    match event {
        BoardEvent::Panic | BoardEvent::Freeze => {
            if event == BoardEvent::Panic {
                let text = [
                    PANIC.to_string(),
                    format!(
                        "CPU: 0 PID: 1 Comm: sh Not tainted {} #1",
                        spec.kernel_release
                    ),
                    format!("---[ end {PANIC} ]---"),
                ]
                .iter()
                .map(|l| clock.line(l))
                .collect::<String>();
                con.say(&text).await?;
            }
            // Open connections stay open but nothing answers, as with a board that died;
            // new ones are refused.
            if let Some(s) = sshd.as_mut() {
                s.freeze();
            }
            match con.dead().await {}
        }
        BoardEvent::Vanish => Ok(LinuxEnd::Vanish),
        BoardEvent::Reset => Ok(LinuxEnd::Reset),
    }
}
