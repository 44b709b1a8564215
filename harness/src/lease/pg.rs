//! Board leases in PostgreSQL, for a lab whose boards are shared by several lab hosts.
//!
//! One row per leased board in `leases`. Every time in it comes from the database's
//! clock (`now()`), never from a lab host's, so hosts whose clocks disagree still agree on
//! when a lease expires. Each grant draws a fencing token from the `lease_token` sequence:
//! renewing, the fencing check and releasing all name the token, so a holder whose lease
//! expired and was granted to someone else learns that it lost the board instead of
//! extending or deleting the new holder's lease.
//!
//! Granting is one transaction: the board's row is locked (`SELECT ... FOR UPDATE`) and
//! replaced only if it is missing, expired or already this owner's; a free board is
//! inserted with `ON CONFLICT DO NOTHING`, so of two hosts inserting at once one finds the
//! other's row and is refused, naming it.
//!
//! Waiters queue in `lease_queue` (a row per waiter, expiring by the database's clock) and
//! boards out of service are rows of `board_service`; a grant, a queue change and a service
//! change of one board each run under the board's transaction-scoped advisory lock, so
//! hosts agree on who is at the head of a queue.
//!
//! The schema is versioned: `schema_version` lists the migrations applied, and hil applies
//! the missing ones (under an advisory lock, so hosts starting at once do not race) when it
//! connects.
//!
//! The connection lives on a thread of its own ([`crate::pg_thread`]): callers are
//! synchronous, as with the file backend's `flock`.

use super::queue::{not_your_turn, Spot, Waiter};
use super::{LeaseError, Owner, Record, LAB_UP_JOB};
use crate::pg_thread::{db_text, PgThread};
pub use crate::pg_thread::{redact, STEP_WAIT};
use futures_util::future::BoxFuture;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio_postgres::{Client, Row};

/// Migrations in order; version N is `MIGRATIONS[N - 1]`. Applied ones are never edited:
/// a change of schema is a new entry.
const MIGRATIONS: &[&str] = &[
    // 1: the leases themselves.
    r#"
    CREATE SEQUENCE lease_token;
    CREATE TABLE leases (
        board        text PRIMARY KEY,
        job          text NOT NULL,
        "user"       text NOT NULL,
        host         text NOT NULL,
        pid          integer NOT NULL,
        run_id       text NOT NULL,
        ttl_s        integer NOT NULL CHECK (ttl_s > 0),
        granted_at   timestamptz NOT NULL,
        heartbeat_at timestamptz NOT NULL,
        expires_at   timestamptz NOT NULL,
        token        bigint NOT NULL UNIQUE
    );
    "#,
    // 2: the queue of waiters for busy boards. `seq` orders arrivals; `expires_at` lets a
    // killed waiter's place lapse by the database's clock.
    r#"
    CREATE SEQUENCE lease_queue_seq;
    CREATE TABLE lease_queue (
        board        text NOT NULL,
        job          text NOT NULL,
        "user"       text NOT NULL,
        host         text NOT NULL,
        pid          integer NOT NULL,
        run_id       text NOT NULL,
        priority     integer NOT NULL,
        seq          bigint NOT NULL DEFAULT nextval('lease_queue_seq'),
        ttl_s        integer NOT NULL CHECK (ttl_s > 0),
        joined_at    timestamptz NOT NULL,
        heartbeat_at timestamptz NOT NULL,
        expires_at   timestamptz NOT NULL,
        PRIMARY KEY (board, job, "user", host, pid, run_id)
    );
    CREATE INDEX lease_queue_turn ON lease_queue (board, priority DESC, seq);
    "#,
    // 3: boards out of service, and the infrastructure errors in a row that may put them
    // there. No row: in service, nothing counted.
    r#"
    CREATE TABLE board_service (
        board                 text PRIMARY KEY,
        reason                text,
        since                 timestamptz,
        set_by                text,
        infra_errors_in_a_row integer NOT NULL DEFAULT 0 CHECK (infra_errors_in_a_row >= 0),
        CHECK ((reason IS NULL) = (since IS NULL) AND (reason IS NULL) = (set_by IS NULL))
    );
    "#,
];

/// The schema version this hil writes and reads.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Key of the advisory lock that serialises migrations (any constant no other program on
/// the database uses; this one spells "hil lease").
const MIGRATION_LOCK: i64 = 0x6869_6c5f_6c65_6173;

/// Key (first half) of the advisory locks that serialise the grants and queue changes of
/// one board (the second half is the board name's hash): waiters of one board see each
/// other's places and decide on the same head.
const BOARD_LOCK: i32 = 0x6869_6c71;

/// A queue row as the waiter type, with the database's `now()` as the last column.
const QUEUE_COLS: &str = r#"job, "user", host, pid, run_id, priority, seq,
    extract(epoch from joined_at)::float8, extract(epoch from heartbeat_at)::float8, ttl_s,
    extract(epoch from now())::float8"#;

/// A lease row as the record type, with the database's `now()` as the last column.
const COLS: &str = r#"board, job, "user", host, pid, run_id,
    extract(epoch from granted_at)::float8, extract(epoch from expires_at)::float8,
    ttl_s, token, extract(epoch from now())::float8"#;

/// The lab's lease database. Cloning shares the connection.
#[derive(Clone)]
pub struct PgLeases {
    db: PgThread,
}

impl std::fmt::Debug for PgLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgLeases({})", self.db.url())
    }
}

/// What a statement sequence can fail with: a verdict about the lease, or the database.
type Fail = crate::pg_thread::Fail<LeaseError>;

impl From<LeaseError> for Fail {
    fn from(e: LeaseError) -> Fail {
        Fail::Verdict(e)
    }
}

impl PgLeases {
    /// A lease coordinator for the database at `url` (a `postgres://` URL or a key=value
    /// string). Connects at the first call.
    pub fn new(url: &str) -> PgLeases {
        PgLeases {
            db: PgThread::start(url, "hil-lease-db", migrate),
        }
    }

    /// One coordinator per URL for the whole process: commands ask [`super::Leases::from_env`]
    /// several times, and each would otherwise open a connection of its own.
    pub fn shared(url: &str) -> PgLeases {
        static ALL: OnceLock<Mutex<Vec<(String, PgLeases)>>> = OnceLock::new();
        let mut all = ALL
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((_, p)) = all.iter().find(|(u, _)| u == url) {
            return p.clone();
        }
        let p = PgLeases::new(url);
        all.push((url.into(), p.clone()));
        p
    }

    /// The URL without its password.
    pub fn url(&self) -> &str {
        self.db.url()
    }

    pub(super) fn fault(&self, e: impl std::fmt::Display) -> LeaseError {
        LeaseError::Db {
            url: self.db.url().to_string(),
            err: e.to_string(),
        }
    }

    /// Runs `f` on the connection thread (at most [`STEP_WAIT`]); a database error is a
    /// [`LeaseError::Db`] naming the URL.
    fn call<T: Send + 'static>(
        &self,
        f: impl for<'c> FnOnce(&'c mut Client) -> BoxFuture<'c, Result<T, Fail>> + Send + 'static,
    ) -> Result<T, LeaseError> {
        match self.db.call(f) {
            Ok(v) => Ok(v),
            Err(Fail::Verdict(e)) => Err(e),
            Err(Fail::Db(e)) => Err(self.fault(e)),
        }
    }

    pub fn read(&self, board: &str) -> Result<Option<Record>, LeaseError> {
        let board = board.to_string();
        self.call(move |c| {
            Box::pin(async move {
                let q = format!("SELECT {COLS} FROM leases WHERE board = $1");
                let row = c.query_opt(&q, &[&board]).await?;
                Ok(row.map(|r| Row2::from(&r).local()))
            })
        })
    }

    pub fn list(&self) -> Result<Vec<Record>, LeaseError> {
        self.call(move |c| {
            Box::pin(async move {
                let q = format!("SELECT {COLS} FROM leases ORDER BY board");
                let rows = c.query(&q, &[]).await?;
                Ok(rows.iter().map(|r| Row2::from(r).local()).collect())
            })
        })
    }

    /// Takes the board if it is free (or expired) with nobody waiting in its queue, or
    /// already ours.
    pub fn try_acquire(
        &self,
        board: &str,
        owner: &Owner,
        ttl: Duration,
    ) -> Result<(Record, Option<Record>), LeaseError> {
        self.acquire(board, owner, ttl, None)
    }

    /// Joins (or keeps a place in) the board's queue and takes the board if it is free
    /// and this owner is the head of the live queue.
    pub fn try_acquire_queued(
        &self,
        board: &str,
        owner: &Owner,
        ttl: Duration,
        spot: &Spot,
    ) -> Result<(Record, Option<Record>), LeaseError> {
        self.acquire(board, owner, ttl, Some(*spot))
    }

    /// One transaction under the board's advisory lock: drop lapsed waiters, join or
    /// refresh this owner's place, refuse a live lease of someone else or a free board
    /// whose queue has someone else at its head, else replace the board's row (or insert
    /// one for a free board) with a new token and leave the queue. A refusal still commits
    /// the place in the queue.
    fn acquire(
        &self,
        board: &str,
        owner: &Owner,
        ttl: Duration,
        spot: Option<Spot>,
    ) -> Result<(Record, Option<Record>), LeaseError> {
        let (board, owner) = (board.to_string(), owner.clone());
        let ttl_s = i32::try_from(ttl.as_secs().max(1)).unwrap_or(i32::MAX);
        self.call(move |c| {
            Box::pin(async move {
                let pid = owner.pid as i32;
                let p: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
                    &board,
                    &owner.job,
                    &owner.user,
                    &owner.host,
                    &pid,
                    &owner.run_id,
                    &ttl_s,
                ];
                // A racer's insert between our look and our insert (a hil without the
                // board lock): the next look finds it.
                for _ in 0..5 {
                    let tx = c.transaction().await?;
                    tx.execute(
                        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                        &[&BOARD_LOCK, &board],
                    )
                    .await?;
                    tx.execute(
                        "DELETE FROM lease_queue WHERE board = $1 AND expires_at <= now()",
                        &[&board],
                    )
                    .await?;
                    if let Some(spot) = spot {
                        let prio = spot.priority;
                        let spot_ttl = i32::try_from(spot.ttl_s()).unwrap_or(i32::MAX);
                        tx.execute(
                            r#"INSERT INTO lease_queue (board, job, "user", host, pid, run_id,
                                 priority, ttl_s, joined_at, heartbeat_at, expires_at)
                               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), now(),
                                 now() + $8::integer * interval '1 second')
                               ON CONFLICT (board, job, "user", host, pid, run_id) DO UPDATE
                                 SET priority = excluded.priority, ttl_s = excluded.ttl_s,
                                     heartbeat_at = now(), expires_at = excluded.expires_at"#,
                            &[&board, &owner.job, &owner.user, &owner.host, &pid, &owner.run_id, &prio, &spot_ttl],
                        )
                        .await?;
                    }
                    let q = format!("SELECT {COLS} FROM leases WHERE board = $1 FOR UPDATE");
                    let previous = tx.query_opt(&q, &[&board]).await?.map(|r| Row2::from(&r));
                    let ours = previous.as_ref().is_some_and(|p| p.rec.owner == owner);
                    let busy = |holder: String| LeaseError::Busy {
                        board: board.clone(),
                        holder,
                    };
                    if let Some(prev) = previous.as_ref().filter(|p| !p.expired() && !ours) {
                        let e = busy(prev.describe());
                        tx.commit().await?;
                        return Err(e.into());
                    }
                    if !ours {
                        let order = queue_in_turn(&tx, &board).await?;
                        if order.first().is_some_and(|(head, _)| head.owner != owner) {
                            let now = order[0].1;
                            let waiters: Vec<Waiter> =
                                order.into_iter().map(|(w, _)| w).collect();
                            let e = busy(not_your_turn(&waiters, now));
                            tx.commit().await?;
                            return Err(e.into());
                        }
                    }
                    let granted = if previous.is_some() {
                        let q = format!(
                            r#"UPDATE leases SET job = $2, "user" = $3, host = $4, pid = $5,
                                 run_id = $6, ttl_s = $7, granted_at = now(),
                                 heartbeat_at = now(), expires_at = now() + $7::integer * interval '1 second',
                                 token = nextval('lease_token')
                               WHERE board = $1 RETURNING {COLS}"#
                        );
                        Some(tx.query_one(&q, &p).await?)
                    } else {
                        let q = format!(
                            r#"INSERT INTO leases (board, job, "user", host, pid, run_id, ttl_s,
                                 granted_at, heartbeat_at, expires_at, token)
                               VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now(),
                                 now() + $7::integer * interval '1 second', nextval('lease_token'))
                               ON CONFLICT (board) DO NOTHING RETURNING {COLS}"#
                        );
                        tx.query_opt(&q, &p).await?
                    };
                    let Some(row) = granted else {
                        tx.rollback().await?;
                        continue;
                    };
                    tx.execute(
                        r#"DELETE FROM lease_queue WHERE board = $1 AND job = $2 AND "user" = $3
                             AND host = $4 AND pid = $5 AND run_id = $6"#,
                        &p[..6],
                    )
                    .await?;
                    tx.commit().await?;
                    let taken_over = previous
                        .filter(|p| p.rec.owner != owner)
                        .map(|p| p.local());
                    return Ok((Row2::from(&row).local(), taken_over));
                }
                Err(Fail::Db(format!(
                    "the row of board {board} kept appearing and vanishing: another program is rewriting the leases table"
                )))
            })
        })
    }

    /// Gives up this owner's place in the board's queue (nothing when it has none).
    pub fn leave_queue(&self, board: &str, owner: &Owner) -> Result<(), LeaseError> {
        let (board, o) = (board.to_string(), owner.clone());
        self.call(move |c| {
            Box::pin(async move {
                let pid = o.pid as i32;
                c.execute(
                    r#"DELETE FROM lease_queue WHERE board = $1 AND job = $2 AND "user" = $3
                         AND host = $4 AND pid = $5 AND run_id = $6"#,
                    &[&board, &o.job, &o.user, &o.host, &pid, &o.run_id],
                )
                .await?;
                Ok(())
            })
        })
    }

    /// The board's live waiters in the order they are served, times on this host's clock.
    pub fn queue(&self, board: &str) -> Result<Vec<Waiter>, LeaseError> {
        let board = board.to_string();
        self.call(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let order = queue_in_turn(&tx, &board).await?;
                tx.commit().await?;
                Ok(order
                    .into_iter()
                    .map(|(w, db_now)| local_waiter(w, db_now))
                    .collect())
            })
        })
    }

    /// Extends the lease by its TTL from the database's now, only while `rec`'s token is
    /// the board's current one and has not expired.
    pub fn renew(&self, rec: &mut Record) -> Result<(), LeaseError> {
        let (board, token) = (rec.board.clone(), rec.token as i64);
        let renewed = self.call(move |c| {
            Box::pin(async move {
                let q = format!(
                    "UPDATE leases SET heartbeat_at = now(),
                       expires_at = now() + ttl_s * interval '1 second'
                     WHERE board = $1 AND token = $2 AND expires_at > now() RETURNING {COLS}"
                );
                match c.query_opt(&q, &[&board, &token]).await? {
                    Some(row) => Ok(Row2::from(&row).local()),
                    None => Err(lost(c, &board, token).await),
                }
            })
        })?;
        *rec = renewed;
        Ok(())
    }

    pub fn check_current(&self, rec: &Record) -> Result<(), LeaseError> {
        let (board, token) = (rec.board.clone(), rec.token as i64);
        self.call(move |c| {
            Box::pin(async move {
                let q =
                    "SELECT 1 FROM leases WHERE board = $1 AND token = $2 AND expires_at > now()";
                match c.query_opt(q, &[&board, &token]).await? {
                    Some(_) => Ok(()),
                    None => Err(lost(c, &board, token).await),
                }
            })
        })
    }

    /// Deletes the board's row only if it still holds `rec`'s token. A row of a later grant
    /// is left to its holder and the release fails, saying so; a row already gone is fine.
    pub fn release(&self, rec: &Record) -> Result<(), LeaseError> {
        let (board, token) = (rec.board.clone(), rec.token as i64);
        self.call(move |c| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "DELETE FROM leases WHERE board = $1 AND token = $2",
                        &[&board, &token],
                    )
                    .await?;
                if n == 1 {
                    return Ok(());
                }
                let q = format!("SELECT {COLS} FROM leases WHERE board = $1");
                match c.query_opt(&q, &[&board]).await? {
                    None => Ok(()),
                    Some(_) => Err(lost(c, &board, token).await),
                }
            })
        })
    }

    pub fn release_lab_up(&self, board: &str) -> Result<(), LeaseError> {
        let board = board.to_string();
        let me = Owner::this_process("");
        self.call(move |c| {
            Box::pin(async move {
                c.execute(
                    r#"DELETE FROM leases WHERE board = $1 AND job = $2 AND "user" = $3 AND host = $4"#,
                    &[&board, &LAB_UP_JOB, &me.user, &me.host],
                )
                .await?;
                Ok(())
            })
        })
    }
}

/// The live waiters of a board in the order they are served, each with the database's
/// now (times on the database's clock).
async fn queue_in_turn(
    tx: &tokio_postgres::Transaction<'_>,
    board: &str,
) -> Result<Vec<(Waiter, f64)>, Fail> {
    let q = format!(
        "SELECT {QUEUE_COLS} FROM lease_queue WHERE board = $1 AND expires_at > now()
         ORDER BY priority DESC, seq"
    );
    let rows = tx.query(&q, &[&board]).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let pid: i32 = r.get(3);
            let seq: i64 = r.get(6);
            let ttl: i32 = r.get(9);
            let w = Waiter {
                owner: Owner {
                    job: r.get(0),
                    user: r.get(1),
                    host: r.get(2),
                    pid: pid as u32,
                    run_id: r.get(4),
                },
                priority: r.get(5),
                seq: seq.max(0) as u64,
                joined: r.get(7),
                heartbeat: r.get(8),
                ttl_s: ttl.max(0) as u64,
            };
            (w, r.get(10))
        })
        .collect())
}

/// A waiter with its times moved onto this host's clock (as [`Row2::local`]).
fn local_waiter(w: Waiter, db_now: f64) -> Waiter {
    let shift = super::now() - db_now;
    Waiter {
        joined: w.joined + shift,
        heartbeat: w.heartbeat + shift,
        ..w
    }
}

/// Why `token` is not (or no longer) the board's live grant, as a [`LeaseError::Lost`].
async fn lost(c: &Client, board: &str, token: i64) -> Fail {
    let q = format!("SELECT {COLS} FROM leases WHERE board = $1");
    let why = match c.query_opt(&q, &[&board]).await {
        Err(e) => return e.into(),
        Ok(None) => "the lease row was removed from the database".to_string(),
        Ok(Some(r)) => {
            let cur = Row2::from(&r);
            if cur.rec.token as i64 == token {
                format!(
                    "it expired {:.0} s ago by the database's clock (heartbeats stopped or did not reach the database)",
                    (cur.db_now - cur.rec.expires()).max(0.0)
                )
            } else {
                format!(
                    "token {token} is stale: the board was granted again (token {}), now {}",
                    cur.rec.token,
                    cur.describe()
                )
            }
        }
    };
    Fail::Verdict(LeaseError::Lost {
        board: board.into(),
        why,
    })
}

/// A lease row: the record with its times on the database's clock, and that clock's now.
struct Row2 {
    rec: Record,
    db_now: f64,
}

impl From<&Row> for Row2 {
    fn from(r: &Row) -> Row2 {
        let pid: i32 = r.get(4);
        let expires_at: f64 = r.get(7);
        let ttl: i32 = r.get(8);
        let token: i64 = r.get(9);
        Row2 {
            rec: Record {
                board: r.get(0),
                owner: Owner {
                    job: r.get(1),
                    user: r.get(2),
                    host: r.get(3),
                    pid: pid as u32,
                    run_id: r.get(5),
                },
                acquired: r.get(6),
                // The heartbeat that `expires_at` implies (the row's heartbeat_at unless
                // the row was edited by hand), so the record expires exactly when the
                // database says the lease does.
                heartbeat: expires_at - f64::from(ttl),
                ttl_s: ttl.max(0) as u64,
                token: token.max(0) as u64,
            },
            db_now: r.get(10),
        }
    }
}

impl Row2 {
    fn expired(&self) -> bool {
        self.rec.expired(self.db_now)
    }

    /// The holder in the file backend's words, timed by the database's clock.
    fn describe(&self) -> String {
        self.rec.describe(self.db_now)
    }

    /// The record with its times moved onto this host's clock (by the difference of the
    /// two clocks at the moment of the query), so that comparisons with
    /// [`super::now`] here agree with the database's.
    fn local(self) -> Record {
        let shift = super::now() - self.db_now;
        Record {
            acquired: self.rec.acquired + shift,
            heartbeat: self.rec.heartbeat + shift,
            ..self.rec
        }
    }
}

/// Applies the migrations the database lacks, in one transaction under an advisory lock.
/// A database migrated by a newer hil is refused: its schema may mean something this one
/// does not know.
fn migrate(c: &mut Client) -> BoxFuture<'_, Result<(), String>> {
    Box::pin(async move {
        migrate_steps(c).await.map_err(|e| match e {
            Fail::Db(e) => e,
            Fail::Verdict(e) => e.to_string(),
        })
    })
}

async fn migrate_steps(c: &mut Client) -> Result<(), Fail> {
    let tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
           version integer PRIMARY KEY,
           applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let have: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await?
        .get(0);
    if have > SCHEMA_VERSION {
        return Err(Fail::Db(format!(
            "the lease schema is version {have}, newer than this hil knows ({SCHEMA_VERSION}): upgrade hil on this host"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(have as usize) {
        let v = i as i32 + 1;
        tx.batch_execute(sql).await.map_err(|e| {
            Fail::Db(format!(
                "applying lease schema migration {v}: {}",
                db_text(&e)
            ))
        })?;
        tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&v])
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

mod service;

#[cfg(test)]
mod tests;
