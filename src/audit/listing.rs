//! The fleet as the apiserver lists it: every object of the audited kinds, read in pages (a
//! large cluster is never asked for everything in one answer), with the Namespaces' labels for
//! the risk levels.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod, PodTemplate, ReplicationController};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, ObjectList, TypeMeta};
use kube::discovery::{verbs, Discovery, Scope};
use serde_json::Value;

use crate::batch::{create_request, Document, ObjectError};
use crate::config::InventoryKind;
use crate::namespaces::StaticNamespaces;
use crate::policy::gatekeeper::matcher::Match;
use crate::policy::gatekeeper::review;

/// Objects per list request, by default.
pub const PAGE: u32 = 500;

/// Who the audit's synthetic requests come from (`userInfo.username`).
pub const USER: &str = "portcullis-audit";

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("cannot discover the cluster's kinds: {0}")]
    Discovery(#[source] kube::Error),
    #[error("cannot list {kind}: {source}")]
    List {
        kind: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot read a listed {kind}: {source}")]
    Encode {
        kind: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("a listed {kind}: {source}")]
    Object {
        kind: String,
        #[source]
        source: ObjectError,
    },
}

/// What was listed.
#[derive(Debug, Default)]
pub struct Fleet {
    pub documents: Vec<Document>,
    /// For each document: whether its findings are reported on it (`false`: it is controlled by
    /// another listed object, on which they are reported).
    pub reported: Vec<bool>,
    /// Every Namespace's labels.
    pub namespaces: StaticNamespaces,
}

/// The kinds the webhook reviews: Pods and what makes them.
fn audited_kinds() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<Pod>(&()),
        ApiResource::erase::<PodTemplate>(&()),
        ApiResource::erase::<ReplicationController>(&()),
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<ReplicaSet>(&()),
        ApiResource::erase::<StatefulSet>(&()),
        ApiResource::erase::<DaemonSet>(&()),
        ApiResource::erase::<Job>(&()),
        ApiResource::erase::<CronJob>(&()),
    ]
}

/// What to list: the namespaces (every one when empty), objects per request, and the
/// Gatekeeper constraints' matches, whose kinds are listed beside the pod-bearing ones.
pub struct Selection<'a> {
    pub namespaces: &'a [String],
    pub page: u32,
    pub matches: &'a [&'a Match],
}

/// Lists the audited kinds, and all Namespaces.
pub async fn list(client: &kube::Client, selection: &Selection<'_>) -> Result<Fleet, ListError> {
    let mut kinds = audited_kinds();
    kinds.extend(selected_kinds(client, selection, &kinds).await?);
    let mut objects = Vec::new();
    for resource in &kinds {
        let apis: Vec<Api<DynamicObject>> = match selection.namespaces {
            [] => vec![Api::all_with(client.clone(), resource)],
            some => some
                .iter()
                .map(|namespace| Api::namespaced_with(client.clone(), namespace, resource))
                .collect(),
        };
        for api in apis {
            for object in list_pages(&api, &resource.kind, selection.page).await? {
                objects.push(as_listed(object, resource)?);
            }
        }
    }
    let namespace_resource = ApiResource::erase::<Namespace>(&());
    let mut labels = HashMap::new();
    for namespace in list_pages(
        &Api::all_with(client.clone(), &namespace_resource),
        "Namespace",
        selection.page,
    )
    .await?
    {
        labels.insert(
            namespace.metadata.name.unwrap_or_default(),
            namespace.metadata.labels.unwrap_or_default(),
        );
    }
    let reported = reported_on_themselves(&objects);
    let documents = objects
        .into_iter()
        .enumerate()
        .map(|(index, object)| {
            let kind = object["kind"].as_str().unwrap_or_default().to_string();
            let request = create_request(object, format!("{USER}-{index}"), USER)
                .map_err(|source| ListError::Object { kind, source })?;
            Ok(Document {
                origin: "cluster".to_string(),
                request,
            })
        })
        .collect::<Result<_, ListError>>()?;
    Ok(Fleet {
        documents,
        reported,
        namespaces: StaticNamespaces(labels),
    })
}

/// The kinds the cluster serves, beyond `audited`, that a constraint selects: listable, never
/// Secrets (no policy input carries them), and only namespaced ones when the audit is limited
/// to some namespaces. No discovery without constraints.
async fn selected_kinds(
    client: &kube::Client,
    selection: &Selection<'_>,
    audited: &[ApiResource],
) -> Result<Vec<ApiResource>, ListError> {
    if selection.matches.is_empty() {
        return Ok(Vec::new());
    }
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(ListError::Discovery)?;
    let mut selected = Vec::new();
    for group in discovery.groups() {
        for (resource, capabilities) in group.recommended_resources() {
            let known = audited
                .iter()
                .chain(&selected)
                .any(|a| a.group == resource.group && a.kind == resource.kind);
            let secret = resource.group.is_empty() && resource.kind == "Secret";
            let in_scope = selection.namespaces.is_empty() || capabilities.scope == Scope::Namespaced;
            let matched = selection
                .matches
                .iter()
                .any(|m| m.selects_kind(&resource.group, &resource.kind));
            if matched && !known && !secret && in_scope && capabilities.supports_operation(verbs::LIST) {
                selected.push(resource);
            }
        }
    }
    Ok(selected)
}

/// Gatekeeper's `data.inventory` as the cluster holds it now: every object of `kinds`, listed
/// in pages, laid out as the webhook's inventory sync lays it out.
pub async fn inventory(client: &kube::Client, kinds: &[InventoryKind], page: u32) -> Result<Value, ListError> {
    let mut objects = Vec::new();
    for kind in kinds {
        let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
        let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .map_err(|source| ListError::List {
                kind: kind.to_string(),
                source,
            })?;
        for object in list_pages(&Api::all_with(client.clone(), &resource), &resource.kind, page).await? {
            objects.push(as_listed(object, &resource)?);
        }
    }
    Ok(review::inventory(&objects))
}

/// Every object `api` lists, page by page.
async fn list_pages(api: &Api<DynamicObject>, kind: &str, page: u32) -> Result<Vec<DynamicObject>, ListError> {
    let mut params = ListParams::default().limit(page);
    let mut objects = Vec::new();
    loop {
        let page: ObjectList<DynamicObject> = api.list(&params).await.map_err(|source| ListError::List {
            kind: kind.to_string(),
            source,
        })?;
        objects.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(objects),
        }
    }
}

/// An object as policies see it: with its `apiVersion` and `kind` (list items lack them) and
/// without `metadata.managedFields` (bookkeeping no policy reads, often half the size).
fn as_listed(mut object: DynamicObject, resource: &ApiResource) -> Result<Value, ListError> {
    object.types = Some(TypeMeta {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
    });
    object.metadata.managed_fields = None;
    serde_json::to_value(object).map_err(|source| ListError::Encode {
        kind: resource.kind.clone(),
        source,
    })
}

/// For each object: false when its controller (the owner reference marked `controller`) is
/// among the listed objects, so that one workload's findings are reported once.
fn reported_on_themselves(objects: &[Value]) -> Vec<bool> {
    let uids: HashSet<&str> = objects
        .iter()
        .filter_map(|o| o.pointer("/metadata/uid").and_then(Value::as_str))
        .collect();
    objects
        .iter()
        .map(|object| {
            let owners = object.pointer("/metadata/ownerReferences").and_then(Value::as_array);
            let controller = owners
                .into_iter()
                .flatten()
                .find(|owner| owner.get("controller").and_then(Value::as_bool) == Some(true));
            let listed = |owner: &Value| {
                owner
                    .get("uid")
                    .and_then(Value::as_str)
                    .is_some_and(|uid| uids.contains(uid))
            };
            !controller.is_some_and(listed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(uid: &str, owner: Option<(&str, bool)>) -> Value {
        let owners: Vec<Value> = owner
            .map(|(uid, controller)| json!({"uid": uid, "kind": "ReplicaSet", "name": "x", "controller": controller}))
            .into_iter()
            .collect();
        json!({"metadata": {"uid": uid, "ownerReferences": owners}})
    }

    #[test]
    fn findings_go_to_a_listed_controller_only() {
        let objects = [
            object("deployment", None),
            object("replicaset", Some(("deployment", true))),
            object("pod", Some(("replicaset", true))),
            // Its controller was not listed (deleted, or another namespace): an orphan.
            object("orphan", Some(("gone", true))),
            // Owned, but not by a controller.
            object("adopted", Some(("deployment", false))),
        ];
        assert_eq!(reported_on_themselves(&objects), [true, false, false, true, true]);
    }
}
