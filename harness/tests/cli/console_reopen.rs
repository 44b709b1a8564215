//! Console transport closed and reopened, end to end on the sim: the board's serial port
//! reaches hil through a relay (unix socket from QEMU → pty behind a by-id-like link), and
//! the test kills and restarts that relay in the middle of a check, as a USB-serial adapter
//! re-enumerates. Board: `tests/data/boards/sim-rk3588-relay.toml` (SSH port 10522).

use crate::common::*;
use crate::sim::*;
use std::ffi::CStr;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BOARD: &str = "sim-rk3588-relay";

/// Serves QEMU's console socket and exposes it as a pty at `link`. Dropping it (or
/// [`Relay::kill`]) removes the link and closes the pty and the socket at once, as
/// unplugging an adapter does; QEMU keeps retrying the socket every second.
struct Relay {
    link: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    fn start(sock: &Path, link: &Path) -> Relay {
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

    /// Takes the relay away (see [`Drop`]).
    fn kill(self) {}
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
        // board → hil; without a connection QEMU is not sending anything anyway
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
        // hil → board; EIO while nobody holds the slave open
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

/// Starts `hil run` of the console-gap suite on the relayed board, with the relay up.
fn start(name: &str) -> (Guard, PathBuf, PathBuf, Relay) {
    let out = out_dir(name);
    let run_dir = out.join("boards").join(BOARD);
    std::fs::create_dir_all(&run_dir).unwrap();
    let (sock, link) = (run_dir.join("console.sock"), run_dir.join("console-tty"));
    let relay = Relay::start(&sock, &link);
    let suite = data("suites/console-gap.toml");
    let (g, _rx) = spawn_hil(
        &[
            "run",
            suite.to_str().unwrap(),
            "--board",
            BOARD,
            "--out",
            out.to_str().unwrap(),
        ],
        &[("HIL_BOARDS", data("boards").to_str().unwrap())],
    );
    (g, out, run_dir, relay)
}

#[test]
fn console_transport_killed_and_restarted_mid_check_is_reopened_with_a_gap_marker() {
    let _l = lock();
    let (mut g, out, run_dir, relay) = start("reopen");
    let log_path = run_dir.join("console.log");
    wait_for_file_text(&log_path, "gap-start\r\n", BOOT_LIMIT);
    let (sock, link) = (run_dir.join("console.sock"), run_dir.join("console-tty"));
    relay.kill();
    assert!(!link.exists(), "the link is gone with the relay");
    std::thread::sleep(Duration::from_secs(2));
    let restarted = Instant::now();
    let _relay = Relay::start(&sock, &link);
    let code = wait_exit(&mut g, Duration::from_secs(300));
    eprintln!(
        "run ended {:?} after the relay came back",
        restarted.elapsed()
    );

    let results = read_json(&out.join("results.json"));
    assert_eq!(code, 0, "exit status; results: {results:#}");
    assert_eq!(results["complete"], true);
    for name in ["boot", "before", "across-gap", "after"] {
        assert_eq!(case(&results, BOARD, name)["outcome"], "pass", "{name}");
    }
    // The report says output was lost, not only the log.
    assert_eq!(
        results["boards"][0]["properties"]["console_gaps"], "1",
        "{results:#}"
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lost = log.find("### hil: console transport lost (").expect(&log);
    let gap = log.find("### hil: console gap: ").expect(&log);
    // the board's output lines, not the echoed command line that also names them
    let start = log.find("] gap-start\r").expect(&log);
    let end = log.find("] gap-end\r").expect(&log);
    assert!(start < lost && lost < gap && gap < end, "{log}");
    let secs: f64 = log[gap + 22..].split(' ').next().unwrap().parse().unwrap();
    assert!((1.5..10.0).contains(&secs), "gap of {secs} s");
    assert!(
        log.contains("still-42"),
        "the console takes input after the gap"
    );
    let cases = junit_consumer(&out.join("junit.xml"));
    for line in cases.lines() {
        assert!(line.split_whitespace().nth(1) == Some("pass"), "{cases}");
    }
    assert_eq!(cases.lines().count(), 4, "{cases}");
}

#[test]
fn console_transport_that_never_returns_is_an_infrastructure_error_after_the_limit() {
    let _l = lock();
    let (mut g, out, run_dir, relay) = start("reopen-never");
    let log_path = run_dir.join("console.log");
    wait_for_file_text(&log_path, "gap-start\r\n", BOOT_LIMIT);
    let killed = Instant::now();
    relay.kill();
    let code = wait_exit(&mut g, Duration::from_secs(120));
    let took = killed.elapsed();
    // reopen_timeout_s = 10 in the board file
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(40),
        "run ended {took:?} after the relay died"
    );
    assert_eq!(code, 3, "exit status for an infrastructure error");
    let results = read_json(&out.join("results.json"));
    assert_eq!(results["complete"], true);
    assert_eq!(case(&results, BOARD, "before")["outcome"], "pass");
    let c = case(&results, BOARD, "across-gap");
    assert_eq!(c["outcome"], "error:infrastructure", "{c}");
    let msg = c["message"].as_str().unwrap();
    assert!(
        msg.contains("console closed") && msg.contains("did not come back within 10 s"),
        "{msg}"
    );
    assert_eq!(case(&results, BOARD, "after")["outcome"], "skipped");
    let cases = junit_consumer(&out.join("junit.xml"));
    assert!(
        cases
            .lines()
            .any(|l| l.starts_with("across-gap Error:infrastructure")),
        "{cases}"
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("### hil: console transport lost (")
            && log.contains("### hil: console closed (")
            && !log.contains("console gap:"),
        "{log}"
    );
}
