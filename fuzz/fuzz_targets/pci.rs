//! PCI topology from sysfs and /proc/ioports (pci_topology's collector output), compared
//! with an expected topology, and the `lspci`-style sysfs listing of vfio.
//!
//! Input: the collector's output, optionally followed by a line `%%` and the TOML of a
//! `[pci_topology]` table; the comparison runs only on a table that validates, as hil
//! compares only a board file that loaded.
#![no_main]

use hil::checks::pci_topology::{compare, parse, render};
use hil::config::pcie::{validate_topology, PciTopologyCfg};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (out, cfg) = match text.split_once("\n%%\n") {
        Some((o, c)) => (o, Some(c)),
        None => (&*text, None),
    };
    let snap = parse(out);
    let _ = render(&snap);
    if let Some(cfg) = cfg.and_then(|c| toml::from_str::<PciTopologyCfg>(c).ok()) {
        let mut errs = Vec::new();
        validate_topology(Path::new("board.toml"), &cfg, &mut errs);
        if errs.is_empty() {
            let _ = compare(&cfg, &snap);
        }
    }
    let devs = hil::vfio::parse_list(out);
    let _ = hil::vfio::render(&devs);
    for line in out.lines() {
        let _ = hil::vfio::parse_address(line);
        let _ = hil::vfio::parse_id(line);
    }
});
