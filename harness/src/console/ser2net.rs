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
        // Ready once the ports accept (a probe connection opens and closes the device).
        let deadline = Instant::now() + Duration::from_secs(10);
        for (_, port) in exports {
            while std::net::TcpStream::connect((host, *port)).is_err() {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "ser2net did not listen on {host}:{port} within 10 s"
                );
                std::thread::sleep(Duration::from_millis(50));
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

impl Drop for Ser2net {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the PID of the child this guard spawned and has not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
