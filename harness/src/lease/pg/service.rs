//! Boards out of service in PostgreSQL: one row per board in `board_service`, changed in
//! one transaction under the row's lock, so two hosts counting infrastructure errors at
//! once do not lose one.

use super::{PgLeases, BOARD_LOCK};
use crate::lease::service::{OutOfService, Service};
use crate::lease::LeaseError;

const COLS: &str = "reason, extract(epoch from since)::float8, set_by, infra_errors_in_a_row,
    extract(epoch from now())::float8";

fn from_row(r: &tokio_postgres::Row) -> Service {
    let reason: Option<String> = r.get(0);
    let since: Option<f64> = r.get(1);
    let by: Option<String> = r.get(2);
    let count: i32 = r.get(3);
    let db_now: f64 = r.get(4);
    let shift = crate::lease::now() - db_now;
    Service {
        out: reason.map(|reason| OutOfService {
            reason,
            since: since.unwrap_or(db_now) + shift,
            by: by.unwrap_or_default(),
        }),
        infra_errors_in_a_row: count.max(0) as u32,
    }
}

impl PgLeases {
    pub fn service(&self, board: &str) -> Result<Service, LeaseError> {
        let board = board.to_string();
        self.call(move |c| {
            Box::pin(async move {
                let q = format!("SELECT {COLS} FROM board_service WHERE board = $1");
                Ok(c.query_opt(&q, &[&board])
                    .await?
                    .map(|r| from_row(&r))
                    .unwrap_or_default())
            })
        })
    }

    /// Replaces the board's service state by `f` of it. A board taken out of service now
    /// gets the database's now as its time.
    pub fn update_service(
        &self,
        board: &str,
        f: impl FnOnce(Service) -> Service + Send + 'static,
    ) -> Result<Service, LeaseError> {
        let board = board.to_string();
        self.call(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                tx.execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                    &[&BOARD_LOCK, &board],
                )
                .await?;
                let q = format!("SELECT {COLS} FROM board_service WHERE board = $1");
                let old = tx
                    .query_opt(&q, &[&board])
                    .await?
                    .map(|r| from_row(&r))
                    .unwrap_or_default();
                let new = f(old.clone());
                if new != old {
                    let was_out = old.out.is_some();
                    let (reason, by) = match &new.out {
                        Some(o) => (Some(o.reason.clone()), Some(o.by.clone())),
                        None => (None, None),
                    };
                    let count = i32::try_from(new.infra_errors_in_a_row).unwrap_or(i32::MAX);
                    // Keeps the time of an earlier outage when only the count changed.
                    let keep_since = was_out && new.out.as_ref().map(|o| &o.reason) == old.out.as_ref().map(|o| &o.reason);
                    tx.execute(
                        "INSERT INTO board_service (board, reason, since, set_by, infra_errors_in_a_row)
                         VALUES ($1, $2, CASE WHEN $2::text IS NULL THEN NULL ELSE now() END, $3, $4)
                         ON CONFLICT (board) DO UPDATE SET
                           reason = excluded.reason,
                           since = CASE WHEN $5 THEN board_service.since ELSE excluded.since END,
                           set_by = excluded.set_by,
                           infra_errors_in_a_row = excluded.infra_errors_in_a_row",
                        &[&board, &reason, &by, &count, &keep_since],
                    )
                    .await?;
                }
                let q = format!("SELECT {COLS} FROM board_service WHERE board = $1");
                let stored = tx
                    .query_opt(&q, &[&board])
                    .await?
                    .map(|r| from_row(&r))
                    .unwrap_or_default();
                tx.commit().await?;
                Ok(stored)
            })
        })
    }
}
