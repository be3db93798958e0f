//! The nearest-rank percentile every benchmark reports (each includes this file with `#[path]`).

use std::time::Duration;

/// The `q` quantile (0 to 1) of `sorted`, which must not be empty.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    assert!(!sorted.is_empty(), "no samples");
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}
