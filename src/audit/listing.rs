//! The fleet as the apiserver lists it: every object of the audited kinds, read in pages (a
//! large cluster is never asked for everything in one answer, and an audit never holds more
//! than a page of objects), and the Namespaces' labels for the risk levels.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod, PodTemplate, ReplicationController};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, ObjectList, TypeMeta};
use kube::discovery::{verbs, Discovery, Scope};
use serde_json::Value;

use crate::config::InventoryKind;
use crate::exceptions::{watch, StaticExceptions};
use crate::namespaces::StaticNamespaces;
use crate::policy::gatekeeper::matcher::Match;
use crate::policy::gatekeeper::review;

/// Objects per list request, by default.
pub const PAGE: u32 = 500;

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
}

/// The kinds the webhook reviews: Pods and what makes them, controllers before what they
/// control (a CronJob before its Jobs, a Deployment before its ReplicaSets, all before Pods),
/// so that a controlled object is usually decided after its controller is known.
fn audited_kinds() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<CronJob>(&()),
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<StatefulSet>(&()),
        ApiResource::erase::<DaemonSet>(&()),
        ApiResource::erase::<ReplicationController>(&()),
        ApiResource::erase::<Job>(&()),
        ApiResource::erase::<ReplicaSet>(&()),
        ApiResource::erase::<PodTemplate>(&()),
        ApiResource::erase::<Pod>(&()),
    ]
}

/// The kinds of [`audited_kinds`], by name.
pub fn audited_kind_names() -> Vec<String> {
    audited_kinds().into_iter().map(|resource| resource.kind).collect()
}

/// What to list: the namespaces (every one when empty), objects per request, and the
/// Gatekeeper constraints' matches, whose kinds are listed beside the pod-bearing ones.
pub struct Selection<'a> {
    pub namespaces: &'a [String],
    pub page: u32,
    pub matches: Vec<Match>,
}

/// The audited objects one page at a time, so that an audit holds one page of objects, never
/// the fleet: first the kinds constraints select (a custom controller such as a Rollout
/// before the ReplicaSets it owns), then [`audited_kinds`] in their order.
pub struct Pages {
    /// What is left to list, the next first: each kind in each selected namespace.
    lists: Vec<(ApiResource, Api<DynamicObject>)>,
    /// Where the current list goes on.
    continue_token: Option<String>,
    page: u32,
    /// The lists answered so far, each at the version it was read at.
    listed: Vec<Listed>,
}

/// A list as it was read: its resource, where, and the `resourceVersion` of the snapshot its
/// pages came from (every page of a list is of one snapshot), which a watch resumes from.
#[derive(Clone)]
pub struct Listed {
    pub resource: ApiResource,
    pub api: Api<DynamicObject>,
    pub resource_version: String,
}

impl Pages {
    /// Discovers the kinds to list (only when constraints select some).
    pub async fn open(client: &kube::Client, selection: &Selection<'_>) -> Result<Pages, ListError> {
        let audited = audited_kinds();
        let mut kinds = selected_kinds(client, selection, &audited).await?;
        kinds.extend(audited);
        let mut lists = Vec::new();
        for resource in kinds {
            match selection.namespaces {
                [] => lists.push((resource.clone(), Api::all_with(client.clone(), &resource))),
                some => lists.extend(some.iter().map(|namespace| {
                    (
                        resource.clone(),
                        Api::namespaced_with(client.clone(), namespace, &resource),
                    )
                })),
            }
        }
        Ok(Pages::of(lists, selection.page))
    }

    /// Pages of `lists`, in their order, `page` objects per request.
    fn of(mut lists: Vec<(ApiResource, Api<DynamicObject>)>, page: u32) -> Pages {
        lists.reverse();
        Pages {
            lists,
            continue_token: None,
            page,
            listed: Vec::new(),
        }
    }

    /// Every resource in all namespaces.
    fn all(client: &kube::Client, resources: Vec<ApiResource>, page: u32) -> Pages {
        let lists = resources
            .into_iter()
            .map(|resource| {
                let api = Api::all_with(client.clone(), &resource);
                (resource, api)
            })
            .collect();
        Pages::of(lists, page)
    }

    /// The next page of objects (with their `apiVersion` and `kind`), `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Vec<Value>>, ListError> {
        let Some((resource, objects)) = self.next_listed().await? else {
            return Ok(None);
        };
        let objects = objects.into_iter().map(|object| as_listed(object, &resource));
        Ok(Some(objects.collect::<Result<_, _>>()?))
    }

    /// The lists read so far (all of them once [`Pages::next`] gave `None`).
    pub fn into_listed(self) -> Vec<Listed> {
        self.listed
    }

    /// The next non-empty page as the apiserver answered it, with the resource it lists.
    async fn next_listed(&mut self) -> Result<Option<(ApiResource, Vec<DynamicObject>)>, ListError> {
        while let Some((resource, api)) = self.lists.last() {
            let mut params = ListParams::default().limit(self.page);
            if let Some(token) = &self.continue_token {
                params = params.continue_token(token);
            }
            let page: ObjectList<DynamicObject> = api.list(&params).await.map_err(|source| ListError::List {
                kind: resource.kind.clone(),
                source,
            })?;
            if self.continue_token.is_none() {
                self.listed.push(Listed {
                    resource: resource.clone(),
                    api: api.clone(),
                    resource_version: page.metadata.resource_version.clone().unwrap_or_default(),
                });
            }
            let resource = resource.clone();
            self.continue_token = page.metadata.continue_.filter(|token| !token.is_empty());
            if self.continue_token.is_none() {
                self.lists.pop();
            }
            if !page.items.is_empty() {
                return Ok(Some((resource, page.items)));
            }
        }
        Ok(None)
    }
}

/// Every Namespace's labels (for the risk levels), listed in pages.
pub async fn namespaces(client: &kube::Client, page: u32) -> Result<StaticNamespaces, ListError> {
    let mut pages = Pages::all(client, vec![ApiResource::erase::<Namespace>(&())], page);
    let mut labels = HashMap::new();
    while let Some((_, namespaces)) = pages.next_listed().await? {
        for namespace in namespaces {
            labels.insert(
                namespace.metadata.name.unwrap_or_default(),
                namespace.metadata.labels.unwrap_or_default(),
            );
        }
    }
    Ok(StaticNamespaces(labels))
}

/// Every PolicyException, listed in pages, read as the webhook reads them.
pub async fn exceptions(client: &kube::Client, page: u32, max_days: u32) -> Result<StaticExceptions, ListError> {
    let mut pages = Pages::all(client, vec![watch::resource()], page);
    let mut objects = Vec::new();
    while let Some((_, listed)) = pages.next_listed().await? {
        for object in listed {
            objects.push(serde_json::to_value(object).map_err(|source| ListError::Encode {
                kind: crate::exceptions::KIND.to_string(),
                source,
            })?);
        }
    }
    Ok(StaticExceptions::read(&objects, max_days, jiff::Timestamp::now()))
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
    let mut resources = Vec::new();
    for kind in kinds {
        let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
        let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .map_err(|source| ListError::List {
                kind: kind.to_string(),
                source,
            })?;
        resources.push(resource);
    }
    let mut pages = Pages::all(client, resources, page);
    let mut objects = Vec::new();
    while let Some(page) = pages.next().await? {
        objects.extend(page);
    }
    Ok(review::inventory(&objects))
}

/// An object as policies see it: with its `apiVersion` and `kind` (list items lack them) and
/// without `metadata.managedFields` (bookkeeping no policy reads, often half the size).
pub fn as_listed(mut object: DynamicObject, resource: &ApiResource) -> Result<Value, ListError> {
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
