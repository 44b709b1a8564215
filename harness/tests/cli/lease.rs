//! Board leases across processes, on the sim: two runs never use the same board at once (a
//! second run is refused, or queues with --wait until the first is done), and the lease of
//! a killed run is taken over once it has expired.

use crate::sim::{case, lock, out_dir, read_json, spawn_hil, wait_exit, BOOT_LIMIT};
use crate::vfio::board_variant;
use std::path::Path;
use std::time::{Duration, Instant};

fn smoke_args<'a>(board: &'a str, out: &'a Path, wait: bool) -> Vec<&'a str> {
    let mut a = vec![
        "run",
        "suites/smoke.toml",
        "--board",
        board,
        "--out",
        out.to_str().unwrap(),
    ];
    if wait {
        a.push("--wait");
    }
    a
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn concurrent_runs_never_share_a_board() {
    let _l = lock();
    let leases = tempfile::tempdir().unwrap();
    let env = [("HIL_LEASE_DIR", leases.path().to_str().unwrap())];
    let lease_file = leases.path().join("sim-rk3588.json");

    let out1 = out_dir("lease-first");
    let (mut first, _rx1) = spawn_hil(&smoke_args("sim-rk3588", &out1, false), &env);
    wait_for("the first run takes the lease", BOOT_LIMIT, || {
        lease_file.exists()
    });
    let holder: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lease_file).unwrap()).unwrap();
    assert_eq!(holder["owner"]["pid"], first.0.id(), "{holder}");

    // Without --wait: refused at once, naming the holder; nothing of the board touched.
    let out2 = out_dir("lease-refused");
    let (mut refused, _rx2) = spawn_hil(&smoke_args("sim-rk3588", &out2, false), &env);
    assert_eq!(wait_exit(&mut refused, Duration::from_secs(60)), 3);
    let r2 = read_json(&out2.join("results.json"));
    let l = case(&r2, "sim-rk3588", "lease");
    assert_eq!(l["outcome"], "error:infrastructure", "{l}");
    let msg = l["message"].as_str().unwrap();
    assert!(
        msg.starts_with("board sim-rk3588 is busy: held by job"),
        "{msg}"
    );
    assert!(msg.contains(&format!("pid {}", first.0.id())), "{msg}");
    assert!(msg.contains("--wait"), "{msg}");
    assert_eq!(case(&r2, "sim-rk3588", "arch")["outcome"], "skipped");
    assert!(!out2.join("boards/sim-rk3588/console.log").exists());

    // With --wait: queued; its board work starts only after the first run has finished.
    let out3 = out_dir("lease-queued");
    let (mut queued, rx3) = spawn_hil(&smoke_args("sim-rk3588", &out3, true), &env);
    let queued_console = out3.join("boards/sim-rk3588/console.log");
    let first_code = loop {
        if let Some(s) = first.0.try_wait().unwrap() {
            break s.code().unwrap_or(-1);
        }
        assert!(
            !queued_console.exists(),
            "the queued run powered the board while the first run held it"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(first_code, 0);
    assert_eq!(wait_exit(&mut queued, BOOT_LIMIT), 0);
    let said: Vec<String> = rx3.try_iter().map(|(_, l)| l).collect();
    assert!(
        said.iter()
            .any(|l| l.contains("sim-rk3588: waiting for the board: held by job")),
        "{said:#?}"
    );
    let r3 = read_json(&out3.join("results.json"));
    assert_eq!(case(&r3, "sim-rk3588", "arch")["outcome"], "pass");
    // Both gave the board back.
    assert!(!lease_file.exists());
}

#[test]
fn lease_of_a_killed_run_is_taken_over_after_it_expires() {
    let _l = lock();
    let leases = tempfile::tempdir().unwrap();
    let env = [("HIL_LEASE_DIR", leases.path().to_str().unwrap())];
    let boards = board_variant("sim-rk3588-lease", |t| t + "\n[lease]\nttl_s = 6\n");
    let mut env = env.to_vec();
    env.push(("HIL_BOARDS", boards.to_str().unwrap()));
    let lease_file = leases.path().join("sim-rk3588-lease.json");

    let out1 = out_dir("lease-killed");
    let (mut killed, _rx1) = spawn_hil(&smoke_args("sim-rk3588-lease", &out1, false), &env);
    let pid = killed.0.id();
    // Kill it (SIGKILL: no cleanup, no release) while it is booting the board.
    crate::sim::wait_for_file_text(
        &out1.join("boards/sim-rk3588-lease/console.log"),
        "U-Boot",
        BOOT_LIMIT,
    );
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    let killed_at = Instant::now();
    let stale: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lease_file).unwrap()).unwrap();
    assert_eq!(
        stale["owner"]["pid"], pid,
        "the killed run's lease stays behind"
    );

    let out2 = out_dir("lease-takeover");
    let (mut next, rx2) = spawn_hil(&smoke_args("sim-rk3588-lease", &out2, true), &env);
    assert_eq!(wait_exit(&mut next, BOOT_LIMIT), 0);
    let said: Vec<(Instant, String)> = rx2.try_iter().collect();
    let waited = said
        .iter()
        .find(|(_, l)| l.contains("waiting for the board: held by job"))
        .unwrap_or_else(|| panic!("the expired-to-be lease was honoured first: {said:#?}"));
    assert!(waited.1.contains(&format!("pid {pid}")), "{}", waited.1);
    let took = said
        .iter()
        .find(|(_, l)| l.contains("took over an expired lease"))
        .unwrap_or_else(|| panic!("{said:#?}"));
    // Not before the lease could have expired: its last heartbeat was at most 6 s
    // before the kill, and a heartbeat comes every 1.5 s.
    assert!(
        took.0.duration_since(killed_at) >= Duration::from_secs(4),
        "taken over {:?} after the kill",
        took.0.duration_since(killed_at)
    );
    let r = read_json(&out2.join("results.json"));
    let props = &r["boards"][0]["properties"];
    let from = props["lease_taken_over_from"].as_str().unwrap();
    assert!(from.contains(&format!("pid {pid}")), "{props}");
    assert_eq!(case(&r, "sim-rk3588-lease", "arch")["outcome"], "pass");
    assert!(!lease_file.exists());
}
