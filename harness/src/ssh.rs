//! SSH to the board: exec with exit status, with the board's host key checked against
//! the key pinned in its board file before anything is sent.
//!
//! `ssh2` (libssh2) is blocking; every call runs on tokio's blocking pool. A hung call is
//! bounded by the session timeout.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `"ssh-ed25519 AAAA... comment"` → (type, key blob).
pub fn parse_public_key(line: &str) -> Option<(String, Vec<u8>)> {
    let mut it = line.split_whitespace();
    let kind = it.next()?.to_string();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(it.next()?)
        .ok()?;
    Some((kind, blob))
}

/// OpenSSH-style `SHA256:...` fingerprint of a key blob.
pub fn fingerprint(blob: &[u8]) -> String {
    let digest = Sha256::digest(blob);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

#[derive(Debug, Clone)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub identity: PathBuf,
    /// The pinned host key blob.
    pub host_key: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("ssh {addr}: cannot connect within {secs} s: {last}")]
    Unreachable {
        addr: String,
        secs: u64,
        last: String,
    },
    #[error("ssh {addr}: host key mismatch: expected {expected}, board offered {offered}; refusing to connect")]
    HostKeyMismatch {
        addr: String,
        expected: String,
        offered: String,
    },
    #[error("ssh: {0}")]
    Session(String),
    #[error("ssh: command `{cmd}` did not finish within {secs} s")]
    Timeout { cmd: String, secs: u64 },
}

pub struct SshSession {
    sess: Arc<Mutex<ssh2::Session>>,
    log: Arc<Mutex<std::fs::File>>,
}

impl SshTarget {
    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Connects, retrying until `timeout` (dropbear may not be up yet). A host-key mismatch
    /// is final: retrying would not make the key right.
    pub async fn connect(
        &self,
        timeout: Duration,
        log_path: &Path,
    ) -> Result<SshSession, SshError> {
        let deadline = crate::config::limits::std_deadline_from(Instant::now(), timeout);
        let mut last;
        loop {
            let t = self.clone();
            let res = tokio::task::spawn_blocking(move || t.connect_once())
                .await
                .map_err(|e| SshError::Session(e.to_string()))?;
            match res {
                Ok(sess) => {
                    let log = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(log_path)
                        .map_err(|e| {
                            SshError::Session(format!("cannot open {}: {e}", log_path.display()))
                        })?;
                    return Ok(SshSession {
                        sess: Arc::new(Mutex::new(sess)),
                        log: Arc::new(Mutex::new(log)),
                    });
                }
                Err(e @ SshError::HostKeyMismatch { .. }) => return Err(e),
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(SshError::Unreachable {
                    addr: self.addr(),
                    secs: timeout.as_secs(),
                    last,
                });
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    fn connect_once(&self) -> Result<ssh2::Session, SshError> {
        let addr = self.addr();
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| SshError::Session(format!("{addr}: {e}")))?
            .next()
            .ok_or_else(|| SshError::Session(format!("{addr}: no address")))?;
        let tcp = TcpStream::connect_timeout(&sock, Duration::from_secs(5))
            .map_err(|e| SshError::Session(format!("{addr}: {e}")))?;
        let mut sess = ssh2::Session::new().map_err(|e| SshError::Session(e.to_string()))?;
        sess.set_tcp_stream(tcp);
        sess.set_timeout(15_000);
        sess.handshake()
            .map_err(|e| SshError::Session(format!("{addr}: handshake: {e}")))?;
        let (offered, _) = sess
            .host_key()
            .ok_or_else(|| SshError::Session("no host key offered".into()))?;
        if offered != self.host_key.as_slice() {
            return Err(SshError::HostKeyMismatch {
                addr,
                expected: fingerprint(&self.host_key),
                offered: fingerprint(offered),
            });
        }
        sess.userauth_pubkey_file(&self.user, None, &self.identity, None)
            .map_err(|e| {
                SshError::Session(format!(
                    "{addr}: login as {} with {}: {e}",
                    self.user,
                    self.identity.display()
                ))
            })?;
        sess.set_timeout(0);
        Ok(sess)
    }
}

impl SshSession {
    /// Runs `cmd`, returning combined stdout+stderr (cleaned) and the exit status.
    pub async fn exec(
        &self,
        cmd: &str,
        timeout: Duration,
    ) -> Result<crate::shell::CmdOutput, SshError> {
        let sess = self.sess.clone();
        let log = self.log.clone();
        let cmd_owned = cmd.to_string();
        let secs = timeout.as_secs();
        tokio::task::spawn_blocking(move || {
            let sess = sess.lock().unwrap_or_else(|p| p.into_inner());
            // libssh2's timeout bounds each blocking call; a command silent for longer than
            // the check's limit ends up here as a timeout error.
            sess.set_timeout(timeout.as_millis().min(u32::MAX as u128) as u32);
            let result = (|| {
                let mut ch = sess.channel_session()?;
                ch.handle_extended_data(ssh2::ExtendedData::Merge)?;
                ch.exec(&cmd_owned)?;
                let mut out = Vec::new();
                ch.read_to_end(&mut out).map_err(|e| match e.kind() {
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                        ssh2::Error::new(ssh2::ErrorCode::Session(-9), "timed out")
                    }
                    _ => ssh2::Error::new(
                        ssh2::ErrorCode::Session(-7),
                        "connection lost while reading command output",
                    ),
                })?;
                ch.wait_close()?;
                Ok::<_, ssh2::Error>((out, ch.exit_status()?))
            })();
            sess.set_timeout(0);
            let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
            use std::io::Write;
            let _ = writeln!(log, "$ {cmd_owned}");
            match result {
                Ok((out, status)) => {
                    let _ = log.write_all(&out);
                    let _ = writeln!(log, "[exit {status}]");
                    Ok(crate::shell::CmdOutput {
                        output: crate::text::clean(&out),
                        status,
                    })
                }
                Err(e) if e.code() == ssh2::ErrorCode::Session(-9) => {
                    let _ = writeln!(log, "[timeout after {secs} s]");
                    Err(SshError::Timeout {
                        cmd: cmd_owned,
                        secs,
                    })
                }
                Err(e) => {
                    let _ = writeln!(log, "[error: {e}]");
                    Err(SshError::Session(e.to_string()))
                }
            }
        })
        .await
        .map_err(|e| SshError::Session(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pub_line_and_fingerprints_like_openssh() {
        // `ssh-keygen -lf` on this key printed SHA256:avlcCy7oeHxyXwMdZpnTWRsVHL3ywQEA+CT2vjEw3iI
        let line =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAz8yxinzTeFwYuKJZJSUx6NUTVy18BIE2ws16Sz05rC test";
        let (kind, blob) = parse_public_key(line).unwrap();
        assert_eq!(kind, "ssh-ed25519");
        assert_eq!(
            fingerprint(&blob),
            "SHA256:avlcCy7oeHxyXwMdZpnTWRsVHL3ywQEA+CT2vjEw3iI"
        );
        assert!(parse_public_key("ssh-ed25519 !!!").is_none());
    }
}

impl SshSession {
    /// Copies a local file to `remote` on the board through an exec channel (dropbear has
    /// no SFTP server), then checks the board's `sha256sum` of it against ours. Returns
    /// the hash.
    pub async fn upload(
        &self,
        local: &Path,
        remote: &str,
        timeout: Duration,
    ) -> Result<String, SshError> {
        let want = crate::hash::sha256_file(local)
            .map_err(|e| SshError::Session(format!("{}: {e}", local.display())))?;
        let data = std::fs::read(local)
            .map_err(|e| SshError::Session(format!("{}: {e}", local.display())))?;
        let sess = self.sess.clone();
        let q = shell_words::quote(remote).into_owned();
        let cmd = format!("cat > {q} && sha256sum {q}");
        let remote_owned = remote.to_string();
        let got = tokio::task::spawn_blocking(move || {
            let sess = sess.lock().unwrap_or_else(|p| p.into_inner());
            sess.set_timeout(timeout.as_millis().min(u32::MAX as u128) as u32);
            let r = (|| {
                let e = |e: &dyn std::fmt::Display| e.to_string();
                let mut ch = sess.channel_session().map_err(|x| e(&x))?;
                ch.exec(&cmd).map_err(|x| e(&x))?;
                std::io::Write::write_all(&mut ch, &data).map_err(|x| e(&x))?;
                ch.send_eof().map_err(|x| e(&x))?;
                let mut out = String::new();
                let _ = ch.read_to_string(&mut out);
                ch.wait_close().map_err(|x| e(&x))?;
                Ok::<_, String>((out, ch.exit_status().map_err(|x| e(&x))?))
            })();
            sess.set_timeout(0);
            r
        })
        .await
        .map_err(|e| SshError::Session(e.to_string()))?
        .map_err(|e| SshError::Session(format!("upload to {remote_owned}: {e}")))?;
        let (out, status) = got;
        let board_hash = out.split_whitespace().next().unwrap_or("").to_string();
        if status != 0 || board_hash != want {
            return Err(SshError::Session(format!(
                "upload of {} to {remote} did not verify: local sha256 {want}, board {board_hash:?} (exit {status})",
                local.display()
            )));
        }
        Ok(want)
    }
}

/// What a dedicated SSH stream carries.
#[derive(Debug, Clone)]
pub enum StreamKind {
    /// A long-running command whose stdin/stdout is the stream (the nested QEMU with its
    /// serial port on stdio: the guest console).
    Exec(String),
    /// A TCP port on the board's loopback (the guest QEMU's QMP socket).
    Tcp(u16),
}

impl SshTarget {
    /// Opens its own SSH connection carrying one channel, bridged by a thread to one end
    /// of a local socket pair; the other end is returned, so async code (the console
    /// broker, the QMP client) sees an ordinary fd. The stream ends when either side
    /// closes.
    pub async fn open_stream(
        &self,
        kind: StreamKind,
        timeout: Duration,
    ) -> Result<std::os::unix::net::UnixStream, SshError> {
        let deadline = crate::config::limits::std_deadline_from(Instant::now(), timeout);
        let sess = loop {
            let t = self.clone();
            match tokio::task::spawn_blocking(move || t.connect_once())
                .await
                .map_err(|e| SshError::Session(e.to_string()))?
            {
                Ok(s) => break s,
                Err(e @ SshError::HostKeyMismatch { .. }) => return Err(e),
                Err(e) if Instant::now() >= deadline => {
                    return Err(SshError::Unreachable {
                        addr: self.addr(),
                        secs: timeout.as_secs(),
                        last: e.to_string(),
                    })
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        };
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(|e| SshError::Session(e.to_string()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ch = match &kind {
                StreamKind::Exec(cmd) => sess.channel_session().and_then(|mut c| {
                    c.handle_extended_data(ssh2::ExtendedData::Merge)?;
                    c.exec(cmd)?;
                    Ok(c)
                }),
                StreamKind::Tcp(port) => sess.channel_direct_tcpip("127.0.0.1", *port, None),
            };
            match ch {
                Ok(ch) => {
                    let _ = tx.send(Ok(()));
                    pump(&sess, ch, theirs);
                }
                Err(e) => {
                    let _ = tx.send(Err(SshError::Session(format!("opening {kind:?}: {e}"))));
                }
            }
        });
        tokio::task::spawn_blocking(move || rx.recv())
            .await
            .map_err(|e| SshError::Session(e.to_string()))?
            .map_err(|_| SshError::Session("stream thread ended".into()))??;
        Ok(ours)
    }
}

/// Copies both ways between an SSH channel and a local socket until either ends.
/// libssh2 is used non-blocking here: one thread serves both directions.
fn pump(sess: &ssh2::Session, mut ch: ssh2::Channel, sock: std::os::unix::net::UnixStream) {
    use std::io::{ErrorKind, Write};
    sess.set_blocking(false);
    let _ = sock.set_nonblocking(true);
    let mut sock_r = &sock;
    let mut sock_w = &sock;
    let mut buf = vec![0u8; 32 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let mut idle = true;
        match ch.read(&mut buf) {
            Ok(0) if ch.eof() => break,
            Ok(0) => {}
            Ok(n) => {
                idle = false;
                // The socket side is local and fast; block briefly rather than drop bytes.
                let _ = sock.set_nonblocking(false);
                if sock_w.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = sock.set_nonblocking(true);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        if pending.is_empty() {
            match sock_r.read(&mut buf) {
                Ok(0) => break, // our side closed: end the channel
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        if !pending.is_empty() {
            match ch.write(&pending) {
                Ok(n) => {
                    idle = false;
                    pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let _ = ch.close();
    let _ = sock.shutdown(std::net::Shutdown::Both);
}
