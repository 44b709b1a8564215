//! Bounds on the numbers board and suite files may give, and saturating deadline arithmetic.
//!
//! Every duration in a board or suite file is checked against a [`SecsRange`] when the file
//! is validated, so nothing later has to guess what `0` or `2^63` seconds should mean. The
//! deadline helpers below still saturate: they are the last line of defence for a value
//! that reached the engine by another road (a library caller, a test), and `Instant +
//! Duration` panics on overflow, which would take a whole board task down.

use std::time::Duration;

/// One step of a run (a bootloader wait, a command, a check, a flash): a day is already
/// far past anything a board needs, and small enough that a typo (an extra few zeros) is
/// caught rather than turning a stuck board into a job that never ends.
pub const STEP_MAX_S: u64 = 24 * 3600;

/// The whole job (`deadline_s` of a suite): a week covers a soak test; more is a typo.
pub const JOB_MAX_S: u64 = 7 * 24 * 3600;

/// A lease renewed every quarter of its life: a day is the longest a dead job may keep a
/// board.
pub const LEASE_MAX_S: u64 = 24 * 3600;

/// Console re-open: longer and a board without a console would go unnoticed for too long.
pub const REOPEN_MAX_S: u64 = 3600;

/// The fastest USB-serial adapters in use (FTDI FT232H) top out at 12 Mbaud.
pub const BAUD_MAX: u32 = 12_000_000;

/// The allowed values of one duration key, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct SecsRange {
    pub max: u64,
    /// `Some(meaning)` when 0 is allowed and what it does (`"turns re-opening off"`);
    /// `None` when 0 is refused.
    pub zero: Option<&'static str>,
}

impl SecsRange {
    /// A single step: 1 s to [`STEP_MAX_S`].
    pub const STEP: SecsRange = SecsRange {
        max: STEP_MAX_S,
        zero: None,
    };
    /// A whole job: 1 s to [`JOB_MAX_S`].
    pub const JOB: SecsRange = SecsRange {
        max: JOB_MAX_S,
        zero: None,
    };
    pub const LEASE: SecsRange = SecsRange {
        max: LEASE_MAX_S,
        zero: None,
    };

    /// `None` when `value` is allowed, else what is wrong and what was expected.
    pub fn check(&self, value: u64) -> Option<String> {
        if value == 0 {
            return self.zero_refused();
        }
        (value > self.max).then(|| self.too_long(value))
    }

    /// The same for a fractional number of seconds (`interval_s = 0.2`).
    pub fn check_f64(&self, value: f64) -> Option<String> {
        if !value.is_finite() || value < 0.0 {
            return Some(format!(
                "is {value}; expected a number of seconds from 0 to {}",
                self.max
            ));
        }
        if value == 0.0 {
            return self.zero_refused();
        }
        // Compared as floats: `as u64` would saturate and hide the value.
        (value > self.max as f64).then(|| self.too_long(value))
    }

    fn zero_refused(&self) -> Option<String> {
        self.zero.is_none().then(|| {
            format!(
                "is 0; expected 1 to {} seconds (at most {}): a limit of 0 would fail at once",
                self.max,
                human(self.max)
            )
        })
    }

    fn too_long(&self, value: impl std::fmt::Display) -> String {
        let low = if self.zero.is_some() { 0 } else { 1 };
        let zero = self.zero.map(|z| format!("; 0 {z}")).unwrap_or_default();
        format!(
            "is {value}; expected {low} to {} seconds (at most {}{zero})",
            self.max,
            human(self.max)
        )
    }
}

/// `86400` → `"24 h"`, `604800` → `"7 days"`, for messages.
fn human(secs: u64) -> String {
    match secs {
        s if s >= 2 * 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// What a deadline falls back to when `now + d` does not fit an `Instant`: far enough to
/// mean "no limit", near enough to fit on every platform.
const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);

/// `now + d` on tokio's clock, saturating at [`FAR`] instead of panicking.
pub fn deadline_after(d: Duration) -> tokio::time::Instant {
    deadline_from(tokio::time::Instant::now(), d)
}

/// `start + d`, saturating like [`deadline_after`].
pub fn deadline_from(start: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    start
        .checked_add(d)
        .or_else(|| start.checked_add(FAR))
        .unwrap_or(start)
}

/// `start + d` on the std clock, saturating like [`deadline_after`].
pub fn std_deadline_from(start: std::time::Instant, d: Duration) -> std::time::Instant {
    start
        .checked_add(d)
        .or_else(|| start.checked_add(FAR))
        .unwrap_or(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_refuse_zero_and_name_the_bound() {
        assert_eq!(SecsRange::STEP.check(1), None);
        assert_eq!(SecsRange::STEP.check(STEP_MAX_S), None);
        let e = SecsRange::STEP.check(0).unwrap();
        assert!(
            e.starts_with("is 0; expected 1 to 86400 seconds (at most 24 h)"),
            "{e}"
        );
        let e = SecsRange::STEP.check(9_223_372_036_854_775_807).unwrap();
        assert!(
            e.contains("is 9223372036854775807; expected 1 to 86400 seconds (at most 24 h)"),
            "{e}"
        );
        let e = SecsRange::JOB.check(JOB_MAX_S + 1).unwrap();
        assert!(e.contains("at most 7 days"), "{e}");
    }

    #[test]
    fn a_range_that_allows_zero_says_what_zero_means() {
        let r = SecsRange {
            max: REOPEN_MAX_S,
            zero: Some("turns re-opening off"),
        };
        assert_eq!(r.check(0), None);
        let e = r.check(86_400).unwrap();
        assert!(
            e.contains("expected 0 to 3600 seconds (at most 1 h; 0 turns re-opening off)"),
            "{e}"
        );
    }

    #[test]
    fn fractional_seconds_are_checked_too() {
        assert_eq!(SecsRange::STEP.check_f64(0.2), None);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            assert!(SecsRange::STEP.check_f64(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn deadlines_saturate_instead_of_panicking() {
        let now = tokio::time::Instant::now();
        assert!(deadline_after(Duration::MAX) > now);
        assert!(deadline_from(now, Duration::from_secs(u64::MAX)) > now);
        assert_eq!(
            deadline_from(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let std_now = std::time::Instant::now();
        assert!(std_deadline_from(std_now, Duration::MAX) > std_now);
    }
}
