//! Host tools the lab build shells out to, and installing them from Debian packages.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub(crate) const U_BOOT_BIN: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";

/// Absolute paths of the host programs used by the build (and by the sim lab itself).
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    pub apt_get: PathBuf,
    pub apt_cache: PathBuf,
    pub dpkg_deb: PathBuf,
    pub depmod: PathBuf,
    pub mke2fs: PathBuf,
    pub gzip: PathBuf,
    pub dropbearkey: PathBuf,
    pub ssh_keygen: PathBuf,
    pub u_boot: PathBuf,
    /// Not used by the build, but a lab without it cannot run: installed alongside.
    pub qemu: PathBuf,
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Looks in PATH and the sbin dirs (a non-root PATH often lacks them, but depmod and
/// mke2fs live there and run fine unprivileged).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// (program or absolute file, Debian package providing it)
const REQUIRED: &[(&str, &str)] = &[
    ("apt-get", "apt"),
    ("apt-cache", "apt"),
    ("dpkg", "dpkg"),
    ("dpkg-deb", "dpkg"),
    ("depmod", "kmod"),
    ("mke2fs", "e2fsprogs"),
    ("gzip", "gzip"),
    ("dropbearkey", "dropbear-bin"),
    ("ssh-keygen", "openssh-client"),
    (U_BOOT_BIN, "u-boot-qemu"),
    ("qemu-system-aarch64", "qemu-system-arm"),
];

fn locate(name: &str) -> Option<PathBuf> {
    if name.starts_with('/') {
        Some(PathBuf::from(name)).filter(|p| p.is_file())
    } else {
        find_program(name)
    }
}

/// The exact command a non-root user is told to run.
pub(crate) fn install_command(pkgs: &[&str], add_arm64: bool) -> String {
    let mut parts = Vec::new();
    if add_arm64 {
        parts.push("sudo dpkg --add-architecture arm64".to_string());
    }
    parts.push("sudo apt-get update".to_string());
    if !pkgs.is_empty() {
        parts.push(format!(
            "sudo apt-get install -y --no-install-recommends {}",
            pkgs.join(" ")
        ));
    }
    parts.join(" && ")
}

/// Finds every host tool; installs the missing ones when root. Cheap (a few stats)
/// when everything is present, so it runs on every `build()`.
pub(crate) fn ensure_tools(log: &dyn Fn(&str)) -> Result<Tools> {
    let mut missing: Vec<&str> = REQUIRED
        .iter()
        .filter(|(n, _)| locate(n).is_none())
        .map(|(_, p)| *p)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        if missing.contains(&"apt") || missing.contains(&"dpkg") {
            bail!("this host has no apt/dpkg: the sim lab needs a Debian 12 host");
        }
        if !is_root() {
            bail!(
                "host packages missing for the sim lab: {}\nrun: {}",
                missing.join(" "),
                install_command(&missing, !has_arm64_arch()?)
            );
        }
        log(&format!("installing host packages: {}", missing.join(" ")));
        ensure_arm64_arch()?;
        apt_update()?;
        let mut cmd = Command::new("apt-get");
        // --reinstall also restores a tool deleted from an installed package.
        cmd.args(["install", "--reinstall", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)?;
    }
    let get = |n: &str| locate(n).with_context(|| format!("{n} still missing after install"));
    Ok(Tools {
        apt_get: get("apt-get")?,
        apt_cache: get("apt-cache")?,
        dpkg_deb: get("dpkg-deb")?,
        depmod: get("depmod")?,
        mke2fs: get("mke2fs")?,
        gzip: get("gzip")?,
        dropbearkey: get("dropbearkey")?,
        ssh_keygen: get("ssh-keygen")?,
        u_boot: get(U_BOOT_BIN)?,
        qemu: get("qemu-system-aarch64")?,
    })
}

pub(crate) fn has_arm64_arch() -> Result<bool> {
    let out = run(Command::new("dpkg").arg("--print-foreign-architectures"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .any(|a| a == "arm64"))
}

/// Adds arm64 as a foreign architecture when missing (root only). Returns whether it
/// was added, in which case the caller must `apt-get update`.
pub(crate) fn ensure_arm64_arch() -> Result<bool> {
    if has_arm64_arch()? {
        return Ok(false);
    }
    if !is_root() {
        bail!(
            "dpkg has no arm64 architecture; run: {}",
            install_command(&[], true)
        );
    }
    run(Command::new("dpkg").args(["--add-architecture", "arm64"]))?;
    Ok(true)
}

pub(crate) fn apt_update() -> Result<()> {
    if !is_root() {
        bail!(
            "apt package lists need refreshing; run: {}",
            install_command(&[], !has_arm64_arch()?)
        );
    }
    run(Command::new("apt-get")
        .args(["update", "-q"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(())
}

/// Runs a command to completion, capturing output; a failure carries the command line
/// and the tail of stderr, which is what one needs to debug an apt or mke2fs problem.
pub(crate) fn run(cmd: &mut Command) -> Result<Output> {
    let desc = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {desc}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{desc} failed ({}):\n{}", out.status, tail.join("\n"));
    }
    Ok(out)
}

pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    if s.len() > 300 {
        s.truncate(300);
        s.push('…');
    }
    s
}

/// gzip through the host's gzip (-n: no name/timestamp, so outputs are reproducible).
pub(crate) fn gzip(tools: &Tools, data: &[u8], level: u32) -> Result<Vec<u8>> {
    let mut child = Command::new(&tools.gzip)
        .arg(format!("-{level}"))
        .args(["-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start gzip")?;
    let mut stdin = child.stdin.take().context("gzip stdin")?;
    let mut stdout = child.stdout.take().context("gzip stdout")?;
    let mut out = Vec::new();
    std::thread::scope(|s| -> Result<()> {
        // Feed from another thread: gzip's output pipe would fill up otherwise.
        let writer = s.spawn(move || stdin.write_all(data));
        stdout.read_to_end(&mut out)?;
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("gzip writer panicked"))??;
        Ok(())
    })?;
    if !child.wait()?.success() {
        bail!("gzip failed");
    }
    Ok(out)
}

pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    crate::hash::sha256_file(path).with_context(|| path.display().to_string())
}

/// Writes via a temporary file and rename, so readers never see half a file.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data).with_context(|| tmp.display().to_string())?;
    std::fs::rename(&tmp, path).with_context(|| path.display().to_string())?;
    Ok(())
}

pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn install_command_text() {
        assert_eq!(
            install_command(&["kmod", "e2fsprogs"], true),
            "sudo dpkg --add-architecture arm64 && sudo apt-get update && \
             sudo apt-get install -y --no-install-recommends kmod e2fsprogs"
        );
        assert_eq!(install_command(&[], false), "sudo apt-get update");
    }

    #[test]
    fn gzip_roundtrip() {
        let Some(g) = find_program("gzip") else {
            return;
        };
        let tools = Tools { gzip: g, ..dummy() };
        let z = gzip(&tools, &vec![7u8; 300_000], 6).unwrap();
        assert!(z.len() < 10_000 && z.starts_with(&[0x1f, 0x8b]));
    }

    fn dummy() -> Tools {
        let p = PathBuf::from("/nonexistent");
        Tools {
            apt_get: p.clone(),
            apt_cache: p.clone(),
            dpkg_deb: p.clone(),
            depmod: p.clone(),
            mke2fs: p.clone(),
            gzip: p.clone(),
            dropbearkey: p.clone(),
            ssh_keygen: p.clone(),
            u_boot: p.clone(),
            qemu: p,
        }
    }
}
