//! The few things the history asks of a database, so that one set of SQL strings runs on
//! SQLite and on PostgreSQL alike: statements with `$n` parameters, rows of plain values,
//! and an exclusive transaction (the one statement the two spell differently).
//!
//! The calls are futures because PostgreSQL is reached through its own connection thread;
//! SQLite answers at once (its futures are ready when made).

use futures_util::future::BoxFuture;

/// A parameter or a column value. The history uses only these types (TEXT, BIGINT,
/// DOUBLE PRECISION), which both databases store the same way.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl Value {
    pub fn text(&self) -> Result<String, String> {
        match self {
            Value::Text(s) => Ok(s.clone()),
            v => Err(format!("expected text, found {v:?}")),
        }
    }

    pub fn int(&self) -> Result<i64, String> {
        match self {
            Value::Int(i) => Ok(*i),
            v => Err(format!("expected an integer, found {v:?}")),
        }
    }

    /// A number; SQLite hands back an integral DOUBLE PRECISION as written, so an integer
    /// is a number too.
    pub fn real(&self) -> Result<f64, String> {
        match self {
            Value::Real(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            v => Err(format!("expected a number, found {v:?}")),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.into())
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Real(f)
    }
}

/// One connection to a history database. Errors are the database's words.
pub trait Sql: Send {
    /// Statements without parameters, separated by `;` (a migration).
    fn batch<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Result<(), String>>;

    /// One statement with parameters `$1`, `$2`... bound to `params` in order.
    fn exec<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [Value],
    ) -> BoxFuture<'a, Result<(), String>>;

    /// One query; its rows, each a value per column.
    fn query<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [Value],
    ) -> BoxFuture<'a, Result<Vec<Vec<Value>>, String>>;

    /// Begins a transaction that no other writer of this history runs alongside (two
    /// nightlies finishing at once on one host, or on two hosts sharing a database).
    fn begin_exclusive(&mut self) -> BoxFuture<'_, Result<(), String>>;
}

/// Commits on success, rolls back on failure (and keeps the first error).
pub async fn finish<T>(db: &mut dyn Sql, r: Result<T, String>) -> Result<T, String> {
    match r {
        Ok(v) => {
            db.batch("COMMIT").await?;
            Ok(v)
        }
        Err(e) => {
            let _ = db.batch("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Column `i` of `row`, naming the column when the row is short.
pub fn col(row: &[Value], i: usize) -> Result<&Value, String> {
    row.get(i)
        .ok_or_else(|| format!("a row of {} columns has no column {i}", row.len()))
}
