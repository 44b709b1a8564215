//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root: `hil` is run from there, as a user would.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

pub fn hil() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hil"));
    c.current_dir(repo());
    c.env_remove("RUST_BACKTRACE");
    // A developer's lab database or host name would make the tests share leases with
    // real runs; a test that wants them sets its own.
    c.env_remove("HIL_DATABASE_URL");
    c.env_remove("HIL_HOST");
    // Board leases of this test process, apart from a developer's real runs (a test may
    // set its own HIL_LEASE_DIR).
    c.env("HIL_LEASE_DIR", test_lease_dir());
    c
}

pub fn test_lease_dir() -> PathBuf {
    std::env::temp_dir().join(format!("hil-test-leases-{}", std::process::id()))
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("hil runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
