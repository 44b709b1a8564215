//! The remote sim board, end to end: console through Debian's ser2net in RFC 2217 mode,
//! power through Debian's pdudaemon, nothing of QEMU in the board file
//! (`boards/sim-rk3588-remote.toml`; the exporter side is in remote_lab.rs). Shipped
//! suites pass on it, and the exporter's faults end as a lab engineer expects: a ser2net
//! restart is ridden out with one gap, a connection cut mid-flood loses bytes but repeats
//! none, a ser2net gone for good, a pdudaemon that is down and a port that refuses
//! RFC 2217 are infrastructure errors naming what failed.

use crate::common::*;
use crate::remote_lab::*;
use crate::sim::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One suite made of checks of several suite files (all of a file's checks, or the ones
/// named), each check carrying its own file's `via` and `timeout_s` defaults.
fn suite_of(name: &str, parts: &[(PathBuf, &[&str])], dir: &Path) -> PathBuf {
    let mut checks = Vec::new();
    for (path, only) in parts {
        let t: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let defaults = t
            .get("defaults")
            .and_then(|d| d.as_table())
            .cloned()
            .unwrap_or_default();
        for c in t["check"].as_array().unwrap() {
            let mut c = c.as_table().unwrap().clone();
            if !only.is_empty() && !only.contains(&c["name"].as_str().unwrap()) {
                continue;
            }
            for key in ["via", "timeout_s"] {
                // ping and nvme-io run in the guest: a suite's `via` does not apply to them
                let guest_only = ["ping", "nvme-io"].contains(&c["kind"].as_str().unwrap());
                if key == "via" && guest_only {
                    continue;
                }
                if let (false, Some(v)) = (c.contains_key(key), defaults.get(key)) {
                    c.insert(key.into(), v.clone());
                }
            }
            checks.push(toml::Value::Table(c));
        }
    }
    let mut suite = toml::Table::new();
    suite.insert("name".into(), name.into());
    let mut defaults = toml::Table::new();
    defaults.insert("timeout_s".into(), 120.into());
    suite.insert("defaults".into(), toml::Value::Table(defaults));
    suite.insert("check".into(), toml::Value::Array(checks));
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, toml::to_string(&suite).unwrap()).unwrap();
    p
}

fn start_run(suite: &Path, out: &Path, env: &[(&str, &str)]) -> Guard {
    spawn_hil(
        &[
            "run",
            suite.to_str().unwrap(),
            "--board",
            REMOTE,
            "--out",
            out.to_str().unwrap(),
        ],
        env,
    )
    .0
}

/// Waits until the run's console.log holds `needle`; a run that ends first fails the test
/// at once, with its exit status.
fn wait_for_log(g: &mut Guard, out: &Path, needle: &str) {
    let end = Instant::now() + BOOT_LIMIT;
    loop {
        if let Ok(b) = std::fs::read(console_log(out)) {
            if String::from_utf8_lossy(&b).contains(needle) {
                return;
            }
        }
        if let Some(st) = g.0.try_wait().unwrap() {
            panic!("hil ended ({st}) before {needle:?} was in the console log");
        }
        assert!(Instant::now() < end, "{needle:?} not in the console log");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn console_log(out: &Path) -> PathBuf {
    out.join("boards").join(REMOTE).join("console.log")
}

/// The board's text of each console.log line (without hil's time stamp).
fn log_lines(log: &str) -> Vec<&str> {
    log.split('\n')
        .filter_map(|l| l.split_once("] ").map(|(_, t)| t.trim_end_matches('\r')))
        .collect()
}

/// For each line of [`log_lines`], whether the board finished it (it ends in `\r`;
/// `str::lines` would strip that `\r` with the `\n`).
fn whole_lines(log: &str) -> Vec<bool> {
    let mut after_gap = false;
    log.split('\n')
        .filter_map(|l| l.split_once("] "))
        .map(|(_, t)| {
            // The first board line after a gap may begin anywhere: its start was sent
            // while the transport was away ("128" of 5128).
            let whole = t.ends_with('\r') && !after_gap;
            if t.starts_with("### hil: console gap: ") {
                after_gap = true;
            } else if !t.starts_with("### hil: ") {
                after_gap = false;
            }
            whole
        })
        .collect()
}

/// The U-Boot banner is in the log, before U-Boot's autoboot prompt: the console saw the
/// board from reset, through pdudaemon's power-on and ser2net.
fn assert_banner_from_reset(log: &str) {
    let banner = log.find("U-Boot 20").expect(log);
    let autoboot = log.find("Hit any key to stop autoboot").expect(log);
    let power_on = log.find("### hil: power on").expect(log);
    assert!(power_on < banner && banner < autoboot, "{log}");
}

#[test]
fn remote_board_passes_smoke_and_vfio_through_ser2net_and_pdudaemon_and_rides_out_a_ser2net_restart(
) {
    let _l = lock();
    let mut lab = RemoteLab::start("suites", true);
    let out = out_dir("remote");
    let suite = suite_of(
        "remote-smoke-vfio",
        &[
            (repo().join("suites/smoke.toml"), &[]),
            (data("suites/console-gap.toml"), &["across-gap"]),
            (repo().join("suites/rk3588-vfio.toml"), &[]),
        ],
        &out_dir("remote-suite"),
    );
    let mut g = start_run(&suite, &out, &[]);
    wait_for_log(&mut g, &out, "gap-start\r\n");
    lab.restart_ser2net(Duration::from_secs(2));
    let code = wait_exit(&mut g, BOOT_LIMIT);

    let results = read_json(&out.join("results.json"));
    assert_eq!(code, 0, "exit status; results: {results:#}");
    assert_eq!(results["complete"], true);
    let names = [
        "boot",
        "arch",
        "kvm",
        "smmu-probed",
        "ssh-exit-status",
        "across-gap",
        "preflight",
        "bind",
        "guest-boot",
        "guest-sees-devices",
        "ping",
        "nvme-io",
    ];
    for name in names {
        assert_eq!(case(&results, REMOTE, name)["outcome"], "pass", "{name}");
    }
    // One restart, one gap, and how long it was.
    let props = &results["boards"][0]["properties"];
    assert_eq!(props["console_gaps"], "1", "{props}");
    let gap: f64 = props["console_gap_s"].as_str().unwrap().parse().unwrap();
    assert!((1.5..15.0).contains(&gap), "gap of {gap} s");
    let log = std::fs::read_to_string(console_log(&out)).unwrap();
    assert_banner_from_reset(&log);
    assert_eq!(log.matches("### hil: console gap: ").count(), 1, "{log}");
    let (start, gap_at, end) = (
        log.find("] gap-start\r").unwrap(),
        log.find("### hil: console gap: ").unwrap(),
        log.find("] gap-end\r").unwrap(),
    );
    assert!(start < gap_at && gap_at < end, "{log}");
    // Power went through pdudaemon: its log has the requests, and the exporter's
    // `hil lab up`/`down` ran (teardown powered the board off).
    let pdu_log = lab.pdu.as_ref().unwrap().logs();
    assert!(
        pdu_log.contains("hostname=sim-lab&port=1"),
        "pdudaemon log: {pdu_log}"
    );
    let power = lab.power_log();
    assert!(
        power.contains(&format!("{EXPORTED} is up and running"))
            && power.trim_end().ends_with(&format!("{EXPORTED} is down")),
        "{power}"
    );
    assert_eq!(lab.qemu_pid(), None, "the board is off after the run");
    let cases = junit_consumer(&out.join("junit.xml"));
    assert_eq!(cases.lines().count(), names.len(), "{cases}");
}

/// A TCP server of a test on the board file's fixed address: it listens until dropped
/// (so the next test's ser2net can bind the port), and [`TestServer::cut`] shuts down
/// every connection it has made, as a flaky network between lab host and exporter does.
struct TestServer {
    stop: Arc<AtomicBool>,
    addr: (&'static str, u16),
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl TestServer {
    /// `handle` runs on its own thread per connection, given the connection and the list
    /// of connections to cut (where it adds any it opens itself).
    fn start(
        addr: (&'static str, u16),
        handle: impl Fn(TcpStream, &Mutex<Vec<TcpStream>>) + Send + Sync + 'static,
    ) -> TestServer {
        let l = TcpListener::bind(addr).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (st, c, handle) = (stop.clone(), conns.clone(), Arc::new(handle));
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                if st.load(Ordering::SeqCst) {
                    return;
                }
                c.lock().unwrap().push(s.try_clone().unwrap());
                let (c, handle) = (c.clone(), handle.clone());
                std::thread::spawn(move || handle(s, &c));
            }
        });
        TestServer { stop, addr, conns }
    }

    fn cut(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wakes the accept loop, which sees `stop` and drops the listener
        let _ = TcpStream::connect(self.addr);
        self.cut();
    }
}

/// A TCP proxy from `listen` to `upstream`, byte for byte both ways.
fn proxy(listen: (&'static str, u16), upstream: (&'static str, u16)) -> TestServer {
    TestServer::start(listen, move |down, conns| {
        let Ok(up) = TcpStream::connect(upstream) else {
            return;
        };
        conns.lock().unwrap().push(up.try_clone().unwrap());
        let pump = |mut from: TcpStream, mut to: TcpStream| {
            let mut b = [0u8; 16384];
            while let Ok(n @ 1..) = from.read(&mut b) {
                if to.write_all(&b[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Both);
        };
        let (d2, u2) = (down.try_clone().unwrap(), up.try_clone().unwrap());
        std::thread::spawn(move || pump(d2, u2));
        pump(up, down);
    })
}

/// A telnet server that refuses COM-PORT-OPTION (44), as ser2net in plain telnet mode
/// does: every WILL is answered DONT, every DO WONT.
fn refuser(addr: (&'static str, u16)) -> TestServer {
    TestServer::start(addr, |mut s, _| {
        let mut b = [0u8; 256];
        while let Ok(n @ 1..) = s.read(&mut b) {
            let mut answer = Vec::new();
            for w in b[..n].windows(3) {
                match (w[0], w[1]) {
                    (0xff, 0xfb) => answer.extend([0xff, 0xfe, w[2]]),
                    (0xff, 0xfd) => answer.extend([0xff, 0xfc, w[2]]),
                    _ => {}
                }
            }
            if s.write_all(&answer).is_err() {
                return;
            }
        }
    })
}

#[test]
fn connection_cut_by_a_proxy_mid_flood_is_reconnected_with_a_gap_and_no_byte_repeated() {
    let _l = lock();
    // ser2net on the next port; the proxy takes the board file's address in front of it.
    let lab = RemoteLab::start_on("flood", RFC2217_PORT + 10, true);
    let proxy = proxy((EXPORTER, RFC2217_PORT), (EXPORTER, RFC2217_PORT + 10));
    let out = out_dir("remote-flood");
    let suite = data("suites/console-flood.toml");
    let mut g = start_run(&suite, &out, &[]);
    wait_for_log(&mut g, &out, "] 5000\r\n");
    proxy.cut();
    let code = wait_exit(&mut g, BOOT_LIMIT);

    let results = read_json(&out.join("results.json"));
    assert_eq!(code, 0, "exit status; results: {results:#}");
    for name in ["boot", "flood", "after"] {
        assert_eq!(case(&results, REMOTE, name)["outcome"], "pass", "{name}");
    }
    assert_eq!(
        results["boards"][0]["properties"]["console_gaps"], "1",
        "{results:#}"
    );
    let log = std::fs::read_to_string(console_log(&out)).unwrap();
    let lines = log_lines(&log);
    let gap = lines
        .iter()
        .position(|l| l.starts_with("### hil: console gap: "))
        .expect(&log);
    // The flood's numbers, in log order: every one at most once and rising, so no byte
    // was written to the log twice across the reconnect.
    let from = lines
        .iter()
        .position(|l| l.contains("seq 1 20000"))
        .expect(&log);
    let to = lines.iter().position(|l| *l == "flood-done").expect(&log);
    // Only whole lines count: the line the cut went through ends without the board's
    // `\r` ("50" of 5038), and its rest was lost with the connection.
    let whole = whole_lines(&log);
    let numbers: Vec<(usize, u32)> = lines[from..to]
        .iter()
        .enumerate()
        .filter(|&(i, _)| whole[from + i])
        .filter_map(|(i, l)| Some((from + i, l.parse::<u32>().ok()?)))
        .collect();
    assert!(numbers.windows(2).all(|w| w[0].1 < w[1].1), "{log}");
    assert!(numbers.first().unwrap().1 == 1, "{log}");
    assert!(numbers.last().unwrap().1 == 20000, "{log}");
    // The gap is marked among the flood's lines (where output went missing, if any did).
    assert!(
        numbers.first().unwrap().0 < gap && gap < numbers.last().unwrap().0,
        "{log}"
    );
    drop(proxy);
    drop(lab);
}

#[test]
fn ser2net_gone_for_good_is_an_infrastructure_error_naming_its_address_within_the_limit() {
    let _l = lock();
    let mut lab = RemoteLab::start("gone", true);
    let out = out_dir("remote-gone");
    let mut g = start_run(&data("suites/console-gap.toml"), &out, &[]);
    wait_for_log(&mut g, &out, "gap-start\r\n");
    let killed = Instant::now();
    lab.ser2net = None;
    let code = wait_exit(&mut g, Duration::from_secs(300));
    let took = killed.elapsed();
    // reopen_timeout_s = 15 in the board file, then teardown through pdudaemon
    assert!(
        took >= Duration::from_secs(15) && took < Duration::from_secs(90),
        "run ended {took:?} after ser2net was killed"
    );
    assert_eq!(code, 3, "exit status for an infrastructure error");
    let results = read_json(&out.join("results.json"));
    assert_eq!(results["complete"], true);
    assert_eq!(case(&results, REMOTE, "before")["outcome"], "pass");
    let c = case(&results, REMOTE, "across-gap");
    assert_eq!(c["outcome"], "error:infrastructure", "{c}");
    let msg = c["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "rfc2217://{EXPORTER}:{RFC2217_PORT} did not come back within 15 s"
        )) && msg.contains("Connection refused"),
        "{msg}"
    );
    assert_eq!(case(&results, REMOTE, "after")["outcome"], "skipped");
    // The console is gone, the power is not: teardown switched the board off.
    assert_eq!(lab.qemu_pid(), None, "powered off: {}", lab.power_log());
}

/// Runs the console-gap suite, which must end at boot with an infrastructure error
/// (exit 3, complete reports); the results and the boot case's message.
fn run_failing_at_boot(out: &Path) -> (serde_json::Value, String) {
    let mut g = start_run(&data("suites/console-gap.toml"), out, &[]);
    let code = wait_exit(&mut g, Duration::from_secs(600));
    assert_eq!(code, 3, "exit status for an infrastructure error");
    let results = read_json(&out.join("results.json"));
    assert_eq!(results["complete"], true);
    let boot = case(&results, REMOTE, "boot");
    assert_eq!(boot["outcome"], "error:infrastructure", "{boot}");
    let msg = boot["message"].as_str().unwrap().to_string();
    (results, msg)
}

#[test]
fn pdudaemon_down_is_an_infrastructure_error_naming_it_without_a_retry_storm() {
    let _l = lock();
    let lab = RemoteLab::start("pdu-down", false);
    let out = out_dir("remote-pdu-down");
    let t = Instant::now();
    let (results, msg) = run_failing_at_boot(&out);
    assert!(
        msg.contains(&format!("cannot reach pdudaemon at {EXPORTER}:{PDU_PORT}"))
            && msg.contains("one attempt, not retried"),
        "{msg}"
    );
    for name in ["before", "across-gap", "after"] {
        assert_eq!(case(&results, REMOTE, name)["outcome"], "skipped", "{name}");
    }
    // One power-on per boot attempt (the board file's retry.infrastructure), no loop.
    let log = std::fs::read_to_string(console_log(&out)).unwrap();
    let attempts = log.matches("### hil: power on").count();
    assert!((1..=2).contains(&attempts), "{attempts} power-ons: {log}");
    eprintln!("pdudaemon down: run ended after {:?}", t.elapsed());
    assert_eq!(lab.qemu_pid(), None);
}

#[test]
fn a_port_that_refuses_rfc2217_is_an_infrastructure_error_naming_the_option() {
    let _l = lock();
    let _refuser = refuser((EXPORTER, RFC2217_PORT));
    let out = out_dir("remote-refused");
    let (_, msg) = run_failing_at_boot(&out);
    assert!(
        msg.contains(&format!(
            "{EXPORTER}:{RFC2217_PORT} refused RFC 2217 COM-PORT-OPTION (44)"
        )),
        "{msg}"
    );
}

#[test]
fn hil_power_switches_the_remote_board_through_pdudaemon() {
    let _l = lock();
    let lab = RemoteLab::start("power", true);
    let power = |action: &str| {
        let o = run(hil().args(["power", REMOTE, action]));
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "hil power {action}: {text}{}",
            stderr(&o)
        );
        text
    };
    let pid_within = |want_some: bool, not: Option<i32>| {
        let end = Instant::now() + Duration::from_secs(120);
        loop {
            let p = lab.qemu_pid();
            if p.is_some() == want_some && (p.is_none() || p != not) {
                return p;
            }
            assert!(Instant::now() < end, "QEMU pid {p:?}; {}", lab.power_log());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    power("on");
    let first = pid_within(true, None);
    let said = power("cycle");
    assert!(said.contains(REMOTE), "{said}");
    let second = pid_within(true, first);
    assert_ne!(first, second, "cycle started a new QEMU");
    let status = power("status");
    assert!(status.contains("unknown"), "{status}");
    power("off");
    pid_within(false, None);
    let log = lab.pdu.as_ref().unwrap().logs();
    assert!(
        log.contains("/power/control/reboot?hostname=sim-lab&port=1&delay=2"),
        "{log}"
    );
}
