//! The queue of runs waiting for a busy board, kept by both coordinators alike.
//!
//! A waiter joins with a priority and keeps its place by refreshing a heartbeat while it
//! waits; a waiter that gives up leaves, and one that was killed lapses once its heartbeat
//! is older than its time to live, so a dead waiter never blocks the board. The board is
//! granted only to the head of the live queue: the highest priority, and among equal
//! priorities the earliest arrival. A free board with an empty queue is granted at once,
//! also to a caller that does not queue (`hil power`, `hil lab up`); with waiters, such a
//! caller is refused like on a busy board, so it cannot jump the queue.

use super::Owner;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A waiter's place in a board's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiter {
    pub owner: Owner,
    /// Higher is served first (`--priority`, `HIL_PRIORITY`; default 0).
    pub priority: i32,
    /// Arrival order within the board's queue: smaller came first.
    pub seq: u64,
    /// Unix seconds (on this host's clock, a database's converted).
    pub joined: f64,
    pub heartbeat: f64,
    pub ttl_s: u64,
}

impl Waiter {
    pub fn expired(&self, now: f64) -> bool {
        now >= self.heartbeat + self.ttl_s as f64
    }

    /// "job 7 (ci@lab2, pid 9, run r), priority 5, waiting 40 s".
    pub fn describe(&self, now: f64) -> String {
        format!(
            "{}, priority {}, waiting {}",
            self.owner.describe(),
            self.priority,
            super::human((now - self.joined).max(0.0))
        )
    }
}

/// How a waiter queues: its priority, and how long its place lives without a refresh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spot {
    pub priority: i32,
    pub ttl: Duration,
}

impl Spot {
    pub fn ttl_s(&self) -> u64 {
        self.ttl.as_secs().max(1)
    }
}

/// How long a waiter's place lives without a refresh, for a waiter that refreshes every
/// `poll`: several missed polls (a loaded host, a slow database) do not lose the place,
/// and a killed waiter's place lapses within seconds.
pub fn spot_ttl(poll: Duration) -> Duration {
    (poll * 10).max(Duration::from_secs(10))
}

/// The live waiters in the order they are served.
pub fn in_turn(mut waiters: Vec<Waiter>) -> Vec<Waiter> {
    waiters.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.seq.cmp(&b.seq)));
    waiters
}

/// Why a free board is not granted to someone who is not the head of its queue.
pub fn not_your_turn(order: &[Waiter], now: f64) -> String {
    match order.first() {
        Some(head) => format!(
            "free, but {} waiting in its queue, first {}",
            order.len(),
            head.describe(now)
        ),
        None => "free".into(),
    }
}

/// The priority of this process's runs: `HIL_PRIORITY`, else 0. A value that is not a
/// number is a usage error naming it.
pub fn priority_from_env() -> Result<i32, String> {
    match std::env::var("HIL_PRIORITY") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| {
            format!("HIL_PRIORITY={v:?} is not a whole number (higher runs first; default 0)")
        }),
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(pid: u32, priority: i32, seq: u64) -> Waiter {
        Waiter {
            owner: crate::lease::files::tests::owner(pid),
            priority,
            seq,
            joined: 0.0,
            heartbeat: 0.0,
            ttl_s: 10,
        }
    }

    #[test]
    fn higher_priority_first_then_arrival() {
        let order = in_turn(vec![w(1, 0, 1), w(2, 5, 2), w(3, 5, 3), w(4, -1, 0)]);
        let pids: Vec<u32> = order.iter().map(|w| w.owner.pid).collect();
        assert_eq!(pids, [2, 3, 1, 4]);
        let why = not_your_turn(&order, 30.0);
        assert!(
            why.starts_with("free, but 4 waiting in its queue, first job 42 (ci@lab1, pid 2"),
            "{why}"
        );
        assert!(why.contains("priority 5, waiting 30 s"), "{why}");
    }

    #[test]
    fn a_place_lapses_after_its_ttl() {
        let mut x = w(1, 0, 1);
        x.heartbeat = 100.0;
        assert!(!x.expired(109.0));
        assert!(x.expired(110.0));
        assert_eq!(spot_ttl(Duration::from_secs(1)), Duration::from_secs(10));
        assert_eq!(spot_ttl(Duration::from_secs(3)), Duration::from_secs(30));
    }
}

#[cfg(test)]
pub(crate) mod scenarios;
