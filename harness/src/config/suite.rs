//! Suite files (`suites/*.toml`): which checks, in which order, with which parameters.
//!
//! A check is `name`, `kind`, optional common keys (`timeout_s`, `via`) and kind-specific
//! parameters, which the check kind itself validates strictly (see [`crate::checks`]).

use super::error::{ConfigError, ConfigErrors};
use super::load::load_toml;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub defaults: Defaults,
    /// Whole-job deadline: when it passes, the running check is stopped, the rest are not
    /// run, devices are restored and boards powered off (an infrastructure error, exit 3).
    pub deadline_s: Option<u64>,
    #[serde(rename = "check")]
    pub checks: Vec<RawCheck>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Default per-check time limit.
    pub timeout_s: u64,
    /// Default transport for shell-like checks.
    #[serde(default = "Via::default")]
    pub via: Via,
    /// How many times a failed check is run again. A check that fails and then passes is
    /// reported as flaky (JUnit flakyFailure elements, `flaky` in results.json), never as
    /// a plain pass.
    #[serde(default)]
    pub retries: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// The board's serial console (works before networking, sees kernel messages).
    #[default]
    Console,
    /// An SSH exec channel (parallel-safe, binary-clean).
    Ssh,
    /// The KVM guest's console (the guest is started, with its devices, if needed).
    Guest,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RawCheck {
    pub name: String,
    pub kind: String,
    pub timeout_s: Option<u64>,
    pub via: Option<Via>,
    pub retries: Option<u32>,
    /// What to fix when this check stops a bring-up checklist (`hil checklist`).
    pub hint: Option<String>,
    /// Everything else: the kind's own parameters.
    #[serde(flatten)]
    pub params: toml::Table,
}

/// A suite with every check's parameters validated by its kind.
#[derive(Debug)]
pub struct Suite {
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    pub deadline: Option<std::time::Duration>,
    pub checks: Vec<crate::checks::CheckSpec>,
}

impl Suite {
    pub fn load(path: &Path) -> Result<Suite, ConfigErrors> {
        let file: SuiteFile = load_toml(path).map_err(|e| ConfigErrors(vec![e]))?;
        let mut errs = Vec::new();
        let mut checks = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, raw) in file.checks.into_iter().enumerate() {
            let key = format!("check[{i}]");
            if !seen.insert(raw.name.clone()) {
                errs.push(ConfigError::new(
                    path,
                    format!("{key}.name"),
                    format!(
                        "\"{}\" is used twice; expected unique check names",
                        raw.name
                    ),
                ));
            }
            if raw.retries.unwrap_or(file.defaults.retries) > 10 {
                errs.push(ConfigError::new(
                    path,
                    format!("{key}.retries"),
                    "is more than 10; expected 0 to 10 re-runs of a failed check",
                ));
            }
            if raw.timeout_s == Some(0) {
                errs.push(ConfigError::new(
                    path,
                    format!("{key}.timeout_s"),
                    "is 0; expected a positive number of seconds",
                ));
            }
            match crate::checks::CheckSpec::from_raw(path, &key, raw, &file.defaults) {
                Ok(c) => checks.push(c),
                Err(e) => errs.push(e),
            }
        }
        if file.deadline_s == Some(0) {
            errs.push(ConfigError::new(
                path,
                "deadline_s",
                "is 0; expected the whole job's limit in seconds (or no key for none)",
            ));
        }
        if checks.is_empty() && errs.is_empty() {
            errs.push(ConfigError::new(
                path,
                "check",
                "is empty; expected at least one [[check]]",
            ));
        }
        if errs.is_empty() {
            Ok(Suite {
                path: path.to_path_buf(),
                name: file.name,
                description: file.description,
                deadline: file.deadline_s.map(std::time::Duration::from_secs),
                checks,
            })
        } else {
            Err(ConfigErrors(errs))
        }
    }
}
