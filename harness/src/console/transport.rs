//! Opening a console transport as a non-blocking fd that tokio can poll.
//!
//! A serial device (USB-serial on a real board, the pty QEMU makes in the sim) is opened
//! with `serialport` — the same code for both — then handed to tokio's `AsyncFd`. A
//! network console (`rfc2217://`, `telnet://`, `tcp://`) is a TCP connection; for the two
//! telnet kinds every byte passes the [`super::telnet`] codec on the way in and out.

use super::telnet::{self, Telnet};
use crate::config::board::{NetConsole, NetProto};
use crate::config::serial_line::{Flow, Parity, SerialLine};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;

pub struct Transport {
    inner: Inner,
}

enum Inner {
    Fd(AsyncFd<OwnedFd>),
    /// Boxed: the telnet codec's option tables are most of it.
    Net(Box<Net>),
}

/// How long one connection attempt may take, and then the telnet negotiation.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an RFC 2217 break lasts (SysRq needs a break, then the key, within 5 s).
const BREAK_LENGTH: Duration = Duration::from_millis(250);

struct Net {
    stream: TcpStream,
    /// `host:port`, for errors.
    addr: String,
    /// `None` for raw `tcp://`.
    telnet: Option<Mutex<Codec>>,
}

struct Codec {
    telnet: Telnet,
    /// Board output that arrived during the opening negotiation, handed out first.
    early: Vec<u8>,
    /// Replies not yet written (the socket was full; they go before the next write).
    unsent: Vec<u8>,
}

impl Transport {
    /// Opens `path` raw with `line`'s settings, exclusive (a second hil cannot steal the
    /// console).
    pub fn open_serial(path: &str, line: SerialLine) -> io::Result<Transport> {
        let port = serialport::new(path, line.baud)
            .data_bits(match line.data_bits {
                5 => serialport::DataBits::Five,
                6 => serialport::DataBits::Six,
                7 => serialport::DataBits::Seven,
                _ => serialport::DataBits::Eight,
            })
            .parity(match line.parity {
                Parity::None => serialport::Parity::None,
                Parity::Odd => serialport::Parity::Odd,
                Parity::Even => serialport::Parity::Even,
            })
            .stop_bits(match line.stop_bits {
                2 => serialport::StopBits::Two,
                _ => serialport::StopBits::One,
            })
            .flow_control(match line.flow {
                Flow::None => serialport::FlowControl::None,
                Flow::XonXoff => serialport::FlowControl::Software,
                Flow::RtsCts => serialport::FlowControl::Hardware,
            })
            .timeout(std::time::Duration::from_millis(0))
            .open_native()
            .map_err(|e| io::Error::other(format!("cannot open console {path}: {e}")))?;
        // SAFETY: into_raw_fd transfers ownership of a valid open fd to us.
        let fd = unsafe { OwnedFd::from_raw_fd(port.into_raw_fd()) };
        set_nonblocking(&fd)?;
        // SAFETY: we own `fd` exclusively (OwnedFd) and it stays open while registered.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(Transport {
            inner: Inner::Fd(fd),
        })
    }

    /// Wraps an already open stream (an SSH channel bridged to a socket).
    pub fn from_fd(fd: OwnedFd) -> io::Result<Transport> {
        set_nonblocking(&fd)?;
        // SAFETY: we own `fd` exclusively (OwnedFd) and it stays open while registered.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(Transport {
            inner: Inner::Fd(fd),
        })
    }

    /// Reads everything available now, up to `buf.len()`; `Ok(0)` means end of stream. A
    /// pty whose other side closed reports EIO, which is returned as an error for the
    /// caller to classify.
    ///
    /// "Available now" is found in one of two ways. A console that trickles (a board at
    /// its baud rate) is read until `read` says EAGAIN: on a tty, that last read first
    /// waits for the kernel's flush worker to hand over what it still holds, so one wake
    /// collects a whole burst. A console that streams (this round already brought
    /// [`STREAMING`] bytes or more) is asked `FIONREAD` instead: the waiting read would
    /// put this runtime worker to sleep on every round while the flush worker runs, and
    /// every other console on the worker with it. Measured in `hil bench`: with the check,
    /// a streaming console cost 8–25% less CPU per MiB; asked of every console, it made
    /// 1024 trickling ones cost 1.10–1.22 cores against 0.97–0.98, so they keep the
    /// waiting read. Bytes that arrive after either check wake the fd again.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.inner {
            Inner::Fd(fd) => read_fd(fd, buf).await,
            Inner::Net(n) => n.read(buf).await,
        }
    }

    pub async fn write_all(&self, data: &[u8]) -> io::Result<()> {
        match &self.inner {
            Inner::Fd(fd) => write_fd(fd, data).await,
            Inner::Net(n) => n.write_all(data).await,
        }
    }

    /// Sends a break (a serial line held low: magic SysRq on Linux). On a tty,
    /// `tcsendbreak`; over RFC 2217, SET-CONTROL break on then off; over telnet, `IAC BRK`.
    /// A raw `tcp://` console cannot: `Unsupported`.
    pub async fn send_break(&self) -> io::Result<()> {
        match &self.inner {
            Inner::Fd(fd) => {
                // SAFETY: tcsendbreak on a valid fd we own.
                if unsafe { libc::tcsendbreak(fd.get_ref().as_raw_fd(), 0) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            }
            Inner::Net(n) => n.send_break().await,
        }
    }

    /// Connects to a network console and, for telnet, negotiates: BINARY and SGA both
    /// ways; for RFC 2217 also COM-PORT-OPTION, setting the exporter's line to `line` (a
    /// setting the server reports back otherwise is an error naming both). Gives up after
    /// `within` (at most [`CONNECT_TIMEOUT`] per phase).
    pub async fn connect(
        net: &NetConsole,
        line: SerialLine,
        within: Duration,
    ) -> io::Result<Transport> {
        let addr = net.addr();
        let limit = within.min(CONNECT_TIMEOUT);
        let stream =
            match tokio::time::timeout(limit, TcpStream::connect((net.host.as_str(), net.port)))
                .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot connect to {addr}: {e}"),
                    ))
                }
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "cannot connect to {addr}: no answer within {} s",
                            limit.as_secs_f64()
                        ),
                    ))
                }
            };
        stream.set_nodelay(true)?;
        set_keepalive(&stream)?;
        let mode = match net.proto {
            NetProto::Tcp => {
                return Ok(Transport {
                    inner: Inner::Net(Box::new(Net {
                        stream,
                        addr,
                        telnet: None,
                    })),
                })
            }
            NetProto::Telnet => telnet::Mode::Telnet,
            NetProto::Rfc2217 => telnet::Mode::Rfc2217 { line },
        };
        let net = Net {
            stream,
            addr,
            telnet: Some(Mutex::new(Codec {
                telnet: Telnet::new(mode),
                early: Vec::new(),
                unsent: Vec::new(),
            })),
        };
        net.flush_replies().await?;
        if matches!(mode, telnet::Mode::Rfc2217 { .. }) {
            match tokio::time::timeout(limit, net.negotiate()).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "ser2net at {} did not answer RFC 2217 COM-PORT-OPTION (44) within {} s: is the port in telnet(rfc2217) mode (a raw tcp accepter does not negotiate)?",
                            net.addr,
                            limit.as_secs_f64()
                        ),
                    ))
                }
            }
        }
        Ok(Transport {
            inner: Inner::Net(Box::new(net)),
        })
    }
}

impl Net {
    fn codec(&self) -> Option<std::sync::MutexGuard<'_, Codec>> {
        self.telnet
            .as_ref()
            .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn refused(&self, opt: u8) -> io::Error {
        io::Error::other(format!(
            "ser2net at {} refused RFC 2217 COM-PORT-OPTION ({opt}): is the port in telnet(rfc2217) mode?",
            self.addr
        ))
    }

    /// Reads until the server has agreed to COM-PORT-OPTION and answered the line
    /// settings (so it has the device open and set up); board output meanwhile is kept
    /// for the first [`Net::read`].
    async fn negotiate(&self) -> io::Result<()> {
        let mut buf = vec![0u8; 4096];
        loop {
            {
                let c = self.codec().expect("negotiate is for telnet");
                match c.telnet.com_port() {
                    Some(true) if c.telnet.line_set() => {
                        return match c.telnet.line_mismatch() {
                            None => Ok(()),
                            Some((what, asked, got)) => Err(io::Error::other(format!(
                                "{} set the line's {what} to {got} when asked for {asked} (RFC 2217 values): can its adapter do that?",
                                self.addr
                            ))),
                        }
                    }
                    Some(true) => {}
                    Some(false) => {
                        return Err(self.refused(c.telnet.refused().unwrap_or(telnet::OPT_COM_PORT)))
                    }
                    None => {}
                }
            }
            self.stream.readable().await?;
            let n = match self.stream.try_read(&mut buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} closed the connection during telnet negotiation (another client holds the port?)", self.addr),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            {
                let mut c = self.codec().expect("negotiate is for telnet");
                let m = c.telnet.decode_in_place(&mut buf[..n]);
                c.early.extend_from_slice(&buf[..m]);
                let out = c.telnet.take_output();
                c.unsent.extend(out);
            }
            self.flush_replies().await?;
        }
    }

    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(mut c) = self.codec() {
            if !c.early.is_empty() {
                let n = c.early.len().min(buf.len());
                buf[..n].copy_from_slice(&c.early[..n]);
                c.early.drain(..n);
                return Ok(n);
            }
        }
        loop {
            // Cancel-safe: nothing is read before `readable` returns, and nothing after
            // `try_read` awaits.
            self.stream.readable().await?;
            let n = match self.stream.try_read(buf) {
                Ok(0) => return Ok(0),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            let Some(mut c) = self.codec() else {
                return Ok(n);
            };
            let m = c.telnet.decode_in_place(&mut buf[..n]);
            if let Some(opt) = c.telnet.refused() {
                return Err(self.refused(opt));
            }
            let out = c.telnet.take_output();
            c.unsent.extend(out);
            self.try_flush(&mut c)?;
            if m > 0 {
                return Ok(m);
            }
        }
    }

    /// Writes queued replies as far as the socket takes them without waiting.
    fn try_flush(&self, c: &mut Codec) -> io::Result<()> {
        while !c.unsent.is_empty() {
            match self.stream.try_write(&c.unsent) {
                Ok(n) => {
                    c.unsent.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes every queued reply, waiting for room.
    async fn flush_replies(&self) -> io::Result<()> {
        let pending = match self.codec() {
            Some(mut c) => {
                let out = c.telnet.take_output();
                c.unsent.extend(out);
                std::mem::take(&mut c.unsent)
            }
            None => return Ok(()),
        };
        self.write_raw(&pending).await
    }

    async fn write_all(&self, data: &[u8]) -> io::Result<()> {
        if self.telnet.is_none() {
            return self.write_raw(data).await;
        }
        self.flush_replies().await?;
        self.write_raw(&telnet::escape(data)).await
    }

    async fn write_raw(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn send_break(&self) -> io::Result<()> {
        let Some((on, off)) = self.codec().map(|c| c.telnet.break_sequence()) else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "a raw tcp:// console ({}) cannot send a break; use rfc2217:// or telnet://",
                    self.addr
                ),
            ));
        };
        self.flush_replies().await?;
        self.write_raw(&on).await?;
        if !off.is_empty() {
            tokio::time::sleep(BREAK_LENGTH).await;
            self.write_raw(&off).await?;
        }
        Ok(())
    }
}

/// Keepalive probes after 5 s idle, every 2 s, 3 unanswered: a link that died without a
/// FIN or RST (exporter powered off, cable pulled) ends the read in about 11 s instead of
/// never, and the broker reconnects.
fn set_keepalive(stream: &TcpStream) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    let opts = [
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 5),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 2),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3),
    ];
    for (level, name, value) in opts {
        let v: libc::c_int = value;
        // SAFETY: setsockopt on a valid socket with a pointer to one c_int and its size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

async fn read_fd(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        let fd = guard.get_inner().as_raw_fd();
        let mut got = 0;
        let drained = loop {
            if got == buf.len() {
                break false;
            }
            let rest = &mut buf[got..];
            // SAFETY: rest is a valid writable buffer of rest.len() bytes.
            let n = unsafe { libc::read(fd, rest.as_mut_ptr().cast(), rest.len()) };
            if n > 0 {
                got += n as usize;
                if got >= STREAMING && got < buf.len() && pending(fd) == Some(0) {
                    break true;
                }
                continue;
            }
            let err = io::Error::last_os_error();
            if n < 0 && err.kind() == io::ErrorKind::WouldBlock {
                break true;
            }
            if n < 0 && err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if got > 0 {
                return Ok(got);
            }
            return if n == 0 { Ok(0) } else { Err(err) };
        };
        if drained {
            guard.clear_ready();
        }
        if got > 0 {
            return Ok(got);
        }
    }
}

async fn write_fd(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        match guard.try_io(|fd| {
            // SAFETY: data is a valid readable buffer of data.len() bytes.
            let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

/// Bytes a round of reads must bring before the transport counts as streaming: the size
/// of the Linux tty line discipline's buffer (`N_TTY_BUF_SIZE`): a round that got this
/// much has emptied that buffer at least once, so the writer is ahead of us.
const STREAMING: usize = 4096;

/// Bytes readable at once without waiting (`FIONREAD`; on a tty, what the line discipline
/// holds), or `None` if the fd cannot tell.
fn pending(fd: libc::c_int) -> Option<libc::c_int> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which is valid for it.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    (r == 0).then_some(n)
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: plain fcntl calls on a valid fd.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
