//! The trust policy: which authorities (keys, keyless identities) are trusted for which images,
//! validated at startup. An entry that could never verify anything (no authorities, an authority
//! with neither key nor identity, a threshold above its authorities) is a startup error, never a
//! silent pass.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sigstore::crypto::CosignVerificationKey;

use super::config::{AuthorityConfig, ImagesConfig, TrustEntryConfig};
use super::credentials::Credentials;
use super::pattern::{AllowList, ImagePattern};
use super::secret_keys::SecretKeys;
use super::trusted_root::{Material, TrustedRoot};
use crate::duration;

#[derive(Debug, Clone)]
pub struct TrustPolicy {
    pub entries: Vec<TrustEntry>,
    pub allow: AllowList,
    pub insecure: Vec<String>,
    /// Registry host -> the PEM of the private CAs trusted for it (`images.registries.caFiles`).
    pub registry_cas: std::collections::BTreeMap<String, Vec<u8>>,
    /// The Sigstore trusted root, for keyless authorities.
    pub trusted_root: Option<Arc<TrustedRoot>>,
    /// Hash of the trusted root file: part of the cache key.
    pub trusted_root_version: String,
    pub cache_ttl: Duration,
    pub failure_cache_ttl: Duration,
    pub cache_max_entries: u64,
    pub registry_timeout: Duration,
    /// How often the trust files are read again (`images.reloadInterval`).
    pub reload_interval: Duration,
    pub max_signatures: usize,
    /// Registry credentials from `images.verification.dockerConfig`.
    pub credentials: Credentials,
    /// `images.verification.imagePullSecrets`: read workloads' pull secrets from the API.
    pub read_pull_secrets: bool,
    /// Registry verifications started per second at most (the audit's bound); `None`: no bound.
    pub verification_rate: Option<f64>,
    /// The section it was built from: the trust files are read again from it when they change.
    pub source: ImagesConfig,
    /// The Secrets that authorities take their keys from (`key.secretRef` names).
    pub secret_refs: std::collections::BTreeSet<String>,
    /// Where those keys are read, once the Secrets are watched; until then the authorities that
    /// name them are missing from `entries` and no verifier can be built.
    pub secret_keys: Option<SecretKeys>,
}

#[derive(Debug, Clone)]
pub struct TrustEntry {
    pub name: String,
    pub patterns: Vec<ImagePattern>,
    pub authorities: Vec<Authority>,
    pub threshold: usize,
    pub attestations: Vec<AttestationRequirement>,
    /// Hash of the entry and its key material: part of the cache key, so a changed policy
    /// never reuses an old verdict.
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub struct Authority {
    pub name: String,
    pub kind: AuthorityKind,
}

#[derive(Debug, Clone)]
pub enum AuthorityKind {
    /// A public key: its PEM (for the cache fingerprint and to tell keys apart) and the key,
    /// parsed once at startup.
    Key { pem: Vec<u8>, key: CosignVerificationKey },
    /// A Fulcio certificate identity.
    Keyless { issuer: Matcher, subject: Matcher },
}

/// An exact value or a regular expression.
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Pattern(regex::Regex),
}

impl Matcher {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(expected) => expected == value,
            Matcher::Pattern(pattern) => pattern.is_match(value),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationRequirement {
    pub name: String,
    pub predicate_types: Vec<String>,
}

impl TrustPolicy {
    /// Builds the policy from the config, collecting every problem into `errors`. Keys in
    /// Secrets are left for [`TrustPolicy::with_secret_keys`].
    pub fn from_config(config: &ImagesConfig, errors: &mut Vec<String>) -> TrustPolicy {
        TrustPolicy::build(config, None, errors)
    }

    /// The same policy with the keys of `secrets` in place, or every problem found.
    pub fn with_secret_keys(&self, secrets: SecretKeys) -> Result<TrustPolicy, Vec<String>> {
        self.rebuilt(Some(secrets))
    }

    /// The trust files (and Secrets) read again: the same policy with the current material.
    pub fn reread(&self) -> Result<TrustPolicy, Vec<String>> {
        self.rebuilt(self.secret_keys.clone())
    }

    fn rebuilt(&self, secrets: Option<SecretKeys>) -> Result<TrustPolicy, Vec<String>> {
        let mut errors = Vec::new();
        let policy = TrustPolicy::build(&self.source, secrets.as_ref(), &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(TrustPolicy {
            verification_rate: self.verification_rate,
            secret_keys: secrets,
            ..policy
        })
    }

    fn build(config: &ImagesConfig, secrets: Option<&SecretKeys>, errors: &mut Vec<String>) -> TrustPolicy {
        let mut dur =
            |field: &str, text: &str, min: Duration, max: Duration| duration::field(errors, field, text, min, max);
        let v = &config.verification;
        let cache_ttl = dur(
            "images.verification.cacheTtl",
            &v.cache_ttl,
            Duration::ZERO,
            Duration::from_secs(86_400),
        );
        let failure_cache_ttl = dur(
            "images.verification.failureCacheTtl",
            &v.failure_cache_ttl,
            Duration::ZERO,
            Duration::from_secs(3_600),
        );
        let registry_timeout = dur(
            "images.verification.registryTimeout",
            &v.registry_timeout,
            Duration::from_millis(100),
            Duration::from_secs(60),
        );
        let reload_interval = dur(
            "images.reloadInterval",
            &config.reload_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );
        if !(1..=1_000_000).contains(&v.cache_max_entries) {
            errors.push(format!(
                "images.verification.cacheMaxEntries: {} is out of range (1 to 1000000)",
                v.cache_max_entries
            ));
        }
        if !(1..=1000).contains(&v.max_signatures) {
            errors.push(format!(
                "images.verification.maxSignatures: {} is out of range (1 to 1000)",
                v.max_signatures
            ));
        }

        let credentials = match &v.docker_config {
            Some(path) => Credentials::load(std::path::Path::new(path)).unwrap_or_else(|e| {
                errors.push(format!("images.verification.dockerConfig: {e}"));
                Credentials::default()
            }),
            None => Credentials::default(),
        };
        let allow = AllowList::new(&config.registries.allow);
        for insecure in &config.registries.insecure {
            if !allow.allows_host(&insecure.to_ascii_lowercase()) {
                errors.push(format!(
                    "images.registries.insecure: {insecure:?} is not on images.registries.allow"
                ));
            }
        }
        let mut registry_cas = std::collections::BTreeMap::new();
        for (host, path) in &config.registries.ca_files {
            let field = format!("images.registries.caFiles.{host}");
            if !allow.allows_host(&host.to_ascii_lowercase()) {
                errors.push(format!("{field}: {host:?} is not on images.registries.allow"));
            }
            match std::fs::read(path) {
                Ok(pem) if reqwest::Certificate::from_pem_bundle(&pem).is_ok_and(|certs| !certs.is_empty()) => {
                    registry_cas.insert(host.to_ascii_lowercase(), pem);
                }
                Ok(_) => errors.push(format!("{field}: {path:?} holds no PEM certificate")),
                Err(e) => errors.push(format!("{field}: cannot read {path:?}: {e}")),
            }
        }
        let mut trusted_root_version = String::new();
        let trusted_root = config.trusted_root.as_ref().and_then(|path| match std::fs::read(path) {
            Ok(bytes) => match super::trusted_root::parse(&bytes) {
                Ok(root) => {
                    trusted_root_version = hex::encode(Sha256::digest(&bytes));
                    Some(Arc::new(root))
                }
                Err(e) => {
                    errors.push(format!("images.trustedRoot: {path:?}: {e}"));
                    None
                }
            },
            Err(e) => {
                errors.push(format!("images.trustedRoot: cannot read {path:?}: {e}"));
                None
            }
        });

        let mut entries = Vec::new();
        let keys = KeySources {
            has_trusted_root: config.trusted_root.is_some(),
            secrets,
        };
        for (index, entry) in config.trust.iter().enumerate() {
            let field = format!(
                "images.trust[{index}] ({})",
                if entry.name.is_empty() { "unnamed" } else { &entry.name }
            );
            entries.push(trust_entry(entry, &field, &allow, &keys, errors));
        }
        let mut names: Vec<&str> = config.trust.iter().map(|e| e.name.as_str()).collect();
        names.sort_unstable();
        for pair in names.windows(2) {
            if pair[0] == pair[1] {
                errors.push(format!("images.trust: the name {:?} is used twice", pair[0]));
            }
        }

        for entry in &config.registries.allow {
            if let Err(e) = check_registry_entry(entry) {
                errors.push(format!("images.registries.allow: {entry:?} {e}"));
            }
        }

        TrustPolicy {
            entries,
            allow,
            insecure: config
                .registries
                .insecure
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            registry_cas,
            trusted_root,
            trusted_root_version,
            cache_ttl,
            failure_cache_ttl,
            cache_max_entries: v.cache_max_entries.max(1) as u64,
            registry_timeout,
            reload_interval,
            max_signatures: v.max_signatures.max(1) as usize,
            credentials,
            read_pull_secrets: v.image_pull_secrets,
            verification_rate: None,
            source: config.clone(),
            secret_refs: config
                .trust
                .iter()
                .flat_map(|entry| &entry.authorities)
                .filter_map(|authority| authority.key.as_ref()?.secret_ref.as_ref())
                .map(|secret| secret.name.clone())
                .collect(),
            secret_keys: None,
        }
    }

    /// What the trust material is (entries with their keys, the trusted root): equal
    /// fingerprints, same verdicts.
    pub fn material_fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for entry in &self.entries {
            hasher.update(entry.fingerprint.as_bytes());
        }
        hasher.update(self.trusted_root_version.as_bytes());
        hex::encode(hasher.finalize())
    }

    /// The trust material by kind: the authorities' distinct keys (which never expire), then
    /// the trusted root's pieces.
    pub fn material(&self) -> Vec<Material> {
        let keys: std::collections::BTreeSet<&[u8]> = self
            .entries
            .iter()
            .flat_map(|entry| &entry.authorities)
            .filter_map(|authority| match &authority.kind {
                AuthorityKind::Key { pem, .. } => Some(pem.as_slice()),
                AuthorityKind::Keyless { .. } => None,
            })
            .collect();
        let mut material = vec![Material {
            kind: "key",
            count: keys.len(),
            expires: None,
        }];
        material.extend(self.trusted_root.iter().flat_map(|root| root.validity.material()));
        material
    }

    /// Whether keys in Secrets are named but not read yet.
    pub fn awaits_secret_keys(&self) -> bool {
        !self.secret_refs.is_empty() && self.secret_keys.is_none()
    }

    /// The first entry whose patterns match the image, if any.
    pub fn entry_for(&self, registry: &str, repository: &str) -> Option<&TrustEntry> {
        entry_for(&self.entries, registry, repository)
    }
}

/// The first of `entries` whose patterns match the image, if any.
pub fn entry_for<'a>(entries: &'a [TrustEntry], registry: &str, repository: &str) -> Option<&'a TrustEntry> {
    entries
        .iter()
        .find(|entry| entry.patterns.iter().any(|p| p.matches(registry, repository)))
}

/// An allow-list entry is a registry host (with optional port) and an optional path prefix,
/// in the normalised form image references take (lowercase host, no scheme, no tag).
fn check_registry_entry(entry: &str) -> Result<(), &'static str> {
    if entry.is_empty() {
        return Err("is empty");
    }
    if entry.contains("://") {
        return Err("must not have a scheme: write registry.example.com, not https://...");
    }
    if entry.contains(['@', ' ', '*']) || entry.ends_with('/') || entry.contains("//") {
        return Err("must be a host with an optional path, like ghcr.io/acme");
    }
    let host = entry.split('/').next().unwrap_or_default();
    if host != host.to_ascii_lowercase() {
        return Err("must be lowercase (registry hosts are normalised to lowercase)");
    }
    Ok(())
}

/// Where authorities' keys and identities are checked against.
struct KeySources<'a> {
    has_trusted_root: bool,
    /// The watched Secrets; none yet: authorities with a `secretRef` are left out.
    secrets: Option<&'a SecretKeys>,
}

fn trust_entry(
    entry: &TrustEntryConfig,
    field: &str,
    allow: &AllowList,
    keys: &KeySources,
    errors: &mut Vec<String>,
) -> TrustEntry {
    if entry.name.is_empty() {
        errors.push(format!("{field}: name is required"));
    }
    if entry.images.is_empty() {
        errors.push(format!("{field}: images must list at least one pattern"));
    }
    let mut patterns = Vec::new();
    for text in &entry.images {
        match ImagePattern::parse(text) {
            Ok(pattern) => patterns.push(pattern),
            Err(e) => errors.push(format!("{field}.images: {e}")),
        }
    }
    for text in &entry.images {
        let host = text.split('/').next().unwrap_or_default().to_ascii_lowercase();
        if !host.is_empty() && !allow.allows_host(&host) {
            errors.push(format!(
                "{field}.images: {text:?} is on a registry that images.registries.allow does not list"
            ));
        }
    }
    if entry.authorities.is_empty() {
        errors.push(format!("{field}: authorities must not be empty"));
    }
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(entry).unwrap_or_default());
    let mut authorities = Vec::new();
    for (index, authority) in entry.authorities.iter().enumerate() {
        let field = format!("{field}.authorities[{index}]");
        if let Some(parsed) = authority_of(authority, &field, keys, errors) {
            if let AuthorityKind::Key { pem, .. } = &parsed.kind {
                hasher.update(pem);
            }
            authorities.push(parsed);
        }
    }
    let threshold = entry.threshold.unwrap_or(1);
    if threshold < 1 || threshold as usize > entry.authorities.len().max(1) {
        errors.push(format!(
            "{field}.threshold: {threshold} must be between 1 and the number of authorities ({})",
            entry.authorities.len()
        ));
    }
    for (index, attestation) in entry.attestations.iter().enumerate() {
        if attestation.name.is_empty() || attestation.predicate_types.is_empty() {
            errors.push(format!(
                "{field}.attestations[{index}]: name and predicateTypes are required"
            ));
        }
    }
    TrustEntry {
        name: entry.name.clone(),
        patterns,
        authorities,
        threshold: threshold.max(1) as usize,
        attestations: entry
            .attestations
            .iter()
            .map(|a| AttestationRequirement {
                name: a.name.clone(),
                predicate_types: a.predicate_types.clone(),
            })
            .collect(),
        fingerprint: hex::encode(hasher.finalize()),
    }
}

fn authority_of(
    authority: &AuthorityConfig,
    field: &str,
    keys: &KeySources,
    errors: &mut Vec<String>,
) -> Option<Authority> {
    if authority.name.is_empty() {
        errors.push(format!("{field}: name is required"));
    }
    let kind = match (&authority.key, &authority.keyless) {
        (Some(key), None) => {
            let (pem, from) = match (&key.path, &key.secret_ref) {
                (Some(path), None) => match std::fs::read(path) {
                    Ok(pem) => (pem, format!("{path:?}")),
                    Err(e) => {
                        errors.push(format!("{field}.key: cannot read {path:?}: {e}"));
                        return None;
                    }
                },
                (None, Some(secret)) if secret.name.is_empty() || secret.key.is_empty() => {
                    errors.push(format!("{field}.key.secretRef: name and key are required"));
                    return None;
                }
                (None, Some(secret)) => match keys.secrets.map(|secrets| secrets.key(&secret.name, &secret.key)) {
                    // Read once the Secrets are watched (serve and the audit).
                    None => return None,
                    Some(Ok(pem)) => (pem, format!("Secret {}, key {:?},", secret.name, secret.key)),
                    Some(Err(e)) => {
                        errors.push(format!("{field}.key.secretRef: {e}"));
                        return None;
                    }
                },
                _ => {
                    errors.push(format!("{field}.key: give either path or secretRef"));
                    return None;
                }
            };
            match CosignVerificationKey::try_from_pem(&pem) {
                Ok(key) => AuthorityKind::Key { pem, key },
                Err(e) => {
                    errors.push(format!("{field}.key: {from} is not a usable public key: {e}"));
                    return None;
                }
            }
        }
        (None, Some(keyless)) => {
            if !keys.has_trusted_root {
                errors.push(format!(
                    "{field}.keyless: needs images.trustedRoot (the Fulcio and Rekor keys to check against)"
                ));
            }
            let issuer = matcher(
                &keyless.issuer,
                &keyless.issuer_reg_exp,
                &format!("{field}.keyless issuer"),
                errors,
            );
            let subject = matcher(
                &keyless.subject,
                &keyless.subject_reg_exp,
                &format!("{field}.keyless subject"),
                errors,
            );
            AuthorityKind::Keyless {
                issuer: issuer?,
                subject: subject?,
            }
        }
        (Some(_), Some(_)) => {
            errors.push(format!("{field}: give either key or keyless, not both"));
            return None;
        }
        (None, None) => {
            errors.push(format!("{field}: has neither key nor keyless identity"));
            return None;
        }
    };
    Some(Authority {
        name: authority.name.clone(),
        kind,
    })
}

fn matcher(exact: &Option<String>, pattern: &Option<String>, what: &str, errors: &mut Vec<String>) -> Option<Matcher> {
    match (exact, pattern) {
        (Some(value), None) if !value.is_empty() => Some(Matcher::Exact(value.clone())),
        // Anchored: the whole value must match, so `acme` cannot match `evil-acme-fork`.
        (None, Some(pattern)) => match regex::Regex::new(&format!("^(?:{pattern})$")) {
            Ok(regex) => Some(Matcher::Pattern(regex)),
            Err(e) => {
                errors.push(format!("{what}: invalid regular expression: {e}"));
                None
            }
        },
        (Some(_), Some(_)) => {
            errors.push(format!("{what}: give either the value or the RegExp, not both"));
            None
        }
        _ => {
            errors.push(format!("{what}: is required (exact value or RegExp)"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn policy(yaml: &str) -> (TrustPolicy, Vec<String>) {
        let config = Config::from_yaml(yaml).unwrap();
        let mut errors = Vec::new();
        let policy = TrustPolicy::from_config(&config.images, &mut errors);
        (policy, errors)
    }

    #[test]
    fn a_valid_policy_finds_entries_structurally() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("cosign.pub");
        std::fs::write(&key, rcgen::KeyPair::generate().unwrap().public_key_pem()).unwrap();
        let yaml = format!(
            "images:\n  registries: {{ allow: [registry.example.com] }}\n  trust:\n    - name: micro-apps\n      images: [registry.example.com/micro-apps/**]\n      authorities: [{{ name: ci-key, key: {{ path: {} }} }}]\n",
            key.display()
        );
        let (policy, errors) = policy(&yaml);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            policy
                .entry_for("registry.example.com", "micro-apps/app")
                .map(|e| e.name.as_str()),
            Some("micro-apps")
        );
        assert!(policy
            .entry_for("registry.example.com.evil.io", "micro-apps/app")
            .is_none());
        assert!(policy.entry_for("registry.example.com", "other/app").is_none());
        assert_eq!(policy.entries[0].threshold, 1);
        assert_eq!(policy.entries[0].fingerprint.len(), 64);
    }

    #[test]
    fn a_key_in_a_secret_waits_for_the_secrets_to_be_read() {
        let yaml = "images:\n  registries: { allow: [registry.example.com] }\n  trust:\n    - name: apps\n      images: [registry.example.com/apps/**]\n      authorities: [{ name: release, key: { secretRef: { name: signing, key: cosign.pub } } }]\n";
        let (policy, errors) = policy(yaml);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(policy.awaits_secret_keys());
        assert_eq!(policy.secret_refs.iter().collect::<Vec<_>>(), ["signing"]);
        assert!(
            policy.entries[0].authorities.is_empty(),
            "no key until the Secret is read"
        );
    }

    #[test]
    fn entries_that_could_never_verify_are_errors() {
        let yaml = r#"
images:
  registries: { allow: [registry.example.com], insecure: [127.0.0.1:5000] }
  trust:
    - name: empty
      images: [registry.example.com/a/**]
      authorities: []
    - name: neither
      images: [registry.example.com/b/**]
      authorities: [{ name: nothing }]
    - name: no-subject
      images: [other.io/c/**]
      authorities: [{ name: gh, keyless: { issuer: https://token.actions.githubusercontent.com } }]
      threshold: 2
    - name: missing-key
      images: ["registry.example.com/d/**"]
      authorities: [{ name: k, key: { path: /nonexistent/cosign.pub } }]
    - name: key-twice
      images: ["registry.example.com/e/**"]
      authorities:
        - { name: both, key: { path: /k.pub, secretRef: { name: s, key: k } } }
        - { name: neither, key: {} }
        - { name: unnamed-secret, key: { secretRef: { key: cosign.pub } } }
"#;
        let (_, errors) = policy(yaml);
        for expected in [
            "images.registries.insecure: \"127.0.0.1:5000\"",
            "images.trust[0] (empty): authorities must not be empty",
            "images.trust[1] (neither).authorities[0]: has neither key nor keyless identity",
            "images.trust[2] (no-subject).authorities[0].keyless: needs images.trustedRoot",
            "images.trust[2] (no-subject).authorities[0].keyless subject: is required",
            "images.trust[2] (no-subject).threshold: 2",
            "images.trust[2] (no-subject).images: \"other.io/c/**\" is on a registry",
            "images.trust[3] (missing-key).authorities[0].key: cannot read",
            "images.trust[4] (key-twice).authorities[0].key: give either path or secretRef",
            "images.trust[4] (key-twice).authorities[1].key: give either path or secretRef",
            "images.trust[4] (key-twice).authorities[2].key.secretRef: name and key are required",
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(expected)),
                "missing {expected:?} in {errors:#?}"
            );
        }
    }
}
