//! `portcullis test`: Rego unit tests, like `opa test`, and gator suites (`super::suite`).
//! Every `test_*` rule of a `*_test.rego` file passes when it evaluates to `true`. Two rules
//! with the same test name in one package are an error (Rego would merge them into one test
//! and hide the second).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::bundle::{Bundle, BundleError, Module, Source};
use super::engine::{new_engine, LoadError};
use super::test_result::TestResult;

#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("no *_test.rego files and no gator suites found")]
    NoTests,
    #[error("duplicate test names (each test needs its own name):\n{}", .0.join("\n"))]
    Duplicates(Vec<String>),
}

/// Runs the library's Rego unit tests, then every gator suite under its directories.
pub fn run_all(source: &Source, timeout: Duration) -> Result<Vec<TestResult>, TestError> {
    let suites = match source {
        Source::Dirs(dirs) => super::suite::find(dirs),
        Source::Embedded => Vec::new(),
    };
    let bundle = match source.read() {
        Ok(bundle) => Some(bundle),
        Err(BundleError::Empty(_)) if !suites.is_empty() => None,
        Err(error) => return Err(error.into()),
    };
    let mut results = match bundle.filter(|b| !b.tests.is_empty()) {
        Some(bundle) => run(&bundle, timeout)?,
        None if suites.is_empty() => return Err(TestError::NoTests),
        None => Vec::new(),
    };
    for suite in suites {
        results.extend(super::suite::run(&suite, timeout));
    }
    Ok(results)
}

/// Runs every test of the bundle, in file order.
pub fn run(bundle: &Bundle, timeout: Duration) -> Result<Vec<TestResult>, TestError> {
    if bundle.tests.is_empty() {
        return Err(TestError::NoTests);
    }
    let modules: Vec<&Module> = bundle.modules.iter().chain(&bundle.tests).collect();
    let mut engine = new_engine(&modules, &bundle.data, timeout)?;
    let packages: BTreeMap<String, String> = engine
        .get_policy_package_components()
        .map_err(|e| LoadError::Compile {
            module: "packages".into(),
            message: e.to_string(),
        })?
        .into_iter()
        .map(|p| (p.source_file, p.components.join(".")))
        .collect();

    let mut tests: Vec<String> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for module in &bundle.tests {
        let Some(package) = packages.get(&module.name) else {
            continue;
        };
        for (line, rule) in test_rules(&module.text) {
            let name = format!("data.{package}.{rule}");
            let place = format!("{}:{line}", module.name);
            match seen.get(&name) {
                Some(first) => duplicates.push(format!("  {name} at {first} and {place}")),
                None => {
                    seen.insert(name.clone(), place);
                    tests.push(name);
                }
            }
        }
    }
    if !duplicates.is_empty() {
        return Err(TestError::Duplicates(duplicates));
    }

    engine.set_input(regorus::Value::new_object());
    Ok(tests
        .into_iter()
        .map(|name| {
            let started = Instant::now();
            let (passed, detail) = match engine.eval_rule(name.clone()) {
                Ok(value) if value == regorus::Value::from(true) => (true, None),
                Ok(regorus::Value::Undefined) => (false, Some("undefined (a condition did not hold)".to_string())),
                Ok(value) => (false, Some(format!("evaluated to {value}, not true"))),
                Err(error) => (false, Some(format!("error: {error}"))),
            };
            TestResult {
                name,
                passed,
                detail,
                duration: started.elapsed(),
            }
        })
        .collect())
}

/// Test rule heads: `test_...` at the start of a line (rules are top-level), with line numbers.
fn test_rules(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let rest = line.strip_prefix("test_")?;
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            Some((index + 1, format!("test_{}", &rest[..name_len])))
        })
        .collect()
}

/// Text report: one line per test, then `N passed, M failed`.
pub fn render(results: &[TestResult]) -> String {
    let mut out = String::new();
    for result in results {
        let status = if result.passed { "PASS" } else { "FAIL" };
        out.push_str(&format!("{status} {} ({:.1?})", result.name, result.duration));
        if let Some(detail) = &result.detail {
            out.push_str(&format!(": {detail}"));
        }
        out.push('\n');
    }
    let passed = results.iter().filter(|r| r.passed).count();
    out.push_str(&format!("{passed} passed, {} failed\n", results.len() - passed));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle(policy: &str, tests: &str) -> Bundle {
        Bundle {
            modules: vec![Module {
                name: "p.rego".into(),
                text: policy.into(),
            }],
            tests: vec![Module {
                name: "p_test.rego".into(),
                text: tests.into(),
            }],
            data: json!({"params": {"limit": 3}}),
            gatekeeper: vec![],
        }
    }

    const POLICY: &str = "package p\ndeny contains \"big\" if input.n > data.params.limit\n";

    #[test]
    fn passes_and_fails_are_counted() {
        let tests = "package p_test\nimport data.p\ntest_big if { \"big\" in p.deny with input as {\"n\": 5} }\ntest_wrong if { \"big\" in p.deny with input as {\"n\": 1} }\ntest_false if { false == true }\n";
        let results = run(&bundle(POLICY, tests), Duration::from_secs(1)).unwrap();
        let outcome: Vec<_> = results.iter().map(|r| (r.name.as_str(), r.passed)).collect();
        assert_eq!(
            outcome,
            [
                ("data.p_test.test_big", true),
                ("data.p_test.test_wrong", false),
                ("data.p_test.test_false", false)
            ]
        );
        assert!(render(&results).ends_with("1 passed, 2 failed\n"));
    }

    #[test]
    fn duplicate_names_are_an_error() {
        let tests = "package p_test\ntest_a if { true }\n\ntest_a if { false }\n";
        let err = run(&bundle(POLICY, tests), Duration::from_secs(1)).unwrap_err();
        assert!(
            err.to_string()
                .contains("data.p_test.test_a at p_test.rego:2 and p_test.rego:4"),
            "{err}"
        );
    }

    #[test]
    fn no_tests_is_an_error() {
        let mut b = bundle(POLICY, "");
        b.tests.clear();
        assert!(matches!(run(&b, Duration::from_secs(1)), Err(TestError::NoTests)));
    }
}
