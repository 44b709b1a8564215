//! What changed since the last nightly run: new failures, fixed checks, flaky checks, new
//! infrastructure errors. Pure: snapshots in, lists out.

use crate::outcome::Outcome;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Key {
    pub board: String,
    pub suite: String,
    pub check: String,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.board, self.suite, self.check)
    }
}

/// One run's results: key → (outcome, message).
pub type Snapshot = BTreeMap<Key, (Outcome, String)>;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Changes {
    /// Whether there was a previous run to compare with.
    pub baseline: bool,
    /// Failing now, not failing (or not run) in the previous run, and not flaky.
    pub new_failures: Vec<(Key, String)>,
    /// Passing now, failing in the previous run.
    pub fixed: Vec<Key>,
    /// Flipped between pass and fail at least twice within the window (this run included).
    pub flaky: Vec<(Key, String)>,
    /// An infrastructure or harness error now that the previous run did not have.
    pub new_infra_errors: Vec<(Key, String)>,
    /// Failing now and in the previous run.
    pub still_failing: Vec<Key>,
}

/// `history`: earlier runs, newest first (the window).
pub fn compare(now: &Snapshot, history: &[Snapshot]) -> Changes {
    let prev = history.first();
    let mut c = Changes {
        baseline: prev.is_some(),
        ..Default::default()
    };
    for (key, (outcome, message)) in now {
        let before = prev.and_then(|p| p.get(key)).map(|(o, _)| *o);
        // pass/fail sequence, newest first; other outcomes say nothing about flakiness.
        let seq: Vec<Outcome> = std::iter::once(*outcome)
            .chain(history.iter().filter_map(|h| h.get(key).map(|(o, _)| *o)))
            .filter(|o| matches!(o, Outcome::Pass | Outcome::Fail))
            .collect();
        let flips = seq.windows(2).filter(|w| w[0] != w[1]).count();
        let flaky = flips >= 2;
        if flaky {
            c.flaky.push((
                key.clone(),
                format!("{flips} pass/fail flips in the last {} runs", seq.len()),
            ));
        }
        match *outcome {
            Outcome::Fail if before == Some(Outcome::Fail) => c.still_failing.push(key.clone()),
            Outcome::Fail if !flaky => c.new_failures.push((key.clone(), message.clone())),
            Outcome::Pass if before == Some(Outcome::Fail) => c.fixed.push(key.clone()),
            o if o.is_error() && before != Some(o) => c
                .new_infra_errors
                .push((key.clone(), format!("{}: {message}", o.json_name()))),
            _ => {}
        }
    }
    c
}

impl Changes {
    /// The report section (Markdown, also printed on the terminal).
    pub fn render(&self) -> String {
        let mut s = String::from("# Changes since the last run\n\n");
        if !self.baseline {
            s.push_str("No earlier run of this lab in the history: this run is the baseline.\n\n");
        }
        let mut section = |title: &str, items: Vec<String>| {
            s.push_str(&format!("## {title} ({})\n\n", items.len()));
            for i in items {
                s.push_str(&format!("- {i}\n"));
            }
            s.push('\n');
        };
        section(
            "New failures",
            self.new_failures
                .iter()
                .map(|(k, m)| format!("✘ {k}: {}", first_line(m)))
                .collect(),
        );
        section(
            "New infrastructure errors",
            self.new_infra_errors
                .iter()
                .map(|(k, m)| format!("⚠ {k}: {}", first_line(m)))
                .collect(),
        );
        section(
            "Fixed",
            self.fixed.iter().map(|k| format!("✔ {k}")).collect(),
        );
        section(
            "Flaky",
            self.flaky
                .iter()
                .map(|(k, m)| format!("~ {k}: {m}"))
                .collect(),
        );
        section(
            "Still failing",
            self.still_failing
                .iter()
                .map(|k| format!("✘ {k}"))
                .collect(),
        );
        s
    }
}

fn first_line(s: &str) -> &str {
    let l = s.lines().next().unwrap_or("");
    match l.char_indices().nth(200) {
        Some((i, _)) => &l[..i],
        None => l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(items: &[(&str, &str)]) -> Snapshot {
        items
            .iter()
            .map(|(c, o)| {
                (
                    Key {
                        board: "b".into(),
                        suite: "s".into(),
                        check: c.to_string(),
                    },
                    (
                        Outcome::from_json_name(o).expect("test outcome"),
                        format!("{c} said {o}"),
                    ),
                )
            })
            .collect()
    }

    fn names(keys: impl IntoIterator<Item = Key>) -> Vec<String> {
        keys.into_iter().map(|k| k.check).collect()
    }

    #[test]
    fn new_fixed_still_and_infra() {
        let prev = snap(&[
            ("a", "pass"),
            ("b", "fail"),
            ("c", "fail"),
            ("d", "pass"),
            ("e", "error:infrastructure"),
        ]);
        let now = snap(&[
            ("a", "fail"),
            ("b", "pass"),
            ("c", "fail"),
            ("d", "error:infrastructure"),
            ("e", "error:infrastructure"),
            ("f", "fail"),
        ]);
        let c = compare(&now, &[prev]);
        assert!(c.baseline);
        assert_eq!(
            names(c.new_failures.iter().map(|x| x.0.clone())),
            ["a", "f"]
        );
        assert_eq!(c.new_failures[0].1, "a said fail");
        assert_eq!(names(c.fixed), ["b"]);
        assert_eq!(names(c.still_failing), ["c"]);
        // d is new lab trouble; e was already broken last time.
        assert_eq!(names(c.new_infra_errors.iter().map(|x| x.0.clone())), ["d"]);
        assert!(c.flaky.is_empty());
    }

    #[test]
    fn flip_flopping_check_is_flaky_not_new() {
        let h = [
            snap(&[("a", "pass")]),
            snap(&[("a", "fail")]),
            snap(&[("a", "pass")]),
        ];
        let c = compare(&snap(&[("a", "fail")]), &h);
        assert_eq!(names(c.flaky.iter().map(|x| x.0.clone())), ["a"]);
        assert!(c.new_failures.is_empty());
        // Blocked/skipped runs in between neither make nor break flakiness.
        let h = [snap(&[("a", "blocked")]), snap(&[("a", "pass")])];
        let c = compare(&snap(&[("a", "fail")]), &h);
        assert!(c.flaky.is_empty());
        assert_eq!(c.new_failures.len(), 1);
    }

    #[test]
    fn first_run_is_the_baseline() {
        let c = compare(&snap(&[("a", "fail"), ("b", "pass")]), &[]);
        assert!(!c.baseline);
        assert_eq!(c.new_failures.len(), 1);
        let text = c.render();
        assert!(text.contains("this run is the baseline"), "{text}");
        assert!(
            text.contains("## New failures (1)\n\n- ✘ b/s/a: a said fail"),
            "{text}"
        );
    }
}
