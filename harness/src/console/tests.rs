//! The broker over real ptys: a transport that vanishes and comes back under the same
//! link, one that never comes back, and hostile output (noise, invalid UTF-8, NUL bytes,
//! an endless line) pushed through broker, log and expect engine together.

use super::*;
use crate::expect::{linux_death_patterns, ExpectError, Expecter};
use regex::bytes::Regex;
use std::ffi::CStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::time::Instant;

/// A pty pair standing in for a USB-serial adapter: the test holds the master (the
/// "board" side); hil opens the slave through a symlink, as through /dev/serial/by-id.
struct Adapter {
    master: File,
}

impl Adapter {
    fn plug(link: &Path) -> Adapter {
        // SAFETY: plain pty calls; every return value is checked; `name` is NUL-terminated
        // by ptsname_r.
        let (master, slave) = unsafe {
            let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            assert!(m >= 0, "posix_openpt");
            assert_eq!(libc::grantpt(m), 0);
            assert_eq!(libc::unlockpt(m), 0);
            let mut name = [0 as libc::c_char; 128];
            assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
            let slave = CStr::from_ptr(name.as_ptr()).to_str().unwrap().to_string();
            // Raw before anyone writes: a cooked pty would echo board output back at it.
            let s = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
            assert!(s >= 0);
            let mut t: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(s, &mut t), 0);
            libc::cfmakeraw(&mut t);
            assert_eq!(libc::tcsetattr(s, libc::TCSANOW, &t), 0);
            libc::close(s);
            (File::from_raw_fd(m), slave)
        };
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(&slave, link).unwrap();
        Adapter { master }
    }

    /// Re-enumeration, first half: the link goes, then the device node with the master.
    fn unplug(self, link: &Path) {
        std::fs::remove_file(link).unwrap();
        drop(self.master);
    }

    /// Everything hil typed at the board, waiting until `needle` is in it.
    fn read_until(&mut self, needle: &[u8], limit: Duration) -> Vec<u8> {
        // SAFETY: fcntl on the master fd we own.
        unsafe {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&self.master);
            libc::fcntl(
                fd,
                libc::F_SETFL,
                libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
            );
        }
        let deadline = Instant::now() + limit;
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        while !got.windows(needle.len()).any(|w| w == needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not typed within {limit:?}; got {got:?}"
            );
            match self.master.read(&mut b) {
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        got
    }
}

fn re(s: &str) -> Regex {
    Regex::new(s).unwrap()
}

fn log_text(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned()
}

struct Bench {
    _dir: tempfile::TempDir,
    link: PathBuf,
    log: PathBuf,
}

fn bench() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    Bench {
        link: dir.path().join("usb-FTDI_hil-if00-port0"),
        log: dir.path().join("console.log"),
        _dir: dir,
    }
}

fn open(b: &Bench, reopen: Option<Duration>) -> Console {
    Console::open(b.link.to_str().unwrap(), 115_200, reopen, &b.log, "test").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_adapter_is_reopened_and_the_gap_logged() {
    let b = bench();
    let mut adapter = Adapter::plug(&b.link);
    let console = open(&b, Some(Duration::from_secs(10)));
    let mut exp = Expecter::new(console.subscribe(), linux_death_patterns());
    adapter.master.write_all(b"before the gap\r\n").unwrap();
    exp.expect(&[&re("before the gap")], Duration::from_secs(5))
        .await
        .unwrap();

    adapter.unplug(&b.link);
    // Typed while the adapter is gone: held, not lost.
    console.send("typed-in-the-gap\r");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(console.closed_reason(), None, "still waiting, not closed");
    // A new pty (the kernel may give it the old number, as re-enumeration may).
    let mut adapter = Adapter::plug(&b.link);

    let typed = tokio::task::spawn_blocking(move || {
        let t = adapter.read_until(b"typed-in-the-gap\r", Duration::from_secs(10));
        (adapter, t)
    });
    let (mut adapter, typed) = typed.await.unwrap();
    assert_eq!(typed, b"typed-in-the-gap\r");
    // The same reader goes on across the gap.
    adapter.master.write_all(b"after the gap\r\n").unwrap();
    let m = exp
        .expect(&[&re("after the gap")], Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&m.before).contains("hil:"),
        "notes stay out of the stream"
    );
    assert_eq!(console.gaps(), 1);
    assert_eq!(console.closed_reason(), None);

    let log = log_text(&b.log);
    let lost = log.find("### hil: console transport lost (").expect(&log);
    let gap = log.find("### hil: console gap: ").expect(&log);
    let sent = log
        .find("### hil: sending 17 bytes typed while")
        .expect(&log);
    let after = log.find("after the gap").unwrap();
    assert!(
        log.find("before the gap").unwrap() < lost && lost < gap && gap < sent && sent < after,
        "{log}"
    );
    let secs: f64 = log[gap + 22..].split(' ').next().unwrap().parse().unwrap();
    assert!((1.0..10.0).contains(&secs), "gap of {secs} s: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_that_never_returns_closes_the_console_after_the_limit() {
    let b = bench();
    let adapter = Adapter::plug(&b.link);
    let console = open(&b, Some(Duration::from_millis(700)));
    let mut exp = Expecter::new(console.subscribe(), vec![]);
    let gone = Instant::now();
    adapter.unplug(&b.link);
    console.send("never-sent");
    let e = exp
        .expect(&[&re("x")], Duration::from_secs(10))
        .await
        .unwrap_err();
    let waited = gone.elapsed();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    match e {
        ExpectError::Closed { reason, .. } => {
            assert!(reason.starts_with("console closed ("), "{reason}");
            assert!(reason.contains("did not come back within 0 s"), "{reason}");
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    let log = log_text(&b.log);
    assert!(
        log.contains("10 bytes typed while the console transport was away were never sent"),
        "{log}"
    );
    assert!(log.contains("### hil: console closed ("), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reopen_a_lost_transport_closes_at_once() {
    let b = bench();
    let adapter = Adapter::plug(&b.link);
    let console = open(&b, None);
    let mut exp = Expecter::new(console.subscribe(), vec![]);
    adapter.unplug(&b.link);
    let e = exp.expect(&[&re("x")], Duration::from_secs(5)).await;
    assert!(matches!(e, Err(ExpectError::Closed { .. })), "{e:?}");
    assert!(!log_text(&b.log).contains("waiting up to"));
}

/// 8 MiB without a newline, NULs, invalid UTF-8 and random noise: nothing panics or
/// stalls, the log keeps every byte with one timestamp per line, and the next prompt
/// still matches promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_output_neither_crashes_nor_stalls_and_later_patterns_match() {
    const ENDLESS: usize = 8 << 20;
    let b = bench();
    let mut adapter = Adapter::plug(&b.link);
    let console = open(&b, Some(Duration::from_secs(5)));
    let mut exp = Expecter::new(console.subscribe(), linux_death_patterns());

    let mut noise = vec![0u8; 256 * 1024];
    let mut x: u32 = 0x1234_5678; // xorshift: reproducible noise with every byte value
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = (x >> 24) as u8;
    }
    // Noise must not contain the end marker or a death pattern by chance.
    assert!(!noise.windows(4).any(|w| w == b"END-"));
    let writer = std::thread::spawn(move || {
        let m = &mut adapter.master;
        m.write_all(b"\r\nnul:\0\0\0 bad-utf8:\xff\xfe\xc3\x28 \xed\xa0\x80\r\n")
            .unwrap();
        m.write_all(&noise).unwrap();
        m.write_all(b"\r\n").unwrap();
        let chunk = vec![b'A'; 64 * 1024];
        for _ in 0..ENDLESS / chunk.len() {
            m.write_all(&chunk).unwrap();
        }
        m.write_all(b"\r\nEND-OF-FLOOD\r\n/ # ").unwrap();
        adapter
    });
    let started = Instant::now();
    let m = exp
        .expect(&[&re(r"END-OF-FLOOD\r\n/ # $")], Duration::from_secs(120))
        .await
        .unwrap();
    let took = started.elapsed();
    let _adapter = writer.join().unwrap();
    assert!(
        m.before.len() <= 1 << 20,
        "expect window stays bounded: {}",
        m.before.len()
    );
    assert!(took < Duration::from_secs(60), "flood took {took:?}");
    // The console still works in both directions after the flood.
    console.send("echo ok\r");
    let mut adapter = _adapter;
    let typed = tokio::task::spawn_blocking(move || {
        adapter.read_until(b"echo ok\r", Duration::from_secs(10))
    });
    assert_eq!(typed.await.unwrap(), b"echo ok\r");

    let total = 8 + 3 + 11 + 7 + 2 + 256 * 1024 + 2 + ENDLESS + 2 + 14 + 4;
    assert!(
        console.received() >= total as u64 - 8,
        "received {}",
        console.received()
    );
    let raw = std::fs::read(&b.log).unwrap();
    assert!(
        raw.windows(5).any(|w| w == b":\0\0\0 "),
        "NULs logged as they came"
    );
    assert!(
        raw.windows(4).any(|w| w == b"\xff\xfe\xc3\x28"),
        "invalid UTF-8 logged as it came"
    );
    let long_line = raw
        .split(|b| *b == b'\n')
        .find(|l| l.len() > ENDLESS)
        .expect("the endless line is one log line");
    assert_eq!(long_line.iter().filter(|b| **b == b'A').count(), ENDLESS);
    assert_eq!(
        long_line.windows(2).filter(|w| w == b"[+").count(),
        1,
        "one timestamp"
    );
    assert!(String::from_utf8_lossy(&raw).contains("] END-OF-FLOOD\r"));
    eprintln!(
        "flood of {} MiB through pty, broker, log and expect in {took:?}",
        total >> 20
    );
}

/// Bursts large enough to count as streaming (the transport then stops at FIONREAD = 0
/// instead of reading to EAGAIN), each ending in a marker and followed by silence: every
/// marker must arrive. Stopping while bytes were still readable would leave the end of a
/// burst unread until the board printed again (here: never, the test waits for it first).
async fn bursts_each_read_to_their_end(canonical: bool) {
    let b = bench();
    let adapter = Adapter::plug(&b.link);
    let console = open(&b, None);
    if canonical {
        // A tty in canonical mode returns one line per read(), so a round of reads stops
        // with more lines still readable and no new wake-up coming: only FIONREAD knows.
        let tty = File::options().read(true).open(&b.link).unwrap();
        // SAFETY: termios calls on an fd we own; the struct is fully written by tcgetattr.
        unsafe {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&tty);
            let mut t: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(fd, &mut t), 0);
            t.c_lflag |= libc::ICANON;
            assert_eq!(libc::tcsetattr(fd, libc::TCSANOW, &t), 0);
        }
    }
    let mut exp = Expecter::new(console.subscribe(), linux_death_patterns());
    let (go_tx, go_rx) = std::sync::mpsc::channel::<usize>();
    let writer = std::thread::spawn(move || {
        let mut m = adapter.master;
        let mut written = 0u64;
        let line = "x".repeat(62) + "\r\n";
        while let Ok(round) = go_rx.recv() {
            // 13..77 KiB: one write() per line as a console prints, or the whole burst in
            // one write(), the marker last either way.
            let mut burst = line.repeat(200 + round * 97 % 1000);
            burst.push_str(&format!("round {round} done\r\n"));
            if round % 2 == 0 {
                for l in burst.split_inclusive('\n') {
                    m.write_all(l.as_bytes()).unwrap();
                }
            } else {
                m.write_all(burst.as_bytes()).unwrap();
            }
            written += burst.len() as u64;
        }
        (m, written)
    });
    for round in 0..40 {
        go_tx.send(round).unwrap();
        let want = re(&format!(r"round {round} done"));
        exp.expect(&[&want], Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    drop(go_tx);
    let (_master, written) = writer.join().unwrap();
    assert_eq!(
        console.received(),
        written,
        "every byte written was received"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_burst_is_read_to_its_end_before_the_console_goes_quiet() {
    bursts_each_read_to_their_end(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canonical_tty_streaming_a_line_per_read_is_read_to_its_end() {
    bursts_each_read_to_their_end(true).await;
}
