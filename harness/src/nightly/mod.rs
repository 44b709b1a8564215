//! `hil nightly LAB.toml`: the lab's board × suite matrix, one JUnit per board and a merged
//! one, a result history (a SQLite file or PostgreSQL, [`history`]) and what changed since
//! the last run ([`changes`]). Every suite runs on all boards at once (one runner call per
//! suite). `hil history CHECK` ([`show`]) prints what the history holds of one check.

pub mod changes;
pub mod history;
pub mod lab_file;
pub mod show;

use crate::image_set::ImageSet;
use crate::outcome::{exit, Outcome};
use crate::report::RunReport;
use changes::{Key, Snapshot};
use std::path::{Path, PathBuf};

/// What makes `hil nightly` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Any failure or error, as `hil run` (1 fail, 3 infrastructure).
    Any,
    /// Only what is new since the last run: new failures (1), new infrastructure errors (3).
    New,
}

#[derive(clap::Args)]
pub struct NightlyArgs {
    /// The lab file (boards, suites, history).
    lab: PathBuf,
    /// Report directory (default: reports/<run-id>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The history: a SQLite file or a postgres:// URL (default: $HIL_DATABASE_URL, else
    /// the lab file's `history`).
    #[arg(long, value_name = "FILE|URL")]
    history: Option<String>,
    /// A kernel build to boot instead of the boards' usual images (tonight's build).
    #[arg(long)]
    images: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "any")]
    fail_on: FailOn,
}

pub async fn cli(args: NightlyArgs) -> anyhow::Result<i32> {
    let mut lab = lab_file::Lab::load(&args.lab)?;
    lab.history = history::at::HistoryAt::choose(args.history.as_deref(), Some(&lab.history))?;
    // The run id keys the run in the history: nightlies of one lab started in the same
    // second (by cron on every lab host, or twice on one) must not share it.
    let run_id = crate::suite_run::run_id(&format!(
        "nightly-{}-{}-{}",
        lab.name,
        crate::lease::this_host(),
        std::process::id()
    ));
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("reports").join(&run_id));
    let image_set = args.images.as_deref().map(ImageSet::from_dir);
    nightly(&lab, &run_id, &out, image_set, args.fail_on).await
}

/// Runs the matrix; returns the exit status.
pub async fn nightly(
    lab: &lab_file::Lab,
    run_id: &str,
    out: &Path,
    image_set: Option<ImageSet>,
    fail_on: FailOn,
) -> anyhow::Result<i32> {
    // Open the history first: a bad path should fail before any board boots.
    let mut hist = history::History::open(&lab.history)?;
    let started = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    std::fs::create_dir_all(out)?;
    eprintln!(
        "nightly: lab {} — {} board(s) × {} suite(s) → {}",
        lab.name,
        lab.boards.len(),
        lab.suites.len(),
        out.display()
    );
    let mut reports: Vec<RunReport> = Vec::new();
    for suite in &lab.suites {
        let stem = suite
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "suite".into());
        let dir = out.join("runs").join(&stem);
        let run = crate::suite_run::run_suite(suite, &lab.boards, &dir, image_set.clone()).await?;
        if run.exit_code == exit::INTERRUPTED {
            eprintln!("nightly: interrupted; nothing recorded in the history");
            return Ok(exit::INTERRUPTED);
        }
        reports.push(run.report);
    }

    // JUnit: merged, and one per board.
    let title = format!("hil nightly {}", lab.name);
    write(
        &out.join("junit.xml"),
        &crate::report::junit::render_many(&title, &reports, |_| true),
    )?;
    for b in &lab.boards {
        let xml = crate::report::junit::render_many(&format!("{title} {b}"), &reports, |n| n == b);
        write(&out.join(format!("junit-{b}.xml")), &xml)?;
    }

    // History and changes.
    let (now, rows) = snapshot(&reports);
    let earlier: Vec<Snapshot> = hist
        .recent(&lab.name, lab.flaky_window - 1)?
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let ch = changes::compare(&now, &earlier);
    let code = match fail_on {
        FailOn::Any => crate::outcome::exit_code_of_cases(
            reports
                .iter()
                .flat_map(|r| r.cases())
                .map(|(_, c)| (c.kind.as_str(), &c.outcome)),
        ),
        FailOn::New if !ch.new_failures.is_empty() => exit::FAIL,
        FailOn::New if !ch.new_infra_errors.is_empty() => exit::INFRASTRUCTURE,
        FailOn::New => exit::OK,
    };
    hist.record(
        &history::RunRow {
            run_id: run_id.to_string(),
            lab: lab.name.clone(),
            host: crate::lease::this_host(),
            started,
            report_dir: out.display().to_string(),
            exit_code: code,
        },
        &rows,
    )?;
    let text = ch.render();
    write(&out.join("changes.md"), &text)?;
    write(
        &out.join("changes.json"),
        &serde_json::to_string_pretty(&ch)?,
    )?;
    write(&out.join("summary.md"), &summary(lab, &reports, &text))?;
    println!("{text}");
    eprintln!(
        "nightly: exit {code}; {} ; report {}",
        lab.history,
        out.display()
    );
    Ok(code)
}

fn write(p: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(p, text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
}

/// This run's results keyed for the history.
fn snapshot(reports: &[RunReport]) -> (Snapshot, Vec<history::Row>) {
    let mut snap = Snapshot::new();
    let mut rows = Vec::new();
    for r in reports {
        for b in &r.boards {
            for c in &b.cases {
                let key = Key {
                    board: b.name.clone(),
                    suite: r.suite.clone(),
                    check: c.name.clone(),
                };
                snap.insert(key.clone(), (c.outcome, c.message.clone()));
                rows.push(history::Row {
                    key,
                    outcome: c.outcome.json_name().to_string(),
                    message: c.message.clone(),
                    duration_s: c.duration_s,
                    figures: numeric_figures(&c.figures),
                });
            }
        }
    }
    (snap, rows)
}

/// The figures of a case that are numbers (MB/s, RTT, exit status); text figures (a
/// method, a checksum) stay in results.json only.
fn numeric_figures(f: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, f64)> {
    f.iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
        .filter(|(_, v)| v.is_finite())
        .collect()
}

/// summary.md: the matrix as a ✔/✘ table, then the changes.
fn summary(lab: &lab_file::Lab, reports: &[RunReport], changes: &str) -> String {
    let mut s = format!(
        "# hil nightly {}\n\n| board | suite | result |\n|---|---|---|\n",
        lab.name
    );
    for r in reports {
        for b in &r.boards {
            let code = crate::outcome::exit_code_of_cases(
                b.cases.iter().map(|c| (c.kind.as_str(), &c.outcome)),
            );
            let passed = b
                .cases
                .iter()
                .filter(|c| c.outcome == Outcome::Pass)
                .count();
            let mark = match code {
                0 => "✔",
                1 => "✘",
                _ => "⚠",
            };
            s.push_str(&format!(
                "| {} | {} | {mark} {passed}/{} passed |\n",
                b.name,
                r.suite,
                b.cases.len()
            ));
        }
    }
    s.push('\n');
    s.push_str(changes);
    s
}
