//! The lab file of `hil nightly`: which boards, which suites, where the history lives.
//! Strict TOML like board and suite files; paths are relative to the lab file.
//!
//! ```toml
//! name = "sim"                           # the history keeps each lab's runs apart
//! boards = ["sim-rk3588", "sim-rcar"]    # board files by name (boards/ or $HIL_BOARDS)
//! suites = ["../suites/smoke.toml"]      # every suite runs on every board
//! history = "../reports/history.sqlite"  # SQLite file, created on first use; or a
//!                                        # postgres://USER@HOST:PORT/DB URL
//! flaky_window = 5                       # runs looked at to call a check flaky
//! ```

use super::history::at::{self, HistoryAt};
use crate::config::load::load_toml;
use crate::config::{board, ConfigError, ConfigErrors};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabFile {
    name: String,
    boards: Vec<String>,
    suites: Vec<String>,
    history: String,
    #[serde(default = "default_window")]
    flaky_window: usize,
}

fn default_window() -> usize {
    5
}

#[derive(Debug, Clone)]
pub struct Lab {
    pub path: PathBuf,
    pub name: String,
    pub boards: Vec<String>,
    pub suites: Vec<PathBuf>,
    pub history: HistoryAt,
    pub flaky_window: usize,
}

impl Lab {
    pub fn load(path: &Path) -> Result<Lab, ConfigErrors> {
        let f: LabFile = load_toml(path).map_err(|e| ConfigErrors(vec![e]))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut errs = Vec::new();
        if f.boards.is_empty() {
            errs.push(ConfigError::new(
                path,
                "boards",
                "is empty; expected at least one board name",
            ));
        }
        if f.suites.is_empty() {
            errs.push(ConfigError::new(
                path,
                "suites",
                "is empty; expected at least one suite file",
            ));
        }
        for (i, b) in f.boards.iter().enumerate() {
            if let Err(e) = board::find(b) {
                errs.push(ConfigError::new(path, format!("boards[{i}]"), e.message));
            }
            if f.boards[..i].contains(b) {
                errs.push(ConfigError::new(
                    path,
                    format!("boards[{i}]"),
                    format!("\"{b}\" is listed twice"),
                ));
            }
        }
        let suites: Vec<PathBuf> = f.suites.iter().map(|s| base.join(s)).collect();
        for (i, s) in suites.iter().enumerate() {
            if !s.is_file() {
                errs.push(ConfigError::new(
                    path,
                    format!("suites[{i}]"),
                    format!(
                        "{} does not exist; expected a suite file, relative to the lab file",
                        s.display()
                    ),
                ));
            }
        }
        if f.flaky_window < 2 {
            errs.push(ConfigError::new(
                path,
                "flaky_window",
                "is below 2; expected how many runs (2 or more) to look at",
            ));
        }
        let history = at::parse(&f.history, base).map_err(|e| {
            ConfigError::new(
                path,
                "history",
                format!(
                    "{e}; expected a SQLite file, relative to the lab file, or a postgres:// URL"
                ),
            )
        });
        let history = match history {
            Ok(store) => Some(HistoryAt {
                store,
                from: format!("{} key `history`", path.display()),
            }),
            Err(e) => {
                errs.push(e);
                None
            }
        };
        let (true, Some(history)) = (errs.is_empty(), history) else {
            return Err(ConfigErrors(errs));
        };
        Ok(Lab {
            path: path.to_path_buf(),
            name: f.name,
            boards: f.boards,
            suites,
            history,
            flaky_window: f.flaky_window,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key_and_what_was_expected() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("lab.toml");
        std::fs::write(
            &p,
            "name = \"x\"\nboards = []\nsuites = [\"nope.toml\"]\nhistory = \"h.sqlite\"\nflaky_window = 1\n",
        )
        .unwrap();
        let e = Lab::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("key `boards`") && e.contains("at least one board"),
            "{e}"
        );
        assert!(
            e.contains("key `suites[0]`") && e.contains("nope.toml does not exist"),
            "{e}"
        );
        assert!(e.contains("key `flaky_window`"), "{e}");
        std::fs::write(
            &p,
            "name = \"x\"\nboards = []\nsuites = []\nhistroy = \"h\"\n",
        )
        .unwrap();
        let e = Lab::load(&p).unwrap_err().to_string();
        assert!(e.contains("unknown field `histroy`"), "{e}");
        std::fs::write(
            &p,
            "name = \"x\"\nboards = []\nsuites = []\nhistory = \"postgres://u:pw@[db\"\n",
        )
        .unwrap();
        let e = Lab::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("key `history`: postgres://u:***@[db is not a PostgreSQL connection URL"),
            "{e}"
        );
        assert!(!e.contains("pw"), "{e}");
    }
}
