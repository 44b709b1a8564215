//! A suite file through `Suite::load`: strict TOML, every check kind's parameters
//! (`CheckSpec::from_raw`) and the suite's validation, then `--check` selection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// One file per fuzzing process, rewritten for every input: the loader reads a path.
fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| hil_fuzz::scratch_file("suite", "fuzzsuite.toml"))
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    hil_fuzz::write_input(path, data);
    if let Ok(mut suite) = hil::config::Suite::load(path) {
        let first: Vec<String> = suite
            .checks
            .iter()
            .take(1)
            .map(|c| c.name.clone())
            .collect();
        let _ = suite.select(&first);
        let _ = suite.select(&["no-such-check".to_string()]);
    }
});
