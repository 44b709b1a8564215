//! The DUT-side DMA tool (fixtures/edudma/edudma.c): a VFIO userspace driver for QEMU's
//! `edu` device, cross-compiled like sertest and put into the board's initramfs at
//! /usr/bin/edudma. The `dma` check runs it on the board.

use anyhow::Result;
use std::path::Path;

/// The tool's source; its hash is part of the image cache key.
pub const SOURCE: &str = include_str!("../../../fixtures/edudma/edudma.c");
/// Where the binary is in the board's initramfs.
pub const INSTALL_PATH: &str = "usr/bin/edudma";

/// Compiles the tool in `work` and returns the binary.
pub(crate) fn build(work: &Path, note: &dyn Fn(&str)) -> Result<Vec<u8>> {
    super::sertest::compile(work, "edudma", SOURCE, note)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines and options `checks::dma` relies on.
    #[test]
    fn source_has_the_documented_interface() {
        for s in [
            "--corrupt",
            "edudma: device %s group %d id 0x%08x",
            "edudma: round %u: to-device %lu bytes in %.0f us",
            "edudma: mismatch round %u:",
            "edudma: PASS %u rounds, %lu bytes each way verified",
            "edudma: error: ",
            "VFIO_IOMMU_MAP_DMA",
        ] {
            assert!(SOURCE.contains(s), "{s}");
        }
    }
}
