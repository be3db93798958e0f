//! The compiled policy set: regorus, loaded and prepared once, cloned per evaluation.
//!
//! A native policy is a package that declares `deny` and/or `warn`; its package path (without
//! `data.`) is its id. Each policy is evaluated on its own so that one policy's error or timeout
//! denies with that policy's id and leaves the others' results intact.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::bundle::{Bundle, Module};
use super::gatekeeper::{self, GatekeeperSet};
use super::rego::{classify, configured_engine};
use crate::results::{EvalError, PolicyResult, Violation};

/// One policy of the set: a native package, or a Gatekeeper constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: String,
    pub has_deny: bool,
    pub has_warn: bool,
    pub kind: PolicyKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// A Rego package with `deny`/`warn`; its id is the package path.
    Native,
    /// A Gatekeeper constraint; its id is `<kind>/<name>`.
    Constraint,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Bundle(#[from] super::bundle::BundleError),
    #[error("{module}: {message}")]
    Compile { module: String, message: String },
    #[error("the policy library defines no policy (no package declares deny or warn, and there is no Gatekeeper constraint)")]
    NoPolicies,
    #[error(transparent)]
    Gatekeeper(#[from] gatekeeper::GatekeeperError),
    #[error("policy {id}: {message}")]
    Prepare { id: String, message: String },
}

/// A loaded, prepared policy set. Cheap to share: evaluation clones the prepared engine.
#[derive(Clone)]
pub struct PolicySet {
    engine: regorus::Engine,
    policies: Vec<Policy>,
    gatekeeper: GatekeeperSet,
    timeout: Duration,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet").field("policies", &self.policies).finish()
    }
}

/// Builds a regorus engine from modules and data, with the execution-time limit set.
pub fn new_engine(modules: &[&Module], data: &Value, timeout: Duration) -> Result<regorus::Engine, LoadError> {
    let mut engine = configured_engine(timeout);
    for module in modules {
        engine
            .add_policy(module.name.clone(), module.text.clone())
            .map_err(|e| LoadError::Compile {
                module: module.name.clone(),
                message: e.to_string(),
            })?;
    }
    let data = regorus::Value::from_json_str(&data.to_string()).map_err(|e| LoadError::Compile {
        module: "data".into(),
        message: e.to_string(),
    })?;
    engine.add_data(data).map_err(|e| LoadError::Compile {
        module: "data".into(),
        message: e.to_string(),
    })?;
    Ok(engine)
}

impl PolicySet {
    /// Compiles the bundle's modules (tests excluded) with `extra_data` merged in, finds the
    /// policies, and evaluates each once on an empty input so every clone starts prepared.
    pub fn build(bundle: &Bundle, extra_data: Value, timeout: Duration) -> Result<PolicySet, LoadError> {
        let mut data = bundle.data.clone();
        if let Value::Object(extra) = extra_data {
            for (key, value) in extra {
                super::bundle::insert_at(&mut data, &[key.as_str()], value, "portcullis config")?;
            }
        }
        let modules: Vec<&Module> = bundle.modules.iter().collect();
        let mut engine = new_engine(&modules, &data, timeout)?;
        let mut policies: Vec<Policy> = Vec::new();
        for component in engine.get_policy_package_components().map_err(|e| LoadError::Compile {
            module: "packages".into(),
            message: e.to_string(),
        })? {
            let declares = |rule: &str| {
                engine
                    .has_declared_rule_rooted_at(&component.source_file, rule)
                    .unwrap_or(false)
            };
            let (has_deny, has_warn) = (declares("deny"), declares("warn"));
            if !(has_deny || has_warn) {
                continue;
            }
            let id = component.components.join(".");
            // A package split over several files is one policy.
            match policies.iter_mut().find(|p| p.id == id) {
                Some(existing) => {
                    existing.has_deny |= has_deny;
                    existing.has_warn |= has_warn;
                }
                None => policies.push(Policy {
                    id,
                    has_deny,
                    has_warn,
                    kind: PolicyKind::Native,
                }),
            }
        }
        let gatekeeper = GatekeeperSet::build(&bundle.gatekeeper, timeout)?;
        if policies.is_empty() && gatekeeper.constraints().is_empty() {
            return Err(LoadError::NoPolicies);
        }
        policies.sort_by(|a, b| a.id.cmp(&b.id));
        engine.set_input(regorus::Value::new_object());
        for policy in &policies {
            for rule in policy.rules() {
                engine.eval_rule(rule).map_err(|e| LoadError::Prepare {
                    id: policy.id.clone(),
                    message: e.to_string(),
                })?;
            }
        }
        policies.extend(gatekeeper.constraints().iter().map(|c| Policy {
            id: c.id(),
            has_deny: true,
            has_warn: false,
            kind: PolicyKind::Constraint,
        }));
        Ok(PolicySet {
            engine,
            policies,
            gatekeeper,
            timeout,
        })
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The same set with `data.inventory` for its Gatekeeper templates (native policies don't
    /// see the inventory). CPU-bound: every template is prepared again.
    pub fn with_inventory(&self, inventory: &gatekeeper::Inventory) -> Result<PolicySet, gatekeeper::InventoryError> {
        Ok(PolicySet {
            gatekeeper: self.gatekeeper.with_inventory(inventory)?,
            ..self.clone()
        })
    }

    /// Evaluates every policy against `input`. Never fails: errors are reported per policy.
    pub fn evaluate(&self, input: &Value) -> Vec<PolicyResult> {
        let mut engine = self.engine.clone();
        let regorus_input = match regorus::Value::from_json_str(&input.to_string()) {
            Ok(value) => value,
            Err(e) => {
                let error = EvalError::Failed(format!("input could not be converted: {e}"));
                return self
                    .policies
                    .iter()
                    .map(|p| PolicyResult {
                        id: p.id.clone(),
                        deny: vec![],
                        warn: vec![],
                        error: Some(error.clone()),
                        duration: Duration::ZERO,
                        enforcement: None,
                    })
                    .collect();
            }
        };
        engine.set_input(regorus_input);
        let mut results: Vec<PolicyResult> = self
            .policies
            .iter()
            .filter(|policy| policy.kind == PolicyKind::Native)
            .map(|policy| self.evaluate_one(&mut engine, policy))
            .collect();
        if !self.gatekeeper.is_empty() {
            results.extend(self.evaluate_gatekeeper(input));
        }
        results
    }

    /// The Gatekeeper constraints, on the request of the native input document; the rest of
    /// that document (images, risk level, namespace) is their `input.portcullis`.
    fn evaluate_gatekeeper(&self, input: &Value) -> Vec<PolicyResult> {
        let request = input.get("request").unwrap_or(&Value::Null);
        let namespace = input
            .pointer("/namespace/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let labels: std::collections::BTreeMap<String, String> =
            gatekeeper::matcher::labels(input.pointer("/namespace/labels"));
        let facts = serde_json::json!({
            "images": input.get("images").cloned().unwrap_or(Value::Array(vec![])),
            "risk_level": input.get("risk_level").cloned().unwrap_or(Value::Null),
            "namespace": input.get("namespace").cloned().unwrap_or(Value::Null),
        });
        let namespace_object = if namespace.is_empty() {
            Value::Null
        } else {
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}})
        };
        self.gatekeeper.evaluate(
            request,
            &gatekeeper::Context {
                namespace_labels: Some(&labels),
                facts: &facts,
                namespace_object,
            },
        )
    }

    fn evaluate_one(&self, engine: &mut regorus::Engine, policy: &Policy) -> PolicyResult {
        let started = Instant::now();
        let mut result = PolicyResult {
            id: policy.id.clone(),
            deny: vec![],
            warn: vec![],
            error: None,
            duration: Duration::ZERO,
            enforcement: None,
        };
        for (rule, wanted) in [("deny", policy.has_deny), ("warn", policy.has_warn)] {
            if !wanted {
                continue;
            }
            let path = format!("data.{}.{rule}", policy.id);
            match engine
                .eval_rule(path)
                .map_err(|e| classify(e, self.timeout))
                .and_then(|v| messages(&v))
            {
                Ok(messages) if rule == "deny" => result.deny = messages,
                Ok(messages) => result.warn = messages,
                Err(error) => {
                    result.error = Some(error);
                    break;
                }
            }
        }
        result.duration = started.elapsed();
        result
    }
}

impl Policy {
    /// The rule paths to evaluate: `data.<id>.deny` and/or `data.<id>.warn`; none for a
    /// constraint, whose rule lives in its template's own engine.
    pub fn rules(&self) -> Vec<String> {
        let mut rules = Vec::new();
        if self.kind == PolicyKind::Constraint {
            return rules;
        }
        if self.has_deny {
            rules.push(format!("data.{}.deny", self.id));
        }
        if self.has_warn {
            rules.push(format!("data.{}.warn", self.id));
        }
        rules
    }
}

/// A `deny`/`warn` value: undefined (none), or a set/array of strings or objects with `msg`
/// (and optional `details`).
fn messages(value: &regorus::Value) -> Result<Vec<Violation>, EvalError> {
    if *value == regorus::Value::Undefined {
        return Ok(Vec::new());
    }
    let json: Value = serde_json::to_value(value).map_err(|e| EvalError::BadResult(e.to_string()))?;
    let Value::Array(items) = json else {
        return Err(EvalError::BadResult(truncate(&json.to_string())));
    };
    items
        .into_iter()
        .map(|item| Violation::from_element(item).map_err(|item| EvalError::BadResult(truncate(&item.to_string()))))
        .collect()
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Enforcement;
    use serde_json::json;

    fn bundle(modules: &[(&str, &str)]) -> Bundle {
        Bundle {
            modules: modules
                .iter()
                .map(|(n, t)| Module {
                    name: n.to_string(),
                    text: t.to_string(),
                })
                .collect(),
            tests: vec![],
            data: json!({}),
            gatekeeper: vec![],
        }
    }

    #[test]
    fn finds_policies_and_skips_helpers() {
        let set = PolicySet::build(
            &bundle(&[
                ("a.rego", "package a.one\ndeny contains \"x\" if input.bad\n"),
                ("b.rego", "package a.two\nwarn contains {\"msg\": \"w\"} if input.meh\n"),
                ("lib.rego", "package lib.helpers\nyes := true\n"),
            ]),
            json!({}),
            Duration::from_millis(500),
        )
        .unwrap();
        let ids: Vec<_> = set.policies().iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["a.one", "a.two"]);
        let results = set.evaluate(&json!({"bad": true, "meh": true}));
        assert_eq!(results[0].deny, ["x"]);
        assert_eq!(results[1].warn, ["w"]);
        let results = set.evaluate(&json!({}));
        assert!(results
            .iter()
            .all(|r| r.deny.is_empty() && r.warn.is_empty() && r.error.is_none()));
    }

    #[test]
    fn details_travel_with_their_message() {
        let set = PolicySet::build(
            &bundle(&[(
                "d.rego",
                "package d\ndeny contains {\"msg\": \"m\", \"details\": {\"n\": input.n}} if input.n\ndeny contains \"plain\" if input.n\n",
            )]),
            json!({}),
            Duration::from_millis(500),
        )
        .unwrap();
        let results = set.evaluate(&json!({"n": 3}));
        assert_eq!(
            results[0].deny,
            [
                Violation::new("plain"),
                Violation {
                    message: "m".into(),
                    details: Some(json!({"n": 3}))
                }
            ]
        );
    }

    #[test]
    fn a_library_without_policies_is_rejected() {
        let err = PolicySet::build(
            &bundle(&[("lib.rego", "package lib\nx := 1\n")]),
            json!({}),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, LoadError::NoPolicies));
    }

    #[test]
    fn syntax_errors_name_the_file() {
        let err = PolicySet::build(
            &bundle(&[("broken.rego", "package x\ndeny contains if {")]),
            json!({}),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("broken.rego"), "{err}");
    }

    #[test]
    fn a_failing_policy_reports_its_own_error() {
        let set = PolicySet::build(
            &bundle(&[
                ("bad.rego", "package bad\ndeny contains 1 if true\n"),
                ("good.rego", "package good\ndeny contains \"no\" if input.x\n"),
            ]),
            json!({}),
            Duration::from_millis(500),
        )
        .unwrap();
        let results = set.evaluate(&json!({"x": true}));
        assert!(matches!(results[0].error, Some(EvalError::BadResult(_))), "{results:?}");
        assert_eq!(results[1].deny, ["no"]);
    }

    #[test]
    fn runaway_policies_time_out() {
        let set = PolicySet::build(
            &bundle(&[(
                "slow.rego",
                "package slow\ndeny contains \"x\" if {\n  input.go\n  some i in numbers.range(1, 400)\n  some j in numbers.range(1, 400)\n  some k in numbers.range(1, 400)\n  i + j + k < 0\n}\n",
            )]),
            json!({}),
            Duration::from_millis(20),
        )
        .unwrap();
        let results = set.evaluate(&json!({"go": true}));
        assert_eq!(
            results[0].error,
            Some(EvalError::Timeout(Duration::from_millis(20))),
            "{results:?}"
        );
    }

    #[test]
    fn constraints_are_policies_beside_native_ones() {
        let template = "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {name: k8snolatest}\nspec:\n  crd: {spec: {names: {kind: K8sNoLatest}}}\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n      package k8snolatest\n      violation[{\"msg\": sprintf(\"%v in %v\", [c.image, input.portcullis.namespace.name])}] {\n        c := input.review.object.spec.containers[_]\n        endswith(c.image, \":latest\")\n      }\n";
        let constraint = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sNoLatest\nmetadata: {name: no-latest}\nspec: {enforcementAction: dryrun}\n";
        let mut b = bundle(&[("a.rego", "package a\ndeny contains \"x\" if input.bad\n")]);
        for (i, text) in [template, constraint].iter().enumerate() {
            b.gatekeeper.push(gatekeeper::Document {
                origin: format!("g{i}.yaml"),
                value: yaml_serde::from_str(text).unwrap(),
            });
        }
        let set = PolicySet::build(&b, json!({}), Duration::from_millis(500)).unwrap();
        let ids: Vec<_> = set.policies().iter().map(|p| (p.id.as_str(), p.kind)).collect();
        assert_eq!(
            ids,
            [
                ("a", PolicyKind::Native),
                ("K8sNoLatest/no-latest", PolicyKind::Constraint)
            ]
        );
        let input = json!({
            "request": {"namespace": "team-a", "operation": "CREATE", "object": {"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": "p", "namespace": "team-a"},
                        "spec": {"containers": [{"name": "c", "image": "nginx:latest"}]}}},
            "namespace": {"name": "team-a", "labels": {}}, "images": [], "risk_level": "high"
        });
        let results = set.evaluate(&input);
        assert_eq!(results.len(), 2);
        assert_eq!(results[1].deny, ["nginx:latest in team-a"]);
        assert_eq!(results[1].enforcement, Some(Enforcement::DryRun));
        // A library of constraints alone is a library.
        b.modules.clear();
        assert_eq!(
            PolicySet::build(&b, json!({}), Duration::from_millis(500))
                .unwrap()
                .policies()
                .len(),
            1
        );
    }

    #[test]
    fn extra_data_reaches_policies() {
        let set = PolicySet::build(
            &bundle(&[(
                "r.rego",
                "package r\ndeny contains r if { some r in data.portcullis.config.images.registries.allow }\n",
            )]),
            json!({"portcullis": {"config": {"images": {"registries": {"allow": ["ghcr.io/acme"]}}}}}),
            Duration::from_millis(500),
        )
        .unwrap();
        assert_eq!(set.evaluate(&json!({}))[0].deny, ["ghcr.io/acme"]);
    }
}
