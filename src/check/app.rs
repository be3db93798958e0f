//! `check --app app.yaml`: the micro app's template as a first-class input. Its fields are
//! validated with messages that name the line to fix; every object of the manifests must carry
//! the labels app.yaml implies (on its pod templates too); and the app's risk level is applied
//! as its label would be (it can raise the namespace's level, never lower it).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::lines;
use crate::admission::extract;
use crate::batch::{Document, FindingResult, ObjectResult};
use crate::exceptions;
use crate::images::pattern::AllowList;
use crate::images::ImageReference;
use crate::risk::{self, RiskLevel};
use crate::workload::workload_kind;

/// The ids of the checks app.yaml adds, in findings and reports.
const LABELS_POLICY: &str = "app.labels";
const IMAGE_POLICY: &str = "app.image";

/// A valid app.yaml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub name: String,
    pub owner: String,
    pub risk_level: RiskLevel,
    pub version: String,
    /// `image.repository`, normalised (`registry/repository`).
    pub repository: String,
    /// `image.tag`, when app.yaml names one.
    pub tag: Option<String>,
    pub file: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{file} is not a valid app.yaml:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct AppErrors {
    pub file: String,
    pub problems: Vec<String>,
}

/// Reads and validates `path`; every problem is reported, each with its line where the field
/// has one. `allowed` is the config's registry allow-list.
pub fn read_app(path: &Path, allowed: &[String]) -> Result<App, AppErrors> {
    let file = path.display().to_string();
    let fail = |problems: Vec<String>| AppErrors {
        file: file.clone(),
        problems,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(vec![e.to_string()]))?;
    let value: Value = yaml_serde::from_str(&text).map_err(|e| fail(vec![format!("not YAML: {e}")]))?;
    let at = lines::field_lines(&text).unwrap_or_default();
    // A problem of the field at `path`, at its line where it has one.
    let at_field = |path: &str, problem: String| match at.get(path) {
        Some(line) => format!("{file}:{line}: {path}: {problem}"),
        None => format!("{file}: {path}: {problem}"),
    };
    let mut problems = Vec::new();
    let mut field = |path: &str, check: &dyn Fn(&str) -> Option<String>| -> String {
        let place = |problem: String| at_field(path, problem);
        let found = path.split('.').try_fold(&value, |v, key| v.get(key));
        match found {
            None | Some(Value::Null) => {
                problems.push(place("is required".into()));
                String::new()
            }
            Some(Value::String(text)) => {
                if let Some(problem) = check(text) {
                    problems.push(place(problem));
                }
                text.clone()
            }
            Some(other) => {
                // A bare number or boolean in YAML: the template wants text.
                let text = other.to_string();
                match check(&text) {
                    Some(problem) => problems.push(place(problem)),
                    None => problems.push(place(format!("write it as a string: \"{text}\""))),
                }
                text
            }
        }
    };
    let name = field("name", &|text| {
        (!is_dns_label(text)).then(|| {
            format!("{text:?} is not a Kubernetes name (lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit)")
        })
    });
    let owner = field("owner", &|text| {
        (!is_label_value(text) || text.is_empty()).then(|| {
            format!("{text:?} is not a Kubernetes label value (letters, digits, '-', '_' and '.', at most 63, starting and ending with a letter or digit), e.g. rebecca.yu")
        })
    });
    let risk_text = field("risk_level", &|text| {
        RiskLevel::parse(text)
            .is_none()
            .then(|| format!("{text:?} is not one of low, medium, high"))
    });
    let version = field("version", &|text| {
        semver::Version::parse(text)
            .err()
            .map(|e| format!("{text:?} is not a semantic version like 1.4.2 ({e})"))
    });
    let repository = field("image.repository", &|text| match ImageReference::parse(text) {
        Err(e) => Some(format!("{text:?} is not an image repository: {e}")),
        Ok(image) if image.tag.is_some() || image.digest.is_some() => Some(format!(
            "{text:?} names a tag or digest; give the repository alone (the tag is image.tag)"
        )),
        Ok(image) if !AllowList::new(allowed).allows(&image.registry, &image.repository) => Some(format!(
            "{text:?} is not on an allowed registry (images.registries.allow: {})",
            if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            }
        )),
        Ok(_) => None,
    });
    let tag = match value.pointer("/image/tag") {
        None | Some(Value::Null) => None,
        Some(Value::String(tag)) if !tag.is_empty() => Some(tag.clone()),
        Some(other) => {
            problems.push(at_field(
                "image.tag",
                format!("{other} is not a tag; write it as a string (\"0.1.0\")"),
            ));
            None
        }
    };
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    let repository = ImageReference::parse(&repository).map_or(repository, |image| image.name());
    Ok(App {
        name,
        owner,
        risk_level: RiskLevel::parse(&risk_text).unwrap_or(RiskLevel::High),
        version,
        repository,
        tag,
        file,
    })
}

/// A DNS label (RFC 1123), as Kubernetes names many things.
fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// A label value: empty, or alphanumerics at both ends and `-_.` between, at most 63.
fn is_label_value(text: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    text.is_empty()
        || (text.len() <= 63
            && text.starts_with(alnum)
            && text.ends_with(alnum)
            && text.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.')))
}

impl App {
    /// The labels every object and pod template must carry, and the app.yaml field each comes from.
    pub fn labels(&self) -> Vec<(&'static str, &'static str, String)> {
        vec![
            ("app.kubernetes.io/name", "name", self.name.clone()),
            ("app.kubernetes.io/version", "version", self.version.clone()),
            ("portcullis.io/owner", "owner", self.owner.clone()),
            (risk::LABEL, "risk_level", self.risk_level.to_string()),
        ]
    }

    /// Gives every object without the risk label the app's level, as the label would: the
    /// object is then judged at the higher of it and its namespace's level.
    pub fn apply_risk_level(&self, documents: &mut [Document]) {
        for document in documents {
            let Some(labels) = document.request.pointer_mut("/object/metadata").and_then(|m| {
                if m.get("labels").is_none() {
                    m["labels"] = Value::Object(Default::default());
                }
                m.get_mut("labels").and_then(Value::as_object_mut)
            }) else {
                continue;
            };
            labels
                .entry(risk::LABEL)
                .or_insert_with(|| Value::String(self.risk_level.to_string()));
        }
    }

    /// For each document as written (before [`App::apply_risk_level`]), a denial for every
    /// label app.yaml implies that its object (or pod template) lacks or gives another value,
    /// and for a workload that does not run app.yaml's image. Namespaces and PolicyExceptions
    /// are the platform's, not the app's: never checked.
    pub fn findings(&self, documents: &[Document]) -> Vec<Vec<FindingResult>> {
        documents
            .iter()
            .map(|document| self.object_findings(&document.request))
            .collect()
    }

    fn object_findings(&self, request: &Value) -> Vec<FindingResult> {
        let Some(object) = request.get("object").filter(|o| o.is_object()) else {
            return Vec::new();
        };
        if object.get("kind").and_then(Value::as_str) == Some("Namespace") || exceptions::is_exception(object) {
            return Vec::new();
        }
        let mut places = vec![(String::new(), object.pointer("/metadata/labels"))];
        // A controller's pod template: the pod spec's parent (a Pod is its own template).
        let workload = object.get("kind").and_then(Value::as_str).and_then(workload_kind);
        let template = workload.and_then(|w| w.pod_spec_pointer.strip_suffix("/spec"));
        if let Some(template) = template.filter(|t| !t.is_empty()) {
            if let Some(metadata) = object.pointer(&format!("{template}/metadata")) {
                let path = workload.map_or("", |w| w.pod_spec_path.trim_end_matches(".spec"));
                places.push((format!(" on the pod template ({path})"), metadata.get("labels")));
            }
        }
        let mut findings = Vec::new();
        if workload.is_some() {
            findings.extend(self.image_findings(request));
        }
        for (on, labels) in places {
            let labels: BTreeMap<&str, &str> = labels
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))).collect())
                .unwrap_or_default();
            for (label, field, want) in self.labels() {
                let file = &self.file;
                let on = on.as_str();
                let message = match labels.get(label) {
                    Some(found) if *found == want => continue,
                    Some(found) => {
                        format!("label {label} is {found:?}{on} but {file} says {field}: {want:?}; make them agree")
                    }
                    None => {
                        format!("label {label} is missing{on}; {file} says {field}: {want:?}, so add {label}: {want:?}")
                    }
                };
                findings.push(FindingResult::new(LABELS_POLICY, "deny", message));
            }
        }
        findings
    }

    /// A workload runs the app's image: at least one of its images (as the webhook extracts
    /// them) from image.repository, and with image.tag set, each of those at that tag (a digest
    /// beside it is the release pin). Sidecars of other repositories are not the app's business.
    fn image_findings(&self, request: &Value) -> Vec<FindingResult> {
        let images: Vec<String> = extract::images(request).into_iter().map(|found| found.image).collect();
        let ours: Vec<(&str, ImageReference)> = images
            .iter()
            .filter_map(|text| Some((text.as_str(), ImageReference::parse(text).ok()?)))
            .filter(|(_, image)| image.name() == self.repository)
            .collect();
        let deny = |message: String| FindingResult::new(IMAGE_POLICY, "deny", message);
        if ours.is_empty() {
            let running = match images.is_empty() {
                true => "no image".to_string(),
                false => images.join(", "),
            };
            return vec![deny(format!(
                "no container runs {} ({} says image.repository: {:?}); it runs {running}",
                self.repository, self.file, self.repository
            ))];
        }
        let Some(tag) = &self.tag else {
            return Vec::new();
        };
        ours.iter()
            .filter(|(_, image)| image.tag.as_deref() != Some(tag.as_str()))
            .map(|(text, _)| {
                deny(format!(
                    "image {text} is not tagged {tag:?}, which {} says image.tag: {tag:?}; make them agree",
                    self.file
                ))
            })
            .collect()
    }
}

/// Adds each object's app.yaml findings to its result (in the documents' order).
pub fn add_findings(results: &mut [ObjectResult], findings: Vec<Vec<FindingResult>>) {
    for (result, findings) in results.iter_mut().zip(findings) {
        result.allowed &= findings.iter().all(|f| f.action != "deny");
        result.findings.extend(findings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.yaml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    const ALLOWED: &[&str] = &["registry.example.com/micro-apps"];

    fn allowed() -> Vec<String> {
        ALLOWED.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_valid_app() {
        let (_dir, path) = app_file(
            "name: where2eat\nowner: rebecca.yu\nrisk_level: medium\nversion: 0.1.0\nimage:\n  repository: registry.example.com/micro-apps/where2eat\n  tag: \"0.1.0\"\n",
        );
        let app = read_app(&path, &allowed()).unwrap();
        assert_eq!(app.risk_level, RiskLevel::Medium);
        assert_eq!(app.labels()[3], (risk::LABEL, "risk_level", "medium".to_string()));
    }

    #[test]
    fn every_problem_is_listed_with_its_line() {
        let (_dir, path) = app_file(
            "name: Where2Eat\nowner: Rebecca Yu\nrisk_level: extreme\nversion: 1.0\nimage:\n  repository: docker.io/library/nginx\n",
        );
        let error = read_app(&path, &allowed()).unwrap_err();
        let file = path.display().to_string();
        let problems = error.problems.join("\n");
        assert_eq!(error.problems.len(), 5, "{problems}");
        for (line, field) in [
            (1, "name"),
            (2, "owner"),
            (3, "risk_level"),
            (4, "version"),
            (6, "image.repository"),
        ] {
            assert!(
                problems.contains(&format!("{file}:{line}: {field}: ")),
                "{field}: {problems}"
            );
        }
        assert!(problems.contains("not on an allowed registry"), "{problems}");
    }

    #[test]
    fn missing_fields_are_required() {
        let (_dir, path) = app_file("name: a\n");
        let error = read_app(&path, &allowed()).unwrap_err();
        let problems = error.problems.join("\n");
        for field in ["owner", "risk_level", "version", "image.repository"] {
            assert!(problems.contains(&format!("{field}: is required")), "{problems}");
        }
    }

    fn app() -> App {
        App {
            name: "web".into(),
            owner: "rebecca.yu".into(),
            risk_level: RiskLevel::Medium,
            version: "1.0.0".into(),
            repository: "registry.example.com/micro-apps/web".into(),
            tag: Some("1.0.0".into()),
            file: "app.yaml".into(),
        }
    }

    /// The findings of `object` as `check` reads it.
    fn findings_of(object: Value) -> Vec<String> {
        let request = serde_json::json!({ "object": object });
        app()
            .object_findings(&request)
            .into_iter()
            .map(|f| format!("{}: {}", f.policy, f.message))
            .collect()
    }

    fn labelled() -> Value {
        serde_json::json!({"app.kubernetes.io/name": "web", "app.kubernetes.io/version": "1.0.0",
                           "portcullis.io/owner": "rebecca.yu", "portcullis.io/risk-level": "medium"})
    }

    #[test]
    fn a_workload_runs_the_apps_image_at_its_tag() {
        let deployment = |images: &[&str]| {
            let containers: Vec<Value> = images
                .iter()
                .map(|i| serde_json::json!({"name": "c", "image": i}))
                .collect();
            serde_json::json!({"kind": "Deployment", "metadata": {"labels": labelled()},
                "spec": {"template": {"metadata": {"labels": labelled()}, "spec": {"containers": containers}}}})
        };
        let pinned = "registry.example.com/micro-apps/web:1.0.0@sha256:4958b267fba756f6fd9ff0a61bc7f4bf9243077ae3971b409a8eb787ee51aeeb";
        assert!(
            findings_of(deployment(&[pinned, "registry.example.com/proxy:2"])).is_empty(),
            "a sidecar is fine"
        );
        let other = findings_of(deployment(&["registry.example.com/micro-apps/other:1.0.0"]));
        assert_eq!(other.len(), 1);
        assert!(
            other[0].starts_with("app.image: no container runs registry.example.com/micro-apps/web"),
            "{other:?}"
        );
        let old = findings_of(deployment(&["registry.example.com/micro-apps/web:0.9.0"]));
        assert!(old[0].contains("is not tagged \"1.0.0\""), "{old:?}");
        // A Service runs nothing: no image to check.
        assert!(findings_of(serde_json::json!({"kind": "Service", "metadata": {"labels": labelled()}})).is_empty());
    }

    #[test]
    fn a_pod_templates_labels_are_checked_where_its_kind_keeps_them() {
        let template = serde_json::json!({"kind": "PodTemplate", "metadata": {"labels": labelled()},
            "template": {"metadata": {"labels": {}}, "spec": {"containers": [{"name": "c", "image": "registry.example.com/micro-apps/web:1.0.0"}]}}});
        let found = findings_of(template);
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(
            found[0].contains("is missing on the pod template (template)"),
            "{found:?}"
        );
        let pod = serde_json::json!({"kind": "Pod", "metadata": {"labels": labelled()},
            "spec": {"containers": [{"name": "c", "image": "registry.example.com/micro-apps/web:1.0.0"}]}});
        assert!(findings_of(pod).is_empty(), "a Pod is its own template");
    }

    #[test]
    fn the_platforms_objects_carry_no_app_labels() {
        for object in [
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
            serde_json::json!({"apiVersion": "portcullis.io/v1alpha1", "kind": "PolicyException", "metadata": {"name": "x"}}),
        ] {
            assert!(findings_of(object.clone()).is_empty(), "{object}");
        }
        let kyverno =
            serde_json::json!({"apiVersion": "kyverno.io/v2", "kind": "PolicyException", "metadata": {"name": "x"}});
        assert_eq!(findings_of(kyverno).len(), 4, "another project's kind is an app object");
    }

    #[test]
    fn label_values() {
        assert!(is_label_value("rebecca.yu") && is_label_value("a_b-c"));
        assert!(!is_label_value("-a") && !is_label_value("a b") && !is_label_value(&"a".repeat(64)));
        assert!(is_dns_label("where2eat") && !is_dns_label("Where2eat") && !is_dns_label("a.b"));
    }
}
