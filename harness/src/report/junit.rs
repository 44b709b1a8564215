//! `junit.xml` via quick-junit: one testsuite per board, one testcase per check, properties
//! for board, kernel, image hashes and harness version; `system-out` is the console slice.

use super::RunReport;
use crate::outcome::Outcome;
use quick_junit::{
    NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite,
};
use std::time::Duration;

pub fn render(r: &RunReport) -> String {
    render_many(&format!("hil {}", r.suite), std::slice::from_ref(r), |_| {
        true
    })
}

/// Several runs in one file (a nightly's merged or per-board JUnit): a testsuite per board
/// and run, for the boards `keep` selects.
pub fn render_many(title: &str, runs: &[RunReport], keep: impl Fn(&str) -> bool) -> String {
    let mut report = Report::new(title.to_string());
    report.set_time(Duration::from_secs_f64(
        runs.iter().map(|r| r.duration_s).sum(),
    ));
    for (r, b) in runs
        .iter()
        .flat_map(|r| r.boards.iter().map(move |b| (r, b)))
        .filter(|(_, b)| keep(&b.name))
    {
        let mut suite = TestSuite::new(format!("{}/{}", b.name, r.suite));
        suite.add_property(Property::new("board", b.name.clone()));
        suite.add_property(Property::new("harness_version", r.harness_version.clone()));
        suite.add_property(Property::new("run_id", r.run_id.clone()));
        for (k, v) in &b.properties {
            suite.add_property(Property::new(k.clone(), v.clone()));
        }
        let mut total = 0.0;
        for c in &b.cases {
            let status = match c.outcome {
                Outcome::Pass => TestCaseStatus::success(),
                Outcome::Fail => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(c.message.clone()).set_type("fail");
                    s
                }
                Outcome::InfraError | Outcome::HarnessError => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    let ty = if c.outcome == Outcome::InfraError {
                        "infrastructure"
                    } else {
                        "harness"
                    };
                    s.set_message(c.message.clone()).set_type(ty);
                    s
                }
                Outcome::Blocked | Outcome::Skipped => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(format!("{}: {}", c.outcome.label(), c.message));
                    s
                }
            };
            let mut status = status;
            // Earlier attempts: flakyFailure/flakyError inside a pass, rerunFailure/rerunError
            // inside a failure (quick-junit picks the element by the final status).
            status.add_reruns(c.attempts.iter().filter_map(|a| {
                let (kind, ty) = match a.outcome {
                    Outcome::Fail => (NonSuccessKind::Failure, "fail"),
                    Outcome::InfraError => (NonSuccessKind::Error, "infrastructure"),
                    Outcome::HarnessError => (NonSuccessKind::Error, "harness"),
                    _ => return None,
                };
                let mut r = TestRerun::new(kind);
                r.set_message(a.message.clone())
                    .set_type(ty)
                    .set_time(Duration::from_secs_f64(a.duration_s));
                if !a.console.is_empty() {
                    r.set_system_out_lossy(a.console.as_bytes());
                }
                Some(r)
            }));
            let mut tc = TestCase::new(c.name.clone(), status);
            tc.set_classname(format!("{}.{}", b.name, c.kind));
            tc.set_time(Duration::from_secs_f64(c.duration_s));
            if !c.console.is_empty() {
                tc.set_system_out_lossy(c.console.as_bytes());
            }
            total += c.duration_s;
            suite.add_test_case(tc);
        }
        suite.set_time(Duration::from_secs_f64(total));
        report.add_test_suite(suite);
    }
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- junit serialization failed: {e} -->"))
}
