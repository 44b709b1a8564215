//! SSH to the board: exec with exit status, with the board's host key checked against
//! the key pinned in its board file before anything is sent.
//!
//! `ssh2` (libssh2) is blocking; every call runs on tokio's blocking pool. An exec session
//! runs in libssh2's non-blocking mode and waits on its socket with poll(2) in short
//! slices, so every pass of a command's loop checks the command's own deadline and
//! whether its caller gave up: a command that never stops printing ends at its timeout
//! like one that is silent (libssh2's own timeout only bounds a single blocking call, and
//! a flood never lets one block). Output is kept bounded (a head and a tail) and streamed
//! to `ssh.log` as it arrives. A session that may be unusable (a command stopped at its
//! time-out or abandoned, a lost connection) is dropped and the next command connects
//! again, so one check's trouble does not become the next one's.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Output kept per command: the first [`OUTPUT_HEAD`] bytes and the last [`OUTPUT_TAIL`]
/// (1 MiB in all); what lies between is counted and dropped.
pub const OUTPUT_HEAD: usize = 512 * 1024;
pub const OUTPUT_TAIL: usize = 512 * 1024;

/// Longest wait on the socket before the deadline and the cancel flag are looked at again.
const POLL_SLICE: Duration = Duration::from_millis(100);
/// After a deadline: how long the channel may take to close cleanly before the whole
/// session is dropped instead.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// One connection attempt: TCP connect, then each of handshake and login.
const TCP_CONNECT_LIMIT: Duration = Duration::from_secs(5);
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(15);

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

/// A command's output with a bound on memory: the first `head_cap` bytes, the last
/// `tail_cap` bytes, and how many in between were dropped.
pub struct BoundedOutput {
    head: Vec<u8>,
    /// Grows to twice `tail_cap` before it is trimmed, so trimming is amortised.
    tail: Vec<u8>,
    head_cap: usize,
    tail_cap: usize,
    trimmed: u64,
    total: u64,
}

impl BoundedOutput {
    pub fn new(head_cap: usize, tail_cap: usize) -> BoundedOutput {
        BoundedOutput {
            head: Vec::new(),
            tail: Vec::new(),
            head_cap,
            tail_cap,
            trimmed: 0,
            total: 0,
        }
    }

    /// Appends `data`; returns how many of its leading bytes went to the head (those can
    /// be streamed at once: the head never changes).
    pub fn push(&mut self, data: &[u8]) -> usize {
        self.total += data.len() as u64;
        let n = self
            .head_cap
            .saturating_sub(self.head.len())
            .min(data.len());
        self.head.extend_from_slice(&data[..n]);
        let rest = &data[n..];
        if !rest.is_empty() {
            self.tail.extend_from_slice(rest);
            if self.tail.len() > 2 * self.tail_cap {
                let cut = self.tail.len() - self.tail_cap;
                self.tail.drain(..cut);
                self.trimmed += cut as u64;
            }
        }
        n
    }

    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// The last bytes after the head, at most `tail_cap`.
    pub fn tail(&self) -> &[u8] {
        &self.tail[self.tail.len().saturating_sub(self.tail_cap)..]
    }

    /// Bytes received and not kept.
    pub fn dropped(&self) -> u64 {
        self.trimmed + (self.tail.len() - self.tail().len()) as u64
    }

    /// Bytes received in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The line that stands where bytes were dropped.
    pub fn drop_marker(&self) -> String {
        format!(
            "\n[hil: {} bytes of output dropped here; the first {} and the last {} bytes are kept]\n",
            self.dropped(),
            self.head_cap,
            self.tail_cap
        )
    }

    /// Head, the drop marker if anything was dropped, and tail.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.head.clone();
        if self.dropped() > 0 {
            v.extend_from_slice(self.drop_marker().as_bytes());
        }
        v.extend_from_slice(self.tail());
        v
    }
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
    #[error(
        "ssh: command `{cmd}` did not finish within {secs} s ({bytes} bytes of output by then)"
    )]
    Timeout { cmd: String, secs: u64, bytes: u64 },
}

/// A logged-in session and the raw fd of its socket (owned by the session), for poll(2)
/// and for cutting a broken session off.
struct Conn {
    sess: ssh2::Session,
    fd: RawFd,
}

impl Conn {
    /// Shuts the socket down before the session is freed: libssh2 then fails at once on
    /// it instead of waiting for a peer that will not answer (freeing a session with an
    /// open channel would otherwise try to close that channel first).
    fn discard(self) {
        // SAFETY: the fd belongs to the TcpStream the session still owns (alive until
        // `self` drops below); shutdown(2) does not close it.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
    }
}

pub struct SshSession {
    target: SshTarget,
    /// `None`: the last session was left broken; the next command connects again.
    conn: Arc<tokio::sync::Mutex<Option<Conn>>>,
    log: Arc<Mutex<std::fs::File>>,
}

/// `now + t`, or far in the future for a limit too large to add.
fn deadline_after(t: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(t)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// libssh2's timeout in ms for a blocking call; never 0 (which means "wait forever").
fn timeout_ms(t: Duration) -> u32 {
    t.as_millis().clamp(1, u32::MAX as u128) as u32
}

impl SshTarget {
    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Connects, retrying until `timeout` (dropbear may not be up yet). A host-key mismatch
    /// is final: retrying would not make the key right. Every attempt is bounded by what is
    /// left of `timeout`, so the whole call is too.
    pub async fn connect(
        &self,
        timeout: Duration,
        log_path: &Path,
    ) -> Result<SshSession, SshError> {
        let deadline = deadline_after(timeout);
        let mut last;
        loop {
            let t = self.clone();
            let res = tokio::task::spawn_blocking(move || t.connect_once(deadline))
                .await
                .map_err(|e| SshError::Session(e.to_string()))?;
            match res {
                Ok(conn) => {
                    conn.sess.set_blocking(false);
                    let log = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(log_path)
                        .map_err(|e| {
                            SshError::Session(format!("cannot open {}: {e}", log_path.display()))
                        })?;
                    return Ok(SshSession {
                        target: self.clone(),
                        conn: Arc::new(tokio::sync::Mutex::new(Some(conn))),
                        log: Arc::new(Mutex::new(log)),
                    });
                }
                Err(e @ SshError::HostKeyMismatch { .. }) => return Err(e),
                Err(e) => last = e.to_string(),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SshError::Unreachable {
                    addr: self.addr(),
                    secs: timeout.as_secs(),
                    last,
                });
            }
            tokio::time::sleep(Duration::from_secs(2).min(left)).await;
            // No time left for another attempt: the last real error says why, not "no
            // time left".
            if Instant::now() >= deadline {
                return Err(SshError::Unreachable {
                    addr: self.addr(),
                    secs: timeout.as_secs(),
                    last,
                });
            }
        }
    }

    /// One connection attempt, done by `deadline`: TCP connect, handshake, host key
    /// check, login. The session is returned in blocking mode with no timeout set.
    fn connect_once(&self, deadline: Instant) -> Result<Conn, SshError> {
        let addr = self.addr();
        let left = || deadline.saturating_duration_since(Instant::now());
        let out_of_time =
            |what: &str| SshError::Session(format!("{addr}: no time left for {what}"));
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| SshError::Session(format!("{addr}: {e}")))?
            .next()
            .ok_or_else(|| SshError::Session(format!("{addr}: no address")))?;
        if left().is_zero() {
            return Err(out_of_time("the TCP connection"));
        }
        let tcp = TcpStream::connect_timeout(&sock, TCP_CONNECT_LIMIT.min(left()))
            .map_err(|e| SshError::Session(format!("{addr}: {e}")))?;
        let fd = tcp.as_raw_fd();
        let mut sess = ssh2::Session::new().map_err(|e| SshError::Session(e.to_string()))?;
        sess.set_tcp_stream(tcp);
        if left().is_zero() {
            return Err(out_of_time("the handshake"));
        }
        // libssh2's timeout bounds each blocking call as a whole (measured from its start).
        sess.set_timeout(timeout_ms(HANDSHAKE_LIMIT.min(left())));
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
        if left().is_zero() {
            return Err(out_of_time("the login"));
        }
        sess.set_timeout(timeout_ms(HANDSHAKE_LIMIT.min(left())));
        sess.userauth_pubkey_file(&self.user, None, &self.identity, None)
            .map_err(|e| {
                SshError::Session(format!(
                    "{addr}: login as {} with {}: {e}",
                    self.user,
                    self.identity.display()
                ))
            })?;
        sess.set_timeout(0);
        Ok(Conn { sess, fd })
    }
}

/// Why a non-blocking operation stopped before it was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Deadline,
    /// The caller's future was dropped (its check ended some other way).
    Cancelled,
}

#[derive(Debug)]
enum OpError {
    Stop(Stop),
    /// The transport or the protocol failed: the session is not to be trusted.
    Ssh(String),
}

impl From<Stop> for OpError {
    fn from(s: Stop) -> Self {
        OpError::Stop(s)
    }
}

/// Sets its flag when dropped: a blocking-pool operation whose caller went away sees it
/// on its next pass and ends.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Non-blocking libssh2 calls on one session, each retried until done, the deadline or
/// cancellation.
struct Pass<'a> {
    sess: &'a ssh2::Session,
    fd: RawFd,
    deadline: Instant,
    cancel: &'a AtomicBool,
}

const EAGAIN: ssh2::ErrorCode = ssh2::ErrorCode::Session(-37);

impl Pass<'_> {
    fn check(&self) -> Result<(), Stop> {
        if self.cancel.load(Ordering::SeqCst) {
            return Err(Stop::Cancelled);
        }
        if Instant::now() >= self.deadline {
            return Err(Stop::Deadline);
        }
        Ok(())
    }

    /// Waits (at most one slice) for the socket to be ready the way libssh2 last needed it.
    fn wait(&self) -> Result<(), Stop> {
        self.check()?;
        let events = match self.sess.block_directions() {
            ssh2::BlockDirections::Outbound => libc::POLLOUT,
            ssh2::BlockDirections::Both => libc::POLLIN | libc::POLLOUT,
            _ => libc::POLLIN,
        };
        let slice = POLL_SLICE.min(self.deadline.saturating_duration_since(Instant::now()));
        let mut p = libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the fd is the session's socket, open while it lives.
        unsafe { libc::poll(&mut p, 1, slice.as_millis().max(1) as i32) };
        Ok(())
    }

    fn retry<T>(
        &self,
        what: &str,
        mut f: impl FnMut() -> Result<T, ssh2::Error>,
    ) -> Result<T, OpError> {
        loop {
            self.check()?;
            match f() {
                Err(e) if e.code() == EAGAIN => self.wait()?,
                Err(e) => return Err(OpError::Ssh(format!("{what}: {e}"))),
                Ok(v) => return Ok(v),
            }
        }
    }

    /// Reads what is there now into `buf`: `Ok(Some(0))` at end of stream, `Ok(None)` when
    /// nothing is there yet (the socket has been waited on).
    fn read(&self, ch: &mut ssh2::Channel, buf: &mut [u8]) -> Result<Option<usize>, OpError> {
        self.check()?;
        match ch.read(buf) {
            Ok(0) if ch.eof() => Ok(Some(0)),
            Ok(0) => {
                self.wait()?;
                Ok(None)
            }
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.wait()?;
                Ok(None)
            }
            Err(e) => Err(OpError::Ssh(format!(
                "connection lost while reading command output: {e}"
            ))),
        }
    }
}

/// After a deadline or cancellation: closes the channel within [`CLOSE_GRACE`]. `false`:
/// it did not close, the session is not usable for another command.
fn close_channel(sess: &ssh2::Session, fd: RawFd, ch: &mut ssh2::Channel) -> bool {
    let never = AtomicBool::new(false);
    let p = Pass {
        sess,
        fd,
        deadline: Instant::now() + CLOSE_GRACE,
        cancel: &never,
    };
    // libssh2's close sends CLOSE and waits for the peer's; the peer may first have to
    // finish sending what its window allows, which libssh2 reads and drops.
    p.retry("close", || ch.close()).is_ok()
}

impl SshSession {
    /// Runs `cmd`, returning combined stdout+stderr (cleaned; bounded as
    /// [`BoundedOutput`] with [`OUTPUT_HEAD`] + [`OUTPUT_TAIL`]) and the exit status. The
    /// whole call, from waiting for the session to the exit status, ends by `timeout`: past
    /// it the command's channel is closed and [`SshError::Timeout`] returned. A connection
    /// lost before is made again first.
    pub async fn exec(
        &self,
        cmd: &str,
        timeout: Duration,
    ) -> Result<crate::shell::CmdOutput, SshError> {
        let deadline = deadline_after(timeout);
        let secs = timeout.as_secs();
        let conn = match tokio::time::timeout(timeout, self.conn.clone().lock_owned()).await {
            Ok(g) => g,
            Err(_) => {
                return Err(SshError::Session(format!(
                    "the session was still busy with another command after {secs} s"
                )))
            }
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(cancel.clone());
        let target = self.target.clone();
        let log = self.log.clone();
        let cmd_owned = cmd.to_string();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn;
            exec_blocking(
                &mut conn, &target, &cmd_owned, deadline, secs, &cancel, &log,
            )
        })
        .await
        .map_err(|e| SshError::Session(e.to_string()))?
    }
}

/// Makes sure `slot` holds a session, connecting again (until `deadline`) if the last one
/// was dropped.
fn ensure_connected<'a>(
    slot: &'a mut Option<Conn>,
    target: &SshTarget,
    deadline: Instant,
    secs: u64,
    cancel: &AtomicBool,
    log: &mut std::fs::File,
) -> Result<&'a Conn, SshError> {
    if slot.is_none() {
        let _ = writeln!(
            log,
            "[hil: the previous session was dropped; connecting again]"
        );
        let mut last;
        loop {
            if cancel.load(Ordering::SeqCst) {
                return Err(SshError::Session("cancelled".into()));
            }
            match target.connect_once(deadline) {
                Ok(c) => {
                    c.sess.set_blocking(false);
                    *slot = Some(c);
                    break;
                }
                Err(e @ SshError::HostKeyMismatch { .. }) => return Err(e),
                Err(e) => last = e.to_string(),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let _ = writeln!(log, "[hil: reconnecting failed: {last}]");
                return Err(SshError::Unreachable {
                    addr: target.addr(),
                    secs,
                    last: format!("reconnecting after a dropped session: {last}"),
                });
            }
            std::thread::sleep(Duration::from_secs(1).min(left));
        }
    }
    Ok(slot.as_ref().expect("connected above"))
}

fn exec_blocking(
    slot: &mut Option<Conn>,
    target: &SshTarget,
    cmd: &str,
    deadline: Instant,
    secs: u64,
    cancel: &AtomicBool,
    log: &Mutex<std::fs::File>,
) -> Result<crate::shell::CmdOutput, SshError> {
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(log, "$ {cmd}");
    let conn = ensure_connected(slot, target, deadline, secs, cancel, &mut log)?;
    let p = Pass {
        sess: &conn.sess,
        fd: conn.fd,
        deadline,
        cancel,
    };
    let mut out = BoundedOutput::new(OUTPUT_HEAD, OUTPUT_TAIL);
    let mut channel = None;
    let result = (|| {
        let ch = channel.insert(p.retry("opening a channel", || conn.sess.channel_session())?);
        p.retry("merging stderr", || {
            ch.handle_extended_data(ssh2::ExtendedData::Merge)
        })?;
        p.retry("exec", || ch.exec(cmd))?;
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match p.read(ch, &mut buf)? {
                Some(0) => break,
                Some(n) => {
                    // Streamed as it arrives: a timeout or a crash leaves what came.
                    let h = out.push(&buf[..n]);
                    let _ = log.write_all(&buf[..h]);
                }
                None => {}
            }
        }
        p.retry("waiting for the channel to close", || ch.wait_close())?;
        let status = ch
            .exit_status()
            .map_err(|e| OpError::Ssh(format!("exit status: {e}")))?;
        Ok::<_, OpError>(status)
    })();
    if out.total() > out.head().len() as u64 {
        if out.dropped() > 0 {
            let _ = log.write_all(out.drop_marker().as_bytes());
        }
        let _ = log.write_all(out.tail());
    }
    match result {
        Ok(status) => {
            let _ = writeln!(log, "[exit {status}]");
            Ok(crate::shell::CmdOutput {
                output: crate::text::clean(&out.to_bytes()),
                status,
            })
        }
        Err(OpError::Stop(stop)) => {
            let closed = match channel.as_mut() {
                Some(ch) => close_channel(&conn.sess, conn.fd, ch),
                None => true,
            };
            let what = match stop {
                Stop::Deadline => format!("timeout after {secs} s"),
                Stop::Cancelled => "abandoned by the check".to_string(),
            };
            let after = if closed {
                "channel closed; session dropped, the next command connects again"
            } else {
                "channel did not close; session dropped, the next command connects again"
            };
            let _ = writeln!(log, "\n[{what}: {} bytes of output; {after}]", out.total());
            drop(channel);
            // A session whose command was stopped mid-output is not used again, even when
            // its channel closed: what the server still had queued for that channel can
            // hold up the next channel on the same connection (seen on a flood: the next
            // command got no byte within its 10 s in 2 of 15 runs on a busy machine). A
            // new session costs one handshake.
            if let Some(c) = slot.take() {
                c.discard();
            }
            match stop {
                Stop::Deadline => Err(SshError::Timeout {
                    cmd: cmd.to_string(),
                    secs,
                    bytes: out.total(),
                }),
                Stop::Cancelled => Err(SshError::Session("command abandoned".into())),
            }
        }
        Err(OpError::Ssh(e)) => {
            let _ = writeln!(log, "\n[error: {e}; session dropped]");
            drop(channel);
            if let Some(c) = slot.take() {
                c.discard();
            }
            Err(SshError::Session(e))
        }
    }
}

impl SshSession {
    /// Copies a local file to `remote` on the board through an exec channel (dropbear has
    /// no SFTP server), then checks the board's `sha256sum` of it against ours. Returns
    /// the hash. Done by `timeout` in all, like [`SshSession::exec`].
    pub async fn upload(
        &self,
        local: &Path,
        remote: &str,
        timeout: Duration,
    ) -> Result<String, SshError> {
        let deadline = deadline_after(timeout);
        let want = crate::hash::sha256_file(local)
            .map_err(|e| SshError::Session(format!("{}: {e}", local.display())))?;
        let data = std::fs::read(local)
            .map_err(|e| SshError::Session(format!("{}: {e}", local.display())))?;
        let conn = tokio::time::timeout(timeout, self.conn.clone().lock_owned())
            .await
            .map_err(|_| {
                SshError::Session(format!(
                    "upload to {remote}: the session was still busy after {} s",
                    timeout.as_secs()
                ))
            })?;
        let cancel = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(cancel.clone());
        let q = crate::shell::quote(remote).into_owned();
        let cmd = format!("cat > {q} && sha256sum {q}");
        let target = self.target.clone();
        let log = self.log.clone();
        let secs = timeout.as_secs();
        let label = format!(
            "upload of {} ({} bytes) to {remote}",
            local.display(),
            data.len()
        );
        let (out, status) = tokio::task::spawn_blocking(move || {
            let mut conn = conn;
            upload_blocking(
                &mut conn, &target, &cmd, &data, deadline, secs, &cancel, &log, &label,
            )
        })
        .await
        .map_err(|e| SshError::Session(e.to_string()))??;
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

#[allow(clippy::too_many_arguments)]
fn upload_blocking(
    slot: &mut Option<Conn>,
    target: &SshTarget,
    cmd: &str,
    data: &[u8],
    deadline: Instant,
    secs: u64,
    cancel: &AtomicBool,
    log: &Mutex<std::fs::File>,
    label: &str,
) -> Result<(String, i32), SshError> {
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(log, "$ {cmd}   # {label}");
    let conn = ensure_connected(slot, target, deadline, secs, cancel, &mut log)?;
    let p = Pass {
        sess: &conn.sess,
        fd: conn.fd,
        deadline,
        cancel,
    };
    let mut out = BoundedOutput::new(4096, 4096);
    let mut channel = None;
    let result = (|| {
        let ch = channel.insert(p.retry("opening a channel", || conn.sess.channel_session())?);
        p.retry("exec", || ch.exec(cmd))?;
        let mut sent = 0;
        while sent < data.len() {
            p.check()?;
            match ch.write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => p.wait()?,
                Err(e) => return Err(OpError::Ssh(format!("sending: {e}"))),
            }
        }
        p.retry("sending EOF", || ch.send_eof())?;
        let mut buf = vec![0u8; 4096];
        loop {
            match p.read(ch, &mut buf)? {
                Some(0) => break,
                Some(n) => {
                    out.push(&buf[..n]);
                }
                None => {}
            }
        }
        p.retry("waiting for the channel to close", || ch.wait_close())?;
        let status = ch
            .exit_status()
            .map_err(|e| OpError::Ssh(format!("exit status: {e}")))?;
        Ok::<_, OpError>(status)
    })();
    let text = String::from_utf8_lossy(&out.to_bytes()).into_owned();
    match result {
        Ok(status) => {
            let _ = write!(log, "{text}");
            let _ = writeln!(log, "[exit {status}]");
            Ok((text, status))
        }
        Err(e) => {
            let closed = match (&e, channel.as_mut()) {
                (OpError::Stop(_), Some(ch)) => close_channel(&conn.sess, conn.fd, ch),
                (OpError::Stop(_), None) => true,
                (OpError::Ssh(_), _) => false,
            };
            drop(channel);
            if !closed {
                if let Some(c) = slot.take() {
                    c.discard();
                }
            }
            let msg = match e {
                OpError::Stop(Stop::Deadline) => format!("did not finish within {secs} s"),
                OpError::Stop(Stop::Cancelled) => "abandoned".to_string(),
                OpError::Ssh(e) => e,
            };
            let _ = writeln!(log, "[{label}: {msg}]");
            Err(SshError::Session(format!("{label}: {msg}")))
        }
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
        let deadline = deadline_after(timeout);
        let sess = loop {
            let t = self.clone();
            match tokio::task::spawn_blocking(move || t.connect_once(deadline))
                .await
                .map_err(|e| SshError::Session(e.to_string()))?
            {
                Ok(c) => break c.sess,
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
        // Opening the channel is a blocking call too: bounded by what is left of `timeout`.
        sess.set_timeout(timeout_ms(
            deadline.saturating_duration_since(Instant::now()),
        ));
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
        // The thread answers by then (the channel open times out); a little slack for it.
        let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(2);
        tokio::task::spawn_blocking(move || rx.recv_timeout(wait))
            .await
            .map_err(|e| SshError::Session(e.to_string()))?
            .map_err(|e| SshError::Session(format!("opening the stream: {e}")))??;
        Ok(ours)
    }
}

/// Copies both ways between an SSH channel and a local socket until either ends.
/// libssh2 is used non-blocking here: one thread serves both directions.
fn pump(sess: &ssh2::Session, mut ch: ssh2::Channel, sock: std::os::unix::net::UnixStream) {
    use std::io::ErrorKind;
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

    #[test]
    fn bounded_output_keeps_head_and_tail_and_counts_the_rest() {
        let mut b = BoundedOutput::new(4, 3);
        assert_eq!(b.push(b"ab"), 2);
        assert_eq!(b.push(b"cdef"), 2, "only what fits in the head is streamed");
        assert_eq!(
            b.to_bytes(),
            b"abcdef",
            "nothing dropped yet: all kept, no marker"
        );
        for chunk in [&b"ghij"[..], b"k", b"lmnopq"] {
            assert_eq!(b.push(chunk), 0);
        }
        assert_eq!(b.total(), 17);
        assert_eq!(b.head(), b"abcd");
        assert_eq!(b.tail(), b"opq");
        assert_eq!(b.dropped(), 10, "e..n");
        let text = String::from_utf8(b.to_bytes()).unwrap();
        assert!(
            text.starts_with("abcd\n[hil: 10 bytes of output dropped here"),
            "{text}"
        );
        assert!(text.ends_with("bytes are kept]\nopq"), "{text}");
    }

    #[test]
    fn bounded_output_memory_stays_bounded() {
        let mut b = BoundedOutput::new(OUTPUT_HEAD, OUTPUT_TAIL);
        let line = b"hil-flood-line\n".repeat(2200); // 33 KiB, one SSH read's worth
        let mut n = 0u64;
        while n < 64 * 1024 * 1024 {
            b.push(&line);
            n += line.len() as u64;
            assert!(b.tail.len() <= 2 * OUTPUT_TAIL + line.len());
        }
        assert_eq!(b.total(), n);
        assert_eq!(b.head().len(), OUTPUT_HEAD);
        assert_eq!(b.tail().len(), OUTPUT_TAIL);
        assert_eq!(b.dropped(), n - (OUTPUT_HEAD + OUTPUT_TAIL) as u64);
        assert!(b.to_bytes().len() < OUTPUT_HEAD + OUTPUT_TAIL + 200);
    }

    /// A listener that accepts and never speaks (a board whose sshd hangs, or a slirp
    /// forward to a guest that never answers): libssh2 would wait 15 s for the banner of
    /// each attempt; the connect limit bounds the whole call instead.
    #[tokio::test]
    async fn connect_to_a_silent_server_ends_at_its_limit() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for c in listener.incoming().flatten() {
                held.push(c); // open, silent
            }
        });
        let target = SshTarget {
            host: "127.0.0.1".into(),
            port,
            user: "root".into(),
            identity: PathBuf::from("/nonexistent/key"),
            host_key: vec![0; 32],
        };
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let e = match target
            .connect(Duration::from_millis(1500), &dir.path().join("ssh.log"))
            .await
        {
            Ok(_) => panic!("connected to a silent server"),
            Err(e) => e,
        };
        let took = t.elapsed();
        assert!(matches!(e, SshError::Unreachable { .. }), "{e}");
        // libssh2 measures its timeout in whole seconds: up to 1 s late.
        assert!(took < Duration::from_secs(4), "{took:?}: {e}");
        let t = Instant::now();
        let e = target
            .open_stream(StreamKind::Tcp(4444), Duration::from_millis(1500))
            .await
            .unwrap_err();
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "{:?}: {e}",
            t.elapsed()
        );
    }
}
