//! Registry credentials from a workload's `imagePullSecrets`, read through the Kubernetes API
//! (`get` on Secrets of the workload's namespace; nothing is listed or watched). Secrets are
//! cached for a minute, so a burst of pods costs one API call per Secret. A Secret that cannot
//! be read is skipped with a warning naming it (never its content): the registry then answers
//! as it would to anyone, and a refusal is an `error`, never `unsigned`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;

use super::credentials::{Credentials, CredentialsError};

/// Why one pull secret is not used.
#[derive(Debug, thiserror::Error)]
pub enum PullSecretError {
    #[error("cannot read: {0}")]
    Api(#[source] kube::Error),
    #[error("not found")]
    NotFound,
    #[error("neither .dockerconfigjson nor .dockercfg in it")]
    NoDockerConfig,
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

/// How long a Secret read from the API is used before it is read again.
const SECRET_TTL: Duration = Duration::from_secs(60);

/// The pull secrets a workload names, in its namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullSecretRefs {
    pub namespace: String,
    pub names: Vec<String>,
}

pub struct PullSecrets {
    client: kube::Client,
    cache: moka::future::Cache<(String, String), Credentials>,
}

impl PullSecrets {
    pub fn new(client: kube::Client) -> PullSecrets {
        PullSecrets {
            client,
            cache: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(SECRET_TTL)
                .build(),
        }
    }

    /// The credentials of the named Secrets, the first named winning for a registry they share.
    pub async fn credentials(&self, refs: &PullSecretRefs) -> Credentials {
        let mut merged = Credentials::default();
        for name in &refs.names {
            let key = (refs.namespace.clone(), name.clone());
            let read = self.cache.try_get_with(key, self.read(&refs.namespace, name)).await;
            match read {
                Ok(credentials) => merged = merged.or(&credentials),
                Err(error) => tracing::warn!(
                    namespace = %refs.namespace,
                    secret = %name,
                    error = %error,
                    "imagePullSecret not used"
                ),
            }
        }
        merged
    }

    async fn read(&self, namespace: &str, name: &str) -> Result<Credentials, PullSecretError> {
        let api: kube::Api<Secret> = kube::Api::namespaced(self.client.clone(), namespace);
        let secret = api
            .get_opt(name)
            .await
            .map_err(PullSecretError::Api)?
            .ok_or(PullSecretError::NotFound)?;
        let data = secret.data.unwrap_or_default();
        let config = data
            .get(".dockerconfigjson")
            .or_else(|| data.get(".dockercfg"))
            .ok_or(PullSecretError::NoDockerConfig)?;
        Ok(Credentials::parse(&config.0, &format!("secret {namespace}/{name}"))?)
    }
}
