//! Board leases: one run uses a board at a time, across processes, users and lab hosts.
//!
//! Two coordinators keep them, behind [`Leases`]: files on this host ([`FileLeases`], in
//! `lease/files.rs`, the default), or a PostgreSQL database shared by several lab hosts
//! ([`pg::PgLeases`], in `lease/pg.rs`, when `HIL_DATABASE_URL` is set). Both grant, renew,
//! fence and release the same way and describe a holder in the same words. This module
//! holds what they share: the [`Record`] of a grant, its [`Owner`], [`LeaseError`], and
//! [`Held`], a granted lease with its heartbeat task. Beside each lease both keep the
//! board's queue of waiters (`lease/queue.rs`: priority, then arrival) and its service
//! state (`lease/service.rs`: out of service by hand or after infrastructure errors).
//!
//! A lease names its owner (job id, user, host, pid, run id) with a heartbeat and a time
//! to live. The holder refreshes the heartbeat while it runs; a lease whose heartbeat is
//! older than its TTL has expired and may be taken over, so a board held by a killed job
//! frees itself.
//!
//! A file lease is `<dir>/<board>.lease`, mode 0666, which is at once the lock (`flock`)
//! and the record (JSON, rewritten in place; empty when the board is free), in
//! `HIL_LEASE_DIR`, else `/var/tmp/hil-leases` (created mode 1777, so every user of a lab
//! host shares it; only a directory owned by root or by this user is used). Lease files of
//! older versions (`<board>.json` with `<board>.lock`) are not read.

mod files;
pub mod pg;
pub mod pg_cluster;
pub mod queue;
pub mod service;

pub use files::{FileLeases, LOCK_WAIT};
pub use queue::{Spot, Waiter};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DEFAULT_DIR: &str = "/var/tmp/hil-leases";

/// The job name of a lease taken by `hil lab up`.
pub const LAB_UP_JOB: &str = "lab-up";

/// Who holds (or wants) a board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    /// CI job id (`HIL_JOB`, `CI_JOB_ID`, `GITHUB_RUN_ID`, `BUILD_TAG`) or "manual".
    pub job: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub run_id: String,
}

impl Owner {
    pub fn this_process(run_id: &str) -> Owner {
        let job = ["HIL_JOB", "CI_JOB_ID", "GITHUB_RUN_ID", "BUILD_TAG"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "manual".into());
        Owner {
            job,
            user: std::env::var("USER").unwrap_or_else(|_| format!("uid{}", current_uid())),
            host: this_host(),
            pid: std::process::id(),
            run_id: run_id.into(),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "job {} ({}@{}, pid {}, run {})",
            self.job, self.user, self.host, self.pid, self.run_id
        )
    }
}

fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The name of this lab host in a lease's holder: `HIL_HOST`, else the hostname (lab hosts
/// cloned from one image may share a hostname, hence the override).
pub fn this_host() -> String {
    std::env::var("HIL_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(hostname)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// What a lease file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub board: String,
    pub owner: Owner,
    /// Unix seconds.
    pub acquired: f64,
    pub heartbeat: f64,
    pub ttl_s: u64,
    /// Grows with every grant of this board (a takeover gets the previous token + 1), so
    /// a holder can prove before each board-touching step that the lease it acts under is
    /// still the current one, not only that a file with its name exists.
    #[serde(default)]
    pub token: u64,
}

impl Record {
    pub fn expires(&self) -> f64 {
        self.heartbeat + self.ttl_s as f64
    }

    pub fn expired(&self, now: f64) -> bool {
        now >= self.expires()
    }

    /// "held by job 123 (ci@lab1, pid 42, run ...) for 3 min, expires in 40 s".
    pub fn describe(&self, now: f64) -> String {
        let held = (now - self.acquired).max(0.0);
        let left = self.expires() - now;
        let exp = if left > 0.0 {
            format!("expires in {left:.0} s unless renewed")
        } else {
            format!("expired {:.0} s ago", -left)
        };
        format!(
            "held by {} for {}, {exp}",
            self.owner.describe(),
            human(held)
        )
    }
}

fn human(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("board {board} is busy: {holder}")]
    Busy { board: String, holder: String },
    /// A waiter gave up its place after the longest wait it was given (`--queue-timeout`).
    #[error("board {board}: gave up after waiting {} in its queue (queue time-out {}): {holder}", human(*waited_s), human(*limit_s))]
    QueueTimeout {
        board: String,
        holder: String,
        waited_s: f64,
        limit_s: f64,
    },
    /// The lease this process held is gone or belongs to someone else now.
    #[error("lease of board {board} lost: {why}")]
    Lost { board: String, why: String },
    /// Another process kept the board's lock file locked for longer than a lease step
    /// can take (a hung process, or a filesystem whose locks never return).
    #[error("lease lock {path} still held by another process after {secs} s; if no hil runs on this board, the filesystem's locks may be broken (NFS without lock support)")]
    LockTimeout { path: String, secs: u64 },
    #[error("lease directory {dir}: {err}")]
    Io { dir: String, err: String },
    /// A lease file that holds no record a live holder could have written (damaged, or
    /// forged to keep a board busy). It is never read as a free board: it may be the
    /// lease of a run that is using the board right now.
    #[error("lease file {path} is corrupt: {why}; if no run holds the board, remove the file")]
    Corrupt { path: String, why: String },
    /// The lease database could not be reached or refused a statement. `url` has no
    /// password.
    #[error("lease database HIL_DATABASE_URL={url}: {err}")]
    Db { url: String, err: String },
}

impl LeaseError {
    /// The store could not answer (database unreachable, I/O, a lock that did not come),
    /// as against an answer that the board is busy, lost or corrupt: worth asking again.
    pub fn is_store_fault(&self) -> bool {
        matches!(
            self,
            LeaseError::Db { .. } | LeaseError::Io { .. } | LeaseError::LockTimeout { .. }
        )
    }
}

/// How long a waiter in a board's queue keeps asking a store that does not answer before
/// it gives up: long enough for a database restart or failover, short enough that a job
/// whose database is gone for good fails within minutes.
const STORE_OUTAGE_LIMIT: Duration = Duration::from_secs(120);

/// Where this host's leases are kept: files, or the lab's PostgreSQL.
#[derive(Debug, Clone)]
pub enum Leases {
    Files(FileLeases),
    Pg(pg::PgLeases),
}

impl Leases {
    /// `HIL_DATABASE_URL` (`postgres://user@host:port/db`) when set, else the lease files
    /// of `HIL_LEASE_DIR` (default [`DEFAULT_DIR`]). Nothing is connected yet: a database
    /// that cannot be reached is an error of the first lease step, naming the URL.
    pub fn from_env() -> Leases {
        match std::env::var("HIL_DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Leases::Pg(pg::PgLeases::shared(url.trim())),
            _ => Leases::Files(FileLeases::from_env()),
        }
    }

    /// Lease files in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Leases {
        Leases::Files(FileLeases { dir: dir.into() })
    }

    /// This host's lease directory: the coordinator's own, or (with a lease database,
    /// which keeps no files) `HIL_LEASE_DIR` / [`DEFAULT_DIR`]. Published consoles live
    /// there: a follower is on the same host as the run it follows.
    pub fn host_dir(&self) -> FileLeases {
        match self {
            Leases::Files(f) => f.clone(),
            Leases::Pg(_) => FileLeases::from_env(),
        }
    }

    /// An error of this coordinator (the directory's, or the database's).
    fn fault(&self, e: impl std::fmt::Display) -> LeaseError {
        match self {
            Leases::Files(f) => f.io(e),
            Leases::Pg(p) => p.fault(e),
        }
    }

    /// The current lease of a board, if any (expired ones included). A record's times are
    /// on this host's clock (a database's are converted), so `expired(now())` holds here.
    pub fn read(&self, board: &str) -> Result<Option<Record>, LeaseError> {
        match self {
            Leases::Files(f) => f.read(board),
            Leases::Pg(p) => p.read(board),
        }
    }

    /// Every lease, by board name.
    pub fn list(&self) -> Result<Vec<Record>, LeaseError> {
        match self {
            Leases::Files(f) => f.list(),
            Leases::Pg(p) => p.list(),
        }
    }

    /// Takes the board if it is free, expired, or already ours: the record granted and the
    /// expired record of someone else it replaced, if any. [`LeaseError::Busy`] names the
    /// holder.
    pub fn try_acquire(
        &self,
        board: &str,
        owner: &Owner,
        ttl: Duration,
    ) -> Result<(Record, Option<Record>), LeaseError> {
        match self {
            Leases::Files(f) => f.try_acquire(board, owner, ttl),
            Leases::Pg(p) => p.try_acquire(board, owner, ttl),
        }
    }

    /// Joins (or keeps a place in) the board's queue with `spot`, and takes the board if it
    /// is free and this owner is the head of the live queue (highest priority, then
    /// earliest arrival); else [`LeaseError::Busy`], keeping the place.
    pub fn try_acquire_queued(
        &self,
        board: &str,
        owner: &Owner,
        ttl: Duration,
        spot: &Spot,
    ) -> Result<(Record, Option<Record>), LeaseError> {
        match self {
            Leases::Files(f) => f.try_acquire_queued(board, owner, ttl, spot),
            Leases::Pg(p) => p.try_acquire_queued(board, owner, ttl, spot),
        }
    }

    /// Gives up this owner's place in the board's queue.
    pub fn leave_queue(&self, board: &str, owner: &Owner) -> Result<(), LeaseError> {
        match self {
            Leases::Files(f) => f.leave_queue(board, owner),
            Leases::Pg(p) => p.leave_queue(board, owner),
        }
    }

    /// The board's live waiters, in the order they will be served.
    pub fn queue(&self, board: &str) -> Result<Vec<Waiter>, LeaseError> {
        match self {
            Leases::Files(f) => f.queue(board),
            Leases::Pg(p) => p.queue(board),
        }
    }

    /// Whether the board is in service, and its infrastructure errors in a row.
    pub fn service(&self, board: &str) -> Result<service::Service, LeaseError> {
        match self {
            Leases::Files(f) => f.service(board),
            Leases::Pg(p) => p.service(board),
        }
    }

    /// Replaces the board's service state by `f` of it, in one step under the board's
    /// lock; returns the new state.
    pub fn update_service(
        &self,
        board: &str,
        f: impl FnOnce(service::Service) -> service::Service + Send + 'static,
    ) -> Result<service::Service, LeaseError> {
        match self {
            Leases::Files(l) => l.update_service(board, f),
            Leases::Pg(p) => p.update_service(board, f),
        }
    }

    /// Takes the board out of service by hand (`hil boards disable`).
    pub fn disable(&self, board: &str, reason: &str) -> Result<service::Service, LeaseError> {
        let out = service::OutOfService {
            reason: reason.into(),
            since: now(),
            by: service::by_this_user(),
        };
        self.update_service(board, move |s| service::Service {
            out: Some(out),
            ..s
        })
    }

    /// Puts the board back in service, its count of infrastructure errors cleared.
    pub fn enable(&self, board: &str) -> Result<service::Service, LeaseError> {
        self.update_service(board, |_| service::Service::default())
    }

    /// Counts a run's end towards the board's service: out of service after `threshold`
    /// infrastructure errors in a row (0: never by itself).
    pub fn note_run(
        &self,
        board: &str,
        verdict: service::RunVerdict,
        threshold: u32,
    ) -> Result<service::Service, LeaseError> {
        self.update_service(board, move |s| s.after_run(verdict, threshold, now()))
    }

    /// Extends the lease; [`LeaseError::Lost`] when this grant is no longer the current one.
    pub fn renew(&self, rec: &mut Record) -> Result<(), LeaseError> {
        match self {
            Leases::Files(f) => f.renew(rec),
            Leases::Pg(p) => p.renew(rec),
        }
    }

    /// The fencing check: `rec` is still the board's current, unexpired grant.
    pub fn check_current(&self, rec: &Record) -> Result<(), LeaseError> {
        match self {
            Leases::Files(f) => f.check_current(rec),
            Leases::Pg(p) => p.check_current(rec),
        }
    }

    /// Gives the board back if `rec` still holds it.
    pub fn release(&self, rec: &Record) -> Result<(), LeaseError> {
        match self {
            Leases::Files(f) => f.release(rec),
            Leases::Pg(p) => p.release(rec),
        }
    }

    /// `hil lab down`: gives back this user's `lab up` lease of the board.
    pub fn release_lab_up(&self, board: &str) -> Result<(), LeaseError> {
        match self {
            Leases::Files(f) => f.release_lab_up(board),
            Leases::Pg(p) => p.release_lab_up(board),
        }
    }

    /// The owner of a board started by `hil lab up`: it outlives the process that took the
    /// lease, so it is matched by job and user, not by pid.
    pub fn lab_up_owner() -> Owner {
        Owner {
            job: LAB_UP_JOB.into(),
            ..Owner::this_process("lab-up")
        }
    }

    /// Whether `rec` is a `hil lab up` lease of this user (which `hil console` and `hil
    /// lab down` of the same user may act under).
    pub fn is_own_lab_up(rec: &Record) -> bool {
        let me = Owner::this_process("");
        rec.owner.job == LAB_UP_JOB && rec.owner.user == me.user && rec.owner.host == me.host
    }
}

/// How long before the store's expiry a holder that could not renew stops by itself: a
/// fifth of the TTL, at least 0.2 s (the time a step takes to notice and stop),
/// never more than half the TTL.
fn self_expiry_margin(ttl: Duration) -> Duration {
    (ttl / 5).max(Duration::from_millis(200)).min(ttl / 2)
}

/// A held lease with its heartbeat task. Dropping it (also when its task is aborted)
/// stops the heartbeat and gives the board back; only a killed process leaves its lease to
/// expire.
pub struct Held {
    leases: Leases,
    released: bool,
    record: std::sync::Arc<std::sync::Mutex<Record>>,
    heartbeat: tokio::task::JoinHandle<()>,
    /// Set when a heartbeat found the lease taken over.
    pub lost: tokio::sync::watch::Receiver<Option<String>>,
    /// Until when the last renewal that got through keeps the lease surely ours (see the
    /// heartbeat): while the store cannot be asked, this is the proof a step goes on.
    ours_until: std::sync::Arc<std::sync::Mutex<std::time::Instant>>,
}

/// How to wait for a busy board.
pub struct Wait<'a> {
    pub enabled: bool,
    pub poll: Duration,
    /// The waiter's priority in the board's queue (higher is served first).
    pub priority: i32,
    /// The longest wait in the queue; `None` waits as long as it takes.
    pub timeout: Option<Duration>,
    /// Called when the holder changes while waiting (progress for the operator).
    pub on_busy: &'a mut (dyn FnMut(&str) + Send),
}

impl<'a> Wait<'a> {
    /// Refused at once when the board is busy.
    pub fn no(on_busy: &'a mut (dyn FnMut(&str) + Send)) -> Wait<'a> {
        Wait {
            enabled: false,
            poll: Duration::from_secs(1),
            priority: 0,
            timeout: None,
            on_busy,
        }
    }
}

/// A place in a board's queue that is given up when dropped: a waiter that stops waiting
/// (time-out, Ctrl-C, the job's deadline) does not keep the board from the next one.
struct Place {
    leases: Leases,
    board: String,
    owner: Owner,
    joined: bool,
    /// Held by each queue step while it runs, and set once the place is given up: a step
    /// already under way when the wait is dropped finishes before the place is left, and
    /// no later one joins again.
    gate: std::sync::Arc<std::sync::Mutex<bool>>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut given_up = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        *given_up = true;
        if self.joined {
            if let Err(e) = self.leases.leave_queue(&self.board, &self.owner) {
                eprintln!(
                    "hil: warning: could not leave the queue of board {} (the place lapses by itself): {e}",
                    self.board
                );
            }
        }
    }
}

impl Held {
    /// Acquires the board's lease, queueing when `wait.enabled`: a place in the board's
    /// queue refreshed at every poll, served by priority and then arrival, given up on a
    /// time-out or when this future is dropped.
    pub async fn acquire(
        leases: Leases,
        board: &str,
        owner: Owner,
        ttl: Duration,
        wait: Wait<'_>,
    ) -> Result<(Held, Option<Record>), LeaseError> {
        let mut last_holder = String::new();
        let mut store_down_since: Option<std::time::Instant> = None;
        let started = std::time::Instant::now();
        let spot = Spot {
            priority: wait.priority,
            ttl: queue::spot_ttl(wait.poll),
        };
        let mut place = Place {
            leases: leases.clone(),
            board: board.to_string(),
            owner: owner.clone(),
            joined: wait.enabled,
            gate: Default::default(),
        };
        let (rec, taken_over, asked) = loop {
            // When the grant that succeeds was asked for: the store dates the lease from
            // its own receipt of the request, which came later.
            let asked = std::time::Instant::now();
            let (l, b, o, queued) = (
                leases.clone(),
                board.to_string(),
                owner.clone(),
                wait.enabled,
            );
            let gate = place.gate.clone();
            let r = tokio::task::spawn_blocking(move || {
                let given_up = gate.lock().unwrap_or_else(|p| p.into_inner());
                if *given_up {
                    return Err(LeaseError::Busy {
                        board: b,
                        holder: "no longer waiting".into(),
                    });
                }
                if queued {
                    l.try_acquire_queued(&b, &o, ttl, &spot)
                } else {
                    l.try_acquire(&b, &o, ttl)
                }
            })
            .await
            .map_err(|e| leases.fault(e))?;
            if !matches!(&r, Err(e) if e.is_store_fault()) {
                store_down_since = None;
            }
            match r {
                Ok((rec, taken_over)) => break (rec, taken_over, asked),
                // A waiter rides out a store that does not answer (a database restart):
                // it asks again at its next poll, within its queue time-out and at most
                // STORE_OUTAGE_LIMIT in a row.
                Err(e) if wait.enabled && e.is_store_fault() => {
                    let first = store_down_since.is_none();
                    let since = *store_down_since.get_or_insert_with(std::time::Instant::now);
                    let waited = started.elapsed();
                    let over_queue = wait.timeout.is_some_and(|l| waited >= l);
                    if over_queue || since.elapsed() >= STORE_OUTAGE_LIMIT {
                        return Err(e);
                    }
                    if first {
                        eprintln!("hil: warning: {e}; waiting for the board, asking again");
                        // The holder is named again once the store answers.
                        last_holder.clear();
                    }
                    tokio::time::sleep(wait.poll).await;
                }
                Err(LeaseError::Busy { holder, .. }) if wait.enabled => {
                    let waited = started.elapsed();
                    if let Some(limit) = wait.timeout.filter(|l| waited >= *l) {
                        return Err(LeaseError::QueueTimeout {
                            board: board.into(),
                            holder,
                            waited_s: waited.as_secs_f64(),
                            limit_s: limit.as_secs_f64(),
                        });
                    }
                    let who = holder.split(" for ").next().unwrap_or("").to_string();
                    if who != last_holder {
                        (wait.on_busy)(&holder);
                        last_holder = who;
                    }
                    let nap = match wait.timeout {
                        Some(limit) => wait.poll.min(limit.saturating_sub(waited)),
                        None => wait.poll,
                    };
                    tokio::time::sleep(nap).await;
                }
                Err(e) => return Err(e),
            }
        };
        // The grant removed the place in the same step.
        place.joined = false;
        let record = std::sync::Arc::new(std::sync::Mutex::new(rec));
        let (lost_tx, lost) = tokio::sync::watch::channel(None);
        let every = (ttl / 4).max(Duration::from_millis(250));
        let margin = self_expiry_margin(ttl);
        let ours_until =
            std::sync::Arc::new(std::sync::Mutex::new(asked + ttl.saturating_sub(margin)));
        let (l, r, board_name, shared_until) = (
            leases.clone(),
            record.clone(),
            board.to_string(),
            ours_until.clone(),
        );
        let heartbeat = tokio::spawn(async move {
            // The store lets the lease run to `ttl` after it received the last renewal,
            // and it received it after this host asked: so the lease is ours at least until
            // `asked + ttl` on a clock that runs at the rate of ours, whatever the clocks
            // read. A holder that has heard nothing back by a margin before that (the
            // database unreachable, a hung NFS server) gives the board up itself, before
            // the store can grant it to another host.
            let mut ours_until = asked + ttl.saturating_sub(margin);
            let mut last_error = String::from("no answer");
            let lose = |last_error: &str| {
                LeaseError::Lost {
                    board: board_name.clone(),
                    why: format!(
                        "no heartbeat reached the lease store for {:.1} s (last: {last_error}); the lease expires there after {} s, so this run stops touching the board",
                        (ttl.saturating_sub(margin)).as_secs_f64(),
                        ttl.as_secs()
                    ),
                }
                .to_string()
            };
            loop {
                let deadline = tokio::time::Instant::from_std(ours_until);
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = tokio::time::sleep_until(deadline) => {
                        let _ = lost_tx.send(Some(lose(&last_error)));
                        return;
                    }
                }
                let (l2, r2) = (l.clone(), r.clone());
                let sent = std::time::Instant::now();
                let renew = tokio::task::spawn_blocking(move || {
                    let mut rec = r2.lock().unwrap_or_else(|p| p.into_inner());
                    l2.renew(&mut rec)
                });
                let res = tokio::select! {
                    res = renew => res,
                    _ = tokio::time::sleep_until(deadline) => {
                        let _ = lost_tx.send(Some(lose(&last_error)));
                        return;
                    }
                };
                match res {
                    Ok(Ok(())) => {
                        ours_until = sent + ttl.saturating_sub(margin);
                        *shared_until.lock().unwrap_or_else(|p| p.into_inner()) = ours_until;
                    }
                    Ok(Err(e @ LeaseError::Lost { .. })) => {
                        let _ = lost_tx.send(Some(e.to_string()));
                        return;
                    }
                    // A lock or I/O hiccup: the next heartbeat tries again, until the
                    // lease is no longer surely ours.
                    Ok(Err(e)) => {
                        eprintln!("hil: warning: lease heartbeat: {e}");
                        last_error = e.to_string();
                    }
                    Err(e) => last_error = e.to_string(),
                }
            }
        });
        Ok((
            Held {
                leases,
                released: false,
                record,
                heartbeat,
                lost,
                ours_until,
            },
            taken_over,
        ))
    }

    pub fn record(&self) -> Record {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Proves the lease is still ours before a board-touching step (power, flash, boot,
    /// VFIO, teardown): a lost heartbeat, or a file that no longer holds this grant, is
    /// an error naming why. Runs on the blocking pool (a lock and a read).
    pub async fn check_current(&self) -> Result<(), LeaseError> {
        if let Some(why) = self.lost.borrow().clone() {
            return Err(LeaseError::Lost {
                board: self.record().board,
                why,
            });
        }
        let (l, rec) = (self.leases.clone(), self.record());
        let asked = tokio::task::spawn_blocking(move || l.check_current(&rec))
            .await
            .map_err(|e| self.leases.fault(e))?;
        match asked {
            // The store cannot be asked (the database restarting, a lock that does not
            // come): the last renewal still proves the lease ours for a while, and no
            // other host can be granted the board before then. The heartbeat gives the
            // board up when that runs out.
            Err(e) if e.is_store_fault() => {
                let until = *self.ours_until.lock().unwrap_or_else(|p| p.into_inner());
                let left = until.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(e);
                }
                eprintln!(
                    "hil: warning: {e}; the last renewal keeps the lease of board {} ours for {:.1} s more",
                    self.record().board,
                    left.as_secs_f64()
                );
                Ok(())
            }
            other => other,
        }
    }

    /// Resolves when a heartbeat finds the lease lost, with why.
    pub async fn lost(&self) -> String {
        let mut rx = self.lost.clone();
        let why = match rx.wait_for(|v| v.is_some()).await {
            Ok(v) => v.clone(),
            // The heartbeat task ended without a verdict (aborted at release).
            Err(_) => None,
        };
        match why {
            Some(w) => w,
            None => std::future::pending().await,
        }
    }

    /// Gives the board back (a lock and a truncation, or one statement: quick enough to do
    /// in place).
    pub fn release(mut self) -> Result<(), LeaseError> {
        self.released = true;
        self.heartbeat.abort();
        self.leases.release(&self.record())
    }

    /// Stops renewing without giving the board back: what a killed process leaves behind
    /// (for tests and the lease benchmark's crashing holders).
    pub fn abandon(mut self) {
        self.released = true;
        self.heartbeat.abort();
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if !self.released {
            let _ = self.leases.release(&self.record());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::files::tests::{dir, owner};
    use super::*;

    #[tokio::test]
    async fn waiting_queues_until_the_holder_releases() {
        let (_t, l) = dir();
        let (first, _) = Held::acquire(
            Leases::Files(l.clone()),
            "b",
            owner(1),
            Duration::from_secs(60),
            Wait {
                enabled: false,
                poll: Duration::from_millis(50),
                priority: 0,
                timeout: None,
                on_busy: &mut |_| {},
            },
        )
        .await
        .unwrap();
        let l2 = l.clone();
        let waiter = tokio::spawn(async move {
            let mut seen = Vec::new();
            let r = Held::acquire(
                Leases::Files(l2),
                "b",
                owner(2),
                Duration::from_secs(60),
                Wait {
                    enabled: true,
                    poll: Duration::from_millis(50),
                    priority: 0,
                    timeout: None,
                    on_busy: &mut |h| seen.push(h.to_string()),
                },
            )
            .await
            .map(|(h, _)| h.record().owner.pid);
            (r.unwrap(), seen)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished());
        first.release().unwrap();
        let (pid, seen) = waiter.await.unwrap();
        assert_eq!(pid, 2);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].contains("pid 1"), "{seen:?}");
    }

    #[tokio::test]
    async fn the_heartbeat_keeps_a_short_lease_alive() {
        let (_t, l) = dir();
        let (held, _) = Held::acquire(
            Leases::Files(l.clone()),
            "b",
            owner(1),
            Duration::from_secs(2),
            Wait {
                enabled: false,
                poll: Duration::from_millis(50),
                priority: 0,
                timeout: None,
                on_busy: &mut |_| {},
            },
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(5000)).await;
        // Two TTLs later it is still held: heartbeats renewed it.
        let rec = l.read("b").unwrap().unwrap();
        assert!(!rec.expired(now()), "{rec:?}");
        assert!(l
            .try_acquire("b", &owner(2), Duration::from_secs(2))
            .is_err());
        held.abandon(); // stops the heartbeat, like a killed process
        tokio::time::sleep(Duration::from_millis(3000)).await;
        assert!(l
            .try_acquire("b", &owner(2), Duration::from_secs(2))
            .is_ok());
    }

    /// A store that stops answering (here: another process sits on the lease file's lock,
    /// as a hung NFS server would) makes the holder give the board up by itself, before
    /// the lease could expire in the store and go to another host.
    #[tokio::test]
    async fn a_holder_that_cannot_renew_gives_the_board_up_before_the_store_could() {
        let (_t, l) = dir();
        let ttl = Duration::from_secs(4);
        let asked = std::time::Instant::now();
        let (held, _) = Held::acquire(
            Leases::Files(l.clone()),
            "b",
            owner(1),
            ttl,
            Wait::no(&mut |_| {}),
        )
        .await
        .unwrap();
        let file = std::fs::File::open(l.dir.join("b.lease")).unwrap();
        // SAFETY: flock on a descriptor this test owns; it is released when `file` closes.
        assert_eq!(
            unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) },
            0
        );
        let why = tokio::time::timeout(ttl * 2, held.lost()).await.unwrap();
        let at = asked.elapsed();
        assert!(at < ttl, "lost at {at:?}, after the store's expiry");
        assert!(at > ttl / 2, "lost at {at:?}, long before it had to");
        assert!(
            why.starts_with(
                "lease of board b lost: no heartbeat reached the lease store for 3.2 s"
            ),
            "{why}"
        );
        assert!(held.check_current().await.is_err());
        drop(file);
        held.abandon();
    }
}

#[cfg(test)]
mod queue_tests {
    use super::files::tests::{dir, owner};
    use super::queue::scenarios;
    use super::Leases;

    #[test]
    fn files_three_waiters_are_served_by_priority_then_arrival() {
        let (_t, l) = dir();
        scenarios::priority_then_arrival(&Leases::Files(l), owner);
    }

    #[test]
    fn files_a_killed_waiters_place_lapses() {
        let (_t, l) = dir();
        scenarios::a_killed_waiter_lapses(&Leases::Files(l), owner);
    }

    #[tokio::test]
    async fn files_a_queue_timeout_gives_up_and_leaves_the_queue() {
        let (_t, l) = dir();
        scenarios::queue_timeout_and_giving_up(Leases::Files(l), owner).await;
    }
}

#[cfg(test)]
mod queue_file_tests {
    use super::files::tests::{dir, owner};
    use super::{LeaseError, Spot};
    use std::time::Duration;

    #[test]
    fn a_corrupt_or_planted_queue_file_is_refused_never_an_empty_queue() {
        let (t, l) = dir();
        let spot = Spot {
            priority: 0,
            ttl: Duration::from_secs(30),
        };
        let (holder, _) = l
            .try_acquire("b", &owner(1), Duration::from_secs(60))
            .unwrap();
        assert!(l
            .try_acquire_queued("b", &owner(2), Duration::from_secs(60), &spot)
            .is_err());
        l.release(&holder).unwrap();
        let path = l.side_file("b", "queue");
        std::fs::write(&path, "{\"next_seq\": 1, \"waiters\": [{").unwrap();
        let e = l
            .try_acquire("b", &owner(3), Duration::from_secs(60))
            .unwrap_err();
        assert!(matches!(e, LeaseError::Corrupt { .. }), "{e}");
        assert!(l.queue("b").is_err());
        assert!(l.read("b").unwrap().is_none(), "the lease was not granted");
        // A place far in the future would keep a dead waiter at the head forever.
        let forged = format!(
            r#"{{"next_seq":1,"waiters":[{{"owner":{},"priority":9,"seq":0,"joined":1.0,"heartbeat":1e300,"ttl_s":10}}]}}"#,
            serde_json::to_string(&owner(9)).unwrap()
        );
        std::fs::write(&path, &forged).unwrap();
        let e = l
            .try_acquire("b", &owner(3), Duration::from_secs(60))
            .unwrap_err();
        assert!(e.to_string().contains("heartbeat is 1e300"), "{e}");
        std::fs::remove_file(&path).unwrap();
        let target = t.path().join("precious");
        std::fs::write(&target, "root's file\n").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let e = l
            .try_acquire_queued("b", &owner(3), Duration::from_secs(60), &spot)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a symlink"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "root's file\n");
    }
}

#[cfg(test)]
mod service_tests {
    use super::files::tests::dir;
    use super::service::scenarios;
    use super::{LeaseError, Leases};

    #[test]
    fn files_a_board_is_taken_out_of_service_and_back_by_hand() {
        let (_t, l) = dir();
        scenarios::disable_and_enable(&Leases::Files(l));
    }

    #[test]
    fn files_a_board_goes_out_of_service_after_infrastructure_errors_in_a_row() {
        let (_t, l) = dir();
        scenarios::out_after_infrastructure_errors_in_a_row(&Leases::Files(l));
    }

    #[test]
    fn files_a_corrupt_or_planted_service_file_is_refused_never_in_service() {
        let (t, l) = dir();
        let leases = Leases::Files(l.clone());
        leases.disable("b", "cable").unwrap();
        let path = l.side_file("b", "oos");
        std::fs::write(&path, "{\"out\": {\"reas").unwrap();
        assert!(matches!(
            leases.service("b"),
            Err(LeaseError::Corrupt { .. })
        ));
        assert!(
            leases.enable("b").is_err(),
            "a corrupt file is not rewritten"
        );
        std::fs::remove_file(&path).unwrap();
        let target = t.path().join("precious");
        std::fs::write(&target, "root's file\n").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let e = leases.service("b").unwrap_err().to_string();
        assert!(e.contains("is a symlink"), "{e}");
        assert!(leases.disable("b", "x").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "root's file\n");
    }
}
