//! Reports of a run: `junit.xml`, `results.json`, `summary.md`, `report.html`, per-board
//! logs.
//!
//! The whole report is rewritten (to a temporary file, then renamed) after every testcase,
//! so a run that is killed or crashes still leaves valid files holding all it did so far.

pub mod html;
pub mod json;
pub mod junit;
pub mod summary;

use crate::outcome::Outcome;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub suite: String,
    pub suite_file: String,
    pub harness_version: String,
    pub started: String,
    /// False until the run has ended (a crash leaves it false).
    pub complete: bool,
    pub duration_s: f64,
    pub exit_code: Option<i32>,
    /// Set when only some of the suite's checks were run (`hil run --check`): their
    /// names. Absent for a run of the whole suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_selected: Option<Vec<String>>,
    pub boards: Vec<BoardReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BoardReport {
    pub name: String,
    pub properties: BTreeMap<String, String>,
    pub cases: Vec<CaseReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseReport {
    pub name: String,
    pub kind: String,
    pub outcome: Outcome,
    pub message: String,
    pub duration_s: f64,
    /// Offset of this case in the run, seconds.
    pub started_s: f64,
    pub figures: serde_json::Map<String, serde_json::Value>,
    /// What the board's console printed during the case (cleaned text).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub console: String,
    /// Earlier attempts that did not count: failures re-run under the check's `retries`,
    /// infrastructure errors re-run after a power cycle. Empty for a first-time result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// Passed only after a failed attempt.
    #[serde(default)]
    pub flaky: bool,
    /// The limit the case ran against, seconds: a check's `timeout_s`, the sum of the
    /// boot's edge limits. None where the step has no single limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
}

/// One earlier attempt of a case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub outcome: Outcome,
    pub message: String,
    pub duration_s: f64,
    pub started_s: f64,
    /// The console slice of that attempt (JUnit system-out of the rerun element).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub console: String,
}

impl RunReport {
    pub fn board_mut(&mut self, name: &str) -> &mut BoardReport {
        if let Some(i) = self.boards.iter().position(|b| b.name == name) {
            return &mut self.boards[i];
        }
        self.boards.push(BoardReport {
            name: name.into(),
            properties: BTreeMap::new(),
            cases: Vec::new(),
        });
        self.boards.last_mut().expect("just pushed")
    }

    pub fn outcomes(&self) -> impl Iterator<Item = &Outcome> {
        self.boards
            .iter()
            .flat_map(|b| b.cases.iter().map(|c| &c.outcome))
    }

    /// Every case of the run with its board.
    pub fn cases(&self) -> impl Iterator<Item = (&str, &CaseReport)> {
        self.boards
            .iter()
            .flat_map(|b| b.cases.iter().map(move |c| (b.name.as_str(), c)))
    }

    /// The exit status the cases give (see [`crate::outcome::exit_code_of_cases`]).
    pub fn exit_status(&self) -> i32 {
        crate::outcome::exit_code_of_cases(self.cases().map(|(_, c)| (c.kind.as_str(), &c.outcome)))
    }
}

/// Owns the report directory and writes the report files.
pub struct ReportWriter {
    pub dir: PathBuf,
}

impl ReportWriter {
    /// Creates the directory; an unwritable one is reported before any board is touched.
    pub fn create(dir: &Path) -> std::io::Result<ReportWriter> {
        std::fs::create_dir_all(dir)?;
        let probe = dir.join(".hil-write-test");
        std::fs::write(&probe, b"")?;
        std::fs::remove_file(&probe)?;
        Ok(ReportWriter {
            dir: dir.to_path_buf(),
        })
    }

    pub fn board_dir(&self, board: &str) -> PathBuf {
        self.dir.join("boards").join(board)
    }

    pub fn write(&self, report: &RunReport) -> std::io::Result<()> {
        write_atomic(
            &self.dir.join("results.json"),
            json::render(report).as_bytes(),
        )?;
        write_atomic(
            &self.dir.join("junit.xml"),
            junit::render(report).as_bytes(),
        )?;
        write_atomic(
            &self.dir.join("summary.md"),
            summary::render(report).as_bytes(),
        )?;
        write_atomic(
            &self.dir.join("report.html"),
            html::render(report, &self.dir).as_bytes(),
        )?;
        Ok(())
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

/// Keeps the last `max` bytes of a console slice, cut at a line start.
pub fn tail_text(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    let cut = s[start..].find('\n').map_or(start, |p| start + p + 1);
    format!("[... {} bytes before this cut ...]\n{}", cut, &s[cut..])
}
