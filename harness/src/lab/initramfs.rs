//! Contents of the board and guest initramfs archives, and kernel module selection.

use super::cpio::Archive;
use super::elf;
use super::host::{self, Tools};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Modules the board loads, in the order board-init.sh loads them (which SIM-LAB.md
/// measured to work). ext4 and its helpers are for the tools disk.
pub(crate) const BOARD_MODULES: &[&str] = &[
    "failover",
    "net_failover",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "crc16",
    "mbcache",
    "jbd2",
    "crc32c_generic",
    "ext4",
    "vfio",
    "vfio_iommu_type1",
    "vfio_virqfd",
    "vfio-pci-core",
    "vfio-pci",
    "crct10dif_common",
    "crc-t10dif",
    "crc64",
    "crc64-rocksoft",
    "t10-pi",
    "nvme-core",
    "nvme",
    "e1000e",
];

/// The nested guest only drives the passed-through devices.
pub(crate) const GUEST_MODULES: &[&str] = &["nvme", "e1000e"];

fn modname(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split(".ko").next().unwrap_or(base);
    stem.replace('-', "_")
}

/// modules.dep as: normalized module name -> (path, dependency paths).
pub(crate) fn parse_modules_dep(text: &str) -> BTreeMap<String, (String, Vec<String>)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, deps)| {
            (
                modname(m),
                (
                    m.trim().to_string(),
                    deps.split_whitespace().map(str::to_string).collect(),
                ),
            )
        })
        .collect()
}

/// Paths of `wanted` modules and everything they depend on.
pub(crate) fn module_closure(
    dep: &BTreeMap<String, (String, Vec<String>)>,
    wanted: &[&str],
) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for w in wanted {
        let (path, deps) = dep
            .get(&modname(w))
            .with_context(|| format!("kernel module {w} not in modules.dep"))?;
        out.insert(path.clone());
        // modules.dep lists the full transitive set already.
        out.extend(deps.iter().cloned());
    }
    Ok(out)
}

/// Copies the closure of `wanted` out of the full extracted kernel tree into
/// `dest/lib/modules/<kver>` and runs `depmod -b` there, so modprobe on the board
/// resolves dependencies from a modules.dep that matches what is shipped.
pub(crate) fn modules_tree(
    tools: &Tools,
    full_root: &Path,
    kver: &str,
    wanted: &[&str],
    dest: &Path,
) -> Result<u64> {
    let src = full_root.join("lib/modules").join(kver);
    let dep = parse_modules_dep(&std::fs::read_to_string(src.join("modules.dep"))?);
    let dst = dest.join("lib/modules").join(kver);
    let mut bytes = 0;
    for rel in module_closure(&dep, wanted)? {
        let to = dst.join(&rel);
        std::fs::create_dir_all(to.parent().context("module path")?)?;
        bytes += std::fs::copy(src.join(&rel), &to)?;
    }
    for f in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        if src.join(f).exists() {
            std::fs::copy(src.join(f), dst.join(f))?;
        }
    }
    host::run(Command::new(&tools.depmod).arg("-b").arg(dest).arg(kver))?;
    Ok(bytes)
}

/// Parts shared by board and guest: busybox, mount points, the console node.
fn base(root: &Path, init: &str, modules: &Path) -> Result<Archive> {
    let mut a = Archive::new();
    a.file_from("bin/busybox", &root.join("bin/busybox"))?;
    // Only /bin/sh is linked here: the other applet links are made by
    // `busybox --install -s` at boot, because this x86 build host cannot run the arm64
    // busybox to list its applets.
    a.symlink("bin/sh", "busybox");
    a.file("init", init.as_bytes().to_vec(), 0o755);
    for d in [
        "proc", "sys", "dev", "run", "sbin", "usr/bin", "usr/sbin", "mnt", "root",
    ] {
        a.dir(d, 0o755);
    }
    a.dir("tmp", 0o1777);
    a.symlink("var/run", "../run");
    a.dir("var/log", 0o755);
    // Without it the kernel cannot give /init a console before devtmpfs is mounted.
    a.char_dev("dev/console", 5, 1, 0o600);
    a.tree_from("lib/modules", &modules.join("lib/modules"))?;
    Ok(a)
}

pub(crate) struct BoardInitramfs {
    pub archive: Archive,
    /// Sonames shipped in /lib/aarch64-linux-gnu (the tools disk need not repeat them).
    pub libs: BTreeSet<String>,
}

/// Wrapper scripts installed in the board's /usr/bin: they run a program of the same
/// name from the tools disk.
pub(crate) struct Wrappers<'a> {
    pub qemu: &'a str,
    pub lspci: &'a str,
}

pub(crate) fn board(
    root: &Path,
    modules: &Path,
    kver: &str,
    init: &str,
    wrappers: &Wrappers<'_>,
    client_pub: &str,
) -> Result<BoardInitramfs> {
    let mut a = base(root, init, modules)?;
    // The kernel has no CONFIG_IKCONFIG (no /proc/config.gz): preflight checks read the
    // package's config where Debian installs it.
    let config = format!("boot/config-{kver}");
    a.file_from(&config, &root.join(&config))?;
    a.file_from("usr/sbin/dropbear", &root.join("usr/sbin/dropbear"))?;
    let libs = elf::lib_closure(root, &["usr/sbin/dropbear"])?;
    for (so, file) in &libs {
        a.file_from(&format!("lib/aarch64-linux-gnu/{so}"), file)?;
    }
    let interp = elf::parse(&std::fs::read(root.join("usr/sbin/dropbear"))?)?
        .and_then(|i| i.interp)
        .context("dropbear has no program interpreter")?;
    let interp_name = interp.rsplit('/').next().unwrap_or(&interp).to_string();
    if !libs.contains_key(&interp_name) {
        let real = elf::resolve_in_root(root, Path::new(&interp))?;
        a.file_from(&format!("lib/aarch64-linux-gnu/{interp_name}"), &real)?;
    }
    if interp != format!("/lib/aarch64-linux-gnu/{interp_name}") {
        a.symlink(&interp, &format!("/lib/aarch64-linux-gnu/{interp_name}"));
    }

    a.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644);
    // "*" (not "!"): no password login, but not a locked account either.
    a.file("etc/shadow", "root:*:19000:0:99999:7:::\n", 0o600);
    a.file(
        "etc/group",
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
        0o644,
    );
    a.file("etc/shells", "/bin/sh\n/bin/ash\n", 0o644);
    a.dir("etc/dropbear", 0o700);
    a.dir("root", 0o700);
    a.dir("root/.ssh", 0o700);
    a.file(
        "root/.ssh/authorized_keys",
        format!("{}\n", client_pub.trim()),
        0o600,
    );
    a.dir("opt/tools", 0o755);
    a.file(
        "usr/bin/qemu-system-aarch64",
        wrappers.qemu.as_bytes().to_vec(),
        0o755,
    );
    a.file("usr/bin/lspci", wrappers.lspci.as_bytes().to_vec(), 0o755);
    a.symlink(
        &format!("/{}", super::tools_disk::PCI_IDS_GZ),
        &format!("/opt/tools/{}", super::tools_disk::PCI_IDS_GZ),
    );
    Ok(BoardInitramfs {
        archive: a,
        libs: libs.into_keys().collect(),
    })
}

pub(crate) fn guest(root: &Path, modules: &Path, init: &str) -> Result<Archive> {
    base(root, init, modules)
}

/// The per-board overlay appended to the shared initrd (Linux unpacks concatenated
/// archives in order, later files winning).
pub(crate) fn overlay(board: &str, host_key: &[u8]) -> Result<Archive> {
    if host_key.is_empty() {
        bail!("empty host key");
    }
    let mut a = Archive::new();
    a.dir("etc", 0o755);
    a.dir("etc/dropbear", 0o700);
    a.file(
        "etc/dropbear/dropbear_ed25519_host_key",
        host_key.to_vec(),
        0o600,
    );
    a.file("etc/hil-board", format!("{board}\n"), 0o644);
    Ok(a)
}

pub(crate) fn gzip_archive(tools: &Tools, a: &Archive) -> Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(a.data_size() as usize + (1 << 20));
    a.write_newc(&mut raw)?;
    host::gzip(tools, &raw, 9)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/drivers/nvme/host/nvme.ko: kernel/drivers/nvme/host/nvme-core.ko kernel/lib/crc64.ko\n\
kernel/drivers/nvme/host/nvme-core.ko: kernel/lib/crc64.ko\n\
kernel/lib/crc64.ko:\n\
kernel/drivers/vfio/pci/vfio-pci.ko: kernel/drivers/vfio/vfio.ko\n\
kernel/drivers/vfio/vfio.ko:\n";

    #[test]
    fn closure_with_dash_names() {
        let dep = parse_modules_dep(DEP);
        assert!(dep.contains_key("nvme_core"));
        let c = module_closure(&dep, &["nvme", "vfio-pci"]).unwrap();
        assert_eq!(c.len(), 5);
        assert!(module_closure(&dep, &["e1000e"]).is_err());
    }

    #[test]
    fn modname_strips_compression_suffix() {
        assert_eq!(modname("kernel/x/crc-t10dif.ko.xz"), "crc_t10dif");
    }

    #[test]
    fn overlay_contents() {
        let a = overlay("b1", b"KEY").unwrap();
        assert!(a.contains("etc/dropbear/dropbear_ed25519_host_key"));
        assert!(a.contains("etc/hil-board"));
    }
}
