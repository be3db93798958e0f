//! The documents a template sees: `input.review`, and `data.inventory` for suites.

use serde_json::{json, Map, Value};

use crate::document::Document;
use crate::results::EvalError;

/// The review gator builds for a plain object: only `kind`, `name`, `namespace` and `object`
/// are filled; the other AdmissionRequest fields keep their empty values (no operation, no
/// user), exactly as they serialise in Gatekeeper.
pub fn synthetic(object: &Value) -> Value {
    let (group, version) = group_version(object);
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    let mut review = json!({
        "uid": "",
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": "", "version": "", "resource": ""},
        "operation": "",
        "userInfo": {},
        "object": object,
        "oldObject": null,
        "options": null,
    });
    for field in ["name", "namespace"] {
        let text = metadata(object, field);
        if !text.is_empty() {
            review[field] = Value::String(text.to_string());
        }
    }
    review
}

/// `input.review` for an AdmissionRequest, in the engine's values: the request, its
/// `namespaceObject` added, and, for a DELETE (which carries the object being deleted in
/// `oldObject`), that object shown as `object` too, as Gatekeeper shows it, so templates
/// written for CREATE see it. Copies only the request's top level: the values under it are
/// shared.
pub fn of_request(request: &regorus::Value, namespace_object: regorus::Value) -> Result<regorus::Value, EvalError> {
    let deleting =
        request.text_of("operation") == Some("DELETE") && request.field("object").is_none_or(Document::is_null);
    let mut review = request.clone();
    let fields = review
        .as_object_mut()
        .map_err(|_| EvalError::Failed("the request is not an object".into()))?;
    if deleting {
        let old = request.field("oldObject").cloned().unwrap_or(regorus::Value::Null);
        fields.insert("object".into(), old);
    }
    fields.insert("namespaceObject".into(), namespace_object);
    Ok(review)
}

/// A string field of an object's `metadata` (`name`, `namespace`...); empty when absent.
pub fn metadata<'a>(object: &'a impl Document, field: &str) -> &'a str {
    object
        .field("metadata")
        .and_then(|metadata| metadata.text_of(field))
        .unwrap_or_default()
}

/// `data.inventory` as Gatekeeper's sync builds it: cluster-scoped objects at
/// `cluster[groupVersion][kind][name]`, namespaced ones at
/// `namespace[namespace][groupVersion][kind][name]`.
pub fn inventory(objects: &[Value]) -> Value {
    let mut inventory = json!({"cluster": {}, "namespace": {}});
    for object in objects {
        let group_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
        let (name, namespace) = (metadata(object, "name"), metadata(object, "namespace"));
        let path: Vec<&str> = if namespace.is_empty() {
            vec!["cluster", group_version, kind, name]
        } else {
            vec!["namespace", namespace, group_version, kind, name]
        };
        if let Value::Object(map) = &mut inventory {
            insert(map, &path, object.clone());
        }
    }
    inventory
}

fn insert(map: &mut Map<String, Value>, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            map.insert(last.to_string(), value);
        }
        [first, rest @ ..] => {
            let child = map
                .entry(first.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(child) = child {
                insert(child, rest, value);
            }
        }
    }
}

fn group_version(object: &Value) -> (String, String) {
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    match api_version.rsplit_once('/') {
        Some((group, version)) => (group.to_string(), version.to_string()),
        None => (String::new(), api_version.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_review_is_gators() {
        let object = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        let review = synthetic(&object);
        assert_eq!(
            review["kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert_eq!(review["name"], "web");
        assert!(review.get("namespace").is_none());
        assert_eq!(review["operation"], "");
        assert_eq!(review["object"], object);
    }

    #[test]
    fn delete_shows_the_old_object() {
        let engine = |value: &Value| crate::policy::rego::to_regorus(value).unwrap();
        let namespace = json!({"kind": "Namespace"});
        for request in [
            json!({"operation": "DELETE", "object": null, "oldObject": {"kind": "Pod"}}),
            json!({"operation": "DELETE", "oldObject": {"kind": "Pod"}}),
        ] {
            let review = of_request(&engine(&request), engine(&namespace)).unwrap();
            assert_eq!(review.field("object"), Some(&engine(&json!({"kind": "Pod"}))));
            assert_eq!(review.field("namespaceObject"), Some(&engine(&namespace)));
        }
        let update = json!({"operation": "UPDATE", "object": {"kind": "Pod"}, "oldObject": {"kind": "Pod", "x": 1}});
        let review = of_request(&engine(&update), regorus::Value::Null).unwrap();
        assert_eq!(review.field("object"), Some(&engine(&json!({"kind": "Pod"}))));
    }

    #[test]
    fn inventory_paths() {
        let data = inventory(&[
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "namespace": "a"}}),
        ]);
        assert_eq!(data["cluster"]["v1"]["Namespace"]["a"]["kind"], "Namespace");
        assert_eq!(
            data["namespace"]["a"]["networking.k8s.io/v1"]["Ingress"]["i"]["kind"],
            "Ingress"
        );
    }
}
