//! Malformed or mistyped board and suite files: exit status 2 and one message naming the
//! file, the key and what was expected; never a panic or a backtrace.

use crate::common::*;

fn assert_clean_config_error(o: &std::process::Output, file: &str, key: &str, expected: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "exit status; stderr: {err}");
    assert!(err.contains(file), "names the file {file}: {err}");
    assert!(
        err.contains(&format!("key `{key}`")),
        "names the key {key}: {err}"
    );
    assert!(
        err.contains(expected),
        "says what was expected ({expected}): {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "no panic: {err}"
    );
}

#[test]
fn suite_with_wrong_type_names_file_key_and_line() {
    let o = run(hil().args(["run", data("suites/mistyped.toml").to_str().unwrap()]));
    assert_clean_config_error(&o, "mistyped.toml:15", "check[1].timeout_s", "expected u64");
}

#[test]
fn suite_with_unknown_key_lists_the_valid_ones() {
    let o = run(hil().args(["run", data("suites/unknown-key.toml").to_str().unwrap()]));
    assert_clean_config_error(
        &o,
        "unknown-key.toml",
        "check[0].comand",
        "expected one of `command`",
    );
}

#[test]
fn board_with_wrong_type_is_rejected_before_anything_runs() {
    let o = run(hil().env("HIL_BOARDS", data("boards")).args([
        "run",
        "suites/smoke.toml",
        "--board",
        "broken-board",
    ]));
    assert_clean_config_error(&o, "broken-board.toml:6", "console.baud", "expected u32");
}

#[test]
fn board_with_missing_power_command_says_which() {
    let o = run(hil().env("HIL_BOARDS", data("boards")).args([
        "run",
        "suites/smoke.toml",
        "--board",
        "no-power-cmd",
    ]));
    let err = stderr(&o);
    assert_clean_config_error(
        &o,
        "no-power-cmd.toml",
        "power.off",
        "expected a shell command",
    );
    // every problem of the file in one go
    assert!(
        err.contains("key `console.device`") && err.contains("by-id"),
        "{err}"
    );
    assert!(err.contains("key `power.timeout_s`"), "{err}");
}

#[test]
fn unknown_board_lists_known_ones() {
    let o = run(hil().args(["run", "suites/smoke.toml", "--board", "sim-rk3589"]));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sim-rk3589.toml") && err.contains("sim-rk3588"),
        "{err}"
    );
}

#[test]
fn missing_suite_file_is_a_config_error() {
    let o = run(hil().args(["run", "suites/nope.toml"]));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("suites/nope.toml") && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn shipped_board_files_validate() {
    let o = run(hil().args(["boards", "check"]));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    for b in ["sim-rk3588", "sim-rcar", "rk3588-evb", "rcar-salvator-xs"] {
        assert!(
            out.lines().any(|l| l.starts_with(b) && l.ends_with("ok")),
            "{b} listed ok: {out}"
        );
    }
}

#[test]
fn boards_check_fails_on_a_broken_board() {
    let o = run(hil()
        .env("HIL_BOARDS", data("boards"))
        .args(["boards", "check"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("broken-board.toml"));
}

#[test]
fn bad_pci_topology_entry_names_the_key_before_anything_runs() {
    let boards = crate::vfio::board_variant("sim-bad-topology", |t| {
        t.replace(
            "parent = \"0000:04:00.0\", bar0 = \"mem 0x10300000-0x10300fff\", bar1 = \"io 0x2000-0x20ff\"",
            "parent = \"0000:04:00.1\", bar0 = \"mem 0x10300000-0x10300fff\", bar1 = \"io 0x2000\"",
        )
    });
    let o = run(hil().env("HIL_BOARDS", &boards).args([
        "run",
        "suites/pcie-devices.toml",
        "--board",
        "sim-bad-topology",
    ]));
    assert_clean_config_error(
        &o,
        "sim-bad-topology.toml",
        "pci_topology.devices[14].parent",
        "is \"0000:04:00.1\", which is not in pci_topology.devices",
    );
    assert_clean_config_error(
        &o,
        "sim-bad-topology.toml",
        "pci_topology.devices[14].bar1",
        "expected io, mem, io 0x3000-0x30ff",
    );
}
