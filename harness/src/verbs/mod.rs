//! The lab engineer's verbs on one board outside a run: `hil power`, `hil ssh`. Each acts
//! under the board's lease, as `hil console` does, so it never acts on a board that a run
//! (or another engineer) holds; it is refused naming the holder instead.

pub mod power;
pub mod ssh;

use crate::config::Board;
use crate::error::LabTrouble;
use crate::lease::{Held, LeaseError, Leases, Owner, Wait};

/// Takes `board`'s lease for as long as the returned guard lives. `None` when this user's
/// `hil lab up` holds the board (it is already theirs). A busy board is lab trouble
/// (exit 3) naming the holder: job, user, host, pid and run.
pub async fn take_lease(board: &Board, verb: &str) -> anyhow::Result<Option<Held>> {
    let leases = Leases::from_env();
    if leases
        .read(&board.name)?
        .is_some_and(|rec| Leases::is_own_lab_up(&rec))
    {
        return Ok(None);
    }
    let mut quiet = |_: &str| {};
    let wait = Wait::no(&mut quiet);
    let owner = Owner::this_process(&format!("{verb}-{}", board.name));
    let ttl = std::time::Duration::from_secs(board.lease.ttl_s);
    match Held::acquire(leases, &board.name, owner, ttl, wait).await {
        Ok((held, _)) => Ok(Some(held)),
        Err(e @ LeaseError::Busy { .. }) => Err(LabTrouble::new(format!(
            "{e}; `hil {verb}` acts only on a board nobody else holds"
        ))
        .hint(
            "wait until the holder gives the board back (`hil boards` shows who holds each board)",
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// `lease: free` or `lease: held by job ... (user@host, pid N, run R) for ..., expires ...`.
pub fn lease_line(board: &str) -> String {
    let now = crate::lease::now();
    match Leases::from_env().read(board) {
        Ok(Some(l)) if !l.expired(now) => format!("lease: {}", l.describe(now)),
        Ok(Some(l)) => format!("lease: free ({})", l.describe(now)),
        Ok(None) => "lease: free".into(),
        Err(e) => format!("lease: unknown ({e})"),
    }
}

/// Whether a live lease holds `board` (someone may be using it right now). A lease
/// database that cannot be asked counts as held: someone may be.
pub fn held(board: &str) -> bool {
    Leases::from_env()
        .read(board)
        .map_or(true, |r| r.is_some_and(|l| !l.expired(crate::lease::now())))
}
