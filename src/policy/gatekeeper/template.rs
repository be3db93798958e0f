//! Reading a ConstraintTemplate (`templates.gatekeeper.sh` v1, v1beta1, v1alpha1).

use serde_json::Value;

/// The only target Gatekeeper's admission webhook evaluates.
pub const ADMISSION_TARGET: &str = "admission.k8s.gatekeeper.sh";

/// Which Rego syntax a template is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegoVersion {
    /// Gatekeeper's default: rules without `if`/`contains`.
    V0,
    V1,
}

/// What portcullis needs of a template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub name: String,
    /// The kind of its constraints, e.g. `K8sAllowedRepos`.
    pub kind: String,
    pub rego: String,
    pub libs: Vec<String>,
    pub version: RegoVersion,
    /// `openAPIV3Schema` of the constraints' `spec.parameters`, when given.
    pub parameters_schema: Option<Value>,
}

pub fn is_template(document: &Value) -> bool {
    document.get("kind").and_then(Value::as_str) == Some("ConstraintTemplate")
        && document
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("templates.gatekeeper.sh/"))
}

impl Template {
    /// Reads a template, reporting every problem at once.
    pub fn parse(document: &Value) -> Result<Template, Vec<String>> {
        let mut problems = Vec::new();
        let api_version = document.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        if !matches!(
            api_version,
            "templates.gatekeeper.sh/v1" | "templates.gatekeeper.sh/v1beta1" | "templates.gatekeeper.sh/v1alpha1"
        ) {
            problems.push(format!(
                "apiVersion {api_version:?} is not supported (templates.gatekeeper.sh/v1 or v1beta1)"
            ));
        }
        let name = text(document, "/metadata/name").unwrap_or_default();
        if name.is_empty() {
            problems.push("metadata.name: required".into());
        }
        let kind = text(document, "/spec/crd/spec/names/kind").unwrap_or_default();
        if kind.is_empty() {
            problems.push("spec.crd.spec.names.kind: required".into());
        } else if !name.is_empty() && name != kind.to_lowercase() {
            problems.push(format!(
                "metadata.name {name:?} must be the lowercase of spec.crd.spec.names.kind ({:?})",
                kind.to_lowercase()
            ));
        }
        let parameters_schema = document
            .pointer("/spec/crd/spec/validation/openAPIV3Schema")
            .filter(|s| !s.is_null())
            .cloned();
        if parameters_schema.as_ref().is_some_and(|s| !s.is_object()) {
            problems.push("spec.crd.spec.validation.openAPIV3Schema: must be an object".into());
        }

        let targets = document.pointer("/spec/targets").and_then(Value::as_array);
        let code = match targets.map(Vec::as_slice) {
            None | Some([]) => {
                problems.push("spec.targets: required (one target, admission.k8s.gatekeeper.sh)".into());
                None
            }
            Some([target]) => {
                let target_name = target.get("target").and_then(Value::as_str).unwrap_or_default();
                if target_name != ADMISSION_TARGET {
                    problems.push(format!(
                        "spec.targets[0].target: {target_name:?} is not supported (only {ADMISSION_TARGET})"
                    ));
                    None
                } else {
                    rego_source(target, &mut problems)
                }
            }
            Some(_) => {
                problems.push("spec.targets: exactly one target is supported".into());
                None
            }
        };
        match code {
            Some((rego, libs, version)) if problems.is_empty() => Ok(Template {
                name,
                kind,
                rego,
                libs,
                version,
                parameters_schema,
            }),
            _ => Err(problems),
        }
    }
}

/// The Rego of a target: `rego` + `libs`, or the `code[]` entry whose engine is `Rego`.
fn rego_source(target: &Value, problems: &mut Vec<String>) -> Option<(String, Vec<String>, RegoVersion)> {
    let code_rego = target.get("code").and_then(Value::as_array).and_then(|code| {
        code.iter()
            .enumerate()
            .find(|(_, c)| c.get("engine").and_then(Value::as_str) == Some("Rego"))
    });
    let (source, at) = match (target.get("rego"), code_rego) {
        (Some(_), _) => (target, "spec.targets[0]".to_string()),
        (None, Some((index, entry))) => (
            entry.get("source").unwrap_or(&Value::Null),
            format!("spec.targets[0].code[{index}].source"),
        ),
        (None, None) => {
            let engines: Vec<&str> = target
                .get("code")
                .and_then(Value::as_array)
                .map(|c| {
                    c.iter()
                        .filter_map(|e| e.get("engine").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            if engines.is_empty() {
                problems.push("spec.targets[0]: no Rego (neither rego nor a code entry with engine Rego)".into());
            } else {
                problems.push(format!(
                    "spec.targets[0].code: engine(s) {} not supported: portcullis evaluates Rego only (K8sNativeValidation/CEL is not supported)",
                    engines.join(", ")
                ));
            }
            return None;
        }
    };
    let rego = match source.get("rego").and_then(Value::as_str) {
        Some(rego) if !rego.trim().is_empty() => rego.to_string(),
        _ => {
            problems.push(format!("{at}.rego: required, a string of Rego"));
            return None;
        }
    };
    let mut libs = Vec::new();
    match source.get("libs") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, lib) in items.iter().enumerate() {
                match lib.as_str() {
                    Some(text) => libs.push(text.to_string()),
                    None => problems.push(format!("{at}.libs[{i}]: must be a string of Rego")),
                }
            }
        }
        Some(_) => problems.push(format!("{at}.libs: must be a list")),
    }
    let version = match source.get("version").and_then(Value::as_str) {
        None | Some("v0") => RegoVersion::V0,
        Some("v1") => RegoVersion::V1,
        Some(other) => {
            problems.push(format!("{at}.version: {other:?} is not v0 or v1"));
            RegoVersion::V0
        }
    };
    Some((rego, libs, version))
}

fn text(document: &Value, pointer: &str) -> Option<String> {
    document.pointer(pointer).and_then(Value::as_str).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(targets: Value) -> Value {
        json!({
            "apiVersion": "templates.gatekeeper.sh/v1",
            "kind": "ConstraintTemplate",
            "metadata": {"name": "k8sdemo"},
            "spec": {
                "crd": {"spec": {"names": {"kind": "K8sDemo"},
                    "validation": {"openAPIV3Schema": {"type": "object"}}}},
                "targets": targets
            }
        })
    }

    #[test]
    fn rego_and_libs() {
        let t = Template::parse(&template(json!([{
            "target": "admission.k8s.gatekeeper.sh",
            "rego": "package k8sdemo\nviolation[{\"msg\": \"x\"}] { true }\n",
            "libs": ["package lib.x\ny := 1\n"]
        }])))
        .unwrap();
        assert_eq!(
            (t.kind.as_str(), t.libs.len(), t.version),
            ("K8sDemo", 1, RegoVersion::V0)
        );
        assert_eq!(t.parameters_schema, Some(json!({"type": "object"})));
    }

    #[test]
    fn code_with_rego_v1_beside_cel() {
        let t = Template::parse(&template(json!([{
            "target": "admission.k8s.gatekeeper.sh",
            "code": [
                {"engine": "K8sNativeValidation", "source": {"validations": []}},
                {"engine": "Rego", "source": {"version": "v1", "rego": "package k8sdemo\n"}}
            ]
        }])))
        .unwrap();
        assert_eq!(t.version, RegoVersion::V1);
    }

    #[test]
    fn cel_only_is_unsupported() {
        let err = Template::parse(&template(json!([{
            "target": "admission.k8s.gatekeeper.sh",
            "code": [{"engine": "K8sNativeValidation", "source": {"validations": []}}]
        }])))
        .unwrap_err();
        assert!(err[0].contains("K8sNativeValidation/CEL is not supported"), "{err:?}");
    }

    #[test]
    fn every_problem_is_listed() {
        let err = Template::parse(&json!({
            "apiVersion": "templates.gatekeeper.sh/v2",
            "kind": "ConstraintTemplate",
            "metadata": {"name": "Demo"},
            "spec": {"crd": {"spec": {"names": {"kind": "K8sDemo"}}},
                     "targets": [{"target": "authorization.k8s.io", "rego": "package x"}]}
        }))
        .unwrap_err();
        assert_eq!(err.len(), 3, "{err:?}");
        assert!(err[0].contains("apiVersion"));
        assert!(err[1].contains("lowercase"));
        assert!(err[2].contains("authorization.k8s.io"));
    }
}
