//! `hil run` on the fake board (harness/src/fake_board): the engine's logic end to end
//! through the CLI, in seconds. Each test has its own temp dirs (board file with a free
//! SSH port, leases, reports), so they run in parallel with each other and with the sim
//! tests. The lab faults and lease tests that are about hil's logic rather than the
//! emulated board live in faults.rs and lease.rs and use [`Fake`] too.

use crate::common::*;
use crate::sim::{case, junit_consumer, read_json, spawn_hil, wait_exit, wait_for_file_text};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Generous for a board that boots in milliseconds: a loaded CI machine.
pub const LIMIT: Duration = Duration::from_secs(120);

/// One test's fake lab: `boards/fake-board.toml` (tests/data/boards/fake-board.toml with a
/// free SSH port and the test's edits), a lease dir, and report dirs, all in a temp dir.
pub struct Fake {
    root: tempfile::TempDir,
}

pub const BOARD: &str = "fake-board";

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Fake {
    pub fn new(edit: impl Fn(String) -> String) -> Fake {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("boards")).unwrap();
        std::fs::create_dir_all(root.path().join("leases")).unwrap();
        let text = std::fs::read_to_string(data("boards/fake-board.toml")).unwrap();
        assert!(text.contains("\nport = 10722\n"));
        let text = text.replace("\nport = 10722\n", &format!("\nport = {}\n", free_port()));
        // Absolute key paths: the file works from any directory hil runs in.
        let keys = format!("\"{}/", data("fake-board").display());
        let text = text.replace("\"harness/tests/data/fake-board/", &keys);
        std::fs::write(root.path().join("boards/fake-board.toml"), edit(text)).unwrap();
        Fake { root }
    }

    pub fn leases(&self) -> PathBuf {
        self.root.path().join("leases")
    }

    /// The board's current lease in the test's lease dir (read under its lock, as hil
    /// does: the file is rewritten in place), `None` when free.
    pub fn lease(&self) -> Option<hil::lease::Record> {
        hil::lease::Leases::in_dir(self.leases())
            .read(BOARD)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn out(&self, name: &str) -> PathBuf {
        self.root.path().join(format!("out-{name}"))
    }

    /// HIL_BOARDS and HIL_LEASE_DIR for a hil child.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "HIL_BOARDS",
                self.root.path().join("boards").display().to_string(),
            ),
            ("HIL_LEASE_DIR", self.leases().display().to_string()),
        ]
    }

    /// `hil run SUITE --board fake-board --out OUT [extra]`, spawned.
    pub fn spawn(
        &self,
        suite: &str,
        out: &Path,
        extra: &[&str],
    ) -> (
        crate::sim::Guard,
        std::sync::mpsc::Receiver<(Instant, String)>,
    ) {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut args = vec![
            "run",
            suite,
            "--board",
            BOARD,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        spawn_hil(&args, &env)
    }

    /// Runs a suite to its end; its exit code and results.json.
    pub fn run(&self, suite: &str, out: &Path) -> (i32, serde_json::Value) {
        let (mut g, _rx) = self.spawn(suite, out, &[]);
        let code = wait_exit(&mut g, LIMIT);
        (code, read_json(&out.join("results.json")))
    }
}

pub fn suite(name: &str) -> String {
    data(&format!("suites/{name}.toml")).display().to_string()
}

#[test]
fn a_passing_suite_exits_0_with_complete_reports() {
    let fake = Fake::new(|t| t);
    let out = fake.out("pass");
    let t = Instant::now();
    let (code, r) = fake.run(&suite("fake-pass"), &out);
    assert_eq!(code, 0, "{r:#}");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert_eq!(r["complete"], true);
    assert_eq!(r["exit_code"], 0);
    for name in ["boot", "kernel", "shell-state", "ssh-exit-status"] {
        assert_eq!(case(&r, BOARD, name)["outcome"], "pass", "{name}: {r:#}");
    }
    assert_eq!(
        case(&r, BOARD, "ssh-exit-status")["figures"]["exit_status"],
        7
    );
    let props = &r["boards"][0]["properties"];
    assert_eq!(props["kernel"], "6.1.0-hil-fake", "{props}");
    assert_eq!(props["console_gaps"], "0", "{props}");
    // A standard JUnit consumer reads every case as passed; every case carries its
    // transcript (console checks their console slice, the SSH check its command and output).
    let cases = junit_consumer(&out.join("junit.xml"));
    let lines: Vec<Vec<&str>> = cases
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 4, "{cases}");
    for f in &lines {
        assert_eq!(f[1], "pass", "{cases}");
        assert!(f[2].parse::<usize>().unwrap() > 0, "system-out: {cases}");
    }
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    let ssh_case = junit
        .split("<testcase name=\"ssh-exit-status\"")
        .nth(1)
        .unwrap();
    assert!(
        ssh_case.contains(
            "--- ssh (commands on the board) ---\n$ echo over-ssh; exit 7\nover-ssh\n[exit 7]"
        ),
        "{ssh_case}"
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    for name in ["kernel", "shell-state", "ssh-exit-status"] {
        assert!(summary.contains(&format!("| ✔ | {name} |")), "{summary}");
    }
    let log = std::fs::read_to_string(out.join("boards/fake-board/console.log")).unwrap();
    for needle in [
        "U-Boot 2023.01",
        "Bytes transferred",
        "Starting kernel",
        "hil: board ready",
        "HIL_E_",
        "### hil: power off",
    ] {
        assert!(log.contains(needle), "console.log has {needle:?}");
    }
    let ssh_log = std::fs::read_to_string(out.join("boards/fake-board/ssh.log")).unwrap();
    assert!(ssh_log.contains("over-ssh\n[exit 7]"), "{ssh_log}");
}

#[test]
fn missed_autoboot_on_the_first_power_on_passes_on_the_retry() {
    let fake = Fake::new(|t| {
        let t = t.replacen("\ntimeout_s = 10\n", "\ntimeout_s = 1\n", 1);
        assert!(t.contains("\ntimeout_s = 1\n"));
        t.replace(
            "[fake]\n",
            "[retry]\ninfrastructure = 1\n\n[fake]\nmiss_autoboot = 1\n",
        )
    });
    let out = fake.out("autoboot-once");
    let (code, r) = fake.run(&suite("fake-pass"), &out);
    assert_eq!(code, 0, "{r:#}");
    let boot = case(&r, BOARD, "boot");
    assert_eq!(boot["outcome"], "pass", "{boot}");
    let attempts = boot["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{boot}");
    assert_eq!(attempts[0]["outcome"], "error:infrastructure");
    let msg = attempts[0]["message"].as_str().unwrap();
    assert!(msg.contains("autoboot missed"), "{msg}");
    assert_eq!(case(&r, BOARD, "kernel")["outcome"], "pass");
}

#[test]
fn a_panic_fails_its_check_the_next_gets_a_fresh_boot_and_a_vanished_board_is_lab_trouble() {
    let fake = Fake::new(|t| t);
    let out = fake.out("faults");
    let (mut g, rx) = fake.spawn(&suite("fake-faults"), &out, &[]);
    let panic_seen = wait_for_file_text(
        &out.join("boards/fake-board/console.log"),
        "Kernel panic - not syncing",
        LIMIT,
    );
    let code = wait_exit(&mut g, LIMIT);
    let said: Vec<(Instant, String)> = rx.try_iter().collect();
    let r = read_json(&out.join("results.json"));
    // A DUT failure wins over the lab trouble that came after it.
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["complete"], true);
    assert_eq!(case(&r, BOARD, "before")["outcome"], "pass");
    let p = case(&r, BOARD, "panics");
    assert_eq!(p["outcome"], "fail", "{p}");
    let msg = p["message"].as_str().unwrap();
    assert!(
        msg.starts_with("kernel panic: ") && msg.contains("Kernel panic - not syncing"),
        "{p}"
    );
    // Ended by the panic line (a second in), not by the SSH command's 60 s sleep.
    assert!(p["duration_s"].as_f64().unwrap() < 10.0, "{p}");
    assert!(p["console"]
        .as_str()
        .unwrap()
        .contains("Kernel panic - not syncing"));
    let fresh = case(&r, BOARD, "fresh-boot");
    assert_eq!(
        fresh["outcome"], "pass",
        "the board was booted again: {fresh}"
    );
    let v = case(&r, BOARD, "vanishes");
    assert_eq!(v["outcome"], "error:infrastructure", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("console closed"),
        "{v}"
    );
    assert_eq!(case(&r, BOARD, "after")["outcome"], "skipped");
    // hil reports the failure as soon as the panic line is in the log (death patterns are
    // matched on every chunk the console brings, not when the command ends).
    let reported = said
        .iter()
        .find(|(_, l)| l.contains("panics") && l.contains("fail"))
        .map(|(t, _)| *t)
        .unwrap_or_else(|| panic!("hil reported the failing check: {said:#?}"));
    let lag = reported.saturating_duration_since(panic_seen);
    assert!(
        lag < Duration::from_secs(2),
        "fail reported {lag:?} after the panic line"
    );
    let log = std::fs::read_to_string(out.join("boards/fake-board/console.log")).unwrap();
    let banners = log
        .lines()
        .filter(|l| {
            l.split_once("] ")
                .is_some_and(|(_, rest)| rest.starts_with("U-Boot 2023.01"))
        })
        .count();
    assert_eq!(banners, 2, "two boots in the log: {log}");
    assert!(
        log.contains("### hil: console closed"),
        "log runs to the vanishing"
    );
}

/// `hil console` on the fake board in a temp working dir: typed input, the terminal's
/// text so far, and stderr collected when it exits.
struct LiveConsole {
    dir: tempfile::TempDir,
    stdin: std::process::ChildStdin,
    shown: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::mpsc::Receiver<String>,
    g: crate::sim::Guard,
}

impl LiveConsole {
    fn spawn(fake: &Fake, extra: &[&str]) -> LiveConsole {
        use std::io::Read;
        use std::process::Stdio;
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["console", BOARD];
        args.extend_from_slice(extra);
        let mut child = hil()
            .current_dir(dir.path())
            .envs(fake.env())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hil console");
        let stdin = child.stdin.take().unwrap();
        let read_all = |mut r: Box<dyn Read + Send>, each: bool| {
            let (tx, rx) = std::sync::mpsc::channel::<String>();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut b = [0u8; 4096];
                while let Ok(n @ 1..) = r.read(&mut b) {
                    seen.extend_from_slice(&b[..n]);
                    if each {
                        let _ = tx.send(String::from_utf8_lossy(&seen).into_owned());
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&seen).into_owned());
            });
            rx
        };
        let shown = read_all(Box::new(child.stdout.take().unwrap()), true);
        let stderr = read_all(Box::new(child.stderr.take().unwrap()), false);
        LiveConsole {
            dir,
            stdin,
            shown,
            stderr,
            g: crate::sim::Guard(child),
        }
    }

    /// What the terminal shows once it shows `needle`.
    fn wait_text(&self, needle: &str) -> String {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.shown.recv_timeout(left) {
                Ok(s) if s.contains(needle) => return s,
                Ok(_) => {}
                Err(_) => panic!("{needle:?} not shown within 30 s"),
            }
        }
    }

    fn type_in(&mut self, data: &[u8]) {
        use std::io::Write;
        self.stdin.write_all(data).unwrap();
    }

    /// Ctrl-] quits (and powers the board off): the exit code and stderr.
    fn quit(mut self) -> (i32, String) {
        self.type_in(&[0x1d]);
        let code = wait_exit(&mut self.g, Duration::from_secs(30));
        let err = self
            .stderr
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_default();
        (code, err)
    }

    /// Waits for it to exit by itself: the exit code and stderr.
    fn finish(mut self) -> (i32, String) {
        let code = wait_exit(&mut self.g, Duration::from_secs(30));
        let err = self
            .stderr
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_default();
        (code, err)
    }

    fn console_log(&self) -> String {
        let p = self
            .dir
            .path()
            .join("reports/console/fake-board/console.log");
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }
}

#[test]
fn live_console_shows_the_fake_and_passes_typed_input() {
    let fake = Fake::new(|t| t);
    let mut c = LiveConsole::spawn(&fake, &[]);
    c.wait_text("Hit any key to stop autoboot");
    c.type_in(b" ");
    c.wait_text("=> ");
    c.type_in(b"echo typed-through-hil\r");
    let shown = c.wait_text("\ntyped-through-hil");
    assert!(shown.contains("U-Boot 2023.01"), "banner shown: {shown}");
    assert_eq!(c.quit().0, 0);
}

/// Where `needle` is in `log`, which must hold it.
fn at(log: &str, needle: &str) -> usize {
    log.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} in the console log:\n{log}"))
}

#[test]
fn console_to_linux_walks_the_board_to_its_shell_then_hands_it_over() {
    let fake = Fake::new(|t| t);
    let mut c = LiveConsole::spawn(&fake, &["--to", "linux"]);
    let shown = c.wait_text("/ # ");
    // The boot went to the log, not to the terminal: hil walked it.
    assert!(!shown.contains("Hit any key"), "{shown}");
    c.type_in(b"echo typed-through-hil\r");
    c.wait_text("\ntyped-through-hil");
    let log = c.console_log();
    let (code, err) = c.quit();
    assert_eq!(code, 0, "{err}");
    assert!(at(&log, "U-Boot 2023.01") < at(&log, "hil: board ready"));
    assert!(
        at(&log, "hil: board ready")
            < at(
                &log,
                "### hil: hil console: reached linux; console handed over"
            )
    );
    assert!(
        at(&log, "console handed over") < at(&log, "echo typed-through-hil"),
        "{log}"
    );
    for line in [
        "hil: fake-board: reaching bootloader… reached in ",
        "hil: fake-board: reaching linux… reached in ",
        "hil: fake-board: powered off",
    ] {
        assert!(err.contains(line), "{line:?} in {err}");
    }
}

#[test]
fn console_to_bootloader_stops_at_the_uboot_prompt() {
    let fake = Fake::new(|t| t);
    let mut c = LiveConsole::spawn(&fake, &["--to", "bootloader"]);
    let shown = c.wait_text("=> ");
    assert!(!shown.contains("Hit any key"), "{shown}");
    c.type_in(b"echo at-the-prompt\r");
    c.wait_text("\nat-the-prompt");
    let log = c.console_log();
    let (code, err) = c.quit();
    assert_eq!(code, 0, "{err}");
    assert!(at(&log, "Bytes transferred") < at(&log, "reached bootloader; console handed over"));
    assert!(!log.contains("Starting kernel"), "{log}");
    assert!(!log.contains("hil: board ready"), "{log}");
    assert!(!err.contains("reaching linux"), "{err}");
}

#[test]
fn console_to_guest_without_a_guest_table_is_a_config_error_naming_the_file() {
    let fake = Fake::new(|t| t);
    let dir = tempfile::tempdir().unwrap();
    let o = hil()
        .current_dir(dir.path())
        .envs(fake.env())
        .args(["console", BOARD, "--to", "guest"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("boards/fake-board.toml: board fake-board has no [guest] table"),
        "{err}"
    );
    assert!(
        !dir.path().join("reports").exists(),
        "the board was not touched"
    );
}

#[test]
fn an_ssh_command_that_prints_forever_ends_at_its_time_out_the_next_passes_and_teardown_completes()
{
    let fake = Fake::new(|t| t);
    let out = fake.out("ssh-flood");
    let t = Instant::now();
    let (code, r) = fake.run(&suite("fake-ssh-flood"), &out);
    // Within the checks' 3 s plus 10 s, boot, the next check and teardown included.
    assert!(
        t.elapsed() < Duration::from_secs(13 + 10),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["complete"], true);
    let flood = case(&r, BOARD, "flood");
    assert_eq!(flood["outcome"], "fail", "{flood}");
    assert!(
        flood["message"]
            .as_str()
            .unwrap()
            .contains("did not finish within 3 s"),
        "{flood}"
    );
    assert!(
        flood["duration_s"].as_f64().unwrap() < 3.0 + 10.0,
        "{flood}"
    );
    // One check's time-out does not poison the next: it passes at once.
    let after = case(&r, BOARD, "after-flood");
    assert_eq!(after["outcome"], "pass", "{after}");
    assert!(after["duration_s"].as_f64().unwrap() < 5.0, "{after}");
    // Teardown completed: no teardown case (it reports only trouble) and the board was
    // powered off.
    let cases = r["boards"][0]["cases"].as_array().unwrap();
    assert!(!cases.iter().any(|c| c["name"] == "teardown"), "{r:#}");
    let log = std::fs::read_to_string(out.join("boards/fake-board/console.log")).unwrap();
    assert!(
        log.contains("### hil: power off"),
        "console.log ends with the power off"
    );
    // The flood's output was bounded in ssh.log, not kept whole.
    let ssh_len = std::fs::metadata(out.join("boards/fake-board/ssh.log"))
        .unwrap()
        .len();
    assert!(ssh_len < 4 * 1024 * 1024, "ssh.log is {ssh_len} bytes");
}

/// The fake-faults suite (a pass, a kernel panic that fails its check, a fresh boot, a
/// vanishing board) run to its end; its report directory.
fn run_faults(fake: &Fake, name: &str) -> PathBuf {
    let out = fake.out(name);
    let (code, r) = fake.run(&suite("fake-faults"), &out);
    assert_eq!(code, 1, "{r:#}");
    out
}

#[test]
fn report_html_shows_the_checks_and_links_the_first_failure() {
    let fake = Fake::new(|t| t);
    let out = run_faults(&fake, "html");
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    for name in ["before", "panics", "fresh-boot", "vanishes", "after"] {
        assert!(
            html.contains(&format!("<tr id=\"case-{BOARD}-{name}\"")),
            "row of {name}"
        );
    }
    assert!(html.contains("href=\"#first-failure\""));
    assert!(html.contains("First failure: fake-board / panics"));
    assert_eq!(html.matches("id=\"first-failure\"").count(), 1);
    // The target is in the console log, on a line of the failing check's part, and the
    // panic itself is marked further down.
    let at = html.find("id=\"first-failure\"").unwrap();
    let log = html.find("<pre class=\"log\">").expect("console log shown");
    assert!(at > log, "first-failure target is in the log");
    assert!(html.contains("<span class=\"death\">"), "panic line marked");
    assert!(html.contains("<span class=\"hil\">"), "marker lines marked");
    assert!(
        html.contains("<pre class=\"evidence\">"),
        "the failure's console"
    );
    assert!(!html.contains("run still going or killed"));
}

/// The page in a real browser: Debian's chromium, headless, from a file URL, driven over
/// its DevTools pipe. Skipped (with a note) where chromium is not there.
#[test]
fn report_html_renders_in_chromium() {
    let Some(chromium) = hil::browser::installed() else {
        eprintln!("skipped: {} is not installed", hil::browser::CHROMIUM);
        return;
    };
    let fake = Fake::new(|t| t);
    let out = run_faults(&fake, "chromium");
    let page = crate::common::read_report_in_chromium(&chromium, &out, "fake-faults");
    // One bar per case and per earlier attempt, one row per case, as results.json has.
    let (cases, attempts) = crate::common::cases_and_attempts(&out);
    assert_eq!(page.bars, cases + attempts, "{page:?}");
    assert_eq!(page.rows, cases, "{page:?}");
    // The link lands on the panic, in the log, in view.
    assert!(page.target_in_log, "{page:?}");
    assert!(page.target_text.contains("Kernel panic"), "{page:?}");
}

/// A suite whose one check waits (on the fake board's console) until `go` exists, then
/// prints `follow-42-live`: computed, so the echo of the command line does not show it.
/// Not anchored at the line's start: what a follower types while the check runs is echoed
/// by the board into the check's output, as a real tty does.
fn wait_for_go_suite(fake: &Fake, go: &Path) -> String {
    let p = fake.out("follow-suite.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"follow\"\n[defaults]\ntimeout_s = 60\nvia = \"console\"\n\n[[check]]\nname = \"live\"\nkind = \"shell\"\ncommand = 'n=0; while [ ! -e {} ] && [ $n -lt 400 ]; do sleep 0.1; n=$((n+1)); done; echo follow-$((6*7))-live'\nexpect = \"follow-42-live$\"\n",
            go.display()
        ),
    )
    .unwrap();
    p.display().to_string()
}

/// Starts `hil run` of [`wait_for_go_suite`] and waits until its check is running and the
/// console is published: the run, its report dir and the `go` file to create.
pub(crate) fn run_to_follow(fake: &Fake, extra: &[&str]) -> (crate::sim::Guard, PathBuf, PathBuf) {
    let go = fake.out("go");
    let suite = wait_for_go_suite(fake, &go);
    let out = fake.out("followed");
    let (run, _rx) = fake.spawn(&suite, &out, extra);
    let socket = fake.leases().join(format!("{BOARD}.{}.follow", run.0.id()));
    let log = out.join("boards/fake-board/console.log");
    let end = Instant::now() + LIMIT;
    while !(socket.exists()
        && std::fs::read_to_string(&log).is_ok_and(|l| l.contains("while [ ! -e")))
    {
        assert!(
            Instant::now() < end,
            "the run published its console and started the check"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (run, out, go)
}

#[test]
fn console_follows_a_run_read_only_with_its_stamps_and_ends_with_the_run() {
    let fake = Fake::new(|t| t);
    let (mut run, out, go) = run_to_follow(&fake, &[]);
    let mut c = LiveConsole::spawn(&fake, &["--timestamps"]);
    // The last few KiB come first: the check's command line, echoed before we attached.
    c.wait_text("while [ ! -e");
    c.type_in(b"echo typed-by-follower\r");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&go, "").unwrap();
    let shown = c.wait_text("follow-42-live");
    assert_eq!(wait_exit(&mut run, LIMIT), 0);
    let (code, err) = c.finish();
    assert_eq!(code, 0, "{err}");
    let pid = run.0.id();
    assert!(
        err.contains("hil: following the console of run ")
            && err.contains("(held by job ")
            && err.contains(&format!("pid {pid}, run "))
            && err.contains("); read-only; Ctrl-] quits"),
        "{err}"
    );
    assert!(
        err.contains("hil: read-only: run ") && err.contains("nothing was sent"),
        "{err}"
    );
    assert!(
        err.contains(" ended\r\n") || err.trim_end().ends_with("ended"),
        "{err}"
    );
    let results = crate::sim::read_json(&out.join("results.json"));
    let run_id = results["run_id"].as_str().unwrap_or_default().to_string();
    assert!(
        err.contains(&format!("hil: run {run_id} ended")),
        "{run_id}: {err}"
    );
    // Nothing typed reached the board; the live line has the stamp the run's log gave it.
    let log = std::fs::read_to_string(out.join("boards/fake-board/console.log")).unwrap();
    assert!(!log.contains("typed-by-follower"), "{log}");
    let line = shown
        .lines()
        .find(|l| l.contains("] follow-42-live"))
        .unwrap_or_else(|| panic!("a stamped live line in {shown:?}"));
    assert!(line.starts_with("[+"), "{line:?}");
    assert!(log.lines().any(|l| l == line), "{line:?} in\n{log}");
    // The socket went with the run.
    assert!(!fake.leases().join(format!("{BOARD}.{pid}.follow")).exists());
}

#[test]
fn console_follower_may_type_when_the_run_allows_it_and_its_input_is_marked() {
    let fake = Fake::new(|t| t);
    let (mut run, out, go) = run_to_follow(&fake, &["--console-input"]);
    let mut c = LiveConsole::spawn(&fake, &[]);
    c.wait_text("while [ ! -e");
    // No Enter: the board's shell only echoes it, so the run's next command is unchanged.
    c.type_in(b"hello-from-follower");
    c.wait_text("hello-from-follower");
    std::fs::write(&go, "").unwrap();
    c.wait_text("follow-42-live");
    assert_eq!(wait_exit(&mut run, LIMIT), 0);
    let (code, err) = c.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("; input allowed: "), "{err}");
    assert!(!err.contains("read-only"), "{err}");
    let log = std::fs::read_to_string(out.join("boards/fake-board/console.log")).unwrap();
    let mark = at(&log, "### hil: input from a follower of the run (uid ");
    assert!(log[mark..].contains(": \"hello-from-follower\""), "{log}");
    // The board got it: its echo is in the log after the mark, as board output.
    let echo = log[mark..]
        .lines()
        .skip(1)
        .any(|l| !l.contains("### hil:") && l.contains("hello-from-follower"));
    assert!(echo, "{log}");
}
