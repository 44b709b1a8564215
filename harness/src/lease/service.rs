//! Whether a board is in service, kept by both coordinators beside its lease.
//!
//! A board goes out of service by hand (`hil boards disable BOARD --reason TEXT`), or by
//! itself after a number of runs in a row ended in an infrastructure error (the board
//! file's `lease.out_of_service_after`; 0, the default, never). A run on a board out of
//! service is refused at once with the reason, except a health run (`hil checklist`,
//! `hil run --health`), which puts the board back in service when it passes. `hil boards
//! enable BOARD` puts it back by hand.

use serde::{Deserialize, Serialize};

/// A board's service state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Set while the board is out of service.
    pub out: Option<OutOfService>,
    /// Runs in a row on the board that ended in an infrastructure error.
    pub infra_errors_in_a_row: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutOfService {
    pub reason: String,
    /// Unix seconds (on this host's clock, a database's converted).
    pub since: f64,
    /// `user@host` of whoever took it out, or `hil` when it went by itself.
    pub by: String,
}

impl OutOfService {
    /// "since 2026-12-02 01:10:00 UTC by ci@lab1: relay stuck".
    pub fn describe(&self) -> String {
        format!("since {} by {}: {}", utc(self.since), self.by, self.reason)
    }
}

/// How a run on the board ended, as far as its service is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunVerdict {
    /// Some step ended in an infrastructure error.
    Infrastructure,
    /// It tested the board (a check passed or failed) without lab trouble.
    Tested,
    /// Neither (all blocked or skipped, a harness error, interrupted): counts for nothing.
    Neither,
}

impl Service {
    /// The state after a run ending in `verdict`, out of service after `threshold`
    /// infrastructure errors in a row (0: never by itself).
    pub fn after_run(mut self, verdict: RunVerdict, threshold: u32, now: f64) -> Service {
        match verdict {
            RunVerdict::Infrastructure => {
                self.infra_errors_in_a_row = self.infra_errors_in_a_row.saturating_add(1);
                if threshold > 0 && self.infra_errors_in_a_row >= threshold && self.out.is_none() {
                    self.out = Some(OutOfService {
                        reason: format!(
                            "{} runs in a row ended in an infrastructure error (lease.out_of_service_after = {threshold})",
                            self.infra_errors_in_a_row
                        ),
                        since: now,
                        by: "hil".into(),
                    });
                }
            }
            RunVerdict::Tested => self.infra_errors_in_a_row = 0,
            RunVerdict::Neither => {}
        }
        self
    }
}

/// Who takes a board out of service by hand: `user@host`.
pub fn by_this_user() -> String {
    let me = super::Owner::this_process("");
    format!("{}@{}", me.user, me.host)
}

/// Unix seconds as "2026-12-02 01:10:00 UTC".
pub fn utc(t: f64) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(t as i64)
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_else(|| format!("{t:.0}"))
}

#[cfg(test)]
pub(crate) mod scenarios;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_after_the_threshold_in_a_row_and_a_tested_run_resets_the_count() {
        let s = Service::default()
            .after_run(RunVerdict::Infrastructure, 3, 10.0)
            .after_run(RunVerdict::Infrastructure, 3, 11.0)
            .after_run(RunVerdict::Tested, 3, 12.0)
            .after_run(RunVerdict::Infrastructure, 3, 13.0)
            .after_run(RunVerdict::Neither, 3, 13.5)
            .after_run(RunVerdict::Infrastructure, 3, 14.0);
        assert_eq!((s.out.is_none(), s.infra_errors_in_a_row), (true, 2));
        let s = s.after_run(RunVerdict::Infrastructure, 3, 15.0);
        let out = s.out.clone().unwrap();
        assert_eq!(out.by, "hil");
        assert_eq!(out.since, 15.0);
        assert!(out
            .reason
            .starts_with("3 runs in a row ended in an infrastructure error"));
        assert_eq!(
            out.describe(),
            format!("since 1970-01-01 00:00:15 UTC by hil: {}", out.reason)
        );
        // Never by itself when the threshold is 0.
        let mut s = Service::default();
        for _ in 0..50 {
            s = s.after_run(RunVerdict::Infrastructure, 0, 1.0);
        }
        assert!(s.out.is_none());
    }
}
