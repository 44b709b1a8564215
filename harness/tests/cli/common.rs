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
        .args(hil::browser::FLAGS)
        .args(["--enable-logging=stderr", "--v=0"])
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

/// What a report page showed in Chromium (see [`read_report_in_chromium`]).
#[derive(Debug)]
pub struct ReportPage {
    /// Timeline bars (`rect.bar`-classed SVG groups) and case rows.
    pub bars: usize,
    pub rows: usize,
    /// After a click on the "First failure" link: the target's line text, and whether it
    /// is in the console log (else in a case row).
    pub target_text: String,
    pub target_in_log: bool,
    pub load: std::time::Duration,
}

/// Opens `dir/report.html` from a file URL, asserts it logs no error and that the "First
/// failure" link (when there is one) scrolls its target into view; keeps a screenshot of
/// the page as it opened and one after the click under the test's artifact directory
/// (`target/tmp/report-html/NAME*.png`).
pub fn read_report_in_chromium(chromium: &Path, dir: &Path, name: &str) -> ReportPage {
    let mut b = hil::browser::Browser::start(chromium, 1400, 1000).expect("chromium starts");
    let url = format!("file://{}", dir.join("report.html").display());
    let load = b
        .open(&url, std::time::Duration::from_secs(30))
        .expect("report.html loads");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-html");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join(format!("{name}.png"));
    b.screenshot(&shot).expect("screenshot");
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a page, not a blank"
    );
    let counts = b
        .eval("[document.querySelectorAll('svg .bar').length, document.querySelectorAll('table.cases tr[id^=case-]').length, !!document.querySelector('a[href=\"#first-failure\"]')]")
        .unwrap();
    let mut page = ReportPage {
        bars: counts[0].as_u64().unwrap() as usize,
        rows: counts[1].as_u64().unwrap() as usize,
        target_text: String::new(),
        target_in_log: false,
        load,
    };
    if counts[2].as_bool() == Some(true) {
        // A real click, then where the target is: its top within the viewport, and the
        // text of the line (log) or row (table) it marks.
        let landed = b
            .eval(
                "new Promise(done => { \
                   document.querySelector('a[href=\"#first-failure\"]').click(); \
                   setTimeout(() => { \
                     const t = document.getElementById('first-failure'); \
                     const r = t.getBoundingClientRect(); \
                     const inLog = !!t.closest('pre.log'); \
                     const text = inLog ? (t.nextElementSibling || t).textContent \
                                        : t.closest('tr').textContent; \
                     done([r.top, window.innerHeight, window.scrollY, inLog, text]); \
                   }, 300); })",
            )
            .unwrap();
        let (top, height, scrolled) = (
            landed[0].as_f64().unwrap(),
            landed[1].as_f64().unwrap(),
            landed[2].as_f64().unwrap(),
        );
        assert!(
            (0.0..height).contains(&top),
            "the target is in view after the click: {landed}"
        );
        assert!(scrolled > 0.0, "the click scrolled the page: {landed}");
        page.target_in_log = landed[3].as_bool().unwrap();
        page.target_text = landed[4].as_str().unwrap().to_string();
        b.screenshot(&shots.join(format!("{name}-first-failure.png")))
            .expect("screenshot");
    }
    let errors = b.errors(std::time::Duration::from_millis(300));
    assert!(errors.is_empty(), "the page logged errors: {errors:?}");
    page
}

/// The cases of a run's `results.json` and their earlier attempts, over all boards.
pub fn cases_and_attempts(dir: &Path) -> (usize, usize) {
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let mut n = (0, 0);
    for b in r["boards"].as_array().unwrap() {
        for c in b["cases"].as_array().unwrap() {
            n.0 += 1;
            n.1 += c["attempts"].as_array().map_or(0, |a| a.len());
        }
    }
    n
}
