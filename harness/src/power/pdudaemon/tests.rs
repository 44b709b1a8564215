//! The pdudaemon backend against the real pdudaemon (Debian's `pdudaemon` package, run
//! unprivileged on 127.0.0.1 with its own configuration and a `localcmdline` PDU that
//! appends to a file), and against stand-ins that count connections.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::daemon::PduDaemon;
use super::*;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn power(port: u16, pdu: &str, outlet: u32, timeout_s: u64) -> PduDaemonPower {
    PduDaemonPower {
        board: "b".into(),
        host: "127.0.0.1".into(),
        port,
        pdu: pdu.into(),
        outlet,
        cycle_delay_s: 1,
        timeout: Duration::from_secs(timeout_s),
    }
}

/// Starts pdudaemon with one `localcmdline` PDU `lab` whose commands append
/// `OUTLET on|off` to `outlets`.
fn start_daemon(dir: &Path, outlets: &Path) -> PduDaemon {
    let cmd = |word: &str| format!("echo \"%s {word}\" >> '{}'", outlets.display());
    let pdus = serde_json::json!({
        "lab": {"driver": "localcmdline", "cmd_on": cmd("on"), "cmd_off": cmd("off")}
    });
    PduDaemon::start(dir, "127.0.0.1", free_port(), pdus).unwrap()
}

/// Waits (pdudaemon may queue) until `path` holds `want`.
fn wait_for_text(path: &Path, want: &str, limit: Duration) {
    let end = Instant::now() + limit;
    loop {
        let got = std::fs::read_to_string(path).unwrap_or_default();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < end,
            "{} holds {want:?} within {limit:?}; it holds {got:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn on_off_and_cycle_switch_the_outlet_through_pdudaemon() {
    let dir = tempfile::tempdir().unwrap();
    let outlets = dir.path().join("outlets.log");
    let d = start_daemon(dir.path(), &outlets);
    let mut p = power(d.port, "lab", 3, 20);
    p.on().await.unwrap();
    wait_for_text(&outlets, "3 on\n", Duration::from_secs(60));
    p.off().await.unwrap();
    wait_for_text(&outlets, "3 on\n3 off\n", Duration::from_secs(60));
    // reboot: off, the delay, on; one request
    p.cycle().await.unwrap();
    wait_for_text(
        &outlets,
        "3 on\n3 off\n3 off\n3 on\n",
        Duration::from_secs(60),
    );
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(
        log.contains("/power/control/reboot?hostname=lab&port=3&delay=1"),
        "{log}"
    );

    // A PDU pdudaemon does not know: its status and body, and nothing switched.
    let e = power(d.port, "rack 9", 3, 20).on().await.unwrap_err();
    let m = e.to_string();
    assert!(m.contains("HTTP 500: Invalid request"), "{m}");
    assert!(m.contains("pdu rack 9") && m.contains("power.pdu"), "{m}");
    assert_eq!(
        std::fs::read_to_string(&outlets).unwrap(),
        "3 on\n3 off\n3 off\n3 on\n"
    );
}

#[tokio::test]
async fn pdudaemon_down_is_an_error_naming_its_address_at_once() {
    let port = free_port();
    let t = Instant::now();
    let e = power(port, "lab", 1, 10).on().await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let m = e.to_string();
    assert!(
        m.contains(&format!("cannot reach pdudaemon at 127.0.0.1:{port}")),
        "{m}"
    );
    assert!(m.contains("power.host, power.port"), "{m}");
    assert!(m.contains("refused"), "{m}");
    assert!(m.contains("one attempt, not retried"), "{m}");
    // lab trouble: exit 3
    let code = crate::error::classify(&anyhow::Error::new(e)).0;
    assert_eq!(code, crate::outcome::exit::INFRASTRUCTURE);
}

/// A stand-in that counts connections; each is read up to its blank line and then
/// answered with `answer` (`None`: held open without an answer).
fn stand_in(answer: Option<&'static [u8]>) -> (u16, Arc<AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            c.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                match answer {
                    Some(a) => {
                        let _ = s.write_all(a);
                    }
                    None => std::thread::sleep(Duration::from_secs(30)),
                }
            });
        }
    });
    (port, count)
}

#[tokio::test]
async fn a_failed_request_is_one_connection_and_a_silent_daemon_times_out() {
    let (port, count) = stand_in(Some(b"garbage\r\n"));
    let e = power(port, "lab", 1, 10).cycle().await.unwrap_err();
    assert!(e.to_string().contains("the answer is not HTTP"), "{e}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count.load(Ordering::SeqCst), 1, "not retried");

    let (port, count) = stand_in(None);
    let t = Instant::now();
    let e = power(port, "lab", 1, 1).on().await.unwrap_err();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let m = e.to_string();
    assert!(
        m.contains(&format!("pdudaemon at 127.0.0.1:{port}"))
            && m.contains("did not answer GET /power/control/on?hostname=lab&port=1 within 1 s"),
        "{m}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);

    // a cycle's limit includes its delay; a short answer with a body is read to its end
    let (port, _) = stand_in(Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\nOK - accepted request\n",
    ));
    power(port, "lab", 1, 1).cycle().await.unwrap();
}

#[test]
fn answers_and_queries_are_parsed_and_escaped() {
    assert_eq!(query_escape("lab-1.a_b~"), "lab-1.a_b~");
    assert_eq!(query_escape("rack 9&x=1"), "rack%209%26x%3D1");
    assert_eq!(
        parse_answer(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 16\r\n\r\nInvalid request\n"
        ),
        Some((500, "Invalid request\n".into()))
    );
    assert_eq!(parse_answer(b"SSH-2.0-dropbear\r\n"), None);
    assert!(answer_complete(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nOK"
    ));
    assert!(!answer_complete(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nOK"
    ));
    assert_eq!(one_line("  a\n b  "), "a b");
    assert_eq!(one_line(""), "(empty body)");
    let p = power(16421, "lab", 2, 1);
    assert_eq!(
        p.target("reboot", Some(5)),
        "/power/control/reboot?hostname=lab&port=2&delay=5"
    );
    let mut v6 = power(16421, "lab", 2, 1);
    v6.host = "::1".into();
    assert_eq!(v6.addr(), "[::1]:16421");
}
