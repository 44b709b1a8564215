//! Where the history lives, and where that choice came from (for messages that name the
//! key or variable to change).
//!
//! `--history` (a file or a URL) wins; else `HIL_DATABASE_URL`, the lab's database that
//! the leases use too; else the lab file's `history` key, a SQLite file (the default) or a
//! `postgres://` URL.

use crate::error::UsageError;
use crate::pg_thread::redact;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub enum Store {
    /// A SQLite file, created on first use by `hil nightly`.
    File(PathBuf),
    /// A PostgreSQL database: the URL, password included.
    Postgres(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryAt {
    pub store: Store,
    /// The key or variable that chose it: "lab.toml key `history`", "HIL_DATABASE_URL",
    /// "--history".
    pub from: String,
}

/// A `postgres://` or `postgresql://` URL, as opposed to a file path.
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// `value` as a store: a URL (checked here, so a typo is a configuration error rather
/// than a failed connection), or a path relative to `base`.
pub fn parse(value: &str, base: &Path) -> Result<Store, String> {
    let value = value.trim();
    if is_url(value) {
        value.parse::<tokio_postgres::Config>().map_err(|e| {
            format!(
                "{} is not a PostgreSQL connection URL ({e}); the form is postgres://USER@HOST:PORT/DATABASE",
                redact(value)
            )
        })?;
        return Ok(Store::Postgres(value.into()));
    }
    if value.is_empty() {
        return Err(
            "is empty; expected a SQLite file (created on first use) or a postgres:// URL".into(),
        );
    }
    Ok(Store::File(base.join(value)))
}

impl HistoryAt {
    /// The history to use: `flag` (`--history`), else `HIL_DATABASE_URL`, else `lab`'s.
    pub fn choose(flag: Option<&str>, lab: Option<&HistoryAt>) -> Result<HistoryAt, UsageError> {
        if let Some(f) = flag {
            let store =
                parse(f, Path::new(".")).map_err(|e| UsageError(format!("--history: {e}")))?;
            return Ok(HistoryAt {
                store,
                from: "--history".into(),
            });
        }
        if let Ok(url) = std::env::var("HIL_DATABASE_URL") {
            if !url.trim().is_empty() {
                let store = parse(&url, Path::new(".")).map_err(|e| {
                    UsageError(format!(
                        "HIL_DATABASE_URL: {e}; fix it, or unset it to use the lab file's history"
                    ))
                })?;
                if let Store::Postgres(_) = store {
                    return Ok(HistoryAt {
                        store,
                        from: "HIL_DATABASE_URL".into(),
                    });
                }
                return Err(UsageError(format!(
                    "HIL_DATABASE_URL={}: expected a postgres:// URL",
                    redact(url.trim())
                )));
            }
        }
        lab.cloned().ok_or_else(|| {
            UsageError(
                "no history to read: give --lab LABFILE (its `history` key), --history FILE|URL, or set HIL_DATABASE_URL".into(),
            )
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.store, Store::Postgres(_))
    }
}

impl std::fmt::Display for HistoryAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.store {
            Store::File(p) => write!(f, "history file {} ({})", p.display(), self.from),
            Store::Postgres(url) if self.from == "HIL_DATABASE_URL" => {
                write!(f, "history database HIL_DATABASE_URL={}", redact(url))
            }
            Store::Postgres(url) => {
                write!(f, "history database {} ({})", redact(url), self.from)
            }
        }
    }
}
