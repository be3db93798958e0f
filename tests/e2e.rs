//! End to end: the Helm chart installed into a real kube-apiserver (etcd + kube-apiserver built
//! from the Go module proxy, on loopback), in `webhook.url` mode pointing at a portcullis
//! process that runs the chart's rendered config and policy ConfigMaps, with images from a real
//! registry signed by real cosign. Everything is driven through kubectl and helm, so every
//! decision below is the apiserver's: its admission chain calls portcullis over HTTPS.
//!
//! One test owns the whole environment and runs the phases in order (each phase's failure is
//! reported and the next phases still run). Each phase is a method `Suite::phase_N_...` and
//! prints `e2e phase N: NAME` when it starts; docs/testing.md maps them to issue 4:
//!
//! 1. setup: control plane, registry with signed/unsigned images, CA and serving certificate;
//! 2. `helm install`, then portcullis started on the chart's ConfigMaps, laid out as kubelet
//!    would mount them by the chart's Deployment;
//! 3. every values variant of the chart passes `kubectl apply --dry-run=server`;
//! 4. admissions and denials through kubectl, `--dry-run=server`, ephemeral containers, the
//!    micro-app template of examples/;
//! 5. what is never sent (kube-system, the release namespace, the opt-out label), risk levels,
//!    the namespace label guard;
//! 11. PolicyExceptions (after 5): the chart's CRD and admission policy, exceptions created
//!     with kubectl turning denials into warnings (not when expired, not for another digest),
//!     their metrics, and `check` deciding the same manifests the same way;
//! 7. certificate rotation while kubectl keeps creating pods;
//! 8. portcullis's review count equals the apiserver's count of calls to its webhook;
//! 6. fail closed (it stops portcullis and repoints the webhook): portcullis stopped, a
//!    webhook that answers after its timeout (`Fail`, then `Ignore`), the apiserver's metrics;
//! 9. Gatekeeper (last: it changes the config): a ConstraintTemplate and Constraint shipped in
//!    `policies.extra`, Ingresses sent through `webhook.extraRules`, `data.inventory` synced
//!    with the chart's RBAC, following creations and deletions;
//! 10. the chart's continuous audit (after 9: it audits the Gatekeeper config too): two
//!     processes on the audit Deployment's arguments and the audit ServiceAccount's token (so
//!     the chart's audit RBAC is all they may do), one leading by the Lease and writing
//!     OpenReports reports into the real CRDs, the other taking over when it stops.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use common::cluster::ControlPlane;
use common::lab::{self, pick_port, run, tool, Service};
use common::{merge, try_poll};
use portcullis::server::certs::{self, CertBundle};

/// Release name and namespace of the chart's installation.
const RELEASE: &str = "portcullis";
/// The webhook's name (the chart's default), the `name` label of the apiserver's metrics.
const WEBHOOK: &str = "validate.portcullis.io";
const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/portcullis");
/// The builder id the default library's images.provenance trusts.
const TRUSTED_BUILDER: &str = "https://ci.example.com/builders/micro-apps";

/// How many sets of ports phase 2 tries for portcullis before it gives up.
const PORT_ATTEMPTS: usize = 5;

#[test]
fn the_chart_installed_into_a_real_apiserver_enforces_through_kubectl() {
    let started = Instant::now();
    eprintln!("e2e phase 1: setup (control plane, registry, certificates)");
    let mut suite = Suite::phase_1_setup();
    eprintln!("e2e phase 2: helm install, portcullis on the chart's config");
    suite.phase_2_install();
    eprintln!(
        "e2e: setup (points 1 and 2) took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    type Phase = fn(&mut Suite);
    let phases: [(u32, &str, Phase); 9] = [
        (
            3,
            "chart variants pass kubectl apply --dry-run=server",
            Suite::phase_3_chart_variants,
        ),
        (4, "admission through kubectl", Suite::phase_4_admission),
        (5, "scope and risk levels", Suite::phase_5_scope),
        (11, "PolicyExceptions from the chart's CRD", Suite::phase_11_exceptions),
        (
            7,
            "certificate rotation under load",
            Suite::phase_7_certificate_rotation,
        ),
        (8, "review counts agree", Suite::phase_8_review_counts),
        (6, "fail closed", Suite::phase_6_fail_closed),
        (
            9,
            "Gatekeeper policies and inventory from the chart",
            Suite::phase_9_gatekeeper,
        ),
        (
            10,
            "the chart's continuous audit: two replicas, one Lease, reports",
            Suite::phase_10_continuous_audit,
        ),
    ];
    let mut failed = Vec::new();
    for (number, name, phase) in phases {
        eprintln!("e2e phase {number}: {name}");
        let name = format!("{number} {name}");
        let phase_started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| phase(&mut suite)));
        let took = phase_started.elapsed().as_secs_f64();
        match result {
            Ok(()) => eprintln!("e2e: phase {name}: ok in {took:.1} s"),
            Err(_) => {
                eprintln!("e2e: phase {name}: FAILED after {took:.1} s (panic above)");
                failed.push(name);
            }
        }
    }
    eprintln!("e2e: total {:.1} s", started.elapsed().as_secs_f64());
    if !failed.is_empty() {
        eprintln!("{}", suite.logs());
    }
    assert!(failed.is_empty(), "failed phases: {failed:?}");
}

/// What a kubectl or helm run did.
struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok={} in {:?}\nstdout: {}\nstderr: {}",
            self.ok, self.took, self.stdout, self.stderr
        )
    }
}

/// The images of the lab registry.
struct Images {
    /// Pinned, signed with the trusted key, with a CycloneDX SBOM and SLSA provenance from the
    /// trusted builder: admitted at every risk level.
    signed: String,
    /// Pinned, never signed.
    unsigned: String,
    /// The signed image by tag only (`REGISTRY/micro/app:1.0`).
    tagged: String,
}

/// The environment every phase shares: one control plane, one registry, one release.
struct Suite {
    cluster: ControlPlane,
    lab: lab::Lab,
    images: Images,
    helm: PathBuf,
    /// Values files, certificates, the process's log, the token kubeconfig.
    work: tempfile::TempDir,
    /// `paths.root`: where the chart's volumes are laid out for the local process.
    root: PathBuf,
    /// The CA and the serving certificate in use.
    serving: CertBundle,
    /// What the webhook's caBundle holds (PEM).
    ca_bundle: String,
    port: u16,
    metrics_port: u16,
    portcullis: Option<Service>,
    /// Apiserver calls to the webhook (its metric) when the running portcullis started.
    calls_at_start: f64,
    /// For unique object names.
    counter: usize,
    http: reqwest::blocking::Client,
}

impl Suite {
    // ---------------------------------------------------------------------------------------
    // 1 and 2: setup, helm install, portcullis on the chart's rendered config.

    /// The control plane, the registry with its images, the certificates and the namespaces.
    fn phase_1_setup() -> Suite {
        // The control plane (about 4 s) starts while the registry is filled and signed.
        let (cluster, (lab, images)) = std::thread::scope(|scope| {
            let cluster = scope.spawn(ControlPlane::start);
            let lab = scope.spawn(fill_registry);
            (cluster.join().expect("control plane"), lab.join().expect("lab"))
        });
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("root");
        let serving = certs::generate(&["127.0.0.1"]).unwrap();
        let ca_bundle = serving.ca_cert.clone();
        std::fs::write(work.path().join("ca.crt"), &serving.ca_cert).unwrap();
        let suite = Suite {
            cluster,
            lab,
            images,
            helm: tool("helm"),
            work,
            root,
            serving,
            ca_bundle,
            // portcullis's ports go into the chart's values (the webhook's URL) before it
            // starts, and stay across its restarts: chosen, not bound to port 0.
            port: pick_port(),
            metrics_port: pick_port(),
            portcullis: None,
            calls_at_start: 0.0,
            counter: 0,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        };
        for (namespace, labels) in [
            ("high", &["portcullis.io/risk-level=high"][..]),
            ("low", &["portcullis.io/risk-level=low"]),
            ("opted-out", &["portcullis.io/ignore=true"]),
        ] {
            suite.cluster.kubectl(&["create", "namespace", namespace]);
            suite
                .cluster
                .kubectl(&[&["label", "namespace", namespace][..], labels].concat());
        }
        suite
    }

    /// `helm install`, the chart's volumes laid out, portcullis started on them. Should another
    /// process have bound one of portcullis's ports first, the release moves to new ports
    /// (`helm upgrade`), at most `PORT_ATTEMPTS` times.
    fn phase_2_install(&mut self) {
        for attempt in 1..=PORT_ATTEMPTS {
            let values = self.values(json!({}));
            let installed = if attempt == 1 {
                self.helm_release("install", &values, &["--create-namespace"])
            } else {
                self.helm_upgrade(&values)
            };
            assert!(installed.ok, "helm install: {installed:?}");
            let webhook: Value = serde_json::from_str(&self.cluster.kubectl(&[
                "get",
                "validatingwebhookconfiguration",
                RELEASE,
                "-o",
                "json",
            ]))
            .unwrap();
            let client = &webhook["webhooks"][0]["clientConfig"];
            assert_eq!(client["url"], self.url(self.port), "{webhook}");
            assert_eq!(webhook["webhooks"][0]["name"], WEBHOOK);
            self.mount_chart_volumes(&values, &["config", "tls", "policies-library", "trust"]);
            if self.try_start_portcullis() {
                return;
            }
            eprintln!(
                "e2e: 127.0.0.1:{} or :{} was taken (attempt {attempt}); new ports",
                self.port, self.metrics_port
            );
            (self.port, self.metrics_port) = (pick_port(), pick_port());
        }
        panic!("portcullis found its ports taken {PORT_ATTEMPTS} times");
    }

    /// The chart's values for this suite, with `overrides` merged over them, written to a file.
    fn values(&mut self, overrides: Value) -> PathBuf {
        let registry = &self.lab.registry;
        let root = self.root.to_str().unwrap();
        let mut values = json!({
            "webhook": {"url": self.url(self.port), "caBundle": self.ca_bundle},
            "paths": {"root": root},
            "listen": {"address": "127.0.0.1", "webhookPort": self.port, "metricsPort": self.metrics_port},
            "config": {
                "server": {
                    // A short poll, so the rotation phase does not wait 5 s for the reload.
                    "tls": {"reloadInterval": "1s"},
                    // No Service endpoints to drain out of the cluster: stop at once.
                    "shutdownDelay": "0s",
                    "shutdownGracePeriod": "5s"
                },
                "risk": {"namespaceSource": "kubernetes"},
                "images": {
                    "registries": {"allow": [registry], "insecure": [registry]},
                    "trust": [{
                        "name": "lab",
                        "images": [format!("{registry}/micro/**")],
                        "authorities": [{"name": "ci-key", "key": {"path": format!("{root}/trust/keys/trusted.pub")}}]
                    }]
                }
            },
            "trust": {"keys": {"trusted.pub": std::fs::read_to_string(self.lab.key("trusted")).unwrap()}}
        });
        merge(&mut values, overrides);
        self.counter += 1;
        let path = self.work.path().join(format!("values-{}.json", self.counter));
        std::fs::write(&path, serde_json::to_vec_pretty(&values).unwrap()).unwrap();
        path
    }

    fn url(&self, port: u16) -> String {
        format!("https://127.0.0.1:{port}/validate")
    }

    /// Lays out every volume the chart's Deployment mounts (rendered in-cluster mode from the
    /// same values) below `paths.root` as kubelet does, with the data of the ConfigMaps `helm
    /// install` created in the cluster, and this suite's serving certificate as the TLS Secret.
    fn mount_chart_volumes(&mut self, values: &Path, expected: &[&str]) {
        let rendered = self.helm_release(
            "template",
            values,
            &["--set", "webhook.url=", "--set", "webhook.caBundle="],
        );
        assert!(rendered.ok, "helm template: {rendered:?}");
        let objects = documents(&rendered.stdout);
        let deployment = objects
            .iter()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == RELEASE)
            .expect("the webhook's Deployment in-cluster");
        // The installed (webhook.url) config is the one the pods would run.
        let rendered_config = objects
            .iter()
            .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == format!("{RELEASE}-config"))
            .expect("the config ConfigMap");
        assert_eq!(
            self.configmap(&format!("{RELEASE}-config")).get("config.yaml"),
            rendered_config["data"]["config.yaml"]
                .as_str()
                .map(String::from)
                .as_ref(),
            "webhook.url mode renders the same config as the in-cluster mode"
        );
        let pod = &deployment["spec"]["template"]["spec"];
        let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
        let mut mounted = Vec::new();
        for mount in mounts {
            let name = mount["name"].as_str().unwrap();
            let path = PathBuf::from(mount["mountPath"].as_str().unwrap());
            assert!(
                path.starts_with(&self.root),
                "{name} is mounted outside paths.root: {path:?}"
            );
            let volume = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("no volume {name}"));
            let (data, items) = if let Some(source) = volume.get("configMap") {
                (self.configmap(source["name"].as_str().unwrap()), &source["items"])
            } else if let Some(source) = volume.get("secret") {
                assert_eq!(
                    source["secretName"],
                    format!("{RELEASE}-tls"),
                    "only the TLS Secret is mounted"
                );
                (self.tls_secret(&self.serving.clone()), &source["items"])
            } else {
                panic!("volume {name}: only ConfigMaps and the TLS Secret are laid out here: {volume}");
            };
            project(&path, &select(&data, items));
            mounted.push(name.to_string());
        }
        assert_eq!(mounted, expected, "the volumes of this values set");
    }

    fn tls_secret(&self, bundle: &CertBundle) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("tls.crt".to_string(), bundle.cert.clone()),
            ("tls.key".to_string(), bundle.key.clone()),
        ])
    }

    fn configmap(&self, name: &str) -> BTreeMap<String, String> {
        let text = self
            .cluster
            .kubectl(&["get", "configmap", name, "--namespace", RELEASE, "-o", "json"]);
        let object: Value = serde_json::from_str(&text).unwrap();
        serde_json::from_value(object["data"].clone()).unwrap()
    }

    /// portcullis serving the chart's config, with the token of the chart's ServiceAccount (so
    /// the chart's RBAC is what lets it watch Namespaces); returns once /readyz answers 200.
    fn start_portcullis(&mut self) {
        assert!(
            self.try_start_portcullis(),
            "portcullis could not bind 127.0.0.1:{} and :{}",
            self.port,
            self.metrics_port
        );
    }

    /// [`Suite::start_portcullis`], or false once portcullis has failed to bind its ports
    /// ("address already in use" in its log; it is stopped then).
    fn try_start_portcullis(&mut self) -> bool {
        assert!(self.portcullis.is_none());
        let kubeconfig_path = self.token_kubeconfig(RELEASE);
        let config = self.root.join("config/config.yaml");
        let log = self.work.path().join("portcullis.log");
        let service = Service::spawn(
            Path::new("env"),
            &[
                &format!("KUBECONFIG={}", kubeconfig_path.display()),
                env!("CARGO_BIN_EXE_portcullis"),
                "serve",
                "--config",
                config.to_str().unwrap(),
            ],
            &log,
            Stdio::null(),
        );
        self.portcullis = Some(service);
        let ready = format!("http://127.0.0.1:{}/readyz", self.metrics_port);
        let bind_failed = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .to_ascii_lowercase()
                .contains("address already in use")
        };
        // Some(true): ready; Some(false): it could not bind.
        let up = try_poll(Duration::from_secs(30), Duration::from_millis(100), || {
            if self.http.get(&ready).send().is_ok_and(|r| r.status() == 200) {
                Some(true)
            } else {
                bind_failed().then_some(false)
            }
        });
        if up == Some(false) {
            self.portcullis.take().expect("portcullis runs").stop();
            return false;
        }
        assert!(
            up.is_some(),
            "portcullis not ready within 30 s; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert_eq!(self.portcullis_reviews(), 0.0, "a fresh process has reviewed nothing");
        self.calls_at_start = self.webhook_calls();
        true
    }

    /// A kubeconfig that authenticates as the ServiceAccount `name` of the release namespace
    /// (a token from the apiserver), so that only the chart's RBAC grants what it can do.
    fn token_kubeconfig(&self, name: &str) -> PathBuf {
        let token = self
            .cluster
            .kubectl(&["create", "token", name, "--namespace", RELEASE, "--duration", "2h"]);
        let mut kubeconfig: Value =
            yaml_serde::from_str(&std::fs::read_to_string(&self.cluster.kubeconfig).unwrap()).unwrap();
        kubeconfig["users"][0]["user"] = json!({"token": token.trim()});
        let path = self.work.path().join(format!("{name}.kubeconfig"));
        std::fs::write(&path, serde_json::to_vec(&kubeconfig).unwrap()).unwrap();
        path
    }

    fn stop_portcullis(&mut self) {
        self.portcullis.take().expect("portcullis runs").stop();
        let gone = try_poll(Duration::from_secs(10), Duration::from_millis(100), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port))
                .is_err()
                .then_some(())
        });
        assert!(gone.is_some(), "portcullis still listens after stop");
    }

    // ---------------------------------------------------------------------------------------
    // 3: every values variant passes the apiserver's validation.

    fn phase_3_chart_variants(&mut self) {
        // CRDs for the objects other operators own: cert-manager's, Prometheus Operator's.
        let crds = tool("crds");
        self.cluster
            .kubectl(&["apply", "--server-side", "-f", crds.to_str().unwrap()]);
        self.cluster.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "customresourcedefinition",
            "--all",
        ]);
        // Namespaces the supply-chain variant grants pull-secret reading in.
        for namespace in ["team-a", "team-b"] {
            self.cluster.kubectl(&["create", "namespace", namespace]);
        }
        let mut variants = vec![("default".to_string(), None)];
        let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(CHART).join("ci"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        for file in files {
            variants.push((file.file_name().unwrap().to_string_lossy().into_owned(), Some(file)));
        }
        assert!(
            variants.len() >= 7,
            "the default and the six ci/ variants: {variants:?}"
        );
        let mut kinds = BTreeSet::new();
        for (name, file) in &variants {
            // Another release name: a fresh install beside the running one. Its namespaced
            // objects go to the release namespace, which the installed webhook exempts (the
            // variant's Deployment runs the portcullis image, which this cluster would deny).
            let mut args = vec!["template", "variant", CHART, "--namespace", RELEASE];
            if let Some(file) = file {
                args.extend(["--values", file.to_str().unwrap()]);
            }
            let rendered = self.helm(&args);
            assert!(rendered.ok, "{name}: helm template: {rendered:?}");
            let objects = documents(&rendered.stdout);
            kinds.extend(objects.iter().map(|o| o["kind"].as_str().unwrap().to_string()));
            let applied = self.kubectl(
                &["apply", "--dry-run=server", "-f", "-"],
                Some(rendered.stdout.as_bytes()),
            );
            assert!(applied.ok, "{name}: kubectl apply --dry-run=server: {applied:?}");
            let accepted = applied
                .stdout
                .lines()
                .filter(|l| l.ends_with("(server dry run)"))
                .count();
            assert_eq!(accepted, objects.len(), "{name}: every object accepted: {applied:?}");
            eprintln!("e2e: variant {name}: {accepted} objects accepted by the apiserver (dry run)");
        }
        for kind in [
            "Deployment",
            "ValidatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "Certificate",
            "Issuer",
            "ServiceMonitor",
            "PrometheusRule",
            "NetworkPolicy",
            "PodDisruptionBudget",
        ] {
            assert!(kinds.contains(kind), "no variant renders a {kind}: {kinds:?}");
        }
    }

    // ---------------------------------------------------------------------------------------
    // 4: admission through kubectl.

    fn phase_4_admission(&mut self) {
        let signed = self.images.signed.clone();
        let unsigned = self.images.unsigned.clone();
        let tagged = self.images.tagged.clone();
        let digest = signed.split_once('@').unwrap().1.to_string();
        let registry = self.lab.registry.clone();

        // Admitted: a Pod and a Deployment with the signed, pinned image.
        let pod = self.pod("high", &signed);
        self.admitted_both_ways(&pod);
        let deployment = self.fixture_object("manifests/good/deployment.yaml", 0, "high", &signed);
        self.admitted_both_ways(&deployment);

        // Denied, each by exactly the policy it is about, with its message in kubectl's stderr.
        let pod = self.pod("high", &unsigned);
        let denial = self.denied_both_ways(&pod, "images.signatures");
        assert!(
            denial.contains(&format!("image \"{unsigned}\" is unsigned")),
            "{denial}"
        );
        let pod = self.pod("high", &tagged);
        let denial = self.denied_both_ways(&pod, "images.digest_pinning");
        let pin = format!("pin it: {registry}/micro/app@{digest}");
        assert!(denial.contains(&pin), "the digest to pin ({pin}): {denial}");
        let host_path = self.fixture_object("manifests/bad/app.yaml", 1, "high", &signed);
        let denial = self.denied_both_ways(&host_path, "pods.host_path");
        assert!(
            denial.contains("mounts the path \"/\" from the node (hostPath)"),
            "{denial}"
        );
        let mut privileged = self.pod("high", &signed);
        privileged["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
        let denial = self.denied_both_ways(&privileged, "pods.privileged");
        assert!(denial.contains("privileged"), "{denial}");

        // An ephemeral container, added through the pods/ephemeralcontainers subresource.
        let target = self.pod("high", &signed);
        let name = target["metadata"]["name"].as_str().unwrap().to_string();
        assert!(self.create(&target, false).ok);
        let debug = |suite: &Suite, container: &str, image: &str| {
            suite.kubectl(
                &[
                    "debug",
                    &name,
                    "--namespace=high",
                    &format!("--image={image}"),
                    &format!("--container={container}"),
                    "--profile=general",
                ],
                None,
            )
        };
        let refused = debug(self, "debug-unsigned", &unsigned);
        assert!(!refused.ok, "an unsigned ephemeral container is refused: {refused:?}");
        assert!(
            refused
                .stderr
                .contains(&format!("admission webhook \"{WEBHOOK}\" denied the request"))
                && refused.stderr.contains("- images.signatures:")
                && refused.stderr.contains(&format!("image \"{unsigned}\" is unsigned")),
            "{refused:?}"
        );
        let admitted = debug(self, "debug-signed", &signed);
        assert!(admitted.ok, "a signed ephemeral container is admitted: {admitted:?}");
        let containers = self.cluster.kubectl(&[
            "get",
            "pod",
            &name,
            "--namespace=high",
            "-o",
            "jsonpath={.spec.ephemeralContainers[*].name}",
        ]);
        assert_eq!(containers, "debug-signed");

        // The micro-app template (examples/micro-app) as GitOps applies it: the platform's
        // Namespace, then the rendered kustomization, its image pointed at the lab's signed one
        // (the template's CI pins the digest it built; here the digest the lab signed).
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/micro-app");
        self.cluster
            .kubectl(&["apply", "-f", example.join("platform/namespace.yaml").to_str().unwrap()]);
        let mut objects = documents(&self.cluster.kubectl(&["kustomize", example.to_str().unwrap()]));
        let mut pinned = 0;
        for object in objects.iter_mut().filter(|o| o["kind"] == "Deployment") {
            for container in object["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap() {
                container["image"] = json!(signed);
                pinned += 1;
            }
        }
        assert!(pinned > 0, "the example has a Deployment: {objects:?}");
        let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
        let applied = self.kubectl(&["apply", "-f", "-"], Some(list.to_string().as_bytes()));
        assert!(applied.ok, "the micro-app template is admitted: {applied:?}");
        assert!(!applied.stderr.contains("Warning:"), "without a warning: {applied:?}");
    }

    /// `object` is created with `--dry-run=server` (and then does not exist), then for real.
    fn admitted_both_ways(&mut self, object: &Value) {
        let what = format!("{}/{}", object["kind"], object["metadata"]["name"]);
        let dry = self.create(object, true);
        assert!(
            dry.ok && dry.stdout.contains("created (server dry run)"),
            "{what}: {dry:?}"
        );
        assert!(!self.exists(object), "{what}: a dry run creates nothing");
        let real = self.create(object, false);
        assert!(real.ok, "{what}: {real:?}");
        assert!(self.exists(object), "{what} exists");
        assert_eq!(dry.stderr, real.stderr, "{what}: same warnings");
    }

    /// `object` is refused with `--dry-run=server` and for real, with the same message: one
    /// policy, `policy`, at risk level high. Returns kubectl's stderr.
    fn denied_both_ways(&mut self, object: &Value, policy: &str) -> String {
        let what = format!("{}/{}", object["kind"], object["metadata"]["name"]);
        let dry = self.create(object, true);
        let real = self.create(object, false);
        assert!(!dry.ok && !real.ok, "{what} is refused: {dry:?}\n{real:?}");
        assert!(!self.exists(object), "{what} was not created");
        let kind = object["kind"].as_str().unwrap();
        let expected = format!(
            "admission webhook \"{WEBHOOK}\" denied the request: 1 policy denied this {kind} (risk level high):\n- {policy}: "
        );
        assert!(
            real.stderr.contains(&expected),
            "{what}: expected {expected:?} in {real:?}"
        );
        assert_eq!(
            dry.stderr, real.stderr,
            "{what}: --dry-run=server gives the same answer"
        );
        real.stderr
    }

    // ---------------------------------------------------------------------------------------
    // 5: exempt namespaces, risk levels, the label guard.

    fn phase_5_scope(&mut self) {
        let unsigned = self.images.unsigned.clone();
        let tagged = self.images.tagged.clone();

        // Never sent to portcullis: kube-system, the release namespace, an opted-out namespace.
        // An unsigned image, which any enforced namespace denies, is created there.
        let reviews = self.portcullis_reviews();
        let calls = self.webhook_calls();
        for namespace in ["kube-system", RELEASE, "opted-out"] {
            let pod = self.pod(namespace, &unsigned);
            let created = self.create(&pod, false);
            assert!(created.ok, "{namespace}: {created:?}");
        }
        assert_eq!(self.webhook_calls(), calls, "the apiserver made no call for them");
        // A review in an enforced namespace: portcullis's counter moves by exactly that one
        // (so it was not behind), hence the three pods above never reached it.
        let pod = self.pod("high", &unsigned);
        assert!(!self.create(&pod, false).ok);
        self.eventually_reviews(reviews + 1.0);

        // The same tag-only Pod: warnings at low, a denial at high.
        let pod = self.pod("low", &tagged);
        let low = self.create(&pod, false);
        assert!(low.ok, "low: admitted with warnings: {low:?}");
        let warnings: Vec<&str> = low.stderr.lines().filter(|l| l.starts_with("Warning: ")).collect();
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("Warning: images.digest_pinning: ")),
            "low: a digest-pinning warning: {low:?}"
        );
        let pod = self.pod("high", &tagged);
        let high = self.create(&pod, false);
        assert!(!high.ok, "high: denied: {high:?}");
        assert!(
            high.stderr.contains("(risk level high):\n- images.digest_pinning: "),
            "{high:?}"
        );

        // An object cannot lower its namespace's level, and can raise it.
        let mut pod = self.pod("high", &tagged);
        pod["metadata"]["labels"][portcullis::risk::LABEL] = json!("low");
        let lowered = self.create(&pod, false);
        assert!(!lowered.ok, "a low label in a high namespace: still high: {lowered:?}");
        assert!(lowered.stderr.contains("(risk level high):"), "{lowered:?}");
        let mut pod = self.pod("low", &tagged);
        pod["metadata"]["labels"][portcullis::risk::LABEL] = json!("high");
        let raised = self.create(&pod, false);
        assert!(!raised.ok, "a high label in a low namespace: high: {raised:?}");
        assert!(raised.stderr.contains("(risk level high):"), "{raised:?}");

        // The namespace label guard: a user who may update Namespaces still may not change the
        // labels that decide how portcullis checks them.
        self.kubectl_ok(
            &["apply", "-f", "-"],
            &json!({"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                 "metadata": {"name": "namespace-editor"},
                 "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "update", "patch"]}]},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                 "metadata": {"name": "namespace-editor"},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "namespace-editor"},
                 "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dev"}]}
            ]}),
        );
        let label = |suite: &Suite, label: &str| {
            suite.kubectl(&["label", "--overwrite", "namespace", "high", label, "--as=dev"], None)
        };
        let other = label(self, "team=payments");
        assert!(other.ok, "dev may label namespaces: {other:?}");
        for guarded in ["portcullis.io/risk-level=low", "portcullis.io/ignore=true"] {
            let refused = label(self, guarded);
            assert!(!refused.ok, "{guarded}: {refused:?}");
            assert!(
                refused
                    .stderr
                    .contains("only platform admins may add, change or remove the labels"),
                "{guarded}: {refused:?}"
            );
        }
        let level = self.cluster.kubectl(&[
            "get",
            "namespace",
            "high",
            "-o",
            "jsonpath={.metadata.labels.portcullis\\.io/risk-level}",
        ]);
        assert_eq!(level, "high");
    }

    // ---------------------------------------------------------------------------------------
    // 11: PolicyExceptions.

    fn phase_11_exceptions(&mut self) {
        let signed = self.images.signed.clone();
        let unsigned = self.images.unsigned.clone();
        let digest = signed.split_once('@').unwrap().1.to_string();
        let crd = self.kubectl(&["get", "crd", "policyexceptions.portcullis.io"], None);
        assert!(crd.ok, "the chart installs the CRD: {crd:?}");

        let host_path = self.fixture_object("manifests/bad/app.yaml", 1, "high", &signed);
        let privileged = |suite: &mut Suite, image: &str| {
            let mut pod = suite.pod("high", image);
            pod["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
            pod
        };
        let ended = privileged(self, &signed);
        let this_build = privileged(self, &signed);
        let next_build = privileged(self, &unsigned);
        let name = |object: &Value| object["metadata"]["name"].as_str().unwrap().to_string();
        let in_days = |days: i64| {
            let now = jiff::Timestamp::now().as_second();
            jiff::Timestamp::from_second(now + days * 86400).unwrap().to_string()
        };
        let exception = |name: &str, policy: &str, objects: &[String], expires: String| {
            json!({"apiVersion": "portcullis.io/v1alpha1", "kind": "PolicyException",
                "metadata": {"name": name, "namespace": "high"},
                "spec": {"policies": [policy], "match": {"kinds": ["Pod"], "names": objects},
                    "expiresAt": expires, "ticket": "OPS-4711", "reason": "until the migration"}})
        };
        let mut bound = exception(
            "this-build",
            "pods.privileged",
            &[name(&this_build), name(&next_build)],
            in_days(30),
        );
        bound["spec"]["images"] = json!([digest]);
        // The expired one first: once the last is seen, the watch has read them all.
        let exceptions = [
            exception("ended", "pods.privileged", &[name(&ended)], in_days(-1)),
            bound,
            exception("debug-shell", "pods.host_path", &[name(&host_path)], in_days(30)),
        ];
        let list = json!({"apiVersion": "v1", "kind": "List", "items": exceptions});
        self.kubectl_ok(&["apply", "-f", "-"], &list);

        // The host-path Pod is admitted once the webhook has read its exception, with a warning
        // that says which exception excused what.
        let excused = try_poll(Duration::from_secs(20), Duration::from_millis(250), || {
            let created = self.create(&host_path, true);
            created.ok.then_some(created)
        })
        .expect("the exception is honoured within 20 s");
        // kubectl prints a long warning over several lines; read it as one.
        let warnings = |outcome: &Outcome| outcome.stderr.replace("\nWarning:   ", " ");
        let warned = warnings(&excused);
        assert!(
            warned.lines().any(|l| l.starts_with("Warning: pods.host_path: ")
                && l.contains("mounts the path")
                && l.contains("(excused by PolicyException high/debug-shell until ")
                && l.ends_with(", ticket OPS-4711)")),
            "{excused:?}"
        );
        // Expired: it covers nothing. Bound to a digest: that build only.
        let denial = self.denied_both_ways(&ended, "pods.privileged");
        assert!(!denial.contains("excused"), "{denial}");
        let admitted = self.create(&this_build, true);
        assert!(admitted.ok, "the bound digest is excused: {admitted:?}");
        assert!(
            warnings(&admitted).contains("(excused by PolicyException high/this-build until "),
            "{admitted:?}"
        );
        let refused = self.create(&next_build, true);
        assert!(
            !refused.ok && refused.stderr.contains("\n- pods.privileged: "),
            "another digest is not excused: {refused:?}"
        );

        // check decides the same manifests, exceptions among them, the same way.
        let dir = self.work.path().join("exceptions-check");
        std::fs::create_dir_all(&dir).unwrap();
        let manifests = json!({"apiVersion": "v1", "kind": "List",
            "items": [&host_path, &ended, &this_build, &next_build]});
        std::fs::write(dir.join("pods.json"), manifests.to_string()).unwrap();
        std::fs::write(dir.join("exceptions.json"), list.to_string()).unwrap();
        let config = self.root.join("config/config.yaml");
        let checked = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["check", "--config", config.to_str().unwrap(), "--risk-level", "high"])
            .args(["--output", "json", dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(checked.status.code(), Some(1), "denials: exit 1: {checked:?}");
        let report: Value = serde_json::from_slice(&checked.stdout).unwrap_or_else(|_| panic!("{checked:?}"));
        let allowed = |object: &Value| {
            let found = report["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == object["metadata"]["name"])
                .unwrap_or_else(|| panic!("{} in {report}", name(object)));
            found["allowed"].as_bool().unwrap()
        };
        assert_eq!(
            [&host_path, &ended, &this_build, &next_build].map(allowed),
            [true, false, true, false],
            "{report}"
        );

        // The metrics: active and expired by policy, the denials excused.
        let scraped = try_poll(Duration::from_secs(30), Duration::from_millis(250), || {
            let text = self
                .http
                .get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
                .send()
                .and_then(|r| r.text())
                .ok()?;
            let count = |policy: &str, state: &str| {
                metric_sum(&text, "portcullis_exceptions", &[("policy", policy), ("state", state)])
            };
            (count("pods.host_path", "active") == 1.0
                && count("pods.privileged", "active") == 1.0
                && count("pods.privileged", "expired") == 1.0)
                .then_some(text)
        })
        .expect("the exception metrics within 30 s");
        assert!(
            metric_sum(
                &scraped,
                "portcullis_findings_excused_total",
                &[("policy", "pods.host_path")]
            ) >= 1.0,
            "{scraped}"
        );
        // The expired one's end, a day before now (to the second its manifest said).
        let ended_at = metric_sum(
            &scraped,
            "portcullis_exception_expiry_timestamp_seconds",
            &[("exception", "high/ended")],
        );
        let day_ago = (jiff::Timestamp::now().as_second() - 86400) as f64;
        assert!((ended_at - day_ago).abs() < 120.0, "{ended_at} vs {day_ago}: {scraped}");

        // The chart's admission policy: no exception without a ticket, none longer than allowed.
        let mut no_ticket = exception("no-ticket", "pods.host_path", &[], in_days(1));
        no_ticket["spec"]["ticket"] = json!(" ");
        no_ticket["spec"]["match"]["names"] = json!(["x"]);
        let refused = self.create(&no_ticket, false);
        assert!(
            !refused.ok && refused.stderr.contains("every PolicyException names the ticket"),
            "{refused:?}"
        );
        let too_long = exception("too-long", "pods.host_path", &["x".to_string()], in_days(91));
        let refused = self.create(&too_long, false);
        assert!(
            !refused.ok && refused.stderr.contains("a PolicyException may run at most 90 days"),
            "{refused:?}"
        );

        let mut no_values = exception("no-values", "pods.host_path", &["x".to_string()], in_days(1));
        no_values["spec"]["match"]["labelSelector"] = json!({"matchExpressions": [{"key": "app", "operator": "In"}]});
        let refused = self.create(&no_values, false);
        assert!(
            !refused.ok && refused.stderr.contains("In and NotIn need values"),
            "the CRD's schema: {refused:?}"
        );

        // Deleted: the denial is back.
        self.kubectl_ok(&["delete", "-f", "-"], &list);
        let back = try_poll(Duration::from_secs(20), Duration::from_millis(250), || {
            let created = self.create(&host_path, true);
            (!created.ok).then_some(created)
        })
        .expect("the deletion is followed within 20 s");
        assert!(back.stderr.contains("- pods.host_path: "), "{back:?}");
    }

    // ---------------------------------------------------------------------------------------
    // 7: certificate rotation while kubectl keeps creating pods.

    fn phase_7_certificate_rotation(&mut self) {
        let signed = self.images.signed.clone();
        let old = self.serving.clone();
        let new = certs::reissue(&old, &["127.0.0.1"]).unwrap();
        assert_ne!(pem_body(&new.cert), pem_body(&old.cert));
        assert_eq!(
            self.served_certificate(),
            pem_body(&old.cert),
            "before: the first certificate"
        );
        let tls = self.root.join("tls");
        let mut failures = Vec::new();
        let (mut created, mut swapped, mut served_new, mut fresh, mut after_fresh) = (0, None, None, None, 0);
        let mut known = BTreeSet::new();
        for i in 0..60 {
            let pod = self.pod("high", &signed);
            let outcome = self.create(&pod, false);
            if outcome.ok {
                created += 1;
            } else {
                failures.push(outcome);
            }
            if i == 4 {
                // kubelet's update of the Secret volume: new directory, ..data swapped.
                project(&tls, &select(&self.tls_secret(&new), &Value::Null));
                swapped = Some(i);
            } else if swapped.is_some() && served_new.is_none() && self.served_certificate() == pem_body(&new.cert) {
                served_new = Some(i);
                // The apiserver keeps its connections alive, so the calls so far may all have
                // used a connection made before the swap. Add a second CA to the caBundle (the
                // first step of a CA rollover, as the chart's own rotation does): the apiserver
                // builds a new client, whose first call must handshake with the new certificate.
                known = connections_to(self.port);
                let other_ca = certs::generate(&["other"]).unwrap().ca_cert;
                self.ca_bundle = format!("{}\n{}", self.ca_bundle.trim(), other_ca.trim());
                let values = self.values(json!({}));
                let upgraded = self.helm_upgrade(&values);
                assert!(upgraded.ok, "{upgraded:?}");
            } else if served_new.is_some() && fresh.is_none() && !connections_to(self.port).is_subset(&known) {
                fresh = Some(i);
            } else if fresh.is_some() {
                after_fresh += 1;
                if after_fresh == 5 {
                    break;
                }
            }
        }
        self.serving = new.clone();
        eprintln!(
            "e2e: rotation: {created} pods created, files swapped after #{swapped:?}, new certificate served from #{served_new:?}, a new apiserver connection from #{fresh:?}"
        );
        assert!(
            failures.is_empty(),
            "no failed creation during the rotation: {failures:?}"
        );
        assert!(served_new.is_some(), "the new certificate was never served");
        assert!(fresh.is_some(), "the apiserver never connected again after the reload");
        assert_eq!(after_fresh, 5, "pods created over the new connection");
        assert_eq!(self.served_certificate(), pem_body(&new.cert));
    }

    // ---------------------------------------------------------------------------------------
    // 8: portcullis's count of reviews equals the apiserver's count of calls to it.

    fn phase_8_review_counts(&mut self) {
        let signed = self.images.signed.clone();
        let unsigned = self.images.unsigned.clone();
        let tagged = self.images.tagged.clone();
        let (reviews, calls) = (self.portcullis_reviews(), self.webhook_calls());
        // A known mix: 6 calls (allow, dry run, deny, warn, a Deployment, an ephemeral
        // container) and 2 creations the webhook never sees.
        let pod = self.pod("high", &signed);
        let name = pod["metadata"]["name"].as_str().unwrap().to_string();
        assert!(self.create(&pod, true).ok);
        assert!(self.create(&pod, false).ok);
        let denied = self.pod("high", &unsigned);
        assert!(!self.create(&denied, false).ok);
        let warned = self.pod("low", &tagged);
        assert!(self.create(&warned, false).ok);
        let deployment = self.fixture_object("manifests/good/deployment.yaml", 0, "high", &signed);
        assert!(self.create(&deployment, false).ok);
        let debug = self.kubectl(
            &[
                "debug",
                &name,
                "--namespace=high",
                &format!("--image={unsigned}"),
                "--container=debug",
            ],
            None,
        );
        assert!(!debug.ok, "{debug:?}");
        for namespace in ["kube-system", RELEASE] {
            let exempt = self.pod(namespace, &unsigned);
            assert!(self.create(&exempt, false).ok);
        }
        let apiserver = self.webhook_calls() - calls;
        assert_eq!(apiserver, 6.0, "the apiserver's count of calls to {WEBHOOK}");
        self.eventually_reviews(reviews + 6.0);

        // And over the whole life of this portcullis process (phases 4 to 8: every request it
        // got is a call the apiserver counted, and the other way round).
        let lifetime = self.webhook_calls() - self.calls_at_start;
        assert!(lifetime >= 20.0, "phases 4 to 8 made many calls: {lifetime}");
        self.eventually_reviews(lifetime);
    }

    /// Waits (5 s at most) until portcullis's review count is `expected`, and asserts it is.
    fn eventually_reviews(&self, expected: f64) {
        let reviews = try_poll(Duration::from_secs(5), Duration::from_millis(100), || {
            Some(self.portcullis_reviews()).filter(|reviews| *reviews == expected)
        })
        .unwrap_or_else(|| self.portcullis_reviews());
        assert_eq!(reviews, expected, "portcullis_admission_requests_total (summed)");
    }

    // ---------------------------------------------------------------------------------------
    // 6: fail closed.

    fn phase_6_fail_closed(&mut self) {
        let signed = self.images.signed.clone();
        let unsigned = self.images.unsigned.clone();

        // A webhook that answers after its timeout: the apiserver's failurePolicy decides.
        let slow = SlowListener::start();
        let values = self.values(json!({"webhook": {"url": self.url(slow.port), "timeoutSeconds": 1}}));
        let upgraded = self.helm_upgrade(&values);
        assert!(upgraded.ok, "{upgraded:?}");
        let first = self.until(&signed, false, "the apiserver calls the slow webhook");
        let called = format!("Post \"{}?timeout=1s\"", self.url(slow.port));
        let timed_out = |outcome: &Outcome| {
            outcome
                .stderr
                .contains(&format!("failed calling webhook \"{WEBHOOK}\""))
                && outcome.stderr.contains(&called)
                && outcome.stderr.contains("context deadline exceeded")
        };
        assert!(timed_out(&first), "{first:?}");
        let (rejections, accepted) = (self.rejections(), slow.accepted());
        for _ in 0..2 {
            let pod = self.pod("high", &signed);
            let outcome = self.create(&pod, false);
            assert!(
                !outcome.ok && timed_out(&outcome),
                "failurePolicy Fail: denied: {outcome:?}"
            );
            assert!(
                outcome.took >= Duration::from_secs(1),
                "after the 1 s timeout: {outcome:?}"
            );
            assert!(!self.exists(&pod));
        }
        assert_eq!(
            self.rejections() - rejections,
            2.0,
            "apiserver_admission_webhook_rejection_count{{name=\"{WEBHOOK}\",error_type=\"calling_webhook_error\"}}"
        );
        assert!(slow.accepted() > accepted, "the calls reached the slow listener");

        // The same with failurePolicy Ignore: admitted unchecked, and counted as failing open.
        let fail_open = self.apiserver_metric("apiserver_admission_webhook_fail_open_count", &[("name", WEBHOOK)]);
        let values = self
            .values(json!({"webhook": {"url": self.url(slow.port), "timeoutSeconds": 1, "failurePolicy": "Ignore"}}));
        let upgraded = self.helm_upgrade(&values);
        assert!(upgraded.ok, "{upgraded:?}");
        let admitted = self.until(&unsigned, true, "failurePolicy Ignore applies");
        assert!(admitted.took >= Duration::from_secs(1), "{admitted:?}");
        let opened = self.apiserver_metric("apiserver_admission_webhook_fail_open_count", &[("name", WEBHOOK)]);
        assert!(
            opened > fail_open,
            "apiserver_admission_webhook_fail_open_count: {fail_open} -> {opened}"
        );

        // Back to portcullis.
        let values = self.values(json!({}));
        let restored = self.helm_upgrade(&values);
        assert!(restored.ok, "{restored:?}");
        let back = self.until(&unsigned, false, "portcullis answers again");
        assert!(back.stderr.contains("- images.signatures: "), "{back:?}");
        drop(slow);

        // portcullis stopped: enforced namespaces get nothing, exempt ones everything.
        self.stop_portcullis();
        let rejections = self.rejections();
        let pod = self.pod("high", &signed);
        let refused = self.create(&pod, false);
        assert!(
            !refused.ok,
            "no portcullis, no Pod in an enforced namespace: {refused:?}"
        );
        assert!(
            refused
                .stderr
                .contains(&format!("failed calling webhook \"{WEBHOOK}\""))
                && refused.stderr.contains("connection refused"),
            "{refused:?}"
        );
        assert_eq!(
            self.rejections() - rejections,
            1.0,
            "counted as a calling_webhook_error"
        );
        for namespace in ["kube-system", RELEASE] {
            let pod = self.pod(namespace, &signed);
            let created = self.create(&pod, false);
            assert!(created.ok, "{namespace} is exempt: {created:?}");
        }
        self.start_portcullis();
        let pod = self.pod("high", &signed);
        let created = self.create(&pod, false);
        assert!(created.ok, "portcullis is back: {created:?}");
    }

    // ---------------------------------------------------------------------------------------
    // 9: a ConstraintTemplate and Constraint shipped in policies.extra, Ingresses sent by
    // webhook.extraRules, and data.inventory synced with the chart's RBAC (the chart's
    // ci/gatekeeper-values.yaml, unchanged).

    fn phase_9_gatekeeper(&mut self) {
        let variant = std::fs::read_to_string(Path::new(CHART).join("ci/gatekeeper-values.yaml")).unwrap();
        let values = self.values(yaml_serde::from_str(&variant).unwrap());
        let upgraded = self.helm_upgrade(&values);
        assert!(upgraded.ok, "{upgraded:?}");
        // The config is read at startup: a restart on the upgraded ConfigMaps. Ready means the
        // Ingresses were listed with the chart's ServiceAccount.
        self.stop_portcullis();
        self.mount_chart_volumes(
            &values,
            &["config", "tls", "policies-library", "policies-extra", "trust"],
        );
        self.start_portcullis();

        let ingress = |namespace: &str, name: &str, host: &str| {
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                   "metadata": {"name": name, "namespace": namespace},
                   "spec": {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                       "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
        };
        let shop = ingress("low", "shop", "shop.example.com");
        let created = self.create(&shop, false);
        assert!(created.ok, "the first ingress of a host: {created:?}");
        let copy = ingress("high", "copy", "shop.example.com");
        // Dry runs until the inventory has shop (it follows the cluster a moment later), then
        // the real thing.
        self.until_outcome(&copy, false, "the new ingress reaches the inventory");
        let refused = self.create(&copy, false);
        assert!(
            refused.stderr.contains(
                "K8sOneHostPerIngress/one-host-per-ingress: host shop.example.com is already served by ingress low/shop"
            ),
            "{refused:?}"
        );
        assert!(self.create(&ingress("high", "blog", "blog.example.com"), false).ok);
        self.cluster
            .kubectl(&["delete", "ingress", "shop", "--namespace", "low"]);
        self.until_outcome(&copy, true, "the deleted ingress leaves the inventory");
        let admitted = self.create(&copy, false);
        assert!(admitted.ok && self.exists(&copy), "{admitted:?}");
        // blog and copy, once copy is synced.
        let synced = try_poll(Duration::from_secs(10), Duration::from_millis(250), || {
            let metrics = self
                .http
                .get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
                .send()
                .and_then(|r| r.text())
                .unwrap_or_default();
            let count = metric_sum(
                &metrics,
                "portcullis_inventory_objects",
                &[("kind", "networking.k8s.io/v1/Ingress")],
            );
            (count == 2.0).then_some(())
        });
        assert!(
            synced.is_some(),
            "portcullis_inventory_objects counts the synced Ingresses"
        );
    }

    // ---------------------------------------------------------------------------------------
    // 10: the continuous audit as the chart deploys it.

    fn phase_10_continuous_audit(&mut self) {
        // The report CRDs of the chart as published (`make chart-package`), as Helm installs
        // its crds/ on the first install.
        let package = run(
            Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/chart-check.sh"))
                .arg("package")
                .arg(self.work.path().join("dist")),
        );
        let crds = self.helm(&["show", "crds", &package]);
        assert!(crds.ok && crds.stdout.contains("reports.openreports.io"), "{crds:?}");
        let applied = self.kubectl(&["apply", "-f", "-"], Some(crds.stdout.as_bytes()));
        assert!(applied.ok, "the package's CRDs: {applied:?}");
        self.cluster
            .kubectl(&["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
        let variant = std::fs::read_to_string(Path::new(CHART).join("ci/gatekeeper-values.yaml")).unwrap();
        let mut overrides: Value = yaml_serde::from_str(&variant).unwrap();
        merge(
            &mut overrides,
            json!({"audit": {"reports": "openreports", "interval": "1m"}}),
        );
        let values = self.values(overrides);
        let upgraded = self.helm_upgrade(&values);
        assert!(upgraded.ok, "{upgraded:?}");
        self.mount_chart_volumes(
            &values,
            &["config", "tls", "policies-library", "policies-extra", "trust"],
        );

        // What the chart runs in-cluster: the audit's ServiceAccount and RBAC applied as
        // rendered (webhook.url mode renders no in-cluster objects), its Deployment's
        // arguments run as they are.
        let rendered = self.helm_release(
            "template",
            &values,
            &["--set", "webhook.url=", "--set", "webhook.caBundle="],
        );
        assert!(rendered.ok, "helm template: {rendered:?}");
        let objects = documents(&rendered.stdout);
        let audit: Vec<&Value> = objects
            .iter()
            .filter(|o| o["metadata"]["labels"]["app.kubernetes.io/component"] == "audit")
            .collect();
        let access: Vec<&Value> = audit
            .iter()
            .copied()
            .filter(|o| {
                [
                    "ServiceAccount",
                    "ClusterRole",
                    "ClusterRoleBinding",
                    "Role",
                    "RoleBinding",
                ]
                .contains(&o["kind"].as_str().unwrap_or_default())
            })
            .collect();
        assert_eq!(access.len(), 5, "the audit's ServiceAccount and RBAC: {access:?}");
        self.kubectl_ok(
            &["apply", "-f", "-"],
            &json!({"apiVersion": "v1", "kind": "List", "items": access}),
        );
        let deployment = audit
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .expect("the audit Deployment");
        let audit_name = format!("{RELEASE}-audit");
        assert_eq!(deployment["metadata"]["name"], audit_name.as_str());
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], audit_name.as_str());
        let container = &pod["containers"][0];
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let lease = format!("{RELEASE}/{audit_name}");
        for pair in [
            ["--lease", lease.as_str()],
            ["--write-reports", "openreports"],
            ["--interval", "1m"],
        ] {
            assert!(args.windows(2).any(|w| w == pair), "{pair:?} in {args:?}");
        }
        // Its files are the webhook's, at the same paths (laid out above).
        let webhook = objects
            .iter()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == RELEASE)
            .expect("the webhook Deployment");
        let webhook_mounts = webhook["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap();
        for mount in container["volumeMounts"].as_array().unwrap() {
            assert!(
                webhook_mounts.contains(mount),
                "the audit mounts {mount} as the webhook does"
            );
        }

        let kubeconfig = self.token_kubeconfig(&audit_name);
        let mut replicas: Vec<(Option<Service>, u16, PathBuf)> = (0..2)
            .map(|index| {
                let port = pick_port();
                let log = self.work.path().join(format!("audit-{index}.log"));
                let environment = [
                    format!("KUBECONFIG={}", kubeconfig.display()),
                    format!("PORTCULLIS_METRICS_LISTEN=127.0.0.1:{port}"),
                    format!("HOSTNAME=audit-{index}"),
                ];
                let command: Vec<&str> = environment
                    .iter()
                    .map(String::as_str)
                    .chain([env!("CARGO_BIN_EXE_portcullis")])
                    .chain(args.iter().copied())
                    .collect();
                let service = Service::spawn(Path::new("env"), &command, &log, Stdio::null());
                (Some(service), port, log)
            })
            .collect();
        let logs = |replicas: &[(Option<Service>, u16, PathBuf)]| {
            replicas
                .iter()
                .map(|(_, _, log)| {
                    format!(
                        "--- {}:\n{}",
                        log.display(),
                        std::fs::read_to_string(log).unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let scrape = |port: u16| {
            self.http
                .get(format!("http://127.0.0.1:{port}/metrics"))
                .send()
                .and_then(|r| r.text())
                .unwrap_or_default()
        };
        let leader = |text: &str| metric_sum(text, "portcullis_audit_leader", &[]);
        let passes = |text: &str| metric_sum(text, "portcullis_audit_passes_total", &[("result", "success")]);

        // One leads and completes a pass; the other stands by.
        let active = try_poll(Duration::from_secs(90), Duration::from_millis(250), || {
            let texts: Vec<String> = replicas.iter().map(|r| scrape(r.1)).collect();
            let leading: Vec<usize> = (0..2).filter(|&i| leader(&texts[i]) == 1.0).collect();
            match leading[..] {
                [one]
                    if passes(&texts[one]) >= 1.0
                        && leader(&texts[1 - one]) == 0.0
                        && texts[1 - one].contains("portcullis_audit_leader") =>
                {
                    Some(one)
                }
                _ => None,
            }
        })
        .unwrap_or_else(|| panic!("no replica leading with a pass; logs:\n{}", logs(&replicas)));
        let standby = 1 - active;
        let text = scrape(replicas[active].1);
        assert!(
            metric_sum(&text, "portcullis_audit_objects", &[("kind", "Pod")]) >= 1.0,
            "{text}"
        );
        assert!(
            metric_sum(&text, "portcullis_audit_objects", &[("kind", "Ingress")]) == 2.0,
            "the two Ingresses (the kind the Gatekeeper constraint selects) are audited: {text}"
        );
        assert_eq!(passes(&scrape(replicas[standby].1)), 0.0, "the standby audits nothing");
        // Its reports, in the real CRDs, written with the audit's RBAC.
        let reports = self.kubectl(
            &[
                "get",
                "reports.openreports.io",
                "--all-namespaces",
                "-l",
                "app.kubernetes.io/managed-by=portcullis",
                "-o",
                "name",
            ],
            None,
        );
        assert!(
            reports.ok && !reports.stdout.trim().is_empty(),
            "reports written: {reports:?}\n{}",
            logs(&replicas)
        );

        // The active one stops: it releases the Lease and the standby takes over.
        replicas[active].0.take().expect("running").stop();
        let took_over = try_poll(Duration::from_secs(60), Duration::from_millis(250), || {
            let text = scrape(replicas[standby].1);
            (leader(&text) == 1.0 && passes(&text) >= 1.0).then_some(())
        });
        let all_logs = logs(&replicas);
        replicas[standby].0.take().expect("running").stop();
        assert!(took_over.is_some(), "the standby did not take over; logs:\n{all_logs}");
        assert!(all_logs.contains("audit lease released"), "{all_logs}");
    }

    /// Creates `object` with `--dry-run=server` until the outcome is `ok` (bounded: 40 tries,
    /// 250 ms apart): the inventory follows the cluster a moment after each change.
    fn until_outcome(&mut self, object: &Value, ok: bool, what: &str) {
        let mut last = None;
        for _ in 0..40 {
            let outcome = self.create(object, true);
            if outcome.ok == ok {
                return;
            }
            last = Some(outcome);
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "{what}: not reached within 40 tries; the last: {last:?}\n{}",
            self.logs()
        );
    }

    /// Creates pods with `image` in `high` until the outcome is `ok` (bounded: 40 tries); the
    /// apiserver needs a moment to see a changed webhook configuration.
    fn until(&mut self, image: &str, ok: bool, what: &str) -> Outcome {
        for _ in 0..40 {
            let pod = self.pod("high", image);
            let outcome = self.create(&pod, false);
            if outcome.ok == ok {
                return outcome;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("{what}: not reached after 40 pods");
    }

    // ---------------------------------------------------------------------------------------
    // Clients.

    fn kubectl(&self, args: &[&str], stdin: Option<&[u8]>) -> Outcome {
        let started = Instant::now();
        let output = self.cluster.kubectl_output(args, stdin);
        Outcome {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            took: started.elapsed(),
        }
    }

    fn kubectl_ok(&self, args: &[&str], object: &Value) -> String {
        let outcome = self.kubectl(args, Some(object.to_string().as_bytes()));
        assert!(outcome.ok, "kubectl {args:?}: {outcome:?}");
        outcome.stdout
    }

    /// `kubectl create -f -` (with `--dry-run=server`).
    fn create(&self, object: &Value, dry_run: bool) -> Outcome {
        let mut args = vec!["create", "-f", "-"];
        if dry_run {
            args.push("--dry-run=server");
        }
        self.kubectl(&args, Some(object.to_string().as_bytes()))
    }

    fn exists(&self, object: &Value) -> bool {
        let kind = object["kind"].as_str().unwrap();
        let name = object["metadata"]["name"].as_str().unwrap();
        let namespace = object["metadata"]["namespace"].as_str().unwrap();
        self.kubectl(&["get", kind, name, "--namespace", namespace], None).ok
    }

    fn helm(&self, args: &[&str]) -> Outcome {
        let home = self.cluster.home();
        let started = Instant::now();
        let output = Command::new("timeout")
            .arg("180")
            .arg(&self.helm)
            .args(args)
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .env("HOME", &home)
            .env("HELM_CACHE_HOME", home.join("helm/cache"))
            .env("HELM_CONFIG_HOME", home.join("helm/config"))
            .env("HELM_DATA_HOME", home.join("helm/data"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Outcome {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            took: started.elapsed(),
        }
    }

    fn helm_upgrade(&self, values: &Path) -> Outcome {
        self.helm_release("upgrade", values, &[])
    }

    /// `helm COMMAND` of this suite's release and chart with `values`, then `extra` arguments.
    fn helm_release(&self, command: &str, values: &Path, extra: &[&str]) -> Outcome {
        let values = values.to_str().unwrap();
        let args = [command, RELEASE, CHART, "--namespace", RELEASE, "--values", values];
        self.helm(&[&args[..], extra].concat())
    }

    /// A Pod that passes every default policy at every risk level when `image` is the signed
    /// one: the tests' common Pod (labels from app.yaml, restricted, with resources).
    fn pod(&mut self, namespace: &str, image: &str) -> Value {
        self.counter += 1;
        let mut pod = common::pod_request(&[image])["object"].clone();
        pod["metadata"]["name"] = json!(format!("app-{}", self.counter));
        pod["metadata"]["namespace"] = json!(namespace);
        pod
    }

    /// Document `index` of a manifest fixture, renamed, in `namespace`, every container
    /// running `image`.
    fn fixture_object(&mut self, fixture: &str, index: usize, namespace: &str, image: &str) -> Value {
        let text = String::from_utf8(common::fixture(fixture)).unwrap();
        let mut object = documents(&text).swap_remove(index);
        self.counter += 1;
        let name = format!("{}-{}", object["metadata"]["name"].as_str().unwrap(), self.counter);
        object["metadata"]["name"] = json!(name);
        object["metadata"]["namespace"] = json!(namespace);
        let spec = if object["kind"] == "Pod" {
            &mut object["spec"]
        } else {
            &mut object["spec"]["template"]["spec"]
        };
        for container in spec["containers"].as_array_mut().unwrap() {
            container["image"] = json!(image);
        }
        object
    }

    // ---------------------------------------------------------------------------------------
    // Metrics and certificates.

    /// `portcullis_admission_requests_total`, all series summed, from portcullis's /metrics.
    fn portcullis_reviews(&self) -> f64 {
        let text = self
            .http
            .get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .send()
            .and_then(|r| r.text())
            .expect("portcullis /metrics");
        metric_sum(&text, "portcullis_admission_requests_total", &[])
    }

    fn apiserver_metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_sum(&self.cluster.kubectl(&["get", "--raw", "/metrics"]), name, labels)
    }

    /// The apiserver's calls to the chart's webhook: its admission latency histogram's count.
    fn webhook_calls(&self) -> f64 {
        self.apiserver_metric(
            "apiserver_admission_webhook_admission_duration_seconds_count",
            &[("name", WEBHOOK), ("type", "validating")],
        )
    }

    /// The apiserver's rejections because calling the webhook failed.
    fn rejections(&self) -> f64 {
        self.apiserver_metric(
            "apiserver_admission_webhook_rejection_count",
            &[
                ("name", WEBHOOK),
                ("error_type", "calling_webhook_error"),
                ("type", "validating"),
            ],
        )
    }

    /// The certificate portcullis serves to a new TLS connection (PEM body, no whitespace).
    fn served_certificate(&self) -> String {
        let output = Command::new("timeout")
            .args(["10", "openssl", "s_client", "-connect"])
            .arg(format!("127.0.0.1:{}", self.port))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        pem_body(&String::from_utf8_lossy(&output.stdout))
    }

    fn logs(&self) -> String {
        let tail = |path: PathBuf| {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            format!(
                "--- last lines of {}:\n{}",
                path.display(),
                lines[lines.len().saturating_sub(30)..].join("\n")
            )
        };
        [
            tail(self.work.path().join("portcullis.log")),
            tail(self.cluster.dir().join("apiserver.log")),
        ]
        .join("\n")
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        if let Some(service) = self.portcullis.take() {
            service.stop();
        }
    }
}

/// The registry with the suite's images, signed and attested by real cosign.
fn fill_registry() -> (lab::Lab, Images) {
    let lab = lab::Lab::start();
    lab.generate_key("trusted");
    let signed = lab.push("signed", "micro/app", "1.0", "signed");
    let unsigned = lab.push("unsigned", "micro/unsigned", "1.0", "unsigned");
    lab.sign("trusted.key", &signed);
    let dir = lab.dir.path();
    let sbom = dir.join("sbom.json");
    std::fs::write(
        &sbom,
        r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[]}"#,
    )
    .unwrap();
    let provenance = dir.join("provenance.json");
    let predicate = json!({"builder": {"id": TRUSTED_BUILDER}, "buildType": "https://ci.example.com/build", "invocation": {}, "materials": []});
    std::fs::write(&provenance, predicate.to_string()).unwrap();
    lab.attest("cyclonedx", &sbom, &signed);
    lab.attest("slsaprovenance", &provenance, &signed);
    let tagged = format!("{}/micro/app:1.0", lab.registry);
    // The tag still names the signed digest (signing and attesting add tags, never move it).
    let digest = run(&mut lab.crane_cmd(&["digest", &tagged]));
    assert!(signed.ends_with(&digest), "{tagged} -> {digest}, {signed}");
    let images = Images {
        signed,
        unsigned,
        tagged,
    };
    (lab, images)
}

/// A listener that accepts TCP connections and never answers (no TLS handshake either): a
/// webhook that answers after the apiserver's timeout. Stops (closing them) when dropped.
struct SlowListener {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlowListener {
    fn start() -> SlowListener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut held = Vec::new();
                let started = Instant::now();
                // Bounded: until dropped, 10 minutes at most.
                while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(600) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            held.push(stream);
                            accepted.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        SlowListener {
            port,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for SlowListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The documents of a multi-document YAML text (empty ones dropped), as JSON values.
fn documents(text: &str) -> Vec<Value> {
    yaml_serde::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).unwrap())
        .filter(|value| !value.is_null())
        .collect()
}

/// The files of a ConfigMap or Secret volume: every key, or only `items` (key -> path).
fn select(data: &BTreeMap<String, String>, items: &Value) -> Vec<(String, String)> {
    match items.as_array() {
        None => data.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(items) => items
            .iter()
            .map(|item| {
                let key = item["key"].as_str().unwrap();
                let text = data
                    .get(key)
                    .unwrap_or_else(|| panic!("no key {key} in the volume's source"));
                (item["path"].as_str().unwrap().to_string(), text.clone())
            })
            .collect(),
    }
}

/// Writes a volume as kubelet's atomic writer does: the files in a new `..<version>`
/// directory, `..data` renamed to point at it, the visible names symlinks through `..data`,
/// then the previous version removed.
fn project(dir: &Path, files: &[(String, String)]) {
    static VERSION: AtomicUsize = AtomicUsize::new(0);
    std::fs::create_dir_all(dir).unwrap();
    let version = format!("..version_{}", VERSION.fetch_add(1, Ordering::SeqCst));
    for (path, text) in files {
        let file = dir.join(&version).join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let data = dir.join("..data");
    let previous = std::fs::read_link(&data).ok();
    let staged = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(&version, &staged).unwrap();
    std::fs::rename(&staged, &data).unwrap();
    for (path, _) in files {
        let top = Path::new(path).components().next().unwrap().as_os_str();
        let visible = dir.join(top);
        if std::fs::symlink_metadata(&visible).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(top), visible).unwrap();
        }
    }
    if let Some(previous) = previous {
        std::fs::remove_dir_all(dir.join(previous)).unwrap();
    }
}

/// The body of the first PEM certificate in `text`, without whitespace ("" if none).
fn pem_body(text: &str) -> String {
    let begin = "-----BEGIN CERTIFICATE-----";
    let Some(start) = text.find(begin) else {
        return String::new();
    };
    let rest = &text[start + begin.len()..];
    let end = rest.find("-----END CERTIFICATE-----").unwrap_or(rest.len());
    rest[..end].split_whitespace().collect()
}

/// Remote ports of the established TCP connections to 127.0.0.1:`port` (`/proc/net/tcp`).
fn connections_to(port: u16) -> BTreeSet<u16> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port_of = |address: &str| u16::from_str_radix(address.rsplit(':').next().unwrap(), 16).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // fields[3] is the state; 01 is ESTABLISHED.
            (fields.len() > 3 && fields[1] == format!("0100007F:{port:04X}") && fields[3] == "01")
                .then(|| port_of(fields[2]))
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include all of `labels`, from a Prometheus
/// text exposition.
fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let found = parse_labels(label_text);
            labels
                .iter()
                .all(|(k, v)| found.get(*k).map(String::as_str) == Some(*v))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// `a="x",b="y"` (with `\"` and `\\` escapes) as a map.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    labels
}
