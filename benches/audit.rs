//! The audit after the list, on synthetic fleets of 1,000, 10,000 and 50,000 objects: the same
//! code path as `portcullis audit` from the listed pages on (`audit::Pass` page by page with the
//! default library offline, the summary, and the OpenReports reports serialised one by one).
//! Each size runs in a process of its own (this binary again, with `--size N`) so that its peak
//! RSS (`VmHWM`) is its own; three rounds, sizes interleaved; median (min to max).
//!
//! A synthetic app is a Deployment, its ReplicaSet and a Pod, owned as the controllers own
//! them, listed as the apiserver lists them (pages of 500: every Deployment, then every
//! ReplicaSet, then every Pod, each generated only when its page is), in one of 50 namespaces, with two containers whose images come from a pool of 200
//! (some pinned): about the size of what `kubectl get -o json` shows without managedFields.

use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use portcullis::audit::{self, reports, Pass, Summary, PAGE};
use portcullis::config::Config;
use portcullis::namespaces::StaticNamespaces;
use portcullis::policy::Source;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIZES: [usize; 3] = [1_000, 10_000, 50_000];
const ROUNDS: usize = 3;
const NAMESPACES: usize = 50;
const IMAGES: usize = 200;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--size") {
        let size = args[at + 1].parse().expect("a size");
        return println!("{}", run(size));
    }
    let exe = std::env::current_exe().expect("the bench's own path");
    let mut runs: HashMap<usize, Vec<Value>> = HashMap::new();
    for _ in 0..ROUNDS {
        for size in SIZES {
            let output = Command::new(&exe)
                .args(["--size", &size.to_string()])
                .output()
                .expect("run");
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            runs.entry(size)
                .or_default()
                .push(serde_json::from_slice(&output.stdout).expect("json"));
        }
    }
    println!("Synthetic fleets (Deployment + ReplicaSet + Pod per app, {NAMESPACES} namespaces, {IMAGES} images), the default library offline; {ROUNDS} rounds, median (min to max)\n");
    println!("| objects | objects/s | peak RSS (MiB) | RSS per 1,000 objects (MiB) | findings |");
    println!("|---|---|---|---|---|");
    for size in SIZES {
        let field = |name: &str| {
            runs[&size]
                .iter()
                .map(|r| r[name].as_f64().unwrap_or(f64::NAN))
                .collect::<Vec<_>>()
        };
        let per_second: Vec<f64> = runs[&size]
            .iter()
            .map(|r| r["objects"].as_f64().unwrap_or(0.0) / r["seconds"].as_f64().unwrap_or(f64::NAN))
            .collect();
        let per_thousand: Vec<f64> = runs[&size]
            .iter()
            .map(|r| {
                (r["peak_kib"].as_f64().unwrap_or(0.0) - r["baseline_kib"].as_f64().unwrap_or(0.0))
                    / 1024.0
                    / (size as f64 / 1000.0)
            })
            .collect();
        println!(
            "| {size} | {} | {} | {} | {} |",
            spread(per_second, 0),
            spread(field("peak_kib").into_iter().map(|k| k / 1024.0).collect(), 1),
            spread(per_thousand, 2),
            runs[&size][0]["findings"]
        );
    }
}

/// One size, in this process: what it measured, as JSON.
fn run(size: usize) -> Value {
    let settings = Config::from_yaml("images: { registries: { allow: [registry.example.com] } }\n")
        .expect("config")
        .validate(false)
        .expect("valid");
    let policies = portcullis::admission::setup::load_policies(&Source::Embedded, &settings).expect("policies");
    let namespaces: HashMap<String, _> = (0..NAMESPACES)
        .map(|n| {
            let level = ["low", "medium", "high"][n % 3];
            (
                format!("team-{n}"),
                [("portcullis.io/risk-level".to_string(), level.to_string())].into(),
            )
        })
        .collect();
    let namespaces = StaticNamespaces(namespaces);
    let reviewer = portcullis::admission::Reviewer::from_settings(
        &settings,
        policies,
        std::sync::Arc::new(namespaces.clone()),
        std::sync::Arc::new(portcullis::metrics::Metrics::new()),
        None,
    )
    .expect("reviewer");
    let baseline_kib = peak_kib();

    let started = Instant::now();
    let mut pass = Pass::new(&reviewer, None, None);
    for page in pages(size) {
        pass.decide(page).expect("decided");
    }
    let audited = pass.finish();
    let summary = Summary::of(&audited);
    let mut written = 0;
    for report in reports::render(
        reports::Format::OpenReports,
        audit::reported(&audited),
        std::time::SystemTime::now(),
    ) {
        written += serde_json::to_vec(&report).expect("json").len();
    }
    let seconds = started.elapsed().as_secs_f64();
    let findings: usize = summary.findings.values().flat_map(|actions| actions.values()).sum();
    assert!(written > 0 && summary.objects == size);
    json!({"objects": size, "seconds": seconds, "baseline_kib": baseline_kib, "peak_kib": peak_kib(), "findings": findings})
}

/// Kinds in the order they are listed, with the suffix of their names.
const KINDS: [(&str, &str); 3] = [("Deployment", ""), ("ReplicaSet", "-1"), ("Pod", "-1-a")];

/// `size` objects in pages of [`PAGE`]: `size / 3` apps (rounded up, the last Pods cut off).
fn pages(size: usize) -> impl Iterator<Item = Vec<Value>> {
    let apps = size.div_ceil(KINDS.len());
    let mut objects = (0..KINDS.len())
        .flat_map(move |kind| (0..apps).map(move |app| (kind, app)))
        .take(size)
        .map(|(kind, app)| synthetic(kind, app));
    std::iter::from_fn(move || {
        let page: Vec<Value> = objects.by_ref().take(PAGE as usize).collect();
        (!page.is_empty()).then_some(page)
    })
}

/// Object `kind` (of [`KINDS`]) of app number `app`.
fn synthetic(kind: usize, app: usize) -> Value {
    let namespace = format!("team-{}", app % NAMESPACES);
    let name = format!("app-{app}");
    let image = |n: usize| {
        let n = (app + n) % IMAGES;
        match n % 4 {
            0 => format!("registry.example.com/micro-apps/app-{n}:1.{n}.0"),
            _ => format!("registry.example.com/micro-apps/app-{n}@sha256:{n:064x}"),
        }
    };
    let labels = json!({"app.kubernetes.io/name": name, "app.kubernetes.io/version": "1.0.0", "portcullis.io/owner": "team@example.com"});
    let spec = json!({
        "containers": [
            {"name": "app", "image": image(0), "ports": [{"containerPort": 8080}],
             "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
             "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
             "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}, "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
             "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "PORT", "value": "8080"}]},
            {"name": "sidecar", "image": image(1), "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}
        ],
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "serviceAccountName": "default"
    });
    let (kind_name, suffix) = KINDS[kind];
    let mut metadata = json!({"name": format!("{name}{suffix}"), "namespace": namespace, "uid": format!("{kind_name}-{app}"),
                              "labels": labels, "annotations": {"portcullis.io/app-version": "1.0.0"},
                              "creationTimestamp": "2026-12-01T00:00:00Z", "resourceVersion": "1"});
    if kind > 0 {
        let (owner, _) = KINDS[kind - 1];
        metadata["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": owner, "name": name,
                                              "uid": format!("{owner}-{app}"), "controller": true}]);
    }
    let template = json!({"metadata": {"labels": labels}, "spec": spec});
    let selector = json!({"matchLabels": {"app.kubernetes.io/name": name}});
    match kind_name {
        "Pod" => {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": {"phase": "Running"}})
        }
        kind => json!({"apiVersion": "apps/v1", "kind": kind, "metadata": metadata,
                       "spec": {"replicas": 1, "selector": selector, "template": template}}),
    }
}

/// The process's peak resident set so far (`VmHWM`), in KiB.
fn peak_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(f64::NAN)
}

fn spread(mut values: Vec<f64>, digits: usize) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "{:.digits$} ({:.digits$} to {:.digits$})",
        values[values.len() / 2],
        values[0],
        values[values.len() - 1]
    )
}
