//! Exceptions in the cluster: a watch of `PolicyException` objects, parsed once per change and
//! read from memory on the request path (no restart, no ConfigMap).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use futures::StreamExt;
use jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};

use super::{Census, ExceptionSource, PolicyException, StaticExceptions, GROUP, KIND, VERSION};
use crate::metrics::Metrics;
use crate::watch_health::{watcher_config, Retry, WatchHealth};

/// How often the exception metrics are worked out again (an exception expires between
/// changes, so a change alone is not enough).
const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// The PolicyException resource (the chart installs its CRD).
pub fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), "policyexceptions")
}

pub struct KubeExceptions {
    current: Arc<ArcSwap<StaticExceptions>>,
    synced: Arc<AtomicBool>,
    health: Arc<WatchHealth>,
}

impl KubeExceptions {
    /// Starts the watch in the background; `ready()` turns true after the first full list.
    /// Every change parses the whole set again (exceptions are few, requests many) and
    /// publishes the exception metrics, which are also worked out again every
    /// [`PUBLISH_EVERY`] for the exceptions that expire meanwhile.
    pub fn start(client: kube::Client, max_days: u32, metrics: Arc<Metrics>) -> KubeExceptions {
        let resource = resource();
        let api: Api<DynamicObject> = Api::all_with(client, &resource);
        let writer = reflector::store::Writer::new(resource);
        let store = writer.as_reader();
        let health = Arc::new(WatchHealth::new("policyexceptions"));
        let stream =
            health.observing(reflector::reflector(writer, watcher(api, watcher_config())).backoff(Retry::default()));
        let current = Arc::new(ArcSwap::from_pointee(StaticExceptions::default()));
        let synced = Arc::new(AtomicBool::new(false));
        let (target, flag, published) = (current.clone(), synced.clone(), metrics.clone());
        let refresh = move |store: &Store<DynamicObject>, target: &ArcSwap<StaticExceptions>| {
            rebuild(store, target, max_days);
            Census::of(target.load().as_ref(), Timestamp::now()).publish(&published);
        };
        tokio::spawn(async move {
            stream
                .for_each(|event| {
                    match event {
                        Ok(watcher::Event::InitDone) => {
                            refresh(&store, &target);
                            flag.store(true, Ordering::Release);
                        }
                        Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => refresh(&store, &target),
                        // A list (the first, or a relist) is read whole at its end: the store
                        // swaps it in then, and a half-read set would excuse less.
                        Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                        Err(error) => tracing::warn!(%error, "PolicyException watch error; retrying"),
                    }
                    async {}
                })
                .await;
        });
        let source = current.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PUBLISH_EVERY);
            loop {
                tick.tick().await;
                Census::of(source.load().as_ref(), Timestamp::now()).publish(&metrics);
            }
        });
        KubeExceptions {
            current,
            synced,
            health,
        }
    }
}

fn rebuild(store: &Store<DynamicObject>, target: &ArcSwap<StaticExceptions>, max_days: u32) {
    let state = store.state();
    let objects: Vec<serde_json::Value> = state
        .iter()
        .filter_map(|object| serde_json::to_value(object.as_ref()).ok())
        .collect();
    let mut exceptions = StaticExceptions::read(&objects, max_days, Timestamp::now());
    // One that cannot even be written out again covers nothing either, and is counted.
    exceptions.refused += state.len() - objects.len();
    tracing::info!(
        exceptions = state.len() - exceptions.refused,
        refused = exceptions.refused,
        "PolicyExceptions read"
    );
    target.store(Arc::new(exceptions));
}

impl ExceptionSource for KubeExceptions {
    fn in_namespace(&self, namespace: &str) -> Vec<Arc<PolicyException>> {
        self.current.load().in_namespace(namespace)
    }

    fn all(&self) -> (Vec<Arc<PolicyException>>, usize) {
        self.current.load().all()
    }

    fn ready(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    fn watches(&self) -> Vec<Arc<WatchHealth>> {
        vec![self.health.clone()]
    }
}
