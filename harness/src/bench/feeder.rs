//! The writer side of every console benchmark, in a child process (`hil bench-feed`) so its
//! CPU is not counted against the reader. It makes the ptys, plays kernel-log text into
//! them (as fast as the pty takes it, or paced to a baud rate), and reports what it wrote.
//!
//! Protocol on its stdio: it prints `pty PATH` per console and `ready`; on a line from
//! stdin it starts; when done it prints one JSON line ([`FeedReport`]) and holds the ptys
//! open until stdin closes, so no reader sees a hang-up before it has read everything.

use super::patterns::{END_TEXT, MARK_PREFIX};
use super::{sys, textgen};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const CORPUS_LEN: usize = 16 << 20;

#[derive(Debug, Clone, clap::Args)]
pub struct FeedArgs {
    #[arg(long, default_value_t = 1)]
    pub consoles: usize,
    /// Bytes of log text per console before the end text.
    #[arg(long)]
    pub bytes: u64,
    /// Bytes per second per console; 0 = as fast as the pty takes them.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Latency mode: this many marks, each after `mark_gap` bytes of text.
    #[arg(long, default_value_t = 0)]
    pub marks: usize,
    #[arg(long, default_value_t = 2048)]
    pub mark_gap: usize,
    #[arg(long, default_value_t = 1000)]
    pub mark_interval_us: u64,
    /// Flat-out mode only: one write() per line of text, as a console prints, instead of
    /// 64 KiB writes.
    #[arg(long)]
    pub per_line: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FeedReport {
    /// Bytes written per console, end text included.
    pub written: Vec<u64>,
    pub elapsed_s: f64,
    /// CLOCK_MONOTONIC (ns) just before each mark was written.
    pub mark_ns: Vec<u64>,
}

/// The child's main: see the module doc.
pub fn feed_main(a: FeedArgs) -> anyhow::Result<()> {
    sys::raise_nofile(2 * a.consoles as u64 + 64)?;
    let mut ptys = Vec::with_capacity(a.consoles);
    let mut out = std::io::stdout().lock();
    for _ in 0..a.consoles {
        let (master, slave, path) = sys::open_pty()?;
        writeln!(out, "pty {path}")?;
        ptys.push((master, slave));
    }
    let corpus = textgen::corpus(a.seed, CORPUS_LEN);
    writeln!(out, "ready")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let start = Instant::now();
    let masters: Vec<&OwnedFd> = ptys.iter().map(|(m, _)| m).collect();
    let mut report = if a.marks > 0 {
        marks(masters[0], &corpus, &a)?
    } else if a.rate == 0 && a.consoles == 1 {
        let mut src = Cyclic::new(&corpus, 0, a.bytes);
        if a.per_line {
            write_lines(masters[0], &mut src)?;
        } else {
            write_all(masters[0], &mut src)?;
        }
        write_blocking(masters[0], END_TEXT.as_bytes())?;
        FeedReport {
            written: vec![a.bytes + END_TEXT.len() as u64],
            elapsed_s: 0.0,
            mark_ns: vec![],
        }
    } else {
        paced(&masters, &corpus, &a)?
    };
    report.elapsed_s = start.elapsed().as_secs_f64();
    writeln!(out, "{}", serde_json::to_string(&report)?)?;
    out.flush()?;
    // Hold the ptys until the reader is done with them.
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut rest);
    Ok(())
}

/// `len` bytes cut from the corpus from `offset` on, wrapping around.
struct Cyclic<'a> {
    corpus: &'a [u8],
    pos: usize,
    left: u64,
}

impl<'a> Cyclic<'a> {
    fn new(corpus: &'a [u8], offset: usize, len: u64) -> Cyclic<'a> {
        Cyclic {
            corpus,
            pos: offset % corpus.len(),
            left: len,
        }
    }

    /// The next at most `max` bytes (empty when done).
    fn peek(&self, max: usize) -> &'a [u8] {
        let n = (self.corpus.len() - self.pos)
            .min(max)
            .min(self.left as usize);
        &self.corpus[self.pos..self.pos + n]
    }

    fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n) % self.corpus.len();
        self.left -= n as u64;
    }
}

fn write_all(fd: &OwnedFd, src: &mut Cyclic) -> std::io::Result<()> {
    loop {
        let chunk = src.peek(64 * 1024);
        if chunk.is_empty() {
            return Ok(());
        }
        let n = write_fd(fd, chunk)?;
        src.advance(n);
    }
}

/// Like [`write_all`], but each line (up to and including its `\n`) is its own write().
fn write_lines(fd: &OwnedFd, src: &mut Cyclic) -> std::io::Result<()> {
    loop {
        let rest = src.peek(64 * 1024);
        if rest.is_empty() {
            return Ok(());
        }
        let line = memchr::memchr(b'\n', rest).map_or(rest, |i| &rest[..=i]);
        write_blocking(fd, line)?;
        src.advance(line.len());
    }
}

fn write_blocking(fd: &OwnedFd, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let n = write_fd(fd, data)?;
        data = &data[n..];
    }
    Ok(())
}

fn write_fd(fd: &OwnedFd, data: &[u8]) -> std::io::Result<usize> {
    // SAFETY: data is a valid buffer of data.len() bytes; fd is open.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn marks(fd: &OwnedFd, corpus: &[u8], a: &FeedArgs) -> anyhow::Result<FeedReport> {
    let mut src = Cyclic::new(corpus, 0, u64::MAX);
    let mut mark_ns = Vec::with_capacity(a.marks);
    let mut written = 0u64;
    for k in 0..a.marks {
        let mut text = Cyclic::new(corpus, src.pos, a.mark_gap as u64);
        write_all(fd, &mut text)?;
        src.advance(a.mark_gap);
        let mark = format!("\r\n{MARK_PREFIX}{k}\r\n");
        mark_ns.push(sys::monotonic_ns());
        write_blocking(fd, mark.as_bytes())?;
        written += (a.mark_gap + mark.len()) as u64;
        std::thread::sleep(Duration::from_micros(a.mark_interval_us));
    }
    write_blocking(fd, END_TEXT.as_bytes())?;
    Ok(FeedReport {
        written: vec![written + END_TEXT.len() as u64],
        elapsed_s: 0.0,
        mark_ns,
    })
}

/// Every console at `rate` bytes/s (or flat out), written in 10 ms ticks without blocking:
/// a console whose reader lags simply gets its bytes later, none are dropped here.
fn paced(masters: &[&OwnedFd], corpus: &[u8], a: &FeedArgs) -> anyhow::Result<FeedReport> {
    for m in masters {
        set_nonblocking(m)?;
    }
    let mut rng = textgen::Rng::new(a.seed);
    let mut srcs: Vec<Cyclic> = masters
        .iter()
        .map(|_| Cyclic::new(corpus, rng.below(corpus.len() as u64) as usize, a.bytes))
        .collect();
    let mut end_left: Vec<&[u8]> = vec![END_TEXT.as_bytes(); masters.len()];
    let mut written = vec![0u64; masters.len()];
    let start = Instant::now();
    let tick = Duration::from_millis(10);
    loop {
        let allowed = if a.rate == 0 {
            u64::MAX
        } else {
            (a.rate as f64 * start.elapsed().as_secs_f64()) as u64
        };
        let mut all_done = true;
        for (i, m) in masters.iter().enumerate() {
            loop {
                let budget = allowed.saturating_sub(written[i]).min(64 * 1024) as usize;
                let chunk = match srcs[i].peek(budget) {
                    c if !c.is_empty() => c,
                    _ if srcs[i].left == 0 && !end_left[i].is_empty() => end_left[i],
                    _ => break,
                };
                match write_fd(m, chunk) {
                    Ok(n) => {
                        written[i] += n as u64;
                        if srcs[i].left > 0 {
                            srcs[i].advance(n);
                        } else {
                            end_left[i] = &end_left[i][n..];
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                }
            }
            all_done &= end_left[i].is_empty();
        }
        if all_done {
            break;
        }
        std::thread::sleep(tick);
    }
    Ok(FeedReport {
        written,
        elapsed_s: 0.0,
        mark_ns: vec![],
    })
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: plain fcntl calls on a valid fd.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The parent's handle on a running feeder.
pub struct Feeder {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub paths: Vec<String>,
}

impl Feeder {
    pub fn spawn(a: &FeedArgs) -> anyhow::Result<Feeder> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("bench-feed")
            .args(["--consoles", &a.consoles.to_string()])
            .args(["--bytes", &a.bytes.to_string()])
            .args(["--rate", &a.rate.to_string()])
            .args(["--seed", &a.seed.to_string()])
            .args(["--marks", &a.marks.to_string()])
            .args(["--mark-gap", &a.mark_gap.to_string()])
            .args(["--mark-interval-us", &a.mark_interval_us.to_string()])
            .args(a.per_line.then_some("--per-line"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut f = Feeder {
            child,
            stdin,
            stdout,
            paths: Vec::new(),
        };
        loop {
            let line = f.line()?;
            if let Some(p) = line.strip_prefix("pty ") {
                f.paths.push(p.to_string());
            } else if line == "ready" {
                break;
            } else {
                anyhow::bail!("bench feeder said {line:?}");
            }
        }
        Ok(f)
    }

    pub fn go(&mut self) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().expect("stdin held until drop");
        stdin.write_all(b"go\n")?;
        stdin.flush()?;
        Ok(())
    }

    /// Waits for the feeder to finish writing and returns what it wrote.
    pub fn report(&mut self) -> anyhow::Result<FeedReport> {
        let line = self.line()?;
        Ok(serde_json::from_str(&line)?)
    }

    fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            anyhow::bail!("bench feeder exited early");
        }
        Ok(line.trim_end().to_string())
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stdin.take();
        // It exits on stdin EOF; kill only if it does not within a moment.
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
