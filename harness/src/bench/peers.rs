//! The peers hil is measured against: Python pexpect (the engine of labgrid, LAVA and
//! pytest-embedded) in a child Python, and rexpect (the crate hil's engine replaced).

use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const SCRIPT: &str = include_str!("pexpect_bench.py");

/// How pexpect is set up: bytes per read, search window (0 = none: pexpect then rescans
/// its whole buffer on every read, so its cost grows with the square of the stream) and
/// MiB streamed (the slow set-ups get a short stream; per-MiB figures are comparable only
/// where the cost is linear).
#[derive(Debug, Clone, Copy)]
pub struct PexpectConfig {
    pub maxread: usize,
    pub window: usize,
    pub mib: f64,
}

impl std::str::FromStr for PexpectConfig {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let [m, w, mib] = parts[..] else {
            return Err(format!(
                "{s:?}: expected MAXREAD:WINDOW:MIB, e.g. 65536:4096:16"
            ));
        };
        let num = |v: &str| v.parse::<usize>().map_err(|e| format!("{s:?}: {e}"));
        Ok(PexpectConfig {
            maxread: num(m)?,
            window: num(w)?,
            mib: mib.parse().map_err(|e| format!("{s:?}: {e}"))?,
        })
    }
}

impl std::fmt::Display for PexpectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let window = match self.window {
            0 => "none".to_string(),
            w => w.to_string(),
        };
        write!(f, "maxread={}, searchwindowsize={window}", self.maxread)
    }
}

/// Makes sure Python can import pexpect, installing it from PyPI with pip if not.
pub fn ensure_pexpect() -> anyhow::Result<String> {
    let version = || {
        Command::new("python3")
            .args(["-c", "import pexpect; print(pexpect.__version__)"])
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(v) = version() {
        return Ok(v);
    }
    eprintln!("hil bench: installing pexpect with pip");
    let st = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "pexpect"])
        .status()
        .context("running python3 -m pip (is python3 installed?)")?;
    anyhow::ensure!(st.success(), "pip install pexpect failed ({st})");
    version().context("pexpect still not importable after pip install")
}

/// A pexpect follower started on `pty`, ready (pty open) when this returns.
pub struct Pexpect {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

#[derive(serde::Deserialize)]
pub struct PexpectResult {
    pub wall_s: f64,
    pub cpu_s: f64,
    #[serde(default)]
    pub marks: std::collections::HashMap<String, u64>,
}

impl Pexpect {
    pub fn start(pty: &str, marks: bool, cfg: PexpectConfig) -> anyhow::Result<Pexpect> {
        let mut child = Command::new("python3")
            .args(["-c", SCRIPT])
            .arg(pty)
            .arg(if marks { "marks" } else { "stream" })
            .arg(cfg.window.to_string())
            .arg(cfg.maxread.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting python3")?;
        let mut out = BufReader::new(child.stdout.take().context("python stdout")?);
        let mut line = String::new();
        out.read_line(&mut line)?;
        anyhow::ensure!(line.trim() == "open", "pexpect script said {line:?}");
        Ok(Pexpect { child, out })
    }

    pub fn result(mut self) -> anyhow::Result<PexpectResult> {
        let mut line = String::new();
        self.out.read_line(&mut line)?;
        let _ = self.child.wait();
        serde_json::from_str(&line).with_context(|| format!("pexpect script said {line:?}"))
    }
}

impl Drop for Pexpect {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Follows `pty` with rexpect's reader until the awaited pattern, with the death patterns
/// active; blocking, as rexpect is.
#[cfg(feature = "bench-rexpect")]
pub fn rexpect_follow(file: std::fs::File) -> anyhow::Result<()> {
    use super::patterns::{AWAITED, DEATH};
    use rexpect::reader::{NBReader, Options, ReadUntil, Regex};
    let mut r = NBReader::new(file, Options::new().timeout_ms(Some(3_600_000)));
    let mut any = vec![ReadUntil::Regex(Regex::new(AWAITED)?)];
    for (_, re) in DEATH {
        any.push(ReadUntil::Regex(Regex::new(re)?));
    }
    let needle = ReadUntil::Any(any);
    let (_, m) = r
        .read_until(&needle)
        .map_err(|e| anyhow::anyhow!("rexpect: {e}"))?;
    anyhow::ensure!(m.contains("hil-bench login"), "rexpect matched {m:?}");
    Ok(())
}

const LABGRID_SCRIPT: &str = include_str!("labgrid_bench.py");

/// The venv that holds labgrid `version` for the bench: `~/.cache/hil/bench-venv/labgrid-VERSION`.
pub fn labgrid_venv(version: &str) -> std::path::PathBuf {
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, Into::into);
    home.join(".cache/hil/bench-venv")
        .join(format!("labgrid-{version}"))
}

/// The venv's python, after making sure it imports labgrid `version` (created with
/// `python3 -m venv` and `pip install labgrid==VERSION` from PyPI if not). The error says
/// why labgrid cannot be measured (no registry, no venv module).
pub fn ensure_labgrid(version: &str) -> anyhow::Result<std::path::PathBuf> {
    let venv = labgrid_venv(version);
    let python = venv.join("bin/python");
    let installed = || {
        Command::new(&python)
            .args(["-c", "import labgrid; print(labgrid.__version__)"])
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if installed().is_some() {
        return Ok(python);
    }
    eprintln!(
        "hil bench: installing labgrid {version} with pip into {}",
        venv.display()
    );
    if !python.exists() {
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("running python3 -m venv (is python3 installed?)")?;
        anyhow::ensure!(
            st.success(),
            "python3 -m venv {} failed ({st})",
            venv.display()
        );
    }
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg(format!("labgrid=={version}"))
        .output()
        .context("running pip in the bench venv")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        anyhow::bail!(
            "pip install labgrid=={version} failed ({}): {last}",
            out.status
        );
    }
    installed().context("labgrid still not importable after pip install")?;
    Ok(python)
}

/// Where labgrid's SerialDriver reads from.
pub enum LabgridPort<'a> {
    /// A local serial device (`RawSerialPort`).
    Pty(&'a str),
    /// `NetworkSerialPort` on 127.0.0.1: the port and labgrid's protocol name
    /// (`rfc2217` or `raw`).
    Net(u16, &'a str),
}

/// A labgrid follower (its `SerialDriver` and `expect`) in a child Python, active (port
/// open, RFC 2217 negotiated) when this returns.
pub struct Labgrid {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    pub version: String,
}

#[derive(serde::Deserialize)]
pub struct LabgridResult {
    pub wall_s: f64,
    pub cpu_s: f64,
    pub bytes: u64,
}

impl Labgrid {
    pub fn start(python: &std::path::Path, port: LabgridPort) -> anyhow::Result<Labgrid> {
        let mut cmd = Command::new(python);
        cmd.args(["-c", LABGRID_SCRIPT]);
        match port {
            LabgridPort::Pty(p) => cmd.args(["pty", p]),
            LabgridPort::Net(port, proto) => {
                cmd.args(["net", "127.0.0.1", &port.to_string(), proto])
            }
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the bench venv's python")?;
        let mut out = BufReader::new(child.stdout.take().context("python stdout")?);
        let mut line = String::new();
        out.read_line(&mut line)?;
        let Some(version) = line.trim().strip_prefix("open ") else {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("labgrid script said {line:?}");
        };
        let version = version.to_string();
        Ok(Labgrid {
            child,
            out,
            version,
        })
    }

    /// Starts its clock.
    pub fn go(&mut self) -> anyhow::Result<()> {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().context("python stdin")?;
        stdin.write_all(b"go\n")?;
        stdin.flush()?;
        Ok(())
    }

    pub fn result(mut self) -> anyhow::Result<LabgridResult> {
        let mut line = String::new();
        self.out.read_line(&mut line)?;
        drop(self.child.stdin.take());
        let _ = self.child.wait();
        serde_json::from_str(&line).with_context(|| format!("labgrid script said {line:?}"))
    }
}

impl Drop for Labgrid {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
