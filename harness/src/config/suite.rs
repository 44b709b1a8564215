//! Suite files (`suites/*.toml`): which checks, in which order, with which parameters.
//!
//! A check is `name`, `kind`, optional common keys (`timeout_s`, `via`) and kind-specific
//! parameters, which the check kind itself validates strictly (see [`crate::checks`]).

use super::error::{ConfigError, ConfigErrors};
use super::limits::{SecsRange, STEP_MAX_S};
use super::load::load_toml;
use super::validate::Validation;
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
    /// The names given with `hil run --check`, in suite order, when only those checks
    /// run; `None` for the whole suite.
    pub selected: Option<Vec<String>>,
}

impl Suite {
    pub fn load(path: &Path) -> Result<Suite, ConfigErrors> {
        let file: SuiteFile = load_toml(path).map_err(|e| ConfigErrors(vec![e]))?;
        let mut v = Validation::new(path);
        validate_job(&mut v, &file);
        let mut checks = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, raw) in file.checks.into_iter().enumerate() {
            let key = format!("check[{i}]");
            validate_check(&mut v, &key, &raw, &mut seen);
            let typed = typed_command(&raw);
            match crate::checks::CheckSpec::from_raw(path, &key, raw, &file.defaults) {
                Ok(c) => {
                    if let Some(cmd) = typed.filter(|_| c.via != Via::Ssh) {
                        v.typed(&format!("{key}.command"), &cmd);
                    }
                    checks.push(c);
                }
                Err(e) => v.errors_mut().push(e),
            }
        }
        let mut errs = first_per_key(v.into_errors());
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
                selected: None,
            })
        } else {
            Err(ConfigErrors(errs))
        }
    }
}

impl Suite {
    /// Keeps only the named checks, in the suite's order (which is the order the board
    /// goes through its states). The boot the engine does before the first check follows
    /// from the checks that remain. A name the suite does not have is a usage error that
    /// names the suite file and lists its checks, so a typo never runs an empty job.
    pub fn select(&mut self, names: &[String]) -> Result<(), crate::error::UsageError> {
        if names.is_empty() {
            return Ok(());
        }
        let unknown: Vec<&str> = names
            .iter()
            .filter(|n| !self.checks.iter().any(|c| &c.name == *n))
            .map(|n| n.as_str())
            .collect();
        if !unknown.is_empty() {
            let have: Vec<&str> = self.checks.iter().map(|c| c.name.as_str()).collect();
            let what = if unknown.len() == 1 {
                "no such check"
            } else {
                "no such checks"
            };
            return Err(crate::error::UsageError(format!(
                "--check {}: {} has {what}; its checks are: {}",
                unknown.join(", "),
                self.path.display(),
                have.join(", ")
            )));
        }
        self.checks.retain(|c| names.contains(&c.name));
        self.selected = Some(self.checks.iter().map(|c| c.name.clone()).collect());
        Ok(())
    }
}

/// The keys that bound the whole job and every check by default.
fn validate_job(v: &mut Validation, file: &SuiteFile) {
    if let Some(d) = file.deadline_s {
        v.secs("deadline_s", d, SecsRange::JOB);
    }
    v.secs(
        "defaults.timeout_s",
        file.defaults.timeout_s,
        SecsRange::STEP,
    );
    validate_retries(v, "defaults.retries", file.defaults.retries);
}

/// The keys every check has, whatever its kind.
fn validate_check(
    v: &mut Validation,
    key: &str,
    raw: &RawCheck,
    seen: &mut std::collections::HashSet<String>,
) {
    if !seen.insert(raw.name.clone()) {
        v.err(
            format!("{key}.name"),
            format!(
                "\"{}\" is used twice; expected unique check names",
                raw.name
            ),
        );
    }
    v.not_empty(&format!("{key}.name"), &raw.name, "a name for the check");
    if let Some(r) = raw.retries {
        validate_retries(v, &format!("{key}.retries"), r);
    }
    if let Some(t) = raw.timeout_s {
        v.secs(&format!("{key}.timeout_s"), t, SecsRange::STEP);
    }
    param_durations(v, key, &raw.params);
}

fn validate_retries(v: &mut Validation, key: &str, retries: u32) {
    if retries > MAX_RETRIES {
        v.err(
            key,
            format!("is {retries}; expected 0 to {MAX_RETRIES} re-runs of a failed check"),
        );
    }
}

/// More re-runs than this hide a broken check behind a long, green job.
const MAX_RETRIES: u32 = 10;

/// Every parameter of a check kind that ends in `_s` (seconds) or `_ms` (milliseconds) is a
/// time limit or interval: bounded here for all kinds at once, nested tables included
/// (`stimulus.timeout_s`), so a kind cannot forget to. A kind may bound its own keys more
/// tightly.
fn param_durations(v: &mut Validation, prefix: &str, params: &toml::Table) {
    for (k, value) in params {
        let key = format!("{prefix}.{k}");
        let scale = if k.ends_with("_ms") {
            1000.0
        } else if k.ends_with("_s") {
            1.0
        } else {
            if let toml::Value::Table(t) = value {
                param_durations(v, &key, t);
            }
            continue;
        };
        let secs = match value {
            toml::Value::Integer(i) => *i as f64 / scale,
            toml::Value::Float(f) => *f / scale,
            // Not a number: the kind's own parsing names the type it expected.
            _ => continue,
        };
        if let Some(m) = SecsRange::STEP.check_f64(secs) {
            let m = if scale == 1.0 {
                m
            } else {
                format!(
                    "is {value} ms; expected 1 to {} milliseconds (at most 24 h)",
                    STEP_MAX_S * 1000
                )
            };
            v.err(key, m);
        }
    }
}

/// A `shell` check's command, which hil types on a console unless the check runs over SSH.
fn typed_command(raw: &RawCheck) -> Option<String> {
    (raw.kind == "shell")
        .then(|| raw.params.get("command")?.as_str().map(String::from))
        .flatten()
}

/// One error per key: a key that breaks a general rule (a duration bound) and its kind's
/// own rule is reported once, with the general rule's message, which names the bound.
fn first_per_key(errs: Vec<ConfigError>) -> Vec<ConfigError> {
    let mut seen = std::collections::HashSet::new();
    errs.into_iter()
        .filter(|e| seen.insert(e.key.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of every error of a suite file after `edit` of a one-check suite.
    fn error_keys(text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, text).unwrap();
        match Suite::load(&p) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| e.key).collect(),
        }
    }

    fn suite(head: &str, check: &str) -> String {
        format!(
            "name = \"s\"\n{head}\n[defaults]\ntimeout_s = 30\n\n[[check]]\nname = \"c\"\nkind = \"shell\"\ncommand = \"true\"\n{check}\n"
        )
    }

    #[test]
    fn job_and_check_limits_are_bounded() {
        assert_eq!(
            error_keys(&suite("deadline_s = 604800", "timeout_s = 86400")),
            Vec::<String>::new()
        );
        assert_eq!(
            error_keys(&suite("deadline_s = 604801", "timeout_s = 86401")),
            ["deadline_s", "check[0].timeout_s"]
        );
        assert_eq!(
            error_keys(&suite("deadline_s = 0", "timeout_s = 0")),
            ["deadline_s", "check[0].timeout_s"]
        );
        let text = suite("", "").replace("timeout_s = 30", "timeout_s = 0");
        assert_eq!(error_keys(&text), ["defaults.timeout_s"]);
        let text = suite("", "retries = 11");
        assert_eq!(error_keys(&text), ["check[0].retries"]);
    }

    #[test]
    fn console_typed_commands_refuse_control_characters() {
        let text = suite("", "").replace("command = \"true\"", "command = \"\\u0015reboot #\"");
        assert_eq!(error_keys(&text), ["check[0].command"]);
        let guest = text.replace("kind = \"shell\"", "kind = \"shell\"\nvia = \"guest\"");
        assert_eq!(error_keys(&guest), ["check[0].command"]);
        // an SSH exec is not typed anywhere: a tab or newline is part of the script
        let ssh =
            suite("", "via = \"ssh\"").replace("command = \"true\"", "command = \"a\\tb\\nc\"");
        assert_eq!(error_keys(&ssh), Vec::<String>::new());
    }

    #[test]
    fn durations_in_kind_parameters_are_bounded_once() {
        let check = |params: &str| {
            error_keys(&format!(
                "name = \"s\"\n[defaults]\ntimeout_s = 30\n[[check]]\nname = \"e\"\nkind = \"gpio\"\nchip_label = \"9030000.pl061\"\nline = 3\nedge = \"rising\"\n{params}\n"
            ))
        };
        assert_eq!(
            check("stimulus = { kind = \"command\", run = \"true\", timeout_s = 9223372036854775807 }"),
            ["check[0].stimulus.timeout_s"]
        );
        // the kind refuses 0 too; the error is reported once, naming the bound
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(
            &p,
            "name = \"s\"\n[defaults]\ntimeout_s = 30\n[[check]]\nname = \"e\"\nkind = \"gpio\"\nchip_label = \"9030000.pl061\"\nline = 3\nedge = \"rising\"\nedge_timeout_s = 0\n",
        )
        .unwrap();
        let e = Suite::load(&p).unwrap_err().0;
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].key, "check[0].edge_timeout_s");
        assert!(
            e[0].message.contains("expected 1 to 86400 seconds"),
            "{}",
            e[0]
        );
        let ms = error_keys(
            "name = \"s\"\n[defaults]\ntimeout_s = 30\n[[check]]\nname = \"d\"\nkind = \"dma\"\ndma_timeout_ms = 86400001\n",
        );
        assert_eq!(ms, ["check[0].dma_timeout_ms"]);
    }
}
