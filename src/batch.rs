//! Many objects decided with one reviewer, as `check` (manifests) and `audit` (the running
//! fleet) do, and what is reported for each: one result model, rendered as text or JSON.
//!
//! An object that did not come as an AdmissionReview becomes the AdmissionRequest the apiserver
//! would send to create it (as gator does), so it is decided exactly as the webhook decides.

use serde::Serialize;
use serde_json::{json, Value};

use crate::admission::{Facts, Posture, Reviewer, Subject};
use crate::policy::input::Request;

/// One object to decide.
#[derive(Debug, Clone)]
pub struct Document {
    /// Where it came from: `file`, `file#N`, or `cluster`.
    pub origin: String,
    /// Its place in a manifest file (none for the cluster's objects).
    pub location: Option<Location>,
    /// The AdmissionRequest to decide.
    pub request: Value,
}

/// Where a manifest's object is: its file and, when known, the line it starts at (1-based), so
/// that CI can show a finding on that line of the pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// Why an object cannot become an AdmissionRequest.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object has no kind")]
    NoKind,
    #[error("object has no apiVersion")]
    NoApiVersion,
}

/// The AdmissionRequest that would create `object`, from `user`, with `uid`.
pub fn create_request(object: Value, uid: String, user: &str) -> Result<Value, ObjectError> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .ok_or(ObjectError::NoKind)?
        .to_string();
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or(ObjectError::NoApiVersion)?;
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
    Ok(json!({
        "uid": uid,
        "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
        "name": name,
        "namespace": namespace,
        "operation": "CREATE",
        "userInfo": {"username": user},
        "object": object,
        "oldObject": null,
        "dryRun": true,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }))
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

/// What is reported for one object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    pub origin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub allowed: bool,
    pub risk_level: String,
    pub findings: Vec<FindingResult>,
    /// The supply-chain facts of its images (the fleet posture of an audit).
    #[serde(skip)]
    pub images: Vec<Posture>,
    /// The policies that applied to it (every native policy, the Gatekeeper constraints that
    /// matched), for reports that list passes as well as findings.
    #[serde(skip)]
    pub applied: Vec<Applied>,
}

/// A policy that applied to an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub policy: String,
    /// It could not be evaluated (its finding says why).
    pub error: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingResult {
    pub policy: String,
    pub action: &'static str,
    pub message: String,
    /// A Gatekeeper violation's `details`, when it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// Under a proposed policy set (what-if): whether the proposal brings, ends or keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// The PolicyException (`namespace/name`) that turned a denial into this warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excused_by: Option<String>,
}

impl FindingResult {
    /// A finding with no details, outside a what-if.
    pub fn new(policy: &str, action: &'static str, message: String) -> FindingResult {
        FindingResult {
            policy: policy.to_string(),
            action,
            message,
            details: None,
            change: None,
            excused_by: None,
        }
    }
}

impl ObjectResult {
    /// The file the object came from (its origin, such as `cluster`, when it has none).
    pub fn file(&self) -> &str {
        self.location.as_ref().map_or(&self.origin, |location| &location.file)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only the proposed set finds it.
    New,
    /// Only the installed set finds it.
    Resolved,
    /// Both find it.
    Unchanged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Resolved => "resolved",
            Change::Unchanged => "unchanged",
        }
    }
}

/// Time allowed to verify the images of one object.
const VERIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The facts of `document` (its images verified first when there is a runtime: online).
pub fn facts(reviewer: &Reviewer, document: &Document, online: Option<&tokio::runtime::Runtime>) -> Facts {
    let mut facts = reviewer.facts(&document.request);
    if let Some(runtime) = online {
        runtime.block_on(reviewer.verify(&mut facts, std::time::Instant::now() + VERIFY_TIMEOUT));
    }
    facts
}

/// Decides `document` on `facts` already gathered.
pub fn decide(reviewer: &Reviewer, document: &Document, facts: Facts) -> ObjectResult {
    let images = facts.images.iter().map(|(image, _)| Posture::of(image)).collect();
    let outcome = reviewer.evaluate(Request::Json(&document.request), facts);
    let applied = outcome
        .results
        .iter()
        .map(|result| Applied {
            policy: result.id.clone(),
            error: result.error.is_some(),
        })
        .collect();
    let decision = outcome.decision;
    let Subject {
        kind, namespace, name, ..
    } = Subject::of(&document.request);
    ObjectResult {
        origin: document.origin.clone(),
        location: document.location.clone(),
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
                change: None,
                excused_by: f.excused_by.clone(),
            })
            .collect(),
        images,
        applied,
    }
}

/// Decides every document; with a runtime, image signatures are verified first (online).
pub fn evaluate(
    reviewer: &Reviewer,
    documents: &[Document],
    online: Option<&tokio::runtime::Runtime>,
) -> Vec<ObjectResult> {
    documents
        .iter()
        .map(|document| decide(reviewer, document, facts(reviewer, document, online)))
        .collect()
}

/// `Kind namespace/name` (`Kind name` when cluster-scoped).
pub fn object_name(result: &ObjectResult) -> String {
    if result.namespace.is_empty() || result.kind == "Namespace" {
        format!("{} {}", result.kind, result.name)
    } else {
        format!("{} {}/{}", result.kind, result.namespace, result.name)
    }
}

/// Text output: an `allow` line for a clean object, otherwise one line per finding (with its
/// change under a proposal, in brackets).
pub fn render_text<'a>(results: impl IntoIterator<Item = &'a ObjectResult>) -> String {
    let mut out = String::new();
    for result in results {
        let object = object_name(result);
        if result.findings.is_empty() {
            out.push_str(&format!("{}: allow {object}\n", result.origin));
        }
        for finding in &result.findings {
            let change = finding.change.map(|c| format!(" [{}]", c.as_str())).unwrap_or_default();
            out.push_str(&format!(
                "{}: {}{change} {object} {}: {}\n",
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

/// Results for unit tests (the CI renderers, the audit's reports and what-if): a Pod
/// `team-a/NAME` of `app.yaml`, line 3.
#[cfg(test)]
pub mod sample {
    use super::*;

    pub fn finding(policy: &str, action: &'static str, message: &str) -> FindingResult {
        FindingResult::new(policy, action, message.to_string())
    }

    /// With these findings (policy, action, message) and applied policies (policy, error).
    pub fn result(name: &str, findings: &[(&str, &'static str, &str)], applied: &[(&str, bool)]) -> ObjectResult {
        ObjectResult {
            origin: "app.yaml".into(),
            location: Some(Location {
                file: "app.yaml".into(),
                line: Some(3),
            }),
            kind: "Pod".into(),
            namespace: "team-a".into(),
            name: name.into(),
            allowed: findings.iter().all(|f| f.1 != "deny"),
            risk_level: "high".into(),
            findings: findings.iter().map(|(p, a, m)| finding(p, a, m)).collect(),
            images: vec![],
            applied: applied
                .iter()
                .map(|(policy, error)| Applied {
                    policy: policy.to_string(),
                    error: *error,
                })
                .collect(),
        }
    }
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
        let r = create_request(object, "u".into(), "someone").unwrap();
        assert_eq!(
            r["kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert_eq!(r["resource"]["resource"], "deployments");
        assert_eq!(r["operation"], "CREATE");
        assert_eq!(r["namespace"], "team-a");
        assert_eq!(r["userInfo"]["username"], "someone");
        assert_eq!(r["object"]["metadata"]["name"], "web");
    }

    #[test]
    fn core_group_and_default_namespace() {
        let r = create_request(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}),
            "u".into(),
            "x",
        )
        .unwrap();
        assert_eq!(r["kind"]["group"], "");
        assert_eq!(r["namespace"], "default");
    }

    #[test]
    fn an_object_without_kind_or_version_is_refused() {
        assert!(matches!(
            create_request(json!({"apiVersion": "v1"}), "u".into(), "x"),
            Err(ObjectError::NoKind)
        ));
        assert!(matches!(
            create_request(json!({"kind": "Pod"}), "u".into(), "x"),
            Err(ObjectError::NoApiVersion)
        ));
    }
}
