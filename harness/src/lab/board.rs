//! Per-board state, kept across runs: host key (pinned by the harness), TFTP dir and the
//! board's NVMe disk.

use super::host;
use super::{cache_root, initramfs, keys, SimImages};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Size of the emulated NVMe disk created for each board.
pub const NVME_DISK_SIZE: u64 = 64 << 20;

/// Per-board state, persistent across runs: cache_root()/boards/<board>/
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardDir {
    pub dir: PathBuf,
    /// dir/tftp/ containing `Image.gz` and `initrd.gz` (host initrd + per-board overlay)
    pub tftp: PathBuf,
    /// dir/ssh_host_key.pub: one line "ssh-ed25519 AAAA..." — the board's pinned host key
    pub host_key_pub: PathBuf,
    /// dir/nvme.img, 64 MiB raw, created if missing
    pub nvme_disk: PathBuf,
    /// dir/ssh_host_key: the dropbear-format private key (in the board's overlay)
    pub host_key: PathBuf,
}

impl BoardDir {
    /// The pinned public key line ("ssh-ed25519 AAAA…").
    pub fn host_key_line(&self) -> Result<String> {
        let t = std::fs::read_to_string(&self.host_key_pub)?;
        keys::public_key_line(&t).context("ssh_host_key.pub holds no ssh-ed25519 key")
    }

    /// A known_hosts line for an SSH port forwarded on 127.0.0.1.
    pub fn known_hosts_line(&self, port: u16) -> Result<String> {
        Ok(format!("[127.0.0.1]:{port} {}", self.host_key_line()?))
    }
}

fn check_name(board: &str) -> Result<()> {
    let ok = !board.is_empty()
        && !board.starts_with('.')
        && board.len() <= 64
        && board
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("bad board name {board:?}: use letters, digits, '-', '_', '.'");
    }
    Ok(())
}

/// Links (or copies) `from` to `to` atomically, replacing `to`.
fn place(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(from, &tmp).is_err() {
        std::fs::copy(from, &tmp).with_context(|| format!("copying {}", from.display()))?;
    }
    std::fs::rename(&tmp, to)?;
    Ok(())
}

/// Creates (or refreshes when images changed) the board dir: generates the board's
/// dropbear ed25519 host key ONCE (kept across rebuilds so the pin is stable), writes
/// host_key_pub, builds the overlay (host key at
/// /etc/dropbear/dropbear_ed25519_host_key, /etc/hil-board containing the name) and
/// the tftp files.
pub fn prepare_board(images: &SimImages, board: &str) -> Result<BoardDir> {
    prepare_board_with(images, board, None)
}

/// [`prepare_board`] with a kernel build under test in place of the lab's kernel and
/// initramfs. The stamp covers the build's files, so the next run without a build puts
/// the lab's own images back. A build without a kernel leaves none in the TFTP directory:
/// U-Boot's `tftp` then fails as it would on a lab whose TFTP server lost the file.
pub fn prepare_board_with(
    images: &SimImages,
    board: &str,
    build: Option<&crate::image_set::ImageSet>,
) -> Result<BoardDir> {
    check_name(board)?;
    let (src_kernel, src_initrd) = match build {
        Some(b) => (b.kernel(), b.initrd()),
        None => (images.kernel.clone(), images.host_initrd.clone()),
    };
    if !src_initrd.is_file() {
        bail!("{} does not exist", src_initrd.display());
    }
    let tools = host::ensure_tools(&|m| eprintln!("lab: {m}"))?;
    let dir = cache_root()?.join("boards").join(board);
    let b = BoardDir {
        tftp: dir.join("tftp"),
        host_key_pub: dir.join("ssh_host_key.pub"),
        nvme_disk: dir.join("nvme.img"),
        host_key: dir.join("ssh_host_key"),
        dir,
    };
    std::fs::create_dir_all(&b.tftp)?;

    let pub_line = keys::ensure_host_key(&tools, &b.host_key)?;
    let want = format!("{pub_line}\n");
    if std::fs::read_to_string(&b.host_key_pub).ok().as_deref() != Some(want.as_str()) {
        host::write_atomic(&b.host_key_pub, want.as_bytes())?;
    }

    let key_bytes = std::fs::read(&b.host_key)?;
    let stamp = {
        let mut h = Sha256::new();
        h.update(images.key.as_bytes());
        h.update(std::fs::metadata(&images.host_initrd)?.len().to_le_bytes());
        if build.is_some() {
            // Build files change under the same names: their contents make the stamp.
            for f in [&src_kernel, &src_initrd] {
                let sum = crate::hash::sha256_file(f).unwrap_or_else(|_| "absent".into());
                h.update(f.display().to_string().as_bytes());
                h.update(sum.as_bytes());
            }
        }
        h.update(&key_bytes);
        h.update(board.as_bytes());
        hex::encode(h.finalize())
    };
    let stamp_file = b.dir.join("images.stamp");
    let kernel = b.tftp.join("Image.gz");
    let initrd = b.tftp.join("initrd.gz");
    let fresh = std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str())
        && kernel.is_file() == src_kernel.is_file()
        && initrd.is_file();
    if !fresh {
        let overlay = initramfs::overlay(board, &key_bytes)?;
        let mut data = std::fs::read(&src_initrd)?;
        data.extend(initramfs::gzip_archive(&tools, &overlay)?);
        host::write_atomic(&initrd, &data)?;
        if src_kernel.is_file() {
            place(&src_kernel, &kernel)?;
        } else {
            let _ = std::fs::remove_file(&kernel);
        }
        host::write_atomic(&stamp_file, stamp.as_bytes())?;
    }

    if !b.nvme_disk.exists() {
        let tmp = b.nvme_disk.with_extension("tmp");
        let f = std::fs::File::create(&tmp)?;
        f.set_len(NVME_DISK_SIZE)?; // sparse
        drop(f);
        std::fs::rename(&tmp, &b.nvme_disk)?;
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_names() {
        assert!(check_name("sim-rk3588.1").is_ok());
        assert!(check_name("../x").is_err());
        assert!(check_name(".hidden").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
    }
}
