//! Opening a console transport as a non-blocking fd that tokio can poll.
//!
//! A serial device (USB-serial on a real board, the pty QEMU makes in the sim) is opened
//! with `serialport` — the same code for both — then handed to tokio's `AsyncFd`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;

pub struct Transport {
    fd: AsyncFd<OwnedFd>,
}

impl Transport {
    /// Opens `path` at `baud`, raw 8N1, exclusive (a second hil cannot steal the console).
    pub fn open_serial(path: &str, baud: u32) -> io::Result<Transport> {
        let port = serialport::new(path, baud)
            .timeout(std::time::Duration::from_millis(0))
            .open_native()
            .map_err(|e| io::Error::other(format!("cannot open console {path}: {e}")))?;
        // SAFETY: into_raw_fd transfers ownership of a valid open fd to us.
        let fd = unsafe { OwnedFd::from_raw_fd(port.into_raw_fd()) };
        set_nonblocking(&fd)?;
        // SAFETY: we own `fd` exclusively (OwnedFd) and it stays open while registered.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(Transport { fd })
    }

    /// Wraps an already open stream (an SSH channel bridged to a socket).
    pub fn from_fd(fd: OwnedFd) -> io::Result<Transport> {
        set_nonblocking(&fd)?;
        // SAFETY: we own `fd` exclusively (OwnedFd) and it stays open while registered.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(Transport { fd })
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
        loop {
            let mut guard = self.fd.readable().await?;
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

    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
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
