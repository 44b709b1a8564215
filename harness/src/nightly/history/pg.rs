//! The history in PostgreSQL, for a lab whose hosts share one history: the same tables and
//! statements as the SQLite file, over a connection thread ([`crate::pg_thread`]) that
//! applies the history's migrations when it connects.

use super::sql::{Sql, Value};
use crate::pg_thread::{db_text, PgThread};
use futures_util::future::BoxFuture;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

/// Key of the advisory lock that serialises writers of the history (any constant no
/// other program on the database uses; this one spells "hil_hist").
const WRITE_LOCK: i64 = 0x6869_6c5f_6869_7374;

pub struct PgSql<'c> {
    pub client: &'c mut Client,
}

/// The connection thread of the database at `url`.
pub fn start(url: &str) -> PgThread {
    PgThread::start(url, "hil-history-db", migrate)
}

fn migrate(c: &mut Client) -> BoxFuture<'_, Result<(), String>> {
    Box::pin(async move { super::migrate(&mut PgSql { client: c }).await })
}

fn params(p: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    const NULL: &Option<String> = &None;
    p.iter()
        .map(|v| -> &(dyn ToSql + Sync) {
            match v {
                Value::Null => NULL,
                Value::Int(i) => i,
                Value::Real(f) => f,
                Value::Text(s) => s,
            }
        })
        .collect()
}

fn value(row: &Row, i: usize) -> Result<Value, String> {
    let t = row.columns()[i].type_();
    let v = if *t == Type::INT8 {
        row.try_get::<_, Option<i64>>(i).map(|v| v.map(Value::Int))
    } else if *t == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)
            .map(|v| v.map(|v| Value::Int(v.into())))
    } else if *t == Type::FLOAT8 {
        row.try_get::<_, Option<f64>>(i).map(|v| v.map(Value::Real))
    } else if *t == Type::TEXT || *t == Type::VARCHAR {
        row.try_get::<_, Option<String>>(i)
            .map(|v| v.map(Value::Text))
    } else {
        return Err(format!(
            "column {} is of type {t}, which the history does not use",
            row.columns()[i].name()
        ));
    };
    Ok(v.map_err(|e| db_text(&e))?.unwrap_or(Value::Null))
}

impl Sql for PgSql<'_> {
    fn batch<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.client
                .batch_execute(sql)
                .await
                .map_err(|e| db_text(&e))
        })
    }

    fn exec<'a>(&'a mut self, sql: &'a str, p: &'a [Value]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.client
                .execute(sql, &params(p))
                .await
                .map(|_| ())
                .map_err(|e| db_text(&e))
        })
    }

    fn query<'a>(
        &'a mut self,
        sql: &'a str,
        p: &'a [Value],
    ) -> BoxFuture<'a, Result<Vec<Vec<Value>>, String>> {
        Box::pin(async move {
            let rows = self
                .client
                .query(sql, &params(p))
                .await
                .map_err(|e| db_text(&e))?;
            rows.iter()
                .map(|r| (0..r.len()).map(|i| value(r, i)).collect())
                .collect()
        })
    }

    fn begin_exclusive(&mut self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.client
                .batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
                ))
                .await
                .map_err(|e| db_text(&e))
        })
    }
}
