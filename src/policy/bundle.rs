//! Reading a policy library from disk or from the binary into memory.
//!
//! A library is a directory tree of Rego modules (`*.rego`), their unit tests (`*_test.rego`)
//! and parameter files (`data.yaml`, `data.json`). As in an OPA bundle, a data file is placed
//! in the data document at its directory's path: `cost/resources/data.yaml` becomes
//! `data.cost.resources`. Any other YAML/JSON file that holds Gatekeeper ConstraintTemplates or
//! Constraints (multi-document YAML allowed) adds them; the other documents of such a file,
//! and files without them, are ignored.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// A Rego source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Shown in errors: the file path, or `embedded:<path>` for the default library.
    pub name: String,
    pub text: String,
}

/// Everything read from one or more library roots.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    pub modules: Vec<Module>,
    pub tests: Vec<Module>,
    /// The merged data document.
    pub data: Value,
    /// Gatekeeper ConstraintTemplates and Constraints.
    pub gatekeeper: Vec<super::gatekeeper::Document>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid YAML/JSON data: {message}")]
    Data { path: String, message: String },
    #[error("{path}: data conflicts with another file at `{key}`")]
    Conflict { path: String, key: String },
    #[error("{path}: not valid YAML: {message}")]
    Yaml { path: String, message: String },
    #[error("no Rego policies found in {0}")]
    Empty(String),
}

/// Where a library comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The default library compiled into the binary.
    Embedded,
    Dirs(Vec<PathBuf>),
}

impl Source {
    pub fn from_dirs(dirs: &[PathBuf]) -> Source {
        if dirs.is_empty() {
            Source::Embedded
        } else {
            Source::Dirs(dirs.to_vec())
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Embedded => "the embedded default library".into(),
            Source::Dirs(dirs) => dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Reads every file of the library.
    pub fn read(&self) -> Result<Bundle, BundleError> {
        let mut bundle = Bundle {
            data: Value::Object(Map::new()),
            ..Bundle::default()
        };
        match self {
            Source::Embedded => {
                for (relative, text) in embedded::FILES {
                    bundle.add(&format!("embedded:{relative}"), relative, text.to_string())?;
                }
            }
            Source::Dirs(dirs) => {
                for root in dirs {
                    let mut files = Vec::new();
                    walk(root, &mut files)?;
                    files.sort();
                    for path in files {
                        let relative = path
                            .strip_prefix(root)
                            .unwrap_or(&path)
                            .to_string_lossy()
                            .replace('\\', "/");
                        let text = std::fs::read_to_string(&path).map_err(|source| BundleError::Read {
                            path: path.display().to_string(),
                            source,
                        })?;
                        bundle.add(&path.display().to_string(), &relative, text)?;
                    }
                }
            }
        }
        if bundle.modules.is_empty() && bundle.tests.is_empty() && bundle.gatekeeper.is_empty() {
            return Err(BundleError::Empty(self.describe()));
        }
        Ok(bundle)
    }

    /// A cheap fingerprint of the library's files (paths, sizes, modification times), so a poll
    /// can tell whether anything changed without parsing. The embedded library never changes.
    pub fn fingerprint(&self) -> Result<u64, BundleError> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        if let Source::Dirs(dirs) = self {
            for root in dirs {
                let mut files = Vec::new();
                walk(root, &mut files)?;
                files.sort();
                for path in files {
                    let meta = std::fs::metadata(&path).map_err(|source| BundleError::Read {
                        path: path.display().to_string(),
                        source,
                    })?;
                    path.hash(&mut hasher);
                    meta.len().hash(&mut hasher);
                    meta.modified().ok().hash(&mut hasher);
                }
            }
        }
        Ok(hasher.finish())
    }
}

impl Bundle {
    fn add(&mut self, name: &str, relative: &str, text: String) -> Result<(), BundleError> {
        let file_name = relative.rsplit('/').next().unwrap_or(relative);
        if file_name.ends_with("_test.rego") {
            self.tests.push(Module {
                name: name.to_string(),
                text,
            });
        } else if file_name.ends_with(".rego") {
            self.modules.push(Module {
                name: name.to_string(),
                text,
            });
        } else if matches!(file_name, "data.yaml" | "data.yml" | "data.json") {
            let value: Value = yaml_serde::from_str(&text).map_err(|e| BundleError::Data {
                path: name.to_string(),
                message: e.to_string(),
            })?;
            let prefix: Vec<&str> = relative.split('/').collect();
            let prefix = &prefix[..prefix.len() - 1];
            insert_at(&mut self.data, prefix, value, name)?;
        } else if file_name.ends_with(".yaml") || file_name.ends_with(".yml") || file_name.ends_with(".json") {
            self.gatekeeper.extend(gatekeeper_documents(name, &text)?);
        }
        Ok(())
    }
}

/// The ConstraintTemplates and Constraints of a YAML/JSON file. Only a file that mentions
/// Gatekeeper's API groups is parsed, so unrelated YAML (suites, sample objects, charts) never
/// stops a library from loading.
pub fn gatekeeper_documents(name: &str, text: &str) -> Result<Vec<super::gatekeeper::Document>, BundleError> {
    if !(text.contains("templates.gatekeeper.sh") || text.contains("constraints.gatekeeper.sh")) {
        return Ok(Vec::new());
    }
    let mut values = Vec::new();
    for (index, document) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let value = <Value as serde::Deserialize>::deserialize(document).map_err(|e| BundleError::Yaml {
            path: format!("{name} (document {})", index + 1),
            message: e.to_string(),
        })?;
        values.push(value);
    }
    let many = values.len() > 1;
    Ok(values
        .into_iter()
        .enumerate()
        .filter(|(_, value)| super::gatekeeper::is_gatekeeper(value))
        .map(|(index, value)| super::gatekeeper::Document {
            origin: if many {
                format!("{name}#{}", index + 1)
            } else {
                name.to_string()
            },
            value,
        })
        .collect())
}

/// Deep-merges `value` into `data` at `path`; two files may share a prefix but not a leaf.
pub fn insert_at(data: &mut Value, path: &[&str], value: Value, source: &str) -> Result<(), BundleError> {
    let mut node = data;
    for key in path {
        let map = node.as_object_mut().ok_or_else(|| BundleError::Conflict {
            path: source.to_string(),
            key: path.join("."),
        })?;
        node = map.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
    }
    merge(node, value, &path.join("."), source)
}

fn merge(target: &mut Value, value: Value, key: &str, source: &str) -> Result<(), BundleError> {
    match (target, value) {
        (Value::Object(existing), Value::Object(incoming)) => {
            for (k, v) in incoming {
                let child_key = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                match existing.get_mut(&k) {
                    Some(slot) => merge(slot, v, &child_key, source)?,
                    None => {
                        existing.insert(k, v);
                    }
                }
            }
            Ok(())
        }
        (_, _) => Err(BundleError::Conflict {
            path: source.to_string(),
            key: key.to_string(),
        }),
    }
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), BundleError> {
    let entries = std::fs::read_dir(dir).map_err(|source| BundleError::Read {
        path: dir.display().to_string(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| BundleError::Read {
            path: dir.display().to_string(),
            source,
        })?;
        let path = entry.path();
        let name = entry.file_name();
        // Hidden entries include kubelet's `..data` and timestamped folders of a mounted
        // ConfigMap; the visible names are symlinks through `..data`, so reading those is enough.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(&path, files)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("rego" | "yaml" | "yml" | "json")
        ) {
            files.push(path);
        }
    }
    Ok(())
}

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_policies.rs"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_files_land_at_their_directory_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cost/resources")).unwrap();
        std::fs::write(dir.path().join("cost/resources/data.yaml"), "max_cpu: \"1\"\n").unwrap();
        std::fs::write(
            dir.path().join("cost/resources/policy.rego"),
            "package cost.resources\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("cost/resources/policy_test.rego"),
            "package cost.resources_test\n",
        )
        .unwrap();
        let bundle = Source::Dirs(vec![dir.path().to_path_buf()]).read().unwrap();
        assert_eq!(bundle.data, json!({"cost": {"resources": {"max_cpu": "1"}}}));
        assert_eq!(bundle.modules.len(), 1);
        assert_eq!(bundle.tests.len(), 1);
    }

    #[test]
    fn gatekeeper_documents_are_collected_from_yaml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("policy.yaml"),
            "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {name: k8sx}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ignored}\n---\n\
             apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sX\nmetadata: {name: x}\n",
        )
        .unwrap();
        // YAML that does not mention Gatekeeper is not even parsed.
        std::fs::write(dir.path().join("values.yaml"), "{{ .Values }}: [\n").unwrap();
        let bundle = Source::Dirs(vec![dir.path().to_path_buf()]).read().unwrap();
        let origins: Vec<_> = bundle
            .gatekeeper
            .iter()
            .map(|d| d.origin.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(origins, ["policy.yaml#1", "policy.yaml#3"]);
        std::fs::write(
            dir.path().join("broken.yaml"),
            "apiVersion: templates.gatekeeper.sh/v1\n  kind: [\n",
        )
        .unwrap();
        let err = Source::Dirs(vec![dir.path().to_path_buf()]).read().unwrap_err();
        assert!(
            err.to_string().contains("broken.yaml (document 1): not valid YAML"),
            "{err}"
        );
    }

    #[test]
    fn conflicting_data_is_an_error() {
        let mut data = json!({"a": {"b": 1}});
        let err = insert_at(&mut data, &["a"], json!({"b": 2}), "x/data.yaml").unwrap_err();
        assert!(err.to_string().contains("a.b"), "{err}");
        insert_at(&mut data, &["a"], json!({"c": 2}), "y/data.yaml").unwrap();
        assert_eq!(data, json!({"a": {"b": 1, "c": 2}}));
    }

    #[test]
    fn empty_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Source::Dirs(vec![dir.path().to_path_buf()]).read().unwrap_err();
        assert!(matches!(err, BundleError::Empty(_)));
    }

    #[test]
    fn embedded_library_is_not_empty() {
        let bundle = Source::Embedded.read().unwrap();
        assert!(!bundle.modules.is_empty());
        assert!(bundle.modules.iter().all(|m| m.name.starts_with("embedded:")));
    }
}
