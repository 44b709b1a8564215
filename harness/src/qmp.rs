//! A minimal QMP client (DOMAIN.md): greeting, `qmp_capabilities`, then commands; event
//! lines are skipped while waiting for a command's answer.

use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("qmp: {0}")]
    Io(#[from] std::io::Error),
    #[error("qmp: unexpected reply: {0}")]
    Protocol(String),
    #[error("qmp: {class}: {desc}")]
    Command { class: String, desc: String },
    #[error("qmp: no reply within {0:?}")]
    Timeout(Duration),
}

pub struct Qmp<S> {
    reader: BufReader<tokio::io::ReadHalf<S>>,
    writer: tokio::io::WriteHalf<S>,
}

impl Qmp<tokio::net::UnixStream> {
    pub async fn connect_unix(path: &std::path::Path) -> Result<Self, QmpError> {
        let s = tokio::net::UnixStream::connect(path).await?;
        Qmp::handshake(s).await
    }
}

impl<S: AsyncRead + AsyncWrite> Qmp<S> {
    pub async fn handshake(stream: S) -> Result<Self, QmpError> {
        let (r, w) = tokio::io::split(stream);
        let mut q = Qmp {
            reader: BufReader::new(r),
            writer: w,
        };
        let greeting = q.read_json().await?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(greeting.to_string()));
        }
        q.execute("qmp_capabilities", None).await?;
        Ok(q)
    }

    async fn read_json(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).await? == 0 {
                return Err(QmpError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            if !line.trim().is_empty() {
                return serde_json::from_str(&line).map_err(|_| QmpError::Protocol(line.clone()));
            }
        }
    }

    /// Runs a command, returning its `return` value.
    pub async fn execute(&mut self, cmd: &str, args: Option<Value>) -> Result<Value, QmpError> {
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

    pub async fn execute_timeout(
        &mut self,
        cmd: &str,
        args: Option<Value>,
        t: Duration,
    ) -> Result<Value, QmpError> {
        tokio::time::timeout(t, self.execute(cmd, args))
            .await
            .map_err(|_| QmpError::Timeout(t))?
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
        let mut q = Qmp::handshake(client).await.unwrap();
        let r = q.execute("query-chardev", None).await.unwrap();
        assert_eq!(pty_of(&r, "con0").as_deref(), Some("/dev/pts/7"));
        let e = q.execute("bogus", None).await.unwrap_err();
        assert_eq!(e.to_string(), "qmp: GenericError: nope");
        srv.await.unwrap();
    }
}
