//! The DUT-side serial loopback tool (fixtures/sertest/sertest.c), cross-compiled into a
//! static arm64 binary that both the board and the guest initramfs carry at
//! /usr/bin/sertest.

use super::host;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The tool's source; its hash is part of the image cache key.
pub const SOURCE: &str = include_str!("../../../fixtures/sertest/sertest.c");
/// Where the binary is in both initramfs archives.
pub const INSTALL_PATH: &str = "usr/bin/sertest";

const CC: &str = "aarch64-linux-gnu-gcc";
/// Debian's cross compiler, and the arm64 libc it links statically against (only a
/// Recommends of the compiler, so `--no-install-recommends` would leave it out).
const PACKAGES: &[&str] = &["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"];
const LIBC_HEADER: &str = "/usr/aarch64-linux-gnu/include/stdio.h";

fn compiler() -> Option<PathBuf> {
    host::find_program(CC).filter(|_| Path::new(LIBC_HEADER).is_file())
}

/// Finds the cross compiler, installing it when root; otherwise a clear error with the
/// command to run.
fn ensure_compiler(note: &dyn Fn(&str)) -> Result<PathBuf> {
    if let Some(cc) = compiler() {
        return Ok(cc);
    }
    if !host::is_root() {
        bail!(
            "the sim lab cross-compiles its DUT tools with {CC} (from {}), which is missing\nrun: {}",
            PACKAGES.join(" and "),
            host::install_command(PACKAGES, false)
        );
    }
    note(&format!("installing host packages: {}", PACKAGES.join(" ")));
    let install = || {
        let mut cmd = Command::new("apt-get");
        cmd.args(["install", "-y", "--no-install-recommends"])
            .args(PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive");
        host::run(&mut cmd)
    };
    if install().is_err() {
        host::apt_update()?;
        install()?;
    }
    compiler().with_context(|| format!("{CC} or {LIBC_HEADER} still missing after install"))
}

/// Compiles the tool in `work` and returns the binary.
pub(crate) fn build(work: &Path, note: &dyn Fn(&str)) -> Result<Vec<u8>> {
    compile(work, "sertest", SOURCE, note)
}

/// Cross-compiles one single-file C tool of `fixtures/` (`fixtures/<stem>/<stem>.c`) into a
/// static aarch64 binary.
pub(crate) fn compile(
    work: &Path,
    stem: &str,
    source: &str,
    note: &dyn Fn(&str),
) -> Result<Vec<u8>> {
    let cc = ensure_compiler(note)?;
    std::fs::create_dir_all(work)?;
    let src = work.join(format!("{stem}.c"));
    let bin = work.join(stem);
    std::fs::write(&src, source)?;
    host::run(
        Command::new(&cc)
            .args(["-static", "-O2", "-Wall", "-o"])
            .arg(&bin)
            .arg(&src),
    )
    .with_context(|| format!("compiling fixtures/{stem}/{stem}.c"))?;
    let data = std::fs::read(&bin)?;
    // An ELF for aarch64 (e_machine 183), or the initramfs would carry a useless file.
    if data.len() < 20
        || &data[..4] != b"\x7fELF"
        || u16::from_le_bytes([data[18], data[19]]) != 183
    {
        bail!("{} did not produce an aarch64 ELF binary", cc.display());
    }
    Ok(data)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn source_has_the_documented_interface() {
        for s in [
            "--master",
            "--slave",
            "--chain",
            "--corrupt",
            "Detected %u slaves in the chain",
            "TX: %llu bytes (%llu bps), RX: %llu bytes (%llu bps)",
            "Data mismatch",
            "Timeout, aborting",
            "Failed to open",
        ] {
            assert!(SOURCE.contains(s), "{s}");
        }
    }
}
