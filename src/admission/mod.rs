//! Admission: from an AdmissionRequest to a decision, the same in `serve` and `check`.

pub mod extract;
pub mod respond;
pub mod review;
pub mod setup;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::document::Document;
use crate::exceptions::{ExceptionSource, PolicyException, StaticExceptions, Target};
use crate::images::pull_secrets::PullSecretRefs;
use crate::images::{ImageFacts, ImageReference, VerificationStatus};
use crate::metrics::{yes_no, AdmittedLabels, Metrics, RequestLabels};
use crate::namespaces::NamespaceLabels;
use crate::policy::gatekeeper::InventoryError;
use crate::policy::input::{Input, Request};
use crate::policy::{decision, Decision, Finding, LivePolicies, PolicySet};
use crate::results::Enforcement;
use crate::results::PolicyResult;
use crate::risk::{self, RiskLevel};
use crate::watch_health::WatchHealth;
use crate::workload;

/// Ids of the checks native code makes before Rego runs; they appear in messages and metrics
/// like policy ids.
pub const IMAGE_REFERENCE_CHECK: &str = "portcullis.image_reference";
pub const RISK_LEVEL_CHECK: &str = "portcullis.risk_level";

/// What decides a review: the current policy set and the settings that shape its input.
pub struct Reviewer {
    policies: LivePolicies,
    enforcement: BTreeMap<String, Enforcement>,
    risk_default: RiskLevel,
    namespaces: Arc<dyn NamespaceLabels>,
    exceptions: Arc<dyn ExceptionSource>,
    verifier: Option<Arc<crate::images::verify::Verifier>>,
    /// The inventory's watches, once it is synced from the cluster.
    inventory_watches: std::sync::OnceLock<Vec<Arc<WatchHealth>>>,
}

/// The policy library installed, the namespaces' risk levels, the exceptions and the trust
/// material (see [`Reviewer::revision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revision {
    library: u64,
    risk_labels: u64,
    exceptions: u64,
    trust: u64,
}

/// A decision with what led to it, for metrics and logs.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub decision: Decision,
    pub results: Vec<PolicyResult>,
    pub images: Vec<ImageFacts>,
}

impl Reviewer {
    pub fn new(
        policies: PolicySet,
        enforcement: BTreeMap<String, Enforcement>,
        risk_default: RiskLevel,
        namespaces: Arc<dyn NamespaceLabels>,
    ) -> Reviewer {
        Reviewer {
            policies: LivePolicies::new(policies),
            enforcement,
            risk_default,
            namespaces,
            exceptions: Arc::new(StaticExceptions::default()),
            verifier: None,
            inventory_watches: Default::default(),
        }
    }

    /// Excuses findings with the exceptions of `source` (none by default).
    pub fn with_exceptions(mut self, source: Arc<dyn ExceptionSource>) -> Reviewer {
        self.exceptions = source;
        self
    }

    /// Verifies image signatures with `verifier` (serve, and check when online).
    pub fn with_verifier(mut self, verifier: Arc<crate::images::verify::Verifier>) -> Reviewer {
        self.verifier = Some(verifier);
        self
    }

    /// The verifier, when images are verified.
    pub fn verifier(&self) -> Option<&Arc<crate::images::verify::Verifier>> {
        self.verifier.as_ref()
    }

    /// Swaps in a newly loaded policy library (with the current inventory, if any); reviews
    /// in flight finish with the set they started with. CPU-bound.
    pub fn replace_policies(&self, policies: PolicySet) -> Result<(), InventoryError> {
        self.policies.replace_library(policies)
    }

    /// Swaps in a new `data.inventory` for the Gatekeeper templates. CPU-bound.
    pub fn replace_inventory(&self, inventory: Value) -> Result<(), InventoryError> {
        self.policies.replace_inventory(inventory)
    }

    /// Reviews wait for a first inventory (readiness) from now on, read by `watches`.
    pub fn expect_inventory(&self, watches: Vec<Arc<WatchHealth>>) {
        let _ = self.inventory_watches.set(watches);
        self.policies.expect_inventory();
    }

    /// Every cached watch of the Kubernetes API behind the decisions, for their staleness.
    pub fn watches(&self) -> Vec<Arc<WatchHealth>> {
        let mut watches = self.namespaces.watches();
        watches.extend(self.exceptions.watches());
        watches.extend(self.inventory_watches.get().into_iter().flatten().cloned());
        watches.extend(self.verifier.iter().flat_map(|verifier| verifier.watches()));
        watches
    }

    pub fn policies(&self) -> Arc<PolicySet> {
        self.policies.current()
    }

    /// What decides every object, as it stands: when it changes, decisions made before may
    /// not hold (a continuous audit decides everything again).
    pub fn revision(&self) -> Revision {
        Revision {
            library: self.policies.library_version(),
            risk_labels: self.namespaces.label_digest(risk::LABEL),
            exceptions: self.exceptions.digest(jiff::Timestamp::now()),
            trust: self.verifier.as_ref().map_or(0, |v| v.trust_generation()),
        }
    }

    /// Why the reviewer is not ready yet, if it isn't: the caches its decisions depend on.
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.namespaces.ready() {
            Some("namespace cache not synced")
        } else if !self.exceptions.ready() {
            Some("PolicyException cache not synced")
        } else if !self.policies.ready() {
            Some("inventory not synced")
        } else {
            None
        }
    }

    /// Decides one AdmissionRequest without contacting registries (image verification facts
    /// stay `skipped`): `check --offline` and tests. CPU-bound.
    pub fn decide(&self, request: &Value) -> Outcome {
        let facts = self.facts(request);
        self.evaluate(Request::Json(request), facts)
    }

    /// The input document the policies see for `request` (also for `docs/policy-input.md`).
    pub fn input(&self, request: &Value) -> Value {
        self.facts(request).input(Request::Json(request)).document()
    }

    /// Native facts and checks: risk level and image references. Cheap and synchronous.
    pub fn facts(&self, request: &impl Document) -> Facts {
        let namespace = request.text_of("namespace").unwrap_or_default().to_string();
        let namespace_labels = self.namespaces.labels(&namespace);
        let risk = risk::resolve(&namespace_labels, request.field("object"), self.risk_default);

        let mut native: Vec<Finding> = risk
            .warnings
            .into_iter()
            .map(|message| Finding::new(RISK_LEVEL_CHECK, Enforcement::Warn, message))
            .collect();
        let mut images = Vec::new();
        for location in extract::images(request) {
            match ImageReference::parse(&location.image) {
                Ok(reference) => images.push((ImageFacts::unverified(&location, &reference), reference)),
                Err(error) => native.push(Finding::new(
                    IMAGE_REFERENCE_CHECK,
                    Enforcement::Deny,
                    format!(
                        "container {:?} ({}): {error}; write it as registry/repository@sha256:<digest>",
                        location.container, location.path
                    ),
                )),
            }
        }
        let excusing = self.excusing(request, &namespace, &images);
        Facts {
            excusing,
            pull_secrets: PullSecretRefs {
                namespace: namespace.clone(),
                names: extract::pull_secret_names(request),
                service_account: extract::service_account_name(request),
            },
            namespace,
            namespace_labels,
            risk_level: risk.level,
            native,
            images,
        }
    }

    /// The active exceptions of the namespace whose `match` selects the request's object and
    /// whose digests (if any) bind its images: digests pinned in the references only, since a
    /// tag resolved now may point at another build when the kubelet pulls it. A Namespace is
    /// never excused by an exception inside it.
    fn excusing(
        &self,
        request: &impl Document,
        namespace: &str,
        images: &[(ImageFacts, ImageReference)],
    ) -> Vec<Arc<PolicyException>> {
        let mut candidates = self.exceptions.in_namespace(namespace);
        if candidates.is_empty() || extract::object_kind(request) == "Namespace" {
            return Vec::new();
        }
        let labels: BTreeMap<String, String> = request
            .at("/object/metadata/labels")
            .and_then(Document::fields)
            .into_iter()
            .flatten()
            .filter_map(|(key, value)| Some((key.to_string(), value.text()?.to_string())))
            .collect();
        let subject = Subject::of(request);
        let target = Target {
            kind: &subject.kind,
            name: &subject.name,
            labels: &labels,
        };
        let digests: Vec<Option<&str>> = images.iter().map(|(image, _)| image.digest.as_deref()).collect();
        let now = jiff::Timestamp::now();
        candidates.retain(|exception| exception.active(now) && exception.matches(target) && exception.binds(&digests));
        candidates
    }

    /// Adds signature verification facts to every image, concurrently, within `deadline`.
    /// Without a configured trust policy the facts stay `skipped`.
    /// The registries [`Reviewer::verify`] would contact for these facts: those of the images
    /// on the allow-list (to resolve a tag or verify). None: decided on the CPU alone.
    pub fn registries_contacted(&self, facts: &Facts) -> std::collections::BTreeSet<String> {
        let Some(verifier) = &self.verifier else {
            return Default::default();
        };
        facts
            .images
            .iter()
            .filter(|(_, reference)| verifier.contacts(reference))
            .map(|(_, reference)| reference.registry.clone())
            .collect()
    }

    pub async fn verify(&self, facts: &mut Facts, deadline: std::time::Instant) {
        let Some(verifier) = &self.verifier else { return };
        let checks = facts
            .images
            .iter()
            .map(|(_, reference)| verifier.verify(reference, &facts.pull_secrets, deadline));
        let verified = futures::future::join_all(checks).await;
        for ((image, _), verified) in facts.images.iter_mut().zip(verified) {
            image.resolved_digest = verified.resolved_digest;
            image.verification = verified.verification;
        }
    }

    /// Evaluates the policies on the facts. CPU-bound: the server calls it off the async runtime.
    pub fn evaluate(&self, request: Request, facts: Facts) -> Outcome {
        self.evaluate_before(request, facts, None)
    }

    /// [`Reviewer::evaluate`], every evaluation also stopped at `deadline`.
    pub fn evaluate_before(&self, request: Request, facts: Facts, deadline: Option<std::time::Instant>) -> Outcome {
        let results = self.policies.current().evaluate_before(&facts.input(request), deadline);
        let decision = decision::aggregate(
            facts.native,
            &results,
            &self.enforcement,
            &facts.excusing,
            facts.risk_level,
        );
        Outcome {
            decision,
            results,
            images: facts.images.into_iter().map(|(image, _)| image).collect(),
        }
    }
}

/// What native code knows about a request before the policies run.
#[derive(Debug, Clone)]
pub struct Facts {
    namespace: String,
    namespace_labels: BTreeMap<String, String>,
    pub risk_level: RiskLevel,
    /// Findings of native checks (unparseable images, unknown risk labels).
    pub native: Vec<Finding>,
    pub images: Vec<(ImageFacts, ImageReference)>,
    /// The pod spec's imagePullSecrets, for registry access.
    pub pull_secrets: PullSecretRefs,
    /// The active exceptions that select the object and its images.
    excusing: Vec<Arc<PolicyException>>,
}

impl Facts {
    fn input<'a>(&self, request: Request<'a>) -> Input<'a> {
        let images: Vec<&ImageFacts> = self.images.iter().map(|(image, _)| image).collect();
        Input::new(
            request,
            self.risk_level,
            &self.namespace,
            &self.namespace_labels,
            &images,
        )
    }
}

/// What a request is about, for log lines and reports: taken from the request before it moves
/// to the evaluator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub kind: String,
    pub operation: String,
    pub namespace: String,
    pub name: String,
    pub dry_run: bool,
}

impl Subject {
    /// The request's labels in `portcullis_admission_requests_total`: operation and kind from
    /// fixed lists, so no request can add a label value.
    pub fn request_labels(&self, decision: &'static str) -> RequestLabels {
        RequestLabels {
            operation: operation_label(&self.operation),
            kind: workload::kind_label(&self.kind),
            decision,
        }
    }

    pub fn of(request: &impl Document) -> Subject {
        let text = |pointer: &str| request.text_at(pointer).unwrap_or_default().to_string();
        let name = match text("/object/metadata/name") {
            name if name.is_empty() => text("/name"),
            name => name,
        };
        Subject {
            kind: extract::object_kind(request).to_string(),
            operation: text("/operation"),
            namespace: text("/namespace"),
            name,
            dry_run: request.field("dryRun").and_then(Document::boolean).unwrap_or(false),
        }
    }
}

fn operation_label(operation: &str) -> &'static str {
    match operation {
        "CREATE" => "CREATE",
        "UPDATE" => "UPDATE",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "" => "unknown",
        _ => "other",
    }
}

impl Outcome {
    /// Records what the policies said and, when admitted, what the images had (the
    /// supply-chain KPIs by risk level).
    pub fn record(&self, metrics: &Metrics) {
        if self.decision.allowed {
            for image in &self.images {
                metrics.record_admitted_image(admitted_labels(self.decision.risk_level, image));
            }
        }
        for finding in &self.decision.findings {
            if finding.excused_by.is_some() {
                metrics.record_excused(&finding.policy);
            }
        }
        for result in &self.results {
            let label = match &result.error {
                Some(error) => error.reason(),
                None if !result.deny.is_empty() => "deny",
                None if !result.warn.is_empty() => "warn",
                None => "pass",
            };
            metrics.record_policy_evaluation(&result.id, label, result.duration);
        }
    }
}

fn admitted_labels(risk_level: RiskLevel, image: &ImageFacts) -> AdmittedLabels {
    let posture = Posture::of(image);
    AdmittedLabels {
        risk_level: risk_level.as_str(),
        pinned: yes_no(posture.pinned),
        signed: yes_no(posture.signed),
        sbom: yes_no(posture.sbom),
        provenance: yes_no(posture.provenance),
    }
}

/// An image's supply-chain facts as the KPIs count them: pinned by digest, signed by a trusted
/// authority, with a verified SBOM (CycloneDX or SPDX) and SLSA provenance attestation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Posture {
    pub pinned: bool,
    pub signed: bool,
    pub sbom: bool,
    pub provenance: bool,
}

impl Posture {
    pub fn of(image: &ImageFacts) -> Posture {
        let attested = |kinds: &[&str]| {
            image
                .verification
                .attestations
                .iter()
                .any(|a| a.verified && kinds.iter().any(|k| a.predicate_type.contains(k)))
        };
        Posture {
            pinned: image.pinned,
            signed: image.verification.status == VerificationStatus::Verified,
            sbom: attested(&["cyclonedx", "spdx"]),
            provenance: attested(&["slsa.dev/provenance"]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespaces::StaticNamespaces;
    use crate::policy::bundle::{Bundle, Module};
    use serde_json::json;
    use std::collections::HashMap;
    use std::time::Duration;

    fn reviewer(rego: &str, namespaces: StaticNamespaces) -> Reviewer {
        let bundle = Bundle {
            modules: vec![Module {
                name: "p.rego".into(),
                text: rego.into(),
            }],
            tests: vec![],
            data: json!({}),
            gatekeeper: vec![],
        };
        let set = PolicySet::build(&bundle, json!({}), Duration::from_millis(500)).unwrap();
        Reviewer::new(set, BTreeMap::new(), RiskLevel::High, Arc::new(namespaces))
    }

    #[test]
    fn policies_see_images_risk_and_namespace() {
        let rego = r#"package t
deny contains sprintf("%s %s %s %v", [input.risk_level, input.namespace.name, img.repository, img.pinned]) if { some img in input.images }
"#;
        let namespaces = StaticNamespaces(HashMap::from([(
            "team-a".to_string(),
            BTreeMap::from([(risk::LABEL.to_string(), "low".to_string())]),
        )]));
        let request = json!({"uid": "u", "namespace": "team-a", "kind": {"kind": "Pod"},
            "object": {"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}});
        let outcome = reviewer(rego, namespaces).decide(&request);
        assert_eq!(outcome.decision.findings[0].message, "low team-a library/nginx false");
    }

    #[test]
    fn request_labels_are_bounded() {
        let metrics = Metrics::new();
        let subject = Subject::of(&json!({"operation": "HACK", "kind": {"kind": "MyCustomThing-1234"}}));
        metrics.record_review(subject.request_labels("allow"), Duration::ZERO);
        let text = metrics.encode();
        assert!(text.contains("operation=\"other\",kind=\"other\""), "{text}");
        assert!(!text.contains("MyCustomThing"));
    }

    #[test]
    fn unparseable_images_are_denied_natively() {
        let request = json!({"uid": "u", "namespace": "x", "kind": {"kind": "Pod"},
            "object": {"spec": {"containers": [{"name": "app", "image": "UPPER/App"}]}}});
        let outcome = reviewer(
            "package t\ndeny contains \"never\" if false\n",
            StaticNamespaces::default(),
        )
        .decide(&request);
        assert!(!outcome.decision.allowed);
        assert_eq!(outcome.decision.findings[0].policy, IMAGE_REFERENCE_CHECK);
        assert!(outcome.decision.findings[0].message.contains("\"app\""));
    }
}
