//! How current each cached watch of the Kubernetes API is. When the API cannot be reached, the
//! watches (namespace labels, PolicyExceptions, the inventory) keep answering from what they
//! last read, so decisions go on; this records since when each one has been failing, for
//! readiness and the metrics to say what is stale.
//!
//! A watch reports no event when it reconnects (it resumes where it was), so a failing watch
//! counts as current again at its next event, or once no error has come for
//! [`RECOVERED_AFTER`]: it retries at least every [`MAX_RETRY`], and each attempt fails within
//! [`API_READ_TIMEOUT`] (within [`API_CONNECT_TIMEOUT`] on a new connection), so a watch still
//! failing reports an error within that time.
//!
//! An apiserver that hangs (stopped, deadlocked, a network path that drops packets) sends no
//! error: it goes silent. Each watch asks the server to end it after [`WATCH_TIMEOUT`], and the
//! client gives up on a read silent for [`API_READ_TIMEOUT`], longer than that: a healthy watch
//! is never silent that long, so a hung apiserver turns into errors within about a minute
//! (kube's defaults: about five minutes, or never for a request waiting on a pooled connection).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};

/// The longest wait between two attempts of a failing watch.
pub const MAX_RETRY: Duration = Duration::from_secs(5);
/// The Kubernetes API client's connection timeout, TLS handshake included (kube's default is
/// 30 s).
pub const API_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a watch runs before the server ends it (and it is resumed): kube's default is 290 s.
pub const WATCH_TIMEOUT: Duration = Duration::from_secs(25);
/// The longest the client waits for a read on a connection to the API (kube's default: forever).
pub const API_READ_TIMEOUT: Duration = Duration::from_secs(40);
/// No error for this long after one: the watch is back. Longer than one attempt can hang
/// before it fails, plus the wait before the next.
pub const RECOVERED_AFTER: Duration = Duration::from_secs(50);
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// One watch's failures.
#[derive(Debug)]
pub struct WatchHealth {
    watch: String,
    failing: Mutex<Option<Failing>>,
}

#[derive(Debug, Clone)]
struct Failing {
    since: Instant,
    last: Instant,
    error: String,
}

/// A watch that has not heard from the API for `for_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub watch: String,
    pub for_: Duration,
    pub error: String,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: no answer from the Kubernetes API for {} s ({}); decisions use what was read before",
            self.watch,
            self.for_.as_secs(),
            self.error
        )
    }
}

impl WatchHealth {
    pub fn new(watch: impl Into<String>) -> WatchHealth {
        WatchHealth {
            watch: watch.into(),
            failing: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.watch
    }

    /// Records one item of the watch's stream: an event (current again) or an error.
    pub fn observe<T, E: std::fmt::Display>(&self, item: &Result<T, E>) {
        self.observe_at(item.as_ref().err().map(ToString::to_string), Instant::now());
    }

    fn observe_at(&self, error: Option<String>, now: Instant) {
        let mut failing = self.failing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match error {
            None => *failing = None,
            Some(error) => {
                let since = match failing.as_ref() {
                    Some(earlier) if now.duration_since(earlier.last) < RECOVERED_AFTER => earlier.since,
                    _ => now,
                };
                *failing = Some(Failing {
                    since,
                    last: now,
                    error,
                });
            }
        }
    }

    /// `stream` (a watch's), each of its items recorded here as it passes.
    pub fn observing<S, T, E>(self: &Arc<Self>, stream: S) -> impl Stream<Item = Result<T, E>>
    where
        S: Stream<Item = Result<T, E>>,
        E: std::fmt::Display,
    {
        let health = self.clone();
        stream.inspect(move |item| health.observe(item))
    }

    /// Whether the watch is failing, and since when.
    pub fn stale(&self) -> Option<Stale> {
        self.stale_at(Instant::now())
    }

    fn stale_at(&self, now: Instant) -> Option<Stale> {
        let failing = self.failing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let failing = failing
            .as_ref()
            .filter(|f| now.duration_since(f.last) < RECOVERED_AFTER)?;
        Some(Stale {
            watch: self.watch.clone(),
            for_: now.duration_since(failing.since),
            error: failing.error.clone(),
        })
    }
}

/// The settings of every watch: ended by the server after [`WATCH_TIMEOUT`].
pub fn watcher_config() -> kube::runtime::watcher::Config {
    kube::runtime::watcher::Config::default().timeout(WATCH_TIMEOUT.as_secs() as u32)
}

/// A client configuration that turns a silent apiserver into errors: the connect and read
/// timeouts above.
pub fn bounded(mut config: kube::Config) -> kube::Config {
    config.connect_timeout = Some(API_CONNECT_TIMEOUT);
    config.read_timeout = Some(API_READ_TIMEOUT);
    config
}

/// The retry schedule of every watch: from 500 ms, doubling, to [`MAX_RETRY`]; back to the
/// start after an event. (kube's default goes to 30 s, with jitter: a webhook's few replicas
/// and watches gain less from sparing the API than they lose in minutes of stale labels.)
#[derive(Debug, Clone)]
pub struct Retry {
    next: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry { next: FIRST_RETRY }
    }
}

impl Iterator for Retry {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_RETRY);
        Some(wait)
    }
}

impl kube::runtime::utils::Backoff for Retry {
    fn reset(&mut self) {
        self.next = FIRST_RETRY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_is_stale_from_its_first_error_until_an_event() {
        let health = WatchHealth::new("namespaces");
        let start = Instant::now();
        assert_eq!(health.stale_at(start), None);
        health.observe_at(Some("connection refused".into()), start);
        health.observe_at(Some("connection refused".into()), start + Duration::from_secs(4));
        let stale = health.stale_at(start + Duration::from_secs(6)).unwrap();
        assert_eq!(stale.for_, Duration::from_secs(6), "counted from the first error");
        assert!(stale
            .to_string()
            .contains("namespaces: no answer from the Kubernetes API for 6 s (connection refused)"));
        health.observe_at(None, start + Duration::from_secs(7));
        assert_eq!(health.stale_at(start + Duration::from_secs(7)), None);
    }

    #[test]
    fn a_watch_that_errs_no_more_is_current_again() {
        let health = WatchHealth::new("namespaces");
        let start = Instant::now();
        health.observe_at(Some("connection refused".into()), start);
        assert!(health
            .stale_at(start + RECOVERED_AFTER - Duration::from_millis(1))
            .is_some());
        assert_eq!(health.stale_at(start + RECOVERED_AFTER), None);
        // A later failure is a new one.
        let later = start + RECOVERED_AFTER * 2;
        health.observe_at(Some("timed out".into()), later);
        assert_eq!(health.stale_at(later).unwrap().for_, Duration::ZERO);
    }

    #[test]
    fn retries_double_to_the_bound_and_start_over_after_an_event() {
        use kube::runtime::utils::Backoff;
        let mut retry = Retry::default();
        let waits: Vec<_> = retry.by_ref().take(6).map(|d| d.as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 5000, 5000]);
        retry.reset();
        assert_eq!(retry.next(), Some(FIRST_RETRY));
        // Within the window that tells a failing watch from a recovered one.
        assert!(MAX_RETRY + API_READ_TIMEOUT < RECOVERED_AFTER);
        assert!(API_CONNECT_TIMEOUT < API_READ_TIMEOUT);
        // A healthy watch is ended by the server before a read times out.
        assert!(WATCH_TIMEOUT + Duration::from_secs(5) < API_READ_TIMEOUT);
    }
}
