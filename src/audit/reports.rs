//! Policy reports of an audit pass: one namespaced report per namespace and one cluster-wide
//! report for cluster-scoped objects, each with a result per object and policy (`pass`,
//! `fail`, `warn`, `error`), in OpenReports' format (`openreports.io/v1alpha1` Report and
//! ClusterReport) or the older wg-policy one (`wgpolicyk8s.io/v1alpha2` PolicyReport and
//! ClusterPolicyReport), whose fields are the same. Policy Reporter reads both.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::batch::{Document, ObjectResult};

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
}

/// The reports for `decided` (each listed object with its result; objects whose findings are
/// reported on their controller are left out by the caller), results sorted by object and
/// policy so that an unchanged fleet gives identical reports.
pub fn render<'a>(
    format: Format,
    decided: impl IntoIterator<Item = (&'a Document, &'a ObjectResult)>,
    at: SystemTime,
) -> Vec<Value> {
    let timestamp = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let timestamp = json!({"seconds": timestamp.as_secs(), "nanos": timestamp.subsec_nanos()});
    // The cluster-wide report under "".
    let mut by_namespace: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (document, result) in decided {
        let object = &document.request["object"];
        let namespaced = !result.namespace.is_empty() && result.kind != "Namespace";
        let resource = json!({
            "apiVersion": object["apiVersion"], "kind": result.kind, "name": result.name,
            "namespace": if namespaced { result.namespace.as_str() } else { "" },
            "uid": object.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
        });
        let entry = |policy: &str, outcome: &str, message: Option<&str>| {
            let mut entry = json!({
                "source": SOURCE, "policy": policy, "category": category(policy), "result": outcome,
                "scored": true, "timestamp": timestamp, "resources": [resource],
                "properties": {"risk_level": result.risk_level},
            });
            if let Some(message) = message {
                entry["message"] = Value::String(message.to_string());
            }
            entry
        };
        let results = by_namespace
            .entry(if namespaced {
                result.namespace.clone()
            } else {
                String::new()
            })
            .or_default();
        for applied in &result.applied {
            let found: Vec<_> = result.findings.iter().filter(|f| f.policy == applied.policy).collect();
            if found.is_empty() {
                results.push(entry(&applied.policy, "pass", None));
            }
            for finding in found {
                let outcome = match (applied.error, finding.action) {
                    (true, _) => "error",
                    (false, "warn") => "warn",
                    _ => "fail",
                };
                let mut item = entry(&finding.policy, outcome, Some(&finding.message));
                item["properties"]["enforcement"] = Value::String(finding.action.to_string());
                results.push(item);
            }
        }
        // Findings of portcullis's own checks (an image it cannot read, an unknown risk level)
        // belong to no policy that applied.
        for finding in result
            .findings
            .iter()
            .filter(|f| !result.applied.iter().any(|a| a.policy == f.policy))
        {
            let mut item = entry(&finding.policy, "fail", Some(&finding.message));
            item["properties"]["enforcement"] = Value::String(finding.action.to_string());
            results.push(item);
        }
    }
    let (namespaced_kind, cluster_kind) = format.kinds();
    by_namespace
        .into_iter()
        .map(|(namespace, results)| {
            let count = |outcome: &str| results.iter().filter(|r| r["result"] == outcome).count();
            let summary = json!({
                "pass": count("pass"), "fail": count("fail"), "warn": count("warn"),
                "error": count("error"), "skip": 0,
            });
            let mut metadata = json!({"name": NAME, "labels": {"app.kubernetes.io/managed-by": SOURCE}});
            let kind = if namespace.is_empty() {
                cluster_kind
            } else {
                metadata["namespace"] = Value::String(namespace);
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
        })
        .collect()
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
    use crate::batch::{Applied, FindingResult};

    fn decided(
        namespace: &str,
        kind: &str,
        findings: &[(&str, &'static str)],
        applied: &[(&str, bool)],
    ) -> (Document, ObjectResult) {
        let document = Document {
            origin: "cluster".into(),
            request: json!({"object": {"apiVersion": "v1", "kind": kind, "metadata": {"name": "x", "uid": "u-1"}}}),
        };
        let result = ObjectResult {
            origin: "cluster".into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: "x".into(),
            allowed: findings.is_empty(),
            risk_level: "low".into(),
            findings: findings
                .iter()
                .map(|(policy, action)| FindingResult {
                    policy: policy.to_string(),
                    action,
                    message: format!("{policy} says no"),
                    details: None,
                    change: None,
                })
                .collect(),
            images: vec![],
            applied: applied
                .iter()
                .map(|(policy, error)| Applied {
                    policy: policy.to_string(),
                    error: *error,
                })
                .collect(),
        };
        (document, result)
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
        let reports = render(
            Format::OpenReports,
            objects.iter().map(|(d, r)| (d, r)),
            SystemTime::UNIX_EPOCH,
        );
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
        let legacy = render(
            Format::PolicyReport,
            objects.iter().map(|(d, r)| (d, r)),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(legacy[1]["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(legacy[1]["kind"], "PolicyReport");
        assert_eq!(legacy[0]["kind"], "ClusterPolicyReport");
        assert_eq!(legacy[1].get("source"), None);
        assert_eq!(team["source"], "portcullis");
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
