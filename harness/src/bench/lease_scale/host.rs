//! One simulated lab host: a process of its own (`hil bench-lease-host`, hidden) with its
//! own `HIL_HOST` and database connections, running its share of the day's jobs as
//! concurrent tasks through hil's lease code: [`Held::acquire`] queueing with a priority
//! and a queue time-out, the heartbeat, [`Held::check_current`] before and after each half
//! of the hold, and the release. A crashing job stops its heartbeat half-way and never
//! releases, as a killed process leaves its lease.
//!
//! Protocol on its stdio: it connects, prints `ready`, starts its clock at a line from
//! stdin, and prints one JSON line ([`HostReport`]) when its last job has ended. It exits
//! when its stdin closes, so a bench that dies takes its hosts with it.

use super::plan::{self, Job, PlanArgs};
use crate::lease::pg::PgLeases;
use crate::lease::{this_host, Held, LeaseError, Leases, Owner, Wait};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, Clone, clap::Args)]
pub struct HostArgs {
    #[arg(long)]
    pub url: String,
    /// Which host of the plan this is (0-based).
    #[arg(long)]
    pub index: usize,
    #[command(flatten)]
    pub plan: PlanArgs,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Granted, held, fenced and released.
    Finished,
    /// Gave up waiting in the board's queue.
    QueueTimeout,
    /// Stopped heartbeating while holding, without releasing (planned).
    Crashed,
    /// Granted, but a fencing check, the heartbeat or the release found the lease lost.
    Lost,
    /// Any other error of the lease code (the database).
    Error,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: usize,
    pub board: String,
    pub priority: i32,
    pub outcome: Outcome,
    /// The grant's fencing token.
    pub token: Option<u64>,
    /// Whether it found the board busy (or queued for) and waited.
    pub queued: bool,
    /// From the call of `Held::acquire` to its return.
    pub acquire_ms: f64,
    /// The error text, for every outcome but `finished` and `crashed`.
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct HostReport {
    pub host: String,
    pub jobs: Vec<JobRecord>,
}

/// Set once the report is out: stdin closing after that is the normal end.
static REPORTED: AtomicBool = AtomicBool::new(false);

/// The host process's main: see the module doc.
pub async fn host_main(a: HostArgs) -> anyhow::Result<()> {
    let jobs: Vec<Job> = plan::jobs(&a.plan)
        .into_iter()
        .filter(|j| j.host == a.index)
        .collect();
    let mut pool = Vec::new();
    for _ in 0..a.plan.connections.max(1) {
        let l = Leases::Pg(PgLeases::new(&a.url));
        // Connect (and check the schema) now, not inside the first measured grant.
        let probe = l.clone();
        tokio::task::spawn_blocking(move || probe.list())
            .await?
            .context("connecting to the lease database")?;
        pool.push(l);
    }
    let (go_tx, go_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut line = String::new();
        if matches!(stdin.read_line(&mut line), Ok(n) if n > 0) {
            let _ = go_tx.send(());
            // Then wait for the parent to go away.
            let _ = std::io::copy(&mut stdin, &mut std::io::sink());
        }
        let code = if REPORTED.load(Ordering::SeqCst) {
            crate::outcome::exit::OK
        } else {
            crate::outcome::exit::HARNESS
        };
        std::process::exit(code);
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready")?;
        out.flush()?;
    }
    go_rx.await.context("no start line on stdin")?;
    let start = tokio::time::Instant::now();
    let ttl = Duration::from_secs(a.plan.ttl_s.max(1));
    let poll = Duration::from_millis(a.plan.poll_ms.max(10));
    let tasks: Vec<_> = jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| {
            let leases = pool[i % pool.len()].clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(start + job.at).await;
                run_job(leases, job, ttl, poll).await
            })
        })
        .collect();
    let mut records = Vec::with_capacity(tasks.len());
    for t in tasks {
        records.push(t.await?);
    }
    let report = HostReport {
        host: this_host(),
        jobs: records,
    };
    let line = serde_json::to_string(&report)?;
    // Before the line: the bench closes stdin as soon as it has read it.
    REPORTED.store(true, Ordering::SeqCst);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

async fn run_job(leases: Leases, job: Job, ttl: Duration, poll: Duration) -> JobRecord {
    let owner = Owner {
        job: format!("job-{}", job.id),
        user: "bench".into(),
        host: this_host(),
        pid: std::process::id(),
        run_id: format!("lease-scale-{}", job.id),
    };
    let mut record = JobRecord {
        id: job.id,
        board: job.board.clone(),
        priority: job.priority,
        outcome: Outcome::Error,
        token: None,
        queued: false,
        acquire_ms: 0.0,
        reason: String::new(),
    };
    let mut queued = false;
    let mut on_busy = |_: &str| queued = true;
    let asked = Instant::now();
    let acquired = Held::acquire(
        leases,
        &job.board,
        owner,
        ttl,
        Wait {
            enabled: true,
            poll,
            priority: job.priority,
            timeout: Some(job.queue_timeout),
            on_busy: &mut on_busy,
        },
    )
    .await;
    record.acquire_ms = asked.elapsed().as_secs_f64() * 1e3;
    record.queued = queued;
    let held = match acquired {
        Ok((held, _)) => held,
        Err(e @ LeaseError::QueueTimeout { .. }) => {
            record.outcome = Outcome::QueueTimeout;
            record.reason = e.to_string();
            return record;
        }
        Err(e) => {
            record.reason = e.to_string();
            return record;
        }
    };
    record.token = Some(held.record().token);
    let (outcome, reason) = hold(held, &job).await;
    record.outcome = outcome;
    record.reason = reason;
    record
}

/// Holds the board for the job's time with a fencing check at each end of each half, as
/// a run checks before each board-touching step, then releases (or crashes).
async fn hold(held: Held, job: &Job) -> (Outcome, String) {
    let half = job.hold / 2;
    let lost = |e: LeaseError| (Outcome::Lost, e.to_string());
    if let Err(e) = held.check_current().await {
        return lost(e);
    }
    tokio::time::sleep(half).await;
    if let Err(e) = held.check_current().await {
        return lost(e);
    }
    if job.crash {
        held.abandon();
        return (Outcome::Crashed, String::new());
    }
    tokio::time::sleep(half).await;
    if let Err(e) = held.check_current().await {
        return lost(e);
    }
    match tokio::task::spawn_blocking(move || held.release()).await {
        Ok(Ok(())) => (Outcome::Finished, String::new()),
        Ok(Err(e)) => lost(e),
        Err(e) => (Outcome::Error, e.to_string()),
    }
}

/// The bench's handle on a running host process; dropping it ends the process.
pub struct HostProcess {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: BufReader<tokio::process::ChildStdout>,
    pub name: String,
}

impl HostProcess {
    /// Starts host `index` of the plan as `HIL_HOST=name` and waits for it to connect.
    pub async fn start(url: &str, index: usize, name: &str, a: &PlanArgs) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("bench-lease-host")
            .args(["--url", url, "--index", &index.to_string()])
            .args(plan_flags(a))
            .env("HIL_HOST", name)
            .env_remove("HIL_DATABASE_URL")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting a lease host process")?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().context("piped stdout")?);
        let mut h = HostProcess {
            child,
            stdin,
            stdout,
            name: name.into(),
        };
        let line = h.line().await?;
        anyhow::ensure!(line == "ready", "lease host {name} said {line:?}");
        Ok(h)
    }

    pub async fn go(&mut self) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin held until drop")?;
        stdin.write_all(b"go\n").await?;
        stdin.flush().await?;
        Ok(())
    }

    /// Waits for the host's report, then for it to exit.
    pub async fn report(&mut self) -> anyhow::Result<HostReport> {
        let line = self.line().await?;
        let r: HostReport = serde_json::from_str(&line)
            .with_context(|| format!("lease host {}: report {line:?}", self.name))?;
        self.stdin.take();
        let st = self.child.wait().await?;
        anyhow::ensure!(st.success(), "lease host {} exited {st}", self.name);
        Ok(r)
    }

    async fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line).await? == 0 {
            let st = self.child.wait().await?;
            anyhow::bail!("lease host {} exited early ({st})", self.name);
        }
        Ok(line.trim_end().to_string())
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        // Still running only when the bench failed or was interrupted: end it now (its
        // database connections close with it).
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.start_kill();
        }
    }
}

/// The plan's values as the host subcommand's flags.
fn plan_flags(a: &PlanArgs) -> Vec<String> {
    [
        ("--lease-hosts", a.hosts.to_string()),
        ("--lease-boards", a.boards.to_string()),
        ("--lease-jobs", a.jobs.to_string()),
        ("--lease-spread-s", a.spread_s.to_string()),
        ("--lease-crashes", a.crashes.to_string()),
        ("--lease-max-hold-s", a.max_hold_s.to_string()),
        ("--lease-ttl-s", a.ttl_s.to_string()),
        ("--lease-poll-ms", a.poll_ms.to_string()),
        ("--lease-connections", a.connections.to_string()),
        ("--lease-seed", a.seed.to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect()
}
