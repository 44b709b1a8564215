//! A pdudaemon started with its own configuration, listening on a loopback address, and
//! stopped by its PID when dropped: the PDU daemon that the pdudaemon backend's tests and
//! the remote sim lab put in front of a `localcmdline` PDU (a PDU whose outlets are local
//! commands, so "power" can be anything a shell command switches).

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `pdudaemon` package puts the daemon.
pub fn executable() -> anyhow::Result<PathBuf> {
    ["/usr/sbin/pdudaemon", "/usr/bin/pdudaemon"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("pdudaemon is not installed: apt-get install --no-install-recommends pdudaemon")
}

pub struct PduDaemon {
    child: Child,
    pub host: String,
    pub port: u16,
    /// pdudaemon's own log (`--logfile`): every request and the commands it ran.
    pub log: PathBuf,
    stderr: PathBuf,
}

impl PduDaemon {
    /// Starts pdudaemon on `host:port` with the `pdus` table given (pdudaemon's JSON
    /// configuration format: name → {"driver": ..., driver options}), its files in `dir`,
    /// and waits until it listens.
    pub fn start(
        dir: &Path,
        host: &str,
        port: u16,
        pdus: serde_json::Value,
    ) -> anyhow::Result<PduDaemon> {
        let exe = executable()?;
        let conf = serde_json::json!({
            "daemon": {
                "hostname": host,
                "port": port,
                "logging_level": "DEBUG",
                "listener": "http"
            },
            "pdus": pdus
        });
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let conf_path = dir.join("pdudaemon.conf");
        std::fs::write(&conf_path, conf.to_string())?;
        let log = dir.join("pdudaemon.log");
        let stderr = dir.join("pdudaemon.stderr");
        let child = Command::new(&exe)
            .arg("--conf")
            .arg(&conf_path)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let mut d = PduDaemon {
            child,
            host: host.into(),
            port,
            log,
            stderr,
        };
        // Python start-up and its imports take seconds on a busy machine.
        let end = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect((host, port)).is_err() {
            if let Some(st) = d.child.try_wait()? {
                anyhow::bail!("pdudaemon exited ({st}): {}", d.logs());
            }
            anyhow::ensure!(
                Instant::now() < end,
                "pdudaemon did not listen on {host}:{port} within 60 s: {}",
                d.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(d)
    }

    /// Its log and its stderr, for a failure message.
    pub fn logs(&self) -> String {
        let r = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!("{}{}", r(&self.log), r(&self.stderr))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PduDaemon {
    fn drop(&mut self) {
        // SAFETY: the pid is our own child, not yet waited for, so it is still ours.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
