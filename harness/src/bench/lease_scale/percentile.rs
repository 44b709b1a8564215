//! Percentiles of a sample, by the nearest-rank method: the value at rank ⌈p·n⌉ of the
//! sorted sample, so p99 of 100 values is the 99th smallest, and always a measured value.

/// The `p`-th percentile (0 < p ≤ 100) of `values`, `None` for an empty sample.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// p50, p99 and the maximum of a sample of milliseconds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Spread {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        Spread {
            count: values.len(),
            p50_ms: percentile(values, 50.0).unwrap_or(f64::NAN),
            p99_ms: percentile(values, 99.0).unwrap_or(f64::NAN),
            max_ms: percentile(values, 100.0).unwrap_or(f64::NAN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_on_one_to_a_hundred() {
        // Shuffled: the function sorts.
        let v: Vec<f64> = (1..=100).map(|i| ((i * 37) % 100 + 1) as f64).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 1.0), Some(1.0));
    }

    #[test]
    fn small_samples_take_a_measured_value() {
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[5.0, 1.0], 50.0), Some(1.0));
        assert_eq!(percentile(&[5.0, 1.0], 99.0), Some(5.0));
        // Ten values: p99 is the largest, one slow grant in ten shows.
        let v = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 80.0];
        assert_eq!(percentile(&v, 99.0), Some(80.0));
        assert_eq!(percentile(&v, 50.0), Some(1.0));
    }

    #[test]
    fn an_empty_sample_or_a_bad_p_has_none() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1.0], 0.0), None);
        assert_eq!(percentile(&[1.0], 101.0), None);
        let s = Spread::of(&[]);
        assert_eq!(s.count, 0);
        assert!(s.p99_ms.is_nan());
    }
}
