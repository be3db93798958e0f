//! How long a review waits for the CPU before anything of it runs. With one worker (a pod
//! limited to one CPU) reviews are evaluated on the worker itself, so under overload they queue
//! as ready tasks and sockets, where no counter of ours sees them; the lag of a timer on the
//! same runtime is that wait. A review that arrives while the lag is past
//! `admission.maxQueueWait` is shed at once: a fast, explicit denial instead of an answer the
//! apiserver has stopped waiting for, and the queue drains as soon as the load drops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// How often the lag is sampled: often enough to notice a queue within a fraction of the
/// default 500 ms bound, rarely enough to cost nothing.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Debug)]
pub struct Pressure {
    max_queue_wait: Duration,
    lag_micros: AtomicU64,
}

impl Pressure {
    pub fn new(max_queue_wait: Duration) -> Pressure {
        Pressure {
            max_queue_wait,
            lag_micros: AtomicU64::new(0),
        }
    }

    /// The longest a review may wait for the CPU, as configured.
    pub fn max_queue_wait(&self) -> Duration {
        self.max_queue_wait
    }

    /// The last lag measured on the serving runtime (zero where no probe runs).
    pub fn lag(&self) -> Duration {
        Duration::from_micros(self.lag_micros.load(Ordering::Relaxed))
    }

    /// Whether work on the serving runtime now waits longer than `admission.maxQueueWait`.
    pub fn overloaded(&self) -> bool {
        self.lag() > self.max_queue_wait
    }

    /// Measures the lag until `stop` turns true; spawned on the runtime that serves reviews.
    pub async fn probe(&self, mut stop: watch::Receiver<bool>) {
        loop {
            let due = Instant::now() + PROBE_INTERVAL;
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let lag = Instant::now().saturating_duration_since(due);
            self.lag_micros
                .store(lag.as_micros().try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn a_runtime_held_past_the_bound_reads_as_overloaded_until_it_is_free_again() {
        let pressure = Arc::new(Pressure::new(Duration::from_millis(50)));
        let (stop_tx, stop) = watch::channel(false);
        let probe = tokio::spawn({
            let pressure = pressure.clone();
            async move { pressure.probe(stop).await }
        });
        tokio::time::sleep(PROBE_INTERVAL * 3).await;
        assert_eq!(pressure.lag(), Duration::ZERO);
        assert!(!pressure.overloaded());

        // The clock moves 120 ms while no task runs, as when one worker evaluates a queue of
        // reviews: the probe's timer fires that much late.
        tokio::time::advance(Duration::from_millis(120)).await;
        tokio::task::yield_now().await;
        assert!(pressure.lag() > Duration::from_millis(100), "lag {:?}", pressure.lag());
        assert!(pressure.overloaded());

        // Free again: the next samples see no wait.
        tokio::time::sleep(PROBE_INTERVAL * 2).await;
        assert!(!pressure.overloaded(), "lag {:?}", pressure.lag());
        stop_tx.send(true).unwrap();
        probe.await.unwrap();
    }
}
