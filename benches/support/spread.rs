//! How the benchmarks report a figure over rounds: the median with its range (each bench that
//! runs rounds includes this file with `#[path]`).

/// The median of `values` with their range, to `digits` decimals.
pub fn spread(values: impl IntoIterator<Item = f64>, digits: usize) -> String {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    format!(
        "{:.digits$} ({:.digits$} to {:.digits$})",
        values[values.len() / 2],
        values[0],
        values[values.len() - 1]
    )
}
