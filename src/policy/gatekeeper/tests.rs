use super::*;
use crate::results::Enforcement;
use serde_json::json;

const TEMPLATE_V0: &str = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sallowedrepos
spec:
  crd:
    spec:
      names:
        kind: K8sAllowedRepos
      validation:
        openAPIV3Schema:
          type: object
          properties:
            repos:
              type: array
              items:
                type: string
  targets:
    - target: admission.k8s.gatekeeper.sh
      libs:
        - |
          package lib.repos
          allowed(image, repos) { startswith(image, repos[_]) }
      rego: |
        package k8sallowedrepos
        import data.lib.repos

        violation[{"msg": msg, "details": {"image": c.image}}] {
          c := input.review.object.spec.containers[_]
          not repos.allowed(c.image, input.parameters.repos)
          msg := sprintf("container <%v> has an invalid image repo <%v>", [c.name, c.image])
        }
"#;

const TEMPLATE_V1: &str = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sverifiedimages
spec:
  crd:
    spec:
      names:
        kind: K8sVerifiedImages
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8sverifiedimages
              violation contains {"msg": msg} if {
                some image in input.portcullis.images
                image.verification.status != "verified"
                msg := sprintf("%s is not verified", [image.ref])
              }
"#;

fn documents(yaml: &[&str]) -> Vec<Document> {
    yaml.iter()
        .enumerate()
        .map(|(i, text)| Document {
            origin: format!("doc{i}.yaml"),
            value: yaml_serde::from_str(text).unwrap(),
        })
        .collect()
}

fn constraint(kind: &str, name: &str, spec: &str) -> String {
    format!("apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

fn pod(namespace: &str, image: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": namespace},
           "spec": {"containers": [{"name": "app", "image": image}]}})
}

/// The results for `request` as serde's values; the same request read into the engine's
/// values (as the webhook reads a body) must give the same results.
fn evaluate(set: &GatekeeperSet, request: &Value, facts: &Value) -> Vec<PolicyResult> {
    let labels = BTreeMap::new();
    let context = Context {
        namespace_labels: Some(&labels),
        facts,
        namespace_object: Value::Null,
        deadline: None,
    };
    let read = crate::policy::rego::to_regorus(request).unwrap();
    let without_time = |results: Vec<PolicyResult>| -> Vec<PolicyResult> {
        let zero = |r: PolicyResult| PolicyResult {
            duration: Duration::ZERO,
            ..r
        };
        results.into_iter().map(zero).collect()
    };
    let results = set.evaluate(Request::Json(request), &context);
    let engine = set.evaluate(Request::Engine(&read), &context);
    assert_eq!(without_time(engine), without_time(results.clone()), "{request}");
    results
}

#[test]
fn a_v0_template_with_libs_finds_violations() {
    let only_acme = constraint(
        "K8sAllowedRepos",
        "only-acme",
        "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n    excludedNamespaces: [\"kube-*\"]\n  parameters:\n    repos: [\"acme/\"]\n",
    );
    let set = GatekeeperSet::build(&documents(&[TEMPLATE_V0, &only_acme]), Duration::from_secs(1)).unwrap();
    let bad = review::synthetic(&pod("team-a", "evil/app:1"));
    let results = evaluate(&set, &bad, &json!({}));
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].id, "K8sAllowedRepos/only-acme");
    assert_eq!(
        results[0].deny,
        ["container <app> has an invalid image repo <evil/app:1>"]
    );
    assert_eq!(results[0].enforcement, Some(Enforcement::Deny));
    let good = review::synthetic(&pod("team-a", "acme/app:1"));
    assert!(evaluate(&set, &good, &json!({}))[0].deny.is_empty());
    // Excluded namespaces and other kinds are not evaluated at all.
    assert!(evaluate(&set, &review::synthetic(&pod("kube-system", "evil/x")), &json!({})).is_empty());
}

#[test]
fn a_delete_shows_the_old_object_as_the_object() {
    let only_acme = constraint(
        "K8sAllowedRepos",
        "only-acme",
        "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n  parameters:\n    repos: [\"acme/\"]\n",
    );
    let set = GatekeeperSet::build(&documents(&[TEMPLATE_V0, &only_acme]), Duration::from_secs(1)).unwrap();
    let mut delete = review::synthetic(&pod("team-a", "evil/app:1"));
    delete["operation"] = json!("DELETE");
    delete["oldObject"] = delete["object"].take();
    let results = evaluate(&set, &delete, &json!({}));
    assert_eq!(
        results[0].deny,
        ["container <app> has an invalid image repo <evil/app:1>"]
    );
}

#[test]
fn a_v1_template_reads_portcullis_facts() {
    let warn = constraint("K8sVerifiedImages", "verified", "  enforcementAction: warn\n");
    let set = GatekeeperSet::build(&documents(&[TEMPLATE_V1, &warn]), Duration::from_secs(1)).unwrap();
    let facts = json!({"images": [{"ref": "acme/app:1", "verification": {"status": "unsigned"}}]});
    let results = evaluate(&set, &review::synthetic(&pod("a", "acme/app:1")), &facts);
    assert_eq!(results[0].deny, ["acme/app:1 is not verified"]);
    assert_eq!(results[0].enforcement, Some(Enforcement::Warn));
}

#[test]
fn every_load_problem_is_reported() {
    let bad_params = constraint("K8sAllowedRepos", "bad", "  parameters:\n    repos: \"acme/\"\n");
    let orphan = constraint("K8sNothing", "x", "  parameters: {}\n");
    let broken = TEMPLATE_V1.replace("violation contains", "violation contains if {");
    let err = GatekeeperSet::build(
        &documents(&[TEMPLATE_V0, &bad_params, &orphan, &broken]),
        Duration::from_secs(1),
    )
    .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.problems.len(), 3, "{text}");
    assert!(err.invalid_parameters);
    assert!(
        text.contains("doc1.yaml: constraint K8sAllowedRepos/bad: spec.parameters.repos: must be an array"),
        "{text}"
    );
    assert!(
        text.contains("doc2.yaml: constraint kind \"K8sNothing\" has no ConstraintTemplate"),
        "{text}"
    );
    assert!(text.contains("doc3.yaml#k8sverifiedimages"), "{text}");
}

#[test]
fn a_template_without_violation_is_refused() {
    let template = TEMPLATE_V0.replace("violation[", "other[");
    let err = GatekeeperSet::build(&documents(&[&template]), Duration::from_secs(1)).unwrap_err();
    assert!(err.to_string().contains("defines no violation rule"), "{err}");
}

#[test]
fn inventory_is_data_inventory() {
    let template = r#"
apiVersion: templates.gatekeeper.sh/v1beta1
kind: ConstraintTemplate
metadata:
  name: k8suniquename
spec:
  crd:
    spec:
      names:
        kind: K8sUniqueName
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8suniquename
        violation[{"msg": "taken"}] {
          data.inventory.namespace[ns][_]["Pod"][input.review.object.metadata.name]
          ns != input.review.object.metadata.namespace
        }
"#;
    let set = GatekeeperSet::build(
        &documents(&[template, &constraint("K8sUniqueName", "u", "  parameters: {}\n")]),
        Duration::from_secs(1),
    )
    .unwrap();
    let request = review::synthetic(&pod("a", "x"));
    assert!(evaluate(&set, &request, &json!({}))[0].deny.is_empty());
    let with = set
        .with_inventory(&Inventory::new(&review::inventory(&[pod("b", "y")])).unwrap())
        .unwrap();
    assert_eq!(evaluate(&with, &request, &json!({}))[0].deny, ["taken"]);
}
