//! The nightly result history: a SQLite file by default ([`sqlite`]), or PostgreSQL for a
//! lab whose hosts share one history ([`pg`]); [`at`] says which.
//!
//! Both run the same tables and the same statements, written once here: portable types
//! only (TEXT, BIGINT, DOUBLE PRECISION; times as RFC 3339 text), `$n` parameters, no
//! AUTOINCREMENT (runs are keyed by their run id and ordered by an explicit per-lab
//! sequence number, drawn inside an exclusive transaction). The schema is versioned:
//! `hil_history_schema` lists the migrations applied, and hil applies the missing ones
//! when it opens the history (it is not the leases' `schema_version`, since both may
//! share one database). Each run records the lab host that wrote it (`HIL_HOST`, else the
//! hostname), so two hosts writing one history are told apart.

pub mod at;
mod pg;
pub mod sql;
mod sqlite;
pub mod window;

use super::changes::{Key, Snapshot};
use crate::outcome::Outcome;
use crate::pg_thread::{Fail, PgThread};
use at::{HistoryAt, Store};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use sql::{col, finish, Sql, Value};

/// Migrations in order; version N is `MIGRATIONS[N - 1]`. Applied ones are never edited:
/// a change of schema is a new entry.
const MIGRATIONS: &[&str] = &[
    // 1: runs and their results. IF NOT EXISTS: history files written before the schema
    // had versions hold these tables already (with INTEGER columns, the same storage as
    // BIGINT in SQLite).
    "
    CREATE TABLE IF NOT EXISTS hil_runs (
        run_id     TEXT PRIMARY KEY,
        lab        TEXT NOT NULL,
        seq        BIGINT NOT NULL,
        started    TEXT NOT NULL,
        report_dir TEXT NOT NULL,
        exit_code  BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS hil_results (
        run_id     TEXT NOT NULL REFERENCES hil_runs (run_id),
        board      TEXT NOT NULL,
        suite      TEXT NOT NULL,
        check_name TEXT NOT NULL,
        outcome    TEXT NOT NULL,
        message    TEXT NOT NULL,
        duration_s DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (run_id, board, suite, check_name)
    );
    CREATE INDEX IF NOT EXISTS hil_runs_lab_seq ON hil_runs (lab, seq);
    ",
    // 2: the lab host of each run, and the numeric figures of each result.
    "
    ALTER TABLE hil_runs ADD COLUMN host TEXT NOT NULL DEFAULT '';
    CREATE TABLE hil_figures (
        run_id     TEXT NOT NULL,
        board      TEXT NOT NULL,
        suite      TEXT NOT NULL,
        check_name TEXT NOT NULL,
        figure     TEXT NOT NULL,
        value      DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (run_id, board, suite, check_name, figure),
        FOREIGN KEY (run_id, board, suite, check_name)
            REFERENCES hil_results (run_id, board, suite, check_name)
    );
    CREATE INDEX hil_results_check ON hil_results (check_name);
    ",
];

/// The schema version this hil writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const VERSIONS: &str = "CREATE TABLE IF NOT EXISTS hil_history_schema (
    version    BIGINT PRIMARY KEY,
    applied_at TEXT NOT NULL
)";

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// `hil history` found nothing where the history should be.
    #[error("{at} does not exist; run `hil nightly` with it first, or change {from} to the history the nightlies write")]
    Missing { at: String, from: String },
    /// The database could not be opened or reached, or refused a statement.
    #[error("{at}: {err}")]
    Db {
        at: String,
        err: String,
        hint: String,
    },
    /// The check is not in the history (under that board).
    #[error("{at} has no runs of check `{check}`{on}; checks it has: {known}")]
    UnknownCheck {
        at: String,
        check: String,
        on: String,
        known: String,
    },
}

impl HistoryError {
    pub fn hint(&self) -> Option<&str> {
        match self {
            HistoryError::Db { hint, .. } => Some(hint),
            _ => None,
        }
    }
}

pub struct History {
    at: HistoryAt,
    db: Backend,
}

enum Backend {
    Sqlite(sqlite::SqliteSql),
    Pg(PgThread),
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row {
    pub key: Key,
    pub outcome: String,
    pub message: String,
    pub duration_s: f64,
    /// The result's numeric figures (name, value), as in results.json.
    pub figures: Vec<(String, f64)>,
}

#[derive(Debug, Clone)]
pub struct RunRow {
    pub run_id: String,
    pub lab: String,
    /// The lab host that ran it.
    pub host: String,
    pub started: String,
    pub report_dir: String,
    pub exit_code: i32,
}

/// One run of one check on one board, as `hil history` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRun {
    pub run_id: String,
    pub lab: String,
    pub seq: i64,
    pub started: String,
    pub host: String,
    pub board: String,
    pub suite: String,
    pub outcome: String,
    pub message: String,
    pub duration_s: f64,
    /// Sorted by name.
    pub figures: Vec<(String, f64)>,
}

impl History {
    /// Opens the history for writing, creating a SQLite file that is missing, and applies
    /// missing migrations. A database is connected now, so one that cannot be reached
    /// fails before any board boots.
    pub fn open(at: &HistoryAt) -> Result<History, HistoryError> {
        History::open_as(at, true)
    }

    /// Opens a history that must exist already (for reading it).
    pub fn open_existing(at: &HistoryAt) -> Result<History, HistoryError> {
        if let Store::File(p) = &at.store {
            if !p.is_file() {
                return Err(HistoryError::Missing {
                    at: at.to_string(),
                    from: at.from.clone(),
                });
            }
        }
        History::open_as(at, false)
    }

    fn open_as(at: &HistoryAt, create: bool) -> Result<History, HistoryError> {
        let db = match &at.store {
            Store::File(p) => {
                Backend::Sqlite(sqlite::SqliteSql::open(p, create).map_err(|e| db_error(at, e))?)
            }
            Store::Postgres(url) => Backend::Pg(pg::start(url)),
        };
        // A database migrates when its connection thread connects; this first call
        // connects it.
        let migrate_now = matches!(db, Backend::Sqlite(_));
        let mut h = History { at: at.clone(), db };
        h.run(move |db| {
            Box::pin(async move {
                if migrate_now {
                    migrate(db).await
                } else {
                    Ok(())
                }
            })
        })?;
        Ok(h)
    }

    pub fn at(&self) -> &HistoryAt {
        &self.at
    }

    /// Runs `op` against the database: at once for SQLite, on the connection thread for
    /// PostgreSQL.
    fn run<T: Send + 'static>(
        &mut self,
        op: impl for<'a> FnOnce(&'a mut dyn Sql) -> BoxFuture<'a, Result<T, String>> + Send + 'static,
    ) -> Result<T, HistoryError> {
        let r = match &mut self.db {
            Backend::Sqlite(s) => op(s).now_or_never().unwrap_or_else(not_ready),
            Backend::Pg(t) => t
                .call(move |c| {
                    Box::pin(async move {
                        op(&mut pg::PgSql { client: c })
                            .await
                            .map_err(Fail::<()>::Db)
                    })
                })
                .map_err(|e| match e {
                    Fail::Db(e) => e,
                    Fail::Verdict(()) => String::new(),
                }),
        };
        r.map_err(|e| db_error(&self.at, e))
    }

    /// The last `n` runs of `lab`, newest first, as snapshots.
    pub fn recent(&mut self, lab: &str, n: usize) -> Result<Vec<(String, Snapshot)>, HistoryError> {
        let lab = lab.to_string();
        self.run(move |db| Box::pin(async move { recent(db, &lab, n).await }))
    }

    /// Stores one run, its results and their figures in one transaction.
    pub fn record(&mut self, run: &RunRow, rows: &[Row]) -> Result<(), HistoryError> {
        let (run, rows) = (run.clone(), rows.to_vec());
        self.run(move |db| {
            Box::pin(async move {
                db.begin_exclusive().await?;
                let r = record(db, &run, &rows).await;
                finish(db, r).await
            })
        })
    }

    /// Every recorded run of `check` (in `lab`, or in every lab when `lab` is empty), with
    /// its figures, newest first: by sequence within a lab, else by start time.
    pub fn check_runs(&mut self, lab: &str, check: &str) -> Result<Vec<CheckRun>, HistoryError> {
        let (lab, check) = (lab.to_string(), check.to_string());
        self.run(move |db| Box::pin(async move { check_runs(db, &lab, &check).await }))
    }

    /// The names of the checks recorded (in `lab`, or in every lab when empty), sorted.
    pub fn checks(&mut self, lab: &str) -> Result<Vec<String>, HistoryError> {
        let lab = lab.to_string();
        self.run(move |db| {
            Box::pin(async move {
                let rows = db
                    .query(
                        "SELECT DISTINCT res.check_name FROM hil_results res
                         JOIN hil_runs r ON r.run_id = res.run_id
                         WHERE (r.lab = $1 OR $1 = '') ORDER BY res.check_name",
                        &[Value::from(lab.as_str())],
                    )
                    .await?;
                rows.iter().map(|r| col(r, 0)?.text()).collect()
            })
        })
    }
}

/// A SQLite future is ready when made; one that is not would be a bug here.
fn not_ready<T>() -> Result<T, String> {
    Err("a SQLite call did not finish at once".into())
}

fn db_error(at: &HistoryAt, err: String) -> HistoryError {
    let hint = match &at.store {
        Store::Postgres(_) if at.from == "HIL_DATABASE_URL" => "check that the history database is up and reachable from this host, or unset HIL_DATABASE_URL to use the lab file's history".to_string(),
        Store::Postgres(_) => format!("check that the history database is up and reachable from this host, or change {}", at.from),
        Store::File(_) => format!("check that the file is a hil history and writable, or change {}", at.from),
    };
    HistoryError::Db {
        at: at.to_string(),
        err,
        hint,
    }
}

fn now_text() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Applies the migrations the history lacks, in one exclusive transaction (hosts opening
/// it at once do not race). A history migrated by a newer hil is refused: its schema may
/// mean something this one does not know.
async fn migrate(db: &mut dyn Sql) -> Result<(), String> {
    db.begin_exclusive().await?;
    let r = migrate_locked(db).await;
    finish(db, r).await
}

async fn migrate_locked(db: &mut dyn Sql) -> Result<(), String> {
    db.batch(VERSIONS).await?;
    let rows = db
        .query(
            "SELECT COALESCE(MAX(version), 0) FROM hil_history_schema",
            &[],
        )
        .await?;
    let have = match rows.first() {
        Some(r) => col(r, 0)?.int()?,
        None => 0,
    };
    if have > SCHEMA_VERSION {
        return Err(format!(
            "the history schema is version {have}, newer than this hil knows ({SCHEMA_VERSION}): upgrade hil on this host"
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(have as usize) {
        let v = i as i64 + 1;
        db.batch(sql)
            .await
            .map_err(|e| format!("applying history schema migration {v}: {e}"))?;
        db.exec(
            "INSERT INTO hil_history_schema (version, applied_at) VALUES ($1, $2)",
            &[Value::from(v), Value::from(now_text().as_str())],
        )
        .await?;
    }
    Ok(())
}

async fn recent(db: &mut dyn Sql, lab: &str, n: usize) -> Result<Vec<(String, Snapshot)>, String> {
    let ids = db
        .query(
            "SELECT run_id FROM hil_runs WHERE lab = $1 ORDER BY seq DESC LIMIT $2",
            &[Value::from(lab), Value::from(n as i64)],
        )
        .await?;
    let mut out = Vec::new();
    for id in ids {
        let id = col(&id, 0)?.text()?;
        let rows = db
            .query(
                "SELECT board, suite, check_name, outcome, message FROM hil_results WHERE run_id = $1",
                &[Value::from(id.as_str())],
            )
            .await?;
        let mut snap = Snapshot::new();
        for r in rows {
            let key = Key {
                board: col(&r, 0)?.text()?,
                suite: col(&r, 1)?.text()?,
                check: col(&r, 2)?.text()?,
            };
            // A row with an outcome this hil does not know (written by a newer one) says
            // nothing comparable: it is left out rather than guessed.
            if let Some(o) = Outcome::from_json_name(&col(&r, 3)?.text()?) {
                snap.insert(key, (o, col(&r, 4)?.text()?));
            }
        }
        out.push((id, snap));
    }
    Ok(out)
}

async fn record(db: &mut dyn Sql, run: &RunRow, rows: &[Row]) -> Result<(), String> {
    let next = db
        .query(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM hil_runs WHERE lab = $1",
            &[Value::from(run.lab.as_str())],
        )
        .await?;
    let seq = match next.first() {
        Some(r) => col(r, 0)?.int()?,
        None => 1,
    };
    db.exec(
        "INSERT INTO hil_runs (run_id, lab, seq, started, report_dir, exit_code, host)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            Value::from(run.run_id.as_str()),
            Value::from(run.lab.as_str()),
            Value::from(seq),
            Value::from(run.started.as_str()),
            Value::from(run.report_dir.as_str()),
            Value::from(i64::from(run.exit_code)),
            Value::from(run.host.as_str()),
        ],
    )
    .await?;
    for r in rows {
        let key: [Value; 4] = [
            run.run_id.as_str().into(),
            r.key.board.as_str().into(),
            r.key.suite.as_str().into(),
            r.key.check.as_str().into(),
        ];
        let mut p = key.to_vec();
        p.extend([
            Value::from(r.outcome.as_str()),
            Value::from(r.message.as_str()),
            Value::from(r.duration_s),
        ]);
        db.exec(
            "INSERT INTO hil_results (run_id, board, suite, check_name, outcome, message, duration_s)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &p,
        )
        .await?;
        for (name, v) in &r.figures {
            let mut p = key.to_vec();
            p.extend([Value::from(name.as_str()), Value::from(*v)]);
            db.exec(
                "INSERT INTO hil_figures (run_id, board, suite, check_name, figure, value)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &p,
            )
            .await?;
        }
    }
    Ok(())
}

async fn check_runs(db: &mut dyn Sql, lab: &str, check: &str) -> Result<Vec<CheckRun>, String> {
    let p = [Value::from(lab), Value::from(check)];
    let rows = db
        .query(
            "SELECT r.run_id, r.lab, r.seq, r.started, r.host, res.board, res.suite,
                    res.outcome, res.message, res.duration_s
             FROM hil_results res JOIN hil_runs r ON r.run_id = res.run_id
             WHERE (r.lab = $1 OR $1 = '') AND res.check_name = $2",
            &p,
        )
        .await?;
    let figures = db
        .query(
            "SELECT f.run_id, f.board, f.suite, f.figure, f.value
             FROM hil_figures f JOIN hil_runs r ON r.run_id = f.run_id
             WHERE (r.lab = $1 OR $1 = '') AND f.check_name = $2",
            &p,
        )
        .await?;
    let mut figs: std::collections::BTreeMap<(String, String, String), Vec<(String, f64)>> =
        Default::default();
    for f in figures {
        let k = (
            col(&f, 0)?.text()?,
            col(&f, 1)?.text()?,
            col(&f, 2)?.text()?,
        );
        figs.entry(k)
            .or_default()
            .push((col(&f, 3)?.text()?, col(&f, 4)?.real()?));
    }
    let mut out = Vec::new();
    for r in rows {
        let mut c = CheckRun {
            run_id: col(&r, 0)?.text()?,
            lab: col(&r, 1)?.text()?,
            seq: col(&r, 2)?.int()?,
            started: col(&r, 3)?.text()?,
            host: col(&r, 4)?.text()?,
            board: col(&r, 5)?.text()?,
            suite: col(&r, 6)?.text()?,
            outcome: col(&r, 7)?.text()?,
            message: col(&r, 8)?.text()?,
            duration_s: col(&r, 9)?.real()?,
            figures: Vec::new(),
        };
        let k = (c.run_id.clone(), c.board.clone(), c.suite.clone());
        c.figures = figs.remove(&k).unwrap_or_default();
        c.figures.sort_by(|a, b| a.0.cmp(&b.0));
        out.push(c);
    }
    if lab.is_empty() {
        out.sort_by(|a, b| b.started.cmp(&a.started).then(b.seq.cmp(&a.seq)));
    } else {
        out.sort_by_key(|r| std::cmp::Reverse(r.seq));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
