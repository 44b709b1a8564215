//! The RK3588 VFIO flow on the sim lab: blocked preconditions, driver restore after an
//! interrupt, and (with the guest checks) pass and fail.

use crate::common::*;
use crate::sim::{
    case, lock, out_dir, read_json, spawn_hil, wait_exit, wait_for_file_text, BOOT_LIMIT,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A board directory holding a variant of sim-rk3588 (same QEMU, same SSH port), so a
/// test can change one thing of the real board file.
pub fn board_variant(name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hil-boards-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(repo().join("boards/sim-rk3588.toml")).unwrap();
    let text = text.replace("name = \"sim-rk3588\"", &format!("name = \"{name}\""));
    std::fs::write(dir.join(format!("{name}.toml")), edit(text)).unwrap();
    dir
}

/// Drivers per address from a `pci-*.txt` artifact.
pub fn drivers(artifact: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(artifact)
        .unwrap_or_else(|e| panic!("{}: {e}", artifact.display()))
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.first()?.to_string(), f.get(3)?.to_string()))
        })
        .collect()
}

pub fn assert_restored(board_dir: &Path) {
    let before = drivers(&board_dir.join("artifacts/pci-before-bind.txt"));
    let after = drivers(&board_dir.join("artifacts/pci-after-restore.txt"));
    assert_eq!(before.get("0000:00:03.0").map(String::as_str), Some("nvme"));
    assert_eq!(
        before.get("0000:00:04.0").map(String::as_str),
        Some("e1000e")
    );
    assert_eq!(
        before, after,
        "every device back on the driver it had before the bind"
    );
}

#[test]
fn pci_address_that_does_not_exist_is_blocked_naming_it() {
    let _l = lock();
    let boards = board_variant("sim-ghost", |t| {
        t + "\n[[device]]\nname = \"ghost\"\naddress = \"0000:00:1f.0\"\n"
    });
    let out = out_dir("ghost");
    let suite = data("suites/preflight-only.toml");
    let (mut g, _rx) = spawn_hil(
        &[
            "run",
            suite.to_str().unwrap(),
            "--board",
            "sim-ghost",
            "--out",
            out.to_str().unwrap(),
        ],
        &[("HIL_BOARDS", boards.to_str().unwrap())],
    );
    let code = wait_exit(&mut g, BOOT_LIMIT);
    let results = read_json(&out.join("results.json"));
    assert_eq!(code, 0, "blocked is not a failure: {results:#}");
    for name in ["preflight", "bind"] {
        let c = case(&results, "sim-ghost", name);
        assert_eq!(c["outcome"], "blocked", "{c}");
        assert!(
            c["message"]
                .as_str()
                .unwrap()
                .contains("no PCI device at 0000:00:1f.0"),
            "{c}"
        );
    }
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<skipped message=\"blocked: device ghost: no PCI device at 0000:00:1f.0"),
        "{junit}"
    );
}

#[test]
fn interrupt_during_the_guest_restores_drivers() {
    let _l = lock();
    let out = out_dir("interrupt");
    let (mut g, _rx) = spawn_hil(
        &[
            "run",
            "suites/rk3588-vfio.toml",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let board_dir = out.join("boards/sim-rk3588");
    // The guest's console log appears when its QEMU starts, after the bind.
    wait_for_file_text(
        &board_dir.join("guest-console.log"),
        "hil console log",
        BOOT_LIMIT,
    );
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: signalling our own child hil.
    assert_eq!(unsafe { libc::kill(g.0.id() as i32, libc::SIGINT) }, 0);
    let code = wait_exit(&mut g, Duration::from_secs(120));
    assert_eq!(code, 130);
    let results = read_json(&out.join("results.json"));
    assert_eq!(case(&results, "sim-rk3588", "bind")["outcome"], "pass");
    let gb = case(&results, "sim-rk3588", "guest-boot");
    assert_eq!(gb["outcome"], "skipped", "{gb}");
    assert!(
        gb["message"].as_str().unwrap().contains("interrupted"),
        "{gb}"
    );
    assert_eq!(results["exit_code"], 130);
    assert_restored(&board_dir);
}
