//! How long a review waits for the CPU before anything of it runs. With one worker (a pod
//! limited to one CPU) reviews are evaluated on the worker itself until it falls behind (then
//! on the blocking pool, so that connections are not queued behind evaluations), so they queue
//! as ready tasks and sockets, where no counter of ours sees them; how late a timer on the same
//! runtime is is that wait. The lateness is read from the clock when a review asks, not when the
//! timer's task finally runs: a task that runs only once per pass over a long queue would report
//! each pass's wait only after the pass, and the next pass would be let in whole. A review that
//! arrives while the lag is past `admission.maxQueueWait` is shed at once: a fast, explicit
//! denial instead of an answer the apiserver has stopped waiting for, and the queue drains as
//! soon as the load drops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// How often the timer is set: often enough to notice a queue within a fraction of the
/// default 500 ms bound, rarely enough to cost nothing.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// A lag past this (or past half of `admission.maxQueueWait`, when that is shorter) means the
/// worker has a queue of its own: evaluations stop running on it (see `router::decide_before`).
/// Well above a review's cost, below the default shedding bound.
const FALLING_BEHIND: Duration = Duration::from_millis(20);
/// No probe running: no lag.
const NOT_DUE: u64 = u64::MAX;

#[derive(Debug)]
pub struct Pressure {
    max_queue_wait: Duration,
    /// When the probe's timer is due, in microseconds since `epoch`.
    due_micros: AtomicU64,
    epoch: Instant,
}

impl Pressure {
    pub fn new(max_queue_wait: Duration) -> Pressure {
        Pressure {
            max_queue_wait,
            due_micros: AtomicU64::new(NOT_DUE),
            epoch: Instant::now(),
        }
    }

    /// The longest a review may wait for the CPU, as configured.
    pub fn max_queue_wait(&self) -> Duration {
        self.max_queue_wait
    }

    /// How long the serving runtime has owed the probe its turn (zero where no probe runs).
    pub fn lag(&self) -> Duration {
        self.lag_at(Instant::now())
    }

    fn lag_at(&self, now: Instant) -> Duration {
        match self.due_micros.load(Ordering::Relaxed) {
            NOT_DUE => Duration::ZERO,
            due => now.saturating_duration_since(self.epoch + Duration::from_micros(due)),
        }
    }

    /// Whether work on the serving runtime now waits longer than `admission.maxQueueWait`.
    pub fn overloaded(&self) -> bool {
        self.lag() > self.max_queue_wait
    }

    /// Whether the serving runtime has a queue: work waits more than a few reviews' time (and
    /// always before reviews are shed).
    pub fn falling_behind(&self) -> bool {
        self.falling_behind_at(Instant::now())
    }

    fn falling_behind_at(&self, now: Instant) -> bool {
        self.lag_at(now) > FALLING_BEHIND.min(self.max_queue_wait / 2)
    }

    /// Keeps a timer set on the serving runtime until `stop` turns true; spawned there.
    pub async fn probe(&self, mut stop: watch::Receiver<bool>) {
        loop {
            let due = Instant::now() + PROBE_INTERVAL;
            let micros = due.saturating_duration_since(self.epoch).as_micros();
            self.due_micros
                .store(micros.try_into().unwrap_or(NOT_DUE - 1), Ordering::Relaxed);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        self.due_micros.store(NOT_DUE, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_worker_falls_behind_past_20_ms_or_half_the_shedding_bound() {
        let owed = |pressure: &Pressure, lag: Duration| {
            pressure.due_micros.store(0, Ordering::Relaxed);
            pressure.falling_behind_at(pressure.epoch + lag)
        };
        let default = Pressure::new(Duration::from_millis(500));
        assert!(!owed(&default, Duration::from_millis(19)));
        assert!(owed(&default, Duration::from_millis(21)));
        // A bound of 10 ms: evaluations leave the worker before reviews are shed.
        let tight = Pressure::new(Duration::from_millis(10));
        assert!(!owed(&tight, Duration::from_millis(4)));
        assert!(owed(&tight, Duration::from_millis(6)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_lag_is_how_long_the_timer_has_been_owed_its_turn() {
        let pressure = Arc::new(Pressure::new(Duration::from_millis(50)));
        assert_eq!(pressure.lag(), Duration::ZERO, "no probe, no lag");
        let (stop_tx, stop) = watch::channel(false);
        let probe = tokio::spawn({
            let pressure = pressure.clone();
            async move { pressure.probe(stop).await }
        });
        tokio::time::sleep(PROBE_INTERVAL * 3 + PROBE_INTERVAL / 2).await;
        assert_eq!(pressure.lag(), Duration::ZERO);
        assert!(!pressure.overloaded());
        assert!(!pressure.falling_behind());

        // Read while the runtime is held: 120 ms from now, the timer due within 10 ms has been
        // owed its turn for at least 110 ms, before its task has run at all.
        let later = Instant::now() + Duration::from_millis(120);
        assert!(
            pressure.lag_at(later) >= Duration::from_millis(110),
            "{:?}",
            pressure.lag_at(later)
        );
        assert!(pressure.lag_at(later) > pressure.max_queue_wait());
        assert!(pressure.falling_behind_at(later));

        // Once the probe has had its turn, no lag is owed.
        tokio::time::sleep(PROBE_INTERVAL * 2).await;
        assert!(!pressure.overloaded(), "lag {:?}", pressure.lag());
        stop_tx.send(true).unwrap();
        probe.await.unwrap();
        assert_eq!(pressure.lag(), Duration::ZERO, "a stopped probe owes nothing");
    }
}
