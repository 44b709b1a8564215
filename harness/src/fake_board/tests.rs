//! The fake board through hil's own engine (board session, console broker, expect, console
//! shell, ssh2 client): what the fake does that a test may rely on. The boot and failure
//! paths of the engine on a fake board are tested in boot.rs.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::script::Script;
use super::{PowerOn, Spec};
use crate::boot::{BoardSession, State};
use crate::config::fake::FakeCommand;
use crate::config::Board;
use crate::error::StepError;
use crate::shell::ShellError;
use crate::ssh::SshError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The test keys the fake board files use.
pub fn key_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fake-board")
}

/// A port on 127.0.0.1 that was free a moment ago (tests run in parallel).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A fake board file like the sim's (U-Boot TFTP boot, SSH) with `fake` appended to its
/// `[fake]` table and `edit` applied to the whole text; loaded and validated as hil does.
pub struct TestBoard {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub board: Board,
}

pub fn test_board(fake: &str, edit: impl Fn(String) -> String) -> TestBoard {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake-unit.toml");
    let text = r##"name = "fake-unit"
soc = "fake"
[console]
device = "fake"
baud = 115200
[power]
backend = "fake"
[bootloader]
kind = "u-boot"
prompt = "=> "
autoboot = "Hit any key to stop autoboot"
interrupt = " "
timeout_s = 5
command_timeout_s = 5
commands = [
  "setenv ipaddr 10.0.2.15",
  "setenv serverip 10.0.2.2",
  "tftp ${kernel_addr_r} Image.gz",
  "tftp ${ramdisk_addr_r} initrd.gz",
  "setenv initrd_size ${filesize}",
]
boot_command = "booti ${kernel_addr_r} ${ramdisk_addr_r}:${initrd_size} ${fdt_addr}"
[linux]
bootargs = "console=ttyAMA0 panic=-1"
ready = "hil: board ready"
prompt = "# $"
boot_timeout_s = 10
shell_timeout_s = 5
[ssh]
host = "127.0.0.1"
port = PORT
user = "root"
identity = "KEYS/client_ed25519"
host_key_file = "KEYS/ssh_host_ed25519.pub"
connect_timeout_s = 10
[fake]
ssh_host_key = "KEYS/ssh_host_ed25519"
tftp_files = ["Image.gz", "initrd.gz"]
"##
    .replace("PORT", &free_port().to_string())
    .replace("KEYS", key_dir().to_str().unwrap());
    std::fs::write(&path, edit(format!("{text}{fake}\n"))).unwrap();
    let board = Board::load(&path).unwrap_or_else(|e| panic!("{e}"));
    TestBoard { dir, path, board }
}

impl TestBoard {
    /// A board session on it, reports in the board file's temp dir.
    pub fn session(&self) -> BoardSession {
        let target = self.board.ssh_target(&self.path).unwrap();
        std::fs::create_dir_all(self.dir.path().join("run")).unwrap();
        BoardSession::new(self.board.clone(), self.dir.path().join("run"), target)
    }

    pub fn console_log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.path().join("run/console.log")).unwrap())
            .into_owned()
    }
}

/// A power-on's shared state without a running board (for the U-Boot shell's own tests).
pub fn power_on(edit: impl Fn(String) -> String) -> PowerOn {
    let tb = test_board("", edit);
    let cmds = &tb.board.fake.as_ref().unwrap().commands;
    PowerOn {
        spec: Arc::new(Spec::from_board(&tb.board).unwrap()),
        script: Arc::new(Script::new(cmds)),
        boot: 1,
        scratch: tb.dir.path().join("scratch"),
    }
}

const T: Duration = Duration::from_secs(5);

fn rule(pattern: &str, output: &str) -> FakeCommand {
    FakeCommand {
        pattern: pattern.into(),
        output: output.into(),
        status: 0,
        action: None,
        after_s: 0.0,
        boots: None,
        times: None,
    }
}

#[test]
fn rules_apply_on_their_boots_and_times_then_fall_through() {
    let s = Script::new(&[
        FakeCommand {
            times: Some(1),
            ..rule("^probe$", "first")
        },
        FakeCommand {
            boots: Some(vec![2]),
            ..rule("^probe$", "second boot")
        },
        rule("^probe$", "usual"),
    ]);
    let out = |boot| s.answer("probe", boot).map(|r| r.output);
    assert_eq!(out(1).as_deref(), Some("first"));
    assert_eq!(out(1).as_deref(), Some("usual"), "times = 1 is used up");
    assert_eq!(out(2).as_deref(), Some("second boot"));
    assert_eq!(out(3).as_deref(), Some("usual"));
    assert!(s.answer("other", 1).is_none());
}

#[tokio::test]
async fn ssh_exec_runs_the_script_and_this_machine_with_status_and_stdin() {
    let tb = test_board(
        r#"[[fake.command]]
match = "^probe-link$"
output = "link up"
status = 5"#,
        |t| t,
    );
    let mut s = tb.session();
    s.reach(State::LinuxSsh).await.unwrap();
    let ssh = s.ssh().unwrap();
    let o = ssh.exec("probe-link", T).await.unwrap();
    assert_eq!((o.output.as_str(), o.status), ("link up\n", 5));
    // Not scripted: `sh -c` here, stderr interleaved, in the board's scratch dir.
    let o = ssh
        .exec("echo out; echo err >&2; pwd; exit 3", T)
        .await
        .unwrap();
    assert_eq!(o.status, 3);
    let lines: Vec<&str> = o.output.lines().collect();
    assert_eq!(lines[..2], ["out", "err"], "{o:?}");
    assert!(lines[2].ends_with("run/fake-root"), "{o:?}");
    // Upload: data on the channel is the command's stdin, its EOF ends it.
    let local = tb.dir.path().join("payload.bin");
    std::fs::write(&local, vec![0x5au8; 200_000]).unwrap();
    let sha = ssh.upload(&local, "payload.bin", T).await.unwrap();
    assert_eq!(sha, crate::hash::sha256_file(&local).unwrap());
    assert_eq!(
        std::fs::read(tb.dir.path().join("run/fake-root/payload.bin")).unwrap(),
        std::fs::read(&local).unwrap()
    );
    s.power_off().await.unwrap();
}

#[tokio::test]
async fn ssh_refuses_other_keys_and_hil_refuses_another_host_key() {
    let tb = test_board("", |t| t);
    let mut s = tb.session();
    s.reach(State::LinuxConsole).await.unwrap();
    let good = tb.board.ssh_target(&tb.path).unwrap().unwrap();
    let log = tb.dir.path().join("ssh.log");
    let wrong_login = crate::ssh::SshTarget {
        identity: key_dir().join("ssh_host_ed25519"),
        ..good.clone()
    };
    let e = wrong_login
        .connect(Duration::from_secs(2), &log)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&e, SshError::Unreachable { last, .. } if last.contains("login as root")),
        "{e}"
    );
    let wrong_pin = crate::ssh::SshTarget {
        host_key: crate::ssh::parse_public_key(
            &std::fs::read_to_string(key_dir().join("client_ed25519.pub")).unwrap(),
        )
        .unwrap()
        .1,
        ..good.clone()
    };
    let e = wrong_pin.connect(T, &log).await.err().unwrap();
    assert!(matches!(e, SshError::HostKeyMismatch { .. }), "{e}");
    assert!(good.connect(T, &log).await.is_ok());
    s.power_off().await.unwrap();
}

#[tokio::test]
async fn a_console_flood_ends_with_ctrl_c_and_the_shell_answers_again() {
    let tb = test_board(
        r#"[[fake.command]]
match = "^yes hil-flood-line$"
output = "hil-flood-line"
action = "flood""#,
        |t| t,
    );
    let mut s = tb.session();
    s.reach(State::LinuxConsole).await.unwrap();
    let sh = s.shell().unwrap();
    let t0 = Instant::now();
    let e = sh
        .run("yes hil-flood-line", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(e, ShellError::Timeout { .. }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    let o = sh.run("echo still here", T).await.unwrap();
    assert_eq!((o.output.trim(), o.status), ("still here", 0));
    s.power_off().await.unwrap();
    assert!(tb.console_log().matches("hil-flood-line\r\n").count() > 100);
}

#[tokio::test]
async fn the_scratch_dir_is_emptied_at_each_power_on_and_boots_are_counted() {
    let tb = test_board("", |t| t);
    let mut s = tb.session();
    s.reach(State::LinuxConsole).await.unwrap();
    let sh = s.shell().unwrap();
    let o = sh
        .run("touch left-over; ls; echo boot $HIL_FAKE_BOOT", T)
        .await
        .unwrap();
    assert_eq!(o.output, "left-over\nboot 1\n");
    s.power_off().await.unwrap();
    s.reach(State::LinuxConsole).await.unwrap();
    let o = s
        .shell()
        .unwrap()
        .run("ls; echo boot $HIL_FAKE_BOOT", T)
        .await
        .unwrap();
    assert_eq!(o.output, "boot 2\n");
    // What would change this machine is refused, not run.
    let o = s
        .shell()
        .unwrap()
        .run("echo 1 > /sys/bus/pci/rescan", T)
        .await
        .unwrap();
    assert_eq!(o.status, 126);
    assert!(o.output.contains("not run on this machine"), "{o:?}");
    s.power_off().await.unwrap();
}

#[tokio::test]
async fn a_command_past_the_fakes_time_limit_is_killed() {
    let tb = test_board("command_timeout_s = 1", |t| t);
    let mut s = tb.session();
    s.reach(State::LinuxConsole).await.unwrap();
    let t0 = Instant::now();
    let o = s.shell().unwrap().run("sleep 30", T).await.unwrap();
    assert_eq!(o.status, 124, "{o:?}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    s.power_off().await.unwrap();
}

#[tokio::test]
async fn a_reset_during_a_command_is_the_bootloader_banner_death_pattern() {
    let tb = test_board(
        r#"[[fake.command]]
match = "^reboot-now$"
action = "reset""#,
        |t| t,
    );
    let mut s = tb.session();
    s.reach(State::LinuxConsole).await.unwrap();
    let e = StepError::from(s.shell().unwrap().run("reboot-now", T).await.unwrap_err());
    assert!(e.board_lost(), "{e}");
    assert!(
        e.to_string().contains("unexpected bootloader banner"),
        "{e}"
    );
    s.power_off().await.unwrap();
}

#[tokio::test]
async fn a_frozen_board_times_the_command_out_on_console_and_over_ssh() {
    let tb = test_board(
        r#"[[fake.command]]
match = "^freeze$"
action = "freeze""#,
        |t| t,
    );
    let mut s = tb.session();
    s.reach(State::LinuxSsh).await.unwrap();
    let e = s
        .ssh()
        .unwrap()
        .exec("freeze", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(e, SshError::Timeout { .. }), "{e}");
    let e = s
        .shell()
        .unwrap()
        .run("echo anyone", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(e, ShellError::Timeout { .. }), "{e}");
    s.power_off().await.unwrap();
}
