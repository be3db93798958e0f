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
//!
//! Then 1,000 and 10,000 such objects through a real kube-apiserver (`scripts/control-plane.sh`)
//! with their images in a real registry, 20 distinct digests, half signed with cosign and
//! verified: `audit::Pages` and `audit::Pass` as `portcullis audit` runs them, a cold pass (a
//! new reviewer: nothing cached) and a warm one (the same reviewer again), with the registry
//! requests each made (the registry's own access log). Run with `make bench`; `--cluster` runs
//! only this part.

use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/spread.rs"]
mod spread;

use spread::spread;

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
    if args.iter().any(|a| a == "--cluster") {
        return cluster();
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
            spread(field("peak_kib").into_iter().map(|k| k / 1024.0), 1),
            spread(per_thousand, 2),
            runs[&size][0]["findings"]
        );
    }
    println!();
    cluster();
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
        .map(|(kind, app)| synthetic(kind, app, &offline_image));
    std::iter::from_fn(move || {
        let page: Vec<Value> = objects.by_ref().take(PAGE as usize).collect();
        (!page.is_empty()).then_some(page)
    })
}

/// Image `n` of the offline pool: one in four is not pinned.
fn offline_image(n: usize) -> String {
    let n = n % IMAGES;
    match n % 4 {
        0 => format!("registry.example.com/micro-apps/app-{n}:1.{n}.0"),
        _ => format!("registry.example.com/micro-apps/app-{n}@sha256:{n:064x}"),
    }
}

/// Object `kind` (of [`KINDS`]) of app number `app`, its containers' images `pool(app)` and
/// `pool(app + 1)`.
fn synthetic(kind: usize, app: usize, pool: &dyn Fn(usize) -> String) -> Value {
    let namespace = format!("team-{}", app % NAMESPACES);
    let name = format!("app-{app}");
    let image = |n: usize| pool(app + n);
    let labels = json!({"app.kubernetes.io/name": name, "app.kubernetes.io/version": "1.0.0", "portcullis.io/owner": "platform-team"});
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

/// Distinct images the cluster's fleet runs (every other one signed).
const DIGESTS: usize = 20;
/// Objects created at once through the apiserver.
const CREATING: usize = 16;

/// The cluster part: a pass cold then warm at each size, three rounds; printed as a table.
fn cluster() {
    let started = Instant::now();
    let lab = common::lab::Lab::start();
    lab.generate_key("trusted");
    let images: Vec<String> = (0..DIGESTS)
        .map(|n| {
            let image = lab.push(
                &format!("app-{n}"),
                &format!("micro-apps/app-{n}"),
                "1",
                &format!("app {n}"),
            );
            if n % 2 == 0 {
                lab.sign("trusted.key", &image);
            }
            image
        })
        .collect();
    eprintln!(
        "{DIGESTS} images pushed, half signed, in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let registry = &lab.registry;
    let config_text = format!(
        "images:\n  registries: {{ allow: [\"{registry}\"], insecure: [\"{registry}\"] }}\n  trust:\n    - name: micro\n      images: [\"{registry}/**\"]\n      authorities: [{{ name: ci-key, key: {{ path: {key:?} }} }}]\n",
        key = lab.key("trusted").display(),
    );
    let settings = Config::from_yaml(&config_text)
        .expect("config")
        .validate(false)
        .expect("valid");
    // What verifying each image asks of the registry, one `portcullis verify` process each.
    let config = lab.dir.path().join("config.yaml");
    std::fs::write(&config, &config_text).expect("config written");
    let before = lab.requests().len();
    for image in &images {
        let verify = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["verify", "--config"])
            .arg(&config)
            .arg(image)
            .output()
            .expect("portcullis verify");
        assert!(verify.status.code().is_some_and(|code| code < 2), "{verify:?}");
    }
    let alone = lab.requests().len() - before;

    let control_plane = common::cluster::ControlPlane::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = runtime.block_on(control_plane.client());
    let namespaces: Vec<Value> = (0..NAMESPACES)
        .map(|n| {
            let level = ["low", "medium", "high"][n % 3];
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": format!("team-{n}"), "labels": {"portcullis.io/risk-level": level}}})
        })
        .collect();
    runtime.block_on(create(&client, namespaces));

    let pool = |n: usize| images[n % DIGESTS].clone();
    let mut rows = Vec::new();
    let mut apps = 0;
    for size in [1_000, 10_000] {
        // More apps until the cluster holds `size` objects (a Deployment, its ReplicaSet, its Pod each).
        let started = Instant::now();
        let wanted = size / KINDS.len();
        runtime.block_on(create_apps(&client, apps..wanted, &pool));
        let created = started.elapsed().as_secs_f64();
        eprintln!("{} objects created in {created:.0} s", (wanted - apps) * KINDS.len());
        apps = wanted;
        let objects = apps * KINDS.len();
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        let mut requests = Vec::new();
        for _ in 0..ROUNDS {
            let policies = portcullis::admission::setup::load_policies(&Source::Embedded, &settings).expect("policies");
            let namespaces = runtime.block_on(audit::namespaces(&client, PAGE)).expect("namespaces");
            let reviewer = portcullis::admission::Reviewer::from_settings(
                &settings,
                policies,
                std::sync::Arc::new(namespaces),
                std::sync::Arc::new(portcullis::metrics::Metrics::new()),
                None,
            )
            .expect("reviewer");
            let before = lab.requests().len();
            let (seconds, audited) = cluster_pass(&runtime, &client, &reviewer);
            assert_eq!(audited, objects);
            cold.push(objects as f64 / seconds);
            requests.push(lab.requests().len() - before);
            let before = lab.requests().len();
            let (seconds, _) = cluster_pass(&runtime, &client, &reviewer);
            warm.push(objects as f64 / seconds);
            assert_eq!(lab.requests().len(), before, "a warm pass asks the registry nothing");
        }
        rows.push((objects, created, cold, warm, requests));
    }
    println!("Through a real kube-apiserver, {NAMESPACES} namespaces, {DIGESTS} distinct digests in a real registry (half signed, cosign key), the default library with verification; {ROUNDS} rounds, median (min to max)\n");
    println!("| objects | created in (s) | cold pass, objects/s | warm pass, objects/s | warm pass, s | registry requests, cold pass | the {DIGESTS} digests verified alone |");
    println!("|---|---|---|---|---|---|---|");
    for (objects, created, cold, warm, requests) in rows {
        let warm_seconds: Vec<f64> = warm.iter().map(|rate| objects as f64 / rate).collect();
        println!(
            "| {objects} | {created:.1} | {} | {} | {} | {} | {alone} |",
            spread(cold, 0),
            spread(warm, 0),
            spread(warm_seconds, 2),
            spread(requests.iter().map(|&r| r as f64), 0),
        );
    }
}

/// One audit pass as `portcullis audit` runs it (pages listed, each decided online): its
/// seconds and the objects it audited.
fn cluster_pass(
    runtime: &tokio::runtime::Runtime,
    client: &kube::Client,
    reviewer: &portcullis::admission::Reviewer,
) -> (f64, usize) {
    let started = Instant::now();
    let selection = audit::Selection {
        namespaces: &[],
        page: PAGE,
        matches: Vec::new(),
    };
    let mut pages = runtime.block_on(audit::Pages::open(client, &selection)).expect("pages");
    let mut pass = Pass::new(reviewer, None, Some(runtime));
    while let Some(page) = runtime.block_on(pages.next()).expect("a page") {
        pass.decide(page).expect("decided");
    }
    let audited = pass.finish();
    let summary = Summary::of(&audited);
    for report in reports::render(
        reports::Format::OpenReports,
        audit::reported(&audited),
        std::time::SystemTime::now(),
    ) {
        std::hint::black_box(serde_json::to_vec(&report).expect("json"));
    }
    (started.elapsed().as_secs_f64(), summary.objects)
}

/// Creates apps `apps` (a Deployment, then its ReplicaSet owned by it, then its Pod owned by
/// that, with the uids the apiserver gave), [`CREATING`] apps at a time.
async fn create_apps(client: &kube::Client, apps: std::ops::Range<usize>, pool: &dyn Fn(usize) -> String) {
    use futures::StreamExt;
    let apps: Vec<Vec<Value>> = apps
        .map(|app| (0..KINDS.len()).map(|kind| synthetic(kind, app, pool)).collect())
        .collect();
    futures::stream::iter(apps)
        .for_each_concurrent(CREATING, |objects| async move {
            let mut owner: Option<String> = None;
            for mut object in objects {
                // What the apiserver sets itself.
                let metadata = object["metadata"].as_object_mut().expect("metadata");
                for field in ["uid", "resourceVersion", "creationTimestamp"] {
                    metadata.remove(field);
                }
                if let Some(uid) = &owner {
                    object["metadata"]["ownerReferences"][0]["uid"] = Value::String(uid.clone());
                }
                owner = Some(create_one(client, object).await);
            }
        })
        .await;
}

/// Creates `objects` one after the other.
async fn create(client: &kube::Client, objects: Vec<Value>) {
    for object in objects {
        create_one(client, object).await;
    }
}

/// Creates `object` and returns its uid.
async fn create_one(client: &kube::Client, object: Value) -> String {
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
    let (group, version) = match object["apiVersion"].as_str().expect("apiVersion").split_once('/') {
        Some((group, version)) => (group.to_string(), version.to_string()),
        None => (
            String::new(),
            object["apiVersion"].as_str().unwrap_or_default().to_string(),
        ),
    };
    let kind = object["kind"].as_str().expect("kind");
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, &version, kind));
    let api: Api<DynamicObject> = match object.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let object: DynamicObject = serde_json::from_value(object).expect("an object");
    let created = api.create(&PostParams::default(), &object).await.expect("created");
    created.metadata.uid.expect("a uid")
}
