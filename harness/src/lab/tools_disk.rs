//! The board's read-only tools disk: nested QEMU, lspci, their libraries and the guest
//! images.
//!
//! ext4 (module shipped in the initramfs) built with `mke2fs -d`, which needs neither
//! root nor loop devices. Kept off the initramfs because TFTP and initramfs unpacking
//! are the slow parts of a board boot; a block device is read lazily instead.

use super::elf;
use super::host::{self, Tools};
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

pub(crate) const QEMU_BIN: &str = "usr/bin/qemu-system-aarch64";
/// Run through a wrapper in the initramfs (fixtures/sim/lspci-wrapper.sh).
pub(crate) const LSPCI_BIN: &str = "usr/bin/lspci";
/// Where libpci looks for its (gzip-compressed) ID list; the initramfs links
/// /usr/share/misc/pci.ids.gz here.
pub(crate) const PCI_IDS_GZ: &str = "usr/share/misc/pci.ids.gz";
/// pci.ids in the extracted packages (uncompressed).
pub(crate) const PCI_IDS_SRC: &str = "usr/share/misc/pci.ids";
pub(crate) const LIB_DIR: &str = "usr/lib/aarch64-linux-gnu";
/// Filesystem label; board-init.sh finds the disk by driver, the label is for humans.
pub(crate) const LABEL: &str = "hil-tools";

pub(crate) struct ToolsTree {
    pub bytes: u64,
    pub files: u64,
    pub libs: usize,
}

fn link_or_copy(from: &Path, to: &Path) -> Result<u64> {
    if let Some(p) = to.parent() {
        std::fs::create_dir_all(p)?;
    }
    let len = std::fs::metadata(from)?.len();
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    }
    Ok(len)
}

/// Lays out the disk's tree under `tree` from the extracted packages in `root`.
/// Libraries already in the board initramfs (`skip_libs`, libc among them) are left
/// out: the board's own ld.so and libc run the nested QEMU and lspci.
pub(crate) fn populate(
    root: &Path,
    skip_libs: &BTreeSet<String>,
    guest_kernel: &Path,
    guest_initrd: &[u8],
    pci_ids_gz: &[u8],
    tree: &Path,
) -> Result<ToolsTree> {
    let mut t = ToolsTree {
        bytes: 0,
        files: 0,
        libs: 0,
    };
    for bin in [QEMU_BIN, LSPCI_BIN] {
        t.bytes += link_or_copy(&root.join(bin), &tree.join(bin))?;
        t.files += 1;
    }
    for (so, file) in elf::lib_closure(root, &[QEMU_BIN, LSPCI_BIN])? {
        if skip_libs.contains(&so) {
            continue;
        }
        t.bytes += link_or_copy(&file, &tree.join(LIB_DIR).join(&so))?;
        t.files += 1;
        t.libs += 1;
    }
    // Of QEMU's data only the keymaps matter without a display; the firmware blobs are
    // for other targets (aarch64 `virt` boots the guest kernel directly). QEMU finds
    // this dir relative to its binary (../share/qemu).
    let keymaps = root.join("usr/share/qemu/keymaps");
    if keymaps.is_dir() {
        for e in std::fs::read_dir(&keymaps)? {
            let e = e?;
            if e.file_type()?.is_file() {
                t.bytes += link_or_copy(
                    &e.path(),
                    &tree.join("usr/share/qemu/keymaps").join(e.file_name()),
                )?;
                t.files += 1;
            }
        }
    }
    let ids = tree.join(PCI_IDS_GZ);
    std::fs::create_dir_all(ids.parent().context("pci.ids path")?)?;
    std::fs::write(&ids, pci_ids_gz)?;
    t.bytes += pci_ids_gz.len() as u64;
    t.files += 1;
    t.bytes += link_or_copy(guest_kernel, &tree.join("guest/Image"))?;
    std::fs::write(tree.join("guest/initrd.gz"), guest_initrd)?;
    t.bytes += guest_initrd.len() as u64;
    t.files += 2;
    Ok(t)
}

/// Image size for a tree: data rounded to blocks, plus room for metadata.
pub(crate) fn image_size(bytes: u64, files: u64) -> u64 {
    let blocks = bytes / 4096 + files * 2 + 64;
    let size = blocks * 4096 * 11 / 10 + (8 << 20);
    size.div_ceil(1 << 20) << 20
}

/// Runs mke2fs on `tree`; returns the image size.
pub(crate) fn make_image(tools: &Tools, tree: &Path, t: &ToolsTree, img: &Path) -> Result<u64> {
    let mut size = image_size(t.bytes, t.files);
    for _ in 0..4 {
        let _ = std::fs::remove_file(img);
        let res = host::run(
            Command::new(&tools.mke2fs)
                .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0"])
                // No journal: the disk is only ever mounted read-only.
                .args(["-O", "^has_journal", "-L", LABEL])
                .args(["-N", &(t.files + 256).to_string()])
                .args(["-E", "root_owner=0:0"])
                .arg("-d")
                .arg(tree)
                .arg(img)
                .arg(format!("{}k", size / 1024)),
        );
        match res {
            Ok(_) => return Ok(size),
            Err(e) if format!("{e:#}").contains("Could not allocate") => size = size * 3 / 2,
            Err(e) => return Err(e),
        }
    }
    bail!("mke2fs kept running out of space")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_size_has_headroom_and_is_mib_aligned() {
        let s = image_size(100 << 20, 500);
        assert_eq!(s % (1 << 20), 0);
        assert!(s > 110 << 20 && s < 130 << 20, "{s}");
    }
}
