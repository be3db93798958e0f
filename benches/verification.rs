//! Image verification against a real registry and real cosign (the lab of
//! `tests/supply_chain.rs`, shared through `tests/common/lab.rs`), beside its floors:
//! - cold, whole process: `portcullis verify` vs `cosign verify` of the same signed image, each
//!   run a new process with nothing cached; once for cosign 2's classic `.sig` and once for
//!   cosign 3's default (a Sigstore bundle in the OCI referrers) against `cosign` 3's own verify;
//! - cold, in-process: `Verifier::verify` of distinct freshly signed images, with the registry
//!   requests each made and the registry's round trip (a plain manifest GET) as the floor;
//! - cached: the added cost per image of a verification already in the cache, through
//!   `Verifier::verify` and through `Reviewer::verify` of a 3-container Pod;
//! - 100 concurrent reviews of one new image through the in-process router, with the registry
//!   requests they made.
//!
//! Aims (issue): cached cost under 10 µs per image; cold verification within 1.5x of the registry
//! round trips it needs; faster than `cosign verify`. Every loop is bounded in count and time.
//! Run with `make bench`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/percentile.rs"]
mod percentile;

use percentile::percentile;

use common::{lab, pod_request, review};

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::config::Config;
use portcullis::images::pull_secrets::PullSecretRefs;
use portcullis::images::verify::Verifier;
use portcullis::images::{ImageReference, VerificationStatus};
use portcullis::metrics::Metrics;
use portcullis::namespaces::StaticNamespaces;
use portcullis::policy::Source;
use portcullis::server::{self, AppState};

/// Runs of each whole process (portcullis verify, cosign verify, of each format), interleaved.
const PROCESS_RUNS: usize = 20;
/// Distinct images verified cold in-process.
const COLD_IMAGES: usize = 20;
/// Plain manifest GETs for the round-trip floor.
const ROUND_TRIPS: usize = 200;
/// Calls on cached verifications.
const CACHED_CALLS: usize = 100_000;
const REVIEWS: usize = 100;
/// Verifications of one repository behind token auth, each a cache miss.
const TOKEN_VERIFICATIONS: usize = 100;
/// Each measurement stops early past this.
const TIME_LIMIT: Duration = Duration::from_secs(60);
/// Registry requests a key-signed image in cosign's classic format needs at least: the
/// signature manifest, its one layer blob, and the attestation manifest (portcullis always reads
/// it; here it is not found). Looking for signatures in the new bundle format (OCI referrers)
/// adds one request, two on a registry without the referrers API such as this one; `cosign
/// verify` makes them too.
const NEEDED_REQUESTS: usize = 3;

struct Stats {
    count: usize,
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    Stats {
        count: samples.len(),
        p50: percentile(&samples, 0.50),
        p99: percentile(&samples, 0.99),
    }
}

fn main() {
    portcullis::tls_provider();
    let setup = Instant::now();
    let lab = lab::Lab::start();
    lab.generate_key("trusted");
    let signed = |name: &str| {
        let pinned = lab.push(name, &format!("bench/{name}"), "1", name);
        lab.sign("trusted.key", &pinned);
        pinned
    };
    let process_image = signed("process");
    // The same whole-process comparison for cosign 3's default, a Sigstore bundle in referrers.
    let bundle_image = lab.push("process-v3", "bench/process-v3", "1", "process-v3");
    lab.sign_v3("trusted.key", &bundle_image);
    let warmup_image = signed("warmup");
    let cold_images: Vec<String> = (0..COLD_IMAGES).map(|i| signed(&format!("cold-{i}"))).collect();
    let single_image = signed("single-review");
    let concurrent_image = signed("concurrent-reviews");
    let registry = lab.registry.clone();
    let yaml = format!(
        r#"logging: {{ level: warn }}
images:
  registries:
    allow: ["{registry}"]
    insecure: ["{registry}"]
  verification: {{ registryTimeout: 10s }}
  trust:
    - name: bench
      images: ["{registry}/bench/**"]
      authorities:
        - {{ name: ci-key, key: {{ path: {key} }} }}
"#,
        key = lab.key("trusted").display()
    );
    let config = lab.dir.path().join("portcullis.yaml");
    std::fs::write(&config, &yaml).expect("config");
    let settings = Config::from_yaml(&yaml)
        .expect("config")
        .validate(false)
        .expect("valid config");
    eprintln!(
        "lab: registry, {} signed images in {:.1} s",
        COLD_IMAGES + 4,
        setup.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // Cold, whole process: portcullis verify vs cosign verify, interleaved, same image (per format).
    let portcullis_bin = env!("CARGO_BIN_EXE_portcullis");
    let cosign_tuf = tempfile::tempdir().expect("tempdir");
    let portcullis_run = |image: &str| {
        let mut command = Command::new(portcullis_bin);
        command
            .args(["verify", "--config", config.to_str().unwrap()])
            .arg(image);
        command
    };
    let cosign_run = |cosign: &std::path::Path, image: &str| {
        let mut command = Command::new(cosign);
        command
            .env("TUF_ROOT", cosign_tuf.path())
            .args(["verify", "--key"])
            .arg(lab.key("trusted"))
            .args([
                "--insecure-ignore-tlog",
                "--allow-insecure-registry",
                "--allow-http-registry",
            ])
            .arg(image);
        command
    };
    let timed = |mut command: Command, expect: &str| {
        let started = Instant::now();
        let output = command.output().expect("run");
        let elapsed = started.elapsed();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success() && text.contains(expect), "{command:?}: {text}");
        elapsed
    };
    // One untimed run of each: page cache, and the requests of one run.
    let describe_since = |before: usize, pinned: &str| -> Vec<String> {
        lab.requests()[before..]
            .iter()
            .map(|line| describe(line, pinned))
            .collect()
    };
    const COSIGN_VERIFIED: &str = "The signatures were verified against the specified public key";
    const VERIFIED: &str = "status:  verified";
    let before = lab.requests().len();
    timed(portcullis_run(&process_image), VERIFIED);
    let portcullis_process_requests = lab.requests().len() - before;
    let before = lab.requests().len();
    timed(cosign_run(&lab.cosign, &process_image), COSIGN_VERIFIED);
    let cosign_list = describe_since(before, &process_image);
    let cosign_requests = cosign_list.len();
    let before = lab.requests().len();
    timed(portcullis_run(&bundle_image), VERIFIED);
    let portcullis_bundle_requests = lab.requests().len() - before;
    let before = lab.requests().len();
    timed(cosign_run(lab.cosign3(), &bundle_image), COSIGN_VERIFIED);
    let cosign3_requests = lab.requests().len() - before;
    let mut samples: [Vec<Duration>; 4] = Default::default();
    let started = Instant::now();
    for _ in 0..PROCESS_RUNS {
        if started.elapsed() > TIME_LIMIT {
            break;
        }
        samples[0].push(timed(portcullis_run(&process_image), VERIFIED));
        samples[1].push(timed(cosign_run(&lab.cosign, &process_image), COSIGN_VERIFIED));
        samples[2].push(timed(portcullis_run(&bundle_image), VERIFIED));
        samples[3].push(timed(cosign_run(lab.cosign3(), &bundle_image), COSIGN_VERIFIED));
    }
    let [portcullis_process, cosign_process, portcullis_bundle, cosign3_bundle] = samples.map(stats);

    // Cold, in-process: distinct images, each verified once by a warm verifier.
    let metrics = Arc::new(Metrics::new());
    let verifier = Arc::new(Verifier::new(settings.trust.clone(), metrics.clone()).expect("verifier"));
    let verify = |image: &str| {
        let reference = ImageReference::parse(image).expect("reference");
        runtime.block_on(async {
            let started = Instant::now();
            let verified = verifier
                .verify(
                    &reference,
                    &PullSecretRefs::default(),
                    Instant::now() + Duration::from_secs(30),
                )
                .await;
            (started.elapsed(), verified.verification.status)
        })
    };
    assert_eq!(verify(&warmup_image).1, VerificationStatus::Verified);
    let mut cold_samples = Vec::new();
    let (mut own_requests, mut all_requests) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for image in &cold_images {
        if started.elapsed() > TIME_LIMIT {
            break;
        }
        let (own_before, all_before) = (registry_requests(&metrics), lab.requests().len());
        let (elapsed, status) = verify(image);
        assert_eq!(status, VerificationStatus::Verified, "{image}");
        cold_samples.push(elapsed);
        own_requests.push(registry_requests(&metrics) - own_before);
        all_requests.push(lab.requests().len() - all_before);
    }
    let cold = stats(cold_samples);
    let cold_requests = median(&all_requests);
    let cold_own_requests = median(&own_requests);
    // Which requests one cold verification makes, from the registry's access log.
    let fresh = signed("request-list");
    let before = lab.requests().len();
    assert_eq!(verify(&fresh).1, VerificationStatus::Verified);
    let request_list = describe_since(before, &fresh);

    // The floor: one registry round trip, a plain manifest GET (keep-alive, and a new connection).
    let (repository, digest) = cold_images[0]
        .strip_prefix(&format!("{registry}/"))
        .and_then(|rest| rest.split_once('@'))
        .expect("pinned");
    let manifest_url = format!("http://{registry}/v2/{repository}/manifests/{digest}");
    let round_trip = |reuse: bool| {
        runtime.block_on(async {
            let shared = reqwest::Client::new();
            let mut samples = Vec::with_capacity(ROUND_TRIPS);
            let started = Instant::now();
            for i in 0..ROUND_TRIPS + 20 {
                if started.elapsed() > TIME_LIMIT {
                    break;
                }
                let client = if reuse { shared.clone() } else { reqwest::Client::new() };
                let sent = Instant::now();
                let response = client
                    .get(&manifest_url)
                    .header("accept", "application/vnd.oci.image.manifest.v1+json")
                    .send()
                    .await
                    .expect("manifest");
                assert!(response.status().is_success());
                let _ = response.bytes().await.expect("body");
                if i >= 20 {
                    samples.push(sent.elapsed());
                }
            }
            stats(samples)
        })
    };
    let round_trip_kept = round_trip(true);
    let round_trip_new = round_trip(false);

    // Cached: the added cost per image of a verification already in the cache.
    let cached = runtime.block_on(async {
        let reference = ImageReference::parse(&cold_images[0]).expect("reference");
        let deadline = Instant::now() + Duration::from_secs(600);
        let started = Instant::now();
        let mut calls = 0;
        while calls < CACHED_CALLS && started.elapsed() < TIME_LIMIT {
            for _ in 0..1000 {
                let verified = verifier.verify(&reference, &PullSecretRefs::default(), deadline).await;
                debug_assert_eq!(verified.verification.status, VerificationStatus::Verified);
            }
            calls += 1000;
        }
        started.elapsed() / calls as u32
    });
    let hits = counter(
        &metrics.encode(),
        "portcullis_verification_cache_requests_total{result=\"hit\"}",
    );

    // Cached, through the reviewer: a Pod of 3 containers, each image already verified; the cost
    // of cloning the facts (which `verify` fills in place) is measured apart and taken off.
    let state = app_state(&settings);
    let pod = pod_request(&[&cold_images[0], &cold_images[1], &cold_images[2]]);
    let facts = state.reviewer.facts(&pod);
    let (reviewer_per_image, clone_per_pod) = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut primed = facts.clone();
        state.reviewer.verify(&mut primed, deadline).await;
        assert!(primed
            .images
            .iter()
            .all(|(image, _)| image.verification.status == VerificationStatus::Verified));
        let time = |verify: bool| {
            let (facts, reviewer) = (&facts, &state.reviewer);
            async move {
                let started = Instant::now();
                let mut calls = 0u32;
                while (calls as usize) < CACHED_CALLS / 3 && started.elapsed() < TIME_LIMIT {
                    for _ in 0..1000 {
                        let mut copy = facts.clone();
                        if verify {
                            reviewer.verify(&mut copy, deadline).await;
                        }
                        std::hint::black_box(copy);
                    }
                    calls += 1000;
                }
                started.elapsed() / calls
            }
        };
        let clone_only = time(false).await;
        let with_verify = time(true).await;
        (with_verify.saturating_sub(clone_only) / 3, clone_only)
    });

    // One review of a new image, then 100 concurrent reviews of another new image, each through
    // the in-process router of a fresh app state (one-time initialisation was paid by the
    // warm-up verification above).
    let state = app_state(&settings);
    let (own_before, all_before) = (registry_requests(&state.metrics), lab.requests().len());
    let (single_time, single_answer) = runtime.block_on(async {
        let started = Instant::now();
        let answer = common::post(&state, "/validate?timeout=10s", review(pod_request(&[&single_image])))
            .await
            .1;
        (started.elapsed(), answer)
    });
    assert_eq!(single_answer["response"]["allowed"], true, "{single_answer}");
    let single_requests = (
        registry_requests(&state.metrics) - own_before,
        lab.requests().len() - all_before,
    );
    let state = app_state(&settings);
    let body = review(pod_request(&[&concurrent_image]));
    let concurrent = |state: &AppState| {
        let (own_before, all_before) = (registry_requests(&state.metrics), lab.requests().len());
        let (elapsed, answers) = runtime.block_on(async {
            let started = Instant::now();
            let reviews = (0..REVIEWS).map(|_| {
                let (state, body) = (state.clone(), body.clone());
                tokio::spawn(async move { common::post(&state, "/validate?timeout=10s", body).await.1 })
            });
            let answers = futures::future::join_all(reviews).await;
            (started.elapsed(), answers)
        });
        for answer in answers {
            let answer = answer.expect("review");
            assert_eq!(answer["response"]["allowed"], true, "{answer}");
        }
        let requests = (
            registry_requests(&state.metrics) - own_before,
            lab.requests().len() - all_before,
        );
        (elapsed, requests)
    };
    let (concurrent_time, concurrent_requests) = concurrent(&state);
    let text = state.metrics.encode();
    // The same again, the image now cached: what the reviews cost without verification.
    let (cached_concurrent_time, cached_concurrent_requests) = concurrent(&state);
    let cache = |result: &str| {
        counter(
            &text,
            &format!("portcullis_verification_cache_requests_total{{result=\"{result}\"}}"),
        )
    };

    let (tokens_asked, token_registry_requests) = pull_tokens(&lab, &runtime);

    // The report.
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "Registry: Debian's docker-registry on loopback (plain HTTP), one-layer images signed by cosign with a key (no transparency log); trust entry with one key authority, no attestations required. 2-core machine.\n"
    );
    println!("| measurement | runs | p50 (ms) | p99 (ms) | registry requests each |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, s: &Stats, requests: String| {
        println!(
            "| {name} | {} | {:.2} | {:.2} | {requests} |",
            s.count,
            ms(s.p50),
            ms(s.p99)
        )
    };
    row(
        "cold, whole process: `portcullis verify`",
        &portcullis_process,
        portcullis_process_requests.to_string(),
    );
    row(
        "cold, whole process: `cosign verify`",
        &cosign_process,
        cosign_requests.to_string(),
    );
    row(
        "cold, whole process, cosign 3 bundle: `portcullis verify`",
        &portcullis_bundle,
        portcullis_bundle_requests.to_string(),
    );
    row(
        "cold, whole process, cosign 3 bundle: `cosign verify` (cosign 3)",
        &cosign3_bundle,
        cosign3_requests.to_string(),
    );
    row(
        "cold, in-process: `Verifier::verify`, distinct images",
        &cold,
        format!("{cold_requests} ({cold_own_requests} by portcullis' own client)"),
    );
    row(
        "floor: one registry round trip (manifest GET, kept connection)",
        &round_trip_kept,
        "1".into(),
    );
    row(
        "floor: one registry round trip (manifest GET, new connection)",
        &round_trip_new,
        "1".into(),
    );
    println!();
    println!(
        "Requests of one cold verification by portcullis, in order: {}",
        request_list.join(", ")
    );
    println!();
    println!("Requests of one `cosign verify`, in order: {}", cosign_list.join(", "));
    println!();
    println!("| cached verification | calls | mean added cost per image (ns) |");
    println!("|---|---|---|");
    println!(
        "| `Verifier::verify`, image already verified | {hits} | {:.0} |",
        cached.as_secs_f64() * 1e9
    );
    println!(
        "| `Reviewer::verify`, Pod of 3 verified images (facts clone of {:.0} ns per Pod taken off) | {} | {:.0} |",
        clone_per_pod.as_secs_f64() * 1e9,
        CACHED_CALLS / 3 / 1000 * 1000,
        reviewer_per_image.as_secs_f64() * 1e9
    );
    println!();
    println!("| reviews of a new image (in-process router) | wall time (ms) | registry requests | cache miss / hit / coalesced |");
    println!("|---|---|---|---|");
    println!(
        "| 1 review | {:.2} | {} ({} by portcullis' own client) | - |",
        ms(single_time),
        single_requests.1,
        single_requests.0
    );
    println!(
        "| {REVIEWS} concurrent reviews | {:.2} | {} ({} by portcullis' own client) | {} / {} / {} |",
        ms(concurrent_time),
        concurrent_requests.1,
        concurrent_requests.0,
        cache("miss"),
        cache("hit"),
        cache("coalesced")
    );
    println!(
        "| {REVIEWS} concurrent reviews, the same image again (cached) | {:.2} | {} | - |",
        ms(cached_concurrent_time),
        cached_concurrent_requests.1
    );
    println!();
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "- portcullis verify / cosign verify (whole process, p50) = {:.2} (aim: < 1)",
        ratio(portcullis_process.p50, cosign_process.p50)
    );
    println!(
        "- the same for a cosign 3 bundle: portcullis verify / cosign 3 verify (whole process, p50) = {:.2} (aim: < 1)",
        ratio(portcullis_bundle.p50, cosign3_bundle.p50)
    );
    println!(
        "- cold in-process p50 / ({cold_requests} requests made x kept round trip p50) = {:.2} (aim: <= 1.5)",
        ratio(cold.p50, round_trip_kept.p50 * cold_requests as u32)
    );
    println!(
        "- cold in-process p50 / ({NEEDED_REQUESTS} requests of the classic format alone x kept round trip p50) = {:.2}",
        ratio(cold.p50, round_trip_kept.p50 * NEEDED_REQUESTS as u32)
    );
    println!(
        "- cached added cost per image: {:.0} ns through the verifier, {:.0} ns through the reviewer (aim: < 10000 ns)",
        cached.as_secs_f64() * 1e9,
        reviewer_per_image.as_secs_f64() * 1e9
    );
    println!(
        "- {REVIEWS} concurrent reviews made {} registry requests; one cold verification makes {cold_requests}",
        concurrent_requests.1
    );
    println!(
        "- pull tokens for {TOKEN_VERIFICATIONS} verifications of one signed image behind a registry's token auth, with the cache off (`cacheTtl: 0s`, so each one reads the registry: {token_registry_requests} registry requests in all): **{tokens_asked}** (aim: 1)"
    );
}

/// The lab's registry behind token auth (the token service of `tests/common/tokens.rs`), one
/// signed image on it, verified [`TOKEN_VERIFICATIONS`] times by one verifier whose cache is
/// off: the pull tokens it asked for, and the registry requests it made.
fn pull_tokens(lab: &lab::Lab, runtime: &tokio::runtime::Runtime) -> (usize, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tokens, issued) = common::tokens::token_service(dir.path());
    // Pushed and signed while the registry is open (crane and cosign refuse a token service
    // on a loopback address), then served from the same storage behind the token auth.
    let (open, service) = lab::start_registry(dir.path(), "", std::process::Stdio::null());
    let pinned = lab::push_image(
        &lab::tool("crane"),
        dir.path(),
        &format!("{open}/tokens/app:1"),
        "app",
        "tokens",
    );
    lab.sign("trusted.key", &pinned);
    service.stop();
    let auth = common::tokens::token_auth(dir.path(), &tokens);
    let (registry, _service) = lab::start_registry(dir.path(), &auth, std::process::Stdio::null());
    let image = ImageReference::parse(&pinned.replace(&open, &registry)).expect("reference");
    let yaml = format!(
        r#"images:
  registries: {{ allow: ["{registry}", "{tokens}"], insecure: ["{registry}", "{tokens}"] }}
  verification: {{ cacheTtl: 0s, failureCacheTtl: 0s, registryTimeout: 10s }}
  trust:
    - name: tokens
      images: ["{registry}/tokens/**"]
      authorities: [{{ name: ci-key, key: {{ path: {key} }} }}]
"#,
        key = lab.key("trusted").display()
    );
    let settings = Config::from_yaml(&yaml)
        .expect("config")
        .validate(false)
        .expect("valid config");
    let metrics = Arc::new(Metrics::new());
    let verifier = Arc::new(Verifier::new(settings.trust, metrics.clone()).expect("verifier"));
    let before = *issued.lock().unwrap();
    for _ in 0..TOKEN_VERIFICATIONS {
        let deadline = Instant::now() + Duration::from_secs(30);
        let verified = runtime.block_on(verifier.verify(&image, &PullSecretRefs::default(), deadline));
        assert_eq!(
            verified.verification.status,
            VerificationStatus::Verified,
            "{verified:?}"
        );
    }
    let asked = *issued.lock().unwrap() - before;
    (asked, registry_requests(&metrics))
}

/// Requests portcullis' own registry client made (the `sigstore` crate's are not counted there).
fn registry_requests(metrics: &Metrics) -> usize {
    counter(&metrics.encode(), "portcullis_registry_requests_total{") as usize
}

/// The sum of the samples whose line starts with `prefix`.
fn counter(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn median(values: &[usize]) -> usize {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// `"GET /v2/bench/x/manifests/sha256-....sig HTTP/1.1" 200` -> `GET manifests/<digest>.sig 200`.
fn describe(line: &str, pinned: &str) -> String {
    let digest = pinned.split_once('@').map_or("", |(_, d)| d);
    let request = line.split('"').nth(1).unwrap_or(line);
    let status = line
        .split('"')
        .nth(2)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("?");
    let mut words = request.split_whitespace();
    let (method, path) = (words.next().unwrap_or("?"), words.next().unwrap_or("?"));
    let path = path
        .replace(digest, "<digest>")
        .replace(&digest.replace(':', "-"), "<digest>");
    let path = match path
        .find("/manifests/")
        .or_else(|| path.find("/blobs/"))
        .or_else(|| path.find("/referrers/"))
    {
        Some(at) => path[at + 1..].to_string(),
        None => path,
    };
    format!("`{method} {path}` {status}")
}

fn app_state(settings: &portcullis::config::Settings) -> AppState {
    let policies = portcullis::admission::setup::load_policies(&Source::Embedded, settings).expect("policies");
    let namespaces = StaticNamespaces(HashMap::from([(
        "team-a".to_string(),
        BTreeMap::from([(portcullis::risk::LABEL.to_string(), "low".to_string())]),
    )]));
    server::app_state(settings, policies, Arc::new(namespaces)).expect("state")
}
