//! What the fuzz targets share.

use std::path::{Path, PathBuf};

/// A file in a directory of its own, made once per fuzzing process and rewritten for every
/// input, for the loaders that read a path rather than a string (`Board::load`,
/// `Suite::load`). The directory is under `$TMPDIR` (`/tmp` when unset) and is left behind
/// when libFuzzer exits, which runs no destructors: `.ci/fuzz` points `TMPDIR` into the
/// scratch directory it removes at the end.
pub fn scratch_file(target: &str, file_name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hil-fuzz-{target}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the fuzz scratch directory");
    dir.join(file_name)
}

/// Writes one input to the scratch file, so the loader reads exactly the fuzzer's bytes.
pub fn write_input(path: &Path, data: &[u8]) {
    std::fs::write(path, data).expect("write the fuzz scratch file");
}
