//! The decision path under load, beside its two floors measured in the same run:
//! - full: `portcullis serve` (TLS, HTTP/1.1 keep-alive, default library) deciding a 10 KB Pod review;
//! - floor 1: the same server stack answering a constant allow (TLS + HTTP + client cost);
//! - floor 2: the engine alone: regorus running the policy set's one-pass rule (compiled) on the
//!   same input document, already converted for it, in-process.
//!
//! The aims: the in-process decision within 1.3x of the engine floor, and the full latency
//! within 1.5x of the two floors combined. The sequential part runs in interleaved rounds and
//! reports the ratio of each. Run with `make bench`.

#[path = "support/percentile.rs"]
mod percentile;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

use portcullis::admission::review::Review;
use portcullis::config::Config;
use portcullis::namespaces::StaticNamespaces;
use portcullis::policy::input::Request;
use portcullis::policy::{engine, Source};
use portcullis::server::{self, certs, Server};

use percentile::percentile;

const REVIEW: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/reviews/policy/pod-10kb.json"
);
/// Every loop is bounded in count and in time.
const WARMUP: usize = 300;
const SEQUENTIAL: usize = 3000;
const CONCURRENT: usize = 8000;
const CONCURRENCY: usize = 8;
const TIME_LIMIT: Duration = Duration::from_secs(60);
/// The sequential measurements are taken in rounds, full and floors interleaved, so that a
/// machine that speeds up or slows down during the run moves all three alike; the spread of
/// the per-round ratios says how far one number can be trusted.
const ROUNDS: usize = 5;

struct Stats {
    count: usize,
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

/// Latencies of one measurement and the wall time they took.
#[derive(Default)]
struct Run {
    samples: Vec<Duration>,
    wall: Duration,
}

impl Run {
    fn add(&mut self, other: Run) {
        self.samples.extend(other.samples);
        self.wall += other.wall;
    }

    fn stats(&self) -> Stats {
        let mut samples = self.samples.clone();
        samples.sort();
        Stats {
            count: samples.len(),
            p50: percentile(&samples, 0.50),
            p99: percentile(&samples, 0.99),
            per_second: samples.len() as f64 / self.wall.as_secs_f64(),
        }
    }
}

fn main() {
    let body = std::fs::read(REVIEW).expect("fixture");
    let cert_dir = tempfile::tempdir().expect("tempdir");
    let bundle = certs::generate(&["localhost"]).expect("certificates");
    std::fs::write(cert_dir.path().join("tls.crt"), &bundle.cert).expect("write");
    std::fs::write(cert_dir.path().join("tls.key"), &bundle.key).expect("write");
    let yaml = format!(
        "images: {{ registries: {{ allow: [registry.example.com] }} }}\nlogging: {{ level: warn }}\nserver: {{ listen: 127.0.0.1:0, metricsListen: 127.0.0.1:0, tls: {{ certFile: {0}/tls.crt, keyFile: {0}/tls.key }} }}\n",
        cert_dir.path().display()
    );
    let settings = Config::from_yaml(&yaml)
        .expect("config")
        .validate(false)
        .expect("valid config");

    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // The full decision path.
    let policies = portcullis::admission::setup::load_policies(&Source::Embedded, &settings).expect("policies");
    let state = server::app_state(&settings, policies, Arc::new(StaticNamespaces::default())).expect("state");
    let reviewer = state.reviewer.clone();
    let (stop, stopped) = watch::channel(false);
    let full = server_runtime
        .block_on(Server::bind(state, settings.clone(), Source::Embedded))
        .expect("bind");
    let full_addr = full.webhook_addr().expect("addr");
    server_runtime.spawn(full.run(stopped.clone()));

    // Floor 1: the same stack answering a constant allow.
    let policies = portcullis::admission::setup::load_policies(&Source::Embedded, &settings).expect("policies");
    let constant_state = server::app_state(&settings, policies, Arc::new(StaticNamespaces::default())).expect("state");
    let answer = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": "constant", "allowed": true}});
    let constant_router = Router::new().route(
        "/validate",
        post(move |_body: axum::body::Bytes| async move { Json(answer) }),
    );
    let constant = server_runtime
        .block_on(Server::bind(constant_state, settings.clone(), Source::Embedded))
        .expect("bind")
        .with_webhook_router(constant_router);
    let constant_addr = constant.webhook_addr().expect("addr");
    server_runtime.spawn(constant.run(stopped));

    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(bundle.ca_cert.as_bytes()).expect("ca"))
        .build()
        .expect("client");
    let load = |addr: std::net::SocketAddr, concurrency: usize, total: usize| {
        client_runtime.block_on(drive(client.clone(), addr, body.clone(), concurrency, total))
    };
    // Floor 2: raw regorus on the same input the server builds.
    let request: Value = serde_json::from_slice::<Value>(&body).expect("json")["request"].clone();
    let review = portcullis::admission::review::parse(&body).expect("review");
    let raw = RawRegorus::new(reviewer.policies(), &reviewer.input(&request));

    load(full_addr, 1, WARMUP);
    load(constant_addr, 1, WARMUP);
    raw.measure(WARMUP);
    let (mut full_runs, mut constant_runs, mut regorus_runs, mut decide_runs) =
        (Run::default(), Run::default(), Run::default(), Run::default());
    let mut round_ratios = Vec::new();
    for _ in 0..ROUNDS {
        let (full, constant, regorus) = (
            load(full_addr, 1, SEQUENTIAL / ROUNDS),
            load(constant_addr, 1, SEQUENTIAL / ROUNDS),
            raw.measure(SEQUENTIAL / ROUNDS),
        );
        round_ratios.push(ratio(full.stats().p50, constant.stats().p50 + regorus.stats().p50));
        full_runs.add(full);
        constant_runs.add(constant);
        regorus_runs.add(regorus);
        decide_runs.add(decide_in_process(&reviewer, &review, SEQUENTIAL / ROUNDS));
    }
    let (full_seq, constant_seq, regorus, decide) = (
        full_runs.stats(),
        constant_runs.stats(),
        regorus_runs.stats(),
        decide_runs.stats(),
    );
    let full_conc = load(full_addr, CONCURRENCY, CONCURRENT).stats();
    let constant_conc = load(constant_addr, CONCURRENCY, CONCURRENT).stats();

    let _ = stop.send(true);
    let combined_p50 = constant_seq.p50 + regorus.p50;
    let combined_p99 = constant_seq.p99 + regorus.p99;
    let row = |name: &str, s: &Stats| {
        println!(
            "| {name} | {} | {:.0} | {:.0} | {:.0} |",
            s.count,
            us(s.p50),
            us(s.p99),
            s.per_second
        )
    };
    println!(
        "Review: {} ({} bytes), {} policies, client and server on one 2-core machine\n",
        REVIEW.rsplit('/').next().unwrap_or(""),
        body.len(),
        reviewer.policies().policies().len()
    );
    println!("| measurement | requests | p50 (µs) | p99 (µs) | req/s |");
    println!("|---|---|---|---|---|");
    row("full decision, 1 connection", &full_seq);
    row("floor: constant allow, 1 connection", &constant_seq);
    row("floor: the engine alone (one compiled pass), in-process", &regorus);
    row("the decision on the parsed review, in-process (no server)", &decide);
    row(&format!("full decision, {CONCURRENCY} connections"), &full_conc);
    row(
        &format!("floor: constant allow, {CONCURRENCY} connections"),
        &constant_conc,
    );
    println!();
    println!(
        "full p50 / (constant p50 + regorus p50) = {:.2} (aim: <= 1.5)",
        ratio(full_seq.p50, combined_p50)
    );
    println!(
        "full p99 / (constant p99 + regorus p99) = {:.2}",
        ratio(full_seq.p99, combined_p99)
    );
    println!(
        "in-process decide p50 / engine p50 = {:.2} (aim: <= 1.3; what the pipeline adds to the engine, without the server)",
        ratio(decide.p50, regorus.p50)
    );
    let mut sorted = round_ratios.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "p50 ratio per round ({ROUNDS} rounds of {} requests each, interleaved): {}; median {:.2}, spread {:.2} to {:.2}",
        SEQUENTIAL / ROUNDS,
        round_ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", "),
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1]
    );
    println!(
        "peak resident memory of the process (both servers and the client): {} MiB",
        peak_rss_mib()
    );
}

async fn drive(
    client: reqwest::Client,
    addr: std::net::SocketAddr,
    body: Vec<u8>,
    concurrency: usize,
    total: usize,
) -> Run {
    let url = format!("https://localhost:{}/validate?timeout=10s", addr.port());
    let started = Instant::now();
    let per_worker = total / concurrency;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(per_worker);
                for _ in 0..per_worker {
                    if started.elapsed() > TIME_LIMIT {
                        break;
                    }
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            samples.push(sent.elapsed());
                        }
                        other => panic!("benchmark request failed: {other:?}"),
                    }
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(total);
    for worker in workers {
        samples.extend(worker.await.expect("worker"));
    }
    Run {
        samples,
        wall: started.elapsed(),
    }
}

/// The engine alone: the set's one-pass rules on an input converted once, beforehand.
struct RawRegorus {
    set: Arc<engine::PolicySet>,
    input: regorus::Value,
}

impl RawRegorus {
    fn new(set: Arc<engine::PolicySet>, document: &Value) -> RawRegorus {
        let input = portcullis::policy::rego::to_regorus(document).expect("input");
        assert!(set.passes().count() > 0, "the default library runs in one pass");
        RawRegorus { set, input }
    }

    fn measure(&self, count: usize) -> Run {
        let started = Instant::now();
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            if started.elapsed() > TIME_LIMIT {
                break;
            }
            let one = Instant::now();
            for pass in self.set.passes() {
                std::hint::black_box(pass.eval(self.input.clone()).expect("pass"));
            }
            samples.push(one.elapsed());
        }
        Run {
            samples,
            wall: started.elapsed(),
        }
    }
}

/// The whole decision after the body is read (facts, input, every policy, aggregation), as
/// the server makes it, without the server.
fn decide_in_process(reviewer: &portcullis::admission::Reviewer, review: &Review, count: usize) -> Run {
    let started = Instant::now();
    let samples = (0..count)
        .map(|_| {
            let one = Instant::now();
            let facts = reviewer.facts(&review.request);
            std::hint::black_box(reviewer.evaluate(Request::Engine(&review.request), facts));
            one.elapsed()
        })
        .collect();
    Run {
        samples,
        wall: started.elapsed(),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}
