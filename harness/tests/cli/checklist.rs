//! `hil checklist` on the sim lab: sim-rk3588 passes every bring-up step; the same board
//! without an IOMMU stops at the SMMU step with the hint, and nothing after it runs.

use crate::common::*;
use crate::sim::{lock, out_dir, read_json, spawn_hil, wait_exit, BOOT_LIMIT};

fn checklist(board: &str, name: &str, env: &[(&str, &str)]) -> (i32, serde_json::Value, String) {
    let out = out_dir(name);
    let (mut g, _rx) = spawn_hil(&["checklist", board, "--out", out.to_str().unwrap()], env);
    let code = wait_exit(&mut g, BOOT_LIMIT);
    let json = read_json(&out.join("checklist.json"));
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    (code, json, md)
}

fn step<'a>(j: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {j:#}"))
}

#[test]
fn checklist_on_sim_rk3588_ends_all_passed() {
    let _l = lock();
    let (code, j, md) = checklist("sim-rk3588", "checklist", &[]);
    assert_eq!(code, 0, "{j:#}");
    assert_eq!(j["stopped_at"], serde_json::Value::Null);
    let names: Vec<&str> = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "console alive",
            "bootloader reached",
            "kernel boots",
            "kernel options",
            "SMMU probed",
            "PCIe devices and IOMMU groups",
            "VFIO bind",
            "KVM",
            "guest boot",
            "guest sees the devices",
            "ping through the passed NIC",
            "NVMe I/O"
        ]
    );
    for s in j["steps"].as_array().unwrap() {
        assert_eq!(s["outcome"], "pass", "{s:#}");
    }
    assert_eq!(md.matches("- ✔ ").count(), names.len(), "{md}");
    assert!(md.contains("All 12 steps passed."), "{md}");
}

#[test]
fn checklist_without_an_iommu_stops_at_the_smmu_step_with_the_hint() {
    let _l = lock();
    let boards = data("boards");
    let (code, j, md) = checklist(
        "sim-rk3588-noiommu",
        "checklist-noiommu",
        &[("HIL_BOARDS", boards.to_str().unwrap())],
    );
    assert_eq!(code, 1, "{j:#}");
    assert_eq!(j["stopped_at"], "SMMU probed", "{j:#}");
    for before in [
        "console alive",
        "bootloader reached",
        "kernel boots",
        "kernel options",
    ] {
        assert_eq!(step(&j, before)["outcome"], "pass", "{j:#}");
    }
    let smmu = step(&j, "SMMU probed");
    assert_eq!(smmu["outcome"], "fail");
    let hint = smmu["hint"].as_str().unwrap();
    assert!(
        hint.contains("enable the SMMU node") && hint.contains("iommu-map"),
        "{hint}"
    );
    // Nothing after the blocker ran.
    let not_run: Vec<&str> = j["not_run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        not_run.contains(&"VFIO bind") && not_run.contains(&"guest boot"),
        "{not_run:?}"
    );
    assert!(
        md.contains("- ✘ **SMMU probed**") && md.contains("hint: no SMMU driver probed"),
        "{md}"
    );
    assert!(md.contains("☐ VFIO bind — not run"), "{md}");
}

/// A board another run holds: the checklist refuses it naming the holder, like `hil run`,
/// before anything of the board is touched (no sim build, no power).
#[test]
fn checklist_refuses_a_board_another_run_holds() {
    let leases = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // A live holder: this test process, heartbeat now, a long TTL.
    let holder = serde_json::json!({
        "board": "sim-rk3588",
        "owner": {"job": "nightly-77", "user": "ci", "host": "lab2", "pid": std::process::id(), "run_id": "r1"},
        "acquired": now, "heartbeat": now, "ttl_s": 600, "token": 4
    });
    std::fs::write(
        leases.path().join("sim-rk3588.lease"),
        serde_json::to_string(&holder).unwrap(),
    )
    .unwrap();
    let out = out_dir("checklist-busy");
    let t = std::time::Instant::now();
    let o = run(hil().env("HIL_LEASE_DIR", leases.path()).args([
        "checklist",
        "sim-rk3588",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(t.elapsed() < std::time::Duration::from_secs(30));
    let j = read_json(&out.join("checklist.json"));
    assert_eq!(j["stopped_at"], "lease", "{j:#}");
    let l = step(&j, "lease");
    let msg = l["detail"].as_str().unwrap();
    assert!(
        msg.starts_with("board sim-rk3588 is busy: held by job nightly-77 (ci@lab2"),
        "{msg}"
    );
    assert!(l["hint"].as_str().unwrap().contains("--wait"), "{l}");
    // The holder's lease is untouched and nothing was powered (no console log).
    let after = std::fs::read_to_string(leases.path().join("sim-rk3588.lease")).unwrap();
    assert!(after.contains("nightly-77"), "{after}");
    assert!(!out.join("boards/sim-rk3588/console.log").exists());
}
