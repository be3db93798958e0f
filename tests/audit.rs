//! `portcullis audit` against a real kube-apiserver: objects created before any webhook is
//! registered (so nothing stopped them) are listed and decided with the configured policies;
//! a workload's ReplicaSet and Pods count in the posture, its findings once, on it; a proposed
//! library (what-if) marks every finding new, resolved or unchanged.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};

use common::cluster::ControlPlane;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const PINNED: &str = r#"package audit.pinned

import rego.v1

deny contains msg if {
	some image in input.images
	not image.pinned
	msg := sprintf("%s is not pinned by digest", [image.ref])
}
"#;

const NO_BUSYBOX: &str = r#"package audit.no_busybox

import rego.v1

deny contains msg if {
	some image in input.images
	endswith(image.repository, "/busybox")
	msg := sprintf("%s: busybox is not allowed", [image.ref])
}
"#;

const NO_LATEST: &str = r#"package audit.no_latest

import rego.v1

deny contains msg if {
	some image in input.images
	image.tag == "latest"
	msg := sprintf("%s: the latest tag is not allowed", [image.ref])
}
"#;

fn library(dir: &Path, policies: &[(&str, &str)]) {
    for (name, text) in policies {
        let folder = dir.join(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("policy.rego"), text).unwrap();
    }
}

fn pod(name: &str, image: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "team-a"},
           "spec": {"containers": [{"name": "app", "image": image}]}})
}

fn apply(cluster: &ControlPlane, object: &Value) -> Value {
    let output = cluster.kubectl_output(
        &["create", "-o", "json", "-f", "-"],
        Some(object.to_string().as_bytes()),
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn owned_by(mut object: Value, owner: &Value) -> Value {
    object["metadata"]["ownerReferences"] = json!([{
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": true
    }]);
    object
}

fn audit(cluster: &ControlPlane, config: &Path, extra: &[&str]) -> (Output, Value) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "--output", "json", "--kubeconfig"])
        .arg(&cluster.kubeconfig)
        .arg("--config")
        .arg(config)
        .args(extra)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("audit: {}", String::from_utf8_lossy(&output.stderr)));
    (output, report)
}

/// `(kind/name, policy, change)` of every finding, sorted.
fn findings(report: &Value) -> Vec<(String, String, String)> {
    let mut seen: Vec<(String, String, String)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|result| {
            let object = format!(
                "{}/{}",
                result["kind"].as_str().unwrap(),
                result["name"].as_str().unwrap()
            );
            result["findings"].as_array().unwrap().iter().map(move |f| {
                (
                    object.clone(),
                    f["policy"].as_str().unwrap().to_string(),
                    f["change"].as_str().unwrap_or("-").to_string(),
                )
            })
        })
        .collect();
    seen.sort();
    seen
}

fn finding(object: &str, policy: &str, change: &str) -> (String, String, String) {
    (object.into(), policy.into(), change.into())
}

#[test]
fn audit_reports_what_runs_against_the_policies_and_what_a_proposal_would_change() {
    let cluster = ControlPlane::start();
    cluster.kubectl(&["create", "namespace", "team-a"]);
    cluster.kubectl(&["label", "namespace", "team-a", "portcullis.io/risk-level=low"]);

    // A Deployment with an unpinned image, its ReplicaSet and Pod (no controller-manager here,
    // so they are made by hand, owned as the controllers would own them).
    let unpinned = "registry.example.com/team/web:1.0";
    let template =
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": unpinned}]}});
    let deployment = apply(
        &cluster,
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "team-a"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template}}),
    );
    let replicaset = apply(
        &cluster,
        &owned_by(
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "team-a"},
                   "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template}}),
            &deployment,
        ),
    );
    apply(&cluster, &owned_by(pod("web-1-a", unpinned), &replicaset));
    // Pinned Pods: one from busybox, one tagged latest, one clean.
    apply(
        &cluster,
        &pod("busy", &format!("registry.example.com/team/busybox@{DIGEST}")),
    );
    apply(
        &cluster,
        &pod("newest", &format!("registry.example.com/team/app:latest@{DIGEST}")),
    );
    apply(
        &cluster,
        &pod("good", &format!("registry.example.com/team/app:1.2@{DIGEST}")),
    );

    let dir = tempfile::tempdir().unwrap();
    let (installed, proposed) = (dir.path().join("installed"), dir.path().join("proposed"));
    library(&installed, &[("pinned", PINNED), ("no_busybox", NO_BUSYBOX)]);
    library(&proposed, &[("pinned", PINNED), ("no_latest", NO_LATEST)]);
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("policies: {{ dirs: [{}] }}\n", installed.display())).unwrap();

    // Phase 1: the installed policies.
    let (output, report) = audit(&cluster, &config, &[]);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert_eq!(
        findings(&report),
        [
            finding("Deployment/web", "audit.pinned", "-"),
            finding("Pod/busy", "audit.no_busybox", "-")
        ]
    );
    let summary = &report["summary"];
    assert_eq!(summary["objects"], 6, "{summary}");
    assert_eq!(summary["kinds"], json!({"Deployment": 1, "ReplicaSet": 1, "Pod": 4}));
    assert_eq!(summary["denied"], 2);
    assert_eq!(
        summary["findings"],
        json!({"audit.pinned": {"deny": 1}, "audit.no_busybox": {"deny": 1}})
    );
    // Every running image (the four Pods'), the owned Pod's too, at the namespace's level.
    assert_eq!(
        summary["images"],
        json!({"low": {"running": 4, "pinned": 3, "signed": 0, "sbom": 0, "provenance": 0}})
    );

    // Phase 2: what-if with the proposed library.
    let (output, report) = audit(&cluster, &config, &["--policies", proposed.to_str().unwrap()]);
    assert_eq!(
        findings(&report),
        [
            finding("Deployment/web", "audit.pinned", "unchanged"),
            finding("Pod/busy", "audit.no_busybox", "resolved"),
            finding("Pod/newest", "audit.no_latest", "new"),
        ]
    );
    // It newly denies a running Pod: the exit status says so.
    assert_eq!(output.status.code(), Some(1), "{report}");

    // Phase 3: a proposal that only lifts a denial breaks nothing.
    let lifting = dir.path().join("lifting");
    library(&lifting, &[("pinned", PINNED)]);
    let (output, report) = audit(&cluster, &config, &["--policies", lifting.to_str().unwrap()]);
    assert_eq!(
        findings(&report),
        [
            finding("Deployment/web", "audit.pinned", "unchanged"),
            finding("Pod/busy", "audit.no_busybox", "resolved"),
        ]
    );
    assert_eq!(output.status.code(), Some(0), "{report}");

    // Phase 4: one namespace only, and the text output.
    cluster.kubectl(&["create", "namespace", "team-b"]);
    let other = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "elsewhere", "namespace": "team-b"},
                       "spec": {"containers": [{"name": "app", "image": unpinned}]}});
    apply(&cluster, &other);
    let (_, report) = audit(&cluster, &config, &["--namespace", "team-b"]);
    assert_eq!(findings(&report), [finding("Pod/elsewhere", "audit.pinned", "-")]);
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "--kubeconfig"])
        .arg(&cluster.kubeconfig)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!(
            "cluster: deny Pod team-b/elsewhere audit.pinned: {unpinned} is not pinned by digest"
        )),
        "{text}"
    );
    assert!(text.contains("audited 7 object(s)"), "{text}");

    // Phase 5: the reports, applied through the apiserver against the real CRDs (kubectl's
    // strict field validation refuses a field the schema does not have).
    let crds = common::lab::tool("report-crds");
    cluster.kubectl(&["apply", "-f", crds.to_str().unwrap()]);
    cluster.kubectl(&["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
    for (format, resource) in [
        ("openreports", "reports.openreports.io"),
        ("policyreport", "policyreports.wgpolicyk8s.io"),
    ] {
        let rendered = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["audit", "--output", format, "--kubeconfig"])
            .arg(&cluster.kubeconfig)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(
            rendered.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&rendered.stderr)
        );
        let applied = cluster.kubectl_output(&["apply", "--validate=strict", "-f", "-"], Some(&rendered.stdout));
        assert!(
            applied.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&applied.stderr)
        );
        let stored: Value = serde_json::from_str(&cluster.kubectl(&[
            "get",
            resource,
            "-n",
            "team-a",
            "portcullis-audit",
            "-o",
            "json",
        ]))
        .unwrap();
        // Four reported objects in team-a (the Deployment, three Pods), two policies each.
        assert_eq!(
            stored["summary"],
            json!({"pass": 6, "fail": 2, "warn": 0, "error": 0, "skip": 0}),
            "{stored}"
        );
        let mut outcomes: Vec<(String, String, String)> = stored["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let subject = &r["resources"][0];
                (
                    format!(
                        "{}/{}",
                        subject["kind"].as_str().unwrap(),
                        subject["name"].as_str().unwrap()
                    ),
                    r["policy"].as_str().unwrap().to_string(),
                    r["result"].as_str().unwrap().to_string(),
                )
            })
            .filter(|(_, _, result)| result != "pass")
            .collect();
        outcomes.sort();
        assert_eq!(
            outcomes,
            [
                finding("Deployment/web", "audit.pinned", "fail"),
                finding("Pod/busy", "audit.no_busybox", "fail")
            ]
        );
        assert_eq!(stored["results"][0]["properties"]["risk_level"], "low");
    }

    // Phase 6: paging. One object per request lists the same fleet as the default pages.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let names = |page_size: u32| {
        runtime.block_on(async {
            let client = cluster.client().await;
            let selection = portcullis::audit::Selection {
                namespaces: &[],
                page: page_size,
                matches: Vec::new(),
            };
            let mut pages = portcullis::audit::Pages::open(&client, &selection).await.unwrap();
            let mut objects = Vec::new();
            while let Some(page) = pages.next().await.unwrap() {
                assert!(page.len() <= page_size as usize);
                objects.extend(page);
            }
            let uids: Vec<&str> = objects.iter().map(|o| o["metadata"]["uid"].as_str().unwrap()).collect();
            let controlled = objects
                .iter()
                .filter(|o| portcullis::audit::controller(o).is_some_and(|uid| uids.contains(&uid)))
                .count();
            let mut names: Vec<String> = objects
                .iter()
                .map(|o| {
                    format!(
                        "{}/{}",
                        o["kind"].as_str().unwrap(),
                        o["metadata"]["name"].as_str().unwrap()
                    )
                })
                .collect();
            names.sort();
            (names, controlled)
        })
    };
    let (paged, owned) = names(1);
    assert_eq!(paged.len(), 7, "{paged:?}");
    assert_eq!(owned, 2, "the ReplicaSet and its Pod, controlled by listed objects");
    assert_eq!((paged, owned), names(portcullis::audit::PAGE));
}

#[test]
fn audit_lists_the_kinds_gatekeeper_constraints_match_and_gives_them_the_inventory() {
    let cluster = ControlPlane::start();
    for namespace in ["team-a", "team-b"] {
        cluster.kubectl(&["create", "namespace", namespace]);
    }
    for (namespace, name, host) in [
        ("team-a", "shop", "shop.example.com"),
        ("team-b", "copy", "shop.example.com"),
        ("team-b", "blog", "blog.example.com"),
    ] {
        cluster.kubectl(&[
            "create",
            "ingress",
            name,
            "--namespace",
            namespace,
            &format!("--rule={host}/=web:80"),
        ]);
    }
    // gatekeeper-library's unique-ingress-host, unchanged: each Ingress is compared with the
    // others in `data.inventory`, which the audit lists from the cluster.
    let sample = common::gatekeeper_library().join("uniqueingresshost");
    let read = |relative: &str| std::fs::read_to_string(sample.join(relative)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    common::write_library(
        dir.path(),
        &[
            ("template.yaml", &read("template.yaml")),
            ("constraint.yaml", &read("samples/unique-ingress-host/constraint.yaml")),
        ],
    );
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "policies: {{dirs: [{:?}], inventory: [{{group: networking.k8s.io, version: v1, kind: Ingress}}]}}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let (output, report) = audit(&cluster, &config, &[]);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let constraint = "K8sUniqueIngressHost/unique-ingress-host";
    let found = findings(&report);
    assert_eq!(
        found,
        [
            finding("Ingress/copy", constraint, "-"),
            finding("Ingress/shop", constraint, "-")
        ],
        "{report}"
    );
    assert_eq!(report["summary"]["kinds"]["Ingress"], 3, "{report}");
}

const VERIFIED: &str = r#"package audit.verified

import rego.v1

deny contains msg if {
	some image in input.images
	image.verification.status != "verified"
	msg := sprintf("%s: %s", [image.ref, image.verification.status])
}
"#;

#[test]
fn audit_verifies_each_running_digest_once_and_a_registry_down_is_an_error_not_a_pass() {
    let lab = common::lab::Lab::start();
    let attested = lab.push("attested", "micro/attested", "1", "attested");
    let unsigned = lab.push("unsigned", "micro/unsigned", "1", "unsigned");
    lab.generate_key("trusted");
    lab.sign("trusted.key", &attested);
    let sbom = lab.dir.path().join("sbom.json");
    std::fs::write(
        &sbom,
        r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[]}"#,
    )
    .unwrap();
    lab.attest("cyclonedx", &sbom, &attested);
    let dead = common::lab::ClosedPort::new();
    let down = format!("{}/micro/app@{DIGEST}", dead.addr);

    let cluster = ControlPlane::start();
    cluster.kubectl(&["create", "namespace", "team-a"]);
    // Two Pods run the same digest: one verification between them.
    for (name, image) in [
        ("one", &attested),
        ("two", &attested),
        ("unsigned", &unsigned),
        ("down", &down),
    ] {
        apply(&cluster, &pod(name, image));
    }

    let dir = tempfile::tempdir().unwrap();
    library(dir.path(), &[("verified", VERIFIED)]);
    let (registry, dead) = (&lab.registry, &dead.addr);
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "policies: {{ dirs: [{policies:?}] }}\nimages:\n  registries: {{ allow: [\"{registry}\", \"{dead}\"], insecure: [\"{registry}\", \"{dead}\"] }}\n  trust:\n    - name: micro\n      images: [\"{registry}/**\", \"{dead}/**\"]\n      authorities: [{{ name: ci-key, key: {{ path: {key:?} }} }}]\n      attestations: [{{ name: sbom, predicateTypes: [https://cyclonedx.org/bom] }}]\n",
            policies = dir.path().display(),
            key = lab.key("trusted").display(),
        ),
    )
    .unwrap();

    // What one verification of an image asks of the registry, on its own.
    let requests_of_verify = |image: &str| {
        let before = lab.requests().len();
        let verify = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["verify", "--config"])
            .arg(&config)
            .arg(image)
            .output()
            .unwrap();
        // Exit 0 for a verified image, 1 for another verdict; never a usage or config error.
        assert!(
            verify.status.code().unwrap() < 2,
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
        lab.requests().len() - before
    };
    let alone = requests_of_verify(&attested) + requests_of_verify(&unsigned);
    let before_audit = lab.requests().len();

    let (output, report) = audit(&cluster, &config, &[]);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert_eq!(
        findings(&report),
        [
            finding("Pod/down", "audit.verified", "-"),
            finding("Pod/unsigned", "audit.verified", "-")
        ]
    );
    let message = |name: &str| {
        let result = report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap();
        result["findings"][0]["message"].as_str().unwrap().to_string()
    };
    assert_eq!(message("down"), format!("{down}: error"));
    assert_eq!(message("unsigned"), format!("{unsigned}: unsigned"));
    assert_eq!(
        report["summary"]["images"],
        json!({"high": {"running": 4, "pinned": 4, "signed": 2, "sbom": 2, "provenance": 0}})
    );
    // The audit's registry traffic: one verification per digest, the two Pods sharing one.
    assert_eq!(lab.requests().len() - before_audit, alone, "{:#?}", lab.requests());
}

#[test]
fn the_continuous_audit_exports_the_fleet_as_metrics_and_reports_and_follows_what_changes() {
    let cluster = ControlPlane::start();
    cluster.kubectl(&["create", "namespace", "team-a"]);
    let crds = common::lab::tool("report-crds");
    cluster.kubectl(&["apply", "-f", crds.to_str().unwrap()]);
    cluster.kubectl(&["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
    // A report an earlier audit left (the namespace then needed two): ours, so it goes.
    apply(
        &cluster,
        &json!({"apiVersion": "openreports.io/v1alpha1", "kind": "Report",
                "metadata": {"name": "portcullis-audit-2", "namespace": "team-a",
                             "labels": {"app.kubernetes.io/managed-by": "portcullis"}}}),
    );
    apply(&cluster, &pod("unpinned", "registry.example.com/team/web:1.0"));
    apply(
        &cluster,
        &pod("pinned", &format!("registry.example.com/team/web@{DIGEST}")),
    );

    let dir = tempfile::tempdir().unwrap();
    library(dir.path(), &[("pinned", PINNED)]);
    let port = common::lab::pick_port();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "policies: {{ dirs: [{:?}] }}\nimages: {{ registries: {{ allow: [registry.example.com] }} }}\nserver: {{ metricsListen: \"127.0.0.1:{port}\" }}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let log = dir.path().join("audit.log");
    let kubeconfig = cluster.kubeconfig.to_str().unwrap().to_string();
    let service = common::Service::spawn(
        Path::new(env!("CARGO_BIN_EXE_portcullis")),
        &[
            "audit",
            "--config",
            config.to_str().unwrap(),
            "--kubeconfig",
            &kubeconfig,
            "--interval",
            "1s",
            "--write-reports",
            "openreports",
        ],
        &log,
        std::process::Stdio::null(),
    );
    let client = reqwest::blocking::Client::new();
    let scrape = || {
        client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .ok()
            .and_then(|response| response.text().ok())
    };
    let wait_for = |lines: &[&str]| {
        common::try_poll(Duration::from_secs(30), Duration::from_millis(200), || {
            scrape().filter(|text| lines.iter().all(|line| text.lines().any(|l| l == *line)))
        })
        .unwrap_or_else(|| {
            panic!(
                "{lines:#?} not scraped; last scrape:\n{}\nlog:\n{}",
                scrape().unwrap_or_default(),
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
    };
    let violations = |count: usize| {
        format!(r#"portcullis_audit_violations{{policy="audit.pinned",enforcement="deny",risk_level="high"}} {count}"#)
    };
    let text = wait_for(&[
        &violations(1),
        r#"portcullis_audit_objects{kind="Pod"} 2"#,
        r#"portcullis_fleet_images{risk_level="high",posture="running"} 2"#,
        r#"portcullis_fleet_images{risk_level="high",posture="pinned"} 1"#,
    ]);
    // Known series at zero: another enforcement, another level, a kind with no objects.
    for zero in [
        r#"portcullis_audit_violations{policy="audit.pinned",enforcement="dryrun",risk_level="low"} 0"#,
        r#"portcullis_audit_objects{kind="CronJob"} 0"#,
        r#"portcullis_fleet_images{risk_level="low",posture="signed"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == zero), "{zero} in\n{text}");
    }
    let last_pass = |text: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with("portcullis_audit_last_pass_timestamp_seconds "))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let first = last_pass(&text);
    assert!(first > 1.7e9, "{first}");

    // The pass's report, written by the audit; the stale one deleted.
    let report = || -> Value {
        serde_json::from_str(&cluster.kubectl(&[
            "get",
            "reports.openreports.io",
            "-n",
            "team-a",
            "portcullis-audit",
            "-o",
            "json",
        ]))
        .unwrap()
    };
    let outcomes = |report: &Value| -> Vec<(String, String)> {
        let mut outcomes: Vec<(String, String)> = report["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["resources"][0]["name"].as_str().unwrap().to_string(),
                    r["result"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        outcomes.sort();
        outcomes
    };
    let written = report();
    assert_eq!(
        outcomes(&written),
        [("pinned".into(), "pass".into()), ("unpinned".into(), "fail".into())]
    );
    let names = cluster.kubectl(&["get", "reports.openreports.io", "-n", "team-a", "-o", "name"]);
    assert_eq!(names.trim(), "report.openreports.io/portcullis-audit", "{names}");
    // Passes that find the same write nothing: the stored object is untouched.
    let version = written["metadata"]["resourceVersion"].clone();
    common::poll(
        "two more passes",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || scrape().filter(|text| last_pass(text) > first + 2.0),
    );
    assert_eq!(report()["metadata"]["resourceVersion"], version);

    // Fixed in the cluster: the next pass finds nothing, and the series goes back to zero.
    cluster.kubectl(&["delete", "pod", "unpinned", "-n", "team-a", "--wait=false"]);
    let text = wait_for(&[
        &violations(0),
        r#"portcullis_audit_objects{kind="Pod"} 1"#,
        r#"portcullis_fleet_images{risk_level="high",posture="running"} 1"#,
    ]);
    assert!(last_pass(&text) > first);
    assert!(
        !text.contains(r#"portcullis_audit_passes_total{result="failure"} 1"#),
        "{text}"
    );
    // The pass that saw the fix rewrote the report.
    let fixed = common::poll(
        "the report without the deleted Pod",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let fixed = report();
            (outcomes(&fixed) == [("pinned".to_string(), "pass".to_string())]).then_some(fixed)
        },
    );
    assert_ne!(fixed["metadata"]["resourceVersion"], version);

    // SIGTERM ends it between passes.
    service.stop();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("continuous audit stopped"), "{log}");
}

/// The value of the sample `series` (name and labels exactly) in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

#[test]
fn the_continuous_audit_decides_changes_as_they_come_and_one_replica_holds_the_lease() {
    let cluster = ControlPlane::start();
    cluster.kubectl(&["create", "namespace", "team-a"]);
    apply(
        &cluster,
        &pod("pinned", &format!("registry.example.com/team/web@{DIGEST}")),
    );
    // Compliant until the library gains a policy against it.
    apply(
        &cluster,
        &pod("busybox", &format!("registry.example.com/library/busybox@{DIGEST}")),
    );
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    library(&policies, &[("pinned", PINNED)]);
    let kubeconfig = cluster.kubeconfig.to_str().unwrap().to_string();
    // Two replicas; an interval no test waits for: every pass after the first is caused.
    let replica = |name: &str| {
        let port = common::lab::pick_port();
        let config = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &config,
            format!(
                "policies: {{ dirs: [{:?}], reloadInterval: 1s }}\nimages: {{ registries: {{ allow: [registry.example.com] }} }}\nserver: {{ metricsListen: \"127.0.0.1:{port}\" }}\n",
                policies.display()
            ),
        )
        .unwrap();
        let log = dir.path().join(format!("{name}.log"));
        let service = common::Service::spawn(
            Path::new(env!("CARGO_BIN_EXE_portcullis")),
            &[
                "audit",
                "--config",
                config.to_str().unwrap(),
                "--kubeconfig",
                &kubeconfig,
                "--interval",
                "1h",
                "--lease",
                "default/portcullis-audit",
            ],
            &log,
            std::process::Stdio::null(),
        );
        (service, port, log)
    };
    let (first, second) = (replica("first"), replica("second"));
    let client = reqwest::blocking::Client::new();
    let scrape = |port: u16| {
        client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .ok()
            .and_then(|response| response.text().ok())
            .unwrap_or_default()
    };
    let log_files = [first.2.clone(), second.2.clone()];
    let logs = || {
        log_files
            .iter()
            .map(|log| std::fs::read_to_string(log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let wait_for = |port: u16, what: &str, holds: &dyn Fn(&str) -> bool| {
        common::try_poll(Duration::from_secs(60), Duration::from_millis(200), || {
            Some(scrape(port)).filter(|text| holds(text))
        })
        .unwrap_or_else(|| panic!("{what}; last scrape:\n{}\nlogs:\n{}", scrape(port), logs()))
    };
    let value = |text: &str, series: &str| sample(text, series).unwrap_or(-1.0);
    const LEADER: &str = "portcullis_audit_leader";
    const PASSES: &str = r#"portcullis_audit_passes_total{result="success"}"#;
    const PODS: &str = r#"portcullis_audit_objects{kind="Pod"}"#;
    const CHANGES: &str = "portcullis_audit_changes_total";
    let pinning = |level: &str| {
        format!(r#"portcullis_audit_violations{{policy="audit.pinned",enforcement="deny",risk_level="{level}"}}"#)
    };
    let busybox = |level: &str| {
        format!(r#"portcullis_audit_violations{{policy="audit.no_busybox",enforcement="deny",risk_level="{level}"}}"#)
    };

    // One replica leads and audits; the other stands by with zeros.
    let leader = common::try_poll(Duration::from_secs(60), Duration::from_millis(200), || {
        let (a, b) = (scrape(first.1), scrape(second.1));
        match (value(&a, LEADER), value(&b, LEADER)) {
            (1.0, 0.0) if value(&a, PASSES) == 1.0 => Some(0),
            (0.0, 1.0) if value(&b, PASSES) == 1.0 => Some(1),
            _ => None,
        }
    })
    .unwrap_or_else(|| panic!("no replica leading; logs:\n{}", logs()));
    let (active, standby) = match leader {
        0 => (first, second),
        _ => (second, first),
    };
    let text = scrape(active.1);
    assert_eq!(value(&text, PODS), 2.0, "{text}");
    let text = scrape(standby.1);
    assert_eq!((value(&text, PASSES), value(&text, PODS)), (0.0, 0.0), "{text}");

    // A new Pod is decided as the watch reports it, without a pass.
    apply(&cluster, &pod("unpinned", "registry.example.com/team/web:1.0"));
    let text = wait_for(active.1, "the new Pod decided", &|text| {
        value(text, &pinning("high")) == 1.0 && value(text, PODS) == 3.0
    });
    assert_eq!(value(&text, PASSES), 1.0, "{text}");
    let changes = value(&text, CHANGES);
    assert!(changes >= 1.0, "{text}");
    // A status update is not decided again: the Pod created after it (on the same watch, so
    // seen after it) is the only change counted.
    cluster.kubectl(&[
        "patch",
        "pod",
        "unpinned",
        "-n",
        "team-a",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status": {"message": "status only"}}"#,
    ]);
    apply(
        &cluster,
        &pod("marker", &format!("registry.example.com/team/web@{DIGEST}")),
    );
    let text = wait_for(active.1, "the marker Pod decided", &|text| value(text, PODS) == 4.0);
    assert_eq!(value(&text, CHANGES), changes + 1.0, "{text}");
    // A deleted Pod leaves the numbers.
    cluster.kubectl(&["delete", "pod", "unpinned", "-n", "team-a", "--wait=false"]);
    let text = wait_for(active.1, "the deleted Pod gone", &|text| {
        value(text, &pinning("high")) == 0.0 && value(text, PODS) == 3.0
    });
    assert_eq!(value(&text, PASSES), 1.0, "{text}");

    // A new policy library: everything decided again.
    library(&policies, &[("no_busybox", NO_BUSYBOX)]);
    let text = wait_for(active.1, "a full pass with the new library", &|text| {
        value(text, &busybox("high")) == 1.0
    });
    assert_eq!(value(&text, PASSES), 2.0, "{text}");
    // A namespace's risk level: everything decided again.
    cluster.kubectl(&["label", "namespace", "team-a", "portcullis.io/risk-level=low"]);
    let text = wait_for(active.1, "a full pass at the new level", &|text| {
        value(text, &busybox("low")) == 1.0 && value(text, &busybox("high")) == 0.0
    });
    assert_eq!(value(&text, PASSES), 3.0, "{text}");

    // The active replica stops: it releases the lease and the standby takes over.
    let active_log = active.2.clone();
    active.0.stop();
    let log = std::fs::read_to_string(&active_log).unwrap();
    assert!(log.contains("audit lease released"), "{log}");
    let text = wait_for(standby.1, "the standby leading", &|text| {
        value(text, LEADER) == 1.0 && value(text, PASSES) == 1.0
    });
    assert_eq!(value(&text, PODS), 3.0, "{text}");
    assert_eq!(value(&text, &busybox("low")), 1.0, "{text}");
    standby.0.stop();
}

#[test]
fn the_audit_honours_the_clusters_policy_exceptions_as_the_webhook_does() {
    let cluster = ControlPlane::start();
    cluster.kubectl(&["create", "namespace", "team-a"]);
    cluster.install_exception_crd();
    for name in ["excused", "denied"] {
        apply(&cluster, &pod(name, "registry.example.com/shop:1.0"));
    }
    let exception = |name: &str, expires: &str| {
        json!({"apiVersion": "portcullis.io/v1alpha1", "kind": "PolicyException",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"policies": ["audit.pinned"], "match": {"kinds": ["Pod"], "names": ["excused", "denied"]},
                "expiresAt": expires, "ticket": "OPS-1"}})
    };
    let soon = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 86400).unwrap();
    let mut active = exception("unpinned-until-release", &soon.to_string());
    active["spec"]["match"]["names"] = json!(["excused"]);
    apply(&cluster, &active);
    apply(&cluster, &exception("ended", "2026-01-01T00:00:00Z"));

    let dir = tempfile::tempdir().unwrap();
    library(dir.path(), &[("pinned", PINNED)]);
    let config = dir.path().join("config.yaml");
    let policies = format!("policies: {{dirs: [{:?}]}}\n", dir.path().display());
    std::fs::write(&config, format!("{policies}exceptions: {{source: kubernetes}}\n")).unwrap();
    let (output, report) = audit(&cluster, &config, &[]);
    assert_eq!(output.status.code(), Some(1), "the other Pod is still denied: {report}");
    let result = |name: &str| {
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {report}"))
            .clone()
    };
    let excused = result("excused");
    assert_eq!(excused["allowed"], true, "{report}");
    assert_eq!(excused["findings"][0]["action"], "warn", "{report}");
    assert_eq!(
        excused["findings"][0]["excused_by"], "team-a/unpinned-until-release",
        "{report}"
    );
    let denied = result("denied");
    assert_eq!(
        denied["allowed"], false,
        "an expired exception covers nothing: {report}"
    );
    assert_eq!(denied["findings"][0]["action"], "deny", "{report}");

    // Without exceptions.source the same cluster is audited without them.
    std::fs::write(&config, policies).unwrap();
    let (_, report) = audit(&cluster, &config, &[]);
    assert!(
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["allowed"] == false),
        "{report}"
    );
}
