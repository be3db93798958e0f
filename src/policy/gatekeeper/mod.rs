//! Gatekeeper policies: ConstraintTemplates and their Constraints, evaluated as Gatekeeper does.
//!
//! Each template gets a regorus engine of its own (its Rego and `libs`, in the template's Rego
//! version), so two templates may use the same package names as they can in Gatekeeper. A
//! constraint applies when its `spec.match` matches the review; its template's `violation`
//! rule is then evaluated with `input.review` (the AdmissionRequest), `input.parameters` (the
//! constraint's `spec.parameters`) and `input.portcullis` (portcullis's facts: images, risk
//! level, namespace; see docs/gatekeeper-compatibility.md). Every violation with a `msg`
//! becomes a finding of the policy `<kind>/<name>`, at the constraint's `enforcementAction`.

pub mod constraint;
pub mod matcher;
pub mod review;
pub mod schema;
pub mod template;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::evaluator::{EngineChoice, EngineKind, Evaluator};
use super::input::Request;
use super::rego::{configured_engine, to_regorus as convert, ConvertError};
use crate::results::{EvalError, PolicyResult, Violation};
use constraint::Constraint;
use matcher::Target;
use template::{RegoVersion, Template};

/// A YAML document that is a template or a constraint, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// `file` or `file#N` for the N-th document of a multi-document file.
    pub origin: String,
    pub value: Value,
}

/// Whether a document is Gatekeeper's to load (a ConstraintTemplate or a Constraint).
pub fn is_gatekeeper(document: &Value) -> bool {
    template::is_template(document) || constraint::is_constraint(document)
}

#[derive(Debug, thiserror::Error)]
#[error("Gatekeeper policies could not be loaded:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct GatekeeperError {
    pub problems: Vec<String>,
    /// Some constraint's `spec.parameters` did not fit its template's schema.
    pub invalid_parameters: bool,
}

/// Why an inventory could not be given to the templates; the installed set stays as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("the inventory could not be converted: {0}")]
    Convert(#[source] super::rego::ConvertError),
    #[error("the inventory could not be added to template {template}: {message}")]
    Install { template: String, message: String },
}

/// `data.inventory`, converted for regorus once; every template's engine shares it (regorus
/// values are reference-counted), and a policy reload reuses it.
#[derive(Clone)]
pub struct Inventory(regorus::Value);

impl Inventory {
    /// From an inventory document laid out as [`review::inventory`] builds it.
    pub fn new(document: &Value) -> Result<Inventory, InventoryError> {
        convert(&json!({ "inventory": document }))
            .map(Inventory)
            .map_err(InventoryError::Convert)
    }
}

/// A template compiled into its own prepared engine: its `data.<package>.violation`.
#[derive(Clone)]
struct CompiledTemplate {
    template: Template,
    violation: Evaluator,
    /// Why it is not compiled, when it could have been.
    interpreted_because: Option<String>,
}

/// The loaded templates and constraints.
#[derive(Clone, Default)]
pub struct GatekeeperSet {
    templates: BTreeMap<String, CompiledTemplate>,
    constraints: Vec<Constraint>,
}

impl std::fmt::Debug for GatekeeperSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatekeeperSet")
            .field("templates", &self.templates.keys().collect::<Vec<_>>())
            .field(
                "constraints",
                &self.constraints.iter().map(Constraint::id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What a review brings besides the request: namespace labels and portcullis's facts.
pub struct Context<'a> {
    /// The labels of the request's namespace; `None` when that namespace is unknown.
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
    /// `input.portcullis`.
    pub facts: &'a Value,
    /// `input.review.namespaceObject`.
    pub namespace_object: Value,
    /// Where every evaluation stops at the latest, beside the time limit.
    pub deadline: Option<Instant>,
}

impl GatekeeperSet {
    /// [`GatekeeperSet::build_on`] with every template compiled where it compiles.
    pub fn build(documents: &[Document], timeout: Duration) -> Result<GatekeeperSet, GatekeeperError> {
        GatekeeperSet::build_on(documents, timeout, EngineChoice::default())
    }

    /// Compiles every template (on the engines `choice` allows), then reads every constraint
    /// against its template. All problems of all documents are reported together; nothing is
    /// loaded when there is one.
    pub fn build_on(
        documents: &[Document],
        timeout: Duration,
        choice: EngineChoice,
    ) -> Result<GatekeeperSet, GatekeeperError> {
        let mut problems = Vec::new();
        let mut invalid_parameters = false;
        let mut set = GatekeeperSet::default();
        let mut origins: BTreeMap<String, String> = BTreeMap::new();
        for document in documents.iter().filter(|d| template::is_template(&d.value)) {
            let template = match Template::parse(&document.value) {
                Ok(template) => template,
                Err(found) => {
                    problems.extend(found.into_iter().map(|p| format!("{}: {p}", document.origin)));
                    continue;
                }
            };
            if let Some(first) = origins.get(&template.kind) {
                problems.push(format!(
                    "{}: a second template for kind {} (the first is in {first})",
                    document.origin, template.kind
                ));
                continue;
            }
            origins.insert(template.kind.clone(), document.origin.clone());
            match compile(&template, &document.origin, timeout, choice) {
                Ok(compiled) => {
                    set.templates.insert(template.kind.clone(), compiled);
                }
                Err(found) => problems.extend(found),
            }
        }
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        for document in documents.iter().filter(|d| constraint::is_constraint(&d.value)) {
            let kind = document.value.get("kind").and_then(Value::as_str).unwrap_or_default();
            let Some(compiled) = set.templates.get(kind) else {
                // A template that failed to load has already been reported.
                if !origins.contains_key(kind) {
                    problems.push(format!(
                        "{}: constraint kind {kind:?} has no ConstraintTemplate among the policies",
                        document.origin
                    ));
                }
                continue;
            };
            match Constraint::parse(&document.value, &compiled.template) {
                Ok(constraint) => {
                    let id = constraint.id();
                    match ids.get(&id) {
                        Some(first) => problems.push(format!(
                            "{}: constraint {id} is defined twice (first in {first})",
                            document.origin
                        )),
                        None => {
                            ids.insert(id, document.origin.clone());
                            set.constraints.push(constraint);
                        }
                    }
                }
                Err(found) => {
                    invalid_parameters |= found.invalid_parameters;
                    let name = document
                        .value
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("(unnamed)");
                    problems.extend(
                        found
                            .problems
                            .into_iter()
                            .map(|p| format!("{}: constraint {kind}/{name}: {p}", document.origin)),
                    );
                }
            }
        }
        if problems.is_empty() {
            set.constraints.sort_by_key(Constraint::id);
            Ok(set)
        } else {
            Err(GatekeeperError {
                problems,
                invalid_parameters,
            })
        }
    }

    pub fn constraints(&self) -> &[Constraint] {
        &self.constraints
    }

    /// Each template's kind and the engine it runs on.
    pub fn template_engines(&self) -> Vec<(&str, EngineKind)> {
        self.templates
            .iter()
            .map(|(kind, t)| (kind.as_str(), t.violation.kind()))
            .collect()
    }

    /// The engine a constraint's template runs on.
    pub fn engine_of(&self, constraint: &Constraint) -> EngineKind {
        self.templates
            .get(&constraint.kind)
            .map_or(EngineKind::Interpreter, |t| t.violation.kind())
    }

    /// Why a constraint's template is not compiled, when it could have been.
    pub fn interpreted_because(&self, constraint: &Constraint) -> Option<String> {
        self.templates
            .get(&constraint.kind)
            .and_then(|t| t.interpreted_because.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty() && self.constraints.is_empty()
    }

    /// The same set with `data.inventory`: a suite case's inventory objects, or the cluster's
    /// synced objects. Each engine is prepared again, so evaluations stay as fast as before.
    pub fn with_inventory(&self, inventory: &Inventory) -> Result<GatekeeperSet, InventoryError> {
        let mut set = self.clone();
        for (name, compiled) in set.templates.iter_mut() {
            compiled.violation =
                compiled
                    .violation
                    .with_data(&inventory.0)
                    .map_err(|message| InventoryError::Install {
                        template: name.clone(),
                        message,
                    })?;
        }
        Ok(set)
    }

    /// Evaluates every constraint whose match selects `request` (an AdmissionRequest).
    /// Never fails: a constraint that cannot be evaluated reports its error.
    pub fn evaluate(&self, request: Request, context: &Context) -> Vec<PolicyResult> {
        // `input.review` is built in the engine's values: a request read into them is used as
        // it is, one read by serde is converted once.
        let review = || {
            review::of_request(
                &request.engine().map_err(unconvertible)?,
                to_regorus(&context.namespace_object)?,
            )
        };
        match request {
            Request::Json(request) => self.evaluate_review(request, context, review),
            Request::Engine(request) => self.evaluate_review(request, context, review),
        }
    }

    /// The constraints matched against `request`; `review` builds `input.review` for the engine
    /// when a constraint first matches, and every evaluation shares it (regorus values are
    /// reference-counted), as it shares the facts.
    fn evaluate_review<D: crate::document::Document>(
        &self,
        request: &D,
        context: &Context,
        review: impl FnOnce() -> Result<regorus::Value, EvalError>,
    ) -> Vec<PolicyResult> {
        // A DELETE's review shows `oldObject` as `object` too: matching either is the same.
        let objects: Vec<&D> = ["object", "oldObject"]
            .iter()
            .filter_map(|field| request.field(field).filter(|o| o.is_object()))
            .collect();
        let target = Target {
            objects,
            namespace: request.text_of("namespace").unwrap_or_default(),
            namespace_labels: context.namespace_labels,
        };
        let shared = std::cell::LazyCell::new(|| Ok::<_, EvalError>((review()?, to_regorus(context.facts)?)));
        let mut results = Vec::new();
        for constraint in &self.constraints {
            let started = Instant::now();
            let mut result = PolicyResult {
                id: constraint.id(),
                deny: vec![],
                warn: vec![],
                error: None,
                duration: Duration::ZERO,
                enforcement: Some(constraint.enforcement),
            };
            match constraint.matcher.matches(&target) {
                Ok(false) => continue,
                Ok(true) => match (*shared)
                    .clone()
                    .and_then(|(review, facts)| self.violations(constraint, review, facts, context.deadline))
                {
                    Ok(messages) => result.deny = messages,
                    Err(error) => result.error = Some(error),
                },
                Err(error) => result.error = Some(EvalError::Match(error.to_string())),
            }
            result.duration = started.elapsed();
            results.push(result);
        }
        results
    }

    fn violations(
        &self,
        constraint: &Constraint,
        review: regorus::Value,
        facts: regorus::Value,
        deadline: Option<Instant>,
    ) -> Result<Vec<Violation>, EvalError> {
        let Some(compiled) = self.templates.get(&constraint.kind) else {
            return Err(EvalError::Failed(format!("no template for kind {}", constraint.kind)));
        };
        let mut input = regorus::Value::new_object();
        let fields = input.as_object_mut().map_err(|e| EvalError::Failed(e.to_string()))?;
        fields.insert("review".into(), review);
        fields.insert("parameters".into(), to_regorus(&constraint.parameters)?);
        fields.insert("portcullis".into(), facts);
        messages(&compiled.violation.eval_before(input, deadline)?)
    }
}

fn to_regorus(value: &Value) -> Result<regorus::Value, EvalError> {
    convert(value).map_err(unconvertible)
}

fn unconvertible(error: ConvertError) -> EvalError {
    EvalError::Failed(format!("input could not be converted: {error}"))
}

/// Compiles a template's Rego and libs into a prepared engine; problems name the template.
fn compile(
    template: &Template,
    origin: &str,
    timeout: Duration,
    choice: EngineChoice,
) -> Result<CompiledTemplate, Vec<String>> {
    let mut engine = configured_engine(timeout);
    engine.set_rego_v0(template.version == RegoVersion::V0);
    let mut problems = Vec::new();
    let module_name = format!("{origin}#{}", template.name);
    for (index, lib) in template.libs.iter().enumerate() {
        if let Err(e) = engine.add_policy(format!("{module_name}.libs[{index}]"), lib.clone()) {
            problems.push(format!(
                "template {}: libs[{index}]: {}",
                template.name,
                e.to_string().trim()
            ));
        }
    }
    let package = match engine.add_policy(module_name.clone(), template.rego.clone()) {
        Ok(package) => package,
        Err(e) => {
            problems.push(format!("template {}: {}", template.name, e.to_string().trim()));
            return Err(problems);
        }
    };
    if !engine
        .has_declared_rule_rooted_at(&module_name, "violation")
        .unwrap_or(false)
    {
        problems.push(format!(
            "template {}: its Rego defines no violation rule",
            template.name
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let rule = format!("{package}.violation");
    let (violation, interpreted_because) =
        Evaluator::new(&engine, &regorus::Value::new_object(), &rule, timeout, choice);
    Ok(CompiledTemplate {
        template: template.clone(),
        violation,
        interpreted_because,
    })
}

/// Messages of `violation`: each element's `msg`, with its `details`. An element without
/// `msg` is no violation (Gatekeeper drops it too); a `msg` that is not a string is an error.
fn messages(value: &regorus::Value) -> Result<Vec<Violation>, EvalError> {
    if *value == regorus::Value::Undefined {
        return Ok(Vec::new());
    }
    let json: Value = serde_json::to_value(value).map_err(|e| EvalError::Failed(e.to_string()))?;
    let Value::Array(items) = json else {
        return Err(EvalError::Failed(format!("violation is {json}, not a set")));
    };
    let mut out = Vec::new();
    for item in items {
        match item.get("msg") {
            None => {}
            Some(Value::String(_)) => out.extend(Violation::from_element(item).ok()),
            Some(other) => return Err(EvalError::Failed(format!("violation msg {other} is not a string"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
