//! gator suites (`kind: Suite`, `test.gatekeeper.sh/v1alpha1`) for `portcullis test`.
//!
//! A suite lists tests; each names a ConstraintTemplate and a Constraint file (relative to the
//! suite) and cases. A case reviews one object file: a plain object becomes the review gator
//! builds (`review::synthetic`), an AdmissionReview is taken as it is. Its inventory files
//! become `data.inventory`. Every assertion must hold: `violations` (an exact count, `yes` for
//! at least one, `no` for none; `yes` when absent) among the violations whose message matches
//! the unanchored regular expression `message` (all when absent). A test marked `invalid`
//! passes when its constraint is refused for its parameters. As in Gatekeeper, a constraint
//! that cannot be evaluated yields one violation whose message is the error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::evaluator::EngineChoice;
use super::gatekeeper::{review, Context, Document, GatekeeperSet, Inventory};
use super::input::Request;
use super::test_result::TestResult;
use crate::results::EvalError;

#[derive(Debug, Deserialize)]
struct Suite {
    #[serde(default)]
    tests: Vec<Test>,
    #[serde(default)]
    skip: bool,
}

#[derive(Debug, Deserialize)]
struct Test {
    name: String,
    #[serde(default)]
    template: String,
    #[serde(default)]
    constraint: String,
    #[serde(default)]
    cases: Vec<Case>,
    #[serde(default)]
    invalid: bool,
    #[serde(default)]
    skip: bool,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    object: String,
    #[serde(default)]
    inventory: Vec<String>,
    #[serde(default)]
    assertions: Vec<Assertion>,
    #[serde(default)]
    skip: bool,
}

#[derive(Debug, Deserialize)]
struct Assertion {
    violations: Option<Value>,
    message: Option<String>,
}

/// Every suite file under `dirs`, in path order: YAML files whose document is a gator Suite.
pub fn find(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in dirs {
        collect(dir, &mut files);
    }
    files.sort();
    files.retain(|path| is_suite(path));
    files
}

/// A gator Suite, or a file that names Suite's API group and kind but does not parse: that one
/// is kept so that running it reports why, rather than being skipped in silence.
fn is_suite(path: &Path) -> bool {
    let Some(text) = std::fs::read_to_string(path).ok() else {
        return false;
    };
    if !(text.contains("test.gatekeeper.sh") && text.contains("Suite")) {
        return false;
    }
    match yaml_serde::from_str::<Value>(&text) {
        Ok(doc) => {
            doc.get("kind").and_then(Value::as_str) == Some("Suite")
                && doc
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.starts_with("test.gatekeeper.sh/"))
        }
        Err(_) => true,
    }
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    if dir.is_file() {
        files.push(dir.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(&path, files);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            files.push(path);
        }
    }
}

/// Runs one suite: one result per case (per test for an `invalid` test). A suite or test that
/// cannot be read is one failing result naming it.
pub fn run(path: &Path, timeout: Duration) -> Vec<TestResult> {
    run_on(path, timeout, EngineChoice::default())
}

/// [`run`] with the templates on the engines `choice` allows.
pub fn run_on(path: &Path, timeout: Duration, choice: EngineChoice) -> Vec<TestResult> {
    let name = path.display().to_string();
    let started = Instant::now();
    let suite: Suite = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| yaml_serde::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(suite) => suite,
        Err(error) => return vec![failure(name, format!("cannot read the suite: {error}"), started)],
    };
    if suite.skip {
        return Vec::new();
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut results = Vec::new();
    for test in suite.tests.iter().filter(|t| !t.skip) {
        results.extend(run_test(&name, dir, test, timeout, choice));
    }
    results
}

fn run_test(suite: &str, dir: &Path, test: &Test, timeout: Duration, choice: EngineChoice) -> Vec<TestResult> {
    let started = Instant::now();
    let test_name = format!("{suite}: {}", test.name);
    let loaded = read_documents(dir, &test.template)
        .and_then(|mut documents| {
            documents.extend(read_documents(dir, &test.constraint)?);
            Ok(documents)
        })
        .map(|documents| GatekeeperSet::build_on(&documents, timeout, choice));
    let set = match (loaded, test.invalid) {
        (Err(error), _) => return vec![failure(test_name, error, started)],
        (Ok(Err(error)), true) => {
            let detail = (!error.invalid_parameters).then(|| format!("refused, but not for its parameters: {error}"));
            return vec![TestResult {
                name: format!("{test_name} (invalid constraint)"),
                passed: detail.is_none(),
                detail,
                duration: started.elapsed(),
            }];
        }
        (Ok(Ok(_)), true) => {
            return vec![failure(
                format!("{test_name} (invalid constraint)"),
                "the constraint was accepted, but the test expects it to be refused".into(),
                started,
            )]
        }
        // Each case fails with the reason, so case counts stay comparable with gator's.
        (Ok(Err(error)), false) => {
            let cases: Vec<&Case> = test.cases.iter().filter(|c| !c.skip).collect();
            if cases.is_empty() {
                return vec![failure(test_name, error.to_string(), started)];
            }
            return cases
                .into_iter()
                .map(|case| failure(format!("{test_name}/{}", case.name), error.to_string(), started))
                .collect();
        }
        (Ok(Ok(set)), false) => set,
    };
    if set.constraints().len() != 1 {
        let message = format!("expected one constraint, found {}", set.constraints().len());
        return vec![failure(test_name, message, started)];
    }
    test.cases
        .iter()
        .filter(|c| !c.skip)
        .map(|case| {
            let started = Instant::now();
            let name = format!("{test_name}/{}", case.name);
            match run_case(dir, &set, case) {
                Ok(note) => TestResult {
                    name,
                    passed: true,
                    detail: note,
                    duration: started.elapsed(),
                },
                Err(detail) => failure(name, detail, started),
            }
        })
        .collect()
}

/// `Ok` with a note when the case passed only because an evaluation error counted as a
/// violation: the expectation holds, but perhaps not for the reason the suite meant.
fn run_case(dir: &Path, set: &GatekeeperSet, case: &Case) -> Result<Option<String>, String> {
    if case.assertions.is_empty() {
        return Err("a case needs at least one assertion".into());
    }
    let objects = read_objects(dir, &case.object)?;
    let [object] = objects.as_slice() else {
        return Err(format!(
            "{} must hold exactly one object, not {}",
            case.object,
            objects.len()
        ));
    };
    let request = to_request(object)?;
    let mut inventory = Vec::new();
    for file in &case.inventory {
        inventory.extend(read_objects(dir, file)?);
    }
    let namespace = request.get("namespace").and_then(Value::as_str).unwrap_or_default();
    let namespace_labels: Option<BTreeMap<String, String>> = inventory
        .iter()
        .find(|o| {
            o.get("kind").and_then(Value::as_str) == Some("Namespace")
                && o.pointer("/metadata/name").and_then(Value::as_str) == Some(namespace)
        })
        .map(|ns| super::gatekeeper::matcher::labels(ns.pointer("/metadata/labels")));
    let set = if inventory.is_empty() {
        set.clone()
    } else {
        // A case's failure detail is text: the inventory's error becomes its message.
        Inventory::new(&review::inventory(&inventory))
            .and_then(|inventory| set.with_inventory(&inventory))
            .map_err(|e| e.to_string())?
    };
    let results = set.evaluate(
        Request::Json(&request),
        &Context {
            namespace_labels: namespace_labels.as_ref(),
            facts: &Value::Null,
            namespace_object: Value::Null,
            deadline: None,
        },
    );
    let mut messages = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result.error {
            Some(EvalError::Match(error)) => return Err(format!("the constraint could not be matched: {error}")),
            // Gatekeeper reports an evaluation error as a violation whose message is the error.
            Some(error) => {
                let message = format!("policy could not be evaluated ({error})");
                errors.push(message.clone());
                messages.push(message);
            }
            None => messages.extend(result.deny.into_iter().map(|violation| violation.message)),
        }
    }
    for (index, assertion) in case.assertions.iter().enumerate() {
        check(assertion, &messages).map_err(|e| format!("assertion {}: {e}; got messages {messages:?}", index + 1))?;
    }
    Ok((!errors.is_empty()).then(|| {
        format!(
            "passed through an evaluation error, which counts as a violation: {}",
            errors.join("; ")
        )
    }))
}

/// An AdmissionReview's request as is (it must carry an object or an oldObject); any other
/// object becomes the review gator builds.
fn to_request(object: &Value) -> Result<Value, String> {
    let is_review = object.get("kind").and_then(Value::as_str) == Some("AdmissionReview")
        && object
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("admission.k8s.io/"));
    if !is_review {
        return Ok(review::synthetic(object));
    }
    let request = object
        .get("request")
        .filter(|r| r.is_object())
        .ok_or("the AdmissionReview has no request")?;
    let present = |field: &str| request.get(field).is_some_and(Value::is_object);
    if !present("object") && !present("oldObject") {
        return Err("the AdmissionReview's request has neither object nor oldObject".into());
    }
    Ok(request.clone())
}

fn check(assertion: &Assertion, messages: &[String]) -> Result<(), String> {
    let matching = match &assertion.message {
        Some(pattern) => {
            let regex = regex::Regex::new(pattern)
                .map_err(|e| format!("message {pattern:?} is not a regular expression: {e}"))?;
            messages.iter().filter(|m| regex.is_match(m)).count()
        }
        None => messages.len(),
    };
    let which = match &assertion.message {
        Some(pattern) => format!("violations matching {pattern:?}"),
        None => "violations".to_string(),
    };
    match assertion.violations.as_ref().unwrap_or(&Value::String("yes".into())) {
        Value::Number(n) => match n.as_u64() {
            Some(want) if matching as u64 == want => Ok(()),
            Some(want) => Err(format!("{matching} {which}, want exactly {want}")),
            None => Err("violations must be a nonnegative integer, \"yes\" or \"no\"".into()),
        },
        // A YAML 1.1 reader sees yes/no as booleans.
        Value::Bool(true) => check_yes(matching, &which),
        Value::Bool(false) => check_no(matching, &which),
        Value::String(s) if s == "yes" => check_yes(matching, &which),
        Value::String(s) if s == "no" => check_no(matching, &which),
        other => Err(format!(
            "violations is {other}: must be a nonnegative integer, \"yes\" or \"no\""
        )),
    }
}

fn check_yes(matching: usize, which: &str) -> Result<(), String> {
    match matching {
        0 => Err(format!("0 {which}, want at least 1")),
        _ => Ok(()),
    }
}

fn check_no(matching: usize, which: &str) -> Result<(), String> {
    match matching {
        0 => Ok(()),
        n => Err(format!("{n} {which}, want none")),
    }
}

/// The Gatekeeper documents of a file named by a suite.
fn read_documents(dir: &Path, relative: &str) -> Result<Vec<Document>, String> {
    if relative.is_empty() {
        return Err("the test names no template or no constraint".into());
    }
    let path = dir.join(relative);
    Ok(read_objects(dir, relative)?
        .into_iter()
        .map(|value| Document {
            origin: path.display().to_string(),
            value,
        })
        .collect())
}

/// The objects of a YAML file (empty documents skipped).
fn read_objects(dir: &Path, relative: &str) -> Result<Vec<Value>, String> {
    let path = dir.join(relative);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut objects = Vec::new();
    for (index, document) in yaml_serde::Deserializer::from_str(&text).enumerate() {
        let value = <Value as serde::Deserialize>::deserialize(document)
            .map_err(|e| format!("{} (document {}): {e}", path.display(), index + 1))?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    if objects.is_empty() {
        return Err(format!("{} holds no object", path.display()));
    }
    Ok(objects)
}

fn failure(name: String, detail: String, started: Instant) -> TestResult {
    TestResult {
        name,
        passed: false,
        detail: Some(detail),
        duration: started.elapsed(),
    }
}

#[cfg(test)]
mod tests;
