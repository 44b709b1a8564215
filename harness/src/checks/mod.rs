//! Check kinds. Each kind is one module: a type implementing [`Check`], which parses its own
//! parameters from the suite file, says which `via`s it takes and which board state it
//! needs, and runs against a [`BoardSession`]. It reports pass/fail/blocked with figures,
//! or a [`StepError`] that the runner classifies.
//!
//! Adding a kind is its module plus one `module::Type` line in `kinds!` below, which
//! declares the module and registers the type; nothing else in this file names a kind.

use crate::boot::{BoardSession, State};
use crate::config::suite::{Defaults, RawCheck};
use crate::config::{ConfigError, Via};
use crate::error::StepError;
use crate::outcome::Outcome;
use crate::shell::ConsoleShell;
use std::any::Any;
use std::fmt::Debug;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

/// Declares each kind's module and lists its type in [`REGISTRY`], in the order error
/// messages name them. One line per kind: `module::Type`.
macro_rules! kinds {
    ($($module:ident :: $check:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// Every check kind: its name, its via rule and how to build it from parameters.
        pub static REGISTRY: &[Kind] = &[$(Kind::of::<$module::$check>()),+];

        /// The kind names, as a suite file's `kind = "..."` spells them.
        pub const KINDS: &[&str] = &[$(<$module::$check as Check>::KIND),+];
    };
}

// rustfmt does not follow modules declared inside a macro, so `cargo fmt` leaves the kinds'
// files alone: `rustfmt --edition 2021 harness/src/checks/*.rs` formats them (`.ci/run`
// checks them that way).
kinds! {
    shell::ShellCheck,
    preflight::PreflightCheck,
    vfio_bind::VfioBindCheck,
    guest_boot::GuestBootCheck,
    ping::PingCheck,
    nvme_io::NvmeIoCheck,
    vfio_platform::VfioPlatformCheck,
    gpio::GpioCheck,
    sertest::SertestCheck,
    dma::DmaCheck,
    pci_topology::PciTopologyCheck,
}

/// What [`Check::run`] returns. A boxed future keeps [`DynCheck`] usable as a trait
/// object (an `async fn` in a trait is not), and `Send` lets a board task run it.
pub type CheckFuture<'a> =
    Pin<Box<dyn Future<Output = Result<CheckOutput, StepError>> + Send + 'a>>;

/// One check kind. Implement it in the kind's module and add the type to `kinds!`.
pub trait Check: Debug + Send + Sync + Sized + 'static {
    /// The suite file's `kind = "..."`.
    const KIND: &'static str;

    /// Which `via`s the kind accepts and which it takes when the check names none.
    const VIA: ViaRule = ViaRule::ANY;

    /// Parses and validates the check's own keys (everything but `name`, `kind`,
    /// `timeout_s`, `via`, `retries` and `hint`). Unknown keys are errors; an error names
    /// `path` and a key under `key` (such as `check[3].expect`).
    fn from_params(path: &Path, key: &str, params: toml::Table) -> Result<Self, ConfigError>;

    /// The board state the check needs before it runs. By default the one its `via` runs
    /// on.
    fn needs(&self, via: Via) -> State {
        match via {
            Via::Console => State::LinuxConsole,
            Via::Ssh => State::LinuxSsh,
            Via::Guest => State::Guest,
        }
    }

    /// Runs the check on a board that has reached [`Check::needs`].
    fn run<'a>(&'a self, ctx: &'a mut CheckCtx<'_>) -> CheckFuture<'a>;
}

/// Which `via`s a kind accepts.
#[derive(Debug, Clone, Copy)]
pub struct ViaRule {
    /// Taken when the check has no `via`; `None` takes the suite's `[defaults] via`.
    pub default: Option<Via>,
    /// The accepted vias, in the order the error for another one lists them.
    pub accepted: &'static [Via],
    /// Why the others are refused, for that error.
    pub reason: &'static str,
}

impl ViaRule {
    /// Any via; the suite's default when the check names none.
    pub const ANY: ViaRule = ViaRule {
        default: None,
        accepted: &[Via::Console, Via::Ssh, Via::Guest],
        reason: "",
    };

    /// A command on a console shell, the guest's unless told otherwise: passthrough checks
    /// look from inside the guest.
    pub const CONSOLE_SHELL: ViaRule = ViaRule {
        default: Some(Via::Guest),
        accepted: &[Via::Guest, Via::Console],
        reason: "it runs on a shell console",
    };

    /// The via a check runs on, or the error message when this kind refuses it.
    fn resolve(&self, given: Option<Via>, suite_default: Via) -> Result<Via, String> {
        let via = given.or(self.default).unwrap_or(suite_default);
        if self.accepted.contains(&via) {
            return Ok(via);
        }
        let names: Vec<String> = self
            .accepted
            .iter()
            .map(|v| format!("\"{}\"", via_name(*v)))
            .collect();
        let expected = match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => "no via".to_string(),
        };
        let mut msg = format!(
            "is \"{}\"; expected {expected} for this kind",
            via_name(via)
        );
        if !self.reason.is_empty() {
            msg.push_str(&format!(" ({})", self.reason));
        }
        Err(msg)
    }
}

/// The suite file's spelling of a via.
fn via_name(via: Via) -> &'static str {
    match via {
        Via::Console => "console",
        Via::Ssh => "ssh",
        Via::Guest => "guest",
    }
}

/// A registry entry: a kind's name and via rule, and its constructor.
pub struct Kind {
    pub name: &'static str,
    pub via: ViaRule,
    build: Build,
}

/// A kind's constructor: [`Check::from_params`], boxed.
type Build = fn(&Path, &str, toml::Table) -> Result<Box<dyn DynCheck>, ConfigError>;

impl Kind {
    pub const fn of<C: Check>() -> Kind {
        Kind {
            name: C::KIND,
            via: C::VIA,
            build: build::<C>,
        }
    }
}

fn build<C: Check>(
    path: &Path,
    key: &str,
    params: toml::Table,
) -> Result<Box<dyn DynCheck>, ConfigError> {
    Ok(Box::new(C::from_params(path, key, params)?))
}

/// A parsed check of any kind. Every [`Check`] is one; its associated constants keep
/// `Check` itself from being a trait object.
pub trait DynCheck: Debug + Send + Sync {
    fn kind_name(&self) -> &'static str;
    fn needs(&self, via: Via) -> State;
    fn run<'a>(&'a self, ctx: &'a mut CheckCtx<'_>) -> CheckFuture<'a>;
    fn as_any(&self) -> &dyn Any;
}

impl<C: Check> DynCheck for C {
    fn kind_name(&self) -> &'static str {
        C::KIND
    }
    fn needs(&self, via: Via) -> State {
        Check::needs(self, via)
    }
    fn run<'a>(&'a self, ctx: &'a mut CheckCtx<'_>) -> CheckFuture<'a> {
        Check::run(self, ctx)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Everything a running check gets: the board and the check's common settings.
pub struct CheckCtx<'s> {
    pub session: &'s mut BoardSession,
    /// The check's `name` in the suite.
    pub name: &'s str,
    pub via: Via,
    /// The check's time limit (`timeout_s`).
    pub timeout: Duration,
}

impl CheckCtx<'_> {
    /// The console shell a shell-console check runs on: the guest's or the board's.
    pub fn console_shell(&mut self) -> Result<&mut ConsoleShell, StepError> {
        match self.via {
            Via::Guest => self.session.guest_shell(),
            _ => self.session.shell(),
        }
    }
}

#[derive(Debug)]
pub struct CheckSpec {
    pub name: String,
    pub timeout: Duration,
    pub via: Via,
    /// Re-runs after a failure (reported as flaky when a re-run passes).
    pub retries: u32,
    pub kind: Box<dyn DynCheck>,
    /// What to fix when the check does not pass (shown by `hil checklist`).
    pub hint: Option<String>,
}

/// What is left of a multi-step check's time limit; none left is the check's timeout.
pub(crate) fn time_left(
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<Duration, StepError> {
    let d = deadline.saturating_duration_since(tokio::time::Instant::now());
    if d.is_zero() {
        Err(StepError::CheckTimeout(timeout.as_secs()))
    } else {
        Ok(d)
    }
}

/// What a check found (its verdict on the DUT).
#[derive(Debug, Default)]
pub struct CheckOutput {
    pub outcome: Option<Outcome>,
    pub message: String,
    /// Measured figures (MB/s, RTT...) for results.json.
    pub figures: serde_json::Map<String, serde_json::Value>,
}

impl CheckSpec {
    pub fn from_raw(
        path: &Path,
        key: &str,
        raw: RawCheck,
        defaults: &Defaults,
    ) -> Result<CheckSpec, ConfigError> {
        let Some(entry) = REGISTRY.iter().find(|k| k.name == raw.kind) else {
            let msg = format!(
                "unknown check kind \"{}\"; expected one of: {}",
                raw.kind,
                KINDS.join(", ")
            );
            return Err(ConfigError::new(path, format!("{key}.kind"), msg));
        };
        let kind = (entry.build)(path, key, raw.params)?;
        let via = entry
            .via
            .resolve(raw.via, defaults.via)
            .map_err(|msg| ConfigError::new(path, format!("{key}.via"), msg))?;
        Ok(CheckSpec {
            name: raw.name,
            timeout: Duration::from_secs(raw.timeout_s.unwrap_or(defaults.timeout_s)),
            via,
            retries: raw.retries.unwrap_or(defaults.retries),
            kind,
            hint: raw.hint,
        })
    }

    pub fn kind_name(&self) -> &'static str {
        self.kind.kind_name()
    }

    /// Whether the check is of kind `K`.
    pub fn is<K: Check>(&self) -> bool {
        self.kind.as_any().is::<K>()
    }

    /// The check's parameters when it is of kind `K`.
    pub fn get<K: Check>(&self) -> Option<&K> {
        self.kind.as_any().downcast_ref::<K>()
    }

    /// The board state the check needs.
    pub fn needs(&self) -> State {
        self.kind.needs(self.via)
    }

    pub async fn run(&self, s: &mut BoardSession) -> Result<CheckOutput, StepError> {
        let mut ctx = CheckCtx {
            session: s,
            name: &self.name,
            via: self.via,
            timeout: self.timeout,
        };
        self.kind.run(&mut ctx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::suite::Suite;
    use std::collections::{BTreeMap, HashSet};
    use std::path::PathBuf;

    fn defaults(via: &str) -> Defaults {
        toml::from_str(&format!("timeout_s = 7\nvia = \"{via}\"")).unwrap()
    }

    fn raw(text: &str) -> RawCheck {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn kind_names_are_unique_and_an_unknown_kind_lists_them_all() {
        let names: Vec<&str> = REGISTRY.iter().map(|k| k.name).collect();
        let mut seen = HashSet::new();
        for n in &names {
            assert!(seen.insert(*n), "kind {n:?} is registered twice");
            assert!(
                !n.is_empty()
                    && n.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "kind {n:?} is not spelled as a suite file's kind"
            );
        }
        assert_eq!(KINDS, names.as_slice());
        let e = CheckSpec::from_raw(
            Path::new("s.toml"),
            "check[2]",
            raw("name = \"a\"\nkind = \"shel\"\ncommand = \"true\""),
            &defaults("console"),
        )
        .unwrap_err();
        assert_eq!(e.key, "check[2].kind");
        let listed = e
            .message
            .strip_prefix("unknown check kind \"shel\"; expected one of: ")
            .unwrap_or_else(|| panic!("{}", e.message));
        assert_eq!(listed.split(", ").collect::<Vec<_>>(), names);
    }

    /// The suite files in the repo, and the key of the error each deliberately broken one
    /// must report.
    fn repo_suites() -> Vec<(PathBuf, Option<&'static str>)> {
        let broken = BTreeMap::from([
            ("mistyped.toml", "check[1].timeout_s"),
            ("unknown-key.toml", "check[0].comand"),
        ]);
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        for dir in ["suites", "harness/tests/data/suites"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = e.unwrap().path();
                if path.extension().is_some_and(|x| x == "toml") {
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    files.push((path, broken.get(name.as_str()).copied()));
                }
            }
        }
        files.sort();
        assert!(
            files.iter().filter(|(_, b)| b.is_some()).count() == broken.len()
                && files.iter().any(|(p, _)| p.ends_with("suites/smoke.toml")),
            "{files:?}"
        );
        files
    }

    #[test]
    fn every_suite_file_in_the_repo_parses() {
        for (path, broken) in repo_suites() {
            let loaded = Suite::load(&path);
            if let Some(key) = broken {
                let errs = loaded.unwrap_err().0;
                assert_eq!(errs.len(), 1, "{}: {errs:?}", path.display());
                assert_eq!(errs[0].key, key, "{}", path.display());
                continue;
            }
            let suite = loaded.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let table: toml::Table =
                toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let kinds: Vec<&str> = table["check"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["kind"].as_str().unwrap())
                .collect();
            let parsed: Vec<&str> = suite.checks.iter().map(|c| c.kind_name()).collect();
            assert_eq!(parsed, kinds, "{}", path.display());
            for c in &suite.checks {
                let is_shell = c.kind_name() == shell::ShellCheck::KIND;
                assert_eq!(c.is::<shell::ShellCheck>(), is_shell, "{}", c.name);
                assert_eq!(
                    c.get::<shell::ShellCheck>().is_some(),
                    is_shell,
                    "{}",
                    c.name
                );
            }
        }
    }

    #[test]
    fn via_rules_and_needs_per_kind() {
        use State::*;
        // Per kind: the via taken when the check names none (None: the suite's default),
        // then the state needed on console, ssh and guest (None: that via is refused).
        type Row = (Option<Via>, [Option<State>; 3]);
        let console_shell: Row = (Some(Via::Guest), [Some(LinuxConsole), None, Some(Guest)]);
        let over_ssh: Row = (None, [Some(LinuxSsh); 3]);
        let expected: BTreeMap<&str, Row> = BTreeMap::from([
            (
                "shell",
                (None, [Some(LinuxConsole), Some(LinuxSsh), Some(Guest)]),
            ),
            ("preflight", over_ssh),
            ("vfio-bind", over_ssh),
            ("guest-boot", over_ssh),
            ("ping", console_shell),
            ("nvme-io", console_shell),
            ("vfio-platform", over_ssh),
            ("gpio", console_shell),
            ("sertest", (None, [Some(Guest); 3])),
            ("dma", over_ssh),
            ("pci-topology", over_ssh),
        ]);
        let vias = [Via::Console, Via::Ssh, Via::Guest];
        let mut tried = HashSet::new();
        // Every check of every suite, with each via and each suite default.
        for (path, broken) in repo_suites() {
            if broken.is_some() {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let table: toml::Table = toml::from_str(&text).unwrap();
            for check in table["check"].as_array().unwrap() {
                let kind = check["kind"].as_str().unwrap();
                let Some((name, (default, needs))) = expected.get_key_value(kind) else {
                    continue;
                };
                for given in [None, Some(Via::Console), Some(Via::Ssh), Some(Via::Guest)] {
                    for suite_via in ["console", "ssh", "guest"] {
                        let mut t = check.as_table().unwrap().clone();
                        t.remove("via");
                        if let Some(v) = given {
                            t.insert("via".into(), via_name(v).into());
                        }
                        let raw: RawCheck = toml::Value::Table(t).try_into().unwrap();
                        let d = defaults(suite_via);
                        let via = given.or(*default).unwrap_or(d.via);
                        let i = vias.iter().position(|v| *v == via).unwrap();
                        let what =
                            format!("{kind} in {}, via {given:?}/{suite_via}", path.display());
                        match (CheckSpec::from_raw(&path, "check[5]", raw, &d), needs[i]) {
                            (Ok(spec), Some(state)) => {
                                assert_eq!((spec.via, spec.needs()), (via, state), "{what}");
                                tried.insert(*name);
                            }
                            (Err(e), None) => {
                                assert_eq!(e.key, "check[5].via", "{what}");
                                assert_eq!(e.message, format!("is \"{}\"; expected \"guest\" or \"console\" for this kind (it runs on a shell console)", via_name(via)), "{what}");
                            }
                            (r, _) => panic!("{what}: {r:?}"),
                        }
                    }
                }
            }
        }
        let untried: Vec<_> = expected.keys().filter(|k| !tried.contains(*k)).collect();
        assert!(
            untried.is_empty(),
            "no suite file has a valid {untried:?} check"
        );
    }
}
