//! `pci-topology`: is the board's PCI tree what its board file says?
//!
//! One SSH command reads, for every function in sysfs, its place in the tree (the parent
//! bridge from the device's sysfs path), vendor:device, class, its `resource` lines (BARs;
//! a bridge's I/O and memory windows are lines 13 and 14) and its secondary bus, then
//! /proc/ioports. The board file's `[pci_topology]` is compared with that: every
//! difference (missing or unexpected function, id, class, parent, BAR, window, and I/O
//! ranges sysfs has but /proc/ioports does not) is one line of the failure message.

use super::{Check, CheckCtx, CheckFuture, CheckOutput};
use crate::boot::State;
use crate::config::load::from_table;
use crate::config::pcie::{
    parse_bar, parse_class_prefix, parse_window, BarSpec, PciExpect, PciTopologyCfg, Range, Space,
};
use crate::config::{ConfigError, Via};
use crate::error::StepError;
use crate::outcome::Outcome;
use crate::vfio::{parse_address, parse_id};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PciTopologyCheck {}

/// sysfs `resource` line of a bridge's I/O window, and of its memory window
/// (after 6 BARs, the ROM and 6 SR-IOV BARs).
const IO_WINDOW: usize = 13;
const MEM_WINDOW: usize = 14;
const IORESOURCE_IO: u64 = 0x100;
const IORESOURCE_MEM: u64 = 0x200;

pub const COLLECT_COMMAND: &str = r#"for d in /sys/bus/pci/devices/*; do a=${d##*/}; echo "dev $a $(readlink $d) $(cat $d/vendor) $(cat $d/device) $(cat $d/class)"; i=0; while read s e f; do [ "$s$e$f" = 0x00000000000000000x00000000000000000x0000000000000000 ] || echo "res $a $i $s $e $f"; i=$((i+1)); done < $d/resource; for b in $d/pci_bus/*; do [ -e "$b" ] && echo "bus $a ${b##*/}"; done; done; echo ioports; cat /proc/ioports"#;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Func {
    pub address: String,
    pub parent: Option<String>,
    pub vendor: u16,
    pub device: u16,
    pub class: u32,
    /// resource index → (start, end, flags)
    pub resources: BTreeMap<usize, (u64, u64, u64)>,
    /// `0000:05` for a bridge
    pub secondary_bus: Option<String>,
}

impl Func {
    fn id(&self) -> String {
        format!("{:04x}:{:04x}", self.vendor, self.device)
    }
    fn resource(&self, i: usize) -> Option<(Space, Range)> {
        let (start, end, flags) = *self.resources.get(&i)?;
        let space = if flags & IORESOURCE_IO != 0 {
            Space::Io
        } else if flags & IORESOURCE_MEM != 0 {
            Space::Mem
        } else {
            return None;
        };
        Some((space, Range { start, end }))
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub funcs: BTreeMap<String, Func>,
    /// /proc/ioports: (range, name), nesting dropped.
    pub ioports: Vec<(Range, String)>,
}

fn hex(t: &str) -> Option<u64> {
    u64::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok()
}

/// Parses [`COLLECT_COMMAND`]'s output.
pub fn parse(out: &str) -> Snapshot {
    let mut s = Snapshot::default();
    let mut in_ioports = false;
    for line in out.lines() {
        if in_ioports {
            if let Some((r, name)) = line.split_once(" : ") {
                if let Some(range) = r.trim().split_once('-').and_then(|(a, b)| {
                    Some(Range {
                        start: hex(a)?,
                        end: hex(b)?,
                    })
                }) {
                    s.ioports.push((range, name.trim().to_string()));
                }
            }
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["ioports"] => in_ioports = true,
            ["dev", addr, link, vendor, device, class] => {
                let Some(address) = parse_address(addr) else {
                    continue;
                };
                let mut comps = link.rsplit('/');
                comps.next();
                let parent = comps.next().and_then(parse_address);
                s.funcs.insert(
                    address.clone(),
                    Func {
                        address,
                        parent,
                        vendor: hex(vendor).unwrap_or(0) as u16,
                        device: hex(device).unwrap_or(0) as u16,
                        class: hex(class).unwrap_or(0) as u32,
                        ..Default::default()
                    },
                );
            }
            ["res", addr, i, start, end, flags] => {
                let (Some(a), Ok(i)) = (parse_address(addr), i.parse::<usize>()) else {
                    continue;
                };
                if let (Some(func), Some(st), Some(en), Some(fl)) =
                    (s.funcs.get_mut(&a), hex(start), hex(end), hex(flags))
                {
                    func.resources.insert(i, (st, en, fl));
                }
            }
            ["bus", addr, bus] => {
                if let Some(func) = parse_address(addr).and_then(|a| s.funcs.get_mut(&a)) {
                    func.secondary_bus = Some(bus.to_string());
                }
            }
            _ => {}
        }
    }
    s
}

fn show(r: Option<(Space, Range)>) -> String {
    r.map_or("none".into(), |(sp, r)| format!("{sp} {r}"))
}

fn parent_name(p: &Option<String>) -> String {
    p.as_ref()
        .map_or("the root bus".into(), |p| format!("bridge {p}"))
}

/// Every difference between the expected tree and the snapshot, one line each.
pub fn compare(cfg: &PciTopologyCfg, s: &Snapshot) -> Vec<String> {
    let mut d = Vec::new();
    let expected: BTreeMap<String, &PciExpect> = cfg
        .devices
        .iter()
        .filter_map(|e| Some((parse_address(&e.address)?, e)))
        .collect();
    for (addr, e) in &expected {
        let Some(f) = s.funcs.get(addr) else {
            d.push(format!(
                "missing: {addr} ({}{}) behind {} is not present",
                e.id,
                e.class
                    .as_ref()
                    .map_or(String::new(), |c| format!(", class {c}")),
                parent_name(&e.parent.as_deref().and_then(parse_address))
            ));
            continue;
        };
        if parse_id(&e.id) != Some((f.vendor, f.device)) {
            d.push(format!("id: {addr} is {}, expected {}", f.id(), e.id));
        }
        if let Some((want, digits)) = e.class.as_deref().and_then(parse_class_prefix) {
            if f.class >> (24 - 4 * digits as u32) != want {
                d.push(format!(
                    "class: {addr} is 0x{:06x}, expected {}",
                    f.class,
                    e.class.as_deref().unwrap_or_default()
                ));
            }
        }
        let want_parent = e.parent.as_deref().and_then(parse_address);
        if f.parent != want_parent {
            d.push(format!(
                "parent: {addr} is behind {}, expected behind {}",
                parent_name(&f.parent),
                parent_name(&want_parent)
            ));
        }
        for (label, idx, want) in [
            ("io_window", IO_WINDOW, &e.io_window),
            ("mem_window", MEM_WINDOW, &e.mem_window),
        ] {
            let Some(want) = want.as_deref().and_then(parse_window) else {
                continue;
            };
            let space = if idx == IO_WINDOW {
                Space::Io
            } else {
                Space::Mem
            };
            let have = f.resource(idx);
            if have.map(|h| h.1) != want || have.is_some_and(|h| h.0 != space) {
                d.push(format!(
                    "{label}: {addr} has {}, expected {}",
                    show(have),
                    show(want.map(|w| (space, w)))
                ));
            }
        }
        for (n, spec) in e.bars() {
            let Some(spec) = spec.and_then(|b| parse_bar(b)) else {
                continue;
            };
            let have = f.resource(n);
            let ok = match spec {
                BarSpec::None => have.is_none(),
                BarSpec::Used(sp, range) => {
                    have.is_some_and(|h| h.0 == sp && range.is_none_or(|r| r == h.1))
                }
            };
            if !ok {
                let want = match spec {
                    BarSpec::None => "none".to_string(),
                    BarSpec::Used(sp, None) => format!("{sp} (any address)"),
                    BarSpec::Used(sp, Some(r)) => format!("{sp} {r}"),
                };
                d.push(format!(
                    "bar{n}: {addr} BAR{n} is {}, expected {want}",
                    show(have)
                ));
            }
        }
    }
    // /proc/ioports must agree with sysfs on every I/O range of the expected functions.
    for addr in expected.keys() {
        let Some(f) = s.funcs.get(addr) else { continue };
        for (i, _) in f.resources.iter() {
            let Some((Space::Io, r)) = f.resource(*i) else {
                continue;
            };
            let name = if *i >= IO_WINDOW {
                match &f.secondary_bus {
                    Some(b) => format!("PCI Bus {b}"),
                    None => continue,
                }
            } else {
                addr.clone()
            };
            if !s.ioports.iter().any(|(ir, n)| *ir == r && *n == name) {
                d.push(format!(
                    "ioports: {addr} {} io {r} is in sysfs but /proc/ioports has no \"{name}\" at that range",
                    if *i >= IO_WINDOW { "I/O window".to_string() } else { format!("BAR{i}") }
                ));
            }
        }
    }
    if cfg.complete {
        for (addr, f) in &s.funcs {
            if !expected.contains_key(addr) {
                d.push(format!(
                    "unexpected: {addr} ({}, class 0x{:06x}) behind {} is not in the board file",
                    f.id(),
                    f.class,
                    parent_name(&f.parent)
                ));
            }
        }
    }
    d
}

/// The tree as found, for the artifact.
pub fn render(s: &Snapshot) -> String {
    fn walk(s: &Snapshot, parent: Option<&str>, depth: usize, out: &mut String) {
        for f in s.funcs.values().filter(|f| f.parent.as_deref() == parent) {
            out.push_str(&format!(
                "{}{} {} class 0x{:06x}",
                "  ".repeat(depth),
                f.address,
                f.id(),
                f.class
            ));
            for i in f.resources.keys() {
                if let Some(r) = f.resource(*i) {
                    let label = match *i {
                        IO_WINDOW => "io_window".to_string(),
                        MEM_WINDOW => "mem_window".to_string(),
                        n if n < 6 => format!("bar{n}"),
                        n => format!("res{n}"),
                    };
                    out.push_str(&format!(" {label}={}", show(Some(r))));
                }
            }
            out.push('\n');
            walk(s, Some(&f.address), depth + 1, out);
        }
    }
    let mut out = String::new();
    walk(s, None, 0, &mut out);
    out
}

impl Check for PciTopologyCheck {
    const KIND: &'static str = "pci-topology";

    fn from_params(path: &Path, key: &str, params: toml::Table) -> Result<Self, ConfigError> {
        from_table(path, key, params)
    }

    fn needs(&self, _via: Via) -> State {
        State::LinuxSsh
    }

    fn run<'a>(&'a self, ctx: &'a mut CheckCtx<'_>) -> CheckFuture<'a> {
        Box::pin(async move {
            let timeout = ctx.timeout;
            let s = &mut *ctx.session;
            let Some(cfg) = s.board.pci_topology.clone() else {
                return Err(StepError::Blocked(format!(
                    "board {} has no [pci_topology] table listing the expected PCI tree",
                    s.board.name
                )));
            };
            let out = s.ssh()?.exec(COLLECT_COMMAND, timeout).await?;
            let snap = parse(&out.output);
            if snap.funcs.is_empty() {
                return Err(StepError::Blocked(format!(
                    "no PCI functions in sysfs on the board: {}",
                    crate::text::excerpt(&out.output)
                )));
            }
            let dir = s.run_dir.join("artifacts");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join("pci-topology.txt"), render(&snap));
            let diffs = compare(&cfg, &snap);
            let mut figures = serde_json::Map::new();
            figures.insert("functions".into(), snap.funcs.len().into());
            figures.insert(
                "bridges".into(),
                snap.funcs
                    .values()
                    .filter(|f| f.class >> 8 == 0x0604)
                    .count()
                    .into(),
            );
            figures.insert("expected".into(), cfg.devices.len().into());
            figures.insert("differences".into(), diffs.len().into());
            let (outcome, message) = if diffs.is_empty() {
                (
                    Outcome::Pass,
                    format!(
                        "{} functions as the board file lists them",
                        snap.funcs.len()
                    ),
                )
            } else {
                (
                    Outcome::Fail,
                    format!(
                        "{} difference(s) from the board file:\n{}",
                        diffs.len(),
                        diffs.join("\n")
                    ),
                )
            };
            Ok(CheckOutput {
                outcome: Some(outcome),
                message,
                figures,
            })
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Recorded on sim-rk3588 (kernel 6.1, QEMU 7.2) with COLLECT_COMMAND, trimmed to the
    /// PCI-PCI bridge branch and one root-bus device.
    const SNAP: &str = "\
dev 0000:00:05.0 ../../../devices/platform/4010000000.pcie/pci0000:00/0000:00:05.0 0x1b36 0x0002 0x070002
res 0000:00:05.0 0 0x00000000000050c0 0x00000000000050c7 0x0000000000040101
dev 0000:00:0a.0 ../../../devices/platform/4010000000.pcie/pci0000:00/0000:00:0a.0 0x1b36 0x000c 0x060400
res 0000:00:0a.0 0 0x0000000010547000 0x0000000010547fff 0x0000000000040200
res 0000:00:0a.0 13 0x0000000000003000 0x0000000000004fff 0x0000000000000100
res 0000:00:0a.0 14 0x0000000010300000 0x00000000104fffff 0x0000000000000200
res 0000:00:0a.0 15 0x0000008000200000 0x00000080003fffff 0x0000000000102201
bus 0000:00:0a.0 0000:04
dev 0000:04:00.0 ../../../devices/platform/4010000000.pcie/pci0000:00/0000:00:0a.0/0000:04:00.0 0x1b36 0x000e 0x060400
res 0000:04:00.0 0 0x0000000010400000 0x00000000104000ff 0x0000000000140204
res 0000:04:00.0 13 0x0000000000003000 0x0000000000003fff 0x0000000000000100
res 0000:04:00.0 14 0x0000000010300000 0x00000000103fffff 0x0000000000000200
bus 0000:04:00.0 0000:05
dev 0000:05:01.0 ../../../devices/platform/4010000000.pcie/pci0000:00/0000:00:0a.0/0000:04:00.0/0000:05:01.0 0x1b36 0x0005 0x00ff00
res 0000:05:01.0 0 0x0000000010300000 0x0000000010300fff 0x0000000000040200
res 0000:05:01.0 1 0x0000000000003000 0x00000000000030ff 0x0000000000040101
ioports
00000000-0000ffff : pcie@10000000
  00003000-00004fff : PCI Bus 0000:04
    00003000-00003fff : PCI Bus 0000:05
      00003000-000030ff : 0000:05:01.0
  000050c0-000050c7 : 0000:00:05.0
    000050c0-000050c7 : serial
";

    const EXPECT: &str = r#"devices = [
      { address = "0000:00:05.0", id = "1b36:0002", class = "0x0700", bar0 = "io 0x50c0-0x50c7" },
      { address = "0000:00:0a.0", id = "1b36:000c", class = "0x0604", io_window = "0x3000-0x4fff" },
      { address = "0000:04:00.0", id = "1b36:000e", class = "0x0604", parent = "0000:00:0a.0", io_window = "0x3000-0x3fff", mem_window = "0x10300000-0x103fffff", bar0 = "mem" },
      { address = "0000:05:01.0", id = "1b36:0005", parent = "0000:04:00.0", bar0 = "mem", bar1 = "io 0x3000-0x30ff", bar2 = "none" },
    ]"#;

    fn cfg(t: &str) -> PciTopologyCfg {
        toml::from_str(t).unwrap()
    }

    #[test]
    fn parses_the_tree() {
        let s = parse(SNAP);
        assert_eq!(s.funcs.len(), 4);
        let t = &s.funcs["0000:05:01.0"];
        assert_eq!(t.parent.as_deref(), Some("0000:04:00.0"));
        assert_eq!(s.funcs["0000:00:0a.0"].parent, None);
        assert_eq!(
            s.funcs["0000:04:00.0"].secondary_bus.as_deref(),
            Some("0000:05")
        );
        assert_eq!(
            t.resource(1),
            Some((
                Space::Io,
                Range {
                    start: 0x3000,
                    end: 0x30ff
                }
            ))
        );
        assert_eq!(s.ioports.len(), 6);
        let r = render(&s);
        assert!(r.contains("\n  0000:04:00.0 1b36:000e"), "{r}");
        assert!(r.contains("    0000:05:01.0 1b36:0005 class 0x00ff00 bar0=mem 0x10300000-0x10300fff bar1=io 0x3000-0x30ff"), "{r}");
    }

    #[test]
    fn matching_tree_has_no_differences() {
        assert_eq!(compare(&cfg(EXPECT), &parse(SNAP)), Vec::<String>::new());
    }

    #[test]
    fn each_difference_is_one_line() {
        // The bridge missing from the expectation (its device names a parent not
        // present), a moved BAR, a wrong window and class.
        let wrong = EXPECT
            .replace("bar1 = \"io 0x3000-0x30ff\"", "bar1 = \"io 0x4000-0x40ff\"")
            .replace(
                "io_window = \"0x3000-0x4fff\"",
                "io_window = \"0x3000-0x3fff\"",
            )
            .replace("class = \"0x0700\"", "class = \"0x0c03\"")
            + "\n";
        let mut c = cfg(&wrong);
        c.devices.push(
            toml::from_str(
                r#"address = "0000:06:00.0"
id = "1b36:000e"
class = "0x0604"
parent = "0000:00:0a.0""#,
            )
            .unwrap(),
        );
        let d = compare(&c, &parse(SNAP));
        assert_eq!(
            d,
            [
                "class: 0000:00:05.0 is 0x070002, expected 0x0c03",
                "io_window: 0000:00:0a.0 has io 0x3000-0x4fff, expected io 0x3000-0x3fff",
                "bar1: 0000:05:01.0 BAR1 is io 0x3000-0x30ff, expected io 0x4000-0x40ff",
                "missing: 0000:06:00.0 (1b36:000e, class 0x0604) behind bridge 0000:00:0a.0 is not present",
            ]
        );
    }

    #[test]
    fn unexpected_functions_and_wrong_parents() {
        let mut c = cfg(EXPECT);
        c.devices.retain(|d| d.address != "0000:04:00.0");
        c.devices[2].parent = Some("0000:00:0a.0".into());
        let d = compare(&c, &parse(SNAP));
        assert_eq!(
            d,
            [
                "parent: 0000:05:01.0 is behind bridge 0000:04:00.0, expected behind bridge 0000:00:0a.0",
                "unexpected: 0000:04:00.0 (1b36:000e, class 0x060400) behind bridge 0000:00:0a.0 is not in the board file",
            ]
        );
        c.complete = false;
        assert_eq!(compare(&c, &parse(SNAP)).len(), 1);
    }

    #[test]
    fn ioports_must_agree_with_sysfs() {
        let snap = SNAP.replace("      00003000-000030ff : 0000:05:01.0\n", "");
        let d = compare(&cfg(EXPECT), &parse(&snap));
        assert_eq!(
            d,
            ["ioports: 0000:05:01.0 BAR1 io 0x3000-0x30ff is in sysfs but /proc/ioports has no \"0000:05:01.0\" at that range"]
        );
    }
}
