//! Service scenarios run against both coordinators (the files in `lease.rs`' tests,
//! PostgreSQL in `lease/pg/tests.rs`).

use super::RunVerdict::{Infrastructure, Neither, Tested};
use crate::lease::Leases;

/// By hand: out with a reason and who did it, then back in.
pub fn disable_and_enable(l: &Leases) {
    assert_eq!(l.service("b").unwrap(), Default::default());
    l.disable("b", "relay stuck").unwrap();
    let s = l.service("b").unwrap();
    let out = s.out.expect("out of service");
    assert_eq!(out.reason, "relay stuck");
    assert_eq!(out.by, super::by_this_user());
    assert!(
        (crate::lease::now() - out.since).abs() < 30.0,
        "{}",
        out.since
    );
    // Other boards are unaffected.
    assert!(l.service("other").unwrap().out.is_none());
    l.enable("b").unwrap();
    assert_eq!(l.service("b").unwrap(), Default::default());
}

/// By itself: after `threshold` infrastructure errors in a row; a run that tested the
/// board resets the count; a run that tested nothing leaves it.
pub fn out_after_infrastructure_errors_in_a_row(l: &Leases) {
    for v in [Infrastructure, Tested, Infrastructure, Neither] {
        l.note_run("b", v, 2).unwrap();
    }
    let s = l.service("b").unwrap();
    assert_eq!((s.out.is_none(), s.infra_errors_in_a_row), (true, 1));
    let s = l.note_run("b", Infrastructure, 2).unwrap();
    let out = s.out.expect("out of service after 2 in a row");
    assert_eq!(out.by, "hil");
    assert!(
        out.reason
            .starts_with("2 runs in a row ended in an infrastructure error"),
        "{}",
        out.reason
    );
    // (A database's times are converted at each read: equal to within the clock skew.)
    let again = l.service("b").unwrap().out.expect("still out");
    assert_eq!((&again.reason, &again.by), (&out.reason, &out.by));
    assert!((again.since - out.since).abs() < 1.0, "{again:?} {out:?}");
    // Further errors count on, but the outage keeps its reason.
    let s = l.note_run("b", Infrastructure, 2).unwrap();
    assert_eq!(s.infra_errors_in_a_row, 3);
    assert_eq!(s.out.unwrap().reason, out.reason);
    l.enable("b").unwrap();
    assert_eq!(l.service("b").unwrap().infra_errors_in_a_row, 0);
}
