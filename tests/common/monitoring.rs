//! What the monitoring tests share: the chart's dashboard queries, portcullis serving with
//! `--dev` and producing every family of its metrics, a continuous audit serving its own.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cluster::ControlPlane;
use super::{fixture, pod_request, review, try_poll, Service};

pub fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/portcullis")
}

/// Every `expr` (panel targets) and variable query of the dashboard.
pub fn dashboard_queries() -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                        ("query", Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(chart().join("dashboards/portcullis.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    walk(&dashboard, &mut queries);
    queries
}

/// portcullis (the built binary) serving with `--dev` certificates on free loopback ports.
pub struct Portcullis {
    _service: Service,
    pub webhook: String,
    pub metrics: String,
    client: reqwest::blocking::Client,
}

impl Portcullis {
    pub fn start(dir: &Path, config: &str) -> Portcullis {
        Portcullis::start_with(dir, config, None)
    }

    /// [`Portcullis::start`], reading the cluster of `kubeconfig` when given.
    pub fn start_with(dir: &Path, config: &str, kubeconfig: Option<&Path>) -> Portcullis {
        let config_path = dir.join("config.yaml");
        std::fs::write(&config_path, config).unwrap();
        let state = dir.join("state");
        let args = [
            "serve",
            "--dev",
            "--config",
            config_path.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ];
        let log = dir.join("portcullis.log");
        let kubeconfig = kubeconfig.map(|path| format!("KUBECONFIG={}", path.display()));
        let command: Vec<&str> = kubeconfig
            .iter()
            .map(String::as_str)
            .chain([env!("CARGO_BIN_EXE_portcullis")])
            .chain(args)
            .collect();
        let mut service = Service::spawn(Path::new("env"), &command, &log, Stdio::piped());
        // `--dev` prints the URLs once both listeners are bound (the readiness signal).
        let stdout = service.child.stdout.take().unwrap();
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut webhook, mut metrics) = (None, None);
        let started = Instant::now();
        while webhook.is_none() || metrics.is_none() {
            let left = Duration::from_secs(60).saturating_sub(started.elapsed());
            let line = received.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "portcullis did not start; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
            if let Some(url) = line.strip_prefix("portcullis (dev) is serving ") {
                webhook = Some(url.to_string());
            } else if let Some(url) = line.strip_prefix("metrics and probes: ") {
                metrics = Some(url.to_string());
            }
        }
        let ca = std::fs::read(state.join("ca.crt")).unwrap();
        let client = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Portcullis {
            _service: service,
            webhook: webhook.unwrap(),
            metrics: metrics.unwrap(),
            client,
        }
    }

    /// POSTs a body to the webhook; the HTTP status and the JSON answer (Null if none).
    pub fn post(&self, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}?timeout=10s", self.webhook))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    pub fn scrape(&self) -> String {
        self.client.get(&self.metrics).send().unwrap().text().unwrap()
    }

    /// Scrapes until the text contains `line`, bounded to 15 s.
    pub fn wait_for_metric(&self, line: &str) -> String {
        let mut text = String::new();
        let found = try_poll(Duration::from_secs(15), Duration::from_millis(100), || {
            text = self.scrape();
            text.contains(line).then(|| text.clone())
        });
        found.unwrap_or_else(|| panic!("no {line} in /metrics after 15 s:\n{text}"))
    }
}

/// The PolicyException `live_portcullis` reads from its cluster: it excuses the host-path Pod
/// `excused-dind` of team-a and expires in three days (so the expiry alert fires).
fn exception() -> Value {
    let expires = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 3 * 86400).unwrap();
    serde_json::json!({"apiVersion": "portcullis.io/v1alpha1", "kind": "PolicyException",
        "metadata": {"name": "dind-until-migration", "namespace": "team-a"},
        "spec": {"policies": ["pods.host_path"], "match": {"kinds": ["Pod"], "names": ["excused-dind"]},
            "expiresAt": expires.to_string(), "ticket": "OPS-4711"}})
}

/// Starts portcullis and produces every family: returns it running, and its last scrape.
/// Its PolicyExceptions come from `cluster` (the CRD installed, one exception created).
/// A Sigstore trusted root of a fresh CA and Rekor key, each with a `validFor` window.
fn trusted_root() -> Value {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let rekor = rcgen::PublicKeyData::subject_public_key_info(&rcgen::KeyPair::generate().unwrap());
    let log_id = b64(&<sha2::Sha256 as sha2::Digest>::digest(&rekor));
    serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [{"logId": {"keyId": log_id}, "publicKey": {"rawBytes": b64(&rekor),
            "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": {"start": "2024-01-01T00:00:00Z"}}}],
        "certificateAuthorities": [{"certChain": {"certificates": [{"rawBytes": b64(ca.der())}]},
            "validFor": {"start": "2024-01-01T00:00:00Z", "end": "2031-01-01T00:00:00Z"}}],
    })
}

pub fn live_portcullis(dir: &Path, cluster: &ControlPlane) -> (Portcullis, String) {
    cluster.install_exception_crd();
    let _ = cluster.kubectl_output(&["create", "namespace", "team-a"], None);
    let created = cluster.kubectl_output(&["apply", "-f", "-"], Some(exception().to_string().as_bytes()));
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let library = dir.join("policies");
    super::copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"), &library);
    let key = rcgen::KeyPair::generate().unwrap();
    let key_path = dir.join("cosign.pub");
    std::fs::write(&key_path, key.public_key_pem()).unwrap();
    // A registry address nobody listens on: verification is attempted and fails for real
    // (connection refused), which records registry, verification and cache series.
    let closed = super::lab::ClosedPort::new();
    let registry = closed.addr.clone();
    // A trusted root, so its material and expiry are exported too.
    let root_path = dir.join("trusted_root.json");
    std::fs::write(&root_path, trusted_root().to_string()).unwrap();
    let config = format!(
        "images:
  registries: {{ allow: [{registry}], insecure: [{registry}] }}
  trustedRoot: {root}
  trust:
    - name: closed-port
      images: ['{registry}/**']
      authorities: [{{ name: test-key, key: {{ path: {key} }} }}]
  verification: {{ registryTimeout: 2s }}
# The verification error becomes a warning, so the review is admitted (images_admitted).
enforcement: {{ images.signatures: warn }}
risk: {{ default: low }}
policies: {{ dirs: [{library}], reloadInterval: 100ms }}
exceptions: {{ source: kubernetes }}
logging: {{ format: json }}
",
        key = key_path.display(),
        library = library.display(),
        root = root_path.display(),
    );
    let portcullis = Portcullis::start_with(dir, &config, Some(&cluster.kubeconfig));
    portcullis.wait_for_metric("portcullis_exceptions{policy=\"pods.host_path\",state=\"active\"} 1");

    let image = format!("{registry}/micro-apps/app@sha256:{}", "a".repeat(64));
    let (status, answer) = portcullis.post(review(pod_request(&[&image])));
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let (status, answer) = portcullis.post(fixture("reviews/policy/pod-hostpath.json"));
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let mut excused: Value = serde_json::from_slice(&fixture("reviews/policy/pod-hostpath.json")).unwrap();
    excused["request"]["name"] = serde_json::json!("excused-dind");
    excused["request"]["object"]["metadata"]["name"] = serde_json::json!("excused-dind");
    let (status, answer) = portcullis.post(serde_json::to_vec(&excused).unwrap());
    assert_eq!(status, 200);
    // Its host path excused (its registry is still not allowed here).
    let annotations = &answer["response"]["auditAnnotations"];
    assert_eq!(
        annotations["excused-by"], "pods.host_path=team-a/dind-until-migration",
        "{answer}"
    );
    assert_eq!(annotations["denied-by"], "images.allowed_registries", "{answer}");
    let (status, _) = portcullis.post(b"{not an admission review".to_vec());
    assert_eq!(status, 400);

    // A changed parameter reloads the library; a syntax error is rejected.
    let data = library.join("cost/resources/data.yaml");
    let text = std::fs::read_to_string(&data).unwrap();
    std::fs::write(&data, text.replace("max_cpu: \"1\"", "max_cpu: \"2\"")).unwrap();
    portcullis.wait_for_metric("portcullis_policy_reloads_total{result=\"success\"} 1");
    std::fs::write(library.join("broken.rego"), "package broken\ndeny contains msg if {\n").unwrap();
    let scrape = portcullis.wait_for_metric("portcullis_policy_reloads_total{result=\"failure\"} 1");
    (portcullis, scrape)
}

/// A continuous audit of the cluster of `kubeconfig` every `interval` with the default
/// library, serving its metrics on the returned port (waited for).
pub fn start_audit(dir: &Path, kubeconfig: &Path, interval: &str) -> (Service, u16) {
    let library = dir.join("audit-policies");
    super::copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"), &library);
    let port = super::lab::pick_port();
    let config = dir.join("audit.yaml");
    std::fs::write(
        &config,
        format!(
            "images: {{ registries: {{ allow: [registry.example.com] }} }}\npolicies: {{ dirs: [{}] }}\nserver: {{ metricsListen: \"127.0.0.1:{port}\" }}\n",
            library.display()
        ),
    )
    .unwrap();
    let log = dir.join("audit.log");
    let service = Service::spawn(
        Path::new(env!("CARGO_BIN_EXE_portcullis")),
        &[
            "audit",
            "--interval",
            interval,
            "--config",
            config.to_str().unwrap(),
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
        &log,
        Stdio::null(),
    );
    scrape_until(port, "portcullis_audit_interval_seconds ").unwrap_or_else(|| {
        panic!(
            "the audit served no metrics; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    (service, port)
}

/// The `/metrics` of 127.0.0.1:`port` once it contains `needle` (30 s at most).
pub fn scrape_until(port: u16, needle: &str) -> Option<String> {
    let client = reqwest::blocking::Client::new();
    try_poll(Duration::from_secs(30), Duration::from_millis(100), || {
        let text = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .ok()?
            .text()
            .ok()?;
        text.contains(needle).then_some(text)
    })
}
