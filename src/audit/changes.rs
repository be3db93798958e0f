//! Between passes: every list of the last pass watched from the version it was read at (no
//! second list), each change handed to the audit as it happens.

use std::time::Duration;

use futures::StreamExt;
use kube::api::{WatchEvent, WatchParams};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::listing::{as_listed, Listed};

/// Changes waiting to be decided, at most: a watch that gets ahead of the audit waits.
const BACKLOG: usize = 1024;
/// After a watch connection fails, before it is opened again.
const RETRY: Duration = Duration::from_secs(1);

/// A change to an audited object.
#[derive(Debug)]
pub enum Change {
    /// Created or changed: the object (with its `apiVersion` and `kind`).
    Applied(Value),
    Deleted {
        uid: String,
    },
    /// A watch cannot resume (its version is older than the apiserver keeps): what changed
    /// since is unknown until a full pass.
    Lost {
        kind: String,
    },
}

/// The watches of one pass's lists; dropped, they stop.
pub struct Watches {
    changes: mpsc::Receiver<Change>,
    tasks: Vec<JoinHandle<()>>,
}

impl Watches {
    pub fn start(runtime: &tokio::runtime::Handle, listed: Vec<Listed>) -> Watches {
        let (sender, changes) = mpsc::channel(BACKLOG);
        let tasks = listed
            .into_iter()
            .map(|list| runtime.spawn(follow(list, sender.clone())))
            .collect();
        Watches { changes, tasks }
    }

    /// The next change, waiting at most `timeout` for one.
    pub fn next(&mut self, runtime: &tokio::runtime::Runtime, timeout: Duration) -> Option<Change> {
        // The timer is made inside the runtime: it needs its time driver.
        runtime
            .block_on(async { tokio::time::timeout(timeout, self.changes.recv()).await })
            .ok()
            .flatten()
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Follows one list from its version until the audit stops listening or the watch cannot
/// resume; a connection that ends or fails is opened again from the last version seen.
async fn follow(list: Listed, changes: mpsc::Sender<Change>) {
    let kind = list.resource.kind.clone();
    let mut version = list.resource_version;
    loop {
        let stream = match list.api.watch(&WatchParams::default(), &version).await {
            Ok(stream) => stream,
            Err(kube::Error::Api(status)) if status.code == 410 => {
                let _ = changes.send(Change::Lost { kind: kind.clone() }).await;
                return;
            }
            Err(error) => {
                tracing::warn!(%kind, %error, "cannot watch audited objects; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let mut stream = std::pin::pin!(stream);
        let mut failed = false;
        while let Some(event) = stream.next().await {
            let change = match event {
                Ok(WatchEvent::Added(object) | WatchEvent::Modified(object)) => {
                    version = object.metadata.resource_version.clone().unwrap_or(version);
                    match as_listed(object, &list.resource) {
                        Ok(object) => Change::Applied(object),
                        Err(error) => {
                            tracing::warn!(%error, "a watched object cannot be read; the next pass decides it");
                            continue;
                        }
                    }
                }
                Ok(WatchEvent::Deleted(object)) => {
                    version = object.metadata.resource_version.clone().unwrap_or(version);
                    Change::Deleted {
                        uid: object.metadata.uid.unwrap_or_default(),
                    }
                }
                Ok(WatchEvent::Bookmark(bookmark)) => {
                    version = bookmark.metadata.resource_version;
                    continue;
                }
                Ok(WatchEvent::Error(status)) if status.code == 410 => Change::Lost { kind: kind.clone() },
                Ok(WatchEvent::Error(status)) => {
                    tracing::warn!(%kind, message = %status.message, "the watch of audited objects failed; reopening it");
                    failed = true;
                    break;
                }
                Err(error) => {
                    tracing::warn!(%kind, %error, "the watch of audited objects failed; reopening it");
                    failed = true;
                    break;
                }
            };
            let lost = matches!(change, Change::Lost { .. });
            if changes.send(change).await.is_err() || lost {
                return;
            }
        }
        // A watch the apiserver ended on its timeout is reopened at once.
        if failed {
            tokio::time::sleep(RETRY).await;
        }
    }
}
