//! `hil serve` over a real lab: 20 `hil nightly` runs on the fake board (three with the
//! `kernel` check failing, so the matrix has fail, flaky and pass cells), a lease held,
//! a waiter queued and the board out of service; then the JSON API, `/metrics`, the run
//! reports and, in headless Chromium, the pages. Screenshots are kept under
//! `target/tmp/serve/`.

use crate::common::*;
use crate::fake_board::{Fake, BOARD, LIMIT};
use crate::sim::{read_json, spawn_hil, wait_exit, Guard};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const RUNS: usize = 20;
/// The nightlies (1-based) whose `kernel` check fails.
const FAILING: [usize; 3] = [4, 5, 11];

use crate::history::SUITE;

/// One answer: status, headers (lower-case names) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A plain HTTP/1.1 GET of `path` exactly as written (no normalising of `..`).
fn get(addr: &str, path: &str) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = raw[end + 4..].to_vec();
    let a = Answer {
        status,
        headers,
        body,
    };
    assert_ne!(
        a.header("transfer-encoding"),
        Some("chunked"),
        "bodies have a length"
    );
    a
}

/// `hil serve` running; killed by its pid if the test ends without stopping it.
struct Server {
    guard: Guard,
    addr: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

fn start_serve(lab: &Path, env: &[(&str, String)]) -> Server {
    let mut child = hil()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--lab",
            lab.to_str().unwrap(),
        ])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hil serve starts");
    let err = child.stderr.take().unwrap();
    let guard = Guard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("  serve| {line}");
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("hil serve says where it listens");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{line}");
    Server {
        guard,
        addr,
        stderr: rx,
    }
}

/// The cell states the nightly rule gives `kernel` (flaky: two pass/fail flips within
/// the 5 newest runs), worked out by hand from [`FAILING`].
fn kernel_states() -> Vec<&'static str> {
    let mut s = vec!["pass"; RUNS];
    for i in [4, 5, 11] {
        s[i - 1] = "fail";
    }
    for i in [6, 7, 12, 13, 14] {
        s[i - 1] = "flaky";
    }
    s
}

fn chromium_dom(chromium: &Path, profile: &Path, url: &str) -> String {
    let (dom, err) = run_chromium(chromium, profile, &["--dump-dom", url]);
    assert!(
        !err.contains("Uncaught") && !err.contains(":CONSOLE("),
        "no console message on {url}: {err}"
    );
    assert!(dom.contains("</html>"), "{url}: {dom}{err}");
    dom
}

fn screenshot(chromium: &Path, profile: &Path, url: &str, name: &str) -> PathBuf {
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    let shot = format!("--screenshot={}", png.display());
    let (_, err) = run_chromium(chromium, profile, &[&shot, "--window-size=1400,900", url]);
    let meta = std::fs::metadata(&png).unwrap_or_else(|e| panic!("{png:?}: {e}; {err}"));
    assert!(
        meta.len() > 10_000,
        "{name}: a page, not a blank: {} bytes",
        meta.len()
    );
    png
}

#[test]
fn serve_shows_twenty_nightlies_the_leases_and_the_reports() {
    let fake = Fake::new(|t| t);
    let dir = fake.out("lab");
    std::fs::create_dir_all(&dir).unwrap();
    let suite = dir.join("night.toml");
    let lab = dir.join("lab.toml");
    std::fs::write(
        &lab,
        "name = \"fake-lab\"\nboards = [\"fake-board\"]\nsuites = [\"night.toml\"]\nhistory = \"history.sqlite\"\n",
    )
    .unwrap();
    let mut env = fake.env();
    env.push(("HIL_HOST", "lab-a".into()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let t = Instant::now();
    let mut outs = Vec::new();
    let mut results = Vec::new();
    for i in 1..=RUNS {
        let kernel = if FAILING.contains(&i) {
            "6\\\\.2\\\\.0-expected"
        } else {
            "6\\\\.1\\\\.0-hil-fake"
        };
        std::fs::write(&suite, SUITE.replace("KERNEL", kernel)).unwrap();
        let out = fake.out(&format!("night-{i:02}"));
        let (mut g, _rx) = spawn_hil(
            &[
                "nightly",
                lab.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            &env_ref,
        );
        let code = wait_exit(&mut g, LIMIT);
        assert_eq!(code, i32::from(FAILING.contains(&i)), "night {i}");
        results.push(read_json(&out.join("runs/night/results.json")));
        outs.push(out);
    }
    eprintln!("{RUNS} nightlies in {:.1} s", t.elapsed().as_secs_f64());

    // The board's lease state, as other runs would leave it: held, one waiter, and out
    // of service.
    let leases = hil::lease::Leases::in_dir(fake.leases());
    let owner = |job: &str, pid: u32| hil::lease::Owner {
        job: job.into(),
        user: "ci".into(),
        host: "lab-b".into(),
        pid,
        run_id: format!("run-{job}"),
    };
    let ttl = Duration::from_secs(600);
    leases
        .try_acquire(BOARD, &owner("holder", 4242), ttl)
        .unwrap();
    let spot = hil::lease::Spot { priority: 7, ttl };
    let busy = leases.try_acquire_queued(BOARD, &owner("waiter", 4343), ttl, &spot);
    assert!(busy.is_err(), "the waiter queues behind the holder");
    leases.disable(BOARD, "relay stuck").unwrap();

    let server = start_serve(&lab, &env);
    let addr = server.addr.clone();

    // /api/runs: newest first, each with its report dir.
    let runs = get(&addr, "/api/runs?last=20").json();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), RUNS);
    let seqs: Vec<i64> = runs.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=RUNS as i64).rev().collect::<Vec<_>>());
    for (r, out) in runs.iter().rev().zip(&outs) {
        assert_eq!(r["report_dir"], out.display().to_string());
        assert_eq!(r["host"], "lab-a");
        assert_eq!(r["lab"], "fake-lab");
    }
    let codes: Vec<i64> = runs
        .iter()
        .rev()
        .map(|r| r["exit_code"].as_i64().unwrap())
        .collect();
    for (i, c) in codes.iter().enumerate() {
        assert_eq!(*c, i64::from(FAILING.contains(&(i + 1))), "run {}", i + 1);
    }
    assert_eq!(
        get(&addr, "/api/runs?last=5")
            .json()
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(get(&addr, "/api/runs?last=0").status, 400);

    // /api/matrix: a row per check the nightlies' results.json hold, a cell per run,
    // each cell what that run's results.json says (or flaky by the nightly rule).
    let m = get(&addr, "/api/matrix?last=20").json();
    assert_eq!(m["runs"].as_array().unwrap().len(), RUNS);
    let mut cases: Vec<String> = results[0]["boards"][0]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    cases.sort();
    assert!(
        cases.contains(&"kernel".to_string()) && cases.contains(&"boot".to_string()),
        "{cases:?}"
    );
    let rows = m["rows"].as_array().unwrap();
    let row_names: Vec<&str> = rows.iter().map(|r| r["check"].as_str().unwrap()).collect();
    assert_eq!(
        row_names,
        cases.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for row in rows {
        assert_eq!(row["board"], BOARD);
        let cells = row["cells"].as_array().unwrap();
        assert_eq!(cells.len(), RUNS);
        for (i, cell) in cells.iter().enumerate() {
            let case = results[i]["boards"][0]["cases"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == row["check"])
                .unwrap();
            assert_eq!(
                cell["outcome"],
                case["outcome"],
                "run {} {}",
                i + 1,
                row["check"]
            );
        }
    }
    let kernel = rows.iter().find(|r| r["check"] == "kernel").unwrap();
    let states: Vec<&str> = kernel["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, kernel_states());

    // /api/boards: holder, queue and service of the board.
    let boards = get(&addr, "/api/boards").json();
    let b = &boards.as_array().unwrap()[0];
    assert_eq!(b["board"], BOARD);
    assert_eq!(b["holder"]["job"], "holder");
    assert_eq!(b["holder"]["pid"], 4242);
    assert_eq!(b["holder"]["host"], "lab-b");
    assert!(b["holder"]["expires_in_s"].as_f64().unwrap() > 500.0, "{b}");
    assert_eq!(b["queue"][0]["job"], "waiter");
    assert_eq!(b["queue"][0]["priority"], 7);
    assert_eq!(b["out_of_service"]["reason"], "relay stuck");

    // /api/checks: stability and the figures of every run.
    let k = get(&addr, "/api/checks/kernel").json();
    let st = &k["boards"][0];
    assert_eq!(
        (st["runs"].as_u64(), st["passed"].as_u64()),
        (Some(20), Some(17))
    );
    assert_eq!(st["stability_pct"], 85.0);
    let boot = get(&addr, "/api/checks/boot?last=20").json();
    let fig = boot["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["figure"] == "boot_s")
        .unwrap_or_else(|| panic!("{boot}"));
    let points = fig["points"].as_array().unwrap();
    assert_eq!(points.len(), RUNS);
    let newest_boot = results[RUNS - 1]["boards"][0]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "boot")
        .unwrap()["figures"]["boot_s"]
        .as_f64()
        .unwrap();
    assert_eq!(points[RUNS - 1]["value"].as_f64(), Some(newest_boot));
    assert_eq!(get(&addr, "/api/checks/no-such-check").status, 404);

    // /metrics: the format, and the values above.
    let met = get(&addr, "/metrics");
    assert_eq!(met.status, 200);
    assert!(met
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = met.text();
    let sample = |line: &str| {
        text.lines()
            .find(|l| l.rsplit_once(' ').is_some_and(|(k, _)| k == line))
            .and_then(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{line} in {text}"))
    };
    assert_eq!(sample("hil_boards_held"), 1.0);
    assert_eq!(sample("hil_boards_out_of_service"), 1.0);
    assert_eq!(sample("hil_board_queue_length{board=\"fake-board\"}"), 1.0);
    assert_eq!(sample("hil_runs_total{exit_code=\"0\"}"), 17.0);
    assert_eq!(sample("hil_runs_total{exit_code=\"1\"}"), 3.0);
    assert_eq!(sample("hil_results_total{outcome=\"fail\"}"), 3.0);
    let newest_id = runs[0]["run_id"].as_str().unwrap();
    assert_eq!(
        sample(&format!(
            "hil_board_last_boot_seconds{{board=\"fake-board\",run_id=\"{newest_id}\"}}"
        )),
        newest_boot
    );
    // Every sample is in a family announced by HELP then TYPE.
    let mut family = String::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        if let Some(rest) = l.strip_prefix("# HELP ") {
            family = rest.split(' ').next().unwrap().to_string();
            let t = lines.next().unwrap();
            assert!(t.starts_with(&format!("# TYPE {family} ")), "{t}");
        } else {
            assert!(l.starts_with(&family) && !family.is_empty(), "{l}");
        }
    }

    // Reports: a cell's link redirects to the suite's report.html, which is served with
    // its console log; paths out of the report dir are refused.
    let id = runs[RUNS - FAILING[2]]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = get(&addr, &format!("/runs/{id}/report.html?suite=fake-night"));
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.header("location").unwrap().to_string();
    assert_eq!(to, format!("/runs/{id}/runs/night/report.html"));
    let page = get(&addr, &to);
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    // That run's own report, byte for byte.
    let on_disk = std::fs::read(outs[FAILING[2] - 1].join("runs/night/report.html")).unwrap();
    assert!(page.body == on_disk, "{}", page.text());
    assert!(page.text().contains("id=\"case-fake-board-kernel\""));
    let log = get(
        &addr,
        &format!("/runs/{id}/runs/night/boards/{BOARD}/console.log"),
    );
    assert_eq!(log.status, 200);
    assert!(!log.body.is_empty());
    std::fs::write(dir.join("secret.txt"), "not served").unwrap();
    for bad in [
        format!("/runs/{id}/../../lab/secret.txt"),
        format!("/runs/{id}/%2e%2e/%2e%2e/lab/secret.txt"),
        format!("/runs/{id}/runs/..%2F..%2F..%2Flab%2Fsecret.txt"),
    ] {
        let a = get(&addr, &bad);
        assert!(a.status == 403 || a.status == 404, "{bad}: {}", a.status);
        assert!(!a.text().contains("not served"), "{bad}");
    }
    assert_eq!(get(&addr, "/runs/no-such-run/report.html").status, 404);

    // The pages in a browser.
    let chromium = Path::new("/usr/bin/chromium");
    if chromium.exists() {
        let profile = tempfile::tempdir().unwrap();
        let base = format!("http://{addr}");
        let home = chromium_dom(chromium, profile.path(), &format!("{base}/"));
        for text in [
            "fake-board",
            "job holder",
            "priority 7",
            "relay stuck",
            "out of service",
        ] {
            assert!(home.contains(text), "{text} on /: {home}");
        }
        let matrix = chromium_dom(chromium, profile.path(), &format!("{base}/matrix"));
        let cells = matrix.matches("<td class=\"cell c-").count();
        assert_eq!(
            cells,
            cases.len() * RUNS,
            "1 board × {} checks × {RUNS} runs",
            cases.len()
        );
        assert_eq!(matrix.matches("<td class=\"cell c-fail\"").count(), 3);
        assert_eq!(matrix.matches("<td class=\"cell c-flaky\"").count(), 5);
        // The first failing cell's link, followed in the browser, shows that report.
        let at = matrix.find("<td class=\"cell c-fail\"").unwrap();
        let href_at = matrix[at..].find("href=\"").unwrap() + at + 6;
        let href = &matrix[href_at..href_at + matrix[href_at..].find('"').unwrap()];
        let href = href.replace("&amp;", "&");
        let first_fail = runs[RUNS - FAILING[0]]["run_id"].as_str().unwrap();
        assert!(
            href.starts_with(&format!("/runs/{first_fail}/report.html")),
            "{href}"
        );
        let report = chromium_dom(chromium, profile.path(), &format!("{base}{href}"));
        let on_disk =
            std::fs::read_to_string(outs[FAILING[0] - 1].join("runs/night/report.html")).unwrap();
        let title_at = on_disk.find("<title>").unwrap();
        let title = &on_disk[title_at..title_at + on_disk[title_at..].find("</title>").unwrap()];
        assert!(report.contains(title), "{title} in {report}");
        assert!(report.contains("id=\"case-fake-board-kernel\""));
        let check = chromium_dom(chromium, profile.path(), &format!("{base}/checks/boot"));
        assert!(check.contains("<svg class=\"plot\""), "{check}");
        let plots = boot["figures"].as_array().unwrap().len();
        assert_eq!(check.matches("<svg class=\"plot\"").count(), plots);
        assert_eq!(
            check.matches("<circle ").count(),
            RUNS * plots,
            "a point per run"
        );
        let kcheck = chromium_dom(chromium, profile.path(), &format!("{base}/checks/kernel"));
        assert!(kcheck.contains("85%"), "{kcheck}");
        for (path, name) in [
            ("/", "boards"),
            ("/matrix", "matrix"),
            ("/checks/boot", "check-boot"),
        ] {
            screenshot(chromium, profile.path(), &format!("{base}{path}"), name);
        }
    } else {
        eprintln!("browser part skipped: /usr/bin/chromium is not installed");
    }

    // SIGTERM: hil serve stops and exits 0.
    let mut server = server;
    let pid = server.guard.0.id() as i32;
    // SAFETY: kill(2) on the pid of the child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let code = wait_exit(&mut server.guard, Duration::from_secs(20));
    assert_eq!(code, 0);
    // The pipe closes with the process: the reader thread has sent every line by then.
    let mut said = Vec::new();
    while let Ok(l) = server.stderr.recv_timeout(Duration::from_secs(5)) {
        said.push(l);
    }
    assert!(
        said.iter().any(|l| l.contains("hil serve: stopped")),
        "{said:?}"
    );
}

/// Reads a server-sent event stream until `needle` is in it or `within` passes; the text.
fn read_events_until(s: &mut TcpStream, seen: &mut String, needle: &str, within: Duration) {
    let end = Instant::now() + within;
    let mut buf = [0u8; 16 * 1024];
    while !seen.contains(needle) {
        assert!(Instant::now() < end, "no {needle:?} in the stream: {seen}");
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => panic!("stream ended before {needle:?}: {seen}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// A run in progress on the dashboard: the boards page and API name its step with the
/// check's time-out, the console streams live as server-sent events (and in Chromium's
/// live page), read-only, and the stream ends with the run.
#[test]
fn serve_shows_a_run_in_progress_its_step_and_its_console_live() {
    let fake = Fake::new(|t| t);
    let dir = fake.out("lab");
    std::fs::create_dir_all(&dir).unwrap();
    let lab = dir.join("lab.toml");
    std::fs::write(
        &lab,
        "name = \"fake-lab\"\nboards = [\"fake-board\"]\nsuites = [\"night.toml\"]\nhistory = \"history.sqlite\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("night.toml"), SUITE.replace("KERNEL", "6\\\\.1")).unwrap();
    let (mut run, out, go) = crate::fake_board::run_to_follow(&fake, &[]);
    let server = start_serve(&lab, &fake.env());
    let addr = server.addr.clone();

    let boards = get(&addr, "/api/boards").json();
    let b = &boards[0];
    assert_eq!(b["board"], BOARD, "{boards:#}");
    assert_eq!(b["step"]["name"], "live", "{boards:#}");
    assert_eq!(b["step"]["timeout_s"], 60.0, "{boards:#}");
    assert_eq!(
        b["live_console"], "/boards/fake-board/console",
        "{boards:#}"
    );
    let page = get(&addr, "/").text();
    assert!(page.contains("at step <b>live</b>"), "{page}");

    // The browser's page, opened while the check waits.
    let browser = hil::browser::installed().map(|c| {
        let mut b = hil::browser::Browser::start(&c, 1400, 900).expect("chromium");
        b.open(
            &format!("http://{addr}/boards/fake-board/console"),
            Duration::from_secs(30),
        )
        .expect("the live page loads");
        b
    });

    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /api/boards/fake-board/console HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut seen = String::new();
    read_events_until(&mut s, &mut seen, "event: hello", LIMIT);
    assert!(seen.contains("content-type: text/event-stream"), "{seen}");
    // The backlog first: the check's command line, echoed before we connected.
    read_events_until(&mut s, &mut seen, "while [ ! -e", LIMIT);
    assert!(
        seen.contains("event: step\ndata: {\"name\":\"live\""),
        "{seen}"
    );
    std::fs::write(&go, "").unwrap();
    read_events_until(&mut s, &mut seen, "follow-42-live", LIMIT);
    assert_eq!(wait_exit(&mut run, LIMIT), 0);
    read_events_until(&mut s, &mut seen, "event: end", LIMIT);

    if let Some(mut b) = browser {
        let shown = b
            .eval("document.getElementById('live').textContent")
            .unwrap();
        let shown = shown.as_str().unwrap_or_default();
        assert!(shown.contains("follow-42-live"), "{shown}");
        // Stamped as the run's log stamps its lines.
        let line = shown
            .lines()
            .find(|l| l.contains("] follow-42-live"))
            .unwrap_or_else(|| panic!("a stamped line in {shown}"));
        assert!(line.starts_with("[+"), "{line}");
        let state = b
            .eval("document.getElementById('live-state').textContent")
            .unwrap();
        assert!(state.as_str().unwrap().starts_with("ended: "), "{state}");
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve");
        std::fs::create_dir_all(&shots).unwrap();
        b.screenshot(&shots.join("live-console.png")).unwrap();
        let errors = b.errors(Duration::from_millis(300));
        assert!(errors.is_empty(), "{errors:?}");
    }
    // The follower changed nothing of the run's own log.
    let log = std::fs::read_to_string(out.join("boards/fake-board/console.log")).unwrap();
    assert_eq!(log.matches("follow-42-live").count(), 1, "{log}");
    // After the run: no step, no console.
    let boards = get(&addr, "/api/boards").json();
    assert!(boards[0]["step"].is_null(), "{boards:#}");
    assert_eq!(
        get(&addr, "/boards/fake-board/console").status,
        404,
        "no console to follow"
    );
    drop(server);
}
