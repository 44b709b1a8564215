//! One `hil run` as a library call, for the commands built on it (nightly, bisect,
//! checklist): loads the suite and boards, calls [`crate::runner::run`] and hands back the
//! typed report it returns (the same types `results.json` is written from).

use crate::config::{board, Board, ConfigErrors, Suite};
use crate::engine::Policy;
use crate::image_set::ImageSet;
use crate::report::RunReport;
use crate::runner::{BoardPlan, RunOptions};
use std::path::{Path, PathBuf};

/// What a finished run left.
#[derive(Debug, Clone)]
pub struct SuiteRun {
    pub exit_code: i32,
    pub dir: PathBuf,
    /// The run's report, as `results.json` holds it.
    pub report: RunReport,
}

/// Loads board files by name; every bad one is reported at once.
pub fn load_boards(names: &[String]) -> Result<Vec<BoardPlan>, ConfigErrors> {
    let mut plans = Vec::new();
    let mut errs = Vec::new();
    for name in names {
        match board::find(name).map_err(|e| ConfigErrors(vec![e])) {
            Ok(path) => match Board::load(&path) {
                Ok(board) => plans.push(BoardPlan { path, board }),
                Err(e) => errs.extend(e.0),
            },
            Err(e) => errs.extend(e.0),
        }
    }
    if errs.is_empty() {
        Ok(plans)
    } else {
        Err(ConfigErrors(errs))
    }
}

/// A run id: UTC time and a label, e.g. `20261122-061500-smoke`.
pub fn run_id(label: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}-{label}",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
    )
}

/// Runs `suite` on `boards` (at once, one engine per board) into `out`. Nightly and
/// bisect queue for a board another run holds.
pub async fn run_suite(
    suite: &Path,
    boards: &[String],
    out: &Path,
    image_set: Option<ImageSet>,
) -> anyhow::Result<SuiteRun> {
    let suite = Suite::load(suite)?;
    let plans = load_boards(boards)?;
    let id = run_id(&suite.name);
    let report = crate::runner::run(RunOptions {
        suite,
        boards: plans,
        out: out.to_path_buf(),
        run_id: id,
        progress: crate::progress::Mode::Quiet,
        leases: crate::lease::Leases::from_env(),
        policy: Policy::batch(),
        image_set,
    })
    .await?;
    Ok(SuiteRun {
        exit_code: report.exit_code.unwrap_or_else(|| report.exit_status()),
        dir: out.to_path_buf(),
        report,
    })
}
