//! `portcullis check`: the webhook's decision on manifest files, for the pull-request gate.
//!
//! Each object becomes the AdmissionRequest the apiserver would send for a CREATE (as gator
//! does), and goes through the same [`Reviewer`] as in the cluster.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use crate::admission::{review, Reviewer, Subject};
use crate::namespaces::{Labels, NamespaceLabels, StaticNamespaces};
use crate::policy::input::Request;
use crate::risk::{self, RiskLevel};

/// One object read from the inputs.
#[derive(Debug, Clone)]
pub struct Document {
    /// `file` or `file#N` for the N-th document of a multi-document file.
    pub origin: String,
    /// The AdmissionRequest to decide.
    pub request: Value,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the inputs:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
pub struct InputErrors(pub Vec<String>);

/// Reads every YAML/JSON file under `paths`; all unreadable inputs are reported together.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<Document>, InputErrors> {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            collect(path, &mut files, &mut errors);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            errors.push(format!("{}: no such file or directory", path.display()));
        }
    }
    let mut documents = Vec::new();
    for file in files {
        match read_file(&file) {
            Ok(found) => documents.extend(found),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(documents)
    } else {
        Err(InputErrors(errors))
    }
}

/// `data.inventory` for Gatekeeper templates from manifests, e.g. a `kubectl get -o yaml`
/// export of the cluster, laid out as the cluster sync lays it out (an object without a
/// namespace is cluster-scoped there).
pub fn read_inventory(paths: &[PathBuf]) -> Result<Value, InputErrors> {
    let objects: Vec<Value> = read_inputs(paths)?
        .into_iter()
        .filter_map(|document| document.request.get("object").filter(|o| o.is_object()).cloned())
        .collect();
    Ok(crate::policy::gatekeeper::review::inventory(&objects))
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return errors.push(format!("{}: {e}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect(&path, files, errors);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            files.push(path);
        }
    }
}

fn read_file(file: &Path) -> Result<Vec<Document>, String> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{name}: {e}"))?;
    let mut values = Vec::new();
    for (index, document) in yaml_serde::Deserializer::from_str(&text).enumerate() {
        let value = <Value as serde::Deserialize>::deserialize(document)
            .map_err(|e| format!("{name}: document {}: {e}", index + 1))?;
        values.push((index, value));
    }
    let many = values.len() > 1;
    let mut documents = Vec::new();
    for (index, value) in values {
        let origin = if many {
            format!("{name}#{}", index + 1)
        } else {
            name.clone()
        };
        for object in flatten(value) {
            documents.push(to_request(object, &origin, documents.len()).map_err(|e| format!("{origin}: {e}"))?);
        }
    }
    Ok(documents)
}

/// A `List` stands for its items; empty documents stand for nothing.
fn flatten(value: Value) -> Vec<Value> {
    match value {
        Value::Null => Vec::new(),
        Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
            map.get("items").and_then(Value::as_array).cloned().unwrap_or_default()
        }
        other => vec![other],
    }
}

/// An AdmissionReview is taken as is; any other object becomes a synthetic CREATE request.
fn to_request(object: Value, origin: &str, index: usize) -> Result<Document, String> {
    if object.get("kind").and_then(Value::as_str) == Some("AdmissionReview") {
        let body = serde_json::to_vec(&object).map_err(|e| e.to_string())?;
        let review = review::parse(&body).map_err(|e| e.to_string())?;
        return Ok(Document {
            origin: origin.to_string(),
            request: serde_json::to_value(&review.request).map_err(|e| e.to_string())?,
        });
    }
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("object has no kind")?
        .to_string();
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or("object has no apiVersion")?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let namespace = match kind.as_str() {
        "Namespace" => name.to_string(),
        _ => object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string(),
    };
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": group, "version": version, "resource": plural(&kind)});
    let request = json!({
        "uid": format!("portcullis-check-{index}"),
        "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
        "name": name,
        "namespace": namespace,
        "operation": "CREATE",
        "userInfo": {"username": "portcullis-check"},
        "object": object,
        "oldObject": null,
        "dryRun": true,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    });
    Ok(Document {
        origin: origin.to_string(),
        request,
    })
}

/// The resource name Kubernetes uses for a kind (English plural of the lowercase kind).
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower == "endpoints" {
        lower
    } else if lower.ends_with('s') || lower.ends_with('x') || lower.ends_with("ch") || lower.ends_with("sh") {
        format!("{lower}es")
    } else if lower.ends_with('y') && !lower.ends_with("ay") && !lower.ends_with("ey") && !lower.ends_with("oy") {
        format!("{}ies", &lower[..lower.len() - 1])
    } else {
        format!("{lower}s")
    }
}

/// Namespace labels for `check`: Namespace manifests among the inputs, or one level for all.
pub fn namespace_source(documents: &[Document], risk_level: Option<RiskLevel>) -> Arc<dyn NamespaceLabels> {
    if let Some(level) = risk_level {
        return Arc::new(FixedLevel(level));
    }
    let mut known = HashMap::new();
    for document in documents {
        let object = &document.request["object"];
        if object.get("kind").and_then(Value::as_str) == Some("Namespace") {
            let labels: Labels = object
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            known.insert(name.to_string(), labels);
        }
    }
    Arc::new(StaticNamespaces(known))
}

/// Every namespace at the level given on the command line.
struct FixedLevel(RiskLevel);

impl NamespaceLabels for FixedLevel {
    fn labels(&self, _namespace: &str) -> Labels {
        BTreeMap::from([(risk::LABEL.to_string(), self.0.as_str().to_string())])
    }
}

/// What `check` reports for one object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    pub origin: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub allowed: bool,
    pub risk_level: String,
    pub findings: Vec<FindingResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindingResult {
    pub policy: String,
    pub action: &'static str,
    pub message: String,
    /// A Gatekeeper violation's `details`, when it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// Time allowed to verify the images of one object.
const VERIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Decides every document; with a runtime, image signatures are verified first (online).
pub fn evaluate(
    reviewer: &Reviewer,
    documents: &[Document],
    online: Option<&tokio::runtime::Runtime>,
) -> Vec<ObjectResult> {
    documents
        .iter()
        .map(|document| {
            let mut facts = reviewer.facts(&document.request);
            if let Some(runtime) = online {
                runtime.block_on(reviewer.verify(&mut facts, std::time::Instant::now() + VERIFY_TIMEOUT));
            }
            let decision = reviewer.evaluate(Request::Json(&document.request), facts).decision;
            let Subject {
                kind, namespace, name, ..
            } = Subject::of(&document.request);
            ObjectResult {
                origin: document.origin.clone(),
                kind,
                namespace,
                name,
                allowed: decision.allowed,
                risk_level: decision.risk_level.to_string(),
                findings: decision
                    .findings
                    .iter()
                    .map(|f| FindingResult {
                        policy: f.policy.clone(),
                        action: f.action.as_str(),
                        message: f.message.clone(),
                        details: f.details.clone(),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Text output: an `allow` line for a clean object, otherwise one line per finding.
pub fn render_text(results: &[ObjectResult]) -> String {
    let mut out = String::new();
    for result in results {
        let object = if result.namespace.is_empty() || result.kind == "Namespace" {
            format!("{} {}", result.kind, result.name)
        } else {
            format!("{} {}/{}", result.kind, result.namespace, result.name)
        };
        if result.findings.is_empty() {
            out.push_str(&format!("{}: allow {object}\n", result.origin));
        }
        for finding in &result.findings {
            out.push_str(&format!(
                "{}: {} {object} {}: {}\n",
                result.origin, finding.action, finding.policy, finding.message
            ));
        }
    }
    out
}

pub fn render_json(results: &[ObjectResult]) -> String {
    let denied = results.iter().filter(|r| !r.allowed).count();
    let document = json!({"results": results, "summary": {"objects": results.len(), "denied": denied}});
    serde_json::to_string_pretty(&document).unwrap_or_default()
}

/// Exit status: 0 all allowed, 1 any denied.
pub fn exit_code(results: &[ObjectResult]) -> i32 {
    i32::from(results.iter().any(|r| !r.allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        for (kind, resource) in [
            ("Pod", "pods"),
            ("Deployment", "deployments"),
            ("Ingress", "ingresses"),
            ("NetworkPolicy", "networkpolicies"),
            ("Endpoints", "endpoints"),
            ("Gateway", "gateways"),
        ] {
            assert_eq!(plural(kind), resource);
        }
    }

    #[test]
    fn synthesises_a_create_request() {
        let object =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "team-a"}});
        let document = to_request(object, "x.yaml", 0).unwrap();
        let r = &document.request;
        assert_eq!(
            r["kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert_eq!(r["resource"]["resource"], "deployments");
        assert_eq!(r["operation"], "CREATE");
        assert_eq!(r["namespace"], "team-a");
        assert_eq!(r["object"]["metadata"]["name"], "web");
    }

    #[test]
    fn core_group_and_default_namespace() {
        let document = to_request(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}),
            "x",
            0,
        )
        .unwrap();
        assert_eq!(document.request["kind"]["group"], "");
        assert_eq!(document.request["namespace"], "default");
    }

    #[test]
    fn multi_document_yaml_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("all.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: {portcullis.io/risk-level: low}}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: p1, namespace: a}}\n- {apiVersion: v1, kind: Pod, metadata: {name: p2, namespace: a}}\n",
        )
        .unwrap();
        let documents = read_inputs(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(documents.len(), 3);
        assert!(documents[1].origin.ends_with("all.yaml#3"), "{}", documents[1].origin);
        let namespaces = namespace_source(&documents, None);
        assert_eq!(namespaces.labels("a").get(risk::LABEL).map(String::as_str), Some("low"));
    }

    #[test]
    fn all_bad_inputs_are_reported_together() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "a: [unclosed\n").unwrap();
        std::fs::write(dir.path().join("nokind.yaml"), "apiVersion: v1\n").unwrap();
        let err = read_inputs(&[dir.path().to_path_buf(), dir.path().join("missing.yaml")]).unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
    }
}
