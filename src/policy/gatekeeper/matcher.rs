//! A constraint's `spec.match`: which reviews it applies to, with Gatekeeper's semantics.
//!
//! Every criterion that is set must hold, for the object or (on UPDATE and DELETE) the old
//! object: `kinds`, `scope`, `namespaces`, `excludedNamespaces`, `labelSelector`,
//! `namespaceSelector`, `name`. Namespace lists and `name` accept one `*` at the start
//! and/or the end (`kube-*`, `*-system`, `*dev*`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::review::metadata;
use crate::document::Document;

/// Why a constraint's match could not be decided for a review.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    #[error("the review has neither object nor oldObject")]
    NoObject,
    #[error("namespaceSelector for an object in namespace {0:?}, whose labels are not known")]
    UnknownNamespace(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Match {
    kinds: Vec<KindSelector>,
    scope: Scope,
    namespaces: Vec<String>,
    excluded_namespaces: Vec<String>,
    label_selector: Option<LabelSelector>,
    namespace_selector: Option<LabelSelector>,
    name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct KindSelector {
    groups: Vec<String>,
    kinds: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Scope {
    #[default]
    Any,
    Cluster,
    Namespaced,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct LabelSelector {
    match_labels: BTreeMap<String, String>,
    expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// What a review offers to match against, in either form a review is held (`document`).
pub struct Target<'a, D> {
    /// `object` and `oldObject` of the review, whichever are objects.
    pub objects: Vec<&'a D>,
    /// The request's namespace (empty for cluster-scoped objects).
    pub namespace: &'a str,
    /// That namespace's labels, when the namespace is known.
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
}

impl Match {
    /// Reads `spec.match`; every malformed part is reported, under `path`.
    pub fn parse(value: Option<&Value>, path: &str, problems: &mut Vec<String>) -> Match {
        let mut result = Match::default();
        let Some(value) = value else { return result };
        let Some(map) = value.as_object() else {
            problems.push(format!("{path}: must be an object"));
            return result;
        };
        for (key, item) in map {
            let at = format!("{path}.{key}");
            match key.as_str() {
                "kinds" => {
                    result.kinds = list(item, &at, problems)
                        .into_iter()
                        .enumerate()
                        .filter_map(|(i, kind)| {
                            if !kind.is_object() {
                                problems.push(format!("{at}[{i}]: must be an object with apiGroups and kinds"));
                                return None;
                            }
                            Some(KindSelector {
                                groups: strings(kind.get("apiGroups"), &format!("{at}[{i}].apiGroups"), problems),
                                kinds: strings(kind.get("kinds"), &format!("{at}[{i}].kinds"), problems),
                            })
                        })
                        .collect()
                }
                "scope" => {
                    result.scope = match item.as_str() {
                        Some("*") => Scope::Any,
                        Some("Cluster") => Scope::Cluster,
                        Some("Namespaced") => Scope::Namespaced,
                        _ => {
                            problems.push(format!("{at}: must be \"*\", \"Cluster\" or \"Namespaced\""));
                            Scope::Any
                        }
                    }
                }
                "namespaces" => result.namespaces = strings(Some(item), &at, problems),
                "excludedNamespaces" => result.excluded_namespaces = strings(Some(item), &at, problems),
                "labelSelector" => result.label_selector = LabelSelector::parse(item, &at, problems),
                "namespaceSelector" => result.namespace_selector = LabelSelector::parse(item, &at, problems),
                "name" => match item.as_str() {
                    Some(name) => result.name = Some(name.to_string()).filter(|n| !n.is_empty()),
                    None => problems.push(format!("{at}: must be a string")),
                },
                // Only original objects are reviewed here, which is what "Original" and "All" select.
                "source" => match item.as_str() {
                    Some("All" | "Original") => {}
                    _ => problems.push(format!(
                        "{at}: only \"All\" and \"Original\" are supported (no expansion of generated objects)"
                    )),
                },
                _ => problems.push(format!("{at}: unknown field")),
            }
        }
        result
    }

    /// Whether the constraint applies. `Err` when it cannot be told (a namespace selector on a
    /// namespaced object whose namespace is unknown), as Gatekeeper reports it.
    pub fn matches<D: Document>(&self, target: &Target<D>) -> Result<bool, MatchError> {
        if target.objects.is_empty() {
            return Err(MatchError::NoObject);
        }
        for object in &target.objects {
            if self.matches_object(*object, target)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether `spec.match.kinds` selects objects of `group` and `kind` (the audit lists the
    /// kinds some constraint selects).
    pub fn selects_kind(&self, group: &str, kind: &str) -> bool {
        self.kinds.is_empty()
            || self
                .kinds
                .iter()
                .any(|k| any_or(&k.kinds, kind) && any_or(&k.groups, group))
    }

    fn matches_object<D: Document>(&self, object: &D, target: &Target<D>) -> Result<bool, MatchError> {
        let (group, kind) = group_kind(object);
        let is_namespace = kind == "Namespace" && group.is_empty();
        let (name, object_namespace) = (metadata(object, "name"), metadata(object, "namespace"));
        let namespace = if is_namespace {
            name
        } else if !target.namespace.is_empty() {
            target.namespace
        } else {
            object_namespace
        };
        let has_namespace = !namespace.is_empty() && !is_namespace;

        let kind_ok = self.selects_kind(group, kind);
        let scope_ok = match self.scope {
            Scope::Any => true,
            Scope::Cluster => is_namespace || !has_namespace,
            Scope::Namespaced => has_namespace,
        };
        let in_namespaces = self.namespaces.is_empty()
            || namespace.is_empty()
            || self.namespaces.iter().any(|p| wildcard(p, namespace));
        let not_excluded = namespace.is_empty() || !self.excluded_namespaces.iter().any(|p| wildcard(p, namespace));
        let labels_ok = self
            .label_selector
            .as_ref()
            .is_none_or(|s| s.matches(&labels(object.at("/metadata/labels"))));
        let name_ok = self.name.as_ref().is_none_or(|pattern| {
            let generate_name = object.text_at("/metadata/generateName");
            wildcard(pattern, name) || generate_name.is_some_and(|g| pattern.ends_with('*') && wildcard(pattern, g))
        });
        if !(kind_ok && scope_ok && in_namespaces && not_excluded && labels_ok && name_ok) {
            return Ok(false);
        }
        let Some(selector) = &self.namespace_selector else {
            return Ok(true);
        };
        if is_namespace {
            return Ok(selector.matches(&labels(object.at("/metadata/labels"))));
        }
        if namespace.is_empty() {
            return Ok(true);
        }
        match target.namespace_labels {
            Some(labels) => Ok(selector.matches(labels)),
            None => Err(MatchError::UnknownNamespace(namespace.to_string())),
        }
    }
}

impl LabelSelector {
    fn parse(value: &Value, path: &str, problems: &mut Vec<String>) -> Option<LabelSelector> {
        let Some(map) = value.as_object() else {
            problems.push(format!("{path}: must be an object"));
            return None;
        };
        let mut selector = LabelSelector::default();
        for (key, item) in map {
            let at = format!("{path}.{key}");
            match key.as_str() {
                "matchLabels" => match item.as_object() {
                    Some(labels) => {
                        for (label, value) in labels {
                            match value.as_str() {
                                Some(v) => {
                                    selector.match_labels.insert(label.clone(), v.to_string());
                                }
                                None => problems.push(format!("{at}.{label}: must be a string")),
                            }
                        }
                    }
                    None => problems.push(format!("{at}: must be an object")),
                },
                "matchExpressions" => {
                    for (i, expression) in list(item, &at, problems).into_iter().enumerate() {
                        let at = format!("{at}[{i}]");
                        let key = expression.get("key").and_then(Value::as_str);
                        let operator = match expression.get("operator").and_then(Value::as_str) {
                            Some("In") => Some(Operator::In),
                            Some("NotIn") => Some(Operator::NotIn),
                            Some("Exists") => Some(Operator::Exists),
                            Some("DoesNotExist") => Some(Operator::DoesNotExist),
                            _ => None,
                        };
                        let values = strings(expression.get("values"), &format!("{at}.values"), problems);
                        if key.is_none() {
                            problems.push(format!("{at}.key: required"));
                        }
                        match operator {
                            None => problems.push(format!("{at}.operator: must be In, NotIn, Exists or DoesNotExist")),
                            Some(Operator::In | Operator::NotIn) if values.is_empty() => {
                                problems.push(format!("{at}.values: must not be empty for In and NotIn"))
                            }
                            Some(Operator::Exists | Operator::DoesNotExist) if !values.is_empty() => {
                                problems.push(format!("{at}.values: must be empty for Exists and DoesNotExist"))
                            }
                            _ => {}
                        }
                        if let (Some(key), Some(operator)) = (key, operator) {
                            selector.expressions.push(Requirement {
                                key: key.to_string(),
                                operator,
                                values,
                            });
                        }
                    }
                }
                _ => problems.push(format!("{at}: unknown field")),
            }
        }
        Some(selector)
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    Operator::In => value.is_some_and(|v| r.values.contains(v)),
                    Operator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                    Operator::Exists => value.is_some(),
                    Operator::DoesNotExist => value.is_none(),
                }
            })
    }
}

/// `(group, kind)` from an object's `apiVersion` and `kind`.
pub fn group_kind(object: &impl Document) -> (&str, &str) {
    let api_version = object.text_of("apiVersion").unwrap_or_default();
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or_default();
    let kind = object.text_of("kind").unwrap_or_default();
    (group, kind)
}

/// An object's labels as strings (others are ignored).
pub fn labels(value: Option<&impl Document>) -> BTreeMap<String, String> {
    value
        .and_then(Document::fields)
        .map(|fields| {
            fields
                .filter_map(|(k, v)| Some((k.to_string(), v.text()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn any_or(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|item| item == "*" || item == value)
}

/// Gatekeeper's globs: `*` only at the start and/or the end.
fn wildcard(pattern: &str, candidate: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(rest), Some(_)) => {
            let middle = rest.strip_suffix('*').unwrap_or(rest);
            candidate.contains(middle)
        }
        (Some(suffix), None) => candidate.ends_with(suffix),
        (None, Some(prefix)) => candidate.starts_with(prefix),
        (None, None) => pattern == candidate,
    }
}

fn list<'a>(value: &'a Value, path: &str, problems: &mut Vec<String>) -> Vec<&'a Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        _ => {
            problems.push(format!("{path}: must be a list"));
            Vec::new()
        }
    }
}

fn strings(value: Option<&Value>, path: &str, problems: &mut Vec<String>) -> Vec<String> {
    let Some(value) = value else { return Vec::new() };
    let mut out = Vec::new();
    for (i, item) in list(value, path, problems).into_iter().enumerate() {
        match item.as_str() {
            Some(text) => out.push(text.to_string()),
            None => problems.push(format!("{path}[{i}]: must be a string")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Match {
        let mut problems = Vec::new();
        let m = Match::parse(Some(&value), "spec.match", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        m
    }

    fn pod(namespace: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": namespace, "labels": labels}})
    }

    fn matches(m: &Match, object: &Value, ns_labels: Option<&BTreeMap<String, String>>) -> Result<bool, MatchError> {
        let namespace = metadata(object, "namespace");
        m.matches(&Target {
            objects: vec![object],
            namespace,
            namespace_labels: ns_labels,
        })
    }

    #[test]
    fn kinds_and_groups() {
        let m = parse(
            json!({"kinds": [{"apiGroups": ["apps"], "kinds": ["Deployment"]}, {"apiGroups": [""], "kinds": ["Pod"]}]}),
        );
        assert_eq!(matches(&m, &pod("a", json!({})), None), Ok(true));
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        assert_eq!(matches(&m, &deployment, None), Ok(true));
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}});
        assert_eq!(matches(&m, &job, None), Ok(false));
        let any = parse(json!({"kinds": [{"apiGroups": ["*"], "kinds": ["*"]}]}));
        assert_eq!(matches(&any, &job, None), Ok(true));
    }

    #[test]
    fn namespace_globs() {
        let m = parse(json!({"namespaces": ["team-*", "prod"], "excludedNamespaces": ["*-sandbox"]}));
        assert_eq!(matches(&m, &pod("team-a", json!({})), None), Ok(true));
        assert_eq!(matches(&m, &pod("prod", json!({})), None), Ok(true));
        assert_eq!(matches(&m, &pod("production", json!({})), None), Ok(false));
        assert_eq!(matches(&m, &pod("team-a-sandbox", json!({})), None), Ok(false));
        let contains = parse(json!({"namespaces": ["*dev*"]}));
        assert_eq!(matches(&contains, &pod("my-dev-ns", json!({})), None), Ok(true));
        // A cluster-scoped object is not filtered by namespace lists.
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}});
        assert_eq!(matches(&m, &node, None), Ok(true));
    }

    #[test]
    fn selectors_and_scope() {
        let m = parse(json!({
            "labelSelector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["test"]}]},
            "namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]},
            "scope": "Namespaced"
        }));
        let prod = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let dev = BTreeMap::from([("env".to_string(), "dev".to_string())]);
        assert_eq!(matches(&m, &pod("a", json!({"app": "web"})), Some(&prod)), Ok(true));
        assert_eq!(matches(&m, &pod("a", json!({"app": "web"})), Some(&dev)), Ok(false));
        assert_eq!(
            matches(&m, &pod("a", json!({"app": "web", "tier": "test"})), Some(&prod)),
            Ok(false)
        );
        assert!(matches(&m, &pod("a", json!({"app": "web"})), None).is_err());
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "labels": {"app": "web"}}});
        assert_eq!(matches(&m, &node, None), Ok(false));
    }

    #[test]
    fn names() {
        let m = parse(json!({"name": "web-*"}));
        assert_eq!(matches(&m, &pod("a", json!({})), None), Ok(true));
        let m = parse(json!({"name": "db"}));
        assert_eq!(matches(&m, &pod("a", json!({})), None), Ok(false));
    }

    #[test]
    fn malformed_matches_list_every_problem() {
        let mut problems = Vec::new();
        Match::parse(
            Some(
                &json!({"kinds": "Pod", "scope": "Everywhere", "namespaces": [1], "namespaceSelector": {"matchLabels": {"a": 1}},
                         "labelSelector": {"matchExpressions": [{"key": "a", "operator": "Has"}]}, "color": "red"}),
            ),
            "spec.match",
            &mut problems,
        );
        assert_eq!(
            problems,
            [
                "spec.match.color: unknown field",
                "spec.match.kinds: must be a list",
                "spec.match.labelSelector.matchExpressions[0].operator: must be In, NotIn, Exists or DoesNotExist",
                "spec.match.namespaceSelector.matchLabels.a: must be a string",
                "spec.match.namespaces[0]: must be a string",
                "spec.match.scope: must be \"*\", \"Cluster\" or \"Namespaced\"",
            ]
        );
        let mut problems = Vec::new();
        Match::parse(Some(&json!({"kinds": ["Pod"]})), "m", &mut problems);
        assert_eq!(problems, ["m.kinds[0]: must be an object with apiGroups and kinds"]);
    }
}
