//! The sim power backend: "power" is the board's QEMU process.
//!
//! QEMU starts paused (`-S`) with a QMP socket; its console is a pty that the caller opens
//! like any serial device before `on` sends QMP `cont`. A board whose `console.device` is a
//! path instead wires its serial port in `qemu.args` (a socket chardev served by a relay
//! that exposes a tty at that path); then hil adds no console of its own. The process dies with hil
//! (PR_SET_PDEATHSIG), so a crashed or killed hil never leaves a board running.

use super::PowerError;
use crate::config::board::{Board, QemuCfg};
use crate::qmp::{pty_of, Qmp, QmpError};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::net::UnixStream;
use tokio::sync::watch;

/// `v` as one value inside a QEMU option string (`key=value,key=value`): QEMU splits such a
/// string at each `,` and reads `,,` as a literal comma, so every comma is doubled. Used for
/// every value hil puts into an option string (the QMP socket, the guest's vfio-pci host
/// address, board-file placeholders in `qemu.args`).
pub fn opt_value(v: &str) -> String {
    v.replace(',', ",,")
}

/// An option string split as QEMU splits it (`,,` is a comma inside a value); for tests
/// and for checking what an argument means.
pub fn split_opts(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                out.last_mut().expect("never empty").push(',');
            } else {
                out.push(String::new());
            }
        } else {
            out.last_mut().expect("never empty").push(c);
        }
    }
    out
}

/// QEMU's arguments for a sim board (its `[qemu]` table, placeholders already expanded),
/// with the QMP socket `sock` and, when `own_console`, a pty for the serial port.
pub fn argv(cfg: &QemuCfg, sock: &std::path::Path, own_console: bool) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-M".into(),
        cfg.machine.clone(),
        "-cpu".into(),
        cfg.cpu.clone(),
        "-smp".into(),
        cfg.smp.to_string(),
        "-m".into(),
        cfg.memory_mb.to_string(),
    ];
    if let Some(bios) = &cfg.bios {
        args.extend(["-bios".into(), bios.clone()]);
    }
    args.extend(cfg.args.iter().cloned());
    args.extend([
        "-S".into(),
        "-qmp".into(),
        format!(
            "unix:{},server=on,wait=off",
            opt_value(&sock.display().to_string())
        ),
        "-display".into(),
        "none".into(),
        "-monitor".into(),
        "none".into(),
    ]);
    if own_console {
        args.extend([
            "-chardev".into(),
            "pty,id=con0".into(),
            "-serial".into(),
            "chardev:con0".into(),
        ]);
    }
    args
}

/// Connects to the QMP socket at `sock` only when [`crate::runtime::check_socket`] finds
/// it is this user's, in a directory nobody else can write to.
pub async fn open_qmp(
    sock: &std::path::Path,
    limit: Duration,
) -> Result<Qmp<UnixStream>, QmpError> {
    crate::runtime::check_socket(sock)
        .map_err(|e| QmpError::Io(std::io::Error::new(std::io::ErrorKind::PermissionDenied, e)))?;
    Qmp::connect_unix(sock, limit).await
}

pub struct QemuPower {
    name: String,
    cfg: Option<QemuCfg>,
    run_dir: PathBuf,
    qmp: Option<Qmp<UnixStream>>,
    /// `console.device = "qemu"`: hil gives the serial port a pty (else qemu.args wire it).
    own_console: bool,
    pid: Option<u32>,
    /// `Some(status)` once the current QEMU process has exited.
    exited: Option<watch::Receiver<Option<String>>>,
    /// `hil lab up`: QEMU outlives hil, in its own session, its QMP socket in `run_dir`.
    detached: bool,
    /// The console pty the current QEMU made (`console.device = "qemu"`).
    pty: Option<String>,
}

impl QemuPower {
    pub fn new(board: &Board, run_dir: PathBuf) -> QemuPower {
        QemuPower {
            name: board.name.clone(),
            cfg: board.qemu.clone(),
            run_dir,
            qmp: None,
            own_console: board.console.device == "qemu",
            pid: None,
            exited: None,
            detached: false,
            pty: None,
        }
    }

    pub fn new_detached(board: &Board, run_dir: PathBuf) -> QemuPower {
        QemuPower {
            detached: true,
            ..QemuPower::new(board, run_dir)
        }
    }

    /// Where this QEMU's QMP socket is. `hil lab up` (detached): in the board's state dir
    /// under hil's cache, as the QEMU outlives this process. Otherwise in this process's
    /// private runtime dir ([`crate::runtime`]), never a fixed name in a shared directory.
    pub fn qmp_path(&self) -> Result<PathBuf, PowerError> {
        if self.detached {
            return Ok(self.run_dir.join("qmp.sock"));
        }
        crate::runtime::socket_path(&format!("qmp-{}", self.name))
            .map_err(|e| PowerError::Failed(e.to_string()))
    }

    /// Starts QEMU paused; returns the console pty it made, or `None` when the board's
    /// `console.device` is a path that qemu.args feed.
    pub async fn arm(&mut self) -> Result<Option<String>, PowerError> {
        self.off().await?;
        let cfg = self
            .cfg
            .clone()
            .ok_or_else(|| PowerError::Failed("no [qemu] table".into()))?;
        std::fs::create_dir_all(&self.run_dir)
            .map_err(|e| PowerError::Failed(format!("{}: {e}", self.run_dir.display())))?;
        let sock = self.qmp_path()?;
        if self.detached {
            // The board's state dir must be one nobody else can write to: else a socket
            // of theirs could be put where QEMU's is looked for.
            crate::runtime::check_not_shared(&self.run_dir).map_err(PowerError::Failed)?;
        }
        let _ = std::fs::remove_file(&sock);
        let args = argv(&cfg, &sock, self.own_console);
        let log_path = self.run_dir.join("qemu.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| PowerError::Failed(format!("{}: {e}", log_path.display())))?;
        {
            use std::io::Write;
            let mut l = &log;
            let _ = writeln!(l, "$ {} {}", cfg.binary, shell_words::join(&args));
        }
        let mut cmd = tokio::process::Command::new(&cfg.binary);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(|e| PowerError::Failed(e.to_string()))?,
            )
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; it only sets a flag on the child.
        let detached = self.detached;
        unsafe {
            cmd.pre_exec(move || {
                if detached {
                    libc::setsid();
                } else {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| PowerError::Failed(format!("cannot start {}: {e}", cfg.binary)))?;
        let pid = child.id().unwrap_or(0);
        self.pid = Some(pid);
        let _ = std::fs::write(self.run_dir.join("qemu.pid"), format!("{pid}\n"));
        let (tx, rx) = watch::channel(None);
        self.exited = Some(rx);
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            let _ = tx.send(Some(status));
        });

        match self.await_qmp(&sock, &log_path, &cfg).await {
            Ok(pty) => {
                self.pty = pty.clone();
                Ok(pty)
            }
            Err(e) => {
                // Whatever runs there is no usable board: do not leave it behind.
                let _ = self.off().await;
                Err(e)
            }
        }
    }

    /// Connects to the new QEMU's QMP socket and asks for the console pty, all within
    /// `start_timeout_s` of the start: a QEMU (or anything else on that socket) that
    /// accepts and never answers is lab trouble, reported as such within that limit.
    async fn await_qmp(
        &mut self,
        sock: &std::path::Path,
        log_path: &std::path::Path,
        cfg: &QemuCfg,
    ) -> Result<Option<String>, PowerError> {
        let limit = Duration::from_secs(cfg.start_timeout_s);
        let deadline = crate::config::limits::deadline_after(limit);
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        // QMP appears once QEMU has parsed its arguments; an early exit means bad args.
        let mut last_err = String::from("no QMP socket yet");
        let mut qmp = loop {
            if let Some(status) = self.exit_status() {
                let tail = std::fs::read_to_string(log_path).unwrap_or_default();
                let tail: String = tail
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join(" | ");
                return Err(PowerError::QemuExited(format!("{status} at start: {tail}")));
            }
            if sock.exists() {
                match open_qmp(sock, left()).await {
                    Ok(q) => break q,
                    // Connected, and then nothing: waiting longer will not help.
                    Err(QmpError::NoGreeting(_)) => {
                        return Err(PowerError::Failed(format!(
                            "QEMU's QMP socket {} accepted the connection but sent no greeting within {} s (qemu.start_timeout_s)",
                            sock.display(),
                            cfg.start_timeout_s
                        )))
                    }
                    Err(e) => last_err = e.to_string(),
                }
            }
            if left().is_zero() {
                return Err(PowerError::Failed(format!(
                    "QEMU did not answer on its QMP socket within {} s (qemu.start_timeout_s): {last_err}",
                    cfg.start_timeout_s
                )));
            }
            tokio::time::sleep(Duration::from_millis(50).min(left())).await;
        };
        if !self.own_console {
            self.qmp = Some(qmp);
            return Ok(None);
        }
        let chardevs = qmp
            .execute_timeout("query-chardev", None, left())
            .await
            .map_err(|e| {
                PowerError::Failed(format!(
                    "QEMU start (qemu.start_timeout_s = {}): {e}",
                    cfg.start_timeout_s
                ))
            })?;
        let pty = pty_of(&chardevs, "con0")
            .ok_or_else(|| PowerError::Failed(format!("no pty in query-chardev: {chardevs}")))?;
        self.qmp = Some(qmp);
        Ok(Some(pty))
    }

    /// Limit for one QMP command: the board file's `start_timeout_s` (QMP answers at once
    /// when QEMU is well; a QEMU that does not answer within its start limit is hung).
    fn qmp_limit(&self) -> Duration {
        Duration::from_secs(self.cfg.as_ref().map_or(30, |c| c.start_timeout_s))
    }

    pub async fn on(&mut self) -> Result<(), PowerError> {
        let t = self.qmp_limit();
        let qmp = self
            .qmp
            .as_mut()
            .ok_or_else(|| PowerError::Failed("on before arm".into()))?;
        qmp.execute_timeout("cont", None, t)
            .await
            .map_err(|e| PowerError::Failed(e.to_string()))?;
        Ok(())
    }

    /// A hard reset of the running machine (QMP `system_reset`): the sim's power cycle,
    /// which keeps the process and so its console pty.
    pub async fn reset(&mut self) -> Result<(), PowerError> {
        let qmp = self
            .qmp
            .as_mut()
            .ok_or_else(|| PowerError::Failed("reset before arm".into()))?;
        qmp.execute_timeout("system_reset", None, Duration::from_secs(10))
            .await
            .map_err(|e| PowerError::Failed(e.to_string()))?;
        Ok(())
    }

    /// Stops QEMU: QMP `quit` (or SIGTERM when there is no QMP connection), then SIGKILL if
    /// it lingers.
    pub async fn off(&mut self) -> Result<(), PowerError> {
        let t = self.qmp_limit();
        let Some(pid) = self.pid.take() else {
            return Ok(());
        };
        let quit_sent = match self.qmp.take() {
            Some(mut q) => q.execute_timeout("quit", None, t).await.is_ok(),
            None => false,
        };
        if let Some(mut rx) = self.exited.clone() {
            if !quit_sent && rx.borrow().is_none() {
                // SAFETY: signalling the process we started; it has not been reaped yet
                // (the watcher has not reported its exit), so the pid is still ours.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            let exited = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| s.is_some()))
                .await
                .is_ok();
            if !exited {
                // SAFETY: as above: not reaped yet, so still our QEMU.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| s.is_some()))
                    .await;
            }
        }
        if let Ok(p) = self.qmp_path() {
            let _ = std::fs::remove_file(p);
        }
        self.exited = None;
        Ok(())
    }

    fn exit_status(&self) -> Option<String> {
        self.exited.as_ref().and_then(|rx| rx.borrow().clone())
    }

    /// A watch that turns `Some` when QEMU exits; for racing against running steps.
    pub fn exit_watch(&self) -> Option<watch::Receiver<Option<String>>> {
        self.exited.clone()
    }

    pub async fn died(&mut self) -> String {
        match self.exited.clone() {
            Some(mut rx) => match rx.wait_for(|s| s.is_some()).await {
                Ok(s) => s.clone().unwrap_or_default(),
                Err(_) => "QEMU watcher ended".into(),
            },
            None => std::future::pending().await,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The console pty of the running QEMU, when hil made one.
    pub fn pty(&self) -> Option<&str> {
        self.pid.and(self.pty.as_deref())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;
    use crate::config::expand;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn commas_are_doubled_and_split_back() {
        assert_eq!(opt_value("a,b"), "a,,b");
        assert_eq!(opt_value("a,,b,"), "a,,,,b,,");
        let s = format!("file={},format=raw", opt_value("/x/a,b,format=qcow2"));
        assert_eq!(
            split_opts(&s),
            vec!["file=/x/a,b,format=qcow2", "format=raw"]
        );
    }

    /// The sim board file of the repo, its placeholders given values that hold commas,
    /// then the argv hil starts QEMU with: each option string keeps the options the board
    /// file wrote and no more, and the values hold the commas whole.
    #[test]
    fn a_comma_in_a_board_placeholder_adds_no_qemu_sub_option_to_the_argv() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../boards/sim-rk3588.toml");
        let board = crate::config::Board::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut vars = expand::Vars::new();
        for k in ["images", "board_dir", "cache", "run_dir", "build"] {
            vars.insert(k, format!("/h/{k},id=evil,x"));
        }
        let b = board
            .expanded(&path, &vars)
            .unwrap_or_else(|e| panic!("{e}"));
        let sock = std::path::Path::new("/run/user/1/hil-a,b/qmp.sock");
        let args = argv(b.qemu.as_ref().unwrap(), sock, true);
        let template = board.qemu.as_ref().unwrap();
        let mut checked = 0;
        for (i, t) in template.args.iter().enumerate() {
            if expand::placeholders(t).is_empty() || !t.contains('=') {
                continue;
            }
            assert!(args.contains(&b.qemu.as_ref().unwrap().args[i]), "{args:?}");
            let want_keys: Vec<String> = split_opts(t)
                .iter()
                .map(|o| o.split('=').next().unwrap().to_string())
                .collect();
            let got = split_opts(&b.qemu.as_ref().unwrap().args[i]);
            let got_keys: Vec<String> = got
                .iter()
                .map(|o| o.split('=').next().unwrap().to_string())
                .collect();
            assert_eq!(got_keys, want_keys, "qemu.args[{i}] = {t}: {got:?}");
            assert!(got.iter().any(|o| o.contains(",id=evil,x")), "{got:?}");
            checked += 1;
        }
        assert!(
            checked >= 2,
            "the board file has option strings with placeholders"
        );
        let qmp = &args[args.iter().position(|a| a == "-qmp").unwrap() + 1];
        assert_eq!(
            split_opts(qmp),
            vec!["unix:/run/user/1/hil-a,b/qmp.sock", "server=on", "wait=off"]
        );
    }

    /// A fake QMP server on `path`, run by a thread: greets, answers every command with
    /// `{"return": {}}`; counts the connections it accepted.
    fn fake_qmp(path: &std::path::Path) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
        use std::io::{BufRead, Write};
        let l = std::os::unix::net::UnixListener::bind(path).unwrap();
        let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = n.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { return };
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = c.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n");
                let r = std::io::BufReader::new(c.try_clone().unwrap());
                for line in r.lines() {
                    if line.is_err() {
                        break;
                    }
                    let _ = c.write_all(b"{\"return\": {}}\r\n");
                }
            }
        });
        n
    }

    /// Another local user (played by this test) binds the QMP socket name hil used to use
    /// (a fixed name under /tmp) and plants one in a directory everybody may write to:
    /// hil's socket is elsewhere, in a private directory, and hil connects to neither.
    #[tokio::test]
    async fn a_planted_qmp_socket_is_not_opened() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../boards/sim-rk3588.toml");
        let board = crate::config::Board::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let t = tempfile::tempdir().unwrap();
        let q = QemuPower::new(&board, t.path().join("run"));
        let ours = q.qmp_path().unwrap();
        let old =
            std::env::temp_dir().join(format!("hil-{}-{}.qmp", std::process::id(), board.name));
        assert_ne!(ours, old);
        crate::runtime::check_private(ours.parent().unwrap()).unwrap();
        assert!(ours.as_os_str().len() <= crate::runtime::SOCKET_PATH_MAX);

        // The old fixed name, pre-bound with a QMP server that would answer.
        let _ = std::fs::remove_file(&old);
        let old_seen = fake_qmp(&old);
        // A guessed place in a shared (sticky, world-writable) directory, like /tmp.
        let shared = t.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let planted = shared.join("qmp.sock");
        let planted_seen = fake_qmp(&planted);
        let limit = Duration::from_secs(2);
        for p in [&old, &planted] {
            let e = open_qmp(p, limit).await.err().unwrap().to_string();
            assert!(e.contains("not private"), "{}: {e}", p.display());
        }
        // The same server in a private directory is opened: the refusal above is about
        // where the socket is, not a fake server that never works.
        let private = t.path().join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let good = private.join("qmp.sock");
        let good_seen = fake_qmp(&good);
        open_qmp(&good, limit).await.unwrap();
        assert_eq!(good_seen.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(
            old_seen.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "old name opened"
        );
        assert_eq!(
            planted_seen.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "planted socket opened"
        );
        let _ = std::fs::remove_file(&old);
    }
}
