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

/// A board file that validates: relay power whose `on` leaves a marker (so a test can tell
/// that nothing was powered), a console path that does not exist.
const BOARD: &str = r##"name = "NAME"
soc = "rk3588"

[console]
device = "/dev/serial/by-id/usb-hil-config-test-if00"
baud = 115200

[power]
backend = "command"
on = "touch MARKER"
off = "true"
timeout_s = 10

[bootloader]
kind = "u-boot"
prompt = "=> "
autoboot = "Hit any key to stop autoboot"
interrupt = " "
timeout_s = 30
command_timeout_s = 60
commands = ["setenv serverip 192.168.10.1"]
boot_command = "booti ${kernel_addr_r} - ${fdt_addr_r}"

[linux]
bootargs = "console=ttyS2,1500000 panic=-1"
prompt = "# $"
boot_timeout_s = 180
shell_timeout_s = 30
"##;

/// A boards directory holding `NAME.toml`: [`BOARD`] after `edit`, with its power marker.
struct Boards {
    dir: tempfile::TempDir,
    name: String,
}

impl Boards {
    fn new(name: &str, edit: impl Fn(String) -> String) -> Boards {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("powered-on");
        let text = BOARD
            .replace("NAME", name)
            .replace("MARKER", marker.to_str().unwrap());
        std::fs::write(dir.path().join(format!("{name}.toml")), edit(text)).unwrap();
        Boards {
            dir,
            name: name.into(),
        }
    }

    fn file(&self) -> String {
        format!("{}.toml", self.name)
    }

    /// `hil boards check` over this directory.
    fn check(&self) -> std::process::Output {
        run(hil()
            .env("HIL_BOARDS", self.dir.path())
            .args(["boards", "check"]))
    }

    /// `hil run SUITE --board NAME`.
    fn run_suite(&self, suite: &std::path::Path) -> std::process::Output {
        run(hil().env("HIL_BOARDS", self.dir.path()).args([
            "run",
            suite.to_str().unwrap(),
            "--board",
            &self.name,
            "--out",
            self.dir.path().join("reports").to_str().unwrap(),
        ]))
    }

    fn powered(&self) -> bool {
        self.dir.path().join("powered-on").exists()
    }
}

/// A suite file in its own directory.
fn suite_file(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn template_board_validates() {
    // the cases below break exactly one thing of a board that is otherwise fine
    let b = Boards::new("cfg-ok", |t| t);
    let o = b.check();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn timeout_of_2_pow_63_seconds_is_refused_naming_the_bound() {
    let b = Boards::new("cfg-huge", |t| {
        t.replace(
            "timeout_s = 30\ncommand",
            "timeout_s = 9223372036854775807\ncommand",
        )
    });
    let o = b.check();
    assert_clean_config_error(
        &o,
        &b.file(),
        "bootloader.timeout_s",
        "is 9223372036854775807; expected 1 to 86400 seconds (at most 24 h)",
    );
}

#[test]
fn zero_timeout_is_refused() {
    let b = Boards::new("cfg-zero", |t| {
        t.replace("boot_timeout_s = 180", "boot_timeout_s = 0")
    });
    assert_clean_config_error(
        &b.check(),
        &b.file(),
        "linux.boot_timeout_s",
        "is 0; expected 1 to 86400 seconds",
    );
}

#[test]
fn zero_reopen_timeout_still_means_off() {
    let b = Boards::new("cfg-reopen", |t| {
        t.replace("baud = 115200", "baud = 115200\nreopen_timeout_s = 0")
    });
    let o = b.check();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn baud_zero_is_refused() {
    let b = Boards::new("cfg-baud", |t| t.replace("baud = 115200", "baud = 0"));
    assert_clean_config_error(
        &b.check(),
        &b.file(),
        "console.baud",
        "is 0; expected the console's line rate, 1 to 12000000 baud",
    );
}

#[test]
fn empty_prompts_are_refused() {
    let b = Boards::new("cfg-prompt", |t| {
        t.replace("prompt = \"=> \"", "prompt = \"\"")
            .replace("prompt = \"# $\"", "prompt = \"# $\"\nready = \"\"")
    });
    let o = b.check();
    assert_clean_config_error(&o, &b.file(), "bootloader.prompt", "is empty; expected");
    assert_clean_config_error(&o, &b.file(), "linux.ready", "matches the empty string");
}

#[test]
fn control_character_in_bootargs_is_refused_naming_it() {
    let b = Boards::new("cfg-ctl", |t| {
        t.replace("panic=-1\"", "panic=-1\\u0015reboot\"")
    });
    assert_clean_config_error(
        &b.check(),
        &b.file(),
        "linux.bootargs",
        "contains U+0015 (Ctrl-U) at character 30",
    );
}

#[test]
fn control_character_in_a_console_shell_command_is_refused() {
    let b = Boards::new("cfg-suite-ctl", |t| t);
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_file(
        &dir,
        "typed",
        r#"name = "typed"
[defaults]
timeout_s = 30

[[check]]
name = "erases-the-line"
kind = "shell"
command = "\u0015reboot #"

# over SSH nothing is typed: a tab is a tab
[[check]]
name = "over-ssh"
kind = "shell"
via = "ssh"
command = "printf 'a\tb'"
"#,
    );
    let o = b.run_suite(&suite);
    assert_clean_config_error(
        &o,
        "typed.toml",
        "check[0].command",
        "contains U+0015 (Ctrl-U) at character 0",
    );
    assert!(!stderr(&o).contains("check[1]"), "{}", stderr(&o));
    assert!(!b.powered());
}

#[test]
fn suite_deadline_of_2_pow_63_seconds_is_a_config_error_not_a_panic() {
    let b = Boards::new("cfg-deadline", |t| t);
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_file(
        &dir,
        "forever",
        r#"name = "forever"
deadline_s = 9223372036854775807
[defaults]
timeout_s = 30

[[check]]
name = "arch"
kind = "shell"
command = "uname -m"
"#,
    );
    let o = b.run_suite(&suite);
    assert_clean_config_error(
        &o,
        "forever.toml",
        "deadline_s",
        "expected 1 to 604800 seconds (at most 7 days)",
    );
    assert!(!b.powered());
}

#[test]
fn durations_in_check_parameters_are_bounded_too() {
    let b = Boards::new("cfg-param", |t| t);
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_file(
        &dir,
        "edge",
        r#"name = "edge"
[defaults]
timeout_s = 30

[[check]]
name = "edge"
kind = "gpio"
chip_label = "9030000.pl061"
line = 3
edge = "rising"
stimulus = { kind = "command", run = "true", timeout_s = 9223372036854775807 }
"#,
    );
    let o = b.run_suite(&suite);
    assert_clean_config_error(
        &o,
        "edge.toml",
        "check[0].stimulus.timeout_s",
        "at most 24 h",
    );
    assert!(!b.powered());
}

/// Waits for `child` at most `limit`; kills it and fails if it is still running.
fn wait_within(mut child: std::process::Child, limit: std::time::Duration) -> std::process::Output {
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hil still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_fifo_named_like_a_board_file_is_refused_at_once() {
    let b = Boards::new("cfg-fifo-neighbour", |t| t);
    let fifo = b.dir.path().join("x.toml");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let child = hil()
        .env("HIL_BOARDS", b.dir.path())
        .args(["boards", "check"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait_within(child, std::time::Duration::from_secs(5));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    // a file-level problem: the file is named, there is no key to name
    assert!(
        err.contains("x.toml: is a FIFO (named pipe), not a regular file"),
        "{err}"
    );
    // the good board beside it is still checked
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("cfg-fifo-neighbour"), "{out}");

    // the same FIFO as a suite
    let child = hil()
        .args(["run", fifo.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait_within(child, std::time::Duration::from_secs(5));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("x.toml: is a FIFO"), "{}", stderr(&o));
}

#[test]
fn flash_writer_board_without_images_is_refused_before_anything_is_powered() {
    let b = Boards::new("cfg-flash-writer", |t| {
        t + "\n[flash]\nbackend = \"flash-writer\"\nwriter = \"/srv/lab/writer.mot\"\nport = \"/dev/serial/by-id/scif\"\ntimeout_s = 1800\n"
    });
    let o = b.run_suite(&repo().join("suites/smoke.toml"));
    assert_clean_config_error(&o, &b.file(), "flash.images", "is empty");
    assert!(!b.powered(), "nothing may be powered");
    assert_clean_config_error(&b.check(), &b.file(), "flash.images", "[[flash.images]]");
}

#[test]
fn a_key_of_another_flash_backend_names_key_and_line() {
    let b = Boards::new("cfg-flash-key", |t| {
        t + "\n[flash]\nbackend = \"tftp\"\ntftp_dir = \"/srv/tftp\"\nsector = 0\ntimeout_s = 60\n"
    });
    let o = b.check();
    assert_clean_config_error(
        &o,
        &format!("{}:33", b.file()),
        "flash.sector",
        "unknown field `sector`, expected one of `tftp_dir`, `files`, `timeout_s`",
    );
}
