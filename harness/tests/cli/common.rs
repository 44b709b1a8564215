//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root: `hil` is run from there, as a user would.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

pub fn hil() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hil"));
    c.current_dir(repo());
    c.env_remove("RUST_BACKTRACE");
    // A developer's lab database or host name would make the tests share leases with
    // real runs; a test that wants them sets its own.
    c.env_remove("HIL_DATABASE_URL");
    c.env_remove("HIL_HOST");
    // Board leases of this test process, apart from a developer's real runs (a test may
    // set its own HIL_LEASE_DIR).
    c.env("HIL_LEASE_DIR", test_lease_dir());
    c
}

pub fn test_lease_dir() -> PathBuf {
    std::env::temp_dir().join(format!("hil-test-leases-{}", std::process::id()))
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("hil runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs headless chromium with `args` (after the fixed flags); its stdout and stderr. A
/// browser still running after a minute is killed by its pid.
pub fn run_chromium(chromium: &Path, profile: &Path, args: &[&str]) -> (String, String) {
    use std::io::Read;
    let mut child = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let t = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > std::time::Duration::from_secs(60) {
            // Its own pid only: the test never signals a process it did not start.
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (out.join().unwrap(), err.join().unwrap())
}

/// Polls `f` every 20 ms until it holds; when it did. Fails the test after `limit`,
/// naming `what`.
pub fn wait_until(
    what: &str,
    limit: std::time::Duration,
    mut f: impl FnMut() -> bool,
) -> std::time::Instant {
    let end = std::time::Instant::now() + limit;
    loop {
        if f() {
            return std::time::Instant::now();
        }
        assert!(
            std::time::Instant::now() < end,
            "{what}: not within {limit:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits for the run holding a board to exit and returns its exit code, failing the test
/// with `what` if meanwhile the waiting run's console log appears (a run creates it when
/// it powers the board on): the waiter never touched the board while the holder ran.
pub fn holder_exit_while_waiter_waits(
    holder: &mut crate::sim::Guard,
    waiter_console: &Path,
    what: &str,
) -> i32 {
    loop {
        if let Some(s) = holder.0.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        assert!(!waiter_console.exists(), "{what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
