//! The load client the tests and benches share: AdmissionReviews sent over HTTPS with
//! keep-alive at a constant rate (open loop: a request is sent when it is due, whether or not
//! earlier ones were answered, as the apiserver does), each answer classified and its latency
//! counted from when it was due, so a stalled server cannot hide its queue (no coordinated
//! omission). Bounded: at most `max_in_flight` requests at once (a request due beyond it is
//! counted as `ClientLimit`, never queued in the client), and every request times out.
//!
//! By default it opens a connection whenever all of its own are busy and keeps idle ones, as
//! the apiserver's client does. [`Client::holding`] caps the connections instead: a request
//! due while all are busy waits for one (that wait counted in its latency), so after the
//! first burst the client holds the same set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What one request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Allowed,
    Denied,
    /// Denied from `portcullis.overload` with 429 in the status: shed under overload.
    Shed,
    /// An HTTP status other than 200 (the body was not an answer).
    Status(u16),
    /// The connection was closed while it was being set up (the server refuses connections
    /// at the door when too many wait for their TLS handshake): fast, but not an answer.
    Refused,
    /// No answer: the connection failed or the request timed out.
    Failed,
    /// Not sent: `max_in_flight` requests were already waiting.
    ClientLimit,
}

impl Answer {
    /// Whether the server answered the review (allowed, denied or shed).
    pub fn is_answer(self) -> bool {
        matches!(self, Answer::Allowed | Answer::Denied | Answer::Shed)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When the request was due, from the attack's start.
    pub due: Duration,
    /// Which of the attack's targets it sent.
    pub target: usize,
    pub latency: Duration,
    pub answer: Answer,
}

/// In which order an attack sends its targets.
#[derive(Debug, Clone, Copy)]
pub enum Order {
    /// The first, the second, ... and again.
    InTurn,
    /// Each round of the targets in a new random order, the same in every run (seeded): no
    /// stretch of costly reviews comes back at the same place in every round.
    Shuffled { seed: u64 },
}

/// The next target of an attack, round after round.
struct Rounds {
    order: Vec<usize>,
    at: usize,
    shuffle: Option<fastrand::Rng>,
}

impl Rounds {
    fn new(order: Order, targets: usize) -> Rounds {
        let shuffle = match order {
            Order::InTurn => None,
            Order::Shuffled { seed } => Some(fastrand::Rng::with_seed(seed)),
        };
        Rounds {
            order: (0..targets).collect(),
            at: targets,
            shuffle,
        }
    }

    fn next(&mut self) -> usize {
        if self.at == self.order.len() {
            self.at = 0;
            if let Some(rng) = &mut self.shuffle {
                rng.shuffle(&mut self.order);
            }
        }
        self.at += 1;
        self.order[self.at - 1]
    }
}

/// One review to send, and what it is called in reports.
#[derive(Clone)]
pub struct Target {
    pub name: String,
    pub body: Arc<Vec<u8>>,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    max_in_flight: u32,
    /// When held to a set of connections: one permit per connection.
    connections: Option<Arc<tokio::sync::Semaphore>>,
}

impl Client {
    /// A client of `url` (`https://localhost:PORT/validate?timeout=10s`) trusting `ca_pem`;
    /// each request times out after `timeout`.
    pub fn new(url: &str, ca_pem: &str, timeout: Duration, max_in_flight: usize) -> Client {
        Client::build(url, ca_pem, timeout, max_in_flight, None)
    }

    /// [`Client::new`] that never has more than `connections` open, and keeps them however long
    /// they are idle (the server closes a connection idle for a minute; it is opened again when
    /// needed).
    pub fn holding(url: &str, ca_pem: &str, timeout: Duration, max_in_flight: usize, connections: usize) -> Client {
        Client::build(url, ca_pem, timeout, max_in_flight, Some(connections))
    }

    fn build(url: &str, ca_pem: &str, timeout: Duration, max_in_flight: usize, connections: Option<usize>) -> Client {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("the CA certificate");
        let mut http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .http1_only()
            .pool_max_idle_per_host(connections.unwrap_or(max_in_flight))
            .timeout(timeout);
        if connections.is_some() {
            http = http.pool_idle_timeout(None);
        }
        let http = http.build().expect("an HTTP client");
        Client {
            http,
            url: url.to_string(),
            max_in_flight: u32::try_from(max_in_flight).expect("max_in_flight fits a semaphore's u32"),
            connections: connections.map(|n| Arc::new(tokio::sync::Semaphore::new(n))),
        }
    }

    /// Sends one review and waits for its answer (closed loop: the capacity measurement).
    pub async fn send(&self, target: &Target) -> Answer {
        send(&self.http, &self.url, target.body.clone()).await
    }

    /// Sends `targets` in turn at `rate` per second for `duration`, then waits for the last
    /// answers; the samples in the order they were due. Dropped before the end, it sends
    /// nothing more.
    ///
    /// The requests are started by a thread of its own that sleeps until each is due:
    /// tokio's timer wakes no finer than a millisecond, so at hundreds of requests a second it
    /// sent them up to a millisecond late and in bunches, and that lateness, counted from when
    /// they were due, was most of the median latency (docs/reliability.md, "The load client's
    /// clock").
    pub async fn attack(&self, targets: &[Target], rate: f64, duration: Duration) -> Vec<Sample> {
        self.attack_in(Order::InTurn, targets, rate, duration).await
    }

    /// [`Client::attack`], the targets sent in `order`.
    pub async fn attack_in(&self, order: Order, targets: &[Target], rate: f64, duration: Duration) -> Vec<Sample> {
        assert!(rate > 0.0 && !targets.is_empty());
        let interval = Duration::from_secs_f64(1.0 / rate);
        let total = (duration.as_secs_f64() * rate).round() as usize;
        let samples = Arc::new(Mutex::new(Vec::with_capacity(total)));
        let in_flight = Arc::new(tokio::sync::Semaphore::new(self.max_in_flight as usize));
        let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
        let (paced, pacer_done) = tokio::sync::oneshot::channel();
        {
            let (client, targets, samples, in_flight, stop) = (
                self.clone(),
                targets.to_vec(),
                samples.clone(),
                in_flight.clone(),
                stop.0.clone(),
            );
            let runtime = tokio::runtime::Handle::current();
            std::thread::spawn(move || {
                let mut rounds = Rounds::new(order, targets.len());
                let started = Instant::now();
                for index in 0..total {
                    let due = interval * index as u32;
                    if let Some(early) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(early);
                    }
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let target = rounds.next();
                    let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                        let answer = Answer::ClientLimit;
                        let sample = Sample {
                            due,
                            target,
                            latency: Duration::ZERO,
                            answer,
                        };
                        samples.lock().unwrap().push(sample);
                        continue;
                    };
                    let (http, url, body) = (client.http.clone(), client.url.clone(), targets[target].body.clone());
                    let (samples, connections) = (samples.clone(), client.connections.clone());
                    runtime.spawn(async move {
                        let _connection = match connections {
                            Some(connections) => Some(connections.acquire_owned().await.expect("the semaphore")),
                            None => None,
                        };
                        let answer = send(&http, &url, body).await;
                        let latency = started.elapsed().saturating_sub(due);
                        samples.lock().unwrap().push(Sample {
                            due,
                            target,
                            latency,
                            answer,
                        });
                        // Only now: all permits back means every sample is in.
                        drop(permit);
                    });
                }
                let _ = paced.send(());
            });
        }
        pacer_done.await.expect("the pacer thread");
        // Every permit back: every request answered or timed out.
        let _answered = in_flight.acquire_many(self.max_in_flight).await.expect("the semaphore");
        let mut samples = std::mem::take(&mut *samples.lock().unwrap());
        samples.sort_by_key(|s| s.due);
        samples
    }
}

/// Tells the pacer to stop when the attack is dropped before its end (a failed test).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn send(http: &reqwest::Client, url: &str, body: Arc<Vec<u8>>) -> Answer {
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.as_ref().clone())
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) if error.is_connect() && !error.is_timeout() => return Answer::Refused,
        Err(_) => return Answer::Failed,
    };
    let status = response.status().as_u16();
    let Ok(bytes) = response.bytes().await else {
        return Answer::Failed;
    };
    if status != 200 {
        return Answer::Status(status);
    }
    classify(&serde_json::from_slice(&bytes).unwrap_or(Value::Null)).unwrap_or(Answer::Status(status))
}

/// Allowed, denied or shed, from an AdmissionReview answer.
pub fn classify(answer: &Value) -> Option<Answer> {
    let response = answer.get("response")?;
    Some(match response.get("allowed")?.as_bool()? {
        true => Answer::Allowed,
        false if response["status"]["code"] == 429 => Answer::Shed,
        false => Answer::Denied,
    })
}

/// Counts and latencies of a set of samples.
#[derive(Debug, Default)]
pub struct Summary {
    pub requests: usize,
    pub allowed: usize,
    pub denied: usize,
    pub shed: usize,
    /// Connections refused while being set up (also counted in `errors`).
    pub refused: usize,
    /// Not answered with an AdmissionReview: other statuses, refusals, failures, the client's
    /// limit.
    pub errors: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(samples: &[Sample]) -> Summary {
        let count = |answer: Answer| samples.iter().filter(|s| s.answer == answer).count();
        let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
        latencies.sort();
        let at = |q: f64| match latencies.is_empty() {
            true => Duration::ZERO,
            false => latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)],
        };
        let (allowed, denied, shed) = (count(Answer::Allowed), count(Answer::Denied), count(Answer::Shed));
        Summary {
            requests: samples.len(),
            allowed,
            denied,
            shed,
            refused: count(Answer::Refused),
            errors: samples.len() - allowed - denied - shed,
            p50: at(0.5),
            p99: at(0.99),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }

    /// The samples that are not answers, by kind, for a failure message.
    pub fn errors_of(samples: &[Sample]) -> Vec<(Answer, usize)> {
        let mut errors: Vec<(Answer, usize)> = Vec::new();
        for sample in samples {
            if sample.answer.is_answer() {
                continue;
            }
            match errors.iter_mut().find(|(a, _)| *a == sample.answer) {
                Some((_, n)) => *n += 1,
                None => errors.push((sample.answer, 1)),
            }
        }
        errors
    }
}

/// Reviews a scrape of portcullis's metrics counts as answered (every
/// `portcullis_admission_requests_total` series): each review sent is counted exactly once.
pub fn reviews_counted(scrape: &str) -> f64 {
    scrape
        .lines()
        .filter(|line| line.starts_with("portcullis_admission_requests_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What a process holds, from /proc: resident memory, open descriptors, threads.
#[derive(Debug, Clone, Copy)]
pub struct Holdings {
    pub rss_kib: u64,
    /// Of the RSS, transparent huge pages (2 MiB each): 0 when the process has them off.
    pub huge_kib: u64,
    pub fds: usize,
    pub threads: usize,
}

impl Holdings {
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

/// What process `pid` holds now, if it still runs.
pub fn holdings(pid: u32) -> Option<Holdings> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    // A kernel without `smaps_rollup` (before 4.14) still has the rest.
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    Some(Holdings {
        rss_kib: proc_field(&status, "VmRSS:")?,
        huge_kib: proc_field(&rollup, "AnonHugePages:").unwrap_or(0),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count(),
        threads: proc_field(&status, "Threads:")? as usize,
    })
}

/// The number of field `name` (`VmRSS:`) in a /proc file's `text` (`status`, `smaps_rollup`),
/// without its `kB`.
pub fn proc_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The least-squares slope of `points` (x, y): y's change per unit of x.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mean_x, mean_y) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let covariance: f64 = points.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let variance: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    if variance == 0.0 {
        0.0
    } else {
        covariance / variance
    }
}
