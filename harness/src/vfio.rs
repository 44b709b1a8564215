//! VFIO on the board: find the board file's devices in sysfs, check their IOMMU groups are
//! viable, bind them to vfio-pci with `driver_override`, and put them back on the drivers
//! they had. Everything runs on the board over SSH; nothing here touches the lab host.
//!
//! Decisions (what is viable, what to restore) are pure functions over a parsed sysfs
//! listing, so they are unit-tested without a board.

use crate::config::board::DeviceCfg;
use serde::{Deserialize, Serialize};

/// One line per PCI device: address vendor device class driver group (`-` for none).
pub const LIST_COMMAND: &str = r#"for d in /sys/bus/pci/devices/*; do dr=$(readlink "$d/driver"); dr=${dr##*/}; g=$(readlink "$d/iommu_group"); g=${g##*/}; echo "${d##*/} $(cat "$d/vendor") $(cat "$d/device") $(cat "$d/class") ${dr:--} ${g:--}"; done"#;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDev {
    pub address: String,
    pub vendor: u16,
    pub device: u16,
    pub class: u32,
    pub driver: Option<String>,
    pub group: Option<u32>,
}

impl PciDev {
    pub fn is_bridge(&self) -> bool {
        self.class >> 8 == 0x0604
    }
    pub fn id(&self) -> String {
        format!("{:04x}:{:04x}", self.vendor, self.device)
    }
    pub fn driver_name(&self) -> &str {
        self.driver.as_deref().unwrap_or("(none)")
    }
}

/// A device hil moved to vfio-pci, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub name: String,
    pub address: String,
    pub group: u32,
    pub original_driver: Option<String>,
}

/// `0000:00:03.0` (domain optional on input) → canonical form.
pub fn parse_address(s: &str) -> Option<String> {
    let s = s.trim();
    let full = if s.matches(':').count() == 1 {
        format!("0000:{s}")
    } else {
        s.to_string()
    };
    let (dom, rest) = full.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    let hex = |t: &str, n: usize| t.len() == n && t.chars().all(|c| c.is_ascii_hexdigit());
    (hex(dom, 4)
        && hex(bus, 2)
        && hex(dev, 2)
        && func.len() == 1
        && ('0'..='7').contains(&func.chars().next()?))
    .then(|| full.to_ascii_lowercase())
}

pub fn parse_id(s: &str) -> Option<(u16, u16)> {
    let (v, d) = s.split_once(':')?;
    Some((
        u16::from_str_radix(v, 16).ok()?,
        u16::from_str_radix(d, 16).ok()?,
    ))
}

fn hex_field(t: &str) -> Option<u32> {
    u32::from_str_radix(t.trim_start_matches("0x"), 16).ok()
}

/// Parses [`LIST_COMMAND`] output; lines that do not parse are skipped.
pub fn parse_list(out: &str) -> Vec<PciDev> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [addr, vendor, device, class, driver, group] = f.as_slice() else {
                return None;
            };
            let driver = (*driver != "-").then(|| driver.to_string());
            let group = if *group == "-" {
                None
            } else {
                Some(group.parse().ok()?)
            };
            Some(PciDev {
                address: parse_address(addr)?,
                vendor: hex_field(vendor)? as u16,
                device: hex_field(device)? as u16,
                class: hex_field(class)?,
                driver,
                group,
            })
        })
        .collect()
}

/// Finds a board-file device in the listing; the error names what was looked for.
pub fn resolve<'a>(devs: &'a [PciDev], cfg: &DeviceCfg) -> Result<&'a PciDev, String> {
    if let Some(a) = &cfg.address {
        let want = parse_address(a).unwrap_or_else(|| a.clone());
        return devs.iter().find(|d| d.address == want).ok_or_else(|| {
            format!(
                "device {}: no PCI device at {want} (present: {})",
                cfg.name,
                devs.iter()
                    .map(|d| d.address.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    }
    let (v, d) = cfg
        .id
        .as_deref()
        .and_then(parse_id)
        .ok_or_else(|| format!("device {}: neither address nor a valid id", cfg.name))?;
    let class = cfg
        .class
        .as_deref()
        .and_then(|c| c.strip_prefix("0x"))
        .map(|h| (h.len(), u32::from_str_radix(h, 16).unwrap_or(0)));
    devs.iter()
        .find(|x| {
            x.vendor == v
                && x.device == d
                && class.is_none_or(|(len, c)| x.class >> (24usize.saturating_sub(len * 4)) == c)
        })
        .ok_or_else(|| {
            format!(
                "device {}: no PCI device {:04x}:{:04x}{} present",
                cfg.name,
                v,
                d,
                cfg.class
                    .as_ref()
                    .map_or(String::new(), |c| format!(" of class {c}"))
            )
        })
}

/// Checks that every other member of the targets' IOMMU groups lets the group be used by
/// VFIO: bridges bound to nothing or to `pcieport`, endpoints bound to nothing or vfio-pci.
/// `Err` is the reason, naming the group and the device in the way.
pub fn check_viable(devs: &[PciDev], targets: &[&PciDev]) -> Result<(), String> {
    for t in targets {
        let g = match (t.group, t.driver.as_deref()) {
            (Some(g), _) => g,
            // A device no driver has claimed has no iommu_group link yet on this kernel; its
            // group is known only once bound (checked again after the bind).
            (None, None) => continue,
            (None, Some(_)) => {
                return Err(format!(
                    "{} has no iommu_group: no IOMMU in front of it (is the SMMU enabled, with iommu-map on the PCIe node?)",
                    t.address
                ))
            }
        };
        for m in devs
            .iter()
            .filter(|m| m.group == Some(g) && !targets.iter().any(|t| t.address == m.address))
        {
            let ok = matches!(
                (m.is_bridge(), m.driver.as_deref()),
                (_, None | Some("vfio-pci")) | (true, Some("pcieport"))
            );
            if !ok {
                return Err(format!(
                    "group {g} is not viable: {} ({}, class 0x{:06x}) in the same IOMMU group as {} is bound to {}",
                    m.address, m.id(), m.class, t.address, m.driver_name()
                ));
            }
        }
    }
    Ok(())
}

/// The endpoints sharing a group with the targets (to bind them too, when asked).
pub fn group_companions<'a>(devs: &'a [PciDev], targets: &[&PciDev]) -> Vec<&'a PciDev> {
    devs.iter()
        .filter(|m| !m.is_bridge() && m.driver.as_deref() != Some("vfio-pci"))
        .filter(|m| !targets.iter().any(|t| t.address == m.address))
        .filter(|m| {
            targets
                .iter()
                .any(|t| t.group.is_some() && t.group == m.group)
        })
        .collect()
}

/// Moves one device to vfio-pci. `driver_override` first, so nothing else grabs it between
/// unbind and probe.
pub fn bind_command(address: &str) -> String {
    let d = format!("/sys/bus/pci/devices/{address}");
    let q = |s: &str| crate::shell::quote(s).into_owned();
    format!(
        "set -e; echo vfio-pci > {ov}; if [ -e {drv} ]; then echo {a} > {drv}/unbind; fi; echo {a} > /sys/bus/pci/drivers_probe; r=$(readlink {drv}); [ \"${{r##*/}}\" = vfio-pci ] || {{ echo {a}\" is on ${{r##*/}} after probe\"; exit 1; }}",
        ov = q(&format!("{d}/driver_override")),
        drv = q(&format!("{d}/driver")),
        a = q(address),
    )
}

/// Puts a device back: clear the override (a newline), unbind from vfio-pci, bind the
/// recorded driver (or let the kernel probe one when there was none).
pub fn restore_command(b: &Binding) -> String {
    let d = format!("/sys/bus/pci/devices/{}", b.address);
    let q = |s: &str| crate::shell::quote(s).into_owned();
    let rebind = match &b.original_driver {
        Some(orig) => format!(
            "echo {a} > {bind} 2>/dev/null || echo {a} > /sys/bus/pci/drivers_probe",
            a = q(&b.address),
            bind = q(&format!("/sys/bus/pci/drivers/{orig}/bind"))
        ),
        None => "true".to_string(),
    };
    format!(
        "echo > {ov}; if [ -e {drv} ]; then echo {a} > {drv}/unbind; fi; {rebind}",
        ov = q(&format!("{d}/driver_override")),
        drv = q(&format!("{d}/driver")),
        a = q(&b.address),
    )
}

/// Human-readable snapshot (the `lspci -k` of this board, from sysfs).
pub fn render(devs: &[PciDev]) -> String {
    let mut s = String::from("address       id         class     driver       iommu_group\n");
    for d in devs {
        s.push_str(&format!(
            "{}  {}  0x{:06x}  {:<11}  {}\n",
            d.address,
            d.id(),
            d.class,
            d.driver_name(),
            d.group.map_or("-".into(), |g| g.to_string())
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "\
0000:00:00.0 0x1b36 0x0008 0x060000 - 0
0000:00:03.0 0x1b36 0x0010 0x010802 nvme 2
0000:00:04.0 0x8086 0x10d3 0x020000 e1000e 3
0000:00:09.0 0x1b36 0x000e 0x060400 shpchp 7
0000:01:00.0 0x8086 0x100e 0x020000 e1000 7
0000:00:07.0 0x1234 0x11e8 0x00ff00 - -
";

    fn dev(name: &str, addr: Option<&str>, id: Option<&str>, class: Option<&str>) -> DeviceCfg {
        DeviceCfg {
            name: name.into(),
            address: addr.map(Into::into),
            id: id.map(Into::into),
            class: class.map(Into::into),
        }
    }

    #[test]
    fn parses_sysfs_listing() {
        let d = parse_list(LISTING);
        assert_eq!(d.len(), 6);
        assert_eq!(d[5].group, None);
        assert_eq!(d[0].driver, None);
        assert_eq!(d[0].group, Some(0));
        assert_eq!(d[1].driver.as_deref(), Some("nvme"));
        assert_eq!(d[1].class, 0x010802);
        assert!(d[3].is_bridge());
    }

    #[test]
    fn resolves_by_address_or_id_and_names_missing() {
        let d = parse_list(LISTING);
        assert_eq!(
            resolve(&d, &dev("nvme", Some("00:03.0"), None, None))
                .unwrap()
                .address,
            "0000:00:03.0"
        );
        assert_eq!(
            resolve(&d, &dev("nic", None, Some("8086:10d3"), Some("0x02")))
                .unwrap()
                .address,
            "0000:00:04.0"
        );
        let e = resolve(&d, &dev("ghost", Some("0000:00:1f.0"), None, None)).unwrap_err();
        assert!(e.contains("no PCI device at 0000:00:1f.0"), "{e}");
        assert!(resolve(&d, &dev("nvme", None, Some("1b36:0010"), Some("0x0200"))).is_err());
    }

    #[test]
    fn group_with_a_bridge_on_shpchp_is_not_viable() {
        let d = parse_list(LISTING);
        let t = resolve(&d, &dev("e", Some("0000:01:00.0"), None, None)).unwrap();
        let e = check_viable(&d, &[t]).unwrap_err();
        assert!(e.starts_with("group 7 is not viable: 0000:00:09.0"), "{e}");
        assert!(e.contains("bound to shpchp"), "{e}");
        let ok = resolve(&d, &dev("n", Some("0000:00:03.0"), None, None)).unwrap();
        assert!(check_viable(&d, &[ok]).is_ok());
    }

    #[test]
    fn no_group_means_no_iommu_unless_unclaimed() {
        let mut d = parse_list(LISTING);
        d[1].group = None;
        let e = check_viable(&d, &[&d[1]]).unwrap_err();
        assert!(e.contains("no iommu_group"), "{e}");
        // edu (00:07.0) has no driver and so no group yet: not judged before the bind
        assert!(check_viable(&d, &[&d[5]]).is_ok());
    }

    #[test]
    fn addresses_are_validated_and_quoted() {
        assert_eq!(parse_address("00:03.0").as_deref(), Some("0000:00:03.0"));
        assert!(parse_address("0000:00:03.8").is_none());
        assert!(parse_address("x'; reboot; '").is_none());
        let b = Binding {
            name: "n".into(),
            address: "0000:00:03.0".into(),
            group: 2,
            original_driver: Some("nvme".into()),
        };
        let c = restore_command(&b);
        assert!(c.contains("/sys/bus/pci/drivers/nvme/bind"), "{c}");
        assert!(bind_command("0000:00:03.0")
            .contains("echo vfio-pci > /sys/bus/pci/devices/0000:00:03.0/driver_override"));
    }
}
