//! `hil bisect`: which kernel build broke it. A binary search ([`search`]) over an ordered
//! list of builds ([`manifest`]), each flashed and tested on the same board with one suite;
//! infrastructure errors and blocked results skip a build, never judge it; the first bad
//! build is confirmed by re-running it and its predecessor. `hil bisect run` is the same
//! test of one build as a `git bisect run` script (exit 0 good, 1 bad, 125 skip).

pub mod manifest;
pub mod search;

use crate::image_set::ImageSet;
use crate::outcome::Outcome;
use crate::report::{CaseReport, RunReport};
use crate::suite_run::{run_suite, SuiteRun};
use search::{Found, Search, Verdict};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// `git bisect run` exit statuses.
pub mod exit {
    pub const GOOD: i32 = 0;
    pub const BAD: i32 = 1;
    pub const SKIP: i32 = 125;
    /// Above 127: git stops the bisection (hil is misconfigured or broken, no verdict).
    pub const ABORT: i32 = 128;
}

/// Exit statuses of `hil bisect`.
pub mod outcome_exit {
    /// The first bad build was found and confirmed.
    pub const FOUND: i32 = 0;
    /// A confirmation run disagreed with the search: the result is not trustworthy.
    pub const NOT_CONFIRMED: i32 = 1;
    /// Skipped builds leave a range, or a confirmation run could not test.
    pub const INCONCLUSIVE: i32 = 3;
}

/// What the suite said about a build, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub reason: String,
}

/// Judges one run's report. With `check`, that check decides (pass good, fail bad,
/// anything else skip). Without, any infrastructure/harness error or blocked case skips
/// the build, then any failure makes it bad, and passing checks make it good.
pub fn judge(report: &RunReport, check: Option<&str>) -> Judgement {
    let all: Vec<(&str, &CaseReport)> = report.cases().collect();
    let describe = |board: &str, c: &CaseReport| {
        format!(
            "{board}/{}: {}{}",
            c.name,
            c.outcome.json_name(),
            if c.message.is_empty() {
                String::new()
            } else {
                format!(": {}", first_line(&c.message))
            }
        )
    };
    // Why checks did not run, when they did not: the first case that was not a pass/skip.
    let cause = || {
        all.iter()
            .find(|(_, c)| !matches!(c.outcome, Outcome::Pass | Outcome::Skipped))
            .map(|(b, c)| describe(b, c))
    };
    if let Some(name) = check {
        let Some((b, c)) = all.iter().find(|(_, c)| c.name == name) else {
            return Judgement {
                verdict: Verdict::Skip,
                reason: format!("check {name} is not in the report"),
            };
        };
        let verdict = match c.outcome {
            Outcome::Pass => Verdict::Good,
            Outcome::Fail => Verdict::Bad,
            _ => Verdict::Skip,
        };
        let mut reason = describe(b, c);
        if c.outcome == Outcome::Skipped {
            if let Some(why) = cause() {
                reason = format!("{reason} ({why})");
            }
        }
        return Judgement { verdict, reason };
    }
    let with = |o: &[Outcome]| all.iter().find(|(_, c)| o.contains(&c.outcome));
    if let Some((b, c)) = with(&[Outcome::InfraError, Outcome::HarnessError, Outcome::Blocked]) {
        return Judgement {
            verdict: Verdict::Skip,
            reason: describe(b, c),
        };
    }
    if let Some((b, c)) = with(&[Outcome::Fail]) {
        return Judgement {
            verdict: Verdict::Bad,
            reason: describe(b, c),
        };
    }
    let passed = all
        .iter()
        .filter(|(_, c)| {
            c.outcome == Outcome::Pass
                && !crate::outcome::ENGINE_STEP_KINDS.contains(&c.kind.as_str())
        })
        .count();
    if passed == 0 {
        return Judgement {
            verdict: Verdict::Skip,
            reason: "no check passed or failed".into(),
        };
    }
    Judgement {
        verdict: Verdict::Good,
        reason: format!("{passed} check(s) passed"),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The failing check of a bad run: its name, message and the last lines of its console.
pub fn evidence(report: &RunReport, check: Option<&str>, lines: usize) -> Option<String> {
    let (board, c) = report
        .cases()
        .find(|(_, c)| c.outcome == Outcome::Fail && check.is_none_or(|n| c.name == n))?;
    let tail: Vec<&str> = c.console.lines().rev().take(lines).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Some(format!(
        "{board}/{}: fail: {}\n--- console, last {} lines ---\n{}",
        c.name,
        c.message,
        tail.len(),
        tail.join("\n")
    ))
}

pub struct BisectOptions {
    pub manifest: PathBuf,
    pub good: String,
    pub bad: String,
    pub suite: PathBuf,
    pub check: Option<String>,
    pub board: String,
    /// Re-runs of the first bad build and of its predecessor.
    pub confirm: usize,
    pub out: PathBuf,
}

/// One test of one build, as recorded in bisect.json.
struct Step {
    build: usize,
    purpose: &'static str,
    judgement: Judgement,
    run: SuiteRun,
}

/// Runs the bisection; returns the exit status ([`outcome_exit`]).
pub async fn bisect(opts: &BisectOptions) -> anyhow::Result<i32> {
    let m = manifest::Manifest::load(&opts.manifest)?;
    let usage = |e: String| anyhow::Error::new(crate::error::UsageError(e));
    let good = m.index("--good", &opts.good).map_err(usage)?;
    let bad = m.index("--bad", &opts.bad).map_err(usage)?;
    let mut search = Search::new(m.builds.len(), good, bad).map_err(usage)?;
    check_suite_has(&opts.suite, opts.check.as_deref())?;
    std::fs::create_dir_all(&opts.out)?;
    eprintln!(
        "bisect: {} builds from {} (good) to {} (bad); at most {} tests without skips, then {} confirmation run(s) each of the first bad build and its predecessor",
        bad - good + 1,
        m.builds[good].name,
        m.builds[bad].name,
        Search::max_steps(good, bad),
        opts.confirm
    );
    let mut steps: Vec<Step> = Vec::new();
    while let Some(i) = search.next() {
        let step = test_build(opts, &m.builds[i], i, steps.len() + 1, "search").await?;
        search.record(i, step.judgement.verdict);
        steps.push(step);
        write_record(opts, &m, &steps, None)?;
    }
    let found = search.result();
    let (code, summary) = match &found {
        Found::Ambiguous { good, candidates } => {
            let names: Vec<&str> = candidates
                .iter()
                .map(|&i| m.builds[i].name.as_str())
                .collect();
            (
                outcome_exit::INCONCLUSIVE,
                format!(
                    "inconclusive: the first bad build is one of {} (after {}, the last good one); the builds in between could not be tested",
                    names.join(", "),
                    m.builds[*good].name
                ),
            )
        }
        Found::FirstBad { good, bad } => {
            let mut agree = true;
            let mut untestable = false;
            for (i, want) in [(*bad, Verdict::Bad), (*good, Verdict::Good)] {
                for _ in 0..opts.confirm {
                    let step =
                        test_build(opts, &m.builds[i], i, steps.len() + 1, "confirm").await?;
                    match step.judgement.verdict {
                        Verdict::Skip => untestable = true,
                        v if v != want => agree = false,
                        _ => {}
                    }
                    steps.push(step);
                    write_record(opts, &m, &steps, None)?;
                }
            }
            let (b, g) = (&m.builds[*bad].name, &m.builds[*good].name);
            if !agree {
                (outcome_exit::NOT_CONFIRMED, format!("not confirmed: {b} looked like the first bad build (last good {g}), but a re-run disagreed; the failure is flaky"))
            } else if untestable {
                (outcome_exit::INCONCLUSIVE, format!("{b} looks like the first bad build (last good {g}), but a confirmation run could not test it"))
            } else {
                (
                    outcome_exit::FOUND,
                    format!(
                        "first bad build: {b} (last good: {g}); confirmed by {} re-run(s) of each",
                        opts.confirm
                    ),
                )
            }
        }
    };
    let tests = steps.iter().filter(|s| s.purpose == "search").count();
    eprintln!(
        "bisect: {summary}\nbisect: {} board run(s): {tests} search test(s) ({} skipped), {} confirmation(s)",
        steps.len(),
        steps
            .iter()
            .filter(|s| s.purpose == "search" && s.judgement.verdict == Verdict::Skip)
            .count(),
        steps.len() - tests
    );
    let evidence_text = match &found {
        Found::FirstBad { bad, .. } => steps
            .iter()
            .find(|s| s.build == *bad && s.judgement.verdict == Verdict::Bad)
            .and_then(|s| evidence(&s.run.report, opts.check.as_deref(), 30)),
        _ => None,
    };
    println!("{summary}");
    if let Some(e) = &evidence_text {
        println!("evidence:\n{e}");
    }
    write_record(
        opts,
        &m,
        &steps,
        Some((&found, code, &summary, evidence_text.as_deref())),
    )?;
    Ok(code)
}

/// A --check that the suite does not have would skip every build: refuse it up front.
fn check_suite_has(suite: &Path, check: Option<&str>) -> anyhow::Result<()> {
    let s = crate::config::Suite::load(suite)?;
    if let Some(c) = check {
        if !s.checks.iter().any(|x| x.name == c) {
            let names: Vec<&str> = s.checks.iter().map(|x| x.name.as_str()).collect();
            return Err(crate::error::UsageError(format!(
                "--check {c}: {} has no such check; expected one of: {}",
                suite.display(),
                names.join(", ")
            ))
            .into());
        }
    }
    Ok(())
}

async fn test_build(
    opts: &BisectOptions,
    build: &ImageSet,
    index: usize,
    n: usize,
    purpose: &'static str,
) -> anyhow::Result<Step> {
    let out = opts.out.join(format!("step-{n:02}-{}", build.name));
    eprintln!("bisect: step {n} ({purpose}): testing {}", build.name);
    let run = run_suite(
        &opts.suite,
        std::slice::from_ref(&opts.board),
        &out,
        Some(build.clone()),
    )
    .await?;
    let judgement = judge(&run.report, opts.check.as_deref());
    eprintln!(
        "bisect: step {n}: {} is {} ({})",
        build.name,
        judgement.verdict.label(),
        judgement.reason
    );
    Ok(Step {
        build: index,
        purpose,
        judgement,
        run,
    })
}

/// bisect.json in the output directory, rewritten after every step.
fn write_record(
    opts: &BisectOptions,
    m: &manifest::Manifest,
    steps: &[Step],
    end: Option<(&Found, i32, &str, Option<&str>)>,
) -> anyhow::Result<()> {
    let steps_json: Vec<Value> = steps
        .iter()
        .map(|s| {
            json!({
                "build": m.builds[s.build].name,
                "index": s.build,
                "purpose": s.purpose,
                "verdict": s.judgement.verdict.label(),
                "reason": s.judgement.reason,
                "report": s.run.dir.display().to_string(),
            })
        })
        .collect();
    let mut v = json!({
        "manifest": opts.manifest.display().to_string(),
        "suite": opts.suite.display().to_string(),
        "check": opts.check,
        "board": opts.board,
        "good": opts.good,
        "bad": opts.bad,
        "builds": m.builds.iter().map(|b| b.name.clone()).collect::<Vec<_>>(),
        "steps": steps_json,
        "complete": end.is_some(),
    });
    if let Some((found, code, summary, ev)) = end {
        v["summary"] = json!(summary);
        v["exit_code"] = json!(code);
        v["evidence"] = json!(ev);
        match found {
            Found::FirstBad { good, bad } => {
                v["first_bad"] = json!(m.builds[*bad].name);
                v["last_good"] = json!(m.builds[*good].name);
            }
            Found::Ambiguous { good, candidates } => {
                v["last_good"] = json!(m.builds[*good].name);
                v["candidates"] = json!(candidates
                    .iter()
                    .map(|&i| m.builds[i].name.clone())
                    .collect::<Vec<_>>());
            }
        }
    }
    let p = opts.out.join("bisect.json");
    std::fs::write(&p, serde_json::to_string_pretty(&v)?)?;
    Ok(())
}

/// `hil bisect run`: how the image set to test is obtained.
pub enum BuildSource {
    /// An existing image set.
    Images(PathBuf),
    /// A shell command that builds one into `$HIL_BUILD_OUT` (e.g. a kernel build at
    /// the commit git checked out); non-zero exit means "cannot test" (125).
    Hook(String),
}

pub struct RunOneOptions {
    pub source: BuildSource,
    /// How long the build hook may run; past it its whole process group is killed and the
    /// revision skipped (125): a hung build must not hold the bisection (or the lab) forever.
    pub build_timeout: std::time::Duration,
    pub suite: PathBuf,
    pub check: Option<String>,
    pub board: String,
    pub out: PathBuf,
}

/// Runs the build hook (`sh -c CMD`, output on hil's own stdout/stderr) with
/// `$HIL_BUILD_OUT` set, in its own process group so a timeout ends the compiler jobs it
/// started too. `Ok(false)`: the revision cannot be tested (the hook failed or overran;
/// the reason is printed).
async fn run_build_hook(
    cmd: &str,
    out: &std::path::Path,
    timeout: std::time::Duration,
) -> anyhow::Result<bool> {
    let mut c = tokio::process::Command::new("sh");
    c.args(["-c", cmd])
        .env("HIL_BUILD_OUT", out)
        .stdin(std::process::Stdio::null());
    let mut child = crate::host_cmd::GroupChild::spawn(&mut c)
        .map_err(|e| anyhow::anyhow!("cannot run the build hook: {e}"))?;
    match child.wait(timeout).await {
        Ok(st) if st.success() => Ok(true),
        Ok(st) => {
            eprintln!("bisect run: the build hook failed ({st}): cannot test this revision (skip)");
            Ok(false)
        }
        Err(crate::host_cmd::WaitError::Timeout) => {
            eprintln!(
                "bisect run: the build hook did not finish within {} s (--build-timeout-s); \
                 its process group was killed: cannot test this revision (skip)",
                timeout.as_secs()
            );
            Ok(false)
        }
        Err(crate::host_cmd::WaitError::Io(e)) => {
            Err(anyhow::anyhow!("waiting for the build hook: {e}"))
        }
    }
}

/// Tests one build; returns a `git bisect run` exit status ([`exit`]).
pub async fn run_one(opts: &RunOneOptions) -> anyhow::Result<i32> {
    check_suite_has(&opts.suite, opts.check.as_deref())?;
    std::fs::create_dir_all(&opts.out)?;
    let set = match &opts.source {
        BuildSource::Images(d) => ImageSet::from_dir(d),
        BuildSource::Hook(cmd) => {
            let dir = opts.out.join("build");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            eprintln!("bisect run: build hook: {cmd}");
            if !run_build_hook(cmd, &dir, opts.build_timeout).await? {
                return Ok(exit::SKIP);
            }
            ImageSet::from_dir(&dir)
        }
    };
    let run = run_suite(
        &opts.suite,
        std::slice::from_ref(&opts.board),
        &opts.out.join("run"),
        Some(set),
    )
    .await?;
    let j = judge(&run.report, opts.check.as_deref());
    eprintln!("bisect run: {} ({})", j.verdict.label(), j.reason);
    if j.verdict == Verdict::Bad {
        if let Some(e) = evidence(&run.report, opts.check.as_deref(), 30) {
            eprintln!("evidence:\n{e}");
        }
    }
    Ok(match j.verdict {
        Verdict::Good => exit::GOOD,
        Verdict::Bad => exit::BAD,
        Verdict::Skip => exit::SKIP,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(cases: &[(&str, &str, &str)]) -> RunReport {
        let cs: Vec<serde_json::Value> = cases
            .iter()
            .map(|(n, o, m)| {
                json!({"name": n, "kind": if *n == "boot" {"boot"} else {"shell"}, "outcome": o, "message": m, "console": "line1\nline2\nnvme: no driver", "duration_s": 1.0, "started_s": 0.0, "figures": {}})
            })
            .collect();
        serde_json::from_value(json!({"run_id": "r", "suite": "s", "suite_file": "s.toml", "harness_version": "0", "started": "", "complete": true, "duration_s": 1.0, "exit_code": null, "boards": [{"name": "sim", "properties": {}, "cases": cs}]})).unwrap()
    }

    #[test]
    fn infrastructure_and_blocked_skip_never_judge() {
        let r = results(&[
            ("boot", "error:infrastructure", "bootloader: `tftp` failed"),
            ("nvme-driver", "skipped", "not run: the board was lost"),
        ]);
        let j = judge(&r, None);
        assert_eq!(j.verdict, Verdict::Skip);
        assert!(j.reason.contains("tftp"), "{}", j.reason);
        let j = judge(&r, Some("nvme-driver"));
        assert_eq!(j.verdict, Verdict::Skip);
        assert!(
            j.reason.contains("boot: error:infrastructure"),
            "{}",
            j.reason
        );
        let r = results(&[("boot", "pass", ""), ("bind", "blocked", "no iommu_group")]);
        assert_eq!(judge(&r, None).verdict, Verdict::Skip);
        let r = results(&[
            ("boot", "pass", ""),
            ("a", "fail", "x"),
            ("b", "error:infrastructure", "ssh"),
        ]);
        assert_eq!(judge(&r, None).verdict, Verdict::Skip);
    }

    #[test]
    fn pass_is_good_fail_is_bad() {
        let r = results(&[
            ("boot", "pass", ""),
            ("arch", "pass", ""),
            ("nvme-driver", "fail", "no match"),
        ]);
        assert_eq!(judge(&r, None).verdict, Verdict::Bad);
        assert_eq!(judge(&r, Some("nvme-driver")).verdict, Verdict::Bad);
        assert_eq!(judge(&r, Some("arch")).verdict, Verdict::Good);
        assert_eq!(judge(&r, Some("nope")).verdict, Verdict::Skip);
        let r = results(&[("boot", "pass", ""), ("arch", "pass", "")]);
        assert_eq!(judge(&r, None).verdict, Verdict::Good);
        // A boot that passed with nothing else proves nothing.
        let r = results(&[("boot", "pass", "")]);
        assert_eq!(judge(&r, None).verdict, Verdict::Skip);
    }

    #[test]
    fn evidence_is_the_failing_checks_log_slice() {
        let r = results(&[
            ("boot", "pass", ""),
            ("nvme-driver", "fail", "output did not match"),
        ]);
        let e = evidence(&r, None, 2).unwrap();
        assert!(
            e.starts_with("sim/nvme-driver: fail: output did not match"),
            "{e}"
        );
        assert!(e.ends_with("line2\nnvme: no driver"), "{e}");
        assert!(!e.contains("line1"));
        assert!(evidence(&r, Some("boot"), 2).is_none());
    }
}

/// `hil bisect ...` and `hil bisect run ...` on the command line.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BisectArgs {
    #[command(subcommand)]
    run: Option<BisectCmd>,
    /// A build known to pass (name in the manifest).
    #[arg(long)]
    good: Option<String>,
    /// A build known to fail, later in the manifest.
    #[arg(long)]
    bad: Option<String>,
    /// The builds manifest (TOML, oldest first).
    #[arg(long)]
    builds: Option<PathBuf>,
    /// The suite that tells good from bad.
    #[arg(long)]
    suite: Option<PathBuf>,
    /// Judge by this check alone (default: the whole suite).
    #[arg(long)]
    check: Option<String>,
    #[arg(long, default_value = "sim-rk3588")]
    board: String,
    /// Re-runs of the first bad build and of its predecessor.
    #[arg(long, default_value_t = 1)]
    confirm: usize,
    /// Output directory (default: reports/<id>-bisect/).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum BisectCmd {
    /// Test one build as a `git bisect run` script: exit 0 good, 1 bad, 125 skip, 128 abort.
    Run {
        #[arg(long)]
        suite: PathBuf,
        #[arg(long)]
        check: Option<String>,
        #[arg(long, default_value = "sim-rk3588")]
        board: String,
        /// An image set to test (Image.gz, initrd.gz).
        #[arg(
            long,
            conflicts_with = "build_hook",
            required_unless_present = "build_hook"
        )]
        images: Option<PathBuf>,
        /// A shell command that builds the image set into $HIL_BUILD_OUT.
        #[arg(long)]
        build_hook: Option<String>,
        /// Limit for the build hook in seconds; past it the hook (its whole process
        /// group) is killed and the revision skipped (exit 125).
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
        build_timeout_s: u64,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs `hil bisect`; errors of `hil bisect run` become exit 128 so git stops instead of
/// counting hil's own trouble as a bad revision.
pub async fn cli(args: BisectArgs) -> anyhow::Result<i32> {
    match args.run {
        Some(BisectCmd::Run {
            suite,
            check,
            board,
            images,
            build_hook,
            build_timeout_s,
            out,
        }) => {
            let source = match (images, build_hook) {
                (Some(d), _) => BuildSource::Images(d),
                (None, Some(h)) => BuildSource::Hook(h),
                (None, None) => unreachable!("clap requires one"),
            };
            let opts = RunOneOptions {
                source,
                build_timeout: std::time::Duration::from_secs(build_timeout_s),
                suite,
                check,
                board,
                out: out.unwrap_or_else(|| {
                    PathBuf::from("reports").join(crate::suite_run::run_id("bisect-run"))
                }),
            };
            match run_one(&opts).await {
                Ok(c) => Ok(c),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    eprintln!("bisect run: aborting the bisection (exit {})", exit::ABORT);
                    Ok(exit::ABORT)
                }
            }
        }
        None => {
            let missing: Vec<&str> = [
                ("--good", args.good.is_none()),
                ("--bad", args.bad.is_none()),
                ("--builds", args.builds.is_none()),
                ("--suite", args.suite.is_none()),
            ]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(f, _)| *f)
            .collect();
            if !missing.is_empty() {
                return Err(crate::error::UsageError(format!(
                    "hil bisect needs {}; usage: hil bisect --good A --bad B --builds MANIFEST --suite S [--check C]",
                    missing.join(", ")
                ))
                .into());
            }
            let opts = BisectOptions {
                manifest: args.builds.unwrap_or_default(),
                good: args.good.unwrap_or_default(),
                bad: args.bad.unwrap_or_default(),
                suite: args.suite.unwrap_or_default(),
                check: args.check,
                board: args.board,
                confirm: args.confirm,
                out: args.out.unwrap_or_else(|| {
                    PathBuf::from("reports").join(crate::suite_run::run_id("bisect"))
                }),
            };
            bisect(&opts).await
        }
    }
}
