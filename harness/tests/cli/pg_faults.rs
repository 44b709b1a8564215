//! Lease faults of a lab whose hosts share one PostgreSQL server (a real one, started by
//! each test): the holder killed with SIGKILL, the server restarted during a run, the
//! holder cut off from the database by the network, a host whose clock runs 10 minutes
//! ahead. Each lab host is a `hil` process of its own with its own `HIL_HOST`; the board
//! is the fake board (hil's own U-Boot and shell on a pty), so the tests are about the
//! leases and take seconds.
//!
//! "Never on the board at once" is shown by time: a run touches the board from its console
//! log's start (power on) to the end of its last case, and the next holder's console log
//! starts after that.

use crate::common::{holder_exit_while_waiter_waits, wait_until};
use crate::fake_board::{suite, Fake, BOARD, LIMIT};
use crate::sim::{case, read_json, spawn_hil, wait_exit, wait_for_file_text, Guard};
use hil::lease::pg::PgLeases;
use hil::lease::pg_cluster::Cluster;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

fn pg() -> Cluster {
    Cluster::start().unwrap_or_else(|e| panic!("{e:#}"))
}

/// `hil run SUITE` on the fake board as lab host `host`, leases in the database at `url`.
fn run_as(
    fake: &Fake,
    url: &str,
    host: &str,
    suite_name: &str,
    out: &Path,
    extra_args: &[&str],
    extra_env: &[(&str, &str)],
) -> (Guard, mpsc::Receiver<(Instant, String)>) {
    let mut env = fake.env();
    env.push(("HIL_DATABASE_URL", url.to_string()));
    env.push(("HIL_HOST", host.to_string()));
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(extra_env);
    let s = suite(suite_name);
    let mut args = vec![
        "run",
        s.as_str(),
        "--board",
        BOARD,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra_args);
    spawn_hil(&args, &env)
}

/// lab-a's run of `fake-hold-long` (a 12 s check) against the database at `url`, once its
/// check is running on the board: the holder a fault is then made to.
fn start_holder(fake: &Fake, url: &str, out: &Path) -> (Guard, mpsc::Receiver<(Instant, String)>) {
    let held = run_as(fake, url, "lab-a", "fake-hold-long", out, &[], &[]);
    wait_for_file_text(
        &out.join("boards/fake-board/console.log"),
        "sleep 12",
        LIMIT,
    );
    held
}

/// Seconds since the epoch of an RFC 3339 time.
fn epoch(rfc3339: &str) -> f64 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339:?}: {e}"));
    t.unix_timestamp_nanos() as f64 / 1e9
}

/// When the console log at `path` started (its header's `t=0 is TIME`): the run powered
/// the board on then.
fn console_start(path: &Path) -> f64 {
    let text = std::fs::read_to_string(path).unwrap();
    let head = text.lines().next().unwrap();
    let t = head
        .split("t=0 is ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap_or_else(|| panic!("no start time in {head:?}"));
    epoch(t)
}

/// When the run of `results` stopped working on the board: the end of its last case that
/// ran (a teardown that was refused, "not torn down", touched nothing).
fn last_touch(results: &serde_json::Value) -> f64 {
    let start = epoch(results["started"].as_str().unwrap());
    let cases = results["boards"][0]["cases"].as_array().unwrap();
    let end = cases
        .iter()
        .filter(|c| {
            !c["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("not torn down")
        })
        .map(|c| c["started_s"].as_f64().unwrap() + c["duration_s"].as_f64().unwrap())
        .fold(0.0, f64::max);
    start + end
}

fn token(results: &serde_json::Value) -> u64 {
    results["boards"][0]["properties"]["lease_token"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn holder(db: &PgLeases) -> Option<(String, u32)> {
    db.read(BOARD)
        .unwrap()
        .map(|r| (r.owner.host.clone(), r.owner.pid))
}

#[test]
fn pg_kill_9_of_the_holder_frees_the_board_for_another_host_within_the_ttl() {
    let pg = pg();
    let url = pg.url();
    let db = PgLeases::new(&url);
    let ttl = 5.0;
    let fake = Fake::new(|t| t + "\n[lease]\nttl_s = 5\n");
    let out_a = fake.out("kill-a");
    let (mut a, _ra) = start_holder(&fake, &url, &out_a);
    let a_pid = a.0.id();
    assert_eq!(holder(&db), Some(("lab-a".into(), a_pid)));
    let a_token = db.read(BOARD).unwrap().unwrap().token;

    let out_b = fake.out("kill-b");
    let (mut b, rb) = run_as(&fake, &url, "lab-b", "fake-hold", &out_b, &["--wait"], &[]);
    wait_until("lab-b queues behind lab-a", LIMIT, || {
        rb.try_iter()
            .any(|(_, l)| l.contains("waiting for the board: held by job"))
    });
    // SAFETY: kill(2) on the child this test spawned, which has not been waited for.
    assert_eq!(unsafe { libc::kill(a_pid as i32, libc::SIGKILL) }, 0);
    let killed = Instant::now();
    assert_eq!(wait_exit(&mut a, LIMIT), -1, "killed by a signal");

    let b_console = out_b.join("boards/fake-board/console.log");
    let granted = wait_until("lab-b gets the board", LIMIT, || b_console.exists());
    let after = granted.duration_since(killed).as_secs_f64();
    // The lease lapses at most a TTL after the holder's last heartbeat, and lab-b asks
    // again every second.
    assert!(
        after <= ttl + 3.0,
        "lab-b got the board {after:.1} s after the holder died (TTL {ttl} s)"
    );
    assert_eq!(wait_exit(&mut b, LIMIT), 0);
    let r = read_json(&out_b.join("results.json"));
    assert_eq!(case(&r, BOARD, "hold")["outcome"], "pass");
    assert!(token(&r) > a_token, "a new grant, a new token");
    assert_eq!(holder(&db), None, "lab-b gave the board back");
}

#[test]
fn pg_restarted_during_a_run_the_run_keeps_its_lease_or_stops_and_history_has_every_case() {
    let pg = pg();
    let url = pg.url();
    let fake = Fake::new(|t| t + "\n[lease]\nttl_s = 6\n");
    let dir = fake.out("restart-lab");
    std::fs::create_dir_all(&dir).unwrap();
    let lab = dir.join("lab.toml");
    std::fs::write(
        &lab,
        format!(
            "name = \"restart-lab\"\nboards = [\"fake-board\"]\nsuites = [\"{}\"]\nhistory = \"history.sqlite\"\n",
            suite("fake-hold-steps")
        ),
    )
    .unwrap();
    // lab-a's nightly: its leases and its history in the database.
    let out_a = fake.out("restart-a");
    let mut env = fake.env();
    env.push(("HIL_DATABASE_URL", url.clone()));
    env.push(("HIL_HOST", "lab-a".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (mut a, _ra) = spawn_hil(
        &[
            "nightly",
            lab.to_str().unwrap(),
            "--out",
            out_a.to_str().unwrap(),
        ],
        &env,
    );
    let db = PgLeases::new(&url);
    wait_until("lab-a holds the board", LIMIT, || {
        holder(&db).is_some_and(|(h, _)| h == "lab-a")
    });
    let out_b = fake.out("restart-b");
    let (mut b, _rb) = run_as(&fake, &url, "lab-b", "fake-hold", &out_b, &["--wait"], &[]);

    // At the start of step-2, the server goes down for 3 s (half the TTL: heartbeats fail
    // meanwhile) and comes back.
    let a_console = wait_for_file(&out_a, "console.log");
    wait_for_file_text(&a_console, "step-1-done", LIMIT);
    pg.restart(Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{e:#}"));

    let a_code = wait_exit(&mut a, LIMIT);
    assert_eq!(wait_exit(&mut b, LIMIT), 0);
    let a_results = wait_for_file(&out_a, "results.json");
    let ra = read_json(&a_results);
    let rb = read_json(&out_b.join("results.json"));
    assert_eq!(case(&rb, BOARD, "hold")["outcome"], "pass");
    let outcomes: Vec<(String, String)> = ra["boards"][0]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    eprintln!("lab-a exited {a_code}: {outcomes:?}");
    let passed = |n: &str| outcomes.iter().any(|(c, o)| c == n && o == "pass");
    if a_code == 0 {
        // It kept its lease through the restart: every step passed.
        assert!(
            ["step-1", "step-2", "step-3"].iter().all(|s| passed(s)),
            "{outcomes:?}"
        );
    } else {
        // It stopped, naming the database or the lease, and no step ran after that.
        let stopped = outcomes
            .iter()
            .position(|(_, o)| o == "error:infrastructure")
            .unwrap_or_else(|| {
                panic!("exit {a_code} without an infrastructure error: {outcomes:?}")
            });
        assert!(
            outcomes[stopped + 1..]
                .iter()
                .all(|(n, o)| n == "teardown" || o != "pass"),
            "{outcomes:?}"
        );
    }
    // Never both hosts on the board: lab-b powered it on after lab-a was done with it.
    let b_on = console_start(&out_b.join("boards/fake-board/console.log"));
    let a_done = last_touch(&ra);
    assert!(
        b_on > a_done,
        "lab-b powered the board at {b_on:.3}, lab-a worked on it until {a_done:.3}"
    );
    // The history in the database has every case lab-a finished.
    // The only nightly in this database is lab-a's.
    let recorded = history_rows(&url, "");
    let finished: Vec<&(String, String)> = outcomes
        .iter()
        .filter(|(n, _)| n.starts_with("step-"))
        .collect();
    assert!(!finished.is_empty(), "{outcomes:?}");
    for (n, o) in finished {
        assert!(
            recorded.iter().any(|(rn, ro)| rn == n && ro == o),
            "{n} {o} not in the history: {recorded:?}"
        );
    }
}

/// The first file named `name` under `dir`, once it exists (a nightly puts each board's
/// run in a directory of its own).
fn wait_for_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let mut found = None;
    wait_until(&format!("{name} under {}", dir.display()), LIMIT, || {
        found = find(dir, name);
        found.is_some()
    });
    found.unwrap()
}

fn find(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

/// (check, outcome) of each result the history holds for runs whose id contains `run`.
fn history_rows(url: &str, run: &str) -> Vec<(String, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (db, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        db.query(
            "SELECT check_name, outcome, run_id FROM hil_results ORDER BY run_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .filter(|r| run.is_empty() || r.get::<_, String>(2).contains(run))
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    })
}

/// A TCP proxy to the database that the test can partition: afterwards no byte passes in
/// either direction and new connections are accepted but never answered, as when the
/// network between a lab host and the database fails without closing anything.
struct Partition {
    port: u16,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Partition {
    fn start(upstream: u16) -> Partition {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, st, cs) = (cut.clone(), stop.clone(), conns.clone());
        std::thread::spawn(move || {
            for down in l.incoming() {
                let Ok(down) = down else { return };
                if st.load(Ordering::SeqCst) {
                    return;
                }
                cs.lock().unwrap().push(down.try_clone().unwrap());
                if c.load(Ordering::SeqCst) {
                    continue; // held open, never answered
                }
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                cs.lock().unwrap().push(up.try_clone().unwrap());
                for (from, to) in [
                    (down.try_clone().unwrap(), up.try_clone().unwrap()),
                    (up, down),
                ] {
                    let c = c.clone();
                    std::thread::spawn(move || pump(from, to, &c));
                }
            }
        });
        Partition {
            port,
            cut,
            stop,
            conns,
        }
    }

    fn url(&self, pg: &Cluster) -> String {
        let direct = pg.url();
        let (head, tail) = direct.split_once("@127.0.0.1:").unwrap();
        let path = tail.split_once('/').unwrap().1;
        format!("{head}@127.0.0.1:{}/{path}", self.port)
    }

    fn partition(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either closes; once `cut`, reads and drops.
fn pump(mut from: TcpStream, mut to: TcpStream, cut: &AtomicBool) {
    let mut b = [0u8; 16384];
    while let Ok(n @ 1..) = from.read(&mut b) {
        if !cut.load(Ordering::SeqCst) && to.write_all(&b[..n]).is_err() {
            break;
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn pg_a_holder_cut_off_from_the_database_stops_before_its_lease_can_go_to_another_host() {
    let pg = pg();
    let url = pg.url();
    let net = Partition::start(url_port(&url));
    let fake = Fake::new(|t| t + "\n[lease]\nttl_s = 6\n");
    let out_a = fake.out("cut-a");
    let (mut a, _ra) = start_holder(&fake, &net.url(&pg), &out_a);
    let db = PgLeases::new(&url);
    assert_eq!(holder(&db), Some(("lab-a".into(), a.0.id())));
    net.partition();
    // lab-b reaches the database directly and waits for the board.
    let out_b = fake.out("cut-b");
    let (mut b, _rb) = run_as(&fake, &url, "lab-b", "fake-hold", &out_b, &["--wait"], &[]);

    assert_eq!(wait_exit(&mut a, LIMIT), 3);
    assert_eq!(wait_exit(&mut b, LIMIT), 0);
    let ra = read_json(&out_a.join("results.json"));
    let rb = read_json(&out_b.join("results.json"));
    let hold = case(&ra, BOARD, "hold");
    assert_eq!(hold["outcome"], "error:infrastructure", "{hold}");
    let msg = hold["message"].as_str().unwrap();
    assert!(
        msg.contains("no heartbeat reached the lease store for 4.8 s")
            && msg.contains("this run stops touching the board"),
        "{msg}"
    );
    assert!(
        hold["duration_s"].as_f64().unwrap() < 11.0,
        "the check was stopped, not run to its end: {hold}"
    );
    assert!(
        case(&ra, BOARD, "teardown")["message"]
            .as_str()
            .unwrap()
            .starts_with("not torn down"),
        "{ra:#}"
    );
    assert_eq!(case(&rb, BOARD, "hold")["outcome"], "pass");
    let b_on = console_start(&out_b.join("boards/fake-board/console.log"));
    let a_done = last_touch(&ra);
    assert!(
        b_on > a_done,
        "lab-b powered the board at {b_on:.3}, lab-a worked on it until {a_done:.3}"
    );
    assert!(token(&rb) > token(&ra));
}

fn url_port(url: &str) -> u16 {
    url.split("@127.0.0.1:")
        .nth(1)
        .and_then(|t| t.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// libfaketime, from Debian's `faketime` package: shifts the clock of the one process it
/// is preloaded into.
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

#[test]
fn pg_a_host_whose_clock_runs_10_minutes_ahead_steals_no_lease() {
    if !Path::new(FAKETIME).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{FAKETIME} is missing (apt-get install faketime)"
        );
        eprintln!("skipped: {FAKETIME} is missing (apt-get install faketime)");
        return;
    }
    let pg = pg();
    let url = pg.url();
    let db = PgLeases::new(&url);
    let fake = Fake::new(|t| t + "\n[lease]\nttl_s = 5\n");
    let out_a = fake.out("clock-a");
    let (mut a, _ra) = start_holder(&fake, &url, &out_a);
    let a_pid = a.0.id();
    let fast = [("LD_PRELOAD", FAKETIME), ("FAKETIME", "+10m")];
    // Without --wait: refused at once, naming lab-a, although by its own clock lab-a's
    // heartbeat is 10 minutes old.
    let out_b = fake.out("clock-b");
    let (mut b, _rb) = run_as(&fake, &url, "lab-b", "fake-hold", &out_b, &[], &fast);
    assert_eq!(wait_exit(&mut b, LIMIT), 3);
    let rb = read_json(&out_b.join("results.json"));
    let skew = epoch(rb["started"].as_str().unwrap()) - now();
    assert!(
        (500.0..700.0).contains(&skew),
        "lab-b's clock is {skew:.0} s off, not 10 minutes: is libfaketime working?"
    );
    let msg = case(&rb, BOARD, "lease")["message"].as_str().unwrap();
    assert!(
        msg.starts_with("board fake-board is busy: held by job")
            && msg.contains(&format!("@lab-a, pid {a_pid}")),
        "{msg}"
    );
    assert!(!out_b.join("boards/fake-board/console.log").exists());
    // With --wait: it queues, and gets the board only when lab-a is done.
    let out_c = fake.out("clock-c");
    let (mut c, _rc) = run_as(
        &fake,
        &url,
        "lab-c",
        "fake-hold",
        &out_c,
        &["--wait"],
        &fast,
    );
    let c_console = out_c.join("boards/fake-board/console.log");
    let a_code = holder_exit_while_waiter_waits(
        &mut a,
        &c_console,
        "the host with the fast clock took the board while lab-a held it",
    );
    assert_eq!(a_code, 0);
    assert_eq!(
        holder(&db).map(|(h, _)| h).as_deref().unwrap_or("lab-c"),
        "lab-c"
    );
    assert_eq!(wait_exit(&mut c, LIMIT), 0);
    let rc = read_json(&out_c.join("results.json"));
    assert_eq!(case(&rc, BOARD, "hold")["outcome"], "pass");
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The same on the emulated board: two lab hosts start the smoke suite on one sim board
/// at the same moment; it runs twice, one after the other, each run passing.
#[test]
fn pg_sim_two_lab_hosts_start_smoke_on_one_sim_board_and_it_runs_twice_in_turn() {
    let _l = crate::sim::lock();
    let pg = pg();
    let url = pg.url();
    let spawn = |host: &str, out: &Path| {
        let env = [("HIL_DATABASE_URL", url.as_str()), ("HIL_HOST", host)];
        spawn_hil(
            &[
                "run",
                "suites/smoke.toml",
                "--board",
                "sim-rk3588",
                "--wait",
                "--out",
                out.to_str().unwrap(),
            ],
            &env,
        )
    };
    let (out_a, out_b) = (
        crate::sim::out_dir("pg-two-hosts-a"),
        crate::sim::out_dir("pg-two-hosts-b"),
    );
    let (mut a, _ra) = spawn("lab-a", &out_a);
    let (mut b, _rb) = spawn("lab-b", &out_b);
    let limit = crate::sim::BOOT_LIMIT;
    assert_eq!(wait_exit(&mut a, limit), 0);
    assert_eq!(wait_exit(&mut b, limit), 0);
    let (ra, rb) = (
        read_json(&out_a.join("results.json")),
        read_json(&out_b.join("results.json")),
    );
    for r in [&ra, &rb] {
        assert_eq!(case(r, "sim-rk3588", "ssh-exit-status")["outcome"], "pass");
    }
    let on = |out: &Path| console_start(&out.join("boards/sim-rk3588/console.log"));
    // Whichever got the board first, the other powered it on after it was done.
    let (first, second, second_out) = if on(&out_a) < on(&out_b) {
        (&ra, &rb, &out_b)
    } else {
        (&rb, &ra, &out_a)
    };
    assert!(
        on(second_out) > last_touch(first),
        "the second host powered the board at {:.3}, the first worked on it until {:.3}",
        on(second_out),
        last_touch(first)
    );
    assert!(token(second) > token(first));
    assert!(second["boards"][0]["properties"]["lease"]
        .as_str()
        .unwrap()
        .contains(if second_out == &out_b {
            "@lab-b"
        } else {
            "@lab-a"
        }));
}
