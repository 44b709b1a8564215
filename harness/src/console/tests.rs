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
pub(super) struct Adapter {
    pub(super) master: File,
}

impl Adapter {
    pub(super) fn plug(link: &Path) -> Adapter {
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
    pub(super) fn read_until(&mut self, needle: &[u8], limit: Duration) -> Vec<u8> {
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

pub(super) fn log_text(p: &Path) -> String {
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

use super::ser2net::Ser2net;

fn ser2net_installed() -> bool {
    let found = super::ser2net::installed();
    if !found {
        eprintln!("SKIPPED: ser2net is not installed (apt-get install ser2net); the network console test against a real ser2net did not run");
    }
    found
}

fn free_port() -> u16 {
    super::ser2net::free_port().unwrap()
}

/// Board output from `rx` until it ends with `end`, failing after 10 s.
pub(super) async fn received_until(rx: &mut mpsc::UnboundedReceiver<Event>, end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !got.ends_with(end) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Event::Data(d))) => got.extend_from_slice(&d),
            Ok(Some(Event::Notice(_))) => {}
            other => panic!("waiting for {end:?}, got {got:?} then {other:?}"),
        }
    }
    got
}

/// Without RFC 2217 nothing says when ser2net has opened the device (what the board
/// printed before is not forwarded): "ready" lines until one comes through.
async fn wait_live(adapter: &mut Adapter, rx: &mut mpsc::UnboundedReceiver<Event>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while !got.windows(7).any(|w| w == b"ready\r\n") {
        assert!(
            Instant::now() < deadline,
            "ser2net forwarded nothing: {got:?}"
        );
        adapter.master.write_all(b"ready\r\n").unwrap();
        if let Ok(Some(Event::Data(d))) =
            tokio::time::timeout(Duration::from_millis(300), rx.recv()).await
        {
            got.extend_from_slice(&d);
        }
    }
    // The rest of what was written meanwhile.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc2217_console_through_real_ser2net_passes_0xff_once_and_survives_a_restart() {
    if !ser2net_installed() {
        return;
    }
    let b = bench();
    let mut adapter = Adapter::plug(&b.link);
    let port = free_port();
    let url = format!("rfc2217://127.0.0.1:{port}");
    let server = Ser2net::start("telnet(rfc2217)", port, &b.link).unwrap();
    let console = Console::open_device(&url, 115_200, Some(Duration::from_secs(10)), &b.log, "net")
        .await
        .unwrap();
    let mut rx = console.subscribe();

    // 0xFF from the board arrives once (ser2net doubles it, the codec undoes that); the
    // settings and notifications ser2net sends never show up as data.
    adapter
        .master
        .write_all(b"U-Boot \xff\xfe\xff\xff end\r\n")
        .unwrap();
    let got = received_until(&mut rx, b"end\r\n").await;
    assert_eq!(got, b"U-Boot \xff\xfe\xff\xff end\r\n");
    // Typed 0xFF reaches the board once too.
    console.send(b"typed\xff\r".to_vec());
    let typed = tokio::task::spawn_blocking(move || {
        let t = adapter.read_until(b"\r", Duration::from_secs(10));
        (adapter, t)
    });
    let (mut adapter, typed) = typed.await.unwrap();
    assert_eq!(typed, b"typed\xff\r");

    // ser2net restarts: the broker reconnects and logs one gap.
    drop(server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _server = Ser2net::start("telnet(rfc2217)", port, &b.link).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while console.gaps() == 0 {
        assert!(
            Instant::now() < deadline,
            "no reconnect: {}",
            log_text(&b.log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    adapter.master.write_all(b"after \xff restart\r\n").unwrap();
    let got = received_until(&mut rx, b"restart\r\n").await;
    assert_eq!(got, b"after \xff restart\r\n");
    assert_eq!(console.gaps(), 1);
    assert_eq!(console.closed_reason(), None);

    let log = std::fs::read(&b.log).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert_eq!(text.matches("### hil: console gap: ").count(), 1, "{text}");
    assert!(
        text.contains(&format!("s without transport ({url} reconnected;")),
        "{text}"
    );
    let once = |needle: &[u8]| log.windows(needle.len()).filter(|w| *w == needle).count();
    assert_eq!(once(b"U-Boot \xff\xfe\xff\xff end\r\n"), 1, "{text}");
    assert_eq!(once(b"after \xff restart\r\n"), 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ser2net_without_rfc2217_is_refused_by_name_and_raw_tcp_passes_bytes_as_they_are() {
    if !ser2net_installed() {
        return;
    }
    let b = bench();
    let mut adapter = Adapter::plug(&b.link);
    let port = free_port();
    let server = Ser2net::start("telnet", port, &b.link).unwrap();
    let url = format!("rfc2217://127.0.0.1:{port}");
    let e = Console::open_device(&url, 115_200, None, &b.log, "net")
        .await
        .err()
        .expect("plain telnet cannot set the line");
    assert_eq!(
        e.to_string(),
        format!("ser2net at 127.0.0.1:{port} refused RFC 2217 COM-PORT-OPTION (44): is the port in telnet(rfc2217) mode?")
    );
    // The same port as plain telnet is fine.
    let c = Console::open_device(
        &format!("telnet://127.0.0.1:{port}"),
        115_200,
        None,
        &b.log,
        "net",
    )
    .await
    .unwrap();
    let mut rx = c.subscribe();
    wait_live(&mut adapter, &mut rx).await;
    adapter.master.write_all(b"telnet \xff\r\n").unwrap();
    assert_eq!(received_until(&mut rx, b"\r\n").await, b"telnet \xff\r\n");
    drop(c);
    drop(server);

    let port = free_port();
    let _server = Ser2net::start("tcp", port, &b.link).unwrap();
    let c = Console::open_device(
        &format!("tcp://127.0.0.1:{port}"),
        115_200,
        None,
        &b.log,
        "net",
    )
    .await
    .unwrap();
    let mut rx = c.subscribe();
    wait_live(&mut adapter, &mut rx).await;
    adapter.master.write_all(b"raw \xff\xff\r\n").unwrap();
    assert_eq!(received_until(&mut rx, b"\r\n").await, b"raw \xff\xff\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_console_refused_past_the_limit_closes_naming_the_address() {
    let b = bench();
    let port = free_port();
    // Nothing listens: the first connect fails at once, naming the address.
    let url = format!("telnet://127.0.0.1:{port}");
    let e = Console::open_device(&url, 115_200, None, &b.log, "net")
        .await
        .err()
        .expect("nothing listens");
    assert!(
        e.to_string()
            .starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")),
        "{e}"
    );
    // A listener that accepts once, then goes away for good.
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let url = format!("tcp://127.0.0.1:{port}");
    let console = Console::open_device(&url, 115_200, Some(Duration::from_secs(1)), &b.log, "net")
        .await
        .unwrap();
    let mut rx = console.subscribe();
    let (s, _) = l.accept().unwrap();
    drop(l);
    drop(s);
    let started = Instant::now();
    let reason = loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(Event::Closed(r))) => break r,
            Ok(Some(_)) => {}
            other => panic!("no close: {other:?}"),
        }
    };
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        reason.contains(&format!("{url} did not come back within 1 s: cannot connect to 127.0.0.1:{port}: Connection refused")),
        "{reason}"
    );
}
