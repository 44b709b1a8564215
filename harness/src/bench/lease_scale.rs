//! `hil bench --only lease-scale`: a day of a large board lab's lease traffic, compressed
//! into minutes, against one throw-away PostgreSQL server ([`Cluster`]).
//!
//! [`plan`] makes the lab and its jobs from a seed; [`host`] runs each simulated lab host
//! as a process of its own, its jobs going through hil's real lease code; [`grant_log`]
//! has the database record every grant as it happens; [`intervals`] checks that no two
//! grants of a board overlap; [`server_cpu`] reads what the server spent. No board, QEMU
//! or console is involved: only the leases.

pub mod grant_log;
pub mod host;
pub mod intervals;
pub mod percentile;
pub mod plan;
pub mod server_cpu;

use crate::lease::pg::PgLeases;
use crate::lease::pg_cluster::Cluster;
use anyhow::Context;
use host::{HostProcess, Outcome};
use percentile::Spread;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The product's bound on a grant of a free board.
pub const GRANT_P99_TARGET_MS: f64 = 50.0;

/// Connections the throw-away server takes (its `max_connections`, less the bench's
/// own and PostgreSQL's reserve).
const SERVER_CONNECTIONS: usize = 36;

#[derive(Debug, Serialize)]
pub struct LeaseScaleResult {
    pub hosts: usize,
    pub boards: usize,
    pub jobs: usize,
    pub spread_s: f64,
    pub connections_per_host: usize,
    pub ttl_s: u64,
    pub poll_ms: u64,
    pub wall_s: f64,
    /// Jobs by how they ended.
    pub outcomes: BTreeMap<String, usize>,
    /// Grants the database recorded (each job granted once, crashed ones included).
    pub grants: usize,
    /// Grants that ended by expiry and takeover (the crashed holders' leases).
    pub expired_and_taken_over: usize,
    /// Pairs of overlapping grants of one board, or tokens out of order: must be 0.
    pub double_grants: usize,
    /// `Held::acquire` on a board found free with an empty queue: the grant itself.
    pub grant_free: Spread,
    /// `Held::acquire` of jobs that queued, until granted.
    pub queue_wait: Spread,
    /// Jobs that timed out in the queue: how long they had waited.
    pub queue_timeout_wait: Spread,
    pub server_cpu_s: f64,
    pub server_cpu_ms_per_1000_grants: f64,
    /// The first few reasons of each outcome other than finished and crashed.
    pub reasons: Vec<String>,
    /// What the check found wrong (empty when all is well).
    pub problems: Vec<String>,
}

/// Starts the server, the hosts, runs the day and checks it. The server and the hosts
/// are stopped when this returns, also on an error or Ctrl-C.
pub async fn run(a: &plan::PlanArgs) -> anyhow::Result<LeaseScaleResult> {
    anyhow::ensure!(
        a.hosts >= 1 && a.connections >= 1 && a.hosts * a.connections <= SERVER_CONNECTIONS,
        "--lease-hosts × --lease-connections must be between 1 and {SERVER_CONNECTIONS} (the test server's connections)"
    );
    let cluster = tokio::task::spawn_blocking(Cluster::start).await??;
    let r = tokio::select! {
        r = measure(&cluster, a) => r,
        Ok(()) = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let stop = tokio::task::spawn_blocking(move || drop(cluster));
    let _ = stop.await;
    r
}

async fn measure(cluster: &Cluster, a: &plan::PlanArgs) -> anyhow::Result<LeaseScaleResult> {
    let url = cluster.url();
    // The lease schema first (as the first hil to connect makes it), then the log on it.
    let leases = PgLeases::new(&url);
    tokio::task::spawn_blocking(move || leases.list()).await??;
    let (db, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    grant_log::install(&db).await?;
    let postmaster = cluster.postmaster_pid()?;
    let mut hosts = Vec::with_capacity(a.hosts);
    for i in 0..a.hosts {
        let name = format!("lab-{:02}", i + 1);
        hosts.push(HostProcess::start(&url, i, &name, a).await?);
    }
    let cpu_before = server_cpu::server_cpu(postmaster)?;
    let started = Instant::now();
    for h in &mut hosts {
        h.go().await?;
    }
    // The last arrival, its longest queue wait and hold, and a margin for a slow machine.
    let limit = Duration::from_secs_f64(
        a.spread_s.max(0.0) + plan::LONG_QUEUE_TIMEOUT_S + a.max_hold_s.max(0.0) + 120.0,
    );
    let mut reports = Vec::with_capacity(hosts.len());
    for h in &mut hosts {
        let r = tokio::time::timeout(limit.saturating_sub(started.elapsed()), h.report())
            .await
            .with_context(|| format!("lease host {} still running after {limit:?}", h.name))??;
        reports.push(r);
    }
    let wall_s = started.elapsed().as_secs_f64();
    drop(hosts);
    // Backends of the closed connections are collected by the postmaster, whose
    // children's time then includes them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu = server_cpu::server_cpu(postmaster)?.saturating_sub(cpu_before);
    let grants = grant_log::read(&db).await?;
    let jobs: Vec<host::JobRecord> = reports.into_iter().flat_map(|r| r.jobs).collect();
    Ok(summarize(a, wall_s, cpu, &grants, &jobs))
}

/// The figures and every check of one run.
pub fn summarize(
    a: &plan::PlanArgs,
    wall_s: f64,
    cpu: Duration,
    grants: &[intervals::Grant],
    jobs: &[host::JobRecord],
) -> LeaseScaleResult {
    let mut problems = Vec::new();
    let conflicts = intervals::conflicts(grants);
    for c in conflicts.iter().take(10) {
        problems.push(format!("double grant of board {}: {}", c.board, c.why));
    }
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut reasons = Vec::new();
    for j in jobs {
        let name = serde_json::to_value(j.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let n = outcomes.entry(name.clone()).or_default();
        *n += 1;
        if !matches!(j.outcome, Outcome::Finished | Outcome::Crashed) && *n <= 3 {
            reasons.push(format!("{name}: job {}: {}", j.id, j.reason));
        }
    }
    let count = |o: Outcome| jobs.iter().filter(|j| j.outcome == o).count();
    let planned_crashes = plan::jobs(a).iter().filter(|j| j.crash).count();
    if jobs.len() != a.jobs {
        problems.push(format!("{} of {} jobs reported back", jobs.len(), a.jobs));
    }
    for o in [Outcome::Lost, Outcome::Error] {
        if count(o) > 0 {
            problems.push(format!("{} jobs ended {o:?}", count(o)));
        }
    }
    if count(Outcome::Crashed) != planned_crashes {
        problems.push(format!(
            "{} jobs crashed, {planned_crashes} planned",
            count(Outcome::Crashed)
        ));
    }
    if let Some(j) = jobs
        .iter()
        .find(|j| j.outcome == Outcome::QueueTimeout && j.reason.is_empty())
    {
        problems.push(format!(
            "job {} timed out in the queue without a reason",
            j.id
        ));
    }
    // What the jobs say they were granted is what the database recorded, token by token.
    let logged: BTreeMap<i64, &intervals::Grant> = grants.iter().map(|g| (g.token, g)).collect();
    let granted: Vec<&host::JobRecord> = jobs.iter().filter(|j| j.token.is_some()).collect();
    for j in &granted {
        let token = j.token.unwrap_or_default() as i64;
        match logged.get(&token) {
            Some(g) if g.board == j.board && g.job == format!("job-{}", j.id) => {}
            Some(g) => problems.push(format!(
                "job {} was granted token {token} of board {}, the database logged it for {} of board {}",
                j.id, j.board, g.job, g.board
            )),
            None => problems.push(format!(
                "job {} was granted token {token} of board {}, which the database never logged",
                j.id, j.board
            )),
        }
    }
    if granted.len() != grants.len() {
        problems.push(format!(
            "{} grants logged by the database, {} reported by the jobs",
            grants.len(),
            granted.len()
        ));
    }
    let ms = |f: &dyn Fn(&host::JobRecord) -> bool| -> Vec<f64> {
        jobs.iter().filter(|j| f(j)).map(|j| j.acquire_ms).collect()
    };
    let grant_free = Spread::of(&ms(&|j| j.token.is_some() && !j.queued));
    let queue_wait = Spread::of(&ms(&|j| j.token.is_some() && j.queued));
    let queue_timeout_wait = Spread::of(&ms(&|j| j.outcome == Outcome::QueueTimeout));
    let cpu_s = cpu.as_secs_f64();
    LeaseScaleResult {
        hosts: a.hosts,
        boards: a.boards,
        jobs: a.jobs,
        spread_s: a.spread_s,
        connections_per_host: a.connections,
        ttl_s: a.ttl_s,
        poll_ms: a.poll_ms,
        wall_s,
        outcomes,
        grants: grants.len(),
        expired_and_taken_over: grants
            .iter()
            .filter(|g| g.ended == intervals::End::Expired)
            .count(),
        double_grants: conflicts.len(),
        grant_free,
        queue_wait,
        queue_timeout_wait,
        server_cpu_s: cpu_s,
        server_cpu_ms_per_1000_grants: if grants.is_empty() {
            f64::NAN
        } else {
            cpu_s * 1e3 / grants.len() as f64 * 1000.0
        },
        reasons,
        problems,
    }
}

impl LeaseScaleResult {
    /// The table rows.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "lease-scale: {} hosts × {} connections, {} boards, {} jobs over {:.0} s (TTL {} s, queue poll {} ms), {:.1} s wall",
            self.hosts,
            self.connections_per_host,
            self.boards,
            self.jobs,
            self.spread_s,
            self.ttl_s,
            self.poll_ms,
            self.wall_s
        );
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(s, "  jobs: {}", outcomes.join(", "));
        let _ = writeln!(
            s,
            "  grants: {} logged by the database, {} expired and taken over; double grants: {}",
            self.grants, self.expired_and_taken_over, self.double_grants
        );
        let _ = writeln!(
            s,
            "  {:<40} {:>6} {:>10} {:>10} {:>10}",
            "", "count", "p50 ms", "p99 ms", "max ms"
        );
        for (what, sp) in [
            ("grant of a free board (Held::acquire)", &self.grant_free),
            ("wait in the queue until granted", &self.queue_wait),
            (
                "wait in the queue until timed out",
                &self.queue_timeout_wait,
            ),
        ] {
            let _ = writeln!(
                s,
                "  {:<40} {:>6} {:>10.2} {:>10.2} {:>10.2}",
                what, sp.count, sp.p50_ms, sp.p99_ms, sp.max_ms
            );
        }
        let _ = writeln!(
            s,
            "  PostgreSQL server CPU: {:.2} s, {:.0} ms per 1,000 grants",
            self.server_cpu_s, self.server_cpu_ms_per_1000_grants
        );
        for r in &self.reasons {
            let _ = writeln!(s, "  e.g. {r}");
        }
        for p in &self.problems {
            let _ = writeln!(s, "  PROBLEM: {p}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::host::{JobRecord, Outcome};
    use super::intervals::{End, Grant};
    use super::*;

    fn args(jobs: usize) -> plan::PlanArgs {
        plan::PlanArgs {
            hosts: 2,
            boards: 5,
            jobs,
            spread_s: 3.0,
            crashes: 0,
            max_hold_s: 1.0,
            ttl_s: 2,
            poll_ms: 100,
            connections: 1,
            seed: 1,
        }
    }

    fn job(id: usize, board: &str, token: Option<u64>, outcome: Outcome) -> JobRecord {
        JobRecord {
            id,
            board: board.into(),
            priority: 0,
            outcome,
            token,
            queued: false,
            acquire_ms: 1.0,
            reason: if outcome == Outcome::QueueTimeout {
                "gave up".into()
            } else {
                String::new()
            },
        }
    }

    fn grant(token: i64, board: &str, job: usize, start_us: i64, end_us: i64) -> Grant {
        Grant {
            board: board.into(),
            token,
            job: format!("job-{job}"),
            start_us,
            end_us,
            ended: End::Released,
        }
    }

    #[test]
    fn a_clean_run_has_no_problems() {
        let jobs = [
            job(0, "a", Some(1), Outcome::Finished),
            job(1, "a", Some(2), Outcome::Finished),
            job(2, "a", None, Outcome::QueueTimeout),
        ];
        let grants = [grant(1, "a", 0, 0, 10), grant(2, "a", 1, 10, 20)];
        let r = summarize(&args(3), 1.0, Duration::from_millis(50), &grants, &jobs);
        assert_eq!(r.problems, Vec::<String>::new());
        assert_eq!(r.double_grants, 0);
        assert_eq!(r.outcomes["finished"], 2);
        assert_eq!(r.outcomes["queue_timeout"], 1);
        assert_eq!(r.server_cpu_ms_per_1000_grants, 25_000.0);
    }

    #[test]
    fn a_double_grant_or_a_grant_the_database_never_saw_is_a_problem() {
        let jobs = [
            job(0, "a", Some(1), Outcome::Finished),
            job(1, "a", Some(2), Outcome::Finished),
            job(2, "b", Some(7), Outcome::Finished),
        ];
        let grants = [grant(1, "a", 0, 0, 15), grant(2, "a", 1, 10, 20)];
        let r = summarize(&args(3), 1.0, Duration::ZERO, &grants, &jobs);
        assert_eq!(r.double_grants, 1);
        let all = r.problems.join("\n");
        assert!(all.contains("double grant of board a"), "{all}");
        assert!(
            all.contains("token 7 of board b, which the database never logged"),
            "{all}"
        );
        assert!(
            all.contains("2 grants logged by the database, 3 reported"),
            "{all}"
        );
    }

    #[test]
    fn a_missing_or_lost_job_is_a_problem() {
        let jobs = [job(0, "a", Some(1), Outcome::Lost)];
        let grants = [grant(1, "a", 0, 0, 10)];
        let r = summarize(&args(2), 1.0, Duration::ZERO, &grants, &jobs);
        let all = r.problems.join("\n");
        assert!(all.contains("1 of 2 jobs reported back"), "{all}");
        assert!(all.contains("1 jobs ended Lost"), "{all}");
    }
}
