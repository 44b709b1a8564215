//! The generic `shell` check: run a command on the console or over SSH; pass when the exit
//! status is the expected one and the output matches the expected regex.

use super::{Check, CheckCtx, CheckFuture, CheckOutput};
use crate::config::load::from_table;
use crate::config::{ConfigError, Via};
use crate::outcome::Outcome;
use regex::Regex;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    command: String,
    /// Regex the output must match (multi-line mode: `^`/`$` match at line ends).
    expect: Option<String>,
    #[serde(default)]
    exit_status: i32,
    /// What the command finds out, in the board's terms (`kernel options for VFIO set`):
    /// the verdict says this instead of quoting the command.
    description: Option<String>,
}

#[derive(Debug)]
pub struct ShellCheck {
    pub command: String,
    pub expect: Option<Regex>,
    pub exit_status: i32,
    pub description: Option<String>,
}

impl Check for ShellCheck {
    const KIND: &'static str = "shell";

    fn from_params(path: &Path, key: &str, params: toml::Table) -> Result<Self, ConfigError> {
        let p: Params = from_table(path, key, params)?;
        let expect = match p.expect {
            Some(e) => Some(Regex::new(&format!("(?m){e}")).map_err(|err| {
                ConfigError::new(
                    path,
                    format!("{key}.expect"),
                    format!("is not a valid regex: {err}"),
                )
            })?),
            None => None,
        };
        if p.command.trim().is_empty() {
            return Err(ConfigError::new(
                path,
                format!("{key}.command"),
                "is empty; expected a shell command",
            ));
        }
        Ok(ShellCheck {
            command: p.command,
            expect,
            exit_status: p.exit_status,
            description: p.description.filter(|d| !d.trim().is_empty()),
        })
    }

    fn run<'a>(&'a self, ctx: &'a mut CheckCtx<'_>) -> CheckFuture<'a> {
        Box::pin(async move {
            let (via, timeout) = (ctx.via, ctx.timeout);
            let s = &mut *ctx.session;
            let out = match via {
                Via::Console => s.shell()?.run(&self.command, timeout).await?,
                Via::Ssh => s.ssh()?.exec(&self.command, timeout).await?,
                Via::Guest => s.guest_shell()?.run(&self.command, timeout).await?,
            };
            Ok(self.judge(&out.output, out.status))
        })
    }
}

impl ShellCheck {
    /// How a verdict names the command: the suite's `description`, else the command's
    /// first line cut at a word boundary (a long one-liner says little past its start,
    /// and the whole command is in the testcase's transcript).
    pub fn what(&self) -> String {
        match &self.description {
            Some(d) => d.trim().to_string(),
            None => {
                let first = self.command.trim().lines().next().unwrap_or("");
                format!("`{}`", super::preflight::shorten(first, 60))
            }
        }
    }

    fn judge(&self, output: &str, status: i32) -> CheckOutput {
        let mut figures = serde_json::Map::new();
        figures.insert("exit_status".into(), status.into());
        let mut problems = Vec::new();
        if status != self.exit_status {
            problems.push(format!(
                "exit status {status}, expected {}",
                self.exit_status
            ));
        }
        if let Some(re) = &self.expect {
            if !re.is_match(output) {
                problems.push(format!(
                    "output does not match /{}/",
                    re.as_str().trim_start_matches("(?m)")
                ));
            }
        }
        let excerpt: String = output.trim().chars().take(300).collect();
        if problems.is_empty() {
            CheckOutput {
                outcome: Some(Outcome::Pass),
                message: format!("{}: {excerpt}", self.what()),
                figures,
            }
        } else {
            CheckOutput {
                outcome: Some(Outcome::Fail),
                message: format!(
                    "{}: {}; output: {excerpt:?}",
                    self.what(),
                    problems.join("; ")
                ),
                figures,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expect: Option<&str>, exit: i32) -> ShellCheck {
        let mut t = toml::Table::new();
        t.insert("command".into(), "uname -m".into());
        if let Some(e) = expect {
            t.insert("expect".into(), e.into());
        }
        t.insert("exit_status".into(), (exit as i64).into());
        ShellCheck::from_params(Path::new("s.toml"), "check[0]", t).unwrap()
    }

    #[test]
    fn a_verdict_says_what_the_command_finds_not_its_text() {
        let mut c = check(Some("^all-set$"), 0);
        c.command = "if [ -r /proc/config.gz ]; then zcat /proc/config.gz; else cat /boot/config-$(uname -r); fi >/tmp/kconfig; m=0".into();
        assert_eq!(
            c.judge("all-set\n", 0).message,
            "`if [ -r /proc/config.gz ]; then zcat /proc/config.gz; else…`: all-set"
        );
        c.description = Some("VFIO kernel options set".into());
        assert_eq!(
            c.judge("from /proc/config.gz: CONFIG_KVM=y\nall-set\n", 0)
                .message,
            "VFIO kernel options set: from /proc/config.gz: CONFIG_KVM=y\nall-set"
        );
    }

    #[test]
    fn judges_status_and_output() {
        assert_eq!(
            check(Some("^aarch64$"), 0).judge("aarch64\n", 0).outcome,
            Some(Outcome::Pass)
        );
        let f = check(Some("^aarch64$"), 0).judge("x86_64\n", 0);
        assert_eq!(f.outcome, Some(Outcome::Fail));
        assert!(
            f.message.contains("does not match /^aarch64$/"),
            "{}",
            f.message
        );
        let f = check(None, 0).judge("", 1);
        assert!(f.message.contains("exit status 1, expected 0"));
        assert_eq!(check(None, 3).judge("", 3).outcome, Some(Outcome::Pass));
    }

    #[test]
    fn bad_params_name_the_key() {
        let mut t = toml::Table::new();
        t.insert("command".into(), "true".into());
        t.insert("expect".into(), "(".into());
        let e = ShellCheck::from_params(Path::new("s.toml"), "check[3]", t).unwrap_err();
        assert_eq!(e.key, "check[3].expect");
        let mut t = toml::Table::new();
        t.insert("comand".into(), "true".into());
        let e = ShellCheck::from_params(Path::new("s.toml"), "check[1]", t).unwrap_err();
        assert!(e.to_string().contains("check[1]"), "{e}");
        assert!(e.message.contains("unknown field `comand`"), "{e}");
    }
}
