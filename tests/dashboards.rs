//! The Grafana dashboard and the PrometheusRule of the Helm chart use only metrics that
//! portcullis exports: the built binary serves, answers reviews that produce every family
//! (an allowed review whose image verification meets a closed registry port, a denied one, an
//! unreadable one, one a PolicyException excuses, read from a real kube-apiserver, a policy
//! reload that succeeds and one that fails), and every `portcullis_*`
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
use std::path::Path;

use regex::Regex;

use common::cluster::ControlPlane;
use common::monitoring::{chart, dashboard_queries, live_portcullis, scrape_until, start_audit};

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

/// The continuous audit's `/metrics` before its first pass (its cluster unreachable).
fn audit_scrape(dir: &Path) -> String {
    let (kubeconfig, _closed) = common::lab::unreachable_kubeconfig(dir);
    let (_audit, port) = start_audit(dir, &kubeconfig, "10m");
    scrape_until(port, "portcullis_audit_interval_seconds 600").unwrap()
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
    let cluster = ControlPlane::start();
    let (_portcullis, webhook) = live_portcullis(dir.path(), &cluster);
    let scrape = format!("{webhook}{}", audit_scrape(dir.path()));
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
