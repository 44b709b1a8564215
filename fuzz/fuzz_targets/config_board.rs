//! A board file through the loader hil runs on every `--board`: the size and type checks of
//! `read_text`, strict TOML deserialization, every validator, then placeholder expansion and
//! the SSH target of a board that loaded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// One file per fuzzing process, rewritten for every input: the loader reads a path.
fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| hil_fuzz::scratch_file("board", "fuzzboard.toml"))
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    hil_fuzz::write_input(path, data);
    if let Ok(board) = hil::config::Board::load(path) {
        let mut vars = hil::config::expand::Vars::new();
        for (name, _) in hil::config::expand::KNOWN {
            vars.insert(name, format!("/tmp/{name}"));
        }
        if let Ok(b) = board.expanded(path, &vars) {
            let _ = b.ssh_target(path);
        }
    }
});
