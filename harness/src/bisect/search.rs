//! The binary search over an ordered list of builds, without any I/O: which build to test
//! next, given what is known. A skipped build (infrastructure error, blocked, build hook
//! failed) is never counted good or bad; the search tests a neighbour instead, and when
//! only skipped builds separate the last good from the first bad, the answer is the range.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Good,
    Bad,
    /// Cannot tell (lab trouble, blocked precondition).
    Skip,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Bad => "bad",
            Verdict::Skip => "skip",
        }
    }
}

/// The state of a bisection over builds `0..n`.
#[derive(Debug, Clone)]
pub struct Search {
    verdicts: Vec<Option<Verdict>>,
    /// Highest index known good.
    good: usize,
    /// Lowest index known bad (above `good`).
    bad: usize,
}

/// Where a finished search ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// `bad` is the first bad build; `good` (= bad - 1) the last good one.
    FirstBad { good: usize, bad: usize },
    /// The first bad build is one of `candidates` (skipped builds, then the known bad).
    Ambiguous { good: usize, candidates: Vec<usize> },
}

impl Search {
    /// `good < bad < n`, or an error saying what is wrong.
    pub fn new(n: usize, good: usize, bad: usize) -> Result<Search, String> {
        if good >= bad {
            return Err(format!(
                "the good build (#{}) must come before the bad one (#{}) in the list",
                good + 1,
                bad + 1
            ));
        }
        if bad >= n {
            return Err(format!("build #{} is past the end of the list", bad + 1));
        }
        let mut verdicts = vec![None; n];
        verdicts[good] = Some(Verdict::Good);
        verdicts[bad] = Some(Verdict::Bad);
        Ok(Search {
            verdicts,
            good,
            bad,
        })
    }

    /// The build to test next, or None when the search is over. Picks the untested build
    /// that splits the open range most evenly (lower first on a tie): around a skipped
    /// middle that is the neighbour on the longer side.
    pub fn next(&self) -> Option<usize> {
        let sum = self.good + self.bad;
        (self.good + 1..self.bad)
            .filter(|&i| self.verdicts[i].is_none())
            .min_by_key(|&i| ((2 * i).abs_diff(sum), i))
    }

    /// Records a verdict. Builds between `good` and `bad` only.
    pub fn record(&mut self, i: usize, v: Verdict) {
        self.verdicts[i] = Some(v);
        match v {
            Verdict::Good if i > self.good && i < self.bad => self.good = i,
            Verdict::Bad if i > self.good && i < self.bad => self.bad = i,
            _ => {}
        }
    }

    pub fn result(&self) -> Found {
        if self.bad == self.good + 1 {
            Found::FirstBad {
                good: self.good,
                bad: self.bad,
            }
        } else {
            Found::Ambiguous {
                good: self.good,
                candidates: (self.good + 1..=self.bad).collect(),
            }
        }
    }

    /// Tests a full search needs at most, without skips: ⌈log2(bad - good)⌉.
    pub fn max_steps(good: usize, bad: usize) -> usize {
        let span = bad.saturating_sub(good).max(1);
        (usize::BITS - (span - 1).leading_zeros()) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a fixed truth; returns (result, builds tested in order).
    fn simulate(n: usize, first_bad: usize, skip: &[usize]) -> (Found, Vec<usize>) {
        let mut s = Search::new(n, 0, n - 1).unwrap();
        let mut tested = Vec::new();
        while let Some(i) = s.next() {
            tested.push(i);
            let v = if skip.contains(&i) {
                Verdict::Skip
            } else if i >= first_bad {
                Verdict::Bad
            } else {
                Verdict::Good
            };
            s.record(i, v);
            assert!(tested.len() <= n, "search does not end");
        }
        (s.result(), tested)
    }

    #[test]
    fn finds_every_first_bad_within_log2_steps() {
        for n in 2..=20 {
            for first_bad in 1..n {
                let (found, tested) = simulate(n, first_bad, &[]);
                assert_eq!(
                    found,
                    Found::FirstBad {
                        good: first_bad - 1,
                        bad: first_bad
                    },
                    "n={n} first_bad={first_bad}"
                );
                let bound = (n as f64).log2().ceil() as usize;
                assert!(
                    tested.len() <= bound,
                    "n={n} first_bad={first_bad}: {} tests > ⌈log2 n⌉ = {bound}",
                    tested.len()
                );
                assert!(tested.len() <= Search::max_steps(0, n - 1));
            }
        }
    }

    #[test]
    fn skipped_build_is_stepped_around_not_judged() {
        // 8 builds, build-06 (index 5) first bad, build-04 (index 3) cannot be tested.
        let (found, tested) = simulate(8, 5, &[3]);
        assert_eq!(found, Found::FirstBad { good: 4, bad: 5 });
        assert_eq!(tested, vec![3, 4, 5]);
        // A skip next to the answer leaves a range, never a wrong single build.
        let (found, _) = simulate(8, 5, &[4]);
        assert_eq!(
            found,
            Found::Ambiguous {
                good: 3,
                candidates: vec![4, 5]
            }
        );
    }

    #[test]
    fn every_skip_pattern_gives_a_range_holding_the_truth() {
        let n = 8;
        for first_bad in 1..n {
            for mask in 0u32..(1 << (n - 2)) {
                let skip: Vec<usize> = (1..n - 1).filter(|i| mask & (1 << (i - 1)) != 0).collect();
                let (found, _) = simulate(n, first_bad, &skip);
                match found {
                    Found::FirstBad { bad, .. } => assert_eq!(bad, first_bad),
                    Found::Ambiguous { candidates, .. } => {
                        assert!(candidates.contains(&first_bad));
                        assert!(candidates[..candidates.len() - 1]
                            .iter()
                            .all(|c| skip.contains(c)));
                    }
                }
            }
        }
    }

    #[test]
    fn bad_order_is_refused() {
        assert!(Search::new(8, 5, 2).is_err());
        assert!(Search::new(8, 0, 8).is_err());
        assert_eq!(Search::max_steps(0, 7), 3);
        assert_eq!(Search::max_steps(0, 1), 0);
    }
}
