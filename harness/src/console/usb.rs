//! A local USB-serial adapter named by what stays the same when it re-enumerates: its
//! USB serial number (`usb-serial:FT4ABCDE`, `usb-serial:FT4ABCDE:if01` for one port of a
//! multi-port adapter) or the USB port it is plugged into (`usb-path:1-1.4`,
//! `usb-path:1-1.4:1.0` for one interface). Its tty (`/dev/ttyUSBn`, `/dev/ttyACMn`) is
//! found through sysfs each time the console is opened or reopened:
//!
//! ```text
//! /sys/class/tty/ttyUSB0/device -> ../../../devices/.../1-1/1-1.4/1-1.4:1.0/ttyUSB0   (usb-serial)
//! /sys/class/tty/ttyACM0/device -> ../../../devices/.../1-1/1-1.4/1-1.4:1.0           (cdc-acm)
//! ```
//!
//! The first ancestor of the tty's `device` with a `bInterfaceNumber` is the USB
//! interface; its parent is the USB device, whose directory name is the port path and
//! whose `serial` file holds the serial number. The sysfs root is a parameter
//! ([`SysfsRoot`]) so tests build a tree of their own; nothing here writes to it.

use crate::config::board::UsbAdapter;
use std::path::{Path, PathBuf};

/// Where sysfs is mounted: `/sys`, or a test's own tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsRoot(pub PathBuf);

impl Default for SysfsRoot {
    fn default() -> SysfsRoot {
        SysfsRoot(PathBuf::from("/sys"))
    }
}

/// One USB tty that sysfs shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `ttyUSB0`; opened as `/dev/ttyUSB0`.
    pub tty: String,
    /// The USB device's port path: `1-1.4`.
    pub port: String,
    /// The interface's directory name: `1-1.4:1.0`.
    pub interface_dir: String,
    /// `bInterfaceNumber` (hex in sysfs).
    pub interface: Option<u8>,
    /// The device's `serial`, when it has one.
    pub serial: Option<String>,
}

impl Found {
    pub fn dev_path(&self) -> String {
        format!("/dev/{}", self.tty)
    }

    /// `ttyUSB0 (serial FT4ABCDE, if01, port 1-1.4:1.1)`.
    pub fn describe(&self) -> String {
        let serial = self
            .serial
            .as_deref()
            .map_or("no serial number".to_string(), |s| format!("serial {s}"));
        let iface = self
            .interface
            .map_or(String::new(), |n| format!(", if{n:02x}"));
        format!(
            "{} ({serial}{iface}, port {})",
            self.tty, self.interface_dir
        )
    }
}

/// Every USB tty under `root`/class/tty, sorted by name.
pub fn list(root: &SysfsRoot) -> Vec<Found> {
    let Ok(entries) = std::fs::read_dir(root.0.join("class/tty")) else {
        return Vec::new();
    };
    let mut found: Vec<Found> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let tty = e.file_name().to_str()?.to_string();
            let dev = std::fs::canonicalize(e.path().join("device")).ok()?;
            usb_tty(tty, &dev)
        })
        .collect();
    found.sort_by(|a, b| a.tty.cmp(&b.tty));
    found
}

/// The USB interface and device above a tty's `device` directory, if it is on USB.
fn usb_tty(tty: String, device: &Path) -> Option<Found> {
    // usb-serial: .../IFACE/ttyUSB0; cdc-acm: .../IFACE itself. A few levels at most.
    let iface = device
        .ancestors()
        .take(3)
        .find(|d| d.join("bInterfaceNumber").is_file())?;
    let usb_dev = iface.parent()?;
    let read = |p: PathBuf| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    Some(Found {
        tty,
        port: usb_dev.file_name()?.to_str()?.to_string(),
        interface_dir: iface.file_name()?.to_str()?.to_string(),
        interface: read(iface.join("bInterfaceNumber"))
            .and_then(|n| u8::from_str_radix(&n, 16).ok()),
        serial: read(usb_dev.join("serial")),
    })
}

impl UsbAdapter {
    fn matches(&self, f: &Found) -> bool {
        match self {
            UsbAdapter::Serial { serial, interface } => {
                f.serial.as_deref() == Some(serial.as_str())
                    && interface.is_none_or(|n| f.interface == Some(n))
            }
            UsbAdapter::Path { port, interface } => match interface {
                Some(i) => f.interface_dir == format!("{port}:{i}"),
                None => &f.port == port,
            },
        }
    }
}

/// The tty that `adapter` names now, as a `/dev` path. None, or more than one, is an
/// error naming the adapter and the USB ttys that are there.
pub fn resolve(root: &SysfsRoot, adapter: &UsbAdapter) -> Result<String, String> {
    let all = list(root);
    let hits: Vec<&Found> = all.iter().filter(|f| adapter.matches(f)).collect();
    match hits.as_slice() {
        [one] => Ok(one.dev_path()),
        [] => {
            let there = if all.is_empty() {
                "none".to_string()
            } else {
                all.iter()
                    .map(|f| f.describe())
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            Err(format!(
                "no USB serial adapter is {} ({}); USB serial adapters there: {there}",
                adapter.wanted(),
                root.0.join("class/tty").display()
            ))
        }
        many => {
            let names = many.iter().map(|f| f.describe()).collect::<Vec<_>>();
            let one_device = many.iter().all(|f| f.port == many[0].port);
            let fix = match adapter {
                UsbAdapter::Serial { serial, .. } if one_device => format!(
                    "name one interface, e.g. usb-serial:{serial}:if{:02x}",
                    many[0].interface.unwrap_or(0)
                ),
                UsbAdapter::Serial { .. } => {
                    "name the adapter by its port instead (usb-path:PORT), or give one adapter another serial number".to_string()
                }
                UsbAdapter::Path { port, .. } => format!(
                    "name one interface, e.g. usb-path:{}",
                    many[0]
                        .interface_dir
                        .strip_prefix(&format!("{port}:"))
                        .map_or(many[0].interface_dir.clone(), |i| format!("{port}:{i}"))
                ),
            };
            Err(format!(
                "{} names {} ttys: {}; {fix}",
                adapter,
                many.len(),
                names.join("; ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;
    use crate::config::board::ConsoleDevice;

    /// A sysfs tree like the real one, in a temp dir.
    struct FakeSys {
        dir: tempfile::TempDir,
    }

    const HUB: &str = "devices/pci0000:00/0000:00:14.0/usb1/1-1";

    impl FakeSys {
        fn new() -> FakeSys {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("class/tty")).unwrap();
            FakeSys { dir }
        }

        fn root(&self) -> SysfsRoot {
            SysfsRoot(self.dir.path().to_path_buf())
        }

        /// A USB device on `port` (below the hub), with `serial`.
        fn device(&self, port: &str, serial: Option<&str>) {
            let d = self.dir.path().join(HUB).join(port);
            std::fs::create_dir_all(&d).unwrap();
            if let Some(s) = serial {
                std::fs::write(d.join("serial"), format!("{s}\n")).unwrap();
            }
        }

        /// Interface `n` of the device on `port`, as a usb-serial `tty` (`acm`: the
        /// cdc-acm layout, the tty right under the interface).
        fn tty(&self, port: &str, n: u8, tty: &str, acm: bool) {
            let iface = format!("{HUB}/{port}/{port}:1.{n}");
            let abs = self.dir.path().join(&iface);
            std::fs::create_dir_all(&abs).unwrap();
            std::fs::write(abs.join("bInterfaceNumber"), format!("{n:02x}\n")).unwrap();
            let target = if acm {
                std::fs::create_dir_all(abs.join("tty").join(tty)).unwrap();
                iface
            } else {
                std::fs::create_dir_all(abs.join(tty)).unwrap();
                format!("{iface}/{tty}")
            };
            let class = self.dir.path().join("class/tty").join(tty);
            std::fs::create_dir_all(&class).unwrap();
            std::os::unix::fs::symlink(format!("../../../{target}"), class.join("device")).unwrap();
        }

        /// The adapter goes away (its tty with it).
        fn unplug(&self, port: &str, tty: &str) {
            std::fs::remove_dir_all(self.dir.path().join("class/tty").join(tty)).unwrap();
            std::fs::remove_dir_all(self.dir.path().join(HUB).join(port)).unwrap();
        }

        /// A tty that is not on USB (the 8250 UART).
        fn platform_tty(&self, tty: &str) {
            let d = self
                .dir
                .path()
                .join("devices/platform/serial8250/tty")
                .join(tty);
            std::fs::create_dir_all(&d).unwrap();
            let class = self.dir.path().join("class/tty").join(tty);
            std::fs::create_dir_all(&class).unwrap();
            std::os::unix::fs::symlink(
                "../../../devices/platform/serial8250",
                class.join("device"),
            )
            .unwrap();
        }
    }

    fn adapter(text: &str) -> UsbAdapter {
        match ConsoleDevice::parse(text).unwrap() {
            ConsoleDevice::Usb(a) => a,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn found_by_serial_interface_or_port_and_again_after_re_enumeration() {
        let sys = FakeSys::new();
        sys.platform_tty("ttyS0");
        sys.device("1-1.2", Some("A10KXYZ"));
        sys.tty("1-1.2", 0, "ttyUSB0", false);
        sys.device("1-1.4", Some("FT4ABCDE"));
        for n in 0..4 {
            sys.tty("1-1.4", n, &format!("ttyUSB{}", n + 1), false);
        }
        sys.device("1-1.3", Some("0123ACM"));
        sys.tty("1-1.3", 0, "ttyACM0", true);
        let root = sys.root();
        for (text, want) in [
            ("usb-serial:A10KXYZ", "/dev/ttyUSB0"),
            ("usb-serial:FT4ABCDE:if01", "/dev/ttyUSB2"),
            ("usb-serial:FT4ABCDE:if3", "/dev/ttyUSB4"),
            ("usb-serial:0123ACM", "/dev/ttyACM0"),
            ("usb-path:1-1.2", "/dev/ttyUSB0"),
            ("usb-path:1-1.4:1.2", "/dev/ttyUSB3"),
            ("usb-path:1-1.3:1.0", "/dev/ttyACM0"),
        ] {
            assert_eq!(
                resolve(&root, &adapter(text)).as_deref(),
                Ok(want),
                "{text}"
            );
        }
        // A hub reset: the adapter comes back under another ttyUSB number.
        sys.unplug("1-1.2", "ttyUSB0");
        let a = adapter("usb-serial:A10KXYZ");
        assert!(resolve(&root, &a).is_err(), "away");
        sys.device("1-1.2", Some("A10KXYZ"));
        sys.tty("1-1.2", 0, "ttyUSB7", false);
        assert_eq!(resolve(&root, &a).as_deref(), Ok("/dev/ttyUSB7"));
        assert_eq!(
            resolve(&root, &adapter("usb-path:1-1.2:1.0")).as_deref(),
            Ok("/dev/ttyUSB7")
        );
    }

    #[test]
    fn two_adapters_with_one_serial_number_are_an_error_naming_both() {
        let sys = FakeSys::new();
        sys.device("1-1.2", Some("FT232R"));
        sys.tty("1-1.2", 0, "ttyUSB0", false);
        sys.device("1-1.3", Some("FT232R"));
        sys.tty("1-1.3", 0, "ttyUSB1", false);
        let e = resolve(&sys.root(), &adapter("usb-serial:FT232R")).unwrap_err();
        assert!(e.starts_with("usb-serial:FT232R names 2 ttys: "), "{e}");
        assert!(
            e.contains("ttyUSB0 (serial FT232R, if00, port 1-1.2:1.0)")
                && e.contains("ttyUSB1 (serial FT232R, if00, port 1-1.3:1.0)"),
            "{e}"
        );
        assert!(e.contains("usb-path:PORT"), "{e}");
        // One adapter with four ports: name the interface.
        let sys = FakeSys::new();
        sys.device("1-1.4", Some("FT4ABCDE"));
        sys.tty("1-1.4", 0, "ttyUSB0", false);
        sys.tty("1-1.4", 1, "ttyUSB1", false);
        let e = resolve(&sys.root(), &adapter("usb-serial:FT4ABCDE")).unwrap_err();
        assert!(e.contains("usb-serial:FT4ABCDE:if00"), "{e}");
        let e = resolve(&sys.root(), &adapter("usb-path:1-1.4")).unwrap_err();
        assert!(e.contains("usb-path:1-1.4:1.0"), "{e}");
    }

    #[test]
    fn none_is_an_error_naming_the_serial_and_listing_the_adapters_there() {
        let sys = FakeSys::new();
        sys.platform_tty("ttyS0");
        let e = resolve(&sys.root(), &adapter("usb-serial:FT4ABCDE:if01")).unwrap_err();
        assert!(
            e.starts_with(
                "no USB serial adapter is the one with serial number FT4ABCDE, interface 01 ("
            ),
            "{e}"
        );
        assert!(e.ends_with("USB serial adapters there: none"), "{e}");
        sys.device("1-1.2", Some("A10KXYZ"));
        sys.tty("1-1.2", 0, "ttyUSB0", false);
        sys.device("1-1.3", None);
        sys.tty("1-1.3", 0, "ttyACM0", true);
        let e = resolve(&sys.root(), &adapter("usb-serial:FT4ABCDE")).unwrap_err();
        assert!(e.contains("serial number FT4ABCDE"), "{e}");
        assert!(
            e.ends_with(
                "there: ttyACM0 (no serial number, if00, port 1-1.3:1.0); ttyUSB0 (serial A10KXYZ, if00, port 1-1.2:1.0)"
            ),
            "{e}"
        );
        let e = resolve(&sys.root(), &adapter("usb-path:1-1.4")).unwrap_err();
        assert!(e.contains("the one on USB port 1-1.4"), "{e}");
        // No sysfs at all (a container): nothing there, said as such.
        let gone = SysfsRoot(sys.dir.path().join("absent"));
        let e = resolve(&gone, &adapter("usb-serial:A10KXYZ")).unwrap_err();
        assert!(e.ends_with("there: none"), "{e}");
    }
}
