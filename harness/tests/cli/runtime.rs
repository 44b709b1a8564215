//! Files and processes of other users on a shared lab host: a stale `hil lab up` pid file
//! names a process hil did not start, and an SSH command that times out keeps its partial
//! output in `ssh.log`. No QEMU is started.

use crate::common::*;
use crate::fake_board::{Fake, BOARD};
use std::time::{Duration, Instant};

/// Kills and reaps the test's own child on every exit path.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `hil lab down` with a planted state file whose pid is a `sleep` this test started:
/// in the old format (pid only) and with a start time that is not the sleep's. hil says
/// the pid file was stale, signals nothing, and the sleep still runs.
#[test]
fn lab_down_does_not_kill_an_unrelated_process_named_by_a_stale_pid_file() {
    let cache = tempfile::tempdir().unwrap();
    let leases = tempfile::tempdir().unwrap();
    let mut sleep = Child(
        std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap(),
    );
    let pid = sleep.0.id();
    let dir = cache.path().join("boards/sim-rk3588");
    std::fs::create_dir_all(&dir).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start = hil::runtime::stat_start_time(&stat).unwrap();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let states = [
        serde_json::json!({"pid": pid, "pty": "/dev/pts/99", "qmp": dir.join("qmp.sock")}),
        serde_json::json!({"pid": pid, "pty": "/dev/pts/99", "qmp": dir.join("qmp.sock"),
            "process": {"pid": pid, "start_time": start + 1, "exe": exe}}),
    ];
    for st in states {
        std::fs::write(dir.join("lab-up.json"), st.to_string()).unwrap();
        let o = run(hil()
            .args(["lab", "down", "sim-rk3588"])
            .env("HIL_CACHE", cache.path())
            .env("HIL_LEASE_DIR", leases.path()));
        let out = stdout(&o);
        assert!(o.status.success(), "{out}{}", stderr(&o));
        assert!(out.contains("was stale"), "{out}");
        assert!(out.contains("nothing was signalled"), "{out}");
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            sleep.0.try_wait().unwrap().is_none(),
            "the sleep was killed"
        );
        assert!(!dir.join("lab-up.json").exists(), "stale state removed");
    }
    sleep.0.kill().unwrap();
    sleep.0.wait().unwrap();
}

/// An SSH check whose command prints a line and then hangs: at its time-out the line is
/// already in ssh.log (written as it arrived), followed by the time-out marker.
#[test]
fn an_ssh_command_that_times_out_leaves_its_partial_output_in_ssh_log() {
    let fake = Fake::new(|t| {
        t.replace(
            "[[fake.command]]\nmatch = \"^crash-now\"",
            "[[fake.command]]\nmatch = \"^partial-then-hang$\"\noutput = \"hil-partial-line-1\\nhil-partial-line-2\"\naction = \"hang\"\n\n[[fake.command]]\nmatch = \"^crash-now\"",
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("partial.toml");
    std::fs::write(
        &s,
        "name = \"partial\"\n[defaults]\ntimeout_s = 30\nvia = \"ssh\"\n\n[[check]]\nname = \"hangs\"\nkind = \"shell\"\ncommand = \"partial-then-hang\"\ntimeout_s = 3\n",
    )
    .unwrap();
    let out = fake.out("partial");
    let t = Instant::now();
    let (code, r) = fake.run(s.to_str().unwrap(), &out);
    assert_eq!(code, 1, "{r:#}");
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    let hangs = crate::sim::case(&r, BOARD, "hangs");
    assert_eq!(hangs["outcome"], "fail", "{hangs}");
    let log = std::fs::read_to_string(out.join("boards/fake-board/ssh.log")).unwrap();
    let cmd = log.find("$ partial-then-hang").expect("command logged");
    let rest = &log[cmd..];
    let l1 = rest
        .find("hil-partial-line-1\n")
        .unwrap_or_else(|| panic!("{log}"));
    let l2 = rest
        .find("hil-partial-line-2")
        .unwrap_or_else(|| panic!("{log}"));
    let timeout = rest
        .find("[timeout after 3 s")
        .unwrap_or_else(|| panic!("{log}"));
    assert!(l1 < l2 && l2 < timeout, "{log}");
}
