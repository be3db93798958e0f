//! The one bounded wait of the tests: call a probe every `interval` until it yields a value, for
//! at most `timeout` (so every wait is bounded in time, and in count by `timeout / interval`).
//!
//! [`poll`] panics naming what it waited for and for how long; [`try_poll`] returns `None`
//! instead, for a caller whose own assertion afterwards says more (the last value seen, say).
//! The async variants sleep on tokio's timer, so a test's other tasks keep running meanwhile.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Calls `probe` every `interval` until it returns `Some`, for at most `timeout`; panics with
/// "gave up waiting for {what} after ..." otherwise.
#[track_caller]
pub fn poll<T>(what: &str, timeout: Duration, interval: Duration, probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    match try_poll(timeout, interval, probe) {
        Some(value) => value,
        None => gave_up(what, started, timeout, interval),
    }
}

/// [`poll`] that returns `None` once `timeout` has passed.
pub fn try_poll<T>(timeout: Duration, interval: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return None;
        }
        std::thread::sleep(interval.min(left));
    }
}

/// [`poll`] for async probes (`async || ...`).
pub async fn poll_async<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    match try_poll_async(timeout, interval, probe).await {
        Some(value) => value,
        None => gave_up(what, started, timeout, interval),
    }
}

/// [`try_poll`] for async probes.
pub async fn try_poll_async<T>(
    timeout: Duration,
    interval: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return None;
        }
        tokio::time::sleep(interval.min(left)).await;
    }
}

#[track_caller]
fn gave_up(what: &str, started: Instant, timeout: Duration, interval: Duration) -> ! {
    panic!(
        "gave up waiting for {what} after {:.1} s (bound {timeout:?}, polled every {interval:?})",
        started.elapsed().as_secs_f64()
    )
}
