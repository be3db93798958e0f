//! The Rego engine patches (`patches/regorus-0.14.1.patch`), each against real OPA: the same
//! module and inputs must give the same results in regorus (as patched) and in OPA (built from
//! the Go module proxy by `scripts/tools.sh`).

mod common;

use std::process::Command;

use serde_json::{json, Value};

use common::lab::{run, tool};
use portcullis::policy::evaluator::{EngineChoice, Evaluator};
use portcullis::policy::rego::{configured_engine, to_regorus};
use portcullis::results::EvalError;
use std::time::Duration;

/// Evaluates `query` (a rule path) on `module` (Rego v0, as Gatekeeper templates are written)
/// for each input, in regorus (as patched, on the bytecode VM and on the interpreter, which
/// must agree) and in OPA, and returns both lists of results.
fn both(module: &str, query: &str, inputs: &[Value]) -> (Vec<Value>, Vec<Value>) {
    both_of(&[module], query, inputs)
}

/// [`both`] of several modules.
fn both_of(modules: &[&str], query: &str, inputs: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let [compiled, interpreted] = [EngineChoice::Compiled, EngineChoice::Interpreter].map(|choice| {
        let evaluator = evaluator_of(modules, query, choice);
        inputs
            .iter()
            .map(|input| {
                let value = evaluator.eval(to_regorus(input).unwrap()).unwrap();
                // Undefined is no value, as in OPA's output.
                if value == regorus::Value::Undefined {
                    return Value::Null;
                }
                serde_json::from_str(&value.to_json_str().unwrap()).unwrap()
            })
            .collect::<Vec<Value>>()
    });
    assert_eq!(compiled, interpreted, "the engines disagree on {query}");
    (compiled, opa(modules, query, inputs))
}

/// `query` of `module` as portcullis configures regorus (OPA's builtin-error semantics) on
/// the engine `choice` asks for, which it must get.
fn evaluator(module: &str, query: &str, choice: EngineChoice) -> Evaluator {
    evaluator_of(&[module], query, choice)
}

/// [`evaluator`] of several modules.
fn evaluator_of(modules: &[&str], query: &str, choice: EngineChoice) -> Evaluator {
    let mut engine = configured_engine(Duration::from_secs(5));
    engine.set_rego_v0(true);
    for (index, module) in modules.iter().enumerate() {
        engine
            .add_policy(format!("patched{index}.rego"), module.to_string())
            .unwrap();
    }
    let (evaluator, why) = Evaluator::new(
        &engine,
        &regorus::Value::new_object(),
        query,
        Duration::from_secs(5),
        choice,
    );
    assert_eq!(evaluator.kind().choice(), choice, "{query}: {why:?}");
    evaluator
}

/// OPA's value of `query` of `modules` on each input.
fn opa(modules: &[&str], query: &str, inputs: &[Value]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    for (index, module) in modules.iter().enumerate() {
        std::fs::write(policies.join(format!("patched{index}.rego")), module).unwrap();
    }
    let theirs = inputs
        .iter()
        .map(|input| {
            let file = dir.path().join("input.json");
            std::fs::write(&file, input.to_string()).unwrap();
            let output = run(Command::new(tool("opa"))
                .args(["eval", "--v0-compatible", "--format", "json", "--data"])
                .arg(&policies)
                .arg("--input")
                .arg(&file)
                .arg(query));
            let output: Value = serde_json::from_str(&output).unwrap();
            output["result"][0]["expressions"][0]["value"].clone()
        })
        .collect();
    theirs
}

#[test]
fn a_set_rule_with_several_bodies_unites_their_members() {
    // As gatekeeper-library's noupdateserviceaccount writes its violation rule.
    let module = r#"package p
violation[{"msg": msg}] { input.x == 1; msg := "one" } { input.x == 2; msg := "two" } { input.x > 0; msg := "positive" }
"#;
    let inputs = [json!({"x": 1}), json!({"x": 2}), json!({"x": 3}), json!({"x": -1})];
    let (ours, theirs) = both(module, "data.p.violation", &inputs);
    assert_eq!(ours, theirs);
    assert_eq!(
        ours[0],
        json!([{"msg": "one"}, {"msg": "positive"}]),
        "members of both bodies"
    );
    assert_eq!(ours[3], json!([]));
}

#[test]
fn else_on_a_set_rule_is_still_refused() {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(true);
    let error = engine
        .add_policy(
            "else.rego".into(),
            "package p\ns[x] { x := 1 } else { x := 2 }\n".into(),
        )
        .unwrap_err();
    assert!(
        error.to_string().contains("else cannot be used with set rules"),
        "{error}"
    );
}

#[test]
fn a_parenthesised_line_after_a_reference_is_a_new_expression() {
    // As gatekeeper-library's k8shorizontalpodautoscaler writes input_replica_spread.
    let module = r#"package p
spread_ok[msg] {
  input.parameters.minimumReplicaSpread
  (input.hpa.max - input.hpa.min) >= input.parameters.minimumReplicaSpread
  msg := "spread ok"
}
called[r] {
  r := count(
    input.items
  )
}
"#;
    let inputs = [
        json!({"parameters": {"minimumReplicaSpread": 2}, "hpa": {"max": 5, "min": 1}, "items": [1, 2]}),
        json!({"parameters": {"minimumReplicaSpread": 9}, "hpa": {"max": 5, "min": 1}, "items": []}),
        json!({"hpa": {"max": 5, "min": 1}, "items": [1]}),
    ];
    for query in ["data.p.spread_ok", "data.p.called"] {
        let (ours, theirs) = both(module, query, &inputs);
        assert_eq!(ours, theirs, "{query}");
    }
    let (ours, _) = both(module, "data.p.spread_ok", &inputs);
    assert_eq!(ours, [json!(["spread ok"]), json!([]), json!([])]);
}

#[test]
fn sprintf_prints_missing_arguments_and_negative_numbers_as_go_does() {
    // As gatekeeper-library's k8shorizontalpodautoscaler formats six verbs with five arguments.
    let module = r#"package p
missing := sprintf("%v and %v and %d", [input.a])
negative := sprintf("%d|%x|%o|%v", [input.n, input.n, input.n, input.n])
"#;
    let inputs = [json!({"a": "one", "n": -3}), json!({"a": [1, 2], "n": -255})];
    for query in ["data.p.missing", "data.p.negative"] {
        let (ours, theirs) = both(module, query, &inputs);
        assert_eq!(ours, theirs, "{query}");
    }
    let (ours, _) = both(module, "data.p.missing", &inputs);
    assert_eq!(ours[0], json!("one and %!v(MISSING) and %!d(MISSING)"));
    let (ours, _) = both(module, "data.p.negative", &inputs);
    assert_eq!(ours[0], json!("-3|-3|-3|-3"), "Go's forms, %o without a prefix");
}

#[test]
fn not_of_a_call_with_an_undefined_argument_fails_the_body() {
    let module = r#"package p
f(a, b) { a == b }
g(a) { a > 1 }
undefined_argument { not f(1, input.missing) }
defined_argument { not f(1, input.two) }
negated_false { not g(input.one) }
iterated { x := input.items[_]; not g(x) }
builtin { not count(input.missing) }
"#;
    let inputs = [
        json!({"two": 2, "one": 1, "items": [1, 5]}),
        json!({"missing": 1, "two": 1, "one": 2, "items": []}),
    ];
    for rule in [
        "undefined_argument",
        "defined_argument",
        "negated_false",
        "iterated",
        "builtin",
    ] {
        let query = format!("data.p.{rule}");
        let (ours, theirs) = both(module, &query, &inputs);
        assert_eq!(ours, theirs, "{query}");
    }
}

#[test]
fn two_values_for_one_complete_rule_or_function_are_an_error_on_both_engines() {
    // The VM made such a rule undefined (a policy that tests `not` of it would pass); OPA and
    // the interpreter stop the evaluation with an error, which portcullis denies on.
    let module = "package p\nf(x) := 1 { x }\nf(x) := 2 { x }\nc := 1 { input.x }\nc := 2 { input.x }\nby_function { f(input.x) }\nby_rule { c }\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("conflict.rego"), module).unwrap();
    for query in ["data.p.by_function", "data.p.by_rule"] {
        for choice in [EngineChoice::Compiled, EngineChoice::Interpreter] {
            let error = evaluator(module, query, choice)
                .eval(to_regorus(&json!({"x": true})).unwrap())
                .unwrap_err();
            // Each engine words it its own way; an error it must be, never undefined.
            assert!(matches!(error, EvalError::Failed(_)), "{query} ({choice:?}): {error}");
        }
        let output = Command::new(tool("opa"))
            .args(["eval", "--v0-compatible", "--format", "json", "--input"])
            .arg({
                let file = dir.path().join("input.json");
                std::fs::write(&file, r#"{"x": true}"#).unwrap();
                file
            })
            .arg("--data")
            .arg(dir.path().join("conflict.rego"))
            .arg(query)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            !output.status.success() && text.contains("eval_conflict_error"),
            "{query}: OPA said {text}"
        );
    }
}

#[test]
fn a_reference_through_an_import_evaluates_only_the_rule_it_names() {
    // Both engines resolved `x.cheap` after `import data.lib.x` by building all of `data.lib.x`
    // first: every rule of the package on every use (on the VM a quarter of a review's time
    // with the default library), and an error in a rule nobody asked for (here a conflict)
    // was the whole query's. OPA evaluates `data.lib.x.cheap` alone.
    let lib = "package lib.x\ncheap := input.n + 1\nbad := 1 { input.conflict }\nbad := 2 { input.conflict }\nsub := {\"k\": input.n}\n";
    let policy = "package p\nimport data.lib.x\nimport input.nested as nested\nr := x.cheap\ndeep := x.sub.k\nalias := nested.value\n";
    let inputs = [
        json!({"n": 1, "conflict": true, "nested": {"value": "v"}}),
        json!({"n": 2, "conflict": false}),
    ];
    for query in ["data.p.r", "data.p.deep", "data.p.alias"] {
        let (ours, theirs) = both_of(&[lib, policy], query, &inputs);
        assert_eq!(ours, theirs, "{query}");
    }
    let (ours, _) = both_of(&[lib, policy], "data.p.r", &inputs);
    assert_eq!(ours, [json!(2), json!(3)]);
}

#[test]
fn a_whole_package_has_no_key_for_an_undefined_rule() {
    // The VM built `data.lib.x` with a key for each rule, defined or not (`count` saw 3 where
    // OPA sees 2); a package nested under it is an empty object in OPA, kept so.
    let lib = "package lib.x\ncheap := input.n + 1\nunset { input.nope }\nsub := {\"k\": input.n}\n";
    let nested = "package lib.x.y\nu { input.nope }\n";
    let policy = "package p\nimport data.lib.x\nwhole := x\nsize := count(x)\nkeys := object.keys(data.lib.x)\n";
    let inputs = [json!({"n": 1})];
    for query in ["data.p.whole", "data.p.size", "data.p.keys"] {
        let (ours, theirs) = both_of(&[lib, nested, policy], query, &inputs);
        assert_eq!(ours, theirs, "{query}");
    }
}

#[test]
fn nested_brackets_read_as_in_opa_when_each_is_parsed_once() {
    // Before the look-ahead each `{` and `[` parsed its content twice, so 20 levels took
    // minutes (the gatekeeper_policies fuzz target found it; its seed `nested-braces.yaml`
    // replays the unclosed case in every fuzz run).
    let depth = 20;
    let nested = |open: &str, item: &str, close: &str| format!("{}{item}{}", open.repeat(depth), close.repeat(depth));
    let module = format!(
        "package p\nsets := {}\narrays := {}\nmixed := {{x | x := [[1], {{2}}, {}][_]}}\nobjects := {}\n",
        nested("{", "1", "}"),
        nested("[", "1", "]"),
        nested("[{", "3", "}]"),
        nested("{\"a\": ", "1", "}"),
    );
    for query in ["data.p.sets", "data.p.arrays", "data.p.mixed", "data.p.objects"] {
        let (ours, theirs) = both(&module, query, &[json!({})]);
        assert_eq!(ours, theirs, "{query}");
    }
    let unclosed = format!("package p\nq {{\n  {}true\n}}\n", "{".repeat(depth));
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(true);
    assert!(engine.add_policy("unclosed.rego".into(), unclosed).is_err());
}
