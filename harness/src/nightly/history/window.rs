//! What the lab dashboard (`hil serve`) reads of the history: the newest runs, their
//! results in one query, one run by id, and totals for the metrics. Read-only, on either
//! backend, with the same portable SQL as the rest of the history.

use super::sql::{col, Sql, Value};
use super::History;
use serde::Serialize;

/// One recorded run (a row of `hil_runs`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    pub run_id: String,
    pub lab: String,
    /// The run's number within its lab (1, 2, ...).
    pub seq: i64,
    /// RFC 3339.
    pub started: String,
    /// The lab host that ran it.
    pub host: String,
    /// Where its reports were written, as the nightly was given it (relative paths are
    /// relative to the directory the nightly ran in).
    pub report_dir: String,
    pub exit_code: i32,
}

/// One result of one run, without its message and figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultCell {
    pub run_id: String,
    pub board: String,
    pub suite: String,
    pub check: String,
    pub outcome: String,
    pub message: String,
}

const RUN_COLS: &str = "run_id, lab, seq, started, host, report_dir, exit_code";

/// Newest first: by sequence within one lab; across labs by start time.
fn newest(lab: &str) -> &'static str {
    if lab.is_empty() {
        "ORDER BY started DESC, seq DESC"
    } else {
        "ORDER BY seq DESC"
    }
}

fn run_info(r: &[Value]) -> Result<RunInfo, String> {
    Ok(RunInfo {
        run_id: col(r, 0)?.text()?,
        lab: col(r, 1)?.text()?,
        seq: col(r, 2)?.int()?,
        started: col(r, 3)?.text()?,
        host: col(r, 4)?.text()?,
        report_dir: col(r, 5)?.text()?,
        exit_code: col(r, 6)?.int()? as i32,
    })
}

async fn runs(db: &mut dyn Sql, lab: &str, n: usize) -> Result<Vec<RunInfo>, String> {
    let sql = format!(
        "SELECT {RUN_COLS} FROM hil_runs WHERE (lab = $1 OR $1 = '') {} LIMIT $2",
        newest(lab)
    );
    let rows = db
        .query(&sql, &[Value::from(lab), Value::from(n as i64)])
        .await?;
    rows.iter().map(|r| run_info(r)).collect()
}

async fn results(db: &mut dyn Sql, lab: &str, n: usize) -> Result<Vec<ResultCell>, String> {
    let sql = format!(
        "SELECT res.run_id, res.board, res.suite, res.check_name, res.outcome, res.message
         FROM hil_results res
         WHERE res.run_id IN (SELECT run_id FROM hil_runs WHERE (lab = $1 OR $1 = '') {} LIMIT $2)",
        newest(lab)
    );
    let rows = db
        .query(&sql, &[Value::from(lab), Value::from(n as i64)])
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ResultCell {
                run_id: col(r, 0)?.text()?,
                board: col(r, 1)?.text()?,
                suite: col(r, 2)?.text()?,
                check: col(r, 3)?.text()?,
                outcome: col(r, 4)?.text()?,
                message: col(r, 5)?.text()?,
            })
        })
        .collect()
}

/// Totals over the whole history (of `lab`, or of every lab when empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// (exit code, runs), by exit code.
    pub runs_by_exit_code: Vec<(i32, u64)>,
    /// (outcome, results), by outcome name.
    pub results_by_outcome: Vec<(String, u64)>,
    /// (board, run id, value) of the newest recorded value of figure `boot_s` per board.
    pub last_boot_s: Vec<(String, String, f64)>,
}

async fn totals(db: &mut dyn Sql, lab: &str) -> Result<Totals, String> {
    let p = [Value::from(lab)];
    let mut t = Totals::default();
    for r in db
        .query(
            "SELECT exit_code, COUNT(*) FROM hil_runs WHERE (lab = $1 OR $1 = '')
             GROUP BY exit_code ORDER BY exit_code",
            &p,
        )
        .await?
    {
        t.runs_by_exit_code
            .push((col(&r, 0)?.int()? as i32, col(&r, 1)?.int()? as u64));
    }
    for r in db
        .query(
            "SELECT res.outcome, COUNT(*) FROM hil_results res
             JOIN hil_runs r ON r.run_id = res.run_id
             WHERE (r.lab = $1 OR $1 = '') GROUP BY res.outcome ORDER BY res.outcome",
            &p,
        )
        .await?
    {
        t.results_by_outcome
            .push((col(&r, 0)?.text()?, col(&r, 1)?.int()? as u64));
    }
    // The newest run of each board that recorded a boot time; the boot step's figure.
    let rows = db
        .query(
            "SELECT f.board, r.run_id, f.value, r.started, r.seq FROM hil_figures f
             JOIN hil_runs r ON r.run_id = f.run_id
             WHERE (r.lab = $1 OR $1 = '') AND f.figure = 'boot_s'
             ORDER BY f.board, r.started DESC, r.seq DESC",
            &p,
        )
        .await?;
    for r in rows {
        let board = col(&r, 0)?.text()?;
        if t.last_boot_s.last().is_some_and(|(b, ..)| *b == board) {
            continue;
        }
        t.last_boot_s
            .push((board, col(&r, 1)?.text()?, col(&r, 2)?.real()?));
    }
    Ok(t)
}

impl History {
    /// The newest `n` runs (of `lab`, or of every lab when empty), newest first.
    pub fn runs(&mut self, lab: &str, n: usize) -> Result<Vec<RunInfo>, super::HistoryError> {
        let lab = lab.to_string();
        self.run(move |db| Box::pin(async move { runs(db, &lab, n).await }))
    }

    /// Every result of the newest `n` runs (of `lab`, or of every lab when empty), in one
    /// query.
    pub fn results(&mut self, lab: &str, n: usize) -> Result<Vec<ResultCell>, super::HistoryError> {
        let lab = lab.to_string();
        self.run(move |db| Box::pin(async move { results(db, &lab, n).await }))
    }

    /// One run by its id.
    pub fn run_by_id(&mut self, run_id: &str) -> Result<Option<RunInfo>, super::HistoryError> {
        let id = run_id.to_string();
        self.run(move |db| {
            Box::pin(async move {
                let sql = format!("SELECT {RUN_COLS} FROM hil_runs WHERE run_id = $1");
                let rows = db.query(&sql, &[Value::from(id.as_str())]).await?;
                rows.first().map(|r| run_info(r)).transpose()
            })
        })
    }

    /// Run and result counts and the last boot time per board.
    pub fn totals(&mut self, lab: &str) -> Result<Totals, super::HistoryError> {
        let lab = lab.to_string();
        self.run(move |db| Box::pin(async move { totals(db, &lab).await }))
    }
}
