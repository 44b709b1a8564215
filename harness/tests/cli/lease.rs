//! Board leases across processes, on the fake board: two runs never use the same board at
//! once (a second run is refused, or queues with --wait until the first is done), and the
//! lease of a killed run is taken over once it has expired. With `HIL_DATABASE_URL`, runs
//! on different lab hosts share one PostgreSQL (a real server started by the test).

use crate::common::{holder_exit_while_waiter_waits, wait_until};
use crate::fake_board::{suite, Fake, BOARD, LIMIT};
use crate::sim::{case, read_json, spawn_hil, wait_exit};
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn concurrent_runs_never_share_a_board() {
    let fake = Fake::new(|t| t);
    // Holds the board for 3 s: long enough for the other two runs to find it busy.
    let hold = suite("fake-hold");

    let out1 = fake.out("lease-first");
    let (mut first, _rx1) = fake.spawn(&hold, &out1, &[]);
    wait_until("the first run takes the lease", LIMIT, || {
        fake.lease().is_some()
    });
    let holder = fake.lease().unwrap();
    assert_eq!(holder.owner.pid, first.0.id(), "{holder:?}");

    // Without --wait: refused at once, naming the holder; nothing of the board touched.
    let out2 = fake.out("lease-refused");
    let (mut refused, _rx2) = fake.spawn(&hold, &out2, &[]);
    assert_eq!(wait_exit(&mut refused, Duration::from_secs(60)), 3);
    let r2 = read_json(&out2.join("results.json"));
    let l = case(&r2, BOARD, "lease");
    assert_eq!(l["outcome"], "error:infrastructure", "{l}");
    let msg = l["message"].as_str().unwrap();
    assert!(
        msg.starts_with("board fake-board is busy: held by job"),
        "{msg}"
    );
    assert!(msg.contains(&format!("pid {}", first.0.id())), "{msg}");
    assert!(msg.contains("--wait"), "{msg}");
    assert_eq!(case(&r2, BOARD, "hold")["outcome"], "skipped");
    assert!(!out2.join("boards/fake-board/console.log").exists());

    // With --wait: queued; its board work starts only after the first run has finished.
    let out3 = fake.out("lease-queued");
    let (mut queued, rx3) = fake.spawn(&hold, &out3, &["--wait"]);
    let queued_console = out3.join("boards/fake-board/console.log");
    let first_code = holder_exit_while_waiter_waits(
        &mut first,
        &queued_console,
        "the queued run powered the board while the first run held it",
    );
    assert_eq!(first_code, 0);
    assert_eq!(wait_exit(&mut queued, LIMIT), 0);
    let said: Vec<String> = rx3.try_iter().map(|(_, l)| l).collect();
    assert!(
        said.iter()
            .any(|l| l.contains("fake-board: waiting for the board: held by job")),
        "{said:#?}"
    );
    let r3 = read_json(&out3.join("results.json"));
    assert_eq!(case(&r3, BOARD, "hold")["outcome"], "pass");
    // Both gave the board back.
    assert!(fake.lease().is_none());
}

#[test]
fn lease_of_a_killed_run_is_taken_over_after_it_expires() {
    let fake = Fake::new(|t| t + "\n[lease]\nttl_s = 6\n");
    let hold = suite("fake-hold");

    let out1 = fake.out("lease-killed");
    let (mut killed, _rx1) = fake.spawn(&hold, &out1, &[]);
    let pid = killed.0.id();
    // Kill it (SIGKILL: no cleanup, no release) while it has the board.
    crate::sim::wait_for_file_text(&out1.join("boards/fake-board/console.log"), "U-Boot", LIMIT);
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    let killed_at = Instant::now();
    let stale = fake.lease().expect("the killed run's lease stays behind");
    assert_eq!(stale.owner.pid, pid, "{stale:?}");

    let out2 = fake.out("lease-takeover");
    let (mut next, rx2) = fake.spawn(&hold, &out2, &["--wait"]);
    assert_eq!(wait_exit(&mut next, LIMIT), 0);
    let said: Vec<(Instant, String)> = rx2.try_iter().collect();
    let waited = said
        .iter()
        .find(|(_, l)| l.contains("waiting for the board: held by job"))
        .unwrap_or_else(|| panic!("the expired-to-be lease was honoured first: {said:#?}"));
    assert!(waited.1.contains(&format!("pid {pid}")), "{}", waited.1);
    let took = said
        .iter()
        .find(|(_, l)| l.contains("took over an expired lease"))
        .unwrap_or_else(|| panic!("{said:#?}"));
    // Not before the lease could have expired: its last heartbeat was at most 6 s
    // before the kill, and a heartbeat comes every 1.5 s.
    assert!(
        took.0.duration_since(killed_at) >= Duration::from_secs(4),
        "taken over {:?} after the kill",
        took.0.duration_since(killed_at)
    );
    let r = read_json(&out2.join("results.json"));
    let props = &r["boards"][0]["properties"];
    let from = props["lease_taken_over_from"].as_str().unwrap();
    assert!(from.contains(&format!("pid {pid}")), "{props}");
    assert_eq!(case(&r, BOARD, "hold")["outcome"], "pass");
    assert!(fake.lease().is_none());
}

#[test]
fn pg_runs_on_two_lab_hosts_sharing_one_database_never_share_the_board() {
    let pg = hil::lease::pg_cluster::Cluster::start().unwrap_or_else(|e| panic!("{e:#}"));
    let url = pg.url();
    let db = hil::lease::pg::PgLeases::new(&url);
    let fake = Fake::new(|t| t);
    let hold = suite("fake-hold");
    // `hil run` as the lab host `host` would start it, against the shared database.
    let spawn = |host: &str, out: &Path, extra: &[&str]| {
        let mut env = fake.env();
        env.push(("HIL_DATABASE_URL", url.clone()));
        env.push(("HIL_HOST", host.to_string()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut args = vec![
            "run",
            &hold,
            "--board",
            BOARD,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        spawn_hil(&args, &env)
    };

    let out_a = fake.out("pg-lab-a");
    let (mut a, _rxa) = spawn("lab-a", &out_a, &[]);
    let a_pid = a.0.id();
    wait_until("the run on lab-a takes the lease", LIMIT, || {
        db.read(BOARD).unwrap().is_some()
    });
    let holder = db.read(BOARD).unwrap().unwrap();
    assert_eq!(
        (holder.owner.host.as_str(), holder.owner.pid),
        ("lab-a", a_pid)
    );

    // Another host, without --wait: refused at once, naming the holder and its host.
    let out_b = fake.out("pg-lab-b");
    let (mut b, _rxb) = spawn("lab-b", &out_b, &[]);
    assert_eq!(wait_exit(&mut b, Duration::from_secs(60)), 3);
    let rb = read_json(&out_b.join("results.json"));
    let msg = case(&rb, BOARD, "lease")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.starts_with("board fake-board is busy: held by job"),
        "{msg}"
    );
    assert!(msg.contains(&format!("@lab-a, pid {a_pid}, run ")), "{msg}");
    assert!(!out_b.join("boards/fake-board/console.log").exists());

    // A third host with --wait: its board work starts only after lab-a's run is done.
    let out_c = fake.out("pg-lab-c");
    let (mut c, rxc) = spawn("lab-c", &out_c, &["--wait"]);
    let c_console = out_c.join("boards/fake-board/console.log");
    let a_code = holder_exit_while_waiter_waits(
        &mut a,
        &c_console,
        "lab-c powered the board while lab-a held it",
    );
    assert_eq!(a_code, 0);
    assert_eq!(wait_exit(&mut c, LIMIT), 0);
    let said: Vec<String> = rxc.try_iter().map(|(_, l)| l).collect();
    assert!(
        said.iter().any(
            |l| l.contains("fake-board: waiting for the board: held by job")
                && l.contains("@lab-a, pid")
        ),
        "{said:#?}"
    );
    let ra = read_json(&out_a.join("results.json"));
    let rc = read_json(&out_c.join("results.json"));
    assert_eq!(case(&rc, BOARD, "hold")["outcome"], "pass");
    let token = |r: &serde_json::Value| -> u64 {
        r["boards"][0]["properties"]["lease_token"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        token(&rc) > token(&ra),
        "{} then {}",
        token(&ra),
        token(&rc)
    );
    assert!(rc["boards"][0]["properties"]["lease"]
        .as_str()
        .unwrap()
        .contains("@lab-c, pid"));
    // Both gave the board back, in the database; no lease file was written.
    assert!(db.read(BOARD).unwrap().is_none());
    assert_eq!(std::fs::read_dir(fake.leases()).unwrap().count(), 0);
}

#[test]
fn pg_a_run_whose_token_went_stale_stops_and_leaves_the_new_holder_alone() {
    let pg = hil::lease::pg_cluster::Cluster::start().unwrap_or_else(|e| panic!("{e:#}"));
    let url = pg.url();
    // Heartbeats every 0.5 s: the hold check (3 s) is still running when one finds out.
    let fake = Fake::new(|t| t + "\n[lease]\nttl_s = 2\n");
    let out = fake.out("pg-stale");
    let mut env = fake.env();
    env.push(("HIL_DATABASE_URL", url.clone()));
    env.push(("HIL_HOST", "lab-a".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let hold = suite("fake-hold");
    let (mut g, _rx) = spawn_hil(
        &[
            "run",
            &hold,
            "--board",
            BOARD,
            "--out",
            out.to_str().unwrap(),
        ],
        &env,
    );
    crate::sim::wait_for_file_text(&out.join("boards/fake-board/console.log"), "sleep 3", LIMIT);
    // Another host is granted the board behind the run's back (as after an expiry that
    // the run did not notice): a new token, a new holder.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (db, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let n = db
            .execute(
                "UPDATE leases SET token = nextval('lease_token'), host = 'lab-b', pid = 7
                 WHERE board = $1",
                &[&BOARD],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
    });
    assert_eq!(wait_exit(&mut g, LIMIT), 3);
    let r = read_json(&out.join("results.json"));
    let hold = case(&r, BOARD, "hold");
    assert_eq!(hold["outcome"], "error:infrastructure", "{hold}");
    let msg = hold["message"].as_str().unwrap();
    assert!(
        msg.contains("lease of board fake-board lost: token") && msg.contains("is stale"),
        "{msg}"
    );
    assert!(msg.contains("@lab-b, pid 7"), "{msg}");
    let td = case(&r, BOARD, "teardown");
    assert!(
        td["message"].as_str().unwrap().starts_with("not torn down"),
        "{td}"
    );
    // The run neither renewed nor released the new holder's row.
    let row = hil::lease::pg::PgLeases::new(&url)
        .read(BOARD)
        .unwrap()
        .unwrap();
    assert_eq!((row.owner.host.as_str(), row.owner.pid), ("lab-b", 7));
}

/// Two real users of one lab host (root and `nobody`) share a 1777 lease directory:
/// each takes the board in turn whoever created its lease file, a live lease of one
/// refuses the other, an expired lease of root (a crashed run) is taken over by
/// `nobody`, and a lease file only its owner may write is an error naming the fix. The
/// board is powered by relay commands (`hil power BOARD on`): a lease step and a shell
/// command, no emulated board.
#[test]
fn two_users_share_the_lease_dir_and_take_over_each_others_expired_leases() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    // /proc/self belongs to the process's effective user.
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    assert_eq!(
        uid, 0,
        "this test runs hil as root and as user nobody, so it must run as root (CI does)"
    );
    let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("runuser (util-linux) is needed to run hil as user nobody");

    // Everything under a 0755 dir in /tmp, which nobody can traverse.
    let root = tempfile::Builder::new()
        .prefix("hil-two-users-")
        .tempdir_in("/tmp")
        .unwrap();
    let top = root.path();
    chmod(top, 0o755);
    let leases = top.join("leases");
    std::fs::create_dir(&leases).unwrap();
    chmod(&leases, 0o1777);
    let boards = top.join("boards");
    std::fs::create_dir(&boards).unwrap();
    let log = top.join("relay.log");
    std::fs::write(&log, "").unwrap();
    chmod(&log, 0o666);
    std::fs::write(
        boards.join(format!("{BOARD}.toml")),
        crate::verbs::relay_board(&log),
    )
    .unwrap();
    // Each user's `hil power` writes its power log under its working directory.
    let work = |who: &str| {
        let d = top.join(format!("work-{who}"));
        std::fs::create_dir(&d).unwrap();
        chmod(&d, 0o777);
        d
    };
    let (work_root, work_nobody) = (work("root"), work("nobody"));
    // The binary under target/ may sit in a tree nobody cannot traverse: a copy can.
    let bin = top.join("hil");
    std::fs::copy(env!("CARGO_BIN_EXE_hil"), &bin).unwrap();
    chmod(&bin, 0o755);

    let env = [
        format!("HIL_BOARDS={}", boards.display()),
        format!("HIL_LEASE_DIR={}", leases.display()),
    ];
    let power_on = |as_nobody: bool| -> std::process::Output {
        let mut c = if as_nobody {
            let mut c = std::process::Command::new(runuser);
            c.args(["-u", "nobody", "--", "env"]).args(&env).arg(&bin);
            c.current_dir(&work_nobody);
            c
        } else {
            let mut c = std::process::Command::new(&bin);
            c.envs(env.iter().filter_map(|kv| kv.split_once('=')));
            c.current_dir(&work_root);
            c
        };
        c.env_remove("HIL_DATABASE_URL").env_remove("HIL_HOST");
        c.args(["power", BOARD, "on"]).output().unwrap()
    };
    let ok = |as_nobody: bool| {
        let o = power_on(as_nobody);
        let who = if as_nobody { "nobody" } else { "root" };
        assert_eq!(
            o.status.code(),
            Some(0),
            "{who}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let lease_file = leases.join(format!("{BOARD}.lease"));
    let file_of = || {
        let m = std::fs::symlink_metadata(&lease_file).unwrap();
        (m.uid(), m.mode() & 0o7777, m.len())
    };
    let db = hil::lease::Leases::in_dir(&leases);
    let someone = |job: &str| hil::lease::Owner {
        job: job.into(),
        user: "root".into(),
        host: "lab1".into(),
        pid: 999_999,
        run_id: "r".into(),
    };

    // Root takes and gives back the board: its lease file stays, empty, writable by all.
    ok(false);
    assert_eq!(file_of(), (0, 0o666, 0), "root's lease file after release");
    // Then nobody takes it in turn, through root's file.
    ok(true);
    assert_eq!(file_of(), (0, 0o666, 0));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "on\non\n");

    // A live lease of root refuses nobody, naming the holder.
    let (live, _) = db
        .try_acquire(BOARD, &someone("root-run"), Duration::from_secs(600))
        .unwrap();
    let o = power_on(true);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("board fake-board is busy: held by job root-run (root@lab1, pid 999999"),
        "{err}"
    );
    db.release(&live).unwrap();

    // Root's run crashed holding the board (a 1 s lease nobody renews): once it has
    // expired, nobody takes it over, in a sticky dir where it may not replace root's file.
    let (crashed, _) = db
        .try_acquire(BOARD, &someone("crashed"), Duration::from_secs(1))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1300));
    ok(true);
    assert!(db.read(BOARD).unwrap().is_none(), "nobody gave it back");
    assert_eq!(file_of(), (0, 0o666, 0));
    // The crashed holder's lease is gone for good: its fencing check fails.
    assert!(db.check_current(&crashed).is_err());

    // A lease file nobody created serves root as well.
    std::fs::remove_file(&lease_file).unwrap();
    ok(true);
    assert_eq!(file_of(), (65534, 0o666, 0), "nobody's lease file");
    ok(false);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "on\non\non\non\non\n"
    );

    // A lease file of root's that only root may write: nobody is told what fixes it.
    std::fs::remove_file(&lease_file).unwrap();
    std::fs::write(&lease_file, "").unwrap();
    chmod(&lease_file, 0o644);
    let o = power_on(true);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "{} (mode 0644, owner uid 0) is not writable by this user",
            lease_file.display()
        )) && err.contains(&format!("chmod 666 {}", lease_file.display())),
        "{err}"
    );
}

/// `hil ARGS` with the fake lab's environment (and `extra`), to its end.
fn hil_in(fake: &Fake, extra: &[(&str, String)], args: &[&str]) -> (i32, String, String) {
    let o = crate::common::hil()
        .envs(fake.env())
        .envs(extra.iter().map(|(k, v)| (*k, v.clone())))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_board_out_of_service_is_refused_until_a_health_run_passes() {
    let fake = Fake::new(|t| t);
    let pass = suite("fake-pass");
    let (code, said, err) = hil_in(
        &fake,
        &[],
        &["boards", "disable", BOARD, "--reason", "relay stuck"],
    );
    assert_eq!(code, 0, "{said}{err}");
    assert!(
        said.starts_with("service: OUT OF SERVICE since ") && said.contains(": relay stuck"),
        "{said}"
    );
    let (code, said, _) = hil_in(&fake, &[], &["boards"]);
    assert_eq!(code, 0);
    assert!(said.contains("service: OUT OF SERVICE since"), "{said}");

    // Refused at once, naming the reason; nothing of the board touched.
    let out = fake.out("oos-refused");
    let (code, r) = fake.run(&pass, &out);
    assert_eq!(code, 3, "{r:#}");
    let l = case(&r, BOARD, "lease");
    assert_eq!(l["outcome"], "error:infrastructure", "{l}");
    let msg = l["message"].as_str().unwrap();
    assert!(
        msg.starts_with("board fake-board is out of service since ")
            && msg.contains(": relay stuck")
            && msg.contains("hil boards enable fake-board"),
        "{msg}"
    );
    assert!(!out.join("boards/fake-board/console.log").exists());

    // A health run is let through and, passing, puts the board back in service.
    let out = fake.out("oos-health");
    let (mut g, rx) = fake.spawn(&pass, &out, &["--health"]);
    assert_eq!(wait_exit(&mut g, LIMIT), 0);
    let said: Vec<String> = rx.try_iter().map(|(_, l)| l).collect();
    assert!(
        said.iter()
            .any(|l| l.contains("health run passed: back in service")),
        "{said:#?}"
    );
    let (code, r) = fake.run(&pass, &fake.out("oos-back"));
    assert_eq!(code, 0, "{r:#}");
    let (_, said, _) = hil_in(&fake, &[], &["boards"]);
    assert!(!said.contains("OUT OF SERVICE"), "{said}");
    // Enabling by hand works on a board in service too (nothing to do).
    let (code, said, _) = hil_in(&fake, &[], &["boards", "enable", BOARD]);
    assert_eq!((code, said.trim()), (0, "service: in service"));
}

#[test]
fn a_board_goes_out_of_service_after_infrastructure_errors_in_a_row() {
    let fake = Fake::new(|t| {
        t.replace(
            "\"tftp ${kernel_addr_r} Image.gz\"",
            "\"tftp ${kernel_addr_r} Image-missing.gz\"",
        ) + "\n[lease]\nout_of_service_after = 2\n"
    });
    let pass = suite("fake-pass");
    for n in 1..=2 {
        let (code, r) = fake.run(&pass, &fake.out(&format!("infra-{n}")));
        assert_eq!(code, 3, "run {n}: {r:#}");
        assert_eq!(case(&r, BOARD, "boot")["outcome"], "error:infrastructure");
    }
    let (code, r) = fake.run(&pass, &fake.out("infra-refused"));
    assert_eq!(code, 3, "{r:#}");
    let msg = case(&r, BOARD, "lease")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.starts_with("board fake-board is out of service since ")
            && msg.contains("by hil: 2 runs in a row ended in an infrastructure error"),
        "{msg}"
    );
}

/// A holder's line in `hil boards`: host and pid.
fn holds(listing: &str, board: &str, host: &str, pid: u32) -> bool {
    let mut lines = listing.lines();
    while let Some(l) = lines.next() {
        if l.split_whitespace().next() == Some(board) {
            return lines.next().is_some_and(|next| {
                next.contains("lease: held by job")
                    && next.contains(&format!("@{host}, pid {pid}, run "))
                    && next.contains("last heartbeat")
            });
        }
    }
    false
}

#[test]
fn pg_hil_boards_lists_the_holders_of_every_lab_host() {
    let pg = hil::lease::pg_cluster::Cluster::start().unwrap_or_else(|e| panic!("{e:#}"));
    let url = pg.url();
    let db = hil::lease::pg::PgLeases::new(&url);
    let fake = Fake::new(|t| t);
    // A second fake board beside the first, on its own SSH port.
    let boards = fake.leases().parent().unwrap().join("boards");
    let first = std::fs::read_to_string(boards.join("fake-board.toml")).unwrap();
    let port = first
        .lines()
        .find_map(|l| l.strip_prefix("port = "))
        .unwrap()
        .to_string();
    let second = first
        .replace("name = \"fake-board\"", "name = \"fake-board-2\"")
        .replace(
            &format!("\nport = {port}\n"),
            &format!("\nport = {}\n", crate::fake_board::free_port()),
        );
    std::fs::write(boards.join("fake-board-2.toml"), second).unwrap();
    let hold = fake.leases().parent().unwrap().join("hold-long.toml");
    std::fs::write(
        &hold,
        std::fs::read_to_string(suite("fake-hold"))
            .unwrap()
            .replace("sleep 3; echo held", "sleep 30; echo held"),
    )
    .unwrap();
    let on = |host: &str| -> Vec<(&'static str, String)> {
        vec![
            ("HIL_DATABASE_URL", url.clone()),
            ("HIL_HOST", host.to_string()),
        ]
    };
    let spawn = |host: &str, board: &str, out: &Path| {
        let mut env = fake.env();
        env.extend(on(host));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        spawn_hil(
            &[
                "run",
                hold.to_str().unwrap(),
                "--board",
                board,
                "--out",
                out.to_str().unwrap(),
            ],
            &env,
        )
    };
    let (a, _rxa) = spawn("lab-a", BOARD, &fake.out("boards-a"));
    let (b, _rxb) = spawn("lab-b", "fake-board-2", &fake.out("boards-b"));
    wait_until("both runs hold their boards", LIMIT, || {
        db.list().unwrap().len() == 2
    });
    for host in ["lab-a", "lab-b", "lab-c"] {
        let (code, said, err) = hil_in(&fake, &on(host), &["boards"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            holds(&said, BOARD, "lab-a", a.0.id()),
            "from {host}:\n{said}"
        );
        assert!(
            holds(&said, "fake-board-2", "lab-b", b.0.id()),
            "from {host}:\n{said}"
        );
    }
}

#[test]
fn a_run_gives_up_after_its_queue_timeout_naming_the_holder() {
    let fake = Fake::new(|t| t);
    let hold = suite("fake-hold");
    let (first, _rx1) = fake.spawn(&hold, &fake.out("qt-first"), &[]);
    wait_until("the first run takes the lease", LIMIT, || {
        fake.lease().is_some()
    });
    let out = fake.out("qt-second");
    let t = Instant::now();
    let (mut second, _rx2) = fake.spawn(&hold, &out, &["--queue-timeout", "1", "--priority", "3"]);
    assert_eq!(wait_exit(&mut second, Duration::from_secs(60)), 3);
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    let r = read_json(&out.join("results.json"));
    let l = case(&r, BOARD, "lease");
    assert_eq!(l["outcome"], "error:infrastructure", "{l}");
    let msg = l["message"].as_str().unwrap();
    assert!(
        msg.starts_with("board fake-board: gave up after waiting ")
            && msg.contains("in its queue (queue time-out 1 s): held by job")
            && msg.contains(&format!("pid {}", first.0.id())),
        "{msg}"
    );
    assert!(!out.join("boards/fake-board/console.log").exists());
}
