//! `portcullis check`: the webhook's decision on manifest files, for the pull-request gate.
//!
//! Reads manifests (files, directories, multi-document YAML, Lists, AdmissionReviews) into the
//! documents that [`crate::batch`] decides with the same reviewer as in the cluster.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::admission::review;
use crate::batch::{create_request, Document, Location};
use crate::exceptions::{self, PolicyException, StaticExceptions};
use crate::namespaces::{Labels, NamespaceLabels, StaticNamespaces};
use crate::risk::{self, RiskLevel};

mod app;
pub mod gates;
mod github;
mod junit;
mod lines;
mod markdown;
mod sarif;

pub use app::{add_findings, read_app, App, AppErrors};
pub use github::render_github;
pub use junit::render_junit;
pub use markdown::render_markdown;
pub use sarif::render_sarif;

#[derive(Debug, thiserror::Error)]
#[error("cannot read the inputs:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
pub struct InputErrors(pub Vec<String>);

/// Reads every YAML/JSON file under `paths`; all unreadable inputs are reported together.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<Document>, InputErrors> {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            collect(path, &mut files, &mut errors);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            errors.push(format!("{}: no such file or directory", path.display()));
        }
    }
    let mut documents = Vec::new();
    for file in files {
        match read_file(&file) {
            Ok(found) => documents.extend(found),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(documents)
    } else {
        Err(InputErrors(errors))
    }
}

/// The annotation kustomize writes with `buildMetadata: [originAnnotations]`: where an object
/// came from, as YAML (`path: k8s/deployment.yaml`, and `repo`/`ref` for a remote base).
const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";

/// Points each object kustomize marked with its origin at its source file under `root` (the
/// directory it built) and the line the object starts at there, so that CI annotates the file
/// the pull request changed. Objects from a remote base or a generator keep their place in the
/// rendered output; a source file that cannot be read is an input error (a wrong `root`).
pub fn point_at_origins(documents: &mut [Document], root: &Path) -> Result<(), InputErrors> {
    let mut sources: HashMap<PathBuf, Vec<Document>> = HashMap::new();
    let mut errors = Vec::new();
    for document in documents.iter_mut() {
        let object = &document.request["object"];
        let Some(path) = object
            .pointer("/metadata/annotations")
            .and_then(|annotations| annotations.get(ORIGIN_ANNOTATION))
            .and_then(Value::as_str)
            .and_then(local_origin)
        else {
            continue;
        };
        let source = lexical(&root.join(&path));
        if !sources.contains_key(&source) {
            match read_file(&source) {
                Ok(found) => sources.insert(source.clone(), found),
                Err(error) => {
                    errors.push(format!("{}: its origin {error}", document.origin));
                    continue;
                }
            };
        }
        if let Some(location) = source_of(object, &sources[&source]) {
            document.location = Some(location);
        }
    }
    match errors.is_empty() {
        true => Ok(()),
        false => Err(InputErrors(errors)),
    }
}

/// `path` with `.` and `..` resolved without the file system: an overlay's base is written
/// `../base/app.yaml`, and CI annotates the file as the checkout names it (`base/app.yaml`).
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The local path of an origin annotation (none for a remote base or a generated object).
fn local_origin(annotation: &str) -> Option<String> {
    let origin: Value = yaml_serde::from_str(annotation).ok()?;
    match origin.get("repo") {
        Some(_) => None,
        None => origin.get("path").and_then(Value::as_str).map(str::to_string),
    }
}

/// Where `rendered` is among its source file's objects: the one of its kind with its name (a
/// `namePrefix` or `nameSuffix` around it), or the file's only object of its kind.
fn source_of(rendered: &Value, source: &[Document]) -> Option<Location> {
    let text = |object: &Value, pointer: &str| object.pointer(pointer).and_then(Value::as_str).map(str::to_string);
    let (kind, name) = (
        text(rendered, "/kind")?,
        text(rendered, "/metadata/name").unwrap_or_default(),
    );
    let same_kind: Vec<(&Document, String)> = source
        .iter()
        .filter(|document| text(&document.request["object"], "/kind").as_deref() == Some(kind.as_str()))
        .map(|document| {
            (
                document,
                text(&document.request["object"], "/metadata/name").unwrap_or_default(),
            )
        })
        .collect();
    let named = same_kind
        .iter()
        .filter(|(_, original)| !original.is_empty() && name.contains(original.as_str()))
        .max_by_key(|(_, original)| original.len());
    match (named, same_kind.as_slice()) {
        (Some((document, _)), _) | (None, [(document, _)]) => document.location.clone(),
        _ => None,
    }
}

/// `data.inventory` for Gatekeeper templates from manifests, e.g. a `kubectl get -o yaml`
/// export of the cluster, laid out as the cluster sync lays it out (an object without a
/// namespace is cluster-scoped there).
pub fn read_inventory(paths: &[PathBuf]) -> Result<Value, InputErrors> {
    let objects: Vec<Value> = read_inputs(paths)?
        .into_iter()
        .filter_map(|document| document.request.get("object").filter(|o| o.is_object()).cloned())
        .collect();
    Ok(crate::policy::gatekeeper::review::inventory(&objects))
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return errors.push(format!("{}: {e}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect(&path, files, errors);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            files.push(path);
        }
    }
}

fn read_file(file: &Path) -> Result<Vec<Document>, String> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{name}: {e}"))?;
    read_documents(&name, &text)
}

/// The documents of one file's text (`name` is where they are said to come from): YAML or
/// JSON, several documents, Lists, AdmissionReviews.
pub fn read_text(name: &str, text: &str) -> Result<Vec<Document>, InputErrors> {
    read_documents(name, text).map_err(|error| InputErrors(vec![error]))
}

fn read_documents(name: &str, text: &str) -> Result<Vec<Document>, String> {
    let name = name.to_string();
    let mut values = Vec::new();
    for (index, document) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let value = <Value as serde::Deserialize>::deserialize(document)
            .map_err(|e| format!("{name}: document {}: {e}", index + 1))?;
        values.push((index, value));
    }
    // Lines only when both readers see the same documents; a finding then never points at
    // another object's line.
    let lines = lines::document_lines(text).filter(|lines| lines.len() == values.len());
    let many = values.len() > 1;
    let mut documents = Vec::new();
    for (index, value) in values {
        let origin = if many {
            format!("{name}#{}", index + 1)
        } else {
            name.clone()
        };
        let positions = lines.as_ref().map(|lines| &lines[index]);
        let objects = flatten(value);
        for (item, object) in objects.objects.into_iter().enumerate() {
            let line = positions.and_then(|p| match objects.list {
                true => p.items.get(item).copied(),
                false => p.root,
            });
            let location = Location {
                file: name.clone(),
                line,
            };
            documents
                .push(to_request(object, &origin, location, documents.len()).map_err(|e| format!("{origin}: {e}"))?);
        }
    }
    Ok(documents)
}

/// The objects a document stands for.
struct Objects {
    objects: Vec<Value>,
    /// They are a `List`'s items.
    list: bool,
}

/// A `List` stands for its items; empty documents stand for nothing.
fn flatten(value: Value) -> Objects {
    match value {
        Value::Null => Objects {
            objects: Vec::new(),
            list: false,
        },
        Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => Objects {
            objects: map.get("items").and_then(Value::as_array).cloned().unwrap_or_default(),
            list: true,
        },
        other => Objects {
            objects: vec![other],
            list: false,
        },
    }
}

/// An AdmissionReview is taken as is; any other object becomes a synthetic CREATE request.
fn to_request(object: Value, origin: &str, location: Location, index: usize) -> Result<Document, String> {
    let request = if object.get("kind").and_then(Value::as_str) == Some("AdmissionReview") {
        let body = serde_json::to_vec(&object).map_err(|e| e.to_string())?;
        let review = review::parse(&body).map_err(|e| e.to_string())?;
        serde_json::to_value(&review.request).map_err(|e| e.to_string())?
    } else {
        create_request(object, format!("portcullis-check-{index}"), "portcullis-check").map_err(|e| e.to_string())?
    };
    Ok(Document {
        origin: origin.to_string(),
        location: Some(location),
        request,
    })
}

/// Namespace labels for `check`: Namespace manifests among the inputs, or one level for all.
pub fn namespace_source(documents: &[Document], risk_level: Option<RiskLevel>) -> Arc<dyn NamespaceLabels> {
    if let Some(level) = risk_level {
        return Arc::new(FixedLevel(level));
    }
    let mut known = HashMap::new();
    for document in documents {
        let object = &document.request["object"];
        if object.get("kind").and_then(Value::as_str) == Some("Namespace") {
            let labels: Labels = object
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            known.insert(name.to_string(), labels);
        }
    }
    Arc::new(StaticNamespaces(known))
}

/// PolicyException manifests among the inputs, as the cluster would hold them; one that is
/// not valid is an input error (the cluster's admission policy would refuse it too).
pub fn exception_source(documents: &[Document], max_days: u32) -> Result<StaticExceptions, InputErrors> {
    let now = jiff::Timestamp::now();
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for document in documents {
        let Some(object) = document.request.get("object") else {
            continue;
        };
        if !exceptions::is_exception(object) {
            continue;
        }
        // Where it would be created: a manifest without a namespace lands in the default one.
        let namespace = document.request["namespace"].as_str().unwrap_or_default();
        match PolicyException::parse_in(object, namespace, max_days, now) {
            Ok(exception) => valid.push(exception),
            Err(error) => {
                let at = match &document.location {
                    Some(Location { file, line: Some(line) }) => format!("{file}:{line}"),
                    _ => document.origin.clone(),
                };
                errors.push(format!("{at}: {error}"));
            }
        }
    }
    match errors.is_empty() {
        true => Ok(StaticExceptions::new(valid, 0)),
        false => Err(InputErrors(errors)),
    }
}

/// Every namespace at the level given on the command line.
struct FixedLevel(RiskLevel);

impl NamespaceLabels for FixedLevel {
    fn labels(&self, _namespace: &str) -> Labels {
        BTreeMap::from([(risk::LABEL.to_string(), self.0.as_str().to_string())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("all.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: {portcullis.io/risk-level: low}}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: p1, namespace: a}}\n- {apiVersion: v1, kind: Pod, metadata: {name: p2, namespace: a}}\n",
        )
        .unwrap();
        let documents = read_inputs(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(documents.len(), 3);
        assert!(documents[1].origin.ends_with("all.yaml#3"), "{}", documents[1].origin);
        let namespaces = namespace_source(&documents, None);
        assert_eq!(namespaces.labels("a").get(risk::LABEL).map(String::as_str), Some("low"));
    }

    #[test]
    fn exceptions_among_the_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("exceptions.yaml");
        let spec = "spec: {policies: [pods.host_path], match: {kinds: [Pod]}, expiresAt: '2099-01-01T00:00:00Z', ticket: OPS-1}";
        let kyverno = "apiVersion: kyverno.io/v2\nkind: PolicyException\nmetadata: {name: k}\nspec: {}\n";
        let text = format!(
            "apiVersion: portcullis.io/v1alpha1\nkind: PolicyException\nmetadata: {{name: a, namespace: team-a}}\nspec: {{policies: [pods.host_path], match: {{kinds: [Pod]}}, expiresAt: '2027-02-01T00:00:00Z', ticket: OPS-1}}\n---\napiVersion: portcullis.io/v1alpha1\nkind: PolicyException\nmetadata: {{name: b}}\n{spec}\n---\n{kyverno}"
        );
        std::fs::write(&file, text).unwrap();
        let documents = read_inputs(std::slice::from_ref(&file)).unwrap();
        let errors = exception_source(&documents, 366).unwrap_err().0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(&format!(
                "{}:6: PolicyException default/b: spec.expiresAt",
                file.display()
            )),
            "{errors:?}"
        );
        use crate::exceptions::ExceptionSource;
        let exceptions = exception_source(&[documents[0].clone(), documents[2].clone()], 366).unwrap();
        assert_eq!(exceptions.in_namespace("team-a")[0].name, "a");
    }

    #[test]
    fn kustomize_origins_point_findings_at_the_source_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("k8s")).unwrap();
        std::fs::write(
            dir.path().join("k8s/app.yaml"),
            "# the app\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: worker}\n",
        )
        .unwrap();
        let rendered = dir.path().join("rendered.yaml");
        let object = |kind: &str, api: &str, name: &str, origin: &str| {
            format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n  annotations:\n    config.kubernetes.io/origin: |\n      {origin}\n")
        };
        std::fs::write(
            &rendered,
            [
                object("Deployment", "apps/v1", "shop-worker", "path: k8s/app.yaml"),
                object("Service", "v1", "shop-web", "path: k8s/app.yaml"),
                object(
                    "Deployment",
                    "apps/v1",
                    "remote",
                    "path: base/x.yaml\n      repo: https://example.com/x",
                ),
            ]
            .join("---\n"),
        )
        .unwrap();
        let mut documents = read_inputs(std::slice::from_ref(&rendered)).unwrap();
        point_at_origins(&mut documents, dir.path()).unwrap();
        let source = dir.path().join("k8s/app.yaml").display().to_string();
        let at = |file: &str, line| {
            Some(Location {
                file: file.to_string(),
                line: Some(line),
            })
        };
        assert_eq!(documents[0].location, at(&source, 10), "the worker, under its prefix");
        assert_eq!(documents[1].location, at(&source, 2), "the only Service");
        let rendered_file = rendered.display().to_string();
        assert_eq!(
            documents[2].location,
            at(&rendered_file, 17),
            "a remote base stays where it was rendered"
        );

        let err = point_at_origins(&mut documents, &dir.path().join("elsewhere")).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        // An overlay's base, from the overlay's directory.
        let overlay = dir.path().join("overlays/prod");
        std::fs::create_dir_all(&overlay).unwrap();
        std::fs::write(
            &rendered,
            object("Deployment", "apps/v1", "web", "path: ../../k8s/app.yaml"),
        )
        .unwrap();
        let mut documents = read_inputs(std::slice::from_ref(&rendered)).unwrap();
        point_at_origins(&mut documents, &overlay).unwrap();
        assert_eq!(documents[0].location, at(&source, 6));
        assert_eq!(
            lexical(Path::new("./deploy/overlays/prod/../../base/./x.yaml")),
            Path::new("deploy/base/x.yaml")
        );
        assert_eq!(lexical(Path::new("../x.yaml")), Path::new("../x.yaml"));
    }

    #[test]
    fn all_bad_inputs_are_reported_together() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "a: [unclosed\n").unwrap();
        std::fs::write(dir.path().join("nokind.yaml"), "apiVersion: v1\n").unwrap();
        let err = read_inputs(&[dir.path().to_path_buf(), dir.path().join("missing.yaml")]).unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
    }
}
