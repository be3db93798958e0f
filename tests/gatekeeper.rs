//! Conformance with Gatekeeper: every gator suite of gatekeeper-library's `general` policies,
//! read in place from `../shared/conformance/gatekeeper-library`, run by portcullis and by
//! Gatekeeper's own `gator verify` (built by `scripts/tools.sh gator`) as the oracle.
//!
//! Every case must agree with its suite's expectation, except the known divergences of the
//! Rego engine listed in `KNOWN_DIVERGENCES` (and, with their cause, in
//! docs/gatekeeper-compatibility.md). The list is exact: a fixed divergence or a new one
//! fails this test until the list and the document are updated.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::gatekeeper_library;
use common::lab::tool;
use portcullis::policy::evaluator::{EngineChoice, EngineKind};
use portcullis::policy::gatekeeper::{Document, GatekeeperSet};
use portcullis::policy::suite;

/// How portcullis's run of a case compares with the suite's expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Agrees,
    /// The expectation holds only because an evaluation error counts as a violation.
    AgreesThroughError,
    Disagrees,
}

/// (suite directory, test, case, outcome, the construct regorus treats differently from OPA).
/// Empty since the engine patches (`patches/regorus-0.14.1.patch`, `tests/engine_patches.rs`):
/// every case agrees. The earlier divergences are in docs/gatekeeper-compatibility.md.
const KNOWN_DIVERGENCES: &[(&str, &str, &str, Outcome, &str)] = &[];

type Key = (String, String, String);

/// The suite's directory name, e.g. `allowedrepos` for `.../allowedrepos/suite.yaml`.
fn suite_name(path: &Path) -> String {
    path.parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// portcullis's outcome per case, with its reason when not a plain agreement.
fn portcullis_results(dir: &Path, choice: EngineChoice) -> BTreeMap<Key, (Outcome, String)> {
    let mut results = BTreeMap::new();
    for path in suite::find(&[dir.to_path_buf()]) {
        let prefix = format!("{}: ", path.display());
        for result in suite::run_on(&path, Duration::from_secs(5), choice) {
            let name = result.name.strip_prefix(&prefix).unwrap_or(&result.name);
            let (test, case) = name.split_once('/').unwrap_or((name, "(invalid constraint)"));
            let test = test.trim_end_matches(" (invalid constraint)");
            let outcome = match (result.passed, &result.detail) {
                (true, None) => Outcome::Agrees,
                (true, Some(_)) => Outcome::AgreesThroughError,
                (false, _) => Outcome::Disagrees,
            };
            let key = (suite_name(&path), test.to_string(), case.to_string());
            results.insert(key, (outcome, result.detail.unwrap_or_default()));
        }
    }
    results
}

/// The engine each template of the library runs on by default.
fn template_engines(dir: &Path) -> Vec<(String, EngineKind)> {
    let mut engines = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|n| n == "template.yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let document = Document {
                    origin: path.display().to_string(),
                    value: yaml_serde::from_str(&text).unwrap(),
                };
                let set = GatekeeperSet::build(&[document], Duration::from_secs(5)).unwrap();
                engines.extend(set.template_engines().into_iter().map(|(k, e)| (k.to_string(), e)));
            }
        }
    }
    engines
}

/// gator's verdict per case, from `gator verify -v`: cases are indented under their test, and
/// a suite's `ok`/`FAIL` line follows its tests. CEL is turned off so that gator evaluates the
/// same Rego code as portcullis for templates that carry both.
fn gator_results(dir: &Path) -> BTreeMap<Key, bool> {
    let output = Command::new(tool("gator"))
        .args(["verify", "-v", "--enable-k8s-native-validation=false"])
        // gator refuses paths with `..`; from inside the directory every path is plain.
        .current_dir(dir)
        .arg("./...")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut results = BTreeMap::new();
    let mut pending: Vec<(String, String, bool)> = Vec::new();
    let mut cases_of_test = 0;
    for line in stdout.lines() {
        let verdict = |rest: &str| rest.split('\t').next().unwrap_or_default().trim().to_string();
        if let Some(rest) = line.strip_prefix("    --- PASS: ") {
            pending.push((String::new(), verdict(rest), true));
            cases_of_test += 1;
        } else if let Some(rest) = line.strip_prefix("    --- FAIL: ") {
            pending.push((String::new(), verdict(rest), false));
            cases_of_test += 1;
        } else if let Some((passed, rest)) = line
            .strip_prefix("--- PASS: ")
            .map(|r| (true, r))
            .or_else(|| line.strip_prefix("--- FAIL: ").map(|r| (false, r)))
        {
            let test = verdict(rest);
            if cases_of_test == 0 {
                pending.push((test.clone(), "(invalid constraint)".into(), passed));
            }
            let start = pending.len() - cases_of_test.min(pending.len());
            for entry in &mut pending[start..] {
                entry.0 = test.clone();
            }
            cases_of_test = 0;
        } else if let Some(rest) = line.strip_prefix("ok\t").or_else(|| line.strip_prefix("FAIL\t")) {
            let path = rest.split('\t').next().unwrap_or_default();
            let suite = suite_name(Path::new(path.trim()));
            for (test, case, passed) in pending.drain(..) {
                results.insert((suite.clone(), test, case), passed);
            }
        }
    }
    assert!(
        !results.is_empty(),
        "gator verify printed no results:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    results
}

#[test]
fn gatekeeper_library_suites_agree_with_gator() {
    let dir = gatekeeper_library();
    let portcullis = portcullis_results(&dir, EngineChoice::Compiled);
    let gator = gator_results(&dir);
    // The interpreter agrees with the compiled path case by case, reasons included.
    assert_eq!(portcullis, portcullis_results(&dir, EngineChoice::Interpreter));
    let engines = template_engines(&dir);
    let interpreted: Vec<_> = engines.iter().filter(|(_, e)| *e != EngineKind::Compiled).collect();
    println!(
        "{} templates, {} on the interpreter: {interpreted:?}",
        engines.len(),
        interpreted.len()
    );
    assert!(engines.len() >= 30, "{engines:?}");
    assert!(
        interpreted.is_empty(),
        "every template of gatekeeper-library compiles: {interpreted:?}"
    );

    let gator_failures: Vec<&Key> = gator.iter().filter(|(_, passed)| !**passed).map(|(k, _)| k).collect();
    assert!(gator_failures.is_empty(), "the oracle itself fails: {gator_failures:?}");
    let ours: BTreeSet<&Key> = portcullis.keys().collect();
    let theirs: BTreeSet<&Key> = gator.keys().collect();
    assert_eq!(
        ours.symmetric_difference(&theirs).collect::<Vec<_>>(),
        Vec::<&&Key>::new(),
        "portcullis and gator ran different cases"
    );

    // The table: cases per suite, and how each side fares.
    let mut table: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for (key, (outcome, _)) in &portcullis {
        let row = table.entry(key.0.as_str()).or_default();
        row[0] += 1;
        row[1] += usize::from(gator[key]);
        row[2] += usize::from(*outcome == Outcome::Agrees);
        row[3] += usize::from(*outcome == Outcome::AgreesThroughError);
    }
    println!("| suite | cases | gator agrees | portcullis agrees | portcullis agrees only through an error |");
    println!("|---|---|---|---|---|");
    let mut total = [0; 4];
    for (suite, row) in &table {
        println!("| {suite} | {} | {} | {} | {} |", row[0], row[1], row[2], row[3]);
        for (sum, n) in total.iter_mut().zip(row) {
            *sum += n;
        }
    }
    println!(
        "| **{} suites** | **{}** | **{}** | **{}** | **{}** |",
        table.len(),
        total[0],
        total[1],
        total[2],
        total[3]
    );

    let divergent: Vec<(&str, &str, &str, Outcome)> = portcullis
        .iter()
        .filter(|(_, (outcome, _))| *outcome != Outcome::Agrees)
        .map(|((suite, test, case), (outcome, reason))| {
            println!("divergent ({outcome:?}): {suite} {test}/{case}: {reason}");
            (suite.as_str(), test.as_str(), case.as_str(), *outcome)
        })
        .collect();
    let known: Vec<(&str, &str, &str, Outcome)> = KNOWN_DIVERGENCES
        .iter()
        .map(|(s, t, c, o, _)| (*s, *t, *c, *o))
        .collect();
    assert_eq!(
        divergent, known,
        "the cases where portcullis differs from gator changed: update KNOWN_DIVERGENCES and \
         docs/gatekeeper-compatibility.md"
    );
}

#[test]
fn the_cli_counts_suite_cases_with_unit_tests() {
    let dir = gatekeeper_library();
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("test")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let passed = lines.iter().filter(|l| l.starts_with("PASS ")).count();
    let failed = lines.iter().filter(|l| l.starts_with("FAIL ")).count();
    let disagreeing = KNOWN_DIVERGENCES.iter().filter(|d| d.3 == Outcome::Disagrees).count();
    assert_eq!(failed, disagreeing, "{stdout}");
    assert!(passed > 100, "{stdout}");
    assert_eq!(
        lines.last(),
        Some(&format!("{passed} passed, {failed} failed").as_str())
    );
    // The exit status says whether some case failed.
    assert_eq!(output.status.code(), Some(i32::from(failed > 0)), "{stdout}");
}

const REPOS_TEMPLATE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
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
      rego: |
        package k8sallowedrepos
        violation[{"msg": msg, "details": {"container": container.name, "allowed": input.parameters.repos}}] {
          container := input.review.object.spec.containers[_]
          not strings.any_prefix_match(container.image, input.parameters.repos)
          msg := sprintf("container <%v> has an invalid image repo <%v>", [container.name, container.image])
        }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sAllowedRepos
metadata:
  name: prod-only-acme
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [Pod]}]
    namespaceSelector:
      matchLabels: {env: prod}
  parameters:
    repos: ["acme/"]
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sAllowedRepos
metadata:
  name: dev-warn
spec:
  enforcementAction: warn
  match:
    namespaces: ["dev*"]
  parameters:
    repos: ["acme/"]
"#;

#[test]
fn check_enforces_constraints_with_their_match_and_action() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("repos.yaml"), REPOS_TEMPLATE).unwrap();
    let manifests = dir.path().join("app.yaml");
    let pod = |ns: &str, name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  containers: [{{name: app, image: evil/app:1}}]\n"
        )
    };
    std::fs::write(
        &manifests,
        [
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod, labels: {env: prod}}\n".to_string(),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: dev-1}\n".to_string(),
            pod("prod", "p1"),
            pod("dev-1", "p2"),
            pod("staging", "p3"),
        ]
        .join("---\n"),
    )
    .unwrap();
    let check_with = |output: &str| {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["check", "--output", output, "--policies"])
            .arg(&policies)
            .arg(&manifests)
            .output()
            .unwrap()
    };
    let check = || check_with("text");
    let output = check();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .map(|l| l.split_once(": ").map_or(l, |(_, rest)| rest))
        .collect();
    assert_eq!(
        lines,
        [
            "allow Namespace prod",
            "allow Namespace dev-1",
            "deny Pod prod/p1 K8sAllowedRepos/prod-only-acme: container <app> has an invalid image repo <evil/app:1>",
            "warn Pod dev-1/p2 K8sAllowedRepos/dev-warn: container <app> has an invalid image repo <evil/app:1>",
            "allow Pod staging/p3",
        ],
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1));
    // A violation's details are in the JSON output (only there: messages are what people read).
    let json: serde_json::Value = serde_json::from_slice(&check_with("json").stdout).unwrap();
    let finding = &json["results"][2]["findings"][0];
    assert_eq!(finding["policy"], "K8sAllowedRepos/prod-only-acme", "{json}");
    assert_eq!(
        finding["details"],
        serde_json::json!({"container": "app", "allowed": ["acme/"]}),
        "{json}"
    );
    assert_eq!(
        json["results"][3]["findings"][0]["details"]["container"], "app",
        "{json}"
    );

    // A constraint whose parameters do not fit the schema stops the load, naming the field.
    std::fs::write(
        policies.join("repos.yaml"),
        REPOS_TEMPLATE.replace("repos: [\"acme/\"]\n---", "repos: \"acme/\"\n---"),
    )
    .unwrap();
    let output = check();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("constraint K8sAllowedRepos/prod-only-acme: spec.parameters.repos: must be an array"),
        "{stderr}"
    );
}

#[test]
fn check_sees_the_inventory_it_is_given() {
    // gatekeeper-library's unique-ingress-host, read in place (its other files are not policies).
    let policies = gatekeeper_library().join("uniqueingresshost");
    let dir = tempfile::tempdir().unwrap();
    let ingress = |namespace: &str, name: &str| {
        format!(
            "{{apiVersion: networking.k8s.io/v1, kind: Ingress, metadata: {{name: {name}, namespace: {namespace}}}, \
             spec: {{rules: [{{host: shop.example.com}}]}}}}"
        )
    };
    // As `kubectl get ingress -A -o yaml` writes it: a List.
    let exported = dir.path().join("cluster.yaml");
    std::fs::write(
        &exported,
        format!("apiVersion: v1\nkind: List\nitems:\n- {}\n", ingress("team-a", "shop")),
    )
    .unwrap();
    let manifest = dir.path().join("app.yaml");
    std::fs::write(&manifest, ingress("team-b", "copy")).unwrap();
    let check = |inventory: &[&Path]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        command.arg("check").arg("--policies").arg(&policies);
        for path in inventory {
            command.arg("--inventory").arg(path);
        }
        command.arg(&manifest).output().unwrap()
    };

    let output = check(&[]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let output = check(&[&exported]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        stdout.contains(
            "deny Ingress team-b/copy K8sUniqueIngressHost/unique-ingress-host: ingress host conflicts with an existing ingress <shop.example.com>"
        ),
        "{stdout}"
    );
    let output = check(&[&dir.path().join("missing.yaml")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--inventory: cannot read the inputs"), "{stderr}");
}
