//! One audit pass: listed objects decided page by page with the webhook's reviewer, each kept
//! only as its result, and its findings handed to its controller when that was listed too.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hasher};

use serde_json::Value;

use super::listing::{ListError, Listed, Pages, Selection};
use super::what_if;
use crate::admission::Reviewer;
use crate::batch::{self, create_request, Document, ObjectError, ObjectResult};

/// Who the audit's synthetic requests come from (`userInfo.username`).
pub const USER: &str = "portcullis-audit";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    List(#[from] ListError),
    #[error("a listed {kind}: {source}")]
    Object {
        kind: String,
        #[source]
        source: ObjectError,
    },
}

/// One audited object: its result and what a report names it by.
#[derive(Debug, Clone)]
pub struct Audited {
    pub api_version: String,
    pub uid: String,
    /// The uid of its controller (the owner reference marked `controller`).
    pub controller: Option<String>,
    /// Whether its findings are reported on it; when not (its controller was listed too, and
    /// they are reported there), only what the posture and the counts need is kept.
    pub reported: bool,
    pub result: ObjectResult,
    /// The [`digest`] of the object as it was decided.
    pub digest: u64,
}

impl Audited {
    /// Its findings belong to its controller: they are dropped here.
    pub fn hand_over(&mut self) {
        self.reported = false;
        self.result.findings = Vec::new();
        self.result.applied = Vec::new();
    }
}

/// An audit pass in progress: pages of listed objects decided one by one, with `installed`
/// and, with a proposal, with it too on the same facts (each image verified once), the
/// findings merged by [`what_if::compare`].
pub struct Pass<'a> {
    installed: &'a Reviewer,
    proposal: Option<&'a Reviewer>,
    /// A runtime to verify images on (online), or none (offline).
    online: Option<&'a tokio::runtime::Runtime>,
    listed: HashSet<String>,
    audited: Vec<Audited>,
}

impl<'a> Pass<'a> {
    pub fn new(
        installed: &'a Reviewer,
        proposal: Option<&'a Reviewer>,
        online: Option<&'a tokio::runtime::Runtime>,
    ) -> Pass<'a> {
        Pass {
            installed,
            proposal,
            online,
            listed: HashSet::new(),
            audited: Vec::new(),
        }
    }

    /// Decides a page of listed objects (with their `apiVersion` and `kind`); each object is
    /// dropped once decided.
    pub fn decide(&mut self, page: Vec<Value>) -> Result<(), AuditError> {
        for object in page {
            let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).map(str::to_string);
            let api_version = text("/apiVersion").unwrap_or_default();
            let uid = text("/metadata/uid").unwrap_or_default();
            let controller = controller(&object).map(str::to_string);
            let kind = text("/kind").unwrap_or_default();
            let digest = digest(&object);
            let request = create_request(object, format!("{USER}-{}", self.audited.len()), USER)
                .map_err(|source| AuditError::Object { kind, source })?;
            let document = Document {
                origin: "cluster".to_string(),
                location: None,
                request,
            };
            let facts = batch::facts(self.installed, &document, self.online);
            let result = match self.proposal {
                None => batch::decide(self.installed, &document, facts),
                Some(proposal) => what_if::compare(
                    batch::decide(self.installed, &document, facts.clone()),
                    batch::decide(proposal, &document, facts),
                ),
            };
            let mut audited = Audited {
                api_version,
                uid: uid.clone(),
                controller,
                reported: true,
                result,
                digest,
            };
            if self.is_listed(audited.controller.as_deref()) {
                audited.hand_over();
            }
            self.listed.insert(uid);
            self.audited.push(audited);
        }
        Ok(())
    }

    /// Every object decided, in the order listed; those whose controller was listed after
    /// them handed over to it now.
    pub fn finish(self) -> Vec<Audited> {
        let Pass {
            listed, mut audited, ..
        } = self;
        for object in &mut audited {
            if object.controller.as_deref().is_some_and(|uid| listed.contains(uid)) {
                object.hand_over();
            }
        }
        audited
    }

    fn is_listed(&self, uid: Option<&str>) -> bool {
        uid.is_some_and(|uid| self.listed.contains(uid))
    }
}

/// A completed pass: every object decided, and the lists it read (where watches resume).
pub struct Completed {
    pub audited: Vec<Audited>,
    pub listed: Vec<Listed>,
}

/// One audit pass over the cluster: the pages listed and each decided outside the runtime
/// (verification blocks on it), then the pass finished.
pub fn pass(
    runtime: &tokio::runtime::Runtime,
    client: &kube::Client,
    selection: &Selection<'_>,
    installed: &Reviewer,
    proposal: Option<&Reviewer>,
    online: bool,
) -> Result<Completed, AuditError> {
    let mut pages = runtime.block_on(Pages::open(client, selection))?;
    let mut pass = Pass::new(installed, proposal, online.then_some(runtime));
    while let Some(page) = runtime.block_on(pages.next())? {
        pass.decide(page)?;
    }
    Ok(Completed {
        audited: pass.finish(),
        listed: pages.into_listed(),
    })
}

/// What decides an object, as a digest: all of it but its `status` and the bookkeeping in its
/// `metadata`, so that a status update (by far the most frequent change) is not decided again.
pub fn digest(object: &Value) -> u64 {
    let mut hasher = DefaultHasher::new();
    let mut feed = |key: &str, value: &Value| {
        hasher.write(key.as_bytes());
        let _ = serde_json::to_writer(HashWriter(&mut hasher), value);
    };
    for (key, value) in object.as_object().into_iter().flatten() {
        match key.as_str() {
            "status" => {}
            "metadata" => {
                for (key, value) in value.as_object().into_iter().flatten() {
                    if !matches!(key.as_str(), "resourceVersion" | "managedFields" | "generation") {
                        feed(key, value);
                    }
                }
            }
            _ => feed(key, value),
        }
    }
    hasher.finish()
}

/// Serialized JSON fed to a hasher, never held.
struct HashWriter<'a>(&'a mut DefaultHasher);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The uid of `object`'s controller: the owner reference marked `controller`.
pub fn controller(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|owner| owner.get("controller").and_then(Value::as_bool) == Some(true))?
        .get("uid")
        .and_then(Value::as_str)
}

/// The objects whose findings are reported on themselves.
pub fn reported<'a>(audited: impl IntoIterator<Item = &'a Audited>) -> impl Iterator<Item = &'a Audited> {
    audited.into_iter().filter(|audited| audited.reported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use crate::namespaces::StaticNamespaces;
    use crate::policy::bundle::{Bundle, Module};
    use crate::policy::PolicySet;
    use crate::risk::RiskLevel;

    fn reviewer() -> Reviewer {
        let bundle = Bundle {
            modules: vec![Module {
                name: "p.rego".into(),
                text: "package t\ndeny contains \"no\" if { input.images }\n".into(),
            }],
            tests: vec![],
            data: json!({}),
            gatekeeper: vec![],
        };
        let set = PolicySet::build(&bundle, json!({}), Duration::from_millis(500)).unwrap();
        Reviewer::new(
            set,
            BTreeMap::new(),
            RiskLevel::High,
            Arc::new(StaticNamespaces::default()),
        )
    }

    fn object(kind: &str, uid: &str, owner: Option<(&str, bool)>) -> Value {
        let owners: Vec<Value> = owner
            .map(|(uid, controller)| json!({"uid": uid, "kind": "ReplicaSet", "name": "x", "controller": controller}))
            .into_iter()
            .collect();
        let spec = json!({"containers": [{"name": "c", "image": "registry.example.com/app:1"}]});
        json!({"apiVersion": "v1", "kind": kind, "spec": spec,
               "metadata": {"name": uid, "namespace": "team-a", "uid": uid, "ownerReferences": owners}})
    }

    #[test]
    fn findings_go_to_a_listed_controller_in_whichever_order_they_are_listed() {
        let reviewer = reviewer();
        let mut pass = Pass::new(&reviewer, None, None);
        pass.decide(vec![
            object("Deployment", "deployment", None),
            object("ReplicaSet", "replicaset", Some(("deployment", true))),
        ])
        .unwrap();
        pass.decide(vec![
            object("Pod", "pod", Some(("replicaset", true))),
            // Listed before its controller: handed over at the end.
            object("Pod", "early", Some(("late", true))),
            // Its controller was not listed (deleted, or another namespace): an orphan.
            object("Pod", "orphan", Some(("gone", true))),
            // Owned, but not by a controller.
            object("Pod", "adopted", Some(("deployment", false))),
            object("ReplicaSet", "late", None),
        ])
        .unwrap();
        let audited = pass.finish();
        let outcomes: Vec<(&str, bool, usize)> = audited
            .iter()
            .map(|a| (a.uid.as_str(), a.reported, a.result.findings.len()))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("deployment", true, 1),
                ("replicaset", false, 0),
                ("pod", false, 0),
                ("early", false, 0),
                ("orphan", true, 1),
                ("adopted", true, 1),
                ("late", true, 1),
            ]
        );
        // A handed-over Pod still counts in the posture: it is what runs.
        assert_eq!(audited[2].result.images.len(), 1);
        assert!(audited[2].result.applied.is_empty());
        assert_eq!(reported(&audited).count(), 4);
    }

    #[test]
    fn the_digest_changes_with_what_is_decided_not_with_status_or_bookkeeping() {
        let pod = object("Pod", "pod", None);
        let mut updated = pod.clone();
        updated["status"] = json!({"phase": "Running"});
        updated["metadata"]["resourceVersion"] = json!("42");
        updated["metadata"]["managedFields"] = json!([{"manager": "kubelet"}]);
        assert_eq!(digest(&pod), digest(&updated));
        let mut relabelled = pod.clone();
        relabelled["metadata"]["labels"] = json!({"portcullis.io/risk-level": "low"});
        assert_ne!(digest(&pod), digest(&relabelled));
        let mut changed = pod.clone();
        changed["spec"]["containers"][0]["image"] = json!("registry.example.com/app:2");
        assert_ne!(digest(&pod), digest(&changed));
    }

    #[test]
    fn the_controller_is_the_owner_marked_so() {
        let owned = |controller: bool| {
            json!({"metadata": {"ownerReferences": [
                {"uid": "other", "kind": "ConfigMap", "name": "c"},
                {"uid": "rs-1", "kind": "ReplicaSet", "name": "x", "controller": controller}
            ]}})
        };
        assert_eq!(controller(&owned(true)), Some("rs-1"));
        assert_eq!(controller(&owned(false)), None);
        assert_eq!(controller(&json!({"metadata": {}})), None);
    }
}
