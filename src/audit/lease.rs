//! One active audit among replicas: a `coordination.k8s.io` Lease held while auditing, renewed
//! before it expires, released on a clean stop so that a standby takes over at its next look
//! (within the lease's duration), and taken over after its duration if the holder vanished.

use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a holder's claim lasts without renewal: what a standby waits at most after a
/// holder vanished without releasing.
pub const DURATION_SECONDS: u64 = 15;
/// A holder renews this long before its claim expires.
const RENEW_BEFORE_SECONDS: u64 = 5;

#[derive(Debug, thiserror::Error)]
#[error("cannot use the Lease {namespace}/{name}: {source}")]
pub struct LeaseError {
    namespace: String,
    name: String,
    #[source]
    source: LeaseManagerError,
}

/// A claim on the Lease, followed in the background.
pub struct Lease {
    leading: watch::Receiver<bool>,
    follower: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl Lease {
    /// Joins the election for `namespace/name` (the Lease created if missing) as `identity`.
    pub async fn join(client: kube::Client, namespace: &str, name: &str, identity: &str) -> Result<Lease, LeaseError> {
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_identity(identity)
            // One per replica: server-side apply sees no conflict between two writes of one
            // manager, so a shared one let a second replica take a held Lease and both lead.
            .with_field_manager(format!("portcullis-audit-{identity}"))
            .with_duration(DURATION_SECONDS)
            .with_grace(RENEW_BEFORE_SECONDS)
            .build()
            .await
            .map_err(|source| LeaseError {
                namespace: namespace.to_string(),
                name: name.to_string(),
                source,
            })?;
        let (leading, follower) = manager.watch().await;
        Ok(Lease { leading, follower })
    }

    /// Whether this process holds the Lease now.
    pub fn leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Gives the Lease up (if held) so that a standby takes over without waiting for expiry.
    pub async fn release(self) {
        let Lease { leading, follower } = self;
        drop(leading);
        match follower.await {
            Ok(Ok(_)) => tracing::info!("audit lease released"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot release the audit lease; a standby takes over when it expires")
            }
            Err(error) => tracing::warn!(%error, "the audit lease task ended abnormally"),
        }
    }
}

/// Who holds the Lease, as the Lease shows it: the pod's name (unique among replicas) and the
/// process id (unique among processes on one host, as in tests).
pub fn identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|host| host.trim().to_string())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "portcullis".to_string());
    format!("{host}-{}", std::process::id())
}
