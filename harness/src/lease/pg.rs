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
//! Callers are synchronous (the file backend blocks on `flock` the same way), so the
//! connection lives on a thread of its own with its own runtime: a call sends a job there
//! and waits for the answer. That works from plain threads and from inside the engine's
//! runtime alike, where a nested runtime could not be started.

use super::{LeaseError, Owner, Record, LAB_UP_JOB};
use futures_util::future::BoxFuture;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio_postgres::{Client, Row};

/// How long one lease step may take against the database (connecting included): a server
/// that does not answer within it is an error naming the URL, not a hang.
pub const STEP_WAIT: Duration = Duration::from_secs(10);

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
    worker: Arc<Worker>,
}

impl std::fmt::Debug for PgLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgLeases({})", self.worker.shown)
    }
}

type Job = Box<dyn for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, ()> + Send>;

struct Worker {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    /// The URL without its password, for messages.
    shown: String,
}

/// The connection thread's state: connected (and migrated) on first use, and again after
/// a failure.
struct Conn {
    config: Result<tokio_postgres::Config, String>,
    client: Option<Client>,
}

/// What a statement sequence can fail with: a verdict about the lease, or the database.
enum Fail {
    Lease(LeaseError),
    Db(String),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Fail {
        Fail::Db(db_text(&e))
    }
}

impl From<LeaseError> for Fail {
    fn from(e: LeaseError) -> Fail {
        Fail::Lease(e)
    }
}

/// The server's own words where there are some (tokio-postgres' Display says only "db
/// error").
fn db_text(e: &tokio_postgres::Error) -> String {
    if let Some(d) = e.as_db_error() {
        return format!("{}: {}", d.severity(), d.message());
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// `postgres://user:secret@host/db` as `postgres://user:***@host/db`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.contains("password") {
            "(a key=value connection string with a password)".into()
        } else {
            url.into()
        };
    };
    let (auth_end, _) = rest
        .char_indices()
        .find(|(_, c)| *c == '/' || *c == '?')
        .unwrap_or((rest.len(), '/'));
    let (authority, tail) = rest.split_at(auth_end);
    let Some((userinfo, hosts)) = authority.rsplit_once('@') else {
        return url.into();
    };
    let user = match userinfo.split_once(':') {
        Some((u, _)) => format!("{u}:***"),
        None => userinfo.into(),
    };
    let tail = if tail.contains("password=") {
        "/(parameters with a password)"
    } else {
        tail
    };
    format!("{scheme}://{user}@{hosts}{tail}")
}

impl PgLeases {
    /// A lease coordinator for the database at `url` (a `postgres://` URL or a key=value
    /// string). Connects at the first call.
    pub fn new(url: &str) -> PgLeases {
        let shown = redact(url);
        let config = url
            .parse::<tokio_postgres::Config>()
            .map(|mut c| {
                c.connect_timeout(STEP_WAIT);
                c.application_name("hil");
                c
            })
            .map_err(|e| {
                format!("not a PostgreSQL connection URL ({e}); the form is postgres://USER@HOST:PORT/DATABASE")
            });
        let (jobs, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let started = std::thread::Builder::new()
            .name("hil-lease-db".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    // Every call then finds the channel closed and says so.
                    Err(_) => return,
                };
                let mut conn = Conn {
                    config,
                    client: None,
                };
                rt.block_on(async move {
                    while let Some(job) = rx.recv().await {
                        job(&mut conn).await;
                    }
                });
            });
        if started.is_err() {
            // The sender below is then the only end: calls fail naming the database.
            eprintln!("hil: warning: could not start the lease database thread");
        }
        PgLeases {
            worker: Arc::new(Worker { jobs, shown }),
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
        &self.worker.shown
    }

    pub(super) fn fault(&self, e: impl std::fmt::Display) -> LeaseError {
        LeaseError::Db {
            url: self.worker.shown.clone(),
            err: e.to_string(),
        }
    }

    /// Runs `f` with the connection on the connection thread and waits for its answer,
    /// at most [`STEP_WAIT`]. A database error drops the connection, so the next call
    /// connects afresh (a restarted server, a broken network path).
    fn call<T: Send + 'static>(
        &self,
        f: impl for<'c> FnOnce(&'c mut Client) -> BoxFuture<'c, Result<T, Fail>> + Send + 'static,
    ) -> Result<T, LeaseError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |conn: &mut Conn| {
            Box::pin(async move {
                let work = async {
                    let client = conn.client().await?;
                    f(client).await
                };
                let r = match tokio::time::timeout(STEP_WAIT, work).await {
                    Ok(r) => r,
                    Err(_) => Err(Fail::Db(format!(
                        "no answer within {} s",
                        STEP_WAIT.as_secs()
                    ))),
                };
                if matches!(r, Err(Fail::Db(_))) {
                    conn.client = None;
                }
                let _ = tx.send(r);
            })
        });
        self.worker
            .jobs
            .send(job)
            .map_err(|_| self.fault("the lease database thread is not running"))?;
        // The job answers within STEP_WAIT; the margin covers a queue of earlier jobs.
        match rx.recv_timeout(STEP_WAIT * 3) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(Fail::Lease(e))) => Err(e),
            Ok(Err(Fail::Db(e))) => Err(self.fault(e)),
            Err(_) => Err(self.fault(format!("no answer within {} s", (STEP_WAIT * 3).as_secs()))),
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
    Fail::Lease(LeaseError::Lost {
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

impl Conn {
    async fn client(&mut self) -> Result<&mut Client, Fail> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        if self.client.is_none() {
            let config = self.config.as_ref().map_err(|e| Fail::Db(e.clone()))?;
            let (mut client, connection) = config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                // Ends with the connection; a broken one shows as the client's next error.
                let _ = connection.await;
            });
            migrate(&mut client).await?;
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| Fail::Db("not connected".into()))
    }
}

/// Applies the migrations the database lacks, in one transaction under an advisory lock.
/// A database migrated by a newer hil is refused: its schema may mean something this one
/// does not know.
async fn migrate(c: &mut Client) -> Result<(), Fail> {
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
