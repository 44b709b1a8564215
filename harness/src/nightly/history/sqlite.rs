//! The history in one SQLite file (rusqlite, bundled SQLite): the default, no set-up.

use super::sql::{Sql, Value};
use futures_util::future::BoxFuture;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

pub struct SqliteSql {
    db: Connection,
}

impl SqliteSql {
    /// Opens the file; `create` makes it (and its directory) when missing.
    pub fn open(path: &Path, create: bool) -> Result<SqliteSql, String> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let db = Connection::open_with_flags(path, flags).map_err(|e| e.to_string())?;
        // Another nightly writing the same file holds its lock for a moment: wait for it as
        // long as a PostgreSQL step may take.
        db.busy_timeout(crate::pg_thread::STEP_WAIT)
            .map_err(|e| e.to_string())?;
        Ok(SqliteSql { db })
    }

    fn run_exec(&mut self, sql: &str, params: &[Value]) -> Result<(), String> {
        let mut st = self.db.prepare(sql).map_err(|e| e.to_string())?;
        bind(&mut st, params)?;
        st.raw_execute().map_err(|e| e.to_string())?;
        Ok(())
    }

    fn run_query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, String> {
        let mut st = self.db.prepare(sql).map_err(|e| e.to_string())?;
        bind(&mut st, params)?;
        let n = st.column_count();
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| e.to_string())? {
            let mut vals = Vec::with_capacity(n);
            for i in 0..n {
                vals.push(match r.get_ref(i).map_err(|e| e.to_string())? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(i) => Value::Int(i),
                    ValueRef::Real(f) => Value::Real(f),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(_) => return Err(format!("column {i} holds a blob")),
                });
            }
            out.push(vals);
        }
        Ok(out)
    }
}

/// Binds `$1`, `$2`... by name: SQLite numbers `$NAME` parameters in order of first
/// appearance, so binding by position would go wrong in a statement that names `$2`
/// before `$1`.
fn bind(st: &mut rusqlite::Statement<'_>, params: &[Value]) -> Result<(), String> {
    for (i, v) in params.iter().enumerate() {
        let name = format!("${}", i + 1);
        let Some(idx) = st.parameter_index(&name).map_err(|e| e.to_string())? else {
            return Err(format!("the statement has no parameter {name}"));
        };
        st.raw_bind_parameter(idx, v).map_err(|e| e.to_string())?;
    }
    Ok(())
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

impl Sql for SqliteSql {
    fn batch<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Result<(), String>> {
        let r = self.db.execute_batch(sql).map_err(|e| e.to_string());
        Box::pin(std::future::ready(r))
    }

    fn exec<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [Value],
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(std::future::ready(self.run_exec(sql, params)))
    }

    fn query<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [Value],
    ) -> BoxFuture<'a, Result<Vec<Vec<Value>>, String>> {
        Box::pin(std::future::ready(self.run_query(sql, params)))
    }

    fn begin_exclusive(&mut self) -> BoxFuture<'_, Result<(), String>> {
        // IMMEDIATE takes the file's write lock now, not at the first write, so two
        // writers never both read the same next sequence number.
        self.batch("BEGIN IMMEDIATE")
    }
}
