//! A bound on how often registry verifications start: at most `per_second`, evenly spaced.
//! The audit sets one so that a pass over a large fleet never floods a registry; the webhook
//! has none (an admission waits for nothing but its own deadline).

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Pacer {
    period: Duration,
    /// When the next start may be (`None`: nothing started yet).
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// At most `per_second` starts a second (a positive, finite rate).
    pub fn new(per_second: f64) -> Pacer {
        Pacer {
            period: Duration::from_secs_f64(1.0 / per_second),
            next: Mutex::new(None),
        }
    }

    /// Waits for this start's turn.
    pub async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = next.map_or(now, |next| next.max(now));
            *next = Some(at + self.period);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn starts_are_spaced_by_the_rate_and_a_pause_is_not_saved_up() {
        let pacer = std::sync::Arc::new(Pacer::new(2.0));
        let started = Instant::now();
        // Five starts from three tasks: the first at once, then one every half second.
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move { pacer.wait().await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        // After ten idle seconds the next start is at once, and the one after waits again.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let idle = Instant::now();
        pacer.wait().await;
        assert_eq!(idle.elapsed(), Duration::ZERO);
        pacer.wait().await;
        assert_eq!(idle.elapsed(), Duration::from_millis(500));
    }
}
