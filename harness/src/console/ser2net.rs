//! A ser2net 4 started on 127.0.0.1 in front of one serial device, with its own config
//! file, killed by its PID when dropped: the exporter that the network console tests and
//! `hil bench --only network` put between a pty and a network console.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SER2NET: &str = "ser2net";

/// Whether `ser2net` can be run at all.
pub fn installed() -> bool {
    Command::new(SER2NET)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A running ser2net; dropping it kills it (SIGKILL by PID) and removes its config.
pub struct Ser2net {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

impl Ser2net {
    /// Exports `device` on 127.0.0.1:`port`. `accepter` is `telnet(rfc2217)`, `telnet` or
    /// `tcp`. Returns once the port accepts connections.
    pub fn start(accepter: &str, port: u16, device: &Path) -> anyhow::Result<Ser2net> {
        Ser2net::start_exports("127.0.0.1", &[(accepter, port)], device)
    }

    /// Exports `device` on `host` once per (accepter, port), as a lab's exporter publishes
    /// one adapter in RFC 2217 mode and again in raw mode. One connection at a time holds
    /// the device. `port` is the first export's. Returns once every port accepts.
    pub fn start_exports(
        host: &str,
        exports: &[(&str, u16)],
        device: &Path,
    ) -> anyhow::Result<Ser2net> {
        let port = exports.first().context("no export")?.1;
        let dir = std::env::temp_dir().join(format!("hil-ser2net-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let cfg = dir.join("ser2net.yaml");
        let mut yaml = String::new();
        for (i, (accepter, port)) in exports.iter().enumerate() {
            let accepter = if *accepter == "tcp" {
                format!("tcp,{host},{port}")
            } else {
                format!("{accepter},tcp,{host},{port}")
            };
            yaml.push_str(&format!(
                "connection: &con{i}\n  accepter: {accepter}\n  connector: serialdev,{},115200n81,local\n  options:\n    kickolduser: true\n",
                device.display()
            ));
        }
        std::fs::write(&cfg, yaml)?;
        let child = Command::new(SER2NET)
            .arg("-c")
            .arg(&cfg)
            .args(["-n", "-d", "-P"])
            .arg(dir.join("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {SER2NET} (apt-get install ser2net)"))?;
        let s = Ser2net { child, dir, port };
        // Ready once every port listens. Seen in /proc/net/tcp rather than by connecting:
        // with `kickolduser` a probe connection would kick out a client (hil reconnecting
        // after a restart) that got in first, and that client would see a second drop.
        let deadline = Instant::now() + Duration::from_secs(10);
        for (_, port) in exports {
            while !listening(host, *port) {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "ser2net did not listen on {host}:{port} within 10 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        Ok(s)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until ser2net holds `device` open (a client has connected and ser2net has
    /// opened and set up the device), as seen in /proc/PID/fd. Without RFC 2217 nothing
    /// on the wire says so, and what the device printed before is not forwarded.
    pub fn wait_device_open(&self, device: &Path, within: Duration) -> anyhow::Result<()> {
        let want = std::fs::canonicalize(device).unwrap_or_else(|_| device.to_path_buf());
        let fds = PathBuf::from(format!("/proc/{}/fd", self.pid()));
        let deadline = Instant::now() + within;
        loop {
            let open = std::fs::read_dir(&fds)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == want));
            if open {
                // ser2net sets the line up right after the open; let it finish.
                std::thread::sleep(Duration::from_millis(100));
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "ser2net did not open {} within {} s",
                device.display(),
                within.as_secs_f64()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Whether a TCP socket listens on IPv4 `host`:`port`, from /proc/net/tcp (whose addresses
/// are the in-memory bytes of the big-endian address, printed as one hex word).
fn listening(host: &str, port: u16) -> bool {
    let Ok(ip) = host.parse::<std::net::Ipv4Addr>() else {
        return false;
    };
    let want = format!("{:08X}:{port:04X}", u32::from_ne_bytes(ip.octets()));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).any(|l| {
        let mut f = l.split_whitespace();
        let local = f.nth(1);
        let state = f.nth(1);
        local == Some(want.as_str()) && state == Some("0A")
    })
}

impl Drop for Ser2net {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the PID of the child this guard spawned and has not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::listening;

    #[test]
    fn a_listening_socket_is_seen_in_proc_and_a_closed_one_is_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(listening("127.0.0.1", port));
        assert!(!listening("127.0.0.2", port), "another address");
        drop(l);
        assert!(!listening("127.0.0.1", port));
    }
}
