//! The PostgreSQL leases against a real server of their own ([`Cluster`]); a machine
//! without PostgreSQL fails these tests, naming the package to install.

use super::*;
use crate::lease::pg_cluster::Cluster;
use crate::lease::{Held, Leases, Wait};
use std::sync::Arc;

fn owner(host: &str, pid: u32) -> Owner {
    Owner {
        job: "42".into(),
        user: "ci".into(),
        host: host.into(),
        pid,
        run_id: format!("run-{pid}"),
    }
}

fn cluster() -> Cluster {
    Cluster::start().unwrap_or_else(|e| panic!("{e:#}"))
}

/// A plain connection for looking at (and tampering with) the table behind hil's back.
async fn sql(c: &Cluster) -> Client {
    let (client, conn) = tokio_postgres::connect(&c.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().unwrap()
}

#[test]
fn pg_hosts_racing_for_a_board_never_both_win() {
    let c = cluster();
    let url = c.url();
    // A connection each, as separate lab hosts have; all released at once.
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let results: Vec<Result<(Record, Option<Record>), LeaseError>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8u32)
            .map(|i| {
                let (url, barrier) = (url.clone(), barrier.clone());
                s.spawn(move || {
                    let l = PgLeases::new(&url);
                    // Connected and migrated before the race, so the race is the grant.
                    l.read("other").unwrap();
                    barrier.wait();
                    l.try_acquire(
                        "b",
                        &owner(&format!("lab{i}"), i + 1),
                        Duration::from_secs(60),
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<&Record> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|(rec, _)| rec))
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let w = &winners[0].owner;
    let holder = format!(
        "board b is busy: held by job 42 (ci@{}, pid {}, run {})",
        w.host, w.pid, w.run_id
    );
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, LeaseError::Busy { .. }), "{e}");
            assert!(e.to_string().starts_with(&holder), "{e} / {holder}");
        }
    }
    let l = PgLeases::new(&url);
    assert_eq!(l.list().unwrap().len(), 1);
    assert_eq!(l.read("b").unwrap().unwrap().owner, *w);
}

#[tokio::test]
async fn pg_expiry_by_the_database_clock_frees_the_board() {
    let c = cluster();
    let db = sql(&c).await;
    let l = PgLeases::new(&c.url());
    let l2 = l.clone();
    let (first, _) = blocking(move || {
        l2.try_acquire("b", &owner("lab1", 1), Duration::from_secs(1))
            .unwrap()
    });
    // The grant's times are the database's: granted now() there, expiring TTL later.
    let row = db
        .query_one(
            "SELECT extract(epoch from now() - granted_at)::float8,
                    extract(epoch from expires_at - granted_at)::float8,
                    heartbeat_at = granted_at
             FROM leases WHERE board = 'b'",
            &[],
        )
        .await
        .unwrap();
    let (age, ttl, beat): (f64, f64, bool) = (row.get(0), row.get(1), row.get(2));
    assert!(
        (0.0..5.0).contains(&age),
        "granted {age} s before the database's now"
    );
    assert_eq!(ttl, 1.0);
    assert!(beat);

    let l2 = l.clone();
    let e = blocking(move || l2.try_acquire("b", &owner("lab2", 2), Duration::from_secs(1)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("held by job 42 (ci@lab1, pid 1, run run-1)"),
        "{e}"
    );
    assert!(e.contains("expires in"), "{e}");

    // One TTL later by the database's clock the board is free again, and the grant says
    // whose expired lease it replaced.
    let t = std::time::Instant::now();
    let (second, prev) = loop {
        let l2 = l.clone();
        match blocking(move || l2.try_acquire("b", &owner("lab2", 2), Duration::from_secs(60))) {
            Ok(x) => break x,
            Err(e) => {
                assert!(t.elapsed() < Duration::from_secs(10), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(prev.unwrap().owner, first.owner);
    assert_eq!(second.owner.host, "lab2");

    // Only the database's expires_at counts: moved into the past there, the lease is
    // expired though this host's copy of the record still says 60 s are left.
    db.execute(
        "UPDATE leases SET expires_at = now() - interval '1 second' WHERE board = 'b'",
        &[],
    )
    .await
    .unwrap();
    assert!(!second.expired(crate::lease::now()));
    let (l2, s2) = (l.clone(), second.clone());
    let e = blocking(move || l2.check_current(&s2))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("expired") && e.contains("database's clock"),
        "{e}"
    );
    let l2 = l.clone();
    let (third, prev) = blocking(move || {
        l2.try_acquire("b", &owner("lab3", 3), Duration::from_secs(60))
            .unwrap()
    });
    assert_eq!(prev.unwrap().owner.host, "lab2");
    assert_eq!(third.owner.host, "lab3");
}

#[test]
fn pg_the_token_grows_with_every_grant() {
    let c = cluster();
    let l = PgLeases::new(&c.url());
    let ttl = Duration::from_secs(60);
    let mut tokens = Vec::new();
    for i in 0..3 {
        let (rec, _) = l.try_acquire("b", &owner("lab1", i), ttl).unwrap();
        tokens.push(rec.token);
        // The holder asking again is a new grant too.
        let (again, _) = l.try_acquire("b", &owner("lab1", i), ttl).unwrap();
        tokens.push(again.token);
        let (other, _) = l.try_acquire("c", &owner("lab2", i), ttl).unwrap();
        tokens.push(other.token);
        l.release(&again).unwrap();
        l.release(&other).unwrap();
    }
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
    assert!(tokens[0] >= 1, "{tokens:?}");
}

#[tokio::test]
async fn pg_a_stale_token_can_neither_renew_nor_release() {
    let c = cluster();
    let db = sql(&c).await;
    let l = PgLeases::new(&c.url());
    let ttl = Duration::from_secs(60);
    let (mut old, _) = l.try_acquire("b", &owner("lab1", 1), ttl).unwrap();
    // A renew moves the heartbeat; a holder that stopped renewing (here: told the database
    // so) loses the board to the next host.
    let before = old.heartbeat;
    std::thread::sleep(Duration::from_millis(50));
    l.renew(&mut old).unwrap();
    assert!(old.heartbeat > before, "{} -> {}", before, old.heartbeat);
    db.execute(
        "UPDATE leases SET expires_at = now() - interval '1 second' WHERE board = 'b'",
        &[],
    )
    .await
    .unwrap();
    let (new, prev) = l.try_acquire("b", &owner("lab2", 2), ttl).unwrap();
    assert_eq!(prev.unwrap().token, old.token);

    let stale = format!(
        "token {} is stale: the board was granted again (token {})",
        old.token, new.token
    );
    let e = l.renew(&mut old).unwrap_err();
    assert!(matches!(e, LeaseError::Lost { .. }), "{e}");
    let e = e.to_string();
    assert!(e.starts_with("lease of board b lost: "), "{e}");
    assert!(e.contains(&stale), "{e}");
    assert!(
        e.contains("now held by job 42 (ci@lab2, pid 2, run run-2)"),
        "{e}"
    );
    let e = l.check_current(&old).unwrap_err().to_string();
    assert!(e.contains(&stale), "{e}");
    let e = l.release(&old).unwrap_err().to_string();
    assert!(e.contains(&stale), "{e}");
    // The stale holder's attempts left the new grant as it was.
    let cur = l.read("b").unwrap().unwrap();
    assert_eq!((cur.token, &cur.owner), (new.token, &new.owner));
    l.check_current(&new).unwrap();
    l.release(&new).unwrap();
    assert!(l.read("b").unwrap().is_none());
    // Gone is gone: a renew never re-creates the row.
    let mut new = new;
    let e = l.renew(&mut new).unwrap_err().to_string();
    assert!(e.contains("the lease row was removed"), "{e}");
    assert!(l.read("b").unwrap().is_none());
}

#[tokio::test]
async fn pg_a_held_lease_heartbeats_and_a_waiter_queues_behind_it() {
    let c = cluster();
    let l = Leases::Pg(PgLeases::new(&c.url()));
    let quiet = Wait {
        enabled: false,
        poll: Duration::from_millis(50),
        priority: 0,
        timeout: None,
        on_busy: &mut |_| {},
    };
    let (first, _) = Held::acquire(
        l.clone(),
        "b",
        owner("lab1", 1),
        Duration::from_secs(1),
        quiet,
    )
    .await
    .unwrap();
    // Two TTLs later it is still current: the heartbeats reached the database.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    first.check_current().await.unwrap();
    let l2 = l.clone();
    let waiter = tokio::spawn(async move {
        let mut seen = Vec::new();
        let r = Held::acquire(
            l2,
            "b",
            owner("lab2", 2),
            Duration::from_secs(60),
            Wait {
                enabled: true,
                poll: Duration::from_millis(50),
                priority: 0,
                timeout: None,
                on_busy: &mut |h| seen.push(h.to_string()),
            },
        )
        .await
        .map(|(h, _)| h.record().owner.host);
        (r.unwrap(), seen)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished());
    first.release().unwrap();
    let (host, seen) = waiter.await.unwrap();
    assert_eq!(host, "lab2");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains("ci@lab1, pid 1"), "{seen:?}");
}

#[tokio::test]
async fn pg_migrations_are_applied_once_and_a_newer_schema_is_refused() {
    let c = cluster();
    let url = c.url();
    // Hosts connecting at once: the advisory lock lets one migrate, the others see it done.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| PgLeases::new(&url).list().unwrap());
        }
    });
    let db = sql(&c).await;
    let versions: Vec<i32> = db
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    db.execute(
        "INSERT INTO schema_version (version) VALUES ($1)",
        &[&(SCHEMA_VERSION + 1)],
    )
    .await
    .unwrap();
    let u = url.clone();
    let e = blocking(move || PgLeases::new(&u).read("b"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("lease database HIL_DATABASE_URL={url}: ")),
        "{e}"
    );
    assert!(
        e.contains("newer than this hil knows") && e.contains("upgrade hil"),
        "{e}"
    );
}

#[test]
fn an_unreachable_database_is_an_error_naming_it() {
    let port = crate::console::ser2net::free_port().unwrap();
    let url = format!("postgres://hil:secret@127.0.0.1:{port}/labs");
    let e = PgLeases::new(&url).read("b").unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "lease database HIL_DATABASE_URL=postgres://hil:***@127.0.0.1:{port}/labs: "
        )),
        "{e}"
    );
    assert!(!e.contains("secret"), "{e}");
    let e = PgLeases::new("postgres://[oops")
        .read("b")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a PostgreSQL connection URL"), "{e}");
}

#[test]
fn passwords_are_left_out_of_messages() {
    assert_eq!(
        redact("postgres://u:pw@db1:5432/hil?sslmode=disable"),
        "postgres://u:***@db1:5432/hil?sslmode=disable"
    );
    assert_eq!(redact("postgres://u@db1/hil"), "postgres://u@db1/hil");
    assert_eq!(
        redact("postgres://u@db1/hil?password=pw"),
        "postgres://u@db1/(parameters with a password)"
    );
    assert!(!redact("host=db1 password=pw").contains("pw"));
}

#[test]
fn missing_server_binaries_name_the_package() {
    let empty = std::env::temp_dir().join(format!("hil-no-pg-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let e = crate::lease::pg_cluster::find_bin_dir(Some(empty.as_os_str()), &empty)
        .unwrap_err()
        .to_string();
    let _ = std::fs::remove_dir_all(&empty);
    assert!(
        e.contains("apt-get install --no-install-recommends postgresql"),
        "{e}"
    );
}

#[test]
fn pg_three_waiters_are_served_by_priority_then_arrival() {
    let c = cluster();
    let l = Leases::Pg(PgLeases::new(&c.url()));
    crate::lease::queue::scenarios::priority_then_arrival(&l, |pid| owner("lab1", pid));
}

#[test]
fn pg_a_killed_waiters_place_lapses_by_the_database_clock() {
    let c = cluster();
    let l = Leases::Pg(PgLeases::new(&c.url()));
    crate::lease::queue::scenarios::a_killed_waiter_lapses(&l, |pid| owner("lab2", pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_a_queue_timeout_gives_up_and_leaves_the_queue() {
    let c = cluster();
    let l = Leases::Pg(PgLeases::new(&c.url()));
    crate::lease::queue::scenarios::queue_timeout_and_giving_up(l, |pid| owner("lab3", pid)).await;
}

#[test]
fn pg_a_board_is_taken_out_of_service_and_back_by_hand() {
    let c = cluster();
    let l = Leases::Pg(PgLeases::new(&c.url()));
    crate::lease::service::scenarios::disable_and_enable(&l);
}

#[test]
fn pg_a_board_goes_out_of_service_after_infrastructure_errors_in_a_row() {
    let c = cluster();
    let l = Leases::Pg(PgLeases::new(&c.url()));
    crate::lease::service::scenarios::out_after_infrastructure_errors_in_a_row(&l);
}
