//! Public keys held in Kubernetes Secrets of portcullis's own namespace (an authority's
//! `key.secretRef`), each Secret followed by its own watch and read from memory whenever the
//! trust material is built: a rotated Secret is picked up at the next trust reload, without a
//! restart. Only the named Secrets are watched (a field selector per name), so RBAC can grant
//! exactly those.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;

use crate::watch_health::{watcher_config, Retry, WatchHealth};

/// How long startup waits for the first read of each Secret.
const FIRST_READ: Duration = Duration::from_secs(30);

/// The watched Secrets, by name, in one namespace.
#[derive(Clone)]
pub struct SecretKeys {
    namespace: String,
    secrets: Vec<(String, Store<Secret>, Arc<WatchHealth>)>,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.secrets.iter().map(|(name, ..)| name.as_str()).collect();
        f.debug_struct("SecretKeys")
            .field("namespace", &self.namespace)
            .field("secrets", &names)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretKeysError {
    #[error("Secret {namespace}/{name} could not be read within {} s: {reason}", FIRST_READ.as_secs())]
    FirstRead {
        namespace: String,
        name: String,
        reason: String,
    },
}

/// Why a key could not be taken from a Secret (a config error at startup, a refused reload later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretKeyError {
    #[error("Secret {namespace}/{name} is not watched")]
    NotWatched { namespace: String, name: String },
    #[error("Secret {namespace}/{name} does not exist (or portcullis may not read it)")]
    Missing { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    NoSuchKey {
        namespace: String,
        name: String,
        key: String,
    },
}

impl SecretKeys {
    /// Starts one watch per Secret in the client's namespace (the pod's own, in a cluster) and
    /// waits for each to be read once.
    pub async fn watch(client: kube::Client, names: &BTreeSet<String>) -> Result<SecretKeys, SecretKeysError> {
        let namespace = client.default_namespace().to_string();
        let mut secrets = Vec::new();
        for name in names {
            let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
            let (store, writer) = reflector::store();
            let health = Arc::new(WatchHealth::new(format!("secrets/{name}")));
            let config = watcher_config().fields(&format!("metadata.name={name}"));
            let stream = health.observing(reflector::reflector(writer, watcher(api, config)).backoff(Retry::default()));
            let watched = name.clone();
            tokio::spawn(async move {
                stream
                    .for_each(|event| {
                        if let Err(error) = event {
                            tracing::warn!(secret = %watched, %error, "Secret watch error; retrying");
                        }
                        async {}
                    })
                    .await;
            });
            if tokio::time::timeout(FIRST_READ, store.wait_until_ready())
                .await
                .is_err()
            {
                return Err(SecretKeysError::FirstRead {
                    namespace,
                    name: name.clone(),
                    reason: health
                        .stale()
                        .map_or_else(|| "no answer".to_string(), |stale| stale.error),
                });
            }
            secrets.push((name.clone(), store, health));
        }
        Ok(SecretKeys { namespace, secrets })
    }

    /// The bytes under `key` in the Secret `name`, as last read.
    pub fn key(&self, name: &str, key: &str) -> Result<Vec<u8>, SecretKeyError> {
        let (namespace, name_owned) = (self.namespace.clone(), name.to_string());
        let Some((_, store, _)) = self.secrets.iter().find(|(watched, ..)| watched == name) else {
            return Err(SecretKeyError::NotWatched {
                namespace,
                name: name_owned,
            });
        };
        let secret = store
            .get(&ObjectRef::new(name).within(&self.namespace))
            .ok_or_else(|| SecretKeyError::Missing {
                namespace: namespace.clone(),
                name: name_owned.clone(),
            })?;
        secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .map(|bytes| bytes.0.clone())
            .ok_or(SecretKeyError::NoSuchKey {
                namespace,
                name: name_owned,
                key: key.to_string(),
            })
    }

    /// The watches, for readiness and the staleness metrics.
    pub fn watches(&self) -> Vec<Arc<WatchHealth>> {
        self.secrets.iter().map(|(.., health)| health.clone()).collect()
    }
}
