//! The simulated lab and its day of jobs, made from a seed so that every host process
//! derives the same plan and takes its own share of it.
//!
//! The shape follows a large board lab (Linaro's LAVA lab in 2016: 10 lab hosts, 130
//! boards, about 2,000 jobs a day), compressed from a day into `spread_s` seconds: jobs
//! arrive uniformly over the spread, a tenth of the boards (the popular ones) draw half of
//! the jobs, most jobs run at priority 0 and a few higher, hold times are log-uniform from
//! 0.2 to 4 s (`max_hold_s`), and about a third of the jobs give up after a short wait in the queue.

use crate::bench::textgen::Rng;
use std::time::Duration;

/// Board types of the simulated lab and their share of its boards.
const BOARD_TYPES: &[(&str, u32)] = &[("rk3588", 40), ("imx8mp", 30), ("juno", 20), ("x15", 10)];

/// The queue time-out of the jobs that wait long (the others give up within 1–5 s).
pub const LONG_QUEUE_TIMEOUT_S: f64 = 60.0;

/// The shortest hold of a board, in seconds.
const MIN_HOLD_S: f64 = 0.2;

/// What sizes the simulation; every host process gets the same values.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct PlanArgs {
    /// Lab hosts, each a process of its own.
    #[arg(long = "lease-hosts", default_value_t = 10)]
    pub hosts: usize,
    #[arg(long = "lease-boards", default_value_t = 130)]
    pub boards: usize,
    #[arg(long = "lease-jobs", default_value_t = 2000)]
    pub jobs: usize,
    /// Seconds over which the jobs arrive (the lab's day, compressed).
    #[arg(long = "lease-spread-s", default_value_t = 120.0)]
    pub spread_s: f64,
    /// Jobs whose holder stops heartbeating without releasing, as a killed process does.
    #[arg(long = "lease-crashes", default_value_t = 5)]
    pub crashes: usize,
    /// The longest hold of a board, in seconds (holds are log-uniform from 0.2 s).
    #[arg(long = "lease-max-hold-s", default_value_t = 4.0)]
    pub max_hold_s: f64,
    /// Lease time to live (whole seconds; heartbeats every quarter of it).
    #[arg(long = "lease-ttl-s", default_value_t = 4)]
    pub ttl_s: u64,
    /// How often a waiter retries its board (hil run --wait retries every second).
    #[arg(long = "lease-poll-ms", default_value_t = 1000)]
    pub poll_ms: u64,
    /// Database connections per host process; its jobs share them round-robin.
    #[arg(long = "lease-connections", default_value_t = 2)]
    pub connections: usize,
    #[arg(id = "lease_seed", long = "lease-seed", default_value_t = 1)]
    pub seed: u64,
}

/// One job of the day.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: usize,
    /// The host process that runs it.
    pub host: usize,
    pub board: String,
    pub priority: i32,
    /// When it arrives, from the start of the run.
    pub at: Duration,
    pub hold: Duration,
    pub queue_timeout: Duration,
    /// Stops heartbeating half-way through its hold, without releasing.
    pub crash: bool,
}

/// The lab's board names: `TYPE-N`, the types in their shares.
pub fn boards(n: usize) -> Vec<String> {
    let total: u32 = BOARD_TYPES.iter().map(|(_, s)| s).sum();
    let mut names = Vec::with_capacity(n);
    for (i, (kind, share)) in BOARD_TYPES.iter().enumerate() {
        let count = if i + 1 == BOARD_TYPES.len() {
            n - names.len()
        } else {
            (n * *share as usize) / total as usize
        };
        names.extend((1..=count).map(|k| format!("{kind}-{k}")));
    }
    names
}

/// A uniform draw from [0, 1).
fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The day's jobs in order of arrival; job `i` runs on host `i % hosts`.
pub fn jobs(a: &PlanArgs) -> Vec<Job> {
    let boards = boards(a.boards.max(1));
    let popular = (boards.len() / 10).max(1);
    let mut rng = Rng::new(a.seed);
    let mut at: Vec<f64> = (0..a.jobs).map(|_| unit(&mut rng) * a.spread_s).collect();
    at.sort_by(f64::total_cmp);
    // Crashes spread evenly over the day, none in its last tenth (their boards' expiry
    // should be seen by later jobs).
    let crash_every = (a.jobs * 9 / 10)
        .checked_div(a.crashes)
        .map_or(usize::MAX, |n| n.max(1));
    at.into_iter()
        .enumerate()
        .map(|(id, at_s)| {
            // Popular boards are spread over the types: every tenth board.
            let board = if unit(&mut rng) < 0.5 {
                let k = rng.below(popular as u64) as usize;
                &boards[(k * 10) % boards.len()]
            } else {
                &boards[rng.below(boards.len() as u64) as usize]
            };
            let p = unit(&mut rng);
            let priority = if p < 0.85 {
                0
            } else if p < 0.97 {
                5
            } else {
                10
            };
            let max_hold = a.max_hold_s.max(MIN_HOLD_S);
            let hold_s = MIN_HOLD_S * (max_hold / MIN_HOLD_S).powf(unit(&mut rng));
            let queue_timeout_s = if unit(&mut rng) < 0.35 {
                1.0 + 4.0 * unit(&mut rng)
            } else {
                LONG_QUEUE_TIMEOUT_S
            };
            let crash = a.crashes > 0
                && id % crash_every == crash_every / 2
                && id / crash_every < a.crashes;
            Job {
                id,
                host: id % a.hosts.max(1),
                board: board.clone(),
                priority,
                at: Duration::from_secs_f64(at_s),
                hold: Duration::from_secs_f64(hold_s),
                queue_timeout: Duration::from_secs_f64(queue_timeout_s),
                crash,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> PlanArgs {
        PlanArgs {
            hosts: 10,
            boards: 130,
            jobs: 2000,
            spread_s: 120.0,
            crashes: 5,
            max_hold_s: 4.0,
            ttl_s: 4,
            poll_ms: 1000,
            connections: 2,
            seed: 1,
        }
    }

    #[test]
    fn the_lab_has_every_board_once_across_its_types() {
        let b = boards(130);
        assert_eq!(b.len(), 130);
        let unique: std::collections::HashSet<_> = b.iter().collect();
        assert_eq!(unique.len(), 130);
        assert!(b.contains(&"rk3588-52".to_string()) && b.contains(&"x15-13".to_string()));
        assert_eq!(boards(5).len(), 5);
    }

    #[test]
    fn the_plan_is_the_same_for_every_host_and_shaped_as_described() {
        let a = args();
        let j = jobs(&a);
        assert_eq!(j, jobs(&a), "same seed, same plan");
        assert_eq!(j.len(), 2000);
        assert_eq!(j.iter().filter(|j| j.crash).count(), 5);
        assert!(j.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(j.iter().all(|j| j.host == j.id % 10));
        let popular: std::collections::HashSet<String> =
            boards(130).into_iter().step_by(10).collect();
        let on_popular = j.iter().filter(|j| popular.contains(&j.board)).count();
        assert!((1000..1250).contains(&on_popular), "{on_popular}");
        let high = j.iter().filter(|j| j.priority > 0).count();
        assert!((200..400).contains(&high), "{high}");
        let short = j.iter().filter(|j| j.queue_timeout.as_secs() < 10).count();
        assert!((550..850).contains(&short), "{short}");
        assert!(j
            .iter()
            .all(|j| (0.2..=4.0).contains(&j.hold.as_secs_f64())));
    }
}
