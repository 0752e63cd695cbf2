//! A lock-free histogram with fixed power-of-two buckets, for pipeline metrics that the
//! service exports in Prometheus format. Written by hand because it must be recordable from
//! the writer thread without locks or allocation, and Prometheus needs only cumulative
//! bucket counts, not the exact quantiles a full HDR histogram keeps.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bucket `i` counts values `<= 2^i`; the last bucket counts everything larger.
pub const BUCKETS: usize = 32;

#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, value: u64) {
        let index = if value <= 1 { 0 } else { (64 - (value - 1).leading_zeros()) as usize };
        self.buckets[index.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    /// `(upper bound, cumulative count)` per bucket, the shape Prometheus wants.
    pub fn cumulative(&self) -> Vec<(u64, u64)> {
        let mut total = 0;
        (0..BUCKETS)
            .map(|index| {
                total += self.buckets[index].load(Ordering::Relaxed);
                (1u64 << index, total)
            })
            .collect()
    }

    /// The bucket bound at or below which `permille` of the values lie (`990` for p99): an
    /// upper bound on that quantile, within a factor of two. `None` when empty.
    pub fn quantile_bound(&self, permille: u64) -> Option<u64> {
        quantile_bound(&self.cumulative(), permille)
    }
}

/// [`Histogram::quantile_bound`] over cumulative buckets, so that histograms can be merged
/// (by adding their cumulative counts) before the quantile is read.
pub fn quantile_bound(cumulative: &[(u64, u64)], permille: u64) -> Option<u64> {
    let total = cumulative.last().map(|(_, count)| *count).filter(|count| *count > 0)?;
    let wanted = (total * permille.min(1000)).div_ceil(1000).max(1);
    cumulative.iter().find(|(_, count)| *count >= wanted).map(|(bound, _)| *bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_power_of_two_buckets() {
        let histogram = Histogram::default();
        for value in [0, 1, 2, 3, 4, 5, 1000] {
            histogram.record(value);
        }
        let cumulative = histogram.cumulative();
        assert_eq!(cumulative[0], (1, 2)); // 0, 1
        assert_eq!(cumulative[1], (2, 3)); // 2
        assert_eq!(cumulative[2], (4, 5)); // 3, 4
        assert_eq!(cumulative[3], (8, 6)); // 5
        assert_eq!(cumulative[10], (1024, 7)); // 1000
        assert_eq!(histogram.sum(), 1015);
        assert_eq!(histogram.quantile_bound(500), Some(4), "the 4th of 7 values is 3");
        assert_eq!(histogram.quantile_bound(990), Some(1024));
        assert_eq!(Histogram::default().quantile_bound(990), None);
    }
}
