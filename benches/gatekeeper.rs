//! Gatekeeper templates, side by side with Gatekeeper's own `gator bench` in the same run: every
//! `general` template of gatekeeper-library (read in place from the workplace's
//! `shared/conformance`) with its first sample constraint, and every sample object of its
//! suites, each object reviewed against all of them, the same number of times by both.
//!
//! portcullis: `Reviewer::decide` of a CREATE request for the object (the whole offline decision:
//! facts, every constraint's match and Rego, the aggregation), one review at a time.
//! gator: `gator bench --engine=rego --concurrency=1` on the same files. [`ROUNDS`] rounds, the
//! two interleaved, the ratios reported per round as the median and its range.
//!
//! Then the cluster inventory (`policies.inventory`): the time to install a new `data.inventory`
//! (what every sync rebuild costs) against its floor, converting the document for regorus once,
//! and the reviews again with that inventory installed. Run with `make bench`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/percentile.rs"]
mod percentile;
#[path = "support/spread.rs"]
mod spread;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::lab::tool;
use percentile::percentile;
use portcullis::policy::Source;
use spread::spread;

/// Reviews of every object, by each tool.
const ITERATIONS: usize = 200;
/// Each side stops early past this.
const TIME_LIMIT: Duration = Duration::from_secs(120);

/// Copies each template, its first sample constraint and its sample objects (not the
/// AdmissionReviews, and the first of objects with the same kind, namespace and name, as
/// gator keeps) into `dir`. Returns the objects.
fn gather(dir: &Path) -> Vec<Value> {
    let mut suites: Vec<PathBuf> = std::fs::read_dir(common::gatekeeper_library())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("template.yaml").is_file())
        .collect();
    suites.sort();
    let mut objects = Vec::new();
    let mut seen = BTreeSet::new();
    for suite in suites {
        let name = suite.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(suite.join("template.yaml"), dir.join(format!("{name}-template.yaml"))).unwrap();
        let mut samples: Vec<PathBuf> = std::fs::read_dir(suite.join("samples"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        samples.sort();
        let constraint = samples.iter().map(|s| s.join("constraint.yaml")).find(|c| c.is_file());
        std::fs::copy(constraint.unwrap(), dir.join(format!("{name}-constraint.yaml"))).unwrap();
        for sample in samples {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&sample)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("example_"))
                .collect();
            files.sort();
            for file in files {
                let object: Value = yaml_serde::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
                let key = (
                    object["kind"].clone().to_string(),
                    object["metadata"]["namespace"].to_string(),
                    object["metadata"]["name"].to_string(),
                );
                if object["kind"] == "AdmissionReview" || !seen.insert(key) {
                    continue;
                }
                let target = dir.join(format!(
                    "{name}-{}-{}",
                    sample.file_name().unwrap().to_string_lossy(),
                    file.file_name().unwrap().to_string_lossy()
                ));
                std::fs::copy(&file, target).unwrap();
                objects.push(object);
            }
        }
    }
    objects
}

/// A CREATE AdmissionRequest for `object`, as the apiserver would send it.
fn request(object: &Value) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    json!({
        "uid": "bench",
        "kind": {"group": group, "version": version, "kind": object["kind"]},
        "operation": "CREATE",
        "namespace": object["metadata"]["namespace"].as_str().unwrap_or(""),
        "name": object["metadata"]["name"],
        "object": object,
        "userInfo": {"username": "bench"},
    })
}

/// Rounds of both tools, interleaved: the ratio is taken per round, so a machine that changes
/// speed during the run moves both alike.
const ROUNDS: usize = 3;

/// One tool's figures in one round.
struct Figures {
    reviews: u64,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    violations_per_pass: u64,
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let objects = gather(dir.path());
    let settings = common::settings("{}");
    let state = common::state_with_source(&settings, Source::from_dirs(&[dir.path().to_path_buf()]), &[]);
    let constraints = state.reviewer.policies().policies().len();
    let requests: Vec<Value> = objects.iter().map(request).collect();
    for request in requests.iter().take(50) {
        state.reviewer.decide(request);
    }

    let rounds: Vec<(Figures, Figures)> = (0..ROUNDS)
        .map(|_| (portcullis_round(&state.reviewer, &requests), gator_round(dir.path())))
        .collect();

    println!(
        "gatekeeper-library `general`: {} templates with one constraint each, {} objects, {ITERATIONS} reviews of each per round, {ROUNDS} rounds, the tools interleaved; one review at a time. 2-core machine.\n",
        constraints,
        requests.len()
    );
    println!("| round | | reviews | reviews/s | p50 (ms) | p99 (ms) | violations per pass |");
    println!("|---|---|---|---|---|---|---|");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (index, (ours, theirs)) in rounds.iter().enumerate() {
        for (name, figures) in [
            (
                format!("portcullis (`Reviewer::decide`, {constraints} constraints loaded)"),
                ours,
            ),
            ("gator bench v3.23.0 (rego)".to_string(), theirs),
        ] {
            println!(
                "| {} | {name} | {} | {:.0} | {:.3} | {:.3} | {} |",
                index + 1,
                figures.reviews,
                figures.per_second,
                ms(figures.p50),
                ms(figures.p99),
                figures.violations_per_pass
            );
        }
    }
    println!();
    println!(
        "- portcullis / gator, reviews per second, per round: **{}**",
        spread(
            rounds.iter().map(|(ours, theirs)| ours.per_second / theirs.per_second),
            2
        )
    );
    println!(
        "- portcullis / gator, p99, per round: {}",
        spread(rounds.iter().map(|(ours, theirs)| ms(ours.p99) / ms(theirs.p99)), 2)
    );
    println!();
    let mut p99s: Vec<Duration> = rounds.iter().map(|(ours, _)| ours.p99).collect();
    p99s.sort();
    inventory(&state.reviewer, &requests, p99s[p99s.len() / 2]);
}

/// portcullis: every request decided [`ITERATIONS`] times (or until [`TIME_LIMIT`]).
fn portcullis_round(reviewer: &portcullis::admission::Reviewer, requests: &[Value]) -> Figures {
    let mut samples = Vec::new();
    let mut violations = 0;
    let started = Instant::now();
    for _ in 0..ITERATIONS {
        if started.elapsed() > TIME_LIMIT {
            break;
        }
        for request in requests {
            let begun = Instant::now();
            let outcome = reviewer.decide(request);
            samples.push(begun.elapsed());
            violations += outcome.results.iter().map(|r| r.deny.len()).sum::<usize>();
        }
    }
    let wall = started.elapsed();
    samples.sort();
    let passes = (samples.len() / requests.len()).max(1);
    Figures {
        reviews: samples.len() as u64,
        per_second: samples.len() as f64 / wall.as_secs_f64(),
        p50: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
        violations_per_pass: (violations / passes) as u64,
    }
}

/// `gator bench` on the same files.
fn gator_round(dir: &Path) -> Figures {
    let output = Command::new("timeout")
        .arg(TIME_LIMIT.as_secs().to_string())
        .arg(tool("gator"))
        .args(["bench", "--engine=rego", "--concurrency=1", "--output=json"])
        .arg(format!("--iterations={ITERATIONS}"))
        .arg(format!("--filename={}", dir.display()))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "gator bench: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let gator = &report[0];
    let duration = |field: &str| {
        let text = gator["latencies"][field].as_str().unwrap_or_default();
        let micros = if let Some(ms) = text.strip_suffix("ms") {
            ms.parse::<f64>().unwrap() * 1000.0
        } else if let Some(us) = text.strip_suffix("µs") {
            us.parse::<f64>().unwrap()
        } else {
            text.trim_end_matches('s').parse::<f64>().unwrap_or(f64::NAN) * 1e6
        };
        Duration::from_secs_f64(micros / 1e6)
    };
    Figures {
        reviews: gator["totalReviews"].as_u64().unwrap_or(0),
        per_second: gator["reviewsPerSecond"].as_f64().unwrap_or(f64::NAN),
        p50: duration("p50"),
        p99: duration("p99"),
        violations_per_pass: gator["violationCount"].as_u64().unwrap_or(0)
            / gator["iterations"].as_u64().unwrap_or(1).max(1),
    }
}

/// Ingresses spread over 20 namespaces, each with a host of its own: a cluster's inventory.
fn ingresses(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                   "metadata": {"name": format!("web-{i}"), "namespace": format!("team-{}", i % 20),
                                "labels": {"app": format!("web-{i}")}},
                   "spec": {"rules": [{"host": format!("web-{i}.example.com"), "http": {"paths": [
                       {"path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": format!("web-{i}"), "port": {"number": 80}}}}]}}]}})
        })
        .collect()
}

/// Inventory rebuilds against their floor, and reviews with the largest inventory installed.
fn inventory(reviewer: &portcullis::admission::Reviewer, requests: &[Value], p99_without: Duration) {
    println!("Inventory: installing a new `data.inventory` (every template's engine prepared again), 5 times each, median; the floor converts the same document for regorus once.\n");
    println!("| objects | install (ms) | floor (ms) | install / floor |");
    println!("|---|---|---|---|");
    for count in [100, 1000, 5000] {
        let document = portcullis::policy::gatekeeper::review::inventory(&ingresses(count));
        let median = |mut samples: Vec<Duration>| {
            samples.sort();
            samples[samples.len() / 2]
        };
        let floor = median(
            (0..5)
                .map(|_| {
                    let begun = Instant::now();
                    let text = json!({ "inventory": &document }).to_string();
                    std::hint::black_box(regorus::Value::from_json_str(&text).unwrap());
                    begun.elapsed()
                })
                .collect(),
        );
        let install = median(
            (0..5)
                .map(|_| {
                    let copy = document.clone();
                    let begun = Instant::now();
                    reviewer.replace_inventory(copy).unwrap();
                    begun.elapsed()
                })
                .collect(),
        );
        println!(
            "| {count} | {:.2} | {:.2} | {:.1} |",
            install.as_secs_f64() * 1e3,
            floor.as_secs_f64() * 1e3,
            install.as_secs_f64() / floor.as_secs_f64()
        );
    }
    // The 5000-object inventory stays installed: reviews must cost what they did without one,
    // except those of templates that scan the inventory, which OPA scans too.
    opa_side_by_side(reviewer);
    let mut samples = Vec::new();
    for _ in 0..20 {
        for request in requests {
            let begun = Instant::now();
            std::hint::black_box(reviewer.decide(request));
            samples.push(begun.elapsed());
        }
    }
    samples.sort();
    let p99 = percentile(&samples, 0.99);
    println!();
    println!(
        "- reviews with the 5000-object inventory installed: p50 {:.3} ms, p99 {:.3} ms; p99 with / without: {:.2}",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        p99.as_secs_f64() / p99_without.as_secs_f64()
    );
}

/// unique-ingress-host scans every Ingress of the inventory for each Ingress review: the review
/// of one Ingress against the 5000-object inventory installed, by portcullis (`Reviewer::decide`,
/// so also the other constraints that match Ingresses) and by `opa bench` on the same template,
/// inventory and input.
fn opa_side_by_side(reviewer: &portcullis::admission::Reviewer) {
    let object = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "new", "namespace": "team-x"},
        "spec": {"rules": [{"host": "web-7.example.com"}]}});
    let request = request(&object);
    let mut samples: Vec<Duration> = (0..15)
        .map(|_| {
            let begun = Instant::now();
            let outcome = reviewer.decide(&request);
            assert!(!outcome.decision.allowed, "web-7.example.com is taken");
            begun.elapsed()
        })
        .collect();
    samples.sort();
    let ours = samples[samples.len() / 2];

    let dir = tempfile::tempdir().unwrap();
    let template: Value = yaml_serde::from_str(
        &std::fs::read_to_string(common::gatekeeper_library().join("uniqueingresshost/template.yaml")).unwrap(),
    )
    .unwrap();
    let files = [
        (
            "policy.rego",
            template["spec"]["targets"][0]["rego"].as_str().unwrap().to_string(),
        ),
        (
            "data.json",
            json!({"inventory": portcullis::policy::gatekeeper::review::inventory(&ingresses(5000))}).to_string(),
        ),
        ("input.json", json!({"review": request, "parameters": {}}).to_string()),
    ];
    for (name, text) in &files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let output = Command::new(tool("opa"))
        .current_dir(dir.path())
        .args(["bench", "--v0-compatible", "--count=1", "--format=json"])
        .args(["-d", "policy.rego", "-d", "data.json", "-i", "input.json"])
        .arg("data.k8suniqueingresshost.violation")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("opa bench: {}", String::from_utf8_lossy(&output.stderr)));
    let opa_ns = report["Extra"]["histogram_timer_rego_query_eval_ns_median"]
        .as_f64()
        .unwrap_or(f64::NAN);
    println!();
    println!(
        "- one Ingress review against the 5000-object inventory (unique-ingress-host scans it): portcullis {:.1} ms, opa bench v1.20.2 {:.1} ms (median); portcullis / OPA: {:.2}",
        ours.as_secs_f64() * 1e3,
        opa_ns / 1e6,
        ours.as_secs_f64() * 1e9 / opa_ns
    );
}
