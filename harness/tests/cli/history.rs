//! `hil nightly` and `hil history` on the fake board, with the history in a SQLite file and
//! in PostgreSQL (a real server started by the test): the same test body passes on both,
//! and two lab hosts writing one database history are told apart.

use crate::common::*;
use crate::fake_board::{Fake, BOARD, LIMIT};
use crate::sim::{read_json, spawn_hil, wait_exit};
use hil::lease::pg_cluster::Cluster;
use std::path::PathBuf;

/// One fake lab: the board, a suite whose `kernel` check a test can break, a lab file.
struct Lab {
    fake: Fake,
    suite: PathBuf,
    file: PathBuf,
    /// HIL_DATABASE_URL for every hil of this lab, when the history is in PostgreSQL.
    db: Option<String>,
}

/// A nightly suite for the fake board; `KERNEL` is the regex its `kernel` check expects.
pub const SUITE: &str = "name = \"fake-night\"

[defaults]
timeout_s = 10
via = \"console\"

[[check]]
name = \"kernel\"
kind = \"shell\"
command = \"uname -r\"
expect = \"^KERNEL$\"

[[check]]
name = \"ssh-exit-status\"
kind = \"shell\"
via = \"ssh\"
command = \"echo over-ssh; exit 7\"
expect = \"^over-ssh$\"
exit_status = 7
";

impl Lab {
    fn new(db: Option<String>) -> Lab {
        let fake = Fake::new(|t| t);
        let dir = fake.out("lab");
        std::fs::create_dir_all(&dir).unwrap();
        let suite = dir.join("night.toml");
        let file = dir.join("lab.toml");
        std::fs::write(
            &file,
            "name = \"fake-lab\"\nboards = [\"fake-board\"]\nsuites = [\"night.toml\"]\nhistory = \"history.sqlite\"\n",
        )
        .unwrap();
        let lab = Lab {
            fake,
            suite,
            file,
            db,
        };
        lab.kernel_is("6\\\\.1\\\\.0-hil-fake");
        lab
    }

    /// What the `kernel` check expects `uname -r` to print (a regex, TOML-escaped).
    fn kernel_is(&self, re: &str) {
        std::fs::write(&self.suite, SUITE.replace("KERNEL", re)).unwrap();
    }

    fn sqlite(&self) -> PathBuf {
        self.file.parent().unwrap().join("history.sqlite")
    }

    fn env(&self, host: &str) -> Vec<(&'static str, String)> {
        let mut env = self.fake.env();
        env.push(("HIL_HOST", host.to_string()));
        if let Some(url) = &self.db {
            env.push(("HIL_DATABASE_URL", url.clone()));
        }
        env
    }

    /// `hil nightly` as lab host `host` would run it; its exit code and changes.json.
    fn night(&self, name: &str, host: &str) -> (i32, serde_json::Value, PathBuf) {
        let out = self.fake.out(name);
        let env = self.env(host);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (mut g, _rx) = spawn_hil(
            &[
                "nightly",
                self.file.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            &env,
        );
        let code = wait_exit(&mut g, LIMIT);
        let changes = read_json(&out.join("changes.json"));
        (code, changes, out)
    }

    /// `hil history ARGS --lab LAB` as lab host `host`.
    fn history(&self, host: &str, args: &[&str]) -> std::process::Output {
        let mut c = hil();
        c.arg("history")
            .args(args)
            .args(["--lab", self.file.to_str().unwrap()]);
        c.envs(self.env(host));
        run(&mut c)
    }
}

fn pg() -> Cluster {
    Cluster::start().unwrap_or_else(|e| panic!("{e:#}"))
}

/// A good night, then one whose kernel check fails: the second names the new failure,
/// and `hil history kernel` shows both, newest first, with host, figures and stability.
fn nightly_names_the_new_failure_and_history_shows_it(lab: &Lab) {
    let (code, changes, out) = lab.night("night-1", "lab-a");
    assert_eq!(code, 0, "first night; changes: {changes:#}");
    assert_eq!(changes["baseline"], false);
    let xml = std::fs::read_to_string(out.join(format!("junit-{BOARD}.xml"))).unwrap();
    assert!(
        xml.contains("testsuite name=\"fake-board/fake-night\""),
        "{xml}"
    );

    lab.kernel_is("6\\\\.2\\\\.0-expected");
    let (code, changes, out) = lab.night("night-2", "lab-a");
    assert_eq!(code, 1, "second night; changes: {changes:#}");
    assert_eq!(changes["baseline"], true);
    let new: Vec<String> = changes["new_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}/{}",
                f[0]["board"].as_str().unwrap(),
                f[0]["check"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(new, ["fake-board/kernel"], "{changes:#}");
    let md = std::fs::read_to_string(out.join("changes.md")).unwrap();
    assert!(md.contains("## New failures (1)"), "{md}");

    let o = lab.history("lab-a", &["kernel"]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{text}{}", stderr(&o));
    assert!(
        text.contains("fake-board (suite fake-night): stability 50% — 1 of 2 passed, over all 2 runs recorded"),
        "{text}"
    );
    let fail = text
        .find(" lab-a  fail ")
        .unwrap_or_else(|| panic!("{text}"));
    let pass = text
        .find(" lab-a  pass ")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(fail < pass, "newest first: {text}");
    assert!(text.contains("exit_status=0"), "{text}");
    let o = lab.history("lab-a", &["ssh-exit-status", "--last", "1"]);
    let text = stdout(&o);
    assert!(
        text.contains("stability 100% — 1 of 1 passed, over the last 1 run")
            && text.contains("exit_status=7"),
        "{text}{}",
        stderr(&o)
    );
}

#[test]
fn nightly_on_a_sqlite_history_names_the_new_failure() {
    let lab = Lab::new(None);
    nightly_names_the_new_failure_and_history_shows_it(&lab);
    assert!(lab.sqlite().is_file());
}

#[test]
fn pg_nightly_on_a_database_history_names_the_new_failure() {
    let db = pg();
    let lab = Lab::new(Some(db.url()));
    nightly_names_the_new_failure_and_history_shows_it(&lab);
    // The history went to the database only.
    assert!(!lab.sqlite().exists());
}

#[test]
fn pg_two_lab_hosts_write_one_history_that_either_reads() {
    let db = pg();
    let lab = Lab::new(Some(db.url()));
    let (a, ..) = lab.night("night-a", "lab-a");
    lab.kernel_is("6\\\\.2\\\\.0-expected");
    let (b, ..) = lab.night("night-b", "lab-b");
    assert_eq!((a, b), (0, 1));
    let from_a = lab.history("lab-a", &["kernel", "--board", BOARD]);
    let from_b = lab.history("lab-b", &["kernel", "--board", BOARD]);
    let text = stdout(&from_a);
    assert_eq!(from_a.status.code(), Some(0), "{text}{}", stderr(&from_a));
    assert_eq!(text, stdout(&from_b));
    let b_row = text
        .find(" lab-b  fail ")
        .unwrap_or_else(|| panic!("{text}"));
    let a_row = text
        .find(" lab-a  pass ")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(b_row < a_row, "newest first: {text}");
    assert!(
        text.contains("history database HIL_DATABASE_URL=postgres://"),
        "{text}"
    );

    // The same database named by --history, without the variable.
    let mut c = hil();
    c.args(["history", "kernel", "--history", &db.url()]);
    c.envs(lab.fake.env());
    let o = run(&mut c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("stability 50% — 1 of 2 passed"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn history_errors_name_the_file_key_or_url_and_the_fix() {
    let lab = Lab::new(None);
    // No nightly yet: the lab file's history does not exist.
    let o = lab.history("h", &["kernel"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("history file {}", lab.sqlite().display()))
            && e.contains("run `hil nightly`")
            && e.contains("key `history`"),
        "{e}"
    );
    assert!(!lab.sqlite().exists());

    let (code, ..) = lab.night("night-1", "h");
    assert_eq!(code, 0);
    let o = lab.history("h", &["kernal"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("has no runs of check `kernal`")
            && e.contains("checks it has: boot, kernel, ssh-exit-status"),
        "{e}"
    );
    let o = lab.history("h", &["kernel", "--board", "other-board"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("(boards that ran it) fake-board"),
        "{}",
        stderr(&o)
    );

    // Nothing says where the history is.
    let o = run(hil().args(["history", "kernel"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("give --lab LABFILE"), "{}", stderr(&o));

    // A database that does not answer: lab trouble (3), named without its password.
    let port = crate::fake_board::free_port();
    let url = format!("postgres://hil:secret@127.0.0.1:{port}/h");
    let o = run(hil()
        .args(["history", "kernel", "--lab", lab.file.to_str().unwrap()])
        .envs(lab.fake.env())
        .env("HIL_DATABASE_URL", &url));
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{e}");
    assert!(
        e.contains(&format!(
            "history database HIL_DATABASE_URL=postgres://hil:***@127.0.0.1:{port}/h: "
        )) && e.contains("unset HIL_DATABASE_URL")
            && !e.contains("secret"),
        "{e}"
    );
}
