//! End-to-end tests on the simulated lab, through the `hil` CLI exactly as a user runs it.
//!
//! They share one sim board (its SSH port and state dir), so they run one at a time. The
//! first one provisions the lab (cached afterwards). Timeouts are generous: emulation slows
//! down when the machine is busy. Every QEMU started here is hil's child and dies with it
//! (PR_SET_PDEATHSIG); the tests also kill hil itself on failure paths.

use crate::common::*;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_BOARD: Mutex<()> = Mutex::new(());

pub fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_BOARD.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kills the child (hil) if a test fails midway; hil's QEMU dies with it.
pub struct Guard(pub Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hil-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub fn read_json(p: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", p.display()))
}

pub fn case<'a>(results: &'a serde_json::Value, board: &str, name: &str) -> &'a serde_json::Value {
    results["boards"]
        .as_array()
        .and_then(|bs| bs.iter().find(|b| b["name"] == board))
        .and_then(|b| b["cases"].as_array())
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no case {name} for {board} in {results:#}"))
}

/// Parses junit.xml with a standard JUnit consumer (python junitparser) and returns
/// "name outcome" lines, so the test checks what a CI system would read.
pub fn junit_consumer(path: &Path) -> String {
    let have = std::process::Command::new("python3")
        .args(["-c", "import junitparser"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        let st = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "junitparser"])
            .status();
        assert!(
            st.is_ok_and(|s| s.success()),
            "installing junitparser from PyPI failed"
        );
    }
    let script = r#"
import sys
from junitparser import JUnitXml, Failure, Error, Skipped
xml = JUnitXml.fromfile(sys.argv[1])
for suite in xml:
    for case in suite:
        kinds = [type(r).__name__ + ':' + (r.type or '') for r in case.result]
        out = case.system_out or ''
        print(case.name, ','.join(kinds) or 'pass', len(out))
"#;
    let o = std::process::Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "junitparser rejected {}: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Spawns `hil` with stderr lines forwarded (timestamped) through a channel.
pub fn spawn_hil(
    args: &[&str],
    env: &[(&str, &str)],
) -> (Guard, mpsc::Receiver<(Instant, String)>) {
    let mut child = hil()
        .args(args)
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn hil");
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("  | {line}");
            let _ = tx.send((Instant::now(), line));
        }
    });
    (Guard(child), rx)
}

/// `hil run SUITE --board BOARD --out OUT` with extra env; its exit code and results.json.
pub fn run_suite(
    suite: &str,
    board: &str,
    out: &Path,
    env: &[(&str, &str)],
) -> (i32, serde_json::Value) {
    let (mut g, _rx) = spawn_hil(
        &[
            "run",
            suite,
            "--board",
            board,
            "--out",
            out.to_str().unwrap(),
        ],
        env,
    );
    let code = wait_exit(&mut g, BOOT_LIMIT);
    (code, read_json(&out.join("results.json")))
}

pub fn wait_exit(g: &mut Guard, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = g.0.try_wait().expect("wait") {
            return s.code().unwrap_or(-1);
        }
        assert!(
            Instant::now() < deadline,
            "hil did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits up to `limit` for hil to exit, then returns what it printed (both pipes are
/// read meanwhile, so a chatty hil never blocks on a full pipe).
pub fn wait_output(mut g: Guard, limit: Duration) -> std::process::Output {
    let read = |p: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut b);
            }
            b
        })
    };
    let out = read(g.0.stdout.take().map(|p| Box::new(p) as _));
    let err = read(g.0.stderr.take().map(|p| Box::new(p) as _));
    wait_exit(&mut g, limit);
    std::process::Output {
        status: g.0.wait().expect("wait"),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

pub fn wait_for_file_text(p: &Path, needle: &str, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(b) = std::fs::read(p) {
            if String::from_utf8_lossy(&b).contains(needle) {
                return Instant::now();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not in {} within {limit:?}",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGKILLs the board QEMU that a hil child started and recorded in the board's run dir.
pub fn kill_board_qemu(board_dir: &Path) {
    let pid: i32 = std::fs::read_to_string(board_dir.join("qemu.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: plain kill(2) of a pid our own hil child started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
}

pub const BOOT_LIMIT: Duration = Duration::from_secs(30 * 60); // includes a cold lab build

#[test]
fn smoke_suite_passes_on_sim_rk3588() {
    let _l = lock();
    let out = out_dir("smoke");
    let (mut g, _rx) = spawn_hil(
        &["run", "suites/smoke.toml", "--out", out.to_str().unwrap()],
        &[],
    );
    // A follower attached while the run holds the board (before it boots) sees the
    // checks' output live and cannot type into the run's console.
    let socket = test_lease_dir().join(format!("sim-rk3588.{}.follow", g.0.id()));
    let end = Instant::now() + BOOT_LIMIT;
    while !socket.exists() {
        assert!(Instant::now() < end, "{} published", socket.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut follower = Attached::spawn("sim-rk3588");
    follower.wait_text("hil: board ready", BOOT_LIMIT);
    follower.type_in(b"echo typed-by-a-follower\r");
    // At a line's start: the output of the kvm check, not the echo of its command line.
    follower.wait_text("\nkvm-present", BOOT_LIMIT);
    let code = wait_exit(&mut g, BOOT_LIMIT);
    let results = read_json(&out.join("results.json"));
    assert_eq!(code, 0, "smoke exit status; results: {results:#}");
    assert_eq!(
        wait_exit(&mut follower.g, Duration::from_secs(30)),
        0,
        "the follower ends with the run"
    );
    assert_eq!(results["complete"], true);
    for name in ["boot", "arch", "kvm", "smmu-probed", "ssh-exit-status"] {
        assert_eq!(
            case(&results, "sim-rk3588", name)["outcome"],
            "pass",
            "{name}"
        );
    }
    assert_eq!(
        case(&results, "sim-rk3588", "ssh-exit-status")["figures"]["exit_status"],
        7
    );
    let props = &results["boards"][0]["properties"];
    assert!(
        props["kernel"].as_str().unwrap_or("").contains("arm64"),
        "{props}"
    );
    assert_eq!(props["console_gaps"], "0", "{props}");
    // U-Boot typed at over the console, kernel by TFTP, as on a real board
    let log = std::fs::read_to_string(out.join("boards/sim-rk3588/console.log")).unwrap();
    for needle in [
        "U-Boot 2023.01",
        "Bytes transferred",
        "Starting kernel",
        "hil: board ready",
    ] {
        assert!(log.contains(needle), "console.log has {needle:?}");
    }
    assert!(
        !log.contains("typed-by-a-follower"),
        "a follower typed into the run"
    );
    // A standard JUnit consumer reads it; each check's system-out is its transcript (the
    // console slice; for the SSH check its command and output).
    let cases = junit_consumer(&out.join("junit.xml"));
    for line in cases.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f[1], "pass", "{line}");
        assert!(f[2].parse::<usize>().unwrap() > 0, "system-out of {line}");
    }
    let xml = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        xml.contains("HIL_S_") || xml.contains("aarch64"),
        "arch case carries its console output"
    );
    assert!(std::fs::read_to_string(out.join("summary.md"))
        .unwrap()
        .contains("| ✔ | smmu-probed |"));
}

/// `hil console BOARD` with its terminal piped: what it has shown so far, and typing.
struct Attached {
    stdin: std::process::ChildStdin,
    shown: mpsc::Receiver<String>,
    g: Guard,
}

impl Attached {
    fn spawn(board: &str) -> Attached {
        let mut child = hil()
            .args(["console", board])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn hil console");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, shown) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            let mut b = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut r, &mut b) {
                buf.extend_from_slice(&b[..n]);
                let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
            }
        });
        Attached {
            stdin,
            shown,
            g: Guard(child),
        }
    }

    fn type_in(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).unwrap();
    }

    /// Everything shown so far, once it contains `needle`.
    fn wait_text(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.shown.recv_timeout(left) {
                Ok(s) if s.contains(needle) => return s,
                Ok(_) => {}
                Err(_) => panic!("{needle:?} not shown within {limit:?}"),
            }
        }
    }

    /// Ctrl-] and the exit status.
    fn quit(mut self) -> i32 {
        self.type_in(&[0x1d]);
        wait_exit(&mut self.g, Duration::from_secs(30))
    }
}

#[test]
fn live_console_shows_output_and_passes_typed_input() {
    let _l = lock();
    let mut c = Attached::spawn("sim-rk3588");
    c.wait_text("Hit any key to stop autoboot", BOOT_LIMIT);
    c.type_in(b" ");
    c.wait_text("=> ", Duration::from_secs(60));
    c.type_in(b"echo typed-through-hil\r");
    let shown = c.wait_text("\ntyped-through-hil", Duration::from_secs(60));
    assert!(shown.contains("U-Boot 2023.01"), "banner shown");
    // Ctrl-] quits and powers the sim board off
    assert_eq!(c.quit(), 0);
}

/// Takes a sim board started by `hil lab up` down again, also when a test fails midway.
struct LabDown(&'static str);
impl Drop for LabDown {
    fn drop(&mut self) {
        let _ = run(hil().args(["lab", "down", self.0]));
    }
}

/// `hil lab up --to linux` boots the sim board and leaves it running: `hil ssh` runs a
/// command on it (its output on stdout, its exit status hil's), `hil console` attaches to
/// its shell and leaves it running at Ctrl-], a run meanwhile is refused naming the
/// `lab up` holder, and `hil lab down` stops it.
#[test]
fn lab_up_to_linux_leaves_the_board_booted_for_hil_ssh_and_console() {
    let _l = lock();
    let _down = LabDown("sim-rk3588");
    let _ = run(hil().args(["lab", "down", "sim-rk3588"]));
    let mut up = hil();
    up.args(["lab", "up", "sim-rk3588", "--to", "linux"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let g = Guard(up.spawn().expect("spawn hil lab up"));
    let o = wait_output(g, BOOT_LIMIT);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(err.contains("reaching bootloader… reached in"), "{err}");
    assert!(err.contains("reaching linux… reached in"), "{err}");
    assert!(
        out.contains("sim-rk3588 is up at linux: QEMU pid "),
        "{out}"
    );

    let o = run(hil().args(["ssh", "sim-rk3588", "uname", "-m"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "aarch64\n");
    let o = run(hil().args([
        "ssh",
        "sim-rk3588",
        "sh",
        "-c",
        "echo to-stderr >&2; exit 7",
    ]));
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(stdout(&o), "to-stderr\n");

    // Someone else's run is refused while the board is up, naming the holder.
    let out_dir = out_dir("lab-up-busy");
    let o = run(hil().args([
        "run",
        "suites/smoke.toml",
        "--out",
        out_dir.to_str().unwrap(),
    ]));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let summary = std::fs::read_to_string(out_dir.join("summary.md")).unwrap_or_default();
    assert!(
        stderr(&o).contains("lab-up") || summary.contains("lab-up"),
        "holder not named: {}\n{summary}",
        stderr(&o)
    );

    // The console attaches to the running shell; Ctrl-] leaves the board up.
    let mut c = Attached::spawn("sim-rk3588");
    c.type_in(b"echo typed-$((6*7))\r");
    c.wait_text("typed-42", Duration::from_secs(60));
    assert_eq!(c.quit(), 0);
    let o = run(hil().args(["ssh", "sim-rk3588", "echo", "still-up"]));
    assert_eq!(stdout(&o), "still-up\n", "{}", stderr(&o));

    let o = run(hil().args(["lab", "down", "sim-rk3588"]));
    assert!(stdout(&o).contains("sim-rk3588 is down"), "{}", stdout(&o));
    let o = run(hil().args(["ssh", "sim-rk3588", "--timeout-s", "5", "true"]));
    assert_ne!(o.status.code(), Some(0), "ssh after lab down");
}
