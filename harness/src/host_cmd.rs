//! Commands run on the lab host from board and suite files (relay and PDU power, stimulus
//! relays, the bisect build hook): `sh -c` with a time limit. The command text is the lab's
//! own, like a Makefile recipe; nothing a DUT prints is ever substituted into it.
//!
//! Each command runs in a process group of its own, and a command past its limit (or whose
//! caller gave up on it) is ended as a whole group: killing only `sh` would leave whatever
//! it started (a `relay-ctl` stuck on a USB device, a `make -j` of a kernel) running on the
//! lab host, holding the device or the CPU for the next job.

use std::io;
use std::process::ExitStatus;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Between SIGTERM to the group and SIGKILL: long enough for a well-behaved tool to release a
/// device, short enough not to hold up the run.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// What a command printed on each stream is kept up to this much (the end of it, where an
/// error message is); the rest is read and dropped so the command never blocks on a pipe.
const KEEP_OUTPUT: usize = 64 * 1024;

/// A child process leading its own process group (`setpgid(0, 0)` in the child), so the
/// group id is its pid. Dropped while the command still runs, the whole group is ended
/// (SIGTERM, then SIGKILL after [`KILL_GRACE`]) and the leader reaped.
pub struct GroupChild {
    child: Option<tokio::process::Child>,
    pgid: i32,
}

#[derive(Debug)]
pub enum WaitError {
    /// The limit passed; the group was killed.
    Timeout,
    Io(io::Error),
}

impl GroupChild {
    /// Spawns `cmd` as the leader of a new process group.
    pub fn spawn(cmd: &mut tokio::process::Command) -> io::Result<GroupChild> {
        cmd.process_group(0);
        let child = cmd.spawn()?;
        let pgid = child
            .id()
            .ok_or_else(|| io::Error::other("child exited before its pid was read"))?
            as i32;
        Ok(GroupChild {
            child: Some(child),
            pgid,
        })
    }

    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    pub fn child_mut(&mut self) -> &mut tokio::process::Child {
        self.child.as_mut().expect("child present until drop")
    }

    /// Waits for the leader to exit within `timeout`; past it the group is killed
    /// ([`GroupChild::kill_group`]) and `Timeout` returned.
    pub async fn wait(&mut self, timeout: Duration) -> Result<ExitStatus, WaitError> {
        let r = tokio::time::timeout(timeout, self.child_mut().wait()).await;
        match r {
            Ok(Ok(st)) => Ok(st),
            Ok(Err(e)) => Err(WaitError::Io(e)),
            Err(_) => {
                self.kill_group().await;
                Err(WaitError::Timeout)
            }
        }
    }

    /// SIGTERM to the whole group, SIGKILL to what is left after [`KILL_GRACE`], and the
    /// leader reaped. The leader is reaped only after the signals (or once the group is
    /// empty), so the group id cannot have been reused by then.
    pub async fn kill_group(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        kill_group_of(self.pgid, child).await;
    }
}

async fn kill_group_of(pgid: i32, child: &mut tokio::process::Child) {
    // SAFETY: killpg(2) of the group this GroupChild created; its leader is not reaped
    // before the signals are sent (or is, only once the group has no member left).
    unsafe { libc::killpg(pgid, libc::SIGTERM) };
    let deadline = tokio::time::Instant::now() + KILL_GRACE;
    loop {
        let leader_gone = matches!(child.try_wait(), Ok(Some(_)));
        if leader_gone && !group_alive(pgid) {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SAFETY: as above; what ignored SIGTERM is killed.
    unsafe { libc::killpg(pgid, libc::SIGKILL) };
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The leader may be done while what it left behind still runs in the group.
        if matches!(child.try_wait(), Ok(Some(_))) && !group_alive(self.pgid) {
            return;
        }
        let pgid = self.pgid;
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move { kill_group_of(pgid, &mut child).await });
            }
            Err(_) => {
                // No runtime to wait in: no grace either.
                // SAFETY: killpg(2) of our own group, leader not reaped yet.
                unsafe { libc::killpg(pgid, libc::SIGKILL) };
                let _ = child.start_kill();
            }
        }
    }
}

/// Whether any process of group `pgid` still runs (zombies do not count: a killed member
/// whose parent died is reparented to pid 1, and not every pid 1 reaps; this machine's
/// does not, so `killpg(pgid, 0)` would succeed forever).
pub fn group_alive(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        // SAFETY: signal 0 only checks whether the group has members.
        return unsafe { libc::killpg(pgid, 0) } == 0;
    };
    dir.flatten().any(|e| {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let f: Vec<&str> = rest.split_whitespace().take(3).collect();
        f.len() == 3 && f[2] == pgid.to_string() && !matches!(f[0], "Z" | "X")
    })
}

/// Reads a pipe to its end, keeping the last [`KEEP_OUTPUT`] bytes.
async fn drain(mut r: impl tokio::io::AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * KEEP_OUTPUT {
                    kept.drain(..kept.len() - KEEP_OUTPUT);
                }
            }
        }
    }
}

/// Runs `cmd`; the error names `label` (e.g. "power on command") and says what happened.
/// The command is done when `sh` has exited and its output pipes are closed (nothing it
/// started still writes to them), all within `timeout`.
pub async fn run_sh(label: &str, cmd: &str, timeout: Duration) -> Result<(), String> {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = GroupChild::spawn(&mut c).map_err(|e| format!("{label} `{cmd}`: {e}"))?;
    let out = child.child_mut().stdout.take().map(drain);
    let err = child.child_mut().stderr.take().map(drain);
    let done = async {
        let (st, _out, err) = tokio::join!(
            child.child_mut().wait(),
            async {
                match out {
                    Some(f) => f.await,
                    None => Vec::new(),
                }
            },
            async {
                match err {
                    Some(f) => f.await,
                    None => Vec::new(),
                }
            }
        );
        (st, err)
    };
    let r = tokio::time::timeout(timeout, done).await;
    match r {
        Err(_) => {
            child.kill_group().await;
            Err(format!(
                "{label} `{cmd}` did not finish within {} s (its process group was killed)",
                timeout.as_secs()
            ))
        }
        Ok((Err(e), _)) => Err(format!("{label} `{cmd}`: {e}")),
        Ok((Ok(st), err)) if !st.success() => Err(format!(
            "{label} `{cmd}` failed ({st}): {}",
            String::from_utf8_lossy(&err).trim()
        )),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Alive and not a zombie: a killed process whose new parent has not reaped it yet is
    /// gone for every purpose that matters here.
    fn alive(pid: i32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            return false;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z") | Some("X") | None)
    }

    fn read_pid(p: &Path) -> i32 {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(s) = std::fs::read_to_string(p) {
                if let Ok(pid) = s.trim().parse() {
                    return pid;
                }
            }
            assert!(std::time::Instant::now() < deadline, "no pid in {p:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn gone_soon(pid: i32) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            if !alive(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let cmd = format!(
            "sleep 1000 & echo $! > {}; sleep 1000",
            shell_words::quote(pidfile.to_str().unwrap())
        );
        let t = std::time::Instant::now();
        let e = run_sh("stimulus command", &cmd, Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(e.contains("did not finish within"), "{e}");
        // sleep dies of SIGTERM at once: no wait for the grace period.
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let pid = read_pid(&pidfile);
        assert!(
            gone_soon(pid),
            "grandchild {pid} still runs after the timeout"
        );
    }

    #[tokio::test]
    async fn sigterm_ignored_gets_sigkill_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let cmd = format!(
            "sh -c 'trap \"\" TERM; echo $$ > {}; while :; do sleep 0.05; done' & wait",
            pidfile.to_str().unwrap()
        );
        let t = std::time::Instant::now();
        let e = run_sh("power on command", &cmd, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(e.contains("did not finish within"), "{e}");
        let took = t.elapsed();
        assert!(
            took >= KILL_GRACE && took < KILL_GRACE + Duration::from_secs(3),
            "{took:?}"
        );
        let pid = read_pid(&pidfile);
        assert!(gone_soon(pid), "TERM-ignoring {pid} survived SIGKILL");
    }

    #[tokio::test]
    async fn dropping_a_running_group_child_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(format!(
            "sleep 1000 & echo $! > {}; sleep 1000",
            pidfile.to_str().unwrap()
        ));
        let g = GroupChild::spawn(&mut c).unwrap();
        let pid = read_pid(&pidfile);
        assert!(alive(pid));
        drop(g);
        // The kill runs on the runtime; give it the time it needs.
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while alive(pid) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(pid), "grandchild {pid} survived the drop");
    }

    #[tokio::test]
    async fn failures_carry_stderr_and_success_is_ok() {
        assert!(run_sh("x", "true", Duration::from_secs(5)).await.is_ok());
        let e = run_sh("x", "echo relay stuck >&2; exit 3", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            e.contains("relay stuck") && e.contains("exit status: 3"),
            "{e}"
        );
        // A lot of output never blocks the command on a full pipe.
        assert!(run_sh(
            "x",
            "head -c 3000000 /dev/zero; head -c 3000000 /dev/zero >&2",
            Duration::from_secs(10)
        )
        .await
        .is_ok());
    }
}
