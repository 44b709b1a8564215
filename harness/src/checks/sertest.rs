//! The `sertest` check: a serial loopback between the board ("host" side, master) and the
//! guest (slave), as in the R-Car seed scenario. The slave starts in the background on the
//! guest's console shell; the master runs on the board over SSH with a byte count, so it
//! stops by itself (no signal through a console). The master's output (ANSI stripped) gives
//! bytes, bps and errors; the slave's log is collected afterwards.
//!
//! Output lines of sertest (shared/DOMAIN.md): `Detected N slaves in the chain`,
//! `TX: N bytes (N bps), RX: N bytes (N bps)`; errors `Data mismatch` (with a hex diff),
//! `Timeout, aborting`, `Read error`, `Write error`, `Short write`, `Failed to open`,
//! `Unknown serial speed N`. The slave's `Timeout, aborting` after the master stopped is
//! expected and ignored.
//!
//! `corrupt_every = N` is a fault-injection hook: the slave flips a byte in every Nth
//! message (the fixture tool's `--corrupt N`), so the check must fail.

use super::{Check, CheckCtx, CheckFuture, CheckOutput};
use crate::boot::State;
use crate::config::load::from_table;
use crate::config::{ConfigError, Via};
use crate::outcome::Outcome;
use regex::Regex;
use serde::Deserialize;
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::time::Instant;

pub const SLAVE_LOG: &str = "/tmp/sertest-slave.log";
pub const SLAVE_PID: &str = "/tmp/sertest-slave.pid";
/// Speeds the tool (and termios) knows.
const SPEEDS: &[u32] = &[
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000, 921600,
    1000000, 1500000, 2000000, 3000000, 4000000,
];
/// The guest-side commands (start, collect) are short.
const SHELL_STEP: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    guest_port: Option<String>,
    #[serde(default = "default_board_device")]
    board_device: String,
    #[serde(default = "default_bytes")]
    bytes: u64,
    #[serde(default = "default_speed")]
    speed: u32,
    #[serde(default = "default_seed")]
    seed: u32,
    #[serde(default = "default_maxlen")]
    maxlen: u32,
    #[serde(default = "default_chain")]
    chain: bool,
    corrupt_every: Option<u64>,
    /// How long the link may stay silent before sertest gives up (its `-w`); sertest's own
    /// defaults (10 s master, 5 s slave) when absent.
    idle_timeout_s: Option<u64>,
}

fn default_board_device() -> String {
    "0000:00:05.0".into()
}
fn default_bytes() -> u64 {
    65536
}
fn default_speed() -> u32 {
    115200
}
fn default_seed() -> u32 {
    42
}
fn default_maxlen() -> u32 {
    256
}
fn default_chain() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq)]
pub struct SertestCheck {
    /// `/dev/ttyS0` style; `None`: the guest's ttyS* whose device is on PCI.
    pub guest_port: Option<String>,
    /// PCI address of the board-side port; its `/dev/ttyS*` comes from sysfs.
    pub board_device: String,
    pub bytes: u64,
    pub speed: u32,
    pub seed: u32,
    pub maxlen: u32,
    pub chain: bool,
    /// Fault injection: the slave corrupts every Nth message.
    pub corrupt_every: Option<u64>,
    pub idle_timeout_s: Option<u64>,
}

/// What one sertest run printed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub slaves: Option<u32>,
    /// The last statistics line.
    pub stats: Option<Stats>,
    /// Error lines, in order, with what followed a `Data mismatch` (the hex diff).
    pub errors: Vec<ErrorLine>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub tx_bytes: u64,
    pub tx_bps: u64,
    pub rx_bytes: u64,
    pub rx_bps: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    DataMismatch,
    Timeout,
    ReadError,
    WriteError,
    ShortWrite,
    FailedToOpen,
    UnknownSpeed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ErrorLine {
    pub kind: ErrorKind,
    pub line: String,
    /// Diff lines after a `Data mismatch`.
    pub detail: Vec<String>,
}

static DETECTED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Detected (\d+) slaves? in the chain").expect("static regex"));
static STATS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"TX: (\d+) bytes \((\d+) bps\), RX: (\d+) bytes \((\d+) bps\)")
        .expect("static regex")
});
/// linux-serial-test: `/dev/ttyS4: count for this session: rx=57344, tx=65520, rx err=0`.
static LST_COUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\S+): count for this session: rx=(\d+), tx=(\d+), rx err=(\d+)")
        .expect("static regex")
});

/// `Detected N slaves in the chain` → N.
pub fn parse_detected(line: &str) -> Option<u32> {
    DETECTED.captures(line)?[1].parse().ok()
}

/// `TX: N bytes (N bps), RX: N bytes (N bps)`.
pub fn parse_stats(line: &str) -> Option<Stats> {
    let c = STATS.captures(line)?;
    Some(Stats {
        tx_bytes: c[1].parse().ok()?,
        tx_bps: c[2].parse().ok()?,
        rx_bytes: c[3].parse().ok()?,
        rx_bps: c[4].parse().ok()?,
    })
}

/// An error line's kind.
pub fn parse_error(line: &str) -> Option<ErrorKind> {
    let l = line.trim();
    [
        ("Data mismatch", ErrorKind::DataMismatch),
        ("Timeout, aborting", ErrorKind::Timeout),
        ("Read error", ErrorKind::ReadError),
        ("Write error", ErrorKind::WriteError),
        ("Short write", ErrorKind::ShortWrite),
        ("Failed to open", ErrorKind::FailedToOpen),
        ("Unknown serial speed", ErrorKind::UnknownSpeed),
    ]
    .into_iter()
    .find(|(p, _)| l.starts_with(p))
    .map(|(_, k)| k)
}

/// linux-serial-test's session count: (port, rx, tx, rx errors). That tool is an
/// alternative peer (its exit status 0 means tx == rx and no errors).
pub fn parse_lst_count(line: &str) -> Option<(String, u64, u64, u64)> {
    let c = LST_COUNT.captures(line.trim())?;
    Some((
        c[1].to_string(),
        c[2].parse().ok()?,
        c[3].parse().ok()?,
        c[4].parse().ok()?,
    ))
}

/// Parses a whole run's output; ANSI sequences are stripped first.
pub fn parse(raw: &str) -> Report {
    let text = crate::text::clean(raw.as_bytes());
    let mut r = Report::default();
    let mut in_diff = false;
    for line in text.lines() {
        if let Some(n) = parse_detected(line) {
            r.slaves = Some(n);
            in_diff = false;
        } else if let Some(s) = parse_stats(line) {
            r.stats = Some(s);
            in_diff = false;
        } else if let Some(kind) = parse_error(line) {
            in_diff = kind == ErrorKind::DataMismatch;
            r.errors.push(ErrorLine {
                kind,
                line: line.trim().to_string(),
                detail: Vec::new(),
            });
        } else if in_diff && line.starts_with(char::is_whitespace) && !line.trim().is_empty() {
            if let Some(e) = r.errors.last_mut() {
                if e.detail.len() < 8 {
                    e.detail.push(line.trim().to_string());
                }
            }
        } else {
            in_diff = false;
        }
    }
    r
}

fn valid_port(p: &str) -> bool {
    let name = p.strip_prefix("/dev/").unwrap_or(p);
    !name.is_empty()
        && name.len() <= 32
        && name.starts_with("tty")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_pci(a: &str) -> bool {
    let b = a.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
    b.len() == 12
        && hex(0..4)
        && b[4] == b':'
        && hex(5..7)
        && b[7] == b':'
        && hex(8..10)
        && b[10] == b'.'
        && (b'0'..=b'7').contains(&b[11])
}

impl Check for SertestCheck {
    const KIND: &'static str = "sertest";

    fn from_params(path: &Path, key: &str, params: toml::Table) -> Result<Self, ConfigError> {
        let p: Params = from_table(path, key, params)?;
        let err = |field: &str, msg: String| ConfigError::new(path, format!("{key}.{field}"), msg);
        if let Some(g) = &p.guest_port {
            if !valid_port(g) {
                return Err(err(
                    "guest_port",
                    format!("is {g:?}; expected a tty device such as \"/dev/ttyS0\""),
                ));
            }
        }
        if !valid_pci(&p.board_device) {
            return Err(err(
                "board_device",
                format!(
                    "is {:?}; expected a PCI address such as \"0000:00:05.0\"",
                    p.board_device
                ),
            ));
        }
        if p.bytes == 0 {
            return Err(err("bytes", "is 0; expected at least 1 byte".into()));
        }
        if !SPEEDS.contains(&p.speed) {
            return Err(err(
                "speed",
                format!(
                    "is {}; expected one of {}",
                    p.speed,
                    SPEEDS
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if !(1..=4096).contains(&p.maxlen) {
            return Err(err(
                "maxlen",
                format!("is {}; expected 1 to 4096 bytes", p.maxlen),
            ));
        }
        if let Some(w) = p.idle_timeout_s {
            if !(1..=3600).contains(&w) {
                return Err(err(
                    "idle_timeout_s",
                    format!("is {w}; expected 1 to 3600 seconds"),
                ));
            }
        }
        if p.corrupt_every == Some(0) {
            return Err(err(
                "corrupt_every",
                "is 0; expected a message count of at least 1".into(),
            ));
        }
        Ok(SertestCheck {
            guest_port: p.guest_port.map(|g| {
                if g.starts_with("/dev/") {
                    g
                } else {
                    format!("/dev/{g}")
                }
            }),
            board_device: p.board_device,
            bytes: p.bytes,
            speed: p.speed,
            seed: p.seed,
            maxlen: p.maxlen,
            chain: p.chain,
            corrupt_every: p.corrupt_every,
            idle_timeout_s: p.idle_timeout_s,
        })
    }

    /// The slave runs in the guest, the master on the board over SSH.
    fn needs(&self, _via: Via) -> State {
        State::Guest
    }

    fn run<'a>(&'a self, ctx: &'a mut CheckCtx<'_>) -> CheckFuture<'a> {
        Box::pin(async move {
            let timeout = ctx.timeout;
            let s = &mut *ctx.session;
            let started = Instant::now();
            let deadline = crate::config::limits::deadline_from(started, timeout);
            // The board side.
            let out = s
                .ssh()?
                .exec(&self.board_port_command(), SHELL_STEP)
                .await?;
            let board_port = match judge_board_port(&self.board_device, &out.output) {
                Ok(p) => p,
                Err(verdict) => return Ok(verdict),
            };
            // The guest side.
            let shell = s.guest_shell()?;
            let guest_port = match &self.guest_port {
                Some(p) => p.clone(),
                None => {
                    let out = shell.run(GUEST_PORT_COMMAND, SHELL_STEP).await?;
                    match out.output.split_whitespace().find(|w| valid_port(w)) {
                        Some(p) => format!("/dev/{p}"),
                        None => {
                            return Ok(blocked(format!(
                                "no ttyS* on PCI in the guest: the 16550 at {} was not passed \
                                 through or the guest kernel lacks SERIAL_8250_PCI (found: {:?})",
                                "the [[device]] serial",
                                out.output.trim()
                            )))
                        }
                    }
                }
            };
            let secs = super::time_left(deadline, timeout)?.as_secs().max(2);
            let out = shell
                .run(&self.slave_command(&guest_port, secs), SHELL_STEP)
                .await?;
            let slave_start = parse(&out.output);
            if let Some(e) = slave_start.errors.first() {
                let msg = format!("slave on the guest's {guest_port}: {}", e.line);
                return Ok(if e.kind == ErrorKind::FailedToOpen {
                    blocked(msg)
                } else {
                    fail(msg, serde_json::Map::new())
                });
            }
            if out.output.contains("not found") {
                return Ok(blocked(format!(
                    "sertest is not installed in the guest: {}",
                    out.output.trim()
                )));
            }

            let master_secs = super::time_left(deadline, timeout)?
                .as_secs()
                .saturating_sub(15)
                .max(2);
            let t0 = Instant::now();
            let master = s
                .ssh()?
                .exec(
                    &self.master_command(&board_port, master_secs),
                    super::time_left(deadline, timeout)?,
                )
                .await;
            let duration = t0.elapsed();
            // Collect the slave whatever the master did: it must not outlive the check.
            let slave = s.guest_shell()?.run(&collect_command(), SHELL_STEP).await?;
            let master = master?;
            let mut v = self.judge(
                &parse(&master.output),
                master.status,
                &master.output,
                &parse(&slave.output),
                duration,
            );
            v.figures.insert("board_port".into(), board_port.into());
            v.figures.insert("guest_port".into(), guest_port.into());
            Ok(v)
        })
    }
}

impl SertestCheck {
    fn common_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if self.chain {
            a.push("--chain".to_string());
        }
        for (o, v) in [
            ("-i", self.seed.to_string()),
            ("-l", self.maxlen.to_string()),
            ("-s", self.speed.to_string()),
            ("-n", self.bytes.to_string()),
        ] {
            a.push(o.into());
            a.push(v);
        }
        if let Some(w) = self.idle_timeout_s {
            a.push("-w".into());
            a.push(w.to_string());
        }
        a
    }

    /// The slave, in the guest's background; `secs` bounds its life.
    pub fn slave_command(&self, port: &str, secs: u64) -> String {
        let mut a = vec!["sertest".to_string(), "--slave".into()];
        a.extend(self.common_args());
        a.push("-t".into());
        a.push(secs.to_string());
        if let Some(n) = self.corrupt_every {
            a.push("--corrupt".into());
            a.push(n.to_string());
        }
        a.push(port.to_string());
        format!(
            "rm -f {SLAVE_LOG}; {} > {SLAVE_LOG} 2>&1 & echo $! > {SLAVE_PID}; sleep 1; cat {SLAVE_LOG}",
            crate::shell::join(a)
        )
    }

    /// The master on the board; it stops after `bytes` (or `secs`).
    pub fn master_command(&self, port: &str, secs: u64) -> String {
        let mut a = vec!["sertest".to_string(), "--master".into()];
        a.extend(self.common_args());
        a.push("-t".into());
        a.push(secs.to_string());
        a.push(port.to_string());
        crate::shell::join(a)
    }

    /// Prints the tty name of the board-side port, or why there is none.
    pub fn board_port_command(&self) -> String {
        let d = crate::shell::quote(&format!("/sys/bus/pci/devices/{}", self.board_device))
            .into_owned();
        format!(
            "d={d}; if [ ! -e \"$d\" ]; then echo no-device; elif [ -d \"$d/tty\" ]; then ls \"$d/tty\"; \
             else echo \"no-tty driver=$(basename \"$(readlink \"$d/driver\")\" 2>/dev/null)\"; fi"
        )
    }

    /// The verdict on the master's report (and the slave's).
    pub fn judge(
        &self,
        m: &Report,
        status: i32,
        output: &str,
        slave: &Report,
        duration: Duration,
    ) -> CheckOutput {
        let mut figures = serde_json::Map::new();
        if let Some(st) = m.stats {
            figures.insert("tx_bytes".into(), st.tx_bytes.into());
            figures.insert("rx_bytes".into(), st.rx_bytes.into());
            figures.insert("tx_bps".into(), st.tx_bps.into());
            figures.insert("rx_bps".into(), st.rx_bps.into());
        }
        figures.insert("errors".into(), (m.errors.len() as u64).into());
        figures.insert(
            "duration_s".into(),
            ((duration.as_secs_f64() * 100.0).round() / 100.0).into(),
        );
        if let Some(n) = m.slaves {
            figures.insert("slaves".into(), n.into());
        }
        if let Some(st) = slave.stats {
            figures.insert("slave_rx_bytes".into(), st.rx_bytes.into());
            figures.insert("slave_tx_bytes".into(), st.tx_bytes.into());
        }
        let outcome = |o: Outcome, message: String, figures| CheckOutput {
            outcome: Some(o),
            message,
            figures,
        };
        if let Some(e) = m.errors.iter().find(|e| e.kind == ErrorKind::FailedToOpen) {
            return outcome(
                Outcome::Blocked,
                format!("master on the board: {}", e.line),
                figures,
            );
        }
        if let Some(e) = m.errors.first() {
            let mut msg = format!("master: {}", e.line);
            if !e.detail.is_empty() {
                msg.push_str(&format!(" [{}]", e.detail.join("; ")));
            }
            if let Some(st) = m.stats {
                msg.push_str(&format!(
                    "; TX {} bytes, RX {} bytes",
                    st.tx_bytes, st.rx_bytes
                ));
            }
            return outcome(Outcome::Fail, msg, figures);
        }
        if status == 127 || output.contains("sertest: not found") {
            return outcome(
                Outcome::Blocked,
                format!("sertest is not installed on the board: {}", output.trim()),
                figures,
            );
        }
        let Some(st) = m.stats else {
            return outcome(
                Outcome::Fail,
                format!(
                    "no statistics from the master (exit status {status}); output: {:?}",
                    crate::text::excerpt(output)
                ),
                figures,
            );
        };
        // The slave's timeout after the master stopped is expected; other errors are not.
        if let Some(e) = slave.errors.iter().find(|e| e.kind != ErrorKind::Timeout) {
            return outcome(Outcome::Fail, format!("slave: {}", e.line), figures);
        }
        let mut problems = Vec::new();
        if status != 0 {
            problems.push(format!("master exit status {status}"));
        }
        if st.rx_bytes != st.tx_bytes {
            problems.push(format!(
                "received {} of {} bytes sent",
                st.rx_bytes, st.tx_bytes
            ));
        }
        if st.tx_bytes < self.bytes {
            problems.push(format!(
                "only {} bytes each way, expected at least {}",
                st.tx_bytes, self.bytes
            ));
        }
        let summary = format!(
            "{} bytes each way in {:.1} s (TX {} bps, RX {} bps), {} slave(s)",
            st.rx_bytes,
            duration.as_secs_f64(),
            st.tx_bps,
            st.rx_bps,
            m.slaves.unwrap_or(0)
        );
        if problems.is_empty() {
            outcome(Outcome::Pass, summary, figures)
        } else {
            outcome(
                Outcome::Fail,
                format!("{}; {summary}", problems.join("; ")),
                figures,
            )
        }
    }
}

/// Guest ttyS* ports whose device sits on PCI (the passed-through 16550), not the
/// 8250 driver's placeholder ports.
pub const GUEST_PORT_COMMAND: &str = "for t in /sys/class/tty/ttyS*; do case \"$(readlink -f $t/device)\" in */pci*) echo \"${t##*/}\";; esac; done";

/// Waits up to 5 s for the slave to end, then stops it (it prints its statistics on
/// SIGTERM) and prints its log.
pub fn collect_command() -> String {
    format!(
        "p=$(cat {SLAVE_PID} 2>/dev/null); i=0; while [ -n \"$p\" ] && [ $i -lt 10 ] && \
         kill -0 $p 2>/dev/null; do sleep 0.5; i=$((i+1)); done; \
         [ -n \"$p\" ] && kill $p 2>/dev/null && sleep 0.3; cat {SLAVE_LOG}"
    )
}

fn judge_board_port(device: &str, output: &str) -> Result<String, CheckOutput> {
    let o = output.trim();
    if o == "no-device" {
        return Err(blocked(format!(
            "board_device {device}: no PCI device at that address"
        )));
    }
    if let Some(rest) = o.strip_prefix("no-tty") {
        return Err(blocked(format!(
            "board_device {device}: no tty (not bound to the 8250 serial driver;{})",
            rest.trim_start_matches(' ').replace("driver=", " driver: ")
        )));
    }
    match o.split_whitespace().find(|w| valid_port(w)) {
        Some(p) => Ok(format!("/dev/{p}")),
        None => Err(blocked(format!(
            "board_device {device}: cannot tell its tty from sysfs: {o:?}"
        ))),
    }
}

fn blocked(message: String) -> CheckOutput {
    CheckOutput {
        outcome: Some(Outcome::Blocked),
        message,
        figures: serde_json::Map::new(),
    }
}

fn fail(message: String, figures: serde_json::Map<String, serde_json::Value>) -> CheckOutput {
    CheckOutput {
        outcome: Some(Outcome::Fail),
        message,
        figures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(extra: &[(&str, toml::Value)]) -> SertestCheck {
        let mut t = toml::Table::new();
        for (k, v) in extra {
            t.insert((*k).into(), v.clone());
        }
        SertestCheck::from_params(Path::new("s.toml"), "check[0]", t).unwrap()
    }

    fn error(extra: &[(&str, toml::Value)]) -> ConfigError {
        let mut t = toml::Table::new();
        for (k, v) in extra {
            t.insert((*k).into(), v.clone());
        }
        SertestCheck::from_params(Path::new("s.toml"), "check[3]", t).unwrap_err()
    }

    // Output of fixtures/sertest (built natively, two ptys bridged), colours as printed.
    const GOOD: &str = "\x1b[1;33mDetected 1 slaves in the chain\x1b[0m\r\n\
\x1b[1;32mTX: 65739 bytes (78750349 bps), RX: 65739 bytes (78750349 bps)\x1b[0m\r\n";
    const MISMATCH: &str = "\x1b[1;33mDetected 1 slaves in the chain\x1b[0m\n\
\x1b[1;31mData mismatch in message 50 (170 bytes) at offset 0: expected 1a, received bd\x1b[0m\n  \
0000 expected: 1a d4 07 e9 3b d1 50 c1 f7 b6 0f 8e c8 c2 50 cf\n  \
0000 received: \x1b[1;31mbd\x1b[0m d4 07 e9 3b d1 50 c1 f7 b6 0f 8e c8 c2 50 cf\n\
\x1b[1;32mTX: 8427 bytes (34594181 bps), RX: 6838 bytes (28071082 bps)\x1b[0m\n";
    const SLAVE_TIMEOUT: &str = "\x1b[1;31mTimeout, aborting (no data for 5 s)\x1b[0m\n\
\x1b[1;32mTX: 8427 bytes (12682 bps), RX: 8427 bytes (12682 bps)\x1b[0m\n";
    const OPEN_FAILED: &str =
        "\x1b[1;31mFailed to open /dev/ttyS1: No such file or directory\x1b[0m\n";
    const MASTER_TIMEOUT: &str = "\x1b[1;33mDetected 1 slaves in the chain\x1b[0m\n\
\x1b[1;31mTimeout, aborting: 4096 bytes sent, 2048 received (message 17)\x1b[0m\n\
\x1b[1;32mTX: 4096 bytes (9000 bps), RX: 2048 bytes (4500 bps)\x1b[0m\n";

    fn slave_ok() -> Report {
        parse(SLAVE_TIMEOUT)
    }

    #[test]
    fn parses_each_line_kind() {
        assert_eq!(parse_detected("Detected 1 slaves in the chain"), Some(1));
        assert_eq!(parse_detected("Detected 3 slaves in the chain"), Some(3));
        assert_eq!(parse_detected("TX: 1 bytes"), None);
        assert_eq!(
            parse_stats("TX: 65739 bytes (78750349 bps), RX: 65700 bytes (1 bps)"),
            Some(Stats {
                tx_bytes: 65739,
                tx_bps: 78750349,
                rx_bytes: 65700,
                rx_bps: 1
            })
        );
        assert_eq!(parse_stats("TX: x bytes"), None);
        for (l, k) in [
            ("Data mismatch in message 3", ErrorKind::DataMismatch),
            ("Timeout, aborting", ErrorKind::Timeout),
            ("Read error: Input/output error", ErrorKind::ReadError),
            ("Write error: Broken pipe", ErrorKind::WriteError),
            ("Short write on /dev/ttyS0", ErrorKind::ShortWrite),
            (
                "Failed to open /dev/ttyS9: No such file",
                ErrorKind::FailedToOpen,
            ),
            ("Unknown serial speed 123", ErrorKind::UnknownSpeed),
        ] {
            assert_eq!(parse_error(l), Some(k), "{l}");
        }
        assert_eq!(parse_error("Detected 1 slaves in the chain"), None);
    }

    #[test]
    fn parses_ansi_coloured_runs() {
        let r = parse(GOOD);
        assert_eq!(r.slaves, Some(1));
        assert_eq!(r.stats.unwrap().tx_bytes, 65739);
        assert!(r.errors.is_empty());

        let r = parse(MISMATCH);
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].kind, ErrorKind::DataMismatch);
        assert_eq!(r.errors[0].detail.len(), 2, "{:?}", r.errors[0]);
        assert!(r.errors[0].detail[1].starts_with("0000 received: bd d4"));
        assert_eq!(r.stats.unwrap().rx_bytes, 6838);
    }

    #[test]
    fn parses_linux_serial_test_counts() {
        let t = include_str!("../../tests/data/sertest/linux-serial-test-loopback.txt");
        let counts: Vec<_> = t.lines().filter_map(parse_lst_count).collect();
        assert_eq!(
            counts,
            vec![
                ("/dev/ttyS4".to_string(), 57344, 65520, 0),
                ("/dev/ttyUSB2".to_string(), 58032, 59904, 0)
            ]
        );
        // Its lines are not sertest's.
        let r = parse(t);
        assert_eq!((r.stats, r.slaves), (None, None));
    }

    #[test]
    fn judges_pass_and_failures() {
        let c = check(&[]);
        let d = Duration::from_secs(5);
        let o = c.judge(&parse(GOOD), 0, GOOD, &slave_ok(), d);
        assert_eq!(o.outcome, Some(Outcome::Pass), "{}", o.message);
        assert_eq!(o.figures["tx_bytes"], 65739);
        assert_eq!(o.figures["rx_bps"], 78750349);
        assert_eq!(o.figures["errors"], 0);
        assert_eq!(o.figures["slave_rx_bytes"], 8427);

        let o = c.judge(&parse(MISMATCH), 255, MISMATCH, &slave_ok(), d);
        assert_eq!(o.outcome, Some(Outcome::Fail));
        assert!(
            o.message.starts_with("master: Data mismatch in message 50"),
            "{}",
            o.message
        );
        assert!(o.message.contains("0000 received: bd"), "{}", o.message);
        assert_eq!(o.figures["errors"], 1);

        let o = c.judge(&parse(MASTER_TIMEOUT), 255, MASTER_TIMEOUT, &slave_ok(), d);
        assert_eq!(o.outcome, Some(Outcome::Fail));
        assert!(o.message.contains("Timeout, aborting"), "{}", o.message);

        let o = c.judge(&parse(OPEN_FAILED), 255, OPEN_FAILED, &Report::default(), d);
        assert_eq!(o.outcome, Some(Outcome::Blocked));
        assert!(o.message.contains("/dev/ttyS1"), "{}", o.message);

        let small = check(&[("bytes", 100000.into())]);
        let o = small.judge(&parse(GOOD), 0, GOOD, &slave_ok(), d);
        assert_eq!(o.outcome, Some(Outcome::Fail));
        assert!(
            o.message.contains("expected at least 100000"),
            "{}",
            o.message
        );

        let o = c.judge(&Report::default(), 1, "garbage", &slave_ok(), d);
        assert_eq!(o.outcome, Some(Outcome::Fail));
        assert!(o.message.contains("no statistics"), "{}", o.message);

        let nf = "sh: sertest: not found\n";
        let o = c.judge(&parse(nf), 127, nf, &Report::default(), d);
        assert_eq!(o.outcome, Some(Outcome::Blocked));

        let slave_err = parse("Read error: Input/output error\n");
        let o = c.judge(&parse(GOOD), 0, GOOD, &slave_err, d);
        assert_eq!(o.outcome, Some(Outcome::Fail));
        assert!(o.message.starts_with("slave: Read error"), "{}", o.message);
    }

    #[test]
    fn commands() {
        let c = check(&[("corrupt_every", 10.into())]);
        assert_eq!(
            c.master_command("/dev/ttyS1", 60),
            "sertest --master --chain -i 42 -l 256 -s 115200 -n 65536 -t 60 /dev/ttyS1"
        );
        let s = c.slave_command("/dev/ttyS0", 90);
        assert!(
            s.contains("sertest --slave --chain -i 42 -l 256 -s 115200 -n 65536 -t 90 --corrupt 10 /dev/ttyS0 > /tmp/sertest-slave.log 2>&1 &"),
            "{s}"
        );
        let c = check(&[("idle_timeout_s", 60.into())]);
        assert_eq!(
            c.master_command("/dev/ttyS1", 600),
            "sertest --master --chain -i 42 -l 256 -s 115200 -n 65536 -w 60 -t 600 /dev/ttyS1"
        );
        let c = check(&[("chain", false.into()), ("guest_port", "ttyS1".into())]);
        assert_eq!(c.guest_port.as_deref(), Some("/dev/ttyS1"));
        assert!(!c.master_command("/dev/ttyS1", 5).contains("--chain"));
    }

    #[test]
    fn board_port_from_sysfs() {
        assert_eq!(
            judge_board_port("0000:00:05.0", "ttyS1\n").unwrap(),
            "/dev/ttyS1"
        );
        let e = judge_board_port("0000:00:05.0", "no-device\n").unwrap_err();
        assert_eq!(e.outcome, Some(Outcome::Blocked));
        assert!(e.message.contains("no PCI device"), "{}", e.message);
        let e = judge_board_port("0000:00:05.0", "no-tty driver=vfio-pci\n").unwrap_err();
        assert!(e.message.contains("driver: vfio-pci"), "{}", e.message);
    }

    #[test]
    fn bad_params_name_the_key() {
        assert_eq!(error(&[("bytes", 0.into())]).key, "check[3].bytes");
        assert_eq!(error(&[("speed", 12345.into())]).key, "check[3].speed");
        assert_eq!(error(&[("maxlen", 5000.into())]).key, "check[3].maxlen");
        assert_eq!(error(&[("maxlen", 0.into())]).key, "check[3].maxlen");
        assert_eq!(
            error(&[("idle_timeout_s", 0.into())]).key,
            "check[3].idle_timeout_s"
        );
        assert_eq!(
            error(&[("corrupt_every", 0.into())]).key,
            "check[3].corrupt_every"
        );
        assert_eq!(
            error(&[("guest_port", "/dev/ttyS0; reboot".into())]).key,
            "check[3].guest_port"
        );
        assert_eq!(
            error(&[("board_device", "00:05.0".into())]).key,
            "check[3].board_device"
        );
        let e = error(&[("byts", 1.into())]);
        assert!(e.message.contains("unknown field `byts`"), "{e}");
    }
}
