//! Every wait has a deadline: a QEMU whose QMP never answers, a build hook that never ends,
//! and (on the sim lab) an SSH command that never stops printing each end within their
//! limit, and leave nothing running behind them.

use crate::common::*;
use crate::sim::{case, lock, out_dir, read_json, run_suite, spawn_hil, wait_exit};
use std::path::Path;
use std::time::{Duration, Instant};

/// Running and not a zombie (a killed process reparented to a pid 1 that does not reap
/// stays a zombie, which `kill(pid, 0)` still finds).
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
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn qemu_whose_qmp_never_answers_is_an_infrastructure_error_within_start_timeout() {
    const START_TIMEOUT_S: u64 = 3; // boards/silent-qmp.toml
    let out = out_dir("silent-qmp");
    let suite = data("suites/one-console-check.toml");
    let started = Instant::now();
    let (mut g, rx) = spawn_hil(
        &[
            "run",
            suite.to_str().unwrap(),
            "--board",
            "silent-qmp",
            "--out",
            out.to_str().unwrap(),
        ],
        &[("HIL_BOARDS", data("boards").to_str().unwrap())],
    );
    let code = wait_exit(&mut g, Duration::from_secs(START_TIMEOUT_S + 10));
    let took = started.elapsed();
    let err: Vec<String> = rx.try_iter().map(|(_, l)| l).collect();
    let err = err.join("\n");
    assert_eq!(code, 3, "exit status; stderr:\n{err}");
    assert!(err.contains("error: infrastructure"), "{err}");
    eprintln!("hil run ended {took:?} after it started");
    let board_dir = out.join("boards/silent-qmp");
    // The fake accepted hil's connection: the wait that ended was the greeting's.
    let qemu_log = std::fs::read_to_string(board_dir.join("qemu.log")).unwrap();
    assert!(
        qemu_log.contains("accepted a QMP connection"),
        "the fake QEMU never saw a connection: {qemu_log}"
    );
    let r = read_json(&out.join("results.json"));
    let boot = case(&r, "silent-qmp", "boot");
    assert_eq!(boot["outcome"], "error:infrastructure", "{boot}");
    let msg = boot["message"].as_str().unwrap();
    assert!(
        msg.contains("sent no greeting within 3 s") && msg.contains("start_timeout_s"),
        "{msg}"
    );
    assert_eq!(case(&r, "silent-qmp", "echo")["outcome"], "skipped");
    let pid = read_pid(&board_dir.join("qemu.pid"));
    assert!(
        !alive(pid),
        "the fake QEMU {pid} still runs after hil exited"
    );
}

#[test]
fn build_hook_past_its_deadline_is_skipped_and_its_process_group_killed() {
    let out = out_dir("hook-timeout");
    std::fs::create_dir_all(&out).unwrap();
    let pidfile = out.join("grandchild.pid");
    // The hook leaves a grandchild behind, as `make -j` does with its compilers.
    let hook = format!(
        "sleep 1000 & echo $! > {}; sleep 1000",
        pidfile.to_str().unwrap()
    );
    let started = Instant::now();
    let o = run(hil().args([
        "bisect",
        "run",
        "--suite",
        "suites/nvme-driver.toml",
        "--build-hook",
        &hook,
        "--build-timeout-s",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]));
    let took = started.elapsed();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("the build hook did not finish within 2 s"),
        "{err}"
    );
    // SIGTERM ends both sleeps at once: no wait for the SIGKILL grace.
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert!(
        !out.join("run").exists(),
        "no board run after a failed build"
    );
    let pid = read_pid(&pidfile);
    assert!(
        !alive(pid),
        "the hook's grandchild {pid} survived its timeout"
    );
    // The default limit is documented in --help.
    let o = run(hil().args(["bisect", "run", "--help"]));
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("--build-timeout-s") && help.contains("3600"),
        "{help}"
    );
}

/// `yes` over SSH with a 5 s limit, then `echo` over SSH: the flood ends at its own limit
/// (a flood never lets libssh2's per-read timeout fire), and the next check is not
/// affected. Then a command whose channel will not close at its timeout: the session is
/// dropped and the next check passes on a new connection.
#[test]
fn ssh_flood_times_out_at_its_limit_and_the_next_check_passes() {
    let _l = lock();
    let out = out_dir("ssh-flood");
    let suite = data("suites/ssh-flood.toml");
    let (code, r) = run_suite(suite.to_str().unwrap(), "sim-rk3588", &out, &[]);
    let flood = case(&r, "sim-rk3588", "flood");
    let after = case(&r, "sim-rk3588", "after-flood");
    eprintln!(
        "flood: {} in {} s; after-flood: {} in {} s",
        flood["outcome"], flood["duration_s"], after["outcome"], after["duration_s"]
    );
    assert_eq!(flood["outcome"], "fail", "{flood}");
    let msg = flood["message"].as_str().unwrap();
    assert!(msg.contains("did not finish within 5 s"), "{msg}");
    let d = flood["duration_s"].as_f64().unwrap();
    assert!(d < 12.0, "the flood check took {d} s for a 5 s limit");
    assert_eq!(after["outcome"], "pass", "{after}");
    assert!(
        after["message"].as_str().unwrap().contains("still-here"),
        "{after}"
    );
    // Teardown ran to the end: the board was powered off and the reports are complete.
    assert_eq!(code, 1, "a failed check");
    assert_eq!(r["complete"], true);
    let board_dir = out.join("boards/sim-rk3588");
    let console = std::fs::read_to_string(board_dir.join("console.log")).unwrap();
    assert!(
        console.contains("### hil: power off"),
        "no power off in console.log"
    );
    // ssh.log got the flood as it came, bounded (1 MiB kept) with the drop counted, and
    // the next command after it, on a new session (the flood's was dropped at its limit).
    let log = std::fs::read(board_dir.join("ssh.log")).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains("$ yes hil-flood-line\nhil-flood-line\n"),
        "flood not logged"
    );
    assert!(
        text.contains("bytes of output dropped here"),
        "no drop marker"
    );
    assert!(text.contains("[timeout after 5 s: "), "no timeout line");
    assert!(
        log.len() < 1024 * 1024 + 64 * 1024,
        "ssh.log is {} bytes",
        log.len()
    );
    let tail = &text[text.find("$ echo still-here\n").expect("echo logged")..];
    assert!(
        tail.starts_with("$ echo still-here\n[hil: the previous session was dropped; connecting again]\nstill-here\n[exit 0]"),
        "{tail}"
    );
    // The hang: ended at its limit plus the 1 s allowed for closing; the session it left
    // was dropped and the next command connected again.
    let hang = case(&r, "sim-rk3588", "hang");
    let after_hang = case(&r, "sim-rk3588", "after-hang");
    eprintln!(
        "hang: {} in {} s; after-hang: {} in {} s",
        hang["outcome"], hang["duration_s"], after_hang["outcome"], after_hang["duration_s"]
    );
    assert_eq!(hang["outcome"], "fail", "{hang}");
    let d = hang["duration_s"].as_f64().unwrap();
    assert!(d < 12.0, "the hang check took {d} s for a 5 s limit");
    assert_eq!(after_hang["outcome"], "pass", "{after_hang}");
    let tail = &text[text.find("$ trap").expect("hang logged")..];
    assert!(
        tail.contains("session dropped, the next command connects again]\n$ echo still-here-too\n[hil: the previous session was dropped; connecting again]\nstill-here-too\n[exit 0]"),
        "{tail}"
    );
}
