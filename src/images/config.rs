//! The `images:` section of the config file as written: registries, the trusted root, trust
//! entries and verification settings. `TrustPolicy::from_config` checks it and builds the trust
//! policy, reporting every problem into the config's one list.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ImagesConfig {
    pub registries: RegistriesConfig,
    /// Sigstore trusted root (Fulcio, Rekor and CT log keys) as a `trusted_root.json` file, for
    /// keyless authorities; read at startup and again when it changes, never fetched.
    pub trusted_root: Option<String>,
    /// Which authorities are trusted for which images.
    pub trust: Vec<TrustEntryConfig>,
    pub verification: VerificationConfig,
    /// How often the trust files (the trusted root, the authorities' keys) are read again.
    pub reload_interval: String,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            registries: RegistriesConfig::default(),
            trusted_root: None,
            trust: Vec::new(),
            verification: VerificationConfig::default(),
            reload_interval: "10s".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RegistriesConfig {
    /// Registries (host, optionally with a path prefix) images may come from; nothing else is
    /// ever contacted.
    pub allow: Vec<String>,
    /// Registries spoken to over plain HTTP (local registries only).
    pub insecure: Vec<String>,
    /// Registry host (`host[:port]`) -> a PEM file of the CA certificates its TLS certificate
    /// chains to, trusted for that host only, beside the public roots.
    pub ca_files: std::collections::BTreeMap<String, String>,
}

/// One trust entry: image patterns and the authorities trusted for them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(default, rename_all = "camelCase")]
pub struct TrustEntryConfig {
    pub name: String,
    pub images: Vec<String>,
    pub authorities: Vec<AuthorityConfig>,
    /// Distinct authorities that must verify; default 1.
    pub threshold: Option<i64>,
    pub attestations: Vec<AttestationConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(default, rename_all = "camelCase")]
pub struct AuthorityConfig {
    pub name: String,
    pub key: Option<KeyConfig>,
    pub keyless: Option<KeylessConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(default, rename_all = "camelCase")]
pub struct KeyConfig {
    /// A file holding the PEM public key: ECDSA P-256/P-384, RSA or Ed25519.
    pub path: Option<String>,
    /// A Secret of portcullis's own namespace holding the PEM public key.
    pub secret_ref: Option<SecretRefConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(default, rename_all = "camelCase")]
pub struct SecretRefConfig {
    pub name: String,
    pub key: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(default, rename_all = "camelCase")]
pub struct KeylessConfig {
    pub issuer: Option<String>,
    pub issuer_reg_exp: Option<String>,
    pub subject: Option<String>,
    pub subject_reg_exp: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(default, rename_all = "camelCase")]
pub struct AttestationConfig {
    pub name: String,
    pub predicate_types: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VerificationConfig {
    /// How long a successful verification is reused.
    pub cache_ttl: String,
    /// How long an unsigned/invalid/untrusted result is reused (errors are never cached).
    pub failure_cache_ttl: String,
    pub cache_max_entries: i64,
    /// Timeout of one registry request.
    pub registry_timeout: String,
    /// Signatures read per image at most.
    pub max_signatures: i64,
    /// A docker config.json with registry credentials (each used only for its own host).
    pub docker_config: Option<String>,
    /// Read the imagePullSecrets a workload names through the Kubernetes API (needs `get` on
    /// Secrets); their credentials come before `dockerConfig`'s.
    pub image_pull_secrets: bool,
}

impl Default for VerificationConfig {
    fn default() -> Self {
        VerificationConfig {
            cache_ttl: "10m".into(),
            failure_cache_ttl: "1m".into(),
            cache_max_entries: 10_000,
            registry_timeout: "5s".into(),
            max_signatures: 20,
            docker_config: None,
            image_pull_secrets: false,
        }
    }
}
