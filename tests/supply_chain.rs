//! Image verification through the full webhook against real parts: Debian's docker-registry,
//! images pushed with crane, signatures made by real cosign (built from the Go module proxy by
//! `scripts/tools.sh`). Each case is a Pod review answered by the in-process router.

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use common::lab::{self, attestation_tag, run, signature_tag, tool, upload_blob, ClosedPort};
use common::volume::MountedVolume;
use common::*;
use portcullis::policy::Source;
use portcullis::server::AppState;

/// The lab (`common::lab`) with images in every state the cases need, two cosign keys, and
/// registries that are down, slow, or outside the allow-list.
struct Lab {
    lab: lab::Lab,
    /// Allowed but nothing listens: "registry down".
    dead: String,
    _dead_port: ClosedPort,
    /// Allowed, accepts connections and never answers: "registry slow".
    slow: String,
    /// Not allowed; counts connections to prove none is made.
    outside: String,
    outside_listener: TcpListener,
    images: HashMap<&'static str, String>,
    _slow_listener: TcpListener,
}

/// The shared lab's fields and helpers (`dir`, `registry`, `cosign`, `key`, `push`, ...).
impl std::ops::Deref for Lab {
    type Target = lab::Lab;

    fn deref(&self) -> &lab::Lab {
        &self.lab
    }
}

fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    // Set up on a plain thread: the setup blocks, and tests call this from async code.
    LAB.get_or_init(|| std::thread::spawn(Lab::start).join().expect("lab setup"))
}

impl Lab {
    fn start() -> Lab {
        let lab = lab::Lab::start();
        let registry = lab.registry.clone();
        let mut images = HashMap::new();
        let mut push = |name: &'static str, repo: &str, tag: &str, content: &str| {
            let pinned = lab.push(name, repo, tag, content);
            images.insert(name, pinned.clone());
            pinned
        };
        let signed = push("signed", "micro/signed", "1", "signed");
        let _unsigned = push("unsigned", "micro/unsigned", "1", "unsigned");
        let wrong_key = push("wrong-key", "micro/wrong-key", "1", "wrong key");
        let other_digest = push("other-digest", "micro/other-digest", "1", "other digest");
        let tampered = push("tampered", "micro/tampered", "1", "tampered");
        let threshold = push("threshold", "micro/threshold/app", "1", "threshold");
        let moving_first = push("moving-first", "micro/moving", "1", "first content");
        let attested = push("attested", "micro/attested", "1", "attested");
        let borrowed = push("borrowed-attestation", "micro/borrowed", "1", "borrowed");
        let untrusted_builder = push("untrusted-builder", "micro/untrusted-builder", "1", "untrusted builder");
        // cosign's new bundle format: Sigstore bundles attached as OCI referrers (this registry
        // has no referrers API, so cosign and portcullis use the referrers tag).
        let bundle_signed = push("bundle-signed", "micro/bundle-signed", "1", "bundle signed");
        let bundle_wrong_key = push("bundle-wrong-key", "micro/bundle-wrong-key", "1", "bundle wrong key");
        let bundle_sbom_only = push("bundle-sbom-only", "micro/bundle-sbom-only", "1", "bundle sbom only");
        // cosign 3 with its defaults (bundles in referrers), and cosign 2 and 3 on one image.
        let v3_signed = push("v3-signed", "micro/v3-signed", "1", "v3 signed");
        let v2_v3_one_key = push("v2-v3-one-key", "micro/threshold/one-key", "1", "v2 and v3, one key");
        let v2_v3_two_keys = push("v2-v3-two-keys", "micro/threshold/two-keys", "1", "v2 and v3, two keys");

        lab.generate_key("trusted");
        lab.generate_key("other");
        lab.sign("trusted.key", &signed);
        lab.sign("other.key", &wrong_key);
        lab.sign("trusted.key", &tampered);
        lab.sign("trusted.key", &threshold);
        lab.sign("trusted.key", &moving_first);
        for image in [&attested, &borrowed, &untrusted_builder] {
            lab.sign("trusted.key", image);
        }
        let dir = lab.dir.path();
        std::fs::write(
            dir.join("sbom.json"),
            r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[]}"#,
        )
        .unwrap();
        let provenance = |builder: &str| {
            let file = dir.join(format!("provenance-{}.json", builder.len()));
            let predicate = json!({"builder": {"id": builder}, "buildType": "https://ci.example.com/build", "invocation": {}, "materials": []});
            std::fs::write(&file, predicate.to_string()).unwrap();
            file
        };
        let sbom = dir.join("sbom.json");
        lab.attest("cyclonedx", &sbom, &attested);
        lab.attest(
            "slsaprovenance",
            &provenance("https://ci.example.com/builders/micro-apps"),
            &attested,
        );
        lab.attest("cyclonedx", &sbom, &untrusted_builder);
        let bundle = ["--new-bundle-format"];
        lab.sign_with("trusted.key", &bundle_signed, &bundle);
        lab.attest_with("cyclonedx", &sbom, &bundle_signed, &bundle);
        lab.sign_with("other.key", &bundle_wrong_key, &bundle);
        lab.attest_with("cyclonedx", &sbom, &bundle_sbom_only, &bundle);
        lab.sign_v3("trusted.key", &v3_signed);
        lab.attest_v3("cyclonedx", &sbom, &v3_signed);
        lab.sign("trusted.key", &v2_v3_one_key);
        lab.sign_v3("trusted.key", &v2_v3_one_key);
        lab.sign("trusted.key", &v2_v3_two_keys);
        lab.sign_v3("other.key", &v2_v3_two_keys);
        lab.attest(
            "slsaprovenance",
            &provenance("https://laptop.example/evil"),
            &untrusted_builder,
        );

        // A signature of another image, copied to this image's signature tag.
        run(&mut lab.crane_cmd(&["copy", &signature_tag(&signed), &signature_tag(&other_digest)]));
        tamper(&registry, &signature_tag(&tampered));
        // Another image's attestations, copied to this image's attestation tag.
        run(&mut lab.crane_cmd(&["copy", &attestation_tag(&attested), &attestation_tag(&borrowed)]));

        let slow_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let outside_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        outside_listener.set_nonblocking(true).unwrap();
        let slow = slow_listener.local_addr().unwrap().to_string();
        let outside = outside_listener.local_addr().unwrap().to_string();
        let dead_port = ClosedPort::new();
        Lab {
            dead: dead_port.addr.clone(),
            _dead_port: dead_port,
            slow,
            outside,
            outside_listener,
            images,
            lab,
            _slow_listener: slow_listener,
        }
    }

    fn config(&self) -> String {
        let (registry, dead, slow) = (&self.registry, &self.dead, &self.slow);
        format!(
            r#"images:
  registries:
    allow: ["{registry}", "{dead}", "{slow}"]
    insecure: ["{registry}", "{dead}", "{slow}"]
  verification: {{ registryTimeout: 10s }}
  trust:
    - name: two-keys
      images: ["{registry}/micro/threshold/**"]
      authorities:
        - {{ name: ci-key, key: {{ path: {trusted} }} }}
        - {{ name: release-key, key: {{ path: {other} }} }}
      threshold: 2
    - name: micro-apps
      images: ["{registry}/micro/**", "{dead}/**", "{slow}/**"]
      authorities:
        - {{ name: ci-key, key: {{ path: {trusted} }} }}
      attestations:
        - {{ name: sbom, predicateTypes: [https://cyclonedx.org/bom, https://spdx.dev/Document] }}
        - {{ name: provenance, predicateTypes: [https://slsa.dev/provenance/v1, https://slsa.dev/provenance/v0.2] }}
"#,
            trusted = self.key("trusted").display(),
            other = self.key("other").display(),
        )
    }

    fn state(&self) -> AppState {
        self.state_at("low")
    }

    fn state_at(&self, level: &str) -> AppState {
        state_with_source(&settings(&self.config()), Source::Embedded, &[("team-a", level)])
    }
}

/// Rewrites the signed payload of a signature manifest, keeping the signature: what an attacker
/// who can write to the registry but has no key could do.
fn tamper(registry: &str, signature_ref: &str) {
    let (name, tag) = signature_ref.rsplit_once(':').unwrap();
    let repository = name.strip_prefix(&format!("{registry}/")).unwrap();
    let base = format!("http://{registry}/v2/{repository}");
    let http = reqwest::blocking::Client::new();
    let manifest: Value = http
        .get(format!("{base}/manifests/{tag}"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let layer = &manifest["layers"][0];
    let payload: Value = http
        .get(format!("{base}/blobs/{}", layer["digest"].as_str().unwrap()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut forged = payload.clone();
    forged["optional"] = json!({"forged": "yes"});
    let forged = serde_json::to_vec(&forged).unwrap();
    let digest = upload_blob(registry, &base, &forged);
    let mut new_manifest = manifest.clone();
    new_manifest["layers"][0]["digest"] = json!(digest);
    new_manifest["layers"][0]["size"] = json!(forged.len());
    let put = http
        .put(format!("{base}/manifests/{tag}"))
        .header(
            "content-type",
            manifest["mediaType"]
                .as_str()
                .unwrap_or("application/vnd.oci.image.manifest.v1+json"),
        )
        .body(serde_json::to_vec(&new_manifest).unwrap())
        .send()
        .unwrap();
    assert!(put.status().is_success(), "manifest upload: {}", put.status());
}

#[tokio::test]
async fn a_signed_pinned_image_is_admitted() {
    let lab = lab();
    let state = lab.state();
    let answer = decide(&state, &lab.images["signed"]).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains("portcullis_image_verifications_total{status=\"verified\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_images_admitted_total{risk_level=\"low\",pinned=\"true\",signed=\"true\",sbom=\"false\",provenance=\"false\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn each_failure_class_is_denied_with_its_own_status() {
    let lab = lab();
    let state = lab.state();
    for (image, status) in [
        ("unsigned", "is unsigned: "),
        ("wrong-key", "is invalid: "),
        ("other-digest", "is invalid: "),
        ("tampered", "is invalid: "),
        ("threshold", "is untrusted: signed by 1 of the 2 authorities required"),
        ("bundle-wrong-key", "is invalid: "),
        // An SBOM attestation is not a signature.
        ("bundle-sbom-only", "is unsigned: "),
    ] {
        let answer = decide(&state, &lab.images[image]).await;
        assert_eq!(answer["response"]["allowed"], false, "{image}: {answer}");
        assert_eq!(denied_by(&answer), ["images.signatures"], "{image}: {answer}");
        assert!(message(&answer).contains(status), "{image}: {}", message(&answer));
    }
}

/// No `.sig` or `.att` tag for `image`: its signatures and attestations are all in referrers.
fn assert_only_in_referrers(lab: &Lab, image: &str) {
    for tag in [signature_tag(image), attestation_tag(image)] {
        let (repository, tag) = tag.rsplit_once(':').unwrap();
        let listed = run(&mut lab.crane_cmd(&["ls", repository]));
        assert!(!listed.contains(tag), "{tag} exists: {listed}");
    }
}

#[tokio::test]
async fn a_signature_and_an_sbom_in_the_new_bundle_format_are_verified() {
    let lab = lab();
    let image = &lab.images["bundle-signed"];
    assert_only_in_referrers(lab, image);
    let answer = decide(&lab.state_at("medium"), image).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
}

#[tokio::test]
async fn cosign_3_signatures_and_attestations_made_with_its_defaults_are_verified() {
    let lab = lab();
    let image = &lab.images["v3-signed"];
    assert_only_in_referrers(lab, image);
    let state = lab.state_at("medium");
    let answer = decide(&state, image).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains("portcullis_images_admitted_total{risk_level=\"medium\",pinned=\"true\",signed=\"true\",sbom=\"true\",provenance=\"false\"} 1"),
        "the cosign 3 SBOM counts: {metrics}"
    );
}

#[tokio::test]
async fn cosign_2_and_3_signatures_on_one_image_count_each_key_once() {
    let lab = lab();
    let state = lab.state();
    // One key in both formats is one signer: a threshold of two is not met.
    let answer = decide(&state, &lab.images["v2-v3-one-key"]).await;
    assert_eq!(denied_by(&answer), ["images.signatures"], "{answer}");
    assert!(
        message(&answer).contains("is untrusted: signed by 1 of the 2 authorities required"),
        "{}",
        message(&answer)
    );
    // Two keys, one in each format: both count.
    let answer = decide(&state, &lab.images["v2-v3-two-keys"]).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
}

#[tokio::test]
async fn the_referrers_api_and_the_referrers_tag_give_the_same_facts() {
    let lab = lab();
    // A registry with the OCI 1.1 referrers API beside the lab's (distribution 2.8), which has
    // none, so that cosign 3 keeps its bundles there under the referrers tag instead.
    let (api, _service, _logs, images) = tokio::task::spawn_blocking(|| {
        let dir = tempfile::tempdir().unwrap();
        let (api, service) = lab::start_referrers_registry(dir.path());
        let mut images = Vec::new();
        for registry in [lab.registry.clone(), api.clone()] {
            let push = |name: &str| {
                let target = format!("{registry}/micro/referrers/{name}:1");
                let file = format!("referrers-{}-{name}", registry.replace([':', '.'], "-"));
                lab::push_image(&lab.crane, lab.dir.path(), &target, &file, &format!("referrers {name}"))
            };
            let (signed, wrong_key, unsigned) = (push("signed"), push("wrong-key"), push("unsigned"));
            lab.sign_v3("trusted.key", &signed);
            lab.attest_v3("cyclonedx", &lab.dir.path().join("sbom.json"), &signed);
            lab.sign_v3("other.key", &wrong_key);
            images.push([signed, wrong_key, unsigned]);
        }
        (api, service, dir, images)
    })
    .await
    .unwrap();

    // There cosign used the API: the referrers are listed by it, and there is no referrers tag.
    let signed_on_api = &images[1][0];
    let (name, digest) = signed_on_api.split_once('@').unwrap();
    let repository = name.strip_prefix(&format!("{api}/")).unwrap();
    let referrers: Value = reqwest::get(format!("http://{api}/v2/{repository}/referrers/{digest}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(referrers["manifests"].as_array().map(Vec::len), Some(2), "{referrers}");
    let tags = run(&mut lab.crane_cmd(&["ls", name]));
    assert!(!tags.contains("sha256-"), "a referrers tag beside the API: {tags}");
    let tags = run(&mut lab.crane_cmd(&["ls", images[0][0].split_once('@').unwrap().0]));
    assert!(tags.contains("sha256-"), "no referrers tag on distribution 2.8: {tags}");

    let (registry, trusted) = (&lab.registry, lab.key("trusted"));
    let yaml = format!(
        r#"images:
  registries: {{ allow: ["{registry}", "{api}"], insecure: ["{registry}", "{api}"] }}
  trust:
    - name: referrers
      images: ["{registry}/micro/referrers/**", "{api}/micro/referrers/**"]
      authorities: [{{ name: ci-key, key: {{ path: {trusted} }} }}]
"#,
        trusted = trusted.display()
    );
    let verifier = std::sync::Arc::new(
        portcullis::images::verify::Verifier::new(
            settings(&yaml).trust.clone(),
            std::sync::Arc::new(portcullis::metrics::Metrics::new()),
        )
        .unwrap(),
    );
    let facts = |image: &str| {
        let reference = portcullis::images::ImageReference::parse(image).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let verifier = &verifier;
        async move {
            let verification = verifier
                .verify(&reference, &Default::default(), deadline)
                .await
                .verification;
            json!({"status": verification.status, "signers": verification.signers, "attestations": verification.attestations})
        }
    };
    for (index, status) in ["verified", "invalid", "unsigned"].into_iter().enumerate() {
        let (by_tag, by_api) = (facts(&images[0][index]).await, facts(&images[1][index]).await);
        assert_eq!(by_tag["status"], status, "{by_tag}");
        assert_eq!(by_api, by_tag, "{}", images[1][index]);
    }
    let signed = facts(signed_on_api).await;
    assert_eq!(
        signed["attestations"][0]["predicate_type"], "https://cyclonedx.org/bom",
        "{signed}"
    );
    assert_eq!(signed["attestations"][0]["verified"], true, "{signed}");
}

#[tokio::test]
async fn a_tag_is_resolved_and_the_cache_never_follows_it() {
    let lab = lab();
    let state = lab.state();
    let tagged = format!("{}/micro/moving:1", lab.registry);
    // Low risk: an unpinned image is only warned about, so the signature decides.
    let first = decide(&state, &tagged).await;
    assert_eq!(first["response"]["allowed"], true, "{first}");
    let pinned_first = &lab.images["moving-first"];
    let warnings = first["response"]["warnings"].to_string();
    assert!(
        warnings.contains(pinned_first.split('@').nth(1).unwrap()),
        "the warning names the digest to pin: {warnings}"
    );

    // The tag moves to unsigned content; the cached verdict of the old digest must not apply.
    let layer = lab.dir.path().join("moved.txt");
    std::fs::write(&layer, "moved").unwrap();
    let tar = lab.dir.path().join("moved.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(lab.dir.path())
        .arg("moved.txt"));
    run(Command::new(tool("crane")).args(["append", "--insecure", "-f", tar.to_str().unwrap(), "-t", &tagged]));
    let second = decide(&state, &tagged).await;
    assert_eq!(second["response"]["allowed"], false, "{second}");
    assert!(message(&second).contains("is unsigned"), "{}", message(&second));
}

#[tokio::test]
async fn a_registry_that_is_down_is_an_error_not_unsigned_and_is_not_cached() {
    let lab = lab();
    let state = lab.state();
    let image = format!("{}/micro/app@sha256:{}", lab.dead, "a".repeat(64));
    for _ in 0..2 {
        let answer = decide(&state, &image).await;
        assert_eq!(answer["response"]["allowed"], false);
        assert!(message(&answer).contains("is error: registry"), "{}", message(&answer));
        assert!(!message(&answer).contains("unsigned"));
    }
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains("portcullis_image_verifications_total{status=\"error\"} 2"),
        "{metrics}"
    );
    // The series exists from startup; it stays at zero.
    assert!(
        metrics.contains("portcullis_verification_cache_requests_total{result=\"hit\"} 0\n"),
        "errors are never cached: {metrics}"
    );
}

#[tokio::test]
async fn a_slow_registry_times_out_within_the_deadline() {
    let lab = lab();
    let state = lab.state();
    let image = format!("{}/micro/app@sha256:{}", lab.slow, "b".repeat(64));
    let started = std::time::Instant::now();
    let (status, answer) = post(&state, "/validate?timeout=2s", pod_review(&image)).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], false);
    assert!(message(&answer).contains("is timeout: "), "{}", message(&answer));
    assert!(
        elapsed < Duration::from_secs(2),
        "answered after {elapsed:?}, past the apiserver's timeout"
    );
}

#[tokio::test]
async fn reviews_waiting_on_a_registry_never_hold_up_reviews_that_need_none() {
    let lab = lab();
    // One review slot, taken by a review of an image on a registry that never answers.
    let config = format!("{}admission: {{ maxConcurrentReviews: 1 }}\n", lab.config());
    let state = state_with_source(&settings(&config), Source::Embedded, &[("team-a", "low")]);
    let stuck = format!("{}/micro/app@sha256:{}", lab.slow, "d".repeat(64));
    let stalled = tokio::spawn({
        let state = state.clone();
        async move { post(&state, "/validate?timeout=3s", pod_review(&stuck)).await }
    });
    poll_async(
        "the review slot to be taken",
        Duration::from_secs(5),
        Duration::from_millis(10),
        async || (state.review_slots.available(&lab.slow) == 0).then_some(()),
    )
    .await;
    // An image off the allow-list is decided without any registry: at once, by its policy, not
    // after waiting for the slot until the deadline.
    let outside = format!("{}/evil/miner@sha256:{}", lab.outside, "e".repeat(64));
    let (_, answer) = post(&state, "/validate?timeout=3s", pod_review(&outside)).await;
    assert_eq!(denied_by(&answer), ["images.allowed_registries"], "{answer}");
    assert_eq!(
        state.review_slots.available(&lab.slow),
        0,
        "the stuck review still holds the slot"
    );
    let (_, stuck) = stalled.await.unwrap();
    assert!(message(&stuck).contains("is timeout: "), "{}", message(&stuck));
}

#[tokio::test]
async fn an_image_outside_the_allow_list_is_never_contacted() {
    let lab = lab();
    let state = lab.state();
    let image = format!("{}/evil/miner@sha256:{}", lab.outside, "c".repeat(64));
    let answer = decide(&state, &image).await;
    assert_eq!(denied_by(&answer), ["images.allowed_registries"], "{answer}");
    assert!(
        matches!(lab.outside_listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a connection was made to a registry outside the allow-list"
    );
}

#[tokio::test]
async fn one_hundred_reviews_of_a_new_image_verify_it_once() {
    let lab = lab();
    let state = lab.state();
    let image = lab.images["signed"].clone();
    // The apiserver's longest timeout: the hundred reviews' evaluations (a debug build, one per
    // core at a time) all run within one deadline, and on a loaded 2-core machine they once
    // took longer than the 10 s `decide` allows. This test is about coalescing, not speed.
    let reviews = (0..100).map(|_| {
        let (state, image) = (state.clone(), image.clone());
        tokio::spawn(async move {
            let (_, answer) = post(&state, "/validate?timeout=30s", pod_review(&image)).await;
            answer
        })
    });
    for answer in futures::future::join_all(reviews).await {
        let answer = answer.unwrap();
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
    }
    let (_, metrics) = get(&state, "/metrics").await;
    let count = |needle: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(needle))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(
        count("portcullis_verification_cache_requests_total{result=\"miss\"}"),
        1,
        "{metrics}"
    );
    assert_eq!(
        count("portcullis_verification_cache_requests_total{result=\"hit\"}")
            + count("portcullis_verification_cache_requests_total{result=\"coalesced\"}"),
        99
    );
}

#[tokio::test]
async fn an_image_in_steady_use_is_verified_again_before_its_verdict_expires() {
    let lab = lab();
    let ttl = Duration::from_secs(4);
    let config = lab
        .config()
        .replace("{ registryTimeout: 10s }", "{ registryTimeout: 10s, cacheTtl: 4s }");
    assert!(config.contains("cacheTtl: 4s"), "{config}");
    let state = state_with_source(&settings(&config), Source::Embedded, &[("team-a", "low")]);
    let image = lab.images["signed"].clone();
    let counts = |metrics: &str| {
        let count = |needle: &str| -> u64 {
            let line = metrics.lines().find(|l| l.starts_with(needle));
            line.and_then(|l| l.rsplit(' ').next()?.parse().ok())
                .unwrap_or_else(|| panic!("{needle}: {metrics}"))
        };
        (
            count("portcullis_verification_cache_requests_total{result=\"miss\"}"),
            count("portcullis_verification_cache_requests_total{result=\"hit\"}"),
            count("portcullis_verification_refreshes_total{result=\"refreshed\"}"),
        )
    };
    let allowed = |answer: Value| assert_eq!(answer["response"]["allowed"], true, "{answer}");

    allowed(decide(&state, &image).await);
    // The first verdict was stored before this: it expires at the latest one lifetime later.
    let stored = std::time::Instant::now();
    // Used in the last quarter of its lifetime: served, and verified again in the background.
    tokio::time::sleep_until((stored + ttl.mul_f64(0.8)).into()).await;
    allowed(decide(&state, &image).await);
    // Within 3 s: the refreshed verdict, stored after the review above, outlives the check below.
    poll::poll_async(
        "the refresh",
        Duration::from_secs(3),
        Duration::from_millis(20),
        async || {
            let (_, metrics) = get(&state, "/metrics").await;
            (counts(&metrics).2 == 1).then_some(())
        },
    )
    .await;
    // It ran on the refreshes' own thread (of the lowest priority: `background::Spawner`).
    #[cfg(target_os = "linux")]
    {
        let threads = std::fs::read_dir("/proc/self/task").unwrap();
        let names: Vec<String> = threads
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .collect();
        assert!(names.iter().any(|name| name.trim() == "verify-refresh"), "{names:?}");
    }
    // Past the first verdict's lifetime the refreshed one serves: no review waits for the registry.
    tokio::time::sleep_until((stored + ttl.mul_f64(1.1)).into()).await;
    allowed(decide(&state, &image).await);
    let (_, metrics) = get(&state, "/metrics").await;
    assert_eq!(counts(&metrics), (1, 2, 1), "(miss, hit, refreshed): {metrics}");
}

#[test]
fn verify_command_prints_the_facts() {
    let lab = lab();
    let config = lab.dir.path().join("portcullis.yaml");
    std::fs::write(&config, lab.config()).unwrap();
    let verify = |image: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["verify", "--config", config.to_str().unwrap()])
            .args(extra)
            .arg(image)
            .output()
            .unwrap()
    };
    let signed = verify(&lab.images["signed"], &[]);
    assert_eq!(
        signed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let text = String::from_utf8_lossy(&signed.stdout);
    assert!(
        text.contains("status:  verified") && text.contains("signer:  ci-key [key]"),
        "{text}"
    );
    let unsigned = verify(&lab.images["unsigned"], &["--output", "json"]);
    assert_eq!(unsigned.status.code(), Some(1));
    let facts: Value = serde_json::from_slice(&unsigned.stdout).unwrap();
    assert_eq!(facts["verification"]["status"], "unsigned");
    assert!(Path::new(&lab.cosign).exists());
}

#[tokio::test]
async fn a_signed_image_with_sbom_and_trusted_provenance_is_admitted_at_high() {
    let lab = lab();
    let state = lab.state_at("high");
    let answer = decide(&state, &lab.images["attested"]).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains("portcullis_images_admitted_total{risk_level=\"high\",pinned=\"true\",signed=\"true\",sbom=\"true\",provenance=\"true\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn attestations_are_required_by_risk_level_and_must_be_about_this_image() {
    let lab = lab();
    let medium = lab.state_at("medium");
    let answer = decide(&medium, &lab.images["signed"]).await;
    assert_eq!(denied_by(&answer), ["images.sbom"], "no SBOM at medium: {answer}");
    assert!(
        message(&answer).contains("cosign attest --type cyclonedx"),
        "{}",
        message(&answer)
    );

    let answer = decide(&medium, &lab.images["borrowed-attestation"]).await;
    assert_eq!(
        denied_by(&answer),
        ["images.sbom"],
        "an SBOM about another digest does not count: {answer}"
    );

    let high = lab.state_at("high");
    let answer = decide(&high, &lab.images["untrusted-builder"]).await;
    assert_eq!(denied_by(&answer), ["images.provenance"], "{answer}");
    assert!(
        message(&answer).contains("was built by https://laptop.example/evil"),
        "{}",
        message(&answer)
    );

    let low = lab.state_at("low");
    assert_eq!(
        decide(&low, &lab.images["signed"]).await["response"]["allowed"],
        true,
        "low needs no SBOM"
    );
}

#[test]
fn check_verifies_images_online_and_skips_them_offline() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portcullis.yaml");
    std::fs::write(&config, lab.config()).unwrap();
    let manifest = |name: &str, image: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: team-a\n  labels: {{app.kubernetes.io/name: {name}, app.kubernetes.io/version: '1', portcullis.io/owner: team-a}}\nspec:\n  containers:\n    - name: app\n      image: {image}\n      securityContext: {{allowPrivilegeEscalation: false}}\n      resources: {{requests: {{cpu: 100m, memory: 64Mi}}, limits: {{cpu: 200m, memory: 128Mi}}}}\n"
        )
    };
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!(
            "{}---\n{}",
            manifest("good", &lab.images["signed"]),
            manifest("bad", &lab.images["unsigned"])
        ),
    )
    .unwrap();
    let check = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["check", "--risk-level", "low", "--config", config.to_str().unwrap()])
            .args(extra)
            .arg(&file)
            .output()
            .unwrap()
    };
    let online = check(&[]);
    let text = String::from_utf8_lossy(&online.stdout);
    assert_eq!(online.status.code(), Some(1), "{text}");
    assert!(text.contains("allow Pod team-a/good"), "{text}");
    assert!(
        text.contains("deny Pod team-a/bad images.signatures: container \"app\""),
        "{text}"
    );
    assert!(text.contains("is unsigned"), "{text}");

    let offline = check(&["--offline"]);
    let text = String::from_utf8_lossy(&offline.stdout);
    assert_eq!(
        offline.status.code(),
        Some(0),
        "offline, signatures are not checked: {text}"
    );
    assert!(!text.contains("images.signatures"), "{text}");
}

#[tokio::test]
async fn one_key_under_two_names_does_not_meet_a_threshold_of_two() {
    let lab = lab();
    let registry = &lab.registry;
    let trusted = lab.key("trusted");
    // The same key file listed twice: one signer, whatever the names say.
    let yaml = format!(
        r#"images:
  registries: {{ allow: ["{registry}"], insecure: ["{registry}"] }}
  trust:
    - name: one-key-twice
      images: ["{registry}/micro/**"]
      authorities:
        - {{ name: ci-key, key: {{ path: {key} }} }}
        - {{ name: same-key-again, key: {{ path: {key} }} }}
      threshold: 2
"#,
        key = trusted.display()
    );
    let state = state_with_source(&settings(&yaml), Source::Embedded, &[("team-a", "low")]);
    let answer = decide(&state, &lab.images["signed"]).await;
    assert_eq!(denied_by(&answer), ["images.signatures"], "{answer}");
    assert!(
        message(&answer).contains("is untrusted: signed by 1 of the 2 authorities required"),
        "{}",
        message(&answer)
    );
}

#[tokio::test]
async fn a_rotated_key_file_is_used_without_a_restart() {
    let lab = lab();
    let registry = &lab.registry;
    let pem = |name: &str| std::fs::read_to_string(lab.key(name)).unwrap();
    let (trusted, other) = (pem("trusted"), pem("other"));
    // The key as a Secret or ConfigMap volume mounts it; at first it holds another key.
    let mut volume = MountedVolume::new(&[("cosign.pub", &other)]);
    let yaml = format!(
        r#"images:
  reloadInterval: 100ms
  registries: {{ allow: ["{registry}"], insecure: ["{registry}"] }}
  trust:
    - name: rotating
      images: ["{registry}/micro/**"]
      authorities:
        - {{ name: ci-key, key: {{ path: {key} }} }}
"#,
        key = volume.path("cosign.pub").display()
    );
    let state = state_with_source(&settings(&yaml), Source::Embedded, &[("team-a", "low")]);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let reloads = tokio::spawn(portcullis::server::reload_trust(state.clone(), stopped));

    let answer = decide(&state, &lab.images["signed"]).await;
    assert_eq!(denied_by(&answer), ["images.signatures"], "{answer}");

    volume.swap(&[("cosign.pub", &trusted)]);
    poll_async(
        "the rotated key in use",
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            let (_, metrics) = get(&state, "/metrics").await;
            metrics
                .contains("portcullis_trust_reloads_total{result=\"success\"} 1")
                .then_some(())
        },
    )
    .await;
    let answer = decide(&state, &lab.images["signed"]).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains("portcullis_trust_material{kind=\"key\"} 1"),
        "{metrics}"
    );

    stop.send(true).unwrap();
    reloads.await.unwrap();
}
