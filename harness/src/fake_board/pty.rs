//! The pty pair between hil's console and the fake board: the slave is the "serial
//! device" hil opens by path, the master is the board's UART.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub struct Pty {
    pub master: OwnedFd,
    /// Held open by the power backend while the board is armed, so the master never sees
    /// a hang-up when hil's console closes and reopens the slave.
    pub slave: OwnedFd,
    pub path: String,
}

impl Pty {
    /// A new pair, both ends close-on-exec (commands the fake runs on this machine must not
    /// inherit the board's console) and the slave in raw mode, as QEMU leaves its pty.
    pub fn open() -> io::Result<Pty> {
        // SAFETY: posix_openpt returns a new fd or -1; ownership passes to OwnedFd.
        let master = unsafe {
            let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            OwnedFd::from_raw_fd(fd)
        };
        let m = master.as_raw_fd();
        // SAFETY: plain calls on the valid master fd; the name buffer outlives ptsname_r.
        let path = unsafe {
            if libc::grantpt(m) != 0 || libc::unlockpt(m) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut name = [0 as libc::c_char; 128];
            if libc::ptsname_r(m, name.as_mut_ptr(), name.len()) != 0 {
                return Err(io::Error::last_os_error());
            }
            CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned()
        };
        let cpath = std::ffi::CString::new(path.clone()).map_err(io::Error::other)?;
        // SAFETY: open of a NUL-terminated path; the fd returned is owned by us.
        let slave = unsafe {
            let fd = libc::open(
                cpath.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            OwnedFd::from_raw_fd(fd)
        };
        // SAFETY: termios calls on the valid slave fd with a zeroed struct filled by tcgetattr.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(slave.as_raw_fd(), &mut t) == 0 {
                libc::cfmakeraw(&mut t);
                libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t);
            }
        }
        Ok(Pty {
            master,
            slave,
            path,
        })
    }
}
