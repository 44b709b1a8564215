//! A suite file through `Suite::load`: strict TOML, every check kind's parameters
//! (`CheckSpec::from_raw`) and the suite's validation, then `--check` selection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hil-fuzz-suite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir.join("fuzzsuite.toml")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(path, data).expect("write scratch file");
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
