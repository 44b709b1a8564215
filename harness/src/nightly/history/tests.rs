//! Every test body runs twice: on a SQLite file and on a throw-away PostgreSQL server of
//! its own ([`Cluster`]); a machine without PostgreSQL fails these tests, naming the
//! package to install.

use super::*;
use crate::lease::pg_cluster::Cluster;
use std::path::Path;

/// Runs `body` against a fresh SQLite history, then against a fresh PostgreSQL one.
fn on_both(body: impl Fn(&HistoryAt)) {
    let d = tempfile::tempdir().unwrap();
    let file = HistoryAt {
        store: Store::File(d.path().join("sub/h.sqlite")),
        from: "test".into(),
    };
    body(&file);
    let c = Cluster::start().unwrap_or_else(|e| panic!("{e:#}"));
    let db = HistoryAt {
        store: Store::Postgres(c.url()),
        from: "test".into(),
    };
    body(&db);
}

fn row(board: &str, check: &str, outcome: &str, figures: &[(&str, f64)]) -> Row {
    Row {
        key: Key {
            board: board.into(),
            suite: "s".into(),
            check: check.into(),
        },
        outcome: outcome.into(),
        message: format!("{check} {outcome}"),
        duration_s: 1.5,
        figures: figures.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
    }
}

fn run(id: &str, lab: &str, host: &str) -> RunRow {
    RunRow {
        run_id: id.into(),
        lab: lab.into(),
        host: host.into(),
        started: format!("2026-01-01T00:00:0{}Z", id.len() % 10),
        report_dir: format!("reports/{id}"),
        exit_code: 0,
    }
}

#[test]
fn runs_come_back_newest_first_per_lab() {
    on_both(|at| {
        let mut h = History::open(at).unwrap();
        for (id, lab, o) in [
            ("r1", "a", "pass"),
            ("r2", "b", "fail"),
            ("r3", "a", "fail"),
        ] {
            h.record(&run(id, lab, "h1"), &[row("b", "x", o, &[])])
                .unwrap();
        }
        drop(h);
        // Reopened: the file or database is the whole store.
        let mut h = History::open(at).unwrap();
        let runs = h.recent("a", 5).unwrap();
        let ids: Vec<&str> = runs.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(ids, ["r3", "r1"], "{at}");
        let k = row("b", "x", "", &[]).key;
        assert_eq!(runs[0].1[&k].0, Outcome::Fail);
        assert_eq!(runs[1].1[&k], (Outcome::Pass, "x pass".to_string()));
        assert_eq!(h.recent("a", 1).unwrap().len(), 1);
        // A run id is stored once, and a refused run leaves nothing behind.
        let e = h
            .record(&run("r1", "a", "h1"), &[row("b", "y", "pass", &[])])
            .unwrap_err();
        assert!(e.to_string().starts_with(&format!("{at}: ")), "{e}");
        assert!(!h.checks("a").unwrap().contains(&"y".to_string()));
    });
}

#[test]
fn a_check_comes_back_with_its_host_and_figures_newest_first() {
    on_both(|at| {
        let mut h = History::open(at).unwrap();
        h.record(
            &run("n1", "lab", "host-a"),
            &[
                row(
                    "b1",
                    "nvme",
                    "pass",
                    &[("write_mb_s", 512.5), ("bytes", 1e6)],
                ),
                row("b2", "nvme", "fail", &[]),
                row("b1", "ping", "pass", &[("rtt_ms", 0.25)]),
            ],
        )
        .unwrap();
        h.record(
            &run("n2", "lab", "host-b"),
            &[row("b1", "nvme", "fail", &[("write_mb_s", 3.0)])],
        )
        .unwrap();
        h.record(
            &run("o1", "other", "host-c"),
            &[row("b1", "nvme", "pass", &[])],
        )
        .unwrap();

        let runs = h.check_runs("lab", "nvme").unwrap();
        let seen: Vec<(&str, &str, &str, &str)> = runs
            .iter()
            .map(|r| {
                (
                    r.run_id.as_str(),
                    r.board.as_str(),
                    r.host.as_str(),
                    r.outcome.as_str(),
                )
            })
            .collect();
        assert_eq!(seen.len(), 3, "{at}: {runs:#?}");
        assert_eq!(seen[0], ("n2", "b1", "host-b", "fail"), "{at}");
        let b1_first = runs
            .iter()
            .find(|r| r.run_id == "n1" && r.board == "b1")
            .unwrap();
        assert_eq!(
            b1_first.figures,
            [
                ("bytes".to_string(), 1e6),
                ("write_mb_s".to_string(), 512.5)
            ],
            "{at}"
        );
        assert_eq!(b1_first.lab, "lab");
        assert_eq!(b1_first.duration_s, 1.5);
        assert_eq!(runs[0].figures, [("write_mb_s".to_string(), 3.0)]);
        // Every lab: the other lab's run too.
        assert_eq!(h.check_runs("", "nvme").unwrap().len(), 4, "{at}");
        assert_eq!(h.checks("lab").unwrap(), ["nvme", "ping"]);
        assert!(h.check_runs("lab", "nope").unwrap().is_empty());
    });
}

#[test]
fn two_writers_at_once_get_distinct_sequence_numbers() {
    on_both(|at| {
        History::open(at).unwrap();
        std::thread::scope(|s| {
            for w in 0..4 {
                s.spawn(move || {
                    let mut h = History::open(at).unwrap();
                    for i in 0..5 {
                        let id = format!("w{w}-{i}");
                        h.record(
                            &run(&id, "lab", &format!("h{w}")),
                            &[row("b", "x", "pass", &[])],
                        )
                        .unwrap_or_else(|e| panic!("{e}"));
                    }
                });
            }
        });
        let mut h = History::open(at).unwrap();
        let mut seqs: Vec<i64> = h
            .check_runs("lab", "x")
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        seqs.sort();
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>(), "{at}");
    });
}

#[test]
fn migrations_are_applied_once_and_a_newer_schema_is_refused() {
    on_both(|at| {
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    History::open(at)
                        .map(|_| ())
                        .unwrap_or_else(|e| panic!("{e}"))
                });
            }
        });
        let mut h = History::open(at).unwrap();
        let versions = h
            .run(|db| {
                Box::pin(async move {
                    let rows = db
                        .query(
                            "SELECT version FROM hil_history_schema ORDER BY version",
                            &[],
                        )
                        .await?;
                    rows.iter()
                        .map(|r| col(r, 0)?.int())
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .unwrap();
        assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>(), "{at}");
        h.run(|db| {
            Box::pin(async move {
                db.exec(
                    "INSERT INTO hil_history_schema (version, applied_at) VALUES ($1, $2)",
                    &[Value::from(SCHEMA_VERSION + 1), Value::from("later")],
                )
                .await
            })
        })
        .unwrap();
        drop(h);
        let e = History::open(at).err().unwrap().to_string();
        assert!(e.starts_with(&format!("{at}: ")), "{e}");
        assert!(
            e.contains("newer than this hil knows") && e.contains("upgrade hil"),
            "{e}"
        );
    });
}

#[test]
fn a_history_file_from_before_schema_versions_is_migrated_in_place() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("old.sqlite");
    let old = rusqlite::Connection::open(&p).unwrap();
    old.execute_batch(
        "CREATE TABLE hil_runs (run_id TEXT PRIMARY KEY, lab TEXT NOT NULL, seq INTEGER NOT NULL,
           started TEXT NOT NULL, report_dir TEXT NOT NULL, exit_code INTEGER NOT NULL);
         CREATE TABLE hil_results (run_id TEXT NOT NULL REFERENCES hil_runs (run_id),
           board TEXT NOT NULL, suite TEXT NOT NULL, check_name TEXT NOT NULL,
           outcome TEXT NOT NULL, message TEXT NOT NULL, duration_s DOUBLE PRECISION NOT NULL,
           PRIMARY KEY (run_id, board, suite, check_name));
         INSERT INTO hil_runs VALUES ('old1', 'lab', 1, '2025-01-01T00:00:00Z', 'd', 0);
         INSERT INTO hil_results VALUES ('old1', 'b', 's', 'x', 'pass', 'ok', 2.0);",
    )
    .unwrap();
    drop(old);
    let at = HistoryAt {
        store: Store::File(p),
        from: "test".into(),
    };
    let mut h = History::open_existing(&at).unwrap();
    h.record(
        &run("new1", "lab", "h"),
        &[row("b", "x", "fail", &[("n", 1.0)])],
    )
    .unwrap();
    let runs = h.check_runs("lab", "x").unwrap();
    let seen: Vec<(&str, i64, &str)> = runs
        .iter()
        .map(|r| (r.run_id.as_str(), r.seq, r.host.as_str()))
        .collect();
    assert_eq!(seen, [("new1", 2, "h"), ("old1", 1, "")]);
}

#[test]
fn a_missing_history_file_is_not_created_by_reading() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("none.sqlite");
    let at = HistoryAt {
        store: Store::File(p.clone()),
        from: "lab.toml key `history`".into(),
    };
    let e = History::open_existing(&at).err().unwrap();
    assert!(matches!(e, HistoryError::Missing { .. }));
    let e = e.to_string();
    assert!(
        e.contains(&format!("history file {}", p.display()))
            && e.contains("run `hil nightly`")
            && e.contains("lab.toml key `history`"),
        "{e}"
    );
    assert!(!Path::new(&p).exists());
}

#[test]
fn an_unreachable_database_is_an_error_naming_it_without_the_password() {
    let port = crate::console::ser2net::free_port().unwrap();
    let at = HistoryAt {
        store: Store::Postgres(format!("postgres://hil:secret@127.0.0.1:{port}/labs")),
        from: "HIL_DATABASE_URL".into(),
    };
    let e = History::open(&at).err().unwrap();
    let hint = e.hint().unwrap_or_default().to_string();
    let e = e.to_string();
    assert!(
        e.starts_with(&format!(
            "history database HIL_DATABASE_URL=postgres://hil:***@127.0.0.1:{port}/labs: "
        )),
        "{e}"
    );
    assert!(!e.contains("secret"), "{e}");
    assert!(hint.contains("unset HIL_DATABASE_URL"), "{hint}");
}

#[test]
fn the_dashboard_reads_the_newest_runs_their_results_and_totals() {
    on_both(|at| {
        let mut h = History::open(at).unwrap();
        for (i, (id, lab, o, boot)) in [
            ("w1", "a", "pass", 1.0),
            ("w2", "b", "fail", 9.0),
            ("w3", "a", "fail", 3.0),
            ("w4", "a", "pass", 4.0),
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = run(id, lab, "h1");
            r.started = format!("2026-01-01T00:00:0{i}Z");
            r.exit_code = i32::from(o == "fail");
            h.record(
                &r,
                &[
                    row("b1", "boot", "pass", &[("boot_s", boot)]),
                    row("b1", "x", o, &[]),
                ],
            )
            .unwrap();
        }
        let ids = |v: Vec<window::RunInfo>| v.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
        assert_eq!(ids(h.runs("a", 2).unwrap()), ["w4", "w3"]);
        assert_eq!(ids(h.runs("", 10).unwrap()), ["w4", "w3", "w2", "w1"]);
        let seqs: Vec<i64> = h.runs("a", 10).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [3, 2, 1]);
        // The results of exactly the newest runs asked for.
        let mut got: Vec<(String, String, String)> = h
            .results("a", 2)
            .unwrap()
            .into_iter()
            .map(|c| (c.run_id, c.check, c.outcome))
            .collect();
        got.sort();
        let want: Vec<(String, String, String)> = [
            ("w3", "boot", "pass"),
            ("w3", "x", "fail"),
            ("w4", "boot", "pass"),
            ("w4", "x", "pass"),
        ]
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
        assert_eq!(got, want);
        let w2 = h.run_by_id("w2").unwrap().unwrap();
        assert_eq!(
            (w2.lab.as_str(), w2.exit_code, w2.report_dir.as_str()),
            ("b", 1, "reports/w2")
        );
        assert_eq!(h.run_by_id("nope").unwrap(), None);
        let t = h.totals("a").unwrap();
        assert_eq!(t.runs_by_exit_code, [(0, 2), (1, 1)]);
        assert_eq!(
            t.results_by_outcome,
            [("fail".to_string(), 1), ("pass".to_string(), 5)]
        );
        assert_eq!(t.last_boot_s, [("b1".to_string(), "w4".to_string(), 4.0)]);
        let all = h.totals("").unwrap();
        assert_eq!(all.runs_by_exit_code, [(0, 2), (1, 2)]);
    });
}
