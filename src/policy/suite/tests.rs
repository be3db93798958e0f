use super::*;

const TEMPLATE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sdenyname
spec:
  crd:
    spec:
      names:
        kind: K8sDenyName
      validation:
        openAPIV3Schema:
          type: object
          properties:
            names:
              type: array
              items:
                type: string
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sdenyname
        violation[{"msg": msg}] {
          input.review.object.metadata.name == input.parameters.names[_]
          msg := sprintf("name %v is taken (operation %q)", [input.review.object.metadata.name, input.review.operation])
        }
        violation[{"msg": "also in inventory"}] {
          data.inventory.namespace[_]["v1"]["Pod"][input.review.object.metadata.name]
        }
"#;

const SUITE: &str = r#"kind: Suite
apiVersion: test.gatekeeper.sh/v1alpha1
metadata:
  name: demo
tests:
- name: deny-name
  template: template.yaml
  constraint: constraint.yaml
  cases:
  - name: allowed
    object: ok.yaml
    assertions:
    - violations: no
  - name: denied
    object: bad.yaml
    assertions:
    - violations: 1
    - message: "taken \\(operation \"\"\\)"
  - name: review-as-is
    object: review.yaml
    assertions:
    - violations: yes
      message: operation "DELETE"
  - name: inventory
    object: ok.yaml
    inventory: [inventory.yaml]
    assertions:
    - violations: 1
      message: inventory
  - name: wrong-expectation
    object: bad.yaml
    assertions:
    - violations: no
- name: bad-parameters
  template: template.yaml
  constraint: invalid.yaml
  invalid: true
"#;

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn pod(name: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: a\n")
}

#[test]
fn suites_run_case_by_case() {
    let dir = tempfile::tempdir().unwrap();
    let constraint = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sDenyName\nmetadata:\n  name: no-evil\nspec:\n  parameters:\n    names: [evil]\n";
    let invalid = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sDenyName\nmetadata:\n  name: bad\nspec:\n  parameters:\n    names: evil\n";
    let review = "apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\nrequest:\n  uid: x\n  operation: DELETE\n  kind: {group: '', version: v1, kind: Pod}\n  namespace: a\n  oldObject:\n    apiVersion: v1\n    kind: Pod\n    metadata: {name: evil, namespace: a}\n";
    let (ok, bad, other) = (pod("good"), pod("evil"), pod("good"));
    let other = other.replace("namespace: a", "namespace: b");
    write(
        dir.path(),
        &[
            ("suite.yaml", SUITE),
            ("template.yaml", TEMPLATE),
            ("constraint.yaml", constraint),
            ("invalid.yaml", invalid),
            ("ok.yaml", &ok),
            ("bad.yaml", &bad),
            ("review.yaml", review),
            ("inventory.yaml", &other),
            ("unrelated.yaml", "kind: Suite\n"),
        ],
    );
    let suites = find(&[dir.path().to_path_buf()]);
    assert_eq!(suites, [dir.path().join("suite.yaml")]);
    let results = run(&suites[0], Duration::from_secs(1));
    let outcome: Vec<(&str, bool)> = results
        .iter()
        .map(|r| (r.name.rsplit(": ").next().unwrap(), r.passed))
        .collect();
    assert_eq!(
        outcome,
        [
            ("deny-name/allowed", true),
            ("deny-name/denied", true),
            ("deny-name/review-as-is", true),
            ("deny-name/inventory", true),
            ("deny-name/wrong-expectation", false),
            ("bad-parameters (invalid constraint)", true),
        ]
    );
    let detail = results[4].detail.as_deref().unwrap();
    assert!(detail.contains("assertion 1: 1 violations, want none"), "{detail}");
}

#[test]
fn an_unreadable_suite_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[(
            "suite.yaml",
            "kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests: [\n",
        )],
    );
    let suites = find(&[dir.path().to_path_buf()]);
    assert_eq!(suites.len(), 1);
    let results = run(&suites[0], Duration::from_secs(1));
    assert!(!results[0].passed);
    assert!(
        results[0]
            .detail
            .as_deref()
            .unwrap()
            .starts_with("cannot read the suite"),
        "{results:?}"
    );
}

#[test]
fn a_broken_test_fails_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[(
            "suite.yaml",
            "kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests:\n- name: t\n  template: missing.yaml\n  constraint: c.yaml\n  cases: []\n",
        )],
    );
    let results = run(&dir.path().join("suite.yaml"), Duration::from_secs(1));
    assert_eq!(results.len(), 1);
    assert!(!results[0].passed);
    assert!(
        results[0].detail.as_deref().unwrap().contains("missing.yaml"),
        "{results:?}"
    );
}

#[test]
fn assertions() {
    let messages = ["container a is bad".to_string(), "initContainer b is bad".to_string()];
    let assertion = |violations: Option<Value>, message: Option<&str>| Assertion {
        violations,
        message: message.map(str::to_string),
    };
    assert!(check(&assertion(None, None), &messages).is_ok());
    assert!(check(&assertion(Some(Value::from(2)), None), &messages).is_ok());
    assert!(check(&assertion(Some(Value::from(1)), Some("^container")), &messages).is_ok());
    assert!(check(&assertion(Some(Value::from(2)), Some("is bad")), &messages).is_ok());
    assert!(check(&assertion(Some(Value::from(1)), Some("container")), &messages).is_ok());
    assert!(check(&assertion(Some(Value::from("no")), Some("ephemeral")), &messages).is_ok());
    assert!(check(&assertion(Some(Value::from("yes")), Some("ephemeral")), &messages).is_err());
    assert!(check(&assertion(Some(Value::from("no")), None), &[]).is_ok());
    assert!(check(&assertion(Some(Value::from("maybe")), None), &messages).is_err());
    assert!(check(&assertion(None, Some("(")), &messages).is_err());
}

#[test]
fn a_pass_through_an_evaluation_error_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // A violation whose msg is not a string makes the evaluation fail.
    let template = TEMPLATE.replace(
        "violation[{\"msg\": \"also in inventory\"}] {",
        "violation[{\"msg\": 3}] {\n          input.review.object.metadata.name == \"evil\"\n        }\n        violation[{\"msg\": \"unused\"}] {\n          false",
    );
    let constraint = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sDenyName\nmetadata:\n  name: n\nspec:\n  parameters:\n    names: []\n";
    let suite = "kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests:\n- name: t\n  template: template.yaml\n  constraint: constraint.yaml\n  cases:\n  - name: c\n    object: bad.yaml\n    assertions:\n    - violations: 1\n";
    write(
        dir.path(),
        &[
            ("suite.yaml", suite),
            ("template.yaml", &template),
            ("constraint.yaml", constraint),
            ("bad.yaml", &pod("evil")),
        ],
    );
    let results = run(&dir.path().join("suite.yaml"), Duration::from_secs(1));
    assert!(results[0].passed, "{results:?}");
    let note = results[0].detail.as_deref().unwrap();
    assert!(note.starts_with("passed through an evaluation error"), "{note}");
}
