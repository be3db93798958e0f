//! Gatekeeper's `data.inventory` in the cluster: a cached watch of each kind listed in
//! `policies.inventory`, turned into the inventory document after the first full list and
//! again after every change (changes arriving close together are applied as one rebuild).
//! Objects are read from memory, never from the apiserver on the request path.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::Value;
use tokio::sync::Notify;

use crate::admission::Reviewer;
use crate::background;
use crate::config::InventoryKind;
use crate::metrics::Metrics;
use crate::policy::gatekeeper::{review, InventoryError};
use crate::watch_health::{watcher_config, Retry, WatchHealth};

/// How long to gather changes before rebuilding: a burst (a rollout, a relist) costs one
/// rebuild, and a new object is seen by policies about this long after it is stored.
const SETTLE: Duration = Duration::from_millis(250);

/// The kinds of `policies.inventory` that API discovery does not know, all at once.
#[derive(Debug, thiserror::Error)]
#[error("policies.inventory: cannot sync:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct UnknownKinds(pub Vec<String>);

pub struct InventorySync {
    kinds: Vec<SyncedKind>,
    changed: Arc<Notify>,
}

struct SyncedKind {
    name: String,
    resource: ApiResource,
    store: Store<DynamicObject>,
    health: Arc<WatchHealth>,
}

impl InventorySync {
    /// Resolves every kind through API discovery (all unknown kinds are reported at once),
    /// then starts their watches in the background.
    pub async fn start(client: kube::Client, kinds: &[InventoryKind]) -> Result<InventorySync, UnknownKinds> {
        let mut problems = Vec::new();
        let mut resolved = Vec::new();
        for kind in kinds {
            let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
            match kube::discovery::pinned_kind(&client, &gvk).await {
                Ok((resource, _)) => resolved.push((kind.to_string(), resource)),
                Err(error) => problems.push(format!("{kind}: {error}")),
            }
        }
        if !problems.is_empty() {
            return Err(UnknownKinds(problems));
        }
        let changed = Arc::new(Notify::new());
        let kinds = resolved
            .into_iter()
            .map(|(name, resource)| {
                let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
                let writer = reflector::store::Writer::new(resource.clone());
                let store = writer.as_reader();
                let health = Arc::new(WatchHealth::new(format!("inventory {name}")));
                let stream = health
                    .observing(reflector::reflector(writer, watcher(api, watcher_config())).backoff(Retry::default()));
                let (changed, kind) = (changed.clone(), name.clone());
                tokio::spawn(async move {
                    stream
                        .for_each(|event| {
                            match event {
                                Ok(_) => changed.notify_one(),
                                Err(error) => tracing::warn!(%kind, %error, "inventory watch error; retrying"),
                            }
                            async {}
                        })
                        .await;
                });
                SyncedKind {
                    name,
                    resource,
                    store,
                    health,
                }
            })
            .collect();
        Ok(InventorySync { kinds, changed })
    }

    /// Keeps `reviewer`'s inventory current from now on, in the background; the reviewer is
    /// not ready until the first full list of every kind is installed.
    pub fn follow(self, reviewer: Arc<Reviewer>, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
        reviewer.expect_inventory(self.kinds.iter().map(|kind| kind.health.clone()).collect());
        tokio::spawn(self.keep_current(reviewer, metrics))
    }

    async fn keep_current(self, reviewer: Arc<Reviewer>, metrics: Arc<Metrics>) {
        for kind in &self.kinds {
            if kind.store.wait_until_ready().await.is_err() {
                tracing::error!(kind = %kind.name, "inventory watch ended before its first list");
                return;
            }
        }
        loop {
            // The caches' objects now (shared pointers); the document is built, converted and
            // installed off the async runtime, below the reviews' priority.
            let snapshot: Vec<Snapshot> = self
                .kinds
                .iter()
                .map(|kind| Snapshot {
                    name: kind.name.clone(),
                    resource: kind.resource.clone(),
                    objects: kind.store.state(),
                })
                .collect();
            let target = reviewer.clone();
            let installed = background::run("inventory-build", move || {
                target.replace_inventory(document(&snapshot))?;
                Ok::<_, InventoryError>(snapshot.into_iter().map(|kind| (kind.name, kind.objects.len())))
            })
            .await;
            match installed {
                Ok(Ok(counts)) => {
                    for (kind, count) in counts {
                        metrics.set_inventory_objects(kind, count);
                    }
                    tracing::debug!("inventory installed");
                }
                Ok(Err(error)) => tracing::error!(%error, "inventory not installed; policies keep the previous one"),
                Err(error) => tracing::error!(%error, "policies keep the previous inventory"),
            }
            self.changed.notified().await;
            tokio::time::sleep(SETTLE).await;
        }
    }
}

/// One kind's cached objects at one moment.
struct Snapshot {
    name: String,
    resource: ApiResource,
    objects: Vec<Arc<DynamicObject>>,
}

/// The inventory document of a snapshot.
fn document(snapshot: &[Snapshot]) -> Value {
    let objects: Vec<Value> = snapshot
        .iter()
        .flat_map(|kind| kind.objects.iter().map(|object| as_synced(object, &kind.resource)))
        .collect();
    review::inventory(&objects)
}

/// An object as the inventory holds it: with its `apiVersion` and `kind` (list items may lack
/// them) and without `metadata.managedFields` (bookkeeping no policy reads, often half the size).
fn as_synced(object: &DynamicObject, resource: &ApiResource) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut value {
        fields.insert("apiVersion".into(), Value::String(resource.api_version.clone()));
        fields.insert("kind".into(), Value::String(resource.kind.clone()));
        if let Some(Value::Object(metadata)) = fields.get_mut("metadata") {
            metadata.remove("managedFields");
        }
    }
    value
}
