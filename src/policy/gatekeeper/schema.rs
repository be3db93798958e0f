//! Checks a constraint's `spec.parameters` against its template's `openAPIV3Schema`.
//!
//! The subset checked is what the apiserver would refuse in a structural schema: `type`
//! (object, array, string, integer, number, boolean), `properties`, `items`, `required`,
//! `enum`, `additionalProperties` (`false` or a schema) and `nullable`. Keys not described by
//! `properties` are accepted, as the apiserver prunes rather than refuses them; formats,
//! patterns, lengths and numeric bounds are not checked. A schema node with
//! `x-kubernetes-preserve-unknown-fields: true` and no `type` accepts anything.

use serde_json::Value;

/// Every way `value` does not fit `schema`, each naming its field (`path` is the root's name).
pub fn validate(schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let mut problems = Vec::new();
    check(schema, value, path, &mut problems);
    problems
}

fn check(schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if value.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        if !has_type(value, expected) {
            problems.push(format!(
                "{path}: must be {}, not {}",
                article(expected),
                describe(value)
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            problems.push(format!("{path}: {value} is not one of {}", list.join(", ")));
        }
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for key in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(key) {
                        problems.push(format!("{path}.{key}: required"));
                    }
                }
            }
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                match properties.and_then(|p| p.get(key)) {
                    Some(child_schema) => check(child_schema, child, &child_path, problems),
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => problems.push(format!("{child_path}: unknown field")),
                        Some(extra @ Value::Object(_)) => check(extra, child, &child_path, problems),
                        _ => {}
                    },
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{index}]"), problems);
                }
            }
        }
        _ => {}
    }
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        // 3 and 3.0 are the same integer once parsed from YAML or JSON.
        "integer" => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => true,
    }
}

fn article(kind: &str) -> String {
    match kind {
        "object" | "array" | "integer" => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(_) => format!("the number {value}"),
        Value::String(_) => format!("the string {value}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["repos"],
            "properties": {
                "repos": {"type": "array", "items": {"type": "string"}},
                "mode": {"type": "string", "enum": ["strict", "lax"]},
                "limits": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {"cpu": {"type": "integer"}, "ratio": {"type": "number"}}
                },
                "labels": {"type": "array", "items": {
                    "type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}
                }},
                "free": {"x-kubernetes-preserve-unknown-fields": true}
            }
        })
    }

    #[test]
    fn a_fitting_value_has_no_problems() {
        let value = json!({"repos": ["a/"], "mode": "lax", "limits": {"cpu": 2, "ratio": 1.5},
                           "labels": [{"key": "owner", "extra": 1}], "free": {"x": [1]}, "unknown": true});
        assert_eq!(validate(&schema(), &value, "spec.parameters"), Vec::<String>::new());
    }

    #[test]
    fn every_problem_names_its_field() {
        let value = json!({"repos": ["a/", 3], "mode": "loose", "limits": {"cpu": 1.5, "mem": 1},
                           "labels": [{}]});
        assert_eq!(
            validate(&schema(), &value, "spec.parameters"),
            [
                "spec.parameters.labels[0].key: required",
                "spec.parameters.limits.cpu: must be an integer, not the number 1.5",
                "spec.parameters.limits.mem: unknown field",
                "spec.parameters.mode: \"loose\" is not one of \"strict\", \"lax\"",
                "spec.parameters.repos[1]: must be a string, not the number 3",
            ]
        );
        assert_eq!(
            validate(&schema(), &json!({}), "spec.parameters"),
            ["spec.parameters.repos: required"]
        );
        assert_eq!(
            validate(&schema(), &json!([]), "p"),
            ["p: must be an object, not an array"]
        );
    }
}
