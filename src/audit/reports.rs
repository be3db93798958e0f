//! Policy reports of an audit pass: one namespaced report per namespace and one cluster-wide
//! report for cluster-scoped objects, each with a result per object and policy (`pass`,
//! `fail`, `warn`, `error`), in OpenReports' format (`openreports.io/v1alpha1` Report and
//! ClusterReport) or the older wg-policy one (`wgpolicyk8s.io/v1alpha2` PolicyReport and
//! ClusterPolicyReport), whose fields are the same. Policy Reporter reads both.

use std::collections::BTreeMap;
use std::time::SystemTime;

use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

use super::audited::Audited;
use crate::batch::{FindingResult, ObjectResult};

/// The reports' name (one per namespace, and the cluster's) and the label that marks them ours.
pub const NAME: &str = "portcullis-audit";
const SOURCE: &str = "portcullis";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenReports,
    PolicyReport,
}

impl Format {
    fn api_version(self) -> &'static str {
        match self {
            Format::OpenReports => "openreports.io/v1alpha1",
            Format::PolicyReport => "wgpolicyk8s.io/v1alpha2",
        }
    }

    /// The kinds of the namespaced and of the cluster-wide report.
    fn kinds(self) -> (&'static str, &'static str) {
        match self {
            Format::OpenReports => ("Report", "ClusterReport"),
            Format::PolicyReport => ("PolicyReport", "ClusterPolicyReport"),
        }
    }

    /// The API resources of the namespaced and of the cluster-wide report.
    pub fn resources(self) -> (ApiResource, ApiResource) {
        let (group, version) = self.api_version().split_once('/').unwrap_or_default();
        let (namespaced, cluster) = self.kinds();
        let resource = |kind: &str| {
            let gvk = GroupVersionKind::gvk(group, version, kind);
            ApiResource::from_gvk_with_plural(&gvk, &format!("{}s", kind.to_ascii_lowercase()))
        };
        (resource(namespaced), resource(cluster))
    }
}

/// Most results in one report: a namespace with more objects gets more reports, so that each
/// stays well under the apiserver's object size limit (etcd's 1.5 MiB by default) even with
/// messages of a few KiB.
pub const RESULTS_PER_REPORT: usize = 500;

/// The reports for `audited` (the objects their findings are reported on, see
/// [`super::reported`]), a namespace at a time and rendered only as they are taken, so that a
/// large fleet is never rendered whole. Results come in the listing's order (by kind, then
/// namespace and name), each object's policies in their order, so that an unchanged fleet gives
/// identical reports; an object's results are never split between reports.
pub fn render<'a>(
    format: Format,
    audited: impl IntoIterator<Item = &'a Audited>,
    at: SystemTime,
) -> impl Iterator<Item = Value> + 'a {
    let timestamp = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let timestamp = json!({"seconds": timestamp.as_secs(), "nanos": timestamp.subsec_nanos()});
    // The cluster-wide report under "".
    let mut by_namespace: BTreeMap<&str, Vec<&Audited>> = BTreeMap::new();
    for audited in audited {
        by_namespace
            .entry(report_namespace(&audited.result))
            .or_default()
            .push(audited);
    }
    by_namespace.into_iter().flat_map(move |(namespace, objects)| {
        let timestamp = timestamp.clone();
        let mut results = objects
            .into_iter()
            .map(move |audited| object_results(audited, &timestamp))
            .filter(|results| !results.is_empty())
            .peekable();
        let mut part = 0;
        std::iter::from_fn(move || {
            let mut report_results = results.next()?;
            while let Some(more) = results.next_if(|more| report_results.len() + more.len() <= RESULTS_PER_REPORT) {
                report_results.extend(more);
            }
            part += 1;
            Some(report(format, namespace, part - 1, report_results))
        })
    })
}

/// The namespace of the report an object's results go to ("" for the cluster-wide one).
fn report_namespace(result: &ObjectResult) -> &str {
    match result.kind.as_str() {
        "Namespace" => "",
        _ => &result.namespace,
    }
}

/// An object's results: one per policy that applied (`pass` without a finding), and one per
/// finding of portcullis's own checks.
fn object_results(audited: &Audited, timestamp: &Value) -> Vec<Value> {
    let result = &audited.result;
    let resource = json!({
        "apiVersion": audited.api_version, "kind": result.kind, "name": result.name,
        "namespace": report_namespace(result), "uid": audited.uid,
    });
    let entry = |policy: &str, outcome: &str, finding: Option<&FindingResult>| {
        let mut entry = json!({
            "source": SOURCE, "policy": policy, "category": category(policy), "result": outcome,
            "scored": true, "timestamp": timestamp, "resources": [resource],
            "properties": {"risk_level": result.risk_level},
        });
        if let Some(finding) = finding {
            entry["message"] = Value::String(finding.message.clone());
            entry["properties"]["enforcement"] = Value::String(finding.action.to_string());
        }
        entry
    };
    let mut results = Vec::new();
    for applied in &result.applied {
        let mut found = result.findings.iter().filter(|f| f.policy == applied.policy).peekable();
        if found.peek().is_none() {
            results.push(entry(&applied.policy, "pass", None));
        }
        for finding in found {
            let outcome = match (applied.error, finding.action) {
                (true, _) => "error",
                (false, "warn") => "warn",
                _ => "fail",
            };
            results.push(entry(&finding.policy, outcome, Some(finding)));
        }
    }
    // Findings of portcullis's own checks (an image it cannot read, an unknown risk level)
    // belong to no policy that applied.
    for finding in result
        .findings
        .iter()
        .filter(|f| !result.applied.iter().any(|a| a.policy == f.policy))
    {
        results.push(entry(&finding.policy, "fail", Some(finding)));
    }
    results
}

/// Report `part` (from 0) of `namespace` ("": the cluster-wide report), named [`NAME`] and,
/// after the first, `NAME-2`, `NAME-3`...
fn report(format: Format, namespace: &str, part: usize, results: Vec<Value>) -> Value {
    let count = |outcome: &str| results.iter().filter(|r| r["result"] == outcome).count();
    let summary = json!({
        "pass": count("pass"), "fail": count("fail"), "warn": count("warn"),
        "error": count("error"), "skip": 0,
    });
    let name = match part {
        0 => NAME.to_string(),
        n => format!("{NAME}-{}", n + 1),
    };
    let mut metadata = json!({"name": name, "labels": {"app.kubernetes.io/managed-by": SOURCE}});
    let (namespaced_kind, cluster_kind) = format.kinds();
    let kind = if namespace.is_empty() {
        cluster_kind
    } else {
        metadata["namespace"] = Value::String(namespace.to_string());
        namespaced_kind
    };
    let mut report = json!({
        "apiVersion": format.api_version(), "kind": kind, "metadata": metadata,
        "summary": summary, "results": results,
    });
    // Only OpenReports has a report-level source (each result names it in both).
    if format == Format::OpenReports {
        report["source"] = Value::String(SOURCE.to_string());
    }
    report
}

/// A policy's category, as Policy Reporter groups results: a native policy's first package
/// segment (`images`, `pods`), a Gatekeeper constraint's template kind.
fn category(policy: &str) -> &str {
    match policy.split_once('/') {
        Some((template, _)) => template,
        None => policy.split('.').next().unwrap_or(policy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::sample;

    fn decided(namespace: &str, kind: &str, findings: &[(&str, &'static str)], applied: &[(&str, bool)]) -> Audited {
        let result = ObjectResult {
            origin: "cluster".into(),
            location: None,
            kind: kind.into(),
            namespace: namespace.into(),
            allowed: findings.is_empty(),
            risk_level: "low".into(),
            findings: findings
                .iter()
                .map(|(policy, action)| sample::finding(policy, action, &format!("{policy} says no")))
                .collect(),
            ..sample::result("x", &[], applied)
        };
        Audited {
            api_version: "v1".into(),
            uid: "u-1".into(),
            controller: None,
            reported: true,
            result,
            digest: 0,
        }
    }

    #[test]
    fn a_report_per_namespace_with_a_result_per_object_and_policy() {
        let objects = [
            decided(
                "team-a",
                "Pod",
                &[
                    ("images.digest_pinning", "deny"),
                    ("pods.probes", "warn"),
                    ("images.signatures", "deny"),
                ],
                &[
                    ("images.digest_pinning", false),
                    ("pods.probes", false),
                    ("images.signatures", true),
                    ("metadata.labels", false),
                ],
            ),
            decided("", "Namespace", &[("portcullis.risk", "deny")], &[]),
        ];
        let reports: Vec<Value> = render(Format::OpenReports, &objects, SystemTime::UNIX_EPOCH).collect();
        assert_eq!(reports.len(), 2);
        let (cluster, team) = (&reports[0], &reports[1]);
        assert_eq!(cluster["kind"], "ClusterReport");
        assert_eq!(cluster["metadata"].get("namespace"), None);
        assert_eq!(cluster["results"][0]["result"], "fail");
        assert_eq!(team["kind"], "Report");
        assert_eq!(team["metadata"]["namespace"], "team-a");
        assert_eq!(
            team["summary"],
            json!({"pass": 1, "fail": 1, "warn": 1, "error": 1, "skip": 0})
        );
        let outcomes: Vec<(&str, &str)> = team["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["policy"].as_str().unwrap(), r["result"].as_str().unwrap()))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("images.digest_pinning", "fail"),
                ("pods.probes", "warn"),
                ("images.signatures", "error"),
                ("metadata.labels", "pass"),
            ]
        );
        let first = &team["results"][0];
        assert_eq!(first["category"], "images");
        assert_eq!(first["message"], "images.digest_pinning says no");
        assert_eq!(first["resources"][0]["uid"], "u-1");
        assert_eq!(first["timestamp"], json!({"seconds": 0, "nanos": 0}));
        let legacy: Vec<Value> = render(Format::PolicyReport, &objects, SystemTime::UNIX_EPOCH).collect();
        assert_eq!(legacy[1]["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(legacy[1]["kind"], "PolicyReport");
        assert_eq!(legacy[0]["kind"], "ClusterPolicyReport");
        assert_eq!(legacy[1].get("source"), None);
        assert_eq!(team["source"], "portcullis");
    }

    #[test]
    fn a_namespace_with_more_results_than_a_report_holds_gets_more_reports() {
        let applied: Vec<(String, bool)> = (0..7).map(|n| (format!("p.{n}"), false)).collect();
        let applied: Vec<(&str, bool)> = applied.iter().map(|(p, e)| (p.as_str(), *e)).collect();
        // 7 results per object: 71 objects per 500 results; 150 objects need 3 reports.
        let objects: Vec<Audited> = (0..150).map(|_| decided("team-a", "Pod", &[], &applied)).collect();
        let reports: Vec<Value> = render(Format::OpenReports, &objects, SystemTime::UNIX_EPOCH).collect();
        let sizes: Vec<(&str, usize)> = reports
            .iter()
            .map(|r| {
                (
                    r["metadata"]["name"].as_str().unwrap(),
                    r["results"].as_array().unwrap().len(),
                )
            })
            .collect();
        assert_eq!(
            sizes,
            [
                ("portcullis-audit", 497),
                ("portcullis-audit-2", 497),
                ("portcullis-audit-3", 56)
            ]
        );
        assert_eq!(reports[2]["summary"]["pass"], 56);
        assert!(reports.iter().all(|r| r["metadata"]["namespace"] == "team-a"));
    }

    #[test]
    fn categories() {
        assert_eq!(category("images.digest_pinning"), "images");
        assert_eq!(
            category("K8sUniqueIngressHost/unique-ingress-host"),
            "K8sUniqueIngressHost"
        );
    }
}
