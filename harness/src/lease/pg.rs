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
//! The schema is versioned: `schema_version` lists the migrations applied, and hil applies
//! the missing ones (under an advisory lock, so hosts starting at once do not race) when it
//! connects.
//!
//! The connection lives on a thread of its own ([`crate::pg_thread`]): callers are
//! synchronous, as with the file backend's `flock`.

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
];

/// The schema version this hil writes and reads.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Key of the advisory lock that serialises migrations (any constant no other program on
/// the database uses; this one spells "hil lease").
const MIGRATION_LOCK: i64 = 0x6869_6c5f_6c65_6173;

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

    /// One transaction: lock the board's row, refuse a live lease of someone else, else
    /// replace it (or insert a row for a free board) with a new token.
    pub fn try_acquire(
        &self,
        board: &str,
        owner: &Owner,
        ttl: Duration,
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
                // A racer's insert between our look and our insert: the next look finds it.
                for _ in 0..5 {
                    let tx = c.transaction().await?;
                    let q = format!("SELECT {COLS} FROM leases WHERE board = $1 FOR UPDATE");
                    let previous = tx.query_opt(&q, &[&board]).await?.map(|r| Row2::from(&r));
                    if let Some(prev) = &previous {
                        if !prev.expired() && prev.rec.owner != owner {
                            return Err(LeaseError::Busy {
                                board: board.clone(),
                                holder: prev.describe(),
                            }
                            .into());
                        }
                        let q = format!(
                            r#"UPDATE leases SET job = $2, "user" = $3, host = $4, pid = $5,
                                 run_id = $6, ttl_s = $7, granted_at = now(),
                                 heartbeat_at = now(), expires_at = now() + $7::integer * interval '1 second',
                                 token = nextval('lease_token')
                               WHERE board = $1 RETURNING {COLS}"#
                        );
                        let row = tx.query_one(&q, &p).await?;
                        tx.commit().await?;
                        let taken_over = previous
                            .filter(|p| p.rec.owner != owner)
                            .map(|p| p.local());
                        return Ok((Row2::from(&row).local(), taken_over));
                    }
                    let q = format!(
                        r#"INSERT INTO leases (board, job, "user", host, pid, run_id, ttl_s,
                             granted_at, heartbeat_at, expires_at, token)
                           VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now(),
                             now() + $7::integer * interval '1 second', nextval('lease_token'))
                           ON CONFLICT (board) DO NOTHING RETURNING {COLS}"#
                    );
                    if let Some(row) = tx.query_opt(&q, &p).await? {
                        tx.commit().await?;
                        return Ok((Row2::from(&row).local(), None));
                    }
                    tx.rollback().await?;
                }
                Err(Fail::Db(format!(
                    "the row of board {board} kept appearing and vanishing: another program is rewriting the leases table"
                )))
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

#[cfg(test)]
mod tests;
