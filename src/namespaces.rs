//! Namespace labels, for the namespace's risk level: a cached watch in the cluster, a fixed
//! map offline (`check`) or in development.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};

use crate::watch_health::{watcher_config, Retry, WatchHealth};

pub type Labels = BTreeMap<String, String>;

pub trait NamespaceLabels: Send + Sync {
    /// Labels of a namespace; empty when it is unknown (its level is then the default).
    fn labels(&self, namespace: &str) -> Labels;
    /// Whether the source has the full picture yet (readiness).
    fn ready(&self) -> bool {
        true
    }
    /// A digest of every namespace's `label` (its value or its absence): it changes when one
    /// does.
    fn label_digest(&self, _label: &str) -> u64 {
        0
    }
    /// The watches behind the labels, for their staleness (none for a fixed map).
    fn watches(&self) -> Vec<Arc<WatchHealth>> {
        Vec::new()
    }
}

/// A fixed map, e.g. built from Namespace manifests given to `check`.
#[derive(Debug, Default, Clone)]
pub struct StaticNamespaces(pub HashMap<String, Labels>);

impl NamespaceLabels for StaticNamespaces {
    fn labels(&self, namespace: &str) -> Labels {
        self.0.get(namespace).cloned().unwrap_or_default()
    }
}

/// A reflector over Namespaces: labels are read from memory, never from the apiserver on the
/// request path.
pub struct KubeNamespaces {
    store: Store<Namespace>,
    synced: Arc<AtomicBool>,
    health: Arc<WatchHealth>,
}

impl KubeNamespaces {
    /// Starts the watch in the background; `ready()` turns true after the first full list.
    pub fn start(client: kube::Client) -> KubeNamespaces {
        let api: kube::Api<Namespace> = kube::Api::all(client);
        let (store, writer) = reflector::store();
        let health = Arc::new(WatchHealth::new("namespaces"));
        let stream = health
            .observing(reflector::reflector(writer, watcher(api, watcher_config())).backoff(Retry::default()))
            .touched_objects();
        tokio::spawn(async move {
            stream
                .for_each(|event| async move {
                    if let Err(error) = event {
                        tracing::warn!(%error, "namespace watch error; retrying");
                    }
                })
                .await;
        });
        let synced = Arc::new(AtomicBool::new(false));
        let (waiting, flag) = (store.clone(), synced.clone());
        tokio::spawn(async move {
            if waiting.wait_until_ready().await.is_ok() {
                flag.store(true, Ordering::Release);
            }
        });
        KubeNamespaces { store, synced, health }
    }
}

impl NamespaceLabels for KubeNamespaces {
    fn labels(&self, namespace: &str) -> Labels {
        self.store
            .get(&reflector::ObjectRef::new(namespace))
            .and_then(|ns| ns.metadata.labels.clone())
            .unwrap_or_default()
    }

    fn ready(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    fn watches(&self) -> Vec<Arc<WatchHealth>> {
        vec![self.health.clone()]
    }

    fn label_digest(&self, label: &str) -> u64 {
        // Summed, so that the store's order does not matter.
        self.store.state().iter().fold(0u64, |sum, namespace| {
            let mut hasher = DefaultHasher::new();
            namespace.metadata.name.hash(&mut hasher);
            let labels = namespace.metadata.labels.as_ref();
            labels.and_then(|labels| labels.get(label)).hash(&mut hasher);
            sum.wrapping_add(hasher.finish())
        })
    }
}
