//! The nightly result history: one SQLite file (rusqlite, bundled SQLite).
//!
//! The schema and every statement are plain SQL that PostgreSQL runs unchanged (TEXT,
//! INTEGER, DOUBLE PRECISION, `$n` parameters, no AUTOINCREMENT: runs are keyed by their
//! run id and ordered by an explicit sequence number), so a shared lab can keep its history
//! in PostgreSQL with the same tables.

use super::changes::{Key, Snapshot};
use crate::outcome::Outcome;
use rusqlite::{params, Connection};
use std::path::Path;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hil_runs (
    run_id     TEXT PRIMARY KEY,
    lab        TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    started    TEXT NOT NULL,
    report_dir TEXT NOT NULL,
    exit_code  INTEGER NOT NULL
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
";

pub struct History {
    db: Connection,
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row {
    pub key: Key,
    pub outcome: String,
    pub message: String,
    pub duration_s: f64,
}

pub struct RunRow<'a> {
    pub run_id: &'a str,
    pub lab: &'a str,
    pub started: &'a str,
    pub report_dir: &'a str,
    pub exit_code: i32,
}

impl History {
    pub fn open(path: &Path) -> anyhow::Result<History> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!(
                    "history {}: cannot create {}: {e}",
                    path.display(),
                    dir.display()
                )
            })?;
        }
        let db = Connection::open(path)
            .map_err(|e| anyhow::anyhow!("history {}: {e}", path.display()))?;
        db.execute_batch(SCHEMA)
            .map_err(|e| anyhow::anyhow!("history {}: creating tables: {e}", path.display()))?;
        Ok(History { db })
    }

    /// The last `n` runs of `lab`, newest first, as snapshots.
    pub fn recent(&self, lab: &str, n: usize) -> anyhow::Result<Vec<(String, Snapshot)>> {
        let mut q = self
            .db
            .prepare("SELECT run_id FROM hil_runs WHERE lab = $1 ORDER BY seq DESC LIMIT $2")?;
        let ids: Vec<String> = q
            .query_map(params![lab, n as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut rows = self.db.prepare(
            "SELECT board, suite, check_name, outcome, message FROM hil_results WHERE run_id = $1",
        )?;
        let mut out = Vec::new();
        for id in ids {
            let raw: Vec<(Key, String, String)> = rows
                .query_map(params![id], |r| {
                    Ok((
                        Key {
                            board: r.get(0)?,
                            suite: r.get(1)?,
                            check: r.get(2)?,
                        },
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            // A row with an outcome this hil does not know (written by a newer one) says
            // nothing comparable: it is left out rather than guessed.
            let snap: Snapshot = raw
                .into_iter()
                .filter_map(|(k, o, m)| Some((k, (Outcome::from_json_name(&o)?, m))))
                .collect();
            out.push((id, snap));
        }
        Ok(out)
    }

    /// Stores one run and its results in one transaction.
    pub fn record(&mut self, run: &RunRow, rows: &[Row]) -> anyhow::Result<()> {
        let tx = self.db.transaction()?;
        let seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM hil_runs WHERE lab = $1",
            params![run.lab],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO hil_runs (run_id, lab, seq, started, report_dir, exit_code) VALUES ($1, $2, $3, $4, $5, $6)",
            params![run.run_id, run.lab, seq, run.started, run.report_dir, run.exit_code],
        )?;
        {
            let mut ins = tx.prepare(
                "INSERT INTO hil_results (run_id, board, suite, check_name, outcome, message, duration_s) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )?;
            for r in rows {
                ins.execute(params![
                    run.run_id,
                    r.key.board,
                    r.key.suite,
                    r.key.check,
                    r.outcome,
                    r.message,
                    r.duration_s
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(check: &str, outcome: &str) -> Row {
        Row {
            key: Key {
                board: "b".into(),
                suite: "s".into(),
                check: check.into(),
            },
            outcome: outcome.into(),
            message: format!("{check} {outcome}"),
            duration_s: 1.5,
        }
    }

    #[test]
    fn runs_come_back_newest_first_per_lab() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/h.sqlite");
        let mut h = History::open(&p).unwrap();
        for (id, lab, o) in [
            ("r1", "a", "pass"),
            ("r2", "b", "fail"),
            ("r3", "a", "fail"),
        ] {
            let run = RunRow {
                run_id: id,
                lab,
                started: "t",
                report_dir: "d",
                exit_code: 0,
            };
            h.record(&run, &[row("x", o)]).unwrap();
        }
        drop(h);
        // Reopened: the file is the whole store.
        let h = History::open(&p).unwrap();
        let runs = h.recent("a", 5).unwrap();
        let ids: Vec<&str> = runs.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(ids, ["r3", "r1"]);
        let k = row("x", "").key;
        assert_eq!(runs[0].1[&k].0, Outcome::Fail);
        assert_eq!(runs[1].1[&k], (Outcome::Pass, "x pass".to_string()));
        assert_eq!(h.recent("a", 1).unwrap().len(), 1);
        // A run id is stored once.
        let mut h = h;
        let run = RunRow {
            run_id: "r1",
            lab: "a",
            started: "t",
            report_dir: "d",
            exit_code: 0,
        };
        assert!(h.record(&run, &[]).is_err());
    }
}
