//! The docs stay true: the input example in docs/policy-input.md is what portcullis builds for
//! its request, and the example policy there gives the documented result on it; the GitHub
//! annotations of docs/ci.md are what `check --output github` prints.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use portcullis::admission::Reviewer;
use portcullis::namespaces::StaticNamespaces;
use portcullis::policy::bundle::{Bundle, Module};
use portcullis::policy::PolicySet;
use portcullis::risk::RiskLevel;

/// The fenced block that follows `<!-- name -->` in `text`.
fn block<'a>(text: &'a str, name: &str) -> &'a str {
    let marker = format!("<!-- {name} -->");
    let after = &text[text.find(&marker).unwrap_or_else(|| panic!("{marker} missing")) + marker.len()..];
    let start = after.find("```").unwrap();
    let body = &after[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    &body[..body.find("```").unwrap()]
}

#[test]
fn policy_input_example_is_what_portcullis_builds() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/policy-input.md")).unwrap();
    let documented: Value = serde_json::from_str(block(&doc, "input-example")).unwrap();
    let namespace = documented["namespace"]["name"].as_str().unwrap().to_string();
    let labels: BTreeMap<String, String> = serde_json::from_value(documented["namespace"]["labels"].clone()).unwrap();
    let namespaces = Arc::new(StaticNamespaces(HashMap::from([(namespace, labels)])));

    let policy = Module {
        name: "example.rego".into(),
        text: block(&doc, "policy-example").into(),
    };
    let bundle = Bundle {
        modules: vec![policy],
        tests: vec![],
        data: serde_json::json!({}),
        gatekeeper: vec![],
    };
    let set = PolicySet::build(&bundle, serde_json::json!({}), Duration::from_secs(1)).unwrap();
    let reviewer = Reviewer::new(set.clone(), BTreeMap::new(), RiskLevel::High, namespaces);

    let built = reviewer.input(&documented["request"]);
    assert_eq!(
        built,
        documented,
        "docs/policy-input.md is out of date; portcullis builds:\n{}",
        serde_json::to_string_pretty(&built).unwrap()
    );

    let expected: Vec<String> = serde_json::from_str(block(&doc, "result-example")).unwrap();
    let results = set.evaluate(&built);
    let messages: Vec<&str> = results[0].deny.iter().map(|v| v.message.as_str()).collect();
    assert_eq!(messages, expected);
}

/// `portcullis check --config examples/config/dev.yaml ARGS...`'s stdout, which exits 1 (the
/// fixtures have denials).
fn check(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config", "examples/config/dev.yaml"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PORTCULLIS_CONFIG")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn ci_examples_are_what_check_prints() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ci.md")).unwrap();
    let github = check(&[
        "--output",
        "github",
        "tests/fixtures/manifests/bad/app.yaml",
        "tests/fixtures/manifests/risk/",
    ]);
    assert_eq!(github, block(&doc, "github-example"), "docs/ci.md is out of date");
    let markdown = check(&["--output", "markdown", "tests/fixtures/manifests/bad/app.yaml"]);
    assert_eq!(markdown, block(&doc, "markdown-example"), "docs/ci.md is out of date");
}
