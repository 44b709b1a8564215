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
    // Blocked is not a failure, but a run in which every check was blocked tested nothing:
    // exit 5, never green.
    assert_eq!(code, 5, "all blocked is nothing tested: {results:#}");
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

/// suites/rk3588-vfio.toml as shipped, followed by the corrupted read-back check of
/// tests/data/suites/nvme-corrupt.toml, in one suite file.
fn vfio_suite_then_corruption(out: &Path) -> PathBuf {
    let shipped = std::fs::read_to_string(repo().join("suites/rk3588-vfio.toml")).unwrap();
    let corrupt = std::fs::read_to_string(data("suites/nvme-corrupt.toml")).unwrap();
    let check = &corrupt[corrupt.find("\n[[check]]").expect("a check")..];
    std::fs::create_dir_all(out).unwrap();
    let p = out.join("rk3588-vfio-then-corruption.toml");
    std::fs::write(&p, format!("{shipped}\n{check}timeout_s = 300\n")).unwrap();
    p
}

#[test]
fn rk3588_vfio_suite_passes_with_figures_then_a_corrupted_readback_fails_and_drivers_are_restored()
{
    let _l = lock();
    // The suite as shipped: every check passes, exit 0.
    let out = out_dir("vfio");
    let (mut g, _rx) = spawn_hil(
        &[
            "run",
            repo().join("suites/rk3588-vfio.toml").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let code = wait_exit(&mut g, BOOT_LIMIT);
    let results = read_json(&out.join("results.json"));
    for name in [
        "boot",
        "preflight",
        "bind",
        "guest-boot",
        "guest-sees-devices",
        "ping",
        "nvme-io",
    ] {
        assert_eq!(
            case(&results, "sim-rk3588", name)["outcome"],
            "pass",
            "{name}: {results:#}"
        );
    }
    assert_eq!(code, 0, "{results:#}");
    let ping = &case(&results, "sim-rk3588", "ping")["figures"];
    assert_eq!(ping["received"], 5);
    assert!(ping["rtt_avg_ms"].as_f64().unwrap() > 0.0, "{ping}");
    let io = &case(&results, "sim-rk3588", "nvme-io")["figures"];
    assert!(
        io["write_mb_s"].as_f64().unwrap() > 0.0 && io["read_mb_s"].as_f64().unwrap() > 0.0,
        "{io}"
    );
    let board_dir = out.join("boards/sim-rk3588");
    let after_bind = drivers(&board_dir.join("artifacts/pci-after-bind.txt"));
    assert_eq!(
        after_bind.get("0000:00:03.0").map(String::as_str),
        Some("vfio-pci")
    );
    assert_eq!(
        after_bind.get("0000:00:04.0").map(String::as_str),
        Some("vfio-pci")
    );
    assert_restored(&board_dir);
    let gc = std::fs::read_to_string(board_dir.join("guest-console.log")).unwrap();
    assert!(gc.contains("hil: guest ready"), "guest console logged");
    // Every testcase carries its transcript: the SSH checks their commands, guest-boot the
    // guest's console from its start.
    let cases = crate::sim::junit_consumer(&out.join("junit.xml"));
    for line in cases.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(
            f[f.len() - 1].parse::<usize>().unwrap() > 0,
            "system-out of {line}"
        );
    }
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    let system_out = |name: &str| {
        let tc = junit
            .split(&format!("<testcase name=\"{name}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("no testcase {name}"));
        tc.split("</testcase>").next().unwrap().to_string()
    };
    assert!(system_out("bind").contains("--- ssh (commands on the board) ---\n$ "));
    assert!(system_out("guest-boot").contains("--- guest console ---"));
    assert!(system_out("guest-boot").contains("hil: guest ready"));
    // The page of a passing run: a bar and a row per case, no failure to link to.
    let chromium = hil::browser::installed();
    if let Some(c) = &chromium {
        let page = crate::common::read_report_in_chromium(c, &out, "rk3588-vfio-pass");
        let (n, attempts) = crate::common::cases_and_attempts(&out);
        assert_eq!((page.bars, page.rows), (n + attempts, n), "{page:?}");
        assert!(page.target_text.is_empty(), "no failure link: {page:?}");
    } else {
        eprintln!(
            "browser part skipped: {} is not installed",
            hil::browser::CHROMIUM
        );
    }

    // Then the data is changed behind the check's back between write and read-back (the
    // shipped suite's bind and guest boot, then the corrupted check, chosen with --check):
    // the DUT returned other data, so `fail` (not an error), and the run exits 1.
    let out = out_dir("vfio-corrupt");
    let suite = vfio_suite_then_corruption(&out_dir("vfio-suite"));
    let (mut g, _rx) = spawn_hil(
        &[
            "run",
            suite.to_str().unwrap(),
            "--check",
            "bind",
            "--check",
            "guest-boot",
            "--check",
            "nvme-io-corrupted",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let code = wait_exit(&mut g, BOOT_LIMIT);
    let results = read_json(&out.join("results.json"));
    let c = case(&results, "sim-rk3588", "nvme-io-corrupted");
    assert_eq!(c["outcome"], "fail", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("differs from what was written"),
        "{c}"
    );
    assert_eq!(code, 1, "{results:#}");
    assert_restored(&out.join("boards/sim-rk3588"));
    // Its page: the failure is told over SSH, not by the console, so the "First failure"
    // link lands on the failed check's row with its message.
    if let Some(c) = &chromium {
        let page = crate::common::read_report_in_chromium(c, &out, "rk3588-vfio-fail");
        let (n, attempts) = crate::common::cases_and_attempts(&out);
        assert_eq!((page.bars, page.rows), (n + attempts, n), "{page:?}");
        assert!(!page.target_in_log, "{page:?}");
        assert!(
            page.target_text.contains("nvme-io-corrupted")
                && page.target_text.contains("differs from what was written"),
            "{page:?}"
        );
    }
}

#[test]
fn group_with_a_device_left_on_a_host_driver_is_blocked_not_viable() {
    let _l = lock();
    let out = out_dir("bridge");
    let suite = data("suites/preflight-only.toml");
    let (mut g, _rx) = spawn_hil(
        &[
            "run",
            suite.to_str().unwrap(),
            "--board",
            "sim-rk3588-bridge",
            "--out",
            out.to_str().unwrap(),
        ],
        &[("HIL_BOARDS", data("boards").to_str().unwrap())],
    );
    let code = wait_exit(&mut g, BOOT_LIMIT);
    let results = read_json(&out.join("results.json"));
    // Preflight ran and passed, so something was tested: a blocked bind is not a failure and
    // the run exits 0 (only a run where nothing reached pass or fail exits 5).
    assert_eq!(code, 0, "preflight passed, bind blocked: {results:#}");
    let pre = case(&results, "sim-rk3588-bridge", "preflight");
    assert_eq!(pre["outcome"], "pass", "{pre}");
    let bind = case(&results, "sim-rk3588-bridge", "bind");
    assert_eq!(bind["outcome"], "blocked", "{bind}");
    let msg = bind["message"].as_str().unwrap();
    assert!(
        msg.contains("is not viable") && msg.contains("0000:01:00.0") && msg.contains("shpchp"),
        "{msg}"
    );
    // what was bound before the group turned out unusable is put back
    let before = drivers(&out.join("boards/sim-rk3588-bridge/artifacts/pci-before-bind.txt"));
    let after = drivers(&out.join("boards/sim-rk3588-bridge/artifacts/pci-after-restore.txt"));
    assert_eq!(before.get("0000:00:03.0"), after.get("0000:00:03.0"));
}
