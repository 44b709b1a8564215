//! Board-file tables for the PCIe device checks: `[dma]` (what the `dma` check drives) and
//! `[pci_topology]` (the PCI tree the `pci-topology` check expects). Values are validated
//! here, so the checks only see well-formed addresses, ids, ranges and BAR specs.

use super::error::ConfigError;
use crate::vfio::{parse_address, parse_id};
use regex::Regex;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DmaCfg {
    /// Sim boards: the PCI address of a QEMU `edu` device that the board's `edudma` tool
    /// (a VFIO userspace driver) programs through the IOMMU.
    pub device: Option<String>,
    /// Real boards: the board's own DMA self-test command, run over SSH...
    pub self_test: Option<String>,
    /// ...and a regex for the line it prints on success.
    pub success: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PciTopologyCfg {
    /// Every function present must be listed (anything else is reported as unexpected).
    #[serde(default = "yes")]
    pub complete: bool,
    pub devices: Vec<PciExpect>,
}

fn yes() -> bool {
    true
}

/// One expected PCI function.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PciExpect {
    pub address: String,
    /// `vendor:device` in hex.
    pub id: String,
    /// Class code prefix in hex (`0x0604` for any PCI bridge).
    pub class: Option<String>,
    /// The bridge it sits behind; omitted: directly on a root bus.
    pub parent: Option<String>,
    /// A bridge's I/O window (`0x3000-0x3fff`), or `none`.
    pub io_window: Option<String>,
    /// A bridge's non-prefetchable memory window, or `none`.
    pub mem_window: Option<String>,
    /// BARs: `io`, `mem`, either with a range (`io 0x3000-0x30ff`), or `none`.
    pub bar0: Option<String>,
    pub bar1: Option<String>,
    pub bar2: Option<String>,
    pub bar3: Option<String>,
    pub bar4: Option<String>,
    pub bar5: Option<String>,
}

/// An inclusive address range as sysfs `resource` and /proc/ioports print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{:x}-0x{:x}", self.start, self.end)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    Io,
    Mem,
}

impl std::fmt::Display for Space {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Space::Io => "io",
            Space::Mem => "mem",
        })
    }
}

/// What a BAR (or window) is expected to be: unused, or a space with an optional range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarSpec {
    None,
    Used(Space, Option<Range>),
}

/// `0x3000-0x3fff` (hex, inclusive).
pub fn parse_range(s: &str) -> Option<Range> {
    let (a, b) = s.trim().split_once('-')?;
    let hex = |t: &str| u64::from_str_radix(t.trim().strip_prefix("0x")?, 16).ok();
    let r = Range {
        start: hex(a)?,
        end: hex(b)?,
    };
    (r.start <= r.end).then_some(r)
}

/// `none`, `io`, `mem`, `io 0x3000-0x30ff`, `mem 0x10300000-0x10300fff`.
pub fn parse_bar(s: &str) -> Option<BarSpec> {
    let mut w = s.split_whitespace();
    let space = match w.next()? {
        "none" => return w.next().is_none().then_some(BarSpec::None),
        "io" => Space::Io,
        "mem" => Space::Mem,
        _ => return None,
    };
    let range = match w.next() {
        Some(r) => Some(parse_range(r)?),
        None => None,
    };
    w.next().is_none().then_some(BarSpec::Used(space, range))
}

/// A window: `none` or a range.
pub fn parse_window(s: &str) -> Option<Option<Range>> {
    if s.trim() == "none" {
        Some(None)
    } else {
        parse_range(s).map(Some)
    }
}

impl PciExpect {
    pub fn bars(&self) -> [(usize, Option<&String>); 6] {
        [
            (0, self.bar0.as_ref()),
            (1, self.bar1.as_ref()),
            (2, self.bar2.as_ref()),
            (3, self.bar3.as_ref()),
            (4, self.bar4.as_ref()),
            (5, self.bar5.as_ref()),
        ]
    }
}

/// Class prefix `0x0604` → (value, hex digits).
pub fn parse_class_prefix(c: &str) -> Option<(u32, usize)> {
    let h = c.strip_prefix("0x")?;
    if h.is_empty() || h.len() > 6 || h.len() % 2 != 0 {
        return None;
    }
    Some((u32::from_str_radix(h, 16).ok()?, h.len()))
}

pub fn validate_dma(path: &Path, d: &DmaCfg, errs: &mut Vec<ConfigError>) {
    let mut err = |k: &str, m: String| errs.push(ConfigError::new(path, format!("dma.{k}"), m));
    match (&d.device, &d.self_test) {
        (None, None) => err("device", "is missing; expected device = \"0000:00:07.0\" (an edu DMA engine, sim) or self_test = \"command\" with success = \"regex\" (real board)".into()),
        (Some(_), Some(_)) => err("self_test", "is set together with dma.device; expected one of them".into()),
        (Some(a), None) if parse_address(a).is_none() => {
            err("device", format!("is \"{a}\"; expected a PCI address like 0000:00:07.0"))
        }
        (None, Some(_)) if d.success.is_none() => err(
            "success",
            "is missing; expected a regex for the self-test's success line".into(),
        ),
        _ => {}
    }
    if let Some(r) = &d.success {
        if let Err(e) = Regex::new(r) {
            err("success", format!("is not a valid regex: {e}"));
        }
    }
}

pub fn validate_topology(path: &Path, t: &PciTopologyCfg, errs: &mut Vec<ConfigError>) {
    let mut seen = std::collections::HashSet::new();
    let addrs: Vec<Option<String>> = t
        .devices
        .iter()
        .map(|d| parse_address(&d.address))
        .collect();
    for (i, d) in t.devices.iter().enumerate() {
        let key = |k: &str| format!("pci_topology.devices[{i}].{k}");
        let mut err = |k: &str, m: String| errs.push(ConfigError::new(path, key(k), m));
        match &addrs[i] {
            None => err(
                "address",
                format!(
                    "is \"{}\"; expected a PCI address like 0000:04:00.0",
                    d.address
                ),
            ),
            Some(a) if !seen.insert(a.clone()) => err(
                "address",
                format!("\"{a}\" is listed twice; expected each once"),
            ),
            _ => {}
        }
        if parse_id(&d.id).is_none() {
            err(
                "id",
                format!(
                    "is \"{}\"; expected vendor:device in hex like 1b36:000e",
                    d.id
                ),
            );
        }
        if let Some(c) = &d.class {
            if parse_class_prefix(c).is_none() {
                err(
                    "class",
                    format!("is \"{c}\"; expected a hex class prefix like 0x0604"),
                );
            }
        }
        if let Some(p) = &d.parent {
            match parse_address(p) {
                None => err("parent", format!("is \"{p}\"; expected the PCI address of the bridge above")),
                Some(p) if !addrs.iter().any(|a| a.as_deref() == Some(p.as_str())) => err(
                    "parent",
                    format!("is \"{p}\", which is not in pci_topology.devices; expected a listed bridge"),
                ),
                _ => {}
            }
        }
        for (k, w) in [("io_window", &d.io_window), ("mem_window", &d.mem_window)] {
            if let Some(w) = w {
                if parse_window(w).is_none() {
                    err(k, format!("is \"{w}\"; expected an inclusive hex range like 0x3000-0x3fff, or none"));
                }
            }
        }
        for (n, b) in d.bars() {
            if let Some(b) = b {
                if parse_bar(b).is_none() {
                    err(
                        &format!("bar{n}"),
                        format!("is \"{b}\"; expected io, mem, io 0x3000-0x30ff, mem 0x10300000-0x10300fff or none"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_bars() {
        assert_eq!(
            parse_range("0x3000-0x3fff"),
            Some(Range {
                start: 0x3000,
                end: 0x3fff
            })
        );
        assert_eq!(parse_range("0x3fff-0x3000"), None);
        assert_eq!(parse_range("3000-3fff"), None);
        assert_eq!(
            parse_bar("io 0x3000-0x30ff"),
            Some(BarSpec::Used(
                Space::Io,
                Some(Range {
                    start: 0x3000,
                    end: 0x30ff
                })
            ))
        );
        assert_eq!(parse_bar("mem"), Some(BarSpec::Used(Space::Mem, None)));
        assert_eq!(parse_bar("none"), Some(BarSpec::None));
        assert_eq!(parse_bar("io 0x1-0x2 x"), None);
        assert_eq!(parse_bar("rom"), None);
        assert_eq!(parse_window("none"), Some(None));
        assert_eq!(parse_class_prefix("0x0604"), Some((0x0604, 4)));
        assert_eq!(parse_class_prefix("0x604"), None);
    }

    fn topo(toml_text: &str) -> Vec<ConfigError> {
        let t: PciTopologyCfg = toml::from_str(toml_text).unwrap();
        let mut e = Vec::new();
        validate_topology(Path::new("b.toml"), &t, &mut e);
        e
    }

    #[test]
    fn topology_errors_name_the_key() {
        let e = topo(
            r#"devices = [
              { address = "0000:00:0a.0", id = "1b36:000c", class = "0x0604", io_window = "0x3000-0x4fff" },
              { address = "0000:04:00.0", id = "1b36-000e", parent = "0000:00:0b.0", bar1 = "io 0x3000" },
              { address = "00:0a.0", id = "1b36:000c", mem_window = "big" },
            ]"#,
        );
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "pci_topology.devices[1].id",
                "pci_topology.devices[1].parent",
                "pci_topology.devices[1].bar1",
                "pci_topology.devices[2].address",
                "pci_topology.devices[2].mem_window",
            ],
            "{e:#?}"
        );
        assert!(
            e[1].message.contains("not in pci_topology.devices"),
            "{}",
            e[1]
        );
        assert!(e[3].message.contains("listed twice"), "{}", e[3]);
    }

    #[test]
    fn dma_needs_one_mode() {
        let check = |t: &str| {
            let d: DmaCfg = toml::from_str(t).unwrap();
            let mut e = Vec::new();
            validate_dma(Path::new("b.toml"), &d, &mut e);
            e.into_iter().map(|e| e.key).collect::<Vec<_>>()
        };
        assert!(check(r#"device = "0000:00:07.0""#).is_empty());
        assert!(check(
            r#"self_test = "dmatest.sh"
success = "PASS""#
        )
        .is_empty());
        assert_eq!(check(""), ["dma.device"]);
        assert_eq!(check(r#"self_test = "x""#), ["dma.success"]);
        assert_eq!(
            check(
                r#"device = "0000:00:07.0"
self_test = "x"
success = "(""#
            ),
            ["dma.self_test", "dma.success"]
        );
    }
}
