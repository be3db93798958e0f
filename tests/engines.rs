//! Differential test of portcullis's two engines: the default library on regorus's bytecode VM
//! (in one pass, and policy by policy as the timing sample runs it) and on its interpreter must
//! give identical per-policy results (messages, details, errors) on every generated input, and
//! identical decisions on every review fixture, whether the review was read by serde (as `check`
//! reads manifests) or straight into the engine's values (as the webhook reads a body).

mod common;

use serde_json::Value;

use common::inputs::{inputs, review_fixtures};
use common::*;
use portcullis::policy::evaluator::{EngineChoice, EngineKind};
use portcullis::policy::input::Request;
use portcullis::policy::{PolicySet, Source};
use portcullis::results::PolicyResult;

fn library(choice: EngineChoice) -> PolicySet {
    let mut settings = settings(CONFIG);
    settings.policy_engine = choice;
    portcullis::admission::setup::load_policies(&Source::Embedded, &settings).unwrap()
}

/// Results without their durations, which differ from run to run.
fn decided(results: Vec<PolicyResult>) -> Vec<PolicyResult> {
    results
        .into_iter()
        .map(|r| PolicyResult {
            duration: std::time::Duration::ZERO,
            ..r
        })
        .collect()
}

#[test]
fn both_engines_give_the_same_results_on_every_generated_input() {
    let compiled = library(EngineChoice::Compiled);
    let interpreted = library(EngineChoice::Interpreter);
    assert!(compiled.policies().iter().all(|p| p.engine == EngineKind::Compiled));
    assert!(interpreted
        .policies()
        .iter()
        .all(|p| p.engine == EngineKind::Interpreter));
    let inputs = inputs();
    assert!(inputs.len() > 300, "{} inputs", inputs.len());
    let (mut findings, mut disagreements) = (0, Vec::new());
    // Both ways the compiled set runs meet every input: the one pass, and policy by policy
    // (the reviews sampled for timing).
    for (name, input) in &inputs {
        let expected = decided(interpreted.evaluate(input));
        findings += expected.iter().map(|r| r.deny.len() + r.warn.len()).sum::<usize>();
        assert!(expected.iter().all(|r| r.error.is_none()), "{name}: {expected:?}");
        for ours in [compiled.evaluate(input), compiled.evaluate_alone(input)] {
            let ours = decided(ours);
            if ours != expected {
                disagreements.push(format!("{name}:\n  compiled    {ours:?}\n  interpreter {expected:?}"));
            }
        }
    }
    eprintln!(
        "{} inputs x 2 runs, {findings} findings, {} disagreements",
        inputs.len(),
        disagreements.len()
    );
    // The inputs must exercise the library, or agreement proves nothing.
    assert!(findings > inputs.len(), "only {findings} findings");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[test]
fn both_engines_decide_every_review_fixture_alike() {
    let config = |engine: &str| format!("{CONFIG}policies: {{engine: {engine}}}\n");
    let compiled = state(&config("compiled"), &[("team-a", "low")]);
    let interpreted = state(&config("interpreter"), &[("team-a", "low")]);
    let paths = review_fixtures();
    assert!(paths.len() >= 30, "{paths:?}");
    let (mut denied, mut served_reviews) = (0, 0);
    for path in &paths {
        let body = std::fs::read(path).unwrap();
        let review: Value = serde_json::from_slice(&body).unwrap();
        let [ours, theirs] = [&compiled, &interpreted].map(|state| {
            let outcome = state.reviewer.decide(&review["request"]);
            (outcome.decision, decided(outcome.results))
        });
        assert_eq!(ours, theirs, "{}", path.display());
        // The image lists beside the workload reviews are no AdmissionReviews to serve.
        if review["kind"] == "AdmissionReview" {
            let read = portcullis::admission::review::parse(&body).unwrap();
            let facts = compiled.reviewer.facts(&read.request);
            let served = compiled.reviewer.evaluate(Request::Engine(&read.request), facts);
            assert_eq!((served.decision, decided(served.results)), ours, "{}", path.display());
            served_reviews += 1;
        }
        denied += usize::from(!ours.0.allowed);
    }
    assert!(denied > 5 && denied < paths.len(), "{denied} of {} denied", paths.len());
    assert!(
        served_reviews >= 20,
        "{served_reviews} reviews read as the webhook reads them"
    );
}
