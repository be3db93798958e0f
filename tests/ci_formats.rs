//! `check`'s CI outputs read by the readers CI systems use: the JUnit XML through `junitparser`
//! (PyPI), the SARIF through Microsoft's SARIF validator (`@microsoft/sarif-multitool`, npm),
//! both installed by scripts/tools.sh.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use common::lab::{run, tool};

const DEV_CONFIG: &str = "examples/config/dev.yaml";
const MANIFESTS: &str = "tests/fixtures/manifests";

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config", DEV_CONFIG])
        .args(args)
        .arg(MANIFESTS)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PORTCULLIS_CONFIG")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap()
}

/// The results of `check --output json` on the fixtures: the reference the others must match.
fn json_results() -> Vec<Value> {
    let output = check(&["--output", "json"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    report["results"].as_array().unwrap().clone()
}

/// What junitparser reads of a JUnit file: the totals and every case.
const READ_JUNIT: &str = r#"
import json, sys
from junitparser import JUnitXml
xml = JUnitXml.fromfile(sys.argv[1])
cases = []
for suite in xml:
    for case in suite:
        cases.append({
            "suite": suite.name,
            "classname": case.classname,
            "name": case.name,
            "results": [type(r).__name__ for r in case.result],
            "messages": [r.message for r in case.result],
            "out": case.system_out,
        })
print(json.dumps({"tests": xml.tests, "failures": xml.failures, "errors": xml.errors, "cases": cases}))
"#;

#[test]
fn junit_is_read_by_junitparser_a_case_per_object_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.xml");
    let output = check(&["--output", "junit", "--output-file", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    // The text goes to the log meanwhile.
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("deny Pod team-a/debug-shell pods.host_path: "), "{text}");

    let read = Command::new(tool("junitparser"))
        .args(["-c", READ_JUNIT])
        .arg(&file)
        .output()
        .unwrap();
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let junit: Value = serde_json::from_slice(&read.stdout).unwrap();
    let cases = junit["cases"].as_array().unwrap();

    let results = json_results();
    let expected_cases: usize = results
        .iter()
        .map(|r| {
            let field = |key: &str| r[key].as_str().unwrap();
            let object = match field("namespace").is_empty() || field("kind") == "Namespace" {
                true => format!("{} {}", field("kind"), field("name")),
                false => format!("{} {}/{}", field("kind"), field("namespace"), field("name")),
            };
            // An object is known by its file (the suite) and name (the class name).
            let of_object: Vec<&Value> = cases
                .iter()
                .filter(|c| c["classname"] == object.as_str() && c["suite"] == r["location"]["file"])
                .collect();
            assert!(!of_object.is_empty(), "no cases for {object}");
            // Each denial is the failure of its policy's case, with its message.
            for finding in r["findings"].as_array().unwrap() {
                let case = of_object
                    .iter()
                    .find(|c| c["name"] == finding["policy"])
                    .unwrap_or_else(|| panic!("no case {} for {object}", finding["policy"]));
                let message = finding["message"].as_str().unwrap();
                match finding["action"].as_str().unwrap() {
                    "deny" => {
                        assert_eq!(case["results"], serde_json::json!(["Failure"]), "{case}");
                        assert!(case["messages"][0].as_str().unwrap().contains(message), "{case}");
                    }
                    action => {
                        assert_eq!(case["results"], serde_json::json!([]), "a {action} passes: {case}");
                        assert!(case["out"].as_str().unwrap().contains(message), "{case}");
                    }
                }
            }
            let denials = r["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["action"] == "deny")
                .count();
            let failed = of_object
                .iter()
                .filter(|c| c["results"] != serde_json::json!([]))
                .count();
            assert_eq!(failed, denials, "{object}: only its denials fail");
            of_object.len()
        })
        .sum();
    assert_eq!(cases.len(), expected_cases, "every case belongs to an object");
    assert_eq!(junit["tests"], cases.len());
    let denials = results
        .iter()
        .flat_map(|r| r["findings"].as_array().unwrap().iter())
        .filter(|f| f["action"] == "deny")
        .count();
    assert_eq!(junit["failures"], denials);
    assert_eq!(junit["errors"], 0);
}

#[test]
fn sarif_is_accepted_by_microsofts_validator_with_a_result_per_finding() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("check.sarif");
    let output = check(&["--output", "sarif", "--output-file", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));

    let validation = dir.path().join("validation.sarif");
    let validated = Command::new(tool("sarif-multitool"))
        .arg("validate")
        .arg(&file)
        .arg("--output")
        .arg(&validation)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
    assert!(validated.status.success(), "{said}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&validation).unwrap()).unwrap();
    let errors: Vec<&Value> = report["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["level"] == "error")
        .collect();
    assert!(errors.is_empty(), "the validator's errors: {errors:#?}\n{said}");

    let log: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let run = &log["runs"][0];
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let found = run["results"].as_array().unwrap();
    let results = json_results();
    let findings: Vec<(&Value, &Value)> = results
        .iter()
        .flat_map(|r| r["findings"].as_array().unwrap().iter().map(move |f| (r, f)))
        .collect();
    assert_eq!(found.len(), findings.len());
    for (sarif, (object, finding)) in found.iter().zip(&findings) {
        assert_eq!(sarif["ruleId"], finding["policy"]);
        let index = sarif["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index], finding["policy"].as_str().unwrap());
        let physical = &sarif["locations"][0]["physicalLocation"];
        assert_eq!(physical["artifactLocation"]["uri"], object["location"]["file"]);
        assert_eq!(physical["region"]["startLine"], object["location"]["line"]);
        assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(object["location"]["file"].as_str().unwrap())
            .is_file());
    }
}

#[test]
fn kustomize_output_is_annotated_on_the_source_files_line() {
    // The micro-app example as a pull request would change it: a hostPath volume added to its
    // Deployment, under a name prefix.
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("micro-app");
    common::copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/micro-app"), &app);
    let deployment = app.join("k8s/deployment.yaml");
    let text = std::fs::read_to_string(&deployment).unwrap();
    let text = format!(
        "# the app's Deployment\n{}\n      volumes:\n        - name: host\n          hostPath: {{path: /}}\n",
        text.trim_end()
    );
    std::fs::write(&deployment, text).unwrap();
    let kustomization = app.join("kustomization.yaml");
    let text = std::fs::read_to_string(&kustomization).unwrap();
    std::fs::write(&kustomization, format!("{text}namePrefix: shop-\n")).unwrap();

    let rendered = run(Command::new(tool("kubectl")).arg("kustomize").arg(&app));
    let manifests = dir.path().join("manifests.yaml");
    std::fs::write(&manifests, rendered).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "check",
            "--offline",
            "--config",
            "platform/portcullis.yaml",
            "--output",
            "github",
        ])
        .args(["--kustomize-dir", "."])
        .arg(&manifests)
        .arg("platform/namespace.yaml")
        .current_dir(&app)
        .env_remove("PORTCULLIS_CONFIG")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let annotations = String::from_utf8(output.stdout).unwrap();
    // Line 2 of k8s/deployment.yaml: the Deployment, after the comment the change added.
    let expected = "::error file=k8s/deployment.yaml,line=2,title=No hostPath volumes (pods.host_path)::Deployment where2eat/shop-where2eat: ";
    assert!(
        annotations.lines().any(|line| line.starts_with(expected)),
        "{expected}\n{annotations}"
    );
    assert!(!annotations.contains("manifests.yaml"), "{annotations}");
}
