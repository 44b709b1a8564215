//! One `hil run` as a library call, for the commands built on it (nightly, bisect,
//! checklist): loads the suite and boards, calls [`crate::runner::run`], reads back the
//! `results.json` it wrote.

use crate::config::{board, Board, ConfigErrors, Suite};
use crate::image_set::ImageSet;
use crate::runner::{BoardPlan, RunOptions};
use std::path::{Path, PathBuf};

/// What a finished run left.
#[derive(Debug, Clone)]
pub struct SuiteRun {
    pub exit_code: i32,
    pub dir: PathBuf,
    /// `results.json` as written by the runner.
    pub results: serde_json::Value,
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

/// Runs `suite` on `boards` (at once, one task per board) into `out`.
pub async fn run_suite(
    suite: &Path,
    boards: &[String],
    out: &Path,
    image_set: Option<ImageSet>,
) -> anyhow::Result<SuiteRun> {
    let suite = Suite::load(suite)?;
    let plans = load_boards(boards)?;
    let id = run_id(&suite.name);
    let exit_code = crate::runner::run(RunOptions {
        suite,
        boards: plans,
        out: out.to_path_buf(),
        run_id: id,
        progress: false,
        // Nightly, bisect and checklist queue for a board another run holds.
        leases: crate::lease::Leases::from_env(),
        wait: true,
        image_set,
    })
    .await?;
    let path = out.join("results.json");
    let text =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let results = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not valid JSON: {e}", path.display()))?;
    Ok(SuiteRun {
        exit_code,
        dir: out.to_path_buf(),
        results,
    })
}

/// Every case of a results.json as (board, case).
pub fn cases(results: &serde_json::Value) -> Vec<(&str, &serde_json::Value)> {
    results["boards"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| {
            let name = b["name"].as_str().unwrap_or("?");
            b["cases"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |c| (name, c))
        })
        .collect()
}
