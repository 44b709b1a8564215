//! The remote sim lab, set up as a lab publishes a board on an exporter host, by the real
//! programs: a relay standing for the board's USB-serial adapter (a pty that exists
//! whether the board is on or off), Debian's ser2net exporting that pty in RFC 2217 mode
//! (127.0.0.2:15001) and raw (127.0.0.2:15002), and Debian's pdudaemon (127.0.0.2:16421)
//! whose `localcmdline` PDU `sim-lab` runs `hil lab up` / `hil lab down` of
//! `boards/sim-rk3588-exported.toml`. `boards/sim-rk3588-remote.toml` names only those
//! addresses. Everything is stopped by PID when the [`RemoteLab`] is dropped, also when a
//! test fails; the board's QEMU is taken down with `hil lab down`, else killed by the PID
//! its `up` recorded.

use crate::common::*;
use hil::console::ser2net::Ser2net;
use hil::power::pdudaemon::daemon::PduDaemon;
use std::ffi::CStr;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub const REMOTE: &str = "sim-rk3588-remote";
pub const EXPORTED: &str = "sim-rk3588-exported";
/// The loopback address standing for the exporter host.
pub const EXPORTER: &str = "127.0.0.2";
pub const RFC2217_PORT: u16 = 15001;
pub const PDU_PORT: u16 = 16421;

/// Serves QEMU's console socket and exposes it as a pty at `link`. Dropping it (or
/// [`Relay::kill`]) removes the link and closes the pty and the socket at once, as
/// unplugging an adapter does.
pub struct Relay {
    link: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    pub fn start(sock: &Path, link: &Path) -> Relay {
        let _ = std::fs::remove_file(sock);
        let listener = UnixListener::bind(sock).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (master, slave) = raw_pty();
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(&slave, link).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || relay(listener, master, &s));
        Relay {
            link: link.to_path_buf(),
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.link);
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A pty master (non-blocking) and its slave's path, raw from the start: a cooked pty
/// would echo the board's output back into the board. Close-on-exec, or hil and its QEMU
/// would inherit the master and the pty would outlive the relay.
fn raw_pty() -> (File, String) {
    // SAFETY: plain pty and termios calls, each checked; ptsname_r NUL-terminates `name`.
    unsafe {
        let m =
            libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC);
        assert!(m >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
        let s = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        assert!(s >= 0);
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(s, &mut t), 0);
        libc::cfmakeraw(&mut t);
        assert_eq!(libc::tcsetattr(s, libc::TCSANOW, &t), 0);
        libc::close(s);
        let slave = CStr::from_ptr(name.as_ptr()).to_str().unwrap().to_string();
        (File::from_raw_fd(m), slave)
    }
}

fn relay(listener: UnixListener, mut master: File, stop: &AtomicBool) {
    let mut conn: Option<UnixStream> = None;
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            if let Ok((c, _)) = listener.accept() {
                c.set_nonblocking(true).unwrap();
                conn = Some(c);
            }
        }
        let mut fds = vec![libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(c) = &conn {
            fds.push(libc::pollfd {
                fd: c.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: `fds` is a valid array of pollfd for the length given.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) };
        let mut moved = false;
        // board → exporter; without a connection QEMU is not sending anything anyway
        if let Some(c) = conn.as_mut() {
            match c.read(&mut buf) {
                Ok(0) => conn = None, // QEMU went away (powered off); wait for the next one
                Ok(n) => {
                    write_fully(&mut master, &buf[..n], stop);
                    moved = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => conn = None,
            }
        }
        // exporter → board; EIO while nobody holds the slave open
        match master.read(&mut buf) {
            Ok(n) if n > 0 => {
                if let Some(c) = conn.as_mut() {
                    write_fully(c, &buf[..n], stop);
                }
                moved = true;
            }
            _ => {}
        }
        if !moved {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn write_fully(w: &mut impl Write, mut data: &[u8], stop: &AtomicBool) {
    while !data.is_empty() && !stop.load(Ordering::Relaxed) {
        match w.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(_) => return,
        }
    }
}

/// The exporter host of the remote sim board. Fields drop in reverse order of start:
/// pdudaemon, then ser2net, then the relay (the board is taken down first, in `drop`).
pub struct RemoteLab {
    pub pdu: Option<PduDaemon>,
    pub ser2net: Option<Ser2net>,
    _relay: Relay,
    /// The exported board's directory (its console socket, link and lab-up state).
    pub board_dir: PathBuf,
    pub dir: PathBuf,
    /// ser2net's RFC 2217 port (raw TCP is the next one).
    port: u16,
}

impl RemoteLab {
    /// Builds the sim lab and the exported board's files (its host key is pinned in the
    /// remote board file), then starts the relay, ser2net and, if `with_pdu`, pdudaemon.
    pub fn start(name: &str, with_pdu: bool) -> RemoteLab {
        RemoteLab::start_on(name, RFC2217_PORT, with_pdu)
    }

    /// As [`RemoteLab::start`], ser2net's RFC 2217 export on `port` (raw on the next).
    pub fn start_on(name: &str, port: u16, with_pdu: bool) -> RemoteLab {
        let o = run(hil().args(["lab", "build", EXPORTED]));
        assert!(o.status.success(), "hil lab build: {}", stderr(&o));
        let board_dir = hil::lab::cache_root()
            .unwrap()
            .join("boards")
            .join(EXPORTED);
        let dir = std::env::temp_dir().join(format!("hil-remote-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A QEMU left by an earlier test of this process would hold SSH's port.
        let _ = run(hil().args(["lab", "down", EXPORTED]));
        let relay = Relay::start(&board_dir.join("console.sock"), &tty(&board_dir));
        let ser2net = Some(start_ser2net(&board_dir, port));
        let pdu = with_pdu.then(|| start_pdudaemon(&dir));
        RemoteLab {
            pdu,
            ser2net,
            _relay: relay,
            board_dir,
            dir,
            port,
        }
    }

    /// Kills ser2net (both exports) and starts it again on the same ports, as a lab's
    /// exporter service is restarted.
    pub fn restart_ser2net(&mut self, down_for: Duration) {
        self.ser2net = None;
        std::thread::sleep(down_for);
        self.ser2net = Some(start_ser2net(&self.board_dir, self.port));
    }

    /// The PID of the board's QEMU while `hil lab up` has it running.
    pub fn qemu_pid(&self) -> Option<i32> {
        let st: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.board_dir.join("lab-up.json")).ok()?)
                .ok()?;
        let pid = st["pid"].as_i64()? as i32;
        // SAFETY: signal 0 only checks that the process exists.
        (pid > 0 && unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
    }

    /// What pdudaemon's `hil lab up` / `down` commands printed.
    pub fn power_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("power.log")).unwrap_or_default()
    }
}

impl Drop for RemoteLab {
    fn drop(&mut self) {
        self.pdu = None;
        let _ = run(hil().args(["lab", "down", EXPORTED]));
        if let Some(pid) = self.qemu_pid() {
            // SAFETY: the QEMU that pdudaemon's `hil lab up` started for this test, alive.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        self.ser2net = None;
    }
}

fn tty(board_dir: &Path) -> PathBuf {
    board_dir.join("console-tty")
}

fn start_ser2net(board_dir: &Path, port: u16) -> Ser2net {
    Ser2net::start_exports(
        EXPORTER,
        &[("telnet(rfc2217)", port), ("tcp", port + 1)],
        &tty(board_dir),
    )
    .unwrap_or_else(|e| panic!("{e:#} (.ci/run installs ser2net)"))
}

/// pdudaemon with PDU `sim-lab`: outlet 1 on is `hil lab up` of the exported board, off
/// is `hil lab down`; what they print goes to `power.log`.
fn start_pdudaemon(dir: &Path) -> PduDaemon {
    let hil_cmd = |verb: &str| {
        format!(
            // pdudaemon fills in the outlet with `%s` and insists on one
            ": outlet %s; cd '{}' && HIL_LEASE_DIR='{}' '{}' lab {verb} {EXPORTED} >> '{}' 2>&1",
            repo().display(),
            test_lease_dir().display(),
            env!("CARGO_BIN_EXE_hil"),
            dir.join("power.log").display()
        )
    };
    let pdus = serde_json::json!({
        "sim-lab": {"driver": "localcmdline", "cmd_on": hil_cmd("up"), "cmd_off": hil_cmd("down")}
    });
    PduDaemon::start(dir, EXPORTER, PDU_PORT, pdus).unwrap_or_else(|e| panic!("{e:#}"))
}
