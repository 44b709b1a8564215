//! The record of every grant, kept by the database itself: triggers on the `leases`
//! table write each grant, takeover and release into `bench_grant_log` as the rows
//! change, so the check does not depend on what the load processes say about themselves.
//!
//! Times are the database's. A grant starts at `clock_timestamp()` when its row is
//! written (after any row lock it waited for: an insert that waited for a release, a
//! takeover that waited for a heartbeat); a release ends at `clock_timestamp()` of its
//! delete; a lease taken over after expiry ends at its last `expires_at`, which the
//! coordinator only passes once its own `now()` is past it. Heartbeats (same token) fire
//! no trigger, so the log costs one row write per grant and one per end.

use super::intervals::{End, Grant};
use tokio_postgres::Client;

const INSTALL: &str = r#"
CREATE TABLE bench_grant_log (
    token     bigint PRIMARY KEY,
    board     text NOT NULL,
    job       text NOT NULL,
    start_at  timestamptz NOT NULL,
    end_at    timestamptz,
    ended     text
);
CREATE FUNCTION bench_log_grant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        UPDATE bench_grant_log SET end_at = OLD.expires_at, ended = 'expired'
            WHERE token = OLD.token;
    END IF;
    INSERT INTO bench_grant_log (token, board, job, start_at)
        VALUES (NEW.token, NEW.board, NEW.job, clock_timestamp());
    RETURN NULL;
END $$;
CREATE FUNCTION bench_log_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bench_grant_log SET end_at = clock_timestamp(), ended = 'released'
        WHERE token = OLD.token;
    RETURN NULL;
END $$;
CREATE TRIGGER bench_grant AFTER INSERT ON leases
    FOR EACH ROW EXECUTE FUNCTION bench_log_grant();
CREATE TRIGGER bench_takeover AFTER UPDATE ON leases
    FOR EACH ROW WHEN (OLD.token IS DISTINCT FROM NEW.token) EXECUTE FUNCTION bench_log_grant();
CREATE TRIGGER bench_release AFTER DELETE ON leases
    FOR EACH ROW EXECUTE FUNCTION bench_log_release();
"#;

/// Microseconds since the epoch, exact (no float rounding).
const US: &str = "(extract(epoch from {}) * 1000000)::int8";

fn us(col: &str) -> String {
    US.replace("{}", col)
}

/// Installs the log's table and triggers; the lease schema must exist already.
pub async fn install(c: &Client) -> anyhow::Result<()> {
    c.batch_execute(INSTALL).await?;
    Ok(())
}

/// Every grant of the run. A grant still open (its row still in `leases`) ends at the
/// row's `expires_at`.
pub async fn read(c: &Client) -> anyhow::Result<Vec<Grant>> {
    let q = format!(
        "SELECT g.token, g.board, g.job, {}, coalesce({}, {}), g.ended
           FROM bench_grant_log g LEFT JOIN leases l ON l.token = g.token
          ORDER BY g.token",
        us("g.start_at"),
        us("g.end_at"),
        us("l.expires_at"),
    );
    let rows = c.query(&q, &[]).await?;
    rows.iter()
        .map(|r| {
            let token: i64 = r.get(0);
            let end: Option<i64> = r.get(4);
            let ended: Option<String> = r.get(5);
            let ended = match ended.as_deref() {
                Some("released") => End::Released,
                Some("expired") => End::Expired,
                _ => End::Open,
            };
            Ok(Grant {
                token,
                board: r.get(1),
                job: r.get(2),
                start_us: r.get(3),
                end_us: end.ok_or_else(|| {
                    anyhow::anyhow!("grant {token} has neither an end nor a lease row")
                })?,
                ended,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::intervals::conflicts;
    use super::*;
    use crate::lease::pg::PgLeases;
    use crate::lease::pg_cluster::Cluster;
    use crate::lease::{Leases, Owner};
    use std::time::Duration;

    fn owner(n: u32) -> Owner {
        Owner {
            job: format!("job-{n}"),
            user: "bench".into(),
            host: "lab-01".into(),
            pid: n,
            run_id: format!("run-{n}"),
        }
    }

    /// The log against a real server: hil's grants and releases of one board log clean
    /// intervals, and a coordinator that took a live lease over (what the check is for)
    /// shows as a double grant.
    #[tokio::test]
    async fn the_log_shows_a_takeover_of_a_live_lease_as_a_double_grant() {
        let c = tokio::task::spawn_blocking(Cluster::start)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e:#}"));
        let leases = Leases::Pg(PgLeases::new(&c.url()));
        let (db, conn) = tokio_postgres::connect(&c.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let l = leases.clone();
        tokio::task::spawn_blocking(move || {
            l.list().unwrap();
        })
        .await
        .unwrap();
        install(&db).await.unwrap();
        let l = leases.clone();
        tokio::task::spawn_blocking(move || {
            let ttl = Duration::from_secs(60);
            let (first, _) = l.try_acquire("b", &owner(1), ttl).unwrap();
            l.release(&first).unwrap();
            l.try_acquire("b", &owner(2), ttl).unwrap();
        })
        .await
        .unwrap();
        let clean = read(&db).await.unwrap();
        assert_eq!(clean.len(), 2, "{clean:?}");
        assert_eq!(clean[0].ended, End::Released);
        assert_eq!(clean[1].ended, End::Open);
        assert_eq!(conflicts(&clean), []);
        // A broken coordinator: a new token over a lease that has 60 s to live.
        db.execute(
            "UPDATE leases SET token = nextval('lease_token'), job = 'job-3', granted_at = now()
              WHERE board = 'b'",
            &[],
        )
        .await
        .unwrap();
        let broken = read(&db).await.unwrap();
        assert_eq!(broken.len(), 3, "{broken:?}");
        assert_eq!(broken[1].ended, End::Expired);
        let found = conflicts(&broken);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].earlier, found[0].later),
            (broken[1].token, broken[2].token)
        );
        drop(db);
        tokio::task::spawn_blocking(move || drop(c)).await.unwrap();
    }
}
