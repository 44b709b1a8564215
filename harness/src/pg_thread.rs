//! A PostgreSQL connection on a thread of its own, for synchronous callers (the lease
//! coordinator, the nightly history).
//!
//! Callers block on `flock` and on SQLite the same way, so the connection lives on its own
//! thread with its own runtime: a call sends a job there and waits for the answer. That
//! works from plain threads and from inside the engine's runtime alike, where a nested
//! runtime could not be started. The thread connects at the first call, runs the owner's
//! setup (its migrations) on every new connection, and connects afresh after a database
//! error (a restarted server, a broken network path).

use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Client;

/// How long one step may take against the database (connecting included): a server that
/// does not answer within it is an error naming the URL, not a hang.
pub const STEP_WAIT: Duration = Duration::from_secs(10);

/// What a job can fail with: the owner's own verdict (the connection stays), or the
/// database (the connection is dropped and made again at the next call).
pub enum Fail<E> {
    Verdict(E),
    Db(String),
}

impl<E> From<tokio_postgres::Error> for Fail<E> {
    fn from(e: tokio_postgres::Error) -> Fail<E> {
        Fail::Db(db_text(&e))
    }
}

/// Runs on every new connection before any job (the owner's migrations); an error is the
/// database's.
pub type Setup = for<'c> fn(&'c mut Client) -> BoxFuture<'c, Result<(), String>>;

type Job = Box<dyn for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, ()> + Send>;

/// The handle of a connection thread. Cloning shares the thread and its connection.
#[derive(Clone)]
pub struct PgThread {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    /// The URL without its password, for messages.
    shown: String,
}

/// The connection thread's state.
struct Conn {
    config: Result<tokio_postgres::Config, String>,
    setup: Setup,
    client: Option<Client>,
}

impl PgThread {
    /// A thread named `name` for the database at `url` (a `postgres://` URL or a key=value
    /// string). Connects at the first call.
    pub fn start(url: &str, name: &str, setup: Setup) -> PgThread {
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
            .name(name.into())
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
                    setup,
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
            eprintln!("hil: warning: could not start the database thread {name}");
        }
        PgThread {
            inner: Arc::new(Inner { jobs, shown }),
        }
    }

    /// The URL without its password.
    pub fn url(&self) -> &str {
        &self.inner.shown
    }

    /// Runs `f` with the connection on the connection thread and waits for its answer, at
    /// most [`STEP_WAIT`] (plus a margin for a queue of earlier jobs).
    pub fn call<T: Send + 'static, E: Send + 'static>(
        &self,
        f: impl for<'c> FnOnce(&'c mut Client) -> BoxFuture<'c, Result<T, Fail<E>>> + Send + 'static,
    ) -> Result<T, Fail<E>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |conn: &mut Conn| {
            Box::pin(async move {
                let work = async {
                    let client = conn.client::<E>().await?;
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
        self.inner
            .jobs
            .send(job)
            .map_err(|_| Fail::Db("the database thread is not running".into()))?;
        match rx.recv_timeout(STEP_WAIT * 3) {
            Ok(r) => r,
            Err(_) => Err(Fail::Db(format!(
                "no answer within {} s",
                (STEP_WAIT * 3).as_secs()
            ))),
        }
    }
}

impl Conn {
    async fn client<E>(&mut self) -> Result<&mut Client, Fail<E>> {
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
            (self.setup)(&mut client).await.map_err(Fail::Db)?;
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| Fail::Db("not connected".into()))
    }
}

/// The server's own words where there are some (tokio-postgres' Display says only "db
/// error").
pub fn db_text(e: &tokio_postgres::Error) -> String {
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
