//! One test per lab fault: each asserts the outcome class, the exit status, and that
//! console.log, junit.xml and results.json are complete and valid. Faults of the real
//! path (QEMU killed, sshd killed, a guest's kernel panic) run on the sim; those whose
//! subject is hil's own logic (autoboot retry, TFTP, check retries) on the fake board.
//! (A board that vanishes mid-check and a board kernel panic, with the fresh boot that
//! follows it, are engine logic: fake_board.rs. The console transport closed and reopened
//! is in its own test.)

use crate::common::*;
use crate::fake_board::{suite, Fake, BOARD};
use crate::sim::{
    case, junit_consumer, lock, out_dir, read_json, spawn_hil, wait_exit, wait_for_file_text,
    BOOT_LIMIT,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// The reports of a finished run: results.json complete with the exit code and one case per
/// check (plus boot), junit.xml read by a standard consumer with the same cases, and the
/// console log with its header and hil's closing marker.
pub fn assert_reports_complete(out: &Path, board: &str, code: i32, checks: &[&str]) {
    let r = read_json(&out.join("results.json"));
    assert_eq!(r["complete"], true, "{r:#}");
    assert_eq!(r["exit_code"], code, "{r:#}");
    for name in checks {
        let c = case(&r, board, name);
        assert!(c["outcome"].is_string(), "{c}");
    }
    let junit = junit_consumer(&out.join("junit.xml"));
    for name in checks {
        assert!(
            junit
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "junit.xml lacks {name}: {junit}"
        );
    }
    let log = std::fs::read_to_string(out.join(format!("boards/{board}/console.log"))).unwrap();
    assert!(log.starts_with("# hil console log: board"), "log header");
    assert!(
        log.contains("### hil: power off") || log.contains("### hil: console closed"),
        "the log runs to the end of the board's session"
    );
}

use crate::sim::run_suite as run;

#[test]
fn qemu_killed_mid_boot_is_an_infrastructure_error() {
    let _l = lock();
    let out = out_dir("kill-boot");
    let (mut g, _rx) = spawn_hil(
        &["run", "suites/smoke.toml", "--out", out.to_str().unwrap()],
        &[],
    );
    let board_dir = out.join("boards/sim-rk3588");
    wait_for_file_text(
        &board_dir.join("console.log"),
        "Starting kernel",
        BOOT_LIMIT,
    );
    crate::sim::kill_board_qemu(&board_dir);
    let killed = Instant::now();
    let code = wait_exit(&mut g, Duration::from_secs(60));
    let took = killed.elapsed();
    // The console's end (the pty closed) is seen at once, not at the boot time-out.
    assert!(
        took < Duration::from_secs(10),
        "run ended {took:?} after the kill"
    );
    assert_eq!(code, 3);
    let r = read_json(&out.join("results.json"));
    let boot = case(&r, "sim-rk3588", "boot");
    assert_eq!(boot["outcome"], "error:infrastructure", "{boot}");
    assert!(
        boot["message"].as_str().unwrap().contains("console closed"),
        "{boot}"
    );
    assert_eq!(case(&r, "sim-rk3588", "arch")["outcome"], "skipped");
    assert_reports_complete(&out, "sim-rk3588", 3, &["boot", "arch", "kvm"]);
}

#[test]
fn sshd_killed_mid_command_ends_the_check_at_once() {
    let _l = lock();
    let out = out_dir("dropbear");
    let suite = data("suites/dropbear-kill.toml");
    let (code, r) = run(suite.to_str().unwrap(), "sim-rk3588", &out, &[]);
    assert_eq!(case(&r, "sim-rk3588", "quick")["outcome"], "pass");
    let c = case(&r, "sim-rk3588", "sshd-dies");
    assert_eq!(c["outcome"], "error:infrastructure", "{c}");
    // Ended by the dropped connection, not by the 40 s sleep or the 60 s limit.
    assert!(c["duration_s"].as_f64().unwrap() < 30.0, "{c}");
    assert_eq!(case(&r, "sim-rk3588", "after")["outcome"], "skipped");
    assert_eq!(code, 3);
    assert_reports_complete(&out, "sim-rk3588", 3, &["quick", "sshd-dies", "after"]);
}

#[test]
fn guest_kernel_panic_fails_the_check_naming_the_panic() {
    let _l = lock();
    let out = out_dir("guest-panic");
    let suite = data("suites/guest-panic.toml");
    let (code, r) = run(suite.to_str().unwrap(), "sim-rk3588", &out, &[]);
    assert_eq!(case(&r, "sim-rk3588", "guest-boot")["outcome"], "pass");
    let c = case(&r, "sim-rk3588", "guest-crash");
    assert_eq!(c["outcome"], "fail", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("Kernel panic - not syncing"),
        "{c}"
    );
    assert!(
        c["duration_s"].as_f64().unwrap() < 50.0,
        "ended by the panic: {c}"
    );
    assert_eq!(code, 1);
    assert_reports_complete(&out, "sim-rk3588", 1, &["guest-boot", "guest-crash"]);
    let guest_log =
        std::fs::read_to_string(out.join("boards/sim-rk3588/guest-console.log")).unwrap();
    assert!(
        guest_log.contains("sysrq: Trigger a crash"),
        "guest log kept"
    );
}

#[test]
fn missed_autoboot_is_retried_then_an_infrastructure_error() {
    // The board prints "Hit any key to stop autoboot"; this file waits for another text,
    // so hil never interrupts U-Boot. A real board then boots its default OS and the prompt
    // never comes (the fake does the same). A 1 s bootloader limit ends the wait.
    let fake = Fake::new(|t| {
        let t = t.replace(
            "autoboot = \"Hit any key to stop autoboot\"",
            "autoboot = \"Press SPACE to abort autoboot\"",
        );
        assert!(t.contains("Press SPACE"));
        let t = t.replacen("\ntimeout_s = 10\n", "\ntimeout_s = 1\n", 1);
        assert!(t.contains("\ntimeout_s = 1\n"));
        t + "\n[retry]\ninfrastructure = 1\n"
    });
    let out = fake.out("autoboot");
    let t = Instant::now();
    let (code, r) = fake.run(&suite("fake-pass"), &out);
    let boot = case(&r, BOARD, "boot");
    assert_eq!(boot["outcome"], "error:infrastructure", "{boot}");
    assert!(
        boot["message"]
            .as_str()
            .unwrap()
            .contains("Press SPACE to abort autoboot"),
        "names what it waited for: {boot}"
    );
    // One power-cycled retry, recorded; not more.
    let attempts = boot["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{boot}");
    assert_eq!(attempts[0]["outcome"], "error:infrastructure");
    assert_eq!(code, 3);
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    assert_reports_complete(&out, BOARD, 3, &["boot", "kernel"]);
    let log = std::fs::read_to_string(out.join("boards/fake-board/console.log")).unwrap();
    // Banner lines of the board, not the copies in hil's marks (a mark quotes the output
    // it last saw).
    let banners = log
        .lines()
        .filter(|l| {
            l.split_once("] ")
                .is_some_and(|(_, rest)| rest.starts_with("U-Boot 2023.01"))
        })
        .count();
    assert_eq!(banners, 2, "two boots in the same log: {log}");
    assert!(log.contains("power-cycling and booting again"));
}

#[test]
fn missing_tftp_file_is_an_infrastructure_error_naming_it() {
    let fake = Fake::new(|t| {
        let t = t.replace(
            "\"tftp ${kernel_addr_r} Image.gz\"",
            "\"tftp ${kernel_addr_r} Image-missing.gz\"",
        );
        assert!(t.contains("Image-missing.gz"));
        t
    });
    let out = fake.out("notftp");
    let (code, r) = fake.run(&suite("fake-pass"), &out);
    let boot = case(&r, BOARD, "boot");
    assert_eq!(boot["outcome"], "error:infrastructure", "{boot}");
    let msg = boot["message"].as_str().unwrap();
    assert!(msg.contains("Image-missing.gz"), "{boot}");
    assert_eq!(code, 3);
    assert_reports_complete(&out, BOARD, 3, &["boot", "kernel"]);
    let log = std::fs::read_to_string(out.join("boards/fake-board/console.log")).unwrap();
    assert!(
        log.contains("File not found"),
        "U-Boot's own words are in the log"
    );
}

#[test]
fn unwritable_report_directory_is_refused_before_the_board_is_touched() {
    // /proc refuses new directories even to root.
    let o =
        crate::common::run(hil().args(["run", "suites/smoke.toml", "--out", "/proc/hil-report"]));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("/proc/hil-report"), "{err}");
    assert!(err.contains("--out"), "names the fix: {err}");
    assert!(!err.contains("lab:"), "no sim provisioning started: {err}");
}

#[test]
fn a_check_that_passes_on_retry_is_flaky_not_pass() {
    let fake = Fake::new(|t| t);
    let out = fake.out("flaky");
    let (code, r) = fake.run(&suite("fake-flaky"), &out);
    let c = case(&r, BOARD, "second-time-lucky");
    assert_eq!(c["outcome"], "pass", "{c}");
    assert_eq!(c["flaky"], true, "{c}");
    let a = c["attempts"].as_array().unwrap();
    assert_eq!(a.len(), 1, "{c}");
    assert_eq!(a[0]["outcome"], "fail");
    let f = case(&r, BOARD, "always-fails");
    assert_eq!(f["outcome"], "fail", "{f}");
    assert_eq!(f["flaky"], false);
    assert_eq!(f["attempts"].as_array().unwrap().len(), 1, "{f}");
    let s = case(&r, BOARD, "steady");
    assert_eq!(s["flaky"], false);
    assert!(s.get("attempts").is_none(), "{s}");
    assert_eq!(code, 1);
    assert_reports_complete(
        &out,
        BOARD,
        1,
        &["second-time-lucky", "always-fails", "steady"],
    );
    let xml = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(xml.matches("<flakyFailure").count(), 1, "{xml}");
    assert_eq!(xml.matches("<rerunFailure").count(), 1, "{xml}");
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("FLAKY: attempt 2"), "{summary}");
}
