//! The lab engineer's verbs through the CLI: `hil power`, `hil ssh` and `hil console --to`
//! are refused while a run holds the board (exit 3, naming the holder), `hil power status`
//! shows the holder without taking the lease, and `hil power BOARD cycle` on a command-powered board runs
//! its commands once the board is free. (`hil ssh` running a command on the fake board's
//! SSH server is tested beside the verb, in harness/src/verbs/ssh.rs.)

use crate::common::*;
use crate::fake_board::{Fake, BOARD, LIMIT};
use crate::sim::wait_exit;
use std::path::Path;
use std::time::{Duration, Instant};

/// A board file named like the fake board, powered by commands that log to `log`.
pub fn relay_board(log: &Path) -> String {
    let sh = |w: &str| format!("echo {w} >> '{}'", log.display());
    format!(
        r##"name = "{BOARD}"
soc = "rk3588"
[console]
device = "/dev/serial/by-id/usb-relay-test"
baud = 115200
[power]
backend = "command"
on = "{}"
off = "{}"
timeout_s = 10
[bootloader]
kind = "u-boot"
prompt = "=> "
autoboot = "Hit any key"
interrupt = " "
timeout_s = 10
command_timeout_s = 10
boot_command = "booti"
[linux]
bootargs = ""
prompt = "# $"
boot_timeout_s = 10
shell_timeout_s = 10
"##,
        sh("on"),
        sh("off")
    )
}

#[test]
fn power_ssh_and_console_to_are_refused_while_a_run_holds_the_board() {
    let fake = Fake::new(|t| t);
    let tmp = tempfile::tempdir().unwrap();
    let hold = tmp.path().join("hold.toml");
    std::fs::write(
        &hold,
        "name = \"verb-hold\"\n[defaults]\ntimeout_s = 60\nvia = \"console\"\n\n[[check]]\nname = \"hold\"\nkind = \"shell\"\ncommand = \"sleep 6; echo held\"\nexpect = \"^held$\"\n",
    )
    .unwrap();
    let out = fake.out("verbs-hold");
    let (mut run, _rx) = fake.spawn(hold.to_str().unwrap(), &out, &[]);
    let pid = run.0.id();
    let end = Instant::now() + LIMIT;
    while fake.lease().is_none() {
        assert!(Instant::now() < end, "the run takes the lease");
        std::thread::sleep(Duration::from_millis(20));
    }
    let verb = |args: &[&str]| {
        hil()
            .current_dir(tmp.path())
            .envs(fake.env())
            .args(args)
            .output()
            .unwrap()
    };
    let refused = |args: &[&str]| {
        let o = verb(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            err.contains("board fake-board is busy: held by job")
                && err.contains(&format!("pid {pid}"))
                && err.contains("hint: wait until the holder gives the board back"),
            "{args:?}: {err}"
        );
    };
    refused(&["ssh", BOARD, "echo", "hi"]);
    refused(&["console", BOARD, "--to", "linux"]);
    assert!(
        !tmp.path().join("reports/console").exists(),
        "the refused console walked nothing"
    );

    // The same board name, now powered by relay commands (the run keeps the file it read).
    let log = tmp.path().join("relay.log");
    let boards = fake.env()[0].1.clone();
    std::fs::write(
        Path::new(&boards).join("fake-board.toml"),
        relay_board(&log),
    )
    .unwrap();
    refused(&["power", BOARD, "cycle"]);
    refused(&["power", BOARD, "off"]);
    assert!(
        !log.exists(),
        "nothing switched while the run held the board"
    );
    let o = verb(&["power", BOARD, "status"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(said.contains("power.backend = \"command\""), "{said}");
    assert!(said.contains("power: unknown"), "{said}");
    assert!(
        said.contains("lease: held by job") && said.contains(&format!("pid {pid}")),
        "{said}"
    );

    assert_eq!(wait_exit(&mut run, LIMIT), 0);
    // Free now: cycle without a cycle command is off, 2 s, on.
    let t = Instant::now();
    let o = verb(&["power", BOARD, "cycle"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "off\non\n");
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        said.contains("board fake-board: power cycle done (power.off, 2 s, power.on ran)"),
        "{said}"
    );
    assert!(fake.lease().is_none(), "the verb gave the board back");
    let o = verb(&["power", BOARD, "status"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("lease: free"));
}
