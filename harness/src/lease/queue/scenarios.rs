//! Queue scenarios run against both coordinators (the files here, PostgreSQL in
//! `lease/pg/tests.rs`), so the two keep the same semantics.

use crate::lease::{Held, LeaseError, Leases, Owner, Spot, Wait};
use std::time::Duration;

const MIN: Duration = Duration::from_secs(60);

fn spot(priority: i32) -> Spot {
    Spot {
        priority,
        ttl: Duration::from_secs(30),
    }
}

fn pid_of(r: Result<(crate::lease::Record, Option<crate::lease::Record>), LeaseError>) -> u32 {
    r.map(|(rec, _)| rec.owner.pid)
        .unwrap_or_else(|e| panic!("not granted: {e}"))
}

fn refused(r: Result<(crate::lease::Record, Option<crate::lease::Record>), LeaseError>) -> String {
    match r {
        Err(e @ LeaseError::Busy { .. }) => e.to_string(),
        Err(e) => panic!("not Busy: {e}"),
        Ok((rec, _)) => panic!("granted to pid {}", rec.owner.pid),
    }
}

/// Three waiters (priority 0 first, then two of priority 5) get the board in
/// priority-then-arrival order; a caller that does not queue cannot jump them.
pub fn priority_then_arrival(l: &Leases, owner: impl Fn(u32) -> Owner) {
    let (holder, _) = l.try_acquire("b", &owner(1), MIN).unwrap();
    for (pid, prio) in [(10, 0), (20, 5), (30, 5)] {
        refused(l.try_acquire_queued("b", &owner(pid), MIN, &spot(prio)));
    }
    let order: Vec<(u32, i32)> = l
        .queue("b")
        .unwrap()
        .iter()
        .map(|w| (w.owner.pid, w.priority))
        .collect();
    assert_eq!(order, [(20, 5), (30, 5), (10, 0)]);
    l.release(&holder).unwrap();

    // Free, but only the head is served: the others and a caller without a place wait.
    let e = refused(l.try_acquire("b", &owner(99), MIN));
    assert!(
        e.contains("free, but 3 waiting in its queue, first") && e.contains("pid 20"),
        "{e}"
    );
    let e = refused(l.try_acquire_queued("b", &owner(10), MIN, &spot(0)));
    assert!(e.contains("pid 20"), "{e}");
    refused(l.try_acquire_queued("b", &owner(30), MIN, &spot(5)));

    let mut served = Vec::new();
    for (pid, prio) in [(20, 5), (30, 5), (10, 0)] {
        let (rec, _) = l
            .try_acquire_queued("b", &owner(pid), MIN, &spot(prio))
            .unwrap_or_else(|e| panic!("pid {pid}: {e}"));
        served.push(rec.owner.pid);
        l.release(&rec).unwrap();
    }
    assert_eq!(served, [20, 30, 10]);
    assert!(l.queue("b").unwrap().is_empty());
    // An empty queue and a free board: granted at once.
    assert_eq!(pid_of(l.try_acquire("b", &owner(99), MIN)), 99);
}

/// A waiter that stops refreshing its place (killed) lapses: the next one is served.
pub fn a_killed_waiter_lapses(l: &Leases, owner: impl Fn(u32) -> Owner) {
    let (holder, _) = l.try_acquire("b", &owner(1), MIN).unwrap();
    let short = Spot {
        priority: 9,
        ttl: Duration::from_secs(1),
    };
    refused(l.try_acquire_queued("b", &owner(2), MIN, &short));
    refused(l.try_acquire_queued("b", &owner(3), MIN, &spot(0)));
    l.release(&holder).unwrap();
    let e = refused(l.try_acquire_queued("b", &owner(3), MIN, &spot(0)));
    assert!(e.contains("pid 2"), "{e}");
    std::thread::sleep(Duration::from_millis(1500));
    let waiting: Vec<u32> = l.queue("b").unwrap().iter().map(|w| w.owner.pid).collect();
    assert_eq!(waiting, [3], "the killed waiter's place lapsed");
    assert_eq!(
        pid_of(l.try_acquire_queued("b", &owner(3), MIN, &spot(0))),
        3
    );
}

/// `Held::acquire` with a queue time-out gives up naming the board and holder, and leaves
/// the queue; a waiter whose wait is dropped leaves it too.
pub async fn queue_timeout_and_giving_up(l: Leases, owner: impl Fn(u32) -> Owner) {
    let (holder, _) = l.try_acquire("b", &owner(1), MIN).unwrap();
    let t = std::time::Instant::now();
    let r = Held::acquire(
        l.clone(),
        "b",
        owner(2),
        MIN,
        Wait {
            enabled: true,
            poll: Duration::from_millis(100),
            priority: 0,
            timeout: Some(Duration::from_millis(600)),
            on_busy: &mut |_| {},
        },
    )
    .await;
    let waited = t.elapsed();
    let e = match r {
        Err(e @ LeaseError::QueueTimeout { .. }) => e.to_string(),
        Err(e) => panic!("not a queue time-out: {e}"),
        Ok(_) => panic!("granted while held"),
    };
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(
        e.starts_with("board b: gave up after waiting ")
            && e.contains(" s in its queue (queue time-out 1 s): "),
        "{e}"
    );
    assert!(e.contains("held by job") && e.contains("pid 1"), "{e}");
    assert!(
        l.queue("b").unwrap().is_empty(),
        "the timed-out waiter left"
    );

    let l2 = l.clone();
    let o2 = owner(3);
    let waiter = tokio::spawn(async move {
        let _ = Held::acquire(
            l2,
            "b",
            o2,
            MIN,
            Wait {
                enabled: true,
                poll: Duration::from_millis(50),
                priority: 0,
                timeout: None,
                on_busy: &mut |_| {},
            },
        )
        .await;
    });
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while l.queue("b").unwrap().is_empty() {
        assert!(std::time::Instant::now() < end, "the waiter never joined");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    waiter.abort();
    let _ = waiter.await;
    assert!(l.queue("b").unwrap().is_empty(), "the dropped waiter left");
    l.release(&holder).unwrap();
}
