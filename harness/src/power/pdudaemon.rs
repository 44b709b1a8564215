//! Power through pdudaemon (`power.backend = "pdudaemon"`): one HTTP GET per action to
//! `http://HOST:PORT/power/control/{on,off,reboot}?hostname=PDU&port=OUTLET`.
//!
//! pdudaemon answers 200 when it accepted the request, which says nothing about the
//! outlet: it may only queue the request, and even a pdudaemon that switches before it
//! answers (Debian 12's does) answers 200 when its driver failed. So "on" here means "on
//! was requested"; that the board really is on is seen on its console, as with any power.
//!
//! Each request is one connection attempt per address the host resolves to (a literal
//! address: exactly one), bounded as a whole by `power.timeout_s`; hil does not retry. A
//! pdudaemon that is down is lab trouble, and whether the run powers the board again is
//! `retry.infrastructure`'s decision, not a loop in here.
//!
//! The client is written by hand (HTTP/1.1, `Connection: close`, a bounded answer): four
//! GET requests do not need an HTTP crate.

pub mod daemon;

use super::PowerError;
use crate::config::board::{PowerCfg, PDUDAEMON_CYCLE_DELAY_S};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct PduDaemonPower {
    board: String,
    host: String,
    port: u16,
    pdu: String,
    outlet: u32,
    cycle_delay_s: u64,
    timeout: Duration,
}

/// More than any status line, headers and short body pdudaemon sends.
const MAX_ANSWER: usize = 64 * 1024;

impl PduDaemonPower {
    pub fn new(board: &str, cfg: &PowerCfg) -> PduDaemonPower {
        PduDaemonPower {
            board: board.into(),
            host: cfg.host.clone().unwrap_or_default(),
            port: cfg.pdudaemon_port(),
            pdu: cfg.pdu.clone().unwrap_or_default(),
            outlet: cfg.outlet.unwrap_or(1),
            cycle_delay_s: cfg.cycle_delay_s.unwrap_or(PDUDAEMON_CYCLE_DELAY_S),
            timeout: Duration::from_secs(cfg.timeout_s.unwrap_or(30)),
        }
    }

    /// `pdudaemon at HOST:PORT`, as messages name it.
    pub fn describe(&self) -> String {
        format!(
            "pdudaemon at {} (pdu {}, outlet {})",
            self.addr(),
            self.pdu,
            self.outlet
        )
    }

    fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub async fn on(&mut self) -> Result<(), PowerError> {
        self.request("on", None).await
    }

    pub async fn off(&mut self) -> Result<(), PowerError> {
        self.request("off", None).await
    }

    /// pdudaemon's reboot: off, `cycle_delay_s`, on, as one request (no other request for
    /// the outlet comes between).
    pub async fn cycle(&mut self) -> Result<(), PowerError> {
        self.request("reboot", Some(self.cycle_delay_s)).await
    }

    /// The path and query of one request.
    fn target(&self, action: &str, delay: Option<u64>) -> String {
        let mut t = format!(
            "/power/control/{action}?hostname={}&port={}",
            query_escape(&self.pdu),
            self.outlet
        );
        if let Some(d) = delay {
            t.push_str(&format!("&delay={d}"));
        }
        t
    }

    async fn request(&self, action: &str, delay: Option<u64>) -> Result<(), PowerError> {
        // A pdudaemon that switches before it answers takes the reboot's delay first.
        let limit = self.timeout + Duration::from_secs(delay.unwrap_or(0));
        let target = self.target(action, delay);
        let what = format!("power {action} of board {}", self.board);
        let answer = tokio::time::timeout(limit, self.get(&target))
            .await
            .map_err(|_| {
                PowerError::Failed(format!(
                    "{what}: {} did not answer GET {target} within {} s (power.timeout_s{}); one attempt, not retried",
                    self.describe(),
                    limit.as_secs(),
                    if delay.is_some() { " plus power.cycle_delay_s" } else { "" },
                ))
            })??;
        match answer {
            (200, _) => Ok(()),
            (status, body) => Err(PowerError::Failed(format!(
                "{what}: {} answered GET {target} with HTTP {status}: {}; check that power.pdu names a PDU in pdudaemon's configuration",
                self.describe(),
                one_line(&body)
            ))),
        }
    }

    /// One GET; the status code and the body.
    async fn get(&self, target: &str) -> Result<(u16, String), PowerError> {
        let trouble = |e: String| {
            PowerError::Failed(format!(
                "cannot reach {} (board {}: power.host, power.port): {e}; one attempt, not retried: is pdudaemon running and listening there?",
                self.describe(),
                self.board
            ))
        };
        let mut s = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| trouble(e.to_string()))?;
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: hil\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.addr()
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| trouble(format!("sending the request: {e}")))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s
                .read(&mut chunk)
                .await
                .map_err(|e| trouble(format!("reading the answer: {e}")))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_ANSWER || answer_complete(&buf) {
                break;
            }
        }
        parse_answer(&buf).ok_or_else(|| {
            trouble(format!(
                "the answer is not HTTP: {:?}",
                one_line(&String::from_utf8_lossy(&buf[..buf.len().min(200)]))
            ))
        })
    }
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })
}

/// Headers and a `Content-Length` body all read (else the answer ends at EOF).
fn answer_complete(buf: &[u8]) -> bool {
    let Some(end) = header_end(buf) else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    content_length(&head).is_some_and(|n| buf.len() >= end + n)
}

/// `HTTP/1.x CODE ...` and the body after the headers.
pub fn parse_answer(buf: &[u8]) -> Option<(u16, String)> {
    let end = header_end(buf).unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..end]);
    let status_line = head.lines().next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?.parse().ok()?;
    let body = String::from_utf8_lossy(&buf[end.min(buf.len())..]).into_owned();
    Some((code, body))
}

/// An answer's body on one line, bounded, for a message.
fn one_line(s: &str) -> String {
    let t: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty() {
        return "(empty body)".into();
    }
    match t.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &t[..i]),
        None => t,
    }
}

#[cfg(test)]
mod tests;
