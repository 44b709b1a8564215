//! A headless Chromium driven over the DevTools protocol, for `hil bench` (how fast a
//! report opens) and for the tests that read hil's pages the way a person does: what the
//! page logged as errors, what a click on a link scrolls to, a screenshot.
//!
//! The protocol runs over `--remote-debugging-pipe`: Chromium reads commands from its fd 3
//! and writes answers and events to its fd 4, each message a JSON object ended by a NUL
//! byte. A pipe rather than `--remote-debugging-port`: no port to choose, nothing listens
//! on the machine, and the browser is ours alone. Only Debian's `chromium` is used (never a
//! browser downloaded for the purpose), always headless with networking off where a flag
//! allows, with a profile directory of its own that is removed afterwards.
//!
//! Synchronous on purpose: the callers are a test and a bench step that do one thing at a
//! time; a reader thread turns the pipe into a channel so every wait has a deadline.

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where Debian's package puts it.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The flags every run gets: headless, no sandbox (tests run as root in CI), no GPU, and
/// none of the browser's own network traffic (updates, sync, QUIC probing, first-run pages).
pub const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Something the page reported as an error: an uncaught exception, `console.error`, or a
/// browser log entry at level error (a resource that failed to load, a CSP refusal).
#[derive(Debug, Clone)]
pub struct PageError {
    pub source: &'static str,
    pub text: String,
}

/// One headless Chromium with one page (tab) attached.
pub struct Browser {
    child: Child,
    to: std::fs::File,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    events: Vec<Value>,
    errors: Vec<PageError>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `chromium` (see [`CHROMIUM`]) with a viewport of `width` × `height` and
    /// attaches to a blank page.
    pub fn start(chromium: &Path, width: u32, height: u32) -> anyhow::Result<Browser> {
        let profile = tempfile::Builder::new()
            .prefix("hil-chromium-")
            .tempdir()
            .context("a profile directory for chromium")?;
        let (cmd_read, cmd_write) = pipe()?;
        let (ev_read, ev_write) = pipe()?;
        let (cr, ew) = (cmd_read.as_raw_fd(), ev_write.as_raw_fd());
        let mut c = Command::new(chromium);
        c.args(FLAGS)
            .arg("--remote-debugging-pipe")
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2, close) between fork and exec.
        // The two ends are first copied above fd 10 so that dup2 onto 3 and 4 never
        // overwrites one with the other, and so the copies onto 3 and 4 lose close-on-exec.
        unsafe {
            c.pre_exec(move || {
                let a = libc::fcntl(cr, libc::F_DUPFD, 10);
                let b = libc::fcntl(ew, libc::F_DUPFD, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(a);
                libc::close(b);
                Ok(())
            });
        }
        let child = c
            .spawn()
            .with_context(|| format!("starting {}", chromium.display()))?;
        // The child's ends are closed here so that its exit ends our reads.
        drop(cmd_read);
        drop(ev_write);
        let (tx, rx) = mpsc::channel();
        let mut reader = std::fs::File::from(ev_read);
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 64 * 1024];
            loop {
                let n = match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|b| *b == 0) {
                    let msg: Vec<u8> = buf.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg[..msg.len() - 1]) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut b = Browser {
            child,
            to: std::fs::File::from(cmd_write),
            from: rx,
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
            errors: Vec::new(),
            _profile: profile,
        };
        let t = b.call_browser("Target.createTarget", json!({"url": "about:blank"}))?;
        let target = t["targetId"]
            .as_str()
            .ok_or_else(|| anyhow!("Target.createTarget answered without a targetId: {t}"))?
            .to_string();
        let s = b.call_browser(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        )?;
        b.session = s["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("Target.attachToTarget answered without a sessionId: {s}"))?
            .to_string();
        for m in ["Page.enable", "Runtime.enable", "Log.enable"] {
            b.call(m, json!({}))?;
        }
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )?;
        Ok(b)
    }

    /// Loads `url` and waits for its load event; the time from the request to that event.
    pub fn open(&mut self, url: &str, within: Duration) -> anyhow::Result<Duration> {
        self.events.clear();
        let t = Instant::now();
        let r = self.call("Page.navigate", json!({"url": url}))?;
        if let Some(e) = r["errorText"].as_str() {
            bail!("{url}: {e}");
        }
        self.wait_event("Page.loadEventFired", within)
            .with_context(|| format!("{url}: no load event"))?;
        Ok(t.elapsed())
    }

    /// Evaluates a JavaScript expression in the page (promises awaited); its value as JSON.
    pub fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            bail!("{expression}: {}", exception_text(e));
        }
        Ok(r["result"]["value"].clone())
    }

    /// A PNG of the viewport.
    pub fn screenshot(&mut self, to: &Path) -> anyhow::Result<()> {
        use base64::Engine;
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}))?;
        let data = r["data"]
            .as_str()
            .ok_or_else(|| anyhow!("Page.captureScreenshot answered without data"))?;
        let png = base64::engine::general_purpose::STANDARD.decode(data)?;
        std::fs::write(to, png).with_context(|| format!("writing {}", to.display()))
    }

    /// What the page reported as errors since the browser started. Waits `settle` first
    /// for late ones (an error thrown by a timer, a failed image).
    pub fn errors(&mut self, settle: Duration) -> Vec<PageError> {
        let until = Instant::now() + settle;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.from.recv_timeout(left) {
                Ok(v) => self.take(v),
                Err(_) => break,
            }
        }
        self.errors.clone()
    }

    /// Sends a command to the attached page and waits for its answer.
    pub fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let session = self.session.clone();
        self.send(method, params, Some(&session))
    }

    fn call_browser(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.send(method, params, None)
    }

    fn send(
        &mut self,
        method: &str,
        params: Value,
        session: Option<&str>,
    ) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg)?;
        bytes.push(0);
        self.to
            .write_all(&bytes)
            .with_context(|| format!("{method}: chromium's command pipe"))?;
        let v = self
            .next_where(Duration::from_secs(60), |v| v["id"].as_u64() == Some(id))
            .with_context(|| format!("{method}: no answer from chromium"))?;
        if let Some(e) = v.get("error") {
            bail!("{method}: {e}");
        }
        Ok(v["result"].clone())
    }

    fn wait_event(&mut self, name: &str, within: Duration) -> anyhow::Result<Value> {
        if let Some(i) = self.events.iter().position(|e| e["method"] == name) {
            return Ok(self.events.remove(i));
        }
        self.next_where(within, |v| v["method"] == name)
            .with_context(|| format!("{name} not within {within:?}"))
    }

    /// The next message from chromium that `wanted` picks, within `within`; the others
    /// are kept ([`Self::take`]) on the way.
    fn next_where(
        &mut self,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let until = Instant::now() + within;
        loop {
            let left = until
                .checked_duration_since(Instant::now())
                .ok_or_else(|| anyhow!("timed out"))?;
            let v = self
                .from
                .recv_timeout(left)
                .map_err(|_| anyhow!("chromium went away or did not answer"))?;
            if wanted(&v) {
                return Ok(v);
            }
            self.take(v);
        }
    }

    /// Keeps an event: errors are collected, the rest kept for [`Self::wait_event`].
    fn take(&mut self, v: Value) {
        let p = &v["params"];
        match v["method"].as_str() {
            Some("Runtime.exceptionThrown") => self.errors.push(PageError {
                source: "exception",
                text: exception_text(&p["exceptionDetails"]),
            }),
            Some("Runtime.consoleAPICalled") if p["type"] == "error" => {
                let text = p["args"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| x["value"].as_str().map_or(x.to_string(), str::to_string))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                self.errors.push(PageError {
                    source: "console.error",
                    text,
                })
            }
            Some("Log.entryAdded") if p["entry"]["level"] == "error" => {
                self.errors.push(PageError {
                    source: "log",
                    text: format!(
                        "{} {}",
                        p["entry"]["text"].as_str().unwrap_or(""),
                        p["entry"]["url"].as_str().unwrap_or("")
                    ),
                })
            }
            _ => self.events.push(v),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call_browser("Browser.close", json!({}));
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Our own child, by its pid only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn exception_text(e: &Value) -> String {
    let desc = e["exception"]["description"].as_str();
    let text = e["text"].as_str().unwrap_or("exception");
    match desc {
        Some(d) => format!("{text}: {d}"),
        None => text.to_string(),
    }
}

fn pipe() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills both fds on success; each is owned exactly once below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe for chromium");
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The browser when Debian's package is installed.
pub fn installed() -> Option<PathBuf> {
    let p = PathBuf::from(CHROMIUM);
    p.exists().then_some(p)
}
