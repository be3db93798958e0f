//! The dashboard and the alerts against a real Prometheus (built from the Go module proxy by
//! `scripts/tools.sh`) scraping a live webhook that has answered real reviews and reads a
//! PolicyException from a real kube-apiserver, and a live continuous audit of that cluster: every panel query of the dashboard returns series,
//! its variable finds the namespace, every rule of the chart's PrometheusRule evaluates without
//! error in Prometheus's own rule manager, and every `portcullis_*` selector a rule reads has
//! series. `tests/dashboards.rs` checks the names and labels; this checks the PromQL.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use regex::Regex;
use serde_json::{json, Value};

use common::cluster::ControlPlane;
use common::lab::{pick_port, tool};
use common::monitoring::{chart, live_portcullis, scrape_until, start_audit};
use common::{poll, Service};

/// Every panel query of the dashboard (variables are checked apart).
fn panel_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(chart().join("dashboards/portcullis.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or_default().to_string();
            queries.push((title, target["expr"].as_str().unwrap().to_string()));
        }
    }
    queries
}

/// The chart's PrometheusRule (release `portcullis` in namespace `portcullis`, every alert on)
/// as a Prometheus rule file.
fn rule_file(dir: &Path) -> std::path::PathBuf {
    let output = Command::new(tool("helm"))
        .args(["template", "portcullis"])
        .arg(chart())
        .args(["--namespace", "portcullis", "-f"])
        .arg(chart().join("ci/cert-manager-values.yaml"))
        .args(["--show-only", "templates/prometheusrule.yaml"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rule: Value = yaml_serde::from_slice(&output.stdout).unwrap();
    let path = dir.join("rules.yaml");
    std::fs::write(&path, yaml_serde::to_string(&rule["spec"]).unwrap()).unwrap();
    path
}

/// Prometheus's HTTP API answer to `path` with `query` parameters.
fn api(port: u16, path: &str, query: &[(&str, &str)]) -> Option<Value> {
    let response = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .query(query)
        .send()
        .ok()?;
    response.json().ok()
}

#[test]
fn prometheus_evaluates_every_dashboard_query_and_rule_on_live_portcullis_series() {
    let dir = tempfile::tempdir().unwrap();
    // The webhook, after reviews allowed, denied and unreadable, verification against a closed
    // registry port, and policy reloads that succeed and fail.
    let cluster = ControlPlane::start();
    let (portcullis, _) = live_portcullis(dir.path(), &cluster);
    let webhook = portcullis
        .metrics
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string();

    // The continuous audit of the same cluster, with a Pod the default library denies.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team-a"},
                     "spec": {"containers": [{"name": "app", "image": "registry.example.com/team/web:1.0"}]}});
    let created = cluster.kubectl_output(&["create", "-f", "-"], Some(pod.to_string().as_bytes()));
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let (_audit, audit_port) = start_audit(dir.path(), &cluster.kubeconfig, "1s");
    scrape_until(audit_port, r#"portcullis_audit_objects{kind="Pod"} 1"#).expect("an audit pass");

    let port = pick_port();
    let rules = rule_file(dir.path());
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nrule_files: [{rules:?}]\nscrape_configs:\n  - job_name: portcullis\n    static_configs: [{{ targets: [\"{webhook}\"], labels: {{ namespace: portcullis, pod: portcullis-0 }} }}]\n  - job_name: portcullis-audit\n    static_configs: [{{ targets: [\"127.0.0.1:{audit_port}\"], labels: {{ namespace: portcullis, pod: audit-0 }} }}]\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("prometheus.log");
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let storage = format!("--storage.tsdb.path={}", dir.path().join("tsdb").display());
    let config_flag = format!("--config.file={}", config.display());
    let _prometheus = Service::spawn(
        &tool("prometheus"),
        &[&config_flag, &storage, &listen],
        &log,
        Stdio::null(),
    );
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // Both targets up, and scraped long enough for a 30 s rate.
    poll(
        "both targets up",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let up = api(port, "/api/v1/query", &[("query", "sum(up)")])?;
            (up["data"]["result"][0]["value"][1] == "2").then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(5));

    let mut empty = Vec::new();
    for (title, expr) in panel_queries() {
        let query = expr
            .replace("$namespace", ".*")
            .replace("$__rate_interval", "30s")
            .replace("$__range", "1m");
        let answer = api(port, "/api/v1/query", &[("query", &query)]).expect("an answer");
        assert_eq!(answer["status"], "success", "{title}: {query}: {answer}");
        if answer["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
            empty.push(format!("{title}: {query}"));
        }
    }
    assert!(empty.is_empty(), "panel queries with no series:\n{}", empty.join("\n"));
    let namespaces = api(
        port,
        "/api/v1/label/namespace/values",
        &[("match[]", "portcullis_build_info")],
    )
    .unwrap();
    assert_eq!(namespaces["data"], json!(["portcullis"]), "the namespace variable");

    // Prometheus's rule manager loaded every rule and evaluated each without error.
    let groups = poll(
        "every rule evaluated",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            let answer = api(port, "/api/v1/rules", &[])?;
            let groups = answer["data"]["groups"].as_array()?.clone();
            let evaluated = groups
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .all(|r| r["health"] == "ok");
            evaluated.then_some(groups)
        },
    );
    let alerts: Vec<&str> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(alerts.len(), 16, "{alerts:?}\n{}", log_text());

    // Every portcullis selector the rules read has series.
    let text = std::fs::read_to_string(&rules).unwrap();
    let selector = Regex::new(r"portcullis_[a-z_]+\{[^}]*\}").unwrap();
    for found in selector.find_iter(&text) {
        let answer = api(port, "/api/v1/query", &[("query", found.as_str())]).unwrap();
        assert!(
            answer["data"]["result"].as_array().is_some_and(|r| !r.is_empty()),
            "{} has no series: {answer}",
            found.as_str()
        );
    }
}
