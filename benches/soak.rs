//! Load, soak, overload, drain and their floor, of the release binary (`portcullis serve` pinned to core 0),
//! driven by the shared load client (`tests/common/load.rs`, this process, on core 1), over
//! HTTPS with keep-alive, on loopback:
//!
//! 1. capacity: reviews per second on one core, 8 connections back to back, of the mix below
//!    and of a heavy review alone (a Pod of [`HEAVY_CONTAINERS`] containers);
//! 2. soak: `SOAK_SECONDS` (default 120; `make soak` runs 1800) at 40% of that capacity, each
//!    round of the mix in a new order ([`SOAK_ORDER`]), every review fixture (allow and deny, every workload kind; their registries are off the
//!    allow-list, so they are decided without a registry) plus a Pod of a signed and one of an
//!    unsigned image in a real registry (verified again every 2 s: the cache lifetime is 2 s),
//!    while the policy library reloads (early, then a broken policy and its fix) and the serving
//!    certificate is rotated ([`CHANGES`]); resident memory, open descriptors and threads
//!    sampled every 5 s (every sample to `$SOAK_SAMPLES` as CSV when it is set); with
//!    `SOAK_CONNECTIONS=N` the soak's client holds at most N connections (the memory apart from
//!    a client's connection bursts), and `SOAK_CACHE_TTL` sets the verification cache's
//!    lifetimes (default 2s);
//! 3. overload: the heavy review alone at three times its capacity for 15 s (heavy, so that
//!    one client core can offer three times what the server core decides: the mix's reviews
//!    cost the client about what they cost the server), then the soak's mix and rate again for
//!    10 s;
//! 4. drain: the soak rate for 8 s with SIGTERM after 4 s;
//! 5. floor: the soak's client, mix, order and rate for the soak's length (at most
//!    [`FLOOR_AT_MOST`]) against a constant allow on portcullis's own TLS and HTTP stack
//!    (`support/floor.rs`), pinned as portcullis was: the machine's own tail, beside the soak's.
//!
//! What must hold is asserted (every request answered, the floor's too, none past its timeout,
//! the reloads counted, every review of the drain counted exactly once in the metrics, a clean
//! exit); the figures (latency, shedding, memory and descriptor slopes) are reported for
//! docs/reliability.md.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/floor.rs"]
mod floor;
#[path = "support/spread.rs"]
mod spread;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::lab::{self, pick_port};
use common::load::{holdings, reviews_counted, slope, Answer, Client, Holdings, Order, Sample, Summary, Target};
use portcullis::server::certs;
use spread::spread;

/// The soak's order: every round of the mix shuffled, so that the ten workload reviews (the
/// costliest) are not sent back to back in every round (in turn, the reviews after them paid
/// for every hiccup's backlog: docs/reliability.md, "Verifications refreshed ahead of expiry").
const SOAK_ORDER: Order = Order::Shuffled { seed: 15 };
/// Each request's `?timeout=`, as the apiserver sends its webhook's `timeoutSeconds`.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The soak's rate, as a share of the capacity measured: headroom for the reloads and the tail.
const SOAK_SHARE: f64 = 0.4;
/// The overload's rate, as a multiple of the capacity measured (`OVERLOAD_FACTOR` overrides it).
const OVERLOAD_FACTOR: f64 = 3.0;
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Upper bound of requests in flight in the client: far above what the server holds at once.
const MAX_IN_FLIGHT: usize = 4000;
/// The server's `shutdownDelay`: it keeps serving this long after SIGTERM.
const SHUTDOWN_DELAY: Duration = Duration::from_secs(6);
/// The floor is measured for the soak's length, at most this.
const FLOOR_AT_MOST: Duration = Duration::from_secs(120);

/// A server the bench started (portcullis, or the floor); killed if the bench ends early.
struct Server {
    child: Child,
    url: String,
    metrics: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() {
    floor::serve_if_asked();
    let soak = Duration::from_secs(env_or("SOAK_SECONDS", 120));
    lab::set_service_limit(soak + Duration::from_secs(900));
    // The client (this process) on core 1; the server is started on core 0.
    let pid = std::process::id().to_string();
    common::lab::run(Command::new("taskset").args(["-a", "-p", "-c", "1", &pid]));

    let lab = lab::Lab::start();
    lab.generate_key("soak");
    let signed = lab.push("signed", "soak/signed", "1", "signed");
    lab.sign("soak.key", &signed);
    let unsigned = lab.push("unsigned", "soak/unsigned", "1", "unsigned");

    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let tls = certs::generate(&["localhost"]).expect("certificates");
    write_pair(dir, &tls);
    common::copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
        &dir.join("policies"),
    );
    let server = start(dir, &lab);
    let targets = targets(&signed, &unsigned);
    let client = Client::new(&server.url, &tls.ca_cert, TIMEOUT, MAX_IN_FLIGHT);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        wait_ready(&client, &targets, "portcullis").await;
        println!("# Load, soak, overload, drain and the floor\n");
        println!(
            "`portcullis serve` (release, glibc) on core 0, the load client on core 1; {} reviews, in the soak each round in a new order (seeded): {}.\n",
            targets.len(),
            targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
        );

        let heavy = vec![heavy_review()];
        let mix_capacity = capacity(&client, &targets).await;
        let heavy_capacity = capacity(&client, &heavy).await;
        let soak_rate = (mix_capacity * SOAK_SHARE).round().max(1.0);
        println!("## Capacity\n\n8 connections back to back, 10 s each: {mix_capacity:.0} reviews per second of the mix, {heavy_capacity:.0} of the heavy review ({HEAVY_CONTAINERS} containers) alone.\n");

        // The soak, with the rotations and the policy reloads during it.
        let events = tokio::spawn(changes_during(soak, dir.to_path_buf(), tls.clone()));
        let sampler = Sampler::start(server.child.id());
        // `SOAK_CONNECTIONS`: a client that holds that many connections, so that the server's
        // memory is seen apart from the connections a client opens under bursts.
        let held = env_or("SOAK_CONNECTIONS", 0);
        let soak_client = match held {
            0 => client.clone(),
            held => Client::holding(&server.url, &tls.ca_cert, TIMEOUT, MAX_IN_FLIGHT, held),
        };
        let samples = soak_client.attack_in(SOAK_ORDER, &targets, soak_rate, soak).await;
        let memory = sampler.stop();
        events.await.expect("the changes");
        let soak_summary = report_soak(&samples, &targets, soak_rate, soak, &memory);
        if held > 0 {
            println!("The soak's client held at most {held} connections (`SOAK_CONNECTIONS`), and so did the floor's; the other phases open them as needed.\n");
        }
        let metrics = scrape(&server.metrics).await;
        let good = count(|c| matches!(c, Change::GoodPolicy(_)));
        let broken = count(|c| matches!(c, Change::BrokenPolicy));
        let rotations = count(|c| matches!(c, Change::Certificate));
        assert_eq!(metric(&metrics, "portcullis_policy_reloads_total{result=\"failure\"}"), broken);
        assert_eq!(metric(&metrics, "portcullis_policy_reloads_total{result=\"success\"}"), good);
        assert!(metric(&metrics, "portcullis_tls_reloads_total{result=\"success\"}") >= rotations);
        println!(
            "During the soak: the certificate rotated {rotations} times (`portcullis_tls_reloads_total{{result=\"success\"}}` {}, refused half-written pairs {}), the policy library reloaded {good} times (`policy_reloads_total{{result=\"success\"}}`), a broken policy refused {broken} time (`failure`).\n",
            metric(&metrics, "portcullis_tls_reloads_total{result=\"success\"}"),
            metric(&metrics, "portcullis_tls_reloads_total{result=\"failure\"}"),
        );

        overload(&client, (&heavy, heavy_capacity), (&targets, soak_rate), &server).await;
        drain(client, &targets, server, soak_rate).await;
        let floor_length = soak.min(FLOOR_AT_MOST);
        measure_floor(dir, &tls.ca_cert, (&targets, soak_rate), floor_length, held, &soak_summary).await;
    });
}

/// The environment variable `name` parsed, or `default` when unset or unreadable.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn write_pair(dir: &Path, tls: &certs::CertBundle) {
    // Each file replaced by a rename, as a Secret volume's update is seen by a reader.
    for (name, text) in [("tls.crt", &tls.cert), ("tls.key", &tls.key)] {
        let temporary = dir.join(format!(".{name}.new"));
        std::fs::write(&temporary, text).expect("write");
        std::fs::rename(&temporary, dir.join(name)).expect("rename");
    }
}

fn start(dir: &Path, lab: &lab::Lab) -> Server {
    let (port, metrics_port) = (pick_port(), pick_port());
    let registry = &lab.registry;
    let config = format!(
        r#"images:
  registries:
    allow: ["{registry}"]
    insecure: ["{registry}"]
  verification: {{ cacheTtl: {ttl}, failureCacheTtl: {ttl} }}
  trust:
    - name: soak
      images: ["{registry}/soak/**"]
      authorities: [{{ name: ci-key, key: {{ path: {key} }} }}]
logging: {{ level: warn }}
server:
  listen: 127.0.0.1:{port}
  metricsListen: 127.0.0.1:{metrics_port}
  tls: {{ certFile: {dir}/tls.crt, keyFile: {dir}/tls.key, reloadInterval: 1s }}
  shutdownDelay: {delay}s
  shutdownGracePeriod: 10s
risk: {{ namespaceSource: none }}
policies: {{ dirs: [{dir}/policies], reloadInterval: 1s }}
"#,
        key = lab.key("soak").display(),
        dir = dir.display(),
        delay = SHUTDOWN_DELAY.as_secs(),
        ttl = env_or("SOAK_CACHE_TTL", "2s".to_string()),
    );
    let path = dir.join("portcullis.yaml");
    std::fs::write(&path, config).expect("write");
    let log = std::fs::File::create(dir.join("portcullis.log")).expect("log");
    let child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("portcullis serve");
    Server {
        child,
        url: format!("https://localhost:{port}/validate?timeout={}s", TIMEOUT.as_secs()),
        metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
    }
}

/// A Pod of this many containers is the overload's review.
const HEAVY_CONTAINERS: usize = 64;

/// A Pod of [`HEAVY_CONTAINERS`] containers, each image off the allow-list (no registry).
fn heavy_review() -> Target {
    let images: Vec<String> = (0..HEAVY_CONTAINERS)
        .map(|i| format!("registry.example.com/heavy/app-{i}:1.{i}"))
        .collect();
    let images: Vec<&str> = images.iter().map(String::as_str).collect();
    Target {
        name: "heavy".to_string(),
        body: Arc::new(common::review(common::pod_request(&images))),
    }
}

/// Every review fixture of a kind portcullis decides, and a Pod of each lab image.
fn targets(signed: &str, unsigned: &str) -> Vec<Target> {
    let mut targets = Vec::new();
    for group in ["policy", "workloads"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(common::fixtures().join("reviews").join(group))
            .expect("fixtures")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .filter(|path| !path.to_string_lossy().ends_with(".images.json"))
            .collect();
        paths.sort();
        for path in paths {
            targets.push(Target {
                name: path.file_stem().expect("name").to_string_lossy().into_owned(),
                body: Arc::new(std::fs::read(&path).expect("fixture")),
            });
        }
    }
    for (name, image) in [("pod-signed", signed), ("pod-unsigned", unsigned)] {
        targets.push(Target {
            name: name.to_string(),
            body: Arc::new(common::review(common::pod_request(&[image]))),
        });
    }
    targets
}

/// Waits until the server `name` answers, then sends it every target once.
async fn wait_ready(client: &Client, targets: &[Target], name: &str) {
    let started = Instant::now();
    loop {
        let samples = client.attack(&targets[..1], 10.0, Duration::from_millis(100)).await;
        if Summary::of(&samples).errors == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name} did not start (its log is in the bench's temporary directory)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every target once, so the soak starts with each decided and each image verified.
    let samples = client
        .attack(targets, 20.0, Duration::from_secs_f64(targets.len() as f64 / 20.0))
        .await;
    assert_eq!(Summary::of(&samples).errors, 0, "{:?}", Summary::errors_of(&samples));
}

/// Reviews per second on 8 keep-alive connections sending back to back.
async fn capacity(client: &Client, targets: &[Target]) -> f64 {
    const CONNECTIONS: usize = 8;
    let seconds = Duration::from_secs(10);
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..CONNECTIONS {
        let (client, targets, answered) = (client.clone(), targets.to_vec(), answered.clone());
        workers.spawn(async move {
            let mut index = worker;
            while started.elapsed() < seconds {
                let answer = client.send(&targets[index % targets.len()]).await;
                assert!(answer.is_answer(), "{answer:?}");
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                index += CONNECTIONS;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("a capacity worker");
    }
    answered.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// A change made during the soak.
#[derive(Clone, Copy)]
enum Change {
    /// A policy that loads (its revision number in a comment: each is a reload).
    GoodPolicy(u32),
    /// A policy that does not compile: refused, the last good library kept.
    BrokenPolicy,
    Certificate,
}

/// When each change comes, as a share of the soak. The first two reloads come early, inside
/// the warm-up: they raise resident memory to a high-water mark (two policy sets side by side
/// while one replaces the other, kept by the allocator: about 3 MiB at the first, 1 at the
/// second, nothing after; measured: 20 reloads under load, docs/reliability.md); the slope is
/// measured after the warm-up, across the third. (Eight reloads
/// and two rotations, tried, left the client with three times the connections at the overload,
/// which then collapsed in two runs of four: found and fixed, docs/reliability.md.)
const CHANGES: [(f64, Change); 5] = [
    (0.05, Change::GoodPolicy(0)),
    (0.10, Change::GoodPolicy(1)),
    (0.25, Change::Certificate),
    (0.50, Change::BrokenPolicy),
    (0.60, Change::GoodPolicy(2)),
];

fn count(wanted: fn(&Change) -> bool) -> f64 {
    CHANGES.iter().filter(|(_, change)| wanted(change)).count() as f64
}

/// Makes the [`CHANGES`], each at its time.
async fn changes_during(soak: Duration, dir: PathBuf, tls: certs::CertBundle) {
    let started = tokio::time::Instant::now();
    let extra = dir.join("policies/soak");
    std::fs::create_dir_all(&extra).expect("mkdir");
    for (share, change) in CHANGES {
        tokio::time::sleep_until(started + soak.mul_f64(share)).await;
        let policy = match change {
            Change::Certificate => {
                write_pair(&dir, &certs::reissue(&tls, &["localhost"]).expect("a new certificate"));
                continue;
            }
            Change::BrokenPolicy => "package soak.extra\ndeny contains \"x\" if {\n".to_string(),
            Change::GoodPolicy(revision) => {
                format!("package soak.extra\n\n# revision {revision}\ndeny contains \"never\" if false\n")
            }
        };
        std::fs::write(extra.join("policy.rego"), policy).expect("write");
    }
}

/// Resident memory, open descriptors and threads of the server, every [`SAMPLE_EVERY`].
struct Sampler {
    points: Arc<Mutex<Vec<(Duration, Holdings)>>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let points = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let shared = points.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                if let Some(held) = holdings(pid) {
                    shared.lock().unwrap().push((started.elapsed(), held));
                }
                tokio::select! {
                    _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                    _ = stopped.wait_for(|s| *s) => return,
                }
            }
        });
        Sampler { points, stop }
    }

    fn stop(self) -> Vec<(Duration, Holdings)> {
        let _ = self.stop.send(true);
        std::mem::take(&mut *self.points.lock().unwrap())
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

/// Prints the soak's figures; returns the summary of all its samples.
fn report_soak(
    samples: &[Sample],
    targets: &[Target],
    rate: f64,
    soak: Duration,
    memory: &[(Duration, Holdings)],
) -> Summary {
    write_holdings(memory);
    let all = Summary::of(samples);
    println!("## Soak: {} s at {rate:.0} reviews per second\n", soak.as_secs());
    let windows = 10u32;
    let width = soak / windows;
    println!(
        "| from (s) | reviews | allowed | denied | shed | errors | p50 (ms) | p99 (ms) | max (ms) | RSS (MiB) | fds | threads |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for window in 0..windows {
        let (from, to) = (width * window, width * (window + 1));
        let part: Vec<Sample> = samples
            .iter()
            .filter(|s| s.due >= from && s.due < to)
            .copied()
            .collect();
        let summary = Summary::of(&part);
        let at = memory.iter().rev().find(|(t, _)| *t <= to).or(memory.first());
        let (rss, fds, threads) = at.map_or((0.0, 0, 0), |(_, held)| (held.rss_mib(), held.fds, held.threads));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {rss:.1} | {fds} | {threads} |",
            from.as_secs(),
            summary.requests,
            summary.allowed,
            summary.denied,
            summary.shed,
            summary.errors,
            ms(summary.p50),
            ms(summary.p99),
            ms(summary.max)
        );
    }
    // Memory and descriptors after the warm-up (the first fifth, at most 5 minutes).
    let warm = (soak / 5).min(Duration::from_secs(300));
    let after: Vec<&(Duration, Holdings)> = memory.iter().filter(|(t, _)| *t >= warm).collect();
    let hours = |t: &Duration| t.as_secs_f64() / 3600.0;
    let rss_slope = slope(
        &after
            .iter()
            .map(|(t, held)| (hours(t), held.rss_mib()))
            .collect::<Vec<_>>(),
    );
    let fd_slope = slope(
        &after
            .iter()
            .map(|(t, held)| (hours(t), held.fds as f64))
            .collect::<Vec<_>>(),
    );
    let (first, last) = (after.first().expect("samples"), after.last().expect("samples"));
    println!(
        "\nAll: {} reviews, {} allowed, {} denied, {} shed, **{} errors**; p50 {} ms, p99 {} ms (**p99/p50 {:.2}**), max {} ms.",
        all.requests,
        all.allowed,
        all.denied,
        all.shed,
        all.errors,
        ms(all.p50),
        ms(all.p99),
        tail_ratio(&all),
        ms(all.max)
    );
    println!("Latency by review (each kind's own tail: the mix's p50 and p99 come from reviews of different cost):\n");
    println!("| review | reviews | p50 (ms) | p99 (ms) | p99/p50 |");
    println!("|---|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        let summary = of_target(samples, index);
        let ratio = tail_ratio(&summary);
        ratios.push(ratio);
        println!(
            "| {} | {} | {} | {} | {ratio:.2} |",
            target.name,
            summary.requests,
            ms(summary.p50),
            ms(summary.p99)
        );
    }
    println!("\np99/p50 by review, median (range): **{}**.\n", spread(ratios, 2));
    let threads = after.iter().map(|(_, held)| held.threads);
    let huge_mib = after.iter().map(|(_, held)| held.huge_kib / 1024).max().unwrap_or(0);
    println!(
        "After the warm-up ({} s; {} samples every {} s): RSS {:.1} to {:.1} MiB (of it in transparent huge pages: at most {huge_mib} MiB), **slope {rss_slope:+.2} MiB per hour**; open descriptors {} to {}, **slope {fd_slope:+.1} per hour**; threads {} to {}.\n",
        warm.as_secs(),
        after.len(),
        SAMPLE_EVERY.as_secs(),
        first.1.rss_mib(),
        last.1.rss_mib(),
        first.1.fds,
        last.1.fds,
        threads.clone().min().unwrap_or(0),
        threads.max().unwrap_or(0),
    );
    assert_eq!(all.errors, 0, "errors in the soak: {:?}", Summary::errors_of(samples));
    all
}

/// Every sample of the server's holdings as CSV (seconds, RSS and its huge pages in KiB,
/// descriptors, threads), to `$SOAK_SAMPLES` when it is set: the report's windows are too
/// coarse to place a step.
fn write_holdings(memory: &[(Duration, Holdings)]) {
    let Ok(path) = std::env::var("SOAK_SAMPLES") else {
        return;
    };
    let lines: String = memory
        .iter()
        .map(|(t, held)| {
            format!(
                "{:.0},{},{},{},{}\n",
                t.as_secs_f64(),
                held.rss_kib,
                held.huge_kib,
                held.fds,
                held.threads
            )
        })
        .collect();
    std::fs::write(&path, format!("seconds,rss_kib,huge_kib,fds,threads\n{lines}")).expect("SOAK_SAMPLES is writable");
}

/// `heavy` at [`OVERLOAD_FACTOR`] (or `$OVERLOAD_FACTOR`) times its capacity, then the soak's `mix` at its rate.
async fn overload(client: &Client, heavy: (&[Target], f64), mix: (&[Target], f64), server: &Server) {
    let ((heavy, capacity), (targets, soak_rate)) = (heavy, mix);
    let factor = env_or("OVERLOAD_FACTOR", OVERLOAD_FACTOR);
    let rate = (capacity * factor).round();
    let before = scrape(&server.metrics).await;
    let samples = client.attack(heavy, rate, Duration::from_secs(15)).await;
    let during = scrape(&server.metrics).await;
    let recovery = client.attack(targets, soak_rate, Duration::from_secs(10)).await;
    let after = scrape(&server.metrics).await;
    let shed = |text: &str| {
        ["overloaded", "queue_wait", "deadline"]
            .map(|reason| metric(text, &format!("portcullis_admission_shed_total{{reason=\"{reason}\"}}")))
    };
    let (b, d, a) = (shed(&before), shed(&during), shed(&after));
    println!(
        "## Overload: the heavy review at {rate:.0} reviews per second ({factor}x its capacity) for 15 s, then the mix at {soak_rate:.0} for 10 s\n"
    );
    println!("| phase | reviews | decided (allowed + denied) | shed (429) | connections refused | errors | p50 (ms) | p99 (ms) | max (ms) | shed: overloaded / queue_wait / deadline |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let first_second: Vec<Sample> = recovery
        .iter()
        .filter(|s| s.due < Duration::from_secs(1))
        .copied()
        .collect();
    let rest: Vec<Sample> = recovery
        .iter()
        .filter(|s| s.due >= Duration::from_secs(1))
        .copied()
        .collect();
    for (phase, part, counts) in [
        ("overload", &samples, [d[0] - b[0], d[1] - b[1], d[2] - b[2]]),
        ("recovery, first second", &first_second, [f64::NAN; 3]),
        ("recovery, the next 9 s", &rest, [f64::NAN; 3]),
        ("recovery, all 10 s", &recovery, [a[0] - d[0], a[1] - d[1], a[2] - d[2]]),
    ] {
        let summary = Summary::of(part);
        let counts = match counts[0].is_nan() {
            true => String::new(),
            false => format!("{} / {} / {}", counts[0], counts[1], counts[2]),
        };
        println!(
            "| {phase} | {} | {} | {} | {} | {} | {} | {} | {} | {counts} |",
            summary.requests,
            summary.allowed + summary.denied,
            summary.shed,
            summary.refused,
            summary.errors - summary.refused,
            ms(summary.p50),
            ms(summary.p99),
            ms(summary.max)
        );
    }
    let summary = Summary::of(&samples);
    let seconds = |n: usize| n as f64 / 15.0;
    let refused_total = "portcullis_connections_refused_total";
    let refused_by_server = metric(&during, refused_total) - metric(&before, refused_total);
    let slowest_refusal = samples
        .iter()
        .filter(|s| s.answer == Answer::Refused)
        .map(|s| s.latency)
        .max()
        .unwrap_or_default();
    println!(
        "\nUnder overload: {:.0} decided and {:.0} shed per second; the slowest answer {} ms against the {} s timeout. Connections refused before their TLS handshake: {} as the client saw them (the slowest {} ms after the request was due), {refused_by_server} as the server counted them (`{refused_total}`; a refused connection the client opened ahead of need fails no request).\n",
        seconds(summary.allowed + summary.denied),
        seconds(summary.shed),
        ms(summary.max),
        TIMEOUT.as_secs(),
        summary.refused,
        ms(slowest_refusal),
    );
    // A refused connection is the server protecting the reviews it has taken: fast, and each
    // one counted by the server; anything else unanswered is an error.
    assert_eq!(
        summary.errors - summary.refused,
        0,
        "overload: {:?}",
        Summary::errors_of(&samples)
    );
    assert!(
        summary.refused as f64 <= refused_by_server,
        "refusals the server did not count"
    );
    assert!(summary.max < TIMEOUT, "an answer after the timeout: {:?}", summary.max);
    assert_eq!(Summary::of(&rest).shed, 0, "still shedding a second after the overload");
    assert_eq!(Summary::of(&recovery).errors, 0, "{:?}", Summary::errors_of(&recovery));
}

/// The soak rate for 8 s, SIGTERM after 4 s: the server keeps serving for its shutdown delay
/// (6 s), so every review sent is answered, and each is counted once in its metrics.
async fn drain(client: Client, targets: &[Target], server: Server, rate: f64) {
    let before = reviews_counted(&scrape(&server.metrics).await);
    let pid = server.child.id().to_string();
    let signal = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success());
        Instant::now()
    });
    let samples = client.attack(targets, rate, Duration::from_secs(8)).await;
    let signalled = signal.await.expect("the signal");
    let after = reviews_counted(&scrape(&server.metrics).await);
    let summary = Summary::of(&samples);
    let exit = tokio::task::spawn_blocking(move || {
        let mut server = server;
        let status = server.child.wait().expect("wait");
        (status, signalled.elapsed())
    })
    .await
    .expect("the exit");
    println!("## Drain: SIGTERM under load\n");
    println!(
        "{rate:.0} reviews per second for 8 s, SIGTERM after 4 s (shutdownDelay {} s): {} reviews sent, {} answered, **{} failed**; `portcullis_admission_requests_total` grew by **{}** (every review counted once); p99 {} ms; the process exited with {} {:.1} s after the signal.\n",
        SHUTDOWN_DELAY.as_secs(),
        summary.requests,
        summary.allowed + summary.denied + summary.shed,
        summary.errors,
        after - before,
        ms(summary.p99),
        exit.0,
        exit.1.as_secs_f64()
    );
    assert_eq!(summary.errors, 0, "drain: {:?}", Summary::errors_of(&samples));
    assert_eq!(
        after - before,
        summary.requests as f64,
        "reviews counted in the metrics"
    );
    assert!(exit.0.success(), "portcullis exited with {}", exit.0);
}

async fn scrape(url: &str) -> String {
    reqwest::get(url)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The value of the series `name{labels}` in a scrape (0 when absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The soak's client (holding `held` connections when not 0), mix, order and rate against the
/// floor (a constant allow on portcullis's TLS and HTTP stack, pinned as portcullis was): the
/// tail the machine, loopback, TLS, HTTP and the client add whatever the server decides,
/// beside the soak's.
async fn measure_floor(
    dir: &Path,
    ca: &str,
    mix: (&[Target], f64),
    length: Duration,
    held: usize,
    soak_summary: &Summary,
) {
    let (targets, rate) = mix;
    let (port, config) = (pick_port(), dir.join("floor.yaml"));
    std::fs::write(&config, floor::config(port, dir)).expect("write");
    let child = Command::new("taskset")
        .args(["-c", "0"])
        .args(floor::command_line(&config))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("floor.log")).expect("log"))
        .spawn()
        .expect("the floor server");
    let url = format!("https://localhost:{port}/validate?timeout={}s", TIMEOUT.as_secs());
    // Killed when the phase ends (its metrics are not read).
    let _server = Server {
        child,
        url: url.clone(),
        metrics: String::new(),
    };
    let client = match held {
        0 => Client::new(&url, ca, TIMEOUT, MAX_IN_FLIGHT),
        held => Client::holding(&url, ca, TIMEOUT, MAX_IN_FLIGHT, held),
    };
    wait_ready(&client, targets, "the floor server").await;
    let samples = client.attack_in(SOAK_ORDER, targets, rate, length).await;
    let all = Summary::of(&samples);
    let ratios = (0..targets.len()).map(|index| tail_ratio(&of_target(&samples, index)));
    let above =
        |soak: Duration, floor: Duration| format!("{:+.2}", (soak.as_secs_f64() - floor.as_secs_f64()) * 1000.0);
    println!("## The floor: the soak's client, mix, order and rate against a constant allow\n");
    println!(
        "{} s at {rate:.0} reviews per second against a constant allow on the same TLS and HTTP stack (pinned to core 0 as portcullis was): {} reviews, **{} errors**; p50 {} ms, p99 {} ms (**p99/p50 {:.2}**), max {} ms; p99/p50 by review, median (range): {}. The soak's (over its whole length): p50 {} ms, p99 {} ms (p99/p50 {:.2}): {} ms from the floor's p50, {} ms from its p99.\n",
        length.as_secs(),
        all.requests,
        all.errors,
        ms(all.p50),
        ms(all.p99),
        tail_ratio(&all),
        ms(all.max),
        spread(ratios, 2),
        ms(soak_summary.p50),
        ms(soak_summary.p99),
        tail_ratio(soak_summary),
        above(soak_summary.p50, all.p50),
        above(soak_summary.p99, all.p99),
    );
    assert_eq!(all.errors, 0, "floor: {:?}", Summary::errors_of(&samples));
}

/// The summary of the samples of one target (by its index).
fn of_target(samples: &[Sample], target: usize) -> Summary {
    let part: Vec<Sample> = samples.iter().filter(|s| s.target == target).copied().collect();
    Summary::of(&part)
}

fn tail_ratio(summary: &Summary) -> f64 {
    summary.p99.as_secs_f64() / summary.p50.as_secs_f64()
}
