//! The PCIe device checks on the sim lab: `dma` through the SMMU with the smmuv3 trace
//! summary, `pci-topology` against the board file, and both failing when they should.

use crate::common::*;
use crate::sim::{case, lock, out_dir, read_json, spawn_hil, wait_exit, BOOT_LIMIT};
use crate::vfio::board_variant;
use std::path::Path;

fn message(c: &serde_json::Value) -> &str {
    c["message"].as_str().unwrap_or_default()
}

#[test]
fn pcie_devices_suite_passes_with_smmu_trace_summary() {
    let _l = lock();
    let out = out_dir("pcie");
    let (mut g, _rx) = spawn_hil(
        &[
            "run",
            "suites/pcie-devices.toml",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let code = wait_exit(&mut g, BOOT_LIMIT);
    let results = read_json(&out.join("results.json"));
    assert_eq!(code, 0, "{results:#}");

    let topo = case(&results, "sim-rk3588", "pci-topology");
    assert_eq!(topo["outcome"], "pass", "{topo}");
    assert_eq!(topo["figures"]["functions"], 15, "{topo}");
    assert_eq!(topo["figures"]["bridges"], 5, "{topo}");
    let tree =
        std::fs::read_to_string(out.join("boards/sim-rk3588/artifacts/pci-topology.txt")).unwrap();
    assert!(
        tree.contains("    0000:05:01.0 1b36:0005 class 0x00ff00 bar0=mem 0x10300000-0x10300fff bar1=io 0x2000-0x20ff"),
        "{tree}"
    );

    // edu on the root bus: 4 rounds, two transfers each, every one translated by the SMMU
    // for stream 0x38 (00:07.0) at the IOVAs edudma mapped, and no fault.
    let dma = case(&results, "sim-rk3588", "dma");
    assert_eq!(dma["outcome"], "pass", "{dma}");
    let f = &dma["figures"];
    assert_eq!(f["rounds_verified"], 4, "{dma}");
    assert_eq!(f["smmu"]["stream_id"], "0x38", "{dma}");
    assert!(f["smmu"]["translations"].as_u64().unwrap() >= 8, "{dma}");
    assert_eq!(f["smmu"]["fault_events"], 0, "{dma}");
    assert_eq!(f["smmu"]["iova_min"], "0x100000", "{dma}");
    let trace = Path::new(f["smmu"]["trace"].as_str().unwrap());
    let text = std::fs::read_to_string(trace).unwrap();
    assert!(
        text.lines()
            .filter(|l| l.starts_with("smmuv3_translate_success") && l.contains(" sid=0x38 "))
            .count()
            >= 8,
        "{text}"
    );
    assert!(out.join("boards/sim-rk3588/smmuv3-trace.log").is_file());

    // edu behind the switch (stream 0x300): bytes verified, and the DMA to an unmapped
    // IOVA faulted by the SMMU.
    let sw = case(&results, "sim-rk3588", "dma-behind-switch");
    assert_eq!(sw["outcome"], "pass", "{sw}");
    assert_eq!(sw["figures"]["smmu"]["stream_id"], "0x300", "{sw}");
    assert!(
        sw["figures"]["smmu"]["translations"].as_u64().unwrap() >= 4,
        "{sw}"
    );
    assert!(
        sw["figures"]["smmu"]["fault_events"].as_u64().unwrap() >= 1,
        "{sw}"
    );
    assert!(
        sw["figures"]["smmu"]["events"]["SMMU_EVT_F_TRANSLATION"]
            .as_u64()
            .unwrap()
            >= 1,
        "{sw}"
    );
}

#[test]
fn corrupted_dma_and_wrong_topology_fail_naming_the_difference() {
    let _l = lock();
    let moved = "bar1 = \"io 0x2000-0x20ff\"";
    let boards = board_variant("sim-pcie-wrong", |t| {
        assert!(
            t.contains(moved),
            "the board file changed: update this test"
        );
        t.replace(moved, "bar1 = \"io 0x3000-0x30ff\" },\n  { address = \"0000:06:00.0\", id = \"1b36:000e\", class = \"0x0604\", parent = \"0000:00:0a.0\"")
    });
    let out = out_dir("pcie-wrong");
    let suite = data("suites/pcie-faults.toml");
    let (mut g, _rx) = spawn_hil(
        &[
            "run",
            suite.to_str().unwrap(),
            "--board",
            "sim-pcie-wrong",
            "--out",
            out.to_str().unwrap(),
        ],
        &[("HIL_BOARDS", boards.to_str().unwrap())],
    );
    let code = wait_exit(&mut g, BOOT_LIMIT);
    let results = read_json(&out.join("results.json"));
    assert_eq!(code, 1, "a DUT failure: {results:#}");

    let topo = case(&results, "sim-pcie-wrong", "pci-topology");
    assert_eq!(topo["outcome"], "fail", "{topo}");
    assert_eq!(topo["figures"]["differences"], 2, "{topo}");
    let lines: Vec<&str> = message(topo).lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "bar1: 0000:05:01.0 BAR1 is io 0x2000-0x20ff, expected io 0x3000-0x30ff",
            "missing: 0000:06:00.0 (1b36:000e, class 0x0604) behind bridge 0000:00:0a.0 is not present",
        ],
        "{topo}"
    );

    let bad = case(&results, "sim-pcie-wrong", "dma-corrupt");
    assert_eq!(bad["outcome"], "fail", "{bad}");
    assert!(
        message(bad)
            .contains("data mismatch round 1: 1 of 4095 bytes differ, first at offset 0x3e8"),
        "{bad}"
    );
    // The device was put back and works: the injected corruption was the only fault.
    let after = case(&results, "sim-pcie-wrong", "dma-after");
    assert_eq!(after["outcome"], "pass", "{after}");
}
