//! Registry faults under load (issue 15): reviews of images on registries that fail in every way
//! a registry fails, all at once at a steady rate, through the in-process webhook. Each review
//! is answered before its deadline, denied with the status its fault deserves, and no connection
//! is made to an address off the allow-list (traps count them).

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::faults::{loopback_name, FaultRegistry, Trap, FAULTS};
use common::lab::ClosedPort;
use common::*;
use portcullis::policy::Source;
use portcullis::server::AppState;

/// The apiserver's timeout for each review (its default). Each registry request has 3 s: long
/// enough for the oversized bodies to be read to the bound under the heaviest documented load
/// (at 1 s, some were cut by the timeout first: denied, but as `timeout`).
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// The load: 60 reviews a second for 4 seconds, or `REGISTRY_FAULTS_RATE` and
/// `REGISTRY_FAULTS_SECONDS` (the figures of docs/reliability.md).
fn load() -> (f64, f64) {
    let var = |name: &str, default: f64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    (var("REGISTRY_FAULTS_RATE", 60.0), var("REGISTRY_FAULTS_SECONDS", 4.0))
}

/// What each kind of registry must make of a review, as the denial's message says it.
fn expected(class: &str) -> &'static str {
    match class {
        "status-500" => "is error: registry 127.0.0.1:PORT answered 500",
        "status-502" => "is error: registry 127.0.0.1:PORT answered 502",
        "status-503" => "is error: registry 127.0.0.1:PORT answered 503",
        "throttled" | "throttled-for-long" => "is error: registry 127.0.0.1:PORT answered 429",
        "truncated" => "is error: registry 127.0.0.1:PORT could not be reached",
        "oversized" | "oversized-declared" => "is error: registry 127.0.0.1:PORT sent more data than allowed",
        "redirect-loop" => "too many redirects",
        "redirect-to-metadata" => "redirect to internal address 169.254.169.254 refused",
        "redirect-to-loopback" => "redirect to internal address 127.0.0.2 refused",
        "redirect-to-loopback-name" | "loopback-name" => "resolves only to internal addresses",
        "slow-within-timeout" => "is unsigned",
        "slow-past-timeout" | "silent" => "is timeout: registry 127.0.0.1:PORT could not be reached: timed out",
        "down" => "is error: registry 127.0.0.1:PORT could not be reached",
        other => panic!("no expectation for {other}"),
    }
}

/// The fault registry, a registry that never answers, one that is down, a name that resolves
/// to loopback, and the traps that count connections off the allow-list.
struct Faults {
    faulty: FaultRegistry,
    /// Accepts connections (the kernel does) and never reads or answers.
    silent: TcpListener,
    down: ClosedPort,
    loopback_trap: Trap,
    name: String,
    name_trap: Trap,
}

impl Faults {
    fn start() -> Faults {
        let loopback_trap = Trap::bind(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        let (name, name_ip) = loopback_name();
        let name_trap = Trap::bind(name_ip);
        let faulty = FaultRegistry::start(
            &loopback_trap.addr.to_string(),
            &format!("{name}:{}", name_trap.addr.port()),
        );
        Faults {
            faulty,
            silent: TcpListener::bind("127.0.0.1:0").unwrap(),
            down: ClosedPort::new(),
            loopback_trap,
            name,
            name_trap,
        }
    }

    fn silent(&self) -> String {
        self.silent.local_addr().unwrap().to_string()
    }

    /// `name:port` of the trap the loopback name leads to.
    fn named(&self) -> String {
        format!("{}:{}", self.name, self.name_trap.addr.port())
    }

    /// Every registry allowed (plain HTTP) and trusted with one key, and `extra` settings.
    fn state(&self, extra: &str) -> AppState {
        let key = fixtures().join("signatures/trusted.pub");
        let registries = [
            self.faulty.addr.clone(),
            self.silent(),
            self.down.addr.clone(),
            self.named(),
        ];
        let quoted = |suffix: &str| {
            registries
                .iter()
                .map(|r| format!("\"{r}{suffix}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (listed, scopes) = (quoted(""), quoted("/**"));
        let config = format!(
            r#"images:
  registries: {{ allow: [{listed}], insecure: [{listed}] }}
  verification: {{ registryTimeout: 3s }}
  trust:
    - name: micro-apps
      images: [{scopes}]
      authorities: [{{ name: ci-key, key: {{ path: {key} }} }}]
{extra}"#,
            key = key.display()
        );
        state_with_source(&settings(&config), Source::Embedded, &[("team-a", "low")])
    }

    /// Each kind of review by its class name, and the repository its image is in.
    fn classes(&self) -> Vec<(String, String)> {
        let mut classes: Vec<(String, String)> = FAULTS
            .iter()
            .map(|fault| (fault.to_string(), format!("{}/{fault}/app", self.faulty.addr)))
            .collect();
        classes.push(("silent".into(), format!("{}/micro/app", self.silent())));
        classes.push(("down".into(), format!("{}/micro/app", self.down.addr)));
        classes.push(("loopback-name".into(), format!("{}/micro/app", self.named())));
        classes.push(("off-allow-list".into(), format!("{}/evil/app", self.loopback_trap.addr)));
        classes
    }

    /// The denial a review of `class` must get.
    fn expected(&self, class: &str) -> String {
        let registry = match class {
            "silent" => self.silent(),
            "down" => self.down.addr.clone(),
            _ => self.faulty.addr.clone(),
        };
        expected(class).replace("127.0.0.1:PORT", &registry)
    }
}

/// One review of a Pod running `image`, with the apiserver's timeout: its status, answer, time.
async fn review(state: &AppState, image: &str) -> (StatusCode, serde_json::Value, Duration) {
    let sent = Instant::now();
    let uri = format!("/validate?timeout={}s", REVIEW_TIMEOUT.as_secs());
    let (status, answer) = post(state, &uri, pod_review(image)).await;
    (status, answer, sent.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registry_fault_under_load_is_denied_in_time_and_nothing_off_the_allow_list_is_contacted() {
    let faults = Faults::start();
    let state = faults.state("");
    let classes = faults.classes();

    // An open loop: each review is sent when due, whatever the earlier ones are doing.
    let (rate, seconds) = load();
    let total = (rate * seconds) as usize;
    let started = Instant::now();
    let mut reviews = Vec::new();
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (class, repository) = classes[i % classes.len()].clone();
        // A digest of its own: nothing is cached or coalesced, each review meets its fault.
        let image = format!("{repository}@sha256:{i:064x}");
        let state = state.clone();
        reviews.push(tokio::spawn(async move {
            let (status, answer, took) = review(&state, &image).await;
            (class, status, answer, took)
        }));
    }

    let mut latencies: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for review in reviews {
        let (class, status, answer, took) = review.await.unwrap();
        assert_eq!(status, 200, "{class}: {answer}");
        assert!(took < REVIEW_TIMEOUT, "{class}: answered after {took:?}");
        assert_eq!(answer["response"]["allowed"], false, "{class}: {answer}");
        if class == "off-allow-list" {
            assert_eq!(denied_by(&answer), ["images.allowed_registries"], "{answer}");
        } else {
            assert_eq!(denied_by(&answer), ["images.signatures"], "{class}: {answer}");
            let want = faults.expected(&class);
            assert!(
                message(&answer).contains(&want),
                "{class}: wanted {want:?} in {}",
                message(&answer)
            );
        }
        latencies.entry(class).or_default().push(took);
    }

    assert_eq!(
        faults.loopback_trap.connections(),
        0,
        "a connection reached 127.0.0.2 (off the allow-list)"
    );
    assert_eq!(
        faults.name_trap.connections(),
        0,
        "a connection reached {} (a name that resolves to loopback)",
        faults.name
    );

    // A 429 that asks to come back within the bound is retried twice; one that asks for an hour
    // is not retried. Every attempt is counted. A review makes as many first attempts as a 500
    // makes it (its signatures and attestations are looked up side by side).
    let per_class = |class: &str| latencies[class].len() as u64;
    let (_, metrics) = get(&state, "/metrics").await;
    let requests = |code: &str| -> u64 {
        let sample = format!(
            "portcullis_registry_requests_total{{registry=\"{}\",code=\"{code}\"}} ",
            faults.faulty.addr
        );
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&sample))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let lookups = requests("500") / per_class("status-500");
    assert!(
        lookups >= 1 && requests("500") % per_class("status-500") == 0,
        "{metrics}"
    );
    assert_eq!(
        requests("429"),
        lookups * (3 * per_class("throttled") + per_class("throttled-for-long")),
        "{metrics}"
    );

    println!("class | reviews | p50 ms | max ms");
    for (class, mut took) in latencies {
        took.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{class} | {} | {:.0} | {:.0}",
            took.len(),
            ms(took[took.len() / 2]),
            ms(*took.last().unwrap())
        );
    }
    println!(
        "registry connections accepted by the faulty registry: {}",
        faults.faulty.connections.load(std::sync::atomic::Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_never_answers_holds_up_only_the_reviews_of_its_own_images() {
    let faults = Faults::start();
    // One review slot per registry, taken by a review of the registry that never answers.
    let state = faults.state("admission: { maxConcurrentReviews: 1 }\n");
    let silent_image = |digit: &str| format!("{}/micro/app@sha256:{}", faults.silent(), digit.repeat(64));
    let stuck = tokio::spawn({
        let (state, image) = (state.clone(), silent_image("d"));
        async move { review(&state, &image).await }
    });
    poll_async(
        "the silent registry's slot to be taken",
        Duration::from_secs(5),
        Duration::from_millis(10),
        async || (state.review_slots.available(&faults.silent()) == 0).then_some(()),
    )
    .await;
    // Another registry's review gets that registry's answer, not a wait for the silent one.
    let image = format!("{}/status-500/app@sha256:{}", faults.faulty.addr, "e".repeat(64));
    let (_, answer, _) = review(&state, &image).await;
    assert!(
        message(&answer).contains(&faults.expected("status-500")),
        "{}",
        message(&answer)
    );
    assert_eq!(
        state.review_slots.available(&faults.silent()),
        0,
        "the stuck review still holds its slot"
    );
    // A second review of the silent registry waits for the slot, and is denied in time.
    let (status, answer, took) = review(&state, &silent_image("f")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert!(took < REVIEW_TIMEOUT, "answered after {took:?}");
    let (_, stuck, _) = stuck.await.unwrap();
    assert!(
        message(&stuck).contains(&faults.expected("silent")),
        "{}",
        message(&stuck)
    );
}
