//! Kernel-log-like text for the benchmarks: deterministic (seeded), with what makes a real
//! boot log costly to scan — timestamps, driver prefixes, PCI addresses, hex, and the odd
//! long line (command lines, register dumps) — and none of the bench's death patterns.

use std::fmt::Write;

/// A small, fast, seeded PRNG (xorshift64*): the same seed gives the same text everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const DRIVERS: &[&str] = &[
    "pci 0000:00:0{d}.0",
    "nvme 0000:00:03.0",
    "e1000e 0000:00:04.0 eth0",
    "virtio-pci 0000:00:02.0",
    "arm-smmu-v3 9050000.smmuv3",
    "usb 1-1",
    "xhci_hcd 0000:00:0{d}.0",
    "mmc0",
    "rockchip-pcie fe150000.pcie",
    "dwc3 fc000000.usb",
];

const MESSAGES: &[&str] = &[
    "BAR {d}: assigned [mem 0x{x}-0x{x} 64bit pref]",
    "enabling device (0000 -> 0002)",
    "adding to iommu group {d}",
    "new high-speed USB device number {d} using xhci_hcd",
    "NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx",
    "registered PHC clock",
    "ias 48-bit, oas 48-bit (features 0x0000{x})",
    "allocated {d} entries for cmdq",
    "msi-x: {d} vectors, irq {d}",
    "PCI->APIC IRQ transform: INT A -> IRQ {d}",
    "reg 0x10: [mem 0x{x}-0x{x}]",
    "supports D1 D2; PME# supported from D0 D1 D3hot",
    "new device found, idVendor=1d6b, idProduct=000{d}, bcdDevice= 6.01",
    "queue depth {d}, timeout {d} ms",
];

const SUBSYSTEMS: &[&str] = &[
    "Booting Linux on physical CPU 0x000000000{d} [0x{x}]",
    "Memory: {d}K/{d}K available ({d}K kernel code, {d}K rwdata, {d}K rodata)",
    "rcu: Hierarchical RCU implementation.",
    "clocksource: arch_sys_counter: mask: 0xffffffffffffff max_cycles: 0x{x}, max_idle_ns: {d} ns",
    "NET: Registered PF_INET6 protocol family",
    "Freeing unused kernel memory: {d}K",
    "EXT4-fs (nvme0n1p{d}): mounted filesystem with ordered data mode. Quota mode: none.",
    "random: crng init done",
    "systemd[1]: Started Journal Service.",
    "audit: type=1400 audit({d}.{d}:{d}): apparmor=\"STATUS\" operation=\"profile_load\" profile=\"unconfined\" name=\"/usr/bin/man\" pid={d} comm=\"apparmor_parser\"",
];

/// Generates lines into `out` until it holds at least `min_len` bytes.
pub struct KernelLog {
    rng: Rng,
    /// Microseconds since "boot": increases line by line like a real log.
    t_us: u64,
    line: String,
}

impl KernelLog {
    pub fn new(seed: u64) -> KernelLog {
        KernelLog {
            rng: Rng::new(seed),
            t_us: 0,
            line: String::with_capacity(512),
        }
    }

    pub fn fill(&mut self, out: &mut Vec<u8>, min_len: usize) {
        while out.len() < min_len {
            self.one_line();
            out.extend_from_slice(self.line.as_bytes());
        }
    }

    fn one_line(&mut self) {
        self.t_us += 1 + self.rng.below(4000);
        self.line.clear();
        let _ = write!(
            self.line,
            "[{:>5}.{:06}] ",
            self.t_us / 1_000_000,
            self.t_us % 1_000_000
        );
        match self.rng.below(100) {
            // a long line: the kernel command line, a register dump
            0..=2 => self.long_line(),
            3..=30 => {
                let t = self.rng.pick(SUBSYSTEMS);
                self.expand(t);
            }
            _ => {
                let d = self.rng.pick(DRIVERS);
                self.expand(d);
                self.line.push_str(": ");
                let m = self.rng.pick(MESSAGES);
                self.expand(m);
            }
        }
        // a serial console's line ending
        self.line.push_str("\r\n");
    }

    fn long_line(&mut self) {
        if self.rng.below(2) == 0 {
            self.line.push_str(
                "Kernel command line: console=ttyS2,1500000n8 earlycon=uart8250,mmio32,0xfeb50000 \
                 root=PARTUUID=614e0000-0000-4b53-8000-1d28000054a9 rw rootwait rootfstype=ext4 \
                 coherent_pool=1m irqchip.gicv3_pseudo_nmi=0 cgroup_enable=cpuset cgroup_memory=1 \
                 cgroup_enable=memory swapaccount=1 kasan=off iommu.passthrough=0 kvm-arm.mode=nvhe",
            );
        } else {
            self.line.push_str("pc : ");
            for i in 0..12 {
                let _ = write!(self.line, "x{:<2}: {:016x} ", 29 - i, self.rng.next_u64());
            }
        }
    }

    /// Copies a template, replacing `{d}` with a number and `{x}` with hex digits.
    fn expand(&mut self, template: &str) {
        let mut rest = template;
        while let Some(p) = rest.find('{') {
            self.line.push_str(&rest[..p]);
            let hole = &rest[p..p + 3];
            let v = self.rng.next_u64();
            if hole == "{x}" {
                let _ = write!(self.line, "{:x}", v >> (v % 40));
            } else {
                let _ = write!(self.line, "{}", v % 65536);
            }
            rest = &rest[p + 3..];
        }
        self.line.push_str(rest);
    }
}

/// A corpus of `len` bytes of kernel log for `seed`: streams are cut from it cyclically, so
/// feeding many consoles costs no generation time.
pub fn corpus(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 1024);
    KernelLog::new(seed).fill(&mut out, len);
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::bytes::Regex;

    #[test]
    fn same_seed_same_text_and_lines_look_like_a_kernel_log() {
        let a = corpus(7, 200_000);
        assert_eq!(a, corpus(7, 200_000));
        assert_ne!(a, corpus(8, 200_000));
        let line = Regex::new(r"^\[ *\d+\.\d{6}\] \S").expect("regex");
        let lines: Vec<&[u8]> = a.split(|b| *b == b'\n').collect();
        assert!(lines.len() > 1000);
        for l in &lines[..lines.len() - 1] {
            assert!(line.is_match(l), "{}", String::from_utf8_lossy(l));
            assert!(l.ends_with(b"\r"));
        }
        assert!(lines.iter().any(|l| l.len() > 200), "no long lines");
    }

    #[test]
    fn the_bench_death_patterns_never_occur() {
        let text = corpus(1, 4 << 20);
        for p in crate::bench::patterns::DEATH {
            let re = Regex::new(p.1).expect("regex");
            assert!(!re.is_match(&text), "{} occurs in the corpus", p.1);
        }
        let end = Regex::new(crate::bench::patterns::AWAITED).expect("regex");
        assert!(!end.is_match(&text));
    }
}
