//! Reading a Constraint (`constraints.gatekeeper.sh`): its match, parameters and enforcement.

use serde_json::{Map, Value};

use crate::results::Enforcement;

use super::matcher::Match;
use super::review::metadata;
use super::schema;
use super::template::Template;

#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    pub kind: String,
    pub name: String,
    pub matcher: Match,
    /// `spec.parameters`, `{}` when absent (as Gatekeeper defaults it).
    pub parameters: Value,
    pub enforcement: Enforcement,
}

/// Every problem of a constraint, each as `field: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintProblems {
    pub problems: Vec<String>,
    /// Some of them are `spec.parameters` not fitting the template's schema.
    pub invalid_parameters: bool,
}

pub fn is_constraint(document: &Value) -> bool {
    document
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("constraints.gatekeeper.sh/"))
}

impl Constraint {
    /// The policy id in findings, metrics and enforcement overrides: `<kind>/<name>`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    /// Reads a constraint of `template`'s kind, reporting every problem at once. Problems of
    /// `spec.parameters` against the template's schema are listed by field.
    pub fn parse(document: &Value, template: &Template) -> Result<Constraint, ConstraintProblems> {
        let mut problems = Vec::new();
        let kind = document
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = metadata(document, "name").to_string();
        if name.is_empty() {
            problems.push("metadata.name: required".into());
        }
        let spec = document.get("spec").cloned().unwrap_or(Value::Object(Map::new()));
        if !spec.is_object() {
            problems.push("spec: must be an object".into());
        }
        let matcher = Match::parse(spec.get("match").filter(|m| !m.is_null()), "spec.match", &mut problems);
        let parameters = spec
            .get("parameters")
            .filter(|p| !p.is_null())
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        let parameter_problems = match &template.parameters_schema {
            Some(schema) => schema::validate(schema, &parameters, "spec.parameters"),
            None => Vec::new(),
        };
        let invalid_parameters = !parameter_problems.is_empty();
        problems.extend(parameter_problems);
        let enforcement = match spec.get("enforcementAction").and_then(Value::as_str) {
            None | Some("") => Enforcement::Deny,
            Some(text) => match Enforcement::parse(text) {
                Some(action) => action,
                None => {
                    problems.push(format!(
                        "spec.enforcementAction: {text:?} is not supported (deny, warn or dryrun)"
                    ));
                    Enforcement::Deny
                }
            },
        };
        if problems.is_empty() {
            Ok(Constraint {
                kind,
                name,
                matcher,
                parameters,
                enforcement,
            })
        } else {
            Err(ConstraintProblems {
                problems,
                invalid_parameters,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::gatekeeper::template::RegoVersion;
    use serde_json::json;

    fn template() -> Template {
        Template {
            name: "k8sdemo".into(),
            kind: "K8sDemo".into(),
            rego: String::new(),
            libs: vec![],
            version: RegoVersion::V0,
            parameters_schema: Some(
                json!({"type": "object", "properties": {"repos": {"type": "array", "items": {"type": "string"}}}}),
            ),
        }
    }

    #[test]
    fn reads_a_constraint() {
        let c = Constraint::parse(
            &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sDemo",
                    "metadata": {"name": "only-acme"},
                    "spec": {"enforcementAction": "warn", "parameters": {"repos": ["acme/"]}}}),
            &template(),
        )
        .unwrap();
        assert_eq!(c.id(), "K8sDemo/only-acme");
        assert_eq!(c.enforcement, Enforcement::Warn);
        assert_eq!(c.parameters, json!({"repos": ["acme/"]}));
        let bare = Constraint::parse(
            &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sDemo", "metadata": {"name": "x"}}),
            &template(),
        )
        .unwrap();
        assert_eq!((bare.parameters, bare.enforcement), (json!({}), Enforcement::Deny));
    }

    #[test]
    fn lists_every_problem() {
        let err = Constraint::parse(
            &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sDemo", "metadata": {},
                    "spec": {"enforcementAction": "scoped", "parameters": {"repos": "acme/"},
                             "match": {"scope": "Somewhere"}}}),
            &template(),
        )
        .unwrap_err();
        assert!(err.invalid_parameters);
        assert_eq!(
            err.problems,
            [
                "metadata.name: required",
                "spec.match.scope: must be \"*\", \"Cluster\" or \"Namespaced\"",
                "spec.parameters.repos: must be an array, not the string \"acme/\"",
                "spec.enforcementAction: \"scoped\" is not supported (deny, warn or dryrun)",
            ]
        );
    }
}
