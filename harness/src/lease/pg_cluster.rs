//! A throw-away PostgreSQL server for tests: `initdb` into a fresh directory, `pg_ctl
//! start` on 127.0.0.1 and a free port, stopped (`pg_ctl stop -m immediate`) and removed
//! when dropped, also when the test that started it fails. The lease tests of the library
//! and of the CLI use it, so they test against a real server, not a stand-in.
//!
//! PostgreSQL refuses to run as root: as root, the server runs as `nobody` (through
//! `runuser`), owning its directory.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What to install when the server binaries are missing.
pub const INSTALL: &str = "apt-get install --no-install-recommends postgresql";

/// The database user the cluster is created with (trusted on 127.0.0.1).
pub const USER: &str = "hil";

/// A running test server; dropping it stops it and removes its files.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    as_user: Option<String>,
    pub port: u16,
}

/// The directory with `initdb` and `pg_ctl`: on `PATH` (`path`), else the newest
/// `<lib_root>/<version>/bin` (Debian keeps them out of PATH, in /usr/lib/postgresql).
pub fn find_bin_dir(path: Option<&std::ffi::OsStr>, lib_root: &Path) -> anyhow::Result<PathBuf> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(p) = path {
        if let Some(d) = std::env::split_paths(p).find(|d| has_both(d)) {
            return Ok(d);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(lib_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_both(d))
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, d)) => Ok(d),
        None => bail!(
            "PostgreSQL server binaries (initdb, pg_ctl) are neither on PATH nor in {}/*/bin: {INSTALL}",
            lib_root.display()
        ),
    }
}

impl Cluster {
    /// Creates and starts a server; returns once it accepts connections.
    pub fn start() -> anyhow::Result<Cluster> {
        let bin = find_bin_dir(
            std::env::var_os("PATH").as_deref(),
            Path::new("/usr/lib/postgresql"),
        )?;
        // SAFETY: getuid has no preconditions and cannot fail.
        let as_user = (unsafe { libc::getuid() } == 0).then(|| "nobody".to_string());
        let mut last = None;
        // The port was free a moment ago; another process may take it before the server.
        for _ in 0..3 {
            let port = crate::console::ser2net::free_port()?;
            let dir = std::env::temp_dir().join(format!("hil-pg-{}-{port}", std::process::id()));
            let mut c = Cluster {
                dir,
                bin: bin.clone(),
                as_user: as_user.clone(),
                port,
            };
            match c.init_and_start() {
                Ok(()) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
    }

    /// `postgres://hil@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's main process (its first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> anyhow::Result<u32> {
        let path = self.data().join("postmaster.pid");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("{}: no process id on its first line", path.display()))
    }

    /// Stops the server (its connections are closed: `-m fast`), leaves it down for
    /// `down`, and starts it again on the same port and data, as an operator's restart or
    /// a failover does.
    pub fn restart(&self, down: std::time::Duration) -> anyhow::Result<()> {
        let mut stop = self.cmd("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        self.run(stop, "pg_ctl stop")?;
        std::thread::sleep(down);
        self.start_server()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `bin/NAME` run as the server's user.
    fn cmd(&self, name: &str) -> Command {
        let exe = self.bin.join(name);
        let mut c = match &self.as_user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        // The server's user may not be able to enter the caller's directory.
        c.current_dir(&self.dir);
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, mut c: Command, what: &str) -> anyhow::Result<()> {
        let out = c.output().with_context(|| format!("running {what}"))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            bail!(
                "{what} failed ({}): {}{}\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn init_and_start(&mut self) -> anyhow::Result<()> {
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        if let Some(u) = &self.as_user {
            let st = Command::new("chown")
                .arg(u)
                .arg(&self.dir)
                .status()
                .context("running chown")?;
            anyhow::ensure!(st.success(), "chown {u} {} failed", self.dir.display());
        }
        let mut init = self.cmd("initdb");
        init.arg("-D").arg(self.data()).args([
            "-U",
            USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        self.run(init, "initdb")?;
        self.start_server()
    }

    fn start_server(&self) -> anyhow::Result<()> {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c shared_buffers=16MB -c max_connections=40",
            self.port,
            self.dir.display()
        );
        let mut start = self.cmd("pg_ctl");
        start
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "-o", &opts, "start"]);
        self.run(start, "pg_ctl start")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let mut stop = self.cmd("pg_ctl");
            stop.arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = stop.status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
