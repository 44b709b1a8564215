//! The pattern set every engine waits on: the awaited prompt plus five death patterns, as a
//! harness following a booting board would. The same strings go to Python (`re`) and Rust
//! (`regex`), so they use only syntax both read alike.

/// What each stream ends with; the awaited pattern.
pub const END_TEXT: &str = "\r\nhil-bench login: ";
pub const AWAITED: &str = r"hil-bench login: ";

/// Latency marks: `MARK_PREFIX` then the mark's number and a line end.
pub const MARK_PREFIX: &str = "hil-bench mark ";
pub const MARK: &str = r"hil-bench mark (\d+)\r\n";

/// (name, regex)
pub const DEATH: [(&str, &str); 5] = [
    ("kernel panic", r"Kernel panic - not syncing"),
    ("kernel oops", r"Internal error: Oops"),
    ("bootloader banner", r"U-Boot 20\d\d"),
    (
        "kernel fault",
        r"Unable to handle kernel (NULL pointer dereference|paging request)",
    ),
    ("soft lockup", r"BUG: soft lockup - CPU#\d+ stuck"),
];

pub fn death_patterns() -> Vec<crate::expect::DeathPattern> {
    DEATH
        .iter()
        .map(|(name, re)| crate::expect::DeathPattern::new(name, re))
        .collect()
}
