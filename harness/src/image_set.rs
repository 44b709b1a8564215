//! A kernel build under test: one directory holding the boot images a board is flashed
//! with (`Image.gz`, `initrd.gz`). `hil bisect` walks an ordered list of them, `hil nightly
//! --images` and `hil bisect run` test one.
//!
//! On a sim board the set replaces the lab's kernel and initramfs in the board's TFTP
//! directory (hil still appends the board's own overlay: host key, name). A real board's
//! `[flash]` step reaches the set through the `{build}` placeholder.

use std::path::{Path, PathBuf};

/// File names inside a build directory.
pub const KERNEL: &str = "Image.gz";
pub const INITRD: &str = "initrd.gz";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// Shown in reports (`build` property) and bisect output.
    pub name: String,
    pub dir: PathBuf,
}

impl ImageSet {
    /// A set named after its directory.
    pub fn from_dir(dir: &Path) -> ImageSet {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        ImageSet {
            name,
            dir: dir.to_path_buf(),
        }
    }

    pub fn kernel(&self) -> PathBuf {
        self.dir.join(KERNEL)
    }

    pub fn initrd(&self) -> PathBuf {
        self.dir.join(INITRD)
    }
}
