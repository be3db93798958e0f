//! The compiled policy set: regorus, loaded and prepared once, evaluated in one pass.
//!
//! A native policy is a package that declares `deny` and/or `warn`; its package path (without
//! `data.`) is its id. All native policies are evaluated together, through one generated rule
//! that collects every policy's `deny` and `warn`, so helper rules they share are computed once
//! per review; on regorus's bytecode VM where the policies compile, on its interpreter where they
//! do not ([`super::evaluator`]). A pass that fails (an error or the time limit) is evaluated
//! again policy by policy, so that one policy's error or timeout denies with that policy's id and
//! leaves the others' results intact.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::bundle::{Bundle, Module};
use super::evaluator::{EngineChoice, EngineKind, Evaluator};
use super::gatekeeper::{self, GatekeeperSet};
use super::input::Input;
use super::levels::Levels;
use super::metadata::{package_metadata, Metadata, PolicyMetadata};
use super::rego::{configured_engine, input_document, to_regorus};
use crate::results::{EvalError, PolicyResult, Violation};

/// One policy of the set: a native package, or a Gatekeeper constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: String,
    pub has_deny: bool,
    pub has_warn: bool,
    pub kind: PolicyKind,
    /// The engine it runs on.
    pub engine: EngineKind,
    /// Why it is not compiled, when it could have been.
    pub interpreted_because: Option<String>,
    /// Its title, description and remediation (a native package's METADATA annotation).
    pub metadata: PolicyMetadata,
    /// The risk levels it applies at, from its data (a native policy; every level otherwise).
    pub levels: Levels,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// A Rego package with `deny`/`warn`; its id is the package path.
    Native,
    /// A Gatekeeper constraint; its id is `<kind>/<name>`.
    Constraint,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Bundle(#[from] super::bundle::BundleError),
    #[error("{module}: {message}")]
    Compile { module: String, message: String },
    #[error("the policy library defines no policy (no package declares deny or warn, and there is no Gatekeeper constraint)")]
    NoPolicies,
    #[error(transparent)]
    Gatekeeper(#[from] gatekeeper::GatekeeperError),
    #[error("policy {id}: {message}")]
    Prepare { id: String, message: String },
}

/// Per-policy durations are sampled: the first review is evaluated policy by policy, each
/// policy timed alone, and then one review a second at most also times one policy alone, in
/// turn (so a sample adds one policy's time to one review, not a pass per policy). The latest
/// time of each policy alone gives its share of its pass's time, and a policy's duration in
/// a review is the pass's measured time times that share (timing every policy exactly would
/// cost a pass per policy, the cost the one pass removes).
pub const TIMING_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// The package of the generated rules; a library may not use it.
const PASS_PACKAGE: &str = "portcullis_one_pass";

/// A loaded, prepared policy set. Cheap to share: evaluations clone prepared engines.
#[derive(Clone)]
pub struct PolicySet {
    policies: Vec<Policy>,
    /// Each native policy alone, in the order of `policies`.
    alone: Vec<Evaluator>,
    /// The one-pass rules, one per engine, with the native policies each collects.
    passes: Vec<(Evaluator, Vec<usize>)>,
    gatekeeper: GatekeeperSet,
    timing: Arc<Timing>,
}

/// The sampling of per-policy durations ([`TIMING_SAMPLE_INTERVAL`]).
struct Timing {
    created: Instant,
    /// When the last sample was taken, in microseconds since `created`; `u64::MAX` before the first.
    last_sample: AtomicU64,
    /// How many samples were taken: which native policy the next one times.
    samples: AtomicUsize,
    /// Each native policy's latest time alone, in nanoseconds.
    alone_nanos: Vec<AtomicU64>,
    /// Each native policy's share of its pass's time (an `f32`'s bits), from those times.
    shares: Vec<AtomicU32>,
}

/// What one evaluation times besides the pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sample {
    /// Nothing: durations are the pass's time apportioned.
    None,
    /// Every native policy alone (the first review; and the differential tests).
    All,
    /// The native policy of this index alone, after the pass.
    One(usize),
}

impl Timing {
    /// What this evaluation samples: everything the first time, then one policy in turn once a
    /// full interval has passed since the last sample (one caller wins when several race).
    fn take_sample(&self) -> Sample {
        let now = self.created.elapsed().as_micros() as u64;
        let last = self.last_sample.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= TIMING_SAMPLE_INTERVAL.as_micros() as u64;
        if !due
            || self
                .last_sample
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Sample::None;
        }
        let count = self.samples.fetch_add(1, Ordering::Relaxed);
        match (count, self.alone_nanos.len()) {
            (_, 0) => Sample::None,
            (0, _) => Sample::All,
            (count, policies) => Sample::One((count - 1) % policies),
        }
    }

    /// Each member's share of its pass (given by its members) from the latest times alone.
    fn learn_shares<'a>(&self, passes: impl IntoIterator<Item = &'a [usize]>) {
        for members in passes {
            let nanos = |i: usize| self.alone_nanos[i].load(Ordering::Relaxed) as f64;
            let total: f64 = members.iter().map(|&i| nanos(i)).sum();
            for &index in members {
                let share = match total > 0.0 {
                    true => nanos(index) / total,
                    false => 1.0 / members.len() as f64,
                };
                self.shares[index].store((share as f32).to_bits(), Ordering::Relaxed);
            }
        }
    }

    fn record_alone(&self, index: usize, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.alone_nanos[index].store(nanos, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet").field("policies", &self.policies).finish()
    }
}

/// Builds a regorus engine from modules and data, with the execution-time limit set.
pub fn new_engine(modules: &[&Module], data: &Value, timeout: Duration) -> Result<regorus::Engine, LoadError> {
    let (engine, _) = engine_with_data(modules, data, timeout)?;
    Ok(engine)
}

fn engine_with_data(
    modules: &[&Module],
    data: &Value,
    timeout: Duration,
) -> Result<(regorus::Engine, regorus::Value), LoadError> {
    let mut engine = configured_engine(timeout);
    for module in modules {
        engine
            .add_policy(module.name.clone(), module.text.clone())
            .map_err(|e| LoadError::Compile {
                module: module.name.clone(),
                message: e.to_string(),
            })?;
    }
    let data = to_regorus(data).map_err(|e| LoadError::Compile {
        module: "data".into(),
        message: e.to_string(),
    })?;
    engine.add_data(data.clone()).map_err(|e| LoadError::Compile {
        module: "data".into(),
        message: e.to_string(),
    })?;
    Ok((engine, data))
}

/// A native policy found in the modules, with its package path.
struct Found {
    policy: Policy,
    components: Vec<String>,
}

impl PolicySet {
    /// [`PolicySet::build_on`] with every policy compiled where it compiles.
    pub fn build(bundle: &Bundle, extra_data: Value, timeout: Duration) -> Result<PolicySet, LoadError> {
        PolicySet::build_on(bundle, extra_data, timeout, EngineChoice::default())
    }

    /// Compiles the bundle's modules (tests excluded) with `extra_data` merged in, finds the
    /// policies, and prepares the one-pass rules and each policy alone on the engines `choice`
    /// allows.
    pub fn build_on(
        bundle: &Bundle,
        extra_data: Value,
        timeout: Duration,
        choice: EngineChoice,
    ) -> Result<PolicySet, LoadError> {
        let mut data = bundle.data.clone();
        if let Value::Object(extra) = extra_data {
            for (key, value) in extra {
                super::bundle::insert_at(&mut data, &[key.as_str()], value, "portcullis config")?;
            }
        }
        let modules: Vec<&Module> = bundle.modules.iter().collect();
        let levels = |id: &str| Levels::of(&data, id);
        let (mut engine, data) = engine_with_data(&modules, &data, timeout)?;
        let mut found = native_policies(&engine, &modules)?;
        for found in &mut found {
            found.policy.levels = levels(&found.policy.id);
        }
        let gatekeeper = GatekeeperSet::build_on(&bundle.gatekeeper, timeout, choice)?;
        if found.is_empty() && gatekeeper.constraints().is_empty() {
            return Err(LoadError::NoPolicies);
        }
        found.sort_by(|a, b| a.policy.id.cmp(&b.policy.id));
        let wrappers: Vec<String> = found
            .iter()
            .enumerate()
            .map(|(index, f)| format!("p{index} := {}\n", wrapper(f)))
            .collect();
        engine
            .add_policy(
                format!("{PASS_PACKAGE}.rego (generated)"),
                format!("package {PASS_PACKAGE}\n{}", wrappers.concat()),
            )
            .map_err(|e| LoadError::Compile {
                module: format!("{PASS_PACKAGE} (generated)"),
                message: e.to_string(),
            })?;
        let mut policies = Vec::new();
        let mut alone = Vec::new();
        for (index, Found { mut policy, .. }) in found.into_iter().enumerate() {
            let rule = format!("data.{PASS_PACKAGE}.p{index}");
            let (evaluator, why) = Evaluator::new(&engine, &data, &rule, timeout, choice);
            // A policy that cannot be evaluated on an empty input is broken whatever the review.
            if let Err(e) = evaluator.eval(regorus::Value::new_object()) {
                return Err(LoadError::Prepare {
                    id: policy.id,
                    message: e.to_string(),
                });
            }
            policy.engine = evaluator.kind();
            policy.interpreted_because = why;
            policies.push(policy);
            alone.push(evaluator);
        }
        let mut passes = Vec::new();
        for kind in [EngineKind::Compiled, EngineKind::Interpreter] {
            let members: Vec<usize> = (0..policies.len()).filter(|&i| policies[i].engine == kind).collect();
            if members.is_empty() {
                continue;
            }
            let name = format!("pass_{}", kind.as_str());
            let elements: Vec<String> = members.iter().map(|i| format!("p{i}")).collect();
            let module = format!("package {PASS_PACKAGE}\n{name} := [{}]\n", elements.join(", "));
            engine
                .add_policy(format!("{PASS_PACKAGE}.{name}.rego (generated)"), module)
                .map_err(|e| LoadError::Compile {
                    module: format!("{PASS_PACKAGE} (generated)"),
                    message: e.to_string(),
                })?;
            let rule = format!("data.{PASS_PACKAGE}.{name}");
            let (evaluator, _) = Evaluator::new(&engine, &data, &rule, timeout, kind.choice());
            if evaluator.kind() != kind {
                // Each member compiles alone but not all together: keep them policy by policy.
                continue;
            }
            passes.push((evaluator, members));
        }
        let timing = Arc::new(Timing {
            created: Instant::now(),
            last_sample: AtomicU64::new(u64::MAX),
            samples: AtomicUsize::new(0),
            // Set by the first review, which is always a sample.
            alone_nanos: policies.iter().map(|_| AtomicU64::new(0)).collect(),
            shares: policies.iter().map(|_| AtomicU32::new(0)).collect(),
        });
        policies.extend(gatekeeper.constraints().iter().map(|c| Policy {
            id: c.id(),
            has_deny: true,
            has_warn: false,
            kind: PolicyKind::Constraint,
            engine: gatekeeper.engine_of(c),
            interpreted_because: gatekeeper.interpreted_because(c),
            metadata: PolicyMetadata::default(),
            levels: Levels::default(),
        }));
        Ok(PolicySet {
            policies,
            alone,
            passes,
            gatekeeper,
            timing,
        })
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The one-pass rules alone (the benches' engine floor: what regorus itself costs).
    pub fn passes(&self) -> impl Iterator<Item = &Evaluator> {
        self.passes.iter().map(|(pass, _)| pass)
    }

    /// The Gatekeeper constraints of the set.
    pub fn constraints(&self) -> &[gatekeeper::constraint::Constraint] {
        self.gatekeeper.constraints()
    }

    /// The metadata of every policy that has some, by id.
    pub fn metadata(&self) -> Metadata {
        self.policies
            .iter()
            .filter(|policy| policy.metadata != PolicyMetadata::default())
            .map(|policy| (policy.id.clone(), policy.metadata.clone()))
            .collect()
    }

    /// The ids findings and metrics name the set's policies by: every native policy's id, then
    /// `Kind/name` of every Gatekeeper constraint.
    pub fn ids(&self) -> Vec<String> {
        let native = self.policies.iter().map(|policy| policy.id.clone());
        native.chain(self.constraints().iter().map(|c| c.id())).collect()
    }

    /// How many policies run on each engine, by the engine's metric label.
    pub fn engines(&self) -> Vec<(&'static str, usize)> {
        [EngineKind::Compiled, EngineKind::Interpreter]
            .into_iter()
            .map(|kind| (kind.as_str(), self.on_engine(kind)))
            .collect()
    }

    /// How many policies run on `kind`.
    pub fn on_engine(&self, kind: EngineKind) -> usize {
        self.policies.iter().filter(|p| p.engine == kind).count()
    }

    /// The same set with `data.inventory` for its Gatekeeper templates (native policies don't
    /// see the inventory). CPU-bound: every template is prepared again.
    pub fn with_inventory(&self, inventory: &gatekeeper::Inventory) -> Result<PolicySet, gatekeeper::InventoryError> {
        Ok(PolicySet {
            gatekeeper: self.gatekeeper.with_inventory(inventory)?,
            ..self.clone()
        })
    }

    /// Evaluates every policy against an input `document`. Never fails: errors are reported
    /// per policy.
    pub fn evaluate(&self, document: &Value) -> Vec<PolicyResult> {
        self.evaluate_input(&Input::of_document(document))
    }

    /// [`PolicySet::evaluate`] on the document's parts.
    pub fn evaluate_input(&self, input: &Input) -> Vec<PolicyResult> {
        self.evaluate_before(input, None)
    }

    /// [`PolicySet::evaluate_input`], every evaluation also stopped at `deadline` (a policy
    /// stopped there reports a timeout, as one that ran out of its own time limit).
    pub fn evaluate_before(&self, input: &Input, deadline: Option<Instant>) -> Vec<PolicyResult> {
        let sample = self.timing.take_sample();
        self.evaluate_on(input, sample, deadline)
    }

    /// Every policy evaluated alone and timed, as the timing sample does (the differential
    /// tests' way to compare it with the pass).
    pub fn evaluate_alone(&self, document: &Value) -> Vec<PolicyResult> {
        self.evaluate_on(&Input::of_document(document), Sample::All, None)
    }

    fn evaluate_on(&self, input: &Input, sample: Sample, deadline: Option<Instant>) -> Vec<PolicyResult> {
        let mut results = self.evaluate_native(input, sample, deadline);
        if !self.gatekeeper.is_empty() {
            results.extend(self.evaluate_gatekeeper(input, deadline));
        }
        results
    }

    fn evaluate_native(&self, input: &Input, sample: Sample, deadline: Option<Instant>) -> Vec<PolicyResult> {
        let native = &self.policies[..self.alone.len()];
        let converted = input
            .request
            .engine()
            .and_then(|request| input_document(&input.facts, request));
        let input = match converted {
            Ok(input) => input,
            Err(e) => {
                let error = EvalError::Failed(format!("input could not be converted: {e}"));
                return native
                    .iter()
                    .map(|p| result(p, Err(error.clone()), Duration::ZERO))
                    .collect();
            }
        };
        let mut results: Vec<Option<PolicyResult>> = vec![None; native.len()];
        if sample != Sample::All {
            for (pass, members) in &self.passes {
                let started = Instant::now();
                // A pass that fails is done again policy by policy, below, to attribute it.
                let Ok(regorus::Value::Array(values)) = pass.eval_before(input.clone(), deadline) else {
                    continue;
                };
                let elapsed = started.elapsed();
                if values.len() != members.len() {
                    continue;
                }
                for (&index, value) in members.iter().zip(values.iter()) {
                    let share = f32::from_bits(self.timing.shares[index].load(Ordering::Relaxed));
                    let duration = elapsed.mul_f32(share);
                    results[index] = Some(result(&native[index], policy_messages(value), duration));
                }
            }
        }
        // What no pass gave (all of it when every policy is timed alone) is evaluated alone.
        let results: Vec<PolicyResult> = native
            .iter()
            .zip(&self.alone)
            .zip(results)
            .enumerate()
            .map(|(index, ((policy, alone), done))| {
                done.unwrap_or_else(|| {
                    let started = Instant::now();
                    let outcome = alone
                        .eval_before(input.clone(), deadline)
                        .and_then(|v| policy_messages(&v));
                    let elapsed = started.elapsed();
                    self.timing.record_alone(index, elapsed);
                    result(policy, outcome, elapsed)
                })
            })
            .collect();
        if let Sample::One(index) = sample {
            // Timed only: its result is the pass's (the differential tests prove them equal).
            let started = Instant::now();
            let _ = self.alone[index].eval_before(input, deadline);
            self.timing.record_alone(index, started.elapsed());
        }
        if sample != Sample::None {
            self.timing
                .learn_shares(self.passes.iter().map(|(_, members)| members.as_slice()));
        }
        results
    }

    /// The Gatekeeper constraints, on the request of the native input document; the rest of
    /// that document (images, risk level, namespace) is their `input.portcullis`.
    fn evaluate_gatekeeper(&self, input: &Input, deadline: Option<Instant>) -> Vec<PolicyResult> {
        let namespace = input
            .facts
            .pointer("/namespace/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let labels: std::collections::BTreeMap<String, String> =
            gatekeeper::matcher::labels(input.facts.pointer("/namespace/labels"));
        let namespace_object = if namespace.is_empty() {
            Value::Null
        } else {
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}})
        };
        self.gatekeeper.evaluate(
            input.request,
            &gatekeeper::Context {
                namespace_labels: Some(&labels),
                facts: &input.facts,
                namespace_object,
                deadline,
            },
        )
    }
}

/// The packages that declare `deny` or `warn`; a package split over several files is one,
/// its metadata from the first of its files that has a METADATA annotation.
fn native_policies(engine: &regorus::Engine, modules: &[&Module]) -> Result<Vec<Found>, LoadError> {
    let mut found: Vec<Found> = Vec::new();
    let components = engine.get_policy_package_components().map_err(|e| LoadError::Compile {
        module: "packages".into(),
        message: e.to_string(),
    })?;
    for component in components {
        if component.components.first().map(String::as_str) == Some(PASS_PACKAGE) {
            return Err(LoadError::Compile {
                module: component.source_file.to_string(),
                message: format!("package {PASS_PACKAGE} is reserved for portcullis's own rules"),
            });
        }
        let declares = |rule: &str| {
            engine
                .has_declared_rule_rooted_at(&component.source_file, rule)
                .unwrap_or(false)
        };
        let (has_deny, has_warn) = (declares("deny"), declares("warn"));
        if !(has_deny || has_warn) {
            continue;
        }
        let id = component.components.join(".");
        let source = component.source_file.to_string();
        let metadata = match modules.iter().find(|m| m.name == source) {
            Some(module) => package_metadata(&module.text).map_err(|message| LoadError::Compile {
                module: source.clone(),
                message,
            })?,
            None => None,
        };
        match found.iter_mut().find(|f| f.policy.id == id) {
            Some(existing) => {
                existing.policy.has_deny |= has_deny;
                existing.policy.has_warn |= has_warn;
                if existing.policy.metadata == PolicyMetadata::default() {
                    existing.policy.metadata = metadata.unwrap_or_default();
                }
            }
            None => found.push(Found {
                policy: Policy {
                    id,
                    has_deny,
                    has_warn,
                    kind: PolicyKind::Native,
                    engine: EngineKind::Interpreter,
                    interpreted_because: None,
                    metadata: metadata.unwrap_or_default(),
                    levels: Levels::default(),
                },
                components: component.components.clone(),
            }),
        }
    }
    Ok(found)
}

/// The generated rule `p<index>` of one policy: an object with its `deny` and `warn`, each
/// wrapped in an array that is empty when the rule is undefined, so the object is always
/// defined and the pass's array has one element per policy.
fn wrapper(found: &Found) -> String {
    // Dots where the component is an identifier: the VM resolves a static path to the rule it
    // names, while a bracketed string makes it build the whole virtual document under `data`.
    let path: String = found
        .components
        .iter()
        .map(|c| match is_identifier(c) {
            true => format!(".{c}"),
            false => format!("[{}]", Value::String(c.clone())),
        })
        .collect();
    let fields: Vec<String> = [("deny", found.policy.has_deny), ("warn", found.policy.has_warn)]
        .iter()
        .filter(|(_, declared)| *declared)
        .map(|(rule, _)| format!("\"{rule}\": [v | v := data{path}.{rule}]"))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A policy's entry of a pass: `{"deny": [value?], "warn": [value?]}`.
fn policy_messages(entry: &regorus::Value) -> Result<(Vec<Violation>, Vec<Violation>), EvalError> {
    let field = |rule: &str| -> Result<Vec<Violation>, EvalError> {
        match &entry[rule] {
            regorus::Value::Array(wrapped) => match wrapped.first() {
                Some(value) => messages(value),
                None => Ok(Vec::new()),
            },
            regorus::Value::Undefined => Ok(Vec::new()),
            other => Err(EvalError::BadResult(truncate(&other.to_string()))),
        }
    };
    Ok((field("deny")?, field("warn")?))
}

fn result(
    policy: &Policy,
    outcome: Result<(Vec<Violation>, Vec<Violation>), EvalError>,
    duration: Duration,
) -> PolicyResult {
    let (deny, warn, error) = match outcome {
        Ok((deny, warn)) => (deny, warn, None),
        Err(error) => (vec![], vec![], Some(error)),
    };
    PolicyResult {
        id: policy.id.clone(),
        deny,
        warn,
        error,
        duration,
        enforcement: None,
    }
}

/// A `deny`/`warn` value: undefined (none), or a set/array of strings or objects with `msg`
/// (and optional `details`).
fn messages(value: &regorus::Value) -> Result<Vec<Violation>, EvalError> {
    if *value == regorus::Value::Undefined {
        return Ok(Vec::new());
    }
    let json: Value = serde_json::to_value(value).map_err(|e| EvalError::BadResult(e.to_string()))?;
    let Value::Array(items) = json else {
        return Err(EvalError::BadResult(truncate(&json.to_string())));
    };
    items
        .into_iter()
        .map(|item| Violation::from_element(item).map_err(|item| EvalError::BadResult(truncate(&item.to_string()))))
        .collect()
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Enforcement;
    use serde_json::json;

    fn bundle(modules: &[(&str, &str)]) -> Bundle {
        Bundle {
            modules: modules
                .iter()
                .map(|(n, t)| Module {
                    name: n.to_string(),
                    text: t.to_string(),
                })
                .collect(),
            tests: vec![],
            data: json!({}),
            gatekeeper: vec![],
        }
    }

    #[test]
    fn finds_policies_and_skips_helpers() {
        let set = PolicySet::build(
            &bundle(&[
                ("a.rego", "package a.one\ndeny contains \"x\" if input.bad\n"),
                ("b.rego", "package a.two\nwarn contains {\"msg\": \"w\"} if input.meh\n"),
                ("lib.rego", "package lib.helpers\nyes := true\n"),
            ]),
            json!({}),
            Duration::from_millis(500),
        )
        .unwrap();
        let ids: Vec<_> = set.policies().iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["a.one", "a.two"]);
        let results = set.evaluate(&json!({"bad": true, "meh": true}));
        assert_eq!(results[0].deny, ["x"]);
        assert_eq!(results[1].warn, ["w"]);
        let results = set.evaluate(&json!({}));
        assert!(results
            .iter()
            .all(|r| r.deny.is_empty() && r.warn.is_empty() && r.error.is_none()));
    }

    #[test]
    fn details_travel_with_their_message() {
        let set = PolicySet::build(
            &bundle(&[(
                "d.rego",
                "package d\ndeny contains {\"msg\": \"m\", \"details\": {\"n\": input.n}} if input.n\ndeny contains \"plain\" if input.n\n",
            )]),
            json!({}),
            Duration::from_millis(500),
        )
        .unwrap();
        let results = set.evaluate(&json!({"n": 3}));
        assert_eq!(
            results[0].deny,
            [
                Violation::new("plain"),
                Violation {
                    message: "m".into(),
                    details: Some(json!({"n": 3}))
                }
            ]
        );
    }

    #[test]
    fn a_library_without_policies_is_rejected() {
        let err = PolicySet::build(
            &bundle(&[("lib.rego", "package lib\nx := 1\n")]),
            json!({}),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, LoadError::NoPolicies));
    }

    #[test]
    fn syntax_errors_name_the_file() {
        let err = PolicySet::build(
            &bundle(&[("broken.rego", "package x\ndeny contains if {")]),
            json!({}),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("broken.rego"), "{err}");
    }

    #[test]
    fn a_failing_policy_reports_its_own_error() {
        let set = PolicySet::build(
            &bundle(&[
                ("bad.rego", "package bad\ndeny contains 1 if true\n"),
                ("good.rego", "package good\ndeny contains \"no\" if input.x\n"),
            ]),
            json!({}),
            Duration::from_millis(500),
        )
        .unwrap();
        let results = set.evaluate(&json!({"x": true}));
        assert!(matches!(results[0].error, Some(EvalError::BadResult(_))), "{results:?}");
        assert_eq!(results[1].deny, ["no"]);
    }

    /// 400³ iterations when `input.go`: a 20 ms limit is reached long before the VM's
    /// instruction cap (`MAX_INSTRUCTIONS`, an error rather than a timeout), on any machine.
    const RUNAWAY: &str = "package slow\ndeny contains \"x\" if {\n  input.go\n  some i in numbers.range(1, 400)\n  some j in numbers.range(1, 400)\n  some k in numbers.range(1, 400)\n  i + j + k < 0\n}\n";

    #[test]
    fn runaway_policies_time_out() {
        let set = PolicySet::build(&bundle(&[("slow.rego", RUNAWAY)]), json!({}), Duration::from_millis(20)).unwrap();
        let results = set.evaluate(&json!({"go": true}));
        assert_eq!(
            results[0].error,
            Some(EvalError::Timeout(Duration::from_millis(20))),
            "{results:?}"
        );
    }

    #[test]
    fn constraints_are_policies_beside_native_ones() {
        let template = "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {name: k8snolatest}\nspec:\n  crd: {spec: {names: {kind: K8sNoLatest}}}\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n      package k8snolatest\n      violation[{\"msg\": sprintf(\"%v in %v\", [c.image, input.portcullis.namespace.name])}] {\n        c := input.review.object.spec.containers[_]\n        endswith(c.image, \":latest\")\n      }\n";
        let constraint = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sNoLatest\nmetadata: {name: no-latest}\nspec: {enforcementAction: dryrun}\n";
        let mut b = bundle(&[("a.rego", "package a\ndeny contains \"x\" if input.bad\n")]);
        for (i, text) in [template, constraint].iter().enumerate() {
            b.gatekeeper.push(gatekeeper::Document {
                origin: format!("g{i}.yaml"),
                value: yaml_serde::from_str(text).unwrap(),
            });
        }
        let set = PolicySet::build(&b, json!({}), Duration::from_millis(500)).unwrap();
        let ids: Vec<_> = set.policies().iter().map(|p| (p.id.as_str(), p.kind)).collect();
        assert_eq!(
            ids,
            [
                ("a", PolicyKind::Native),
                ("K8sNoLatest/no-latest", PolicyKind::Constraint)
            ]
        );
        let input = json!({
            "request": {"namespace": "team-a", "operation": "CREATE", "object": {"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": "p", "namespace": "team-a"},
                        "spec": {"containers": [{"name": "c", "image": "nginx:latest"}]}}},
            "namespace": {"name": "team-a", "labels": {}}, "images": [], "risk_level": "high"
        });
        let results = set.evaluate(&input);
        assert_eq!(results.len(), 2);
        assert_eq!(results[1].deny, ["nginx:latest in team-a"]);
        assert_eq!(results[1].enforcement, Some(Enforcement::DryRun));
        // A library of constraints alone is a library.
        b.modules.clear();
        assert_eq!(
            PolicySet::build(&b, json!({}), Duration::from_millis(500))
                .unwrap()
                .policies()
                .len(),
            1
        );
    }

    #[test]
    fn the_default_library_runs_compiled_in_one_pass() {
        let bundle = super::super::Source::Embedded.read().unwrap();
        let set = PolicySet::build(&bundle, json!({}), Duration::from_millis(500)).unwrap();
        let interpreted: Vec<_> = set
            .policies()
            .iter()
            .filter(|p| p.engine != EngineKind::Compiled)
            .map(|p| (&p.id, &p.interpreted_because))
            .collect();
        assert!(interpreted.is_empty(), "{interpreted:?}");
        // What the load's log line says.
        let count = set.policies().len();
        assert_eq!(
            (
                set.on_engine(EngineKind::Compiled),
                set.on_engine(EngineKind::Interpreter)
            ),
            (count, 0)
        );
        assert_eq!(set.passes.len(), 1);
        assert_eq!(set.passes[0].1.len(), set.policies().len());
    }

    /// Results without their durations, which differ from run to run.
    fn decided(results: Vec<PolicyResult>) -> Vec<PolicyResult> {
        results
            .into_iter()
            .map(|r| PolicyResult {
                duration: Duration::ZERO,
                ..r
            })
            .collect()
    }

    #[test]
    fn the_pass_agrees_with_each_policy_alone_and_with_the_interpreter() {
        let b = bundle(&[
            ("lib.rego", "package lib\nbad_images contains i if { some i in input.images; not i.pinned }\n"),
            ("a.rego", "package a\nimport data.lib\ndeny contains sprintf(\"%v\", [i.ref]) if { some i in lib.bad_images }\n"),
            ("b.rego", "package b\nimport data.lib\nwarn contains {\"msg\": \"many\", \"details\": {\"n\": count(lib.bad_images)}} if count(lib.bad_images) > 1\n"),
            ("c.rego", "package c\ndeny := \"not a set\" if input.odd\n"),
            ("d.rego", "package d\ndeny contains \"x\" if input.x == 1\nwarn contains \"y\" if input.y\n"),
        ]);
        let compiled = PolicySet::build(&b, json!({}), Duration::from_millis(500)).unwrap();
        let interpreted =
            PolicySet::build_on(&b, json!({}), Duration::from_millis(500), EngineChoice::Interpreter).unwrap();
        assert!(compiled.policies().iter().all(|p| p.engine == EngineKind::Compiled));
        assert!(interpreted
            .policies()
            .iter()
            .all(|p| p.engine == EngineKind::Interpreter));
        assert_eq!(
            (
                interpreted.on_engine(EngineKind::Compiled),
                interpreted.on_engine(EngineKind::Interpreter)
            ),
            (0, 4)
        );
        let inputs = [
            json!({}),
            json!({"images": [{"ref": "a", "pinned": false}, {"ref": "b", "pinned": true}, {"ref": "c"}], "x": 1, "y": true}),
            json!({"odd": true, "x": 2}),
        ];
        for input in &inputs {
            let (sample, pass) = (compiled.evaluate_alone(input), compiled.evaluate(input));
            let expected = decided(interpreted.evaluate(input));
            assert_eq!(decided(sample), expected, "{input}");
            assert_eq!(decided(pass), expected, "{input}");
            assert_eq!(decided(interpreted.evaluate(input)), expected, "{input}");
        }
        let odd = decided(compiled.evaluate(&inputs[2]));
        assert!(matches!(odd[2].error, Some(EvalError::BadResult(_))), "{odd:?}");
        assert!(
            odd.iter().enumerate().all(|(i, r)| i == 2 || r.error.is_none()),
            "{odd:?}"
        );
    }

    #[test]
    fn an_error_in_the_pass_is_attributed_to_its_policy() {
        let set = PolicySet::build(
            &bundle(&[
                (
                    "bad.rego",
                    "package bad\nf(x) := 1 if x\nf(x) := 2 if x\ndeny contains \"n\" if f(input.x) > 0\n",
                ),
                ("good.rego", "package good\ndeny contains \"no\" if input.x\n"),
            ]),
            json!({}),
            Duration::from_millis(500),
        )
        .unwrap();
        for _ in 0..2 {
            let results = set.evaluate(&json!({"x": true}));
            assert!(matches!(results[0].error, Some(EvalError::Failed(_))), "{results:?}");
            assert_eq!(
                (results[1].deny.clone(), results[1].error.clone()),
                (vec![Violation::new("no")], None)
            );
        }
    }

    #[test]
    fn a_timeout_in_the_pass_is_attributed_to_its_policy() {
        // The first review evaluates every policy alone (the timing sample), so a runaway
        // policy there never reaches the pass: a quiet review goes first, and the pass itself
        // is shown to run out of time, so the review after it takes the policy-by-policy rerun.
        let b = bundle(&[
            ("denies.rego", "package denies\ndeny contains sprintf(\"no %v\", [input.name]) if input.go\n"),
            ("slow.rego", RUNAWAY),
            (
                "warns.rego",
                "package warns\nwarn contains {\"msg\": \"careful\", \"details\": {\"name\": input.name}} if input.go\n",
            ),
        ]);
        let timeout = Duration::from_millis(20);
        let review = json!({"go": true, "name": "web"});
        for kind in [EngineKind::Compiled, EngineKind::Interpreter] {
            let set = PolicySet::build_on(&b, json!({}), timeout, kind.choice()).unwrap();
            let ids: Vec<_> = set.policies().iter().map(|p| p.id.as_str()).collect();
            assert_eq!(ids, ["denies", "slow", "warns"]);
            assert!(set.policies().iter().all(|p| p.engine == kind), "{:?}", set.policies());
            // One pass holds all three, and on this review it is what runs out of time.
            assert_eq!(set.passes.len(), 1, "{kind:?}");
            assert_eq!(set.passes[0].1, [0, 1, 2], "{kind:?}");
            let pass = set.passes[0].0.eval(to_regorus(&review).unwrap());
            assert_eq!(pass, Err(EvalError::Timeout(timeout)), "{kind:?}");

            let quiet = set.evaluate(&json!({"name": "web"}));
            assert!(
                quiet
                    .iter()
                    .all(|r| r.deny.is_empty() && r.warn.is_empty() && r.error.is_none()),
                "{kind:?}: {quiet:?}"
            );
            let alone = decided(set.evaluate_alone(&review));
            let results = decided(set.evaluate(&review));
            assert_eq!(results[1].id, "slow");
            assert_eq!(
                results[1].error,
                Some(EvalError::Timeout(timeout)),
                "{kind:?}: {results:?}"
            );
            assert!(results[1].deny.is_empty() && results[1].warn.is_empty(), "{results:?}");
            assert_eq!(
                (results[0].deny.clone(), results[0].error.clone()),
                (vec![Violation::new("no web")], None),
                "{kind:?}"
            );
            let careful = Violation {
                message: "careful".into(),
                details: Some(json!({"name": "web"})),
            };
            assert_eq!(
                (results[2].warn.clone(), results[2].error.clone()),
                (vec![careful], None),
                "{kind:?}"
            );
            // Each result is the one its policy gives alone.
            assert_eq!(results, alone, "{kind:?}");
        }
    }

    #[test]
    fn the_first_review_times_every_policy_then_one_a_sample_in_turn() {
        let timing = Timing {
            created: Instant::now().checked_sub(Duration::from_secs(60)).unwrap(),
            last_sample: AtomicU64::new(u64::MAX),
            samples: AtomicUsize::new(0),
            alone_nanos: (0..3).map(|_| AtomicU64::new(0)).collect(),
            shares: (0..3).map(|_| AtomicU32::new(0)).collect(),
        };
        assert_eq!(timing.take_sample(), Sample::All);
        // Not a full interval since: nothing more.
        assert_eq!(timing.take_sample(), Sample::None);
        let mut taken = Vec::new();
        for _ in 0..4 {
            timing.last_sample.store(0, Ordering::Relaxed);
            taken.push(timing.take_sample());
        }
        assert_eq!(taken, [Sample::One(0), Sample::One(1), Sample::One(2), Sample::One(0)]);

        for (index, nanos) in [(0, 100), (1, 300), (2, 0)] {
            timing.record_alone(index, Duration::from_nanos(nanos));
        }
        let share = |i: usize| f32::from_bits(timing.shares[i].load(Ordering::Relaxed));
        timing.learn_shares([&[0, 1][..]]);
        assert_eq!((share(0), share(1)), (0.25, 0.75));
        // A pass whose members were never timed shares its time evenly.
        timing.learn_shares([&[2][..]]);
        assert_eq!(share(2), 1.0);
    }

    #[test]
    fn a_library_may_not_use_the_generated_package() {
        let err = PolicySet::build(
            &bundle(&[("x.rego", "package portcullis_one_pass\ndeny contains \"x\" if true\n")]),
            json!({}),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
    }

    #[test]
    fn extra_data_reaches_policies() {
        let set = PolicySet::build(
            &bundle(&[(
                "r.rego",
                "package r\ndeny contains r if { some r in data.portcullis.config.images.registries.allow }\n",
            )]),
            json!({"portcullis": {"config": {"images": {"registries": {"allow": ["ghcr.io/acme"]}}}}}),
            Duration::from_millis(500),
        )
        .unwrap();
        assert_eq!(set.evaluate(&json!({}))[0].deny, ["ghcr.io/acme"]);
    }
}
