//! Reports written by the continuous audit itself: each report of a pass server-side applied
//! (field manager `portcullis`, strict field validation) only when its results changed since
//! it was last written, and the reports portcullis wrote that a pass no longer produces (a
//! namespace emptied, a report split no longer needed) deleted. So an unchanged fleet costs the
//! apiserver no write at all, and a result's `timestamp` is the pass that last changed its report.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::SystemTime;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, ValidationDirective};
use serde_json::Value;

use super::audited::Audited;
use super::reports::{render, Format, NAME};

const FIELD_MANAGER: &str = "portcullis";
const OURS: &str = "app.kubernetes.io/managed-by=portcullis";

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot list the {kind} reports (are their CRDs installed? `scripts/tools.sh report-crds` names them): {source}")]
    List {
        kind: String,
        #[source]
        source: kube::Error,
    },
}

/// A report's identity: `None` for the cluster-wide one.
type Key = (Option<String>, String);

/// What one pass's writing did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub applied: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub failed: usize,
}

pub struct ReportWriter {
    format: Format,
    cluster: Api<DynamicObject>,
    client: kube::Client,
    resource: kube::api::ApiResource,
    /// Every report portcullis wrote, with the digest of its results (`None`: found at
    /// startup, written by an earlier process: rewritten at the first pass).
    written: HashMap<Key, Option<u64>>,
}

impl ReportWriter {
    /// A writer of `format`'s reports, knowing the ones already there (labelled as ours).
    pub async fn open(client: kube::Client, format: Format) -> Result<ReportWriter, WriteError> {
        let (resource, cluster_resource) = format.resources();
        let namespaced = Api::all_with(client.clone(), &resource);
        let cluster = Api::all_with(client.clone(), &cluster_resource);
        let mut written = HashMap::new();
        for (api, kind) in [(&namespaced, &resource.kind), (&cluster, &cluster_resource.kind)] {
            let existing = api
                .list_metadata(&ListParams::default().labels(OURS))
                .await
                .map_err(|source| WriteError::List {
                    kind: kind.clone(),
                    source,
                })?;
            for report in existing {
                let name = report.metadata.name.unwrap_or_default();
                written.insert((report.metadata.namespace, name), None);
            }
        }
        Ok(ReportWriter {
            format,
            cluster,
            client,
            resource,
            written,
        })
    }

    /// Writes the reports of a pass (`audited`, completed `at`): the changed ones applied, the
    /// ones no longer produced deleted. A write that fails is logged and retried at the next
    /// pass.
    pub async fn write<'a>(&mut self, audited: impl IntoIterator<Item = &'a Audited>, at: SystemTime) -> Written {
        let reports = render(self.format, super::reported(audited), at);
        let mut done = Written::default();
        let mut produced: HashMap<Key, Option<u64>> = HashMap::new();
        for report in reports {
            let namespace = report
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_string);
            let name = report
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or(NAME)
                .to_string();
            let key = (namespace, name);
            let digest = digest(&report);
            if self.written.get(&key) == Some(&Some(digest)) {
                done.unchanged += 1;
                produced.insert(key, Some(digest));
                continue;
            }
            let api = self.api(key.0.as_deref());
            let params = PatchParams::apply(FIELD_MANAGER)
                .force()
                .validation(ValidationDirective::Strict);
            match api.patch(&key.1, &params, &Patch::Apply(&report)).await {
                Ok(_) => {
                    done.applied += 1;
                    produced.insert(key, Some(digest));
                }
                Err(error) => {
                    tracing::warn!(namespace = key.0.as_deref().unwrap_or(""), report = %key.1, %error, "cannot write an audit report; retried at the next pass");
                    done.failed += 1;
                    produced.insert(key, None);
                }
            }
        }
        for (key, _) in std::mem::take(&mut self.written) {
            if produced.contains_key(&key) {
                continue;
            }
            match self
                .api(key.0.as_deref())
                .delete(&key.1, &DeleteParams::default())
                .await
            {
                Ok(_) => done.deleted += 1,
                Err(kube::Error::Api(status)) if status.code == 404 => done.deleted += 1,
                Err(error) => {
                    tracing::warn!(namespace = key.0.as_deref().unwrap_or(""), report = %key.1, %error, "cannot delete a stale audit report; retried at the next pass");
                    done.failed += 1;
                    produced.insert(key, None);
                }
            }
        }
        self.written = produced;
        done
    }

    fn api(&self, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &self.resource),
            None => self.cluster.clone(),
        }
    }
}

/// What a report says, its results' timestamps left out: two passes that find the same give
/// the same digest.
fn digest(report: &Value) -> u64 {
    let mut stable = report.clone();
    if let Some(results) = stable.get_mut("results").and_then(Value::as_array_mut) {
        for result in results {
            if let Some(result) = result.as_object_mut() {
                result.remove("timestamp");
            }
        }
    }
    let mut hasher = DefaultHasher::new();
    stable.to_string().hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_digest_ignores_timestamps_only() {
        let report = |seconds: u64, result: &str| json!({"metadata": {"name": NAME}, "results": [{"policy": "p", "result": result, "timestamp": {"seconds": seconds}}]});
        assert_eq!(digest(&report(1, "pass")), digest(&report(2, "pass")));
        assert_ne!(digest(&report(1, "pass")), digest(&report(1, "fail")));
    }
}
