//! The sertest loopback on sim-rcar: slave in the guest on the passed-through 16550
//! (0000:00:06.0), master on the board on the port wired to it (0000:00:05.0). A clean run
//! passes with at least 64 KiB each way and its figures; corrupted loopback data fails.

use crate::common::*;
use crate::sim::{case, lock, out_dir, read_json, spawn_hil, wait_exit, BOOT_LIMIT};

#[test]
#[ignore = "not passing on the sim yet: in its only run the guest never answered the master's probe byte (issue 4 note)"]
fn sertest_passes_with_64k_each_way_and_figures() {
    let _l = lock();
    let out = out_dir("sertest");
    let (mut g, _rx) = spawn_hil(
        &[
            "run",
            "suites/rcar-sertest.toml",
            "--board",
            "sim-rcar",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let code = wait_exit(&mut g, BOOT_LIMIT);
    let results = read_json(&out.join("results.json"));
    assert_eq!(code, 0, "{results:#}");
    let c = case(&results, "sim-rcar", "sertest");
    assert_eq!(c["outcome"], "pass", "{c}");
    let f = &c["figures"];
    let tx = f["tx_bytes"].as_u64().unwrap();
    assert!(tx >= 65536, "{f}");
    assert_eq!(f["rx_bytes"].as_u64(), Some(tx), "{f}");
    assert!(f["tx_bps"].as_u64().unwrap() > 0 && f["rx_bps"].as_u64().unwrap() > 0);
    assert_eq!(f["errors"], 0);
    assert_eq!(f["slaves"], 1);
    // The slave in the guest saw every byte.
    assert_eq!(f["slave_rx_bytes"].as_u64(), Some(tx + 1), "{f}"); // + the probe
    assert_eq!(f["guest_port"], "/dev/ttyS0", "{f}");
    let board_dir = out.join("boards/sim-rcar");
    let after = crate::vfio::drivers(&board_dir.join("artifacts/pci-after-bind.txt"));
    assert_eq!(
        after.get("0000:00:06.0").map(String::as_str),
        Some("vfio-pci")
    );
}

#[test]
#[ignore = "not passing on the sim yet: in its only run the guest never answered the master's probe byte (issue 4 note)"]
fn corrupted_loopback_data_fails_sertest() {
    let _l = lock();
    let out = out_dir("sertest-corrupt");
    let suite = data("suites/sertest-corrupt.toml");
    let (mut g, _rx) = spawn_hil(
        &[
            "run",
            suite.to_str().unwrap(),
            "--board",
            "sim-rcar",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let code = wait_exit(&mut g, BOOT_LIMIT);
    let results = read_json(&out.join("results.json"));
    let c = case(&results, "sim-rcar", "sertest-corrupted");
    assert_eq!(c["outcome"], "fail", "{c}");
    let msg = c["message"].as_str().unwrap();
    assert!(msg.contains("Data mismatch in message 20"), "{c}");
    assert_eq!(c["figures"]["errors"], 1, "{c}");
    assert_eq!(code, 1);
}
