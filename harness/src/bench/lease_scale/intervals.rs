//! The double-grant check: for each board, the intervals in which a grant held it (by
//! the database's clock) must not overlap, and later grants must carry larger tokens.

use serde::Serialize;
use std::collections::BTreeMap;

/// One grant of a board, times in microseconds since the epoch on the database's clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Grant {
    pub board: String,
    pub token: i64,
    /// The job the grant was for (as the lease row named it).
    pub job: String,
    pub start_us: i64,
    /// When it stopped holding the board: released, or expired (its last `expires_at`).
    pub end_us: i64,
    pub ended: End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    Released,
    /// Expired and taken over by a later grant.
    Expired,
    /// Still in the table when the run ended (a crashed holder's lease nobody took over
    /// yet): its end is its `expires_at`.
    Open,
}

/// Two grants of one board that overlap, or a later grant with a token not larger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    pub board: String,
    pub earlier: i64,
    pub later: i64,
    pub why: String,
}

/// Every conflict among `grants`: per board, in order of start, each grant must end no
/// later than the next one starts and have a smaller token.
pub fn conflicts(grants: &[Grant]) -> Vec<Conflict> {
    let mut by_board: BTreeMap<&str, Vec<&Grant>> = BTreeMap::new();
    for g in grants {
        by_board.entry(&g.board).or_default().push(g);
    }
    let mut out = Vec::new();
    for (board, mut gs) in by_board {
        gs.sort_by_key(|g| (g.start_us, g.token));
        // Compared with the latest end so far, not only the previous grant: a long grant
        // may overlap several short ones after it.
        let mut reach: Option<&Grant> = None;
        for (i, g) in gs.iter().enumerate() {
            if let Some(r) = reach.filter(|r| r.end_us > g.start_us) {
                out.push(Conflict {
                    board: board.into(),
                    earlier: r.token,
                    later: g.token,
                    why: format!(
                        "token {} ({}) held the board until {} µs after token {} ({}) was granted",
                        r.token,
                        r.job,
                        r.end_us - g.start_us,
                        g.token,
                        g.job
                    ),
                });
            }
            if i > 0 && gs[i - 1].token >= g.token {
                out.push(Conflict {
                    board: board.into(),
                    earlier: gs[i - 1].token,
                    later: g.token,
                    why: format!(
                        "token {} was granted after token {}: tokens must grow",
                        g.token,
                        gs[i - 1].token
                    ),
                });
            }
            if reach.is_none_or(|r| g.end_us > r.end_us) {
                reach = Some(g);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(board: &str, token: i64, start_us: i64, end_us: i64) -> Grant {
        Grant {
            board: board.into(),
            token,
            job: format!("job-{token}"),
            start_us,
            end_us,
            ended: End::Released,
        }
    }

    #[test]
    fn back_to_back_grants_and_other_boards_are_no_conflict() {
        let grants = [
            g("a", 1, 0, 100),
            g("a", 3, 100, 250),
            g("b", 2, 50, 400),
            g("a", 4, 300, 310),
        ];
        assert_eq!(conflicts(&grants), []);
    }

    #[test]
    fn an_overlap_is_a_double_grant() {
        let c = conflicts(&[g("a", 1, 0, 100), g("a", 2, 99, 200), g("b", 3, 0, 1000)]);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!((c[0].earlier, c[0].later), (1, 2));
        assert!(
            c[0].why.contains("until 1 µs after token 2"),
            "{}",
            c[0].why
        );
    }

    #[test]
    fn a_long_grant_overlapping_a_later_one_past_a_short_one_is_found() {
        // Token 1 spans both 2 and 3; 2 ends before 3 starts.
        let c = conflicts(&[g("a", 1, 0, 1000), g("a", 2, 10, 20), g("a", 3, 30, 40)]);
        let pairs: Vec<(i64, i64)> = c.iter().map(|c| (c.earlier, c.later)).collect();
        assert_eq!(pairs, [(1, 2), (1, 3)]);
    }

    #[test]
    fn a_token_that_does_not_grow_is_a_conflict() {
        let c = conflicts(&[g("a", 5, 0, 10), g("a", 4, 20, 30)]);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].why.contains("tokens must grow"), "{}", c[0].why);
    }
}
