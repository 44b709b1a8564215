//! The engine's side of a board's service state: a run on a board out of service is
//! refused before it queues (and again once granted, since the board may have gone out
//! meanwhile), except a health run; at the end of a run that still holds the board, its
//! outcome counts towards taking the board out of service by itself, and a passing health
//! run puts it back.

use crate::lease::service::RunVerdict;
use crate::lease::Leases;
use crate::outcome::Outcome;

/// Why a run may not use the board: it is out of service (or its service state cannot be
/// read: a board that may be broken is not handed out).
pub async fn refusal(leases: &Leases, board: &str) -> Option<String> {
    let (l, b) = (leases.clone(), board.to_string());
    let r = tokio::task::spawn_blocking(move || l.service(&b)).await;
    match r {
        Ok(Ok(s)) => s.out.map(|out| {
            format!(
                "board {board} is out of service {}; a health run (`hil checklist {board}`, or `hil run --health`) puts it back in service when it passes, or `hil boards enable {board}`",
                out.describe()
            )
        }),
        Ok(Err(e)) => Some(format!("board {board}: service state unknown: {e}")),
        Err(e) => Some(format!("board {board}: service state unknown: {e}")),
    }
}

/// How a run with these case outcomes ended, for the count of infrastructure errors in a
/// row.
pub fn verdict(outcomes: &[Outcome]) -> RunVerdict {
    if outcomes.contains(&Outcome::InfraError) {
        RunVerdict::Infrastructure
    } else if outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Pass | Outcome::Fail))
    {
        RunVerdict::Tested
    } else {
        RunVerdict::Neither
    }
}

/// A health run passed: something passed and nothing did worse than skip.
pub fn healthy(outcomes: &[Outcome]) -> bool {
    outcomes.contains(&Outcome::Pass)
        && outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Pass | Outcome::Skipped))
}

/// Records the end of a run on the board (still held by it): counts it, takes the board
/// out of service after `threshold` infrastructure errors in a row, puts it back after a
/// passing health run. A failure to record is a warning: the run's own result stands.
pub async fn note_run(
    leases: &Leases,
    board: &str,
    outcomes: Vec<Outcome>,
    threshold: u32,
    health: bool,
) {
    let (l, b) = (leases.clone(), board.to_string());
    let back = health && healthy(&outcomes);
    let v = verdict(&outcomes);
    let r = tokio::task::spawn_blocking(move || {
        let before = l.service(&b)?;
        let after = if back {
            l.enable(&b)?
        } else {
            l.note_run(&b, v, threshold)?
        };
        Ok::<_, crate::lease::LeaseError>((before, after))
    })
    .await;
    match r {
        Ok(Ok((before, after))) => match (before.out, after.out) {
            (Some(_), None) => eprintln!("hil: {board}: health run passed: back in service"),
            (None, Some(out)) => eprintln!("hil: {board}: out of service {}", out.describe()),
            _ => {}
        },
        Ok(Err(e)) => {
            eprintln!("hil: {board}: warning: could not record the run's service count: {e}")
        }
        Err(e) => eprintln!("hil: {board}: warning: could not record the run's service count: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::*;

    #[test]
    fn any_infrastructure_error_counts_and_a_tested_run_resets() {
        assert_eq!(verdict(&[Pass, InfraError]), RunVerdict::Infrastructure);
        assert_eq!(verdict(&[Pass, Fail, Skipped]), RunVerdict::Tested);
        assert_eq!(verdict(&[Blocked, Skipped]), RunVerdict::Neither);
        assert!(healthy(&[Pass, Skipped]));
        assert!(!healthy(&[Pass, Blocked]));
        assert!(!healthy(&[Skipped]));
    }
}
