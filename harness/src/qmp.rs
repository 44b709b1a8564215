//! A minimal QMP client (DOMAIN.md): greeting, `qmp_capabilities`, then commands; event
//! lines are skipped while waiting for a command's answer.
//!
//! Every wait has a limit given by the caller (from the board file): a QEMU that accepted
//! the connection and then hangs, or anything else listening on the socket, must end as
//! an error, not as a run that never finishes.

use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("qmp: {0}")]
    Io(#[from] std::io::Error),
    #[error("qmp: unexpected reply: {0}")]
    Protocol(String),
    #[error("qmp: {class}: {desc}")]
    Command { class: String, desc: String },
    #[error("qmp: no greeting within {} s of connecting", .0.as_secs_f64())]
    NoGreeting(Duration),
    #[error("qmp: no reply to `{cmd}` within {} s", .t.as_secs_f64())]
    Timeout { cmd: String, t: Duration },
}

/// A QMP line longer than this is not QMP (a `query-*` answer of a big machine is a few
/// tens of KiB); without a limit a peer sending no newline would grow the buffer forever.
const MAX_LINE: u64 = 4 * 1024 * 1024;

pub struct Qmp<S> {
    reader: BufReader<tokio::io::ReadHalf<S>>,
    writer: tokio::io::WriteHalf<S>,
}

impl Qmp<tokio::net::UnixStream> {
    /// Connects and completes the handshake, all within `timeout`.
    pub async fn connect_unix(path: &std::path::Path, timeout: Duration) -> Result<Self, QmpError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let s = tokio::time::timeout(timeout, tokio::net::UnixStream::connect(path))
            .await
            .map_err(|_| QmpError::Io(std::io::ErrorKind::TimedOut.into()))??;
        Qmp::handshake_until(s, deadline, timeout).await
    }
}

impl<S: AsyncRead + AsyncWrite> Qmp<S> {
    /// Reads the greeting and negotiates capabilities, within `timeout` in all.
    pub async fn handshake(stream: S, timeout: Duration) -> Result<Self, QmpError> {
        Qmp::handshake_until(stream, tokio::time::Instant::now() + timeout, timeout).await
    }

    /// The handshake by `deadline`; `limit` is the limit as configured, for messages.
    async fn handshake_until(
        stream: S,
        deadline: tokio::time::Instant,
        limit: Duration,
    ) -> Result<Self, QmpError> {
        let (r, w) = tokio::io::split(stream);
        let mut q = Qmp {
            reader: BufReader::new(r),
            writer: w,
        };
        let greeting = tokio::time::timeout_at(deadline, q.read_json())
            .await
            .map_err(|_| QmpError::NoGreeting(limit))??;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(greeting.to_string()));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        q.execute_timeout("qmp_capabilities", None, left).await?;
        Ok(q)
    }

    async fn read_json(&mut self) -> Result<Value, QmpError> {
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut self.reader)
                .take(MAX_LINE)
                .read_until(b'\n', &mut line)
                .await?;
            if n == 0 {
                return Err(QmpError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            if n as u64 == MAX_LINE && line.last() != Some(&b'\n') {
                return Err(QmpError::Protocol(format!(
                    "a line longer than {MAX_LINE} bytes"
                )));
            }
            let text = String::from_utf8_lossy(&line);
            if !text.trim().is_empty() {
                return serde_json::from_str(&text)
                    .map_err(|_| QmpError::Protocol(text.trim().to_string()));
            }
        }
    }

    /// Runs a command, returning its `return` value.
    async fn execute(&mut self, cmd: &str, args: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": cmd });
        if let Some(a) = args {
            msg["arguments"] = a;
        }
        let mut text = msg.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes()).await?;
        loop {
            let v = self.read_json().await?;
            if v.get("event").is_some() {
                continue;
            }
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(QmpError::Command {
                    class: e["class"].as_str().unwrap_or("?").into(),
                    desc: e["desc"].as_str().unwrap_or("?").into(),
                });
            }
            return Err(QmpError::Protocol(v.to_string()));
        }
    }

    /// Runs a command and waits at most `t` for its answer (writing it included).
    pub async fn execute_timeout(
        &mut self,
        cmd: &str,
        args: Option<Value>,
        t: Duration,
    ) -> Result<Value, QmpError> {
        tokio::time::timeout(t, self.execute(cmd, args))
            .await
            .map_err(|_| QmpError::Timeout {
                cmd: cmd.to_string(),
                t,
            })?
    }
}

/// The pty path from a `query-chardev` answer (`"filename": "pty:/dev/pts/5"`).
pub fn pty_of(chardevs: &Value, label: &str) -> Option<String> {
    chardevs.as_array()?.iter().find(|c| c["label"] == label)?["filename"]
        .as_str()?
        .strip_prefix("pty:")
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn skips_events_and_reports_errors() {
        let (client, mut server) = tokio::io::duplex(4096);
        let srv = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            server
                .write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 256];
            let _ = server.read(&mut buf).await.unwrap();
            server.write_all(b"{\"return\": {}}\r\n").await.unwrap();
            let _ = server.read(&mut buf).await.unwrap();
            server.write_all(b"{\"event\": \"RESUME\"}\r\n{\"return\": [{\"label\": \"con0\", \"filename\": \"pty:/dev/pts/7\"}]}\r\n").await.unwrap();
            let _ = server.read(&mut buf).await.unwrap();
            server
                .write_all(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}}\r\n")
                .await
                .unwrap();
        });
        let t = Duration::from_secs(5);
        let mut q = Qmp::handshake(client, t).await.unwrap();
        let r = q.execute_timeout("query-chardev", None, t).await.unwrap();
        assert_eq!(pty_of(&r, "con0").as_deref(), Some("/dev/pts/7"));
        let e = q.execute_timeout("bogus", None, t).await.unwrap_err();
        assert_eq!(e.to_string(), "qmp: GenericError: nope");
        srv.await.unwrap();
    }

    /// A peer that accepts the connection and never says anything (a hung QEMU, or another
    /// program on the socket path) must give an error once the limit has passed.
    #[tokio::test]
    async fn silent_peer_is_an_error_within_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            // Hold the connection open, reading whatever comes, answering nothing.
            let mut conn = conn;
            let mut buf = [0u8; 256];
            while tokio::io::AsyncReadExt::read(&mut conn, &mut buf)
                .await
                .unwrap_or(0)
                > 0
            {}
        });
        let t = std::time::Instant::now();
        let e = match Qmp::connect_unix(&path, Duration::from_millis(700)).await {
            Ok(_) => panic!("handshake with a silent peer succeeded"),
            Err(e) => e,
        };
        let took = t.elapsed();
        assert!(matches!(e, QmpError::NoGreeting(_)), "{e}");
        assert!(e.to_string().contains("no greeting within 0.7 s"), "{e}");
        assert!(
            took >= Duration::from_millis(700) && took < Duration::from_millis(1500),
            "{took:?}"
        );
        server.abort();
    }

    /// A greeting, then silence: the command's own limit ends the wait.
    #[tokio::test]
    async fn unanswered_command_times_out() {
        let (client, mut server) = tokio::io::duplex(4096);
        let srv = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            server
                .write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 256];
            let _ = server.read(&mut buf).await.unwrap();
            server.write_all(b"{\"return\": {}}\r\n").await.unwrap();
            while server.read(&mut buf).await.unwrap_or(0) > 0 {}
        });
        let mut q = Qmp::handshake(client, Duration::from_secs(5))
            .await
            .unwrap();
        let t = std::time::Instant::now();
        let e = q
            .execute_timeout("cont", None, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(e.to_string(), "qmp: no reply to `cont` within 0.3 s");
        srv.abort();
    }
}
