//! Differential test: the default policy library evaluated by portcullis (regorus) and by real
//! OPA (built from the Go module proxy by `scripts/tools.sh`) on the same inputs must give the
//! same `deny` and `warn` messages, policy by policy, on both of portcullis's engines (the
//! bytecode VM and the interpreter).
//!
//! Inputs are generated: every review fixture (Pods and all workload kinds, clean and violating),
//! as portcullis builds its input, at each risk level, with the image facts replaced by each
//! verification outcome the image policies distinguish. OPA gets the same data document
//! (the library's `data.yaml` files and the config part) and evaluates every input in one run.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use common::inputs::inputs;
use common::lab::{run, tool};
use common::*;
use portcullis::policy::engine::PolicyKind;
use portcullis::policy::evaluator::{EngineChoice, EngineKind};
use portcullis::policy::{input, Source};

/// What a policy said: its deny and warn messages, sorted.
type Said = BTreeMap<String, (Vec<String>, Vec<String>)>;

#[test]
fn regorus_and_opa_agree_on_the_default_library() {
    let mut settings = settings(CONFIG);
    let source = Source::from_dirs(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")]);
    let policies = portcullis::admission::setup::load_policies(&source, &settings).unwrap();
    assert!(
        policies.policies().iter().all(|p| p.engine == EngineKind::Compiled),
        "{:?}",
        policies.policies()
    );
    settings.policy_engine = EngineChoice::Interpreter;
    let interpreted = portcullis::admission::setup::load_policies(&source, &settings).unwrap();
    assert!(interpreted
        .policies()
        .iter()
        .all(|p| p.engine == EngineKind::Interpreter));
    let natives: Vec<_> = policies
        .policies()
        .iter()
        .filter(|p| p.kind == PolicyKind::Native)
        .collect();
    assert!(natives.len() >= 12, "the default library: {natives:?}");
    let inputs = inputs();
    assert!(inputs.len() > 300, "{} inputs", inputs.len());

    // portcullis, on each engine
    let said = |set: &portcullis::policy::PolicySet| -> Vec<Said> {
        inputs
            .iter()
            .map(|(name, input)| {
                set.evaluate(input)
                    .into_iter()
                    .filter(|r| natives.iter().any(|p| p.id == r.id))
                    .map(|r| {
                        assert!(r.error.is_none(), "{name}: {} failed: {:?}", r.id, r.error);
                        let sorted = |violations: Vec<portcullis::results::Violation>| {
                            let mut messages: Vec<String> = violations.into_iter().map(|v| v.message).collect();
                            messages.sort();
                            messages
                        };
                        (r.id, (sorted(r.deny), sorted(r.warn)))
                    })
                    .collect()
            })
            .collect()
    };
    let engines = [("compiled", said(&policies)), ("interpreter", said(&interpreted))];

    // OPA: the library's modules, its data with the config part, the inputs, and a module that
    // evaluates every policy on every input.
    let dir = tempfile::tempdir().unwrap();
    let bundle = source.read().unwrap();
    for (index, module) in bundle.modules.iter().enumerate() {
        std::fs::write(dir.path().join(format!("module-{index}.rego")), &module.text).unwrap();
    }
    let mut data = bundle.data.clone();
    merge(
        &mut data,
        input::config_data(&settings.allowed_registries, settings.risk_default, false),
    );
    data["differential"] = json!({"inputs": inputs.iter().map(|(_, input)| input).collect::<Vec<_>>()});
    std::fs::write(dir.path().join("data.json"), data.to_string()).unwrap();
    let rule = |id: &str, name: &str, declared: bool| {
        if declared {
            format!("sort([m | some m in data.{id}.{name}])")
        } else {
            "[]".to_string()
        }
    };
    let fields: Vec<String> = natives
        .iter()
        .map(|p| {
            format!(
                "{:?}: [{}, {}]",
                p.id,
                rule(&p.id, "deny", p.has_deny),
                rule(&p.id, "warn", p.has_warn)
            )
        })
        .collect();
    std::fs::write(
        dir.path().join("differential.rego"),
        format!(
            "package differential\n\nresults := [said |\n\tsome one in data.differential.inputs\n\tsaid := evaluate with input as one\n]\n\nevaluate := {{{}}}\n",
            fields.join(", ")
        ),
    )
    .unwrap();
    let output = run(Command::new(tool("opa"))
        .args(["eval", "--format", "json", "--data"])
        .arg(dir.path())
        .arg("data.differential.results"));
    let output: Value = serde_json::from_str(&output).unwrap();
    let theirs = output["result"][0]["expressions"][0]["value"]
        .as_array()
        .unwrap_or_else(|| panic!("OPA gave no results: {output}"));
    assert_eq!(theirs.len(), inputs.len());

    let mut disagreements = Vec::new();
    let mut denials = 0;
    for (engine, ours) in &engines {
        for (((name, _), ours), theirs) in inputs.iter().zip(ours).zip(theirs) {
            for (id, (deny, warn)) in ours {
                let strings = |v: &Value| -> Vec<String> {
                    v.as_array()
                        .unwrap()
                        .iter()
                        .map(|m| m.as_str().unwrap().to_string())
                        .collect()
                };
                let (their_deny, their_warn) = (strings(&theirs[id][0]), strings(&theirs[id][1]));
                denials += deny.len();
                if *deny != their_deny || *warn != their_warn {
                    disagreements.push(format!(
                    "{name}: {id}: portcullis ({engine}) deny {deny:?} warn {warn:?}; OPA deny {their_deny:?} warn {their_warn:?}"
                ));
                }
            }
        }
    }
    eprintln!(
        "{} inputs x {} policies x 2 engines, {denials} denials, {} disagreements",
        inputs.len(),
        natives.len(),
        disagreements.len()
    );
    // The inputs must exercise the library, or agreement proves nothing.
    assert!(
        denials > 2 * inputs.len(),
        "only {denials} denials over {} inputs",
        inputs.len()
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Each default policy's METADATA annotation, as `opa inspect -a` reads it, is what portcullis
/// shows: the same title, description and remediation, and every default policy has all three.
#[test]
fn opa_reads_the_same_policy_metadata() {
    let settings = settings(CONFIG);
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let source = Source::from_dirs(std::slice::from_ref(&library));
    let policies = portcullis::admission::setup::load_policies(&source, &settings).unwrap();
    let inspected = run(Command::new(tool("opa"))
        .args(["inspect", "--annotations", "--format", "json"])
        .arg(&library));
    let inspected: Value = serde_json::from_str(&inspected).unwrap();
    let by_package: BTreeMap<String, &Value> = inspected["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["annotations"]["scope"] == "package")
        .map(|a| {
            let path: Vec<&str> = a["path"].as_array().unwrap()[1..]
                .iter()
                .map(|p| p["value"].as_str().unwrap())
                .collect();
            (path.join("."), &a["annotations"])
        })
        .collect();
    for policy in policies.policies().iter().filter(|p| p.kind == PolicyKind::Native) {
        let opa = by_package
            .get(&policy.id)
            .unwrap_or_else(|| panic!("opa finds no METADATA for {}", policy.id));
        let ours = &policy.metadata;
        assert!(
            ours.title.is_some() && ours.description.is_some() && ours.remediation.is_some(),
            "{}: {ours:?}",
            policy.id
        );
        assert_eq!(opa["title"].as_str(), ours.title.as_deref(), "{}", policy.id);
        assert_eq!(
            opa["description"].as_str(),
            ours.description.as_deref(),
            "{}",
            policy.id
        );
        assert_eq!(
            opa["custom"]["remediation"].as_str(),
            ours.remediation.as_deref(),
            "{}",
            policy.id
        );
    }
}
