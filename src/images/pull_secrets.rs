//! Registry credentials from a workload's `imagePullSecrets`, read through the Kubernetes API
//! (`get` on Secrets of the workload's namespace; nothing is listed or watched). A pod spec that
//! names none gets its ServiceAccount's, as the kubelet's pods do (`get` on that
//! ServiceAccount). Secrets and ServiceAccounts are cached for a minute, so a burst of pods
//! costs one API call per object. A Secret that cannot
//! be read is skipped with a warning naming it (never its content): the registry then answers
//! as it would to anyone, and a refusal is an `error`, never `unsigned`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};

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
    /// The pod spec's ServiceAccount (`default` when it names none), whose pull secrets apply
    /// when `names` is empty.
    pub service_account: String,
}

pub struct PullSecrets {
    client: kube::Client,
    cache: moka::future::Cache<(String, String), Credentials>,
    /// (namespace, ServiceAccount) -> the names of its imagePullSecrets.
    accounts: moka::future::Cache<(String, String), Vec<String>>,
}

impl PullSecrets {
    pub fn new(client: kube::Client) -> PullSecrets {
        PullSecrets {
            client,
            cache: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(SECRET_TTL)
                .build(),
            accounts: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(SECRET_TTL)
                .build(),
        }
    }

    /// The credentials of the named Secrets (else of the ServiceAccount's), the first named
    /// winning for a registry they share.
    pub async fn credentials(&self, refs: &PullSecretRefs) -> Credentials {
        let names = match refs.names.is_empty() {
            false => refs.names.clone(),
            true => self.account_secrets(&refs.namespace, &refs.service_account).await,
        };
        let mut merged = Credentials::default();
        for name in &names {
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

    /// The imagePullSecrets of a ServiceAccount; none when it cannot be read (logged).
    async fn account_secrets(&self, namespace: &str, account: &str) -> Vec<String> {
        if account.is_empty() {
            return Vec::new();
        }
        let key = (namespace.to_string(), account.to_string());
        let read = self
            .accounts
            .try_get_with(key, self.read_account(namespace, account))
            .await;
        read.unwrap_or_else(|error| {
            tracing::warn!(%namespace, service_account = %account, %error, "ServiceAccount's imagePullSecrets not used");
            Vec::new()
        })
    }

    async fn read_account(&self, namespace: &str, account: &str) -> Result<Vec<String>, PullSecretError> {
        let api: kube::Api<ServiceAccount> = kube::Api::namespaced(self.client.clone(), namespace);
        let account = api
            .get_opt(account)
            .await
            .map_err(PullSecretError::Api)?
            .ok_or(PullSecretError::NotFound)?;
        Ok(account
            .image_pull_secrets
            .unwrap_or_default()
            .into_iter()
            .map(|reference| reference.name)
            .filter(|name| !name.is_empty())
            .collect())
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
