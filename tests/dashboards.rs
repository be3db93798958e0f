//! The Grafana dashboard and the PrometheusRule of the Helm chart use only metrics that
//! portcullis exports: the built binary serves, answers reviews that produce every family
//! (an allowed review whose image verification meets a closed registry port, a denied one, an
//! unreadable one, a policy reload that succeeds and one that fails), and every `portcullis_*`
//! name in the dashboard's queries and the rules' expressions must be a series of the live
//! `/metrics`, with every label the query selects or groups by.
//!
//! The fleet panels and the audit alert read the continuous audit's series: a second process,
//! `portcullis audit --interval`, is scraped too. Its cluster is a closed port, so it never
//! completes a pass: what it exports is what it exports from startup, every series at zero.
//!
//! prometheus-client writes no `# HELP`/`# TYPE` lines for a labelled family that has no
//! series yet, so a name is only "exported" here once a real event has produced it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;

use common::{fixture, pod_request, review, try_poll, Service};

/// Labels Prometheus adds to every scraped series (the scrape target's), not portcullis.
const TARGET_LABELS: [&str; 7] = [
    "namespace",
    "job",
    "instance",
    "pod",
    "service",
    "container",
    "endpoint",
];

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/portcullis")
}

/// A metric reference in a query: the series name and the labels the query needs on it.
#[derive(Debug, Default)]
struct Uses {
    /// Series name -> labels named in its selectors (`{decision="deny"}`).
    selected: BTreeMap<String, BTreeSet<String>>,
    /// (labels of a `by (...)` clause, series names inside the aggregated expression).
    grouped: Vec<(BTreeSet<String>, BTreeSet<String>)>,
}

/// Finds every `portcullis_*` series in `expr`, its selector labels, and the `by (...)` clauses.
fn scan(expr: &str, uses: &mut Uses) {
    let series = Regex::new(r"\b(portcullis_[a-z0-9_]+)\b(\s*\{([^}]*)\})?").unwrap();
    let matcher = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*""#).unwrap();
    for capture in series.captures_iter(expr) {
        let labels = uses.selected.entry(capture[1].to_string()).or_default();
        if let Some(selector) = capture.get(3) {
            for m in matcher.captures_iter(selector.as_str()) {
                labels.insert(m[1].to_string());
            }
        }
    }
    let by = Regex::new(r"\bby\s*\(([^)]*)\)\s*\(").unwrap();
    for capture in by.captures_iter(expr) {
        let labels: BTreeSet<String> = capture[1]
            .split(',')
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        // The aggregated expression: from the opening parenthesis to its match.
        let start = capture.get(0).unwrap().end();
        let mut depth = 1;
        let mut end = expr.len();
        for (offset, c) in expr[start..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = start + offset;
                break;
            }
        }
        let inner: BTreeSet<String> = series
            .captures_iter(&expr[start..end])
            .map(|c| c[1].to_string())
            .collect();
        assert!(
            !inner.is_empty(),
            "`by ({})` over no portcullis series in {expr}",
            &capture[1]
        );
        uses.grouped.push((labels, inner));
    }
}

/// Every `expr` (panel targets) and variable query of the dashboard.
fn dashboard_queries() -> Vec<String> {
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

/// The rules template without its Helm actions (`{{ ... }}`), which hold no metric names.
fn rules_text() -> String {
    let text = std::fs::read_to_string(chart().join("templates/prometheusrule.yaml")).unwrap();
    let escaped = Regex::new(r#"\{\{\s*"(\{\{|\}\})"\s*\}\}"#).unwrap();
    let action = Regex::new(r"(?s)\{\{.*?\}\}").unwrap();
    action.replace_all(&escaped.replace_all(&text, ""), "").into_owned()
}

/// Series name -> label names, from a Prometheus/OpenMetrics text exposition.
fn parse_scrape(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let sample = Regex::new(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s").unwrap();
    let label = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)=""#).unwrap();
    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(capture) = sample.captures(line) {
            let labels = series.entry(capture[1].to_string()).or_default();
            if let Some(set) = capture.get(3) {
                labels.extend(label.captures_iter(set.as_str()).map(|c| c[1].to_string()));
            }
        }
    }
    series
}

/// portcullis (the built binary) serving with `--dev` certificates on free loopback ports.
struct Portcullis {
    _service: Service,
    webhook: String,
    metrics: String,
    client: reqwest::blocking::Client,
}

impl Portcullis {
    fn start(dir: &Path, config: &str) -> Portcullis {
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
        let mut service = Service::spawn(Path::new(env!("CARGO_BIN_EXE_portcullis")), &args, &log, Stdio::piped());
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
    fn post(&self, body: Vec<u8>) -> (u16, Value) {
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

    fn scrape(&self) -> String {
        self.client.get(&self.metrics).send().unwrap().text().unwrap()
    }

    /// Scrapes until the text contains `line`, bounded to 15 s.
    fn wait_for_metric(&self, line: &str) -> String {
        let mut text = String::new();
        let found = try_poll(Duration::from_secs(15), Duration::from_millis(100), || {
            text = self.scrape();
            text.contains(line).then(|| text.clone())
        });
        found.unwrap_or_else(|| panic!("no {line} in /metrics after 15 s:\n{text}"))
    }
}

/// Copies the repository's policy library into `dest` (a library portcullis polls).
fn copy_library(source: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        let target = dest.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_library(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Starts portcullis and produces every family: returns the final scrape.
fn live_scrape(dir: &Path) -> String {
    let library = dir.join("policies");
    copy_library(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"), &library);
    let key = rcgen::KeyPair::generate().unwrap();
    let key_path = dir.join("cosign.pub");
    std::fs::write(&key_path, key.public_key_pem()).unwrap();
    // A registry address nobody listens on: verification is attempted and fails for real
    // (connection refused), which records registry, verification and cache series.
    let closed = common::lab::ClosedPort::new();
    let registry = closed.addr.clone();
    let config = format!(
        "images:
  registries: {{ allow: [{registry}], insecure: [{registry}] }}
  trust:
    - name: closed-port
      images: ['{registry}/**']
      authorities: [{{ name: test-key, key: {{ path: {key} }} }}]
  verification: {{ registryTimeout: 2s }}
# The verification error becomes a warning, so the review is admitted (images_admitted).
enforcement: {{ images.signatures: warn }}
risk: {{ default: low }}
policies: {{ dirs: [{library}], reloadInterval: 100ms }}
logging: {{ format: json }}
",
        key = key_path.display(),
        library = library.display(),
    );
    let portcullis = Portcullis::start(dir, &config);

    let image = format!("{registry}/micro-apps/app@sha256:{}", "a".repeat(64));
    let (status, answer) = portcullis.post(review(pod_request(&[&image])));
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let (status, answer) = portcullis.post(fixture("reviews/policy/pod-hostpath.json"));
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let (status, _) = portcullis.post(b"{not an admission review".to_vec());
    assert_eq!(status, 400);

    // A changed parameter reloads the library; a syntax error is rejected.
    let data = library.join("cost/resources/data.yaml");
    let text = std::fs::read_to_string(&data).unwrap();
    std::fs::write(&data, text.replace("max_cpu: \"1\"", "max_cpu: \"2\"")).unwrap();
    portcullis.wait_for_metric("portcullis_policy_reloads_total{result=\"success\"}");
    std::fs::write(library.join("broken.rego"), "package broken\ndeny contains msg if {\n").unwrap();
    portcullis.wait_for_metric("portcullis_policy_reloads_total{result=\"failure\"}")
}

/// The continuous audit's `/metrics` before its first pass (its cluster unreachable).
fn audit_scrape(dir: &Path) -> String {
    let library = dir.join("audit-policies");
    copy_library(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"), &library);
    let closed = common::lab::ClosedPort::new();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'https://{}', insecure-skip-tls-verify: true}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n",
            closed.addr
        ),
    )
    .unwrap();
    let port = common::lab::pick_port();
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
    let _service = Service::spawn(
        Path::new(env!("CARGO_BIN_EXE_portcullis")),
        &[
            "audit",
            "--interval",
            "10m",
            "--config",
            config.to_str().unwrap(),
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
        &log,
        Stdio::null(),
    );
    let client = reqwest::blocking::Client::new();
    try_poll(Duration::from_secs(30), Duration::from_millis(100), || {
        let text = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .ok()?
            .text()
            .ok()?;
        text.contains("portcullis_audit_interval_seconds 600").then_some(text)
    })
    .unwrap_or_else(|| {
        panic!(
            "the audit served no metrics; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    })
}

#[test]
fn dashboard_and_alerts_use_only_exported_metrics() {
    let mut dashboard = Uses::default();
    for query in dashboard_queries() {
        scan(&query, &mut dashboard);
    }
    let mut rules = Uses::default();
    scan(&rules_text(), &mut rules);
    // Not vacuous: both files really were read and scanned.
    assert!(
        dashboard.selected.len() >= 10,
        "dashboard names: {:?}",
        dashboard.selected.keys()
    );
    assert!(rules.selected.len() >= 5, "rule names: {:?}", rules.selected.keys());
    assert!(rules
        .selected
        .contains_key("portcullis_admission_duration_seconds_bucket"));

    let dir = tempfile::tempdir().unwrap();
    let scrape = format!("{}{}", live_scrape(dir.path()), audit_scrape(dir.path()));
    let exported = parse_scrape(&scrape);
    assert!(exported.contains_key("portcullis_fleet_images"), "{scrape}");

    let mut problems = Vec::new();
    for (source, uses) in [("dashboard", &dashboard), ("PrometheusRule", &rules)] {
        for (name, labels) in &uses.selected {
            let Some(present) = exported.get(name) else {
                problems.push(format!("{source}: {name} is not exported"));
                continue;
            };
            for label in labels {
                if !present.contains(label) && !TARGET_LABELS.contains(&label.as_str()) {
                    problems.push(format!("{source}: {name} has no label {label} (it has {present:?})"));
                }
            }
        }
        for (labels, names) in &uses.grouped {
            for label in labels {
                let somewhere = names
                    .iter()
                    .any(|n| exported.get(n).is_some_and(|present| present.contains(label)));
                if !somewhere && !TARGET_LABELS.contains(&label.as_str()) {
                    problems.push(format!("{source}: by ({label}) over {names:?}, none of which has it"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}\n\nthe scrape:\n{scrape}", problems.join("\n"));
}

#[test]
fn scanning_finds_names_selectors_and_groupings() {
    let mut uses = Uses::default();
    scan(
        r#"histogram_quantile(0.99, sum by (policy, le) (rate(portcullis_x_bucket{namespace=~"$ns", result!="ok"}[5m]))) / sum(portcullis_y_total)"#,
        &mut uses,
    );
    assert_eq!(
        uses.selected.keys().cloned().collect::<Vec<_>>(),
        ["portcullis_x_bucket", "portcullis_y_total"]
    );
    assert_eq!(
        uses.selected["portcullis_x_bucket"],
        BTreeSet::from(["namespace".to_string(), "result".to_string()])
    );
    assert_eq!(uses.grouped.len(), 1);
    assert_eq!(uses.grouped[0].1, BTreeSet::from(["portcullis_x_bucket".to_string()]));

    let parsed = parse_scrape(
        "# TYPE portcullis_a counter\nportcullis_a_total{kind=\"Pod\",decision=\"allow\"} 1\nportcullis_b 3\n# EOF\n",
    );
    assert_eq!(
        parsed["portcullis_a_total"],
        BTreeSet::from(["kind".to_string(), "decision".to_string()])
    );
    assert!(parsed["portcullis_b"].is_empty());
}
